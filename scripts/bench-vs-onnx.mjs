#!/usr/bin/env node
// edu-train vs ONNX Runtime (fp32) on the BERT-base shape, with the numbers issue 10 asks for:
//
//   node scripts/bench-vs-onnx.mjs [--model-dir /tmp/bert-base] [--threads 2] [--iters 5] [--repeat 2]
//                                   [--latency-iters 20] [--skip-peak] [--json-out FILE]
//
// 1. The machine: `lscpu` model line, date, load average.
// 2. Its fp32 peak: a small C probe (compiled here with cc -O2 -mavx2 -mfma) measures the core clock
//    from a chain of dependent 1-cycle integer adds (GHz = adds / thread CPU time), and the FMA
//    throughput of 12 independent _mm256_fmadd_ps chains on 1 and N threads. The AVX2 peak is
//    N cores x 2 FMA pipes x 8 lanes x 2 FLOP x measured GHz (Zen 2/3/4 and Intel since Haswell
//    have two 256-bit FMA pipes per core).
// 3. `edu-train bench --json` at batch 32 x 128 and at batch 1 x 128 (latency), --repeat times each,
//    with EDU_TRAIN_PROFILE=1 so the addon's per-kernel split of every forward is captured; the
//    fastest forward's split is reported with achieved GFLOP/s per kernel class.
// The model folder is generated (random weights, BERT-base shape) when missing. Needs dist/ (npx tsc)
// and build/Release/edu_train.node. On a shared machine compare the best runs and the CPU times.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: a } = parseArgs({
  options: {
    'model-dir': { type: 'string', default: '/tmp/bert-base' },
    threads: { type: 'string', default: '2' },
    iters: { type: 'string', default: '5' },
    repeat: { type: 'string', default: '2' },
    'latency-iters': { type: 'string', default: '20' },
    'skip-peak': { type: 'boolean', default: false },
    'json-out': { type: 'string' },
  },
});
const modelDir = a['model-dir'];
const threads = Number(a.threads);

// ---- 1. machine
const lscpuModel = (() => {
  try {
    return /^Model name:\s*(.+)$/m.exec(execFileSync('lscpu', { encoding: 'utf8' }))?.[1].trim() ?? 'unknown';
  } catch {
    return 'unknown (no lscpu)';
  }
})();
console.log(`date: ${new Date().toISOString()}\nlscpu model: ${lscpuModel}\nload average at start: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);

// ---- 2. peak
const PROBE = String.raw`
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double cpu_s(void) { struct timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
/* 8 dependent adds per loop trip: 8 cycles (the loop counter runs in parallel). */
static double clock_ghz(void) {
  double best = 0;
  for (int r = 0; r < 5; r++) {
    unsigned long x = 0, n = 50000000UL;
    double t0 = cpu_s();
    __asm__ volatile("1:\n\tadd $1,%0\n\tadd $1,%0\n\tadd $1,%0\n\tadd $1,%0\n\tadd $1,%0\n\tadd $1,%0\n\tadd $1,%0\n\tadd $1,%0\n\tdec %1\n\tjnz 1b"
                     : "+r"(x), "+r"(n));
    double ghz = 8.0 * 50000000UL / (cpu_s() - t0) / 1e9;
    if (ghz > best) best = ghz;
  }
  return best;
}
/* 12 independent FMA chains in registers (latency 4-5 x 2 pipes needs >= 10 in flight). */
#define F(a) a = _mm256_fmadd_ps(a, m, c)
static void *fma_worker(void *out) {
  double best = 0;
  for (int r = 0; r < 5; r++) {
    __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    __m256 a0 = _mm256_set1_ps(0), a1 = _mm256_set1_ps(1), a2 = _mm256_set1_ps(2), a3 = _mm256_set1_ps(3),
           a4 = _mm256_set1_ps(4), a5 = _mm256_set1_ps(5), a6 = _mm256_set1_ps(6), a7 = _mm256_set1_ps(7),
           a8 = _mm256_set1_ps(8), a9 = _mm256_set1_ps(9), a10 = _mm256_set1_ps(10), a11 = _mm256_set1_ps(11);
    long n = 20000000;
    double t0 = cpu_s();
    for (long k = 0; k < n; k++) { F(a0); F(a1); F(a2); F(a3); F(a4); F(a5); F(a6); F(a7); F(a8); F(a9); F(a10); F(a11); }
    double dt = cpu_s() - t0;
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)), _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    if (_mm256_cvtss_f32(s) == 12345.f) puts(""); /* keeps the chains live */
    double gflops = 2.0 * 8 * 12 * n / dt / 1e9;
    if (gflops > best) best = gflops;
  }
  *(double *)out = best;
  return 0;
}
int main(int argc, char **argv) {
  int nt = argc > 1 ? atoi(argv[1]) : 1;
  printf("{\"ghz\": %.3f", clock_ghz());
  double one; fma_worker(&one);
  pthread_t th[64]; double r[64];
  for (int i = 0; i < nt; i++) pthread_create(&th[i], 0, fma_worker, &r[i]);
  double sum = 0; for (int i = 0; i < nt; i++) { pthread_join(th[i], 0); sum += r[i]; }
  printf(", \"fma_gflops_1thread\": %.1f, \"fma_gflops_nthreads\": %.1f, \"threads\": %d}\n", one, sum, nt);
  return 0;
}`;

let peak = null;
if (!a['skip-peak']) {
  const dir = mkdtempSync(path.join(tmpdir(), 'peak-probe-'));
  try {
    writeFileSync(path.join(dir, 'probe.c'), PROBE);
    execFileSync('cc', ['-O2', '-mavx2', '-mfma', '-pthread', '-o', path.join(dir, 'probe'), path.join(dir, 'probe.c')]);
    const p = JSON.parse(execFileSync(path.join(dir, 'probe'), [String(threads)], { encoding: 'utf8' }));
    // Per core per cycle: 2 FMA pipes x 8 fp32 lanes x 2 FLOP.
    p.peak_gflops_from_clock = 32 * p.ghz * threads;
    peak = p;
    console.log(`clock (dependent adds, thread CPU time): ${p.ghz.toFixed(2)} GHz -> AVX2 fp32 peak ${threads} x 32 FLOP/cycle x ${p.ghz.toFixed(2)} GHz = ${p.peak_gflops_from_clock.toFixed(1)} GFLOP/s`);
    console.log(`measured FMA throughput: ${p.fma_gflops_1thread.toFixed(1)} GFLOP/s on 1 thread, ${p.fma_gflops_nthreads.toFixed(1)} GFLOP/s on ${threads} threads`);
  } catch (err) {
    console.log(`peak probe skipped: ${err.message}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- 3. the benchmark
