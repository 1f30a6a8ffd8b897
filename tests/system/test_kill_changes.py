"""Interrupted changes leave the archive wholly before or wholly after them.

What this proves, with real processes and signals sent by the test:

1. README.md: "Ctrl-C stops an import cleanly; running the same import again
   continues it."  A `mailvault import` of the corpus's EML directory gets
   SIGINT at three points of its progress; it stops, says how to continue,
   and has archived a subset of the corpus, each message once, in its
   folder, as many as it reported; the same import run again imports
   exactly the messages the first run did not; afterwards every corpus
   message is there once, byte-identical, and VerifyStore is clean.
2. docs/cli.md: "every store operation is crash-safe".  DeleteMessage,
   MoveFolder (a big folder moved to another archive, and a rename inside
   one), CreateBackup and `mailvault restore` are each killed with SIGKILL
   at several points; afterwards the store opens, VerifyStore
   --includeIndexes=true is clean, and the archive is in the state from
   before the operation or in the one after it, never in between: the
   message deleted or not; the folder wholly at its old name or wholly at
   its new one, every message byte-identical; a backup either without
   BACKUP-INFO.json (which `mailvault restore` refuses, saying why) or
   complete (it restores the whole archive); a restore target either
   absent (and restore run again succeeds) or complete.

How it is shaped:

- Expected states come from the corpus, not from the binary: a message is
  its SHA-256 in the corpus's SHA256SUMS, and it belongs in archive "a"
  (or "z"), in the folder named after its corpus group.  An archive's
  state is {sha256: (archive, folder)} of every message it holds, and no
  content may occur twice.
- The bytes are hashed here, never taken from a hash the binary prints:
  every message through one `mailvault export eml --no-mailstore-headers`
  (the stored bytes, read through the same hash-checked store read as
  `show`; thousands of `show` processes would cost minutes per check; the
  export goes to /dev/shm when there is one, its per-file fsyncs cost
  seconds on disk), and the messages an operation touched, plus a sample,
  through `mailvault show` itself; the two must agree.
- The search index is held to the same expected state: the store holds a
  second archive "z", so `search --archive a` (and b) is answered by the
  index's archive scope, not by a shortcut over the db.
- Kills land on events the test observes, not on clocks, wherever there is
  one: a file appearing in a backup or restore target, the store's content
  segment growing (the tombstone or folder-move record is appended inside
  the db transaction), the db's write-ahead log reaching the size of the
  operation's commit, the index's log reaching the size of its own (both
  sizes measured in an undisturbed run of the same operation).  Two phases
  have no event of their own (reading the documents of the messages to
  move, re-filing them in the index); there the kill lands at a fraction
  of the phase's duration in the undisturbed run.  Each point is its own
  test, so a failure at one does not hide the others; each asserts that
  its kill landed while the operation ran, retrying a point whose window
  is a few milliseconds (a busy machine can miss it) a few times.
- A store of 2,000 corpus messages (moving its folder of ~800 messages and
  rebuilding its index take long enough to be killed inside), one of 300
  for DeleteMessage, and the whole corpus for the import (it reads at most
  three batches of 512 ahead of what it commits, so only a source of many
  batches is still being read when Ctrl-C comes); each data directory is
  made once per module and copied per round.

A state that is neither before nor after, or a store that does not verify
clean after a kill, is a product bug: the assertions stay."""

import collections
import hashlib
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from mvtest import (MAILVAULT_BIN, check_no_crash, import_json, init_data_dir, mv, parse_json,
                    search_json, sha256)
from test_faults import cmd

# With the other fault-injection modules on one worker (tools/test.sh runs
# `-n 2 --dist loadgroup`), beside the corpus imports on the other.
pytestmark = pytest.mark.xdist_group("faults")

STORE_SIZE = 2000          # archive "a" of the big store
OTHER_SIZE = 30            # archive "z": makes `search --archive a` an index query
SMALL_SIZE = 300           # the DeleteMessage store
SHOW_SAMPLE = 12           # messages per check read through `show` besides the touched ones
ATTEMPTS = 4               # tries of a kill point before it counts as missed
EVENT_TIMEOUT = 300        # seconds an operation may run
MOVE_FROM, MOVE_TO = "a/easy-ham-1", "b/moved"       # across archives: every document re-filed
RENAME_FROM, RENAME_TO = "a/spam-2", "a/renamed"     # inside one archive: the folder row only
SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


