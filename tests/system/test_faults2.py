"""More fault injection: kill -9 and Ctrl-C during TransferStores, a backup
taken while an import runs, searches and shows during CompactStore, and
MoveFolder across archives followed by a RecoverStore.

Like test_faults.py, each test works on a slice of the SpamAssassin corpus
(EML files of distinct content, one subdirectory per corpus group, so there
are several folders) imported into a fresh data dir.  A message is compared
by (archive/folder, sha256 of `mailvault show`); `search --json` lists the
messages of every store, the store being the part of the id before the
colon."""

import collections
import json
import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time

import pytest

from mvtest import (MAILVAULT_BIN, T_IMPORT, check_no_crash, import_json, init_data_dir, mv,
                    parse_json, search_json, sha256, show_hashes)
from test_faults import cmd, imported_store, ok, pick_corpus, run_and_maybe_kill, store_paths

# Under `pytest -n 2 --dist loadgroup` (tools/test.sh) the fault tests, the
# longest share of the suite after the corpus imports, run together on one
# worker while the corpus tests (group "corpus") run on the other.
pytestmark = pytest.mark.xdist_group("faults")

TRANSFER_STORE_SIZE = 800
TRANSFER_KILL_ROUNDS = 24
# rounds of the kill test whose store 2 is compared byte for byte in full
# (the others: every search field in full, the bytes of a sample)
TRANSFER_FULL_ROUNDS = (TRANSFER_KILL_ROUNDS - 1,)
TRANSFER_SAMPLE = 30
BACKUP_IMPORT_SIZE = 2000


# ---------------------------------------------------------------------------
# helpers

def store_of(msg_id):
    return int(msg_id.split(":")[0])


def num_of(msg_id):
    return int(msg_id.split(":")[1])


def hit_key(h):
    """What a search hit says of a message, apart from its id."""
    return ("%s/%s" % (h["archive"], h["folder"]), h["messageId"], h["size"], h["subject"], h["date"], h["from"])


def store_hits(d, sid, query="size:>0"):
    """{id: hit} of the messages of store sid a search lists (each id once)."""
    hits = search_json(query, d, limit=0)
    ids = [h["id"] for h in hits]
    dup = [i for i, c in collections.Counter(ids).items() if c > 1]
    assert not dup, "search %r lists ids more than once: %s" % (query, dup[:10])
    return {h["id"]: h for h in hits if store_of(h["id"]) == sid}


def shas(d, ids):
    got, bad = show_hashes(sorted(ids), d)
    assert not bad, "show failed for listed messages: %s" % dict(list(bad.items())[:3])
    return got


def placed(hits, sha_of):
    """Counter of (archive/folder, sha256) over the given hits."""
    return collections.Counter((hit_key(h)[0], sha_of[i]) for i, h in hits.items())


def key_counter(hits):
    return collections.Counter(hit_key(h) for h in hits.values())


def counter_diff(want, got, n=5):
    missing = list((want - got).items())[:n]
    extra = list((got - want).items())[:n]
    return "missing %d %s; extra %d %s" % (sum((want - got).values()), missing,
                                           sum((got - want).values()), extra)


def verify_store(d, sid, include_indexes=True):
    return ok(cmd(d, "VerifyStore", id=sid, includeIndexes=include_indexes), "VerifyStore --id=%d" % sid)


def assert_store_clean(d, sid, include_indexes=True, when=""):
    r = verify_store(d, sid, include_indexes)
    assert r["clean"] is True and not r["damagedMessageIds"] and not r["problems"], (
        "VerifyStore --id=%d%s not clean %s: %s" % (
            sid, " --includeIndexes=true" if include_indexes else "", when, json.dumps(r)[:3000]))
    return r


def envelopes(text):
    """The JSON envelopes `mailvault shell` prints, one per input line."""
    dec, i, out = json.JSONDecoder(), 0, []
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return out
        obj, i = dec.raw_decode(text, i)
        out.append(obj)


def shell_lines(d, lines, timeout=600):
    """Runs the lines in one `mailvault shell`; every function must succeed."""
    cp = mv("shell", data_dir=d, input=("\n".join(lines) + "\n").encode(), timeout=timeout)
    envs = envelopes(cp.stdout.decode("utf-8"))
    assert len(envs) == len(lines), "%d envelopes for %d lines; stderr: %s" % (
        len(envs), len(lines), cp.stderr[-2000:])
    bad = [(line, e["error"]) for line, e in zip(lines, envs) if e["statusCode"] != "succeeded"]
    assert not bad, "%d of %d shell lines failed, first: %s" % (len(bad), len(lines), bad[:3])
    return envs


