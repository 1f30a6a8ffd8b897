"""A message whose content row points at another message's valid record is
refused on every read path with "content hash mismatch" (issue 20, mutant 4).

The only corruption test before flipped a byte of a record, which the AEAD
rejects before the content-hash comparison in the store's read
(src/store/store.c, read_message_once) runs: removing that comparison
survived the suite.  Here the db row of message 2 is pointed at message 3's
record -- authentic, decrypts fine, decompresses fine, but holds other
bytes than the hash message 2's row names.  Only the hash comparison can
tell, and every reader must then fail rather than hand out message 3's
bytes as message 2:

- `mailvault show 1:2` exits 1, prints nothing on stdout and exactly
  "mailvault: message 1:2: content hash mismatch" on stderr;
- `show --headers` and `show --text` fail the same way;
- `show --sha256 1:2 1:3` prints the line of 1:3 only and names 1:2;
- GetMessage fails with "GetMessage: message 1:2: content hash mismatch";
- IMAP FETCH BODY.PEEK[] of it answers NO [SERVERBUG] without a FETCH
  line, while the other messages of the mailbox are served intact.

Messages 1 and 3 stay readable byte for byte (compared with the files
imported, not with anything the binary said)."""

import hashlib
import imaplib
import json
import os
import ssl

import pytest

from mvserver import MvServer, init_with_admin
import storedb
from mvtest import mv

pytestmark = pytest.mark.xdist_group("content_integrity")


def eml(i):
    return ("From: Sender %d <s%d@example.net>\r\n"
            "To: admin@example.com\r\n"
            "Subject: integrity %d\r\n"
            "Date: Mon, %02d Jan 2024 10:00:00 +0000\r\n"
            "Message-ID: <integrity-%d@example.com>\r\n"
            "\r\n"
            "the body of message number %d\r\n" % (i, i, i, i, i, i)).encode()


ORIGINALS = {i: eml(i) for i in (1, 2, 3)}
MISMATCH = "message 1:2: content hash mismatch"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("integrity")
    d = str(root / "data")
    pw = init_with_admin(d)
    src = root / "src"
    src.mkdir()
    for i, raw in ORIGINALS.items():
        (src / ("%d.eml" % i)).write_bytes(raw)
    # archive "admin", no folder: the administrator's IMAP INBOX
    summary = json.loads(mv("import", str(src), "--archive", "admin", "--json", data_dir=d).stdout)
    assert summary["imported"] == 3, summary
    db = storedb.connect(d)
    try:
        by_num = {num: (cid, h) for num, cid, h in db.execute(
            "SELECT m.num, c.id, c.hash FROM messages m JOIN contents c ON c.id = m.content_id")}
        assert sorted(by_num) == [1, 2, 3], by_num
        # which number holds which file: the store's hash is BLAKE2b-256 of the bytes
        for num, (_, h) in by_num.items():
            assert bytes(h) == hashlib.blake2b(ORIGINALS[num], digest_size=32).digest(), num
        # message 2's content row now names message 3's record (its hash unchanged)
        db.execute("UPDATE contents SET (segment, offset, length) = (SELECT segment, offset, length FROM contents"
                   " WHERE id = ?) WHERE id = ?", (by_num[3][0], by_num[2][0]))
        db.commit()
    finally:
        db.close()
    return {"dir": d, "pw": pw, "root": root}


def test_show_refuses_the_wrong_record(world):
    for extra in ((), ("--headers",), ("--text",)):
        cp = mv("show", *extra, "1:2", data_dir=world["dir"], check=1)
        assert cp.stdout == b"", (extra, cp.stdout[:200])
        assert cp.stderr.decode() == "mailvault: %s\n" % MISMATCH, (extra, cp.stderr)


def test_other_messages_read_intact(world):
    for num in (1, 3):
        assert mv("show", "1:%d" % num, data_dir=world["dir"]).stdout == ORIGINALS[num], num


def test_show_sha256_names_the_damaged_one(world):
    cp = mv("show", "--sha256", "1:2", "1:3", data_dir=world["dir"], check=1)
    assert cp.stdout.decode() == "%s  1:3\n" % hashlib.sha256(ORIGINALS[3]).hexdigest(), cp.stdout
    assert cp.stderr.decode() == "mailvault: 1:2: %s\n" % MISMATCH, cp.stderr


def test_get_message_refuses(world):
    cp = mv("cmd", "GetMessage", "--id=1:2", data_dir=world["dir"], check=1)
    env = json.loads(cp.stdout)
    assert env["statusCode"] == "failed" and env["result"] is None, env
    assert env["error"]["message"] == "GetMessage: " + MISMATCH, env
    ok = json.loads(mv("cmd", "GetMessage", "--id=1:3", data_dir=world["dir"]).stdout)
    assert ok["statusCode"] == "succeeded", ok


def test_imap_fetch_refuses(world):
    d = world["dir"]
    with MvServer(d, password=world["pw"]) as srv:
        ctx = ssl.create_default_context(cafile=srv.cert_path())
        m = imaplib.IMAP4_SSL("127.0.0.1", srv.imaps_port, ssl_context=ctx, timeout=120)
        try:
            m.login("admin", world["pw"])
            typ, data = m.select("INBOX", readonly=True)
            assert typ == "OK" and data == [b"3"], (typ, data)
            got = {}
            for seq in (1, 2, 3):
                typ, data = m.fetch(str(seq), "(BODY.PEEK[])")
                got[seq] = (typ, data)
            refused = [s for s, (typ, _) in got.items() if typ == "NO"]
            assert len(refused) == 1, got
            typ, data = got[refused[0]]
            assert data == [b"[SERVERBUG] a message could not be read; the rest of the archive is unaffected"], data
            served = sorted(data[0][1] for s, (typ, data) in got.items() if s not in refused)
            assert served == sorted([ORIGINALS[1], ORIGINALS[3]]), got
        finally:
            m.logout()
        assert "IMAP: FETCH for admin: %s" % MISMATCH in srv.stderr(), srv.stderr()[-2000:]
