#!/bin/bash
# tests/guest/run-all with fake guest tests: a test that hangs once (its own "did not finish
# within" message) gets a HUNG line and a second run, and passes on it ("second run"); a test
# that hangs twice fails; a test that fails any other way fails at once, with no second run;
# AMBER_GUEST_NO_RETRY=1 turns the second run off.
#   guest_retry.sh          (AMBER_SRCDIR or the script's repository)
set -uo pipefail
REPO=${AMBER_SRCDIR:-$(cd "$(dirname "$0")/../../.." && pwd)}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

mkdir -p "$T/repo/tests/guest" "$T/build"
cp "$REPO/tests/guest/run-all" "$T/repo/tests/guest/"
# counts its runs in BUILD/NAME.runs; hangs on the runs listed in its HANG_ON
fake() {
  cat >"$T/repo/tests/guest/$1.sh" <<EOT
#!/bin/bash
n=\$(( \$(cat "\$AMBER_BUILD/$1.runs" 2>/dev/null || echo 0) + 1 ))
echo \$n >"\$AMBER_BUILD/$1.runs"
case " $2 " in *" \$n "*) echo "FAIL: amber did not finish within 1 s"; exit 1 ;; esac
[ "$3" = broken ] && { echo "FAIL: wrong output"; exit 1; }
echo PASS
EOT
  chmod +x "$T/repo/tests/guest/$1.sh"
}
fake once "1" ok
fake twice "1 2" ok
fake broken "" broken
out=$("$T/repo/tests/guest/run-all" "$T/build" 2>&1)
echo "$out"
echo "$out" | grep -q '^HUNG once ' || fail "no HUNG line for the first hang"
echo "$out" | grep -q '^PASS once (.*second run)' || fail "a test that hung once did not pass on its second run"
echo "$out" | grep -q '^FAIL twice ' || fail "a test that hung twice did not fail"
echo "$out" | grep -q '^FAIL broken ' || fail "a broken test did not fail"
[ "$(cat "$T/build/broken.runs")" = 1 ] || fail "a test that failed without hanging ran again"
[ "$(cat "$T/build/twice.runs")" = 2 ] || fail "a test that hung ran $(cat "$T/build/twice.runs") times, not 2"
echo "$out" | grep -q '^GUEST-RESULTS passed=1 failed=2 skipped=0$' || fail "wrong GUEST-RESULTS line"
rm -f "$T"/build/*.runs
out=$(AMBER_GUEST_NO_RETRY=1 "$T/repo/tests/guest/run-all" "$T/build" once 2>&1)
echo "$out" | grep -q '^FAIL once ' || fail "AMBER_GUEST_NO_RETRY=1: a hang was run again"
[ $fails = 0 ] && echo "PASS" || exit 1
