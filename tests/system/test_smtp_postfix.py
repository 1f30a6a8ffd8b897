"""mailvault's SMTP/LMTP endpoint (issue 13) fed by a real Postfix, the way
sites deploy it:

* always_bcc: Postfix hands a copy of every message to mailvault, the
  envelope recipient being the archive's own address (known to no user), so
  mailvault files it by the headers: each user named in To/Cc gets it in
  Inbox, the sender (From / MAIL FROM) in Sent, one stored message
  referenced from every archive; mail for no user goes to the catchall
  archive.  The sendmail(1) path is used for one message, the way a program
  on the mail host submits.
* transport maps: whole domains relayed to mailvault over SMTP and over
  LMTP on a unix socket, each envelope recipient filed in its archive, and
  Postfix's log showing status=sent carrying mailvault's own 250 reply (LMTP:
  one per recipient).
* mailvault stopped: Postfix keeps the mail queued (connection refused /
  no socket: status=deferred) and delivers it after mailvault is back and
  `postfix flush`.

Byte-exactness is judged by what Postfix delivered, never by what mailvault
says: in the always_bcc world Postfix also delivers the original to local
Maildirs (virtual(8)), and that copy, without the three envelope headers
virtual(8) prepends and with SMTP's CRLF line ends, is exactly what mailvault
must have archived; in the transport world the archived bytes must be one
Received header of this Postfix instance (naming its queue id) followed by
the submitted message byte for byte.  Messages are built here with Python's
email package; they carry a line starting with "." (SMTP dot-stuffing) and
8-bit UTF-8 (no downgrade may happen: the endpoint offers 8BITMIME).  Every
message has a tag word of its own, so a search for it finds only it.

One mailvault server, two Postfix instances (always_bcc, transports) serve
the whole module, whose tests run in order on one xdist worker.  The LMTP
socket is created by mailvault with mode 0660; Postfix's lmtp(8) runs as
the unprivileged user `postfix`, so the test gives the socket the group
`postfix` after every start, as an administrator would by group membership."""

import collections
import email.message
import email.policy
import grp
import os
import re
import shutil
import tempfile
import time

import pytest

import postfix
from mvserver import MvServer, free_port, init_with_admin
from mvtest import mv, parse_json, search_json, show
from postfix import crlf, strip_received

JOURNAL = "journal@archive.test"
USER_PW = "Smtp-Postfix-Pw-5521"
USERS = {
    "alice": ["alice@corp.test"],
    "bob": ["bob@corp.test"],
    "carol": ["carol@corp.test", "carol.alias@corp.test"],
    "dave": ["dave@vault.test"],
    "erin": ["erin@vault.test"],
    "frank": ["frank@lmtp.test"],
    "grace": ["grace@lmtp.test"],
    "catchall": [],
}
SMTP_CONF = """[smtp]
enabled=true
allow_networks=127.0.0.0/8
auth=false
folder=Inbox
sent_folder=Sent
unknown_addresses=catchall
catchall_archive=catchall
"""


def make_message(tag, sender, to, cc=(), body_extra=""):
    """A message whose Subject and body carry `tag` (one search word)."""
    msg = email.message.EmailMessage(policy=email.policy.SMTP)
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    msg["Subject"] = "%s quarterly figures" % tag
    msg["Date"] = "Fri, 04 Dec 2026 12:00:00 +0000"
    msg["Message-ID"] = "<%s@smtp-postfix.test>" % tag
    msg.set_content("The %s report.\n.A line that begins with a dot.\nGrüße aus Köln, naïve café.\n%s"
                    % (tag, body_extra), cte="8bit")
    raw = msg.as_bytes()
    assert b"\r\n.A line" in raw and "Grüße".encode() in raw
    return raw


# ---- the world ----------------------------------------------------------------------------

class World:
    pass


