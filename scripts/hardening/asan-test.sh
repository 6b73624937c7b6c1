#!/usr/bin/env bash
# Runs the native-heavy test files against the AddressSanitizer + UndefinedBehaviorSanitizer build of the
# addon (build-asan/, `npm run build:native:asan`). Any ASan / UBSan report aborts the process and fails
# the run; reports are also written to $ASAN_LOG_DIR (default /tmp) as edu-asan.<pid> / edu-ubsan.<pid>.
#
#   scripts/hardening/asan-test.sh                 # the default file list below
#   scripts/hardening/asan-test.sh test/foo.test.ts # other files
set -euo pipefail
cd "$(dirname "$0")/../.."
export ASAN_LOG_DIR="${ASAN_LOG_DIR:-$(mktemp -d /tmp/edu-asan-logs.XXXXXX)}"
# shellcheck source=asan-env.sh
. scripts/hardening/asan-env.sh
files=("$@")
if [ ${#files[@]} -eq 0 ]; then
  files=(test/golden-forward.test.ts test/native-boundary.test.ts test/kernels.test.ts test/head-adamw.test.ts
         test/embed.test.ts test/native-hardening.test.ts)
fi
echo "asan-test: addon $EDU_TRAIN_ADDON; reports in $ASAN_LOG_DIR"
status=0
npx vitest run "${files[@]}" || status=$?
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
