"""Archive stores through the Administration API (`mailvault cmd Function
--arg=value`): creating, attaching, detaching, renaming, states, keys
(UnlockStore, RenewMasterKey, crash-safety of the renewal), moving stores and
the whole data directory, CreateBackup and `mailvault restore`, and the
automatic store creation settings.

Every test makes its own small instances and mail, so they run in seconds."""

import json
import os
import re
import shutil
import sqlite3

import pytest

import storedb
from mvtest import mv, parse_json, search_json, sha256, show

# The exit status of a process ended by the MAILVAULT_FAULT test hook.
FAULT_EXIT = 86


# ---------------------------------------------------------------------------
# helpers


def init(path):
    """Initialises an instance; returns (data dir, recovery key)."""
    cp = mv("init", data_dir=path)
    m = re.search(rb"Recovery key: ([A-Z0-9-]+)", cp.stdout)
    assert m, cp.stdout
    return path, m.group(1).decode()


def call(data_dir, function, check=(0, 1, 2), env=None, **args):
    """`mailvault cmd Function --k=v ...`; returns the JSON envelope."""
    argv = ["cmd", function]
    for k, v in args.items():
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, (dict, list)):
            v = json.dumps(v)
        argv.append("--%s=%s" % (k, v))
    cp = mv(*argv, data_dir=data_dir, check=check, env=env)
    env_ = parse_json(cp)
    assert "statusCode" in env_ and "error" in env_ and "result" in env_, env_
    assert (cp.returncode == 0) == (env_["statusCode"] == "succeeded"), (cp.returncode, env_)
    return env_


def ok(data_dir, function, **args):
    e = call(data_dir, function, **args)
    assert e["statusCode"] == "succeeded" and e["error"] is None, e
    return e["result"]


def refused(data_dir, function, **args):
    """The error message of a call that must fail."""
    e = call(data_dir, function, **args)
    assert e["statusCode"] == "failed", e
    assert e["error"] and e["error"]["message"], e
    return e["error"]["message"]


def stores(data_dir, include_size=False):
    return {s["id"]: s for s in ok(data_dir, "GetStores", includeSize=include_size)}


def current_ids(data_dir):
    return [i for i, s in stores(data_dir).items() if s["requestedState"] == "current"]


def write_mail(directory, tag, n):
    """n small EML files whose subjects and bodies carry tag."""
    os.makedirs(directory, exist_ok=True)
    for i in range(n):
        raw = ("From: Sender %d <sender%d@example.com>\r\n"
               "To: rcpt@example.org\r\n"
               "Subject: %s message %d\r\n"
               "Date: Mon, 1 Jan 2024 10:%02d:00 +0000\r\n"
               "Message-ID: <%s.%d@example.com>\r\n"
               "\r\n"
               "Body of %s number %d.\r\n" % (i, i, tag, i, i % 60, tag, i, tag, i))
        with open(os.path.join(str(directory), "%s-%d.eml" % (tag, i)), "wb") as f:
            f.write(raw.encode())
    return directory


def import_mail(data_dir, tmp_path, tag, n=5, archive="user"):
    src = write_mail(tmp_path / ("mail-" + tag), tag, n)
    cp = mv("import", src, "--archive", archive, "--json", data_dir=data_dir)
    summary = parse_json(cp)
    assert summary["imported"] == n, summary
    return summary


def hits(data_dir, query):
    return search_json(query, data_dir, limit=0)


def bodies(data_dir, query):
    """{message id: sha256 of `show`} for every hit of query."""
    return {h["id"]: sha256(show(h["id"], data_dir)) for h in hits(data_dir, query)}


def master_rows(data_dir):
    con = sqlite3.connect(os.path.join(str(data_dir), "master.sqlite"))
    try:
        con.row_factory = sqlite3.Row
        return {r["id"]: dict(r) for r in con.execute("SELECT * FROM stores")}
    finally:
        con.close()


def store_meta(db_dir):
    """The store's own values: its keys file, plain beside the encrypted db."""
    return storedb.keys_file_values(db_dir)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


@pytest.fixture
def inst(tmp_path):
    return init(tmp_path / "data")


# ---------------------------------------------------------------------------
# GetStores, CreateStore


def test_fresh_instance_has_one_current_store(inst):
    d, _ = inst
    s = ok(d, "GetStores")
    assert len(s) == 1
    s1 = s[0]
    assert s1["id"] == 1 and s1["name"] == "store1" and s1["type"] == "FileSystemInternal"
    assert s1["requestedState"] == "current" and s1["state"] == "current" and s1["error"] is None
    assert s1["databasePath"] == os.path.join(str(d), "stores", "store1", "db")
    assert set(s1["size"]) == {"messages", "contentBytes", "databaseBytes", "indexBytes"}
    assert s1["size"]["messages"] == 0
    assert "size" not in ok(d, "GetStores", includeSize=False)[0]


