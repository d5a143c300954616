/**
 * Every WGSL kernel against its `src/reference/ops.ts` oracle on seeded random data, one
 * `describe` per kernel and per variant (matmul: register, wide, tall, tiled, splitk; attention:
 * thread, flash). Shapes cover what tiles and workgroups get wrong: sizes that are not
 * multiples of a matmul block (32x32 register, 4x256 wide, 64x64 tiled with K tiles of 16,
 * 4x64 splitk over 16 K lanes) or of a 64-wide workgroup or flash query/key tile, a single row,
 * all `seqStride` rows, ragged batches (sequences with different clean/query row counts), and
 * both row kinds. On lavapipe each matmul variant runs a representative subset of the cases
 * (LLVM compiles every pipeline there; see variantCases).
 *
 * Outputs start as a sentinel (or as existing values for in-place kernels) and every element a
 * kernel does not own (padding rows past a sequence's count, columns outside a slice, rows of a
 * dense output past the max row count) must come back bit-identical. Inputs in padding rows
 * hold garbage (huge values, out-of-range tokens and positions) so reading them shows up.
 *
 * Tolerance: |got - want| <= abs + rel * |want|, with rel = 1e-5 and abs = 1e-5 (2e-5 for the
 * softmax/exp/log kernels), and abs = 1e-4 where the accumulation is long (matmul K > 128) or
 * the softmax amplifies rounding (attention scores of order 100). Observed errors on
 * SwiftShader are below 1e-6 (relative to 1 + |want|) except for that peaky softmax case.
 */
import { describe, expect, inject, it } from 'vitest';
import { KernelCache, type Dispatch } from '../../src/gpu/kernel.js';
import { PgmError } from '../../src/errors.js';
import { columns, gpuTensor, type GpuDtype, type GpuTensor } from '../../src/gpu/tensor.js';
import { GpuMemory } from '../../src/gpu/memory.js';
import { shader } from '../../src/gpu/shader.js';
import { attentionDispatch } from '../../src/kernels/attention.js';
import { embedDispatch } from '../../src/kernels/embed.js';
import { queryInitDispatches, sinusTable } from '../../src/kernels/group-swap.js';
import { matmulDispatch, rotaryTable } from '../../src/kernels/matmul.js';
import {
  ANY_SHAPE,
  ATTENTION_VARIANTS,
  everyBucket,
  MATMUL_VARIANTS,
  type AttentionVariant,
  type KernelPlan,
  type MatmulVariant,
} from '../../src/kernels/plan.js';
import { appendFreshRowsDispatch } from '../../src/kernels/rows.js';
import { reencodeDispatch, stalenessDispatch } from '../../src/kernels/staleness.js';
import { createWorkspace, Rows, setBatchShape, type Workspace } from '../../src/kernels/workspace.js';
import { queryInitTerms, type PreQueryMode } from '../../src/weights/config.js';
import { decodeFloats, encodeFloats } from '../../src/weights/floats.js';
import { pairRotaryRows, type RotaryColumns } from '../../src/model/fusion.js';
import {
  attention,
  embed,
  gatedResidual,
  geluTanh,
  layerNorm,
  linear,
  logsumexpRows,
  meanRows,
  rope,
  silu,
  sinusoidal,
} from '../../src/reference/ops.js';
import { REENCODE_PER_FRESH } from '../../src/model/kv-set.js';
import { adaptivePicks } from '../../src/reference/incremental.js';
import { seededNormal, seededUniform } from '../../src/reference/random.js';
import { runAndRead, runtime, testGpu } from '../helpers/gpu.js';

const SENTINEL = Math.fround(-8675.309);
const TIGHT = { abs: 1e-5, rel: 1e-5 };
const TRANSCENDENTAL = { abs: 2e-5, rel: 1e-5 };
const LONG_SUM = { abs: 1e-4, rel: 1e-5 };

// ---------------------------------------------------------------------------------------------
// Harness: a Workspace like GpuModel.load builds, and one submit per run.

/** Per-sequence row counts of one test batch; activation buffers are [batch, L, width]. */
interface Batch {
  L: number;
  clean: number[];
  query: number[];
  /** The clean set's last rows an incremental pass encodes (Rows.Fresh): the joined ones. */
  fresh?: number[];
  /** Kept rows an adaptive pass encodes after them, per sequence (as reencode.wgsl lists them). */
  reencoded?: number[][];
}

const countsOf = (batch: Batch, kind: Rows): number[] =>
  kind === Rows.Clean
    ? batch.clean
    : kind === Rows.Query
      ? batch.query
      : batch.fresh!.map((m, b) => m + (batch.reencoded?.[b].length ?? 0));
/**
 * Where row i of sequence b's rows of `kind` sits in the clean set's tokens and positions: a
 * fresh row at the set's tail, or a re-encoded one at its own row.
 */
const cleanSetRow = (batch: Batch, kind: Rows, b: number, i: number): number => {
  if (kind !== Rows.Fresh) return b * batch.L + i;
  const joined = batch.fresh![b];
  return b * batch.L + (i < joined ? batch.clean[b] - joined + i : batch.reencoded![b][i - joined]);
};

/** The first n of sequence b's rows of `kind`, from a [batch, L] buffer of the clean set's tokens or positions (or of the queries'). */
const rowsAt = (buf: Uint32Array, batch: Batch, kind: Rows, b: number, n: number): Uint32Array =>
  Uint32Array.from({ length: n }, (_, i) => buf[cleanSetRow(batch, kind, b, i)]);

/** Write the re-encoded rows of `batch` and the fresh counts they add to into `lengths`, as reencode.wgsl does. */
function writeReencoded(ws: Workspace, batch: Batch): void {
  if (!batch.reencoded) return;
  const B = batch.clean.length;
  ws.device.queue.writeBuffer(ws.lengths, 4 * 2 * B, Uint32Array.from(countsOf(batch, Rows.Fresh)));
  batch.reencoded.forEach(
    (rows, b) =>
      rows.length && ws.device.queue.writeBuffer(ws.lengths, 4 * (4 * B + b * batch.L), Uint32Array.from(rows)),
  );
}
const describeBatch = (batch: Batch): string => `L=${batch.L} clean=[${batch.clean}] query=[${batch.query}]`;

interface Harness {
  ws: Workspace;
  /** A storage buffer holding `data`, readable back. */
  buffer(label: string, data: Float32Array | Uint32Array): GPUBuffer;
  /** The same, seen as a dense tensor of `shape`. */
  tensor(label: string, data: Float32Array | Uint32Array, shape: number[], dtype?: GpuDtype): GpuTensor;
  /**
   * Build the dispatches inside a validation error scope, encode them into one compute pass,
   * copy `outputs` to staging buffers in the same encoder: one submit.
   */
  run(build: () => Promise<Dispatch[]>, outputs: (GPUBuffer | GpuTensor)[]): Promise<Float32Array[]>;
}

// Compiled pipelines are shared by every test of this file (one device per worker).
let kernelCache: KernelCache | undefined;

async function withHarness(batch: Batch, body: (h: Harness) => Promise<void>): Promise<void> {
  const { device } = await testGpu();
  if (kernelCache?.device !== device) kernelCache = new KernelCache(device);
  const memory = new GpuMemory(device);
  const STORAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
  const ws = createWorkspace(memory, kernelCache, batch.L, batch.clean.length);
  setBatchShape(
    ws,
    batch.clean,
    batch.query,
    batch.fresh,
    batch.reencoded?.map((r) => r.length),
  );
  writeReencoded(ws, batch);
  const harness: Harness = {
    ws,
    buffer: (label, data) => memory.upload(label, data, STORAGE),
    tensor: (label, data, shape, dtype) =>
      gpuTensor(
        label,
        memory.upload(label, data, STORAGE),
        shape,
        dtype ?? (data instanceof Uint32Array ? 'u32' : 'f32'),
      ),
    run: async (build, outputs) =>
      (
        await runAndRead(
          memory,
          'kernel test',
          build,
          outputs.map((t) => ('buffer' in t ? t.buffer : t)),
        )
      ).map((bytes) => new Float32Array(bytes)),
  };
  try {
    await body(harness);
  } finally {
    memory.releaseAll();
  }
}

// ---------------------------------------------------------------------------------------------
// Data and layout helpers.

function normals(count: number, seed: number, std = 1, mean = 0): Float32Array {
  const normal = seededNormal(seed);
  return Float32Array.from({ length: count }, () => mean + std * normal());
}

