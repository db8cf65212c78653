# Helpers of the checkpoint guest tests (amber_ckpt_*.sh), on top of lib.bash: a guest
# running the memcheck scenario (tools/guest-kit/scenarios/memcheck, progs/memfill.c),
# whose serial input comes from a FIFO the test writes to. Sourced, not run.

# mc_start OUT SOCK -- AMBER_RUN_ARGS...: start amber (timeout MC_TIMEOUT, default 200 s)
# with stdin from a new FIFO and stdout+stderr to OUT; sets MC_PID and opens fd 7 for
# writing the guest's serial input (mc_send). Only one guest at a time.
mc_start() {
  local out=$1 sock=$2
  shift 3
  rm -f "$TMPD/serial.in" "$sock"
  mkfifo "$TMPD/serial.in"
  timeout -k 5 "${MC_TIMEOUT:-200}" "$AMBER" run "$@" --control "$sock" \
    <"$TMPD/serial.in" >"$out" 2>&1 &
  MC_PID=$!
  PIDS+=($MC_PID)
  exec 7>"$TMPD/serial.in"
}

# mc_boot OUT SOCK MEMORY MIB [CMDLINE...]: boot the guest kit's memcheck scenario on 2 vCPUs
# with MIB MiB of pattern (amber.mem_mb).
mc_boot() {
  local out=$1 sock=$2 mem=$3 mb=$4
  shift 4
  mc_start "$out" "$sock" -- --kernel "$KIT/bzImage" --initrd "$KIT/initramfs.cpio" \
    --cpus 2 --memory "$mem" \
    --cmdline "$CMDLINE_BASE amber.test=memcheck amber.mem_mb=$mb $*"
}

# mc_restore OUT SOCK DIR [OPTIONS...]: amber run --restore DIR in a new process.
mc_restore() {
  local out=$1 sock=$2 dir=$3
  shift 3
  mc_start "$out" "$sock" -- --restore "$dir" "$@"
}

# mc_send LINE: a line to the guest's serial console (the scenario echoes "ECHO: LINE").
mc_send() { printf '%s\r' "$1" >&7; }

# mc_finish OUT: end the guest ("quit": memfill verifies everything once more), wait for
# amber; fails unless the scenario passed after a full final verification and amber exited 0.
mc_finish() {
  local out=$1 rc
  mc_send quit
  wait "$MC_PID"
  rc=$?
  exec 7>&-
  grep -q 'ECHO: quit' "$out" || fail "the guest never read 'quit' from its serial console"
  grep -q 'MEMCHECK DONE' "$out" || { mc_tail "$out"; fail "no final MEMCHECK DONE"; }
  grep -q 'AMBER-TEST memcheck: PASS' "$out" || { mc_tail "$out"; fail "memcheck did not pass"; }
  [ "$rc" = 0 ] || fail "amber exited $rc"
}

mc_tail() { tr -d '\r' <"$1" | grep -v '^\[' | tail -n "${2:-15}"; }

# mc_lines OUT: OUT's complete lines, without carriage returns (a line still being
# written has no newline yet and is left out).
mc_lines() {
  if [ -n "$(tail -c1 "$1")" ]; then sed '$d' "$1"; else cat "$1"; fi | tr -d '\r'
}

# step MESSAGE: a progress line with the seconds since the test started.
step() { echo "[${SECONDS}s] $*"; }

# mc_rtc OUT TOKEN: ask the guest for its CMOS RTC time (scenario: a line "rtc..." is answered
# "RTC rtc... SECONDS"); sets MC_RTC to SECONDS and MC_SEEN to the host's time when the
# answer came (call it directly, not in $(...)).
mc_rtc() {
  local i v
  mc_send "$2"
  for ((i = 0; i < 150; i++)); do
    v=$(mc_lines "$1" | sed -n "s/^RTC $2 \([0-9][0-9]*\)\$/\1/p")
    [ -n "$v" ] && { MC_SEEN=$EPOCHSECONDS; MC_RTC=$v; return 0; }
    sleep 0.2
  done
  return 1
}

# mc_ok OUT: the whole "MEMCHECK OK" lines (amber's own log lines go to the same file and can
# land in the middle of one: such a line is left out).
mc_ok() {
  mc_lines "$1" | grep -E '^MEMCHECK OK n=[0-9]+ t=[0-9]+( r[0-9]+=[0-9]+ c[0-9]+=-?[0-9]+)+$'
}
# mc_last OUT KEY: KEY's value in the last "MEMCHECK OK" line (n, t, r0, c0, r1, c1).
mc_last() {
  mc_ok "$1" | tail -n1 | tr ' ' '\n' | sed -n "s/^$2=//p"
}
# mc_first OUT KEY: the same from the first "MEMCHECK OK" line.
mc_first() {
  mc_ok "$1" | head -n1 | tr ' ' '\n' | sed -n "s/^$2=//p"
}

