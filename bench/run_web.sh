#!/usr/bin/env bash
# mailvault Web Access in a real browser: WEB_COUNT generated messages (default
# 100,000) in one archive, `mailvault serve` with Web Access, headless Chromium
# driven by Playwright (bench/web/web_bench.mjs).  Measured in one run: the time
# from pressing Enter in the search box to the result rows rendered, and from
# clicking a result to the message shown (header; for HTML messages the frame
# loaded), p50/p95 over a query mix from bench/benchlib.py querymix; the bytes
# transferred by a cold first load of the search page (login included).  For
# the split between browser and server, the same searches and messages are
# timed from Node without a browser, SearchMessages over the Administration API
# with and without snippets, and `mailvault search-bench` in-process.
# Same-machine peer: notmuch on the same Maildir, `notmuch search --limit=50
# --sort=newest-first Q` per query of the same mix (whole process).  Prints
# figures and ratios; a missed target fails nothing.  Exits 1 only if something
# broke (no binary, the server did not start, a query or request failed).
#
# usage: bench/run_web.sh
# Env: WEB_COUNT=N          messages (default 100000)
#      WEB_ROUNDS=N         measured rounds per query (default 3, after 1 warm-up round)
#      WEB_SEEDS=S,S,...    seeds of benchlib.py querymix; the mixes are merged, duplicates
#                           dropped (default 7,8,9,10: about 45 queries)
#      MAILVAULT_BIN        binary (default build-release/mailvault, built as run.sh does if missing)
#      MAILVAULT_BENCH_DIR  corpus cache (default bench/out/corpora), as run_1m.sh and run_maint.sh
#      WEB_OUT              results and logs (default bench/out/web): results.json, web.json, logs/
#      WEB_KEEP=1           keep the mailvault data directory (WEB_OUT/work/data)
#      WEB_REINDEX=1        index the corpus with notmuch again (its database is kept in
#                           WEB_OUT/notmuch and reused while corpus, count and notmuch match)
#      WEB_CHROMIUM         browser (default /usr/bin/chromium, Debian's package)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
INVOCATION="$0"
for v in WEB_CHROMIUM WEB_REINDEX WEB_KEEP WEB_OUT WEB_SEEDS WEB_ROUNDS WEB_COUNT MAILVAULT_BENCH_DIR MAILVAULT_BIN; do
	[ -n "${!v:-}" ] && INVOCATION="$v=${!v} $INVOCATION"
done

case ${1:-} in -h|--help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
[ $# -eq 0 ] || { echo "run_web.sh: usage: bench/run_web.sh (settings through the environment; -h lists them)" >&2; exit 2; }

COUNT=${WEB_COUNT:-100000}
ROUNDS=${WEB_ROUNDS:-3}
SEEDS=${WEB_SEEDS:-7,8,9,10}
case $COUNT in ''|*[!0-9]*) echo "run_web.sh: WEB_COUNT must be a message count, not '$COUNT'" >&2; exit 2 ;; esac
case $ROUNDS in ''|*[!0-9]*|0) echo "run_web.sh: WEB_ROUNDS must be a positive whole number, not '$ROUNDS'" >&2; exit 2 ;; esac
case $SEEDS in ''|*[!0-9,]*) echo "run_web.sh: WEB_SEEDS must be numbers separated by commas, not '$SEEDS'" >&2; exit 2 ;; esac
[ "$COUNT" -ge 100 ] || { echo "run_web.sh: WEB_COUNT must be at least 100" >&2; exit 2; }

BIN=${MAILVAULT_BIN:-$REPO/build-release/mailvault}
CACHE=${MAILVAULT_BENCH_DIR:-$REPO/bench/out/corpora}
OUT=${WEB_OUT:-$REPO/bench/out/web}
CHROMIUM=${WEB_CHROMIUM:-/usr/bin/chromium}
NODEDIR=$HERE/web
WORK=$OUT/work
LOG=$OUT/logs
D=$WORK/data
NM=$OUT/notmuch
WARMUP=1

