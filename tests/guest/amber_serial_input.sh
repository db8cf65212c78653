#!/bin/bash
# timeout: 150
# Bytes written to amber's stdin reach the guest's ttyS0.
. "$(dirname "$0")/lib.bash"
need_kvm
need_amber
out=$TMPD/out
mkfifo "$TMPD/in"
timeout -k 5 120 "$AMBER" run --kernel "$KIT/bzImage" --initrd "$KIT/initramfs.cpio" \
  --cmdline "$CMDLINE_BASE amber.test=echo amber.timeout=60" \
  <"$TMPD/in" >"$out" 2>&1 &
PIDS+=($!)
pid=$!
exec 3>"$TMPD/in"
wait_for "$out" ECHO-READY 100 || { tr -d '\r' <"$out" | tail; fail "guest never asked for input"; }
sleep 0.5
printf 'hello-from-host\r' >&3
wait $pid
rc=$?
exec 3>&-
tr -d '\r' <"$out" | tail -n 20
grep -q 'ECHO: hello-from-host' "$out" || fail "the guest did not receive the line"
[ $rc = 0 ] || fail "amber exited $rc"
echo "PASS"
