/** Options shared by every command that loads an encoder, and their parsing. */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { resolveModelDir } from '../hub/resolve.js';
import type { CpuIsa } from '../native/addon-types.js';

export interface EncoderCliOptions {
  /** Always set by the time the action runs: --model-dir, or the folder --backbone resolved to. */
  modelDir: string;
  backbone?: string;
  device: string;
  threads?: number;
  maxLength?: number;
}

export const BACKBONE_HELP = 'a known model name (see `edu-train backbones`) or a Hugging Face repo id: taken from the Hugging Face cache, downloaded into it if missing';

export function addEncoderOptions(cmd: Command): Command {
  // Resolution runs before the action, so every command's action simply sees opts.modelDir.
  cmd.hook('preAction', async (_self, action) => {
    const o = action.opts() as { modelDir?: string; backbone?: string; quiet?: boolean };
    action.setOptionValue('modelDir', await resolveModelDir({ modelDir: o.modelDir, backbone: o.backbone, quiet: o.quiet }));
  });
  return cmd
    .option('--model-dir <dir>', 'Hugging Face model folder (config.json, tokenizer.json, model.safetensors or pytorch_model.bin); required unless --backbone')
    .option('--backbone <name>', BACKBONE_HELP)
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
