"""A private Dovecot IMAP server for system tests (stdlib only).

    srv = dovecot.start(tmp_path)     # skips the test when Dovecot is not installed
    srv.port, srv.tls_port            # plain (STARTTLS offered) and implicit-TLS ports on 127.0.0.1
    srv.user, srv.password            # one passwd-file user
    srv.maildir                       # that user's Maildir (Maildir++ subfolders, "." separator)
    srv.cert                          # the self-signed certificate (PEM) to trust
    srv.imap() / srv.imap_tls()       # logged-in imaplib connections
    srv.stop()

Everything lives in one directory: configuration, certificate, sockets,
state, logs and mail.  Plain-text logon is allowed (on loopback only: the
server listens on 127.0.0.1 and nowhere else).  Run as root, Dovecot still
refuses to deliver mail as uid 0, so the mail user is then `dovecot`'s uid
and the directory is a world-traversable one under /tmp (pytest's own
tmp_path is 0700 root); as an ordinary user everything runs as that user."""

import grp
import imaplib
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"

CONF = """
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {internal_user}
default_internal_group = {internal_group}
default_login_user = {login_user}
first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = {gid}
last_valid_gid = {gid}
mail_location = maildir:{root}/mail/%u
mail_save_crlf = no
namespace inbox {{
  inbox = yes
  separator = /
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
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  chroot =
}}
"""


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


class Dovecot:
    def __init__(self, root, own_root):
        self.root = root
        self._own_root = own_root
        self.user = "restore"
        self.password = "restore-pw-%d" % os.getpid()
        self.port = _free_port()
        self.tls_port = _free_port()
        self.cert = os.path.join(root, "cert.pem")
        self.maildir = os.path.join(root, "mail", self.user)
        self.log = os.path.join(root, "dovecot.log")
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

    def start(self):
        ident = self._identity()
        for sub in ("run", "state", "mail", "home"):
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-days", "2", "-subj", "/CN=localhost", "-addext",
                        "subjectAltName=DNS:localhost,IP:127.0.0.1",
                        "-keyout", os.path.join(self.root, "key.pem"), "-out", self.cert],
                       check=True, capture_output=True)
        with open(os.path.join(self.root, "passwd"), "w") as f:
            f.write("%s:{PLAIN}%s::::::\n" % (self.user, self.password))
        conf = os.path.join(self.root, "dovecot.conf")
        with open(conf, "w") as f:
            f.write(CONF.format(root=self.root, port=self.port, tls_port=self.tls_port, **ident))
        if os.getuid() == 0:
            for sub in ("mail", "home"):
                os.chown(os.path.join(self.root, sub), ident["uid"], ident["gid"])
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", conf], stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.root, "stderr.log"), "wb"),
                                     start_new_session=True)
        try:
            _wait_port(self.port, self.proc, self.log)
        except Exception:
            self.stop()
            raise
        return self

    def ssl_context(self):
        ctx = ssl.create_default_context(cafile=self.cert)
        return ctx

    def imap(self):
        m = imaplib.IMAP4("127.0.0.1", self.port)
        m.login(self.user, self.password)
        return m

    def imap_tls(self):
        m = imaplib.IMAP4_SSL("127.0.0.1", self.tls_port, ssl_context=self.ssl_context())
        m.login(self.user, self.password)
        return m

    def folder_files(self, folder):
        """The message files of a folder ("INBOX" or "a/b") as {name: bytes}."""
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

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)


def _has_user(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def start(tmpdir):
    """A running private Dovecot; its files under tmpdir (under /tmp when root)."""
    import pytest
    if not os.path.exists(DOVECOT):
        pytest.skip("dovecot is not installed (tools/deps.sh test installs dovecot-imapd)")
    if os.getuid() == 0:
        root = tempfile.mkdtemp(prefix="mv-dovecot-")
        os.chmod(root, 0o755)
        own = True
    else:
        root = os.path.join(str(tmpdir), "dovecot")
        os.makedirs(root, exist_ok=True)
        own = False
    return Dovecot(root, own).start()
