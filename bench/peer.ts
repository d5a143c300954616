/**
 * The bench's peer: onnxruntime-web running the same PGM forward pass as our engine, on the
 * files training/export_onnx.py writes (model.onnx, model.ckpt, input.json, logits.bin).
 * ORT's WebGPU EP on our GPUDevice, ORT's wasm EP for context, and our GpuModel on the
 * checkpoint read by our own converter: same input, one warm-up each, then up to REPS rounds
 * (the three interleaved, so that background load hits all alike); medians reported, every
 * output checked against PyTorch's logits. Browser only (Vite serves ORT's wasm files).
 */
import type { InferenceSession } from 'onnxruntime-web';
import { Checkpoint } from '../src/convert/checkpoint.js';
import { readCheckpointWeights } from '../src/convert/convert.js';
import { bytesSource } from '../src/convert/source.js';
import type { GpuContext } from '../src/gpu/context.js';
import { GpuModel } from '../src/model/gpu-model.js';
import type { PgmSequence } from '../src/model/inputs.js';
import type { PeerResult } from './suite.js';

type Ort = typeof import('onnxruntime-web');

/** Timed forwards per engine: REPS, or fewer once an engine has spent BUDGET_MS (ORT's WebGPU EP can take seconds per forward on SwiftShader). */
const REPS = 10;
const BUDGET_MS = 20_000;

interface Exported {
  onnx: Uint8Array;
  ckpt: Uint8Array;
  sequence: { tokens: number[]; positions: number[]; queries: number[] };
  torchLogits: Float32Array;
  shape: number[];
}

async function fetchBytes(url: string): Promise<Uint8Array> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`peer: ${url}: HTTP ${res.status}; create it with training/export_onnx.py`);
  return new Uint8Array(await res.arrayBuffer());
}

async function loadExport(dir: string): Promise<Exported> {
  const json = async (file: string) => JSON.parse(new TextDecoder().decode(await fetchBytes(dir + file)));
  const logits = await fetchBytes(`${dir}logits.bin`);
  return {
    onnx: await fetchBytes(`${dir}model.onnx`),
    ckpt: await fetchBytes(`${dir}model.ckpt`),
    sequence: (await json('input.json')).sequences[0],
    torchLogits: new Float32Array(logits.buffer, logits.byteOffset, logits.byteLength / 4),
    shape: (await json('meta.json')).shape,
  };
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`peer: logits of ${a.length} vs ${b.length} values`);
  let max = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= max)) max = Number.isNaN(d) ? Infinity : d;
  }
  return max;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** One engine under test: a forward pass on the exported input, logits [1, m, V]. */
interface Runner {
  forward: () => Promise<Float32Array>;
  release: () => void | Promise<void>;
}

/** An ORT session on one execution provider; its first run is the warm-up. */
async function ortRunner(
  ort: Ort,
  ep: InferenceSession.ExecutionProviderConfig,
  onnx: Uint8Array,
  seq: Exported['sequence'],
): Promise<Runner & { logits: Float32Array }> {
  const session = await ort.InferenceSession.create(onnx, { executionProviders: [ep] });
  const int64 = (xs: number[]) => new ort.Tensor('int64', BigInt64Array.from(xs, BigInt), [1, xs.length]);
  const feeds = {
    clean_tokens: int64(seq.tokens),
    clean_positions: int64(seq.positions),
    query_positions: int64(seq.queries),
  };
  const forward = async () => (await session.run(feeds)).logits.data as Float32Array;
  return { forward, release: () => session.release(), logits: await forward() };
}

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e)).split('\n')[0];

