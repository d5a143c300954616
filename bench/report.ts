/** Markdown tables and an SVG chart of a BenchResult (pure functions, any runtime). */
import type { BenchResult, PeerResult } from './suite.js';

const f = (x: number, digits = 1): string => x.toFixed(digits);
const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;
const sci = (x: number | null): string => (x === null ? '' : x.toExponential(1));

interface PeerRow {
  engine: string;
  short: string;
  /** null: the engine failed with `error`. */
  ms: number | null;
  error?: string;
  runs: number;
  vsTorch: number | null;
}

function peerRows(p: PeerResult): PeerRow[] {
  const ort = `onnxruntime-web ${p.ort.version}`;
  const threads = `${p.ort.wasmThreads} thread${p.ort.wasmThreads === 1 ? '' : 's'}`;
  return [
    { engine: 'pgm-webgpu (ours)', short: 'ours', ms: p.oursMs, runs: p.runs.ours, vsTorch: p.maxAbsDiff.oursVsTorch },
    {
      engine: `${ort}, WebGPU EP (device: ${p.ort.webgpuDevice})`,
      short: 'ORT WebGPU',
      ms: p.ortWebgpuMs,
      error: p.ortWebgpuError,
      runs: p.runs.ortWebgpu,
      vsTorch: p.maxAbsDiff.ortWebgpuVsTorch,
    },
    {
      engine: `${ort}, wasm EP (${threads})`,
      short: `ORT wasm (${threads})`,
      ms: p.ortWasmMs,
      error: p.ortWasmError,
      runs: p.runs.ortWasm,
      vsTorch: p.maxAbsDiff.ortWasmVsTorch,
    },
  ];
}

