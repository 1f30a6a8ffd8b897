"""Store format upgrade 2 -> 3 -> 4: a data directory written by the last
mailvault that wrote store format 2 (tests/fixtures/store-v2, made by
tools/make_v2_fixture.sh from commit b954dbd) against the current binary.

Format 2 is what format 1 was plus what the fixture exercises: batch
markers (and a gap in the numbering CompactStore left), a deletion kept as a
tombstone, a folder move, and an index generation shared by the db and the
index.  Before UpgradeStore the store reads but refuses writes, naming
UpgradeStore; after it (format 3: db and index encrypted; 4: dictionaries) reads give the
same answers and ids, the deletions and the move are still there, writes
work and VerifyStore finds the store clean.  Every test works on its own
copy of the fixture: the fixture itself is never opened by mailvault.

The generic helpers (cmd, the new message) are test_upgrade.py's, the
format-1 test's; what depends on the fixture is here."""

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys

import pytest

import storedb
from mvtest import REPO_ROOT, import_json, mv, search_json, show
from test_upgrade import NEW_WORD, cmd, is_plain_sqlite, new_message

FIXTURE = os.path.join(REPO_ROOT, "tests", "fixtures", "store-v2")
ARCHIVE = "fixture"
STORE_ID = 1


def _load(name):
    with open(os.path.join(FIXTURE, name)) as f:
        return json.load(f)


MANIFEST = _load("manifest.json")["messages"]      # [{file, folder, word, ..., deleted?}]
LIVE = [m for m in MANIFEST if not m.get("deleted")]
DELETED = [m for m in MANIFEST if m.get("deleted")]  # deleted: {id, reason, compacted}
IDS = _load("ids.json")                            # "messages/F/NN-word.eml" -> "1:N", live ones
SEARCHES = _load("searches-v2.json")               # {"queries": {q: [ids]}, "hits": {id: hit}}
MOVED_TO = "Done/Projects 2023"                    # fixture/Projects was moved here
CURRENT_FORMAT = 4                                 # 2 -> 3 (encryption) -> 4 (dictionaries)


def fixture_bytes(rel):
    with open(os.path.join(FIXTURE, rel), "rb") as f:
        return f.read()


def fresh_copy(tmp_path):
    """A private copy of the fixture's data directory."""
    d = tmp_path / "data"
    shutil.copytree(os.path.join(FIXTURE, "data"), d)
    os.chmod(d / "master.key", 0o600)   # as init writes it; git keeps 0644
    return d


def upgrade(data_dir):
    env, _ = cmd(data_dir, "UpgradeStore", "--id=%d" % STORE_ID)
    return env


def store_file(data_dir, which):
    sub, name = {"db": ("db", "store.sqlite"), "index": ("index", "index.sqlite")}[which]
    path = os.path.join(str(data_dir), "stores", "store1", sub, name)
    assert not os.path.abspath(path).startswith(FIXTURE + os.sep), "never open the fixture in place"
    return path


def query(data_dir, which, sql):
    """Rows of sql on store1's db or index: plain SQLite (format 2, read-only)
    or, once encrypted, with its key (storedb).  Only on copies: even a
    read-only connection to a WAL database creates -wal/-shm beside it."""
    path = store_file(data_dir, which)
    if not is_plain_sqlite(path):
        return [tuple(r) for r in storedb.connect(data_dir, index=(which == "index")).execute(sql)]
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def store_format_version(data_dir):
    return int(query(data_dir, "db", "SELECT value FROM meta WHERE key='format_version'")[0][0])


def generations(data_dir):
    """(db's meta.index_generation, index's index_state generation)."""
    db = query(data_dir, "db", "SELECT value FROM meta WHERE key='index_generation'")
    ix = query(data_dir, "index", "SELECT value FROM index_state WHERE key='generation'")
    return (db[0][0] if db else None, ix[0][0] if ix else None)


def deletions(data_dir):
    """message number -> deleted_reason, for every row deleted_at is set on."""
    rows = query(data_dir, "db", "SELECT num, deleted_reason FROM messages WHERE deleted_at IS NOT NULL")
    return {"%d:%d" % (STORE_ID, num): reason for num, reason in rows}


