/**
 * Generating: one run of the picked model with the controls' settings, or the race against its
 * twin (the MDLM, then the PGM with each encoder), one after the other, and the race's summary
 * of the speed-ups with a side-by-side replay at the measured speed.
 */
import { PgmError, type EncoderMode, type GenerationStats } from '../src/index.js';
import { $, button, el } from './dom.js';
import { encoderSettings, isBusy, readSettings, setBusy, stopSignal, type GenerationSettings } from './controls.js';
import { loadModel, models, type Slot } from './engines.js';
import { manifestUrl, twinOf } from './picker.js';
import { clearProblem, messageOf, showProblem } from './status.js';
import { RunView } from './view.js';

let replayController: AbortController | undefined;

/** One run on screen: a model's slot, what it is called there and its settings (the PGM's encoder among them). */
interface Lane {
  slot: Slot;
  name: string;
  settings: GenerationSettings;
}

const archOf = (slot: Slot): 'pgm' | 'mdlm' => models.get(slot)!.info.arch;

/** "MDLM", "PGM exact", "PGM incremental (refresh every 4 steps)". */
function laneName(slot: Slot, { encoder, refresh }: GenerationSettings): string {
  const arch = archOf(slot).toUpperCase();
  if (encoder === undefined || encoder === 'exact') return encoder === undefined ? arch : `${arch} ${encoder}`;
  return `${arch} ${encoder} (refresh ${refresh === undefined ? 'never' : `every ${refresh} steps`})`;
}

/**
 * The race: the MDLM, then the PGM with the exact encoder, then the PGM with the incremental
 * one (delayed when the controls pick it), then the PGM with the adaptive one, the KV-set lanes
 * with the refresh of the controls when they picked that encoder (a picked MDLM's controls are
 * off: its twin's lanes never refresh). The PGM lanes share its engine.
 */
function raceLanes(settings: GenerationSettings): Lane[] {
  const slots: Slot[] = ['main', 'twin'];
  const mdlm = slots.find((s) => archOf(s) === 'mdlm');
  const pgm = slots.find((s) => archOf(s) === 'pgm');
  if (mdlm === undefined || pgm === undefined)
    return slots.map((slot) => ({ slot, name: laneName(slot, settings), settings }));
  const { encoder, refresh } = encoderSettings();
  const runs: [Slot, GenerationSettings][] = [
    [mdlm, settings],
    [pgm, { ...settings, encoder: 'exact' }],
    [
      pgm,
      {
        ...settings,
        encoder: encoder === 'delayed' ? 'delayed' : 'incremental',
        refresh: encoder === 'adaptive' ? undefined : refresh,
      },
    ],
    [pgm, { ...settings, encoder: 'adaptive', refresh: encoder === 'adaptive' ? refresh : undefined }],
  ];
  return runs.map(([slot, s]) => ({ slot, name: laneName(slot, s), settings: s }));
}

async function runOne({ slot, settings }: Lane, view: RunView): Promise<GenerationStats | undefined> {
  const run = models.get(slot)!.engine.generate({ ...settings, signal: stopSignal() });
  try {
    for await (const step of run) {
      if (view.events.length === 0) performance.mark(`pgm-first-token-${slot}`);
      view.step(step);
    }
    const result = await run;
    performance.mark(`pgm-done-${slot}`);
    view.done(result);
    return result.stats;
  } catch (e) {
    if (e instanceof PgmError && e.code === 'aborted') {
      view.note('stopped');
      return undefined;
    }
    view.note('failed');
    throw e;
  }
}

