#!/usr/bin/python3
"""The cost of encrypting a store's SQLite files (SQLCipher), measured in one run
on one machine.  Driven by bench/run_encryption.sh; prints figures, never
passes or fails a figure.  Needs /usr/bin/python3 with python3-nacl (Debian)
and the `sqlcipher` shell (Debian package sqlcipher).

  encryption_bench.py run --bin BIN --src DIR --format FMT --queries FILE
                          --work DIR --out DIR --corpus NAME --invocation CMD
                          [--mix-json FILE] [--rounds 20] [--passes 10]
                          [--bulk-rounds 5] [--keep]

Steps (see bench/README.md, "Encryption at rest"):
 1. `mailvault init` + `mailvault import SRC --archive bench` into WORK/enc,
    under GNU time: msgs/s, MB/s, wall, CPU, peak RSS.
 2. WORK/plain: a copy of WORK/enc whose store.sqlite and index.sqlite are
    decrypted with the sqlcipher shell (sqlcipher_export into KEY ''), the
    plain db set to format_version 2 (format 2 stores open read-only).  The
    binary must find the same hits in both (search-bench --limit 1000000),
    else the run stops: the comparison would be meaningless.
 3. `mailvault search-bench` on both data directories, PASSES processes each,
    alternating which goes first, the page cache warmed identically before
    each; per query class the median over passes of p50 and p95.  Then as
    many processes of `--rounds 1`: each query's first execution, with
    SQLite's own (decrypted) page cache cold.
 4. Bulk writes of the same content with the sqlcipher shell, from the plain
    files: VACUUM INTO a plain file, sqlcipher_export into a plain file and
    sqlcipher_export into an encrypted file (the store's key scheme); and a
    full read (PRAGMA quick_check) of the encrypted vs the plain copy.  Sizes,
    pages and overflow pages (dbstat) of each file.
 5. A table on stdout, OUT/results.json and OUT/RESULTS-snippet.md.
"""
import glob
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "system"))
try:
    import storedb  # the key derivation, independent of the C code
except ImportError as e:  # python3-nacl missing, or not Debian's python3
    sys.exit(f"encryption_bench.py: cannot import tests/system/storedb.py ({e}); "
             f"run with /usr/bin/python3 and the Debian package python3-nacl")

SQLITE_MAGIC = b"SQLite format 3\0"
FILES = (("db", os.path.join("db", "store.sqlite")), ("index", os.path.join("index", "index.sqlite")))
RUNTIME = re.compile(r"^Run Time: real ([0-9.]+) user ([0-9.]+) sys ([0-9.]+)$", re.M)


