"""Export and restore: EML directories with MailStore headers read back by
the import, mbox per folder, signed exports (openssl and verify-export,
tampering), the export privilege, IMAP restore into a real Dovecot and SMTP
forwarding.

A subset of the corpus is used (ASan binaries are slow): a few hundred
messages in two archives, one folder with a non-ASCII name."""

import collections
import os
import shutil
import socketserver
import subprocess
import threading

import pytest

import dovecot
from mvtest import import_json, init_data_dir, mv, parse_json, search_json, sha256, show_hashes

pytestmark = pytest.mark.xdist_group("export")

FOLDERS = {  # (archive, folder): (corpus group, how many)
    ("alice", "Inbox"): ("easy-ham-1", 120),
    ("alice", "Junk/Spam \u2713 & more"): ("spam-1", 40),
    ("bob", "Inbox/Lists"): ("hard-ham-1", 40),
}


def archive_contents(data_dir):
    """{(archive, folder): Counter of sha256} of everything in data_dir."""
    hits = search_json("size:>0", data_dir, limit=0)
    shas, errors = show_hashes([h["id"] for h in hits], data_dir)
    assert not errors, list(errors.items())[:5]
    out = collections.defaultdict(collections.Counter)
    for h in hits:
        out[(h["archive"], h["folder"])][shas[h["id"]]] += 1
    return out


@pytest.fixture(scope="module")
def src(corpus, tmp_path_factory):
    """A data directory with the FOLDERS subset, and its contents."""
    root = tmp_path_factory.mktemp("export-src")
    d = init_data_dir(root / "data")
    for (archive, folder), (group, n) in FOLDERS.items():
        pick = root / ("pick-%s-%d" % (archive, len(os.listdir(root))))
        pick.mkdir()
        names = sorted(os.listdir(os.path.join(corpus.eml_dir, group)))[:n]
        for name in names:
            shutil.copy(os.path.join(corpus.eml_dir, group, name), pick / (name + ".eml"))
        summary, _ = import_json(pick, archive, d, "--folder", folder)
        assert summary["refused"] == 0, summary
    return d, archive_contents(d)


def export(data_dir, *args, check=True):
    return mv("export", *args, "--json", data_dir=data_dir, check=check, timeout=600)


# ---- EML with MailStore headers ----------------------------------------------

def test_eml_export_reimport_same_archives_folders_hashes(src, tmp_path):
    d, contents = src
    out = tmp_path / "eml"
    res = parse_json(export(d, "eml", out))
    total = sum(sum(c.values()) for c in contents.values())
    assert res["messagesExported"] == total and res["messagesFailed"] == 0, res
    # Layout: DIR/<archive>/<folder path>/<store>-<num>.eml, names encoded.
    assert (out / "alice" / "Inbox").is_dir()
    assert (out / "alice" / "Junk" / "Spam \u2713 & more").is_dir()
    assert (out / "bob" / "Inbox" / "Lists").is_dir()
    one = next((out / "alice" / "Inbox").iterdir())
    head = one.read_bytes().split(b"\n", 6)
    assert head[0].startswith(b"X-MailVault-Archive-UTF7: alice")
    spam = next((out / "alice" / "Junk" / "Spam \u2713 & more").iterdir()).read_bytes()
    assert b"X-MailStore-Folder-UTF7: Junk/Spam &JxM- &- more" in spam
    # Re-import without --archive: every file says where it belongs.
    d2 = init_data_dir(tmp_path / "again")
    summary, _ = import_json_headers(out, d2)
    assert summary["imported"] == total and summary["refused"] == 0, summary
    assert archive_contents(d2) == contents
    # ... with the archive dates it had.
    for folder in ("alice/Inbox", "bob/Inbox/Lists"):
        assert sorted(archived_dates(d2, folder)) == sorted(archived_dates(d, folder)), folder


