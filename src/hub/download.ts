/**
 * Downloads the files edu-train needs from a Hugging Face repo into the hub cache layout (src/hub/cache.ts),
 * the way huggingface_hub's hf_hub_download does: HEAD `{endpoint}/{repo}/resolve/{revision}/{file}` for the
 * commit (X-Repo-Commit), the etag (X-Linked-Etag for LFS files, else ETag) and the size; GET the bytes into
 * blobs/<etag>.incomplete, continuing an interrupted file with an HTTP Range request; check sha256 (LFS) or
 * the git blob sha1 (small files) against the etag; rename to blobs/<etag>; symlink from snapshots/<commit>/.
 *
 * The transport is the HubFileSource interface: FetchHubSource uses Node's built-in fetch; a
 * @huggingface/hub based source could be dropped in without touching the cache logic.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Progress } from '../util/progress.js';
import { UsageError } from '../util/errors.js';
import { blobPath, linkSnapshotFile, markMissing, snapshotDir, writeRef } from './cache.js';

export const DEFAULT_ENDPOINT = 'https://huggingface.co';

export interface FileMeta {
  file: string;
  commit: string;
  /** sha256 (64 hex) for LFS files, git blob sha1 (40 hex) otherwise. */
  etag: string;
  size?: number;
  /** Where the bytes are (the CDN location of an LFS redirect, else the resolve URL). */
  url: string;
}

export interface HubFileSource {
  /** Metadata of repo@revision/file; null when the file does not exist there. */
  head(repo: string, revision: string, file: string): Promise<FileMeta | null>;
  /** The bytes from offset `start`; `start` in the answer is where they really begin (0 if the server ignored Range). */
  get(meta: FileMeta, start: number): Promise<{ start: number; body: AsyncIterable<Uint8Array> }>;
}

/** The hub could not be reached at all (no network, DNS failure, connection refused, HF_HUB_OFFLINE). */
export class HubUnreachableError extends Error {}

/** A downloaded file whose bytes do not hash to the hub's etag. */
export class ChecksumError extends Error {}

const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'ENETUNREACH', 'EHOSTUNREACH',
  'ECONNRESET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_SOCKET']);

function causeCode(e: unknown): string | undefined {
  const c = (e as { cause?: { code?: string; errors?: { code?: string }[] } })?.cause;
  return c?.code ?? c?.errors?.[0]?.code;
}

