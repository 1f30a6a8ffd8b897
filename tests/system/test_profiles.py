"""Archiving profiles (issue 11): GetProfileTypes, CreateProfile,
GetProfiles, DeleteProfile, SetProfileServerSideExecution, RunProfile and
RunTemporaryProfile with the FileSystem connector, through `mailvault cmd`
and over HTTPS against a real `mailvault serve`.

What is checked, besides each function's normal path and its argument
errors (each naming the property):
- the wire shape GetProfiles returns (MailStore's: id, name, owner, type,
  connector, details as strings with defaults filled in, serverSideExecution);
- a run archives what the directory holds, a re-run archives nothing and
  counts every message as already archived, and GetWorkerResults shows both
  runs with the profile's id and name;
- privileges: without modifyArchiveProfiles no create or delete; another
  user's profile is not found; a user's profile archives only into that
  user's archive and reads only below <data>/imports/<user>/;
- a run through a started server while SearchMessages calls go on.

The expected counts come from the files the test writes."""

import json
import os
import threading

import pytest

from mvserver import MvServer, init_with_admin
from mvtest import init_data_dir, mv, parse_json

N = 6
RANGE = dict(fromIncluding="2000-01-01T00:00:00", toExcluding="2100-01-01T00:00:00", timeZoneID="UTC")


def message(i, word="profilerun"):
    return ("From: a%d@example.org\r\nTo: b@example.org\r\nSubject: %s %d\r\n"
            "Message-ID: <p%d.%s@example.org>\r\n\r\nbody %s %d\r\n" % (i, word, i, i, word, word, i)).encode()


def write_emls(directory, n, word="profilerun"):
    os.makedirs(directory, exist_ok=True)
    for i in range(n):
        with open(os.path.join(directory, "m%03d.eml" % i), "wb") as f:
            f.write(message(i, word))


def call(d, function, **args):
    argv = ["cmd", function] + ["--%s=%s" % (k, json.dumps(v) if isinstance(v, (dict, list)) else
                                             ("true" if v else "false") if isinstance(v, bool) else v)
                                for k, v in args.items()]
    cp = mv(*argv, data_dir=d, check=(0, 1, 2))
    return parse_json(cp)


def ok(d, function, **args):
    e = call(d, function, **args)
    assert e["statusCode"] == "succeeded" and e["error"] is None, (function, args, e)
    return e["result"]


def refused(d, function, **args):
    e = call(d, function, **args)
    assert e["statusCode"] == "failed" and e["result"] is None, (function, args, e)
    return e["error"]["message"]


def props(path, **details):
    details = dict({"path": str(path)}, **details)
    return {"name": "files", "type": "I", "connector": "FileSystem", "details": details}


@pytest.fixture
def inst(tmp_path):
    d = str(tmp_path / "data")
    init_data_dir(d)
    src = str(tmp_path / "mail")
    write_emls(src, N)
    return d, src


def test_profile_types_publish_every_detail(inst):
    d, _ = inst
    types = ok(d, "GetProfileTypes")
    fs = [t for t in types if t["connector"] == "FileSystem"]
    assert len(fs) == 1 and fs[0]["type"] == "I"
    details = {x["name"]: x for x in fs[0]["details"]}
    assert set(details) == {"path", "format", "includeSubfolders", "extensions", "targetArchive", "targetFolder",
                            "layout", "afterArchiving", "moveTo", "includeFolders", "excludeFolders"}
    assert details["path"]["required"] is True and details["path"]["default"] is None
    assert details["format"]["allowed"] == ["auto", "eml", "mbox", "maildir"]
    assert details["format"]["default"] == "auto"
    assert details["includeSubfolders"]["allowed"] == ["0", "1"]
    assert all(x["description"] for x in details.values())


