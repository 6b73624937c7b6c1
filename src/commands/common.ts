/** Options shared by every command that loads an encoder, and their parsing. */
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, statSync, unlinkSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { formatFromPath, openTable } from '../data/table.js';
import type { OpenTableOptions, TableReader } from '../data/types.js';
import { UsageError, messageOf } from '../util/errors.js';
import { resolveModelDir } from '../hub/resolve.js';
import type { EncoderRuntime } from '../encoder.js';
import type { CpuDtype, CpuIsa, CudaPrecision } from '../native/addon-types.js';

export interface EncoderCliOptions {
  /** Always set by the time the action runs: --model-dir, or the folder --backbone resolved to. */
  modelDir: string;
  backbone?: string;
  device: string;
  threads?: number;
  maxLength?: number;
  precision?: CudaPrecision;
  maxBatchTokens?: number;
  /** --dtype (train, embed, forward): the CPU arithmetic. */
  dtype?: CpuDtype;
}

/** The flags that say where and how the encoder runs, as every command spells them. */
export interface DeviceCliOptions {
  device?: string;
  threads?: number;
  precision?: CudaPrecision;
  maxBatchTokens?: number;
  /** --dtype: the CPU arithmetic (fp32 unless bf16 is asked for). */
  dtype?: CpuDtype;
}

/** --device, --precision, --max-batch-tokens, --threads, --dtype: for commands that run an encoder. */
export function addDeviceOptions(cmd: Command, { threads = true }: { threads?: boolean } = {}): Command {
  cmd
    .addOption(new Option('--device <device>', 'where the encoder runs: cpu, auto (a usable GPU, else the CPU) or cuda[:N]').default('cpu'))
    .addOption(new Option('--precision <p>', 'GPU arithmetic: bf16 (tensor cores, fp32 accumulation) or fp32; the CPU is fp32 unless the command has --dtype bf16').choices(['bf16', 'fp32']).default('bf16'))
    .option('--max-batch-tokens <n>', 'GPU: at most this many padded tokens per forward pass (default: sized from free GPU memory)', parsePositiveInt('--max-batch-tokens'));
  if (threads) cmd.option('--threads <n>', 'CPU threads for the kernels (default: all available cores)', parsePositiveInt('--threads', MAX_THREADS));
  return addDtypeOption(cmd);
}

/** --dtype: the CPU arithmetic of the linear layers (a GPU has --precision; bf16 with --device cuda is an error). */
export const DTYPE_HELP =
  'CPU arithmetic of the linear layers: fp32, or bf16 (weights and activations rounded to bf16, fp32 accumulation; ' +
  'LayerNorm, attention, GELU and pooling stay fp32; AMX / AVX512-BF16 when the CPU has them, else AVX2); on a GPU use --precision';

export function addDtypeOption(cmd: Command): Command {
  return cmd.addOption(new Option('--dtype <dtype>', DTYPE_HELP).choices(['fp32', 'bf16']).default('fp32'));
}

/** The runtime part of loadEncoder's options, from the parsed flags (EDU_TRAIN_CPU_ISA included). */
export function runtimeOptions(opts: DeviceCliOptions): EncoderRuntime {
  return { device: opts.device, precision: opts.precision, maxBatchTokens: opts.maxBatchTokens, threads: opts.threads, isa: isaFromEnv(), dtype: opts.dtype };
}

export const BACKBONE_HELP = 'a known model name (see `edu-train backbones`) or a Hugging Face repo id: taken from the Hugging Face cache, downloaded into it if missing';

export function addEncoderOptions(cmd: Command): Command {
  // Resolution runs before the action, so every command's action simply sees opts.modelDir.
  cmd.hook('preAction', async (_self, action) => {
    const o = action.opts() as { modelDir?: string; backbone?: string; quiet?: boolean };
    action.setOptionValue('modelDir', await resolveModelDir({ modelDir: o.modelDir, backbone: o.backbone, quiet: o.quiet }));
  });
  cmd
    .option('--model-dir <dir>', 'Hugging Face model folder (config.json, tokenizer.json, model.safetensors or pytorch_model.bin); required unless --backbone')
    .option('--backbone <name>', BACKBONE_HELP);
  return addDeviceOptions(cmd);
}

/** EDU_TRAIN_CPU_ISA forces a CPU code path (amx|avx512|avx2|scalar); the addon validates it. */
export function isaFromEnv(): CpuIsa | undefined {
  const v = process.env.EDU_TRAIN_CPU_ISA;
  return v ? (v as CpuIsa) : undefined;
}

export function parsePositiveInt(flag: string, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`${flag} must be a positive integer.`);
    if (n > max) throw new InvalidArgumentError(`${flag} must be at most ${max}.`);
    return n;
  };
}

/** Upper bound of every texts-per-forward-pass flag: more only risks an out-of-memory far into a run. */
export const MAX_BATCH_SIZE = 65_536;
/** Upper bound of --threads (the native pools accept at most this many). */
export const MAX_THREADS = 1024;

export function parseChoice<T extends string>(flag: string, choices: readonly T[]) {
  return (value: string): T => {
    if (!choices.includes(value as T)) throw new InvalidArgumentError(`${flag} must be one of ${choices.join(', ')}.`);
    return value as T;
  };
}

/** A path the command reads, for the "output is an input" check. */
export interface InputPath {
  path: string;
  flag: string;
}

