#!/usr/bin/env bash
# Re-running a file-import archiving profile over an already archived corpus
# (issue 11): `mailvault serve` on a fresh data directory, one FileSystem
# profile over the SpamAssassin corpus's EML directory (6,046 messages, as
# ../shared/corpus/spamassassin materialises it), RunProfile once (everything
# new), then RunProfile again N times (everything already archived).  Prints
# msg/s of the first run and of each re-run, the ratio of the median re-run
# to the first run, and the target line: a re-run at least 10× faster than
# the first run (what the duplicate pre-check of src/ingest/ingest.c is for:
# a hash and a lookup per message instead of a parse).  Exits 1 when the
# target is missed or a step failed, after printing every figure.
#
# usage: bench/run_profile_rerun.sh [--reruns N] [--out DIR] [--no-build] [--keep]
#   --reruns    re-runs after the first run (default 3; the median is compared)
#   --out       logs and raw JSON (default bench/out/profile-rerun)
#   --no-build  do not build; use $MAILVAULT_BIN or build-release/mailvault as it is
#   --keep      keep the data directory under OUT
# Env: MAILVAULT_BIN     binary (default build-release/mailvault, built here unless --no-build)
#      MAILVAULT_CORPUS  where the corpus is materialised (default ~/.cache/mailvault-corpus)
#      RERUN_PERF=1      also `perf record -g` the server during the re-runs (OUT/perf-rerun.txt);
#                        perf slows the server, so the re-run figures are lower
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
RERUNS=3
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
	--out) OUT=$2; shift 2 ;;
	--out=*) OUT=${1#*=}; shift ;;
	--no-build) BUILD=0; shift ;;
	--keep) KEEP=1; shift ;;
	-h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "run_profile_rerun.sh: unknown argument: $1" >&2; exit 2 ;;
	esac
done
case $RERUNS in ''|*[!0-9]*|0) echo "run_profile_rerun.sh: --reruns takes a positive number, not '$RERUNS'" >&2; exit 2 ;; esac

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

# ---------------------------------------------------------------- server
D=$OUT/data
rm -rf "$D" "$OUT"/run-*.json "$OUT"/perf-rerun.*
SERVER_PID=""
PERF_PID=""
cleanup() {
	[ -n "$PERF_PID" ] && kill -INT "$PERF_PID" 2>/dev/null && wait "$PERF_PID" 2>/dev/null
	if [ -n "$SERVER_PID" ]; then
		kill -TERM "$SERVER_PID" 2>/dev/null
		wait "$SERVER_PID" 2>/dev/null
	fi
	[ "$KEEP" = 1 ] && log "kept $D" || rm -rf "$D"
}
trap cleanup EXIT

log "init $D"
"$BIN" --data-dir "$D" init >"$LOG/init.out" 2>"$LOG/init.err" || die "init failed  [$LOG/init.err]"
PW=$(sed -n 's/.*first administrator: admin, password: \([^ ]*\).*/\1/p' "$LOG/init.out")
[ -n "$PW" ] || die "init printed no administrator password  [$LOG/init.out]"
sed -i 's/\(password: \)[^ ]*/\1(hidden)/; s/\(Recovery key: \).*/\1(hidden)/' "$LOG/init.out"

# Every listener on a port of its own: the defaults may be taken by another server.
PORT=$("${PY[@]}" port)
"$BIN" --data-dir "$D" serve --listen "127.0.0.1:$PORT" --web-listen "127.0.0.1:$("${PY[@]}" port)" \
	--imap-listen "127.0.0.1:$("${PY[@]}" port)" --imap-listen-tls "127.0.0.1:$("${PY[@]}" port)" \
	>"$LOG/serve.out" 2>"$LOG/serve.err" &
SERVER_PID=$!
for ((i = 0; i < 600; i++)); do
	grep -q 'serving (pid' "$LOG/serve.out" 2>/dev/null && break
	kill -0 "$SERVER_PID" 2>/dev/null || die "mailvault serve exited  [$LOG/serve.err]"
	sleep 0.1
done
grep -q 'serving (pid' "$LOG/serve.out" || die "mailvault serve did not come up in 60 s  [$LOG/serve.out]"
URL=https://127.0.0.1:$PORT
CERT=$D/certs/server.crt

# ---------------------------------------------------------------- runs
ID=$("${PY[@]}" create "$URL" "$CERT" "$PW" "$EML" bench) || die "CreateProfile failed"
log "profile $ID over $EML; first run"
"${PY[@]}" run "$URL" "$CERT" "$PW" "$ID" >"$OUT/run-first.json" || die "the first RunProfile failed"
if [ "${RERUN_PERF:-0}" = 1 ]; then
	command -v perf >/dev/null || die "RERUN_PERF=1 needs perf"
	perf record -g -o "$OUT/perf-rerun.data" -p "$SERVER_PID" >"$LOG/perf.err" 2>&1 &
	PERF_PID=$!
	sleep 1
fi
for ((n = 1; n <= RERUNS; n++)); do
	log "re-run $n of $RERUNS"
	"${PY[@]}" run "$URL" "$CERT" "$PW" "$ID" >"$OUT/run-again-$n.json" || die "re-run $n failed"
done
if [ -n "$PERF_PID" ]; then
	kill -INT "$PERF_PID"; wait "$PERF_PID" 2>/dev/null; PERF_PID=""
	perf report -i "$OUT/perf-rerun.data" --stdio --no-children --percent-limit 1 >"$OUT/perf-rerun.txt" 2>/dev/null
	log "perf profile of the re-runs: $OUT/perf-rerun.txt"
fi

echo "corpus: $EML; binary: $BIN ($("$BIN" --version | head -n 1)); $(nproc) CPUs"
files=()
for ((n = 1; n <= RERUNS; n++)); do files+=("$OUT/run-again-$n.json"); done
"${PY[@]}" report "$OUT/run-first.json" "${files[@]}" "$TARGET" "$INVOCATION"
