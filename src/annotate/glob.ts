/**
 * --input patterns -> a sorted list of files. Node 20 has no fs.glob, and the patterns must also work
 * when the shell did not expand them (they are quoted in sbatch scripts), so this is a small matcher:
 * `*` and `?` within one path segment, `[...]` classes, `**` for any number of folders. A plain file is
 * itself; a folder means every supported table file below it.
 */
import { readdirSync, statSync } from 'node:fs';
import { extname, isAbsolute, join, resolve, sep } from 'node:path';
import { SUPPORTED_EXTENSIONS } from '../data/table.js';
import { UsageError } from '../util/errors.js';

const MAGIC = /[*?[]/;

function segmentRegex(seg: string): RegExp {
  let re = '';
  for (let i = 0; i < seg.length; i++) {
    const ch = seg[i];
    if (ch === '*') re += '[^/]*';
    else if (ch === '?') re += '[^/]';
    else if (ch === '[') {
      const close = seg.indexOf(']', i + 2);
      if (close < 0) re += '\\[';
      else {
        let cls = seg.slice(i + 1, close).replace(/\\/g, '\\\\');
        if (cls.startsWith('!')) cls = '^' + cls.slice(1);
        re += `[${cls}]`;
        i = close;
      }
    } else re += ch.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function exists(p: string): boolean {
  try {
    statSync(p);
    return true;
  } catch {
    return false;
  }
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
}

/** Every file under dir (recursively), skipping dot entries (temp files, hidden folders). */
function walkFiles(dir: string, out: string[]): void {
  for (const name of listDir(dir)) {
    if (name.startsWith('.')) continue;
    const p = join(dir, name);
    if (isDir(p)) walkFiles(p, out);
    else out.push(p);
  }
}

function matchSegments(base: string, segs: string[], out: string[]): void {
  if (segs.length === 0) {
    out.push(base);
    return;
  }
  const [seg, ...rest] = segs;
  if (seg === '**') {
    matchSegments(base, rest, out); // zero folders
    for (const name of listDir(base)) {
      if (!name.startsWith('.') && isDir(join(base, name))) matchSegments(join(base, name), segs, out);
    }
    return;
  }
  if (!MAGIC.test(seg)) {
    matchSegments(join(base, seg), rest, out);
    return;
  }
  const re = segmentRegex(seg);
  for (const name of listDir(base)) {
    // Like a shell, `*` does not match a leading dot (skips our own .tmp files).
    if (name.startsWith('.') && !seg.startsWith('.')) continue;
    if (re.test(name)) matchSegments(join(base, name), rest, out);
  }
}

function isTableFile(p: string): boolean {
  return SUPPORTED_EXTENSIONS.includes(extname(p).toLowerCase());
}

/** Absolute, de-duplicated, sorted (by code units, so the order is the same on every machine). */
export function expandInputs(patterns: readonly string[]): string[] {
  const found = new Set<string>();
  for (const pattern of patterns) {
    const abs = isAbsolute(pattern) ? pattern : resolve(pattern);
    const hits: string[] = [];
    if (!MAGIC.test(abs)) {
      if (isDir(abs)) {
        const all: string[] = [];
        walkFiles(abs, all);
        hits.push(...all.filter(isTableFile));
      } else if (exists(abs)) hits.push(abs);
    } else {
      const segs = abs.split(sep).filter((s) => s !== '');
      matchSegments(sep, segs, hits);
    }
    const files = hits.filter((p) => !isDir(p));
    if (files.length === 0) throw new UsageError(`--input ${pattern}: no files match`);
    for (const f of files) found.add(f);
  }
  return [...found].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}
