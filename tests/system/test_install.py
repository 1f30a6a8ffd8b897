"""Installable on a fresh machine (issue 10), from one plain build made
here the way `make run` makes it.

- The product builds without any test package: a plain configure must never
  need cmocka again.  A real configure and build in a scratch directory,
  with cmocka hidden from pkg-config (a PKG_CONFIG_LIBDIR that lists every
  .pc file but cmocka's) and from Meson's CMake lookup (a `cmake` first in
  PATH that does not run), the two ways Meson finds it on this machine.
- `mailvault --version` names the release and the store format.
- `make install DESTDIR=... PREFIX=/usr` installs exactly the binary, the
  systemd unit and its first-start helper, the sysusers entry, the sample
  configuration and the docs; the unit passes `systemd-analyze verify`.
- The service as the unit runs it, by hand (no systemd runs here): the
  first-start helper as root, then the unit's own ExecStart line as the
  service's user, on the fixed places /var/lib/mailvault and /etc/mailvault;
  the credentials land in a file only root reads, never in the output, and
  the server answers GetServerInfo.  That touches the machine itself (a
  system user, two system directories), so it runs only as root and
  refuses to run where a mailvault is installed already; it removes what
  it made.
- `make deb` builds a lintian-clean package; installing it makes the system
  user and enables the service, and the service it installs answers;
  `dpkg -r` keeps the archive, `dpkg --purge` (noninteractive) removes it."""

import base64
import http.client
import json
import os
import pwd
import re
import shutil
import signal
import ssl
import stat
import subprocess
import tempfile
import time

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


def hidden_cmocka_env(root):
    return dict(os.environ, PKG_CONFIG_LIBDIR=without_cmocka(root), PKG_CONFIG_PATH="",
                PATH=broken_cmake(root) + os.pathsep + os.environ["PATH"])


@pytest.fixture(scope="module")
def plain_build(tmp_path_factory):
    """One plain build as `make run` configures it (tests off), with cmocka
    hidden, in a directory other users may enter (the service's user runs
    its binary); every test of the module starts from it."""
    root = tempfile.mkdtemp(prefix="mv-plain-build-")
    os.chmod(root, 0o755)
    tmp = tmp_path_factory.mktemp("plain")
    env = hidden_cmocka_env(tmp)
    build = os.path.join(root, "build")
    try:
        setup = subprocess.run(["meson", "setup", build, "--buildtype=plain"], cwd=REPO_ROOT, env=env,
                               capture_output=True, text=True)
        ninja = subprocess.run(["ninja", "-C", build], env=env, capture_output=True, text=True) \
            if setup.returncode == 0 else None
        yield {"root": root, "tmp": tmp, "env": env, "build": build, "setup": setup, "ninja": ninja}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def built(plain_build):
    setup, ninja = plain_build["setup"], plain_build["ninja"]
    assert setup.returncode == 0, setup.stdout[-4000:] + setup.stderr[-2000:]
    assert ninja.returncode == 0, ninja.stdout[-4000:] + ninja.stderr[-2000:]
    return plain_build["build"]


def installed_prefix(plain_build):
    """The plain build installed for real under a scratch prefix (made once),
    so that every command the unit names exists where it says."""
    prefix = os.path.join(plain_build["root"], "prefix")
    if not os.path.exists(os.path.join(prefix, "bin", "mailvault")):
        make_install(built(plain_build), prefix)
    return prefix


