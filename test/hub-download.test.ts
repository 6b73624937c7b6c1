/**
 * Downloads into the Hugging Face cache layout, against a hub stand-in on 127.0.0.1 (node:http) that serves a
 * generated model folder the way huggingface.co does: HEAD /{repo}/resolve/{rev}/{file} answers X-Repo-Commit and
 * an ETag (git blob sha1) for small files, or a 302 to a CDN URL with X-Linked-Etag (sha256) / X-Linked-Size for
 * LFS files; the CDN honours Range. No test reaches the internet.
 */
import { createHash } from 'node:crypto';
import { cpSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, relative } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadEncoder } from '../src/encoder.js';
import { blobPath, repoFolder } from '../src/hub/cache.js';
import { ChecksumError, downloadSnapshot, FetchHubSource } from '../src/hub/download.js';
import { resolveModel } from '../src/hub/resolve.js';
import { generateModelFolder } from '../src/model/generate.js';
import { sharedPath } from './helpers/shared.js';
import { useTmpDirs } from './helpers/tmp.js';

const tmp = useTmpDirs('edu-hub-');
const COMMIT = 'a'.repeat(8) + '0123456789abcdef0123456789abcdef';
const REPO = 'sentence-transformers/LaBSE';

function listFiles(dir: string, prefix = ''): string[] {
  return readdirSync(dir).flatMap((n) => (statSync(join(dir, n)).isDirectory() ? listFiles(join(dir, n), `${prefix}${n}/`) : [`${prefix}${n}`]));
}

interface HubOptions {
  /** Per file: on the first GET send only this many bytes, then drop the connection. */
  cutAfter?: Record<string, number>;
  /** Per file: serve these bytes instead (the etag stays that of the real file). */
  corrupt?: Record<string, Buffer>;
}

class FakeHub {
  server!: Server;
  log: { method: string; url: string; range?: string }[] = [];
  private cut = new Set<string>();
  constructor(readonly folder: string, readonly repo: string, readonly o: HubOptions = {}) {}

  get endpoint(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return this;
  }

  stop(): Promise<void> {
    return new Promise((r) => this.server.close(() => r()));
  }

  private isLfs(file: string): boolean {
    return /\.(safetensors|bin)$/.test(file);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = decodeURIComponent(req.url ?? '');
    this.log.push({ method: req.method!, url, range: req.headers.range });
    const cdn = /^\/cdn\/(.+)$/.exec(url);
    if (cdn) return this.serveBytes(req, res, cdn[1]);
    const m = /^\/(.+?\/.+?)\/resolve\/([^/]+)\/(.+)$/.exec(url);
    const file = m?.[3] ?? '';
    const path = join(this.folder, file);
    if (!m || m[1] !== this.repo || !existsSync(path) || statSync(path).isDirectory()) {
      res.writeHead(404, { 'x-error-code': 'EntryNotFound' }).end();
      return;
    }
    const bytes = readFileSync(path);
    const headers: Record<string, string> = { 'x-repo-commit': COMMIT };
    if (this.isLfs(file)) {
      const sha = createHash('sha256').update(bytes).digest('hex');
      res.writeHead(302, { ...headers, 'x-linked-etag': `"${sha}"`, 'x-linked-size': String(bytes.length), location: `${this.endpoint}/cdn/${file}` }).end();
      return;
    }
    const sha1 = createHash('sha1').update(`blob ${bytes.length}\0`).update(bytes).digest('hex');
    res.writeHead(200, { ...headers, etag: `"${sha1}"`, 'content-length': String(bytes.length) });
    res.end(req.method === 'HEAD' ? undefined : bytes);
  }

  private serveBytes(req: IncomingMessage, res: ServerResponse, file: string): void {
    let bytes = this.o.corrupt?.[file] ?? readFileSync(join(this.folder, file));
    let status = 200;
    const headers: Record<string, string> = { 'accept-ranges': 'bytes' };
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range) {
      const start = Number(range[1]);
      headers['content-range'] = `bytes ${start}-${bytes.length - 1}/${bytes.length}`;
      bytes = bytes.subarray(start);
      status = 206;
    }
    const cutAt = this.o.cutAfter?.[file];
    if (cutAt !== undefined && !this.cut.has(file)) {
      this.cut.add(file);
      res.writeHead(status, { ...headers, 'content-length': String(bytes.length) });
      // FIN, not RST: a reset could discard bytes the client has not read yet (flaky under load).
      res.write(bytes.subarray(0, cutAt), () => setTimeout(() => res.socket?.end(), 50));
      return;
    }
    res.writeHead(status, { ...headers, 'content-length': String(bytes.length) });
    res.end(bytes);
  }
}

