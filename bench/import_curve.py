#!/usr/bin/env python3
"""An import's curve read from the import itself: `mailvault --debug import`
prints one line per committed batch ("batch of N: plan .., append+fsync ..,
rows+commit .., index .. ms"), so the committed count over time needs no
second process on the store (bench/run_1m.sh samples `mailvault stats`
beside the import, which opens the store every few seconds).

Prints msg/s per STEP messages, the longest gaps between two batches (the
committer waiting: for the index writer, or letting the write lock go), the
batch timings summed per STEP, and the import's CPU (user + system of all
its threads and its extraction workers, from the kernel's account of a
reaped child).

usage: bench/import_curve.py BIN DATA_DIR MAILDIR [--step N] [--json OUT]
DATA_DIR must not exist: it is made with `mailvault init`."""

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import threading
import time

BATCH = re.compile(rb"batch of (\d+): plan (\d+) ms, append\+fsync (\d+) ms, rows\+commit (\d+) ms, index (\d+) ms")
COLUMNS = ("plan", "append+fsync", "rows+commit", "index")


def children_cpu_s():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(binary, data_dir, maildir):
    if os.path.exists(data_dir):
        sys.exit("import_curve.py: %s exists; give a new data directory" % data_dir)
    subprocess.run([binary, "--data-dir", data_dir, "init"], capture_output=True, check=True)
    cpu0 = children_cpu_s()
    t0 = time.monotonic()
    p = subprocess.Popen([binary, "--debug", "--data-dir", data_dir, "import", maildir, "--archive", "bench",
                          "--format", "maildir", "--json", "--quiet"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    batches = []
    count = 0

    def read():
        nonlocal count
        for line in p.stderr:
            m = BATCH.search(line)
            if m:
                count += int(m.group(1))
                batches.append([time.monotonic() - t0, count] + [int(x) for x in m.groups()[1:]])

    reader = threading.Thread(target=read)
    reader.start()
    p.wait()
    wall = time.monotonic() - t0
    reader.join()
    return {"wall_s": wall, "exit": p.returncode, "batches": batches, "cpu_s": children_cpu_s() - cpu0}


def report(r, step):
    b = r["batches"]
    print("import: exit %d, %d messages in %.1f s (%.0f msg/s)" % (
        r["exit"], b[-1][1] if b else 0, r["wall_s"], (b[-1][1] / r["wall_s"]) if b else 0))
    print("CPU (user+system): %.1f s, %.2f cores" % (r["cpu_s"], r["cpu_s"] / r["wall_s"]))
    prev_t, prev_n, rates = 0.0, 0, []
    for t, n, *_ in b:
        if n // step > prev_n // step or n == b[-1][1]:
            if n - prev_n >= step // 2:
                rates.append((n, (n - prev_n) / (t - prev_t)))
            prev_t, prev_n = t, n
    print("msg/s per %d: %s" % (step, " ".join("%.0f" % x for _, x in rates)))
    if len(rates) > 1:
        print("last / first: %.0f%%" % (100 * rates[-1][1] / rates[0][1]))
    gaps = sorted(((b[i][0] - b[i - 1][0], b[i][0]) for i in range(1, len(b))), reverse=True)[:5]
    print("longest gaps between batches: %s" % ", ".join("%.1f s at %.0f s" % g for g in gaps))
    sums = {}
    for _, n, *ms in b:
        acc = sums.setdefault((n - 1) // step, [0] * 4)
        for i, v in enumerate(ms):
            acc[i] += v
    for k in sorted(sums):
        print("  %7d-: %s" % (k * step, ", ".join("%s %.1f s" % (COLUMNS[i], sums[k][i] / 1000) for i in range(4))))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("binary")
    ap.add_argument("data_dir")
    ap.add_argument("maildir")
    ap.add_argument("--step", type=int, default=100000)
    ap.add_argument("--json")
    a = ap.parse_args()
    r = run(a.binary, a.data_dir, a.maildir)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(r, f)
    report(r, a.step)
    return 0 if r["exit"] in (0, 3) else 1


if __name__ == "__main__":
    sys.exit(main())
