"""The FileSystem connector's source files after archiving (afterArchiving
delete / move, moveTo) and its multiple-users layout, through
`mailvault cmd RunTemporaryProfile` / `CreateProfile` and, for the
privilege checks, a real `mailvault serve`.

What is proved, against the files the test writes and the messages the
archive then holds (compared by SHA-256 of the bytes `mailvault show`
returns):
- delete removes exactly the files whose message was archived: a file
  refused as not mail and a file of another extension stay;
- a file that cannot be moved is a warning of a run that succeeds;
- move keeps each file's path below moveTo, never overwrites a file there
  (a numbered name instead), and moves across file systems by copy;
- an mbox goes only when every message in it was archived;
- multiple users: each first-level directory into its user's archive, the
  directory of no user and a file at the top level left with a warning
  naming them; only administrators may use the layout;
- a file whose message was not committed is never deleted: the store
  refuses a batch mid-run (MAILVAULT_FAULT=fail:ingest-commit:2), the
  process dies between a commit and the first delete
  (MAILVAULT_FAULT=after-archiving:1), and kill -9 mid-run — each time every
  file missing from the source is in the archive, and a second run archives
  and deletes the rest."""

import hashlib
import json
import os
import signal
import subprocess
import time

import pytest

from mvserver import MvServer, init_with_admin
from mvtest import MAILVAULT_BIN, init_data_dir, mv, parse_json, search_json, show_hashes

RANGE = dict(fromIncluding="2000-01-01T00:00:00", toExcluding="2100-01-01T00:00:00", timeZoneID="UTC")
BATCH = 512   # ingest's messages per batch (src/ingest/ingest.c)


def message(tag, i):
    return ("From: s%d@example.org\r\nTo: r@example.org\r\nSubject: %s %d\r\n"
            "Message-ID: <%s.%d@example.org>\r\n\r\nbody of %s number %d\r\n" % (i, tag, i, tag, i, tag, i)).encode()


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def sha(data):
    return hashlib.sha256(data).hexdigest()


def files(root):
    """{path relative to root: sha256} of every regular file below root."""
    out = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = os.path.join(dirpath, n)
            with open(p, "rb") as f:
                out[os.path.relpath(p, root)] = sha(f.read())
    return out


def archived(d, archive=None):
    """SHA-256 of every message the archive (or every archive) holds."""
    hits = search_json("size:>0", d, archive=archive, limit=0)
    got, bad = show_hashes([h["id"] for h in hits], d)
    assert not bad, bad
    return set(got.values())


def envelope(cp):
    return parse_json(cp)


def run(d, details, env=None, check=(0, 1, 2)):
    props = {"name": "files", "type": "I", "connector": "FileSystem", "details": details}
    cp = mv("cmd", "RunTemporaryProfile", "--raw=true", "--properties=" + json.dumps(props), data_dir=d,
            check=check, env=env, timeout=600)
    return cp


def ok_run(d, details, env=None):
    e = envelope(run(d, details, env=env))
    assert e["statusCode"] == "succeeded" and e["error"] is None, e
    return e


def call(d, function, **args):
    argv = ["cmd", function] + ["--%s=%s" % (k, json.dumps(v) if isinstance(v, dict) else v)
                                for k, v in args.items()]
    return parse_json(mv(*argv, data_dir=d, check=(0, 1, 2)))


@pytest.fixture
def inst(tmp_path):
    d = str(tmp_path / "data")
    init_data_dir(d)
    return d


# ---------------------------------------------------------------------------
# delete, move, mbox

