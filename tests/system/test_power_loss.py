"""Power loss: nothing acknowledged is lost, at any fsync.

kill -9 never loses the page cache, so the crash tests cannot notice an
fsync that is missing or does nothing.  Here every traced `mailvault`
process runs under tests/powerloss/shim.c (LD_PRELOAD), which snapshots each
file of the data directory at its fsync and each directory's entries at the
directory's fsync; tests/powerloss/powerloss.py rebuilds the data directory
as the disk would hold it after the power failed right after any one fsync:
files as of their last fsync, directory entries as of their directory's
last fsync, everything written later thrown away (the pessimistic POSIX
model of ALICE and CrashMonkey; shim.c lists its limits).

The scenario, each step a process acknowledged (exit 0, its JSON answer)
before the next starts: six imports of 40 generated messages (one batch
each), four DeleteMessage calls, CompactStore, then RecoverStore (a spare
store made current, store 1 disabled, recovered, made current again).
A store made by CreateStore must exist after a cut once master.sqlite names
it (test_create_store_survives_power_loss).  At cut points spread over every
step the rebuilt directory must:
  - open, and VerifyStore --id=1 must report it clean (no problem at all);
  - hold every message of every acknowledged import, byte-exact (SHA-256 of
    `show` against the generated source), and no message of an
    acknowledged deletion; the import in flight at the cut is all or
    nothing (one batch); no other message, none twice;
  - take new mail (one more import) and still verify clean.
The cut also happens for real: MV_POWERLOSS_CUT kills the process with
SIGKILL right after the chosen fsync, and the directory rebuilt from that
journal passes the same checks.  And the checker is shown to catch what it
exists for: with the segment files' fsyncs made no-ops
(MV_POWERLOSS_FAKE_FSYNC) acknowledged messages are lost and it says so.

tools/mutants.py's "fsync-is-a-no-op" (mv_fsync_fd not calling fsync) must
fail here."""

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from mvtest import MAILVAULT_BIN, check_no_crash, init_data_dir, mv, parse_json

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "powerloss"))
import powerloss  # noqa: E402

pytestmark = pytest.mark.xdist_group("power_loss")

GROUPS = 6
PER_GROUP = 40
TOTAL = GROUPS * PER_GROUP
ARCHIVE = "powerloss"
# Message numbers deleted (each in a different batch or segment position).
DELETED = (5, 6, 47, 130)
# Cut points checked per step of the scenario (its last fsync always among them).
CUTS_PER_STEP = {"import": 3, "delete": 1, "compact": 6, "spare": 1, "recover": 4, "state": 1}
T_STEP = 300
# Every step of the scenario, in order: the one after the last acknowledged
# is the one in flight at a cut.
LABELS = (["import %d" % g for g in range(GROUPS)] + ["delete 1:%d" % n for n in DELETED]
          + ["compact", "spare current", "state disabled", "recover", "state current"])


# ---- the messages -------------------------------------------------------------------

def make_message(group, n):
    """A distinct message of 300 B .. ~60 KB; every fifth with a base64
    attachment, so records vary in size and compression."""
    seed = hashlib.sha256(b"%d/%d" % (group, n)).digest()
    lines = 3 + seed[0] % 40 + (seed[1] % 4 == 0) * 600
    body = "".join("%s line %d of %d/%d %s\n" % (seed[2:6].hex(), i, group, n, seed.hex()[i % 50:])
                   for i in range(lines))
    head = ("From: Sender %d <s%d@power.example>\n"
            "To: archive@example.org\n"
            "Subject: power loss %d/%d\n"
            "Date: Tue, %02d Mar 2021 %02d:%02d:00 +0000\n"
            "Message-ID: <pl-%d-%d@mailvault.test>\n" % (n, n, group, n, n % 28 + 1, group, n % 60, group, n))
    if n % 5:
        return (head + "\n" + body).encode()
    blob = hashlib.sha256(seed).digest() * (40 + seed[3])
    import base64
    att = base64.encodebytes(blob).decode()
    return (head + "MIME-Version: 1.0\n"
            "Content-Type: multipart/mixed; boundary=\"b%d\"\n\n"
            "--b%d\nContent-Type: text/plain\n\n%s\n"
            "--b%d\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n"
            "Content-Disposition: attachment; filename=\"a%d.bin\"\n\n%s\n--b%d--\n"
            % (n, n, body, n, n, att, n)).encode()