def test_create_get_delete(inst):
    d, src = inst
    assert ok(d, "GetProfiles", raw=True) == []
    created = ok(d, "CreateProfile", properties=props(src, targetArchive="alice"), raw=True)
    assert created["id"] > 0
    got = ok(d, "GetProfiles", raw=True)
    assert got == [created]
    assert got[0] == {
        "id": created["id"], "name": "files", "owner": "admin", "type": "I", "connector": "FileSystem",
        "details": {"path": src, "format": "auto", "includeSubfolders": "1", "extensions": "eml,msg",
                    "targetArchive": "alice", "targetFolder": "", "layout": "single",
                    "afterArchiving": "keep", "moveTo": "", "includeFolders": "", "excludeFolders": ""},
        "serverSideExecution": {"automatic": False, "automaticPauseBetweenExecutions": 0,
                                "automaticMaintenanceWindows": ""},
    }
    # What GetProfiles shows goes back into CreateProfile without its id and owner.
    again = {k: v for k, v in got[0].items() if k not in ("id", "owner")}
    second = ok(d, "CreateProfile", properties=again, raw=True)
    assert second["id"] != created["id"] and second["details"] == created["details"]
    assert ok(d, "DeleteProfile", id=created["id"]) is None
    assert [p["id"] for p in ok(d, "GetProfiles", raw=True)] == [second["id"]]
    assert "no profile %d" % created["id"] in refused(d, "DeleteProfile", id=created["id"])
    assert "raw" in refused(d, "GetProfiles", raw=False)


@pytest.mark.parametrize("properties, words", [
    ({"type": "I", "connector": "FileSystem", "details": {"path": "/x"}}, ["properties.name"]),
    ({"name": "n", "type": "E", "connector": "FileSystem", "details": {"path": "/x"}}, ["properties.type", "'E'"]),
    ({"name": "n", "type": "I", "connector": "Imap", "details": {"path": "/x"}}, ["properties.connector", "Imap"]),
    ({"name": "n", "type": "I", "connector": "FileSystem", "details": {}}, ["details.path", "required"]),
    ({"name": "n", "type": "I", "connector": "FileSystem", "details": {"path": "rel/dir"}},
     ["details.path", "absolute"]),
    ({"name": "n", "type": "I", "connector": "FileSystem", "details": {"path": "/x", "format": "pst"}},
     ["details.format", "'pst'", "eml, mbox, maildir"]),
    ({"name": "n", "type": "I", "connector": "FileSystem", "details": {"path": "/x", "includeSubfolders": "yes"}},
     ["details.includeSubfolders", "'yes'"]),
    ({"name": "n", "type": "I", "connector": "FileSystem", "details": {"path": "/x", "extensions": " , "}},
     ["details.extensions"]),
    ({"name": "n", "type": "I", "connector": "FileSystem", "details": {"path": "/x", "targetArchive": "a/b"}},
     ["details.targetArchive"]),
    ({"name": "n", "type": "I", "connector": "FileSystem", "details": {"path": "/x", "colour": "red"}},
     ["details.colour", "no such detail"]),
    ({"name": "n", "type": "I", "connector": "FileSystem", "details": {"path": 7}}, ["details.path", "string"]),
    ({"id": 3, "name": "n", "type": "I", "connector": "FileSystem", "details": {"path": "/x"}}, ["properties.id"]),
    ({"name": "n", "type": "I", "connector": "FileSystem", "details": {"path": "/x"},
      "serverSideExecution": {"automatic": True}}, ["automaticPauseBetweenExecutions"]),
    (["not", "an", "object"], ["properties must be a JSON object"]),
])
def test_create_argument_errors(inst, properties, words):
    d, _ = inst
    message = refused(d, "CreateProfile", properties=properties, raw=True)
    for w in words:
        assert w in message, (w, message)
    assert ok(d, "GetProfiles", raw=True) == []
    # The same check guards a temporary run.
    message = refused(d, "RunTemporaryProfile", properties=properties, raw=True)
    assert all(w in message for w in words), message


def test_server_side_execution(inst):
    d, src = inst
    pid = ok(d, "CreateProfile", properties=props(src), raw=True)["id"]
    got = ok(d, "SetProfileServerSideExecution", id=pid, automatic=True, automaticPauseBetweenExecutions=3600,
             automaticMaintenanceWindows="22:00-04:00")
    want = {"automatic": True, "automaticPauseBetweenExecutions": 3600, "automaticMaintenanceWindows": "22:00-04:00"}
    assert got["serverSideExecution"] == want
    assert ok(d, "GetProfiles", raw=True)[0]["serverSideExecution"] == want
    ok(d, "SetProfileServerSideExecution", id=pid, automatic=False)
    assert ok(d, "GetProfiles", raw=True)[0]["serverSideExecution"]["automatic"] is False
    assert "automaticPauseBetweenExecutions is required" in refused(d, "SetProfileServerSideExecution", id=pid,
                                                                     automatic=True)
    assert "between 0 and 2147483647" in refused(d, "SetProfileServerSideExecution", id=pid, automatic=True,
                                                 automaticPauseBetweenExecutions=-1)
    assert "'25:00-04:00'" in refused(d, "SetProfileServerSideExecution", id=pid, automatic=True,
                                      automaticPauseBetweenExecutions=1, automaticMaintenanceWindows="25:00-04:00")
    assert "no profile 999" in refused(d, "SetProfileServerSideExecution", id=999, automatic=False)
    assert "automatic" in refused(d, "SetProfileServerSideExecution", id=pid)
    # CreateProfile takes the same settings in the shape GetProfiles shows them.
    given = dict(props(src), serverSideExecution={"automatic": True, "automaticPauseBetweenExecutions": 60,
                                                   "automaticMaintenanceWindows": "01:00-02:00,13:30-14:00"})
    created = ok(d, "CreateProfile", properties=given, raw=True)
    assert created["serverSideExecution"] == given["serverSideExecution"]
    assert [p for p in ok(d, "GetProfiles", raw=True) if p["id"] == created["id"]] == [created]


