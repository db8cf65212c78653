#!/bin/bash
# timeout: 150
# nvme-cli (Debian's, in the guest kit) in a Linux guest against amber's NVMe controller
# (scenario tools/guest-kit/scenarios/nvme-cli): one controller with two namespaces of
# different sizes (the second not a multiple of 4 KiB). The guest prints what `nvme list`,
# `nvme id-ctrl`, `nvme id-ns` and `nvme smart-log` report; the host checks each value
# against what it configured (serial, image sizes) and what amber defines (PCI vendor and
# model number in src/hw/nvme/, firmware revision = amber's version), and that SMART's
# data units written grew by exactly what the guest wrote (NVMe 1.4 §5.14.1.2: thousands
# of 512-byte units, rounded up).
. "$(dirname "$0")/lib.bash"
need_kvm
need_amber
command -v jq >/dev/null || fail "jq missing (tools/deps.sh)"

M=1048576
a=$TMPD/a.img
b=$TMPD/b.img
size_a=$((48 * M))
size_b=$((12 * M + 7 * 512))
truncate -s $size_a "$a"
truncate -s $size_b "$b"
serial=AMBER-CLI-0042
write_mb=8
# what the source defines: the PCI vendor (VID and SSVID), the model number, the version
vid=$(sed -n 's/^#define NVME_PCI_VENDOR *\(0x[0-9a-f]*\).*/\1/p' "$REPO/src/hw/nvme/nvme.h")
model=$(sed -n 's/.*put_str(id + 24, 40, "\([^"]*\)");.*MN.*/\1/p' "$REPO/src/hw/nvme/admin.c")
version=$("$AMBER" --version | sed -n 's/^amber //p')
[ -n "$vid" ] && [ -n "$model" ] && [ -n "$version" ] ||
  fail "could not read VID ('$vid'), MN ('$model') or version ('$version') from the source/amber"

out=$TMPD/out
start=$(date +%s%N)
timeout -k 5 120 "$AMBER" run --kernel "$KIT/bzImage" --initrd "$KIT/initramfs-tools.cpio" \
  --cmdline "$CMDLINE_BASE amber.test=nvme-cli amber.nvmecli.write_mb=$write_mb" \
  --cpus 1 --memory 256M --serial stdio \
  --disk "nvme:$a,serial=$serial" --disk "nvme:$b" </dev/null >"$out" 2>&1
rc=$?
echo "amber exit $rc after $((($(date +%s%N) - start) / 1000000)) ms"
tr -d '\r' <"$out" >"$TMPD/lines"
grep -E '^(NVMECLI-(CTRL|NS|FAIL)|NVMECLI done|AMBER-)|error|warn' "$TMPD/lines" | tail -n 60
[ $rc = 124 ] && fail "amber did not finish within 120 s"
grep -q 'AMBER-TEST nvme-cli: PASS' "$TMPD/lines" || fail "scenario nvme-cli did not pass"
[ $rc = 0 ] || fail "amber exited $rc after the guest powered off (expected 0)"

# section TAG: the output of one command, without its prefix
section() { sed -n "s/^NVMECLI-$1 //p" "$TMPD/lines"; }
# field TAG NAME: the value of "NAME : value" in TAG's output, trailing blanks removed
field() { section "$1" | sed -n "s/^$2 *: \(.*\)/\1/p" | sed 's/ *$//' | head -n1; }
bad=0
check() {  # check WHAT GOT WANT
  if [ "$2" = "$3" ]; then echo "ok: $1 = '$2'"; else echo "BAD: $1 = '$2', expected '$3'"; bad=1; fi
}