def write_groups(root):
    """GROUPS directories of PER_GROUP EML files; {group: {sha256: bytes}}."""
    groups = {}
    for g in range(GROUPS):
        d = os.path.join(root, "g%d" % g)
        os.makedirs(d)
        groups[g] = {}
        for n in range(PER_GROUP):
            raw = make_message(g, n)
            with open(os.path.join(d, "%03d.eml" % n), "wb") as f:
                f.write(raw)
            groups[g][hashlib.sha256(raw).hexdigest()] = raw
    return groups


# ---- the traced scenario --------------------------------------------------------------

class Scenario:
    """One data directory, one journal, the steps run so far and what each
    acknowledged."""

    def __init__(self, root, groups, shim):
        self.root = root
        self.groups = groups
        self.data = os.path.join(root, "data")
        init_data_dir(self.data)
        # RecoverStore wants its store disabled, and the current store cannot
        # be: a spare store takes over.  Made before the baseline (see
        # test_create_store_survives_power_loss for why).
        succeeded(mv("cmd", "CreateStore", "--name=spare", "--requestedState=normal", data_dir=self.data))
        self.journal = powerloss.Journal(os.path.join(root, "log"), self.data)
        self.journal.baseline()
        self.shim = shim
        self.killed = None          # the step a MV_POWERLOSS_CUT killed

    def run(self, label, args, cut=None, fake=None, check=None):
        """Runs one traced step; acks it if it succeeded.  Returns False when
        the shim cut the power in it (the process died of SIGKILL)."""
        env = self.journal.env(shim=self.shim, cut=cut, fake=fake)
        cp = subprocess.run([MAILVAULT_BIN, "--data-dir", self.data] + args, env=env, capture_output=True,
                            stdin=subprocess.DEVNULL, timeout=T_STEP)
        if cut is not None and cp.returncode == -signal.SIGKILL:
            self.killed = label
            return False
        check_no_crash(cp)
        assert cp.returncode == 0, "step %s failed (exit %d): %s %s" % (
            label, cp.returncode, cp.stdout[-2000:], cp.stderr[-2000:])
        if check:
            check(cp)
        self.journal.ack(label)
        return True

    def steps(self, cut=None, fake=None, imports=GROUPS, maintenance=True, recovery=True):
        """The scenario; stops at the step a cut killed."""
        for g in range(imports):
            def imported(cp):
                summary = json.loads(cp.stdout)
                assert summary["imported"] == PER_GROUP and summary["refused"] == 0, summary
            if not self.run("import %d" % g, ["import", os.path.join(self.root, "src", "g%d" % g), "--archive",
                                              ARCHIVE, "--json"], cut, fake, imported):
                return
        if not maintenance:
            return
        for num in DELETED:
            if not self.run("delete 1:%d" % num, ["cmd", "DeleteMessage", "--id=1:%d" % num,
                                                  "--reason=power loss test"], cut, fake):
                return
        if not self.run("compact", ["cmd", "CompactStore", "--id=1"], cut, fake, succeeded) or not recovery:
            return
        if not self.run("spare current", ["cmd", "SetStoreRequestedState", "--id=2", "--requestedState=current"],
                        cut, fake, succeeded):
            return
        if not self.run("state disabled", ["cmd", "SetStoreRequestedState", "--id=1",
                                           "--requestedState=disabled"], cut, fake, succeeded):
            return
        if not self.run("recover", ["cmd", "RecoverStore", "--id=1"], cut, fake, succeeded):
            return
        self.run("state current", ["cmd", "SetStoreRequestedState", "--id=1", "--requestedState=current"],
                 cut, fake, succeeded)


def succeeded(cp):
    out = json.loads(cp.stdout)
    assert out["statusCode"] == "succeeded" and out["error"] is None, out


# ---- the checks after a cut ---------------------------------------------------------------

MISSING_RE = re.compile(r"mailvault: 1:(\d+): message 1:\1 does not exist$")


