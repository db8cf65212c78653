# Helpers for the gdb guest tests (sourced after lib.bash): amber with --gdb in the
# background, Debian's gdb in batch mode against it (tests/guest/gdb_*.sh).
command -v gdb >/dev/null || fail "gdb is not installed (Debian package gdb, see tools/deps.sh)"
PVH_GDB=$AMBER_BUILD/tests/guest/pvh_gdb	# the test guest; its ELF is gdb's symbol file
GDB_SOCK=$TMPD/gdb.sock
CTL_SOCK=$TMPD/ctl.sock
AMBER_OUT=$TMPD/amber.out	# amber's messages
SERIAL=$TMPD/serial		# the guest's console (COM1), kept apart so markers stay whole
GDB_OUT=$TMPD/gdb.out

# note TEXT: a progress line with the seconds since the test started (the log shows where time goes).
note() { echo "[${SECONDS}s] $*"; }

need_pvh_gdb() { [ -f "$PVH_GDB" ] || fail "$PVH_GDB missing (built by tests/guest/meson.build)"; }

# amber_bg SECONDS ARGS...: `amber run ARGS` in the background (AMBER_PID), its messages in
# $AMBER_OUT, the guest's console in $SERIAL.
amber_bg() {
  local limit=$1
  shift
  : >"$SERIAL"
  timeout -k 5 "$limit" "$AMBER" run "$@" --serial "file:$SERIAL" </dev/null >"$AMBER_OUT" 2>&1 &
  AMBER_PID=$!
  PIDS+=("$AMBER_PID")
}

# wait_socket PATH: until amber listens on the UNIX socket PATH.
wait_socket() {
  local i
  for ((i = 0; i < 150; i++)); do
    [ -S "$1" ] && return 0
    kill -0 "$AMBER_PID" 2>/dev/null || break
    sleep 0.1
  done
  tr -d '\r' <"$AMBER_OUT"
  fail "amber never listened on $1"
}

# gdb_bg SECONDS SOCKET GDB-ARGS...: gdb -batch in the background (GDB_PID), output in
# $GDB_OUT. It starts at once (gdb takes seconds to start in the nested machine, as amber
# does to load a kernel) and waits for SOCKET (amber's gdb or control socket) before its
# commands. GDB_PID is timeout's, which passes SIGINT on to gdb: `kill -INT $GDB_PID` is
# Ctrl-C. (--foreground: without it timeout also signals its process group, so gdb would
# get a second SIGINT, ask "Give up waiting?" and disconnect.)
gdb_bg() {
  local limit=$1 sock=$2
  shift 2
  timeout --foreground -k 5 "$limit" gdb -batch -nx -q -ex 'set pagination off' -ex 'set confirm off' \
    -ex "shell for i in \$(seq 300); do [ -S $sock ] && break; sleep 0.1; done" \
    "$@" </dev/null >"$GDB_OUT" 2>&1 &
  GDB_PID=$!
  PIDS+=("$GDB_PID")
}

# gdb_wait: wait for gdb, show its output, collect the NAME=VALUE pairs it printed (val);
# sets GDB_RC.
declare -A GDB_VALS
gdb_wait() {
  local line tok toks
  wait "$GDB_PID"
  GDB_RC=$?
  # bash builtins only: every process costs ~0.1 s in the nested machine
  while IFS= read -r line; do
    echo "gdb| $line"
    read -ra toks <<<"$line"
    for tok in "${toks[@]}"; do
      if [[ $tok =~ ^([A-Za-z0-9-]+)=(.*)$ ]] && [ -z "${GDB_VALS[${BASH_REMATCH[1]}]+set}" ]; then
        GDB_VALS[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
      fi
    done
  done <"$GDB_OUT"
}

# gdb_fg SECONDS GDB-ARGS...: gdb_bg + gdb_wait.
gdb_fg() { gdb_bg "$@"; gdb_wait; }

# amber_wait: wait for amber, show its messages and the guest's console; sets AMBER_RC.
amber_wait() {
  wait "$AMBER_PID"
  AMBER_RC=$?
  tr -d '\r' <"$AMBER_OUT" | sed 's/^/amber| /'
  tr -d '\r' <"$SERIAL" | sed 's/^/guest| /'
}

# val NAME: the value gdb printed as NAME=VALUE (first occurrence), after gdb_wait.
val() { echo "${GDB_VALS[$1]:-}"; }

# expect_eq WHAT A B: fail unless A = B (as numbers when both are).
expect_eq() {
  [ -n "$2" ] && [ -n "$3" ] && [ $(($2)) = $(($3)) ] 2>/dev/null && return 0
  fail "$1: got '$2', expected '$3'"
}

# hex16 ADDR-LABEL: the 16 bytes gdb's x/16xb printed for lines starting with ADDR-LABEL.
hex16() { grep -E "^$1" "$GDB_OUT" | sed 's/^[^:]*://' | tr -s ' \t' ' ' | xargs; }
PATTERN16="0x00 0x11 0x22 0x33 0x44 0x55 0x66 0x77 0x88 0x99 0xaa 0xbb 0xcc 0xdd 0xee 0xff"

# qmp JSON: one raw QMP request on $CTL_SOCK; prints the return value.
qmp() { timeout 20 "$AMBER" ctl "$CTL_SOCK" qmp "$1"; }
