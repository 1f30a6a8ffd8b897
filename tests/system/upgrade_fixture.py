"""What the store-format upgrade tests share: test_upgrade.py (format 1)
and test_upgrade_v2.py (format 2).

A fixture is a directory under tests/fixtures (store-v1, store-v2; see their
README.md): data/, the data directory the old binary wrote; messages/, the
EML files it imported; ids.json, manifest.json, the searches it answered and
recovery-key.txt.  Every helper that reads a fixture takes its directory as
its first argument; the checks that depend on what one fixture holds stay in
its test file.  Every test works on a copy (fresh_copy): the fixture itself
is never opened by mailvault, nor by SQLite (even a read-only connection to
a WAL database creates -wal/-shm files beside it)."""

import hashlib
import json
import os
import shutil
import sqlite3

import storedb
from mvtest import REPO_ROOT, import_json, mv, parse_json, search_json, show

ARCHIVE = "fixture"
STORE_ID = 1
CURRENT_FORMAT = 4      # what UpgradeStore brings a store to: 3 encrypted, 4 dictionaries
NEW_WORD = "upgradenewmsg"


def fixture_dir(name):
    return os.path.join(REPO_ROOT, "tests", "fixtures", name)


def load_json(fixture, name):
    with open(os.path.join(fixture, name)) as f:
        return json.load(f)


def fixture_bytes(fixture, rel):
    """Bytes of a fixture file; rel as in ids.json (messages/...)."""
    with open(os.path.join(fixture, rel), "rb") as f:
        return f.read()


def fresh_copy(fixture, tmp_path):
    """A private copy of the fixture's data directory."""
    d = tmp_path / "data"
    shutil.copytree(os.path.join(fixture, "data"), d)
    os.chmod(d / "master.key", 0o600)   # as init writes it; git keeps 0644
    return d


def new_message(tmp_path, n=1):
    """A message no fixture holds, as an EML file: (path, bytes)."""
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


def import_new_message(tmp_path, data_dir, folder):
    """new_message imported into ARCHIVE/folder, checking the import took
    it: its bytes."""
    path, raw = new_message(tmp_path)
    summary, _ = import_json(path, ARCHIVE, data_dir, "--folder", folder)
    assert summary["imported"] == 1 and summary["refused"] == 0, summary
    return raw


def the_new_message(data_dir):
    """The one search hit of the imported new_message."""
    hits = search_json(NEW_WORD + "1", data_dir, limit=0)
    assert len(hits) == 1, hits
    return hits[0]


def import_refused(tmp_path, data_dir):
    """Importing new_message into a store not yet upgraded: the process."""
    path, _ = new_message(tmp_path)
    return mv("import", path, "--archive", ARCHIVE, "--json", data_dir=data_dir, check=False)


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


def upgraded_copy(fixture, tmp_path):
    """fresh_copy after UpgradeStore."""
    d = fresh_copy(fixture, tmp_path)
    upgrade(d)
    return d


def upgrade_cut_short(data_dir, step):
    """UpgradeStore ended as a crash would (MAILVAULT_FAULT) at step."""
    env = dict(os.environ, MAILVAULT_FAULT="upgrade-store:%d" % step)
    mv("cmd", "UpgradeStore", "--id=%d" % STORE_ID, data_dir=data_dir, check=86, env=env)


def check_verify_clean(data_dir, when="after the upgrade"):
    env, _ = cmd(data_dir, "VerifyStore", "--id=%d" % STORE_ID, "--includeIndexes=true")
    assert isinstance(env["result"], dict) and env["result"].get("clean") is True, (
        "VerifyStore %s is not clean: %s" % (when, json.dumps(env, indent=1)))


def is_plain_sqlite(path):
    with open(path, "rb") as f:
        return f.read(16) == b"SQLite format 3\x00"


def store_file(fixture, data_dir, which):
    """Path of store1's db or index in a copy (never in the fixture)."""
    sub, name = {"db": ("db", "store.sqlite"), "index": ("index", "index.sqlite")}[which]
    path = os.path.join(str(data_dir), "stores", "store1", sub, name)
    assert not os.path.abspath(path).startswith(fixture + os.sep), "never open the fixture in place"
    return path