def test_run_then_rerun(inst):
    d, src = inst
    pid = ok(d, "CreateProfile", properties=props(src, targetArchive="alice", targetFolder="Imported"),
             raw=True)["id"]
    first = call(d, "RunProfile", id=pid)
    assert first["statusCode"] == "succeeded", first
    assert first["result"]["archived"] == N and first["result"]["alreadyArchived"] == 0
    assert "archived %d, already archived 0" % N in first["logOutput"]
    second = ok(d, "RunProfile", id=pid)
    assert second["archived"] == 0 and second["alreadyArchived"] == N
    hits = json.loads(mv("search", "--json", "--archive=alice", "profilerun", data_dir=d).stdout)
    assert len(hits["hits"] if isinstance(hits, dict) else hits) == N
    results = ok(d, "GetWorkerResults", **RANGE)
    mine = [r for r in results if r["profileID"] == pid]
    assert len(mine) == 2, results
    assert all(r["profileName"] == "files" for r in mine)
    assert "no profile 999" in refused(d, "RunProfile", id=999)
    assert "id" in refused(d, "RunProfile")


def test_run_of_a_missing_path_fails_naming_it(inst, tmp_path):
    d, _ = inst
    gone = str(tmp_path / "gone")
    pid = ok(d, "CreateProfile", properties=props(gone), raw=True)["id"]
    assert gone in refused(d, "RunProfile", id=pid)
    # A run that never started still leaves its worker result, failed, saying why.
    (run,) = [r for r in ok(d, "GetWorkerResults", **RANGE) if r["profileID"] == pid]
    assert run["result"] == "failed" and run["profileName"] == "files", run
    report = ok(d, "GetWorkerResultReport", id=run["id"])["report"]
    assert gone in report["error"], report


def test_run_temporary_profile_saves_nothing(inst):
    d, src = inst
    got = ok(d, "RunTemporaryProfile", properties=props(src, targetArchive="bob", format="eml"), raw=True)
    assert got["archived"] == N
    assert ok(d, "GetProfiles", raw=True) == []
    results = ok(d, "GetWorkerResults", **RANGE)
    assert [r["profileName"] for r in results] == ["files"], results


