/**
 * Conformance: `edu-train forward` reproduces the reference PyTorch outputs in ../shared/golden for
 * every case, every output (all positions of last_hidden_state, padded ones included), on every CPU
 * code path this machine can run.
 *
 * Tolerance: atol_hint_per_output = 1e-5 x max|output|. The reference's own float32 rounding error is
 * below a tenth of that (golden/README.md), so this leaves room for a different summation order but
 * not for tanh-GELU, a wrong LayerNorm eps, missing masking or a wrong RoBERTa position offset.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadAddon } from '../src/native/addon.js';
import { runCli } from './helpers/cli.js';
import { GOLDEN_CASES, readSharedJson, sharedPath } from './helpers/shared.js';

const OUTPUT_KEYS = ['last_hidden_state', 'mean_pooled', 'mean_pooled_normalized', 'cls', 'pooler_output', 'logits'];

function flatten(x: unknown): number[] {
  return Array.isArray(x) ? x.flatMap(flatten) : [x as number];
}

/** Every ISA this CPU can execute; the conformance suite runs on each. */
function supportedIsas(): string[] {
  const info = loadAddon().cpuInfo();
  const isas = ['scalar'];
  if (info.avx2 && info.fma) isas.push('avx2');
  if (info.avx512f) isas.push('avx512');
  return isas;
}

const work = mkdtempSync(join(tmpdir(), 'edu-golden-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe.each(supportedIsas())('edu-train forward matches ../shared/golden (ISA %s)', (isa) => {
  it.each(GOLDEN_CASES)('%s', async (name) => {
    const dir = sharedPath('golden', name);
    const out = join(work, `${name}-${isa}.json`);
    const r = await runCli(['forward', '--model-dir', dir, '--inputs', join(dir, 'inputs.json'), '--output', out], {
      EDU_TRAIN_CPU_ISA: isa,
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const got = JSON.parse(readFileSync(out, 'utf8'));
    const expected = readSharedJson('golden', name, 'expected.json');
    const present = OUTPUT_KEYS.filter((k) => k in expected);
    expect(present.length).toBeGreaterThanOrEqual(5);
    for (const key of present) {
      expect(got.shapes[key], key).toEqual(expected.shapes[key]);
      const a = flatten(got[key]);
      const b = flatten(expected[key]);
      expect(a.length, key).toBe(b.length);
      let maxErr = 0;
      for (let i = 0; i < a.length; i++) maxErr = Math.max(maxErr, Math.abs(a[i] - b[i]));
      const atol = expected.atol_hint_per_output[key];
      expect(maxErr, `${name} ${key}: max abs error ${maxErr} vs atol ${atol}`).toBeLessThanOrEqual(atol);
    }
    // Outputs the model does not have must not be invented.
    for (const key of OUTPUT_KEYS.filter((k) => !(k in expected))) expect(got[key], key).toBeUndefined();
  });
});
