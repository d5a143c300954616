/**
 * Picking a model: the models of the weights manifest (?manifest=<url>, default the package's
 * own), the local models of this browser's cache (demo/local-model.ts), or a model directory by
 * URL; and the twin a race runs against the picked model.
 */
import { fetchManifest, PACKAGED_MANIFEST, type LocalId, type LocalModel, type ManifestModel } from '../src/index.js';
import { appendLocalOptions, isLocalChoice } from './local-model.js';
import { $, input } from './dom.js';

/** The picker's choice of a model directory by URL. */
const CUSTOM = '__url__';
export const params = new URLSearchParams(location.search);
/** undefined: the manifest and models packaged with the engine. */
export const manifestUrl = params.has('manifest') ? new URL(params.get('manifest')!, location.href).href : undefined;
/** The manifest's models: none until readManifest. */
export let manifest: ManifestModel[] = [];

/**
 * A manifest's model (manifestUrl undefined: the manifest packaged with the engine), a model
 * directory, or a local model (demo/local-model.ts: picked or dropped files, or local:<name>).
 */
export type ModelSource =
  | { kind: 'manifest'; manifestUrl: string | undefined; id: string }
  | { kind: 'url'; url: string }
  | { kind: 'local'; model: LocalModel; label: string };

/** A local model of the cache, by its id. */
export const localSource = (id: string): ModelSource => ({ kind: 'local', model: id as LocalId, label: id });

export function sourceLabel(source: ModelSource): string {
  return source.kind === 'manifest' ? source.id : source.kind === 'url' ? source.url : source.label;
}

/** Read the manifest (manifest then lists its models); resolves with its default model. */
export async function readManifest(): Promise<string | null> {
  // The engine's own bounded read and checks, so every entry listed here can be loaded.
  const m = manifestUrl === undefined ? PACKAGED_MANIFEST : await fetchManifest(manifestUrl);
  manifest = m.models;
  return m.default;
}

/** The picker lists at most this many models (a manifest of 200,000 would make the page crawl); ?model= reaches any. */
const MAX_LISTED = 500;

export function fillModelPicker(selected: string | undefined): void {
  const select = $<HTMLSelectElement>('model');
  select.replaceChildren();
  const listed = manifest.slice(0, MAX_LISTED);
  const wanted = manifest.find((m) => m.id === selected);
  if (wanted && !listed.includes(wanted)) listed.push(wanted);
  for (const m of listed) {
    const params = m.params ? `, ${(m.params / 1e6).toFixed(1)}M params` : '';
    select.append(new Option(`${m.id} (${m.arch.toUpperCase()}${params})`, m.id));
  }
  if (manifest.length > listed.length) {
    const more = new Option(
      `… ${manifest.length - listed.length} more in the manifest: open the page with ?model=<id>`,
      '',
    );
    more.disabled = true;
    select.append(more);
  }
  appendLocalOptions(select);
  select.append(new Option('Model directory by URL…', CUSTOM));
  select.value = selected && (manifest.some((m) => m.id === selected) || isLocalChoice(selected)) ? selected : CUSTOM;
  showUrlInput(select.value === CUSTOM);
}

/** The picker's choice is a model directory by URL: show its field and Load button. */
export function showUrlInput(show = $<HTMLSelectElement>('model').value === CUSTOM): boolean {
  $('model-url-label').hidden = !show;
  $('load-url').hidden = !show;
  return show;
}

/** The model the picker shows (undefined: a URL not given yet). */
export function currentSource(): ModelSource | undefined {
  const id = $<HTMLSelectElement>('model').value;
  if (isLocalChoice(id)) return localSource(id);
  if (id !== CUSTOM) return { kind: 'manifest', manifestUrl, id };
  const url = input('model-url').value.trim();
  return url ? { kind: 'url', url: new URL(url, location.href).href } : undefined;
}

/** The model raced against `id`: its manifest `twin`, else the first model of the other architecture. */
export function twinOf(id: string): ManifestModel | undefined {
  const me = manifest.find((m) => m.id === id);
  if (!me) return undefined;
  return manifest.find((m) => m.id === me.twin) ?? manifest.find((m) => m.arch !== me.arch);
}
