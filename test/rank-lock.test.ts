/**
 * The per-rank lock of `annotate` (src/annotate/rank-lock.ts): exclusive while its holder lives, taken over
 * when the holder's pid is gone (same host) or its heartbeat is stale (any host), released only by its owner.
 * End-to-end refusal of a second process on a live rank is in test/annotate.test.ts.
 */
import { existsSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { describe, expect, it } from 'vitest';
import { lockPath, RankLock } from '../src/annotate/rank-lock.js';
import { UsageError } from '../src/util/errors.js';
import { useTmpDirs } from './helpers/tmp.js';

const tmp = useTmpDirs('edu-lock-');

function plant(dir: string, rank: number, holder: { pid: number; host: string }, ageMs = 0): void {
  const path = lockPath(dir, rank);
  RankLock.acquire(dir, rank).release(); // makes locks/
  writeFileSync(path, JSON.stringify({ ...holder, started_at: '2026-01-01T00:00:00.000Z' }));
  const t = new Date(Date.now() - ageMs);
  utimesSync(path, t, t);
}

describe('RankLock', () => {
  it('is exclusive per rank, independent across ranks, and released by its holder', () => {
    const dir = tmp.make();
    const a = RankLock.acquire(dir, 0);
    expect(a.takenOver).toBeNull();
    expect(JSON.parse(readFileSync(lockPath(dir, 0), 'utf8'))).toMatchObject({ pid: process.pid, host: hostname() });
    expect(() => RankLock.acquire(dir, 0)).toThrow(UsageError);
    expect(() => RankLock.acquire(dir, 0)).toThrow(new RegExp(`annotate rank 0: process ${process.pid} on ${hostname()} .* is already working on this rank`));
    const b = RankLock.acquire(dir, 1);
    a.release();
    expect(existsSync(lockPath(dir, 0))).toBe(false);
    a.release(); // idempotent
    RankLock.acquire(dir, 0).release();
    b.release();
  });

  it('takes over a lock whose process on this host has exited', () => {
    const dir = tmp.make();
    plant(dir, 3, { pid: 424242, host: hostname() });
    const lock = RankLock.acquire(dir, 3, { isAlive: (pid) => pid !== 424242 });
    expect(lock.takenOver).toBe('its process 424242 on this host has exited');
    expect(JSON.parse(readFileSync(lockPath(dir, 3), 'utf8')).pid).toBe(process.pid);
    lock.release();
  });

  it('respects a fresh lock from another host, takes over one whose heartbeat is stale', () => {
    const dir = tmp.make();
    plant(dir, 0, { pid: 1, host: 'node-elsewhere' }, 60_000);
    expect(() => RankLock.acquire(dir, 0, { staleAfterMs: 120_000 })).toThrow(/process 1 on node-elsewhere .* is already working/);
    const lock = RankLock.acquire(dir, 0, { staleAfterMs: 30_000 });
    expect(lock.takenOver).toMatch(/^not refreshed for (59|60|61) s$/);
    lock.release();
  });

  it('keeps its lock fresh with a heartbeat', async () => {
    const dir = tmp.make();
    const lock = RankLock.acquire(dir, 0, { heartbeatMs: 20 });
    const old = new Date(Date.now() - 3_600_000);
    utimesSync(lockPath(dir, 0), old, old);
    await new Promise((r) => setTimeout(r, 120));
    expect(() => RankLock.acquire(dir, 0, { staleAfterMs: 60_000 })).toThrow(/already working/);
    lock.release();
  });

  it('does not remove a lock that another process took over meanwhile', () => {
    const dir = tmp.make();
    const lock = RankLock.acquire(dir, 0);
    writeFileSync(lockPath(dir, 0), JSON.stringify({ pid: 1, host: 'node-elsewhere', started_at: 'x' }));
    lock.release();
    expect(existsSync(lockPath(dir, 0))).toBe(true);
  });

  it('treats an unreadable lock file as held until its heartbeat goes stale', () => {
    const dir = tmp.make();
    plant(dir, 0, { pid: 1, host: 'h' });
    writeFileSync(lockPath(dir, 0), '{not json');
    expect(() => RankLock.acquire(dir, 0)).toThrow(/another process is already working/);
    const t = new Date(Date.now() - 3_600_000);
    utimesSync(lockPath(dir, 0), t, t);
    RankLock.acquire(dir, 0).release();
  });
});
