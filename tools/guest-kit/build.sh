#!/bin/bash
# Build amber's guest kit from Debian packages only:
#   OUTDIR/bzImage               Debian's cloud kernel (a bzImage), never installed on the host
#   OUTDIR/initramfs.cpio        guest initramfs: busybox, modules, /init, /scenarios/*
#   OUTDIR/initramfs-tools.cpio  the same plus fio and nvme-cli (GUEST_BINS) with their
#                                libraries (a second archive appended), for the NVMe tests
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
# Host binaries every guest gets, with their libraries (copy_binaries): fio and nvme-cli for
# the NVMe guest tests (tests/guest/nvme_*.sh) and bench/nvme (tools/deps.sh installs them).
GUEST_BINS=(fio nvme)
# Libraries those binaries link but never use in a guest: fio's engines for Ceph, Gluster,
# NBD, RDMA and persistent memory, nvme-cli's TLS-key HMAC (libcrypto) and MCTP over D-Bus.
# With their real dependencies fio alone needs 81 MiB (libicudata, libceph-common, ...);
# each is replaced by a stub library of the same name that defines the functions the kit's
# binaries import from it as "print and abort" (stub_library), so the dynamic linker is
# satisfied and an unexpected call fails loudly.
GUEST_STUB_LIBS=(libgfapi.so.0 libnbd.so.0 libibverbs.so.1 librdmacm.so.1 librados.so.2
  librbd.so.1 libpmemblk.so.1 libpmem.so.1 libcrypto.so.3 libdbus-1.so.3)

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
ALL_BINS=()
for b in "${GUEST_BINS[@]}" ${GUEST_KIT_EXTRA_BINS:-}; do
  p=$(command -v "$b") || die "$b not found (tools/deps.sh installs fio and nvme-cli)"
  ALL_BINS+=("$p")
done
# lib_paths FILE...: the libraries ldd resolves for FILEs (real paths, one per line)
lib_paths() {
  local f
  for f in "$@"; do
    ldd "$f" 2>/dev/null |
      awk '$2 == "=>" && $3 ~ /^\// {print $3} NF == 2 && $1 ~ /^\// {print $1}' || true
  done | LC_ALL=C sort -u
}