def test_create_store_default_paths(inst, tmp_path):
    d, _ = inst
    s = ok(d, "CreateStore", name="second")
    assert s["id"] == 2 and s["requestedState"] == "normal" and s["state"] == "normal"
    base = os.path.join(str(d), "stores", "second")
    assert (s["databasePath"], s["contentPath"], s["indexPath"]) == (
        os.path.join(base, "db"), os.path.join(base, "content"), os.path.join(base, "index"))
    assert os.path.isfile(os.path.join(base, "db", "store.sqlite"))
    assert os.path.isfile(os.path.join(base, "index", "index.sqlite"))
    # kept relative to the data directory, so the directory can move
    row = master_rows(d)[2]
    assert row["db_path"] == "stores/second/db" and row["content_path"] == "stores/second/content"
    # the store carries its own key records and owner
    meta = store_meta(os.path.join(base, "db"))
    for key in ("instance_id", "key_master", "key_recovery", "recovery_salt", "store_uid"):
        assert meta.get(key), (key, meta)
    assert current_ids(d) == [1]


def test_create_store_three_directories_and_current(inst, tmp_path):
    d, _ = inst
    import_mail(d, tmp_path, "first", 3)
    dbd, cd, ixd = (tmp_path / "fast" / "db", tmp_path / "slow" / "content", tmp_path / "ssd" / "index")
    s = ok(d, "CreateStore", name="split", databasePath=dbd, contentPath=cd, indexPath=ixd,
           requestedState="current")
    assert (s["databasePath"], s["contentPath"], s["indexPath"]) == (str(dbd), str(cd), str(ixd))
    assert os.path.isfile(dbd / "store.sqlite") and os.path.isfile(ixd / "index.sqlite")
    assert current_ids(d) == [s["id"]], "making a store current must demote the old one"
    assert stores(d)[1]["requestedState"] == "normal"
    import_mail(d, tmp_path, "second", 4)
    ids = {h["id"] for h in hits(d, "second")}
    assert len(ids) == 4 and all(i.startswith("%d:" % s["id"]) for i in ids), ids
    assert any(n.startswith("seg-") and n.endswith(".mvs") for n in os.listdir(cd))
    assert not os.path.exists(dbd / "content"), "databasePath is used directly, not as a base"
    # paths outside the data directory are kept absolute
    assert master_rows(d)[s["id"]]["db_path"] == str(dbd)
    # all three components in one directory is allowed too
    one = tmp_path / "one"
    s3 = ok(d, "CreateStore", name="onedir", databasePath=one)
    assert s3["contentPath"] == s3["indexPath"] == s3["databasePath"] == str(one)
    assert os.path.isfile(one / "store.sqlite") and os.path.isfile(one / "index.sqlite")


def test_create_store_refuses_existing_store_and_shared_dirs(inst, tmp_path):
    d, _ = inst
    msg = refused(d, "CreateStore", name="again", databasePath=os.path.join(str(d), "stores", "store1", "db"),
                  contentPath=tmp_path / "c", indexPath=tmp_path / "i")
    assert "store.sqlite" in msg and "AttachStore" in msg, msg
    ok(d, "CreateStore", name="x", databasePath=tmp_path / "x")
    msg = refused(d, "CreateStore", name="y", databasePath=tmp_path / "y", contentPath=tmp_path / "x")
    assert "already uses" in msg, msg
    assert sorted(stores(d)) == [1, 2]


def test_exactly_one_current(inst, tmp_path):
    d, _ = inst
    ok(d, "CreateStore", name="b")
    ok(d, "CreateStore", name="c", requestedState="current")
    assert current_ids(d) == [3]
    ok(d, "SetStoreRequestedState", id=2, requestedState="current")
    assert current_ids(d) == [2]
    assert stores(d)[3]["requestedState"] == "normal"
    for state in ("normal", "writeProtected", "disabled"):
        msg = refused(d, "SetStoreRequestedState", id=2, requestedState=state)
        assert "store 2 (b) is current" in msg and "another store current" in msg, msg
    msg = refused(d, "DetachStore", id=2)
    assert "store 2 (b) is current" in msg, msg
    assert current_ids(d) == [2]
    # setting the state it already has is fine
    ok(d, "SetStoreRequestedState", id=2, requestedState="current")
    ok(d, "SetStoreRequestedState", id=1, requestedState="writeProtected")
    assert stores(d)[1]["state"] == "writeProtected"
    ok(d, "SetStoreRequestedState", id=1, requestedState="current")
    assert current_ids(d) == [1]


def test_new_mail_goes_to_the_current_store(inst, tmp_path):
    d, _ = inst
    import_mail(d, tmp_path, "alpha", 2)
    ok(d, "CreateStore", name="b", requestedState="current")
    import_mail(d, tmp_path, "beta", 2)
    assert {h["id"].split(":")[0] for h in hits(d, "alpha")} == {"1"}
    assert {h["id"].split(":")[0] for h in hits(d, "beta")} == {"2"}
    sizes = {i: s["size"]["messages"] for i, s in stores(d, include_size=True).items()}
    assert sizes == {1: 2, 2: 2}