def grant_lmtp_socket(path, timeout=30):
    """Group postfix on mailvault's LMTP socket (mode 0660), once it exists."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert time.monotonic() < deadline, "mailvault made no LMTP socket %s" % path
        time.sleep(0.05)
    st = os.stat(path)
    assert st.st_mode & 0o777 == 0o660, oct(st.st_mode)
    os.chown(path, -1, grp.getgrnam("postfix").gr_gid)


def start_mailvault(w):
    w.srv.start()
    grant_lmtp_socket(w.lmtp_socket)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    if os.getuid() != 0:
        pytest.skip("needs root: the Postfix master runs as root")
    w = World()
    w.d = str(tmp_path_factory.mktemp("smtp-postfix") / "data")
    admin_pw = init_with_admin(w.d)
    for user, addresses in USERS.items():
        mv("cmd", "CreateUser", "--userName=" + user, "--privileges=login", "--password=" + USER_PW, data_dir=w.d)
        if addresses:
            mv("cmd", "SetUserEmailAddresses", "--userName=" + user, "--emailAddresses=" + ", ".join(addresses),
               data_dir=w.d)
    with open(os.path.join(w.d, "mailvault.conf"), "w") as f:
        f.write(SMTP_CONF)
    # The socket outside the data directory (0700): Postfix's lmtp(8) must reach it.
    w.sockdir = tempfile.mkdtemp(prefix="mv-lmtp-")
    os.chmod(w.sockdir, 0o755)
    w.lmtp_socket = os.path.join(w.sockdir, "lmtp.sock")
    w.smtp_port = free_port()
    w.srv = MvServer(w.d, password=admin_pw,
                     extra_args=["--smtp-listen", "127.0.0.1:%d" % w.smtp_port, "--lmtp-listen", "unix:" + w.lmtp_socket])
    w.bcc = w.relay = None
    try:
        start_mailvault(w)
        assert "smtp://127.0.0.1:%d" % w.smtp_port in w.srv.stdout(), w.srv.stdout()
        w.bcc = postfix.start(always_bcc=JOURNAL,
                              transports={"archive.test": postfix.smtp_nexthop(w.smtp_port), "example.net": "discard:"},
                              local_domains=("corp.test",), local_delivery="maildir")
        w.relay = postfix.start(transports={"vault.test": postfix.smtp_nexthop(w.smtp_port),
                                            "lmtp.test": postfix.lmtp_unix_nexthop(w.lmtp_socket)},
                                local_domains=("example.org",), local_delivery="discard")
        yield w
    finally:
        for pf in (w.bcc, w.relay):
            if pf:
                pf.stop()
        if w.srv.proc is not None:
            w.srv.stop()
        shutil.rmtree(w.sockdir, ignore_errors=True)


# ---- reading the archive ------------------------------------------------------------------

def archived(w, tag, expected_places, timeout=30):
    """{(archive, folder): bytes} of the messages a search for tag finds, once
    as many as expected are found (the 250 means durable; the wait is only
    for the search index); asserts exactly the expected places."""
    deadline = time.monotonic() + timeout
    while True:
        hits = search_json(tag, w.d, limit=0)
        if len(hits) >= len(expected_places) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    places = collections.Counter((h["archive"], h["folder"]) for h in hits)
    assert places == collections.Counter(expected_places), "message %s filed in %s, expected %s" % (
        tag, dict(places), sorted(expected_places))
    return {(h["archive"], h["folder"]): show(h["id"], w.d) for h in hits}


def stats(w):
    t = parse_json(mv("stats", "--json", data_dir=w.d))["total"]
    return t["messages"], t["contents"]


def postfix_copy_as_smtp(maildir_copy):
    """What Postfix sent over SMTP, from the copy virtual(8) wrote: without
    the envelope headers virtual(8) prepends, CRLF line ends."""
    m = re.match(rb"Return-Path: <[^>]*>\nX-Original-To: [^\n]+\nDelivered-To: [^\n]+\n", maildir_copy)
    assert m, maildir_copy[:500]
    return crlf(maildir_copy[m.end():])


def assert_sent_by_mailvault(pf, rcpt, mark, qid, relay):
    d = pf.wait_delivery(rcpt, since=mark, queue_id=qid)
    assert d["relay"] == relay, d
    assert d["dsn"] == "2.0.0" and re.match(r"250 2\.0\.0\b", d["text"]), d
    return d


def smtp_relay(w):
    return "127.0.0.1[127.0.0.1]:%d" % w.smtp_port


# ---- always_bcc ---------------------------------------------------------------------------

def test_bcc_copy_is_filed_for_every_user_named_and_stored_once(world):
    w = world
    tag = "bccinternal"
    raw = make_message(tag, "Alice <alice@corp.test>", ["Bob <bob@corp.test>"], cc=["carol.alias@corp.test"])
    before = stats(w)
    mark = w.bcc.log_mark()
    qid = w.bcc.submit("alice@corp.test", ["bob@corp.test", "carol.alias@corp.test"], raw)
    assert_sent_by_mailvault(w.bcc, JOURNAL, mark, qid, smtp_relay(w))
    for r in ("bob@corp.test", "carol.alias@corp.test"):
        w.bcc.wait_delivery(r, since=mark, queue_id=qid)
    w.bcc.wait_queue_empty()

    got = archived(w, tag, [("alice", "Sent"), ("bob", "Inbox"), ("carol", "Inbox")])
    expected = postfix_copy_as_smtp(w.bcc.maildir_messages("bob@corp.test")[-1])
    assert strip_received(expected) == crlf(raw)
    for place, data in got.items():
        assert data == expected, "%s holds other bytes than Postfix delivered:\n%r\n%r" % (place, data[:600],
                                                                                            expected[:600])
    after = stats(w)
    assert (after[0] - before[0], after[1] - before[1]) == (3, 1), (before, after)
    assert search_json(tag, w.d, archive="catchall", limit=0) == []


def test_bcc_copy_of_mail_sent_out_lands_in_the_senders_sent_only(world):
    """Submitted through sendmail(1) (pickup), to a domain outside: only
    the sender is a user."""
    w = world
    tag = "bccoutgoing"
    raw = make_message(tag, "Carol <carol@corp.test>", ["customer@example.net"])
    mark = w.bcc.log_mark()
    w.bcc.sendmail("carol@corp.test", ["customer@example.net"], raw.replace(b"\r\n", b"\n"))
    d = w.bcc.wait_delivery(JOURNAL, since=mark)
    assert_sent_by_mailvault(w.bcc, JOURNAL, mark, d["qid"], smtp_relay(w))
    w.bcc.wait_queue_empty()
    got = archived(w, tag, [("carol", "Sent")])
    data = got[("carol", "Sent")]
    assert strip_received(data) == crlf(raw), data[:1000]
    assert re.match(rb"Received: by %s\.postfix\.test \(Postfix, from userid 0\)\r\n\tid %s; "
                    % (re.escape(w.bcc.name.encode()), d["qid"].encode()), data), data[:400]


def test_bcc_copy_of_mail_from_outside_lands_in_the_recipients_inbox(world):
    w = world
    tag = "bccincoming"
    raw = make_message(tag, "Customer <customer@example.net>", ["bob@corp.test"])
    mark = w.bcc.log_mark()
    qid = w.bcc.submit("customer@example.net", ["bob@corp.test"], raw)
    assert_sent_by_mailvault(w.bcc, JOURNAL, mark, qid, smtp_relay(w))
    w.bcc.wait_delivery("bob@corp.test", since=mark, queue_id=qid)
    w.bcc.wait_queue_empty()
    got = archived(w, tag, [("bob", "Inbox")])
    mine = [m for m in w.bcc.maildir_messages("bob@corp.test") if b"Subject: %s " % tag.encode() in m]
    assert len(mine) == 1
    assert got[("bob", "Inbox")] == postfix_copy_as_smtp(mine[0])


def test_bcc_copy_of_mail_for_no_user_goes_to_the_catchall_archive(world):
    w = world
    tag = "bccnobody"
    raw = make_message(tag, "stranger@example.net", ["nobody@corp.test"])
    mark = w.bcc.log_mark()
    qid = w.bcc.submit("stranger@example.net", ["nobody@corp.test"], raw)
    assert_sent_by_mailvault(w.bcc, JOURNAL, mark, qid, smtp_relay(w))
    w.bcc.wait_queue_empty()
    got = archived(w, tag, [("catchall", "Inbox")])
    assert strip_received(got[("catchall", "Inbox")]) == crlf(raw)


# ---- transports ---------------------------------------------------------------------------

def assert_one_received_then(data, pf, qid, raw):
    """data = exactly one Received header of this Postfix (queue id qid) + raw, CRLF."""
    assert strip_received(data) == crlf(raw), data[:1000]
    head = data[:len(data) - len(crlf(raw))]
    assert re.fullmatch(rb"Received: from submitter\.mailvault\.test \(localhost \[127\.0\.0\.1\]\)\r\n"
                        rb"\tby %s\.postfix\.test \(Postfix\) with ESMTP id %s;?(\r\n\t[^\r\n]*)*\r\n"
                        % (re.escape(pf.name.encode()), qid.encode()), head), head


def test_smtp_transport_files_each_envelope_recipient_and_the_sender(world):
    w = world
    tag = "transportsmtp"
    raw = make_message(tag, "Dave <dave@vault.test>", ["erin@vault.test", "someone@example.org"])
    before = stats(w)
    mark = w.relay.log_mark()
    qid = w.relay.submit("dave@vault.test", ["erin@vault.test", "someone@example.org"], raw)
    assert_sent_by_mailvault(w.relay, "erin@vault.test", mark, qid, smtp_relay(w))
    w.relay.wait_delivery("someone@example.org", since=mark, queue_id=qid)
    w.relay.wait_queue_empty()
    got = archived(w, tag, [("erin", "Inbox"), ("dave", "Sent")])
    assert got[("erin", "Inbox")] == got[("dave", "Sent")]
    assert_one_received_then(got[("erin", "Inbox")], w.relay, qid, raw)
    after = stats(w)
    assert (after[0] - before[0], after[1] - before[1]) == (2, 1), (before, after)


def test_lmtp_transport_answers_per_recipient_and_files_each(world):
    w = world
    tag = "transportlmtp"
    rcpts = ["frank@lmtp.test", "grace@lmtp.test"]
    raw = make_message(tag, "outsider@example.org", rcpts)
    mark = w.relay.log_mark()
    qid = w.relay.submit("outsider@example.org", rcpts, raw)
    for r in rcpts:
        d = w.relay.wait_delivery(r, since=mark, queue_id=qid)
        assert d["service"] == "lmtp" and d["relay"].endswith("[%s]" % w.lmtp_socket), d
        assert d["dsn"] == "2.0.0" and re.match(r"250 2\.0\.0\b", d["text"]), d
    # LMTP: one reply per recipient (RFC 2033), each logged on its own line.
    assert len([x for x in w.relay.deliveries(mark, qid) if x["status"] == "sent"]) == 2
    w.relay.wait_queue_empty()
    got = archived(w, tag, [("frank", "Inbox"), ("grace", "Inbox")])
    assert got[("frank", "Inbox")] == got[("grace", "Inbox")]
    assert_one_received_then(got[("frank", "Inbox")], w.relay, qid, raw)


# ---- mailvault stopped ---------------------------------------------------------------------

def test_mail_sent_while_mailvault_is_stopped_stays_queued_and_arrives_after_flush(world):
    w = world
    w.srv.stop()
    try:
        smtp_tag, lmtp_tag, bcc_tag = "queuedsmtp", "queuedlmtp", "queuedbcc"
        raws = {smtp_tag: make_message(smtp_tag, "outsider@example.org", ["dave@vault.test"]),
                lmtp_tag: make_message(lmtp_tag, "outsider@example.org", ["grace@lmtp.test"]),
                bcc_tag: make_message(bcc_tag, "alice@corp.test", ["bob@corp.test"])}
        mark, bmark = w.relay.log_mark(), w.bcc.log_mark()
        q_smtp = w.relay.submit("outsider@example.org", ["dave@vault.test"], raws[smtp_tag])
        q_lmtp = w.relay.submit("outsider@example.org", ["grace@lmtp.test"], raws[lmtp_tag])
        q_bcc = w.bcc.submit("alice@corp.test", ["bob@corp.test"], raws[bcc_tag])
        for pf, rcpt, m, q in ((w.relay, "dave@vault.test", mark, q_smtp), (w.relay, "grace@lmtp.test", mark, q_lmtp),
                               (w.bcc, JOURNAL, bmark, q_bcc)):
            d = pf.wait_delivery(rcpt, status="deferred", since=m, queue_id=q)
            assert re.search(r"Connection refused|No such file or directory", d["text"]), d
        # The local copy of the bcc'd message is delivered; only mailvault's waits.
        w.bcc.wait_delivery("bob@corp.test", since=bmark, queue_id=q_bcc)
        assert {(q["queue_id"], q["queue_name"]) for q in w.relay.wait_deferred([q_smtp, q_lmtp])} == {
            (q_smtp, "deferred"), (q_lmtp, "deferred")}
        assert [(q["queue_id"], q["queue_name"], [r["address"] for r in q["recipients"]])
                for q in w.bcc.wait_deferred([q_bcc])] == [(q_bcc, "deferred", [JOURNAL])]
    finally:
        start_mailvault(w)
    mark2, bmark2 = w.relay.log_mark(), w.bcc.log_mark()
    w.relay.flush()
    w.bcc.flush()
    assert_sent_by_mailvault(w.relay, "dave@vault.test", mark2, q_smtp, smtp_relay(w))
    d = w.relay.wait_delivery("grace@lmtp.test", since=mark2, queue_id=q_lmtp)
    assert d["dsn"] == "2.0.0" and re.match(r"250 2\.0\.0\b", d["text"]), d
    assert_sent_by_mailvault(w.bcc, JOURNAL, bmark2, q_bcc, smtp_relay(w))
    w.relay.wait_queue_empty()
    w.bcc.wait_queue_empty()
    assert_one_received_then(archived(w, smtp_tag, [("dave", "Inbox")])[("dave", "Inbox")], w.relay, q_smtp,
                             raws[smtp_tag])
    assert_one_received_then(archived(w, lmtp_tag, [("grace", "Inbox")])[("grace", "Inbox")], w.relay, q_lmtp,
                             raws[lmtp_tag])
    got = archived(w, bcc_tag, [("alice", "Sent"), ("bob", "Inbox")])
    mine = [m for m in w.bcc.maildir_messages("bob@corp.test") if b"Subject: %s " % bcc_tag.encode() in m]
    assert len(mine) == 1
    assert set(got.values()) == {postfix_copy_as_smtp(mine[0])}
