"""Paging of SearchMessages (`after`, `offset`) and GetMessages (`offset`,
`limit`) over an archive spread across two stores, with messages of equal
dates in both (the same mail imported into each): the pages must be
disjoint, in order, and together exactly the one big answer — through the
FTS path (words), the SQL path (size only) and relevance order."""

import email.utils
import json
import os

import pytest

from mvtest import import_json, init_data_dir, mv

pytestmark = pytest.mark.xdist_group("corpus")


def call(data_dir, function, **args):
    cp = mv("cmd", function, *["--%s=%s" % (k, v) for k, v in args.items()], data_dir=data_dir, check=False)
    env = json.loads(cp.stdout.decode())
    return env


def ok(data_dir, function, **args):
    env = call(data_dir, function, **args)
    assert env["statusCode"] == "succeeded", (function, args, env)
    return env["result"]


@pytest.fixture(scope="module")
def two_stores(corpus, tmp_path_factory):
    d = init_data_dir(tmp_path_factory.mktemp("paging") / "data")
    hard = os.path.join(corpus.eml_dir, "hard-ham-1")
    spam = os.path.join(corpus.eml_dir, "spam-1")
    import_json(hard, "pg", d, "--folder", "a")
    import_json(spam, "pg", d, "--folder", "c")
    ok(d, "CreateStore", name="second", requestedState="current")
    # The same mail again, in the second store: equal dates in two stores.
    import_json(hard, "pg", d, "--folder", "b")
    import_json(os.path.join(corpus.eml_dir, "easy-ham-1"), "pg", d, "--folder", "c")
    stores = {s["id"] for s in ok(d, "GetStores")}
    assert len(stores) == 2, stores
    return d


def pages_after(d, query, size):
    pages, after = [], None
    while True:
        args = {"query": query, "limit": size}
        if after:
            args["after"] = after
        page = ok(d, "SearchMessages", **args)
        if not page:
            return pages
        assert len(page) <= size
        pages.append([h["id"] for h in page])
        after = page[-1]["id"]
        assert len(pages) < 1000, "paging does not end"


@pytest.mark.parametrize("query", ["the", "size:>0", "money OR free"])
def test_after_pages_are_the_whole_answer(two_stores, query):
    whole = [h["id"] for h in ok(two_stores, "SearchMessages", query=query, limit=10000)]
    assert len(whole) > 200, (query, len(whole))
    assert len(set(whole)) == len(whole), "the one big answer lists an id twice"
    assert {i.split(":")[0] for i in whole} == {"1", "2"}, "both stores should answer %r" % query
    for size in (7, 50):
        pages = pages_after(two_stores, query, size)
        flat = [i for p in pages for i in p]
        assert len(set(flat)) == len(flat), "pages overlap (size %d)" % size
        assert flat == whole, "pages of %d in order are not the one big answer for %r" % (size, query)


def test_after_is_newest_first_across_stores(two_stores):
    hits = ok(two_stores, "SearchMessages", query="the", limit=10000)
    dates = [h["date"] for h in hits]
    assert dates == sorted(dates, reverse=True)
    # Equal dates in both stores exist (the same mail twice), so ties are exercised.
    pairs = {(h["date"], h["subject"]) for h in hits if h["id"].startswith("1:")} & \
            {(h["date"], h["subject"]) for h in hits if h["id"].startswith("2:")}
    assert pairs, "expected messages of equal date in both stores"


def test_relevance_pages_by_offset(two_stores):
    whole = [h["id"] for h in ok(two_stores, "SearchMessages", query="money", sort="relevance", limit=10000)]
    assert len(whole) > 20
    flat = []
    for offset in range(0, len(whole) + 10, 10):
        flat += [h["id"] for h in ok(two_stores, "SearchMessages", query="money", sort="relevance", limit=10,
                                        offset=offset)]
    assert flat == whole


