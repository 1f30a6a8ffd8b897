"""Opening a store's encrypted SQLite files from a test, as an outside party
with the instance's master key would: for the tests that plant damage in a
store's db or index, or read what it holds, and for the tests that prove the
files are encrypted.

The key is derived here independently of the C code, from what
ARCHITECTURE.md ("Encryption at rest") documents: the store's data key is
unwrapped from the keys file's key_master (XChaCha20-Poly1305 under the
master key in master.key), and each file's SQLCipher key is BLAKE2b-256 of a
fixed label keyed with the data key.  SQL runs through Debian's sqlcipher
shell (backports, installed by tools/deps.sh test): Python's sqlite3 module
links plain SQLite.  Connections look like sqlite3's where these tests use
them: execute(sql, params) -> rows, commit(), close()."""

import hashlib
import os
import sqlite3
import subprocess

from nacl.bindings import crypto_aead_xchacha20poly1305_ietf_decrypt

LABELS = {"db": b"mailvault store.sqlite key, format 3",
          "index": b"mailvault index.sqlite key, format 3"}


def keys_file_values(db_dir):
    """The store's own values (db/store-keys.sqlite), bytes decoded where text."""
    con = sqlite3.connect(os.path.join(str(db_dir), "store-keys.sqlite"))
    try:
        return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in con.execute("SELECT key, value FROM meta")}
    finally:
        con.close()


def master_key(data_dir):
    with open(os.path.join(str(data_dir), "master.key"), "rb") as f:
        raw = f.read()
    assert len(raw) == 40, "master.key: 8 bytes of header and a 32-byte key"
    return raw[8:]


def data_key(data_dir, db_dir):
    wrapped = bytes.fromhex(keys_file_values(db_dir)["key_master"])
    nonce, sealed = wrapped[:24], wrapped[24:]
    return crypto_aead_xchacha20poly1305_ietf_decrypt(sealed, None, nonce, master_key(data_dir))


def file_key(data_dir, db_dir, which):
    return hashlib.blake2b(LABELS[which], key=data_key(data_dir, db_dir), digest_size=32).digest()


def literal(v):
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return "X'%s'" % bytes(v).hex()
    return "'%s'" % str(v).replace("'", "''")


def bind(sql, params):
    parts = sql.split("?")
    assert len(parts) == len(params) + 1, (sql, params)
    out = [parts[0]]
    for p, rest in zip(params, parts[1:]):
        out += [literal(p), rest]
    return "".join(out)


def parse_quoted(text):
    """Rows of the shell's `.mode quote` output: SQL literals, ',' between
    values and a newline between rows (inside quotes, both are data)."""
    rows, row, i, n = [], [], 0, len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            rows.append(tuple(row))
            row = []
            i += 1
        elif c == ",":
            i += 1
        elif c == "'":
            j, buf = i + 1, []
            while True:
                k = text.index("'", j)
                buf.append(text[j:k])
                if k + 1 < n and text[k + 1] == "'":
                    buf.append("'")
                    j = k + 2
                    continue
                i = k + 1
                break
            row.append("".join(buf))
        elif text.startswith("X'", i):
            k = text.index("'", i + 2)
            row.append(bytes.fromhex(text[i + 2:k]))
            i = k + 1
        else:
            k = i
            while k < n and text[k] not in ",\n":
                k += 1
            tok = text[i:k]
            row.append(None if tok == "NULL" else (float(tok) if any(ch in tok for ch in ".eE") else int(tok)))
            i = k
    if row:
        rows.append(tuple(row))
    return rows


class Result(list):
    def fetchall(self):
        return list(self)

    def fetchone(self):
        return self[0] if self else None


class EncryptedDb:
    def __init__(self, path, key):
        self.path, self.key = path, key

    def execute(self, sql, params=()):
        # defensive off: the shell guards FTS5's shadow tables, which the
        # tests that plant damage in an index must write.
        script = ".output /dev/null\nPRAGMA key=\"x'%s'\";\n.dbconfig defensive off\n.output stdout\n.mode quote\n%s;\n" % (
            self.key.hex(), bind(sql, tuple(params)))
        cp = subprocess.run(["sqlcipher", "-batch", "-bail", self.path], input=script.encode(),
                            capture_output=True, timeout=120)
        if cp.returncode != 0:
            raise sqlite3.DatabaseError("%s: %s" % (self.path, cp.stderr.decode(errors="replace").strip()))
        return Result(parse_quoted(cp.stdout.decode()))

    def commit(self):
        pass            # each execute is its own transaction

    def close(self):
        pass


def connect(data_dir, store="store1", index=False, db_dir=None):
    """The store's db (or index) under data_dir/stores/<store>, opened with its key."""
    base = os.path.join(str(data_dir), "stores", store)
    db_dir = db_dir or os.path.join(base, "db")
    path = os.path.join(base, "index", "index.sqlite") if index else os.path.join(db_dir, "store.sqlite")
    return EncryptedDb(path, file_key(data_dir, db_dir, "index" if index else "db"))
