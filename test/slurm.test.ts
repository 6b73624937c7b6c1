/**
 * annotate under a real single-node Slurm on localhost (scripts/slurm/start-local-slurm.sh; root, apt).
 * A 4-task `sbatch --array=0-3` of `edu-train annotate` (rank from SLURM_ARRAY_TASK_ID/COUNT), and the
 * script of `edu-train launch slurm --submit`, must each give exactly the rows of a single-process run.
 * If Slurm cannot be started this FAILS (it never skips); the cluster is always stopped afterwards.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, makeAnnotateFixture, readParts, scores, type AnnotateFixture, type Scored } from './helpers/annotate-fixture.js';
import { repoRoot } from './helpers/shared.js';
import { useTmpDirs } from './helpers/tmp.js';
import { runAsync } from './helpers/cli.js';
import { withOrdinaryAddon } from './helpers/native-env.js';

const tmp = useTmpDirs('edu-slurm-');
const START = join(repoRoot, 'scripts', 'slurm', 'start-local-slurm.sh');
const STOP = join(repoRoot, 'scripts', 'slurm', 'stop-local-slurm.sh');
let slurmDir = '';
let env: NodeJS.ProcessEnv = {};
let fx: AnnotateFixture;
let reference: Scored;

const annotateArgs = (out: string) => [
  '--run', fx.run, '--input', fx.input, '--output', out, '--keep-columns', 'src',
  '--chunk-rows', '64', '--rows-per-checkpoint', '128', '--unit-rows', '256',
];

beforeAll(async () => {
  fx = await makeAnnotateFixture(tmp.make());
  const single = join(fx.dir, 'single');
  await cli(['annotate', ...annotateArgs(single), '--threads', '1', '--quiet']);
  reference = await readParts(single);

  // A private cluster folder (short: it holds a unix socket path); ports are picked by the script.
  slurmDir = mkdtempSync('/tmp/edu-slurm-');
  const r = await runAsync('bash', [START], {
    env: { ...withOrdinaryAddon(), LOCAL_SLURM_DIR: slurmDir, LOCAL_SLURM_TIMEOUT: '120' },
    timeoutMs: 840_000, // a first run installs munge + slurm with apt
  });
  if (r.code !== 0) {
    throw new Error(`could not start the local Slurm cluster (exit ${r.code}${r.error ? `, ${r.error.message}` : ''}):\n${r.stderr}`);
  }
  env = withOrdinaryAddon(); // the jobs inherit it (sbatch --export=ALL)
  for (const m of r.stdout.matchAll(/^export (\w+)=(.*)$/gm)) env[m[1]] = m[2];
  expect(env.SLURM_CONF).toBeTruthy();
}, 900_000);

afterAll(async () => {
  if (!slurmDir) return;
  await runAsync('bash', [STOP, '--purge'], { env: { ...withOrdinaryAddon(), ...env, LOCAL_SLURM_DIR: slurmDir }, timeoutMs: 120_000 });
}, 150_000);

/** Polls squeue until the job has left the queue; on timeout cancels it and fails with the task logs. */
async function waitForJob(jobId: string, logDir: string, timeoutMs = 300_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const q = spawnSync('squeue', ['-h', '-j', jobId], { env, encoding: 'utf8' });
    if (q.status === 0 && q.stdout.trim() === '') return;
    if (Date.now() > deadline) {
      spawnSync('scancel', [jobId], { env });
      const logs = existsSync(logDir) ? readdirSync(logDir).map((f) => `== ${f}\n${readFileSync(join(logDir, f), 'utf8')}`).join('\n') : '(no logs)';
      throw new Error(`Slurm job ${jobId} still queued/running after ${timeoutMs / 1000}s:\n${q.stdout}${q.stderr}\n${logs}`);
    }
    await new Promise((r) => setTimeout(r, 300));
  }
}

/** The jobcomp lines of an array job: every task must have COMPLETED with exit code 0. */
function expectAllCompleted(jobId: string, tasks: number, logDir: string): void {
  const log = readFileSync(join(env.LOCAL_SLURM_DIR ?? slurmDir, 'log', 'jobcomp.log'), 'utf8');
  const lines = log.split('\n').filter((l) => l.includes(`ArrayJobId=${jobId} `));
  const logs = () => readdirSync(logDir).map((f) => `== ${f}\n${readFileSync(join(logDir, f), 'utf8')}`).join('\n');
  expect(lines.length, logs()).toBe(tasks);
  for (const l of lines) expect(l, logs()).toMatch(/JobState=COMPLETED .*ExitCode=0:0/);
}

describe('annotate under a local Slurm', () => {
  it('sbatch --array=0-3 of `edu-train annotate` (rank from the array) produces the single-process rows', async () => {
    const out = join(fx.dir, 'array');
    const logs = join(fx.dir, 'array-logs');
    execFileSync('mkdir', ['-p', logs]);
    const cmd = [process.execPath, join(repoRoot, 'dist', 'cli.js'), 'annotate', ...annotateArgs(out), '--threads', '1', '--quiet']
      .map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
    const jobId = execFileSync('sbatch', ['--parsable', '--array=0-3', '--requeue', '-o', join(logs, 'task-%a.log'), '--wrap', `exec ${cmd}`], { env, cwd: repoRoot, encoding: 'utf8' }).trim().split(';')[0];
    await waitForJob(jobId, logs);
    expectAllCompleted(jobId, 4, logs);
    const got = await readParts(out);
    expect([...got.keys()].sort((a, b) => a - b)).toEqual(fx.ids);
    expect(scores(got)).toEqual(scores(reference));
    expect(readdirSync(join(out, 'completions')).sort()).toEqual(['0', '1', '2', '3']);
    const taskLogs = readdirSync(logs).map((f) => readFileSync(join(logs, f), 'utf8')).join('\n');
    for (const r of [0, 1, 2, 3]) expect(taskLogs).toMatch(new RegExp(`annotate rank ${r}/4:`));
  }, 600_000);

  it('`edu-train launch slurm --submit` writes, submits and completes the array', async () => {
    const out = join(fx.dir, 'launched');
    const r = await runAsync(process.execPath, [join(repoRoot, 'dist', 'cli.js'), 'launch', 'slurm', ...annotateArgs(out), '--array', '4', '--cpus-per-task', '1', '--time', '00:10:00', '--submit'],
      { env, cwd: repoRoot });
    expect(r.code, r.stderr).toBe(0);
    const jobId = r.stdout.trim();
    expect(jobId).toMatch(/^\d+$/);
    const logs = join(out, 'slurm', 'logs');
    await waitForJob(jobId, logs);
    expectAllCompleted(jobId, 4, logs);
    expect(readFileSync(join(out, 'slurm', 'annotate.sbatch'), 'utf8')).toContain('#SBATCH --requeue');
    const got = await readParts(out);
    expect(scores(got)).toEqual(scores(reference));
    expect(readdirSync(logs).sort()).toEqual(['annotate-0.log', 'annotate-1.log', 'annotate-2.log', 'annotate-3.log']);
  }, 600_000);
});
