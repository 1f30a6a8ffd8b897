"""The SMTP/LMTP archiving endpoint (issue 13) against the real server:
raw sockets (socket, ssl) and swaks as the clients, `mailvault search
--json` / `show` / `audit --json` (read-only, on the data directory the
running server holds) as the judges.

What it proves:
- a 250 is an archived message: right after the reply, without waiting,
  the message is found and `show` returns exactly the bytes sent (DATA
  dot-unstuffed, BDAT as counted), computed here in Python;
- routing by envelope: recipients' Inbox, the sender's Sent, one message
  in two archives, unknown addresses to the catchall archive, and the
  reject / ignore policies;
- the protocol's edges: pipelined commands and whole pipelined messages,
  BDAT (a 0-octet LAST chunk, "\\r\\n.\\r\\n" inside a chunk kept), dot
  stuffing, bare LF bodies, 8-bit headers, SMTPUTF8, the 512-octet command
  line bound, SIZE and the body limit at their exact boundaries, too many
  recipients, a client gone mid-DATA, STARTTLS (and the command injection
  of CVE-2011-0411), AUTH (PLAIN, LOGIN, before TLS, wrong password, no
  smtp privilege), who may hand in mail, the bad-command budget, LMTP's
  one reply per recipient;
- the audit log records refusals and never a password.

Shape: one server per configuration (module-scoped: main, reject, ignore,
strict = require_tls with no allowed network, budget = max_bad_commands
3), each on its own data directory whose users are made before the server
starts (a running server holds the data directory).  The main server
allows only 127.0.0.1/32, so a client bound to another loopback address
(127.0.0.2 ...) is a non-allowed client without a second server; tests
that make failed logons or refused commands use addresses of their own, so
the logon guard's delays and the per-address budget of one test never
reach another.  Every expectation (codes from the RFCs and the endpoint's
spec, bytes, archives, folders) is written here, never read from the
product."""

import base64
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import uuid

import pytest

from mvtest import mv, parse_json, search_json, show
from mvserver import MvServer, PortTaken, free_port, init_with_admin

pytestmark = pytest.mark.xdist_group("smtp_endpoint")

PW = {"alice": "Alice-Smtp-Pw-5521", "bob": "Bob-Smtp-Pw-7310", "carol": "Carol-Smtp-Pw-0042",
      "jurgen": "Jurgen-Smtp-Pw-9902"}
ADDR = {"alice": "alice@example.org", "bob": "bob@example.org", "carol": "carol@example.org",
        "jurgen": "jürgen@example.org"}
SMTP_USERS = ("alice", "bob", "jurgen")     # carol has no smtp login privilege
MAIN_MAX_BYTES = 1 * 1024 * 1024            # max_message_size_mb=1 of the main server
MAIN_MAX_RCPT = 3
BUDGET_MAX_BAD = 3
REPLY_TIMEOUT = 60


# ---- a raw SMTP client ----------------------------------------------------------------------

class Reply:
    def __init__(self, lines):
        self.lines = lines
        self.code = int(lines[-1][:3])
        self.enhanced = None
        m = re.match(rb"\d{3}[ -](\d\.\d{1,3}\.\d{1,3}) ", lines[-1])
        if m:
            self.enhanced = m.group(1).decode()
        self.text = b"\n".join(l[4:] for l in lines).decode("utf-8", "replace")

    def __repr__(self):
        return "Reply(%r)" % self.lines


class Client:
    """One connection: bytes out as given, replies parsed as they come."""

    def __init__(self, port=None, source="127.0.0.1", unix=None, greet=True):
        if unix:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(REPLY_TIMEOUT)
            self.sock.connect(unix)
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.settimeout(REPLY_TIMEOUT)
            self.sock.bind((source, 0))
            self.sock.connect(("127.0.0.1", port))
        self.buf = b""
        if greet:
            self.greeting = self.reply()

    def send(self, data):
        self.sock.sendall(data)

    def _line(self):
        while b"\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("connection closed by the server; unread: %r" % self.buf)
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self):
        lines = []
        while True:
            line = self._line()
            assert re.match(rb"\d{3}[ -]", line), "not a reply line: %r" % line
            lines.append(line)
            if line[3:4] == b" ":
                return Reply(lines)

    def cmd(self, line):
        self.send(line.encode() + b"\r\n" if isinstance(line, str) else line + b"\r\n")
        return self.reply()

    def closed_by_server(self):
        """True once the server has closed (EOF after whatever it still sent)."""
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
                self.buf += data
        except (ConnectionResetError, socket.timeout):
            return False

    def starttls(self, cafile):
        r = self.cmd("STARTTLS")
        assert (r.code, r.enhanced) == (220, "2.0.0"), r
        ctx = ssl.create_default_context(cafile=cafile)
        self.sock = ctx.wrap_socket(self.sock, server_hostname="localhost")
        return r

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def expect(reply, code, enhanced=None):
    assert reply.code == code and (enhanced is None or reply.enhanced == enhanced), \
        "expected %s %s, got %r" % (code, enhanced or "", reply)


