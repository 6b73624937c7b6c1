/**
 * CLI input validation (issue 8): hostile or mistaken arguments and data get one clear error naming the
 * problem, exit code 2, and nothing is written (the working folder is unchanged, no temp file left).
 *
 * Decisions pinned here:
 *  - An empty text ('') is valid everywhere: it is embedded / scored as [CLS][SEP]. A missing text (null)
 *    is an error in embed / predict / train / eval (drop or fill the row); annotate scores it as ''.
 *  - Invalid UTF-8 is decoded with U+FFFD and counted; embed and predict print the count as a warning.
 *  - Outputs are checked before any model work: supported extension, parent folder exists, is a folder
 *    and is writable (a probe file, removed again), the path is not a folder, and not one of the inputs.
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { generateModelFolder } from '../src/model/generate.js';
import { runCli } from './helpers/cli.js';
import { sharedPath } from './helpers/shared.js';
import { useTmpDirs } from './helpers/tmp.js';

const tmp = useTmpDirs('edu-cli-validation-');

let dir: string; // inputs, model and run; outputs go to fresh folders
let model: string;
let run: string;
let good: string;

function jsonl(name: string, rows: Record<string, unknown>[]): string {
  const p = join(dir, name);
  writeFileSync(p, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return p;
}

const ROWS = Array.from({ length: 40 }, (_, i) => ({ id: i, text: `문장 ${i} 입니다`, label: i % 3 }));
const withRow = (i: number, patch: Record<string, unknown>) => ROWS.map((r, k) => (k === i ? { ...r, ...patch } : r));

/** A folder nothing can be created in (a chmod 555 folder, or /sys when running as root), or null. */
function unwritableDir(): string | null {
  const d = tmp.make();
  chmodSync(d, 0o555);
  try {
    writeFileSync(join(d, 'probe'), 'x');
    rmSync(join(d, 'probe'));
  } catch {
    return d;
  }
  chmodSync(d, 0o755);
  return existsSync('/sys') ? '/sys' : null; // root ignores the mode bits; sysfs refuses new files even to root
}

beforeAll(async () => {
  dir = tmp.make();
  model = join(dir, 'model');
  generateModelFolder(model, { modelType: 'roberta', tokenizerDir: sharedPath('models', 'tokenizer-only', 'klue-roberta-tokenizer'), seed: 5 });
  good = jsonl('good.jsonl', ROWS);
  jsonl('null-label.jsonl', withRow(5, { label: null }));
  jsonl('nan-label.jsonl', withRow(5, { label: 'NaN' }));
  writeFileSync(join(dir, 'nan-label.csv'), 'id,text,label\n' + ROWS.map((r) => `${r.id},${r.text},${r.id === 7 ? 'NaN' : r.label}`).join('\n') + '\n');
  writeFileSync(join(dir, 'inf-label.csv'), 'id,text,label\n' + ROWS.map((r) => `${r.id},${r.text},${r.id === 7 ? '1e999' : r.label}`).join('\n') + '\n');
  jsonl('null-text.jsonl', withRow(3, { text: null }));
  jsonl('empty-text.jsonl', withRow(3, { text: '' }));
  jsonl('number-text.jsonl', withRow(3, { text: 12 }));
  const bytes = Buffer.from(ROWS.map((r) => JSON.stringify(r)).join('\n') + '\n', 'utf8');
  const bad = Buffer.from(bytes.toString('latin1').replace('문장 4 '.split('').map((c) => Buffer.from(c).toString('latin1')).join(''), '\xff\xfe 4 '), 'latin1');
  writeFileSync(join(dir, 'bad-utf8.jsonl'), bad);
  writeFileSync(join(dir, 'empty.jsonl'), '');
  mkdirSync(join(dir, 'folder.csv'));
  run = join(dir, 'run');
  const t = await runCli(['train', '--model-dir', model, '--train', good, '--task', 'classification', '--epochs', '1', '--output', run,
    '--threads', '1', '--quiet', '--no-cache', '--max-length', '32']);
  expect(t.code, t.stderr).toBe(0);
});

