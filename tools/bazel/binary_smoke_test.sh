#!/usr/bin/env bash
# Starts a py_binary (a suite, the report, a benchmark) the way `bazel run` does: its
# launcher, its runfiles, the toolchain's Python. Then checks what it did. Used by the
# *_binary_test targets in experiments/BUILD and benchmarks/BUILD.
#
#   binary_smoke_test.sh check_args BINARY [FLAGS...]
#       imports everything and parses the flags (absl's --only_check_args): exit code 0
#   binary_smoke_test.sh run BINARY [FLAGS...]
#       a run (an --output_dir in $TEST_TMPDIR is added): exit code 0 and a round table
set -euo pipefail
mode="$1"
binary="$2"
shift 2
out="${TEST_TMPDIR:-$(mktemp -d)}/binary_smoke_test"
flags=("$@")
case "$mode" in
  check_args) flags+=(--only_check_args) ;;
  run) flags+=(--output_dir="$out") ;;
  *) echo "unknown mode $mode (check_args or run)" >&2; exit 2 ;;
esac

status=0
"$binary" "${flags[@]}" >"$out.stdout" 2>"$out.stderr" || status=$?
cat "$out.stdout"
fail() {
  tail -n 60 "$out.stderr" >&2
  echo "FAIL: $binary ${flags[*]}: $1" >&2
  exit 1
}
[ "$status" = 0 ] || fail "exit code $status"
if [ "$mode" = run ] && ! grep -q '^| round |' "$out.stdout"; then
  fail "no round table on stdout"
fi
echo "PASS: $binary ${flags[*]}"
