#!/bin/sh
# Installs the Debian packages mailvault needs to build, test, benchmark and package.
# As root it runs apt-get for whatever is missing; otherwise it names exactly
# what is missing and fails.  Usage: tools/deps.sh [build|test|bench|deb]
set -eu
what=${1:-build}
build="gcc meson ninja-build pkg-config libgmime-3.0-dev libglib2.0-dev libsodium-dev libzstd-dev libjansson-dev libreadline-dev libssl-dev libmicrohttpd-dev libcurl4-openssl-dev libxml2-dev liboath-dev libqrencode-dev libpff-dev libbfio-dev libgsf-1-dev libpoppler-glib-dev libzip-dev libseccomp-dev catdoc libevent-dev"
test_pkgs="debhelper dpkg-dev fakeroot lintian libcmocka-dev python3 python3-pytest python3-pytest-xdist clang libclang-rt-14-dev openssl chromium pst-utils poppler-utils libreoffice-writer-nogui libreoffice-calc-nogui libreoffice-impress-nogui dovecot-imapd dovecot-pop3d isync offlineimap neomutt tmux postfix swaks dovecot-lmtpd"
deb_pkgs="debhelper dpkg-dev fakeroot lintian"
bench_pkgs="notmuch maildir-utils time wrk pst-utils poppler-utils docx2txt dovecot-imapd dovecot-pop3d isync offlineimap openssl postfix dovecot-lmtpd"
case "$what" in
  build) pkgs="$build" ;;
  test) pkgs="$build $test_pkgs" ;;
  bench) pkgs="$build $bench_pkgs" ;;
  deb) pkgs="$build $deb_pkgs" ;;
  *) echo "usage: $0 [build|test|bench|deb]" >&2; exit 2 ;;
esac
# The test corpus is fetched with npm; a Node.js installed outside Debian's
# packages serves as well as Debian's npm.
case "$what" in test) command -v npm >/dev/null 2>&1 || pkgs="$pkgs npm" ;; esac
missing=""
# SQLCipher 4 (the store's db and index, encrypted) is in bookworm-backports
# only; bookworm's own libsqlcipher-dev 3.4 reads no SQLCipher 4 file.
# Backports packages are installed only when asked for by -t, so adding the
# source changes nothing else on the machine.
sqlcipher_ok() {
  v=$(dpkg-query -W -f='${Version}' libsqlcipher-dev 2>/dev/null) || return 1
  dpkg --compare-versions "$v" ge 4.5
}
need_sqlcipher=""
sqlcipher_ok || need_sqlcipher=1
case "$what" in test|bench) for p in sqlcipher python3-nacl; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_sqlcipher=1
done ;; esac
for p in $pkgs; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && [ -z "$need_sqlcipher" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  [ -n "$missing" ] && echo "mailvault: missing Debian packages:$missing" >&2 &&
    echo "install them with: sudo apt-get install$missing" >&2
  [ -n "$need_sqlcipher" ] && echo "mailvault: missing libsqlcipher-dev 4.5 or newer: enable bookworm-backports" \
    "and run: sudo apt-get install -t bookworm-backports libsqlcipher-dev sqlcipher" >&2
  exit 1
fi
[ -n "$missing" ] && echo "mailvault: installing missing Debian packages:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
if [ -n "$need_sqlcipher" ]; then
  src=/etc/apt/sources.list.d/mailvault-bookworm-backports.sources
  if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' > "$src"
  fi
fi
apt-get update -qq >/dev/null
if [ -n "$need_sqlcipher" ]; then
  echo "mailvault: installing libsqlcipher-dev from bookworm-backports" >&2
  extra=""; case "$what" in test|bench) extra="sqlcipher python3-nacl" ;; esac
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends -t bookworm-backports libsqlcipher-dev $extra >/dev/null
fi
[ -z "$missing" ] && exit 0
# Postfix is only run by the tests and benchmarks, each in a directory of
# its own on loopback: "No configuration" keeps the package from writing a
# system main.cf and starting a daemon on port 25 of every interface.
case "$missing" in *postfix*)
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections ;;
esac
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
