#!/usr/bin/env python3
"""Server CPU per whole-folder GetMessages, for two builds in the same run.

wrk's requests/s on this 2-core machine move with whatever else runs (wrk
itself shares the cores); the server's own CPU time per call does not.  This
imports the SpamAssassin corpus once (Maildir, into alice/Inbox), then for
each binary in turn, twice, starts `mailvault serve` on the same data
directory, makes N GetMessages calls of the whole Inbox over one keep-alive
TLS connection, and reads the server's user+system CPU from /proc before and
after.  Every answer is checked (succeeded, every message listed).  Prints
CPU ms and wall ms per call and the ratio of the first binary's CPU to the
second's.

usage: bench/api_cpu.py --before BIN --after BIN [--calls N] [--corpus DIR]
  --corpus  a materialised SpamAssassin corpus (default ~/.cache/mailvault-corpus/spamassassin)"""

import argparse
import base64
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "system"))
import mvtest  # noqa: E402
import mvserver  # noqa: E402
from benchlib import proc_stat_fields  # noqa: E402


def cpu_seconds(pid):
    fields = proc_stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(binary, data_dir, password, calls, expected):
    mvtest.MAILVAULT_BIN = mvserver.MAILVAULT_BIN = binary
    with mvserver.MvServer(data_dir, password=password) as srv:
        port = int(srv.url.rsplit(":", 1)[1].strip("/"))
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=srv.ssl_context())
        headers = {"Authorization": "Basic " + base64.b64encode(("admin:" + password).encode()).decode(),
                   "Content-Type": "application/x-www-form-urlencoded"}
        body = urllib.parse.urlencode({"folder": "alice/Inbox"})

        def call():
            conn.request("POST", "/api/invoke/GetMessages", body, headers)
            raw = conn.getresponse().read()
            env = json.loads(raw[3:] if raw.startswith(b"\xef\xbb\xbf") else raw)
            assert env["statusCode"] == "succeeded" and len(env["result"]) == expected, env.get("error")

        for _ in range(3):
            call()
        cpu0, wall0 = cpu_seconds(srv.proc.pid), time.perf_counter()
        for _ in range(calls):
            call()
        cpu = cpu_seconds(srv.proc.pid) - cpu0
        wall = time.perf_counter() - wall0
        conn.close()
    return cpu / calls * 1000, wall / calls * 1000


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", required=True)
    ap.add_argument("--calls", type=int, default=40)
    ap.add_argument("--corpus", default=os.path.expanduser("~/.cache/mailvault-corpus/spamassassin"))
    a = ap.parse_args()
    maildir = os.path.join(a.corpus, "maildir")
    if not os.path.isdir(maildir):
        sys.exit("api_cpu.py: no Maildir at %s (materialise it with ../shared/corpus/spamassassin %s)"
                 % (maildir, a.corpus))
    with tempfile.TemporaryDirectory(prefix="mv-api-cpu-") as tmp:
        data = os.path.join(tmp, "data")
        mvtest.MAILVAULT_BIN = mvserver.MAILVAULT_BIN = a.after
        password = mvserver.init_with_admin(data)
        cp = subprocess.run([a.after, "--data-dir", data, "import", "--archive", "alice", "--json", "--quiet",
                             maildir], capture_output=True, text=True, check=True)
        imported = json.loads(cp.stdout)["imported"]
        results = {a.before: [], a.after: []}
        for _ in range(2):
            for binary in (a.before, a.after):
                results[binary].append(measure(binary, data, password, a.calls, imported))
        print("whole-Inbox GetMessages (%d messages), %d calls per round, one keep-alive TLS connection"
              % (imported, a.calls))
        for binary, rounds in results.items():
            print("  %-40s CPU ms/call %s   wall ms/call %s" % (
                binary, " ".join("%6.1f" % r[0] for r in rounds), " ".join("%6.1f" % r[1] for r in rounds)))
        before = min(r[0] for r in results[a.before])
        after = min(r[0] for r in results[a.after])
        print("server CPU per call, best round: before %.1f ms, after %.1f ms: %.2fx less"
              % (before, after, before / after))


if __name__ == "__main__":
    main()
