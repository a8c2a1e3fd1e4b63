#!/usr/bin/env bash
# run-tests.sh: install what is missing, build with -Dwerror=true, run every test (unit and
# integration), then build again with AddressSanitizer and UndefinedBehaviorSanitizer and run the
# unit tests, the fuzz corpus replays and the integration tests against that build; end with one
# line "N passed, N failed" (", N skipped") from both meson testlogs, where every sanitizer report
# counts as a failure. MAILFERRY_SANITIZERS=0 skips the second build.
set -euo pipefail
cd "$(dirname "$0")"

scripts/install-deps.sh

if [[ -f build/meson-private/coredata.dat ]]; then
  meson setup --reconfigure build --wrap-mode=nofallback -Dwerror=true
else
  meson setup build --wrap-mode=nofallback -Dwerror=true
fi
ninja -C build

testlog=build/meson-logs/testlog.json
asan_testlog=build-asan/meson-logs/testlog.json
reports=build-asan/sanitizer-reports
rm -f "$testlog" "$asan_testlog"
set +e
meson test -C build --print-errorlogs --num-processes 2
meson_rc=$?
set -e

if [[ "${MAILFERRY_SANITIZERS:-1}" != 0 ]]; then
  # -O1: fast enough to run the integration tests, and the reports keep their line numbers. Not
  # -Dwerror: the sanitizers make g++ warn inside libstdc++ (regex, maybe-uninitialized).
  if [[ -f build-asan/meson-private/coredata.dat ]]; then
    meson setup --reconfigure build-asan --wrap-mode=nofallback
  else
    meson setup build-asan --wrap-mode=nofallback -Db_sanitize=address,undefined -Db_lundef=false \
      --buildtype=debug -Doptimization=1
  fi
  ninja -C build-asan
  rm -rf "$reports"
  mkdir -p "$reports"
  chmod 1777 "$reports"   # the run_as and sendmail tests run mailferry as nobody
  # Every report goes to a file (a daemon's stderr is a log nobody reads); the summary below
  # counts them. testssl is left out: an external scanner over the same TLS paths tls_auth covers,
  # and the slowest test by far.
  set +e
  SANITIZED_BUILD=1 ASAN_OPTIONS="log_path=$PWD/$reports/asan:detect_leaks=1" \
  UBSAN_OPTIONS="log_path=$PWD/$reports/ubsan:print_stacktrace=1" \
    meson test -C build-asan --no-rebuild --print-errorlogs --num-processes 2 \
      --suite unit --suite fuzz --suite integration --no-suite scanner
  asan_rc=$?
  set -e
  if ((asan_rc != 0)); then meson_rc=$asan_rc; fi
fi

/usr/bin/python3 - "$meson_rc" "$testlog" "${MAILFERRY_SANITIZERS:-1}" "$asan_testlog" "$reports" <<'PY'
import json, os, sys
meson_rc, path, sanitizers, asan_path, reports = int(sys.argv[1]), sys.argv[2], sys.argv[3] != "0", sys.argv[4], sys.argv[5]
passed = failed = skipped = 0
for p in [path] + ([asan_path] if sanitizers else []):
    try:
        with open(p, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                result = json.loads(line).get("result")
                if result in ("OK", "EXPECTEDFAIL"):
                    passed += 1
                elif result == "SKIP":
                    skipped += 1
                else:   # FAIL, TIMEOUT, ERROR, UNEXPECTEDPASS, INTERRUPT
                    failed += 1
    except FileNotFoundError:
        print(f"run-tests: no {p}: meson test did not run", file=sys.stderr)
        failed += 1
if sanitizers:
    # A sanitizer report in any process (a daemon, a sendmail run) fails the run, even when the
    # test around it passed.
    found = sorted(os.listdir(reports)) if os.path.isdir(reports) else []
    for name in found:
        print(f"run-tests: sanitizer report {reports}/{name}:", file=sys.stderr)
        with open(os.path.join(reports, name), errors="replace") as f:
            sys.stderr.write(f.read()[:4000])
    failed += len(found)
line = f"{passed} passed, {failed} failed"
if skipped:
    line += f", {skipped} skipped"
print(line)
if failed or passed == 0 or meson_rc != 0:
    sys.exit(1)
PY
