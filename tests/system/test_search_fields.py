"""The search fields `to:`, `cc:`, `bcc:`, `body:`, `attachment:`,
`has:attachment` and `folder:` return exactly the right messages (issue 20,
"claims with no test"): each answer is compared, as a set of message
identities, with an answer computed here from the same files by Python's
email package.

What is imported, into one data directory for the module:

- about 1,200 real SpamAssassin messages, chosen deterministically (every
  message whose bytes mention a file name, an attached message or a Bcc, so
  that all of the corpus's few attachments are in, and a seeded sample of
  the rest), less those Python's parser reports MIME defects for: two
  parsers legitimately disagree on broken MIME, and this module is about
  which field a word lands in, not about repairing MIME (test_malformed);
- a handful of made-up messages (SYNTHETIC), because the corpus has no Bcc
  header at all and no address that is To in one message, Cc in another and
  Bcc in a third: each of four addresses is From, To, Cc and Bcc of four
  different messages (a Latin square), so a field read from the wrong
  column returns the wrong message, not merely one message too many; and
  one word sits in one message's body, another's attachment, a third's
  subject, a fourth's attachment file name and a fifth's attached message;
- all of it spread over an EML directory tree a, a/b, a/b/c, ab and other:
  `folder:a` must take a/b and a/b/c and not ab, `folder:a/b` must not take
  a's own messages (the other tests import flat folders only).

The fields are asked alone, in any case, with a folder scope, and in the
query shapes the planner cannot put in one FTS5 MATCH (a negation with no
positive text term beside it, an OR mixing a field with a size), where the
field term becomes an SQL sub-select.

A hit is mapped back to its file by the SHA-256 of what `show` returns.

The oracle, per message and field, knows a set of words that are surely in
the field (strong: text/plain parts and file names Python decodes without
error, plain-ASCII headers) and a text that holds everything a reasonable
reader might put in it (loose: HTML with its tags, undecodable parts read as
Latin-1, UTF-8 and UTF-16, encoded-words raw and decoded, diacritics
folded).  Query words are chosen only where the two agree for every message
of the world, i.e. the word is strong in the field or not even a substring
of the loose text: HTML-to-text, charset guessing, diacritics and
tokenisation corners are avoided by the choice of words, never by weakening
an assertion.  Words are preferred that also occur in another field of some
message (a subject, the other of body/attachment, a From address), since
those are the hits a field mapped to the wrong index column gets wrong.

Field rules the oracle encodes (README "Query language", ARCHITECTURE.md
"Index"): a part is an attachment when its Content-Disposition is
`attachment` or it has a file name, and a message with an attached message
(message/rfc822) has an attachment; `body:` is the text of the parts that
are not attachments; `attachment:` is file names, the text of text
attachments, and an attached message's subject and text; `to:`, `cc:` and
`bcc:` hold the field's display names and addresses, an address term
(`cc:a@b.c`) matching that address exactly."""

import base64
import bisect
import collections
import email
import email.header
import email.policy
import email.utils
import functools
import hashlib
import os
import random
import re
import unicodedata

import pytest

from mvtest import import_json, init_data_dir, search_json, show_hashes

ARCHIVE = "fields"
SAMPLE_SIZE = 1200
SAMPLE_SEED = 2020
FOLDERS = ("a", "a/b", "a/b/c", "ab", "other")

# FTS5 unicode61: runs of letters and digits (not '_'), case-folded.
TOKEN_RE = re.compile(r"[^\W_]+")
SIMPLE_ADDRESS = re.compile(r"[a-z0-9][a-z0-9._+-]*@[a-z0-9-]+(\.[a-z0-9-]+)+")
ADDRESS_FIELDS = ("to", "cc", "bcc")
# Octet-streams read as text by name (src/mime/extract.c accepts_plain).
TEXT_NAMES = (".txt", ".csv", ".log")


def words_of(text):
    return {t.lower() for t in TOKEN_RE.findall(text)}


