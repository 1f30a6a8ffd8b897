"""The product builds without any test package (issue 10): `make run` on a
fresh machine installs only the build packages, so a plain configure must
never need cmocka again.  A real configure and build of the mailvault
binary in a scratch directory, with cmocka hidden: from pkg-config (a
PKG_CONFIG_LIBDIR that lists every .pc file but cmocka's) and from Meson's
CMake lookup (a `cmake` first in PATH that does not run), the two ways
Meson finds it on this machine."""

import os
import subprocess

import pytest

from mvtest import REPO_ROOT

pytestmark = pytest.mark.xdist_group("plain_build")


def pc_dirs():
    out = subprocess.run(["pkg-config", "--variable", "pc_path", "pkg-config"], capture_output=True, text=True,
                         check=True).stdout.strip()
    return [d for d in out.split(":") if os.path.isdir(d)]


def without_cmocka(root):
    """A pkg-config directory with every .pc file of the machine but cmocka's."""
    pc = os.path.join(str(root), "pc")
    os.makedirs(pc)
    for d in pc_dirs():
        for name in os.listdir(d):
            if name.endswith(".pc") and name != "cmocka.pc" and not os.path.exists(os.path.join(pc, name)):
                os.symlink(os.path.join(d, name), os.path.join(pc, name))
    return pc


def broken_cmake(root):
    bin_dir = os.path.join(str(root), "bin")
    os.makedirs(bin_dir)
    with open(os.path.join(bin_dir, "cmake"), "w") as f:
        f.write("#!/bin/sh\nexit 1\n")
    os.chmod(os.path.join(bin_dir, "cmake"), 0o755)
    return bin_dir


def test_plain_build_needs_no_test_package(tmp_path):
    pc = without_cmocka(tmp_path)
    env = dict(os.environ, PKG_CONFIG_LIBDIR=pc, PKG_CONFIG_PATH="",
               PATH=broken_cmake(tmp_path) + os.pathsep + os.environ["PATH"])
    # the hiding works: cmocka is installed here (make test needs it), but
    # not visible through this directory
    assert subprocess.run(["pkg-config", "--exists", "cmocka"]).returncode == 0
    assert subprocess.run(["pkg-config", "--exists", "cmocka"], env=env).returncode != 0
    # asking for the unit tests without cmocka fails, naming it ...
    cp = subprocess.run(["meson", "setup", str(tmp_path / "with-tests"), "-Dtests=enabled"], cwd=REPO_ROOT,
                        env=env, capture_output=True, text=True)
    assert cp.returncode != 0 and "cmocka" in cp.stdout + cp.stderr, cp.stdout[-2000:]
    # ... while the plain configure, as `make run` does it, builds the binary
    build = tmp_path / "plain"
    cp = subprocess.run(["meson", "setup", str(build), "--buildtype=plain"], cwd=REPO_ROOT, env=env,
                        capture_output=True, text=True)
    assert cp.returncode == 0, cp.stdout[-4000:] + cp.stderr[-2000:]
    cp = subprocess.run(["ninja", "-C", str(build), "mailvault"], env=env, capture_output=True, text=True)
    assert cp.returncode == 0, cp.stdout[-4000:] + cp.stderr[-2000:]
    assert not (build / "tests" / "unit").exists() or not any((build / "tests" / "unit").iterdir())
    cp = subprocess.run([str(build / "mailvault"), "--help"], capture_output=True, text=True)
    assert cp.returncode == 0 and "mailvault" in cp.stdout + cp.stderr, cp.stdout + cp.stderr
