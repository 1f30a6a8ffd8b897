"""A prefix query is refused before it runs when the words it begins would
make the index merge more than [search] max_prefix_mb in memory
(search/prefix_cost.c): FTS5 merges them all before the first result and
cannot be stopped while it does.

On the SpamAssassin corpus archived twice (two archives of one store)
`s*` fills more than 1 MB of the index and `spam*` far less, so a bound of
1 MB tells broad from narrow.  Once is not enough since index format 5,
whose body postings are two bytes shorter.  Checked through every way a search arrives: the command line, the
Administration API, Web Access and IMAP SEARCH (where a search string is a prefix), and
a SIGHUP that changes the bound of a running server."""

import imaplib
import os
import re
import signal
import ssl
import time

import pytest

from mvserver import MvServer, init_with_admin
from mvtest import mv, parse_json
from webtest import WebClient

pytestmark = pytest.mark.xdist_group("prefix_bound")


class World:
    pass


def write_conf(d, mb):
    with open(os.path.join(d, "mailvault.conf"), "w") as f:
        f.write("[search]\nmax_prefix_mb=%d\n" % mb)


@pytest.fixture(scope="module")
def world(corpus, tmp_path_factory):
    w = World()
    d = str(tmp_path_factory.mktemp("prefix") / "data")
    w.pw = init_with_admin(d)
    for archive in ("admin", "copy"):
        mv("import", corpus.eml_dir, "--archive", archive, "--quiet", data_dir=d, check=(0, 3), timeout=900)
    # The server completes the file with every other default on its start.
    write_conf(d, 1)
    w.srv = MvServer(d, password=w.pw).start()
    w.dir = d
    yield w
    w.srv.stop()


def ids(query, d, limit, mb=None):
    extra = ["--max-prefix-mb", str(mb)] if mb is not None else []
    return [h["id"] for h in parse_json(mv("search", query, "--json", "--limit", limit, *extra, data_dir=d))]


def refused(cp):
    return cp.returncode == 1 and not cp.stdout.strip()


def broad_mb(d, prefix, limit_mb):
    """The MB the refusal of prefix under limit_mb names (None: not refused)."""
    cp = mv("search", prefix, "--max-prefix-mb", limit_mb, data_dir=d, check=False)
    if cp.returncode == 0:
        return None
    err = cp.stderr.decode()
    assert refused(cp), cp
    m = re.search(r"'%s' is too broad to search: the words it begins match (\d+) MB of the index, above the "
                  r"limit of %d MB; give more letters" % (re.escape(prefix), limit_mb), err)
    assert m, err
    return int(m.group(1))


def test_command_line_refuses_a_broad_prefix_naming_it(world):
    d = world.dir
    assert broad_mb(d, "s*", 1) >= 2
    # The bound, not the query, decides: the same query runs without it
    # and under the default (16 MB).
    assert len(ids("s*", d, 50, mb=0)) == 50
    assert len(ids("s*", d, 50)) == 50
    # A narrow prefix answers the same under the bound as without it.
    narrow = ids("spam*", d, 0, mb=1)
    assert narrow and narrow == ids("spam*", d, 0, mb=0)
    # The prefix is measured as the index folds it: "Š" is "s".
    assert broad_mb(d, "\u0160*", 1) >= 2


def test_a_query_s_prefixes_count_together(world):
    d = world.dir
    # s* fills more than limit - 1 MB and at most limit: twice is too much.
    limit = broad_mb(d, "s*", 1)
    assert broad_mb(d, "s*", limit) is None
    for both in ("s* s*", "s* OR s*", "spam (s* OR s*)"):
        cp = mv("search", both, "--max-prefix-mb", limit, data_dir=d, check=False)
        assert refused(cp), (both, cp)
        err = cp.stderr.decode()
        assert "'s*' is too broad to search" in err and "together with the query's other prefixes" in err, err


def test_api_refuses_a_broad_prefix(world):
    srv = world.srv
    env = srv.call("SearchMessages", query="s*", limit=5)
    assert env["statusCode"] == "failed", env
    assert "'s*' is too broad to search" in env["error"]["message"], env
    assert srv.ok("SearchMessages", query="spam*", limit=5)
    assert srv.ok("GetServiceConfiguration")["searchMaxPrefixMb"] == 1


def test_web_access_refuses_a_broad_prefix(world):
    c = WebClient(world.srv)
    c.login_ok("admin", world.pw)
    r = c.post("/web/api/search", {"query": "s*", "limit": 50})
    assert r.status == 413 and r.error_code() == "limit", r
    assert "'s*' is too broad to search" in r.json()["error"]["message"], r
    r = c.post("/web/api/search", {"query": "spam*", "limit": 50})
    assert r.status == 200 and r.json()["hits"], r


def imap(world):
    ctx = ssl.create_default_context(cafile=world.srv.cert_path())
    m = imaplib.IMAP4_SSL("127.0.0.1", world.srv.imaps_port, ssl_context=ctx, timeout=120)
    m.login("admin", world.pw)
    typ, _ = m.select('"spam-1"', readonly=True)
    assert typ == "OK"
    return m


def test_imap_search_says_limit(world):
    m = imap(world)
    try:
        typ, data = m.search(None, "TEXT", "s")
        assert typ == "NO" and data[0].startswith(b"[LIMIT] "), (typ, data)
        typ, data = m.uid("SEARCH", "BODY", "spamassassin")
        assert typ == "OK" and data[0].split(), (typ, data)
        # The connection goes on serving after the refusal.
        typ, data = m.noop()
        assert typ == "OK"
    finally:
        m.logout()


def test_sighup_changes_the_bound(world):
    srv = world.srv
    conf = os.path.join(world.dir, "mailvault.conf")
    with open(conf) as f:
        original = f.read()
    assert re.search(r"(?m)^max_prefix_mb=1$", original), original
    try:
        with open(conf, "w") as f:
            f.write(re.sub(r"(?m)^max_prefix_mb=1$", "max_prefix_mb=0", original))
        srv.signal(signal.SIGHUP)
        deadline = time.time() + 30
        while srv.ok("GetServiceConfiguration")["searchMaxPrefixMb"] != 0:
            assert time.time() < deadline, "SIGHUP did not reload the configuration"
            time.sleep(0.2)
        assert len(srv.ok("SearchMessages", query="s*", limit=5)) == 5
    finally:
        with open(conf, "w") as f:
            f.write(original)
        srv.signal(signal.SIGHUP)