def test_disabled_store_is_invisible_to_search(inst, tmp_path):
    d, _ = inst
    import_mail(d, tmp_path, "old", 3)
    ok(d, "CreateStore", name="new", requestedState="current")
    import_mail(d, tmp_path, "fresh", 2)
    assert len(hits(d, "message")) == 5
    ok(d, "SetStoreRequestedState", id=1, requestedState="disabled")
    assert stores(d)[1]["state"] == "disabled"
    found = hits(d, "message")
    assert len(found) == 2 and all(h["id"].startswith("2:") for h in found), found
    assert hits(d, "old") == []
    ok(d, "SetStoreRequestedState", id=1, requestedState="normal")
    assert len(hits(d, "message")) == 5


def test_write_protected_store_refuses_modification(inst, tmp_path):
    """mv_instance_require_modifiable, through a function that modifies
    content (DeleteMessage)."""
    d, _ = inst
    import_mail(d, tmp_path, "keep", 1)
    ok(d, "CreateStore", name="b", requestedState="current")
    ok(d, "SetStoreRequestedState", id=1, requestedState="writeProtected")
    msg_id = hits(d, "keep")[0]["id"]
    e = call(d, "DeleteMessage", id=msg_id, reason="test")
    assert e["statusCode"] == "failed", e
    assert "write-protected" in e["error"]["message"] and "store 1" in e["error"]["message"], e
    assert len(hits(d, "keep")) == 1


# ---------------------------------------------------------------------------
# RenameStore and bad arguments


def test_rename_store(inst):
    d, _ = inst
    ok(d, "CreateStore", name="b")
    ok(d, "RenameStore", id=2, name="Archive 2019")
    assert stores(d)[2]["name"] == "Archive 2019"
    # renaming does not move files
    assert stores(d)[2]["databasePath"].endswith(os.path.join("stores", "b", "db"))
    assert "already used by store 1" in refused(d, "RenameStore", id=2, name="store1")
    assert "empty" in refused(d, "RenameStore", id=2, name="")
    assert "control character" in refused(d, "RenameStore", id=2, name="a\tb")
    assert "at most 200" in refused(d, "RenameStore", id=2, name="x" * 201)
    ok(d, "RenameStore", id=2, name="y" * 200)
    assert "id 99" in refused(d, "RenameStore", id=99, name="z")
    ok(d, "RenameStore", id=2, name="store-b")
    assert stores(d)[2]["name"] == "store-b"


def test_bad_arguments_name_the_argument(inst, tmp_path):
    d, _ = inst
    cases = [
        ("CreateStore", {}, "name"),
        ("CreateStore", {"name": "x", "requestedState": "sleeping"}, "requestedState"),
        ("CreateStore", {"name": "x", "type": "Floppy"}, "type"),
        ("CreateStore", {"name": "x", "databasePath": "relative/dir"}, "databasePath"),
        ("CreateStore", {"name": "x", "contentPath": str(tmp_path / "c")}, "databasePath"),
        ("CreateStore", {"name": "x", "databasePath": str(tmp_path / "d"), "indexPath": "rel"}, "indexPath"),
        ("CreateStore", {"name": "x", "databaseName": "archive"}, "databaseName"),
        ("CreateStore", {"name": "x", "serverName": "db.example.com"}, "serverName"),
        ("CreateStore", {"name": "x", "password": "secret"}, "password"),
        ("AttachStore", {"name": "x"}, "type"),
        ("DetachStore", {}, "id"),
        ("DetachStore", {"id": "one"}, "id"),
        ("DetachStore", {"id": 42}, "id 42"),
        ("RenameStore", {"id": 1}, "name"),
        ("SetStoreRequestedState", {"id": 1}, "requestedState"),
        ("SetStoreRequestedState", {"id": 1, "requestedState": "off"}, "requestedState"),
        ("SetStoreProperties", {"id": 1, "userName": "sa"}, "userName"),
        ("UnlockStore", {"id": 1}, "passphrase"),
        ("CreateBackup", {}, "path"),
        ("CreateBackup", {"path": "relative"}, "path"),
        ("GetStores", {"includeSize": "maybe"}, "includeSize"),
        ("CreateStore", {"name": "x", "bogus": "1"}, "bogus"),
    ]
    for function, args, word in cases:
        msg = refused(d, function, **args)
        assert word in msg, (function, args, msg)
    assert sorted(stores(d)) == [1], "refused calls must not create stores"