class Verdict:
    def __init__(self, scenario, cut, deleted_hashes):
        self.s = scenario
        self.cut = cut
        self.deleted_hashes = deleted_hashes

    def fail(self, what):
        pytest.fail("after a power cut right after fsync %d (acknowledged: %s):\n%s\n\njournal around the cut:\n%s"
                    % (self.cut, ", ".join(self.acked) or "nothing", what, self.s.journal.context(self.cut)),
                    pytrace=False)

    def verify_clean(self, d, when):
        cp = mv("cmd", "VerifyStore", "--id=1", data_dir=d, check=(0, 1))
        try:
            out = json.loads(cp.stdout)
        except ValueError:
            out = None
        result = out and out.get("result")
        if cp.returncode != 0 or not result or result["clean"] is not True or result["problems"]:
            self.fail("VerifyStore %s: exit %d\n%s\n%s" % (when, cp.returncode, cp.stdout.decode()[-3000:],
                                                           cp.stderr.decode()[-2000:]))

    @staticmethod
    def disabled(d):
        stores = parse_json(mv("cmd", "GetStores", data_dir=d))["result"]
        return [s["requestedState"] for s in stores if s["id"] == 1] == ["disabled"]

    def present(self, d):
        """{sha256: [ids]} of every message `show` returns; any error other
        than "does not exist" fails."""
        ids = ["1:%d" % i for i in range(1, TOTAL + 3)]
        cp = mv("show", "--sha256", *ids, data_dir=d, check=(0, 1))
        found = {}
        for line in cp.stdout.decode().splitlines():
            digest, msg_id = line.split("  ", 1)
            found.setdefault(digest, []).append(msg_id)
        odd = [line for line in cp.stderr.decode("utf-8", "replace").splitlines()
               if line and not MISSING_RE.match(line)]
        if odd:
            self.fail("show --sha256 could not read messages:\n%s" % "\n".join(odd[:20]))
        return found

    def check(self, dest, take_new_mail=True):
        self.acked = []
        acked = self.acked = self.s.journal.rebuild(self.cut, dest)
        in_flight = next((label for label in LABELS if label not in acked), None)
        if "state disabled" in acked + [in_flight] and "state current" not in acked:
            # A cut around the recovery of store 1, which may be disabled
            # (durably, before the acknowledgement): the administrator runs
            # RecoverStore again and makes the store current.
            for step in (["RecoverStore", "--id=1"], ["SetStoreRequestedState", "--id=1", "--requestedState=current"]):
                if step[0] == "RecoverStore" and not self.disabled(dest):
                    continue
                cp = mv("cmd", *step, data_dir=dest, check=(0, 1))
                if cp.returncode != 0:
                    self.fail("%s after the cut: exit %d\n%s" % (step[0], cp.returncode, cp.stdout.decode()[-2000:]))
        self.verify_clean(dest, "after the cut")
        found = self.present(dest)
        twice = {h: ids for h, ids in found.items() if len(ids) > 1}
        if twice:
            self.fail("messages held twice: %s" % twice)
        everything = {h for g in self.s.groups.values() for h in g}
        strange = set(found) - everything
        if strange:
            self.fail("messages that were never imported: %s" % sorted(strange)[:5])
        deleted_acked = {self.deleted_hashes[n] for n in DELETED if "delete 1:%d" % n in acked}
        deleting = {self.deleted_hashes[n] for n in DELETED if "delete 1:%d" % n in (acked + [in_flight])}
        back = deleted_acked & set(found)
        if back:
            self.fail("acknowledged deletions undone: %s" % sorted(found[h][0] for h in back))
        for g, msgs in self.s.groups.items():
            want = set(msgs) - deleting
            have = want & set(found)
            if "import %d" % g in acked:
                if have != want:
                    self.fail("import %d was acknowledged, %d of its %d messages are missing after the cut"
                              % (g, len(want - have), len(want)))
            elif have and have != want:
                self.fail("import %d (one batch, not acknowledged) is half there: %d of %d messages"
                          % (g, len(have), len(want)))
        if take_new_mail:
            src = os.path.join(os.path.dirname(dest), "new-%d" % self.cut)
            os.makedirs(src)
            raw = make_message(99, self.cut)
            with open(os.path.join(src, "new.eml"), "wb") as f:
                f.write(raw)
            cp = mv("import", src, "--archive", ARCHIVE, "--json", data_dir=dest, check=(0, 1, 3))
            summary = parse_json(cp) if cp.returncode in (0, 3) else None
            if cp.returncode != 0 or summary["imported"] != 1:
                self.fail("an import after the cut: exit %d %s %s" % (cp.returncode, cp.stdout[-1000:],
                                                                     cp.stderr[-1000:]))
            self.verify_clean(dest, "after an import that followed the cut")
        return acked


