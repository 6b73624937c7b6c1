/**
 * CLI conventions: `--config FILE` (JSON option values, camelCase / kebab-case / snake_case keys; flags on
 * the command line win; unknown keys and bad values are exit-2 errors that say what to fix), the effective
 * options printed by train and saved in run.json, and every option's default in every command's --help.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { beforeAll, describe, expect, it } from 'vitest';
import { configPathFromArgs } from '../src/commands/config-file.js';
import { generateModelFolder } from '../src/model/generate.js';
import { buildProgram } from '../src/program.js';
import { runCli } from './helpers/cli.js';
import { useTmpDirs } from './helpers/tmp.js';

const tmp = useTmpDirs('edu-config-');
const SAMPLE = join(process.cwd(), 'assets', 'demo', 'sentence-types.jsonl');
const json = (f: string) => JSON.parse(readFileSync(f, 'utf8'));

let root: string;
let model: string;
let cache: string;

function writeConfig(name: string, value: unknown): string {
  const f = join(root, name);
  writeFileSync(f, typeof value === 'string' ? value : JSON.stringify(value));
  return f;
}

beforeAll(() => {
  root = tmp.make();
  model = join(root, 'model');
  cache = join(root, 'cache');
  generateModelFolder(model, {
    modelType: 'bert', hidden: 32, layers: 1, heads: 2, intermediate: 64, maxPositions: 64,
    tokenizerDir: join(process.cwd(), 'assets', 'tokenizers', 'all-minilm-l6-v2'), seed: 5,
  });
});

describe('--config', () => {
  let run: string;
  let stderr: string;
  beforeAll(async () => {
    run = join(root, 'run');
    const config = writeConfig('train.json', {
      'model-dir': model, train: SAMPLE, task: 'classification', // required options may come from the file
      epochs: 5, // overridden on the command line below
      batchSize: 16, // camelCase
      'class-weights': 'balanced', // kebab-case
      max_length: 32, // snake_case, as run.json writes it
      labels: ['prediction', 'fact', 'inference', 'conversation'], // a list
      cache: false, // a --no-X switch
      folds: null, // null = unset
      'cache-dir': cache,
    });
    const r = await runCli(['train', '--config', config, '--epochs', '2', '--output', run, '--threads', '2']);
    expect(r.code, r.stderr).toBe(0);
    stderr = r.stderr;
  });

  it('command-line flags override the file, the file overrides the defaults, and run.json records the result', () => {
    const o = json(join(run, 'run.json')).options;
    expect(o).toMatchObject({
      model_dir: model, train: SAMPLE, task: 'classification', epochs: 2, batch_size: 16, class_weights: 'balanced', max_length: 32,
      labels: ['prediction', 'fact', 'inference', 'conversation'], cache: false, folds: null, lr: 3e-4, seed: 42, output: run,
    });
    expect(json(join(run, 'run.json')).embeddings[0].cache).not.toBe('hit'); // --no-cache from the file
  });

  it('train prints the effective options with where each came from', () => {
    expect(stderr).toMatch(/effective options \(saved in run\.json\):/);
    expect(stderr).toMatch(/^ {2}--epochs 2 {2}\(command line\)$/m);
    expect(stderr).toMatch(/^ {2}--batch-size 16 {2}\(config\)$/m);
    expect(stderr).toMatch(/^ {2}--class-weights balanced {2}\(config\)$/m);
    expect(stderr).toMatch(/^ {2}--lr 0\.0003$/m); // a default
  });

  it("a run's run.json is a config: the same options again, flags still win", async () => {
    const again = join(root, 'again');
    const r = await runCli(['train', '--config', join(run, 'run.json'), '--output', again, '--seed', '7', '--quiet', '--threads', '2']);
    expect(r.code, r.stderr).toBe(0);
    const before = json(join(run, 'run.json')).options;
    const after = json(join(again, 'run.json')).options;
    expect(after).toEqual({ ...before, output: again, seed: 7, quiet: true });
  });

  it('eval and predict take --config too', async () => {
    const out = join(root, 'pred.jsonl');
    const c = writeConfig('predict.json', { run, input: SAMPLE, output: out, quiet: true });
    const r = await runCli(['predict', '--config', c, '--threads', '2']);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(out, 'utf8').trim().split('\n')).toHaveLength(200);
    const e = writeConfig('eval.json', { predictions: out, 'true-column': 'label', 'pred-column': 'label', json: true });
    const r2 = await runCli(['eval', '--config', e]);
    expect(r2.code, r2.stderr).toBe(0);
    expect(JSON.parse(r2.stdout).accuracy).toBe(1);
  });

  const errors: [string, unknown, RegExp, string?][] = [
    ['an unknown key, listing the valid ones', { epochs: 3, epoch: 4 }, /--config .*bad-0\.json: unknown option "epoch" for `edu-train train`; valid keys: .*batch-size, .*epochs, .*warmup-ratio/],
    ['a value its option rejects', { epochs: 'many' }, /"epochs": --epochs must be a positive integer/],
    ['a value outside the choices', { sampler: 'random' }, /"sampler" is "random"; --sampler must be one of shuffle, weighted/],
    ['a value for a switch', { overwrite: 'yes' }, /"overwrite" is a switch \(--overwrite\): use true or false/],
    ['true for an option that takes a value', { lr: true }, /"lr" needs a value for --lr/],
    ['not an object', [1, 2], /must hold one JSON object of option values/],
    ['not JSON', '{epochs: 3', /not valid JSON/],
    ['an unknown key of embed', { 'label-column': 'x' }, /unknown option "label-column" for `edu-train embed`/, 'embed'],
  ];
  errors.forEach(([name, value, message, command], i) => {
    it(`exits 2 on ${name}`, async () => {
      const f = writeConfig(`bad-${i}.json`, value);
      const out = join(root, `bad-run-${i}`);
      const r = await runCli([command ?? 'train', '--config', f, '--output', out]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(existsSync(out)).toBe(false);
    });
  });

  it('exits 2 when the file is missing', async () => {
    const r = await runCli(['eval', '--config', join(root, 'nope.json')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--config .*nope\.json: no such file/);
  });

  it('finds --config FILE and --config=FILE, not after --', () => {
    expect(configPathFromArgs(['--epochs', '2', '--config', 'a.json'])).toBe('a.json');
    expect(configPathFromArgs(['--config=b.json'])).toBe('b.json');
    expect(configPathFromArgs(['--', '--config', 'c.json'])).toBeUndefined();
  });
});

describe('--help and exit codes', () => {
  const commands = (): Command[] => {
    const all: Command[] = [];
    const walk = (c: Command) => {
      all.push(c);
      c.commands.forEach(walk);
    };
    buildProgram().commands.forEach(walk);
    return all;
  };

  it('every option of every command states its default (or that it is required)', () => {
    const missing: string[] = [];
    for (const cmd of commands()) {
      const help = cmd.createHelp();
      for (const o of cmd.options) {
        if (o.long === '--help' || o.long === '--version') continue;
        if (!/\bdefault\b|\brequired\b/i.test(help.optionDescription(o))) missing.push(`${cmd.name()} ${o.flags}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('--help of each command lists all its options and exits 0; train/eval/predict/embed offer --config', async () => {
    for (const cmd of buildProgram().commands) {
      const r = await runCli([cmd.name(), '--help']);
      expect(r.code, cmd.name()).toBe(0);
      for (const o of cmd.options) expect(r.stdout, `${cmd.name()} ${o.long}`).toContain(o.long!);
      if (['train', 'eval', 'predict', 'embed'].includes(cmd.name())) expect(r.stdout).toMatch(/--config <file>/);
    }
  });

  it('usage mistakes exit 2 and say what to do', async () => {
    const r = await runCli(['train', '--model-dir', model, '--output', join(root, 'x')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/required option '--train <file>' not specified/);
    expect((await runCli(['trian'])).code).toBe(2);
  });
});
