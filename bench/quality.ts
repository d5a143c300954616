/**
 * `npm run bench:quality [-- --quick] [--samples N] [--steps S] [--draws K]` (default: 256
 * samples, 64 steps, 2 draws): what incremental encoding costs in quality (issues 15 and 28). The shipped PGM generates full-length samples
 * (seed i for sample i, the same seeds in every setting) with the exact encoder and with the KV
 * set (bench/kv-settings.ts: never and every 8 steps refreshed, delayed, adaptive at three
 * thresholds); each sample is judged by the MDLM twin's NELBO, the exact PGM's own bound (Monte
 * Carlo, bench/judges.ts) and its dictionary-word share; each generation is timed. Writes
 * bench/results/incremental-quality.json and .svg (not in --quick) and prints a Markdown table.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createEngine } from '../src/node.js';
import { esc } from './report.js';
import { RESULTS_DIR } from './write.js';
import {
  estimateNelbo,
  mdlmNll,
  meanCi,
  monteCarloSe,
  pgmNll,
  wordShare,
  type MeanCi,
  type NelboEstimate,
} from './judges.js';
import { generateSettings, KV_SETTINGS, QUICK_KV_SETTINGS, type KvSetting } from './kv-settings.js';

const DICTIONARY = '/usr/share/dict/words';
/** Noise draws of sample i come from Rng(NOISE_SEED + i): the same masks in every setting. */
const NOISE_SEED = 0x7a11ce;
const JUDGE_BATCH = 8;

function usage(message: string): never {
  console.error(
    `bench:quality: ${message}\nusage: npm run bench:quality -- [--quick] [--samples N] [--steps S] [--draws K]`,
  );
  process.exit(2);
}

function parseArgs(argv: readonly string[]): { quick: boolean; samples: number; steps: number; draws: number } {
  const quick = argv.includes('--quick');
  const values: Record<string, number> = { samples: quick ? 4 : 256, steps: 64, draws: 2 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') continue;
    const name = a.replace(/^--/, '');
    if (!a.startsWith('--') || !(name in values)) usage(`unknown argument ${a}`);
    const v = Number(argv[++i]);
    if (!Number.isInteger(v) || v < 1) usage(`${a} needs a positive integer, got ${argv[i]}`);
    // Two stratified halves (noiseDraws in bench/judges.ts).
    if (name === 'draws' && v % 2) usage(`--draws needs an even number, got ${v}`);
    values[name] = v;
  }
  return { quick, samples: values.samples, steps: values.steps, draws: values.draws };
}

