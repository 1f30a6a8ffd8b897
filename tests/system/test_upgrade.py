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

import pytest

import storedb
import upgrade_fixture
from mvtest import import_json, search_json, show
from upgrade_fixture import (ARCHIVE, CURRENT_FORMAT, NEW_WORD, STORE_ID, check_fixture_files,
                             check_reimport_deduplicated, check_show_each, check_verify_clean, cmd, fixture_bytes,
                             fixture_dir, fresh_copy, import_new_message, import_refused, is_plain_sqlite, load_json,
                             new_message, store_format_version, the_new_message, upgrade, upgrade_cut_short,
                             upgraded_copy, words_in_clear)

FIXTURE = fixture_dir("store-v1")
MANIFEST = load_json(FIXTURE, "manifest.json")["messages"]  # [{file, folder, word, subject, ...}]
IDS = load_json(FIXTURE, "ids.json")                        # "messages/F/NN-word.eml" -> "1:N"
SEARCHES = load_json(FIXTURE, "searches-v1.json")           # {"queries": {q: [ids]}, "hits": {id: hit}}


# ---- the checks, shared by the before/after tests ------------------------------------

# Fields the v1 binary printed under an older name: the API contract moved
# every JSON answer to camelCase (docs/cli.md), the values stayed.
RENAMED_FIELDS = {"message_id": "messageId"}


def check_searches(data_dir, added=()):
    """Every query the old binary answered gives the same messages with the
    same ids, and the same fields for each hit (ids in `added`, messages
    written since, are left out)."""
    upgrade_fixture.check_searches(SEARCHES, data_dir, added, old="the v1 binary", renamed=RENAMED_FIELDS)


def check_ids(data_dir):
    """Each fixture message is found by its subject word in its folder under
    the id the old binary gave it."""
    for m in MANIFEST:
        rel = "messages/" + m["file"]
        hits = [h for h in search_json("subject:%s" % m["word"], data_dir, archive=ARCHIVE, limit=0)
                if h["folder"] == m["folder"]]
        assert [h["id"] for h in hits] == [IDS[rel]], (rel, hits)


def check_show(data_dir):
    check_show_each(FIXTURE, IDS, data_dir)


def check_readable(data_dir, added=()):
    check_searches(data_dir, added)
    check_ids(data_dir)
    check_show(data_dir)


def check_encrypted(d):
    """Format 3: neither file is plain SQLite, and no subject word of the
    fixture's messages is in their bytes (or in any side file left)."""
    store = os.path.join(d, "stores", "store1")
    for f in (os.path.join(store, "db", "store.sqlite"), os.path.join(store, "index", "index.sqlite")):
        assert not is_plain_sqlite(f), f
    found = words_in_clear(d, [m["word"].encode() for m in MANIFEST])
    assert not found, "words in clear: %s" % found
    # the index was carried over, not dropped: the subject words are found
    first = MANIFEST[0]
    assert [h["id"] for h in search_json("subject:" + first["word"], d)] == [IDS["messages/" + first["file"]]]


# ---- the fixture itself ----------------------------------------------------------------

def test_fixture_is_complete_and_v1(tmp_path):
    check_fixture_files(FIXTURE)
    assert store_format_version(FIXTURE, fresh_copy(FIXTURE, tmp_path)) == 1
    for m in MANIFEST:
        raw = fixture_bytes(FIXTURE, "messages/" + m["file"])
        assert hashlib.sha256(raw).hexdigest() == m["sha256"], m["file"]
    assert set(IDS) == {"messages/" + m["file"] for m in MANIFEST}
    # one content in two folders: a reference record in the v1 store
    assert len(set(IDS.values())) == len(IDS) == len({m["sha256"] for m in MANIFEST}) + 1


# ---- before the upgrade ----------------------------------------------------------------

def test_reads_before_upgrade(tmp_path):
    d = fresh_copy(FIXTURE, tmp_path)
    check_readable(d)


def test_write_refused_before_upgrade(tmp_path):
    d = fresh_copy(FIXTURE, tmp_path)
    cp = import_refused(tmp_path, d)
    assert cp.returncode != 0, "import into a v1 store succeeded before UpgradeStore:\n%r" % cp.stdout
    assert b"UpgradeStore" in cp.stderr, "the refusal does not name UpgradeStore: %r" % cp.stderr[-2000:]
    # nothing was written, and the store still reads as before
    assert search_json(NEW_WORD + "1", d, limit=0) == []
    assert store_format_version(FIXTURE, d) == 1
    check_ids(d)


# ---- the upgrade -----------------------------------------------------------------------

