#!/usr/bin/env python3
"""Deterministic generator of realistic synthetic mail for mailvault's benchmarks.

Usage: gen_corpus.py --count N --out DIR [--seed S] [--formats maildir,mbox,eml]
                     [--jobs 2] [--span-years 10]

Writes (only the formats asked for; default maildir):
  DIR/maildir/{cur,new,tmp}   one file per message in cur/, unique names ending ":2,S"
  DIR/mbox                    one mboxrd file (">From " quoting of ^>*From  lines)
  DIR/eml/<year>/<n>.eml      one file per message, grouped by year (a hard link to
                              the Maildir file when both are written)
  DIR/manifest.json           count, seed, bytes per format, date range, sample
                              words and addresses (for building query mixes)

Every message is a pure function of (seed, index, count): the output does not
depend on the number of worker processes.  Message i may reply to an earlier
message j (In-Reply-To/References/"Re:" subject, date after j's); the thread
structure is derived from small per-index random streams, so a worker can
compute any parent's headers without generating its body.

Realism: ~6,000-word vocabulary (common English words first, then
deterministic pseudo-words) drawn with Zipf-like frequencies; ~2,000 people
with names and addresses across 36 domains, mailing lists, Cc; dates over
~10 years with varied time zones; ~60% text/plain, ~25% multipart/alternative
(plain + HTML), ~15% multipart/mixed with attachments (random base64 blobs
named like images/archives, text/CSV files, PDF-like files); a few percent
non-ASCII messages (RFC 2047 subjects/names in UTF-8 and ISO-8859-1,
quoted-printable bodies).  Sizes run from ~1 KB to a few MB with a long tail;
the average is ~6-7 KB.  Standard library only.
"""
import argparse
import array
import base64
import bisect
import json
import math
import multiprocessing
import os
import quopri
import random
import re
import sys
import time

START = 1104537600          # 2005-01-01T00:00:00Z
YEAR = 365.25 * 86400

COMMON = """the of and to a in is it you that he was for on are with as I his they be
at one have this from or had by hot word but what some we can out other were all there
when up use your how said an each she which do their time if will way about many then
them write would like so these her long make thing see him two has look more day could
go come did number sound no most people my over know water than call first who may down
side been now find any new work part take get place made live where after back little
only round man year came show every good me give our under name very through just form
sentence great think say help low line differ turn cause much mean before move right boy
old too same tell does set three want air well also play small end put home read hand
port large spell add even land here must big high such follow act why ask men change went
light kind off need house picture try us again animal point mother world near build self
earth father head stand own page should country found answer school grow study still learn
plant cover food sun four between state keep eye never last let thought city tree cross
farm hard start might story saw far sea draw left late run while press close night real
life few north open seem together next white children begin got walk example ease paper
group always music those both mark often letter until mile river car feet care second
book carry took science eat room friend began idea fish mountain stop once base hear horse
cut sure watch color face wood main enough plain girl usual young ready above ever red
list though feel talk bird soon body dog family direct pose leave song measure door product
black short numeral class wind question happen complete ship area half rock order fire
south problem piece told knew pass since top whole king space heard best hour better true
during hundred five remember step early hold west ground interest reach fast verb sing
listen six table travel less morning ten simple several vowel toward war lay against
pattern slow center love person money serve appear road map rain rule govern pull cold
notice voice unit power town fine certain fly fall lead cry dark machine note wait plan
figure star box noun field rest correct able pound done beauty drive stood contain front
teach week final gave green oh quick develop ocean warm free minute strong special mind
behind clear tail produce fact street inch multiply nothing course stay wheel full force
blue object decide surface deep moon island foot system busy test record boat common gold
possible plane stead dry wonder laugh thousand ago ran check game shape equate miss brought
heat snow tire bring yes distant fill east paint language among meeting budget report
invoice server release schedule contract review deadline project customer account password
backup database network update attached please thanks regards meeting agenda minutes
quarter revenue forecast vendor license patch kernel build deploy ticket issue bug
feature draft proposal invoice shipping order payment refund""".split()

SYL_ON = ["b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t",
          "v", "w", "z", "br", "ch", "cl", "dr", "fl", "gr", "kr", "pl", "pr", "sh",
          "sl", "sp", "st", "str", "th", "tr", "qu", ""]
SYL_NU = ["a", "e", "i", "o", "u", "a", "e", "o", "ai", "ea", "ee", "io", "ou", "y"]
SYL_CO = ["", "", "", "n", "r", "s", "t", "l", "m", "nd", "nt", "rk", "st", "ck", "x"]