const filled = (count: number, value: number): Float32Array => new Float32Array(count).fill(value);

/** Rows 0..count-1 of sequence b in a [batch, rowsPerSeq, width] buffer. */
const rowsOfSeq = (buf: Float32Array, b: number, count: number, rowsPerSeq: number, width: number): Float32Array =>
  buf.slice(b * rowsPerSeq * width, (b * rowsPerSeq + count) * width);

/** Columns offset..offset+cols-1 of the first `count` rows of sequence b. */
function columnsOfSeq(
  buf: Float32Array,
  b: number,
  count: number,
  L: number,
  stride: number,
  offset: number,
  cols: number,
): Float32Array {
  const out = new Float32Array(count * cols);
  for (let i = 0; i < count; i++)
    out.set(buf.subarray((b * L + i) * stride + offset, (b * L + i) * stride + offset + cols), i * cols);
  return out;
}

const placeSeq = (buf: Float32Array, b: number, rowsPerSeq: number, width: number, rows: Float32Array): void =>
  buf.set(rows, b * rowsPerSeq * width);

/** Does element i of a [.., rowsPerSeq, width] buffer lie in a valid row (and in columns [c0, c1))? */
function ownedBy(
  counts: readonly number[],
  rowsPerSeq: number,
  width: number,
  c0 = 0,
  c1 = width,
): (i: number) => boolean {
  return (i) => {
    const row = Math.floor(i / width);
    const col = i % width;
    const b = Math.floor(row / rowsPerSeq);
    return b < counts.length && row % rowsPerSeq < counts[b] && col >= c0 && col < c1;
  };
}

/** Fill whole rows i >= counts[b] of each sequence with `value(i)`. */
function fillPadding(
  buf: Float32Array | Uint32Array,
  counts: readonly number[],
  L: number,
  width: number,
  value: (row: number) => number,
): void {
  counts.forEach((n, b) => {
    for (let i = n; i < L; i++) buf.fill(value(i), (b * L + i) * width, (b * L + i + 1) * width);
  });
}

/** Valid positions in [0, L) (with 0 and L-1 present when there is room), garbage in padding rows. */
function randomPositions(counts: readonly number[], L: number, seed: number): Uint32Array {
  const u = seededUniform(seed);
  const pos = new Uint32Array(counts.length * L).fill(0xffffff);
  counts.forEach((n, b) => {
    for (let i = 0; i < n; i++) pos[b * L + i] = Math.floor(u() * L);
  });
  const longest = counts.indexOf(Math.max(...counts));
  if (counts[longest] >= 1) pos[longest * L] = L - 1;
  if (counts[longest] >= 2) pos[longest * L + 1] = 0;
  return pos;
}

/** A seeded ragged batch of 1..3 sequences: the first has all L clean rows, the others 1..L; 0..L query rows. */
function randomBatch(seed: number, maxL: number): Batch {
  const u = seededUniform(seed);
  const L = 2 + Math.floor(u() * (maxL - 1));
  const size = 1 + Math.floor(u() * 3);
  const clean = Array.from({ length: size }, () => 1 + Math.floor(u() * L));
  const query = Array.from({ length: size }, () => Math.floor(u() * (L + 1)));
  clean[0] = L;
  query[size - 1] = Math.max(1, query[size - 1]);
  return { L, clean, query };
}

/**
 * `got` must match `want` within `abs + rel * |want|` where `owned(i)`, and be bit-identical to
 * `want` (what the buffer held before the run) everywhere else.
 */
function expectBuffer(
  label: string,
  got: Float32Array,
  want: Float32Array,
  owned: (i: number) => boolean,
  tol: { abs: number; rel: number },
): void {
  expect(got.length, `${label}: length`).toBeGreaterThanOrEqual(want.length);
  const gotBits = new Uint32Array(got.buffer, got.byteOffset, want.length);
  const wantBits = new Uint32Array(want.buffer, want.byteOffset, want.length);
  const wrong: string[] = [];
  const clobbered: string[] = [];
  for (let i = 0; i < want.length; i++) {
    if (owned(i)) {
      if (!(Math.abs(got[i] - want[i]) <= tol.abs + tol.rel * Math.abs(want[i])))
        wrong.push(`[${i}] got ${got[i]}, want ${want[i]}`);
    } else if (gotBits[i] !== wantBits[i]) {
      clobbered.push(`[${i}] was ${want[i]}, now ${got[i]}`);
    }
  }
  expect(wrong.slice(0, 6), `${label}: ${wrong.length} values outside tolerance`).toEqual([]);
  expect(clobbered.slice(0, 6), `${label}: ${clobbered.length} elements it does not own were written`).toEqual([]);
}

// ---------------------------------------------------------------------------------------------

describe(`embed kernel (${runtime}) vs reference embed`, () => {
  /** `blocks`: the table's row boundaries when it is uploaded in blocks of rows (one dispatch each); `half`: stored as f16. */
  const cases: { name: string; V: number; D: number; batch: Batch; kind?: Rows; blocks?: number[]; half?: boolean }[] =
    [
      { name: 'single row, D = 1', V: 11, D: 1, batch: { L: 5, clean: [1], query: [0] } },
      {
        name: "fresh rows: the clean set's last tokens, packed",
        V: 40,
        D: 66,
        batch: { L: 30, clean: [30, 9, 12], query: [1, 1, 1], fresh: [4, 9, 0] },
        kind: Rows.Fresh,
      },
      {
        name: 'fresh rows and re-encoded ones, listed',
        V: 40,
        D: 33,
        batch: { L: 30, clean: [30, 9, 12], query: [1, 1, 1], fresh: [4, 1, 0], reencoded: [[7, 0, 25], [], []] },
        kind: Rows.Fresh,
      },
      {
        name: 'full seqStride and ragged, D = 65 (two workgroups)',
        V: 97,
        D: 65,
        batch: { L: 70, clean: [70, 1, 33], query: [0, 5, 70] },
      },
      { name: 'D = 96, L = 40', V: 50, D: 96, batch: { L: 40, clean: [17, 40], query: [40, 0] } },
      { name: 'random shape', V: 23, D: 7, batch: randomBatch(11, 70) },
      {
        name: 'f16 table, D = 7 (rows straddle u32 words)',
        V: 23,
        D: 7,
        batch: { L: 30, clean: [30, 12], query: [0, 0] },
        half: true,
      },
      {
        name: 'three blocks of rows [0, 9), [9, 20), [20, 23), D = 65',
        V: 23,
        D: 65,
        batch: { L: 40, clean: [40, 7], query: [0, 0] },
        blocks: [9, 20],
      },
      {
        name: 'two f16 blocks of rows [0, 31), [31, 97), D = 5',
        V: 97,
        D: 5,
        batch: { L: 50, clean: [3, 50], query: [0, 0] },
        blocks: [31],
        half: true,
      },
    ];
  for (const { name, V, D, batch, kind = Rows.Clean, blocks, half } of cases) {
    it(`${name}: ${describeBatch(batch)}`, async () => {
      const { L, clean } = batch;
      const rows = countsOf(batch, kind);
      let table = normals(V * D, 1);
      const bits = new Uint16Array(encodeFloats(table, 'F16').buffer);
      if (half) table = decodeFloats(new Uint8Array(bits.buffer), 'F16');
      const u = seededUniform(2);
      const tokens = new Uint32Array(clean.length * L).map(() => Math.floor(u() * V));
      fillPadding(tokens, clean, L, 1, (i) => V + 1000 + i);
      const initial = filled(clean.length * L * D, SENTINEL);
      const bounds = [0, ...(blocks ?? []), V];
      await withHarness(batch, async (h) => {
        const out = h.tensor('x', initial, [clean.length, L, D]);
        const tokenBuf = h.tensor('tokens', tokens, [clean.length, L]);
        const block = (first: number, end: number): GpuTensor => {
          if (!half) return h.tensor('embedding', table.slice(first * D, end * D), [end - first, D]);
          const words = new Uint16Array((end - first) * D + (((end - first) * D) % 2));
          words.set(bits.subarray(first * D, end * D));
          return h.tensor('embedding', new Uint32Array(words.buffer), [end - first, D], 'f16');
        };
        const [got] = await h.run(
          () =>
            Promise.all(
              bounds.slice(0, -1).map((first, i) =>
                embedDispatch(h.ws, {
                  rows: kind,
                  tokens: tokenBuf,
                  embedding: block(first, bounds[i + 1]),
                  firstToken: first,
                  out,
                }),
              ),
            ),
          [out],
        );
        const want = initial.slice();
        rows.forEach((n, b) =>
          placeSeq(want, b, L, D, embed({ shape: [V, D], data: table }, rowsAt(tokens, batch, kind, b, n))),
        );
        expectBuffer('embed', got, want, ownedBy(rows, L, D), { abs: 0, rel: 0 });
      });
    });
  }
});

