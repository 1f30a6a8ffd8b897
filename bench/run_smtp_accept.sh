#!/usr/bin/env bash
# Accepting mail over SMTP/LMTP (issue 13): mailvault's SMTP endpoint beside
# Debian's Postfix (accepting into its own hold queue, fsync'd, never
# delivered) and Dovecot's LMTP (delivering into a Maildir), each a private
# instance on loopback started by this script, each loaded in the same run by
# Postfix's smtp-source: N messages of ~10 KB over 20 sessions kept open.
# Prints per target wall time, msg/s, end-of-DATA-to-250 latency p50/p99 (a
# sampler on one more connection), server CPU seconds, memory before/max/end
# of the load (sampled every second from /proc), the ratios mailvault/Postfix
# and mailvault/Dovecot, and checks each target holds exactly N + the
# sampler's messages.  If the binary has no SMTP endpoint yet it says so and
# prints the peers' figures.  The servers and their directories go on exit,
# failure or Ctrl-C.  Exits 1 if a run failed or a count is wrong; a figure
# missing a target never fails it.  Details (and why smtp-source's filler
# payload): bench/smtp_accept.py.
#
# usage: bench/run_smtp_accept.sh [--messages N] [--sessions S] [--size BYTES]
#                                 [--targets postfix,dovecot,mailvault] [--rounds R]
#                                 [--out DIR] [--no-build] [--keep]
#   --messages  messages smtp-source sends to each target (default $N, else 100000)
#   --sessions  concurrent smtp-source sessions (-s; default 20)
#   --size      smtp-source payload bytes per message (-l; default 10240)
#   --targets   which targets, in this order (default all three)
#   --rounds    run every target R times, interleaved (P D M P D M ...), and show the
#               round of median msg/s with each round's figures (default 1); for a
#               machine where other work comes and goes
#   --out       results.json and logs/ (default bench/out/smtp-accept)
#   --no-build  do not build build-release/; use the binary as it is
#   --keep      keep the mailvault data directory (OUT/mailvault-data)
# Env: N (messages), MAILVAULT_BIN (this binary, no build; else build-release/mailvault,
#      or build/mailvault when only that one has the SMTP endpoint),
#      MAILVAULT_BENCH_TMP (the servers' directories, default /tmp; must be traversable
#      by user dovecot when run as root; put it on the disk you mean to measure: every
#      target fsyncs each message there).
# Needs: postfix (smtp-source, postfix), dovecot-lmtpd (tools/deps.sh bench installs them).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
COUNT=${N:-100000}
SESSIONS=20
SIZE=10240
TARGETS=postfix,dovecot,mailvault
ROUNDS=1
OUT=$REPO/bench/out/smtp-accept
BUILD=1
KEEP=0
INVOCATION="bench/run_smtp_accept.sh $*"
for v in N MAILVAULT_BIN MAILVAULT_BENCH_TMP; do
	[ -n "${!v:-}" ] && INVOCATION="$v=${!v} $INVOCATION"
done
while [ $# -gt 0 ]; do
	case $1 in
	--messages) COUNT=$2; shift 2 ;;
	--messages=*) COUNT=${1#*=}; shift ;;
	--sessions) SESSIONS=$2; shift 2 ;;
	--sessions=*) SESSIONS=${1#*=}; shift ;;
	--size) SIZE=$2; shift 2 ;;
	--size=*) SIZE=${1#*=}; shift ;;
	--targets) TARGETS=$2; shift 2 ;;
	--targets=*) TARGETS=${1#*=}; shift ;;
	--rounds) ROUNDS=$2; shift 2 ;;
	--rounds=*) ROUNDS=${1#*=}; shift ;;
	--out) OUT=$2; shift 2 ;;
	--out=*) OUT=${1#*=}; shift ;;
	--no-build) BUILD=0; shift ;;
	--keep) KEEP=1; shift ;;
	-h|--help) sed -n '2,35p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "run_smtp_accept.sh: unknown argument: $1" >&2; exit 2 ;;
	esac
