import { fail } from '../errors.js';
import { cols, columns, type GpuTensor } from '../gpu/tensor.js';
import { appendFreshRowsDispatch } from '../kernels/rows.js';
import { reencodeDispatch, stalenessDispatch, type StalenessState } from '../kernels/staleness.js';
import { Rows } from '../kernels/workspace.js';
import type { CleanSide } from './blocks.js';
import { headDim, type ModelConfig } from '../weights/config.js';

/**
 * The adaptive policy re-encodes at most this many kept rows per row that joined: a bound on a
 * step's work (the stalest go first, the others wait for a later step). One keeps a step within
 * the rows of a delayed one: on the CPU adapters a matmul costs about the same for 1 to 8 rows
 * and twice that for 9 to 16 (on lavapipe at L256 and 64 steps, 4 per joined row made the
 * adaptive generations 20-30% slower).
 */
export const REENCODE_PER_FRESH = 1;

/** The first encoder block: its keys and values depend only on token and position, so a kept row's never go stale. */
const FIRST_BLOCK = 'encoder.blocks.0';

/** The model's own buffer maker: [maxBatch, L, width] f32 activations. */
export type ActivationAllocator = (name: string, width: number) => GpuTensor;

/**
 * The KV set: per sequence, every clean token's rotated keys and values at each layer that
 * attends to the clean set (each encoder block, the group swap, each decoder layer), in buffers
 * sized for L: [maxBatch, L, 2D] per layer (the decoder's: one per group of layers,
 * [maxBatch, L, 2D * layers], as their fused projection writes them), rows in the order the
 * tokens joined the clean set; and the fresh rows' encoder stream, packed at rows 0..m_b-1
 * (their tokens and positions are read where they are). One set serves the incremental and the
 * adaptive passes; each buffer is allocated on first use.
 */
export interface KvSet {
  /** The fresh rows' encoder stream [batch, L, D]. */
  stream: GpuTensor;
  /** Layer `prefix`'s cache, [batch, L, width]. */
  cache(prefix: string, width: number): GpuTensor;
}

export function kvSet(allocate: ActivationAllocator, config: ModelConfig): KvSet {
  const caches = new Map<string, GpuTensor>();
  return {
    stream: allocate('fresh', config.hiddenSize),
    cache(prefix, width) {
      let cache = caches.get(prefix);
      if (!cache) {
        cache = allocate(`kv set ${prefix}`, width);
        caches.set(prefix, cache);
      }
      return cache;
    },
  };
}

/**
 * The incremental clean side: a pass encodes only the fresh rows (the clean set's last m_b,
 * the tokens that joined since the previous pass); their keys and values are appended in place
 * and attention reads the whole set. Older rows are never recomputed: they are stale, an
 * approximation (the encoder is bidirectional), unless every clean row is fresh (a refresh).
 */
export function incrementalSide(kv: KvSet): CleanSide {
  return {
    rows: Rows.Fresh,
    stream: kv.stream,
    keep(f, prefix, rows) {
      const cache = kv.cache(prefix, cols(rows));
      f.emit(appendFreshRowsDispatch(f.ws, { label: `${prefix}.append_kv`, from: rows, to: cache }));
      return cache;
    },
  };
}

/**
 * The adaptive clean side (docs/model.md, "The incremental encoder"): the incremental one, and
 * before each pass the GPU picks kept rows to encode again with the joined ones, by how much of
 * their first-block attention goes to rows they have not seen (reencode.wgsl, from the
 * log-sum-exps staleness.wgsl keeps up to date once the first block has appended the joined
 * rows' keys). A re-encoded row's keys, values and encoder output are replaced in place, its
 * first block's kept (exact); the first block's queries of every row are kept for the statistic.
 */
export function adaptiveSide(kv: KvSet, state: StalenessState, config: ModelConfig): CleanSide {
  const { nHeads } = config;
  return {
    rows: Rows.Fresh,
    stream: kv.stream,
    begin: (f) => f.emit(reencodeDispatch(f.ws, state, nHeads, REENCODE_PER_FRESH)),
    keep(f, prefix, rows, queries) {
      const cache = kv.cache(prefix, cols(rows));
      const first = prefix === FIRST_BLOCK;
      f.emit(appendFreshRowsDispatch(f.ws, { label: `${prefix}.append_kv`, from: rows, to: cache, joinedOnly: first }));
      if (first) {
        if (!queries) fail('architecture', `${prefix}: the adaptive KV set needs the first block's queries`);
        const firstQueries = kv.cache(`${prefix} queries`, cols(queries));
        f.emit(
          appendFreshRowsDispatch(f.ws, {
            label: `${prefix}.append_q`,
            from: queries,
            to: firstQueries,
            joinedOnly: true,
          }),
        );
        const keys = columns(cache, 0, config.hiddenSize, 'k');
        f.emit(stalenessDispatch(f.ws, { state, queries: firstQueries, keys, nHeads, headDim: headDim(config) }));
      }
      return cache;
    },
  };
}
