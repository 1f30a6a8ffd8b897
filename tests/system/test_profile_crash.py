"""kill -9 of `mailvault serve` in the middle of a RunProfile, then a restart
on the same data directory and a second run of the profile: every source
message ends up in the archive exactly once, byte-exact.

What each kill point proves (early: once the first messages are committed;
late: once most are, with more still to come):
- the server comes back up on the data directory it was killed on;
- what the archive held when the kill was sent survives it (the count after
  the restart is at least the count seen before the kill) and the kill came
  before the end (fewer than all messages are there);
- the killed run is not silent: after the restart its worker result says
  "failed" with a report beginning "interrupted";
- the second run archives exactly the rest and counts the messages archived
  before the kill as already archived: archived + alreadyArchived is the
  number of source files, its worker result (GetWorkerResults) says the same
  and ends "succeeded" (or "completedWithWarnings" exactly when it archived
  messages it found malformed: nothing refused, nothing cancelled);
- afterwards the archive holds every distinct (folder, content) of the
  source once: the multiset of (folder, SHA-256 of the bytes `show` reads
  back) of every archived message equals the set computed here in Python
  from the source files; the full-text index finds every message (the
  messages committed before the kill too), VerifyStores finds every store
  clean, and a third run archives nothing.

Shape: the source is a 3,000-message sample of the SpamAssassin corpus (the
`corpus` fixture) copied as EML files under their group directories (one
folder each), plus byte-identical copies under other names in the same
folder (archived once: the product keeps one message per content and
folder) and in another folder (archived there too).  It is built once per
module; each kill point gets a fresh data directory and server.  The kill
instant is an observable event, not a sleep: the test polls
GetFolderStatistics, which counts each store's database rows -- what a
committed batch adds, all at once -- and sends SIGKILL as soon as the count
reaches the kill point.  The full-text index may lag behind the database
after a crash, so the count is never taken from search."""

import collections
import hashlib
import json
import os
import random
import signal
import time

import pytest

from mvserver import MvServer, init_with_admin
from mvtest import search_json, show_hashes

SAMPLE = 3000
SAME_FOLDER_COPIES = 12     # byte-identical files, other names, same folder: archived once
OTHER_FOLDER_COPIES = 6     # byte-identical files in another group's folder: archived there too
ARCHIVE = "crashprof"
RANGE = dict(fromIncluding="2000-01-01T00:00:00", toExcluding="2100-01-01T00:00:00", timeZoneID="UTC")
KILL_DEADLINE = 600         # seconds to reach the kill point (ASan on 2 cores is slow)

# The kill points, as a fraction of the distinct messages the archive must
# hold before SIGKILL is sent.  Ingest commits in batches (hundreds of
# messages at once), so "early" is the first committed batch and "late" is
# past 60% with a batch or more still to come.
KILL_POINTS = {"early": 0.0, "late": 0.6}


class Source:
    """The source directory and what the archive must hold after a full run."""

    def __init__(self, path, files):
        self.path = path
        self.files = files                  # [(folder, sha256)], one per source file
        self.keys = set(files)              # distinct (folder, sha256): one message each
        self.per_folder = collections.Counter(folder for folder, _ in self.keys)


@pytest.fixture(scope="module")
def source(corpus, tmp_path_factory):
    root = str(tmp_path_factory.mktemp("profile-crash") / "mail")
    rng = random.Random(20261204)
    rels = rng.sample(sorted(corpus.sums), SAMPLE)
    files = []

    def put(folder, name, raw):
        os.makedirs(os.path.join(root, folder), exist_ok=True)
        with open(os.path.join(root, folder, name), "wb") as f:
            f.write(raw)
        files.append((folder, hashlib.sha256(raw).hexdigest()))

    for rel in rels:
        _, group, name = rel.split("/")
        raw = corpus.raw(rel)
        assert hashlib.sha256(raw).hexdigest() == corpus.sums[rel], "corpus file changed on disk: " + rel
        put(group, name, raw)
    copied = rng.sample(rels, SAME_FOLDER_COPIES + OTHER_FOLDER_COPIES)
    for rel in copied[:SAME_FOLDER_COPIES]:
        _, group, name = rel.split("/")
        put(group, "copy-" + name, corpus.raw(rel))
    groups = sorted({rel.split("/")[1] for rel in rels})
    for rel in copied[SAME_FOLDER_COPIES:]:
        _, group, name = rel.split("/")
        other = groups[(groups.index(group) + 1) % len(groups)]
        put(other, "from-%s-%s" % (group, name), corpus.raw(rel))
    src = Source(root, files)
    # The corpus holds no byte-identical messages, so the copies are the only ones.
    assert len(src.files) == SAMPLE + SAME_FOLDER_COPIES + OTHER_FOLDER_COPIES
    assert len(src.keys) == SAMPLE + OTHER_FOLDER_COPIES
    return src


def archived_count(server):
    """Messages in ARCHIVE, from each store's database (GetFolderStatistics
    counts a folder's own messages on its row; parents show 0 of their own)."""
    rows = server.ok("GetFolderStatistics")
    return sum(r["count"] for r in rows if r["folder"] == ARCHIVE or r["folder"].startswith(ARCHIVE + "/"))


def folder_counts(server):
    rows = server.ok("GetFolderStatistics")
    return {r["folder"][len(ARCHIVE) + 1:]: r["count"] for r in rows
            if r["folder"].startswith(ARCHIVE + "/") and r["count"]}


