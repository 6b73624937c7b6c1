/** The small pieces of annotate: shard resolution, unit assignment, output aggregation, globbing, sbatch text. */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { expandInputs } from '../src/annotate/glob.js';
import { aggregatedColumns, outputColumns } from '../src/annotate/outputs.js';
import { assignUnits, type Unit } from '../src/annotate/plan.js';
import { renderSbatch, shellQuote } from '../src/annotate/sbatch.js';
import { resolveShard } from '../src/annotate/shard.js';
import { LabelMap } from '../src/train/label-map.js';
import { useTmpDirs } from './helpers/tmp.js';

const tmp = useTmpDirs('edu-annotate-units-');

describe('resolveShard', () => {
  it('flags win, then EDU_*, then the Slurm array (relative to its minimum and step), then JOB_COMPLETION_INDEX', () => {
    const env = { EDU_RANK: '1', EDU_WORLD_SIZE: '4', SLURM_ARRAY_TASK_ID: '7', SLURM_ARRAY_TASK_COUNT: '8', SLURM_ARRAY_TASK_MIN: '0' };
    expect(resolveShard({ rank: 2, worldSize: 3 }, env)).toMatchObject({ rank: 2, worldSize: 3 });
    expect(resolveShard({}, env)).toMatchObject({ rank: 1, worldSize: 4 });
    expect(resolveShard({}, { SLURM_ARRAY_TASK_ID: '12', SLURM_ARRAY_TASK_MIN: '10', SLURM_ARRAY_TASK_COUNT: '4' })).toMatchObject({ rank: 2, worldSize: 4 });
    expect(resolveShard({}, { SLURM_ARRAY_TASK_ID: '6', SLURM_ARRAY_TASK_MIN: '0', SLURM_ARRAY_TASK_STEP: '2', SLURM_ARRAY_TASK_COUNT: '4' })).toMatchObject({ rank: 3, worldSize: 4 });
    expect(resolveShard({ worldSize: 5 }, { JOB_COMPLETION_INDEX: '4' })).toMatchObject({ rank: 4, worldSize: 5 });
    expect(resolveShard({}, {})).toMatchObject({ rank: 0, worldSize: 1 });
  });

  it('refuses inconsistent values', () => {
    expect(() => resolveShard({ rank: 3, worldSize: 3 }, {})).toThrow(/rank 3 is not below the world size 3/);
    expect(() => resolveShard({}, { JOB_COMPLETION_INDEX: '1' })).toThrow(/pass --world-size/);
    expect(() => resolveShard({ worldSize: 2 }, {})).toThrow(/needs a rank/);
    expect(() => resolveShard({}, { EDU_RANK: 'x', EDU_WORLD_SIZE: '2' })).toThrow(/EDU_RANK must be a non-negative integer/);
  });
});

