#!/bin/bash
# timeout: 480
# --boot-order with NVMe controller names: two controllers, nvme0 with a blank disk and
# nvme1 with the guest kit's bootable disk. SeaBIOS boots only its first hard disk: without
# --boot-order that is nvme0 (no boot signature, so the boot fails and amber ends on the
# reboot); with --boot-order nvme1 the "bootorder" fw_cfg file makes nvme1 the first disk
# and the guest reaches userspace. OVMF, given --boot-order nvme1, keeps only that NVMe boot
# option (its QemuBootOrderLib drops the PCI options the file does not name) and starts it.
. "$(dirname "$0")/lib.bash"
need_kvm
need_amber
BIOS=/usr/share/seabios/bios-256k.bin
OVMF=/usr/share/ovmf/OVMF.fd
[ -r "$BIOS" ] || fail "$BIOS missing (Debian package seabios; tools/deps.sh installs it)"
[ -f "$KIT/disk-bios.img" ] && [ -f "$KIT/disk-efi.img" ] ||
  fail "$KIT/disk-*.img missing: $(cat "$KIT/disks.log" 2>/dev/null || echo 'rebuild the guest kit')"
truncate -s 16M "$TMPD/blank.img"
cp --sparse=always "$KIT/disk-bios.img" "$TMPD/bios.img"
cp --sparse=always "$KIT/disk-efi.img" "$TMPD/efi.img"

# run NAME LIMIT ARGS...: amber with the serial console in $TMPD/NAME.out, stderr in
# $TMPD/NAME.err; prints the exit status and the readable end of the console.
run() {
  local name=$1 limit=$2 rc start
  shift 2
  start=$(date +%s%N)
  timeout -k 5 "$limit" "$AMBER" run "$@" --cpus 1 --serial stdio \
    </dev/null >"$TMPD/$name.out" 2>"$TMPD/$name.err"
  rc=$?
  echo "--- $name: amber exit $rc after $((($(date +%s%N) - start) / 1000000)) ms"
  cat "$TMPD/$name.err"
  tr -d '\r' <"$TMPD/$name.out" | sed 's/\x1b\[[0-9;=?]*[A-Za-z]//g; s/\x1bc//g' |
    grep -av '^\s*$' | tail -n 8
  return $rc
}

# A name that is no NVMe controller is refused before the guest runs, naming it.
"$AMBER" run --firmware "$BIOS" --disk "nvme:$TMPD/blank.img" --boot-order nvme7 \
  </dev/null >"$TMPD/bad.out" 2>&1
rc=$?
cat "$TMPD/bad.out"
[ $rc != 0 ] && grep -q 'boot-order nvme7: nvme7 is not an NVMe controller' "$TMPD/bad.out" ||
  fail "--boot-order nvme7 (no such controller) not refused with its name (exit $rc)"
"$AMBER" run --firmware "$BIOS" --disk "nvme:$TMPD/blank.img" --boot-order nvme0:2 \
  </dev/null >"$TMPD/bad.out" 2>&1
rc=$?
cat "$TMPD/bad.out"
[ $rc != 0 ] && grep -q 'controller nvme0 has 1 namespace$' "$TMPD/bad.out" ||
  fail "--boot-order nvme0:2 (no namespace 2) not refused (exit $rc)"

run seabios-plain 150 --firmware "$BIOS" --memory 256M --debugcon "file:$TMPD/dbg-plain" \
  --disk "nvme:$TMPD/blank.img,ctrl=nvme0" --disk "nvme:$TMPD/bios.img,ctrl=nvme1"
rc=$?
[ $rc = 124 ] && fail "SeaBIOS without --boot-order did not end within 150 s"
grep -aq 'AMBER-GUEST: userspace' "$TMPD/seabios-plain.out" &&
  fail "without --boot-order SeaBIOS booted nvme1 anyway: this test cannot tell the difference"
grep -aq 'not a bootable disk' "$TMPD/seabios-plain.out" ||
  fail "without --boot-order SeaBIOS did not try the blank disk first"

run seabios-order 180 --firmware "$BIOS" --memory 256M --debugcon "file:$TMPD/dbg-order" \
  --disk "nvme:$TMPD/blank.img,ctrl=nvme0" --disk "nvme:$TMPD/bios.img,ctrl=nvme1" \
  --boot-order nvme1
rc=$?
tr -d '\r' <"$TMPD/dbg-order" | grep -a 'Searching bootorder for: /pci' | head -n 4
[ $rc = 124 ] && fail "SeaBIOS with --boot-order nvme1 did not finish within 180 s"
grep -aq 'AMBER-TEST hello: PASS' "$TMPD/seabios-order.out" ||
  fail "SeaBIOS with --boot-order nvme1 did not boot the guest from nvme1"
[ $rc = 0 ] || fail "amber exited $rc after the SeaBIOS guest powered off"

reason=$("$REPO/tools/uefi-guests-ok" 2>&1) || { echo "OVMF part skipped: $reason"; echo PASS; exit 0; }
[ -r "$OVMF" ] || fail "$OVMF missing (Debian package ovmf; tools/deps.sh installs it)"
run ovmf-order 300 --firmware "$OVMF" --memory 512M \
  --disk "nvme:$TMPD/blank.img,ctrl=nvme0" --disk "nvme:$TMPD/efi.img,ctrl=nvme1" \
  --boot-order nvme1
rc=$?
tr -d '\r' <"$TMPD/ovmf-order.out" | grep -a 'BdsDxe' | head -n 4
[ $rc = 124 ] && fail "OVMF with --boot-order nvme1 did not finish within 300 s"
grep -aq 'AMBER-TEST hello: PASS' "$TMPD/ovmf-order.out" ||
  fail "OVMF with --boot-order nvme1 did not boot the guest"
# The only NVMe option OVMF starts is nvme1's: it translated the bootorder path.
grep -a 'BdsDxe: starting Boot' "$TMPD/ovmf-order.out" | grep -qv 'NVMe(0x1,' &&
  fail "OVMF started a boot option other than an NVMe namespace"
n=$(grep -a 'BdsDxe: starting Boot' "$TMPD/ovmf-order.out" | grep -ao 'Pci(0x[0-9A-Fa-f]*,0x0)/NVMe' | sort -u | wc -l)
[ "$n" = 1 ] || fail "OVMF started $n different NVMe controllers (want only nvme1's)"
grep -aq 'BdsDxe: failed to load' "$TMPD/ovmf-order.out" &&
  fail "OVMF tried another boot option first (the blank nvme0?)"
[ $rc = 0 ] || fail "amber exited $rc after the OVMF guest powered off"
echo PASS
