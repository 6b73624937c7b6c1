/**
 * `edu-train predict`: score a table with a trained run. Streams the input in chunks (tokenizing the next
 * chunk while the encoder runs the current one), so any file size works in bounded memory; the output is
 * written atomically.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { loadEncoder, type Encoder } from '../encoder.js';
import { openTable, openTableWriter } from '../data/table.js';
import type { ColumnInfo, ReadBatch, WriteColumn, WriteColumnType } from '../data/types.js';
import { intScore } from '../eval/metrics.js';
import type { NativeHead } from '../native/head-types.js';
import type { Encoded } from '../tokenize/tokenizer.js';
import type { LabelMap } from '../train/label-map.js';
import { openRunHead, readRun, runModelIdentity, type LoadedRun } from '../train/run-dir.js';
import { UsageError } from '../util/errors.js';
import { Progress, formatDuration } from '../util/progress.js';
import { isaFromEnv, parsePositiveInt } from './common.js';
import { parseList } from './train.js';

interface PredictCli {
  run: string;
  input: string;
  output: string;
  textColumn?: string;
  idColumn: string;
  keepColumns?: string[];
  modelDir?: string;
  threads?: number;
  embedBatchSize: number;
  quiet: boolean;
}

const DEFAULT_ID_COLUMN = 'id';

export function registerPredict(program: Command): void {
  program
    .command('predict')
    .description(
      'Score a table with a trained run. Regression adds `score` (raw) and `int_score` (round-half-to-even(clip(score, 0, 5)));\n' +
        'classification adds `label`, `label_id` and `probs` (softmax, in label_mapping.json order).',
    )
    .requiredOption('--run <dir>', 'run folder written by `edu-train train` (for a --folds run: one fold-<k> folder)')
    .requiredOption('--input <file>', 'table to score: .parquet, .arrow, .jsonl, .csv or .tsv')
    .requiredOption('--output <file>', 'output table (.parquet, .arrow, .jsonl or .csv)')
    .option('--text-column <name>', 'column holding the text (default: the run\'s --text-column)')
    .option('--id-column <name>', 'column copied first to identify rows (a `row` number is written if the input has no such column)', DEFAULT_ID_COLUMN)
    .option('--keep-columns <a,b>', 'more input columns to copy to the output', parseList)
    .option('--model-dir <dir>', "the run's encoder, if it moved (its hashes must match run.json)")
    .option('--threads <n>', 'CPU threads (default: all available cores)', parsePositiveInt('--threads'))
    .option('--embed-batch-size <n>', 'texts per encoder forward pass', parsePositiveInt('--embed-batch-size'), 32)
    .option('--quiet', 'no progress bar', false)
    .action(async (opts: PredictCli) => {
      await runPredict(opts);
    });
}

function findColumn(schema: ColumnInfo[], name: string, flag: string): ColumnInfo {
  const col = schema.find((c) => c.name === name);
  if (!col) throw new UsageError(`${flag} ${name}: no such column; the input has ${schema.map((c) => c.name).join(', ')}`);
  return col;
}

function writeTypeOf(col: ColumnInfo): WriteColumnType {
  const t: Partial<Record<ColumnInfo['type'], WriteColumnType>> = {
    int: 'int64', float: 'float64', bool: 'bool', string: 'string', 'list<float>': 'list<float32>', 'list<double>': 'list<float64>',
  };
  const w = t[col.type];
  if (!w) throw new UsageError(`column ${col.name} holds ${col.type} values, which predict cannot copy; leave it out of --keep-columns`);
  return w;
}

/** Output columns added by the run's task. */
function resultColumns(run: LoadedRun): WriteColumn[] {
  return run.config.task === 'regression'
    ? [{ name: 'score', type: 'float64' }, { name: 'int_score', type: 'int32' }]
    : [{ name: 'label', type: 'string' }, { name: 'label_id', type: 'int32' }, { name: 'probs', type: 'list<float64>' }];
}

function softmaxRow(z: Float32Array, offset: number, c: number): Float64Array {
  const p = new Float64Array(c);
  let mx = -Infinity;
  for (let k = 0; k < c; k++) mx = Math.max(mx, z[offset + k]);
  let s = 0;
  for (let k = 0; k < c; k++) s += p[k] = Math.exp(z[offset + k] - mx);
  for (let k = 0; k < c; k++) p[k] /= s;
  return p;
}

/** Head outputs -> the task's output columns. Argmax on the logits: the first maximum wins, like torch. */
export function outputColumns(outputs: Float32Array, n: number, labelMap: LabelMap | null): Record<string, unknown[]> {
  if (!labelMap) {
    const score = Array.from(outputs.subarray(0, n));
    return { score, int_score: score.map((s) => intScore(s)) };
  }
  const c = labelMap.size;
  const label: string[] = [];
  const labelId: number[] = [];
  const probs: Float64Array[] = [];
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let k = 1; k < c; k++) if (outputs[i * c + k] > outputs[i * c + best]) best = k;
    labelId.push(best);
    label.push(String(labelMap.decode(best)));
    probs.push(softmaxRow(outputs, i * c, c));
  }
  return { label, label_id: labelId, probs };
}

