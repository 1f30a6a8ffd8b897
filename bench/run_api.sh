#!/usr/bin/env bash
# mailvault Administration API throughput and latency: wrk over TLS, keep-alive,
# against `mailvault serve`, with bench/api_bench.lua (POST, Basic auth, form
# body; every response must be 200 with "statusCode":"succeeded").  Measured:
# GetServerInfo (tiny reply), GetMessages on alice/Inbox (the whole
# SpamAssassin corpus, ~6,000 messages: the reply lists them all; once more
# with a single connection) and on alice/Small (50 messages).  Server RSS is
# read from /proc before and after each run.  Same-machine reference ("peer"): nginx serving a copy of the
# GetServerInfo reply as a static file over TLS with the same certificate,
# same wrk settings; the mailvault/nginx ratio is printed.  nginx is used only
# if it is installed (Debian package nginx-light or nginx); otherwise that row
# is skipped.  Figures print; a figure missing a target fails nothing.  The
# script exits 1 at the end if any request failed (non-200, a body without
# "succeeded", or a socket error), after printing every figure.
#
# usage: bench/run_api.sh [SECONDS]   (length of each wrk run, default 20)
# Env: MAILVAULT_BIN        binary (default build-release/mailvault; this script does not build)
#      MAILVAULT_CORPUS     where ../shared/corpus/spamassassin materialises the corpus
#                           (default ~/.cache/mailvault-corpus); without it, bench/gen_corpus.py
#                           makes 6,046 messages instead (cached in MAILVAULT_BENCH_DIR)
#      MAILVAULT_BENCH_DIR  generated-corpus cache (default bench/out/corpora)
#      API_OUT              wrk output, reports and server logs (default bench/out/api)
#      API_THREADS, API_CONNECTIONS   wrk -t and -c (default 2 and 32)
#      API_TIMEOUT=S        wrk --timeout (default 60: a whole-Inbox GetMessages takes seconds)
#      API_PERF=1           also `perf record -g` the server during each mailvault run
#                           (LOG/perf-NAME.txt); perf slows the server, so figures are lower
#      API_KEEP=1           keep the temporary data directory
#      API_RUNS="inbox ..." only these runs, of: info inbox small inbox1 nginx (default all;
#                           bench/run_1m.sh takes inbox alone)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
INVOCATION="$0${1:+ $1}"
for v in API_RUNS API_PERF API_TIMEOUT API_CONNECTIONS API_THREADS API_OUT MAILVAULT_BENCH_DIR MAILVAULT_CORPUS MAILVAULT_BIN; do
	[ -n "${!v:-}" ] && INVOCATION="$v=${!v} $INVOCATION"
done

case ${1:-} in -h|--help) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
[ $# -le 1 ] || { echo "run_api.sh: usage: bench/run_api.sh [SECONDS]" >&2; exit 2; }
SECS=${1:-20}
case $SECS in ''|*[!0-9]*|0) echo "run_api.sh: SECONDS must be a positive whole number, not '$SECS'" >&2; exit 2 ;; esac

BIN=${MAILVAULT_BIN:-$REPO/build-release/mailvault}
CACHE=${MAILVAULT_BENCH_DIR:-$REPO/bench/out/corpora}
OUT=${API_OUT:-$REPO/bench/out/api}
THREADS=${API_THREADS:-2}
CONNS=${API_CONNECTIONS:-32}
TIMEOUT=${API_TIMEOUT:-60}
RUNS=" ${API_RUNS:-info inbox small inbox1 nginx} "
LUA=$HERE/api_bench.lua
LOG=$OUT/logs
SMALL=50                    # messages in alice/Small
GEN_COUNT=6046              # fallback corpus: as many messages as SpamAssassin