/** Runs the CLI in a fresh output folder; expects exit 2, the message, and that nothing at all was written. */
async function rejects(args: (out: string) => string[], message: RegExp): Promise<void> {
  const out = tmp.make();
  const inputsBefore = snapshot(dir);
  const r = await runCli(args(out));
  expect(r.code, `${r.stderr}\n${r.stdout}`).toBe(2);
  expect(r.stderr).toMatch(message);
  expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  expect(readdirSync(out)).toEqual([]);
  expect(snapshot(dir)).toEqual(inputsBefore);
}

function snapshot(d: string): Record<string, string> {
  const s: Record<string, string> = {};
  for (const n of readdirSync(d, { recursive: true }) as string[]) {
    const p = join(d, n);
    try {
      s[n] = readFileSync(p).toString('base64').slice(0, 64) + String(readFileSync(p).length);
    } catch {
      s[n] = 'dir';
    }
  }
  return s;
}

const T = () => ['--model-dir', model, '--epochs', '1', '--threads', '1', '--quiet', '--no-cache', '--max-length', '32'];

describe('sizes', () => {
  it.each([
    ['embed --batch-size 0', (o: string) => ['embed', '--model-dir', model, '--input', good, '--output', join(o, 'e.csv'), '--batch-size', '0'], /--batch-size must be a positive integer/],
    ['embed --batch-size -3', (o: string) => ['embed', '--model-dir', model, '--input', good, '--output', join(o, 'e.csv'), '--batch-size', '-3'], /--batch-size must be a positive integer/],
    ['embed --batch-size 1e9', (o: string) => ['embed', '--model-dir', model, '--input', good, '--output', join(o, 'e.csv'), '--batch-size', '1e9'], /--batch-size must be at most 65536/],
    ['embed --batch-size 2.5', (o: string) => ['embed', '--model-dir', model, '--input', good, '--output', join(o, 'e.csv'), '--batch-size', '2.5'], /--batch-size must be a positive integer/],
    ['embed --max-length 0', (o: string) => ['embed', '--model-dir', model, '--input', good, '--output', join(o, 'e.csv'), '--max-length', '0'], /--max-length must be a positive integer/],
    ['embed --max-length 100000000', (o: string) => ['embed', '--model-dir', model, '--input', good, '--output', join(o, 'e.csv'), '--max-length', '100000000'], /--max-length 100000000 is longer than the model allows/],
    ['embed --threads 0', (o: string) => ['embed', '--model-dir', model, '--input', good, '--output', join(o, 'e.csv'), '--threads', '0'], /--threads must be a positive integer/],
    ['embed --threads 100000', (o: string) => ['embed', '--model-dir', model, '--input', good, '--output', join(o, 'e.csv'), '--threads', '100000'], /--threads must be at most 1024/],
    ['predict --embed-batch-size 0', (o: string) => ['predict', '--run', run, '--input', good, '--output', join(o, 'p.csv'), '--embed-batch-size', '0'], /--embed-batch-size must be a positive integer/],
    ['annotate --rows-per-checkpoint -1', (o: string) => ['annotate', '--run', run, '--input', good, '--output', join(o, 'a'), '--rows-per-checkpoint', '-1'], /--rows-per-checkpoint must be a positive integer/],
    ['annotate --rank -1', (o: string) => ['annotate', '--run', run, '--input', good, '--output', join(o, 'a'), '--rank', '-1'], /--rank must be a non-negative integer/],
    ['train --epochs 0', (o: string) => ['train', ...T(), '--train', good, '--task', 'classification', '--output', join(o, 'r'), '--epochs', '0'], /--epochs must be a positive integer/],
    ['train --dropout 1.5', (o: string) => ['train', ...T(), '--train', good, '--task', 'classification', '--output', join(o, 'r'), '--dropout', '1.5'], /--dropout must be in \[0, 1\), got 1.5/],
    ['train --lr -1', (o: string) => ['train', ...T(), '--train', good, '--task', 'classification', '--output', join(o, 'r'), '--lr', '-1'], /--lr must be a positive number/],
    ['train --val-split 1.5', (o: string) => ['train', ...T(), '--train', good, '--task', 'classification', '--output', join(o, 'r'), '--val-split', '1.5'], /--val-split must be in \(0, 1\)/],
    ['train --threshold NaN', (o: string) => ['train', ...T(), '--train', good, '--task', 'regression', '--output', join(o, 'r'), '--threshold', 'NaN'], /--threshold must be a number/],
  ])('%s', (_name, args, msg) => rejects(args, msg));
});

