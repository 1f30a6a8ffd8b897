#!/usr/bin/env bash
# IMAP serving: mailvault's integrated read-only IMAP server beside a private
# Debian Dovecot serving the same messages from a Maildir, in the same run,
# on each corpus in turn (the SpamAssassin corpus and 100,000 generated
# messages by default).  mbsync pulls the whole INBOX from each over IMAPS
# (loopback) into a fresh Maildir; prints messages/s, MB/s and the ratio
# mailvault/Dovecot per corpus, the mailvault import time apart, and, on the
# first corpus, each server's RSS with N idle TLS connections.  Never fails
# because a figure misses a target.  See bench/README.md.
#
# usage: bench/run_imap.sh [--corpora LIST] [--rounds N] [--rounds-large N] [--idle N]
#                          [--seed S] [--out DIR] [--no-build]
#   --corpora       in order, comma-separated: "spamassassin" and/or message counts of
#                   generated corpora (bench/gen_corpus.py, cached as run.sh caches them:
#                   $MAILVAULT_BENCH_DIR or bench/out/corpora, gen-N-sSEED-HASH; its maildir/
#                   is served).  Default spamassassin,100000.
#   --rounds        timed pulls per server after one untimed warm-up, for corpora of up
#                   to 20,000 messages (default 5); median reported
#   --rounds-large  the same for larger corpora (default 1: a 100k pull takes minutes)
#   --idle          idle connections for the RSS figure, on the first corpus (default 500)
#   --seed          generator seed (default 42)
#   --out           results and logs (default bench/out/imap): results.json, work/
#   --no-build      do not build; use $MAILVAULT_BIN or build-release/mailvault as it is
# Env: MAILVAULT_BIN (this binary, no build), MAILVAULT_CORPUS (corpus cache root,
#      default ~/.cache/mailvault-corpus; the SpamAssassin Maildir is its
#      spamassassin/maildir, materialised by ../shared/corpus/spamassassin),
#      MAILVAULT_BENCH_DIR (generated-corpus cache, default bench/out/corpora).
# Needs: mbsync (isync), dovecot-imapd, openssl (tools/deps.sh test).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
OUT=$REPO/bench/out/imap
CORPORA=spamassassin,100000
ROUNDS=5
ROUNDS_LARGE=1
LARGE=20000
SEED=42
IDLE=500
BUILD=1
INVOCATION="bench/run_imap.sh $*"
while [ $# -gt 0 ]; do
	case $1 in
	--corpora) CORPORA=$2; shift 2 ;;
	--corpora=*) CORPORA=${1#*=}; shift ;;
	--rounds) ROUNDS=$2; shift 2 ;;
	--rounds=*) ROUNDS=${1#*=}; shift ;;
	--rounds-large) ROUNDS_LARGE=$2; shift 2 ;;
	--rounds-large=*) ROUNDS_LARGE=${1#*=}; shift ;;
	--seed) SEED=$2; shift 2 ;;
	--seed=*) SEED=${1#*=}; shift ;;
	--idle) IDLE=$2; shift 2 ;;
	--idle=*) IDLE=${1#*=}; shift ;;
	--out) OUT=$2; shift 2 ;;
	--out=*) OUT=${1#*=}; shift ;;
	--no-build) BUILD=0; shift ;;
	-h|--help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "run_imap.sh: unknown argument: $1" >&2; exit 2 ;;
	esac
done
[ "$ROUNDS" -ge 1 ] 2>/dev/null || { echo "run_imap.sh: --rounds wants a number >= 1" >&2; exit 2; }
[ "$ROUNDS_LARGE" -ge 1 ] 2>/dev/null || { echo "run_imap.sh: --rounds-large wants a number >= 1" >&2; exit 2; }

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

# --corpus NAME MAILDIR ROUNDS arguments for imap_bench.py, in --corpora order
CORPUS_ARGS=()
IFS=, read -r -a CORPUS_LIST <<<"$CORPORA"
for s in "${CORPUS_LIST[@]}"; do
	case $s in
	spamassassin|sa)
		SA=${MAILVAULT_CORPUS:-$HOME/.cache/mailvault-corpus}
		MAILDIR=$SA/spamassassin/maildir
		if [ ! -d "$MAILDIR/cur" ]; then
			SCRIPT=$REPO/../shared/corpus/spamassassin
			[ -f "$SCRIPT" ] || die "no corpus at $MAILDIR and no $SCRIPT to make it"
			log "materialising the SpamAssassin corpus into $SA"
			python3 "$SCRIPT" "$SA" >"$OUT/corpus.log" 2>&1 || die "materialising the corpus failed  [$OUT/corpus.log]"
		fi
		n=$(find "$MAILDIR/cur" "$MAILDIR/new" -type f 2>/dev/null | wc -l)
		name=spamassassin
		;;
	*[!0-9]*|'')
		die "unknown corpus '$s' (want spamassassin or a message count)"
		;;
	*)
		CACHE=${MAILVAULT_BENCH_DIR:-$REPO/bench/out/corpora}
		mkdir -p "$CACHE"
		CACHE=$(cd "$CACHE" && pwd)
		bench_gen_corpus "$s" || die "could not generate the $s-message corpus"
		MAILDIR=$GEN_DIR/maildir
		n=$s
		name=gen-$s
		;;
	esac
	r=$ROUNDS
	[ "$n" -gt "$LARGE" ] && r=$ROUNDS_LARGE
	CORPUS_ARGS+=(--corpus "$name" "$MAILDIR" "$r")
done
[ ${#CORPUS_ARGS[@]} -gt 0 ] || die "no corpus (--corpora)"

log "binary $BIN; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 "$HERE/imap_bench.py" run --bin "$BIN" "${CORPUS_ARGS[@]}" --out "$OUT" \
	--idle "$IDLE" --invocation "$INVOCATION" || die "the benchmark failed"
echo
echo "binary: $BIN (built $(date -r "$BIN" '+%Y-%m-%d %H:%M'), HEAD $(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo '?') at run time)"
echo "command: ${MAILVAULT_BIN:+MAILVAULT_BIN=$MAILVAULT_BIN }$INVOCATION"
echo "logs: $OUT/work/logs"
