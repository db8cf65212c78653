#!/bin/bash
# timeout: 60
# Software breakpoints (int3 written by the stub, KVM_GUESTDBG_USE_SW_BP): one planted at
# gdb_tick while the guest is still in 32-bit mode without paging is hit in long mode with
# rip on the symbol, and hit again on the next iteration (gdb steps over it and plants it
# again); the values the guest wrote are read back. The guest's own int3 (not gdb's) that
# KVM hands to amber while gdb has a breakpoint planted goes back to the guest's #BP
# handler, and the guest goes on to hit gdb's breakpoint on gdb_spin_end. When the guest
# powers off under gdb, gdb is told the program exited (W00) and amber exits 0.
# The nested test machine's QEMU/TCG gives a nested guest's int3 to the guest's IDT
# without checking the #BP exception intercept (it checks the INTn intercept instead), so
# there the first breakpoint reaches the guest's handler ("#BP reached the guest"): the
# test then skips, saying so. Anywhere else that marker is a failure.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/gdb.bash"
need_kvm
need_amber
need_pvh_gdb
amber_bg 50 --kernel "$PVH_GDB" --memory 64M --gdb "unix:$GDB_SOCK" --gdb-wait
gdb_fg 40 "$GDB_SOCK" "$PVH_GDB" -ex "target remote $GDB_SOCK" \
  -ex 'break *gdb_tick' \
  -ex 'continue' \
  -ex 'printf "BP1=%#lx TICK=%#lx COUNTER1=%ld TICKS1=%ld\n", $pc, (long)&gdb_tick, *(long *)&gdb_counter, *(long *)&gdb_ticks' \
  -ex 'continue' \
  -ex 'printf "BP2=%#lx COUNTER2=%ld TICKS2=%ld\n", $pc, *(long *)&gdb_counter, *(long *)&gdb_ticks' \
  -ex 'delete' \
  -ex 'break *gdb_spin_end' \
  -ex 'set var *(int *)&gdb_release = 1' \
  -ex 'continue' \
  -ex 'printf "BP3=%#lx END=%#lx\n", $pc, (long)&gdb_spin_end' \
  -ex 'delete' \
  -ex 'continue'
amber_wait
if grep -q 'PVH-GUEST: #BP reached the guest' "$SERIAL"; then
  [ "${AMBER_KVMBOX:-}" = 1 ] &&
    skip "the nested test machine's QEMU/TCG delivers a nested guest's int3 to the guest instead of KVM's #BP intercept: software breakpoints cannot be hit here"
  fail "gdb's int3 reached the guest: KVM did not intercept #BP"
fi
expect_eq "rip at the first breakpoint stop" "$(val BP1)" "$(val TICK)"
expect_eq "gdb_counter at the first stop" "$(val COUNTER1)" 1
expect_eq "gdb_ticks at the first stop (gdb_tick not run yet)" "$(val TICKS1)" 0
expect_eq "rip at the second breakpoint stop" "$(val BP2)" "$(val TICK)"
expect_eq "gdb_counter at the second stop" "$(val COUNTER2)" 2
expect_eq "gdb_ticks at the second stop" "$(val TICKS2)" 1
grep -q 'Breakpoint 1, .*gdb_tick' "$GDB_OUT" || fail "gdb did not report breakpoint 1 at gdb_tick"
grep -q 'PVH-GUEST: own int3 handled' "$SERIAL" || fail "the guest's own int3 did not reach its handler"
expect_eq "rip at the breakpoint on gdb_spin_end" "$(val BP3)" "$(val END)"
grep -q 'exited normally' "$GDB_OUT" || fail "gdb was not told that the guest exited"
grep -q 'PVH-GUEST: released by gdb' "$SERIAL" || fail "the guest did not run to its end"
[ "$AMBER_RC" = 0 ] || fail "amber exited $AMBER_RC (expected 0)"
echo PASS
