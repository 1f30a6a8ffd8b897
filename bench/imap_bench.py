#!/usr/bin/env python3
"""IMAP serving: mailvault's integrated IMAP server beside a private Dovecot
serving the same messages from a Maildir, measured with mbsync pulling
everything into a fresh Maildir.  Used by bench/run_imap.sh (stdlib only).

  imap_bench.py run --bin BIN --corpus NAME MAILDIR ROUNDS [--corpus ...] --out DIR [--idle N]

Per corpus, in order: a fresh mailvault data directory (the Maildir
imported first, the import timed apart from the pulls) and a fresh Dovecot
with a copy of the files.  Per server: one untimed warm-up pull (Dovecot
builds its index files then; mailvault's page cache warms), then ROUNDS
timed pulls alternating which server goes first; each pull is `mbsync -a`
into an empty Maildir over IMAPS on loopback, wall time of the whole
process.  The pulled files are checked against the originals (mbsync's one
X-TUID header line removed) after the warm-up and after the last timed
pull.  Then, on the first corpus only, --idle TLS connections are opened
(and then logged on) to mailvault and its RSS is read, and Dovecot's,
summed over its processes, with as many TLS connections.  Writes
DIR/results.json and prints a table per corpus."""

import argparse
import hashlib
import imaplib
import json
import os
import re
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "system"))

from benchlib import pss_kb, rss_kb  # noqa: E402

TUID_RE = re.compile(rb"^X-TUID: [A-Za-z0-9+/]{12}\r?\n", re.M)


