"""Attachment contents in search, end to end: documents made here by
LibreOffice (Debian's libreoffice-*-nogui, installed by tools/deps.sh test)
are attached to messages, imported with the real binary, and found by words
that occur only inside them; hostile documents (a bomb, garbage under a
document's name) are archived all the same and named in the summary, within
bounded time.

Each document carries its own made-up word, so a hit can only come from
that document's text."""

import email.message
import email.policy
import io
import json
import os
import shutil
import subprocess
import time
import zipfile

import pytest

from mvtest import import_json, init_data_dir, mv, parse_json, search_ids

# format -> (LibreOffice filter target, source kind, the word only it holds)
WRITER = {"pdf": "pdf", "docx": "docx", "odt": "odt", "doc": "doc", "rtf": "rtf"}
CALC = {"xlsx": "xlsx", "ods": "ods", "xls": "xls"}
WORDS = {fmt: "zq%sunicorn" % fmt for fmt in list(WRITER) + list(CALC)}
WORDS["zipped"] = "zqzippedwombat"
T_SOFFICE = 240


def soffice():
    exe = shutil.which("soffice") or shutil.which("libreoffice")
    if not exe:
        pytest.fail("LibreOffice is missing: tools/deps.sh test installs libreoffice-writer-nogui and "
                    "libreoffice-calc-nogui")
    return exe


def convert(exe, sources, target, outdir, profile):
    """One LibreOffice run converts every source to the target format."""
    cp = subprocess.run([exe, "-env:UserInstallation=file://" + profile, "--headless", "--norestore",
                         "--convert-to", target, "--outdir", outdir] + sources,
                        capture_output=True, timeout=T_SOFFICE)
    assert cp.returncode == 0, cp.stderr.decode(errors="replace")


def attach(subject, filename, data, ctype):
    m = email.message.EmailMessage(policy=email.policy.SMTP)
    m["From"] = "Sender <sender@example.com>"
    m["To"] = "archive@example.com"
    m["Subject"] = subject
    m["Date"] = "Tue, 01 Dec 2026 10:00:00 +0000"
    m["Message-ID"] = "<%s@attachments.test>" % subject.replace(" ", "-")
    m.set_content("Please see the attached file.\n")
    maintype, subtype = ctype.split("/")
    m.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return m.as_bytes()


CTYPES = {
    "pdf": "application/pdf", "doc": "application/msword", "xls": "application/vnd.ms-excel",
    "rtf": "application/rtf", "zip": "application/zip",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "odt": "application/vnd.oasis.opendocument.text", "ods": "application/vnd.oasis.opendocument.spreadsheet",
}


def zip_bomb():
    """A ZIP whose text entry inflates to 600 MB of zeros (about 600 KB
    compressed): the extractor reads text only as far as the index can use
    it, so this one is read quickly and is no failure at all."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("zeros.txt", "w", force_zip64=True) as f:
            chunk = b"\0" * (1 << 20)
            for _ in range(600):
                f.write(chunk)
    return buf.getvalue()


def docx_bomb():
    """A .docx whose document part inflates to 600 MB of whitespace: XML is
    parsed to its end, so this one must hit the inflation bound (256 MB)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml",
                   '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
                   'content-types"><Override PartName="/word/document.xml" ContentType="application/'
                   'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>')
        with z.open("word/document.xml", "w", force_zip64=True) as f:
            f.write(b'<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/'
                    b'wordprocessingml/2006/main"><w:body>')
            chunk = b" " * (1 << 20)
            for _ in range(600):
                f.write(chunk)
            f.write(b"</w:body></w:document>")
    return buf.getvalue()


