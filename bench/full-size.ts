/**
 * `npm run bench:full [-- options]`: the authors' released OpenWebText models at their size
 * (PGM 6+6 blocks and the MDLM twin of 12, D768, 12 heads, V50258, L1024; random weights, so
 * the text is noise: this measures time and memory). For each model it
 *
 * 1. writes a random checkpoint in the released layout once (bench/owt-checkpoint.py: EMA
 *    weights, AdamW moments; 2.75 GB for the PGM) and converts it with `pgm convert` in a
 *    child process, timing it and taking the child's peak RSS (kept with the converted model
 *    in the cache, ~/.cache/pgm-webgpu/bench or --cache; --reconvert measures it again);
 * 2. on each adapter, in a fresh process (Node: a child per model and adapter, its
 *    process.resourceUsage().maxRSS; Chromium: a fresh browser per model, the peak resident
 *    memory (VmHWM) of its renderer and GPU processes), loads it with createEngine from the
 *    converted folder, timing the load and keeping the most GPU memory the engine held
 *    (engine.gpuBytes: the bytes of the buffers it created);
 * 3. generates `--generate` tokens (64) after a prompt that fills the rest of L1024 (959 tokens
 *    after BOS) in `--steps` steps: the PGM exact, the PGM with the KV set (`--kv`, default
 *    delayed, the setting the README's quality table supports) and the MDLM, each first for a
 *    step and the one in flight (a warm-up: pipelines, kernel plans, the KV set's passes; its
 *    first token is the cold one), then whole, timed by the step events a page sees: time to the first visible
 *    token, ms per step (p50, p95), tokens per second, dispatches per step.
 *
 * The default workload is 4 steps (16 tokens a step): on these CPU adapters a full-size step at
 * L1024 takes 8-20 s (lavapipe) to 50-130 s (SwiftShader): the prompt is clean, so each exact
 * PGM step runs the encoder and each MDLM step the whole network over about 1000 rows; the KV
 * set's steps after its second encode only the new tokens. With the warm-ups that is 6 such
 * steps per model and setting: on 2 idle cores about 4 minutes on lavapipe and 27 on each
 * SwiftShader adapter, plus conversion the first time. On a GPU,
 * `--adapters node-gpu,chromium-gpu --steps 64` (one token per step).
 *
 * Prints a Markdown table and writes bench/results/full-size-<adapter>.json.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, homedir, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { ROOT } from './browser.js';
import {
  FULL_SIZE_USAGE,
  FullSizeUsageError,
  fullSizeMarkdown,
  parseFullSizeArgs,
  type AdapterId,
  type Conversion,
  type FullSizeArgs,
  type FullSizeResult,
  type HostMemory,
  type ModelRun,
  type Workload,
} from './full-size-measure.js';

const RESULT = 'FULL-SIZE-RESULT ';
const log = (line: string): void => console.error(`bench:full: ${line}`);

/** The child running now: ended with this process (an interrupted run leaves no model loading behind). */
let running: ChildProcess | undefined;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    running?.kill('SIGKILL');
    process.exit(130);
  });
}

