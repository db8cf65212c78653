#!/bin/bash
# timeout: 170
# QMP stop freezes a counting guest (the count does not advance while stopped),
# cont resumes it; malformed QMP input gets an error and leaves the guest running;
# quit ends amber with exit 0.
. "$(dirname "$0")/lib.bash"
need_kvm
need_amber
out=$TMPD/out
sock=$TMPD/ctl.sock
timeout -k 5 150 "$AMBER" run --kernel "$KIT/bzImage" --initrd "$KIT/initramfs.cpio" \
  --cmdline "$CMDLINE_BASE amber.test=counter amber.count=100000" --control "$sock" \
  </dev/null >"$out" 2>&1 &
pid=$!
PIDS+=($pid)
wait_for "$out" 'COUNT 5' 100 || { tr -d '\r' <"$out" | tail; fail "counter never started"; }
[ "$(ctl "$sock" status)" = running ] || fail "status is not running"
ctl "$sock" pause || fail "pause failed"
[ "$(ctl "$sock" status)" = paused ] || fail "status is not paused"
sleep 0.5
a=$(grep -c '^COUNT' "$out")
sleep 2
b=$(grep -c '^COUNT' "$out")
[ "$a" = "$b" ] || fail "count advanced while paused ($a -> $b)"
ctl "$sock" resume || fail "resume failed"
sleep 2
c=$(grep -c '^COUNT' "$out")
[ "$c" -gt "$b" ] || fail "count did not advance after resume ($b -> $c)"
# Malformed JSON: an error reply, the guest keeps running.
reply=$(printf '{"execute":"qmp_capabilities"}\n{"execute": nonsense}\n{"execute":"query-status"}\n' |
  timeout 60 python3 -S -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(5)
data = sys.stdin.buffer.read(); s.sendall(data); buf = b""
try:
    while buf.count(b"\n") < 4:
        chunk = s.recv(4096)
        if not chunk: break
        buf += chunk
except Exception: pass
print(buf.decode())' "$sock")
echo "$reply"
echo "$reply" | grep -q '"error"' || fail "malformed JSON got no error reply"
echo "$reply" | grep -q '"running": *true' || fail "query-status after bad input did not report running"
d=$(grep -c '^COUNT' "$out")
sleep 1.5
e=$(grep -c '^COUNT' "$out")
[ "$e" -gt "$d" ] || fail "guest stopped counting after malformed input"
ctl "$sock" quit || fail "quit failed"
wait $pid
rc=$?
[ $rc = 0 ] || fail "amber exited $rc after quit"
echo "PASS (paused at $a, resumed to $c)"
