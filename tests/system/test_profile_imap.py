"""IMAP and POP3 archiving profiles (issue 12) against a real Dovecot:
single mailboxes, multiple mailboxes through a master user or a SASL
authorization identity, multidrop routing, POP3 by UIDL, filters, deletion
rules, TLS and login failures, hostile messages, and Dovecot killed mid-run.

Every check is made from both sides:
- Dovecot's: what the mailbox holds afterwards (listed by UID, flags and
  bytes through the fixture's own sessions, which come from 127.0.0.2 and so
  are told apart), and what each session of the product did, from the
  server's log (imap_logout_format: fetch_body_count, expunged; POP3:
  retr, del) -- so "the second run fetches nothing" is measured where the
  bytes would have left, not taken from the product's own counters;
- mailvault's: the SHA-256 of every archived message (`show`) in each
  archive folder, compared with the SHA-256 of the bytes this file
  delivered.  Messages are delivered with CRLF line ends, the form IMAP and
  POP3 send, so the bytes archived are the bytes delivered.

The expected folders, routes and deletions are written out here from the
spec (docs of issue 12), never read from the product.  One Dovecot serves
the whole module (plus a small TLS-less one); each test has its own
Dovecot users, mailvault archives and users, so tests do not see each
other's mail, and the module's tests run in one xdist group, in order, on
one shared data directory driven through `mailvault cmd`."""

import base64
import collections
import datetime
import json
import imaplib
import os
import poplib
import re
import ssl
import subprocess
import time

import pytest

import dovecot
from mvtest import (MAILVAULT_BIN, T_SHORT, check_no_crash, init_data_dir, mv, parse_json, search_json, sha256,
                    show_hashes)

pytestmark = pytest.mark.xdist_group("profile_imap")

UTC = datetime.timezone.utc
NOW = datetime.datetime.now(UTC).replace(microsecond=0)
MV_PW = "Imap-Profile-Pw-4471"

DOVECOT_USERS = [
    "first@s.test", "second@s.test", "newmail@s.test", "uidval@s.test", "folders@s.test", "utf7@s.test",
    "filters@s.test", "delafter@s.test", "delkeep@s.test", "delold@s.test", "delarch@s.test",
    "mm1@mm.test", "mm2@mm.test", "mm3@mm.test", "mm4@mm.test", "ms1", "ms2", "ms3",
    "drop@ml.test", "drop@mc.test", "drop@mi.test", "pop1", "pop2", "wrongpw", "tlsuser", "mal", "kill", "probe",
    "mvkill", "secret", "tester", "popdrop", "popkill", "popre",
]


# ---- fixtures -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dc(tmp_path_factory):
    srv = dovecot.start(tmp_path_factory.mktemp("dovecot"), users={u: "pw-" + u for u in DOVECOT_USERS}, pop3=True)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def notls(tmp_path_factory):
    """A Dovecot with ssl = no: no STARTTLS, no STLS."""
    srv = dovecot.start(tmp_path_factory.mktemp("dovecot-notls"), users={"plainonly": "pw-plainonly"}, tls=False,
                        pop3=True)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    return str(init_data_dir(tmp_path_factory.mktemp("imapprofiles") / "data"))


# ---- messages -----------------------------------------------------------------------------

