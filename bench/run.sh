#!/usr/bin/env bash
# mailvault benchmarks: ingest rate, bytes on disk and search latency, each next to a
# peer (notmuch, mu) run on the same machine in the same run.  Prints figures and
# ratios; never fails because a figure misses a target.  See bench/README.md.
#
# usage: bench/run.sh [--sizes spamassassin,100000[,1000000]] [--out DIR]
#                     [--rounds N] [--nm-rounds N] [--seed S] [--keep] [--no-peers]
#                     [--no-build] [--step-timeout SECS]
#   --sizes      corpora to run, in order: "spamassassin" (the real SpamAssassin corpus,
#                materialised by ../shared/corpus/spamassassin) and/or message counts of
#                generated corpora (bench/gen_corpus.py).  Default spamassassin,100000.
#   --out        where results go (default bench/out): results.json, work/ (logs and raw
#                JSON of this run); generated corpora are cached in $MAILVAULT_BENCH_DIR
#                or OUT/corpora and reused across runs.
#   --rounds     rounds per query for `mailvault search-bench` (default 20)
#   --nm-rounds  rounds per query for the notmuch search timings (default 10)
#   --keep       keep the data directories / peer databases of this run under OUT/work
#   --step-timeout  seconds after which one timed step is killed (default 7200; exit 124)
#   --no-peers   skip notmuch and mu
#   --no-build   do not build; use $MAILVAULT_BIN or build-release/mailvault as it is
# Env: MAILVAULT_BIN (use this binary, no build), MAILVAULT_BENCH_DIR (corpus cache).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
SIZES=spamassassin,100000
OUT=$REPO/bench/out
ROUNDS=20
NM_ROUNDS=10
SEED=42
KEEP=0
STEP_TIMEOUT=7200
PEERS=1
BUILD=1

while [ $# -gt 0 ]; do
	case $1 in
	--sizes) SIZES=$2; shift 2 ;;
	--sizes=*) SIZES=${1#*=}; shift ;;
	--out) OUT=$2; shift 2 ;;
	--out=*) OUT=${1#*=}; shift ;;
	--rounds) ROUNDS=$2; shift 2 ;;
	--nm-rounds) NM_ROUNDS=$2; shift 2 ;;
	--seed) SEED=$2; shift 2 ;;
	--keep) KEEP=1; shift ;;
	--step-timeout) STEP_TIMEOUT=$2; shift 2 ;;
	--no-peers) PEERS=0; shift ;;
	--no-build) BUILD=0; shift ;;
	-h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "run.sh: unknown argument: $1" >&2; exit 2 ;;
	esac
done

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
CACHE=${MAILVAULT_BENCH_DIR:-$OUT/corpora}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
WORK=$OUT/work
LIB=$HERE/benchlib.py
rm -rf "$WORK"
mkdir -p "$WORK"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "$*"; exit 1; }
LOG=$WORK
# shellcheck source=bench/common.sh
. "$HERE/common.sh"

# ---------------------------------------------------------------- tools
TIME=/usr/bin/time
if [ ! -x "$TIME" ]; then
	log "installing GNU time (Debian package 'time') for peak RSS"
	if command -v apt-get >/dev/null; then
		apt-get install -y -qq time >/dev/null 2>&1 ||
			{ apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq time >/dev/null 2>&1; }
	fi
	[ -x "$TIME" ] || { log "no /usr/bin/time: peak RSS will be n/a"; TIME=; }
fi
HAVE_NOTMUCH=0; HAVE_MU=0
if [ "$PEERS" = 1 ]; then
	command -v notmuch >/dev/null && HAVE_NOTMUCH=1 || log "notmuch not installed (apt-get install notmuch): skipped"
	command -v mu >/dev/null && HAVE_MU=1 || log "mu not installed (apt-get install maildir-utils): skipped"
fi

# ---------------------------------------------------------------- mailvault binary
BIN=${MAILVAULT_BIN:-}
if [ -z "$BIN" ]; then
	BIN=$REPO/build-release/mailvault
	if [ "$BUILD" = 1 ]; then
		log "building release binary in build-release/"
		(
			cd "$REPO" &&
			{ [ -d build-release ] || meson setup build-release --buildtype=release >"$WORK/build.log" 2>&1; } &&
			ninja -C build-release >>"$WORK/build.log" 2>&1
		) || log "release build failed (see $WORK/build.log)"
	fi
fi
HAVE_MV=1
if [ ! -x "$BIN" ]; then
	log "no mailvault binary at $BIN: mailvault figures will be n/a, peers still run"
	HAVE_MV=0
