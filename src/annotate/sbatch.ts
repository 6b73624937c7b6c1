/**
 * The sbatch array script of `edu-train launch slurm`. Each array task is one rank: the rank is passed
 * explicitly (--rank $SLURM_ARRAY_TASK_ID --world-size N), so resubmitting a subset of tasks
 * (`sbatch --array=3,7 ...`) still runs ranks 3 and 7 of N. --requeue plus append-mode logs: a preempted
 * or failed-node task restarts and resumes from its checkpoint, its log continuing in the same file.
 */

export interface SbatchOptions {
  jobName: string;
  array: number;
  /** Max tasks running at once (%N), if limited. */
  arrayParallel?: number;
  partition?: string;
  gpus?: number;
  cpusPerTask?: number;
  time?: string;
  mem?: string;
  logDir: string;
  /** node binary and the CLI script, absolute. */
  node: string;
  cli: string;
  /** annotate arguments (without rank/world size/threads/device). */
  annotateArgs: string[];
  workdir: string;
}

/** POSIX single-quoting: the script never relies on the shell expanding globs or variables in arguments. */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_\-+=.,/:@%]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

export function renderSbatch(o: SbatchOptions): string {
  const gpu = o.gpus !== undefined && o.gpus > 0;
  const lines = [
    '#!/bin/bash',
    `# edu-train annotate as a ${o.array}-task Slurm array (${gpu ? 'GPU' : 'CPU'} variant), written by \`edu-train launch slurm\`.`,
    '# Rerunning or requeueing is safe: finished ranks are skipped, interrupted ones resume from their checkpoint.',
    `#SBATCH --job-name=${o.jobName}`,
    `#SBATCH --array=0-${o.array - 1}${o.arrayParallel ? `%${o.arrayParallel}` : ''}`,
    '#SBATCH --requeue',
    '#SBATCH --open-mode=append',
    `#SBATCH --output=${o.logDir}/annotate-%a.log`,
    '#SBATCH --ntasks=1',
    ...(o.partition ? [`#SBATCH --partition=${o.partition}`] : []),
    ...(gpu ? [`#SBATCH --gpus=${o.gpus}`] : []),
    ...(o.cpusPerTask ? [`#SBATCH --cpus-per-task=${o.cpusPerTask}`] : []),
    ...(o.time ? [`#SBATCH --time=${o.time}`] : []),
    ...(o.mem ? [`#SBATCH --mem=${o.mem}`] : []),
    '',
    'set -euo pipefail',
    `cd ${shellQuote(o.workdir)}`,
    'echo "[$(date -Is)] $(hostname) array job ${SLURM_ARRAY_JOB_ID:-?} task ${SLURM_ARRAY_TASK_ID} (restart ${SLURM_RESTART_COUNT:-0})"',
    // Kernel threads follow the allocation; without one, the encoder uses every core it can see.
    'threads=()',
    'if [ -n "${SLURM_CPUS_PER_TASK:-}" ]; then threads=(--threads "$SLURM_CPUS_PER_TASK"); fi',
    [
      `exec ${shellQuote(o.node)} ${shellQuote(o.cli)} annotate`,
      ...chunkArgs(o.annotateArgs),
      `  --rank "$SLURM_ARRAY_TASK_ID" --world-size ${o.array} --device ${gpu ? 'auto' : 'cpu'} --quiet \${threads[@]+"\${threads[@]}"}`,
    ].join(' \\\n'),
    '',
  ];
  return lines.join('\n');
}

/** Flag/value pairs one per line, for a readable script. */
function chunkArgs(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i].startsWith('--') && i + 1 < args.length && !args[i + 1].startsWith('--')) {
      out.push(`  ${args[i]} ${shellQuote(args[i + 1])}`);
      i++;
    } else out.push(`  ${shellQuote(args[i])}`);
  }
  return out;
}