FIRST = """James Mary John Patricia Robert Jennifer Michael Linda William Elizabeth David
Barbara Richard Susan Joseph Jessica Thomas Sarah Charles Karen Daniel Nancy Matthew Lisa
Anthony Betty Mark Margaret Paul Sandra Steven Ashley Andrew Kimberly Kenneth Emily Joshua
Donna Kevin Michelle Brian Carol George Amanda Edward Melissa Ronald Deborah Timothy
Stephanie Jason Rebecca Jeffrey Laura Ryan Helen Jacob Sharon Gary Cynthia Nicholas
Kathleen Eric Amy Jonathan Shirley Stephen Angela Larry Anna Justin Ruth Scott Brenda
Frank Pamela Brandon Nicole Raymond Katherine Gregory Virginia Samuel Catherine Benjamin
Christine Patrick Samantha Alexander Debra Jack Janet Dennis Rachel Jerry Carolyn Tyler
Emma Aaron Maria Henry Heather Douglas Diane Peter Julie Adam Joyce Nathan Victoria Zachary
Kelly Walter Christina Kyle Joan Harold Evelyn Carl Lauren Jeremy Judith Keith Olivia
Roger Martha Gerald Cheryl Ethan Megan Arthur Andrea Terry Hannah Christian Jacqueline
Sean Ann Lawrence Jean Austin Alice Joe Kathryn Noah Gloria Jesse Teresa Albert Doris
Bryan Sara Billy Janice Bruce Julia Willie Marie Jordan Madison Dylan Grace Alan Judy
Ralph Theresa Gabriel Beverly Roy Denise Juan Marilyn Wayne Amber Eugene Danielle Logan
Brittany Randy Diana Louis Abigail Russell Jane Vincent Natalie Philip Lori Bobby Tiffany
Johnny Alexis Bradley Kayla""".split()
LAST = """Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez
Hernandez Lopez Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez
Thompson White Harris Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright
Scott Torres Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell
Carter Roberts Gomez Phillips Evans Turner Diaz Parker Cruz Edwards Collins Reyes Stewart
Morris Morales Murphy Cook Rogers Gutierrez Ortiz Morgan Cooper Peterson Bailey Reed Kelly
Howard Ramos Kim Cox Ward Richardson Watson Brooks Chavez Wood James Bennett Gray Mendoza
Ruiz Hughes Price Alvarez Castillo Sanders Patel Myers Long Ross Foster Jimenez Powell
Jenkins Perry Russell Sullivan Bell Coleman Butler Henderson Barnes Gonzales Fisher
Vasquez Simmons Romero Jordan Patterson Alexander Hamilton Graham Reynolds Griffin Wallace
Moreno West Cole Hayes Bryant Herrera Gibson Ellis Tran Medina Aguilar Stevens Murray
Ford Castro Marshall Owens Harrison Fernandez McDonald Woods Washington Kennedy Wells
Vargas Henry Chen Freeman Webb Tucker Guzman Burns Crawford Olson Simpson Porter Hunter
Gordon Mendez Silva Shaw Snyder Mason Dixon Munoz Hunt Hicks Holmes Palmer Wagner Black
Robertson Boyd Rose Stone Salazar Fox Warren Mills Meyer Rice Schmidt Garza Daniels
Ferguson Nichols Stephens Soto Weaver Ryan Gardner Payne Grant Dunn Kelley Spencer Hawkins
Arnold Pierce Vazquez Hansen Peters Santos Hart Bradley Knight Elliott Cunningham Duncan
Armstrong Hudson Carroll Lane Riley Andrews Alvarado Ray Delgado Berry Perkins Hoffman
Johnston Matthews Pena Richards Contreras Willis Carpenter Lawrence Sandoval""".split()
# Names that need encoding; the Latin-1 ones may also go out as ISO-8859-1.
FIRST_INTL = ["José", "François", "Zoë", "Jürgen", "Søren", "Chloé", "Björn", "Inés",
              "Renée", "Łukasz", "Małgorzata", "Dvořák", "Ágnes", "Øystein", "Élodie",
              "Γιώργος", "Дмитрий", "太郎", "Mónica", "Çağla"]
LAST_INTL = ["Müller", "Gómez", "Ñúñez", "Brontë", "Ødegård", "Šimek", "Łęcki",
             "Schäfer", "García", "Lefèvre", "Åström", "Nóvak", "Παπαδόπουλος",
             "Иванов", "山田", "Weiß", "Doğan", "Fernández"]
DOMAINS = """northwind-traders.com acmecorp.com globex.net initech.com umbrella-labs.org
hooli.io piedpiper.net vandelay-industries.com wayne-enterprises.com stark-industries.com
cyberdyne-systems.com tyrell.co oceanic-air.com soylent.org massive-dynamic.com
lindqvist-consulting.de dupont-associes.fr rossi-srl.it kowalski.pl vanderberg.nl
mailhost.example.org campus.example.edu physics.uni-example.de cs.example.ac.uk
freemail.example.com webpost.example.net homeisp.example.com fastmail.example.org
lists.opensource.example.org dev.kernel.example.org tokyo-works.jp saopaulo-tech.com.br
nordic-fish.no madrid-export.es athens-shipping.gr moscow-soft.ru""".split()
LISTS = ["dev", "announce", "users", "kernel-discuss", "ops", "book-club",
         "hiking", "security", "release-team", "finance"]
