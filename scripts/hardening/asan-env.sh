#!/usr/bin/env bash
# Environment for running Node with the ASan + UBSan addon (build-asan/, from `npm run build:native:asan`).
# Source it: `. scripts/hardening/asan-env.sh`. The sanitizer runtimes must be loaded before anything else,
# hence LD_PRELOAD; Node itself is not instrumented and keeps memory until exit, so leak detection is off
# here (scripts/hardening/leak-check.sh does leaks with valgrind).
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
addon="$root/build-asan/Debug/edu_train.node"
[ -f "$addon" ] || addon="$root/build-asan/Release/edu_train.node"
if [ ! -f "$addon" ]; then
  echo "asan-env: no sanitizer build in build-asan/; run: npm run build:native:asan" >&2
  return 1 2>/dev/null || exit 1
fi
cc="${CXX:-c++}"
libasan="$("$cc" -print-file-name=libasan.so)"
libubsan="$("$cc" -print-file-name=libubsan.so)"
export EDU_TRAIN_ADDON="$addon"
export LD_PRELOAD="$libasan:$libubsan${LD_PRELOAD:+:$LD_PRELOAD}"
# protect_shadow_gap=0: the CUDA runtime maps device memory where ASan keeps its shadow gap (GPU machines).
export ASAN_OPTIONS="detect_leaks=0:protect_shadow_gap=0:abort_on_error=1:halt_on_error=1:detect_stack_use_after_return=0:allocator_may_return_null=1:handle_segv=1:symbolize=1:log_path=${ASAN_LOG_DIR:-/tmp}/edu-asan${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1:log_path=${ASAN_LOG_DIR:-/tmp}/edu-ubsan${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