def folded(text):
    """Lower case, and where that is not ASCII again with diacritics removed
    (unicode61 folds é to e, so "cafe" must count as present in "café")."""
    low = text.lower()
    if low.isascii():
        return low
    return low + "\n" + "".join(c for c in unicodedata.normalize("NFKD", low) if not unicodedata.combining(c))


def any_reading(data):
    """Bytes of unknown encoding as any ASCII-compatible or UTF-16 text."""
    return "\n".join(data.decode(cs, "replace") for cs in ("latin-1", "utf-8", "utf-16-le"))


def header_text(value):
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except Exception:  # noqa: BLE001 -- undecodable: the raw value is still loose text
        return value


def plain_header(value):
    return value.isascii() and "=?" not in value


class Field:
    """What the oracle knows of one field of one message: `strong` words are
    surely indexed there; `loose` text holds whatever might be."""

    def __init__(self):
        self.strong = set()
        self._loose = []
        self.loose = ""

    def add_strong(self, text):
        self.strong |= words_of(text)
        self._loose.append(folded(text))

    def add_loose(self, text):
        self._loose.append(folded(text))

    def add_header(self, value):
        if plain_header(value):
            self.add_strong(value)
        else:
            self.add_loose(value)
            self.add_loose(header_text(value))

    def finish(self):
        self.loose = "\n".join(self._loose)
        del self._loose


class Expected:
    """One message read by Python: its fields, whether it has an attachment,
    and what puts it outside the oracle (`defects`: Python's MIME defects,
    message/* parts other than message/rfc822, whose reading differs between
    parsers)."""

    def __init__(self, raw):
        self.sha = hashlib.sha256(raw).hexdigest()
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
        self.defects = list(msg.defects)
        self.body = Field()
        self.attachment = Field()
        self.subject = Field()
        self.has_attachment = False
        self.file_words = set()   # words of plain-ASCII attachment file names
        self._walk(msg, False)
        subjects = [str(v) for v in msg.get_all("subject") or []]
        for value in subjects:
            if len(subjects) == 1:
                self.subject.add_header(value)
            else:   # GMime keeps the last one; any might be meant
                self.subject.add_loose(value)
        # Every header of the field counts (GMime adds the addresses of each).
        self.addrs, self.names = {}, {}
        for h in ADDRESS_FIELDS + ("from",):
            values = [str(v) for v in msg.get_all(h) or []]
            self.addrs[h] = {a.lower() for _, a in email.utils.getaddresses(values) if a}
            f = Field()
            for v in values:
                f.add_header(v)
            self.names[h] = f
        for f in (self.body, self.attachment, self.subject, *self.names.values()):
            f.finish()

    def field(self, name):
        return {"body": self.body, "attachment": self.attachment, "subject": self.subject}.get(name) or \
            self.names[name]

    def _walk(self, part, in_attached_message):
        self.defects += part.defects
        if part.get_content_maintype() == "multipart":
            if not part.is_multipart():
                self.defects.append("a multipart without parts")
                return
            for p in part.get_payload():
                self._walk(p, in_attached_message)
            return
        if part.get_content_maintype() == "message":
            inner = part.get_payload()
            if part.get_content_type() != "message/rfc822" or not (isinstance(inner, list) and len(inner) == 1):
                # message/delivery-status and the like: parsers differ
                self.defects.append(part.get_content_type())
                return
            self.has_attachment = True
            inner = inner[0]
            for value in inner.get_all("subject") or []:
                self.attachment.add_header(str(value))
            # Its other headers are indexed nowhere, but a reader might
            # expect them among the attachment's words: unsure.
            for name, value in inner.items():
                self.attachment.add_loose(str(value))
            self._walk(inner, True)
            return
        disposition = (part.get("content-disposition") or "").split(";")[0].strip().lower()
        name = part.get_filename() or ""
        attached = disposition == "attachment" or bool(name)
        self.has_attachment = self.has_attachment or attached
        field = self.attachment if attached or in_attached_message else self.body
        if name:
            self.attachment.add_header(name)
            if plain_header(name):
                self.file_words |= words_of(name)
        seen = len(part.defects)
        data = part.get_payload(decode=True) or b""
        self.defects += part.defects[seen:]
        ctype = part.get_content_type()
        as_text = (ctype.startswith("text/") and ctype not in ("text/html", "text/rtf")) or \
            (ctype == "application/octet-stream" and name.lower().endswith(TEXT_NAMES))
        text = strict_text(part, data)
        if text is not None and as_text:
            field.add_strong(text)
        elif text is not None:     # HTML, RTF, ...: decoded, but not read as words here
            field.add_loose(text)
        else:
            field.add_loose(any_reading(data))