TZS = [0, 60, 120, -300, -240, -420, -480, 330, 540, 600, 100, -180]
MAILERS = ["Mutt/1.5.21 (2010-09-15)", "Microsoft Outlook 14.0", "Apple Mail (2.1084)",
           "Mozilla Thunderbird 2.0.0.23", "Evolution 2.28.3", "Sylpheed 3.1.0",
           "K-9 Mail 4.904", "Roundcube Webmail/0.9.5", "Claws Mail 3.7.6", None, None]
ACCENTED = ["café", "naïve", "façade", "über", "straße", "crème", "brûlée", "año",
            "résumé", "Zürich", "São", "Paulo", "élan", "fiancée", "jalapeño", "smörgåsbord",
            "Ærø", "déjà", "vu", "piñata", "Göteborg", "Málaga", "coöperate", "Ångström"]
UTF8_ONLY = ["日本語", "Ελληνικά", "Привет", "mañana—", "€100", "Kraków", "naïveté…"]
ATTACH_BIN = [("image/jpeg", "IMG_{n:04d}.JPG"), ("image/png", "screenshot-{n}.png"),
              ("application/zip", "archive-{n}.zip"), ("application/octet-stream", "data-{n}.bin"),
              ("application/vnd.ms-excel", "budget-{n}.xls"),
              ("application/msword", "letter-{n}.doc")]
WDAY = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
MON = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


class World:
    """Everything shared by all messages, built from the seed alone."""

    def __init__(self, seed, count, span_years):
        self.seed = seed
        self.count = count
        self.span = span_years * YEAR
        rng = random.Random(f"world:{seed}")
        words = []
        seen = set()
        for w in COMMON:
            w = w.lower()
            if w not in seen:
                seen.add(w)
                words.append(w)
        while len(words) < 6000:
            n = rng.choice((1, 2, 2, 2, 3, 3, 3, 4))
            w = "".join(rng.choice(SYL_ON) + rng.choice(SYL_NU) + rng.choice(SYL_CO)
                        for _ in range(n))
            if 3 <= len(w) <= 14 and w not in seen:
                seen.add(w)
                words.append(w)
        # Common English words keep their (roughly frequency-ordered) ranks at the
        # top; pseudo-words fill the long tail.
        self.words = words
        acc = 0.0
        self.cum = []
        for r in range(len(words)):
            acc += 1.0 / (r + 2.7) ** 1.05
            self.cum.append(acc)
        self.total = acc
        # Lookup table: word r fills a share of 2^20 slots proportional to its weight.
        self.table = []
        prev = 0
        for r, c in enumerate(self.cum):
            upto = round(c / acc * (1 << 20))
            self.table.extend([words[r]] * (upto - prev))
            prev = upto
        assert len(self.table) == 1 << 20
        # People.
        self.people = []
        for k in range(2000):
            intl = rng.random() < 0.03
            first = rng.choice(FIRST_INTL if intl and rng.random() < 0.6 else FIRST)
            last = rng.choice(LAST_INTL if intl and rng.random() < 0.7 else LAST)
            dom = DOMAINS[min(int(rng.paretovariate(0.9)) - 1, len(DOMAINS) - 1)] \
                if rng.random() < 0.5 else rng.choice(DOMAINS)
            style = rng.randrange(4)
            lf, ll = ascii_fold(first).lower(), ascii_fold(last).lower()
            local = [f"{lf}.{ll}", f"{lf[0]}{ll}", f"{lf}{k % 100}", f"{ll}.{lf[0]}"][style]
            self.people.append((f"{first} {last}", f"{local}@{dom}"))
        self.folded = {p[0]: ascii_fold(p[0]) for p in self.people}
        pc = 0.0
        self.pcum = []
        for r in range(len(self.people)):
            pc += 1.0 / (r + 5) ** 0.8
            self.pcum.append(pc)
        self.ptotal = pc
        self.lists = []
        for name in LISTS:
            d = rng.choice(DOMAINS)
            self.lists.append((f"{name}@{d if d.startswith('lists.') else 'lists.' + d}", name))

    def person(self, rng):
        return self.people[bisect.bisect(self.pcum, rng.random() * self.ptotal)]

    def words_k(self, rng, k):
        """k words drawn with the Zipf-like frequencies (20-bit lookup table)."""
        a = array.array("I", rng.randbytes(4 * k))
        if sys.byteorder == "big":
            a.byteswap()
        t = self.table
        return [t[x >> 12] for x in a]


