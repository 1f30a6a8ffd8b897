"""Importing the SpamAssassin corpus in its three layouts, and reading every
message back byte-exact."""

import collections
import random

import pytest

from mvtest import import_json, mv, parse_json, search_json, sha256, show, show_hashes

# The whole corpus is imported once per session (conftest.py): under
# `pytest -n 2 --dist loadgroup` (tools/test.sh) every test that needs it
# runs on one worker, so the import happens once.
pytestmark = pytest.mark.xdist_group("corpus")

MAILDIR_SAMPLE = 600
MBOX_SAMPLE = 600


def expected_counts(keys):
    """(imported, duplicates) of a first import whose items have these
    (folder, content hash) keys: a byte-identical message already archived in
    the same folder is a duplicate, not a new message."""
    distinct = len(set(keys))
    return distinct, len(keys) - distinct


def eml_keys(corpus):
    return [(rel.split("/")[1], digest) for rel, digest in corpus.sums.items()]


def maildir_keys(corpus):
    return [("Inbox", digest) for digest in corpus.sums.values()]


def mbox_keys(corpus):
    return [("mbox", m.mbox_sha) for m in corpus.messages.values()]


def check_first_import(imp, keys):
    imported, duplicates = expected_counts(keys)
    s = imp.summary
    assert s["refused"] == 0 and s["refusals"] == [], s["refusals"][:10]
    assert s["imported"] == imported, s
    assert s["duplicates"] == duplicates, s
    assert 0 <= s["malformed"] <= s["imported"], s


def all_hits(imp):
    hits = search_json("size:>0", imp.data_dir, archive=imp.archive, limit=0)
    ids = [h["id"] for h in hits]
    assert len(ids) == len(set(ids)), "search lists some id twice"
    assert {h["archive"] for h in hits} == {imp.archive}, "--archive %s leaked other archives" % imp.archive
    return hits


# ---- EML directory ----------------------------------------------------------

def test_eml_import_summary(corpus, eml_import):
    # The corpus has no byte-duplicates within a group, so this is 6046 / 0.
    assert expected_counts(eml_keys(corpus)) == (6046, 0)
    check_first_import(eml_import, eml_keys(corpus))


def test_eml_every_message_reads_back_exact(corpus, eml_import, eml_index):
    """show of EVERY message, hashed: the multiset of hashes read back equals
    the multiset in SHA256SUMS."""
    assert not eml_index.show_errors, "show failed for %d ids, e.g. %s" % (
        len(eml_index.show_errors), next(iter(eml_index.show_errors.items())))
    got = collections.Counter(eml_index.id_sha.values())
    want = collections.Counter(corpus.sums.values())
    assert got == want, "hash multisets differ: %d read back not in corpus, %d corpus hashes missing" % (
        sum((got - want).values()), sum((want - got).values()))


def test_eml_search_metadata_matches_files(corpus, eml_index):
    """Each message's folder is its group directory and its size its byte length."""
    wrong = []
    for i, rel in eml_index.id_rel.items():
        hit = eml_index.by_id[i]
        m = corpus.messages[rel]
        if hit["folder"] != m.group or hit["size"] != m.raw_len or hit["archive"] != "corpus":
            wrong.append((i, rel, hit["archive"], hit["folder"], hit["size"], m.raw_len))
    assert not wrong, "%d messages with wrong archive/folder/size, e.g. %s" % (len(wrong), wrong[:5])
    # messageId: without angle brackets, exactly as in the header
    bad = [(i, eml_index.by_id[i]["messageId"], corpus.messages[rel].message_id)
           for i, rel in eml_index.id_rel.items()
           if corpus.messages[rel].message_id is not None
           and eml_index.by_id[i]["messageId"] != corpus.messages[rel].message_id]
    assert not bad, "%d wrong messageId fields, e.g. %s" % (len(bad), bad[:5])


