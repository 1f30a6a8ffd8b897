"""Worker results (issue 11): every archiving run leaves a result that
GetWorkerResults lists and GetWorkerResultReport details — when, who, how
it ended (succeeded, completedWithWarnings, completedWithErrors,
cancelled, failed) and the counts, with each failed item and its reason.
Monitoring scripts read result, profileName and completeTime; MailStore's
wrapper spells the zone argument timeZoneID.

The expected counts come from what the test hands in (files it wrote),
not from the binary's own summary."""

import datetime
import json
import os

import pytest

from mvserver import MvServer, init_with_admin
from mvtest import mv

YEAR = ("--fromIncluding=2000-01-01T00:00:00", "--toExcluding=2100-01-01T00:00:00")


def results(d, *extra, check=True):
    cp = mv("cmd", "GetWorkerResults", *extra, data_dir=d, check=check)
    return json.loads(cp.stdout)


def message(i):
    return ("From: a%d@example.org\r\nTo: b@example.org\r\nSubject: run %d\r\n"
            "Message-ID: <w%d@example.org>\r\n\r\nbody %d\r\n" % (i, i, i, i)).encode()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("worker")
    d = str(root / "data")
    pw = init_with_admin(d)
    src = root / "src"
    src.mkdir()
    for i in range(7):
        (src / ("%d.eml" % i)).write_bytes(message(i))
    (src / "notes.txt").write_bytes(b"not mail")           # skipped by extension, not an item
    mv("import", str(src), "--archive", "alice", data_dir=d)
    mv("import", str(src), "--archive", "alice", data_dir=d)         # all already archived
    lone = root / "lone.eml"
    lone.write_bytes(message(99))
    # refused: no archive to put it in
    mv("import", str(lone), "--read-mailstore-headers", data_dir=d, check=(0, 3))
    return {"dir": d, "pw": pw, "root": root, "src": str(src), "lone": str(lone)}


def test_each_run_leaves_a_result(world):
    got = results(world["dir"], *YEAR, "--timeZoneID=$Local")
    assert got["statusCode"] == "succeeded", got
    runs = got["result"]
    assert [r["id"] for r in runs] == [1, 2, 3], runs
    first, again, refused = runs
    assert (first["result"], first["archived"], first["alreadyArchived"], first["failed"]) == ("succeeded", 7, 0, 0)
    assert (again["result"], again["archived"], again["alreadyArchived"], again["failed"]) == ("succeeded", 0, 7, 0)
    assert (refused["result"], refused["archived"], refused["failed"]) == ("completedWithErrors", 0, 1)
    for r in runs:
        assert r["userName"] == "admin" and r["profileID"] is None, r
        assert r["profileName"] in (world["src"], world["lone"]), r
        start = datetime.datetime.fromisoformat(r["startTime"])
        complete = datetime.datetime.fromisoformat(r["completeTime"])
        assert start <= complete and abs((complete - datetime.datetime.now(datetime.timezone.utc)).total_seconds()) < 600


def test_report_names_the_failed_item_and_why(world):
    rep = json.loads(mv("cmd", "GetWorkerResultReport", "--id=3", data_dir=world["dir"]).stdout)["result"]
    assert rep["result"] == "completedWithErrors"
    (failure,) = rep["report"]["failures"]
    assert failure["item"] == world["lone"] and "no MailStore headers name its archive" in failure["reason"], rep
    rep1 = json.loads(mv("cmd", "GetWorkerResultReport", "--id=1", data_dir=world["dir"]).stdout)["result"]
    assert rep1["report"]["archives"] == ["alice"] and rep1["report"]["failures"] == [], rep1
    cp = mv("cmd", "GetWorkerResultReport", "--id=999", data_dir=world["dir"], check=1)
    assert "worker result 999 does not exist" in json.loads(cp.stdout)["error"]["message"]


def test_time_zone_and_range(world):
    d = world["dir"]
    berlin = results(d, *YEAR, "--timeZoneId=Europe/Berlin")["result"]     # the other spelling
    utc = results(d, *YEAR, "--timeZoneID=UTC")["result"]
    for b, u in zip(berlin, utc):
        tb, tu = datetime.datetime.fromisoformat(b["startTime"]), datetime.datetime.fromisoformat(u["startTime"])
        assert tb == tu and tb.utcoffset() != tu.utcoffset(), (b, u)
    assert results(d, "--fromIncluding=2000-01-01T00:00:00", "--toExcluding=2001-01-01T00:00:00",
                   "--timeZoneID=UTC")["result"] == []
    assert [r["id"] for r in results(d, *YEAR, "--timeZoneID=UTC", "--userName=admin")["result"]] == [1, 2, 3]
    assert results(d, *YEAR, "--timeZoneID=UTC", "--userName=nobody")["result"] == []


