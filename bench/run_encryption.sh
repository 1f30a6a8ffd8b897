#!/usr/bin/env bash
# Encryption at rest: what SQLCipher costs mailvault, measured on the same machine
# in the same run.  A store's db (store.sqlite) and full-text index (index.sqlite)
# are SQLCipher files; this script imports a corpus (encrypted, as the binary always
# writes), makes a decrypted copy of the data directory that the binary still reads
# (format 2, read-only), and compares: search-bench latency encrypted vs plain, bulk
# writes of the same content plain vs encrypted (sqlcipher shell), full reads, and
# the files' sizes.  Prints figures and ratios; never fails because of a figure.
# It stops only when the comparison would be meaningless (the plain copy does not
# search like the encrypted store).  See bench/README.md, "Encryption at rest".
#
# usage: bench/run_encryption.sh [spamassassin|N] [--out DIR] [--rounds N] [--passes N]
#                                [--bulk-rounds N] [--seed S] [--keep]
#   spamassassin  the SpamAssassin corpus (6,046 real messages; EML directory), materialised
#                 once by ../shared/corpus/spamassassin (default)
#   N             N generated messages (bench/gen_corpus.py; EML directory), cached as run.sh
#                 caches them, in $MAILVAULT_BENCH_DIR or bench/out/corpora
#   --out         results (default bench/out/encryption): results.json, RESULTS-snippet.md,
#                 work/logs (GNU time output, search-bench JSON, commands)
#   --rounds      search-bench rounds per query and process (default 20)
#   --passes      search-bench processes per data directory, alternating (default 10)
#   --bulk-rounds rounds of each bulk write and full read (default 5); medians reported
#   --seed        seed of a generated corpus (default 42)
#   --keep        keep the data directories and written files in OUT/work
# Env: MAILVAULT_BIN (default build/mailvault; this script builds nothing),
#      MAILVAULT_BENCH_DIR (generated corpus cache), MAILVAULT_CORPUS (SpamAssassin cache root).
# Needs: /usr/bin/time (Debian time), sqlcipher (Debian sqlcipher), /usr/bin/python3 with
#        python3-nacl (the keys are derived by tests/system/storedb.py).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
INVOCATION="bench/run_encryption.sh${*:+ $*}"
for v in MAILVAULT_BENCH_DIR MAILVAULT_BIN; do
	[ -n "${!v:-}" ] && INVOCATION="$v=${!v} $INVOCATION"
done
CORPUS=spamassassin
OUT=$REPO/bench/out/encryption
ROUNDS=20
PASSES=10
BULK_ROUNDS=5
SEED=42
KEEP=0
BUILD=0

usage() { echo "run_encryption.sh: usage: bench/run_encryption.sh [spamassassin|N] [--out DIR] [--rounds N] [--passes N] [--bulk-rounds N] [--seed S] [--keep]" >&2; exit 2; }
while [ $# -gt 0 ]; do
	case $1 in
	--out) [ $# -ge 2 ] || usage; OUT=$2; shift 2 ;;
	--out=*) OUT=${1#*=}; shift ;;
	--rounds) [ $# -ge 2 ] || usage; ROUNDS=$2; shift 2 ;;
	--passes) [ $# -ge 2 ] || usage; PASSES=$2; shift 2 ;;
	--bulk-rounds) [ $# -ge 2 ] || usage; BULK_ROUNDS=$2; shift 2 ;;
	--seed) [ $# -ge 2 ] || usage; SEED=$2; shift 2 ;;
	--keep) KEEP=1; shift ;;
	-h|--help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	spamassassin|sa) CORPUS=spamassassin; shift ;;
	-*) echo "run_encryption.sh: unknown argument: $1" >&2; usage ;;
	*) case $1 in *[!0-9]*) echo "run_encryption.sh: want spamassassin or a message count, not '$1'" >&2; usage ;; esac
	   CORPUS=$1; shift ;;
	esac
done
for v in "$ROUNDS" "$PASSES" "$BULK_ROUNDS" "$SEED"; do
	case $v in ''|*[!0-9]*|0) echo "run_encryption.sh: --rounds, --passes, --bulk-rounds and --seed want numbers >= 1" >&2; exit 2 ;; esac
done
[ "$CORPUS" = spamassassin ] || [ "$CORPUS" -ge 100 ] || { echo "run_encryption.sh: N must be at least 100" >&2; exit 2; }

log() { printf '[encryption %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'run_encryption.sh: FAILED: %s\n' "$*" >&2; exit 1; }

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$OUT/work
LOG=$WORK/logs
rm -rf "$WORK"
mkdir -p "$LOG"
CACHE=${MAILVAULT_BENCH_DIR:-$REPO/bench/out/corpora}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)

# shellcheck source=bench/common.sh
. "$HERE/common.sh"

# ---------------------------------------------------------------- tools
BIN=${MAILVAULT_BIN:-$REPO/build/mailvault}
[ -x "$BIN" ] || die "no mailvault binary at $BIN (build it with 'ninja -C build', or set MAILVAULT_BIN)"
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
"$BIN" search-bench --help >/dev/null 2>&1 || die "$BIN has no search-bench"
bench_need_gnu_time
command -v sqlcipher >/dev/null || bench_apt_install sqlcipher || true
command -v sqlcipher >/dev/null || die "the sqlcipher shell is needed (Debian package sqlcipher, 4.6 or later)"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3) || die "python3 is needed"
"$PY" -c 'import nacl.bindings' 2>/dev/null || bench_apt_install python3-nacl || true
"$PY" -c 'import nacl.bindings' 2>/dev/null || die "$PY cannot import nacl (Debian package python3-nacl)"

# ---------------------------------------------------------------- corpus
case $CORPUS in
spamassassin)
	root=$(python3 "$REPO/../shared/corpus/spamassassin" | tail -n 1) || root=
	[ -n "$root" ] && [ -d "$root/eml" ] && [ -d "$root/maildir" ] ||
		die "SpamAssassin corpus unavailable (../shared/corpus/spamassassin printed '$root')"
	NAME=spamassassin; SRC=$root/eml; MAILDIR=$root/maildir
	;;
*)
	bench_gen_corpus "$CORPUS" || die "bench/gen_corpus.py failed"
	NAME=gen-$CORPUS; SRC=$GEN_DIR/eml; MAILDIR=$GEN_DIR/maildir
	;;
esac
log "corpus $NAME: $SRC"

# ---------------------------------------------------------------- query mix (words of this corpus)
python3 "$HERE/benchlib.py" querymix "$MAILDIR" "$WORK/querymix" --seed 7 >"$LOG/querymix.txt" ||
	die "benchlib.py querymix failed"

load=$(cut -d' ' -f1 /proc/loadavg)
log "load average $load on $(nproc) cores before the run"
"$PY" "$HERE/encryption_bench.py" run --bin "$BIN" --src "$SRC" --format emldir \
	--queries "$WORK/querymix.mailvault" --mix-json "$WORK/querymix.json" \
	--work "$WORK" --out "$OUT" --corpus "$NAME" --invocation "$INVOCATION" \
	--rounds "$ROUNDS" --passes "$PASSES" --bulk-rounds "$BULK_ROUNDS" $([ "$KEEP" = 1 ] && echo --keep)
