/**
 * `edu-train finetune` end to end on a tiny random-weight RoBERTa with the real Korean tokenizer
 * (klue-roberta) and 200 rows of the DACON sentence-type data: the saved folder is a complete
 * RobertaForSequenceClassification folder that loads back into edu-train and gives the logits the
 * trainer's evaluation recorded. Plus: the whole encoder overfits a fixed batch (the loss falls), and
 * the micro-batch planner.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadEncoder } from '../src/encoder.js';
import { prepareModel } from '../src/finetune/model-io.js';
import { planMicroBatches, toBatch } from '../src/finetune/trainer.js';
import { readModelSpec } from '../src/model/config.js';
import { generateModelFolder } from '../src/model/generate.js';
import { loadFineTuneAddon } from '../src/native/finetune-types.js';
import { TextTokenizer } from '../src/tokenize/tokenizer.js';
import { runCli } from './helpers/cli.js';
import { sharedPath } from './helpers/shared.js';
import { useTmpDirs } from './helpers/tmp.js';

const tmp = useTmpDirs('edu-finetune-');
let work = '';
let model = '';
let trainCsv = '';
let valCsv = '';
let valTexts: string[] = [];

/** Minimal CSV: quotes every field (the source has commas and quotes in sentences). */
function csvLine(fields: string[]): string {
  return fields.map((f) => `"${f.replace(/"/g, '""')}"`).join(',');
}

function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let q = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (q) {
      if (ch === '"' && text[i + 1] === '"') { field += '"'; i++; } else if (ch === '"') q = false; else field += ch;
    } else if (ch === '"') q = true;
    else if (ch === ',') { row.push(field); field = ''; }
    else if (ch === '\n') { row.push(field.replace(/\r$/, '')); rows.push(row); row = []; field = ''; }
    else field += ch;
  }
  if (field !== '' || row.length) { row.push(field); rows.push(row); }
  return rows;
}

beforeAll(() => {
  work = tmp.make();
  model = join(work, 'tiny-roberta');
  generateModelFolder(model, {
    modelType: 'roberta', preset: 'tiny', maxPositions: 258, seed: 11,
    tokenizerDir: sharedPath('models', 'tokenizer-only', 'klue-roberta-tokenizer'),
  });
  const rows = parseCsv(readFileSync(sharedPath('data', 'dacon-sentence-type', 'train.csv'), 'utf8'));
  const header = rows[0];
  const ti = header.indexOf('문장');
  const li = header.indexOf('유형');
  expect(ti).toBeGreaterThanOrEqual(0);
  const data = rows.slice(1).filter((r) => r.length === header.length);
  const out = (file: string, part: string[][]) => writeFileSync(file, [csvLine(['text', 'label']), ...part.map((r) => csvLine([r[ti], r[li]]))].join('\n') + '\n');
  trainCsv = join(work, 'train.csv');
  valCsv = join(work, 'val.csv');
  out(trainCsv, data.slice(0, 200));
  out(valCsv, data.slice(200, 240));
  valTexts = data.slice(200, 240).map((r) => r[ti]);
});

