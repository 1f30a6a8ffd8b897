"""The Administration API as the contract (issue 9, items 11 and 12).

- get-metadata tells the truth: every argument it marks required is refused
  by the registry when missing, and no argument it marks optional is one a
  handler complains about when it is left out.  Checked for every function
  through `mailvault cmd` on throwaway copies of a small data directory
  (each call gets its own copy, so functions that change or destroy state
  are safe to call).
- One answer for a folder the caller may not see, from every folder
  function: a folder that does not exist and one the caller may not read
  get the same error, naming the folder.
- `limit` means the same everywhere (0 = all), and one answer is bounded.
- GetMessages pages a folder by `after` in an order that is stable across
  pages, over several stores, while mail comes and goes.
- Result keys are camelCase; a folder's count has one name.
- `cmd --list` is a table (`--list --json` the metadata); `cmd F --help`
  describes a function, as the shell's `help F` does."""

import concurrent.futures
import itertools
import json
import os
import re
import shutil

import pytest

from mvserver import MvServer, init_with_admin
from mvtest import import_json, init_data_dir, mv, parse_json

WORD = "wombat"
CAMEL = re.compile(r"[a-z][a-zA-Z0-9]*\Z")
MAX_ANSWER = 10000


def envelope_of(cp):
    env = parse_json(cp)
    assert isinstance(env, dict) and "statusCode" in env, env
    return env


def cmd(data_dir, function, **args):
    """`mailvault cmd Function --k=v ...` on a data directory: the envelope."""
    cp = mv("cmd", function, *["--%s=%s" % kv for kv in args.items()], data_dir=data_dir, check=(0, 1, 2))
    return envelope_of(cp)


def ok(data_dir, function, **args):
    env = cmd(data_dir, function, **args)
    assert env["statusCode"] == "succeeded", (function, args, env)
    return env["result"]


def failure(data_dir, function, **args):
    env = cmd(data_dir, function, **args)
    assert env["statusCode"] == "failed" and env["error"], (function, args, env)
    return env["error"]["message"]


def eml(i, archive, folder, date, word=WORD, tag="m"):
    return ("From: Sender %d <sender%d@example.net>\r\n"
            "To: %s@example.com\r\n"
            "Subject: %s %s %d\r\n"
            "Date: %s\r\n"
            "Message-ID: <%s-%s-%s-%d@example.net>\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=us-ascii\r\n"
            "\r\n"
            "The %s number %d of %s/%s.\r\n"
            % (i, i, archive, tag, word, i, date, tag, archive, folder.replace("/", "-"), i, word, i, archive, folder))


def write_emls(directory, archive, folder, dates, tag="m", word=WORD):
    os.makedirs(directory, exist_ok=True)
    for i, date in enumerate(dates):
        with open(os.path.join(directory, "%s-%05d.eml" % (tag, i)), "w", newline="") as f:
            f.write(eml(i, archive, folder, date, word=word, tag=tag))


def import_emls(data_dir, root, archive, folder, dates, tag="m", word=WORD):
    src = os.path.join(str(root), "eml-%s-%s-%s" % (archive, folder.replace("/", "-"), tag))
    write_emls(src, archive, folder, dates, tag=tag, word=word)
    summary, _ = import_json(src, archive, data_dir, "--folder", folder)
    assert summary["imported"] == len(dates), summary


def day(n, hour=10):
    return "Mon, %02d Jan 2024 %02d:00:00 +0000" % (1 + n % 28, hour)


# ---- get-metadata against the handlers ------------------------------------------------------

def metadata():
    return parse_json(mv("cmd", "--list", "--json"))


HELP_LINE = re.compile(r"    --(\w+)=(\w+)\s+(required|optional)(?:\s+one of: (.*))?\Z")


def function_help(name):
    """`cmd Function --help` as {argument: (type, required, [allowed values] or None)}."""
    out = mv("cmd", name, "--help").stdout.decode()
    assert out.startswith(name + ": "), out
    args = {}
    for line in out.splitlines():
        m = HELP_LINE.match(line)
        if m:
            values = m.group(4).split(", ") if m.group(4) else None
            args[m.group(1)] = (m.group(2), m.group(3) == "required", values)
    return args


