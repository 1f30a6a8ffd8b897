#!/usr/bin/env python3
"""Helper of bench/run_profile_rerun.sh (python3 stdlib only): the
Administration API calls of the benchmark, over HTTPS as admin.

  profile_rerun.py port                          a free loopback port
  profile_rerun.py create URL CERT PW PATH ARCHIVE
        CreateProfile: a FileSystem profile over PATH into ARCHIVE; prints its id
  profile_rerun.py run URL CERT PW ID [SERVER_PID]
        RunProfile ID, followed by get-status long poll to its end; prints one
        JSON line {"seconds": wall time from invoke to the final status,
        "result": RunProfile's result, "cpu": the server's CPU seconds during
        the run, with SERVER_PID}; exits 1 if the run did not succeed
  profile_rerun.py report OUT ROUNDS RERUNS TARGET INVOCATION
        the figures from OUT/run-R-first.json, OUT/run-R-again-N.json and
        OUT/run-one-N.json: msg/s of every run, the ratio of the median re-run
        to the median first run, a run's fixed cost, the target line PASS/FAIL"""
import base64
import json
import os
import socket
import ssl
import statistics
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

BOM = b"\xef\xbb\xbf"


def post(url, cert, pw, path, form):
    req = urllib.request.Request(url + path, data=urllib.parse.urlencode(form).encode(), method="POST")
    req.add_header("Authorization", "Basic " + base64.b64encode(("admin:" + pw).encode()).decode())
    req.add_header("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
    try:
        with urllib.request.urlopen(req, context=ssl.create_default_context(cafile=cert), timeout=600) as r:
            raw = r.read()
    except urllib.error.HTTPError as e:
        sys.exit("%s %s: HTTP %d: %r" % (path, form, e.code, e.read()[:300]))
    return json.loads(raw[3:] if raw.startswith(BOM) else raw)


def call(url, cert, pw, function, form):
    """invoke, then get-status until the call is no longer running."""
    env = post(url, cert, pw, "/api/invoke/" + function, form)
    while env["statusCode"] == "running":
        env = post(url, cert, pw, "/api/get-status", {"token": env["token"],
                                                      "lastKnownStatusVersion": env["statusVersion"],
                                                      "millisecondsTimeout": 5000})
    if env["statusCode"] != "succeeded":
        sys.exit("%s: %s: %s\n%s" % (function, env["statusCode"], env.get("error"), env.get("logOutput")))
    return env["result"]


def server_cpu(pid):
    """CPU seconds (user + system) the server process has used so far."""
    if not pid:
        return 0.0
    with open("/proc/%s/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def messages(result):
    """What a run went through: new, already archived and refused messages
    (archived counts the malformed ones too)."""
    return result["archived"] + result["alreadyArchived"] + result["refused"]


def report(out, rounds, reruns, target, invocation):
    load = lambda name: json.load(open(os.path.join(out, name)))
    rate = lambda r: messages(r["result"]) / r["seconds"]
    firsts = [load("run-%d-first.json" % k) for k in range(1, rounds + 1)]
    agains = [[load("run-%d-again-%d.json" % (k, n)) for n in range(1, reruns + 1)] for k in range(1, rounds + 1)]
    print()
    print("| round | run | messages | new | already archived | seconds | msg/s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for k in range(rounds):
        for label, r in [("first run", firsts[k])] + [("re-run %d" % (n + 1), a) for n, a in enumerate(agains[k])]:
            res = r["result"]
            print("| %d | %s | %d | %d | %d | %.3f | %.0f |" % (k + 1, label, messages(res), res["archived"],
                                                               res["alreadyArchived"], r["seconds"], rate(r)))
    first = statistics.median(rate(r) for r in firsts)
    again = statistics.median(rate(a) for row in agains for a in row)
    ratio = again / first
    print()
    if all("cpu" in r for r in firsts + [a for row in agains for a in row]):
        cpu_first = statistics.median(r["cpu"] for r in firsts)
        cpu_again = statistics.median(a["cpu"] for row in agains for a in row)
        print("server CPU (user+system, all threads): first run %.2f s, re-run %.3f s (medians): %.1f× less"
              % (cpu_first, cpu_again, cpu_first / cpu_again if cpu_again else float("inf")))
    ones = sorted(os.path.join(out, f) for f in os.listdir(out) if f.startswith("run-one-"))
    if ones:
        fixed = statistics.median(json.load(open(f))["seconds"] for f in ones)
        n = messages(agains[0][0]["result"])
        per_msg = statistics.median(a["seconds"] for row in agains for a in row) - fixed
        print("a run's fixed cost (a one-message profile run again, median of %d): %.1f ms; a re-run without it: "
              "%.1f µs per message" % (len(ones), fixed * 1000, per_msg / n * 1e6))
    print("first run %.0f msg/s (median of %d), re-run %.0f msg/s (median of %d): %.1f× faster"
          % (first, rounds, again, rounds * reruns, ratio))
    new_in_rerun = any(a["result"]["archived"] for row in agains for a in row)
    ok = ratio >= target and not new_in_rerun
    print("target: re-run at least %g× faster than the first run: %s" % (target, "PASS" if ok else "FAIL"))
    if new_in_rerun:
        print("a re-run archived new messages: the re-runs are not re-runs")
    print()
    print("```sh")
    print(invocation)
    print("```")
    return 0 if ok else 1


def main(argv):
    mode, args = argv[1], argv[2:]
    if mode == "port":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            print(s.getsockname()[1])
    elif mode == "create":
        url, cert, pw, path, archive = args
        props = {"name": "rerun bench", "type": "I", "connector": "FileSystem",
                 "details": {"path": path, "targetArchive": archive}}
        print(call(url, cert, pw, "CreateProfile", {"properties": json.dumps(props), "raw": "true"})["id"])
    elif mode == "run":
        url, cert, pw, pid = args[:4]
        server = args[4] if len(args) > 4 else None
        cpu0 = server_cpu(server)
        t0 = time.monotonic()
        result = call(url, cert, pw, "RunProfile", {"id": pid})
        seconds = time.monotonic() - t0
        out = {"seconds": seconds, "result": result}
        if server:
            out["cpu"] = server_cpu(server) - cpu0
        print(json.dumps(out))
    elif mode == "report":
        return report(args[0], int(args[1]), int(args[2]), float(args[3]), args[4])
    else:
        sys.exit("profile_rerun.py: unknown mode %r" % mode)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