describe('edu-train finetune (tiny RoBERTa, Korean tokenizer, 200 DACON sentence-type rows)', () => {
  it('trains 2 epochs with the recipe defaults and saves a folder that loads back with the same logits', async () => {
    const out = join(work, 'finetuned');
    const r = await runCli(['finetune', '--model-dir', model, '--train', trainCsv, '--val', valCsv, '--task', 'classification',
      '--epochs', '2', '--lr', '5e-4', '--max-length', '64', '--output', out, '--quiet']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/model folder: /);
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'label_mapping.json', 'metrics.jsonl', 'best.json',
      'report.txt', 'report.json', 'val_predictions.jsonl', 'finetune.json']) {
      expect(existsSync(join(out, f)), f).toBe(true);
    }
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(config.architectures).toEqual(['RobertaForSequenceClassification']);
    expect(config.problem_type).toBe('single_label_classification');
    expect(Object.values(config.id2label)).toEqual(['대화형', '사실형', '예측형', '추론형']);
    const record = JSON.parse(readFileSync(join(out, 'finetune.json'), 'utf8'));
    expect(record.options).toMatchObject({ lr: 5e-4, batch_size: 32, weight_decay: 0.01, warmup_ratio: 0.1, schedule: 'linear',
      clip_grad_norm: 1, class_weights: 'balanced', sampler: 'weighted', early_stop: 'macro_f1', patience: 2, max_length: 64 });
    expect(record.head.kind).toBe('roberta');
    const epochs = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(epochs.length).toBe(2);
    expect(epochs.every((e) => Number.isFinite(e.train_loss) && e.steps === 7)).toBe(true);

    // The saved folder, loaded by edu-train's encoder, reproduces the trainer's validation logits.
    const spec = readModelSpec(out);
    expect(spec.head).toMatchObject({ kind: 'roberta', numLabels: 4 });
    const enc = await loadEncoder(out, { maxLength: 64 });
    try {
      const logits = await enc.classifyEncoded(await enc.tokenizer!.encode(valTexts));
      const preds = readFileSync(join(out, 'val_predictions.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      expect(preds.length).toBe(valTexts.length);
      let maxErr = 0;
      let scale = 0;
      preds.forEach((p, i) => p.logits.forEach((v: number, k: number) => {
        maxErr = Math.max(maxErr, Math.abs(v - logits[i * 4 + k]));
        scale = Math.max(scale, Math.abs(v));
      }));
      expect(maxErr, `max |logit difference| ${maxErr} (scale ${scale})`).toBeLessThanOrEqual(1e-5 * Math.max(1, scale));
    } finally {
      enc.dispose();
    }

    // And `predict` scores a table with it as a ready-made classifier.
    const predOut = join(work, 'pred.jsonl');
    const p = await runCli(['predict', '--model-dir', out, '--input', valCsv, '--output', predOut, '--text-column', 'text', '--quiet']);
    expect(p.code, p.stderr).toBe(0);
    const predicted = readFileSync(predOut, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const saved = readFileSync(join(out, 'val_predictions.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(predicted.map((x) => x.label)).toEqual(saved.map((x) => x.pred));
  });

  it('rejects option combinations that cannot work, before any work', async () => {
    const out = join(work, 'never');
    const r = await runCli(['finetune', '--model-dir', model, '--train', trainCsv, '--task', 'regression', '--output', out]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--sampler weighted balances classes/);
    const r2 = await runCli(['finetune', '--model-dir', model, '--train', trainCsv, '--task', 'classification', '--max-length', '400', '--output', out]);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(/--max-length 400 is outside \[2, 256\]/);
    expect(existsSync(out)).toBe(false);
  });

  it('the whole encoder overfits a fixed batch (loss falls by > 5x in 80 steps)', async () => {
    const spec = readModelSpec(model);
    const prepared = await prepareModel(spec, { numOutputs: 4, loss: 'cross-entropy', optimizer: { weightDecay: 0.01, maxGradNorm: 1 }, seed: 1 });
    expect(prepared.reusedHead).toBe(false);
    expect(prepared.initialised).toContain('classifier.out_proj.weight');
    const tok = TextTokenizer.load(model, { maxLength: 64, padId: spec.config.padTokenId });
    const enc = await tok.encode(valTexts.slice(0, 16));
    const batch = toBatch(enc, Array.from(enc.keys()), tok.padId);
    batch.labels = Int32Array.from(enc.keys(), (i) => i % 4);
    const { FineTuner } = loadFineTuneAddon();
    const ft = new FineTuner(prepared.config, prepared.weights, { threads: 2 });
    try {
      const losses: number[] = [];
      for (let i = 0; i < 80; i++) losses.push((await ft.step(batch, 1e-3)).loss);
      expect(losses[79], losses.map((l) => l.toFixed(3)).join(' ')).toBeLessThan(losses[0] / 5);
      const pred = await ft.predict(batch);
      let correct = 0;
      for (let i = 0; i < 16; i++) {
        const row = Array.from(pred.logits!.subarray(i * 4, i * 4 + 4));
        if (row.indexOf(Math.max(...row)) === batch.labels[i]) correct++;
      }
      expect(correct).toBe(16);
    } finally {
      ft.dispose();
    }
  });
});

describe('planMicroBatches', () => {
  it('groups rows longest first within the budget and keeps every row once', () => {
    const lengths = [5, 50, 7, 50, 20, 3, 9, 45];
    const rows = [0, 1, 2, 3, 4, 5, 6, 7];
    const plan = planMicroBatches(lengths, rows, (count, seqLen) => count * seqLen <= 100);
    expect(plan).toEqual([[1, 3], [7, 4], [6, 2, 0, 5]]);
    expect(plan.flat().sort()).toEqual(rows);
    expect(planMicroBatches(lengths, rows, () => false, 3)).toEqual([[1, 3, 7], [4, 6, 2], [0, 5]]);
    // A single row larger than the budget still forms its own micro-batch.
    expect(planMicroBatches([500, 2], [0, 1], (count, seqLen) => count * seqLen <= 100)).toEqual([[0], [1]]);
  });
});
