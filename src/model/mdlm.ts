import { Rows } from '../kernels/workspace.js';
import { ditBlock, embed, outputLayer, type ForwardContext } from './blocks.js';

/** The MDLM baseline (DIT): n_blocks DiT blocks over all positions, then the output layer. */
export function mdlmForward(f: ForwardContext): void {
  const { config, act } = f;
  embed(f, Rows.Clean, act.cleanTokens, act.x);
  for (let i = 0; i < config.nBlocks; i++) ditBlock(f, `blocks.${i}`);
  outputLayer(f, Rows.Clean, act.x);
}
