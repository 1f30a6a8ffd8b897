"""Jobs and the scheduler (issue 11): GetJobs, CreateJob, DeleteJob,
RenameJob, SetJobEnabled, SetJobSchedule, RunJobAsync, CancelJobAsync and
GetJobResults, and the scheduler inside a real `mailvault serve` running
jobs and automatic profiles with real time.

Shaped so:
- the functions' normal paths and argument errors run on a data directory
  through `mailvault cmd`, with no server and nothing to wait for;
- the scheduler's behaviour runs against started servers with real time.
  Jobs are dated seconds ahead; interval jobs use the test-only
  MAILVAULT_TEST_MINUTE_SECONDS (an interval "minute" of 1 or 2 seconds),
  never a faked clock.  Every wait is a poll of GetJobResults or
  GetWorkerResults with a deadline, not a sleep standing for an event —
  except where a test proves that something does NOT happen, which can
  only be shown by waiting past the moment it would have;
- a job's effect is checked where it lands: a RunProfile job's messages are
  counted in the archive, not only its result read.

Not tested here: a scheduled slot that comes while the job's previous run
still goes on is passed over (no run longer than an interval can be made
reliably on a test machine); RunJobAsync's refusal of a running job is.

The next-run arithmetic itself (month ends, Last, DST in Europe/Berlin and
America/New_York) is table-tested in tests/unit/test_schedule.c."""

import datetime
import json
import os
import time

import pytest

from mvserver import MvServer, init_with_admin
from mvtest import init_data_dir, mv, parse_json

RANGE = dict(fromIncluding="2000-01-01T00:00:00", toExcluding="2100-01-01T00:00:00", timeZoneId="UTC")
WORKER_RANGE = dict(fromIncluding="2000-01-01T00:00:00", toExcluding="2100-01-01T00:00:00", timeZoneID="UTC")


def utc_in(seconds):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%S")


def write_emls(directory, n, word, start=0):
    os.makedirs(directory, exist_ok=True)
    for i in range(start, start + n):
        with open(os.path.join(directory, "m%05d.eml" % i), "wb") as f:
            f.write(("From: a%d@example.org\r\nTo: b@example.org\r\nSubject: %s %d\r\n"
                     "Message-ID: <j%d.%s@example.org>\r\n\r\nbody %s %d\r\n" % (i, word, i, i, word, word, i)).encode())


def cmd(d, function, **args):
    argv = ["cmd", function] + ["--%s=%s" % (k, ("true" if v else "false") if isinstance(v, bool) else v)
                                for k, v in args.items()]
    return parse_json(mv(*argv, data_dir=d, check=(0, 1, 2)))


def cmd_ok(d, function, **args):
    e = cmd(d, function, **args)
    assert e["statusCode"] == "succeeded" and e["error"] is None, (function, args, e)
    return e["result"]


def cmd_refused(d, function, **args):
    e = cmd(d, function, **args)
    assert e["statusCode"] == "failed", (function, args, e)
    return e["error"]["message"]


def results(s, job_id):
    return s.ok("GetJobResults", jobId=job_id, **RANGE)


def wait_for(what, check, timeout=30, every=0.2):
    deadline = time.time() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.time() < deadline, "timed out waiting for " + what
        time.sleep(every)


def running(s, job_id):
    return [j for j in s.ok("GetJobs") if j["id"] == job_id][0]["running"]


def wait_idle(s, job_id):
    """A run's result is written just before it ends: wait for the end too."""
    wait_for("job %d to end" % job_id, lambda: not running(s, job_id))


def wait_results(s, job_id, n, timeout=30):
    return wait_for("%d result(s) of job %d" % (n, job_id),
                    lambda: (lambda r: r if len(r) >= n else None)(results(s, job_id)), timeout)


# ---- the functions, on a data directory -------------------------------------------

