#!/bin/bash
# Build amber's guest kit from Debian packages only:
#   OUTDIR/bzImage               Debian's cloud kernel (a bzImage), never installed on the host
#   OUTDIR/initramfs.cpio        guest initramfs: busybox, modules, /init, /scenarios/*
#   OUTDIR/kvmbox-initramfs.cpio initramfs of the nested test machine (tests/kvmbox/run)
#   OUTDIR/kernel-version        the kernel release, e.g. 6.1.0-56-cloud-amd64
#   OUTDIR/disk-efi.img, disk-bios.img  bootable GPT/ESP and MBR/SYSLINUX disks (mkdisk.sh)
# Rebuilds only when an input changed (OUTDIR/.stamp holds a hash of all inputs).
# Usage: tools/guest-kit/build.sh OUTDIR
set -euo pipefail

KIT_DIR=$(cd "$(dirname "$0")" && pwd)
OUT=${1:?usage: $0 OUTDIR}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
CACHE=$OUT/cache
mkdir -p "$CACHE"

log() { echo "guest-kit: $*" >&2; }
die() { echo "guest-kit: error: $*" >&2; exit 1; }

# Modules the guest kit carries (loaded by /init if they exist as modules;
# built-in ones such as nvme on the cloud kernel are simply skipped).
GUEST_MODULES=(nvme-core nvme virtio virtio_ring virtio_pci virtio_mmio virtio_blk
  virtio_net virtio_console virtio-rng)
# The nested test machine: KVM, virtiofs for the host's files, overlay for a writable root.
KVMBOX_MODULES=(irqbypass kvm kvm-amd virtio virtio_ring virtio_pci fuse virtiofs overlay)

# ---- which kernel --------------------------------------------------------------------------
# linux-image-cloud-amd64 is a metapackage; its dependency names the concrete kernel.
resolve_kernel_pkg() {
  local pkg
  pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
        sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-cloud-amd64\)$/\1/p' | head -n1)
  if [ -z "$pkg" ] && [ -f "$CACHE/kernel-pkg" ]; then
    pkg=$(cat "$CACHE/kernel-pkg")        # offline: keep using what we have
  fi
  [ -n "$pkg" ] || die "cannot resolve linux-image-cloud-amd64 (apt-cache depends gave nothing; run apt-get update?)"
  echo "$pkg"
}

# apt-get download PKG into CACHE (once) and extract it into CACHE/PKG.
fetch_deb() {
  local pkg=$1 deb
  if [ ! -f "$CACHE/$pkg/.extracted" ]; then
    deb=$(ls "$CACHE"/"${pkg}"_*.deb 2>/dev/null | head -n1 || true)
    if [ -z "$deb" ]; then
      log "downloading $pkg"
      (cd "$CACHE" && apt-get download -q "$pkg" >/dev/null 2>"$CACHE/apt-download.log") ||
        { cat "$CACHE/apt-download.log" >&2; die "apt-get download $pkg failed"; }
      deb=$(ls "$CACHE"/"${pkg}"_*.deb | head -n1)
    fi
    rm -rf "${CACHE:?}/$pkg"
    dpkg-deb -x "$deb" "$CACHE/$pkg"
    touch "$CACHE/$pkg/.extracted"
  fi
}

KPKG=$(resolve_kernel_pkg)
KVER=${KPKG#linux-image-}
echo "$KPKG" > "$CACHE/kernel-pkg"
fetch_deb "$KPKG"
KROOT=$CACHE/$KPKG
MODDIR=$KROOT/lib/modules/$KVER
[ -f "$KROOT/boot/vmlinuz-$KVER" ] || die "$KPKG has no boot/vmlinuz-$KVER"

BUSYBOX=$(command -v busybox || true)
[ -n "$BUSYBOX" ] || BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] || die "busybox not found (apt-get install busybox-static)"
if ldd "$BUSYBOX" >/dev/null 2>&1; then die "$BUSYBOX is dynamically linked; install busybox-static"; fi

