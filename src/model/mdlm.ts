import type { Dispatch } from '../gpu/kernel.js';
import { embedDispatch } from '../kernels/embed.js';
import { Rows } from '../kernels/workspace.js';
import { ditBlock, outputLayer, type ForwardContext } from './blocks.js';

/** The MDLM baseline (DIT): n_blocks DiT blocks over all positions, then the output layer. */
export async function mdlmForward(f: ForwardContext): Promise<Dispatch[]> {
  const { config, act, ws, w } = f;
  const parts: Dispatch[][] = [[await embedDispatch(ws, { tokens: act.cleanTokens, embedding: w('vocab_embed.embedding'), out: act.x, D: config.hiddenSize })]];
  for (let i = 0; i < config.nBlocks; i++) parts.push(await ditBlock(f, `blocks.${i}`));
  parts.push(await outputLayer(f, Rows.Clean, act.x, act.norm));
  return parts.flat();
}