def test_other_store_types_are_refused(inst):
    d, _ = inst
    for t in ("SQLServer", "PostgreSQL"):
        msg = refused(d, "CreateStore", name="ext", type=t, serverName="db")
        assert msg == ("store type %s is not supported (FileSystemInternal only; PostgreSQL comes later)" % t), msg
        msg = refused(d, "AttachStore", name="ext", type=t)
        assert "store type %s is not supported" % t in msg
    ok(d, "CreateStore", name="fs", type="FileSystemInternal")
    assert sorted(stores(d)) == [1, 2]


# ---------------------------------------------------------------------------
# Moving a store to another instance: detach, move, attach, UnlockStore


def test_store_moves_to_another_instance(tmp_path):
    a, key_a = init(tmp_path / "a")
    b, key_b = init(tmp_path / "b")
    ok(a, "CreateStore", name="travel", requestedState="current")
    import_mail(a, tmp_path, "journey", 4)
    before = bodies(a, "journey")
    assert len(before) == 4
    ok(a, "SetStoreRequestedState", id=1, requestedState="current")
    ok(a, "DetachStore", id=2)
    assert sorted(stores(a)) == [1]
    assert hits(a, "journey") == []

    # move the store's directory away from instance a
    moved = tmp_path / "carried"
    shutil.move(os.path.join(str(a), "stores", "travel"), str(moved))

    # not a store
    msg = refused(b, "AttachStore", name="bad", type="FileSystemInternal", databasePath=tmp_path / "nothing")
    assert str(tmp_path / "nothing") in msg and "no such directory" in msg, msg
    os.makedirs(tmp_path / "empty")
    msg = refused(b, "AttachStore", name="bad", type="FileSystemInternal", databasePath=tmp_path / "empty")
    assert "does not hold a mailvault store" in msg and str(tmp_path / "empty") in msg, msg
    # a foreign store cannot be attached as current
    msg = refused(b, "AttachStore", name="travel", type="FileSystemInternal", databasePath=moved / "db",
                  contentPath=moved / "content", indexPath=moved / "index", requestedState="current")
    assert "UnlockStore" in msg, msg

    s = ok(b, "AttachStore", name="travel", type="FileSystemInternal", databasePath=moved / "db",
           contentPath=moved / "content", indexPath=moved / "index")
    sid = s["id"]
    assert s["state"] == "locked" and "UnlockStore" in s["error"], s
    assert s["requestedState"] == "normal"
    assert stores(b)[sid]["state"] == "locked"
    # locked: not searchable, not readable, cannot become current
    assert hits(b, "journey") == []
    some_id = sorted(before)[0].split(":")[1]
    cp = mv("show", "%d:%s" % (sid, some_id), data_dir=b, check=1)
    assert b"locked" in cp.stderr, cp.stderr
    assert "locked" in refused(b, "SetStoreRequestedState", id=sid, requestedState="current")
    # stats names the locked store and still counts the others (exit 1: not all were read)
    cp = mv("stats", "--json", data_dir=b, check=1)
    st = json.loads(cp.stdout)
    by_id = {x["id"]: x for x in st["stores"]}
    assert "locked" in by_id[sid]["error"] and "messages" not in by_id[sid], by_id
    assert by_id[1]["messages"] == st["total"]["messages"], st
    assert b"store %d (travel) left out" % sid in cp.stderr, cp.stderr
    cp = mv("stats", data_dir=b, check=1)
    assert re.search(rb"store %d travel \(\w+\): not read: .*locked" % sid, cp.stdout), cp.stdout
    assert b"total (of the stores read): " in cp.stdout, cp.stdout
    # attaching the same store twice is refused
    msg = refused(b, "AttachStore", name="travel2", type="FileSystemInternal", databasePath=moved / "db",
                  contentPath=moved / "content", indexPath=moved / "index")
    assert "already uses" in msg, msg
    # ... and so is a copy of it (same store identity, other directories)
    shutil.copytree(str(moved), str(tmp_path / "copy"))
    msg = refused(b, "AttachStore", name="copy", type="FileSystemInternal", databasePath=tmp_path / "copy" / "db",
                  contentPath=tmp_path / "copy" / "content", indexPath=tmp_path / "copy" / "index")
    assert "already attached as store %d (travel)" % sid in msg, msg

    # the wrong recovery key changes nothing
    row_before = master_rows(b)[sid]
    meta_before = store_meta(moved / "db")
    msg = refused(b, "UnlockStore", id=sid, passphrase=key_b)
    assert msg == "wrong recovery key for store %d (travel)" % sid, msg
    assert master_rows(b)[sid] == row_before
    assert store_meta(moved / "db") == meta_before
    assert stores(b)[sid]["state"] == "locked"

    # the right one (typed carelessly: lower case, spaces) takes the store over
    typed = key_a.lower().replace("-", " ")
    ok(b, "UnlockStore", id=sid, passphrase=typed)
    s = stores(b)[sid]
    assert s["state"] == "normal" and s["error"] is None, s
    meta = store_meta(moved / "db")
    assert meta["instance_id"] != meta_before["instance_id"]
    assert meta["key_master"] != meta_before["key_master"]
    after = {("%d:" % sid) + i.split(":")[1]: v for i, v in before.items()}
    assert bodies(b, "journey") == after
    # b's own recovery key now opens it elsewhere (its wrapping was replaced)
    ok(b, "DetachStore", id=sid)
    c, _ = init(tmp_path / "c")
    s = ok(c, "AttachStore", name="travel", type="FileSystemInternal", databasePath=moved / "db",
           contentPath=moved / "content", indexPath=moved / "index")
    assert s["state"] == "locked"
    assert "wrong recovery key" in refused(c, "UnlockStore", id=s["id"], passphrase=key_a)
    ok(c, "UnlockStore", id=s["id"], passphrase=key_b)
    assert len(hits(c, "journey")) == 4
    # recovery keys typed, right or wrong, are in no audit log nor any
    # database file: an append-only log could never forget them
    for d in (b, c):
        log_text = mv("audit", "--json", data_dir=d).stdout.decode()
        assert 'UnlockStore' in log_text and "(hidden)" in log_text, log_text
        for key in (key_a, key_b, typed):
            for form in (key, key.replace("-", ""), key.lower()):
                assert form not in log_text, "a recovery key in the audit log of %s" % d
                with open(os.path.join(str(d), "master.sqlite"), "rb") as f:
                    assert form.encode() not in f.read(), "a recovery key in master.sqlite of %s" % d