def test_upgrade_store(tmp_path):
    d = upgraded_copy(FIXTURE, tmp_path)
    assert store_format_version(FIXTURE, d) == CURRENT_FORMAT
    check_encrypted(d)
    # nothing left to upgrade: UpgradeStores succeeds and changes nothing
    cmd(d, "UpgradeStores")
    check_readable(d)


def test_after_upgrade_reads_same(tmp_path):
    d = upgraded_copy(FIXTURE, tmp_path)
    check_readable(d)


def test_after_upgrade_import_works(tmp_path):
    d = upgraded_copy(FIXTURE, tmp_path)
    raw = import_new_message(tmp_path, d, "Inbox")
    hit = the_new_message(d)
    new_id = hit["id"]
    assert new_id.split(":")[0] == str(STORE_ID), new_id
    assert new_id not in IDS.values(), "the new message took an old id: %s" % new_id
    assert (hit["archive"], hit["folder"]) == (ARCHIVE, "Inbox"), hit
    assert show(new_id, d) == raw
    # the old messages are untouched by the write
    check_readable(d, added={new_id})


def test_after_upgrade_reimport_is_deduplicated(tmp_path):
    """The v1 contents still deduplicate: importing the fixture messages
    again (an EML directory whose subdirectories are the folders) adds
    nothing."""
    d = upgraded_copy(FIXTURE, tmp_path)
    check_reimport_deduplicated(FIXTURE, d, len(MANIFEST), IDS)


def test_after_upgrade_verify_clean(tmp_path):
    d = upgraded_copy(FIXTURE, tmp_path)
    path, _ = new_message(tmp_path)
    import_json(path, ARCHIVE, d, "--folder", "Inbox")
    check_verify_clean(d)


@pytest.mark.parametrize("step", [1, 2, 3])
def test_upgrade_cut_short_then_run_again(tmp_path, step):
    """UpgradeStore ended as a crash would (MAILVAULT_FAULT) after the keys
    file names format 3 (1), after the encrypted copies are made (2), and
    between the index's rename and the db's (3): what it left still reads
    every message, and UpgradeStore run again finishes the job; a writer
    then rebuilds an index the cut left behind."""
    d = fresh_copy(FIXTURE, tmp_path)
    upgrade_cut_short(d, step)
    assert store_format_version(FIXTURE, d) == 2
    check_ids(d)
    check_show(d)
    upgrade(d)
    assert store_format_version(FIXTURE, d) == CURRENT_FORMAT
    raw = import_new_message(tmp_path, d, "Inbox")
    hit = the_new_message(d)
    assert show(hit["id"], d) == raw, hit
    check_readable(d, added={hit["id"]})
    check_encrypted(d)


def test_upgrade_cut_between_3_and_4(tmp_path):
    """UpgradeStore ended after the db names format 4 but before the keys
    file does (MAILVAULT_FAULT=upgrade-store:4): the store opens as format 4
    and takes mail, and UpgradeStore run again brings the keys file along."""
    d = fresh_copy(FIXTURE, tmp_path)
    upgrade_cut_short(d, 4)
    assert store_format_version(FIXTURE, d) == 4
    keys = os.path.join(str(d), "stores", "store1", "db")
    assert storedb.keys_file_values(keys)["format_version"] == "3"
    raw = import_new_message(tmp_path, d, "Inbox")
    upgrade(d)
    assert storedb.keys_file_values(keys)["format_version"] == "4"
    hit = the_new_message(d)
    assert show(hit["id"], d) == raw, hit
    check_readable(d, added={hit["id"]})


def test_upgrade_stores_from_v1(tmp_path):
    """UpgradeStores alone (no UpgradeStore first) upgrades the v1 store."""
    d = fresh_copy(FIXTURE, tmp_path)
    cmd(d, "UpgradeStores")
    assert store_format_version(FIXTURE, d) == CURRENT_FORMAT
    import_new_message(tmp_path, d, "Inbox")
    check_ids(d)


def test_upgrade_unknown_store_fails(tmp_path):
    d = fresh_copy(FIXTURE, tmp_path)
    env, cp = cmd(d, "UpgradeStore", "--id=4242", check=False)
    assert cp.returncode != 0, "UpgradeStore of an unknown id exited 0: %s" % json.dumps(env)
    assert env["statusCode"] == "failed", env
    assert isinstance(env["error"], dict) and "4242" in (env["error"].get("message") or ""), (
        "the error does not name the id: %s" % json.dumps(env))
    # and it changed nothing
    assert store_format_version(FIXTURE, d) == 1
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

    d = fresh_copy(FIXTURE, tmp_path)
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
        assert store_format_version(FIXTURE, d) == CURRENT_FORMAT
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
