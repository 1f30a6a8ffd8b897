#!/usr/bin/env python3
"""Helper of bench/run_profile_rerun.sh (python3 stdlib only): the
Administration API calls of the benchmark, over HTTPS as admin.

  profile_rerun.py port                          a free loopback port
  profile_rerun.py create URL CERT PW PATH ARCHIVE
        CreateProfile: a FileSystem profile over PATH into ARCHIVE; prints its id
  profile_rerun.py run URL CERT PW ID
        RunProfile ID, followed by get-status long poll to its end; prints one
        JSON line {"seconds": wall time from invoke to the final status,
        "result": RunProfile's result}; exits 1 if the run did not succeed
  profile_rerun.py report FIRST_JSON RERUN_JSON... TARGET INVOCATION
        the figures: msg/s of the first run and of each re-run, the ratio of
        the median re-run to the first run, and the target line PASS/FAIL"""
import base64
import json
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


def messages(result):
    """What a run went through: new, already archived and refused messages
    (archived counts the malformed ones too)."""
    return result["archived"] + result["alreadyArchived"] + result["refused"]


def report(first_file, rerun_files, target, invocation):
    first = json.load(open(first_file))
    reruns = [json.load(open(f)) for f in rerun_files]
    rate = lambda r: messages(r["result"]) / r["seconds"]
    print()
    print("| run | messages | new | already archived | seconds | msg/s |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, r in [("first run", first)] + [("re-run %d" % (i + 1), r) for i, r in enumerate(reruns)]:
        res = r["result"]
        print("| %s | %d | %d | %d | %.2f | %.0f |" % (label, messages(res), res["archived"], res["alreadyArchived"],
                                                      r["seconds"], rate(r)))
    median = statistics.median(rate(r) for r in reruns)
    ratio = median / rate(first)
    print()
    print("first run %.0f msg/s, re-run %.0f msg/s (median of %d): %.1f× faster" % (rate(first), median, len(reruns),
                                                                                     ratio))
    ok = ratio >= target and all(r["result"]["archived"] == 0 for r in reruns)
    print("target: re-run at least %g× faster than the first run: %s" % (target, "PASS" if ok else "FAIL"))
    if any(r["result"]["archived"] for r in reruns):
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
        url, cert, pw, pid = args
        t0 = time.monotonic()
        result = call(url, cert, pw, "RunProfile", {"id": pid})
        print(json.dumps({"seconds": time.monotonic() - t0, "result": result}))
    elif mode == "report":
        return report(args[0], args[1:-2], float(args[-2]), args[-1])
    else:
        sys.exit("profile_rerun.py: unknown mode %r" % mode)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