@pytest.fixture(scope="module")
def equal_scores(tmp_path_factory):
    """One store: 30 messages that score the same for 'tiebreak' (the same
    text, Message-IDs of the same length), all in one hour and numbered in
    date order, so that the index's rowid order (by the hour, then number)
    is oldest first among them; and 5 that score better or worse."""
    root = tmp_path_factory.mktemp("ties")
    mail = root / "mail"
    mail.mkdir()
    base = 1700000000 - 1700000000 % 3600

    def write(i, date, subject, body):
        (mail / ("%03d.eml" % i)).write_bytes((
            "From: Tie Tester <tie@example.org>\r\nTo: desk@example.org\r\n"
            "Subject: %s\r\nDate: %s\r\nMessage-ID: <t%03d@example.org>\r\n\r\n%s\r\n"
            % (subject, email.utils.formatdate(date), i, body)).encode())

    for i in range(30):
        write(i, base + 60 * i, "quarterly figures", "tiebreak review of the figures")
    for i in range(30, 35):
        write(i, base - 86400 * i, "tiebreak " * (i - 29), "tiebreak " * (i - 29) + "other words here")
    d = init_data_dir(root / "data")
    summary, _ = import_json(str(mail), "ties", d)
    assert summary["imported"] == 35, summary
    return d


def test_relevance_ties_come_newest_first_on_every_page(equal_scores):
    # limit 0: every hit through the general statement, ties broken by date in SQL.
    whole = ok(equal_scores, "SearchMessages", query="tiebreak", sort="relevance", limit=0)
    assert len(whole) == 35
    tied = [h for h in whole if h["subject"] == "quarterly figures"]
    assert [h["date"] for h in tied] == sorted((h["date"] for h in tied), reverse=True), \
        "equal scores must come newest first"
    ids = [h["id"] for h in whole]
    for size in (1, 7, 10, 30):
        flat = []
        for offset in range(0, 40, size):
            flat += [h["id"] for h in ok(equal_scores, "SearchMessages", query="tiebreak", sort="relevance",
                                            limit=size, offset=offset)]
        assert flat == ids, "relevance pages of %d are not the whole answer" % size


def test_paging_arguments_refused_with_reasons(two_stores):
    env = call(two_stores, "SearchMessages", query="money", sort="relevance", after="1:1")
    assert env["statusCode"] == "failed" and "after" in env["error"]["message"], env
    env = call(two_stores, "SearchMessages", query="money", after="9:999999")
    assert env["statusCode"] == "failed" and "9:999999" in env["error"]["message"], env
    env = call(two_stores, "SearchMessages", query="money", offset=100001)
    assert env["statusCode"] == "failed" and "offset" in env["error"]["message"], env
    env = call(two_stores, "GetMessages", folder="pg/c", limit=-1)
    assert env["statusCode"] == "failed" and "limit" in env["error"]["message"], env


def test_get_messages_pages_merge_stores(two_stores):
    whole = ok(two_stores, "GetMessages", folder="pg/c")
    ids = [m["id"] for m in whole]
    assert {i.split(":")[0] for i in ids} == {"1", "2"}, "folder pg/c is in both stores"
    dates = [m["date"] for m in whole]
    assert dates == sorted(dates, reverse=True), "one folder over two stores is one newest-first list"
    assert all("hasAttachment" in m for m in whole)
    flat = []
    for offset in range(0, len(ids) + 100, 100):
        flat += [m["id"] for m in ok(two_stores, "GetMessages", folder="pg/c", offset=offset, limit=100)]
    assert flat == ids


def test_snippets_mark_the_words(two_stores):
    hits = ok(two_stores, "SearchMessages", query="money", limit=20, snippets="true")
    assert hits
    for h in hits:
        seg = h["snippet"]
        assert all(isinstance(t, str) and isinstance(m, bool) for t, m in seg), seg
        text = "".join(t for t, _ in seg)
        assert len(text) <= 210, len(text)
    marked = [t for h in hits for t, m in h["snippet"] if m]
    assert marked and all(t.lower() == "money" for t in marked), marked
    # Without the argument: no snippet (it costs reading every hit).
    assert "snippet" not in ok(two_stores, "SearchMessages", query="money", limit=1)[0]