# What the fixture held, read once from a private copy (module scope: the
# values every test compares with).
@pytest.fixture(scope="module")
def fixture_state(tmp_path_factory):
    d = fresh_copy(tmp_path_factory.mktemp("v2state"))
    return {"generations": generations(d), "deletions": deletions(d),
            "key_master": query(d, "db", "SELECT value FROM meta WHERE key='key_master'")[0][0]}


# ---- the checks ------------------------------------------------------------------------

def check_searches(data_dir, added=()):
    """Every query the old binary answered gives the same messages with the
    same ids and the same fields per hit (ids in `added` left out)."""
    for q, want_ids in SEARCHES["queries"].items():
        hits = [h for h in search_json(q, data_dir, limit=0) if h["id"] not in added]
        got = [h["id"] for h in hits]
        assert len(got) == len(set(got)), "query %r lists an id twice: %s" % (q, got)
        assert sorted(got) == sorted(want_ids), "query %r: got %s, the v2 binary gave %s" % (
            q, sorted(got), sorted(want_ids))
        for h in hits:
            want = SEARCHES["hits"][h["id"]]
            diff = {k: (h.get(k), v) for k, v in want.items() if h.get(k) != v}
            assert not diff, "query %r, hit %s differs from v2 (got, v2): %s" % (q, h["id"], diff)


def check_ids(data_dir, added=()):
    """Each live message is found by its subject word in its folder (the
    moved ones in the folder they were moved to) under the id the old binary
    gave it, and nothing else is there (ids in `added` left out): one search
    of the whole archive, by the full-text index, rather than one per word."""
    hits = [h for h in search_json("archive:" + ARCHIVE, data_dir, limit=0) if h["id"] not in added]
    for m in LIVE:
        rel = "messages/" + m["file"]
        mine = [h["id"] for h in hits if h["folder"] == m["folder"] and m["word"] in h["subject"].split()]
        assert mine == [IDS[rel]], (rel, mine)
    assert sorted(h["id"] for h in hits) == sorted(IDS.values()), "the archive lists %s" % sorted(
        h["id"] for h in hits)


def check_show(data_dir, raw=False):
    """Every live message comes back byte for byte: with raw, `show ID` for
    each; without, `show --sha256` of all of them in one process (the hash
    of the same bytes show prints), against the fixture file's sha256."""
    if raw:
        for rel, msg_id in sorted(IDS.items()):
            got = show(msg_id, data_dir)
            want = fixture_bytes(rel)
            assert got == want, "show %s: %d bytes (sha256 %s), fixture %s has %d (sha256 %s)" % (
                msg_id, len(got), hashlib.sha256(got).hexdigest()[:16], rel, len(want),
                hashlib.sha256(want).hexdigest()[:16])
        return
    ids = sorted(IDS.values())
    cp = mv("show", "--sha256", *ids, data_dir=data_dir)
    got = dict(reversed(line.split("  ", 1)) for line in cp.stdout.decode().splitlines())
    want = {msg_id: hashlib.sha256(fixture_bytes(rel)).hexdigest() for rel, msg_id in IDS.items()}
    assert got == want, "show --sha256 differs from the fixture files: %s" % sorted(
        (i, got.get(i), want[i]) for i in ids if got.get(i) != want[i])


def check_deleted_stay_deleted(data_dir, by_index=True):
    """The deleted messages are not shown and (by_index) not found by their
    subject or body words."""
    gone = [m["deleted"]["id"] for m in DELETED]
    cp = mv("show", "--sha256", *gone, data_dir=data_dir, check=False)
    assert cp.returncode != 0 and cp.stdout == b"", "deleted messages are shown: exit %d, %r" % (
        cp.returncode, cp.stdout)
    for msg_id in gone:
        assert ("mailvault: %s: " % msg_id).encode() in cp.stderr, (msg_id, cp.stderr)
    if not by_index:
        return
    for m in DELETED:
        number = m["file"].rsplit("/", 1)[1][:2]
        for q in ("subject:" + m["word"], "bodymark" + number):
            assert search_json(q, data_dir, limit=0) == [], "deleted %s is found by %r" % (m["deleted"]["id"], q)


