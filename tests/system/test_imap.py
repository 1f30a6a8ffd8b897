"""The integrated read-only IMAP server (src/imapd/) against real data.

One server per module, on a data directory holding a few hundred
SpamAssassin messages (archive "admin": INBOX) plus generated folders: Sent
Items, a non-ASCII folder, multipart messages with attachments, a Maildir
with flags, and the archives of two other users.  Every expectation is
computed here from the original files (hashes, Python's email package, the
corpus header oracle of mvtest), never from the server's own answers.

Tests keep their order (one xdist group): the ones that change the data or
restart the server (privileges, restart/RecoverStore, IDLE) come last."""

import base64
import email
import email.policy
import email.utils
import hashlib
import imaplib
import json
import os
import random
import re
import socket
import ssl
import threading
import time

import pytest

import dovecot  # its modified UTF-7 encoder, written independently of the server

from mvserver import MvServer, init_with_admin
from mvtest import contains_seq, mv, tokens

N_CORPUS = 300          # corpus messages in INBOX (distinct contents)
SEED = 20261203

imaplib.Commands.setdefault("ID", ("NONAUTH", "AUTH", "SELECTED", "LOGOUT"))
imaplib.Commands.setdefault("IDLE", ("AUTH", "SELECTED"))


# ---------------------------------------------------------------------------------------------
# An IMAP response parser (literals included), independent of the server.

class Lit(bytes):
    """A string that came as a literal."""


def _parse_seq(buf, i, stop=None):
    out = []
    n = len(buf)
    while i < n:
        c = buf[i:i + 1]
        if c in b" \r\n":
            i += 1
            continue
        if stop is not None and c == stop:
            return out, i + 1
        if c == b"(":
            v, i = _parse_seq(buf, i + 1, b")")
            out.append(v)
        elif c == b'"':
            j = i + 1
            s = bytearray()
            while buf[j:j + 1] != b'"':
                if buf[j:j + 1] == b"\\":
                    j += 1
                s += buf[j:j + 1]
                j += 1
            out.append(bytes(s))
            i = j + 1
        elif c == b"{" or (c == b"~" and buf[i + 1:i + 2] == b"{"):
            j = buf.index(b"}", i)
            size = int(buf[buf.index(b"{", i) + 1:j].rstrip(b"+"))
            j += 1
            if buf[j:j + 2] == b"\r\n":
                j += 2
            out.append(Lit(buf[j:j + size]))
            i = j + size
        else:
            j = i
            depth = 0
            while j < n:
                ch = buf[j:j + 1]
                if ch == b"[":
                    depth += 1
                elif ch == b"]":
                    depth -= 1
                elif depth == 0 and ch in b" ()\r\n":
                    break
                j += 1
            atom = buf[i:j].decode("latin-1")
            out.append(None if atom.upper() == "NIL" else atom)
            i = j
    if stop is not None:
        raise ValueError("unterminated list in %r" % buf[:200])
    return out, i


def parse_sexp(buf):
    return _parse_seq(buf, 0)[0]


def join_data(data):
    """imaplib's data list back into wire bytes (literals as {n}CRLF bytes)."""
    parts = []
    for d in data:
        if isinstance(d, tuple):
            parts.append(d[0] + b"\r\n" + d[1])
        elif d is not None:
            parts.append(d)
    return b" ".join(parts)


def fetch(m, seqset, items, uid=False):
    """[(seq, {ITEM NAME: value})] of a FETCH; literal values are bytes."""
    typ, data = m.uid("FETCH", seqset, items) if uid else m.fetch(seqset, items)
    assert typ == "OK", (seqset, items, typ, data)
    toks = parse_sexp(join_data(data))
    out = []
    for k in range(0, len(toks), 2):
        seq, lst = int(toks[k]), toks[k + 1]
        out.append((seq, {str(lst[j]).upper(): lst[j + 1] for j in range(0, len(lst), 2)}))
    return out


def run(m, name, *args, resp=None):
    """A command through imaplib; (status, tagged text, untagged data of resp)."""
    typ, dat = m._simple_command(name, *args)
    got = m.untagged_responses.pop(resp or name, [])
    return typ, b" ".join(x for x in dat if isinstance(x, bytes)).decode("latin-1"), got


def search(m, *keys, uid=False):
    typ, dat = m.uid("SEARCH", *keys) if uid else m.search(None, *keys)
    assert typ == "OK", (keys, typ, dat)
    return {int(x) for x in b" ".join(dat).split()}


# ---------------------------------------------------------------------------------------------
# The data set.

def gen_message(subject, body, date, frm="Sender <sender@example.org>", to="rcpt@example.org", msgid=None):
    msgid = msgid or "<%s@gen.example.org>" % hashlib.sha1(subject.encode()).hexdigest()[:16]
    return ("From: %s\nTo: %s\nSubject: %s\nDate: %s\nMessage-ID: %s\nMIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=us-ascii\n\n%s\n" % (frm, to, subject, date, msgid, body)).encode()


ATTACH_BYTES = bytes(random.Random(SEED).randrange(256) for _ in range(5000)) + b"\x00\x01tail"


def attachment_messages():
    """Two generated multipart messages: {file name: bytes}."""
    from email.message import EmailMessage
    a = EmailMessage()
    a["From"] = "Attach Er <attacher@example.net>"
    a["To"] = "rcpt@example.org"
    a["Subject"] = "Quarterly figures attached"
    a["Date"] = "Tue, 05 Mar 2019 10:00:00 +0000"
    a["Message-ID"] = "<attach-one@gen.example.org>"
    a.set_content("Please find the figures attached.\nregards\n")
    a.add_attachment(ATTACH_BYTES, maintype="application", subtype="octet-stream", filename="figures.bin")
    b = EmailMessage()
    b["From"] = "Html Sender <html@example.net>"
    b["To"] = "rcpt@example.org"
    b["Subject"] = "Alternative with image"
    b["Date"] = "Wed, 06 Mar 2019 11:00:00 +0000"
    b["Message-ID"] = "<attach-two@gen.example.org>"
    b.set_content("plain version of the text\n")
    b.add_alternative("<html><body><p>html version</p></body></html>\n", subtype="html")
    b.add_attachment(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, maintype="image", subtype="png", filename="pic.png")
    return {"one.eml": a.as_bytes(policy=email.policy.SMTP.clone(linesep="\n")),
            "two.eml": b.as_bytes(policy=email.policy.SMTP.clone(linesep="\n"))}


SENT = {"sent-%d.eml" % i: gen_message("Sent report number %d" % i, "sent body line %d" % i,
                                       "Mon, 0%d Apr 2019 09:00:00 +0000" % (i + 1)) for i in range(3)}
UMLAUT = {"u-%d.eml" % i: gen_message("Umlaut folder message %d" % i, "grosse body %d" % i,
                                      "Fri, 1%d May 2020 12:00:00 +0000" % i) for i in range(2)}
BOB_INBOX = {"b-%d.eml" % i: gen_message("Bob inbox %d" % i, "bob says %d" % i, "Sat, 0%d Jun 2019 08:00:00 +0000" % (i + 1),
                                         frm="Bob <bob@example.com>") for i in range(4)}
BOB_PRIVATE = {"p-%d.eml" % i: gen_message("Bob private %d" % i, "secret %d" % i, "Sun, 0%d Jun 2019 08:00:00 +0000" % (i + 1),
                                           frm="Bob <bob@example.com>") for i in range(2)}