def test_reattach_to_own_instance_needs_no_unlock(inst, tmp_path):
    d, _ = inst
    ok(d, "CreateStore", name="b", databasePath=tmp_path / "b")
    ok(d, "SetStoreRequestedState", id=2, requestedState="current")
    import_mail(d, tmp_path, "homing", 2)
    ok(d, "SetStoreRequestedState", id=1, requestedState="current")
    ok(d, "DetachStore", id=2)
    shutil.move(str(tmp_path / "b"), str(tmp_path / "b2"))
    s = ok(d, "AttachStore", name="back", type="FileSystemInternal", databasePath=tmp_path / "b2")
    assert s["id"] == 3, "store ids are never reused"
    assert s["state"] == "normal" and s["error"] is None, s
    assert {h["id"].split(":")[0] for h in hits(d, "homing")} == {"3"}


def test_moved_store_directories_show_as_error_until_set(inst, tmp_path):
    d, _ = inst
    ok(d, "CreateStore", name="b", requestedState="current")
    import_mail(d, tmp_path, "wander", 2)
    ok(d, "SetStoreRequestedState", id=1, requestedState="current")
    ok(d, "SetStoreRequestedState", id=2, requestedState="disabled")
    shutil.move(os.path.join(str(d), "stores", "b"), str(tmp_path / "elsewhere"))
    s = stores(d)[2]
    assert s["state"] == "error" and "missing" in s["error"], s
    e = call(d, "RetryOpenStores")
    assert e["statusCode"] == "succeeded" and "store 2 (b)" in (e["logOutput"] or ""), e
    # the new place must hold this store, not another one
    msg = refused(d, "SetStoreProperties", id=2, databasePath=os.path.join(str(d), "stores", "store1", "db"),
                  contentPath=os.path.join(str(d), "stores", "store1", "content"),
                  indexPath=os.path.join(str(d), "stores", "store1", "index"))
    assert "already uses" in msg or "another store" in msg, msg
    new = tmp_path / "elsewhere"
    ok(d, "SetStoreProperties", id=2, type="FileSystemInternal", databasePath=new / "db",
       contentPath=new / "content", indexPath=new / "index")
    ok(d, "SetStoreRequestedState", id=2, requestedState="normal")
    s = stores(d)[2]
    assert s["state"] == "normal" and s["databasePath"] == str(new / "db"), s
    assert len(hits(d, "wander")) == 2


# ---------------------------------------------------------------------------
# RenewRecoveryKey


