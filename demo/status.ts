/**
 * The status panel: what the GPU adapter offers (or why the demo cannot run here), the
 * warnings of a load, and a problem in words with a button for what fixes it.
 */
import { PgmError } from '../src/index.js';
import { $, button, el } from './dom.js';

export const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

/** What "Reload engine" does (the page's, set once: restart the picked model). */
let reload: () => void = () => undefined;

export function onReload(run: () => void): void {
  reload = run;
}

/** A problem in words, with a button for what fixes it: restarting the engine (device loss), or `action`. */
export function showProblem(message: string, offerReload = false, action?: { label: string; run: () => void }): void {
  const box = $('problem');
  box.replaceChildren(el('p', 'error', message));
  if (offerReload) action = { label: 'Reload engine', run: reload };
  if (action) box.append(button(action.label, action.run));
  box.hidden = false;
}

export function clearProblem(): void {
  $('problem').hidden = true;
  $('problem').replaceChildren();
}

export function messageOf(e: unknown): string {
  if (e instanceof PgmError) return e.message;
  return `Something went wrong: ${(e as Error)?.message ?? String(e)}`;
}

/** What a load survived (a cache write refused, a damaged cached copy), one line each: never silent. */
export function showWarnings(warnings: string[]): void {
  const box = $('load-warnings');
  box.replaceChildren(...warnings.map((w) => el('li', '', `Warning: ${w}`)));
  box.hidden = warnings.length === 0;
}

/** What to tell a visitor whose browser cannot run the demo: plain words, no stack trace. */
function showNoWebGpu(reason: string): void {
  $('adapter').textContent = '';
  const box = $('problem');
  box.classList.add('no-webgpu');
  const how = el('ul');
  how.append(
    ...[
      'Chrome or Edge 113+ on Windows, macOS and ChromeOS have WebGPU on by default; on Linux and Android, open chrome://flags, enable "Unsafe WebGPU Support" (#enable-unsafe-webgpu) and restart.',
      'Safari 26+ (macOS, iOS) has WebGPU; on older versions turn on Develop → Feature Flags → WebGPU.',
      'Firefox 141+ on Windows has WebGPU; elsewhere set dom.webgpu.enabled to true in about:config (Nightly).',
      'The page must be served over https or from localhost, and your GPU must not be blocklisted (see chrome://gpu).',
    ].map((line) => el('li', '', line)),
  );
  box.replaceChildren(el('p', 'error', reason), how);
  box.hidden = false;
  for (const e of $('controls').querySelectorAll<HTMLInputElement | HTMLButtonElement | HTMLSelectElement>(
    'input, button, select',
  ))
    e.disabled = true;
}

/** Describe the GPU adapter in the status panel; false (and why, in words) where WebGPU cannot run the demo. */
export async function describeAdapter(): Promise<boolean> {
  if (!window.isSecureContext) {
    showNoWebGpu(
      'WebGPU needs a secure page: this one is served over plain http from another machine. Open it over https or from localhost.',
    );
    return false;
  }
  if (!('gpu' in navigator) || !navigator.gpu) {
    showNoWebGpu('This browser does not support WebGPU, or it is turned off, so the demo cannot run here.');
    return false;
  }
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: 'high-performance' }).catch(() => null);
  if (!adapter) {
    showNoWebGpu(
      'This browser has WebGPU, but it found no usable GPU adapter (the GPU or its driver may be blocklisted), so the demo cannot run here.',
    );
    return false;
  }
  const info = adapter.info;
  const l = adapter.limits;
  const fallback = (info as GPUAdapterInfo & { isFallbackAdapter?: boolean }).isFallbackAdapter
    ? ' (software fallback)'
    : '';
  $('adapter').textContent =
    `GPU: ${info.vendor || 'unknown vendor'} ${info.architecture || ''}${info.description ? ` (${info.description})` : ''}${fallback} · ` +
    `shader-f16: ${adapter.features.has('shader-f16') ? 'yes' : 'no'} · subgroups: ${adapter.features.has('subgroups') ? 'yes' : 'no'} · ` +
    `max storage binding ${mib(l.maxStorageBufferBindingSize)} · max buffer ${mib(l.maxBufferSize)} · ` +
    `workgroup memory ${(l.maxComputeWorkgroupStorageSize / 1024).toFixed(0)} KiB · ${l.maxComputeInvocationsPerWorkgroup} invocations/workgroup`;
  return true;
}
