#!/usr/bin/env node
/**
 * Throughput and memory of `edu-train annotate`.
 *
 *   node scripts/bench-annotate.mjs [--work DIR] [--threads N] [--korquad-docs N] [--nsmc-docs N] [--rss-sizes 5000,50000] [--skip-throughput] [--skip-rss]
 *
 * 1. Throughput: a base-sized random RoBERTa (bert-base shape, klue-roberta tokenizer) with a regression
 *    head trained on it, annotating KorQuAD paragraphs (long-form Wikipedia text, --max-length 512) and NSMC
 *    reviews (short, --max-length 128): docs/s and tokens/s as annotate reports them, plus tokenizer-only speed.
 * 2. Memory: peak RSS (getrusage maxRSS of the annotate process) with a tiny model over Parquet and JSONL
 *    corpora of short texts at each --rss-sizes, to show it stays flat as the corpus grows.
 *
 * Needs the compiled library (npx tsc -p tsconfig.json) and ../shared. Work files go to --work (default
 * /tmp/edu-bench-annotate), never into the repository.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import os from 'node:os';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const shared = process.env.EDU_TRAIN_SHARED ?? resolve(repo, '..', 'shared');
const { values: a } = parseArgs({
  options: {
    work: { type: 'string', default: '/tmp/edu-bench-annotate' },
    threads: { type: 'string' },
    'korquad-docs': { type: 'string', default: '256' },
    'nsmc-docs': { type: 'string', default: '2000' },
    'rss-sizes': { type: 'string', default: '5000,50000' },
    'skip-throughput': { type: 'boolean', default: false },
    'skip-rss': { type: 'boolean', default: false },
  },
});
const work = resolve(a.work);
mkdirSync(work, { recursive: true });
const threads = a.threads ?? String(os.availableParallelism());
const { generateModelFolder } = await import(join(repo, 'dist/model/generate.js'));
const { openTable, openTableWriter } = await import(join(repo, 'dist/data/table.js'));
const { TextTokenizer } = await import(join(repo, 'dist/tokenize/tokenizer.js'));
const tokenizerDir = join(shared, 'models/tokenizer-only/klue-roberta-tokenizer');

const probe = join(work, 'rss-probe.mjs');
// Preloaded into the annotate process: its peak RSS (kernel getrusage, KiB on Linux) written at exit.
writeFileSync(probe, `import { writeFileSync } from 'node:fs';\nprocess.on('exit', () => { if (process.env.RSS_OUT) writeFileSync(process.env.RSS_OUT, String(process.resourceUsage().maxRSS)); });\n`);

function edu(args, { rssOut } = {}) {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, ['--import', probe, join(repo, 'dist/cli.js'), ...args], {
    cwd: repo, encoding: 'utf8', env: { ...process.env, ...(rssOut ? { RSS_OUT: rssOut } : {}) }, maxBuffer: 64 << 20,
  });
  if (r.status !== 0) throw new Error(`edu-train ${args.join(' ')} failed (${r.status}):\n${r.stderr}`);
  return { stderr: r.stderr, seconds: (performance.now() - t0) / 1000, rssMiB: rssOut ? Number(readFileSync(rssOut, 'utf8')) / 1024 : undefined };
}

async function nsmcTexts(n) {
  const t = await openTable(join(shared, 'data/nsmc/ratings_train.txt'), { format: 'tsv', columns: ['id', 'document', 'label'] });
  const out = { id: [], text: [], label: [] };
  for await (const b of t.batches(4096)) {
    for (let i = 0; i < b.numRows && out.text.length < n; i++) {
      out.id.push(Number(b.columns.id[i]));
      out.text.push(String(b.columns.document[i] ?? ''));
      out.label.push(String(b.columns.label[i]));
    }
    if (out.text.length >= n) break;
  }
  await t.close();
  return out;
}

function korquadParagraphs() {
  const j = JSON.parse(readFileSync(join(shared, 'data/korquad-v1-dev/KorQuAD_v1.0_dev.json'), 'utf8'));
  return [...new Set(j.data.flatMap((d) => d.paragraphs.map((p) => p.context)))];
}

async function writeParquet(file, cols, rowGroupRows = 4096) {
  const w = await openTableWriter(file, [{ name: 'id', type: 'int64' }, { name: 'text', type: 'string' }], { rowGroupRows });
  await w.write({ numRows: cols.text.length, columns: { id: cols.id, text: cols.text } });
  await w.close();
}

function parseRate(stderr) {
  const m = /: ([\d.]+k?) docs \(([\d.]+[kM]?) tokens\) in .*?: ([\d.]+k?) docs\/s, ([\d.]+k?) tokens\/s \[(.*?)\]/.exec(stderr);
  const trunc = /truncated (.*?) to/.exec(stderr);
  return m ? { docs: m[1], tokens: m[2], docsPerS: m[3], tokensPerS: m[4], engine: m[5], truncated: trunc?.[1] } : { raw: stderr };
}

const report = { machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, loadavg: os.loadavg().map((x) => x.toFixed(2)), threads }, throughput: [], rss: [] };

if (!a['skip-throughput']) {
  const base = join(work, 'base-roberta');
  if (!existsSync(join(base, 'config.json'))) {
    console.error('generating a bert-base-shaped RoBERTa with the klue tokenizer ...');
    generateModelFolder(base, { preset: 'bert-base', modelType: 'roberta', tokenizerDir, seed: 1 });
  }
  const run = join(work, 'base-run');
  if (!existsSync(join(run, 'run.json'))) {
    console.error('training a regression head on it (200 NSMC reviews) ...');
    const rows = await nsmcTexts(200);
    const w = await openTableWriter(join(work, 'train.csv'), [{ name: 'text', type: 'string' }, { name: 'label', type: 'string' }]);
    await w.write({ numRows: 200, columns: { text: rows.text, label: rows.label } });
    await w.close();
    edu(['train', '--model-dir', base, '--train', join(work, 'train.csv'), '--label-column', 'label', '--task', 'regression', '--epochs', '2',
      '--max-length', '128', '--output', run, '--threads', threads, '--quiet', '--cache-dir', join(work, 'cache')]);
  }
  const kq = korquadParagraphs().slice(0, Number(a['korquad-docs']));
  const kqFile = join(work, 'korquad.parquet');
  await writeParquet(kqFile, { id: kq.map((_, i) => i), text: kq });
  const ns = await nsmcTexts(Number(a['nsmc-docs']));
  const nsFile = join(work, 'nsmc.parquet');
  await writeParquet(nsFile, ns);
  for (const [name, file, maxLength, texts] of [['korquad paragraphs', kqFile, 512, kq], ['nsmc reviews', nsFile, 128, ns.text]]) {
    const out = join(work, `out-${maxLength}`);
    rmSync(out, { recursive: true, force: true });
    const r = edu(['annotate', '--run', run, '--input', file, '--output', out, '--max-length', String(maxLength), '--threads', threads, '--quiet'], { rssOut: join(work, 'rss') });
    const tok = TextTokenizer.load(join(work, 'base-roberta'), { maxLength });
    const t0 = performance.now();
    for (let i = 0; i < texts.length; i += 512) await tok.encode(texts.slice(i, i + 512));
    const tokS = (performance.now() - t0) / 1000;
    report.throughput.push({ corpus: name, maxLength, ...parseRate(r.stderr), wallSeconds: r.seconds.toFixed(1), peakRssMiB: r.rssMiB.toFixed(0), tokenizerOnlyDocsPerS: (texts.length / tokS).toFixed(0) });
    console.error(JSON.stringify(report.throughput.at(-1)));
  }
}

if (!a['skip-rss']) {
  const tiny = join(work, 'tiny-roberta');
  if (!existsSync(join(tiny, 'config.json'))) generateModelFolder(tiny, { modelType: 'roberta', tokenizerDir, seed: 2, head: 'seqcls', problemType: 'regression' });
  const sizes = a['rss-sizes'].split(',').map(Number);
  const all = await nsmcTexts(Math.max(...sizes));
  for (const n of sizes) {
    const cols = { id: all.id.slice(0, n), text: all.text.slice(0, n) };
    const pq = join(work, `rss-${n}.parquet`);
    await writeParquet(pq, cols, 8192);
    const jl = join(work, `rss-${n}.jsonl`);
    writeFileSync(jl, cols.text.map((t, i) => JSON.stringify({ id: cols.id[i], text: t })).join('\n') + '\n');
    for (const file of [pq, jl]) {
      const out = join(work, `rss-out-${n}`);
      rmSync(out, { recursive: true, force: true });
      const r = edu(['annotate', '--model-dir', tiny, '--input', file, '--output', out, '--max-length', '128', '--threads', threads, '--quiet'], { rssOut: join(work, 'rss') });
      report.rss.push({ rows: n, format: file.endsWith('.jsonl') ? 'jsonl' : 'parquet', peakRssMiB: r.rssMiB.toFixed(0), ...parseRate(r.stderr), wallSeconds: r.seconds.toFixed(1) });
      console.error(JSON.stringify(report.rss.at(-1)));
    }
  }
}

console.log(JSON.stringify(report, null, 1));