# Values a handler can work with, by argument name (then by type).  A
# plausible call gets past the argument checks so that a complaint about the
# argument left out has its chance to show.
PLAUSIBLE = {
    "userName": "admin", "oldUserName": "admin", "newUserName": "renamed", "folder": "admin/Inbox",
    "fromFolder": "admin/Inbox", "toFolder": "admin/Moved", "query": WORD, "privileges": "none",
    "loginPrivileges": "none", "since": "2020-01-01", "before": "2030-01-01", "sourceStores": "1",
    "name": "another", "reason": "contract test", "archive": "admin", "url": "imap://127.0.0.1:1",
    "emailAddresses": "admin@example.com", "password": "Contract-Test-Pw-4711",
    "newPassword": "Contract-Test-Pw-4712", "description": "contract test",
}
PLAUSIBLE_FOR = {("CreateUser", "userName"): "newuser", ("GetMessage", "id"): "1:1",
                 ("DeleteMessage", "id"): "1:1", ("SearchMessages", "after"): "1:1",
                 ("GetMessages", "after"): "1:1"}


def plausible(function, name, kind, allowed, tmp):
    if allowed:
        return allowed[0]
    if (function, name) in PLAUSIBLE_FOR:
        return PLAUSIBLE_FOR[(function, name)]
    if name.endswith("Path") or name in ("path", "directory", "caFile"):
        return os.path.join(str(tmp), "%s-%s" % (function, name))
    if name in PLAUSIBLE:
        return PLAUSIBLE[name]
    return {"number": "1", "bool": "true", "json": "{}"}.get(kind, "x")


def complains_about(message, name):
    """A handler's own complaint that the argument is missing: it names the
    argument (which the call left out) and asks for it."""
    return bool(message) and re.search(r"(?<![A-Za-z])%s(?![A-Za-z])" % re.escape(name), message) is not None \
        and re.search(r"missing|required|needed|needs|give", message, re.I) is not None


class Scratch:
    """Copies of a template data directory, one per call."""

    def __init__(self, template, root):
        self.template, self.root, self.numbers = template, root, itertools.count()

    def call(self, function, args):
        d = os.path.join(str(self.root), "call-%d" % next(self.numbers))
        shutil.copytree(self.template, d, symlinks=True)
        try:
            env = cmd(d, function, **args)
        finally:
            shutil.rmtree(d, ignore_errors=True)
        return env["statusCode"], (env.get("error") or {}).get("message")


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    root = tmp_path_factory.mktemp("contract-template")
    d = init_data_dir(root / "data")
    import_emls(d, root, "admin", "Inbox", [day(i) for i in range(3)])
    return str(d)


def optional_check(scratch, fname, spec, name, tmp):
    """None when some plausible call without the optional argument `name`
    gets no complaint about it; else the complaints seen."""
    def args_of(names, override=None):
        out = {n: plausible(fname, n, spec[n][0], spec[n][2], tmp) for n in names}
        out.update(override or {})
        return out
    required = [n for n, s in spec.items() if s[1]]
    others = [n for n in spec if n != name]
    variants = [args_of(required), args_of(others)]
    # Another argument's choice may decide whether this one is needed
    # (ExportMessages: a directory for files, a url for a server).
    for n in others:
        for value in (spec[n][2] or [])[1:]:
            variants.append(args_of(others, {n: value}))
    seen = []
    for args in variants:
        status, message = scratch.call(fname, args)
        if not (status == "failed" and complains_about(message, name)):
            return None
        seen.append(message)
    # Alternatives (SetServiceCertificate: a thumbprint, or both paths):
    # leaving out one of them together with this one.
    for n in others:
        if spec[n][1]:
            continue
        status, message = scratch.call(fname, args_of([o for o in others if o != n]))
        if not (status == "failed" and complains_about(message, name)):
            return None
        seen.append(message)
    return seen


