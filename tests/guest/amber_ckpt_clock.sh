#!/bin/bash
# timeout: 240
# Guest clocks after a restore. A small memcheck guest prints its wall-clock time (time(),
# what `date +%s` shows) every second. It is checkpointed (then quit) and, after a
# deliberate delay, restored twice from that checkpoint:
#   --clock freeze (the default): the guest's clock continues from the saved time, so it
#     is behind the host by about the delay;
#   --clock advance: the guest's clock advanced by the real time that passed: it shows the
#     host's time, its 1-second timers keep firing, and its memory still verifies.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/ckpt_lib.bash"
need_kvm
need_amber
sock=$TMPD/ctl.sock
ck=$TMPD/ck
delay=12

mc_boot "$TMPD/out1" "$sock" 128M 16 init_on_free=1
mc_wait_n "$TMPD/out1" 2 150 || { mc_tail "$TMPD/out1"; fail "memcheck never started"; }
t=$(mc_last "$TMPD/out1" t)
skew=$(($(date +%s) - t))
echo "guest clock before the checkpoint: $t, host - guest = ${skew}s"
[ ${skew#-} -le 3 ] || fail "the guest clock is off by ${skew}s before any checkpoint"
mc_checkpoint "$sock" "$ck" --then quit || fail "checkpoint failed"
wait "$MC_PID"
exec 7>&-
saved=$(mc_last "$TMPD/out1" t)
sleep $delay

# freeze: continues from the saved time. Since the restore the guest's clock may advance
# by the time it has run (its first line can take seconds under nested load), not more.
rs=$(date +%s)
mc_restore "$TMPD/out2" "$sock" "$ck" --clock freeze
mc_wait_n "$TMPD/out2" 1 60 || { mc_tail "$TMPD/out2"; fail "restored guest (freeze) printed nothing"; }
host=$(date +%s)
mc_check_continued "$TMPD/out1" "$TMPD/out2"
first=$(mc_first "$TMPD/out2" t)
echo "freeze: saved at guest time $saved, restored at host time $rs, first line: guest $first, host $host"
[ $((first - saved)) -ge 0 ] && [ $((first - saved)) -le $((host - rs + 2)) ] ||
  fail "--clock freeze: guest time went from $saved to $first in $((host - rs))s of running"
[ $((host - first - skew)) -ge $((delay - 2)) ] ||
  fail "--clock freeze: the guest clock ($first) caught up with the host ($host)"
ctl "$sock" quit >/dev/null
wait "$MC_PID"
exec 7>&-

# advance: wall-clock time is right again (the same offset from the host's as before)
mc_restore "$TMPD/out3" "$sock" "$ck" --clock advance
mc_wait_n "$TMPD/out3" 1 60 || { mc_tail "$TMPD/out3"; fail "restored guest (advance) printed nothing"; }
host=$(date +%s)
mc_check_continued "$TMPD/out1" "$TMPD/out3"
first=$(mc_first "$TMPD/out3" t)
echo "advance: saved at guest time $saved, first line after restore: guest $first, host $host"
d=$((host - first - skew))
[ ${d#-} -le 3 ] || fail "--clock advance: guest time $first, host time $host (before: host - guest = ${skew}s)"
n=$(mc_last "$TMPD/out3" n)
mc_wait_n "$TMPD/out3" $((n + 3)) 20 || fail "--clock advance: the guest's timers stopped"
t=$(mc_last "$TMPD/out3" t)
d=$(($(date +%s) - t - skew))
[ ${d#-} -le 3 ] || fail "--clock advance: guest time drifted ${d}s from the host's"
mc_finish "$TMPD/out3"
mc_tail "$TMPD/out3" 2
echo PASS
