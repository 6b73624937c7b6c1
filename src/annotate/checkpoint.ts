/**
 * Per-rank progress in the output folder:
 *   part-<rank>-<seq>.parquet   committed output (temp file + rename, so a part is whole or absent)
 *   checkpoints/<rank>.json     where the next part starts (unit, row offset) and the next part's seq;
 *                               written (atomically) after the part it accounts for
 *   completions/<rank>          written last, when every row of the rank is in a committed part
 * A kill between a part's rename and its checkpoint leaves a part with seq >= the checkpoint's; a resume
 * deletes those before starting again from the checkpoint, so no row is ever in two parts.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/atomic-write.js';

export interface RankStats {
  rows: number;
  /** Tokens that went through the encoder for these documents (special tokens included, padding not). */
  tokens: number;
  truncatedDocs: number;
  droppedTokens: number;
  /** --chunking chunks: documents scored in more than one window, and windows run. */
  windowedDocs: number;
  windows: number;
}

export interface Checkpoint {
  rank: number;
  /** Position in this rank's unit list. */
  unit: number;
  /** Rows of that unit already committed. */
  row: number;
  /** seq of the next part file. */
  seq: number;
  parts: string[];
  stats: RankStats;
  updated_at: string;
}

export const emptyStats = (): RankStats => ({ rows: 0, tokens: 0, truncatedDocs: 0, droppedTokens: 0, windowedDocs: 0, windows: 0 });

export function partName(rank: number, seq: number): string {
  return `part-${String(rank).padStart(5, '0')}-${String(seq).padStart(5, '0')}.parquet`;
}

const PART_RE = /^part-(\d+)-(\d+)\.parquet$/;

export class RankState {
  constructor(readonly outDir: string, readonly rank: number) {
    mkdirSync(join(outDir, 'checkpoints'), { recursive: true });
    mkdirSync(join(outDir, 'completions'), { recursive: true });
  }

  get checkpointPath(): string {
    return join(this.outDir, 'checkpoints', `${this.rank}.json`);
  }

  get completionPath(): string {
    return join(this.outDir, 'completions', String(this.rank));
  }

  isComplete(): boolean {
    return existsSync(this.completionPath);
  }

  readCheckpoint(): Checkpoint | null {
    if (!existsSync(this.checkpointPath)) return null;
    return JSON.parse(readFileSync(this.checkpointPath, 'utf8')) as Checkpoint;
  }

  writeCheckpoint(c: Checkpoint): void {
    writeFileAtomic(this.checkpointPath, `${JSON.stringify(c)}\n`);
  }

  /** Removes this rank's parts not covered by the checkpoint, and temp files a killed run left behind. */
  cleanUncommitted(nextSeq: number): string[] {
    const removed: string[] = [];
    const mine = (seqOk: (seq: number) => boolean) => (name: string) => {
      const m = PART_RE.exec(name);
      return m !== null && Number(m[1]) === this.rank && seqOk(Number(m[2]));
    };
    for (const name of readdirSync(this.outDir)) {
      const tmpOf = /^\.(part-\d+-\d+\.parquet)\.tmp-/.exec(name);
      if ((tmpOf && mine(() => true)(tmpOf[1])) || mine((seq) => seq >= nextSeq)(name)) {
        rmSync(join(this.outDir, name), { force: true });
        removed.push(name);
      }
    }
    return removed;
  }

  writeCompletion(summary: unknown): void {
    writeFileAtomic(this.completionPath, `${JSON.stringify(summary, null, 1)}\n`);
  }
}

/** Ranks with a completion record, of worldSize. */
export function completedRanks(outDir: string, worldSize: number): number[] {
  const dir = join(outDir, 'completions');
  if (!existsSync(dir)) return [];
  const names = new Set(readdirSync(dir));
  return Array.from({ length: worldSize }, (_, r) => r).filter((r) => names.has(String(r)));
}