ALICE_INBOX = {"a-%d.eml" % i: gen_message("Alice own %d" % i, "alice body %d" % i, "Tue, 0%d Jul 2019 08:00:00 +0000" % (i + 1),
                                           frm="Alice <alice@example.com>") for i in range(3)}
# Maildir: file name -> (bytes, expected IMAP flags)
FLAGGED = {
    "cur/1000.a.host:2,FS": (gen_message("Flag flagged seen", "x", "Mon, 01 Jul 2019 08:00:00 +0000"), {"\\Flagged", "\\Seen"}),
    "cur/1001.b.host:2,": (gen_message("Flag unseen", "x", "Mon, 01 Jul 2019 09:00:00 +0000"), set()),
    "new/1002.c.host": (gen_message("Flag new", "x", "Mon, 01 Jul 2019 10:00:00 +0000"), set()),
    "cur/1003.d.host:2,RS": (gen_message("Flag answered", "x", "Mon, 01 Jul 2019 11:00:00 +0000"), {"\\Answered", "\\Seen"}),
}

UMLAUT_FOLDER = "Archiv/Größe"
PASSWORDS = {"alice": "Alice-Imap-Pw-4471", "noimap": "NoImap-Pw-8812"}


def create_user(srv, name, login, password):
    """CreateUser (its `password` field would clash with MvServer.ok's own argument)."""
    status, env = srv.request("/api/invoke/CreateUser", {"userName": name, "privileges": "login",
                                                         "loginPrivileges": login, "password": password})
    assert status == 200 and env["statusCode"] == "succeeded", (name, status, env)


def write_files(root, files):
    os.makedirs(root, exist_ok=True)
    for name, raw in files.items():
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(raw)
    return root


def imp(d, src, archive, folder=None, n=None):
    args = ["import", src, "--archive", archive, "--json"] + (["--folder", folder] if folder else [])
    s = json.loads(mv(*args, data_dir=d, check=(0, 3), timeout=900).stdout)
    if n is not None:
        assert s["imported"] == n, s
    return s


class World:
    pass


@pytest.fixture(scope="module")
def world(corpus, tmp_path_factory):
    w = World()
    root = tmp_path_factory.mktemp("imap")
    d = str(root / "data")
    pw = init_with_admin(d)
    w.raw = {}          # sha -> bytes (the INBOX originals)
    w.rel = {}          # sha -> corpus rel path
    pick = root / "pick"
    for digest, rel, raw in corpus.sample_eml(N_CORPUS, SEED, str(pick)):
        w.raw[digest] = raw
        w.rel[digest] = rel
    w.meta = {digest: corpus._parse(rel) for digest, rel in w.rel.items()}   # mvtest's header oracle
    imp(d, str(pick), "admin", n=N_CORPUS)
    imp(d, write_files(str(root / "sent"), SENT), "admin", "Sent Items", 3)
    imp(d, write_files(str(root / "umlaut"), UMLAUT), "admin", UMLAUT_FOLDER, 2)
    w.attach = attachment_messages()
    imp(d, write_files(str(root / "attach"), w.attach), "admin", "Attachments", 2)
    md = root / "maildir"
    for sub in ("cur", "new", "tmp"):
        (md / sub).mkdir(parents=True)
    write_files(str(md), {k: v[0] for k, v in FLAGGED.items()})
    imp(d, str(md), "admin", "Flags", 4)
    imp(d, write_files(str(root / "bob-in"), BOB_INBOX), "bob", "Inbox", 4)
    imp(d, write_files(str(root / "bob-priv"), BOB_PRIVATE), "bob", "Private", 2)
    imp(d, write_files(str(root / "alice-in"), ALICE_INBOX), "alice", "Inbox", 3)
    srv = MvServer(d, password=pw).start()
    try:
        create_user(srv, "alice", "imap", PASSWORDS["alice"])
        srv.ok("SetUserPrivilegesOnFolder", userName="alice", folder="alice", privileges="read")
        create_user(srv, "noimap", "api", PASSWORDS["noimap"])
        srv.ok("SetUserPrivilegesOnFolder", userName="noimap", folder="noimap", privileges="read")
    except BaseException:
        srv.kill()
        raise
    w.srv, w.dir, w.pw, w.root = srv, d, pw, root
    w.ctx = ssl.create_default_context(cafile=srv.cert_path())
    w.uid_sha = None
    yield w
    srv.stop()


def connect(w, user="admin", password=None):
    m = imaplib.IMAP4_SSL("127.0.0.1", w.srv.imaps_port, ssl_context=w.ctx, timeout=120)
    m.login(user, password or (w.pw if user == "admin" else PASSWORDS[user]))
    return m


def audit_since(w, seq):
    return [e for e in w.srv.ok("GetAuditLog") if e["seq"] > seq]


def last_seq(w):
    entries = w.srv.ok("GetAuditLog")
    return entries[-1]["seq"] if entries else 0


def inbox_map(m):
    """{uid: sha256 of BODY.PEEK[]} of the selected mailbox."""
    uids = {}
    for seq, it in fetch(m, "1:*", "(UID BODY.PEEK[])"):
        uids[int(it["UID"])] = hashlib.sha256(it["BODY[]"]).hexdigest()
    return uids


def inbox_uids(w):
    """INBOX's {uid: sha256}, and w.seq_uid, read once by whichever test needs them first
    (each test runs alone too); test_fetch_bytes_identical checks them against the originals."""
    if w.uid_sha is None:
        m = connect(w)
        m.select("INBOX", readonly=True)
        got = fetch(m, "1:*", "(UID)")
        w.seq_uid = {seq: int(it["UID"]) for seq, it in got}
        w.uid_sha = inbox_map(m)
        m.logout()
    return w.uid_sha


# ---------------------------------------------------------------------------------------------
# Logon

def test_capability_and_logon_over_tls(world):
    w = world
    m = imaplib.IMAP4_SSL("127.0.0.1", w.srv.imaps_port, ssl_context=w.ctx, timeout=60)
    before = set(m.capabilities)
    assert {"IMAP4REV1", "AUTH=PLAIN", "IDLE", "LITERAL+"} <= before, before
    assert "LOGINDISABLED" not in before and "STARTTLS" not in before, before
    assert "NAMESPACE" not in before
    typ, dat = m.login("admin", w.pw)
    assert typ == "OK"
    typ, dat = m.capability()
    after = set(dat[0].decode().upper().split())
    assert {"IMAP4REV1", "NAMESPACE", "SPECIAL-USE", "ESEARCH", "BINARY", "IDLE", "UIDPLUS", "UNSELECT"} <= after, after
    assert not any(c.startswith("AUTH=") for c in after), after
    m.logout()


def test_starttls_port(world):
    w = world
    m = imaplib.IMAP4("127.0.0.1", w.srv.imap_port, timeout=60)
    caps = set(m.capabilities)
    assert "LOGINDISABLED" in caps and "STARTTLS" in caps, caps
    assert "AUTH=PLAIN" not in caps, caps
    typ, text, _ = run(m, "LOGIN", "admin", m._quote(w.pw))
    assert typ == "NO" and "PRIVACYREQUIRED" in text, (typ, text)
    m.starttls(ssl_context=w.ctx)
    caps = set(m.capabilities)
    assert "AUTH=PLAIN" in caps and "LOGINDISABLED" not in caps and "STARTTLS" not in caps, caps
    assert m.login("admin", w.pw)[0] == "OK"
    typ, dat = m.select("INBOX", readonly=True)
    assert typ == "OK" and int(dat[0]) == N_CORPUS, dat
    m.logout()


