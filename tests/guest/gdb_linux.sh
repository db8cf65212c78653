#!/bin/bash
# timeout: 90
# (In the nested test machine a Linux boot alone takes ~20 s and gdb ~8-13 s to start;
# they share its two CPUs, so gdb attaches 30-40 s in.)
# gdb attaches to the Linux guest kit while it boots (no vmlinux needed) and stops it:
# registers are there (long mode: CR0.PG, EFER.LMA), and stepi moves rip with the kernel's
# interrupts live (KVM_GUESTDBG_BLOCKIRQ or the IF fallback). gdb continues, the guest
# counts, and Ctrl-C stops it: the count stops advancing while gdb holds it, and kernel
# memory at rip read through the kernel-text mapping equals the same bytes read through the
# direct map (two walks of Linux's own page tables). After detach the guest counts on; QMP
# quit ends amber with exit 0.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/gdb.bash"
need_kvm
need_amber
amber_bg 85 --kernel "$KIT/bzImage" --initrd "$KIT/initramfs.cpio" --memory 256M \
  --cmdline "$CMDLINE_BASE nokaslr amber.test=counter amber.count=100000" \
  --gdb "unix:$GDB_SOCK" --control "$CTL_SOCK"
note "amber and gdb starting"
# the direct map's base without KASLR (4- or 5-level paging); kernel text is at
# __START_KERNEL_map (0xffffffff80000000) + physical
dmap='(($cr4 & 0x1000) ? 0xff11000000000000 : 0xffff888000000000)'
gdb_bg 75 "$GDB_SOCK" -ex "target remote $GDB_SOCK" \
  -ex 'printf "PC0=%#lx RCX0=%#lx CR0=%#lx EFER=%#lx\n", $pc, $rcx, $cr0, $efer' \
  -ex 'x/i $pc' \
  -ex 'stepi' \
  -ex 'printf "PC1=%#lx RCX1=%#lx\n", $pc, $rcx' \
  -ex "shell echo continuing >$TMPD/continuing" \
  -ex 'continue' \
  -ex 'printf "INT-PC=%#lx\n", $pc' \
  -ex "printf \"TEXT=%#lx DMAP=%#lx\\n\", *(long *)\$pc, *(long *)(\$pc - 0xffffffff80000000 + $dmap)" \
  -ex "shell sleep 0.3; echo HELD1=\$(grep -c '^COUNT' $SERIAL); sleep 0.8; echo HELD2=\$(grep -c '^COUNT' $SERIAL)" \
  -ex 'detach'
wait_for "$TMPD/continuing" continuing 70 || { gdb_wait; amber_wait; fail "gdb never got to continue the guest"; }
note "gdb continued"
n=$(grep -c '^COUNT' "$SERIAL")
wait_for "$SERIAL" "^COUNT $((n + 1))[^0-9]" 40 || { kill -INT "$GDB_PID"; gdb_wait; amber_wait; fail "the guest did not count under gdb"; }
note "guest counting; Ctrl-C"
kill -INT "$GDB_PID"
gdb_wait
note "gdb done"
after=$(grep -c '^COUNT' "$SERIAL")
wait_for "$SERIAL" "^COUNT $((after + 1))[^0-9]" 20 || { ctl "$CTL_SOCK" quit; amber_wait; fail "the guest did not count on after detach"; }
ctl "$CTL_SOCK" quit || fail "quit failed"
amber_wait
expect_eq "CR0.PG when gdb attached" "$(( $(val CR0) >> 31 & 1 ))" 1
expect_eq "EFER.LMA when gdb attached" "$(( $(val EFER) >> 10 & 1 ))" 1
pc0=$(val PC0) pc1=$(val PC1)
[ -n "$pc1" ] || fail "no rip after stepi"
if [ "$((pc1))" = "$((pc0))" ]; then
  # Intel SDM Vol. 3 §17.3.1.4: a REP string instruction traps after each iteration
  grep -qE "^=> $pc0:.*rep" "$GDB_OUT" && [ "$(( $(val RCX1) ))" = "$(( $(val RCX0) - 1 ))" ] ||
    fail "stepi did not move rip ($pc0), and it is not one iteration of a rep string instruction"
  echo "stepi ran one iteration of a rep string instruction (rcx $(val RCX0) -> $(val RCX1))"
fi
grep -q 'received signal SIGINT' "$GDB_OUT" || fail "Ctrl-C did not stop the guest"
if [ $(( $(val INT-PC) >> 63 & 1 )) = 1 ]; then
  [ -n "$(val TEXT)" ] && [ "$(val TEXT)" = "$(val DMAP)" ] ||
    fail "kernel text at rip ($(val TEXT)) differs from its direct-map alias ($(val DMAP))"
else
  echo "Ctrl-C stopped the guest in user space ($(val INT-PC)): no kernel-text check"
fi
expect_eq "COUNT lines while gdb held the guest (0.8 s apart)" "$(val HELD2)" "$(val HELD1)"
[ "$AMBER_RC" = 0 ] || fail "amber exited $AMBER_RC after quit"
echo PASS
