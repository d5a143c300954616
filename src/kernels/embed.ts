import { shader } from '../gpu/shader.js';
import type { Dispatch } from '../gpu/kernel.js';
import { ceilDiv, paramsBuffer, type Workspace } from './workspace.js';

const source = shader('embed.wgsl');

/** x[b, i] = embedding[tokens[b, i]] for every clean token. */
export async function embedDispatch(ws: Workspace, a: { tokens: GPUBuffer; embedding: GPUBuffer; out: GPUBuffer; D: number }): Promise<Dispatch> {
  const kernel = await ws.kernels.get({ shader: source, bindings: ['uniform', 'read', 'uniform', 'read', 'read', 'write'] });
  const params = paramsBuffer(ws, 'embed', [a.D]);
  return {
    kernel,
    bindGroup: kernel.bind('embed', [ws.dims, ws.lengths, params, a.tokens, a.embedding, a.out]),
    grid: () => [ceilDiv(a.D, 64), ws.shape.maxClean, ws.shape.batch],
  };
}
