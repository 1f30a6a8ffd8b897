#!/usr/bin/env bash
# PST import: mailvault's rate (messages/s) and peak RSS importing the Enron PST,
# beside readpst -e (Debian pst-utils) converting the same file to EML files in the
# same run.  Prints figures and the ratio; never fails because a figure misses the
# target (mailvault at least readpst's rate while compressing, encrypting and
# indexing).  See bench/README.md.
#
# usage: bench/run_pst.sh [--rounds N] [--out DIR] [--no-build] [--keep]
#   --rounds    timed rounds per tool (default 15); the median is reported
#   --out       results and logs (default bench/out/pst): results.json, work/
#   --no-build  do not build; use $MAILVAULT_BIN or build-release/mailvault as it is
#   --keep      keep the last round's data directory and readpst output in OUT/work
# Env: MAILVAULT_BIN (this binary, no build), MAILVAULT_CORPUS (corpus cache root,
#      default ~/.cache/mailvault-corpus; the PST goes to its outlook/ folder).
#
# Each round imports the PST into a FRESH data directory (init is not timed) and
# runs readpst into a FRESH empty directory; the two alternate which goes first.
# A fresh data directory per round is what defeats deduplication: importing the
# PST again into the same folder adds nothing, and into another archive or folder
# of the same store the contents are already stored (content-addressed), so a
# round would skip the compression and encryption it is meant to measure, and the
# index would grow from round to round.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
OUT=$REPO/bench/out/pst
ROUNDS=15
BUILD=1
KEEP=0
INVOCATION="bench/run_pst.sh $*"
while [ $# -gt 0 ]; do
	case $1 in
	--rounds) ROUNDS=$2; shift 2 ;;
	--rounds=*) ROUNDS=${1#*=}; shift ;;
	--out) OUT=$2; shift 2 ;;
	--out=*) OUT=${1#*=}; shift ;;
	--no-build) BUILD=0; shift ;;
	--keep) KEEP=1; shift ;;
	-h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "run_pst.sh: unknown argument: $1" >&2; exit 2 ;;
	esac
done
[ "$ROUNDS" -ge 1 ] 2>/dev/null || { echo "run_pst.sh: --rounds wants a number >= 1" >&2; exit 2; }

log() { printf '[pst %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "$*"; exit 1; }
LIB=$HERE/pst_bench.py

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$OUT/work
rm -rf "$WORK"
mkdir -p "$WORK/steps" "$WORK/logs"
LOG=$WORK/logs

# shellcheck source=bench/common.sh
. "$HERE/common.sh"

# ---------------------------------------------------------------- tools
command -v python3 >/dev/null || die "python3 is needed"
bench_need_gnu_time
READPST=$(command -v readpst || true)
[ -n "$READPST" ] || die "readpst is needed (Debian package pst-utils): tools/deps.sh bench"

# ---------------------------------------------------------------- mailvault binary
bench_release_binary
case $("$BIN" import --help 2>&1) in
*pst*) ;;
*) die "$BIN cannot import PST files (import --help names no pst format): use a newer build" ;;
esac

# ---------------------------------------------------------------- the PST (cached, checksum pinned)
CACHE=${MAILVAULT_CORPUS:-$HOME/.cache/mailvault-corpus}/outlook
PST=$(python3 "$LIB" fetch "$CACHE" 2>"$LOG/fetch.err" | tail -n 1) && [ -f "$PST" ] ||
	die "could not get enron.pst: $(tail -n 1 "$LOG/fetch.err")  [$LOG/fetch.err]"
PST_BYTES=$(stat -c %s "$PST")
log "PST: $PST ($PST_BYTES bytes)"

# ---------------------------------------------------------------- helpers
# timed STEP TOOL ROUND CMD...: runs CMD under GNU time -v; stdout -> LOG/STEP.out,
# stderr -> LOG/STEP.err; sets T_RC and T_LOAD (load average just before).
timed() {
	local step=$1; shift 3
	T_LOAD=$(cut -d' ' -f1 /proc/loadavg)
	T_RC=0
	# GNU time -v for peak RSS (as the other benches); around it a child subreaper
	# (pst_bench.py run) for wall time in ns and the CPU of every descendant, also
	# the ones that outlive their parent and that GNU time does not count.
	python3 "$LIB" run "$LOG/$step.tree" -- /usr/bin/time -v -o "$LOG/$step.time" "$@" \
		>"$LOG/$step.out" 2>"$LOG/$step.err" || T_RC=$?
}
warm() { cat "$PST" >/dev/null; }

