/** `edu-train export --run RUN_DIR --format hf --output DIR`: a trained run as a Hugging Face folder. */
import { Option, type Command } from 'commander';
import { exportRun } from '../export/hf.js';
import { resolveModelDir } from '../hub/resolve.js';
import { BACKBONE_HELP } from './common.js';

interface ExportCli {
  run: string;
  format: 'hf';
  output: string;
  modelDir?: string;
  backbone?: string;
  overwrite: boolean;
}

export function registerExport(program: Command): void {
  program
    .command('export')
    .description(
      'Write a trained run as a folder Hugging Face transformers loads with AutoModelForSequenceClassification\n' +
        '(pooler heads on BERT/RoBERTa/XLM-R), else as a sentence-transformers folder plus classifier.safetensors.\n' +
        'edu-train predicts from the export directly: predict --model-dir DIR (no --run).',
    )
    .requiredOption('--run <dir>', 'run folder written by `edu-train train` (one fold-<k> of a --folds run)')
    .addOption(new Option('--format <format>', 'output format').choices(['hf']).default('hf'))
    .requiredOption('--output <dir>', 'folder to write')
    .option('--model-dir <dir>', "the run's encoder, if it moved (its hashes must match run.json)")
    .option('--backbone <name>', `the run's encoder by name (${BACKBONE_HELP})`)
    .option('--overwrite', 'replace an existing folder', false)
    .action(async (opts: ExportCli) => {
      const modelDir = opts.backbone ? await resolveModelDir({ modelDir: opts.modelDir, backbone: opts.backbone }) : opts.modelDir;
      const r = await exportRun({ runDir: opts.run, output: opts.output, modelDir, overwrite: opts.overwrite });
      process.stdout.write(`exported ${r.layout} (${r.architecture}) to ${r.dir}\n  ${r.files.join(', ')}\n`);
    });
}
