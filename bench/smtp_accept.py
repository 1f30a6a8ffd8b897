#!/usr/bin/env python3
"""Accepting mail over SMTP/LMTP: mailvault's SMTP endpoint (issue 13) beside
Debian's Postfix accepting into its own queue and Dovecot's LMTP delivering
into a Maildir, each loaded by Postfix's smtp-source in the same run.  Used by
bench/run_smtp_accept.sh (stdlib only).

  smtp_accept.py run --bin BIN --out DIR --tmp DIR [--messages N] [--sessions S]
                     [--size BYTES] [--targets postfix,dovecot,mailvault] [--rounds R]
                     [--invocation TEXT] [--keep]

--rounds R runs the targets R times, interleaved (P D M P D M ...), and shows
for each the round of median msg/s, with every round's msg/s and p99: for a
machine where other work comes and goes.  Before each target the previous
one's writes are synced and the machine must be idle (below 15% CPU for a
second; else, after a minute, the run goes on and the table warns).

The load, the same for every target: `smtp-source -d -s S -m N -l BYTES -f
sender@example.net -t bench@example.org` (SMTP; `-L` for LMTP): S sessions
(default 20) kept open (-d: one connection carries many messages, as an MTA
relaying to an archive does), N messages (default 100,000) in all, no
pipelining (smtp-source has none).  Each message is smtp-source's own: From,
To, Date and a Message-Id unique within the run (pid.fd.counter), then BYTES
(default 10240) of payload in 80-column lines ("1XXXX...").  That payload is
not realistic text: smtp-source can send a real message (-F FILE) but then
every message is byte-identical, and an archive that keeps one copy per
content hash (mailvault does) would store one message and acknowledge the
rest as duplicates, which measures nothing.  So the -l filler it is; it
compresses ~100:1 and has almost no words to index, which flatters mailvault
(it compresses and indexes, the peers do neither) — read its figure as an
upper bound for 10 KB messages.

Targets, each fresh, started by this script in a directory of its own under
--tmp, on 127.0.0.1:
  postfix    Debian's Postfix (`postfix -c DIR start-fg`): its own main.cf and
             master.cf (smtpd, cleanup, ... no chroot), queue_directory in DIR,
             mynetworks 127.0.0.0/8, log to DIR/maillog through postlogd.
             `smtpd_recipient_restrictions = check_client_access static:HOLD, ...`
             puts every accepted message in the hold queue: cleanup writes and
             fsyncs the queue file before smtpd says 250, as always, and the
             queue manager never picks it up (nothing is delivered or deferred,
             so no delivery work runs beside the accepting).
  dovecot    Dovecot's LMTP (dovecot-lmtpd, `dovecot -F -c DIR/dovecot.conf`),
             static userdb (every recipient a user), mail_location
             maildir:DIR/mail/%u, mail_fsync = optimized (Dovecot's default: the
             message file is fsync'd before the reply).  smtp-source speaks LMTP.
  mailvault  `mailvault serve --smtp-listen 127.0.0.1:P --no-web --no-imap` on a
             fresh data directory (init; user "bench" with address
             bench@example.org, so routing files every message into archive
             bench, folder Inbox); DATA/mailvault.conf [smtp] enabled,
             allow_networks 127.0.0.0/8.  A message is acknowledged once it is
             fsync'd in the archive (spec).

Measured per target:
  wall, msg/s    smtp-source's wall time, start to exit; msg/s = N / wall
  latency        a sampler in this process keeps one more connection busy for
                 the whole of smtp-source's run, sending messages of the same
                 shape back to back, and times each from the moment the final
                 ".<CRLF>" is handed to the kernel to the whole 250 reply;
                 p50/p99 over its messages (it sends S+1'th of the load)
  memory         every second from /proc: mailvault serve's VmRSS (one process);
                 for the peers the sum of PSS over all their processes
                 (smaps_rollup), since they are many processes sharing pages;
                 the value before the load, the maximum, the value at its end
  server CPU     user+system seconds of the server's processes during the load
                 (live processes plus what the leader reaped: Postfix's and
                 Dovecot's daemons are children of their master)
  settle         after smtp-source exits, seconds until the server's CPU use is
                 below 5% for a second (work left over after the replies, such
                 as indexing behind the acknowledgement)
  check          the target holds exactly N + sampler messages: Postfix's hold
                 queue files (and nothing left in incoming/active/maildrop),
                 Dovecot's Maildir files, mailvault's `folders --json bench`
                 (archive bench, folder Inbox; no other folder holds any) and
                 `cmd GetStores` (messages in all stores), after a clean stop.
If the binary has no SMTP endpoint yet (`serve --help` does not list
--smtp-listen) the mailvault row says so and the peers' figures still print.

Writes OUT/results.json, OUT/logs/, and OUT/state/NAME files ("PGID ROOT":
the process group of a running server or of smtp-source, and the directory
to remove) that run_smtp_accept.sh's trap uses if this process dies without
its own cleanup."""

