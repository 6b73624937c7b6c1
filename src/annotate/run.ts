/**
 * One rank of `edu-train annotate`: check (or write) the manifest, skip a finished rank, resume from the
 * checkpoint, then stream the rank's units chunk by chunk through tokenizer -> encoder + head -> Parquet
 * parts, committing a part and a checkpoint every --rows-per-checkpoint rows.
 *
 * Overlap: while the encoder runs chunk k (on native threads), the main thread writes chunk k-1 and reads
 * chunk k+2, whose tokenization (on the tokenizers package's own threads) runs alongside. Memory holds a
 * few chunks and one output row group, whatever the corpus size.
 */
import { join, resolve } from 'node:path';
import { openTableWriter } from '../data/table.js';
import type { ColumnInfo, ReadBatch, TableWriter, WriteColumn } from '../data/types.js';
import type { EncoderRuntime } from '../encoder.js';
import type { Encoded } from '../tokenize/tokenizer.js';
import { UsageError } from '../util/errors.js';
import { setInterruptMessage } from '../util/interrupt.js';
import { Progress, formatCount, formatDuration, formatRate } from '../util/progress.js';
import { completedRanks, emptyStats, partName, RankState, type Checkpoint, type RankStats } from './checkpoint.js';
import { expandInputs } from './glob.js';
import { RankLock } from './rank-lock.js';
import { checkManifest, readManifest, writeManifestOnce, MANIFEST_FORMAT, type Manifest, type ManifestOptions } from './manifest.js';
import { aggregatedColumns, outputColumns, resultColumns, type ChunkAgg } from './outputs.js';
import { assignUnits, buildPlan, statInputs, type Unit } from './plan.js';
import { describeModel, openScorer, type ModelSource, type Scorer } from './scorer.js';
import { resolveShard, type Shard } from './shard.js';
import { unitChunks } from './source.js';
import { WindowTokenizer } from './windows.js';

export interface AnnotateOptions extends EncoderRuntime {
  source: ModelSource;
  inputs: string[];
  output: string;
  textColumn: string;
  idColumn: string;
  idColumnExplicit: boolean;
  keepColumns: string[];
  chunking: 'truncate' | 'chunks';
  chunkAgg: ChunkAgg;
  batchSize: number;
  maxLength?: number;
  chunkRows?: number;
  unitRows: number;
  rowsPerCheckpoint: number;
  rank?: number;
  worldSize?: number;
  quiet: boolean;
  log?: (line: string) => void;
}

/** Rows read, tokenized and scored together: the unit of batching (and so of bit-for-bit reproducibility). */
export function defaultChunkRows(batchSize: number): number {
  return Math.max(batchSize * 16, 512);
}

interface Prepared {
  /** Position in this rank's unit list, and the unit. */
  u: number;
  unit: Unit;
  offset: number;
  batch: ReadBatch;
  encoded: Encoded[];
  /** Windows per document (--chunking chunks), else null. */
  counts: Int32Array | null;
  stats: RankStats;
}

export async function annotate(o: AnnotateOptions): Promise<void> {
  const log = o.log ?? ((s: string) => process.stderr.write(`${s}\n`));
  setInterruptMessage(() => 'before scoring started; rerun to resume'); // the CLI's SIGINT/SIGTERM line (src/util/interrupt.ts)
  try {
    await annotateRank(o, log);
  } finally {
    setInterruptMessage(null);
  }
}