def test_plain_build_needs_no_test_package(plain_build):
    env = plain_build["env"]
    # the hiding works: cmocka is installed here (make test needs it), but
    # not visible through this directory
    assert subprocess.run(["pkg-config", "--exists", "cmocka"]).returncode == 0
    assert subprocess.run(["pkg-config", "--exists", "cmocka"], env=env).returncode != 0
    # asking for the unit tests without cmocka fails, naming it ...
    cp = subprocess.run(["meson", "setup", str(plain_build["tmp"] / "with-tests"), "-Dtests=enabled"],
                        cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert cp.returncode != 0 and "cmocka" in cp.stdout + cp.stderr, cp.stdout[-2000:]
    # ... while the plain configure, as `make run` does it, builds the binary
    build = built(plain_build)
    unit = os.path.join(build, "tests", "unit")
    assert not os.path.exists(unit) or not os.listdir(unit)
    cp = subprocess.run([os.path.join(build, "mailvault"), "--help"], capture_output=True, text=True)
    assert cp.returncode == 0 and "mailvault" in cp.stdout + cp.stderr, cp.stdout + cp.stderr


def test_version_names_release_and_store_format(plain_build):
    cp = subprocess.run([os.path.join(built(plain_build), "mailvault"), "--version"], capture_output=True, text=True)
    assert cp.returncode == 0, cp.stderr
    version = re.search(r"version\s*:\s*'([^']+)'", open(os.path.join(REPO_ROOT, "meson.build")).read()).group(1)
    lines = cp.stdout.splitlines()
    assert lines[0] == "mailvault " + version, cp.stdout
    fmt = re.search(r"#define MV_STORE_FORMAT_VERSION (\d+)",
                    open(os.path.join(REPO_ROOT, "src", "store", "store.h")).read()).group(1)
    assert lines[1] == "store format %s (reads formats 1 to %s)" % (fmt, fmt), cp.stdout
    assert lines[2].startswith("SQLite 3.") and "SQLCipher" in lines[2], cp.stdout


def make_install(build, prefix, destdir=None):
    argv = ["make", "-C", REPO_ROOT, "install", "BUILD=" + build, "PREFIX=" + prefix]
    if destdir:
        argv.append("DESTDIR=" + destdir)
    cp = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    assert cp.returncode == 0, cp.stdout[-3000:] + cp.stderr[-3000:]


INSTALLED = {
    "usr/bin/mailvault": 0o755,
    "usr/lib/systemd/system/mailvault.service": 0o644,
    "usr/lib/sysusers.d/mailvault.conf": 0o644,
    "usr/libexec/mailvault/first-start": 0o755,
    "usr/share/mailvault/mailvault.conf.sample": 0o644,
    "usr/share/doc/mailvault/README.md": 0o644,
    "usr/share/doc/mailvault/ARCHITECTURE.md": 0o644,
    "usr/share/doc/mailvault/cli.md": 0o644,
    "usr/share/doc/mailvault/server.md": 0o644,
    "usr/share/doc/mailvault/web.md": 0o644,
    "usr/share/doc/mailvault/imap.md": 0o644,
    "usr/share/doc/mailvault/export.md": 0o644,
    "usr/share/doc/mailvault/profiles.md": 0o644,
    "usr/share/doc/mailvault/jobs.md": 0o644,
    "usr/share/man/man1/mailvault.1": 0o644,
}


def unit_values(path, key):
    return [line.split("=", 1)[1] for line in open(path).read().splitlines() if line.startswith(key + "=")]


def test_make_install_destdir(plain_build, tmp_path):
    dest = str(tmp_path / "dest")
    make_install(built(plain_build), "/usr", dest)
    got = {}
    for r, _, fs in os.walk(dest):
        for f in fs:
            p = os.path.join(r, f)
            got[os.path.relpath(p, dest)] = stat.S_IMODE(os.stat(p).st_mode)
    assert got == INSTALLED, got
    # the installed binary is the one built
    cp = subprocess.run([os.path.join(dest, "usr/bin/mailvault"), "--version"], capture_output=True, text=True)
    assert cp.returncode == 0 and cp.stdout.startswith("mailvault "), cp.stdout + cp.stderr
    unit = os.path.join(dest, "usr/lib/systemd/system/mailvault.service")
    assert unit_values(unit, "ExecStart") == ["/usr/bin/mailvault serve --config /etc/mailvault/mailvault.conf"]
    assert unit_values(unit, "ExecStartPre") == ["+/usr/libexec/mailvault/first-start"]
    assert unit_values(unit, "User") == ["mailvault"]
    for key, want in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("ProtectHome", "yes"),
                      ("PrivateTmp", "yes"), ("CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"),
                      ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX")):
        assert unit_values(unit, key) == [want], key
    assert "/var/lib/mailvault" in unit_values(unit, "ReadWritePaths")[0]
    assert unit_values(unit, "SystemCallFilter"), "no system call filter"
    sample = open(os.path.join(dest, "usr/share/mailvault/mailvault.conf.sample")).read()
    assert "data_dir=/var/lib/mailvault" in sample and "@" not in sample, sample


def test_unit_passes_systemd_analyze_verify(plain_build):
    assert shutil.which("systemd-analyze"), "systemd-analyze (package systemd, on every Debian machine) is missing"
    unit = os.path.join(installed_prefix(plain_build), "lib/systemd/system/mailvault.service")
    cp = subprocess.run(["systemd-analyze", "verify", unit], capture_output=True, text=True, timeout=120)
    problems = [l for l in (cp.stdout + cp.stderr).splitlines() if "mailvault.service" in l]
    assert cp.returncode == 0 and not problems, cp.stdout + cp.stderr


def https_json(port, cafile, path, user, password, fields=""):
    ctx = ssl.create_default_context(cafile=cafile)
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=60)
    try:
        auth = "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
        conn.request("POST", path, body=fields, headers={"Authorization": auth,
                                                         "Content-Type": "application/x-www-form-urlencoded"})
        body = conn.getresponse().read()
    finally:
        conn.close()
    return json.loads(body.decode("utf-8-sig"))


