import { cols, type GpuTensor } from '../gpu/tensor.js';
import { appendFreshRowsDispatch } from '../kernels/rows.js';
import { Rows } from '../kernels/workspace.js';
import type { CleanSide } from './blocks.js';
import type { ModelConfig } from './config.js';

/** The model's own buffer maker: [maxBatch, L, width] f32 activations. */
export type ActivationAllocator = (name: string, width: number) => GpuTensor;

/**
 * The incremental clean side: the KV set. Per sequence, every clean token's rotated keys and
 * values at each layer that attends to the clean set (each encoder block, the group swap, each
 * decoder layer), in buffers sized for L: [maxBatch, L, 2D] per layer (the decoder's: one per
 * group of layers, [maxBatch, L, 2D * layers], as their fused projection writes them), rows in
 * the order the tokens joined the clean set. A pass encodes only the fresh rows (the clean
 * set's last m_b, their tokens and positions read where they are, their activations packed at
 * rows 0..m_b-1); their keys and values are appended in place and attention reads the whole
 * set. Older rows are never recomputed: they are stale, an approximation (the encoder is
 * bidirectional), unless every clean row is fresh (a refresh).
 */
export function incrementalSide(allocate: ActivationAllocator, config: ModelConfig): CleanSide {
  const caches = new Map<string, GpuTensor>();
  return {
    rows: Rows.Fresh,
    stream: allocate('fresh', config.hiddenSize),
    keep(f, prefix, kv) {
      let cache = caches.get(prefix);
      if (!cache) {
        cache = allocate(`kv set ${prefix}`, cols(kv));
        caches.set(prefix, cache);
      }
      f.emit(appendFreshRowsDispatch(f.ws, { label: `${prefix}.append_kv`, from: kv, to: cache }));
      return cache;
    },
  };
}
