#!/bin/bash
# Run guest tests in the nested test machine, for tools/check.sh:
#   tools/nested-guest-tests.sh BUILDDIR RESULTS TEST...
# One nested boot (tests/kvmbox/run) runs all TESTs through tests/guest/run-all; its output goes
# to stdout and is appended to RESULTS ("PASS|FAIL|SKIP NAME ..." lines). A test that hangs the
# outer machine itself (QEMU's TCG; the timeouts inside it never fire) is caught by kvmbox's
# --idle-timeout (nothing printed for longer than the longest test may take, exit 124); one
# that brings it down (TCG's SVM emulation: rarely the outer machine resets, with no kernel
# message, exit 125) ends the boot at once. Either way the test that was running gets a
# "HANG NAME: ..." line and a new nested machine runs it once more (a second hang or crash
# fails it) and the tests after it; at most 4 boots, within AMBER_KVMBOX_TIMEOUT seconds
# (default 3600) in all. Tests left without a result are for the caller to count as failed.
# AMBER_KVMBOX_RUN replaces tests/kvmbox/run (the unit test of this script uses a fake).
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:?usage: nested-guest-tests.sh BUILDDIR RESULTS TEST...}
results=${2:?usage: nested-guest-tests.sh BUILDDIR RESULTS TEST...}
shift 2
KVMBOX=${AMBER_KVMBOX_RUN:-$REPO/tests/kvmbox/run}

# silent for longer than the longest test may run (its "# timeout:" header) + 2 minutes
idle=$(( $(sed -s -n '1,15s/^# *timeout: *\([0-9][0-9]*\).*/\1/p' "$REPO"/tests/guest/*.sh |
  sort -n | tail -n1) + 120 ))
budget=${AMBER_KVMBOX_TIMEOUT:-3600}
start=$SECONDS
todo=("$@") boots=0 hung_once=" "
mkdir -p "$BUILD/kvmbox"
while [ ${#todo[@]} -gt 0 ] && [ $boots -lt 4 ] && [ $((SECONDS - start)) -lt "$budget" ]; do
  boots=$((boots + 1))
  log=$BUILD/kvmbox/serial-check-$boots.log
  "$KVMBOX" --kit "$BUILD/guest-kit" --share "$BUILD" \
    --timeout $((budget - (SECONDS - start))) --idle-timeout "$idle" --log "$log" \
    -- "$REPO/tests/guest/run-all" "$BUILD" "${todo[@]}" 2>&1 | tee -a "$results"
  case "${PIPESTATUS[0]}" in
    124) what="hung while it ran (no output for ${idle} s)" ;;
    125) what="stopped while it ran (no exit status: QEMU's emulation failed)" ;;
    *) break ;;
  esac
  rest=() hung=
  for n in "${todo[@]}"; do
    grep -qE "^(PASS|FAIL|SKIP) $n[ :]" "$results" && continue
    if [ -n "$hung" ]; then
      rest+=("$n")
      continue
    fi
    hung=$n
    case "$hung_once" in
      *" $n "*)
        echo "FAIL $n (the nested test machine $what, the second time it ran)" | tee -a "$results" ;;
      *)
        echo "HANG $n: the nested test machine $what; serial log $log; running it again in a new one" |
          tee -a "$results"
        hung_once+="$n "
        rest+=("$n") ;;
    esac
  done
  todo=("${rest[@]}")
  [ ${#todo[@]} -gt 0 ] && echo "restarting the nested test machine for ${#todo[@]} tests"
done
exit 0
