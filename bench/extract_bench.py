#!/usr/bin/env python3
"""Helpers for bench/run_extract.sh (python3 stdlib only).  Not a benchmark by itself.

  extract_bench.py texts DIR [--docs N] [--seed S]
        Writes N text files (half to become PDF, half DOCX) into DIR/src/ and
        their plan into DIR/plan.json.  Deterministic in (N, S, GEN_VERSION).
        Lengths run from 1 to 50 pages, log-uniformly (as many short documents
        as long ones per octave); the PDF and the DOCX sets get the same
        lengths.  Every document holds a word of its own on its last page
        (zq + kind + letters) and a word shared by its kind (zqallpdf,
        zqalldocx), so a search shows whether the whole text was read.
  extract_bench.py manifest DIR
        After LibreOffice has written DIR/pdf/*.pdf and DIR/docx/*.docx: checks
        every document is there, records bytes and pages (pdfinfo for PDFs,
        docProps/app.xml for DOCX, else the pages of the PDF of the same
        length) in DIR/manifest.json.
  extract_bench.py emls DOCS_DIR OUT_DIR
        One message per document: OUT_DIR/docs/{pdf,docx}/NNN.eml carry the
        document (application/pdf or the OOXML type, base64); OUT_DIR/rand/...
        are the same messages with the document replaced by random bytes of the
        same size as application/octet-stream NNN.bin (no extraction), so the
        two imports differ only by the extraction.
  extract_bench.py hits FILE         Number of results in a `mailvault search --json` answer.
  extract_bench.py peercheck DOCS_DIR KIND TXT_DIR
        How many of the peer's text outputs hold their document's own word.
  extract_bench.py sadocs EML_DIR   Attachments that are documents (by type, or by name when
                                    octet-stream), as the extractor picks them.
  extract_bench.py step OUT_JSON KEY=VALUE...   (as pst_bench.py round)
  extract_bench.py report WORK_DIR
        Prints the tables, the ratios, a Markdown table for RESULTS.md and
        writes WORK_DIR/../results.json.
"""
import email
import email.policy
import json
import math
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import time
import zipfile
from email.message import EmailMessage

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True   # no __pycache__ in bench/
import pst_bench  # noqa: E402  (GNU time -v parser, step files)
from benchlib import _opt  # noqa: E402  (option lookup shared by the bench helpers)

GEN_VERSION = "extract-docs-2"
WORDS_PER_PAGE = 550   # LibreOffice's default page (12 pt Liberation Serif) holds ~550 of these words

COMMON = """the of and to in is that for it as was with be by on not he this are or his from
at which but have an they you were her she there been one all we their has would when if so
no will more can out up into do any your what some time only could new these two may first
then other like now over such our man me even most made after also did many before must
through back years where much way well down should because each just those people how too
little state good very make world still own see men work long get here between both life
being under never day same another know while last might great old year off come since
against go came right used take three states himself few house use during without again
place around however home small found thought went say part once general high upon school
every does got united left number course war until always away something fact though water
less public put think almost hand enough far took head yet government system better set
told nothing night end why called didn find look asked later point knew city next program
business give group toward young days let room president side social given present several
order national second possible rather per face among form important often things looked
early white case john become large big need four within felt along children saw best church
ever least power development light thought market energy contract pipeline schedule report
meeting quarter budget review draft agreement customer supply capacity revenue forecast""".split()


def _letters(i, width=4):
    s = ""
    for _ in range(width):
        s = chr(ord("a") + i % 26) + s
        i //= 26
    return s


def _vocab(rng):
    syl_on = "b c d f g h j k l m n p r s t v w z br cr dr fl gr pl st tr ch sh th".split()
    syl_nu = "a e i o u ai ea ee io ou".split()
    syl_co = ["", "", "n", "r", "s", "t", "l", "m", "nd", "nt", "st", "ck"]
    words = list(dict.fromkeys(COMMON))
    seen = set(words)
    while len(words) < 4000:
        w = "".join(rng.choice(syl_on) + rng.choice(syl_nu) + rng.choice(syl_co)
                    for _ in range(rng.randint(2, 3)))
        if w not in seen and not w.startswith("zq"):
            seen.add(w)
            words.append(w)
    # Zipf-like weights: the common words first
    weights = [1.0 / (k + 8) for k in range(len(words))]
    return words, weights


