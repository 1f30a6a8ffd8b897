"""`mailvault audit` on a large audit log: the listing (text and --json)
and --verify stream the log entry by entry, so their peak memory does not
grow with the number of entries.

The entries are real ones, hash-chained by the binary itself: failed
DeleteUser calls (every failed call is audited) fed to one `mailvault shell`
process, with a long user name so that each entry is a few kilobytes and a
listing that held the log in memory would show in its peak RSS at once.
The data directory lives on tmpfs (/dev/shm) when there is one: each entry
is a committed transaction with synchronous=FULL, and an fsync per entry on
a disk would make this test take minutes."""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile

import pytest

from mvtest import MAILVAULT_BIN, T_SHORT, check_no_crash, mv

N_SMALL = 100
N_LARGE = 6000
NAME_BYTES = 4000          # user name in each entry; its details carry it whole
# Peak RSS of a listing of the large log may exceed that of the small one by
# this much: SQLite's page cache (2 MB) fills on the large log, and one batch
# of entries (about 256 KB) is held at a time; measured under ASan, the
# streaming listing grows by about 3 MB.  The large log holds about
# N_LARGE * NAME_BYTES = 24 MB of details: a listing that kept them all (as
# the old in-memory one did) grew by about 36 MB.  The entries' size, not
# their number, is what makes the difference show, at a runtime ASan can
# afford.
RSS_TOLERANCE_KB = 8 * 1024

# ASan keeps freed memory in a quarantine of up to 256 MB, which would make
# any program that allocates and frees per entry look as if it grew; off for
# the memory measurements, and so is LeakSanitizer's exit-time scan (the other
# tests here run with it).  No effect on a build without ASan.
_RSS_ENV = dict(os.environ, ASAN_OPTIONS=(os.environ.get("ASAN_OPTIONS", "") +
                                          ":quarantine_size_mb=0:detect_leaks=0").lstrip(":"))

# A process's peak RSS survives exec (Linux keeps the high-water mark of the
# memory it replaced), so a child forked from this test process -- big after
# holding the shell scripts and their output -- would report our size, not
# its own.  This small helper, a fresh interpreter, runs the command and
# writes that child's own ru_maxrss (KB) to the file named first.
_RSS_HELPER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(str(usage.ru_maxrss))
if os.WIFSIGNALED(status):
    os.kill(os.getpid(), os.WTERMSIG(status))
sys.exit(os.WEXITSTATUS(status))
"""


def add_entries(data_dir, first, count):
    """count failed DeleteUser calls, numbered from first, in one shell."""
    pad = "u" * NAME_BYTES
    script = "".join("DeleteUser --userName=%s%d\n" % (pad, i) for i in range(first, first + count))
    mv("shell", data_dir=data_dir, input=script.encode(), check=(0, 1), timeout=600)


def peak_rss_kb(data_dir, *args):
    """Runs `mailvault audit ARGS` with stdout to a file; returns (peak RSS
    in KB of that one process, stdout bytes)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r") as rss:
        cmd = [MAILVAULT_BIN, "--data-dir", str(data_dir), "audit", *args]
        status = subprocess.run([sys.executable, "-c", _RSS_HELPER, rss.name, *cmd], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=err, env=_RSS_ENV, timeout=T_SHORT).returncode
        out.seek(0)
        err.seek(0)
        cp = subprocess.CompletedProcess(cmd, status, out.read(), err.read())
        check_no_crash(cp)
        assert cp.returncode == 0, cp.stderr.decode(errors="replace")
        return int(rss.read()), cp.stdout


def json_lines(stdout):
    lines = stdout.decode("utf-8").splitlines()
    return [json.loads(line) for line in lines]


def measure(data_dir):
    """Peak RSS (KB) of each way of reading the log."""
    return {what: peak_rss_kb(data_dir, *args)[0]
            for what, args in (("json", ("--json",)), ("text", ()), ("verify", ("--verify",)))}


@pytest.fixture(scope="module")
def audit_log(tmp_path_factory):
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    root = tempfile.mkdtemp(prefix="mv-audit-cli-", dir=base or str(tmp_path_factory.mktemp("audit")))
    try:
        d = os.path.join(root, "data")
        mv("init", data_dir=d)
        add_entries(d, 0, N_SMALL)
        small = measure(d)
        add_entries(d, N_SMALL, N_LARGE - N_SMALL)
        large = measure(d)
        yield {"dir": d, "small": small, "large": large}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_json_lists_every_entry_in_order(audit_log):
    _, out = peak_rss_kb(audit_log["dir"], "--json")
    entries = json_lines(out)
    assert [e["seq"] for e in entries] == list(range(1, N_LARGE + 1))
    for i, e in enumerate(entries):
        assert set(e) == {"seq", "time", "user", "remote", "event", "success", "details", "hash"}, e
        assert e["event"] == "UserDelete" and e["success"] is False and e["user"] == "admin", e
        assert json.loads(e["details"])["args"]["userName"] == "u" * NAME_BYTES + str(i)
    times = [e["time"] for e in entries]
    assert times == sorted(times)


