#!/bin/bash
# timeout: 330
# Checkpoint -> restore cycles in a row, each verified: a small memcheck guest (32 MiB of
# pattern, 2 vCPUs; init_on_free=1 keeps freed guest pages zero, so checkpoints hold only
# what is in use) is checkpointed once with "then resume" (it goes on), then, cycle after
# cycle, checkpointed with "then quit" and restored in a new amber process, alternately
# lazy and copy. After every restore the guest continued where it was (line counter, no
# restart), both vCPUs' workers verified all their memory again, and the serial console
# echoed a line. At the end the guest's final full verification passes.
#
# The issue asks for 20 cycles. In the nested test machine (TCG) one cycle costs about 10 s
# when the host is idle and 2-3 times that when it is busy, so `make check` runs
# AMBER_CKPT_CYCLES=6 (the default here); AMBER_CKPT_CYCLES=20 runs the issue's count (give
# run-all time: it reads this header's timeout, so run it directly or raise the timeout).
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/ckpt_lib.bash"
need_kvm
need_amber
cycles=${AMBER_CKPT_CYCLES:-6}
sock=$TMPD/ctl.sock
MC_TIMEOUT=$((120 + cycles * 40))

mc_boot "$TMPD/out0" "$sock" 128M 32 init_on_free=1
mc_wait_n "$TMPD/out0" 2 150 || { mc_tail "$TMPD/out0"; fail "memcheck never started"; }
step "memcheck running"
mc_checkpoint "$sock" "$TMPD/ck-resume" || fail "checkpoint (then resume) failed"
n=$(mc_last "$TMPD/out0" n)
mc_wait_n "$TMPD/out0" $((n + 2)) 30 || fail "the guest stopped counting after checkpoint --then resume"
"$AMBER" inspect "$TMPD/ck-resume" | grep '^memory'
rm -rf "$TMPD/ck-resume"

prev=$TMPD/out0
for ((i = 1; i <= cycles; i++)); do
  t0=$SECONDS
  ck=$TMPD/ck$((i % 2))		# alternate: the running guest may be mapped from the other
  mc_checkpoint "$sock" "$ck" --force --then quit || fail "cycle $i: checkpoint failed"
  wait "$MC_PID"; rc=$?
  exec 7>&-
  [ $rc = 0 ] || fail "cycle $i: amber exited $rc after checkpoint --then quit"
  t1=$SECONDS
  mode=lazy; [ $((i % 2)) = 0 ] && mode=copy
  out=$TMPD/out$i
  mc_restore "$out" "$sock" "$ck" --restore-mode $mode
  mc_wait_n "$out" 1 60 || { mc_tail "$out"; fail "cycle $i ($mode): the restored guest printed nothing"; }
  t2=$SECONDS
  mc_check_continued "$prev" "$out"
  r0=$(mc_last "$out" r0) r1=$(mc_last "$out" r1)
  mc_wait_rounds "$out" "$r0" "$r1" 90 ||
    { mc_tail "$out"; fail "cycle $i ($mode): the workers did not verify all memory again"; }
  mc_send "cycle-$i"
  wait_for "$out" "ECHO: cycle-$i" 20 || fail "cycle $i ($mode): serial input lost"
  step "cycle $i ($mode): checkpoint+quit $((t1 - t0))s, restore to first line $((t2 - t1))s," \
    "verified $((SECONDS - t2))s; n=$(mc_first "$out" n)..$(mc_last "$out" n)"
  rm -f "$prev"
  prev=$out
done
mc_finish "$prev"
mc_tail "$prev" 2
echo "PASS ($cycles cycles)"