def _pages_plan(n_pairs, rng):
    """n_pairs page counts from 1 to 50, log-uniform; 1 and 50 both present."""
    pages = [max(1, min(50, round(math.exp(rng.random() * math.log(50))))) for _ in range(n_pairs)]
    if n_pairs >= 2:
        pages[0], pages[1] = 1, 50
    return pages


def texts(args):
    out = args[0]
    n = int(_opt(args, "--docs", "200"))
    seed = int(_opt(args, "--seed", "42"))
    rng = random.Random(f"{GEN_VERSION}/{n}/{seed}")
    words, weights = _vocab(rng)
    n_pairs = (n + 1) // 2
    pages = _pages_plan(n_pairs, rng)
    src = os.path.join(out, "src")
    os.makedirs(src, exist_ok=True)
    plan = {"gen_version": GEN_VERSION, "docs": n, "seed": seed, "words_per_page": WORDS_PER_PAGE,
            "documents": []}
    for i in range(n):
        kind = "pdf" if i % 2 == 0 else "docx"
        k = i // 2
        p = pages[k]
        own = f"zq{kind}{_letters(k)}"
        total = p * WORDS_PER_PAGE
        body = rng.choices(words, weights, k=total)
        paras, j = [], 0
        title = " ".join(rng.choices(words, weights, k=6)).capitalize()
        while j < total:
            m = rng.randint(40, 140)
            chunk = body[j:j + m]
            j += m
            if not chunk:
                break
            paras.append(" ".join(chunk).capitalize() + ".")
        # the document's own word near the end (last page), the kind's word at the start
        paras[0] = f"zqall{kind} " + paras[0]
        paras[-1] = paras[-1][:-1] + f" {own}."
        name = f"{kind}-{k:03d}"
        with open(os.path.join(src, name + ".txt"), "w") as f:
            f.write(title + "\n\n" + "\n\n".join(paras) + "\n")
        plan["documents"].append({"name": name, "kind": kind, "pages_planned": p, "words": total,
                                  "own_word": own})
    with open(os.path.join(out, "plan.json"), "w") as f:
        json.dump(plan, f, indent=1)
    print(n)


def _pdf_pages(path):
    try:
        p = subprocess.run(["pdfinfo", path], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           text=True, check=False)
        m = re.search(r"^Pages:\s+(\d+)", p.stdout, re.M)
        return int(m.group(1)) if m else None
    except OSError:
        return None


def _docx_pages(path):
    try:
        with zipfile.ZipFile(path) as z:
            m = re.search(rb"<Pages>(\d+)</Pages>", z.read("docProps/app.xml"))
            return int(m.group(1)) if m else None
    except (OSError, KeyError, zipfile.BadZipFile):
        return None


def manifest(args):
    d = args[0]
    plan = json.load(open(os.path.join(d, "plan.json")))
    missing = []
    for doc in plan["documents"]:
        path = os.path.join(d, doc["kind"], doc["name"] + "." + doc["kind"])
        if not os.path.isfile(path) or os.path.getsize(path) == 0:
            missing.append(doc["name"])
            continue
        doc["file"] = os.path.relpath(path, d)
        doc["bytes"] = os.path.getsize(path)
        doc["pages"] = _pdf_pages(path) if doc["kind"] == "pdf" else _docx_pages(path)
    # LibreOffice writes no page count into a DOCX: a DOCX has the pages of the PDF
    # generated from the same plan entry (same length, same vocabulary).
    twin = {d["name"].split("-")[1]: d.get("pages") for d in plan["documents"] if d["kind"] == "pdf"}
    for doc in plan["documents"]:
        if doc["kind"] == "docx" and doc.get("pages") is None:
            doc["pages"] = twin.get(doc["name"].split("-")[1])
            doc["pages_from"] = "pdf twin"
    if missing:
        sys.exit(f"LibreOffice wrote no document for {len(missing)} of {len(plan['documents'])}: "
                 f"{', '.join(missing[:10])}")
    with open(os.path.join(d, "manifest.json"), "w") as f:
        json.dump(plan, f, indent=1)
    for kind in ("pdf", "docx"):
        ds = [x for x in plan["documents"] if x["kind"] == kind]
        print(f"{kind}: {len(ds)} documents, {sum(x['bytes'] for x in ds) / 1e6:.1f} MB, "
              f"{sum(x['pages'] or 0 for x in ds)} pages")