def pdf_bomb():
    """A small PDF whose page tree claims a billion pages and whose one
    object nests arrays 50,000 deep."""
    nest = b"[" * 50000 + b"]" * 50000
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1000000000 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Foo " + nest + b" >>"]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, o in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + o + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    base = tmp_path_factory.mktemp("attachments")
    exe = soffice()
    src, docs, mails = base / "src", base / "docs", base / "mail"
    for d in (src, docs, mails):
        d.mkdir()
    profile = str(base / "lo-profile")
    writer_sources = []
    for fmt in WRITER:
        p = src / ("w_%s.txt" % fmt)
        p.write_text("Quarterly planning notes.\n\nThe code word is %s and nothing else.\n" % WORDS[fmt])
        writer_sources.append(str(p))
    calc_sources = []
    for fmt in CALC:
        p = src / ("c_%s.csv" % fmt)
        p.write_text("item,amount\n%s,42\nother,7\n" % WORDS[fmt])
        calc_sources.append(str(p))
    for fmt, target in WRITER.items():
        convert(exe, [str(src / ("w_%s.txt" % fmt))], target, str(docs), profile)
    for fmt, target in CALC.items():
        convert(exe, [str(src / ("c_%s.csv" % fmt))], target, str(docs), profile)
    messages = {}
    for fmt in list(WRITER) + list(CALC):
        name = ("w_%s.%s" if fmt in WRITER else "c_%s.%s") % (fmt, fmt)
        data = (docs / name).read_bytes()
        messages["doc-" + fmt] = attach("document %s" % fmt, "report-%s.%s" % (fmt, fmt), data, CTYPES[fmt])
    # a ZIP holding a .docx whose word is its own
    (src / "w_zipped.txt").write_text("Inside the archive: %s.\n" % WORDS["zipped"])
    convert(exe, [str(src / "w_zipped.txt")], "docx", str(docs), profile)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("readme.txt", "nothing to see")
        z.write(str(docs / "w_zipped.docx"), "inner/contract.docx")
    messages["zip"] = attach("archive attached", "bundle.zip", buf.getvalue(), CTYPES["zip"])
    # hostile: each is archived, its attachment reported
    messages["bomb-zip"] = attach("zip bomb", "zeros.zip", zip_bomb(), CTYPES["zip"])
    messages["bomb-docx"] = attach("docx bomb", "spaces.docx", docx_bomb(), CTYPES["docx"])
    messages["bomb-pdf"] = attach("pdf bomb", "pages.pdf", pdf_bomb(), CTYPES["pdf"])
    messages["fake-pdf"] = attach("fake pdf", "fake.pdf", b"GIF89a" + os.urandom(4000), CTYPES["pdf"])
    for key, raw in messages.items():
        (mails / (key + ".eml")).write_bytes(raw)
    data = base / "var"
    init_data_dir(data)
    started = time.monotonic()
    summary, _ = import_json(mails, "docs", data)
    elapsed = time.monotonic() - started
    return {"data": data, "summary": summary, "elapsed": elapsed, "messages": messages}


def ids_by_subject(arch, word):
    cp = mv("search", word, "--archive", "docs", "--json", "--limit", "0", data_dir=arch["data"])
    return sorted(h["subject"] for h in parse_json(cp))


def test_everything_archived_and_failures_named(archive):
    s = archive["summary"]
    assert s["imported"] == len(archive["messages"]) and s["refused"] == 0, s
    # A document's bytes are not text: NULs in them make no message malformed.
    assert s["malformed"] == 0, s
    # The bombs and the fake are archived; their attachments are named with a reason.
    errors = {e["reason"].split(":")[0]: e["reason"] for e in s["attachmentErrors"]}
    assert set(errors) >= {"spaces.docx", "fake.pdf"}, s["attachmentErrors"]
    assert "not a PDF" in errors["fake.pdf"], errors
    assert "expands beyond" in errors["spaces.docx"], errors
    assert s["unreadableAttachments"] >= 2, s
    # None of it held the import up: bounded per document, not per corpus.
    assert archive["elapsed"] < 300, archive["elapsed"]


@pytest.mark.parametrize("fmt", list(WRITER) + list(CALC) + ["zipped"])
def test_word_only_in_the_document_finds_its_message(archive, fmt):
    want = ["archive attached"] if fmt == "zipped" else ["document %s" % fmt]
    assert ids_by_subject(archive, WORDS[fmt]) == want
    # ... as attachment content, not as body text
    assert ids_by_subject(archive, "attachment:" + WORDS[fmt]) == want
    assert ids_by_subject(archive, "body:" + WORDS[fmt]) == []


def test_zip_entry_names_are_searchable(archive):
    assert ids_by_subject(archive, "attachment:contract") == ["archive attached"]


def test_bombs_and_fakes_are_archived(archive):
    for subject in ("zip bomb", "docx bomb", "pdf bomb", "fake pdf"):
        assert ids_by_subject(archive, 'subject:"%s"' % subject) == [subject]


def test_snippet_names_the_attachment(archive):
    cp = mv("cmd", "SearchMessages", "--query=" + WORDS["docx"], "--snippets=true", data_dir=archive["data"])
    hits = parse_json(cp)["result"]
    assert len(hits) == 1, hits
    assert hits[0].get("snippetAttachment") == "report-docx.docx", hits[0]
    marked = [text for text, hit in hits[0]["snippet"] if hit]
    assert marked == [WORDS["docx"]], hits[0]["snippet"]
    # A word in the body gives the body's snippet, no attachment named.
    cp = mv("cmd", "SearchMessages", "--query=attached subject:\"document docx\"", "--snippets=true",
            data_dir=archive["data"])
    hits = parse_json(cp)["result"]
    assert len(hits) == 1 and "snippetAttachment" not in hits[0], hits


def test_rebuilt_index_reads_documents_again(archive):
    """RebuildStoreIndex parses every message again: the documents' words
    must come back through the same extraction, or the rebuild would lose
    them (and existing stores could not gain them)."""
    cp = mv("cmd", "RebuildStoreIndex", "--id=1", "--folder=", data_dir=archive["data"], timeout=600)
    assert parse_json(cp)["statusCode"] == "succeeded", cp.stdout
    for fmt in ("pdf", "xlsx", "doc"):
        assert ids_by_subject(archive, WORDS[fmt]) == ["document %s" % fmt]
