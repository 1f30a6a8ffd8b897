"""VerifyStore names each kind of inconsistency between content/, the
metadata db and the index, with the message it concerns (issue 20, mutant 5).

Before this file no test seeded a db-versus-content inconsistency, so a
VerifyStore whose contentMismatch check (src/store/verify.c, verify_rows)
was switched off still passed the suite.  Here one small store is built
once (generated messages; a reference record made by archiving the same
message into a second folder; snapshots of the data directory taken between
the steps), and each case copies it and seeds exactly one problem -- by
editing store.sqlite, by pairing the files of one moment with those of
another (content/ from after a change, the db from before it), or by
damaging one record -- and asserts that the report lists exactly that one
problem kind, naming exactly that message, and nothing else.  The clean
store must report clean, so an oracle that flags everything fails too.

Seeding by pairing snapshots reproduces what a real crash or a restored
file leaves: records past the db's knowledge (rowMissing), a db change
whose record was lost (tombstoneMissing, recordMissing), an index from
another moment (notIndexed, indexedNotLive)."""

import json
import os
import shutil
import unicodedata

import pytest

from mvserver import init_with_admin
import storedb
from mvtest import mv

pytestmark = pytest.mark.xdist_group("verify_problems")

STORE = "1"
MAX_NUMBER = (1 << 25) - 1      # MV_STORE_MAX_MESSAGE_NUMBER (store.h)


# ---- the store ------------------------------------------------------------------------------

def eml(i, body=None):
    return ("From: Sender %d <s%d@example.net>\r\n"
            "To: r@example.com\r\n"
            "Subject: verify case %d\r\n"
            "Date: Mon, %02d Jan 2024 10:00:00 +0000\r\n"
            "Message-ID: <verify-%d@example.com>\r\n"
            "\r\n"
            "%s\r\n" % (i, i, i, i, i, body or "body of message %d" % i)).encode()


def import_folder(d, src, folder, messages):
    os.makedirs(src)
    for name, raw in messages.items():
        with open(os.path.join(src, name), "wb") as f:
            f.write(raw)
    cp = mv("import", src, "--archive", "alice", "--folder", folder, "--json", data_dir=d)
    summary = json.loads(cp.stdout)
    assert summary["imported"] == len(messages) and summary["refused"] == 0, summary


def store_dir(d):
    return os.path.join(d, "stores", "store1")


def db_path(d):
    return os.path.join(store_dir(d), "db", "store.sqlite")


def segment_path(d):
    return os.path.join(store_dir(d), "content", "seg-00000001.mvs")


def sql(d, statement, *params, index=False):
    return storedb.connect(d, index=index).execute(statement, params).fetchall()


def committed_len(d):
    rows = sql(d, "SELECT committed_len FROM segments")
    assert len(rows) == 1, rows          # one segment: the cases below rely on it
    return rows[0][0]


def set_committed_len(d, n):
    sql(d, "UPDATE segments SET committed_len = ?", n)


def content_of(d, num):
    """(content id, segment, offset, length) of message num's content row."""
    rows = sql(d, "SELECT c.id, c.segment, c.offset, c.length FROM messages m JOIN contents c"
                  " ON c.id = m.content_id WHERE m.num = ?", num)
    assert len(rows) == 1, rows
    return rows[0]


def copy_tree(src, dst):
    shutil.copytree(src, dst, symlinks=True)
    return dst


def no_sqlite_sidecars(d):
    """The snapshots copy db/ and index/ as files: no WAL may hold part of them."""
    for sub in ("db", "index"):
        names = os.listdir(os.path.join(store_dir(d), sub))
        assert not [n for n in names if n.endswith(("-wal", "-journal"))], (sub, names)