def dot_stuff(msg):
    """RFC 5321 4.5.2: a line that begins with '.' gets one more; the data
    ends with CRLF.CRLF (msg ends in CRLF here)."""
    assert msg.endswith(b"\r\n")
    lines = msg[:-2].split(b"\r\n")
    return b"\r\n".join(b"." + l if l.startswith(b".") else l for l in lines) + b"\r\n.\r\n"


def new_tag():
    return "tag" + uuid.uuid4().hex[:16]


def message(tag, frm="sender@example.net", to="list@lists.example.net", body=None, extra=b""):
    """A CRLF message whose Subject carries tag (one search token)."""
    head = ("From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: Thu, 03 Dec 2026 10:00:00 +0000\r\n"
            "Message-ID: <%s@mvtest.example>\r\n" % (frm, to, tag, tag)).encode() + extra
    return head + b"\r\n" + (body if body is not None else b"The message %s.\r\n" % tag.encode())


# ---- worlds: a data directory, its users, one server ------------------------------------------

class World:
    def __init__(self, tmp_path_factory, name, conf, users):
        self.root = tmp_path_factory.mktemp(name)
        self.data = str(self.root / "data")
        self.admin_pw = init_with_admin(self.data)
        for user in users:
            self.ok("CreateUser", userName=user, privileges="login,archive", password=PW[user])
            self.ok("SetUserEmailAddresses", userName=user, emailAddresses=ADDR[user])
            if user in SMTP_USERS:
                self.ok("SetUserLoginPrivileges", userName=user, loginPrivileges="smtp")
        with open(os.path.join(self.data, "mailvault.conf"), "w") as f:
            f.write("[smtp]\n" + "".join("%s=%s\n" % kv for kv in conf.items()))
        # A Unix socket path must stay under 108 octets: not below tmp_path.
        self.sockdir = tempfile.mkdtemp(prefix="mvlmtp")
        self.lmtp = os.path.join(self.sockdir, "lmtp.sock")
        for attempt in range(3):
            self.port = free_port()
            self.server = MvServer(self.data, password=self.admin_pw,
                                   extra_args=["--smtp-listen", "127.0.0.1:%d" % self.port,
                                               "--lmtp-listen", "unix:" + self.lmtp])
            try:
                self.server.start()
                break
            except PortTaken:
                if attempt == 2:
                    raise
        self.cert = self.server.cert_path()

    def ok(self, function, **args):
        cp = mv("cmd", function, *["--%s=%s" % kv for kv in args.items()], data_dir=self.data)
        env = parse_json(cp)
        assert env["statusCode"] == "succeeded", (function, args, env)
        return env["result"]

    def client(self, source="127.0.0.1"):
        return Client(self.port, source=source)

    def hits(self, tag):
        """(archive, folder) of every copy of the message tagged tag."""
        return sorted((h["archive"], h["folder"]) for h in search_json("subject:" + tag, self.data, limit=0))

    def ids(self, tag):
        return [h["id"] for h in search_json("subject:" + tag, self.data, limit=0)]

    def count(self):
        return len(search_json("size:>0", self.data, limit=0))

    def audit(self):
        cp = mv("audit", "--json", data_dir=self.data)
        return [json.loads(l) for l in cp.stdout.decode("utf-8").splitlines() if l.strip()]

    def stop(self):
        self.server.stop()
        shutil.rmtree(self.sockdir, ignore_errors=True)


def stored_bytes(world, tag):
    """The bytes `show` gives for every copy of the tagged message."""
    return [show(i, world.data) for i in world.ids(tag)]


@pytest.fixture(scope="module")
def main(tmp_path_factory):
    w = World(tmp_path_factory, "smtp-main", {"allow_networks": "127.0.0.1/32", "max_message_size_mb": 1,
                                              "max_recipients": MAIN_MAX_RCPT},
              ("alice", "bob", "carol", "jurgen"))
    yield w
    w.stop()


@pytest.fixture(scope="module")
def reject(tmp_path_factory):
    w = World(tmp_path_factory, "smtp-reject", {"unknown_addresses": "reject"}, ("alice",))
    yield w
    w.stop()


@pytest.fixture(scope="module")
def internal_reject(tmp_path_factory):
    w = World(tmp_path_factory, "smtp-internal", {"unknown_addresses": "reject",
                                                  "internal_domains": "example.org; Example.COM"}, ("alice",))
    yield w
    w.stop()


