"""Issue 19.8: a store's metadata db and full-text index are encrypted at
rest, as its content is.  Subjects, senders, recipients, folder names and
every body's words were in plain SQLite files; now db/store.sqlite and
index/index.sqlite (with their WAL) are SQLCipher files under keys derived
from the store's data key, and db/store-keys.sqlite beside them holds only
what is needed to reach that key (wrapped keys, owner, format).

Every check looks at the raw bytes of the files for words that occur only
in the imported messages, and reads the files back with a key derived
independently from the documented scheme (storedb.py), so a test fails if
the files were plain, if the words leaked into a side file, or if the key
were not the documented one.  The paths out of a store — CreateBackup and
restore, RecoverStore — must keep it encrypted; a file that is not the
store's own must be refused by name.  UpgradeStore's path from plain
stores is in test_upgrade.py."""

import json
import os
import shutil
import sqlite3
import subprocess

import pytest

import storedb
from mvserver import MvServer, init_with_admin
from mvtest import mv, search_json

N = 24


def word(kind, i):
    return "zq%s%02dxv" % (kind, i)       # unlike anything in SQLite's own bytes


def message(i):
    return ("From: Sender %s <%s@example.org>\r\n"
            "To: %s@example.net\r\n"
            "Subject: report %s\r\n"
            "Message-ID: <m%d@example.org>\r\n"
            "Date: Mon, 02 Nov 2026 10:%02d:00 +0000\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
            "--b\r\nContent-Type: text/plain\r\n\r\nthe body says %s\r\n"
            "--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=notes.txt\r\n\r\n"
            "attached text %s\r\n--b--\r\n" % (
                word("snd", i), word("snd", i), word("rcp", i), word("subj", i), i, i % 60,
                word("body", i), word("att", i))).encode()


WORDS = [word(k, i) for k in ("snd", "rcp", "subj", "body", "att") for i in range(N)]
FOLDER = "zqfolderxv"