if (!existsSync(path.join(modelDir, 'config.json'))) {
  console.log(`generating ${modelDir} (BERT-base shape, random weights) ...`);
  execFileSync(process.execPath, [path.join(root, 'scripts/generate-model.mjs'), '--out', modelDir, '--preset', 'bert-base',
    '--tokenizer', path.join(root, '../shared/models/tokenizer-only/all-minilm-l6-v2')], { stdio: 'inherit' });
}

const H = 768, I = 3072, LAYERS = 12, HEADS = 12;
/** FLOPs of one forward: the four GEMM classes per layer, and attention's QK^T and PV. */
function flops(B, L) {
  const M = B * L;
  return { gemm: LAYERS * 2 * M * H * (4 * H + 2 * I), attention: LAYERS * 4 * B * L * L * H };
}
const PROFILE_RE = /forward (\d+)x(\d+): ([\d.]+) s = gemm ([\d.]+) s \(([\d.]+) GFLOP\/s\) \+ attention ([\d.]+) s \+ layernorm ([\d.]+) s \+ other ([\d.]+) s/;

function bench(B, L, iters) {
  const runs = [];
  for (let r = 0; r < Number(a.repeat); r++) {
    const args = [path.join(root, 'dist/cli.js'), 'bench', '--model-dir', modelDir, '--batch-size', String(B), '--seq-len', String(L),
      '--threads', String(threads), '--warmup', '1', '--iters', String(iters), '--json'];
    const p = spawnSync(process.execPath, args, { encoding: 'utf8', env: { ...process.env, EDU_TRAIN_PROFILE: '1' }, maxBuffer: 64 << 20 });
    if (p.status !== 0) throw new Error(`edu-train bench failed: ${p.stderr}`);
    const result = JSON.parse(p.stdout);
    const profiles = p.stderr.split('\n').map((l) => PROFILE_RE.exec(l)).filter(Boolean)
      .map((m) => ({ total: +m[3], gemm: +m[4], gemmGflops: +m[5], attention: +m[6], layernorm: +m[7], other: +m[8] }));
    runs.push({ result, profiles });
    const e = result.eduTrain, o = result.onnxRuntime;
    console.log(`  run ${r + 1}: ${B}x${L} edu-train ${e.tokensPerSecond.toFixed(0)} tok/s (best ${e.tokensPerSecondBest.toFixed(0)}), ` +
      `onnxruntime ${o.tokensPerSecond.toFixed(0)} (best ${o.tokensPerSecondBest.toFixed(0)}), ratio ${result.ratio.toFixed(2)} (best ${result.ratioBest.toFixed(2)}), ` +
      `load ${result.machine.loadAverage1m.toFixed(1)}`);
  }
  return runs;
}

