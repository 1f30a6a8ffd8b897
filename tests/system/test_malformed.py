"""Hostile and broken input: nothing may crash (every mailvault run is checked
by mvtest.mv for signals and sanitizer reports), a message that can be read
at all is archived byte-exact, and what is refused is refused with a reason
naming the input."""

import base64
import os
import random
import re
import struct
import zlib

import pytest

from mvtest import import_json, mv, search_json, sha256, show


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def import_one(path, data_dir, archive="t", *extra):
    summary, cp = import_json(path, archive, data_dir, *extra, timeout=300)
    return summary


def only_message(data_dir, archive="t"):
    hits = search_json("size:>0", data_dir, archive=archive, limit=0)
    assert len(hits) == 1, hits
    return hits[0]


def assert_archived_exact(path, data, data_dir, malformed=None):
    s = import_one(path, data_dir)
    assert (s["imported"], s["refused"]) == (1, 0), s
    if malformed is not None:
        assert s["malformed"] == malformed, s
    hit = only_message(data_dir)
    assert hit["size"] == len(data), hit
    out = show(hit["id"], data_dir, timeout=300)
    assert len(out) == len(data) and sha256(out) == sha256(data), "show does not return the archived bytes"
    return s, hit


def assert_refused(s, path, reason_word=None):
    assert (s["imported"], s["refused"]) == (0, 1), s
    r = s["refusals"][0]
    assert str(path) in r["origin"] or r["origin"].endswith(os.sep + path.name), r
    assert r["reason"].strip(), r
    if reason_word:
        assert reason_word in r["reason"].lower(), r
    return r


HEAD = (b"From: Alice Example <alice@example.com>\n"
        b"To: bob@example.org\n"
        b"Date: Thu, 22 Aug 2002 11:36:16 +0000\n")


def good_message(n):
    return (HEAD + b"Subject: good message number %d\nMessage-ID: <good-%d@example.com>\n\n"
            b"Hello %d.\n" % (n, n, n))


def png_bytes():
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" + b"\xff\x00\x00" * 16)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat * 16) + chunk(b"IEND", b"")


def random_bytes(n, seed):
    data = bytearray(random.Random(seed).getrandbits(8) for _ in range(n))
    data[0:2] = b"\x00\x9c"   # never starts like a header field
    return bytes(data)


# ---- refusals ---------------------------------------------------------------------

def test_empty_file_refused(tmp_path, data_dir):
    p = write(tmp_path / "in" / "empty.eml", b"")
    s = import_one(p, data_dir)
    assert_refused(s, p, "empty")
    assert search_json("size:>0", data_dir, limit=0) == []


@pytest.mark.parametrize("kind", ["random", "png"])
def test_binary_file_refused(tmp_path, data_dir, kind):
    data = random_bytes(64 * 1024, 42) if kind == "random" else png_bytes()
    p = write(tmp_path / "in" / ("binary.eml" if kind == "random" else "image.eml"), data)
    s = import_one(p, data_dir)
    assert_refused(s, p)
    assert search_json("size:>0", data_dir, limit=0) == []


def test_directory_without_mail(tmp_path, data_dir):
    d = tmp_path / "nomail"
    d.mkdir()
    s = import_one(d, data_dir)
    assert s["imported"] == 0 and s["refused"] >= 1, s
    assert any(str(d) in r["origin"] or str(d) in r["reason"] for r in s["refusals"]), s["refusals"]
    assert all(r["reason"].strip() for r in s["refusals"]), s["refusals"]


def test_mixed_directory(tmp_path, data_dir):
    d = tmp_path / "mixed"
    good = [write(d / ("good%d.eml" % i), good_message(i)) for i in range(5)]
    good.append(write(d / "sub" / "good5.eml", good_message(5)))
    bad = [write(d / "empty.eml", b""),
           write(d / "noise.eml", random_bytes(4096, 7)),
           write(d / "sub" / "picture.eml", png_bytes())]
    s = import_one(d, data_dir)
    assert (s["imported"], s["refused"], s["duplicates"]) == (len(good), len(bad), 0), s
    origins = [r["origin"] for r in s["refusals"]]
    for p in bad:
        rel = os.path.relpath(p, d)
        assert sum(1 for o in origins if o.endswith(rel)) == 1, (rel, origins)
    for p in good:
        assert not any(o.endswith(os.path.relpath(p, d)) for o in origins)
    hits = search_json("size:>0", data_dir, archive="t", limit=0)
    assert sorted(sha256(show(h["id"], data_dir)) for h in hits) == sorted(sha256(p.read_bytes()) for p in good)
    # EML files at the import root land in the archive root (folder "")
    folders = sorted((h["folder"] or "") for h in hits)
    assert folders == [""] * 5 + ["sub"], folders


