"""A private Dovecot IMAP/POP3 server for system tests (stdlib only).

    srv = dovecot.start(tmp_path)     # skips the test when Dovecot is not installed
    srv.port, srv.tls_port            # IMAP plain (STARTTLS offered) and implicit-TLS ports on 127.0.0.1
    srv.pop3_port, srv.pop3s_port     # with pop3=True: POP3 plain (STLS offered) and implicit-TLS ports
    srv.user, srv.password            # the first passwd-file user ("restore" unless users= is given)
    srv.users                         # {user: password}, every passwd-file user
    srv.master_user, srv.master_password   # a Dovecot master user ("user*master" or SASL PLAIN authzid)
    srv.maildir                       # the first user's Maildir (Maildir++ subfolders, "." separator)
    srv.cert                          # the server's self-signed certificate (PEM) to trust
    srv.untrusted_cert                # another self-signed certificate: trusting it does not make the server's trusted
    srv.imap() / srv.imap_tls()       # logged-in imaplib connections (first user; or imap(user))
    srv.pop3_client(user)             # a logged-in poplib connection
    srv.stop()

    dovecot.start(tmp_path, users={"alice@example.org": "pw", ...}, tls=False, pop3=True)
        tls=False: ssl = no, so neither STARTTLS/STLS nor implicit-TLS ports (tls_port and pop3s_port are None);
        pop3=True: POP3 as well (dovecot-pop3d; the test is skipped without it).

Mail helpers (each logs in as the user through the fixture's own address,
127.0.0.2, so that the sessions it opens are told apart in the log from the
ones under test, which come from 127.0.0.1):

    srv.add_user(name, password)                    # no restart; returns within ~1 s (Dovecot re-reads passwd-file)
    srv.create_folder(user, "Work/Project")         # IMAP CREATE, names given decoded (modified UTF-7 done here)
    uid = srv.deliver(user, folder, raw, flags="\\Seen", internaldate=datetime)   # IMAP APPEND, exact bytes
    srv.deliver_many(user, folder, [raw, ...])      # one connection, many APPENDs: [uid, ...]
    srv.deliver_maildir(user, folder, raw, flags="S", internaldate=datetime)     # a Maildir file (mtime = INTERNALDATE)
    srv.list(user, folder)                          # [(uid, flags tuple, bytes)] sorted by uid
    srv.folders(user)                               # {decoded name: special-use flags}
    srv.expunge(user, folder, uids)
    srv.uidvalidity(user, folder)
    srv.reset_uidvalidity(user, folder)             # kill, drop the folder's uidlist and indexes, start: new UIDVALIDITY, UIDs from 1
    srv.kill9() / srv.restart()                     # SIGKILL to every Dovecot process; start again on the same ports
    mark = srv.log_mark(); srv.sessions(user, since=mark, wait_for=1)
        # the IMAP sessions of the user under test that ended, from the log:
        # [{"in", "out", "fetch_body_count", "fetch_hdr_count", "deleted", "expunged", "reason", "ip"}]
    srv.pop3_sessions(user, since=mark, wait_for=1)   # [{"top", "retr", "del", "size", "reason", "ip"}]
    srv.ended_sessions(user, since=mark, protocol="imap")   # every session that logged in since the mark, ended
    srv.logins(user, since=mark)                      # imap/pop3 login lines of the user from 127.0.0.1
    srv.wait_log(regex, since=mark)                   # the first match in the log, waited for (bounded)
    srv.imap_processes(user)                          # pids of the imap processes serving the user (proctitle)

Special-use folders (namespace config): Junk (\\Junk), Trash and
Papierkorb (\\Trash), Sent (\\Sent); they exist once created.  Every
session's end is logged with imap_logout_format giving fetch_body_count
(messages whose body was fetched), fetch_hdr_count, deleted (\\Deleted set)
and expunged.  POP3 UIDLs are pop3_uidl_format %08Xu%08Xv (UID, UIDVALIDITY).

Everything lives in one directory: configuration, certificates, sockets,
state, logs and mail.  Plain-text logon is allowed (on loopback only: the
server listens on 127.0.0.1 and nowhere else).  Run as root, Dovecot still
refuses to deliver mail as uid 0, so the mail user is then `dovecot`'s uid
and the directory is a world-traversable one under /tmp (pytest's own
tmp_path is 0700 root); as an ordinary user everything runs as that user."""

