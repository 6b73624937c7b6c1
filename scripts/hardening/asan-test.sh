#!/usr/bin/env bash
# Runs the test suite against the AddressSanitizer + UndefinedBehaviorSanitizer build of the addon
# (build-asan/, `npm run build:native:asan`): every test file by default, as the second pass of `npm test`.
# Any ASan / UBSan report aborts the process and fails the run; reports are also written to $ASAN_LOG_DIR
# (default: a fresh folder under /tmp) as edu-asan.<pid> / edu-ubsan.<pid>, and any report there fails it.
# Child processes (`node dist/cli.js ...`) inherit the preloaded runtimes and the instrumented addon; the
# tests strip them for Chromium and the local Slurm cluster (test/helpers/native-env.ts).
#
#   scripts/hardening/asan-test.sh                  # the whole suite
#   scripts/hardening/asan-test.sh test/foo.test.ts # some files
set -euo pipefail
cd "$(dirname "$0")/../.."
export ASAN_LOG_DIR="${ASAN_LOG_DIR:-$(mktemp -d /tmp/edu-asan-logs.XXXXXX)}"
# shellcheck source=asan-env.sh
. scripts/hardening/asan-env.sh
files=("$@")
# The suite's timeouts are sized for the ordinary build; instrumented kernels run about 2-4x slower.
export EDU_TRAIN_TEST_TIME_SCALE="${EDU_TRAIN_TEST_TIME_SCALE:-4}"
echo "asan-test: addon $EDU_TRAIN_ADDON; reports in $ASAN_LOG_DIR"
status=0
npx vitest run ${files[@]+"${files[@]}"} || status=$?
reports=$(ls "$ASAN_LOG_DIR" 2>/dev/null | grep -E '^edu-(asan|ubsan)\.' || true)
if [ -n "$reports" ]; then
  echo "asan-test: sanitizer reports:" >&2
  for r in $reports; do echo "== $r" >&2; head -40 "$ASAN_LOG_DIR/$r" >&2; done
  status=1
fi
if [ -z "$reports" ]; then
  if [ $status -eq 0 ]; then echo "asan-test: OK, all tests passed, no sanitizer reports"
  else echo "asan-test: no sanitizer reports, but tests failed (exit $status); see above" >&2; fi
fi
exit $status