interface MatmulCase {
  name: string;
  K: number;
  N: number;
  kind: Rows;
  batch: Batch;
  bias?: boolean;
  activation?: 'gelu' | 'silu';
  /** Gate offset in the modulation buffer: out += gate * result. */
  gateOffset?: number;
  /** A window of rows: rows first .. first + rows - 1 of each sequence, into an output of `rows` rows per sequence (the logits). */
  window?: { first: number; rows: number };
  /** The output (and the bias) are columns offset .. offset + N - 1 of `width` columns (a block of the output layer). */
  columnsOf?: { offset: number; width: number };
  /** Spread of x (default 1): large pre-activations test the gelu clamp and silu's exp. */
  xStd?: number;
  /** Mean of x (default 0): a LayerNorm prologue must not lose the spread to it. */
  xMean?: number;
  /** LayerNorm prologue: gain and shift offsets in the constants. */
  norm?: [number, number];
  /** Rotary epilogue over heads of headDim (weight rows paired by pairRotaryRows). */
  rotary?: RotaryColumns & { headDim: number };
}
const matmulCases: MatmulCase[] = [
  {
    name: 'VEC4, 3 row tiles (70 rows), N = 33',
    K: 32,
    N: 33,
    kind: Rows.Clean,
    batch: { L: 70, clean: [70, 1, 40], query: [2, 70, 3] },
  },
  { name: 'K = 3 (scalar path), N = 5', K: 3, N: 5, kind: Rows.Clean, batch: { L: 9, clean: [9, 4], query: [0, 9] } },
  {
    name: 'K = 1, N = 70, bias, query rows',
    K: 1,
    N: 70,
    kind: Rows.Query,
    batch: { L: 37, clean: [37, 2], query: [1, 37] },
    bias: true,
  },
  { name: 'K = 2, N = 2, single row', K: 2, N: 2, kind: Rows.Clean, batch: { L: 1, clean: [1], query: [1] } },
  {
    name: 'mlp.0: bias + gelu, N = 4D',
    K: 96,
    N: 384,
    kind: Rows.Clean,
    batch: { L: 45, clean: [45, 13], query: [3, 3] },
    bias: true,
    activation: 'gelu',
  },
  {
    name: 'mlp.2: K = 384, bias + gated residual',
    K: 384,
    N: 96,
    kind: Rows.Query,
    batch: { L: 41, clean: [2, 41], query: [41, 10] },
    bias: true,
    gateOffset: 2 * 96 + 3,
  },
  {
    name: 'gated residual, K % 4 != 0, no bias',
    K: 30,
    N: 33,
    kind: Rows.Clean,
    batch: { L: 35, clean: [35, 1, 34], query: [1, 1, 1] },
    gateOffset: 5,
  },
  {
    name: 'bias + silu, K = 30, N = 61, query rows',
    K: 30,
    N: 61,
    kind: Rows.Query,
    batch: { L: 50, clean: [3, 50, 1], query: [50, 0, 17] },
    bias: true,
    activation: 'silu',
  },
  {
    name: 'gelu without bias, K = 5, N = 7',
    K: 5,
    N: 7,
    kind: Rows.Clean,
    batch: { L: 33, clean: [33, 32], query: [0, 0] },
    activation: 'gelu',
  },
  {
    name: 'gelu at pre-activations up to |60|',
    K: 12,
    N: 40,
    kind: Rows.Clean,
    batch: { L: 30, clean: [30, 11], query: [1, 1] },
    bias: true,
    activation: 'gelu',
    xStd: 20,
  },
  {
    name: 'silu at pre-activations up to |60|',
    K: 13,
    N: 40,
    kind: Rows.Query,
    batch: { L: 30, clean: [1, 1], query: [11, 30] },
    activation: 'silu',
    xStd: 20,
  },
  {
    name: 'logits window, query rows 8..19, N = 97',
    K: 36,
    N: 97,
    kind: Rows.Query,
    batch: { L: 40, clean: [40, 1, 7], query: [3, 33, 17] },
    bias: true,
    window: { first: 8, rows: 12 },
  },
  {
    name: 'logits window, clean rows 0..32, K = 7, N = 3',
    K: 7,
    N: 3,
    kind: Rows.Clean,
    batch: { L: 70, clean: [5, 38], query: [70, 70] },
    window: { first: 0, rows: 33 },
  },
  {
    name: 'logits window and block: columns 40..79 of 101, query rows 30..39',
    K: 36,
    N: 40,
    kind: Rows.Query,
    batch: { L: 40, clean: [40, 1, 7], query: [3, 40, 35] },
    bias: true,
    window: { first: 30, rows: 10 },
    columnsOf: { offset: 40, width: 101 },
  },
  { name: 'random shape, bias', K: 21, N: 45, kind: Rows.Clean, batch: randomBatch(31, 70), bias: true },
  {
    name: 'random shape, query rows, gelu',
    K: 44,
    N: 9,
    kind: Rows.Query,
    batch: randomBatch(32, 70),
    bias: true,
    activation: 'gelu',
  },
  {
    name: 'rotary q | k of a packed qkv (period 3D), 3 heads of 8',
    K: 24,
    N: 72,
    kind: Rows.Clean,
    batch: { L: 70, clean: [70, 1, 23], query: [0, 1, 2] },
    rotary: { headDim: 8, period: 72, count: 48 },
  },
  {
    name: 'rotary k of k | v with bias, heads of 6 (a rotated block ends mid four columns)',
    K: 30,
    N: 60,
    kind: Rows.Clean,
    batch: { L: 37, clean: [1, 37, 9], query: [3, 3, 3] },
    bias: true,
    rotary: { headDim: 6, period: 60, count: 30 },
  },
  {
    name: 'rotary queries, headDim 2, bias, query rows, K % 4 != 0',
    K: 17,
    N: 10,
    kind: Rows.Query,
    batch: { L: 40, clean: [40, 2], query: [3, 40] },
    bias: true,
    rotary: { headDim: 2, period: 10, count: 10 },
  },
  {
    name: 'rotary keys of three k | v layers in one projection, headDim 16',
    K: 32,
    N: 192,
    kind: Rows.Clean,
    batch: randomBatch(33, 70),
    rotary: { headDim: 16, period: 64, count: 32 },
  },
  {
    name: "rotary on fresh rows, at the clean set's last positions",
    K: 16,
    N: 48,
    kind: Rows.Fresh,
    batch: { L: 40, clean: [40, 13, 6], query: [1, 1, 1], fresh: [5, 13, 0] },
    rotary: { headDim: 8, period: 48, count: 32 },
  },
  {
    name: 'rotary on fresh and re-encoded rows, at their positions',
    K: 16,
    N: 48,
    kind: Rows.Fresh,
    batch: { L: 40, clean: [40, 13, 6], query: [1, 1, 1], fresh: [2, 3, 1], reencoded: [[30, 3], [0, 9, 2], [4]] },
    rotary: { headDim: 8, period: 48, count: 32 },
  },
  {
    name: 'LayerNorm prologue, 70 rows, x with mean 1.5',
    K: 32,
    N: 40,
    kind: Rows.Clean,
    batch: { L: 70, clean: [70, 1, 29], query: [3, 70, 0] },
    norm: [5, 3 * 32 + 1],
    xMean: 1.5,
    xStd: 2,
  },
  {
    name: 'LayerNorm prologue, K % 4 != 0, query rows, bias + gelu',
    K: 45,
    N: 33,
    kind: Rows.Query,
    batch: { L: 33, clean: [5, 33, 4], query: [33, 2, 1] },
    norm: [45, 0],
    bias: true,
    activation: 'gelu',
  },
  {
    name: 'LayerNorm prologue and rotary (attn_q), K = 1',
    K: 1,
    N: 8,
    kind: Rows.Query,
    batch: { L: 20, clean: [20, 7], query: [1, 20] },
    norm: [2, 9],
    rotary: { headDim: 4, period: 8, count: 8 },
  },
  {
    name: 'LayerNorm prologue, K = 201 split over lanes, logits window rows 8..37, block columns 3..99 of 101',
    K: 201,
    N: 97,
    kind: Rows.Query,
    batch: { L: 40, clean: [40, 1, 7], query: [3, 33, 17] },
    norm: [7, 300],
    bias: true,
    window: { first: 8, rows: 30 },
    columnsOf: { offset: 3, width: 101 },
    xMean: -3,
  },
  {
    name: 'LayerNorm prologue, random shape',
    K: 27,
    N: 50,
    kind: Rows.Clean,
    batch: randomBatch(34, 70),
    norm: [27, 5],
  },
];
const describeMatmul = (c: MatmulCase): string => `${c.name}: K=${c.K} N=${c.N} ${describeBatch(c.batch)}`;