# ---------------------------------------------------------------------------
# the corpus sample and the expected states

def copy_sample(corpus, n, dest, seed, exclude=()):
    """Copies n corpus EML files of distinct content (none of `exclude`)
    to dest/GROUP/NAME; returns {sha256 from SHA256SUMS: group}."""
    return {digest: sub.split("/")[0] for digest, sub in corpus.copy_distinct(n, seed, dest, exclude).items()}


def placement(groups, archive):
    """{sha256: (archive, folder)}: each message in the folder of its group."""
    return {digest: (archive, group) for digest, group in groups.items()}


def moved(state, frm, to):
    """The state after MoveFolder frm -> to (folders "archive/path")."""
    fa, fp = frm.split("/", 1)
    ta, tp = to.split("/", 1)
    out = {}
    for digest, (archive, folder) in state.items():
        if archive == fa and (folder == fp or folder.startswith(fp + "/")):
            out[digest] = (ta, tp + folder[len(fp):])
        else:
            out[digest] = (archive, folder)
    return out


def describe_diff(want, got, n=3):
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    misplaced = sorted((d, got[d], want[d]) for d in set(want) & set(got) if got[d] != want[d])
    return "%d missing %s, %d extra %s, %d in another folder (sha, is, should be) %s" % (
        len(missing), missing[:n], len(extra), extra[:n], len(misplaced), misplaced[:n])


# ---------------------------------------------------------------------------
# observing an archive

