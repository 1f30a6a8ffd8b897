# bench/common.sh: what the benchmark scripts share, sourced after they set
# HERE, REPO, BUILD and LOG and defined log() and die().
#   bench_apt_install PACKAGE   install a Debian package (root only)
#   bench_need_gnu_time         GNU time for peak RSS, installed if missing
#   bench_release_binary        sets BIN: $MAILVAULT_BIN, else build-release/mailvault
#                               (built unless BUILD=0), as an absolute path
#   bench_gen_dir N             prints the cache directory of a generated corpus of N
#                               messages: $CACHE/gen-N-s$SEED-<hash of gen_corpus.py>
#   bench_gen_corpus N          makes sure that corpus exists (maildir, mbox and eml, as
#                               run.sh uses them), generating it once; sets GEN_DIR.
#                               Needs CACHE and SEED; returns 1 if generation failed.
#   bench_maildir_corpus N      sets MAILDIR_CORPUS to a generated corpus of N messages with a
#                               Maildir (run_maint.sh, run_1m.sh): $CACHE/gen-N-maildir, else a
#                               run.sh corpus gen-N-s42-*, else generates gen-N-maildir (seed 42)
#   bench_spamassassin_root     prints the SpamAssassin corpus' directory ({eml,maildir,mbox}),
#                               materialised once by ../shared/corpus/spamassassin into
#                               $MAILVAULT_CORPUS (default ~/.cache/mailvault-corpus); 1 if unavailable
#   bench_need_packages P...    installs the Debian packages among P that are missing, through
#                               tools/deps.sh bench (dies naming them if that fails)
#   bench_stop_pid PID TENTHS   SIGTERM to PID, up to TENTHS tenths of a second to exit, then
#                               SIGKILL; reaps it (a child of this shell); nothing if it is gone
#   bench_stop_group_state FILE NAME ROOT_GLOB
#                               FILE holds "PGID ROOT" of a server the Python side started:
#                               stops that process group (SIGTERM, 10 s, SIGKILL), logging NAME,
#                               removes ROOT when it matches ROOT_GLOB, then FILE (the scripts'
#                               traps: for when the Python side could not clean up itself)
#   bench_maint_mark MARK N CORPUS IMPORT_JSON WALL RSS_KB CPU LOAD BIN
#                               writes run_maint.sh's marker of a completed import of CORPUS into
#                               the data directory next to MARK, so that run_maint.sh reuses it

bench_apt_install() {
	command -v apt-get >/dev/null && [ "$(id -u)" = 0 ] || return 1
	log "installing Debian package $1"
	apt-get install -y -qq --no-install-recommends "$1" >/dev/null 2>&1 ||
		{ apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends "$1" >/dev/null 2>&1; }
}

bench_need_gnu_time() {
	[ -x /usr/bin/time ] || bench_apt_install time
	[ -x /usr/bin/time ] || die "GNU time (/usr/bin/time, Debian package 'time') is needed: tools/deps.sh bench"
}

bench_release_binary() {
	BIN=${MAILVAULT_BIN:-}
	if [ -z "$BIN" ]; then
		BIN=$REPO/build-release/mailvault
		if [ "$BUILD" = 1 ]; then
			log "building release binary in build-release/"
			(
				cd "$REPO" &&
				{ [ -d build-release ] || meson setup build-release --buildtype=release >"$LOG/build.log" 2>&1; } &&
				ninja -C build-release >>"$LOG/build.log" 2>&1
			) || log "release build failed (see $LOG/build.log); using the binary that is there, if any"
		fi
	fi
	[ -x "$BIN" ] || die "no mailvault binary at $BIN (set MAILVAULT_BIN)"
	BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
}

bench_gen_dir() {
	local h
	h=$(sha256sum "$HERE/gen_corpus.py" | cut -c1-10)
	echo "$CACHE/gen-$1-s$SEED-$h"
}