@pytest.fixture(scope="module")
def ignore(tmp_path_factory):
    w = World(tmp_path_factory, "smtp-ignore", {"unknown_addresses": "ignore"}, ("alice",))
    yield w
    w.stop()


@pytest.fixture(scope="module")
def strict(tmp_path_factory):
    w = World(tmp_path_factory, "smtp-strict", {"require_tls": "true", "allow_networks": ""}, ("alice",))
    yield w
    w.stop()


@pytest.fixture(scope="module")
def budget(tmp_path_factory):
    w = World(tmp_path_factory, "smtp-budget", {"max_bad_commands": BUDGET_MAX_BAD}, ("alice",))
    yield w
    w.stop()


def send_data(c, sender, rcpts, msg, mail_params=""):
    """One DATA transaction on an open, greeted connection; the final reply."""
    expect(c.cmd("MAIL FROM:<%s>%s" % (sender, mail_params)), 250, "2.1.0")
    for r in rcpts:
        expect(c.cmd("RCPT TO:<%s>" % r), 250, "2.1.5")
    expect(c.cmd("DATA"), 354)
    c.send(dot_stuff(msg))
    return c.reply()


def deliver(world, sender, rcpts, msg, source="127.0.0.1", mail_params=""):
    c = world.client(source)
    try:
        expect(c.cmd("EHLO client.example"), 250)
        r = send_data(c, sender, rcpts, msg, mail_params)
        c.cmd("QUIT")
        return r
    finally:
        c.close()


# ---- the greeting and a plain message -----------------------------------------------------------

def test_ehlo_announces_the_extensions_and_the_size_limit(main):
    c = main.client()
    assert c.greeting.code == 220 and b"ESMTP" in c.greeting.lines[-1], c.greeting
    r = c.cmd("EHLO client.example")
    expect(r, 250)
    keywords = {l[4:].decode() for l in r.lines[1:]}
    for k in ("PIPELINING", "SIZE %d" % MAIN_MAX_BYTES, "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES",
              "CHUNKING", "STARTTLS"):
        assert k in keywords, (k, r)
    # AUTH only after TLS (RFC 4954 4: no plaintext passwords in the clear).
    assert not any(k.startswith("AUTH") for k in keywords), r
    c.close()


def test_plain_message_is_archived_byte_exact_before_its_250(main):
    tag = new_tag()
    msg = message(tag, frm="Sender <sender@example.net>", to="Alice <alice@example.org>",
                  body=b"Line one.\r\n.A line that begins with a dot.\r\n..two dots\r\n.\r\nlast\r\n")
    r = deliver(main, "sender@example.net", [ADDR["alice"]], msg)
    expect(r, 250, "2.0.0")
    # Immediately: the 250 promised it is on disk and indexed.
    assert main.hits(tag) == [("alice", "Inbox")]
    assert stored_bytes(main, tag) == [msg]


# ---- routing ------------------------------------------------------------------------------------

def test_sender_user_gets_a_copy_in_sent_and_recipient_in_inbox(main):
    tag = new_tag()
    msg = message(tag, frm=ADDR["alice"], to=ADDR["bob"])
    expect(deliver(main, ADDR["alice"], [ADDR["bob"]], msg), 250, "2.0.0")
    assert main.hits(tag) == [("alice", "Sent"), ("bob", "Inbox")]
    assert stored_bytes(main, tag) == [msg, msg]


def test_message_for_two_users_is_in_both_archives(main):
    tag = new_tag()
    msg = message(tag, to="%s, %s" % (ADDR["alice"], ADDR["bob"]))
    expect(deliver(main, "outsider@example.net", [ADDR["alice"], ADDR["bob"]], msg), 250, "2.0.0")
    assert main.hits(tag) == [("alice", "Inbox"), ("bob", "Inbox")]
    assert stored_bytes(main, tag) == [msg, msg]


def test_unknown_recipient_goes_to_the_catchall_archive(main):
    tag = new_tag()
    msg = message(tag, to="nobody@elsewhere.example")
    expect(deliver(main, "outsider@example.net", ["nobody@elsewhere.example"], msg), 250, "2.0.0")
    assert [a for a, _ in main.hits(tag)] == ["catchall"]
    assert stored_bytes(main, tag) == [msg]


def test_reject_policy_refuses_an_unknown_recipient_at_rcpt_and_stores_nothing(reject):
    tag = new_tag()
    before = reject.count()
    c = reject.client()
    expect(c.cmd("EHLO client.example"), 250)
    expect(c.cmd("MAIL FROM:<outsider@example.net>"), 250, "2.1.0")
    expect(c.cmd("RCPT TO:<nobody@elsewhere.example>"), 550, "5.1.1")
    # No valid recipient: DATA is refused (RFC 5321 3.3: 554 or 503).
    r = c.cmd("DATA")
    assert r.code in (503, 554), r
    expect(c.cmd("QUIT"), 221)
    c.close()
    assert reject.hits(tag) == []
    assert reject.count() == before


