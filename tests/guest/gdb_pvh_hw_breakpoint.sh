#!/bin/bash
# timeout: 60
# Debug registers through KVM_SET_GUEST_DEBUG: a write watchpoint on gdb_counter stops the
# guest right after its first write (old value 0, new value 1), and a hardware breakpoint
# (hbreak) on gdb_hw_target stops it there after the loop with gdb_counter at 5. gdb sets
# gdb_spin_limit first, so a debug register that never fires ends in the guest powering
# off (gdb: exited normally) instead of a hang.
# The nested test machine's QEMU/TCG before 9.1 loads the VMCB's DR7 on VMRUN without
# arming it (fixed by "target/i386: disable/enable breakpoints on vmentry/vmexit", 2024),
# so there no nested guest's debug register ever fires: the test then skips, saying so.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/gdb.bash"
need_kvm
need_amber
need_pvh_gdb
amber_bg 50 --kernel "$PVH_GDB" --memory 64M --gdb "unix:$GDB_SOCK" --gdb-wait
gdb_fg 40 "$GDB_SOCK" "$PVH_GDB" -ex "target remote $GDB_SOCK" \
  -ex 'set var *(long *)&gdb_spin_limit = 1000' \
  -ex 'watch *(long *)&gdb_counter' \
  -ex 'continue' \
  -ex 'printf "W-PC=%#lx W-COUNTER=%ld\n", $pc, *(long *)&gdb_counter' \
  -ex 'delete' \
  -ex 'hbreak *gdb_hw_target' \
  -ex 'continue' \
  -ex 'printf "H-PC=%#lx TARGET=%#lx H-COUNTER=%ld\n", $pc, (long)&gdb_hw_target, *(long *)&gdb_counter' \
  -ex 'delete' \
  -ex 'continue'
amber_wait
[ "$AMBER_RC" = 0 ] || fail "amber exited $AMBER_RC (expected 0)"
grep -q 'PVH-GUEST: released by gdb' "$SERIAL" || fail "the guest did not run to its end"
grep -q 'Hardware watchpoint 1: \*(long \*)&gdb_counter' "$GDB_OUT" ||
  fail "gdb did not set a hardware watchpoint"
if [ -z "$(val W-PC)" ] && grep -q 'exited normally' "$GDB_OUT"; then
  # The guest ran to its end under the watchpoint: no debug register fired.
  if [ "${AMBER_KVMBOX:-}" = 1 ]; then
    # the outer machine's QEMU (tests/kvmbox/run passes its version on), not the one in here
    v=${AMBER_KVMBOX_QEMU_VERSION:-$(qemu-system-x86_64 --version 2>/dev/null |
      sed -n '1s/.*version \([0-9][0-9.]*\).*/\1/p')}
    IFS=. read -r major minor _ <<<"$v"
    if [ -n "$major" ] && { [ "$major" -lt 9 ] || { [ "$major" = 9 ] && [ "$minor" -lt 1 ]; }; }; then
      skip "the nested test machine's QEMU $major.$minor (TCG < 9.1) never arms a nested guest's DR7: hardware breakpoints and watchpoints cannot fire here"
    fi
  fi
  fail "the write watchpoint never fired (the guest ran to its end)"
fi
grep -q 'New value = 1' "$GDB_OUT" || fail "the watchpoint did not report the write of 1"
expect_eq "gdb_counter at the watchpoint stop" "$(val W-COUNTER)" 1
# gdb says "Hardware assisted" when it sets the hbreak; a hit reads "Breakpoint 2, ..."
grep -q 'Hardware assisted breakpoint 2 at' "$GDB_OUT" || fail "gdb did not set a hardware breakpoint"
grep -q 'Breakpoint 2, .*gdb_hw_target' "$GDB_OUT" || fail "the hbreak was not reported"
expect_eq "rip at the hbreak stop" "$(val H-PC)" "$(val TARGET)"
expect_eq "gdb_counter at the hbreak stop" "$(val H-COUNTER)" 5
grep -q 'exited normally' "$GDB_OUT" || fail "gdb was not told that the guest exited"
echo PASS
