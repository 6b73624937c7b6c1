/**
 * OUTPUT/manifest.json: written once by whichever rank gets there first (temp file + link(2), which fails
 * if the name exists, so two ranks starting together cannot both win), then read and checked by every
 * rank. It pins the input set (paths, sizes, mtimes), the model, the world size and the options that
 * decide the output rows, plus the plan itself so later ranks need not re-read every footer.
 */
import { existsSync, linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { WriteColumn } from '../data/types.js';
import { tempPathFor } from '../util/atomic-write.js';
import { UsageError } from '../util/errors.js';
import type { Plan } from './plan.js';
import type { ModelDescription } from './scorer.js';

export const MANIFEST_FORMAT = 'edu-train-annotate-v1';

/** The options that change which rows are written or their values. */
export interface ManifestOptions {
  text_column: string;
  id_column: string;
  keep_columns: string[];
  chunking: 'truncate' | 'chunks';
  chunk_agg: 'mean' | 'max';
  batch_size: number;
  max_length: number;
  chunk_rows: number;
  unit_rows: number;
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  created_at: string;
  world_size: number;
  inputs: { sha256: string; count: number };
  model: { sha256: string; summary: string; task: ModelDescription['task']; labels: string[] | null };
  options: ManifestOptions;
  output_schema: WriteColumn[];
  plan: Plan;
  /** Unit indices of each rank. */
  assignment: number[][];
}

export function manifestPath(outDir: string): string {
  return join(outDir, 'manifest.json');
}

export function readManifest(outDir: string): Manifest | null {
  const p = manifestPath(outDir);
  if (!existsSync(p)) return null;
  let m: Manifest;
  try {
    m = JSON.parse(readFileSync(p, 'utf8')) as Manifest;
  } catch (e) {
    throw new UsageError(`${p}: not valid JSON (${(e as Error).message})`);
  }
  if (m.format !== MANIFEST_FORMAT) throw new UsageError(`${p} is not an edu-train annotate manifest (format ${JSON.stringify(m.format)})`);
  return m;
}

/** Creates the manifest unless one exists; returns the one on disk (ours or the winner's). */
export function writeManifestOnce(outDir: string, m: Manifest): Manifest {
  mkdirSync(outDir, { recursive: true });
  const target = manifestPath(outDir);
  const tmp = tempPathFor(target);
  writeFileSync(tmp, `${JSON.stringify(m, null, 1)}\n`, { flag: 'wx' });
  try {
    linkSync(tmp, target);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  } finally {
    unlinkSync(tmp);
  }
  return readManifest(outDir)!;
}

/** What a rerun must agree on; every difference is listed, then the run is refused. */
export function checkManifest(outDir: string, m: Manifest, now: { worldSize: number; inputs: { sha256: string; count: number; files: { path: string; size: number; mtimeMs: number }[] }; model: ModelDescription; options: ManifestOptions }): void {
  const problems: string[] = [];
  if (m.world_size !== now.worldSize) {
    problems.push(`world size: it was started with ${m.world_size} ranks, this run has ${now.worldSize}`);
  }
  if (m.model.sha256 !== now.model.sha256) {
    problems.push(`model: it was started with ${m.model.summary} (sha256 ${m.model.sha256.slice(0, 12)}...), this run uses ${now.model.summary} (sha256 ${now.model.sha256.slice(0, 12)}...)`);
  }
  if (m.inputs.sha256 !== now.inputs.sha256) problems.push(`input set: ${describeInputChange(m.plan.files, now.inputs.files)}`);
  for (const [k, v] of Object.entries(m.options)) {
    const cur = (now.options as unknown as Record<string, unknown>)[k];
    if (JSON.stringify(cur) !== JSON.stringify(v)) problems.push(`option ${k}: was ${JSON.stringify(v)}, now ${JSON.stringify(cur)}`);
  }
  if (problems.length) {
    throw new UsageError(
      `--output ${outDir} holds an annotation started with different settings, so its parts cannot be resumed or combined:\n` +
        problems.map((p) => `  - ${p}`).join('\n') +
        `\nRerun with the original settings, or write to a new --output folder.`,
    );
  }
}

function describeInputChange(before: { path: string; size: number; mtimeMs: number }[], after: { path: string; size: number; mtimeMs: number }[]): string {
  const was = new Map(before.map((f) => [f.path, f]));
  const now = new Map(after.map((f) => [f.path, f]));
  const added = after.filter((f) => !was.has(f.path)).map((f) => f.path);
  const removed = before.filter((f) => !now.has(f.path)).map((f) => f.path);
  const changed = after.filter((f) => was.has(f.path) && (was.get(f.path)!.size !== f.size || was.get(f.path)!.mtimeMs !== f.mtimeMs)).map((f) => f.path);
  const list = (what: string, xs: string[]) => (xs.length ? [`${what} ${xs.slice(0, 3).join(', ')}${xs.length > 3 ? ` and ${xs.length - 3} more` : ''}`] : []);
  const parts = [...list('added', added), ...list('removed', removed), ...list('changed (size or mtime)', changed)];
  return `${before.length} files then, ${after.length} now${parts.length ? `; ${parts.join('; ')}` : ''}`;
}
