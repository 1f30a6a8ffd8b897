"""Fault injection on a store: a flipped byte in a segment, a deleted db/ or
index/ directory, deletion + compaction, kill -9 in the middle of
CompactStore and RecoverStore, and a full disk during an import.

Each test works on a small slice of the SpamAssassin corpus (EML files copied
to a temp dir, one subdirectory per corpus group, so there are several
folders), imported into a fresh data dir."""

import collections
import json
import os
import random
import shutil
import signal
import subprocess
import time

import pytest

from mvtest import (MAILVAULT_BIN, T_IMPORT, check_no_crash, import_json, init_data_dir, mv,
                    parse_json, search_json, sha256, show_hashes)

# Under `pytest -n 2 --dist loadgroup` (tools/test.sh) the fault tests, the
# longest share of the suite after the corpus imports, run together on one
# worker while the corpus tests (group "corpus") run on the other.
pytestmark = pytest.mark.xdist_group("faults")

KILL_ROUNDS = 24
KILL_STORE_SIZE = 1000


# ---------------------------------------------------------------------------
# helpers

def cmd(data_dir, function, timeout=600, **args):
    """`mailvault cmd FUNCTION --k=v ...`: the JSON envelope (any exit status)."""
    argv = ["cmd", function]
    for k, v in args.items():
        if isinstance(v, bool):
            v = "true" if v else "false"
        argv.append("--%s=%s" % (k, v))
    cp = mv(*argv, data_dir=data_dir, check=False, timeout=timeout)
    env = parse_json(cp)
    env["_stderr"] = cp.stderr.decode("utf-8", "replace")[-3000:]
    env["_rc"] = cp.returncode
    return env


def ok(env, what):
    assert env["statusCode"] == "succeeded" and env["error"] is None, (
        "%s did not succeed: statusCode=%r error=%r exit=%r\nstderr: %s"
        % (what, env["statusCode"], env["error"], env["_rc"], env["_stderr"]))
    return env["result"]


def verify(data_dir, include_indexes=True):
    return ok(cmd(data_dir, "VerifyStore", id=1, includeIndexes=include_indexes), "VerifyStore")


def assert_clean(data_dir, include_indexes=True, when=""):
    r = verify(data_dir, include_indexes)
    assert r["clean"] is True and not r["damagedMessageIds"], (
        "VerifyStore not clean %s: %s" % (when, json.dumps(r)[:3000]))
    return r


def store_paths(data_dir):
    root = os.path.join(str(data_dir), "stores", "store1")
    return (os.path.join(root, "db"), os.path.join(root, "content"), os.path.join(root, "index"))


def pick_corpus(corpus, n, dest, seed=0):
    """Copies n corpus EML files of distinct content into dest/GROUP/NAME.
    Returns {sha256: rel path under dest}."""
    return corpus.copy_distinct(n, seed, dest)


def live(data_dir, archive=None):
    """{id: sha256 of show} of every message search lists (each id once)."""
    hits = search_json("size:>0", data_dir, archive=archive, limit=0)
    ids = [h["id"] for h in hits]
    dup = [i for i, c in collections.Counter(ids).items() if c > 1]
    assert not dup, "ids listed more than once: %s" % dup[:10]
    got, bad = show_hashes(ids, data_dir)
    assert not bad, "show failed for listed messages: %s" % dict(list(bad.items())[:3])
    return got


def hit_keys(data_dir, archive=None):
    """{id: (archive, folder, messageId, size, subject)} from one search."""
    return {h["id"]: (h["archive"], h["folder"], h["messageId"], h["size"], h["subject"])
            for h in search_json("size:>0", data_dir, archive=archive, limit=0)}


QUERIES = ["size:>0", "subject:re", "money", "the", "size:>5000", "from:com", "linux", "click here"]


def answers(data_dir):
    return {q: sorted(json.dumps(h, sort_keys=True) for h in search_json(q, data_dir, limit=0))
            for q in QUERIES}


def folders(data_dir):
    return sorted(json.dumps(r, sort_keys=True) for r in parse_json(mv("folders", "--json", data_dir=data_dir)))


def imported_store(tmp_path, corpus, n, name="data", seed=0):
    src = tmp_path / ("src-" + name)
    shas = pick_corpus(corpus, n, src, seed=seed)
    d = init_data_dir(tmp_path / name)
    s, _ = import_json(src, "a", d)
    assert (s["imported"], s["duplicates"], s["refused"]) == (n, 0, 0), s
    return d, src, shas


def flip_byte(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x40]))


def recover(data_dir, **extra):
    return ok(cmd(data_dir, "RecoverStore", id=1, **extra), "RecoverStore")