def test_logout_after_starttls_is_answered(world):
    """LOGOUT's tagged OK arrives before the close, on STARTTLS connections
    too (the answer used to be cut now and then: 31 of 200 before the fix)."""
    w = world
    for _ in range(60):
        m = imaplib.IMAP4("127.0.0.1", w.srv.imap_port, timeout=60)
        m.starttls(ssl_context=w.ctx)
        m.login("admin", w.pw)
        # imaplib raises "socket error: EOF" when the tagged OK never came.
        assert m.logout()[0] == "BYE"


def test_authenticate_plain(world):
    w = world
    m = imaplib.IMAP4_SSL("127.0.0.1", w.srv.imaps_port, ssl_context=w.ctx, timeout=60)
    typ, _ = m.authenticate("PLAIN", lambda _: b"\0admin\0" + w.pw.encode())
    assert typ == "OK"
    assert m.select("INBOX", readonly=True)[0] == "OK"
    m.logout()
    # SASL-IR: the initial response on the command line
    m = imaplib.IMAP4_SSL("127.0.0.1", w.srv.imaps_port, ssl_context=w.ctx, timeout=60)
    ir = base64.b64encode(b"\0alice\0" + PASSWORDS["alice"].encode()).decode()
    typ, text, _ = run(m, "AUTHENTICATE", "PLAIN", ir)
    assert typ == "OK", text
    m.logout()


def test_wrong_password_and_no_imap_privilege(world):
    w = world
    seq = last_seq(w)
    m = imaplib.IMAP4_SSL("127.0.0.1", w.srv.imaps_port, ssl_context=w.ctx, timeout=120)
    with pytest.raises(imaplib.IMAP4.error) as e:
        m.login("alice", "wrong-password-123")
    assert "AUTHENTICATIONFAILED" in str(e.value), e.value
    # the connection goes on: a right password works after a wrong one
    assert m.login("alice", PASSWORDS["alice"])[0] == "OK"
    m.logout()
    m = imaplib.IMAP4_SSL("127.0.0.1", w.srv.imaps_port, ssl_context=w.ctx, timeout=120)
    with pytest.raises(imaplib.IMAP4.error) as e:
        m.login("noimap", PASSWORDS["noimap"])
    assert "AUTHORIZATIONFAILED" in str(e.value) or "AUTHENTICATIONFAILED" in str(e.value), e.value
    m.logout()
    failed = [e for e in audit_since(w, seq) if e["event"] == "UserLogonFailed"]
    users = [e["user"] for e in failed]
    assert "alice" in users, "a wrong IMAP password is not audited: %r" % failed
    assert "noimap" in users, "a refused IMAP logon (no imap privilege) is not audited: %r" % failed
    assert "wrong-password-123" not in json.dumps(failed)


# ---------------------------------------------------------------------------------------------
# Mailboxes

def list_lines(data):
    out = {}
    for line in data:
        if line is None:
            continue
        toks = parse_sexp(join_data([line]) if isinstance(line, tuple) else line)
        flags, name = toks[0], toks[2]
        out[name.decode() if isinstance(name, bytes) else name] = {f.lower() for f in flags}
    return out


def test_list_lsub_namespace_status(world):
    w = world
    m = connect(w)
    typ, data = m.list('""', '"*"')
    assert typ == "OK"
    names = list_lines(data)
    umlaut = dovecot.mutf7_encode(UMLAUT_FOLDER)
    assert umlaut == "Archiv/Gr&APYA3w-e"
    for n in ["INBOX", "Sent Items", "Attachments", "Flags", "Archiv", umlaut, "Other Users",
              "Other Users/bob/Inbox", "Other Users/bob/Private", "Other Users/alice/Inbox"]:
        assert n in names, "LIST lacks %r: %r" % (n, sorted(names))
    assert "\\noselect" in names["Archiv"] and "\\haschildren" in names["Archiv"], names["Archiv"]
    assert "\\noselect" in names["Other Users"]
    assert "\\noselect" not in names[umlaut] and "\\hasnochildren" in names[umlaut]
    assert all(not n.startswith("Other Users/admin") for n in names), "own archive shown under Other Users"
    assert not any(re.search(r"[^\x20-\x7e]", n) for n in names), "a LIST name is not modified UTF-7"
    # '%' does not cross the separator
    top = list_lines(m.list('""', '"%"')[1])
    assert set(top) == {n for n in names if "/" not in n}, (sorted(top), sorted(names))
    # LSUB: everything is subscribed
    typ, data = m.lsub('""', '"*"')
    assert typ == "OK" and set(list_lines(data)) == set(names)
    # SPECIAL-USE
    typ, text, data = run(m, "LIST", '""', '"*"', "RETURN", "(SPECIAL-USE)")
    su = list_lines(data)
    assert "\\sent" in su["Sent Items"], su["Sent Items"]
    assert not any("\\sent" in f for n, f in su.items() if n != "Sent Items"), su
    typ, text, data = run(m, "LIST", "(SPECIAL-USE)", '""', '"*"')
    assert set(list_lines(data)) == {"Sent Items"}, data
    # NAMESPACE
    typ, data = m.namespace()
    assert typ == "OK"
    ns = parse_sexp(data[0])
    assert ns[0] == [[b"", b"/"]] and ns[1] == [[b"Other Users/", b"/"]] and ns[2] is None, ns
    # STATUS, counted from what was imported
    for name, n, unseen in [("INBOX", N_CORPUS, 0), ("Sent Items", 3, 0), (umlaut, 2, 0),
                            ("Other Users/bob/Private", 2, 0)]:
        typ, data = m.status('"%s"' % name, "(MESSAGES UNSEEN UIDNEXT UIDVALIDITY)")
        assert typ == "OK", (name, data)
        st = parse_sexp(data[0])
        vals = dict(zip(st[1][::2], st[1][1::2]))
        assert int(vals["MESSAGES"]) == n and int(vals["UNSEEN"]) == unseen, (name, vals)
        assert int(vals["UIDVALIDITY"]) > 0 and int(vals["UIDNEXT"]) > 0
    # the non-ASCII mailbox is selectable by its mUTF-7 name and holds its messages
    typ, dat = m.select('"%s"' % umlaut, readonly=True)
    assert typ == "OK" and int(dat[0]) == 2
    subs = {it["BODY[HEADER.FIELDS (SUBJECT)]"].decode().strip() for _, it in fetch(m, "1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")}
    assert subs == {"Subject: Umlaut folder message 0", "Subject: Umlaut folder message 1"}, subs
    typ, text, _ = run(m, "SELECT", "Archiv")
    assert typ == "NO", (typ, text)
    typ, text, _ = run(m, "SELECT", "NoSuchBox")
    assert typ == "NO" and "NONEXISTENT" in text, text
    m.logout()