def test_job_functions_and_their_argument_errors(tmp_path):
    d = str(tmp_path / "data")
    init_data_dir(d)
    mv("cmd", "CreateUser", "--userName=viewer", "--privileges=login", "--password=viewer-Pw-4471-long",
       data_dir=d)

    job = cmd_ok(d, "CreateJob", name="Nightly verify", action="VerifyStores", timeZoneId="Europe/Berlin",
                 time="02:30")
    assert job["name"] == "Nightly verify" and job["action"] == "VerifyStores" and job["owner"] == "admin"
    assert job["timeZoneId"] == "Europe/Berlin" and job["time"] == "02:30" and job["enabled"] is True
    assert job["date"] is None and job["interval"] is None and job["lastRun"] is None
    assert job["running"] is False
    # The next run is the coming 02:30 on Berlin's clock.
    nxt = datetime.datetime.fromisoformat(job["nextRun"])
    assert (nxt.hour, nxt.minute) == (2, 30)
    assert 0 < (nxt - datetime.datetime.now(datetime.timezone.utc)).total_seconds() <= 86400 + 3600

    weekly = cmd_ok(d, "CreateJob", action="RunProfile --id=1", time="06:00", dayOfWeek="monday")
    assert weekly["name"] == "RunProfile --id=1"       # named after its action when no name is given
    assert datetime.datetime.fromisoformat(weekly["nextRun"]).weekday() == 0
    last = cmd_ok(d, "CreateJob", action="CompactMasterDatabase", time="23:00", dayOfMonth="LAST")
    nxt = datetime.datetime.fromisoformat(last["nextRun"])
    assert (nxt + datetime.timedelta(days=1)).day == 1  # the month's last day
    every = cmd_ok(d, "CreateJob", action="GetServerInfo", interval=15, timeZoneId="UTC")
    assert datetime.datetime.fromisoformat(every["nextRun"]).minute % 15 == 0

    listed = cmd_ok(d, "GetJobs")
    assert [j["id"] for j in listed] == [job["id"], weekly["id"], last["id"], every["id"]]

    cmd_ok(d, "RenameJob", id=job["id"], name="Verify at night")
    cmd_ok(d, "SetJobEnabled", id=job["id"], enabled=False)
    cmd_ok(d, "SetJobSchedule", id=job["id"], timeZoneId="America/New_York", date="2031-05-06T07:08:09")
    changed = [j for j in cmd_ok(d, "GetJobs") if j["id"] == job["id"]][0]
    assert changed["name"] == "Verify at night" and changed["enabled"] is False
    assert changed["date"] == "2031-05-06T07:08:09" and changed["time"] is None
    assert changed["nextRun"] is None                  # disabled: it has none
    cmd_ok(d, "SetJobEnabled", id=job["id"], enabled=True)
    changed = [j for j in cmd_ok(d, "GetJobs") if j["id"] == job["id"]][0]
    assert changed["nextRun"] == "2031-05-06T07:08:09-04:00"

    cmd_ok(d, "DeleteJob", id=str(every["id"]))        # the reference's id is a string here
    assert every["id"] not in [j["id"] for j in cmd_ok(d, "GetJobs")]
    assert cmd_ok(d, "GetJobResults", **RANGE) == []

    # Argument errors name the argument and the reason.
    assert "action" in cmd_refused(d, "CreateJob", time="01:00")
    assert "no function 'NoSuchFunction'" in cmd_refused(d, "CreateJob", action="NoSuchFunction", time="01:00")
    assert "id" in cmd_refused(d, "CreateJob", action="RunProfile --idd=3", time="01:00")
    assert "cannot split" in cmd_refused(d, "CreateJob", action="RunProfile --id='3", time="01:00")
    secret = cmd_refused(d, "CreateJob", action="SetUserPassword --userName=viewer --password=Sekrit-4471-long",
                         time="01:00")
    assert "'password' is a secret" in secret and "Sekrit" not in secret, secret
    assert "interval" in cmd_refused(d, "CreateJob", action="VerifyStores", interval=7)
    assert "dayOfWeek" in cmd_refused(d, "CreateJob", action="VerifyStores", time="01:00", dayOfWeek="Funday")
    assert "dayOfMonth" in cmd_refused(d, "CreateJob", action="VerifyStores", time="01:00", dayOfMonth="32")
    assert "timeZoneId" in cmd_refused(d, "CreateJob", action="VerifyStores", time="01:00",
                                       timeZoneId="Mars/Olympus")
    assert "date" in cmd_refused(d, "CreateJob", action="VerifyStores", date="2030-13-01T00:00:00")
    assert "interval" in cmd_refused(d, "CreateJob", action="VerifyStores", date="2030-01-01T00:00:00",
                                     interval=15)
    assert "not an administrator" in cmd_refused(d, "CreateJob", action="VerifyStores", time="01:00",
                                                 owner="viewer")
    assert "nobody" in cmd_refused(d, "CreateJob", action="VerifyStores", time="01:00", owner="nobody")
    assert "no job 999" in cmd_refused(d, "RenameJob", id=999, name="x")
    assert "no job 999" in cmd_refused(d, "DeleteJob", id="999")
    assert "name is required" in cmd_refused(d, "RenameJob", id=job["id"], name="")
    assert "enabled" in cmd_refused(d, "SetJobEnabled", id=job["id"])
    assert "fromIncluding" in cmd_refused(d, "GetJobResults", fromIncluding="yesterday",
                                          toExcluding="2100-01-01T00:00:00", timeZoneId="UTC")
    # Runs need the server: on a data directory the functions say so.
    assert "running server" in cmd_refused(d, "RunJobAsync", id=job["id"])
    assert "no job 999" in cmd_refused(d, "RunJobAsync", id=999)