/** The peer comparison on the export in `dir` (a URL ending in `/`), timed on `ctx`'s adapter. */
export async function runPeer(ctx: GpuContext, dir: string, log: (line: string) => void): Promise<PeerResult> {
  const ex = await loadExport(dir);
  const { config, weights } = await readCheckpointWeights(await Checkpoint.open(bytesSource(ex.ckpt, 'model.ckpt')));
  const model =
    `PGM D${config.hiddenSize} H${config.nHeads} ${config.encoderBlocks}/${config.decoderBlocks} V${config.vocabSize} L${config.length}, ` +
    `n=${ex.sequence.tokens.length} clean, m=${ex.sequence.queries.length} queries, batch 1`;
  log(`peer: ${model} (${dir})`);

  // Two builds of ORT, loaded here rather than with the page: the native WebGPU EP
  // (`onnxruntime-web/webgpu`, which accepts our GPUDevice; the default entry's JSEP EP always
  // requests a device of its own) and the plain wasm build for the CPU EP (no JSEP or asyncify
  // in its kernels). Each starts its wasm module once per page: settings go before any session.
  const [webgpuOrt, wasmOrt] = await Promise.all([import('onnxruntime-web/webgpu'), import('onnxruntime-web/wasm')]);
  for (const ort of [webgpuOrt, wasmOrt])
    ort.env.wasm.wasmPaths = new URL('/node_modules/onnxruntime-web/dist/', location.href).href;
  wasmOrt.env.wasm.numThreads = crossOriginIsolated ? navigator.hardwareConcurrency : 1;

  const gpuModel = await GpuModel.load(ctx, config, weights, { maxBatch: 1 });
  const sequences: PgmSequence[] = [ex.sequence];
  const ours: Runner = { forward: () => gpuModel.pgmLogits(sequences), release: () => gpuModel.dispose() };
  const runners: Record<'ours' | 'ortWebgpu' | 'ortWasm', Runner | null> = { ours, ortWebgpu: null, ortWasm: null };
  const logits: Record<string, Float32Array> = {};
  const errors: Record<string, string> = {};
  const times: Record<string, number[]> = { ours: [], ortWebgpu: [], ortWasm: [] };
  const spent = (name: string) => times[name].reduce((a, t) => a + t, 0);
  try {
    logits.ours = await ours.forward();
    const engines = [
      ['ortWebgpu', webgpuOrt, { name: 'webgpu', device: ctx.device }],
      ['ortWasm', wasmOrt, 'wasm'],
    ] as const;
    for (const [name, ort, ep] of engines) {
      try {
        const r = await ortRunner(ort, ep, ex.onnx, ex.sequence);
        runners[name] = r;
        logits[name] = r.logits;
      } catch (e) {
        errors[name] = message(e);
        log(`peer: onnxruntime-web ${name} failed: ${errors[name]}`);
      }
    }
    for (let r = 0; r < REPS; r++) {
      for (const [name, runner] of Object.entries(runners)) {
        if (!runner || spent(name) > BUDGET_MS) continue;
        const t0 = performance.now();
        await runner.forward();
        times[name].push(performance.now() - t0);
      }
    }
  } finally {
    for (const runner of Object.values(runners)) await runner?.release();
  }

  const ms = (name: string) => (times[name].length ? median(times[name]) : null);
  const vsTorch = (name: string) => (logits[name] ? maxAbsDiff(logits[name], ex.torchLogits) : null);
  const result: PeerResult = {
    model,
    oursMs: ms('ours')!,
    ortWebgpuMs: ms('ortWebgpu'),
    ortWasmMs: ms('ortWasm'),
    ...(errors.ortWebgpu && { ortWebgpuError: errors.ortWebgpu }),
    ...(errors.ortWasm && { ortWasmError: errors.ortWasm }),
    runs: { ours: times.ours.length, ortWebgpu: times.ortWebgpu.length, ortWasm: times.ortWasm.length },
    logitsShape: ex.shape,
    maxAbsDiff: {
      oursVsTorch: vsTorch('ours')!,
      ortWebgpuVsTorch: vsTorch('ortWebgpu'),
      ortWasmVsTorch: vsTorch('ortWasm'),
      oursVsOrtWebgpu: logits.ortWebgpu ? maxAbsDiff(logits.ours, logits.ortWebgpu) : null,
    },
    ort: {
      version: wasmOrt.env.versions.web ?? '?',
      wasmThreads: wasmOrt.env.wasm.numThreads!,
      crossOriginIsolated,
      webgpuDevice: errors.ortWebgpu ? 'none' : 'ours',
    },
  };
  const show = (x: number | null) => (x === null ? 'failed' : `${x.toFixed(1)} ms`);
  log(
    `peer: ours ${show(result.oursMs)}, ORT WebGPU ${show(result.ortWebgpuMs)}, ORT wasm (${result.ort.wasmThreads} threads) ${show(result.ortWasmMs)}; ` +
      `max |diff| vs PyTorch: ours ${result.maxAbsDiff.oursVsTorch.toExponential(1)}, ORT WebGPU ${result.maxAbsDiff.ortWebgpuVsTorch?.toExponential(1) ?? '-'}, ORT wasm ${result.maxAbsDiff.ortWasmVsTorch?.toExponential(1) ?? '-'}`,
  );
  return result;
}
