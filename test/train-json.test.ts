/** `train --json`: one machine-readable object whose numbers are those of the run folder's report. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generateModelFolder } from '../src/model/generate.js';
import { runCli } from './helpers/cli.js';
import { repoRoot } from './helpers/shared.js';
import { useTmpDirs } from './helpers/tmp.js';

const tmp = useTmpDirs('edu-train-json-');

describe('edu-train train --json', () => {
  it('prints the run folder, its files and the validation metrics of report.json', async () => {
    const model = join(tmp.make(), 'm');
    generateModelFolder(model, { modelType: 'bert', preset: 'tiny', tokenizerDir: join(repoRoot, 'assets', 'tokenizers', 'all-minilm-l6-v2') });
    const out = join(tmp.make(), 'run');
    const r = await runCli(['train', '--model-dir', model, '--train', join(repoRoot, 'assets', 'demo', 'sentence-types.jsonl'),
      '--task', 'classification', '--epochs', '3', '--output', out, '--no-cache', '--quiet', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect(summary.runDir).toBe(out);
    expect(summary.files).toContain('head.safetensors');
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
    expect(summary.evaluation.accuracy).toBe(report.accuracy);
    expect(summary.evaluation.macro_f1).toBe(report.macro_f1);
  });
});