def check_readable(data_dir, added=()):
    """All of it: every recorded search, ids, bytes by `show ID`, deletions."""
    check_searches(data_dir, added)
    check_ids(data_dir, added)
    check_show(data_dir, raw=True)
    check_deleted_stay_deleted(data_dir)


def check_readable_quickly(data_dir, added=()):
    """The same in a few processes, for the tests whose subject is another."""
    check_ids(data_dir, added)
    check_show(data_dir)
    check_deleted_stay_deleted(data_dir, by_index=False)


def check_encrypted(d):
    """Format 3: neither file is plain SQLite (header "SQLite format 3"), and
    no subject word of the fixture's messages, nor the moved folder's name,
    is in their bytes or a side file's."""
    store = os.path.join(d, "stores", "store1")
    for which in ("db", "index"):
        assert not is_plain_sqlite(store_file(d, which)), "%s is still plain SQLite" % store_file(d, which)
    secrets = [m["word"].encode() for m in MANIFEST] + [b"Projects 2023"]
    found = []
    for sub in ("db", "index"):
        for name in os.listdir(os.path.join(store, sub)):
            if name.startswith("store-keys"):
                continue
            raw = open(os.path.join(store, sub, name), "rb").read()
            found += [(name, w) for w in secrets if w in raw]
    assert not found, "words in clear: %s" % found


def check_state_carried(d, fixture_state):
    """What format 2 added survives the upgrade as it was: the index
    generation in both files (so the index is trusted, not rebuilt), every
    deletion with its reason, the store's own values in the keys file."""
    assert generations(d) == fixture_state["generations"], (generations(d), fixture_state["generations"])
    assert deletions(d) == fixture_state["deletions"], (deletions(d), fixture_state["deletions"])
    keys = storedb.keys_file_values(os.path.join(d, "stores", "store1", "db"))
    want = fixture_state["key_master"]
    assert keys.get("key_master") == (want.decode() if isinstance(want, bytes) else want), (keys, want)


# ---- the fixture itself ----------------------------------------------------------------

def test_fixture_is_complete_and_v2(tmp_path, fixture_state):
    data = os.path.join(FIXTURE, "data")
    for rel in ("master.sqlite", "master.key", "stores/store1/db/store.sqlite",
                "stores/store1/index/index.sqlite"):
        assert os.path.isfile(os.path.join(data, rel)), rel
    leftovers = [os.path.join(r, f) for r, _, fs in os.walk(data) for f in fs
                 if f.endswith(("-wal", "-shm", "-journal"))]
    assert not leftovers, "fixture holds SQLite side files (not checkpointed): %s" % leftovers
    d = fresh_copy(tmp_path)
    assert store_format_version(d) == 2
    with open(os.path.join(FIXTURE, "recovery-key.txt")) as f:
        assert f.read().strip(), "recovery-key.txt is empty"
    for m in MANIFEST:
        raw = fixture_bytes(("deleted/" if m.get("deleted") else "messages/") + m["file"])
        assert hashlib.sha256(raw).hexdigest() == m["sha256"], m["file"]
    assert set(IDS) == {"messages/" + m["file"] for m in LIVE}
    # one content in two folders (07, a reference record, now in the moved folder)
    assert len(set(IDS.values())) == len(IDS) == len({m["sha256"] for m in LIVE}) + 1
    assert any(m["folder"] == MOVED_TO for m in LIVE) and not any(m["folder"] == "Projects" for m in MANIFEST)
    # the format-2 state the upgrade must carry: a generation both files
    # share, two deletions (one compacted away, one a tombstone) with reasons
    gen_db, gen_ix = fixture_state["generations"]
    assert gen_db and gen_db == gen_ix, fixture_state["generations"]
    assert fixture_state["deletions"] == {m["deleted"]["id"]: m["deleted"]["reason"] for m in DELETED}
    assert sorted(m["deleted"]["compacted"] for m in DELETED) == [False, True], DELETED
    assert not set(fixture_state["deletions"]) & set(IDS.values())
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(FIXTURE) for f in fs)
    assert total < 300 * 1024, "fixture grew to %d bytes" % total