import base64
import datetime
import grp
import imaplib
import os
import poplib
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"

# The address the fixture's own helper sessions come from (loopback: any
# 127/8 address is ours on Linux), so the log tells them from the product's.
FIXTURE_IP = "127.0.0.2"
MASTER_SEPARATOR = "*"

CONF = """
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
auth_verbose = yes
verbose_proctitle = yes
protocols = {protocols}
listen = 127.0.0.1
{ssl_conf}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_master_user_separator = {sep}
default_internal_user = {internal_user}
default_internal_group = {internal_group}
default_login_user = {login_user}
first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = {gid}
last_valid_gid = {gid}
mail_location = maildir:{root}/mail/%u
mail_save_crlf = no
mail_fsync = never
mail_log_prefix = "%s(%u)<%{{pid}}><%{{session}}><%r>: "
imap_logout_format = in=%i out=%o fetch_body_count=%{{fetch_body_count}} fetch_hdr_count=%{{fetch_hdr_count}} deleted=%{{deleted}} expunged=%{{expunged}}
mail_max_userip_connections = 50
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Junk {{
    special_use = \\Junk
  }}
  mailbox Trash {{
    special_use = \\Trash
  }}
  mailbox Papierkorb {{
    special_use = \\Trash
  }}
  mailbox Sent {{
    special_use = \\Sent
  }}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/master-passwd
  master = yes
  result_success = continue
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
{imaps_listener}
}}
{pop3_service}
service anvil {{
  chroot =
}}
service stats {{
  chroot =
}}
"""

# Only with dovecot-pop3d installed: without it Dovecot knows no pop3_* setting.
POP3_SERVICE = """pop3_logout_format = top=%t/%p retr=%r/%b del=%d/%m size=%s
pop3_uidl_format = %08Xu%08Xv
service pop3-login {{
  chroot =
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3_port}
  }}
{pop3s_listener}
}}"""
SSL_ON = "ssl = yes\nssl_cert = <{root}/cert.pem\nssl_key = <{root}/key.pem"
LISTENER = """  inet_listener {name} {{
    address = 127.0.0.1
    port = {port}
    ssl = yes
  }}"""


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port, proc, log, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("dovecot exited with %s:\n%s" % (proc.returncode, _tail(log)))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(64).startswith(b"* OK"):
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("dovecot did not listen on %d:\n%s" % (port, _tail(log)))


def _tail(path):
    try:
        with open(path, "rb") as f:
            return f.read()[-3000:].decode("utf-8", "replace")
    except OSError:
        return "(no log)"


def _self_signed(key, cert, cn="localhost"):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "2", "-subj", "/CN=%s" % cn, "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)


# ---- modified UTF-7 (RFC 3501 5.1.3) ------------------------------------------------------

def mutf7_encode(name):
    out, run = [], []

    def flush():
        if run:
            b = "".join(run).encode("utf-16-be")
            out.append("&" + base64.b64encode(b).decode().rstrip("=").replace("/", ",") + "-")
            run.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7e:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            run.append(ch)
    flush()
    return "".join(out)


def mutf7_decode(name):
    def dec(m):
        s = m.group(1)
        if s == "":
            return "&"
        s = s.replace(",", "/")
        return base64.b64decode(s + "=" * (-len(s) % 4)).decode("utf-16-be")
    return re.sub(r"&([^-]*)-", dec, name)


def _quote(name):
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _FixtureIMAP(imaplib.IMAP4):
    """imaplib.IMAP4 from FIXTURE_IP."""

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout, source_address=(FIXTURE_IP, 0))


