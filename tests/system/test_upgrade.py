"""Store format upgrade: a data directory written by the last mailvault that
wrote store format 1 (tests/fixtures/store-v1, made by
tools/make_v1_fixture.sh from commit 77fa7d3) against the current binary.

Before UpgradeStore the old store reads (search, show) but refuses writes,
naming UpgradeStore; after it, reads give the same answers and the same ids,
writes work and VerifyStore finds the store clean.  Every test works on its
own copy of the fixture: the fixture itself is never opened by mailvault."""

import hashlib
import json
import os
import shutil
import sqlite3

import pytest

import storedb
from mvtest import REPO_ROOT, import_json, mv, parse_json, search_json, show

FIXTURE = os.path.join(REPO_ROOT, "tests", "fixtures", "store-v1")
ARCHIVE = "fixture"
STORE_ID = 1


def _load(name):
    with open(os.path.join(FIXTURE, name)) as f:
        return json.load(f)


MANIFEST = _load("manifest.json")["messages"]      # [{file, folder, word, subject, ...}]
IDS = _load("ids.json")                            # "messages/F/NN-word.eml" -> "1:N"
SEARCHES = _load("searches-v1.json")               # {"queries": {q: [ids]}, "hits": {id: hit}}

NEW_WORD = "upgradenewmsg"


def fixture_bytes(rel):
    """Bytes of a fixture message; rel as in ids.json (messages/...)."""
    with open(os.path.join(FIXTURE, rel), "rb") as f:
        return f.read()


def fresh_copy(tmp_path):
    """A private copy of the fixture's data directory."""
    d = tmp_path / "data"
    shutil.copytree(os.path.join(FIXTURE, "data"), d)
    os.chmod(d / "master.key", 0o600)   # as init writes it; git keeps 0644
    return d


def new_message(tmp_path, n=1):
    """A message the fixture does not hold, as an EML file."""
    raw = ("From: Erin Eve <erin@example.org>\n"
           "To: Alice Archer <alice@example.org>\n"
           "Subject: Written after the upgrade %s%d\n"
           "Date: Fri, 07 Apr 2023 10:11:12 +0000\n"
           "Message-ID: <upgrade-new-%d@mailvault.test>\n"
           "MIME-Version: 1.0\n"
           "Content-Type: text/plain; charset=utf-8\n"
           "\n"
           "A message imported into the fixture store by the current binary.\n" % (NEW_WORD, n, n)).encode()
    p = tmp_path / ("new-%d.eml" % n)
    p.write_bytes(raw)
    return p, raw


def cmd(data_dir, *words, check=True):
    """`mailvault cmd WORDS...`: (envelope, cp).  check=True requires exit
    status 0 and statusCode "succeeded"."""
    cp = mv("cmd", *words, data_dir=data_dir, check=False)
    env = parse_json(cp)
    assert isinstance(env, dict) and "statusCode" in env, env
    if check:
        assert cp.returncode == 0 and env["statusCode"] == "succeeded", (
            "cmd %s: exit status %d, envelope %s\nstderr: %s"
            % (" ".join(words), cp.returncode, json.dumps(env, indent=1),
               cp.stderr.decode("utf-8", "replace")[-2000:]))
        assert env["error"] is None, env
    return env, cp


def upgrade(data_dir):
    env, _ = cmd(data_dir, "UpgradeStore", "--id=%d" % STORE_ID)
    return env


def is_plain_sqlite(path):
    with open(path, "rb") as f:
        return f.read(16) == b"SQLite format 3\x00"


def store_format_version(data_dir):
    """meta.format_version of store1's db (ARCHITECTURE.md, store format),
    read-only.  Only on copies: even a read-only connection to a WAL
    database creates -wal/-shm files next to it.  A format 3 db is
    encrypted: read with its key (storedb), as a check that it is."""
    path = os.path.join(data_dir, "stores", "store1", "db", "store.sqlite")
    assert not os.path.abspath(path).startswith(FIXTURE + os.sep), "never open the fixture in place"
    if not is_plain_sqlite(path):
        return int(storedb.connect(data_dir).execute("SELECT value FROM meta WHERE key='format_version'")[0][0])
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        return int(db.execute("SELECT value FROM meta WHERE key='format_version'").fetchone()[0])
    finally:
        db.close()


# ---- the checks, shared by the before/after tests ------------------------------------

# Fields the v1 binary printed under an older name: the API contract moved
# every JSON answer to camelCase (docs/cli.md), the values stayed.
RENAMED_FIELDS = {"message_id": "messageId"}