def delete_message(data_dir, msg_id):
    env = cmd(data_dir, "DeleteMessage", id=msg_id, reason="fault test")
    return ok(env, "DeleteMessage --id=%s" % msg_id)


def popen_cmd(data_dir, function, **args):
    argv = [MAILVAULT_BIN, "--data-dir", str(data_dir), "cmd", function]
    argv += ["--%s=%s" % (k, v) for k, v in args.items()]
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def run_and_maybe_kill(data_dir, function, delay, **args):
    """Runs the function, SIGKILLs it after `delay` s unless it finished.
    Returns True if it was killed."""
    p = popen_cmd(data_dir, function, **args)
    try:
        out, err = p.communicate(timeout=delay)
        cp = subprocess.CompletedProcess(p.args, p.returncode, out, err)
        check_no_crash(cp)
        return False
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGKILL)
        out, err = p.communicate(timeout=60)
        if p.returncode == 0:
            # It finished in the instant between the timeout and the kill
            # (the signal reached a process that had already exited).
            check_no_crash(subprocess.CompletedProcess(p.args, p.returncode, out, err))
            return False
        assert p.returncode == -signal.SIGKILL, (p.returncode, err[-3000:])
        assert b"AddressSanitizer" not in err and b"runtime error" not in err, err[-3000:]
        return True


# ---------------------------------------------------------------------------
# 1. a flipped byte in a segment damages exactly the message whose record holds it