def test_metadata_says_what_the_handlers_require(template, tmp_path):
    """For every function of get-metadata: a required argument left out is
    refused by the registry ("F: missing argument 'A'"); an optional one
    left out never draws the handler's own "missing"/"required" complaint
    (given the other arguments plausible values, built from the type and
    the allowed values `cmd F --help` shows)."""
    meta = metadata()
    assert len(meta) > 50, meta
    scratch = Scratch(template, tmp_path)
    problems = []

    def check_function(f):
        fname, found = f["name"], []
        spec = function_help(fname)
        # refused before the handler runs: one copy serves every such call
        shared = os.path.join(str(tmp_path), "refusals-" + fname)
        shutil.copytree(template, shared, symlinks=True)
        listed = {a["name"]: (a["type"], not a["nullable"]) for a in f["args"]}
        if {n: s[:2] for n, s in spec.items()} != listed:
            found.append("%s: --help says %r, get-metadata %r" % (fname, spec, listed))
            return found
        for a in f["args"]:
            if a["nullable"]:
                continue
            args = {n: plausible(fname, n, s[0], s[2], tmp_path) for n, s in spec.items() if s[1] and n != a["name"]}
            env = cmd(shared, fname, **args)
            expected = "%s: missing argument '%s' (%s)" % (fname, a["name"], a["type"])
            if env["statusCode"] != "failed" or env["error"]["message"] != expected:
                found.append("%s without required %s: %r" % (fname, a["name"], env["error"] or env["statusCode"]))
        for a in f["args"]:
            if a["nullable"]:
                seen = optional_check(scratch, fname, spec, a["name"], tmp_path)
                if seen is not None:
                    found.append("%s: optional in get-metadata, but required by the handler: %s %r"
                                 % (fname, a["name"], seen[0]))
        return found

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        for found in pool.map(check_function, meta):
            problems += found
    assert not problems, "get-metadata does not say what the functions require:\n" + "\n".join(problems)


def test_every_function_has_help_and_a_row_in_the_list():
    meta = metadata()
    table = mv("cmd", "--list").stdout.decode().splitlines()
    assert table[0].split() == ["FUNCTION", "PRIVILEGE", "SUMMARY"], table[:2]
    rows = [line.split(None, 2) for line in table[1:]]
    assert [r[0] for r in rows] == [f["name"] for f in meta], "one row per function, in get-metadata's order"
    for r in rows:
        assert r[1] in ("admin", "login"), r
        assert len(r) == 3 and r[2].strip(), "a function without a summary: %r" % r
    assert len(table) < 2 * len(meta), "one line per function"
    with pytest.raises(ValueError):
        json.loads("\n".join(table))


def test_function_help_is_the_shells_help(data_dir):
    out = mv("cmd", "SetStoreRequestedState", "--help").stdout.decode()
    assert out.startswith("SetStoreRequestedState: "), out
    assert "privilege: admin" in out, out
    assert re.search(r"--id=number\s+required", out), out
    assert re.search(r"--requestedState=string\s+required\s+one of: current, normal, writeProtected, disabled", out), out
    # the same words as `help F` in the shell, and as `F --help` there
    shell = mv("shell", data_dir=data_dir, input=b"help SetStoreRequestedState\nSetStoreRequestedState --help\n")
    assert shell.stdout.decode() == out + out
    # a flag among the arguments asks for help, not a call
    assert mv("cmd", "GetMessages", "--folder=x/y", "--help").stdout.decode().startswith("GetMessages: ")
    cp = mv("cmd", "NoSuchFunction", "--help", check=2)
    assert b"NoSuchFunction" in cp.stderr and cp.stdout == b""
    cp = mv("cmd", "--json", "GetServerInfo", check=2)
    assert b"--json goes with --list" in cp.stderr


# ---- a served instance: two archives over two stores, a reader ------------------------------

