"""Real IMAP clients against the integrated read-only IMAP server.

mbsync (isync) and offlineimap mirror the archive over IMAPS into Maildirs
whose files must be byte-identical to the originals; a second run must
transfer nothing.  neomutt, driven in tmux, opens the INBOX, shows a known
subject and a known body line.  One server per module, a corpus subset
(the clients are installed by tools/deps.sh test; a missing one skips)."""

import hashlib
import json
import os
import email
import email.policy
import re
import shutil
import subprocess
import time

import pytest

from mvserver import MvServer, init_with_admin
from mvtest import mv

N_CORPUS = 400
SEED = 4242
MARK_SUBJECT = "Kilimanjaro expedition notes"
MARK_BODY = "The summit marker line reads 4711 zebra crossing."
MARK = ("From: Guide <guide@example.org>\nTo: team@example.org\nSubject: %s\n"
        "Date: Thu, 01 Aug 2019 10:00:00 +0000\nMessage-ID: <kili@gen.example.org>\n"
        "MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\nHello team,\n%s\nBye.\n"
        % (MARK_SUBJECT, MARK_BODY)).encode()
SENT = {"s%d.eml" % i: ("From: me@example.org\nTo: you@example.org\nSubject: sent %d\n"
                        "Date: Fri, 02 Aug 2019 1%d:00:00 +0000\nMessage-ID: <sent%d@gen.example.org>\n\n"
                        "sent body %d\n" % (i, i, i, i)).encode() for i in range(3)}


def need(tool):
    path = shutil.which(tool)
    if not path:
        pytest.skip("%s is not installed (tools/deps.sh test)" % tool)
    return path


class World:
    pass


class Expected:
    def __init__(self, inbox, sent):
        self.inbox, self.sent = inbox, sent


@pytest.fixture(scope="module")
def world(corpus, tmp_path_factory):
    w = World()
    root = tmp_path_factory.mktemp("imapc")
    d = str(root / "data")
    pw = init_with_admin(d)
    pick = root / "pick"
    w.inbox = {digest: raw for digest, _, raw in corpus.sample_eml(N_CORPUS, SEED, str(pick))}
    (pick / "mark.eml").write_bytes(MARK)
    w.inbox[hashlib.sha256(MARK).hexdigest()] = MARK
    s = json.loads(mv("import", str(pick), "--archive", "admin", "--json", data_dir=d, timeout=900).stdout)
    assert s["imported"] == len(w.inbox), s
    sent = root / "sent"
    sent.mkdir()
    for n, raw in SENT.items():
        (sent / n).write_bytes(raw)
    s = json.loads(mv("import", str(sent), "--archive", "admin", "--folder", "Sent Items", "--json", data_dir=d).stdout)
    assert s["imported"] == len(SENT), s
    w.sent = {hashlib.sha256(r).hexdigest(): r for r in SENT.values()}
    srv = MvServer(d, password=pw).start()
    w.srv, w.pw, w.root = srv, pw, root
    yield w
    srv.stop()


def fingerprint(pem_path):
    import ssl
    with open(pem_path) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    return hashlib.sha512(der).hexdigest()


def maildir_files(path):
    """{relative path: bytes} of every message file under a Maildir tree."""
    out = {}
    for dirpath, _dirs, files in os.walk(path):
        if os.path.basename(dirpath) in ("cur", "new"):
            for f in files:
                p = os.path.join(dirpath, f)
                with open(p, "rb") as fh:
                    out[os.path.relpath(p, path)] = fh.read()
    return out


def folder_shas(files, folder_dir):
    return sorted(hashlib.sha256(b).hexdigest() for rel, b in files.items()
                  if os.path.dirname(os.path.dirname(rel)) == folder_dir)


TUID_RE = re.compile(rb"^X-TUID: [A-Za-z0-9+/]{12}\r?\n", re.M)


def strip_tuid(raw):
    """mbsync writes its journal's temporary id (X-TUID, 12 characters) as
    the last header line of every message it propagates (isync 1.4: also
    into the near Maildir, so that an interrupted run finds the copies);
    that one line, inside the header, is all it may add."""
    end = raw.find(b"\n\n")
    m = TUID_RE.search(raw, 0, end + 1 if end >= 0 else len(raw))
    return raw[:m.start()] + raw[m.end():] if m else raw