# ---- up to date? ---------------------------------------------------------------------------
inputs_hash() {
  {
    echo "$KPKG"
    sha256sum "$KROOT/boot/vmlinuz-$KVER" "$BUSYBOX"
    (cd "$KIT_DIR" && find . -type f ! -name '*~' | LC_ALL=C sort | xargs sha256sum)
    # extra binaries requested for the initramfs (see copy_binary below), and their
    # contents, so an upgraded package rebuilds the kit
    echo "${GUEST_KIT_EXTRA_BINS:-}"
    for b in ${GUEST_KIT_EXTRA_BINS:-}; do
      p=$(command -v "$b") && sha256sum "$p" || true
    done
    # guest programs (progs/*.c) are compiled by this compiler
    ${CC_GUEST:-gcc} --version 2>/dev/null | head -n1
  } | sha256sum | cut -d' ' -f1
}
HASH=$(inputs_hash)

# Bootable disks with the kit's kernel + initramfs for the firmware disk-boot tests
# (mkdisk.sh). Without its tools the kit still works; those tests then fail naming
# OUTDIR/disks.log.
make_disks() {
  rm -f "$OUT/disks.log"
  if ! "$KIT_DIR/mkdisk.sh" "$OUT/bzImage" "$OUT/initramfs.cpio" "$OUT" 2>"$OUT/disks.log.tmp"; then
    mv "$OUT/disks.log.tmp" "$OUT/disks.log"
    log "warning: no bootable disk images: $(tail -n1 "$OUT/disks.log")"
  fi
  rm -f "$OUT/disks.log.tmp"
}
if [ -f "$OUT/.stamp" ] && [ "$(cat "$OUT/.stamp")" = "$HASH" ] &&
   [ -f "$OUT/bzImage" ] && [ -f "$OUT/initramfs.cpio" ] && [ -f "$OUT/kvmbox-initramfs.cpio" ]; then
  # Disks missing (mkdisk.sh's tools were missing last time): try them alone.
  [ -f "$OUT/disk-efi.img" ] && [ -f "$OUT/disk-bios.img" ] || make_disks
  exit 0
fi
log "building for $KVER"