def message(tag, to="rcpt@example.org", frm=None, date=None, extra="", body=None, pad=0):
    """A distinct CRLF message; `tag` (letters and digits) is in its Subject
    and body, so a search for it finds exactly this message."""
    date = date or NOW
    head = ("From: %s\r\nTo: %s\r\nSubject: %s report\r\nDate: %s\r\nMessage-ID: <%s@mvtest.example>\r\n%s"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
            % (frm or "sender-%s@example.net" % tag, to, tag, date.strftime("%a, %d %b %Y %H:%M:%S +0000"),
               tag, extra))
    text = body if body is not None else "The %s message says hello.\r\n" % tag
    text += ("%s padding line %s\r\n" % (tag, "x" * 60)) * (pad // 80)
    return (head + text).encode()


def shas(raws):
    return collections.Counter(sha256(r) for r in raws)


# ---- mailvault ----------------------------------------------------------------------------

def call(d, function, timeout=T_SHORT, **args):
    argv = ["cmd", function] + ["--%s=%s" % (k, json.dumps(v) if isinstance(v, (dict, list)) else
                                             ("true" if v else "false") if isinstance(v, bool) else v)
                                for k, v in args.items()]
    return parse_json(mv(*argv, data_dir=d, check=(0, 1, 2), timeout=timeout))


def ok(d, function, **args):
    e = call(d, function, **args)
    assert e["statusCode"] == "succeeded" and e["error"] is None, (function, args, e)
    return e["result"]


def create(d, props):
    return ok(d, "CreateProfile", properties=props, raw=True)["id"]


def run(d, pid, timeout=T_SHORT):
    """RunProfile's envelope, whatever its outcome (never a crash: mv checks)."""
    return call(d, "RunProfile", id=pid, timeout=timeout)


def run_ok(d, pid, timeout=T_SHORT):
    e = run(d, pid, timeout)
    assert e["statusCode"] == "succeeded" and e["error"] is None, e
    for key in ("archived", "alreadyArchived", "refused", "fetched", "deleted", "folders", "warnings"):
        assert key in e["result"], (key, e["result"])
    return e["result"]


def run_failed(d, pid, timeout=T_SHORT):
    e = run(d, pid, timeout)
    assert e["statusCode"] == "failed" and e["error"], e
    return e["error"]["message"]


def create_user(d, name, *addresses):
    ok(d, "CreateUser", userName=name, privileges="login,archive", password=MV_PW)
    if addresses:
        ok(d, "SetUserEmailAddresses", userName=name, emailAddresses=", ".join(addresses))


def props(srv, login, name="imap", connector="IMAP", **details):
    base = {"host": "127.0.0.1:%d" % (srv.port if connector == "IMAP" else srv.pop3_port),
            "protocol": "IMAP-TLS" if connector == "IMAP" else "POP3-TLS",
            "userName": login, "password": srv.users[login], "caFile": srv.cert}
    base.update(details)
    # None: the detail is not given at all (its default applies).
    base = {k: v for k, v in base.items() if v is not None}
    return {"name": name, "type": "I", "connector": connector, "details": base}


def archive_contents(d, archive):
    """{folder: Counter of sha256 of what `show` returns} of one archive."""
    hits = search_json("size:>0", d, archive=archive, limit=0)
    got, errors = show_hashes([h["id"] for h in hits], d)
    assert not errors, list(errors.items())[:5]
    out = collections.defaultdict(collections.Counter)
    for h in hits:
        assert h["archive"] == archive, h
        out[h["folder"]][got[h["id"]]] += 1
    return dict(out)


def nowhere(d, tag):
    """No archive holds a message with this tag."""
    hits = search_json(tag, d, limit=0)
    assert hits == [], "message %s was archived: %r" % (tag, hits)


def body_fetches(srv, user, mark):
    return sum(s["fetch_body_count"] for s in srv.ended_sessions(user, mark))


def mailbox_shas(srv, user, folder):
    return collections.Counter(sha256(raw) for _, _, raw in srv.list(user, folder))


# ---- the instrument ----------------------------------------------------------------------

def test_the_dovecot_fixture_measures_what_a_client_does(dc, notls):
    """What the other tests read from Dovecot's side, shown on a client of
    known behaviour: were the log's counts or the fixture's own sessions
    miscounted, "the second run fetched nothing" would prove nothing."""
    user = "probe"
    raws = [message("probe%d" % i) for i in range(3)]
    uids = dc.deliver_many(user, "INBOX", raws)
    assert [(u, raw) for u, _, raw in dc.list(user, "INBOX")] == list(zip(uids, raws))
    mark = dc.log_mark()
    m = imaplib.IMAP4("127.0.0.1", dc.port)
    m.starttls(ssl.create_default_context(cafile=dc.cert))
    m.login(user + dc.master_separator + dc.master_user, dc.master_password)
    m.select("INBOX", readonly=True)
    m.uid("FETCH", "%d:%d" % (uids[0], uids[1]), "(BODY.PEEK[])")
    m.uid("FETCH", "1:*", "(BODY.PEEK[HEADER])")
    m.logout()
    m = imaplib.IMAP4("127.0.0.1", dc.port)
    m.authenticate("PLAIN", lambda _: ("%s\0%s\0%s" % (user, dc.master_user, dc.master_password)).encode())
    m.select("INBOX")
    m.store(str(uids[2]), "+FLAGS", "\\Deleted")
    m.expunge()
    m.logout()
    dc.list(user, "INBOX")          # the fixture's own session: not counted
    got = dc.ended_sessions(user, mark)
    assert [(s["fetch_body_count"], s["fetch_hdr_count"], s["expunged"]) for s in got] == [(2, 3, 0), (0, 0, 1)], got
    assert dc.log_text(mark).count("Master user logging in as %s" % user) == 2
    # POP3 UIDLs are UID and UIDVALIDITY in hex; RETR is counted.
    mark = dc.log_mark()
    p = poplib.POP3("127.0.0.1", dc.pop3_port)
    p.stls(ssl.create_default_context(cafile=dc.cert))
    p.user(user)
    p.pass_(dc.users[user])
    validity = dc.uidvalidity(user, "INBOX")
    assert [line.split()[1].decode().lower() for line in p.uidl()[1]] == ["%08x%08x" % (u, validity) for u in uids[:2]]
    p.retr(1)
    p.quit()
    assert [s["retr"] for s in dc.ended_sessions(user, mark, protocol="pop3")] == [1]
    # TLS is offered on the one server and not on the other.
    for srv, offered in ((dc, True), (notls, False)):
        m = imaplib.IMAP4("127.0.0.1", srv.port)
        assert ("STARTTLS" in m.capabilities) == offered
        m.logout()


# ---- single mailbox: folders, incremental runs --------------------------------------------

def fill(srv, user, layout):
    """layout: {folder: [raw, ...]}; creates the folders (parents first) and APPENDs."""
    for folder in layout:
        if folder != "INBOX":
            parts = folder.split("/")
            for k in range(1, len(parts) + 1):
                name = "/".join(parts[:k])
                if name != "INBOX" and name not in srv.folders(user):
                    srv.create_folder(user, name)
    for folder, raws in layout.items():
        if raws:
            srv.deliver_many(user, folder, raws)


def standard_layout(tag):
    return {
        "INBOX": [message("%sinbox%d" % (tag, i)) for i in range(3)],
        "INBOX/Sub": [message("%sinboxsub0" % tag)],
        "Work": [message("%swork0" % tag)],
        "Work/Project": [message("%sproject%d" % (tag, i)) for i in range(2)],
        "Sent": [message("%ssent0" % tag)],
        "Junk": [message("%sjunk0" % tag)],
        "Trash": [message("%strash0" % tag)],
        "Papierkorb": [message("%spapierkorb0" % tag)],   # \Trash by special-use only
    }


# Where each server folder lands in the archive (INBOX spelled Inbox); Junk,
# Trash and Papierkorb (special-use \Junk / \Trash) are left out.
ARCHIVED_AS = {"INBOX": "Inbox", "INBOX/Sub": "Inbox/Sub", "Work": "Work", "Work/Project": "Work/Project",
               "Sent": "Sent"}


def test_first_run_archives_every_folder_but_junk_and_trash(dc, d):
    user = "first@s.test"
    layout = standard_layout("fr")
    fill(dc, user, layout)
    before = {f: dc.list(user, f) for f in layout}
    mark = dc.log_mark()
    pid = create(d, props(dc, user, targetArchive="first"))
    r = run_ok(d, pid)
    want = {ARCHIVED_AS[f]: shas(raws) for f, raws in layout.items() if f in ARCHIVED_AS}
    total = sum(len(layout[f]) for f in ARCHIVED_AS)
    assert (r["archived"], r["refused"], r["deleted"]) == (total, 0, 0), r
    assert archive_contents(d, "first") == want
    # Dovecot: each archived body fetched once, none of Junk/Trash; nothing
    # changed in the mailbox (deleteRule never; no \Seen set by archiving).
    assert body_fetches(dc, user, mark) == total == r["fetched"]
    assert {f: dc.list(user, f) for f in layout} == before


def test_second_run_fetches_no_body(dc, d):
    user = "second@s.test"
    layout = standard_layout("sr")
    fill(dc, user, layout)
    pid = create(d, props(dc, user, targetArchive="second"))
    first = run_ok(d, pid)
    assert first["archived"] == sum(len(layout[f]) for f in ARCHIVED_AS), first
    mark = dc.log_mark()
    again = run_ok(d, pid)
    assert again["archived"] == 0 and again["refused"] == 0 and again["fetched"] == 0, again
    assert body_fetches(dc, user, mark) == 0
    assert len(dc.logins(user, mark)) >= 1, "the second run did not even log in"
    assert archive_contents(d, "second") == {ARCHIVED_AS[f]: shas(r) for f, r in layout.items() if f in ARCHIVED_AS}


def test_new_mail_between_runs_is_the_only_mail_fetched(dc, d):
    user = "newmail@s.test"
    layout = standard_layout("nm")
    fill(dc, user, layout)
    pid = create(d, props(dc, user, targetArchive="newmail"))
    run_ok(d, pid)
    new = {"INBOX": [message("nmnewinbox%d" % i) for i in range(2)], "Work/Project": [message("nmnewproject0")],
           "Junk": [message("nmnewjunk0")]}
    for folder, raws in new.items():
        dc.deliver_many(user, folder, raws)
    mark = dc.log_mark()
    r = run_ok(d, pid)
    assert r["archived"] == 3, r
    assert body_fetches(dc, user, mark) == 3
    want = {ARCHIVED_AS[f]: shas(raws + new.get(f, [])) for f, raws in layout.items() if f in ARCHIVED_AS}
    assert archive_contents(d, "newmail") == want


def test_uidvalidity_reset_archives_no_duplicate_and_misses_nothing(dc, d):
    user = "uidval@s.test"
    layout = {"INBOX": [message("uvinbox%d" % i) for i in range(4)], "Work": [message("uvwork%d" % i) for i in range(2)]}
    fill(dc, user, layout)
    pid = create(d, props(dc, user, targetArchive="uidval"))
    assert run_ok(d, pid)["archived"] == 6
    # Three of the four go, one new comes, then the folder is renumbered:
    # the two left get UIDs 1 and 2, below the highest UID archived (4), so
    # only a run that notices the new UIDVALIDITY finds the new message, and
    # only one that knows what it archived does not archive the old one again.
    uids = [u for u, _, _ in dc.list(user, "INBOX")]
    assert len(uids) == 4
    dc.expunge(user, "INBOX", uids[:3])
    late = message("uvinboxlate")
    dc.deliver(user, "INBOX", late)
    old = dc.uidvalidity(user, "INBOX")
    assert dc.reset_uidvalidity(user, "INBOX") != old
    assert sorted(u for u, _, _ in dc.list(user, "INBOX")) == [1, 2]
    r = run_ok(d, pid)
    assert r["archived"] == 1, r
    assert archive_contents(d, "uidval") == {"Inbox": shas(layout["INBOX"] + [late]), "Work": shas(layout["Work"])}
    assert run_ok(d, pid)["archived"] == 0


# ---- folders ------------------------------------------------------------------------------

def test_include_and_exclude_folders(dc, d):
    user = "folders@s.test"
    layout = {"INBOX": [message("fiinbox0")], "Work": [message("fiwork0")], "Work/Project": [message("fiproject0")],
              "Workshop": [message("fiworkshop0")], "Sent": [message("fisent0")], "Private": [message("fiprivate0")]}
    fill(dc, user, layout)
    r = run_ok(d, create(d, props(dc, user, name="incl", targetArchive="fincl", includeFolders="Work,Sent")))
    assert r["archived"] == 3, r
    # A folder is a whole name: Work takes Work/Project, not Workshop.
    assert archive_contents(d, "fincl") == {"Work": shas(layout["Work"]), "Work/Project": shas(layout["Work/Project"]),
                                            "Sent": shas(layout["Sent"])}
    r = run_ok(d, create(d, props(dc, user, name="excl", targetArchive="fexcl", excludeFolders="Work, Private")))
    assert r["archived"] == 3, r
    assert archive_contents(d, "fexcl") == {"Inbox": shas(layout["INBOX"]), "Workshop": shas(layout["Workshop"]),
                                            "Sent": shas(layout["Sent"])}
    # targetUserFolder puts the whole mailbox under one folder.
    r = run_ok(d, create(d, props(dc, user, name="under", targetArchive="funder", targetUserFolder="Mailbox",
                                  includeFolders="INBOX")))
    assert archive_contents(d, "funder") == {"Mailbox/Inbox": shas(layout["INBOX"])}


def test_modified_utf7_folder_archived_under_its_decoded_name(dc, d):
    user = "utf7@s.test"
    layout = {"Entwürfe": [message("u7entwuerfe0")], "Entwürfe/Ärger & Co": [message("u7aerger0"), message("u7aerger1")],
              "日本語": [message("u7japanese0")]}
    fill(dc, user, layout)
    # The server really holds them in modified UTF-7 (the fixture encodes, Dovecot stores).
    assert os.path.isdir(dc.folder_dir(user, "Entwürfe/Ärger & Co"))
    assert dovecot.mutf7_encode("Entwürfe/Ärger & Co") == "Entw&APw-rfe/&AMQ-rger &- Co"
    r = run_ok(d, create(d, props(dc, user, targetArchive="utf7")))
    assert r["archived"] == 4, r
    assert archive_contents(d, "utf7") == {f: shas(raws) for f, raws in layout.items()}
    # includeFolders names them decoded too.
    r = run_ok(d, create(d, props(dc, user, name="u7incl", targetArchive="utf7incl", includeFolders="Entwürfe/Ärger & Co")))
    assert archive_contents(d, "utf7incl") == {"Entwürfe/Ärger & Co": shas(layout["Entwürfe/Ärger & Co"])}


# ---- filters ------------------------------------------------------------------------------

def test_filters_size_unread_and_age(dc, d):
    user = "filters@s.test"
    old = NOW - datetime.timedelta(days=400)
    small = message("ftsmall")
    large = message("ftlarge", pad=2 * 1024 * 1024)          # 2 MiB: over maxSizeMB 1
    unread = message("ftunread")
    aged = message("ftaged", date=old)
    # Its Date header says 400 days, its INTERNALDATE (what the filters go by) says now.
    dated = message("ftdateheader", date=old)
    dc.deliver_many(user, "INBOX", [(small, "\\Seen", NOW), (large, "\\Seen", NOW), (unread, "", NOW),
                                    (aged, "\\Seen", old), (dated, "\\Seen", NOW)])
    assert len(large) > 2 * 1024 * 1024 and len(small) < 1024

    def only(archive, **details):
        r = run_ok(d, create(d, props(dc, user, name=archive, targetArchive=archive, **details)))
        return r, archive_contents(d, archive).get("Inbox", collections.Counter())

    r, got = only("ftsize", maxSizeMB="1")
    assert got == shas([small, unread, aged, dated]), r
    r, got = only("ftunread", excludeUnRead="1")
    assert got == shas([small, large, aged, dated]), r
    # By INTERNALDATE: only the message of 400 days ago is older than 30 days...
    r, got = only("ftolder", olderThanDays="30")
    assert got == shas([aged]), r
    # ...and it is the only one not newer than 30 days.
    r, got = only("ftnewer", newerThanDays="30")
    assert got == shas([small, large, unread, dated]), r
    # Filters never touch the mailbox.
    assert mailbox_shas(dc, user, "INBOX") == shas([small, large, unread, aged, dated])


# ---- deletion -----------------------------------------------------------------------------

def test_delete_after_archiving_empties_the_folder(dc, d):
    user = "delafter@s.test"
    layout = {"INBOX": [message("dainbox%d" % i) for i in range(3)], "Work": [message("dawork0")],
              "Junk": [message("dajunk0")]}
    fill(dc, user, layout)
    mark = dc.log_mark()
    r = run_ok(d, create(d, props(dc, user, targetArchive="delafter", deleteRule="afterArchiving")))
    assert (r["archived"], r["deleted"]) == (4, 4), r
    assert archive_contents(d, "delafter") == {"Inbox": shas(layout["INBOX"]), "Work": shas(layout["Work"])}
    assert dc.list(user, "INBOX") == [] and dc.list(user, "Work") == []
    # Junk is not archived, so nothing of it is deleted.
    assert mailbox_shas(dc, user, "Junk") == shas(layout["Junk"])
    assert sum(s["expunged"] for s in dc.ended_sessions(user, mark)) == 4


def test_delete_after_archiving_keeps_flagged_and_unread(dc, d):
    user = "delkeep@s.test"
    flagged, unread, plain = message("dkflagged"), message("dkunread"), message("dkplain")
    dc.deliver_many(user, "INBOX", [(flagged, "\\Seen \\Flagged", None), (unread, "", None), (plain, "\\Seen", None)])
    mark = dc.log_mark()
    r = run_ok(d, create(d, props(dc, user, targetArchive="delkeep", deleteRule="afterArchiving",
                                  keepFlagged="1", keepUnread="1")))
    assert (r["archived"], r["deleted"]) == (3, 1), r
    assert archive_contents(d, "delkeep") == {"Inbox": shas([flagged, unread, plain])}
    assert mailbox_shas(dc, user, "INBOX") == shas([flagged, unread])
    assert sum(s["expunged"] for s in dc.ended_sessions(user, mark)) == 1


def test_delete_older_than_by_message_date(dc, d):
    user = "delold@s.test"
    old = NOW - datetime.timedelta(days=100)
    recent = NOW - datetime.timedelta(days=1)
    old_seen, old_flagged, old_unread = message("doseen", date=old), message("doflagged", date=old), \
        message("dounread", date=old)
    new_seen = message("donew", date=recent)
    # Date header and INTERNALDATE agree, so "the message's date" is the same by either.
    dc.deliver_many(user, "INBOX", [(old_seen, "\\Seen", old), (old_flagged, "\\Seen \\Flagged", old),
                                    (old_unread, "", old), (new_seen, "\\Seen", recent)])
    mark = dc.log_mark()
    r = run_ok(d, create(d, props(dc, user, targetArchive="delold", deleteRule="olderThan", deleteAfterDays="30",
                                  keepFlagged="1", keepUnread="0")))
    assert (r["archived"], r["deleted"]) == (4, 2), r
    assert archive_contents(d, "delold") == {"Inbox": shas([old_seen, old_flagged, old_unread, new_seen])}
    assert mailbox_shas(dc, user, "INBOX") == shas([old_flagged, new_seen])
    assert sum(s["expunged"] for s in dc.ended_sessions(user, mark)) == 2


def test_delete_older_than_by_archive_date_waits(dc, d):
    user = "delarch@s.test"
    old = NOW - datetime.timedelta(days=100)
    raws = [message("dainold%d" % i, date=old) for i in range(2)]
    dc.deliver_many(user, "INBOX", [(r, "\\Seen", old) for r in raws])
    pid = create(d, props(dc, user, targetArchive="delarch", deleteRule="olderThan", deleteAfterDays="30",
                          deleteAgeBy="archiveDate"))
    r = run_ok(d, pid)
    # Archived today: 0 days in the archive, not 30, however old the messages are.
    assert (r["archived"], r["deleted"]) == (2, 0), r
    assert mailbox_shas(dc, user, "INBOX") == shas(raws)
    assert run_ok(d, pid)["deleted"] == 0
    assert mailbox_shas(dc, user, "INBOX") == shas(raws)


# ---- multiple mailboxes -------------------------------------------------------------------

def mailboxes(dc, logins, tag):
    """Each login's mailbox: INBOX 2, Projects 1, Junk 1 (not archived).
    Returns {login: {archive folder: Counter}} as expected in the archive."""
    want = {}
    for login in logins:
        t = tag + re.sub(r"[^a-z0-9]", "", login.split("@")[0])
        layout = {"INBOX": [message(t + "inbox%d" % i) for i in range(2)], "Projects": [message(t + "projects0")],
                  "Junk": [message(t + "junk0")]}
        fill(dc, login, layout)
        want[login] = {"Inbox": shas(layout["INBOX"]), "Projects": shas(layout["Projects"])}
    return want


def test_multiple_mailboxes_through_a_master_user(dc, d):
    logins = ["mm1@mm.test", "mm2@mm.test", "mm3@mm.test"]
    want = mailboxes(dc, logins + ["mm4@mm.test"], "mm")
    for i, login in enumerate(logins + ["mm4@mm.test"]):
        create_user(d, "mm%d" % (i + 1), login, "mm%d.alias@mm.test" % (i + 1))
    pid = create(d, props(dc, "mm1@mm.test", name="mm", subType="1", userNames="mm1,mm2,mm3",
                          loginMethod="masterUser", userName=dc.master_user, password=dc.master_password))
    # TestProfile logs on through the master user into the first mailbox.
    t = ok(d, "TestProfile", id=pid)
    assert t["login"] == "ok" and t["mailbox"] == "mm1@mm.test" and "Inbox" in t["folders"], t
    mark = dc.log_mark()
    r = run_ok(d, pid)
    assert r["archived"] == 9, r
    for i, login in enumerate(logins):
        assert archive_contents(d, "mm%d" % (i + 1)) == want[login], login
        assert body_fetches(dc, login, mark) == 3, login
    # mm4 has an address but is not in userNames: its mailbox is never opened.
    assert archive_contents(d, "mm4") == {}
    assert dc.logins("mm4@mm.test", mark) == []
    # Through the master user: Dovecot says so for each mailbox.
    text = dc.log_text(mark)
    for login in logins:
        assert "Master user logging in as %s" % login in text, login


def test_multiple_mailboxes_through_sasl_authzid_by_user_name(dc, d):
    logins = ["ms1", "ms2", "ms3"]
    want = mailboxes(dc, logins, "ms")
    for login in logins:
        create_user(d, login, "%s@ms.test" % login)
    mark = dc.log_mark()
    pid = create(d, props(dc, "ms1", name="ms", subType="1", userNames="ms1,ms2,ms3", loginMethod="saslAuthzid",
                          mailboxLogin="userName", userName=dc.master_user, password=dc.master_password))
    r = run_ok(d, pid)
    assert r["archived"] == 9, r
    text = dc.log_text(mark)
    for login in logins:
        assert archive_contents(d, login) == want[login], login
        assert body_fetches(dc, login, mark) == 3, login
        assert "Master user logging in as %s" % login in text, login
    mark = dc.log_mark()
    assert run_ok(d, pid)["archived"] == 0
    for login in logins:
        assert body_fetches(dc, login, mark) == 0, login


# ---- multidrop ----------------------------------------------------------------------------

def test_multidrop_routes_by_envelope_then_headers_and_leaves_unknown(dc, d):
    create_user(d, "ml1", "ml1@ml.test", "ml1.alias@ml.test")
    create_user(d, "ml2", "ml2@ml.test")
    create_user(d, "ml3", "ml3@ml.test")
    to_ml1 = message("mlone", to="ml1@ml.test")
    to_alias = message("mlalias", to="ml1.alias@ml.test")
    bcc_ml2 = message("mlbcc", to="list@elsewhere.test", extra="Bcc: ml2@ml.test\r\n")
    # An envelope header naming a known user wins over To.
    envelope_ml2 = message("mlenvelope", to="ml1@ml.test", extra="Delivered-To: ml2@ml.test\r\n")
    unknown = message("mlunknown", to="nobody@ml.test", frm="stranger@elsewhere.test")
    from_ml3 = message("mlsender", to="nobody@elsewhere.test", frm="ml3@ml.test")
    dc.deliver_many("drop@ml.test", "INBOX", [to_ml1, to_alias, bcc_ml2, envelope_ml2, unknown, from_ml3])
    r = run_ok(d, create(d, props(dc, "drop@ml.test", name="ml", subType="2", unknownAddresses="leave",
                                  deleteRule="afterArchiving")))
    assert r["archived"] == 5, r
    assert archive_contents(d, "ml1") == {"Inbox": shas([to_ml1, to_alias])}
    assert archive_contents(d, "ml2") == {"Inbox": shas([bcc_ml2, envelope_ml2])}
    assert archive_contents(d, "ml3") == {"Inbox": shas([from_ml3])}
    nowhere(d, "mlunknown")
    # Everything routed is deleted; the unknown message is left where it was.
    assert mailbox_shas(dc, "drop@ml.test", "INBOX") == shas([unknown])


def test_multidrop_catchall_and_folder_templates(dc, d):
    create_user(d, "mc1", "mc1@mc.test", "mc1.alias@mc.test")
    create_user(d, "mc2", "mc2@mc.test")
    create_user(d, "mccatch", "postmaster@mc.test")
    a = message("mcprimary", to="mc1@mc.test")
    b = message("mcalias", to="mc1.alias@mc.test")
    c = message("mcunknown", to="nobody@mc.test", frm="nobody@mc.test")
    both = message("mcboth", to="mc1@mc.test", extra="Cc: mc2@mc.test\r\n")
    dc.deliver_many("drop@mc.test", "INBOX", [a, b, c, both])
    r = run_ok(d, create(d, props(dc, "drop@mc.test", name="mc", subType="2", unknownAddresses="catchall",
                                  catchallArchive="mccatch", targetFolder="Drop/{u-email}/{h-email}")))
    # One message to two users is archived for each (counted once or per copy: the spec leaves it open).
    assert r["archived"] in (4, 5), r
    assert archive_contents(d, "mc1") == {"Drop/mc1@mc.test/mc1@mc.test": shas([a, both]),
                                          "Drop/mc1@mc.test/mc1.alias@mc.test": shas([b])}
    assert archive_contents(d, "mc2") == {"Drop/mc2@mc.test/mc2@mc.test": shas([both])}
    # An unknown address: {u-email} is {h-email}.
    assert archive_contents(d, "mccatch") == {"Drop/nobody@mc.test/nobody@mc.test": shas([c])}
    assert mailbox_shas(dc, "drop@mc.test", "INBOX") == shas([a, b, c, both])   # deleteRule never


def test_multidrop_ignore_deletes_unknown_without_archiving(dc, d):
    create_user(d, "mi1", "mi1@mi.test")
    known = message("miknown", to="mi1@mi.test")
    unknown = message("miunknown", to="nobody@mi.test", frm="stranger@elsewhere.test")
    dc.deliver_many("drop@mi.test", "INBOX", [known, unknown])
    r = run_ok(d, create(d, props(dc, "drop@mi.test", name="mi", subType="2", unknownAddresses="ignore",
                                  deleteRule="afterArchiving")))
    assert r["archived"] == 1, r
    assert archive_contents(d, "mi1") == {"Inbox": shas([known])}
    nowhere(d, "miunknown")
    assert dc.list("drop@mi.test", "INBOX") == []


# ---- POP3 ---------------------------------------------------------------------------------

def pop3_counts(dc, user, mark, key):
    return sum(s[key] for s in dc.ended_sessions(user, mark, protocol="pop3"))


def test_pop3_incremental_by_uidl(dc, d):
    user = "pop1"
    raws = [message("popinc%d" % i) for i in range(4)]
    dc.deliver_many(user, "INBOX", raws)
    pid = create(d, props(dc, user, name="pop", connector="POP3", targetArchive="pop1"))
    mark = dc.log_mark()
    assert run_ok(d, pid)["archived"] == 4
    assert pop3_counts(dc, user, mark, "retr") == 4
    assert archive_contents(d, "pop1") == {"Inbox": shas(raws)}
    mark = dc.log_mark()
    assert run_ok(d, pid)["archived"] == 0
    assert pop3_counts(dc, user, mark, "retr") == 0
    late = message("popinclate")
    dc.deliver(user, "INBOX", late)
    mark = dc.log_mark()
    assert run_ok(d, pid)["archived"] == 1
    assert pop3_counts(dc, user, mark, "retr") == 1
    assert archive_contents(d, "pop1") == {"Inbox": shas(raws + [late])}
    assert mailbox_shas(dc, user, "INBOX") == shas(raws + [late])


def test_pop3_ssl_delete_after_archiving(dc, d):
    user = "pop2"
    raws = [message("popdel%d" % i) for i in range(3)]
    dc.deliver_many(user, "INBOX", raws)
    mark = dc.log_mark()
    r = run_ok(d, create(d, props(dc, user, name="popdel", connector="POP3", protocol="POP3-SSL",
                                  host="127.0.0.1:%d" % dc.pop3s_port, targetArchive="pop2",
                                  deleteRule="afterArchiving")))
    assert (r["archived"], r["deleted"]) == (3, 3), r
    assert archive_contents(d, "pop2") == {"Inbox": shas(raws)}
    assert dc.list(user, "INBOX") == []
    assert pop3_counts(dc, user, mark, "del") == 3


# ---- failures that name their cause -------------------------------------------------------

def test_wrong_password_fails_naming_the_login(dc, d):
    user = "wrongpw"
    dc.deliver(user, "INBOX", message("wrongpw0"))
    mark = dc.log_mark()
    err = run_failed(d, create(d, props(dc, user, password="not-the-password", targetArchive="wrongpw")))
    assert re.search(r"log ?in|authenticat", err, re.I), err
    assert archive_contents(d, "wrongpw") == {}
    # Dovecot saw the login refused (the failure is the password, not the connection).
    dc.wait_log(r"passwd-file\(%s,127\.0\.0\.1,[^)]*\): Password mismatch" % re.escape(user), mark)


def test_untrusted_certificate_fails_and_sends_no_password(dc, d):
    user = "tlsuser"
    raw = message("tlsuser0")
    dc.deliver(user, "INBOX", raw)
    mark = dc.log_mark()
    # Implicit TLS, system store only (the server's certificate is self-signed).
    err = run_failed(d, create(d, props(dc, user, name="ssl-nocafile", protocol="IMAP-SSL",
                                        host="127.0.0.1:%d" % dc.tls_port, caFile="", ignoreSSLPolicyErrors="0",
                                        targetArchive="tlsuser")))
    assert re.search(r"certificate", err, re.I), err
    # STARTTLS, trusting another certificate than the server's.
    err = run_failed(d, create(d, props(dc, user, name="tls-othercert", caFile=dc.untrusted_cert,
                                        targetArchive="tlsuser")))
    assert re.search(r"certificate", err, re.I), err
    assert dc.logins(user, mark) == [], "a login happened over an untrusted connection"
    assert archive_contents(d, "tlsuser") == {}
    # The same profile with ignoreSSLPolicyErrors "1" archives: it was the certificate.
    r = run_ok(d, create(d, props(dc, user, name="ssl-ignore", protocol="IMAP-SSL",
                                  host="127.0.0.1:%d" % dc.tls_port, caFile="", ignoreSSLPolicyErrors="1",
                                  targetArchive="tlsuser")))
    assert r["archived"] == 1
    assert archive_contents(d, "tlsuser") == {"Inbox": shas([raw])}


def test_required_tls_without_starttls_fails_and_sends_no_password(notls, d):
    user = "plainonly"
    raw = message("plainonly0")
    notls.deliver(user, "INBOX", raw)
    mark = notls.log_mark()
    # protocol not given: IMAP-TLS, the default, requires STARTTLS.
    err = run_failed(d, create(d, props(notls, user, name="notls", protocol=None, targetArchive="plainonly")))
    assert "STARTTLS" in err, err
    err = run_failed(d, create(d, props(notls, user, name="notls-pop", connector="POP3", protocol=None,
                                        targetArchive="plainonly")))
    assert re.search(r"STLS|STARTTLS", err), err
    assert notls.logins(user, mark) == [], "the password went over a connection without TLS"
    # Plain IMAP, asked for, works: the server and the user are fine.
    r = run_ok(d, create(d, props(notls, user, name="plain", protocol="IMAP", caFile="", targetArchive="plainonly")))
    assert r["archived"] == 1
    assert archive_contents(d, "plainonly") == {"Inbox": shas([raw])}


# ---- hostile messages ---------------------------------------------------------------------

def test_malformed_and_huge_messages_are_archived_or_reported(dc, d):
    user = "mal"
    rnd = os.urandom(22 * 1024 * 1024)
    b64 = base64.encodebytes(rnd).replace(b"\n", b"\r\n")
    huge = (b"From: big@example.net\r\nTo: rcpt@example.org\r\nSubject: malhuge\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=\"hb\"\r\n\r\n--hb\r\nContent-Type: text/plain\r\n\r\nmalhuge\r\n"
            b"--hb\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + b64 + b"--hb--\r\n")
    assert len(huge) > 30 * 1000 * 1000
    hostile = {
        "headeronly": b"Subject: malheaderonly\r\nFrom: x@example.net\r\n",
        "noheader": b"just some text and no header at all malnoheader\r\n",
        "brokenmime": (b"Subject: malbrokenmime\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n"
                       b"\r\n--b1\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64@@@\r\n--b1\r\n"
                       b"Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n"),
        "eightbit": b"Subject: \xff\xfe malgarbage \x80\r\nFrom: \xc3\x28@example.net\r\n\r\nbody \xe9\xe8\r\n",
        "longline": b"Subject: mallongline\r\n\r\n" + b"A" * 200000 + b"\r\n",
        "huge": huge,
    }
    dc.deliver_many(user, "INBOX", list(hostile.values()))
    # Dovecot holds exactly these bytes (APPEND stores them as given).
    assert mailbox_shas(dc, user, "INBOX") == shas(hostile.values())
    r = run_ok(d, create(d, props(dc, user, targetArchive="mal", deleteRule="afterArchiving")), timeout=T_SHORT * 3)
    archived = archive_contents(d, "mal").get("Inbox", collections.Counter())
    assert set(archived) <= {sha256(v) for v in hostile.values()}, archived
    assert all(count == 1 for count in archived.values()), archived
    assert r["archived"] == len(archived) and r["archived"] + r["refused"] == len(hostile), r
    # Under the product's 512 MiB limit: the huge one is archived, byte for byte.
    assert sha256(huge) in archived
    # What was not archived is still in the mailbox: a failed message is never deleted.
    left = mailbox_shas(dc, user, "INBOX")
    assert left == shas(v for v in hostile.values() if sha256(v) not in archived), (r, left)


# ---- Dovecot killed mid-run ---------------------------------------------------------------

def written_by(pid):
    try:
        with open("/proc/%d/io" % pid) as f:
            return int(re.search(r"wchar: (\d+)", f.read()).group(1))
    except (OSError, AttributeError):
        return 0


def run_with_dovecot_killed(dc, d, tmp_path, pid, user, protocol, after_bytes, total_bytes, restart=False):
    """RunProfile pid started, and Dovecot killed once its imap (or pop3)
    processes for user sent after_bytes of the total_bytes: a fetch is under
    way.  Started again at once when restart, else only after the run
    ended.  Returns the run's envelope (its output went to files: a pipe
    nobody reads while we watch Dovecot could stall the run)."""
    out_path, err_path = tmp_path / "run.out", tmp_path / "run.err"
    with open(out_path, "wb") as out_f, open(err_path, "wb") as err_f:
        proc = subprocess.Popen([MAILVAULT_BIN, "--data-dir", d, "cmd", "RunProfile", "--id=%d" % pid],
                                stdout=out_f, stderr=err_f, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            sent = sum(written_by(p) for p in dc.imap_processes(user, protocol=protocol))
            if sent > after_bytes:
                break
            assert proc.poll() is None, "the run ended before Dovecot could be killed: %r" % out_path.read_bytes()[:2000]
            assert time.monotonic() < deadline, "the run never started fetching"
            time.sleep(0.002)
        assert sent < total_bytes, "the whole mailbox was already sent"
        dc.kill9()
        if restart:
            dc.restart()
        proc.wait(timeout=T_SHORT * 3)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if not dc.running():
            dc.restart()
    out = out_path.read_bytes()
    check_no_crash(subprocess.CompletedProcess(proc.args, proc.returncode, out, err_path.read_bytes()))
    return json.loads(out.decode())


def test_dovecot_killed_mid_run_then_next_run_completes(dc, d, tmp_path):
    user = "kill"
    n = 3000
    raws = [message("kill%04d" % i, pad=10 * 1024) for i in range(n)]
    for raw in raws:
        dc.deliver_maildir(user, "INBOX", raw, flags="S")
    assert mailbox_shas(dc, user, "INBOX") == shas(raws)
    pid = create(d, props(dc, user, targetArchive="killarch"))
    # Under way: the product's imap process for the user has sent some
    # hundreds of kilobytes of the ~30 MB.
    e = run_with_dovecot_killed(dc, d, tmp_path, pid, user, "imap", 500 * 1024, sum(len(r) for r in raws))
    assert e["statusCode"] == "failed" and e["error"], e
    assert re.search(r"connection|closed|reset|lost|eof|disconnect|broken|read|127\.0\.0\.1", e["error"]["message"],
                     re.I), e["error"]
    cut = sum(sum(c.values()) for c in archive_contents(d, "killarch").values())
    assert cut < n
    r = run_ok(d, pid, timeout=T_SHORT * 3)
    assert r["archived"] == n - cut, (cut, r)
    # Every message exactly once.
    assert archive_contents(d, "killarch") == {"Inbox": shas(raws)}
    assert mailbox_shas(dc, user, "INBOX") == shas(raws)


def test_mailvault_killed_mid_run_then_next_run_completes(dc, d, tmp_path):
    """kill -9 of mailvault itself while it fetches: what it acknowledged is
    durable, its state claims nothing it did not archive, and the next run
    archives exactly the rest -- every message once, none lost."""
    user = "mvkill"
    n = 2000
    raws = [message("mvkill%04d" % i, pad=10 * 1024) for i in range(n)]
    total_bytes = sum(len(r) for r in raws)
    for raw in raws:
        dc.deliver_maildir(user, "INBOX", raw, flags="S")
    pid = create(d, props(dc, user, targetArchive="mvkillarch", deleteRule="afterArchiving"))
    with open(tmp_path / "run.out", "wb") as out_f:
        proc = subprocess.Popen([MAILVAULT_BIN, "--data-dir", d, "cmd", "RunProfile", "--id=%d" % pid],
                                stdout=out_f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while sum(written_by(p) for p in dc.imap_processes(user)) < total_bytes // 3:
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "the run never got a third of the way"
            time.sleep(0.002)
        proc.kill()
        proc.wait(timeout=T_SHORT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -9
    cut = collections.Counter()
    for c in archive_contents(d, "mvkillarch").values():
        cut.update(c)
    assert all(v == 1 for v in cut.values()), "a message archived twice before the kill"
    assert sum(cut.values()) < n
    # Deleted from the server only what is archived: nothing archived is
    # missing from both places, nothing was deleted that is not archived.
    left = mailbox_shas(dc, user, "INBOX")
    assert not (shas(raws) - left - cut), "a message neither archived nor left in the mailbox"
    r = run_ok(d, pid, timeout=T_SHORT * 3)
    assert r["refused"] == 0, r
    assert archive_contents(d, "mvkillarch") == {"Inbox": shas(raws)}
    assert mailbox_shas(dc, user, "INBOX") == collections.Counter(), "archived messages left on the server"


def pop3_maildrop(dc, d, user, n):
    """n messages of ~10 KB delivered to user, and a POP3 profile (archive
    named after the user) that deletes after archiving: (raws, profile id)."""
    raws = [message("%s%04d" % (user, i), pad=10 * 1024) for i in range(n)]
    dc.deliver_many(user, "INBOX", raws)
    return raws, create(d, props(dc, user, name=user, connector="POP3", targetArchive=user,
                                 deleteRule="afterArchiving"))


def test_pop3_dovecot_killed_mid_run_then_next_run_deletes_what_it_archived(dc, d, tmp_path):
    """POP3 deletes only at QUIT.  A run cut off before it (Dovecot killed
    while it retrieves, and down through the run's reconnects) deleted
    nothing; the next run must still delete every message archived, the
    first run's too, and archive each once -- a deletion rule is not passed
    over because a connection was lost."""
    user, n = "popkill", 2000
    raws, pid = pop3_maildrop(dc, d, user, n)
    e = run_with_dovecot_killed(dc, d, tmp_path, pid, user, "pop3", sum(len(r) for r in raws) // 4,
                                sum(len(r) for r in raws))
    assert e["statusCode"] == "failed" and e["error"], e
    cut = sum(sum(c.values()) for c in archive_contents(d, user).values())
    assert 0 < cut < n, cut
    assert mailbox_shas(dc, user, "INBOX") == shas(raws), "a message deleted before QUIT"
    r = run_ok(d, pid, timeout=T_SHORT * 3)
    assert (r["archived"], r["deleted"]) == (n - cut, n), (cut, r)
    assert archive_contents(d, user) == {"Inbox": shas(raws)}
    assert dc.list(user, "INBOX") == [], "archived messages left on the server"


def test_pop3_connection_lost_mid_run_reconnects_and_completes(dc, d, tmp_path):
    """Dovecot killed while the run retrieves and started again at once: the
    run connects again (after its 1 s wait) and completes in one go --
    every message archived once, all of them deleted, the first session's
    too (their UIDLs were left unrecorded and confirmed by the second)."""
    user, n = "popre", 2000
    raws, pid = pop3_maildrop(dc, d, user, n)
    e = run_with_dovecot_killed(dc, d, tmp_path, pid, user, "pop3", sum(len(r) for r in raws) // 4,
                                sum(len(r) for r in raws), restart=True)
    assert e["statusCode"] == "succeeded", e
    r = e["result"]
    # One reconnect, or more if Dovecot took longer than the first wait to start.
    assert r["reconnects"] >= 1 and "connecting again (attempt 1 of 3)" in e["logOutput"], (r, e["logOutput"])
    assert (r["archived"], r["deleted"], r["folders"]) == (n, n, 1), r
    assert archive_contents(d, user) == {"Inbox": shas(raws)}
    assert dc.list(user, "INBOX") == [], "archived messages left on the server"


def test_password_is_kept_as_a_credential_and_never_logged(dc, d):
    """CreateProfile keeps details.password as a Password credential the
    profile names; GetProfiles never shows it, the audit log never holds it,
    and the saved profile still logs on with it."""
    user = "secret"
    password = dc.users[user]
    dc.deliver(user, "INBOX", message("secret1"))
    pid = create(d, props(dc, user, name="with a password", targetArchive="secretarch"))
    shown = [p for p in ok(d, "GetProfiles", raw=True) if p["id"] == pid][0]
    assert shown["details"]["password"] == ""
    cred = int(shown["details"]["credential"])
    creds = {c["id"]: c for c in ok(d, "GetCredentials")}
    assert creds[cred]["type"] == "Password" and creds[cred].get("userName") == user, creds[cred]
    assert password not in json.dumps(creds)
    assert run_ok(d, pid)["archived"] == 1
    # The temporary profile's password goes through the audit path too.
    ok(d, "TestProfile", properties=props(dc, user, name="probe"))
    audit = mv("audit", data_dir=d).stdout.decode("utf-8", "replace")
    assert password not in audit
    assert "(hidden)" in audit
    # The credential is in use: it cannot be deleted while the profile is there.
    e = call(d, "DeleteCredential", id=cred)
    assert e["statusCode"] == "failed" and "with a password" in e["error"]["message"], e
    ok(d, "DeleteProfile", id=pid)
    ok(d, "DeleteCredential", id=cred)


def test_profile_types_and_test_profile(dc, d):
    """GetProfileTypes publishes both connectors' tables; TestProfile logs on
    and says which folders a run would read, archiving nothing."""
    types = {t["connector"]: {x["name"]: x for x in t["details"]} for t in ok(d, "GetProfileTypes")}
    assert {"FileSystem", "IMAP", "POP3"} <= set(types)
    assert types["IMAP"]["protocol"]["allowed"] == ["IMAP", "IMAP-TLS", "IMAP-SSL"]
    assert types["POP3"]["protocol"]["allowed"] == ["POP3", "POP3-TLS", "POP3-SSL"]
    for name in ("host", "userName", "password", "ignoreSSLPolicyErrors", "timeout", "subType", "targetUserFolder",
                 "excludeUnRead", "deleteRule", "unknownAddresses"):
        assert name in types["IMAP"], name
    user = "tester"
    dc.create_folder(user, "Projects")
    dc.create_folder(user, "Junk")
    dc.deliver(user, "Projects", message("tester1"))
    mark = dc.log_mark()
    r = ok(d, "TestProfile", properties=props(dc, user, name="test only"))
    assert r["login"] == "ok"
    assert sorted(r["folders"]) == ["Inbox", "Projects"], r
    assert "Junk" in r["foldersPassedOver"], r
    assert body_fetches(dc, user, mark) == 0
    nowhere(d, "tester1")


def test_pop3_multidrop_routes_leaves_unknown_and_deletes_only_the_routed(dc, d):
    """A POP3 multidrop mailbox: routed like IMAP's (Delivered-To first), a
    message for no known user left on the server and looked at again, each
    routed message deleted (DELE+QUIT) only once archived; a user added
    later gets the left message on the next run."""
    user = "popdrop"
    create_user(d, "pd1", "pd1@pd.test")
    to_pd1 = message("pdone", to="list@pd.test", extra="Delivered-To: pd1@pd.test\r\n")
    stranger = message("pdstranger", to="pd2@pd.test", frm="x@elsewhere.test")
    dc.deliver_many(user, "INBOX", [to_pd1, stranger])
    pid = create(d, props(dc, user, name="popdrop", connector="POP3", subType="2", targetFolder="Drop/{u-email}",
                          unknownAddresses="leave", deleteRule="afterArchiving"))
    mark = dc.log_mark()
    r = run_ok(d, pid)
    assert r["archived"] == 1 and r["left"] == 1, r
    assert pop3_counts(dc, user, mark, "del") == 1
    assert archive_contents(d, "pd1") == {"Drop/pd1@pd.test": shas([to_pd1])}
    assert mailbox_shas(dc, user, "INBOX") == shas([stranger])
    create_user(d, "pd2", "pd2@pd.test")
    r = run_ok(d, pid)
    assert r["archived"] == 1 and r["left"] == 0, r
    assert archive_contents(d, "pd2") == {"Drop/pd2@pd.test": shas([stranger])}
    assert mailbox_shas(dc, user, "INBOX") == collections.Counter()