def query(fixture, data_dir, which, sql):
    """Rows of sql on store1's db or index: plain SQLite (formats 1 and 2,
    read-only) or, once encrypted (format 3), with its key (storedb)."""
    path = store_file(fixture, data_dir, which)
    if not is_plain_sqlite(path):
        return [tuple(r) for r in storedb.connect(data_dir, index=(which == "index")).execute(sql)]
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def store_format_version(fixture, data_dir):
    """meta.format_version of store1's db (ARCHITECTURE.md, store format)."""
    return int(query(fixture, data_dir, "db", "SELECT value FROM meta WHERE key='format_version'")[0][0])


def check_fixture_files(fixture):
    """The fixture holds the data directory's files, checkpointed (no SQLite
    side files), a recovery key, and stays small."""
    data = os.path.join(fixture, "data")
    for rel in ("master.sqlite", "master.key", "stores/store1/db/store.sqlite",
                "stores/store1/index/index.sqlite"):
        assert os.path.isfile(os.path.join(data, rel)), rel
    leftovers = [os.path.join(r, f) for r, _, fs in os.walk(data) for f in fs
                 if f.endswith(("-wal", "-shm", "-journal"))]
    assert not leftovers, "fixture holds SQLite side files (not checkpointed): %s" % leftovers
    with open(os.path.join(fixture, "recovery-key.txt")) as f:
        assert f.read().strip(), "recovery-key.txt is empty"
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(fixture) for f in fs)
    assert total < 300 * 1024, "fixture grew to %d bytes" % total


def check_searches(searches, data_dir, added=(), old="the old binary", renamed=None):
    """Every query the old binary answered (searches: {"queries": {q: [ids]},
    "hits": {id: hit}}) gives the same messages with the same ids, and the
    same fields for each hit (ids in `added`, messages written since, are
    left out).  renamed: fields the old binary printed under another name."""
    renamed = renamed or {}
    for q, want_ids in searches["queries"].items():
        hits = [h for h in search_json(q, data_dir, limit=0) if h["id"] not in added]
        got = [h["id"] for h in hits]
        assert len(got) == len(set(got)), "query %r lists an id twice: %s" % (q, got)
        assert sorted(got) == sorted(want_ids), "query %r: got %s, %s gave %s" % (
            q, sorted(got), old, sorted(want_ids))
        for h in hits:
            want = {renamed.get(k, k): v for k, v in searches["hits"][h["id"]].items()}
            diff = {k: (h.get(k), v) for k, v in want.items() if h.get(k) != v}
            assert not diff, "query %r, hit %s differs from %s (got, old): %s" % (q, h["id"], old, diff)


def check_show_each(fixture, ids, data_dir):
    """`show ID` of every message in ids ({rel: id}) gives the fixture file's
    bytes."""
    for rel, msg_id in sorted(ids.items()):
        got = show(msg_id, data_dir)
        want = fixture_bytes(fixture, rel)
        assert got == want, "show %s: %d bytes (sha256 %s), fixture %s has %d (sha256 %s)" % (
            msg_id, len(got), hashlib.sha256(got).hexdigest()[:16], rel, len(want),
            hashlib.sha256(want).hexdigest()[:16])


def words_in_clear(data_dir, secrets):
    """(file, word) for each of secrets (bytes) found in the bytes of store1's
    db or index directory (the keys file, plain by design, left out)."""
    store = os.path.join(data_dir, "stores", "store1")
    found = []
    for sub in ("db", "index"):
        for name in os.listdir(os.path.join(store, sub)):
            if name.startswith("store-keys"):
                continue
            raw = open(os.path.join(store, sub, name), "rb").read()
            found += [(name, w) for w in secrets if w in raw]
    return found


def check_reimport_deduplicated(fixture, data_dir, live, ids):
    """Importing the fixture's messages/ again (an EML directory whose
    subdirectories are the folders) adds nothing: all `live` of them are
    duplicates, and the store lists exactly the ids it had."""
    summary, _ = import_json(os.path.join(fixture, "messages"), ARCHIVE, data_dir)
    assert (summary["imported"], summary["duplicates"], summary["refused"]) == (0, live, 0), summary
    assert sorted(h["id"] for h in search_json("size:>0", data_dir, limit=0)) == sorted(ids.values())
