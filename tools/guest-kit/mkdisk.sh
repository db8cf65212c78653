#!/bin/bash
# Bootable disk images holding the guest kit's kernel and initramfs, for the firmware
# disk-boot tests (tests/guest/ovmf_nvme_boot.sh, seabios_nvme_boot.sh). Built from Debian
# packages only, as an unprivileged user, without loop devices or mounts: the partition
# table is written by sfdisk into the image file, the FAT file system by mkfs.fat into a
# separate partition file that mtools fills and dd copies into place.
#
#   OUTDIR/disk-efi.img   GPT, one EFI system partition (FAT) with EFI/BOOT/BOOTX64.EFI:
#                         a unified kernel image (systemd-boot-efi's linuxx64.efi.stub with
#                         the kernel, the initramfs and the command line as PE sections,
#                         assembled by objcopy as systemd 252's documentation does), so the
#                         firmware's default boot of removable media starts Linux directly.
#   OUTDIR/disk-bios.img  MBR (syslinux's mbr.bin) with one active FAT partition holding
#                         SYSLINUX (syslinux --install, the mtools installer), vmlinuz,
#                         initrd and syslinux.cfg; SeaBIOS boots it through INT 13h.
#
# Both boot KERNEL + INITRD with CMDLINE (default "console=ttyS0 quiet panic=-1
# amber.test=hello"). Debian packages: mtools dosfstools fdisk syslinux syslinux-common
# systemd-boot-efi binutils (tools/deps.sh).
#
# Usage: tools/guest-kit/mkdisk.sh KERNEL INITRD OUTDIR [CMDLINE]
set -euo pipefail

KERNEL=${1:?usage: $0 KERNEL INITRD OUTDIR [CMDLINE]}
INITRD=${2:?usage: $0 KERNEL INITRD OUTDIR [CMDLINE]}
OUT=${3:?usage: $0 KERNEL INITRD OUTDIR [CMDLINE]}
CMDLINE=${4:-console=ttyS0 quiet panic=-1 amber.test=hello}

STUB=/usr/lib/systemd/boot/efi/linuxx64.efi.stub
MBR_BIN=/usr/lib/syslinux/mbr/mbr.bin
# ESP partition type GUID (UEFI 2.10 §5.3.3, table 5.7)
ESP_TYPE=C12A7328-F81F-11D2-BA4B-00A0C93EC93B
PART_START=2048		# sectors: the partition starts at 1 MiB, as partitioners do

die() { echo "mkdisk: error: $*" >&2; exit 1; }

need() {
  local tool=$1 pkg=$2
  command -v "$tool" >/dev/null 2>&1 || [ -x "/sbin/$tool" ] || [ -x "/usr/sbin/$tool" ] ||
    die "$tool not found (Debian package $pkg; tools/deps.sh installs it)"
}
need sfdisk fdisk
need mkfs.fat dosfstools
need mcopy mtools
need syslinux syslinux
need objcopy binutils
[ -r "$STUB" ] || die "$STUB missing (Debian package systemd-boot-efi)"
[ -r "$MBR_BIN" ] || die "$MBR_BIN missing (Debian package syslinux-common)"
[ -r "$KERNEL" ] || die "kernel $KERNEL not readable"
[ -r "$INITRD" ] || die "initramfs $INITRD not readable"
PATH=$PATH:/sbin:/usr/sbin

