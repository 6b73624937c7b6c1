#!/usr/bin/env node
// The benchmark through the whole Node path (dist/ + the addon's CudaEncoder): tokens/s of
// Encoder.forward-equivalent calls (meanPooled) on a model folder, at seq 512 x batch 256 and a
// 32..512 length mix, bf16 and fp32. Needs `npm run build` (or build:native + build:ts) and a GPU.
//   node scripts/gpu/bench-node.mjs --model-dir <folder> [--out bench_node.json] [--reps 10]
// `python3 scripts/gpu/bench_vs_torch.py --save-model-dir DIR` writes the random BERT-base folder it
// benchmarks; pass the same DIR here to compare on the same safetensors (see scripts/gpu/README.md).
import { writeFileSync } from 'node:fs';
import { loadEncoder } from '../../dist/encoder.js';

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []));
if (!args['model-dir']) {
  console.error('usage: node scripts/gpu/bench-node.mjs --model-dir <folder> [--out file.json] [--reps N] [--batch N]');
  process.exit(2);
}
const reps = Number(args.reps ?? 10), batch = Number(args.batch ?? 256);
let seed = 1;
const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);

function workload(kind, vocab) {
  const lens = Array.from({ length: batch }, () => (kind === 'seq512' ? 512 : 32 + Math.floor(rnd() * 481)));
  const L = Math.max(...lens);
  const ids = new Int32Array(batch * L), mask = new Int32Array(batch * L);
  lens.forEach((len, b) => {
    for (let t = 0; t < len; t++) {
      ids[b * L + t] = t === 0 ? 101 : 1000 + Math.floor(rnd() * (vocab - 1000));
      mask[b * L + t] = 1;
    }
  });
  return { ids, mask, L, real: lens.reduce((a, b) => a + b, 0) };
}

const report = { command: process.argv.join(' '), batch, results: {} };
for (const precision of ['bf16', 'fp32']) {
  const enc = await loadEncoder(args['model-dir'], { device: 'cuda', precision, withoutTokenizer: true, log: (l) => console.error(l) });
  const native = enc['native'];
  report.kernels = report.kernels ?? {};
  report.kernels[precision] = `${native.device} ${native.precision}: ${native.kernels}`;
  for (const kind of ['seq512', 'mix']) {
    const w = workload(kind, enc.spec.config.vocabSize);
    const req = { inputIds: w.ids, attentionMask: w.mask, batch, seqLen: w.L, outputs: { meanPooled: true } };
    for (let i = 0; i < 3; i++) await native.forward(req);
    const times = [];
    for (let i = 0; i < (precision === 'fp32' ? Math.min(reps, 3) : reps); i++) {
      const t0 = process.hrtime.bigint();
      await native.forward(req);
      times.push(Number(process.hrtime.bigint() - t0) / 1e9);
    }
    times.sort((a, b) => a - b);
    const med = times[Math.floor(times.length / 2)];
    report.results[`${kind}-${precision}`] = { realTokens: w.real, medianS: med, tokensPerS: w.real / med, times };
    console.log(`${kind.padEnd(7)} ${precision}: ${(w.real / med / 1e6).toFixed(3)} M tok/s (median ${med.toFixed(4)} s)`);
  }
  enc.dispose();
}
writeFileSync(args.out ?? 'bench_node.json', JSON.stringify(report, null, 1));