/**
 * Run one matmul case (by `variant`, else the workspace default) against the reference; with
 * `half`, the weight is stored as f16 bits (the reference uses the same values, widened).
 */
async function checkMatmul(c: MatmulCase, variant?: MatmulVariant, half = false): Promise<void> {
  const { K, N, kind, batch } = c;
  const { L } = batch;
  const counts = countsOf(batch, kind);
  const first = c.window?.first ?? 0;
  const rowsPerSeq = c.window?.rows ?? L;
  const outRows = counts.map((n) => Math.min(Math.max(n - first, 0), rowsPerSeq));
  const { offset, width } = c.columnsOf ?? { offset: 0, width: N };
  const x = normals(counts.length * L * K, 7, c.xStd ?? 1, c.xMean ?? 0);
  fillPadding(x, counts, L, K, () => 1e6);
  let weight = normals(N * K, 8, 1 / Math.sqrt(K));
  // f16 bits padded to whole u32 words, as GpuModel uploads them.
  const halfBits = new Uint16Array(N * K + ((N * K) % 2));
  if (half) {
    halfBits.set(new Uint16Array(encodeFloats(weight, 'F16').buffer));
    weight = decodeFloats(new Uint8Array(halfBits.buffer, 0, 2 * N * K), 'F16');
  }
  const bias = normals(width, 9, 0.5);
  const blockBias = bias.subarray(offset, offset + N);
  const modulation = normals(6 * Math.max(N, K) + 8, 10, 0.5);
  // The clean set's positions (fresh rows read at its tail), or the query positions.
  const positions = randomPositions(kind === Rows.Query ? counts : batch.clean, L, 12);
  // The kernel's weight rows (and bias) in the rotary layout; `order[c]` is the natural column the paired column c holds.
  const paired = (data: Float32Array) =>
    c.rotary ? pairRotaryRows({ shape: [N, data.length / N], data }, c.rotary.headDim, c.rotary).data : data;
  const order = paired(Float32Array.from({ length: N }, (_, i) => i));
  // A LayerNorm prologue's colGain | colShift: the kernel's weight times the gain and the shift.
  const normColumns = (w: Float32Array, [gain, shift]: [number, number]) => {
    const columns = new Float32Array(2 * N);
    for (let n = 0; n < N; n++) {
      let [colGain, colShift] = [0, 0];
      for (let k = 0; k < K; k++) {
        colGain += w[n * K + k] * modulation[gain + k];
        colShift += w[n * K + k] * modulation[shift + k];
      }
      [columns[n], columns[N + n]] = [colGain, colShift];
    }
    return columns;
  };
  const rotaryAt = modulation.length;
  const columnsAt = rotaryAt + (c.rotary ? L * c.rotary.headDim : 0);
  const constants = new Float32Array([
    ...modulation,
    ...(c.rotary ? rotaryTable(L, c.rotary.headDim) : []),
    ...(c.norm ? normColumns(paired(weight), c.norm) : []),
  ]);
  // The output buffer is [batch, rowsPerSeq, width]: writes past the window's rows or the block's columns show.
  const initial =
    c.gateOffset !== undefined
      ? normals(counts.length * rowsPerSeq * width, 11)
      : filled(counts.length * rowsPerSeq * width, SENTINEL);
  await withHarness(batch, async (h) => {
    const out = h.tensor('out', initial, [counts.length, rowsPerSeq, width]);
    const xBuf = h.tensor('x', x, [counts.length, L, K]);
    // The f16 bits in the rotary layout (pairRotaryRows moves a stored tensor's bytes).
    const pairedHalf = new Uint8Array(halfBits.byteLength);
    const bits = new Uint8Array(halfBits.buffer, 0, 2 * N * K);
    pairedHalf.set(
      c.rotary ? pairRotaryRows({ shape: [N, K], dtype: 'F16', bytes: bits }, c.rotary.headDim, c.rotary).bytes : bits,
    );
    const weightBuf = half
      ? h.tensor('weight', new Uint32Array(pairedHalf.buffer), [N, K], 'f16')
      : h.tensor('weight', paired(weight), [N, K]);
    const biasBuf = c.bias
      ? columns(
          h.tensor(
            'bias',
            Float32Array.from([...bias.subarray(0, offset), ...paired(blockBias), ...bias.subarray(offset + N)]),
            [width],
          ),
          offset,
          N,
        )
      : undefined;
    const constantsBuf = h.tensor('constants', constants, [constants.length]);
    const rotary = c.rotary && {
      positions: h.tensor('positions', positions, [counts.length, L]),
      tableOffset: rotaryAt,
      ...c.rotary,
    };
    const [got] = await h.run(
      async () => [
        await matmulDispatch(h.ws, {
          label: 'mm',
          rows: kind,
          x: xBuf,
          weight: weightBuf,
          out: columns(out, offset, N),
          bias: biasBuf,
          activation: c.activation,
          constants: constantsBuf,
          norm: c.norm && { gainOffset: c.norm[0], columnsOffset: columnsAt },
          gatedResidual: c.gateOffset !== undefined ? { gateOffset: c.gateOffset } : undefined,
          rotary,
          firstRow: c.window?.first,
          variant,
        }),
      ],
      [out],
    );
    const want = initial.slice();
    outRows.forEach((n, b) => {
      let rows = rowsOfSeq(x, b, first + n, L, K).subarray(first * K);
      if (c.norm) {
        const [gain, shift] = c.norm;
        rows = layerNorm(rows, n, K).map((v, i) => v * modulation[gain + (i % K)] + modulation[shift + (i % K)]);
      }
      let y = linear(rows, n, K, weight, N, c.bias ? blockBias : undefined);
      if (c.activation === 'gelu') y = geluTanh(y);
      if (c.activation === 'silu') y = silu(y);
      if (c.rotary) {
        const { headDim, period, count } = c.rotary;
        const rowPositions = rowsAt(positions, batch, kind, b, first + n).subarray(first);
        for (let at = 0; at < N; at += period) y = rope(y, n, count / headDim, headDim, rowPositions, N, at);
        const natural = y;
        y = natural.map((_, i) => natural[Math.floor(i / N) * N + order[i % N]]);
      }
      if (c.gateOffset !== undefined) {
        y = gatedResidual(
          columnsOfSeq(initial, b, n, rowsPerSeq, width, offset, N),
          y,
          modulation.subarray(c.gateOffset, c.gateOffset + N),
          n,
          N,
        );
      }
      for (let i = 0; i < n; i++) want.set(y.subarray(i * N, (i + 1) * N), (b * rowsPerSeq + i) * width + offset);
    });
    expectBuffer(
      'matmul',
      got,
      want,
      ownedBy(outRows, rowsPerSeq, width, offset, offset + N),
      K > 128 ? LONG_SUM : TIGHT,
    );
  });
}

describe(`matmul kernel (${runtime}) vs reference linear + epilogue`, () => {
  for (const c of matmulCases) it(describeMatmul(c), () => checkMatmul(c));
});