_LOGOUT_RE = re.compile(r"imap\((?P<user>[^)]*)\)<\d+><[^>]*><(?P<ip>[^>]*)>: Info: (?P<reason>.*?) ?"
                        r"in=(?P<in>\d+) out=(?P<out>\d+) fetch_body_count=(?P<fetch_body_count>\d+) "
                        r"fetch_hdr_count=(?P<fetch_hdr_count>\d+) deleted=(?P<deleted>\d+) "
                        r"expunged=(?P<expunged>\d+)")
_POP3_RE = re.compile(r"pop3\((?P<user>[^)]*)\)<\d+><[^>]*><(?P<ip>[^>]*)>: Info: (?P<reason>.*?) ?"
                      r"top=(?P<top>\d+)/\d+ retr=(?P<retr>\d+)/\d+ del=(?P<del>\d+)/\d+ size=(?P<size>\d+)")


class Dovecot:
    def __init__(self, root, own_root, users=None, tls=True, master_user="master", pop3=False):
        self.root = root
        self._own_root = own_root
        self.users = dict(users) if users else {"restore": "restore-pw-%d" % os.getpid()}
        self.user, self.password = next(iter(self.users.items()))
        self.master_user = master_user
        self.master_password = "master-pw-%d" % os.getpid()
        self.master_separator = MASTER_SEPARATOR
        self.tls = tls
        self.pop3 = pop3
        self._pick_ports()
        self.cert = os.path.join(root, "cert.pem")
        self.untrusted_cert = os.path.join(root, "untrusted.pem")
        self.maildir = os.path.join(root, "mail", self.user)
        self.log = os.path.join(root, "dovecot.log")
        self.conf = os.path.join(root, "dovecot.conf")
        self.proc = None

    def _identity(self):
        if os.getuid() != 0:
            me = pwd.getpwuid(os.getuid()).pw_name
            group = grp.getgrgid(os.getgid()).gr_name
            return dict(uid=os.getuid(), gid=os.getgid(), internal_user=me, internal_group=group, login_user=me)
        d = pwd.getpwnam("dovecot")
        login = "dovenull" if _has_user("dovenull") else "dovecot"
        return dict(uid=d.pw_uid, gid=d.pw_gid, internal_user="dovecot", internal_group=grp.getgrgid(d.pw_gid).gr_name,
                    login_user=login)

    # ---- life cycle ---------------------------------------------------------------------
    def start(self):
        ident = self._ident = self._identity()
        for sub in ("run", "state", "mail", "home"):
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)
        _self_signed(os.path.join(self.root, "key.pem"), self.cert)
        _self_signed(os.path.join(self.root, "untrusted-key.pem"), self.untrusted_cert)
        self._write_passwd()
        with open(os.path.join(self.root, "master-passwd"), "w") as f:
            f.write("%s:{PLAIN}%s::::::\n" % (self.master_user, self.master_password))
        if os.getuid() == 0:
            for sub in ("mail", "home"):
                os.chown(os.path.join(self.root, sub), ident["uid"], ident["gid"])
        # A port picked free may be taken by a test running beside this one
        # before Dovecot binds it: then new ports, up to three times.
        for attempt in range(3):
            self._write_conf(ident)
            try:
                self._launch()
                return self
            except RuntimeError as e:
                if "Address already in use" not in str(e) or attempt == 2:
                    self.stop()
                    raise
                self._pick_ports()
        return self

    def _pick_ports(self):
        self.port = _free_port()
        self.tls_port = _free_port() if self.tls else None
        self.pop3_port = _free_port() if self.pop3 else None
        self.pop3s_port = _free_port() if self.pop3 and self.tls else None

    def _write_conf(self, ident):
        with open(self.conf, "w") as f:
            f.write(CONF.format(
                root=self.root, port=self.port, sep=self.master_separator,
                protocols="imap pop3" if self.pop3 else "imap",
                ssl_conf=SSL_ON.format(root=self.root) if self.tls else "ssl = no",
                imaps_listener=LISTENER.format(name="imaps", port=self.tls_port) if self.tls else "",
                pop3_service=POP3_SERVICE.format(
                    pop3_port=self.pop3_port,
                    pop3s_listener=LISTENER.format(name="pop3s", port=self.pop3s_port) if self.tls else "")
                if self.pop3 else "",
                **ident))

    def _write_passwd(self):
        tmp = os.path.join(self.root, "passwd.tmp")
        with open(tmp, "w") as f:
            for user, pw in self.users.items():
                f.write("%s:{PLAIN}%s::::::\n" % (user, pw))
        os.replace(tmp, os.path.join(self.root, "passwd"))

    def _launch(self):
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", self.conf], stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.root, "stderr.log"), "ab"),
                                     start_new_session=True)
        try:
            _wait_port(self.port, self.proc, self.log)
        except Exception as e:
            # Halted, not stopped: the directory stays for a retry (start's
            # caller stops, and so removes it, when the start fails for good).
            self._halt(signal.SIGTERM)
            # Dovecot says why it could not start on stderr when its log is
            # not open yet (a port in use, a bad setting).
            raise RuntimeError("%s\nstderr: %s" % (e, _tail(os.path.join(self.root, "stderr.log")))) from e

    def _halt(self, sig):
        if self.proc and self.proc.poll() is None:
            # Every Dovecot process is in the master's process group (its own session).
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc:
            self._wait_group_gone(self.proc.pid)

    @staticmethod
    def _group_alive(pgid):
        """pids of the group that are not zombies (an orphaned child is reaped
        by init in its own time; a zombie holds no port and no file)."""
        alive = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % pid) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                alive.append(int(pid))
        return alive

    def _wait_group_gone(self, pgid, timeout=10):
        """Children outlive a killed master for a moment: wait until none of the group is left."""
        deadline = time.monotonic() + timeout
        while self._group_alive(pgid):
            assert time.monotonic() < deadline, "dovecot processes of group %d survive SIGKILL" % pgid
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                return
            time.sleep(0.02)

    def kill9(self):
        """SIGKILL to the master and every child at once: connections drop mid-command."""
        self._halt(signal.SIGKILL)

    def restart(self):
        """Start again, same configuration, ports, users and mail (after kill9 or stop_only)."""
        self._halt(signal.SIGTERM)
        self._launch()

    def stop_only(self):
        self._halt(signal.SIGTERM)

    def stop(self):
        self._halt(signal.SIGTERM)
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    # ---- connections --------------------------------------------------------------------
    def ssl_context(self):
        return ssl.create_default_context(cafile=self.cert)

    def imap(self, user=None, password=None):
        m = imaplib.IMAP4("127.0.0.1", self.port)
        m.login(user or self.user, password or (self.users[user] if user else self.password))
        return m

    def imap_tls(self, user=None, password=None):
        m = imaplib.IMAP4_SSL("127.0.0.1", self.tls_port, ssl_context=self.ssl_context())
        m.login(user or self.user, password or (self.users[user] if user else self.password))
        return m

    def pop3_client(self, user=None, password=None):
        p = poplib.POP3("127.0.0.1", self.pop3_port)
        p.user(user or self.user)
        p.pass_(password or (self.users[user] if user else self.password))
        return p

    def _helper(self, user):
        """A session for the fixture's own use, from FIXTURE_IP, as the user."""
        m = _FixtureIMAP("127.0.0.1", self.port, timeout=60)
        m.login(user, self.users[user])
        return m

    # ---- users and mail -----------------------------------------------------------------
    def add_user(self, user, password):
        """A new passwd-file user.  Dovecot's auth process stats the file at
        most once a second, so this returns once the clock has passed the
        second of the write (and a login as the user works)."""
        self.users[user] = password
        self._write_passwd()
        written = time.time()
        time.sleep(int(written) + 1.02 - written)
        self._helper(user).logout()

    def create_folder(self, user, folder):
        m = self._helper(user)
        try:
            typ, data = m.create(_quote(mutf7_encode(folder)))
            assert typ == "OK", (folder, data)
        finally:
            m.logout()

    def folders(self, user):
        """{decoded folder name: tuple of its flags} as LIST shows them."""
        m = self._helper(user)
        try:
            typ, data = m.list()
            assert typ == "OK", data
        finally:
            m.logout()
        out = {}
        for line in data:
            line = line.decode() if isinstance(line, bytes) else line[0].decode() + line[1].decode()
            mm = re.match(r'\((?P<flags>[^)]*)\) (?:"[^"]*"|NIL) (?P<name>.*)$', line)
            name = mm.group("name")
            if name.startswith('"'):
                name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
            out[mutf7_decode(name)] = tuple(mm.group("flags").split())
        return out

    def deliver(self, user, folder, raw, flags="", internaldate=None):
        """APPENDs raw (exactly these bytes) to folder; returns its UID."""
        return self.deliver_many(user, folder, [(raw, flags, internaldate)])[0]

    def deliver_many(self, user, folder, messages):
        """messages: [raw] or [(raw, flags, internaldate)]; one connection.  Returns the UIDs."""
        m = self._helper(user)
        uids = []
        try:
            box = _quote(mutf7_encode(folder))
            for item in messages:
                raw, flags, date = (item, "", None) if isinstance(item, (bytes, bytearray)) else item
                when = imaplib.Time2Internaldate(date) if date is not None else None
                typ, data = m.append(box, "(%s)" % flags if flags else None, when, bytes(raw))
                assert typ == "OK", (folder, data)
                hit = re.search(rb"APPENDUID \d+ (\d+)", data[0])
                assert hit, data
                uids.append(int(hit.group(1)))
        finally:
            m.logout()
        return uids

    def folder_dir(self, user, folder):
        base = os.path.join(self.root, "mail", user)
        if folder.upper() == "INBOX":
            return base
        return os.path.join(base, "." + mutf7_encode(folder).replace("/", "."))

    def folder_files(self, folder):
        """The message files of the first user's folder ("INBOX" or "a/b",
        named as on the wire: modified UTF-7) as {name: bytes}."""
        if folder.upper() == "INBOX":
            base = self.maildir
        else:
            if folder.upper().startswith("INBOX/"):
                folder = "INBOX" + folder[5:]
            base = os.path.join(self.maildir, "." + folder.replace("/", "."))
        out = {}
        for sub in ("new", "cur"):
            d = os.path.join(base, sub)
            if os.path.isdir(d):
                for name in os.listdir(d):
                    with open(os.path.join(d, name), "rb") as f:
                        out[name] = f.read()
        return out

    def deliver_maildir(self, user, folder, raw, flags="", internaldate=None):
        """Writes a Maildir file (new/ without flags, cur/ with ":2,FLAGS"), its
        mtime the INTERNALDATE Dovecot will report; the folder must exist.
        Returns the file's path (the UID is given at the next sync)."""
        d = self.folder_dir(user, folder)
        if folder.upper() == "INBOX" and not os.path.isdir(os.path.join(d, "cur")):
            m = self._helper(user)        # Dovecot makes a user's Maildir when INBOX is first opened
            m.select("INBOX")
            m.logout()
        assert os.path.isdir(os.path.join(d, "cur")), "no such folder: %s/%s (create_folder first)" % (user, folder)
        self._seq = getattr(self, "_seq", 0) + 1
        base = "%d.M%dP%dQ%d.mvtest" % (time.time(), self._seq, os.getpid(), self._seq)
        name = os.path.join(d, "cur", base + ":2," + "".join(sorted(flags))) if flags else \
            os.path.join(d, "new", base)
        tmp = os.path.join(d, "tmp", base)
        with open(tmp, "wb") as f:
            f.write(raw)
        if internaldate is not None:
            t = internaldate.timestamp() if isinstance(internaldate, datetime.datetime) else float(internaldate)
            os.utime(tmp, (t, t))
        if os.getuid() == 0:
            os.chown(tmp, self._ident["uid"], self._ident["gid"])
        os.rename(tmp, name)
        return name

    def list(self, user, folder):
        """[(uid, flags tuple, bytes)] of the folder, by UID (read-only: no \\Seen set)."""
        m = self._helper(user)
        try:
            typ, data = m.select(_quote(mutf7_encode(folder)), readonly=True)
            assert typ == "OK", (folder, data)
            if int(data[0]) == 0:
                return []
            typ, data = m.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[])")
            assert typ == "OK", data
        finally:
            m.logout()
        out = []
        for item in data:
            if not isinstance(item, tuple):
                continue
            head, body = item
            uid = int(re.search(rb"UID (\d+)", head).group(1))
            # \Recent depends on the session, not on the message: left out.
            flags = tuple(f for f in re.search(rb"FLAGS \(([^)]*)\)", head).group(1).decode().split()
                          if f != "\\Recent")
            out.append((uid, flags, body))
        return sorted(out)

    def expunge(self, user, folder, uids):
        """Removes these messages (UID STORE \\Deleted, EXPUNGE)."""
        m = self._helper(user)
        try:
            typ, data = m.select(_quote(mutf7_encode(folder)))
            assert typ == "OK", (folder, data)
            typ, data = m.uid("STORE", ",".join(str(u) for u in uids), "+FLAGS.SILENT", "(\\Deleted)")
            assert typ == "OK", data
            typ, data = m.expunge()
            assert typ == "OK", data
        finally:
            m.logout()

    def uidvalidity(self, user, folder):
        m = self._helper(user)
        try:
            typ, data = m.status(_quote(mutf7_encode(folder)), "(UIDVALIDITY)")
            assert typ == "OK", data
        finally:
            m.logout()
        return int(re.search(rb"UIDVALIDITY (\d+)", data[0]).group(1))

    def reset_uidvalidity(self, user, folder):
        """Gives the folder a new UIDVALIDITY (and new UIDs for the same
        messages): Dovecot killed (idle), the folder's dovecot-uidlist and indexes
        and the user's mailbox-list index removed, Dovecot started again.
        Returns the new UIDVALIDITY (asserted different from the old one)."""
        before = self.uidvalidity(user, folder)
        self.kill9()  # idle: nothing is lost, and SIGTERM waits seconds for idle processes
        d = self.folder_dir(user, folder)
        home = os.path.join(self.root, "mail", user)
        for directory in {d, home}:
            for name in os.listdir(directory):
                path = os.path.join(directory, name)
                if directory == d and (name == "dovecot-uidlist" or name.startswith("dovecot.index")):
                    os.unlink(path)
                elif directory == home and name.startswith("dovecot.list.index"):
                    os.unlink(path)
        self._launch()
        after = self.uidvalidity(user, folder)
        assert after != before, "UIDVALIDITY of %s/%s did not change (%d)" % (user, folder, before)
        return after

    # ---- the log ------------------------------------------------------------------------
    def log_mark(self):
        try:
            return os.path.getsize(self.log)
        except OSError:
            return 0

    def log_text(self, since=0):
        with open(self.log, "rb") as f:
            f.seek(since)
            return f.read().decode("utf-8", "replace")

    def _ended(self, regex, user, since, wait_for, timeout, ints):
        deadline = time.monotonic() + timeout
        while True:
            out = []
            for line in self.log_text(since).splitlines():
                m = regex.search(line)
                if m and m.group("user") == user and m.group("ip") != FIXTURE_IP:
                    d = {k: (int(v) if k in ints else v) for k, v in m.groupdict().items()}
                    out.append(d)
            if len(out) >= wait_for or time.monotonic() > deadline:
                return out
            time.sleep(0.05)  # the log process writes the line after the session's end

    def sessions(self, user, since=0, wait_for=0, timeout=15):
        """Ended IMAP sessions of user (not the fixture's own) logged since the
        mark, waiting (bounded) until at least wait_for of them are there."""
        return self._ended(_LOGOUT_RE, user, since, wait_for, timeout,
                           ("in", "out", "fetch_body_count", "fetch_hdr_count", "deleted", "expunged"))

    def pop3_sessions(self, user, since=0, wait_for=0, timeout=15):
        return self._ended(_POP3_RE, user, since, wait_for, timeout, ("top", "retr", "del", "size"))

    def ended_sessions(self, user, since=0, protocol="imap", timeout=15):
        """Every session of user (not the fixture's own) that logged in since
        the mark, once each has ended and been logged (after a run: the log
        process writes a session's end a moment after the client is gone)."""
        started = len(self.logins(user, since, protocol))
        get = self.sessions if protocol == "imap" else self.pop3_sessions
        got = get(user, since, wait_for=started, timeout=timeout)
        assert len(got) >= started, "%d %s logins of %s but %d logged ends:\n%s" % (
            started, protocol, user, len(got), self.log_text(since)[-3000:])
        return got

    def log_sync(self, timeout=15):
        """Returns once everything logged before the call is in the file: a
        session of the fixture's own is opened and closed, and its end waited
        for (one log process writes every line, in the order received)."""
        mark = self.log_mark()
        self._helper(self.user).logout()
        self.wait_log(r"imap\(%s\)<\d+><[^>]*><%s>: Info: .*Logged out" % (re.escape(self.user), FIXTURE_IP),
                      mark, timeout)

    def wait_log(self, regex, since=0, timeout=15):
        """The first match of regex in the log since the mark, waiting for it (bounded)."""
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(regex, self.log_text(since))
            if m:
                return m
            assert time.monotonic() < deadline, "no %r in the dovecot log:\n%s" % (regex, self.log_text(since)[-3000:])
            time.sleep(0.05)

    def logins(self, user, since=0, protocol=None):
        """Login lines (imap-login/pop3-login) of user, not from the fixture,
        every line logged before the call included (log_sync)."""
        self.log_sync()
        return [line for line in self.log_text(since).splitlines()
                if "%s-login: Info: Login: user=<%s>" % (protocol or "", user) in line
                and "rip=%s," % FIXTURE_IP not in line]

    def imap_processes(self, user, protocol="imap"):
        """pids of the imap (or pop3) processes serving user for the product
        (verbose_proctitle)."""
        out = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
            except OSError:
                continue
            if cmd.startswith("dovecot/%s [%s 127.0.0.1" % (protocol, user)):
                out.append(int(pid))
        return out


def _has_user(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _pop3_installed():
    return any(os.path.exists(os.path.join(d, "pop3")) for d in ("/usr/lib/dovecot", "/usr/libexec/dovecot"))


def start(tmpdir, users=None, tls=True, pop3=False):
    """A running private Dovecot; its files under tmpdir (under /tmp when root).
    users: {name: password} (default one user "restore"); tls=False: ssl = no;
    pop3=True: POP3 too (needs dovecot-pop3d)."""
    import pytest
    if not os.path.exists(DOVECOT):
        pytest.skip("dovecot is not installed (tools/deps.sh test installs dovecot-imapd)")
    if pop3 and not _pop3_installed():
        pytest.skip("dovecot-pop3d is not installed (tools/deps.sh test installs it)")
    if os.getuid() == 0:
        root = tempfile.mkdtemp(prefix="mv-dovecot-")
        os.chmod(root, 0o755)
        own = True
    else:
        root = tempfile.mkdtemp(prefix="dovecot-", dir=str(tmpdir))
        own = False
    return Dovecot(root, own, users=users, tls=tls, pop3=pop3).start()