# mc_wait_n OUT N SECONDS: until a "MEMCHECK OK n=N" (or later) line; MC_SEEN is the host's
# time (s) when it was seen.
mc_wait_n() {
  local i v
  for ((i = 0; i < $3 * 5; i++)); do
    v=$(mc_last "$1" n)
    [ -n "$v" ] && [ "$v" -ge "$2" ] && { MC_SEEN=$EPOCHSECONDS; return 0; }
    grep -q 'MEMCHECK FAIL' "$1" && return 1
    kill -0 "$MC_PID" 2>/dev/null || return 1
    sleep 0.2
  done
  return 1
}

# mc_wait_rounds OUT R0 R1 SECONDS: until both workers' round counters exceed R0 and R1 by
# at least 2, i.e. each has verified all of its blocks at least once since then.
mc_wait_rounds() {
  local i a b
  for ((i = 0; i < $4 * 5; i++)); do
    a=$(mc_last "$1" r0) b=$(mc_last "$1" r1)
    [ -n "$a" ] && [ -n "$b" ] && [ "$a" -ge $(($2 + 2)) ] && [ "$b" -ge $(($3 + 2)) ] && return 0
    grep -q 'MEMCHECK FAIL' "$1" && return 1
    kill -0 "$MC_PID" 2>/dev/null || return 1
    sleep 0.2
  done
  return 1
}

# mc_checkpoint SOCK DIR [OPTIONS...]: QMP checkpoint; prints the timing reply on one line.
mc_checkpoint() {
  local sock=$1 r
  shift
  r=$(timeout 300 "$AMBER" ctl "$sock" checkpoint "$@" 2>&1) || { echo "$r"; return 1; }
  echo "$r" | tr -d '\n ' | sed 's/^/checkpoint: /'; echo
}

# mc_check_continued OUT_BEFORE OUT_AFTER: the restored guest went on where it was (no boot,
# no refill, the line counter continues) and both vCPUs' workers are alive and on their CPUs.
mc_check_continued() {
  local before=$1 after=$2 last first
  grep -q 'AMBER-GUEST: userspace\|MEMCHECK START' "$after" &&
    fail "the restored guest started again instead of continuing"
  last=$(mc_last "$before" n)
  first=$(mc_first "$after" n)
  [ -n "$first" ] || { mc_tail "$after"; fail "the restored guest printed no MEMCHECK line"; }
  [ "$first" -ge "$last" ] && [ "$first" -le $((last + 3)) ] ||
    fail "the restored guest continued at n=$first, the checkpoint was taken after n=$last"
}

# mc_check_damaged CK SOCK OUT: flip a byte of memory.bin in CK's first zero chunk (the most
# frequent digest is the zero chunk's; the guest never looks there, and checks stop at the
# first bad chunk: the earlier, the quicker). Copy mode must refuse CK before loading
# anything (exit 2, chunk named); lazy mode runs the guest, and the background digest check
# must stop the VM naming the chunk. CK is damaged afterwards.
mc_check_damaged() {
  local ck=$1 sock=$2 out=$3 chunk msg rc
  chunk=$(jq -r '.memory.digests as $d | ($d | group_by(.) | max_by(length) | .[0]) as $z
    | [$d | to_entries[] | select(.value == $z) | .key] | first' "$ck/vm.json")
  [ -n "$chunk" ] && [ "$chunk" != null ] || fail "no zero chunk in the checkpoint"
  printf '\x5a' | dd of="$ck/memory.bin" bs=1 seek=$((chunk * 2097152 + 4242)) conv=notrunc status=none
  msg=$(timeout 120 "$AMBER" run --restore "$ck" --restore-mode copy 2>&1 </dev/null); rc=$?
  echo "$msg" | tail -n 2
  [ $rc = 2 ] || fail "copy restore of a damaged memory.bin exited $rc, not 2"
  grep -q "chunk $chunk .*does not match its digest" <<<"$msg" || fail "copy restore did not name chunk $chunk"
  grep -q 'MEMCHECK' <<<"$msg" && fail "the guest ran from a damaged checkpoint in copy mode"
  step "copy mode refused the damaged checkpoint"
  mc_restore "$out" "$sock" "$ck"
  wait_for "$out" "chunk $chunk .*does not match its digest" 150 ||
    { mc_tail "$out"; fail "lazy restore never reported the damaged chunk"; }
  grep -q 'stopping it' "$out" || fail "the VM was not stopped"
  [ "$(ctl "$sock" status)" = paused ] || fail "the VM is not paused after the digest mismatch"
  ctl "$sock" quit >/dev/null || fail "quit failed"
  wait "$MC_PID"
  exec 7>&-
  tr -d '\r' <"$out" | grep 'does not match' | tail -n1
  step "lazy restore stopped the VM at the damaged chunk"
}

# mc_stalled OUT SOCK MESSAGE: the guest stopped making progress: its last lines, the state
# of its vCPUs (stall_report), then fail with MESSAGE.
mc_stalled() {
  mc_tail "$1"
  stall_report "$2" "$TMPD/stalled-$RANDOM"
  fail "$3"
}
