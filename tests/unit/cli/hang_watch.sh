#!/bin/bash
# bench/hang-watch.sh: hang_watch returns 0 with the exit status of a VM that ends, 1 for one
# that falls silent or runs over its limit; hang_judge checkpoints a hung amber VM through its
# control socket (a fake amber here) and returns 0 only when tests/kvmbox/l1-leak shows the
# nested machine's state in a vCPU, 1 otherwise (and without a kvm-amd.ko).
#   hang_watch.sh          (AMBER_SRCDIR or the script's repository)
set -uo pipefail
REPO=${AMBER_SRCDIR:-$(cd "$(dirname "$0")/../../.." && pwd)}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
command -v python3 >/dev/null || { echo "SKIP: no python3"; exit 77; }
CC=${CC:-cc}
command -v "$CC" >/dev/null || { echo "SKIP: no C compiler to assemble the test object"; exit 77; }
. "$REPO/bench/hang-watch.sh"

# a VM that prints for 2 s and exits 3
( for i in 1 2; do echo "line $i"; sleep 1; done; exit 3 ) >"$T/a.log" &
hang_watch $! "$T/a.log" 5 20 || fail "an exiting VM was judged hung"
[ "$HW_RC" = 3 ] || fail "exit status $HW_RC, want 3"
# a VM that prints once and then falls silent: hung after 2 s of silence, long before 20
( echo start; sleep 30 ) >"$T/b.log" &
p=$!
s=$SECONDS
hang_watch $p "$T/b.log" 2 20 && fail "a silent VM was not judged hung"
[ $((SECONDS - s)) -le 6 ] || fail "the silent VM took $((SECONDS - s)) s to be judged"
kill $p
# a hung guest whose kernel still prints (RCU stall reports) is hung all the same
( echo start; for i in $(seq 30); do printf '\r[ %d.0] rcu: INFO: stall\n' $i; sleep 0.5; done ) >"$T/k.log" &
p=$!
s=$SECONDS
hang_watch $p "$T/k.log" 2 20 && fail "a guest printing only kernel messages was not judged hung"
[ $((SECONDS - s)) -le 6 ] || fail "the guest printing kernel messages took $((SECONDS - s)) s"
kill $p
# a VM that prints all the time but runs over its limit
( for i in $(seq 30); do echo "line $i"; sleep 1; done ) >"$T/c.log" &
p=$!
hang_watch $p "$T/c.log" 5 3 && fail "a VM over its limit was not judged hung"
kill $p
wait 2>/dev/null

# hang_stop ends a VMM that ignores SIGTERM (stuck in KVM_RUN) within its grace, and reaps it
bash -c 'trap "" TERM; for i in $(seq 300); do sleep 0.1; done' &
p=$!
sleep 0.3
s=$SECONDS
hang_stop $p 1
kill -0 $p 2>/dev/null && fail "hang_stop left a VMM that ignores SIGTERM running"
[ $((SECONDS - s)) -le 4 ] || fail "hang_stop took $((SECONDS - s)) s"
# bench/nvme starts the VMM with exec, so the PID it stops is the VMM and not a shell above it
( eval "exec sleep 30" ) </dev/null >/dev/null 2>&1 &
p=$!
sleep 0.3
[ "$(cat /proc/$p/comm 2>/dev/null)" = sleep ] || fail "the started PID is not the VMM"
hang_stop $p
grep -q 'eval "exec ${CMD' "$REPO/bench/nvme" || fail "bench/nvme does not exec its VMMs"

# hang_judge with a fake amber whose checkpoint holds the given vCPU 1 RIP
cat >"$T/mod.S" <<'S'
	.section .noinstr.text,"ax"
	.fill 0x20,1,0x90
	vmrun
	ret
S
"$CC" -c -o "$T/kvm-amd.ko" "$T/mod.S" || { echo "SKIP: cannot assemble the test object"; exit 77; }
cat >"$T/amber" <<'A'
#!/bin/bash
case "$1" in
  ctl) [ "$2" = "$T_SOCK" ] && [ "$3 $5 $6" = "checkpoint --then quit" ] || exit 1
       mkdir -p "$4" && cat >"$4/vm.json" <<J
{"memory": {"slots": [{"gpa": 0, "size": 536870912}]},
 "vcpus": [{"id": 0, "regs": {"rip": 1, "rax": 0}, "sregs": {"cr3": 4096}},
           {"id": 1, "regs": {"rip": "$T_RIP", "rax": 0}, "sregs": {"cr3": 4328521728}}]}
J
       ;;
  inspect) echo "  vcpu 1       fake" ;;
  *) exit 1 ;;
esac
A
chmod +x "$T/amber"
export T_SOCK=$T/sock
export T_RIP=$(printf %u 0xffffffffc0001023)
out=$(hang_judge amber "$T/sock" "$T/ck" "$T/kvm-amd.ko" "$T/amber") ||
  fail "leaked state not recognised: $out"
grep -q "vcpu 1: holds the nested machine's state" <<<"$out" || fail "no l1-leak line: $out"
grep -q "the hung VM's checkpoint: $T/ck" <<<"$out" || fail "checkpoint not named: $out"
export T_RIP=$(printf %u 0xffffffffc0001024)
hang_judge amber "$T/sock" "$T/ck" "$T/kvm-amd.ko" "$T/amber" >/dev/null &&
  fail "a guest's own hang judged the nested machine's"
export T_RIP=$(printf %u 0xffffffffc0001023)
hang_judge amber "$T/sock" "$T/ck" "" "$T/amber" >/dev/null &&
  fail "judged without a kvm-amd.ko"
hang_judge amber "$T/other-sock" "$T/ck" "$T/kvm-amd.ko" "$T/amber" >/dev/null &&
  fail "judged although the checkpoint failed"
[ $fails = 0 ] && echo "hang_watch: all passed"
[ $fails = 0 ]
