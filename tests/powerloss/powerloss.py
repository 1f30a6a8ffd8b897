"""The other half of tests/powerloss/shim.c: the journal's baseline, the
acknowledgements of a test, and the rebuild of a watched directory as the
disk would hold it after a power cut at any recorded fsync (stdlib only).

A cut "after fsync N" keeps, of every file, its bytes at its last fsync
numbered <= N (empty if none), and of every directory its entries at its
last fsync numbered <= N; everything present at the baseline counts as
synced.  See shim.c for the model and its limits.

  j = Journal(log_dir, watch_dir); j.baseline()
  subprocess.run(..., env=j.env())          # the traced program
  j.ack("step 1")                           # what the program acknowledged
  acked = j.rebuild(N, dest)                # dest: the directory after a cut

Used from the command line for a failure's post-mortem:
  python3 powerloss.py rebuild LOG_DIR WATCH_DIR N DEST
  python3 powerloss.py cuts LOG_DIR"""

import os
import shutil
import stat
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SHIM_NAME = "libmvpowerloss.so"


def shim_path(mailvault_bin, cache_dir):
    """The preloaded library: $MV_POWERLOSS_SHIM, the one Meson built next to
    the binary (-Dtests=enabled), else compiled here from shim.c into
    cache_dir (the shim is never built with sanitizers: their runtime would
    have to come first)."""
    env = os.environ.get("MV_POWERLOSS_SHIM")
    if env:
        return env
    built = os.path.join(os.path.dirname(os.path.abspath(mailvault_bin)), "tests", "powerloss", SHIM_NAME)
    if os.path.isfile(built) and os.path.getmtime(built) >= os.path.getmtime(os.path.join(HERE, "shim.c")):
        return built
    out = os.path.join(cache_dir, SHIM_NAME)
    cc = os.environ.get("CC", "cc")
    subprocess.run([cc, "-std=c17", "-O2", "-g", "-fPIC", "-shared", "-Wall", "-Wextra", "-Werror",
                    "-Wno-unused-parameter", "-o", out, os.path.join(HERE, "shim.c"), "-ldl", "-lpthread"],
                   check=True, capture_output=True)
    return out


class Record:
    __slots__ = ("kind", "seq", "pid", "fields", "line")

    def __init__(self, line):
        self.line = line
        parts = line.split(" ", 3)
        self.kind = parts[0]
        self.seq = int(parts[1]) if len(parts) > 1 and parts[1].lstrip("-").isdigit() else None
        self.pid = parts[2] if len(parts) > 2 else ""
        self.fields = parts[3] if len(parts) > 3 else ""

    def split(self, n):
        """dev, ino, ... of F/D/N records; the path (last) may hold spaces."""
        return self.fields.split(" ", n)


