/** Options shared by every command that loads an encoder, and their parsing. */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { resolveModelDir } from '../hub/resolve.js';
import type { LoadEncoderOptions } from '../encoder.js';
import type { CpuIsa, CudaPrecision } from '../native/addon-types.js';

export interface EncoderCliOptions {
  /** Always set by the time the action runs: --model-dir, or the folder --backbone resolved to. */
  modelDir: string;
  backbone?: string;
  device: string;
  threads?: number;
  maxLength?: number;
  precision?: CudaPrecision;
  maxBatchTokens?: number;
}

/** The flags that say where and how the encoder runs, as every command spells them. */
export interface DeviceCliOptions {
  device?: string;
  threads?: number;
  precision?: CudaPrecision;
  maxBatchTokens?: number;
}

/** --device, --precision, --max-batch-tokens, --threads: for commands that run an encoder. */
export function addDeviceOptions(cmd: Command, { threads = true }: { threads?: boolean } = {}): Command {
  cmd
    .addOption(new Option('--device <device>', 'where the encoder runs: cpu, auto (a usable GPU, else the CPU) or cuda[:N]').default('cpu'))
    .addOption(new Option('--precision <p>', 'GPU arithmetic: bf16 (tensor cores, fp32 accumulation) or fp32; the CPU is always fp32').choices(['bf16', 'fp32']).default('bf16'))
    .option('--max-batch-tokens <n>', 'GPU: at most this many padded tokens per forward pass (default: sized from free GPU memory)', parsePositiveInt('--max-batch-tokens'));
  if (threads) cmd.option('--threads <n>', 'CPU threads for the kernels (default: all available cores)', parsePositiveInt('--threads'));
  return cmd;
}

/** The runtime part of loadEncoder's options, from the parsed flags (EDU_TRAIN_CPU_ISA included). */
export function runtimeOptions(opts: DeviceCliOptions): Pick<LoadEncoderOptions, 'device' | 'precision' | 'maxBatchTokens' | 'threads' | 'isa'> {
  return { device: opts.device, precision: opts.precision, maxBatchTokens: opts.maxBatchTokens, threads: opts.threads, isa: isaFromEnv() };
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

export function parsePositiveInt(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`${flag} must be a positive integer.`);
    return n;
  };
}

export function parseChoice<T extends string>(flag: string, choices: readonly T[]) {
  return (value: string): T => {
    if (!choices.includes(value as T)) throw new InvalidArgumentError(`${flag} must be one of ${choices.join(', ')}.`);
    return value as T;
  };
}