/** Shapes at the edges of the variants' blocks: 64x64 (tiled, K tiles of 16; tall, 16x8 per thread), 4/8/16x256 (wide), 4x64 split over 16 K lanes (splitk). */
const matmulEdgeCases: MatmulCase[] = [
  {
    name: '130 rows (3 tiles of 64), K = 100 (K tile of 16 + 4), N = 131, bias + gelu',
    K: 100,
    N: 131,
    kind: Rows.Clean,
    batch: { L: 130, clean: [130, 65, 1], query: [1, 1, 1] },
    bias: true,
    activation: 'gelu',
  },
  {
    name: 'K = 37 (scalar path over 3 K tiles), N = 200, gated residual, query rows',
    K: 37,
    N: 200,
    kind: Rows.Query,
    batch: { L: 66, clean: [1, 66], query: [66, 64] },
    gateOffset: 7,
  },
  {
    name: 'few rows, N = 257 (a wide block + 1), K = 1000 (250 steps over 16 lanes)',
    K: 1000,
    N: 257,
    kind: Rows.Query,
    batch: { L: 20, clean: [20, 20, 20], query: [5, 1, 4] },
    bias: true,
  },
  {
    name: 'few rows, logits window, N = 300, K = 66 (scalar path)',
    K: 66,
    N: 300,
    kind: Rows.Query,
    batch: { L: 12, clean: [12, 3], query: [2, 3] },
    bias: true,
    window: { first: 0, rows: 3 },
  },
  {
    name: 'few rows, block of columns 7..263 of 270, K = 64, gated residual',
    K: 64,
    N: 257,
    kind: Rows.Query,
    batch: { L: 12, clean: [12, 3], query: [2, 3] },
    bias: true,
    gateOffset: 3,
    columnsOf: { offset: 7, width: 270 },
  },
  {
    name: '8 rows (wide: 8 per thread), N = 260, K = 64, gelu',
    K: 64,
    N: 260,
    kind: Rows.Query,
    batch: { L: 16, clean: [16, 16], query: [8, 6] },
    bias: true,
    activation: 'gelu',
  },
  {
    name: '16 rows (wide: 16 per thread), N = 70, K = 50, gated residual',
    K: 50,
    N: 70,
    kind: Rows.Query,
    batch: { L: 16, clean: [3, 16], query: [9, 16] },
    gateOffset: 11,
  },
];

// The representative cases: the vec4 path, the scalar path with an odd N * K (with f16 weights: a
// padded last word), the epilogues, and a block edge of each variant.
const representativeCases = [
  matmulCases[0],
  matmulCases[1],
  matmulCases[6],
  matmulCases[11],
  matmulCases[17],
  matmulCases[22],
  matmulCases[25],
  ...matmulEdgeCases,
];

// Each variant over every case on SwiftShader (Node and Chromium). On lavapipe, where LLVM compiles
// each pipeline (seconds for each variant and epilogue: the whole matrix took 18 minutes there),
// each variant over the representative cases; the default plan's describe above runs every case.
const variantCases =
  inject('webgpuAdapter') === 'llvmpipe' ? representativeCases : [...matmulCases, ...matmulEdgeCases];
for (const variant of MATMUL_VARIANTS) {
  describe(`matmul kernel, ${variant} variant (${runtime}) vs reference linear + epilogue`, () => {
    for (const c of variantCases) it(describeMatmul(c), () => checkMatmul(c, variant));
  });
}

// f16 weight storage, each variant over the representative cases.
for (const variant of MATMUL_VARIANTS) {
  describe(`matmul kernel, ${variant} variant, f16 weights (${runtime}) vs reference`, () => {
    for (const c of representativeCases) it(describeMatmul(c), () => checkMatmul(c, variant, true));
  });
}

/** Buffers of the given widths; q, k and v are [buffer index, float offset] into them. */
interface Layout {
  widths: number[];
  q: [number, number];
  k: [number, number];
  v: [number, number];
}
const packedQkv = (D: number): Layout => ({ widths: [3 * D], q: [0, 0], k: [0, D], v: [0, 2 * D] });
const queryAndKv = (D: number): Layout => ({ widths: [D, 2 * D], q: [0, 0], k: [1, 0], v: [1, D] });
const scattered = (D: number): Layout => ({ widths: [D + 5, D + 3, 2 * D + 1], q: [0, 5], k: [1, 3], v: [2, D + 1] });
interface AttentionCase {
  name: string;
  nHeads: number;
  headDim: number;
  kind: Rows;
  layout: (D: number) => Layout;
  batch: Batch;
  /**
   * Spread of q, k, v (default 1.5). Large values make the softmax peaky: float32 rounding
   * of a score s moves its weight by about |s| * 6e-8, so that case gets the 1e-4 bound.
   */
  std?: number;
}
const attentionCases: AttentionCase[] = [
  {
    name: 'self-attention, packed qkv, full and single-key sequences',
    nHeads: 4,
    headDim: 8,
    kind: Rows.Clean,
    layout: packedQkv,
    batch: { L: 70, clean: [70, 1, 23], query: [0, 1, 2] },
  },
  {
    name: 'self-attention, one key, headDim 2',
    nHeads: 1,
    headDim: 2,
    kind: Rows.Clean,
    layout: packedQkv,
    batch: { L: 5, clean: [1], query: [5] },
  },
  {
    name: 'cross-attention, odd headDim 5',
    nHeads: 3,
    headDim: 5,
    kind: Rows.Query,
    layout: queryAndKv,
    batch: { L: 37, clean: [1, 37, 9], query: [36, 1, 20] },
  },
  {
    name: 'cross-attention, headDim 64',
    nHeads: 1,
    headDim: 64,
    kind: Rows.Query,
    layout: queryAndKv,
    batch: { L: 40, clean: [40, 2, 5], query: [3, 40, 0] },
  },
  {
    name: 'self-attention, D = 96 (6 heads of 16)',
    nHeads: 6,
    headDim: 16,
    kind: Rows.Clean,
    layout: packedQkv,
    batch: { L: 50, clean: [50, 31], query: [1, 1] },
  },
  {
    name: 'cross-attention, q/k/v in three strided buffers',
    nHeads: 2,
    headDim: 24,
    kind: Rows.Query,
    layout: scattered,
    batch: { L: 30, clean: [30, 4, 1], query: [7, 30, 29] },
  },
  {
    name: 'self-attention, strided buffers',
    nHeads: 3,
    headDim: 4,
    kind: Rows.Clean,
    layout: scattered,
    batch: { L: 22, clean: [3, 22], query: [22, 3] },
  },
  {
    name: 'peaky softmax (scores of order 100)',
    nHeads: 2,
    headDim: 32,
    kind: Rows.Clean,
    layout: packedQkv,
    batch: { L: 45, clean: [45, 17], query: [1, 1] },
    std: 4,
  },
  {
    name: 'random shape, cross-attention',
    nHeads: 2,
    headDim: 10,
    kind: Rows.Query,
    layout: queryAndKv,
    batch: randomBatch(51, 70),
  },
];
const describeAttention = (c: AttentionCase): string =>
  `${c.name}: H=${c.nHeads} dh=${c.headDim} ${describeBatch(c.batch)}`;

/** Run one attention case (by `variant`, else the workspace default) against the reference. */
async function checkAttention(c: AttentionCase, variant?: AttentionVariant): Promise<void> {
  const { nHeads, headDim, kind, batch } = c;
  const { L, clean } = batch;
  const D = nHeads * headDim;
  const layout = c.layout(D);
  const queries = countsOf(batch, kind);
  const data = layout.widths.map((width, i) => normals(clean.length * L * width, 20 + i, c.std ?? 1.5));
  // Padded keys: zero or +-1e3 keys with 1e6 values; any weight on them ruins the output.
  const u = seededUniform(14);
  const padKey = (i: number) => (i % 2 ? (u() < 0.5 ? -1e3 : 1e3) : 0);
  for (const [[buf, offset], value] of [
    [layout.k, padKey],
    [layout.v, () => 1e6],
  ] as const) {
    const width = layout.widths[buf];
    clean.forEach((n, b) => {
      for (let i = n; i < L; i++) {
        for (let d = 0; d < D; d++) data[buf][(b * L + i) * width + offset + d] = value(i);
      }
    });
  }
  const initial = filled(clean.length * L * D, SENTINEL);
  await withHarness(batch, async (h) => {
    const buffers = data.map((d, i) => h.tensor(`qkv${i}`, d, [clean.length, L, layout.widths[i]]));
    const slice = ([buf, offset]: [number, number]) => columns(buffers[buf], offset, D);
    const out = h.tensor('out', initial, [clean.length, L, D]);
    const [got] = await h.run(
      async () => [
        await attentionDispatch(h.ws, {
          label: 'attn',
          queries: kind,
          q: slice(layout.q),
          k: slice(layout.k),
          v: slice(layout.v),
          out,
          nHeads,
          headDim,
          variant,
        }),
      ],
      [out],
    );
    const want = initial.slice();
    const cols = ([buf, offset]: [number, number], b: number, count: number) =>
      columnsOfSeq(data[buf], b, count, L, layout.widths[buf], offset, D);
    clean.forEach((n, b) => {
      const m = queries[b];
      placeSeq(
        want,
        b,
        L,
        D,
        attention(cols(layout.q, b, m), cols(layout.k, b, n), cols(layout.v, b, n), m, n, nHeads, headDim),
      );
    });
    expectBuffer('attention', got, want, ownedBy(queries, L, D), c.std ? LONG_SUM : TRANSCENDENTAL);
  });
}

