/**
 * Interrupted CLI runs (issue 8): SIGINT / SIGTERM during embed, predict, train, eval, export and annotate
 * exit 130 / 143 with one clear line, leave no target file and no temp file; annotate keeps its committed
 * parts and a rerun completes to the same rows as an uninterrupted run. The library installs no handlers.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { openTable } from '../src/data/table.js';
import { generateModelFolder } from '../src/model/generate.js';
import {
  handleInterrupt, onInterrupt, removeOnInterrupt, resetInterruptStateForTests, setInterruptMessage,
} from '../src/util/interrupt.js';
import { createAtomicFile } from '../src/util/atomic-write.js';
import { runCli } from './helpers/cli.js';
import { repoRoot, sharedPath } from './helpers/shared.js';
import { useTmpDirs } from './helpers/tmp.js';

const tmp = useTmpDirs('edu-interrupt-');
const TOKENIZER = () => sharedPath('models', 'tokenizer-only', 'klue-roberta-tokenizer');

interface Spawned {
  pid: number;
  done: Promise<{ code: number | null; signal: string | null; stderr: string; stdout: string }>;
  stderr: () => string;
}

function spawnCli(args: string[], env: Record<string, string> = {}): Spawned {
  const child = spawn(process.execPath, [join(repoRoot, 'dist', 'cli.js'), ...args], { cwd: repoRoot, env: { ...process.env, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const done = new Promise<{ code: number | null; signal: string | null; stderr: string; stdout: string }>((res, rej) => {
    child.on('error', rej);
    child.on('close', (code, signal) => res({ code, signal, stderr, stdout }));
  });
  return { pid: child.pid!, done, stderr: () => stderr };
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 60_000, stepMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/** Every temp/staging leftover the writers could produce, anywhere under dir. */
function leftovers(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return (readdirSync(dir, { recursive: true }) as string[]).filter((n) => /\.tmp-\d+|\.old-\d+/.test(n));
}

let dir: string;
let tiny: string; // seqcls regression, hidden 64: fast
let big: string; // seqcls regression, hidden 256 x 4 layers: slow enough to interrupt on 1 thread
let input: string; // 4000 rows id,text,label

beforeAll(() => {
  dir = tmp.make();
  tiny = join(dir, 'tiny');
  big = join(dir, 'big');
  generateModelFolder(tiny, { modelType: 'roberta', tokenizerDir: TOKENIZER(), seed: 1, head: 'seqcls', problemType: 'regression', numLabels: 1 });
  generateModelFolder(big, {
    modelType: 'roberta', tokenizerDir: TOKENIZER(), seed: 2, head: 'seqcls', problemType: 'regression', numLabels: 1,
    hidden: 256, layers: 4, heads: 4, intermediate: 1024,
  });
  input = join(dir, 'in.jsonl');
  const lines: string[] = [];
  for (let i = 0; i < 4000; i++) lines.push(JSON.stringify({ id: i, text: `${'이것은 테스트 문장입니다 '.repeat(1 + (i % 20))}${i}`, label: i % 3 }));
  writeFileSync(input, `${lines.join('\n')}\n`);
});

describe('the interrupt handler (in-process)', () => {
  it('runs cleanups newest first, removes live atomic temp files, prints one line and exits 128 + signo', async () => {
    resetInterruptStateForTests();
    const d = tmp.make();
    const file = await createAtomicFile(join(d, 'out.parquet'));
    await file.handle.write('partial');
    const order: string[] = [];
    onInterrupt(() => order.push('first'));
    onInterrupt(() => {
      order.push('second');
      throw new Error('a failing cleanup does not stop the others');
    });
    const staged = join(d, 'run.tmp-123');
    writeFileSync(staged, 'x');
    removeOnInterrupt(staged);
    const lines: string[] = [];
    const codes: number[] = [];
    const code = handleInterrupt('SIGTERM', { write: (s) => lines.push(s), exit: (c) => codes.push(c) });
    expect(code).toBe(143);
    expect(codes).toEqual([143]);
    expect(order).toEqual(['second', 'first']);
    expect(existsSync(file.tmpPath)).toBe(false);
    expect(existsSync(staged)).toBe(false);
    expect(lines.join('')).toMatch(/^edu-train: interrupted: no output written \(SIGTERM\)\n$/m);
    // A second signal while handling does nothing.
    handleInterrupt('SIGINT', { write: (s) => lines.push(s), exit: (c) => codes.push(c) });
    expect(codes).toEqual([143]);
    await file.abort();

    resetInterruptStateForTests();
    setInterruptMessage(() => '12 rows committed; rerun to resume');
    const out: string[] = [];
    expect(handleInterrupt('SIGINT', { write: (s) => out.push(s), exit: () => {} })).toBe(130);
    expect(out.join('')).toContain('edu-train: interrupted: 12 rows committed; rerun to resume (SIGINT)');
    resetInterruptStateForTests();
  });

  it('importing the library installs no signal handlers', async () => {
    const before = ['SIGINT', 'SIGTERM', 'SIGHUP'].map((s) => process.listenerCount(s));
    await import('../src/index.js');
    expect(['SIGINT', 'SIGTERM', 'SIGHUP'].map((s) => process.listenerCount(s))).toEqual(before);
  });
});

