# bench/common.sh: what the benchmark scripts share, sourced after they set
# HERE, REPO, BUILD and LOG and defined log() and die().
#   bench_apt_install PACKAGE   install a Debian package (root only)
#   bench_need_gnu_time         GNU time for peak RSS, installed if missing
#   bench_release_binary        sets BIN: $MAILVAULT_BIN, else build-release/mailvault
#                               (built unless BUILD=0), as an absolute path

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
