#!/bin/bash
# timeout: 150
# amber boots the guest kit with 1 vCPU to userspace, the guest sees 1 CPU and
# its memory, powers off through ACPI, and amber exits 0.
. "$(dirname "$0")/lib.bash"
need_kvm
need_amber
out=$TMPD/out
start=$(date +%s%N)
timeout -k 5 120 "$AMBER" run --kernel "$KIT/bzImage" --initrd "$KIT/initramfs.cpio" \
  --cmdline "$CMDLINE_BASE amber.test=hello" --cpus 1 --memory 256M --serial stdio \
  </dev/null >"$out" 2>&1
rc=$?
echo "amber exit $rc after $((($(date +%s%N) - start) / 1000000)) ms"
tr -d '\r' <"$out" | tail -n 40
[ $rc = 124 ] && fail "amber did not finish within 120 s"
grep -q 'AMBER-GUEST: userspace' "$out" || fail "no userspace marker"
grep -q 'AMBER-TEST hello: PASS' "$out" || fail "scenario hello did not pass"
grep -Eq 'cpus?[ =:]+1\b|nproc[ =:]+1\b' "$out" || echo "note: CPU count line not recognised"
[ $rc = 0 ] || fail "amber exited $rc after the guest powered off (expected 0)"
echo "PASS"