def test_reject_policy_accepts_a_known_user_right_after_start(reject):
    """A user's address is known whatever the policy: a reject server must
    take mail for alice from its first message on."""
    tag = new_tag()
    msg = message(tag, to=ADDR["alice"])
    c = reject.client()
    expect(c.cmd("EHLO client.example"), 250)
    expect(c.cmd("MAIL FROM:<outsider@example.net>"), 250, "2.1.0")
    r = c.cmd("RCPT TO:<%s>" % ADDR["alice"])
    expect(r, 250, "2.1.5")
    expect(c.cmd("DATA"), 354)
    c.send(dot_stuff(msg))
    expect(c.reply(), 250, "2.0.0")
    c.close()
    assert reject.hits(tag) == [("alice", "Inbox")]


def test_internal_domains_reject_only_unknown_internal_recipients(internal_reject):
    """With internal domains, reject refuses an internal address no user has,
    while an outside recipient is the other party of outgoing mail: a
    gateway's copy of alice's mail to the world is taken and filed in her
    Sent folder."""
    w = internal_reject
    c = w.client()
    expect(c.cmd("EHLO client.example"), 250)
    expect(c.cmd("MAIL FROM:<%s>" % ADDR["alice"]), 250, "2.1.0")
    expect(c.cmd("RCPT TO:<nobody@example.org>"), 550, "5.1.1")
    expect(c.cmd("RCPT TO:<Nobody@EXAMPLE.com>"), 550, "5.1.1")   # domains compare without case
    expect(c.cmd("QUIT"), 221)
    c.close()
    tag = new_tag()
    msg = message(tag, frm=ADDR["alice"], to="bob@elsewhere.example")
    expect(deliver(w, ADDR["alice"], ["bob@elsewhere.example"], msg), 250, "2.0.0")
    assert w.hits(tag) == [("alice", "Sent")]
    assert stored_bytes(w, tag) == [msg]


def test_ignore_policy_answers_250_and_stores_nothing(ignore):
    tag = new_tag()
    before = ignore.count()
    msg = message(tag, to="nobody@elsewhere.example")
    expect(deliver(ignore, "outsider@example.net", ["nobody@elsewhere.example"], msg), 250, "2.0.0")
    assert ignore.hits(tag) == []
    assert ignore.count() == before
    # ... while a user's mail on the same server is archived.
    tag2 = new_tag()
    msg2 = message(tag2, to=ADDR["alice"])
    expect(deliver(ignore, "outsider@example.net", [ADDR["alice"]], msg2), 250, "2.0.0")
    assert ignore.hits(tag2) == [("alice", "Inbox")]


# ---- pipelining, BDAT, dot stuffing -------------------------------------------------------------

def test_pipelined_envelope_in_one_write(main):
    tag = new_tag()
    msg = message(tag)
    c = main.client()
    expect(c.cmd("EHLO client.example"), 250)
    c.send(b"MAIL FROM:<outsider@example.net>\r\nRCPT TO:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\n"
           b"DATA\r\n")
    expect(c.reply(), 250, "2.1.0")
    expect(c.reply(), 250, "2.1.5")
    expect(c.reply(), 250, "2.1.5")
    expect(c.reply(), 354)
    c.send(dot_stuff(msg))
    expect(c.reply(), 250, "2.0.0")
    c.close()
    assert main.hits(tag) == [("alice", "Inbox"), ("bob", "Inbox")]
    assert stored_bytes(main, tag) == [msg, msg]


def test_several_whole_messages_pipelined_on_one_connection(main):
    tags = [new_tag() for _ in range(3)]
    msgs = [message(t, body=b"Body of %s\r\n.leading dot\r\n" % t.encode()) for t in tags]
    c = main.client()
    expect(c.cmd("EHLO client.example"), 250)
    blob = b"".join(b"MAIL FROM:<outsider@example.net>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n" + dot_stuff(m)
                    for m in msgs) + b"QUIT\r\n"
    c.send(blob)
    for _ in msgs:
        expect(c.reply(), 250, "2.1.0")
        expect(c.reply(), 250, "2.1.5")
        expect(c.reply(), 354)
        expect(c.reply(), 250, "2.0.0")
    expect(c.reply(), 221)
    c.close()
    for t, m in zip(tags, msgs):
        assert main.hits(t) == [("alice", "Inbox")]
        assert stored_bytes(main, t) == [m]


