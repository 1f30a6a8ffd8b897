"""`mailvault audit --verify` finds a change to any field of any audit entry,
and names the entry and the kind of damage exactly (issue 20, mutant 1).

The tests before tampered only with details, success and seq, so a chain
hash that left out `user` (src/archive/audit.c, entry_hash) survived, and
test_privileges.py accepted the hash-mismatch wording where the sequence-gap
message was meant.  Here one small instance gets a few audit entries (two
imports, refused calls), and each case changes ONE thing on a copy of its
master.sqlite -- user, remote, event, time (by one millisecond), details,
success, the stored hash, seq -- in the first, a middle and the last entry,
or removes entries from the middle or the end, and asserts the one line
`audit --verify` prints and its exit status 1, computed here from the code's
promise:

  audit log BROKEN at entry K: hash does not match: entry changed, or an entry before it removed
  audit log BROKEN at entry K: the stored hash is damaged (not 64 hex digits)
  audit log BROKEN at entry K+1: entries K to K are missing (removed)
  audit log BROKEN at entry 0: entry number 0 out of sequence
  audit log BROKEN at entry N: entries N to N are missing: the anchor names entry N, the log ends at N-1
  audit log BROKEN at entry K: its hash differs from the anchor's: the log was rewritten from here on

The untouched log must verify intact with its head (the last entry's stored
hash), and undoing a change must make it intact again, so an oracle that
calls everything broken fails too."""

import json
import os
import shutil
import sqlite3

import pytest

from mvtest import init_data_dir, mv

pytestmark = pytest.mark.xdist_group("audit_tamper")

MISMATCH = "hash does not match: entry changed, or an entry before it removed"
DAMAGED = "the stored hash is damaged (not 64 hex digits)"


def entries(d):
    db = sqlite3.connect(os.path.join(d, "master.sqlite"))
    try:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM audit_log ORDER BY seq")]
    finally:
        db.close()


def tamper(d, sql, *params, rows=1):
    db = sqlite3.connect(os.path.join(d, "master.sqlite"))
    try:
        cur = db.execute(sql, params)
        assert cur.rowcount == rows, (sql, params, cur.rowcount)
        db.commit()
    finally:
        db.close()


def verify(d, *extra, status):
    """The one line `audit --verify` prints, with the exit status asserted."""
    cp = mv("audit", "--verify", *extra, data_dir=d, check=status)
    assert cp.stderr == b"", cp.stderr
    out = cp.stdout.decode()
    assert out.endswith("\n") and out.count("\n") == 1, out
    return out[:-1]


def broken(k, reason):
    return "audit log BROKEN at entry %d: %s" % (k, reason)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("audit")
    d = init_data_dir(str(root / "data"))
    for i in range(2):
        src = root / ("src%d" % i)
        src.mkdir()
        (src / "m.eml").write_bytes(b"From: a@example.com\r\nSubject: audit %d\r\n\r\nbody %d\r\n" % (i, i))
        mv("import", str(src), "--archive", "alice", "--folder", "F%d" % i, data_dir=d)
    # refused calls are audited (successful local reads are not)
    for name in ("ghost1", "ghost2", "ghost3", "ghost4"):
        mv("cmd", "GetUserInfo", "--userName=" + name, data_dir=d, check=1)
    log = entries(d)
    assert [e["seq"] for e in log] == list(range(1, 7)), log
    # the fields vary between entries, so the changes below are real changes
    assert {e["success"] for e in log} == {0, 1} and len({e["event"] for e in log}) == 2, log
    return {"root": root, "dir": d, "log": log, "n": 0}


@pytest.fixture
def case(world):
    world["n"] += 1
    return shutil.copytree(world["dir"], str(world["root"] / ("case%d" % world["n"])))


def test_intact_log_verifies_with_its_head(case, world):
    last = world["log"][-1]
    assert verify(case, status=0) == "audit log intact: 6 entries; head (--anchor next time): 6:%s" % last["hash"]
    assert verify(case, "--anchor", "6:" + last["hash"], status=0).startswith("audit log intact: 6 entries")
    got = json.loads(mv("audit", "--verify", "--json", data_dir=case).stdout)
    assert got == {"entries": 6, "intact": True, "firstBrokenEntry": None, "reason": None, "lastEntry": 6,
                   "lastHash": last["hash"]}, got


# Each field changed in place: (column, SQL expression giving a different value).
FIELD_CHANGES = [
    ("user", "'mallory'"),
    ("remote", "'203.0.113.9'"),
    ("event", "CASE event WHEN 'ArchiveRun' THEN 'AdminApiCall' ELSE 'ArchiveRun' END"),
    ("time_ms", "time_ms + 1"),
    ("details", "details || ' '"),
    ("success", "1 - success"),
]