import argparse
import grp
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from benchlib import proc_stat_fields, pss_kb, rss_kb

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "system"))
from postfix import MASTER_CF, free_port  # noqa: E402  (the Postfix the system tests configure)

SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
SENDER = "sender@example.net"
RCPT = "bench@example.org"
MV_USER = "bench"
TIMEOUT = 6 * 3600
STATE_DIR = None


def log(msg):
    print("[smtp-accept %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def version(argv):
    try:
        cp = subprocess.run(argv, capture_output=True, timeout=30)
        return (cp.stdout + cp.stderr).decode(errors="replace").strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "?"


def set_state(name, pgid, root):
    with open(os.path.join(STATE_DIR, name), "w") as f:
        f.write("%d %s\n" % (pgid, root))


def clear_state(name):
    try:
        os.unlink(os.path.join(STATE_DIR, name))
    except OSError:
        pass


def wait_banner(port, proc, what, timeout=60, code=b"220"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("%s exited with %s before it listened" % (what, proc.returncode))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                if s.recv(512).startswith(code):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("%s did not answer on port %d within %d s" % (what, port, timeout))


# ---------------------------------------------------------------- /proc

def session_pids(sid):
    """pids (not zombies) whose session is sid."""
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            fields = proc_stat_fields(int(p))
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            out.append(int(p))
    return out


def cpu_s(leader, sid):
    """user+system seconds of the session's live processes, plus the
    children the leader has reaped."""
    tck = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in session_pids(sid):
        try:
            f = proc_stat_fields(pid)
        except OSError:
            continue
        total += int(f[11]) + int(f[12])          # utime, stime
        if pid == leader:
            total += int(f[13]) + int(f[14])      # cutime, cstime
    return total / tck


def machine_busy():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


class MemSampler(threading.Thread):
    """Every second: the server's memory (mailvault: VmRSS of its one process;
    peers: sum of PSS over the session's processes)."""

    def __init__(self, target):
        super().__init__(daemon=True)
        self.t = target
        self.samples = []          # (seconds since start, kB)
        self.stop_ev = threading.Event()
        self.t0 = time.monotonic()

    def read(self):
        if self.t.single_process:
            return rss_kb(self.t.leader)
        return sum(pss_kb(p) for p in session_pids(self.t.sid))

    def run(self):
        while not self.stop_ev.is_set():
            kb = self.read()
            if kb is not None:
                self.samples.append((round(time.monotonic() - self.t0, 1), kb))
            self.stop_ev.wait(1.0)


# ---------------------------------------------------------------- the latency sampler

def message(i, size, tag):
    """A message shaped like smtp-source's: four header lines, then size bytes
    of 80-column filler; a Message-Id of its own."""
    hdr = ("From: <%s>\r\nTo: <%s>\r\nDate: %s\r\nMessage-Id: <%s.%d.%d@sampler.bench>\r\n\r\n"
           % (SENDER, RCPT, time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()), tag, os.getpid(), i))
    lines, left, k = [], size, 1
    while left > 0:
        n = min(78, left)
        lines.append((str(k % 10) + "X" * 77)[:n] + "\r\n")
        left -= n + 2
        k += 1
    return (hdr + "".join(lines)).encode()


class LatencySampler(threading.Thread):
    """One connection: MAIL, RCPT, DATA, body, then time from the final
    ".<CRLF>" to the reply, back to back until stopped."""

    def __init__(self, port, lmtp, size, tag):
        super().__init__(daemon=True)
        self.port, self.lmtp, self.size, self.tag = port, lmtp, size, tag
        self.stop_ev = threading.Event()
        self.latencies = []
        self.error = None

    def _reply(self, f):
        lines = []
        while True:
            line = f.readline()
            if not line:
                raise RuntimeError("connection closed (after %r)" % lines)
            lines.append(line.decode(errors="replace").rstrip())
            if len(line) < 4 or line[3:4] != b"-":
                return int(line[:3]), lines

    def _cmd(self, s, f, line, want):
        s.sendall(line.encode() + b"\r\n")
        code, lines = self._reply(f)
        if code // 100 != want:
            raise RuntimeError("%s -> %s" % (line, " / ".join(lines)))

    def run(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=120) as s:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                f = s.makefile("rb")
                code, lines = self._reply(f)
                if code != 220:
                    raise RuntimeError("greeting: %s" % lines)
                self._cmd(s, f, ("LHLO" if self.lmtp else "EHLO") + " sampler.bench", 2)
                i = 0
                while not self.stop_ev.is_set():
                    i += 1
                    body = message(i, self.size, self.tag)
                    self._cmd(s, f, "MAIL FROM:<%s>" % SENDER, 2)
                    self._cmd(s, f, "RCPT TO:<%s>" % RCPT, 2)
                    self._cmd(s, f, "DATA", 3)
                    s.sendall(body)
                    t0 = time.perf_counter()
                    s.sendall(b".\r\n")
                    code, lines = self._reply(f)   # one RCPT: one reply, SMTP and LMTP alike
                    dt = time.perf_counter() - t0
                    if code != 250:
                        raise RuntimeError("end of DATA -> %s" % " / ".join(lines))
                    self.latencies.append(dt)
                try:
                    self._cmd(s, f, "QUIT", 2)
                except (OSError, RuntimeError):
                    pass
        except Exception as e:   # reported in the results, the run goes on
            self.error = "%s: %s" % (type(e).__name__, e)


def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    k = max(0, min(len(xs) - 1, int(round(p / 100.0 * len(xs) + 0.5)) - 1))
    return xs[k]


# ---------------------------------------------------------------- targets

class Target:
    name = "?"
    lmtp = False
    single_process = False

    def __init__(self, tmp, logs):
        self.tmp, self.logs = tmp, logs
        self.root = tempfile.mkdtemp(prefix="mv-smtp-accept-%s-" % self.name, dir=tmp)
        os.chmod(self.root, 0o755)
        set_state(self.name, 0, self.root)
        self.port = free_port()
        self.proc = None
        self.leader = self.sid = None

    def started(self, leader):
        self.leader = leader
        self.sid = int(proc_stat_fields(leader)[3])
        set_state(self.name, self.sid, self.root)

    def kill_group(self):
        if self.sid:
            try:
                os.killpg(self.sid, signal.SIGKILL)
            except OSError:
                pass
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()

    def wait_gone(self, timeout=30):
        deadline = time.monotonic() + timeout
        while self.sid and session_pids(self.sid) and time.monotonic() < deadline:
            time.sleep(0.1)

    def remove(self):
        shutil.rmtree(self.root, ignore_errors=True)
        clear_state(self.name)   # after: the trap still removes the directory if this is cut short


class Postfix(Target):
    name = "postfix"

    def start(self):
        r = self.root
        self.etc, self.queue = os.path.join(r, "etc"), os.path.join(r, "queue")
        for d in ("etc", "queue", "data"):
            os.makedirs(os.path.join(r, d))
        pw = pwd.getpwnam("postfix")
        os.chown(os.path.join(r, "data"), pw.pw_uid, pw.pw_gid)
        self.maillog = os.path.join(r, "maillog")
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write("""compatibility_level = 3.6
queue_directory = {r}/queue
data_directory = {r}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = bench.localdomain
mydomain = localdomain
myorigin = $myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
relay_domains =
local_recipient_maps =
mynetworks = 127.0.0.0/8
maillog_file_prefixes = {r}
maillog_file = {r}/maillog
# accepted into the hold queue: fsync'd before the 250, never delivered
smtpd_recipient_restrictions = check_client_access static:HOLD, permit_mynetworks, reject
smtpd_relay_restrictions = permit_mynetworks, reject
""".format(r=r))
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(port=self.port))
        # `postfix check` makes the queue directories with Postfix's owners and modes
        cp = subprocess.run([POSTFIX, "-c", self.etc, "check"], capture_output=True, timeout=120)
        if cp.returncode != 0:
            raise RuntimeError("postfix check failed (exit %d): %s" % (cp.returncode, self._tail()))
        self.proc = subprocess.Popen([POSTFIX, "-c", self.etc, "start-fg"], stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.logs, "postfix.stderr"), "ab"),
                                     start_new_session=True)
        set_state(self.name, self.proc.pid, self.root)
        pidfile = os.path.join(self.queue, "pid", "master.pid")
        wait_banner(self.port, self.proc, "postfix")
        with open(pidfile) as f:
            self.started(int(f.read().split()[0]))

    def _tail(self):
        try:
            with open(self.maillog, "rb") as f:
                return f.read()[-2000:].decode(errors="replace")
        except OSError:
            return "(no maillog)"

    def stop(self):
        subprocess.run([POSTFIX, "-c", self.etc, "stop"], capture_output=True, timeout=120)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.kill_group()
        self.wait_gone()
        if os.path.exists(self.maillog):
            shutil.copyfile(self.maillog, os.path.join(self.logs, "postfix.maillog"))

    def count(self):
        held = sum(len(fs) for _, _, fs in os.walk(os.path.join(self.queue, "hold")))
        other = {q: sum(len(fs) for _, _, fs in os.walk(os.path.join(self.queue, q)))
                 for q in ("incoming", "active", "deferred", "maildrop", "corrupt")}
        other = {q: n for q, n in other.items() if n}
        return held, ("; other queues: %s" % other) if other else ""


