/**
 * The demo page: checks WebGPU, lists the models of a weights manifest, loads each in a worker
 * of its own (the library's worker engine) and draws what it streams. Query parameters:
 *   ?manifest=<url>   the weights manifest to list (default: the package's own, whose models
 *                     the build emits with the page)
 *   ?model=<id|url>   the model to load first (default: the manifest's default; local:<name>: one
 *                     kept in this browser, see demo/local-model.ts)
 * The page's parts: the status panel (status.ts), the model picker (picker.ts, local-model.ts),
 * the engines in their workers (engines.ts), the controls (controls.ts), the runs and the race
 * (race.ts, view.ts).
 */
import { clearModelCache, PgmError } from '../src/index.js';
import { $, input } from './dom.js';
import { fitSettings, isBusy, setBusy, setUpControls, stopSignal } from './controls.js';
import { describeModel, loadModel, models, unload, type Slot } from './engines.js';
import { isLocalChoice, refreshLocalModels, setUpLocalModels } from './local-model.js';
import {
  currentSource,
  fillModelPicker,
  localSource,
  manifest,
  manifestUrl,
  params,
  readManifest,
  showUrlInput,
  sourceLabel,
  type ModelSource,
} from './picker.js';
import { generate } from './race.js';
import { clearProblem, describeAdapter, messageOf, onReload, showProblem, showWarnings } from './status.js';

/** Load the picked model (the race's twin goes with the one it raced). */
async function loadMain(source: ModelSource): Promise<void> {
  setBusy(true);
  clearProblem();
  showWarnings([]);
  $('model-info').textContent = '';
  unload('twin');
  try {
    const info = await loadModel('main', source, stopSignal());
    if (source.kind === 'local') fillModelPicker(info.label);
    performance.mark('pgm-model-ready', { detail: info });
    $('model-info').textContent = describeModel(info);
    showWarnings(info.warnings);
    fitSettings(info);
  } catch (e) {
    if (e instanceof PgmError && e.code === 'aborted')
      showProblem(`Loading ${sourceLabel(source)} stopped.`, false, {
        label: 'Load it again',
        run: () => void loadMain(source),
      });
    else showProblem(messageOf(e), e instanceof PgmError && e.code === 'device-lost');
  } finally {
    setBusy(false);
  }
}

async function reloadEngine(): Promise<void> {
  const main = models.get('main')?.source ?? currentSource();
  unload('main');
  unload('twin');
  if (main) await loadMain(main);
}

function wire(): void {
  setUpControls();
  onReload(() => void reloadEngine());
  $<HTMLSelectElement>('model').onchange = () => {
    const custom = showUrlInput();
    const source = currentSource();
    if (!custom && source) void loadMain(source);
  };
  $('load-url').onclick = () => {
    const source = currentSource();
    if (source) void loadMain(source);
  };
  $('controls').onsubmit = (e) => {
    e.preventDefault();
    void generate(false);
  };
  $('race').onclick = () => void generate(true);
  $('clear-cache').onclick = async () => {
    await clearModelCache();
    $('model-info').textContent += ' · cache cleared';
    await refreshLocalModels();
    fillModelPicker($<HTMLSelectElement>('model').value);
  };
  /** For tests and the curious: destroy the device of a model's worker, as a GPU reset would (demo/worker.ts). */
  (window as unknown as { pgmDemo: object }).pgmDemo = {
    loseDevice: (slot: Slot = 'main') => models.get(slot)?.worker.postMessage('lose-device'),
  };
}

/** A model directory's URL given as ?model= (https:, / or ./), not a manifest id. */
const isUrl = (model: string): boolean => /^(https?:|\/|\.)/.test(model);

/** Check WebGPU, then load the model ?model= asks for, else the manifest's default (and say why, where it is not the one asked for). */
async function start(): Promise<void> {
  wire();
  if (!(await describeAdapter())) return;
  setUpLocalModels({
    load: (model, label) => void loadMain({ kind: 'local', model, label }),
    busy: isBusy,
    problem: (message) => showProblem(message),
  });
  await refreshLocalModels();
  const asked = params.get('model') ?? undefined;
  let wanted = asked;
  let fallback: string | undefined;
  let listed = false;
  try {
    const manifestDefault = await readManifest();
    listed = true;
    fallback = manifestDefault ?? manifest[0]?.id;
    wanted ??= fallback;
  } catch (e) {
    showProblem(`${messageOf(e)}. You can still load a converted model directory by URL.`);
  }
  let unknown: string | undefined;
  if (
    listed &&
    asked !== undefined &&
    !isUrl(asked) &&
    !manifest.some((m) => m.id === asked) &&
    !isLocalChoice(asked)
  ) {
    const choices = manifest.map((m) => m.id).join(', ') || 'none';
    unknown = `?model=${asked}: ${manifestUrl ?? 'the packaged manifest'} has no such model (it has: ${choices}); give one of those ids or a model directory URL (https:, / or ./)`;
    wanted = fallback;
  }
  if (wanted !== undefined && isLocalChoice(wanted)) {
    fillModelPicker(wanted);
    return loadMain(localSource(wanted));
  }
  const fromManifest = wanted !== undefined && manifest.some((m) => m.id === wanted);
  fillModelPicker(fromManifest ? wanted : undefined);
  if (fromManifest) {
    await loadMain({ kind: 'manifest', manifestUrl, id: wanted! });
    // After the load, which clears earlier problems: the page says why this is not the model asked for.
    if (unknown) showProblem(`${unknown}. Loaded ${wanted} instead.`);
    return;
  }
  if (unknown) showProblem(`${unknown}.`);
  if (wanted && isUrl(wanted)) {
    input('model-url').value = wanted;
    return loadMain({ kind: 'url', url: new URL(wanted, location.href).href });
  }
  $('model-info').textContent = manifest.length
    ? ''
    : `No models in ${manifestUrl ?? 'the packaged manifest'} yet: load a converted model directory by URL.`;
  setBusy(false);
}

start().catch((e: unknown) => showProblem(messageOf(e)));