SERVICE_PLACES = ("/var/lib/mailvault", "/etc/mailvault")


@pytest.fixture
def service_user():
    """The system user and places of the service, made for the test and
    removed after; never over an installation that is there already."""
    if os.geteuid() != 0:
        pytest.skip("needs root: the service runs as a system user of its own")
    there = [p for p in SERVICE_PLACES if os.path.exists(p)]
    try:
        pwd.getpwnam("mailvault")
        there.append("user mailvault")
    except KeyError:
        pass
    assert not there, "a mailvault installation is on this machine (%s): the test will not touch it" % there
    subprocess.run(["useradd", "--system", "--home-dir", "/var/lib/mailvault", "--no-create-home",
                    "--shell", "/usr/sbin/nologin", "--user-group", "mailvault"], check=True)
    try:
        yield "mailvault"
    finally:
        for p in SERVICE_PLACES:
            shutil.rmtree(p, ignore_errors=True)
        subprocess.run(["userdel", "mailvault"])


def test_service_started_as_the_unit_starts_it(plain_build, service_user):
    unit = os.path.join(installed_prefix(plain_build), "lib/systemd/system/mailvault.service")
    log = os.path.join(plain_build["root"], "serve.out")
    first, proc, out = start_as_unit(unit, log)
    try:
        creds = "/etc/mailvault/initial-credentials"
        # named in the journal (the helper's output), never shown there
        assert creds in first.stdout, first.stdout
        st = os.stat(creds)
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o600), st
        text = open(creds).read()
        recovery = re.search(r"Recovery key: (\S+)", text).group(1)
        password = re.search(r"first administrator: admin, password: (\S+)", text).group(1)
        shown = first.stdout + first.stderr + open(log).read()
        assert recovery not in shown and password not in shown
        data = "/var/lib/mailvault"
        uid = pwd.getpwnam("mailvault").pw_uid
        for p in (data, "/etc/mailvault", "/etc/mailvault/mailvault.conf", data + "/master.sqlite"):
            assert os.stat(p).st_uid == uid, p
        assert stat.S_IMODE(os.stat(data).st_mode) == 0o700
        info = https_json(8463, data + "/certs/server.crt", "/api/invoke/GetServerInfo", "admin", password)
        assert info["statusCode"] == "succeeded" and info["result"]["product"] == "mailvault", info
        # it runs as the service's user (runuser's child, the pid it printed)
        pid = int(re.search(r"serving \(pid (\d+)\)", open(log).read()).group(1))
        assert os.stat("/proc/%d" % pid).st_uid == uid
        # a second start changes nothing
        pre = unit_values(unit, "ExecStartPre")[0].lstrip("+")
        again = subprocess.run([pre], capture_output=True, text=True, timeout=300)
        assert again.returncode == 0 and again.stdout == "", again.stdout + again.stderr
        assert open(creds).read() == text
    finally:
        stop_served(proc, out, log)
    assert proc.returncode == 0, open(log).read()