class Dovecot(Target):
    name = "dovecot"
    lmtp = True

    def start(self):
        r = self.root
        for d in ("run", "state", "mail"):
            os.makedirs(os.path.join(r, d))
        if os.getuid() == 0:
            # Dovecot delivers as no uid 0: the mail user is dovecot's
            u = pwd.getpwnam("dovecot")
            uid, gid, user, group = u.pw_uid, u.pw_gid, "dovecot", grp.getgrgid(u.pw_gid).gr_name
            login = "dovenull"
            try:
                pwd.getpwnam(login)
            except KeyError:
                login = "dovecot"
            os.chown(os.path.join(r, "mail"), uid, gid)
        else:
            uid, gid = os.getuid(), os.getgid()
            user, group = pwd.getpwuid(uid).pw_name, grp.getgrgid(gid).gr_name
            login = user
        self.maildir = os.path.join(r, "mail", RCPT)
        self.log = os.path.join(r, "dovecot.log")
        self.conf = os.path.join(r, "dovecot.conf")
        with open(self.conf, "w") as f:
            f.write("""base_dir = {r}/run
state_dir = {r}/state
log_path = {r}/dovecot.log
info_log_path = {r}/dovecot.log
protocols = lmtp
listen = 127.0.0.1
ssl = no
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {login}
first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = {gid}
last_valid_gid = {gid}
mail_location = maildir:{r}/mail/%u
# Dovecot's default, written out: the message file is fsync'd before the reply
mail_fsync = optimized
passdb {{
  driver = static
  args = nopassword=y
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={r}/mail/%u allow_all_users=yes
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  chroot =
}}
""".format(r=r, uid=uid, gid=gid, user=user, group=group, login=login, port=self.port))
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", self.conf], stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.logs, "dovecot.stderr"), "ab"),
                                     start_new_session=True)
        set_state(self.name, self.proc.pid, self.root)
        wait_banner(self.port, self.proc, "dovecot")
        self.started(self.proc.pid)

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill_group()
        self.wait_gone()
        if os.path.exists(self.log):
            shutil.copyfile(self.log, os.path.join(self.logs, "dovecot.log"))

    def count(self):
        n = 0
        for sub in ("new", "cur"):
            d = os.path.join(self.maildir, sub)
            if os.path.isdir(d):
                n += len(os.listdir(d))
        tmpd = os.path.join(self.maildir, "tmp")
        left = len(os.listdir(tmpd)) if os.path.isdir(tmpd) else 0
        return n, ("; %d files left in tmp/" % left) if left else ""


