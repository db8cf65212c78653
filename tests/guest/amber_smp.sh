#!/bin/bash
# timeout: 170
# With --cpus 2 the guest sees exactly 2 CPUs and runs work on both.
. "$(dirname "$0")/lib.bash"
need_kvm
need_amber
out=$TMPD/out
timeout -k 5 150 "$AMBER" run --kernel "$KIT/bzImage" --initrd "$KIT/initramfs.cpio" \
  --cmdline "$CMDLINE_BASE amber.test=smp amber.cpus=2" --cpus 2 --memory 256M \
  </dev/null >"$out" 2>&1
rc=$?
tr -d '\r' <"$out" | tail -n 30
grep -q 'SMP nproc=2 cpuinfo=2' "$out" || fail "guest does not see 2 CPUs"
grep -q 'SMP cpu1 ran-on=1' "$out" || fail "no work ran on CPU 1"
grep -q 'AMBER-TEST smp: PASS' "$out" || fail "scenario smp did not pass"
[ $rc = 0 ] || fail "amber exited $rc"
echo "PASS"
