/**
 * Loads the native addon (build/Release/edu_train.node), typed by the contract in addon-types.ts.
 *
 * The path is resolved from the package root (found by walking up from this module to the
 * package.json named "edu-train"), so it works from src/ (vitest, tsx) and from dist/ (after tsc).
 * EDU_TRAIN_ADDON=/path/to/edu_train.node overrides it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import type { NativeAddon } from './addon-types.js';

export type * from './addon-types.js';

const require = createRequire(import.meta.url);
let cached: NativeAddon | undefined;

/** The package root (the directory of edu-train's package.json). */
export function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'edu-train') return dir;
      } catch {
        // not ours / unreadable: keep walking
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  // Fallback: src/native/addon.ts and dist/native/addon.js both sit two levels below the root.
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
}

/** Where the addon is loaded from (EDU_TRAIN_ADDON, else <root>/build/Release/edu_train.node). */
export function addonPath(): string {
  const override = process.env.EDU_TRAIN_ADDON;
  if (override !== undefined && override !== '') return path.resolve(override);
  return path.join(packageRoot(), 'build', 'Release', 'edu_train.node');
}

/** Loads (once) and returns the native addon. Throws a clear Error when it is not built. */
export function loadAddon(): NativeAddon {
  if (cached !== undefined) return cached;
  const file = addonPath();
  if (!existsSync(file)) {
    const how = process.env.EDU_TRAIN_ADDON
      ? 'EDU_TRAIN_ADDON points to a file that does not exist'
      : 'the native addon is not built: run `npm run build:native` (needs cmake and a C++17 compiler)';
    throw new Error(`edu-train: cannot find ${file}: ${how}`);
  }
  let mod: unknown;
  try {
    mod = require(file);
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw new Error(`edu-train: failed to load the native addon ${file}: ${msg}. ` +
      'Rebuild it with `npm run build:native`.', { cause: err });
  }
  const addon = mod as Partial<NativeAddon>;
  if (typeof addon.cpuInfo !== 'function' || typeof addon.Encoder !== 'function' || typeof addon.kernels !== 'object') {
    throw new Error(`edu-train: ${file} does not export cpuInfo/Encoder/kernels; rebuild it with \`npm run build:native\``);
  }
  cached = addon as NativeAddon;
  return cached;
}