/** Generate with the controls' settings: the picked model alone, or (`race`) the race against its twin, loaded first if need be. */
export async function generate(race: boolean): Promise<void> {
  if (isBusy()) return;
  let settings: GenerationSettings;
  try {
    settings = readSettings();
  } catch (e) {
    showProblem(messageOf(e));
    return;
  }
  performance.mark('pgm-generate');
  replayController?.abort();
  setBusy(true);
  clearProblem();
  $('race-summary').hidden = true;
  const runs = $('runs');
  runs.replaceChildren();
  runs.classList.toggle('race', race);
  try {
    const main = models.get('main')!;
    if (race && !models.has('twin')) {
      const twin = twinOf((main.source as { id: string }).id)!;
      await loadModel('twin', { kind: 'manifest', manifestUrl, id: twin.id }, stopSignal());
    }
    const single = { ...settings, ...encoderSettings() };
    const lanes: Lane[] = race
      ? raceLanes(settings)
      : [{ slot: 'main', name: laneName('main', single), settings: single }];
    runs.style.setProperty('--lanes', String(lanes.length));
    const views = lanes.map((lane, i) => {
      const view = new RunView(`${models.get(lane.slot)!.info.label} · ${lane.name}`, settings.length);
      if (i > 0) view.note(`waiting for ${lanes[i - 1].name} to finish`);
      runs.append(view.root);
      return view;
    });
    // One after the other: on one GPU, concurrent runs would slow each other down and the
    // measured speed-ups would mean little.
    const results: (GenerationStats | undefined)[] = [];
    for (const [i, lane] of lanes.entries()) {
      if (stopSignal().aborted) {
        for (const view of views.slice(i)) view.note('not started (stopped)');
        break;
      }
      results.push(await runOne(lane, views[i]));
    }
    if (race && results.length === lanes.length && results.every(Boolean))
      showRace(lanes, results as GenerationStats[], views);
  } catch (e) {
    showProblem(messageOf(e), e instanceof PgmError && e.code === 'device-lost');
  } finally {
    setBusy(false);
  }
}

/** "2.41× faster" (or slower): how much less time `fast` took than `slow`. */
function speedup(fast: GenerationStats, slow: GenerationStats): string {
  const x = slow.totalMs / fast.totalMs;
  return `${x.toFixed(2)}× ${x >= 1 ? 'faster' : 'slower'}`;
}

function showRace(lanes: Lane[], results: GenerationStats[], views: RunView[]): void {
  const lane = (arch: string, encoder: (e?: EncoderMode) => boolean) =>
    lanes.findIndex((l) => archOf(l.slot) === arch && encoder(l.settings.encoder));
  const mdlm = results[lane('mdlm', () => true)];
  const exact = results[lane('pgm', (e) => e === 'exact')];
  const kept = lane('pgm', (e) => e === 'incremental' || e === 'delayed');
  const incremental = results[kept];
  const adaptive = results[lane('pgm', (e) => e === 'adaptive')];
  const mode = lanes[kept]?.settings.encoder;
  const p = el('p');
  p.dataset.testid = 'speedup';
  if (mdlm && exact && incremental && adaptive) {
    const headline = el(
      'strong',
      '',
      `PGM exact is ${speedup(exact, mdlm)} than MDLM; PGM ${mode} is ${speedup(incremental, mdlm)} than MDLM and ${speedup(incremental, exact)} than exact; PGM adaptive is ${speedup(adaptive, exact)} than exact`,
    );
    const once =
      mode === 'delayed' ? 'encodes each token twice (when it joins and one step later)' : 'encodes each token once';
    p.append(
      headline,
      `. Same settings and seed, measured one after the other, each model in a worker of its own on its own WebGPU device, so no run slowed another; the ${mode} lane ${once}, the adaptive one also those the GPU finds stale, the exact one every clean token at every step.`,
    );
  } else {
    p.textContent = 'Same settings and seed, measured one after the other.';
  }
  const list = el('ul');
  results.forEach((r, i) => {
    const rows = archOf(lanes[i].slot) === 'pgm' ? 'encoder rows' : 'network rows';
    const li = el(
      'li',
      '',
      `${lanes[i].name}: ${(r.totalMs / 1000).toFixed(2)} s, ${r.tokensPerSecond.toFixed(1)} tokens/s, ${(r.totalMs / r.steps).toFixed(1)} ms per step, ${r.encoderRows} ${rows}`,
    );
    li.dataset.testid = 'lane-speed';
    list.append(li);
  });
  const replay = button('Replay side by side at measured speed', () => {
    replayController?.abort();
    replayController = new AbortController();
    for (const v of views) void v.replay(replayController.signal);
  });
  $('race-summary').replaceChildren(p, list, replay);
  $('race-summary').hidden = false;
}
