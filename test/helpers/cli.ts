/** Runs the built CLI (dist/cli.js) as a user would, capturing output and exit code. */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './shared.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs dist/cli.js without blocking this test worker's event loop (see runAsync: a worker blocked in
 * spawnSync cannot answer vitest's RPC). Throws if dist/cli.js is missing or the spawn itself fails.
 */
export async function runCli(args: string[], env: Record<string, string> = {}, timeoutMs = 600_000): Promise<CliResult> {
  const cli = join(repoRoot, 'dist', 'cli.js');
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run "npm run build:ts" (npm test does it in pretest)`);
  const r = await runAsync(process.execPath, [cli, ...args], { cwd: repoRoot, env: { ...process.env, ...env }, timeoutMs });
  if (r.error) throw r.error;
  // spawnSync threw ETIMEDOUT here; keep a timeout an error rather than an exit code of -1.
  if (r.timedOut) throw new Error(`edu-train ${args.join(' ')} timed out after ${timeoutMs} ms (killed):\n${r.stderr}`);
  return { code: r.code, stdout: r.stdout, stderr: r.stderr };
}

/**
 * Runs a command without blocking this test worker's event loop. Use it for anything that may run
 * longer than a few tens of seconds: a blocked worker cannot answer vitest's RPC (its 60 s timeout
 * then fails the whole run with "Timeout calling onTaskUpdate").
 */
export function runAsync(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<CliResult & { error?: Error; timedOut?: boolean }> {
  return new Promise((resolve) => {
    // stdin is /dev/null: nothing is ever written to it, and a reader gets EOF at once (as with spawnSync) instead of waiting.
    const child = spawn(command, args, { cwd: options.cwd ?? repoRoot, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs ?? 600_000);
    child.on('error', (error) => {
      clearTimeout(timer);
      resolve({ code: -1, stdout, stderr, error });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr, ...(timedOut ? { timedOut } : {}) });
    });
  });
}