@pytest.mark.parametrize("args, words", [
    ((YEAR[0], YEAR[1], "--timeZoneID=Mars/Olympus"), ("timeZoneID", "Mars/Olympus", "not a time zone")),
    ((YEAR[0], YEAR[1]), ("timeZoneID is missing",)),
    (("--fromIncluding=2026-13-01T00:00:00", YEAR[1], "--timeZoneID=UTC"), ("fromIncluding", "2026-13-01")),
    ((YEAR[0], "--toExcluding=tomorrow", "--timeZoneID=UTC"), ("toExcluding", "tomorrow")),
])
def test_argument_errors_name_the_argument(world, args, words):
    env = results(world["dir"], *args, check=1)
    msg = env["error"]["message"]
    assert env["statusCode"] == "failed" and all(w in msg for w in words), msg


def test_results_survive_a_restart_and_users_see_only_their_own(world):
    d = world["dir"]
    mv("cmd", "CreateUser", "--userName=carol", "--privileges=login", "--password=Carol-Pw-4471-long", data_dir=d)
    s = MvServer(d, password=world["pw"]).start()
    try:
        rows = s.ok("GetWorkerResults", fromIncluding="2000-01-01T00:00:00", toExcluding="2100-01-01T00:00:00",
                    timeZoneID="UTC")
        assert [r["id"] for r in rows] == [1, 2, 3]
        mine = s.ok("GetWorkerResults", user="carol", password="Carol-Pw-4471-long",
                    fromIncluding="2000-01-01T00:00:00", toExcluding="2100-01-01T00:00:00", timeZoneID="UTC")
        assert mine == []
        env = s.call("GetWorkerResults", user="carol", password="Carol-Pw-4471-long", userName="admin",
                     fromIncluding="2000-01-01T00:00:00", toExcluding="2100-01-01T00:00:00", timeZoneID="UTC")
        assert env["statusCode"] == "failed" and "your own user name" in env["error"]["message"], env
        env = s.call("GetWorkerResultReport", user="carol", password="Carol-Pw-4471-long", id=1)
        assert env["statusCode"] == "failed" and "does not exist" in env["error"]["message"], env
    finally:
        s.stop()


def test_retention_is_set_and_applies_at_the_next_result(tmp_path):
    """Results older than the retention go when the next one is written.
    A result is aged by rewriting its time in master.sqlite (plain SQLite),
    which is what two days of waiting would have done."""
    import sqlite3
    d = str(tmp_path / "data")
    init_with_admin(d)
    src = tmp_path / "one.eml"
    src.write_bytes(message(1))
    assert json.loads(mv("cmd", "GetWorkerResultsRetention", data_dir=d).stdout)["result"] == {"days": 90}
    env = json.loads(mv("cmd", "SetWorkerResultsRetention", "--days=0", data_dir=d, check=1).stdout)
    assert "days" in env["error"]["message"] and "between 1 and" in env["error"]["message"], env
    mv("cmd", "SetWorkerResultsRetention", "--days=1", data_dir=d)
    assert json.loads(mv("cmd", "GetWorkerResultsRetention", data_dir=d).stdout)["result"] == {"days": 1}
    mv("import", str(src), "--archive", "alice", data_dir=d)
    mv("import", str(src), "--archive", "alice", data_dir=d)
    db = sqlite3.connect(os.path.join(d, "master.sqlite"))
    with db:
        db.execute("UPDATE worker_results SET start_ms = start_ms - 2 * 86400000,"
                   " complete_ms = complete_ms - 2 * 86400000 WHERE id = 1")
    db.close()
    assert [r["id"] for r in results(d, *YEAR, "--timeZoneID=UTC")["result"]] == [1, 2]
    mv("import", str(src), "--archive", "alice", data_dir=d)
    assert [r["id"] for r in results(d, *YEAR, "--timeZoneID=UTC")["result"]] == [2, 3]
