/**
 * Atomic file creation: write to a temporary file next to the target, then rename over it.
 *
 * Why next to the target: rename(2) is only atomic within one filesystem, and the target's own
 * directory is the one place guaranteed to be on the same filesystem. A reader of the target path
 * therefore sees either the old file (or nothing) or the complete new file, never a partial one,
 * even if the process is killed mid-write (a stray `.name.tmp-<pid>-<rand>` may then remain; it
 * is never at the target path).
 */
import { randomBytes } from 'node:crypto';
import { openSync, closeSync, fsyncSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export interface AtomicFile {
  /** The final path; untouched until commit(). */
  readonly target: string;
  /** The temporary path being written. */
  readonly tmpPath: string;
  /** Open handle on tmpPath (write-only, created exclusively). */
  readonly handle: FileHandle;
  /** fsync, close, rename onto target. After this the object is spent. */
  commit(): Promise<void>;
  /** Close and delete the temporary file. Safe to call more than once, and after a failed commit. */
  abort(): Promise<void>;
}

/** Temp files currently alive in this process, removed on a normal process exit (best effort). */
const live = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // 'exit' covers normal termination and process.exit(). The library deliberately installs no
  // SIGINT/SIGTERM handlers: that would change the host application's signal behaviour. The CLI does
  // (src/util/interrupt.ts), and calls removeLiveTempFiles() before it exits. Without that, a signal
  // kill can leave a temp file behind, but the target path stays intact.
  process.on('exit', removeLiveTempFiles);
}

/**
 * Deletes every temporary file of a createAtomicFile() that is neither committed nor aborted yet
 * (synchronously: safe in a signal or 'exit' handler). Returns how many were removed. The writers
 * that own them must not be used afterwards; the caller is about to exit.
 */
export function removeLiveTempFiles(): number {
  let removed = 0;
  for (const p of live) {
    try {
      unlinkSync(p);
      removed++;
    } catch {
      /* already gone */
    }
  }
  live.clear();
  return removed;
}

/** `.out.parquet.tmp-<pid>-<8 hex>` in the target's directory. */
export function tempPathFor(target: string): string {
  const rand = randomBytes(4).toString('hex');
  return join(dirname(target), `.${basename(target)}.tmp-${process.pid}-${rand}`);
}

export async function createAtomicFile(target: string): Promise<AtomicFile> {
  installExitHook();
  const tmpPath = tempPathFor(target);
  // 'wx': fail rather than clobber if the random name somehow exists.
  const handle = await open(tmpPath, 'wx');
  live.add(tmpPath);
  let state: 'open' | 'committed' | 'aborted' = 'open';

  const abort = async (): Promise<void> => {
    if (state !== 'open') return;
    state = 'aborted';
    live.delete(tmpPath);
    try {
      await handle.close();
    } catch {
      /* already closed */
    }
    try {
      await unlink(tmpPath);
    } catch {
      /* already gone */
    }
  };

  return {
    target,
    tmpPath,
    handle,
    async commit() {
      if (state !== 'open') throw new Error(`atomic write of ${target}: already ${state}`);
      try {
        await handle.sync();
        await handle.close();
        await rename(tmpPath, target);
      } catch (err) {
        // Leave state 'open' so abort() can still clean up the temp file.
        await abort();
        throw err;
      }
      state = 'committed';
      live.delete(tmpPath);
      syncDir(dirname(target));
    },
    abort,
  };
}

/** Make the rename durable across a power loss. Best effort: not all platforms allow opening a directory. */
function syncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    /* e.g. Windows; the rename itself is still atomic */
  }
}

/** Writes a whole small file atomically (temp file + fsync + rename), synchronously. */
export function writeFileAtomic(target: string, data: string | Uint8Array): void {
  const tmpPath = tempPathFor(target);
  const fd = openSync(tmpPath, 'wx');
  try {
    writeFileSync(fd, data); // loops until everything is written
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmpPath, target);
  } catch (err) {
    try {
      closeSync(fd);
    } catch {
      /* already closed */
    }
    try {
      unlinkSync(tmpPath);
    } catch {
      /* never created or already renamed */
    }
    throw err;
  }
}