log() { printf '[api %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'run_api.sh: FAILED: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- helpers (python3 stdlib)
PY=$(cat <<'PY'
import base64, json, os, socket, ssl, sys, urllib.error, urllib.parse, urllib.request

mode, args = sys.argv[1], sys.argv[2:]
BOM = b"\xef\xbb\xbf"

if mode == "port":               # a free loopback port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])

elif mode == "sum":              # FILE...: total "imported" of import --json summaries
    print(sum(json.load(open(p))["imported"] for p in args))

elif mode == "probe":            # URL CERT PASSWORD OUTFILE FOLDER...: one call of each function
    url, cert, pw, outfile, folders = args[0], args[1], args[2], args[3], args[4:]
    ctx = ssl.create_default_context(cafile=cert)
    auth = "Basic " + base64.b64encode(("admin:" + pw).encode()).decode()
    def post(fn, form):
        req = urllib.request.Request(url + "/api/invoke/" + fn, data=urllib.parse.urlencode(form).encode(),
                                     method="POST")
        req.add_header("Authorization", auth)
        req.add_header("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=600) as r:
                raw = r.read()
        except urllib.error.HTTPError as e:
            sys.exit(f"{fn} {form}: HTTP {e.code}: {e.read()[:300]!r}")
        env = json.loads(raw[3:] if raw.startswith(BOM) else raw)
        if env.get("statusCode") != "succeeded":
            sys.exit(f"{fn} {form}: {env.get('statusCode')}: {env.get('error')}")
        return raw, env
    raw, _ = post("GetServerInfo", {})
    with open(outfile, "wb") as f:
        f.write(raw)
    out = [str(len(raw))]
    for folder in folders:
        raw, env = post("GetMessages", {"folder": folder})
        out += [str(len(env["result"])), str(len(raw))]
    print(" ".join(out))

elif mode == "report":           # ROWS_TSV NOTES_FILE INVOCATION
    rows = []
    for line in open(args[0]):
        if not line.strip():
            continue
        label, msgs, size, report, rss0, rss1, hwm, thr, load, rc = line.rstrip("\n").split("\t")
        r = {}
        for kv in open(report):
            k, _, v = kv.strip().partition("=")
            r[k] = float(v)
        r.update(label=label, msgs=msgs, size=int(size), rss0=int(rss0), rss1=int(rss1), hwm=int(hwm),
                 threads=thr, load=float(load), rc=int(rc))
        rows.append(r)
    mb = lambda kb: f"{kb / 1024:,.0f} MB" if kb else "n/a"
    ms = lambda us: f"{us / 1000:,.2f}" if us < 100000 else f"{us / 1000:,.0f}"
    fails = lambda r: f"{r['non200']:.0f} / {r['unsucceeded']:.0f} / " \
        f"{r['err_connect'] + r['err_read'] + r['err_write'] + r['err_timeout']:.0f}"
    print()
    print(f"{'run':44} {'msgs':>6} {'reply B':>9} {'req/s':>9} {'MB/s':>7} {'p50 ms':>8} {'p99 ms':>8}"
          f" {'fail 200/succ/sock':>18}  RSS before -> after (peak)")
    for r in rows:
        print(f"{r['label']:44} {r['msgs']:>6} {r['size']:>9,} {r['rps']:>9,.0f} {r['bytes'] / r['duration_s'] / 1e6:>7.1f}"
              f" {ms(r['lat_p50_us']):>8} {ms(r['lat_p99_us']):>8} {fails(r):>18}"
              f"  {mb(r['rss0'])} -> {mb(r['rss1'])} ({mb(r['hwm'])})")
    print()
    print("| run | messages in reply | reply bytes | req/s | MB/s | p50 ms | p99 ms |"
          " failed (non-200 / no \"succeeded\" / socket) | server RSS before → after (peak) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['label']} | {r['msgs']} | {r['size']:,} | {r['rps']:,.0f} |"
              f" {r['bytes'] / r['duration_s'] / 1e6:,.1f} | {ms(r['lat_p50_us'])} | {ms(r['lat_p99_us'])} |"
              f" {fails(r)} | {mb(r['rss0'])} → {mb(r['rss1'])} ({mb(r['hwm'])}) |")
    print()
    mv = [r for r in rows if r["label"].startswith("mailvault GetServerInfo")]
    ng = [r for r in rows if r["label"].startswith("nginx")]
    if mv and ng:
        a, b = mv[0], ng[0]
        print(f"Ratio mailvault/nginx, GetServerInfo: req/s {a['rps'] / b['rps']:.2f}×"
              f" ({a['rps']:,.0f} vs {b['rps']:,.0f}); p50 latency {a['lat_p50_us'] / b['lat_p50_us']:.2f}×,"
              f" p99 {a['lat_p99_us'] / b['lat_p99_us']:.2f}×.")
    busy = [f"{r['label']} {r['load']:.1f}" for r in rows if r["load"] > (os.cpu_count() or 1) / 2]
    for line in open(args[1]):
        print(line.rstrip("\n"))
    if busy:
        print(f"Machine busy (load average above {(os.cpu_count() or 1) / 2:g} before the run): {', '.join(busy)}.")
    print()
    print("```sh")
    print(args[2])
    print("```")
    bad = sum(r["rc"] != 0 for r in rows)
    sys.exit(1 if bad else 0)
PY
)
py() { python3 -c "$PY" "$@"; }

[ -x "$BIN" ] || die "no mailvault binary at $BIN (build it: meson setup build-release --buildtype=release && ninja -C build-release; or set MAILVAULT_BIN)"
"$BIN" serve --help >/dev/null 2>&1 || die "$BIN has no 'serve' command; use a newer build"
command -v wrk >/dev/null || die "wrk is needed (Debian package wrk; tools/deps.sh bench installs it)"
command -v python3 >/dev/null || die "python3 is needed"

mkdir -p "$OUT"
rm -rf "$LOG"; mkdir -p "$LOG"
ROWS=$LOG/rows.tsv
NOTES=$LOG/notes.txt
: >"$ROWS"; : >"$NOTES"
note() { echo "$*" >>"$NOTES"; }

T=$(mktemp -d "${TMPDIR:-/tmp}/mv-api-bench.XXXXXX")
chmod 711 "$T"              # nginx workers (user nobody when started as root) read T/www
D=$T/data
SERVER_PID=""
NGINX_PID=""
STOP_RC=0
stop_pid() {  # stop_pid PID: SIGTERM, wait up to 120 s, then SIGKILL; sets STOP_RC to its exit status
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 1200; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
	STOP_RC=0
	wait "$pid" 2>/dev/null || STOP_RC=$?
}
cleanup() {
	if [ -n "$SERVER_PID" ]; then stop_pid "$SERVER_PID"; fi
	if [ -n "$NGINX_PID" ]; then stop_pid "$NGINX_PID"; fi
	if [ "${API_KEEP:-0}" = 1 ]; then log "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT

# ---------------------------------------------------------------- corpus
EML=""
CORPUS_NOTE=""
script=$(dirname "$REPO")/shared/corpus/spamassassin
if [ -f "$script" ]; then
	cmd=("$script"); [ -x "$script" ] || cmd=(python3 "$script")
	if root=$(timeout 1800 "${cmd[@]}" "${MAILVAULT_CORPUS:-$HOME/.cache/mailvault-corpus}" 2>"$LOG/corpus.err" | tail -n 1) &&
		[ -d "$root/eml" ]; then
		EML=$root/eml
		CORPUS_NOTE="SpamAssassin corpus ($EML)"
	else
		log "cannot materialise the SpamAssassin corpus (see $LOG/corpus.err); using bench/gen_corpus.py"
	fi
fi
if [ -z "$EML" ]; then
	GEN=$CACHE/gen-$GEN_COUNT-eml
	if [ ! -f "$GEN/manifest.json" ]; then
		log "generating $GEN_COUNT messages into $GEN (EML, cached)"
		rm -rf "$GEN"; mkdir -p "$CACHE"
		python3 "$HERE/gen_corpus.py" --count "$GEN_COUNT" --seed 42 --out "$GEN" --formats eml --jobs 2 >&2 ||
			die "bench/gen_corpus.py failed"
	fi
	EML=$GEN/eml
	CORPUS_NOTE="generated corpus ($EML, bench/gen_corpus.py --seed 42; the SpamAssassin corpus was unavailable)"
fi

# ---------------------------------------------------------------- data directory
log "init $D"
"$BIN" --data-dir "$D" init >"$LOG/init.out" 2>"$LOG/init.err" || die "init failed  [$LOG/init.err]"
PW=$(sed -n 's/.*first administrator: admin, password: \([^ ]*\).*/\1/p' "$LOG/init.out")
[ -n "$PW" ] || die "init printed no administrator password  [$LOG/init.out]"
sed -i 's/\(password: \)[^ ]*/\1(hidden)/; s/\(Recovery key: \).*/\1(hidden)/' "$LOG/init.out"

# alice/Inbox: every message of the corpus.  Each directory is imported on its
# own into Inbox (a recursive import would make one subfolder per directory).
log "importing $EML into alice/Inbox"
i=0
while IFS= read -r -d '' dir; do
	ls "$dir"/*.eml >/dev/null 2>&1 || continue
	i=$((i + 1))
	"$BIN" --data-dir "$D" import "$dir" --archive alice --folder Inbox --no-subfolders --json --quiet \
		>"$LOG/import-inbox-$i.json" 2>"$LOG/import-inbox-$i.err" || die "import of $dir failed  [$LOG/import-inbox-$i.err]"
done < <(find "$EML" -type d -print0 | sort -z)
INBOX_IMPORTED=$(py sum "$LOG"/import-inbox-*.json)
# alice/Small: the first 50 messages of the corpus again, in a folder of their own.
mkdir -p "$T/small"
find "$EML" -type f -name '*.eml' | sort | awk -v n="$SMALL" 'NR <= n' | nl -w3 -nrz | while read -r n f; do
	cp "$f" "$T/small/$n.eml"
done
"$BIN" --data-dir "$D" import "$T/small" --archive alice --folder Small --json --quiet \
	>"$LOG/import-small.json" 2>"$LOG/import-small.err" || die "import of $T/small failed  [$LOG/import-small.err]"

# ---------------------------------------------------------------- server
PORT=$(py port)
log "mailvault serve on 127.0.0.1:$PORT"
"$BIN" --data-dir "$D" serve --listen "127.0.0.1:$PORT" >"$LOG/serve.out" 2>"$LOG/serve.err" &
SERVER_PID=$!
for ((i = 0; i < 600; i++)); do
	grep -q 'serving (pid' "$LOG/serve.out" 2>/dev/null && break
	kill -0 "$SERVER_PID" 2>/dev/null || die "mailvault serve exited  [$LOG/serve.err]"
	sleep 0.1
done
grep -q 'serving (pid' "$LOG/serve.out" || die "mailvault serve did not come up in 60 s  [$LOG/serve.out]"
URL=https://127.0.0.1:$PORT
CERT=$D/certs/server.crt
KEY=$D/certs/server.key

mkdir -p "$T/www/api/invoke"
read -r INFO_BYTES INBOX_N INBOX_BYTES SMALL_N SMALL_BYTES < <(
	py probe "$URL" "$CERT" "$PW" "$T/www/api/invoke/GetServerInfo" alice/Inbox alice/Small) ||
	die "the first API calls failed (see above)"
[ "$INBOX_N" = "$INBOX_IMPORTED" ] || log "warning: GetMessages lists $INBOX_N messages in alice/Inbox, $INBOX_IMPORTED were imported"
[ "$SMALL_N" = "$SMALL" ] || log "warning: GetMessages lists $SMALL_N messages in alice/Small, not $SMALL"
log "alice/Inbox: $INBOX_N messages (reply $INBOX_BYTES bytes); alice/Small: $SMALL_N ($SMALL_BYTES bytes); GetServerInfo reply $INFO_BYTES bytes"

# status_kb PID FIELD: a /proc/PID/status figure (VmRSS, VmHWM, Threads), summed over PID and its children
status_kb() {
	local total=0 p v
	for p in $1 $(cat "/proc/$1/task/"*/children 2>/dev/null); do
		v=$(awk -v f="$2:" '$1 == f {print $2}' "/proc/$p/status" 2>/dev/null || true)
		total=$((total + ${v:-0}))
	done
	echo "$total"
}

# settle PID: waits (up to 120 s) until PID and its children use no more CPU for 0.5 s, so that
# requests wrk left in flight at its end are finished before RSS is read and the next run starts
cpu_ticks() {
	local total=0 p v
	for p in $1 $(cat "/proc/$1/task/"*/children 2>/dev/null); do
		v=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || true)
		total=$((total + ${v:-0}))
	done
	echo "$total"
}
settle() {
	local prev now i
	prev=$(cpu_ticks "$1")
	for ((i = 0; i < 240; i++)); do
		sleep 0.5
		now=$(cpu_ticks "$1")
		[ "$now" = "$prev" ] && return 0
		prev=$now
	done
	log "warning: $1 still busy 120 s after wrk ended"
}