# ---- up to date? ---------------------------------------------------------------------------
inputs_hash() {
  {
    echo "$KPKG"
    sha256sum "$KROOT/boot/vmlinuz-$KVER" "$BUSYBOX"
    (cd "$KIT_DIR" && find . -type f ! -name '*~' | LC_ALL=C sort | xargs sha256sum)
    # binaries copied into the initramfs (see copy_binaries below) and every library ldd
    # lists for them (the stubbed ones included: their symbols make the stubs), so an
    # upgraded package rebuilds the kit
    echo "${GUEST_BINS[*]} ${GUEST_STUB_LIBS[*]} ${GUEST_KIT_EXTRA_BINS:-}"
    sha256sum "${ALL_BINS[@]}"
    lib_paths "${ALL_BINS[@]}" | xargs -r sha256sum
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
   [ -f "$OUT/bzImage" ] && [ -f "$OUT/initramfs.cpio" ] && [ -f "$OUT/initramfs-tools.cpio" ] &&
   [ -f "$OUT/kvmbox-initramfs.cpio" ]; then
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

# stub_library REAL OUTDIR FILE...: OUTDIR/<name of REAL>, a shared library with REAL's
# soname whose functions are those of REAL that FILEs import (with the symbol versions they
# import), each printing its name and aborting. Refuses a REAL from which FILEs import data objects
# (a stub cannot fake those).
stub_library() {
  local real=$1 outdir=$2 name soname syms objs
  shift 2
  name=$(basename "$real")
  soname=$(objdump -p "$real" | sed -n 's/^ *SONAME *//p')
  # "symbol type version" for each function of REAL that FILEs import, with the version
  # they import (their version needs must all be defined by the stub)
  syms=$(LC_ALL=C join <(for f in "$@"; do nm -D --undefined-only "$f"; done |
                         awk '{n = $NF; v = ""; if (n ~ /@/) { v = n; sub(/^[^@]*@+/, "", v)
                               sub(/@.*/, "", n) } print n, v}' | LC_ALL=C sort -u) \
                       <(nm -D --defined-only "$real" | awk '{n = $NF; sub(/@.*/, "", n)
                               print n, $(NF-1)}' | LC_ALL=C sort -u -k1,1) |
         awk '{print $1, $NF, (NF == 3 ? $2 : "")}')
  objs=$(echo "$syms" | awk 'NF {print $1}' | uniq -d)
  [ -z "$objs" ] || die "stub for $name: imported in two versions: $objs"
  objs=$(echo "$syms" | awk 'NF && $2 !~ /^[TtWwiI]$/ {print $1}')
  [ -z "$objs" ] || die "stub for $name: data symbols imported: $objs"
  {
    echo '#include <stdio.h>'
    echo '#include <stdlib.h>'
    echo 'static void stub(const char *f)'
    echo '{'
    echo "  fprintf(stderr, \"guest kit: %s is a stub in $name (tools/guest-kit/build.sh)\\n\", f);"
    echo '  abort();'
    echo '}'
    echo "$syms" | awk 'NF {printf "void %s(void) { stub(\"%s\"); }\n", $1, $1}'
  } > "$outdir/$name.c"
  echo "$syms" | awk 'NF == 3 && $3 != "" {s[$3] = s[$3] " " $1 ";"}
    END {for (v in s) printf "%s { global:%s };\n", v, s[v]}' > "$outdir/$name.map"
  ${CC_GUEST:-gcc} -shared -fPIC -O1 -w -Wl,-soname,"$soname" -o "$outdir/$name" \
    "$outdir/$name.c" $([ -s "$outdir/$name.map" ] && echo "-Wl,--version-script=$outdir/$name.map") ||
    die "compiling the stub $name failed"
}

# Copy host binaries (paths) and the libraries they need into ROOT at the same paths; the
# libraries named in GUEST_STUB_LIBS become stubs (stub_library), so what only they need is
# left out.
copy_binaries() {
  local root=$1 stubs=$CACHE/stub-libs lib real name f keep=()
  shift
  rm -rf "$stubs"
  mkdir -p "$stubs"
  # empty stubs first: ldd through them gives the closure without what only the real
  # libraries need; then the real stubs, with the functions that closure imports
  for name in "${GUEST_STUB_LIBS[@]}"; do
    real=$(lib_paths "$@" | grep "/$name\$" | head -n1) || continue
    echo > "$stubs/$name.c"
    ${CC_GUEST:-gcc} -shared -o "$stubs/$name" "$stubs/$name.c" \
      -Wl,-soname,"$(objdump -p "$real" | sed -n 's/^ *SONAME *//p')" ||
      die "compiling the stub $name failed"
  done
  for lib in $(LD_LIBRARY_PATH=$stubs lib_paths "$@"); do
    [ "${lib#"$stubs"/}" = "$lib" ] && keep+=("$lib")
  done
  for f in "$stubs"/*.so.*[0-9]; do
    [ -e "$f" ] || continue
    name=${f##*/}
    stub_library "$(lib_paths "$@" | grep "/$name\$" | head -n1)" "$stubs" "$@" "${keep[@]}"
  done
  for f in "$@" "${keep[@]}"; do
    mkdir -p "$root/$(dirname "$f")"
    cp -L "$f" "$root/$f"
  done
  for f in "$stubs"/*.so.*[0-9]; do
    [ -e "$f" ] || continue
    real=$(lib_paths "$@" | grep "/${f##*/}\$" | head -n1)
    mkdir -p "$root/$(dirname "$real")"
    cp "$f" "$root/$real"
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
make_cpio "$G" "$OUT/initramfs.cpio"
# fio and nvme-cli with their libraries (6 MiB) in an archive of their own, appended to the
# base one for the guests that use them (the kernel unpacks concatenated archives in turn):
# every other guest boots, and is checkpointed, without them.
T=$STAGE/tools
mkdir -p "$T"
copy_binaries "$T" "${ALL_BINS[@]}"
make_cpio "$T" "$OUT/tools.cpio"
cat "$OUT/initramfs.cpio" "$OUT/tools.cpio" > "$OUT/initramfs-tools.cpio.tmp" &&
  mv "$OUT/initramfs-tools.cpio.tmp" "$OUT/initramfs-tools.cpio"
rm -f "$OUT/tools.cpio"

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
