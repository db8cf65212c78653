#!/bin/bash
# timeout: 90
# A guest that triple-faults ends amber with a clear message, the vCPU
# registers and exit code 4 (distinct from a clean poweroff).
. "$(dirname "$0")/lib.bash"
need_kvm
[ -x "$AMBER" ] || skip "amber is not built"
G=$AMBER_BUILD/tests/guest/pvh_triple
[ -f "$G" ] || fail "$G missing"
timeout -k 5 60 "$AMBER" run --kernel "$G" --memory 64M </dev/null >"$TMPD/out" 2>&1
rc=$?
cat "$TMPD/out"
grep -q 'PVH-GUEST: hello' "$TMPD/out" || fail "guest did not start"
grep -q 'triple-fault' "$TMPD/out" || fail "no triple-fault message"
grep -q 'rip ' "$TMPD/out" || fail "no register dump"
# KVM on AMD re-initializes a vCPU at a shutdown: a dump of INIT values must say so
if grep -q 'rip 000000000000fff0' "$TMPD/out"; then
  grep -q 'these are its INIT values' "$TMPD/out" || fail "INIT-state register dump without a note"
fi
[ $rc = 4 ] || fail "amber exited $rc (expected 4)"
echo PASS
