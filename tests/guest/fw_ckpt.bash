# Checkpoint/restore of a guest booted through firmware (--firmware FW --kernel ...),
# shared by seabios_checkpoint.sh and ovmf_checkpoint.sh; sourced after lib.bash.
# fw_ckpt_run FIRMWARE CPUS MEMORY BOOT_LIMIT: boots the guest kit's "fwrom" scenario
# (tools/guest-kit/scenarios/fwrom: reads the reset-vector word and a zeroed page of the
# legacy BIOS area through /dev/mem every 0.2 s), checkpoints it with "amber ctl SOCK
# checkpoint DIR --then quit" after FWROM 10, verifies the checkpoint, and restores it
# twice, with --restore-mode copy and lazy (no other option). Passes when each restored
# guest continues the sequence without booting again, still reads the firmware image's
# reset vector (the ROM mapping is re-created on restore) and its zeros at 0xe0000 (not
# the image's copy there), finishes and powers off (exit 0).
fw_ckpt_run() {
  local fw=$1 cpus=$2 mem=$3 limit=$4
  local sock=$TMPD/ctl.sock ck=$TMPD/ck out1=$TMPD/out1
  local want last rc pid t0
  # The word at the reset vector: the image's bytes at size - 16, little endian.
  want=0x$(od -An -tx4 -j $(( $(stat -c %s "$fw") - 16 )) -N4 "$fw" | tr -d ' ' | tr a-f A-F)
  echo "reset vector word of $fw: $want"
  t0=$(date +%s%N)
  timeout -k 5 "$limit" "$AMBER" run --firmware "$fw" --kernel "$KIT/bzImage" \
    --initrd "$KIT/initramfs.cpio" --cmdline "$CMDLINE_BASE amber.test=fwrom amber.count=60" \
    --cpus "$cpus" --memory "$mem" --control "$sock" --debugcon "file:$TMPD/debugcon1" \
    </dev/null >"$out1" 2>&1 &
  pid=$!
  PIDS+=($pid)
  wait_for "$out1" 'FWROM 10 ' $((limit - 20)) ||
    { tr -d '\r' <"$out1" | tail -n 20; fail "the guest never printed FWROM 10"; }
  echo "FWROM 10 after $((($(date +%s%N) - t0) / 1000000)) ms"
  ctl "$sock" checkpoint "$ck" --then quit || fail "checkpoint failed"
  wait $pid
  rc=$?
  [ $rc = 0 ] || fail "amber exited $rc after checkpoint --then quit"
  tr -d '\r' <"$out1" | grep -a '^FWROM' | tail -n 2
  last=$(tr -d '\r' <"$out1" | grep -ao '^FWROM [0-9]* ' | tail -n1 | cut -d' ' -f2)
  # complete lines only: amber's own messages share the file and can cut into a guest line
  tr -d '\r' <"$out1" | grep -aE '^FWROM [0-9]+ 0x[0-9A-Fa-f]{8} 0x[0-9A-Fa-f]{8}$' |
    grep -qv " $want 0x00000000\$" &&
    fail "before the checkpoint the guest read something else than $want at 0xfffffff0 and 0 at 0xe0000"
  "$AMBER" inspect "$ck" --verify >"$TMPD/inspect" 2>&1 ||
    { cat "$TMPD/inspect"; fail "inspect --verify failed"; }
  jq -e '.devices[] | select(.class == "fw_cfg" or .id == "fw_cfg")' "$ck/vm.json" >/dev/null ||
    fail "vm.json has no fw_cfg device section"
  jq -e --arg fw "$fw" '[.. | strings] | index($fw)' "$ck/vm.json" >/dev/null ||
    fail "vm.json's configuration does not name the firmware $fw"

  # Copy mode writes only the pages memory.bin holds (holes are zero pages): RAM the
  # platform filled before the restore (the legacy BIOS area) must not show through.
  fw_ckpt_restore "$ck" "$last" "$want" "$limit" --restore-mode copy
  fw_ckpt_restore "$ck" "$last" "$want" "$limit" --restore-mode lazy
  echo PASS
}

# fw_ckpt_restore DIR LAST WANT LIMIT OPTIONS...: amber run --restore DIR OPTIONS; the guest
# continues after FWROM LAST reading WANT at the reset vector and 0 at 0xe0000, to the end.
fw_ckpt_restore() {
  local ck=$1 last=$2 want=$3 limit=$4 out=$TMPD/out-restore first bad rc t0
  shift 4
  echo "--- amber run --restore DIR $*"
  local sock=$TMPD/restore.sock pid cur seen=-1 still=0 i
  t0=$(date +%s%N)
  rm -f "$sock"
  timeout -k 5 "$limit" "$AMBER" run --restore "$ck" "$@" --control "$sock" </dev/null >"$out" 2>&1 &
  pid=$!
  PIDS+=($pid)
  # The guest prints a line every 0.2 s: 60 s without a new one is a stall, reported with
  # the vCPUs' state (stall_report) instead of waiting for the time limit.
  for ((i = 0; i < limit * 2; i++)); do
    kill -0 $pid 2>/dev/null || break
    sleep 0.5
    cur=$(tr -d '\r' <"$out" | grep -ac '^FWROM')
    if [ "$cur" = "$seen" ]; then still=$((still + 1)); else still=0 seen=$cur; fi
    if [ $still -ge 120 ]; then
      tr -d '\r' <"$out" | tail -n 5
      stall_report "$sock" "$TMPD/stalled"
      ctl "$sock" quit >/dev/null 2>&1
      wait $pid
      fail "the restored guest ($*) stopped making progress after $(tr -d '\r' <"$out" | grep -a '^FWROM' | tail -n1)"
    fi
  done
  wait $pid
  rc=$?
  echo "restored run: exit $rc after $((($(date +%s%N) - t0) / 1000000)) ms"
  tr -d '\r' <"$out" | grep -av '^\[' | grep -av '^FWROM' | tail -n 8
  tr -d '\r' <"$out" | grep -a '^FWROM' | sed -n '1p;$p'
  grep -aq 'AMBER-GUEST: userspace' "$out" &&
    fail "the restored guest booted again instead of continuing"
  first=$(tr -d '\r' <"$out" | grep -ao '^FWROM [0-9]* ' | head -n1 | cut -d' ' -f2)
  [ -n "$first" ] || fail "the restored guest printed no FWROM line"
  [ "$first" -ge "$last" ] && [ "$first" -le $((last + 2)) ] ||
    fail "restored guest continued at FWROM $first, checkpoint was after FWROM $last"
  bad=$(tr -d '\r' <"$out" | grep -a '^FWROM' | grep -v " $want 0x00000000\$" | head -n1)
  [ -z "$bad" ] ||
    fail "after restore ($*) the guest reads '$bad' (want ROM $want, 0 at 0xe0000)"
  grep -aq 'FWROM 59 ' "$out" || fail "the restored guest did not reach FWROM 59"
  grep -aq 'AMBER-TEST fwrom: PASS' "$out" || fail "scenario fwrom did not pass after restore"
  [ $rc = 0 ] || fail "restored amber exited $rc"
}
