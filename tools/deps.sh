#!/bin/bash
# Install the Debian packages amber's build, tests and demo need, if missing.
# Runs apt-get update at most once, and only when something must be installed.
set -euo pipefail

PKGS=(
  # build
  gcc clang lld meson ninja-build pkg-config make
  libjansson-dev liburing-dev libcmocka-dev libxxhash-dev
  # tests
  acpica-tools gdb jq python3 cpio xz-utils zstd busybox-static
  # nested test machine and reference VMM (virtiofsd is in qemu-system-common)
  qemu-system-x86 qemu-system-data qemu-utils
  # the nested machine's CR8-intercept module (tools/guest-kit/cr8-intercept) is built
  # against the cloud kernel's headers; GNU time measures peak RSS in bench/boot
  linux-headers-cloud-amd64 time
  # fio and nvme-cli inside the guest (copied into the guest kit with their libraries) for
  # the NVMe guest tests and bench/nvme
  fio nvme-cli
  # firmware
  ovmf seabios
  # bootable disk images for the firmware disk-boot tests (tools/guest-kit/mkdisk.sh)
  mtools dosfstools fdisk syslinux syslinux-common systemd-boot-efi binutils
)

missing=()
for p in "${PKGS[@]}"; do
  case "$p" in \#*) continue ;; esac
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  echo "deps: missing packages: ${missing[*]} (run as root to install them)" >&2
  exit 1
fi

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
