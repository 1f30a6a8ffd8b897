"""Crash safety and concurrency: kill -9 in the middle of an import and
resume; two imports at once; searches during an import."""

import collections
import json
import os
import random
import signal
import subprocess
import time

import pytest

from mvtest import (MAILVAULT_BIN, check_no_crash, import_json, init_data_dir, mv, parse_json,
                    search_json, sha256, show)

N_MESSAGES = 3000
KILL_ROUNDS = 5
COMMON_WORD = "crashmsg"       # in every generated subject


def make_message(tag, n):
    body = "".join("line %d of message %s-%d\n" % (i, tag, n) for i in range(n % 7 + 1))
    return ("From: Sender %d <sender%d@%s.example>\n"
            "To: archive@example.org\n"
            "Subject: %s %s number%d\n"
            "Date: Thu, %02d Aug 2002 %02d:%02d:%02d +0000\n"
            "Message-ID: <%s-%d@mailvault.test>\n"
            "\n%s" % (n % 50, n % 50, tag, COMMON_WORD, tag, n, n % 28 + 1, n % 24,
                      n % 60, (n * 7) % 60, tag, n, body)).encode()


def make_maildir(root, tag, count):
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    msgs = {}
    for n in range(count):
        data = make_message(tag, n)
        if n % 10 == 0:
            name = os.path.join(root, "new", "1030000000.M%dP1.testhost" % n)
        else:
            name = os.path.join(root, "cur", "1030000000.M%dP1.testhost:2,S" % n)
        with open(name, "wb") as f:
            f.write(data)
        msgs["%s-%d@mailvault.test" % (tag, n)] = sha256(data)
    return msgs


def make_emldir(root, tag, count):
    os.makedirs(root, exist_ok=True)
    msgs = {}
    for n in range(count):
        data = make_message(tag, n)
        with open(os.path.join(root, "%05d.eml" % n), "wb") as f:
            f.write(data)
        msgs["%s-%d@mailvault.test" % (tag, n)] = sha256(data)
    return msgs


@pytest.fixture(scope="module")
def maildir(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("crash-src") / "Maildir")
    return root, make_maildir(root, "crash", N_MESSAGES)


@pytest.fixture(scope="module")
def calibration(maildir, tmp_path_factory):
    """Imports the Maildir once, undisturbed: its duration scales the kill
    instants to this build's speed (ASan or not)."""
    root, msgs = maildir
    d = init_data_dir(tmp_path_factory.mktemp("calib") / "data")
    t0 = time.monotonic()
    s, _ = import_json(root, "crash", d)
    seconds = time.monotonic() - t0
    assert (s["imported"], s["duplicates"], s["refused"]) == (len(msgs), 0, 0), s
    return seconds


