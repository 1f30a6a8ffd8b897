#!/usr/bin/env python3
"""Helpers for bench/run_pst.sh (python3 stdlib only).  Not a benchmark by itself.

  pst_bench.py fetch CACHE_DIR
        Makes sure CACHE_DIR/enron.pst is the Enron PST that the npm package
        pst-extractor ships (example/testdata/enron.pst, 13,984,768 bytes,
        SHA-256 pinned below): reuses a copy whose checksum matches, else runs
        `npm pack pst-extractor@VERSION` in a temporary directory and takes the
        file out of the tarball.  Prints the path.
  pst_bench.py timev FILE
        Parses `/usr/bin/time -v` output: prints `WALL_S PEAK_RSS_KB CPU_S`.
  pst_bench.py run OUT_JSON -- CMD...
        Runs CMD (here: /usr/bin/time -v ... mailvault ...) as the child of a
        child subreaper, waits for CMD, then for any descendant that outlived
        its parent, and writes wall seconds (until CMD exits), CPU seconds and
        the largest peak RSS of the whole process tree.  Exits with CMD's status.
  pst_bench.py round OUT_JSON KEY=VALUE...
        Writes one timed step's figures as JSON (values that parse as JSON are
        kept as such; time_file=F is parsed as GNU time -v output, tree_file=F
        as `run` output, whose wall and CPU seconds replace GNU time's,
        import_json=F as a `mailvault import --json` report).
  pst_bench.py report WORK_DIR
        Reads WORK_DIR/steps/*.json and WORK_DIR/run.json, prints the table,
        the ratio, a Markdown table for RESULTS.md and writes
        WORK_DIR/../results.json.
"""
import hashlib
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

PKG = "pst-extractor@1.12.0"
MEMBER = "package/example/testdata/enron.pst"
SHA256 = "6152489de3472be6f1f840935d34b6dbf5f62b025dd015929ea9cf66eb5a5b46"
SIZE = 13984768


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch(args):
    cache = args[0]
    os.makedirs(cache, exist_ok=True)
    dest = os.path.join(cache, "enron.pst")
    if os.path.isfile(dest) and os.path.getsize(dest) == SIZE and _sha256(dest) == SHA256:
        print(dest)
        return
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        env = dict(os.environ, npm_config_update_notifier="false")
        try:
            subprocess.run(["npm", "pack", "--silent", PKG], cwd=tmp, check=True,
                           stdout=subprocess.DEVNULL, env=env)
        except FileNotFoundError:
            sys.exit(f"npm is needed to fetch {PKG} once (Debian package npm), or put the file "
                     f"(SHA-256 {SHA256}) at {dest}")
        except subprocess.CalledProcessError as e:
            sys.exit(f"npm pack {PKG} failed (exit {e.returncode})")
        tgz = [f for f in os.listdir(tmp) if f.endswith(".tgz")]
        if not tgz:
            sys.exit(f"npm pack {PKG} left no tarball")
        with tarfile.open(os.path.join(tmp, tgz[0])) as tar:
            src = tar.extractfile(MEMBER)
            if src is None:
                sys.exit(f"{PKG} has no {MEMBER}")
            part = os.path.join(tmp, "enron.pst")
            with open(part, "wb") as f:
                while True:
                    block = src.read(1 << 20)
                    if not block:
                        break
                    f.write(block)
        got = _sha256(part)
        if got != SHA256:
            sys.exit(f"{PKG}:{MEMBER} has SHA-256 {got}, expected {SHA256}")
        os.replace(part, dest)
    print(dest)


def _timev(path):
    wall = rss = None
    cpu = 0.0
    with open(path) as f:
        for line in f:
            k, _, v = line.strip().rpartition(": ")
            if k.startswith("Elapsed (wall clock) time"):
                parts = [float(x) for x in v.split(":")]
                wall = 0.0
                for p in parts:
                    wall = wall * 60 + p
            elif k == "Maximum resident set size (kbytes)":
                rss = int(v)
            elif k in ("User time (seconds)", "System time (seconds)"):
                cpu += float(v)
    if wall is None:
        raise ValueError(f"{path}: no GNU time -v figures")
    return wall, rss, cpu


def timev(args):
    wall, rss, cpu = _timev(args[0])
    print(f"{wall:.3f} {rss if rss is not None else 0} {cpu:.2f}")


