"""The Postfix fixture (postfix.py) routes mail the way the SMTP/LMTP tests of
mailvault rely on, proved against sinks that record exactly what Postfix hands
over, so that a failure there is mailvault's and not the fixture's:

* always_bcc: the original goes to its local recipient (a Maildir here) and a
  copy, envelope recipient = the bcc address, to the bcc domain's transport;
* transport maps: whole domains relayed over SMTP and over LMTP on a unix
  socket (Postfix's lmtp(8) runs unprivileged, the socket must be reachable);
* both submission paths (smtpd on the fixture's port, sendmail -C DIR);
* the log: status=sent carrying the next hop's own 250 reply, status=deferred
  with its 4xx, and a deferred message delivered by `postfix flush`;
* LMTP into a real Dovecot (dovecot-lmtpd), the kind of peer Postfix is
  normally pointed at with lmtp:unix:.

Expected bytes are computed here from what was submitted (Python's email
package builds the messages; line ends made CRLF), never taken from a sink.
Two Postfix instances run side by side in this module, as under xdist."""

import email.message
import email.policy
import os
import re
import shutil
import tempfile

import pytest

import dovecot
import postfix
from postfix import SmtpSink, crlf, strip_received

BCC = "archive@vault.test"


def make_message(sender, to, subject, body):
    msg = email.message.EmailMessage(policy=email.policy.SMTP)
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg["Date"] = "Fri, 04 Dec 2026 12:00:00 +0000"
    msg["Message-ID"] = "<%s@fixture.test>" % re.sub(r"\W", "-", subject)
    msg.set_content(body)
    return msg.as_bytes()


@pytest.fixture(scope="module")
def sinks(tmp_path_factory):
    smtp = SmtpSink().start()
    smtp2 = SmtpSink().start()
    # Under /tmp, world-traversable: Postfix's lmtp client is the user postfix.
    sockdir = tempfile.mkdtemp(prefix="mv-lmtpsink-")
    os.chmod(sockdir, 0o755)
    lmtp = SmtpSink(lmtp=True, unix_path=os.path.join(sockdir, "lmtp.sock")).start()
    yield {"bcc": smtp, "smtp": smtp2, "lmtp": lmtp}
    for s in (smtp, smtp2, lmtp):
        s.stop()
    shutil.rmtree(sockdir, ignore_errors=True)


@pytest.fixture(scope="module")
def bcc_postfix(sinks):
    pf = postfix.start(always_bcc=BCC, transports={"vault.test": sinks["bcc"].nexthop},
                       local_domains=("example.org",), local_delivery="maildir")
    yield pf
    pf.stop()


@pytest.fixture(scope="module")
def relay_postfix(sinks):
    pf = postfix.start(transports={"vault.test": sinks["smtp"].nexthop, "lmtp.test": sinks["lmtp"].nexthop},
                       local_domains=("example.org",), local_delivery="discard")
    yield pf
    pf.stop()


def test_two_instances_run_at_once_on_their_own_ports(bcc_postfix, relay_postfix):
    assert bcc_postfix.running() and relay_postfix.running()
    assert bcc_postfix.port != relay_postfix.port
    assert bcc_postfix.master_pid() != relay_postfix.master_pid()
    assert bcc_postfix.root != relay_postfix.root


def test_always_bcc_copy_goes_to_the_bcc_transport_and_the_original_to_its_maildir(bcc_postfix, sinks):
    sink = sinks["bcc"]
    before = len(sink.messages)
    raw = make_message("alice@example.org", ["bob@example.org"], "bcc one", "Hello Bob.\n.leading dot\n")
    mark = bcc_postfix.log_mark()
    qid = bcc_postfix.submit("alice@example.org", ["bob@example.org"], raw)

    env = sink.wait(before + 1)[before]
    assert env.mail_from == "alice@example.org"
    assert env.rcpt_tos == (BCC,)
    assert env.helo == "%s.postfix.test" % bcc_postfix.name
    assert strip_received(env.data) == crlf(raw)
    assert env.data.startswith(b"Received: from submitter.mailvault.test")

    sent = bcc_postfix.wait_delivery(BCC, since=mark, queue_id=qid)
    assert sent["relay"] == "127.0.0.1[127.0.0.1]:%d" % sink.port
    assert sent["dsn"] == "2.0.0"
    assert sent["text"].startswith("250 2.0.0 sink stored message %d" % (before + 1)), sent
    local = bcc_postfix.wait_delivery("bob@example.org", since=mark, queue_id=qid)
    assert local["service"] == "virtual", local
    bcc_postfix.wait_queue_empty()

    box = bcc_postfix.maildir_messages("bob@example.org")
    assert len(box) == 1
    # virtual(8) writes LF line ends and adds its envelope headers above the same Received header.
    assert box[0] == (b"Return-Path: <alice@example.org>\nX-Original-To: bob@example.org\n"
                      b"Delivered-To: bob@example.org\n" + env.data.replace(b"\r\n", b"\n"))


