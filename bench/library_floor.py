#!/usr/bin/env python3
"""What the libraries design.md names cost a message on their own, with no
mailvault code between them: FTS5's insert (Debian's SQLite through
Python's sqlite3: a contentless table in memory with the index's pgsz and
automerge, a commit per 512 documents, the whole raw message as the text)
with four tokenizers; GMime's parse of each message into its tree
(bench/library_floor_gmime.c, compiled here); and zstd
(bench/library_floor_zstd.c, compiled here) at levels 1 and 3 with and
without the store's kind of dictionary.  The
floor of issue 17's ingest rates on a machine: bench/RESULTS.md, "What two
cores allow".

usage: bench/library_floor.py EML_DIR [--rounds N]
EML_DIR: a directory tree of messages, one per file (the SpamAssassin
corpus's eml/).  Prints one JSON object per line, CPU seconds the best of
N rounds (default 3)."""

import argparse
import json
import os
import re
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def messages(root):
    out = []
    for d, _, files in sorted(os.walk(root)):
        for f in sorted(files):
            with open(os.path.join(d, f), "rb") as fh:
                out.append(fh.read())
    return out


def fts5_cpu(docs, tokenize):
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE fts USING fts5(body, content='', tokenize=%s)" % json.dumps(tokenize))
    db.execute("INSERT INTO fts(fts, rank) VALUES('pgsz', 3960)")
    db.execute("INSERT INTO fts(fts, rank) VALUES('automerge', 8)")
    t0 = time.process_time()
    for i, d in enumerate(docs):
        db.execute("INSERT INTO fts(rowid, body) VALUES(?, ?)", (i + 1, d))
        if i % 512 == 511:
            db.commit()
    db.commit()
    t = time.process_time() - t0
    db.close()
    return t


def fts5(raw, rounds):
    text = [m.decode("latin-1") for m in raw]
    presplit = [" ".join(re.findall(r"\w+", t.lower())) for t in text]
    for name, docs, tok in (("unicode61 remove_diacritics 2 (the index's)", text, "unicode61 remove_diacritics 2"),
                            ("ascii", text, "ascii"),
                            ("ascii on text split and lowercased beforehand", presplit, "ascii"),
                            ("unicode61 on text split beforehand", presplit, "unicode61 remove_diacritics 2")):
        best = min(fts5_cpu(docs, tok) for _ in range(rounds))
        print(json.dumps({"library": "fts5", "tokenizer": name, "cpu_s": round(best, 4),
                          "us_per_message": round(best * 1e6 / len(raw), 1), "sqlite": sqlite3.sqlite_version}))


def compiled(raw, name, libs):
    """bench/NAME.c built against LIBS (pkg-config names or -l flags) and
    run on the messages' pack; its JSON lines go on to stdout."""
    flags = []
    for lib in libs:
        flags += [lib] if lib.startswith("-l") else subprocess.run(
            ["pkg-config", "--cflags", "--libs", lib], stdout=subprocess.PIPE, check=True, text=True).stdout.split()
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, name)
        subprocess.run(["cc", "-std=c17", "-Wall", "-Wextra", "-Werror", "-O2", "-o", exe,
                        os.path.join(HERE, name + ".c")] + flags, check=True)
        pack = b"".join(struct.pack("<I", len(m)) + m for m in raw)
        cp = subprocess.run([exe], input=pack, stdout=subprocess.PIPE, check=True)
        sys.stdout.write(cp.stdout.decode())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("eml_dir")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    raw = messages(a.eml_dir)
    if not raw:
        sys.exit("library_floor.py: no messages under %s" % a.eml_dir)
    print(json.dumps({"messages": len(raw), "raw_bytes": sum(map(len, raw))}))
    fts5(raw, a.rounds)
    compiled(raw, "library_floor_gmime", ["gmime-3.0"])
    compiled(raw, "library_floor_zstd", ["-lzstd"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