def test_privileges_and_a_run_beside_searches(tmp_path):
    d = str(tmp_path / "data")
    admin_pw = init_with_admin(d)
    for user, privs in (("alice", "login,archive,modifyArchiveProfiles"), ("bob", "login,archive")):
        mv("cmd", "CreateUser", "--userName=" + user, "--privileges=" + privs, "--password=%s-Pw-4471-long" % user,
           data_dir=d)
    alice = dict(user="alice", password="alice-Pw-4471-long")
    bob = dict(user="bob", password="bob-Pw-4471-long")
    write_emls(os.path.join(d, "imports", "alice", "mail"), N, "aliceword")
    big = str(tmp_path / "big")
    write_emls(big, 400, "bigword")
    write_emls(str(tmp_path / "seed"), 20, "seedword")
    with MvServer(d, password=admin_pw) as s:
        def refusal(function, who, **args):
            env = s.call(function, **who, **args)
            assert env["statusCode"] == "failed", (function, env)
            return env["error"]["message"]

        # alice: her own profile, relative path, her own archive by default.
        mine = s.ok("CreateProfile", **alice, properties=json.dumps(props("mail")), raw=True)
        assert mine["owner"] == "alice" and mine["details"]["targetArchive"] == "alice"
        assert "not your own archive" in refusal("CreateProfile", alice, properties=json.dumps(
            props("mail", targetArchive="bob")), raw=True)
        assert "relative path" in refusal("CreateProfile", alice, properties=json.dumps(props("/etc")), raw=True)
        assert "relative path" in refusal("RunTemporaryProfile", alice, properties=json.dumps(props("../bob")),
                                          raw=True)
        # bob may run but not create or delete; alice's profile is not his.
        assert "modifyArchiveProfiles" in refusal("CreateProfile", bob, properties=json.dumps(props("mail")),
                                                  raw=True)
        assert "modifyArchiveProfiles" in refusal("DeleteProfile", bob, id=mine["id"])
        assert "no profile %d of yours" % mine["id"] in refusal("RunProfile", bob, id=mine["id"])
        assert s.ok("GetProfiles", **bob, raw=True) == []
        admin_profile = s.ok("CreateProfile", properties=json.dumps(dict(props(big, targetArchive="carl"),
                                                                        name="big")), raw=True)
        assert [p["id"] for p in s.ok("GetProfiles", **alice, raw=True)] == [mine["id"]]
        assert "no profile %d of yours" % admin_profile["id"] in refusal("RunProfile", alice, id=admin_profile["id"])
        assert "no profile %d of yours" % admin_profile["id"] in refusal("DeleteProfile", alice,
                                                                         id=admin_profile["id"])
        got = s.ok("RunProfile", **alice, id=mine["id"])
        assert got["archived"] == N

        # A run into the server's stores while searches go on.
        mv_seed = s.ok("RunTemporaryProfile", properties=json.dumps(props(str(tmp_path / "seed"),
                                                                          targetArchive="carl")), raw=True)
        assert mv_seed["archived"] == 20
        stop = threading.Event()
        searches, errors = [], []

        def search_loop():
            while not stop.is_set():
                env = s.call("SearchMessages", query="seedword", archive="carl", limit=100)
                if env["statusCode"] != "succeeded":
                    errors.append(env)
                    return
                searches.append(len(env["result"]))

        t = threading.Thread(target=search_loop)
        t.start()
        try:
            env = s.call("RunProfile", id=admin_profile["id"])
        finally:
            stop.set()
            t.join()
        assert env["statusCode"] == "succeeded", env
        assert env["result"]["archived"] == 400
        assert "archived 400" in env["logOutput"]
        assert not errors, errors
        assert searches and all(n == 20 for n in searches), searches
        hits = s.ok("SearchMessages", query="bigword", archive="carl", limit=1000)
        assert len(hits) == 400
        again = s.ok("RunProfile", id=admin_profile["id"])
        assert again["archived"] == 0 and again["alreadyArchived"] == 400
        rows = s.ok("GetWorkerResults", **RANGE)
        assert sum(1 for r in rows if r["profileID"] == admin_profile["id"] and r["profileName"] == "big") == 2
        assert s.ok("DeleteProfile", **alice, id=mine["id"]) is None
        assert s.ok("GetProfiles", **alice, raw=True) == []


def test_cancel_a_run_then_finish_it(tmp_path):
    d = str(tmp_path / "data")
    admin_pw = init_with_admin(d)
    total = 3000
    src = str(tmp_path / "many")
    write_emls(src, total, "manyword")
    with MvServer(d, password=admin_pw) as s:
        pid = s.ok("CreateProfile", properties=json.dumps(props(src, targetArchive="dora")), raw=True)["id"]
        status, env = s.invoke("RunProfile", id=pid)
        assert status == 200 and env["statusCode"] == "running", env
        status, _ = s.request("/api/cancel-async", {"token": env["token"]})
        assert status == 200
        while env["statusCode"] == "running":
            status, env = s.request("/api/get-status", {"token": env["token"],
                                                        "lastKnownStatusVersion": env["statusVersion"],
                                                        "millisecondsTimeout": 5000})
            assert status == 200, env
        # 3000 files take far longer to read than a cancel takes to arrive.
        assert env["statusCode"] == "cancelled", env
        assert "cancelled" in env["error"]["message"], env
        rows = s.ok("GetWorkerResults", **RANGE)
        assert [(r["profileID"], r["result"]) for r in rows] == [(pid, "cancelled")], rows
        cut = rows[0]["archived"]
        assert cut < total
        # What the cancelled run archived stays; the next run archives the rest.
        rest = s.ok("RunProfile", id=pid)
        assert rest["alreadyArchived"] == cut and rest["archived"] == total - cut, (cut, rest)
        assert len(s.ok("SearchMessages", query="manyword", archive="dora", limit=5000)) == total