class Journal:
    def __init__(self, log_dir, watch_dir):
        self.log_dir = os.path.abspath(log_dir)
        self.watch_dir = os.path.realpath(watch_dir)
        self.blobs = os.path.join(self.log_dir, "blobs")
        self.path = os.path.join(self.log_dir, "journal")
        os.makedirs(self.blobs, exist_ok=True)

    # -- writing ------------------------------------------------------------------
    def _append(self, line):
        assert "\n" not in line
        with open(self.path, "a") as f:
            f.write(line + "\n")

    def baseline(self):
        """Everything below the watched directory now counts as synced."""
        st = os.lstat(self.watch_dir)
        self._append("B - %d %d %d %s" % (os.getpid(), st.st_dev, st.st_ino, self.watch_dir))
        n = 0
        for top, dirs, files in os.walk(self.watch_dir):
            for name in files:
                p = os.path.join(top, name)
                fst = os.lstat(p)
                if not stat.S_ISREG(fst.st_mode):
                    continue
                n += 1
                blob = "base-%d" % n
                shutil.copyfile(p, os.path.join(self.blobs, blob))
                self._append("F 0 %d %d %d %s %s" % (os.getpid(), fst.st_dev, fst.st_ino, blob, p))
            n += 1
            blob = "base-%d" % n
            with open(os.path.join(self.blobs, blob), "w") as out:
                for name in sorted(os.listdir(top)):
                    est = os.lstat(os.path.join(top, name))
                    kind = "f" if stat.S_ISREG(est.st_mode) else "d" if stat.S_ISDIR(est.st_mode) else "o"
                    out.write("%s %o %d %d %s\n" % (kind, est.st_mode & 0o7777, est.st_dev, est.st_ino,
                                                    name.encode("utf-8", "surrogateescape").hex()))
            dst = os.lstat(top)
            self._append("D 0 %d %d %d %s %s" % (os.getpid(), dst.st_dev, dst.st_ino, blob, top))

    def ack(self, label):
        """The traced program acknowledged LABEL (it returned, it printed):
        from here on a cut must keep what it acknowledged."""
        self._append("A - %d %s" % (os.getpid(), label))

    def env(self, base=None, cut=None, fake=None, shim=None):
        e = dict(os.environ if base is None else base)
        e["LD_PRELOAD"] = shim
        e["MV_POWERLOSS_DIR"] = self.watch_dir
        e["MV_POWERLOSS_LOG"] = self.log_dir
        # A preloaded library comes before an ASan runtime the binary links.
        e["ASAN_OPTIONS"] = (e.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0").lstrip(":")
        for k in ("MV_POWERLOSS_CUT", "MV_POWERLOSS_FAKE_FSYNC"):
            e.pop(k, None)
        if cut is not None:
            e["MV_POWERLOSS_CUT"] = str(cut)
        if fake is not None:
            e["MV_POWERLOSS_FAKE_FSYNC"] = fake
        return e

    # -- reading ------------------------------------------------------------------
    def records(self):
        with open(self.path, encoding="utf-8", errors="surrogateescape") as f:
            return [Record(line.rstrip("\n")) for line in f if line.strip()]

    def syncs(self):
        """The F and D records of traced processes, in order: the cut points."""
        return [r for r in self.records() if r.kind in ("F", "D") and r.seq]

    def acks_before(self, cut):
        out = []
        for r in self.records():
            if r.kind in ("F", "D") and r.seq and r.seq >= cut:
                break
            if r.kind == "A":
                out.append(r.fields)
        return out

    def context(self, cut, before=12, after=4):
        """The journal around a cut (writes and renames included), for a
        failure message."""
        recs = self.records()
        at = next((i for i, r in enumerate(recs) if r.kind in ("F", "D") and r.seq == cut), len(recs) - 1)
        lines = [r.line for r in recs[max(0, at - before):at + 1]]
        lines.append("---- power cut here ----")
        lines += [r.line for r in recs[at + 1:at + 1 + after]]
        return "\n".join(lines)

    def rebuild(self, cut, dest):
        """Writes the watched directory as it would be after a power cut
        right after fsync number CUT (0: the baseline only) into DEST, which
        must not exist.  Returns the labels acknowledged before the cut."""
        incarnation = {}   # (dev, ino) -> id: a new file may reuse an inode number
        next_id = [0]

        def inc_of(key, new=False):
            if new or key not in incarnation:
                next_id[0] += 1
                incarnation[key] = next_id[0]
            return incarnation[key]

        contents = {}      # id -> blob path
        entries = {}       # id -> [(name, kind, mode, id)]
        root = None
        acked = []
        for r in self.records():
            if r.kind == "B":
                dev, ino, _ = r.split(2)
                root = inc_of((int(dev), int(ino)))
            elif r.kind == "N":
                dev, ino, _ = r.split(2)
                inc_of((int(dev), int(ino)), new=True)
            elif r.kind == "A":
                acked.append(r.fields)
            elif r.kind in ("F", "D"):
                if r.seq > cut:
                    break
                dev, ino, blob, _ = r.split(3)
                ident = inc_of((int(dev), int(ino)))
                if blob != "-":
                    path = os.path.join(self.blobs, blob)
                    if r.kind == "F":
                        contents[ident] = path
                    else:
                        entries[ident] = self._listing(path, inc_of)
                if cut and r.seq == cut:
                    break
        assert root is not None, "the journal has no baseline"
        self._materialise(dest, root, contents, entries, 0o700)
        return acked

    @staticmethod
    def _listing(path, inc_of):
        out = []
        with open(path) as f:
            for line in f:
                kind, mode, dev, ino, hexname = line.split()
                name = bytes.fromhex(hexname).decode("utf-8", "surrogateescape")
                out.append((name, kind, int(mode, 8), inc_of((int(dev), int(ino)))))
        return out

    def _materialise(self, dest, ident, contents, entries, mode):
        os.mkdir(dest)
        for name, kind, emode, child in entries.get(ident, []):
            p = os.path.join(dest, name)
            if kind == "d":
                self._materialise(p, child, contents, entries, emode)
            elif kind == "f":
                if child in contents:
                    shutil.copyfile(contents[child], p)
                else:
                    open(p, "wb").close()     # named durably, never synced
                os.chmod(p, emode)
        os.chmod(dest, mode)


def main(argv):
    if len(argv) == 6 and argv[1] == "rebuild":
        acked = Journal(argv[2], argv[3]).rebuild(int(argv[4]), argv[5])
        print("acknowledged before the cut: %s" % (", ".join(acked) or "nothing"))
        return 0
    if len(argv) == 3 and argv[1] == "cuts":
        for r in Journal(argv[2], "/").syncs():
            print(r.line)
        return 0
    print(__doc__.split("\n\n")[-1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
