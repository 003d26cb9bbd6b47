# Shared by the CLI test scripts: pass/fail counters and expect_error.
# expect_error NAME PATTERN ARGS...: `$bin ARGS` fails with exit code 1 and exactly one stderr line, starting with
# "lowbit: error: " and matching PATTERN (an extended regular expression). Needs $bin and $tmp.
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }
expect_error() {
  local name=$1 pattern=$2
  shift 2
  "$bin" "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  local lines
  lines=$(wc -l <"$tmp/err")
  if [ "$rc" -ne 1 ]; then bad "$name: exit code $rc, expected 1"; return; fi
  if [ "$lines" -ne 1 ]; then bad "$name: $lines stderr lines, expected 1: $(cat "$tmp/err")"; return; fi
  if ! grep -q "^lowbit: error: " "$tmp/err"; then bad "$name: no 'lowbit: error:' prefix: $(cat "$tmp/err")"; return; fi
  if ! grep -qE -e "$pattern" "$tmp/err"; then bad "$name: message does not match /$pattern/: $(cat "$tmp/err")"; return; fi
  ok
}
