#!/usr/bin/env python3
"""Archiving a mailbox over IMAP: mailvault's IMAP archiving profile beside
mbsync and offlineimap pulling the same mailbox from the same private Dovecot
in the same run.  Used by bench/run_imap_archive.sh (stdlib only).

  imap_archive.py run --bin BIN --maildir DIR --out DIR --tmp DIR [--offlineimap-connections K]
                      [--invocation TEXT] [--keep]

DIR is a generated corpus's Maildir (bench/gen_corpus.py).  Its messages are
spread over four folders of one Dovecot user (INBOX 40%, INBOX/Lists 25%,
Projects 20%, Projects/2019 15%, by index), written as Maildir++ files into
the user's Maildir, then Dovecot indexes every folder once (SELECT and FETCH
1:* of UID FLAGS INTERNALDATE RFC822.SIZE through imaplib), untimed, so no
tool pays the first indexing.  Everything is plain IMAP on 127.0.0.1 with
LOGIN; the message files stay in the page cache (just written).

Timed, each once, in this order, wall time of the whole process under
/usr/bin/time -v (peak RSS from it):
  mbsync       `mbsync -c RC -a`: one channel, Patterns *, Sync Pull, Create Near,
               SubFolders Maildir++ near store; isync defaults otherwise
               (PipelineDepth unlimited)
  offlineimap  `offlineimap -c RC -o -u quiet`: one account, remote readonly,
               maxconnections K (default 1: one folder at a time), sqlite status
  mailvault    `mailvault cmd RunProfile` of a saved IMAP profile (subType 0, protocol
               IMAP) on a fresh data directory (`mailvault init`), into archive
               "bench"; then RunProfile again with nothing new (the incremental run)
Each peer's copy is checked against the originals (SHA-256 of each message,
line ends as LF, mbsync's X-TUID header line removed): the figures of a pull
that lost or changed a message are flagged.  mailvault's run is checked by its
result's counts.  If the binary has no IMAP connector (GetProfileTypes lists
none) the mailvault rows say so and the peers' figures still print.

Writes OUT/results.json, OUT/logs/, and the state files OUT/dovecot.state
("PGID ROOT"), OUT/tool.pgid (the timed tool's process group) and
OUT/work.path (the copies' directory) that run_imap_archive.sh's trap uses
to clean up if this process dies without its own cleanup."""

import argparse
import hashlib
import imaplib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "system"))

# (IMAP name, Maildir++ directory below the user's Maildir, share of 20)
FOLDERS = (("INBOX", "", 8), ("INBOX/Lists", ".INBOX.Lists", 5), ("Projects", ".Projects", 4),
           ("Projects/2019", ".Projects.2019", 3))
TUID_RE = re.compile(rb"^X-TUID: [A-Za-z0-9+/]{12}\n", re.M)
TIMEOUT = 6 * 3600
TOOL_PGID_FILE = None   # OUT/tool.pgid: the process group of the tool being timed