def test_renew_recovery_key(tmp_path):
    """A recovery key that leaked (an audit log of a version that wrote
    UnlockStore's argument in clear) is replaced: afterwards only the new
    one opens the stores elsewhere, for stores made before and after; the
    audit log says so and never holds the new key."""
    a, old_key = init(tmp_path / "a")
    ok(a, "CreateStore", name="before", requestedState="current")
    import_mail(a, tmp_path, "rotated", 3)
    got = ok(a, "RenewRecoveryKey")
    new_key = got["recoveryKey"]
    assert re.fullmatch(r"[A-Z0-9-]+", new_key) and new_key != old_key, got
    ok(a, "CreateStore", name="after", requestedState="current")
    import_mail(a, tmp_path, "later", 2)
    ok(a, "SetStoreRequestedState", id=1, requestedState="current")
    log_text = mv("audit", "--json", data_dir=a).stdout.decode()
    entries = [json.loads(line) for line in log_text.splitlines()]
    renewal = [e for e in entries if "RenewRecoveryKey" in e["details"]]
    assert len(renewal) == 1 and renewal[0]["success"], entries
    assert "no longer opens" in json.loads(renewal[0]["details"])["note"], renewal
    assert new_key not in log_text and new_key.replace("-", "") not in log_text
    with open(os.path.join(str(a), "master.sqlite"), "rb") as f:
        assert new_key.encode() not in f.read()
    # both stores move to another instance, where only the new key opens them
    for sid, name in ((2, "before"), (3, "after")):
        ok(a, "DetachStore", id=sid)
        b, _ = init(tmp_path / ("b-" + name))
        s = ok(b, "AttachStore", name=name, type="FileSystemInternal",
               databasePath=os.path.join(str(a), "stores", name, "db"),
               contentPath=os.path.join(str(a), "stores", name, "content"),
               indexPath=os.path.join(str(a), "stores", name, "index"))
        assert s["state"] == "locked", s
        assert "wrong recovery key" in refused(b, "UnlockStore", id=s["id"], passphrase=old_key)
        ok(b, "UnlockStore", id=s["id"], passphrase=new_key)
        assert len(hits(b, "rotated" if name == "before" else "later")) == (3 if name == "before" else 2)
    # a second renewal replaces the first
    again = ok(a, "RenewRecoveryKey")["recoveryKey"]
    assert again not in (old_key, new_key)


# ---------------------------------------------------------------------------
# RenewMasterKey


def test_renew_master_key(inst, tmp_path):
    d, _ = inst
    import_mail(d, tmp_path, "secret", 3)
    ok(d, "CreateStore", name="b", requestedState="current")
    import_mail(d, tmp_path, "other", 2)
    before = bodies(d, "message")
    key_file = os.path.join(str(d), "master.key")
    old_key = read_bytes(key_file)
    rows_before = master_rows(d)
    ok(d, "RenewMasterKey")
    assert read_bytes(key_file) != old_key
    assert os.stat(key_file).st_mode & 0o777 == 0o600
    rows = master_rows(d)
    for i in rows:
        assert rows[i]["key_master"] != rows_before[i]["key_master"]
        assert rows[i]["key_master_next"] is None
    assert bodies(d, "message") == before
    assert all(s["error"] is None for s in stores(d).values())
    # the stores' own copies follow, so a detached store re-attaches unlocked
    meta = store_meta(os.path.join(str(d), "stores", "store1", "db"))
    assert bytes.fromhex(meta["key_master"]) == rows[1]["key_master"]
    ok(d, "RenewMasterKey")
    assert bodies(d, "message") == before
    ok(d, "CreateStore", name="after-renewal", requestedState="current")
    import_mail(d, tmp_path, "later", 1)
    assert len(hits(d, "later")) == 1


@pytest.mark.parametrize("step", [1, 2, 3, 4])
def test_renew_master_key_survives_a_crash_at_every_step(inst, tmp_path, step):
    d, _ = inst
    import_mail(d, tmp_path, "durable", 3)
    before = bodies(d, "durable")
    key_file = os.path.join(str(d), "master.key")
    old_key = read_bytes(key_file)
    env = dict(os.environ, MAILVAULT_FAULT="renew-master-key:%d" % step)
    cp = mv("cmd", "RenewMasterKey", data_dir=d, env=env, check=FAULT_EXIT)
    assert cp.returncode == FAULT_EXIT
    # before the rename the old key stays; from it on the new one
    assert (read_bytes(key_file) == old_key) == (step <= 2)
    assert bodies(d, "durable") == before
    assert all(s["error"] is None for s in stores(d).values())
    assert not os.path.exists(os.path.join(str(d), "master.key.new"))
    rows = master_rows(d)
    assert all(r["key_master_next"] is None for r in rows.values())
    ok(d, "RenewMasterKey")
    assert bodies(d, "durable") == before
    import_mail(d, tmp_path, "more", 1)
    assert len(hits(d, "more")) == 1


# ---------------------------------------------------------------------------
# Moving the whole data directory


def test_moving_the_data_directory(inst, tmp_path):
    d, _ = inst
    import_mail(d, tmp_path, "mobile", 3)
    ok(d, "CreateStore", name="b", requestedState="current")
    import_mail(d, tmp_path, "second", 2)
    before = bodies(d, "message")
    new = tmp_path / "moved" / "data"
    os.makedirs(new.parent)
    shutil.move(str(d), str(new))
    s = stores(new)
    assert all(x["error"] is None for x in s.values()), s
    assert all(x["databasePath"].startswith(str(new) + os.sep) for x in s.values()), s
    assert bodies(new, "message") == before


# ---------------------------------------------------------------------------
# CreateBackup and restore