done
for n in "$COUNT" "$SESSIONS" "$SIZE" "$ROUNDS"; do
	case $n in ''|*[!0-9]*|0) echo "run_smtp_accept.sh: --messages, --sessions, --size and --rounds take a positive number, not '$n'" >&2; exit 2 ;; esac
done

log() { printf '[smtp-accept %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
LOG=$OUT
TMPBASE=${MAILVAULT_BENCH_TMP:-/tmp}
# shellcheck source=bench/common.sh
. "$HERE/common.sh"

# ---------------------------------------------------------------- cleanup
# smtp_accept.py stops its servers and removes their directories itself; this
# is for when it cannot (killed, or this script interrupted): each file in
# OUT/state holds "PGID ROOT" of a running server or of smtp-source (PGID 0:
# nothing running yet; ROOT "-": no directory).
PY_PID=""
# shellcheck disable=SC2317  # called by the traps
cleanup() {
	local f
	bench_stop_pid "$PY_PID" 600
	PY_PID=""
	for f in "$OUT"/state/*; do
		bench_stop_group_state "$f" "$(basename "$f")" "$TMPBASE/mv-smtp-accept-*"
	done
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

# ---------------------------------------------------------------- tools
bench_need_packages postfix dovecot-lmtpd
command -v python3 >/dev/null || die "python3 is needed"
[ -x /usr/sbin/smtp-source ] || command -v smtp-source >/dev/null || die "smtp-source (Debian package postfix) is needed"
getent passwd postfix >/dev/null || die "user postfix is missing (the postfix package makes it)"
[ "$(id -u)" = 0 ] || die "run as root: a private Postfix instance needs root to start (it drops to user postfix)"

# ---------------------------------------------------------------- binary
has_smtp() { "$1" serve --help 2>&1 | grep -q -- '--smtp-listen'; }
case ,$TARGETS, in
*,mailvault,*)
	bench_release_binary
	if ! has_smtp "$BIN"; then
		if [ -z "${MAILVAULT_BIN:-}" ] && [ -x "$REPO/build/mailvault" ] && has_smtp "$REPO/build/mailvault"; then
			log "$BIN has no SMTP endpoint; build/mailvault has: using that one"
			BIN=$REPO/build/mailvault
		else
			log "NOTE: $BIN has no SMTP endpoint yet (serve --help lists no --smtp-listen);" \
				"the mailvault row will say so, the peers' figures still print"
		fi
	fi
	;;
*) BIN=${MAILVAULT_BIN:-$REPO/build-release/mailvault} ;;
esac

# ---------------------------------------------------------------- run
avail=$(df -Pm "$TMPBASE" | awk 'NR==2 {print $4}')
need=$((COUNT * (SIZE + 2048) / 1000000 + 100))
[ "$avail" -gt "$need" ] || log "warning: ~${need} MB needed in $TMPBASE per target, ${avail} MB free"
log "binary $BIN; $COUNT messages, $SESSIONS sessions, payload $SIZE bytes; targets $TARGETS; in $TMPBASE;" \
	"load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
KEEPARG=()
[ "$KEEP" = 1 ] && KEEPARG=(--keep)
python3 "$HERE/smtp_accept.py" run --bin "$BIN" --out "$OUT" --tmp "$TMPBASE" --messages "$COUNT" \
	--sessions "$SESSIONS" --size "$SIZE" --targets "$TARGETS" --rounds "$ROUNDS" --invocation "$INVOCATION" "${KEEPARG[@]}" &
PY_PID=$!
wait "$PY_PID"
rc=$?
PY_PID=""
echo
if [ -x "$BIN" ]; then
	echo "binary: $BIN (built $(date -r "$BIN" '+%Y-%m-%d %H:%M'), HEAD $(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo '?') at run time)"
fi
echo "command: $INVOCATION"
echo "results: $OUT/results.json; logs: $OUT/logs"
exit $rc
