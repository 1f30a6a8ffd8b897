"""Exchange envelope journal reports handed to the SMTP endpoint.

What a journal rule of Exchange / Microsoft 365 sends is a wrapper: the
envelope (sender, every recipient with To/Cc/Bcc and Expanded annotations)
in its first part, the original as message/rfc822 in its second.  The
original's own headers do not name Bcc recipients or the members of an
expanded list, so only the report can file it into their archives.  Proved
here against the real server:

- every user the envelope names (sender in Sent, To, Cc, Bcc, a member of
  an expanded list) has the original, byte for byte as it stood inside the
  report (CRLF, 8-bit bytes, a line that starts like the wrapper's
  delimiter), and nobody else has it;
- the report itself is kept, byte-exact, in the catchall archive's
  "Journal reports" folder;
- a report without its original is filed whole by its SMTP envelope and
  headers, nothing dropped;
- with journal_reports=false (applied by SIGHUP) a report is an ordinary
  message, filed by its visible headers;
- the envelope is kept with each copy: `to:` finds the original by a Bcc
  recipient, a list member or the list, which its headers never name —
  also after RebuildStoreIndex, after RecoverStore (which rebuilds the db
  from content/ alone), and a copy deleted leaves the index consistent;
  an SMTP envelope recipient of a plain message is found the same way.

The expected bytes are the ones this file builds; SHA-256 of what `show`
returns is compared with them.
"""
import hashlib
import json
import os
import signal
import smtplib
import time

import pytest

from mvserver import MvServer, free_port, init_with_admin
from mvtest import mv, search_json, show_hashes

pytestmark = pytest.mark.xdist_group("smtp_journal")

USERS = ("alice", "bob", "carol", "dave", "erin", "frank")
BOUNDARY = "----=_journal_b0undary"


def sha(b):
    return hashlib.sha256(b).hexdigest()


def original_message(tag):
    # CRLF, 8-bit Latin-1, and a line that begins like the wrapper's delimiter.
    return (b"Received: from mail.example.org by hub.example.org; Mon, 1 Apr 2024 10:00:00 +0000\r\n"
            b"From: Alice <alice@example.org>\r\n"
            b"To: bob@example.org\r\n"
            b"Cc: carol@example.org\r\n"
            b"Subject: Quarterly " + tag.encode() + b" Gr\xfc\xdfe\r\n"
            b"Message-ID: <" + tag.encode() + b"@example.org>\r\n"
            b"MIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=iso-8859-1\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n"
            b"\r\n"
            b"Sch\xf6ne Gr\xfc\xdfe " + tag.encode() + b"\r\n"
            b"--" + BOUNDARY.encode() + b"X is not the wrapper's delimiter\r\n")


def journal_report(tag, original, envelope_lines):
    head = ("From: Microsoft Exchange <journal@example.org>\r\n"
            "To: archive@archive.invalid\r\n"
            "Subject: Journal report " + tag + "\r\n"
            "Message-ID: <jr-" + tag + "@example.org>\r\n"
            "X-MS-Journal-Report: \r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=\"" + BOUNDARY + "\"\r\n"
            "\r\n"
            "--" + BOUNDARY + "\r\n"
            "Content-Type: text/plain; charset=\"us-ascii\"\r\n"
            "Content-Transfer-Encoding: 7bit\r\n"
            "\r\n" + "".join(line + "\r\n" for line in envelope_lines))
    out = head.encode()
    if original is not None:
        out += ("\r\n--" + BOUNDARY + "\r\nContent-Type: message/rfc822\r\n\r\n").encode() + original
    return out + ("\r\n--" + BOUNDARY + "--\r\n").encode()


ENVELOPE = ["Sender: alice@example.org",
            "Subject: Quarterly",
            "Message-Id: <q@example.org>",
            "To: bob@example.org",
            "Cc: carol@example.org",
            "Bcc: dave@example.org",
            "To: erin@example.org, Expanded: sales@example.org"]


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("smtpjournal"))
    password = init_with_admin(d)
    for u in USERS:
        mv("cmd", "CreateUser", "--userName=" + u, "--privileges=login", "--password=Journal-pw-1", data_dir=d)
        mv("cmd", "SetUserEmailAddresses", "--userName=" + u, "--emailAddresses=%s@example.org" % u, data_dir=d)
    port = free_port()
    with open(os.path.join(d, "mailvault.conf"), "w") as f:
        f.write("[smtp]\nenabled=true\nlisten=127.0.0.1:%d\n" % port)
    s = MvServer(d, password=password).start()
    s.smtp_port = port
    yield s
    s.stop()
    s.check_no_sanitizer_report()


def send(srv, raw, rcpts=("archive@archive.invalid",), sender="journal@example.org"):
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=60) as c:
        c.ehlo("exchange.example.org")
        refused = c.sendmail(sender, list(rcpts), raw)
        assert refused == {}


def archived(srv, query):
    """{(archive, folder): [sha256 of each message's bytes]} for a query."""
    hits = search_json(query, srv.data_dir, limit=0)
    got, errors = show_hashes([h["id"] for h in hits], srv.data_dir)
    assert not errors, errors
    out = {}
    for h in hits:
        out.setdefault((h["archive"], h["folder"]), []).append(got[h["id"]])
    return out