# ---- before the upgrade ----------------------------------------------------------------

def test_reads_before_upgrade(tmp_path):
    d = fresh_copy(tmp_path)
    check_readable(d)


@pytest.mark.parametrize("write", ["import", "DeleteMessage", "MoveFolder"])
def test_write_refused_before_upgrade(tmp_path, fixture_state, write):
    d = fresh_copy(tmp_path)
    if write == "import":
        path, _ = new_message(tmp_path)
        cp = mv("import", path, "--archive", ARCHIVE, "--json", data_dir=d, check=False)
        said = cp.stderr
    else:
        args = {"DeleteMessage": ("--id=%s" % IDS["messages/" + LIVE[0]["file"]], "--reason=test"),
                "MoveFolder": ("--fromFolder=%s/%s" % (ARCHIVE, MOVED_TO), "--toFolder=%s/Elsewhere" % ARCHIVE)}
        env, cp = cmd(d, write, *args[write], check=False)
        said = json.dumps(env).encode() + cp.stderr
    assert cp.returncode != 0, "%s on a v2 store succeeded before UpgradeStore:\n%r" % (write, cp.stdout)
    assert b"UpgradeStore" in said, "the refusal of %s does not name UpgradeStore: %r" % (write, said[-2000:])
    # nothing was written, and the store still reads as before
    assert search_json(NEW_WORD + "1", d, limit=0) == []
    assert store_format_version(d) == 2
    assert deletions(d) == fixture_state["deletions"]
    check_ids(d)


# ---- the upgrade -----------------------------------------------------------------------

def test_upgrade_store(tmp_path, fixture_state):
    d = fresh_copy(tmp_path)
    upgrade(d)
    assert store_format_version(d) == CURRENT_FORMAT
    check_encrypted(d)
    check_state_carried(d, fixture_state)
    # nothing left to upgrade: UpgradeStores succeeds and changes nothing
    cmd(d, "UpgradeStores")
    assert generations(d) == fixture_state["generations"]
    check_readable(d)


def test_after_upgrade_import_works(tmp_path):
    d = fresh_copy(tmp_path)
    upgrade(d)
    path, raw = new_message(tmp_path)
    summary, _ = import_json(path, ARCHIVE, d, "--folder", MOVED_TO)
    assert summary["imported"] == 1 and summary["refused"] == 0, summary
    hits = search_json(NEW_WORD + "1", d, limit=0)
    assert len(hits) == 1, hits
    new_id = hits[0]["id"]
    store, number = new_id.split(":")
    assert store == str(STORE_ID), new_id
    # above every number the store ever gave, the deleted ones included
    ever = [int(i.split(":")[1]) for i in list(IDS.values()) + [m["deleted"]["id"] for m in DELETED]]
    assert int(number) > max(ever), "the new message took number %s; the store had given up to %d" % (
        number, max(ever))
    assert (hits[0]["archive"], hits[0]["folder"]) == (ARCHIVE, MOVED_TO), hits[0]
    assert show(new_id, d) == raw
    check_readable_quickly(d, added={new_id})


def test_after_upgrade_delete_and_move_work(tmp_path, fixture_state):
    """The writes format 2 brought, on the upgraded store: a deletion and a
    folder move, seen by search and kept apart from the old deletions."""
    d = fresh_copy(tmp_path)
    upgrade(d)
    victim = next(m for m in LIVE if m["folder"] == "Inbox")
    victim_id = IDS["messages/" + victim["file"]]
    cmd(d, "DeleteMessage", "--id=" + victim_id, "--reason=test: deleted after the upgrade")
    assert search_json("subject:" + victim["word"], d, limit=0) == []
    assert deletions(d) == dict(fixture_state["deletions"], **{victim_id: "test: deleted after the upgrade"})
    cmd(d, "MoveFolder", "--fromFolder=%s/%s" % (ARCHIVE, MOVED_TO), "--toFolder=%s/Moved again" % ARCHIVE)
    moved = sorted(IDS["messages/" + m["file"]] for m in LIVE if m["folder"] == MOVED_TO)
    assert sorted(h["id"] for h in search_json('folder:"Moved again"', d, limit=0)) == moved
    env, _ = cmd(d, "VerifyStore", "--id=%d" % STORE_ID, "--includeIndexes=true")
    assert env["result"]["clean"] is True, json.dumps(env, indent=1)