def test_bdat_chunks_are_stored_as_counted_with_a_last_chunk_of_zero(main):
    tag = new_tag()
    # "\r\n.\r\n" inside a chunk is message text, and dots are never unstuffed.
    msg = message(tag, body=b"before\r\n.\r\n..two dots stay two\r\n.\r\nafter\r\n")
    cut1, cut2 = 7, len(msg) - 9          # a cut inside a header, and inside the body's CRLF.CRLF
    chunks = [msg[:cut1], msg[cut1:cut2], msg[cut2:]]
    c = main.client()
    expect(c.cmd("EHLO client.example"), 250)
    expect(c.cmd("MAIL FROM:<outsider@example.net>"), 250, "2.1.0")
    expect(c.cmd("RCPT TO:<alice@example.org>"), 250, "2.1.5")
    total = 0
    for chunk in chunks:
        c.send(b"BDAT %d\r\n" % len(chunk) + chunk)
        total += len(chunk)
        r = c.reply()
        expect(r, 250, "2.0.0")
        assert str(total) in r.text, r    # RFC 3030 4.2: the octets received so far
    expect(c.cmd("BDAT 0 LAST"), 250, "2.0.0")
    c.close()
    assert main.hits(tag) == [("alice", "Inbox")]
    assert stored_bytes(main, tag) == [msg]


def test_bdat_last_with_data_pipelined(main):
    tag = new_tag()
    msg = message(tag, body=b"one chunk\r\n.\r\nstill the body\r\n")
    c = main.client()
    expect(c.cmd("EHLO client.example"), 250)
    c.send(b"MAIL FROM:<outsider@example.net>\r\nRCPT TO:<bob@example.org>\r\nBDAT %d LAST\r\n" % len(msg) + msg
           + b"NOOP\r\n")
    expect(c.reply(), 250, "2.1.0")
    expect(c.reply(), 250, "2.1.5")
    expect(c.reply(), 250, "2.0.0")
    expect(c.reply(), 250, "2.0.0")     # the NOOP after the chunk is a command again
    c.close()
    assert stored_bytes(main, tag) == [msg]


def test_data_end_variants_with_bare_lf_do_not_end_the_message(main):
    """SMTP smuggling: only CRLF.CRLF ends DATA; "\\n.\\n", "\\n.\\r\\n" are
    body bytes, so the would-be second message stays inside the first."""
    tag, inner = new_tag(), new_tag()
    body = (b"start\n.\nMAIL FROM:<x@example.net>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n"
            b"Subject: %s\r\n\r\nsmuggled\n.\r\nafter\r\n" % inner.encode())
    msg = message(tag, body=body)
    expect(deliver(main, "outsider@example.net", [ADDR["alice"]], msg), 250, "2.0.0")
    assert stored_bytes(main, tag) == [msg]
    assert main.hits(inner) == []


def test_bare_lf_body_and_8bit_headers_are_stored_byte_exact(main):
    tag = new_tag()
    extra = "X-Note: Grüße aus Köln — 日本語\r\n".encode("utf-8")
    body = b"bare LF line one\nline two\nmixed\r\nend \xc3\xa9\n\r\n"
    msg = message(tag, frm="=?utf-8?q?J=C3=BCrgen?= <sender@example.net>", body=body, extra=extra)
    expect(deliver(main, "outsider@example.net", [ADDR["alice"]], msg, mail_params=" BODY=8BITMIME"), 250, "2.0.0")
    assert stored_bytes(main, tag) == [msg]


def test_smtputf8_sender_and_utf8_user_address(main):
    tag = new_tag()
    msg = message(tag, frm="ü@example.org", to=ADDR["jurgen"], extra="X-Für: ü\r\n".encode())
    c = main.client()
    expect(c.cmd("EHLO client.example"), 250)
    # Without SMTPUTF8 a UTF-8 address is refused (RFC 6531 3.4: 553 5.6.7).
    expect(c.cmd("MAIL FROM:<ü@example.org>".encode()), 553, "5.6.7")
    expect(c.cmd("MAIL FROM:<ü@example.org> SMTPUTF8".encode()), 250, "2.1.0")
    expect(c.cmd("RCPT TO:<%s>" % ADDR["jurgen"]), 250, "2.1.5")
    expect(c.cmd("DATA"), 354)
    c.send(dot_stuff(msg))
    expect(c.reply(), 250, "2.0.0")
    c.close()
    assert main.hits(tag) == [("jurgen", "Inbox")]
    assert stored_bytes(main, tag) == [msg]


# ---- limits -------------------------------------------------------------------------------------

