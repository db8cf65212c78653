#!/bin/bash
# make demo: boot the default guest (guest kit, 1 vCPU, 256M) with amber; the
# guest prints what it sees (CPUs, memory, kernel) and powers off. Without a
# usable /dev/kvm on this host, the run happens inside the nested test machine.
set -euo pipefail
BUILD=$(cd "${1:-build}" && pwd)
REPO=$(cd "$(dirname "$0")/.." && pwd)
KIT=$BUILD/guest-kit
cmd=("$BUILD/amber" run --kernel "$KIT/bzImage" --initrd "$KIT/initramfs.cpio"
     --cmdline "console=ttyS0 quiet panic=-1 amber.test=hello" --cpus 1 --memory 256M --serial stdio)
echo "demo: ${cmd[*]}"
if reason=$("$REPO/tools/kvm-usable" 2>&1); then
  exec "${cmd[@]}" </dev/null
fi
echo "demo: this host has no usable /dev/kvm ($reason)"
echo "demo: running amber inside the nested test machine (QEMU TCG + nested KVM); this takes a minute"
exec "$REPO/tests/kvmbox/run" --timeout 300 -- "${cmd[@]}"