def check_searches(data_dir, added=()):
    """Every query the old binary answered gives the same messages with the
    same ids, and the same fields for each hit (ids in `added`, messages
    written since, are left out)."""
    for query, want_ids in SEARCHES["queries"].items():
        hits = [h for h in search_json(query, data_dir, limit=0) if h["id"] not in added]
        got = [h["id"] for h in hits]
        assert len(got) == len(set(got)), "query %r lists an id twice: %s" % (query, got)
        assert sorted(got) == sorted(want_ids), "query %r: got %s, the v1 binary gave %s" % (
            query, sorted(got), sorted(want_ids))
        for h in hits:
            want = {RENAMED_FIELDS.get(k, k): v for k, v in SEARCHES["hits"][h["id"]].items()}
            diff = {k: (h.get(k), v) for k, v in want.items() if h.get(k) != v}
            assert not diff, "query %r, hit %s differs from v1 (got, v1): %s" % (query, h["id"], diff)


def check_ids(data_dir):
    """Each fixture message is found by its subject word in its folder under
    the id the old binary gave it."""
    for m in MANIFEST:
        rel = "messages/" + m["file"]
        hits = [h for h in search_json("subject:%s" % m["word"], data_dir, archive=ARCHIVE, limit=0)
                if h["folder"] == m["folder"]]
        assert [h["id"] for h in hits] == [IDS[rel]], (rel, hits)


def check_show(data_dir):
    for rel, msg_id in sorted(IDS.items()):
        got = show(msg_id, data_dir)
        want = fixture_bytes(rel)
        assert got == want, "show %s: %d bytes (sha256 %s), fixture %s has %d (sha256 %s)" % (
            msg_id, len(got), hashlib.sha256(got).hexdigest()[:16], rel, len(want),
            hashlib.sha256(want).hexdigest()[:16])


def check_readable(data_dir, added=()):
    check_searches(data_dir, added)
    check_ids(data_dir)
    check_show(data_dir)


# ---- the fixture itself ----------------------------------------------------------------

def test_fixture_is_complete_and_v1(tmp_path):
    data = os.path.join(FIXTURE, "data")
    for rel in ("master.sqlite", "master.key", "stores/store1/db/store.sqlite",
                "stores/store1/index/index.sqlite"):
        assert os.path.isfile(os.path.join(data, rel)), rel
    leftovers = [os.path.join(r, f) for r, _, fs in os.walk(data) for f in fs
                 if f.endswith(("-wal", "-shm", "-journal"))]
    assert not leftovers, "fixture holds SQLite side files (not checkpointed): %s" % leftovers
    assert store_format_version(fresh_copy(tmp_path)) == 1
    with open(os.path.join(FIXTURE, "recovery-key.txt")) as f:
        assert f.read().strip(), "recovery-key.txt is empty"
    for m in MANIFEST:
        raw = fixture_bytes("messages/" + m["file"])
        assert hashlib.sha256(raw).hexdigest() == m["sha256"], m["file"]
    assert set(IDS) == {"messages/" + m["file"] for m in MANIFEST}
    # one content in two folders: a reference record in the v1 store
    assert len(set(IDS.values())) == len(IDS) == len({m["sha256"] for m in MANIFEST}) + 1
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(FIXTURE) for f in fs)
    assert total < 300 * 1024, "fixture grew to %d bytes" % total


# ---- before the upgrade ----------------------------------------------------------------

def test_reads_before_upgrade(tmp_path):
    d = fresh_copy(tmp_path)
    check_readable(d)


def test_write_refused_before_upgrade(tmp_path):
    d = fresh_copy(tmp_path)
    path, _ = new_message(tmp_path)
    cp = mv("import", path, "--archive", ARCHIVE, "--json", data_dir=d, check=False)
    assert cp.returncode != 0, "import into a v1 store succeeded before UpgradeStore:\n%r" % cp.stdout
    assert b"UpgradeStore" in cp.stderr, "the refusal does not name UpgradeStore: %r" % cp.stderr[-2000:]
    # nothing was written, and the store still reads as before
    assert search_json(NEW_WORD + "1", d, limit=0) == []
    assert store_format_version(d) == 1
    check_ids(d)


# ---- the upgrade -----------------------------------------------------------------------

def test_upgrade_store(tmp_path):
    d = fresh_copy(tmp_path)
    upgrade(d)
    assert store_format_version(d) == 4
    check_encrypted(d)
    # nothing left to upgrade: UpgradeStores succeeds and changes nothing
    cmd(d, "UpgradeStores")
    check_readable(d)