def ascii_fold(s):
    table = {"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "ø": "o", "å": "a", "æ": "ae",
             "ł": "l", "ñ": "n", "ç": "c", "ğ": "g", "š": "s", "ř": "r", "ę": "e"}
    out = []
    for ch in s:
        c = ch.lower()
        if c in table:
            out.append(table[c])
        elif ord(c) < 128:
            out.append(c)
        else:
            import unicodedata
            d = unicodedata.normalize("NFKD", c)
            d = "".join(x for x in d if ord(x) < 128)
            out.append(d)
    r = "".join(out)
    return r if r else "user"


# ---------------------------------------------------------------- encoding helpers

def enc_word(s, rng, charset=None):
    """RFC 2047-encode s if it is not ASCII."""
    try:
        s.encode("ascii")
        return s
    except UnicodeEncodeError:
        pass
    if charset is None:
        charset = "utf-8"
        try:
            s.encode("iso-8859-1")
            if rng.random() < 0.4:
                charset = "iso-8859-1"
        except UnicodeEncodeError:
            pass
    try:
        raw = s.encode(charset)
    except UnicodeEncodeError:
        charset = "utf-8"
        raw = s.encode(charset)
    if rng.random() < 0.5:
        # B encoding, chunked so each encoded word stays < 76 chars.
        parts = []
        i = 0
        while i < len(raw):
            j = min(len(raw), i + 42)
            if charset == "utf-8":
                while j < len(raw) and (raw[j] & 0xC0) == 0x80:
                    j -= 1
            parts.append(f"=?{charset}?B?{base64.b64encode(raw[i:j]).decode()}?=")
            i = j
        return "\r\n ".join(parts).replace("\r\n", "\n")
    out = []
    for b in raw:
        c = chr(b)
        if c == " ":
            out.append("_")
        elif b < 128 and (c.isalnum() or c in "!*+-/"):
            out.append(c)
        else:
            out.append(f"={b:02X}")
    q = "".join(out)
    # Split long Q words on boundaries that don't cut an =XX escape.
    parts = []
    while len(q) > 45:
        cut = 45
        while q[cut - 1] == "=" or q[cut - 2] == "=":
            cut -= 1
        if charset == "utf-8":
            # don't cut inside a multi-byte UTF-8 sequence
            while cut > 3 and q[cut] == "=" and q[cut + 1] in "89AB":
                cut -= 3
        parts.append(q[:cut])
        q = q[cut:]
    parts.append(q)
    return "\n ".join(f"=?{charset}?Q?{p}?=" for p in parts)


def addr(name_email, rng):
    name, email = name_email
    r = rng.random()
    try:
        name.encode("ascii")
        ascii_name = True
    except UnicodeEncodeError:
        ascii_name = False
    if r < 0.08 and ascii_name:
        return email
    if ascii_name:
        if r < 0.25:
            return f'"{name}" <{email}>'
        return f"{name} <{email}>"
    return f"{enc_word(name, rng)} <{email}>"


def fmt_date(t, tzmin):
    lt = time.gmtime(int(t) + tzmin * 60)
    sign = "+" if tzmin >= 0 else "-"
    a = abs(tzmin)
    return (f"{WDAY[lt.tm_wday]}, {lt.tm_mday} {MON[lt.tm_mon - 1]} {lt.tm_year} "
            f"{lt.tm_hour:02d}:{lt.tm_min:02d}:{lt.tm_sec:02d} {sign}{a // 60:02d}{a % 60:02d}")


def wrap(words, width=72):
    lines = []
    cur = []
    n = 0
    for w in words:
        if n + len(w) + (1 if cur else 0) > width and cur:
            lines.append(" ".join(cur))
            cur = [w]
            n = len(w)
        else:
            n += len(w) + (1 if cur else 0)
            cur.append(w)
    if cur:
        lines.append(" ".join(cur))
    return lines


# ---------------------------------------------------------------- thread metadata

class Meta:
    __slots__ = ("msgid", "subject", "date", "sender", "refs", "parent", "root_subject",
                 "list")


