# The front door: a thin layer over Meson + Ninja.
#   make run    build and initialise/start the embedded default instance (./var)
#   make test   build with ASan+UBSan and run unit, system and fuzz tests
#   make bench  release build and benchmarks against notmuch and mu
#   make mutants  break one important check at a time; every mutant must be killed
#   make install  the binary, systemd unit, sample configuration and docs (PREFIX, DESTDIR)
#   make deb      the Debian package, in build-deb/ (lintian-checked)
.PHONY: all deps build run test bench mutants install deb clean

BUILD ?= build
DATA_DIR ?= $(CURDIR)/var
PREFIX ?= /usr/local

all: build

deps:
	@tools/deps.sh build

build: deps
	@[ -f $(BUILD)/build.ninja ] || meson setup $(BUILD) >/dev/null
	@ninja -C $(BUILD)

run: build
	@tools/run.sh $(BUILD)/mailvault "$(DATA_DIR)"

# Installs what `meson install` installs (dist/meson.build lists it) under
# $(DESTDIR)$(PREFIX); the service's data and configuration places are fixed
# (/var/lib/mailvault, /etc/mailvault).  Then, as root: systemd-sysusers,
# systemctl daemon-reload, systemctl enable --now mailvault.
install: build
	@meson configure $(BUILD) -Dprefix=$(PREFIX) >/dev/null
	@meson install -C $(BUILD) --quiet $(if $(DESTDIR),--destdir "$(DESTDIR)")

deb:
	@tools/deps.sh deb
	@tools/make_deb.sh

test:
	@tools/deps.sh test
	@tools/test.sh

bench:
	@tools/deps.sh bench
	@bench/run.sh

# Outside `make test`: each mutant is a rebuild and a test run (tools/mutants.py).
mutants:
	@tools/deps.sh test
	@tools/mutants.py

clean:
	rm -rf build build-asan build-fuzz build-release