def email_roundtrip(raw):
    """What offlineimap3 does to every message it stores: Python's email
    parser and generator (folder/Base.py, policy.default, refold_source none)."""
    pol = email.policy.default.clone(cte_type="8bit", utf8=True, refold_source="none", linesep="\n")
    return email.message_from_bytes(raw, policy=pol).as_bytes(policy=pol)


def check_mirror(w, files, inbox_dir, sent_dir, client, normalise=None):
    if normalise:
        files = {rel: normalise(b) for rel, b in files.items()}
        w = Expected({hashlib.sha256(normalise(r)).hexdigest(): r for r in w.inbox.values()},
                     {hashlib.sha256(normalise(r)).hexdigest(): r for r in w.sent.values()})
    got = folder_shas(files, inbox_dir)
    want = sorted(w.inbox)
    missing = set(want) - set(got)
    extra = set(got) - set(want)
    tuid = sum(1 for b in files.values() if b"\nX-TUID: " in b)
    assert not missing and not extra and len(got) == len(want), (
        "%s's INBOX mirror differs from the originals: %d files, %d originals; %d originals without an "
        "identical file; %d files that are no original (%d with X-TUID)" % (
            client, len(got), len(want), len(missing), len(extra), tuid))
    assert folder_shas(files, sent_dir) == sorted(w.sent), "%s: Sent Items differs" % client


# ---------------------------------------------------------------------------------------------

def test_mbsync_mirror(world, tmp_path):
    w = world
    mbsync = need("mbsync")
    local = tmp_path / "mail"
    local.mkdir()
    rc = tmp_path / "mbsyncrc"
    rc.write_text("""IMAPAccount mv
Host 127.0.0.1
Port {port}
User admin
Pass "{pw}"
SSLType IMAPS
CertificateFile {cert}
Timeout 300

IMAPStore mv-far
Account mv

MaildirStore near
Path {local}/
Inbox {local}/INBOX
SubFolders Verbatim

Channel mv
Far :mv-far:
Near :near:
Patterns INBOX "Sent Items"
Create Near
Sync Pull
SyncState *
""".format(port=w.srv.imaps_port, pw=w.pw.replace('"', '\\"'), cert=w.srv.cert_path(), local=local))

    def sync():
        cp = subprocess.run([mbsync, "-c", str(rc), "-a"], capture_output=True, timeout=900)
        out = (cp.stdout + cp.stderr).decode("utf-8", "replace")
        assert cp.returncode == 0, "mbsync failed (%d):\n%s" % (cp.returncode, out[-4000:])
        return out

    sync()
    files = maildir_files(str(local))
    # (mbsync adds X-TUID only to messages it uploads; pulled ones must be stored as sent)
    assert sum(1 for b in files.values() if strip_tuid(b) != b) == len(files), "expected X-TUID in every file"
    check_mirror(w, files, "INBOX", "Sent Items", "mbsync", normalise=strip_tuid)
    stat1 = {rel: os.stat(os.path.join(str(local), rel)).st_mtime_ns for rel in files}
    out2 = sync()
    files2 = maildir_files(str(local))
    assert files2 == files, "a second mbsync -a changed the mirror"
    stat2 = {rel: os.stat(os.path.join(str(local), rel)).st_mtime_ns for rel in files2}
    assert stat2 == stat1, "a second mbsync -a rewrote files"
    # its summary (isync 1.4 prints "Near: +N *N #N -N" at the end): nothing new near
    if "Near: +" in out2:
        tail = out2[out2.rindex("Near: +"):]
        assert tail.startswith("Near: +0 "), out2[-500:]


