#!/bin/sh
# run_fuzzer.sh TARGET [SECONDS] [BUILD_DIR]: fuzzes one target of a -Dfuzzing=true build, then
# merges what it found into tests/fuzz/corpus/TARGET (libFuzzer -merge=1 keeps only inputs that add
# coverage). Crashes land in tests/fuzz/crashes/TARGET/, outside the replayed corpus.
# One fuzzer at a time: it uses one core.
set -eu
target=${1:?usage: run_fuzzer.sh TARGET [SECONDS] [BUILD_DIR]}
seconds=${2:-300}
here=$(cd "$(dirname "$0")" && pwd)
build=${3:-$here/../../build-fuzz}
fuzzer=$build/tests/fuzz/fuzz_$target
[ -x "$fuzzer" ] || { echo "$fuzzer not built: ninja -C $build tests/fuzz/fuzz_$target" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/fuzz-$target.XXXXXX")
mkdir -p "$work/grown" "$here/crashes/$target"
cp "$here/corpus/$target/"* "$work/grown/" 2>/dev/null || true
dict=
[ -f "$here/$target.dict" ] && dict=-dict=$here/$target.dict
max_len=4096
[ "$target" = proxy_header ] && max_len=1024
# -jobs=1 writes the log to fuzz-0.log in the current directory.
cd "$work"
status=0
"$fuzzer" "$work/grown" $dict -max_total_time="$seconds" -jobs=1 -workers=1 -rss_limit_mb=512 -timeout=5 \
  -max_len=$max_len -artifact_prefix="$here/crashes/$target/" -print_final_stats=1 > "$work/run.log" 2>&1 || status=$?
grep -E '^#[0-9]+.*(DONE|pulse)|stat::|SUMMARY|ERROR' "$work/fuzz-0.log" | tail -12
mkdir -p "$work/merged"
"$fuzzer" -merge=1 -rss_limit_mb=512 -timeout=5 "$work/merged" "$here/corpus/$target" "$work/grown" > "$work/merge.log" 2>&1
tail -1 "$work/merge.log"
rm -f "$here/corpus/$target/"*
cp "$work/merged/"* "$here/corpus/$target/"
echo "corpus/$target: $(ls "$here/corpus/$target" | wc -l) files, $(du -sk "$here/corpus/$target" | cut -f1) KiB; log in $work/fuzz-0.log"
exit $status
