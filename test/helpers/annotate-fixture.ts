/**
 * Shared set-up of the annotate tests: a tiny random RoBERTa with the real klue tokenizer, a regression
 * run trained on 600 NSMC reviews, and a 2,000-row corpus (three Parquet files with 128-row groups plus a
 * JSONL file in which every 7th document is long), and helpers to run the CLI and read part files back.
 */
import { spawn } from 'node:child_process';
import { readdirSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { openTable, openTableWriter } from '../../src/data/table.js';
import { generateModelFolder } from '../../src/model/generate.js';
import { runCli, type CliResult } from './cli.js';
import { repoRoot, sharedPath } from './shared.js';

export interface AnnotateFixture {
  dir: string;
  model: string;
  run: string;
  corpus: string;
  /** Glob matching every corpus file. */
  input: string;
  ids: number[];
}

export const CORPUS_ROWS = 2000;

export async function cli(args: string[], env: Record<string, string> = {}): Promise<string> {
  const r = await runCli(args, env);
  if (r.code !== 0) throw new Error(`edu-train ${args.join(' ')} exited ${r.code}:\n${r.stderr}`);
  return r.stderr;
}

/** Like runCli, but asynchronous (several ranks at once); `onSpawn` gets the child (to kill it). */
export function runCliAsync(args: string[], env: Record<string, string> = {}, onSpawn?: (pid: number) => void): Promise<CliResult & { signal: string | null }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [join(repoRoot, 'dist', 'cli.js'), ...args], { cwd: repoRoot, env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => resolvePromise({ code: code ?? -1, signal, stdout, stderr }));
    if (onSpawn && child.pid) onSpawn(child.pid);
  });
}

export async function makeAnnotateFixture(dir: string): Promise<AnnotateFixture> {
  const model = join(dir, 'tiny');
  generateModelFolder(model, { modelType: 'roberta', tokenizerDir: sharedPath('models', 'tokenizer-only', 'klue-roberta-tokenizer'), seed: 3 });
  const t = await openTable(sharedPath('data', 'nsmc', 'ratings_train.txt'), { format: 'tsv', columns: ['document', 'label'] });
  const rows: { text: string[]; label: string[] } = { text: [], label: [] };
  for await (const b of t.batches(1024)) {
    for (let i = 0; i < b.numRows; i++) {
      rows.text.push(String(b.columns.document[i] ?? ''));
      rows.label.push(String(b.columns.label[i]));
    }
    if (rows.text.length >= 3000) break;
  }
  await t.close();
  const train = join(dir, 'train.csv');
  const w = await openTableWriter(train, [{ name: 'text', type: 'string' }, { name: 'label', type: 'string' }]);
  await w.write({ numRows: 600, columns: { text: rows.text.slice(2400, 3000), label: rows.label.slice(2400, 3000) } });
  await w.close();
  const run = join(dir, 'run');
  await cli(['train', '--model-dir', model, '--train', train, '--label-column', 'label', '--task', 'regression', '--epochs', '2',
    '--output', run, '--max-length', '64', '--threads', '2', '--quiet', '--cache-dir', join(dir, 'cache')]);

  const corpus = join(dir, 'corpus');
  mkdirSync(corpus);
  let row = 0;
  for (const [k, n] of [500, 700, 300].entries()) {
    const pw = await openTableWriter(join(corpus, `part-${k}.parquet`), [{ name: 'id', type: 'int64' }, { name: 'text', type: 'string' }, { name: 'src', type: 'string' }], { rowGroupRows: 128 });
    await pw.write({ numRows: n, columns: { id: Array.from({ length: n }, (_, i) => row + i), text: rows.text.slice(row, row + n), src: new Array(n).fill(`pq${k}`) } });
    await pw.close();
    row += n;
  }
  const lines: string[] = [];
  for (let i = 0; i < 500; i++) lines.push(JSON.stringify({ id: row + i, text: i % 7 === 0 ? rows.text[row + i].repeat(25) : rows.text[row + i], src: 'jsonl' }));
  writeFileSync(join(corpus, 'extra.jsonl'), `${lines.join('\n')}\n`);
  return { dir, model, run, corpus, input: join(corpus, '*'), ids: Array.from({ length: CORPUS_ROWS }, (_, i) => i) };
}

export type Scored = Map<number, Record<string, unknown>>;

/** Every row of every part file, by id; a duplicated id is an error. */
export async function readParts(outDir: string): Promise<Scored> {
  const out: Scored = new Map();
  for (const f of readdirSync(outDir).filter((n) => /^part-\d+-\d+\.parquet$/.test(n)).sort()) {
    const t = await openTable(join(outDir, f));
    const b = await t.readAll();
    await t.close();
    for (let i = 0; i < b.numRows; i++) {
      const id = b.columns.id[i] as number;
      if (out.has(id)) throw new Error(`id ${id} is in two rows (second in ${f})`);
      out.set(id, Object.fromEntries(Object.keys(b.columns).map((k) => [k, b.columns[k][i]])));
    }
  }
  return out;
}

/** id -> score, the multiset compared between runs. */
export function scores(s: Scored): Map<number, number> {
  return new Map([...s].map(([id, r]) => [id, r.score as number]));
}
