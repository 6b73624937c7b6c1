/** Options shared by every command that loads an encoder, and their parsing. */
import { InvalidArgumentError, Option, type Command } from 'commander';
import type { CpuIsa } from '../native/addon-types.js';

export interface EncoderCliOptions {
  modelDir: string;
  device: string;
  threads?: number;
  maxLength?: number;
}

export function addEncoderOptions(cmd: Command): Command {
  return cmd
    .requiredOption('--model-dir <dir>', 'Hugging Face model folder (config.json, tokenizer.json, model.safetensors or pytorch_model.bin)')
    .addOption(new Option('--device <device>', 'where the encoder runs: cpu, auto or cuda[:N]').default('cpu'))
    .option('--threads <n>', 'CPU threads for the kernels (default: all available cores)', parsePositiveInt('--threads'));
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