describe('assignUnits', () => {
  const units: Unit[] = [9, 1, 5, 5, 3, 8, 2, 7].map((w, i) => ({ file: i, rowStart: 0, rowEnd: null, weight: w }));

  it('gives every unit to exactly one rank, deterministically and balanced by weight', () => {
    const a = assignUnits(units, 3);
    expect(a).toEqual(assignUnits(units, 3));
    expect(a.flat().sort((x, y) => x - y)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    const loads = a.map((us) => us.reduce((s, u) => s + units[u].weight, 0));
    expect(Math.max(...loads) - Math.min(...loads)).toBeLessThanOrEqual(1); // 40 over 3 ranks: 14/13/13
    for (const us of a) expect(us).toEqual([...us].sort((x, y) => x - y)); // plan order within a rank
  });

  it('leaves ranks empty when there are fewer units than ranks', () => {
    expect(assignUnits(units.slice(0, 2), 4).map((u) => u.length)).toEqual([1, 1, 0, 0]);
  });
});

describe('window aggregation', () => {
  const z = Float32Array.from([1.5, 2.5, 3.5, 0.25]);

  it('regression: one window is the plain score, several are mean or max', () => {
    expect(aggregatedColumns(z, [1, 3], null, 'mean')).toEqual({ score: [1.5, (2.5 + 3.5 + 0.25) / 3], int_score: [2, 2] });
    expect(aggregatedColumns(z, [2, 2], null, 'max')).toEqual({ score: [2.5, 3.5], int_score: [2, 4] });
    expect(aggregatedColumns(z, [1, 1, 1, 1], null, 'mean')).toEqual(outputColumns(z, 4, null));
  });

  it('classification: probabilities are averaged (or maxed and renormalised), the label is their argmax', () => {
    const labels = new LabelMap(['a', 'b']);
    const logits = Float32Array.from([0, 2, 3, 0, 0, 1]); // windows: b, a, b
    const one = aggregatedColumns(logits, [1, 1, 1], labels, 'mean');
    expect(one).toEqual(outputColumns(logits, 3, labels));
    const mean = aggregatedColumns(logits, [3], labels, 'mean');
    const p = [0, 1, 2].map((w) => {
      const e = [Math.exp(logits[2 * w]), Math.exp(logits[2 * w + 1])];
      return e.map((x) => x / (e[0] + e[1]));
    });
    const avg = [0, 1].map((k) => (p[0][k] + p[1][k] + p[2][k]) / 3);
    expect(Array.from(mean.probs[0] as Float64Array)).toEqual(avg.map((x) => expect.closeTo(x, 12)));
    expect(mean.label).toEqual([avg[1] > avg[0] ? 'b' : 'a']);
    const max = aggregatedColumns(logits, [3], labels, 'max');
    const mx = [0, 1].map((k) => Math.max(p[0][k], p[1][k], p[2][k]));
    expect(Array.from(max.probs[0] as Float64Array)).toEqual(mx.map((x) => expect.closeTo(x / (mx[0] + mx[1]), 12)));
  });
});

describe('expandInputs', () => {
  it('expands *, ? and ** globs and folders into sorted absolute paths, skipping dot files', () => {
    const d = tmp.make();
    mkdirSync(join(d, 'a', 'b'), { recursive: true });
    for (const f of ['x1.parquet', 'x2.jsonl', '.x3.parquet.tmp-1', 'a/y.parquet', 'a/b/z.parquet', 'notes.txt']) writeFileSync(join(d, f), 'x');
    expect(expandInputs([join(d, 'x?.*')])).toEqual([join(d, 'x1.parquet'), join(d, 'x2.jsonl')]);
    expect(expandInputs([join(d, '**', '*.parquet')])).toEqual([join(d, 'a', 'b', 'z.parquet'), join(d, 'a', 'y.parquet'), join(d, 'x1.parquet')]);
    expect(expandInputs([d])).toEqual([join(d, 'a', 'b', 'z.parquet'), join(d, 'a', 'y.parquet'), join(d, 'x1.parquet'), join(d, 'x2.jsonl')]);
    expect(expandInputs([join(d, 'x1.parquet'), join(d, '*.parquet')])).toEqual([join(d, 'x1.parquet')]);
    expect(() => expandInputs([join(d, '*.csv')])).toThrow(/no files match/);
  });
});

describe('renderSbatch', () => {
  const common = {
    jobName: 'edu-annotate', array: 4, logDir: '/out/slurm/logs', node: '/usr/bin/node', cli: '/repo/dist/cli.js', workdir: '/repo',
    annotateArgs: ['--run', '/runs/r 1', '--input', '/data/*.parquet', '--output', '/out'],
  };

  it('CPU variant: array, requeue, append-mode logs, threads from the allocation, explicit rank and world size', () => {
    const s = renderSbatch({ ...common, cpusPerTask: 8, time: '04:00:00', mem: '16G', partition: 'cpu' });
    for (const line of ['#SBATCH --array=0-3', '#SBATCH --requeue', '#SBATCH --open-mode=append', '#SBATCH --output=/out/slurm/logs/annotate-%a.log',
      '#SBATCH --cpus-per-task=8', '#SBATCH --time=04:00:00', '#SBATCH --mem=16G', '#SBATCH --partition=cpu']) {
      expect(s.split('\n')).toContain(line);
    }
    expect(s).not.toMatch(/--gpus/);
    expect(s).toContain(`--input '/data/*.parquet'`); // quoted: the glob is expanded by annotate, identically on every node
    expect(s).toContain(`--run '/runs/r 1'`);
    expect(s).toMatch(/--rank "\$SLURM_ARRAY_TASK_ID" --world-size 4 --device cpu/);
    expect(spawnSync('bash', ['-n'], { input: s }).status).toBe(0);
  });

  it('GPU variant', () => {
    const s = renderSbatch({ ...common, gpus: 1, arrayParallel: 2 });
    expect(s.split('\n')).toContain('#SBATCH --gpus=1');
    expect(s.split('\n')).toContain('#SBATCH --array=0-3%2');
    expect(s).toMatch(/--device auto/);
    expect(spawnSync('bash', ['-n'], { input: s }).status).toBe(0);
  });

  it('quotes for the shell', () => {
    expect(shellQuote('/a/b.parquet')).toBe('/a/b.parquet');
    expect(shellQuote("it's *")).toBe(`'it'\\''s *'`);
  });
});
