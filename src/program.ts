/**
 * The edu-train command tree. Each command lives in src/commands/<name>.ts and registers itself
 * here; this module wires them up and turns errors into messages and exit codes. src/cli.ts runs it.
 */
import { Command, CommanderError } from 'commander';
import { registerAnnotate } from './commands/annotate.js';
import { registerBench } from './commands/bench.js';
import { registerBackbones } from './commands/backbones.js';
import { enableConfigFiles } from './commands/config-file.js';
import { registerDemo } from './commands/demo.js';
import { registerEmbed } from './commands/embed.js';
import { registerEval } from './commands/eval.js';
import { registerExport } from './commands/export.js';
import { registerFineTune } from './commands/finetune.js';
import { registerForward } from './commands/forward.js';
import { completeHelpDefaults } from './commands/help-defaults.js';
import { registerLaunch } from './commands/launch.js';
import { registerPredict } from './commands/predict.js';
import { registerTrain } from './commands/train.js';
import { UsageError } from './util/errors.js';
import { packageVersion } from './util/package-info.js';

export function buildProgram(): Command {
  const program = new Command('edu-train')
    .description(
      'Train text-quality and text-type classifiers on BERT-family encoders (BERT, RoBERTa, XLM-R, ELECTRA),\n' +
        'with a native C++ encoder: embed texts, train heads, evaluate, score corpora.',
    )
    .version(packageVersion())
    .showHelpAfterError('(run with --help for usage)')
    .configureHelp({ showGlobalOptions: true, sortSubcommands: false })
    // Before registering commands: subcommands copy these settings when they are created.
    .exitOverride();
  registerForward(program);
  registerEmbed(program);
  registerTrain(program);
  registerFineTune(program); // src/commands/finetune.ts (full fine-tuning)
  registerEval(program);
  registerPredict(program);
  registerExport(program);
  registerBackbones(program);
  registerAnnotate(program);
  registerLaunch(program);
  registerBench(program);
  registerDemo(program);
  enableConfigFiles(program); // --config FILE on train / eval / predict / embed
  completeHelpDefaults(program); // after every option exists
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander already printed the problem (or the help / version text).
      return err.exitCode === 0 ? 0 : 2;
    }
    const debug = process.env.EDU_TRAIN_DEBUG === '1';
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`edu-train: error: ${message}\n`);
    if (debug && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
    return err instanceof UsageError ? 2 : 1;
  }
}