def folder_names(d):
    """The folders GetChildFolders lists that hold messages or have
    subfolders that do (an archive root counts as such a folder).  Empty
    leaves, such as what a move leaves behind, are left out."""
    rows = ok(cmd(d, "GetChildFolders"), "GetChildFolders")
    full = [f["folder"] for f in rows if f["count"]]
    return sorted({f["folder"] for f in rows if any(x == f["folder"] or x.startswith(f["folder"] + "/") for x in full)})


def folders_json(d):
    return sorted(json.dumps(r, sort_keys=True) for r in parse_json(mv("folders", "--json", data_dir=d)))


# ---------------------------------------------------------------------------
# fixtures

@pytest.fixture(scope="module")
def base_store(corpus, tmp_path_factory):
    """A store of TRANSFER_STORE_SIZE messages in archive "a": (data dir,
    {id: hit}, {id: sha256 of show})."""
    tmp = tmp_path_factory.mktemp("base2")
    d, _, _ = imported_store(tmp, corpus, TRANSFER_STORE_SIZE, seed=21)
    hits = store_hits(d, 1)
    assert len(hits) == TRANSFER_STORE_SIZE, len(hits)
    return d, hits, shas(d, hits)


class TransferBase:
    pass


@pytest.fixture(scope="module")
def transfer_base(base_store, tmp_path_factory):
    """base_store plus an empty current store 2 "t2", store 1 writeProtected;
    and one undisturbed TransferStores of it, timed."""
    src, hits, sha_of = base_store
    tb = TransferBase()
    tb.pristine = tmp_path_factory.mktemp("transfer") / "pristine"
    shutil.copytree(str(src), str(tb.pristine))
    ok(cmd(tb.pristine, "CreateStore", name="t2", requestedState="current"), "CreateStore")
    ok(cmd(tb.pristine, "SetStoreRequestedState", id=1, requestedState="writeProtected"), "SetStoreRequestedState")
    tb.hits1, tb.sha1 = hits, sha_of
    tb.keys1 = key_counter(hits)
    tb.placed1 = placed(hits, sha_of)
    assert max(tb.placed1.values()) == 1, "the source store should hold distinct (folder, content) pairs"

    calib = tb.pristine.parent / "calib"
    shutil.copytree(str(tb.pristine), str(calib))
    t0 = time.monotonic()
    r = ok(cmd(calib, "TransferStores", sourceStores=1, targetStore=2), "TransferStores")
    tb.seconds = time.monotonic() - t0
    assert r == {"messagesTransferred": len(hits), "messagesInSources": len(hits)}, r
    check_transfer(tb, calib, "undisturbed", full=False)
    shutil.rmtree(str(calib))
    return tb


def check_transfer(tb, d, when, full, rnd=0):
    """Store 2 verifies clean and holds exactly store 1's messages: the same
    search fields, and (all or a sample of) the same (folder, bytes).
    Store 1 is unchanged.  Returns store 2's Counter of (folder, sha256)
    when full."""
    assert_store_clean(d, 2, when=when)
    hits = search_json("size:>0", d, limit=0)
    ids = [h["id"] for h in hits]
    dup = [i for i, c in collections.Counter(ids).items() if c > 1]
    assert not dup, "%s: ids listed more than once: %s" % (when, dup[:10])
    by_store = collections.defaultdict(dict)
    for h in hits:
        by_store[store_of(h["id"])][h["id"]] = h
    assert set(by_store) <= {1, 2}, "%s: messages in unexpected stores %s" % (when, sorted(by_store))
    s1, s2 = by_store[1], by_store[2]
    assert s1 == tb.hits1, "%s: the source store changed (%s)" % (when, counter_diff(tb.keys1, key_counter(s1)))
    k2 = key_counter(s2)
    assert k2 == tb.keys1, "%s: store 2 does not hold exactly store 1's messages: %s" % (
        when, counter_diff(tb.keys1, k2))
    if full:
        got = placed(s2, shas(d, s2))
        assert got == tb.placed1, "%s: (folder, bytes) of store 2 differ from store 1's: %s" % (
            when, counter_diff(tb.placed1, got))
        return got
    sample = random.Random(rnd).sample(sorted(s2), min(TRANSFER_SAMPLE, len(s2)))
    sha2 = shas(d, sample)
    wrong = [i for i in sample if (hit_key(s2[i])[0], sha2[i]) not in tb.placed1]
    assert not wrong, "%s: messages of store 2 whose (folder, bytes) store 1 does not hold: %s" % (when, wrong[:5])
    return None