def test_backup_and_restore(inst, tmp_path):
    d, _ = inst
    import_mail(d, tmp_path, "saved", 4)
    outside = tmp_path / "outside"
    ok(d, "CreateStore", name="split store", databasePath=outside / "db", contentPath=outside / "content",
       indexPath=outside / "index", requestedState="current")
    import_mail(d, tmp_path, "kept", 3)
    ok(d, "CreateStore", name="off")
    ok(d, "SetStoreRequestedState", id=3, requestedState="disabled")
    before = bodies(d, "message")
    assert len(before) == 7

    backup = tmp_path / "backup"
    e = call(d, "CreateBackup", path=backup)
    assert e["statusCode"] == "succeeded", e
    info = json.loads(read_bytes(backup / "BACKUP-INFO.json"))
    assert info["format"] == 1 and info["excludeSearchIndexes"] is False
    assert sorted(s["name"] for s in info["stores"]) == ["split store", "store1"]
    assert [s["name"] for s in info["skippedStores"]] == ["off"]
    assert os.stat(backup / "master.key").st_mode & 0o777 == 0o600

    # a backup goes only into an empty or absent directory
    msg = refused(d, "CreateBackup", path=backup)
    assert str(backup) in msg and "empty" in msg, msg

    restored = tmp_path / "restored"
    mv("restore", backup, data_dir=restored)
    s = stores(restored)
    assert s[1]["error"] is None and s[2]["error"] is None, s
    assert s[2]["databasePath"].startswith(str(restored) + os.sep), "copied stores live in the restored directory"
    assert s[2]["requestedState"] == "current"
    assert len(hits(restored, "message")) == 7
    assert bodies(restored, "message") == before
    # the restored instance works on its own
    import_mail(restored, tmp_path, "newer", 1)
    assert len(hits(restored, "newer")) == 1 and hits(d, "newer") == []

    # restore refuses a directory that holds an instance, or anything
    cp = mv("restore", backup, data_dir=restored, check=1)
    assert b"already holds" in cp.stderr, cp.stderr
    busy = tmp_path / "busy"
    os.makedirs(busy)
    (busy / "file").write_text("x")
    cp = mv("restore", backup, data_dir=busy, check=1)
    assert b"empty" in cp.stderr, cp.stderr


def test_backup_without_search_indexes_is_reindexed_on_restore(inst, tmp_path):
    d, _ = inst
    import_mail(d, tmp_path, "noindex", 5)
    backup = tmp_path / "b"
    ok(d, "CreateBackup", path=backup, excludeSearchIndexes=True)
    assert json.loads(read_bytes(backup / "BACKUP-INFO.json"))["excludeSearchIndexes"] is True
    restored = tmp_path / "r"
    mv("restore", backup, data_dir=restored)
    assert bodies(restored, "noindex") == bodies(d, "noindex")
    assert len(hits(restored, "noindex")) == 5


def test_restore_refuses_an_incomplete_backup(tmp_path):
    os.makedirs(tmp_path / "half")
    (tmp_path / "half" / "master.sqlite").write_bytes(b"")
    cp = mv("restore", tmp_path / "half", data_dir=tmp_path / "target", check=1)
    assert b"not a complete mailvault backup" in cp.stderr, cp.stderr
    assert not os.path.exists(tmp_path / "target")


# ---------------------------------------------------------------------------
# automatic store creation settings


def test_autocreate_configuration_round_trip(inst, tmp_path):
    d, _ = inst
    assert ok(d, "GetStoreAutoCreateConfiguration") == {
        "sizeThreshold": None, "databaseBaseDirectory": "", "contentBaseDirectory": "", "indexBaseDirectory": ""}
    config = {"sizeThreshold": 500000, "databaseBaseDirectory": str(tmp_path / "dbs"),
              "contentBaseDirectory": str(tmp_path / "contents"), "indexBaseDirectory": str(tmp_path / "indexes")}
    assert ok(d, "SetStoreAutoCreateConfiguration", config=config) is None
    assert ok(d, "GetStoreAutoCreateConfiguration") == config
    ok(d, "SetStoreAutoCreateConfiguration", config={"sizeThreshold": None, "databaseBaseDirectory": "",
                                                     "contentBaseDirectory": None, "indexBaseDirectory": ""})
    assert ok(d, "GetStoreAutoCreateConfiguration")["sizeThreshold"] is None
    bad = [
        ({"sizeThreshold": "big"}, "sizeThreshold"),
        ({"sizeThreshold": -1}, "sizeThreshold"),
        ({"sizeThreshold": 1.5}, "sizeThreshold"),
        ({"databaseBaseDirectory": 7}, "databaseBaseDirectory"),
        ({"contentBaseDirectory": "relative/path"}, "contentBaseDirectory"),
        ({"indexBase": "/x"}, "indexBase"),
        ([1, 2], "config"),
    ]
    for cfg, word in bad:
        msg = refused(d, "SetStoreAutoCreateConfiguration", config=cfg)
        assert word in msg, (cfg, msg)
    msg = refused(d, "SetStoreAutoCreateConfiguration", config="{not json")
    assert "config" in msg, msg
    assert ok(d, "GetStoreAutoCreateConfiguration")["sizeThreshold"] is None


