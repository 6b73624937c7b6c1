/**
 * `edu-train train` through the built CLI: every user mistake is exit code 2 with a message that names the
 * problem and leaves no run folder (nor a staging folder) behind; a finished run folder has every file and
 * run.json field; the embedding cache makes a second run skip the encoder; predict reuses the label mapping.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readSafetensors } from '../src/model/safetensors.js';
import { generateModelFolder } from '../src/model/generate.js';
import { runCli } from './helpers/cli.js';
import { sharedPath } from './helpers/shared.js';
import { useTmpDirs } from './helpers/tmp.js';

const tmp = useTmpDirs('edu-train-cli-');
const KO_TOKENIZER = sharedPath('models', 'tokenizer-only', 'klue-roberta-tokenizer');

let root: string;
let roberta: string;
let electra: string;
let data: string;
let cacheDir: string;

const SENTENCES: [string, string][] = [
  ['금리 인상은 1994년 이후 처음이다.', '사실형'],
  ['내년에는 물가가 오를 것으로 보인다.', '예측형'],
  ['그렇다면 원인은 관리 부실에 있다고 볼 수 있다.', '추론형'],
  ['"정말 그랬어요?"라고 물었다.', '대화형'],
];

/** 80 rows, 4 classes, some variety in the texts. */
function writeData(dir: string): string {
  const rows = ['id,text,label'];
  for (let i = 0; i < 80; i++) {
    const [t, l] = SENTENCES[i % 4];
    rows.push(`r${i},"${t.replace(/"/g, '""')} ${i}번",${l}`);
  }
  const f = join(dir, 'data.csv');
  writeFileSync(f, rows.join('\n') + '\n');
  return f;
}

function train(args: string[], output: string) {
  return runCli([
    'train', '--model-dir', roberta, '--train', data, '--task', 'classification', '--epochs', '3', '--max-length', '32',
    '--cache-dir', cacheDir, '--output', output, '--quiet', '--threads', '2', ...args,
  ]);
}

/** The run folder and its staging sibling must both be absent. */
function expectNoRunFolder(output: string): void {
  expect(existsSync(output)).toBe(false);
  const parent = join(output, '..');
  expect(readdirSync(parent).filter((f) => f.startsWith(output.split('/').pop()!))).toEqual([]);
}

beforeAll(() => {
  root = tmp.make();
  roberta = join(root, 'roberta');
  electra = join(root, 'electra');
  generateModelFolder(roberta, { modelType: 'roberta', tokenizerDir: KO_TOKENIZER, seed: 11 });
  generateModelFolder(electra, { modelType: 'electra', tokenizerDir: KO_TOKENIZER, seed: 11 });
  data = writeData(root);
  cacheDir = join(root, 'cache');
});

describe('train: usage errors (exit 2, clear message, no run folder)', () => {
  const cases: [string, () => string[], RegExp][] = [
    ['unknown --early-stop metric', () => ['--early-stop', 'f2'], /unknown --early-stop metric 'f2' \(known: macro_f1, weighted_f1, accuracy, loss\)/],
    ['mse for classification', () => ['--early-stop', 'mse'], /--early-stop mse is not reported for classification/],
    ['--val and --val-split together', () => ['--val', data, '--val-split', '0.2'], /--val and --val-split are exclusive/],
    ['missing label column', () => ['--label-column', 'nope'], /--label-column nope: .*has no such column; its columns are id, text, label/],
    ['--folds 1', () => ['--folds', '1'], /--folds must be an integer >= 2/],
    ['--folds with --val-split', () => ['--folds', '3', '--val-split', '0.2'], /do not combine it with --val or --val-split/],
    ['a data label outside --labels', () => ['--labels', '사실형,추론형,예측형'], /row 3 has label "대화형", which is not one of --labels/],
    ['--head pooler on ELECTRA (no pooler)', () => ['--head', 'pooler', '--model-dir', electra], /--head pooler needs the model's BERT pooler .*ElectraModel.* has none/],
    ['--head pooler with mean pooling', () => ['--head', 'pooler', '--pooling', 'mean'], /--head pooler .* needs --pooling cls/],
    ['--val-split out of range', () => ['--val-split', '1.5'], /--val-split must be in \(0, 1\)/],
    ['--betas malformed', () => ['--betas', '0.9'], /--betas must be two numbers/],
    ['class weights for regression', () => ['--task', 'regression', '--class-weights', 'balanced'], /--class-weights applies to classification only/],
    ['balanced weights with a label absent from the data', () => ['--labels', '사실형,추론형,예측형,대화형,기타', '--class-weights', 'balanced'], /class '기타' has no training samples/],
    ['unknown task', () => ['--task', 'ranking'], /argument 'ranking' is invalid/],
  ];
  for (const [name, args, message] of cases) {
    it(name, async () => {
      const out = join(tmp.make(), 'run');
      const r = await train(args(), out);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
      expectNoRunFolder(out);
    });
  }

  it('empty and NaN labels name the row', async () => {
    const dir = tmp.make();
    const f = join(dir, 'holes.csv');
    writeFileSync(f, 'text,label\n가,a\n나,b\n다,\n라,a\n');
    const out = join(dir, 'run');
    const r = await runCli(['train', '--model-dir', roberta, '--train', f, '--task', 'classification', '--output', out, '--cache-dir', cacheDir]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/row 2 has an empty or invalid label/);
    expectNoRunFolder(out);
    const j = join(dir, 'nan.jsonl');
    writeFileSync(j, [{ text: '가', label: 1.5 }, { text: '나', label: null }].map((x) => JSON.stringify(x)).join('\n') + '\n');
    const r2 = await runCli(['train', '--model-dir', roberta, '--train', j, '--task', 'regression', '--output', out, '--cache-dir', cacheDir]);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(/regression target at row 1 is null/);
    expectNoRunFolder(out);
  });

  it('refuses to overwrite an existing run unless --overwrite', async () => {
    const out = join(tmp.make(), 'run');
    expect((await train([], out)).code).toBe(0);
    const again = await train([], out);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/already exists; choose another folder or pass --overwrite/);
    expect((await train(['--overwrite', '--epochs', '2'], out)).code).toBe(0);
    expect(JSON.parse(readFileSync(join(out, 'run.json'), 'utf8')).options.epochs).toBe(2);
  });
});

