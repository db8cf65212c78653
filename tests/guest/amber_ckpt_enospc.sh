#!/bin/bash
# timeout: 240
# A checkpoint onto a full file system (a 16 MiB tmpfs this test mounts; the guest needs
# far more) fails with a clear error naming the directory, memory.bin and "No space left
# on device", leaves nothing behind, and nothing is lost: with "then resume" and "then
# quit" the VM keeps running (the guest keeps counting and verifying), with "then stop" it
# stays stopped as asked until resumed. A checkpoint to a roomy place then works, and the
# guest restored from it verifies all its memory.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/ckpt_lib.bash"
need_kvm
need_amber
[ "$(id -u)" = 0 ] || skip "needs root to mount a small tmpfs"
sock=$TMPD/ctl.sock
small=$TMPD/small
mkdir -p "$small"
mount -t tmpfs -o size=16m tmpfs "$small" || skip "cannot mount a tmpfs here"
trap 'umount "$small" 2>/dev/null; cleanup_pids; rm -rf "$TMPD"' EXIT

mc_boot "$TMPD/out1" "$sock" 160M 48
mc_wait_n "$TMPD/out1" 2 150 || { mc_tail "$TMPD/out1"; fail "memcheck never started"; }
step "memcheck running"

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
  n=$(mc_last "$TMPD/out1" n)
  mc_wait_n "$TMPD/out1" $((n + 2)) 30 || fail "then $then: the guest stopped after the failed checkpoint"
  kill -0 "$MC_PID" || fail "then $then: amber is gone"
done

full_checkpoint stop
grep -q 'the VM is stopped, as asked' <<<"$FULL_MSG" || fail "then stop: the error does not say the VM is stopped"
[ "$(ctl "$sock" status)" = paused ] || fail "then stop: the VM is not stopped"
sleep 0.5
a=$(mc_last "$TMPD/out1" n)
sleep 2.5
[ "$(mc_last "$TMPD/out1" n)" = "$a" ] || fail "then stop: the guest ran while stopped"
ctl "$sock" resume >/dev/null || fail "resume failed"
mc_wait_n "$TMPD/out1" $((a + 2)) 30 || fail "the guest did not go on after resume"
grep -q 'MEMCHECK FAIL' "$TMPD/out1" && fail "memory check failed"
step "three failed checkpoints, nothing lost"

mc_checkpoint "$sock" "$TMPD/ck" --then quit || fail "checkpoint to a roomy directory failed"
wait "$MC_PID"
exec 7>&-
mc_restore "$TMPD/out2" "$sock" "$TMPD/ck" --restore-mode copy
mc_wait_n "$TMPD/out2" 1 60 || { mc_tail "$TMPD/out2"; fail "the restored guest printed nothing"; }
mc_check_continued "$TMPD/out1" "$TMPD/out2"
r0=$(mc_last "$TMPD/out2" r0) r1=$(mc_last "$TMPD/out2" r1)
mc_wait_rounds "$TMPD/out2" "$r0" "$r1" 90 || fail "the restored guest did not verify its memory"
mc_finish "$TMPD/out2"
mc_tail "$TMPD/out2" 2
echo PASS
