"""A private Postfix MTA, and a tiny SMTP/LMTP sink, for system tests (stdlib only).

    pf = postfix.start(                               # skips ("needs root") unless root; Postfix must be installed
                       always_bcc="archive@vault.test",
                       transports={"vault.test": "smtp:[127.0.0.1]:2525",      # a whole domain to a next hop
                                   "lmtp.test": "lmtp:unix:/path/lmtp.sock"},  # or lmtp:inet:127.0.0.1:PORT
                       local_domains=("example.org",),  # mail for them stays in Postfix:
                       local_delivery="maildir")        # "maildir" (virtual(8): one Maildir for every local address,
                                                        # told apart by Delivered-To) or "discard"
    pf.port                                             # Postfix's smtpd on 127.0.0.1
    qid = pf.submit(sender, [rcpt, ...], raw)           # SMTP (smtplib) to pf.port: the queue id from "250 ... queued as ID"
                                                        # (raises SubmitRefused(.code, .text) on a refusal)
    pf.sendmail(sender, [rcpt, ...], raw)               # /usr/sbin/sendmail -C DIR (postdrop, pickup)
    pf.flush()                                          # postfix -c DIR flush: deferred mail tried now, dead-site cache reset
    pf.wait_queue_empty(timeout); pf.queue()            # postqueue -j: [{"queue_id", "queue_name", "recipients": [...]}]
    pf.wait_deferred([qid, ...])                        # the queue listing once these are all in the deferred queue
    pf.deliveries(since=mark, queue_id=None)            # parsed "to=<..>, relay=.., dsn=.., status=.. (..)" log lines
    pf.wait_delivery(rcpt, status="sent", since=mark, queue_id=None)   # the first such line, waited for (bounded)
    pf.log_mark(); pf.log_text(since); pf.wait_log(regex, since)
    pf.maildir_messages("user@example.org")             # local_delivery="maildir": [bytes] the mailbox holds
    pf.stop()                                           # postfix -c DIR stop, waits for the master to exit

    sink = postfix.SmtpSink().start()                   # ESMTP on 127.0.0.1:sink.port; sink.nexthop = "smtp:[127.0.0.1]:PORT"
    sink = postfix.SmtpSink(lmtp=True, unix_path=p)     # LMTP on a unix socket (mode 0666): "lmtp:unix:PATH"
    sink.wait(n, timeout) -> [Envelope(mail_from, rcpt_tos, data, helo, mail_params)]
    sink.temp_fail = True                               # every MAIL answered 451 4.3.0 (mail stays queued)

Why it is shaped so:

* Everything lives in one directory (config_directory with the main.cf and
  master.cf written here, queue_directory, data_directory, the mail log, the
  maps, local Maildirs), so instances never meet: tests under pytest-xdist run
  two at once.  Each instance has its own queue (hence its own master.pid and
  master.lock) and its own smtpd port on loopback; nothing under /etc/postfix
  is read or written.  Postfix run by root takes `-c DIR` (postfix, postqueue,
  postdrop through sendmail -C) without the directory being listed in
  alternate_config_directories / multi_instance_directories of the default
  main.cf: that check guards the set-gid postdrop/postqueue against
  unprivileged callers only, and the master itself must run as root anyway.
  Debian 12 ships no /etc/postfix/main.cf until postfix is configured, and
  none is needed.
* No daemon is chrooted (Debian's master.cf chroots most of them into the
  system queue); there is no local(8) service at all and mydestination is
  empty, so no mail can reach a real user, /etc/aliases or a mailbox outside
  the directory.  An address of an unrouted domain is refused at RCPT
  (default_transport error:, 550 5.1.2) instead of waiting for DNS.
* The mail log is maillog_file through the postlog service (Postfix 3.7), so a
  test reads delivery status lines (status=sent with the next hop's reply,
  status=deferred with the reason) from a file of its own.
* The directory is a world-traversable one under /tmp (pytest's tmp_path is
  0700 root): Postfix's delivery agents run as the unprivileged mail_owner
  `postfix`, which must reach LMTP sockets and the Maildirs.
* Submitted mail is not rewritten (local_header_rewrite_clients is empty), so
  what reaches the next hop is the submitted message with Postfix's Received
  header on top: tests compare bytes against that (`strip_received`)."""