def test_after_upgrade_reimport_is_deduplicated(tmp_path):
    """The v2 contents still deduplicate: importing the live messages again
    (an EML directory whose subdirectories are the folders, the moved one
    included) adds nothing."""
    d = fresh_copy(tmp_path)
    upgrade(d)
    summary, _ = import_json(os.path.join(FIXTURE, "messages"), ARCHIVE, d)
    assert (summary["imported"], summary["duplicates"], summary["refused"]) == (0, len(LIVE), 0), summary
    assert sorted(h["id"] for h in search_json("size:>0", d, limit=0)) == sorted(IDS.values())


def test_after_upgrade_verify_clean(tmp_path):
    d = fresh_copy(tmp_path)
    upgrade(d)
    env, _ = cmd(d, "VerifyStore", "--id=%d" % STORE_ID, "--includeIndexes=true")
    assert isinstance(env["result"], dict) and env["result"].get("clean") is True, (
        "VerifyStore after the upgrade is not clean: %s" % json.dumps(env, indent=1))
    path, _ = new_message(tmp_path)
    import_json(path, ARCHIVE, d, "--folder", "Inbox")
    env, _ = cmd(d, "VerifyStore", "--id=%d" % STORE_ID, "--includeIndexes=true")
    assert isinstance(env["result"], dict) and env["result"].get("clean") is True, (
        "VerifyStore after the upgrade and an import is not clean: %s" % json.dumps(env, indent=1))


def test_after_upgrade_recover_store_replays_v2_journal(tmp_path, fixture_state):
    """RecoverStore on the upgraded store rebuilds db and index from content/
    alone, which format 2 wrote: the batch markers keep every id across the
    compacted gap, the folder-move record puts the moved messages where they
    are, the tombstone keeps 22 deleted."""
    d = fresh_copy(tmp_path)
    upgrade(d)
    # RecoverStore wants the store disabled, which wants another current one
    cmd(d, "CreateStore", "--name=spare")
    cmd(d, "SetStoreRequestedState", "--id=2", "--requestedState=current")
    cmd(d, "SetStoreRequestedState", "--id=%d" % STORE_ID, "--requestedState=disabled")
    cmd(d, "RecoverStore", "--id=%d" % STORE_ID)
    cmd(d, "SetStoreRequestedState", "--id=%d" % STORE_ID, "--requestedState=normal")
    assert store_format_version(d) == CURRENT_FORMAT
    check_encrypted(d)
    check_readable(d)
    tombstoned = [m["deleted"]["id"] for m in DELETED if not m["deleted"]["compacted"]]
    assert set(tombstoned) <= set(deletions(d)), (tombstoned, deletions(d))


def test_upgrade_carries_what_only_the_wal_holds(tmp_path, fixture_state):
    """A format-2 store left with committed transactions in its WAL (a
    process that ended without checkpointing, as a crash or kill -9 leaves
    it): UpgradeStore's encrypted db holds them.  The transaction here
    changes one deletion's reason, so it shows in the db's rows."""
    d = fresh_copy(tmp_path)
    path = store_file(d, "db")
    victim = DELETED[0]["deleted"]["id"]
    writer = ("import os, sqlite3, sys\n"
              "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
              "assert db.execute('PRAGMA journal_mode=WAL').fetchone()[0] == 'wal'\n"
              "db.execute('PRAGMA wal_autocheckpoint=0')\n"
              "db.execute('UPDATE messages SET deleted_reason=? WHERE num=?', ('only in the WAL', int(sys.argv[2])))\n"
              "os._exit(0)\n")
    subprocess.run([sys.executable, "-c", writer, path, victim.split(":")[1]], check=True, timeout=60)
    assert os.path.getsize(path + "-wal") > 0, "the writer left no WAL frames"
    assert b"only in the WAL" not in open(path, "rb").read()
    upgrade(d)
    assert store_format_version(d) == CURRENT_FORMAT
    assert not os.path.exists(path + "-wal") or b"only in the WAL" not in open(path + "-wal", "rb").read()
    assert deletions(d) == dict(fixture_state["deletions"], **{victim: "only in the WAL"})
    check_encrypted(d)
    check_ids(d)