def test_delete_removes_exactly_the_archived_files(inst, tmp_path):
    d, src = inst, str(tmp_path / "mail")
    good = {}
    for i in range(8):
        rel = ("m%02d.eml" if i < 5 else "sub/deeper/m%02d.eml") % i
        good[rel] = message("deleteme", i)
        write(os.path.join(src, rel), good[rel])
    write(os.path.join(src, "refused.eml"), b"this is not a message, no header field at all\n")
    write(os.path.join(src, "notes.txt"), message("otherext", 1))   # not an extension read
    before = files(src)

    e = ok_run(d, {"path": src, "afterArchiving": "delete", "targetArchive": "keeper"})
    r = e["result"]
    assert r["archived"] == 8 and r["refused"] == 1 and r["deleted"] == 8 and r["moved"] == 0, e
    left = files(src)
    assert set(left) == {"refused.eml", "notes.txt"}, left
    assert left == {k: before[k] for k in left}
    assert {sha(b) for b in good.values()} <= archived(d, "keeper")
    assert os.path.isdir(os.path.join(src, "sub", "deeper")), "directories are left in place"

    # Again: nothing new, the refused file still kept, nothing else touched.
    r = ok_run(d, {"path": src, "afterArchiving": "delete", "targetArchive": "keeper"})["result"]
    assert r["archived"] == 0 and r["deleted"] == 0 and r["refused"] == 1, r
    assert files(src) == left

    # A file already archived is deleted by the next run (counted as already archived).
    write(os.path.join(src, "again.eml"), good["m00.eml"])
    r = ok_run(d, {"path": src, "afterArchiving": "delete", "targetArchive": "keeper"})["result"]
    assert r["alreadyArchived"] == 1 and r["deleted"] == 1, r
    assert set(files(src)) == {"refused.eml", "notes.txt"}


def test_maildir_message_files_go_one_by_one(inst, tmp_path):
    d, src, dest = inst, str(tmp_path / "Maildir"), str(tmp_path / "done")
    want = {"cur/1.host:2,S": message("maildirmove", 1), "new/2.host": message("maildirmove", 2),
            ".Sent/cur/3.host:2,RS": message("maildirmove", 3)}
    for rel, data in want.items():
        write(os.path.join(src, rel), data)
    os.makedirs(os.path.join(src, "tmp"))
    occupant = b"already there\n"
    write(os.path.join(dest, "cur", "1.host:2,S"), occupant)
    r = ok_run(d, {"path": src, "format": "maildir", "afterArchiving": "move", "moveTo": dest})["result"]
    assert r["archived"] == 3 and r["moved"] == 3, r
    assert files(src) == {}
    assert all(os.path.isdir(os.path.join(src, x)) for x in ("cur", "new", "tmp", ".Sent/cur"))
    # the flags stay last in a numbered name, so a Maildir reader still sees them
    assert files(dest) == {"cur/1.host:2,S": sha(occupant), "cur/1.host-1:2,S": sha(want["cur/1.host:2,S"]),
                           "new/2.host": sha(want["new/2.host"]),
                           ".Sent/cur/3.host:2,RS": sha(want[".Sent/cur/3.host:2,RS"])}


def test_keep_is_the_default(inst, tmp_path):
    d, src = inst, str(tmp_path / "mail")
    for i in range(3):
        write(os.path.join(src, "k%d.eml" % i), message("keepme", i))
    r = ok_run(d, {"path": src})["result"]
    assert r["archived"] == 3 and r["deleted"] == 0 and r["moved"] == 0
    assert len(files(src)) == 3


def test_move_keeps_relative_paths_and_never_overwrites(inst, tmp_path):
    d, src, dest = inst, str(tmp_path / "mail"), str(tmp_path / "done")
    want = {}
    for rel, i in (("a.eml", 1), ("x/b.eml", 2), ("x/y/c.eml", 3), ("x/y/d.eml", 4)):
        want[rel] = message("moveme", i)
        write(os.path.join(src, rel), want[rel])
    occupant = b"a file already in moveTo, never to be overwritten\n"
    write(os.path.join(dest, "x", "b.eml"), occupant)

    r = ok_run(d, {"path": src, "afterArchiving": "move", "moveTo": dest})["result"]
    assert r["archived"] == 4 and r["moved"] == 4 and r["deleted"] == 0, r
    assert files(src) == {}
    got = files(dest)
    assert got == {"a.eml": sha(want["a.eml"]), "x/b.eml": sha(occupant), "x/b-1.eml": sha(want["x/b.eml"]),
                   "x/y/c.eml": sha(want["x/y/c.eml"]), "x/y/d.eml": sha(want["x/y/d.eml"])}, got
    assert {sha(b) for b in want.values()} <= archived(d)


