#!/bin/bash
# timeout: 480
# Checkpoint/restore of a 2-vCPU guest booted by Debian's OVMF with --kernel: the restored
# guest continues where it was, and its ROM mapping at the top of 4 GiB is back
# (tests/guest/fw_ckpt.bash).
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/fw_ckpt.bash"
need_kvm
need_amber
# QEMU 7.2's TCG aborts the nested machine on OVMF's CR8 writes without the fix.
reason=$("$REPO/tools/uefi-guests-ok" 2>&1) || skip "$reason"
OVMF=/usr/share/ovmf/OVMF.fd
[ -r "$OVMF" ] || fail "$OVMF missing (Debian package ovmf; tools/deps.sh installs it)"
fw_ckpt_run "$OVMF" 2 512M 190
