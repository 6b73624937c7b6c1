/**
 * --model-dir / --backbone -> the model folder to load. Order: --model-dir; else the Hugging Face cache
 * (refs/main -> snapshots/<commit>/); else a download into that cache when the hub is reachable. Offline,
 * the error lists the exact files to place and where.
 */
import { join } from 'node:path';
import { UsageError } from '../util/errors.js';
import { adaptModelFolder } from './adapt.js';
import { findCachedSnapshot, hubCacheDir, missingModelFiles, repoFolder } from './cache.js';
import { DEFAULT_ENDPOINT, downloadSnapshot, FetchHubSource, HubUnreachableError, type HubFileSource } from './download.js';
import { lookupBackbone, type BackboneEntry } from './registry.js';

export interface ResolveOptions {
  modelDir?: string;
  backbone?: string;
  revision?: string;
  quiet?: boolean;
  env?: NodeJS.ProcessEnv;
  /** Transport for downloads (default: fetch against HF_ENDPOINT). */
  source?: HubFileSource;
  log?: (line: string) => void;
}

export interface ResolvedModel {
  /** The folder to load (a view of it for mapped model types). */
  dir: string;
  entry: BackboneEntry | null;
  from: 'model-dir' | 'cache' | 'download';
}

export function isOffline(env: NodeJS.ProcessEnv): boolean {
  return ['1', 'true', 'yes', 'on'].includes(String(env.HF_HUB_OFFLINE ?? '').toLowerCase());
}

/** Files a folder for `entry` needs, for messages. */
export function expectedFiles(entry: BackboneEntry): string[] {
  return ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json',
    'model.safetensors (or pytorch_model.bin)', ...(entry.extraFiles ?? [])];
}

function offlineMessage(entry: BackboneEntry, cacheDir: string, reason: string, env: NodeJS.ProcessEnv): string {
  const repoDir = repoFolder(cacheDir, entry.repo);
  const endpoint = (env.HF_ENDPOINT || DEFAULT_ENDPOINT).replace(/\/+$/, '');
  return (
    `--backbone ${entry.name}: ${entry.repo} is not in the Hugging Face cache and cannot be downloaded (${reason}).\n` +
    `Place these files from ${endpoint}/${entry.repo} (keeping sub-folders):\n` +
    expectedFiles(entry).map((f) => `  ${f}\n`).join('') +
    `in ${join(repoDir, 'snapshots', 'local')}/ and write the word "local" into ${join(repoDir, 'refs', 'main')}\n` +
    `(or copy a cache filled elsewhere, e.g. by \`huggingface-cli download ${entry.repo}\`, to ${cacheDir}),\n` +
    `or put them in any folder and pass --model-dir DIR.` +
    (entry.note ? `\nNote: ${entry.note}` : '')
  );
}

export async function resolveModel(o: ResolveOptions): Promise<ResolvedModel> {
  const env = o.env ?? process.env;
  const entry = o.backbone ? lookupBackbone(o.backbone) : null;
  if (o.modelDir) return { dir: adaptModelFolder(o.modelDir), entry, from: 'model-dir' };
  if (!entry) throw new UsageError('pass --model-dir DIR or --backbone NAME (see `edu-train backbones`)');
  const cacheDir = hubCacheDir(env);
  const cached = findCachedSnapshot(cacheDir, entry.repo, o.revision);
  if (cached && missingModelFiles(cached).length === 0) return { dir: adaptModelFolder(cached), entry, from: 'cache' };
  if (isOffline(env)) throw new UsageError(offlineMessage(entry, cacheDir, 'HF_HUB_OFFLINE is set', env));
  try {
    const r = await downloadSnapshot(entry.repo, {
      cacheDir, revision: o.revision, quiet: o.quiet, log: o.log,
      source: o.source ?? new FetchHubSource(env.HF_ENDPOINT || DEFAULT_ENDPOINT, env.HF_TOKEN),
    });
    return { dir: adaptModelFolder(r.dir), entry, from: 'download' };
  } catch (e) {
    if (e instanceof HubUnreachableError) throw new UsageError(offlineMessage(entry, cacheDir, `hub unreachable: ${e.message}`, env));
    throw e;
  }
}

/** For the CLI: the folder --model-dir / --backbone name. */
export async function resolveModelDir(o: ResolveOptions): Promise<string> {
  return (await resolveModel(o)).dir;
}
