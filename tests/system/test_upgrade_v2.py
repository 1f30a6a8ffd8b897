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

The helpers every fixture shares are upgrade_fixture.py's; what depends on
this fixture is here."""

import hashlib
import json
import os
import subprocess
import sys

import pytest

import storedb
import upgrade_fixture
from mvtest import import_json, mv, search_json, show
from upgrade_fixture import (ARCHIVE, CURRENT_FORMAT, NEW_WORD, STORE_ID, check_fixture_files,
                             check_reimport_deduplicated, check_show_each, check_verify_clean, cmd, fixture_bytes,
                             fixture_dir, fresh_copy, import_new_message, import_refused, is_plain_sqlite, load_json,
                             new_message, store_file, the_new_message, upgrade, upgrade_cut_short, upgraded_copy,
                             words_in_clear)

FIXTURE = fixture_dir("store-v2")
MANIFEST = load_json(FIXTURE, "manifest.json")["messages"]  # [{file, folder, word, ..., deleted?}]
LIVE = [m for m in MANIFEST if not m.get("deleted")]
DELETED = [m for m in MANIFEST if m.get("deleted")]  # deleted: {id, reason, compacted}
IDS = load_json(FIXTURE, "ids.json")                        # "messages/F/NN-word.eml" -> "1:N", live ones
SEARCHES = load_json(FIXTURE, "searches-v2.json")           # {"queries": {q: [ids]}, "hits": {id: hit}}
MOVED_TO = "Done/Projects 2023"                             # fixture/Projects was moved here


def query(data_dir, which, sql):
    """Rows of sql on store1's db or index of a copy of this fixture."""
    return upgrade_fixture.query(FIXTURE, data_dir, which, sql)


def store_format_version(data_dir):
    return upgrade_fixture.store_format_version(FIXTURE, data_dir)


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
    d = fresh_copy(FIXTURE, tmp_path_factory.mktemp("v2state"))
    return {"generations": generations(d), "deletions": deletions(d),
            "key_master": query(d, "db", "SELECT value FROM meta WHERE key='key_master'")[0][0]}


# ---- the checks ------------------------------------------------------------------------

def check_searches(data_dir, added=()):
    """Every query the old binary answered gives the same messages with the
    same ids and the same fields per hit (ids in `added` left out)."""
    upgrade_fixture.check_searches(SEARCHES, data_dir, added, old="the v2 binary")


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
        check_show_each(FIXTURE, IDS, data_dir)
        return
    ids = sorted(IDS.values())
    cp = mv("show", "--sha256", *ids, data_dir=data_dir)
    got = dict(reversed(line.split("  ", 1)) for line in cp.stdout.decode().splitlines())
    want = {msg_id: hashlib.sha256(fixture_bytes(FIXTURE, rel)).hexdigest() for rel, msg_id in IDS.items()}
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
    for which in ("db", "index"):
        path = store_file(FIXTURE, d, which)
        assert not is_plain_sqlite(path), "%s is still plain SQLite" % path
    found = words_in_clear(d, [m["word"].encode() for m in MANIFEST] + [b"Projects 2023"])
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
    check_fixture_files(FIXTURE)
    d = fresh_copy(FIXTURE, tmp_path)
    assert store_format_version(d) == 2
    for m in MANIFEST:
        raw = fixture_bytes(FIXTURE, ("deleted/" if m.get("deleted") else "messages/") + m["file"])
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


# ---- before the upgrade ----------------------------------------------------------------

def test_reads_before_upgrade(tmp_path):
    d = fresh_copy(FIXTURE, tmp_path)
    check_readable(d)


@pytest.mark.parametrize("write", ["import", "DeleteMessage", "MoveFolder"])
def test_write_refused_before_upgrade(tmp_path, fixture_state, write):
    d = fresh_copy(FIXTURE, tmp_path)
    if write == "import":
        cp = import_refused(tmp_path, d)
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
    d = upgraded_copy(FIXTURE, tmp_path)
    assert store_format_version(d) == CURRENT_FORMAT
    check_encrypted(d)
    check_state_carried(d, fixture_state)
    # nothing left to upgrade: UpgradeStores succeeds and changes nothing
    cmd(d, "UpgradeStores")
    assert generations(d) == fixture_state["generations"]
    check_readable(d)