CT = {"pdf": "application/pdf",
      "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document"}


def _message(doc, i, payload, ctype, filename):
    m = EmailMessage(policy=email.policy.SMTP)
    m["From"] = f"Sender {i} <sender{i % 17}@example.org>"
    m["To"] = "Archive Bench <bench@example.org>"
    m["Subject"] = f"Document {doc['name']}"
    m["Date"] = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(1262304000 + i * 3600))
    m["Message-ID"] = f"<{doc['name']}.extract-bench@example.org>"
    m.set_content(f"Please find the document {doc['name']} attached.\n")
    maintype, subtype = ctype.split("/", 1)
    m.add_attachment(payload, maintype=maintype, subtype=subtype, filename=filename)
    return m.as_bytes()


def emls(args):
    docs_dir, out = args[0], args[1]
    man = json.load(open(os.path.join(docs_dir, "manifest.json")))
    rng = random.Random(f"{man['gen_version']}/{man['docs']}/{man['seed']}/random")
    sizes = {"docs": 0, "rand": 0}
    for i, doc in enumerate(man["documents"]):
        data = open(os.path.join(docs_dir, doc["file"]), "rb").read()
        noise = rng.randbytes(len(data))
        for variant, payload, ctype, fname in (
                ("docs", data, CT[doc["kind"]], f"{doc['name']}.{doc['kind']}"),
                ("rand", noise, "application/octet-stream", f"{doc['name']}.bin")):
            d = os.path.join(out, variant, doc["kind"])
            os.makedirs(d, exist_ok=True)
            raw = _message(doc, i, payload, ctype, fname)
            with open(os.path.join(d, f"{doc['name']}.eml"), "wb") as f:
                f.write(raw)
            sizes[variant] += len(raw)
    json.dump(sizes, open(os.path.join(out, "sizes.json"), "w"))
    print(f"{len(man['documents'])} messages per set; docs {sizes['docs'] / 1e6:.1f} MB, "
          f"random {sizes['rand'] / 1e6:.1f} MB")


def hits(args):
    try:
        print(len(json.load(open(args[0]))))
    except (OSError, ValueError, TypeError):
        print(-1)


DOC_EXT = re.compile(r"\.(pdf|docx|docm|xlsx|xlsm|pptx|odt|ods|odp|doc|xls|ppt|zip)$", re.I)
DOC_TYPE = re.compile(r"^application/(pdf|x-pdf|zip|x-zip.*|msword|vnd\.ms-excel|vnd\.ms-powerpoint|"
                      r"vnd\.openxmlformats-officedocument\..*|vnd\.oasis\.opendocument\..*)$", re.I)


def sadocs(args):
    """Attachments of a corpus that the extractor would read, by type or file name."""
    n = 0
    for dp, _, fn in os.walk(args[0]):
        for f in fn:
            try:
                msg = email.message_from_binary_file(open(os.path.join(dp, f), "rb"))
            except Exception:
                continue
            for part in msg.walk():
                if part.is_multipart():
                    continue
                name = part.get_filename() or ""
                try:
                    ctype = part.get_content_type()
                except Exception:
                    ctype = ""
                if DOC_TYPE.match(ctype) or (ctype == "application/octet-stream" and DOC_EXT.search(name)):
                    n += 1
    print(n)