def run(args):
    """run OUT_JSON -- CMD...: runs CMD as a child subreaper's child, so that descendants
    which outlive their parent (an orphaned worker) are reaped here and their CPU
    counted.  Writes wall seconds (until CMD itself exits), CPU seconds and the largest
    peak RSS of the whole process tree; exits with CMD's status."""
    import ctypes
    import resource
    out, cmd = args[0], args[args.index("--") + 1:]
    libc = ctypes.CDLL(None, use_errno=True)
    subreaper = libc.prctl(36, 1, 0, 0, 0) == 0          # PR_SET_CHILD_SUBREAPER
    # What this process's children used before: a python3 that is a shim (pyenv)
    # ran commands before exec'ing Python, and their use stays in the counters.
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(cmd[0], cmd)
        finally:
            os._exit(127)
    _, status = os.waitpid(pid, 0)
    wall = time.monotonic() - t0
    # descendants still running (reparented to us): wait up to 60 s for them
    left = 0
    deadline = time.monotonic() + 60
    while True:
        try:
            p, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if p == 0:
            if time.monotonic() > deadline:
                left = 1
                break
            time.sleep(0.005)
    tail = time.monotonic() - t0 - wall
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(out, "w") as f:
        json.dump({"wall_s": wall,
                   "cpu_tree_s": ru.ru_utime + ru.ru_stime - ru0.ru_utime - ru0.ru_stime,
                   # the largest process of the tree (or of what ran before, see ru0)
                   "peak_rss_tree_kb": ru.ru_maxrss, "subreaper": subreaper,
                   "orphans_reaped_after_s": tail, "orphans_left": left}, f)
    sys.exit(os.waitstatus_to_exitcode(status))


def round_(args):
    out, kv = args[0], args[1:]
    r = {}
    for item in kv:
        k, _, v = item.partition("=")
        if k == "time_file":
            try:
                r["wall_s"], r["peak_rss_kb"], r["cpu_s"] = _timev(v)
            except (OSError, ValueError) as e:
                r["time_error"] = str(e)
            continue
        if k == "tree_file":
            try:
                t = json.load(open(v))
                r["wall_s_run"] = t["wall_s"]
                r["cpu_tree_s"] = t["cpu_tree_s"]
                r["peak_rss_tree_kb"] = t["peak_rss_tree_kb"]
                r["orphans_reaped_after_s"] = t.get("orphans_reaped_after_s")
            except (OSError, ValueError, KeyError) as e:
                r["tree_error"] = str(e)
            continue
        if k == "import_json":
            try:
                j = json.load(open(v))
                r["import"] = {x: j.get(x) for x in ("imported", "duplicates", "malformed", "refused",
                                                     "bytes", "seconds", "skipped",
                                                     "unreadableAttachments")}
            except (OSError, ValueError) as e:
                r["import_error"] = str(e)
            continue
        try:
            r[k] = json.loads(v)
        except ValueError:
            r[k] = v
    # GNU time -v gives wall time in 10 ms steps, and its CPU time counts only the
    # descendants that their parents waited for: the subreaper's figures replace them.
    if "wall_s_run" in r:
        r["wall_s_gnu_time"] = r.get("wall_s")
        r["wall_s"] = r.pop("wall_s_run")
    if "cpu_tree_s" in r:
        r["cpu_s_gnu_time"] = r.get("cpu_s")
        r["cpu_s"] = r["cpu_tree_s"]
    with open(out, "w") as f:
        json.dump(r, f, indent=1)


# ----------------------------------------------------------------------------- report

def _fmt(x, digits=0, unit=""):
    if x is None:
        return "n/a"
    return f"{x:,.{digits}f}{unit}"


def _median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def _summary(steps, count_key):
    """Median figures over the rounds of one tool."""
    walls = [s.get("wall_s") for s in steps]
    rates = [s[count_key] / s["wall_s"] for s in steps if s.get("wall_s") and s.get(count_key)]
    rss = [s.get("peak_rss_kb") for s in steps if s.get("peak_rss_kb")]
    return {"rounds": len(steps), "wall_s_median": _median(walls),
            "wall_s_min": min((w for w in walls if w), default=None),
            "wall_s_max": max((w for w in walls if w), default=None),
            "msgs_per_s_median": _median(rates),
            "msgs_per_s_min": min(rates, default=None), "msgs_per_s_max": max(rates, default=None),
            "cpu_s_median": _median([s.get("cpu_s") for s in steps]),
            "peak_rss_kb_median": _median(rss), "peak_rss_kb_max": max(rss, default=None),
            "count": _median([s.get(count_key) for s in steps]),
            "loadavg_max": max((s.get("loadavg_before") or 0 for s in steps), default=None),
            "exit_codes": sorted({s.get("rc") for s in steps if s.get("rc") is not None})}