def test_upgrade_rebuilds_the_old_index(tmp_path):
    """UpgradeStore brings the index to this build's format too (4: the
    synthetic tokens a user's prefix cannot reach; 5: body the first
    column), rather than leaving it to a next writer that a store no longer
    current never gets; every recorded search still answers as the v2
    binary did, from the new index."""
    d = fresh_copy(FIXTURE, tmp_path)
    old = query(d, "index", "SELECT value FROM index_state WHERE key='format_version'")[0][0]
    assert int(old) < 4, old
    assert "fts5( subject," in query(d, "index", "SELECT sql FROM sqlite_schema WHERE name='fts'")[0][0]
    env = upgrade(d)
    assert "index rebuilt from format %s to 5" % old in env["logOutput"], env
    assert query(d, "index", "SELECT value FROM index_state WHERE key='format_version'") == [(5,)]
    # made anew: emptied, the old index would have kept its column order
    assert "fts5( body, subject," in query(d, "index", "SELECT sql FROM sqlite_schema WHERE name='fts'")[0][0]
    check_searches(d)
    # "zhasattach", "zarc...", "zfld..." and "zadr..." are gone from reach
    assert search_json("zh*", d, limit=0) == [] and search_json("zadr*", d, limit=0) == []
    env = upgrade(d)
    assert "index rebuilt" not in json.dumps(env), env


def test_after_upgrade_import_works(tmp_path):
    d = upgraded_copy(FIXTURE, tmp_path)
    raw = import_new_message(tmp_path, d, MOVED_TO)
    hit = the_new_message(d)
    new_id = hit["id"]
    store, number = new_id.split(":")
    assert store == str(STORE_ID), new_id
    # above every number the store ever gave, the deleted ones included
    ever = [int(i.split(":")[1]) for i in list(IDS.values()) + [m["deleted"]["id"] for m in DELETED]]
    assert int(number) > max(ever), "the new message took number %s; the store had given up to %d" % (
        number, max(ever))
    assert (hit["archive"], hit["folder"]) == (ARCHIVE, MOVED_TO), hit
    assert show(new_id, d) == raw
    check_readable_quickly(d, added={new_id})


def test_after_upgrade_delete_and_move_work(tmp_path, fixture_state):
    """The writes format 2 brought, on the upgraded store: a deletion and a
    folder move, seen by search and kept apart from the old deletions."""
    d = upgraded_copy(FIXTURE, tmp_path)
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
    d = upgraded_copy(FIXTURE, tmp_path)
    check_reimport_deduplicated(FIXTURE, d, len(LIVE), IDS)


def test_after_upgrade_verify_clean(tmp_path):
    d = upgraded_copy(FIXTURE, tmp_path)
    check_verify_clean(d)
    path, _ = new_message(tmp_path)
    import_json(path, ARCHIVE, d, "--folder", "Inbox")
    check_verify_clean(d, "after the upgrade and an import")


def test_after_upgrade_recover_store_replays_v2_journal(tmp_path, fixture_state):
    """RecoverStore on the upgraded store rebuilds db and index from content/
    alone, which format 2 wrote: the batch markers keep every id across the
    compacted gap, the folder-move record puts the moved messages where they
    are, the tombstone keeps 22 deleted."""
    d = upgraded_copy(FIXTURE, tmp_path)
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
    d = fresh_copy(FIXTURE, tmp_path)
    path = store_file(FIXTURE, d, "db")
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
    d = upgraded_copy(FIXTURE, tmp_path)
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
    assert got == {i: hashlib.sha256(fixture_bytes(FIXTURE, rel)).hexdigest() for rel, i in ids.items()}, got
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
    d = fresh_copy(FIXTURE, tmp_path)
    upgrade_cut_short(d, step)
    assert store_format_version(d) == 2
    check_ids(d)
    check_show(d)
    check_deleted_stay_deleted(d)
    upgrade(d)
    assert store_format_version(d) == CURRENT_FORMAT
    check_state_carried(d, fixture_state)
    raw = import_new_message(tmp_path, d, "Inbox")
    hit = the_new_message(d)
    assert show(hit["id"], d) == raw, hit
    check_readable_quickly(d, added={hit["id"]})
    check_deleted_stay_deleted(d)
    check_encrypted(d)
    check_verify_clean(d)


def test_upgrade_stores_from_v2(tmp_path, fixture_state):
    """UpgradeStores alone (no UpgradeStore first) upgrades the v2 store."""
    d = fresh_copy(FIXTURE, tmp_path)
    cmd(d, "UpgradeStores")
    assert store_format_version(d) == CURRENT_FORMAT
    check_state_carried(d, fixture_state)
    import_new_message(tmp_path, d, "Inbox")
    check_ids(d, added={h["id"] for h in search_json(NEW_WORD + "1", d, limit=0)})


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q"]))
