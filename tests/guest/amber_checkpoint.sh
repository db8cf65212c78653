#!/bin/bash
# timeout: 200
# Checkpoint a counting 2-vCPU guest through the control socket (then quit),
# inspect and verify it, restore it with no other option: the guest continues
# counting where it was (no reboot, no gap) and powers off normally. A
# corrupted checkpoint is refused with the field named, and a flipped memory
# byte is found by inspect --verify.
. "$(dirname "$0")/lib.bash"
need_kvm
need_amber
sock=$TMPD/ctl.sock
ck=$TMPD/ck
counter_checkpoint "$TMPD/out1" "$sock" "$ck" 256M 60 10
[ $CK_RC = 0 ] || fail "amber exited $CK_RC after checkpoint --then quit"
last=$(grep -o '^COUNT [0-9]*' "$TMPD/out1" | tail -n1 | cut -d' ' -f2)
echo "checkpointed after COUNT $last"
[ -f "$ck/vm.json" ] && [ -f "$ck/memory.bin" ] || fail "checkpoint directory incomplete"
ls "$TMPD" | grep -q 'tmp-' && fail "temporary directory left behind"
"$AMBER" inspect "$ck" || fail "inspect failed"
"$AMBER" inspect "$ck" --verify || fail "inspect --verify failed on a good checkpoint"
# No asynchronous page faults (issue 5: a lazy restore could leave tasks waiting for a "page
# ready" forever): the guest uses kvmclock but never enabled async PF on any vCPU.
msr_values() { jq -r --arg n "$1" '.. | objects | select(.name? == $n) | .value | tostring' "$ck/vm.json"; }
[ "$(msr_values KVM_SYSTEM_TIME_NEW | grep -cvE '^(0|0x0+)$')" = 2 ] ||
  fail "vm.json does not show kvmclock enabled on both vCPUs: $(msr_values KVM_SYSTEM_TIME_NEW | tr '\n' ' ')"
apf=$(msr_values KVM_ASYNC_PF_EN | tr '\n' ' ')
[ -z "$(msr_values KVM_ASYNC_PF_EN | grep -vE '^(0|0x0+)$')" ] ||
  fail "the guest enabled asynchronous page faults (KVM_ASYNC_PF_EN: $apf)"
stored=$(du -k "$ck/memory.bin" | cut -f1)
[ "$stored" -lt $((256 * 1024)) ] || fail "memory.bin is not sparse (${stored} KiB stored)"
# a second checkpoint into the same DIR is refused without --force (checked before any VM pause)

timeout -k 5 120 "$AMBER" run --restore "$ck" </dev/null >"$TMPD/out2" 2>&1
rc=$?
tr -d '\r' <"$TMPD/out2" | grep -v '^\[' | head -n 5
grep -q 'AMBER-GUEST: userspace' "$TMPD/out2" && fail "the restored guest booted again instead of continuing"
first=$(grep -o '^COUNT [0-9]*' "$TMPD/out2" | head -n1 | cut -d' ' -f2)
[ -n "$first" ] || fail "the restored guest printed no COUNT"
[ "$first" -le $((last + 2)) ] && [ "$first" -ge "$last" ] ||
  fail "restored guest continued at COUNT $first, checkpoint was after COUNT $last"
grep -q 'COUNT 59' "$TMPD/out2" || fail "restored guest did not count to the end"
grep -q 'AMBER-TEST counter: PASS' "$TMPD/out2" || fail "scenario did not pass after restore"
[ $rc = 0 ] || fail "restored amber exited $rc"

# Corruptions are refused before any VM exists, naming the problem.
cp -r "$ck" "$TMPD/bad1"
jq '.vcpus[1].regs.rip = "banana"' "$ck/vm.json" >"$TMPD/bad1/vm.json"
msg=$("$AMBER" run --restore "$TMPD/bad1" 2>&1 </dev/null); rc=$?
echo "$msg"
[ $rc = 2 ] && grep -q 'vcpus\[1\].regs.rip' <<<"$msg" || fail "bad rip not refused with its name (exit $rc)"
cp -r "$ck" "$TMPD/bad2"
jq '.format_version = 99' "$ck/vm.json" >"$TMPD/bad2/vm.json"
msg=$("$AMBER" run --restore "$TMPD/bad2" 2>&1 </dev/null); rc=$?
echo "$msg"
[ $rc = 2 ] && grep -qi 'newer' <<<"$msg" || fail "newer format not refused (exit $rc)"
cp -r "$ck" "$TMPD/bad3"
# the kernel image sits at 1 MiB: flip one of its bytes
b=$(od -An -tu1 -j $((0x100040)) -N1 "$ck/memory.bin" | tr -d ' ')
printf "\\$(printf '%03o' $(( (b ^ 0xff) & 0xff )))" |
  dd of="$TMPD/bad3/memory.bin" bs=1 seek=$((0x100040)) conv=notrunc status=none
msg=$("$AMBER" inspect "$TMPD/bad3" --verify 2>&1); rc=$?
echo "$msg" | tail -n 3
[ $rc != 0 ] && grep -qi 'chunk' <<<"$msg" || fail "flipped memory byte not found by --verify"
echo PASS