/** This script again in a child process (`--child <kind> <json>`), its last stdout line starting RESULT parsed. */
function child<T>(kind: string, input: unknown, env: Record<string, string | undefined> = {}): Promise<T> {
  return new Promise((done, failed) => {
    const p = (running = spawn(
      process.execPath,
      ['--import', 'tsx', 'bench/full-size.ts', '--child', kind, JSON.stringify(input)],
      {
        cwd: ROOT,
        env: { ...process.env, ...env },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    ));
    let out = '';
    p.stdout.on('data', (d: Buffer) => {
      out += d;
      for (const line of d.toString().split('\n')) if (line && !line.startsWith(RESULT)) console.error(line);
    });
    p.on('error', failed);
    p.on('close', (code) => {
      running = undefined;
      const line = out.split('\n').find((l) => l.startsWith(RESULT));
      const result = line && (JSON.parse(line.slice(RESULT.length)) as T | { error: string });
      if (!result) failed(new Error(`the ${kind} child exited with ${code} and no result`));
      else if (typeof result === 'object' && result !== null && 'error' in result) failed(new Error(result.error));
      else done(result);
    });
  });
}

const report = (value: unknown): void => console.log(`${RESULT}${JSON.stringify(value)}`);
const peakRssMiB = (): number => process.resourceUsage().maxRSS / 1024;

/** Children: `convert` (the `pgm convert` CLI in this process) and `node` (load and generate). */
async function runChild(kind: string, input: string): Promise<void> {
  try {
    await childWork(kind, input);
  } catch (e) {
    report({ error: (e as Error).message ?? String(e) }); // the parent logs it
  }
}

async function childWork(kind: string, input: string): Promise<void> {
  if (kind === 'convert') {
    const { ckpt, out, dtype } = JSON.parse(input) as { ckpt: string; out: string; dtype: string };
    const { main } = await import('../src/cli/main.js');
    const beforeRssMiB = process.memoryUsage().rss / 2 ** 20;
    const t0 = performance.now();
    const code = await main(['convert', ckpt, out, '--dtype', dtype]);
    if (code !== 0) throw new Error(`pgm convert exited with ${code}`);
    report({ ms: performance.now() - t0, peakRssMiB: peakRssMiB(), beforeRssMiB });
  } else if (kind === 'node') {
    const { dir, workload } = JSON.parse(input) as { dir: string; workload: Workload };
    const { createEngine } = await import('../src/node.js');
    const { measureModel } = await import('./full-size-measure.js');
    const baseline = process.memoryUsage().rss / 2 ** 20;
    const t0 = performance.now();
    const engine = await createEngine({ model: dir, maxBatch: 1 });
    const loadMs = performance.now() - t0;
    log(
      `${engine.adapter.description}: loaded ${dir} in ${(loadMs / 1000).toFixed(1)} s (${(engine.gpuBytes / 2 ** 20).toFixed(0)} MiB on the GPU, peak RSS ${peakRssMiB().toFixed(0)} MiB, ${baseline.toFixed(0)} MiB before the load)`,
    );
    const run = await measureModel(engine, workload, loadMs, log);
    engine.dispose();
    report({ ...run, host: { process: peakRssMiB(), before: baseline } });
  } else {
    throw new Error(`bench:full: unknown child ${kind}`);
  }
}

const folderBytes = (dir: string): number => readdirSync(dir).reduce((a, f) => a + statSync(join(dir, f)).size, 0);

/** The model converted (checkpoint written first when missing), and its conversion's numbers. */
async function converted(args: FullSizeArgs, model: 'pgm' | 'mdlm'): Promise<{ dir: string; conversion: Conversion }> {
  mkdirSync(args.cache, { recursive: true });
  const ckpt = join(args.cache, `${model}-owt.ckpt`);
  const dir = join(args.cache, `${model}-owt-${args.dtype}`);
  const record = join(args.cache, `${model}-owt-${args.dtype}.convert.json`);
  if (!args.reconvert && existsSync(join(dir, 'config.json')) && existsSync(record))
    return { dir, conversion: JSON.parse(readFileSync(record, 'utf8')) as Conversion };
  if (!existsSync(ckpt)) {
    log(`writing ${ckpt} (random weights in the released layout; a few minutes)`);
    const t0 = performance.now();
    await new Promise<void>((done, failed) => {
      const p = spawn('/usr/bin/python3', ['bench/owt-checkpoint.py', model, ckpt], {
        cwd: ROOT,
        stdio: ['ignore', 2, 2],
      });
      p.on('error', failed);
      p.on('close', (code) =>
        code === 0
          ? done()
          : failed(
              new Error(
                `bench/owt-checkpoint.py exited with ${code}; it needs Debian's python3-torch and python3-omegaconf`,
              ),
            ),
      );
    });
    log(`wrote ${ckpt} in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  }
  const part = `${dir}.part`;
  rmSync(part, { recursive: true, force: true });
  log(`converting ${ckpt} (${args.dtype})`);
  const c = await child<{ ms: number; peakRssMiB: number; beforeRssMiB: number }>('convert', {
    ckpt,
    out: part,
    dtype: args.dtype,
  });
  rmSync(dir, { recursive: true, force: true });
  renameSync(part, dir);
  const conversion: Conversion = {
    model,
    dtype: args.dtype,
    date: new Date().toISOString(),
    ms: c.ms,
    peakRssMiB: c.peakRssMiB,
    beforeRssMiB: c.beforeRssMiB,
    bytes: folderBytes(dir),
    checkpointBytes: statSync(ckpt).size,
  };
  writeFileSync(record, `${JSON.stringify(conversion, null, 2)}\n`);
  log(`converted in ${(c.ms / 1000).toFixed(1)} s, peak RSS ${c.peakRssMiB.toFixed(0)} MiB`);
  return { dir, conversion };
}

/** Peak resident memory (VmHWM, MiB) of the renderer (the largest) and the GPU process of the Chromium this process runs. */
function chromiumPeaks(): { renderer: number; gpuProcess: number } {
  const parent = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      // The command may hold spaces and parentheses: the fields after its closing one.
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      parent.set(Number(name), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone since the listing
    }
  }
  const under = (pid: number): boolean =>
    pid === process.pid || (parent.has(pid) && pid > 1 && under(parent.get(pid)!));
  const peaks = { renderer: 0, gpuProcess: 0 };
  for (const pid of parent.keys()) {
    if (pid === process.pid || !under(pid)) continue;
    try {
      const type = readFileSync(`/proc/${pid}/cmdline`, 'utf8').match(/--type=([a-z-]+)/)?.[1];
      const hwm = Number(readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmHWM:\s+(\d+) kB/)?.[1] ?? 0) / 1024;
      if (type === 'renderer') peaks.renderer = Math.max(peaks.renderer, hwm);
      if (type === 'gpu-process') peaks.gpuProcess = Math.max(peaks.gpuProcess, hwm);
    } catch {
      // gone since the listing
    }
  }
  return peaks;
}

/** One model on the bench page, in a browser of its own. */
async function inChromium(
  adapter: AdapterId,
  dir: string,
  workload: Workload,
): Promise<ModelRun & { host: HostMemory }> {
  const { openBenchPage } = await import('./browser.js');
  const { page, close } = await openBenchPage({
    adapter: adapter === 'chromium-gpu' ? '' : 'swiftshader',
    allow: [dir],
  });
  try {
    const run = await page.evaluate(([url, w]) => window.pgmFullSize(url, w), [
      `/@fs${resolve(dir)}/`,
      workload,
    ] as const);
    return { ...run, host: chromiumPeaks() };
  } finally {
    await close();
  }
}

async function main(): Promise<void> {
  let args: FullSizeArgs;
  try {
    args = parseFullSizeArgs(
      process.argv.slice(2),
      join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'pgm-webgpu', 'bench'),
    );
  } catch (e) {
    if (!(e instanceof FullSizeUsageError)) throw e;
    console.error(`bench:full: ${e.message}\n\n${FULL_SIZE_USAGE}`);
    process.exit(2);
  }
  const { generate, steps, kv } = args;
  const workload: Workload = { generate, steps, kv };
  const models = [];
  for (const model of args.models) models.push({ model, ...(await converted(args, model)) });
  const results: FullSizeResult[] = [];
  for (const adapter of args.adapters) {
    const start = loadavg()[0];
    const result: FullSizeResult = {
      adapter,
      date: new Date().toISOString(),
      command: `npm run bench:full -- ${process.argv.slice(2).join(' ')}`.trim(),
      workload: { ...workload, length: 1024, promptTokens: 1023 - generate },
      load: { start, end: start, cores: cpus().length },
      conversions: models.map((m) => m.conversion),
      models: [],
    };
    const file = `bench/results/full-size-${adapter}.json`;
    // Written after each model: an interrupted run keeps what it measured.
    const write = (): void => {
      result.load.end = loadavg()[0];
      mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
      writeFileSync(join(ROOT, file), `${JSON.stringify(result, null, 2)}\n`);
    };
    for (const { model, dir } of models) {
      const name = model === 'pgm' ? 'PGM' : 'MDLM';
      log(`${adapter}: ${name} (${args.dtype})`);
      try {
        const run = adapter.startsWith('chromium')
          ? await inChromium(adapter, dir, workload)
          : await child<ModelRun & { host: HostMemory }>(
              'node',
              { dir, workload },
              { PGM_WEBGPU_ADAPTER: adapter === 'node-gpu' ? '' : adapter.slice('node-'.length) },
            );
        result.models.push({ ...run, dtype: args.dtype });
      } catch (e) {
        log(`${adapter}: ${name} failed: ${(e as Error).message}`);
        result.models.push({ model: name, dtype: args.dtype, error: (e as Error).message });
      }
      write();
    }
    log(`wrote ${file}`);
    results.push(result);
  }
  console.log(`\n${fullSizeMarkdown(results)}\n`);
  if (results.some((r) => r.models.some((m) => m.error !== undefined))) process.exitCode = 1;
}

const childAt = process.argv.indexOf('--child');
if (childAt >= 0) await runChild(process.argv[childAt + 1], process.argv[childAt + 2]);
else await main();
