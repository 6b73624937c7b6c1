#!/usr/bin/env node
/**
 * Loads a model folder, runs it and disposes it N times (plus a trainable Head and failing calls), and
 * reports memory: used by test/leak.test.ts (RSS must stay flat) and scripts/hardening/leak-check.sh
 * (under LeakSanitizer). Needs dist/ (npx tsc -p tsconfig.json) and the addon (EDU_TRAIN_ADDON honoured).
 *
 *   node --expose-gc scripts/hardening/leak-loop.mjs --model DIR [--iterations 1000] [--warmup 100]
 * Prints one JSON line: { iterations, warmup, rssWarmMiB, rssEndMiB, growthMiB, externalWarmMiB, externalEndMiB }.
 */
import { parseArgs } from 'node:util';

const { values: a } = parseArgs({ options: { model: { type: 'string' }, iterations: { type: 'string' }, warmup: { type: 'string' } } });
if (!a.model) {
  console.error('leak-loop: --model DIR is required');
  process.exit(2);
}
const iterations = Number(a.iterations ?? 1000);
const warmup = Number(a.warmup ?? 100);
const { loadEncoder } = await import('../../dist/encoder.js');
const { loadAddon } = await import('../../dist/native/addon.js');
const { Head } = loadAddon();
const gc = globalThis.gc ?? (() => {});
const MiB = 2 ** 20;
const texts = ['짧다.', '이것은 조금 더 긴 문장입니다. 메모리가 새지 않아야 합니다.', ''];

async function once(i) {
  const enc = await loadEncoder(a.model, { threads: 1, maxLength: 32 });
  try {
    const r = await enc.embed(texts, { pooling: 'mean' });
    if (r.embeddings.length !== texts.length * r.hidden) throw new Error('bad embedding size');
    // A failing call (rejected inside the worker) must not leak either.
    await enc.forward({ input_ids: [[0, 10 ** 9]] }).then(() => { throw new Error('expected a rejection'); }, () => {});
  } finally {
    enc.dispose();
  }
  const H = 16, C = 3;
  const head = new Head({ inFeatures: H, numOutputs: C, loss: 'ce', init: { weight: new Float32Array(H * C).fill(0.01), bias: new Float32Array(C) }, optimizer: {}, threads: 1 });
  const features = new Float32Array(8 * H).fill(i % 7);
  await head.trainEpoch({ features, targets: Int32Array.from({ length: 8 }, (_, k) => k % C), order: Int32Array.from({ length: 8 }, (_, k) => k), batchSize: 4, lrs: new Float64Array(2).fill(0.01) });
  await head.predict(features);
  await head.predict(new Float32Array(3)).catch(() => {});
  head.dispose();
}

function settle() {
  for (let k = 0; k < 4; k++) gc();
  return process.memoryUsage();
}

for (let i = 0; i < warmup; i++) await once(i);
const warm = settle();
for (let i = 0; i < iterations; i++) await once(i);
const end = settle();
const r = (x) => Math.round((x / MiB) * 10) / 10;
console.log(JSON.stringify({
  iterations, warmup,
  rssWarmMiB: r(warm.rss), rssEndMiB: r(end.rss), growthMiB: r(end.rss - warm.rss),
  externalWarmMiB: r(warm.external + warm.arrayBuffers), externalEndMiB: r(end.external + end.arrayBuffers),
}));