def log(msg):
    print("[imap %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def strip_tuid(raw):
    end = raw.find(b"\n\n")
    m = TUID_RE.search(raw, 0, end + 1 if end >= 0 else len(raw))
    return raw[:m.start()] + raw[m.end():] if m else raw


def maildir_messages(path):
    out = []
    for sub in ("cur", "new"):
        d = os.path.join(path, sub)
        if os.path.isdir(d):
            for f in sorted(os.listdir(d)):
                out.append(os.path.join(d, f))
    return out


def group_rss_kb(pgid, field=rss_kb):
    total = 0
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if os.getpgid(int(p)) == pgid:
                    total += field(int(p)) or 0
            except OSError:
                pass
    return total


def mbsync_conf(path, host, port, user, password, cert, near):
    with open(path, "w") as f:
        f.write("""IMAPAccount far
Host %s
Port %d
User %s
Pass "%s"
SSLType IMAPS
CertificateFile %s
Timeout 600
PipelineDepth 50

IMAPStore far
Account far

MaildirStore near
Path %s/
Inbox %s/INBOX

Channel pull
Far :far:
Near :near:
Patterns INBOX
Create Near
Sync Pull
SyncState *
""" % (host, port, user, password.replace('"', '\\"'), cert, near, near))


def pull(tool, conf, near, logf):
    shutil.rmtree(near, ignore_errors=True)
    os.makedirs(near)
    t0 = time.perf_counter_ns()
    cp = subprocess.run([tool, "-c", conf, "-a"], capture_output=True, timeout=3600)
    wall = (time.perf_counter_ns() - t0) / 1e9
    with open(logf, "ab") as f:
        f.write(cp.stdout + cp.stderr)
    if cp.returncode != 0:
        raise RuntimeError("mbsync exited %d: %s" % (cp.returncode, (cp.stdout + cp.stderr)[-2000:].decode(errors="replace")))
    return wall


def check_pull(near, want_shas):
    files = maildir_messages(os.path.join(near, "INBOX"))
    got = set()
    for p in files:
        with open(p, "rb") as f:
            got.add(hashlib.sha256(strip_tuid(f.read())).hexdigest())
    return len(files), len(got & want_shas), len(want_shas)


def idle_connections(port, ctx, user, password, n, host="127.0.0.1"):
    """n IMAPS connections, logged on when user is given; stops at the first
    refusal (Dovecot limits connections per user and IP, and pre-logon
    processes); returns the open ones."""
    conns = []
    for i in range(n):
        try:
            m = imaplib.IMAP4_SSL(host, port, ssl_context=ctx, timeout=10)
            if user:
                m.login(user, password)
        except Exception as e:  # noqa: BLE001 -- reported as the count reached
            log("connection %d refused or failed: %s" % (i + 1, e))
            break
        conns.append(m)
    return conns


def close_all(conns):
    for m in conns:
        try:
            m.logout()
        except Exception:  # noqa: BLE001 -- closing anyway
            pass


def setup_corpus(a, name, maildir, work, mbsync):
    """Reads the corpus, imports it into a fresh mailvault data directory and
    copies it into a fresh private Dovecot's Maildir; starts both servers.
    Returns (corpus dict, want set, srv, dv, servers)."""
    from mvserver import MvServer, init_with_admin
    import dovecot

    originals = maildir_messages(maildir)
    want = set()
    total_bytes = 0
    for p in originals:
        with open(p, "rb") as f:
            raw = f.read()
        want.add(hashlib.sha256(raw).hexdigest())
        total_bytes += len(raw)
    log("corpus %s: %d messages (%d distinct), %.1f MB from %s"
        % (name, len(originals), len(want), total_bytes / 1e6, maildir))
    c = {"name": name, "maildir": maildir, "messages": len(originals), "distinct": len(want), "bytes": total_bytes}

    # ---- mailvault: import the Maildir (timed on its own, not part of a pull)
    data = os.path.join(work, "mailvault")
    pw = init_with_admin(data)
    load0 = open("/proc/loadavg").read().split()[:3]
    t0 = time.monotonic()
    cp = subprocess.run([a.bin, "--data-dir", data, "import", maildir, "--archive", "admin", "--json", "--quiet"],
                        capture_output=True, timeout=7200)
    c["import_s"] = time.monotonic() - t0
    c["import_loadavg_before"] = load0
    if cp.returncode not in (0, 3):
        sys.exit("mailvault import failed: %s" % cp.stderr.decode(errors="replace")[-2000:])
    c["imported"] = json.loads(cp.stdout)["imported"]
    log("mailvault: imported %d messages in %.1f s (reported apart from the pulls)" % (c["imported"], c["import_s"]))
    # ---- Dovecot: the same files in its user's Maildir INBOX (dovecot.start()
    # is for pytest; the same steps here without it)
    if not os.path.exists(dovecot.DOVECOT):
        sys.exit("dovecot is not installed (Debian package dovecot-imapd): tools/deps.sh test")
    if os.getuid() == 0:
        dv_root = tempfile.mkdtemp(prefix="mv-bench-dovecot-")
        os.chmod(dv_root, 0o755)
    else:
        dv_root = os.path.join(work, "dovecot")
        os.makedirs(dv_root)
    dv = dovecot.Dovecot(dv_root, os.getuid() == 0).start()
    srv = MvServer(data, password=pw)
    try:
        srv.start()
    except BaseException:
        dv.stop()
        raise
    try:
        t0 = time.monotonic()
        cur = os.path.join(dv.maildir, "cur")
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(dv.maildir, sub), exist_ok=True)
        for p in originals:
            shutil.copyfile(p, os.path.join(cur, os.path.basename(p)))
        if os.getuid() == 0:
            st = os.stat(os.path.join(dv.root, "mail"))
            for dirpath, dirs, files in os.walk(os.path.join(dv.root, "mail")):
                for x in dirs + files:
                    os.chown(os.path.join(dirpath, x), st.st_uid, st.st_gid)
        c["dovecot_copy_s"] = time.monotonic() - t0
        log("dovecot: %d files copied into its Maildir in %.1f s" % (len(originals), c["dovecot_copy_s"]))
    except BaseException:
        srv.stop()
        dv.stop()
        raise
    servers = {
        # mbsync 1.4 does not match an IP address against a CA certificate's
        # IP entries; Dovecot's certificate (dovecot.py) is one, so it is
        # reached by the name "localhost" (its CN and DNS entry, 127.0.0.1 here)
        "mailvault": dict(host="127.0.0.1", port=srv.imaps_port, user="admin", pw=pw, cert=srv.cert_path()),
        "dovecot": dict(host="localhost", port=dv.tls_port, user=dv.user, pw=dv.password, cert=dv.cert),
    }
    for sname, sv in servers.items():
        conf = os.path.join(work, "mbsyncrc-" + sname)
        mbsync_conf(conf, sv["host"], sv["port"], sv["user"], sv["pw"], sv["cert"], os.path.join(work, "near-" + sname))
        sv["conf"] = conf
    return c, want, srv, dv, servers


