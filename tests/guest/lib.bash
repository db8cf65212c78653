# Shared helpers for guest tests (sourced, not run). Each test: one behaviour,
# exit 0 pass, 1 fail, 77 skip with the reason as the last line.
set -u
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
AMBER_BUILD=${AMBER_BUILD:?AMBER_BUILD not set}
KIT=$AMBER_BUILD/guest-kit
AMBER=$AMBER_BUILD/amber
CMDLINE_BASE="console=ttyS0 quiet panic=-1"
TMPD=$(mktemp -d /tmp/amber-guest.XXXXXX)
trap 'cleanup_pids; rm -rf "$TMPD"' EXIT

PIDS=()
cleanup_pids() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
}

skip() { echo "$*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }

need_kvm() {
  local reason
  reason=$("$REPO/tools/kvm-usable" 2>&1) || skip "$reason"
}

need_amber() {
  [ -x "$AMBER" ] || skip "amber is not built ($AMBER missing)"
  for f in bzImage initramfs.cpio initramfs-tools.cpio; do
    [ -f "$KIT/$f" ] || fail "$KIT/$f missing (make guest-kit)"
  done
}

# wait_for FILE PATTERN SECONDS: poll until grep finds PATTERN in FILE.
wait_for() {
  local i n=$(( $3 * 10 ))
  for ((i = 0; i < n; i++)); do
    grep -q -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# ctl SOCKET CMD...: amber ctl with a bounded wait.
ctl() { timeout 20 "$AMBER" ctl "$@"; }

# counter_checkpoint OUT SOCK DIR MEMORY COUNT REACH: boot the counter scenario (counting to
# COUNT) on 2 vCPUs, wait for "COUNT REACH", checkpoint it into DIR (then quit) and wait for
# amber; CK_RC is amber's exit status. Fails the test if the counter or the checkpoint fails.
counter_checkpoint() {
  local out=$1 sock=$2 dir=$3 mem=$4 count=$5 reach=$6 pid
  timeout -k 5 150 "$AMBER" run --kernel "$KIT/bzImage" --initrd "$KIT/initramfs.cpio" \
    --cmdline "$CMDLINE_BASE amber.test=counter amber.count=$count" --cpus 2 --memory "$mem" \
    --control "$sock" </dev/null >"$out" 2>&1 &
  pid=$!
  PIDS+=($pid)
  wait_for "$out" "COUNT $reach" 120 || { tail "$out"; fail "counter never reached $reach"; }
  ctl "$sock" checkpoint "$dir" --then quit || fail "checkpoint failed"
  wait $pid
  CK_RC=$?
}

# stall_report SOCK DIR: a guest stopped making progress; show what its vCPUs are doing. A
# checkpoint of the running VM ("then stop") into DIR is the most complete record amber
# has: per vCPU the instruction pointer, MP state, pending events, LAPIC timer and IRR/ISR,
# TSC and TSC deadline; the UART and the IOAPIC. The VM is left stopped.
stall_report() {
  local sock=$1 dir=$2
  echo "--- stall report (checkpoint of the stalled VM in $dir)"
  ctl "$sock" checkpoint "$dir" --then stop >/dev/null 2>&1 || { echo "stall report: checkpoint failed"; return 1; }
  jq -M -c '.vcpus[] | {id, mp_state, rip: .regs.rip, rflags: .regs.rflags,
      timer: {lvt: .lapic.lvt.timer, initial: .lapic.timer_initial_count,
              current: .lapic.timer_current_count},
      tpr: .lapic.tpr, ppr: .lapic.ppr, irr: .lapic.irr, isr: .lapic.isr, events,
      msrs: [.msrs[] | select(.name | test("TSC|ASYNC|SYSTEM_TIME")) | "\(.name)=\(.value)"]}' \
    "$dir/vm.json" 2>&1
  jq -M -c '.vm.irqchip.ioapic // .vm.irqchip | tostring | .[0:600]' "$dir/vm.json" 2>&1
  jq -M -c '.devices[] | select(.class == "uart16550" or .class == "uart") | .state' "$dir/vm.json" 2>&1 | head -c 800
  echo
}