log() { printf '[web %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'run_web.sh: FAILED: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- helpers (python3 stdlib)
PY=$(cat <<'PY'
import json, os, secrets, socket, sys, time

mode, args = sys.argv[1], sys.argv[2:]
if mode == "port":               # a free loopback port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])
elif mode == "password":         # a throwaway password for the bench user
    print("Wb-" + secrets.token_urlsafe(18))
elif mode == "succeeded":        # FILE: the `cmd` envelope says succeeded, else its error
    e = json.load(open(args[0]))
    if e.get("statusCode") != "succeeded":
        sys.exit((e.get("error") or {}).get("message") or f"statusCode {e.get('statusCode')!r}")
elif mode == "imported":         # FILE: "imported" of an import --json report
    print(json.load(open(args[0]))["imported"])
elif mode == "mix":              # OUT_JSON OUT_TXT MIX_JSON...: merged query mixes, duplicates dropped
    out_json, out_txt, mixes = args[0], args[1], args[2:]
    seen, queries, sampled = set(), [], []
    for path in mixes:
        m = json.load(open(path))
        sampled.append(m.get("sampled"))
        seed = os.path.basename(path).split(".")[0].rsplit("-", 1)[-1]
        for q in m["queries"]:
            if q["mailvault"] in seen:
                continue
            seen.add(q["mailvault"])
            queries.append(dict(q, seed=int(seed)))
    json.dump({"sampled": sampled, "queries": queries}, open(out_json, "w"), indent=1)
    with open(out_txt, "w") as f:
        for q in queries:
            f.write(q["mailvault"] + "\n")
    print(len(queries))
elif mode == "meta":             # OUT KEY=VALUE... (values that parse as JSON are kept as such); notes from NOTES_FILE
    out, kv = args[0], args[1:]
    meta = {}
    for item in kv:
        k, _, v = item.partition("=")
        try:
            meta[k] = json.loads(v)
        except ValueError:
            meta[k] = v
    notes = meta.pop("notes_file", None)
    meta["notes"] = [l.rstrip("\n") for l in open(notes)] if notes else []
    for k in ("import_json", "import_time"):
        p = meta.pop(k, None)
        try:
            if k == "import_json":
                r = json.load(open(p))
                meta["import"] = {x: r.get(x) for x in ("imported", "duplicates", "malformed", "refused", "bytes", "seconds")}
            else:
                rss, wall = open(p).read().split()[-2:]
                meta.setdefault("import", {}).update(peak_rss_kb=int(rss), wall_s=float(wall))
        except (OSError, ValueError, TypeError, KeyError):
            pass
    json.dump(meta, open(out, "w"), indent=1)
PY
)
py() { python3 -c "$PY" "$@"; }

# ---------------------------------------------------------------- tools
command -v python3 >/dev/null || die "python3 is needed"
command -v node >/dev/null || die "node is needed (Debian package nodejs; Node 20 or newer)"
command -v npm >/dev/null || die "npm is needed (Debian package npm)"
[ -x "$CHROMIUM" ] || die "no browser at $CHROMIUM (apt-get install chromium, or set WEB_CHROMIUM)"
HAVE_NOTMUCH=1
command -v notmuch >/dev/null || { HAVE_NOTMUCH=0; log "notmuch is not installed (apt-get install notmuch): the peer is skipped"; }
TIME=/usr/bin/time
[ -x "$TIME" ] || TIME=

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$OUT/work; LOG=$OUT/logs; D=$WORK/data; NM=$OUT/notmuch
rm -rf "$WORK" "$LOG"
mkdir -p "$WORK" "$LOG"
NOTES=$LOG/notes.txt
: >"$NOTES"
note() { echo "$*" >>"$NOTES"; }

# ---------------------------------------------------------------- binary (built as run.sh builds it)
if [ -z "${MAILVAULT_BIN:-}" ] && [ ! -x "$BIN" ]; then
	log "building release binary in build-release/"
	(
		cd "$REPO" &&
		{ [ -d build-release ] || meson setup build-release --buildtype=release >"$LOG/build.log" 2>&1; } &&
		ninja -C build-release >>"$LOG/build.log" 2>&1
	) || die "release build failed  [$LOG/build.log]"
fi
[ -x "$BIN" ] || die "no mailvault binary at $BIN (MAILVAULT_BIN)"
SERVE_HELP=$("$BIN" serve --help 2>&1 || true)
case $SERVE_HELP in *--web-listen*) ;; *) die "$BIN has no Web Access (serve --web-listen); use a newer build" ;; esac