describe(`attention kernel (${runtime}) vs reference attention`, () => {
  for (const c of attentionCases) it(describeAttention(c), () => checkAttention(c));
});

/** Shapes at the edges of the flash variant's tiles: 64 queries per workgroup, 2048 / headDim (at most 32) keys per tile. */
const attentionEdgeCases: AttentionCase[] = [
  {
    name: '130 queries and keys (3 query tiles, 5 key tiles), headDim 64',
    nHeads: 2,
    headDim: 64,
    kind: Rows.Clean,
    layout: packedQkv,
    batch: { L: 130, clean: [130, 33], query: [1, 1] },
  },
  {
    name: 'headDim 100 (key tiles of 20), 65 queries over 70 keys',
    nHeads: 1,
    headDim: 100,
    kind: Rows.Query,
    layout: queryAndKv,
    batch: { L: 70, clean: [70, 21], query: [65, 70] },
  },
  {
    name: 'single query, single key',
    nHeads: 3,
    headDim: 4,
    kind: Rows.Query,
    layout: scattered,
    batch: { L: 1, clean: [1], query: [1] },
  },
];

for (const variant of ATTENTION_VARIANTS) {
  describe(`attention kernel, ${variant} variant (${runtime}) vs reference attention`, () => {
    for (const c of [...attentionCases, ...attentionEdgeCases])
      it(describeAttention(c), () => checkAttention(c, variant));
  });
}

describe(`tensor views (${runtime}): a wrong shape fails where the op is built`, () => {
  it('names the op, the argument and both shapes', async () => {
    await withHarness({ L: 5, clean: [5, 2], query: [1, 1] }, async (h) => {
      const x = h.tensor('x', filled(2 * 5 * 8, 0), [2, 5, 8]);
      const weight = h.tensor('w', filled(6 * 7, 0), [6, 7]);
      const out = h.tensor('out', filled(2 * 5 * 6, 0), [2, 5, 6]);
      const wrong = async (build: () => Promise<unknown>, message: RegExp) => {
        const e = await build().then(
          () => undefined,
          (err: unknown) => err,
        );
        expect(e).toBeInstanceOf(PgmError);
        expect((e as PgmError).code).toBe('shape');
        expect((e as PgmError).message).toMatch(message);
      };
      await wrong(
        () => matmulDispatch(h.ws, { label: 'proj', rows: Rows.Clean, x, weight, out }),
        /^matmul proj: x x is \[2, 5, 8\], expected \[2, 5, 7\]$/,
      );
      const x8 = h.tensor('x8', filled(2 * 5 * 7, 0), [2, 5, 7]);
      const norm = { constants: h.tensor('c', filled(10, 0), [10]), norm: { gainOffset: 0, columnsOffset: 4 } };
      await wrong(
        () => matmulDispatch(h.ws, { label: 'proj', rows: Rows.Clean, x: x8, weight, out, ...norm }),
        /^matmul proj: the LayerNorm's gain \(7 floats at 0\) or columns \(12 at 4\) run past the 10 constants$/,
      );
      const strided = columns(h.tensor('qkv', filled(2 * 5 * 24, 0), [2, 5, 24]), 8, 8);
      await wrong(
        () =>
          matmulDispatch(h.ws, {
            label: 'proj',
            rows: Rows.Clean,
            x: strided,
            weight: h.tensor('w8', filled(6 * 8, 0), [6, 8]),
            out,
          }),
        /strided view .* needs dense rows/,
      );
      await wrong(
        () =>
          attentionDispatch(h.ws, {
            label: 'a',
            queries: Rows.Clean,
            q: strided,
            k: strided,
            v: strided,
            out: x,
            nHeads: 2,
            headDim: 3,
          }),
        /^attention a: q qkv\[8:16\] is \[2, 5, 8\], expected \[2, 5, 6\]$/,
      );
      expect(() => columns(strided, 4, 8)).toThrow(/columns 4\.\.11 are out of range/);
      expect(() => gpuTensor('big', h.buffer('small', filled(4, 0)), [2, 3])).toThrow(
        /needs 24 bytes, its buffer has 16/,
      );
    });
  });
});

describe(`the named host-shader interface (${runtime}): buffers and Params fields by their WGSL names`, () => {
  it('a missing, extra or misspelled binding or Params field is a PgmError naming the kernel and the names', async () => {
    await withHarness({ L: 5, clean: [5, 2], query: [1, 1] }, async (h) => {
      const kernel = await h.ws.kernels.get({ shader: shader('rows.wgsl') });
      expect(kernel.bindings.map((b) => b.name)).toEqual(['dims', 'lengths', 'p', 'src', 'dst']);
      const fields = { width: 3, srcStride: 3, srcOffset: 0, dstStride: 3, dstOffset: 0, count: Rows.Fresh };
      const p = h.ws.memory.upload('p', new Uint8Array(kernel.pack(fields)), GPUBufferUsage.UNIFORM);
      const src = h.buffer('src', filled(30, 0));
      const buffers = { dims: h.ws.dims, lengths: h.ws.lengths, p, src, dst: src };
      const wrong = (act: () => unknown, message: RegExp) => {
        const e = (() => {
          try {
            act();
          } catch (err) {
            return err;
          }
        })();
        expect(e).toBeInstanceOf(PgmError);
        expect((e as PgmError).code).toBe('webgpu');
        expect((e as PgmError).message).toMatch(message);
      };
      expect(kernel.bind('ok', buffers)).toBeDefined();
      const { dst: _dst, ...withoutDst } = buffers;
      wrong(
        () => kernel.bind('append', withoutDst),
        /^append: shader rows\.wgsl's bindings: missing dst \(declared: dims, lengths, p, src, dst\)$/,
      );
      wrong(
        () => kernel.bind('append', { ...buffers, extra: src }),
        /^append: shader rows\.wgsl's bindings: no such extra \(declared: /,
      );
      wrong(
        () => kernel.bind('append', { ...withoutDst, dest: src }),
        /^append: shader rows\.wgsl's bindings: missing dst; no such dest \(declared: /,
      );
      const { count: _count, ...withoutCount } = fields;
      wrong(
        () => kernel.pack(withoutCount),
        /^shader rows\.wgsl: struct Params: missing count \(declared: width, srcStride, srcOffset, dstStride, dstOffset, count\)$/,
      );
      wrong(() => kernel.pack({ ...fields, scale: 1 }), /^shader rows\.wgsl: struct Params: no such scale /);
      wrong(
        () => kernel.pack({ ...withoutCount, cuont: 2 }),
        /^shader rows\.wgsl: struct Params: missing count; no such cuont /,
      );
      wrong(() => kernel.pack(fields, 'Window'), /^shader rows\.wgsl declares no struct Window$/);
      // Fields land at their declared offsets, whatever the order of the record.
      const { count, width, ...rest } = fields;
      expect(Array.from(new Uint32Array(kernel.pack({ count, ...rest, width })).slice(0, 6))).toEqual([
        3,
        3,
        0,
        3,
        0,
        Rows.Fresh,
      ]);
    });
  });
});

