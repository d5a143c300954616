/**
 * Kernel variants and plans: which variant of matmul and of attention runs in each row-count
 * bucket (and, for matmul, at each weight shape). Import-free, so that any layer can name a
 * plan without pulling in the kernels.
 */

/**
 * The matmul variants, all with the same bindings and fused epilogues:
 * - `register`: 4x4 outputs per thread straight from global memory, 32x32 per workgroup
 *   (no workgroup memory or barriers, which SwiftShader turns into coroutine switches);
 * - `wide`: the same kernel as 256 columns per workgroup for few rows, each thread holding all
 *   of them (4, 8 or 16 by the row count at encode time: each weight load serves every row);
 * - `tall`: the same kernel with 16x8 outputs per thread, 64x64 per workgroup, for many rows
 *   (each weight load serves 16 rows: 1.6x `register` on SwiftShader);
 * - `tiled`: 64x64 per workgroup, K tiles staged in workgroup memory (what real GPUs prefer);
 * - `splitk`: 4 rows x 64 columns per workgroup, K split over 16 lanes, for few rows;
 * - `broadcast`: 4 columns per thread, 256 per workgroup, the rows' x values loaded once per
 *   subgroup and shared by `subgroupBroadcast` (CPU adapters, where every load is a gather);
 *   only where the device has `subgroups`.
 * Every variant is correct at any shape; tuning.ts measures which is fastest where.
 */
export const MATMUL_VARIANTS = ['register', 'wide', 'tall', 'tiled', 'splitk', 'broadcast'] as const;
export type MatmulVariant = (typeof MATMUL_VARIANTS)[number];

/**
 * Row-count buckets: bucket i serves row counts up to `ROW_BUCKETS[i]` (the last: any count),
 * so that the PGM's few decoder rows and its part-filled encoder each get their own variant.
 */
export const ROW_BUCKETS = [4, 8, 16, 32, 64, 128, Infinity] as const;

/** One variant per row-count bucket, in `ROW_BUCKETS` order. */
export type BucketPlan<V extends string> = V[];

/** The same variant in every bucket. */
export const everyBucket = <V extends string>(variant: V): BucketPlan<V> => ROW_BUCKETS.map(() => variant);

/**
 * A matmul's plan entry: its weight's shape [N, K], its storage when the weights are f16, and
 * whether it carries a LayerNorm prologue (which costs some variants far more than others).
 * `ANY_SHAPE` serves shapes without one.
 */
export const matmulKey = (K: number, N: number, dtype: 'f32' | 'f16' = 'f32', norm = false): string =>
  `${K}x${N}${dtype === 'f16' ? ':f16' : ''}${norm ? ':norm' : ''}`;
export const ANY_SHAPE = '*';

/**
 * The attention variants, same bindings and results:
 * - `thread`: one thread per four query rows of a head, reading keys and values from global
 *   memory (each load serves the four rows), four keys per softmax rescale (no workgroup
 *   memory: what SwiftShader prefers);
 * - `flash`: a workgroup per 64 query rows of a head, key/value tiles staged in workgroup
 *   memory and shared by its threads (what real GPUs prefer).
 */
export const ATTENTION_VARIANTS = ['thread', 'flash'] as const;
export type AttentionVariant = (typeof ATTENTION_VARIANTS)[number];

export interface KernelPlan {
  /** The matmul variant per bucket, by `matmulKey(K, N)` (or `ANY_SHAPE`); `register` where neither is planned. */
  matmul: Record<string, BucketPlan<MatmulVariant>>;
  /** The attention variant per bucket of the query count. */
  attention: BucketPlan<AttentionVariant>;
}

export const DEFAULT_PLAN: KernelPlan = { matmul: {}, attention: everyBucket('thread') };

/** The variants a plan runs for a matmul with this weight shape, one per bucket. */
export const matmulBuckets = (
  plan: KernelPlan,
  K: number,
  N: number,
  dtype: 'f32' | 'f16' = 'f32',
  norm = false,
): BucketPlan<MatmulVariant> =>
  plan.matmul[matmulKey(K, N, dtype, norm)] ?? plan.matmul[ANY_SHAPE] ?? everyBucket('register');

/** The row counts bucket i serves: (least, most]. */
export const bucketRange = (i: number): [number, number] => [ROW_BUCKETS[i - 1] ?? 0, ROW_BUCKETS[i]];

/**
 * Bump when a variant is added, removed or changed, or how it is timed: plans remembered for an
 * older set are measured again. 6: Node's timing waits nap (gpu/nap.ts), as its generation does.
 * 7: the LayerNorm prologue and rotary epilogue; the matmuls after a LayerNorm timed with it.
 */
export const VARIANT_SET_VERSION = 7;

/** 'auto' (default): measured per adapter; a variant name: that variant at every row count. */
export interface PlanOptions {
  matmul?: 'auto' | MatmulVariant;
  attention?: 'auto' | AttentionVariant;
}

/** The sizes a model's kernels run at. */
export interface ModelShapes {
  /** Hidden size D, MLP width F, vocabulary V, length L. */
  D: number;
  F: number;
  V: number;
  L: number;
  nHeads: number;
  headDim: number;
  /** The matmul weights sit on the GPU as f16 (the kernels widen them as they load them). */
  halfWeights?: boolean;
  /** N of each of the PGM decoder's key | value projections of several layers at once (model/fusion.ts), f32 weights. */
  decoderKv?: readonly number[];
}

/** A matmul's [K, N], its weight's storage, and whether it carries a LayerNorm prologue. */
export type MatmulShape = [number, number, 'f32' | 'f16', boolean];

/**
 * Every matmul shape of a model: qkv (after a LayerNorm), attention out, attn_q and the linear
 * query processor (after one), MLP in (after one) and out, the group swap's key | value, the
 * mlp4 query processor in (after one) and out, the output layer (after one), the decoder's fused
 * key | value projections (after one, f32 weights).
 */
export function matmulShapes({ D, F, V, halfWeights, decoderKv }: ModelShapes): MatmulShape[] {
  const dtype = halfWeights ? 'f16' : 'f32';
  const model: [number, number, boolean][] = [
    [D, 3 * D, true],
    [D, D, false],
    [D, D, true],
    [D, F, true],
    [F, D, false],
    [D, 2 * D, false],
    [D, 4 * D, true],
    [4 * D, D, false],
    [D, V, true],
  ];
  const all: MatmulShape[] = [
    ...model.map(([K, N, norm]): MatmulShape => [K, N, dtype, norm]),
    ...(decoderKv ?? []).map((N): MatmulShape => [D, N, 'f32', true]),
  ];
  return all.filter((a, i) => all.findIndex((b) => matmulKey(...b) === matmulKey(...a)) === i);
}

/** Is `v` a plan of known variants (a remembered plan may come from an older variant set or plan shape)? */
export function isPlan(v: unknown): v is KernelPlan {
  const p = v as Partial<KernelPlan> | null | undefined;
  const ok = <T extends string>(names: readonly T[], buckets: unknown) =>
    Array.isArray(buckets) && buckets.length === ROW_BUCKETS.length && buckets.every((b) => names.includes(b as T));
  const matmul = typeof p?.matmul === 'object' && p.matmul !== null ? Object.values(p.matmul) : [undefined];
  return matmul.every((b) => ok(MATMUL_VARIANTS, b)) && ok(ATTENTION_VARIANTS, p?.attention);
}