def start_as_unit(unit, log_path):
    """first-start as root, then the unit's ExecStart as its user, until it serves."""
    pre = unit_values(unit, "ExecStartPre")[0].lstrip("+")
    first = subprocess.run([pre], capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    out = open(log_path, "w+")
    proc = subprocess.Popen(["runuser", "-u", "mailvault", "--"] + unit_values(unit, "ExecStart")[0].split(),
                            stdout=out, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while "serving (pid" not in open(log_path).read():
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise AssertionError(open(log_path).read())
        time.sleep(0.2)
    return first, proc, out


def stop_served(proc, out, log_path):
    try:
        m = re.search(r"serving \(pid (\d+)\)", open(log_path).read())
        os.kill(int(m.group(1)), signal.SIGTERM)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        out.close()


def dpkg(*args):
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cp = subprocess.run(["dpkg"] + list(args), capture_output=True, text=True, env=env, timeout=600)
    assert cp.returncode == 0, cp.stdout[-3000:] + cp.stderr[-3000:]
    return cp


@pytest.fixture
def no_installation():
    if os.geteuid() != 0:
        pytest.skip("needs root: installs and removes a Debian package")
    there = [p for p in SERVICE_PLACES if os.path.exists(p)]
    installed = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "mailvault"], capture_output=True, text=True)
    if "installed" in installed.stdout:
        there.append("package mailvault")
    try:
        pwd.getpwnam("mailvault")
        there.append("user mailvault")
    except KeyError:
        pass
    assert not there, "a mailvault installation is on this machine (%s): the test will not touch it" % there
    try:
        yield
    finally:
        subprocess.run(["dpkg", "--purge", "mailvault"], capture_output=True,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        for p in SERVICE_PLACES:
            shutil.rmtree(p, ignore_errors=True)
        subprocess.run(["userdel", "mailvault"], capture_output=True)


def test_deb_installs_a_working_service_and_keeps_the_archive(plain_build, no_installation):
    out_dir = os.path.join(plain_build["root"], "deb")
    cp = subprocess.run([os.path.join(REPO_ROOT, "tools", "make_deb.sh"), out_dir], capture_output=True, text=True,
                        timeout=1800)
    assert cp.returncode == 0, cp.stdout[-3000:] + cp.stderr[-5000:]
    deb = cp.stdout.strip().splitlines()[-1]
    assert deb.endswith("_amd64.deb") and os.path.isfile(deb), cp.stdout
    lintian = open(os.path.join(out_dir, "lintian.log")).read()
    assert not [l for l in lintian.splitlines() if l.startswith("E:")], lintian
    files = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True, check=True).stdout
    for path in ("./usr/bin/mailvault", "./lib/systemd/system/mailvault.service",
                 "./usr/libexec/mailvault/first-start", "./usr/share/mailvault/mailvault.conf.sample",
                 "./usr/share/doc/mailvault/README.md", "./usr/share/man/man1/mailvault.1.gz"):
        assert path in files, (path, files)
    assert "no-manual-page" not in lintian, lintian

    dpkg("-i", deb)
    user = pwd.getpwnam("mailvault")
    assert user.pw_dir == "/var/lib/mailvault" and user.pw_shell in ("/usr/sbin/nologin", "/bin/false"), user
    assert os.path.islink("/etc/systemd/system/multi-user.target.wants/mailvault.service"), "service not enabled"
    unit = "/lib/systemd/system/mailvault.service"
    log = os.path.join(plain_build["root"], "deb-serve.out")
    first, proc, out = start_as_unit(unit, log)
    try:
        text = open("/etc/mailvault/initial-credentials").read()
        password = re.search(r"first administrator: admin, password: (\S+)", text).group(1)
        info = https_json(8463, "/var/lib/mailvault/certs/server.crt", "/api/invoke/GetServerInfo", "admin", password)
        assert info["statusCode"] == "succeeded" and info["result"]["product"] == "mailvault", info
    finally:
        stop_served(proc, out, log)
    archive = sorted(os.listdir("/var/lib/mailvault"))
    assert "master.sqlite" in archive and "stores" in archive, archive

    dpkg("-r", "mailvault")
    assert not os.path.exists("/usr/bin/mailvault")
    assert sorted(os.listdir("/var/lib/mailvault")) == archive, "dpkg -r touched the archive"
    assert os.path.isfile("/etc/mailvault/mailvault.conf")

    dpkg("--purge", "mailvault")
    assert not os.path.exists("/var/lib/mailvault") and not os.path.exists("/etc/mailvault")
