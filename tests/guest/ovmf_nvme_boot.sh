#!/bin/bash
# timeout: 400
# Debian's OVMF (OVMF.fd, unmodified) boots from an NVMe disk with no --kernel: EDK2's
# NvmExpressDxe drives amber's controller, the partition and FAT drivers find the GPT EFI
# system partition, and the boot manager starts EFI/BOOT/BOOTX64.EFI (the default for
# removable media), a unified kernel image with the guest kit's kernel, initramfs and
# command line (tools/guest-kit/mkdisk.sh: disk-efi.img), to the userspace marker.
. "$(dirname "$0")/lib.bash"
need_kvm
need_amber
# QEMU 7.2's TCG aborts the nested machine on OVMF's CR8 writes without the fix.
reason=$("$REPO/tools/uefi-guests-ok" 2>&1) || skip "$reason"
OVMF=/usr/share/ovmf/OVMF.fd
[ -r "$OVMF" ] || fail "$OVMF missing (Debian package ovmf; tools/deps.sh installs it)"
[ -f "$KIT/disk-efi.img" ] ||
  fail "$KIT/disk-efi.img missing: $(cat "$KIT/disks.log" 2>/dev/null || echo 'rebuild the guest kit')"
cp --sparse=always "$KIT/disk-efi.img" "$TMPD/disk.img"
out=$TMPD/out
start=$(date +%s%N)
timeout -k 5 370 "$AMBER" run --firmware "$OVMF" --disk "nvme:$TMPD/disk.img" \
  --cpus 1 --memory 512M --serial stdio </dev/null >"$out" 2>"$TMPD/err"
rc=$?
echo "amber exit $rc after $((($(date +%s%N) - start) / 1000000)) ms"
echo "--- amber's messages"
cat "$TMPD/err"
echo "--- serial"
# OVMF's console on COM1 repaints with escape sequences; keep the readable lines.
tr -d '\r' <"$out" | sed 's/\x1b\[[0-9;=]*[A-Za-z]//g' | grep -v '^\s*$' | tail -n 30
[ $rc = 124 ] && fail "amber did not finish within 370 s"
# Debian's OVMF is a release build (nothing on 0x402), but its boot manager names on COM1
# the boot option it starts: the NVMe namespace, e.g. .../Pci(0x2,0x0)/NVMe(0x1,...).
grep -aq 'BdsDxe: starting Boot[0-9A-F]* .*/NVMe(0x1,' "$out" ||
  fail "OVMF did not start a boot option on the NVMe namespace"
grep -aq 'AMBER-GUEST: userspace' "$out" || fail "no userspace marker"
grep -aq 'AMBER-TEST hello: PASS' "$out" || fail "scenario hello did not pass"
[ $rc = 0 ] || fail "amber exited $rc after the guest powered off (expected 0)"
echo "PASS"