def strict_text(part, data):
    """The part's text in its declared charset (ASCII when none), or None
    when that does not decode: then only a guess is possible."""
    charset = part.get_content_charset() or "ascii"
    try:
        return data.decode(charset)
    except (LookupError, UnicodeDecodeError):
        return None


# ---- made-up messages ------------------------------------------------------------

PEOPLE = {  # address -> display name; the names' words occur nowhere in the corpus
    "ann.quill@fields.test": "Annika Heliotrope",
    "bo.marsh@fields.test": "Bodil Samphire",
    "cy.fern@fields.test": "Cyprian Tamarisk",
    "di.moss@fields.test": "Dagny Wolfsbane",
}
ANN, BO, CY, DI = PEOPLE
ROLES = ("From", "To", "Cc", "Bcc")
# Made-up words: no corpus message holds them (the fixture checks).
WORD = "quillwort"         # in S1's body, S2's attachment, S3's subject, S4's file name, S6's attached message
INNER_WORD = "marshwort"   # the subject of S6's attached message
MADE_UP = [WORD, INNER_WORD, "eichel"] + [name.split()[1].lower() for name in PEOPLE.values()]


def person(addr):
    return "%s <%s>" % (PEOPLE[addr], addr)


def synthetic_message(n, headers, body):
    head = "".join("%s: %s\n" % kv for kv in headers)
    head += "Date: Mon, %02d Jun 2025 10:00:00 +0000\nMessage-ID: <s%d@fields.test>\nMIME-Version: 1.0\n" % (n, n)
    return (head + body).encode()


def latin_square_headers(i):
    """S(i+1): role r holds address (i + r) mod 4."""
    people = list(PEOPLE)
    return [(role, person(people[(i + r) % 4])) for r, role in enumerate(ROLES)]