/** Same file: same resolved path, or (both existing) same device + inode (symlinks, hard links). */
function sameFile(a: string, b: string): boolean {
  if (resolve(a) === resolve(b)) return true;
  try {
    const sa = statSync(a);
    const sb = statSync(b);
    return sa.dev === sb.dev && sa.ino === sb.ino;
  } catch {
    return false;
  }
}

/** Creates and removes a probe file: the only reliable writability test (access() lies for root, ro mounts, ACLs). */
function probeWritable(dir: string, what: string): void {
  const probe = join(dir, `.edu-train-probe-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    closeSync(openSync(probe, 'wx'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    throw new UsageError(`${what}: cannot create files in folder ${dir} (${code}); choose a writable location`);
  }
  try {
    unlinkSync(probe);
  } catch {
    /* gone already */
  }
}

/**
 * Up-front checks of an output file, before any expensive work, so a bad path fails at once with a clear
 * UsageError (exit 2) and nothing written: a supported extension (`table`: a data table; `ext`: e.g. '.onnx'),
 * not a folder, not one of the inputs, its folder exists, is a folder and is writable.
 */
export function checkOutputFile(path: string, flag: string, o: { inputs?: InputPath[]; table?: boolean; ext?: string } = {}): void {
  const what = `${flag} ${path}`;
  if (path.trim() === '') throw new UsageError(`${flag} must not be empty`);
  if (/[\\/]$/.test(path)) throw new UsageError(`${what} names a folder; give a file name`);
  if (o.table) {
    try {
      formatFromPath(path);
    } catch (e) {
      throw new UsageError(`${flag} ${messageOf(e)}`);
    }
  }
  if (o.ext && !path.toLowerCase().endsWith(o.ext)) throw new UsageError(`${what}: expected a ${o.ext} file name`);
  for (const i of o.inputs ?? []) {
    if (sameFile(path, i.path)) throw new UsageError(`${flag} must not be the ${i.flag} file (${path})`);
  }
  if (existsSync(path) && statSync(path).isDirectory()) throw new UsageError(`${what} is a folder; give a file name`);
  const parent = dirname(resolve(path));
  if (!existsSync(parent)) throw new UsageError(`${what}: folder ${parent} does not exist`);
  if (!statSync(parent).isDirectory()) throw new UsageError(`${what}: ${parent} is not a folder`);
  probeWritable(parent, what);
}

/**
 * Up-front checks of an output folder (created later if missing): not an existing file, not an input file,
 * no input inside it, and the nearest existing ancestor is a writable folder.
 */
export function checkOutputDir(path: string, flag: string, inputs: InputPath[] = []): void {
  const what = `${flag} ${path}`;
  if (path.trim() === '') throw new UsageError(`${flag} must not be empty`);
  const target = resolve(path);
  for (const i of inputs) {
    if (sameFile(target, i.path)) throw new UsageError(`${flag} must not be the ${i.flag} ${i.path}`);
    const rel = relative(target, resolve(i.path));
    if (rel === '' || (!rel.startsWith('..') && !isAbsolute(rel))) {
      throw new UsageError(`${what} contains the ${i.flag} file ${i.path}; choose a folder outside the inputs`);
    }
  }
  if (existsSync(target)) {
    if (!statSync(target).isDirectory()) throw new UsageError(`${what} exists and is not a folder`);
    probeWritable(target, what);
    return;
  }
  let dir = dirname(target);
  while (!existsSync(dir) && dirname(dir) !== dir) dir = dirname(dir);
  if (!statSync(dir).isDirectory()) throw new UsageError(`${what}: ${dir} is not a folder`);
  probeWritable(dir, what);
}

/** Opens a table for reading; a missing or unreadable file is a UsageError (exit 2) naming the flag. */
export async function openInputTable(path: string, flag: string, options?: OpenTableOptions): Promise<TableReader> {
  try {
    return await openTable(path, options);
  } catch (e) {
    throw new UsageError(`${flag} ${messageOf(e)}`);
  }
}

/** The summary line about invalid UTF-8 replaced while reading (empty when there was none). */
export function invalidUtf8Note(reader: TableReader, flag: string): string {
  const n = reader.stats.invalidUtf8;
  if (!n) return '';
  const unit = reader.format === 'parquet' ? 'string cells' : 'rows';
  return `warning: ${flag} ${reader.path}: invalid UTF-8 in ${n} ${unit}, decoded with U+FFFD replacement characters\n`;
}

/** A finite number (`--lr 3e-4`). */
export function parseNumber(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`${flag} must be a number.`);
    return n;
  };
}

/** An integer >= 0 (`--warmup 0`, `--rank 0`). */
export function parseNonNegativeInt(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${flag} must be a non-negative integer.`);
    return n;
  };
}

/** A comma-separated list without empty entries (`--labels a,b,c`). */
export function parseList(value: string): string[] {
  const items = value.split(',').map((s) => s.trim());
  if (items.some((s) => s === '')) throw new InvalidArgumentError('expected a comma-separated list without empty entries.');
  return items;
}

/** AdamW betas `b1,b2`, each in [0, 1). */
export function parseBetas(value: string): [number, number] {
  const parts = value.split(',').map(Number);
  if (parts.length !== 2 || !parts.every((b) => Number.isFinite(b) && b >= 0 && b < 1)) {
    throw new InvalidArgumentError('--betas must be two numbers in [0, 1) like 0.9,0.999.');
  }
  return [parts[0], parts[1]];
}

/** Early-stopping patience: a positive integer or 'off'. */
export function parsePatience(value: string): number | 'off' {
  if (value === 'off') return 'off';
  return parsePositiveInt('--patience')(value);
}