describe(`kernel plan (${runtime}): one dispatch follows the row-count bucket and its weight shape at encode time`, () => {
  it('matmul 24x70: splitk, wide, register, tall, tiled in buckets 1-4 .. 33-64, other shapes by ANY_SHAPE; attention: thread, flash alternating', async () => {
    const plan: KernelPlan = {
      matmul: {
        '24x70': ['splitk', 'wide', 'register', 'tall', 'tiled', 'register', 'register'],
        [ANY_SHAPE]: everyBucket('tiled'),
      },
      attention: ['thread', 'flash', 'thread', 'flash', 'thread', 'flash', 'flash'],
    };
    const K = 24;
    const N = 70;
    const nHeads = 2;
    const headDim = 12;
    const batch: Batch = { L: 40, clean: [40, 40], query: [40, 17] };
    const { L } = batch;
    const x = normals(2 * L * K, 30);
    const weight = normals(N * K, 31, 0.2);
    const qkv = normals(2 * L * 3 * K, 32);
    await withHarness(batch, async (h) => {
      h.ws.plan = plan;
      const mmOut = h.tensor('mm.out', filled(2 * L * N, SENTINEL), [2, L, N]);
      const attnOut = h.tensor('attn.out', filled(2 * L * K, SENTINEL), [2, L, K]);
      const qkvBuf = h.tensor('qkv', qkv, [2, L, 3 * K]);
      const slice = (offset: number) => columns(qkvBuf, offset, K);
      const mm = await matmulDispatch(h.ws, {
        label: 'mm',
        rows: Rows.Query,
        x: h.tensor('x', x, [2, L, K]),
        weight: h.tensor('weight', weight, [N, K]),
        out: mmOut,
      });
      const attn = await attentionDispatch(h.ws, {
        label: 'attn',
        queries: Rows.Query,
        q: slice(0),
        k: slice(K),
        v: slice(2 * K),
        out: attnOut,
        nHeads,
        headDim,
      });
      // Another weight shape: not in the plan, so ANY_SHAPE's variant (never run here, only chosen).
      const other = await matmulDispatch(h.ws, {
        label: 'other',
        rows: Rows.Query,
        x: h.tensor('x2', x, [2, L, K]),
        weight: h.tensor('weight2', weight.slice(0, 40 * K), [40, K]),
        out: h.tensor('other.out', filled(2 * L * 40, 0), [2, L, 40]),
      });
      // The matmul variants told apart by shader and grid: splitk 4x64 blocks, wide 4/8/16x256, register 32x32, tall 64x64.
      const steps = [
        [[3, 2], 'matmul_small.wgsl', [2, 1, 2], 'attention.wgsl'],
        [[6, 5], 'matmul.wgsl', [1, 1, 2], 'attention_flash.wgsl'],
        [[12, 5], 'matmul.wgsl', [3, 1, 2], 'attention.wgsl'],
        [[20, 17], 'matmul.wgsl', [2, 1, 2], 'attention_flash.wgsl'],
        [[40, 17], 'matmul_tiled.wgsl', [2, 1, 2], 'attention.wgsl'],
      ] as const;
      for (const [query, mmKernel, mmGrid, attnKernel] of steps) {
        setBatchShape(h.ws, batch.clean, query);
        const [gotMm, gotAttn] = await h.run(async () => [mm, attn], [mmOut, attnOut]);
        expect([mm.kernel.name, mm.grid(), attn.kernel.name, other.kernel.name], `at ${query}`).toEqual([
          mmKernel,
          mmGrid,
          attnKernel,
          'matmul_tiled.wgsl',
        ]);
        const wantMm = filled(2 * L * N, SENTINEL);
        const wantAttn = filled(2 * L * K, SENTINEL);
        query.forEach((m, b) => {
          placeSeq(wantMm, b, L, N, linear(rowsOfSeq(x, b, m, L, K), m, K, weight, N));
          const cols = (offset: number, count: number) => columnsOfSeq(qkv, b, count, L, 3 * K, offset, K);
          placeSeq(wantAttn, b, L, K, attention(cols(0, m), cols(K, L), cols(2 * K, L), m, L, nHeads, headDim));
        });
        // The second run covers every row the first one wrote.
        expectBuffer(`matmul at ${query}`, gotMm, wantMm, ownedBy(query, L, N), TIGHT);
        expectBuffer(`attention at ${query}`, gotAttn, wantAttn, ownedBy(query, L, K), TRANSCENDENTAL);
      }
    });
  });
});

describe(`group-swap pool + query_init kernels (${runtime}) vs reference sinusoidal, meanRows, logsumexpRows`, () => {
  interface Case {
    name: string;
    mode: PreQueryMode;
    D: number;
    batch: Batch;
    /** Spread of the encoder output: large values test logsumexp's max subtraction. */
    std: number;
  }
  const cases: Case[] = [
    { name: 'learn, single row', mode: 'learn', D: 2, batch: { L: 3, clean: [1], query: [1] }, std: 1 },
    { name: 'learn, ragged', mode: 'learn', D: 66, batch: { L: 20, clean: [20, 3], query: [0, 20] }, std: 1 },
    {
      name: 'learn+freqs, positions up to L-1',
      mode: 'learn+freqs',
      D: 66,
      batch: { L: 70, clean: [70, 1], query: [69, 70] },
      std: 1,
    },
    {
      name: 'learn+freqs+mean',
      mode: 'learn+freqs+mean',
      D: 96,
      batch: { L: 40, clean: [40, 1, 13], query: [1, 39, 20] },
      std: 1,
    },
    {
      name: 'learn+freqs+mean, D = 30',
      mode: 'learn+freqs+mean',
      D: 30,
      batch: { L: 70, clean: [2, 70], query: [70, 0] },
      std: 3,
    },
    {
      name: 'learn+freqs+logsumexp',
      mode: 'learn+freqs+logsumexp',
      D: 30,
      batch: { L: 29, clean: [1, 28, 5], query: [28, 1, 3] },
      std: 1,
    },
    {
      name: 'learn+freqs+logsumexp, values beyond exp range',
      mode: 'learn+freqs+logsumexp',
      D: 96,
      batch: { L: 45, clean: [45, 6], query: [12, 45] },
      std: 40,
    },
    { name: 'random shape, logsumexp', mode: 'learn+freqs+logsumexp', D: 14, batch: randomBatch(61, 70), std: 2 },
    { name: 'random shape, mean', mode: 'learn+freqs+mean', D: 8, batch: randomBatch(62, 70), std: 2 },
  ];
  for (const c of cases) {
    it(`${c.mode}: ${c.name}: D=${c.D} ${describeBatch(c.batch)}`, async () => {
      const { mode, D, batch } = c;
      const { L, clean, query } = batch;
      const size = clean.length;
      const withStat = mode === 'learn+freqs+mean' || mode === 'learn+freqs+logsumexp';
      const encoderOut = normals(size * L * D, 15, c.std);
      fillPadding(encoderOut, clean, L, D, () => 1e3);
      const base = normals(D, 16, 0.5);
      const positions = randomPositions(query, L, 17);
      // One row more than the batch: the pool must not write past it.
      const statInitial = filled((size + 1) * D, SENTINEL);
      const initial = filled(size * L * D, SENTINEL);
      await withHarness(batch, async (h) => {
        const stat = gpuTensor('stat', h.buffer('stat', statInitial), [size, D]);
        const out = h.tensor('q0', initial, [size, L, D]);
        const args = {
          ...queryInitTerms(mode),
          base: h.tensor('base', base, [1, D]),
          queryPositions: h.tensor('queryPositions', positions, [size, L]),
          encoderOut: h.tensor('encoderOut', encoderOut, [size, L, D]),
          sinus: h.tensor('sinus', sinusTable(L, D), [L, D]),
          stat,
          out,
        };
        const [got, gotStat] = await h.run(() => queryInitDispatches(h.ws, args), [out, stat]);
        const wantStat = statInitial.slice();
        clean.forEach((n, b) => {
          if (!withStat) return;
          const rows = rowsOfSeq(encoderOut, b, n, L, D);
          wantStat.set(mode === 'learn+freqs+mean' ? meanRows(rows, n, D) : logsumexpRows(rows, n, D), b * D);
        });
        const want = initial.slice();
        query.forEach((m, b) => {
          const sinus = sinusoidal(positions.subarray(b * L, b * L + m), D);
          for (let j = 0; j < m; j++) {
            for (let i = 0; i < D; i++) {
              let v = base[i];
              if (mode !== 'learn') v += sinus[j * D + i];
              if (withStat) v += wantStat[b * D + i];
              want[(b * L + j) * D + i] = v;
            }
          }
        });
        expectBuffer('pool stat', gotStat, wantStat, withStat ? (i) => i < size * D : () => false, TRANSCENDENTAL);
        expectBuffer('query_init q0', got, want, ownedBy(query, L, D), TRANSCENDENTAL);
      });
    });
  }
});

