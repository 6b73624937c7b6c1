/**
 * `edu-train export`:
 *   --run RUN_DIR --format hf --output DIR        a trained run as a Hugging Face folder;
 *   --model-dir DIR --format onnx --output F.onnx  an encoder (with its seqcls head) as a standard ONNX graph.
 */
import { resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { exportRun } from '../export/hf.js';
import { exportOnnx } from '../onnx/export.js';
import { UsageError } from '../util/errors.js';
import { removeOnInterrupt } from '../util/interrupt.js';
import { resolveModelDir } from '../hub/resolve.js';
import { BACKBONE_HELP, checkOutputDir, checkOutputFile } from './common.js';

interface ExportCli {
  run?: string;
  format: 'hf' | 'onnx';
  pooling: 'none' | 'mean' | 'cls' | 'pooler';
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
        'edu-train predicts from the export directly: predict --model-dir DIR (no --run).\n' +
        'With --format onnx: the encoder of --model-dir (or --backbone) as a standard opset-17 ONNX graph with the\n' +
        'same weights (ONNX Runtime loads it; `edu-train bench --against onnx` compares the two).',
    )
    .option('--run <dir>', 'run folder written by `edu-train train` (one fold-<k> of a --folds run); required for --format hf')
    .addOption(new Option('--format <format>', 'output format').choices(['hf', 'onnx']).default('hf'))
    .requiredOption('--output <path>', 'folder to write (hf) or .onnx file (onnx)')
    .addOption(new Option('--pooling <mode>', 'onnx: pooled output added to the graph').choices(['none', 'mean', 'cls', 'pooler']).default('mean'))
    .option('--model-dir <dir>', "hf: the run's encoder, if it moved (its hashes must match run.json); onnx: the model to export")
    .option('--backbone <name>', `the run's encoder by name (${BACKBONE_HELP})`)
    .option('--overwrite', 'replace an existing folder', false)
    .action(async (opts: ExportCli) => {
      const modelDir = opts.backbone ? await resolveModelDir({ modelDir: opts.modelDir, backbone: opts.backbone }) : opts.modelDir;
      if (opts.format === 'onnx') {
        if (!modelDir) throw new UsageError('--format onnx exports an encoder: pass --model-dir DIR or --backbone NAME');
        checkOutputFile(opts.output, '--output', { ext: '.onnx' });
        await exportOnnx(modelDir, opts.output, { pooling: opts.pooling });
        process.stdout.write(`exported ${modelDir} as ONNX (opset 17, pooling ${opts.pooling}) to ${opts.output}\n`);
        return;
      }
      if (!opts.run) throw new UsageError('--format hf exports a trained run: pass --run RUN_DIR');
      checkOutputDir(opts.output, '--output', [{ path: opts.run, flag: '--run folder' }, ...(modelDir ? [{ path: modelDir, flag: '--model-dir folder' }] : [])]);
      removeOnInterrupt(`${resolve(opts.output)}.tmp-${process.pid}`); // the staging folder of src/export/hf.ts
      const r = await exportRun({ runDir: opts.run, output: opts.output, modelDir, overwrite: opts.overwrite });
      process.stdout.write(`exported ${r.layout} (${r.architecture}) to ${r.dir}\n  ${r.files.join(', ')}\n`);
    });
}