import collections
import json
import os
import pwd
import re
import shutil
import smtplib
import socket
import socketserver
import subprocess
import tempfile
import threading
import time

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
POSTQUEUE = shutil.which("postqueue") or "/usr/sbin/postqueue"
SENDMAIL = "/usr/sbin/sendmail"
MAIL_OWNER = "postfix"

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/spool
data_directory = {root}/data
mail_owner = {mail_owner}
setgid_group = postdrop
syslog_name = {name}
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
myhostname = {name}.postfix.test
mydomain = postfix.test
myorigin = $myhostname
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
local_header_rewrite_clients =
alias_maps =
alias_database =
local_recipient_maps =
local_transport = error:5.1.1 no local delivery in the Postfix test fixture
default_transport = error:5.1.2 no route to this domain in the Postfix test fixture
relay_domains = {relay_domains}
relay_recipient_maps =
transport_maps = texthash:{root}/transport
{always_bcc}
{virtual}
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_tls_security_level = none
smtp_tls_security_level = none
lmtp_tls_security_level = none
smtp_host_lookup = native
lmtp_host_lookup = native
smtp_dns_support_level = disabled
biff = no
message_size_limit = {message_size_limit}
mailbox_size_limit = 0
virtual_mailbox_limit = 0
notify_classes =
delay_warning_time = 0
queue_run_delay = 300s
minimal_backoff_time = 300s
maximal_backoff_time = 600s
"""

VIRTUAL_CF = """\
virtual_mailbox_domains = {domains}
virtual_mailbox_base = {root}/vmail
virtual_mailbox_maps = static:local/
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
virtual_minimum_uid = {uid}
"""

MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
lmtp      unix  -       -       n       -       -       lmtp
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

_DELIVERY_RE = re.compile(
    r"(?P<qid>[0-9A-Za-z]+): to=<(?P<to>[^>]*)>,(?: orig_to=<(?P<orig_to>[^>]*)>,)? relay=(?P<relay>[^,]+), "
    r".*?dsn=(?P<dsn>[0-9.]+), status=(?P<status>\w+) \((?P<text>.*)\)\s*$")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def smtp_nexthop(port, host="127.0.0.1"):
    return "smtp:[%s]:%d" % (host, port)


def lmtp_unix_nexthop(path):
    return "lmtp:unix:%s" % path


def lmtp_inet_nexthop(port, host="127.0.0.1"):
    return "lmtp:inet:%s:%d" % (host, port)


def strip_received(data):
    """The message without the Received: header fields at its top (what a
    relay prepends), everything else byte for byte."""
    pos = 0
    while data[pos:pos + 9].lower() == b"received:":
        nl = data.index(b"\n", pos) + 1
        while data[nl:nl + 1] in (b" ", b"\t"):       # folded continuation lines
            nl = data.index(b"\n", nl) + 1
        pos = nl
    return data[pos:]


def crlf(raw):
    """raw with every line ending CRLF: the form SMTP carries (and Postfix delivers)."""
    return re.sub(rb"\r?\n", b"\r\n", raw)


def _tail(path, n=4000):
    try:
        with open(path, "rb") as f:
            return f.read()[-n:].decode("utf-8", "replace")
    except OSError:
        return "(no %s)" % path


def _alive(pid):
    """True while pid exists and is not a zombie (the container's init may be slow to reap)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# ---- the sink -----------------------------------------------------------------------------

Envelope = collections.namedtuple("Envelope", "mail_from rcpt_tos data helo mail_params")


class _SinkHandler(socketserver.StreamRequestHandler):
    timeout = 60

    def reply(self, text):
        self.wfile.write(text.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self):
        sink = self.server.sink
        proto = "LMTP" if sink.lmtp else "ESMTP"
        self.reply("220 %s %s sink" % (sink.hostname, proto))
        helo, mail_from, mail_params, rcpts = None, None, "", []
        while True:
            line = self.rfile.readline(4096)
            if not line:
                return
            cmd = line.rstrip(b"\r\n").decode("utf-8", "replace")
            verb = cmd.split(" ", 1)[0].upper()
            arg = cmd[len(verb):].strip()
            if verb in ("EHLO", "LHLO") and (verb == "LHLO") == sink.lmtp:
                helo = arg
                self.reply("250-%s\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
                           "250-SIZE 104857600\r\n250 ENHANCEDSTATUSCODES" % sink.hostname)
            elif verb == "HELO" and not sink.lmtp:
                helo = arg
                self.reply("250 %s" % sink.hostname)
            elif verb == "MAIL":
                m = re.match(r"FROM:\s*<([^>]*)>\s*(.*)$", arg, re.I)
                if not m:
                    self.reply("501 5.5.4 syntax: MAIL FROM:<address>")
                elif sink.temp_fail:
                    self.reply("451 4.3.0 sink: try again later")
                else:
                    mail_from, mail_params, rcpts = m.group(1), m.group(2), []
                    self.reply("250 2.1.0 ok")
            elif verb == "RCPT":
                m = re.match(r"TO:\s*<([^>]*)>", arg, re.I)
                if mail_from is None:
                    self.reply("503 5.5.1 MAIL first")
                elif not m:
                    self.reply("501 5.5.4 syntax: RCPT TO:<address>")
                else:
                    rcpts.append(m.group(1))
                    self.reply("250 2.1.5 ok")
            elif verb == "DATA":
                if not rcpts:
                    self.reply("503 5.5.1 RCPT first")
                    continue
                self.reply("354 go ahead")
                data = self._read_data()
                if data is None:
                    return
                n = sink._record(Envelope(mail_from, tuple(rcpts), data, helo, mail_params))
                for _ in (rcpts if sink.lmtp else [None]):
                    self.reply("250 2.0.0 sink stored message %d" % n)
                mail_from, rcpts = None, []
            elif verb == "RSET":
                mail_from, rcpts = None, []
                self.reply("250 2.0.0 ok")
            elif verb == "NOOP":
                self.reply("250 2.0.0 ok")
            elif verb == "QUIT":
                self.reply("221 2.0.0 bye")
                return
            else:
                self.reply("502 5.5.2 not implemented")

    def _read_data(self):
        out = []
        while True:
            line = self.rfile.readline()
            if not line:
                return None
            if line in (b".\r\n", b".\n"):
                return b"".join(out)
            out.append(line[1:] if line.startswith(b".") else line)  # dot-unstuffing (RFC 5321 4.5.2)


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class _UnixServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True


class SmtpSink:
    """A minimal ESMTP (or LMTP) server that accepts every message and keeps
    its envelope and exact bytes (dot-unstuffed, line endings as received)."""

    def __init__(self, lmtp=False, unix_path=None, hostname="sink.mailvault.test"):
        self.lmtp = lmtp
        self.unix_path = unix_path
        self.hostname = hostname
        self.temp_fail = False
        self.messages = []
        self._cond = threading.Condition()
        self._server = None
        self.port = None

    @property
    def nexthop(self):
        if self.unix_path:
            return lmtp_unix_nexthop(self.unix_path)
        return lmtp_inet_nexthop(self.port) if self.lmtp else smtp_nexthop(self.port)

    def start(self):
        if self.unix_path:
            self._server = _UnixServer(self.unix_path, _SinkHandler)
            os.chmod(self.unix_path, 0o666)       # Postfix's lmtp(8) connects as mail_owner
        else:
            self._server = _TCPServer(("127.0.0.1", 0), _SinkHandler)
            self.port = self._server.server_address[1]
        self._server.sink = self
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
            if self.unix_path and os.path.exists(self.unix_path):
                os.unlink(self.unix_path)

    def _record(self, env):
        with self._cond:
            self.messages.append(env)
            self._cond.notify_all()
            return len(self.messages)

    def wait(self, n, timeout=30):
        """The first n messages received, waiting for them (bounded: fails with what arrived)."""
        with self._cond:
            ok = self._cond.wait_for(lambda: len(self.messages) >= n, timeout)
            assert ok, "sink got %d of %d messages within %ds: %r" % (
                len(self.messages), n, timeout, [(e.mail_from, e.rcpt_tos) for e in self.messages])
            return list(self.messages[:n])


# ---- Postfix ------------------------------------------------------------------------------

class Postfix:
    def __init__(self, root, own_root, always_bcc=None, transports=None, local_domains=("example.org",),
                 local_delivery="discard", message_size_limit=104857600):
        assert local_delivery in ("discard", "maildir"), local_delivery
        self.root = root
        self._own_root = own_root
        self.always_bcc = always_bcc
        self.transports = dict(transports or {})
        self.local_domains = tuple(local_domains)
        self.local_delivery = local_delivery
        self.message_size_limit = message_size_limit
        # syslog_name and myhostname: tell instances apart in logs and in greetings
        # (a next hop greeting with Postfix's own name would be a mail loop).
        self.name = "pf-" + re.sub(r"[^a-z0-9]", "", os.path.basename(root).rsplit("-", 1)[-1].lower())
        self.config_dir = os.path.join(root, "etc")
        self.queue_dir = os.path.join(root, "spool")
        self.log = os.path.join(root, "maillog")
        self.port = None
        self._running = False

    # ---- configuration ----------------------------------------------------------------
    def _write_config(self):
        os.makedirs(self.config_dir, exist_ok=True)
        owner = pwd.getpwnam(MAIL_OWNER)
        # queue_directory root's (postfix-script makes its subdirectories),
        # data_directory mail_owner's (the master's lock, caches).
        os.makedirs(self.queue_dir, exist_ok=True)
        data = os.path.join(self.root, "data")
        os.makedirs(data, mode=0o700, exist_ok=True)
        os.chown(data, owner.pw_uid, owner.pw_gid)
        routes = dict(self.transports)
        if self.local_delivery == "discard":
            for d in self.local_domains:
                routes.setdefault(d, "discard:")
        with open(os.path.join(self.root, "transport"), "w") as f:
            for dom, nexthop in routes.items():
                f.write("%s %s\n" % (dom, nexthop))
        virtual = ""
        if self.local_delivery == "maildir" and self.local_domains:
            vmail = os.path.join(self.root, "vmail")
            os.makedirs(vmail, exist_ok=True)
            os.chown(vmail, owner.pw_uid, owner.pw_gid)
            virtual = VIRTUAL_CF.format(domains=", ".join(self.local_domains), root=self.root,
                                        uid=owner.pw_uid, gid=owner.pw_gid)
        relay = [d for d in routes if d not in (self.local_domains if virtual else ())]
        with open(os.path.join(self.config_dir, "main.cf"), "w") as f:
            f.write(MAIN_CF.format(
                root=self.root, name=self.name, mail_owner=MAIL_OWNER,
                relay_domains=", ".join(relay),
                always_bcc="always_bcc = %s" % self.always_bcc if self.always_bcc else "",
                virtual=virtual, message_size_limit=self.message_size_limit))
        with open(os.path.join(self.config_dir, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(port=self.port))

    # ---- life cycle -------------------------------------------------------------------
    def _postfix(self, *args, check=True, timeout=60):
        cp = subprocess.run([POSTFIX, "-c", self.config_dir] + list(args), capture_output=True, timeout=timeout,
                            stdin=subprocess.DEVNULL)
        if check and cp.returncode != 0:
            raise AssertionError("postfix %s exited %d:\n%s\n%s\nlog:\n%s" % (
                " ".join(args), cp.returncode, cp.stdout.decode(errors="replace"),
                cp.stderr.decode(errors="replace"), _tail(self.log)))
        return cp

    def start(self):
        """Writes the configuration (first start: on a free port) and starts
        the master; returns once smtpd answers 220.  A port taken between its
        pick and the bind is replaced by another (first start only)."""
        first = self.port is None
        for attempt in range(3):
            if first:
                self.port = free_port()
                self._write_config()
            mark = self.log_mark()
            cp = self._postfix("start", check=False)
            self._running = True
            try:
                if cp.returncode != 0 and not self._bind_failed(mark):
                    raise AssertionError("postfix start exited %d:\n%s\nlog:\n%s" % (
                        cp.returncode, cp.stderr.decode(errors="replace"), _tail(self.log)))
                self._wait_smtpd(mark)
                return self
            except _BindFailed:
                self.stop_only()
                if not first or attempt == 2:
                    raise
        return self

    def _bind_failed(self, mark):
        if re.search(r"fatal: bind 127\.0\.0\.1 port %d: Address already in use" % self.port, self.log_text(mark)):
            raise _BindFailed(self.log_text(mark))
        return False

    def _wait_smtpd(self, mark, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._bind_failed(mark)
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
                    if s.recv(64).startswith(b"220"):
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError("postfix smtpd did not answer on port %d:\n%s" % (self.port, _tail(self.log)))

    def master_pid(self):
        try:
            with open(os.path.join(self.queue_dir, "pid", "master.pid")) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop_only(self, timeout=30):
        """postfix stop, and wait for the master to be gone (files kept: start() again)."""
        if not self._running:
            return
        pid = self.master_pid()
        self._postfix("stop", check=False)
        deadline = time.monotonic() + timeout
        while pid and _alive(pid):
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                break
            time.sleep(0.05)
        self._running = False

    def stop(self):
        self.stop_only()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def flush(self):
        """postfix flush: every deferred message is tried now (qmgr also forgets dead destinations)."""
        self._postfix("flush")

    def running(self):
        pid = self.master_pid()
        return bool(self._running and pid and _alive(pid))

    # ---- mail in -----------------------------------------------------------------------
    def submit(self, sender, recipients, raw, timeout=60):
        """Hands raw (exact bytes; line ends made CRLF by smtplib) to Postfix's
        smtpd; returns the queue id Postfix gave it."""
        with smtplib.SMTP("127.0.0.1", self.port, timeout=timeout) as s:
            s.ehlo("submitter.mailvault.test")
            s.mail(sender)
            for r in recipients:
                code, msg = s.rcpt(r)
                if code != 250:
                    raise SubmitRefused("RCPT TO:<%s>" % r, code, msg)
            code, msg = s.data(raw)
            if code != 250:
                raise SubmitRefused("DATA", code, msg)
        m = re.search(rb"queued as ([0-9A-Za-z]+)", msg)
        assert m, msg
        return m.group(1).decode()

    def sendmail(self, sender, recipients, raw, timeout=60):
        """sendmail -C DIR -f sender -i -- recipients < raw (the local submission path: postdrop, pickup)."""
        cp = subprocess.run([SENDMAIL, "-C", self.config_dir, "-f", sender, "-i", "--"] + list(recipients),
                            input=raw, capture_output=True, timeout=timeout)
        assert cp.returncode == 0, "sendmail exited %d: %s" % (cp.returncode, cp.stderr.decode(errors="replace"))

    # ---- the queue ---------------------------------------------------------------------
    def queue(self):
        """postqueue -j: one dict per queued message (queue_name: active/deferred/hold/incoming/maildrop)."""
        cp = subprocess.run([POSTQUEUE, "-c", self.config_dir, "-j"], capture_output=True, timeout=60)
        assert cp.returncode == 0, cp.stderr.decode(errors="replace")
        return [json.loads(line) for line in cp.stdout.decode().splitlines() if line.strip()]

    def wait_deferred(self, queue_ids, timeout=30):
        """The queue listing once every one of queue_ids is in the deferred
        queue (qmgr moves a message there a moment after the delivery agent
        logged status=deferred)."""
        deadline = time.monotonic() + timeout
        while True:
            q = self.queue()
            if set(queue_ids) <= {m["queue_id"] for m in q if m["queue_name"] == "deferred"}:
                return q
            assert time.monotonic() < deadline, "not all of %s deferred after %ds: %r" % (queue_ids, timeout, q)
            time.sleep(0.05)

    def maildrop_files(self):
        return os.listdir(os.path.join(self.queue_dir, "maildrop"))

    def wait_queue_empty(self, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            q = self.queue()
            if not q and not self.maildrop_files():
                return
            assert time.monotonic() < deadline, "postfix queue not empty after %ds: %r\nlog:\n%s" % (
                timeout, q, _tail(self.log))
            time.sleep(0.1)

    # ---- the log -----------------------------------------------------------------------
    def log_mark(self):
        try:
            return os.path.getsize(self.log)
        except OSError:
            return 0

    def log_text(self, since=0):
        try:
            with open(self.log, "rb") as f:
                f.seek(since)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, regex, since=0, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(regex, self.log_text(since))
            if m:
                return m
            assert time.monotonic() < deadline, "no %r in the postfix log:\n%s" % (regex, self.log_text(since)[-4000:])
            time.sleep(0.05)

    def deliveries(self, since=0, queue_id=None):
        """Delivery status lines since the mark: [{"qid", "to", "orig_to", "relay", "dsn", "status", "text", "service"}]."""
        out = []
        for line in self.log_text(since).splitlines():
            m = _DELIVERY_RE.search(line)
            if m and (queue_id is None or m.group("qid") == queue_id):
                d = m.groupdict()
                svc = re.search(r"%s/([\w-]+)\[" % re.escape(self.name), line)
                d["service"] = svc.group(1) if svc else None
                out.append(d)
        return out

    def wait_delivery(self, to, status="sent", since=0, queue_id=None, timeout=30):
        """The first delivery line for recipient `to` with this status since the mark, waited for (bounded)."""
        deadline = time.monotonic() + timeout
        while True:
            for d in self.deliveries(since, queue_id):
                if d["to"] == to and d["status"] == status:
                    return d
            assert time.monotonic() < deadline, "no status=%s for <%s> (queue id %s) in the postfix log:\n%s" % (
                status, to, queue_id, self.log_text(since)[-4000:])
            time.sleep(0.05)

    # ---- local mail --------------------------------------------------------------------
    def maildir_messages(self, address=None):
        """local_delivery="maildir": the messages (bytes) delivered to address
        (by their Delivered-To: header; every one with address=None), oldest first."""
        base = os.path.join(self.root, "vmail", "local")
        files = []
        for sub in ("new", "cur"):
            d = os.path.join(base, sub)
            if os.path.isdir(d):
                files += [os.path.join(d, n) for n in os.listdir(d)]
        out = []
        for path in sorted(files, key=lambda p: (os.stat(p).st_mtime, p)):
            with open(path, "rb") as f:
                raw = f.read()
            # virtual(8) prepends Return-Path, X-Original-To and Delivered-To.
            head = raw.split(b"\nReceived:", 1)[0] + b"\n"
            if address is None or b"\nDelivered-To: %s\n" % address.encode() in head:
                out.append(raw)
        return out


class _BindFailed(AssertionError):
    pass


class SubmitRefused(AssertionError):
    """Postfix's smtpd refused a submission: .code, .text (str)."""

    def __init__(self, what, code, msg):
        self.code = code
        self.text = msg.decode("utf-8", "replace")
        super().__init__("postfix refused %s: %d %s" % (what, code, self.text))


def installed():
    return os.path.exists(POSTFIX) and os.path.exists("/usr/lib/postfix/sbin/master")


def start(tmpdir=None, **kw):
    """A running private Postfix (see the module docstring for the options).
    Its directory is a fresh one under /tmp (removed by stop())."""
    import pytest
    if os.getuid() != 0:
        pytest.skip("needs root: the Postfix master runs as root")
    if not installed():
        pytest.fail("postfix is not installed (tools/deps.sh test installs it)", pytrace=False)
    root = tempfile.mkdtemp(prefix="mv-postfix-")
    os.chmod(root, 0o755)
    pf = Postfix(root, True, **kw)
    try:
        return pf.start()
    except Exception:
        pf.stop()
        raise