# One small message for the floor: what one whole `mailvault import` process
# costs with (almost) nothing to import: start, store open, commit.
FLOOR_EML=$WORK/floor.eml
cat >"$FLOOR_EML" <<'EOF'
From: Floor <floor@example.org>
To: Bench <bench@example.org>
Subject: process floor
Date: Mon, 01 Jan 2001 00:00:00 +0000
Message-ID: <floor@example.org>

One short message.
EOF

mv_round() {  # ROUND
	local r=$1 D=$WORK/data step="mailvault-$1"
	rm -rf "$D"
	"$BIN" --data-dir "$D" init >"$LOG/init-$r.log" 2>&1 || die "mailvault init failed  [$LOG/init-$r.log]"
	warm
	timed "$step" mailvault "$r" "$BIN" --data-dir "$D" import "$PST" --archive bench --json --quiet
	cp "$LOG/$step.out" "$LOG/$step.json"
	[ "$T_RC" = 0 ] || [ "$T_RC" = 3 ] || log "round $r: mailvault import exited $T_RC  [$LOG/$step.err]"
	[ -n "${PST_ITEMS:-}" ] || PST_ITEMS=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["imported"])' "$LOG/$step.json" 2>/dev/null)
	python3 "$LIB" round "$WORK/steps/$step.json" tool=mailvault "round=$r" "rc=$T_RC" \
		"loadavg_before=$T_LOAD" "time_file=$LOG/$step.time" "tree_file=$LOG/$step.tree" "import_json=$LOG/$step.json" ||
		die "round $r: no figures  [$LOG/$step.time]"
	if [ "$r" = "$ROUNDS" ]; then  # what the last round left: disk use, and one search to show it is indexed
		"$BIN" --data-dir "$D" stats --json >"$LOG/stats.json" 2>"$LOG/stats.err" || true
		MV_DISK=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["total"]["disk_bytes"])' \
			"$LOG/stats.json" 2>/dev/null || echo null)
		local hits
		hits=$("$BIN" --data-dir "$D" search pipeline --limit 0 --json 2>"$LOG/search.err" |
			python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' 2>/dev/null || echo '?')
		SEARCH_CHECK="mailvault search pipeline (a word of the Enron mails) finds $hits messages in the last round's archive"
		[ "$KEEP" = 1 ] || rm -rf "$D"
	else
		rm -rf "$D"
	fi
}

rp_round() {  # ROUND
	local r=$1 O=$WORK/readpst step="readpst-$1" n
	rm -rf "$O"
	mkdir -p "$O"
	warm
	timed "$step" readpst "$r" "$READPST" -e -q -o "$O" "$PST"
	[ "$T_RC" = 0 ] || log "round $r: readpst exited $T_RC  [$LOG/$step.err]"
	n=$(find "$O" -type f -name '*.eml' | wc -l)
	python3 "$LIB" round "$WORK/steps/$step.json" tool=readpst "round=$r" "rc=$T_RC" \
		"loadavg_before=$T_LOAD" "time_file=$LOG/$step.time" "tree_file=$LOG/$step.tree" "messages=$n" ||
		die "round $r: no figures  [$LOG/$step.time]"
	# readpst's EML files of the first round that wrote them all are kept for the
	# emldir reference (the same messages imported without the PST reader).
	if [ ! -d "$WORK/readpst-eml" ] && [ "$n" -ge "${PST_ITEMS:-0}" ]; then cp -a "$O" "$WORK/readpst-eml"; fi
	if [ "$r" = "$ROUNDS" ]; then
		RP_BYTES=$(du -sb "$O" | cut -f1)
		[ "$KEEP" = 1 ] || rm -rf "$O" "$WORK/readpst-eml"
	else
		rm -rf "$O"
	fi
}