def meta_of(world, i, cache):
    """Headers that replies need: cheap, from a small per-index stream."""
    m = cache.get(i)
    if m is not None:
        return m
    chain = []
    j = i
    while True:
        rng = random.Random(f"m:{world.seed}:{j}")
        is_reply = j > 0 and rng.random() < 0.35
        parent = max(0, j - 1 - int(rng.expovariate(1 / 40.0))) if is_reply else -1
        chain.append((j, rng, parent))
        if parent < 0 or parent in cache:
            break
        j = parent
    for j, rng, parent in reversed(chain):
        m = Meta()
        base = START + world.span * (j + 0.5) / max(1, world.count)
        t = base + rng.uniform(-2, 2) * 86400
        t = max(START, min(START + world.span, t))
        m.sender = world.person(rng)
        local_dom = m.sender[1].split("@")[1]
        m.msgid = f"<{j:x}.{rng.getrandbits(40):010x}@{local_dom}>"
        if parent >= 0:
            p = cache[parent]
            t = max(t, p.date + 60 + rng.expovariate(1 / 20000.0))
            m.root_subject = p.root_subject
            m.subject = p.root_subject if p.root_subject.lower().startswith("re:") else \
                ("Re: " if rng.random() < 0.9 else "RE: ") + p.root_subject
            if rng.random() < 0.05:
                m.subject = "Fwd: " + p.root_subject
            m.refs = (p.refs + [p.msgid])[-12:]
            m.parent = p
            m.list = p.list
        else:
            n = rng.randint(2, 9)
            subj = " ".join(world.words_k(rng, n))
            subj = subj[0].upper() + subj[1:]
            if rng.random() < 0.04:
                subj += " " + rng.choice(ACCENTED + UTF8_ONLY)
            if rng.random() < 0.1:
                subj = f"[{rng.choice(['URGENT', 'FYI', 'ANN', 'PATCH', 'Q'])}] {subj}"
            m.root_subject = subj
            m.subject = subj
            m.refs = []
            m.parent = None
            m.list = world.lists[rng.randrange(len(world.lists))] if rng.random() < 0.2 else None
        m.date = t
        cache[j] = m
    return cache[i]


# ---------------------------------------------------------------- bodies

_WRAP = re.compile(r"(.{1,72})(?: |$)")


def paragraphs(world, rng, nbytes, intl):
    """Plain text of roughly nbytes, as a list of paragraphs (lists of lines <= 72)."""
    out = []
    size = 0
    rand = rng.random
    while size < nbytes:
        lens = [rng.randint(4, 22) for _ in range(rng.randint(2, 7))]
        ws = world.words_k(rng, sum(lens))
        if intl and rand() < 0.7:
            for _ in range(rng.randint(1, 3)):
                ws[rng.randrange(len(ws))] = rng.choice(intl)
        pos = 0
        for n in lens:
            # some sentences start with "From": lines starting "From " exercise mbox quoting
            ws[pos] = "From" if rand() < 0.08 else ws[pos].capitalize()
            pos += n
            ws[pos - 1] += rng.choice(".....?!")
        text = " ".join(ws)
        lines = _WRAP.findall(text)
        if rand() < 0.01:
            lines.insert(0, ">From the archives:")
        out.append(lines)
        size += len(text) + 2
    return out


def plain_text(world, rng, meta, nbytes, intl):
    paras = paragraphs(world, rng, nbytes, intl)
    greet = rng.choice(["Hi", "Hello", "Dear", "Hey", "Good morning"])
    first = meta.parent.sender[0].split()[0] if meta.parent else rng.choice(FIRST)
    lines = [f"{greet} {first},", ""]
    for p in paras:
        lines.extend(p)
        lines.append("")
    if meta.parent is not None and rng.random() < 0.7:
        lines.append(f"On {fmt_date(meta.parent.date, 0)}, {meta.parent.sender[0]} wrote:")
        for p in paragraphs(world, rng, rng.randint(200, 1500), None)[:3]:
            lines.extend("> " + x for x in p)
            lines.append(">")
        lines.append("")
    lines.append("-- ")
    lines.append(meta.sender[0])
    if rng.random() < 0.5:
        lines.append(rng.choice(["Senior Engineer", "Account Manager", "Director of Operations",
                                 "Research Assistant", "Sales", "Support Team"]))
    if meta.list:
        lines.append("_______________________________________________")
        lines.append(f"{meta.list[1]} mailing list")
        lines.append(meta.list[0])
    return "\n".join(lines) + "\n"