# ---------------------------------------------------------------------------
# a. kill -9 during TransferStores, then a rerun to completion

def test_kill9_during_transfer(transfer_base, tmp_path):
    tb = transfer_base
    rng = random.Random(8642)
    killed, log = 0, []
    for rnd in range(TRANSFER_KILL_ROUNDS):
        d = tmp_path / ("t%d" % rnd)
        shutil.copytree(str(tb.pristine), str(d))
        delay = rng.uniform(0.05 * tb.seconds, 0.7 * tb.seconds)
        was_killed = run_and_maybe_kill(d, "TransferStores", delay, sourceStores=1, targetStore=2)
        partial = None
        if was_killed:
            killed += 1
            # right after the crash: store 2 consistent, holding some of store 1's messages, none twice
            assert_store_clean(d, 2, include_indexes=False, when="right after kill -9 (round %d, %.2fs)" % (rnd, delay))
            s2 = store_hits(d, 2)
            partial = len(s2)
            over = key_counter(s2) - tb.keys1
            assert not over, "round %d: after kill -9 store 2 holds messages store 1 does not (or twice): %s" % (
                rnd, list(over.items())[:5])
        r = ok(cmd(d, "TransferStores", sourceStores=1, targetStore=2),
               "TransferStores rerun after kill -9 (round %d, %.2fs)" % (rnd, delay))
        assert r["messagesInSources"] == len(tb.hits1), r
        check_transfer(tb, d, "round %d (killed=%s after %.2fs)" % (rnd, was_killed, delay),
                       full=rnd in TRANSFER_FULL_ROUNDS, rnd=rnd)
        log.append((round(delay, 2), was_killed, partial))
        shutil.rmtree(str(d))
    print("TransferStores: %.2fs undisturbed; rounds (delay, killed, messages in store 2 after the kill): %s"
          % (tb.seconds, log))
    assert killed >= 3, "only %d of %d transfers were still running at their kill instant" % (
        killed, TRANSFER_KILL_ROUNDS)


# ---------------------------------------------------------------------------
# b. Ctrl-C during TransferStores names the resume command, which completes it

RESUME_RE = re.compile(r"(TransferStores --sourceStores=\S+(?: --targetStore=\S+)? --startIndex=(\d+):(\d+))")


def test_sigint_transfer_resume(transfer_base, tmp_path):
    tb = transfer_base
    d = tmp_path / "data"
    shutil.copytree(str(tb.pristine), str(d))
    argv = [MAILVAULT_BIN, "--data-dir", str(d), "cmd", "TransferStores", "--sourceStores=1", "--targetStore=2"]
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    err_lines, progressed = [], threading.Event()

    def read_stderr():
        for line in p.stderr:
            err_lines.append(line)
            if re.search(rb"progress: \d+% [1-9]\d* of \d+ messages", line):
                progressed.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    # interrupt once some messages are through (a progress line every 500)
    progressed.wait(timeout=300)
    still_running = p.poll() is None
    if still_running:
        os.kill(p.pid, signal.SIGINT)
    out = p.stdout.read()
    p.wait(timeout=300)
    reader.join(timeout=60)
    cp = subprocess.CompletedProcess(argv, p.returncode, out, b"".join(err_lines))
    check_no_crash(cp)
    assert progressed.is_set() and still_running, (
        "the transfer should have reported progress and still be running; exit %r, stderr %r"
        % (p.returncode, cp.stderr[-2000:]))
    env = parse_json(cp)
    msg = (env["error"] or {}).get("message") or ""
    assert env["statusCode"] == "cancelled", "SIGINT: statusCode %r, error %r, exit %r" % (
        env["statusCode"], env["error"], p.returncode)
    assert p.returncode == 1, p.returncode
    assert "--startIndex=1:" in msg, "the cancelled transfer names no resume point: %r" % msg
    m = RESUME_RE.search(msg)
    assert m, "no resume command in %r" % msg
    resume, start_store, start_num = m.group(1), int(m.group(2)), int(m.group(3))
    assert start_store == 1

    # what is in store 2 is exactly store 1's messages before the resume point
    assert_store_clean(d, 2, when="after the cancelled transfer")
    before = {i: h for i, h in tb.hits1.items() if num_of(i) < start_num}
    after = {i: h for i, h in tb.hits1.items() if num_of(i) >= start_num}
    assert before and after, "resume point 1:%d should fall inside the store" % start_num
    s2 = store_hits(d, 2)
    assert key_counter(s2) == key_counter(before), (
        "after the cancel store 2 should hold store 1's messages numbered below %d: %s"
        % (start_num, counter_diff(key_counter(before), key_counter(s2))))

    rcp = mv("cmd", *shlex.split(resume), data_dir=d, check=False, timeout=600)
    env2 = parse_json(rcp)
    env2["_stderr"], env2["_rc"] = rcp.stderr.decode("utf-8", "replace")[-3000:], rcp.returncode
    r = ok(env2, "the resume command %r" % resume)
    assert r["messagesTransferred"] == len(after), (
        "the resumed transfer should hand over the %d messages from 1:%d on: %s" % (len(after), start_num, r))
    check_transfer(tb, d, "after the resume command %r" % resume, full=True)
    print("SIGINT at %r; resumed with %r: %s" % (msg, resume, r))


