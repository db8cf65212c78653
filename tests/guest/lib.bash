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
  for f in bzImage initramfs.cpio; do
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
