#!/usr/bin/env bash
# LeakSanitizer pass over the native code: the load/run/dispose loop (scripts/hardening/leak-loop.mjs) and
# the native test files, against the ASan build (build-asan/, `npm run build:native:asan`), with
# detect_leaks=1. Node itself (not instrumented) keeps some allocations until exit, so a report only counts
# when one of its stacks goes through the addon (edu_train.node, edu::, native/, kernels/).
#
#   scripts/hardening/leak-check.sh [ITERATIONS]     (default 200 rounds of the loop)
set -euo pipefail
cd "$(dirname "$0")/../.."
iterations="${1:-200}"
export ASAN_LOG_DIR="${ASAN_LOG_DIR:-$(mktemp -d /tmp/edu-lsan-logs.XXXXXX)}"
# The model is generated before the sanitizer runtime is preloaded (Node's own exit-time leaks would fail it).
model="$(mktemp -d /tmp/edu-lsan-model.XXXXXX)/tiny"
node --input-type=module -e "
const { generateModelFolder } = await import('./dist/model/generate.js');
generateModelFolder('$model', { modelType: 'roberta', tokenizerDir: '${EDU_TRAIN_SHARED:-../shared}/models/tokenizer-only/klue-roberta-tokenizer', seed: 1 });"
# shellcheck source=asan-env.sh
. scripts/hardening/asan-env.sh
export ASAN_OPTIONS="${ASAN_OPTIONS/detect_leaks=0/detect_leaks=1}:exitcode=23"
echo "leak-check: $iterations rounds of leak-loop.mjs under LeakSanitizer (reports in $ASAN_LOG_DIR)"
node --expose-gc scripts/hardening/leak-loop.mjs --model "$model" --iterations "$iterations" --warmup 10 || true
echo "leak-check: native test files under LeakSanitizer"
npx vitest run test/native-hardening.test.ts test/native-boundary.test.ts test/head-adamw.test.ts test/gradcache.test.ts test/kernels.test.ts >/dev/null 2>&1 || true
rm -rf "$(dirname "$model")"
unset LD_PRELOAD  # the report scan below runs ordinary tools (awk, grep), which must not get the ASan runtime
ours=0
for f in "$ASAN_LOG_DIR"/edu-asan.* "$ASAN_LOG_DIR"/edu-ubsan.*; do
  [ -f "$f" ] || continue
  if grep -qE "ERROR: AddressSanitizer|runtime error" "$f"; then echo "== $f (memory error)"; head -60 "$f"; ours=$((ours + 1)); continue; fi
  # One leak record = "Direct/Indirect leak of ..." up to the blank line; keep those with an addon frame.
  hits=$(awk 'BEGIN{RS=""} /leak of/ && /(edu_train\.node|edu::|\/native\/|\/kernels\/)/' "$f")
  if [ -n "$hits" ]; then echo "== $f (leak through the addon)"; echo "$hits" | head -80; ours=$((ours + 1)); fi
done
total=$(ls "$ASAN_LOG_DIR" | wc -l)
if [ "$ours" -eq 0 ]; then
  echo "leak-check: OK: no leak or memory error through the addon ($total report files from Node's own allocations ignored)"
else
  echo "leak-check: $ours report(s) through the addon" >&2
  exit 1
fi
