"""Issue 9.4 (and 19.7): every file the instance writes is 0600 and every
directory it creates 0700, whatever the umask it was started with and
whatever mode a directory made beforehand has; `init` warns when the data
directory itself is open to group or others.

The binary runs under umask 000 here, the worst case: a file made with
SQLite's default mode (0644) or a directory made 0755 shows at once.  The
directories the test makes itself beforehand (0755) keep their mode and are
the only entries allowed to."""

import json
import os
import re
import stat
import subprocess

import pytest

from mvtest import MAILVAULT_BIN, T_SHORT, check_no_crash
from mvserver import MvServer

pytestmark = pytest.mark.xdist_group("file_modes")

EML = (b"From: a@example.com\r\nTo: b@example.com\r\nSubject: modes\r\n"
       b"Message-ID: <modes@example.com>\r\n\r\nprivate words\r\n")


def run(data_dir, *args, check=True):
    cp = subprocess.run([MAILVAULT_BIN, "--data-dir", data_dir] + list(args), capture_output=True,
                        timeout=T_SHORT, preexec_fn=lambda: os.umask(0))
    check_no_crash(cp)
    if check:
        assert cp.returncode == 0, (args, cp.stdout, cp.stderr)
    return cp


def premade(path):
    os.makedirs(path)
    os.chmod(path, 0o755)
    return str(path)


def wide_entries(root, allowed):
    """Entries under root whose mode lets group or others in, except the
    directories made beforehand."""
    bad = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            # serve-PORT.out/.err: the test harness's capture of the server's output
            if stat.S_ISLNK(st.st_mode) or p in allowed or re.fullmatch(r"serve-\d+\.(out|err)", name):
                continue
            if st.st_mode & 0o077:
                bad.append("%s %04o" % (os.path.relpath(p, root), st.st_mode & 0o7777))
    return bad


def test_files_0600_directories_0700_whatever_the_umask(tmp_path):
    data = premade(tmp_path / "data")
    cp = run(data, "init")
    password = re.search(rb"password: (\S+)", cp.stdout).group(1).decode()
    assert b"warning" in cp.stderr and b"0755" in cp.stderr and b"chmod 700" in cp.stderr, cp.stderr
    eml = tmp_path / "m.eml"
    eml.write_bytes(EML)
    run(data, "import", str(eml), "--archive", "alice", "-q")
    made = [premade(tmp_path / "second"), premade(tmp_path / "backup")]
    res = json.loads(run(data, "cmd", "CreateStore", "--name=second", "--databasePath=" + made[0]).stdout)
    assert res["statusCode"] == "succeeded", res
    res = json.loads(run(data, "cmd", "CreateBackup", "--path=" + made[1]).stdout)
    assert res["statusCode"] == "succeeded", res
    # the server writes its self-signed certificate and key, and the WAL files
    srv = MvServer(data, password=password).start()
    try:
        srv.ok("GetStores")
    finally:
        srv.stop()
    allowed = {data} | set(made)
    for root in [data] + made:
        assert wide_entries(root, allowed) == [], "open to group/others under %s" % root
    assert os.path.exists(os.path.join(data, "master.sqlite"))


def test_init_into_a_private_directory_says_nothing(tmp_path):
    data = str(tmp_path / "data")
    os.makedirs(data, mode=0o700)
    os.chmod(data, 0o700)
    cp = run(data, "init")
    assert b"warning" not in cp.stderr, cp.stderr