def test_select_is_read_only_and_flags(world):
    w = world
    m = connect(w)
    typ, text, _ = run(m, "SELECT", "INBOX")
    assert typ == "OK" and "[READ-ONLY]" in text, text
    m.untagged_responses.clear()
    typ, text, _ = run(m, "SELECT", "Flags")
    assert typ == "OK" and "[READ-ONLY]" in text
    m.untagged_responses.clear()
    m.state = "SELECTED"      # imaplib's own select() refuses a READ-ONLY answer to SELECT
    got = {}
    for _, it in fetch(m, "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])"):
        subj = it["BODY[HEADER.FIELDS (SUBJECT)]"].decode().strip()[len("Subject: "):]
        got[subj] = set(it["FLAGS"])
    want = {re.search(rb"Subject: (.*)\n", raw).group(1).decode(): fl for raw, fl in FLAGGED.values()}
    assert got == want, (got, want)
    typ, data = m.status("Flags", "(MESSAGES UNSEEN)")
    st = parse_sexp(data[0])[1]
    assert (int(st[1]), int(st[3])) == (4, sum(1 for v in FLAGGED.values() if "\\Seen" not in v[1])), st
    unseen = search(m, "UNSEEN")
    assert len(unseen) == sum(1 for v in FLAGGED.values() if "\\Seen" not in v[1])
    assert len(search(m, "FLAGGED")) == 1 and len(search(m, "ANSWERED")) == 1
    m.logout()


# ---------------------------------------------------------------------------------------------
# FETCH against the archived bytes

def header_end(raw):
    """End of the header block (just after the blank line), or None."""
    ends = [i + len(sep) for sep in (b"\n\n", b"\r\n\r\n") for i in [raw.find(sep)] if i >= 0]
    return min(ends) if ends else None


def clean_header(raw, end):
    block = raw[:end].decode("latin-1").replace("\r\n", "\n").rstrip("\n")
    return all(re.match(r"[\x21-\x39\x3b-\x7e]+:", ln) or ln[:1] in (" ", "\t") for ln in block.split("\n")) \
        and not block.startswith((" ", "\t"))


