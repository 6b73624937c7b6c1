/**
 * One process per rank: `locks/<rank>.lock` in the output folder, created exclusively (O_EXCL) before a
 * rank touches its parts and checkpoint, removed when it stops. Two processes on the same rank (a
 * mistyped --rank, a Slurm requeue while the old task still runs) would otherwise delete each other's
 * uncommitted parts and interleave checkpoints.
 *
 * A lock is stale, and is taken over, when
 *  - its holder ran on this host and that pid no longer exists (killed, crashed, interrupted), or
 *  - its heartbeat is older than `staleAfterMs`: the holder rewrites the lock's mtime every
 *    `heartbeatMs`, so a holder on another machine of a shared filesystem that died stops refreshing it.
 * Anything else is a live holder, and the second process stops with an error naming it.
 */
import { closeSync, openSync, readFileSync, rmSync, statSync, utimesSync, writeSync, mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { UsageError } from '../util/errors.js';
import { onInterrupt } from '../util/interrupt.js';

export interface LockHolder {
  pid: number;
  host: string;
  started_at: string;
}

export interface RankLockOptions {
  /** How often the holder refreshes the lock's mtime. Default 30 s. */
  heartbeatMs?: number;
  /** A lock not refreshed for this long is stale whoever holds it. Default 10 min. */
  staleAfterMs?: number;
  /** Tests: the clock and the liveness probe. */
  now?: () => number;
  isAlive?: (pid: number) => boolean;
}

export function lockPath(outDir: string, rank: number): string {
  return join(outDir, 'locks', `${rank}.lock`);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

function readHolder(path: string): LockHolder | null {
  try {
    const h = JSON.parse(readFileSync(path, 'utf8')) as LockHolder;
    return typeof h.pid === 'number' && typeof h.host === 'string' ? h : null;
  } catch {
    return null; // vanished, or a holder died between create and write
  }
}

/** Why the lock at `path` no longer protects anything, or null when its holder looks alive. */
function staleReason(path: string, o: Required<Pick<RankLockOptions, 'staleAfterMs' | 'now' | 'isAlive'>>): string | null {
  let mtimeMs: number;
  try {
    mtimeMs = statSync(path).mtimeMs;
  } catch {
    return 'gone';
  }
  const holder = readHolder(path);
  if (holder && holder.host === hostname() && !o.isAlive(holder.pid)) return `its process ${holder.pid} on this host has exited`;
  const age = o.now() - mtimeMs;
  if (age > o.staleAfterMs) return `not refreshed for ${Math.round(age / 1000)} s`;
  return null;
}

export class RankLock {
  private timer: NodeJS.Timeout | null = null;
  private unregister: (() => void) | null = null;

  private constructor(readonly path: string, readonly takenOver: string | null) {}

  /**
   * Takes the lock of `rank` or throws a UsageError naming the live holder. `takenOver` says why a stale
   * lock was replaced (null when there was none).
   */
  static acquire(outDir: string, rank: number, opts: RankLockOptions = {}): RankLock {
    const o = { heartbeatMs: opts.heartbeatMs ?? 30_000, staleAfterMs: opts.staleAfterMs ?? 600_000, now: opts.now ?? Date.now, isAlive: opts.isAlive ?? pidAlive };
    const path = lockPath(outDir, rank);
    mkdirSync(join(outDir, 'locks'), { recursive: true });
    const me: LockHolder = { pid: process.pid, host: hostname(), started_at: new Date(o.now()).toISOString() };
    let takenOver: string | null = null;
    // Two tries: the second after removing a stale lock. If another process removed it and created its own
    // in between, the exclusive create fails again and that process is the live holder.
    for (let attempt = 0; attempt < 2; attempt++) {
      let fd: number;
      try {
        fd = openSync(path, 'wx');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        const stale = staleReason(path, o);
        if (stale === null || attempt === 1) {
          const h = readHolder(path);
          const who = h ? `process ${h.pid} on ${h.host} (since ${h.started_at})` : 'another process';
          throw new UsageError(
            `annotate rank ${rank}: ${who} is already working on this rank of ${outDir} (${path}). ` +
              'Wait for it, or stop it; a lock whose process has died is taken over automatically.',
          );
        }
        rmSync(path, { force: true });
        takenOver = stale;
        continue;
      }
      try {
        writeSync(fd, JSON.stringify(me));
      } finally {
        closeSync(fd);
      }
      const lock = new RankLock(path, takenOver);
      lock.startHeartbeat(o.heartbeatMs);
      return lock;
    }
    throw new Error('unreachable');
  }

  private startHeartbeat(ms: number): void {
    this.timer = setInterval(() => {
      try {
        const t = new Date();
        utimesSync(this.path, t, t);
      } catch {
        // The folder was removed under us; nothing to refresh.
      }
    }, ms);
    this.timer.unref(); // never keeps the process alive on its own
    this.unregister = onInterrupt(() => this.release());
  }

  /** Removes the lock (idempotent). Only removes it while it is still ours. */
  release(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.unregister?.();
    this.unregister = null;
    const h = readHolder(this.path);
    if (h && h.pid === process.pid && h.host === hostname()) rmSync(this.path, { force: true });
  }
}