def log(msg):
    print(f"[encryption {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def die(msg):
    log(f"FAILED: {msg}")
    sys.exit(1)


def loadavg():
    try:
        return float(open("/proc/loadavg").read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def warm(*paths):
    """Read every file once, so each timed step starts from the same warm page cache."""
    buf = bytearray(1 << 20)
    for p in paths:
        files = [p] if os.path.isfile(p) else [os.path.join(d, f) for d, _, fs in os.walk(p) for f in fs]
        for f in files:
            try:
                with open(f, "rb", buffering=0) as fh:
                    while fh.readinto(buf):
                        pass
            except OSError:
                pass


def is_plain(path):
    with open(path, "rb") as f:
        return f.read(16) == SQLITE_MAGIC


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def ratio(a, b):
    return a / b if a is not None and b else None


# ---------------------------------------------------------------- sqlcipher shell

def key_pragma(key):
    return "" if key is None else ".output /dev/null\nPRAGMA key=\"x'%s'\";\n.output stdout\n" % key.hex()


def key_clause(key):
    return "''" if key is None else "\"x'%s'\"" % key.hex()


def sqlq(s):
    return "'%s'" % s.replace("'", "''")


def sqlcipher(path, script, key=None, timer=False):
    """Runs script on path in `sqlcipher -batch -bail` (the key, if any, first,
    through stdin: never on a command line or in a file).  Returns (stdout,
    wall seconds of the process, [real, user, sys] summed over the statements
    when timer is set)."""
    text = key_pragma(key) + (".timer on\n" if timer else "") + script
    t0 = time.perf_counter()
    cp = subprocess.run(["sqlcipher", "-batch", "-bail", path], input=text.encode(), capture_output=True)
    wall = time.perf_counter() - t0
    if cp.returncode != 0:
        die(f"sqlcipher {path}: {cp.stderr.decode(errors='replace').strip()}")
    out = cp.stdout.decode(errors="replace")
    t = [0.0, 0.0, 0.0]
    for m in RUNTIME.finditer(out):
        for i in range(3):
            t[i] += float(m.group(i + 1))
    return RUNTIME.sub("", out), wall, t


def remove_db(path):
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.remove(path + suffix)
        except FileNotFoundError:
            pass


# The bulk writes of step 4 run without fsync and without a rollback journal
# (nosync): what they compare is the work of writing the pages, plain or
# encrypted, not the disk's flush latency, and VACUUM INTO writes no journal.
NOSYNC_OUT = "PRAGMA mv_out.synchronous=OFF;\n.output /dev/null\nPRAGMA mv_out.journal_mode=OFF;\n.output stdout\n"


def export(src, src_key, dest, dest_key, timer=False, nosync=False):
    """sqlcipher_export of src (opened with src_key, None = plain) into a new dest (dest_key, None = plain)."""
    remove_db(dest)
    return sqlcipher(src, f"ATTACH DATABASE {sqlq(dest)} AS mv_out KEY {key_clause(dest_key)};\n" +
                     (NOSYNC_OUT if nosync else "") +
                     "SELECT sqlcipher_export('mv_out');\nDETACH DATABASE mv_out;\n", src_key, timer)


def vacuum_into(src, dest, timer=False, nosync=False):
    remove_db(dest)
    return sqlcipher(src, ("PRAGMA synchronous=OFF;\n" if nosync else "") + f"VACUUM INTO {sqlq(dest)};\n",
                     None, timer)


def file_facts(path, key):
    """Size, pages, freelist and overflow pages of one SQLite file."""
    out, _, _ = sqlcipher(path, "PRAGMA page_size;\nPRAGMA page_count;\nPRAGMA freelist_count;\n", key)
    vals = [int(x) for x in out.split()]
    facts = {"bytes": os.path.getsize(path), "page_size": vals[0], "pages": vals[1], "freelist": vals[2],
             "overflow_pages": None}
    # dbstat is compiled into Debian's sqlcipher shell; without it the column says n/a.
    cp = subprocess.run(["sqlcipher", "-batch", path],
                        input=(key_pragma(key) + "SELECT name, count(*) FROM dbstat WHERE pagetype='overflow' "
                               "GROUP BY name ORDER BY 2 DESC;\n").encode(), capture_output=True)
    if cp.returncode == 0:
        rows = [line.rsplit("|", 1) for line in cp.stdout.decode(errors="replace").splitlines() if "|" in line]
        facts["overflow_pages"] = sum(int(n) for _, n in rows)
        facts["overflow_by_table"] = {t: int(n) for t, n in rows}
    return facts


# ---------------------------------------------------------------- mailvault

def timev(path):
    """Wall seconds, peak RSS KB and CPU seconds from a `/usr/bin/time -v` file."""
    wall = rss = None
    cpu = 0.0
    for line in open(path, errors="replace"):
        k, _, v = line.strip().rpartition(": ")
        if k.startswith("Elapsed (wall clock) time"):
            p = [float(x) for x in v.split(":")]
            wall = sum(x * 60 ** (len(p) - 1 - j) for j, x in enumerate(p))
        elif k == "Maximum resident set size (kbytes)":
            rss = int(v)
        elif k in ("User time (seconds)", "System time (seconds)"):
            cpu += float(v)
    if wall is None or rss is None:
        die(f"{path}: no GNU time -v figures")
    return wall, rss, cpu


def run_timed(name, cmd, logdir, ok=(0,)):
    """cmd under /usr/bin/time -v; stdout -> logdir/name.out; returns (stdout, wall, rss_kb, cpu, load)."""
    load = loadavg()
    tf, of, ef = (os.path.join(logdir, f"{name}.{x}") for x in ("time", "out", "err"))
    with open(os.path.join(logdir, "commands.txt"), "a") as f:
        f.write(" ".join(cmd) + "\n")
    with open(of, "wb") as out, open(ef, "wb") as err:
        rc = subprocess.run(["/usr/bin/time", "-v", "-o", tf] + cmd, stdout=out, stderr=err).returncode
    if rc not in ok:
        tail = open(ef, errors="replace").read().strip().splitlines()[-3:]
        die(f"{' '.join(cmd)} exited {rc}: {' / '.join(tail)}  [{ef}]")
    wall, rss, cpu = timev(tf)
    return open(of, errors="replace").read(), wall, rss, cpu, load


def stores_of(data_dir):
    return sorted(d for d in glob.glob(os.path.join(data_dir, "stores", "*"))
                  if os.path.isfile(os.path.join(d, "db", "store.sqlite")))


def store_keys(data_dir, store_dir):
    db_dir = os.path.join(store_dir, "db")
    return {w: storedb.file_key(data_dir, db_dir, w) for w, _ in FILES}


# ---------------------------------------------------------------- steps

def step_import(a, res):
    enc = os.path.join(a.work, "enc")
    shutil.rmtree(enc, ignore_errors=True)
    cp = subprocess.run([a.bin, "--data-dir", enc, "init"], capture_output=True)
    if cp.returncode != 0:
        die(f"mailvault init: {cp.stderr.decode(errors='replace').strip()}")
    log(f"warming the page cache with {a.src}")
    warm(a.src)
    log(f"importing {a.src} ({a.format}) into {enc}")
    out, wall, rss, cpu, load = run_timed("import", [a.bin, "--data-dir", enc, "import", a.src, "--archive", "bench",
                                                     "--format", a.format, "--json", "--quiet"], a.logs, ok=(0, 3))
    try:
        rep = json.loads(out)
    except ValueError:
        die(f"import printed no JSON report ({a.logs}/import.out)")
    st = json.loads(subprocess.run([a.bin, "--data-dir", enc, "stats", "--json"], capture_output=True,
                                   check=True).stdout)
    n = rep["imported"]
    res["import"] = {"imported": n, "duplicates": rep.get("duplicates"), "malformed": rep.get("malformed"),
                     "refused": rep.get("refused"), "bytes": rep.get("bytes"), "wall_s": wall, "cpu_s": cpu,
                     "peak_rss_kb": rss, "loadavg_before": load, "msgs_per_s": n / wall if wall else None,
                     "mb_per_s": (rep.get("bytes") or 0) / 1e6 / wall if wall else None, "stats": st}
    log(f"imported {n} messages in {wall:.2f} s ({n / wall:,.0f} msg/s), peak RSS {rss / 1024:.0f} MB")
    if n < 1:
        die("nothing imported")
    return enc


def step_plain_copy(a, res, enc):
    plain = os.path.join(a.work, "plain")
    shutil.rmtree(plain, ignore_errors=True)
    subprocess.run(["cp", "-a", "--reflink=auto", enc, plain], check=True)
    res["decrypt"] = {}
    keys = {}
    for sdir in stores_of(plain):
        sname = os.path.basename(sdir)
        k = store_keys(plain, sdir)
        keys[sname] = k
        for which, rel in FILES:
            path = os.path.join(sdir, rel)
            if not os.path.exists(path):
                continue
            if is_plain(path):
                die(f"{path} is a plain SQLite file in a freshly imported store: is this binary "
                    f"from before SQLCipher (format 3)?")
            tmp = path + ".plain-tmp"
            warm(path)
            _, wall, t = export(path, k[which], tmp, None, timer=True)
            remove_db(path)
            os.rename(tmp, path)
            if not is_plain(path):
                die(f"{path}: sqlcipher_export into KEY '' did not write a plain SQLite file")
            res["decrypt"][f"{sname}/{which}"] = {"real_s": t[0], "cpu_s": t[1] + t[2], "wall_s": wall}
        dbp = os.path.join(sdir, "db", "store.sqlite")
        sqlcipher(dbp, "UPDATE meta SET value='2' WHERE key='format_version';\n")
        log(f"{sname}: store.sqlite and index.sqlite decrypted, format_version set to 2")
    if not keys:
        die(f"no stores under {enc}/stores")
    # The binary must read the plain copy and find exactly what it finds in the encrypted one.
    hits = {}
    for label, d in (("encrypted", enc), ("plain", plain)):
        out, *_ = run_timed(f"verify-{label}", [a.bin, "--data-dir", d, "search-bench", a.queries, "--rounds", "1",
                                                 "--limit", "1000000"], a.logs)
        hits[label] = [(q["query"], q["hits"]) for q in json.loads(out)["queries"]]
    if hits["encrypted"] != hits["plain"]:
        diff = [f"{e[0]!r}: {e[1]} vs {p[1]}" for e, p in zip(hits["encrypted"], hits["plain"]) if e != p]
        die(f"the plain copy does not search like the encrypted store: {'; '.join(diff) or 'different queries'}")
    res["verify_hits"] = [{"query": q, "hits": h} for q, h in hits["encrypted"]]
    log(f"plain copy verified: same hits for all {len(hits['plain'])} queries "
        f"({', '.join(str(h) for _, h in hits['plain'])})")
    return plain, keys


def search_pass(a, label, d, i, rounds):
    warm(d)
    out, wall, rss, cpu, load = run_timed(f"search-r{rounds}-{label}-{i}", [a.bin, "--data-dir", d, "search-bench",
                                                                            a.queries, "--rounds", str(rounds)], a.logs)
    r = json.loads(out)
    r.update({"peak_rss_kb": rss, "wall_s": wall, "loadavg_before": load})
    return r


def step_search(a, res, enc, plain):
    runs = {"encrypted": [], "plain": []}
    first = {"encrypted": [], "plain": []}   # --rounds 1: each query once, SQLite's own page cache cold
    for i in range(a.passes):
        order = [("encrypted", enc), ("plain", plain)]
        if i % 2:
            order.reverse()
        for label, d in order:
            runs[label].append(search_pass(a, label, d, i, a.rounds))
        for label, d in order:
            first[label].append(search_pass(a, label, d, i, 1))
        log(f"search-bench pass {i + 1}/{a.passes}: p50 encrypted {runs['encrypted'][-1]['p50_ms']:.3f} ms, "
            f"plain {runs['plain'][-1]['p50_ms']:.3f} ms")
    labels = []
    if a.mix_json and os.path.exists(a.mix_json):
        labels = [q["label"] for q in json.load(open(a.mix_json))["queries"]]
    rows = []
    nq = len(runs["encrypted"][0]["queries"])
    for k in range(nq):
        row = {"label": labels[k] if k < len(labels) else f"query {k + 1}",
               "query": runs["encrypted"][0]["queries"][k]["query"],
               "hits": runs["encrypted"][0]["queries"][k]["hits"]}
        for lab in ("encrypted", "plain"):
            row[f"{lab}_p50_ms"] = median(r["queries"][k]["p50_ms"] for r in runs[lab])
            row[f"{lab}_p95_ms"] = median(r["queries"][k]["p95_ms"] for r in runs[lab])
            row[f"{lab}_first_ms"] = median(r["queries"][k]["p50_ms"] for r in first[lab])
        row["ratio_first"] = ratio(row["encrypted_first_ms"], row["plain_first_ms"])
        row["ratio_p50"] = ratio(row["encrypted_p50_ms"], row["plain_p50_ms"])
        row["ratio_p95"] = ratio(row["encrypted_p95_ms"], row["plain_p95_ms"])
        rows.append(row)
    overall = {}
    for lab in ("encrypted", "plain"):
        overall[lab] = {"p50_ms": median(r["p50_ms"] for r in runs[lab]),
                        "p95_ms": median(r["p95_ms"] for r in runs[lab]),
                        "peak_rss_kb": max(r["peak_rss_kb"] for r in runs[lab])}
    overall["ratio_p50"] = ratio(overall["encrypted"]["p50_ms"], overall["plain"]["p50_ms"])
    overall["ratio_p95"] = ratio(overall["encrypted"]["p95_ms"], overall["plain"]["p95_ms"])
    rs = [r["ratio_p50"] for r in rows if r["ratio_p50"]]
    overall["geomean_ratio_p50"] = statistics.geometric_mean(rs) if rs else None
    for lab in ("encrypted", "plain"):   # one fresh process running the whole mix once: sum of its queries
        overall[lab]["first_sum_ms"] = median(sum(q["p50_ms"] for q in r["queries"]) for r in first[lab])
    overall["ratio_first_sum"] = ratio(overall["encrypted"]["first_sum_ms"], overall["plain"]["first_sum_ms"])
    rs = [r["ratio_first"] for r in rows if r["ratio_first"]]
    overall["geomean_ratio_first"] = statistics.geometric_mean(rs) if rs else None
    res["search"] = {"rounds": a.rounds, "passes": a.passes, "queries": rows, "overall": overall,
                     "loadavg_before": [r["loadavg_before"] for x in (runs, first) for lab in x for r in x[lab]],
                     "raw": runs, "raw_first": first}


def step_bulk(a, res, plain, keys):
    """Same content written plain and encrypted, and read back whole, from store1's plain files."""
    bulk = os.path.join(a.work, "bulk")
    shutil.rmtree(bulk, ignore_errors=True)
    os.makedirs(bulk)
    sdir = stores_of(plain)[0]
    k = keys[os.path.basename(sdir)]
    res["bulk"] = {"store": os.path.basename(sdir), "rounds": a.bulk_rounds, "files": {}}
    for which, rel in FILES:
        src = os.path.join(sdir, rel)
        if not os.path.exists(src):
            continue
        outs = {"vacuum_into_plain": os.path.join(bulk, f"{which}-vacuum-plain.sqlite"),
                "export_plain": os.path.join(bulk, f"{which}-export-plain.sqlite"),
                "export_encrypted": os.path.join(bulk, f"{which}-export-encrypted.sqlite")}
        writers = {"vacuum_into_plain": lambda d: vacuum_into(src, d, timer=True, nosync=True),
                   "export_plain": lambda d: export(src, None, d, None, timer=True, nosync=True),
                   "export_encrypted": lambda d: export(src, None, d, k[which], timer=True, nosync=True)}
        times = {m: [] for m in writers}
        loads = []
        methods = list(writers)
        for i in range(a.bulk_rounds):
            for m in methods[i % 3:] + methods[:i % 3]:    # rotate which goes first
                warm(src)
                loads.append(loadavg())
                _, wall, t = writers[m](outs[m])
                times[m].append({"real_s": t[0], "cpu_s": t[1] + t[2], "wall_s": wall})
        # A full read of every page: the encrypted copy (each page decrypted, its MAC checked) vs the plain one.
        reads = {"read_encrypted": (outs["export_encrypted"], k[which]), "read_plain": (outs["export_plain"], None)}
        for i in range(a.bulk_rounds):
            for m in (list(reads) if i % 2 == 0 else list(reads)[::-1]):
                path, key = reads[m]
                warm(path)
                loads.append(loadavg())
                out, wall, t = sqlcipher(path, "PRAGMA quick_check;\n", key, timer=True)
                if out.split()[:1] != ["ok"]:
                    die(f"PRAGMA quick_check of {path}: {out.strip()[:200]}")
                times.setdefault(m, []).append({"real_s": t[0], "cpu_s": t[1] + t[2], "wall_s": wall})
        med = {m: {f: median(x[f] for x in v) for f in ("real_s", "cpu_s", "wall_s")} for m, v in times.items()}
        facts = {"as_imported_encrypted": file_facts(os.path.join(a.work, "enc", os.path.relpath(src, plain)),
                                                     k[which]),
                 "decrypted_copy_plain": file_facts(src, None)}
        for m, p in outs.items():
            facts[m] = file_facts(p, k[which] if m == "export_encrypted" else None)
        res["bulk"]["files"][which] = {"source": src, "median": med, "rounds": times, "facts": facts,
                                       "loadavg_before": loads,
                                       "ratio_encrypted_over_vacuum": ratio(med["export_encrypted"]["real_s"],
                                                                            med["vacuum_into_plain"]["real_s"]),
                                       "ratio_encrypted_over_export_plain": ratio(med["export_encrypted"]["real_s"],
                                                                                  med["export_plain"]["real_s"]),
                                       "ratio_read": ratio(med["read_encrypted"]["real_s"],
                                                           med["read_plain"]["real_s"])}
        log(f"{which}: VACUUM INTO plain {med['vacuum_into_plain']['real_s']:.3f} s, export plain "
            f"{med['export_plain']['real_s']:.3f} s, export encrypted {med['export_encrypted']['real_s']:.3f} s")


# ---------------------------------------------------------------- report

def f(x, d=2, unit=""):
    if x is None:
        return "n/a"
    return f"{x:,.{d}f}{unit}"


def fx(x):
    return "n/a" if x is None else f"{x:.2f}×"


def mb(b):
    return None if b is None else b / 1e6


def render(res):
    """(text for stdout, markdown snippet)."""
    T, M = [], []
    m = res["machine"]
    imp = res["import"]
    loads = [imp["loadavg_before"]] + res["search"]["loadavg_before"] + [
        x for v in res["bulk"]["files"].values() for x in v["loadavg_before"]]
    loads = [x for x in loads if x is not None]
    busy = loads and max(loads) > (m["cpus"] or 1) / 2
    head = (f"corpus {res['corpus']}: {imp['imported']:,} messages imported, {f(mb(imp['bytes']), 1)} MB raw; "
            f"{m['cpus']} CPUs; binary {res['bin']}; {res['sqlcipher']}")
    T.append(f"\n== encryption at rest: cost of SQLCipher ({res['when']}) ==\n{head}")
    if busy:
        T.append(f"WARNING: machine busy (load average up to {max(loads):.1f} before timed steps, "
                 f"{m['cpus']} CPUs): timings are noisy, compare ratios with care")

    # 1. import
    st = imp["stats"]["stores"]
    disk = {k: sum((s.get("disk") or {}).get(k, 0) for s in st) for k in ("content", "db", "index")}
    T.append("\n-- 1. import (encrypted, the only way this binary writes) --")
    T.append(f"{'import':24} {'msgs':>8} {'msgs/s':>9} {'MB/s':>7} {'wall s':>8} {'CPU s':>7} {'peak RSS MB':>12}")
    T.append(f"{'mailvault import ' + res['format']:24} {imp['imported']:>8,} {f(imp['msgs_per_s'], 0):>9} "
             f"{f(imp['mb_per_s'], 1):>7} {f(imp['wall_s']):>8} {f(imp['cpu_s']):>7} "
             f"{f(imp['peak_rss_kb'] / 1024, 0):>12}")
    T.append(f"on disk: content {f(mb(disk['content']), 1)} MB, db {f(mb(disk['db']), 1)} MB, "
             f"index {f(mb(disk['index']), 1)} MB (mailvault stats)")
    M.append(f"Import ({res['format']}, encrypted db and index): **{f(imp['msgs_per_s'], 0)} msgs/s**, "
             f"{f(imp['mb_per_s'], 1)} MB/s, {f(imp['wall_s'])} s wall, {f(imp['cpu_s'])} s CPU, "
             f"peak RSS {f(imp['peak_rss_kb'] / 1024, 0)} MB ({imp['imported']:,} messages; "
             f"{imp.get('malformed') or 0} malformed, {imp.get('duplicates') or 0} duplicates). "
             f"On disk: content {f(mb(disk['content']), 1)} MB, db {f(mb(disk['db']), 1)} MB, "
             f"index {f(mb(disk['index']), 1)} MB.")

    # 2. plain copy
    dec = res["decrypt"]
    T.append("\n-- 2. plain copy (sqlcipher_export into KEY '', format_version 2) --")
    T.append("decrypt: " + ", ".join(f"{k} {f(v['real_s'], 3)} s" for k, v in dec.items()) +
             f"; binary finds the same hits in both (limit 1,000,000): "
             f"{', '.join(str(q['hits']) for q in res['verify_hits'])}")

    # 3. search
    s = res["search"]
    o = s["overall"]
    T.append(f"\n-- 3. search latency, mailvault search-bench ({s['passes']} passes × {s['rounds']} rounds per "
             f"data dir, alternating; medians over passes; ms) --")
    T.append(f"{'query class':24} {'query':34} {'hits':>5} {'enc p50':>8} {'plain p50':>9} {'×':>6} "
             f"{'enc p95':>8} {'plain p95':>9} {'×':>6}")
    M.append("")
    M.append(f"Search latency, `mailvault search-bench`, {s['passes']} passes × {s['rounds']} rounds per data "
             f"directory (alternating encrypted/plain, page cache warmed before each), medians over passes, "
             f"ms; × = encrypted ÷ plain:")
    M.append("")
    M.append("| query class | query | enc p50 | plain p50 | × p50 | enc p95 | plain p95 | × p95 |")
    M.append("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in s["queries"]:
        T.append(f"{r['label'][:24]:24} {r['query'][:34]:34} {r['hits']:>5} {f(r['encrypted_p50_ms'], 3):>8} "
                 f"{f(r['plain_p50_ms'], 3):>9} {fx(r['ratio_p50']):>6} {f(r['encrypted_p95_ms'], 3):>8} "
                 f"{f(r['plain_p95_ms'], 3):>9} {fx(r['ratio_p95']):>6}")
        q = r["query"].replace("|", "\\|")
        M.append(f"| {r['label']} | `{q}` | {f(r['encrypted_p50_ms'], 3)} | {f(r['plain_p50_ms'], 3)} | "
                 f"{fx(r['ratio_p50'])} | {f(r['encrypted_p95_ms'], 3)} | {f(r['plain_p95_ms'], 3)} | "
                 f"{fx(r['ratio_p95'])} |")
    all_line = (f"all queries: p50 {f(o['encrypted']['p50_ms'], 3)} vs {f(o['plain']['p50_ms'], 3)} ms "
                f"({fx(o['ratio_p50'])}), p95 {f(o['encrypted']['p95_ms'], 3)} vs {f(o['plain']['p95_ms'], 3)} ms "
                f"({fx(o['ratio_p95'])}); geometric mean of the per-query p50 ratios {fx(o['geomean_ratio_p50'])}; "
                f"search-bench peak RSS {f(o['encrypted']['peak_rss_kb'] / 1024, 0)} MB encrypted, "
                f"{f(o['plain']['peak_rss_kb'] / 1024, 0)} MB plain")
    T.append(all_line)
    M.append(f"| **all queries** (binary's own figure) | | **{f(o['encrypted']['p50_ms'], 3)}** | "
             f"{f(o['plain']['p50_ms'], 3)} | **{fx(o['ratio_p50'])}** | **{f(o['encrypted']['p95_ms'], 3)}** | "
             f"{f(o['plain']['p95_ms'], 3)} | **{fx(o['ratio_p95'])}** |")
    T.append(f"\n-- 3b. first execution of each query in a fresh process (search-bench --rounds 1, {s['passes']} "
             f"passes, medians; SQLite's page cache cold, the OS page cache warm; ms) --")
    T.append(f"{'query class':24} {'enc 1st':>8} {'plain 1st':>9} {'×':>6}")
    F = ["", f"First execution of each query in a fresh process (`search-bench --rounds 1`, {s['passes']} processes "
             f"per data directory, medians, ms): SQLite's page cache is cold, the OS page cache warm, so every page "
             f"a query touches is read and, in the encrypted store, decrypted.", "",
         "| query class | enc 1st | plain 1st | × |", "|---|---:|---:|---:|"]
    for r in s["queries"]:
        T.append(f"{r['label'][:24]:24} {f(r['encrypted_first_ms'], 3):>8} {f(r['plain_first_ms'], 3):>9} "
                 f"{fx(r['ratio_first']):>6}")
        F.append(f"| {r['label']} | {f(r['encrypted_first_ms'], 3)} | {f(r['plain_first_ms'], 3)} | "
                 f"{fx(r['ratio_first'])} |")
    first_line = (f"whole mix once: {f(o['encrypted']['first_sum_ms'], 2)} vs {f(o['plain']['first_sum_ms'], 2)} ms "
                  f"({fx(o['ratio_first_sum'])}); geometric mean of the per-query ratios {fx(o['geomean_ratio_first'])}")
    T.append(first_line)
    F.append(f"| **whole mix, once** | **{f(o['encrypted']['first_sum_ms'], 2)}** | {f(o['plain']['first_sum_ms'], 2)} | "
             f"**{fx(o['ratio_first_sum'])}** |")
    M.append("")
    M.append(f"Geometric mean of the per-query p50 ratios: {fx(o['geomean_ratio_p50'])}. search-bench peak RSS "
             f"{f(o['encrypted']['peak_rss_kb'] / 1024, 0)} MB encrypted, {f(o['plain']['peak_rss_kb'] / 1024, 0)} MB "
             f"plain.")
    M.extend(F)
    M.append("")
    M.append(f"Geometric mean of the per-query first-execution ratios: {fx(o['geomean_ratio_first'])}.")

    # 4. bulk
    b = res["bulk"]
    T.append(f"\n-- 4. bulk write of the same content, sqlcipher shell, from the plain {b['store']} files "
             f"(median of {b['rounds']}; statement time, CPU = user+sys; no fsync, no journal) --")
    T.append(f"{'file':6} {'operation':40} {'s':>8} {'CPU s':>7} {'× VACUUM INTO':>13} {'× same op plain':>15}")
    M.append("")
    M.append(f"Bulk write of the same content with the `sqlcipher` shell, from the decrypted {b['store']} files, "
             f"median of {b['rounds']} (statement time, CPU = user+sys; written without fsync or journal, "
             f"so the disk's flush latency is not in it; × = ÷ the plain write):")
    M.append("")
    M.append("| file | operation | seconds | CPU s | × VACUUM INTO plain | × same operation, plain |")
    M.append("|---|---|---:|---:|---:|---:|")
    ops = (("vacuum_into_plain", "VACUUM INTO plain file"), ("export_plain", "sqlcipher_export -> plain (KEY '')"),
           ("export_encrypted", "sqlcipher_export -> encrypted (raw key)"),
           ("read_plain", "full read, plain (PRAGMA quick_check)"),
           ("read_encrypted", "full read, encrypted (quick_check)"))
    for which, v in b["files"].items():
        med = v["median"]
        for key, name in ops:
            x = med[key]["real_s"]
            if key.startswith("read"):
                c1, c2 = "", fx(ratio(x, med["read_plain"]["real_s"]))
            else:
                c1 = fx(ratio(x, med["vacuum_into_plain"]["real_s"]))
                c2 = "" if key == "vacuum_into_plain" else fx(ratio(x, med["export_plain"]["real_s"]))
            T.append(f"{which:6} {name:40} {f(x, 3):>8} {f(med[key]['cpu_s'], 3):>7} {c1:>13} {c2:>15}")
            M.append(f"| {which} | {name} | {f(x, 3)} | {f(med[key]['cpu_s'], 3)} | {c1} | {c2} |")

    # sizes
    T.append("\n-- 4b. on-disk size (bytes, pages of 4096, overflow pages from dbstat) --")
    T.append(f"{'file':6} {'copy':34} {'MB':>8} {'pages':>8} {'free':>6} {'overflow':>8} {'× plain':>8}")
    M.append("")
    M.append("On-disk size (× = ÷ the VACUUM INTO plain file of the same content):")
    M.append("")
    M.append("| file | copy | MB | pages | freelist | overflow pages | × plain |")
    M.append("|---|---|---:|---:|---:|---:|---:|")
    names = (("as_imported_encrypted", "as imported (encrypted)"), ("decrypted_copy_plain", "decrypted copy (plain)"),
             ("vacuum_into_plain", "VACUUM INTO (plain)"), ("export_plain", "sqlcipher_export (plain)"),
             ("export_encrypted", "sqlcipher_export (encrypted)"))
    for which, v in b["files"].items():
        base = v["facts"]["vacuum_into_plain"]["bytes"]
        for key, name in names:
            fa = v["facts"][key]
            ov = "n/a" if fa["overflow_pages"] is None else f"{fa['overflow_pages']:,}"
            T.append(f"{which:6} {name:34} {f(mb(fa['bytes']), 2):>8} {fa['pages']:>8,} {fa['freelist']:>6,} "
                     f"{ov:>8} {fx(ratio(fa['bytes'], base)):>8}")
            M.append(f"| {which} | {name} | {f(mb(fa['bytes']), 2)} | {fa['pages']:,} | {fa['freelist']:,} | {ov} | "
                     f"{fx(ratio(fa['bytes'], base))} |")
    # Where the encrypted copy has many more overflow pages than the plain one, say so, with the table.
    for which, v in b["files"].items():
        e, p = v["facts"]["export_encrypted"], v["facts"]["export_plain"]
        if e["overflow_pages"] is None or e["overflow_pages"] < 100 or e["overflow_pages"] < 10 * (p["overflow_pages"] or 1):
            continue
        top = max(e["overflow_by_table"], key=e["overflow_by_table"].get)
        note = (f"{which}: the encrypted copy has {e['overflow_pages']:,} overflow pages ({e['overflow_by_table'][top]:,} "
                f"of table {top}) against {p['overflow_pages']:,} in the plain copy of the same content: rows that "
                f"fit a plain {e['page_size']}-byte page do not fit once SQLCipher reserves its per-page IV and MAC "
                f"(80 bytes in SQLCipher 4's defaults), so each spills into an overflow page")
        if top.endswith("_data"):
            note += " (FTS5 writes segment leaves of up to pgsz = 4050 bytes by default)"
        T.append("note: " + note + ".")
        M.append("")
        M.append("Note — " + note + ".")
    M.append("")
    if busy:
        M.append(f"Machine busy: load average up to {max(loads):.1f} before timed steps ({m['cpus']} CPUs).")
    M.append(f"Binary `{res['bin']}`; {res['sqlcipher']}; {m['cpus']} CPUs, Python {m['python']}.")
    M.append("")
    M.append("```sh")
    M.append(res["invocation"])
    M.append("```")
    T.append("")
    return "\n".join(T), "\n".join(M) + "\n"


def main():
    args = sys.argv[1:]
    if not args or args[0] != "run":
        sys.exit(__doc__)

    class A:
        pass
    a = A()
    opts = {"--bin": None, "--src": None, "--format": "emldir", "--queries": None, "--work": None, "--out": None,
            "--corpus": "corpus", "--invocation": "", "--mix-json": None, "--rounds": "20", "--passes": "10",
            "--bulk-rounds": "5"}
    a.keep = False
    i = 1
    while i < len(args):
        if args[i] == "--keep":
            a.keep = True
            i += 1
        elif args[i] in opts and i + 1 < len(args):
            opts[args[i]] = args[i + 1]
            i += 2
        else:
            sys.exit(f"encryption_bench.py: unknown or incomplete argument {args[i]}")
    for k, v in opts.items():
        if v is None:
            sys.exit(f"encryption_bench.py: {k} is required")
        setattr(a, k[2:].replace("-", "_"), v)
    a.rounds, a.passes, a.bulk_rounds = int(a.rounds), int(a.passes), int(a.bulk_rounds)
    a.logs = os.path.join(a.work, "logs")
    os.makedirs(a.logs, exist_ok=True)
    if shutil.which("sqlcipher") is None:
        die("the sqlcipher shell is needed (Debian package sqlcipher)")
    ver = subprocess.run(["sqlcipher", "-version"], capture_output=True, text=True).stdout.strip()
    m = re.search(r"\(SQLCipher ([^)]*)\)", ver)
    res = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "corpus": a.corpus, "format": a.format,
           "source": a.src, "bin": a.bin, "invocation": a.invocation,
           "sqlcipher": f"sqlcipher shell {ver.split()[0] if ver else '?'} (SQLCipher {m.group(1) if m else '?'})",
           "machine": {"cpus": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version()}}

    enc = step_import(a, res)
    plain, keys = step_plain_copy(a, res, enc)
    log(f"search-bench: {a.passes} passes × {a.rounds} rounds on each data directory")
    step_search(a, res, enc, plain)
    log(f"bulk writes and full reads, {a.bulk_rounds} rounds each")
    step_bulk(a, res, plain, keys)
    # The binary must have left the plain copy plain (format 2 is opened read-only).
    for sdir in stores_of(plain):
        for which, rel in FILES:
            p = os.path.join(sdir, rel)
            if os.path.exists(p) and not is_plain(p):
                log(f"warning: {p} is no longer a plain SQLite file after the searches")

    text, md = render(res)
    print(text)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "results.json"), "w") as fh:
        json.dump(res, fh, indent=1)
    snip = os.path.join(a.out, "RESULTS-snippet.md")
    with open(snip, "w") as fh:
        fh.write(f"## Encryption at rest: SQLCipher cost ({res['corpus']}, {res['when'][:10]})\n\n")
        fh.write(md)
    print(f"machine-readable: {os.path.join(a.out, 'results.json')}\nmarkdown for RESULTS.md: {snip}")
    if not a.keep:
        for d in ("enc", "plain", "bulk"):
            shutil.rmtree(os.path.join(a.work, d), ignore_errors=True)


if __name__ == "__main__":
    main()