def test_fetch_bytes_identical(world):
    w = world
    m = connect(w)
    typ, dat = m.select("INBOX", readonly=True)
    assert int(dat[0]) == N_CORPUS
    got = fetch(m, "1:*", "(UID RFC822.SIZE BODY.PEEK[])")
    assert [s for s, _ in got] == list(range(1, N_CORPUS + 1))
    shas = {}
    sizes_bad = []
    for seq, it in got:
        body = it["BODY[]"]
        digest = hashlib.sha256(body).hexdigest()
        shas[int(it["UID"])] = digest
        if int(it["RFC822.SIZE"]) != len(body):
            sizes_bad.append((seq, it["RFC822.SIZE"], len(body)))
    assert set(shas.values()) == set(w.raw), (
        "BODY[] differs from the originals: %d fetched bodies are no original, %d originals missing"
        % (len(set(shas.values()) - set(w.raw)), len(set(w.raw) - set(shas.values()))))
    assert not sizes_bad, sizes_bad[:5]
    uids = [int(it["UID"]) for _, it in got]
    assert uids == sorted(uids) and len(set(uids)) == N_CORPUS
    w.uid_sha = shas
    w.seq_uid = {seq: int(it["UID"]) for seq, it in got}
    # RFC822 and BODY[] (not PEEK) on a sample, by UID
    sample = sorted(shas)[:: N_CORPUS // 15][:15]
    for item, key in (("RFC822", "RFC822"), ("BODY[]", "BODY[]")):
        res = fetch(m, ",".join(map(str, sample)), "(%s)" % item, uid=True)
        assert len(res) == len(sample)
        for _, it in res:
            assert hashlib.sha256(it[key]).hexdigest() == shas[int(it["UID"])], (item, it["UID"])
    m.logout()


def test_fetch_sections(world):
    w = world
    inbox_uids(w)
    m = connect(w)
    m.select("INBOX", readonly=True)
    res = fetch(m, "1:*", "(UID RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER] BODY.PEEK[]<0.100> BODY.PEEK[]<100.37>)")
    checked = dates = 0
    for seq, it in res:
        raw = w.raw[w.uid_sha[int(it["UID"])]]
        assert int(it["RFC822.SIZE"]) == len(raw)
        assert it["BODY[]<0>"] == raw[:100], seq
        assert it["BODY[]<100>"] == raw[100:137], seq
        end = header_end(raw)
        if end is not None and clean_header(raw, end):
            assert it["BODY[HEADER]"] == raw[:end], (seq, w.rel[w.uid_sha[int(it["UID"])]])
            checked += 1
        meta = w.meta[w.uid_sha[int(it["UID"])]]
        if meta.date_utc is not None:
            want = meta.date_utc.strftime("%d-%b-%Y %H:%M:%S +0000")
            assert it["INTERNALDATE"].decode() == want, (seq, w.rel[w.uid_sha[int(it["UID"])]], it["INTERNALDATE"], want)
            dates += 1
    assert checked > N_CORPUS * 0.8, checked
    assert dates > N_CORPUS * 0.5, dates
    # BODY[TEXT] (its own command: one literal per response keeps the parse simple)
    for seq, it in fetch(m, "1:60", "(UID BODY.PEEK[TEXT])"):
        raw = w.raw[w.uid_sha[int(it["UID"])]]
        end = header_end(raw)
        if end is not None and clean_header(raw, end):
            assert it["BODY[TEXT]"] == raw[end:], seq
    # HEADER.FIELDS (Subject): the Subject field as the original wrote it, then the blank line
    for seq, it in fetch(m, "1:60", "(UID BODY.PEEK[HEADER.FIELDS (Subject)])"):
        raw = w.raw[w.uid_sha[int(it["UID"])]]
        end = header_end(raw) or len(raw)
        hdr = raw[:end].replace(b"\r\n", b"\n")
        fields = re.findall(rb"(?im)^subject:.*\n(?:[ \t].*\n)*", hdr)
        got = it["BODY[HEADER.FIELDS (SUBJECT)]"].replace(b"\r\n", b"\n")
        assert got == b"".join(fields) + b"\n", (seq, got, fields)
    m.logout()


def test_fetch_binary_bodystructure_envelope(world):
    w = world
    m = connect(w)
    m.select("Attachments", readonly=True)
    by_subject = {}
    for seq, it in fetch(m, "1:*", "(UID ENVELOPE BODYSTRUCTURE)"):
        env = it["ENVELOPE"]
        by_subject[env[1].decode()] = (seq, it)
    one_seq, one = by_subject["Quarterly figures attached"]
    env = one["ENVELOPE"]
    assert env[9] == b"<attach-one@gen.example.org>", env
    assert env[2][0][2:] == [b"attacher", b"example.net"] and env[2][0][0] == b"Attach Er", env[2]
    bs = one["BODYSTRUCTURE"]
    # (text/plain)(application/octet-stream) "mixed"
    assert isinstance(bs[0], list) and isinstance(bs[1], list) and bs[2].lower() == b"mixed", bs
    assert (bs[0][0].lower(), bs[0][1].lower(), bs[1][0].lower()) == (b"text", b"plain", b"application"), bs
    att = bs[1]
    assert att[1].lower() == b"octet-stream" and att[5].lower() == b"base64", att
    # BINARY[2] is the decoded attachment; BINARY.SIZE agrees; BODY[2] is the base64 text
    res = fetch(m, str(one_seq), "(BINARY.PEEK[2] BINARY.SIZE[2])")[0][1]
    assert res["BINARY[2]"] == ATTACH_BYTES, (len(res["BINARY[2]"]), len(ATTACH_BYTES))
    assert int(res["BINARY.SIZE[2]"]) == len(ATTACH_BYTES)
    body2 = fetch(m, str(one_seq), "(BODY.PEEK[2])")[0][1]["BODY[2]"]
    assert base64.b64decode(body2) == ATTACH_BYTES
    part1 = fetch(m, str(one_seq), "(BODY.PEEK[1])")[0][1]["BODY[1]"]
    assert part1.replace(b"\r\n", b"\n") == b"Please find the figures attached.\nregards\n", part1
    # the second: multipart/mixed (multipart/alternative (plain, html), image/png)
    two_seq, two = by_subject["Alternative with image"]
    bs = two["BODYSTRUCTURE"]
    alt = bs[0]
    assert isinstance(alt, list) and isinstance(alt[0], list), bs
    assert (alt[0][0].lower(), alt[0][1].lower()) == (b"text", b"plain")
    assert (alt[1][0].lower(), alt[1][1].lower()) == (b"text", b"html")
    assert alt[2].lower() == b"alternative", alt
    assert (bs[1][0].lower(), bs[1][1].lower()) == (b"image", b"png"), bs[1]
    png = email.message_from_bytes(w.attach["two.eml"], policy=email.policy.default)
    want_png = [p for p in png.walk() if p.get_content_type() == "image/png"][0].get_content()
    res = fetch(m, str(two_seq), "(BINARY.PEEK[2])")[0][1]
    assert res["BINARY[2]"] == want_png
    res = fetch(m, str(two_seq), "(BODY.PEEK[1.2])")[0][1]
    assert b"<p>html version</p>" in res["BODY[1.2]"]
    m.logout()


def shape(msg):
    if msg.is_multipart():
        return [msg.get_content_subtype(), [shape(p) for p in msg.get_payload()]]
    return msg.get_content_type()


def bs_shape(bs):
    if isinstance(bs[0], list):
        i = 0
        while isinstance(bs[i], list):
            i += 1
        return [bs[i].decode().lower(), [bs_shape(p) for p in bs[:i]]]
    return "%s/%s" % (bs[0].decode().lower(), bs[1].decode().lower())


def test_bodystructure_of_corpus_multiparts(world):
    w = world
    inbox_uids(w)
    chosen = []
    for uid, digest in sorted(w.uid_sha.items()):
        msg = email.message_from_bytes(w.raw[digest], policy=email.policy.compat32)
        if not msg.is_multipart():
            continue
        if any(p.defects for p in msg.walk()):
            continue
        if any(p.get_content_type() == "message/rfc822" for p in msg.walk()):
            continue
        chosen.append((uid, shape(msg), msg))
    assert len(chosen) >= 5, "too few clean multipart messages in the subset"
    m = connect(w)
    m.select("INBOX", readonly=True)
    chosen = chosen[:25]
    res = {int(it["UID"]): it for _, it in fetch(m, ",".join(str(u) for u, _, _ in chosen),
                                                 "(UID BODYSTRUCTURE ENVELOPE)", uid=True)}
    for uid, want, msg in chosen:
        assert bs_shape(res[uid]["BODYSTRUCTURE"]) == want, (uid, w.rel[w.uid_sha[uid]], res[uid]["BODYSTRUCTURE"], want)
        meta = w.meta[w.uid_sha[uid]]
        if meta.subject_certain and meta.subject:
            assert res[uid]["ENVELOPE"][1].decode("latin-1") == meta.subject, uid
    m.logout()


# ---------------------------------------------------------------------------------------------
# SEARCH against a scan of the originals

def test_text_search_is_the_selected_folders(world):
    """A text key searches the selected folder's part of the index (its scope
    token in the MATCH): the words of one folder are found in it and in no
    other, in an archive of several folders, a non-ASCII folder and another
    user's archive alike; a word of every folder is found in each."""
    m = connect(world)
    umlaut = dovecot.mutf7_encode(UMLAUT_FOLDER)
    own = {"Sent Items": ("sent", 3), umlaut: ("grosse", 2), "Other Users/bob/Private": ("secret", 2),
           "Other Users/bob/Inbox": ("says", 4)}
    for name, (word, n) in own.items():
        typ, dat = m.select('"%s"' % name, readonly=True)
        assert typ == "OK" and int(dat[0]) == n, (name, dat)
        assert search(m, "BODY", word) == set(range(1, n + 1)), (name, word)
        assert search(m, "TEXT", "body" if "bob" not in name else "bob") == set(range(1, n + 1)), name
        for other, (other_word, _) in own.items():
            if other != name:
                assert search(m, "BODY", other_word) == set(), (name, other_word)
    m.logout()


def test_search_against_scan(world):
    w = world
    inbox_uids(w)
    uid_meta = {uid: w.meta[d] for uid, d in w.uid_sha.items()}
    uid_seq = {u: s for s, u in w.seq_uid.items()}
    everything = set(uid_meta)
    m = connect(w)
    m.select("INBOX", readonly=True)

    def check(keys, want, certain, what):
        got = search(m, *keys, uid=True)
        assert got <= everything, keys
        wrong_in = {u for u in got - want if u in certain}
        wrong_out = {u for u in want - got if u in certain}
        assert not wrong_in and not wrong_out, "%s %s: extra %s missing %s" % (what, keys, [
            (w.rel[w.uid_sha[u]], uid_meta[u].subject) for u in sorted(wrong_in)[:5]],
            [(w.rel[w.uid_sha[u]], uid_meta[u].subject) for u in sorted(wrong_out)[:5]])
        # the sequence-number form names the same messages
        assert search(m, *keys) == {uid_seq[u] for u in got}
        return got

    subj_certain = {u for u, mt in uid_meta.items() if mt.subject_certain}
    # words: the commonest subject words of 4+ letters, plus a short prefix
    counts = {}
    for u in subj_certain:
        for t in set(uid_meta[u].subject_toks):
            if len(t) >= 4 and t.isalpha():
                counts[t] = counts.get(t, 0) + 1
    words = [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:4]] + ["re", "mon"]
    results = {}
    for word in words:
        want = {u for u in subj_certain if any(t.startswith(word) for t in uid_meta[u].subject_toks)}
        assert want or word in ("re", "mon")
        got = check(["SUBJECT", word], want, subj_certain, "SUBJECT prefix")
        for u in got - subj_certain:
            assert word in uid_meta[u].subject_loose, (word, uid_meta[u].subject_loose)
        results[word] = got
    # phrase: two adjacent words of one subject
    for u in sorted(subj_certain):
        toks = uid_meta[u].subject_toks
        if len(toks) >= 3 and all(t.isalpha() and len(t) > 2 for t in toks[:2]):
            phrase = toks[:2]
            break
    want = {v for v in subj_certain if contains_seq(uid_meta[v].subject_toks, phrase)}
    check(["SUBJECT", '"%s"' % " ".join(phrase)], want, {v for v in subj_certain if
                                                         contains_seq(uid_meta[v].subject_toks, phrase) or
                                                         not any(t.startswith(phrase[-1]) for t in uid_meta[v].subject_toks)},
          "SUBJECT phrase")
    # FROM an address
    from_certain = {u for u, mt in uid_meta.items() if mt.from_certain}
    addrs = {}
    for u in from_certain:
        a = email.utils.parseaddr(uid_meta[u].from_raw)[1].lower()
        if "@" in a:
            addrs.setdefault(a, set()).add(u)
    addr = sorted(addrs.items(), key=lambda kv: (-len(kv[1]), kv[0]))[0][0]
    atoks = tokens(addr)
    want = {u for u in from_certain if contains_seq(uid_meta[u].from_toks, atoks)}
    assert len(want) >= 2, (addr, want)
    check(["FROM", '"%s"' % addr], want, from_certain, "FROM address")
    # dates: SINCE / BEFORE / ON at the median day, from clean Date headers
    dated = {u for u, mt in uid_meta.items() if mt.date_utc is not None}
    days = sorted(uid_meta[u].date_utc.date() for u in dated)
    pivot = days[len(days) // 2]
    ptext = "%d-%s-%d" % (pivot.day, pivot.strftime("%b"), pivot.year)
    since = check(["SINCE", ptext], {u for u in dated if uid_meta[u].date_utc.date() >= pivot}, dated, "SINCE")
    before = check(["BEFORE", ptext], {u for u in dated if uid_meta[u].date_utc.date() < pivot}, dated, "BEFORE")
    check(["ON", ptext], {u for u in dated if uid_meta[u].date_utc.date() == pivot}, dated, "ON")
    check(["SENTSINCE", ptext], {u for u in dated if uid_meta[u].date_utc.date() >= pivot}, dated, "SENTSINCE")
    assert since and before
    # sizes: exact
    sizes = sorted(mt.raw_len for mt in uid_meta.values())
    mid = sizes[len(sizes) // 2]
    larger = check(["LARGER", str(mid)], {u for u, mt in uid_meta.items() if mt.raw_len > mid}, everything, "LARGER")
    check(["SMALLER", str(mid)], {u for u, mt in uid_meta.items() if mt.raw_len < mid}, everything, "SMALLER")
    # NOT / OR / conjunction
    w0 = words[0]
    want0 = {u for u in subj_certain if any(t.startswith(w0) for t in uid_meta[u].subject_toks)}
    check(["NOT", "SUBJECT", w0], everything - want0, subj_certain, "NOT SUBJECT")
    check(["OR", "SUBJECT", w0, "LARGER", str(mid)], want0 | larger, subj_certain, "OR")
    check(["SUBJECT", w0, "LARGER", str(mid)], want0 & larger, subj_certain, "AND")
    check(["NOT", "LARGER", str(mid)], everything - larger, everything, "NOT LARGER")
    check(["(", "OR", "LARGER", str(mid), "SMALLER", "2000", ")", "SINCE", ptext],
          ({u for u, mt in uid_meta.items() if mt.raw_len > mid or mt.raw_len < 2000}) &
          {u for u in dated if uid_meta[u].date_utc.date() >= pivot}, dated, "list")
    # UID sets and sequence sets
    uids = sorted(everything)
    assert search(m, "UID", "%d:%d" % (uids[10], uids[19]), uid=True) == set(uids[10:20])
    assert search(m, "1:5") == {1, 2, 3, 4, 5}
    assert search(m, "ALL") == set(range(1, N_CORPUS + 1))
    # ESEARCH
    typ, text, data = run(m, "SEARCH", "RETURN", "(MIN MAX COUNT)", "LARGER", str(mid), resp="ESEARCH")
    assert typ == "OK", text
    toks = parse_sexp(data[0])
    vals = {toks[i].upper(): toks[i + 1] for i in range(1, len(toks) - 1, 2)}
    seqs = {uid_seq[u] for u in larger}
    assert int(vals["COUNT"]) == len(larger) and int(vals["MIN"]) == min(seqs) and int(vals["MAX"]) == max(seqs), vals
    typ, text, data = run(m, "UID", "SEARCH", "RETURN", "(COUNT)", "SUBJECT", w0, resp="ESEARCH")
    assert typ == "OK"
    assert "COUNT %d" % len(results[w0]) in data[0].decode(), data
    m.logout()


# ---------------------------------------------------------------------------------------------
# CONDSTORE: MODSEQ is the UID, HIGHESTMODSEQ is UIDNEXT - 1

def test_condstore(world):
    w = world
    uids = sorted(inbox_uids(w))
    m = connect(w)
    assert b"CONDSTORE" in m.capability()[1][0].split()
    typ, _, enabled = run(m, "ENABLE", "CONDSTORE", resp="ENABLED")
    assert typ == "OK" and enabled == [b"CONDSTORE"], enabled
    typ, dat = m.status("INBOX", "(UIDNEXT HIGHESTMODSEQ)")
    vals = parse_sexp(dat[0])[1]
    st = {str(vals[i]).upper(): int(vals[i + 1]) for i in range(0, len(vals), 2)}
    assert st["HIGHESTMODSEQ"] == st["UIDNEXT"] - 1 >= uids[-1], st
    m.select("INBOX", readonly=True)
    assert m.untagged_responses.get("HIGHESTMODSEQ") == [str(st["HIGHESTMODSEQ"]).encode()]
    # Flags come with MODSEQ once CONDSTORE is on; CHANGEDSINCE keeps what came later.
    cut = uids[len(uids) // 2]
    got = fetch(m, "1:*", "(FLAGS) (CHANGEDSINCE %d)" % cut, uid=True)
    assert sorted(int(it["UID"]) for _, it in got) == [u for u in uids if u > cut]
    assert all(int(it["MODSEQ"][0]) == int(it["UID"]) for _, it in got)
    typ, dat = m.uid("SEARCH", "MODSEQ", str(cut))
    words = b" ".join(dat).decode()
    assert words.endswith("(MODSEQ %d)" % uids[-1]), words
    assert sorted(int(x) for x in words.split("(")[0].split()) == [u for u in uids if u >= cut]
    m.logout()


# ---------------------------------------------------------------------------------------------
# Writes are refused and change nothing

def test_writes_refused(world):
    w = world
    inbox_uids(w)
    m = connect(w)
    m.select("INBOX", readonly=True)
    wrong = []
    for cmd, args, code in [("STORE", ("1", "+FLAGS", "(\\Deleted)"), "READ-ONLY"),
                            ("STORE", ("1", "+FLAGS", "(NonJunk)"), "READ-ONLY"),
                            ("STORE", ("1:*", "FLAGS", "()"), "READ-ONLY"),
                            ("EXPUNGE", (), "READ-ONLY"),
                            ("COPY", ("1:3", '"Sent Items"'), "CANNOT"),
                            ("CREATE", ("NewBox",), "CANNOT"),
                            ("DELETE", ('"Sent Items"',), "CANNOT"),
                            ("RENAME", ('"Sent Items"', "Other"), "CANNOT")]:
        try:
            typ, text, _ = run(m, cmd, *args)
        except imaplib.IMAP4.error as e:
            typ, text = "BAD", str(e)
        if not (typ == "NO" and "[%s]" % code in text):
            wrong.append((cmd, args, typ, text))
    for args, code in [(("STORE", "1", "+FLAGS", "(\\Seen)"), b"READ-ONLY"),
                       (("STORE", "1:*", "+FLAGS.SILENT", "(NonJunk)"), b"READ-ONLY"),
                       (("COPY", "1", "INBOX"), b"CANNOT"), (("MOVE", "1", "INBOX"), b"CANNOT"),
                       (("EXPUNGE", "1"), b"READ-ONLY")]:
        try:
            typ, dat = m.uid(*args)
        except imaplib.IMAP4.error as e:
            typ, dat = "BAD", [str(e).encode()]
        if not (typ == "NO" and code in dat[0]):
            wrong.append(("UID",) + args + (typ, dat))
    for flags in (None, "(\\Seen)"):
        try:
            typ, dat = m.append("INBOX", flags, None, gen_message("appended", "x", "Mon, 01 Jan 2024 00:00:00 +0000"))
        except imaplib.IMAP4.error as e:
            typ, dat = "BAD", [str(e).encode()]
        if not (typ == "NO" and b"CANNOT" in dat[0]):
            wrong.append(("APPEND", flags, typ, dat))
    typ, text, _ = run(m, "SUBSCRIBE", '"Sent Items"')
    assert typ == "OK", text
    m.logout()
    m = connect(w)
    typ, dat = m.select("INBOX", readonly=True)
    assert int(dat[0]) == N_CORPUS
    assert inbox_map(m) == w.uid_sha
    assert not search(m, "DELETED") and not search(m, "UNSEEN")
    assert "NewBox" not in list_lines(m.list('""', '"*"')[1])
    m.logout()
    assert not wrong, "writes not refused with the expected code:\n" + "\n".join(map(repr, wrong))


# ---------------------------------------------------------------------------------------------
# Protocol limits

class Raw:
    def __init__(self, w):
        s = socket.create_connection(("127.0.0.1", w.srv.imaps_port), timeout=60)
        self.s = w.ctx.wrap_socket(s, server_hostname="127.0.0.1")
        self.buf = b""
        assert self.line().startswith(b"* OK")

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError(self.buf)
            self.buf += chunk
        ln, self.buf = self.buf.split(b"\r\n", 1)
        return ln

    def until_tag(self, tag):
        lines = []
        while True:
            ln = self.line()
            lines.append(ln)
            if ln.startswith(tag + b" ") or ln.startswith(b"* BYE"):
                return lines

    def send(self, data):
        self.s.sendall(data)

    def close(self):
        self.s.close()


def test_limits_and_garbage(world):
    w = world
    r = Raw(w)
    r.send(b"a LOGIN admin " + json.dumps(w.pw).encode() + b"\r\n")
    assert r.until_tag(b"a")[-1].startswith(b"a OK")
    # garbage gets BAD; the connection goes on
    for tag, cmd in [(b"g1", b"g1 FROBNICATE now"), (b"g2", b"g2 FETCH"), (b"g3", b"g3 SELECT"),
                     (b"g4", b'g4 SEARCH "unterminated'), (b"g5", b"g5 FETCH 1 (BODY[")]:
        r.send(cmd + b"\r\n")
        last = r.until_tag(tag)[-1]
        assert last.startswith(tag + b" BAD"), (cmd, last)
    r.send(b"\x01\x02\xff\r\n")
    assert b"BAD" in r.line()
    # a synchronising literal too large: NO [TOOBIG], no continuation, still usable
    r.send(b"t1 SEARCH TEXT {2000000}\r\n")
    last = r.line()
    assert last.startswith(b"t1 NO [TOOBIG]"), last
    r.send(b"t2 NOOP\r\n")
    assert r.until_tag(b"t2")[-1].startswith(b"t2 OK")
    # a line longer than 64 KiB: BYE and the end
    r.send(b"l1 NOOP " + b"x" * (70 * 1024) + b"\r\n")
    got = r.until_tag(b"l1")
    assert got[-1].startswith(b"* BYE"), got[-1][:200]
    with pytest.raises((EOFError, ConnectionError, ssl.SSLError, OSError)):
        for _ in range(5):
            r.line()
    # the server still serves others
    m = connect(w)
    assert m.select("INBOX", readonly=True)[0] == "OK"
    m.logout()


def server_sockets(w):
    fd_dir = "/proc/%d/fd" % w.srv.proc.pid
    count = 0
    for f in os.listdir(fd_dir):
        try:
            count += os.readlink(os.path.join(fd_dir, f)).startswith("socket:")
        except FileNotFoundError:
            pass    # closed between the listing and the look: not a socket it holds
    return count


def test_clients_gone_mid_fetch_leave_nothing(world):
    """A client that hangs up while a FETCH of the whole mailbox is being
    answered (the server still busy, or waiting for it to read) costs no
    socket once it is gone."""
    w = world
    before = server_sockets(w)
    for _ in range(12):
        r = Raw(w)
        r.send(b"a LOGIN admin " + json.dumps(w.pw).encode() + b"\r\nb EXAMINE INBOX\r\n"
               b"c FETCH 1:* (BODY.PEEK[] BODYSTRUCTURE)\r\n")
        r.line()
        r.close()
    deadline = time.time() + 20
    while server_sockets(w) > before and time.time() < deadline:
        time.sleep(0.2)
    assert server_sockets(w) <= before, (server_sockets(w), before)
    m = connect(w)
    assert m.select("INBOX", readonly=True)[0] == "OK"
    m.logout()


# ---------------------------------------------------------------------------------------------
# Audit

ACTIVITIES = ["UserLogon", "FolderAccess", "MessageRetrieveContent", "MessageSearch", "UserLogoff"]


def guess_forever(w, source, stop, open_sockets):
    """Wrong LOGINs from source, one connection after the other, until stop
    (which also shuts the sockets in open_sockets down)."""
    n = 0
    while not stop.is_set():
        try:
            s = socket.create_connection(("127.0.0.1", w.srv.imaps_port), timeout=60, source_address=(source, 0))
            r = Raw.__new__(Raw)
            r.s, r.buf = w.ctx.wrap_socket(s, server_hostname="127.0.0.1"), b""
            open_sockets.append(r.s)
            r.line()
            while not stop.is_set():
                n += 1
                r.send(b"g LOGIN nobody-guessed wrong-%d\r\n" % n)
                if not r.until_tag(b"g")[-1].startswith(b"g NO"):
                    break
            r.close()
        except (OSError, EOFError):
            time.sleep(0.1)


def test_guessing_logons_leave_the_server_to_others(world):
    """Issue 19: a logon held for the guard's delay used to hold one of the
    few workers that serve every command, so one host guessing passwords
    over 24 connections stalled the logged-on users.  Commands before logon
    now run on their own threads, two at a time per address."""
    w = world
    m = connect(w)
    m.select("INBOX", readonly=True)
    stop = threading.Event()
    open_sockets = []
    guessers = [threading.Thread(target=guess_forever, args=(w, "127.0.0.77", stop, open_sockets), daemon=True)
                for _ in range(24)]
    for t in guessers:
        t.start()
    try:
        time.sleep(4)       # the address's delay has grown to seconds, 24 attempts wait
        worst = 0.0
        for _ in range(5):
            t0 = time.monotonic()
            assert m.noop()[0] == "OK"
            assert fetch(m, "1", "(UID)")
            worst = max(worst, time.monotonic() - t0)
        assert worst < 1.5, "a logged-on session waited %.1f s for the guesser's logons" % worst
        t0 = time.monotonic()
        other = connect(w)      # another address logs on
        other.logout()
        assert time.monotonic() - t0 < 3.0, time.monotonic() - t0
    finally:
        stop.set()
        m.logout()
        for s in open_sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in guessers:
            t.join(timeout=30)


def test_audit_entries(world):
    w = world
    before = w.srv.ok("GetComplianceConfiguration")
    cfg = dict(before)
    cfg["logSuccessfulUserActivities"] = ACTIVITIES
    w.srv.ok("SetComplianceConfiguration", config=json.dumps(cfg))
    try:
        seq = last_seq(w)
        m = connect(w, "alice")
        typ, dat = m.select("INBOX", readonly=True)
        assert typ == "OK" and int(dat[0]) == len(ALICE_INBOX)
        fetch(m, "1:2", "(BODY.PEEK[])")
        search(m, "SUBJECT", "alice")
        m.logout()
        time.sleep(0.5)
        entries = [e for e in audit_since(w, seq) if e["user"] == "alice"]
        events = [e["event"] for e in entries]
        for a in ACTIVITIES:
            assert a in events, "%s of an IMAP session not audited: %r" % (a, entries)
        fa = [e for e in entries if e["event"] == "FolderAccess"]
        assert any("alice/Inbox" in (e.get("details") or "") for e in fa), fa
        # switched off: nothing audited but failures
        cfg["logSuccessfulUserActivities"] = []
        w.srv.ok("SetComplianceConfiguration", config=json.dumps(cfg))
        seq = last_seq(w)
        m = connect(w, "alice")
        m.select("INBOX", readonly=True)
        m.logout()
        time.sleep(0.5)
        events = [e["event"] for e in audit_since(w, seq) if e["user"] == "alice"]
        assert not set(events) & set(ACTIVITIES), events
    finally:
        w.srv.ok("SetComplianceConfiguration", config=json.dumps(before))


# ---------------------------------------------------------------------------------------------
# Privileges (changes grants: after the read-only tests)

def test_privileges(world):
    w = world
    m = connect(w, "alice")
    names = list_lines(m.list('""', '"*"')[1])
    assert set(names) == {"INBOX"}, names
    typ, dat = m.select("INBOX", readonly=True)
    assert int(dat[0]) == len(ALICE_INBOX)
    subs = {it["BODY[HEADER.FIELDS (SUBJECT)]"].decode().strip() for _, it in
            fetch(m, "1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")}
    assert subs == {"Subject: Alice own %d" % i for i in range(3)}, subs
    typ, text, _ = run(m, "EXAMINE", '"Other Users/bob/Inbox"')
    assert typ == "NO", text
    m.untagged_responses.clear()
    w.srv.ok("SetUserPrivilegesOnFolder", userName="alice", folder="bob/Inbox", privileges="read")
    try:
        # the running session sees the grant (privileges are re-read per command)
        names = list_lines(m.list('""', '"*"')[1])
        assert "Other Users/bob/Inbox" in names, names
        assert "Other Users/bob/Private" not in names, names
        assert not any(n.startswith("Other Users/admin") for n in names), names
        typ, text, _ = run(m, "EXAMINE", '"Other Users/bob/Private"')
        assert typ == "NO", text
        m.untagged_responses.clear()
        typ, dat = m.select('"Other Users/bob/Inbox"', readonly=True)
        assert typ == "OK" and int(dat[0]) == len(BOB_INBOX), dat
        res = fetch(m, "1:*", "(BODY.PEEK[])")
        assert {hashlib.sha256(it["BODY[]"]).hexdigest() for _, it in res} == \
            {hashlib.sha256(r).hexdigest() for r in BOB_INBOX.values()}
        typ, dat = m.status('"Other Users/bob/Private"', "(MESSAGES)")
        assert typ == "NO", dat
        # search stays within what alice may read
        assert search(m, "SUBJECT", "bob") == set(range(1, len(BOB_INBOX) + 1))
        m.logout()
    finally:
        w.srv.ok("SetUserPrivilegesOnFolder", userName="alice", folder="bob/Inbox", privileges="none")
    m = connect(w, "alice")
    assert set(list_lines(m.list('""', '"*"')[1])) == {"INBOX"}
    m.logout()


# ---------------------------------------------------------------------------------------------
# UIDs across a restart and RecoverStore

def restart(w):
    """start() again (it waits for this process's own "serving" line, and
    moves to new ports if one was taken while the server was down), then
    for the IMAPS port itself."""
    w.srv.start()
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", w.srv.imaps_port), timeout=5).close()
            return
        except OSError:
            assert time.monotonic() < deadline, "the server did not listen again:\n" + w.srv.stderr()[-3000:]
            time.sleep(0.2)


def uid_state(w):
    m = connect(w)
    typ, _ = m.select("INBOX", readonly=True)
    validity = int(m.untagged_responses.get("UIDVALIDITY", [b"0"])[0])
    st = inbox_map(m)
    m.logout()
    return validity, st


def test_uids_survive_restart_and_recover(world):
    w = world
    inbox_uids(w)
    validity, before = uid_state(w)
    assert validity > 0 and before == w.uid_sha
    w.srv.stop()
    restart(w)
    v2, after = uid_state(w)
    assert (v2, after) == (validity, before), "UIDs or UIDVALIDITY changed across a restart"
    w.srv.stop()
    try:
        # RecoverStore wants the store disabled, and one store must stay current
        mv("cmd", "CreateStore", "--name=imap-spare", "--requestedState=current", data_dir=w.dir)
        mv("cmd", "SetStoreRequestedState", "--id=1", "--requestedState=disabled", data_dir=w.dir)
        cp = mv("cmd", "RecoverStore", "--id=1", data_dir=w.dir, timeout=900)
        env = json.loads(cp.stdout)
        assert env["statusCode"] == "succeeded", env
        mv("cmd", "SetStoreRequestedState", "--id=1", "--requestedState=current", data_dir=w.dir)
    finally:
        restart(w)
    v3, after = uid_state(w)
    assert v3 == validity, "UIDVALIDITY changed by RecoverStore: %d -> %d" % (validity, v3)
    assert after == before, "UID -> message changed by RecoverStore: %d differ" % len(
        {u for u in set(after) | set(before) if after.get(u) != before.get(u)})


# ---------------------------------------------------------------------------------------------
# IDLE (deletes a message: last)

def test_idle_sees_expunge(world):
    w = world
    msgs = w.srv.ok("GetMessages", folder="admin/Sent Items")
    assert len(msgs) == 3, msgs
    victim = sorted(msgs, key=lambda x: x["subject"])[1]
    r = Raw(w)
    r.send(b"a LOGIN admin " + json.dumps(w.pw).encode() + b"\r\n")
    assert r.until_tag(b"a")[-1].startswith(b"a OK")
    r.send(b'b EXAMINE "Sent Items"\r\n')
    assert r.until_tag(b"b")[-1].startswith(b"b OK")
    r.send(b"c FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n")
    lines = r.until_tag(b"c")
    text = b"\n".join(lines).decode()
    seq_of = {}
    for mm in re.finditer(r"\* (\d+) FETCH \(UID (\d+) .*?\n?Subject: ([^\r\n]*)", text):
        seq_of[mm.group(3)] = int(mm.group(1))
    assert victim["subject"] in seq_of, (victim, text)
    r.send(b"d IDLE\r\n")
    assert r.line().startswith(b"+")
    t0 = time.monotonic()
    w.srv.ok("DeleteMessage", id=victim["id"], reason="IMAP IDLE test")
    r.s.settimeout(15)
    got = r.line()
    waited = time.monotonic() - t0
    assert got == b"* %d EXPUNGE" % seq_of[victim["subject"]], got
    assert waited < 12, waited
    nxt = r.line()
    assert nxt == b"* 2 EXISTS", nxt
    r.send(b"DONE\r\n")
    assert r.until_tag(b"d")[-1].startswith(b"d OK")
    r.send(b"e FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n")
    rest = b"\n".join(r.until_tag(b"e")).decode()
    assert victim["subject"] not in rest and rest.count("Sent report number") == 2, rest
    r.send(b"f LOGOUT\r\n")
    r.until_tag(b"f")