def test_always_bcc_applies_to_sendmail_submissions_too(bcc_postfix, sinks):
    sink = sinks["bcc"]
    before = len(sink.messages)
    raw = make_message("carol@example.org", ["dave@example.org"], "bcc via sendmail", "From the command line.\n")
    mark = bcc_postfix.log_mark()
    bcc_postfix.sendmail("carol@example.org", ["dave@example.org"], raw.replace(b"\r\n", b"\n"))
    env = sink.wait(before + 1)[before]
    assert (env.mail_from, env.rcpt_tos) == ("carol@example.org", (BCC,))
    assert strip_received(env.data) == crlf(raw)
    bcc_postfix.wait_delivery(BCC, since=mark)
    bcc_postfix.wait_delivery("dave@example.org", since=mark)


def test_transport_relays_whole_domains_over_smtp_and_lmtp_unix(relay_postfix, sinks):
    smtp, lmtp = sinks["smtp"], sinks["lmtp"]
    s0, l0 = len(smtp.messages), len(lmtp.messages)
    rcpts = ["x@vault.test", "y@vault.test", "z@lmtp.test", "nobody@example.org"]
    raw = make_message("sender@example.org", rcpts, "transport one", "Routed by domain.\n")
    mark = relay_postfix.log_mark()
    qid = relay_postfix.submit("sender@example.org", rcpts, raw)

    env = smtp.wait(s0 + 1)[s0]
    assert env.mail_from == "sender@example.org"
    assert sorted(env.rcpt_tos) == ["x@vault.test", "y@vault.test"]
    assert strip_received(env.data) == crlf(raw)
    lenv = lmtp.wait(l0 + 1)[l0]
    assert (lenv.mail_from, lenv.rcpt_tos) == ("sender@example.org", ("z@lmtp.test",))
    assert lenv.helo == "%s.postfix.test" % relay_postfix.name
    assert lenv.data == env.data

    for r in ("x@vault.test", "y@vault.test"):
        d = relay_postfix.wait_delivery(r, since=mark, queue_id=qid)
        assert d["service"] == "smtp" and d["text"].startswith("250 2.0.0 sink stored message"), d
    d = relay_postfix.wait_delivery("z@lmtp.test", since=mark, queue_id=qid)
    assert d["service"] == "lmtp" and d["relay"].endswith("[%s]" % lmtp.unix_path), d
    d = relay_postfix.wait_delivery("nobody@example.org", since=mark, queue_id=qid)
    assert d["service"] == "discard", d
    relay_postfix.wait_queue_empty()
    # No copy anywhere else: this instance has no always_bcc.
    assert len(smtp.messages) == s0 + 1 and len(lmtp.messages) == l0 + 1


def test_unrouted_domain_is_refused_at_once_instead_of_waiting_for_dns(relay_postfix):
    raw = make_message("sender@example.org", ["who@nowhere.invalid"], "unrouted", "x\n")
    with pytest.raises(postfix.SubmitRefused) as refused:
        relay_postfix.submit("sender@example.org", ["who@nowhere.invalid"], raw)
    assert refused.value.code == 550 and refused.value.text.startswith("5.1.2 "), refused.value
    assert relay_postfix.queue() == []