describe('train: the run folder', () => {
  let out: string;
  let stdout: string;
  beforeAll(async () => {
    out = join(tmp.make(), 'run');
    const r = await train(['--labels', '예측형,사실형,추론형,대화형', '--class-weights', 'sqrt', '--sampler', 'weighted', '--patience', '2'], out);
    expect(r.code, r.stderr).toBe(0);
    stdout = r.stdout;
  });

  it('has every file, and train prints where they are', async () => {
    expect(readdirSync(out).sort()).toEqual(['best.json', 'charts', 'head.safetensors', 'label_mapping.json', 'metrics.jsonl', 'report.html', 'report.json', 'report.txt', 'run.json']);
    expect(stdout).toContain(`run folder: ${out}`);
    expect(stdout).toMatch(/head\.safetensors.*run\.json.*label_mapping\.json/);
    const head = await readSafetensors(join(out, 'head.safetensors'));
    expect([...head.keys()].sort()).toEqual(['bias', 'weight']);
    expect(head.get('weight')!.shape).toEqual([4, 64]);
  });

  it('run.json records every option (defaults included), the encoder identity and the labels', () => {
    const run = JSON.parse(readFileSync(join(out, 'run.json'), 'utf8'));
    expect(run.format).toBe('edu-train-run');
    expect(run.edu_train_version).toMatch(/^\d+\.\d+\.\d+/);
    expect(Date.parse(run.started_at)).toBeLessThanOrEqual(Date.parse(run.finished_at));
    expect(run.options).toMatchObject({
      task: 'classification', head: 'linear', pooling: 'mean', dropout: 0.1, epochs: 3, batch_size: 256, lr: 3e-4,
      weight_decay: 0.01, betas: [0.9, 0.999], eps: 1e-8, schedule: 'linear', warmup_ratio: 0.1, clip_grad_norm: 1,
      class_weights: 'sqrt', sampler: 'weighted', early_stop: 'macro_f1', patience: 2, seed: 42, val_split: 0.1,
      text_column: 'text', label_column: 'label', max_length: 32,
    });
    expect(run.encoder).toMatchObject({ model_dir: roberta, architecture: 'RobertaModel', pooling: 'mean', max_length: 32, hidden_size: 64 });
    for (const k of ['weights_sha256', 'tokenizer_sha256', 'config_sha256']) expect(run.encoder[k]).toMatch(/^[0-9a-f]{64}$/);
    expect(run.labels).toEqual(['예측형', '사실형', '추론형', '대화형']);
    expect(run.data.validation.rows + run.data.train.used).toBe(80);
    expect(run.data.validation.rows).toBe(8); // stratified: 2 of each class's 20
    expect(JSON.parse(readFileSync(join(out, 'label_mapping.json'), 'utf8'))).toEqual({ labels: ['예측형', '사실형', '추론형', '대화형'], task: 'classification' });
  });

  it('metrics.jsonl has one line per epoch; best.json is the best of them and matches report.json', () => {
    const lines = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => l.epoch)).toEqual(lines.map((_, i) => i + 1));
    for (const l of lines) for (const k of ['train_loss', 'lr', 'val_macro_f1', 'val_accuracy', 'val_weighted_f1', 'val_loss']) expect(typeof l[k]).toBe('number');
    const best = JSON.parse(readFileSync(join(out, 'best.json'), 'utf8'));
    const maxF1 = Math.max(...lines.map((l) => l.val_macro_f1));
    expect(best.value).toBe(maxF1);
    expect(lines[best.best_epoch - 1].val_macro_f1).toBe(maxF1);
    expect(lines.findIndex((l) => l.val_macro_f1 === maxF1)).toBe(best.best_epoch - 1); // first epoch reaching the max
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
    expect(report.macro_f1).toBe(best.metrics.macro_f1);
    expect(report.accuracy).toBe(best.metrics.accuracy);
    expect(report.labels).toEqual(['예측형', '사실형', '추론형', '대화형']);
    expect(readFileSync(join(out, 'report.txt'), 'utf8')).toMatch(/^ {14}precision {4}recall {2}f1-score {3}support\n/);
  });

  it('a second identical run takes the embeddings from the cache (the encoder does not run)', async () => {
    const out2 = join(tmp.make(), 'run');
    const r = await runCli(['train', '--model-dir', roberta, '--train', data, '--task', 'classification', '--epochs', '1', '--max-length', '32',
      '--cache-dir', cacheDir, '--output', out2, '--labels', '예측형,사실형,추론형,대화형']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/embeddings \(train, 80 texts\): cache hit/);
    expect(r.stderr).not.toMatch(/embed train \|/); // no encoder progress line
    expect(JSON.parse(readFileSync(join(out2, 'run.json'), 'utf8')).embeddings[0].cache).toBe('hit');
    // different max length = different key = the encoder runs
    const out3 = join(tmp.make(), 'run');
    const r3 = await train(['--max-length', '16'], out3);
    expect(r3.code, r3.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(out3, 'run.json'), 'utf8')).embeddings[0].cache).toBe('miss');
  });

  it('predict reuses the stored label order: label = labels[label_id] = argmax(probs)', async () => {
    const pred = join(tmp.make(), 'pred.jsonl');
    const r = await runCli(['predict', '--run', out, '--input', data, '--output', pred, '--keep-columns', 'text', '--quiet']);
    expect(r.code, r.stderr).toBe(0);
    const rows = readFileSync(pred, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(rows).toHaveLength(80);
    expect(Object.keys(rows[0])).toEqual(['id', 'text', 'label', 'label_id', 'probs']);
    const labels = ['예측형', '사실형', '추론형', '대화형'];
    for (const row of rows) {
      expect(row.probs).toHaveLength(4);
      expect(row.probs.reduce((a: number, b: number) => a + b, 0)).toBeCloseTo(1, 12);
      expect(row.probs.indexOf(Math.max(...row.probs))).toBe(row.label_id);
      expect(row.label).toBe(labels[row.label_id]);
    }
    expect(rows[5].id).toBe('r5');
  });

  it('integer labels in a CSV are numbers, ordered numerically, and come back as such', async () => {
    const dir = tmp.make();
    const f = join(dir, 'ints.csv');
    writeFileSync(f, 'text,label\n' + Array.from({ length: 40 }, (_, i) => `문장 ${i}번,${[2, 10, 1][i % 3]}`).join('\n') + '\n');
    const out4 = join(dir, 'run');
    const r = await runCli(['train', '--model-dir', roberta, '--train', f, '--task', 'classification', '--epochs', '1', '--max-length', '16', '--cache-dir', cacheDir, '--output', out4, '--quiet']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(out4, 'label_mapping.json'), 'utf8')).labels).toEqual([1, 2, 10]);
    const e = await runCli(['eval', '--run', out4, '--data', f, '--cache-dir', cacheDir, '--json', '--quiet']);
    expect(e.code, e.stderr).toBe(0);
    expect(JSON.parse(e.stdout).labels).toEqual(['1', '2', '10']);
  });

  it('eval and predict refuse a run whose encoder changed', async () => {
    const dir = tmp.make();
    const moved = join(dir, 'other');
    generateModelFolder(moved, { modelType: 'roberta', tokenizerDir: KO_TOKENIZER, seed: 12 });
    const r = await runCli(['predict', '--run', out, '--input', data, '--output', join(dir, 'p.jsonl'), '--model-dir', moved]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/weights differ from the ones the run was trained with/);
    expect(existsSync(join(dir, 'p.jsonl'))).toBe(false);
  });
});