def kill_mid_run(server, profile_id, threshold):
    """Starts RunProfile and sends SIGKILL to the server as soon as the
    archive holds `threshold` messages; returns the count seen then."""
    status, env = server.invoke("RunProfile", id=profile_id)
    assert status == 200 and env["statusCode"] == "running", env
    deadline = time.monotonic() + KILL_DEADLINE
    while True:
        seen = archived_count(server)
        if seen >= threshold:
            break
        assert time.monotonic() < deadline, "the archive held %d messages after %ds, kill point %d" % (
            seen, KILL_DEADLINE, threshold)
    proc = server.proc
    server.kill()                           # SIGKILL, then wait
    assert proc.returncode == -signal.SIGKILL, "server ended with %s before the kill" % proc.returncode
    return seen


def rerun_after_restart(server, source, profile_id, seen, kill_point):
    """On the restarted server: what survived the kill, then the second run
    and what it and its worker result say, then a third run."""
    distinct, n_files = len(source.keys), len(source.files)
    durable = archived_count(server)
    print("kill point %s: %d seen before SIGKILL, %d in the archive after the restart, %d distinct"
          % (kill_point, seen, durable, distinct))
    assert durable >= seen, "messages the archive held before the kill are gone: %d before, %d after" % (
        seen, durable)
    assert durable < distinct, "the kill came after the run had archived everything (%d of %d)" % (
        durable, distinct)

    # The killed run is reported: the restart turned its row in progress
    # into a failed worker result saying it was interrupted.
    cut = [r for r in server.ok("GetWorkerResults", **RANGE) if r["profileID"] == profile_id]
    assert [r["result"] for r in cut] == ["failed"], cut
    cut_report = server.ok("GetWorkerResultReport", id=cut[0]["id"])["report"]
    assert cut_report["error"].startswith("interrupted"), cut_report

    # The second run archives exactly what the killed one did not.
    env = server.call("RunProfile", id=profile_id)
    assert env["statusCode"] == "succeeded" and env["error"] is None, env
    rest = distinct - durable
    got = env["result"]
    assert (got["archived"], got["alreadyArchived"], got["refused"]) == (rest, n_files - rest, 0), (
        "second run after %d were archived before the kill: %r" % (durable, got))

    rows = [r for r in server.ok("GetWorkerResults", **RANGE) if r["profileID"] == profile_id]
    assert rows, "no worker result for profile %d" % profile_id
    last = max(rows, key=lambda r: r["id"])
    # Nothing refused, nothing cancelled: "succeeded", or "completedWithWarnings"
    # exactly when it archived messages it found malformed (the corpus has
    # spam a MIME parser frowns on).
    want_result = "completedWithWarnings" if got["malformed"] else "succeeded"
    assert (last["result"], last["archived"], last["alreadyArchived"], last["failed"]) == (
        want_result, rest, n_files - rest, 0), (last, got)
    assert last["archived"] + last["alreadyArchived"] == n_files, last
    report = server.ok("GetWorkerResultReport", id=last["id"])["report"]
    assert report["failures"] == [] and report["malformed"] == got["malformed"], report
    assert report["archives"] == [ARCHIVE], report

    assert archived_count(server) == distinct
    assert folder_counts(server) == dict(source.per_folder)
    stores = server.ok("VerifyStores")
    assert stores and all(s["clean"] and s["problemCount"] == 0 for s in stores), stores

    # Nothing is left to do.
    again = server.ok("RunProfile", id=profile_id)
    assert (again["archived"], again["alreadyArchived"]) == (0, n_files), again


@pytest.mark.parametrize("kill_point", sorted(KILL_POINTS))
def test_kill9_mid_profile_run_then_rerun_archives_each_message_once(source, tmp_path, kill_point):
    threshold = max(1, int(KILL_POINTS[kill_point] * len(source.keys)))
    d = str(tmp_path / "data")
    pw = init_with_admin(d)

    first = MvServer(d, password=pw).start()
    try:
        profile = first.ok("CreateProfile", raw=True, properties=json.dumps({
            "name": "corpus", "type": "I", "connector": "FileSystem",
            "details": {"path": source.path, "format": "eml", "includeSubfolders": "1", "targetArchive": ARCHIVE}}))
        seen = kill_mid_run(first, profile["id"], threshold)
    finally:
        first.kill()
    first.check_no_sanitizer_report()

    server = MvServer(d, password=pw).start()
    try:
        rerun_after_restart(server, source, profile["id"], seen, kill_point)
    except BaseException:
        server.kill()       # the failure is the news, not how the server stops
        raise
    server.stop()           # a clean exit (status 0, no sanitizer report)

    # Independently of the server's counts: each message's bytes as read back.
    hits = search_json("size:>0", d, archive=ARCHIVE, limit=0)
    ids = [h["id"] for h in hits]
    assert len(ids) == len(set(ids)), "search lists some id twice"
    id_sha, errors = show_hashes(ids, d)
    assert not errors, "show failed for %d messages, e.g. %s" % (len(errors), next(iter(errors.items())))
    archived = collections.Counter((h["folder"], id_sha[h["id"]]) for h in hits)
    twice = [k for k, c in archived.items() if c > 1]
    assert not twice, "archived more than once in a folder: %s" % twice[:10]
    missing, stray = source.keys - set(archived), set(archived) - source.keys
    assert not missing and not stray, "%d source messages missing (e.g. %s), %d archived that are not in the source" \
        " (e.g. %s)" % (len(missing), sorted(missing)[:3], len(stray), sorted(stray)[:3])
    assert {sha for _, sha in archived} == {sha for _, sha in source.files}
    # The full-text index found them all, the ones committed before the kill too.
    assert len(hits) == len(source.keys)