def words_in(paths):
    found = []
    for p in paths:
        try:
            with open(p, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            continue            # a running server's -shm, gone since the listing
        found += [(os.path.basename(p), w) for w in WORDS + [FOLDER] if w.encode() in raw]
    return found


def sql_files(store_dir):
    """Every file of db/ and index/ but the keys file."""
    out = []
    for sub in ("db", "index"):
        d = os.path.join(store_dir, sub)
        out += [os.path.join(d, n) for n in sorted(os.listdir(d)) if not n.startswith("store-keys")]
    return out


def is_plain_sqlite(path):
    with open(path, "rb") as f:
        return f.read(16) == b"SQLite format 3\x00"


def check_encrypted_store(store_dir):
    for name in (("db", "store.sqlite"), ("index", "index.sqlite")):
        assert not is_plain_sqlite(os.path.join(store_dir, *name)), name
    leaked = words_in(sql_files(store_dir))
    assert not leaked, "words in clear in the store's files: %s" % leaked[:10]
    keys = os.path.join(store_dir, "db", "store-keys.sqlite")
    assert is_plain_sqlite(keys)
    assert not words_in([keys])


def all_found(d):
    hits = search_json(word("body", 3), d)
    assert len(hits) == 1, hits
    for kind in ("subj", "att", "snd"):
        assert len(search_json(word(kind, 5), d)) == 1, kind
    assert len(search_json("size:>0", d)) == N


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("encrypted")
    d = str(root / "data")
    pw = init_with_admin(d)
    src = root / "src" / FOLDER
    src.mkdir(parents=True)
    for i in range(N):
        (src / ("%02d.eml" % i)).write_bytes(message(i))
    summary = json.loads(mv("import", str(root / "src"), "--archive", "alice", "--json", data_dir=d).stdout)
    assert summary["imported"] == N, summary
    return {"dir": d, "pw": pw, "root": root, "n": 0}


def case(world):
    world["n"] += 1
    return shutil.copytree(world["dir"], str(world["root"] / ("case%d" % world["n"])), symlinks=True)


def store1(d):
    return os.path.join(d, "stores", "store1")


def test_files_hold_no_words_and_open_with_the_documented_key(world):
    d = world["dir"]
    check_encrypted_store(store1(d))
    all_found(d)
    # the documented key opens both files, and they hold the messages
    subjects = {r[0] for r in storedb.connect(d).execute("SELECT subject FROM messages")}
    assert subjects == {"report " + word("subj", i) for i in range(N)}
    rows = storedb.connect(d, index=True).execute("SELECT rowid FROM fts WHERE fts MATCH ?", (word("body", 7),))
    assert len(rows) == 1, rows
    # and nothing else does: plain SQLite reads neither
    for name in (("db", "store.sqlite"), ("index", "index.sqlite")):
        con = sqlite3.connect(os.path.join(store1(d), *name))
        with pytest.raises(sqlite3.DatabaseError):
            con.execute("SELECT count(*) FROM sqlite_master").fetchall()
        con.close()
    # the keys file: the wrapped keys and the format, nothing of the mail
    values = storedb.keys_file_values(os.path.join(store1(d), "db"))
    assert values["format_version"] == "4"
    assert {"key_master", "key_recovery", "recovery_salt", "instance_id", "store_uid"} <= set(values), values


def test_wal_of_a_running_server_holds_no_words(world):
    """A running server's writes sit in the WAL until a checkpoint: the
    renamed folder's name (a word nowhere else) must not be in it."""
    d = case(world)
    s = MvServer(d, password=world["pw"]).start()
    db = os.path.join(store1(d), "db", "store.sqlite")
    key = storedb.file_key(d, os.path.join(store1(d), "db"), "db")
    # a reader of our own keeps the WAL from being checkpointed away when
    # the server's writer closes (SQLite removes it with the last connection)
    holder = subprocess.Popen(["sqlcipher", "-batch", db], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    holder.stdin.write(("PRAGMA key=\"x'%s'\";\nSELECT count(*) FROM messages;\n" % key.hex()).encode())
    holder.stdin.flush()
    try:
        assert len(s.ok("SearchMessages", query=word("body", 2))) == 1
        s.ok("MoveFolder", fromFolder="alice/" + FOLDER, toFolder="alice/" + FOLDER + "renamed")
        wal = os.path.join(store1(d), "db", "store.sqlite-wal")
        assert os.path.exists(wal) and os.path.getsize(wal) > 0, "no WAL to look at: the test proves nothing"
        check_encrypted_store(store1(d))
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
        s.stop()


def test_a_file_not_the_stores_own_is_refused_by_name(world, tmp_path):
    d = case(world)
    # another store's db (another data key) in this one's place
    other = str(tmp_path / "other")
    init_with_admin(other)
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "m.eml").write_bytes(message(0))
    mv("import", str(tmp_path / "one"), "--archive", "bob", data_dir=other)
    mine = os.path.join(store1(d), "db", "store.sqlite")
    shutil.copy(os.path.join(store1(other), "db", "store.sqlite"), mine)
    cp = mv("search", "--json", word("body", 1), data_dir=d, check=False)
    assert json.loads(cp.stdout or b"[]") == [], cp.stdout
    err = cp.stderr.decode()
    assert "store.sqlite" in err and "does not open with its key" in err, err
    assert "hmac" not in err.lower(), "SQLCipher's own log reached stderr: %s" % err
    # a plain SQLite file claiming the encrypted format
    os.unlink(mine)
    con = sqlite3.connect(mine)
    con.executescript("CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                      "INSERT INTO meta VALUES('format_version', '3');")
    con.close()
    cp = mv("search", "--json", word("body", 1), data_dir=d, check=False)
    assert json.loads(cp.stdout or b"[]") == [], cp.stdout
    assert "plain SQLite file" in cp.stderr.decode(), cp.stderr


def test_backup_is_encrypted_and_restores(world, tmp_path):
    d = case(world)
    backup = str(tmp_path / "backup")
    env = json.loads(mv("cmd", "CreateBackup", "--path=" + backup, data_dir=d, timeout=600).stdout)
    assert env["statusCode"] == "succeeded", env
    stores = [os.path.join(r, "..") for r, _, fs in os.walk(backup) if "store.sqlite" in fs]
    assert len(stores) == 1, stores
    check_encrypted_store(os.path.normpath(stores[0]))
    restored = str(tmp_path / "restored")
    mv("restore", backup, data_dir=restored, timeout=600)
    check_encrypted_store(store1(restored))
    all_found(restored)


def disable_store1(d):
    """RecoverStore wants the store disabled, which the current store cannot be."""
    mv("cmd", "CreateStore", "--name=spare", data_dir=d)
    mv("cmd", "SetStoreRequestedState", "--id=2", "--requestedState=current", data_dir=d)
    mv("cmd", "SetStoreRequestedState", "--id=1", "--requestedState=disabled", data_dir=d)


def test_recover_store_rebuilds_encrypted(world):
    d = case(world)
    disable_store1(d)
    report = json.loads(mv("cmd", "RecoverStore", "--id=1", data_dir=d, timeout=600).stdout)["result"]
    assert report["messagesRecovered"] == N, report
    mv("cmd", "SetStoreRequestedState", "--id=1", "--requestedState=normal", data_dir=d)
    check_encrypted_store(store1(d))
    all_found(d)
    assert storedb.keys_file_values(os.path.join(store1(d), "db"))["format_version"] == "4"


def test_recover_store_after_the_keys_file_is_lost(world):
    """The keys file is a copy: master.sqlite holds the wrapped keys too, and
    the instance writes the store's copy again when it is gone."""
    d = case(world)
    os.unlink(os.path.join(store1(d), "db", "store-keys.sqlite"))
    disable_store1(d)
    report = json.loads(mv("cmd", "RecoverStore", "--id=1", data_dir=d, timeout=600).stdout)["result"]
    assert report["messagesRecovered"] == N, report
    mv("cmd", "SetStoreRequestedState", "--id=1", "--requestedState=normal", data_dir=d)
    all_found(d)
    check_encrypted_store(store1(d))
    values = storedb.keys_file_values(os.path.join(store1(d), "db"))
    assert values["format_version"] == "4" and values.get("key_master") and values.get("key_recovery"), values
