#!/bin/bash
# What `make check` runs: build (warnings are errors), guest kit, unit tests, guest tests.
#   tools/check.sh BUILDDIR
# Guest tests (tests/guest/*.sh, run by tests/guest/run-all) run directly when this machine
# has usable KVM, else all together in ONE nested test machine (tests/kvmbox/run), else
# (no QEMU) they are reported as skipped with the reason. The last line is always
#   N passed, N failed, N skipped
# (unit + guest totals); the exit status is non-zero if anything failed.
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-build}
mkdir -p "$BUILD"
BUILD=$(cd "$BUILD" && pwd)
cd "$REPO" || exit 1

passed=0 failed=0 skipped=0
section() { printf '\n==== %s\n' "$*"; }

# ---- build ---------------------------------------------------------------------------------
section "build ($BUILD)"
build_ok=1
if [ ! -f "$BUILD/build.ninja" ]; then
  meson setup "$BUILD" -Dwerror=true || build_ok=0
elif [ "$(meson introspect --buildoptions "$BUILD" 2>/dev/null |
          python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="werror"][0])' 2>/dev/null)" != True ]; then
  meson configure "$BUILD" -Dwerror=true || build_ok=0
fi
# -k 0: build what can be built (e.g. the guest test programs) even if a target fails
if [ $build_ok = 1 ]; then ninja -C "$BUILD" -k 0 || build_ok=0; fi
if [ $build_ok = 0 ]; then
  echo "FAIL build"
  failed=$((failed + 1))
fi

section "guest kit"
kit_ok=1
"$REPO/tools/guest-kit/build.sh" "$BUILD/guest-kit" || { kit_ok=0; echo "FAIL guest-kit"; failed=$((failed + 1)); }

# ---- unit tests ----------------------------------------------------------------------------
section "unit tests"
if [ $build_ok = 1 ]; then
  meson test -C "$BUILD" --suite unit --print-errorlogs 2>&1 | tee "$BUILD/unit-results.txt"
  num() { sed -n "s/^$1: *\([0-9][0-9]*\) *\$/\1/p" "$BUILD/unit-results.txt" | tail -n1; }
  ok=$(num 'Ok'); xf=$(num 'Expected Fail'); f=$(num 'Fail'); up=$(num 'Unexpected Pass')
  sk=$(num 'Skipped'); to=$(num 'Timeout')
  passed=$((passed + ${ok:-0} + ${xf:-0}))
  failed=$((failed + ${f:-0} + ${up:-0} + ${to:-0}))
  skipped=$((skipped + ${sk:-0}))
  if [ -z "$ok" ] && ! grep -qE 'No (suitable )?tests defined' "$BUILD/unit-results.txt"; then
    echo "FAIL unit tests: no meson summary"
    failed=$((failed + 1))
  fi
else
  echo "unit tests not run: the build failed"
fi