async function runPredict(opts: PredictCli): Promise<void> {
  if (resolve(opts.input) === resolve(opts.output)) throw new UsageError('--output must not be the --input file');
  const run = readRun(opts.run);
  const identity = await runModelIdentity(run, opts.modelDir);
  const textColumn = opts.textColumn ?? run.config.options.text_column;
  const probe = await openTable(opts.input).catch((e: Error) => {
    throw new UsageError(e.message);
  });
  const schema = probe.schema;
  await probe.close();
  const textCol = findColumn(schema, textColumn, '--text-column');
  const idCol = schema.find((c) => c.name === opts.idColumn) ?? (opts.idColumn !== DEFAULT_ID_COLUMN ? findColumn(schema, opts.idColumn, '--id-column') : undefined);
  const keep = (opts.keepColumns ?? []).filter((k) => k !== idCol?.name).map((k) => findColumn(schema, k, '--keep-columns'));
  const added = resultColumns(run);
  const outCols: WriteColumn[] = [
    idCol ? { name: idCol.name, type: writeTypeOf(idCol) } : { name: 'row', type: 'int64' },
    ...keep.map((c) => ({ name: c.name, type: writeTypeOf(c) })),
    ...added,
  ];
  const clash = keep.find((c) => added.some((a) => a.name === c.name)) ?? (idCol && added.find((a) => a.name === idCol.name));
  if (clash) throw new UsageError(`input column ${clash.name} would be overwritten by a prediction column; rename it or leave it out`);

  const encoder = await loadEncoder(identity.dir, { threads: opts.threads, isa: isaFromEnv(), maxLength: identity.maxLength });
  let head: NativeHead | null = null;
  try {
    head = await openRunHead(run, opts.threads);
    const reader = await openTable(opts.input, { columns: [...new Set([textCol.name, ...(idCol ? [idCol.name] : []), ...keep.map((c) => c.name)])] });
    const writer = await openTableWriter(opts.output, outCols);
    const progress = new Progress({ total: reader.numRows, unit: 'docs', label: 'predict', quiet: opts.quiet });
    const started = performance.now();
    try {
      const chunkRows = Math.max(opts.embedBatchSize * 16, 512);
      for await (const { batch, encoded, firstRow } of tokenizedChunks(reader.batches(chunkRows), encoder, textCol.name)) {
        const r = await encoder.embedEncoded(encoded, { pooling: run.config.encoder.pooling, batchSize: opts.embedBatchSize });
        const outputs = await head.predict(r.embeddings);
        const columns: Record<string, unknown[]> = {
          [outCols[0].name]: idCol ? batch.columns[idCol.name] : Array.from({ length: batch.numRows }, (_, i) => firstRow + i),
          ...Object.fromEntries(keep.map((c) => [c.name, batch.columns[c.name]])),
          ...outputColumns(outputs, batch.numRows, run.labelMap),
        };
        await writer.write({ numRows: batch.numRows, columns });
        progress.tick(batch.numRows);
      }
      await writer.close();
    } catch (err) {
      await writer.abort();
      throw err;
    } finally {
      await reader.close();
    }
    progress.finish();
    const seconds = (performance.now() - started) / 1000;
    process.stderr.write(`predicted ${writer.rowsWritten} rows in ${formatDuration(seconds)}\nwrote ${opts.output}\n`);
  } finally {
    head?.dispose();
    encoder.dispose();
  }
}

/** Reads and tokenizes chunks, keeping one chunk tokenized ahead of the consumer. */
async function* tokenizedChunks(
  batches: AsyncIterable<ReadBatch>,
  encoder: Encoder,
  textColumn: string,
): AsyncGenerator<{ batch: ReadBatch; encoded: Encoded[]; firstRow: number }> {
  const tokenizer = encoder.tokenizer!;
  let firstRow = 0;
  let pending: Promise<{ batch: ReadBatch; encoded: Encoded[]; firstRow: number }> | null = null;
  for await (const batch of batches) {
    const texts = batch.columns[textColumn].map((v, i) => {
      if (typeof v === 'string') return v;
      throw new UsageError(`row ${firstRow + i}: column ${textColumn} holds ${v === null ? 'null' : typeof v}, not text`);
    });
    const start = firstRow;
    const next = tokenizer.encode(texts).then((encoded) => ({ batch, encoded, firstRow: start }));
    next.catch(() => {}); // consumed below; avoid an unhandled rejection while the previous chunk is awaited
    firstRow += batch.numRows;
    if (pending) yield await pending;
    pending = next;
  }
  if (pending) yield await pending;
}
