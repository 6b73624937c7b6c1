/**
 * Locates ../shared (golden references, real tokenizers, datasets). It is present on developer
 * machines and in CI; a test that needs it fails loudly (never skips) when it is missing.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export function sharedPath(...parts: string[]): string {
  const root = process.env.EDU_TRAIN_SHARED ?? resolve(repoRoot, '..', 'shared');
  const p = join(root, ...parts);
  if (!existsSync(p)) {
    throw new Error(`Test fixture missing: ${p}. The tests need the read-only ../shared folder beside the checkout (or EDU_TRAIN_SHARED).`);
  }
  return p;
}

export function readSharedJson<T = any>(...parts: string[]): T {
  return JSON.parse(readFileSync(sharedPath(...parts), 'utf8')) as T;
}

export const GOLDEN_CASES = ['bert-tiny', 'roberta-tiny', 'bert-tiny-seqcls-regression', 'bert-tiny-large-weights'] as const;
