# bench/hang-watch.sh: sourced by bench/nvme and bench/nvme-soak. Watches a VM that runs in
# the background and, when it hangs, tells whether the nested test machine caused it.
#
#   hang_watch PID LOG IDLE LIMIT
#       Waits until PID exits (returns 0, its exit status in HW_RC) or hangs (returns 1): LOG
#       has got no new line for IDLE seconds, or PID has run LIMIT seconds. Guest kernel
#       messages (lines starting with "[") do not count: a hung guest still prints its RCU
#       stall reports. Polls once a second.
#   hang_judge VMM SOCK DIR KVMAMD [AMBER]
#       For a hung VM (VMM amber: SOCK is its --control socket, the VM is checkpointed into DIR
#       and quits; VMM qemu: SOCK is its -monitor socket): prints its vCPUs and returns 0 if
#       tests/kvmbox/l1-leak shows the nested machine's own state in one of them (KVMAMD: the
#       nested machine's kvm-amd.ko; empty outside the nested machine: returns 1; AMBER: the
#       amber binary).
#   hang_stop PID [GRACE]
#       Ends PID (the VMM itself: start it with exec, not as a child of a subshell, or the
#       VMM outlives its killed shell and holds its disk's lock): SIGTERM, up to GRACE
#       seconds (default 10) to exit, then SIGKILL; reaps it.
# The caller stops PID afterwards with hang_stop (amber has quit if its checkpoint was written).
HW_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

hang_watch() {
  local pid=$1 log=$2 idle=$3 limit=$4 t size last=-1 still=0
  HW_RC=
  for ((t = 0; t < limit; t++)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid"
      HW_RC=$?
      return 0
    fi
    size=$(grep -acv '^.\{0,1\}\[' "$log" 2>/dev/null)
    if [ "$size" = "$last" ]; then
      still=$((still + 1))
      [ $still -ge "$idle" ] && return 1
    else
      still=0 last=$size
    fi
    sleep 1
  done
  return 1
}

# QEMU's vCPU RIPs, from its monitor (HMP "info registers -a")
hang_qemu_rips() {
  python3 - "$1" <<'PY' | tr -d '\r' | sed -n 's/^RIP=\([0-9a-f]*\).*/\1/p'
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
try:
    s.connect(sys.argv[1])
    s.sendall(b"info registers -a\n")
except OSError:
    sys.exit(0)
out = b""
end = time.time() + 5
while time.time() < end:
    try:
        b = s.recv(65536)
    except socket.timeout:
        break
    if not b:
        break
    out += b
sys.stdout.write(out.decode("latin-1"))
PY
}

hang_judge() {
  local vmm=$1 sock=$2 dir=$3 kvmamd=$4 amber=${5:-amber} rips
  if [ "$vmm" = amber ]; then
    rm -rf "$dir"
    "$amber" ctl "$sock" checkpoint "$dir" --then quit >/dev/null || return 1
    echo "the hung VM's checkpoint: $dir"
    "$amber" inspect "$dir" | grep '^  vcpu'
    [ -n "$kvmamd" ] && "$HW_REPO/tests/kvmbox/l1-leak" "$dir" "$kvmamd"
  else
    rips=$(hang_qemu_rips "$sock")
    echo "QEMU's vCPUs: rip ${rips:-unknown}"
    [ -n "$kvmamd" ] && [ -n "$rips" ] && "$HW_REPO/tests/kvmbox/l1-leak" --rip "$kvmamd" $rips
  fi
}

hang_stop() {
  local pid=$1 grace=${2:-10} i
  kill "$pid" 2>/dev/null
  for ((i = 0; i < grace * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}
