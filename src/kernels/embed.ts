import type { Dispatch } from '../gpu/kernel.js';
import { shader } from '../gpu/shader.js';
import { cols, expectTensor, type GpuTensor } from '../gpu/tensor.js';
import { activationShape, batchBindings, ceilDiv, paramsBuffer, rowsOf, Rows, type Workspace } from './workspace.js';

const source = shader('embed.wgsl');

export interface EmbedArgs {
  /** The clean tokens (default) or the fresh ones, packed. */
  rows?: Rows;
  tokens: GpuTensor; // u32 [batch, L]
  /** [V, D], or the block of its rows from token id `firstToken` on; f32 or f16. */
  embedding: GpuTensor;
  firstToken?: number;
  out: GpuTensor; // [batch, L, D]
}

/** out[b, i] = embedding[tokens[b, i]] for every clean (or fresh) token whose id the embedding (block) holds. */
export async function embedDispatch(ws: Workspace, a: EmbedArgs): Promise<Dispatch> {
  const D = cols(a.embedding);
  expectTensor('embed', 'tokens', a.tokens, { shape: [ws.maxBatch, ws.seqStride], dtype: 'u32', dense: true });
  expectTensor('embed', 'embedding', a.embedding, { shape: [undefined, D], dtype: ['f32', 'f16'], dense: true });
  expectTensor('embed', 'out', a.out, { shape: activationShape(ws, D), dense: true });
  const kernel = await ws.kernels.get({ shader: source, defines: { F16: a.embedding.dtype === 'f16' } });
  const rows = a.rows ?? Rows.Clean;
  const p = paramsBuffer(ws, kernel, 'embed', {
    D,
    rowsKind: rows,
    first: a.firstToken ?? 0,
    count: a.embedding.shape[0],
  });
  return {
    kernel,
    bindGroup: kernel.bind('embed', {
      ...batchBindings(ws),
      p,
      tokens: a.tokens.buffer,
      embedding: a.embedding.buffer,
      x: a.out.buffer,
    }),
    grid: () => [ceilDiv(D, kernel.workgroupSize[0]), rowsOf(ws, rows), ws.shape.batch],
  };
}
