"""Helpers shared by the mailvault system tests (imported by conftest.py and
the test modules; stdlib only).

Everything that runs the binary goes through mv(), which always applies a
timeout and always checks that the process did not die from a signal and that
no sanitizer report appeared on stderr (the suite runs under ASan/UBSan)."""

import collections
import concurrent.futures
import datetime
import email.header
import email.utils
import hashlib
import random
import json
import os
import re
import shutil
import subprocess

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MAILVAULT_BIN = os.environ.get("MAILVAULT_BIN", os.path.join(REPO_ROOT, "build", "mailvault"))

# Timeouts (seconds).  Generous: the suite runs under ASan on 2 cores.
T_SHORT = 120      # init, show, stats, folders, search
T_IMPORT = 900     # importing the whole corpus

SANITIZER_MARKERS = (b"AddressSanitizer", b"runtime error", b"LeakSanitizer",
                     b"UndefinedBehaviorSanitizer", b"ThreadSanitizer")


class MailvaultError(AssertionError):
    pass


def _describe(cp):
    return ("command: %s\nexit status: %s\nstdout (first 2000 bytes): %r\n"
            "stderr (first 4000 bytes):\n%s" % (
                " ".join(cp.args) if isinstance(cp.args, list) else cp.args,
                cp.returncode, cp.stdout[:2000],
                cp.stderr[:4000].decode("utf-8", "replace")))


def check_no_crash(cp):
    """A process of ours must never die of a signal or report a sanitizer
    error, whatever its exit status."""
    if cp.returncode is not None and cp.returncode < 0:
        raise MailvaultError("mailvault killed by signal %d\n%s" % (-cp.returncode, _describe(cp)))
    for marker in SANITIZER_MARKERS:
        if marker in (cp.stderr or b""):
            raise MailvaultError("sanitizer report (%s)\n%s" % (marker.decode(), _describe(cp)))


def mv(*args, data_dir=None, check=True, input=None, timeout=T_SHORT, env=None):
    """Runs `mailvault [--data-dir D] ARGS...`; returns the CompletedProcess
    (stdout and stderr as bytes).  check=True requires exit status 0; an int
    or a tuple of ints gives the allowed statuses; check=False allows any
    status (crashes and sanitizer reports are always failures)."""
    cmd = [MAILVAULT_BIN]
    if data_dir is not None:
        cmd += ["--data-dir", str(data_dir)]
    cmd += [str(a) for a in args]
    cp = subprocess.run(cmd, input=input, capture_output=True, timeout=timeout, env=env,
                        stdin=None if input is not None else subprocess.DEVNULL)
    check_no_crash(cp)
    if check is not False:
        allowed = (0,) if check is True else ((check,) if isinstance(check, int) else tuple(check))
        if cp.returncode not in allowed:
            raise MailvaultError("unexpected exit status (allowed %s)\n%s" % (allowed, _describe(cp)))
    return cp


