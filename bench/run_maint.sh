#!/usr/bin/env bash
# mailvault store maintenance rates on a generated corpus: VerifyStore,
# RebuildStoreIndex, DeleteMessage + CompactStore, RecoverStore, TransferStores.
# Each is an Administration API function run as `mailvault --data-dir D cmd F
# --arg=value` and timed whole by GNU time (wall, peak RSS).  Rates are
# compared with MailStore's quoted store-upgrade rate (50,000 messages per
# minute = 833 msg/s) and with the target of ten times that (8,333 msg/s).
# Figures print; a figure missing a target fails nothing.  A function whose
# envelope is not "succeeded" (or a store that does not verify clean) stops
# the run with the envelope's error message.  See bench/README.md.
#
# usage: bench/run_maint.sh [N]   (N messages, default 1000000)
# Env: MAILVAULT_BIN        binary (default build/mailvault; this is not built here)
#      MAILVAULT_BENCH_DIR  corpus cache (default bench/out/corpora), as run_1m.sh
#      MAINT_OUT            where the imported store and logs are kept (default bench/out/maint-N)
#      MAINT_REIMPORT=1     import again even if MAINT_OUT/base is intact
#      MAINT_KEEP=1         keep the work data directory after the run (it is big at 1M)
#      MAINT_STEP_TIMEOUT=S stop the run if one timed step takes longer than S seconds (SIGINT, which
#                           mailvault answers by cancelling at a safe point); default 0 = no limit
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
INVOCATION="$0${1:+ $1}"
for v in MAINT_STEP_TIMEOUT MAINT_KEEP MAINT_REIMPORT MAINT_OUT MAILVAULT_BENCH_DIR MAILVAULT_BIN; do
	[ -n "${!v:-}" ] && INVOCATION="$v=${!v} $INVOCATION"
done

case ${1:-} in -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
[ $# -le 1 ] || { echo "run_maint.sh: usage: bench/run_maint.sh [N]" >&2; exit 2; }
N=${1:-1000000}
case $N in ''|*[!0-9]*) echo "run_maint.sh: N must be a message count, not '$N'" >&2; exit 2 ;; esac
[ "$N" -ge 100 ] || { echo "run_maint.sh: N must be at least 100 (1% of the messages are deleted)" >&2; exit 2; }

BIN=${MAILVAULT_BIN:-$REPO/build/mailvault}
CACHE=${MAILVAULT_BENCH_DIR:-$REPO/bench/out/corpora}
OUT=${MAINT_OUT:-$REPO/bench/out/maint-$N}
BASE=$OUT/base              # the imported data directory, kept between runs
MARK=$OUT/base.imported     # written after a completed import (JSON)
STEP_TIMEOUT=${MAINT_STEP_TIMEOUT:-0}
case $STEP_TIMEOUT in ''|*[!0-9]*) echo "run_maint.sh: MAINT_STEP_TIMEOUT must be seconds, not '$STEP_TIMEOUT'" >&2; exit 2 ;; esac
D=$OUT/work                 # copy of BASE that this run changes
LOG=$OUT/logs               # envelopes, stderr and GNU time output of this run
MAILSTORE=833               # 50,000 messages per minute
TARGET=8333                 # ten times that

