/**
 * Temporary folders for tests: `useTmpDirs()` in a describe/file gives a `make()` that creates a
 * fresh folder under the OS temp dir; all of them are removed after the file's tests.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';

/** A fresh empty folder; the caller removes it (or use useTmpDirs). */
export function makeTmpDir(prefix = 'edu-train-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Registers cleanup with vitest's afterAll; returns a factory of fresh folders. */
export function useTmpDirs(prefix?: string): { make: () => string } {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  return {
    make: () => {
      const d = makeTmpDir(prefix);
      dirs.push(d);
      return d;
    },
  };
}