class Mailvault(Target):
    name = "mailvault"
    single_process = True

    def __init__(self, tmp, logs, binary):
        super().__init__(tmp, logs)
        self.bin = binary
        self.data = os.path.join(self.root, "data")

    def mv(self, *args, timeout=600):
        cp = subprocess.run([self.bin, "--data-dir", self.data] + list(args), capture_output=True, timeout=timeout)
        with open(os.path.join(self.logs, "mailvault-cli.log"), "ab") as f:
            f.write(b"$ mailvault " + " ".join(args).encode() + b"\n" + cp.stdout[-4000:] + cp.stderr[-4000:])
        return cp

    def cmd_ok(self, function, **args):
        cp = self.mv("cmd", function, *["--%s=%s" % kv for kv in args.items()])
        try:
            env = json.loads(cp.stdout)
        except ValueError:
            env = {}
        if env.get("statusCode") != "succeeded":
            raise RuntimeError("mailvault cmd %s failed: %s" % (function, (cp.stdout + cp.stderr)[-600:]))
        return env.get("result")

    def start(self):
        cp = self.mv("init")
        if cp.returncode != 0:
            raise RuntimeError("mailvault init failed: %s" % cp.stderr[-600:].decode(errors="replace"))
        self.cmd_ok("CreateUser", userName=MV_USER, privileges="login,archive", password="Bench-pw-%d-x" % os.getpid())
        self.cmd_ok("SetUserEmailAddresses", userName=MV_USER, emailAddresses=RCPT)
        conf = os.path.join(self.data, "mailvault.conf")
        with open(conf, "a") as f:
            f.write("\n[smtp]\nenabled=true\nlisten=127.0.0.1:%d\nallow_networks=127.0.0.0/8;::1/128\n" % self.port)
        self.out = os.path.join(self.logs, "mailvault-serve.out")
        self.err = os.path.join(self.logs, "mailvault-serve.err")
        self.proc = subprocess.Popen(
            [self.bin, "--data-dir", self.data, "serve", "--listen", "127.0.0.1:%d" % free_port(),
             "--no-web", "--no-imap", "--smtp-listen", "127.0.0.1:%d" % self.port],
            stdout=open(self.out, "ab"), stderr=open(self.err, "ab"), start_new_session=True)
        set_state(self.name, self.proc.pid, self.root)
        deadline = time.monotonic() + 120
        while "serving (pid %d)" % self.proc.pid not in open(self.out, errors="replace").read():
            if self.proc.poll() is not None:
                raise RuntimeError("mailvault serve exited with %s: %s" % (
                    self.proc.returncode, open(self.err, errors="replace").read()[-1500:]))
            if time.monotonic() > deadline:
                raise RuntimeError("mailvault serve did not come up")
            time.sleep(0.1)
        wait_banner(self.port, self.proc, "mailvault serve")
        self.started(self.proc.pid)

    def stop(self):
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=600)
            except subprocess.TimeoutExpired:
                self.kill_group()
        self.stop_s = time.monotonic() - t0
        self.exit_code = self.proc.returncode
        self.wait_gone()

    def count(self):
        note = ""
        if self.exit_code != 0:
            note += "; serve exited with %s on SIGTERM" % self.exit_code
        cp = self.mv("folders", "--json")
        inbox = None
        try:
            folders = {"%s/%s" % (f["archive"], f["folder"]): f["count"] for f in json.loads(cp.stdout)}
            inbox = folders.get(MV_USER + "/Inbox")
            extra = {k: v for k, v in folders.items() if k != MV_USER + "/Inbox" and v}
            if extra:
                note += "; other folders: %s" % extra
        except (ValueError, KeyError, TypeError):
            note += "; folders --json failed: %s" % (cp.stdout + cp.stderr)[-300:].decode(errors="replace")
        try:
            stores = self.cmd_ok("GetStores")
            total = sum(((s.get("size") or {}).get("messages") or 0) for s in stores)
            note += "; stores hold %d messages" % total
            self.store_total = total
        except RuntimeError as e:
            note += "; %s" % e
            self.store_total = None
        return inbox, note


