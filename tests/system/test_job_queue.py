"""System tests of the cap on long-running Administration API functions
(issue 19 item 12): `[api] max_running_jobs` of mailvault.conf run at once,
later ones wait first come, first started, in a queue of at most
`max_queued_jobs`, past which a start is refused as busy.

A waiting job answers statusCode "running" with statusText "queued: N
ahead" (MailStore clients poll for as long as they read "running"); it can
be cancelled before it starts and then never starts; when the server stops,
whatever waits is answered as cancelled.

The jobs are VerifyStore calls.  They are held at their first step by
holding the store's write lock (content/.writelock, which VerifyStore takes
for its whole run) from the test, so that which job runs and which waits is
deterministic; a job that started shows as an open descriptor of that lock
file in /proc/PID/fd.  Let go, they verify stores of 6000 messages each,
long enough to watch the queue move.

Run:  MAILVAULT_BIN=.../mailvault /usr/bin/python3 -m pytest -q tests/system/test_job_queue.py"""

import base64
import contextlib
import email.utils
import fcntl
import http.client
import os
import re
import shutil
import signal
import ssl
import subprocess
import threading
import time
import urllib.parse

import pytest

from mvserver import MvServer, decode_body, init_with_admin
from mvtest import mv, parse_json

pytestmark = pytest.mark.xdist_group("job_queue")

MESSAGES = 10000         # per busy store: a VerifyStore of it takes a few tenths of a second
CAP = 2
JOBS = 12
CANCELLED = 5            # the index of the job cancelled while it waits
QUEUED_RE = re.compile(r"^queued: (\d+) ahead$")


# ---------------------------------------------------------------------------
# Helpers

class Client:
    """One keep-alive HTTPS connection (so that the server's connection
    threads do not change while threads are counted), Basic auth."""

    def __init__(self, srv, timeout=120):
        ctx = ssl.create_default_context(cafile=srv.cert_path())
        self.conn = http.client.HTTPSConnection("127.0.0.1", srv.port, context=ctx, timeout=timeout)
        self.auth = "Basic " + base64.b64encode(("admin:%s" % srv.password).encode()).decode()

    def close(self):
        self.conn.close()

    def post(self, path, fields):
        self.conn.request("POST", path, body=urllib.parse.urlencode(fields).encode(),
                          headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
                                   "Authorization": self.auth})
        resp = self.conn.getresponse()
        body = resp.read()
        assert resp.status == 200, (path, fields, resp.status, body[:500])
        return decode_body(body)

    def invoke(self, function, **args):
        return self.post("/api/invoke/" + function, {k: str(v) for k, v in args.items()})

    def status(self, token, last=0, timeout_ms=0):
        return self.post("/api/get-status", {"token": token, "lastKnownStatusVersion": last,
                                             "millisecondsTimeout": timeout_ms})

    def cancel(self, token):
        return self.post("/api/cancel-async", {"token": token})


def queued_ahead(env):
    """N of a waiting job ("running", "queued: N ahead"), else None."""
    if env["statusCode"] != "running":
        return None
    m = QUEUED_RE.match(env["statusText"] or "")
    return int(m.group(1)) if m else None


def write_mbox(path, tag, n):
    with open(path, "w") as f:
        for i in range(n):
            date = email.utils.formatdate(1600000000 + i * 3600)
            f.write("From s%d@example.com Mon Jan  1 00:00:00 2020\n"
                    "From: Sender %d <s%d@example.com>\nTo: %s@example.org\n"
                    "Subject: %s message %d\nDate: %s\nMessage-ID: <%s.%d@example.com>\n\n%s\n\n"
                    % (i, i, i, tag, tag, i, date, tag, i,
                       ("Body of %s message %d, lorem ipsum dolor sit amet. " % (tag, i)) * 20))