def folder_counts(d, archive):
    """folder -> message count in archive, from GetFolderStatistics."""
    out = {}
    for f in ok(d, "GetFolderStatistics"):
        name = f["folder"]
        if f["count"] and (name == archive or name.startswith(archive + "/")):
            out[name[len(archive) + 1:]] = f["count"]
    return out


def test_folder_filters(tmp_path):
    """includeFolders/excludeFolders match the folder as archived, with its
    subfolders, letter case aside; what they leave out is skipped and counted."""
    d = str(tmp_path / "data")
    init_data_dir(d)
    src = tmp_path / "tree"
    layout = {"": 2, "Inbox": 3, "Inbox/Work": 2, "Sent": 4, "Junk": 5, "Junk/Old": 1, "Sentinel": 2}
    for folder, n in layout.items():
        write_emls(str(src / folder) if folder else str(src), n, "filt" + folder.replace("/", "").lower())
    # Exclude: Junk and below, "sent" in any case, but not Sentinel (a name that only begins the same).
    r = ok(d, "RunTemporaryProfile", properties=props(src, targetArchive="ex", excludeFolders="junk, SENT/"),
           raw=True)
    assert (r["archived"], r["skipped"]) == (2 + 3 + 2 + 2, 4 + 5 + 1), r
    assert folder_counts(d, "ex") == {"": 2, "Inbox": 3, "Inbox/Work": 2, "Sentinel": 2}
    # Include: Inbox with Inbox/Work, and Sent; the target folder is part of what they match.
    r = ok(d, "RunTemporaryProfile", properties=props(src, targetArchive="in", targetFolder="Imported",
                                                      includeFolders="Imported/Inbox,imported/sent"), raw=True)
    assert (r["archived"], r["skipped"]) == (3 + 2 + 4, 2 + 5 + 1 + 2), r
    assert folder_counts(d, "in") == {"Imported/Inbox": 3, "Imported/Inbox/Work": 2, "Imported/Sent": 4}


def mbox_text(word, n):
    return "".join("From a@example.org Mon Jan  1 00:00:00 2024\nFrom: a%d@example.org\nSubject: %s %d\n"
                   "Message-ID: <%s.%d@example.org>\n\nbody %s\n\n" % (i, word, i, word, i, word)
                   for i in range(n))


def test_a_directory_of_mbox_files(tmp_path):
    """format mbox on a directory: each mbox file, at any depth, into the
    folder its path names without the extension; a mail client's index files
    (not beginning as an mbox) are skipped, not refused."""
    d = str(tmp_path / "data")
    init_data_dir(d)
    src = tmp_path / "mail"
    (src / "Archive").mkdir(parents=True)
    (src / "Inbox").write_text(mbox_text("mbinbox", 3))
    (src / "Inbox.msf").write_text("// <!-- <mdb:mork:z v=\"1.4\"/> -->\n")
    (src / "Archive" / "2019.mbox").write_text(mbox_text("mbold", 2))
    (src / "Archive" / ".hidden").write_text(mbox_text("mbhidden", 1))
    r = ok(d, "RunTemporaryProfile", properties=props(src, format="mbox", targetArchive="mb"), raw=True)
    assert (r["archived"], r["skipped"], r["refused"]) == (5, 1, 0), r
    assert folder_counts(d, "mb") == {"Inbox": 3, "Archive/2019": 2}
    r = ok(d, "RunTemporaryProfile", properties=props(src, format="mbox", targetArchive="mb2",
                                                      targetFolder="Old mail", includeSubfolders="0"), raw=True)
    assert (r["archived"], r["refused"]) == (3, 0), r
    assert folder_counts(d, "mb2") == {"Old mail/Inbox": 3}
    # Deleting after archiving takes each mbox file once it is wholly archived.
    r = ok(d, "RunTemporaryProfile", properties=props(src, format="mbox", targetArchive="mb3",
                                                      afterArchiving="delete"), raw=True)
    assert (r["archived"], r["deleted"]) == (5, 2), r
    assert sorted(p.name for p in src.rglob("*")) == [".hidden", "Archive", "Inbox.msf"]
    env = call(d, "RunTemporaryProfile", properties=props(tmp_path / "empty", format="mbox"), raw=True)
    assert env["statusCode"] == "failed", env
    (tmp_path / "empty").mkdir()
    env = call(d, "RunTemporaryProfile", properties=props(tmp_path / "empty", format="mbox"), raw=True)
    assert env["statusCode"] == "failed" and "no mbox files" in env["error"]["message"], env