def test_eml_folders(corpus, eml_import):
    cp = mv("folders", "corpus", "--json", data_dir=eml_import.data_dir)
    rows = parse_json(cp)
    want_msgs = collections.Counter(rel.split("/")[1] for rel in corpus.sums)
    want_bytes = collections.Counter()
    for rel, m in corpus.messages.items():
        want_bytes[m.group] += m.raw_len
    assert set(want_msgs) == {"easy-ham-1", "easy-ham-2", "hard-ham-1", "spam-1", "spam-2"}
    got = {r["folder"]: r for r in rows if r["count"] != 0}
    assert all(r["archive"] == "corpus" for r in rows), rows
    assert {f: r["count"] for f, r in got.items()} == dict(want_msgs)
    assert {f: r["size"] for f, r in got.items()} == dict(want_bytes)
    # plain output: one line per folder "ARCHIVE/FOLDER  MESSAGES  BYTES"
    lines = mv("folders", "corpus", data_dir=eml_import.data_dir).stdout.decode().splitlines()
    for group, n in want_msgs.items():
        hit = [l for l in lines if l.split()[:1] == ["corpus/" + group]]
        assert len(hit) == 1, (group, lines)
        assert hit[0].split()[1:3] == [str(n), str(want_bytes[group])], hit[0]


def test_eml_stats(corpus, eml_import):
    st = parse_json(mv("stats", "--json", data_dir=eml_import.data_dir))
    n = len(corpus.sums)
    assert st["total"]["contents"] == n, st
    # other session fixtures may have added archives to this data dir
    assert st["total"]["messages"] == sum(v for v in eml_import.archives.values()), st
    assert len(st["stores"]) >= 1 and st["stores"][0]["name"] == "store1", st
    assert sum(s["messages"] for s in st["stores"]) == st["total"]["messages"], st
    assert sum(s["contents"] for s in st["stores"]) == n, st


def test_eml_reimport_adds_nothing(corpus, eml_import):
    s, _ = import_json(corpus.eml_dir, "corpus", eml_import.data_dir)
    assert (s["imported"], s["duplicates"], s["refused"]) == (0, len(corpus.sums), 0), s
    assert len(all_hits(eml_import)) == len(set(eml_keys(corpus)))


# ---- Maildir -------------------------------------------------------------------

def test_maildir_import_summary(corpus, maildir_import):
    check_first_import(maildir_import, maildir_keys(corpus))


def test_maildir_messages_read_back_exact(corpus, maildir_import):
    hits = all_hits(maildir_import)
    assert len(hits) == len(set(corpus.sums.values()))
    # whole corpus, cheaply: sizes and folders
    assert {h["folder"] for h in hits} == {"Inbox"}
    assert collections.Counter(h["size"] for h in hits) == collections.Counter(
        m.raw_len for m in corpus.messages.values())
    # a fixed random sample, byte-exact
    sample = random.Random(20240601).sample([h["id"] for h in hits], MAILDIR_SAMPLE)
    got, errors = show_hashes(sample, maildir_import.data_dir)
    assert not errors, "show failed: %s" % list(errors.items())[:3]
    want = set(corpus.sums.values())
    stray = [i for i, d in got.items() if d not in want]
    assert not stray, "%d sampled messages are not byte-exact corpus messages: %s" % (len(stray), stray[:10])
    assert len(set(got.values())) == len(sample), "two ids show the same bytes"


def test_maildir_folders(corpus, maildir_import):
    rows = [r for r in parse_json(mv("folders", "maildir", "--json", data_dir=maildir_import.data_dir))
            if r["count"]]
    assert [(r["archive"], r["folder"], r["count"]) for r in rows] == [("maildir", "Inbox", len(corpus.sums))]
    assert rows[0]["size"] == sum(m.raw_len for m in corpus.messages.values())


def test_maildir_reimport_adds_nothing(corpus, maildir_import):
    s, _ = import_json(corpus.maildir, "maildir", maildir_import.data_dir)
    assert (s["imported"], s["duplicates"], s["refused"]) == (0, len(corpus.sums), 0), s


# ---- mbox ---------------------------------------------------------------------

def test_mbox_import_summary(corpus, mbox_import):
    check_first_import(mbox_import, mbox_keys(corpus))