def parse_json(cp):
    try:
        return json.loads(cp.stdout.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise MailvaultError("stdout is not one JSON document (%s)\n%s" % (e, _describe(cp)))


def cmd_envelope(data_dir, function, timeout=600, env=None, **args):
    """`mailvault cmd FUNCTION --k=v ...` (booleans as true/false): its JSON
    envelope whatever the exit status, with the tail of stderr as
    "_stderr" for messages."""
    argv = ["cmd", function] + ["--%s=%s" % (k, ("true" if v else "false") if isinstance(v, bool) else v)
                                for k, v in args.items()]
    cp = mv(*argv, data_dir=data_dir, check=False, timeout=timeout, env=env)
    envelope = parse_json(cp)
    envelope["_stderr"] = cp.stderr.decode("utf-8", "replace")[-3000:]
    return envelope


def cmd_result(data_dir, function, timeout=600, env=None, **args):
    """cmd_envelope's result, the envelope required to say succeeded."""
    e = cmd_envelope(data_dir, function, timeout=timeout, env=env, **args)
    assert e["statusCode"] == "succeeded" and e["error"] is None, (
        "%s: %s\nstderr: %s" % (function, json.dumps({k: v for k, v in e.items() if k != "_stderr"})[:2000],
                                 e["_stderr"][-2000:]))
    return e["result"]


def import_json(path, archive, data_dir, *extra, check=(0, 3), timeout=T_IMPORT):
    """`import PATH --archive A --json [extra]`; returns (summary dict, cp)."""
    cp = mv("import", path, "--archive", archive, "--json", *extra,
            data_dir=data_dir, check=check, timeout=timeout)
    summary = parse_json(cp)
    for key in ("imported", "duplicates", "malformed", "refused", "refusals"):
        assert key in summary, "import --json summary lacks %r: %r" % (key, summary)
    assert summary["refused"] == len(summary["refusals"]), summary
    # exit status 3 exactly when something was refused
    assert cp.returncode == (3 if summary["refused"] else 0), _describe(cp)
    return summary, cp


def search_json(query, data_dir, archive=None, limit=0, extra=(), check=True):
    """`search QUERY --json --limit N [--archive A]`.  The query is passed as
    ONE argument (the CLI joins words with spaces anyway); that keeps a
    negated term like `-subject:x` from being taken for an option."""
    args = ["search", query, "--json"]
    if limit is not None:
        args += ["--limit", str(limit)]
    if archive is not None:
        args += ["--archive", archive]
    args += list(extra)
    cp = mv(*args, data_dir=data_dir, check=check)
    hits = parse_json(cp)
    assert isinstance(hits, list), hits
    return hits


def search_ids(query, data_dir, archive=None):
    """All hits of a query as a set of ids (asserting no id is listed twice)."""
    hits = search_json(query, data_dir, archive=archive, limit=0)
    ids = [h["id"] for h in hits]
    dup = [i for i, c in collections.Counter(ids).items() if c > 1]
    assert not dup, "query %r lists ids more than once: %s" % (query, dup[:10])
    return set(ids)


def show(msg_id, data_dir, timeout=T_SHORT, env=None):
    return mv("show", msg_id, data_dir=data_dir, timeout=timeout, env=env).stdout


# Bulk hashing: the first LEAK_CHECKED ids through `show ID` itself (the
# raw bytes on stdout, leak-checked), the rest through `show --sha256`,
# SHA256_CHUNK ids per process: thousands of processes under ASan cost
# minutes, and --sha256 hashes the same bytes that show prints (both read
# the message through the store's hash-checked read).
LEAK_CHECKED = 50
SHA256_CHUNK = 500
_NO_LEAK_ENV = dict(os.environ, ASAN_OPTIONS=(os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":"))


def _show_one(msg_id, data_dir):
    try:
        return {msg_id: hashlib.sha256(show(msg_id, data_dir)).hexdigest()}, {}
    except Exception as e:  # noqa: BLE001 -- reported by the caller
        return {}, {msg_id: str(e)[:2000]}


def _show_sha256(ids, data_dir):
    """`show --sha256 IDS...`: ({id: hexdigest}, {id: error}).  Each failed
    id is named on stderr ("mailvault: ID: reason"); an id with neither a
    line nor an error is an error too."""
    cp = mv("show", "--sha256", *ids, data_dir=data_dir, check=(0, 1), timeout=T_SHORT * 4)
    ok, bad = {}, {}
    for line in cp.stdout.decode().splitlines():
        digest, msg_id = line.split("  ", 1)
        ok[msg_id] = digest
    for line in cp.stderr.decode("utf-8", "replace").splitlines():
        m = re.match(r"mailvault: (\d+:\d+): (.*)", line)
        if m:
            bad[m.group(1)] = m.group(2)
    for msg_id in ids:
        if msg_id not in ok and msg_id not in bad:
            bad[msg_id] = "show --sha256 printed nothing for it (exit %d): %s" % (
                cp.returncode, cp.stderr.decode("utf-8", "replace")[-500:])
    return ok, bad


def show_hashes(ids, data_dir, workers=None):
    """sha256 of each message's bytes for many ids, in parallel.  Returns
    ({id: hexdigest}, {id: error text}) -- errors are collected, not raised,
    so one bad message does not hide the others."""
    workers = workers or int(os.environ.get("MAILVAULT_TEST_JOBS", 0)) or max(2, os.cpu_count() or 2)
    ids = list(ids)
    jobs = [(_show_one, i) for i in ids[:LEAK_CHECKED]]
    rest = ids[LEAK_CHECKED:]
    jobs += [(_show_sha256, rest[k:k + SHA256_CHUNK]) for k in range(0, len(rest), SHA256_CHUNK)]
    ok, bad = {}, {}
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for got, failed in pool.map(lambda job: job[0](job[1], data_dir), jobs):
            ok.update(got)
            bad.update(failed)
    return ok, bad


def init_data_dir(path):
    cp = mv("init", data_dir=path)
    assert b"Recovery key: " in cp.stdout, _describe(cp)
    return path


def sha256(b):
    return hashlib.sha256(b).hexdigest()


def mbox_form(raw):
    """The bytes an mboxrd reader gives back for a message the corpus script
    wrote: a trailing newline is added to messages not ending in one."""
    return raw if raw.endswith(b"\n") else raw + b"\n"


# ---------------------------------------------------------------------------
# The corpus and the search oracle.

TOKEN_RE = re.compile(r"[A-Za-z0-9]+")


def tokens(text):
    """FTS5 unicode61 tokens of ASCII text: runs of [A-Za-z0-9], folded."""
    return [t.lower() for t in TOKEN_RE.findall(text)]


def contains_seq(toks, seq):
    n = len(seq)
    return any(toks[i:i + n] == seq for i in range(len(toks) - n + 1))


_DATE_RE = re.compile(
    r"^\s*(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun),\s*)?"
    r"(\d{1,2})\s+(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\s+(\d{4})\s+"
    r"(\d{2}):(\d{2})(?::(\d{2}))?\s+(?:([+-])(\d{2})(\d{2})|GMT|UTC?)(?:\s+\([^()]*\))?\s*$")


def clean_date(value):
    """UTC datetime of a Date header value in strict RFC 5322 form (numeric
    zone or GMT/UT/UTC, 4-digit year, in-range fields), else None.  -0000 is
    UTC (RFC 5322 3.3).  Only such dates are
    used as exact oracles: lenient parsers (GMime's, Python's) legitimately
    disagree on the odd forms spam uses."""
    m = _DATE_RE.match(value)
    if not m:
        return None
    day, hh, mm = int(m.group(1)), int(m.group(4)), int(m.group(5))
    ss = int(m.group(6) or 0)
    zh, zm = int(m.group(8) or 0), int(m.group(9) or 0)
    year = int(m.group(3))
    if not (1980 <= year <= 2030 and hh < 24 and mm < 60 and ss < 60 and zh <= 14 and zm < 60):
        return None
    try:
        dt = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if dt is None or dt.day != day:
        return None
    if dt.tzinfo is None:       # Python's answer for -0000
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return dt.astimezone(datetime.timezone.utc)


def _unfold(value):
    return re.sub(r"\r?\n(?=[ \t])", "", value)


def _loose_text(value):
    """Best-effort lower-case text of a header value, raw and decoded, for
    proving a word does NOT occur in a header the exact oracle skips."""
    out = [value]
    try:
        for part, cs in email.header.decode_header(value):
            if isinstance(part, bytes):
                out.append(part.decode("latin-1"))
            else:
                out.append(part)
    except Exception:  # noqa: BLE001 -- undecodable: the raw value is there
        pass
    return " ".join(out).lower()


class CorpusMessage:
    __slots__ = ("rel", "group", "raw_len", "sha", "mbox_sha", "mbox_len", "fields",
                 "subject", "subject_certain", "subject_toks", "subject_loose",
                 "from_raw", "from_certain", "from_toks", "from_loose",
                 "message_id", "msgid_loose", "date_utc")


def _header_fields(raw):
    """The header block as [(lower-case name, unfolded value str)] (latin-1)."""
    end = len(raw)
    for sep in (b"\n\n", b"\r\n\r\n"):
        i = raw.find(sep)
        if i >= 0:
            end = min(end, i)
    block = raw[:end].decode("latin-1")
    fields = []
    for line in re.split(r"\r?\n(?![ \t])", block):
        name, colon, value = line.partition(":")
        if colon and re.fullmatch(r"[\x21-\x39\x3b-\x7e]+", name):
            fields.append((name.lower(), _unfold(value).strip()))
    return fields


def _plain_ascii(value):
    return all(32 <= ord(c) < 127 or c == "\t" for c in value) and "=?" not in value


class Corpus:
    """The materialised corpus: paths, hashes, and parsed header oracles."""

    def __init__(self, root):
        self.root = root
        self.eml_dir = os.path.join(root, "eml")
        self.maildir = os.path.join(root, "maildir")
        self.mbox = os.path.join(root, "mbox")
        self.sums = {}          # rel path -> sha256 (from SHA256SUMS)
        with open(os.path.join(root, "SHA256SUMS")) as f:
            for line in f:
                digest, rel = line.rstrip("\n").split("  ", 1)
                self.sums[rel] = digest
        self._messages = None

    @property
    def groups(self):
        return sorted({rel.split("/")[1] for rel in self.sums})

    def raw(self, rel):
        with open(os.path.join(self.root, rel), "rb") as f:
            return f.read()

    def choose_distinct(self, n, seed, exclude=()):
        """n EML messages of distinct content (none of the hashes in
        exclude), chosen by seed: [(sha256, rel)]."""
        by_sha = {}
        for rel, digest in sorted(self.sums.items()):
            if rel.startswith("eml/") and digest not in exclude:
                by_sha.setdefault(digest, rel)
        return random.Random(seed).sample(sorted(by_sha.items(), key=lambda kv: kv[1]), n)

    def copy_distinct(self, n, seed, dest, exclude=()):
        """choose_distinct's messages copied to dest/GROUP/NAME, as they lie
        under eml/: {sha256: "GROUP/NAME"}."""
        out = {}
        for digest, rel in self.choose_distinct(n, seed, exclude):
            sub = rel[len("eml/"):]
            target = os.path.join(str(dest), sub)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copyfile(os.path.join(self.root, rel), target)
            out[digest] = sub
        return out

    def sample_eml(self, n, seed, dest):
        """n distinct EML messages chosen by seed, written to dest as NNNN.eml:
        [(sha256, rel, bytes)] in file order."""
        chosen = self.choose_distinct(n, seed)
        os.makedirs(dest, exist_ok=True)
        out = []
        for k, (digest, rel) in enumerate(chosen):
            raw = self.raw(rel)
            assert hashlib.sha256(raw).hexdigest() == digest, "corpus file changed on disk: " + rel
            with open(os.path.join(dest, "%04d.eml" % k), "wb") as f:
                f.write(raw)
            out.append((digest, rel, raw))
        return out

    @property
    def messages(self):
        """{rel: CorpusMessage}, parsed once (headers only)."""
        if self._messages is None:
            self._messages = {}
            for rel in sorted(self.sums):
                self._messages[rel] = self._parse(rel)
        return self._messages

    def _parse(self, rel):
        raw = self.raw(rel)
        m = CorpusMessage()
        m.rel = rel
        m.group = rel.split("/")[1]
        m.raw_len = len(raw)
        m.sha = hashlib.sha256(raw).hexdigest()
        mb = mbox_form(raw)
        m.mbox_sha = hashlib.sha256(mb).hexdigest()
        m.mbox_len = len(mb)
        assert m.sha == self.sums[rel], "corpus file changed on disk: " + rel
        fields = _header_fields(raw)
        m.fields = fields

        def values(name):
            return [v for n, v in fields if n == name]

        subj = values("subject")
        m.subject = subj[0] if subj else ""
        m.subject_loose = " ".join(_loose_text(v) for v in subj)
        m.subject_certain = len(subj) <= 1 and _plain_ascii(m.subject)
        m.subject_toks = tokens(m.subject) if m.subject_certain else None

        frm = values("from")
        m.from_raw = frm[0] if frm else ""
        m.from_loose = " ".join(_loose_text(v) for v in frm)
        m.from_certain = len(frm) == 1 and _plain_ascii(m.from_raw) and "(" not in m.from_raw
        m.from_toks = tokens(m.from_raw) if m.from_certain else None

        mids = values("message-id")
        m.msgid_loose = " ".join(mids).lower()
        m.message_id = None
        if len(mids) == 1:
            hit = re.fullmatch(r"<([^<>\s]+)>", mids[0])
            if hit:
                m.message_id = hit.group(1)

        dates = values("date")
        m.date_utc = clean_date(dates[0]) if len(dates) == 1 else None
        return m