# ---------------------------------------------------------------------------
# c. CreateBackup while an import runs

def test_backup_during_import(corpus, tmp_path):
    src = tmp_path / "src"
    source = pick_corpus(corpus, BACKUP_IMPORT_SIZE, src, seed=33)
    d = init_data_dir(tmp_path / "data")
    argv = [MAILVAULT_BIN, "--data-dir", str(d), "import", str(src), "--archive", "a", "--json"]
    imp = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # start the backup once the import is under way: on the event of its
        # first batch's commit (the store db's write-ahead log growing),
        # watched without starting a process (a `stats` per poll was slower
        # than the import on a loaded machine)
        wal = os.path.join(str(d), "stores", "store1", "db", "store.sqlite-wal")
        deadline = time.monotonic() + T_IMPORT
        committed = False
        while imp.poll() is None and time.monotonic() < deadline and not committed:
            committed = os.path.exists(wal) and os.path.getsize(wal) > 0
            time.sleep(0.002)
        running = imp.poll() is None
        assert committed and running, "the import finished before the backup could start (a commit seen: %s)" % committed
        backup = tmp_path / "backup"
        t0 = time.monotonic()
        benv = cmd(d, "CreateBackup", path=backup)
        bsecs = time.monotonic() - t0
        overlapped = imp.poll() is None
        out, err = imp.communicate(timeout=T_IMPORT)
    finally:
        if imp.poll() is None:
            imp.kill()
            imp.wait()
    cp = subprocess.CompletedProcess(argv, imp.returncode, out, err)
    check_no_crash(cp)
    ok(benv, "CreateBackup during an import")
    assert imp.returncode == 0, "the import failed while a backup ran: %s %r" % (imp.returncode, err[-2000:])
    s = parse_json(cp)
    assert (s["imported"], s["refused"]) == (BACKUP_IMPORT_SIZE, 0), s

    r = tmp_path / "restored"
    mv("restore", backup, data_dir=r, timeout=600)
    assert_store_clean(r, 1, when="after restoring a backup taken during an import")
    hits = store_hits(r, 1)
    got = shas(r, hits)
    stray = sorted(i for i, h in got.items() if h not in source)
    assert not stray, "restored messages whose bytes match no source file: %s" % stray[:5]
    twice = [h for h, c in collections.Counter(got.values()).items() if c > 1]
    assert not twice, "restored content listed more than once: %s" % twice[:5]
    n = len(got)
    assert 0 <= n <= BACKUP_IMPORT_SIZE
    # each restored message is in the folder it came from
    wrong_folder = [i for i, h in hits.items()
                    if "%s/%s" % (h["archive"], h["folder"]) != "a/" + os.path.dirname(source[got[i]])]
    assert not wrong_folder, "restored messages in the wrong folder: %s" % wrong_folder[:5]

    # the restored instance takes the rest of the import
    s2, _ = import_json(src, "a", r)
    assert (s2["imported"], s2["duplicates"], s2["refused"]) == (BACKUP_IMPORT_SIZE - n, n, 0), (n, s2)
    final = shas(r, store_hits(r, 1))
    assert len(final) == BACKUP_IMPORT_SIZE and set(final.values()) == set(source), (
        "after importing the rest: %d messages, %d distinct, missing %d" % (
            len(final), len(set(final.values())), len(set(source) - set(final.values()))))
    assert_store_clean(r, 1, when="after importing the rest into the restored instance")
    print("backup took %.2fs, overlapped the import: %s; %d of %d messages in it"
          % (bsecs, overlapped, n, BACKUP_IMPORT_SIZE))