export function markdown(r: BenchResult): string {
  const a = r.adapter;
  const lines: string[] = [];
  lines.push(
    `Adapter: ${a.vendor || '?'} / ${a.architecture || '?'}${a.description ? ` (${a.description})` : ''}, ${a.runtime}, ${r.date.slice(0, 10)}, mode ${r.mode}, timestamps ${a.timestamps ? 'yes' : 'no'}`,
  );
  lines.push('');
  lines.push(
    '| shape | steps | batch | PGM ms | MDLM ms | PGM tok/s | MDLM tok/s | MDLM forwards | speed-up (MDLM/PGM) | FLOP ratio |',
  );
  lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const e of r.e2e) {
    lines.push(
      `| ${e.shape} | ${e.steps} | ${e.batch} | ${f(e.pgmMs, 0)} | ${f(e.mdlmMs, 0)} | ${f(e.pgmTokensPerS)} | ${f(e.mdlmTokensPerS)} | ${e.mdlmForwards} | ${f(e.ratio, 2)}x | ${f(e.flopRatio, 2)}x |`,
    );
  }
  if (r.generations?.length) {
    lines.push('');
    lines.push(
      'Whole generations as users run them (batch 1, a step in flight where the sampler keeps one), best of the repetitions:',
    );
    lines.push('');
    lines.push(
      '| shape | steps | model | first token ms | tokens/s | ms/step p50 | ms/step p95 | dispatches/step | weight MB/step | MDLM ms / this ms |',
    );
    lines.push('|---|---:|---|---:|---:|---:|---:|---:|---:|---:|');
    for (const g of r.generations) {
      const mdlm = r.generations.find((x) => x.shape === g.shape && x.steps === g.steps && x.model === 'MDLM');
      lines.push(
        `| ${g.shape} | ${g.steps} | ${g.model} | ${f(g.firstTokenMs, 0)} | ${f(g.tokensPerS)} | ${f(g.msPerStepP50)} | ${f(g.msPerStepP95)} | ${f(g.dispatchesPerStep)} | ${f(g.weightBytesPerStep / 1e6, 2)} | ${mdlm ? `${f(mdlm.totalMs / g.totalMs, 2)}x` : ''} |`,
      );
    }
  }
  if (r.incremental?.length) {
    lines.push('');
    lines.push('Incremental encoder (KV set) vs the exact PGM, same model, batch 1, stepped in turns:');
    lines.push('');
    lines.push(
      '| shape | steps | encoder | refresh | exact ms | incremental ms | speed-up | encoder rows, exact / incremental |',
    );
    lines.push('|---|---:|---|---:|---:|---:|---:|---:|');
    for (const e of r.incremental) {
      lines.push(
        `| ${e.shape} | ${e.steps} | ${e.encoder ?? 'incremental'} | ${e.refresh ?? 'never'} | ${f(e.exactMs, 0)} | ${f(e.incrementalMs, 0)} | ${f(e.speedup, 2)}x | ${e.exactEncoderRows} / ${e.incrementalEncoderRows} |`,
      );
    }
  }
  if (r.overlap?.length) {
    lines.push('');
    lines.push(
      'The PGM with a step in flight (the default) vs one step at a time (as stepped in turns above), whole generations alternating, best of 3:',
    );
    lines.push('');
    lines.push('| shape | steps | in flight ms | one at a time ms | speed-up |');
    lines.push('|---|---:|---:|---:|---:|');
    for (const e of r.overlap)
      lines.push(`| ${e.shape} | ${e.steps} | ${f(e.overlapMs, 0)} | ${f(e.oneAtATimeMs, 0)} | ${f(e.speedup, 2)}x |`);
  }
  lines.push('');
  lines.push(
    `Adapter peak: FMA ${f(r.peak.fmaGflops, 2)} GFLOP/s, copy ${f(r.peak.bandwidthGBs, 2)} GB/s. ` +
      `Engine matmul ${r.matmul.shape.join('x')}, best variant ${r.matmul.variant}: ${f(r.matmul.bestGflops, 2)} GFLOP/s = ${pct(r.matmul.fraction)} of the FMA peak` +
      ` (${Object.entries(r.matmul.variants ?? {})
        .map(([v, g]) => `${v} ${f(g, 2)}`)
        .join(', ')}).`,
  );
  if (r.peer) {
    const p = r.peer;
    lines.push('');
    lines.push(
      `Peer, one forward pass of ${p.model} (median; cross-origin isolated: ${p.ort.crossOriginIsolated ? 'yes' : 'no'}; ours vs ORT WebGPU max |diff| ${sci(p.maxAbsDiff.oursVsOrtWebgpu) || '-'}):`,
    );
    lines.push('');
    lines.push('| engine | ms per forward | runs | max abs diff vs PyTorch |');
    lines.push('|---|---:|---:|---:|');
    for (const row of peerRows(p))
      lines.push(
        `| ${row.engine} | ${row.ms === null ? `failed: ${row.error}` : f(row.ms)} | ${row.runs} | ${sci(row.vsTorch)} |`,
      );
  } else {
    lines.push('');
    lines.push(
      a.runtime === 'node'
        ? "Peer: none in Node (onnxruntime-web's WebGPU EP runs in browsers only); `npm run bench` measures it in Chromium."
        : 'Peer: none this run (the ONNX export failed: see the message above).',
    );
  }
  for (const p of r.profile) {
    const rows = r.kernels.filter((k) => k.arch === p.arch);
    lines.push('');
    const where =
      p.arch === 'pgm'
        ? `clean ${p.clean.join(',')}, queries ${p.queries.join(',')}`
        : `positions ${p.clean.join(',')}`;
    lines.push(
      `Kernels, ${p.arch.toUpperCase()} step ${p.step} of ${p.steps} (${p.shape}; ${where}): ${p.dispatches} dispatches, GPU ${f(p.gpuMs)} ms, step wall clock ${f(p.wallMs)} ms`,
    );
    lines.push('');
    lines.push('| kernel | calls | ms | share | GFLOP/s | GB/s | of peak |');
    lines.push('|---|---:|---:|---:|---:|---:|---:|');
    for (const k of rows) {
      lines.push(
        `| ${k.name} | ${k.calls} | ${f(k.ms, 2)} | ${pct(k.share)} | ${k.gflops === null ? '' : f(k.gflops, 2)} | ${k.gbps === null ? '' : f(k.gbps, 2)} | ${pct(k.fractionOfPeak)} |`,
      );
    }
  }
  return lines.join('\n');
}

export const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

