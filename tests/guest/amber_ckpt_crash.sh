#!/bin/bash
# timeout: 420
# Crash safety of checkpoints, on a memcheck guest (48 MiB of pattern on 2 vCPUs, so writing
# memory.bin takes seconds).
# ENOSPC: a checkpoint onto a full file system (a 16 MiB tmpfs this test mounts) fails with
# an error naming the directory, memory.bin and "No space left on device", leaves nothing
# behind, and nothing is lost: with "then resume" and "then quit" the VM keeps running (the
# guest keeps counting and verifying), with "then stop" it stays stopped, as asked, until
# resumed.
# kill -9: the guest is checkpointed to A (then quit). Then, AMBER_CKPT_KILLS times (default
# 3): restore A, start `checkpoint A --force` and kill -9 amber after a random delay within
# the time a checkpoint takes. Each time A must still be a complete checkpoint that verifies
# (the old one or, if the kill came late, the new one) and every other directory (the
# killed writer's A.tmp-XXXXXX) must be refused as a checkpoint; the next round restores
# A. Once more into a new directory B: B is absent or complete. Finally the guest restored
# from A verifies all its memory, a completed checkpoint to A removes the dead writers'
# leftovers, and the guest's final full verification passes.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/ckpt_lib.bash"
need_kvm
need_amber
[ "$(id -u)" = 0 ] || skip "needs root to mount a small tmpfs"
kills=${AMBER_CKPT_KILLS:-3}
sock=$TMPD/ctl.sock
A=$TMPD/A
B=$TMPD/B
small=$TMPD/small
mkdir -p "$small"
mount -t tmpfs -o size=16m tmpfs "$small" || skip "cannot mount a tmpfs here"
trap 'umount "$small" 2>/dev/null; cleanup_pids; rm -rf "$TMPD"' EXIT

mc_boot "$TMPD/out0" "$sock" 160M 48
mc_wait_n "$TMPD/out0" 2 200 || { mc_tail "$TMPD/out0"; fail "memcheck never started"; }
step "memcheck running"

# ---- ENOSPC ---------------------------------------------------------------------------------
# full_checkpoint THEN: the checkpoint must fail clearly and leave the tmpfs empty
full_checkpoint() {
  local msg
  msg=$(timeout 300 "$AMBER" ctl "$sock" checkpoint "$small/ck" --then "$1" 2>&1) &&
    fail "checkpoint --then $1 onto a full file system succeeded"
  echo "then $1: $msg"
  grep -q "$small/ck: writing memory.bin: No space left on device" <<<"$msg" ||
    fail "then $1: the error does not say what ran out of space: $msg"
  [ -z "$(ls -A "$small")" ] || fail "then $1: left behind: $(ls -A "$small")"
  [ "$(df -k --output=used "$small" | tail -n1 | tr -d ' ')" -le 64 ] || fail "then $1: space not freed"
  FULL_MSG=$msg
}
for then in resume quit; do
  full_checkpoint $then
  grep -q 'the VM keeps running' <<<"$FULL_MSG" || fail "then $then: the error does not say the VM runs"
  n=$(mc_last "$TMPD/out0" n)
  mc_wait_n "$TMPD/out0" $((n + 2)) 30 || fail "then $then: the guest stopped after the failed checkpoint"
done
full_checkpoint stop
grep -q 'the VM is stopped, as asked' <<<"$FULL_MSG" || fail "then stop: the error does not say the VM is stopped"
[ "$(ctl "$sock" status)" = paused ] || fail "then stop: the VM is not stopped"
sleep 0.5
a=$(mc_last "$TMPD/out0" n)
sleep 2.5
[ "$(mc_last "$TMPD/out0" n)" = "$a" ] || fail "then stop: the guest ran while stopped"
ctl "$sock" resume >/dev/null || fail "resume failed"
mc_wait_n "$TMPD/out0" $((a + 2)) 30 || fail "the guest did not go on after resume"
step "three checkpoints failed with ENOSPC, the guest lost nothing"

# ---- kill -9 --------------------------------------------------------------------------------
reply=$(mc_checkpoint "$sock" "$A" --then quit) || fail "checkpoint to A failed: $reply"
echo "$reply"
wait "$MC_PID"
exec 7>&-
span=$(sed -n 's/.*"total_ms":\([0-9]*\).*/\1/p' <<<"$reply")
[ -n "$span" ] || fail "no total_ms in the checkpoint's reply"
step "checkpoint A took ${span} ms: the kills land within that"

# check_after_kill WHAT: A verifies, nothing else looks like a checkpoint
check_after_kill() {
  local d
  "$AMBER" inspect "$A" --verify >"$TMPD/verify" 2>&1 ||
    { cat "$TMPD/verify"; fail "$1: checkpoint A does not verify after kill -9"; }
  for d in "$TMPD"/*/; do
    d=${d%/}
    [ "$d" = "$A" ] || [ "$d" = "$B" ] && continue		# B: checked by the caller
    [ -e "$d/vm.json" ] || [ -e "$d/memory.bin" ] || continue
    "$AMBER" inspect "$d" >/dev/null 2>&1 && fail "$1: $d looks like a complete checkpoint"
  done
  ls -d "$TMPD"/A.* "$TMPD"/B.* 2>/dev/null | sed 's/^/  left: /'
}

# kill_during_checkpoint OUT DIR: restore A, checkpoint DIR --force, kill -9 at random
kill_during_checkpoint() {
  local out=$1 dir=$2 delay
  mc_restore "$out" "$sock" "$A"
  mc_wait_n "$out" 1 90 || { mc_tail "$out"; fail "restore of A printed nothing"; }
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
mc_wait_n "$TMPD/outF" 1 90 || { mc_tail "$TMPD/outF"; fail "final restore of A printed nothing"; }
r0=$(mc_last "$TMPD/outF" r0) r1=$(mc_last "$TMPD/outF" r1)
mc_wait_rounds "$TMPD/outF" "$r0" "$r1" 150 ||
  { mc_tail "$TMPD/outF"; fail "the guest restored from A did not verify its memory"; }
mc_checkpoint "$sock" "$A" --force || fail "checkpoint after the kills failed"
left=$(ls -d "$TMPD"/A.tmp-* 2>/dev/null)
[ -z "$left" ] || fail "the dead writers' temporary directories are still there: $left"
mc_finish "$TMPD/outF"
mc_tail "$TMPD/outF" 2
echo PASS