def run_pulls(c, want, servers, rounds, work, logs, mbsync):
    n_msgs = c["messages"]
    c["rounds"] = rounds
    c["loadavg_before_pulls"] = open("/proc/loadavg").read().split()[:3]
    pulls = c["pulls"] = {}
    for name in servers:
        near = os.path.join(work, "near-" + name)
        wall = pull(mbsync, servers[name]["conf"], near, os.path.join(logs, "mbsync-%s-%s.log" % (c["name"], name)))
        n, ok, of = check_pull(near, want)
        log("%s %s: warm-up pull %.2f s; %d files, %d of %d originals identical" % (c["name"], name, wall, n, ok, of))
        pulls[name] = {"warmup_s": wall, "files": n, "identical": ok, "times_s": [], "loadavg_after": []}
    for r in range(rounds):
        order = list(servers) if r % 2 == 0 else list(reversed(list(servers)))
        for name in order:
            near = os.path.join(work, "near-" + name)
            wall = pull(mbsync, servers[name]["conf"], near,
                        os.path.join(logs, "mbsync-%s-%s.log" % (c["name"], name)))
            pulls[name]["times_s"].append(wall)
            pulls[name]["loadavg_after"].append(open("/proc/loadavg").read().split()[0])
            log("%s round %d/%d: %s %.2f s (%.0f msgs/s)" % (c["name"], r + 1, rounds, name, wall, n_msgs / wall))
    for name in servers:
        p = pulls[name]
        p["median_s"] = statistics.median(p["times_s"])
        p["msgs_per_s"] = n_msgs / p["median_s"]
        p["mb_per_s"] = c["bytes"] / 1e6 / p["median_s"]
    for name in servers:
        # the last timed pull checked too, not only the warm-up
        n, ok, of = check_pull(os.path.join(work, "near-" + name), want)
        pulls[name]["last_files"] = n
        pulls[name]["last_identical"] = ok
    c["loadavg_after_pulls"] = open("/proc/loadavg").read().split()[:3]


def idle_rss(a, srv, dv, pw):
    """RSS with idle connections: TLS only (not logged on) for both servers,
    and logged on for mailvault (Dovecot allows 10 per user and IP)."""
    mv_ctx = ssl.create_default_context(cafile=srv.cert_path())
    dv_ctx = dv.ssl_context()
    idle = {"wanted": a.idle}
    for label, user in (("tls", None), ("logged_on", "admin")):
        base = srv.rss_kb()
        t0 = time.monotonic()
        conns = idle_connections(srv.imaps_port, mv_ctx, user, pw, a.idle)
        opened = time.monotonic() - t0
        time.sleep(2)
        idle["mailvault_" + label] = {"connections": len(conns), "rss_kb_before": base,
                                      "rss_kb": srv.rss_kb(), "open_s": opened}
        close_all(conns)
        time.sleep(1)
        log("mailvault RSS %s: %d kB, with %d connections %d kB; opened in %.1f s"
            % (label, base, len(conns), idle["mailvault_" + label]["rss_kb"], opened))
    dv_base = group_rss_kb(dv.proc.pid)
    dv_base_pss = group_rss_kb(dv.proc.pid, pss_kb)
    t0 = time.monotonic()
    conns = idle_connections(dv.tls_port, dv_ctx, None, None, a.idle, host="localhost")
    opened = time.monotonic() - t0
    time.sleep(2)
    idle["dovecot_tls"] = {"connections": len(conns), "rss_kb_before": dv_base, "rss_kb": group_rss_kb(dv.proc.pid),
                           "pss_kb_before": dv_base_pss, "pss_kb": group_rss_kb(dv.proc.pid, pss_kb), "open_s": opened}
    close_all(conns)
    log("dovecot RSS tls (all its processes): %d kB, with %d connections %d kB (PSS %d -> %d kB); opened in %.1f s"
        % (dv_base, len(conns), idle["dovecot_tls"]["rss_kb"], dv_base_pss, idle["dovecot_tls"]["pss_kb"], opened))
    return idle


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["run"])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--corpus", nargs=3, action="append", required=True, metavar=("NAME", "MAILDIR", "ROUNDS"),
                    help="a corpus to serve and pull, in order; repeatable")
    ap.add_argument("--out", required=True)
    ap.add_argument("--idle", type=int, default=500)
    ap.add_argument("--invocation", default="")
    a = ap.parse_args()
    os.environ["MAILVAULT_BIN"] = a.bin
    import dovecot   # after MAILVAULT_BIN is set (mvserver reads it)

    mbsync = shutil.which("mbsync")
    if not mbsync:
        sys.exit("mbsync is needed (Debian package isync): tools/deps.sh test")
    work_root = os.path.join(a.out, "work")
    shutil.rmtree(work_root, ignore_errors=True)
    os.makedirs(work_root)
    logs = os.path.join(work_root, "logs")
    os.makedirs(logs)

    results = {"mailvault_bin": a.bin, "invocation": a.invocation,
               "dovecot_version": subprocess.run([dovecot.DOVECOT, "--version"], capture_output=True).stdout.decode().strip(),
               "mbsync_version": subprocess.run([mbsync, "--version"], capture_output=True).stdout.decode().strip(),
               "loadavg_before": open("/proc/loadavg").read().split()[:3], "nproc": os.cpu_count(), "corpora": []}

    def save():
        with open(os.path.join(a.out, "results.json"), "w") as f:
            json.dump(results, f, indent=1)

    try:
        for i, (name, maildir, rounds) in enumerate(a.corpus):
            work = os.path.join(work_root, name)
            os.makedirs(work)
            c, want, srv, dv, servers = setup_corpus(a, name, maildir, work, mbsync)
            results["corpora"].append(c)
            try:
                run_pulls(c, want, servers, int(rounds), work, logs, mbsync)
                c["rss_kb_after_pulls"] = {"mailvault": srv.rss_kb(), "dovecot": group_rss_kb(dv.proc.pid)}
                if i == 0 and a.idle > 0:
                    # once per run, on the first corpus
                    results["idle"] = idle_rss(a, srv, dv, servers["mailvault"]["pw"])
                    results["idle"]["corpus"] = name
            finally:
                srv.stop()
                dv.stop()
                save()
            # the copies are large for a generated corpus; the logs stay
            for sub in ("near-mailvault", "near-dovecot", "mailvault", "dovecot"):
                shutil.rmtree(os.path.join(work, sub), ignore_errors=True)
    finally:
        results["loadavg_after"] = open("/proc/loadavg").read().split()[:3]
        save()
    report(results)