/** A LaBSE-shaped tiny folder: BERT + CLS pooling + Dense(tanh) + Normalize. */
function labseLike(dir: string): string {
  generateModelFolder(dir, {
    preset: 'tiny', hidden: 32, layers: 1, heads: 2, intermediate: 64, modelType: 'bert',
    tokenizerDir: sharedPath('models', 'tokenizer-only', 'all-minilm-l6-v2'),
    sentenceTransformers: true, stPooling: ['cls'], stDense: { outFeatures: 32 }, normalize: true, seed: 11,
  });
  return dir;
}

describe('downloading into the Hugging Face cache', () => {
  let source: string;
  beforeAll(() => {
    source = labseLike(join(tmp.make(), 'labse'));
  });

  it('fetches the snapshot in the huggingface_hub layout, then finds it in the cache without the network', async () => {
    const hub = await new FakeHub(source, REPO).start();
    const cache = tmp.make();
    const env = { HF_HUB_CACHE: cache, HF_ENDPOINT: hub.endpoint };
    try {
      const r = await resolveModel({ backbone: 'labse', env, quiet: true });
      expect(r.from).toBe('download');
      const repoDir = repoFolder(cache, REPO);
      expect(r.dir).toBe(join(repoDir, 'snapshots', COMMIT));
      expect(readFileSync(join(repoDir, 'refs', 'main'), 'utf8')).toBe(COMMIT);
      // Every file the model has, and nothing it does not need.
      expect(listFiles(r.dir).sort()).toEqual(listFiles(source).filter((f) => !f.endsWith('vocab.txt')).sort());
      // Weights: a relative symlink to blobs/<sha256>; small files: blobs/<git sha1>.
      const weights = join(r.dir, 'model.safetensors');
      const sha = createHash('sha256').update(readFileSync(join(source, 'model.safetensors'))).digest('hex');
      expect(lstatSync(weights).isSymbolicLink()).toBe(true);
      expect(readlinkSync(weights)).toBe(relative(r.dir, blobPath(cache, REPO, sha)));
      expect(readlinkSync(join(r.dir, '2_Dense', 'config.json'))).toMatch(/^\.\.\/\.\.\/\.\.\/blobs\/[0-9a-f]{40}$/);
      expect(existsSync(join(repoDir, '.no_exist', COMMIT, 'config_sentence_transformers.json'))).toBe(true);
      // Later resolves use the cache: no request at all.
      const before = hub.log.length;
      const again = await resolveModel({ backbone: 'labse', env, quiet: true });
      expect(again).toMatchObject({ from: 'cache', dir: r.dir });
      expect(hub.log.length).toBe(before);
      // And the downloaded folder embeds exactly like the original.
      const [a, b] = [await loadEncoder(source), await loadEncoder(r.dir)];
      const ea = await a.embed(['hello world'], { pooling: 'sentence-transformers' });
      const eb = await b.embed(['hello world'], { pooling: 'sentence-transformers' });
      expect(Array.from(eb.embeddings)).toEqual(Array.from(ea.embeddings));
      a.dispose();
      b.dispose();
    } finally {
      await hub.stop();
    }
  });

  it('an interrupted transfer continues with a Range request, within one call and across calls', async () => {
    const size = statSync(join(source, 'model.safetensors')).size;
    const half = Math.floor(size / 2);
    // Within one call: the first GET breaks off, the retry asks for the rest.
    const hub = await new FakeHub(source, REPO, { cutAfter: { 'model.safetensors': half } }).start();
    const cache = tmp.make();
    try {
      const r = await downloadSnapshot(REPO, { cacheDir: cache, source: new FetchHubSource(hub.endpoint), quiet: true });
      // The client continues from what it kept on disk: at most the bytes sent before the break (fetch may drop
      // chunks still queued when the stream errors), never from 0 and never past them.
      const gets = hub.log.filter((l) => l.url === '/cdn/model.safetensors');
      expect(gets).toHaveLength(2);
      expect(gets[0].range).toBeUndefined();
      const resumedAt = Number(/^bytes=(\d+)-$/.exec(gets[1].range ?? '')?.[1]);
      expect(resumedAt).toBeGreaterThan(0);
      expect(resumedAt).toBeLessThanOrEqual(half);
      expect(readFileSync(join(r.dir, 'model.safetensors')).equals(readFileSync(join(source, 'model.safetensors')))).toBe(true);
    } finally {
      await hub.stop();
    }
    // Across calls: a process that died mid-file leaves blobs/<etag>.incomplete; the next run continues it.
    const hub2 = await new FakeHub(source, REPO, { cutAfter: { 'model.safetensors': half } }).start();
    const cache2 = tmp.make();
    try {
      await expect(downloadSnapshot(REPO, { cacheDir: cache2, source: new FetchHubSource(hub2.endpoint), quiet: true, attempts: 1 }))
        .rejects.toThrow(/run again to continue/);
      const sha = createHash('sha256').update(readFileSync(join(source, 'model.safetensors'))).digest('hex');
      const partial = `${blobPath(cache2, REPO, sha)}.incomplete`;
      const kept = statSync(partial).size;
      expect(kept).toBeGreaterThan(0);
      expect(kept).toBeLessThanOrEqual(half);
      expect(existsSync(join(repoFolder(cache2, REPO), 'refs', 'main'))).toBe(false); // not complete: not findable
      const r = await downloadSnapshot(REPO, { cacheDir: cache2, source: new FetchHubSource(hub2.endpoint), quiet: true });
      expect(hub2.log.filter((l) => l.url === '/cdn/model.safetensors').at(-1)?.range).toBe(`bytes=${kept}-`);
      expect(readFileSync(join(r.dir, 'model.safetensors')).equals(readFileSync(join(source, 'model.safetensors')))).toBe(true);
      expect(existsSync(partial)).toBe(false);
    } finally {
      await hub2.stop();
    }
  });

  it('rejects a file whose sha256 does not match the X-Linked-Etag, keeping nothing of it', async () => {
    const real = readFileSync(join(source, 'model.safetensors'));
    const bad = Buffer.from(real);
    bad[bad.length - 1] ^= 0xff;
    const hub = await new FakeHub(source, REPO, { corrupt: { 'model.safetensors': bad } }).start();
    const cache = tmp.make();
    try {
      const p = downloadSnapshot(REPO, { cacheDir: cache, source: new FetchHubSource(hub.endpoint), quiet: true });
      await expect(p).rejects.toBeInstanceOf(ChecksumError);
      await expect(p).rejects.toThrow(/model\.safetensors: sha256 [0-9a-f]{64} does not match the hub's [0-9a-f]{64}/);
      const sha = createHash('sha256').update(real).digest('hex');
      expect(existsSync(blobPath(cache, REPO, sha))).toBe(false);
      expect(existsSync(`${blobPath(cache, REPO, sha)}.incomplete`)).toBe(false);
      expect(existsSync(join(repoFolder(cache, REPO), 'refs', 'main'))).toBe(false);
    } finally {
      await hub.stop();
    }
  });

  it('a repo without tokenizer.json fails before the weights are fetched, naming the file', async () => {
    const dir = join(tmp.make(), 'notok');
    labseLike(dir);
    rmSync(join(dir, 'tokenizer.json'));
    const hub = await new FakeHub(dir, 'pkshatech/GLuCoSE-base-ja').start();
    try {
      await expect(resolveModel({ backbone: 'glucose-ja', env: { HF_HUB_CACHE: tmp.make(), HF_ENDPOINT: hub.endpoint }, quiet: true }))
        .rejects.toThrow(/has no tokenizer\.json; edu-train tokenizes only through tokenizer\.json/);
      expect(hub.log.some((l) => l.url.includes('model.safetensors'))).toBe(false);
    } finally {
      await hub.stop();
    }
  });

  it('offline (HF_HUB_OFFLINE or connection refused): the error names the files and where to put them', async () => {
    const cache = tmp.make();
    const offline = resolveModel({ backbone: 'labse', env: { HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '1' } });
    await expect(offline).rejects.toThrow(/HF_HUB_OFFLINE is set/);
    const msg = await offline.catch((e: Error) => e.message);
    const snap = join(repoFolder(cache, REPO), 'snapshots', 'local');
    for (const f of ['config.json', 'tokenizer.json', 'model.safetensors (or pytorch_model.bin)', 'modules.json', '1_Pooling/config.json',
      '2_Dense/config.json', '2_Dense/model.safetensors', 'sentence_bert_config.json']) {
      expect(msg).toContain(`  ${f}\n`);
    }
    expect(msg).toContain(snap);
    expect(msg).toContain(join(repoFolder(cache, REPO), 'refs', 'main'));
    expect(msg).toContain('--model-dir');
    // A port nobody listens on.
    const hub = await new FakeHub(source, REPO).start();
    const dead = hub.endpoint;
    await hub.stop();
    await expect(resolveModel({ backbone: 'labse', env: { HF_HUB_CACHE: cache, HF_ENDPOINT: dead } }))
      .rejects.toThrow(/cannot be downloaded \(hub unreachable: .*ECONNREFUSED/);
    // The offline recipe works: files in snapshots/local + refs/main = local.
    cpSync(source, snap, { recursive: true });
    mkdirSync(join(repoFolder(cache, REPO), 'refs'), { recursive: true });
    writeFileSync(join(repoFolder(cache, REPO), 'refs', 'main'), 'local');
    await expect(resolveModel({ backbone: 'labse', env: { HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '1' } })).resolves.toMatchObject({ from: 'cache', dir: snap });
  });
});
