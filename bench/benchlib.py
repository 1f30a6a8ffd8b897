#!/usr/bin/env python3
"""Helpers for bench/run.sh (python3 stdlib only).  Not a benchmark by itself.

  benchlib.py querymix MAILDIR OUT_PREFIX [--sample N] [--seed S]
        Picks words that exist in the corpus (from a sample of its messages) and
        writes OUT_PREFIX.mailvault (one mailvault query per line, for
        `mailvault search-bench`) and OUT_PREFIX.json (the same queries with their
        notmuch translations and the sampled document frequencies).
  benchlib.py notmuch-search CONFIG MIX_JSON OUT_JSON [--rounds N]
        Times `notmuch count QUERY` and `notmuch search --output=messages
        --limit=50 QUERY` for each query (wall time of the whole command, process
        start included).
  benchlib.py rawbytes PATH...      Total bytes of the regular files under PATHs.
  benchlib.py timefile FILE         Parses `/usr/bin/time -f '%M %e'` output into JSON
                                    (`-f '%M %e %U %S'` adds cpu_s).
  benchlib.py batches OUT < IMPORT_DEBUG_STDERR
        Writes "UNIX_TIME MESSAGES" lines to OUT: the committed message count,
        from the batch lines of `mailvault --debug import` as they arrive; every
        line read is copied to stdout.  For run_1m.sh's ingest curve.
  benchlib.py table1m OUT_DIR COUNT Prints run_1m.sh's table of issue 17's targets from
                                    what it left in OUT_DIR.
  benchlib.py report OUT_DIR        Merges OUT_DIR/work/*/ *.json into OUT_DIR/results.json
                                    and prints the tables.
"""
import email
import email.policy
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import time

# ---- /proc readers, for the scripts that sample a server's memory and CPU

def proc_stat_fields(pid):
    """/proc/PID/stat after the command name (field 3 on: state is [0],
    utime [11], stime [12]); OSError when the process is gone."""
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()


def _proc_kb(pid, name, key, missing):
    """The kB figure of the line starting with key in /proc/PID/name;
    missing when the process is gone."""
    try:
        with open("/proc/%d/%s" % (pid, name)) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return missing


def rss_kb(pid):
    """VmRSS of pid in kB; None when the process is gone."""
    return _proc_kb(pid, "status", "VmRSS:", None)


def pss_kb(pid):
    """Proportional set size in kB: shared pages divided among the processes
    that map them (a sum of RSS over a server's processes counts its
    libraries once per process); 0 when the process is gone."""
    return _proc_kb(pid, "smaps_rollup", "Pss:", 0)


STOP = set("""a an and are as at be but by for from had has have he her his i if in into
is it its me my no not of on or our she so that the their them then there these they this
to was we were what when which who will with you your re fwd wrote""".split())
WORD = re.compile(r"[a-z]{3,20}")


def _text_of(msg):
    out = []
    for part in msg.walk():
        if part.get_content_type() == "text/plain" and not part.get_filename():
            try:
                out.append(part.get_content())
            except Exception:
                pass
    return "\n".join(out)


def _sample_files(maildir, n, rng):
    files = []
    for sub in ("cur", "new"):
        d = os.path.join(maildir, sub)
        if os.path.isdir(d):
            files.extend(os.path.join(d, f) for f in os.listdir(d))
    files.sort()
    if len(files) > n:
        files = rng.sample(files, n)
    return files


