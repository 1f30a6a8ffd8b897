#!/bin/bash
# `make test`: builds mailvault under ASan+UBSan, runs the cmocka unit tests,
# the pytest system tests against the real binary, and each libFuzzer target
# for a bounded time; ends with one line "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
root=$PWD
passed=0
failed=0
failures=()

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1:detect_stack_use_after_return=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export LSAN_OPTIONS="suppressions=$root/tools/lsan.supp:print_suppressions=0"
# 30 s per target, two at a time: the 23 targets take ~6 minutes.  At 60 s
# the whole run came to ~42 of its 45 minutes on a slower 2-core machine
# (system tests 20 min there against 15).  Most targets start from a
# checked-in seed corpus (fuzz/corpus/), so the time goes to mutating
# valid inputs rather than finding the format's shape again.
FUZZ_SECONDS=${FUZZ_SECONDS:-30}

note() { printf '\n== %s\n' "$*"; }
count() { passed=$((passed + $1)); failed=$((failed + $2)); }
fail_step() { failures+=("$1"); count 0 1; }

note "build (ASan + UBSan)"
if [ ! -f build-asan/build.ninja ]; then
  meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dtests=enabled >/dev/null ||
    fail_step "meson setup"
else
  meson configure build-asan -Dtests=enabled >/dev/null || fail_step "meson configure"
fi
if ! ninja -C build-asan; then
  fail_step "build"
  echo "$passed passed, $failed failed"
  exit 1
fi

note "unit tests (cmocka)"
# The unit tests are an option of the build: none built is a failure, not a pass.
compgen -G "build-asan/tests/unit/test_*" >/dev/null || fail_step "no unit tests were built (-Dtests)"
for t in build-asan/tests/unit/test_*; do
  [ -f "$t" ] && [ -x "$t" ] || continue
  out=$(CMOCKA_MESSAGE_OUTPUT=stdout "$t" 2>&1); rc=$?
  echo "$out" | grep -E '^\[  (PASSED|FAILED)  \]|^\[  ERROR|^\[==========\]' || true
  p=$(echo "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | tail -1)
  f=$(echo "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | tail -1)
  p=${p:-0}; f=${f:-0}
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "$out" | tail -30; fi
  [ "$f" -ne 0 ] && failures+=("$(basename "$t")")
  count "$p" "$f"
done

note "system tests (pytest)"
export MAILVAULT_BIN="$root/build-asan/mailvault"
# A skip is a failure unless conftest.py allows its reason ("needs root").
export MAILVAULT_STRICT_SKIPS=1
# Two workers (pytest-xdist, --dist loadgroup): the corpus tests share one
# session import and stay together (xdist_group "corpus"), the fault tests
# likewise ("faults"), so the two longest groups run side by side and the
# rest fills in around them.
parallel=""
if /usr/bin/python3 -c "import xdist" 2>/dev/null; then parallel="-n 2 --dist loadgroup"; fi
# shellcheck disable=SC2086
out=$(/usr/bin/python3 -m pytest -q -p no:cacheprovider $parallel tests/system 2>&1); rc=$?
# The whole output stays beside the build; the console gets each failure's
# error lines first, then the end (a tail alone showed one traceback's end).
echo "$out" >"$root/build-asan/pytest-system.log"
echo "$out" | grep -E '^(E  |FAILED |ERROR |_{5,} )' | head -120
echo "$out" | tail -40
line=$(echo "$out" | grep -E '[0-9]+ (passed|failed|error)' | tail -1)
pick() { echo "$line" | grep -oE "[0-9]+ $1" | grep -oE '[0-9]+' | head -1; }
p=$(pick passed); p=${p:-0}
f=$(pick failed); f=${f:-0}
e=$(pick error); e=${e:-0}
skipped=$(pick skipped); skipped=${skipped:-0}
f=$((f + e))
if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
[ "$f" -ne 0 ] && failures+=("system tests")
count "$p" "$f"

note "fuzz targets (libFuzzer, ${FUZZ_SECONDS}s each)"
if [ ! -f build-fuzz/build.ninja ]; then
  CC=clang meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false -Dwerror=true >/dev/null
fi
# One fuzz target runs in a subshell; its verdict and log wait in $results
# so that two targets at a time (one per core) report in a fixed order.
fuzz_one() {
  t=$1 work=$(mktemp -d)
  [ -d "fuzz/corpus/$t" ] && cp -r "fuzz/corpus/$t/." "$work/"
  mkdir "$work/artifacts"
  if build-fuzz/fuzz/$t -max_total_time="$FUZZ_SECONDS" -max_len=65536 -rss_limit_mb=2048 \
      -artifact_prefix="$work/artifacts/" "$work" >"$results/$t.log" 2>&1; then
    echo ok >"$results/$t.verdict"
  else
    echo failed >"$results/$t.verdict"
    # What a CI log must carry to reproduce the finding elsewhere: the
    # harness's own words before the stack, and the input itself.
    for a in "$work"/artifacts/*; do
      [ -f "$a" ] && [ "$(stat -c %s "$a")" -le 16384 ] || continue
      { echo "reproducer $(basename "$a") (base64; decode and run build-fuzz/fuzz/$t FILE):"; base64 -w 120 "$a"; } \
        >>"$results/$t.repro"
    done
  fi
  rm -rf "$work"
}
# A failed target's report: the lines before libFuzzer's or a sanitizer's
# first error line (where a harness says which property failed), the end of
# the log, and the reproducer.
fuzz_report() {
  log=$results/$1.log
  first=$(grep -n -m1 -E '^==[0-9]+== ?ERROR|ERROR: libFuzzer|^SUMMARY' "$log" | cut -d: -f1)
  if [ -n "$first" ]; then
    echo "--- before the first error (line $first):"
    sed -n "$(( first > 15 ? first - 15 : 1 )),$((first + 12))p" "$log"
  fi
  echo "--- end of the log:"
  tail -25 "$log"
  [ -f "$results/$1.repro" ] && cat "$results/$1.repro"
}
fuzz_targets="fuzz_mime fuzz_mbox fuzz_query fuzz_cmdargs fuzz_form fuzz_html fuzz_web fuzz_rtf fuzz_msg fuzz_ooxml
  fuzz_imap_command fuzz_imap_message fuzz_mailstore_headers fuzz_record fuzz_journal fuzz_record_meta fuzz_schedule
  fuzz_routing fuzz_imap_response fuzz_smtp_command fuzz_smtp_session fuzz_journal_report fuzz_networks fuzz_fts5_leaf fuzz_fts5_doclist"
if ninja -C build-fuzz >/dev/null; then
  results=$(mktemp -d)
  running=0
  for t in $fuzz_targets; do
    fuzz_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge 2 ]; then wait -n; running=$((running - 1)); fi
  done
  wait
  for t in $fuzz_targets; do
    if [ "$(cat "$results/$t.verdict" 2>/dev/null)" = ok ]; then
      echo "$t: ok ($(grep -o 'Done [0-9]* runs' "$results/$t.log" | tail -1))"
      count 1 0
    else
      echo "$t: FAILED"; fuzz_report "$t"
      fail_step "$t"
    fi
  done
  rm -rf "$results"
else
  fail_step "fuzz build"
fi

if [ ${#failures[@]} -gt 0 ]; then
  echo
  echo "failed: ${failures[*]}"
fi
echo "$passed passed, $failed failed, ${skipped:-0} skipped"
[ "$failed" -eq 0 ]