def test_a_file_that_cannot_be_moved_is_a_warning(inst, tmp_path):
    d, src = inst, str(tmp_path / "mail")
    want = {"w%d.eml" % i: message("cannotmove", i) for i in range(3)}
    for rel, data in want.items():
        write(os.path.join(src, rel), data)
    blocker = str(tmp_path / "a-file")
    write(blocker, b"a regular file where moveTo needs a directory\n")
    e = ok_run(d, {"path": src, "afterArchiving": "move", "moveTo": os.path.join(blocker, "sub")})
    r = e["result"]
    assert r["archived"] == 3 and r["moved"] == 0 and r["warnings"] == 3, e
    assert files(src) == {rel: sha(b) for rel, b in want.items()}
    assert "archived, but not moved" in e["logOutput"], e["logOutput"]
    result = call(d, "GetWorkerResults", **RANGE)["result"][-1]
    assert result["result"] == "completedWithWarnings", result
    report = call(d, "GetWorkerResultReport", id=result["id"])["result"]["report"]
    assert sorted(w["item"] for w in report["warnings"]) == sorted(os.path.join(src, rel) for rel in want), report


def test_move_across_file_systems(inst, tmp_path):
    shm = "/dev/shm"
    if not os.path.isdir(shm) or os.stat(shm).st_dev == os.stat(str(tmp_path)).st_dev:
        pytest.skip("no second file system at /dev/shm")
    dest = os.path.join(shm, "mv-moveto-%d-%d" % (os.getpid(), time.monotonic_ns()))
    d, src = inst, str(tmp_path / "mail")
    want = {"p/q.eml": message("acrossfs", 1), "r.eml": message("acrossfs", 2)}
    for rel, data in want.items():
        write(os.path.join(src, rel), data)
    try:
        r = ok_run(d, {"path": src, "afterArchiving": "move", "moveTo": dest})["result"]
        assert r["moved"] == 2, r
        assert files(src) == {}
        assert files(dest) == {rel: sha(b) for rel, b in want.items()}
    finally:
        subprocess.run(["rm", "-rf", dest])


def test_details_are_checked(inst, tmp_path):
    d, src = inst, str(tmp_path / "mail")
    props = {"name": "p", "type": "I", "connector": "FileSystem"}

    def refusal(**details):
        e = call(d, "CreateProfile", raw="true", properties=dict(props, details=dict({"path": src}, **details)))
        assert e["statusCode"] == "failed", e
        return e["error"]["message"]

    assert "details.afterArchiving" in refusal(afterArchiving="remove")
    assert "details.moveTo is required" in refusal(afterArchiving="move")
    assert "details.moveTo" in refusal(afterArchiving="delete", moveTo="/tmp/x")
    assert "inside path" in refusal(afterArchiving="move", moveTo=src + "/done")
    assert "details.moveTo" in refusal(afterArchiving="move", moveTo="relative/dir")
    assert "details.layout" in refusal(layout="multiple")
    assert "details.targetArchive" in refusal(layout="multipleUsers", targetArchive="bob")
    assert "details.format" in refusal(layout="multipleUsers", format="mbox")
    e = call(d, "CreateProfile", raw="true", properties=dict(props, details={
        "path": src, "afterArchiving": "move", "moveTo": str(tmp_path / "done"), "layout": "multipleUsers"}))
    assert e["statusCode"] == "succeeded", e
    assert e["result"]["details"]["targetArchive"] == "" and e["result"]["details"]["afterArchiving"] == "move"


def mbox_of(tag, n, bad_at=None):
    out = b""
    for i in range(n):
        body = message(tag, i) if i != bad_at else b"no header here, only words\r\n"
        out += b"From sender@example.org Mon Jan  1 00:00:00 2024\n" + body.replace(b"\r\n", b"\n") + b"\n"
    return out


