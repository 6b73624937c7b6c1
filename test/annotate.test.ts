/**
 * `edu-train annotate` end to end: sharded runs give exactly the rows of a single-process run, a rank killed
 * with SIGKILL resumes without duplicating or losing a row, a second process on a live rank is refused, and a rerun with other settings is refused.
 *
 * Scores are compared bit for bit: chunks are cut at fixed offsets within each unit (file, row-group range)
 * and the encoder batches only within a chunk, so every rank sees the same batches as the single process.
 */
import { appendFileSync, cpSync, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { roundHalfEven } from '../src/eval/metrics.js';
import { cli, CORPUS_ROWS, makeAnnotateFixture, readParts, runCliAsync, scores, type AnnotateFixture, type Scored } from './helpers/annotate-fixture.js';
import { runCli } from './helpers/cli.js';
import { useTmpDirs } from './helpers/tmp.js';

const tmp = useTmpDirs('edu-annotate-');
let fx: AnnotateFixture;
let reference: Scored;

/** Small chunks and parts, and row groups shared out in 256-row units, so a 2,000-row corpus exercises it all. */
const base = (out: string, input = fx.input) => [
  'annotate', '--run', fx.run, '--input', input, '--output', out, '--keep-columns', 'src', '--threads', '1',
  '--chunk-rows', '64', '--rows-per-checkpoint', '128', '--unit-rows', '256', '--quiet',
];

function expectSameRows(got: Scored): void {
  expect([...got.keys()].sort((a, b) => a - b)).toEqual(fx.ids);
  expect(scores(got)).toEqual(scores(reference));
  for (const [id, r] of got) expect(r.src).toBe(reference.get(id)!.src);
}

beforeAll(async () => {
  fx = await makeAnnotateFixture(tmp.make());
  const out = join(fx.dir, 'single');
  const log = await cli(base(out));
  expect(log).toMatch(/annotate rank 0\/1: 2\.00k docs/);
  expect(log).toMatch(/truncated \d+ of 2\.00k documents \([\d.]+%\) to 64 tokens/);
  reference = await readParts(out);
}, 600_000);

describe('single process', () => {
  it('writes every input row once with score and int_score, plus the kept column', () => {
    expect(reference.size).toBe(CORPUS_ROWS);
    const r = reference.get(1234)!;
    expect(Object.keys(r)).toEqual(['id', 'src', 'score', 'int_score']);
    for (const row of reference.values()) {
      const s = row.score as number;
      expect(Number.isFinite(s)).toBe(true);
      expect(row.int_score).toBe(roundHalfEven(Math.min(5, Math.max(0, s))));
    }
    const m = JSON.parse(readFileSync(join(fx.dir, 'single', 'manifest.json'), 'utf8'));
    expect(m.world_size).toBe(1);
    // 3 Parquet files cut into 256-row units (2 + 3 + 2) and the JSONL file whole
    expect(m.plan.units).toHaveLength(8);
    expect(readdirSync(join(fx.dir, 'single', 'completions'))).toEqual(['0']);
  });
});

describe('W=3 local processes', () => {
  it('produce exactly the rows and scores of the single-process run', async () => {
    const out = join(fx.dir, 'w3');
    const rs = await Promise.all([0, 1, 2].map((r) => runCliAsync([...base(out), '--rank', String(r), '--world-size', '3'])));
    for (const r of rs) expect(r.code, r.stderr).toBe(0);
    expect(rs.map((r) => /all 3 ranks complete/.test(r.stderr)).filter(Boolean)).toHaveLength(1);
    expectSameRows(await readParts(out));
    const names = readdirSync(out).filter((n) => n.startsWith('part-'));
    for (const r of [0, 1, 2]) expect(names.some((n) => n.startsWith(`part-0000${r}-`))).toBe(true);
    // a rerun of a finished rank does nothing
    const again = await runCli([...base(out), '--rank', '1', '--world-size', '3']);
    expect(again.code).toBe(0);
    expect(again.stderr).toMatch(/already complete, nothing to do \(all 3 ranks complete\)/);
  });

  it('takes the rank from EDU_RANK / EDU_WORLD_SIZE and from a Slurm array starting at 5', async () => {
    const out = join(fx.dir, 'env');
    const rs = await Promise.all([
      runCliAsync(base(out), { EDU_RANK: '0', EDU_WORLD_SIZE: '3' }),
      runCliAsync(base(out), { SLURM_ARRAY_TASK_ID: '6', SLURM_ARRAY_TASK_MIN: '5', SLURM_ARRAY_TASK_COUNT: '3' }),
      runCliAsync([...base(out), '--world-size', '3'], { JOB_COMPLETION_INDEX: '2' }),
    ]);
    for (const r of rs) expect(r.code, r.stderr).toBe(0);
    expect(rs[1].stderr).toMatch(/annotate rank 1\/3/);
    expectSameRows(await readParts(out));
  });
});

describe('interrupted ranks', () => {
  it('a rank SIGKILLed after a checkpoint resumes to the same result, nothing duplicated', async () => {
    const out = join(fx.dir, 'killed');
    await cli([...base(out), '--rank', '0', '--world-size', '3']);
    await cli([...base(out), '--rank', '2', '--world-size', '3']);
    const ckpt = join(out, 'checkpoints', '1.json');
    let pid = 0;
    const slow = runCliAsync([...base(out), '--rank', '1', '--world-size', '3', '--rows-per-checkpoint', '64'], { EDU_TRAIN_ANNOTATE_TEST_SLEEP_MS: '1500' }, (p) => (pid = p)); // slow enough to still be mid-way after the second process below
    const deadline = Date.now() + 120_000;
    while (!existsSync(ckpt) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(existsSync(ckpt)).toBe(true);
    // A second process on the live rank is refused before it touches the rank's files.
    const partsBefore = readdirSync(out).filter((n) => n.startsWith('part-00001-'));
    const second = await runCliAsync([...base(out), '--rank', '1', '--world-size', '3']);
    expect(second.code, second.stderr).toBe(2);
    expect(second.stderr).toMatch(new RegExp(`annotate rank 1: process ${pid} on \\S+ \\(since [^)]+\\) is already working on this rank`));
    expect(readdirSync(out).filter((n) => n.startsWith('part-00001-'))).toEqual(expect.arrayContaining(partsBefore));
    process.kill(pid, 'SIGKILL');
    const killed = await slow;
    expect(killed.signal).toBe('SIGKILL');
    expect(existsSync(join(out, 'completions', '1'))).toBe(false);
    const cp = JSON.parse(readFileSync(ckpt, 'utf8'));
    expect(cp.stats.rows).toBeGreaterThanOrEqual(64);
    expect(cp.stats.rows).toBeLessThan(700); // mid-way: rank 1 has about a third of the corpus

    const resumed = await cli([...base(out), '--rank', '1', '--world-size', '3']);
    expect(resumed).toMatch(new RegExp(`took over a stale lock \\(its process ${pid} on this host has exited\\)`));
    expect(resumed).toMatch(new RegExp(`resuming after ${cp.stats.rows} rows in ${cp.parts.length} parts`));
    expect(resumed).toMatch(/all 3 ranks complete/);
    expectSameRows(await readParts(out));
    expect(readdirSync(out).filter((n) => n.startsWith('.'))).toEqual([]); // no temp file left
    expect(readdirSync(join(out, 'locks'))).toEqual([]); // every rank released its lock
  });

  it('a kill between a part and its checkpoint leaves an orphan part that the resume replaces', async () => {
    const out = join(fx.dir, 'orphan');
    const crashed = await runCliAsync(base(out), { EDU_TRAIN_ANNOTATE_TEST_CRASH: 'after-part' });
    expect(crashed.signal).toBe('SIGKILL');
    expect(readdirSync(out).filter((n) => n.startsWith('part-'))).toEqual(['part-00000-00000.parquet']);
    expect(existsSync(join(out, 'checkpoints', '0.json'))).toBe(false);
    const log = await cli(base(out));
    expect(log).toMatch(/removed 1 uncommitted files/);
    expectSameRows(await readParts(out));
  });
});

describe('a rerun with other settings is refused', () => {
  let out: string;
  beforeAll(() => {
    out = join(fx.dir, 'w3'); // finished above with W=3
  });

  const refused = async (args: string[]) => {
    const r = await runCli(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/holds an annotation started with different settings/);
    return r.stderr;
  };

  it('different world size', async () => {
    expect(await refused([...base(out), '--rank', '0', '--world-size', '4'])).toMatch(/world size: it was started with 3 ranks, this run has 4/);
  });

  it('different model', async () => {
    const other = join(fx.dir, 'run2');
    await cli(['train', '--model-dir', fx.model, '--train', join(fx.dir, 'train.csv'), '--label-column', 'label', '--task', 'regression',
      '--epochs', '3', '--output', other, '--max-length', '64', '--threads', '2', '--quiet', '--cache-dir', join(fx.dir, 'cache')]);
    const args = base(out);
    args[args.indexOf('--run') + 1] = other;
    expect(await refused([...args, '--rank', '0', '--world-size', '3'])).toMatch(/model: it was started with run .*run \(regression/);
  });

  it('different input set: a file left out, or a file changed', async () => {
    expect(await refused([...base(out, join(fx.corpus, '*.parquet')), '--rank', '0', '--world-size', '3'])).toMatch(/input set: 4 files then, 3 now; removed .*extra\.jsonl/);
    const corpus2 = join(fx.dir, 'corpus2');
    cpSync(fx.corpus, corpus2, { recursive: true });
    const out2 = join(fx.dir, 'changed');
    await cli(base(out2, join(corpus2, '*')));
    const jsonl = join(corpus2, 'extra.jsonl');
    const before = statSync(jsonl).size;
    appendFileSync(jsonl, `${JSON.stringify({ id: 99999, text: 'new', src: 'jsonl' })}\n`);
    expect(statSync(jsonl).size).toBeGreaterThan(before);
    expect(await refused(base(out2, join(corpus2, '*')))).toMatch(/input set: 4 files then, 4 now; changed \(size or mtime\) .*extra\.jsonl/);
  });

  it('different options', async () => {
    expect(await refused([...base(out), '--rank', '0', '--world-size', '3', '--batch-size', '8'])).toMatch(/option batch_size: was 32, now 8/);
  });
});