/** Left: PGM vs MDLM latency per case (log scale). Right: measured speed-up vs FLOP ratio. */
export function svg(r: BenchResult): string {
  const cases = r.e2e;
  const W = 960;
  // A line under the legend for the peer comparison.
  const footer = r.peer ? 18 : 0;
  const H = 360 + footer;
  const pad = { l: 60, r: 20, t: 40, b: 70 };
  const panelW = (W - 3 * pad.l) / 2;
  const plotH = H - footer - pad.t - pad.b;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`,
  );
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(
    `<text x="${W / 2}" y="16" text-anchor="middle" font-size="13">${esc(`PGM vs MDLM, ${r.adapter.vendor} ${r.adapter.architecture} (${r.adapter.runtime}), ${r.date.slice(0, 10)}`)}</text>`,
  );
  const label = (i: number) => `L${cases[i].L} s${cases[i].steps} b${cases[i].batch}`;

  const panel = (
    x0: number,
    title: string,
    yLabel: string,
    series: { name: string; color: string; values: number[] }[],
    log: boolean,
  ) => {
    const all = series.flatMap((s) => s.values).filter((v) => v > 0);
    let lo = log ? 10 ** Math.floor(Math.log10(Math.min(...all))) : 0;
    let hi = log ? 10 ** Math.ceil(Math.log10(Math.max(...all))) : Math.max(...all) * 1.15;
    if (!(hi > lo)) [lo, hi] = [0, 1];
    const y = (v: number) =>
      pad.t +
      plotH -
      (log ? (Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo)) : (v - lo) / (hi - lo)) * plotH;
    out.push(`<text x="${x0 + panelW / 2}" y="${pad.t - 10}" text-anchor="middle" font-size="12">${esc(title)}</text>`);
    out.push(
      `<line x1="${x0}" y1="${pad.t}" x2="${x0}" y2="${pad.t + plotH}" stroke="#333"/><line x1="${x0}" y1="${pad.t + plotH}" x2="${x0 + panelW}" y2="${pad.t + plotH}" stroke="#333"/>`,
    );
    const ticks = log
      ? Array.from({ length: Math.round(Math.log10(hi / lo)) + 1 }, (_, i) => lo * 10 ** i)
      : Array.from({ length: 5 }, (_, i) => lo + ((hi - lo) * i) / 4);
    for (const t of ticks) {
      out.push(
        `<line x1="${x0 - 4}" y1="${y(t)}" x2="${x0 + panelW}" y2="${y(t)}" stroke="#ddd"/><text x="${x0 - 6}" y="${y(t) + 4}" text-anchor="end">${t >= 100 ? t.toFixed(0) : +t.toPrecision(2)}</text>`,
      );
    }
    out.push(
      `<text transform="translate(${x0 - 45},${pad.t + plotH / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`,
    );
    const groupW = panelW / Math.max(1, cases.length);
    const barW = (groupW * 0.8) / series.length;
    cases.forEach((_, i) => {
      const gx = x0 + i * groupW + groupW * 0.1;
      series.forEach((s, j) => {
        const v = s.values[i];
        const top = y(Math.max(v, log ? lo : 0));
        out.push(
          `<rect x="${gx + j * barW}" y="${top}" width="${barW - 1}" height="${pad.t + plotH - top}" fill="${s.color}"><title>${esc(`${s.name} ${label(i)}: ${v.toFixed(2)}`)}</title></rect>`,
        );
      });
      out.push(
        `<text transform="translate(${gx + groupW * 0.4},${pad.t + plotH + 12}) rotate(35)" font-size="10">${esc(label(i))}</text>`,
      );
    });
    series.forEach((s, j) => {
      out.push(
        `<rect x="${x0 + 10 + j * 110}" y="${H - footer - 18}" width="10" height="10" fill="${s.color}"/><text x="${x0 + 24 + j * 110}" y="${H - footer - 9}">${esc(s.name)}</text>`,
      );
    });
  };
  panel(
    pad.l,
    'Latency per generation (ms, log scale)',
    'ms',
    [
      { name: 'PGM', color: '#1f77b4', values: cases.map((c) => c.pgmMs) },
      { name: 'MDLM', color: '#d62728', values: cases.map((c) => c.mdlmMs) },
    ],
    true,
  );
  panel(
    2 * pad.l + panelW + pad.r,
    'PGM speed-up: measured vs FLOP ratio',
    'MDLM / PGM',
    [
      { name: 'measured', color: '#2ca02c', values: cases.map((c) => c.ratio) },
      { name: 'FLOP ratio', color: '#999999', values: cases.map((c) => c.flopRatio) },
    ],
    false,
  );
  if (r.peer) {
    const line = peerRows(r.peer)
      .map((row) => `${row.short} ${row.ms === null ? 'failed' : `${f(row.ms)} ms`}`)
      .join(', ');
    out.push(
      `<text x="${W / 2}" y="${H - 5}" text-anchor="middle" font-size="10">${esc(`Peer, one forward of ${r.peer.model}: ${line}`)}</text>`,
    );
  }
  out.push('</svg>');
  return out.join('\n');
}
