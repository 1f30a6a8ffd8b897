#!/bin/sh
# bench/run_dictionary.sh: what the store's zstd dictionary (issue 17, store
# format 4) does to disk use and import speed on the SpamAssassin corpus.
#
# usage: bench/run_dictionary.sh [--rounds 3] [--before BIN] [--out DIR]
#   Imports the corpus's EML tree into a fresh data directory per run, with
#   the dictionary (the default) and without (MAILVAULT_DICT_TRAIN_AFTER=0),
#   rounds times each, interleaved; with --before BIN also with that binary
#   (a build from before the dictionary).  Prints per run: content/, db/,
#   index/ bytes, their total over the raw bytes, and msg/s of the import.
#   MAILVAULT_BIN: the binary under test (default build-release/mailvault).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
BUILD=${BUILD:-0}
log() { echo "run_dictionary: $*" >&2; }
die() { log "$*"; exit 1; }
. "$HERE/common.sh"

ROUNDS=3
BEFORE=
OUT=$(mktemp -d "${TMPDIR:-/tmp}/mv-dict-bench-XXXXXX")
while [ $# -gt 0 ]; do
	case $1 in
	--rounds) ROUNDS=$2; shift 2 ;;
	--before) BEFORE=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	*) die "unknown option $1" ;;
	esac
done
LOG=$OUT
bench_release_binary
CORPUS=${MAILVAULT_CORPUS:-$HOME/.cache/mailvault-corpus}
[ -f "$CORPUS/spamassassin/SHA256SUMS" ] || python3 "$REPO/../shared/corpus/spamassassin" "$CORPUS" >&2
EML=$CORPUS/spamassassin/eml
RAW=$(find "$EML" -type f -printf '%s\n' | awk '{s += $1} END {print s}')

bytes() { du -sb "$1" | cut -f1; }

one() {   # label binary train_after
	d=$OUT/$1-$round
	rm -rf "$d"
	"$2" --data-dir "$d" init >/dev/null
	t0=$(date +%s.%N)
	MAILVAULT_DICT_TRAIN_AFTER=$3 "$2" --data-dir "$d" import "$EML" --archive corpus --json >"$d.json" 2>"$d.err"
	t1=$(date +%s.%N)
	s=$d/stores/store1
	c=$(bytes "$s/content"); b=$(bytes "$s/db"); i=$(bytes "$s/index")
	n=$(python3 -c "import json; print(json.load(open('$d.json'))['imported'])")
	echo "$1 $round $c $b $i $(( c + b + i )) $RAW $n $t0 $t1" | awk '{printf "%-8s round %s: content %d, db %d, index %d, total %d = %.1f%% of raw %d; %d messages in %.2f s = %.0f msg/s\n", $1, $2, $3, $4, $5, $6, 100 * $6 / $7, $7, $8, $10 - $9, $8 / ($10 - $9)}'
	rm -rf "$d"
}

round=1
while [ "$round" -le "$ROUNDS" ]; do
	one dict "$BIN" 500
	one nodict "$BIN" 0
	[ -n "$BEFORE" ] && one before "$BEFORE" 500
	round=$((round + 1))
done