# ---------------------------------------------------------------- Playwright (npm ci once)
lock_ok() {
	python3 - "$NODEDIR" <<-'EOF'
	import json, os, sys
	d = sys.argv[1]
	lock = json.load(open(os.path.join(d, "package-lock.json")))
	for path, meta in lock.get("packages", {}).items():
	    if not path:
	        continue
	    try:
	        if json.load(open(os.path.join(d, path, "package.json"))).get("version") != meta.get("version"):
	            sys.exit(1)
	    except (OSError, ValueError):
	        sys.exit(1)
	EOF
}
if ! lock_ok; then
	log "npm ci in bench/web (playwright-core; no browser download: Debian's chromium is used)"
	(cd "$NODEDIR" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm_config_update_notifier=false \
		npm ci --no-audit --no-fund >"$LOG/npm.log" 2>&1) || die "npm ci failed  [$LOG/npm.log]"
	lock_ok || die "bench/web/node_modules does not match package-lock.json after npm ci  [$LOG/npm.log]"
fi

# ---------------------------------------------------------------- corpus (cached, as run_maint.sh)
CORPUS=$CACHE/gen-$COUNT-maildir
if [ ! -f "$CORPUS/manifest.json" ]; then
	# A run.sh corpus of the same size (maildir + mbox + eml) serves as well.
	for c in "$CACHE"/gen-"$COUNT"-s42-*; do
		if [ -f "$c/manifest.json" ] && [ -d "$c/maildir" ]; then CORPUS=$c; break; fi
	done
fi
if [ ! -f "$CORPUS/manifest.json" ]; then
	mkdir -p "$CACHE"
	need=$((COUNT * 7 / 1000))
	avail=$(df -Pm "$CACHE" | awk 'NR==2 {print $4}')
	[ "$avail" -gt "$need" ] || die "the corpus needs ~${need} MB in $CACHE, ${avail} MB free"
	log "generating $COUNT messages into $CORPUS (Maildir, cached for later runs)"
	rm -rf "$CORPUS"
	python3 "$HERE/gen_corpus.py" --count "$COUNT" --seed 42 --out "$CORPUS" --formats maildir --jobs 2 >&2 ||
		die "bench/gen_corpus.py failed"
else
	log "reusing corpus $CORPUS"
fi
MAILDIR=$CORPUS/maildir

