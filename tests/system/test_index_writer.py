"""The index writer thread (store/index_writer.c): FTS5 inserts handed over
by ingest and by the index catch-up, and what happens when one fails.

A hand-off that fails leaves a gap past indexed_upto.  The writer must learn
of it at its next hand-off or wait, drop what it queued after it, and have
the gap indexed from content before it lets the write lock go; a rebuild
whose last hand-off fails must say so instead of reporting success.  The
fault `fail:index-writer:N` fails the N-th hand-off of a store handle.

The whole SpamAssassin corpus is imported: the writer is handed 4,096
documents at a time, and a smaller import would never reach it.  kill -9
right after a hand-off proves a crash with documents in the writer's hands
loses nothing: they are past indexed_upto, and the next writer's catch-up
indexes them from content."""

import json
import os
import random
import signal
import subprocess
import time

import pytest

from mvtest import MAILVAULT_BIN, cmd_envelope, cmd_result, init_data_dir, mv, parse_json, search_json

pytestmark = pytest.mark.xdist_group("corpus")

QUERIES = ["money", "the", "linux", "click here", "subject:re", "from:com", "free*"]


def answers(data_dir):
    return {q: sorted(h["id"] for h in search_json(q, data_dir, limit=0)) for q in QUERIES}


def fault_env(fault):
    return dict(os.environ, MAILVAULT_FAULT=fault)


def assert_index_whole(data_dir, when):
    r = cmd_result(data_dir, "VerifyStore", id=1, includeIndexes=True)
    assert r["clean"], "VerifyStore %s: %s" % (when, json.dumps(r)[:3000])


@pytest.fixture(scope="module")
def faulted_import(corpus, tmp_path_factory):
    """The corpus imported while the writer's first hand-off fails."""
    d = init_data_dir(tmp_path_factory.mktemp("iw") / "data")
    cp = mv("import", corpus.eml_dir, "--archive", "corpus", "--json", data_dir=d, timeout=1800,
            env=fault_env("fail:index-writer:1"))
    return d, parse_json(cp), cp.stderr.decode("utf-8", "replace")


def test_failed_hand_off_is_caught_up_before_the_import_ends(faulted_import):
    d, summary, stderr = faulted_import
    assert summary["imported"] == 6046, summary
    assert "injected fault index-writer:1" in stderr, "the failed hand-off was not reported:\n" + stderr[-2000:]
    # Searched before anything else writes to the store (VerifyStore's own
    # write lock would catch up): the import's own end filled the gap.
    got = answers(d)
    assert all(got[q] for q in ("money", "the", "linux", "subject:re")), {q: len(v) for q, v in got.items()}
    assert_index_whole(d, "after the import")
    cmd_result(d, "RebuildStoreIndex", id=1, folder="x", timeout=900)
    truth = answers(d)
    for q in QUERIES:
        assert got[q] == truth[q], "%r: %d hits after the faulted import, %d from content" % (
            q, len(got[q]), len(truth[q]))


def test_rebuild_whose_hand_off_fails_says_so_and_the_next_writer_fills_the_gap(faulted_import):
    d, _, _ = faulted_import
    truth = answers(d)
    env = cmd_envelope(d, "RebuildStoreIndex", env=fault_env("fail:index-writer:1"), id=1, folder="x", timeout=900)
    assert env["statusCode"] == "failed", "RebuildStoreIndex reported success over a failed insert: %r" % env
    assert "injected fault index-writer:1" in (env["error"] or {}).get("message", ""), env["error"]
    # The next writer (a store change taking the write lock) catches up first.
    cmd_result(d, "MaintainFileSystemDatabases")
    assert_index_whole(d, "after the next writer")
    got = answers(d)
    for q in QUERIES:
        assert got[q] == truth[q], "%r: %d hits after the catch-up, %d before the faulted rebuild" % (
            q, len(got[q]), len(truth[q]))



def test_kill9_while_the_writer_inserts_then_resume(corpus, tmp_path):
    """kill -9 right after a hand-off (the writer holds up to 4,096
    documents in an open transaction), then the import run again: the store
    ends whole, and its index equals one rebuilt from content.  An import
    the kill came too late for (under load) leaves its archive whole, so
    the next rounds archive the corpus again under another name, where there
    is work left to kill: at least four rounds, more until two kills landed
    with a hand-off in flight (at most eight)."""
    d = init_data_dir(tmp_path / "data")
    rng = random.Random(17)
    killed_in_flight = 0
    archives = ["corpus"]
    rounds = 0
    while rounds < 8 and (rounds < 4 or killed_in_flight < 2):
        rounds += 1
        p = subprocess.Popen([MAILVAULT_BIN, "--debug", "--data-dir", str(d), "import", corpus.eml_dir,
                              "--archive", archives[-1], "--json"], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        handed = False
        for line in p.stderr:
            if b"handed to the index writer" in line:
                handed = True
                break
        if handed:
            time.sleep(rng.uniform(0.0, 0.15))
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                killed_in_flight += 1
        p.stderr.read()
        p.wait(timeout=600)
        if p.returncode == 0:
            archives.append("corpus%d" % len(archives))
            continue
        assert p.returncode == -signal.SIGKILL, "the import exited %s" % p.returncode
    assert killed_in_flight >= 2, "only %d imports were killed with a hand-off in flight" % killed_in_flight
    for archive in archives:
        cp = mv("import", corpus.eml_dir, "--archive", archive, "--json", data_dir=d, timeout=1800)
        summary = parse_json(cp)
        assert summary["imported"] + summary["duplicates"] == 6046, (archive, summary)
    got = answers(d)
    assert_index_whole(d, "after the kills and the resumed import")
    cmd_result(d, "RebuildStoreIndex", id=1, folder="x", timeout=900)
    truth = answers(d)
    for q in QUERIES:
        assert got[q] == truth[q], "%r: %d hits after the kills, %d from content" % (q, len(got[q]), len(truth[q]))
    assert len(truth["the"]) > 3000