def report(args):
    work = args[0]
    run = json.load(open(os.path.join(work, "run.json")))
    steps = {}
    sd = os.path.join(work, "steps")
    for name in sorted(os.listdir(sd)):
        if name.endswith(".json"):
            s = json.load(open(os.path.join(sd, name)))
            steps.setdefault(s["tool"], []).append(s)
    for s in steps.get("mailvault", []):
        s["messages"] = (s.get("import") or {}).get("imported")
    mv = _summary(steps.get("mailvault", []), "messages")
    rp = _summary(steps.get("readpst", []), "messages")
    for s in steps.get("mailvault-emldir", []):
        s["messages"] = (s.get("import") or {}).get("imported")
    floor = _summary(steps.get("mailvault-floor", []), "messages") if steps.get("mailvault-floor") else None
    eml = _summary(steps.get("mailvault-emldir", []), "messages") if steps.get("mailvault-emldir") else None
    cpu_ratio = (rp["cpu_s_median"] / mv["cpu_s_median"]
                 if mv["cpu_s_median"] and rp["cpu_s_median"] else None)
    pst_mb = run["pst_bytes"] / 1e6
    ratio = (mv["msgs_per_s_median"] / rp["msgs_per_s_median"]
             if mv["msgs_per_s_median"] and rp["msgs_per_s_median"] else None)
    mem = None
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    res = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "machine": {"cpus": os.cpu_count(), "mem_bytes": mem, "kernel": platform.release()},
           "run": run, "mailvault": mv, "readpst": rp, "mailvault_floor": floor,
           "mailvault_emldir_of_readpst_output": eml, "cpu_ratio_readpst_over_mailvault": cpu_ratio,
           "ratio_mailvault_over_readpst_msgs_per_s": ratio,
           "target": "mailvault msgs/s >= readpst msgs/s (ratio >= 1), while compressing, "
                     "encrypting and indexing", "steps": steps}
    with open(os.path.join(os.path.dirname(work.rstrip("/")), "results.json"), "w") as f:
        json.dump(res, f, indent=1)

    imp0 = (steps.get("mailvault") or [{}])[0].get("import") or {}
    print(f"\n== PST import: {os.path.basename(run['pst'])} ({_fmt(pst_mb, 1)} MB, "
          f"{_fmt(mv['count'])} messages), {run['rounds']} rounds, median ==")
    print(f"{'':44} {'msgs/s':>8} {'PST MB/s':>9} {'wall s':>7} {'CPU s':>6} "
          f"{'peak RSS MB':>12} {'wall s min–max':>15}")
    rows = [("mailvault import (fresh data dir per round)", mv),
            ("readpst -e (EML files, fresh dir per round)", rp)]
    for label, s in rows:
        w = s["wall_s_median"]
        print(f"{label:44} {_fmt(s['msgs_per_s_median']):>8} {_fmt(w and pst_mb / w, 1):>9} "
              f"{_fmt(w, 3):>7} {_fmt(s['cpu_s_median'], 2):>6} "
              f"{_fmt(s['peak_rss_kb_max'] and s['peak_rss_kb_max'] / 1024):>12} "
              f"{_fmt(s['wall_s_min'], 3) + '–' + _fmt(s['wall_s_max'], 3):>15}")
    if eml:
        w = eml["wall_s_median"]
        label = "mailvault import of readpst's EML files"
        print(f"{label:44} {_fmt(eml['msgs_per_s_median']):>8} {'':>9} "
              f"{_fmt(w, 3):>7} {_fmt(eml['cpu_s_median'], 2):>6} "
              f"{_fmt(eml['peak_rss_kb_max'] and eml['peak_rss_kb_max'] / 1024):>12} "
              f"{_fmt(eml['wall_s_min'], 3) + '–' + _fmt(eml['wall_s_max'], 3):>15}")
    if floor:
        print(f"{'mailvault import of 1 small EML (floor)':44} {'':>8} {'':>9} "
              f"{_fmt(floor['wall_s_median'], 3):>7} {_fmt(floor['cpu_s_median'], 2):>6} "
              f"{_fmt(floor['peak_rss_kb_max'] and floor['peak_rss_kb_max'] / 1024):>12}")
    print(f"ratio mailvault/readpst in msgs/s: {_fmt(ratio, 2, 'x')} (target >= 1.00x: "
          f"{'met' if ratio and ratio >= 1 else 'MISSED' if ratio else 'n/a'}); in CPU seconds "
          f"readpst/mailvault {_fmt(cpu_ratio, 2, 'x')} (steadier than wall time on a busy machine)")
    print(f"mailvault: {_fmt(imp0.get('imported'))} imported ({_fmt(imp0.get('malformed'))} of them "
          f"counted 'archived but malformed'), {_fmt(imp0.get('bytes') and imp0['bytes'] / 1e6, 1)} MB "
          f"of RFC 5322 written and stored compressed + encrypted + indexed; skipped (not mail) "
          f"{json.dumps(imp0.get('skipped') or {})}; attachments not searchable "
          f"{imp0.get('unreadableAttachments', 'n/a')}; "
          f"on disk {_fmt(run.get('mv_disk_bytes') and run['mv_disk_bytes'] / 1e6, 1)} MB")
    rpn = [s.get("messages") for s in steps.get("readpst", []) if s.get("messages") is not None]
    if rpn and min(rpn) != max(rpn):
        print(f"NOTE: readpst wrote {min(rpn)}–{max(rpn)} .eml files per round from the same PST "
              f"(per round: {', '.join(map(str, rpn))}); its rate counts the files it wrote")
    print(f"readpst: {_fmt(rp['count'])} .eml files (median), {_fmt(run.get('readpst_bytes') and run['readpst_bytes'] / 1e6, 1)} MB "
          f"written (plain files, no index)")
    if run.get("search_check"):
        print(f"check: {run['search_check']}")
    cpus = os.cpu_count() or 1
    busy = max(mv["loadavg_max"] or 0, rp["loadavg_max"] or 0)
    if busy > 0.5 * cpus:
        print(f"WARNING: machine busy (load average up to {busy:.1f} before timed steps, "
              f"{cpus} CPUs): timings are noisy, compare the ratio with care")
    else:
        print(f"load average before timed steps: up to {busy:.1f} ({cpus} CPUs)")
    if mv["exit_codes"] not in ([], [0]) or rp["exit_codes"] not in ([], [0]):
        print(f"exit codes: mailvault {mv['exit_codes']}, readpst {rp['exit_codes']}")

    print("\nMarkdown for bench/RESULTS.md:\n")
    print("| tool | messages | msgs/s (median) | PST MB/s | wall s (median, min–max) | CPU s | peak RSS |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, s in (("mailvault import (compress + encrypt + index)", mv),
                     ("readpst -e (EML files)", rp)):
        w = s["wall_s_median"]
        print(f"| {label} | {_fmt(s['count'])} | {_fmt(s['msgs_per_s_median'])} | "
              f"{_fmt(w and pst_mb / w, 1)} | {_fmt(w, 3)} ({_fmt(s['wall_s_min'], 3)}–"
              f"{_fmt(s['wall_s_max'], 3)}) | {_fmt(s['cpu_s_median'], 2)} | "
              f"{_fmt(s['peak_rss_kb_max'] and s['peak_rss_kb_max'] / 1024)} MB |")
    if eml:
        w = eml["wall_s_median"]
        print(f"| mailvault import of readpst's EML files (same messages, no PST reader) | {_fmt(eml['count'])} | "
              f"{_fmt(eml['msgs_per_s_median'])} | | {_fmt(w, 3)} ({_fmt(eml['wall_s_min'], 3)}–"
              f"{_fmt(eml['wall_s_max'], 3)}) | {_fmt(eml['cpu_s_median'], 2)} | "
              f"{_fmt(eml['peak_rss_kb_max'] and eml['peak_rss_kb_max'] / 1024)} MB |")
    if floor:
        print(f"| mailvault import of one small EML (process floor) | 1 | | | "
              f"{_fmt(floor['wall_s_median'], 3)} | {_fmt(floor['cpu_s_median'], 2)} | "
              f"{_fmt(floor['peak_rss_kb_max'] and floor['peak_rss_kb_max'] / 1024)} MB |")
    print(f"\nRatio mailvault/readpst: **{_fmt(ratio, 2, '×')}** in msgs/s (target ≥ 1×); "
          f"CPU seconds readpst/mailvault {_fmt(cpu_ratio, 2, '×')}.")
    print(f"\nmachine-readable: {os.path.join(os.path.dirname(work.rstrip('/')), 'results.json')}")


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    fn = {"fetch": fetch, "timev": timev, "run": run, "round": round_, "report": report}.get(sys.argv[1])
    if fn is None:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    fn(sys.argv[2:])


if __name__ == "__main__":
    main()