function cleanEtag(v: string | null): string | null {
  if (!v) return null;
  return v.replace(/^W\//, '').replace(/^"|"$/g, '');
}

export class FetchHubSource implements HubFileSource {
  readonly endpoint: string;
  private readonly token?: string;

  constructor(endpoint = process.env.HF_ENDPOINT || DEFAULT_ENDPOINT, token = process.env.HF_TOKEN) {
    this.endpoint = endpoint.replace(/\/+$/, '');
    this.token = token || undefined;
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return { 'user-agent': 'edu-train', ...(this.token ? { authorization: `Bearer ${this.token}` } : {}), ...extra };
  }

  private async request(url: string, init: RequestInit): Promise<Response> {
    try {
      return await fetch(url, init);
    } catch (e) {
      const code = causeCode(e);
      if (code === undefined || UNREACHABLE_CODES.has(code)) throw new HubUnreachableError(`${url}: ${code ?? (e as Error).message}`);
      throw e;
    }
  }

  async head(repo: string, revision: string, file: string): Promise<FileMeta | null> {
    let url = `${this.endpoint}/${repo}/resolve/${encodeURIComponent(revision)}/${file.split('/').map(encodeURIComponent).join('/')}`;
    // Relative redirects (renamed repos) are followed; an absolute one is the LFS file's CDN location.
    for (let hop = 0; hop < 5; hop++) {
      const res = await this.request(url, { method: 'HEAD', redirect: 'manual', headers: this.headers({ 'accept-encoding': 'identity' }) });
      const location = res.headers.get('location');
      if (res.status >= 300 && res.status < 400 && location && location.startsWith('/')) {
        url = new URL(location, this.endpoint).toString();
        continue;
      }
      if (res.status === 404) return null;
      if (res.status === 401 || res.status === 403) {
        throw new UsageError(`${repo}: access to ${file} denied (HTTP ${res.status}); the repo may be gated or private: set HF_TOKEN`);
      }
      if (res.status >= 400) throw new Error(`${url}: HTTP ${res.status}`);
      const commit = res.headers.get('x-repo-commit');
      const etag = cleanEtag(res.headers.get('x-linked-etag')) ?? cleanEtag(res.headers.get('etag'));
      if (!commit || !etag) throw new Error(`${url}: the server sent no X-Repo-Commit / ETag; is HF_ENDPOINT a Hugging Face hub?`);
      const sizeText = res.headers.get('x-linked-size') ?? res.headers.get('content-length');
      return { file, commit, etag, size: sizeText ? Number(sizeText) : undefined, url: location ?? url };
    }
    throw new Error(`${url}: too many redirects`);
  }

  async get(meta: FileMeta, start: number): Promise<{ start: number; body: AsyncIterable<Uint8Array> }> {
    const res = await this.request(meta.url, { headers: this.headers(start > 0 ? { range: `bytes=${start}-` } : {}) });
    if (res.status === 416 && start > 0) return this.get(meta, 0);
    if (!res.ok || !res.body) throw new Error(`${meta.url}: HTTP ${res.status}`);
    return { start: res.status === 206 ? start : 0, body: res.body as unknown as AsyncIterable<Uint8Array> };
  }
}

export interface DownloadOptions {
  cacheDir: string;
  revision?: string;
  source?: HubFileSource;
  quiet?: boolean;
  /** Tries per file when a transfer breaks off (each continues where the last stopped). Default 3. */
  attempts?: number;
  log?: (line: string) => void;
}

/** What a snapshot download fetched. */
export interface DownloadResult {
  dir: string;
  commit: string;
  files: string[];
}

function hasherFor(etag: string, size: number | undefined): { hash: Hash; kind: string } | null {
  if (/^[0-9a-f]{64}$/.test(etag)) return { hash: createHash('sha256'), kind: 'sha256' };
  if (/^[0-9a-f]{40}$/.test(etag) && size !== undefined) {
    // A git blob id: sha1 over "blob <size>\0" + content.
    return { hash: createHash('sha1').update(`blob ${size}\0`), kind: 'git sha1' };
  }
  return null;
}

/** Downloads one file into blobs/<etag> (continuing a .incomplete file) and verifies it. */
async function fetchBlob(meta: FileMeta, repo: string, o: DownloadOptions, source: HubFileSource): Promise<void> {
  const blob = blobPath(o.cacheDir, repo, meta.etag);
  if (existsSync(blob) && (meta.size === undefined || statSync(blob).size === meta.size)) return;
  mkdirSync(dirname(blob), { recursive: true });
  const partial = `${blob}.incomplete`;
  const attempts = o.attempts ?? 3;
  const progress = new Progress({ total: meta.size, unit: 'B', label: `download ${meta.file}`, quiet: o.quiet || (meta.size ?? 0) < 1 << 20 });
  let lastError: unknown;
  for (let attempt = 0; attempt < attempts; attempt++) {
    let have = existsSync(partial) ? statSync(partial).size : 0;
    if (meta.size !== undefined && have > meta.size) {
      rmSync(partial);
      have = 0;
    }
    try {
      const { start, body } = await source.get(meta, have);
      const check = hasherFor(meta.etag, meta.size);
      // The bytes already on disk are part of the checksum too.
      if (check && start > 0) {
        for await (const chunk of createReadStream(partial, { end: start - 1 })) check.hash.update(chunk as Buffer);
      }
      const fh = await open(partial, start > 0 ? 'r+' : 'w');
      try {
        await fh.truncate(start);
        let pos = start;
        if (attempt === 0) progress.tick(start);
        for await (const chunk of body) {
          await fh.write(chunk, 0, chunk.byteLength, pos);
          pos += chunk.byteLength;
          check?.hash.update(chunk);
          progress.tick(chunk.byteLength);
        }
        if (meta.size !== undefined && pos !== meta.size) throw new Error(`${meta.file}: got ${pos} of ${meta.size} bytes`);
      } finally {
        await fh.close();
      }
      if (check) {
        const got = check.hash.digest('hex');
        if (got !== meta.etag) {
          rmSync(partial, { force: true });
          throw new ChecksumError(`${repo}/${meta.file}: ${check.kind} ${got} does not match the hub's ${meta.etag}; the download was discarded`);
        }
      }
      renameSync(partial, blob);
      progress.finish();
      return;
    } catch (e) {
      if (e instanceof ChecksumError || e instanceof HubUnreachableError) throw e;
      lastError = e;
      o.log?.(`download ${meta.file}: ${(e as Error).message}; ${attempt + 1 < attempts ? 'resuming' : 'giving up'}`);
    }
  }
  throw new Error(`${repo}/${meta.file}: download failed after ${attempts} attempts (${(lastError as Error)?.message}); run again to continue from ${partial}`);
}

/**
 * Fetches a model folder: config.json and tokenizer.json (required), the tokenizer side files, the
 * sentence-transformers files its modules.json names, then the weights (model.safetensors, else
 * pytorch_model.bin). refs/<revision> is written last, so an interrupted download never looks complete.
 */
export async function downloadSnapshot(repo: string, o: DownloadOptions): Promise<DownloadResult> {
  const source = o.source ?? new FetchHubSource();
  const revision = o.revision ?? 'main';
  const config = await source.head(repo, revision, 'config.json');
  if (!config) throw new UsageError(`${repo}@${revision}: no config.json (does the repo exist, and is it a transformers model?)`);
  const commit = config.commit;
  const fetched: string[] = [];
  const take = async (meta: FileMeta): Promise<void> => {
    await fetchBlob(meta, repo, o, source);
    linkSnapshotFile(o.cacheDir, repo, commit, meta.file, meta.etag);
    fetched.push(meta.file);
  };
  // Later files are asked for at the commit config.json came from, so the snapshot is consistent.
  const optional = async (file: string): Promise<boolean> => {
    const meta = await source.head(repo, commit, file);
    if (!meta) {
      markMissing(o.cacheDir, repo, commit, file);
      return false;
    }
    await take(meta);
    return true;
  };
  await take(config);
  if (!(await optional('tokenizer.json'))) {
    throw new UsageError(`${repo}@${commit.slice(0, 12)} has no tokenizer.json; edu-train tokenizes only through tokenizer.json (a fast tokenizer). ` +
      `Place one in ${snapshotDir(o.cacheDir, repo, commit)} and pass that folder as --model-dir.`);
  }
  for (const f of ['tokenizer_config.json', 'special_tokens_map.json', 'sentence_bert_config.json', 'config_sentence_transformers.json']) await optional(f);
  if (await optional('modules.json')) {
    const modules = JSON.parse(readFileSync(join(snapshotDir(o.cacheDir, repo, commit), 'modules.json'), 'utf8')) as { path?: string; type?: string }[];
    for (const m of modules) {
      if (!m.path) continue;
      const cls = String(m.type ?? '').split('.').pop();
      if (cls === 'Pooling' || cls === 'Dense') await optional(`${m.path}/config.json`);
      if (cls === 'Dense' && !(await optional(`${m.path}/model.safetensors`))) await optional(`${m.path}/pytorch_model.bin`);
    }
  }
  if (!(await optional('model.safetensors')) && !(await optional('pytorch_model.bin'))) {
    throw new UsageError(`${repo}@${commit.slice(0, 12)} has neither model.safetensors nor pytorch_model.bin (sharded checkpoints are not downloaded by edu-train)`);
  }
  writeRef(o.cacheDir, repo, revision, commit);
  return { dir: snapshotDir(o.cacheDir, repo, commit), commit, files: fetched };
}