mkdir -p "$OUT"
WORK=$(mktemp -d "$OUT/.mkdisk.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# Partition size in MiB for PAYLOAD bytes of files: room for the FAT and slack.
part_mib() { echo $(( ($1 * 11 / 10 + (1 << 20) - 1) / (1 << 20) + 4 )); }

# make_fat PARTFILE MIB LABEL: an empty FAT file system in a file (volume id and disk
# identifiers are fixed, "AMBR", so logs compare across builds). -h: the partition's
# first sector, which a FAT boot sector (SYSLINUX's) adds to its own sector numbers.
make_fat() {
  rm -f "$1"
  mkfs.fat -C -n "$3" -i 414d4252 -h "$PART_START" "$1" $(( $2 * 1024 )) >/dev/null
}

# assemble DISK PARTFILE MIB LABEL-LINES: a disk with one partition at 1 MiB, copied in.
assemble() {
  local disk=$1 part=$2 mib=$3 table=$4 tail_mib=1
  rm -f "$disk"
  # GPT keeps a backup header in the last 33 sectors: 1 MiB of tail room covers it.
  truncate -s $(( (1 + mib + tail_mib) << 20 )) "$disk"
  printf '%b' "$table" | sfdisk --quiet --no-reread --no-tell-kernel "$disk" >/dev/null
  dd if="$part" of="$disk" bs=1M seek=1 conv=notrunc,sparse status=none
}

# ---- (a) GPT + ESP with a unified kernel image -----------------------------------------------
printf '%s' "$CMDLINE" > "$WORK/cmdline"
printf 'ID=amber-guest-kit\nPRETTY_NAME="amber guest kit"\n' > "$WORK/os-release"
# Section addresses from systemd 252's linuxx64.efi.stub instructions: above the stub's
# own image (SizeOfImage ~0x20000), the kernel at 32 MiB, the initramfs at 48 MiB +
# the kernel's size rounded up, so they never overlap whatever the sizes are.
ksize=$(stat -c %s "$KERNEL")
initrd_vma=$(( 0x2000000 + ((ksize + 0xffffff) & ~0xffffff) ))
objcopy \
  --add-section .osrel="$WORK/os-release" --change-section-vma .osrel=0x20000 \
  --add-section .cmdline="$WORK/cmdline" --change-section-vma .cmdline=0x30000 \
  --add-section .linux="$KERNEL" --change-section-vma .linux=0x2000000 \
  --add-section .initrd="$INITRD" --change-section-vma .initrd="$(printf '%#x' "$initrd_vma")" \
  "$STUB" "$WORK/BOOTX64.EFI" || die "objcopy could not build the unified kernel image"
mib=$(part_mib "$(stat -c %s "$WORK/BOOTX64.EFI")")
make_fat "$WORK/esp.img" "$mib" AMBER-ESP
mmd -i "$WORK/esp.img" ::/EFI ::/EFI/BOOT
mcopy -i "$WORK/esp.img" "$WORK/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI
assemble "$WORK/disk-efi.img" "$WORK/esp.img" "$mib" \
  "label: gpt\nlabel-id: 414D4252-0000-4000-8000-000000000001\nstart=$PART_START, size=$(( mib * 2048 )), type=$ESP_TYPE, name=\"EFI system partition\"\n"

# ---- (b) MBR + active FAT partition with SYSLINUX ----------------------------------------------
cat > "$WORK/syslinux.cfg" <<EOF
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  LINUX /vmlinuz
  INITRD /initrd
  APPEND $CMDLINE
EOF
mib=$(part_mib $(( ksize + $(stat -c %s "$INITRD") + (1 << 20) )))
make_fat "$WORK/boot.img" "$mib" AMBER-BOOT
mcopy -i "$WORK/boot.img" "$KERNEL" ::/vmlinuz
mcopy -i "$WORK/boot.img" "$INITRD" ::/initrd
mcopy -i "$WORK/boot.img" "$WORK/syslinux.cfg" ::/syslinux.cfg
# The mtools installer: writes the FAT boot sector and ldlinux.sys/ldlinux.c32, no mount.
syslinux --install "$WORK/boot.img" || die "syslinux --install failed"
# type c = FAT32 LBA, 0e = FAT16 LBA; SeaBIOS and SYSLINUX only look at the active flag.
assemble "$WORK/disk-bios.img" "$WORK/boot.img" "$mib" \
  "label: dos\nlabel-id: 0x414d4252\nstart=$PART_START, size=$(( mib * 2048 )), type=c, bootable\n"
# The MBR boot code: 440 bytes, before the disk signature and the partition table.
dd if="$MBR_BIN" of="$WORK/disk-bios.img" bs=440 count=1 conv=notrunc status=none

mv "$WORK/disk-efi.img" "$OUT/disk-efi.img"
mv "$WORK/disk-bios.img" "$OUT/disk-bios.img"
echo "mkdisk: $OUT/disk-efi.img $OUT/disk-bios.img" >&2
