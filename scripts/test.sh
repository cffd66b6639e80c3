#!/usr/bin/env bash
# README command 2 (and what CI runs): install what is missing, build, and run
# the whole suite twice — a normal optimised build and an ASan+UBSan build —
# against real redis-server processes the tests start themselves.
# Ends with one plain line: "N passed, N failed".
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

scripts/install-deps.sh || exit 1

passed=0
failed=0
failed_names=()

# Tallies a build dir's meson test log (one JSON object per test).
tally() {
  local dir=$1 label=$2
  local counts
  counts=$(python3 - "$dir/meson-logs/testlog.json" "$label" <<'PY'
import json, sys
ok = bad = 0
names = []
for line in open(sys.argv[1]):
    t = json.loads(line)
    if t["result"] in ("OK", "EXPECTEDFAIL", "SKIP"):
        ok += 1
    else:
        bad += 1
        names.append(f'{sys.argv[2]}:{t["name"]}')
print(ok, bad, " ".join(names))
PY
)
  read -r ok bad names <<<"$counts"
  passed=$((passed + ok))
  failed=$((failed + bad))
  if [[ -n "${names:-}" ]]; then failed_names+=($names); fi
}

# run_suite DIR LABEL "MESON TEST ARGS" [meson setup options...]
run_suite() {
  local dir=$1 label=$2 test_args=$3
  shift 3
  echo "== $label build ($dir)"
  if ! scripts/build.sh "$dir" "$@"; then
    echo "build failed: $dir"
    failed=$((failed + 1))
    failed_names+=("$label:build")
    return
  fi
  # shellcheck disable=SC2086
  (cd "$dir" && meson test --num-processes 2 --print-errorlogs $test_args) || true
  tally "$dir" "$label"
}

# The optimised build runs everything, the one-node cluster runs included
# (suite "cluster", see tests/meson.build); the sanitizer build runs the
# standalone suites, which exercise the same code paths.
run_suite build release ""
# detect_leaks=1 is the default; halt_on_error makes UBSan findings fail the test.
export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
run_suite build-asan asan "--no-suite cluster" -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug

# The installed library must be consumable with pkg-config alone.
echo "== pkg-config consumer"
if scripts/check-install.sh build; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
  failed_names+=("install:pkg-config-consumer")
fi

if ((${#failed_names[@]})); then echo "failed: ${failed_names[*]}"; fi
echo "$passed passed, $failed failed"
((failed == 0))