def swap_dir(d, other, sub):
    """Replaces store1/<sub> of d by the one of the data dir `other`."""
    shutil.rmtree(os.path.join(store_dir(d), sub))
    shutil.copytree(os.path.join(store_dir(other), sub), os.path.join(store_dir(d), sub))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Messages 1-3 in alice/Inbox, 4 in alice/Other (own content), then 5:
    message 1's bytes archived again into alice/Copies, i.e. a reference
    record.  `before5` is the data dir as it was before message 5."""
    root = tmp_path_factory.mktemp("verify")
    d = str(root / "data")
    init_with_admin(d)
    import_folder(d, str(root / "inbox"), "Inbox", {"%d.eml" % i: eml(i) for i in (1, 2, 3)})
    import_folder(d, str(root / "other"), "Other", {"4.eml": eml(4)})
    no_sqlite_sidecars(d)
    before5 = copy_tree(d, str(root / "before5"))
    import_folder(d, str(root / "copies"), "Copies", {"1.eml": eml(1)})
    no_sqlite_sidecars(d)
    nums = [r[0] for r in sql(d, "SELECT num FROM messages ORDER BY num")]
    assert nums == [1, 2, 3, 4, 5], nums
    # 5 shares message 1's content: its record is a reference
    assert content_of(d, 5)[0] == content_of(d, 1)[0]
    assert committed_len(d) > committed_len(before5)
    return {"root": root, "dir": d, "before5": before5, "n": 0}


@pytest.fixture
def case(world):
    """A fresh copy of the finished store."""
    world["n"] += 1
    return copy_tree(world["dir"], str(world["root"] / ("case%d" % world["n"])))


def verify(d, include_index=True):
    args = ["cmd", "VerifyStore", "--id=" + STORE]
    if not include_index:
        args.append("--includeIndexes=false")
    env = json.loads(mv(*args, data_dir=d).stdout)
    assert env["statusCode"] == "succeeded" and env["error"] is None, env
    return env["result"]


def assert_one_problem(report, kind, ids, damaged=(), detail=None):
    """Exactly one problem, of this kind, naming exactly these message ids
    (None: a problem that names content, not messages)."""
    problems = report["problems"]
    assert report["clean"] is False, report
    assert report["problemCount"] == 1 and len(problems) == 1, report
    p = problems[0]
    assert p["kind"] == kind, report
    if ids is None:
        assert "messageIds" not in p, report
    else:
        assert p.get("messageIds") == ids, report
    if detail is not None:
        assert p["detail"] == detail, report
    assert report["damagedMessageIds"] == list(damaged), report


# ---- the cases -------------------------------------------------------------------------------

def test_clean_store_reports_clean(case):
    report = verify(case)
    assert report == {"storeId": 1, "clean": True, "recordsScanned": report["recordsScanned"],
                      "damagedRecords": 0, "messagesChecked": 5, "contentsDamaged": 0, "indexChecked": True,
                      "damagedMessageIds": [], "problemCount": 0, "problems": []}, report
    # batch markers + 4 message records + 1 reference record
    assert report["recordsScanned"] >= 5, report


def test_content_mismatch(case):
    """Message 1's row names message 4's content: the db and the recovery
    record of number 1 disagree on what message 1 is."""
    sql(case, "UPDATE messages SET content_id = ? WHERE num = 1", content_of(case, 4)[0])
    assert_one_problem(verify(case), "contentMismatch", ["1:1"],
                       detail="the db row and the recovery record name different content")


def test_tombstone_missing(case):
    """Message 2 deleted in the db, its tombstone lost from content/ (the
    committed length put back to before it was appended)."""
    before = committed_len(case)
    mv("cmd", "DeleteMessage", "--id=1:2", "--reason=verify test", data_dir=case)
    assert committed_len(case) > before
    set_committed_len(case, before)
    assert_one_problem(verify(case), "tombstoneMissing", ["1:2"],
                       detail="deleted in the db but content/ holds no tombstone for it")


def test_deleted_in_content(case, world):
    """content/ holds message 2's tombstone, the db and index are from
    before the deletion (their committed length moved on to cover it)."""
    snap = copy_tree(case, str(world["root"] / ("snap%d" % world["n"])))
    mv("cmd", "DeleteMessage", "--id=1:2", "--reason=verify test", data_dir=case)
    no_sqlite_sidecars(case)
    after = committed_len(case)
    swap_dir(case, snap, "db")
    swap_dir(case, snap, "index")
    set_committed_len(case, after)
    assert_one_problem(verify(case), "deletedInContent", ["1:2"],
                       detail="content/ holds a tombstone but the db shows it live")


def test_record_missing(case, world):
    """Message 5's reference record lost (committed length from before it):
    its content is intact (message 1's), only the recovery record is gone."""
    set_committed_len(case, committed_len(world["before5"]))
    assert_one_problem(verify(case), "recordMissing", ["1:5"], detail="no recovery record in content/")


def test_row_missing(case, world):
    """content/ holds message 5's record, the db and index are from before
    it (the committed length moved on to cover the record)."""
    after = committed_len(case)
    swap_dir(case, world["before5"], "db")
    swap_dir(case, world["before5"], "index")
    set_committed_len(case, after)
    assert_one_problem(verify(case), "rowMissing", ["1:5"],
                       detail="1 recovery records have no db row (RecoverStore brings them back)")


def test_not_indexed(case, world):
    """The index from before message 5, marked as holding every number up
    to 5 (so the writer's catch-up does not fill the gap first)."""
    swap_dir(case, world["before5"], "index")
    sql(case, "UPDATE index_state SET value = 5 WHERE key = 'indexed_upto'", index=True)
    assert_one_problem(verify(case), "notIndexed", ["1:5"], detail="archive alice: 1 messages are not in the index")
    # the same store verified without the index is clean
    report = verify(case, include_index=False)
    assert report["clean"] is True and report["indexChecked"] is False, report


def test_indexed_not_live(case, world):
    """The db from before message 5 beside the index that holds it."""
    swap_dir(case, world["before5"], "db")
    assert_one_problem(verify(case), "indexedNotLive", ["1:5"],
                       detail="archive alice: 1 index entries name no live message")


def test_content_missing(case):
    """Message 2's content row points one byte past its record's start."""
    cid, seg, off, _ = content_of(case, 2)
    sql(case, "UPDATE contents SET offset = offset + 1 WHERE id = ?", cid)
    assert_one_problem(verify(case), "contentMissing", None, damaged=["1:2"],
                       detail="content %d (segment %d offset %d): no record starts there" % (cid, seg, off + 1))


def test_record_damaged(case):
    """One byte of message 3's record flipped: AEAD refuses the record."""
    _, _, off, length = content_of(case, 3)
    with open(segment_path(case), "r+b") as f:
        f.seek(off + length // 2)
        b = f.read(1)
        f.seek(off + length // 2)
        f.write(bytes([b[0] ^ 0x40]))
    report = verify(case)
    assert_one_problem(report, "recordDamaged", ["1:3"], damaged=["1:3"])
    assert report["problems"][0]["detail"].startswith("segment 1 offset %d (%d bytes): " % (off, length)), report
    assert report["damagedRecords"] == 1, report


def test_bad_number(case):
    """A (deleted) db row numbered past what a message number may be."""
    big = MAX_NUMBER + 1
    sql(case, "INSERT INTO messages(num, content_id, folder_id, date, date_source, archived_at, size, parse_flags,"
              " has_attachment, mail_flags, subject, sender, recipients, message_id, deleted)"
              " SELECT ?, content_id, (SELECT folder_id FROM messages WHERE num = 4), date, date_source,"
              " archived_at, size, parse_flags, has_attachment, mail_flags, subject, sender, recipients,"
              " message_id, 1 FROM messages WHERE num = 1", big)
    assert_one_problem(verify(case), "badNumber", ["1:%d" % big], detail="message number out of range")


def test_name_not_nfc(case):
    """A folder row spelled in decomposed Unicode (as a store written before
    names were normalised holds it)."""
    decomposed = unicodedata.normalize("NFD", "Oth\u00e9r")
    assert decomposed != "Oth\u00e9r"
    sql(case, "UPDATE folders SET path = ? WHERE path = 'Other'", decomposed)
    assert_one_problem(verify(case), "nameNotNfc", None,
                       detail="folder '%s' (archive 'alice') is not in Unicode NFC: a folder privilege on another "
                              "spelling of it would not match" % decomposed)


def test_damaged_leaf_leaves_a_prefix_to_fts5(case):
    """A search by date asks a prefix as the OR of its words, read from the
    index's leaves (search/prefix_terms.c).  A leaf that reader finds
    damaged is reported, and the prefix goes to FTS5 as a prefix, which
    judges the leaf for itself: here it is damaged for FTS5 too, and the
    search fails with FTS5's own words.  Before the damage the prefix is
    asked by its words."""
    before = mv("--debug", "search", "verif*", "--limit", "10", data_dir=case)
    assert b'("verify")' in before.stderr, before.stderr[-1500:]
    leaves = sql(case, "SELECT id FROM fts_data WHERE id > 10 ORDER BY id", index=True)
    assert leaves
    sql(case, "UPDATE fts_data SET block = X'0000ffff0102' WHERE id = ?", leaves[0][0], index=True)
    cp = mv("search", "verif*", "--limit", "10", data_dir=case, check=False)
    err = cp.stderr.decode()
    assert "is not a well-formed FTS5 leaf" in err and "the prefix is left to FTS5" in err, err
    assert cp.returncode != 0 and err.splitlines()[-1].endswith("database disk image is malformed"), (cp.returncode, err)


def test_damaged_leaf_leaves_relevance_to_fts5(case):
    """A relevance page of one word is scored from the index's leaves
    (search/term_rank.c).  Leaves that reader finds damaged are reported and
    the page goes to FTS5's bm25, which judges them for itself: here they are
    damaged for FTS5 too, and the search fails with FTS5's own words, not
    with an answer made from bytes neither could read."""
    rel = ("--sort", "relevance", "--limit", "10")
    before = mv("--debug", "search", "verify", *rel, data_dir=case)
    assert b"read from the index" in before.stderr, before.stderr[-1500:]
    sql(case, "UPDATE fts_data SET block = X'0000ffff0102' WHERE id > 10", index=True)
    cp = mv("search", "verify", *rel, data_dir=case, check=False)
    err = cp.stderr.decode()
    assert "relevance is left to FTS5: a leaf is not what FTS5 writes" in err, err
    assert cp.returncode != 0 and err.splitlines()[-1].endswith("database disk image is malformed"), (cp.returncode, err)


def test_index_damaged(case):
    """The FTS5 index's own structure damaged (its structure record, the
    first row of fts_data, overwritten): VerifyStore reports it as
    indexDamaged and finishes, rather than failing on the index it cannot
    read; RebuildStoreIndex then makes the store clean."""
    sql(case, "UPDATE fts_data SET block = X'00112233445566778899' WHERE id = 10", index=True)
    report = verify(case)
    kinds = [p["kind"] for p in report["problems"]]
    assert report["clean"] is False and kinds == ["indexDamaged"], report
    env = json.loads(mv("cmd", "RebuildStoreIndex", "--id=" + STORE, "--folder=alice", data_dir=case).stdout)
    assert env["statusCode"] == "succeeded", env
    assert verify(case)["clean"] is True