def test_text_lists_every_entry(audit_log):
    _, out = peak_rss_kb(audit_log["dir"])
    lines = out.decode("utf-8").splitlines()
    assert len(lines) == N_LARGE
    assert all("  UserDelete  FAILED  " in line for line in lines)
    assert lines[-1].endswith('"function":"DeleteUser"}')


def test_since_filters(audit_log):
    d = audit_log["dir"]
    entries = json_lines(peak_rss_kb(d, "--json")[1])
    pivot = entries[len(entries) * 2 // 3]["time"]
    since = json_lines(mv("audit", "--json", "--since", pivot, data_dir=d).stdout)
    assert since == [e for e in entries if e["time"] >= pivot]
    assert 0 < len(since) < len(entries)
    assert mv("audit", "--json", "--since", "0", data_dir=d).stdout == peak_rss_kb(d, "--json")[1]
    assert mv("audit", "--since", "2999-01-01", data_dir=d).stdout == b""


def test_verify_passes(audit_log):
    d = audit_log["dir"]
    v = json.loads(mv("audit", "--verify", "--json", data_dir=d).stdout)
    last = json_lines(mv("audit", "--json", "--since", "0", data_dir=d).stdout)[-1]
    assert v == {"entries": N_LARGE, "intact": True, "firstBrokenEntry": None, "reason": None,
                 "lastEntry": N_LARGE, "lastHash": last["hash"]}
    assert mv("audit", "--verify", data_dir=d).stdout == (
        b"audit log intact: %d entries; head (--anchor next time): %d:%s\n" % (N_LARGE, N_LARGE, last["hash"].encode()))


def test_anchor_shows_entries_cut_from_the_end(tmp_path):
    """A chain cut at its end still follows; the head kept from an earlier
    verification (--anchor, VerifyAuditLog's anchor) shows the cut."""
    d = str(tmp_path / "data")
    mv("init", data_dir=d)
    for i in range(6):
        mv("cmd", "DeleteUser", "--userName=nobody%d" % i, data_dir=d, check=1)   # failed calls are audited
    head = json.loads(mv("audit", "--verify", "--json", data_dir=d).stdout)
    anchor = "%d:%s" % (head["lastEntry"], head["lastHash"])
    assert head["intact"] and head["lastEntry"] >= 6, head
    mv("cmd", "DeleteUser", "--userName=later", data_dir=d, check=1)
    mv("audit", "--verify", "--anchor", anchor, data_dir=d)                 # grown past the anchor: intact

    db = sqlite3.connect(os.path.join(d, "master.sqlite"))
    db.execute("DELETE FROM audit_log WHERE seq > ?", (head["lastEntry"] - 3,))
    db.commit()
    db.close()
    mv("audit", "--verify", data_dir=d)                                      # the cut alone does not show
    cp = mv("audit", "--verify", "--anchor", anchor, data_dir=d, check=1)
    assert b"audit log BROKEN at entry %d: entries %d to %d are missing" % (
        head["lastEntry"] - 2, head["lastEntry"] - 2, head["lastEntry"]) in cp.stdout, cp.stdout
    env = json.loads(mv("cmd", "VerifyAuditLog", "--anchor=" + anchor, data_dir=d).stdout)
    assert env["result"]["intact"] is False and env["result"]["firstBrokenEntry"] == head["lastEntry"] - 2, env
    env = json.loads(mv("cmd", "VerifyAuditLog", "--anchor=12:zz", data_dir=d, check=1).stdout)
    assert env["statusCode"] == "failed" and "anchor" in env["error"]["message"], env
    cp = mv("audit", "--anchor", anchor, data_dir=d, check=2)
    assert b"--anchor goes with --verify" in cp.stderr


def test_get_audit_log_unchanged(audit_log):
    # GetAuditLog still collects (a bounded number of) entries through mv_audit_read
    cp = mv("cmd", "GetAuditLog", "--limit=5", "--since=0", data_dir=audit_log["dir"], timeout=T_SHORT)
    result = json.loads(cp.stdout)["result"]
    assert [e["seq"] for e in result] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("what", ["json", "text", "verify"])
def test_peak_memory_does_not_grow_with_the_log(audit_log, what):
    small, large = audit_log["small"][what], audit_log["large"][what]
    assert large - small < RSS_TOLERANCE_KB, (
        "peak RSS of `mailvault audit` (%s) grew from %d KB (%d entries) to %d KB (%d entries)"
        % (what, small, N_SMALL, large, N_LARGE))
