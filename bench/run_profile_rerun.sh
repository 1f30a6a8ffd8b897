#!/usr/bin/env bash
# Re-running a file-import archiving profile over an already archived corpus
# (issue 11): `mailvault serve` on a fresh data directory, one FileSystem
# profile over the SpamAssassin corpus's EML directory (6,046 messages, as
# ../shared/corpus/spamassassin materialises it), RunProfile once (everything
# new), then RunProfile again N times (everything already archived).  Prints
# msg/s of the first run and of each re-run, the ratio of the median re-run
# to the first run (and the server's CPU seconds for each, steadier than wall
# time on a busy machine), and the target line: a re-run at least 10× faster than
# the first run (what the duplicate pre-check of src/ingest/ingest.c is for:
# a hash and a lookup per message instead of a parse).  Exits 1 when the
# target is missed or a step failed, after printing every figure.
#
# usage: bench/run_profile_rerun.sh [--rounds R] [--reruns N] [--out DIR] [--no-build] [--keep]
#   --rounds    rounds, each on a fresh data directory and server (default 3)
#   --reruns    re-runs after each round's first run (default 3)
#               compared: the median first run against the median re-run of all rounds
#   --out       logs and raw JSON (default bench/out/profile-rerun)
#   --no-build  do not build; use $MAILVAULT_BIN or build-release/mailvault as it is
#   --keep      keep the data directories under OUT
# Env: MAILVAULT_BIN     binary (default build-release/mailvault, built here unless --no-build)
#      MAILVAULT_CORPUS  where the corpus is materialised (default ~/.cache/mailvault-corpus)
#      RERUN_PERF=1      also `perf record -g` the server during round 1's re-runs (OUT/perf-rerun.txt);
#                        perf slows the server, so the re-run figures are lower
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
RERUNS=3
ROUNDS=3
OUT=$REPO/bench/out/profile-rerun
BUILD=1
KEEP=0
TARGET=10
INVOCATION="bench/run_profile_rerun.sh $*"
for v in RERUN_PERF MAILVAULT_CORPUS MAILVAULT_BIN; do
	[ -n "${!v:-}" ] && INVOCATION="$v=${!v} $INVOCATION"
done

while [ $# -gt 0 ]; do
	case $1 in
	--reruns) RERUNS=$2; shift 2 ;;
	--reruns=*) RERUNS=${1#*=}; shift ;;
	--rounds) ROUNDS=$2; shift 2 ;;
	--rounds=*) ROUNDS=${1#*=}; shift ;;
	--out) OUT=$2; shift 2 ;;
	--out=*) OUT=${1#*=}; shift ;;
	--no-build) BUILD=0; shift ;;
	--keep) KEEP=1; shift ;;
	-h|--help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "run_profile_rerun.sh: unknown argument: $1" >&2; exit 2 ;;
	esac
done
for n in "$RERUNS" "$ROUNDS"; do
	case $n in ''|*[!0-9]*|0) echo "run_profile_rerun.sh: --reruns and --rounds take a positive number, not '$n'" >&2; exit 2 ;; esac
done