def report(r):
    for c in r["corpora"]:
        if "pulls" not in c or "median_s" not in c["pulls"].get("dovecot", {}):
            continue
        mv, dv = c["pulls"]["mailvault"], c["pulls"]["dovecot"]
        print()
        print("IMAP pull with mbsync (%s), corpus %s: %d messages, %.1f MB, median of %d timed pull(s) after a warm-up:"
              % (r["mbsync_version"], c["name"], c["messages"], c["bytes"] / 1e6, c["rounds"]))
        print("  %-10s %9s %10s %9s   %-30s %s" % ("server", "seconds", "msgs/s", "MB/s", "pulls (s)",
                                                  "identical to the originals (warm-up, last)"))
        for name, p in (("mailvault", mv), ("dovecot", dv)):
            print("  %-10s %9.2f %10.0f %9.1f   %-30s %d, %d of %d" % (
                name, p["median_s"], p["msgs_per_s"], p["mb_per_s"],
                ", ".join("%.1f" % t for t in p["times_s"]), p["identical"], p["last_identical"], c["distinct"]))
        print("  ratio mailvault/Dovecot (msgs/s): %.2f" % (mv["msgs_per_s"] / dv["msgs_per_s"]))
        print("  mailvault import (not in the pulls): %.1f s, %.0f msgs/s; load average before pulls %s, after %s"
              % (c["import_s"], c["imported"] / c["import_s"], " ".join(c["loadavg_before_pulls"]),
                 " ".join(c["loadavg_after_pulls"])))
        rss = c.get("rss_kb_after_pulls")
        if rss:
            print("  RSS after the pulls: mailvault %.1f MB, Dovecot (all processes) %.1f MB"
                  % (rss["mailvault"] / 1024, rss["dovecot"] / 1024))
    idle = r.get("idle", {})
    if idle:
        print()
        print("Idle connections (corpus %s):" % idle.get("corpus"))
    for key, what in (("mailvault_tls", "mailvault, TLS connected, not logged on"),
                      ("mailvault_logged_on", "mailvault, logged on"),
                      ("dovecot_tls", "Dovecot (sum of its processes), TLS connected, not logged on")):
        i = idle.get(key)
        if i and i["connections"]:
            print("  %s: %d connections: RSS %.1f MB -> %.1f MB (%.1f kB per connection); opened in %.1f s"
                  % (what, i["connections"], i["rss_kb_before"] / 1024, i["rss_kb"] / 1024,
                     (i["rss_kb"] - i["rss_kb_before"]) / i["connections"], i.get("open_s", 0)))
            if "pss_kb" in i:
                print("    PSS (shared pages divided among its processes): %.1f MB -> %.1f MB (%.1f kB per connection)"
                      % (i["pss_kb_before"] / 1024, i["pss_kb"] / 1024,
                         (i["pss_kb"] - i["pss_kb_before"]) / i["connections"]))
    print("Dovecot %s; mailvault %s; %d CPUs; load average before %s, after %s"
          % (r["dovecot_version"], r["mailvault_bin"], r["nproc"], " ".join(r["loadavg_before"]),
             " ".join(r.get("loadavg_after", ["?"]))))


if __name__ == "__main__":
    main()