def has_smtp(binary):
    try:
        cp = subprocess.run([binary, "serve", "--help"], capture_output=True, timeout=60)
    except OSError as e:
        return "%s: %s" % (binary, e)
    if b"--smtp-listen" not in cp.stdout + cp.stderr:
        return "%s has no SMTP endpoint yet (serve --help lists no --smtp-listen)" % binary
    return None


# ---------------------------------------------------------------- one run

def quiesce():
    """Before a target: the previous one's dirty pages written out (sync) and
    the machine idle (below 15% CPU for a second, at most a minute), so no
    target pays for the one before it."""
    t0 = time.monotonic()
    os.sync()
    while time.monotonic() - t0 < 60:
        b0 = machine_busy()
        time.sleep(1.0)
        b1 = machine_busy()
        if (b1[0] - b0[0]) < 0.15 * max(1, b1[1] - b0[1]):
            return time.monotonic() - t0, True
    return time.monotonic() - t0, False


def run_target(t, a, logs):
    r = {"target": t.name}
    waited, idle = quiesce()
    r["machine_idle_before"] = idle
    log("%s: sync and wait for an idle machine: %.1f s%s"
        % (t.name, waited, "" if idle else " -- NOT IDLE after a minute: something else is running, figures are noisy"))
    log("%s: starting (load average %s)" % (t.name, " ".join(open("/proc/loadavg").read().split()[:3])))
    try:
        t.start()
    except Exception as e:
        r["error"] = "did not start: %s" % e
        log("%s: %s" % (t.name, r["error"]))
        t.kill_group()
        return r
    try:
        mem = MemSampler(t)
        mem.start()
        time.sleep(1.5)             # a value or two before the load
        argv = [SMTP_SOURCE] + (["-L"] if t.lmtp else []) + [
            "-d", "-s", str(a.sessions), "-m", str(a.messages), "-l", str(a.size),
            "-f", SENDER, "-t", RCPT, "-M", "source.bench", "127.0.0.1:%d" % t.port]
        r["argv"] = " ".join(argv)
        samp = LatencySampler(t.port, t.lmtp, a.size, "%s-sampler" % t.name)
        busy0 = machine_busy()
        cpu0 = cpu_s(t.leader, t.sid)
        mem_before = mem.samples[-1][1] if mem.samples else None
        log("%s: %s" % (t.name, r["argv"]))
        errf = os.path.join(logs, "smtp-source-%s.err" % t.name)
        t0 = time.perf_counter()
        with open(errf, "wb") as err:
            src = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
            set_state("smtp-source", src.pid, "-")
            samp.start()
            try:
                rc = src.wait(timeout=TIMEOUT)
            except BaseException:
                os.killpg(src.pid, signal.SIGKILL)
                src.wait()
                raise
            finally:
                clear_state("smtp-source")
        wall = time.perf_counter() - t0
        samp.stop_ev.set()
        busy1 = machine_busy()
        cpu1 = cpu_s(t.leader, t.sid)
        mem_end = mem.read()
        samp.join(timeout=300)
        # settle: the server's CPU below 5% for a whole second
        t1 = time.monotonic()
        last = cpu_s(t.leader, t.sid)
        while time.monotonic() - t1 < 600:
            time.sleep(1.0)
            now = cpu_s(t.leader, t.sid)
            if now - last < 0.05:
                break
            last = now
        settle = time.monotonic() - t1 - 1.0
        mem.stop_ev.set()
        mem.join()
        errtext = open(errf, "rb").read().decode(errors="replace").strip()
        lat = samp.latencies
        r.update(rc=rc, seconds=wall, msg_per_s=a.messages / wall, smtp_source_stderr=errtext[-2000:],
                 sampler_messages=len(lat), sampler_error=samp.error,
                 p50_ms=pct(lat, 50) and pct(lat, 50) * 1000, p99_ms=pct(lat, 99) and pct(lat, 99) * 1000,
                 max_ms=max(lat) * 1000 if lat else None,
                 server_cpu_s=cpu1 - cpu0, machine_busy_pct=100.0 * (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1]),
                 settle_s=max(0.0, settle), mem_kind="VmRSS" if t.single_process else "sum of PSS",
                 mem_before_kb=mem_before, mem_max_kb=max((kb for _, kb in mem.samples), default=None),
                 mem_end_kb=mem_end, mem_samples=mem.samples)
        log("%s: %d messages in %.2f s = %.0f msg/s (smtp-source exit %d%s); sampler %d messages, p50 %s ms, "
            "p99 %s ms%s; server CPU %.1f s; settle %.1f s"
            % (t.name, a.messages, wall, a.messages / wall, rc, ", stderr: " + errtext[-300:] if errtext else "",
               len(lat), r["p50_ms"] and round(r["p50_ms"], 2), r["p99_ms"] and round(r["p99_ms"], 2),
               ", sampler error: " + samp.error if samp.error else "", r["server_cpu_s"], r["settle_s"]))
    finally:
        t.stop()
    if "rc" in r:
        want = a.messages + r["sampler_messages"]
        try:
            got, note = t.count()
        except Exception as e:
            got, note = None, "; count failed: %s" % e
        r.update(stored=got, expected=want, count_note=note.lstrip("; "))
        if isinstance(t, Mailvault):
            r["stop_s"] = t.stop_s
            r["store_total"] = t.store_total
        ok = (r["rc"] == 0 and not r["sampler_error"] and got == want
              and not any(bad in note for bad in ("other folders", "other queues", "left in tmp", "exited with")))
        if isinstance(t, Mailvault):
            ok = ok and t.store_total == want
        r["ok"] = ok
        log("%s: holds %s messages, expected %d (%d + %d sampler)%s%s"
            % (t.name, got, want, a.messages, r["sampler_messages"], note, "" if ok else "  <-- CHECK FAILED"))
    return r