def test_a_4xx_defers_and_flush_delivers_once_the_next_hop_takes_mail(relay_postfix, sinks):
    smtp = sinks["smtp"]
    s0 = len(smtp.messages)
    raw = make_message("sender@example.org", ["late@vault.test"], "deferred one", "Try again.\n")
    mark = relay_postfix.log_mark()
    smtp.temp_fail = True
    try:
        qid = relay_postfix.submit("sender@example.org", ["late@vault.test"], raw)
        d = relay_postfix.wait_delivery("late@vault.test", status="deferred", since=mark, queue_id=qid)
        assert "451 4.3.0 sink: try again later" in d["text"], d
        queued = relay_postfix.wait_deferred([qid])
        assert [(q["queue_id"], q["queue_name"]) for q in queued] == [(qid, "deferred")], queued
        assert len(smtp.messages) == s0
    finally:
        smtp.temp_fail = False
    relay_postfix.flush()
    env = smtp.wait(s0 + 1)[s0]
    assert env.rcpt_tos == ("late@vault.test",)
    assert strip_received(env.data) == crlf(raw)
    relay_postfix.wait_delivery("late@vault.test", since=mark, queue_id=qid)
    relay_postfix.wait_queue_empty()


# ---- LMTP into a real Dovecot ------------------------------------------------------------

LMTP_CONF = """
protocols = imap lmtp
postmaster_address = postmaster@example.org
lmtp_save_to_detail_mailbox = no
service lmtp {
  unix_listener lmtp-postfix {
    mode = 0666
  }
}
"""


class LmtpDovecot(dovecot.Dovecot):
    """The dovecot fixture with LMTP on a unix socket Postfix's lmtp(8) may use."""

    def _launch(self):
        with open(self.conf) as f:
            conf = f.read()
        if "protocols = imap lmtp" not in conf:
            conf = conf.replace("protocols = imap\n", "") + LMTP_CONF
            with open(self.conf, "w") as f:
                f.write(conf)
        super()._launch()

    @property
    def lmtp_socket(self):
        return os.path.join(self.root, "run", "lmtp-postfix")


def test_lmtp_transport_into_dovecot_delivers_to_the_users_inbox(tmp_path):
    if not os.path.exists("/usr/lib/dovecot/lmtp"):
        pytest.fail("dovecot-lmtpd is not installed (tools/deps.sh test installs it)", pytrace=False)
    root = tempfile.mkdtemp(prefix="mv-dovecot-")
    os.chmod(root, 0o755)
    dc = LmtpDovecot(root, True, users={"erin@mail.test": "pw-erin", "frank@mail.test": "pw-frank"}, tls=False)
    dc.start()
    pf = None
    try:
        pf = postfix.start(transports={"mail.test": postfix.lmtp_unix_nexthop(dc.lmtp_socket)})
        raw = make_message("sender@example.org", ["erin@mail.test", "frank@mail.test"], "into dovecot",
                           "Delivered over LMTP.\n")
        mark = pf.log_mark()
        qid = pf.submit("sender@example.org", ["erin@mail.test", "frank@mail.test"], raw)
        for user in ("erin@mail.test", "frank@mail.test"):
            d = pf.wait_delivery(user, since=mark, queue_id=qid)
            assert d["service"] == "lmtp" and d["relay"].endswith("[%s]" % dc.lmtp_socket), d
            assert re.match(r"250 2\.0\.0 <%s> \S+ Saved" % re.escape(user), d["text"]), d
            got = dc.list(user, "INBOX")
            assert len(got) == 1, got
            # Dovecot prepends Return-Path and its own Received (from the
            # Postfix instance, with LMTP) to Postfix's; the message follows unchanged.
            body = got[0][2].replace(b"\r\n", b"\n")
            assert body.endswith(raw.replace(b"\r\n", b"\n")), body[:2000]
            head = body[:len(body) - len(raw.replace(b"\r\n", b"\n"))]
            assert head.startswith(b"Return-Path: <sender@example.org>\nReceived: from %s.postfix.test\n"
                                   % pf.name.encode()), head
            assert re.search(rb"\n\tby \S+ with LMTP\n", head), head
            assert re.search(rb"\n\tby %s\.postfix\.test \(Postfix\) with ESMTP id %s[;\n]"
                             % (re.escape(pf.name.encode()), qid.encode()), head), head
        pf.wait_queue_empty()
    finally:
        if pf:
            pf.stop()
        dc.stop()
