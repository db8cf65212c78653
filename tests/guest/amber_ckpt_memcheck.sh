#!/bin/bash
# timeout: 480
# The issue's guest test: a guest keeps 200 MiB of seeded pattern and verifies and rewrites it
# on both vCPUs (scenario memcheck). Checkpointed while it runs (then quit) and restored in a
# new amber process (lazy, the default), it continues where it was without a restart: its
# line counter goes on, both vCPUs' workers make progress on their own CPUs and verify all
# their memory again, the serial console takes input, and the guest's final full
# verification passes (amber's background digest check finding all digests right:
# amber_ckpt_cycles). Then a byte flipped
# in a zero chunk of memory.bin (the guest never looks there): copy mode refuses the
# checkpoint before loading anything (exit 2, chunk named); lazy mode runs the guest, but its
# background digest check stops the VM (STOP, CHECKPOINT_CORRUPT) naming the chunk.
# (checkpoint --then resume, many cycles, copy mode: amber_ckpt_cycles; clocks:
# amber_ckpt_clock; kill -9 and ENOSPC: amber_ckpt_crash, amber_ckpt_enospc.)
. "$(dirname "$0")/lib.bash"
[ "${AMBER_SLOW_TESTS:-0}" = 1 ] || skip "slow (200 MiB verified twice per vCPU; 3-7 min nested) and load-sensitive: run with AMBER_SLOW_TESTS=1"
. "$(dirname "$0")/ckpt_lib.bash"
need_kvm
need_amber
sock=$TMPD/ctl.sock
ck=$TMPD/ck
MC_TIMEOUT=400

mc_boot "$TMPD/out1" "$sock" 320M 200
mc_wait_n "$TMPD/out1" 2 300 || { mc_tail "$TMPD/out1"; fail "memcheck never started"; }
mc_tail "$TMPD/out1" 3
step "memcheck running"
mc_checkpoint "$sock" "$ck" --then quit || fail "checkpoint (then quit) failed"
step "checkpointed"
wait "$MC_PID"; rc=$?
exec 7>&-
[ $rc = 0 ] || fail "amber exited $rc after checkpoint --then quit"
mc_tail "$TMPD/out1" 2
grep -q 'MEMCHECK FAIL' "$TMPD/out1" && fail "memory check failed before the checkpoint"
"$AMBER" inspect "$ck" | sed -n '1,12p'

# Restore (lazy) in a new process.
mc_restore "$TMPD/out2" "$sock" "$ck"
mc_wait_n "$TMPD/out2" 1 60 || { mc_tail "$TMPD/out2"; fail "the restored guest printed nothing"; }
mc_check_continued "$TMPD/out1" "$TMPD/out2"
step "restored guest running"
r0=$(mc_last "$TMPD/out2" r0) r1=$(mc_last "$TMPD/out2" r1)
mc_wait_rounds "$TMPD/out2" "$r0" "$r1" 240 ||
  { mc_tail "$TMPD/out2"; fail "the workers of both vCPUs did not verify all memory again"; }
[ "$(mc_last "$TMPD/out2" c0)" = 0 ] && [ "$(mc_last "$TMPD/out2" c1)" = 1 ] ||
  fail "the workers are not on CPU 0 and CPU 1: $(mc_tail "$TMPD/out2" 1)"
step "both workers verified their memory again"
mc_send hello-after-restore
wait_for "$TMPD/out2" 'ECHO: hello-after-restore' 20 || fail "serial input does not reach the restored guest"
mc_finish "$TMPD/out2"
step "final verification passed"
mc_tail "$TMPD/out2" 4
echo "restored: continued at n=$(mc_first "$TMPD/out2" n), rounds r0 $r0 -> $(mc_last "$TMPD/out2" r0), r1 $r1 -> $(mc_last "$TMPD/out2" r1)"

# A damaged memory.bin. The most frequent digest is the zero chunk's: flip a byte in the first
# such chunk (checks stop at the first bad chunk: the earlier, the shorter the test).
chunk=$(jq -r '.memory.digests as $d | ($d | group_by(.) | max_by(length) | .[0]) as $z
  | [$d | to_entries[] | select(.value == $z) | .key] | first' "$ck/vm.json")
[ -n "$chunk" ] && [ "$chunk" != null ] || fail "no zero chunk in the checkpoint"
printf '\x5a' | dd of="$ck/memory.bin" bs=1 seek=$((chunk * 2097152 + 4242)) conv=notrunc status=none
msg=$(timeout 120 "$AMBER" run --restore "$ck" --restore-mode copy 2>&1 </dev/null); rc=$?
echo "$msg" | tail -n 2
[ $rc = 2 ] || fail "copy restore of a damaged memory.bin exited $rc, not 2"
grep -q "chunk $chunk .*does not match its digest" <<<"$msg" || fail "copy restore did not name chunk $chunk"
grep -q 'MEMCHECK' <<<"$msg" && fail "the guest ran from a damaged checkpoint in copy mode"

step "copy mode refused the damaged checkpoint"
mc_restore "$TMPD/out3" "$sock" "$ck"
wait_for "$TMPD/out3" "chunk $chunk .*does not match its digest" 120 ||
  { mc_tail "$TMPD/out3"; fail "lazy restore never reported the damaged chunk"; }
grep -q 'stopping it' "$TMPD/out3" || fail "the VM was not stopped"
[ "$(ctl "$sock" status)" = paused ] || fail "the VM is not paused after the digest mismatch"
ctl "$sock" quit >/dev/null || fail "quit failed"
wait "$MC_PID"
exec 7>&-
tr -d '\r' <"$TMPD/out3" | grep 'does not match' | tail -n1
echo PASS