# ---------------------------------------------------------------- server life cycle
SERVER_PID=""
STOP_RC=0
stop_server() {  # SIGTERM, up to 120 s, then SIGKILL; STOP_RC = its exit status
	local i
	[ -n "$SERVER_PID" ] || return 0
	kill -TERM "$SERVER_PID" 2>/dev/null || true
	for ((i = 0; i < 1200; i++)); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$SERVER_PID" 2>/dev/null; then
		log "mailvault serve still running 120 s after SIGTERM: SIGKILL"
		kill -KILL "$SERVER_PID" 2>/dev/null || true
	fi
	STOP_RC=0
	wait "$SERVER_PID" 2>/dev/null || STOP_RC=$?
	SERVER_PID=""
}
cleanup() {
	stop_server
	if [ "${WEB_KEEP:-0}" = 1 ]; then
		log "kept $WORK"
	else
		rm -rf "$D"
	fi
	[ "${HAD_NM:-1}" = 1 ] || rm -rf "$MAILDIR/.notmuch"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- notmuch new (the peer's index, cached)
# Indexing is not what this script measures, and it takes long (13 minutes for
# 100k on 2 busy cores), so the database is kept in NM (OUT/notmuch)
# with a marker naming the corpus, the count and notmuch's version; a later run
# reuses it when all three match and the database still counts the same
# messages.  WEB_REINDEX=1 indexes again.
HAD_NM=1
[ -e "$MAILDIR/.notmuch" ] || HAD_NM=0
NM_NEW_S=null
NM_REUSED=0
if [ "$HAVE_NOTMUCH" = 1 ]; then
	NM_VERSION=$(notmuch --version | sed 's/^notmuch //')
	NM_MARK=$NM/indexed.json
	mkdir -p "$NM"
	# as bench/run.sh: the database lives outside the corpus (mail_root), so notmuch writes nothing there
	cat >"$NM/config" <<-EOF
	[database]
	path=$NM/db
	mail_root=$MAILDIR
	[user]
	name=Bench
	primary_email=bench@example.org
	[new]
	tags=unread;inbox;
	EOF
	want=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(m["messages"] if (m["corpus"], m["count"], m["notmuch"]) == (sys.argv[2], int(sys.argv[3]), sys.argv[4]) else -1)' \
		"$NM_MARK" "$CORPUS" "$COUNT" "$NM_VERSION" 2>/dev/null || echo -1)
	have=$(NOTMUCH_CONFIG=$NM/config notmuch count '*' 2>/dev/null || echo -2)
	if [ "${WEB_REINDEX:-0}" != 1 ] && [ "$want" = "$have" ]; then
		NM_REUSED=1
		NM_NEW_S=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["seconds"])' "$NM_MARK")
		log "reusing the notmuch database $NM/db ($have messages, indexed in $NM_NEW_S s)"
	else
		rm -rf "$NM/db" "$NM_MARK"
		mkdir -p "$NM/db"
		log "notmuch new on $MAILDIR into $NM/db (the peer's index; kept for later runs)"
		t0=$(date +%s.%N)
		NOTMUCH_CONFIG=$NM/config notmuch new --quiet >"$LOG/notmuch-new.log" 2>&1 ||
			die "notmuch new failed  [$LOG/notmuch-new.log]"
		NM_NEW_S=$(python3 -c "print(round($(date +%s.%N) - $t0, 1))")
		have=$(NOTMUCH_CONFIG=$NM/config notmuch count '*') || die "notmuch count failed after notmuch new"
		python3 -c 'import json,sys; json.dump({"corpus": sys.argv[2], "count": int(sys.argv[3]), "notmuch": sys.argv[4], "messages": int(sys.argv[5]), "seconds": float(sys.argv[6])}, open(sys.argv[1], "w"))' \
			"$NM_MARK" "$CORPUS" "$COUNT" "$NM_VERSION" "$have" "$NM_NEW_S"
	fi
fi

# ---------------------------------------------------------------- mailvault: one archive
log "init $D"
"$BIN" --data-dir "$D" init >"$LOG/init.out" 2>"$LOG/init.err" || die "init failed  [$LOG/init.err]"
ADMIN_PW=$(sed -n 's/.*first administrator: admin, password: \([^ ]*\).*/\1/p' "$LOG/init.out")
[ -n "$ADMIN_PW" ] || die "init printed no administrator password  [$LOG/init.out]"
sed -i 's/\(password: \)[^ ]*/\1(hidden)/; s/\(Recovery key: \).*/\1(hidden)/' "$LOG/init.out"
log "importing $COUNT messages (Maildir) into archive bench"
timed=()
[ -n "$TIME" ] && timed=("$TIME" -f '%M %e' -o "$LOG/import.time")
rc=0
"${timed[@]}" "$BIN" --data-dir "$D" import "$MAILDIR" --archive bench --format maildir --json --quiet \
	>"$LOG/import.json" 2>"$LOG/import.err" || rc=$?
[ "$rc" = 0 ] || [ "$rc" = 3 ] || die "import exited $rc  [$LOG/import.err]"
IMPORTED=$(py imported "$LOG/import.json") || die "import printed no JSON report  [$LOG/import.json]"
[ "$IMPORTED" -ge 100 ] || die "only $IMPORTED messages imported  [$LOG/import.json]"
[ "$IMPORTED" = "$COUNT" ] || log "warning: $IMPORTED of $COUNT messages imported  [$LOG/import.json]"

USER_PW=$(py password)
"$BIN" --data-dir "$D" cmd CreateUser --userName=bench --privileges=login --loginPrivileges=web \
	--password="$USER_PW" >"$LOG/create-user.json" 2>"$LOG/create-user.err" || true
py succeeded "$LOG/create-user.json" 2>"$LOG/create-user.check" || die "CreateUser: $(cat "$LOG/create-user.check")"
"$BIN" --data-dir "$D" cmd SetUserPrivilegesOnFolder --userName=bench --folder=bench --privileges=read \
	>"$LOG/privileges.json" 2>"$LOG/privileges.err" || true
py succeeded "$LOG/privileges.json" 2>"$LOG/privileges.check" || die "SetUserPrivilegesOnFolder: $(cat "$LOG/privileges.check")"

# ---------------------------------------------------------------- query mix
MIXES=()
IFS=, read -r -a SEED_LIST <<<"$SEEDS"
for s in "${SEED_LIST[@]}"; do
	[ -n "$s" ] || continue
	python3 "$HERE/benchlib.py" querymix "$MAILDIR" "$WORK/querymix-$s" --seed "$s" >"$LOG/querymix-$s.txt" ||
		die "benchlib.py querymix --seed $s failed"
	MIXES+=("$WORK/querymix-$s.json")
done
NQ=$(py mix "$WORK/querymix.json" "$WORK/querymix.mailvault" "${MIXES[@]}")
log "query mix: $NQ queries (seeds $SEEDS, duplicates dropped)"

# ---------------------------------------------------------------- serve
API_PORT=$(py port)
WEB_PORT=$(py port)
log "mailvault serve: API 127.0.0.1:$API_PORT, Web Access 127.0.0.1:$WEB_PORT"
"$BIN" --data-dir "$D" serve --listen "127.0.0.1:$API_PORT" --web-listen "127.0.0.1:$WEB_PORT" \
	>"$LOG/serve.out" 2>"$LOG/serve.err" &
SERVER_PID=$!
for ((i = 0; i < 600; i++)); do
	grep -q 'serving (pid' "$LOG/serve.out" 2>/dev/null && break
	kill -0 "$SERVER_PID" 2>/dev/null || { SERVER_PID=""; die "mailvault serve exited  [$LOG/serve.err]"; }
	sleep 0.1
done
grep -q 'serving (pid' "$LOG/serve.out" || die "mailvault serve did not come up in 60 s  [$LOG/serve.out]"
grep -q '^Web Access: ' "$LOG/serve.out" || die "mailvault serve runs without Web Access  [$LOG/serve.out]"

cat >"$WORK/config.json" <<-EOF
{
 "web_url": "https://127.0.0.1:$WEB_PORT",
 "api_url": "https://127.0.0.1:$API_PORT",
 "user": "bench",
 "chromium": "$CHROMIUM",
 "querymix_json": "$WORK/querymix.json",
 "rounds": $ROUNDS,
 "warmup": $WARMUP,
 "pause_ms": 100,
 "step_timeout_ms": 60000,
 "web_json": "$OUT/web.json",
 "notmuch_json": "$OUT/notmuch.json",
 "engine_json": "$OUT/search-bench.json",
 "meta_json": "$OUT/meta.json",
 "results_json": "$OUT/results.json",
 "notmuch_config": "$NM/config"
}
EOF
rm -f "$OUT/web.json" "$OUT/notmuch.json" "$OUT/search-bench.json" "$OUT/meta.json" "$OUT/results.json"

LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg)
log "Chromium: cold first load, then $WARMUP warm-up + $ROUNDS rounds of $NQ queries (load average $LOAD_BEFORE)"
MEASURE_RC=0
WB_PASSWORD=$USER_PW WB_ADMIN_PASSWORD=$ADMIN_PW node "$NODEDIR/web_bench.mjs" measure "$WORK/config.json" \
	2> >(tee "$LOG/measure.err" >&2) || MEASURE_RC=$?
