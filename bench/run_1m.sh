#!/usr/bin/env bash
# Issue 17's proof: every target of the issue measured in one run at COUNT
# generated messages (default 1M), printed as one table with the target and
# met/missed beside each figure.  mailvault runs alone (notmuch and mu index
# ~200-300 msg/s here, an hour and more for 1M).  Figures print; a figure
# missing its target fails nothing.  The steps, and whose code runs them:
#   1. import of the generated Maildir (full indexing): msg/s, peak RSS, and the
#      curve of msg/s per 100k messages (per 10% of COUNT below 1M) from the
#      committed count in the import's own --debug batch lines (benchlib.py
#      batches): nothing reads the store beside the import
#   2. import of the SpamAssassin corpus (Maildir): msg/s, on disk / raw
#   3. on disk / raw of the big import: content, db, index
#   4. search-bench, warm: benchlib.py's query mix, date order and --sort relevance
#   5. RebuildStoreIndex, RecoverStore, TransferStores: bench/run_maint.sh on the
#      data directory of step 1 (handed over with its import marker, not imported again)
#   6. 32 concurrent whole-folder GetMessages: bench/run_api.sh with API_RUNS=inbox
# The table is benchlib.py table1m's; each script's own output is in OUT.
#
# usage: bench/run_1m.sh [COUNT]   (default 1000000; 20000 runs in a few minutes)
# Env: MAILVAULT_BIN        binary (default build-release/mailvault, built if missing)
#      MAILVAULT_BENCH_DIR  generated-corpus cache (default bench/out/corpora)
#      MAILVAULT_CORPUS     where ../shared/corpus/spamassassin keeps its corpus (as run_api.sh)
#      B1M_OUT              everything this run writes (default bench/out/1m-COUNT)
#      B1M_API_SECONDS      length of the wrk run (default 20)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
case ${1:-} in -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
[ $# -le 1 ] || { echo "run_1m.sh: usage: bench/run_1m.sh [COUNT]" >&2; exit 2; }
COUNT=${1:-1000000}
case $COUNT in ''|*[!0-9]*) echo "run_1m.sh: COUNT must be a message count, not '$COUNT'" >&2; exit 2 ;; esac
[ "$COUNT" -ge 1000 ] || { echo "run_1m.sh: COUNT must be at least 1000" >&2; exit 2; }

CACHE=${MAILVAULT_BENCH_DIR:-$REPO/bench/out/corpora}
OUT=${B1M_OUT:-$REPO/bench/out/1m-$COUNT}
API_SECONDS=${B1M_API_SECONDS:-20}
LIB=$HERE/benchlib.py
BUILD=1
LOG=$OUT
MAINT=$OUT/maint                 # run_maint.sh's MAINT_OUT
BASE=$MAINT/base                 # step 1's data directory, which run_maint.sh then reuses
SA_DATA=$OUT/sa-data

