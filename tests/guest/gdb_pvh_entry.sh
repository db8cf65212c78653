#!/bin/bash
# timeout: 60
# --gdb-wait holds the guest before its first instruction: stock gdb (batch mode, the
# guest's ELF as symbol file) connects over a UNIX socket and finds rip at the PVH entry
# point with nothing printed yet, in 32-bit protected mode with paging off; stepi moves rip
# to the next instruction (and executes it); x/16xb reads known bytes; the high-half alias
# is not mapped yet (error, no crash). gdb writes gdb_release and detaches: the guest runs
# to its end and amber exits 0.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/gdb.bash"
need_kvm
need_amber
need_pvh_gdb
amber_bg 50 --kernel "$PVH_GDB" --memory 64M --gdb "unix:$GDB_SOCK" --gdb-wait
gdb_fg 40 "$GDB_SOCK" "$PVH_GDB" -ex "target remote $GDB_SOCK" \
  -ex 'printf "PC0=%#lx ENTRY=%#lx CR0=%#lx\n", $pc, (long)&pvh_start, $cr0' \
  -ex "shell if grep -q PVH-GUEST $SERIAL; then echo EARLY=1; else echo EARLY=0; fi" \
  -ex 'stepi' \
  -ex 'printf "PC1=%#lx NEXT=%#lx\n", $pc, (long)&pvh_after_cld' \
  -ex 'stepi' \
  -ex 'printf "PC2=%#lx ESP=%#lx\n", $pc, $rsp' \
  -ex 'x/16xb &gdb_pattern' \
  -ex 'printf "ALIAS=%#lx\n", 0xffffffff80000000 + (long)&gdb_pattern' \
  -ex 'x/16xb 0xffffffff80000000 + (long)&gdb_pattern' \
  -ex 'set var *(int *)&gdb_release = 1' \
  -ex 'detach'
amber_wait
expect_eq "rip at connect (PVH entry)" "$(val PC0)" "$(val ENTRY)"
expect_eq "guest output before gdb let it run" "$(val EARLY)" 0
expect_eq "CR0 at entry (PE and ET, paging off)" "$(( $(val CR0) & 0x80000001 ))" 1
expect_eq "rip after stepi" "$(val PC1)" "$(val NEXT)"
expect_eq "esp after stepping mov \$0x80000,%esp" "$(val ESP)" 0x80000
expect_eq "rip after the second stepi (a 5-byte mov)" "$(val PC2)" "$(( $(val NEXT) + 5 ))"
[ "$(hex16 '0x[0-9a-f]+ <gdb_pattern')" = "$PATTERN16" ] || fail "x/16xb &gdb_pattern: wrong bytes"
grep -q "Cannot access memory at address $(val ALIAS)\$" "$GDB_OUT" ||
  fail "the unmapped high-half address was not reported as inaccessible"
grep -q 'PVH-GUEST: released by gdb' "$SERIAL" || fail "the guest did not run to its end after detach"
[ "$AMBER_RC" = 0 ] || fail "amber exited $AMBER_RC (expected 0)"
echo PASS