def test_eml_export_of_a_date_range(src, tmp_path):
    """--since and --before keep the messages dated in [since, before), in
    every archive or in one: the exported files are exactly those messages.
    The walk goes folder by folder through messages_folder_date (no index
    on the date alone since the store dropped messages_date)."""
    d, _ = src
    hits = search_json("size:>0", d, limit=0)
    dates = sorted({h["date"] for h in hits})
    since, before = dates[len(dates) // 4], dates[3 * len(dates) // 4]
    for archive in (None, "alice"):
        want = {h["id"].replace(":", "-") for h in hits
                if since <= h["date"] < before and archive in (None, h["archive"])}
        assert 10 < len(want) < len(hits)
        out = tmp_path / ("range-%s" % archive)
        extra = ("--archive", archive) if archive else ()
        res = parse_json(export(d, "eml", out, "--since", since, "--before", before, *extra))
        assert res["messagesExported"] == len(want) and res["messagesFailed"] == 0, res
        got = {f[:-len(".eml")] for _, _, files in os.walk(out) for f in files if f.endswith(".eml")}
        assert got == want


def import_json_headers(path, data_dir, *extra, check=(0, 3)):
    cp = mv("import", path, "--json", "--read-mailstore-headers", *extra, data_dir=data_dir, check=check, timeout=600)
    return parse_json(cp), cp


def test_altered_export_file_is_refused_by_name(src, tmp_path):
    d, _ = src
    out = tmp_path / "eml"
    export(d, "eml", out, "--archive", "bob")
    victim = sorted((out / "bob" / "Inbox" / "Lists").iterdir())[0]
    victim.write_bytes(victim.read_bytes() + b"appended\n")
    d2 = init_data_dir(tmp_path / "again")
    summary, cp = import_json_headers(out, d2)
    assert cp.returncode == 3 and summary["refused"] == 1, summary
    r = summary["refusals"][0]
    assert r["origin"] == str(victim) and "Header-Hash" in r["reason"], r
    # Nothing is lost: without the option the file imports as it is.
    s2, _ = import_json(victim, "rescue", d2)
    assert s2["imported"] == 1


# ---- mbox ---------------------------------------------------------------------

def test_mbox_export_reimports_byte_exact(src, tmp_path):
    d, contents = src
    out = tmp_path / "mbox"
    res = parse_json(export(d, "mbox", out))
    assert res["files"] == len(contents), res
    d2 = init_data_dir(tmp_path / "again")
    for (archive, folder) in contents:
        parts = folder.split("/")
        path = out.joinpath(archive, *parts[:-1], parts[-1] + ".mbox")
        assert path.is_file(), path
        s, _ = import_json(path, archive, d2, "--folder", folder)
        assert s["refused"] == 0
    assert archive_contents(d2) == contents
    # MANIFEST is sha256sum's format.
    subprocess.run(["sha256sum", "--quiet", "-c", "MANIFEST"], cwd=out, check=True)


# ---- signed export ---------------------------------------------------------------

def openssl_verify(out, rel):
    return subprocess.run(["openssl", "dgst", "-sha256", "-verify", str(out / "publickey.pem"), "-signature",
                           str(out / (rel + ".sig")), str(out / rel)], capture_output=True)


def verify_export(out):
    cp = mv("verify-export", out, "--json", check=(0, 1))
    return cp.returncode, parse_json(cp)


def test_signed_export_verifies_and_tampering_is_detected(src, tmp_path):
    d, contents = src
    out = tmp_path / "signed"
    res = parse_json(export(d, "eml", out, "--sign", "--archive", "alice", "--folder", "Inbox"))
    assert res["signed"] and len(res["publicKeySha256"]) == 64, res
    rels = [line.split("  ", 1)[1] for line in (out / "MANIFEST").read_text().splitlines()]
    assert len(rels) == sum(contents[("alice", "Inbox")].values())
    for rel in rels[:5] + ["MANIFEST"]:
        cp = openssl_verify(out, rel)
        assert cp.returncode == 0 and b"Verified OK" in cp.stdout, (rel, cp.stderr)
    # The audit log holds the key's fingerprint.
    audit = mv("audit", "--json", data_dir=d).stdout.decode()
    assert res["publicKeySha256"] in audit
    rc, rep = verify_export(out)
    assert rc == 0 and rep["ok"] and rep["verified"] == len(rels), rep
    assert rep["publicKeySha256"] == res["publicKeySha256"]

    # Import with --verify-signature keeps the archive dates.
    d2 = init_data_dir(tmp_path / "again")
    cp = mv("import", out, "--verify-signature", "--json", data_dir=d2, timeout=600)
    assert parse_json(cp)["imported"] == len(rels)
    before = archived_dates(d, "alice/Inbox")
    after = archived_dates(d2, "alice/Inbox")
    assert sorted(before) == sorted(after)

    # Tampering: one altered byte, one deleted file, one extra file.
    altered, deleted = out / rels[0], out / rels[1]
    data = bytearray(altered.read_bytes())
    data[-2] ^= 0x01
    altered.write_bytes(bytes(data))
    assert openssl_verify(out, rels[0]).returncode != 0
    deleted.unlink()
    (out / "alice" / "Inbox" / "planted.eml").write_bytes(b"From: x\n\nhi\n")
    rc, rep = verify_export(out)
    assert rc == 1 and not rep["ok"], rep
    assert [a["file"] for a in rep["altered"]] == [rels[0]], rep
    assert rep["missing"] == [rels[1]], rep
    assert rep["extra"] == ["alice/Inbox/planted.eml"], rep
    # The import refuses the altered and the planted file, naming them.
    d3 = init_data_dir(tmp_path / "third")
    cp = mv("import", out, "--verify-signature", "--json", data_dir=d3, check=3, timeout=600)
    refusals = {r["origin"]: r["reason"] for r in parse_json(cp)["refusals"]}
    assert set(refusals) == {str(altered), str(out / "alice" / "Inbox" / "planted.eml")}, refusals
    assert all(r.startswith("signature: ") or "signature: " in r for r in refusals.values()), refusals


def archived_dates(data_dir, folder):
    env = parse_json(mv("cmd", "GetMessages", "--folder=" + folder, data_dir=data_dir))
    return [m["archivedAt"] for m in env["result"]]


# ---- privileges --------------------------------------------------------------------

def test_export_privilege_and_readable_folders(src, tmp_path):
    d, contents = src
    mv("cmd", "CreateUser", "--userName=carol", "--privileges=login", "--password=Carol-pw-12345", data_dir=d)
    mv("cmd", "CreateUser", "--userName=dave", "--privileges=login,export", "--password=Dave-pw-12345", data_dir=d)
    for user in ("carol", "dave"):
        mv("cmd", "SetUserPrivilegesOnFolder", "--userName=" + user, "--folder=alice/Inbox", "--privileges=read",
           data_dir=d)
    cp = export(d, "eml", tmp_path / "carol", "--as-user", "carol", check=1)
    assert b"export privilege" in cp.stderr
    # A user's directory exports go below their own export directory only.
    cp = export(d, "eml", tmp_path / "dave", "--as-user", "dave", check=1)
    assert b"relative path below their own export directory" in cp.stderr, cp.stderr
    cp = export(d, "eml", "../../escape", "--as-user", "dave", check=1)
    assert not (d.parent / "escape").exists()
    res = parse_json(export(d, "eml", "case-17", "--as-user", "dave"))
    assert res["messagesExported"] == sum(contents[("alice", "Inbox")].values()), res
    mine = d / "exports" / "dave" / "case-17"
    assert sorted(p.name for p in mine.iterdir()) == ["MANIFEST", "alice"]
    assert [p.name for p in (mine / "alice").iterdir()] == ["Inbox"]


# ---- IMAP restore -------------------------------------------------------------------

def test_imap_restore_into_dovecot_byte_exact(src, tmp_path):
    d, contents = src
    srv = dovecot.start(tmp_path)
    try:
        pw = tmp_path / "pw"
        pw.write_text(srv.password + "\n")
        # STARTTLS on the plain port for alice, implicit TLS for bob.
        res = parse_json(export(d, "imap", "imap://127.0.0.1:%d" % srv.port, "--archive", "alice", "--user",
                                srv.user, "--password-file", pw, "--ca-file", srv.cert))
        alice = sum(sum(c.values()) for (a, _), c in contents.items() if a == "alice")
        assert res["messagesExported"] == alice and res["messagesFailed"] == 0, res
        res2 = parse_json(export(d, "imap", "imaps://127.0.0.1:%d" % srv.tls_port, "--archive", "bob", "--user",
                                 srv.user, "--password-file", pw, "--ca-file", srv.cert, "--target-folder", "Restored"))
        assert res2["messagesFailed"] == 0
        m = srv.imap()
        typ, boxes = m.list()
        m.logout()
        names = {b.decode().rsplit(' "/" ', 1)[1].strip('"') for b in boxes}
        assert {"INBOX", "Junk/Spam &JxM- &- more", "Restored/Inbox/Lists"} <= names, names
        for (archive, folder), want in contents.items():
            box = {"Inbox": "INBOX", "Junk/Spam \u2713 & more": "Junk/Spam &JxM- &- more",
                   "Inbox/Lists": "Restored/Inbox/Lists"}[folder]
            got = collections.Counter(sha256(b) for b in srv.folder_files(box).values())
            assert got == want, (archive, folder, len(got), len(want))
    finally:
        srv.stop()


# ---- SMTP forward -------------------------------------------------------------------

class _Capture(socketserver.StreamRequestHandler):
    """Just enough SMTP to accept mail: the DATA of each transaction, with
    dot-stuffing undone (the CRLF before the final "." ends the last line)."""

    def handle(self):
        self.wfile.write(b"220 capture ESMTP\r\n")
        while True:
            line = self.rfile.readline()
            if not line:
                return
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                self.wfile.write(b"250-capture\r\n250 8BITMIME\r\n")
            elif verb == b"DATA":
                self.wfile.write(b"354 go\r\n")
                body = bytearray()
                while True:
                    ln = self.rfile.readline()
                    if ln in (b".\r\n", b""):
                        break
                    body += ln[1:] if ln.startswith(b".") else ln
                self.server.messages.append(bytes(body))
                self.wfile.write(b"250 ok\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.server.envelope.append(line.strip())
                self.wfile.write(b"250 ok\r\n")


def test_smtp_forward(src, tmp_path):
    d, contents = src
    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Capture)
    srv.messages, srv.envelope = [], []
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        res = parse_json(export(d, "smtp", "smtp://127.0.0.1:%d" % srv.server_address[1], "--tls", "none",
                                "--archive", "bob", "--from", "archive@example.org", "--to", "restore@example.org"))
        want = contents[("bob", "Inbox/Lists")]
        assert res["messagesExported"] == sum(want.values())
        assert b"MAIL FROM:<archive@example.org>" in srv.envelope
        assert b"RCPT TO:<restore@example.org>" in srv.envelope
        # SMTP's lines end in CRLF: what arrives is the archived bytes with
        # each bare LF sent as CRLF, nothing else changed (dots unstuffed).
        got = collections.Counter(sha256(m.replace(b"\r\n", b"\n")) for m in srv.messages)
        assert got == want
        assert all(b"\n" not in m.replace(b"\r\n", b"") for m in srv.messages)
    finally:
        srv.shutdown()
        srv.server_close()