fi

# ---------------------------------------------------------------- helpers
# timed NAME CMD...: runs CMD (stdout/stderr as redirected by the caller), writing
# NAME.time.json (peak RSS KB, wall s) and NAME.rc.json into $CW.
timed() {
	local name=$1; shift
	local rc=0 load0
	load0=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo null)
	local to=()
	[ "$STEP_TIMEOUT" -gt 0 ] 2>/dev/null && to=(timeout --kill-after=10 "$STEP_TIMEOUT")
	if [ -n "$TIME" ]; then
		"$TIME" -f '%M %e' -o "$CW/$name.time" "${to[@]}" "$@" || rc=$?
	else
		local t0 t1
		t0=$(date +%s.%N)
		"${to[@]}" "$@" || rc=$?
		t1=$(date +%s.%N)
		echo "- $(echo "$t1 - $t0" | bc -l 2>/dev/null || python3 -c "print($t1-$t0)")" >"$CW/$name.time"
	fi
	[ $rc = 124 ] && log "$name: killed after ${STEP_TIMEOUT}s (--step-timeout)"
	echo "{\"rc\": $rc, \"loadavg_before\": $load0}" >"$CW/$name.rc.json"
	python3 "$LIB" timefile "$CW/$name.time" >"$CW/$name.time.json"
	return $rc
}

# warm PATH...: read the files once so every tool starts with the same (warm) page cache.
warm() {
	local p
	for p in "$@"; do
		if [ -f "$p" ]; then cat "$p" >/dev/null
		else find "$p" -type f -print0 | xargs -0 -r cat >/dev/null; fi
	done
}

ORDER=()

