#!/bin/bash
# timeout: 240
# NVMe with Linux's nvme driver (scenario tools/guest-kit/scenarios/nvme), one boot, 2 vCPUs:
# one controller (serial given) with two namespaces, nvme0n1 read-write (64 MiB of zeroes)
# and nvme0n2 read-only (8 MiB of random bytes, the pattern source). The guest checks the
# driver bound, the serial, the sizes, copies pattern extents to nvme0n1 with dd in many
# shapes (4 KiB; 128 KiB = PRP list; 512 KiB and 1 MiB writes = MDTS-sized commands with
# full PRP lists, split by the driver; a 150 KiB write at an LBA that is not page aligned,
# from a buffer that need not be; buffered unaligned and large writes + sync = flush; a copy
# on the other vCPU's queue in parallel; a discard; the last LBA), reads them back with
# O_DIRECT and compares, again after a controller reset and after BAR0 moved (PCI rescan),
# then writes more; a write to the read-only namespace is refused by the device. After
# power-off the host replays the same operations on a zero image and compares it with the
# disk image byte for byte: the data really reached the file.
# (Linux 6.1 never sends a chained PRP list here: MDTS = 512 KiB and at most 127 segments
# make at most 128 entries; tests/unit/nvme covers chaining.)
. "$(dirname "$0")/lib.bash"
need_kvm
need_amber

M=1048576
rw=$TMPD/rw.img
ro=$TMPD/ro.img
truncate -s $((64 * M)) "$rw"
head -c $((8 * M)) /dev/urandom > "$ro"
ro_sum=$(sha256sum < "$ro")
# MODE:SRC:DST:LEN:BS (see the scenario); extents on nvme0n1 do not overlap, except the
# discard, which punches the middle of the extent written just before it.
ops=(
  d:0:$((1 * M)):4096:4096
  d:65536:$((2 * M)):131072:131072
  d:$((1 * M)):$((4 * M)):$((3 * M / 2)):524288
  d:$((5 * M)):$((8 * M + 3584)):153600:153600
  b:$((6 * M)):$((10 * M + 123)):1000:1000
  b:0:$((16 * M)):$((2 * M)):65536
  p:$((4 * M)):$((24 * M)):$((1 * M)):262144
  d:$((7 * M)):$((28 * M)):$((1 * M)):$((1 * M))
  d:0:$((32 * M)):524288:524288
  z:0:$((32 * M + 131072)):262144:0
  d:$((3 * M)):$((64 * M - 512)):512:512
)
# after a controller reset and a BAR0 move
ops2=(
  d:$((2 * M)):$((40 * M)):524288:131072
  p:$((6 * M)):$((44 * M)):524288:65536
  d:$((5 * M)):$((48 * M + 512)):8192:8192
)
opstr=$(IFS=,; echo "${ops[*]}")
opstr2=$(IFS=,; echo "${ops2[*]}")
serial=AMBER-GT-0001

out=$TMPD/out
start=$(date +%s%N)
timeout -k 5 200 "$AMBER" run --kernel "$KIT/bzImage" --initrd "$KIT/initramfs.cpio" \
  --cmdline "$CMDLINE_BASE amber.test=nvme amber.nvme.serial=$serial amber.nvme.sizes=$((64 * M)),$((8 * M)) amber.nvme.ro=2 amber.nvme.ops=$opstr amber.nvme.reset=1 amber.nvme.move=1 amber.nvme.ops2=$opstr2" \
  --cpus 2 --memory 256M --serial stdio \
  --disk "nvme:$rw,serial=$serial" --disk "nvme:$ro,ro" </dev/null >"$out" 2>&1
rc=$?
echo "amber exit $rc after $((($(date +%s%N) - start) / 1000000)) ms"
tr -d '\r' <"$out" | grep -E '^(NVME|AMBER-|nvme|amber)|error|warn' | tail -n 60
[ $rc = 124 ] && fail "amber did not finish within 200 s"
grep -q 'AMBER-TEST nvme: PASS' "$out" || fail "scenario nvme did not pass"
[ $rc = 0 ] || fail "amber exited $rc after the guest powered off (expected 0)"

# The host's view: replay the operations on a zero image and compare the whole disk.
exp=$TMPD/expect.img
truncate -s $((64 * M)) "$exp"
for op in "${ops[@]}" "${ops2[@]}"; do
  IFS=: read -r mode s d l bs <<<"$op"
  if [ "$mode" = z ]; then
    dd if=/dev/zero of="$exp" bs=65536 iflag=count_bytes count="$l" oflag=seek_bytes \
      seek="$d" conv=notrunc status=none
  else
    dd if="$ro" of="$exp" bs=65536 iflag=skip_bytes,count_bytes skip="$s" count="$l" \
      oflag=seek_bytes seek="$d" conv=notrunc status=none
  fi
done
cmp "$rw" "$exp" || fail "the disk image differs from the replayed operations (cmp above)"
[ "$(sha256sum < "$ro")" = "$ro_sum" ] || fail "the read-only image changed"
echo "host: rw.img equals the replayed operations; ro.img unchanged"
echo "PASS"
