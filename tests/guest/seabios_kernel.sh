#!/bin/bash
# timeout: 200
# Debian's SeaBIOS (bios-256k.bin, unmodified) boots --kernel/--initrd through
# amber's fw_cfg (kernel items read by Debian's linuxboot_dma.bin option ROM over
# the DMA interface): the guest kit reaches userspace, sees amber's ACPI tables as
# SeaBIOS installed them from etc/table-loader (scenario "acpi": APIC, DSDT and FACP
# present, 1 enabled CPU in the MADT, the DSDT's PCI root, COM1, RTC and keyboard
# controller devices) and powers off, and SeaBIOS's own log arrives on --debugcon (port 0x402 read back as 0xE9).
. "$(dirname "$0")/lib.bash"
need_kvm
need_amber
BIOS=/usr/share/seabios/bios-256k.bin
[ -r "$BIOS" ] || fail "$BIOS missing (Debian package seabios; tools/deps.sh installs it)"
[ -r /usr/share/qemu/linuxboot_dma.bin ] ||
  fail "/usr/share/qemu/linuxboot_dma.bin missing (Debian package qemu-system-data)"
out=$TMPD/out
dbg=$TMPD/debugcon.log
start=$(date +%s%N)
timeout -k 5 170 "$AMBER" run --firmware "$BIOS" --kernel "$KIT/bzImage" \
  --initrd "$KIT/initramfs.cpio" --cmdline "$CMDLINE_BASE amber.test=acpi amber.acpi_devs=PNP0B00,PNP0303" \
  --cpus 1 --memory 256M --serial stdio --debugcon "file:$dbg" </dev/null >"$out" 2>&1
rc=$?
echo "amber exit $rc after $((($(date +%s%N) - start) / 1000000)) ms"
tr -d '\r' <"$out" | tail -n 30
echo "--- debugcon (last lines of $(wc -c <"$dbg" 2>/dev/null || echo 0) bytes)"
tr -d '\r' <"$dbg" 2>/dev/null | tail -n 15
[ $rc = 124 ] && fail "amber did not finish within 170 s"
grep -q 'SeaBIOS (version' "$dbg" 2>/dev/null || fail "no SeaBIOS banner on --debugcon"
grep -q 'QEMU fw_cfg DMA interface supported' "$dbg" ||
  fail "SeaBIOS did not find fw_cfg with DMA"
grep -q 'AMBER-GUEST: userspace' "$out" || fail "no userspace marker"
grep -q 'ACPI MADT enabled-cpus=1 .* nproc=1' "$out" || fail "the MADT does not list 1 enabled CPU"
grep -q 'ACPI DSDT oem=AMBER' "$out" || fail "the guest's DSDT is not amber's (OEM ID)"
grep -q 'AMBER-TEST acpi: PASS' "$out" || fail "scenario acpi did not pass"
[ $rc = 0 ] || fail "amber exited $rc after the guest powered off (expected 0)"
echo "PASS"