def html_of(text, rng):
    parts = ["<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; "
             "charset=utf-8\"><style>p{font-family:Arial,sans-serif;font-size:10pt}</style>"
             "</head><body>"]
    for para in text.split("\n\n"):
        if not para.strip():
            continue
        para = para.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        if rng.random() < 0.2:
            ws = para.split(" ")
            k = rng.randrange(len(ws))
            ws[k] = f"<b>{ws[k]}</b>"
            para = " ".join(ws)
        parts.append("<p>" + para.replace("\n", "<br>\n") + "</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def encode_text(text, rng, charset, force_qp=False):
    """(headers, body bytes) for a text part."""
    try:
        raw = text.encode(charset)
    except UnicodeEncodeError:
        charset = "utf-8"
        raw = text.encode(charset)
    ascii_only = raw.isascii()
    if ascii_only and not force_qp:
        return charset if charset != "iso-8859-1" else "us-ascii", "7bit", raw
    if rng.random() < 0.85 or force_qp:
        return charset, "quoted-printable", quopri.encodestring(raw)
    return charset, "8bit", raw


def pdfish(world, rng, n):
    words = " ".join(world.words_k(rng, 200))
    body = [b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n",
            b"2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n",
            b"4 0 obj << /Length 512 >> stream\nBT /F1 12 Tf 72 712 Td (" +
            words.encode() + b") Tj ET\nendstream endobj\n",
            b"5 0 obj << /Filter /FlateDecode /Length %d >> stream\n" % n,
            rng.randbytes(n), b"\nendstream endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"]
    return b"".join(body)


def b64(data):
    return base64.encodebytes(data)


def attachment_size(rng):
    """Raw (pre-base64) size: mostly small, a Pareto tail, a very rare few MB."""
    r = rng.random()
    if r < 0.60:
        return rng.randint(400, 5000)
    if r < 0.94:
        return rng.randint(5000, 15000)
    if r < 0.999:
        return int(min(500_000, 15000 * rng.paretovariate(1.5)))
    return rng.randint(1_000_000, 3_000_000)


def build_message(world, i, cache):
    meta = meta_of(world, i, cache)
    rng = random.Random(f"b:{world.seed}:{i}")
    intl = None
    nonascii = rng.random() < 0.04
    charset = "utf-8"
    if nonascii:
        charset = "iso-8859-1" if rng.random() < 0.35 else "utf-8"
        intl = ACCENTED + (UTF8_ONLY if charset == "utf-8" else [])
    r = rng.random()
    kind = "plain" if r < 0.60 else ("alt" if r < 0.85 else "mixed")
    nbytes = int(min(60000, max(150, rng.lognormvariate(math.log(1200), 0.85))))
    if rng.random() < 0.0005:
        nbytes = rng.randint(100_000, 600_000)      # very long plain text (logs, digests)
    text = plain_text(world, rng, meta, nbytes, intl)
    tz = rng.choice(TZS)

    h = []
    sender = meta.sender
    rcpts = []
    if meta.list:
        to_field = f"{meta.list[1]} <{meta.list[0]}>"
    else:
        if meta.parent is not None:
            rcpts.append(meta.parent.sender)
        while len(rcpts) < 1 or (rng.random() < 0.25 and len(rcpts) < 6):
            p = world.person(rng)
            if p != sender:
                rcpts.append(p)
        to_field = ",\n ".join(addr(p, rng) for p in rcpts)
    dom = sender[1].split("@")[1]
    relay = f"mx{rng.randint(1, 9)}.{rng.choice(DOMAINS)}"
    h.append(f"Return-Path: <{sender[1]}>")
    h.append(f"Received: from {relay} ({relay} [10.{rng.randint(0, 255)}.{rng.randint(0, 255)}."
             f"{rng.randint(1, 254)}])\n\tby mail.{dom} (Postfix) with ESMTPS id "
             f"{rng.getrandbits(36):09X}\n\tfor <{rcpts[0][1] if rcpts else meta.list[0]}>; "
             f"{fmt_date(meta.date + rng.randint(1, 90), tz)}")
    h.append(f"Received: from [192.168.{rng.randint(0, 9)}.{rng.randint(2, 200)}] by {relay}\n"
             f"\twith ESMTPSA; {fmt_date(meta.date, tz)}")
    h.append(f"Date: {fmt_date(meta.date, tz)}")
    h.append(f"From: {addr(sender, rng)}")
    h.append(f"To: {to_field}")
    if rng.random() < 0.15:
        cc = [world.person(rng) for _ in range(rng.randint(1, 3))]
        h.append("Cc: " + ",\n ".join(addr(p, rng) for p in cc))
    subj = meta.subject
    h.append("Subject: " + (enc_word(subj, rng, charset) if nonascii or
                            any(ord(c) > 127 for c in subj) else subj))
    h.append(f"Message-ID: {meta.msgid}")
    if meta.parent is not None:
        h.append(f"In-Reply-To: {meta.parent.msgid}")
        h.append("References: " + "\n ".join(meta.refs))
    mailer = rng.choice(MAILERS)
    if mailer:
        h.append(("User-Agent: " if rng.random() < 0.5 else "X-Mailer: ") + mailer)
    if meta.list:
        h.append(f"List-Id: {meta.list[1]} <{meta.list[0].replace('@', '.')}>")
        h.append(f"List-Post: <mailto:{meta.list[0]}>")
        h.append("Precedence: list")
    h.append("MIME-Version: 1.0")

    def text_part(t, sub="plain"):
        cs, cte, raw = encode_text(t, rng, charset, force_qp=(sub == "html" and
                                                               rng.random() < 0.5))
        if sub == "html" and cte == "7bit" and rng.random() < 0.3:
            cte, raw = "quoted-printable", quopri.encodestring(raw)
        ct = f"Content-Type: text/{sub}; charset=\"{cs}\""
        if sub == "plain" and rng.random() < 0.3:
            ct += "; format=flowed"
        return [ct, f"Content-Transfer-Encoding: {cte}"], raw

    def boundary():
        return f"----=_Part_{rng.getrandbits(32)}_{rng.getrandbits(30)}.{i}"

    def join_parts(bnd, parts, preamble=b""):
        out = [preamble]
        for hs, body in parts:
            out.append(f"--{bnd}\n".encode())
            out.append(("\n".join(hs) + "\n\n").encode("ascii"))
            out.append(body)
            if not body.endswith(b"\n"):
                out.append(b"\n")
        out.append(f"--{bnd}--\n".encode())
        return b"".join(out)

    if kind == "plain":
        hs, body = text_part(text)
        h.extend(hs)
    else:
        bnd = boundary()
        if kind == "alt" or rng.random() < 0.4:
            ph, pb = text_part(text)
            hh, hb = text_part(html_of(text, rng), "html")
            alt_bnd = boundary()
            alt_body = join_parts(alt_bnd, ((ph, pb), (hh, hb)),
                                  b"This is a multi-part message in MIME format.\n\n"
                                  if kind == "alt" else b"")
            alt_hs = [f"Content-Type: multipart/alternative; boundary=\"{alt_bnd}\""]
        else:
            alt_hs, alt_body = text_part(text)
        if kind == "alt":
            h.extend(alt_hs)
            body = alt_body
        else:
            parts = [(alt_hs, alt_body)]
            for _ in range(1 if rng.random() < 0.8 else rng.randint(2, 3)):
                r = rng.random()
                n = attachment_size(rng)
                num = rng.randint(1, 9999)
                if r < 0.5:
                    ctype, name = rng.choice(ATTACH_BIN)
                    name = name.format(n=num)
                    data = rng.randbytes(n)
                    ahs = [f"Content-Type: {ctype}; name=\"{name}\"",
                           "Content-Transfer-Encoding: base64",
                           f"Content-Disposition: attachment; filename=\"{name}\""]
                    parts.append((ahs, b64(data)))
                elif r < 0.75:
                    name = f"report-{2005 + num % 10}-{num}.pdf"
                    data = pdfish(world, rng, max(200, n - 600))
                    ahs = [f"Content-Type: application/pdf; name=\"{name}\"",
                           "Content-Transfer-Encoding: base64",
                           f"Content-Disposition: attachment; filename=\"{name}\""]
                    parts.append((ahs, b64(data)))
                else:
                    csv = rng.random() < 0.5
                    name = f"data-{num}.csv" if csv else f"notes-{num}.txt"
                    n = min(n, 40000)
                    if csv:
                        rows = ["id,name,amount,date"]
                        size = 0
                        while size < n:
                            p = world.person(rng)
                            row = (f"{len(rows)},{world.folded[p[0]]},"
                                   f"{rng.randint(1, 99999) / 100},"
                                   f"{2005 + rng.randrange(10)}-{rng.randint(1, 12):02d}-"
                                   f"{rng.randint(1, 28):02d}")
                            rows.append(row)
                            size += len(row) + 1
                        data = ("\n".join(rows) + "\n").encode()
                        ct = "text/csv"
                    else:
                        data = "\n\n".join("\n".join(p) for p in
                                           paragraphs(world, rng, n, None)).encode() + b"\n"
                        ct = "text/plain"
                    if rng.random() < 0.5:
                        ahs = [f"Content-Type: {ct}; charset=\"us-ascii\"; name=\"{name}\"",
                               "Content-Transfer-Encoding: base64",
                               f"Content-Disposition: attachment; filename=\"{name}\""]
                        parts.append((ahs, b64(data)))
                    else:
                        ahs = [f"Content-Type: {ct}; charset=\"us-ascii\"",
                               "Content-Transfer-Encoding: 7bit",
                               f"Content-Disposition: attachment; filename=\"{name}\""]
                        parts.append((ahs, data))
            h.append(f"Content-Type: multipart/mixed; boundary=\"{bnd}\"")
            body = join_parts(bnd, parts, b"This is a multi-part message in MIME format.\n\n")
    head = ("\n".join(h) + "\n\n").encode("ascii")
    return head + body, meta, sender[1]


# ---------------------------------------------------------------- output

def mbox_from_line(sender, t):
    lt = time.gmtime(int(t))
    return (f"From {sender} {WDAY[lt.tm_wday]} {MON[lt.tm_mon - 1]} {lt.tm_mday:2d} "
            f"{lt.tm_hour:02d}:{lt.tm_min:02d}:{lt.tm_sec:02d} {lt.tm_year}\n").encode()


_FROM_RE = re.compile(rb"^(>*From )", re.M)


def mboxrd_quote(raw):
    """mboxrd: every line matching ^>*From  gets one more '>'."""
    if b"From " not in raw:
        return raw
    return _FROM_RE.sub(rb">\1", raw)


_W = None


def _init(seed, count, span):
    global _W
    _W = World(seed, count, span)


def work(args):
    """Generate messages [lo, hi); write maildir/eml files; return mbox bytes."""
    lo, hi, out, formats = args
    cache = {}
    mbox_chunks = []
    stats = {"maildir": 0, "eml": 0, "mbox": 0, "n": 0, "kinds": {}}
    md = os.path.join(out, "maildir", "cur")
    for i in range(lo, hi):
        raw, meta, sender = build_message(_W, i, cache)
        stats["n"] += 1
        mpath = None
        if "maildir" in formats:
            name = f"{int(meta.date)}.M{i}P{_W.seed}.gen,S={len(raw)}:2,S"
            mpath = os.path.join(md, name)
            with open(mpath, "wb") as f:
                f.write(raw)
            stats["maildir"] += len(raw)
        if "eml" in formats:
            year = time.gmtime(int(meta.date)).tm_year
            d = os.path.join(out, "eml", str(year))
            path = os.path.join(d, f"{i:07d}.eml")
            if not os.path.isdir(d):
                os.makedirs(d, exist_ok=True)
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            try:
                # The same bytes as the Maildir file: a hard link saves time and disk
                # (no tool under test modifies message files in place).
                if mpath is None:
                    raise OSError
                os.link(mpath, path)
            except OSError:
                with open(path, "wb") as f:
                    f.write(raw)
            stats["eml"] += len(raw)
        if "mbox" in formats:
            chunk = mbox_from_line(sender, meta.date) + mboxrd_quote(raw)
            if not chunk.endswith(b"\n"):
                chunk += b"\n"
            chunk += b"\n"
            mbox_chunks.append(chunk)
            stats["mbox"] += len(chunk)
    return lo, stats, b"".join(mbox_chunks)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--formats", default="maildir")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--span-years", type=float, default=10.0)
    ap.add_argument("--chunk", type=int, default=500)
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()
    formats = set(f.strip() for f in a.formats.split(",") if f.strip())
    bad = formats - {"maildir", "mbox", "eml"}
    if bad or not formats:
        ap.error(f"unknown format(s): {', '.join(sorted(bad)) or '(none)'}")
    os.makedirs(a.out, exist_ok=True)
    if "maildir" in formats:
        for d in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(a.out, "maildir", d), exist_ok=True)
    if "eml" in formats:
        os.makedirs(os.path.join(a.out, "eml"), exist_ok=True)
    t0 = time.time()
    tasks = [(lo, min(a.count, lo + a.chunk), a.out, formats)
             for lo in range(0, a.count, a.chunk)]
    totals = {"maildir": 0, "eml": 0, "mbox": 0}
    done = 0
    mbox = open(os.path.join(a.out, "mbox.partial"), "wb") if "mbox" in formats else None
    tty = sys.stderr.isatty() and not a.quiet
    if a.jobs > 1:
        pool = multiprocessing.Pool(a.jobs, initializer=_init,
                                    initargs=(a.seed, a.count, a.span_years))
        it = pool.imap(work, tasks)
    else:
        _init(a.seed, a.count, a.span_years)
        pool = None
        it = map(work, tasks)
    for lo, st, mb in it:
        for k in totals:
            totals[k] += st[k]
        done += st["n"]
        if mbox:
            mbox.write(mb)
        if tty:
            el = time.time() - t0
            print(f"\r{done}/{a.count} messages, {el:.0f}s, {done / max(el, 1e-9):.0f} msg/s",
                  end="", file=sys.stderr)
    if pool:
        pool.close()
        pool.join()
    if tty:
        print(file=sys.stderr)
    if mbox:
        mbox.close()
        os.replace(os.path.join(a.out, "mbox.partial"), os.path.join(a.out, "mbox"))
    el = time.time() - t0
    w = World(a.seed, a.count, a.span_years)
    manifest = {
        "generator": "bench/gen_corpus.py", "count": a.count, "seed": a.seed,
        "span_years": a.span_years, "formats": sorted(formats),
        "bytes": {k: v for k, v in totals.items() if k in formats},
        "message_bytes": totals["maildir"] or totals["eml"] or None,
        "first_date": time.strftime("%Y-%m-%d", time.gmtime(START)),
        "last_date": time.strftime("%Y-%m-%d", time.gmtime(START + a.span_years * YEAR)),
        "words_by_rank": {str(r): w.words[r] for r in (10, 50, 200, 400, 1000, 2000, 4000)},
        "top_senders": [p[1] for p in w.people[:5]],
        "seconds": round(el, 1),
    }
    with open(os.path.join(a.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    total = sum(totals.values())
    per = ", ".join(f"{k} {v}" for k, v in totals.items() if k in formats)
    print(f"wrote {a.count} messages in {el:.1f}s: total bytes written {total} ({per})")


if __name__ == "__main__":
    main()