def test_after_upgrade_recovery_key_opens_the_store_elsewhere(tmp_path):
    """The recovery values format 2 kept in the db's meta now live in the
    keys file: another instance attaches the upgraded store (locked) and
    the fixture's recovery key unlocks it, every message intact."""
    d = fresh_copy(tmp_path)
    upgrade(d)
    other = tmp_path / "other"
    mv("init", data_dir=other)
    store = d / "stores" / "store1"
    env, _ = cmd(other, "AttachStore", "--name=upgraded", "--type=FileSystemInternal",
                 "--databasePath=%s" % (store / "db"), "--contentPath=%s" % (store / "content"),
                 "--indexPath=%s" % (store / "index"))
    sid = env["result"]["id"]
    assert env["result"]["state"] == "locked", env["result"]
    with open(os.path.join(FIXTURE, "recovery-key.txt")) as f:
        key = f.read().strip()
    cmd(other, "UnlockStore", "--id=%d" % sid, "--passphrase=" + key)
    ids = {rel: "%d:%s" % (sid, i.split(":")[1]) for rel, i in IDS.items()}
    cp = mv("show", "--sha256", *sorted(ids.values()), data_dir=other)
    got = dict(reversed(line.split("  ", 1)) for line in cp.stdout.decode().splitlines())
    assert got == {i: hashlib.sha256(fixture_bytes(rel)).hexdigest() for rel, i in ids.items()}, got
    first = LIVE[0]
    assert [h["id"] for h in search_json("subject:" + first["word"], other, limit=0)] == [
        ids["messages/" + first["file"]]]


@pytest.mark.parametrize("step", [1, 2, 3])
def test_upgrade_cut_short_then_run_again(tmp_path, fixture_state, step):
    """UpgradeStore ended as a crash would (MAILVAULT_FAULT) after the keys
    file names format 3 (1), after the encrypted copies are made (2), and
    between the index's rename and the db's (3): what it left still reads
    every message and keeps the deletions, and UpgradeStore run again
    finishes the job with the format-2 state intact."""
    d = fresh_copy(tmp_path)
    env = dict(os.environ, MAILVAULT_FAULT="upgrade-store:%d" % step)
    mv("cmd", "UpgradeStore", "--id=%d" % STORE_ID, data_dir=d, check=86, env=env)
    assert store_format_version(d) == 2
    check_ids(d)
    check_show(d)
    check_deleted_stay_deleted(d)
    upgrade(d)
    assert store_format_version(d) == CURRENT_FORMAT
    check_state_carried(d, fixture_state)
    path, raw = new_message(tmp_path)
    summary, _ = import_json(path, ARCHIVE, d, "--folder", "Inbox")
    assert summary["imported"] == 1, summary
    hits = search_json(NEW_WORD + "1", d, limit=0)
    assert len(hits) == 1 and show(hits[0]["id"], d) == raw, hits
    check_readable_quickly(d, added={hits[0]["id"]})
    check_deleted_stay_deleted(d)
    check_encrypted(d)
    env, _ = cmd(d, "VerifyStore", "--id=%d" % STORE_ID, "--includeIndexes=true")
    assert env["result"]["clean"] is True, json.dumps(env, indent=1)


def test_upgrade_stores_from_v2(tmp_path, fixture_state):
    """UpgradeStores alone (no UpgradeStore first) upgrades the v2 store."""
    d = fresh_copy(tmp_path)
    cmd(d, "UpgradeStores")
    assert store_format_version(d) == CURRENT_FORMAT
    check_state_carried(d, fixture_state)
    path, _ = new_message(tmp_path)
    summary, _ = import_json(path, ARCHIVE, d, "--folder", "Inbox")
    assert summary["imported"] == 1, summary
    check_ids(d, added={h["id"] for h in search_json(NEW_WORD + "1", d, limit=0)})


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q"]))