describe('data', () => {
  it.each([
    ['missing text column', (o: string) => ['embed', '--model-dir', model, '--input', good, '--output', join(o, 'e.csv'), '--text-column', 'nope'], /--text-column nope: no such column; the input has id, text, label/],
    ['missing id column', (o: string) => ['predict', '--run', run, '--input', good, '--output', join(o, 'p.csv'), '--id-column', 'nope'], /--id-column nope: no such column/],
    ['missing label column', (o: string) => ['train', ...T(), '--train', good, '--task', 'classification', '--output', join(o, 'r'), '--label-column', 'nope'], /--label-column nope/],
    ['eval: missing label column', (o: string) => ['eval', '--run', run, '--data', good, '--label-column', 'nope', '--no-cache', '--output', join(o, 'e.json')], /--label-column nope/],
    ['null label', (o: string) => ['train', ...T(), '--train', join(dir, 'null-label.jsonl'), '--task', 'classification', '--output', join(o, 'r')], /row 5 has an empty or invalid label \(null\) in column label/],
    ['NaN regression target (JSONL string)', (o: string) => ['train', ...T(), '--train', join(dir, 'nan-label.jsonl'), '--task', 'regression', '--output', join(o, 'r')], /regression target at row 5 is 'NaN'; scores must be finite numbers/],
    ['NaN regression target (CSV)', (o: string) => ['train', ...T(), '--train', join(dir, 'nan-label.csv'), '--task', 'regression', '--output', join(o, 'r')], /regression target at row 7 is 'NaN'/],
    ['infinite regression target', (o: string) => ['train', ...T(), '--train', join(dir, 'inf-label.csv'), '--task', 'regression', '--output', join(o, 'r')], /regression target at row 7 is '1e999'/],
    ['label outside --labels', (o: string) => ['train', ...T(), '--train', good, '--task', 'classification', '--labels', '0,1', '--output', join(o, 'r')], /row 2 has label 2, which is not one of --labels \(0, 1\)/],
    ['eval: NaN label for a classification run', (o: string) => ['eval', '--run', run, '--data', join(dir, 'nan-label.csv'), '--no-cache', '--output', join(o, 'e.json')], /row 7 has an empty or invalid label \("NaN"\)/],
    ['null text (embed)', (o: string) => ['embed', '--model-dir', model, '--input', join(dir, 'null-text.jsonl'), '--output', join(o, 'e.csv')], /row 3 has no text \(null in column text\)/],
    ['null text (predict)', (o: string) => ['predict', '--run', run, '--input', join(dir, 'null-text.jsonl'), '--output', join(o, 'p.csv')], /row 3: column text holds null, not text/],
    ['null text (train)', (o: string) => ['train', ...T(), '--train', join(dir, 'null-text.jsonl'), '--task', 'classification', '--output', join(o, 'r')], /row 3 has no text/],
    ['a number as text', (o: string) => ['embed', '--model-dir', model, '--input', join(dir, 'number-text.jsonl'), '--output', join(o, 'e.csv')], /column text holds (number|int)|holds int values, not text/],
    ['empty input file', (o: string) => ['embed', '--model-dir', model, '--input', join(dir, 'empty.jsonl'), '--output', join(o, 'e.csv')], /empty file \(0 bytes\)/],
  ])('%s', (_name, args, msg) => rejects(args, msg));

  it('an empty text is valid: embedded as [CLS][SEP] (same vector as a lone "" text)', async () => {
    const out = tmp.make();
    const r = await runCli(['embed', '--model-dir', model, '--input', join(dir, 'empty-text.jsonl'), '--output', join(out, 'e.jsonl'), '--quiet']);
    expect(r.code, r.stderr).toBe(0);
    const rows = readFileSync(join(out, 'e.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { id: number; embedding: number[] });
    expect(rows).toHaveLength(40);
    expect(rows[3].embedding.every(Number.isFinite)).toBe(true);
  });

  it('invalid UTF-8 is replaced, counted and reported (embed, predict)', async () => {
    const out = tmp.make();
    const bad = join(dir, 'bad-utf8.jsonl');
    for (const args of [
      ['embed', '--model-dir', model, '--input', bad, '--output', join(out, 'e.jsonl'), '--quiet'],
      ['predict', '--run', run, '--input', bad, '--output', join(out, 'p.jsonl'), '--quiet'],
    ]) {
      const r = await runCli(args);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/warning: --input .*bad-utf8\.jsonl: invalid UTF-8 in 1 rows, decoded with U\+FFFD replacement characters/);
    }
  });
});

describe('inputs and outputs', () => {
  const ro = unwritableDir();

  it.each([
    ['embed: non-existent input', (o: string) => ['embed', '--model-dir', model, '--input', join(dir, 'nope.jsonl'), '--output', join(o, 'e.csv')], /--input .*nope\.jsonl: no such file/],
    ['predict: non-existent input', (o: string) => ['predict', '--run', run, '--input', join(dir, 'nope.jsonl'), '--output', join(o, 'p.csv')], /nope\.jsonl: no such file/],
    ['train: non-existent input', (o: string) => ['train', ...T(), '--train', join(dir, 'nope.jsonl'), '--task', 'classification', '--output', join(o, 'r')], /nope\.jsonl: no such file/],
    ['eval: non-existent data', (o: string) => ['eval', '--run', run, '--data', join(dir, 'nope.jsonl'), '--no-cache', '--output', join(o, 'e.json')], /nope\.jsonl: no such file/],
    ['annotate: no input matches', (o: string) => ['annotate', '--run', run, '--input', join(dir, 'nope*.jsonl'), '--output', join(o, 'a')], /no files match/],
    ['non-existent model folder', (o: string) => ['embed', '--model-dir', join(dir, 'nope'), '--input', good, '--output', join(o, 'e.csv')], /model folder does not exist/],
    ['embed: unsupported output extension', (o: string) => ['embed', '--model-dir', model, '--input', good, '--output', join(o, 'e.txt')], /--output .*e\.txt: unsupported file extension "\.txt"/],
    ['predict: unsupported output extension', (o: string) => ['predict', '--run', run, '--input', good, '--output', join(o, 'p')], /--output .*: unsupported file extension \(none\)/],
    ['embed: output folder missing', (o: string) => ['embed', '--model-dir', model, '--input', good, '--output', join(o, 'no', 'e.csv')], /--output .*: folder .*no does not exist/],
    ['embed: output parent is a file', (o: string) => ['embed', '--model-dir', model, '--input', good, '--output', join(good, 'e.csv')], /good\.jsonl is not a folder/],
    ['predict: output parent is a file', (o: string) => ['predict', '--run', run, '--input', good, '--output', join(good, 'p.csv')], /good\.jsonl is not a folder/],
    ['train: output parent is a file', (o: string) => ['train', ...T(), '--train', good, '--task', 'classification', '--output', join(good, 'r')], /good\.jsonl is not a folder/],
    ['eval: output parent is a file', (o: string) => ['eval', '--run', run, '--data', good, '--no-cache', '--output', join(good, 'e.json')], /good\.jsonl is not a folder/],
    ['export onnx: output parent is a file', (o: string) => ['export', '--format', 'onnx', '--model-dir', model, '--output', join(good, 'm.onnx')], /good\.jsonl is not a folder/],
    ['export onnx: not an .onnx name (would overwrite a data file)', (o: string) => ['export', '--format', 'onnx', '--model-dir', model, '--output', good], /expected a \.onnx file name/],
    ['annotate: output is an existing file', (o: string) => ['annotate', '--run', run, '--input', join(dir, 'nan-label.csv'), '--output', good], /--output .*good\.jsonl exists and is not a folder/],
    ['embed: output names a folder', (o: string) => ['embed', '--model-dir', model, '--input', good, '--output', `${o}/x.csv/`], /x\.csv\/ names a folder; give a file name/],
    ['embed: output is an existing folder', (o: string) => ['embed', '--model-dir', model, '--input', good, '--output', join(dir, 'folder.csv')], /folder\.csv is a folder; give a file name/],
  ])('%s', (_name, args, msg) => rejects(args, msg));

  it.each([
    ['embed', (o: string) => ['embed', '--model-dir', model, '--input', good, '--output', good], /--output must not be the --input file/],
    ['embed (other spelling)', (o: string) => ['embed', '--model-dir', model, '--input', good, '--output', join(dir, '.', 'x', '..', 'good.jsonl')], /--output must not be the --input file/],
    ['predict', (o: string) => ['predict', '--run', run, '--input', good, '--output', good], /--output must not be the --input file/],
    ['eval --run --output = --data', (o: string) => ['eval', '--run', run, '--data', good, '--no-cache', '--output', good], /--output must not be the --data file/],
    ['eval --output = run.json', (o: string) => ['eval', '--run', run, '--data', good, '--no-cache', '--output', join(run, 'run.json')], /--output must not be the --run folder's run\.json file/],
    ['eval --html = --data', (o: string) => ['eval', '--run', run, '--data', good, '--no-cache', '--output', join(o, 'e.json'), '--html', good], /--html must not be the --data file/],
    ['eval --predictions --output = --predictions', (o: string) => ['eval', '--predictions', good, '--true-column', 'label', '--pred-column', 'label', '--output', good], /--output must not be the --predictions file/],
    ['annotate --output = --input', (o: string) => ['annotate', '--run', run, '--input', good, '--output', good], /--output must not be the --input/],
    ['annotate --output contains an input', (o: string) => ['annotate', '--run', run, '--input', good, '--output', dir], /contains the --input file/],
    ['annotate --output inside an --input folder', (o: string) => ['annotate', '--run', run, '--input', dir, '--output', join(dir, 'scores')], /is inside the --input folder/],
    ['train --output = --train', (o: string) => ['train', ...T(), '--train', good, '--task', 'classification', '--output', good], /--output must not be the --train/],
    ['export hf --output = --run', (o: string) => ['export', '--run', run, '--output', run, '--overwrite'], /--output must not be the --run folder/],
  ])('output equal to an input: %s', (_name, args, msg) => rejects(args, msg));

  it.skipIf(ro === null).each([
    ['embed', (o: string) => ['embed', '--model-dir', model, '--input', good, '--output', join(ro!, 'e.csv')]],
    ['predict', (o: string) => ['predict', '--run', run, '--input', good, '--output', join(ro!, 'p.csv')]],
    ['eval', (o: string) => ['eval', '--run', run, '--data', good, '--no-cache', '--output', join(ro!, 'e.json')]],
    ['train', (o: string) => ['train', ...T(), '--train', good, '--task', 'classification', '--output', join(ro!, 'run')]],
    ['annotate', (o: string) => ['annotate', '--run', run, '--input', good, '--output', join(ro!, 'scores')]],
    ['export onnx', (o: string) => ['export', '--format', 'onnx', '--model-dir', model, '--output', join(ro!, 'm.onnx')]],
  ])('unwritable output folder: %s', (_name, args) => rejects(args, /cannot create files in folder .* \((EACCES|EPERM|EROFS)\); choose a writable location/));
});