def test_mbox_messages_read_back_exact(corpus, mbox_import):
    """The mbox holds each message mboxrd-quoted, with a newline appended when
    the message did not end in one; reading must undo exactly the quoting."""
    hits = all_hits(mbox_import)
    assert len(hits) == len({m.mbox_sha for m in corpus.messages.values()})
    assert {h["folder"] for h in hits} == {"mbox"}
    assert collections.Counter(h["size"] for h in hits) == collections.Counter(
        m.mbox_len for m in corpus.messages.values())
    # the sample always includes the messages that contain quoted From lines
    # and the one lacking a final newline: the cases mboxrd gets wrong
    tricky_sizes = {m.mbox_len for m in corpus.messages.values()
                    if m.mbox_len != m.raw_len or b"\n>From " in corpus.raw(m.rel)
                    or b"\nFrom " in corpus.raw(m.rel)}
    tricky = [h["id"] for h in hits if h["size"] in tricky_sizes]
    rest = sorted(set(h["id"] for h in hits) - set(tricky))
    sample = tricky + random.Random(20240602).sample(rest, MBOX_SAMPLE)
    got, errors = show_hashes(sample, mbox_import.data_dir)
    assert not errors, "show failed: %s" % list(errors.items())[:3]
    want = {m.mbox_sha for m in corpus.messages.values()}
    stray = [i for i, d in got.items() if d not in want]
    assert not stray, "%d sampled messages are not byte-exact: %s" % (len(stray), stray[:10])
    assert len(set(got.values())) == len(sample), "two ids show the same bytes"
    # every message with a "From " line in its body was among the sample
    from_msgs = {m.mbox_sha for m in corpus.messages.values() if b"\nFrom " in corpus.raw(m.rel)}
    assert from_msgs <= set(got.values()), "messages with body 'From ' lines missing or altered"


def test_mbox_folders(corpus, mbox_import):
    rows = [r for r in parse_json(mv("folders", "mbox", "--json", data_dir=mbox_import.data_dir))
            if r["count"]]
    assert [(r["archive"], r["folder"], r["count"]) for r in rows] == [("mbox", "mbox", len(corpus.sums))]


def test_mbox_reimport_adds_nothing(corpus, mbox_import):
    s, _ = import_json(corpus.mbox, "mbox", mbox_import.data_dir)
    assert (s["imported"], s["duplicates"], s["refused"]) == (0, len(corpus.sums), 0), s


# ---- single instance across archives --------------------------------------------

def test_same_content_in_another_archive_is_referenced(corpus, maildir_import):
    """The EML tree holds the same bytes as the Maildir: importing it into a
    second archive of the Maildir's data dir adds messages, not contents.
    (Runs last in this module: it adds archive "copy" to that data dir; the
    Maildir tests above scope themselves with --archive.)"""
    d = maildir_import.data_dir
    n = len(corpus.sums)
    before = parse_json(mv("stats", "--json", data_dir=d))
    assert (before["total"]["messages"], before["total"]["contents"]) == (n, n), before
    s, _ = import_json(corpus.eml_dir, "copy", d)
    maildir_import.archives["copy"] = n
    assert (s["imported"], s["duplicates"], s["refused"]) == (n, 0, 0), s
    after = parse_json(mv("stats", "--json", data_dir=d))
    assert after["total"]["contents"] == n, after
    assert after["total"]["messages"] == 2 * n, after
    # references are small: content/ must not have grown by a second copy
    c0 = sum(st["disk"]["content"] for st in before["stores"])
    c1 = sum(st["disk"]["content"] for st in after["stores"])
    assert c0 > 0 and c1 - c0 < 0.5 * c0, "content/ grew from %d to %d bytes" % (c0, c1)
    copy_hits = search_json("size:>0", d, archive="copy", limit=0)
    assert len(copy_hits) == n and {h["archive"] for h in copy_hits} == {"copy"}
    assert len(search_json("size:>0", d, limit=0)) == 2 * n
    assert len(search_json("size:>0", d, archive="maildir", limit=0)) == n
    sample = random.Random(5).sample([h["id"] for h in copy_hits], 30)
    want = set(corpus.sums.values())
    for i in sample:
        assert sha256(show(i, d)) in want, i
