import { brief, fail } from '../errors.js';
import type { Architecture, ShardInfo } from './config.js';

/**
 * `weights-manifest.json` (repository top level): the published model directories the
 * demo and CLI can download, with the size and sha256 of every shard.
 */
export interface ManifestModel {
  id: string;
  arch: Architecture;
  /** Model directory: relative to the manifest's location, or an absolute URL. */
  path: string;
  description: string;
  /** Parameter count. */
  params: number;
  shards: ShardInfo[];
  license: string;
  [extra: string]: unknown;
}

export interface WeightsManifest {
  version: 1;
  default: string | null;
  models: ManifestModel[];
}

const SHA256 = /^[0-9a-f]{64}$/;

/** Validate a shard list (`config.json` `shards` or a manifest entry's); `where` names the file. */
export function validateShards(shards: unknown, where: string): ShardInfo[] {
  const bad = (why: string): never => fail('config', `${where}: ${why}`);
  if (!Array.isArray(shards) || shards.length === 0) bad('"shards" must be a non-empty array');
  const seen = new Set<string>();
  for (const [i, s] of (shards as unknown[]).entries()) {
    const r = s as Record<string, unknown>;
    if (typeof r !== 'object' || r === null) bad(`shards[${i}] is not an object`);
    if (typeof r.file !== 'string' || !/^[\w.-]+\.safetensors$/.test(r.file))
      bad(`shards[${i}].file must be a plain *.safetensors file name, got ${brief(r.file)}`);
    if (seen.has(r.file as string)) bad(`shard ${r.file as string} is listed twice`);
    seen.add(r.file as string);
    if (!Number.isSafeInteger(r.size) || (r.size as number) < 8)
      bad(`shards[${i}].size must be a byte count, got ${brief(r.size)}`);
    if (typeof r.sha256 !== 'string' || !SHA256.test(r.sha256))
      bad(`shards[${i}].sha256 must be 64 lowercase hex digits`);
  }
  return shards as ShardInfo[];
}

/** Validate a parsed `weights-manifest.json`. */
export function validateManifest(m: unknown, where = 'weights-manifest.json'): WeightsManifest {
  const bad = (why: string): never => fail('config', `${where}: ${why}`);
  if (typeof m !== 'object' || m === null || Array.isArray(m)) bad('not a JSON object');
  const r = m as Record<string, unknown>;
  if (r.version !== 1) bad(`unsupported version ${brief(r.version)} (expected 1)`);
  if (!Array.isArray(r.models)) bad('"models" must be an array');
  const ids = new Set<string>();
  for (const [i, e] of (r.models as unknown[]).entries()) {
    const x = e as Record<string, unknown>;
    const at = `models[${i}]`;
    if (typeof x !== 'object' || x === null) bad(`${at} is not an object`);
    if (typeof x.id !== 'string' || !/^[\w.-]+$/.test(x.id)) bad(`${at}.id must be a simple name, got ${brief(x.id)}`);
    if (ids.has(x.id as string)) bad(`model id ${x.id as string} is listed twice`);
    ids.add(x.id as string);
    if (x.arch !== 'pgm' && x.arch !== 'mdlm') bad(`${at}.arch must be "pgm" or "mdlm", got ${brief(x.arch)}`);
    for (const k of ['path', 'description', 'license'] as const)
      if (typeof x[k] !== 'string' || !(x[k] as string).length) bad(`${at}.${k} must be a non-empty string`);
    if (!Number.isSafeInteger(x.params) || (x.params as number) <= 0) bad(`${at}.params must be a positive integer`);
    validateShards(x.shards, `${where} ${at}`);
  }
  if (r.default !== null && !(typeof r.default === 'string' && ids.has(r.default)))
    bad(`"default" must be null or the id of a listed model, got ${brief(r.default)}`);
  return r as unknown as WeightsManifest;
}

/** The manifest entry with `id` (or the default when `id` is omitted). */
export function findModel(manifest: WeightsManifest, id?: string): ManifestModel {
  const want = id ?? manifest.default;
  if (want === null) return fail('config', 'weights-manifest.json: no default model; pass a model id');
  return (
    manifest.models.find((m) => m.id === want) ??
    fail(
      'config',
      `weights-manifest.json: no model "${want}" (available: ${manifest.models.map((m) => m.id).join(', ') || 'none'})`,
    )
  );
}