log() { printf '[1m %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'run_1m.sh: FAILED: %s\n' "$*" >&2; exit 1; }
# shellcheck source=bench/common.sh
. "$HERE/common.sh"

mkdir -p "$CACHE" "$OUT"
CACHE=$(cd "$CACHE" && pwd)
OUT=$(cd "$OUT" && pwd)
rm -rf "$OUT"/*.json "$OUT"/*.time "$OUT"/*.err "$OUT"/import.* "$OUT/notes.txt" "$SA_DATA"
note() { echo "$*" >>"$OUT/notes.txt"; }
load_now() { cut -d' ' -f1 /proc/loadavg; }
warm() { find "$@" -type f -print0 | xargs -0 -r cat >/dev/null; }

bench_need_gnu_time
bench_release_binary
bench_maildir_corpus "$COUNT"
CORPUS=$MAILDIR_CORPUS
SA=$(bench_spamassassin_root) || { SA=; log "SpamAssassin corpus unavailable (../shared/corpus/spamassassin): step 2 is n/a"; }

# import NAME SRC DATA_DIR: init DATA_DIR, warm SRC, import it timed (NAME.json, NAME.time, NAME.err)
# in the background, with --debug: NAME.samples gets the committed count from its batch lines;
# IMPORT_PID is the pipeline's, NAME.start the wall clock just before it began
import_start() {
	local name=$1 src=$2 data=$3
	rm -rf "$data"
	"$BIN" --data-dir "$data" init >"$OUT/$name.init" 2>&1 || die "init $data failed  [$OUT/$name.init]"
	warm "$src"
	log "$name: importing $src (load $(load_now))"
	date +%s.%N >"$OUT/$name.start"
	( /usr/bin/time -f '%M %e %U %S' -o "$OUT/$name.time" "$BIN" --debug --data-dir "$data" import "$src" \
		--archive bench --format maildir --json --quiet 2>&1 >"$OUT/$name.json" |
		python3 "$LIB" batches "$OUT/$name.samples" >"$OUT/$name.err" ) &
	IMPORT_PID=$!
}
import_wait() {  # import_wait NAME: its exit status must be 0 or 3 (some messages refused)
	local rc=0
	wait "$IMPORT_PID" || rc=$?
	[ $rc = 0 ] || [ $rc = 3 ] || die "$1 exited $rc  [$OUT/$1.err]"
}

# ---------------------------------------------------------------- 1 and 3: the generated corpus
LOAD0=$(load_now)
import_start import "$CORPUS/maildir" "$BASE"
import_wait import
"$BIN" --data-dir "$BASE" stats --json >"$OUT/stats.json"
read -r WALL RSS CPU < <(python3 -c 'import json,sys; t=json.load(sys.stdin); print(t["wall_s"], t["peak_rss_kb"], t["cpu_s"])' \
	< <(python3 "$LIB" timefile "$OUT/import.time"))
rm -f "$MAINT/base.imported"
mkdir -p "$MAINT"
bench_maint_mark "$MAINT/base.imported" "$COUNT" "$CORPUS" "$OUT/import.json" "$WALL" "$RSS" "$CPU" "$LOAD0" "$BIN"
note "Import of $CORPUS/maildir into $BASE (page cache warmed first), load average $LOAD0 before; the curve from its --debug batch lines."

# ---------------------------------------------------------------- 4: search
python3 "$LIB" querymix "$CORPUS/maildir" "$OUT/querymix" --seed 7 >/dev/null
log "search-bench: date order, --sort relevance, --archive bench (load $(load_now))"
"$BIN" --data-dir "$BASE" search-bench "$OUT/querymix.mailvault" --rounds 20 >"$OUT/search-date.json"
"$BIN" --data-dir "$BASE" search-bench "$OUT/querymix.mailvault" --rounds 20 --sort relevance \
	>"$OUT/search-relevance.json"
"$BIN" --data-dir "$BASE" search-bench "$OUT/querymix.mailvault" --rounds 20 --archive bench \
	>"$OUT/search-archive.json"

# ---------------------------------------------------------------- 2: SpamAssassin
if [ -n "$SA" ]; then
	import_start sa-import "$SA/maildir" "$SA_DATA"
	import_wait sa-import
	"$BIN" --data-dir "$SA_DATA" stats --json >"$OUT/sa-stats.json"
	rm -rf "$SA_DATA"
fi

# ---------------------------------------------------------------- 5: maintenance (run_maint.sh)
log "bench/run_maint.sh $COUNT on $BASE (output: $OUT/maint.out)"
if ! MAINT_OUT=$MAINT MAILVAULT_BIN=$BIN MAILVAULT_BENCH_DIR=$CACHE "$HERE/run_maint.sh" "$COUNT" \
	>"$OUT/maint.out" 2>"$OUT/maint.err"; then
	note "run_maint.sh failed: $(tail -n 1 "$OUT/maint.err")"
fi
grep -q 'reusing imported data directory' "$OUT/maint.err" ||
	note "run_maint.sh did not reuse $BASE (it imported again): see $OUT/maint.err"

# ---------------------------------------------------------------- 6: API (run_api.sh)
log "bench/run_api.sh $API_SECONDS, API_RUNS=inbox (output: $OUT/api.out)"
if ! API_RUNS=inbox API_OUT=$OUT/api MAILVAULT_BIN=$BIN MAILVAULT_BENCH_DIR=$CACHE \
	"$HERE/run_api.sh" "$API_SECONDS" >"$OUT/api.out" 2>"$OUT/api.err"; then
	note "run_api.sh failed or saw failed requests: $(tail -n 1 "$OUT/api.err")"
fi

note "Machine: $(nproc) cores, load average $(load_now) at the end; binary $BIN ($(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo '?')); everything in $OUT."
python3 "$LIB" table1m "$OUT" "$COUNT"