def log(msg):
    print("[imap-archive %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def folder_of(i):
    k = i % 20
    for name, sub, share in FOLDERS:
        if k < share:
            return name, sub
        k -= share
    raise AssertionError(i)


def normal_sha(raw):
    """SHA-256 of a message as the peers' copies are compared: LF line ends,
    mbsync's X-TUID line (in the header) removed."""
    raw = raw.replace(b"\r\n", b"\n")
    end = raw.find(b"\n\n")
    m = TUID_RE.search(raw, 0, end + 1 if end >= 0 else len(raw))
    if m:
        raw = raw[:m.start()] + raw[m.end():]
    return hashlib.sha256(raw).hexdigest()


def loose_sha(raw):
    """normal_sha with runs of empty lines counted as none: offlineimap 8
    re-serialises some MIME messages through Python's email package, which
    adds an empty line before a boundary that follows a closing boundary."""
    return normal_sha(re.sub(rb"\n\n+", b"\n", raw.replace(b"\r\n", b"\n")))


def maildir_files(top):
    """Every message file below top (any folder layout): cur/ and new/ entries."""
    out = []
    for dirpath, dirs, files in os.walk(top):
        if os.path.basename(dirpath) in ("cur", "new"):
            out.extend(os.path.join(dirpath, f) for f in files)
    return out


def multiset_match(want, got):
    left = {}
    for s in want:
        left[s] = left.get(s, 0) + 1
    match = 0
    for s in got:
        if left.get(s, 0) > 0:
            left[s] -= 1
            match += 1
    return match


def check_copy(near, want):
    """(files, byte-identical, identical but for empty lines) of a pulled
    Maildir tree against the originals' (normal, loose) SHAs."""
    got = []
    for p in maildir_files(near):
        with open(p, "rb") as f:
            raw = f.read()
        got.append((normal_sha(raw), loose_sha(raw)))
    return (len(got), multiset_match([w[0] for w in want], [g[0] for g in got]),
            multiset_match([w[1] for w in want], [g[1] for g in got]))


def timed(argv, logf, env=None):
    """Runs argv under /usr/bin/time -v; returns (wall s, peak RSS kB, user+sys s, rc, stdout)."""
    tv = logf + ".time"
    t0 = time.perf_counter()
    with open(logf, "ab") as err:
        # a process group of its own: stopped whole (time and the tool) if this one is stopped
        proc = subprocess.Popen(["/usr/bin/time", "-v", "-o", tv] + argv, stdout=subprocess.PIPE, stderr=err,
                                env=env, start_new_session=True)
        if TOOL_PGID_FILE:
            with open(TOOL_PGID_FILE, "w") as f:   # for run_imap_archive.sh's trap, should this process die
                f.write("%d\n" % proc.pid)
        try:
            out, _ = proc.communicate(timeout=TIMEOUT)
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        finally:
            if TOOL_PGID_FILE:
                os.unlink(TOOL_PGID_FILE)
    wall = time.perf_counter() - t0
    rss = cpu = None
    try:
        text = open(tv).read()
        rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
        cpu = sum(float(x) for x in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", text))
    except (OSError, AttributeError):
        pass
    return wall, rss, cpu, proc.returncode, out


def version(argv):
    try:
        cp = subprocess.run(argv, capture_output=True, timeout=30)
        return (cp.stdout + cp.stderr).decode(errors="replace").strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "?"


# ---------------------------------------------------------------- Dovecot

def start_dovecot(tmp, state_file):
    import dovecot
    root = tempfile.mkdtemp(prefix="mv-imap-archive-", dir=tmp)
    # Dovecot's mail user (uid dovecot when run as root) must reach its Maildir
    os.chmod(root, 0o755)
    dv = dovecot.Dovecot(root, True)   # True: stop() removes root
    with open(state_file, "w") as f:
        f.write("0 %s\n" % root)       # the root before the server, so the trap removes it either way
    dv.start()
    with open(state_file, "w") as f:
        f.write("%d %s\n" % (dv.proc.pid, root))
    return dv


def fill_mailbox(dv, originals):
    """Copies the originals into the user's Maildir++ folders; returns per-folder counts."""
    counts = {name: 0 for name, _, _ in FOLDERS}
    for name, sub, _ in FOLDERS:
        base = os.path.join(dv.maildir, sub) if sub else dv.maildir
        for d in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(base, d), exist_ok=True)
        if sub:
            open(os.path.join(base, "maildirfolder"), "w").close()
    for i, p in enumerate(originals):
        name, sub = folder_of(i)
        base = os.path.join(dv.maildir, sub) if sub else dv.maildir
        shutil.copyfile(p, os.path.join(base, "cur", os.path.basename(p)))
        counts[name] += 1
    if os.getuid() == 0:
        st = os.stat(os.path.join(dv.root, "mail"))
        for dirpath, dirs, files in os.walk(os.path.join(dv.root, "mail")):
            for x in dirs + files:
                os.chown(os.path.join(dirpath, x), st.st_uid, st.st_gid)
    return counts


def index_mailbox(dv, counts):
    """Dovecot reads every folder once (index and cache files made), untimed;
    checks each folder holds what was written."""
    m = imaplib.IMAP4("127.0.0.1", dv.port)
    m.login(dv.user, dv.password)
    try:
        typ, listing = m.list()
        for name, _, _ in FOLDERS:
            typ, data = m.select('"%s"' % name, readonly=True)
            if typ != "OK":
                raise RuntimeError("Dovecot: SELECT %s: %r" % (name, data))
            n = int(data[0])
            if n != counts[name]:
                raise RuntimeError("Dovecot shows %d messages in %s, %d were written" % (n, name, counts[name]))
            if n:
                typ, _ = m.fetch("1:*", "(UID FLAGS INTERNALDATE RFC822.SIZE)")
                if typ != "OK":
                    raise RuntimeError("Dovecot: FETCH in %s failed" % name)
            m.close()
    finally:
        m.logout()
    return [x.decode(errors="replace") for x in listing]


# ---------------------------------------------------------------- peers

def mbsync_rc(path, dv, near):
    with open(path, "w") as f:
        f.write("""IMAPAccount far
Host 127.0.0.1
Port %d
User %s
Pass "%s"
SSLType None
AuthMechs LOGIN
Timeout 600

IMAPStore far
Account far

MaildirStore near
Inbox %s/
SubFolders Maildir++

Channel pull
Far :far:
Near :near:
Patterns *
Create Near
Sync Pull
SyncState *
""" % (dv.port, dv.user, dv.password.replace('"', '\\"'), near))


def offlineimap_rc(path, dv, near, meta, connections):
    with open(path, "w") as f:
        f.write("""[general]
accounts = bench
metadata = %s
maxsyncaccounts = 1

[Account bench]
localrepository = near
remoterepository = far

[Repository near]
type = Maildir
localfolders = %s

[Repository far]
type = IMAP
remotehost = 127.0.0.1
remoteport = %d
remoteuser = %s
remotepass = %s
ssl = no
starttls = no
readonly = True
createfolders = False
maxconnections = %d
holdconnectionopen = no
""" % (meta, near, dv.port, dv.user, dv.password, connections))


def run_peer(name, argv, near, want, logs, res):
    shutil.rmtree(near, ignore_errors=True)
    os.makedirs(near)
    log("%s: pulling" % name)
    wall, rss, cpu, rc, _ = timed(argv, os.path.join(logs, name + ".log"))
    r = res["tools"][name] = {"seconds": wall, "peak_rss_kb": rss, "cpu_s": cpu, "rc": rc}
    files, same, loose = check_copy(near, want)
    r.update(files=files, identical=same, identical_but_empty_lines=loose)
    # a faithful copy: every message there, no other change than empty lines
    ok = rc == 0 and files == len(want) and loose == len(want)
    r["ok"] = ok
    if not ok:
        r["error"] = "exit %d, %d of %d messages copied faithfully" % (rc, loose, len(want))
    log("%s: %.1f s, exit %d, %d files; byte-identical to the originals %d, identical but for empty lines %d, of %d%s"
        % (name, wall, rc, files, same, loose, len(want), "" if ok else "  <-- NOT A FAITHFUL COPY, see logs/%s.log" % name))
    shutil.rmtree(near, ignore_errors=True)


# ---------------------------------------------------------------- mailvault

def mv_cmd(binary, data, logs, logname, function, *args):
    cp = subprocess.run([binary, "--data-dir", data, "cmd", function] + list(args), capture_output=True,
                        timeout=TIMEOUT)
    with open(os.path.join(logs, logname), "ab") as f:
        f.write(cp.stderr)
    try:
        return json.loads(cp.stdout)
    except ValueError:
        return {"statusCode": "failed", "error": {"message": "no JSON (exit %d): %s" % (
            cp.returncode, (cp.stdout + cp.stderr)[-500:].decode(errors="replace"))}}


def err_text(env):
    return ((env or {}).get("error") or {}).get("message") or json.dumps(env)[:500]


def mailvault_prepare(binary, data, logs):
    """init, and whether the binary has the IMAP connector; returns a reason
    string when the mailvault part cannot run, else None."""
    cp = subprocess.run([binary, "--data-dir", data, "init"], capture_output=True, timeout=600)
    if cp.returncode != 0:
        return "mailvault init failed: %s" % cp.stderr.decode(errors="replace")[-500:]
    env = mv_cmd(binary, data, logs, "mailvault-cmd.log", "GetProfileTypes")
    if env.get("statusCode") != "succeeded":
        return "%s has no archiving profiles (GetProfileTypes: %s)" % (binary, err_text(env))
    connectors = [t.get("connector") for t in env.get("result") or []]
    if "IMAP" not in connectors:
        return "%s has no IMAP connector yet (GetProfileTypes lists: %s)" % (binary, ", ".join(map(str, connectors)))
    return None


def imap_profile(dv):
    """The profile (docs: issue 12's interface): the whole mailbox, plain IMAP,
    into archive "bench", Dovecot's folders under the archive's top level."""
    return {"name": "bench-imap", "type": "I", "connector": "IMAP", "details": {
        "host": "127.0.0.1:%d" % dv.port, "protocol": "IMAP", "userName": dv.user, "password": dv.password,
        "subType": "0", "targetArchive": "bench", "timeout": "600"}}


def mailvault_runs(binary, data, dv, n, logs, res):
    props = imap_profile(dv)
    env = mv_cmd(binary, data, logs, "mailvault-cmd.log", "CreateProfile", "--properties=" + json.dumps(props),
                 "--raw=true")
    if env.get("statusCode") != "succeeded":
        res["mailvault_skipped"] = "CreateProfile failed: %s" % err_text(env)
        log(res["mailvault_skipped"])
        return
    pid = env["result"]["id"]
    for key, what in (("mailvault", "first run"), ("mailvault_rerun", "incremental run, nothing new")):
        log("mailvault: RunProfile --id=%s (%s)" % (pid, what))
        wall, rss, cpu, rc, out = timed([binary, "--data-dir", data, "cmd", "RunProfile", "--id=%s" % pid],
                                        os.path.join(logs, key + ".log"))
        r = res["tools"][key] = {"seconds": wall, "peak_rss_kb": rss, "cpu_s": cpu, "rc": rc}
        try:
            env = json.loads(out)
        except ValueError:
            env = {"statusCode": "failed", "error": {"message": "no JSON: %r" % out[-300:]}}
        result = env.get("result") if env.get("statusCode") == "succeeded" else None
        r["result"] = result
        if result is None:
            r["ok"] = False
            r["error"] = err_text(env)
            log("mailvault %s failed after %.1f s: %s" % (what, wall, r["error"]))
            return
        if key == "mailvault":
            # every message archived (or counted as a duplicate), none refused
            r["ok"] = (result.get("archived", 0) + result.get("alreadyArchived", 0) == n
                       and not result.get("refused"))
        else:
            # nothing new: nothing archived, no body fetched
            r["ok"] = not result.get("archived") and not result.get("fetched") and not result.get("refused")
        log("mailvault %s: %.1f s, peak RSS %s kB; archived %s, alreadyArchived %s, refused %s, fetched %s, "
            "warnings %s%s" % (what, wall, rss, result.get("archived"), result.get("alreadyArchived"),
                               result.get("refused"), result.get("fetched"),
                               json.dumps(result.get("warnings"))[:300],
                               "" if r["ok"] else "  <-- UNEXPECTED COUNTS"))
    # the archive's folders against the mailbox's (issue 12: INBOX spelled "Inbox")
    want = {("Inbox" + name[5:] if name.upper().startswith("INBOX") else name): k
            for name, k in res["folders"].items()}
    got = None
    cp = subprocess.run([binary, "--data-dir", data, "folders", "--json", "bench"], capture_output=True, timeout=600)
    if cp.returncode == 0:
        try:
            got = {f["folder"]: f["count"] for f in json.loads(cp.stdout) if f.get("archive") == "bench"}
        except (ValueError, KeyError, TypeError):
            pass
    res["mailvault_folders"] = got
    res["mailvault_folders_as_expected"] = got == want
    if got != want:
        log("mailvault's archive folders differ from the mailbox's: want %s, got %s" % (want, got))


# ---------------------------------------------------------------- report

def report(res):
    n, mb = res["messages"], res["bytes"] / 1e6
    t = res["tools"]
    print()
    print("Archiving one IMAP mailbox: %d messages, %.1f MB, %d folders, private Dovecot on loopback (plain IMAP)"
          % (n, mb, len(FOLDERS)))
    print("%-44s %9s %9s %8s %10s %8s  %s" % ("tool", "seconds", "msg/s", "MB/s", "peak RSS", "CPU s", "check"))

    def row(label, r, full=True):
        if r is None:
            return
        s = r["seconds"]
        rss = "%.0f MB" % (r["peak_rss_kb"] / 1024) if r.get("peak_rss_kb") else "?"
        cpu = "%.1f" % r["cpu_s"] if r.get("cpu_s") is not None else "?"
        chk = "ok" if r.get("ok") else "FAILED (%s)" % (r.get("error") or "see log")
        if r.get("ok") and "identical" in r and r["identical"] != r["files"]:
            chk = "ok; %d of %d changed in empty lines only" % (r["files"] - r["identical"], r["files"])
        if full:
            print("%-44s %9.2f %9.0f %8.2f %10s %8s  %s" % (label, s, n / s, mb / s, rss, cpu, chk))
        else:
            print("%-44s %9.2f %9s %8s %10s %8s  %s" % (label, s, "-", "-", rss, cpu, chk))

    row("mbsync " + res["versions"]["mbsync"].split()[-1], t.get("mbsync"))
    row("offlineimap %s (maxconnections %d)" % (res["versions"]["offlineimap"], res["offlineimap_connections"]),
        t.get("offlineimap"))
    if "mailvault" in t:
        row("mailvault IMAP profile (RunProfile)", t["mailvault"])
        row("mailvault incremental run (nothing new)", t.get("mailvault_rerun"), full=False)
        for key, what in (("mailvault", "first run"), ("mailvault_rerun", "incremental run")):
            result = (t.get(key) or {}).get("result")
            if result:
                print("  mailvault %s: %s" % (what, ", ".join("%s %s" % (k, json.dumps(result.get(k))) for k in (
                    "archived", "alreadyArchived", "refused", "fetched", "deleted", "folders", "warnings"))))
        if "mailvault_folders_as_expected" in res:
            print("  archive folders %s" % ("as the mailbox's (Inbox, Inbox/Lists, Projects, Projects/2019)"
                                            if res["mailvault_folders_as_expected"] else
                                            "DIFFER from the mailbox's: %s" % json.dumps(res["mailvault_folders"])))
    else:
        print("%-44s %s" % ("mailvault IMAP profile", "NOT RUN: " + res.get("mailvault_skipped", "?")))
    mv = t.get("mailvault")
    if mv and mv.get("ok"):
        for peer in ("mbsync", "offlineimap"):
            p = t.get(peer)
            if p:
                # throughput ratio: mailvault msg/s over the peer's (= peer seconds / mailvault seconds)
                print("ratio mailvault/%-12s (throughput)  %.2fx%s"
                      % (peer, p["seconds"] / mv["seconds"], "" if p.get("ok") else "  (peer's copy FAILED its check)"))
        if t.get("mailvault_rerun"):
            print("incremental run: %.2f s (%.1f%% of the first run)"
                  % (t["mailvault_rerun"]["seconds"], 100 * t["mailvault_rerun"]["seconds"] / mv["seconds"]))
    else:
        print("ratios mailvault/mbsync and mailvault/offlineimap: not available (mailvault did not run or failed)")
    print("folders: %s" % ", ".join("%s %d" % kv for kv in res["folders"].items()))
    print("dovecot %s; %s; %s CPUs; load average before %s, after %s"
          % (res["versions"]["dovecot"], res["mailvault_bin"], res["nproc"], " ".join(res["loadavg_before"]),
             " ".join(res.get("loadavg_after", ["?"]))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["run"])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--maildir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--tmp", required=True, help="where Dovecot's and the copies' directories go")
    ap.add_argument("--offlineimap-connections", type=int, default=1)
    ap.add_argument("--invocation", default="")
    ap.add_argument("--keep", action="store_true", help="keep the mailvault data directory")
    a = ap.parse_args()
    os.environ["MAILVAULT_BIN"] = a.bin
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # cleanup in finally, as for Ctrl-C
    import dovecot

    logs = os.path.join(a.out, "logs")
    shutil.rmtree(logs, ignore_errors=True)
    os.makedirs(logs)
    state = os.path.join(a.out, "dovecot.state")
    global TOOL_PGID_FILE
    TOOL_PGID_FILE = os.path.join(a.out, "tool.pgid")
    work = tempfile.mkdtemp(prefix="mv-imap-archive-work-", dir=a.tmp)
    with open(os.path.join(a.out, "work.path"), "w") as f:
        f.write(work + "\n")

    originals = sorted(maildir_files(a.maildir))
    want, total = [], 0
    for p in originals:
        with open(p, "rb") as f:
            raw = f.read()
        total += len(raw)
        want.append((normal_sha(raw), loose_sha(raw)))
    res = {"invocation": a.invocation, "mailvault_bin": a.bin, "maildir": a.maildir, "messages": len(originals),
           "bytes": total, "nproc": os.cpu_count(), "offlineimap_connections": a.offlineimap_connections,
           "loadavg_before": open("/proc/loadavg").read().split()[:3], "tools": {},
           "versions": {"dovecot": version([dovecot.DOVECOT, "--version"]), "mbsync": version(["mbsync", "--version"]),
                        "offlineimap": version(["offlineimap", "--version"])}}
    log("corpus: %d messages, %.1f MB from %s" % (len(originals), total / 1e6, a.maildir))

    def save():
        with open(os.path.join(a.out, "results.json"), "w") as f:
            json.dump(res, f, indent=1)

    dv = None
    data = os.path.join(work, "mailvault")
    try:
        skip = mailvault_prepare(a.bin, data, logs)
        if skip:
            res["mailvault_skipped"] = skip
            log("mailvault part will not run: " + skip)
        dv = start_dovecot(a.tmp, state)
        t0 = time.monotonic()
        res["folders"] = fill_mailbox(dv, originals)
        res["fill_s"] = time.monotonic() - t0
        t0 = time.monotonic()
        res["dovecot_list"] = index_mailbox(dv, res["folders"])
        res["index_s"] = time.monotonic() - t0
        log("dovecot: %s written in %.1f s, indexed in %.1f s (untimed)"
            % (", ".join("%s %d" % kv for kv in res["folders"].items()), res["fill_s"], res["index_s"]))

        near = os.path.join(work, "near")
        rc = os.path.join(work, "mbsyncrc")
        mbsync_rc(rc, dv, near)
        run_peer("mbsync", ["mbsync", "-c", rc, "-a"], near, want, logs, res)
        save()

        rc = os.path.join(work, "offlineimaprc")
        meta = os.path.join(work, "offlineimap-meta")
        shutil.rmtree(meta, ignore_errors=True)
        offlineimap_rc(rc, dv, near, meta, a.offlineimap_connections)
        run_peer("offlineimap", ["offlineimap", "-c", rc, "-o", "-u", "quiet"], near, want, logs, res)
        shutil.rmtree(meta, ignore_errors=True)
        save()

        if not skip:
            mailvault_runs(a.bin, data, dv, len(originals), logs, res)
    finally:
        res["loadavg_after"] = open("/proc/loadavg").read().split()[:3]
        if dv is not None:
            if os.path.exists(dv.log):
                shutil.copyfile(dv.log, os.path.join(logs, "dovecot.log"))
            dv.stop()
        try:
            os.unlink(state)
        except OSError:
            pass
        if a.keep and os.path.isdir(data):
            kept = os.path.join(a.out, "mailvault-data")
            shutil.rmtree(kept, ignore_errors=True)
            shutil.move(data, kept)
            log("kept the mailvault data directory: %s" % kept)
        shutil.rmtree(work, ignore_errors=True)
        save()
    report(res)
    t = res["tools"]
    bad = [k for k, r in t.items() if not r.get("ok")]
    if bad:
        log("checks failed: %s" % ", ".join(bad))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