async function annotateRank(o: AnnotateOptions, log: (s: string) => void): Promise<void> {
  const shard = resolveShard({ rank: o.rank, worldSize: o.worldSize });
  const outDir = resolve(o.output);
  const paths = expandInputs(o.inputs);
  const inputs = statInputs(paths);
  const described = await describeModel(o.source, o.maxLength);
  const model = described.description;
  const options: ManifestOptions = {
    text_column: o.textColumn,
    id_column: o.idColumn,
    keep_columns: o.keepColumns,
    chunking: o.chunking,
    chunk_agg: o.chunkAgg,
    batch_size: o.batchSize,
    max_length: model.maxLength,
    chunk_rows: o.chunkRows ?? defaultChunkRows(o.batchSize),
    unit_rows: o.unitRows,
  };
  const now = { worldSize: shard.worldSize, inputs: { sha256: inputs.sha256, count: inputs.files.length, files: inputs.files }, model, options };
  let manifest = readManifest(outDir);
  if (manifest) checkManifest(outDir, manifest, now);
  else {
    const plan = await buildPlan(inputs.files, {
      textColumn: o.textColumn, idColumn: o.idColumn, idColumnExplicit: o.idColumnExplicit, keepColumns: o.keepColumns, unitRows: o.unitRows,
    });
    const outputSchema: WriteColumn[] = [
      ...(plan.columns.id ? [plan.columns.id] : [{ name: 'file', type: 'string' as const }, { name: 'row', type: 'int64' as const }]),
      ...plan.columns.keep,
      ...resultColumns(model.task),
    ];
    manifest = writeManifestOnce(outDir, {
      format: MANIFEST_FORMAT,
      created_at: new Date().toISOString(),
      world_size: shard.worldSize,
      inputs: { sha256: inputs.sha256, count: inputs.files.length },
      model: { sha256: model.sha256, summary: model.summary, task: model.task, labels: model.labels },
      options,
      output_schema: outputSchema,
      plan,
      assignment: assignUnits(plan.units, shard.worldSize),
    });
    checkManifest(outDir, manifest, now); // another rank may have written it first
  }

  const state = new RankState(outDir, shard.rank);
  const tag = `annotate rank ${shard.rank}/${shard.worldSize}`;
  // Held from here on: the resume below deletes uncommitted parts, which must never be another live process's.
  const lock = RankLock.acquire(outDir, shard.rank);
  try {
    if (lock.takenOver) log(`${tag}: took over a stale lock (${lock.takenOver})`);
    if (state.isComplete()) {
      log(`${tag}: already complete, nothing to do (${completionLine(outDir, manifest)})`);
      return;
    }
    await resumeRank(o, described, shard, manifest, state, tag, log);
  } finally {
    lock.release();
  }
}

async function resumeRank(
  o: AnnotateOptions, described: Awaited<ReturnType<typeof describeModel>>, shard: Shard, manifest: Manifest, state: RankState, tag: string,
  log: (s: string) => void,
): Promise<void> {
  const cp: Checkpoint = state.readCheckpoint() ?? { rank: shard.rank, unit: 0, row: 0, seq: 0, parts: [], stats: emptyStats(), updated_at: '' };
  const removed = state.cleanUncommitted(cp.seq);
  if (cp.seq > 0 || removed.length) {
    log(`${tag}: resuming after ${formatCount(cp.stats.rows)} rows in ${cp.parts.length} parts${removed.length ? `; removed ${removed.length} uncommitted files` : ''}`);
  }

  const scorer = await openScorer(o.source, described, { device: o.device, precision: o.precision, maxBatchTokens: o.maxBatchTokens, threads: o.threads, isa: o.isa, dtype: o.dtype });
  try {
    await runRank(o, shard, manifest, state, cp, scorer, log);
  } finally {
    scorer.dispose();
  }
}

