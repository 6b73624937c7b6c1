/**
 * annotate --chunking chunks (overlapping windows), --model-dir with a ready-made classifier, and
 * `launch slurm`. A document that fits in --max-length is one window equal to its ordinary encoding, so
 * it scores exactly as with --chunking truncate.
 */
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { WindowTokenizer } from '../src/annotate/windows.js';
import { generateModelFolder } from '../src/model/generate.js';
import { TextTokenizer } from '../src/tokenize/tokenizer.js';
import { cli, makeAnnotateFixture, readParts, scores, type AnnotateFixture } from './helpers/annotate-fixture.js';
import { runCli } from './helpers/cli.js';
import { sharedPath } from './helpers/shared.js';
import { useTmpDirs } from './helpers/tmp.js';

const tmp = useTmpDirs('edu-annotate-chunks-');
let fx: AnnotateFixture;
let shortFile: string;
let mixedFile: string;
let long: Set<number>;

const annotate = async (out: string, input: string, extra: string[] = []) =>
  await cli(['annotate', '--run', fx.run, '--input', input, '--output', out, '--threads', '1', '--quiet', ...extra]);

beforeAll(async () => {
  fx = await makeAnnotateFixture(tmp.make());
  const tok = TextTokenizer.load(fx.model, { maxLength: 64 });
  const lines = readFileSync(join(fx.corpus, 'extra.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const enc = await tok.encode(lines.map((l) => l.text));
  const shortRows = lines.filter((_, i) => enc[i].droppedTokens === 0);
  long = new Set(lines.filter((_, i) => enc[i].droppedTokens > 0).map((l) => l.id));
  expect(long.size).toBeGreaterThan(50);
  shortFile = join(fx.dir, 'short.jsonl');
  writeFileSync(shortFile, shortRows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  mixedFile = join(fx.corpus, 'extra.jsonl');
}, 600_000);

describe('WindowTokenizer', () => {
  it('cuts long texts into overlapping windows re-wrapped in <s> .. </s>, and leaves short ones alone', async () => {
    const w = await WindowTokenizer.load(fx.model, 16).init();
    const plain = TextTokenizer.load(fx.model, { maxLength: 16 });
    const text = '한국어 위키백과의 문단을 여러 번 이어 붙인 긴 문서입니다. '.repeat(6);
    const full = (await TextTokenizer.load(fx.model, { maxLength: 512 }).encode([text]))[0].ids;
    const [short] = await plain.encode(['짧은 글']);
    const r = await w.encode(['짧은 글', text]);
    expect(r.counts[0]).toBe(1);
    expect(Array.from(r.windows[0].ids)).toEqual(Array.from(short.ids));
    const body = Array.from(full.slice(1, -1));
    const B = 14;
    const stride = 7;
    const expected = Math.ceil(Math.max(0, body.length - B) / stride) + 1;
    expect(r.counts[1]).toBe(expected);
    expect(r.longDocs).toBe(1);
    const wins = r.windows.slice(1);
    wins.forEach((win, k) => {
      const ids = Array.from(win.ids);
      expect(ids.length).toBeLessThanOrEqual(16);
      expect(ids[0]).toBe(full[0]);
      expect(ids[ids.length - 1]).toBe(full[full.length - 1]);
      expect(ids.slice(1, -1)).toEqual(body.slice(k * stride, k * stride + B));
    });
    expect(Array.from(wins[wins.length - 1].ids).slice(-2, -1)[0]).toBe(body[body.length - 1]); // the end is covered
  });
});

describe('--chunking chunks', () => {
  it('short documents score bit-identically with truncate and chunks', async () => {
    const a = join(fx.dir, 'short-trunc');
    const b = join(fx.dir, 'short-chunks');
    await annotate(a, shortFile);
    const log = await annotate(b, shortFile, ['--chunking', 'chunks']);
    expect(log).toMatch(/chunks: 0 of \d+ documents \(0\.0%\) were longer than 64 tokens/);
    expect(scores(await readParts(b))).toEqual(scores(await readParts(a)));
  });

  it('long documents are scored in windows; short ones keep their score (up to batch composition)', async () => {
    const t = join(fx.dir, 'mixed-trunc');
    const mean = join(fx.dir, 'mixed-mean');
    const max = join(fx.dir, 'mixed-max');
    expect(await annotate(t, mixedFile)).toMatch(new RegExp(`truncated ${long.size} of 500 documents`));
    expect(await annotate(mean, mixedFile, ['--chunking', 'chunks'])).toMatch(new RegExp(`chunks: ${long.size} of 500 documents .* scored in [\\d.]+k? windows in all \\(mean\\)`));
    await annotate(max, mixedFile, ['--chunking', 'chunks', '--chunk-agg', 'max']);
    const st = JSON.parse(readFileSync(join(mean, 'completions', '0'), 'utf8')).stats;
    expect(st.windowedDocs).toBe(long.size);
    expect(st.windows).toBeGreaterThan(500 + long.size);
    const [st0, sm, sx] = [scores(await readParts(t)), scores(await readParts(mean)), scores(await readParts(max))];
    expect(sm.size).toBe(500);
    let differ = 0;
    for (const [id, s] of sm) {
      if (long.has(id)) {
        expect(sx.get(id)!).toBeGreaterThanOrEqual(s - 1e-12); // max of the windows >= their mean
        if (s !== st0.get(id)) differ++;
      } else {
        // Other documents in the chunk changed (windows), so batches differ: equal within float32 rounding.
        expect(Math.abs(s - st0.get(id)!)).toBeLessThan(1e-5);
        expect(sx.get(id)).toBe(s);
      }
    }
    expect(differ).toBeGreaterThan(long.size / 2);
  });
});

describe('--model-dir: a ready-made classifier', () => {
  it('writes label, label_id and probs from the model\'s own head (truncate and chunks)', async () => {
    const model = join(fx.dir, 'cls');
    generateModelFolder(model, { modelType: 'roberta', tokenizerDir: sharedPath('models', 'tokenizer-only', 'klue-roberta-tokenizer'), seed: 5,
      head: 'seqcls', id2label: ['low', 'mid', 'high'] });
    for (const chunking of ['truncate', 'chunks']) {
      const out = join(fx.dir, `cls-${chunking}`);
      await cli(['annotate', '--model-dir', model, '--input', mixedFile, '--output', out, '--max-length', '64', '--chunking', chunking, '--threads', '1', '--quiet']);
      const rows = await readParts(out);
      expect(rows.size).toBe(500);
      for (const r of rows.values()) {
        const p = Array.from(r.probs as Float64Array);
        expect(p.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
        expect(r.label_id).toBe(p.indexOf(Math.max(...p)));
        expect(r.label).toBe(['low', 'mid', 'high'][r.label_id as number]);
      }
      expect(JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')).model.labels).toEqual(['low', 'mid', 'high']);
    }
  });

  it('an `export` folder of the run scores like the run itself', async () => {
    const exported = join(fx.dir, 'exported');
    await cli(['export', '--run', fx.run, '--output', exported]);
    const viaRun = join(fx.dir, 'via-run');
    const viaExport = join(fx.dir, 'via-export');
    await annotate(viaRun, mixedFile);
    await cli(['annotate', '--model-dir', exported, '--input', mixedFile, '--output', viaExport, '--threads', '1', '--quiet']);
    const [a, b] = [scores(await readParts(viaRun)), scores(await readParts(viaExport))];
    expect(b.size).toBe(500);
    for (const [id, s] of a) expect(Math.abs(b.get(id)! - s)).toBeLessThan(1e-5);
  });

  it('refuses a model without a classification head', async () => {
    const r = await runCli(['annotate', '--model-dir', fx.model, '--input', mixedFile, '--output', join(fx.dir, 'nohead')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/has no classification head/);
  });
});

describe('launch slurm', () => {
  it('prints the script, or writes it (and the log folder) with --script', async () => {
    const out = join(fx.dir, 'slurm-out');
    const r = await runCli(['launch', 'slurm', '--run', fx.run, '--input', fx.input, '--output', out, '--array', '4', '--cpus-per-task', '2', '--time', '01:00:00', '--chunking', 'chunks']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^#!\/bin\/bash/);
    expect(r.stdout).toContain('#SBATCH --array=0-3');
    expect(r.stdout).toContain('#SBATCH --requeue');
    expect(r.stdout).toContain('--chunking chunks');
    expect(r.stdout).toContain(`--input '${fx.input}'`);
    expect(r.stdout).toContain('--dtype fp32'); // the CPU variant passes the CPU arithmetic, not the GPU's
    expect(r.stdout).not.toContain('--precision');
    expect(existsSync(out)).toBe(false); // printing has no side effects
    const script = join(fx.dir, 'job.sbatch');
    expect((await runCli(['launch', 'slurm', '--run', fx.run, '--input', fx.input, '--output', out, '--array', '2', '--gpus', '1', '--script', script])).code).toBe(0);
    expect(readFileSync(script, 'utf8')).toContain('#SBATCH --gpus=1');
    expect(readFileSync(script, 'utf8')).toContain('--precision bf16');
    expect(readFileSync(script, 'utf8')).not.toContain('--dtype');
    const bf16 = await runCli(['launch', 'slurm', '--run', fx.run, '--input', fx.input, '--output', out, '--array', '2', '--dtype', 'bf16']);
    expect(bf16.stdout).toContain('--dtype bf16');
    expect(statSync(join(out, 'slurm', 'logs')).isDirectory()).toBe(true);
  });

  it('needs a model', async () => {
    const r = await runCli(['launch', 'slurm', '--input', fx.input, '--output', join(fx.dir, 'x'), '--array', '2']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/needs a model/);
  });
});
