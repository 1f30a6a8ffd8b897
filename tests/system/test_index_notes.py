"""Index notes (ARCHITECTURE.md, "Durability and concurrency"): a crash
between the db commit of DeleteMessage or of a MoveFolder into another
archive and the index's follow-up leaves the index right once any process
opens the store — a reader included, before it searches.  The crash is
made exactly there (MAILVAULT_FAULT), and the index itself is read with the
store's key (storedb), so the test sees what FTS5 holds, not what the
db-filtered search shows."""

import json
import os

import storedb
from mvserver import init_with_admin
from mvtest import mv, search_json


def message(word):
    return ("From: a@example.org\r\nSubject: %s\r\nMessage-ID: <%s@example.org>\r\n\r\nbody %s\r\n"
            % (word, word, word)).encode()


def world(tmp_path):
    d = str(tmp_path / "d")
    init_with_admin(d)
    src = tmp_path / "src" / "Inbox"
    src.mkdir(parents=True)
    for w in ("quokka", "wombat", "numbat"):
        (src / (w + ".eml")).write_bytes(message(w))
    mv("import", str(tmp_path / "src"), "--archive", "alice", data_dir=d)
    return d


def indexed(d, word):
    """The docids FTS5 holds for the word, read from the index file itself."""
    return storedb.connect(d, index=True).execute("SELECT rowid FROM fts WHERE fts MATCH ?", (word,))


def crash(d, fault, *args):
    env = dict(os.environ, MAILVAULT_FAULT=fault)
    mv("cmd", *args, data_dir=d, env=env, check=86)


def test_deletion_cut_before_the_index_is_settled_by_a_reader(tmp_path):
    d = world(tmp_path)
    (hit,) = search_json("quokka", d)
    crash(d, "delete-message:1", "DeleteMessage", "--id=" + hit["id"], "--reason=test")
    assert indexed(d, "quokka"), "the fault did not land between the two commits: the test proves nothing"
    assert search_json("quokka", d) == []        # a reader: it settles the note first
    assert indexed(d, "quokka") == [], "the deleted message's words are still in the index"
    assert len(search_json("wombat OR numbat", d)) == 2
    report = json.loads(mv("cmd", "VerifyStore", "--id=1", "--includeIndexes=true", data_dir=d).stdout)["result"]
    assert report["clean"] is True, report


def test_move_cut_before_the_index_is_settled_by_a_reader(tmp_path):
    d = world(tmp_path)
    crash(d, "move-folder:1", "MoveFolder", "--fromFolder=alice/Inbox", "--toFolder=bob/Moved")
    hits = search_json("quokka OR wombat OR numbat", d, archive="bob")
    assert sorted(h["subject"] for h in hits) == ["numbat", "quokka", "wombat"], hits
    assert search_json("quokka OR wombat OR numbat", d, archive="alice") == []
    report = json.loads(mv("cmd", "VerifyStore", "--id=1", "--includeIndexes=true", data_dir=d).stdout)["result"]
    assert report["clean"] is True, report


def test_a_change_that_never_committed_leaves_the_index_as_it_was(tmp_path):
    """A note whose message is still where it says belongs to a db change
    that never committed: it is dropped and the document kept.  No fault
    point sits between the note and the db commit, so the note is written
    here as the store writes it (folder 1 is alice/Inbox, the only folder)."""
    d = world(tmp_path)
    (hit,) = search_json("quokka", d)
    before = indexed(d, "quokka")
    assert before
    storedb.connect(d, index=True).execute(
        "INSERT INTO index_notes(docid, num, archive, folder_id, columns) VALUES(?, ?, 'alice', 1, ?)",
        (before[0][0], int(hit["id"].split(":")[1]), json.dumps(["quokka"] + [""] * 10)))
    assert search_json("quokka", d)[0]["id"] == hit["id"]
    assert indexed(d, "quokka") == before
    assert storedb.connect(d, index=True).execute("SELECT count(*) FROM index_notes") == [(0,)]
