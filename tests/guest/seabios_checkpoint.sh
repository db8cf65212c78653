#!/bin/bash
# timeout: 420
# Checkpoint/restore of a guest booted by Debian's SeaBIOS with --kernel (fw_cfg +
# linuxboot_dma.bin): the restored guest continues where it was, and its ROM mapping at the
# top of 4 GiB is back (tests/guest/fw_ckpt.bash).
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/fw_ckpt.bash"
need_kvm
need_amber
BIOS=/usr/share/seabios/bios-256k.bin
[ -r "$BIOS" ] || fail "$BIOS missing (Debian package seabios; tools/deps.sh installs it)"
fw_ckpt_run "$BIOS" 1 256M 130
