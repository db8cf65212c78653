#!/bin/bash
# timeout: 200
# NVMe without MSI-X: the guest boots with pci=nomsi, so Linux's nvme driver runs on the
# legacy INTx pin (shared by the admin and I/O queues, level-triggered, deasserted when the
# host consumes the completions). Writes, reads back and compares; a controller reset; then
# the host checks the image (tools/guest-kit/scenarios/nvme does the guest part).
. "$(dirname "$0")/lib.bash"
need_kvm
need_amber

M=1048576
rw=$TMPD/rw.img
src=$TMPD/src.img
truncate -s $((16 * M)) "$rw"
head -c $((4 * M)) /dev/urandom > "$src"
ops=(
  d:0:0:131072:131072
  b:$((1 * M)):$((2 * M)):$((2 * M)):65536
  d:$((3 * M)):$((6 * M + 512)):65536:65536
  z:0:$((2 * M + 4096)):8192:0
)
opstr=$(IFS=,; echo "${ops[*]}")

out=$TMPD/out
timeout -k 5 170 "$AMBER" run --kernel "$KIT/bzImage" --initrd "$KIT/initramfs.cpio" \
  --cmdline "$CMDLINE_BASE pci=nomsi amber.test=nvme amber.nvme.sizes=$((16 * M)),$((4 * M)) amber.nvme.ops=$opstr amber.nvme.reset=1" \
  --cpus 1 --memory 256M --serial stdio \
  --disk "nvme:$rw" --disk "nvme:$src" </dev/null >"$out" 2>&1
rc=$?
tr -d '\r' <"$out" | grep -E '^(NVME|AMBER-)|error|warn' | tail -n 30
[ $rc = 124 ] && fail "amber did not finish within 170 s"
grep -q 'AMBER-TEST nvme: PASS' "$out" || fail "scenario nvme did not pass"
grep -q 'NVME driver=nvme .* msi=0' "$out" || fail "the driver did not run on INTx (msi count above)"
[ $rc = 0 ] || fail "amber exited $rc after the guest powered off (expected 0)"

exp=$TMPD/expect.img
truncate -s $((16 * M)) "$exp"
for op in "${ops[@]}"; do
  IFS=: read -r mode s d l bs <<<"$op"
  if [ "$mode" = z ]; then
    dd if=/dev/zero of="$exp" bs=65536 iflag=count_bytes count="$l" oflag=seek_bytes \
      seek="$d" conv=notrunc status=none
  else
    dd if="$src" of="$exp" bs=65536 iflag=skip_bytes,count_bytes skip="$s" count="$l" \
      oflag=seek_bytes seek="$d" conv=notrunc status=none
  fi
done
cmp "$rw" "$exp" || fail "the disk image differs from the replayed operations (cmp above)"
echo "host: rw.img equals the replayed operations"
echo "PASS"
