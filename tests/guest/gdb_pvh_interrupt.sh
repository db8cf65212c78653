#!/bin/bash
# timeout: 60
# Two vCPUs over TCP: `info threads` lists one thread per vCPU, and the AP (still waiting
# for INIT/SIPI) has its own registers. gdb continues with a breakpoint planted on the spin
# loop's exit; while the guest spins, query-gdbserver counts that int3 and a checkpoint is
# refused, saying why. Ctrl-C (SIGINT to gdb, which sends 0x03) stops the running guest
# inside its spin loop, in long mode with paging, and it stays stopped (its spin counter
# does not move, also across a checkpoint); gdb then has no int3 in memory, and a checkpoint
# taken while gdb holds the VM succeeds and leaves it held. Memory reads go through the
# guest's page tables: the high-half alias 0xffffffff80000000 + x gives the bytes at x. gdb
# writes gdb_release and detaches: the guest runs to its end and amber exits 0.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/gdb.bash"
need_kvm
need_amber
need_pvh_gdb
# The nested test machine's /init leaves the loopback interface down.
if [ "${AMBER_KVMBOX:-}" = 1 ] && ! ip -o link show lo 2>/dev/null | grep -q '<.*UP'; then
  ip link set lo up || fail "cannot bring up the loopback interface for gdb over TCP"
fi
port=$((20000 + $$ % 20000))
amber_bg 55 --kernel "$PVH_GDB" --memory 64M --cpus 2 --gdb "tcp:127.0.0.1:$port" --gdb-wait \
  --control "$CTL_SOCK"
note "amber and gdb starting"
gdb_bg 45 "$CTL_SOCK" "$PVH_GDB" -ex "target remote 127.0.0.1:$port" \
  -ex 'info threads' \
  -ex 'thread 2' \
  -ex 'printf "AP-PC=%#lx AP-CS=%#lx\n", $pc, $cs' \
  -ex 'thread 1' \
  -ex 'break *gdb_spin_end' \
  -ex "shell echo continuing >$TMPD/continuing" \
  -ex 'continue' \
  -ex 'thread 1' \
  -ex 'printf "INT-PC=%#lx SPIN=%#lx END=%#lx CR0=%#lx\n", $pc, (long)&gdb_spin, (long)&gdb_spin_end, $cr0' \
  -ex 'printf "SPINS1=%ld\n", *(long *)&gdb_spins' \
  -ex "shell timeout 20 $AMBER ctl $CTL_SOCK qmp '{\"execute\":\"query-gdbserver\"}' >$TMPD/q-stopped" \
  -ex "shell timeout 60 $AMBER ctl $CTL_SOCK checkpoint $TMPD/ck-stopped >$TMPD/ck-stopped.out 2>&1; echo CKPT-STOPPED=\$?" \
  -ex 'printf "SPINS2=%ld\n", *(long *)&gdb_spins' \
  -ex 'x/16xb 0xffffffff80000000 + (long)&gdb_pattern' \
  -ex 'delete' \
  -ex 'set var *(int *)&gdb_release = 1' \
  -ex 'detach'
# Ctrl-C once the guest spins under gdb's `continue`.
if ! { wait_for "$TMPD/continuing" continuing 40 && wait_for "$SERIAL" 'PVH-GUEST: loop done' 10; }; then
  kill -INT "$GDB_PID"
  gdb_wait
  amber_wait
  fail "the guest never reached its spin loop"
fi
note "guest spinning under gdb"
qmp '{"execute":"query-gdbserver"}' >"$TMPD/q-running"
timeout 60 "$AMBER" ctl "$CTL_SOCK" checkpoint "$TMPD/ck-running" >"$TMPD/ck-running.out" 2>&1
ck_running=$?
note "Ctrl-C"
kill -INT "$GDB_PID"
gdb_wait
note "gdb done"
amber_wait
note "amber done"
echo "query-gdbserver while running: $(cat "$TMPD/q-running")"
echo "query-gdbserver while stopped: $(cat "$TMPD/q-stopped")"
[ "$(grep -cE '^[* ] +[12] +Thread [12]' "$GDB_OUT")" = 2 ] || fail "info threads does not list 2 threads"
[ -n "$(val AP-PC)" ] || fail "no registers for thread 2 (the AP)"
grep -q 'received signal SIGINT' "$GDB_OUT" || fail "Ctrl-C did not stop the guest"
pc=$(val INT-PC)
[ -n "$pc" ] && [ $((pc)) -ge $(($(val SPIN))) ] && [ $((pc)) -lt $(($(val END))) ] ||
  fail "rip $pc after Ctrl-C is not in the spin loop [$(val SPIN), $(val END))"
[ "$(val SPINS1)" -gt 0 ] 2>/dev/null || fail "the spin loop never ran (gdb_spins=$(val SPINS1))"
expect_eq "gdb_spins while stopped (across a checkpoint)" "$(val SPINS2)" "$(val SPINS1)"
expect_eq "CR0.PG after Ctrl-C" "$(( $(val CR0) >> 31 & 1 ))" 1
[ "$(hex16 '0xffffffff801')" = "$PATTERN16" ] ||
  fail "x/16xb through the high-half alias: wrong bytes ($(hex16 '0xffffffff801'))"
grep -q '"sw-breakpoints": *1' "$TMPD/q-running" || fail "query-gdbserver did not count the planted int3"
grep -q '"checkpoint-refusal": *"gdb has 1 software breakpoint planted in guest memory: remove them or detach before checkpointing"' \
  "$TMPD/q-running" || fail "no checkpoint refusal while an int3 is planted"
grep -q '"sw-breakpoints": *0' "$TMPD/q-stopped" || fail "int3s left in memory while gdb has the guest stopped"
if grep -q 'checkpoint-refusal' "$TMPD/q-stopped"; then fail "checkpoint refused while gdb has the guest stopped"; fi
echo "checkpoint while running with an int3 planted: $(cat "$TMPD/ck-running.out")"
[ "$ck_running" != 0 ] || fail "a checkpoint was taken with gdb's int3 in guest memory"
grep -q 'gdb has 1 software breakpoint planted in guest memory: remove them or detach before checkpointing' \
  "$TMPD/ck-running.out" || fail "the refused checkpoint does not say why"
[ ! -e "$TMPD/ck-running" ] || fail "the refused checkpoint left $TMPD/ck-running"
echo "checkpoint while gdb holds the VM: $(cat "$TMPD/ck-stopped.out")"
expect_eq "checkpoint while gdb holds the VM (exit status)" "$(val CKPT-STOPPED)" 0
[ -f "$TMPD/ck-stopped/vm.json" ] || fail "the checkpoint taken while gdb held the VM has no vm.json"
grep -q 'PVH-GUEST: released by gdb' "$SERIAL" || fail "the guest did not run to its end after detach"
[ "$AMBER_RC" = 0 ] || fail "amber exited $AMBER_RC (expected 0)"
echo PASS
