#!/bin/bash
# timeout: 240
# Debian's SeaBIOS (bios-256k.bin, unmodified, built with CONFIG_NVME) boots from an NVMe
# disk with no --kernel: its NVMe driver (src/hw/nvme.c) probes amber's controller and
# namespace, INT 13h reads the MBR (SYSLINUX's mbr.bin), the active FAT partition's
# SYSLINUX boot sector and files, and SYSLINUX loads the guest kit's kernel and initramfs
# (tools/guest-kit/mkdisk.sh: disk-bios.img) to the userspace marker.
. "$(dirname "$0")/lib.bash"
need_kvm
need_amber
BIOS=/usr/share/seabios/bios-256k.bin
[ -r "$BIOS" ] || fail "$BIOS missing (Debian package seabios; tools/deps.sh installs it)"
[ -f "$KIT/disk-bios.img" ] ||
  fail "$KIT/disk-bios.img missing: $(cat "$KIT/disks.log" 2>/dev/null || echo 'rebuild the guest kit')"
# A private copy: the guest may write to its disk.
cp --sparse=always "$KIT/disk-bios.img" "$TMPD/disk.img"
out=$TMPD/out
dbg=$TMPD/debugcon.log
start=$(date +%s%N)
timeout -k 5 210 "$AMBER" run --firmware "$BIOS" --disk "nvme:$TMPD/disk.img" \
  --cpus 1 --memory 256M --serial stdio --debugcon "file:$dbg" </dev/null >"$out" 2>"$TMPD/err"
rc=$?
echo "amber exit $rc after $((($(date +%s%N) - start) / 1000000)) ms"
echo "--- amber's messages"
cat "$TMPD/err"
echo "--- serial"
tr -d '\r' <"$out" | grep -v '^\s*$' | tail -n 30
echo "--- debugcon (last lines of $(wc -c <"$dbg" 2>/dev/null || echo 0) bytes)"
tr -d '\r' <"$dbg" 2>/dev/null | tail -n 25
[ $rc = 124 ] && fail "amber did not finish within 210 s"
grep -q 'SeaBIOS (version' "$dbg" 2>/dev/null || fail "no SeaBIOS banner on --debugcon"
# nvme_probe_ns() asks the boot order about the controller's PCI slot for each namespace
# it registers as a hard disk; the boot menu then lists "NVMe NS 1: N MiB".
grep -q 'Searching bootorder for: /pci@i0cf8/\*@' "$dbg" ||
  fail "SeaBIOS registered no PCI disk (NVMe probe failed?)"
# ... and the drive it set up has the image's size in 512-byte sectors (NVMe Identify
# Namespace NSZE; SeaBIOS logs "drive ...: PCHS=... s=N").
sectors=$(( $(stat -c %s "$TMPD/disk.img") / 512 ))
grep -q "^drive .* s=$sectors\$" <(tr -d '\r' <"$dbg") ||
  fail "SeaBIOS set up no drive of $sectors sectors (the NVMe namespace)"
grep -q 'Booting from Hard Disk' "$dbg" || fail "SeaBIOS did not boot from the hard disk"
grep -q 'No bootable device' "$dbg" && fail "SeaBIOS found no bootable device"
grep -q 'AMBER-GUEST: userspace' "$out" || fail "no userspace marker"
grep -q 'AMBER-TEST hello: PASS' "$out" || fail "scenario hello did not pass"
[ $rc = 0 ] || fail "amber exited $rc after the guest powered off (expected 0)"
echo "PASS"
