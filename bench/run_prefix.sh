#!/usr/bin/env bash
# bench/run_prefix.sh: two builds' indexes against each other (e.g. one with
# an FTS5 prefix index, branch ix-prefix), same corpus, same run: bytes on
# disk (index file, whole store) and prefix-query latency (`mailvault search-bench`, in one process,
# warm, newest 50) for query prefixes of 1 to 6 characters of one word.
#
# usage: bench/run_prefix.sh --before BIN --after BIN [--sizes spamassassin,100000]
#                            [--rounds N] [--out DIR] [--seed S]
#   --before, --after  the two mailvault binaries (e.g. a release build of the
#                      commit before the change, and build-release/mailvault)
#   --sizes   "spamassassin" and/or message counts of generated corpora (default both)
#   --rounds  rounds per query (default 30; prefixes of one character get 3)
# Env: MAILVAULT_BENCH_DIR (corpus cache, as run.sh).  Runs niced.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
SIZES=spamassassin,100000
OUT=$REPO/bench/out/prefix
ROUNDS=30
SEED=42
BEFORE= AFTER=
while [ $# -gt 0 ]; do
	case $1 in
	--before) BEFORE=$2; shift 2 ;;
	--after) AFTER=$2; shift 2 ;;
	--sizes) SIZES=$2; shift 2 ;;
	--rounds) ROUNDS=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	--seed) SEED=$2; shift 2 ;;
	-h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "run_prefix.sh: unknown argument: $1" >&2; exit 2 ;;
	esac
done
log() { printf '[prefix %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "$*"; exit 1; }
[ -x "$BEFORE" ] && [ -x "$AFTER" ] || die "--before and --after must name mailvault binaries"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
CACHE=${MAILVAULT_BENCH_DIR:-$REPO/bench/out/corpora}
mkdir -p "$CACHE"
LOG=$OUT
BUILD=0
# shellcheck source=bench/common.sh
. "$HERE/common.sh"

# queries NAME WORD SENDER_WORD: prefixes of WORD, 1..6 characters, bare and scoped.
queries() {
	local w=$2 s=$3 n
	echo "${w:0:1}*" >"$OUT/$1.q1"
	: >"$OUT/$1.q"
	for n in 2 3 4 5 6; do echo "${w:0:$n}*" >>"$OUT/$1.q"; done
	printf '%s\n' "archive:bench ${w:0:4}*" "subject:${w:0:3}*" "from:${s:0:4}*" "$w" >>"$OUT/$1.q"
}

# one NAME VARIANT BIN SRC FORMAT
one() {
	local name=$1 v=$2 bin=$3 src=$4 fmt=$5 D t0 t1 ix
	D=$OUT/data-$name-$v
	rm -rf "$D"
	"$bin" --data-dir "$D" init >/dev/null 2>&1 || die "$name/$v: init failed"
	log "$name: import ($v)"
	t0=$(date +%s.%N)
	nice "$bin" --data-dir "$D" import "$src" --archive bench --format "$fmt" --quiet --json \
		>"$OUT/$name-$v.import.json" 2>"$OUT/$name-$v.import.err" || [ $? = 3 ] || die "$name/$v: import failed"
	t1=$(date +%s.%N)
	ix=$(echo "$D"/stores/*/index/index.sqlite)
	printf '{"import_s": %s, "index_bytes": %s, "store_bytes": %s}\n' "$(echo "$t1 - $t0" | bc)" \
		"$(du -sb "$(dirname "$ix")" | cut -f1)" "$(du -sb "$D/stores" | cut -f1)" >"$OUT/$name-$v.size.json"
	log "$name: search-bench ($v)"
	nice "$bin" --data-dir "$D" search-bench "$OUT/$name.q" --rounds "$ROUNDS" >"$OUT/$name-$v.search.json" ||
		die "$name/$v: search-bench failed"
	nice "$bin" --data-dir "$D" search-bench "$OUT/$name.q1" --rounds 3 >"$OUT/$name-$v.search1.json" ||
		die "$name/$v: search-bench failed"
	rm -rf "$D"
}

NAMES=()
IFS=, read -r -a SIZE_LIST <<<"$SIZES"
for s in "${SIZE_LIST[@]}"; do
	case $s in
	spamassassin|sa)
		root=$(python3 "$REPO/../shared/corpus/spamassassin" | tail -n 1) || die "no SpamAssassin corpus"
		name=spamassassin src=$root/maildir fmt=maildir
		queries $name contact jm ;;
	*)
		bench_gen_corpus "$s" || die "corpus of $s messages failed"
		name=gen-$s src=$GEN_DIR/mbox fmt=mboxrd
		queries $name "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["words_by_rank"]["1000"])' \
			"$GEN_DIR/manifest.json")" douglas ;;
	esac
	NAMES+=("$name")
	one "$name" before "$BEFORE" "$src" "$fmt"
	one "$name" after "$AFTER" "$src" "$fmt"
done

python3 - "$OUT" "${NAMES[@]}" <<'EOF'
import json, sys
out, names = sys.argv[1], sys.argv[2:]
def load(n, v, k):
    return json.load(open(f"{out}/{n}-{v}.{k}.json"))
for n in names:
    b, a = load(n, "before", "size"), load(n, "after", "size")
    print(f"== {n}")
    print(f"  index  {b['index_bytes']/1e6:9.1f} MB -> {a['index_bytes']/1e6:9.1f} MB  ({a['index_bytes']/b['index_bytes']-1:+.0%})")
    print(f"  store  {b['store_bytes']/1e6:9.1f} MB -> {a['store_bytes']/1e6:9.1f} MB  ({a['store_bytes']/b['store_bytes']-1:+.0%})")
    print(f"  import {b['import_s']:9.1f} s  -> {a['import_s']:9.1f} s")
    print(f"  {'query':28} {'before p50/p95 ms':>20} {'after p50/p95 ms':>20}")
    for k in ("search1", "search"):
        for x, y in zip(load(n, "before", k)["queries"], load(n, "after", k)["queries"]):
            print(f"  {x['query']:28} {x['p50_ms']:9.2f} {x['p95_ms']:9.2f}  {y['p50_ms']:9.2f} {y['p95_ms']:9.2f}")
EOF