# ---------------------------------------------------------------------------
# d. searches and shows keep working during CompactStore

COMPACT_QUERIES = ["size:>0", "money", "subject:re", "size:>5000"]


def test_search_during_compact(base_store, tmp_path):
    src, hits, sha_of = base_store
    d = tmp_path / "data"
    shutil.copytree(str(src), str(d))
    ids = sorted(hits, key=num_of)
    doomed = sorted(random.Random(99).sample(ids, len(ids) // 10), key=num_of)
    shell_lines(d, ["DeleteMessage --id=%s --reason=t" % i for i in doomed])
    live_ids = set(ids) - set(doomed)
    assert set(store_hits(d, 1)) == live_ids, "search after the deletions"
    expected = {q: sorted(h["id"] for h in search_json(q, d, limit=0)) for q in COMPACT_QUERIES}
    for q, got in expected.items():
        assert set(got) <= live_ids, "%s lists deleted messages" % q
    assert expected["money"] and expected["subject:re"]
    live_sorted = sorted(live_ids)

    argv = [MAILVAULT_BIN, "--data-dir", str(d), "cmd", "CompactStore", "--id=1"]
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    rng = random.Random(5)
    rounds, during, failures = 0, 0, []
    try:
        while True:
            running = p.poll() is None
            if not running and rounds > 0:
                break
            q = COMPACT_QUERIES[rounds % len(COMPACT_QUERIES)]
            try:
                got = sorted(h["id"] for h in search_json(q, d, limit=0))
                if got != expected[q]:
                    failures.append("search %r during compaction: %d hits, expected %d (missing %s, extra %s)" % (
                        q, len(got), len(expected[q]), sorted(set(expected[q]) - set(got))[:5],
                        sorted(set(got) - set(expected[q]))[:5]))
                for i in rng.sample(live_sorted, 3):
                    h = sha256(mv("show", i, data_dir=d).stdout)
                    if h != sha_of[i]:
                        failures.append("show %s during compaction: wrong bytes" % i)
            except AssertionError as e:
                failures.append(str(e)[:1500])
            rounds += 1
            during += running   # the compaction was running when this round began
            if len(failures) >= 5:
                break
    finally:
        out, err = p.communicate(timeout=600)
    cp = subprocess.CompletedProcess(argv, p.returncode, out, err)
    check_no_crash(cp)
    assert not failures, "%d failures in %d rounds of search/show during CompactStore:\n%s" % (
        len(failures), rounds, "\n".join(failures))
    r = parse_json(cp)
    assert r["statusCode"] == "succeeded", r
    assert r["result"]["recordsDropped"] >= 1, r["result"]
    assert during >= 1, "CompactStore finished before a search/show round could run beside it"
    after = store_hits(d, 1)
    assert set(after) == live_ids
    got = shas(d, after)
    wrong = [i for i in live_ids if got[i] != sha_of[i]]
    assert not wrong, "wrong bytes after CompactStore: %s" % wrong[:5]
    assert_store_clean(d, 1, when="after CompactStore")
    print("%d search/show rounds, %d of them while CompactStore ran" % (rounds, during))


# ---------------------------------------------------------------------------
# e. MoveFolder across archives, then RecoverStore keeps the moved names

MOVES = [("a/spam-1", "b/spam-1"), ("a/easy-ham-2", "c/x/ham"), ("b/spam-1", "a/spam-back")]


def test_move_folder_across_archives_recover(corpus, tmp_path):
    d, _, _ = imported_store(tmp_path, corpus, 400, seed=44)
    hits = store_hits(d, 1)
    sha_of = shas(d, hits)
    where = {i: "%s/%s" % (h["archive"], h["folder"]) for i, h in hits.items()}
    for frm, _ in MOVES[:2]:
        assert frm in where.values(), "the sample should have messages in %s: %s" % (frm, sorted(set(where.values())))

    def check(when):
        by_archive = collections.defaultdict(set)
        for i, f in where.items():
            by_archive[f.split("/", 1)[0]].add(i)
        for archive in ("a", "b", "c"):
            got = {h["id"]: "%s/%s" % (h["archive"], h["folder"])
                   for h in search_json("size:>0", d, archive=archive, limit=0)}
            want = {i: where[i] for i in by_archive[archive]}
            assert got == want, "%s: search --archive %s: missing %s, extra %s, wrong folder %s" % (
                when, archive, sorted(set(want) - set(got))[:5], sorted(set(got) - set(want))[:5],
                [(i, got[i], want[i]) for i in set(got) & set(want) if got[i] != want[i]][:5])
            for q in ("archive:%s money" % archive, "archive:%s size:>0" % archive):
                want_q = {i for i in search_ids_all(d, q.split(" ", 1)[1]) if where[i].split("/", 1)[0] == archive}
                got_q = {h["id"] for h in search_json(q, d, limit=0)}
                assert got_q == want_q, "%s: search %r: missing %s, extra %s" % (
                    when, q, sorted(want_q - got_q)[:5], sorted(got_q - want_q)[:5])
        folders_now = collections.Counter(where.values())
        listed = {"%s/%s" % (r["archive"], r["folder"]): r["count"]
                  for r in parse_json(mv("folders", "--json", data_dir=d))}
        assert {f: c for f, c in listed.items() if c} == dict(folders_now), "%s: folders: %s" % (when, listed)
        names = folder_names(d)
        assert set(folders_now) <= set(names), "%s: GetChildFolders lacks %s" % (
            when, sorted(set(folders_now) - set(names)))

    for frm, to in MOVES:
        env = cmd(d, "MoveFolder", fromFolder=frm, toFolder=to)
        ok(env, "MoveFolder %s -> %s" % (frm, to))
        assert "warning" not in env["_stderr"], "MoveFolder %s -> %s warned: %s" % (frm, to, env["_stderr"])
        for i, f in list(where.items()):
            if f == frm or f.startswith(frm + "/"):
                where[i] = to + f[len(frm):]
        check("after MoveFolder %s -> %s" % (frm, to))
    assert_store_clean(d, 1, include_indexes=True, when="after the moves")
    names_before, folders_before = folder_names(d), folders_json(d)

    shutil.rmtree(store_paths(d)[0])
    r = ok(cmd(d, "RecoverStore", id=1), "RecoverStore")
    assert r["messagesRecovered"] == len(hits), r
    assert folders_json(d) == folders_before, "folders after RecoverStore differ: %s vs %s" % (
        folders_json(d), folders_before)
    names = folder_names(d)
    final = set(where.values())
    assert {"a/spam-back", "c/x/ham"} <= final
    assert final <= set(names), "moved folders missing from GetChildFolders after RecoverStore: %s (lists %s)" % (
        sorted(final - set(names)), names)
    assert set(names) == set(names_before), "GetChildFolders after RecoverStore: %s, before: %s" % (names, names_before)
    check("after RecoverStore")
    after = store_hits(d, 1)
    got = shas(d, after)
    assert got == sha_of, "bytes differ after RecoverStore"
    assert_store_clean(d, 1, include_indexes=True, when="after RecoverStore")


def search_ids_all(d, query):
    return {h["id"] for h in search_json(query, d, limit=0)}


# ---------------------------------------------------------------------------
# f. an import that runs out of space reports it cleanly (no GLib warning)

def test_disk_full_import_reports_cleanly(tmp_path, corpus):
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    cp = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True)
    if cp.returncode != 0:
        pytest.skip("cannot mount a tmpfs: %s" % cp.stderr.decode("utf-8", "replace"))
    try:
        d = init_data_dir(mnt / "data")
        cp = mv("import", corpus.eml_dir, "--archive", "full", "--json", data_dir=d, check=1, timeout=T_IMPORT)
        err = cp.stderr.decode("utf-8", "replace")
        assert "no space left on device" in err.lower() or "disk is full" in err.lower(), err[-2000:]
        for marker in ("GLib-WARNING", "GLib-CRITICAL", "GLib-GObject-WARNING", "GLib-GObject-CRITICAL"):
            assert marker not in err, "%s on stderr of an import that ran out of space:\n%s" % (marker, err[-3000:])
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
