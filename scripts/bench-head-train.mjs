#!/usr/bin/env node
// Head training speed on cached embeddings, through the same HeadTrainer `edu-train train` uses:
// 450,000 x 768 features, 5 classes, batch 256, 20 epochs (issue 3's benchmark), plus a validation set
// of 10,000 rows evaluated every epoch (early stopping off so all 20 epochs run).
//
//   npm run build:ts && node scripts/bench-head-train.mjs [--rows 450000] [--epochs 20] [--head linear|pooler]
//                                                        [--dropout 0.1] [--sampler shuffle|weighted]
import { HeadTrainer } from '../dist/train/head-trainer.js';

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const N = Number(opt('rows', 450000));
const V = 10000;
const H = 768;
const C = 5;
const epochs = Number(opt('epochs', 20));
const head = opt('head', 'linear');
const dropout = Number(opt('dropout', 0.1));
const sampler = opt('sampler', 'shuffle');

// Deterministic features with a learnable signal: class k shifts dimension k.
let s = 12345;
const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32 - 0.5);
function make(n) {
  const features = new Float32Array(n * H);
  const targets = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const y = (i * 7919) % C;
    targets[i] = y;
    for (let j = 0; j < H; j++) features[i * H + j] = rnd();
    features[i * H + y] += 0.5;
  }
  return { features, targets };
}
const train = make(N);
const val = make(V);

const trainer = new HeadTrainer(
  {
    task: 'classification', inFeatures: H, numClasses: C, hidden: head === 'pooler', epochs, batchSize: 256, lr: 3e-4,
    schedule: 'linear', warmupRatio: 0.1, weightDecay: 0.01, dropout, clipGradNorm: 1, seed: 1, sampler,
    earlyStopping: { metric: 'macro_f1', patience: 'off' },
  },
  {},
);
const t0 = performance.now();
const r = await trainer.train(train, val);
const seconds = (performance.now() - t0) / 1000;
const last = r.history[r.history.length - 1];
console.log(JSON.stringify({
  rows: N, hidden: H, classes: C, epochs: r.history.length, batchSize: 256, head, dropout, sampler,
  seconds: Number(seconds.toFixed(2)), secondsPerEpoch: Number((seconds / r.history.length).toFixed(3)),
  finalTrainLoss: last.trainLoss, bestEpoch: r.bestEpoch, bestMacroF1: r.bestMetrics?.macro_f1,
}));