class Observed:
    """What a data directory holds: every message search lists, its bytes
    hashed here (export for all, `show` for some), and the problems seen."""

    def __init__(self, d, tmp, touched_shas=(), rnd=0):
        self.problems = []
        hits = search_json("size:>0", d, limit=0)
        listed = collections.Counter(h["id"] for h in hits)
        twice = [i for i, c in listed.items() if c > 1]
        if twice:
            self.problems.append("search lists ids more than once: %s" % twice[:5])
        fields = {h["id"]: (h["archive"], h["folder"]) for h in hits}

        out = tempfile.mkdtemp(prefix="mv-kill-export-", dir=SCRATCH or str(tmp))
        try:
            exported = self._export(d, out)
        finally:
            shutil.rmtree(out)
        if set(exported) != set(fields):
            self.problems.append("export and search disagree on which messages exist: only exported %s, "
                                 "only listed %s" % (sorted(set(exported) - set(fields))[:5],
                                                     sorted(set(fields) - set(exported))[:5]))
        wrong_place = [(i, exported[i][:2], fields[i]) for i in set(exported) & set(fields)
                       if exported[i][:2] != fields[i]]
        if wrong_place:
            self.problems.append("export files messages elsewhere than search says: %s" % wrong_place[:5])
        self.by_id = exported      # id -> (archive, folder, sha256)

        # `show` itself, for the messages the operation touched and a sample
        touched_shas = set(touched_shas)
        touched = sorted(i for i, v in exported.items() if v[2] in touched_shas)
        rest = sorted(set(exported) - set(touched))
        for i in touched + random.Random(rnd).sample(rest, min(SHOW_SAMPLE, len(rest))):
            got = sha256(mv("show", i, data_dir=d, check=False).stdout)
            if got != exported[i][2]:
                self.problems.append("show %s gives other bytes than its export" % i)

        counts = collections.Counter(v[2] for v in exported.values())
        dup = [h for h, c in counts.items() if c > 1]
        if dup:
            self.problems.append("content archived more than once: %s" % dup[:5])
        self.state = {v[2]: v[:2] for v in exported.values()}
        self.id_of = {v[2]: i for i, v in exported.items()}

    def _export(self, d, out):
        """{id: (archive, folder, sha256)} of an EML export: files are
        ARCHIVE/FOLDER.../STORE-NUMBER.eml, the bytes hashed here."""
        target = os.path.join(out, "x")
        cp = mv("export", "eml", target, "--no-mailstore-headers", data_dir=d, check=False, timeout=600)
        if cp.returncode != 0:
            self.problems.append("export of every message failed (exit %d): %s" % (
                cp.returncode, cp.stderr.decode("utf-8", "replace")[-1500:]))
        exported = {}
        for dirpath, _, files in os.walk(target):
            for name in files:
                if not name.endswith(".eml"):
                    continue
                parts = os.path.relpath(os.path.join(dirpath, name), target).split(os.sep)
                store, num = name[:-len(".eml")].split("-", 1)
                with open(os.path.join(dirpath, name), "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
                exported["%s:%s" % (store, num)] = (parts[0], "/".join(parts[1:-1]), digest)
        return exported

    def ids_in(self, archive):
        return {i for i, v in self.by_id.items() if v[0] == archive}


def verify_problem(d):
    """None when VerifyStore --id=1 --includeIndexes=true is clean, else what it said."""
    env = cmd(d, "VerifyStore", id=1, includeIndexes=True)
    r = env["result"]
    if env["statusCode"] != "succeeded" or not r:
        return "VerifyStore did not run: %s %s" % (env["error"], env["_stderr"][-1000:])
    if r["clean"] is True and not r["damagedMessageIds"] and not r["problems"]:
        return None
    return "VerifyStore --includeIndexes=true is not clean: %s" % [
        (p.get("kind"), p.get("message"), len(p.get("messageIds") or [])) for p in r["problems"]][:6]


def index_problems(d, obs, archives):
    """`search --archive X` (answered by the index's archive scope while the
    store holds several archives) lists exactly the messages filed in X."""
    out = []
    for archive in archives:
        got = {h["id"] for h in search_json("size:>0", d, archive=archive, limit=0)}
        want = obs.ids_in(archive)
        if got != want:
            out.append("search --archive %s lists %d messages, the archive holds %d (missing %s, extra %s)" % (
                archive, len(got), len(want), sorted(want - got)[:3], sorted(got - want)[:3]))
    return out


def judge(d, tmp, states, when, touched_shas=(), archives=("a", "z"), rnd=0):
    """The data directory is in exactly one of the named expected states,
    its index agrees, and VerifyStore is clean.  Returns (name, Observed)."""
    obs = Observed(d, tmp, touched_shas, rnd)
    problems = list(obs.problems)
    names = [name for name, want in states.items() if obs.state == want]
    if not names:
        problems.append("the archive is in none of the states %s:\n  %s" % (
            sorted(states), "\n  ".join("vs %s: %s" % (name, describe_diff(want, obs.state))
                                        for name, want in states.items())))
    problems += index_problems(d, obs, archives)
    v = verify_problem(d)
    if v:
        problems.append(v)
    assert not problems, "%s (the messages and folders: %s):\n- %s" % (
        when, names[0] if names else "neither", "\n- ".join(problems))
    return names[0], obs


# ---------------------------------------------------------------------------
# running an operation and signalling it on an event

def size_of(path):
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return -1


def exists(*paths):
    return lambda elapsed: any(os.path.exists(p) for p in paths)


def sibling_exists(path, prefix):
    """A directory entry beside path whose name starts with prefix."""
    parent, base = os.path.split(str(path))
    return lambda elapsed: any(n.startswith(base + prefix) for n in os.listdir(parent))


def size_at_least(*paths_and_size):
    """The sizes of the paths (absent = 0) add up to at least the last argument."""
    *paths, n = paths_and_size
    return lambda elapsed: sum(max(size_of(p), 0) for p in paths) >= n


def then_after(event, seconds):
    """True once `seconds` have passed since event first held."""
    seen = []

    def when(elapsed):
        if not seen and event(elapsed):
            seen.append(elapsed)
        return bool(seen) and elapsed - seen[0] >= seconds
    return when


def at_elapsed(seconds):
    return lambda elapsed: elapsed >= seconds


class Run:
    def __init__(self, argv, returncode, out, err, fired_at, seconds, sizes):
        self.argv, self.returncode, self.stdout, self.stderr = argv, returncode, out, err
        self.fired_at, self.seconds, self.sizes = fired_at, seconds, sizes

    @property
    def killed(self):
        return self.returncode == -signal.SIGKILL

    def first(self, name, at_least=1):
        """When the watched file `name` first had at_least bytes."""
        return next((t for t, n in self.sizes[name] if n >= at_least), None)

    def largest(self, name):
        return max((n for _, n in self.sizes[name]), default=-1)

    def describe(self):
        return "%s: exit %s, signal sent at %s s of %.3f s; stderr: %s" % (
            " ".join(self.argv[3:]), self.returncode, self.fired_at, self.seconds,
            self.stderr.decode("utf-8", "replace")[-800:])


def run_until(argv, when=None, sig=signal.SIGKILL, watch=None):
    """Runs argv; sends sig as soon as when(elapsed seconds) holds (never if
    when is None).  watch {name: path}: the Run records every size each file
    had, with when (how undisturbed runs measure the kill points).  stdout
    and stderr go to files: a full pipe must not stall the process."""
    watch = dict(watch or {})
    sizes = {name: [] for name in watch}
    last = {name: None for name in watch}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        fired_at = None
        try:
            while p.poll() is None:
                elapsed = time.monotonic() - t0
                for name, path in watch.items():
                    n = size_of(path)
                    if n != last[name]:
                        sizes[name].append((elapsed, n))
                        last[name] = n
                if when is not None and fired_at is None and when(elapsed):
                    p.send_signal(sig)
                    fired_at = round(elapsed, 4)
                    if sig == signal.SIGKILL:
                        break
                assert elapsed < EVENT_TIMEOUT, "%s still running after %ds" % (argv, EVENT_TIMEOUT)
            p.wait(timeout=EVENT_TIMEOUT)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        seconds = time.monotonic() - t0
        out.seek(0)
        err.seek(0)
        run = Run(argv, p.returncode, out.read(), err.read(), fired_at, seconds, sizes)
    if not run.killed:
        check_no_crash(subprocess.CompletedProcess(argv, run.returncode, run.stdout, run.stderr))
    return run


def kill_at(point, attempt):
    """Up to ATTEMPTS times: attempt(i) prepares a fresh round and returns
    its Run; the first Run whose SIGKILL landed while the operation ran.
    The machine may be busy enough that a window of milliseconds passes
    unseen; then the operation finished and the round is done again."""
    runs = []
    for i in range(ATTEMPTS):
        run = attempt(i)
        runs.append(run)
        if run.killed:
            return run
    raise AssertionError("the kill at %r never landed while the operation ran (%d attempts): %s" % (
        point, ATTEMPTS, "; ".join(r.describe() for r in runs)))


def point_id(point):
    """A kill point as a test id: no spaces, nothing a shell would mind."""
    return point.replace(",", "").replace("%", "pc").replace(" ", "-")


def mv_argv(d, *args):
    return [MAILVAULT_BIN, "--data-dir", str(d)] + [str(a) for a in args]


def store_file(d, *parts):
    return os.path.join(str(d), "stores", "store1", *parts)


def segment(d):
    return store_file(d, "content", "seg-00000001.mvs")


def db_file(d):
    return store_file(d, "db", "store.sqlite")


def index_file(d):
    return store_file(d, "index", "index.sqlite")


def fresh_copy(src, dest):
    if os.path.exists(str(dest)):
        shutil.rmtree(str(dest))
    shutil.copytree(str(src), str(dest))
    return dest


# ---------------------------------------------------------------------------
# fixtures: one big store and one small store per module

class Store:
    pass


@pytest.fixture(scope="module")
def big(corpus, tmp_path_factory):
    """2,000 corpus messages in archive "a" (a folder per corpus group) and
    30 more in archive "z"; its expected state."""
    tmp = tmp_path_factory.mktemp("killchanges")
    s = Store()
    s.tmp = tmp
    groups = copy_sample(corpus, STORE_SIZE, tmp / "src", seed=2020)
    groups_z = copy_sample(corpus, OTHER_SIZE, tmp / "src-z", seed=2021, exclude=set(groups))
    s.d = init_data_dir(tmp / "data")
    for src, archive, n in ((tmp / "src", "a", STORE_SIZE), (tmp / "src-z", "z", OTHER_SIZE)):
        summary, _ = import_json(src, archive, s.d)
        assert (summary["imported"], summary["duplicates"], summary["refused"]) == (n, 0, 0), summary
    s.state = dict(placement(groups, "a"), **placement(groups_z, "z"))
    assert len(s.state) == STORE_SIZE + OTHER_SIZE
    s.segment_size = size_of(segment(s.d))
    for folder in (MOVE_FROM, RENAME_FROM):
        assert (folder.split("/")[1] in groups.values()), "the sample has no messages in %s" % folder
    judge(s.d, tmp, {"imported": s.state}, "the store as imported")
    return s


@pytest.fixture(scope="module")
def small(corpus, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("killdelete")
    s = Store()
    s.tmp = tmp
    groups = copy_sample(corpus, SMALL_SIZE, tmp / "src", seed=2022)
    s.d = init_data_dir(tmp / "data")
    summary, _ = import_json(tmp / "src", "a", s.d)
    assert (summary["imported"], summary["refused"]) == (SMALL_SIZE, 0), summary
    s.state = placement(groups, "a")
    _, obs = judge(s.d, tmp, {"imported": s.state}, "the small store as imported", archives=("a",))
    s.id_of = obs.id_of
    return s


# ---------------------------------------------------------------------------
# 1. Ctrl-C during an import, then the same import again

# SIGINT once the store's content segment holds this share of what an
# undisturbed import of the corpus writes.
SIGINT_POINTS = {"10% archived": 0.10, "30% archived": 0.30, "50% archived": 0.50}


@pytest.fixture(scope="module")
def corpus_import(corpus, tmp_path_factory):
    """The corpus's EML directory imported undisturbed: the size of the
    content segment it writes, and the expected state (each message in
    archive "a", in the folder of its group)."""
    d = init_data_dir(tmp_path_factory.mktemp("sigint-calib") / "data")
    want = {digest: ("a", rel.split("/")[1]) for rel, digest in corpus.sums.items() if rel.startswith("eml/")}
    summary, _ = import_json(corpus.eml_dir, "a", d)
    assert (summary["imported"], summary["duplicates"], summary["refused"]) == (len(want), 0, 0), summary
    size = size_of(segment(d))
    shutil.rmtree(str(d))
    return want, size


@pytest.mark.parametrize("point", list(SIGINT_POINTS), ids=point_id)
def test_sigint_import_then_rerun_imports_the_rest(corpus, corpus_import, tmp_path, point):
    want, full_size = corpus_import
    d = init_data_dir(tmp_path / "data")
    empty = max(size_of(segment(d)), 0)
    threshold = empty + int(SIGINT_POINTS[point] * (full_size - empty))
    run = run_until(mv_argv(d, "import", corpus.eml_dir, "--archive", "a", "--json"),
                    when=size_at_least(segment(d), threshold), sig=signal.SIGINT)
    err = run.stderr.decode("utf-8", "replace")
    assert run.fired_at is not None, "the import ended before its segment reached %d bytes: %s" % (
        threshold, run.describe())
    assert run.returncode == 1 and "interrupted" in err and "run the same import again" in err, (
        "Ctrl-C should stop the import cleanly, saying how to continue: %s" % run.describe())
    first = parse_json(subprocess.CompletedProcess(run.argv, run.returncode, run.stdout, run.stderr))
    assert 0 < first["imported"] < len(want) and first["refused"] == 0, (
        "Ctrl-C at %s should leave part of the import done: %s" % (point, first))

    # what the first run archived: corpus messages, each once, in its folder,
    # as many as it said; and the store verifies clean
    obs = Observed(d, tmp_path, rnd=1)
    problems = list(obs.problems)
    stray = {h: v for h, v in obs.state.items() if want.get(h) != v}
    if stray:
        problems.append("after Ctrl-C, messages that are not corpus messages of that folder: %s" %
                        list(stray.items())[:3])
    if len(obs.state) != first["imported"]:
        problems.append("after Ctrl-C the archive holds %d messages; the interrupted import said it "
                        "archived %d" % (len(obs.state), first["imported"]))
    v = verify_problem(d)
    if v:
        problems.append(v)
    assert not problems, "after Ctrl-C at %s:\n- %s" % (point, "\n- ".join(problems))
    first_ids = dict(obs.id_of)

    # the same import again: exactly the rest
    second, _ = import_json(corpus.eml_dir, "a", d)
    assert (second["imported"], second["duplicates"], second["refused"]) == (
        len(want) - len(first_ids), len(first_ids), 0), (
        "the rerun should import the %d messages the interrupted run did not and find the %d it did: %s"
        % (len(want) - len(first_ids), len(first_ids), second))
    _, final = judge(d, tmp_path, {"complete": want}, "after the rerun of the import interrupted at %s" % point,
                     archives=("a",), rnd=2)
    changed = {h: i for h, i in first_ids.items() if final.id_of.get(h) != i}
    assert not changed, "messages of the first run changed id in the rerun: %s" % list(changed.items())[:3]
    print("SIGINT at %s (%.2fs of %.2fs): first run %d, rerun %d" % (
        point, run.fired_at, run.seconds, first["imported"], second["imported"]))


# ---------------------------------------------------------------------------
# 2. kill -9 during DeleteMessage

def delete_victim(small):
    sha = sorted(small.state)[7]
    return sha, small.id_of[sha]


def delete_argv(d, victim):
    return mv_argv(d, "cmd", "DeleteMessage", "--id=" + victim, "--reason=kill test")


@pytest.fixture(scope="module")
def delete_sizes(small):
    """An undisturbed DeleteMessage: the sizes the db's and the index's
    write-ahead logs reach.  The order of its writes: the writer opens the
    store (the index's log appears), notes the message's document in the
    index (index_notes), appends the tombstone to the content segment,
    commits the db, then removes the document and its note from the index
    and commits that."""
    sha, victim = delete_victim(small)
    # The whole call takes some 60 ms and each log is removed when the
    # writer closes: a loaded machine's watcher can miss a log's growth, so
    # the measurement is taken again until it has seen both.
    for _ in range(8):
        d = fresh_copy(small.d, small.tmp / "delete-calib")
        run = run_until(delete_argv(d, victim), watch={"db log": db_file(d) + "-wal",
                                                       "index log": index_file(d) + "-wal"})
        assert run.returncode == 0, run.describe()
        judge(d, small.tmp, {"after": {h: v for h, v in small.state.items() if h != sha}},
              "an undisturbed DeleteMessage", archives=("a",))
        shutil.rmtree(str(d))
        sizes = {"db log": run.largest("db log"), "index log": run.largest("index log")}
        if min(sizes.values()) > 32:
            return sizes
    raise AssertionError("DeleteMessage should commit through both write-ahead logs: %s" % run.sizes)


DELETE_POINTS = ("store opened", "tombstone appended", "db commit written", "index commit written")


@pytest.mark.parametrize("point", DELETE_POINTS, ids=point_id)
def test_kill9_delete_message(small, delete_sizes, tmp_path, point):
    sha, victim = delete_victim(small)
    d = tmp_path / "data"

    def attempt(i):
        fresh_copy(small.d, d)
        when = {
            "store opened": exists(index_file(d) + "-wal"),
            "tombstone appended": size_at_least(segment(d), size_of(segment(d)) + 1),
            "db commit written": size_at_least(db_file(d) + "-wal", delete_sizes["db log"]),
            "index commit written": size_at_least(index_file(d) + "-wal", delete_sizes["index log"]),
        }[point]
        return run_until(delete_argv(d, victim), when=when)

    run = kill_at(point, attempt)
    after = {h: v for h, v in small.state.items() if h != sha}
    name, _ = judge(d, tmp_path, {"before": small.state, "after": after},
                    "kill -9 of DeleteMessage --id=%s at %r (%.4fs)" % (victim, point, run.fired_at),
                    touched_shas=[sha], archives=("a",))
    shown = mv("show", victim, data_dir=d, check=False)
    if name == "before":
        assert shown.returncode == 0 and sha256(shown.stdout) == sha, "the message not deleted no longer shows"
    else:
        assert shown.returncode != 0, "the deleted message %s still shows" % victim
    print("DeleteMessage killed at %r (%.4fs): %s" % (point, run.fired_at, name))


# ---------------------------------------------------------------------------
# 3. kill -9 during MoveFolder

def move_argv(d, frm, to):
    return mv_argv(d, "cmd", "MoveFolder", "--fromFolder=" + frm, "--toFolder=" + to)


@pytest.fixture(scope="module")
def move_timing(big):
    """Undisturbed moves: to another archive (it reads every moved
    message's index document, appends the folder-move record, commits the
    db, then re-files every document in the index) and inside the archive
    (the folder row only).  When each step happened, and the size of each
    db commit in the write-ahead log."""
    t = {}
    for kind, frm, to in (("across", MOVE_FROM, MOVE_TO), ("inside", RENAME_FROM, RENAME_TO)):
        d = fresh_copy(big.d, big.tmp / "move-calib")
        run = run_until(move_argv(d, frm, to), watch={"segment": segment(d), "db log": db_file(d) + "-wal"})
        assert run.returncode == 0, run.describe()
        judge(d, big.tmp, {"moved": moved(big.state, frm, to)}, "an undisturbed MoveFolder %s -> %s" % (frm, to),
              archives=("a", "b", "z"))
        t[kind, "db log"] = run.largest("db log")
        t[kind, "appended"] = run.first("segment", big.segment_size + 1)
        t[kind, "committed"] = run.first("db log", t[kind, "db log"])
        t[kind, "end"] = run.seconds
        assert t[kind, "db log"] > 32 and None not in (t[kind, "appended"], t[kind, "committed"]), (kind, run.sizes)
    shutil.rmtree(str(big.tmp / "move-calib"))
    return t


MOVE_POINTS = ("reading documents", "move record appended", "db commit written", "re-filing the index",
               "rename inside the archive, db commit written")


@pytest.mark.parametrize("point", MOVE_POINTS, ids=point_id)
def test_kill9_move_folder(big, move_timing, tmp_path, point):
    t = move_timing
    kind = "inside" if point.startswith("rename") else "across"
    frm, to = (RENAME_FROM, RENAME_TO) if kind == "inside" else (MOVE_FROM, MOVE_TO)
    d = tmp_path / "data"

    def attempt(i):
        fresh_copy(big.d, d)
        committed = size_at_least(db_file(d) + "-wal", t[kind, "db log"])
        when = {
            "reading documents": at_elapsed(0.3 * t[kind, "appended"]),
            "move record appended": size_at_least(segment(d), big.segment_size + 1),
            "db commit written": committed,
            "re-filing the index": then_after(committed, 0.3 * (t[kind, "end"] - t[kind, "committed"])),
            "rename inside the archive, db commit written": committed,
        }[point]
        return run_until(move_argv(d, frm, to), when=when)

    run = kill_at(point, attempt)
    after = moved(big.state, frm, to)
    touched = sorted(h for h in big.state if big.state[h] != after[h])
    name, _ = judge(d, tmp_path, {"before": big.state, "after": after},
                    "kill -9 of MoveFolder %s -> %s at %r (%.4fs; undisturbed: record %.3fs, commit %.3fs, "
                    "end %.3fs)" % (frm, to, point, run.fired_at, t[kind, "appended"], t[kind, "committed"],
                                    t[kind, "end"]),
                    touched_shas=random.Random(3).sample(touched, 10), archives=("a", "b", "z"))
    counts = collections.Counter("%s/%s" % v for v in (big.state if name == "before" else after).values())
    listed = {"%s/%s" % (r["archive"], r["folder"]): r["count"]
              for r in parse_json(mv("folders", "--json", data_dir=d)) if r["count"]}
    assert listed == dict(counts), "folders --json after the kill (%s): %s, expected %s" % (name, listed, dict(counts))
    print("MoveFolder %s -> %s killed at %r (%.4fs): %s" % (frm, to, point, run.fired_at, name))


# ---------------------------------------------------------------------------
# 4. kill -9 during CreateBackup

# What a backup writes, in order: master.sqlite, master.key, then per store
# (stores/<store name>/) its index, keys and db (SQLite online backups) and
# content segments, then BACKUP-INFO.json (a .tmp, fsync'd, renamed: last).
BACKUP_POINTS = {
    "master copied": ("master.key",),
    "index being copied": ("stores/store1/index/index.sqlite",),
    "db being copied": ("stores/store1/db/store.sqlite",),
    "segments being copied": ("stores/store1/content/seg-00000001.mvs",),
    "info being written": ("BACKUP-INFO.json.tmp", "BACKUP-INFO.json"),
    "info written": ("BACKUP-INFO.json",),
}


@pytest.mark.parametrize("point", list(BACKUP_POINTS), ids=point_id)
def test_kill9_create_backup(big, tmp_path, point):
    d = tmp_path / "data"
    backup = tmp_path / "backup"

    def attempt(i):
        fresh_copy(big.d, d)
        if os.path.exists(str(backup)):
            shutil.rmtree(str(backup))
        return run_until(mv_argv(d, "cmd", "CreateBackup", "--path=%s" % backup),
                         when=exists(*(os.path.join(str(backup), f) for f in BACKUP_POINTS[point])))

    run = kill_at(point, attempt)

    # the instance backed up is untouched
    ids = {h["id"] for h in search_json("size:>0", d, limit=0)}
    assert len(ids) == len(big.state), "the source lists %d messages after the kill, had %d" % (
        len(ids), len(big.state))
    v = verify_problem(d)
    assert v is None, "the source of a backup killed at %r: %s" % (point, v)

    target = tmp_path / "restored"
    complete = os.path.isfile(os.path.join(str(backup), "BACKUP-INFO.json"))
    cp = mv("restore", backup, data_dir=target, check=False, timeout=600)
    if not complete:
        err = cp.stderr.decode("utf-8", "replace")
        assert cp.returncode == 1 and "not a complete mailvault backup" in err and "BACKUP-INFO.json" in err, (
            "restore of a backup killed at %r (no BACKUP-INFO.json) should be refused, saying why: exit %d, %r"
            % (point, cp.returncode, err[-1000:]))
        assert not os.path.exists(str(target)), "a refused restore left %s behind" % target
        print("CreateBackup killed at %r (%.4fs): incomplete, refused: %s" % (point, run.fired_at, err.strip()))
        return
    assert cp.returncode == 0, "restore of a backup with BACKUP-INFO.json (killed at %r) failed: %s" % (
        point, cp.stderr.decode("utf-8", "replace")[-1500:])
    judge(target, tmp_path, {"complete": big.state}, "restore of a backup killed at %r after BACKUP-INFO.json" % point)
    print("CreateBackup killed at %r (%.4fs): complete, restores" % (point, run.fired_at))


# ---------------------------------------------------------------------------
# 5. kill -9 during `mailvault restore`

@pytest.fixture(scope="module")
def backups(big):
    """Two backups of the big store, with and without search indexes (a
    restore of the latter rebuilds the index), and the size of the whole
    index (what a rebuild writes)."""
    out = {}
    for name, exclude in (("with index", False), ("without index", True)):
        path = big.tmp / ("backup-" + name.replace(" ", "-"))
        env = cmd(big.d, "CreateBackup", path=path, excludeSearchIndexes=exclude)
        assert env["statusCode"] == "succeeded", env
        assert os.path.isfile(segment(path)), "the backup's layout: %s" % sorted(os.listdir(str(path)))
        out[name] = path
    out["empty index bytes"] = size_of(index_file(out["without index"]))
    out["index bytes"] = size_of(index_file(out["with index"]))
    assert out["index bytes"] > 4 * out["empty index bytes"] > 0, out
    return out


RESTORE_POINTS = ("temporary copy begun", "segments being copied", "renamed into place",
                  "index rebuild begun", "index rebuild halfway")


@pytest.mark.parametrize("point", RESTORE_POINTS, ids=point_id)
def test_kill9_restore(big, backups, tmp_path, point):
    target = tmp_path / "restored"
    ix = index_file(target)
    source, when = {
        "temporary copy begun": ("with index", sibling_exists(target, ".restoring-")),
        "segments being copied": ("with index", lambda e: any(
            os.path.exists(segment(os.path.join(str(tmp_path), n)))
            for n in os.listdir(str(tmp_path)) if n.startswith("restored.restoring-"))),
        "renamed into place": ("with index", exists(os.path.join(str(target), "master.sqlite"))),
        "index rebuild begun": ("without index", size_at_least(ix, ix + "-wal", backups["empty index bytes"] + 1)),
        "index rebuild halfway": ("without index", size_at_least(ix, ix + "-wal", backups["index bytes"] // 2)),
    }[point]

    def attempt(i):
        for n in os.listdir(str(tmp_path)):
            if n.startswith("restored"):
                shutil.rmtree(os.path.join(str(tmp_path), n))
        return run_until(mv_argv(target, "restore", backups[source]), when=when)

    run = kill_at(point, attempt)
    leftovers = sorted(n for n in os.listdir(str(tmp_path)) if n.startswith("restored.restoring-"))

    absent = not os.path.exists(str(target)) or not os.listdir(str(target))
    cp = mv("restore", backups[source], data_dir=target, check=False, timeout=600)
    if absent:
        assert cp.returncode == 0, "restore run again after a kill at %r failed: %s" % (
            point, cp.stderr.decode("utf-8", "replace")[-1500:])
        what = "restore run again after a kill at %r" % point
    else:
        assert cp.returncode == 1 and b"already holds a mailvault instance" in cp.stderr, (
            "restore into the target a kill at %r left: exit %d, %r" % (point, cp.returncode, cp.stderr[-800:]))
        what = "the target a restore killed at %r left in place" % point
    judge(target, tmp_path, {"complete": big.state}, what)
    print("restore (%s) killed at %r (%.4fs): target %s; temporary copies left beside it: %s" % (
        source, point, run.fired_at, "absent, restored again" if absent else "in place, complete", leftovers))