log() { printf '[rerun %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
LOG=$OUT
# shellcheck source=bench/common.sh
. "$HERE/common.sh"
PY=(python3 "$HERE/profile_rerun.py")

bench_release_binary
"$BIN" serve --help >/dev/null 2>&1 || die "$BIN has no 'serve' command; use a newer build"

# ---------------------------------------------------------------- corpus
script=$(dirname "$REPO")/shared/corpus/spamassassin
[ -f "$script" ] || die "the corpus script $script is missing"
cmd=("$script"); [ -x "$script" ] || cmd=(python3 "$script")
root=$(timeout 1800 "${cmd[@]}" "${MAILVAULT_CORPUS:-$HOME/.cache/mailvault-corpus}" 2>"$LOG/corpus.err" | tail -n 1)
EML=$root/eml
[ -d "$EML" ] || die "cannot materialise the SpamAssassin corpus  [$LOG/corpus.err]"
EML=$(cd "$EML" && pwd)
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- rounds
# A round: a fresh data directory and server, the first run, the re-runs.
SERVER_PID=""
PERF_PID=""
D=""
stop_server() {
	if [ -n "$SERVER_PID" ]; then
		kill -TERM "$SERVER_PID" 2>/dev/null
		wait "$SERVER_PID" 2>/dev/null
		SERVER_PID=""
	fi
}
cleanup() {
	[ -n "$PERF_PID" ] && kill -INT "$PERF_PID" 2>/dev/null && wait "$PERF_PID" 2>/dev/null
	stop_server
	if [ -n "$D" ]; then
		[ "$KEEP" = 1 ] && log "kept $D" || rm -rf "$D"
	fi
}
trap cleanup EXIT

start_server() {  # start_server DIR: init, serve on free ports; sets PW, URL, CERT, SERVER_PID
	local d=$1 i port
	"$BIN" --data-dir "$d" init >"$LOG/init.out" 2>"$LOG/init.err" || die "init failed  [$LOG/init.err]"
	PW=$(sed -n 's/.*first administrator: admin, password: \([^ ]*\).*/\1/p' "$LOG/init.out")
	[ -n "$PW" ] || die "init printed no administrator password  [$LOG/init.out]"
	sed -i 's/\(password: \)[^ ]*/\1(hidden)/; s/\(Recovery key: \).*/\1(hidden)/' "$LOG/init.out"
	# Every listener on a port of its own: the defaults may be taken by another server.
	port=$("${PY[@]}" port)
	rm -f "$LOG/serve.out" "$LOG/serve.err"   # the wait below must not see the last round's
	"$BIN" --data-dir "$d" serve --listen "127.0.0.1:$port" --web-listen "127.0.0.1:$("${PY[@]}" port)" \
		--imap-listen "127.0.0.1:$("${PY[@]}" port)" --imap-listen-tls "127.0.0.1:$("${PY[@]}" port)" \
		>"$LOG/serve.out" 2>"$LOG/serve.err" &
	SERVER_PID=$!
	for ((i = 0; i < 600; i++)); do
		grep -q 'serving (pid' "$LOG/serve.out" 2>/dev/null && break
		kill -0 "$SERVER_PID" 2>/dev/null || die "mailvault serve exited  [$LOG/serve.err]"
		sleep 0.1
	done
	grep -q 'serving (pid' "$LOG/serve.out" || die "mailvault serve did not come up in 60 s  [$LOG/serve.out]"
	URL=https://127.0.0.1:$port
	CERT=$d/certs/server.crt
}

rm -rf "$OUT"/run-*.json "$OUT"/perf-rerun.* "$OUT/one"
for ((r = 1; r <= ROUNDS; r++)); do
	D=$OUT/data-$r
	rm -rf "$D"
	start_server "$D"
	ID=$("${PY[@]}" create "$URL" "$CERT" "$PW" "$EML" bench) || die "CreateProfile failed"
	log "round $r of $ROUNDS: profile $ID over $EML; first run"
	"${PY[@]}" run "$URL" "$CERT" "$PW" "$ID" "$SERVER_PID" >"$OUT/run-$r-first.json" || die "the first RunProfile failed"
	if [ "${RERUN_PERF:-0}" = 1 ] && [ "$r" = 1 ]; then
		command -v perf >/dev/null || die "RERUN_PERF=1 needs perf"
		perf record -g -o "$OUT/perf-rerun.data" -p "$SERVER_PID" >"$LOG/perf.err" 2>&1 &
		PERF_PID=$!
		sleep 1
	fi
	for ((n = 1; n <= RERUNS; n++)); do
		log "round $r: re-run $n of $RERUNS"
		"${PY[@]}" run "$URL" "$CERT" "$PW" "$ID" "$SERVER_PID" >"$OUT/run-$r-again-$n.json" || die "re-run $n failed"
	done
	if [ -n "$PERF_PID" ]; then
		kill -INT "$PERF_PID"; wait "$PERF_PID" 2>/dev/null; PERF_PID=""
		perf report -i "$OUT/perf-rerun.data" --stdio --no-children --sort comm,dso,sym -g none --percent-limit 0.5 \
			>"$OUT/perf-rerun.txt" 2>/dev/null
		log "perf profile of round 1's re-runs: $OUT/perf-rerun.txt"
	fi
	if [ "$r" = 1 ]; then
		# What a run costs whatever its size: a profile over one message, run again.
		mkdir -p "$OUT/one"
		find "$EML" -type f -name '*.eml' | sort | head -n 1 | xargs -I{} cp {} "$OUT/one/"
		ONE=$("${PY[@]}" create "$URL" "$CERT" "$PW" "$OUT/one" bench) || die "CreateProfile (one message) failed"
		"${PY[@]}" run "$URL" "$CERT" "$PW" "$ONE" >/dev/null || die "RunProfile (one message) failed"
		for ((n = 1; n <= 5; n++)); do
			"${PY[@]}" run "$URL" "$CERT" "$PW" "$ONE" >"$OUT/run-one-$n.json" || die "RunProfile (one message) failed"
		done
		rm -rf "$OUT/one"
	fi
	stop_server
	[ "$KEEP" = 1 ] || rm -rf "$D"
done
D=""

echo "corpus: $EML; binary: $BIN ($("$BIN" --version | head -n 1)); $(nproc) CPUs; load average before: $LOAD0"
"${PY[@]}" report "$OUT" "$ROUNDS" "$RERUNS" "$TARGET" "$INVOCATION"
