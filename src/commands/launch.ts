/**
 * `edu-train launch slurm`: the sbatch array script that runs `annotate` as N ranks (printed, written with
 * --script, or submitted with --submit).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { renderSbatch } from '../annotate/sbatch.js';
import type { CpuDtype, CudaPrecision } from '../native/addon-types.js';
import { UsageError } from '../util/errors.js';
import { addAnnotateOptions, annotateArgs, type AnnotateCliShared } from './annotate.js';
import { parsePositiveInt } from './common.js';

interface LaunchSlurmCli extends AnnotateCliShared {
  array: number;
  maxRunning?: number;
  partition?: string;
  gpus?: number;
  cpusPerTask?: number;
  time?: string;
  mem?: string;
  jobName: string;
  script?: string;
  submit: boolean;
  precision: CudaPrecision;
  dtype: CpuDtype;
}

function parseTime(value: string): string {
  if (!/^(\d+-)?\d{1,3}(:\d{2}){0,2}$/.test(value)) throw new InvalidArgumentError('--time must look like HH:MM:SS, MM:SS, MM or D-HH:MM:SS.');
  return value;
}

export function registerLaunch(program: Command): void {
  const launch = program.command('launch').description('Run annotate on a cluster: write (and submit) the job script');
  const slurm = launch
    .command('slurm')
    .description(
      'Write an sbatch array script running `edu-train annotate` as --array N ranks (GPU or CPU variant, --requeue,\n' +
        'append-mode logs in OUTPUT/slurm/logs). Prints it; --script FILE writes it; --submit also runs sbatch.',
    );
  addAnnotateOptions(slurm)
    .requiredOption('--array <n>', 'number of array tasks (= ranks = world size)', parsePositiveInt('--array'))
    .option('--max-running <n>', 'at most this many tasks at once (sbatch --array=0-N%M)', parsePositiveInt('--max-running'))
    .option('--partition <p>', 'Slurm partition')
    .option('--gpus <n>', 'GPUs per task (the GPU variant: --gpus, --device auto)', parsePositiveInt('--gpus'))
    .option('--cpus-per-task <c>', 'CPUs per task (the CPU variant; also the encoder\'s --threads)', parsePositiveInt('--cpus-per-task'))
    .option('--time <t>', 'time limit per task, e.g. 04:00:00', parseTime)
    .option('--mem <m>', 'memory per node, e.g. 16G')
    .option('--job-name <name>', 'Slurm job name', 'edu-annotate')
    .addOption(new Option('--precision <p>', 'the GPU variant\'s arithmetic, passed to annotate: bf16 or fp32').choices(['bf16', 'fp32']).default('bf16'))
    .addOption(new Option('--dtype <dtype>', 'the CPU variant\'s arithmetic, passed to annotate: fp32 or bf16 (see annotate --help)').choices(['fp32', 'bf16']).default('fp32'))
    .option('--script <file>', 'write the script here (default with --submit: OUTPUT/slurm/annotate.sbatch)')
    .option('--submit', 'submit the script with sbatch and print the job id', false)
    .action((opts: LaunchSlurmCli) => {
      launchSlurm(opts);
    });
}

function launchSlurm(o: LaunchSlurmCli): void {
  if (!o.run && !o.modelDir && !o.backbone) throw new UsageError('launch slurm needs a model: --run RUN_DIR, --model-dir DIR or --backbone NAME');
  const out = resolve(o.output);
  const logDir = join(out, 'slurm', 'logs');
  const cli = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'cli.js');
  const text = renderSbatch({
    jobName: o.jobName,
    array: o.array,
    arrayParallel: o.maxRunning,
    partition: o.partition,
    gpus: o.gpus,
    cpusPerTask: o.cpusPerTask,
    time: o.time,
    mem: o.mem,
    logDir,
    node: process.execPath,
    cli,
    annotateArgs: [...annotateArgs(o, (p) => resolve(p)), ...(o.gpus ? ['--precision', o.precision] : ['--dtype', o.dtype])],
    workdir: process.cwd(),
  });
  const scriptPath = o.script ? resolve(o.script) : o.submit ? join(out, 'slurm', 'annotate.sbatch') : undefined;
  if (!scriptPath) {
    process.stdout.write(text);
    return;
  }
  // Slurm does not create the folder of --output log files: without it every task fails at once.
  mkdirSync(logDir, { recursive: true });
  mkdirSync(dirname(scriptPath), { recursive: true });
  writeFileSync(scriptPath, text, { mode: 0o755 });
  process.stderr.write(`wrote ${scriptPath}\n`);
  if (!o.submit) return;
  const r = spawnSync('sbatch', ['--parsable', scriptPath], { encoding: 'utf8' });
  if (r.error) throw new UsageError(`cannot run sbatch (${(r.error as NodeJS.ErrnoException).code ?? r.error.message}); is Slurm installed and on PATH?`);
  if (r.status !== 0) throw new Error(`sbatch ${scriptPath} failed (exit ${r.status}): ${r.stderr.trim()}`);
  const jobId = r.stdout.trim().split(';')[0];
  process.stdout.write(`${jobId}\n`);
  process.stderr.write(`submitted array job ${jobId} (${o.array} tasks); logs in ${logDir}\n`);
}
