import { cols, type GpuTensor } from '../gpu/tensor.js';
import { freshRowsDispatch } from '../kernels/rows.js';
import { Rows } from '../kernels/workspace.js';
import type { CleanSide } from './blocks.js';
import type { ModelConfig } from './config.js';

/** The model's own buffer makers: [maxBatch, L, width] f32 activations and [maxBatch, L] u32 indices. */
export interface ActivationAllocator {
  activation(name: string, width: number): GpuTensor;
  indices(name: string): GpuTensor;
}

/**
 * The incremental clean side: the KV set. Per sequence, every clean token's rotated keys and
 * values at each layer that attends to the clean set (each encoder block, the group swap, each
 * decoder layer), in buffers sized for L: [maxBatch, L, 2D] per layer (the decoder's: one per
 * group of layers, [maxBatch, L, 2D * layers], as their fused projection writes them), rows in the order the
 * tokens joined the clean set. A pass encodes only the fresh rows (the clean set's last m_b,
 * gathered packed into `tokens` / `positions`); their keys and values are appended in place and
 * attention reads the whole set. Older rows are never recomputed: they are stale, an
 * approximation (the encoder is bidirectional), unless every clean row is fresh (a refresh).
 */
export function incrementalSide(allocate: ActivationAllocator, config: ModelConfig): CleanSide {
  const D = config.hiddenSize;
  const caches = new Map<string, GpuTensor>();
  return {
    rows: Rows.Fresh,
    tokens: allocate.indices('freshTokens'),
    positions: allocate.indices('freshPositions'),
    stream: allocate.activation('fresh', D),
    keep(f, prefix, kv) {
      let cache = caches.get(prefix);
      if (!cache) {
        cache = allocate.activation(`kv set ${prefix}`, cols(kv));
        caches.set(prefix, cache);
      }
      f.emit(freshRowsDispatch(f.ws, { label: `${prefix}.append_kv`, direction: 'append', from: kv, to: cache }));
      return cache;
    },
  };
}
