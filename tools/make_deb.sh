#!/bin/sh
# `make deb`: the Debian package, built by dpkg-buildpackage in a copy of the
# source tree under build-deb/ (its build files and the .deb land there, not
# in the checkout or its parent), then checked by lintian: an error fails.
# Usage: tools/make_deb.sh [OUTDIR]   (default build-deb)
set -eu
cd "$(dirname "$0")/.."
out=${1:-build-deb}
version=$(dpkg-parsechangelog -S Version)
src="$out/mailvault-$version"
rm -rf "$out"
mkdir -p "$src"
# The tree as it is (uncommitted changes included), without build output.
tar --exclude-vcs --exclude='./build' --exclude='./build-*' --exclude='./var' --exclude='./bench/out' \
    --exclude='node_modules' --exclude='__pycache__' -cf - . | tar -xf - -C "$src"
(cd "$src" && dpkg-buildpackage -us -uc -b >../dpkg-buildpackage.log 2>&1) || {
  tail -40 "$out/dpkg-buildpackage.log" >&2
  echo "make deb: dpkg-buildpackage failed (whole log: $out/dpkg-buildpackage.log)" >&2
  exit 1
}
rm -rf "$src"
deb=$(ls "$out"/mailvault_"$version"_*.deb)
lintian --fail-on error --suppress-tags bad-distribution-in-changes-file "$out"/mailvault_"$version"_*.changes \
  >"$out/lintian.log" 2>&1 || { cat "$out/lintian.log" >&2; echo "make deb: lintian found errors" >&2; exit 1; }
echo "$deb"