def test_mbox_removed_only_when_every_message_is_archived(inst, tmp_path):
    d = inst
    whole = str(tmp_path / "whole.mbox")
    damaged = str(tmp_path / "damaged.mbox")
    write(whole, mbox_of("mboxwhole", 5))
    write(damaged, mbox_of("mboxpart", 5, bad_at=2))

    r = ok_run(d, {"path": whole, "format": "mbox", "afterArchiving": "delete"})["result"]
    assert r["archived"] == 5 and r["deleted"] == 1, r
    assert not os.path.exists(whole)

    e = ok_run(d, {"path": damaged, "format": "mbox", "afterArchiving": "delete"})
    r = e["result"]
    assert r["archived"] == 4 and r["refused"] == 1 and r["deleted"] == 0 and r["warnings"] == 1, e
    assert os.path.exists(damaged)
    assert "warning: %s: kept" % damaged in e["logOutput"], e["logOutput"]
    results = call(d, "GetWorkerResults", **RANGE)["result"]
    assert results[-1]["result"] in ("completedWithErrors", "completedWithWarnings"), results[-1]


# ---------------------------------------------------------------------------
# multiple users

def test_multiple_users_layout(tmp_path):
    d = str(tmp_path / "data")
    admin_pw = init_with_admin(d)
    for user in ("alice", "bob"):
        mv("cmd", "CreateUser", "--userName=" + user, "--privileges=login,archive,modifyArchiveProfiles",
           "--password=%s-Pw-4471-long" % user, data_dir=d)
    src = str(tmp_path / "users")
    alice = {"alice/a%d.eml" % i: message("alicemail", i) for i in range(3)}
    bob = {"Bob/Sent/b%d.eml" % i: message("bobmail", i) for i in range(2)}   # names as users are looked up
    carol = {"carol/c0.eml": message("carolmail", 0)}
    top = {"top.eml": message("topmail", 0)}
    for rel, data in {**alice, **bob, **carol, **top}.items():
        write(os.path.join(src, rel), data)

    e = ok_run(d, {"path": src, "layout": "multipleUsers", "afterArchiving": "delete"})
    r = e["result"]
    assert r["archived"] == 5 and r["deleted"] == 5 and r["warnings"] == 2, e
    assert archived(d, "alice") == {sha(b) for b in alice.values()}
    assert archived(d, "bob") == {sha(b) for b in bob.values()}
    assert set(files(src)) == {"carol/c0.eml", "top.eml"}
    log = e["logOutput"]
    assert "'carol' is not a user" in log and os.path.join(src, "top.eml") in log, log
    folders = {(f["archive"], f["folder"]) for f in search_json("size:>0", d, limit=0)}
    assert ("bob", "Sent") in folders, folders
    result = call(d, "GetWorkerResults", **RANGE)["result"][-1]
    assert result["result"] == "completedWithWarnings", result
    report = call(d, "GetWorkerResultReport", id=result["id"])["result"]
    warned = {w["item"]: w["reason"] for w in report["report"]["warnings"]}
    assert set(warned) == {os.path.join(src, "carol"), os.path.join(src, "top.eml")}, report

    # Only administrators: alice may create profiles, but not this layout,
    # nor move files outside her imports directory.
    with MvServer(d, password=admin_pw) as s:
        who = dict(user="alice", password="alice-Pw-4471-long")

        def refusal(details):
            props = {"name": "mine", "type": "I", "connector": "FileSystem", "details": details}
            env = s.call("CreateProfile", **who, properties=json.dumps(props), raw=True)
            assert env["statusCode"] == "failed", env
            return env["error"]["message"]

        assert "details.layout" in refusal({"path": "mail", "layout": "multipleUsers"})
        assert "details.moveTo" in refusal({"path": "mail", "afterArchiving": "move", "moveTo": "/tmp/elsewhere"})
        assert "details.moveTo" in refusal({"path": "mail", "afterArchiving": "move", "moveTo": "../bob"})
        props = {"name": "mine", "type": "I", "connector": "FileSystem",
                 "details": {"path": "mail", "afterArchiving": "move", "moveTo": "done"}}
        env = s.call("CreateProfile", **who, properties=json.dumps(props), raw=True)
        assert env["statusCode"] == "succeeded", env
        # ... and her run moves below her own imports directory.
        mine = os.path.join(d, "imports", "alice")
        write(os.path.join(mine, "mail", "x", "m.eml"), message("alicemove", 1))
        env = s.call("RunProfile", **who, id=env["result"]["id"])
        assert env["statusCode"] == "succeeded" and env["result"]["moved"] == 1, env
        assert files(os.path.join(mine, "done")) == {"x/m.eml": sha(message("alicemove", 1))}


