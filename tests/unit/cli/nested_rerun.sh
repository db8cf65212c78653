#!/bin/bash
# tools/nested-guest-tests.sh with a fake tests/kvmbox/run: a nested boot that hangs (exit
# 124) or stops without an exit status (exit 125, the CI failure of an outer machine reset
# during amber_ckpt_crash) gets the test it was running a HANG line and a new boot that runs
# it and the rest; a second hang or stop of the same test fails it; a boot that ends normally
# is not repeated. Also what tools/check.sh then counts.
#   nested_rerun.sh          (AMBER_SRCDIR or the script's repository)
set -uo pipefail
REPO=${AMBER_SRCDIR:-$(cd "$(dirname "$0")/../../.." && pwd)}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# The fake runner: boot number = how many times it ran; for each test after "--
# run-all BUILD", the plan (lines "BOOT NAME pass|fail|hang|stop") says what happens:
# pass/fail print run-all's line, hang exits 124 and stop 125 right there.
cat >"$T/fake-kvmbox" <<'EOF'
#!/bin/bash
boot=$(( $(cat "$FAKE_DIR/boots" 2>/dev/null || echo 0) + 1 ))
echo $boot >"$FAKE_DIR/boots"
while [ "$1" != -- ]; do shift; done
shift 3
echo "boot $boot: $*" >>"$FAKE_DIR/calls"
for n in "$@"; do
  what=$(awk -v b=$boot -v n="$n" '$1 == b && $2 == n { print $3 }' "$FAKE_DIR/plan")
  case "${what:-pass}" in
    pass) echo "PASS $n (0.1s)" ;;
    fail) echo "FAIL $n (exit 1, 0.1s; log x)" ;;
    hang) exit 124 ;;
    stop) echo "kvmbox: the nested machine stopped without reporting an exit status" >&2; exit 125 ;;
  esac
done
echo "GUEST-RESULTS"
EOF
chmod +x "$T/fake-kvmbox"

# run PLAN TESTS...: a fresh fake with PLAN, the script's output in $T/out, results in $T/res
run() {
  rm -f "$T/boots" "$T/calls"
  printf '%s\n' "$1" >"$T/plan"
  shift
  : >"$T/res"
  FAKE_DIR=$T AMBER_KVMBOX_RUN=$T/fake-kvmbox "$REPO/tools/nested-guest-tests.sh" \
    "$T/build" "$T/res" "$@" >"$T/out" 2>&1 || fail "exit status $? (want 0)"
}
has() { grep -qE "$1" "$T/res" || fail "$2: no line /$1/ in: $(tr '\n' '|' <"$T/res")"; }
hasnt() { ! grep -qE "$1" "$T/res" || fail "$2: unexpected line /$1/"; }
boots() { [ "$(cat "$T/boots")" = "$1" ] || fail "$2: $(cat "$T/boots") boots, want $1"; }

mkdir -p "$T/build"

run "" a b c
boots 1 "all pass"
has '^PASS c ' "all pass"
hasnt '^HANG' "all pass"

run "1 b stop" a b c
boots 2 "stop once"
has '^PASS a ' "stop once"
has '^HANG b: the nested test machine stopped while it ran' "stop once"
has '^PASS b ' "stop once"
has '^PASS c ' "stop once"
grep -q '^boot 2: b c$' "$T/calls" || fail "stop once: the second boot ran $(sed -n 2p "$T/calls")"

run "1 b hang" a b c
boots 2 "hang once"
has '^HANG b: the nested test machine hung while it ran' "hang once"
has '^PASS b ' "hang once"

run $'1 b stop\n2 b stop' a b c
boots 3 "stop twice"
has '^FAIL b \(the nested test machine stopped while it ran.*, the second time it ran\)' "stop twice"
has '^PASS c ' "stop twice"
grep -q '^boot 3: c$' "$T/calls" || fail "stop twice: the third boot ran $(sed -n 3p "$T/calls")"

run "1 a fail" a b
boots 1 "a test failing is no reason for another boot"
has '^FAIL a ' "failing test"

run $'1 a stop\n2 b stop\n3 c stop\n4 d stop' a b c d e
boots 4 "at most four boots"
hasnt '^PASS e ' "at most four boots"

[ $fails = 0 ] && echo "nested_rerun: all cases passed"
[ $fails = 0 ]
