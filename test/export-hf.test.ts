/**
 * `edu-train export --run RUN --format hf`: train tiny runs, export them, and check
 *  - the folder has the names transformers' *ForSequenceClassification classes load (config + tensor names),
 *  - edu-train predicts from the export (predict --model-dir EXPORT, no run: the folder's own head) exactly
 *    what it predicts from the run.
 * Pooler heads on BERT / RoBERTa map onto BertForSequenceClassification / RobertaForSequenceClassification; a
 * linear head on mean pooling is the sentence-transformers + classifier.safetensors layout.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { openTable } from '../src/data/table.js';
import { readModelSpec } from '../src/model/config.js';
import { generateModelFolder } from '../src/model/generate.js';
import { readSafetensors } from '../src/model/safetensors.js';
import { runCli } from './helpers/cli.js';
import { sharedPath } from './helpers/shared.js';
import { useTmpDirs } from './helpers/tmp.js';

const tmp = useTmpDirs('edu-export-');
const TINY = { preset: 'tiny' as const, hidden: 32, layers: 2, heads: 4, intermediate: 64 };

let root: string;
let bert: string;
let roberta: string;
let data: string;

const TEXTS = ['Cells divide by mitosis.', 'cheap pills online now', 'The French Revolution began in 1789.', 'lol ok', 'Vectors add componentwise.'];

beforeAll(() => {
  root = tmp.make();
  bert = join(root, 'bert');
  roberta = join(root, 'roberta');
  generateModelFolder(bert, { ...TINY, modelType: 'bert', tokenizerDir: sharedPath('models', 'tokenizer-only', 'all-minilm-l6-v2'), seed: 41 });
  generateModelFolder(roberta, { ...TINY, modelType: 'roberta', tokenizerDir: sharedPath('models', 'tokenizer-only', 'klue-roberta-tokenizer'), seed: 42 });
  const rows = ['id,text,label,score'];
  for (let i = 0; i < 60; i++) rows.push(`r${i},"${TEXTS[i % 5]} ${i}",${['edu', 'spam', 'edu', 'chat', 'edu'][i % 5]},${(i % 5) + (i % 3) * 0.25}`);
  data = join(root, 'data.csv');
  writeFileSync(data, rows.join('\n') + '\n');
});

async function train(model: string, args: string[]): Promise<string> {
  const out = join(tmp.make(), 'run');
  const r = await runCli(['train', '--model-dir', model, '--train', data, '--epochs', '3', '--lr', '1e-2', '--max-length', '24', '--no-cache', '--quiet',
    '--threads', '2', '--output', out, ...args]);
  expect(r.code, r.stderr).toBe(0);
  return out;
}

async function exportRun(run: string): Promise<string> {
  const out = join(tmp.make(), 'hf');
  const r = await runCli(['export', '--run', run, '--format', 'hf', '--output', out]);
  expect(r.code, r.stderr).toBe(0);
  return out;
}

async function predict(args: string[]): Promise<Record<string, unknown[]>> {
  const out = join(tmp.make(), 'p.jsonl');
  const r = await runCli(['predict', '--input', data, '--output', out, '--quiet', '--threads', '2', ...args]);
  expect(r.code, r.stderr).toBe(0);
  const t = await openTable(out);
  const all = await t.readAll();
  await t.close();
  return all.columns;
}

function expectClose(a: unknown[], b: unknown[], tol: number): void {
  expect(a.length).toBe(b.length);
  a.forEach((x, i) => expect(Math.abs((x as number) - (b[i] as number)), `row ${i}`).toBeLessThan(tol));
}

const names = async (f: string) => [...(await readSafetensors(f)).keys()].sort();

describe('export --format hf', () => {
  it('BERT pooler head (regression) -> BertForSequenceClassification: bert.pooler.dense = trained dense, classifier = linear', async () => {
    const run = await train(bert, ['--task', 'regression', '--label-column', 'score', '--head', 'pooler', '--pooling', 'cls']);
    const hf = await exportRun(run);
    const cfg = JSON.parse(readFileSync(join(hf, 'config.json'), 'utf8'));
    expect(cfg).toMatchObject({ architectures: ['BertForSequenceClassification'], model_type: 'bert', problem_type: 'regression', id2label: { 0: 'LABEL_0' }, label2id: { LABEL_0: 0 } });
    const w = await readSafetensors(join(hf, 'model.safetensors'));
    const head = await readSafetensors(join(run, 'head.safetensors'));
    expect(Array.from(w.get('bert.pooler.dense.weight')!.data)).toEqual(Array.from(head.get('hidden.weight')!.data));
    expect(Array.from(w.get('classifier.weight')!.data)).toEqual(Array.from(head.get('weight')!.data));
    expect(w.get('classifier.weight')!.shape).toEqual([1, 32]);
    expect([...w.keys()].filter((k) => !k.startsWith('bert.') && !k.startsWith('classifier.'))).toEqual([]);
    expect(w.has('bert.encoder.layer.1.output.LayerNorm.weight')).toBe(true);
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'vocab.txt']) expect(existsSync(join(hf, f)), f).toBe(true);
    expect(JSON.parse(readFileSync(join(hf, 'tokenizer_config.json'), 'utf8')).model_max_length).toBe(24);
    // edu-train reads it as a regression seqcls model and scores it like the run.
    const spec = readModelSpec(hf);
    expect(spec.head).toMatchObject({ kind: 'bert', numLabels: 1, problemType: 'regression' });
    const [fromRun, fromExport] = [await predict(['--run', run]), await predict(['--model-dir', hf])];
    expectClose(fromExport.score, fromRun.score, 1e-5);
    expect(fromExport.int_score).toEqual(fromRun.int_score);
  });

  it('RoBERTa pooler head (classification) -> RobertaForSequenceClassification: classifier.dense / out_proj, labels kept', async () => {
    const run = await train(roberta, ['--task', 'classification', '--head', 'pooler', '--pooling', 'cls']);
    const hf = await exportRun(run);
    const cfg = JSON.parse(readFileSync(join(hf, 'config.json'), 'utf8'));
    expect(cfg).toMatchObject({
      architectures: ['RobertaForSequenceClassification'], problem_type: 'single_label_classification',
      id2label: { 0: 'chat', 1: 'edu', 2: 'spam' }, label2id: { chat: 0, edu: 1, spam: 2 },
    });
    const keys = await names(join(hf, 'model.safetensors'));
    expect(keys.filter((k) => k.startsWith('classifier.'))).toEqual(['classifier.dense.bias', 'classifier.dense.weight', 'classifier.out_proj.bias', 'classifier.out_proj.weight']);
    expect(keys.some((k) => k.includes('pooler'))).toBe(false); // RobertaForSequenceClassification has none
    expect(keys.every((k) => k.startsWith('roberta.') || k.startsWith('classifier.'))).toBe(true);
    const [fromRun, fromExport] = [await predict(['--run', run]), await predict(['--model-dir', hf])];
    expect(fromExport.label).toEqual(fromRun.label);
    expect(fromExport.label_id).toEqual(fromRun.label_id);
    fromRun.probs.forEach((p, i) => expectClose(Array.from(fromExport.probs[i] as number[]), Array.from(p as number[]), 1e-5));
  });

  it('BERT linear head on --pooling pooler -> BertForSequenceClassification with the checkpoint pooler', async () => {
    const run = await train(bert, ['--task', 'classification', '--pooling', 'pooler']);
    const hf = await exportRun(run);
    const w = await readSafetensors(join(hf, 'model.safetensors'));
    const orig = await readSafetensors(join(bert, 'model.safetensors'));
    expect(Array.from(w.get('bert.pooler.dense.weight')!.data)).toEqual(Array.from(orig.get('pooler.dense.weight')!.data));
    const [fromRun, fromExport] = [await predict(['--run', run]), await predict(['--model-dir', hf])];
    expect(fromExport.label).toEqual(fromRun.label);
    fromRun.probs.forEach((p, i) => expectClose(Array.from(fromExport.probs[i] as number[]), Array.from(p as number[]), 1e-5));
  });

  it('linear head on mean pooling -> sentence-transformers layout + classifier.safetensors, identical predictions', async () => {
    const run = await train(roberta, ['--task', 'regression', '--label-column', 'score']);
    const hf = await exportRun(run);
    expect(JSON.parse(readFileSync(join(hf, 'config.json'), 'utf8')).architectures).toEqual(['RobertaModel']);
    expect(JSON.parse(readFileSync(join(hf, 'modules.json'), 'utf8')).map((m: { type: string }) => m.type)).toEqual([
      'sentence_transformers.models.Transformer', 'sentence_transformers.models.Pooling']);
    expect(JSON.parse(readFileSync(join(hf, '1_Pooling', 'config.json'), 'utf8'))).toMatchObject({ pooling_mode_mean_tokens: true, pooling_mode_cls_token: false });
    expect(JSON.parse(readFileSync(join(hf, 'sentence_bert_config.json'), 'utf8')).max_seq_length).toBe(24);
    expect(JSON.parse(readFileSync(join(hf, 'classifier_config.json'), 'utf8'))).toMatchObject({
      format: 'edu-train-classifier-v1', task: 'regression', pooling: 'mean', in_features: 32, num_outputs: 1, hidden: false, max_length: 24,
    });
    expect(await names(join(hf, 'classifier.safetensors'))).toEqual(['bias', 'weight']);
    expect((await names(join(hf, 'model.safetensors'))).some((k) => k.startsWith('roberta.'))).toBe(false); // ST stores the bare model
    const [fromRun, fromExport] = [await predict(['--run', run]), await predict(['--model-dir', hf])];
    expect(fromExport.score).toEqual(fromRun.score); // same pooling, same head kernel: bit-identical
    expect(fromExport.int_score).toEqual(fromRun.int_score);
    // An existing export is replaced only with --overwrite.
    const again = await runCli(['export', '--run', run, '--format', 'hf', '--output', hf]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/already exists; choose another folder or pass --overwrite/);
    expect((await runCli(['export', '--run', run, '--format', 'hf', '--output', hf, '--overwrite'])).code).toBe(0);
  });

  it('a folder that is not a run is a usage error', async () => {
    const run = join(tmp.make(), 'missing');
    const r = await runCli(['export', '--run', run, '--format', 'hf', '--output', tmp.make()]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no run\.json there/);
  });
});