# ---- the scheduler, in a server ---------------------------------------------------

@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One server for the scheduler tests, with an interval "minute" of 1 s."""
    base = tmp_path_factory.mktemp("jobs")
    d = str(base / "data")
    pw = init_with_admin(d)
    mv("cmd", "CreateUser", "--userName=viewer", "--privileges=login", "--password=viewer-Pw-4471-long",
       data_dir=d)
    mv("cmd", "CreateUser", "--userName=carol", "--privileges=admin,login", "--password=carol-Pw-4471-long",
       data_dir=d)
    env = dict(os.environ, MAILVAULT_TEST_MINUTE_SECONDS="1")
    with MvServer(d, password=pw, env=env) as s:
        yield {"dir": d, "base": base, "server": s}


@pytest.mark.xdist_group("jobs-server")
def test_a_job_dated_ahead_runs_once_at_its_time(world):
    s = world["server"]
    when = utc_in(3)
    job = s.ok("CreateJob", name="once", action="GetServerInfo", timeZoneId="UTC", date=when)
    assert job["nextRun"] == when + "+00:00"
    assert results(s, job["id"]) == []
    got = wait_results(s, job["id"], 1, timeout=20)
    r = got[0]
    assert r["result"] == "succeeded" and r["jobName"] == "once" and r["action"] == "GetServerInfo"
    assert r["userName"] == "admin" and r["profileID"] is None
    # It started at its time, not before.
    started = datetime.datetime.fromisoformat(r["startTime"])
    assert started >= datetime.datetime.fromisoformat(when + "+00:00")
    assert (started - datetime.datetime.fromisoformat(when + "+00:00")).total_seconds() < 5
    after = [j for j in s.ok("GetJobs") if j["id"] == job["id"]][0]
    assert after["lastRun"] is not None and after["nextRun"] is None
    time.sleep(3)                                       # proving a second run does not come
    assert len(results(s, job["id"])) == 1
    # Its run is a worker result too, beside the archiving runs.
    names = [w["profileName"] for w in s.ok("GetWorkerResults", **WORKER_RANGE)]
    assert "once" in names


@pytest.mark.xdist_group("jobs-server")
def test_an_interval_job_runs_every_interval(world):
    s = world["server"]
    job = s.ok("CreateJob", name="every5", action="GetServerInfo", timeZoneId="UTC", interval=5)
    got = wait_results(s, job["id"], 3, timeout=30)
    s.ok("SetJobEnabled", id=job["id"], enabled=False)
    starts = [datetime.datetime.fromisoformat(r["startTime"]) for r in got[:3]]
    gaps = [(b - a).total_seconds() for a, b in zip(starts, starts[1:])]
    assert all(4 <= g <= 8 for g in gaps), gaps      # every 5 "minutes" of 1 s
    n = len(results(s, job["id"]))
    time.sleep(7)                                       # disabled: no run comes
    assert len(results(s, job["id"])) == n


@pytest.mark.xdist_group("jobs-server")
def test_run_now_never_twice_at_once_and_cancel(world):
    s, d, base = world["server"], world["dir"], world["base"]
    src = str(base / "bulk")
    write_emls(src, 3000, "bulkword")
    profile = s.ok("CreateProfile", properties=json.dumps(
        {"name": "bulk", "type": "I", "connector": "FileSystem", "details": {"path": src}}), raw=True)
    job = s.ok("CreateJob", name="bulk run", action="RunProfile --id=%d" % profile["id"], timeZoneId="UTC",
               date="2099-01-01T00:00:00")
    s.ok("RunJobAsync", id=job["id"])
    wait_for("the job to run", lambda: running(s, job["id"]))
    env = s.call("RunJobAsync", id=job["id"])
    assert env["statusCode"] == "failed" and "is running" in env["error"]["message"]
    env = s.call("DeleteJob", id=str(job["id"]))
    assert env["statusCode"] == "failed" and "is running" in env["error"]["message"]
    s.ok("CancelJobAsync", id=job["id"])
    r = wait_results(s, job["id"], 1, timeout=60)[0]
    assert r["result"] == "cancelled", r
    wait_idle(s, job["id"])
    env = s.call("CancelJobAsync", id=job["id"])
    assert env["statusCode"] == "failed" and "not running" in env["error"]["message"]
    # Run again to the end: the profile archives what the cancelled run did not.
    s.ok("RunJobAsync", id=job["id"])
    r = wait_results(s, job["id"], 2, timeout=240)[1]
    assert r["result"] == "succeeded", r
    assert len(s.ok("SearchMessages", query="bulkword", archive="admin", limit=5000)) == 3000
    runs = [w for w in s.ok("GetWorkerResults", profileID=profile["id"], **WORKER_RANGE)]
    assert [w["result"] for w in runs][-1] == "succeeded"
    assert sum(w["archived"] for w in runs) == 3000


@pytest.mark.xdist_group("jobs-server")
def test_a_job_runs_with_its_owners_privileges_as_they_are(world):
    s, d = world["server"], world["dir"]
    job = s.ok("CreateJob", name="carol's", action="GetServerInfo", owner="carol", timeZoneId="UTC",
               date="2099-01-01T00:00:00")
    s.ok("RunJobAsync", id=job["id"])
    assert wait_results(s, job["id"], 1)[0]["userName"] == "carol"
    wait_idle(s, job["id"])
    s.ok("SetUserPrivileges", userName="carol", privileges="login")
    s.ok("RunJobAsync", id=job["id"])
    r = wait_results(s, job["id"], 2)[1]
    assert r["result"] == "failed" and "admin" in r["statusText"], r
    # Functions of jobs are an administrator's.
    status, env = s.invoke("CreateJob", user="viewer", password="viewer-Pw-4471-long", action="GetServerInfo",
                           time="01:00")
    assert status == 403 and "admin privilege" in env["error"]["message"], env


@pytest.mark.xdist_group("jobs-server")
def test_an_automatic_profile_runs_again_after_its_pause(world):
    s, base = world["server"], world["base"]
    src = str(base / "auto")
    write_emls(src, 5, "autoword")
    profile = s.ok("CreateProfile", properties=json.dumps(
        {"name": "auto", "type": "I", "connector": "FileSystem", "details": {"path": src}}), raw=True)
    s.ok("SetProfileServerSideExecution", id=profile["id"], automatic=True, automaticPauseBetweenExecutions=1)

    def runs():
        return s.ok("GetWorkerResults", profileID=profile["id"], **WORKER_RANGE)
    wait_for("the first automatic run", lambda: len(runs()) >= 1)
    write_emls(src, 3, "autoword", start=100)
    wait_for("the new messages archived by themselves",
             lambda: sum(w["archived"] for w in runs()) == 8, timeout=30)
    s.ok("SetProfileServerSideExecution", id=profile["id"], automatic=False)
    assert all(w["userName"] == "admin" for w in runs())


def test_safe_mode_holds_jobs_and_a_missed_run_runs_once(tmp_path):
    d = str(tmp_path / "data")
    pw = init_with_admin(d)
    env = dict(os.environ, MAILVAULT_TEST_MINUTE_SECONDS="1")
    with MvServer(d, password=pw, env=env, extra_args=["--safe-mode"]) as s:
        assert s.ok("GetServerInfo")["safeMode"] is True
        once = s.ok("CreateJob", name="held", action="GetServerInfo", timeZoneId="UTC", date=utc_in(2))
        every = s.ok("CreateJob", name="every5", action="GetServerInfo", timeZoneId="UTC", interval=5)
        time.sleep(8)                                   # past both due times: nothing may run
        assert results(s, once["id"]) == [] and results(s, every["id"]) == []
        # An administrator's explicit run still runs.
        s.ok("RunJobAsync", id=once["id"])
        assert wait_results(s, once["id"], 1)[0]["result"] == "succeeded"
    # Down through three interval slots and the once job's time: at start-up
    # each missed job runs once, not once per missed slot.
    time.sleep(16)
    with MvServer(d, password=pw, env=env) as s:
        started = time.time()
        assert s.ok("GetServerInfo")["safeMode"] is False
        wait_results(s, every["id"], 1, timeout=10)
        time.sleep(max(0, started + 3.5 - time.time()))
        assert len(results(s, every["id"])) == 1
        # The once job's time passed while it was held: that run too is
        # made up, once (the administrator's own run is the first result).
        assert len(wait_results(s, once["id"], 2, timeout=10)) == 2
        time.sleep(2)
        assert len(results(s, once["id"])) == 2


def test_stopping_the_server_cancels_a_running_job(tmp_path):
    """SIGTERM while a job runs: the run is asked to stop, its result says
    cancelled, the server exits cleanly; what it archived stays archived."""
    d = str(tmp_path / "data")
    pw = init_with_admin(d)
    src = str(tmp_path / "bulk")
    write_emls(src, 8000, "stopword")
    s = MvServer(d, password=pw).start()
    try:
        profile = s.ok("CreateProfile", properties=json.dumps(
            {"name": "bulk", "type": "I", "connector": "FileSystem", "details": {"path": src}}), raw=True)
        job = s.ok("CreateJob", name="long", action="RunProfile --id=%d" % profile["id"], timeZoneId="UTC",
                   date="2099-01-01T00:00:00")
        s.ok("RunJobAsync", id=job["id"])
        wait_for("the job to run", lambda: running(s, job["id"]))
    finally:
        s.stop(timeout=60)
    s = MvServer(d, password=pw).start()
    try:
        (r,) = results(s, job["id"])
        assert r["result"] == "cancelled", r
        # Nothing was left "in progress" to be reported as interrupted.
        rows = s.ok("GetWorkerResults", **WORKER_RANGE)
        assert all("interrupted" not in json.dumps(s.ok("GetWorkerResultReport", id=w["id"])["report"])
                   for w in rows), rows
        archived = sum(w["archived"] for w in rows if w["profileID"] == profile["id"])
        assert archived < 8000, "the run was not cut off: %d archived" % archived
        env = s.call("SearchMessages", query="stopword", archive="admin", limit=10000)
        found = env["result"] if env["statusCode"] == "succeeded" else []
        assert len(found) == archived, (archived, env["error"])
    finally:
        s.stop()
