/** `edu-train demo`, the README's first command: the whole pipeline offline on the bundled sample. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { classificationReport, confusionMatrix } from '../src/eval/metrics.js';
import { runCli } from './helpers/cli.js';
import { useTmpDirs } from './helpers/tmp.js';

const tmp = useTmpDirs('edu-demo-');

describe('edu-train demo', () => {
  it('generates an encoder, trains, evaluates and scores the bundled sample, and says the weights are random', async () => {
    const out = join(tmp.make(), 'demo');
    const r = await runCli(['demo', '--output', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/RANDOM weights/);
    for (const f of ['model/config.json', 'model/tokenizer.json', 'run/head.safetensors', 'run/run.json', 'run/report.json', 'run/report.html', 'eval.json', 'eval.html', 'predictions.jsonl']) {
      expect(existsSync(join(out, f)), f).toBe(true);
    }
    const rows = readFileSync(join(out, 'predictions.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(rows).toHaveLength(200);
    // eval.json must agree with a recomputation from the predictions of the same head on the same data.
    const truth = readFileSync(join(process.cwd(), 'assets', 'demo', 'sentence-types.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const labels = ['conversation', 'fact', 'inference', 'prediction'];
    const y = truth.map((t) => labels.indexOf(t.label));
    const p = rows.map((row) => labels.indexOf(row.label));
    const ref = classificationReport(y, p, [0, 1, 2, 3]);
    const evalJson = JSON.parse(readFileSync(join(out, 'eval.json'), 'utf8'));
    expect(evalJson.labels).toEqual(labels);
    expect(evalJson.accuracy).toBeCloseTo(ref.accuracy, 12);
    expect(evalJson.macro_f1).toBeCloseTo(ref.macroAvg.f1, 12);
    expect(evalJson.confusion_matrix).toEqual(confusionMatrix(y, p, [0, 1, 2, 3]));
  });
});