def test_offlineimap_mirror(world, tmp_path):
    w = world
    offlineimap = need("offlineimap")
    local = tmp_path / "mail"
    meta = tmp_path / "meta"
    rc = tmp_path / "offlineimaprc"
    rc.write_text("""[general]
accounts = mv
metadata = {meta}
ui = basic

[Account mv]
localrepository = near
remoterepository = far

[Repository near]
type = Maildir
localfolders = {local}
sep = /

[Repository far]
type = IMAP
remotehost = 127.0.0.1
remoteport = {port}
remoteuser = admin
remotepass = {pw}
ssl = yes
# offlineimap3 matches the host against the certificate's DNS names only (not
# its IP address entries), so the certificate is pinned by its fingerprint
cert_fingerprint = {fp}
readonly = True
folderfilter = lambda f: f in ['INBOX', 'Sent Items']
maxconnections = 1
""".format(meta=meta, local=local, port=w.srv.imaps_port, pw=w.pw, fp=fingerprint(w.srv.cert_path())))

    def sync():
        cp = subprocess.run([offlineimap, "-c", str(rc), "-o", "-u", "basic"], capture_output=True, timeout=900)
        out = (cp.stdout + cp.stderr).decode("utf-8", "replace")
        assert cp.returncode == 0 and "ERROR" not in out, "offlineimap failed (%d):\n%s" % (cp.returncode, out[-4000:])
        return out

    sync()
    files = maildir_files(str(local))
    # offlineimap3 re-generates each message with Python's email package, so
    # compare after the same round trip of the originals; most stay byte-identical
    check_mirror(w, files, "INBOX", "Sent Items", "offlineimap", normalise=email_roundtrip)
    exact = sum(1 for b in files.values() if hashlib.sha256(b).hexdigest() in w.inbox)
    assert exact >= 0.95 * len(w.inbox), "only %d of %d files byte-identical" % (exact, len(w.inbox))
    sync()
    files2 = maildir_files(str(local))
    assert set(files2) == set(files) and files2 == files, "a second offlineimap run changed the mirror"
    # and nothing changed on the server
    m = __import__("imaplib").IMAP4_SSL("127.0.0.1", w.srv.imaps_port,
                                        ssl_context=__import__("ssl").create_default_context(cafile=w.srv.cert_path()))
    m.login("admin", w.pw)
    typ, dat = m.select("INBOX", readonly=True)
    assert int(dat[0]) == len(w.inbox)
    m.logout()


def test_neomutt_in_tmux(world, tmp_path):
    w = world
    neomutt = need("neomutt")
    tmux = need("tmux")
    home = tmp_path / "home"
    home.mkdir()
    muttrc = tmp_path / "muttrc"
    muttrc.write_text("""set folder="imaps://admin@127.0.0.1:{port}/"
set spoolfile="+INBOX"
set imap_pass="{pw}"
set certificate_file="{cert}"
set ssl_force_tls=yes
set header_cache=""
set message_cachedir=""
set imap_check_subscribed=no
set mail_check=600
set timeout=600
set sort=date
set pager_index_lines=0
set mark_old=no
set confirmappend=no
set wait_key=no
""".format(port=w.srv.imaps_port, pw=w.pw.replace('"', '\\"'), cert=w.srv.cert_path()))
    sock = str(tmp_path / "tmux.sock")
    session = "mvimap%d" % os.getpid()
    env = dict(os.environ, HOME=str(home), TERM="xterm-256color", LANG="C.UTF-8")

    def tm(*args, check=True):
        return subprocess.run([tmux, "-S", sock] + list(args), capture_output=True, timeout=60, env=env, check=check)

    def screen():
        return tm("capture-pane", "-p", "-t", session).stdout.decode("utf-8", "replace")

    def wait_for(text, seconds=120):
        deadline = time.monotonic() + seconds
        last = ""
        while time.monotonic() < deadline:
            last = screen()
            if text in last:
                return last
            # a certificate question (should not come: the certificate file is given)
            if "(r)eject" in last and "ccept" in last:
                pytest.fail("neomutt asks about the certificate although certificate_file names it:\n" + last)
            time.sleep(0.5)
        pytest.fail("%r did not appear on neomutt's screen:\n%s" % (text, last))

    tm("new-session", "-d", "-s", session, "-x", "200", "-y", "50",
       "%s -n -F %s -f imaps://admin@127.0.0.1:%d/INBOX" % (neomutt, muttrc, w.srv.imaps_port))
    try:
        wait_for("Msgs:")            # the index is loaded: its status line counts the messages
        tm("send-keys", "-t", session, "l")
        wait_for("Limit to messages matching")
        tm("send-keys", "-t", session, "~s Kilimanjaro", "Enter")
        index = wait_for(MARK_SUBJECT)
        deadline = time.monotonic() + 60
        while sum(1 for ln in screen().splitlines() if "  " in ln and "Kilimanjaro" not in ln and
                  ln.lstrip()[:1].isdigit()):
            assert time.monotonic() < deadline, "the limit did not leave one message:\n" + screen()
            time.sleep(0.5)
        index = screen()
        tm("send-keys", "-t", session, "Enter")
        pager = wait_for(MARK_BODY)
        assert "Hello team," in pager, pager
        tm("send-keys", "-t", session, "q")
        time.sleep(0.3)
        tm("send-keys", "-t", session, "q")
        time.sleep(0.5)
        assert MARK_SUBJECT in index
    finally:
        tm("kill-server", check=False)
