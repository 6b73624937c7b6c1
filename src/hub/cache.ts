/**
 * The Hugging Face hub cache layout, shared with huggingface_hub / transformers so a model downloaded by
 * either side is found by the other:
 *
 *   <cache>/models--ORG--NAME/refs/main            the commit hash `main` pointed to
 *   <cache>/models--ORG--NAME/blobs/<etag>         file contents (etag = sha256 for LFS files, git sha1 otherwise)
 *   <cache>/models--ORG--NAME/snapshots/<commit>/F relative symlink to ../../blobs/<etag>
 *   <cache>/models--ORG--NAME/.no_exist/<commit>/F marks F as absent at that commit
 *
 * <cache> is $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, relative } from 'node:path';

export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  if (env.HF_HOME) return join(env.HF_HOME, 'hub');
  return join(homedir(), '.cache', 'huggingface', 'hub');
}

export function repoFolder(cacheDir: string, repo: string): string {
  return join(cacheDir, `models--${repo.split('/').join('--')}`);
}

const COMMIT = /^[0-9a-f]{40}$/;

/** The commit a revision names in the cache (refs/<rev>, or the revision itself when it is a commit hash). */
export function cachedCommit(cacheDir: string, repo: string, revision = 'main'): string | null {
  if (COMMIT.test(revision)) return revision;
  const ref = join(repoFolder(cacheDir, repo), 'refs', revision);
  if (!existsSync(ref)) return null;
  const commit = readFileSync(ref, 'utf8').trim();
  return commit || null;
}

export function snapshotDir(cacheDir: string, repo: string, commit: string): string {
  return join(repoFolder(cacheDir, repo), 'snapshots', commit);
}

/** The snapshot folder of repo@revision if the cache has one with a config.json, else null. */
export function findCachedSnapshot(cacheDir: string, repo: string, revision = 'main'): string | null {
  const commit = cachedCommit(cacheDir, repo, revision);
  if (!commit) return null;
  const dir = snapshotDir(cacheDir, repo, commit);
  return existsSync(join(dir, 'config.json')) ? dir : null;
}

/** Which of the files a usable model folder needs are missing from `dir`. */
export function missingModelFiles(dir: string): string[] {
  const missing: string[] = [];
  if (!existsSync(join(dir, 'config.json'))) missing.push('config.json');
  if (!existsSync(join(dir, 'tokenizer.json'))) missing.push('tokenizer.json');
  const weights = ['model.safetensors', 'model.safetensors.index.json', 'pytorch_model.bin', 'pytorch_model.bin.index.json'];
  if (!weights.some((w) => existsSync(join(dir, w)))) missing.push('model.safetensors (or pytorch_model.bin)');
  return missing;
}

export function writeRef(cacheDir: string, repo: string, revision: string, commit: string): void {
  if (COMMIT.test(revision)) return;
  const ref = join(repoFolder(cacheDir, repo), 'refs', revision);
  mkdirSync(dirname(ref), { recursive: true });
  writeFileSync(ref, commit);
}

export function blobPath(cacheDir: string, repo: string, etag: string): string {
  return join(repoFolder(cacheDir, repo), 'blobs', etag);
}

/** snapshots/<commit>/<file> -> the blob, as a relative symlink like huggingface_hub (a copy where symlinks fail). */
export function linkSnapshotFile(cacheDir: string, repo: string, commit: string, file: string, etag: string): string {
  const target = join(snapshotDir(cacheDir, repo, commit), file);
  const blob = blobPath(cacheDir, repo, etag);
  mkdirSync(dirname(target), { recursive: true });
  rmSync(target, { force: true });
  try {
    symlinkSync(relative(dirname(target), blob), target);
  } catch {
    const tmp = `${target}.tmp-${process.pid}`;
    writeFileSync(tmp, readFileSync(blob));
    renameSync(tmp, target);
  }
  return target;
}

/** Records that `file` does not exist at `commit`, so later lookups need not ask the hub. */
export function markMissing(cacheDir: string, repo: string, commit: string, file: string): void {
  const p = join(repoFolder(cacheDir, repo), '.no_exist', commit, file);
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, '');
}
