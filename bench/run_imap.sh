#!/usr/bin/env bash
# IMAP serving: mailvault's integrated read-only IMAP server beside a private
# Debian Dovecot serving the same SpamAssassin messages from a Maildir, in the
# same run.  mbsync pulls the whole INBOX from each over IMAPS (loopback) into
# a fresh Maildir; prints messages/s, MB/s and the ratio mailvault/Dovecot,
# and each server's RSS with N idle logged-on TLS connections.  Never fails
# because a figure misses a target.  See bench/README.md.
#
# usage: bench/run_imap.sh [--rounds N] [--idle N] [--out DIR] [--no-build]
#   --rounds    timed pulls per server after one untimed warm-up (default 5); median reported
#   --idle      idle connections for the RSS figure (default 500)
#   --out       results and logs (default bench/out/imap): results.json, work/
#   --no-build  do not build; use $MAILVAULT_BIN or build-release/mailvault as it is
# Env: MAILVAULT_BIN (this binary, no build), MAILVAULT_CORPUS (corpus cache root,
#      default ~/.cache/mailvault-corpus; the SpamAssassin Maildir is its
#      spamassassin/maildir, materialised by ../shared/corpus/spamassassin).
# Needs: mbsync (isync), dovecot-imapd, openssl (tools/deps.sh test).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
OUT=$REPO/bench/out/imap
ROUNDS=5
IDLE=500
BUILD=1
INVOCATION="bench/run_imap.sh $*"
while [ $# -gt 0 ]; do
	case $1 in
	--rounds) ROUNDS=$2; shift 2 ;;
	--rounds=*) ROUNDS=${1#*=}; shift ;;
	--idle) IDLE=$2; shift 2 ;;
	--idle=*) IDLE=${1#*=}; shift ;;
	--out) OUT=$2; shift 2 ;;
	--out=*) OUT=${1#*=}; shift ;;
	--no-build) BUILD=0; shift ;;
	-h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "run_imap.sh: unknown argument: $1" >&2; exit 2 ;;
	esac
done
[ "$ROUNDS" -ge 1 ] 2>/dev/null || { echo "run_imap.sh: --rounds wants a number >= 1" >&2; exit 2; }

log() { printf '[imap %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "$*"; exit 1; }

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
LOG=$OUT
# shellcheck source=bench/common.sh
. "$HERE/common.sh"

command -v python3 >/dev/null || die "python3 is needed"
command -v mbsync >/dev/null || die "mbsync is needed (Debian package isync): tools/deps.sh test"
[ -x /usr/sbin/dovecot ] || command -v dovecot >/dev/null || die "dovecot is needed (Debian package dovecot-imapd): tools/deps.sh test"

bench_release_binary
case $("$BIN" serve --help 2>&1) in
*imap*) ;;
*) die "$BIN has no IMAP server (serve --help names no imap option): use a newer build" ;;
esac

CORPUS=${MAILVAULT_CORPUS:-$HOME/.cache/mailvault-corpus}
MAILDIR=$CORPUS/spamassassin/maildir
if [ ! -d "$MAILDIR/cur" ]; then
	SCRIPT=$REPO/../shared/corpus/spamassassin
	[ -f "$SCRIPT" ] || die "no corpus at $MAILDIR and no $SCRIPT to make it"
	log "materialising the SpamAssassin corpus into $CORPUS"
	python3 "$SCRIPT" "$CORPUS" >"$OUT/corpus.log" 2>&1 || die "materialising the corpus failed  [$OUT/corpus.log]"
fi

log "binary $BIN; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 "$HERE/imap_bench.py" run --bin "$BIN" --maildir "$MAILDIR" --out "$OUT" --rounds "$ROUNDS" \
	--idle "$IDLE" --invocation "$INVOCATION" || die "the benchmark failed"
echo
echo "binary: $BIN (built $(date -r "$BIN" '+%Y-%m-%d %H:%M'), HEAD $(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo '?') at run time)"
echo "command: ${MAILVAULT_BIN:+MAILVAULT_BIN=$MAILVAULT_BIN }$INVOCATION"
echo "logs: $OUT/work/logs"