# nvme list: both namespaces with serial, model, firmware and size
section LIST >"$TMPD/list.json"
jq -e . "$TMPD/list.json" >/dev/null || { cat "$TMPD/list.json"; fail "nvme list -o json is not JSON"; }
check "nvme list: devices" "$(jq '.Devices | length' "$TMPD/list.json")" 2
n=1
for size in $size_a $size_b; do
  d=$(jq -c ".Devices[] | select(.DevicePath == \"/dev/nvme0n$n\")" "$TMPD/list.json")
  [ -n "$d" ] || { bad=1; echo "BAD: nvme list has no /dev/nvme0n$n"; n=$((n + 1)); continue; }
  check "nvme list nvme0n$n SerialNumber" "$(jq -r .SerialNumber <<<"$d" | sed 's/ *$//')" "$serial"
  check "nvme list nvme0n$n ModelNumber" "$(jq -r .ModelNumber <<<"$d" | sed 's/ *$//')" "$model"
  check "nvme list nvme0n$n Firmware" "$(jq -r .Firmware <<<"$d" | sed 's/ *$//')" "$version"
  check "nvme list nvme0n$n NameSpace" "$(jq -r .NameSpace <<<"$d")" $n
  check "nvme list nvme0n$n PhysicalSize" "$(jq -r .PhysicalSize <<<"$d")" $size
  check "nvme list nvme0n$n MaximumLBA" "$(jq -r .MaximumLBA <<<"$d")" $((size / 512))
  check "nvme list nvme0n$n SectorSize" "$(jq -r .SectorSize <<<"$d")" 512
  n=$((n + 1))
done

# id-ctrl: the identity amber gives the controller (NVMe 1.4 Figure 247)
check "id-ctrl vid" "$(field CTRL vid)" "$vid"
check "id-ctrl ssvid" "$(field CTRL ssvid)" "$vid"
check "id-ctrl sn" "$(field CTRL sn)" "$serial"
check "id-ctrl mn" "$(field CTRL mn)" "$model"
check "id-ctrl fr" "$(field CTRL fr)" "$version"
check "id-ctrl nn" "$(field CTRL nn)" 2
check "id-ctrl ver" "$(field CTRL ver)" 0x10400
check "id-ctrl subnqn" "$(field CTRL subnqn)" "nqn.2024-01.org.amber-vmm:nvme:$serial"

# id-ns: size, capacity and utilization in 512-byte blocks (LBA format 0: 512 B, no metadata)
n=1
for size in $size_a $size_b; do
  for f in nsze ncap nuse; do
    got=$(field NS$n $f)
    check "id-ns nvme0n$n $f" "$((got))" $((size / 512))
  done
  check "id-ns nvme0n$n lbaf 0" "$(section NS$n | sed -n 's/^lbaf *0 *: *\(ms:0 *lbads:9\).*/\1/p' | tr -s ' ')" "ms:0 lbads:9"
  n=$((n + 1))
done

# smart-log: data units written grew by write_mb MiB in thousands of 512-byte units
section SMART1 >"$TMPD/s1.json"
section SMART2 >"$TMPD/s2.json"
dw1=$(jq -r .data_units_written "$TMPD/s1.json") dw2=$(jq -r .data_units_written "$TMPD/s2.json")
hw1=$(jq -r .host_write_commands "$TMPD/s1.json") hw2=$(jq -r .host_write_commands "$TMPD/s2.json")
echo "smart-log: data_units_written $dw1 -> $dw2, host_write_commands $hw1 -> $hw2"
sectors=$((write_mb * M / 512))
if [[ "$dw1$dw2$hw1$hw2" =~ ^[0-9]+$ ]] && [ $((dw2 - dw1)) -ge $((sectors / 1000)) ] &&
   [ $((dw2 - dw1)) -le $(((sectors + 999) / 1000)) ] && [ "$hw2" -gt "$hw1" ]; then
  echo "ok: smart-log counts the $write_mb MiB written ($sectors sectors)"
else
  echo "BAD: smart-log: expected data_units_written to grow by $((sectors / 1000))-$(((sectors + 999) / 1000)) and host_write_commands to grow"
  bad=1
fi
[ $bad = 0 ] || fail "nvme-cli reported values that differ from the configuration (BAD lines above)"
echo "PASS"