def querymix(args):
    maildir, prefix = args[0], args[1]
    sample = int(_opt(args, "--sample", "3000"))
    rng = random.Random(int(_opt(args, "--seed", "7")))
    files = _sample_files(maildir, sample, rng)
    df = {}
    sdf = {}
    senders = {}
    dates = []
    bodies = []
    for path in files:
        with open(path, "rb") as f:
            raw = f.read(2_000_000)
        try:
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            subj = str(msg.get("subject", "") or "")
            frm = msg.get("from")
            addrs = getattr(frm, "addresses", ()) if frm is not None else ()
            dt = msg.get("date")
            d = getattr(dt, "datetime", None) if dt is not None else None
            text = _text_of(msg)
        except Exception:
            continue
        if d is not None and 1990 <= d.year <= 2030:
            dates.append(d.strftime("%Y-%m-%d"))
        for a in addrs:
            if a.addr_spec and "@" in a.addr_spec and a.addr_spec.isascii():
                senders[a.addr_spec.lower()] = senders.get(a.addr_spec.lower(), 0) + 1
        for w in set(WORD.findall(subj.lower())):
            sdf[w] = sdf.get(w, 0) + 1
        words = set(WORD.findall((subj + "\n" + text).lower()))
        for w in words:
            df[w] = df.get(w, 0) + 1
        if text:
            bodies.append(text)
    n = max(1, len(files))
    cands = sorted((w for w in df if w not in STOP), key=lambda w: (-df[w], w))

    def pick(lo, hi, avoid=()):
        """A word present in a fraction lo..hi of the sampled messages."""
        pool = [w for w in cands if lo <= df[w] / n <= hi and w not in avoid]
        if not pool:
            pool = [w for w in cands if w not in avoid] or ["message"]
            # nearest to the band's middle
            mid = (lo + hi) / 2
            pool.sort(key=lambda w: abs(df[w] / n - mid))
            return pool[0]
        return pool[rng.randrange(len(pool))] if len(pool) > 1 else pool[0]

    common = pick(0.10, 0.40)
    medium = pick(0.01, 0.05, {common})
    rare = pick(0.001, 0.005, {common, medium})
    medium2 = pick(0.01, 0.05, {common, medium, rare})
    # A phrase: two adjacent non-stop words from a sampled body, both fairly common.
    phrase = None
    for text in rng.sample(bodies, min(len(bodies), 400)):
        toks = re.findall(r"[A-Za-z]+", text)
        for a, b in zip(toks, toks[1:]):
            la, lb = a.lower(), b.lower()
            if (la not in STOP and lb not in STOP and WORD.fullmatch(la) and WORD.fullmatch(lb)
                    and df.get(la, 0) / n >= 0.02 and df.get(lb, 0) / n >= 0.02 and la != lb):
                phrase = f"{la} {lb}"
                break
        if phrase:
            break
    phrase = phrase or f"{common} {medium}"
    # A word seen in 0.5-5% of the sampled subjects (else the medium word).
    spool = sorted((w for w in sdf if w not in STOP and 0.005 <= sdf[w] / n <= 0.05),
                   key=lambda w: (-sdf[w], w))
    subjw = spool[rng.randrange(len(spool))] if spool else medium
    sender = max(senders, key=lambda s: (senders[s], s)) if senders else "example.com"
    dates.sort()
    if dates:
        mid = dates[len(dates) // 2]
        year = int(mid[:4])
    else:
        year = 2005
    after, before = f"{year}-01-01", f"{year + 1}-01-01"
    nm_range = f"date:{year}-01-01..{year}-12-31"
    qs = [
        ("one word (common)", common, common),
        ("one word (medium)", medium, medium),
        ("one word (rare)", rare, rare),
        ("two words", f"{medium} {medium2}", f"{medium} and {medium2}"),
        ("two words (common+rare)", f"{common} {rare}", f"{common} and {rare}"),
        ("phrase", f'"{phrase}"', f'"{phrase}"'),
        ("field from:", f"from:{sender}", f"from:{sender}"),
        ("field subject:", f"subject:{subjw}", f"subject:{subjw}"),
        ("date range", f"after:{after} before:{before}", nm_range),
        ("word + date range", f"{medium} after:{after} before:{before}",
         f"{medium} and {nm_range}"),
        ("OR", f"{rare} OR {medium2}", f"{rare} or {medium2}"),
        ("prefix", f"{medium[:4]}*", f"{medium[:4]}*"),
        ("scoped archive:", f"archive:bench {medium}", None),
    ]
    with open(prefix + ".mailvault", "w") as f:
        for _, q, _ in qs:
            f.write(q + "\n")
    meta = {"sampled": n, "df": {w: round(df.get(w, 0) / n, 4) for w in
                                  (common, medium, medium2, rare)},
            "queries": [{"label": l, "mailvault": q, "notmuch": nq} for l, q, nq in qs]}
    with open(prefix + ".json", "w") as f:
        json.dump(meta, f, indent=1)
    for l, q, _ in qs:
        print(f"  {l:24} {q}")


def _pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return None
    k = (len(xs) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def notmuch_search(args):
    config, mix, out = args[0], args[1], args[2]
    rounds = int(_opt(args, "--rounds", "10"))
    env = dict(os.environ, NOTMUCH_CONFIG=config)
    qs = [q for q in json.load(open(mix))["queries"] if q["notmuch"]]

    def timed(cmd):
        t = time.perf_counter()
        p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        return (time.perf_counter() - t) * 1000.0, p

    # Process start + database open, for reference.
    base = [timed(["notmuch", "count", "id:no-such-message@nowhere"])[0] for _ in range(rounds)]
    res = {"rounds": rounds, "note": "wall time of a whole notmuch command, process start and "
           "database open included", "startup_p50_ms": _pct(base, .5), "queries": []}
    all_count, all_search = [], []
    for q in qs:
        tc, ts = [], []
        hits = None
        for _ in range(rounds):
            ms, p = timed(["notmuch", "count", q["notmuch"]])
            tc.append(ms)
            if hits is None:
                try:
                    hits = int(p.stdout.strip() or 0)
                except ValueError:
                    hits = None
            ms, _ = timed(["notmuch", "search", "--output=messages", "--sort=newest-first",
                           "--limit=50", q["notmuch"]])
            ts.append(ms)
        all_count.extend(tc)
        all_search.extend(ts)
        res["queries"].append({"label": q["label"], "query": q["notmuch"], "hits": hits,
                               "count_p50_ms": _pct(tc, .5), "count_p95_ms": _pct(tc, .95),
                               "search50_p50_ms": _pct(ts, .5), "search50_p95_ms": _pct(ts, .95)})
    res.update({"count_p50_ms": _pct(all_count, .5), "count_p95_ms": _pct(all_count, .95),
                "search50_p50_ms": _pct(all_search, .5), "search50_p95_ms": _pct(all_search, .95)})
    json.dump(res, open(out, "w"), indent=1)


def rawbytes(args):
    total = 0
    files = 0
    for p in args:
        if os.path.isfile(p):
            total += os.path.getsize(p)
            files += 1
            continue
        for dp, dn, fn in os.walk(p):
            if ".notmuch" in dn:
                dn.remove(".notmuch")
            for f in fn:
                total += os.path.getsize(os.path.join(dp, f))
                files += 1
    print(json.dumps({"bytes": total, "files": files}))


def _timefile(path):
    """`/usr/bin/time -f '%M %e'` writes other lines first if the command was killed."""
    rss = secs = cpu = None
    try:
        for line in open(path):
            m = re.fullmatch(r"\s*(\d+|-) (\d+(?:\.\d+)?)(?: (\d+(?:\.\d+)?) (\d+(?:\.\d+)?))?\s*", line)
            if m:
                rss = None if m.group(1) == "-" else int(m.group(1))
                secs = float(m.group(2))
                cpu = float(m.group(3)) + float(m.group(4)) if m.group(3) else None
    except OSError:
        pass
    out = {"peak_rss_kb": rss, "wall_s": secs}
    if cpu is not None:
        out["cpu_s"] = cpu
    return out


def timefile(args):
    print(json.dumps(_timefile(args[0])))


BATCH_LINE = re.compile(rb"batch of (\d+): plan ")


def batches(args):
    """The committed count over time, from an import's own `--debug` batch
    lines on stdin (one per committed batch), written to OUT as "TIME COUNT"
    lines; every line read goes on to stdout.  A second process reading the
    store beside the import (`mailvault stats` every few seconds) took the
    disk and a core from it and bent the curve it measured (bench/RESULTS.md,
    eighth session)."""
    out = args[0]
    count = 0
    with open(out, "w") as f:
        for line in sys.stdin.buffer:
            sys.stdout.buffer.write(line)
            m = BATCH_LINE.search(line)
            if m:
                count += int(m.group(1))
                f.write(f"{time.time():.3f} {count}\n")
                f.flush()


# ----------------------------------------------------------------------------- run_1m.sh's table

def ingest_curve(t0, wall, imported, samples, step):
    """Rates per STEP messages: when the committed count passed each boundary,
    interpolated between the samples around it (the import's start is (t0, 0),
    its end (t0 + wall, imported))."""
    pts = [(t0, 0)] + [p for p in samples if t0 <= p[0] <= t0 + wall] + [(t0 + wall, imported)]
    crossed = [t0]
    for b in range(step, imported + 1, step):
        for (ta, ca), (tb, cb) in zip(pts, pts[1:]):
            if ca < b <= cb:
                crossed.append(ta + (tb - ta) * (b - ca) / (cb - ca))
                break
    return [step / (b - a) if b > a else None for a, b in zip(crossed, crossed[1:])]


def _maint_rows(path):
    rows = {}
    try:
        for line in open(path):
            if line.strip():
                op, msgs, wall, rss, cpu, load = line.rstrip("\n").split("\t")
                rows[op.split()[0]] = (int(msgs), float(wall), int(rss))
    except OSError:
        pass
    return rows


def _api_inbox(path):
    try:
        for line in open(path):
            f = line.rstrip("\n").split("\t")
            if f[0] == "mailvault GetMessages alice/Inbox":
                r = {}
                for kv in open(f[3]):
                    k, _, v = kv.strip().partition("=")
                    r[k] = float(v)
                return {"msgs": f[1], "rps": r["rps"], "hwm_kb": int(f[6]), "rc": int(f[9]),
                        "failed": r["non200"] + r["unsucceeded"] + r["err_connect"] + r["err_read"]
                        + r["err_write"] + r["err_timeout"]}
    except (OSError, KeyError, IndexError, ValueError):
        pass
    return None


def table1m(args):
    out, count = args[0], int(args[1])
    rows = []               # (figure, result, target, met: True/False/None)

    def row(fig, val, target, ok):
        rows.append((fig, val, target, None if val is None else ok))

    def ms(x):
        return f"{x:.2f} ms"

    imp = _load(os.path.join(out, "import.json")) or {}
    it = _timefile(os.path.join(out, "import.time"))
    t0 = float(open(os.path.join(out, "import.start")).read()) if os.path.exists(
        os.path.join(out, "import.start")) else None
    n_imp, wall = imp.get("imported"), it.get("wall_s")
    rate = n_imp / wall if n_imp and wall else None
    row(f"1. ingest {count:,} generated (Maildir), full indexing: msg/s",
        rate and f"{rate:,.0f} msg/s ({n_imp:,} in {wall:.0f} s)",
        "≥ 5,000 msg/s at 1M", rate is not None and rate >= 5000)
    curve = []
    step = 100000 if count >= 1000000 else max(1, count // 10)
    samples = []
    if n_imp and wall and t0 is not None:
        try:
            for line in open(os.path.join(out, "import.samples")):
                t, c = line.split()
                samples.append((float(t), int(c)))
        except OSError:
            pass
        curve = ingest_curve(t0, wall, n_imp, samples, step)
    keep = curve[0] and curve[-1] and curve[-1] / curve[0] if curve else None
    jump = max((b[1] - a[1] for a, b in zip(samples, samples[1:])), default=0)
    coarse = " (coarse, see below)" if jump * 2 > step else ""
    row(f"1. ingest curve: last / first {step:,} messages",
        keep and f"{100 * keep:.0f}% ({curve[-1]:,.0f} / {curve[0]:,.0f} msg/s){coarse}", "≥ 80%",
        keep is not None and keep >= 0.8)
    rss = it.get("peak_rss_kb")
    row("1. ingest peak RSS", rss and f"{rss / 1024:.0f} MB", "< 300 MB", rss is not None and rss < 300 * 1024)

    sa = _load(os.path.join(out, "sa-import.json")) or {}
    st = _timefile(os.path.join(out, "sa-import.time"))
    sr = sa.get("imported") / st["wall_s"] if sa.get("imported") and st.get("wall_s") else None
    row("2. ingest SpamAssassin (Maildir): msg/s", sr and f"{sr:,.0f} msg/s ({sa['imported']:,} in "
        f"{st['wall_s']:.1f} s)", "≥ 8,000 msg/s", sr is not None and sr >= 8000)
    ss = (_load(os.path.join(out, "sa-stats.json")) or {}).get("total") or {}
    sd = ss["diskBytes"] / ss["rawBytes"] if ss.get("rawBytes") else None
    row("2. SpamAssassin on disk / raw", sd and f"{100 * sd:.0f}% ({ss['diskBytes'] / 1e6:.1f} of "
        f"{ss['rawBytes'] / 1e6:.1f} MB)", "≤ 90%", sd is not None and sd <= 0.9)

    bs = _load(os.path.join(out, "stats.json")) or {}
    tot = bs.get("total") or {}
    if tot.get("rawBytes"):
        disk = {"content": 0, "db": 0, "index": 0}
        for s in bs.get("stores", []):
            for k in disk:
                disk[k] += (s.get("disk") or {}).get(k, 0)
        raw = tot["rawBytes"]
        parts = ", ".join(f"{k} {disk[k] / 1e6:,.0f} MB ({100 * disk[k] / raw:.0f}%)" for k in disk)
        dr = tot["diskBytes"] / raw
        row(f"3. on disk / raw, {count:,} generated", f"{100 * dr:.0f}%: {parts}; total "
            f"{tot['diskBytes'] / 1e6:,.0f} of {raw / 1e6:,.0f} MB raw", "≤ 90%", dr <= 0.9)
    else:
        row(f"3. on disk / raw, {count:,} generated", None, "≤ 90%", None)

    mix = [q["label"] for q in (_load(os.path.join(out, "querymix.json")) or {}).get("queries", [])]
    sd_ = _load(os.path.join(out, "search-date.json"))
    sr_ = _load(os.path.join(out, "search-relevance.json"))

    def prefix_p95(res):
        qs = (res or {}).get("queries", [])
        v = [q["p95_ms"] for lab, q in zip(mix, qs) if lab.startswith("prefix")]
        return max(v) if v else None
    p50, p95 = (sd_ or {}).get("p50_ms"), (sd_ or {}).get("p95_ms")
    row("4. search warm, date order: p50 all queries", p50 is not None and ms(p50) or None, "≤ 2 ms",
        p50 is not None and p50 <= 2)
    row("4. search warm, date order: p95 all queries", p95 is not None and ms(p95) or None, "≤ 15 ms",
        p95 is not None and p95 <= 15)
    pd, pr = prefix_p95(sd_), prefix_p95(sr_)
    row("4. search warm, date order: prefix query p95", pd is not None and ms(pd) + (
        f" (with --sort relevance: {ms(pr)})" if pr is not None else "") or None, "≤ 15 ms",
        pd is not None and pd <= 15)
    rp50, rp95 = (sr_ or {}).get("p50_ms"), (sr_ or {}).get("p95_ms")
    row("4. search warm, --sort relevance: p95 all queries (p50)",
        rp95 is not None and f"{ms(rp95)} ({ms(rp50)})" or None, "≤ 50 ms", rp95 is not None and rp95 <= 50)

    mr = _maint_rows(os.path.join(out, "maint", "logs", "rows.tsv"))
    for op in ("RebuildStoreIndex", "RecoverStore", "TransferStores"):
        r = mr.get(op)
        mrate = r[0] / r[1] if r and r[1] > 0 else None
        row(f"5. {op}", mrate and f"{mrate:,.0f} msg/s ({r[0]:,} in {r[1]:.1f} s, peak RSS "
            f"{r[2] / 1024:.0f} MB)", "≥ 8,333 msg/s", mrate is not None and mrate >= 8333)

    api = _api_inbox(os.path.join(out, "api", "logs", "rows.tsv"))
    row("6. API: 32 × whole-folder GetMessages (SpamAssassin Inbox): req/s",
        api and f"{api['rps']:,.1f} req/s ({api['msgs']} messages a reply"
        f"{'' if not api['failed'] else ', %d requests failed' % api['failed']})", "(figure)",
        None if api is None else None)
    row("6. API server peak RSS", api and f"{api['hwm_kb'] / 1024:.0f} MB", "< 150 MB",
        api is not None and api["hwm_kb"] < 150 * 1024)

    print()
    print(f"== issue 17's targets, {count:,} generated messages ==")
    print()
    print("| figure | result | target | |")
    print("|---|---|---|---|")
    for fig, val, target, ok in rows:
        verdict = "n/a" if val is None else "" if target == "(figure)" else "met" if ok else "**missed**"
        print(f"| {fig} | {val if val is not None else 'n/a'} | {target} | {verdict} |")
    print()
    if curve:
        print(f"Ingest curve, msg/s per {step:,} messages (committed count from the import's own"
              f" {len(samples)} batch lines; the import took {it.get('cpu_s') or 0:.1f} s CPU):")
        print("  " + "  ".join(f"{x:,.0f}" if x else "n/a" for x in curve))
        if coarse:
            print(f"  (coarse: the committed count moved by up to {jump:,} messages in one batch, against"
                  f" {step:,} per point; the curve and its last/first ratio mean something at 100k+ messages)")
    for name, res in (("date order", sd_), ("--sort relevance", sr_),
                      ("date order, --archive bench", _load(os.path.join(out, "search-archive.json")))):
        if not res:
            continue
        print(f"search-bench, {name}:")
        for lab, q in zip(mix or [""] * len(res["queries"]), res["queries"]):
            print(f"  {lab[:24]:24} {q['query'][:44]:44} {q['hits']:4d} hits  p50 {q['p50_ms']:6.2f} ms"
                  f"  p95 {q['p95_ms']:6.2f} ms")
        print(f"  all queries: p50 {res['p50_ms']:.2f} ms, p95 {res['p95_ms']:.2f} ms")
    try:
        for line in open(os.path.join(out, "notes.txt")):
            print(line.rstrip("\n"))
    except OSError:
        pass


# ----------------------------------------------------------------------------- report

def _load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _fmt(x, unit="", digits=1):
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:,.{digits}f}{unit}"
    return f"{x:,}{unit}"


def _mb(b):
    return None if b is None else b / 1e6


def _ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def _rc(d, name):
    j = _load(os.path.join(d, f"{name}.rc.json")) or {}
    return j.get("rc"), j.get("loadavg_before")


def corpus_result(d):
    """Everything run.sh left in one corpus' work directory, as a dict."""
    r = {"name": os.path.basename(d)}
    meta = _load(os.path.join(d, "corpus.json")) or {}
    r.update(meta)
    n = meta.get("messages")
    raw = meta.get("raw_bytes")
    imp = {}
    for fmt in ("emldir", "maildir", "mbox"):
        j = _load(os.path.join(d, f"mv-import-{fmt}.json"))
        t = _load(os.path.join(d, f"mv-import-{fmt}.time.json")) or {}
        st = _load(os.path.join(d, f"mv-stats-{fmt}.json"))
        if j is None and not t:
            continue
        rc, load = _rc(d, f"mv-import-{fmt}")
        e = {"exit": rc, "loadavg_before": load,
             "peak_rss_kb": t.get("peak_rss_kb"), "wall_s": t.get("wall_s")}
        if j:
            e.update({k: j.get(k) for k in ("imported", "duplicates", "malformed", "refused",
                                            "bytes", "seconds")})
        secs = e.get("wall_s") or e.get("seconds")
        cnt = e.get("imported") if e.get("imported") is not None else n
        if secs:
            e["msgs_per_s"] = cnt / secs if cnt else None
            b = e.get("bytes") or raw
            e["mb_per_s"] = b / 1e6 / secs if b else None
        if st:
            tot = st.get("total", {})
            disk = {"content": 0, "db": 0, "index": 0}
            for s in st.get("stores", []):
                for k in disk:
                    disk[k] += (s.get("disk") or {}).get(k, 0) or 0
            e["disk"] = disk
            # `stats --json` answers in camelCase since the API contract
            # (docs/cli.md); older binaries used snake_case.
            disk_bytes = tot.get("diskBytes", tot.get("disk_bytes"))
            raw_bytes = tot.get("rawBytes", tot.get("raw_bytes"))
            e["disk_bytes"] = disk_bytes
            e["stats_raw_bytes"] = raw_bytes
            e["disk_vs_raw"] = _ratio(disk_bytes, raw_bytes or raw)
        imp[fmt] = e
    r["mailvault_import"] = imp
    sb = _load(os.path.join(d, "mv-search.json"))
    sbt = _load(os.path.join(d, "mv-search.time.json")) or {}
    if sb:
        sb["peak_rss_kb"] = sbt.get("peak_rss_kb")
    r["mailvault_search"] = sb
    sba = _load(os.path.join(d, "mv-search-archive.json"))
    r["mailvault_search_archive"] = sba
    r["query_mix"] = _load(os.path.join(d, "querymix.json"))
    for tool in ("notmuch", "mu"):
        t = _load(os.path.join(d, f"{tool}-index.time.json"))
        if not t:
            continue
        e = dict(t)
        e["exit"], e["loadavg_before"] = _rc(d, f"{tool}-index")
        e["db_bytes"] = (_load(os.path.join(d, f"{tool}-db.json")) or {}).get("bytes")
        if e.get("wall_s") and n:
            e["msgs_per_s"] = n / e["wall_s"]
            e["mb_per_s"] = raw / 1e6 / e["wall_s"] if raw else None
        e["db_vs_raw"] = _ratio(e.get("db_bytes"), raw)
        r[f"{tool}_index"] = e
    r["notmuch_search"] = _load(os.path.join(d, "notmuch-search.json"))
    mv = imp.get("maildir", {})
    r["ratios"] = {
        "ingest_mailvault_maildir_over_notmuch": _ratio(mv.get("msgs_per_s"),
                                                        (r.get("notmuch_index") or {}).get("msgs_per_s")),
        "ingest_mailvault_maildir_over_mu": _ratio(mv.get("msgs_per_s"),
                                                   (r.get("mu_index") or {}).get("msgs_per_s")),
        "disk_mailvault_over_raw": mv.get("disk_vs_raw"),
        "search_p50_notmuch_count_over_mailvault": _ratio(
            (r.get("notmuch_search") or {}).get("count_p50_ms"), (sb or {}).get("p50_ms")),
    }
    return r


def report(args):
    out = args[0]
    work = os.path.join(out, "work")
    order = _load(os.path.join(out, "work", "order.json")) or sorted(os.listdir(work))
    corpora = [corpus_result(os.path.join(work, c)) for c in order
               if os.path.isdir(os.path.join(work, c))]
    run = _load(os.path.join(work, "run.json")) or {}
    for c in corpora:
        for k in ("mailvault_search", "mailvault_search_archive"):
            if c.get(k) is not None:
                c[k].setdefault("rounds", run.get("search_bench_rounds"))
    mem = None
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    res = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "machine": {"cpus": os.cpu_count(), "mem_bytes": mem, "kernel": platform.release(),
                       "python": platform.python_version()},
           "run": run, "corpora": corpora,
           "targets": {"ingest_msgs_per_s_spamassassin": 5000, "ingest_over_notmuch": 8,
                       "disk_over_raw_max": 1.0, "search_p50_ms_1m": 5, "search_p95_ms_1m": 50,
                       "import_peak_rss_mb_max": 300}}
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    print_tables(res)
    print(f"\nmachine-readable: {os.path.join(out, 'results.json')}")


def print_tables(res):
    m = res["machine"]
    print(f"\n== mailvault benchmarks ({res['when']}, {m['cpus']} CPUs, "
          f"{_fmt(_mb(m['mem_bytes']) and _mb(m['mem_bytes']) / 1000, ' GB')} RAM) ==")
    for c in res["corpora"]:
        n = c.get("messages")
        print(f"\n-- corpus {c['name']}: {_fmt(n)} messages, "
              f"{_fmt(_mb(c.get('raw_bytes')), ' MB')} raw --")
        print(f"{'ingest':34} {'msgs/s':>10} {'MB/s':>8} {'wall s':>8} {'peak RSS MB':>12} "
              f"{'on disk/raw':>12}")
        rows = []
        for fmt, e in c["mailvault_import"].items():
            extra = ""
            if e.get("exit") == 124:
                extra = "  (timed out: --step-timeout)"
            elif e.get("exit") not in (0, 3, None):
                extra = f"  (exit {e['exit']})"
            if e.get("refused"):
                extra += f"  ({e['refused']} refused)"
            rows.append((f"mailvault import {fmt}", e.get("msgs_per_s"), e.get("mb_per_s"),
                         e.get("wall_s"), e.get("peak_rss_kb"), e.get("disk_vs_raw"), extra))
        for tool, label in (("notmuch", "notmuch new (same Maildir)"),
                            ("mu", "mu index (same Maildir)")):
            e = c.get(f"{tool}_index")
            if e:
                extra = "" if e.get("exit") in (0, None) else f"  (exit {e['exit']})"
                rows.append((label, e.get("msgs_per_s"), e.get("mb_per_s"), e.get("wall_s"),
                             e.get("peak_rss_kb"), e.get("db_vs_raw"), extra))
        busy = [e.get("loadavg_before") for e in list(c["mailvault_import"].values()) +
                [c.get("notmuch_index") or {}, c.get("mu_index") or {}]]
        busy = [x for x in busy if isinstance(x, (int, float))]
        if busy and max(busy) > 0.5 * (os.cpu_count() or 1):
            print(f"WARNING: machine busy (load average up to {max(busy):.1f} before timed "
                  f"steps): timings are noisy, compare ratios with care")
        for label, mps, mbs, wall, rss, dr, extra in rows:
            print(f"{label:34} {_fmt(mps, '', 0):>10} {_fmt(mbs):>8} {_fmt(wall, '', 2):>8} "
                  f"{_fmt(rss and rss / 1024, '', 0):>12} {_fmt(dr and dr * 100, '%', 0):>12}"
                  f"{extra}")
        mv = c["mailvault_import"].get("maildir") or {}
        if mv.get("disk"):
            d = mv["disk"]
            print(f"mailvault bytes on disk (maildir import): content {_fmt(_mb(d['content']), ' MB')}, "
                  f"db {_fmt(_mb(d['db']), ' MB')}, index {_fmt(_mb(d['index']), ' MB')}, "
                  f"total {_fmt(_mb(mv.get('disk_bytes')), ' MB')} = "
                  f"{_fmt(mv.get('disk_vs_raw') and mv['disk_vs_raw'] * 100, '%', 0)} of raw")
        r = c["ratios"]
        print(f"ratios: ingest mailvault/notmuch {_fmt(r['ingest_mailvault_maildir_over_notmuch'], 'x', 2)}"
              f" (target >= 8x), mailvault/mu {_fmt(r['ingest_mailvault_maildir_over_mu'], 'x', 2)}")
        sb = c.get("mailvault_search")
        ns = c.get("notmuch_search") or {}
        nsq = {q["label"]: q for q in ns.get("queries", [])}
        mix = (c.get("query_mix") or {}).get("queries", [])
        if sb or ns:
            print(f"{'search (ms)':26} {'query':38} {'mv hits':>8} {'mv p50':>7} {'mv p95':>7} "
                  f"{'nm hits':>8} {'nm cnt p50':>10} {'nm s50 p50':>10}")
            sbq = (sb or {}).get("queries", [])
            for k, q in enumerate(mix):
                mq = sbq[k] if k < len(sbq) else {}
                nq = nsq.get(q["label"], {})
                print(f"{q['label'][:26]:26} {q['mailvault'][:38]:38} {_fmt(mq.get('hits')):>8} "
                      f"{_fmt(mq.get('p50_ms'), '', 2):>7} {_fmt(mq.get('p95_ms'), '', 2):>7} "
                      f"{_fmt(nq.get('hits')):>8} {_fmt(nq.get('count_p50_ms'), '', 1):>10} "
                      f"{_fmt(nq.get('search50_p50_ms'), '', 1):>10}")
            if sb:
                sa = c.get("mailvault_search_archive") or {}
                print(f"mailvault search-bench (in-process, warm, {sb.get('rounds', '?')} rounds): "
                      f"p50 {_fmt(sb.get('p50_ms'), ' ms', 2)}, p95 {_fmt(sb.get('p95_ms'), ' ms', 2)}"
                      f", peak RSS {_fmt(sb.get('peak_rss_kb') and sb['peak_rss_kb'] / 1024, ' MB', 0)}"
                      f"; with --archive bench: p50 {_fmt(sa.get('p50_ms'), ' ms', 2)}, "
                      f"p95 {_fmt(sa.get('p95_ms'), ' ms', 2)}")
            if ns:
                print(f"notmuch (whole command, process start included; bare start+open "
                      f"{_fmt(ns.get('startup_p50_ms'), ' ms')}): count p50 "
                      f"{_fmt(ns.get('count_p50_ms'), ' ms')} p95 {_fmt(ns.get('count_p95_ms'), ' ms')}; "
                      f"search --limit=50 p50 {_fmt(ns.get('search50_p50_ms'), ' ms')} "
                      f"p95 {_fmt(ns.get('search50_p95_ms'), ' ms')}")


def _opt(args, name, default):
    if name in args:
        i = args.index(name)
        if i + 1 < len(args):
            return args[i + 1]
    return default


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    cmd, args = sys.argv[1], sys.argv[2:]
    fn = {"querymix": querymix, "notmuch-search": notmuch_search, "rawbytes": rawbytes,
          "timefile": timefile, "report": report, "batches": batches, "table1m": table1m}.get(cmd)
    if fn is None:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    fn(args)


if __name__ == "__main__":
    main()