SYNTHETIC = {
    # name: (folder, bytes)
    "S1": ("a/b/c", synthetic_message(1, latin_square_headers(0) + [
        ("Subject", "Plain one"),
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Transfer-Encoding", "base64")],
        "\n" + base64.encodebytes(("The été report mentions %s in the body.\n" % WORD).encode()).decode())),
    "S2": ("a", synthetic_message(2, latin_square_headers(1) + [
        ("Subject", "Notes attached"),
        ("Content-Type", 'multipart/mixed; boundary="b2"')],
        "\n--b2\nContent-Type: text/plain\n\nSee the notes.\n"
        "--b2\nContent-Type: text/plain; charset=iso-8859-1\n"
        'Content-Disposition: attachment; filename="notes.txt"\nContent-Transfer-Encoding: base64\n\n'
        + base64.encodebytes(("Gr\xfc\xdfe, %s grows here.\n" % WORD).encode("latin-1")).decode()
        + "--b2--\n")),
    "S3": ("a/b", synthetic_message(3, latin_square_headers(2) + [
        ("Subject", "About %s" % WORD),
        ("Content-Type", "text/plain")],
        "\nNothing but the subject names it.\n")),
    "S4": ("ab", synthetic_message(4, latin_square_headers(3) + [
        ("Subject", "A named file"),
        ("Content-Type", 'multipart/mixed; boundary="b4"')],
        "\n--b4\nContent-Type: text/plain\n\nThe file is attached.\n"
        '--b4\nContent-Type: application/octet-stream; name="%s-plan.bin"\n'
        "Content-Disposition: inline\nContent-Transfer-Encoding: base64\n\nAAECAw==\n--b4--\n" % WORD)),
    "S5": ("other", synthetic_message(5, [
        ("From", "Relay <relay@fields.test>"),
        ("To", "undisclosed-recipients:;"),
        ("Bcc", "Auditors: =?utf-8?q?J=C3=B6rg_Eichel?= <joerg.eichel@fields.test>, eve.bcc@fields.test;"),
        ("Subject", "Group Bcc"),
        ("Content-Type", "text/plain")],
        "\nA message for the auditors only.\n")),
    "S6": ("a/b/c", synthetic_message(6, [
        ("From", "Relay <relay@fields.test>"),
        ("To", "Desk <desk@fields.test>"),
        ("Subject", "Forwarded"),
        ("Content-Type", 'multipart/mixed; boundary="b6"')],
        "\n--b6\nContent-Type: text/plain\n\nForwarding this.\n"
        "--b6\nContent-Type: message/rfc822\n\n"
        "From: Someone <someone@fields.test>\nTo: %s\nSubject: The %s meeting\n"
        "Content-Type: text/plain\n\nThe %s is thriving.\n"
        "--b6--\n" % (DI, INNER_WORD, WORD))),
}


# ---- the world ---------------------------------------------------------------------

class FieldIndex:
    """One field over every message: word -> the messages surely holding it,
    and (by one scan of all loose texts) the messages that might."""

    def __init__(self, items, field):
        self.strong = collections.defaultdict(set)
        self.keys, self.starts, texts = [], [], []
        pos = 0
        for key, e in items.items():
            f = e.field(field)
            for wd in f.strong:
                self.strong[wd].add(key)
            self.keys.append(key)
            self.starts.append(pos)
            texts.append(f.loose)
            pos += len(f.loose) + 1
        self.text = "\0".join(texts)

    @functools.lru_cache(maxsize=None)
    def loose(self, word):
        out = set()
        i = self.text.find(word)
        while i >= 0:
            n = bisect.bisect_right(self.starts, i) - 1
            out.add(self.keys[n])
            i = self.text.find(word, self.starts[n + 1]) if n + 1 < len(self.starts) else -1
        return frozenset(out)


class World:
    """The imported messages, their expected fields and their archive ids."""

    def __init__(self, data_dir):
        self.data_dir = data_dir
        self.items = {}       # key (corpus rel path or S-name) -> Expected
        self.folder = {}      # key -> folder
        self.key_of_id = {}
        self.hits = {}        # id -> search hit
        self._index = {}

    def search(self, query):
        hits = search_json(query, self.data_dir, archive=ARCHIVE, limit=0)
        ids = [h["id"] for h in hits]
        dup = [i for i, c in collections.Counter(ids).items() if c > 1]
        assert not dup, "query %r lists ids more than once: %s" % (query, dup[:10])
        unknown = [i for i in ids if i not in self.key_of_id]
        assert not unknown, "query %r returned ids of no imported message: %s" % (query, unknown[:10])
        return {self.key_of_id[i] for i in ids}

    def check(self, query, want):
        got = self.search(query)
        assert got == want, "query %r\n  missing (%d): %s\n  unexpected (%d): %s" % (
            query, len(want - got), sorted(want - got)[:10], len(got - want), sorted(got - want)[:10])

    def index(self, field):
        if field not in self._index:
            self._index[field] = FieldIndex(self.items, field)
        return self._index[field]

    def where(self, field, word):
        """The messages whose field surely holds word."""
        return set(self.index(field).strong.get(word, ()))

    def unambiguous(self, field, word):
        """Every message surely holds word in field or surely lacks it."""
        return set(self.index(field).loose(word)) == self.where(field, word)

    def crossing(self, field, word, other):
        """Messages whose other field surely holds word and whose field
        surely lacks it: the hits of a search of the wrong column."""
        return self.where(other, word) - self.index(field).loose(word)

    def with_address(self, field, addr):
        return {k for k, e in self.items.items() if addr in e.addrs[field]}

    def below(self, folder):
        return {k for k, f in self.folder.items() if f == folder or f.startswith(folder + "/")}


def choose_corpus_sample(corpus):
    """SAMPLE_SIZE distinct EML messages: every one that mentions a file
    name, an attached message or a Bcc, the rest a seeded sample."""
    by_sha = {}
    for rel, digest in sorted(corpus.sums.items()):
        if rel.startswith("eml/"):
            by_sha.setdefault(digest, rel)
    special, rest = [], []
    for rel in sorted(by_sha.values()):
        low = corpus.raw(rel).lower()
        (special if b"name=" in low or b"message/" in low or b"\nbcc:" in low else rest).append(rel)
    assert len(special) < SAMPLE_SIZE
    return sorted(special + random.Random(SAMPLE_SEED).sample(rest, SAMPLE_SIZE - len(special)))


@pytest.fixture(scope="module")
def world(corpus, tmp_path_factory):
    base = tmp_path_factory.mktemp("fields")
    tree = base / "tree"
    w = World(init_data_dir(base / "data"))
    placed = []   # (key, folder, bytes)
    for rel in choose_corpus_sample(corpus):
        raw = corpus.raw(rel)
        assert not [wd for wd in MADE_UP if wd.encode() in raw.lower()], rel
        e = Expected(raw)
        assert e.sha == corpus.sums[rel], "corpus file changed on disk: " + rel
        if e.defects:
            continue
        w.items[rel] = e
        placed.append((rel, FOLDERS[len(placed) % len(FOLDERS)], raw))
    assert len(placed) > 1000
    for name, (folder, raw) in SYNTHETIC.items():
        e = Expected(raw)
        assert not e.defects, (name, e.defects)
        w.items[name] = e
        placed.append((name, folder, raw))
    key_of_sha = {}
    for n, (key, folder, raw) in enumerate(placed):
        os.makedirs(tree / folder, exist_ok=True)
        (tree / folder / ("%05d.eml" % n)).write_bytes(raw)
        w.folder[key] = folder
        key_of_sha[w.items[key].sha] = key
    assert len(key_of_sha) == len(placed), "two placed messages have the same bytes"

    summary, _ = import_json(tree, ARCHIVE, w.data_dir)
    assert (summary["imported"], summary["duplicates"], summary["refused"]) == (len(placed), 0, 0), summary

    w.hits = {h["id"]: h for h in search_json("size:>0", w.data_dir, archive=ARCHIVE, limit=0)}
    id_sha, errors = show_hashes(list(w.hits), w.data_dir)
    assert not errors, "show failed: %s" % list(errors.items())[:3]
    for i, digest in id_sha.items():
        assert digest in key_of_sha, "message %s shows bytes that were not imported" % i
        w.key_of_id[i] = key_of_sha[digest]
    assert sorted(w.key_of_id.values()) == sorted(w.folder), "archive and imported files differ"
    return w


def test_world_is_the_tree(world):
    """Every file is one message, in the folder of its directory."""
    wrong = [(world.key_of_id[i], h["folder"], world.folder[world.key_of_id[i]])
             for i, h in world.hits.items() if h["folder"] != world.folder[world.key_of_id[i]]]
    assert not wrong, "messages in the wrong folder (key, got, want): %s" % wrong[:10]
    assert set(world.folder.values()) == set(FOLDERS)


# ---- choosing words ----------------------------------------------------------------

def candidate_words(world, field, lo, hi):
    """The corpus's alphabetic ASCII words of five letters or more surely in
    the field of lo..hi messages (sorted; not yet checked for ambiguity)."""
    return sorted(wd for wd, keys in world.index(field).strong.items()
                  if lo <= len(keys) <= hi and wd.isascii() and wd.isalpha() and len(wd) >= 5
                  and wd not in MADE_UP)


def pick_words(world, field, lo, hi, others, per_other, extra, seed):
    """Unambiguous words for field: up to per_other that each other field
    surely holds in some message lacking them in this field, then `extra`
    more at random.  Returns (words, {other: words crossing it})."""
    cands = candidate_words(world, field, lo, hi)
    random.Random(seed).shuffle(cands)
    chosen, crossing = [], {}
    for other in others:
        crossing[other] = []
        for wd in cands:
            if len(crossing[other]) == per_other:
                break
            if wd in chosen or not (world.where(other, wd) - world.where(field, wd)):
                continue   # cheap test first: the loose scan below is the slow part
            if world.crossing(field, wd, other) and world.unambiguous(field, wd):
                crossing[other].append(wd)
                chosen.append(wd)
    for wd in cands:
        if len(chosen) == sum(map(len, crossing.values())) + extra:
            break
        if wd not in chosen and world.unambiguous(field, wd):
            chosen.append(wd)
    return chosen, crossing


# ---- to: cc: bcc: -------------------------------------------------------------------

def address_candidates(world, field, lo, hi):
    """Simple addresses in the field of lo..hi messages that are not even a
    substring of that header in any other message (no near-miss parses)."""
    df = collections.Counter()
    for e in world.items.values():
        df.update(e.addrs[field])
    loose = world.index(field)
    return [addr for addr, n in sorted(df.items())
            if lo <= n <= hi and SIMPLE_ADDRESS.fullmatch(addr) and set(loose.loose(addr)) == world.with_address(field, addr)]


def elsewhere(world, field, addr):
    """Messages holding addr in another address field but not in this one."""
    return {k for k, e in world.items.items()
            if addr not in e.addrs[field] and any(addr in e.addrs[f] for f in ADDRESS_FIELDS + ("from",) if f != field)}


@pytest.mark.parametrize("field", ["to", "cc"])
def test_corpus_addresses(world, field):
    """to:ADDR / cc:ADDR for corpus addresses: exactly the messages with
    that address in that header.  Most addresses chosen are carried by other
    messages in another header (From, To, Cc), so that the answer differs
    from a search of the wrong column; the corpus has no Bcc, so bcc: of each
    finds nothing."""
    cands = address_candidates(world, field, 3, 40)
    crossing = [a for a in cands if elsewhere(world, field, a)]
    rest = [a for a in cands if a not in crossing]
    assert len(crossing) >= 4 and len(rest) >= 2, (crossing, rest)
    chosen = crossing[:6] + random.Random(31).sample(rest, 2)
    other_field = "cc" if field == "to" else "to"
    assert any(world.with_address(other_field, a) - world.with_address(field, a) for a in chosen)
    assert any(world.with_address("from", a) - world.with_address(field, a) for a in chosen)
    for addr in chosen:
        want = world.with_address(field, addr)
        assert 3 <= len(want) <= 40
        world.check("%s:%s" % (field, addr), want)
        world.check("bcc:%s" % addr, set())
    # field names and addresses in any case
    world.check("%s:%s" % (field.upper(), chosen[0].upper()), world.with_address(field, chosen[0]))


def test_address_fields_do_not_mix(world):
    """Each made-up address is From, To, Cc and Bcc of four different
    messages: each field finds exactly the one message it is that field of
    (a field read from another column would return another message)."""
    for i, role in enumerate(ROLES):
        field = role.lower()
        for j, addr in enumerate(PEOPLE):
            want = {"S%d" % ((j - i) % 4 + 1)}
            assert world.with_address(field, addr) == want, "the oracle disagrees with the square"
            world.check("%s:%s" % (field, addr), want)


def test_bcc_group_with_encoded_name(world):
    """A Bcc group whose first member has an RFC 2047 display name: both
    members are bcc: recipients of S5 and neither is a to: or cc: one."""
    for addr in ("joerg.eichel@fields.test", "eve.bcc@fields.test"):
        assert world.with_address("bcc", addr) == {"S5"}
        world.check("bcc:%s" % addr, {"S5"})
        world.check("to:%s" % addr, set())
        world.check("cc:%s" % addr, set())


@pytest.mark.parametrize("field", ADDRESS_FIELDS)
def test_display_name_words(world, field):
    """A word of a display name finds the message by the field it is in
    (ARCHITECTURE.md, Index: the address columns hold "display names,
    addresses, and one token per normalised address and column").  Each
    made-up surname is in this field of exactly one message."""
    role = ROLES.index(field.capitalize())
    for j, addr in enumerate(PEOPLE):
        surname = PEOPLE[addr].split()[1].lower()
        want = {"S%d" % ((j - role) % 4 + 1)}
        assert world.where(field, surname) == want and world.unambiguous(field, surname)
        world.check("%s:%s" % (field, surname), want)
    if field == "bcc":
        # decoded from =?utf-8?q?J=C3=B6rg_Eichel?=
        world.check("bcc:eichel", {"S5"})


@pytest.mark.parametrize("field", ["to", "cc"])
def test_corpus_display_name_words(world, field):
    """Display-name words of the corpus's To or Cc headers (part of no
    address in that field), each also in another address header of some
    message, where a search of the wrong column would find it."""
    in_addresses = {a for e in world.items.values() for a in e.addrs[field]}
    chosen = []
    for wd in candidate_words(world, field, 2, 30):
        if any(wd in a for a in in_addresses) or not world.unambiguous(field, wd):
            continue
        if any(world.crossing(field, wd, o) for o in ("to", "cc", "from") if o != field):
            chosen.append(wd)
        if len(chosen) == 3:
            break
    assert len(chosen) == 3, chosen
    for wd in chosen:
        world.check("%s:%s" % (field, wd), world.where(field, wd))


# ---- body: attachment: ------------------------------------------------------------------

def test_body_words(world):
    """body:WORD is the messages whose text (not attachments, not headers)
    holds the word.  Most words chosen are also in some other message's
    attachment, subject or address headers only."""
    chosen, crossing = pick_words(world, "body", 3, 40, ["attachment", "subject", "from", "to", "cc"], 2, 3, 41)
    assert crossing["attachment"] and crossing["subject"] and len(chosen) >= 8, crossing
    for wd in chosen:
        want = world.where("body", wd)
        assert 3 <= len(want) <= 40
        world.check("body:" + wd, want)
    world.check("BODY:" + chosen[0].upper(), world.where("body", chosen[0]))


def test_attachment_words(world):
    """attachment:WORD is the messages whose attachments (names, text, an
    attached message) hold the word.  Most words chosen are also in some
    other message's body or subject only."""
    chosen, crossing = pick_words(world, "attachment", 2, 40, ["body", "subject"], 3, 3, 43)
    assert crossing["body"] and crossing["subject"] and len(chosen) >= 6, crossing
    for wd in chosen:
        world.check("attachment:" + wd, world.where("attachment", wd))


def test_attachment_file_names(world):
    """Words of the corpus's attachment file names that are in no
    attachment's text: found by the name alone.  The most frequent three
    and two more at random."""
    df = collections.Counter()
    for key, e in world.items.items():
        if key.startswith("eml/"):
            df.update(e.file_words)
    names_only = []
    for wd in sorted(df):
        if not (wd.isalpha() and len(wd) >= 5 and world.unambiguous("attachment", wd)):
            continue
        if all(wd in world.items[k].file_words for k in world.where("attachment", wd)):
            names_only.append(wd)
    names_only.sort(key=lambda wd: (-len(world.where("attachment", wd)), wd))
    assert len(names_only) >= 10, names_only
    chosen = names_only[:3] + random.Random(47).sample(names_only[3:], 2)
    for wd in chosen:
        world.check("attachment:" + wd, world.where("attachment", wd))


def test_body_and_attachment_do_not_mix(world):
    """The made-up word is in S1's body (base64, UTF-8), S2's attachment
    text (base64, Latin-1), S3's subject, S4's attachment file name and
    S6's attached message: each field finds only its own."""
    for field, want in (("body", {"S1"}), ("attachment", {"S2", "S4", "S6"}), ("subject", {"S3"})):
        assert world.where(field, WORD) == want and world.unambiguous(field, WORD), field
        world.check("%s:%s" % (field, WORD), want)
    world.check(WORD, {"S1", "S2", "S3", "S4", "S6"})
    # the attached message's subject is attachment text, not the subject or body
    world.check("attachment:" + INNER_WORD, {"S6"})
    world.check("subject:" + INNER_WORD, set())
    world.check("body:" + INNER_WORD, set())
    # the attached message's To (DI) makes S6 no to: hit; S3 is To: DI
    world.check("to:" + DI, {"S3"})


# ---- has:attachment ---------------------------------------------------------------------

def test_has_attachment(world):
    """has:attachment is exactly the messages with a part that is an
    attachment (by disposition or file name) or an attached message; the
    hasAttachment of every result agrees."""
    want = {k for k, e in world.items.items() if e.has_attachment}
    assert {"S2", "S4", "S6"} <= want and not ({"S1", "S3", "S5"} & want)
    assert len(want) >= 40
    world.check("has:attachment", want)
    world.check("HAS:ATTACHMENT", want)
    wrong = [(world.key_of_id[i], h["hasAttachment"]) for i, h in world.hits.items()
             if h["hasAttachment"] != world.items[world.key_of_id[i]].has_attachment]
    assert not wrong, "hasAttachment wrong in search results: %s" % wrong[:10]


# ---- folder: -----------------------------------------------------------------------------

@pytest.mark.parametrize("folder", FOLDERS)
def test_folder_and_below(world, folder):
    """folder:F is F and every folder below it: a takes a/b and a/b/c but
    not ab; a/b does not take a's own messages."""
    want = world.below(folder)
    if folder == "a":
        assert {world.folder[k] for k in want} == {"a", "a/b", "a/b/c"}
    if folder == "a/b":
        assert {world.folder[k] for k in want} == {"a/b", "a/b/c"}
    world.check("folder:" + folder, want)


def test_folder_by_its_name_at_any_depth(world):
    """folder:NAME also names a folder called NAME at any depth, and takes
    everything below it as a full path does: b is a/b with a/b/c, c is
    a/b/c, and b/c (a path's tail) is a/b/c."""
    world.check("folder:b", world.below("a/b"))
    world.check("folder:B", world.below("a/b"))
    world.check("folder:c", world.below("a/b/c"))
    world.check("folder:b/c", world.below("a/b/c"))


def test_folder_with_fields(world):
    """A folder scope intersected with field terms, and a negated scope
    beside a positive term."""
    att = {k for k, e in world.items.items() if e.has_attachment}
    world.check("folder:a/b has:attachment", world.below("a/b") & att)
    world.check("has:attachment -folder:a", att - world.below("a"))
    world.check("folder:a %s" % WORD, {"S1", "S2", "S3", "S6"})
    world.check("folder:a/b attachment:%s" % WORD, {"S6"})
    world.check("folder:a/b/c body:%s" % WORD, {"S1"})


# ---- field terms the planner cannot put in one MATCH ---------------------------------------

# A negation with no positive text term beside it, or an OR that mixes a
# field term with a size, is evaluated in SQL with the field term as a MATCH
# sub-select (src/search/search.c, sql_expr): the same fields must give the
# same messages there.  (query, expected) from the world:
SQL_SHAPES = {
    "negated has:attachment": lambda w: (
        "size:>0 -has:attachment", {k for k, e in w.items.items() if not e.has_attachment}),
    "negated body:": lambda w: (
        "NOT body:" + WORD, set(w.items) - {"S1"}),
    "negated folder:": lambda w: (
        "size:>0 -folder:a/b", set(w.items) - w.below("a/b")),
    "attachment: OR size:": lambda w: (
        "attachment:%s OR size:>100M" % WORD, {"S2", "S4", "S6"}),
    "bcc: OR size:": lambda w: (
        "bcc:%s OR size:>100M" % CY, {"S4"}),
}


@pytest.mark.parametrize("shape", sorted(SQL_SHAPES))
def test_fields_outside_one_match(world, shape):
    """The same field terms give the same messages when the planner
    evaluates them in SQL rather than in one MATCH."""
    query, want = SQL_SHAPES[shape](world)
    assert max(h["size"] for h in world.hits.values()) < 100 * 2 ** 20, "size:>100M must add nothing"
    world.check(query, want)