def test_files_passed_over_for_their_extension_are_counted(tmp_path, data_dir):
    """Issue 9.9: files of an EML directory without a wanted extension were
    skipped in silence; they are counted, `--ext '*'` takes every file and
    `--ext ''` is an error."""
    d = tmp_path / "exts"
    write(d / "a.eml", good_message(1))
    write(d / "notes.txt", good_message(2))
    write(d / "sub" / "README", good_message(3))
    s = import_one(d, data_dir)
    assert (s["imported"], s["refused"], s["skippedFiles"]) == (1, 0, 2), s
    cp = mv("import", str(d), "--archive", "t", data_dir=data_dir, check=False)
    assert b"skipped 2 files without the extension .eml or .msg (--ext '*' imports every file)" in cp.stdout, \
        cp.stdout
    s = import_one(d, data_dir, "t", "--ext", "*")
    assert (s["imported"], s["duplicates"], s["skippedFiles"]) == (2, 1, 0), s
    cp = mv("import", str(d), "--archive", "t", "--ext", "", data_dir=data_dir, check=False)
    assert cp.returncode == 2 and b"--ext '' names no extension" in cp.stderr, cp.stderr
    # a directory holding only other files says what it passed over
    only = tmp_path / "only-txt"
    write(only / "x.txt", good_message(4))
    s = import_one(only, data_dir)
    assert s["refused"] == 1 and "passed over 1 files" in s["refusals"][0]["reason"], s


def test_json_seconds_are_plain_milliseconds(tmp_path, data_dir):
    """Issue 9.12: `import --json` printed 3.0000000037944119e-5 seconds."""
    p = write(tmp_path / "one.eml", good_message(9))
    cp = mv("import", str(p), "--archive", "t", "--json", data_dir=data_dir)
    m = re.search(rb'"seconds":([^,}]*)', cp.stdout)
    assert m and re.fullmatch(rb"\d+(\.\d{1,3})?", m.group(1)), cp.stdout


def test_refusal_names_its_item_once(tmp_path, data_dir):
    """Issue 9.12: "refused: X: X: ..." printed the item twice."""
    d = tmp_path / "links"
    write(d / "good.eml", good_message(1))
    (d / "dangling.eml").symlink_to(tmp_path / "nowhere.eml")
    cp = mv("import", str(d), "--archive", "t", data_dir=data_dir, check=False)
    lines = [l for l in cp.stdout.decode().splitlines() if l.startswith("refused:")]
    assert len(lines) == 1 and lines[0].count("dangling.eml") == 1, lines
    assert lines[0].startswith("refused: %s: " % (d / "dangling.eml")), lines


# ---- archived whatever the shape ------------------------------------------------------

def test_truncated_multipart(tmp_path, data_dir):
    """No closing boundary, cut in the middle of a base64 part: archived,
    counted as malformed, shown byte-exact, the readable text indexed."""
    data = (HEAD + b"Subject: truncated quokkaword\nMIME-Version: 1.0\n"
            b"Content-Type: multipart/mixed; boundary=\"BOUNDARY-1\"\n\n"
            b"preamble\n--BOUNDARY-1\nContent-Type: text/plain\n\nthe first part is whole\n"
            b"--BOUNDARY-1\nContent-Type: application/octet-stream\n"
            b"Content-Transfer-Encoding: base64\n\n"
            + base64.encodebytes(bytes(range(256)) * 20)[:3001])
    p = write(tmp_path / "truncated.eml", data)
    assert_archived_exact(p, data, data_dir, malformed=1)
    assert len(search_json("subject:quokkaword", data_dir, limit=0)) == 1


def test_huge_header_line(tmp_path, data_dir):
    data = (HEAD + b"Subject: long header wombatword\nX-Long: " + b"a" * (2 * 1024 * 1024)
            + b"\n\nbody\n")
    p = write(tmp_path / "longheader.eml", data)
    assert_archived_exact(p, data, data_dir)
    assert len(search_json("subject:wombatword", data_dir, limit=0)) == 1


