#!/usr/bin/env node
/**
 * Writes a random-weight BERT-family model folder in the Hugging Face layout.
 *
 *   node scripts/generate-model.mjs --out DIR [--preset tiny|bert-base] [--model-type bert|roberta|xlm-roberta|electra]
 *     [--tokenizer DIR] [--hidden N --layers N --heads N --intermediate N --vocab-size N --max-positions N
 *      --type-vocab-size N --embedding-size N] [--head none|seqcls --num-labels N --problem-type T --labels a,b,c
 *      --prefix P] [--format safetensors|pytorch|both] [--dtype F32|F16|BF16] [--sharded N] [--seed N]
 *     [--sentence-transformers [--normalize]]
 *
 * Needs the compiled library: run `npx tsc -p tsconfig.json` first (writes dist/).
 */
import { parseArgs } from 'node:util';

const { generateModelFolder } = await import('../dist/model/generate.js').catch((err) => {
  console.error(`generate-model: cannot load dist/model/generate.js (${err.message}). Build first: npx tsc -p tsconfig.json`);
  process.exit(1);
});

const { values: a } = parseArgs({
  options: {
    out: { type: 'string' },
    preset: { type: 'string' },
    'model-type': { type: 'string' },
    tokenizer: { type: 'string' },
    hidden: { type: 'string' },
    layers: { type: 'string' },
    heads: { type: 'string' },
    intermediate: { type: 'string' },
    'vocab-size': { type: 'string' },
    'max-positions': { type: 'string' },
    'type-vocab-size': { type: 'string' },
    'embedding-size': { type: 'string' },
    head: { type: 'string' },
    'num-labels': { type: 'string' },
    'problem-type': { type: 'string' },
    labels: { type: 'string' },
    prefix: { type: 'string' },
    format: { type: 'string' },
    dtype: { type: 'string' },
    sharded: { type: 'string' },
    seed: { type: 'string' },
    'sentence-transformers': { type: 'boolean' },
    normalize: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  },
  strict: true,
});

if (a.help || !a.out) {
  console.error('usage: node scripts/generate-model.mjs --out DIR [--preset tiny|bert-base] [--model-type bert|roberta|xlm-roberta|electra] ' +
    '[--tokenizer DIR] [--head none|seqcls] [--format safetensors|pytorch|both] [--dtype F32|F16|BF16] [--sharded N] [--seed N] ...');
  process.exit(a.help ? 0 : 2);
}

const int = (name) => {
  const v = a[name];
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) {
    console.error(`generate-model: --${name} must be a non-negative integer, got ${JSON.stringify(v)}`);
    process.exit(2);
  }
  return Number(v);
};
const oneOf = (name, allowed) => {
  const v = a[name];
  if (v !== undefined && !allowed.includes(v)) {
    console.error(`generate-model: --${name} must be one of ${allowed.join(', ')}, got ${JSON.stringify(v)}`);
    process.exit(2);
  }
  return v;
};

try {
  const result = generateModelFolder(a.out, {
    preset: oneOf('preset', ['tiny', 'bert-base']),
    modelType: oneOf('model-type', ['bert', 'roberta', 'xlm-roberta', 'electra']),
    tokenizerDir: a.tokenizer,
    hidden: int('hidden'),
    layers: int('layers'),
    heads: int('heads'),
    intermediate: int('intermediate'),
    vocabSize: int('vocab-size'),
    maxPositions: int('max-positions'),
    typeVocabSize: int('type-vocab-size'),
    embeddingSize: int('embedding-size'),
    head: oneOf('head', ['none', 'seqcls']),
    numLabels: int('num-labels'),
    problemType: oneOf('problem-type', ['regression', 'single_label_classification', 'multi_label_classification']),
    id2label: a.labels ? a.labels.split(',') : undefined,
    prefix: a.prefix,
    format: oneOf('format', ['safetensors', 'pytorch', 'both']),
    dtype: oneOf('dtype', ['F32', 'F16', 'BF16']),
    sharded: int('sharded'),
    seed: int('seed'),
    sentenceTransformers: a['sentence-transformers'],
    normalize: a.normalize,
  });
  const c = result.config;
  console.log(`wrote ${result.dir}: ${c.architectures[0]} hidden ${c.hidden_size}, ${c.num_hidden_layers} layers, ` +
    `${c.num_attention_heads} heads, vocab ${c.vocab_size}; files: ${result.files.join(', ')}`);
} catch (err) {
  console.error(`generate-model: ${err.message}`);
  process.exit(2);
}