FAILED=0
wanted() { case $RUNS in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
# bench NAME LABEL PID MESSAGES REPLY_BYTES URL FORM [THREADS CONNECTIONS]: one wrk run; appends a row
bench() {
	local name=$1 label=$2 pid=$3 msgs=$4 size=$5 url=$6 form=$7 threads=${8:-$THREADS} conns=${9:-$CONNS}
	local load rss0 rss1 hwm thr rc=0 perf_pid=""
	wanted "$name" || return 0
	load=$(cut -d' ' -f1 /proc/loadavg)
	rss0=$(status_kb "$pid" VmRSS)
	log "$label: wrk -t$threads -c$conns -d${SECS}s (load $load, server RSS $((rss0 / 1024)) MB)"
	if [ "${API_PERF:-0}" = 1 ] && [ "$name" != nginx ] && command -v perf >/dev/null; then
		perf record -g -p "$pid" -o "$LOG/perf-$name.data" -- sleep "$SECS" >"$LOG/perf-$name.err" 2>&1 &
		perf_pid=$!
	fi
	echo "API_FORM='$form' wrk -t$threads -c$conns -d${SECS}s --timeout ${TIMEOUT}s --latency -s $LUA $url" >>"$LOG/commands.txt"
	API_PASSWORD=$PW API_FORM=$form API_REPORT=$LOG/$name.report \
		wrk -t"$threads" -c"$conns" -d"${SECS}s" --timeout "${TIMEOUT}s" --latency -s "$LUA" "$url" \
		>"$LOG/$name.wrk" 2>&1 || rc=$?
	settle "$pid"
	rss1=$(status_kb "$pid" VmRSS)
	hwm=$(status_kb "$pid" VmHWM)
	thr=$(status_kb "$pid" Threads)
	if [ -n "$perf_pid" ]; then
		wait "$perf_pid" || true
		perf report -i "$LOG/perf-$name.data" --stdio --no-children -g none --sort dso,sym --percent-limit 0.5 \
			>"$LOG/perf-$name.txt" 2>/dev/null || true
	fi
	sed 's/^/    /' "$LOG/$name.wrk" >&2
	[ -s "$LOG/$name.report" ] || die "$label: wrk wrote no figures (exit $rc)  [$LOG/$name.wrk]"
	[ "$rc" = 0 ] || { FAILED=$((FAILED + 1)); log "$label: requests failed (wrk exit $rc)"; }
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$msgs" "$size" "$LOG/$name.report" \
		"$rss0" "$rss1" "$hwm" "$thr" "$load" "$rc" >>"$ROWS"
}

bench info "mailvault GetServerInfo" "$SERVER_PID" - "$INFO_BYTES" "$URL/api/invoke/GetServerInfo" ""
bench inbox "mailvault GetMessages alice/Inbox" "$SERVER_PID" "$INBOX_N" "$INBOX_BYTES" \
	"$URL/api/invoke/GetMessages" "folder=alice%2FInbox"
bench small "mailvault GetMessages alice/Small" "$SERVER_PID" "$SMALL_N" "$SMALL_BYTES" \
	"$URL/api/invoke/GetMessages" "folder=alice%2FSmall"
# the whole Inbox once more with one connection: the time of one request on an otherwise idle server
bench inbox1 "mailvault GetMessages alice/Inbox, -t1 -c1" "$SERVER_PID" "$INBOX_N" "$INBOX_BYTES" \
	"$URL/api/invoke/GetMessages" "folder=alice%2FInbox" 1 1
THREADS_AFTER=$(status_kb "$SERVER_PID" Threads)
stop_pid "$SERVER_PID"; SERVER_PID=""
[ "$STOP_RC" = 0 ] || log "warning: mailvault serve exited $STOP_RC after SIGTERM  [$LOG/serve.err]"

# ---------------------------------------------------------------- nginx, the same-machine reference
if ! wanted nginx; then
	:
elif command -v nginx >/dev/null; then
	NPORT=$(py port)
	mkdir -p "$T/nginx"
	cat >"$T/nginx/nginx.conf" <<-EOF
		worker_processes 2;
		pid $T/nginx/nginx.pid;
		error_log $T/nginx/error.log warn;
		events { worker_connections 1024; }
		http {
		    access_log off;
		    default_type application/json;
		    keepalive_requests 1000000;   # wrk keeps its 32 connections, as with mailvault
		    keepalive_timeout 120s;
		    client_body_temp_path $T/nginx/body;
		    proxy_temp_path $T/nginx/proxy;
		    fastcgi_temp_path $T/nginx/fastcgi;
		    uwsgi_temp_path $T/nginx/uwsgi;
		    scgi_temp_path $T/nginx/scgi;
		    server {
		        listen 127.0.0.1:$NPORT ssl;
		        ssl_certificate $CERT;
		        ssl_certificate_key $KEY;
		        root $T/www;
		        # a POST to a static file is 405: serve the file instead
		        location / { error_page 405 =200 \$uri; }
		    }
		}
	EOF
	log "nginx $(nginx -v 2>&1 | sed 's/.*\///') on 127.0.0.1:$NPORT"
	nginx -p "$T/nginx" -c "$T/nginx/nginx.conf" -e "$T/nginx/error.log" -g 'daemon off;' \
		>"$LOG/nginx.out" 2>&1 &
	NGINX_PID=$!
	ok=0
	for ((i = 0; i < 100; i++)); do
		if python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$NPORT" 2>/dev/null; then
			ok=1; break
		fi
		kill -0 "$NGINX_PID" 2>/dev/null || break
		sleep 0.1
	done
	if [ "$ok" = 1 ]; then
		sleep 0.5   # the workers
		bench nginx "nginx, static copy of GetServerInfo" "$NGINX_PID" - "$INFO_BYTES" \
			"https://127.0.0.1:$NPORT/api/invoke/GetServerInfo" ""
		note "nginx $(nginx -v 2>&1 | sed 's/.*\///'): 2 worker processes, the same certificate and key, keepalive_requests 1000000; its RSS is the master's plus the workers'."
	else
		log "nginx did not start  [$LOG/nginx.out, $T/nginx/error.log]"
		note "nginx reference skipped: nginx did not start."
	fi
	stop_pid "$NGINX_PID"; NGINX_PID=""
else
	log "nginx is not installed: the reference run is skipped (apt-get install nginx-light)"
	note "nginx reference skipped: nginx is not installed."
fi

note "wrk 4 corrects its latency histogram for coordinated omission (stats_correct adds synthetic samples for every response slower than the mean interval), so a few stalls raise p99 more than their count suggests."
note "Before the runs, one request per function (stdlib client) fills the server's credential cache: a cold start with $CONNS connections would first queue $CONNS Argon2id verifications."
note "wrk counts the requests that completed within the run; requests still in flight at its end are dropped (up to $CONNS whole-Inbox replies), and the server finishes them before RSS \"after\" is read."
note "alice/Inbox holds $INBOX_N messages of the $CORPUS_NOTE; GetMessages returns all of them in one reply. alice/Small holds the first $SMALL_N of them again."
note "wrk $(wrk -v 2>&1 | sed -n '1s/ \[.*//p' | sed 's/^wrk //'), -t$THREADS -c$CONNS -d${SECS}s --timeout ${TIMEOUT}s, keep-alive, TLS; bench/api_bench.lua checks every response (status 200 and \"statusCode\":\"succeeded\")."
note "Machine: $(nproc) cores, loopback; wrk and the server share the cores. Binary $BIN ($(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo '?')); server threads after the runs: $THREADS_AFTER. Logs in $LOG."
log "done"
status=0
py report "$ROWS" "$NOTES" "$INVOCATION" || status=$?
if [ "$FAILED" != 0 ] || [ "$status" != 0 ]; then
	echo "run_api.sh: requests failed in $FAILED run(s); see the counts above and $LOG/*.wrk" >&2
	exit 1
fi
