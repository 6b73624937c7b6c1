/**
 * `edu-train predict`: score a table with a trained run. Streams the input in chunks (tokenizing the next
 * chunk while the encoder runs the current one), so any file size works in bounded memory; the output is
 * written atomically.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { loadEncoder, type Encoder } from '../encoder.js';
import { openTable, openTableWriter } from '../data/table.js';
import type { ColumnInfo, ReadBatch, WriteColumn } from '../data/types.js';
import { outputColumns, resultColumns, writeTypeOf } from '../annotate/outputs.js';
import type { NativeHead } from '../native/head-types.js';
import type { Encoded } from '../tokenize/tokenizer.js';
import { openRunHead, readRun, runModelIdentity } from '../train/run-dir.js';
import { openReadyClassifier, type ReadyClassifier } from '../hub/ready-classifier.js';
import { resolveModelDir } from '../hub/resolve.js';
import { UsageError } from '../util/errors.js';
import { Progress, formatDuration } from '../util/progress.js';
import {
  addDeviceOptions, BACKBONE_HELP, checkOutputFile, invalidUtf8Note, MAX_BATCH_SIZE, openInputTable, parseList, parsePositiveInt, runtimeOptions, type DeviceCliOptions,
} from './common.js';

interface PredictCli extends DeviceCliOptions {
  run?: string;
  backbone?: string;
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

/** Shared with `annotate` (src/annotate/outputs.ts); re-exported for existing importers. */
export { outputColumns };

export function registerPredict(program: Command): void {
  const cmd = program
    .command('predict')
    .description(
      'Score a table with a trained run. Regression adds `score` (raw) and `int_score` (round-half-to-even(clip(score, 0, 5)));\n' +
        'classification adds `label`, `label_id` and `probs` (softmax, in label_mapping.json order).',
    )
    .option('--run <dir>', 'run folder written by `edu-train train` (for a --folds run: one fold-<k> folder); without it, --backbone / --model-dir must name a ready-made classifier (a *ForSequenceClassification folder or an `export` folder)')
    .requiredOption('--input <file>', 'table to score: .parquet, .arrow, .jsonl, .csv or .tsv')
    .requiredOption('--output <file>', 'output table (.parquet, .arrow, .jsonl or .csv)')
    .option('--text-column <name>', 'column holding the text (default: the run\'s --text-column)')
    .option('--id-column <name>', 'column copied first to identify rows (a `row` number is written if the input has no such column)', DEFAULT_ID_COLUMN)
    .option('--keep-columns <a,b>', 'more input columns to copy to the output', parseList)
    .option('--model-dir <dir>', "the run's encoder, if it moved (its hashes must match run.json); without --run: the classifier folder")
    .option('--backbone <name>', `${BACKBONE_HELP}; with --run: the run's encoder, without: a ready-made classifier such as fineweb-edu-classifier`)
    .option('--embed-batch-size <n>', 'texts per encoder forward pass', parsePositiveInt('--embed-batch-size', MAX_BATCH_SIZE), 32)
    .option('--quiet', 'no progress bar', false);
  addDeviceOptions(cmd).action(async (opts: PredictCli) => {
      await runPredict(opts);
    });
}

function findColumn(schema: ColumnInfo[], name: string, flag: string): ColumnInfo {
  const col = schema.find((c) => c.name === name);
  if (!col) throw new UsageError(`${flag} ${name}: no such column; the input has ${schema.map((c) => c.name).join(', ')}`);
  return col;
}

async function runPredict(opts: PredictCli): Promise<void> {
  if (resolve(opts.input) === resolve(opts.output)) throw new UsageError('--output must not be the --input file');
  checkOutputFile(opts.output, '--output', { table: true, inputs: [{ path: opts.input, flag: '--input' }] });
  const modelDir = opts.backbone || (!opts.run && opts.modelDir)
    ? await resolveModelDir({ modelDir: opts.modelDir, backbone: opts.backbone, quiet: opts.quiet })
    : opts.modelDir;
  if (!opts.run && !modelDir) throw new UsageError('predict needs --run RUN_DIR, or a ready-made classifier: --backbone NAME or --model-dir DIR');
  const run = opts.run ? readRun(opts.run) : null;
  const identity = run ? await runModelIdentity(run, modelDir) : null;
  // Without a run: a folder with its own head (no training), e.g. fineweb-edu-classifier.
  let ready: ReadyClassifier | null = null;
  const textColumn = opts.textColumn ?? run?.config.options.text_column ?? 'text';
  const probe = await openTable(opts.input).catch((e: Error) => {
    throw new UsageError(e.message);
  });
  const schema = probe.schema;
  await probe.close();
  const textCol = findColumn(schema, textColumn, '--text-column');
  const idCol = schema.find((c) => c.name === opts.idColumn) ?? (opts.idColumn !== DEFAULT_ID_COLUMN ? findColumn(schema, opts.idColumn, '--id-column') : undefined);
  const keep = (opts.keepColumns ?? []).filter((k) => k !== idCol?.name).map((k) => findColumn(schema, k, '--keep-columns'));
  if (!run) ready = await openReadyClassifier(modelDir!, runtimeOptions(opts));
  const added = resultColumns(run ? run.config.task : ready!.task);
  const outCols: WriteColumn[] = [
    idCol ? { name: idCol.name, type: writeTypeOf(idCol) } : { name: 'row', type: 'int64' },
    ...keep.map((c) => ({ name: c.name, type: writeTypeOf(c) })),
    ...added,
  ];
  const clash = keep.find((c) => added.some((a) => a.name === c.name)) ?? (idCol && added.find((a) => a.name === idCol.name));
  if (clash) {
    ready?.dispose();
    throw new UsageError(`input column ${clash.name} would be overwritten by a prediction column; rename it or leave it out`);
  }

  const encoder = ready ? ready.encoder : await loadEncoder(identity!.dir, { ...runtimeOptions(opts), maxLength: identity!.maxLength });
  const labelMap = run ? run.labelMap : ready!.labelMap;
  let head: NativeHead | null = null;
  try {
    if (run) head = await openRunHead(run, opts.threads);
    const reader = await openInputTable(opts.input, '--input', { columns: [...new Set([textCol.name, ...(idCol ? [idCol.name] : []), ...keep.map((c) => c.name)])] });
    const writer = await openTableWriter(opts.output, outCols);
    const progress = new Progress({ total: reader.numRows, unit: 'docs', label: 'predict', quiet: opts.quiet });
    const started = performance.now();
    try {
      const chunkRows = Math.max(opts.embedBatchSize * 16, 512);
      for await (const { batch, encoded, firstRow } of tokenizedChunks(reader.batches(chunkRows), encoder, textCol.name)) {
        const outputs = run
          ? await head!.predict((await encoder.embedEncoded(encoded, { pooling: run.config.encoder.pooling, batchSize: opts.embedBatchSize })).embeddings)
          : await ready!.score(encoded, opts.embedBatchSize);
        const columns: Record<string, unknown[]> = {
          [outCols[0].name]: idCol ? batch.columns[idCol.name] : Array.from({ length: batch.numRows }, (_, i) => firstRow + i),
          ...Object.fromEntries(keep.map((c) => [c.name, batch.columns[c.name]])),
          ...outputColumns(outputs, batch.numRows, labelMap),
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
    process.stderr.write(`${invalidUtf8Note(reader, '--input')}predicted ${writer.rowsWritten} rows in ${formatDuration(seconds)}\nwrote ${opts.output}\n`);
  } finally {
    head?.dispose();
    if (ready) ready.dispose();
    else encoder.dispose();
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
