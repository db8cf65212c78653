#!/bin/bash
# Every bad `amber run` input gives one clear message and exit 2 before any VM
# exists (so this runs without KVM); `amber ctl` on a dead socket fails clearly.
AMBER=${1:?usage: cli_errors.sh AMBER}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0

# expect CODE PATTERN -- ARGS...: amber ARGS exits CODE with PATTERN in stderr.
expect() {
  local code=$1 pat=$2
  shift 3
  local err rc
  err=$("$AMBER" "$@" 2>&1 </dev/null >/dev/null)
  rc=$?
  if [ "$rc" != "$code" ] || ! grep -q -- "$pat" <<<"$err"; then
    echo "FAIL: amber $* -> exit $rc, stderr: $err (want exit $code and /$pat/)"
    fails=$((fails + 1))
  else
    echo "ok: amber $* -> $rc: $err"
  fi
}

printf 'not a kernel at all' >"$T/notkernel"
dd if=/dev/zero of="$T/bz" bs=4096 count=2 status=none
printf 'HdrS' | dd of="$T/bz" bs=1 seek=$((0x202)) conv=notrunc status=none
printf '\x0f\x02' | dd of="$T/bz" bs=1 seek=$((0x206)) conv=notrunc status=none
printf '\x01' | dd of="$T/bz" bs=1 seek=$((0x236)) conv=notrunc status=none
printf '\x04' | dd of="$T/bz" bs=1 seek=$((0x1f1)) conv=notrunc status=none
touch "$T/unreadable"; chmod 000 "$T/unreadable"

expect 2 "kernel.*is required" -- run
expect 2 "/nonexistent/k: No such file" -- run --kernel /nonexistent/k
expect 2 "not a Linux bzImage" -- run --kernel "$T/notkernel"
expect 2 "is a directory" -- run --kernel "$T"
expect 2 "unknown option \"--bogus\"" -- run --kernel "$T/bz" --bogus
expect 2 "not a size" -- run --kernel "$T/bz" --memory lots
expect 2 "multiple of 2M" -- run --kernel "$T/bz" --memory 1M
expect 2 "at most" -- run --kernel "$T/bz" --cpus 100000
expect 2 "expected a number" -- run --kernel "$T/bz" --cpus -1
expect 2 "needs a value" -- run --kernel
expect 2 "initrd /nonexistent/i" -- run --kernel "$T/bz" --initrd /nonexistent/i
expect 2 "expected stdio, file:PATH or none" -- run --kernel "$T/bz" --serial tcp:x
expect 2 "expected exit or restart" -- run --kernel "$T/bz" --on-reboot maybe
if [ "$(id -u)" != 0 ]; then
  expect 2 "Permission denied" -- run --kernel "$T/unreadable"
fi
# A control socket already served by a live process is refused.
python3 - "$T/live.sock" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(4)
time.sleep(20)
PY
pypid=$!
for _ in $(seq 50); do [ -S "$T/live.sock" ] && break; sleep 0.1; done
expect 2 "in use" -- run --kernel "$T/bz" --control "$T/live.sock"
kill $pypid 2>/dev/null; wait $pypid 2>/dev/null
expect 2 "unknown command" -- frobnicate
expect 0 "" -- --version
expect 0 "" -- help run
expect 1 "cannot connect" -- ctl "$T/nothing.sock" status

[ $fails = 0 ] || { echo "$fails case(s) failed"; exit 1; }
echo "all cases passed"