run_corpus() {  # NAME EML_DIR MAILDIR MBOX
	local name=$1 eml=$2 md=$3 mbox=$4
	CW=$WORK/$name
	mkdir -p "$CW"
	ORDER+=("$name")
	local n raw
	n=$( (find "$md/cur" "$md/new" -type f 2>/dev/null) | wc -l)
	raw=$(python3 "$LIB" rawbytes "$md/cur" "$md/new" | python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes"])')
	printf '{"messages": %s, "raw_bytes": %s, "eml": "%s", "maildir": "%s", "mbox": "%s", "mbox_bytes": %s}\n' \
		"$n" "$raw" "$eml" "$md" "$mbox" "$(stat -c %s "$mbox" 2>/dev/null || echo null)" >"$CW/corpus.json"
	log "corpus $name: $n messages, $raw bytes"

	local had_nm=0
	[ -e "$md/.notmuch" ] && had_nm=1

	# --- mailvault imports, each into a fresh data directory
	if [ "$HAVE_MV" = 1 ]; then
		local fmt src f D
		for fmt in emldir maildir mbox; do
			case $fmt in
			emldir) src=$eml; f=emldir ;;
			maildir) src=$md; f=maildir ;;
			mbox) src=$mbox; f=mboxrd ;;
			esac
			[ -e "$src" ] || { log "$name: no $fmt source, skipped"; continue; }
			D=$CW/data-$fmt
			rm -rf "$D"
			if ! "$BIN" --data-dir "$D" init >"$CW/mv-init-$fmt.log" 2>&1; then
				log "$name: mailvault init failed (see $CW/mv-init-$fmt.log)"
				continue
			fi
			warm "$src"
			log "$name: mailvault import ($fmt)"
			timed "mv-import-$fmt" "$BIN" --data-dir "$D" import "$src" --archive bench \
				--format "$f" --json --quiet >"$CW/mv-import-$fmt.json" 2>"$CW/mv-import-$fmt.err"
			local rc=$?
			[ $rc = 0 ] || [ $rc = 3 ] || log "$name: import $fmt exited $rc (see $CW/mv-import-$fmt.err)"
			"$BIN" --data-dir "$D" stats --json >"$CW/mv-stats-$fmt.json" 2>>"$CW/mv-import-$fmt.err" ||
				log "$name: stats failed after $fmt import"
			python3 "$LIB" rawbytes "$D" >"$CW/mv-du-$fmt.json"
			if [ "$fmt" != maildir ] && [ "$KEEP" = 0 ]; then rm -rf "$D"; fi
		done
	fi

	# --- query mix (words that exist in this corpus)
	python3 "$LIB" querymix "$md" "$CW/querymix" --seed 7 >"$CW/querymix.txt"

	if [ "$HAVE_MV" = 1 ] && [ -d "$CW/data-maildir" ]; then
		log "$name: mailvault search-bench ($ROUNDS rounds)"
		timed mv-search "$BIN" --data-dir "$CW/data-maildir" search-bench "$CW/querymix.mailvault" \
			--rounds "$ROUNDS" >"$CW/mv-search.json" 2>"$CW/mv-search.err" ||
			log "$name: search-bench failed (see $CW/mv-search.err)"
		timed mv-search-archive "$BIN" --data-dir "$CW/data-maildir" search-bench \
			"$CW/querymix.mailvault" --rounds "$ROUNDS" --archive bench \
			>"$CW/mv-search-archive.json" 2>"$CW/mv-search-archive.err" ||
			log "$name: search-bench --archive failed (see $CW/mv-search-archive.err)"
		[ "$KEEP" = 1 ] || rm -rf "$CW/data-maildir"
	fi

	# --- notmuch new on the same Maildir (database kept outside it via mail_root)
	if [ "$HAVE_NOTMUCH" = 1 ]; then
		local NM=$CW/notmuch
		rm -rf "$NM"
		mkdir -p "$NM/db"
		cat >"$NM/config" <<-EOF
		[database]
		path=$NM/db
		mail_root=$md
		[user]
		name=Bench
		primary_email=bench@example.org
		[new]
		tags=unread;inbox;
		EOF
		warm "$md"
		log "$name: notmuch new"
		timed notmuch-index env NOTMUCH_CONFIG="$NM/config" notmuch new --quiet >"$CW/notmuch-index.log" 2>&1 ||
			log "$name: notmuch new failed (see $CW/notmuch-index.log)"
		python3 "$LIB" rawbytes "$NM/db" >"$CW/notmuch-db.json"
		log "$name: notmuch search timings ($NM_ROUNDS rounds)"
		python3 "$LIB" notmuch-search "$NM/config" "$CW/querymix.json" "$CW/notmuch-search.json" \
			--rounds "$NM_ROUNDS" || log "$name: notmuch search timing failed"
		[ "$KEEP" = 1 ] || rm -rf "$NM"
		# notmuch must not have written into the corpus; if an old one did, clean up.
		[ "$had_nm" = 1 ] || rm -rf "$md/.notmuch"
	fi

	# --- mu index on the same Maildir
	if [ "$HAVE_MU" = 1 ]; then
		local MU=$CW/mu
		rm -rf "$MU"
		mu init --muhome="$MU" --maildir="$md" >"$CW/mu-init.log" 2>&1 ||
			log "$name: mu init failed (see $CW/mu-init.log)"
		warm "$md"
		log "$name: mu index"
		timed mu-index mu index --muhome="$MU" --quiet >"$CW/mu-index.log" 2>&1 ||
			log "$name: mu index failed (see $CW/mu-index.log)"
		python3 "$LIB" rawbytes "$MU" >"$CW/mu-db.json"
		[ "$KEEP" = 1 ] || rm -rf "$MU"
	fi
}

# ---------------------------------------------------------------- corpora
IFS=, read -r -a SIZE_LIST <<<"$SIZES"
for s in "${SIZE_LIST[@]}"; do
	case $s in
	spamassassin|sa)
		root=$(python3 "$REPO/../shared/corpus/spamassassin" | tail -n 1) || root=
		if [ -z "$root" ] || [ ! -d "$root/maildir" ]; then
			log "SpamAssassin corpus unavailable (../shared/corpus/spamassassin): skipped"
			continue
		fi
		run_corpus spamassassin "$root/eml" "$root/maildir" "$root/mbox"
		;;
	*[!0-9]*|'')
		log "unknown size '$s' (want spamassassin or a message count): skipped"
		;;
	*)
		bench_gen_corpus "$s" || continue
		d=$GEN_DIR
		run_corpus "gen-$s" "$d/eml" "$d/maildir" "$d/mbox"
		;;
	esac
done

python3 - "$WORK" "$SIZES" "$BIN" "$HAVE_MV" "$ROUNDS" "$NM_ROUNDS" "${ORDER[@]}" <<'EOF'
import json, os, sys
work, sizes, binp, have, rounds, nmr, *order = sys.argv[1:]
json.dump(order, open(os.path.join(work, "order.json"), "w"))
json.dump({"sizes": sizes, "mailvault_bin": binp if have == "1" else None,
           "search_bench_rounds": int(rounds), "notmuch_rounds": int(nmr)},
          open(os.path.join(work, "run.json"), "w"))
EOF
python3 "$LIB" report "$OUT"