@pytest.mark.parametrize("column,expr", FIELD_CHANGES, ids=[c for c, _ in FIELD_CHANGES])
@pytest.mark.parametrize("k", [1, 3, 6])
def test_changed_field_breaks_the_chain_at_that_entry(case, world, column, expr, k):
    before = entries(case)[k - 1]
    tamper(case, "UPDATE audit_log SET %s = %s WHERE seq = ?" % (column, expr), k)
    assert entries(case)[k - 1][column] != before[column]
    assert verify(case, status=1) == broken(k, MISMATCH)
    got = json.loads(mv("audit", "--verify", "--json", data_dir=case, check=1).stdout)
    assert got == {"entries": k, "intact": False, "firstBrokenEntry": k, "reason": MISMATCH, "lastEntry": k,
                   "lastHash": before["hash"]}, got
    # the old value back: intact again
    tamper(case, "UPDATE audit_log SET %s = ? WHERE seq = ?" % column, before[column], k)
    assert verify(case, status=0).startswith("audit log intact: 6 entries;")


@pytest.mark.parametrize("k", [1, 4, 6])
def test_changed_hash(case, world, k):
    h = world["log"][k - 1]["hash"]
    other = h[:-1] + ("0" if h[-1] != "0" else "1")
    tamper(case, "UPDATE audit_log SET hash = ? WHERE seq = ?", other, k)
    assert verify(case, status=1) == broken(k, MISMATCH)
    tamper(case, "UPDATE audit_log SET hash = ? WHERE seq = ?", "not-a-hash", k)
    assert verify(case, status=1) == broken(k, DAMAGED)


def test_seq_swapped(case):
    """Entries 3 and 4 trade numbers: the row now at 3 is not the entry the
    chain holds there."""
    tamper(case, "UPDATE audit_log SET seq = -seq WHERE seq IN (3, 4)", rows=2)
    tamper(case, "UPDATE audit_log SET seq = 7 + seq WHERE seq IN (-3, -4)", rows=2)
    assert [e["seq"] for e in entries(case)] == [1, 2, 3, 4, 5, 6]
    assert verify(case, status=1) == broken(3, MISMATCH)


def test_seq_raised_leaves_a_gap(case):
    """Entry 3 renumbered 9: the walk meets 4 where 3 belongs."""
    tamper(case, "UPDATE audit_log SET seq = 9 WHERE seq = 3")
    assert verify(case, status=1) == broken(4, "entries 3 to 3 are missing (removed)")


def test_last_seq_raised(case):
    tamper(case, "UPDATE audit_log SET seq = 8 WHERE seq = 6")
    assert verify(case, status=1) == broken(8, "entries 6 to 7 are missing (removed)")


@pytest.mark.parametrize("seq", [0, -1])
def test_seq_lowered_out_of_sequence(case, world, seq):
    """An entry renumbered 0 (or below) sorts first: the chain breaks at
    position 1, where a row numbered out of sequence stands.  The log must
    not read as intact with one entry -- nor with the anchor of its head."""
    tamper(case, "UPDATE audit_log SET seq = ? WHERE seq = 5", seq)
    why = "entry number %d out of sequence" % seq
    assert verify(case, status=1) == broken(1, why)
    assert verify(case, "--anchor", "6:" + world["log"][5]["hash"], status=1) == broken(1, why)
    got = json.loads(mv("audit", "--verify", "--json", data_dir=case, check=1).stdout)
    assert got["intact"] is False and got["firstBrokenEntry"] == 1 and got["reason"] == why, got


def test_entry_removed_from_the_middle(case):
    tamper(case, "DELETE FROM audit_log WHERE seq = 3")
    assert verify(case, status=1) == broken(4, "entries 3 to 3 are missing (removed)")
    tamper(case, "DELETE FROM audit_log WHERE seq IN (4, 5)", rows=2)
    assert verify(case, status=1) == broken(6, "entries 3 to 5 are missing (removed)")


def test_first_entry_removed(case):
    tamper(case, "DELETE FROM audit_log WHERE seq = 1")
    assert verify(case, status=1) == broken(2, "entries 1 to 1 are missing (removed)")


def test_entries_removed_from_the_end_show_with_the_anchor(case, world):
    head = "6:" + world["log"][5]["hash"]
    tamper(case, "DELETE FROM audit_log WHERE seq = 6")
    # without an anchor a chain cannot tell that its end was cut off ...
    assert verify(case, status=0) == "audit log intact: 5 entries; head (--anchor next time): 5:%s" % \
        world["log"][4]["hash"]
    # ... with the head an earlier verification printed, it can
    assert verify(case, "--anchor", head, status=1) == broken(
        6, "entries 6 to 6 are missing: the anchor names entry 6, the log ends at 5")
    tamper(case, "DELETE FROM audit_log WHERE seq = 5")
    assert verify(case, "--anchor", head, status=1) == broken(
        5, "entries 5 to 6 are missing: the anchor names entry 6, the log ends at 4")


def test_anchor_that_differs_means_rewritten(case, world):
    """A log whose entry 4 is intact in itself but is not the entry 4 an
    earlier verification saw (e.g. everything from 4 on recomputed by
    someone holding the key): the anchor tells."""
    h = world["log"][3]["hash"]
    other = h[:-1] + ("0" if h[-1] != "0" else "1")
    assert verify(case, "--anchor", "4:" + other, status=1) == broken(
        4, "its hash differs from the anchor's: the log was rewritten from here on")
    assert verify(case, "--anchor", "4:" + h, status=0).startswith("audit log intact: 6 entries;")