log() { printf '[maint %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'run_maint.sh: FAILED: %s\n' "$*" >&2; exit 1; }
# shellcheck source=bench/common.sh
. "$HERE/common.sh"

# ---------------------------------------------------------------- helpers (python3 stdlib)
PY=$(cat <<'PY'
import json, os, re, sys

def envelopes(path):
    """The JSON envelopes in a file: one from `cmd`, one per line of input from `shell`."""
    text = open(path, encoding="utf-8", errors="replace").read()
    dec, i, out = json.JSONDecoder(), 0, []
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return out
        try:
            obj, i = dec.raw_decode(text, i)
        except ValueError as e:
            sys.exit(f"{path}: not a JSON envelope ({e}): {text[i:i+200]!r}")
        out.append(obj)

def err_of(e):
    err = e.get("error") or {}
    msg = err.get("message") if isinstance(err, dict) else str(err)
    return msg or f"statusCode {e.get('statusCode')!r}, no error message"

def get(obj, path):
    for k in path.split(".") if path else []:
        obj = obj.get(k) if isinstance(obj, dict) else None
    return obj

mode, args = sys.argv[1], sys.argv[2:]
if mode == "check":              # FILE [FIELD...]: succeeded, else the error; prints the fields
    es = envelopes(args[0])
    if len(es) != 1:
        sys.exit(f"expected one envelope, found {len(es)}")
    e = es[0]
    if e.get("statusCode") != "succeeded":
        sys.exit(err_of(e))
    vals = [get(e, f) for f in args[1:]]
    print(" ".join(str(v) if isinstance(v, (int, str)) and not isinstance(v, bool) else json.dumps(v)
                   for v in vals))
elif mode == "shell":            # FILE EXPECTED: every envelope succeeded, EXPECTED of them
    es = envelopes(args[0])
    bad = [e for e in es if e.get("statusCode") != "succeeded"]
    if bad:
        sys.exit(f"{len(bad)} of {len(es)} failed; first: {err_of(bad[0])}")
    if len(es) != int(args[1]):
        sys.exit(f"{len(es)} envelopes for {args[1]} input lines")
    print(len(es))
elif mode == "timev":            # FILE: wall seconds, peak RSS KB, CPU seconds of /usr/bin/time -v
    wall = rss = None
    cpu = 0.0
    for line in open(args[0], errors="replace"):
        k, _, v = line.strip().rpartition(": ")
        if k.startswith("Elapsed (wall clock) time"):
            p = [float(x) for x in v.split(":")]
            wall = sum(x * 60 ** (len(p) - 1 - j) for j, x in enumerate(p))
        elif k == "Maximum resident set size (kbytes)":
            rss = int(v)
        elif k in ("User time (seconds)", "System time (seconds)"):
            cpu += float(v)
    if wall is None or rss is None:
        sys.exit(f"{args[0]}: no GNU time -v figures")
    print(f"{wall:.2f} {rss} {cpu:.2f}")
elif mode == "report":           # ROWS_TSV INVOCATION NOTES_FILE MAILSTORE_RATE TARGET_RATE
    mailstore, target = int(args[3]), int(args[4])
    rows = [l.rstrip("\n").split("\t") for l in open(args[0]) if l.strip()]
    def ratio(x, t):
        r = x / t
        return f"{r:.3f}×" if r < 0.1 else f"{r:.2f}×" if r < 10 else f"{r:,.0f}×"
    print()
    for op, msgs, wall, rss, cpu, load in rows:
        msgs, wall, rss, cpu, load = int(msgs), float(wall), int(rss), float(cpu), float(load)
        rate = msgs / wall if wall > 0 else float("inf")
        print(f"{op:48} {msgs:>10,} msgs {rate:>9,.0f} msg/s {wall:>8.2f} s  peak RSS {rss / 1024:>5,.0f} MB"
              f"  ×MailStore {ratio(rate, mailstore):>6}  ×target {ratio(rate, target):>6}")
    print()
    print(f"| operation | messages | msgs/s | wall s | CPU s | peak RSS | vs MailStore {mailstore:,}/s"
          f" | vs target {target:,}/s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    busy = []
    ncpu = os.cpu_count() or 1
    for op, msgs, wall, rss, cpu, load in rows:
        msgs, wall, rss, cpu, load = int(msgs), float(wall), int(rss), float(cpu), float(load)
        rate = msgs / wall if wall > 0 else float("inf")
        if load > ncpu / 2:
            busy.append(f"{op.split()[0]} {load:.1f}")
        print(f"| {op} | {msgs:,} | {rate:,.0f} | {wall:.2f} | {cpu:.2f} | {rss / 1024:,.0f} MB"
              f" | {ratio(rate, mailstore)} | {ratio(rate, target)} |")
    print()
    for line in open(args[2]):
        print(line.rstrip("\n"))
    if busy:
        print(f"Machine busy (load average above {ncpu / 2:g} before): {', '.join(busy)}.")
    print()
    print("```sh")
    print(args[1])
    print("```")
PY
)
py() { python3 -c "$PY" "$@"; }

[ -x "$BIN" ] || die "no mailvault binary at $BIN (build it with 'ninja -C build', or set MAILVAULT_BIN)"
"$BIN" cmd --list >/dev/null 2>&1 || die "$BIN has no 'cmd' (Administration API functions); use a newer build"
[ -x /usr/bin/time ] || die "GNU time (/usr/bin/time, Debian package 'time') is needed for wall time and peak RSS"
command -v python3 >/dev/null || die "python3 is needed"

# timed NAME CMD...: CMD's stdout -> LOG/NAME.json, stderr -> LOG/NAME.err, GNU time -> LOG/NAME.time;
# sets T_WALL T_RSS T_CPU T_LOAD and T_RC (the command's exit status; never exits on it).
timed() {
	local name=$1; shift
	T_LOAD=$(cut -d' ' -f1 /proc/loadavg)
	echo "$*" >>"$LOG/commands.txt"
	T_RC=0
	local to=()
	[ "$STEP_TIMEOUT" -gt 0 ] && to=(timeout -s INT --kill-after=120 "$STEP_TIMEOUT")
	/usr/bin/time -v -o "$LOG/$name.time" "${to[@]}" "$@" >"$LOG/$name.json" 2>"$LOG/$name.err" || T_RC=$?
	if [ "$T_RC" = 124 ] || [ "$T_RC" = 137 ]; then
		die "$name: stopped after ${STEP_TIMEOUT}s (MAINT_STEP_TIMEOUT): $*  [$LOG/$name.err]"
	fi
	read -r T_WALL T_RSS T_CPU < <(py timev "$LOG/$name.time") || die "$name: could not read $LOG/$name.time"
}

# mv_cmd NAME FUNCTION ARGS...: timed `mailvault cmd`; the envelope must say succeeded.
mv_cmd() {
	local name=$1; shift
	timed "$name" "$BIN" --data-dir "$D" cmd "$@"
	local msg
	if ! msg=$(py check "$LOG/$name.json" 2>&1); then
		die "$* (exit $T_RC): ${msg:-no envelope}  [envelope: $LOG/$name.json, stderr: $LOG/$name.err]"
	fi
	[ "$T_RC" = 0 ] || die "$* exited $T_RC although its envelope says succeeded  [$LOG/$name.err]"
}

field() { py check "$LOG/$1.json" "$2"; }   # field NAME result.x: a field of a (succeeded) envelope

ROWS=$LOG/rows.tsv
NOTES=$LOG/notes.txt
row() {  # row OPERATION MESSAGES: one result line from the last timed step
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$T_WALL" "$T_RSS" "$T_CPU" "$T_LOAD" >>"$ROWS"
	log "$(printf '%s: %s messages in %s s (peak RSS %s MB)' "$1" "$2" "$T_WALL" $((T_RSS / 1024)))"
}
note() { echo "$*" >>"$NOTES"; }

warm() { find "$@" -type f -print0 | xargs -0 -r cat >/dev/null; }

mkdir -p "$OUT" "$CACHE"
rm -rf "$LOG"; mkdir -p "$LOG"
: >"$ROWS"; : >"$NOTES"

# ---------------------------------------------------------------- corpus
bench_maildir_corpus "$N"
CORPUS=$MAILDIR_CORPUS
MAILDIR=$CORPUS/maildir

# ---------------------------------------------------------------- 1. import into BASE (cached)
base_ok() {
	[ -f "$MARK" ] && [ -d "$BASE/stores/store1" ] || return 1
	local want have
	want=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(m["imported"] if m["count"]==int(sys.argv[2]) and m["corpus"]==sys.argv[3] else -1)' \
		"$MARK" "$N" "$CORPUS" 2>/dev/null) || return 1
	have=$("$BIN" --data-dir "$BASE" stats --json 2>/dev/null |
		python3 -c 'import json,sys; t=json.load(sys.stdin); print(t["total"]["messages"] if len(t["stores"])==1 else -2)' 2>/dev/null) || return 1
	[ "$want" = "$have" ]
}

REUSED=0
if [ "${MAINT_REIMPORT:-0}" != 1 ] && base_ok; then
	REUSED=1
	log "reusing imported data directory $BASE ($(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(m["imported"], "messages, imported", m["when"])' "$MARK"))"
else
	[ -e "$BASE" ] && log "discarding $BASE (no completed import for this corpus and N, or MAINT_REIMPORT=1)"
	rm -rf "$BASE" "$MARK"
	"$BIN" --data-dir "$BASE" init >"$LOG/init.log" 2>&1 || die "mailvault init failed: $(tail -n 3 "$LOG/init.log")"
	log "warming the page cache with the corpus"
	warm "$MAILDIR"
	log "importing $N messages (Maildir) into $BASE"
	timed import "$BIN" --data-dir "$BASE" import "$MAILDIR" --archive bench --format maildir --json --quiet
	[ "$T_RC" = 0 ] || [ "$T_RC" = 3 ] || die "import exited $T_RC: $(tail -n 3 "$LOG/import.err")"
	imported=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["imported"])' "$LOG/import.json") ||
		die "import printed no JSON report ($LOG/import.json)"
	[ "$imported" -ge 100 ] || die "only $imported messages imported ($LOG/import.json)"
	[ "$imported" = "$N" ] || log "warning: $imported of $N messages imported (see $LOG/import.json)"
	bench_maint_mark "$MARK" "$N" "$CORPUS" "$LOG/import.json" "$T_WALL" "$T_RSS" "$T_CPU" "$T_LOAD" "$BIN"
fi
read -r IMPORTED I_WALL I_RSS I_CPU I_LOAD I_WHEN < <(python3 -c '
import json, sys; m = json.load(open(sys.argv[1]))
print(m["imported"], m["wall_s"], m["peak_rss_kb"], m["cpu_s"], m["loadavg_before"], m["when"].replace(" ", "T"))' "$MARK")
T_WALL=$I_WALL; T_RSS=$I_RSS; T_CPU=$I_CPU; T_LOAD=$I_LOAD
row "import (Maildir, fresh data dir)" "$IMPORTED"
if [ "$REUSED" = 1 ]; then
	note "The import row is from the earlier run ($I_WHEN) that made $BASE, reused while intact."
else
	note "The import row is this run's import into $BASE (kept for later runs)."
fi

# ---------------------------------------------------------------- 2. work copy
base_kb=$(du -sk "$BASE" | cut -f1)
avail_kb=$(df -Pk "$OUT" | awk 'NR==2 {print $4}')
old_kb=0; [ -d "$D" ] && old_kb=$(du -sk "$D" | cut -f1)
need_kb=$((base_kb * 22 / 10))   # the copy, plus store 2 filled by TransferStores
[ $((avail_kb + old_kb)) -gt "$need_kb" ] ||
	die "need ~$((need_kb / 1024)) MB free in $OUT for the work copy and the transfer target, have $(((avail_kb + old_kb) / 1024)) MB"
rm -rf "$D"
log "copying $BASE to $D ($((base_kb / 1024)) MB)"
cp -a --reflink=auto "$BASE" "$D"
warm "$D"

# ---------------------------------------------------------------- 3. VerifyStore
log "VerifyStore store 1"
mv_cmd verify1 VerifyStore --id=1 --includeIndexes=true
read -r CLEAN LIVE PROBLEMS < <(py check "$LOG/verify1.json" result.clean result.messagesChecked result.problemCount)
[ "$CLEAN" = true ] || die "VerifyStore --id=1 is not clean: $PROBLEMS problems  [$LOG/verify1.json]"
row "VerifyStore --id=1 --includeIndexes=true" "$LIVE"

# ---------------------------------------------------------------- 4. RebuildStoreIndex
log "RebuildStoreIndex store 1"
mv_cmd rebuild RebuildStoreIndex --id=1 --folder=x
row "RebuildStoreIndex --id=1 --folder=x" "$LIVE"

# ---------------------------------------------------------------- 5. DeleteMessage 1%, CompactStore
seq 100 100 "$IMPORTED" | sed 's/^/DeleteMessage --id=1:/; s/$/ --reason=bench/' >"$LOG/delete.in"
NDEL=$(wc -l <"$LOG/delete.in")
log "DeleteMessage x $NDEL (one shell process)"
timed delete "$BIN" --data-dir "$D" shell <"$LOG/delete.in"
msg=$(py shell "$LOG/delete.json" "$NDEL" 2>&1) ||
	die "DeleteMessage (shell, $NDEL lines; exit $T_RC): $msg  [envelopes: $LOG/delete.json]"
[ "$T_RC" = 0 ] || die "mailvault shell exited $T_RC although every envelope says succeeded  [$LOG/delete.err]"
row "DeleteMessage ×$NDEL (1%, one shell)" "$NDEL"

log "CompactStore store 1"
mv_cmd compact CompactStore --id=1
read -r KEPT DROPPED BB BA < <(py check "$LOG/compact.json" result.recordsKept result.recordsDropped \
	result.bytesBefore result.bytesAfter)
row "CompactStore --id=1" "$((LIVE - NDEL))"
note "CompactStore: $DROPPED records dropped, $KEPT kept; content $BB -> $BA bytes ($(python3 -c "import sys; b,a=map(int,sys.argv[1:]); print(f'{b/1e6:,.1f} -> {a/1e6:,.1f} MB, {100*(b-a)/b:.1f}% smaller' if b else 'n/a')" "$BB" "$BA")). Its rate counts the $((LIVE - NDEL)) live messages."

# ---------------------------------------------------------------- 6. RecoverStore
log "RecoverStore store 1 (its db directory removed first)"
rm -rf "$D/stores/store1/db"
mv_cmd stores-broken GetStores
state=$(python3 -c 'import json,sys; s=[x for x in json.load(open(sys.argv[1]))["result"] if x["id"]==1][0]; print(s["state"], "-", s["error"])' "$LOG/stores-broken.json")
case $state in error*) ;; *) die "store 1 is not in an error state without its db directory: $state" ;; esac
mv_cmd recover RecoverStore --id=1
read -r RECOVERED PROBLEMS < <(py check "$LOG/recover.json" result.messagesRecovered result.problemCount)
[ "$PROBLEMS" = 0 ] || die "RecoverStore reported $PROBLEMS problems  [$LOG/recover.json]"
[ "$RECOVERED" = $((LIVE - NDEL)) ] || log "warning: $RECOVERED messages recovered, $((LIVE - NDEL)) expected"
row "RecoverStore --id=1 (db directory removed)" "$RECOVERED"

