import { createEngine, PgmError, type Engine } from '../src/index.js';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const status = $('status');
const generateButton = $<HTMLButtonElement>('generate');
const stopButton = $<HTMLButtonElement>('stop');

let engine: Engine | undefined;
let controller: AbortController | undefined;

function showError(e: unknown): void {
  status.innerHTML = '';
  const p = document.createElement('p');
  p.className = 'error';
  p.textContent = e instanceof PgmError ? e.message : `Unexpected error: ${(e as Error).message}`;
  status.append(p);
}

async function start(): Promise<void> {
  if (!('gpu' in navigator)) {
    showError(new PgmError('webgpu', 'This browser has no WebGPU (navigator.gpu is undefined). Use a recent Chrome, Edge or Safari over https or localhost, or enable WebGPU in your browser flags.'));
    return;
  }
  const manifest = await (await fetch(new URL('../weights-manifest.json', import.meta.url))).json();
  if (!manifest.default) {
    status.textContent = 'No default model in weights-manifest.json yet.';
    return;
  }
  status.textContent = `Loading ${manifest.default}…`;
  engine = await createEngine({
    model: manifest.default,
    onProgress: ({ loadedBytes, totalBytes }) => {
      status.textContent = `Loading ${manifest.default}: ${(loadedBytes / 2 ** 20).toFixed(1)} / ${(totalBytes / 2 ** 20).toFixed(1)} MiB`;
    },
  });
  const a = engine.adapter;
  status.textContent = `${manifest.default} on ${a.vendor || 'unknown vendor'} ${a.architecture} (${a.description || 'no description'}), shader-f16: ${a.features.includes('shader-f16') ? 'yes' : 'no'}, max storage binding ${(a.maxStorageBufferBindingSize / 2 ** 20).toFixed(0)} MiB`;
  generateButton.disabled = false;
}

generateButton.onclick = async () => {
  if (!engine) return;
  const length = Number($<HTMLInputElement>('length').value);
  const grid = $('grid');
  grid.innerHTML = '';
  const cells = Array.from({ length }, () => grid.appendChild(Object.assign(document.createElement('div'), { className: 'cell' })));
  controller = new AbortController();
  generateButton.disabled = true;
  stopButton.disabled = false;
  try {
    const run = engine.generate({
      prompt: $<HTMLInputElement>('prompt').value || undefined,
      length,
      steps: Number($<HTMLInputElement>('steps').value),
      order: $<HTMLSelectElement>('order').value as 'random',
      seed: Number($<HTMLInputElement>('seed').value),
      signal: controller.signal,
    });
    for await (const step of run) {
      for (const c of cells) c.classList.remove('new');
      step.tokens.forEach((t, i) => t >= 0 && cells[i].classList.add('known'));
      for (const r of step.revealed) cells[r.position].classList.add('new');
      $('text').textContent = step.text;
      $('progress').textContent = `step ${step.step + 1} / ${step.steps} (${step.ms.toFixed(0)} ms)`;
    }
    const { stats } = await run;
    $('progress').textContent = `${stats.steps} steps in ${(stats.totalMs / 1000).toFixed(2)} s, ${stats.tokensPerSecond.toFixed(1)} tokens/s`;
  } catch (e) {
    if (!(e instanceof PgmError && e.code === 'aborted')) showError(e);
  } finally {
    generateButton.disabled = false;
    stopButton.disabled = true;
  }
};

stopButton.onclick = () => controller?.abort();

start().catch(showError);