async function runRank(o: AnnotateOptions, shard: Shard, m: Manifest, state: RankState, cp: Checkpoint, scorer: Scorer, log: (s: string) => void): Promise<void> {
  const plan = m.plan;
  const units = m.assignment[shard.rank].map((i) => plan.units[i]);
  const chunkRows = m.options.chunk_rows;
  const columns = plan.columns;
  const readCols: ColumnInfo[] = [...new Set([columns.text, ...(columns.id ? [columns.id.name] : []), ...columns.keep.map((k) => k.name)])].map((name) => ({ name, type: 'other' }));
  const windows = m.options.chunking === 'chunks' ? await WindowTokenizer.load(scorer.description.modelDir, m.options.max_length).init() : null;
  const tokenizer = scorer.encoder.tokenizer!;
  const sleepMs = Number(process.env.EDU_TRAIN_ANNOTATE_TEST_SLEEP_MS ?? 0); // test hook: a deterministically slow rank
  const crashAfterPart = process.env.EDU_TRAIN_ANNOTATE_TEST_CRASH === 'after-part'; // test hook: die between part and checkpoint

  async function* raw() {
    for (let u = cp.unit; u < units.length; u++) {
      const unit = units[u];
      const f = plan.files[unit.file];
      const range = { path: f.path, format: f.format, rowStart: unit.rowStart, rowEnd: unit.rowEnd };
      for await (const c of unitChunks(range, readCols, u === cp.unit ? cp.row : 0, chunkRows)) yield { u, unit, ...c };
    }
  }

  async function tokenize(c: { u: number; unit: Unit; offset: number; batch: ReadBatch }): Promise<Prepared> {
    const stats = emptyStats();
    const texts = c.batch.columns[columns.text].map((v, i) => {
      if (typeof v === 'string') return v;
      if (v === null || v === undefined) return ''; // an empty document still gets a row (and a score)
      throw new UsageError(`${plan.files[c.unit.file].path}: row ${c.unit.rowStart + c.offset + i}: column ${columns.text} holds ${typeof v}, not text`);
    });
    stats.rows = texts.length;
    if (windows) {
      const w = await windows.encode(texts);
      stats.tokens = w.tokens;
      stats.windowedDocs = w.longDocs;
      stats.windows = w.windows.length;
      return { ...c, encoded: w.windows, counts: w.counts, stats };
    }
    const encoded = await tokenizer.encode(texts);
    for (const e of encoded) {
      stats.tokens += e.ids.length;
      if (e.droppedTokens > 0) {
        stats.truncatedDocs++;
        stats.droppedTokens += e.droppedTokens;
      }
    }
    stats.windows = encoded.length;
    return { ...c, encoded, counts: null, stats };
  }

  // One chunk tokenized ahead of the one being handed out.
  async function* prepared(): AsyncGenerator<Prepared> {
    let pending: Promise<Prepared> | null = null;
    for await (const c of raw()) {
      const next = tokenize(c);
      next.catch(() => {}); // awaited below; avoid an unhandled rejection meanwhile
      if (pending) yield await pending;
      pending = next;
    }
    if (pending) yield await pending;
  }

  const totalRows = units.every((u) => u.rowEnd !== null) ? units.reduce((s, u) => s + (u.rowEnd! - u.rowStart), 0) : undefined;
  const progress = new Progress({ total: totalRows, unit: 'docs', secondaryUnit: 'tokens', label: `annotate ${shard.rank}/${shard.worldSize}`, quiet: o.quiet });
  if (cp.stats.rows) progress.tick(cp.stats.rows, 0);
  const stats: RankStats = { ...emptyStats(), ...cp.stats };
  const session = emptyStats();
  let seq = cp.seq;
  const parts = [...cp.parts];
  let writer: TableWriter | null = null;
  let rowsInPart = 0;
  let committedRows = cp.stats.rows;
  setInterruptMessage(() => `${committedRows} rows committed; rerun to resume`);
  const started = performance.now();

  const commit = async (unit: number, row: number) => {
    if (!writer) return;
    await writer.close();
    parts.push(partName(shard.rank, seq));
    seq++;
    writer = null;
    rowsInPart = 0;
    if (crashAfterPart) process.kill(process.pid, 'SIGKILL');
    state.writeCheckpoint({ rank: shard.rank, unit, row, seq, parts, stats, updated_at: new Date().toISOString() });
    committedRows = stats.rows;
  };

  const writeOut = async (p: Prepared, outputs: Float32Array) => {
    const n = p.batch.numRows;
    const file = plan.files[p.unit.file].path;
    const first = p.unit.rowStart + p.offset;
    const idCols: Record<string, unknown[]> = columns.id
      ? { [columns.id.name]: p.batch.columns[columns.id.name] }
      : { file: new Array(n).fill(file), row: Array.from({ length: n }, (_, i) => first + i) };
    const batch = {
      numRows: n,
      columns: {
        ...idCols,
        ...Object.fromEntries(columns.keep.map((k) => [k.name, p.batch.columns[k.name]])),
        ...(p.counts ? aggregatedColumns(outputs, p.counts, scorer.labelMap, m.options.chunk_agg) : outputColumns(outputs, n, scorer.labelMap)),
      },
    };
    writer ??= await openTableWriter(join(state.outDir, partName(shard.rank, seq)), m.output_schema, { rowGroupRows: Math.min(8192, Math.max(chunkRows, 1024)) });
    await writer.write(batch);
    for (const k of Object.keys(stats) as (keyof RankStats)[]) {
      stats[k] += p.stats[k];
      session[k] += p.stats[k];
    }
    rowsInPart += n;
    progress.tick(n, p.stats.tokens);
    if (rowsInPart >= o.rowsPerCheckpoint) await commit(p.u, p.offset + n);
  };

  let last: { u: number; row: number } = { u: cp.unit, row: cp.row };
  try {
    const it = prepared();
    let nextP = it.next();
    nextP.catch(() => {});
    let prev: { p: Prepared; outputs: Float32Array } | null = null;
    for (;;) {
      const r = await nextP;
      if (r.done) break;
      nextP = it.next(); // reads (and starts tokenizing) the following chunk while the encoder runs
      nextP.catch(() => {});
      const scoring = scorer.score(r.value.encoded, m.options.batch_size);
      if (prev) await writeOut(prev.p, prev.outputs);
      prev = { p: r.value, outputs: await scoring };
      last = { u: r.value.u, row: r.value.offset + r.value.batch.numRows };
      if (sleepMs > 0) await new Promise((res) => setTimeout(res, sleepMs));
    }
    if (prev) await writeOut(prev.p, prev.outputs);
    await commit(last.u, last.row);
  } catch (e) {
    await (writer as TableWriter | null)?.abort();
    throw e;
  }
  progress.finish();

  const seconds = (performance.now() - started) / 1000;
  state.writeCompletion({ rank: shard.rank, world_size: shard.worldSize, rows: stats.rows, parts, stats, finished_at: new Date().toISOString() });
  const pct = (a: number, b: number) => (b > 0 ? ((100 * a) / b).toFixed(1) : '0.0');
  const enc = scorer.encoder;
  log(
    `annotate rank ${shard.rank}/${shard.worldSize}: ${formatCount(session.rows)} docs (${formatCount(session.tokens)} tokens) in ${formatDuration(seconds)}: ` +
      `${formatRate(session.rows / seconds)} docs/s, ${formatRate(session.tokens / seconds)} tokens/s [${enc.device}, ${enc.isa}${enc.dtype === 'bf16' ? ' bf16' : ''}, ${enc.threads} threads]`,
  );
  log(
    m.options.chunking === 'chunks'
      ? `chunks: ${formatCount(stats.windowedDocs)} of ${formatCount(stats.rows)} documents (${pct(stats.windowedDocs, stats.rows)}%) were longer than ${m.options.max_length} tokens and were scored in ${formatCount(stats.windows)} windows in all (${m.options.chunk_agg})`
      : `truncated ${formatCount(stats.truncatedDocs)} of ${formatCount(stats.rows)} documents (${pct(stats.truncatedDocs, stats.rows)}%) to ${m.options.max_length} tokens, dropping ${formatCount(stats.droppedTokens)} tokens`,
  );
  log(`wrote ${parts.length} parts (${formatCount(stats.rows)} rows) to ${state.outDir}; ${completionLine(state.outDir, m)}`);
}

function completionLine(outDir: string, m: Manifest): string {
  const done = completedRanks(outDir, m.world_size).length;
  return done === m.world_size ? `all ${m.world_size} ranks complete` : `${done} of ${m.world_size} ranks complete`;
}
