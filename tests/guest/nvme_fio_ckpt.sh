#!/bin/bash
# timeout: 200
# Checkpoint while fio writes and verifies on amber's NVMe controller (scenario
# tools/guest-kit/scenarios/nvme-fio, mode loop): rounds of 2 jobs of 4 KiB random writes at
# queue depth 16 (2 MiB each) with crc32c in every block, verified while writing
# (verify_backlog) and at the end of the round (verify_fatal); 150 IOPS per job at most, so
# a round (512 writes per job) lasts at least 3 s on any machine. In the middle of a round
# the host takes a checkpoint (--then quit: in-flight commands complete first), then a NEW
# amber process restores it on the same image: the guest continues (no boot), the
# interrupted round's verification passes (every write acknowledged before the checkpoint is
# on the disk, nothing is lost or duplicated in the queues) and so do the rounds after it.
. "$(dirname "$0")/lib.bash"
need_kvm
need_amber

M=1048576
img=$TMPD/disk.img
truncate -s $((8 * M)) "$img"
sock=$TMPD/ctl.sock
ck=$TMPD/ck
rounds=3
out1=$TMPD/out1
out2=$TMPD/out2

timeout -k 5 120 "$AMBER" run --kernel "$KIT/bzImage" --initrd "$KIT/initramfs-tools.cpio" \
  --cmdline "$CMDLINE_BASE amber.test=nvme-fio amber.nvmefio.mode=loop amber.nvmefio.loops=$rounds amber.nvmefio.size=2 amber.nvmefio.rate=150" \
  --cpus 2 --memory 160M --serial stdio --disk "nvme:$img" --control "$sock" \
  </dev/null >"$out1" 2>&1 &
pid=$!
PIDS+=($pid)
# Round 1 done and round 2 under way: fio is writing; let it get into the round.
wait_for "$out1" 'NVMEFIO round 2 start' 90 ||
  { tr -d '\r' <"$out1" | tail -n 40; fail "fio never finished its first round"; }
sleep 0.5
start=$(date +%s%N)
timeout 130 "$AMBER" ctl --timeout 120 "$sock" checkpoint "$ck" --then quit || fail "checkpoint failed"
echo "checkpoint --then quit took $((($(date +%s%N) - start) / 1000000)) ms"
wait $pid
rc=$?
tr -d '\r' <"$out1" | grep -E '^(NVMEFIO|AMBER-)|error|warn' | tail -n 20
[ $rc = 0 ] || fail "amber exited $rc after checkpoint --then quit"
grep -q 'NVMEFIO-FAIL' "$out1" && fail "fio failed before the checkpoint"
round=$(tr -d '\r' <"$out1" | sed -n 's/^NVMEFIO round \([0-9]*\) start$/\1/p' | tail -n1)
tr -d '\r' <"$out1" | grep -q "^NVMEFIO round $round OK" &&
  fail "the checkpoint fell between two rounds (round $round had finished): fio was not running"
echo "checkpointed in the middle of round $round"

start=$(date +%s%N)
timeout -k 5 100 "$AMBER" run --restore "$ck" </dev/null >"$out2" 2>&1
rc=$?
echo "restored amber exit $rc after $((($(date +%s%N) - start) / 1000000)) ms"
tr -d '\r' <"$out2" | grep -E '^(NVMEFIO|AMBER-|fio|verify)|error|warn' | tail -n 30
grep -q 'AMBER-TEST nvme-fio: PASS' "$out2" ||
  { echo "--- end of the console (kernel messages included):"; tr -d '\r' <"$out2" | tail -n 40; }
[ $rc = 124 ] && fail "the restored amber did not finish within 100 s"
grep -q 'AMBER-GUEST: userspace' "$out2" && fail "the restored guest booted again instead of continuing"
grep -q 'NVMEFIO-FAIL' "$out2" && fail "fio failed after the restore (messages above)"
tr -d '\r' <"$out2" | grep -q "^NVMEFIO round $round start" &&
  fail "round $round started again after the restore instead of continuing"
tr -d '\r' <"$out2" | grep -q "^NVMEFIO round $round OK" ||
  fail "the interrupted round $round did not finish with its verification passed"
tr -d '\r' <"$out2" | grep -q "^NVMEFIO round $rounds OK" || fail "round $rounds did not pass"
grep -q 'AMBER-TEST nvme-fio: PASS' "$out2" || fail "scenario nvme-fio did not pass after the restore"
[ $rc = 0 ] || fail "restored amber exited $rc (expected 0)"
echo "PASS"
