/**
 * Leaks (issue 8): load, run and dispose an encoder 1,000 times (a tiny generated model with the real klue
 * tokenizer, so every load allocates ~9 MB of weights), plus a trainable Head and failing calls each time,
 * in a child process with --expose-gc; RSS after the loop must stay within 64 MiB of RSS after a 100-round
 * warm-up. Leaking the weights once per round would add ~9 GB; leaking 64 KiB per round would fail too.
 * (scripts/hardening/leak-check.sh runs the same loop under LeakSanitizer.)
 */
import { runAsync } from './helpers/cli.js';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { generateModelFolder } from '../src/model/generate.js';
import { repoRoot, sharedPath } from './helpers/shared.js';
import { useTmpDirs } from './helpers/tmp.js';

const tmp = useTmpDirs('edu-leak-');
const BOUND_MIB = 64;

it(`1,000 load / run / dispose rounds keep RSS flat (within ${BOUND_MIB} MiB after warm-up)`, async () => {
  const model = join(tmp.make(), 'tiny');
  generateModelFolder(model, { modelType: 'roberta', tokenizerDir: sharedPath('models', 'tokenizer-only', 'klue-roberta-tokenizer'), seed: 11 });
  const r = await runAsync(process.execPath, ['--expose-gc', join(repoRoot, 'scripts', 'hardening', 'leak-loop.mjs'), '--model', model, '--iterations', '1000', '--warmup', '100'], {
    timeoutMs: 600_000,
  });
  expect(r.code, r.stderr).toBe(0);
  const m = JSON.parse(r.stdout.trim().split('\n').pop()!) as { iterations: number; growthMiB: number; rssWarmMiB: number; rssEndMiB: number; externalEndMiB: number; externalWarmMiB: number };
  console.log(`leak loop: RSS ${m.rssWarmMiB} MiB after warm-up -> ${m.rssEndMiB} MiB after ${m.iterations} rounds (growth ${m.growthMiB} MiB); external ${m.externalWarmMiB} -> ${m.externalEndMiB} MiB`);
  expect(m.iterations).toBe(1000);
  expect(m.growthMiB).toBeLessThan(BOUND_MIB);
  expect(m.externalEndMiB - m.externalWarmMiB).toBeLessThan(8);
}, 700_000);