eml_round() {  # ROUND: mailvault importing readpst's EML files of the same PST
	local r=$1 D=$WORK/data-eml step="emldir-$1" src=$WORK/readpst-eml
	[ -d "$src" ] || return 0
	rm -rf "$D"
	"$BIN" --data-dir "$D" init >"$LOG/init-eml-$r.log" 2>&1 || die "mailvault init failed  [$LOG/init-eml-$r.log]"
	find "$src" -type f -print0 | xargs -0 -r cat >/dev/null
	timed "$step" mailvault-emldir "$r" "$BIN" --data-dir "$D" import "$src" --archive bench --format emldir --json --quiet
	cp "$LOG/$step.out" "$LOG/$step.json"
	python3 "$LIB" round "$WORK/steps/$step.json" tool=mailvault-emldir "round=$r" "rc=$T_RC" \
		"loadavg_before=$T_LOAD" "time_file=$LOG/$step.time" "tree_file=$LOG/$step.tree" "import_json=$LOG/$step.json" ||
		die "emldir round $r: no figures"
	rm -rf "$D"
}

floor_round() {  # ROUND
	local r=$1 D=$WORK/data-floor step="floor-$1"
	rm -rf "$D"
	"$BIN" --data-dir "$D" init >"$LOG/init-floor-$r.log" 2>&1 || die "mailvault init failed  [$LOG/init-floor-$r.log]"
	timed "$step" mailvault-floor "$r" "$BIN" --data-dir "$D" import "$FLOOR_EML" --archive bench --json --quiet
	cp "$LOG/$step.out" "$LOG/$step.json"
	python3 "$LIB" round "$WORK/steps/$step.json" tool=mailvault-floor "round=$r" "rc=$T_RC" \
		"loadavg_before=$T_LOAD" "time_file=$LOG/$step.time" "tree_file=$LOG/$step.tree" "import_json=$LOG/$step.json" "messages=1" ||
		die "floor round $r: no figures"
	rm -rf "$D"
}

# ---------------------------------------------------------------- rounds
MV_DISK=null; RP_BYTES=null; SEARCH_CHECK=; PST_ITEMS=
log "binary $BIN; $ROUNDS rounds of: mailvault import (fresh data dir), readpst -e (fresh dir), mailvault import of readpst's EML files, floor"
log "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for ((r = 1; r <= ROUNDS; r++)); do
	if ((r % 2)); then mv_round "$r"; rp_round "$r"; else rp_round "$r"; mv_round "$r"; fi
	eml_round "$r"
	floor_round "$r"
	log "round $r/$ROUNDS: mailvault $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("wall_s"))' "$WORK/steps/mailvault-$r.json") s, readpst $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("wall_s"))' "$WORK/steps/readpst-$r.json") s"
done

python3 - "$WORK/run.json" "$PST" "$PST_BYTES" "$ROUNDS" "$BIN" "$READPST" "$MV_DISK" "$RP_BYTES" \
	"$SEARCH_CHECK" "$INVOCATION" "$(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo '?')" \
	"$("$READPST" -V 2>&1 | head -n 1)" <<'EOF'
import json, sys
(out, pst, pst_bytes, rounds, binp, readpst, disk, rpb, check, inv, head, rpv) = sys.argv[1:]
json.dump({"pst": pst, "pst_bytes": int(pst_bytes), "rounds": int(rounds), "mailvault_bin": binp,
           "readpst": readpst, "readpst_version": rpv, "mv_disk_bytes": json.loads(disk),
           "readpst_bytes": json.loads(rpb), "search_check": check, "invocation": inv,
           "head": head}, open(out, "w"), indent=1)
EOF
python3 "$LIB" report "$WORK" || die "the report failed"
echo
echo "binary: $BIN (built $(date -r "$BIN" '+%Y-%m-%d %H:%M'), HEAD $(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo '?') at run time); $("$READPST" -V 2>&1 | head -n 1)"
echo "command: ${MAILVAULT_BIN:+MAILVAULT_BIN=$MAILVAULT_BIN }$INVOCATION"
echo "logs: $LOG"