describe('interrupted CLI runs leave no output', () => {
  it('embed + SIGINT after the output writer opened: exit 130, no output, no temp file', async () => {
    const d = tmp.make();
    const out = join(d, 'emb.parquet');
    const p = spawnCli(['embed', '--model-dir', big, '--input', input, '--output', out, '--threads', '1', '--batch-size', '8', '--quiet']);
    await waitFor('the temp output file', () => readdirSync(d).some((n) => n.startsWith('.emb.parquet.tmp-')));
    await new Promise((r) => setTimeout(r, 300)); // a chunk or so into the forward passes
    process.kill(p.pid, 'SIGINT');
    const r = await p.done;
    expect(r.code, r.stderr).toBe(130);
    expect(r.stderr).toContain('edu-train: interrupted: no output written (SIGINT)');
    expect(readdirSync(d)).toEqual([]);
  });

  it('predict + SIGTERM: exit 143, no output, no temp file', async () => {
    const d = tmp.make();
    const out = join(d, 'pred.csv');
    const p = spawnCli(['predict', '--model-dir', big, '--input', input, '--output', out, '--threads', '1', '--embed-batch-size', '8', '--quiet']);
    await waitFor('the temp output file', () => readdirSync(d).some((n) => n.startsWith('.pred.csv.tmp-')));
    await new Promise((r) => setTimeout(r, 300));
    process.kill(p.pid, 'SIGTERM');
    const r = await p.done;
    expect(r.code, r.stderr).toBe(143);
    expect(r.stderr).toContain('edu-train: interrupted: no output written (SIGTERM)');
    expect(readdirSync(d)).toEqual([]);
  });

  it('train + SIGINT while the run folder is staged: no run folder, no staging folder, no cache temp file', async () => {
    const d = tmp.make();
    const out = join(d, 'run');
    const cache = join(d, 'cache');
    const p = spawnCli(['train', '--model-dir', tiny, '--train', input, '--task', 'classification', '--epochs', '100000', '--patience', 'off',
      '--batch-size', '4', '--output', out, '--threads', '1', '--quiet', '--cache-dir', cache, '--max-length', '32']);
    await waitFor('the staging folder', () => readdirSync(d).some((n) => n.startsWith('run.tmp-')), 120_000);
    await new Promise((r) => setTimeout(r, 500)); // some epochs into training (metrics.jsonl is written at the end)
    process.kill(p.pid, 'SIGINT');
    const r = await p.done;
    expect(r.code, r.stderr).toBe(130);
    expect(r.stderr).toContain('edu-train: interrupted: no output written (SIGINT)');
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(d).filter((n) => n !== 'cache')).toEqual([]);
    expect(leftovers(cache)).toEqual([]);
  });

  it('eval --output + SIGTERM while embedding: no report, no HTML, no cache temp file', async () => {
    const d = tmp.make();
    const small = join(d, 'small.jsonl');
    writeFileSync(small, readFileSync(input, 'utf8').split('\n').slice(0, 60).join('\n') + '\n');
    const run = join(d, 'run');
    const t = await runCli(['train', '--model-dir', big, '--train', small, '--task', 'classification', '--epochs', '1', '--output', run,
      '--threads', '1', '--quiet', '--no-cache', '--max-length', '32']);
    expect(t.code, t.stderr).toBe(0);
    const cache = join(d, 'cache');
    const report = join(d, 'eval.json');
    const p = spawnCli(['eval', '--run', run, '--data', input, '--output', report, '--threads', '1', '--embed-batch-size', '8',
      '--quiet', '--cache-dir', cache]);
    await new Promise((r) => setTimeout(r, 2500)); // loading + a few hundred of the 4000 texts
    expect(p.stderr()).toBe(''); // still running, no error
    process.kill(p.pid, 'SIGTERM');
    const r = await p.done;
    expect(r.code, r.stderr).toBe(143);
    expect(r.stderr).toContain('edu-train: interrupted: no output written (SIGTERM)');
    expect(existsSync(report)).toBe(false);
    expect(readdirSync(d).sort()).toEqual(['run', 'small.jsonl', ...(existsSync(cache) ? ['cache'] : [])].sort());
    expect(leftovers(cache)).toEqual([]);
  });

  it('export --format onnx + SIGINT at any moment: either a complete file (exit 0) or none (exit 130)', async () => {
    const d = tmp.make();
    const out = join(d, 'model.onnx');
    const p = spawnCli(['export', '--format', 'onnx', '--model-dir', big, '--output', out]);
    await waitFor('the export to start', () => readdirSync(d).length > 0, 30_000, 5).catch(() => {});
    process.kill(p.pid, 'SIGINT');
    const r = await p.done;
    if (r.code === 0) {
      expect(readdirSync(d)).toEqual(['model.onnx']);
    } else {
      expect(r.code, r.stderr).toBe(130);
      expect(r.stderr).toContain('edu-train: interrupted: no output written (SIGINT)');
      expect(readdirSync(d)).toEqual([]);
    }
  });
});

