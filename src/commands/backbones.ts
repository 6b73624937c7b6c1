/** `edu-train backbones`: the known --backbone names, what they are, and whether each is in the local cache. */
import type { Command } from 'commander';
import { findCachedSnapshot, hubCacheDir, missingModelFiles } from '../hub/cache.js';
import { BACKBONES } from '../hub/registry.js';

export interface BackboneRow {
  name: string;
  repo: string;
  architecture: string;
  model_type: string;
  pooling: string | null;
  kind: 'encoder' | 'classifier';
  task: string | null;
  /** Complete in the cache (config, tokenizer.json, weights). */
  present: boolean;
  /** The snapshot folder, when the cache has one (complete or not). */
  path: string | null;
  missing: string[];
  note: string | null;
}

export function backboneRows(cacheDir = hubCacheDir()): BackboneRow[] {
  return BACKBONES.map((b) => {
    const snap = findCachedSnapshot(cacheDir, b.repo);
    const missing = snap ? missingModelFiles(snap) : [];
    return {
      name: b.name, repo: b.repo, architecture: b.architecture, model_type: b.modelType, pooling: b.pooling, kind: b.kind,
      task: b.task ?? null, present: snap !== null && missing.length === 0, path: snap, missing, note: b.note ?? null,
    };
  });
}

export function registerBackbones(program: Command): void {
  program
    .command('backbones')
    .description('List the models --backbone knows (name, Hugging Face id, architecture, pooling) and whether each is in the Hugging Face cache')
    .option('--json', 'print JSON', false)
    .action((opts: { json: boolean }) => {
      const cacheDir = hubCacheDir();
      const rows = backboneRows(cacheDir);
      if (opts.json) {
        process.stdout.write(`${JSON.stringify({ cache_dir: cacheDir, backbones: rows }, null, 2)}\n`);
        return;
      }
      const table = [['NAME', 'HF ID', 'ARCHITECTURE', 'POOLING', 'LOCAL'], ...rows.map((r) => [
        r.name, r.repo, r.architecture, r.pooling ?? '(none prescribed; edu-train default mean)',
        r.present ? r.path! : r.path ? `incomplete (missing ${r.missing.join(', ')}): ${r.path}` : 'no',
      ])];
      const widths = table[0].map((_, i) => Math.max(...table.map((row) => row[i].length)));
      const lines = table.map((row) => row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]))).join('  '));
      process.stdout.write(`${lines.join('\n')}\ncache: ${cacheDir} (HF_HUB_CACHE / HF_HOME); missing models are downloaded on first use unless HF_HUB_OFFLINE=1\n`);
      for (const r of rows) if (r.note) process.stdout.write(`\n${r.name}: ${r.note}\n`);
    });
}
