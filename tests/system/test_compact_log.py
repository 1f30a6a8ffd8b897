"""What CompactStore says about the segment files it removes (issue 9.12).

A normal compaction replaces segments and removes the old ones: that is its
job, not debris, and the log must not call it "left by an interrupted
compaction".  A segment file no db row names, found when a compaction
starts, is such debris: it is named with that reason and removed."""
import os
import re

from mvtest import init_data_dir, import_json, mv, parse_json

INTERRUPTED = "interrupted compaction"


def write_messages(dest, n):
    dest.mkdir()
    for i in range(1, n + 1):
        (dest / ("m%d.eml" % i)).write_bytes((
            "From: sender%d@example.org\r\nTo: rcpt@example.org\r\n"
            "Subject: compaction log message %d\r\nMessage-ID: <compact-log-%d@example.org>\r\n"
            "Date: Mon, 1 Jan 2024 10:%02d:00 +0000\r\n\r\nBody number %d.\r\n" % (i, i, i, i, i)).encode())


def cmd(data_dir, *args, debug=False):
    """`mailvault [--debug] cmd ARGS`: (the JSON envelope, stderr text)."""
    cp = mv(*(["--debug"] if debug else []), "cmd", *args, data_dir=data_dir, check=False)
    env = parse_json(cp)
    stderr = cp.stderr.decode("utf-8", "replace")
    assert env["statusCode"] == "succeeded" and env["error"] is None, (
        "cmd %s failed: %r (exit %d)\nstderr: %s" % (" ".join(args), env["error"], cp.returncode, stderr))
    return env["result"], stderr


def segments(content_dir):
    return sorted(f for f in os.listdir(content_dir) if re.fullmatch(r"seg-\d{8}\.mvs", f))


def test_compaction_log_names_only_real_debris(tmp_path):
    d = init_data_dir(tmp_path / "data")
    write_messages(tmp_path / "src", 5)
    s, _ = import_json(tmp_path / "src", "a", d)
    assert s["imported"] == 5, s
    content = os.path.join(str(d), "stores", "store1", "content")
    before = segments(content)
    assert before == ["seg-00000001.mvs"], before

    cmd(d, "DeleteMessage", "--id=1:1", "--reason=x")
    r, err = cmd(d, "CompactStore", "--id=1", debug=True)
    assert r["recordsDropped"] >= 1, r
    assert INTERRUPTED not in err, "a normal compaction blamed an interrupted one:\n" + err
    after = segments(content)
    assert "seg-00000001.mvs" not in after and after, "the replaced segment should be gone: %s" % after
    assert re.search(r"compaction removed 1 replaced segment", err), (
        "--debug should say what the compaction removed:\n" + err)

    r, err = cmd(d, "CompactStore", "--id=1", debug=True)
    assert r["recordsDropped"] == 0, r
    assert INTERRUPTED not in err, "a compaction with nothing to do blamed an interrupted one:\n" + err
    assert segments(content) == after

    # Debris: a segment file no db row names, as a compaction killed before
    # its commit leaves behind (its new files take the next free numbers).
    stray = "seg-%08d.mvs" % (int(after[-1][4:12]) + 5)
    with open(os.path.join(content, stray), "wb") as f:
        f.write(b"MVSEG001" + bytes(8) + b"half-written records")
    r, err = cmd(d, "CompactStore", "--id=1")
    lines = [ln for ln in err.splitlines() if INTERRUPTED in ln]
    assert len(lines) == 1 and stray in lines[0], "the debris should be named once as such:\n" + err
    assert segments(content) == after, "the debris should be removed, and only it"

    v, _ = cmd(d, "VerifyStore", "--id=1")
    assert v["clean"] is True, v
    for num in range(2, 6):
        assert b"Body number %d." % num in mv("show", "1:%d" % num, data_dir=d).stdout