describe('interrupted annotate', () => {
  async function rows(out: string): Promise<Map<number, number>> {
    const m = new Map<number, number>();
    for (const f of readdirSync(out).filter((n) => n.startsWith('part-')).sort()) {
      const t = await openTable(join(out, f));
      for await (const b of t.batches(4096)) {
        for (let i = 0; i < b.numRows; i++) {
          const id = Number(b.columns.id[i]);
          expect(m.has(id), `row ${id} written twice`).toBe(false);
          m.set(id, Number(b.columns.score[i]));
        }
      }
      await t.close();
    }
    return m;
  }

  it('SIGINT after a checkpoint: exit 130, "N rows committed; rerun to resume", no temp file; the rerun completes to the same rows', async () => {
    const d = tmp.make();
    const corpus = join(d, 'corpus.jsonl');
    writeFileSync(corpus, readFileSync(input, 'utf8').split('\n').slice(0, 1500).join('\n') + '\n');
    const args = (out: string) => ['annotate', '--model-dir', tiny, '--input', corpus, '--output', out, '--threads', '1', '--quiet',
      '--chunk-rows', '64', '--rows-per-checkpoint', '64', '--max-length', '32'];
    const out = join(d, 'out');
    const p = spawnCli(args(out), { EDU_TRAIN_ANNOTATE_TEST_SLEEP_MS: '200' });
    const ckpt = join(out, 'checkpoints', '0.json');
    await waitFor('the first checkpoint', () => existsSync(ckpt), 120_000);
    process.kill(p.pid, 'SIGINT');
    const r = await p.done;
    expect(r.code, r.stderr).toBe(130);
    const m = /edu-train: interrupted: (\d+) rows committed; rerun to resume \(SIGINT\)/.exec(r.stderr);
    expect(m, r.stderr).not.toBeNull();
    const cp = JSON.parse(readFileSync(ckpt, 'utf8'));
    expect(Number(m![1])).toBe(cp.stats.rows);
    expect(cp.stats.rows).toBeGreaterThanOrEqual(64);
    expect(cp.stats.rows).toBeLessThan(1500);
    expect(leftovers(out)).toEqual([]);
    expect(readdirSync(out).filter((n) => n.startsWith('.'))).toEqual([]);
    expect(existsSync(join(out, 'completions', '0'))).toBe(false);
    expect(readdirSync(join(out, 'locks'))).toEqual([]); // the interrupt released the rank's lock

    const again = await runCli(args(out));
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).not.toMatch(/stale lock/);
    expect(again.stderr).toMatch(new RegExp(`resuming after ${cp.stats.rows} rows`));
    const ref = join(d, 'ref');
    const fresh = await runCli(args(ref));
    expect(fresh.code, fresh.stderr).toBe(0);
    const [got, want] = [await rows(out), await rows(ref)];
    expect(got.size).toBe(1500);
    expect([...got.entries()].sort((a, b) => a[0] - b[0])).toEqual([...want.entries()].sort((a, b) => a[0] - b[0]));
  });
});
