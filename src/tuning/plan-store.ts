/**
 * Kernel plans remembered per adapter and variant set: in this process, in localStorage in a
 * page, in IndexedDB in a Web Worker (which has no localStorage), in a file in Node (set by
 * pgm-webgpu/node: `usePlanFile`). Every storage failure reads as "nothing stored": the plan
 * is measured again.
 */
import type { AdapterSummary } from '../gpu/context.js';
import { isPlan, VARIANT_SET_VERSION, type KernelPlan } from '../kernels/plan.js';

const remembered = new Map<string, KernelPlan>();

/** Plans kept across processes (Node): every plan by key, read and written whole. */
export interface PlanFile {
  read(): Promise<Record<string, unknown>>;
  write(plans: Record<string, unknown>): Promise<void>;
}

let planFile: PlanFile | undefined;

/** Keep plans in `file` from now on (undefined: the browser's storage, as before). */
export function usePlanFile(file: PlanFile | undefined): void {
  planFile = file;
}

const KEY_PREFIX = `pgm-webgpu.kernel-plan.v${VARIANT_SET_VERSION}:`;

/** The plans of the plan file with `change` made, written back (failures: nothing stored); entries of older variant sets or not plans at all are dropped. */
async function updatePlanFile(file: PlanFile, change: (plans: Record<string, unknown>) => void): Promise<void> {
  try {
    const plans = await file.read();
    for (const [key, plan] of Object.entries(plans))
      if (!key.startsWith(KEY_PREFIX) || !isPlan(plan)) delete plans[key];
    change(plans);
    await file.write(plans);
  } catch {
    // unwritable cache: the next process measures again
  }
}

/** The key of an adapter's plans; a device without `subgroups` (one the caller made) has its own. */
export const planKey = (adapter: AdapterSummary, subgroups = true): string =>
  `${KEY_PREFIX}${adapter.vendor}/${adapter.architecture}/${adapter.description}${subgroups ? '' : '/no-subgroups'}`;

function browserStorage(): Storage | undefined {
  try {
    return typeof window !== 'undefined' ? window.localStorage : undefined;
  } catch {
    return undefined; // storage blocked (privacy settings, sandboxed frame)
  }
}

/**
 * Plans in IndexedDB, for Web Workers (they have no localStorage; the demo's engine runs in
 * one). Every failure (no IndexedDB, blocked, quota) reads as "nothing stored".
 */
export const idbPlans = {
  async get(key: string): Promise<unknown> {
    return idbRequest('readonly', (store) => store.get(key)).catch(() => undefined);
  },
  async set(key: string, value: unknown): Promise<void> {
    await idbRequest('readwrite', (store) => store.put(value, key)).catch(() => undefined);
  },
  async delete(key: string): Promise<void> {
    await idbRequest('readwrite', (store) => store.delete(key)).catch(() => undefined);
  },
};

const IDB_STORE = 'kernel-plans';

async function idbRequest<T>(mode: IDBTransactionMode, op: (store: IDBObjectStore) => IDBRequest<T>): Promise<T> {
  if (typeof indexedDB === 'undefined') throw new Error('no IndexedDB');
  const db = await new Promise<IDBDatabase>((resolve, reject) => {
    const open = indexedDB.open('pgm-webgpu', 1);
    open.onupgradeneeded = () => open.result.createObjectStore(IDB_STORE);
    open.onsuccess = () => resolve(open.result);
    open.onerror = () => reject(open.error);
  });
  try {
    return await new Promise<T>((resolve, reject) => {
      const request = op(db.transaction(IDB_STORE, mode).objectStore(IDB_STORE));
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
  } finally {
    db.close();
  }
}

/** This process's copy, else the plan file (Node), localStorage (a page) or IndexedDB (a worker). */
export async function recall(key: string): Promise<KernelPlan | undefined> {
  const plan = remembered.get(key);
  if (plan) return plan;
  let stored: unknown;
  const local = browserStorage();
  try {
    stored = planFile
      ? (await planFile.read())[key]
      : local
        ? JSON.parse(local.getItem(key) ?? 'null')
        : await idbPlans.get(key);
  } catch {
    return undefined;
  }
  if (!isPlan(stored)) return undefined;
  remembered.set(key, stored);
  return stored;
}

export async function remember(key: string, plan: KernelPlan): Promise<void> {
  remembered.set(key, plan);
  if (planFile) return updatePlanFile(planFile, (plans) => void (plans[key] = plan));
  const local = browserStorage();
  if (!local) return idbPlans.set(key, plan);
  try {
    local.setItem(key, JSON.stringify(plan));
  } catch {
    // quota or blocked storage: this page measures again next time
  }
}

/** Forget remembered plans (all, or this adapter's), so the next load measures again. */
export async function forgetPlans(adapter?: AdapterSummary): Promise<void> {
  const keys = adapter ? [planKey(adapter), planKey(adapter, false)] : [...remembered.keys()];
  if (planFile)
    await updatePlanFile(planFile, (plans) =>
      (adapter ? keys : Object.keys(plans)).forEach((key) => delete plans[key]),
    );
  for (const key of keys) {
    remembered.delete(key);
    browserStorage()?.removeItem(key);
    await idbPlans.delete(key);
  }
}