# ---------------------------------------------------------------------------
# never a file whose message was not committed

def many(src, tag, n):
    data = {}
    for i in range(n):
        rel = "d%02d/m%05d.eml" % (i // 200, i)
        data[rel] = message(tag, i)
        write(os.path.join(src, rel), data[rel])
    return data


def check_missing_are_archived(d, src, data):
    """Every file gone from src holds a message the archive has; returns how many are gone."""
    left = files(src)
    gone = [rel for rel in data if rel not in left]
    assert all(left[rel] == sha(data[rel]) for rel in left), "a file left was changed"
    have = archived(d)
    lost = [rel for rel in gone if sha(data[rel]) not in have]
    assert not lost, "%d files deleted whose message is not in the archive: %s" % (len(lost), lost[:5])
    return len(gone)


def finish_and_check(d, src, data):
    """A run without faults archives the rest and deletes every file."""
    e = ok_run(d, {"path": src, "afterArchiving": "delete"})
    assert files(src) == {}, e
    assert {sha(b) for b in data.values()} <= archived(d)
    return e["result"]


@pytest.mark.xdist_group("profile_source_files_faults")
def test_a_refused_batch_keeps_its_files(inst, tmp_path):
    d, src = inst, str(tmp_path / "mail")
    data = many(src, "refusedbatch", 3 * BATCH - 100)
    env = dict(os.environ, MAILVAULT_FAULT="fail:ingest-commit:2")
    e = envelope(run(d, {"path": src, "afterArchiving": "delete"}, env=env))
    assert e["statusCode"] == "failed" and "injected fault" in e["error"]["message"], e
    gone = check_missing_are_archived(d, src, data)
    # Exactly the first batch went: the second was refused, the third never written.
    assert gone == BATCH, gone
    assert len(archived(d)) == BATCH
    r = finish_and_check(d, src, data)
    assert r["archived"] == len(data) - BATCH and r["deleted"] == len(data) - BATCH, r


@pytest.mark.xdist_group("profile_source_files_faults")
def test_a_crash_between_commit_and_delete_leaves_the_file(inst, tmp_path):
    d, src = inst, str(tmp_path / "mail")
    data = many(src, "crashbeforedelete", BATCH + 50)
    env = dict(os.environ, MAILVAULT_FAULT="after-archiving:1")
    cp = run(d, {"path": src, "afterArchiving": "delete"}, env=env, check=86)
    assert cp.returncode == 86
    assert check_missing_are_archived(d, src, data) == 0
    committed = len(archived(d))
    assert committed >= 1
    r = finish_and_check(d, src, data)
    assert r["alreadyArchived"] == committed and r["deleted"] == len(data), r


@pytest.mark.xdist_group("profile_source_files_faults")
def test_kill9_mid_run_deletes_only_archived_files(inst, tmp_path):
    d, src = inst, str(tmp_path / "mail")
    data = many(src, "killnine", 6 * BATCH)
    props = {"name": "files", "type": "I", "connector": "FileSystem",
             "details": {"path": src, "afterArchiving": "delete"}}
    rounds = 0
    while rounds < 3 and files(src):
        before = len(files(src))
        p = subprocess.Popen([MAILVAULT_BIN, "--data-dir", d, "cmd", "RunTemporaryProfile", "--raw=true",
                              "--properties=" + json.dumps(props)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        # Killed once some files are gone (so deleting was under way), if the run has not ended by then.
        while p.poll() is None and time.monotonic() < deadline:
            if sum(len(n) for _, _, n in os.walk(src)) < before - 100:
                break
            time.sleep(0.005)
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
        p.wait()
        check_missing_are_archived(d, src, data)
        rounds += 1
    finish_and_check(d, src, data)