def start_import(data_dir, path, archive, *extra):
    return subprocess.Popen([MAILVAULT_BIN, "--data-dir", str(data_dir), "import", str(path),
                             "--archive", archive, "--json", *extra],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(p, timeout=600):
    out, err = p.communicate(timeout=timeout)
    cp = subprocess.CompletedProcess(p.args, p.returncode, out, err)
    check_no_crash(cp)
    return cp


def present(data_dir, msgs, archive=None):
    """The message_ids of all messages in the archive; each at most once and
    each one of ours."""
    hits = search_json("size:>0", data_dir, archive=archive, limit=0)
    ids = [h["messageId"] for h in hits]
    dup = [i for i, c in collections.Counter(ids).items() if c > 1]
    assert not dup, "messages archived twice: %s" % dup[:10]
    stray = set(ids) - set(msgs)
    assert not stray, "unknown messages: %s" % sorted(stray)[:10]
    return hits


def test_kill9_mid_import_then_resume(maildir, calibration, tmp_path):
    root, msgs = maildir
    n = len(msgs)
    d = init_data_dir(tmp_path / "data")
    rng = random.Random(9)
    counts, killed = [], 0
    for _ in range(KILL_ROUNDS):
        delay = rng.uniform(0.03, 0.3) * calibration
        p = start_import(d, root, "crash")
        try:
            out, err = p.communicate(timeout=delay)
            # finished before the kill instant
            cp = subprocess.CompletedProcess(p.args, p.returncode, out, err)
            check_no_crash(cp)
            assert p.returncode == 0, err
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            out, err = p.communicate(timeout=60)
            assert p.returncode == -signal.SIGKILL
            assert b"AddressSanitizer" not in err and b"runtime error" not in err, err[-3000:]
            killed += 1
        # the data dir is usable right after the crash
        hits = present(d, msgs)
        parse_json(mv("stats", "--json", data_dir=d))
        counts.append(len(hits))
    print("kill rounds: calibration %.1fs, killed %d of %d, messages present after each: %s"
          % (calibration, killed, KILL_ROUNDS, counts))
    assert killed >= 2, "only %d of %d imports were still running at their kill instant" % (killed, KILL_ROUNDS)
    assert counts == sorted(counts), "messages disappeared after a crash: %s" % counts
    assert counts[-1] <= n

    # resume: exactly what is missing gets imported
    s, _ = import_json(root, "crash", d)
    assert (s["imported"], s["duplicates"], s["refused"]) == (n - counts[-1], counts[-1], 0), (s, counts)
    hits = present(d, msgs)
    assert {h["messageId"] for h in hits} == set(msgs), "messages missing after resume"
    # the full-text index is complete too (not only the metadata db)
    assert len(search_json("subject:" + COMMON_WORD, d, limit=0)) == n
    # a sample, byte-exact and each the right message
    for h in random.Random(11).sample(hits, 60):
        assert sha256(show(h["id"], d)) == msgs[h["messageId"]], h
    # and nothing more to do
    s, _ = import_json(root, "crash", d)
    assert (s["imported"], s["duplicates"], s["refused"]) == (0, n, 0), s
    assert len(search_json("size:>0", d, limit=0)) == n


def test_two_concurrent_imports(tmp_path, data_dir):
    a = make_emldir(str(tmp_path / "src-a"), "alpha", 600)
    b = make_emldir(str(tmp_path / "src-b"), "beta", 600)
    pa = start_import(data_dir, tmp_path / "src-a", "shared", "--folder", "one")
    pb = start_import(data_dir, tmp_path / "src-b", "shared", "--folder", "two")
    ca, cb = finish(pa), finish(pb)
    for cp, msgs in ((ca, a), (cb, b)):
        assert cp.returncode == 0, cp.stderr.decode("utf-8", "replace")[-3000:]
        s = json.loads(cp.stdout)
        assert (s["imported"], s["duplicates"], s["refused"]) == (len(msgs), 0, 0), s
    both = dict(a, **b)
    hits = present(data_dir, both, archive="shared")
    assert {h["messageId"] for h in hits} == set(both)
    assert {(h["messageId"].split("-")[0], h["folder"]) for h in hits} == {("alpha", "one"), ("beta", "two")}
    assert len(search_json("subject:" + COMMON_WORD, data_dir, limit=0)) == len(both)
    rows = {r["folder"]: r["count"] for r in parse_json(mv("folders", "shared", "--json", data_dir=data_dir))
            if r["count"]}
    assert rows == {"one": len(a), "two": len(b)}, rows
    for h in random.Random(3).sample(hits, 20):
        assert sha256(show(h["id"], data_dir)) == both[h["messageId"]]


def test_search_during_import(maildir, data_dir):
    root, msgs = maildir
    n = len(msgs)
    p = start_import(data_dir, root, "live")
    counts = []
    try:
        while True:
            running = p.poll() is None
            hits = present(data_dir, msgs)         # exit 0 required, valid JSON
            counts.append(len(hits))
            # a full-text query too
            search_json("subject:" + COMMON_WORD, data_dir, limit=5)
            if not running:
                break
    except BaseException:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
        p.communicate(timeout=60)
        raise
    cp = finish(p)
    assert cp.returncode == 0, cp.stderr.decode("utf-8", "replace")[-3000:]
    s = json.loads(cp.stdout)
    assert (s["imported"], s["refused"]) == (n, 0), s
    assert len(counts) >= 2
    assert counts == sorted(counts), "search saw messages disappear: %s" % counts
    assert counts[-1] == n
