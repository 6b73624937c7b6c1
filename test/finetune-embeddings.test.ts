/**
 * `edu-train finetune-embeddings` (MultipleNegativesRankingLoss) end to end on a tiny random RoBERTa with
 * the Korean tokenizer and KLUE-STS pairs: the STS evaluation improves, and the saved
 * sentence-transformers folder, embedded by edu-train's own encoder, reproduces the recorded STS scores.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadEncoder } from '../src/encoder.js';
import { pearson, spearman } from '../src/eval/metrics.js';
import { generateModelFolder } from '../src/model/generate.js';
import { runCli } from './helpers/cli.js';
import { sharedPath } from './helpers/shared.js';
import { useTmpDirs } from './helpers/tmp.js';

const tmp = useTmpDirs('edu-finetune-st-');
let work = '';
let model = '';

function headLines(src: string, dst: string, rows: number): void {
  const lines = readFileSync(src, 'utf8').split('\n');
  writeFileSync(dst, lines.slice(0, rows + 1).join('\n') + '\n');
}

function csvRows(file: string): string[][] {
  // klue_sts_*.csv: sentence1,sentence2,label with quoted fields where needed.
  const out: string[][] = [];
  for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
    if (!line) continue;
    const f: string[] = [];
    let cur = '';
    let q = false;
    for (let i = 0; i < line.length; i++) {
      const ch = line[i];
      if (q) {
        if (ch === '"' && line[i + 1] === '"') { cur += '"'; i++; } else if (ch === '"') q = false; else cur += ch;
      } else if (ch === '"') q = true;
      else if (ch === ',') { f.push(cur); cur = ''; }
      else cur += ch;
    }
    f.push(cur);
    out.push(f);
  }
  return out;
}

beforeAll(() => {
  work = tmp.make();
  model = join(work, 'tiny-roberta');
  generateModelFolder(model, {
    modelType: 'roberta', preset: 'tiny', maxPositions: 130, seed: 21,
    tokenizerDir: sharedPath('models', 'tokenizer-only', 'klue-roberta-tokenizer'),
  });
  headLines(sharedPath('data', 'klue-sts', 'klue_sts_train.csv'), join(work, 'train.csv'), 800);
  headLines(sharedPath('data', 'klue-sts', 'klue_sts_val.csv'), join(work, 'sts.csv'), 150);
});

describe('edu-train finetune-embeddings (MNRL, KLUE-STS)', () => {
  it('improves the STS correlation and saves a sentence-transformers folder that edu-train embeds identically', async () => {
    const out = join(work, 'st-model');
    const r = await runCli(['finetune-embeddings', '--model-dir', model, '--train', join(work, 'train.csv'), '--score-column', 'label',
      '--min-score', '3', '--sts', join(work, 'sts.csv'), '--epochs', '2', '--lr', '5e-4', '--warmup-steps', '5', '--max-length', '64',
      '--output', out, '--quiet']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/STS Pearson .* -> /);
    const rec = JSON.parse(readFileSync(join(out, 'sts_eval.json'), 'utf8'));
    expect(rec.before.pairs).toBe(150);
    expect(rec.after.spearman).toBeGreaterThan(rec.before.spearman + 0.02);
    const modules = JSON.parse(readFileSync(join(out, 'modules.json'), 'utf8'));
    expect(modules.map((m: { type: string }) => m.type.split('.').pop())).toEqual(['Transformer', 'Pooling']);
    const ft = JSON.parse(readFileSync(join(out, 'finetune.json'), 'utf8'));
    expect(ft.options).toMatchObject({ batch_size: 16, epochs: 2, warmup_steps: 5, scale: 20, weight_decay: 0.01 });

    const rows = csvRows(join(work, 'sts.csv'));
    expect(rows.length).toBe(150);
    const enc = await loadEncoder(out, { maxLength: 64 });
    try {
      expect(enc.defaultPooling).toBe('sentence-transformers');
      const a = await enc.embed(rows.map((x) => x[0]));
      const b = await enc.embed(rows.map((x) => x[1]));
      const H = a.hidden;
      const cos = rows.map((_, i) => {
        let dot = 0, na = 0, nb = 0;
        for (let j = 0; j < H; j++) {
          const x = a.embeddings[i * H + j], y = b.embeddings[i * H + j];
          dot += x * y;
          na += x * x;
          nb += y * y;
        }
        return dot / Math.sqrt(na * nb);
      });
      const gold = rows.map((x) => Number(x[2]));
      expect(Math.abs(pearson(gold, cos) - rec.after.pearson)).toBeLessThan(1e-4);
      expect(Math.abs(spearman(gold, cos) - rec.after.spearman)).toBeLessThan(1e-3);
    } finally {
      enc.dispose();
    }
  });

  it('rejects a batch without negatives', async () => {
    const r = await runCli(['finetune-embeddings', '--model-dir', model, '--train', join(work, 'train.csv'), '--batch-size', '1',
      '--output', join(work, 'never')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--batch-size must be >= 2/);
  });
});
