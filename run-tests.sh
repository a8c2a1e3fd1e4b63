#!/usr/bin/env bash
# run-tests.sh: install what is missing, build with -Dwerror=true, run every test (unit and
# integration), and end with one line "N passed, N failed" (", N skipped") from meson's testlog.
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
rm -f "$testlog"
set +e
meson test -C build --print-errorlogs --num-processes 2
meson_rc=$?
set -e

/usr/bin/python3 - "$testlog" "$meson_rc" <<'PY'
import json, sys
path, meson_rc = sys.argv[1], int(sys.argv[2])
passed = failed = skipped = 0
try:
    with open(path, encoding="utf-8") as f:
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
    print(f"run-tests: no {path}: meson test did not run", file=sys.stderr)
    failed += 1
line = f"{passed} passed, {failed} failed"
if skipped:
    line += f", {skipped} skipped"
print(line)
if failed or passed == 0 or meson_rc != 0:
    sys.exit(1)
PY