SERVER_THREADS=$(awk '$1 == "Threads:" {print $2}' "/proc/$SERVER_PID/status" 2>/dev/null || echo '?')
SERVER_HWM=$(awk '$1 == "VmHWM:" {print $2}' "/proc/$SERVER_PID/status" 2>/dev/null || echo 0)
log "stopping mailvault serve (SIGTERM)"
stop_server
[ "$STOP_RC" = 0 ] || { log "warning: mailvault serve exited $STOP_RC after SIGTERM  [$LOG/serve.err]"; note "mailvault serve exited $STOP_RC after SIGTERM (see $LOG/serve.err)."; }
[ -f "$OUT/web.json" ] || die "the browser run wrote no figures (exit $MEASURE_RC)  [$LOG/measure.err]"

# ---------------------------------------------------------------- references without the browser
log "mailvault search-bench --limit 51 --rounds 20 (in-process; the page's endpoint asks for 51)"
"$BIN" --data-dir "$D" search-bench "$WORK/querymix.mailvault" --limit 51 --rounds 20 \
	>"$OUT/search-bench.json" 2>"$LOG/search-bench.err" || {
	log "search-bench failed  [$LOG/search-bench.err]"; rm -f "$OUT/search-bench.json"; MEASURE_RC=1; }

NOTMUCH_RC=0
if [ "$HAVE_NOTMUCH" = 1 ]; then
	log "notmuch search --limit=50 --sort=newest-first: $WARMUP warm-up + $ROUNDS rounds per query"
	node "$NODEDIR/web_bench.mjs" notmuch "$WORK/config.json" 2> >(tee "$LOG/notmuch.err" >&2) || NOTMUCH_RC=$?
