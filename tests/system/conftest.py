"""Fixtures of the mailvault system tests.

Run:  MAILVAULT_BIN=/path/to/mailvault /usr/bin/python3 -m pytest -q tests/system

  MAILVAULT_BIN     the binary (default <repo>/build/mailvault)
  MAILVAULT_CORPUS  where the SpamAssassin corpus is materialised
                    (default ~/.cache/mailvault-corpus)
  CI=true, or MAILVAULT_STRICT_SKIPS=1 (make test sets it)
                    a skipped test is a failure unless its reason is on
                    ALLOWED_SKIPS: a corpus that cannot be fetched, a peer
                    that is not installed must not turn into a green run

The whole corpus is imported once per layout (EML directory, Maildir, mbox),
each into its own data directory, by session fixtures; tests that need a
pristine archive get a fresh one from `data_dir`."""

import fcntl
import os
import subprocess
import sys
import time

import pytest

from mvtest import (MAILVAULT_BIN, REPO_ROOT, Corpus, import_json, init_data_dir,
                    search_json, show_hashes)
from mvtest import mv  # noqa: F401  -- the helper: mv(*args, data_dir=, check=, input=, timeout=)


def pytest_report_header(config):
    return "mailvault binary: %s" % MAILVAULT_BIN


# Reasons a test may skip even in CI: what the machine cannot do, not what
# the test failed to get.  Each is matched as a substring of the reason.
ALLOWED_SKIPS = ("needs root",)


def strict_skips():
    return os.environ.get("CI") == "true" or os.environ.get("MAILVAULT_STRICT_SKIPS") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.skipped or hasattr(rep, "wasxfail") or not strict_skips():
        return
    reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
    if any(allowed in reason for allowed in ALLOWED_SKIPS):
        return
    rep.outcome = "failed"
    rep.longrepr = "skipped without an allowed reason (conftest.py ALLOWED_SKIPS): %s" % reason


@pytest.fixture(scope="session", autouse=True)
def mailvault_bin():
    if not (os.path.isfile(MAILVAULT_BIN) and os.access(MAILVAULT_BIN, os.X_OK)):
        pytest.fail("mailvault binary not found at %s (build it, or set MAILVAULT_BIN)"
                    % MAILVAULT_BIN, pytrace=False)
    return MAILVAULT_BIN


@pytest.fixture(scope="session")
def corpus():
    script = os.path.join(os.path.dirname(REPO_ROOT), "shared", "corpus", "spamassassin")
    if not os.path.isfile(script):
        pytest.skip("corpus script %s is missing" % script)
    out = os.environ.get("MAILVAULT_CORPUS", os.path.expanduser("~/.cache/mailvault-corpus"))
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    try:
        cmd = [script] if os.access(script, os.X_OK) else [sys.executable, script]
        # Two test workers may ask at once: one materialises, the other waits.
        with open(out.rstrip("/") + ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            cp = subprocess.run(cmd + [out], capture_output=True, timeout=1800)
    except subprocess.TimeoutExpired:
        pytest.skip("materialising the corpus timed out (needs npm and network the first time)")
    if cp.returncode != 0:
        pytest.skip("cannot materialise the corpus (needs npm and network the first time): %s"
                    % cp.stderr.decode("utf-8", "replace")[-1000:])
    root = cp.stdout.decode().strip().splitlines()[-1]
    c = Corpus(root)
    assert len(c.sums) == 6046, "corpus SHA256SUMS should list 6046 messages, lists %d" % len(c.sums)
    return c


@pytest.fixture
def data_dir(tmp_path):
    """A fresh, initialised data directory."""
    return init_data_dir(tmp_path / "data")


class Imported:
    """One data directory holding one import of a corpus layout."""

    def __init__(self, data_dir, archive, summary, cp, seconds):
        self.data_dir = data_dir
        self.archive = archive
        self.summary = summary
        self.cp = cp
        self.seconds = seconds
        # archive name -> number of messages expected in it; fixtures that add
        # archives to a shared data dir record them here so stats tests know.
        self.archives = {archive: None}


def _import_layout(tmp_path_factory, name, path, archive, *extra):
    d = init_data_dir(tmp_path_factory.mktemp(name) / "data")
    t0 = time.monotonic()
    summary, cp = import_json(path, archive, d, *extra)
    return Imported(d, archive, summary, cp, time.monotonic() - t0)


@pytest.fixture(scope="session")
def eml_import(corpus, tmp_path_factory):
    """The corpus imported as an EML directory tree into archive "corpus"."""
    imp = _import_layout(tmp_path_factory, "eml", corpus.eml_dir, "corpus")
    imp.archives["corpus"] = len(corpus.sums)
    return imp


@pytest.fixture(scope="session")
def maildir_import(corpus, tmp_path_factory):
    imp = _import_layout(tmp_path_factory, "maildir", corpus.maildir, "maildir")
    imp.archives["maildir"] = len(corpus.sums)
    return imp


@pytest.fixture(scope="session")
def mbox_import(corpus, tmp_path_factory):
    imp = _import_layout(tmp_path_factory, "mbox", corpus.mbox, "mbox")
    imp.archives["mbox"] = len(corpus.sums)
    return imp


class EmlIndex:
    """Every message of the EML import: its search hit, the sha256 of what
    `show` returns, and (through the hash) the corpus file it came from."""

    def __init__(self, corpus, imp):
        self.hits = search_json("size:>0", imp.data_dir, archive=imp.archive, limit=0)
        self.by_id = {h["id"]: h for h in self.hits}
        self.id_sha, self.show_errors = show_hashes(list(self.by_id), imp.data_dir)
        rel_of_sha = {}
        for rel, digest in corpus.sums.items():
            rel_of_sha.setdefault(digest, rel)
        self.id_rel = {i: rel_of_sha[d] for i, d in self.id_sha.items() if d in rel_of_sha}
        self.rel_id = {}
        for i, rel in self.id_rel.items():
            self.rel_id.setdefault(rel, i)

    def ids_of(self, rels):
        """Archive ids of corpus files (rel paths).  Fails, naming them, if
        some file has no message in the archive."""
        missing = sorted(r for r in rels if r not in self.rel_id)
        assert not missing, "corpus messages not found in the archive: %s" % missing[:10]
        return {self.rel_id[r] for r in rels}

    def rels_of(self, ids):
        unknown = sorted(i for i in ids if i not in self.id_rel)
        assert not unknown, "search returned ids that are not corpus messages of archive corpus: %s" % unknown[:10]
        return {self.id_rel[i] for i in ids}


@pytest.fixture(scope="session")
def eml_index(corpus, eml_import):
    assert eml_import.summary["refused"] == 0, eml_import.summary
    return EmlIndex(corpus, eml_import)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (tools/test.sh: -n 2 --dist loadgroup) a test
    module runs whole on one worker: its module fixtures (a running server,
    an imported store) exist once and its tests keep their order.  Modules
    that share a session import name a common group themselves."""
    for item in items:
        if not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