READER_PW = "Reader-Contract-Pw-4711"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """alice/Inbox over two stores with equal dates in both (and within
    each), alice/Secret, bob/Inbox; "reader" may read alice only."""
    root = tmp_path_factory.mktemp("contract-world")
    d = os.path.join(str(root), "data")
    pw = init_with_admin(d)
    dates = [day(i // 3, 8 + i % 3) for i in range(24)] + [day(2)] * 4
    import_emls(d, root, "alice", "Inbox", dates, tag="a")
    import_emls(d, root, "alice", "Secret", [day(i) for i in range(3)], tag="s")
    import_emls(d, root, "bob", "Inbox", [day(i) for i in range(4)], tag="b")
    ok(d, "CreateStore", name="second", requestedState="current")
    import_emls(d, root, "alice", "Inbox", dates, tag="c")
    with MvServer(d, password=pw) as srv:
        # `password` is CreateUser's argument here, not the caller's (MvServer.call's keyword)
        status, env = srv.request("/api/invoke/CreateUser", {"userName": "reader", "privileges": "login",
                                                            "loginPrivileges": "api", "password": READER_PW})
        assert status == 200 and env["statusCode"] == "succeeded", env
        assert srv.call("SetUserPrivilegesOnFolder", userName="reader", folder="alice",
                        privileges="read")["statusCode"] == "succeeded"
        yield {"dir": d, "srv": srv}


def api(world, function, user="admin", **args):
    pw = READER_PW if user == "reader" else None
    return world["srv"].call(function, user=user, password=pw, **args)


def api_ok(world, function, user="admin", **args):
    env = api(world, function, user, **args)
    assert env["statusCode"] == "succeeded", (function, user, args, env)
    return env["result"]


def api_error(world, function, user="admin", **args):
    env = api(world, function, user, **args)
    assert env["statusCode"] == "failed" and env["error"], (function, user, args, env)
    return env["error"]["message"]


# (function, arguments naming the folder X, what X is: a folder or an archive)
FOLDER_FUNCTIONS = [
    ("GetChildFolders", lambda x: {"folder": x}, "folder"),
    ("GetMessages", lambda x: {"folder": x}, "folder"),
    ("MoveFolder", lambda x: {"fromFolder": x, "toFolder": x.split("/")[0] + "/Moved"}, "folder"),
    ("DeleteEmptyFolders", lambda x: {"folder": x}, "folder"),
    ("SearchMessages", lambda x: {"query": WORD, "archive": x}, "archive"),
]


def test_a_missing_folder_has_one_answer_everywhere(world):
    """A folder that does not exist, for an administrator and for a user, and
    one the user may not read: the same error, naming the folder."""
    before = api_ok(world, "GetFolderStatistics")
    for function, args, kind in FOLDER_FUNCTIONS:
        missing, hidden = ("alice/Nope", "bob/Inbox") if kind == "folder" else ("zed", "bob")
        expected = "%s: folder '%s' does not exist"
        assert api_error(world, function, **args(missing)) == expected % (function, missing)
        assert api_error(world, function, "reader", **args(missing)) == expected % (function, missing)
        assert api_error(world, function, "reader", **args(hidden)) == expected % (function, hidden)
    assert api_ok(world, "GetFolderStatistics") == before, "a refused call changed folders"
    # what exists and may be read is answered
    assert api_ok(world, "GetMessages", "reader", folder="alice/Secret", limit=1)
    assert api_ok(world, "SearchMessages", "reader", query=WORD, archive="alice", limit=1)
    # an archive is named as the archive: term names it, in any case
    assert api_ok(world, "SearchMessages", "reader", query=WORD, archive="ALICE", limit=1)


def test_folder_counts_have_one_name(world):
    stats = {s["folder"]: s for s in api_ok(world, "GetFolderStatistics")}
    children = {c["folder"]: c for c in api_ok(world, "GetChildFolders")}
    assert set(stats) == set(children)
    for name, s in stats.items():
        assert set(s) == {"folder", "count", "size"}, s
        assert children[name]["count"] == s["count"], (children[name], s)
    assert stats["alice/Inbox"]["count"] == 56 and stats["alice/Inbox"]["size"] > 0, stats


def keys_of(value, where, out):
    if isinstance(value, dict):
        for k, v in value.items():
            out.append((where, k))
            keys_of(v, where, out)
    elif isinstance(value, list):
        for v in value:
            keys_of(v, where, out)


def test_result_keys_are_camel_case(world):
    """Every key of every answer, as the reference names them: camelCase."""
    one = api_ok(world, "GetMessages", folder="alice/Inbox", limit=1)[0]["id"]
    calls = [("GetMessages", {"folder": "alice/Inbox", "limit": 3}),
             ("SearchMessages", {"query": WORD, "limit": 3, "snippets": True}),
             ("GetMessage", {"id": one}), ("GetChildFolders", {}), ("GetFolderStatistics", {}),
             ("GetStores", {"includeSize": True}), ("GetUsers", {}), ("GetUserInfo", {"userName": "reader"}),
             ("GetServerInfo", {}), ("GetTimeZones", {}), ("GetAuditLog", {"limit": 5}),
             ("VerifyAuditLog", {}), ("GetComplianceConfiguration", {}), ("GetServiceConfiguration", {}),
             ("GetActiveSessions", {}), ("GetStoreAutoCreateConfiguration", {}), ("GetStoreIndexes", {}),
             ("GetAppPasswords", {"userName": "reader"}), ("VerifyStore", {"id": 1})]
    bad = []
    for function, args in calls:
        keys = []
        keys_of(api_ok(world, function, **args), function, keys)
        bad += ["%s: %s" % wk for wk in keys if not CAMEL.match(wk[1])]
    assert not bad, "keys that are not camelCase:\n" + "\n".join(sorted(set(bad)))
    hit = api_ok(world, "SearchMessages", query=WORD, limit=1)[0]
    listed = api_ok(world, "GetMessages", folder="alice/Inbox", limit=1)[0]
    message = api_ok(world, "GetMessage", id=listed["id"])
    assert "messageId" in hit and "messageId" in listed and listed["messageId"] == message["messageId"]


# ---- GetMessages in pages ----------------------------------------------------------------------

def order_key(m):
    store, num = (int(x) for x in m["id"].split(":"))
    return (m["date"], store, num)


def walk(get_page, size, after=None):
    pages = []
    while len(pages) < 1000:
        args = {"limit": size}
        if after:
            args["after"] = after
        page = get_page(**args)
        if not page:
            return pages
        assert len(page) <= size
        pages.append(page)
        after = page[-1]["id"]
    raise AssertionError("paging does not end")


def test_get_messages_pages_by_after_over_two_stores(world):
    whole = api_ok(world, "GetMessages", folder="alice/Inbox")
    assert len(whole) == 56 and {m["id"].split(":")[0] for m in whole} == {"1", "2"}
    assert [order_key(m) for m in whole] == sorted((order_key(m) for m in whole), reverse=True), \
        "newest first; then the higher store, then the higher number"
    dates = [m["date"] for m in whole]
    assert len(set(dates)) < len(dates), "equal dates (in a store and across stores) are exercised"
    for size in (1, 7, 13, 56, 100):
        pages = walk(lambda **a: api_ok(world, "GetMessages", folder="alice/Inbox", **a), size)
        assert [m for p in pages for m in p] == whole, "pages of %d are not the whole listing" % size
    # offset pages the first part the same way
    assert api_ok(world, "GetMessages", folder="alice/Inbox", offset=10, limit=10) == whole[10:20]
    # the reader pages the same listing
    assert [m for p in walk(lambda **a: api_ok(world, "GetMessages", "reader", folder="alice/Inbox", **a), 9)
            for m in p] == whole


def test_get_messages_after_must_be_of_the_folder(world):
    other = api_ok(world, "GetMessages", folder="bob/Inbox", limit=1)[0]["id"]
    for after in (other, "junk", "1:999999", "9:1"):
        msg = api_error(world, "GetMessages", folder="alice/Inbox", after=after)
        assert "after" in msg and after in msg and "alice/Inbox" in msg, msg


@pytest.fixture
def paging_dir(tmp_path):
    d = init_data_dir(tmp_path / "data")
    import_emls(d, tmp_path, "p", "f", [day(i, 10) for i in range(20)], tag="x")
    return d, tmp_path


def test_get_messages_pages_stay_put_while_mail_comes_and_goes(paging_dir):
    """Mail archived or deleted between two pages moves no message to
    another page: the walk sees every message that was there before,
    exactly once, in order."""
    d, tmp = paging_dir
    before = ok(d, "GetMessages", folder="p/f")
    first = ok(d, "GetMessages", folder="p/f", limit=6)
    assert first == before[:6]
    # newer mail (above the cursor) and older mail (below it) arrive; a
    # message already shown and the cursor message itself go.
    import_emls(d, tmp, "p", "f", ["Mon, 01 Jan 2025 10:00:00 +0000", day(0, 5)], tag="late")
    assert ok(d, "DeleteMessage", id=first[0]["id"], reason="contract test") is None
    assert ok(d, "DeleteMessage", id=first[-1]["id"], reason="contract test") is None
    rest = [m for p in walk(lambda **a: ok(d, "GetMessages", folder="p/f", **a), 4, after=first[-1]["id"])
            for m in p]
    ids = [m["id"] for m in rest]
    assert len(ids) == len(set(ids))
    assert [m["id"] for m in rest if not m["subject"].startswith("late")] == [m["id"] for m in before[6:]]
    assert [m["subject"] for m in rest if m["subject"].startswith("late")] == ["late %s 1" % WORD]
    assert [order_key(m) for m in rest] == sorted((order_key(m) for m in rest), reverse=True)


# ---- limit: one meaning, one bound ----------------------------------------------------------------

@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """One folder of MAX_ANSWER + 1 messages, as one mbox."""
    root = tmp_path_factory.mktemp("contract-big")
    d = init_data_dir(root / "data")
    mbox = os.path.join(str(root), "bulk.mbox")
    with open(mbox, "w") as f:
        for i in range(MAX_ANSWER + 1):
            f.write("From bulk@example.net Mon Jan  1 00:00:00 2024\nFrom: bulk@example.net\nTo: x@example.com\n"
                    "Subject: bulk %d %s%s\nDate: Mon, 01 Jan 2024 %02d:%02d:%02d +0000\n"
                    "Message-ID: <bulk%d@example.net>\n\n%s number %d\n\n"
                    % (i, WORD, " rare" if i % 1000 == 0 else "", (i // 3600) % 24, (i // 60) % 60, i % 60, i, WORD, i))
    summary, _ = import_json(mbox, "big", d, "--folder", "bulk")
    assert summary["imported"] == MAX_ANSWER + 1, summary
    return d


def test_limit_zero_is_all_and_an_answer_is_bounded(big):
    d = big
    # all of a small answer
    rare = ok(d, "SearchMessages", query="rare", limit=0)
    assert len(rare) == 11, len(rare)
    assert [h["id"] for h in ok(d, "SearchMessages", query="rare", limit=11)] == [h["id"] for h in rare]
    # "all" of more than one answer holds is refused, saying how to page
    for function, args in (("GetMessages", {"folder": "big/bulk"}), ("GetMessages", {"folder": "big/bulk", "limit": 0}),
                           ("SearchMessages", {"query": WORD, "limit": 0})):
        msg = failure(d, function, **args)
        assert "more than %d" % MAX_ANSWER in msg and "after" in msg, (function, args, msg)
    for function, args in (("GetMessages", {"folder": "big/bulk"}), ("SearchMessages", {"query": WORD})):
        for limit in (-1, MAX_ANSWER + 1):
            msg = failure(d, function, limit=limit, **args)
            assert "limit must be 1 to %d, or 0 for all" % MAX_ANSWER in msg, msg
    assert len(ok(d, "SearchMessages", query=WORD, limit=MAX_ANSWER)) == MAX_ANSWER
    # a folder larger than one answer is walked in pages
    pages = walk(lambda **a: ok(d, "GetMessages", folder="big/bulk", **a), MAX_ANSWER // 2)
    assert [len(p) for p in pages] == [MAX_ANSWER // 2, MAX_ANSWER // 2, 1]
    assert len({m["id"] for p in pages for m in p}) == MAX_ANSWER + 1
    # the command line's --limit 0 is all as well (a process of one's own: no bound)
    hits = parse_json(mv("search", WORD, "--limit", "0", "--json", data_dir=d))
    assert len(hits) == MAX_ANSWER + 1