fi

# ---------------------------------------------------------------- report
note "Corpus: $IMPORTED messages of $CORPUS (bench/gen_corpus.py --seed 42), imported into one archive (bench); the user bench has read on folder bench and the web login privilege."
if [ "$HAVE_NOTMUCH" = 1 ]; then
	nm_how="took ${NM_NEW_S} s"
	[ "$NM_REUSED" = 1 ] && nm_how="was reused from an earlier run ($NM/indexed.json: it took ${NM_NEW_S} s)"
	note "notmuch $NM_VERSION: the index of the same Maildir (notmuch new) $nm_how; the database is outside the corpus (database.path + mail_root, as bench/run.sh). Each query is one whole process (start, database open, query, 50 threads of output), as a command-line user would run it."
else
	note "notmuch was not installed: no peer figures."
fi
note "Browser: $CHROMIUM, headless, 1280×800 (two-pane layout), via playwright-core $(node -p "require('$NODEDIR/node_modules/playwright-core/package.json').version" 2>/dev/null); the times are taken inside the page with performance.now() (Enter keydown / click in capture listeners; done when the DOM shows this query's rows and the next frame has run)."
note "Server: $BIN (built $(date -r "$BIN" '+%Y-%m-%d %H:%M'); HEAD $(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo '?') at run time), threads at the end $SERVER_THREADS, peak RSS $((SERVER_HWM / 1024)) MB; Chromium, Node and the server share the machine's $(nproc) cores over loopback TLS."
py meta "$OUT/meta.json" "count=$IMPORTED" "seeds=\"$SEEDS\"" "queries=$NQ" "loadavg_before=$LOAD_BEFORE" \
	"notmuch_new_s=$NM_NEW_S" "bin=\"$BIN\"" "corpus=\"$CORPUS\"" "invocation=\"$INVOCATION\"" \
	"import_json=$LOG/import.json" "import_time=$LOG/import.time" "notes_file=$NOTES"
node "$NODEDIR/web_bench.mjs" report "$WORK/config.json" || die "the report failed"

if [ "$MEASURE_RC" != 0 ] || [ "$NOTMUCH_RC" != 0 ]; then
	echo "run_web.sh: something broke (browser run exit $MEASURE_RC, notmuch exit $NOTMUCH_RC): see $LOG/*.err and the failures in $OUT/results.json" >&2
	exit 1
fi
