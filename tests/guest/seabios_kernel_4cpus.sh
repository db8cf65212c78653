#!/bin/bash
# timeout: 200
# SeaBIOS with 4 vCPUs: SeaBIOS counts the APs (INIT-SIPI-SIPI, then parks them
# in HLT) against fw_cfg/CMOS, Linux starts them again; the guest sees 4 CPUs
# (from the MADT that came through the table loader) and runs work on each.
. "$(dirname "$0")/lib.bash"
need_kvm
need_amber
BIOS=/usr/share/seabios/bios-256k.bin
[ -r "$BIOS" ] || fail "$BIOS missing (Debian package seabios; tools/deps.sh installs it)"
out=$TMPD/out
start=$(date +%s%N)
timeout -k 5 170 "$AMBER" run --firmware "$BIOS" --kernel "$KIT/bzImage" \
  --initrd "$KIT/initramfs.cpio" --cmdline "$CMDLINE_BASE amber.test=smp amber.cpus=4" \
  --cpus 4 --memory 256M --serial stdio </dev/null >"$out" 2>&1
rc=$?
echo "amber exit $rc after $((($(date +%s%N) - start) / 1000000)) ms"
tr -d '\r' <"$out" | tail -n 30
[ $rc = 124 ] && fail "amber did not finish within 170 s"
grep -q 'SMP nproc=4 cpuinfo=4' "$out" || fail "guest does not see 4 CPUs"
for c in 1 2 3; do grep -q "SMP cpu$c ran-on=$c" "$out" || fail "no work ran on CPU $c"; done
grep -q 'AMBER-TEST smp: PASS' "$out" || fail "scenario smp did not pass"
[ $rc = 0 ] || fail "amber exited $rc (expected 0)"
echo "PASS"