function summary(label, B, L, runs) {
  const best = (f) => Math.max(...runs.map((r) => f(r.result)));
  const minMs = (f) => Math.min(...runs.map((r) => f(r.result)));
  const eduBest = best((r) => r.eduTrain.tokensPerSecondBest), ortBest = best((r) => r.onnxRuntime.tokensPerSecondBest);
  const eduCpu = minMs((r) => Math.min(...r.eduTrain.iterationCpuMs)), ortCpu = minMs((r) => Math.min(...r.onnxRuntime.iterationCpuMs));
  const f = flops(B, L), total = f.gemm + f.attention;
  const eduMs = minMs((r) => r.eduTrain.msPerBatchMin), ortMs = minMs((r) => r.onnxRuntime.msPerBatchMin);
  const pooled = runs.map((r) => r.result.pooled);
  const out = {
    label, batch: B, seqLen: L, threads,
    eduTrain: { tokensPerSecondBest: eduBest, msPerBatchMin: eduMs, gflops: total / (eduMs / 1e3) / 1e9, cpuMsMin: eduCpu },
    onnxRuntime: { tokensPerSecondBest: ortBest, msPerBatchMin: ortMs, gflops: total / (ortMs / 1e3) / 1e9, cpuMsMin: ortCpu },
    ratioBest: eduBest / ortBest,
    // Process CPU time (all threads) of the cheapest iteration: what the work costs when the cores are
    // not shared. ORT's pool spins while waiting, so its CPU time includes some spinning.
    tokensPerCpuSecondTimesThreads: { eduTrain: (B * L) / (eduCpu / 1e3 / threads), onnxRuntime: (B * L) / (ortCpu / 1e3 / threads) },
    ratioMedians: runs.map((r) => r.result.ratio),
    pooledMaxAbsDiff: Math.max(...pooled.map((p) => p.maxAbsDiff)),
    pooledCosineMin: Math.min(...pooled.map((p) => p.cosineMin)),
  };
  console.log(`\n== ${label}: batch ${B} x ${L}, ${threads} threads (best of ${runs.length} runs)`);
  console.log(`  edu-train   ${eduBest.toFixed(0).padStart(7)} tokens/s, ${eduMs.toFixed(1).padStart(8)} ms/batch, ${out.eduTrain.gflops.toFixed(1)} GFLOP/s, cpu ${eduCpu.toFixed(0)} ms/iteration`);
  console.log(`  onnxruntime ${ortBest.toFixed(0).padStart(7)} tokens/s, ${ortMs.toFixed(1).padStart(8)} ms/batch, ${out.onnxRuntime.gflops.toFixed(1)} GFLOP/s, cpu ${ortCpu.toFixed(0)} ms/iteration`);
  console.log(`  ratio edu-train / onnxruntime (best vs best): ${out.ratioBest.toFixed(2)}x; per-run median ratios ${out.ratioMedians.map((x) => x.toFixed(2)).join(', ')}`);
  const cpuT = out.tokensPerCpuSecondTimesThreads;
  console.log(`  from CPU time (tokens / (cpu s / ${threads})): edu-train ${cpuT.eduTrain.toFixed(0)}, onnxruntime ${cpuT.onnxRuntime.toFixed(0)} tokens/s -> ratio ${(cpuT.eduTrain / cpuT.onnxRuntime).toFixed(2)}x`);
  console.log(`  pooled (mean): max abs diff ${out.pooledMaxAbsDiff.toExponential(2)}, cosine min ${out.pooledCosineMin.toFixed(8)}`);

  // The fastest edu-train forward's split, with achieved GFLOP/s per kernel class.
  const prof = runs.flatMap((r) => r.profiles).sort((x, y) => x.total - y.total)[0];
  if (prof) {
    const pk = peak?.peak_gflops_from_clock;
    const pct = (g) => (pk ? ` = ${((100 * g) / pk).toFixed(0)} % of peak` : '');
    const gemmG = f.gemm / prof.gemm / 1e9, attG = f.attention / prof.attention / 1e9;
    out.profile = { ...prof, gemmGflopsComputed: gemmG, attentionGflops: attG, peakGflops: pk ?? null };
    console.log(`  edu-train profile of the fastest forward (EDU_TRAIN_PROFILE=1): total ${prof.total.toFixed(3)} s`);
    console.log(`    gemm      ${prof.gemm.toFixed(3)} s (${((100 * prof.gemm) / prof.total).toFixed(1)} %)  ${(f.gemm / 1e9).toFixed(1)} GFLOP -> ${gemmG.toFixed(1)} GFLOP/s${pct(gemmG)}`);
    console.log(`    attention ${prof.attention.toFixed(3)} s (${((100 * prof.attention) / prof.total).toFixed(1)} %)  ${(f.attention / 1e9).toFixed(1)} GFLOP -> ${attG.toFixed(1)} GFLOP/s${pct(attG)}`);
    console.log(`    layernorm ${prof.layernorm.toFixed(3)} s (${((100 * prof.layernorm) / prof.total).toFixed(1)} %)`);
    console.log(`    other     ${prof.other.toFixed(3)} s (${((100 * prof.other) / prof.total).toFixed(1)} %)`);
  }
  return out;
}

console.log(`\nthroughput: batch 32 x 128, ${threads} threads, ${a.iters} timed iterations per run`);
const thr = summary('throughput', 32, 128, bench(32, 128, Number(a.iters)));
console.log(`\nlatency: batch 1 x 128, ${threads} threads, ${a['latency-iters']} timed iterations per run`);
const lat = summary('latency', 1, 128, bench(1, 128, Number(a['latency-iters'])));

const report = { date: new Date().toISOString(), lscpuModel, peak, throughput: thr, latency: lat };
if (a['json-out']) writeFileSync(a['json-out'], JSON.stringify(report, null, 2) + '\n');