@contextlib.contextmanager
def store_write_lock(data_dir, store_name):
    """Holds the store's write lock: a VerifyStore of it waits at its first step."""
    path = os.path.join(str(data_dir), "stores", store_name, "content", ".writelock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    holder = {"fd": fd}

    def release():
        if holder["fd"] is not None:
            fcntl.flock(holder["fd"], fcntl.LOCK_UN)
            os.close(holder["fd"])
            holder["fd"] = None
    try:
        yield release
    finally:
        release()


def threads_of(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise AssertionError("no Threads: line for pid %d" % pid)


def fds_of(pid):
    """The server's open descriptors: their targets."""
    out = []
    d = "/proc/%d/fd" % pid
    for name in os.listdir(d):
        try:
            out.append(os.readlink(os.path.join(d, name)))
        except OSError:
            pass            # closed meanwhile
    return out


def lock_holders(pid, store_name):
    """How many descriptors of the server point at the store's lock file:
    one per job that opened the store to verify it."""
    suffix = "/stores/%s/content/.writelock" % store_name
    return sum(1 for target in fds_of(pid) if target.endswith(suffix))


def wait_until(what, predicate, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def set_job_limits(srv, **limits):
    """Writes the limits into [api] of mailvault.conf and reloads (SIGHUP)."""
    path = os.path.join(srv.data_dir, "mailvault.conf")
    with open(path) as f:
        text = f.read()
    for key, value in limits.items():
        text = re.sub(r"(?m)^%s=.*\n" % key, "", text)
        text = re.sub(r"(?m)^\[api\]$", "[api]\n%s=%d" % (key, value), text)
    with open(path, "w") as f:
        f.write(text)
    mark = len(srv.stderr())
    srv.signal(signal.SIGHUP)
    deadline = time.time() + 20
    while time.time() < deadline:
        out = srv.stderr()[mark:]
        if "configuration reloaded" in out:
            break
        assert "reload" not in out, "the server refused the job limits %s:\n%s" % (limits, out)
        time.sleep(0.05)
    else:
        raise AssertionError("no reload within 20s:\n" + srv.stderr()[mark:])
    conf = srv.ok("GetServiceConfiguration")
    for key, value in limits.items():
        camel = re.sub(r"_(\w)", lambda m: m.group(1).upper(), key)
        assert conf[camel] == value, (key, conf)


# ---------------------------------------------------------------------------
# Fixtures

@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """store1 and "two": MESSAGES messages each; "other": empty."""
    root = tmp_path_factory.mktemp("jobq-template")
    d = str(root / "data")
    password = init_with_admin(d)
    mbox = str(root / "one.mbox")
    write_mbox(mbox, "one", MESSAGES)
    cp = mv("import", mbox, "--archive", "one", "--folder", "bulk", "--json", data_dir=d, timeout=600)
    assert parse_json(cp)["imported"] == MESSAGES, cp.stdout
    mv("cmd", "CreateStore", "--name=two", "--requestedState=current", data_dir=d)
    write_mbox(mbox, "two", MESSAGES)
    cp = mv("import", mbox, "--archive", "two", "--folder", "bulk", "--json", data_dir=d, timeout=600)
    assert parse_json(cp)["imported"] == MESSAGES, cp.stdout
    mv("cmd", "CreateStore", "--name=other", data_dir=d)
    mv("cmd", "SetStoreRequestedState", "--id=1", "--requestedState=current", data_dir=d)
    return {"dir": d, "password": password}


@pytest.fixture
def server(template, tmp_path):
    d = str(tmp_path / "data")
    shutil.copytree(template["dir"], d, symlinks=True)
    s = MvServer(d, password=template["password"]).start()
    try:
        yield s
    except BaseException:
        s.kill()
        raise
    s.stop()


# ---------------------------------------------------------------------------
# Tests

def test_limits_in_the_configuration(server):
    path = os.path.join(server.data_dir, "mailvault.conf")
    with open(path) as f:
        text = f.read()
    assert re.search(r"(?m)^max_running_jobs=4$", text), text
    assert re.search(r"(?m)^max_queued_jobs=1000$", text), text
    conf = server.ok("GetServiceConfiguration")
    assert conf["maxRunningJobs"] == 4 and conf["maxQueuedJobs"] == 1000, conf
    # no limit at all is no setting: refused by name, the running one kept
    with open(path, "w") as f:
        f.write(text.replace("max_running_jobs=4", "max_running_jobs=0"))
    mark = len(server.stderr())
    server.signal(signal.SIGHUP)
    wait_until("the reload to be refused", lambda: "max_running_jobs" in server.stderr()[mark:])
    assert "[api] max_running_jobs: expected a whole number from 1 to 1024" in server.stderr()[mark:]
    assert server.ok("GetServiceConfiguration")["maxRunningJobs"] == 4
    with open(path, "w") as f:
        f.write(text)


def test_cap_queue_fifo_and_cancel(server):
    set_job_limits(server, max_running_jobs=CAP)
    pid = server.proc.pid
    # job i verifies store 1 or 2 in turn (so two really run side by side
    # once let go); the one to be cancelled verifies the empty "other",
    # whose lock the test keeps to the end: had it started, it would sit
    # on that lock with a descriptor of it open.
    targets = [3 if i == CANCELLED else 1 + i % 2 for i in range(JOBS)]
    c = Client(server)
    envs = []
    try:
        with store_write_lock(server.data_dir, "store1") as release1, \
                store_write_lock(server.data_dir, "two") as release2, \
                store_write_lock(server.data_dir, "other") as release_other:
            assert c.invoke("GetServerInfo")["statusCode"] == "succeeded"
            fds_idle = len(fds_of(pid))
            for i in range(CAP):
                envs.append(c.invoke("VerifyStore", id=targets[i]))
                assert envs[i]["statusCode"] == "running" and queued_ahead(envs[i]) is None, envs[i]
            wait_until("the first two jobs to wait on their stores' locks",
                       lambda: lock_holders(pid, "store1") == 1 and lock_holders(pid, "two") == 1)
            time.sleep(0.3)
            threads_two, fds_two = threads_of(pid), len(fds_of(pid))

            for i in range(CAP, JOBS):
                env = c.invoke("VerifyStore", id=targets[i])
                envs.append(env)
                assert env["statusCode"] == "running" and env["token"], env
                assert queued_ahead(env) == i - CAP, \
                    "job %d of %d with max_running_jobs=%d should wait with %d ahead: %s" % (i, JOBS, CAP, i - CAP, env)
            time.sleep(0.5)
            # Nothing queued has a thread or has opened a store.
            threads, fds = threads_of(pid), len(fds_of(pid))
            assert threads <= threads_two + 1, \
                "%d jobs started, %d allowed: %d threads, %d with two jobs" % (JOBS, CAP, threads, threads_two)
            assert fds <= fds_two + 2, "%d jobs started, %d allowed: %d fds, %d with two jobs" % (
                JOBS, CAP, fds, fds_two)
            assert (lock_holders(pid, "store1"), lock_holders(pid, "two"), lock_holders(pid, "other")) == (1, 1, 0)
            for i, env in enumerate(envs):
                now = c.status(env["token"])
                assert queued_ahead(now) == (None if i < CAP else i - CAP), (i, now)
                assert now["percentProgress"] is None and now["result"] is None, now

            # get-status on a waiting job waits like on a running one
            last = envs[7]
            t0 = time.monotonic()
            again = c.status(last["token"], last["statusVersion"], 1500)
            assert time.monotonic() - t0 >= 1.4, again
            assert queued_ahead(again) == 7 - CAP and again["statusVersion"] == last["statusVersion"], again

            # cancelled while it waits: ended at once, never started, the ones behind move up
            behind = c.status(envs[CANCELLED + 1]["token"])
            cancelled = c.cancel(envs[CANCELLED]["token"])
            assert cancelled["statusCode"] == "cancelled" and cancelled["token"] == envs[CANCELLED]["token"], cancelled
            assert "not started" in cancelled["error"]["message"], cancelled
            moved = c.status(envs[CANCELLED + 1]["token"], behind["statusVersion"], 5000)
            assert queued_ahead(moved) == CANCELLED - CAP and moved["statusVersion"] > behind["statusVersion"], moved
            assert queued_ahead(c.status(envs[CANCELLED - 1]["token"])) == CANCELLED - 1 - CAP

            # let go: watch the queue drain
            release1()
            release2()
            order = [i for i in range(JOBS) if i != CANCELLED]
            final, last_ahead = {}, {}
            t_release = time.monotonic()
            max_running = max_threads = max_fds = 0
            deadline = time.time() + 40
            while len(final) < len(order):
                assert time.time() < deadline, "jobs still unfinished after 40s: %s" % sorted(set(order) - set(final))
                # Newest first: a job seen started implies every older one
                # started before it was read (first come, first started),
                # so the ones read as running later ran at the same time.
                snapshot = {}
                for i in reversed(order):
                    snapshot[i] = final[i] if i in final else c.status(envs[i]["token"])
                started = [i for i in order if queued_ahead(snapshot[i]) is None]
                assert started == order[:len(started)], \
                    "jobs started out of order: started %s of %s" % (started, order)
                running = [i for i in started if snapshot[i]["statusCode"] == "running"]
                assert len(running) <= CAP, "running at once: %s" % running
                max_running = max(max_running, len(running))
                for i in order:
                    if snapshot[i]["statusCode"] != "running":
                        final[i] = snapshot[i]
                    ahead = queued_ahead(snapshot[i])
                    if ahead is not None:
                        # read before the older ones: they may have started since, never the reverse
                        assert ahead >= len([k for k in order if k < i and k not in started]), (i, snapshot[i], started)
                        assert ahead <= last_ahead.get(i, ahead), "queue position went back: %d, %s" % (i, snapshot[i])
                        last_ahead[i] = ahead
                max_threads = max(max_threads, threads_of(pid))
                max_fds = max(max_fds, len(fds_of(pid)))
                time.sleep(0.05)
            print("queue drained in %.2fs; at most %d threads (%d with two jobs held), %d fds (%d; %d idle)"
                  % (time.monotonic() - t_release, max_threads, threads_two, max_fds, fds_two, fds_idle))
            # a finishing job's thread may still be on its way out as the next one starts
            assert max_threads <= threads_two + CAP, \
                "at most %d threads while the queue drained, %d with two jobs held" % (max_threads, threads_two)
            # a running job has more open than one waiting for its lock: its segments, the index
            assert max_fds <= fds_idle + 2 * (fds_two - fds_idle) + 4, \
                "at most %d fds while the queue drained; %d idle, %d with two jobs held" % (max_fds, fds_idle, fds_two)
            assert max_running == CAP, "never saw %d jobs running at once" % CAP
            for i in order:
                assert final[i]["statusCode"] == "succeeded", (i, final[i])
                assert final[i]["result"]["clean"] is True and final[i]["result"]["storeId"] == targets[i], final[i]

            # the cancelled one stayed as it was and never touched its store
            after = c.status(envs[CANCELLED]["token"])
            assert after == cancelled, (after, cancelled)
            assert lock_holders(pid, "other") == 0, "the job cancelled while it waited was started"
            release_other()
        assert c.invoke("VerifyStore", id=3)["statusCode"] in ("running", "succeeded")
    finally:
        c.close()


def test_busy_and_shutdown(server):
    set_job_limits(server, max_running_jobs=1, max_queued_jobs=3)
    pid = server.proc.pid
    c = Client(server)
    try:
        with store_write_lock(server.data_dir, "store1") as release1, \
                store_write_lock(server.data_dir, "other") as release_other:
            first = c.invoke("VerifyStore", id=1)
            assert first["statusCode"] == "running" and queued_ahead(first) is None, first
            queued = [c.invoke("VerifyStore", id=3) for _ in range(3)]
            assert [queued_ahead(e) for e in queued] == [0, 1, 2], queued
            # the queue is full: refused, nothing started
            busy = c.invoke("VerifyStore", id=3)
            assert busy["statusCode"] == "failed" and busy["token"] is None, busy
            assert "busy" in busy["error"]["message"] and "VerifyStore" in busy["error"]["message"], busy
            # a place freed is a place to take
            assert c.cancel(queued[0]["token"])["statusCode"] == "cancelled"
            queued = queued[1:] + [c.invoke("VerifyStore", id=3)]
            assert queued_ahead(queued[2]) == 2, queued[2]
            assert [queued_ahead(c.status(e["token"])) for e in queued] == [0, 1, 2], queued

            # SIGTERM: a get-status waiting on a queued job is answered at once, as cancelled
            answers = {}

            def poll():
                w = Client(server)
                try:
                    answers["env"] = w.status(queued[2]["token"], queued[2]["statusVersion"], 30000)
                finally:
                    w.close()
            poller = threading.Thread(target=poll)
            poller.start()
            time.sleep(1.0)
            t0 = time.monotonic()
            server.signal(signal.SIGTERM)
            poller.join(20)
            assert not poller.is_alive() and time.monotonic() - t0 < 10, "get-status kept waiting after SIGTERM"
            env = answers["env"]
            assert env["statusCode"] == "cancelled" and "stopping" in env["error"]["message"], env
            # the running one waits on store1's lock, uncancellable until let
            # go; the queued ones would wait on other's, which stays held
            release1()
            try:
                server.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                holders = lock_holders(pid, "other")
                release_other()
                raise AssertionError("the server did not exit within 30s of SIGTERM; %d queued job(s) had "
                                     "started and waited on their store" % holders)
            release_other()
    finally:
        c.close()
