/**
 * Local models in the demo, no server: a converted model folder (config.json and its shards) or
 * the authors' Lightning .ckpt itself, picked with the two buttons or dropped anywhere on the
 * page. The page gives it to the model's worker engine as createWorkerEngine's `model` (Files and
 * directory handles cross to the worker as they are), where the library's createEngine loads it:
 * a .ckpt is converted there, read lazily and written into this browser's model cache as 64 MiB
 * shards; a folder is read from its files and cached too. Either then appears in the model
 * picker as local:<name> (localIdOf) on every later visit, and loads from the cache, offline.
 */
import { localModels, type LocalModel, type LocalModelInfo } from '../src/index.js';
import { $, el } from './dom.js';

/** What the page does for this module: load a local model, and whether it is busy (a load or a generation runs). */
export interface LocalModelHooks {
  load(model: LocalModel, label: string): void;
  busy(): boolean;
  problem(message: string): void;
}

let cached: LocalModelInfo[] = [];
const BUSY = 'A model is loading or a generation runs: stop it, then open the model again.';

/** Read the local models of this browser's cache again (after a load put one there, or the cache was cleared). */
export async function refreshLocalModels(): Promise<LocalModelInfo[]> {
  cached = await localModels().catch(() => []); // no Cache API (an insecure page): none to offer
  return cached;
}

export const isLocalChoice = (value: string): boolean => cached.some((m) => m.id === value);

/** The cached local models, as a group of the model picker. */
export function appendLocalOptions(select: HTMLSelectElement): void {
  if (!cached.length) return;
  const group = Object.assign(el('optgroup'), { label: 'In this browser (converted or opened here)' });
  for (const m of cached) {
    const c = m.dirConfig.model;
    group.append(
      new Option(
        `${m.id} (${c.arch.toUpperCase()}, ${m.dirConfig.dtype}, ${(m.bytes / 2 ** 20).toFixed(1)} MiB)`,
        m.id,
      ),
    );
  }
  select.append(group);
}

/**
 * What the user gave: one file that is not part of a converted folder (a .ckpt, whatever its
 * name) is a checkpoint; several files are a model folder's (the library says what is missing).
 */
function modelOf(files: File[]): { model: LocalModel; label: string } | undefined {
  if (files.length === 0) return undefined;
  if (files.length === 1 && !/\.(json|safetensors)$/i.test(files[0].name))
    return { model: files[0], label: files[0].name };
  const folder = files[0].webkitRelativePath.split('/')[0];
  return { model: files, label: folder ? `folder ${folder}` : `${files.length} files` };
}

/**
 * A drop's model: a dropped folder as its directory handle (Chromium; the handle is requested
 * during the event, as the items are gone after it), else the dropped files.
 */
async function droppedModel(
  handles: Promise<FileSystemHandle | null>[],
  files: File[],
  folderDropped: boolean,
): Promise<{ model: LocalModel; label: string } | undefined> {
  const dropped = await Promise.all(handles.map((h) => h.catch(() => null)));
  const folder = dropped.find((h): h is FileSystemDirectoryHandle => h?.kind === 'directory');
  if (folder) return { model: folder, label: `folder ${folder.name}` };
  return folderDropped ? undefined : modelOf(files);
}

/** Wire the buttons, the file inputs and dropping on the page. */
export function setUpLocalModels(hooks: LocalModelHooks): void {
  const folderInput = $<HTMLInputElement>('folder-input');
  const filesInput = $<HTMLInputElement>('files-input');
  $('open-folder').onclick = () => folderInput.click();
  $('open-files').onclick = () => filesInput.click();
  for (const input of [folderInput, filesInput]) {
    input.onchange = () => {
      const picked = modelOf([...(input.files ?? [])]);
      input.value = ''; // the same file picked again is a change again
      if (picked && hooks.busy()) hooks.problem(BUSY);
      else if (picked) hooks.load(picked.model, picked.label);
    };
  }
  const overlay = $('drop-overlay');
  const carriesFiles = (e: DragEvent) => e.dataTransfer?.types.includes('Files') ?? false;
  document.addEventListener('dragover', (e) => {
    if (!carriesFiles(e)) return;
    e.preventDefault(); // the drop is the page's (the browser would open the file instead)
    e.dataTransfer!.dropEffect = hooks.busy() ? 'none' : 'copy';
    overlay.hidden = hooks.busy();
  });
  document.addEventListener('dragleave', (e) => {
    if (e.relatedTarget === null) overlay.hidden = true; // left the window
  });
  document.addEventListener('drop', (e) => {
    if (!carriesFiles(e)) return;
    e.preventDefault();
    overlay.hidden = true;
    if (hooks.busy()) return hooks.problem(BUSY);
    const items = [...e.dataTransfer!.items].filter((i) => i.kind === 'file');
    // File System Access (Chromium): not in TypeScript's DOM types yet.
    const handleOf = (i: DataTransferItem) =>
      (
        i as DataTransferItem & { getAsFileSystemHandle?(): Promise<FileSystemHandle | null> }
      ).getAsFileSystemHandle?.() ?? Promise.resolve(null);
    const handles = items.map(handleOf);
    const folderDropped = items.some((i) => i.webkitGetAsEntry()?.isDirectory);
    void droppedModel(handles, [...e.dataTransfer!.files], folderDropped).then((dropped) => {
      if (dropped) hooks.load(dropped.model, dropped.label);
      else
        hooks.problem(
          'This browser cannot read a dropped folder: use "Open model folder…", or drop the files inside the folder.',
        );
    });
  });
}
