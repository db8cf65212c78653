#!/bin/bash
# timeout: 300
# Debian's OVMF (OVMF.fd, unmodified) boots --kernel/--initrd through amber's
# fw_cfg with 2 vCPUs: the firmware starts and parks the AP, Linux starts it
# again, the guest kit reaches userspace, sees 2 CPUs and amber's ACPI tables as
# installed by the firmware from etc/table-loader (scenario "acpi": APIC, DSDT and
# FACP present, 2 enabled CPUs in the MADT, the DSDT's PCI root, COM1, RTC and
# keyboard controller devices; then "smp") and powers off; amber exits 0.
. "$(dirname "$0")/lib.bash"
need_kvm
need_amber
# QEMU 7.2's TCG aborts the nested machine on OVMF's CR8 writes without the fix.
reason=$("$REPO/tools/uefi-guests-ok" 2>&1) || skip "$reason"
OVMF=/usr/share/ovmf/OVMF.fd
[ -r "$OVMF" ] || fail "$OVMF missing (Debian package ovmf; tools/deps.sh installs it)"
out=$TMPD/out
start=$(date +%s%N)
timeout -k 5 270 "$AMBER" run --firmware "$OVMF" --kernel "$KIT/bzImage" \
  --initrd "$KIT/initramfs.cpio" --cmdline "$CMDLINE_BASE amber.test=acpi amber.cpus=2 amber.acpi_devs=PNP0B00,PNP0303" \
  --cpus 2 --memory 512M --serial stdio </dev/null >"$out" 2>&1
rc=$?
echo "amber exit $rc after $((($(date +%s%N) - start) / 1000000)) ms"
tr -d '\r' <"$out" | tail -n 40
[ $rc = 124 ] && fail "amber did not finish within 270 s"
grep -q 'AMBER-GUEST: userspace' "$out" || fail "no userspace marker"
grep -q 'SMP nproc=2 cpuinfo=2' "$out" || fail "guest does not see 2 CPUs"
grep -q 'ACPI MADT enabled-cpus=2 .* nproc=2' "$out" || fail "the MADT does not list 2 enabled CPUs"
grep -q 'ACPI DSDT oem=AMBER' "$out" || fail "the guest's DSDT is not amber's (OEM ID)"
grep -q 'AMBER-TEST acpi: PASS' "$out" || fail "scenario acpi did not pass"
[ $rc = 0 ] || fail "amber exited $rc after the guest powered off (expected 0)"
echo "PASS"
