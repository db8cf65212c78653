#!/bin/bash
# timeout: 60
# The KVM API works here: a real-mode guest's port I/O, MMIO write/read and HLT exits
# (tests/guest/kvm_smoke.c). Skips only if /dev/kvm cannot be opened.
set -u
bin=${AMBER_BUILD:?AMBER_BUILD not set}/tests/guest/kvm_smoke
if [ ! -x "$bin" ]; then
  echo "kvm_smoke: $bin not built (ninja -C $AMBER_BUILD)"
  exit 1
fi
exec "$bin"
