#!/bin/bash
# tests/kvmbox/l1-leak on a small ELF object laid out like a kernel module (text sections in
# header order, each aligned, .init* left out) and on hand-made checkpoints: a vCPU whose RIP
# is in the module area at the page offset of the instruction after VMRUN and whose CR3 is
# outside guest RAM shows the nested machine's leaked state (exit 0); a RIP one byte off, a
# CR3 inside RAM or a RIP below the module area does not (exit 1); bad input exits 2.
#   l1_leak.sh          (AMBER_SRCDIR or the script's repository)
set -uo pipefail
REPO=${AMBER_SRCDIR:-$(cd "$(dirname "$0")/../../.." && pwd)}
LEAK=$REPO/tests/kvmbox/l1-leak
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
command -v python3 >/dev/null || { echo "SKIP: no python3"; exit 77; }
CC=${CC:-cc}
command -v "$CC" >/dev/null || { echo "SKIP: no C compiler to assemble the test object"; exit 77; }

# .text 0x1234 bytes at 0; .init.text not in the core; .text.unlikely (align 1) at 0x1234;
# .noinstr.text aligned to 16 at 0x1250, VMRUN at +0x20: the return is at 0x1273. A second
# VMRUN at +0x40 returns at 0x1293.
cat >"$T/mod.S" <<'S'
	.section .text,"ax"
	.fill 0x1234,1,0x90
	.section .init.text,"ax"
	.fill 0x100,1,0x90
	.section .text.unlikely,"ax"
	.fill 0x10,1,0x90
	.section .noinstr.text,"ax"
	.balign 16
	.fill 0x20,1,0x90
	vmrun
	.fill 0x1d,1,0x90
	vmrun
	ret
S
"$CC" -c -o "$T/mod.ko" "$T/mod.S" || { echo "SKIP: cannot assemble the test object"; exit 77; }

# checkpoint DIR RIP CR3: 2 vCPUs (vCPU 0 normal), 512 MiB of RAM; amber writes numbers
# above 2^63 as strings (bash arithmetic is signed: printf %u gives the unsigned value)
checkpoint() {
  mkdir -p "$1"
  cat >"$1/vm.json" <<J
{"memory": {"size": 536870912, "slots": [{"gpa": 0, "size": 536870912, "file_offset": 0}]},
 "vcpus": [
  {"id": 0, "regs": {"rip": 18446744071587930635, "rax": 0}, "sregs": {"cr3": 41394176}},
  {"id": 1, "regs": {"rip": "$(printf %u "$2")", "rax": 4331130880}, "sregs": {"cr3": $3}}]}
J
}
expect() { # RC DESCRIPTION COMMAND...
  local want=$1 what=$2 out rc
  shift 2
  out=$("$@" 2>&1); rc=$?
  [ "$rc" = "$want" ] || fail "$what: exit $rc, want $want: $out"
  echo "$out"
}
M=$((0xffffffffc06a4000))
checkpoint "$T/leak" $((M + 0x1273)) $((0x10259e000))
out=$(expect 0 "leaked state" python3 "$LEAK" "$T/leak" "$T/mod.ko")
grep -q "vcpu 1: holds the nested machine's state.*text +0x1273" <<<"$out" || fail "no leak line: $out"
grep -q "vcpu 0: .*its own state" <<<"$out" || fail "vcpu 0 not judged its own: $out"
checkpoint "$T/second" $((M + 0x2293)) $((0x10259e000))
expect 0 "the second VMRUN" python3 "$LEAK" "$T/second" "$T/mod.ko" >/dev/null
checkpoint "$T/off" $((M + 0x1274)) $((0x10259e000))
expect 1 "RIP one byte off" python3 "$LEAK" "$T/off" "$T/mod.ko" >/dev/null
checkpoint "$T/inram" $((M + 0x1273)) $((0x259e000))
expect 1 "CR3 inside guest RAM" python3 "$LEAK" "$T/inram" "$T/mod.ko" >/dev/null
checkpoint "$T/low" $((0xffffffff81001273)) $((0x10259e000))
expect 1 "RIP in kernel text" python3 "$LEAK" "$T/low" "$T/mod.ko" >/dev/null
expect 0 "--rip hit" python3 "$LEAK" --rip "$T/mod.ko" ffffffff81000000 ffffffffc0001273 >/dev/null
expect 1 "--rip miss" python3 "$LEAK" --rip "$T/mod.ko" ffffffffc0001272 >/dev/null
expect 2 "--rip not hex" python3 "$LEAK" --rip "$T/mod.ko" zz >/dev/null
expect 2 "not an ELF" python3 "$LEAK" "$T/leak" "$T/leak/vm.json" >/dev/null
expect 2 "no checkpoint" python3 "$LEAK" "$T/none" "$T/mod.ko" >/dev/null
echo '{"vcpus": 3}' >"$T/leak/vm.json"
expect 2 "bad vm.json" python3 "$LEAK" "$T/leak" "$T/mod.ko" >/dev/null
"$CC" -c -x c -o "$T/plain.o" - <<<'int f(void) { return 1; }'
expect 2 "no VMRUN" python3 "$LEAK" --rip "$T/plain.o" ffffffffc0001273 >/dev/null
[ $fails = 0 ] && echo "l1_leak: all passed"
[ $fails = 0 ]