def check_encrypted(d):
    """Format 3: neither file is plain SQLite, and no subject word of the
    fixture's messages is in their bytes (or in any side file left)."""
    store = os.path.join(d, "stores", "store1")
    files = [os.path.join(store, "db", "store.sqlite"), os.path.join(store, "index", "index.sqlite")]
    for f in files:
        assert not is_plain_sqlite(f), f
    found = []
    for sub in ("db", "index"):
        for name in os.listdir(os.path.join(store, sub)):
            if name.startswith("store-keys"):
                continue
            raw = open(os.path.join(store, sub, name), "rb").read()
            found += [(name, m["word"]) for m in MANIFEST if m["word"].encode() in raw]
    assert not found, "words in clear: %s" % found
    # the index was carried over, not dropped: the subject words are found
    first = MANIFEST[0]
    assert [h["id"] for h in search_json("subject:" + first["word"], d)] == [IDS["messages/" + first["file"]]]


def test_after_upgrade_reads_same(tmp_path):
    d = fresh_copy(tmp_path)
    upgrade(d)
    check_readable(d)


def test_after_upgrade_import_works(tmp_path):
    d = fresh_copy(tmp_path)
    upgrade(d)
    path, raw = new_message(tmp_path)
    summary, _ = import_json(path, ARCHIVE, d, "--folder", "Inbox")
    assert summary["imported"] == 1 and summary["refused"] == 0, summary
    hits = search_json(NEW_WORD + "1", d, limit=0)
    assert len(hits) == 1, hits
    new_id = hits[0]["id"]
    assert new_id.split(":")[0] == str(STORE_ID), new_id
    assert new_id not in IDS.values(), "the new message took an old id: %s" % new_id
    assert (hits[0]["archive"], hits[0]["folder"]) == (ARCHIVE, "Inbox"), hits[0]
    assert show(new_id, d) == raw
    # the old messages are untouched by the write
    check_readable(d, added={new_id})


def test_after_upgrade_reimport_is_deduplicated(tmp_path):
    """The v1 contents still deduplicate: importing the fixture messages
    again (an EML directory whose subdirectories are the folders) adds
    nothing."""
    d = fresh_copy(tmp_path)
    upgrade(d)
    summary, _ = import_json(os.path.join(FIXTURE, "messages"), ARCHIVE, d)
    assert (summary["imported"], summary["duplicates"], summary["refused"]) == (0, len(MANIFEST), 0), summary
    assert sorted(h["id"] for h in search_json("size:>0", d, limit=0)) == sorted(IDS.values())


def test_after_upgrade_verify_clean(tmp_path):
    d = fresh_copy(tmp_path)
    upgrade(d)
    path, _ = new_message(tmp_path)
    import_json(path, ARCHIVE, d, "--folder", "Inbox")
    env, _ = cmd(d, "VerifyStore", "--id=%d" % STORE_ID, "--includeIndexes=true")
    assert isinstance(env["result"], dict) and env["result"].get("clean") is True, (
        "VerifyStore after the upgrade is not clean: %s" % json.dumps(env, indent=1))


@pytest.mark.parametrize("step", [1, 2, 3])
def test_upgrade_cut_short_then_run_again(tmp_path, step):
    """UpgradeStore ended as a crash would (MAILVAULT_FAULT) after the keys
    file names format 3 (1), after the encrypted copies are made (2), and
    between the index's rename and the db's (3): what it left still reads
    every message, and UpgradeStore run again finishes the job; a writer
    then rebuilds an index the cut left behind."""
    d = fresh_copy(tmp_path)
    env = dict(os.environ, MAILVAULT_FAULT="upgrade-store:%d" % step)
    mv("cmd", "UpgradeStore", "--id=%d" % STORE_ID, data_dir=d, check=86, env=env)
    assert store_format_version(d) == 2
    check_ids(d)
    check_show(d)
    upgrade(d)
    assert store_format_version(d) == 4
    path, raw = new_message(tmp_path)
    summary, _ = import_json(path, ARCHIVE, d, "--folder", "Inbox")
    assert summary["imported"] == 1, summary
    hits = search_json(NEW_WORD + "1", d, limit=0)
    assert len(hits) == 1 and show(hits[0]["id"], d) == raw, hits
    check_readable(d, added={hits[0]["id"]})
    check_encrypted(d)


