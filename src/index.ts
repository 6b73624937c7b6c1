/**
 * edu-train's library API. The CLI (src/cli.ts) is built on exactly these pieces.
 *
 *   import { loadEncoder } from 'edu-train';
 *   const enc = await loadEncoder('/models/ko-sroberta-multitask', { threads: 8 });
 *   const { embeddings, hidden } = await enc.embed(['첫 문장', '두 번째 문장'], { pooling: 'mean', normalize: true });
 *   enc.dispose();
 */
export {
  Encoder,
  loadEncoder,
  defaultMaxLength,
  type Device,
  type Pooling,
  type LoadEncoderOptions,
  type ForwardInputs,
  type ForwardOutputs,
  type EmbedOptions,
  type EmbedResult,
  type EmbedStats,
} from './encoder.js';
export { readModelSpec } from './model/config.js';
export { loadWeights, loadModel } from './model/load.js';
export { generateModelFolder, PRESETS, type GenerateOptions } from './model/generate.js';
export type { ModelSpec, EncoderConfig, HeadSpec, LoadedWeights, ModelType } from './model/types.js';
export { TextTokenizer, padEncoded, type Encoded, type PaddedBatch } from './tokenize/tokenizer.js';
export { openTable, openTableWriter } from './data/table.js';
export type { ColumnInfo, ColumnType, ReadBatch, RecordBatchLike, TableFormat } from './data/types.js';
export { loadAddon } from './native/addon.js';
export type { CpuInfo, CpuIsa } from './native/addon-types.js';
export { UsageError } from './util/errors.js';