def test_deeply_nested_multipart(tmp_path, data_dir):
    depth = 10000
    parts = [HEAD, b"Subject: nested numbatword\nMIME-Version: 1.0\n"]
    for i in range(depth):
        parts.append(b"Content-Type: multipart/mixed; boundary=\"b%d\"\n\n--b%d\n" % (i, i))
    parts.append(b"Content-Type: text/plain\n\ninnermost\n")
    for i in reversed(range(depth)):
        parts.append(b"--b%d--\n" % i)
    data = b"".join(parts)
    p = write(tmp_path / "nested.eml", data)
    assert_archived_exact(p, data, data_dir)
    assert len(search_json("subject:numbatword", data_dir, limit=0)) == 1


@pytest.mark.parametrize("nuls", [3, 1000])
def test_nul_bytes_in_body(tmp_path, data_dir, nuls):
    """NULs in the body of a message with a proper header block: still mail
    (design.md 5: never dropped for being malformed), however many."""
    data = (HEAD + b"Subject: nul dingoword\n\nbefore\x00middle\x00after\n"
            + b"\x00" * (nuls - 2) + b"\nend\n")
    p = write(tmp_path / "nul.eml", data)
    assert_archived_exact(p, data, data_dir)
    assert len(search_json("subject:dingoword", data_dir, limit=0)) == 1


def test_unknown_charset(tmp_path, data_dir):
    data = (HEAD + b"Subject: charset bilbyword\nMIME-Version: 1.0\n"
            b"Content-Type: text/plain; charset=x-unknown-foo\n"
            b"Content-Transfer-Encoding: 8bit\n\nplain \xe9\xff\xfe text\n")
    p = write(tmp_path / "charset.eml", data)
    assert_archived_exact(p, data, data_dir)
    assert len(search_json("subject:bilbyword", data_dir, limit=0)) == 1


def test_invalid_utf8_in_encoded_word(tmp_path, data_dir):
    bad = base64.b64encode(b"\xc3\x28\xa0\xa1\xff\xfe\xe2\x82").decode()
    data = (HEAD + ("Subject: potoroo =?UTF-8?B?%s?= =?utf-8?q?=C3=28=FF?= bandicoot\n" % bad).encode()
            + b"\nbody\n")
    p = write(tmp_path / "rfc2047.eml", data)
    assert_archived_exact(p, data, data_dir)
    for word in ("potoroo", "bandicoot"):
        assert len(search_json("subject:" + word, data_dir, limit=0)) == 1, word
    hit = only_message(data_dir)
    assert "potoroo" in hit["subject"] and "bandicoot" in hit["subject"], hit


def test_many_hostile_files_in_one_directory(tmp_path, data_dir):
    """All of the above shapes in one directory import: nothing crashes and
    every file is either archived or refused, none lost."""
    d = tmp_path / "zoo"
    files = {
        "a.eml": b"",
        "b.eml": random_bytes(1000, 3),
        "c.eml": HEAD + b"Subject: x\n\n\x00\x00\x00\n",
        "d.eml": b"X: " + b"y" * 100000 + b"\n\n",
        "e.eml": b"Subject: no end of headers",
        "f.eml": b"Content-Type: multipart/mixed; boundary=z\n\n--z\n--z\n--z--\n",
        "g.eml": b"Content-Type: multipart/mixed\n\nno boundary parameter\n",
        "h.eml": b"\n\nonly blank lines then text\n",
        "i.eml": b"Subject: =?x-no-such?Q?=FF=FE?= =?UTF-8?B?####?=\n\n",
        "j.eml": b"From: <@@@>, \"unterminated, <a@b\nTo: ;;;,,,<>\nDate: 99 Foo 99999 99:99:99 +9999\n\nx\n",
    }
    for name, data in files.items():
        write(d / name, data)
    s = import_one(d, data_dir)
    assert s["imported"] + s["refused"] == len(files), s
    refused = [r["origin"] for r in s["refusals"]]
    assert any(o.endswith("a.eml") for o in refused), refused      # the empty file
    assert any(o.endswith("b.eml") for o in refused), refused      # random bytes
    hits = search_json("size:>0", data_dir, archive="t", limit=0)
    assert len(hits) == s["imported"]
    want = {sha256(data) for data in files.values()}
    for h in hits:
        assert sha256(show(h["id"], data_dir)) in want
