#!/bin/bash
# timeout: 240
# fio with crc32c verification against amber's NVMe controller (scenario
# tools/guest-kit/scenarios/nvme-fio), 2 vCPUs: 8 jobs at once on /dev/nvme0n1, libaio,
# O_DIRECT: 2 each of 4 KiB random writes at queue depth 1, 16 and 32 (2 MiB each) and of
# mixed sizes (4-128 KiB, 4 MiB each) at depth 16, each in its own 4 MiB region, every block
# verified after the writes (verify_fatal). The guest prints the md5 of the 32 MiB; the
# host's image must have the same. Then a NEW amber process boots the same image: fio --verify_only replays the
# same jobs and checks every block the first boot wrote, the md5 is unchanged.
. "$(dirname "$0")/lib.bash"
need_kvm
need_amber

M=1048576
img=$TMPD/disk.img
truncate -s $((32 * M)) "$img"

# boot MODE OUT: one amber run of the nvme-fio scenario on the image
boot() {
  local start rc
  start=$(date +%s%N)
  timeout -k 5 150 "$AMBER" run --kernel "$KIT/bzImage" --initrd "$KIT/initramfs-tools.cpio" \
    --cmdline "$CMDLINE_BASE amber.test=nvme-fio amber.nvmefio.mode=$1" \
    --cpus 2 --memory 160M --serial stdio --disk "nvme:$img" </dev/null >"$2.raw" 2>&1
  rc=$?
  tr -d '\r' <"$2.raw" >"$2"
  echo "boot $1: amber exit $rc after $((($(date +%s%N) - start) / 1000000)) ms"
  grep -E '^(NVMEFIO|AMBER-|fio|verify)|error|warn' "$2" | tail -n 30
  if [ $rc = 124 ] || ! grep -q 'AMBER-TEST nvme-fio: PASS' "$2"; then
    echo "--- end of the console (kernel messages included):"
    tail -n 40 "$2"
    [ $rc = 124 ] && fail "amber ($1) did not finish within 150 s"
    fail "scenario nvme-fio ($1) did not pass"
  fi
  [ $rc = 0 ] || fail "amber ($1) exited $rc after the guest powered off (expected 0)"
}
# jobs OUT: 8 jobs (qd1 qd16 qd32 mixed, 2 each) without error that wrote and read (verified)
# their whole region (fio counts the writes of --verify_only too, without doing them)
jobs() {
  local n
  n=$(grep -cE "^NVMEFIO job (qd(1|16|32) err=0 read_kb=2048 write_kb=2048|mixed err=0 read_kb=4096 write_kb=4096)\$" "$1")
  [ "$n" = 8 ] || fail "expected 8 fio jobs with err=0 that wrote and verified their whole region, got $n"
}

boot matrix "$TMPD/out1"
jobs "$TMPD/out1"
sum1=$(sed -n 's/^NVMEFIO sum \([0-9a-f]*\)$/\1/p' "$TMPD/out1")
host1=$(head -c $((32 * M)) "$img" | md5sum | cut -d' ' -f1)
echo "guest md5 $sum1, host md5 $host1"
[ -n "$sum1" ] && [ "$sum1" = "$host1" ] || fail "the image file differs from what the guest read"
[ "$host1" != "$(head -c $((32 * M)) /dev/zero | md5sum | cut -d' ' -f1)" ] ||
  fail "the image is still all zeroes"

boot verifyonly "$TMPD/out2"
jobs "$TMPD/out2"
sum2=$(sed -n 's/^NVMEFIO sum \([0-9a-f]*\)$/\1/p' "$TMPD/out2")
[ "$sum2" = "$sum1" ] || fail "after the restart the guest reads md5 '$sum2', before it was $sum1"
[ "$(head -c $((32 * M)) "$img" | md5sum | cut -d' ' -f1)" = "$host1" ] ||
  fail "the verify-only boot changed the image"
echo "host: a new amber process verified every block fio wrote (md5 $sum1)"
echo "PASS"