# ---------------------------------------------------------------- 7. TransferStores
log "TransferStores 1 -> 2"
mv_cmd create CreateStore --name=t2 --requestedState=current
[ "$(field create result.id)" = 2 ] || die "CreateStore made store $(field create result.id), not 2"
mv_cmd protect SetStoreRequestedState --id=1 --requestedState=writeProtected
mv_cmd transfer TransferStores --sourceStores=1 --targetStore=2
read -r TRANSFERRED INSOURCES < <(py check "$LOG/transfer.json" result.messagesTransferred result.messagesInSources)
[ "$TRANSFERRED" = "$INSOURCES" ] ||
	die "TransferStores moved $TRANSFERRED of $INSOURCES messages  [$LOG/transfer.json]"
row "TransferStores --sourceStores=1 --targetStore=2" "$TRANSFERRED"

# ---------------------------------------------------------------- 8. VerifyStore on the target
log "VerifyStore store 2"
mv_cmd verify2 VerifyStore --id=2 --includeIndexes=true
read -r CLEAN CHECKED PROBLEMS < <(py check "$LOG/verify2.json" result.clean result.messagesChecked result.problemCount)
[ "$CLEAN" = true ] || die "VerifyStore --id=2 is not clean: $PROBLEMS problems  [$LOG/verify2.json]"
[ "$CHECKED" = "$TRANSFERRED" ] || die "store 2 holds $CHECKED messages, $TRANSFERRED were transferred"
row "VerifyStore --id=2 --includeIndexes=true" "$CHECKED"

note "DeleteMessage: one \`mailvault shell\` reading $NDEL lines (ids 1:100, 1:200, ...); its rate is deletions/s."
note "Machine: $(nproc) cores; binary $BIN; data $D (copy of $BASE); envelopes and GNU time output in $LOG."
if [ "${MAINT_KEEP:-0}" != 1 ]; then rm -rf "$D"; else note "Work data directory kept: $D"; fi

py report "$ROWS" "$INVOCATION" "$NOTES" "$MAILSTORE" "$TARGET"