def test_size_parameter_at_and_over_the_limit(main):
    c = main.client()
    expect(c.cmd("EHLO client.example"), 250)
    expect(c.cmd("MAIL FROM:<outsider@example.net> SIZE=%d" % (MAIN_MAX_BYTES + 1)), 552, "5.3.4")
    expect(c.cmd("MAIL FROM:<outsider@example.net> SIZE=%d" % MAIN_MAX_BYTES), 250, "2.1.0")
    c.close()


def _message_of_size(tag, size):
    head = message(tag, body=b"")
    line = b"x" * 78 + b"\r\n"
    body = line * ((size - len(head) - 2) // len(line))
    body += b"y" * (size - len(head) - len(body) - 2) + b"\r\n"
    msg = head + body
    assert len(msg) == size
    return msg


def test_body_at_the_limit_is_taken_and_one_octet_more_is_refused_after_the_data(main):
    before = main.count()
    tag_over = new_tag()
    over = _message_of_size(tag_over, MAIN_MAX_BYTES + 1)
    c = main.client()
    expect(c.cmd("EHLO client.example"), 250)
    r = send_data(c, "outsider@example.net", [ADDR["alice"]], over)
    expect(r, 552, "5.3.4")
    # The session goes on: the next message on it, exactly at the limit, is taken.
    tag_at = new_tag()
    at = _message_of_size(tag_at, MAIN_MAX_BYTES)
    expect(send_data(c, "outsider@example.net", [ADDR["alice"]], at), 250, "2.0.0")
    c.close()
    assert main.hits(tag_over) == []
    assert stored_bytes(main, tag_at) == [at]
    assert main.count() == before + 1


def test_bdat_over_the_limit_is_refused_after_the_last_chunk(main):
    tag = new_tag()
    over = _message_of_size(tag, MAIN_MAX_BYTES + 1)
    c = main.client()
    expect(c.cmd("EHLO client.example"), 250)
    expect(c.cmd("MAIL FROM:<outsider@example.net>"), 250, "2.1.0")
    expect(c.cmd("RCPT TO:<alice@example.org>"), 250, "2.1.5")
    c.send(b"BDAT %d LAST\r\n" % len(over) + over)
    expect(c.reply(), 552, "5.3.4")
    expect(c.cmd("NOOP"), 250)
    c.close()
    assert main.hits(tag) == []


def test_command_line_bound_is_512_octets_with_its_crlf(main):
    c = main.client()
    expect(c.cmd("EHLO client.example"), 250)
    line512 = b"NOOP " + b"x" * (512 - 5 - 2)
    expect(c.cmd(line512), 250)
    expect(c.cmd(line512 + b"x"), 500, "5.5.2")
    long_mail = b"MAIL FROM:<" + b"a" * 60 + b"@" + b"b" * 600 + b".example>"
    expect(c.cmd(long_mail), 500, "5.5.2")
    # The long line was one error, not cut into commands; the session goes on.
    tag = new_tag()
    msg = message(tag)
    expect(send_data(c, "outsider@example.net", [ADDR["bob"]], msg), 250, "2.0.0")
    c.close()
    assert main.hits(tag) == [("bob", "Inbox")]


def test_recipients_past_the_limit_get_452_and_the_rest_is_delivered(main):
    """Routing files by the accepted envelope only: alice and bob, never
    carol or jurgen, whose RCPTs were refused (the stranger does not reach
    the catchall: a message with a known recipient is not unknown)."""
    tag = new_tag()
    msg = message(tag)
    rcpts = [ADDR["alice"], ADDR["bob"], "stranger@elsewhere.example", ADDR["carol"], ADDR["jurgen"]]
    accepted, refused = rcpts[:MAIN_MAX_RCPT], rcpts[MAIN_MAX_RCPT:]
    c = main.client()
    expect(c.cmd("EHLO client.example"), 250)
    expect(c.cmd("MAIL FROM:<outsider@example.net> SMTPUTF8"), 250, "2.1.0")
    for r in accepted:
        expect(c.cmd("RCPT TO:<%s>" % r), 250, "2.1.5")
    for r in refused:
        expect(c.cmd("RCPT TO:<%s>" % r), 452, "4.5.3")
    expect(c.cmd("DATA"), 354)
    c.send(dot_stuff(msg))
    expect(c.reply(), 250, "2.0.0")
    c.close()
    assert main.hits(tag) == [("alice", "Inbox"), ("bob", "Inbox")]


def test_client_gone_mid_data_leaves_nothing(main):
    before = main.count()
    tag = new_tag()
    msg = message(tag, body=b"a body that never ends\r\n" * 50)
    c = main.client()
    expect(c.cmd("EHLO client.example"), 250)
    expect(c.cmd("MAIL FROM:<outsider@example.net>"), 250, "2.1.0")
    expect(c.cmd("RCPT TO:<alice@example.org>"), 250, "2.1.5")
    expect(c.cmd("DATA"), 354)
    c.send(dot_stuff(msg)[:len(msg) // 2])
    c.sock.shutdown(socket.SHUT_WR)
    # The server has seen the end of the stream once it closes its side.
    assert c.closed_by_server()
    c.close()
    assert main.hits(tag) == []
    assert main.count() == before


# ---- TLS and AUTH -------------------------------------------------------------------------------

def test_auth_before_tls_is_refused_with_538(main):
    c = main.client("127.0.0.5")
    expect(c.cmd("EHLO client.example"), 250)
    token = base64.b64encode(b"\0alice\0" + PW["alice"].encode()).decode()
    expect(c.cmd("AUTH PLAIN " + token), 538, "5.7.11")
    c.close()


def _swaks(world, *args, source="127.0.0.2"):
    cp = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % world.port, "--local-interface", source,
                         "--timeout", "60"] + list(args), capture_output=True, timeout=120)
    return cp.returncode, cp.stdout.decode("utf-8", "replace") + cp.stderr.decode("utf-8", "replace")


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_starttls_then_auth_lets_a_non_allowed_client_hand_in_mail(main, mech):
    tag = new_tag()
    rc, out = _swaks(main, "--tls", "--auth", mech, "--auth-user", "alice", "--auth-password", PW["alice"],
                     "--from", "outsider@example.net", "--to", ADDR["bob"], "--header", "Subject: " + tag,
                     "--body", "authenticated " + mech)
    assert rc == 0, out
    # swaks marks what it reads in clear text "<-", what it reads over TLS "<~".
    assert re.search(r"^<-  220 2\.0\.0", out, re.M), out
    assert re.search(r"^<~  235 2\.7\.0", out, re.M), out
    assert re.search(r"^<~  250 2\.1\.0", out, re.M), out
    assert re.search(r"^<~  250 2\.0\.0", out, re.M), out
    assert main.hits(tag) == [("bob", "Inbox")]


def test_non_allowed_client_without_auth_gets_530_and_is_audited(main):
    c = main.client("127.0.0.2")
    expect(c.cmd("EHLO client.example"), 250)
    expect(c.cmd("MAIL FROM:<outsider@example.net>"), 530, "5.7.0")
    c.close()
    deadline = time.time() + 60
    while True:
        found = [e for e in main.audit() if e["event"] == "SMTPRefused" and e["remote"] == "127.0.0.2"
                 and not e["success"]]
        if found or time.time() > deadline:
            break
        time.sleep(0.2)   # the entry is written by a worker: polled, bounded
    assert found, main.audit()[-5:]


def test_wrong_password_and_missing_privilege_get_535_and_no_password_is_logged(main):
    wrong = "Wrong-Pw-" + uuid.uuid4().hex
    for source, user, password in (("127.0.0.6", "alice", wrong), ("127.0.0.7", "carol", PW["carol"])):
        c = main.client(source)
        expect(c.cmd("EHLO client.example"), 250)
        c.starttls(main.cert)
        r = c.cmd("EHLO client.example")
        assert any(l[4:] == b"AUTH PLAIN LOGIN" for l in r.lines), r
        token = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
        expect(c.cmd("AUTH PLAIN " + token), 535, "5.7.8")
        # Not logged on: a non-allowed client still may not hand in mail.
        expect(c.cmd("MAIL FROM:<outsider@example.net>"), 530, "5.7.0")
        c.close()
    # The failed logons are audited before the 535 goes out (net/logon).
    entries = main.audit()
    failed = [e for e in entries if e["event"] == "UserLogonFailed"]
    assert {e["remote"] for e in failed} >= {"127.0.0.6", "127.0.0.7"}, failed
    text = json.dumps(entries, ensure_ascii=False)
    for secret in (wrong, PW["carol"], PW["alice"]):
        assert secret not in text
        assert base64.b64encode(secret.encode()).decode() not in text
    for secret in (wrong, PW["carol"]):
        assert secret not in main.server.stderr() and secret not in main.server.stdout()


def test_commands_pipelined_after_starttls_are_not_executed(main):
    c = main.client()
    expect(c.cmd("EHLO client.example"), 250)
    # STARTTLS and, in the same packet, a greeting and a transaction in clear text.
    c.send(b"STARTTLS\r\nEHLO evil.example\r\nMAIL FROM:<evil@example.net>\r\n")
    expect(c.reply(), 220, "2.0.0")
    ctx = ssl.create_default_context(cafile=main.cert)
    c.sock = ctx.wrap_socket(c.sock, server_hostname="localhost")
    assert c.buf == b"", c.buf
    # Had the injected MAIL run, RCPT would be accepted; the first reply is the RCPT's.
    expect(c.cmd("RCPT TO:<alice@example.org>"), 503, "5.5.1")
    r = c.cmd("EHLO client.example")
    expect(r, 250)
    assert not any(l[4:] == b"STARTTLS" for l in r.lines), r
    c.close()


def test_require_tls_and_no_allowed_network(strict):
    c = strict.client()
    expect(c.cmd("EHLO client.example"), 250)
    expect(c.cmd("MAIL FROM:<outsider@example.net>"), 530, "5.7.0")
    c.starttls(strict.cert)
    expect(c.cmd("EHLO client.example"), 250)
    # allow_networks is empty: even loopback must log on.
    expect(c.cmd("MAIL FROM:<outsider@example.net>"), 530, "5.7.0")
    expect(c.cmd("AUTH LOGIN"), 334)
    expect(c.cmd(base64.b64encode(b"alice")), 334)
    expect(c.cmd(base64.b64encode(PW["alice"].encode())), 235, "2.7.0")
    tag = new_tag()
    msg = message(tag, to=ADDR["alice"])
    expect(send_data(c, "outsider@example.net", [ADDR["alice"]], msg), 250, "2.0.0")
    c.close()
    assert stored_bytes(strict, tag) == [msg]


# ---- the bad-command budget ---------------------------------------------------------------------

def test_bad_command_budget_closes_and_refuses_the_address(budget):
    c = budget.client("127.0.0.8")
    expect(c.cmd("EHLO client.example"), 250)
    for _ in range(BUDGET_MAX_BAD):
        expect(c.cmd("FROBNICATE"), 500)
    expect(c.cmd("NOOP"), 250, "2.0.0")          # within the budget the session goes on
    expect(c.cmd("FROBNICATE"), 500)
    expect(c.reply(), 421, "4.7.0")
    assert c.closed_by_server()
    c.close()
    again = Client(budget.port, source="127.0.0.8", greet=False)
    expect(again.reply(), 421, "4.7.0")
    assert again.closed_by_server()
    again.close()
    # Another address is not affected.
    other = budget.client("127.0.0.9")
    assert other.greeting.code == 220, other.greeting
    expect(other.cmd("NOOP"), 250)
    other.close()


# ---- LMTP ---------------------------------------------------------------------------------------

def test_lmtp_answers_once_per_recipient(main):
    c = Client(unix=main.lmtp)
    assert c.greeting.code == 220 and b"LMTP" in c.greeting.lines[-1], c.greeting
    expect(c.cmd("EHLO client.example"), 500, "5.5.1")
    r = c.cmd("LHLO client.example")
    expect(r, 250)
    tag = new_tag()
    msg = message(tag)
    expect(c.cmd("MAIL FROM:<outsider@example.net>"), 250, "2.1.0")
    expect(c.cmd("RCPT TO:<alice@example.org>"), 250, "2.1.5")
    expect(c.cmd("RCPT TO:<bob@example.org>"), 250, "2.1.5")
    expect(c.cmd("DATA"), 354)
    c.send(dot_stuff(msg))
    expect(c.reply(), 250, "2.0.0")
    expect(c.reply(), 250, "2.0.0")
    # Exactly two: the next reply is the QUIT's.
    expect(c.cmd("QUIT"), 221)
    c.close()
    assert main.hits(tag) == [("alice", "Inbox"), ("bob", "Inbox")]
    assert stored_bytes(main, tag) == [msg, msg]


def test_lmtp_refusal_after_data_is_one_reply_per_recipient(main):
    """RFC 2033 4.2: after the data, one reply for each recipient that got
    250 at RCPT -- a refusal too, or the client waits for replies that
    never come and reads the next command's reply as a recipient's."""
    tag = new_tag()
    over = _message_of_size(tag, MAIN_MAX_BYTES + 1)
    c = Client(unix=main.lmtp)
    expect(c.cmd("LHLO client.example"), 250)
    expect(c.cmd("MAIL FROM:<outsider@example.net>"), 250, "2.1.0")
    expect(c.cmd("RCPT TO:<alice@example.org>"), 250, "2.1.5")
    expect(c.cmd("RCPT TO:<bob@example.org>"), 250, "2.1.5")
    expect(c.cmd("DATA"), 354)
    c.send(dot_stuff(over) + b"NOOP\r\n")
    first, second = c.reply(), c.reply()
    c.close()
    expect(first, 552, "5.3.4")
    assert (second.code, second.enhanced) == (552, "5.3.4"), \
        "the second recipient's reply should be 552 5.3.4; got %r (the NOOP's reply?)" % second
    assert main.hits(tag) == []