# ---- fixtures ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("powerloss"))
    groups = write_groups(os.path.join(root, "src"))
    shim = powerloss.shim_path(MAILVAULT_BIN, root)
    return root, groups, shim


def deleted_hashes(groups):
    """Message number -> sha256: each import is one batch, numbered in file
    order (checked against the archive by test_power_loss_everywhere)."""
    order = []
    for g in range(GROUPS):
        order += [hashlib.sha256(make_message(g, n)).hexdigest() for n in range(PER_GROUP)]
    return {num: order[num - 1] for num in DELETED}


def new_scenario(base, name):
    root, groups, shim = base
    sroot = os.path.join(root, name)
    os.makedirs(sroot)
    os.symlink(os.path.join(root, "src"), os.path.join(sroot, "src"))
    return Scenario(sroot, groups, shim)


def chosen_cuts(journal, after=None):
    """Per step (the fsyncs between two acks), CUTS_PER_STEP of them spread
    evenly, the step's last fsync always (the moment before the
    acknowledgement), plus the baseline (0) and the end (every ack in).
    AFTER: only the steps after that acknowledgement."""
    cuts = set() if after else {0}
    step, seqs = [], []
    labels = [r.fields for r in journal.records() if r.kind == "A"]
    for r in journal.records():
        if r.kind in ("F", "D") and r.seq:
            seqs.append(r.seq)
        elif r.kind == "A":
            step.append((r.fields, seqs))
            seqs = []
    assert not seqs, "fsyncs after the last acknowledgement: %s" % seqs
    assert len(step) == len(labels)
    if after:
        step = step[[label for label, _ in step].index(after) + 1:]
    for label, s in step:
        k = CUTS_PER_STEP[label.split()[0]]
        if not s:
            continue
        picks = {s[-1]} | {s[(i * len(s)) // k] for i in range(k)}
        cuts |= picks
    return sorted(cuts) + [journal.syncs()[-1].seq + 1]


# ---- tests --------------------------------------------------------------------------------

def test_power_loss_everywhere(base):
    """The scenario up to CompactStore once, traced; then the directory after
    a power cut at ~35 of its fsyncs, every step covered."""
    t0 = time.monotonic()
    s = new_scenario(base, "everywhere")
    s.steps(recovery=False)
    assert s.killed is None
    syncs = s.journal.syncs()
    # The shim must really have been there: each import alone syncs its
    # segment, the segment directory and the db's WAL.
    assert len(syncs) >= GROUPS * 4, "only %d fsyncs recorded: is the shim loaded?" % len(syncs)
    assert [r.fields for r in s.journal.records() if r.kind == "A"] == LABELS[:LABELS.index("compact") + 1]
    # The numbering deleted_hashes relies on, from the finished archive.
    dh = deleted_hashes(base[1])
    cp = mv("show", "--sha256", "1:1", "1:41", "1:240", data_dir=s.data)
    got = {}
    for line in cp.stdout.decode().splitlines():
        digest, msg_id = line.split("  ")
        got[msg_id] = digest
    order = [hashlib.sha256(make_message(g, n)).hexdigest() for g in range(GROUPS) for n in range(PER_GROUP)]
    assert got == {"1:1": order[0], "1:41": order[40], "1:240": order[239]}, got
    cuts = chosen_cuts(s.journal)
    traced = time.monotonic() - t0
    for cut in cuts:
        Verdict(s, cut, dh).check(os.path.join(s.root, "cut-%d" % cut), take_new_mail=cut % 2 == 0 or cut == cuts[-1])
        shutil.rmtree(os.path.join(s.root, "cut-%d" % cut))
    # Last, so that a missing fsync shows above as the loss it causes.
    assert any(r.kind == "F" and "/content/seg-" in r.fields for r in syncs), "no segment was ever synced"
    print("power loss: %d fsyncs, %d cuts checked; traced run %.1f s, total %.1f s"
          % (len(syncs), len(cuts), traced, time.monotonic() - t0))


def test_power_loss_during_recovery(base):
    """The whole scenario, then cuts in its recovery steps only: a spare
    store made current, store 1 disabled, RecoverStore, store 1 current."""
    s = new_scenario(base, "recovery")
    s.steps()
    assert s.killed is None
    assert [r.fields for r in s.journal.records() if r.kind == "A"] == LABELS
    dh = deleted_hashes(base[1])
    cuts = chosen_cuts(s.journal, after="compact")
    for cut in cuts:
        Verdict(s, cut, dh).check(os.path.join(s.root, "cut-%d" % cut), take_new_mail=cut == cuts[-1])
        shutil.rmtree(os.path.join(s.root, "cut-%d" % cut))


def _first_after(journal, label, path_part, kind="F"):
    """The seq of the first fsync of a path containing PATH_PART after
    LABEL was acknowledged (label None: from the start)."""
    started = label is None
    for r in journal.records():
        if r.kind == "A" and r.fields == label:
            started = True
        elif started and r.kind == kind and r.seq and path_part in r.fields:
            return r.seq
    raise AssertionError("no fsync of %s after %s" % (path_part, label))


@pytest.mark.parametrize("where", ["segment", "commit"])
def test_power_cut_kills_the_process(base, where):
    """A real cut: the process dies of SIGKILL right after the chosen fsync
    of the third import (its segment's, before the db knows the batch; or
    the db's WAL commit, before the import could say so), and the directory
    rebuilt from that journal passes the same checks."""
    # The cut points come from a traced dry run of the same steps.
    dry = new_scenario(base, "dry-" + where)
    dry.steps(imports=3, maintenance=False)
    if where == "segment":
        cut = _first_after(dry.journal, "import 1", "/content/seg-")
    else:
        cut = _first_after(dry.journal, "import 1", "/db/store.sqlite-wal")
    s = new_scenario(base, "kill-" + where)
    s.steps(cut=cut, imports=3, maintenance=False)
    assert s.killed == "import 2", "the cut at fsync %d did not kill the third import (%s)" % (cut, s.killed)
    records = s.journal.records()
    assert records[-1].kind == "X" and records[-1].seq == cut, records[-1].line
    acked = Verdict(s, cut, deleted_hashes(base[1])).check(os.path.join(s.root, "after"))
    assert acked == ["import 0", "import 1"], acked


def test_checker_catches_an_fsync_that_does_nothing(base):
    """The oracle can fail: with every fsync of content/ (segments and their
    directory) a no-op, as the mutant "fsync-is-a-no-op" makes them, the
    imports are acknowledged and then lost at the cut."""
    s = new_scenario(base, "fake")
    s.steps(imports=2, maintenance=False, fake="*/content/*:*/content")
    cut = s.journal.syncs()[-1].seq + 1     # after the last acknowledgement
    with pytest.raises(pytest.fail.Exception) as e:
        Verdict(s, cut, deleted_hashes(base[1])).check(os.path.join(s.root, "after"), take_new_mail=False)
    msg = str(e.value)
    # What a lost segment looks like: the db promises records content/ lacks.
    assert "VerifyStore after the cut" in msg or "messages are missing after the cut" in msg, msg
    assert "acknowledged: import 0, import 1" in msg, msg


def test_create_store_survives_power_loss(base):
    """CreateStore, acknowledged, then the power fails: the store it made
    current opens and takes mail."""
    s = new_scenario(base, "create")
    s.run("create", ["cmd", "CreateStore", "--name=fresh", "--requestedState=current"], check=succeeded)
    cut = s.journal.syncs()[-1].seq + 1
    d = os.path.join(s.root, "after")
    assert s.journal.rebuild(cut, d) == ["create"]
    src = os.path.join(s.root, "one")
    os.makedirs(src)
    with open(os.path.join(src, "one.eml"), "wb") as f:
        f.write(make_message(98, 0))
    cp = mv("import", src, "--archive", ARCHIVE, "--json", data_dir=d, check=(0, 1))
    assert cp.returncode == 0 and parse_json(cp)["imported"] == 1, cp.stderr.decode()