def test_bitflip_in_segment(tmp_path, corpus):
    d, _, shas = imported_store(tmp_path, corpus, 300)
    seg = os.path.join(store_paths(d)[1], "seg-00000001.mvs")
    size = os.path.getsize(seg)
    before = live(d)
    assert set(before.values()) == set(shas)
    flip_byte(seg, size // 2)

    r = verify(d)
    assert r["clean"] is False, "VerifyStore missed a flipped byte at offset %d: %s" % (size // 2, r)
    damaged = r["damagedMessageIds"]
    assert len(damaged) == 1, "one flipped byte should damage one message, got %s (%s)" % (damaged, r["problems"])
    bad = damaged[0]
    assert bad in before, (bad, sorted(before)[:5])
    assert any(bad in (p.get("messageIds") or []) for p in r["problems"]), r["problems"]

    # every other message still shows byte-exact; the damaged one is an error, never wrong bytes
    ids = sorted(before)
    got, errors = show_hashes(ids, d)
    assert set(errors) == {bad}, "show errors: expected only %s, got %s" % (bad, sorted(errors)[:10])
    for i in ids:
        if i != bad:
            assert got[i] == before[i], "message %s changed after flipping a byte of another record" % i
    assert set(got.values()) == set(shas) - {before[bad]}


# ---------------------------------------------------------------------------
# 2. db/ deleted: RecoverStore rebuilds it from content

def test_db_deleted_recover(tmp_path, corpus):
    d, _, shas = imported_store(tmp_path, corpus, 300)
    before, ans, fold = live(d), answers(d), folders(d)
    assert set(before.values()) == set(shas)

    db_dir = store_paths(d)[0]
    shutil.rmtree(db_dir)
    stores = ok(cmd(d, "GetStores"), "GetStores")
    s1 = [s for s in stores if s["id"] == 1]
    assert len(s1) == 1 and s1[0]["error"], "store 1 should report an error with db/ gone: %s" % stores

    r = recover(d)
    assert r["messagesRecovered"] == len(shas), r
    after = live(d)
    assert after == before, "ids/bytes differ after RecoverStore: missing %s, extra %s" % (
        sorted(set(before.items()) - set(after.items()))[:5], sorted(set(after.items()) - set(before.items()))[:5])
    assert folders(d) == fold
    new_ans = answers(d)
    for q in QUERIES:
        assert new_ans[q] == ans[q], "search %r differs after RecoverStore: %d hits before, %d after" % (
            q, len(ans[q]), len(new_ans[q]))
    assert_clean(d, when="after RecoverStore")


# ---------------------------------------------------------------------------
# 3. index/ deleted: RebuildStoreIndex

def test_index_deleted_rebuild(tmp_path, corpus):
    d, _, shas = imported_store(tmp_path, corpus, 300)
    ans = answers(d)
    assert ans["money"] and ans["subject:re"], "queries should have hits to compare"
    shutil.rmtree(store_paths(d)[2])
    ok(cmd(d, "RebuildStoreIndex", id=1, folder="x"), "RebuildStoreIndex")
    new_ans = answers(d)
    for q in QUERIES:
        assert new_ans[q] == ans[q], "search %r differs after RebuildStoreIndex: %d hits before, %d after" % (
            q, len(ans[q]), len(new_ans[q]))
    assert_clean(d, include_indexes=True, when="after RebuildStoreIndex")


# ---------------------------------------------------------------------------
# 4. delete + compact, then recover with and without deleted messages

def test_delete_compact_recover(tmp_path, corpus):
    d, src, shas = imported_store(tmp_path, corpus, 300)
    before = live(d, archive="a")
    ids = sorted(before, key=lambda i: int(i.split(":")[1]))
    # the content of `shared` is imported into a second archive too
    shared, other = ids[10], ids[200]
    shared_rel = shas[before[shared]]
    one = tmp_path / "one"
    one.mkdir()
    shutil.copyfile(os.path.join(str(src), shared_rel), str(one / "m.eml"))
    s, _ = import_json(one, "b", d)
    assert s["imported"] == 1, s
    in_b = live(d, archive="b")
    assert list(in_b.values()) == [before[shared]]
    b_id = list(in_b)[0]

    delete_message(d, shared)
    delete_message(d, other)
    pre = tmp_path / "pre-compact"
    shutil.copytree(str(d), str(pre))

    r = ok(cmd(d, "CompactStore", id=1), "CompactStore")
    assert r["recordsDropped"] >= 1 and r["bytesAfter"] < r["bytesBefore"], r
    for i in (shared, other):
        assert mv("show", i, data_dir=d, check=False).returncode != 0, "deleted %s still shows" % i
    assert sha256(mv("show", b_id, data_dir=d).stdout) == before[shared], "shared content lost by compaction"
    expected = {i: h for i, h in before.items() if i not in (shared, other)}
    expected[b_id] = before[shared]
    assert live(d) == expected
    assert_clean(d, when="after CompactStore")

    # recovery of the compacted store: deleted messages stay deleted
    shutil.rmtree(store_paths(d)[0])
    recover(d)
    assert live(d) == expected, "RecoverStore after compaction: live messages differ"
    assert_clean(d, when="after RecoverStore of the compacted store")

    # recovery of the copy taken before compaction, with deleted messages
    shutil.rmtree(store_paths(pre)[0])
    rr = recover(pre, recoverDeletedMessages=True)
    assert rr["deletedMessagesRestored"] == 2, rr
    back = live(pre)
    for i in (shared, other):
        assert back.get(i) == before[i], "deleted message %s not restored by recoverDeletedMessages" % i
    assert set(back.values()) == set(shas)
    assert_clean(pre, when="after RecoverStore --recoverDeletedMessages=true")

    # the restore is itself in content/: a later plain recovery keeps them live
    shutil.rmtree(store_paths(pre)[0])
    recover(pre)
    assert live(pre) == back, "a second recovery forgot the restored messages"
    assert_clean(pre, when="after a second RecoverStore")


# ---------------------------------------------------------------------------
# 5. kill -9 during CompactStore and RecoverStore

def check_round(d, expected_keys, expected_sha, rnd, sample):
    """VerifyStore clean; search lists exactly the expected messages; a
    sample of them (all of them if sample is None) show the expected bytes."""
    assert_clean(d, when="after kill round %d" % rnd)
    keys = hit_keys(d)
    missing = sorted(set(expected_keys) - set(keys))
    extra = sorted(set(keys) - set(expected_keys))
    assert not missing and not extra, "round %d: missing %d ids %s, extra %d ids %s" % (
        rnd, len(missing), missing[:5], len(extra), extra[:5])
    changed = [i for i in keys if keys[i] != expected_keys[i]]
    assert not changed, "round %d: search fields changed for %s" % (rnd, changed[:5])
    ids = sorted(keys) if sample is None else random.Random(rnd).sample(sorted(keys), min(sample, len(keys)))
    got, bad = show_hashes(ids, d)
    assert not bad, "round %d: show failed: %s" % (rnd, dict(list(bad.items())[:3]))
    wrong = [i for i in ids if got[i] != expected_sha[i]]
    assert not wrong, "round %d: wrong bytes for %s" % (rnd, wrong[:5])


@pytest.fixture(scope="module")
def kill_store(corpus, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kill")
    d, _, shas = imported_store(tmp, corpus, KILL_STORE_SIZE, seed=5)
    return d, shas, hit_keys(d), live(d)


def test_kill9_during_recover(kill_store, tmp_path):
    base, shas, keys, sha_of = kill_store
    pristine = tmp_path / "pristine"
    shutil.copytree(str(base), str(pristine))
    shutil.rmtree(store_paths(pristine)[0])

    calib = tmp_path / "calib"
    shutil.copytree(str(pristine), str(calib))
    t0 = time.monotonic()
    r = recover(calib)
    T = time.monotonic() - t0
    assert r["messagesRecovered"] == len(shas), r
    check_round(calib, keys, sha_of, -1, 30)

    rng = random.Random(1234)
    killed, reruns = 0, []
    for rnd in range(KILL_ROUNDS):
        d = tmp_path / ("r%d" % rnd)
        shutil.copytree(str(pristine), str(d))
        if run_and_maybe_kill(d, "RecoverStore", rng.uniform(0.05 * T, 0.7 * T), id=1):
            killed += 1
        env = cmd(d, "RecoverStore", id=1)
        reruns.append((env["statusCode"], (env["error"] or {}).get("message")))
        check_round(d, keys, sha_of, rnd, None if rnd == KILL_ROUNDS - 1 else 30)
        shutil.rmtree(str(d))
    print("RecoverStore: %.2fs undisturbed, killed %d of %d; reruns: %s" % (T, killed, KILL_ROUNDS, reruns))
    assert killed >= 3, "only %d of %d recoveries were still running at their kill instant" % (killed, KILL_ROUNDS)


def test_kill9_during_compact(kill_store, tmp_path):
    base, shas, keys, sha_of = kill_store
    pristine = tmp_path / "pristine"
    shutil.copytree(str(base), str(pristine))
    ids = sorted(keys, key=lambda i: int(i.split(":")[1]))
    doomed = set(random.Random(7).sample(ids, len(ids) // 4))
    for i in sorted(doomed):
        delete_message(pristine, i)
    exp_keys = {i: k for i, k in keys.items() if i not in doomed}
    exp_sha = {i: h for i, h in sha_of.items() if i not in doomed}

    calib = tmp_path / "calib"
    shutil.copytree(str(pristine), str(calib))
    t0 = time.monotonic()
    r = ok(cmd(calib, "CompactStore", id=1), "CompactStore")
    T = time.monotonic() - t0
    assert r["recordsDropped"] >= 1 and r["bytesAfter"] < r["bytesBefore"], r
    check_round(calib, exp_keys, exp_sha, -1, 30)

    rng = random.Random(4321)
    killed = 0
    for rnd in range(KILL_ROUNDS):
        d = tmp_path / ("c%d" % rnd)
        shutil.copytree(str(pristine), str(d))
        if run_and_maybe_kill(d, "CompactStore", rng.uniform(0.05 * T, 0.7 * T), id=1):
            killed += 1
            # the store is consistent right after the crash, before any rerun
            check_round(d, exp_keys, exp_sha, rnd, 50)
        ok(cmd(d, "CompactStore", id=1), "CompactStore rerun after kill (round %d)" % rnd)
        check_round(d, exp_keys, exp_sha, rnd, None if rnd == KILL_ROUNDS - 1 else 30)
        shutil.rmtree(str(d))
    print("CompactStore: %.2fs undisturbed, killed %d of %d" % (T, killed, KILL_ROUNDS))
    assert killed >= 3, "only %d of %d compactions were still running at their kill instant" % (killed, KILL_ROUNDS)


# ---------------------------------------------------------------------------
# 6. disk full during an import

def test_disk_full_import(tmp_path, corpus):
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    cp = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], capture_output=True)
    if cp.returncode != 0:
        pytest.skip("cannot mount a tmpfs: %s" % cp.stderr.decode("utf-8", "replace"))
    try:
        src = corpus.eml_dir
        all_shas = set(corpus.sums.values())
        d = init_data_dir(mnt / "data")
        cp = mv("import", src, "--archive", "full", "--json", data_dir=d, check=False, timeout=T_IMPORT)
        err = cp.stderr.decode("utf-8", "replace")
        assert cp.returncode not in (0, 3), "import into a full disk reported success: exit %d, stdout %r" % (
            cp.returncode, cp.stdout[:500])
        assert "space" in err.lower(), "no clear out-of-space message on stderr: %r" % err[-2000:]

        # Space is freed before anything reads the store: with the disk still
        # full SQLite cannot even open its WAL-mode databases (no room for the
        # -shm file), so every command fails with "disk I/O error".
        cp = subprocess.run(["mount", "-o", "remount,size=200m", str(mnt)], capture_output=True)
        assert cp.returncode == 0, cp.stderr
        assert_clean(d, when="after the import hit a full disk")
        partial = live(d)
        stray = [i for i, h in partial.items() if h not in all_shas]
        assert not stray, "messages whose bytes match no source file after ENOSPC: %s" % stray[:5]
        print("disk full: %d messages archived before ENOSPC; stderr tail: %s" % (len(partial), err[-300:]))

        s, _ = import_json(src, "full", d)
        assert s["refused"] == 0, s
        final = live(d)
        assert len(final) == len(corpus.sums), "after the second import %d messages, corpus has %d (%s)" % (
            len(final), len(corpus.sums), s)
        assert set(final.values()) == all_shas
        assert_clean(d, when="after completing the import")
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
