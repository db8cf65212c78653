#!/bin/bash
# timeout: 90
# An ELF kernel with a PVH note boots in 32-bit mode with %ebx = hvm_start_info,
# prints on COM1 and powers off through ACPI: amber exits 0.
. "$(dirname "$0")/lib.bash"
need_kvm
[ -x "$AMBER" ] || skip "amber is not built"
G=$AMBER_BUILD/tests/guest/pvh_hello
[ -f "$G" ] || fail "$G missing"
timeout -k 5 60 "$AMBER" run --kernel "$G" --memory 64M </dev/null >"$TMPD/out" 2>&1
rc=$?
cat "$TMPD/out"
grep -q 'PVH-GUEST: hello from 32-bit protected mode' "$TMPD/out" || fail "no PVH marker"
[ $rc = 0 ] || fail "amber exited $rc (expected 0 after the guest's S5)"
echo PASS
