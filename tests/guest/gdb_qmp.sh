#!/bin/bash
# timeout: 60
# gdb and the VM's pause compose, with the stub started on demand:
# - QMP gdbserver starts the stub on a running VM (amber run without --gdb) and answers
#   its socket path; a second gdbserver is refused while one listens;
# - gdb attaches and stops the spinning guest; QMP stop (vm_pause) while gdb holds the VM
#   returns, and QMP cont does not let the guest run while gdb still holds it;
# - QMP stop again, then gdb continues: the guest stays paused until QMP cont, then runs
#   to its end; gdb is told the program exited and amber exits 0.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/gdb.bash"
need_kvm
need_amber
need_pvh_gdb
amber_bg 50 --kernel "$PVH_GDB" --memory 64M --control "$CTL_SOCK"
# gdb starts now (slow in the nested machine) and waits for the socket gdbserver opens.
ctl_cmd="timeout 20 $AMBER ctl $CTL_SOCK"
gdb_bg 50 "$GDB_SOCK" "$PVH_GDB" -ex "target remote $GDB_SOCK" \
  -ex 'printf "PC=%#lx SPIN=%#lx END=%#lx\n", $pc, (long)&gdb_spin, (long)&gdb_spin_end' \
  -ex "shell $ctl_cmd pause && echo PAUSE1=0 || echo PAUSE1=1" \
  -ex "shell echo STATUS1=\$($ctl_cmd status)" \
  -ex 'set var *(int *)&gdb_release = 1' \
  -ex "shell $ctl_cmd resume && echo RESUME1=0 || echo RESUME1=1" \
  -ex "shell sleep 0.5; if grep -q 'released by gdb' $SERIAL; then echo RAN-HELD=1; else echo RAN-HELD=0; fi" \
  -ex 'printf "PC-HELD=%#lx\n", $pc' \
  -ex "shell $ctl_cmd pause && echo PAUSE2=0 || echo PAUSE2=1" \
  -ex "shell (sleep 1; if grep -q 'released by gdb' $SERIAL; then echo 1; else echo 0; fi >$TMPD/ran-paused; $ctl_cmd resume) &" \
  -ex 'continue'
wait_for "$SERIAL" 'PVH-GUEST: loop done' 20 || { gdb_wait; amber_wait; fail "the guest never reached its spin loop"; }
r=$(qmp "{\"execute\":\"gdbserver\",\"arguments\":{\"device\":\"unix:$GDB_SOCK\"}}") ||
  fail "gdbserver failed: $r"
echo "gdbserver: $r"
echo "$r" | grep -qF "\"path\": \"$GDB_SOCK\"" || fail "gdbserver did not answer the socket path"
if r2=$(qmp "{\"execute\":\"gdbserver\",\"arguments\":{\"device\":\"unix:$TMPD/second.sock\"}}" 2>&1); then
  fail "a second gdbserver was accepted: $r2"
fi
echo "second gdbserver: $r2"
echo "$r2" | grep -q 'already listening' || fail "the second gdbserver's error does not say why"
gdb_wait
amber_wait
expect_eq "rip in the spin loop when gdb attached" "$(( $(val PC) >= $(val SPIN) && $(val PC) < $(val END) ))" 1
expect_eq "QMP stop while gdb holds the VM (exit status)" "$(val PAUSE1)" 0
[ "$(val STATUS1)" = paused ] || fail "status after QMP stop is '$(val STATUS1)', not paused"
expect_eq "QMP cont while gdb holds the VM (exit status)" "$(val RESUME1)" 0
expect_eq "guest ran after QMP cont while gdb held it" "$(val RAN-HELD)" 0
expect_eq "rip moved while gdb held the VM" "$(val PC-HELD)" "$(val PC)"
expect_eq "second QMP stop (exit status)" "$(val PAUSE2)" 0
expect_eq "guest ran on gdb's continue while QMP-stopped" "$(cat "$TMPD/ran-paused" 2>/dev/null)" 0
grep -q 'exited normally' "$GDB_OUT" || fail "gdb was not told that the guest exited"
grep -q 'PVH-GUEST: released by gdb' "$SERIAL" || fail "the guest did not run to its end"
[ "$AMBER_RC" = 0 ] || fail "amber exited $AMBER_RC (expected 0)"
echo PASS