def test_autocreate_makes_a_new_current_store_past_the_threshold(inst, tmp_path):
    d, _ = inst
    import datetime
    config = {"sizeThreshold": 3, "databaseBaseDirectory": str(tmp_path / "dbs"),
              "contentBaseDirectory": str(tmp_path / "contents"), "indexBaseDirectory": None}
    ok(d, "SetStoreAutoCreateConfiguration", config=config)
    # the switch happens between batches: a second import finds store1 full
    import_mail(d, tmp_path, "overflow", 5)
    import_mail(d, tmp_path, "spill", 2)
    s = stores(d, include_size=True)
    assert len(s) == 2, s
    new = s[2]
    today = datetime.date.today().isoformat()
    assert new["name"] == "store-" + today, new
    assert current_ids(d) == [2]
    assert new["databasePath"] == str(tmp_path / "dbs" / new["name"])
    assert new["contentPath"] == str(tmp_path / "contents" / new["name"])
    assert new["indexPath"] == new["databasePath"], "an unset base puts the index beside the database"
    assert s[1]["size"]["messages"] + new["size"]["messages"] == 7
    assert {h["id"].split(":")[0] for h in hits(d, "spill")} == {"2"}
    assert len(hits(d, "overflow")) == 5


def make_pre_portable(d):
    """Turns a fresh instance into what the first release wrote: no instance
    id, key check, recovery KEK or store id counter in settings; none of the
    later stores columns; no key records inside the stores.  (Its store keys
    were wrapped by Argon2id(recovery key, per-store salt), which is the form
    a fresh store1 has too.)"""
    con = sqlite3.connect(os.path.join(str(d), "master.sqlite"))
    con.execute("DELETE FROM settings WHERE key<>'format_version'")
    for col in ("key_master_next", "owner_instance", "store_uid", "meta_synced"):
        con.execute("ALTER TABLE stores DROP COLUMN %s" % col)
    con.commit()
    con.close()
    st = sqlite3.connect(os.path.join(str(d), "stores", "store1", "db", "store-keys.sqlite"))
    st.execute("DELETE FROM meta WHERE key IN ('instance_id','key_master','key_recovery','recovery_salt','store_uid')")
    st.commit()
    st.close()


def test_instance_from_before_portable_stores(tmp_path):
    old, old_key = init(tmp_path / "old")
    import_mail(old, tmp_path, "legacy", 3)
    make_pre_portable(old)
    before = bodies(old, "legacy")
    assert len(before) == 3
    # opening it added what was missing, and wrote the store's key records
    con = sqlite3.connect(os.path.join(str(old), "master.sqlite"))
    settings = dict(con.execute("SELECT key, value FROM settings"))
    con.close()
    assert settings.get("instance_id") and settings.get("master_key_check"), settings
    meta = store_meta(os.path.join(str(old), "stores", "store1", "db"))
    assert meta.get("instance_id") == settings["instance_id"] and meta.get("key_recovery"), meta
    # a store made now has no recovery wrapping, and says so
    cp = mv("cmd", "CreateStore", "--name=new", "--requestedState=current", data_dir=old)
    assert b"no recovery-key wrapping" in cp.stderr, cp.stderr
    import_mail(old, tmp_path, "fresh", 1)
    ok(old, "RenewMasterKey")
    assert bodies(old, "legacy") == before
    # store1 still moves with the recovery key shown at init
    ok(old, "DetachStore", id=1)
    other, _ = init(tmp_path / "other")
    base = os.path.join(str(old), "stores", "store1")
    s = ok(other, "AttachStore", name="legacy", type="FileSystemInternal", databasePath=os.path.join(base, "db"),
           contentPath=os.path.join(base, "content"), indexPath=os.path.join(base, "index"))
    assert s["state"] == "locked"
    ok(other, "UnlockStore", id=s["id"], passphrase=old_key)
    assert len(hits(other, "legacy")) == 3
    # the store made without a recovery wrapping cannot be unlocked elsewhere
    ok(old, "CreateStore", name="third", requestedState="current")
    ok(old, "DetachStore", id=2)
    base = os.path.join(str(old), "stores", "new")
    s = ok(other, "AttachStore", name="new", type="FileSystemInternal", databasePath=os.path.join(base, "db"),
           contentPath=os.path.join(base, "content"), indexPath=os.path.join(base, "index"))
    msg = refused(other, "UnlockStore", id=s["id"], passphrase=old_key)
    assert "no recovery-key wrapping" in msg, msg


def test_compact_master_database(inst):
    d, _ = inst
    ok(d, "CreateStore", name="b")
    ok(d, "DetachStore", id=2)
    assert ok(d, "CompactMasterDatabase") is None
    assert sorted(stores(d)) == [1]
