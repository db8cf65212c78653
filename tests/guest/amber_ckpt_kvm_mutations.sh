#!/bin/bash
# timeout: 420
# Damaged machine state against real KVM: zero partial restores. A 2-vCPU guest is
# checkpointed; tests/guest/ckpt_mutate.py then writes AMBER_MUT_N (default 60) copies, each
# with one register or device value changed to another of the same JSON kind (bit flips, 0,
# all-ones, random; booleans flipped; a bit of the XSAVE blob), which the type checks let
# through. Each copy is restored (lazy, 3 s). Every outcome is fine except one: amber must
# either refuse the checkpoint before loading anything (exit 2, the field named) or load it
# completely, after which the guest runs, powers off or crashes as its state makes it
# (exit 0, 4, 5 or still running). Exit 3 ("loading device ...", "loading the irqchip ...")
# or exit 2 with "KVM refuses" (a vCPU section KVM_SET_* refused) means validation, and so
# `amber inspect --verify`, passed a value that loading then refused: a half-restored VM,
# even if it never ran. A signal (crash) fails too. The unit test test_ckpt.c does the same
# with thousands of mutations against the decoders only; this one asks KVM itself. The seed
# (AMBER_MUT_SEED, default 1) is fixed so that make check is repeatable; other seeds explore
# further.
#   AMBER_MUT_N=300 AMBER_MUT_SEED=7 tests/guest/run-all BUILD amber_ckpt_kvm_mutations
. "$(dirname "$0")/lib.bash"
need_kvm
need_amber
n=${AMBER_MUT_N:-60}
seed=${AMBER_MUT_SEED:-1}
budget=${AMBER_MUT_BUDGET:-300}
sock=$TMPD/ctl.sock
ck=$TMPD/ck
counter_checkpoint "$TMPD/out" "$sock" "$ck" 128M 600 3
# the unchanged checkpoint restores (the baseline every mutation is compared with)
timeout -k 2 3 "$AMBER" run --restore "$ck" --serial none </dev/null >"$TMPD/base" 2>&1
rc=$?
[ $rc = 124 ] || [ $rc = 0 ] || { cat "$TMPD/base"; fail "the unchanged checkpoint: exit $rc"; }
echo "seed $seed: $n mutations"
python3 "$REPO/tests/guest/ckpt_mutate.py" "$ck" "$TMPD/m" "$n" "$seed" ||
  fail "ckpt_mutate.py could not make $n mutations"
refused=0 ran=0 crashed=0 bad=0 done_=0
start=$SECONDS
for ((i = 0; i < n; i++)); do
  if [ $((SECONDS - start)) -ge "$budget" ]; then
    echo "time budget (${budget}s) used up after $i mutations"
    break
  fi
  d=$TMPD/m/$i
  timeout -k 2 3 "$AMBER" run --restore "$d" --serial none </dev/null >"$d/out" 2>&1
  rc=$?
  done_=$((done_ + 1))
  case $rc in
    2)
      if grep -q 'KVM refuses' "$d/out"; then
        # exit 2 and nothing ran, but validation (and so inspect --verify) missed it
        bad=$((bad + 1))
        echo "passed validation, refused by KVM: $(cat "$d/mutation")"
        grep -a 'amber' "$d/out" | head -n 2
      else
        refused=$((refused + 1))
      fi
      ;;
    0 | 124) ran=$((ran + 1)) ;;
    4 | 5) crashed=$((crashed + 1)) ;;
    *)
      bad=$((bad + 1))
      echo "HALF-RESTORED or crashed (exit $rc): $(cat "$d/mutation")"
      grep -a 'amber' "$d/out" | head -n 3
      ;;
  esac
  rm -f "$d/memory.bin"
done
echo "$done_ restores: $refused refused by validation, $ran loaded and ran, $crashed loaded and the guest crashed, $bad half-restored"
[ "$done_" -ge 20 ] || fail "only $done_ mutations ran in ${budget}s"
[ $refused -gt 0 ] || fail "no mutation was refused: the test did not damage anything"
[ $bad = 0 ] || fail "$bad damaged checkpoints passed validation and then failed while loading"
echo "PASS"