# ---------------------------------------------------------------- report

def kb_mb(kb):
    return "%.0f" % (kb / 1024) if kb is not None else "?"


def report(res):
    n = res["messages"]
    print()
    print("Accepting mail: %d messages of ~%d bytes (smtp-source -l %d, filler payload), %d sessions (-d, kept open)"
          " + 1 latency-sampler connection, 127.0.0.1" % (n, res["size"] + 120, res["size"], res["sessions"]))
    hdr = ("%-34s %8s %8s %9s %9s %9s %8s %7s %17s  %s"
           % ("target", "wall s", "msg/s", "p50 ms", "p99 ms", "srv CPU", "busy%", "settle", "mem MB bef/max/end",
              "check"))
    print(hdr)
    labels = {"postfix": "Postfix %s (hold queue)" % res["versions"].get("postfix", "?"),
              "dovecot": "Dovecot %s LMTP (Maildir)" % res["versions"].get("dovecot", "?").split()[0],
              "mailvault": "mailvault serve (SMTP)"}
    for name in res["targets"]:
        r = res["results"].get(name)
        if r is None:
            continue
        label = labels[name]
        if "seconds" not in r:
            print("%-34s %s" % (label, "NOT RUN: " + r.get("error", r.get("skipped", "?"))))
            continue
        f = lambda x, d=2: ("%.*f" % (d, x)) if x is not None else "?"
        chk = "ok" if r.get("ok") else "FAILED"
        chk += " (%s of %s%s)" % (r.get("stored"), r.get("expected"),
                                  ("; " + r["count_note"]) if r.get("count_note") else "")
        if r.get("sampler_error"):
            chk += "; sampler: " + r["sampler_error"]
        if r.get("rc"):
            chk += "; smtp-source exit %d" % r["rc"]
        print("%-34s %8.2f %8.0f %9s %9s %9s %8.0f %7.1f %17s  %s"
              % (label, r["seconds"], r["msg_per_s"], f(r.get("p50_ms")), f(r.get("p99_ms")),
                 f(r.get("server_cpu_s"), 1), r.get("machine_busy_pct", 0), r.get("settle_s", 0),
                 "%s/%s/%s" % (kb_mb(r.get("mem_before_kb")), kb_mb(r.get("mem_max_kb")), kb_mb(r.get("mem_end_kb"))),
                 chk))
    mv = res["results"].get("mailvault") or {}
    if "seconds" in mv:
        for peer in ("postfix", "dovecot"):
            p = res["results"].get(peer) or {}
            if "seconds" in p:
                print("ratio mailvault/%-8s msg/s %.2fx   p99 %.2fx%s" % (
                    peer, mv["msg_per_s"] / p["msg_per_s"],
                    (mv["p99_ms"] / p["p99_ms"]) if mv.get("p99_ms") and p.get("p99_ms") else float("nan"),
                    "" if p.get("ok") and mv.get("ok") else "  (a check FAILED)"))
        if "stop_s" in mv:
            print("mailvault: SIGTERM to exit %.1f s; %s" % (mv["stop_s"], mv.get("count_note", "")))
    else:
        print("ratios: not available (mailvault did not run)")
    if res.get("rounds", 1) > 1:
        print("rounds: %d, interleaved; each row is the round of median msg/s" % res["rounds"])
        for name in res["targets"]:
            runs = [x for x in res["runs"].get(name, []) if "seconds" in x]
            if runs:
                print("  %-10s msg/s by round: %s;  p99 ms: %s" % (
                    name, ", ".join("%.0f" % x["msg_per_s"] for x in runs),
                    ", ".join("%.1f" % x["p99_ms"] if x.get("p99_ms") else "?" for x in runs)))
    noisy = ["%s (round %s)" % (name, x.get("round")) for name in res["targets"]
             for x in res["runs"].get(name, []) if x.get("machine_idle_before") is False]
    if noisy:
        print("WARNING: machine busy: not idle before %s -- something else was running; compare with care"
              % ", ".join(noisy))
    print("memory: mailvault = VmRSS of serve; peers = sum of PSS over all their processes; sampled every second")
    print("smtp-source %s; %s; %s CPUs; load average before %s, after %s"
          % (SMTP_SOURCE, res["mailvault_bin"], res["nproc"], " ".join(res["loadavg_before"]),
             " ".join(res.get("loadavg_after", ["?"]))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["run"])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--messages", type=int, default=100000)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--size", type=int, default=10240)
    ap.add_argument("--targets", default="postfix,dovecot,mailvault")
    ap.add_argument("--rounds", type=int, default=1, help="each target this many times, interleaved; median shown")
    ap.add_argument("--invocation", default="")
    ap.add_argument("--keep", action="store_true", help="keep the mailvault data directory (OUT/mailvault-data)")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # cleanup in finally, as for Ctrl-C
    targets = [x for x in a.targets.split(",") if x]
    for x in targets:
        if x not in ("postfix", "dovecot", "mailvault"):
            ap.error("unknown target %s" % x)

    global STATE_DIR
    STATE_DIR = os.path.join(a.out, "state")
    os.makedirs(STATE_DIR, exist_ok=True)
    logs = os.path.join(a.out, "logs")
    shutil.rmtree(logs, ignore_errors=True)
    os.makedirs(logs)
    res = {"invocation": a.invocation, "mailvault_bin": a.bin, "messages": a.messages, "sessions": a.sessions,
           "size": a.size, "targets": targets, "rounds": a.rounds, "nproc": os.cpu_count(),
           "loadavg_before": open("/proc/loadavg").read().split()[:3], "results": {},
           "versions": {"postfix": subprocess.run(["postconf", "-dh", "mail_version"], capture_output=True,
                                                  text=True).stdout.strip() or "?",
                        "dovecot": version([DOVECOT, "--version"])}}

    def save():
        with open(os.path.join(a.out, "results.json"), "w") as f:
            json.dump(res, f, indent=1)

    res["runs"] = {name: [] for name in targets}
    try:
        for rnd in range(a.rounds):
            rlogs = logs if a.rounds == 1 else os.path.join(logs, "round-%d" % (rnd + 1))
            os.makedirs(rlogs, exist_ok=True)
            for name in targets:
                if name == "mailvault":
                    skip = has_smtp(a.bin)
                    if skip:
                        res["results"][name] = {"target": name, "skipped": skip}
                        log("mailvault part will not run: " + skip)
                        continue
                    t = Mailvault(a.tmp, rlogs, a.bin)
                else:
                    t = Postfix(a.tmp, rlogs) if name == "postfix" else Dovecot(a.tmp, rlogs)
                if a.rounds > 1:
                    log("round %d of %d: %s" % (rnd + 1, a.rounds, name))
                try:
                    r = run_target(t, a, rlogs)
                    r["round"] = rnd + 1
                    res["runs"][name].append(r)
                    # the figures shown: the round of median throughput (each round's kept in "runs")
                    timed = sorted((x for x in res["runs"][name] if "seconds" in x), key=lambda x: x["msg_per_s"])
                    res["results"][name] = timed[(len(timed) - 1) // 2] if timed else r
                finally:
                    keep = a.keep and name == "mailvault"
                    if keep and os.path.isdir(t.data):
                        kept = os.path.join(a.out, "mailvault-data")
                        shutil.rmtree(kept, ignore_errors=True)
                        shutil.move(t.data, kept)
                        log("kept the mailvault data directory: %s" % kept)
                    t.remove()
                save()
    finally:
        res["loadavg_after"] = open("/proc/loadavg").read().split()[:3]
        save()
    report(res)
    bad = sorted({k for k, runs in res["runs"].items() for r in runs if not r.get("ok")})
    if bad:
        log("checks failed: %s" % ", ".join(bad))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