bench_gen_corpus() {
	local n=$1 old need avail
	GEN_DIR=$(bench_gen_dir "$n")
	if [ -f "$GEN_DIR/manifest.json" ]; then
		log "reusing cached corpus $GEN_DIR"
		return 0
	fi
	# stale caches of the same size (older generator) only waste disk
	for old in "$CACHE"/gen-"$n"-s"$SEED"-*; do
		[ -e "$old" ] && [ "$old" != "$GEN_DIR" ] && { log "removing stale corpus $old"; rm -rf "$old"; }
	done
	need=$((n * 7 * 3 / 1000))
	avail=$(df -Pm "$CACHE" | awk 'NR==2 {print $4}')
	[ "$avail" -gt "$need" ] || log "warning: ~${need} MB needed for the corpus, ${avail} MB free"
	log "generating $n messages into $GEN_DIR (cached for later runs)"
	rm -rf "$GEN_DIR"
	python3 "$HERE/gen_corpus.py" --count "$n" --seed "$SEED" --out "$GEN_DIR" \
		--formats maildir,mbox,eml --jobs 2 >&2 || { log "generation failed"; return 1; }
}

bench_maildir_corpus() {
	local n=$1 c need avail
	MAILDIR_CORPUS=$CACHE/gen-$n-maildir
	if [ ! -f "$MAILDIR_CORPUS/manifest.json" ]; then
		for c in "$CACHE"/gen-"$n"-s42-*; do
			if [ -f "$c/manifest.json" ] && [ -d "$c/maildir" ]; then MAILDIR_CORPUS=$c; break; fi
		done
	fi
	if [ -f "$MAILDIR_CORPUS/manifest.json" ]; then
		log "reusing corpus $MAILDIR_CORPUS"
		return 0
	fi
	need=$((n * 7 / 1000))
	avail=$(df -Pm "$CACHE" | awk 'NR==2 {print $4}')
	[ "$avail" -gt "$need" ] || die "the corpus needs ~${need} MB in $CACHE, ${avail} MB free"
	log "generating $n messages into $MAILDIR_CORPUS (Maildir, cached for later runs)"
	rm -rf "$MAILDIR_CORPUS"
	python3 "$HERE/gen_corpus.py" --count "$n" --seed 42 --out "$MAILDIR_CORPUS" --formats maildir --jobs 2 >&2 ||
		die "bench/gen_corpus.py failed"
}

bench_spamassassin_root() {
	local script root cmd
	script=$(dirname "$REPO")/shared/corpus/spamassassin
	[ -f "$script" ] || return 1
	cmd=("$script"); [ -x "$script" ] || cmd=(python3 "$script")
	root=$(timeout 1800 "${cmd[@]}" "${MAILVAULT_CORPUS:-$HOME/.cache/mailvault-corpus}" | tail -n 1) || return 1
	[ -d "$root/maildir" ] && [ -d "$root/eml" ] || return 1
	echo "$root"
}

bench_maint_mark() {
	python3 - "$@" <<-'PY'
	import json, sys, time
	mark, n, corpus, rep, wall, rss, cpu, load, binp = sys.argv[1:]
	r = json.load(open(rep))
	json.dump({"count": int(n), "corpus": corpus, "imported": r["imported"], "import": r,
	           "wall_s": float(wall), "peak_rss_kb": int(rss), "cpu_s": float(cpu),
	           "loadavg_before": float(load), "bin": binp,
	           "when": time.strftime("%Y-%m-%d %H:%M:%S")}, open(mark, "w"), indent=1)
	PY
}

bench_need_packages() {
	local p missing=""
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	log "missing:$missing; running tools/deps.sh bench"
	"$REPO/tools/deps.sh" bench || die "tools/deps.sh bench could not install:$missing"
}

bench_stop_pid() {
	local pid=$1 tenths=$2 i
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < tenths; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 0
}

bench_stop_group_state() {
	local file=$1 name=$2 glob=$3 pgid root i
	[ -f "$file" ] || return 0
	read -r pgid root <"$file"
	if [ "${pgid:-0}" -gt 1 ] 2>/dev/null && kill -0 -- "-$pgid" 2>/dev/null; then
		log "stopping $name (process group $pgid)"
		kill -TERM -- "-$pgid" 2>/dev/null
		for ((i = 0; i < 100; i++)); do kill -0 -- "-$pgid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL -- "-$pgid" 2>/dev/null
	fi
	# shellcheck disable=SC2053  # a glob on purpose: only our own temporary directories go
	[[ -n "$root" && $root == $glob ]] && rm -rf "$root"
	rm -f "$file"
}