def test_upgrade_cut_between_3_and_4(tmp_path):
    """UpgradeStore ended after the db names format 4 but before the keys
    file does (MAILVAULT_FAULT=upgrade-store:4): the store opens as format 4
    and takes mail, and UpgradeStore run again brings the keys file along."""
    d = fresh_copy(tmp_path)
    env = dict(os.environ, MAILVAULT_FAULT="upgrade-store:4")
    mv("cmd", "UpgradeStore", "--id=%d" % STORE_ID, data_dir=d, check=86, env=env)
    assert store_format_version(d) == 4
    assert storedb.keys_file_values(os.path.join(str(d), "stores", "store1", "db"))["format_version"] == "3"
    path, raw = new_message(tmp_path)
    summary, _ = import_json(path, ARCHIVE, d, "--folder", "Inbox")
    assert summary["imported"] == 1, summary
    upgrade(d)
    assert storedb.keys_file_values(os.path.join(str(d), "stores", "store1", "db"))["format_version"] == "4"
    hits = search_json(NEW_WORD + "1", d, limit=0)
    assert len(hits) == 1 and show(hits[0]["id"], d) == raw, hits
    check_readable(d, added={hits[0]["id"]})


def test_upgrade_stores_from_v1(tmp_path):
    """UpgradeStores alone (no UpgradeStore first) upgrades the v1 store."""
    d = fresh_copy(tmp_path)
    cmd(d, "UpgradeStores")
    assert store_format_version(d) == 4
    path, _ = new_message(tmp_path)
    summary, _ = import_json(path, ARCHIVE, d, "--folder", "Inbox")
    assert summary["imported"] == 1, summary
    check_ids(d)


def test_upgrade_unknown_store_fails(tmp_path):
    d = fresh_copy(tmp_path)
    env, cp = cmd(d, "UpgradeStore", "--id=4242", check=False)
    assert cp.returncode != 0, "UpgradeStore of an unknown id exited 0: %s" % json.dumps(env)
    assert env["statusCode"] == "failed", env
    assert isinstance(env["error"], dict) and "4242" in (env["error"].get("message") or ""), (
        "the error does not name the id: %s" % json.dumps(env))
    # and it changed nothing
    assert store_format_version(d) == 1
    check_ids(d)


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q"]))


# ---- through a running server, on one keep-alive connection ----------------------------

def test_upgrade_under_a_server_with_kept_readers(tmp_path):
    """The server keeps readers' store handles open between the requests of
    a connection.  UpgradeStore changes the store's format under them: the
    same connection then lists the same messages, sees a deletion (which
    needs format 2), and searches find what they found before."""
    import base64
    import http.client
    import ssl
    import urllib.parse

    from mvserver import MvServer, decode_body

    d = fresh_copy(tmp_path)
    first = MANIFEST[0]
    folder = "%s/%s" % (ARCHIVE, first["folder"])
    s = MvServer(d).start()
    assert s.password, "the first serve of an instance without users printed no admin password:\n" + s.stdout()
    ctx = ssl.create_default_context(cafile=s.cert_path())
    conn = http.client.HTTPSConnection("127.0.0.1", s.port, context=ctx, timeout=300)
    auth = "Basic " + base64.b64encode(("admin:%s" % s.password).encode()).decode()

    def ok(function, **args):
        conn.request("POST", "/api/invoke/" + function, body=urllib.parse.urlencode(args).encode(),
                     headers={"Content-Type": "application/x-www-form-urlencoded", "Authorization": auth})
        env = decode_body(conn.getresponse().read())
        while env["statusCode"] == "running":
            conn.request("POST", "/api/get-status", headers={"Content-Type": "application/x-www-form-urlencoded",
                                                             "Authorization": auth},
                         body=urllib.parse.urlencode({"token": env["token"], "millisecondsTimeout": 5000,
                                                      "lastKnownStatusVersion": env["statusVersion"]}).encode())
            env = decode_body(conn.getresponse().read())
        assert env["statusCode"] == "succeeded", (function, args, env)
        return env["result"]

    try:
        listed = sorted(m["id"] for m in ok("GetMessages", folder=folder))
        want = sorted(IDS["messages/" + m["file"]] for m in MANIFEST if m["folder"] == first["folder"])
        assert listed == want, (listed, want)
        assert [h["id"] for h in ok("SearchMessages", query="subject:" + first["word"])] == \
            [IDS["messages/" + first["file"]]]
        ok("UpgradeStore", id=STORE_ID)
        assert store_format_version(d) == 4
        assert sorted(m["id"] for m in ok("GetMessages", folder=folder)) == listed
        victim = IDS["messages/" + first["file"]]
        assert ok("DeleteMessage", id=victim, reason="test: deleted after the upgrade") is None
        assert sorted(m["id"] for m in ok("GetMessages", folder=folder)) == [i for i in listed if i != victim]
        assert ok("SearchMessages", query="subject:" + first["word"]) == []
    finally:
        conn.close()
        s.stop()
    env, _ = cmd(d, "VerifyStore", "--id=%d" % STORE_ID)
    assert env["result"]["clean"] is True, env