function loadDictionary(): Set<string> {
  if (!existsSync(DICTIONARY)) {
    console.error(
      `bench:quality: ${DICTIONARY} is missing; the word share needs Debian's American English word list: apt-get install -y wamerican`,
    );
    process.exit(1);
  }
  return new Set(
    readFileSync(DICTIONARY, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((w) => w.toLowerCase()),
  );
}

interface Row {
  setting: string;
  encoder: KvSetting['encoder'];
  refresh: number | null;
  staleness: number | null;
  n: number;
  mdlmNelbo: MeanCi & { monteCarloSe: number };
  mdlmDeltaVsExact: MeanCi;
  pgmNelbo: MeanCi & { monteCarloSe: number };
  pgmDeltaVsExact: MeanCi;
  wordShare: MeanCi;
  ms: MeanCi;
  speedup: number;
  /** Rows the encoder ran per generation. */
  encoderRows: MeanCi;
  example: string;
  perSample: { mdlmNelbo: number[]; pgmNelbo: number[]; wordShare: number[]; ms: number[]; encoderRows: number[] };
}

const f = (x: number, digits = 3) => x.toFixed(digits);
const pm = (c: MeanCi, digits = 3) => `${f(c.mean, digits)} ± ${f(c.ci95, digits)}`;
const signed = (c: MeanCi) => `${c.mean >= 0 ? '+' : '−'}${f(Math.abs(c.mean))} ± ${f(c.ci95)}`;
const round = (xs: number[]) => xs.map((x) => +x.toFixed(5));

function markdown(rows: Row[]): string {
  const lines = [
    '| setting | n | MDLM-judged NELBO | Δ vs exact (paired) | PGM bound | Δ vs exact (paired) | word share | encoder rows | ms / generation | speed-up |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    const exact = r.encoder === 'exact';
    lines.push(
      `| ${r.setting} | ${r.n} | ${pm(r.mdlmNelbo)} | ${exact ? '' : signed(r.mdlmDeltaVsExact)} | ${pm(r.pgmNelbo)} | ${exact ? '' : signed(r.pgmDeltaVsExact)} | ${pm(r.wordShare)} | ${Math.round(r.encoderRows.mean).toLocaleString('en-US')} | ${Math.round(r.ms.mean).toLocaleString('en-US')} | ${f(r.speedup, 2)}x |`,
    );
  }
  const largest = (pick: (r: Row) => number) => f(Math.max(...rows.map(pick)));
  lines.push(
    '',
    `Monte-Carlo part of a setting's standard error (from the two independent halves of each sample's draws; largest over the settings): MDLM ${largest((r) => r.mdlmNelbo.monteCarloSe)}, PGM ${largest((r) => r.pgmNelbo.monteCarloSe)}; total standard error: MDLM ${largest((r) => r.mdlmNelbo.se)}, PGM ${largest((r) => r.pgmNelbo.se)}.`,
  );
  return lines.join('\n');
}

/** Speed-up on x, MDLM-judged NELBO on y with its 95% interval, one labelled point per setting. */
function svg(rows: Row[], title: string): string {
  const W = 760;
  const H = 460;
  const pad = { l: 70, r: 30, t: 50, b: 60 };
  const plotW = W - pad.l - pad.r;
  const plotH = H - pad.t - pad.b;
  const xs = rows.map((r) => r.speedup);
  const xHi = Math.ceil(Math.max(...xs) * 1.1 + 0.5);
  const lows = rows.map((r) => r.mdlmNelbo.mean - r.mdlmNelbo.ci95);
  const highs = rows.map((r) => r.mdlmNelbo.mean + r.mdlmNelbo.ci95);
  const margin = (Math.max(...highs) - Math.min(...lows)) * 0.15 || 0.1;
  const yLo = Math.min(...lows) - margin;
  const yHi = Math.max(...highs) + margin;
  const x = (v: number) => pad.l + (v / xHi) * plotW;
  const y = (v: number) => pad.t + plotH - ((v - yLo) / (yHi - yLo)) * plotH;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`,
  );
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(
    `<text x="${W / 2}" y="18" text-anchor="middle" font-size="13">Incremental encoding: speed and quality (pgm-small)</text>`,
  );
  out.push(`<text x="${W / 2}" y="34" text-anchor="middle" font-size="10">${esc(title)}</text>`);
  out.push(
    `<line x1="${pad.l}" y1="${pad.t}" x2="${pad.l}" y2="${pad.t + plotH}" stroke="#333"/><line x1="${pad.l}" y1="${pad.t + plotH}" x2="${pad.l + plotW}" y2="${pad.t + plotH}" stroke="#333"/>`,
  );
  for (let i = 0; i <= 5; i++) {
    const v = yLo + ((yHi - yLo) * i) / 5;
    out.push(
      `<line x1="${pad.l - 4}" y1="${y(v)}" x2="${pad.l + plotW}" y2="${y(v)}" stroke="#e5e5e5"/><text x="${pad.l - 6}" y="${y(v) + 4}" text-anchor="end">${v.toFixed(2)}</text>`,
    );
  }
  for (let v = 0; v <= xHi; v++)
    out.push(
      `<line x1="${x(v)}" y1="${pad.t + plotH}" x2="${x(v)}" y2="${pad.t + plotH + 4}" stroke="#333"/><text x="${x(v)}" y="${pad.t + plotH + 16}" text-anchor="middle">${v}x</text>`,
    );
  out.push(
    `<text x="${pad.l + plotW / 2}" y="${H - 20}" text-anchor="middle">speed-up over the exact encoder (mean ms per generation)</text>`,
  );
  out.push(
    `<text transform="translate(20,${pad.t + plotH / 2}) rotate(-90)" text-anchor="middle">MDLM-judged NELBO, nats/token (lower = better), 95% CI</text>`,
  );
  const exact = rows.find((r) => r.encoder === 'exact');
  if (exact)
    out.push(
      `<line x1="${pad.l}" y1="${y(exact.mdlmNelbo.mean)}" x2="${pad.l + plotW}" y2="${y(exact.mdlmNelbo.mean)}" stroke="#1f77b4" stroke-dasharray="4 3"/>`,
    );
  rows.forEach((r, i) => {
    const cx = x(r.speedup);
    const color = { exact: '#1f77b4', incremental: '#d62728', delayed: '#2ca02c', adaptive: '#9467bd' }[r.encoder];
    out.push(
      `<line x1="${cx}" y1="${y(r.mdlmNelbo.mean - r.mdlmNelbo.ci95)}" x2="${cx}" y2="${y(r.mdlmNelbo.mean + r.mdlmNelbo.ci95)}" stroke="${color}"/>`,
    );
    for (const v of [r.mdlmNelbo.mean - r.mdlmNelbo.ci95, r.mdlmNelbo.mean + r.mdlmNelbo.ci95])
      out.push(`<line x1="${cx - 4}" y1="${y(v)}" x2="${cx + 4}" y2="${y(v)}" stroke="${color}"/>`);
    out.push(
      `<circle cx="${cx}" cy="${y(r.mdlmNelbo.mean)}" r="4" fill="${color}"><title>${esc(`${r.setting}: ${pm(r.mdlmNelbo)} nats/token, ${f(r.speedup, 2)}x`)}</title></circle>`,
    );
    // Labels alternate above and below: neighbouring points are close.
    const dy = i % 2 ? 16 : -9;
    out.push(
      `<text x="${cx + 7}" y="${y(r.mdlmNelbo.mean) + dy}">${esc(r.setting.replace('incremental, ', ''))}</text>`,
    );
  });
  out.push('</svg>');
  return out.join('\n');
}

const args = parseArgs(process.argv.slice(2));
const dictionary = loadDictionary();
const settings = args.quick ? QUICK_KV_SETTINGS : KV_SETTINGS;
const log = (line: string) => console.error(line);
const started = performance.now();

const pgm = await createEngine({ maxBatch: JUDGE_BATCH });
const mdlm = await createEngine({ model: 'mdlm-small', maxBatch: JUDGE_BATCH });
try {
  const L = pgm.gpuModel.config.length;
  if (mdlm.gpuModel.config.length !== L || mdlm.gpuModel.config.vocabSize !== pgm.gpuModel.config.vocabSize)
    throw new Error('bench:quality: pgm-small and mdlm-small must share L and the vocabulary');
  log(
    `bench:quality: ${pgm.adapter.description}; ${settings.length} settings x ${args.samples} samples, L ${L}, ${args.steps} steps, ${args.draws} noise draws per sample and judge`,
  );
  const samples = settings.map(() => ({
    ids: [] as number[][],
    texts: [] as string[],
    ms: [] as number[],
    encoderRows: [] as number[],
  }));
  let generated = 0;
  await generateSettings(pgm, settings, { samples: args.samples, length: L, steps: args.steps }, (k, i, result, ms) => {
    const ids = pgm.vocabulary.fromGpt2Ids(result.tokens);
    if (ids.length !== L)
      throw new Error(`bench:quality: sample ${i} (${settings[k].name}) has ${ids.length} model ids, expected ${L}`);
    const sample = samples[k];
    sample.ids.push(ids);
    sample.texts.push(result.text);
    sample.ms.push(ms);
    sample.encoderRows.push(result.stats.encoderRows);
    if (++generated % (8 * settings.length) === 0 || generated === args.samples * settings.length) {
      log(
        `  generated ${generated / settings.length}/${args.samples} seeds (${((performance.now() - started) / 1000).toFixed(0)} s)`,
      );
    }
  });
  const exactIndex = settings.findIndex((s) => s.encoder === 'exact');

  const seeds = Array.from({ length: args.samples }, (_, i) => NOISE_SEED + i);
  const judged = new Map<number, { mdlm: NelboEstimate[]; pgm: NelboEstimate[] }>();
  for (const [k, s] of settings.entries()) {
    const t0 = performance.now();
    const byMdlm = await estimateNelbo(samples[k].ids, mdlmNll(mdlm.gpuModel), {
      draws: args.draws,
      seeds,
      batch: JUDGE_BATCH,
    });
    const byPgm = await estimateNelbo(samples[k].ids, pgmNll(pgm.gpuModel), {
      draws: args.draws,
      seeds,
      batch: JUDGE_BATCH,
    });
    judged.set(k, { mdlm: byMdlm, pgm: byPgm });
    log(`  judged ${s.name} (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
  }

  const exactMs = meanCi(samples[exactIndex].ms).mean;
  const exactJudged = judged.get(exactIndex)!;
  const delta = (a: NelboEstimate[], b: NelboEstimate[]) => meanCi(a.map((e, i) => e.mean - b[i].mean));
  const rows: Row[] = settings.map((s, k) => {
    const j = judged.get(k)!;
    const shares = samples[k].texts.map((text) => wordShare(text, dictionary).share);
    const ms = meanCi(samples[k].ms);
    return {
      setting: s.name,
      encoder: s.encoder,
      refresh: s.refresh ?? null,
      staleness: s.staleness ?? null,
      n: args.samples,
      mdlmNelbo: { ...meanCi(j.mdlm.map((e) => e.mean)), monteCarloSe: monteCarloSe(j.mdlm) },
      mdlmDeltaVsExact: delta(j.mdlm, exactJudged.mdlm),
      pgmNelbo: { ...meanCi(j.pgm.map((e) => e.mean)), monteCarloSe: monteCarloSe(j.pgm) },
      pgmDeltaVsExact: delta(j.pgm, exactJudged.pgm),
      wordShare: meanCi(shares),
      ms,
      speedup: exactMs / ms.mean,
      encoderRows: meanCi(samples[k].encoderRows),
      example: samples[k].texts[0].slice(0, 300),
      perSample: {
        mdlmNelbo: round(j.mdlm.map((e) => e.mean)),
        pgmNelbo: round(j.pgm.map((e) => e.mean)),
        wordShare: round(shares),
        ms: samples[k].ms.map((m) => Math.round(m)),
        encoderRows: samples[k].encoderRows,
      },
    };
  });

  const date = new Date().toISOString();
  const wallSeconds = (performance.now() - started) / 1000;
  const table = markdown(rows);
  console.log(`\n${table}\n`);
  if (args.quick) log(`bench:quality: quick run, ${wallSeconds.toFixed(0)} s; nothing written`);
  else {
    const dir = RESULTS_DIR;
    mkdirSync(dir, { recursive: true });
    const result = {
      date,
      adapter: pgm.adapter.description,
      command: [
        `PGM_WEBGPU_ADAPTER=${process.env.PGM_WEBGPU_ADAPTER ?? ''} npm run bench:quality`,
        ...(process.argv.length > 2 ? ['--', ...process.argv.slice(2)] : []),
      ].join(' '),
      models: { generator: 'pgm-small', judge: 'mdlm-small' },
      length: L,
      steps: args.steps,
      samples: args.samples,
      draws: args.draws,
      seeds: `sample i: generation seed i, noise draws Rng(${NOISE_SEED} + i), in every setting`,
      sampling: 'order random, schedule uniform, temperature 1, topP 1 (the checkpoint pNucleus), batch 1',
      nelbo:
        'nats per generated token (sum over positions 1..L-1, / (L-1)); the draws of a sample: two independent halves, each with t stratified over [eps, 1] (Monte-Carlo variance of its mean: (half A - half B)^2 / 4); BOS never masked; mask token excluded from the softmax',
      ci: 'mean ± t(0.975, n-1) · sd / sqrt(n) over the samples (each sample: the mean of its draws, so Monte-Carlo noise is inside the spread); Δ vs exact: the same over the per-seed differences',
      wordShare: `words (whitespace- and dash-separated, edge punctuation stripped, containing a letter) found in ${DICTIONARY} (Debian wamerican), as written or lower-cased`,
      wallSeconds: Math.round(wallSeconds),
      rows,
    };
    writeFileSync(`${dir}incremental-quality.json`, `${JSON.stringify(result, null, 2)}\n`);
    writeFileSync(
      `${dir}incremental-quality.svg`,
      `${svg(rows, `${date.slice(0, 10)}, ${pgm.adapter.description.split(':')[0]}; ${args.samples} samples per setting, L ${L}, ${args.steps} steps; ${args.draws} noise draws per sample`)}\n`,
    );
    log(
      `bench:quality: ${wallSeconds.toFixed(0)} s; wrote bench/results/incremental-quality.json, bench/results/incremental-quality.svg`,
    );
  }
} finally {
  pgm.dispose();
  mdlm.dispose();
}