def peercheck(args):
    docs_dir, kind, txt_dir = args
    man = json.load(open(os.path.join(docs_dir, "manifest.json")))
    good = total = 0
    for doc in man["documents"]:
        if doc["kind"] != kind:
            continue
        total += 1
        try:
            if doc["own_word"] in open(os.path.join(txt_dir, doc["name"] + ".txt"), errors="replace").read():
                good += 1
        except OSError:
            pass
    print(f"{good} {total}")


# ----------------------------------------------------------------------------- report

def _fmt(x, digits=0, unit=""):
    return pst_bench._fmt(x, digits, unit)


def _med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def report(args):
    work = args[0]
    run = json.load(open(os.path.join(work, "run.json")))
    man = json.load(open(os.path.join(run["docs_dir"], "manifest.json")))
    steps = {}
    sd = os.path.join(work, "steps")
    for name in sorted(os.listdir(sd)):
        if name.endswith(".json"):
            s = json.load(open(os.path.join(sd, name)))
            imp = s.get("import") or {}
            s.setdefault("messages", imp.get("imported"))
            s.setdefault("bytes", imp.get("bytes"))
            s.setdefault("unreadable", imp.get("unreadableAttachments"))
            s.setdefault("malformed", imp.get("malformed"))
            steps.setdefault(s["name"], []).append(s)

    def med(name, key):
        return _med([s.get(key) for s in steps.get(name, [])])

    def rss_max(name):
        return max((s.get("peak_rss_kb") or 0 for s in steps.get(name, [])), default=0) or None

    docs = {k: [d for d in man["documents"] if d["kind"] == k] for k in ("pdf", "docx")}
    docs["all"] = man["documents"]
    dmb = {k: sum(d["bytes"] for d in v) / 1e6 for k, v in docs.items()}
    pages = {k: sum(d.get("pages") or 0 for d in v) for k, v in docs.items()}
    res = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "machine": {"cpus": os.cpu_count(), "kernel": platform.release()},
           "run": run, "documents": {k: {"count": len(v), "mb": dmb[k], "pages": pages[k]}
                                     for k, v in docs.items()},
           "mailvault": {}, "peers": {}, "spamassassin": None, "steps": steps}
    cpus = os.cpu_count() or 1
    loads = [s.get("loadavg_before") or 0 for v in steps.values() for s in v]
    busy = max(loads, default=0)

    print(f"\n== attachment text extraction: {len(docs['all'])} generated documents "
          f"({len(docs['pdf'])} PDF {_fmt(dmb['pdf'], 1)} MB {pages['pdf']} pages, "
          f"{len(docs['docx'])} DOCX {_fmt(dmb['docx'], 1)} MB {pages['docx']} pages), "
          f"{run['rounds']} rounds, median ==")
    chk = run.get("checks") or {}
    active = chk.get("extraction_active")
    print(f"{'':44} {'wall s':>7} {'CPU s':>6} {'peak RSS MB':>12} {'docs/s':>8} {'MB/s':>7}")
    for k in ("all", "pdf", "docx"):
        n = len(docs[k])
        wd, wr = med(f"mv-docs-{k}", "wall_s"), med(f"mv-rand-{k}", "wall_s")
        cd, cr = med(f"mv-docs-{k}", "cpu_s"), med(f"mv-rand-{k}", "cpu_s")
        diff = wd - wr if wd is not None and wr is not None else None
        rate = n / diff if diff and diff > 0 else None
        mbs = dmb[k] / diff if diff and diff > 0 else None
        res["mailvault"][k] = {"documents": n, "wall_docs_s": wd, "wall_rand_s": wr,
                               "cpu_docs_s": cd, "cpu_rand_s": cr, "extract_wall_s": diff,
                               "extract_docs_per_s": rate, "extract_mb_per_s": mbs,
                               "import_docs_msgs_per_s": n / wd if wd else None,
                               "peak_rss_kb_docs": rss_max(f"mv-docs-{k}"),
                               "peak_rss_kb_rand": rss_max(f"mv-rand-{k}")}
        print(f"{'mailvault import, ' + k + ' documents attached':44} {_fmt(wd, 3):>7} {_fmt(cd, 2):>6} "
              f"{_fmt(rss_max(f'mv-docs-{k}') and rss_max(f'mv-docs-{k}') / 1024):>12} "
              f"{_fmt(n / wd if wd else None, 1):>8} {_fmt(dmb[k] / wd if wd else None, 2):>7}")
        print(f"{'mailvault import, same with random bytes':44} {_fmt(wr, 3):>7} {_fmt(cr, 2):>6} "
              f"{_fmt(rss_max(f'mv-rand-{k}') and rss_max(f'mv-rand-{k}') / 1024):>12}")
        print(f"{'  => extraction (difference), ' + k:44} {_fmt(diff, 3):>7} "
              f"{_fmt(cd - cr if cd is not None and cr is not None else None, 2):>6} {'':>12} "
              f"{_fmt(rate, 1):>8} {_fmt(mbs, 2):>7}")
    peers = [("pdftotext", "pdf", "pdftotext, one process per PDF"),
             ("pdftotext-par", "pdf", f"pdftotext, one per PDF, {run.get('jobs')} at a time"),
             ("docx2txt", "docx", "docx2txt, one process per DOCX"),
             ("docx2txt-par", "docx", f"docx2txt, one per DOCX, {run.get('jobs')} at a time")]
    for name, k, label in peers:
        if name not in steps:
            continue
        w = med(name, "wall_s")
        n = len(docs[k])
        res["peers"][name] = {"documents": n, "wall_s": w, "cpu_s": med(name, "cpu_s"),
                              "docs_per_s": n / w if w else None, "mb_per_s": dmb[k] / w if w else None,
                              "peak_rss_kb": rss_max(name), "check": chk.get(name)}
        print(f"{label:44} {_fmt(w, 3):>7} {_fmt(med(name, 'cpu_s'), 2):>6} "
              f"{_fmt(rss_max(name) and rss_max(name) / 1024):>12} {_fmt(n / w if w else None, 1):>8} "
              f"{_fmt(dmb[k] / w if w else None, 2):>7}")
    if "docx2txt" not in steps:
        print("docx2txt: not installed (Debian package docx2txt): no DOCX peer")

    # ratios: mailvault's extraction cost against the peers' whole runs on the same documents
    ratios = {}
    mvr = res["mailvault"]
    for k, seq, par in (("pdf", "pdftotext", "pdftotext-par"), ("docx", "docx2txt", "docx2txt-par")):
        for pname in (seq, par):
            p = res["peers"].get(pname)
            if p and mvr[k]["extract_docs_per_s"] and p["docs_per_s"]:
                ratios[f"{k}: mailvault extraction / {pname}"] = mvr[k]["extract_docs_per_s"] / p["docs_per_s"]
    if "pdftotext" in res["peers"] and "docx2txt" in res["peers"] and mvr["all"]["extract_docs_per_s"]:
        both = res["peers"]["pdftotext"]["wall_s"] + res["peers"]["docx2txt"]["wall_s"]
        ratios["all: mailvault extraction / (pdftotext + docx2txt, one process each)"] = \
            mvr["all"]["extract_docs_per_s"] / (len(docs["all"]) / both)
    res["ratios"] = ratios
    if ratios:
        print("ratios (documents/s, mailvault's extraction cost against the peer's whole run):")
        for k, v in ratios.items():
            print(f"  {k}: {_fmt(v, 2, 'x')}")
    # CPU seconds are steadier than wall time on a shared machine
    cpu_ratios = {}
    for k, pname in (("pdf", "pdftotext"), ("docx", "docx2txt")):
        p = res["peers"].get(pname)
        m = mvr[k]
        if p and p.get("cpu_s") and m["cpu_docs_s"] is not None and m["cpu_rand_s"] is not None \
                and m["cpu_docs_s"] > m["cpu_rand_s"]:
            cpu_ratios[f"{k}: {pname} CPU s / mailvault extraction CPU s"] = \
                p["cpu_s"] / (m["cpu_docs_s"] - m["cpu_rand_s"])
    res["cpu_ratios"] = cpu_ratios
    if cpu_ratios:
        print("CPU seconds (the peer's whole run over mailvault's extra CPU for the documents; > 1: mailvault uses less):")
        for k, v in cpu_ratios.items():
            print(f"  {k}: {_fmt(v, 2, 'x')}")
    print("checks:")
    for k, v in chk.items():
        print(f"  {k}: {v}")
    if active is False:
        print("NOTE: this binary does NOT extract attachment text (the documents' own words are not "
              "found): the difference above is not an extraction cost")

    sa = None
    if "sa" in steps:
        n = med("sa", "messages")
        w = med("sa", "wall_s")
        rate = _med([s["messages"] / s["wall_s"] for s in steps["sa"] if s.get("wall_s") and s.get("messages")])
        mb = _med([s["bytes"] / 1e6 / s["wall_s"] for s in steps["sa"] if s.get("wall_s") and s.get("bytes")])
        sa = {"messages": n, "wall_s": w, "msgs_per_s": rate, "mb_per_s": mb, "cpu_s": med("sa", "cpu_s"),
              "peak_rss_kb": rss_max("sa"), "target_msgs_per_s": 5000,
              "ratio_to_target": rate / 5000 if rate else None,
              "rounds": len(steps["sa"]),
              "unreadable_attachments": med("sa", "unreadable"),
              "attachment_docs_found": chk.get("sa_documents")}
        res["spamassassin"] = sa
        print(f"\n== SpamAssassin ingest with extraction ({_fmt(n)} messages, {sa['rounds']} rounds, median) ==")
        print(f"mailvault import emldir: {_fmt(rate)} msgs/s, {_fmt(mb, 1)} MB/s, wall {_fmt(w, 2)} s, "
              f"CPU {_fmt(sa['cpu_s'], 2)} s, peak RSS {_fmt(sa['peak_rss_kb'] and sa['peak_rss_kb'] / 1024)} MB; "
              f"target > 5,000 msgs/s: {_fmt(sa['ratio_to_target'], 2, 'x')} "
              f"({'met' if rate and rate > 5000 else 'MISSED'})")
        if "sa-base" in steps:
            rb = _med([s["messages"] / s["wall_s"] for s in steps["sa-base"] if s.get("wall_s") and s.get("messages")])
            sa["base_msgs_per_s"] = rb
            sa["base_bin"] = run.get("base_bin")
            print(f"same import with the reference binary {run.get('base_bin')}: {_fmt(rb)} msgs/s "
                  f"(ratio with/without {_fmt(rate / rb if rate and rb else None, 2, 'x')})")
        mal = med("sa", "malformed")
        malb = med("sa-base", "malformed") if "sa-base" in steps else None
        sa["malformed"], sa["base_malformed"] = mal, malb
        print(f"  counted 'archived but malformed': {_fmt(mal)}"
              + (f" (reference binary: {_fmt(malb)})" if malb is not None else ""))
        if chk.get("sa_documents") is not None:
            print(f"  attachments in the corpus that are documents this importer reads: {chk['sa_documents']}; "
                  f"reported not searchable: {_fmt(sa['unreadable_attachments'])}")
    if busy > 0.5 * cpus:
        print(f"WARNING: machine busy (load average up to {busy:.1f} before timed steps, {cpus} CPUs): "
              f"timings are noisy, compare ratios with care")
    else:
        print(f"load average before timed steps: up to {busy:.1f} ({cpus} CPUs)")
    res["loadavg_max"] = busy
    with open(os.path.join(os.path.dirname(work.rstrip("/")), "results.json"), "w") as f:
        json.dump(res, f, indent=1)

    print("\nMarkdown for bench/RESULTS.md:\n")
    print("| run | documents | wall s | CPU s | peak RSS | docs/s | MB/s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for k in ("all", "pdf", "docx"):
        m = mvr[k]
        print(f"| mailvault import, {k} attached | {m['documents']} | {_fmt(m['wall_docs_s'], 2)} | "
              f"{_fmt(m['cpu_docs_s'], 2)} | {_fmt(m['peak_rss_kb_docs'] and m['peak_rss_kb_docs'] / 1024)} MB | "
              f"{_fmt(m['import_docs_msgs_per_s'], 1)} | {_fmt(dmb[k] / m['wall_docs_s'] if m['wall_docs_s'] else None, 2)} |")
        print(f"| mailvault import, {k} as random bytes | {m['documents']} | {_fmt(m['wall_rand_s'], 2)} | "
              f"{_fmt(m['cpu_rand_s'], 2)} | {_fmt(m['peak_rss_kb_rand'] and m['peak_rss_kb_rand'] / 1024)} MB | | |")
        print(f"| **extraction, {k}** (difference) | {m['documents']} | {_fmt(m['extract_wall_s'], 2)} | "
              f"{_fmt(m['cpu_docs_s'] - m['cpu_rand_s'] if m['cpu_docs_s'] is not None and m['cpu_rand_s'] is not None else None, 2)} | | "
              f"**{_fmt(m['extract_docs_per_s'], 1)}** | **{_fmt(m['extract_mb_per_s'], 2)}** |")
    for name, k, label in peers:
        p = res["peers"].get(name)
        if p:
            print(f"| {label} | {p['documents']} | {_fmt(p['wall_s'], 2)} | {_fmt(p['cpu_s'], 2)} | "
                  f"{_fmt(p['peak_rss_kb'] and p['peak_rss_kb'] / 1024)} MB | {_fmt(p['docs_per_s'], 1)} | "
                  f"{_fmt(p['mb_per_s'], 2)} |")
    if ratios or cpu_ratios:
        print("\nRatios, documents/s of mailvault's extraction (difference) over the peer's: "
              + "; ".join(f"{k} **{_fmt(v, 2, '×')}**" for k, v in ratios.items())
              + ". CPU seconds, peer over mailvault: "
              + "; ".join(f"{k.split(':')[0]} {_fmt(v, 2, '×')}" for k, v in cpu_ratios.items()) + ".")
    if sa:
        print(f"\n| SpamAssassin, mailvault import (extraction on) | messages | msgs/s | MB/s | wall s | peak RSS | vs target 5,000/s |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        print(f"| emldir, median of {sa['rounds']} | {_fmt(sa['messages'])} | {_fmt(sa['msgs_per_s'])} | "
              f"{_fmt(sa['mb_per_s'], 1)} | {_fmt(sa['wall_s'], 2)} | "
              f"{_fmt(sa['peak_rss_kb'] and sa['peak_rss_kb'] / 1024)} MB | {_fmt(sa['ratio_to_target'], 2, '×')} |")
        if sa.get("base_msgs_per_s"):
            bw = med("sa-base", "wall_s")
            print(f"| same, reference binary ({os.path.basename(run.get('base_bin') or '?')}) | {_fmt(sa['messages'])} | "
                  f"{_fmt(sa['base_msgs_per_s'])} | | {_fmt(bw, 2)} | "
                  f"{_fmt(rss_max('sa-base') and rss_max('sa-base') / 1024)} MB | "
                  f"{_fmt(sa['base_msgs_per_s'] / 5000, 2, '×')} |")
    print(f"\nmachine-readable: {os.path.join(os.path.dirname(work.rstrip('/')), 'results.json')}")


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    fn = {"texts": texts, "manifest": manifest, "emls": emls, "hits": hits, "peercheck": peercheck, "sadocs": sadocs,
          "step": pst_bench.round_, "report": report}.get(sys.argv[1])
    if fn is None:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    fn(sys.argv[2:])


if __name__ == "__main__":
    main()
