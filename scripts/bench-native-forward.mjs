#!/usr/bin/env node
// Speed check of the native CPU encoder: BERT-base shape with random N(0, 0.02) weights.
//
//   node scripts/bench-native-forward.mjs [--batch 32] [--seq 128] [--threads N] [--isa auto|avx512|avx2|scalar]
//                                          [--layers 12] [--iters 3] [--gemm-only]
//
// Prints forward tokens/s and the GEMM GFLOP/s of kernels.gemm on the encoder's GEMM shapes
// (kernels.gemm re-packs W on each call; the packing is included, it is < 3 % of these shapes).
// Needs build/Release/edu_train.node (npm run build:native); EDU_TRAIN_ADDON overrides the path.
// EDU_TRAIN_PROFILE=1 makes the addon print each forward's time split (GEMM with its GFLOP/s,
// attention, LayerNorm, other) on stderr. On a shared machine, compare the best of several runs.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const addon = require(process.env.EDU_TRAIN_ADDON ?? path.join(root, 'build/Release/edu_train.node'));

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const info = addon.cpuInfo();
const B = Number(opt('batch', 32));
const L = Number(opt('seq', 128));
const threads = Number(opt('threads', info.logicalCpus));
const isa = opt('isa', 'auto');
const layers = Number(opt('layers', 12));
const iters = Number(opt('iters', 3));
const gemmOnly = args.includes('--gemm-only');
const H = 768, I = 3072, heads = 12, V = 30522, P = 512;

// Deterministic N(0, 0.02) (xorshift + Box-Muller).
let s = 0x9e3779b9 >>> 0;
const rnd = () => {
  s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
  return (s + 0.5) / 4294967296;
};
const normal = (n, std = 0.02) => {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(rnd())) * std, t = 2 * Math.PI * rnd();
    a[i] = r * Math.cos(t);
    if (i + 1 < n) a[i + 1] = r * Math.sin(t);
  }
  return a;
};
const ones = (n) => new Float32Array(n).fill(1);

console.log(`cpu: ${JSON.stringify(info)}`);
console.log(`isa=${isa} threads=${threads} batch=${B} seqLen=${L} layers=${layers}`);

// GEMM throughput on the encoder's shapes.
const M = B * L;
for (const [n, k, label] of [[3 * H, H, 'QKV'], [H, H, 'attn out'], [I, H, 'FFN in'], [H, I, 'FFN out']]) {
  const a = normal(M * k, 1), w = normal(n * k), bias = normal(n);
  addon.kernels.gemm(a, w, bias, M, n, k, { isa, threads });  // warm up
  const reps = 3;
  const t0 = process.hrtime.bigint();
  for (let r = 0; r < reps; r++) addon.kernels.gemm(a, w, bias, M, n, k, { isa, threads });
  const sec = Number(process.hrtime.bigint() - t0) / 1e9 / reps;
  console.log(`gemm ${label.padEnd(8)} ${M}x${n}x${k}: ${(sec * 1e3).toFixed(1)} ms, ${(2 * M * n * k / sec / 1e9).toFixed(1)} GFLOP/s`);
}
if (gemmOnly) process.exit(0);

const weights = {
  'embeddings.word_embeddings.weight': normal(V * H),
  'embeddings.position_embeddings.weight': normal(P * H),
  'embeddings.token_type_embeddings.weight': normal(2 * H),
  'embeddings.LayerNorm.weight': ones(H),
  'embeddings.LayerNorm.bias': normal(H),
  'pooler.dense.weight': normal(H * H),
  'pooler.dense.bias': normal(H),
};
for (let l = 0; l < layers; l++) {
  const p = `encoder.layer.${l}.`;
  for (const n of ['query', 'key', 'value']) {
    weights[`${p}attention.self.${n}.weight`] = normal(H * H);
    weights[`${p}attention.self.${n}.bias`] = normal(H);
  }
  weights[`${p}attention.output.dense.weight`] = normal(H * H);
  weights[`${p}attention.output.dense.bias`] = normal(H);
  weights[`${p}attention.output.LayerNorm.weight`] = ones(H);
  weights[`${p}attention.output.LayerNorm.bias`] = normal(H);
  weights[`${p}intermediate.dense.weight`] = normal(I * H);
  weights[`${p}intermediate.dense.bias`] = normal(I);
  weights[`${p}output.dense.weight`] = normal(H * I);
  weights[`${p}output.dense.bias`] = normal(H);
  weights[`${p}output.LayerNorm.weight`] = ones(H);
  weights[`${p}output.LayerNorm.bias`] = normal(H);
}
const config = {
  vocabSize: V, hiddenSize: H, embeddingSize: H, numLayers: layers, numHeads: heads, intermediateSize: I,
  maxPositions: P, typeVocabSize: 2, layerNormEps: 1e-12, padTokenId: 0, positionStyle: 'absolute',
  hasPooler: true, head: 'none', numLabels: 0,
};
const enc = new addon.Encoder(config, weights, { isa, threads });
const ids = new Int32Array(B * L), mask = new Int32Array(B * L).fill(1);
for (let i = 0; i < ids.length; i++) ids[i] = 1000 + Math.floor(rnd() * 20000);
const req = { inputIds: ids, attentionMask: mask, batch: B, seqLen: L, outputs: { meanPooled: true } };
await enc.forward(req);  // warm up
const times = [], cpuTimes = [];
for (let i = 0; i < iters; i++) {
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await enc.forward(req);
  times.push(Number(process.hrtime.bigint() - t0) / 1e9);
  const c = process.cpuUsage(c0);
  cpuTimes.push((c.user + c.system) / 1e6);
}
const best = Math.min(...times);
const flops = layers * 2 * M * H * (3 * H + H + 2 * I) + 4 * B * heads * L * L * (H / heads) * layers;
console.log(`forward (encoder isa=${enc.isa}, threads=${enc.threads}, weights ${(enc.weightBytes / 2 ** 20).toFixed(0)} MiB): ` +
  `best ${best.toFixed(3)} s of ${times.map((t) => t.toFixed(3)).join(', ')} -> ${(B * L / best).toFixed(0)} tokens/s, ` +
  `${(flops / best / 1e9).toFixed(1)} GFLOP/s overall`);
// On a shared machine wall time suffers from other processes; CPU time per forward shows the work done.
const bestCpu = Math.min(...cpuTimes);
console.log(`cpu time per forward: best ${bestCpu.toFixed(2)} s (${threads} threads -> ` +
  `${(B * L / (bestCpu / threads)).toFixed(0)} tokens/s if the ${threads} cores were all ours); load average ` +
  `${(await import('node:os')).loadavg().map((x) => x.toFixed(2)).join(' ')}`);
enc.dispose();
