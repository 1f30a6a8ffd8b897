#!/usr/bin/env bash
# mailvault alone at a million messages: Maildir import (rate, peak RSS, bytes
# on disk) and warm search latency for the query mix of bench/run.sh.  The
# peers are left out at this size: notmuch and mu index ~200-300 msg/s here
# (bench/RESULTS.md), an hour and more for 1M.  Figures print; nothing fails.
#
# usage: bench/run_1m.sh [COUNT]   (default 1000000; MAILVAULT_BIN, MAILVAULT_BENCH_DIR as in run.sh)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
COUNT=${1:-1000000}
BIN=${MAILVAULT_BIN:-$REPO/build-release/mailvault}
CACHE=${MAILVAULT_BENCH_DIR:-$REPO/bench/out/corpora}
CORPUS=$CACHE/gen-$COUNT-maildir
WORK=$REPO/bench/out/work-$COUNT
[ -x "$BIN" ] || { meson setup "$REPO/build-release" --buildtype=release >/dev/null; ninja -C "$REPO/build-release"; }
if [ ! -f "$CORPUS/manifest.json" ]; then
	python3 "$HERE/gen_corpus.py" --count "$COUNT" --seed 42 --out "$CORPUS" --formats maildir --jobs 2
fi
rm -rf "$WORK"; mkdir -p "$WORK"
"$BIN" --data-dir "$WORK/data" init >/dev/null
echo "import $COUNT messages (Maildir)"
/usr/bin/time -f '%M %e' -o "$WORK/import.time" \
	"$BIN" --data-dir "$WORK/data" import "$CORPUS/maildir" --archive bench --json --quiet >"$WORK/import.json"
read -r rss wall <"$WORK/import.time"
python3 - "$WORK/import.json" "$rss" "$wall" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); rss, wall = int(sys.argv[2]), float(sys.argv[3])
print(f"imported {r['imported']}, refused {r['refused']}: {r['imported']/wall:,.0f} msg/s, "
      f"{r['bytes']/1e6/wall:.1f} MB/s, {wall:.0f} s, peak RSS {rss/1024:.0f} MB")
PY
"$BIN" --data-dir "$WORK/data" stats --json >"$WORK/stats.json"
python3 - "$WORK/stats.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1])); s = t["stores"][0]["disk"]; tot = t["total"]
raw, disk = tot.get("rawBytes", tot.get("raw_bytes")), tot.get("diskBytes", tot.get("disk_bytes"))
print(f"on disk: content {s['content']/1e6:.0f} MB, db {s['db']/1e6:.0f} MB, index {s['index']/1e6:.0f} MB"
      f" = {100*disk/raw:.0f}% of {raw/1e6:.0f} MB raw")
PY
python3 "$HERE/benchlib.py" querymix "$CORPUS/maildir" "$WORK/querymix" --seed 7 >/dev/null
for scope in "" "--archive bench"; do
	# shellcheck disable=SC2086
	/usr/bin/time -f '%M' -o "$WORK/search.rss" "$BIN" --data-dir "$WORK/data" search-bench \
		"$WORK/querymix.mailvault" --rounds 20 $scope >"$WORK/search.json"
	echo "search-bench ${scope:-(all archives)}, warm, 20 rounds, peak RSS $(( $(cat "$WORK/search.rss") / 1024 )) MB:"
	python3 - "$WORK/search.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for q in d["queries"]:
    print(f"  {q['query'][:46]:46} {q['hits']:4d} hits  p50 {q['p50_ms']:6.2f} ms  p95 {q['p95_ms']:6.2f} ms")
print(f"  all queries: p50 {d['p50_ms']:.2f} ms, p95 {d['p95_ms']:.2f} ms")
PY
done