# ---- helpers -------------------------------------------------------------------------------
# Path of module NAME (- and _ are the same in module names), empty if built in or absent.
declare -A MODPATH
index_modules() {
  local p b
  while read -r p; do
    b=$(basename "$p" .ko); MODPATH[${b//-/_}]=$p
  done < <(find "$MODDIR/kernel" -name '*.ko')
}
module_path() {
  local n=${1//-/_}
  echo "${MODPATH[$n]:-}"
}
module_builtin() {
  local n=${1//-/_}
  sed 's|.*/||; s|\.ko$||; s|-|_|g' "$MODDIR/modules.builtin" | grep -qx "$n"
}
# Append NAME's dependency closure to CLOSURE as .ko paths, dependencies first.
declare -A SEEN
CLOSURE=()
module_closure() {
  local name=$1 path deps d
  [ -n "${SEEN[${name//-/_}]:-}" ] && return 0
  SEEN[${name//-/_}]=1
  path=$(module_path "$name")
  if [ -z "$path" ]; then
    module_builtin "$name" || log "note: module $name neither built in nor shipped; skipped"
    return 0
  fi
  deps=$(tr '\0' '\n' < "$path" | sed -n 's/^depends=//p' | head -n1 | tr ',' ' ')
  for d in $deps; do module_closure "$d"; done
  CLOSURE+=("$path")
}

# Stage busybox (static) with all its applet links.
stage_busybox() {
  local root=$1 a
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,mnt,etc,root,lib}
  cp "$BUSYBOX" "$root/bin/busybox"
  for a in $("$BUSYBOX" --list-full); do
    [ -e "$root/$a" ] || ln -s /bin/busybox "$root/$a"
  done
  if [ "$(id -u)" = 0 ]; then
    mknod -m 600 "$root/dev/console" c 5 1
    mknod -m 666 "$root/dev/null" c 1 3
  fi
}

# Copy modules (with dependencies) into ROOT/lib/modules/KVER/ and list their load order
# in ROOT/etc/modules (file names relative to that directory).
stage_modules() {
  local root=$1; shift
  local dst=$root/lib/modules/$KVER p
  mkdir -p "$dst"
  SEEN=() CLOSURE=()
  for m in "$@"; do module_closure "$m"; done
  : > "$root/etc/modules"
  for p in "${CLOSURE[@]}"; do
    cp "$p" "$dst/"
    basename "$p" >> "$root/etc/modules"
  done
}

# Copy a host binary and the libraries ldd lists into ROOT at the same paths
# (for fio, nvme-cli and the like: GUEST_KIT_EXTRA_BINS="fio nvme").
copy_binary() {
  local root=$1 bin=$2 lib
  bin=$(command -v "$bin") || die "copy_binary: $2 not found"
  mkdir -p "$root/$(dirname "$bin")"
  cp -L "$bin" "$root/$bin"
  for lib in $(ldd "$bin" 2>/dev/null | grep -o '/[^ ]*' || true); do
    mkdir -p "$root/$(dirname "$lib")"
    cp -L "$lib" "$root/$lib"
  done
}

# The nested test machine's workaround for UEFI guests (see cr8-intercept/*.c): an
# out-of-tree module built against Debian's headers for the same kernel ABI. Prints the
# .ko path; on failure explains and returns 1 (the kit still works, UEFI tests then skip).
build_cr8_module() {
  local hdr=/usr/src/linux-headers-$KVER dir=$CACHE/cr8-intercept
  if [ ! -f "$hdr/Makefile" ] && [ "$(id -u)" = 0 ]; then
    log "installing linux-headers-$KVER (for the CR8-intercept module)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      "linux-headers-$KVER" >"$CACHE/apt-headers.log" 2>&1 || true
  fi
  if [ ! -f "$hdr/Makefile" ]; then
    log "warning: no $hdr: nested machine without the CR8-intercept fix (UEFI guest tests will skip)"
    return 1
  fi
  rm -rf "$dir"
  cp -r "$KIT_DIR/cr8-intercept" "$dir"
  if ! make -C "$hdr" M="$dir" modules >"$dir/build.log" 2>&1; then
    log "warning: CR8-intercept module failed to build (log: $dir/build.log); UEFI guest tests will skip"
    return 1
  fi
  echo "$dir/amber_cr8_intercept.ko"
}

make_cpio() {
  local root=$1 out=$2
  (cd "$root" && find . -mindepth 1 | LC_ALL=C sort |
     cpio --quiet -o -H newc --owner=0:0 --reproducible) > "$out.tmp"
  mv "$out.tmp" "$out"
}

# ---- guest initramfs -----------------------------------------------------------------------
index_modules
STAGE=$OUT/stage
rm -rf "$STAGE"
G=$STAGE/guest
stage_busybox "$G"
stage_modules "$G" "${GUEST_MODULES[@]}"
install -m 755 "$KIT_DIR/init" "$G/init"
mkdir -p "$G/scenarios"
for s in "$KIT_DIR"/scenarios/*; do install -m 755 "$s" "$G/scenarios/"; done
# Guest programs: tools/guest-kit/progs/NAME.c -> /bin/NAME, static (the guest has no libc).
for c in "$KIT_DIR"/progs/*.c; do
  [ -f "$c" ] || continue
  ${CC_GUEST:-gcc} -static -O2 -Wall -pthread -o "$G/bin/$(basename "$c" .c)" "$c" ||
    die "compiling $c failed (needs gcc and libc6-dev)"
done
echo "$KVER" > "$G/etc/kernel-version"
for b in ${GUEST_KIT_EXTRA_BINS:-}; do copy_binary "$G" "$b"; done
make_cpio "$G" "$OUT/initramfs.cpio"

# ---- nested test machine initramfs ---------------------------------------------------------
K=$STAGE/kvmbox
stage_busybox "$K"
stage_modules "$K" "${KVMBOX_MODULES[@]}"
install -m 755 "$KIT_DIR/kvmbox-init" "$K/init"
: > "$K/etc/modules-optional"
if cr8=$(build_cr8_module); then
  cp "$cr8" "$K/lib/modules/$KVER/"
  basename "$cr8" >> "$K/etc/modules-optional"
fi
make_cpio "$K" "$OUT/kvmbox-initramfs.cpio"

cp "$KROOT/boot/vmlinuz-$KVER" "$OUT/bzImage.tmp" && mv "$OUT/bzImage.tmp" "$OUT/bzImage"
echo "$KVER" > "$OUT/kernel-version"
make_disks
rm -rf "$STAGE"
echo "$HASH" > "$OUT/.stamp"
log "done: $OUT/bzImage $OUT/initramfs.cpio ($(du -k "$OUT/initramfs.cpio" | cut -f1) KiB) $OUT/kvmbox-initramfs.cpio"
