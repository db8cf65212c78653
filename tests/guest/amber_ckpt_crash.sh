#!/bin/bash
# timeout: 330
# kill -9 of amber at random moments during a checkpoint. A memcheck guest (96 MiB of
# pattern, so writing memory.bin takes seconds) is checkpointed to A (then quit). Then,
# AMBER_CKPT_KILLS times (default 4): restore A, start `checkpoint A --force` and kill -9
# amber after a random delay within the time a checkpoint takes. Each time A must still be
# a complete checkpoint that verifies (the old one or, if the kill came late, the new one)
# and every other directory (the killed writer's A.tmp-XXXXXX) must be refused as a
# checkpoint; the next round restores A. Once more into a new directory B: B is absent or
# complete. Finally the restored guest verifies all its memory, a completed checkpoint to A
# removes the dead writers' leftovers, and the guest's final verification passes.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/ckpt_lib.bash"
need_kvm
need_amber
kills=${AMBER_CKPT_KILLS:-4}
sock=$TMPD/ctl.sock
A=$TMPD/A
B=$TMPD/B

mc_boot "$TMPD/out0" "$sock" 192M 96
mc_wait_n "$TMPD/out0" 2 150 || { mc_tail "$TMPD/out0"; fail "memcheck never started"; }
s0=$(date +%s%N)
mc_checkpoint "$sock" "$A" --then quit || fail "first checkpoint failed"
wait "$MC_PID"
exec 7>&-
span=$((($(date +%s%N) - s0) / 1000000))
step "checkpoint A written in ${span} ms: kills land within that"

# check_after_kill WHAT: A verifies, nothing else looks like a checkpoint
check_after_kill() {
  local d
  "$AMBER" inspect "$A" --verify >"$TMPD/verify" 2>&1 ||
    { cat "$TMPD/verify"; fail "$1: checkpoint A does not verify after kill -9"; }
  for d in "$TMPD"/*/; do
    d=${d%/}
    [ "$d" = "$A" ] && continue
    [ -e "$d/vm.json" ] || [ -e "$d/memory.bin" ] || continue
    [ "$d" = "$B" ] && continue		# checked by the caller
    "$AMBER" inspect "$d" >/dev/null 2>&1 && fail "$1: $d looks like a complete checkpoint"
  done
  ls -d "$TMPD"/A.* 2>/dev/null | sed 's/^/  left: /'
}

# kill_during_checkpoint OUT DIR: restore A, checkpoint DIR --force, kill -9 at random
kill_during_checkpoint() {
  local out=$1 dir=$2 delay
  mc_restore "$out" "$sock" "$A"
  mc_wait_n "$out" 1 60 || { mc_tail "$out"; fail "restore of A printed nothing"; }
  delay=$((RANDOM % (span + 1)))
  timeout 300 "$AMBER" ctl "$sock" checkpoint "$dir" --force >/dev/null 2>&1 &
  sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
  kill -9 "$(pgrep -P "$MC_PID" -x amber || echo "$MC_PID")" 2>/dev/null
  wait "$MC_PID" 2>/dev/null
  exec 7>&-
  wait 2>/dev/null
  echo "killed amber ${delay} ms into a checkpoint to $(basename "$dir")"
}

for ((k = 1; k <= kills; k++)); do
  kill_during_checkpoint "$TMPD/out$k" "$A"
  check_after_kill "kill $k"
done
kill_during_checkpoint "$TMPD/outB" "$B"
check_after_kill "kill into B"
if [ -e "$B" ]; then
  "$AMBER" inspect "$B" --verify >/dev/null 2>&1 || fail "B exists but is not a complete checkpoint"
  echo "B was completed before the kill"
fi
step "$((kills + 1)) kills done"

mc_restore "$TMPD/outF" "$sock" "$A"
mc_wait_n "$TMPD/outF" 1 60 || { mc_tail "$TMPD/outF"; fail "final restore of A printed nothing"; }
r0=$(mc_last "$TMPD/outF" r0) r1=$(mc_last "$TMPD/outF" r1)
mc_wait_rounds "$TMPD/outF" "$r0" "$r1" 150 ||
  { mc_tail "$TMPD/outF"; fail "the guest restored from A did not verify its memory"; }
mc_checkpoint "$sock" "$A" --force || fail "checkpoint after the kills failed"
left=$(ls -d "$TMPD"/A.tmp-* 2>/dev/null)
[ -z "$left" ] || fail "the dead writers' temporary directories are still there: $left"
mc_finish "$TMPD/outF"
mc_tail "$TMPD/outF" 2
echo PASS
