/**
 * Every command that runs an encoder takes --device, and `cuda` on a machine without a usable GPU is a
 * clear error (exit 2), never a silent CPU run. (This suite runs where CI runs: no GPU.)
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { generateModelFolder } from '../src/model/generate.js';
import { loadAddon } from '../src/native/addon.js';
import { runCli } from './helpers/cli.js';
import { useTmpDirs } from './helpers/tmp.js';
import { repoRoot } from './helpers/shared.js';

const tmp = useTmpDirs('edu-device-cli-');
const data = join(repoRoot, 'assets', 'demo', 'sentence-types.jsonl');

describe('--device cuda without a GPU', () => {
  let model: string;
  let classifier: string;
  beforeAll(() => {
    const info = loadAddon().cudaInfo?.();
    // The premise of this suite: no usable GPU here (npm run test:gpu covers GPU machines).
    expect(info?.devices?.some((d) => d.usable) ?? false).toBe(false);
    model = join(tmp.make(), 'm');
    const tokenizerDir = join(repoRoot, 'assets', 'tokenizers', 'all-minilm-l6-v2');
    generateModelFolder(model, { modelType: 'bert', preset: 'tiny', tokenizerDir });
    classifier = join(tmp.make(), 'c');
    generateModelFolder(classifier, { modelType: 'bert', preset: 'tiny', tokenizerDir, head: 'seqcls', problemType: 'regression' });
  });

  it.each([
    ['embed', (out: string) => ['embed', '--model-dir', model, '--input', data, '--output', join(out, 'e.jsonl')]],
    ['train', (out: string) => ['train', '--model-dir', model, '--train', data, '--task', 'classification', '--output', join(out, 'run'), '--no-cache']],
    ['predict', (out: string) => ['predict', '--model-dir', classifier, '--input', data, '--output', join(out, 'e.jsonl')]],
    ['annotate', (out: string) => ['annotate', '--model-dir', classifier, '--input', data, '--output', join(out, 'ann')]],
  ])('%s --device cuda exits 2 and writes nothing', async (_name, args) => {
    const out = tmp.make();
    const r = await runCli([...args(out), '--device', 'cuda', '--quiet']);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/--device cuda: no usable NVIDIA GPU/);
    expect(existsSync(join(out, 'e.jsonl')) || existsSync(join(out, 'run'))).toBe(false);
  });

  it('--device auto falls back to the CPU and says so', async () => {
    const out = tmp.make();
    const r = await runCli(['embed', '--model-dir', model, '--input', data, '--output', join(out, 'e.jsonl'), '--device', 'auto', '--quiet']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/CPU/);
  });
});