describe(`rows.wgsl, the KV set's append (${runtime})`, () => {
  it("appends each sequence's packed fresh rows to the clean set's tail: strided views, odd widths, a sequence with none fresh", async () => {
    const batch: Batch = { L: 13, clean: [11, 5, 7], query: [1, 1, 1], fresh: [4, 0, 7] };
    const [B, L] = [batch.clean.length, batch.L];
    await withHarness(batch, async (h) => {
      const packedIn = normals(B * L * 17, 2);
      const tail = normals(B * L * 9, 3);
      const packed = h.tensor('packed', packedIn, [B, L, 17]);
      const dst = h.tensor('dst', tail, [B, L, 9]);
      const [appended] = await h.run(
        async () => [
          await appendFreshRowsDispatch(h.ws, { label: 'append', from: columns(packed, 6, 5), to: columns(dst, 2, 5) }),
        ],
        [dst],
      );
      const wantAppended = tail.slice();
      for (let b = 0; b < B; b++) {
        for (let i = 0; i < batch.fresh![b]; i++) {
          const row = cleanSetRow(batch, Rows.Fresh, b, i);
          for (let c = 0; c < 5; c++) wantAppended[row * 9 + 2 + c] = packedIn[(b * L + i) * 17 + 6 + c];
        }
      }
      // Read back the whole buffer, which may be padded past the tensor.
      expect(appended.subarray(0, wantAppended.length)).toEqual(wantAppended);
    });
  });
});

describe(`rows.wgsl with re-encoded rows (${runtime})`, () => {
  it('appends the joined rows at the tail and writes the re-encoded ones over their own rows; joinedOnly appends only the joined', async () => {
    const batch: Batch = {
      L: 13,
      clean: [11, 5, 7],
      query: [1, 1, 1],
      fresh: [2, 0, 3],
      reencoded: [[4, 0, 7], [], [1]],
    };
    const [B, L] = [batch.clean.length, batch.L];
    await withHarness(batch, async (h) => {
      const packedIn = normals(B * L * 7, 5);
      const before = normals(B * L * 7, 6);
      const packed = h.tensor('packed', packedIn, [B, L, 7]);
      const every = h.tensor('every', before, [B, L, 7]);
      const joinedOnly = h.tensor('joined only', before, [B, L, 7]);
      const [gotEvery, gotJoined] = await h.run(
        async () => [
          await appendFreshRowsDispatch(h.ws, { label: 'append', from: packed, to: every }),
          await appendFreshRowsDispatch(h.ws, {
            label: 'append joined',
            from: packed,
            to: joinedOnly,
            joinedOnly: true,
          }),
        ],
        [every, joinedOnly],
      );
      const wantEvery = before.slice();
      const wantJoined = before.slice();
      countsOf(batch, Rows.Fresh).forEach((m, b) => {
        for (let i = 0; i < m; i++) {
          const [from, to] = [(b * L + i) * 7, cleanSetRow(batch, Rows.Fresh, b, i) * 7];
          wantEvery.set(packedIn.subarray(from, from + 7), to);
          if (i < batch.fresh![b]) wantJoined.set(packedIn.subarray(from, from + 7), to);
        }
      });
      expect(gotEvery.subarray(0, wantEvery.length)).toEqual(wantEvery);
      expect(gotJoined.subarray(0, wantJoined.length)).toEqual(wantJoined);
    });
  });
});

/** log(sum exp) in float64. */
const logSumExp = (xs: readonly number[]): number => {
  const top = Math.max(...xs);
  return top + Math.log(xs.reduce((a, x) => a + Math.exp(x - top), 0));
};

describe(`staleness.wgsl and reencode.wgsl, the adaptive KV set's statistic and pick (${runtime})`, () => {
  // Odd sizes: 3 heads of 5, L = 13, a padded batch: a sequence that joined rows and re-encodes
  // some, one that joined a row, one that joined none (its statistic stays).
  const [B, L, H, dh] = [3, 13, 3, 5];
  const D = H * dh;
  /** The pick's and the statistic's own buffers. */
  const state = (h: Harness, lse: Float32Array, threshold = 0) => ({
    lse: h.tensor('lse', lse, [B, L, 2 * H]),
    unseen: h.tensor('unseen', filled(B * L, 0), [B, L, 1]),
    report: h.buffer('report', new Uint32Array(4).fill(99)),
    threshold: h.ws.memory.upload('threshold', new Float32Array([threshold, 0, 0, 0]), GPUBufferUsage.UNIFORM),
  });

  it('staleness: joined rows get both log-sum-exps over the whole set, kept rows take in the joined keys, re-encoded ones see them', async () => {
    const batch: Batch = { L, clean: [9, 4, 13], query: [1, 1, 1], fresh: [3, 1, 0], reencoded: [[2, 0], [], []] };
    const { fresh: joined, reencoded } = batch as Required<Batch>;
    await withHarness(batch, async (h) => {
      const queries = normals(B * L * D, 7);
      const keys = normals(B * L * 2 * D, 8);
      // (all, seen) pairs, all >= seen, as the statistic keeps them.
      const lse = normals(B * L * 2 * H, 9);
      for (let i = 0; i < lse.length; i += 2) lse[i + 1] = lse[i] - Math.abs(lse[i + 1]);
      const s = state(h, lse);
      const keyTensor = h.tensor('keys', keys, [B, L, 2 * D]);
      const [got] = await h.run(
        async () => [
          await stalenessDispatch(h.ws, {
            state: s,
            queries: h.tensor('queries', queries, [B, L, D]),
            keys: columns(keyTensor, 0, D),
            nHeads: H,
            headDim: dh,
          }),
        ],
        [s.lse],
      );
      const want = lse.slice();
      batch.clean.forEach((n, b) => {
        for (let r = 0; r < n; r++) {
          for (let hd = 0; hd < H; hd++) {
            const score = (j: number) => {
              let dot = 0;
              for (let d = 0; d < dh; d++)
                dot += queries[(b * L + r) * D + hd * dh + d] * keys[(b * L + j) * 2 * D + hd * dh + d];
              return dot / Math.sqrt(dh);
            };
            const at = ((b * L + r) * H + hd) * 2;
            if (r >= n - joined[b]) {
              const all = logSumExp(Array.from({ length: n }, (_, j) => score(j)));
              want[at] = all;
              want[at + 1] = all;
            } else {
              if (joined[b] > 0)
                want[at] = logSumExp([
                  lse[at],
                  ...Array.from({ length: joined[b] }, (_, i) => score(n - joined[b] + i)),
                ]);
              if (reencoded[b].includes(r)) want[at + 1] = want[at];
            }
          }
        }
      });
      expectBuffer('staleness lse', got, want, () => true, TRANSCENDENTAL);
    });
  });

  it('reencode: the kept rows above the threshold, stalest first, at most perFresh per joined row; the fresh count and the report', async () => {
    const batch: Batch = { L, clean: [9, 4, 13], query: [1, 1, 1], fresh: [1, 1, 2] };
    const joined = batch.fresh!;
    const perFresh = REENCODE_PER_FRESH;
    const threshold = 0.3;
    await withHarness(batch, async (h) => {
      setBatchShape(
        h.ws,
        batch.clean,
        batch.query,
        joined,
        joined.map((j, b) => Math.min(batch.clean[b] - j, perFresh * j)),
      );
      const u = seededUniform(10);
      const lse = new Float32Array(B * L * 2 * H);
      for (let i = 0; i < lse.length; i += 2) {
        lse[i] = 3 * u() - 1;
        lse[i + 1] = lse[i] + Math.log(1 - 0.8 * u());
      }
      const shares = (b: number) =>
        Array.from({ length: batch.clean[b] - joined[b] }, (_, r) => {
          let share = 0;
          for (let hd = 0; hd < H; hd++)
            share += 1 - Math.exp(lse[((b * L + r) * H + hd) * 2 + 1] - lse[((b * L + r) * H + hd) * 2]);
          return share / H;
        });
      const s = state(h, lse, threshold);
      const [report, lengths] = await h.run(
        async () => [await reencodeDispatch(h.ws, s, H, perFresh)],
        [s.report, h.ws.lengths],
      );
      let cut = false;
      const words = new Uint32Array(lengths.buffer);
      batch.clean.forEach((_, b) => {
        const u = shares(b);
        const want = adaptivePicks(u, threshold, joined[b]);
        const stale = u.filter((x) => x > threshold).sort((x, y) => y - x);
        cut ||= stale.length > want.length;
        for (const x of u)
          expect(Math.abs(x - threshold), 'a share within rounding of the threshold').toBeGreaterThan(1e-5);
        // The list after the four counts of each sequence (common.wgsl).
        expect(Array.from(words.subarray(4 * B + b * L, 4 * B + b * L + want.length)), `sequence ${b}`).toEqual(want);
        expect(new Uint32Array(report.buffer)[b]).toBe(want.length);
        expect(words[2 * B + b]).toBe(joined[b] + want.length);
      });
      expect(cut).toBe(true);
    });
  });
});
