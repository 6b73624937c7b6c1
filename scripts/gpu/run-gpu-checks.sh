#!/usr/bin/env bash
# GPU session entry point (see scripts/gpu/README.md). Run from the repository root on a machine with
# an NVIDIA GPU (sm_80+), nvcc 12/13, cmake, and python3 with numpy + safetensors (+ torch and
# transformers for the benchmark). Node.js is optional: when `node` and node_modules are present the
# JS GPU tests run too.
#
#   scripts/gpu/run-gpu-checks.sh [--golden DIR] [--out DIR] [--skip-bench] [--ptxas]
#
# Steps (each logs to $OUT_DIR, default ${OUT:-gpu-results}):
#   1. nvidia-smi; build the CUDA C API (cmake, EDU_NODE_ADDON=OFF) into build/capi/ with -Xptxas -v
#      (resource report: registers, spills per kernel -> ptxas.txt);
#   2. compute-sanitizer memcheck of one tiny golden forward (fp32 + bf16) when available;
#   3. the golden suite on the GPU (golden_gpu.py: fp32 within atol_hint, bf16 within rel L2 3e-2 and
#      max abs 0.1 x max|ref|);
#   4. the JS GPU tests (vitest test/device-cuda-golden.test.ts test/cuda-build.test.ts) if Node is here;
#   5. the benchmark vs PyTorch (bench_vs_torch.py -> bench_vs_torch.json).
set -uo pipefail
cd "$(dirname "$0")/../.."
GOLDEN="${GOLDEN:-../shared/golden}"
OUT_DIR="${OUT:-gpu-results}"
BENCH=1
while [ $# -gt 0 ]; do
  case "$1" in
    --golden) GOLDEN="$2"; shift 2 ;;
    --out) OUT_DIR="$2"; shift 2 ;;
    --skip-bench) BENCH=0; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT_DIR"
status=0
step() { echo; echo "=== $*"; }

step "machine"
nvidia-smi 2>&1 | tee "$OUT_DIR/nvidia-smi.txt" | head -15
nvcc --version | tail -2

step "build the CUDA C API (build/capi/)"
t0=$(date +%s)
cmake -S . -B build/capi -G Ninja -DCMAKE_BUILD_TYPE=Release -DEDU_NODE_ADDON=OFF -DEDU_CUDA_PTXAS_VERBOSE=ON \
  > "$OUT_DIR/cmake-configure.txt" 2>&1 || { cat "$OUT_DIR/cmake-configure.txt"; exit 1; }
cmake --build build/capi --target edu_cuda_capi -j "$(nproc)" > "$OUT_DIR/build.txt" 2>&1 || { tail -50 "$OUT_DIR/build.txt"; exit 1; }
echo "built in $(( $(date +%s) - t0 )) s"
grep -E "Compiling entry|registers|spill" "$OUT_DIR/build.txt" > "$OUT_DIR/ptxas.txt" || true
if grep -E "[1-9][0-9]* bytes spill" "$OUT_DIR/ptxas.txt"; then echo "note: spills above (see $OUT_DIR/ptxas.txt)"; else echo "ptxas: no spills"; fi

if command -v compute-sanitizer > /dev/null; then
  step "compute-sanitizer memcheck (bert-tiny, roberta-tiny)"
  compute-sanitizer --tool memcheck --error-exitcode 9 python3 scripts/gpu/golden_gpu.py --golden "$GOLDEN" \
    --out "$OUT_DIR/golden_sanitizer.json" > "$OUT_DIR/memcheck.txt" 2>&1
  rc=$?; tail -5 "$OUT_DIR/memcheck.txt"; [ $rc -eq 9 ] && { echo "memcheck found errors"; status=1; }
fi

step "golden suite on the GPU"
python3 scripts/gpu/golden_gpu.py --golden "$GOLDEN" --out "$OUT_DIR/golden_gpu.json" || status=1

if command -v node > /dev/null && [ -d node_modules ]; then
  step "JS GPU tests (addon + vitest)"
  (npx cmake-js compile --release --log-level warn && npx tsc -p tsconfig.json && \
   EDU_TRAIN_SHARED="$(cd "$GOLDEN/.." && pwd)" npx vitest run test/device-cuda-golden.test.ts test/cuda-build.test.ts test/device-select.test.ts test/device-batching.test.ts) \
   > "$OUT_DIR/vitest.txt" 2>&1 || status=1
  tail -15 "$OUT_DIR/vitest.txt"
else
  echo "(no node/node_modules here: JS GPU tests skipped; the golden suite above covers the kernels)"
fi

if [ $BENCH -eq 1 ]; then
  step "benchmark vs PyTorch (BERT-base, bf16, seq 512 x 256 and a 32..512 mix)"
  python3 scripts/gpu/bench_vs_torch.py --out "$OUT_DIR/bench_vs_torch.json" 2>&1 | tee "$OUT_DIR/bench.txt" || status=1
fi
echo; echo "results in $OUT_DIR (status $status)"
exit $status