# ---- clang and sanitizers ---------------------------------------------------------------------
# The quality bar: warnings-clean on clang too, and the unit tests pass under ASan+UBSan.
# Each is one more counted result; AMBER_CHECK_QUICK=1 leaves them out (local iteration).
if [ "${AMBER_CHECK_QUICK:-0}" != 1 ]; then
  section "clang build (-Werror)"
  if command -v clang >/dev/null; then
    if { [ -f "$BUILD-clang/build.ninja" ] || CC=clang meson setup "$BUILD-clang" -Dwerror=true >/dev/null; } &&
       ninja -C "$BUILD-clang" >"$BUILD-clang.log" 2>&1; then
      echo "PASS clang build"; passed=$((passed + 1))
    else
      echo "FAIL clang build (log $BUILD-clang.log)"; tail -n 20 "$BUILD-clang.log"; failed=$((failed + 1))
    fi
  else
    echo "SKIP clang build: clang not installed"; skipped=$((skipped + 1))
  fi

  section "unit tests under ASan+UBSan"
  ASAN=$BUILD-asan
  if { [ -f "$ASAN/build.ninja" ] ||
       meson setup "$ASAN" -Db_sanitize=address,undefined -Db_lundef=false -Dwerror=true >/dev/null; } &&
     ninja -C "$ASAN" >"$ASAN.log" 2>&1; then
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ASAN_OPTIONS=detect_leaks=1 \
      meson test -C "$ASAN" --suite unit --print-errorlogs 2>&1 | tee "$ASAN/unit-results.txt" | tail -n 12
    anum() { sed -n "s/^$1: *\([0-9][0-9]*\) *\$/\1/p" "$ASAN/unit-results.txt" | tail -n1; }
    aok=$(anum 'Ok'); af=$(anum 'Fail'); ato=$(anum 'Timeout'); ask=$(anum 'Skipped')
    if [ -n "$aok" ] && [ "${af:-0}" = 0 ] && [ "${ato:-0}" = 0 ]; then
      echo "PASS unit tests under ASan+UBSan ($aok programs, ${ask:-0} skipped)"; passed=$((passed + 1))
    else
      echo "FAIL unit tests under ASan+UBSan (${af:-?} failed, ${ato:-0} timed out)"; failed=$((failed + 1))
    fi
  else
    echo "FAIL ASan build (log $ASAN.log)"; tail -n 20 "$ASAN.log"; failed=$((failed + 1))
  fi
fi

# ---- guest tests ---------------------------------------------------------------------------
section "guest tests"
GUEST_TESTS=()
for t in "$REPO"/tests/guest/*.sh; do [ -x "$t" ] && GUEST_TESTS+=("$(basename "$t" .sh)"); done
results=$BUILD/guest-results.txt
: > "$results"
start=$SECONDS
how=
why_no_kvm=$("$REPO/tools/kvm-usable" 2>&1)
kvm_ok=$?
why_no_kvm=${why_no_kvm#kvm-usable: }
nested_missing=
command -v qemu-system-x86_64 >/dev/null || nested_missing+=" qemu-system-x86_64"
[ -x /usr/lib/qemu/virtiofsd ] || nested_missing+=" virtiofsd"
[ $kit_ok = 1 ] || nested_missing+=" guest-kit"
if [ $kvm_ok = 0 ]; then
  how="directly (usable KVM)"
  "$REPO/tests/guest/run-all" "$BUILD" 2>&1 | tee "$results"
elif [ -z "$nested_missing" ]; then
  # the outer machine's QEMU (tools/outer-qemu.sh), kept with this build
  export AMBER_KVMBOX_OUTER_DIR=${AMBER_KVMBOX_OUTER_DIR:-$BUILD/outer-qemu}
  how="in the nested test machine (no usable KVM here: $why_no_kvm)"
  echo "running guest tests $how"
  # one nested boot for all tests; a test that hangs or stops it runs once more in a new one
  "$REPO/tools/nested-guest-tests.sh" "$BUILD" "$results" "${GUEST_TESTS[@]}"
else
  reason="$why_no_kvm; no nested test machine either (missing:$nested_missing)"
fi
if [ -z "$how" ]; then
  for n in "${GUEST_TESTS[@]}"; do echo "SKIP $n: $reason"; done
  skipped=$((skipped + ${#GUEST_TESTS[@]}))
else
  # every test has its PASS/FAIL/SKIP line, or did not finish (timeout, nested machine failure)
  for n in "${GUEST_TESTS[@]}"; do
    if grep -qE "^PASS $n " "$results"; then
      passed=$((passed + 1))
    elif grep -qE "^SKIP $n[ :]" "$results"; then
      skipped=$((skipped + 1))
    else
      grep -qE "^FAIL $n " "$results" || echo "FAIL $n (no result: guest test run did not finish)"
      failed=$((failed + 1))
    fi
  done
  echo "guest tests ran $how in $((SECONDS - start))s"
  hangs=$(grep -c '^HANG ' "$results")
  [ "$hangs" = 0 ] || echo "note: $hangs test run(s) hung or stopped the nested test machine and ran again in a new one (HANG lines above)"
fi

echo
echo "$passed passed, $failed failed, $skipped skipped"
[ $failed = 0 ]