def test_original_reaches_every_envelope_recipient_byte_exact(srv):
    tag = "jr%d" % time.time_ns()
    original = original_message(tag)
    report = journal_report(tag, original, ENVELOPE)
    send(srv, report)
    got = archived(srv, tag)
    want = {("alice", "Sent"): [sha(original)],
            ("bob", "Inbox"): [sha(original)],
            ("carol", "Inbox"): [sha(original)],
            ("dave", "Inbox"): [sha(original)],      # Bcc: only the report names dave
            ("erin", "Inbox"): [sha(original)],      # a member of the expanded list
            ("catchall", "Journal reports"): [sha(report)]}
    assert got == want
    # frank is named nowhere and has nothing.
    assert all(archive != "frank" for archive, _ in got)


def test_the_same_report_twice_is_stored_once_per_archive(srv):
    tag = "twice%d" % time.time_ns()
    original = original_message(tag)
    report = journal_report(tag, original, ENVELOPE)
    send(srv, report)
    send(srv, report)   # a sender's retry after a lost 250
    got = archived(srv, tag)
    assert got[("dave", "Inbox")] == [sha(original)]
    assert got[("catchall", "Journal reports")] == [sha(report)]


def test_a_report_without_its_original_is_filed_whole(srv):
    tag = "noorig%d" % time.time_ns()
    report = journal_report(tag, None, ["Sender: alice@example.org", "To: bob@example.org"])
    send(srv, report)
    got = archived(srv, tag)
    # Not unpacked: the SMTP envelope names no user, the wrapper's headers
    # name none either, so the catchall archive's Inbox has it, whole.
    assert got == {("catchall", "Inbox"): [sha(report)]}


def reload(srv):
    """SIGHUP, and wait for the server's word that it re-read the file."""
    def count():
        return srv.stdout().count("configuration reloaded") + srv.stderr().count("configuration reloaded")
    before = count()
    srv.signal(signal.SIGHUP)
    deadline = time.time() + 30
    while count() == before:
        assert time.time() < deadline, srv.stderr()
        time.sleep(0.1)


def test_journal_reports_off_by_sighup_files_the_wrapper_by_its_headers(srv):
    conf = os.path.join(srv.data_dir, "mailvault.conf")
    with open(conf) as f:
        text = f.read()
    assert "journal_reports=true" in text
    with open(conf, "w") as f:
        f.write(text.replace("journal_reports=true", "journal_reports=false"))
    reload(srv)
    try:
        tag = "off%d" % time.time_ns()
        report = journal_report(tag, original_message(tag), ENVELOPE)
        send(srv, report, rcpts=("bob@example.org",))
        got = archived(srv, tag)
        assert got == {("bob", "Inbox"): [sha(report)]}
    finally:
        with open(conf, "w") as f:
            f.write(text)
        reload(srv)


def ids_for(srv, query, archive=None):
    return sorted(h["id"] for h in search_json(query, srv.data_dir, archive=archive, limit=0))


def test_envelope_recipients_are_found_by_to(srv):
    tag = "env%d" % time.time_ns()
    send(srv, journal_report(tag, original_message(tag), ENVELOPE))
    originals = [h for h in search_json(tag, srv.data_dir, limit=0) if h["folder"] != "Journal reports"]
    assert len(originals) == 5
    # dave is only a Bcc of the report, erin only a member of sales@.
    assert len(ids_for(srv, "to:dave@example.org " + tag, archive="dave")) == 1
    assert len(ids_for(srv, "to:erin@example.org " + tag)) == 5
    assert len(ids_for(srv, "to:sales@example.org " + tag)) == 5
    # frank is named by nobody.
    assert ids_for(srv, "to:frank@example.org " + tag) == []
    # A plain message: its SMTP envelope's recipients (Bcc here) are kept too.
    plain_tag = "bcc%d" % time.time_ns()
    raw = ("From: alice@example.org\r\nTo: bob@example.org\r\nSubject: %s\r\n\r\nhello\r\n" % plain_tag).encode()
    send(srv, raw, rcpts=("bob@example.org", "frank@example.org"), sender="alice@example.org")
    assert len(ids_for(srv, "to:frank@example.org " + plain_tag, archive="frank")) == 1


def test_envelope_survives_rebuild_recovery_and_delete(srv):
    tag = "keep%d" % time.time_ns()
    send(srv, journal_report(tag, original_message(tag), ENVELOPE))
    query = "to:dave@example.org " + tag
    before = ids_for(srv, query)
    assert len(before) == 5            # every copy carries the envelope
    daves = ids_for(srv, query, archive="dave")
    assert len(daves) == 1
    srv.ok("RebuildStoreIndex", id=1, folder="dave")
    assert ids_for(srv, query) == before
    srv.stop()
    try:
        # RecoverStore rebuilds the db from content/ alone: the envelope
        # must come back from the records.
        mv("cmd", "CreateStore", "--name=journal-spare", "--requestedState=current", data_dir=srv.data_dir)
        mv("cmd", "SetStoreRequestedState", "--id=1", "--requestedState=disabled", data_dir=srv.data_dir)
        env = json.loads(mv("cmd", "RecoverStore", "--id=1", data_dir=srv.data_dir, timeout=900).stdout)
        assert env["statusCode"] == "succeeded", env
        mv("cmd", "SetStoreRequestedState", "--id=1", "--requestedState=current", data_dir=srv.data_dir)
    finally:
        srv.start()
    assert ids_for(srv, query) == before
    # Deleting the copy takes its index document out by the same text it
    # was put in with: nothing of it is found afterwards, the rest is.
    srv.ok("DeleteMessage", id=daves[0], reason="test")
    assert ids_for(srv, query, archive="dave") == []
    assert ids_for(srv, query) == sorted(set(before) - set(daves))
    report = srv.ok("VerifyStore", id=1, includeIndexes=True)
    assert report["clean"] is True, report
