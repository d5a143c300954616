import { embedDispatch } from '../kernels/embed.js';
import { Rows } from '../kernels/workspace.js';
import { ditBlock, outputLayer, type ForwardContext } from './blocks.js';

/** The MDLM baseline (DIT): n_blocks DiT blocks over all positions, then the output layer. */
export function mdlmForward(f: ForwardContext): void {
  const { config, act, ws } = f;
  f.emit(embedDispatch(ws, { tokens: act.cleanTokens, embedding: f.param('vocab_embed.embedding'), out: act.x }));
  for (let i = 0; i < config.nBlocks; i++) ditBlock(f, `blocks.${i}`);
  outputLayer(f, Rows.Clean, act.x);
}
