/**
 * `edu-train embed`: texts in (Parquet / Arrow / JSONL / CSV), one pooled vector per text out.
 *
 * The input is streamed in chunks: while the encoder works on one chunk, the tokenizer (on its own
 * threads) already splits the next, and finished rows are written in input order. Memory stays
 * bounded by the chunk size whatever the size of the file.
 */
import { resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { loadEncoder, type EmbedPooling, type EmbedStats, type Encoder } from '../encoder.js';
import { openTableWriter } from '../data/table.js';
import type { ColumnInfo, ReadBatch } from '../data/types.js';
import type { Encoded } from '../tokenize/tokenizer.js';
import { UsageError } from '../util/errors.js';
import { Progress, formatCount, formatDuration, formatRate } from '../util/progress.js';
import {
  addEncoderOptions, checkOutputFile, invalidUtf8Note, MAX_BATCH_SIZE, openInputTable, parsePositiveInt, runtimeOptions, type EncoderCliOptions,
} from './common.js';

interface EmbedCliOptions extends EncoderCliOptions {
  input: string;
  output: string;
  textColumn: string;
  idColumn: string;
  pooling?: EmbedPooling;
  normalize: boolean;
  batchSize: number;
  quiet: boolean;
}

const DEFAULT_ID_COLUMN = 'id';

export function registerEmbed(program: Command): void {
  const cmd = program
    .command('embed')
    .description('Embed every text of a table with the encoder and write one vector per row');
  addEncoderOptions(cmd)
    .requiredOption('--input <file>', 'input table: .parquet, .arrow (IPC), .jsonl or .csv/.tsv')
    .requiredOption('--output <file>', 'output table (.parquet, .arrow, .jsonl or .csv): the id column plus `embedding`')
    .option('--text-column <name>', 'column holding the text', 'text')
    .option('--id-column <name>', 'column copied to the output to identify rows (a `row` number is written if the input has no such column)', DEFAULT_ID_COLUMN)
    .addOption(new Option('--pooling <mode>', "how token vectors become one vector; sentence-transformers = the folder's modules.json pipeline (Pooling, Dense, Normalize), as SentenceTransformer.encode (default: that for a sentence-transformers folder, else mean)").choices(['mean', 'cls', 'pooler', 'sentence-transformers']))
    .option('--normalize', 'L2-normalise each embedding', false)
    .option('--max-length <n>', 'tokens per text, special tokens included (default: the model limit, at most 512)', parsePositiveInt('--max-length'))
    .option('--batch-size <n>', 'texts per forward pass', parsePositiveInt('--batch-size', MAX_BATCH_SIZE), 32)
    .option('--quiet', 'no progress bar', false)
    .action(async (opts: EmbedCliOptions) => {
      await runEmbed(opts);
    });
}

async function runEmbed(opts: EmbedCliOptions): Promise<void> {
  if (resolve(opts.input) === resolve(opts.output)) {
    throw new UsageError('--output must not be the --input file');
  }
  checkOutputFile(opts.output, '--output', { table: true, inputs: [{ path: opts.input, flag: '--input' }] });
  const probe = await openInputTable(opts.input, '--input');
  const schema = probe.schema;
  await probe.close();
  const textCol = findColumn(schema, opts.textColumn, '--text-column');
  if (textCol.type !== 'string' && textCol.type !== 'other') {
    throw new UsageError(`--text-column ${opts.textColumn} holds ${textCol.type} values, not text`);
  }
  const idCol = schema.find((c) => c.name === opts.idColumn);
  if (!idCol && opts.idColumn !== DEFAULT_ID_COLUMN) findColumn(schema, opts.idColumn, '--id-column');

  const encoder = await loadEncoder(opts.modelDir, { ...runtimeOptions(opts), maxLength: opts.maxLength });
  try {
    // The folder's own pooling unless the user chose one.
    const pooling = opts.pooling ?? encoder.defaultPooling;
    const reader = await openInputTable(opts.input, '--input', { columns: idCol ? [textCol.name, idCol.name] : [textCol.name] });
    const idOut = idCol ? { name: idCol.name, type: writeTypeOf(idCol) } : { name: 'row', type: 'int64' as const };
    const writer = await openTableWriter(opts.output, [idOut, { name: 'embedding', type: 'list<float32>' }]);
    const progress = new Progress({ total: reader.numRows, unit: 'docs', secondaryUnit: 'tokens', label: 'embed', quiet: opts.quiet });
    const totals: EmbedStats = { texts: 0, tokens: 0, paddedTokens: 0, truncatedTexts: 0, droppedTokens: 0 };
    const started = performance.now();
    try {
      const chunkRows = Math.max(opts.batchSize * 16, 512);
      // One chunk of look-ahead: tokenization of chunk k+1 overlaps the forward passes of chunk k.
      const chunks = tokenizedChunks(reader.batches(chunkRows), encoder, textCol.name);
      for await (const { batch, encoded, firstRow } of chunks) {
        const r = await encoder.embedEncoded(encoded, { pooling, normalize: opts.normalize, batchSize: opts.batchSize });
        const ids = idCol ? batch.columns[idCol.name] : Array.from({ length: batch.numRows }, (_, i) => firstRow + i);
        const rows = Array.from({ length: batch.numRows }, (_, i) => r.embeddings.slice(i * r.hidden, (i + 1) * r.hidden));
        await writer.write({ numRows: batch.numRows, columns: { [idOut.name]: ids, embedding: rows } });
        addStats(totals, r.stats);
        progress.tick(batch.numRows, r.stats.tokens);
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
    process.stderr.write(invalidUtf8Note(reader, '--input') + summary(opts.output, totals, seconds, encoder));
  } finally {
    encoder.dispose();
  }
}

/** Reads and tokenizes chunks, keeping one chunk tokenized ahead of the consumer. */
async function* tokenizedChunks(
  batches: AsyncIterable<ReadBatch>,
  encoder: Encoder,
  textColumn: string,
): AsyncGenerator<{ batch: ReadBatch; encoded: Encoded[]; firstRow: number }> {
  const tokenizer = encoder.tokenizer;
  if (!tokenizer) throw new Error('internal: embed needs a tokenizer');
  let firstRow = 0;
  let pending: Promise<{ batch: ReadBatch; encoded: Encoded[]; firstRow: number }> | null = null;
  for await (const batch of batches) {
    const texts = textsOf(batch.columns[textColumn], textColumn, firstRow);
    const start = firstRow;
    const next = tokenizer.encode(texts).then((encoded) => ({ batch, encoded, firstRow: start }));
    firstRow += batch.numRows;
    if (pending) yield await pending;
    pending = next;
  }
  if (pending) yield await pending;
}

function textsOf(values: unknown[], column: string, firstRow: number): string[] {
  return values.map((v, i) => {
    if (typeof v === 'string') return v;
    if (v === null || v === undefined) {
      throw new UsageError(`row ${firstRow + i} has no text (null in column ${column}); drop or fill such rows first`);
    }
    throw new UsageError(`row ${firstRow + i}: column ${column} holds ${typeof v}, not text`);
  });
}

function findColumn(schema: ColumnInfo[], name: string, flag: string): ColumnInfo {
  const col = schema.find((c) => c.name === name);
  if (!col) {
    throw new UsageError(`${flag} ${name}: no such column; the input has ${schema.map((c) => c.name).join(', ')}`);
  }
  return col;
}

function writeTypeOf(col: ColumnInfo) {
  switch (col.type) {
    case 'int':
      return 'int64' as const;
    case 'float':
      return 'float64' as const;
    case 'bool':
      return 'bool' as const;
    case 'string':
      return 'string' as const;
    default:
      throw new UsageError(`--id-column ${col.name} holds ${col.type} values; use a string or integer column`);
  }
}

function addStats(into: EmbedStats, s: EmbedStats): void {
  into.texts += s.texts;
  into.tokens += s.tokens;
  into.paddedTokens += s.paddedTokens;
  into.truncatedTexts += s.truncatedTexts;
  into.droppedTokens += s.droppedTokens;
}

function summary(output: string, s: EmbedStats, seconds: number, encoder: Encoder): string {
  const pct = (a: number, b: number) => (b > 0 ? ((100 * a) / b).toFixed(1) : '0.0');
  return (
    `embedded ${formatCount(s.texts)} texts (${formatCount(s.tokens)} tokens) in ${formatDuration(seconds)}: ` +
    `${formatRate(s.texts / seconds)} docs/s, ${formatRate(s.tokens / seconds)} tokens/s ` +
    `[${encoder.device}, ${encoder.isa}${encoder.dtype === 'bf16' ? ' bf16' : ''}, ${encoder.threads} threads]\n` +
    `truncated ${formatCount(s.truncatedTexts)} texts (${pct(s.truncatedTexts, s.texts)}%) to ` +
    `${encoder.tokenizer?.maxLength} tokens, dropping ${formatCount(s.droppedTokens)} tokens; ` +
    `padding overhead ${pct(s.paddedTokens - s.tokens, s.paddedTokens)}%\n` +
    `wrote ${output}\n`
  );
}
