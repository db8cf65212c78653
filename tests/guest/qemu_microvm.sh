#!/bin/bash
# timeout: 120
# The rig boots a guest: QEMU -enable-kvm -M microvm boots the guest kit (amber.test=hello)
# to userspace and the scenario passes. Proves the guest kit and the (nested) KVM together.
set -u
KIT=${AMBER_BUILD:?AMBER_BUILD not set}/guest-kit
REPO=$(cd "$(dirname "$0")/../.." && pwd)
if ! reason=$("$REPO/tools/kvm-usable" 2>&1); then
  echo "$reason"
  exit 77
fi
QEMU=$(command -v qemu-system-x86_64) || { echo "qemu-system-x86_64 not installed"; exit 77; }
for f in bzImage initramfs.cpio; do
  [ -f "$KIT/$f" ] || { echo "$KIT/$f missing (tools/guest-kit/build.sh $KIT)"; exit 1; }
done

out=$(mktemp)
trap 'rm -f "$out"' EXIT
start=$(date +%s%N)
timeout -k 5 90 "$QEMU" -enable-kvm -M microvm,rtc=on -cpu host -smp 1 -m 256M \
  -nodefaults -no-user-config -display none -no-reboot -serial stdio \
  -kernel "$KIT/bzImage" -initrd "$KIT/initramfs.cpio" \
  -append "console=ttyS0 quiet panic=-1 amber.test=hello" </dev/null >"$out" 2>&1
rc=$?
ms=$((($(date +%s%N) - start) / 1000000))
tr -d '\r' < "$out"
echo "qemu exit $rc after ${ms} ms"
[ $rc = 124 ] && { echo "FAIL: QEMU did not finish within 90 s"; exit 1; }
grep -q '^AMBER-GUEST: userspace' "$out" || { echo "FAIL: no 'AMBER-GUEST: userspace' marker"; exit 1; }
grep -q '^AMBER-TEST hello: PASS' "$out" || { echo "FAIL: no 'AMBER-TEST hello: PASS' marker"; exit 1; }
echo "PASS: guest reached userspace and passed 'hello'"
