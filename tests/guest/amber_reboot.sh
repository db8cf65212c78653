#!/bin/bash
# timeout: 170
# A guest reboot makes amber exit 0 after saying the guest rebooted; with
# --on-reboot restart the guest boots again (twice seen), then SIGTERM ends it.
. "$(dirname "$0")/lib.bash"
need_kvm
need_amber
timeout -k 5 60 "$AMBER" run --kernel "$KIT/bzImage" --initrd "$KIT/initramfs.cpio" \
  --cmdline "$CMDLINE_BASE amber.test=reboot" </dev/null >"$TMPD/out" 2>&1
rc=$?
tr -d '\r' <"$TMPD/out" | grep -v '^\[' | tail -n 5
grep -q 'REBOOTING' "$TMPD/out" || fail "guest never reached the reboot scenario"
grep -q 'the guest rebooted' "$TMPD/out" || fail "amber did not say the guest rebooted"
[ $rc = 0 ] || fail "amber exited $rc after a guest reboot (expected 0)"

sock=$TMPD/ctl.sock
timeout -k 5 120 "$AMBER" run --kernel "$KIT/bzImage" --initrd "$KIT/initramfs.cpio" \
  --cmdline "$CMDLINE_BASE amber.test=reboot" --on-reboot restart --control "$sock" \
  </dev/null >"$TMPD/out2" 2>&1 &
pid=$!
PIDS+=($pid)
for _ in $(seq 900); do
  [ "$(grep -c 'AMBER-GUEST: userspace' "$TMPD/out2")" -ge 2 ] && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.1
done
n=$(grep -c 'AMBER-GUEST: userspace' "$TMPD/out2")
[ "$n" -ge 2 ] || { tail -n 20 "$TMPD/out2"; fail "with --on-reboot restart the guest booted $n time(s)"; }
# SIGTERM ends amber cleanly (exit 0, control socket removed) even mid-reboot.
kill -TERM $pid
wait $pid
rc=$?
[ $rc = 0 ] || fail "amber exited $rc after SIGTERM"
[ ! -e "$sock" ] || fail "control socket $sock left behind"
echo PASS
