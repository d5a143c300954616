/**
 * Kernel variants and plans: which variant of matmul and of attention runs for many rows and
 * for few. Import-free, so that any layer can name a plan without pulling in the kernels.
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
 * - `splitk`: 4 rows x 64 columns per workgroup, K split over 16 lanes, for few rows.
 * Every variant is correct at any shape; tuning.ts measures which is fastest where.
 */
export const MATMUL_VARIANTS = ['register', 'wide', 'tall', 'tiled', 'splitk'] as const;
export type MatmulVariant = (typeof MATMUL_VARIANTS)[number];

/** Which variant of a kernel runs when a sequence has many rows, and when it has few. */
export interface VariantPlan<V extends string> {
  large: V;
  small: V;
}

/** `small` serves row counts up to `SMALL_ROWS`. */
export type MatmulPlan = VariantPlan<MatmulVariant>;

/** Row counts up to this use the plan's `small` variant. */
export const SMALL_ROWS = 16;

export const DEFAULT_MATMUL_PLAN: MatmulPlan = { large: 'register', small: 'register' };

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

/** `small` serves query counts up to `SMALL_QUERIES`. */
export type AttentionPlan = VariantPlan<AttentionVariant>;

export const SMALL_QUERIES = 16;

export const DEFAULT_ATTENTION_PLAN: AttentionPlan = { large: 'thread', small: 'thread' };

export interface KernelPlan {
  matmul: MatmulPlan;
  attention: AttentionPlan;
}

export const DEFAULT_PLAN: KernelPlan = { matmul: DEFAULT_MATMUL_PLAN, attention: DEFAULT_ATTENTION_PLAN };

/** Bump when a variant is added, removed or changed: plans remembered for an older set are measured again. */
export const VARIANT_SET_VERSION = 3;

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
}

/** Is `v` a plan of known variants (a remembered plan may come from an older variant set)? */
export function isPlan(v: unknown): v is KernelPlan {
  const p = v as KernelPlan | undefined;
  const ok = <T extends string>(names: readonly T[], half: { large: unknown; small: unknown } | undefined) =>
    !!half && names.includes(half.large as T) && names.includes(half.small as T);
  return !!p && ok(MATMUL_VARIANTS, p.matmul) && ok(ATTENTION_VARIANTS, p.attention);
}
