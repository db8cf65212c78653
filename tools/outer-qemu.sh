#!/bin/bash
# The QEMU that runs the nested test machine (tests/kvmbox/run), when this host has no usable
# KVM: Debian's qemu-system-x86 from bookworm-backports (10.x), unpacked into DIR with
# dpkg-deb -x. The system's QEMU (bookworm: 7.2) stays what it is and is still the QEMU that
# tests and benchmarks run inside the nested machine.
#
#   tools/outer-qemu.sh DIR      prints "QEMU_BINARY DATA_DIRS" (DATA_DIRS: colon-separated,
#                                for AMBER_KVMBOX_QEMU_DATA); exit 1 with a reason if it
#                                cannot be had (the caller then uses the system's QEMU)
#
# Why: the outer QEMU emulates AMD SVM in software (TCG), and 7.2's emulation has faults that
# newer versions fixed: it never arms a nested guest's DR7 (hardware breakpoints cannot fire;
# fixed in 9.1), and now and then it hangs or resets the whole outer machine while a nested
# guest runs (seen in make check, a few times per hundred guest tests). With 10.x the nested
# guests also run faster (the 200 MiB checkpoint test: 31-52 s instead of 46-70 s).
#
# Downloaded once (kept in DIR; delete DIR to fetch again) from deb.debian.org with a private
# apt configuration under DIR: the system's sources, lists and packages are not touched.
set -uo pipefail

DIR=${1:?usage: tools/outer-qemu.sh DIR}
SUITE=bookworm-backports
MIRROR=${AMBER_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PKGS=(qemu-system-x86 qemu-system-data)
BIN=$DIR/root/usr/bin/qemu-system-x86_64
DATA=$DIR/root/usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu

usable() {
  local v
  v=$("$BIN" --version 2>/dev/null | sed -n '1s/.*version \([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
  [ -n "$v" ] || return 1
  set -- $v
  [ "$1" -gt 9 ] || { [ "$1" = 9 ] && [ "$2" -ge 1 ]; }
}

if ! usable; then
  command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null ||
    { echo "outer-qemu: no apt-get/dpkg-deb here" >&2; exit 1; }
  grep -q 'VERSION_CODENAME=bookworm' /etc/os-release 2>/dev/null ||
    { echo "outer-qemu: not Debian 12 (bookworm): using the system's QEMU" >&2; exit 1; }
  rm -rf "$DIR"
  mkdir -p "$DIR/apt/lists/partial" "$DIR/apt/cache/archives/partial" "$DIR/debs" "$DIR/root"
  echo "deb $MIRROR $SUITE main" >"$DIR/apt/sources.list"
  A=(-o "Dir::Etc::SourceList=$DIR/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
     -o "Dir::State::Lists=$DIR/apt/lists" -o "Dir::Cache=$DIR/apt/cache"
     -o APT::Sandbox::User=root -q)
  echo "outer-qemu: fetching ${PKGS[*]} from $SUITE into $DIR" >&2
  apt-get "${A[@]}" update >"$DIR/apt.log" 2>&1 &&
    (cd "$DIR/debs" && apt-get "${A[@]}" download "${PKGS[@]/%//$SUITE}") >>"$DIR/apt.log" 2>&1 ||
    { tail -n 5 "$DIR/apt.log" >&2; echo "outer-qemu: download failed: using the system's QEMU" >&2; exit 1; }
  for f in "$DIR"/debs/*.deb; do
    dpkg-deb -x "$f" "$DIR/root" || { echo "outer-qemu: cannot unpack $f" >&2; exit 1; }
  done
  rm -rf "$DIR/debs" "$DIR/apt/cache"
  usable || { echo "outer-qemu: $BIN does not run here (or is older than 9.1): using the system's QEMU" >&2
              "$BIN" --version 2>&1 | head -n 3 >&2; exit 1; }
fi
echo "$BIN $DATA"
