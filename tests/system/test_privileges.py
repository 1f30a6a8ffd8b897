"""Users, privileges, the logon penalty, the audit log and the password
policy, against a real `mailvault serve` over HTTPS (mvserver.MvServer).

Each group of tests has its own data directory, filled BEFORE the server
starts with small generated messages in the archives alice (folders Inbox,
Secret, Scratch) and bob (Inbox).  Every message contains the word WORD, so
one search finds all of them, and what a user gets back shows exactly what
its folder privileges let through.

Note: MvServer.invoke/call/ok take `password` as the caller's password, so
functions that have a `password` argument (CreateUser, SetUserPassword) go
through Api.invoke here, which sends every keyword as a form field."""

import concurrent.futures
import datetime
import json
import os
import random
import re
import sqlite3
import time

import pytest

from mvserver import MvServer, init_with_admin
import storedb
from mvtest import mv, search_json

WORD = "quokka"
FOLDERS = {("alice", "Inbox"): 12, ("alice", "Secret"): 10, ("bob", "Inbox"): 10}


# ---- data ---------------------------------------------------------------------------------

def write_messages(directory, archive, folder, n):
    os.makedirs(directory, exist_ok=True)
    for i in range(n):
        tag = "%s-%s-%02d" % (archive, folder.lower(), i)
        raw = ("From: Sender %d <sender%d@example.net>\r\n"
               "To: %s@example.com\r\n"
               "Subject: %s report %s\r\n"
               "Date: Mon, %02d Jan 2024 10:%02d:00 +0000\r\n"
               "Message-ID: <%s@example.com>\r\n"
               "MIME-Version: 1.0\r\n"
               "Content-Type: text/plain; charset=us-ascii\r\n"
               "\r\n"
               "The %s in folder %s of %s says hello, number %d.\r\n"
               % (i, i, archive, WORD, tag, 1 + i % 28, i, tag, WORD, folder, archive, i))
        with open(os.path.join(directory, "%02d.eml" % i), "w", newline="") as f:
            f.write(raw)


def make_data_dir(root, folders=FOLDERS, scratch=False):
    """Initialised data dir with the given folders imported; returns
    (data_dir, admin password)."""
    d = os.path.join(str(root), "data")
    pw = init_with_admin(d)
    todo = dict(folders)
    if scratch:
        todo[("alice", "Scratch")] = 1
    for (archive, folder), n in todo.items():
        src = os.path.join(str(root), "eml", archive, folder)
        write_messages(src, archive, folder, n)
        cp = mv("import", src, "--archive", archive, "--folder", folder, "--json", data_dir=d)
        summary = json.loads(cp.stdout)
        assert summary["imported"] == n, summary
    return d, pw


# ---- the API client ---------------------------------------------------------------------------

class Api:
    """Calls functions as any user; every answer's text is kept in self.seen
    (to prove no password is ever sent back)."""

    def __init__(self, srv, admin_pw):
        self.srv = srv
        self.admin_pw = admin_pw
        self.pw = {"admin": admin_pw}
        self.seen = []

    def _auth(self, user, pw):
        return user, pw if pw is not None else self.pw.get(user, self.admin_pw)

    def raw(self, path, fields=None, user="admin", pw=None):
        user, pw = self._auth(user, pw)
        t0 = time.monotonic()
        status, body = self.srv.request(path, fields or {}, user=user, password=pw)
        self.last_seconds = time.monotonic() - t0
        self.seen.append(json.dumps(body) if not isinstance(body, bytes) else body.decode("utf-8", "replace"))
        return status, body

    def invoke(self, function, user="admin", pw=None, **fields):
        """(HTTP status, final envelope); follows a running call to its end."""
        fields = {k: (("true" if v else "false") if isinstance(v, bool) else
                      json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in fields.items()}
        status, env = self.raw("/api/invoke/" + function, fields, user, pw)
        deadline = time.time() + 300
        while status == 200 and isinstance(env, dict) and env.get("statusCode") == "running":
            assert time.time() < deadline, (function, env)
            status, env = self.raw("/api/get-status", {"token": env["token"],
                                                       "lastKnownStatusVersion": env["statusVersion"],
                                                       "millisecondsTimeout": 5000}, user, pw)
        return status, env

    def ok(self, function, user="admin", pw=None, **fields):
        status, env = self.invoke(function, user, pw, **fields)
        assert status == 200 and env["statusCode"] == "succeeded" and env["error"] is None, \
            (function, user, fields, status, env)
        return env["result"]

    def fail(self, function, user="admin", pw=None, **fields):
        """A refused call: HTTP 200, statusCode failed; returns the message."""
        status, env = self.invoke(function, user, pw, **fields)
        assert status == 200 and env["statusCode"] == "failed" and env["error"], \
            ("expected %s to be refused" % function, user, fields, status, env)
        assert env["result"] is None, env
        return env["error"]["message"]

    def forbidden(self, function, user, pw=None, **fields):
        status, env = self.invoke(function, user, pw, **fields)
        assert status == 403, ("expected HTTP 403", function, user, fields, status, env)
        assert isinstance(env, dict) and env["statusCode"] == "failed" and env["error"]["message"], env
        return env["error"]["message"]

    def status_of(self, path, user, pw=None, fields=None):
        return self.raw(path, fields or {}, user, pw)[0]

    def create_user(self, name, password, privileges="login", login="api", **extra):
        self.ok("CreateUser", userName=name, privileges=privileges, loginPrivileges=login, password=password,
                **extra)
        self.pw[name] = password

    # admin's view -----------------------------------------------------------------------
    def folder_stats(self):
        return {f["folder"]: (f["count"], f["size"]) for f in self.ok("GetFolderStatistics")}

    def message_ids(self, folder):
        return [m["id"] for m in self.ok("GetMessages", folder=folder)]

    def audit(self, **fields):
        return self.ok("GetAuditLog", **fields)


@pytest.fixture(scope="module")
def started():
    """Yields a function that starts a server (stopped, cleanly, at the end)."""
    servers = []

    def start(data_dir, password):
        s = MvServer(data_dir, password=password).start()
        servers.append(s)
        return s
    yield start
    for s in servers:
        s.stop()


def info_of(api, name):
    return api.ok("GetUserInfo", userName=name)


def grants_of(api, name):
    return {g["folder"]: g["privileges"] for g in info_of(api, name)["privilegesOnFolders"]}


def privset(text):
    return set(text.split(","))


# =====================================================================================
# 1. The user functions
# =====================================================================================

@pytest.fixture(scope="module")
def users_world(tmp_path_factory, started):
    d, pw = make_data_dir(tmp_path_factory.mktemp("users"))
    srv = started(d, pw)
    return {"dir": d, "srv": srv, "api": Api(srv, pw), "secrets": [pw], "pw": pw, "started": started}


def test_user_functions(users_world):
    api = users_world["api"]
    secrets = users_world["secrets"]
    p1, p2 = "Carol-First-Pw-7431", "Carol-Second-Pw-9902"
    secrets += [p1, p2]

    # CreateUser, GetUsers, GetUserInfo
    api.create_user("carol", p1, fullName="Carol Example")
    users = api.ok("GetUsers")
    assert {"userName": "carol", "fullName": "Carol Example", "distinguishedName": None,
            "authentication": "integrated"} in users, users
    assert {u["userName"] for u in users} == {"admin", "carol"}
    assert info_of(api, "carol") == {
        "userName": "carol", "fullName": "Carol Example", "distinguishedName": None,
        "authentication": "integrated", "emailAddresses": [], "pop3UserNames": [],
        "privileges": "login", "loginPrivileges": "api", "privilegesOnFolders": [], "mfaStatus": "none"}
    assert "nobody" in api.fail("GetUserInfo", userName="nobody")
    # the new user can log on, but may not call admin functions
    assert api.status_of("/api/get-metadata", "carol") == 200
    api.forbidden("GetUsers", "carol")

    # RenameUser: the old name stops working, the password follows
    assert api.ok("RenameUser", oldUserName="carol", newUserName="carol2") is None
    assert {u["userName"] for u in api.ok("GetUsers")} == {"admin", "carol2"}
    assert info_of(api, "carol2")["fullName"] == "Carol Example"
    assert api.status_of("/api/get-metadata", "carol", p1) == 401
    assert api.status_of("/api/get-metadata", "carol2", p1) == 200
    api.pw["carol2"] = p1
    assert "already exists" in api.fail("RenameUser", oldUserName="carol2", newUserName="admin")
    assert "ghost" in api.fail("RenameUser", oldUserName="ghost", newUserName="ghost2")
    assert {u["userName"] for u in api.ok("GetUsers")} == {"admin", "carol2"}

    # SetUserPassword: the old password stops working, the new one works
    api.ok("SetUserPassword", userName="carol2", password=p2)
    assert api.status_of("/api/get-metadata", "carol2", p1) == 401
    assert api.status_of("/api/get-metadata", "carol2", p2) == 200
    api.pw["carol2"] = p2

    # SetUserFullName (and clearing it)
    api.ok("SetUserFullName", userName="carol2", fullName="Carol Renamed")
    assert info_of(api, "carol2")["fullName"] == "Carol Renamed"
    api.ok("SetUserFullName", userName="carol2")
    assert info_of(api, "carol2")["fullName"] is None
    api.ok("SetUserFullName", userName="carol2", fullName="Carol Renamed")

    # SetUserEmailAddresses; a bad address is refused naming it, nothing changes
    api.ok("SetUserEmailAddresses", userName="carol2", emailAddresses="carol@example.com, c.two@example.org")
    assert info_of(api, "carol2")["emailAddresses"] == ["carol@example.com", "c.two@example.org"]
    msg = api.fail("SetUserEmailAddresses", userName="carol2", emailAddresses="ok@example.com,not-an-address")
    assert "not-an-address" in msg, msg
    assert info_of(api, "carol2")["emailAddresses"] == ["carol@example.com", "c.two@example.org"]

    # SetUserDistinguishedName
    dn = "CN=Carol Renamed,OU=Staff,DC=example,DC=com"
    api.ok("SetUserDistinguishedName", userName="carol2", distinguishedName=dn)
    assert info_of(api, "carol2")["distinguishedName"] == dn

    # SetUserAuthentication: a bad value is refused; directoryServices ends password logons
    msg = api.fail("SetUserAuthentication", userName="carol2", authentication="kerberos")
    assert "kerberos" in msg and "authentication" in msg, msg
    assert info_of(api, "carol2")["authentication"] == "integrated"
    api.ok("SetUserAuthentication", userName="carol2", authentication="directoryServices")
    assert info_of(api, "carol2")["authentication"] == "directoryServices"
    assert api.status_of("/api/get-metadata", "carol2") == 401
    api.ok("SetUserAuthentication", userName="carol2", authentication="integrated")
    assert api.status_of("/api/get-metadata", "carol2") == 200

    # SetUserPrivileges
    api.ok("SetUserPrivileges", userName="carol2", privileges="login,export")
    assert privset(info_of(api, "carol2")["privileges"]) == {"login", "export"}
    msg = api.fail("SetUserPrivileges", userName="carol2", privileges="login,superpower")
    assert "superpower" in msg, msg
    msg = api.fail("SetUserPrivileges", userName="carol2", privileges="none,admin")
    assert "none" in msg, msg
    assert privset(info_of(api, "carol2")["privileges"]) == {"login", "export"}
    api.ok("SetUserPrivileges", userName="carol2", privileges="none")
    assert info_of(api, "carol2")["privileges"] == "none"
    api.ok("SetUserPrivileges", userName="carol2", privileges="login")
    assert info_of(api, "carol2")["privileges"] == "login"
    api.forbidden("GetUsers", "carol2")

    # SetUserLoginPrivileges
    api.ok("SetUserLoginPrivileges", userName="carol2", loginPrivileges="imap,api")
    assert privset(info_of(api, "carol2")["loginPrivileges"]) == {"imap", "api"}
    msg = api.fail("SetUserLoginPrivileges", userName="carol2", loginPrivileges="api,telnet")
    assert "telnet" in msg, msg
    assert privset(info_of(api, "carol2")["loginPrivileges"]) == {"imap", "api"}

    # SetUserPop3UserNames
    api.ok("SetUserPop3UserNames", userName="carol2", pop3UserNames="pop.carol, carolpop")
    assert info_of(api, "carol2")["pop3UserNames"] == ["pop.carol", "carolpop"]

    # Folder privileges
    api.ok("SetUserPrivilegesOnFolder", userName="carol2", folder="alice/Inbox", privileges="read,write")
    assert grants_of(api, "carol2") == {"alice/Inbox": "read,write"}
    msg = api.fail("SetUserPrivilegesOnFolder", userName="carol2", folder="alice/Inbox", privileges="read,fly")
    assert "fly" in msg, msg
    api.ok("SetUserPrivilegesOnFolder", userName="carol2", folder="alice/Inbox", privileges="read")
    assert grants_of(api, "carol2") == {"alice/Inbox": "read"}
    api.ok("SetUserPrivilegesOnAllFolders", userName="carol2", privileges="read,delete", excludeFolders="bob")
    assert grants_of(api, "carol2") == {"alice": "read,delete", "alice/Inbox": "read"}
    api.ok("SetUserPrivilegesOnAllFolders", userName="carol2", privileges="read")
    assert grants_of(api, "carol2") == {"alice": "read", "alice/Inbox": "read", "bob": "read"}
    api.ok("ClearUserPrivilegesOnFolders", userName="carol2")
    assert grants_of(api, "carol2") == {}

    # DeleteAppPasswords
    assert api.ok("DeleteAppPasswords", userName="carol2") is None
    assert "ghost" in api.fail("DeleteAppPasswords", userName="ghost")

    # The whole record once more, all fields
    assert info_of(api, "carol2") == {
        "userName": "carol2", "fullName": "Carol Renamed", "distinguishedName": dn,
        "authentication": "integrated", "emailAddresses": ["carol@example.com", "c.two@example.org"],
        "pop3UserNames": ["pop.carol", "carolpop"], "privileges": "login",
        "loginPrivileges": info_of(api, "carol2")["loginPrivileges"], "privilegesOnFolders": [], "mfaStatus": "none"}

    # DeleteUser: the user is gone and its credentials answer 401
    assert api.status_of("/api/get-metadata", "carol2") == 200
    api.ok("DeleteUser", userName="carol2")
    assert {u["userName"] for u in api.ok("GetUsers")} == {"admin"}
    assert api.status_of("/api/get-metadata", "carol2") == 401
    assert api.status_of("/api/invoke/GetChildFolders", "carol2") == 401
    assert "carol2" in api.fail("GetUserInfo", userName="carol2")
    assert "carol2" in api.fail("DeleteUser", userName="carol2")

    # Duplicates are refused, also in another case
    p3 = "Dave-Pw-5518-x"
    secrets.append(p3)
    api.create_user("dave", p3)
    assert "already exists" in api.fail("CreateUser", userName="dave", privileges="login", password=p3 + "2")
    assert "already exists" in api.fail("CreateUser", userName="DAVE", privileges="login")
    assert api.status_of("/api/get-metadata", "dave", p3) == 200
    assert [u["userName"] for u in api.ok("GetUsers")].count("dave") == 1

    # The last administrator can be neither deleted nor demoted
    msg = api.fail("DeleteUser", userName="admin")
    assert "last" in msg and "admin" in msg, msg
    msg = api.fail("SetUserPrivileges", userName="admin", privileges="login")
    assert "last" in msg and "admin" in msg, msg
    msg = api.fail("SetUserPrivileges", userName="admin", privileges="none")
    assert "last" in msg, msg
    assert "admin" in privset(info_of(api, "admin")["privileges"])
    assert api.ok("GetUsers")
    # ... while with a second administrator that one may be demoted and deleted
    p4 = "Second-Admin-Pw-2207"
    secrets.append(p4)
    api.create_user("admin3", p4, privileges="admin,login")
    assert len(api.ok("GetUsers", user="admin3")) == 3
    api.ok("SetUserPrivileges", userName="admin3", privileges="login")
    api.forbidden("GetUsers", "admin3")
    api.ok("DeleteUser", userName="admin3")
    # and admin still is the administrator
    assert "admin" in privset(info_of(api, "admin")["privileges"])

    # No password in any answer, nor in the audit log
    log_text = json.dumps(api.audit())
    assert '"UserAdd"' in log_text and "(hidden)" in log_text
    for text in api.seen + [log_text]:
        for secret in secrets:
            assert secret not in text, "a password appears in an answer or the audit log: %s" % text[:2000]


def test_last_admin_survives_concurrent_demotions(users_world):
    """Two administrators demote each other at the same moment: one of the
    two changes is refused, an administrator always remains."""
    api = users_world["api"]
    p = "Fourth-Admin-Pw-5521"
    users_world["secrets"].append(p)
    api.create_user("admin4", p, privileges="admin,login")
    assert api.ok("GetUsers", user="admin4")
    try:
        demote_each_other(api)
    finally:
        # whatever happened, admin is an administrator again for the tests after this one
        api.invoke("SetUserPrivileges", user="admin4", userName="admin", privileges="admin,login")
    api.ok("DeleteUser", userName="admin4")
    assert "admin" in privset(info_of(api, "admin")["privileges"])


def demote_each_other(api):
    for _ in range(4):
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            a = pool.submit(api.invoke, "SetUserPrivileges", "admin", None, userName="admin4", privileges="login")
            b = pool.submit(api.invoke, "SetUserPrivileges", "admin4", None, userName="admin", privileges="login")
            outcomes = [a.result(), b.result()]
        won = [st == 200 and env["statusCode"] == "succeeded" for st, env in outcomes]
        # who still has the admin privilege (asked as each: only an admin may ask)
        admins = []
        for u in ("admin", "admin4"):
            st, env = api.invoke("GetUserInfo", user=u, userName=u)
            if st == 200 and "admin" in privset(env["result"]["privileges"]):
                admins.append(u)
        assert won.count(True) == 1, outcomes
        assert len(admins) == 1, (admins, outcomes)
        for st, env in outcomes:
            if st == 200 and env["statusCode"] == "failed":
                assert "last" in env["error"]["message"], outcomes
            else:
                assert st in (200, 403), outcomes
        survivor = admins[0]
        other = "admin4" if survivor == "admin" else "admin"
        api.ok("SetUserPrivileges", user=survivor, userName=other, privileges="admin,login")


# =====================================================================================
# 2. The privilege matrix
# =====================================================================================

MATRIX_USERS = ["r", "w", "d", "none", "deny", "admin2"]
NON_ADMINS = ["r", "w", "d", "none", "deny"]


@pytest.fixture(scope="module")
def world(tmp_path_factory, started):
    d, pw = make_data_dir(tmp_path_factory.mktemp("matrix"), scratch=True)
    srv = started(d, pw)
    api = Api(srv, pw)
    for name in MATRIX_USERS:
        api.create_user(name, "Pw-of-%s-4711" % name, privileges="admin,login" if name == "admin2" else "login")
    grants = {"r": [("alice", "read")], "w": [("alice", "read,write")], "d": [("alice", "read,delete")],
              "deny": [("alice", "read"), ("alice/Secret", "none")]}
    for name, items in grants.items():
        for folder, privileges in items:
            api.ok("SetUserPrivilegesOnFolder", userName=name, folder=folder, privileges=privileges)
    assert grants_of(api, "deny") == {"alice": "read", "alice/Secret": "none"}
    # alice/Scratch becomes an empty folder (for DeleteEmptyFolders)
    scratch = api.message_ids("alice/Scratch")
    assert len(scratch) == 1
    api.ok("DeleteMessage", id=scratch[0], reason="make alice/Scratch empty")
    stats = api.folder_stats()
    assert stats["alice/Scratch"][0] == 0, stats
    ids = {f: api.message_ids(f) for f in ("alice/Inbox", "alice/Secret", "bob/Inbox")}
    for (archive, folder), n in FOLDERS.items():
        assert len(ids["%s/%s" % (archive, folder)]) == n
    return {"dir": d, "srv": srv, "api": api, "ids": ids}


ALL_FOLDERS = {"alice", "alice/Inbox", "alice/Secret", "alice/Scratch", "bob", "bob/Inbox"}
ALICE_FOLDERS = {"alice", "alice/Inbox", "alice/Secret", "alice/Scratch"}
VISIBLE = {"r": ALICE_FOLDERS, "w": ALICE_FOLDERS, "d": ALICE_FOLDERS, "none": set(),
           "deny": ALICE_FOLDERS - {"alice/Secret"}, "admin2": ALL_FOLDERS, "admin": ALL_FOLDERS}


def no_foreign_text(text, user):
    """Nothing in an answer to a non-admin names bob's folders or messages."""
    if user in ("admin", "admin2"):
        return
    assert "bob/Inbox" not in text and "bob-inbox" not in text and "bob@example" not in text, \
        "an answer to %s reveals bob's archive: %s" % (user, text[:2000])
    if user in ("none", "deny"):
        assert "Secret" not in text and "alice-secret" not in text, \
            "an answer to %s reveals alice/Secret: %s" % (user, text[:2000])


def test_matrix_listings_and_search(world):
    api, ids = world["api"], world["ids"]
    stats = api.folder_stats()
    assert set(stats) == ALL_FOLDERS
    all_ids = set(ids["alice/Inbox"]) | set(ids["alice/Secret"]) | set(ids["bob/Inbox"])
    for user in MATRIX_USERS + ["admin"]:
        # GetChildFolders
        folders = api.ok("GetChildFolders", user=user)
        no_foreign_text(json.dumps(folders), user)
        assert {f["folder"] for f in folders} == VISIBLE[user], (user, folders)
        for f in folders:
            assert f["count"] == stats[f["folder"]][0], (user, f, stats)
        # GetChildFolders of a folder it may not read is refused
        if user not in ("admin", "admin2"):
            api.fail("GetChildFolders", user=user, folder="bob")
        else:
            assert {f["folder"] for f in api.ok("GetChildFolders", user=user, folder="bob")} == {"bob/Inbox"}
        if user == "deny":
            api.fail("GetChildFolders", user=user, folder="alice/Secret")
            assert {f["folder"] for f in api.ok("GetChildFolders", user=user, folder="alice")} == \
                {"alice/Inbox", "alice/Scratch"}
        # GetFolderStatistics
        result = api.ok("GetFolderStatistics", user=user)
        no_foreign_text(json.dumps(result), user)
        fs = {f["folder"]: (f["count"], f["size"]) for f in result}
        assert set(fs) == VISIBLE[user], (user, fs)
        assert all(fs[k] == stats[k] for k in fs), (user, fs, stats)
        # GetMessages
        for folder in ("alice/Inbox", "alice/Secret", "bob/Inbox"):
            if folder in VISIBLE[user]:
                got = api.ok("GetMessages", user=user, folder=folder)
                no_foreign_text(json.dumps(got), user)
                assert [m["id"] for m in got] == ids[folder], (user, folder)
            else:
                api.fail("GetMessages", user=user, folder=folder)
        # SearchMessages: a word every message has
        hits = api.ok("SearchMessages", user=user, query=WORD, limit=1000)
        no_foreign_text(json.dumps(hits), user)
        expected = set()
        for folder in ("alice/Inbox", "alice/Secret", "bob/Inbox"):
            if folder in VISIBLE[user]:
                expected |= set(ids[folder])
        assert {h["id"] for h in hits} == expected, (user, len(hits), len(expected))
        assert len(hits) == len(expected), user
        assert {h["id"] for h in hits} <= all_ids
        if user not in ("admin", "admin2"):
            assert all(h["archive"] == "alice" for h in hits), user
            # an archive it may not read is one that does not exist
            assert api.fail("SearchMessages", user=user, query=WORD, archive="bob", limit=1000) == \
                "SearchMessages: folder 'bob' does not exist", user
            assert api.fail("SearchMessages", user=user, query=WORD, archive="zed", limit=1000) == \
                "SearchMessages: folder 'zed' does not exist", user
        if user == "deny":
            assert all(h["folder"] == "Inbox" for h in hits), hits


def assert_unchanged(api, before, what):
    after = api.folder_stats()
    assert after == before, "%s changed the archive: before %s, after %s" % (what, before, after)


def test_matrix_move_folder(world):
    api = world["api"]
    n_inbox = len(world["ids"]["alice/Inbox"])
    for user in ["r", "d", "none", "deny"]:
        before = api.folder_stats()
        api.fail("MoveFolder", user=user, fromFolder="alice/Inbox", toFolder="alice/Moved")
        assert_unchanged(api, before, "a refused MoveFolder by %s" % user)
    for user in NON_ADMINS:
        before = api.folder_stats()
        api.fail("MoveFolder", user=user, fromFolder="bob/Inbox", toFolder="bob/X")
        assert_unchanged(api, before, "a refused MoveFolder of bob/Inbox by %s" % user)
    # w may move inside alice, but not out of it
    before = api.folder_stats()
    api.fail("MoveFolder", user="w", fromFolder="alice/Inbox", toFolder="bob/Stolen")
    assert_unchanged(api, before, "a refused MoveFolder alice -> bob by w")
    assert api.ok("MoveFolder", user="w", fromFolder="alice/Inbox", toFolder="alice/Moved") is None
    stats = api.folder_stats()
    assert "alice/Inbox" not in stats and stats["alice/Moved"][0] == n_inbox, stats
    assert {f["folder"] for f in api.ok("GetChildFolders", user="w")} == \
        ALICE_FOLDERS - {"alice/Inbox"} | {"alice/Moved"}
    api.ok("MoveFolder", user="w", fromFolder="alice/Moved", toFolder="alice/Inbox")
    assert api.folder_stats() == before
    # admin2 may touch bob
    api.ok("MoveFolder", user="admin2", fromFolder="bob/Inbox", toFolder="bob/X")
    stats = api.folder_stats()
    assert "bob/Inbox" not in stats and stats["bob/X"][0] == len(world["ids"]["bob/Inbox"]), stats
    api.ok("MoveFolder", user="admin2", fromFolder="bob/X", toFolder="bob/Inbox")
    assert api.folder_stats() == before
    assert api.message_ids("bob/Inbox") == world["ids"]["bob/Inbox"]


def test_matrix_delete_empty_folders(world):
    api = world["api"]
    for user in ["r", "w", "none", "deny"]:
        before = api.folder_stats()
        api.fail("DeleteEmptyFolders", user=user, folder="alice")
        api.fail("DeleteEmptyFolders", user=user, folder="alice/Scratch")
        api.fail("DeleteEmptyFolders", user=user)
        assert_unchanged(api, before, "a refused DeleteEmptyFolders by %s" % user)
    # bob's archive is out of reach: nothing there changes
    for user in NON_ADMINS:
        before = api.folder_stats()
        api.invoke("DeleteEmptyFolders", user=user, folder="bob")
        api.invoke("DeleteEmptyFolders", user=user, folder="bob/Inbox")
        assert_unchanged(api, before, "DeleteEmptyFolders of bob by %s" % user)
    # d may
    before = api.folder_stats()
    assert api.ok("DeleteEmptyFolders", user="d", folder="alice") == {"deletedFolders": 1}
    after = api.folder_stats()
    assert set(after) == set(before) - {"alice/Scratch"}, after
    assert all(after[k] == before[k] for k in after)
    assert api.ok("DeleteEmptyFolders", user="admin2", folder="alice") == {"deletedFolders": 0}
    assert api.folder_stats() == after


def test_matrix_delete_message(world):
    api, ids = world["api"], world["ids"]
    id_a, id_s, id_b = ids["alice/Inbox"][0], ids["alice/Secret"][0], ids["bob/Inbox"][0]

    def refused(user, msg_id, reason):
        before = api.folder_stats()
        msg = api.fail("DeleteMessage", user=user, id=msg_id, reason="test by %s" % user)
        assert_unchanged(api, before, "a refused DeleteMessage of %s by %s" % (msg_id, user))
        folder = [f for f, l in ids.items() if msg_id in l][0]
        assert msg_id in api.message_ids(folder)
        if reason == "hidden":
            assert "does not exist" in msg, msg
            no_foreign_text(msg, user)
        else:
            assert "delete" in msg, msg
        return msg

    for user in ["r", "w", "deny"]:
        refused(user, id_a, "privilege")
    refused("none", id_a, "hidden")
    refused("deny", id_s, "hidden")
    for user in NON_ADMINS:
        refused(user, id_b, "hidden")
    # d may delete alice's messages
    assert api.ok("DeleteMessage", user="d", id=id_a, reason="retention") is None
    assert id_a not in api.message_ids("alice/Inbox")
    assert api.message_ids("alice/Inbox") == ids["alice/Inbox"][1:]
    assert id_a not in {h["id"] for h in api.ok("SearchMessages", query=WORD, limit=1000)}
    # admin2 may delete bob's
    assert api.ok("DeleteMessage", user="admin2", id=id_b, reason="retention") is None
    assert api.message_ids("bob/Inbox") == ids["bob/Inbox"][1:]
    ids["alice/Inbox"] = ids["alice/Inbox"][1:]
    ids["bob/Inbox"] = ids["bob/Inbox"][1:]


def test_matrix_admin_functions_forbidden(world):
    api = world["api"]
    stores_before = api.ok("GetStores")
    for user in NON_ADMINS:
        for function, args in [("GetUsers", {}), ("GetUserInfo", {"userName": user}),
                               ("CreateStore", {"name": "by-" + user}), ("VerifyStore", {"id": 1}),
                               ("VerifyStores", {}), ("GetAuditLog", {}), ("GetServerInfo", {}),
                               ("CreateUser", {"userName": "evil-" + user, "privileges": "admin,login"}),
                               ("SetUserPrivileges", {"userName": user, "privileges": "admin,login"}),
                               ("SetUserPrivilegesOnAllFolders", {"userName": user, "privileges": "read,write,delete"}),
                               ("SetUserPrivilegesOnFolder", {"userName": user, "folder": "bob",
                                                              "privileges": "read"}),
                               ("SetComplianceConfiguration", {"config": {"legalHoldEnabled": True}})]:
            api.forbidden(function, user, **args)
        # and a made-up function is still unknown, not forbidden
        assert api.status_of("/api/invoke/NoSuchFunction", user) == 404
        # nothing changed: still no admin, same grants, no new user or store
        assert info_of(api, user)["privileges"] == "login"
    assert api.ok("GetStores") == stores_before
    assert {u["userName"] for u in api.ok("GetUsers")} == set(MATRIX_USERS) | {"admin"}
    assert grants_of(api, "r") == {"alice": "read"}
    assert api.ok("GetComplianceConfiguration")["legalHoldEnabled"] is False
    # admin2 may
    assert {u["userName"] for u in api.ok("GetUsers", user="admin2")} == set(MATRIX_USERS) | {"admin"}
    api.ok("VerifyStore", user="admin2", id=1)
    api.ok("CreateStore", user="admin2", name="by-admin2")
    assert len(api.ok("GetStores")) == len(stores_before) + 1
    denied = [e for e in api.audit() if e["event"] == "AccessDenied"]
    assert {e["user"] for e in denied} == set(NON_ADMINS)
    assert all(e["success"] is False and e["remote"] == "127.0.0.1" for e in denied)


def test_no_api_login_privilege_is_forbidden_everything(world):
    api = world["api"]
    api.create_user("noapi", "Pw-of-noapi-4711", login="web,imap")
    api.ok("SetUserPrivilegesOnFolder", userName="noapi", folder="alice", privileges="read")
    api.create_user("noapiadmin", "Pw-of-noapiadmin-4711", privileges="admin,login", login="windows,web")
    for user in ("noapi", "noapiadmin"):
        assert api.status_of("/api/get-metadata", user) == 403
        assert api.status_of("/api/get-status", user, fields={"token": "x"}) == 403
        assert api.status_of("/api/cancel-async", user, fields={"token": "x"}) == 403
        for function, args in [("GetChildFolders", {}), ("GetMessages", {"folder": "alice/Inbox"}),
                               ("SearchMessages", {"query": WORD}), ("GetUsers", {}), ("GetServerInfo", {})]:
            api.forbidden(function, user, **args)
    # giving the api login privilege lets them in
    api.ok("SetUserLoginPrivileges", userName="noapi", loginPrivileges="web,api")
    assert api.status_of("/api/get-metadata", "noapi") == 200
    assert len(api.ok("GetMessages", user="noapi", folder="alice/Inbox")) == len(world["ids"]["alice/Inbox"])
    # changes take effect at once, for a user whose password the server has verified already
    api.ok("ClearUserPrivilegesOnFolders", userName="noapi")
    api.fail("GetMessages", user="noapi", folder="alice/Inbox")
    assert api.ok("GetChildFolders", user="noapi") == []
    assert api.ok("SearchMessages", user="noapi", query=WORD) == []
    api.ok("SetUserLoginPrivileges", userName="noapi", loginPrivileges="web")
    assert api.status_of("/api/get-metadata", "noapi") == 403


def test_cli_search_as_user(world):
    d, ids = world["dir"], world["ids"]
    alice = set(ids["alice/Inbox"]) | set(ids["alice/Secret"])
    hits = search_json(WORD, d, limit=0, extra=("--as-user", "r"))
    assert {h["id"] for h in hits} == alice and len(hits) == len(alice)
    assert {h["archive"] for h in hits} == {"alice"}
    hits = search_json(WORD, d, limit=0, extra=("--as-user", "deny"))
    assert {h["id"] for h in hits} == set(ids["alice/Inbox"])
    assert search_json(WORD, d, limit=0, extra=("--as-user", "none")) == []
    everything = search_json(WORD, d, limit=0)
    assert {h["id"] for h in everything} == alice | set(ids["bob/Inbox"])
    cp = mv("search", WORD, "--json", "--as-user", "nobody-at-all", data_dir=d, check=False)
    assert cp.returncode != 0 and b"nobody-at-all" in cp.stderr, cp


def test_archive_names_cannot_read_as_folder_paths(tmp_path):
    """Issue 9.1: an archive named "a/b" was readable through a grant on the
    folder "a".  Such names are refused wherever they come in, privileges
    match the archive as a whole component, and a store that already holds
    one (written before the rule) is reported by VerifyStore."""
    d = str(tmp_path / "d")
    init_with_admin(d)
    eml = tmp_path / "q3.eml"
    eml.write_bytes(b"From: cfo@example.com\r\nSubject: quarterly numbers\r\n\r\nquarterly\r\n")
    for bad, why in (("a/b", "'/'"), ("x\x01y", "control character"), ("", "")):
        cp = mv("import", str(eml), "--archive", bad, data_dir=d, check=False)
        assert cp.returncode == 2 and b"--archive" in cp.stderr and why.encode() in cp.stderr, (bad, cp.stderr)
    # an old store holding "a/b": written as "ab" and renamed under the rules' feet
    mv("import", str(eml), "--archive", "ab", data_dir=d)
    db = storedb.connect(d)
    db.execute("UPDATE folders SET archive='a/b' WHERE archive='ab'")
    db.commit()
    db.close()
    assert [h["archive"] for h in search_json("quarterly", d)] == ["a/b"]
    mv("cmd", "CreateUser", "--userName=frank", "--privileges=login", "--password=Frank-Pw-2231-z", data_dir=d)
    for grant in ("a", "A", "a/b"):
        mv("cmd", "SetUserPrivilegesOnFolder", "--userName=frank", "--folder=" + grant, "--privileges=read",
           data_dir=d)
        assert search_json("quarterly", d, extra=("--as-user", "frank")) == [], \
            "a grant on folder %r reaches the archive named 'a/b'" % grant
    report = json.loads(mv("cmd", "VerifyStore", "--id=1", data_dir=d).stdout)["result"]
    names = [p for p in report["problems"] if p["kind"] == "archiveName"]
    assert report["clean"] is False and len(names) == 1 and "'a/b'" in names[0]["detail"], report


def test_delete_empty_folders_does_not_reveal_hidden_folders(tmp_path, started):
    """Issue 19.13: DeleteEmptyFolders by a user with delete on alice was
    refused, naming "a folder below 'alice'", when an empty folder it may
    not see lay below: the refusal told it that the folder exists.  Now the
    folders it may not delete stay, as do the folders above them, and the
    answer is the same as if the hidden folder did not exist."""
    folders = {("alice", "Inbox"): 1, ("alice", "Gone"): 1, ("alice", "Hidden"): 1, ("alice", "Hidden/Deep"): 1}
    d, pw = make_data_dir(tmp_path, folders)
    api = Api(started(d, pw), pw)
    api.create_user("cleaner", "Cleaner-Pw-3318-x")
    api.ok("SetUserPrivilegesOnFolder", userName="cleaner", folder="alice", privileges="read,delete")
    api.ok("SetUserPrivilegesOnFolder", userName="cleaner", folder="alice/Hidden/Deep", privileges="none")
    for folder in ("alice/Gone", "alice/Hidden", "alice/Hidden/Deep"):
        for mid in api.message_ids(folder):
            api.ok("DeleteMessage", id=mid, reason="empty it")
    seen = len(api.seen)
    answer = api.ok("DeleteEmptyFolders", user="cleaner", folder="alice")
    assert "Deep" not in json.dumps(api.seen[seen:])     # the answer does not name the hidden folder
    # alice/Gone went; alice/Hidden/Deep is not cleaner's to delete, so it
    # and alice/Hidden above it stay
    assert answer == {"deletedFolders": 1}, answer
    assert set(api.folder_stats()) == {"alice", "alice/Inbox", "alice/Hidden", "alice/Hidden/Deep"}
    # the administrator removes them
    assert api.ok("DeleteEmptyFolders", folder="alice") == {"deletedFolders": 2}


def test_unicode_spellings_of_a_folder_are_one_folder(tmp_path):
    """Issue 19.2: a folder imported as "Cafe\u0301" (decomposed, as macOS
    writes it) with "none" on "alice/Caf\u00e9" (precomposed) was readable.
    Names are stored in NFC and privileges compare folded NFC, so either
    spelling of a grant covers the folder; VerifyStore reports a name a
    store holds in another form."""
    d = str(tmp_path / "d")
    init_with_admin(d)
    decomposed, precomposed = "Cafe\u0301", "Caf\u00e9"
    src = tmp_path / "eml" / decomposed
    src.mkdir(parents=True)
    (src / "m.eml").write_bytes(b"From: a@example.com\r\nSubject: croissant\r\n\r\ncroissant\r\n")
    mv("import", str(tmp_path / "eml"), "--archive", "alice", data_dir=d)
    hits = search_json("croissant", d)
    assert [h["folder"] for h in hits] == [precomposed], hits      # stored in NFC
    mv("cmd", "CreateUser", "--userName=u", "--privileges=login", "--password=U-Pw-8812-long", data_dir=d)
    mv("cmd", "SetUserPrivilegesOnFolder", "--userName=u", "--folder=alice", "--privileges=read", data_dir=d)
    assert len(search_json("croissant", d, extra=("--as-user", "u"))) == 1
    for spelling in (precomposed, decomposed, "CAFE\u0301"):
        mv("cmd", "SetUserPrivilegesOnFolder", "--userName=u", "--folder=alice/" + spelling, "--privileges=none",
           data_dir=d)
        assert search_json("croissant", d, extra=("--as-user", "u")) == [], spelling
        mv("cmd", "SetUserPrivilegesOnFolder", "--userName=u", "--folder=alice/" + spelling,
           "--privileges=read", data_dir=d)
    # a folder argument typed in either form names the one folder
    for spelling in (precomposed, decomposed):
        got = json.loads(mv("cmd", "GetMessages", "--folder=alice/" + spelling, data_dir=d).stdout)["result"]
        assert len(got) == 1, (spelling, got)
    # a store written before: its folder row in the decomposed form
    db = storedb.connect(d)
    db.execute("UPDATE folders SET path=? WHERE path=?", (decomposed, precomposed))
    db.commit()
    db.close()
    report = json.loads(mv("cmd", "VerifyStore", "--id=1", data_dir=d).stdout)["result"]
    nfc = [p for p in report["problems"] if p["kind"] == "nameNotNfc"]
    assert report["clean"] is False and len(nfc) == 1 and "NFC" in nfc[0]["detail"], report
    mv("cmd", "SetUserPrivilegesOnFolder", "--userName=u", "--folder=alice/" + precomposed, "--privileges=none",
       data_dir=d)
    assert search_json("croissant", d, extra=("--as-user", "u")) == []
    # RepairStoreDatabase renames it to NFC (recoverably, as MoveFolder does)
    repair = json.loads(mv("cmd", "RepairStoreDatabase", "--id=1", data_dir=d).stdout)["result"]
    assert repair["namesNormalized"] == [{"archive": "alice", "folder": decomposed}], repair
    assert repair["namesNotNormalized"] == [], repair
    report = json.loads(mv("cmd", "VerifyStore", "--id=1", data_dir=d).stdout)["result"]
    assert not [p for p in report["problems"] if p["kind"] == "nameNotNfc"], report
    got = json.loads(mv("cmd", "GetMessages", "--folder=alice/" + precomposed, data_dir=d).stdout)["result"]
    assert len(got) == 1, got
    # both spellings held by two folders: left for the administrator, and said so
    other = tmp_path / "eml2" / "Other"
    other.mkdir(parents=True)
    (other / "m.eml").write_bytes(b"From: a@example.com\r\nSubject: brioche\r\n\r\nbrioche\r\n")
    mv("import", str(tmp_path / "eml2"), "--archive", "alice", data_dir=d)
    db = storedb.connect(d)
    db.execute("UPDATE folders SET path=? WHERE path='Other'", (decomposed,))
    db.commit()
    db.close()
    repair = json.loads(mv("cmd", "RepairStoreDatabase", "--id=1", data_dir=d).stdout)["result"]
    assert repair["namesNormalized"] == [], repair
    left = repair["namesNotNormalized"]
    assert len(left) == 1 and left[0]["folder"] == decomposed and "NFC name exists" in left[0]["reason"], repair


# =====================================================================================
# 3. The growing delay on bad passwords
# =====================================================================================

@pytest.fixture(scope="module")
def delay_world(tmp_path_factory, started):
    d = os.path.join(str(tmp_path_factory.mktemp("delay")), "data")
    pw = init_with_admin(d)
    srv = started(d, pw)
    return {"dir": d, "srv": srv, "api": Api(srv, pw)}


def audit_epoch(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def test_growing_delay_on_bad_passwords(delay_world):
    api = delay_world["api"]
    api.create_user("victim", "Victim-Pw-3141")
    assert api.status_of("/api/get-metadata", "victim") == 200

    times, answered = [], []
    for i in range(5):
        assert api.status_of("/api/get-metadata", "victim", "wrong-%d" % i) == 401
        times.append(api.last_seconds)
        answered.append(time.time())
    # How long each answer was held back: from the moment the server had
    # checked the password (the time of its UserLogonFailed entry) to the
    # answer.  Unlike the whole response time this leaves out TLS and
    # Argon2id, which on a loaded machine take several tenths of a second.
    failed = [e for e in api.audit() if e["event"] == "UserLogonFailed"]
    assert len(failed) == 5, failed
    held = [a - audit_epoch(e["time"]) for a, e in zip(answered, failed)]
    report = "response times %s, held back %s" % (["%.3f" % t for t in times], ["%.3f" % h for h in held])
    assert times[0] >= 0.2 and held[0] >= 0.2, report
    for i in range(4):
        assert held[i + 1] >= 1.6 * held[i], report
    # Whole response times carry Argon2id and TLS, whose jitter on a loaded
    # machine exceeds the first steps (0.25 s): only their growth overall.
    assert times[4] > times[0] + 2.0, report

    # the right password gets in, and resets the count
    t0 = time.monotonic()
    assert api.status_of("/api/get-metadata", "victim") == 200
    assert time.monotonic() - t0 < 10, report
    assert api.status_of("/api/get-metadata", "victim", "wrong-again") == 401
    assert api.last_seconds < times[2] and api.last_seconds < 1.5 * times[0] + 0.2, \
        "after a good logon a bad password took %.3f s (%s)" % (api.last_seconds, report)
    assert api.status_of("/api/get-metadata", "victim") == 200
    # an unknown user fails the same way
    assert api.status_of("/api/get-metadata", "nosuchuser", "whatever") == 401
    assert api.status_of("/api/get-metadata", "victim") == 200

    failed = [e for e in api.audit() if e["event"] == "UserLogonFailed"]
    assert [e["user"] for e in failed] == ["victim"] * 6 + ["nosuchuser"], failed
    assert all(e["remote"] == "127.0.0.1" and e["success"] is False for e in failed), failed
    assert not any("wrong-" in json.dumps(e) for e in api.audit()), "a tried password is in the audit log"


# =====================================================================================
# 4. The audit log
# =====================================================================================

@pytest.fixture(scope="module")
def audit_world(tmp_path_factory, started):
    d, pw = make_data_dir(tmp_path_factory.mktemp("audit"), folders={("alice", "Inbox"): 10})
    srv = started(d, pw)
    return {"dir": d, "srv": srv, "api": Api(srv, pw), "pw": pw, "started": started}


def entry_for(entries, event, function=None, success=True):
    found = [e for e in entries if e["event"] == event and e["success"] is success and
             (function is None or json.loads(e["details"]).get("function") == function)]
    assert found, "no %s entry (success %s) in %s" % (event, success, json.dumps(entries, indent=1)[:4000])
    return found[-1]


def test_audit_log_entries(audit_world):
    api = audit_world["api"]
    start = api.audit()
    eve_pw = "Eve-Pw-6612-q"
    api.create_user("eve", eve_pw)
    api.ok("RenameUser", oldUserName="eve", newUserName="eve2")
    api.pw["eve2"] = eve_pw
    msg = api.fail("CreateUser", userName="eve2", privileges="login")
    api.ok("SetComplianceConfiguration", config={"legalHoldEnabled": False})
    api.ok("CreateStore", name="audit-store")
    victim = api.message_ids("alice/Inbox")[0]
    api.ok("DeleteMessage", id=victim, reason="audit test reason")
    api.forbidden("GetUsers", "eve2")
    api.ok("DeleteUser", userName="eve2")

    entries = api.audit()
    new = entries[len(start):]
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    for event, function in [("UserAdd", "CreateUser"), ("UserRename", "RenameUser"),
                            ("ComplianceChangeSettings", "SetComplianceConfiguration"),
                            ("FileGroupCreate", "CreateStore"), ("MessageDelete", "DeleteMessage"),
                            ("UserDelete", "DeleteUser")]:
        e = entry_for(new, event, function)
        assert e["user"] == "admin" and e["remote"] == "127.0.0.1" and e["success"] is True, e
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["time"]), e
        assert re.fullmatch(r"[0-9a-f]{64}", e["hash"]), e
    assert victim in entry_for(new, "MessageDelete")["details"]
    assert "audit test reason" in entry_for(new, "MessageDelete")["details"]
    assert "eve2" in entry_for(new, "UserDelete")["details"]
    bad = entry_for(new, "UserAdd", "CreateUser", success=False)
    assert bad["user"] == "admin" and bad["remote"] == "127.0.0.1", bad
    assert "already exists" in bad["details"] and "already exists" in msg
    denied = entry_for(new, "AccessDenied", success=False)
    assert denied["user"] == "eve2" and denied["remote"] == "127.0.0.1" and "GetUsers" in denied["details"]
    assert eve_pw not in json.dumps(entries)
    # reads are not logged
    n = len(api.audit())
    api.ok("GetUsers")
    api.ok("GetMessages", folder="alice/Inbox")
    assert len(api.audit()) == n

    # since: entries at or after a point in time
    pivot = entry_for(entries, "UserRename")
    since = api.audit(since=pivot["time"])
    assert since == [e for e in entries if e["time"] >= pivot["time"]] and since[0]["seq"] <= pivot["seq"]
    assert api.audit(since=str(int(time.time()) + 3600)) == []
    assert api.audit(since="0") == entries
    assert len(api.audit(limit=3)) == 3
    assert "since" in api.fail("GetAuditLog", since="yesterday-ish")

    v = api.ok("VerifyAuditLog")
    assert v["intact"] is True and v["firstBrokenEntry"] is None and v["reason"] is None, v
    assert v["entries"] == len(api.audit()), v


def test_audit_records_refused_calls(audit_world):
    """Issue 9.3: calls refused before their handler ran — a missing or
    ill-typed argument, an unknown function — are audited with function,
    user, address and reason, and never an argument's value."""
    api = audit_world["api"]
    start = len(api.audit())
    secret = "Never-Logged-4417-pw"
    assert "missing argument 'privileges'" in api.fail("CreateUser", userName="zed", password=secret)
    assert "integer" in api.fail("VerifyStore", id="abc")
    status, env = api.raw("/api/invoke/NoSuchFunction", {"password": secret})
    assert status == 404 and "NoSuchFunction" in env["error"]["message"], (status, env)
    new = api.audit()[start:]
    add = entry_for(new, "UserAdd", "CreateUser", success=False)
    assert add["user"] == "admin" and add["remote"] == "127.0.0.1", add
    details = json.loads(add["details"])
    assert "missing argument 'privileges'" in details["error"] and details["arguments"] == ["password", "userName"]
    verify = entry_for(new, "AdminApiCall", "VerifyStore", success=False)
    assert "'id'" in json.loads(verify["details"])["error"], verify
    unknown = entry_for(new, "AdminApiCall", "NoSuchFunction", success=False)
    assert "unknown function" in json.loads(unknown["details"])["error"], unknown
    assert secret not in json.dumps(new), "a refused call's argument value reached the audit log"


def test_audit_records_every_import(audit_world, tmp_path):
    """Issue 9.3: every import is audited — source, archive, counts at the
    end — and so is an import that could not start."""
    entries = audit_cli(audit_world["dir"], "--json", check=True)
    runs = [e for e in json_lines(entries) if e["event"] == "ArchiveRun"]
    assert runs, "the import that filled this data directory left no ArchiveRun entry"
    d = json.loads(runs[0]["details"])
    assert runs[0]["success"] is True and runs[0]["remote"] == "local", runs[0]
    assert d["archives"] == ["alice"] and d["imported"] == 10 and d["refused"] == 0, d
    assert d["source"].endswith(os.path.join("alice", "Inbox")), d
    # a local data directory of its own: the one above is held by its server
    local = str(tmp_path / "d")
    init_with_admin(local)
    missing = str(tmp_path / "no-such.eml")
    cp = mv("import", missing, "--archive", "zoe", data_dir=local, check=False)
    assert cp.returncode != 0
    failed = [e for e in json_lines(audit_cli(local, "--json")) if e["event"] == "ArchiveRun"]
    assert len(failed) == 1 and failed[0]["success"] is False, failed
    d = json.loads(failed[0]["details"])
    assert d["source"] == missing and d["archive"] == "zoe" and "no-such.eml" in d["error"], d


@pytest.fixture(scope="module")
def hold_world(tmp_path_factory, started):
    d, pw = make_data_dir(tmp_path_factory.mktemp("hold"), folders={("alice", "Inbox"): 4}, scratch=True)
    srv = started(d, pw)
    return {"dir": d, "srv": srv, "api": Api(srv, pw)}


def test_legal_hold_refuses_every_removal(hold_world):
    """Issue 9.2: while legal hold is on, DeleteMessage (admin or a user with
    the delete privilege), CompactStore and DeleteEmptyFolders refuse with
    a clear error, nothing changes, and each attempt is audited."""
    api = hold_world["api"]
    api.create_user("holly", "Holly-Pw-8821-x", privileges="login")
    api.ok("SetUserPrivilegesOnFolder", userName="holly", folder="alice", privileges="read,delete")
    victim = api.message_ids("alice/Inbox")[0]
    api.ok("DeleteMessage", id=victim, reason="before the hold")      # leaves a record for compaction
    stats_before = api.folder_stats()
    start = len(api.audit())
    api.ok("SetComplianceConfiguration", config={"adminEmailPreviewEnabled": True, "legalHoldEnabled": True,
                                                 "passwordPolicyEnabled": False,
                                                 "logSuccessfulUserActivities": []})
    ids = api.message_ids("alice/Inbox")
    for user in ("admin", "holly"):
        msg = api.fail("DeleteMessage", user=user, id=ids[0], reason="under hold")
        assert "legal hold" in msg and "DeleteMessage" in msg, msg
    assert "legal hold" in api.fail("CompactStore", id=1)
    assert "legal hold" in api.fail("DeleteEmptyFolders")
    assert "legal hold" in api.fail("DeleteEmptyFolders", user="holly", folder="alice")
    assert api.message_ids("alice/Inbox") == ids and api.folder_stats() == stats_before
    new = api.audit()[start:]
    refused = [e for e in new if e["success"] is False and "legal hold" in e["details"]]
    assert {(e["event"], e["user"]) for e in refused} >= {("MessageDelete", "admin"), ("MessageDelete", "holly"),
                                                         ("AdminApiCall", "admin")}, new
    # the same calls work once the hold is lifted: the refusals were the hold's
    api.ok("SetComplianceConfiguration", config={"adminEmailPreviewEnabled": True, "legalHoldEnabled": False,
                                                 "passwordPolicyEnabled": False,
                                                 "logSuccessfulUserActivities": []})
    api.ok("DeleteMessage", user="holly", id=ids[0], reason="after the hold")
    assert api.ok("CompactStore", id=1)["recordsDropped"] >= 2
    # Issue 19.4: a user's deletion and move are audited with
    # logSuccessfulUserActivities empty (that setting governs reads only)
    api.ok("SetUserPrivilegesOnFolder", userName="holly", folder="alice", privileges="read,write,delete")
    api.ok("MoveFolder", user="holly", fromFolder="alice/Scratch", toFolder="alice/Scratched")
    done = [(e["event"], e["user"]) for e in api.audit() if e["success"] is True]
    assert ("MessageDelete", "holly") in done, done
    moves = [e for e in api.audit() if e["user"] == "holly" and e["success"] is True and
             json.loads(e["details"]).get("function") == "MoveFolder"]
    assert len(moves) == 1 and "alice/Scratched" in moves[0]["details"], moves


def tamper(data_dir, sql, *params):
    db = sqlite3.connect(os.path.join(data_dir, "master.sqlite"))
    try:
        cur = db.execute(sql, params)
        assert cur.rowcount == 1, (sql, params)
        db.commit()
    finally:
        db.close()


def restart(world):
    world["srv"].stop()
    srv = world["started"](world["dir"], world["pw"])
    world["srv"] = srv
    world["api"].srv = srv
    return world["api"]


def ensure_activity(audit_world):
    """The entries the tampering tests change: a UserRename before a
    FileGroupCreate, with an entry after it; made here when the tests that
    make them did not run first (each test may run alone)."""
    api = running(audit_world)
    events = [e["event"] for e in api.audit()]
    if "UserRename" not in events or "FileGroupCreate" not in events:
        api.create_user("tamper", "Tamper-Pw-2291-z")
        api.ok("RenameUser", oldUserName="tamper", newUserName="tamper2")
        api.ok("CreateStore", name="tamper-store")
        api.ok("SetComplianceConfiguration", config={"legalHoldEnabled": False})
    return api


def test_audit_tampering_detected_by_api(audit_world):
    api = ensure_activity(audit_world)
    entries = api.audit()
    n = entry_for(entries, "UserRename")["seq"]
    m = entry_for(entries, "FileGroupCreate")["seq"]
    assert 1 < n < m < len(entries)
    audit_world["srv"].stop()
    tamper(audit_world["dir"], "UPDATE audit_log SET details = details || 'x' WHERE seq = ?", n)
    api = restart(audit_world)
    v = api.ok("VerifyAuditLog")
    assert v["intact"] is False and v["firstBrokenEntry"] == n and v["reason"], v
    # the change back makes the chain whole again
    audit_world["srv"].stop()
    tamper(audit_world["dir"], "UPDATE audit_log SET details = substr(details, 1, length(details) - 1) "
           "WHERE seq = ?", n)
    api = restart(audit_world)
    v = api.ok("VerifyAuditLog")
    assert v["intact"] is True and v["firstBrokenEntry"] is None, v
    # a removed entry shows too
    assert remove_entry(audit_world) == (n, m)
    api = restart(audit_world)
    v = api.ok("VerifyAuditLog")
    assert v["intact"] is False and v["firstBrokenEntry"] == m + 1, v
    assert v["reason"] == "entries %d to %d are missing (removed)" % (m, m), v


def remove_entry(audit_world):
    """Entry n (the UserRename) and m (the FileGroupCreate) of the audit
    world, m removed from the log with the server stopped; done once per
    module, by whichever test needs it first (each may run alone)."""
    if "tampered" not in audit_world:
        entries = ensure_activity(audit_world).audit()
        n = entry_for(entries, "UserRename")["seq"]
        m = entry_for(entries, "FileGroupCreate")["seq"]
        audit_world["srv"].stop()
        db = sqlite3.connect(os.path.join(audit_world["dir"], "master.sqlite"))
        audit_world["removed"] = db.execute("SELECT * FROM audit_log WHERE seq = ?", (m,)).fetchone()
        db.close()
        tamper(audit_world["dir"], "DELETE FROM audit_log WHERE seq = ?", m)
        audit_world["tampered"] = (n, m)
    audit_world["srv"].stop()
    return audit_world["tampered"]


# =====================================================================================
# 5. The password policy and the compliance configuration
# =====================================================================================

@pytest.fixture(scope="module")
def policy_world(tmp_path_factory, started):
    d = os.path.join(str(tmp_path_factory.mktemp("policy")), "data")
    pw = init_with_admin(d)
    srv = started(d, pw)
    return {"dir": d, "srv": srv, "api": Api(srv, pw)}


def test_password_policy(policy_world):
    api = policy_world["api"]
    default = api.ok("GetComplianceConfiguration")
    assert default["passwordPolicyEnabled"] is False
    assert set(default) == {"adminEmailPreviewEnabled", "legalHoldEnabled", "passwordPolicyEnabled",
                            "logSuccessfulUserActivities"}
    # policy off: anything goes
    api.create_user("lax", "short")
    api.ok("SetComplianceConfiguration", config={"passwordPolicyEnabled": True})
    now = api.ok("GetComplianceConfiguration")
    assert now == dict(default, passwordPolicyEnabled=True), now

    weak = [("short", "8 characters"), ("alllowercase123", "three kinds"), ("xFrank-2024!", "user name"),
            ("FRANK-abc-99", "user name")]
    for password, rule in weak:
        msg = api.fail("CreateUser", userName="frank", privileges="login", loginPrivileges="api",
                       password=password)
        assert "password policy" in msg and rule in msg, (password, msg)
        assert password not in msg, msg
        assert "frank" in api.fail("GetUserInfo", userName="frank")
    strong = "Str0ng-Pass!word"
    api.create_user("frank", strong)
    assert api.status_of("/api/get-metadata", "frank") == 200
    for password, rule in weak:
        msg = api.fail("SetUserPassword", userName="frank", password=password)
        assert "password policy" in msg and rule in msg, (password, msg)
        assert password not in msg, msg
    assert api.status_of("/api/get-metadata", "frank", strong) == 200
    api.ok("SetUserPassword", userName="frank", password="An0ther:Strong+One")
    api.pw["frank"] = "An0ther:Strong+One"
    assert api.status_of("/api/get-metadata", "frank") == 200
    # the policy applies to existing users' new passwords too
    assert "password policy" in api.fail("SetUserPassword", userName="lax", password="stillshort")

    # the configuration round-trips
    full = {"adminEmailPreviewEnabled": False, "legalHoldEnabled": True, "passwordPolicyEnabled": True,
            "logSuccessfulUserActivities": ["UserAdd", "UserDelete", "ComplianceChangeSettings"]}
    api.ok("SetComplianceConfiguration", config=full)
    assert api.ok("GetComplianceConfiguration") == full
    msg = api.fail("SetComplianceConfiguration", config={"passwordPolicyEnabled": False, "bogusSetting": 1})
    assert "bogusSetting" in msg, msg
    msg = api.fail("SetComplianceConfiguration", config={"legalHoldEnabled": "yes"})
    assert "legalHoldEnabled" in msg, msg
    msg = api.fail("SetComplianceConfiguration", config="[1, 2]")
    assert "config" in msg, msg
    assert api.ok("GetComplianceConfiguration") == full

    # switched off again, weak passwords are taken
    api.ok("SetComplianceConfiguration", config={"passwordPolicyEnabled": False, "legalHoldEnabled": False})
    assert api.ok("GetComplianceConfiguration") == dict(full, passwordPolicyEnabled=False, legalHoldEnabled=False)
    api.ok("SetUserPassword", userName="frank", password="short")
    assert api.status_of("/api/get-metadata", "frank", "short") == 200
    for text in api.seen:
        for secret in ("Str0ng-Pass!word", "An0ther:Strong+One", "alllowercase123", "xFrank-2024!"):
            assert secret not in text, text[:2000]


# =====================================================================================
# The `mailvault audit` command (local, read-only)
# =====================================================================================

def audit_cli(data_dir, *args, check=True):
    return mv("audit", *args, data_dir=data_dir, check=check)


def json_lines(cp):
    out = []
    for line in cp.stdout.decode("utf-8").splitlines():
        if line.strip():
            obj = json.loads(line)
            assert isinstance(obj, dict), line
            out.append(obj)
    return out


def test_audit_cli_never_shows_passwords(users_world):
    users_world["srv"].stop()
    cp = audit_cli(users_world["dir"], "--json")
    lines = json_lines(cp)
    assert any(e.get("event") == "UserAdd" for e in lines), lines[:5]
    text = cp.stdout.decode("utf-8") + cp.stderr.decode("utf-8", "replace")
    for secret in users_world["secrets"]:
        assert secret not in text, "a password appears in `mailvault audit --json`"
    cp = audit_cli(users_world["dir"])
    for secret in users_world["secrets"]:
        assert secret.encode() not in cp.stdout + cp.stderr
    for text in users_world["api"].seen:
        for secret in users_world["secrets"]:
            assert secret not in text, "a password appears in an answer: %s" % text[:2000]


def test_audit_cli_verify_and_json(audit_world):
    n, m = remove_entry(audit_world)
    d = audit_world["dir"]
    # the entry removed
    cp = audit_cli(d, "--verify", check=1)
    assert cp.stdout.decode() == "audit log BROKEN at entry %d: entries %d to %d are missing (removed)\n" % (
        m + 1, m, m), cp.stdout
    db = sqlite3.connect(os.path.join(d, "master.sqlite"))
    db.execute("INSERT INTO audit_log VALUES (%s)" % ",".join("?" * len(audit_world["removed"])),
               audit_world["removed"])
    db.commit()
    db.close()
    audit_cli(d, "--verify")
    # a changed entry
    tamper(d, "UPDATE audit_log SET details = details || 'x' WHERE seq = ?", n)
    cp = audit_cli(d, "--verify", check=1)
    assert cp.stdout.decode() == ("audit log BROKEN at entry %d: hash does not match: entry changed, or an entry "
                                  "before it removed\n" % n), cp.stdout
    tamper(d, "UPDATE audit_log SET details = substr(details, 1, length(details) - 1) WHERE seq = ?", n)
    audit_cli(d, "--verify")

    # --json: one object per line, the entries of GetAuditLog
    api = restart(audit_world)
    entries = api.audit()
    audit_world["srv"].stop()
    lines = json_lines(audit_cli(d, "--json"))
    assert [e["seq"] for e in lines] == [e["seq"] for e in entries]
    for got, want in zip(lines, entries):
        for key in ("user", "remote", "event", "success", "details"):
            assert got.get(key) == want[key], (key, got, want)
    pivot = entries[len(entries) // 2]
    lines = json_lines(audit_cli(d, "--json", "--since", pivot["time"]))
    assert [e["seq"] for e in lines] == [e["seq"] for e in entries if e["time"] >= pivot["time"]]
    future = str(int(time.time()) + 3600)
    assert json_lines(audit_cli(d, "--json", "--since", future)) == []
    cp = audit_cli(d, "--json", "--since", "not-a-time", check=False)
    assert cp.returncode != 0 and b"not-a-time" in cp.stderr, cp


# =====================================================================================
# Bugs found by these tests (each test names the rule it holds the code to)
# =====================================================================================

def running(world):
    """The world's server, restarted if an earlier test stopped it."""
    if world["srv"].proc is None:
        restart(world)
    return world["api"]


def test_matrix_foreign_folders_look_missing(world):
    """cmd_folders.c: "A folder one may not read is reported exactly like one
    that does not exist, so the answers do not reveal other users' folders"
    (and DeleteMessage: "a message in a folder it cannot read is reported as
    missing").  For every non-admin, each function answers about bob's
    archive exactly as about an archive "zed" that does not exist."""
    api, ids = world["api"], world["ids"]
    id_b = ids["bob/Inbox"][0]
    ghost_id = "%s:999999" % id_b.split(":")[0]
    problems = []

    def same(user, function, real, ghost, real_name, ghost_name):
        def shape(env, name):
            st, e = env
            text = e["error"]["message"] if e.get("error") else json.dumps(e["result"])
            return st, e["statusCode"], text.replace(name, "NAME")
        a, b = shape(real, real_name), shape(ghost, ghost_name)
        if a != b:
            problems.append("%s by %s: about %s -> %r, but about %s -> %r" % (
                function, user, real_name, a, ghost_name, b))
        no_foreign_text(json.dumps(real[1]).replace(real_name, "NAME"), user)

    for user in NON_ADMINS:
        before = api.folder_stats()
        same(user, "GetChildFolders", api.invoke("GetChildFolders", user=user, folder="bob"),
             api.invoke("GetChildFolders", user=user, folder="zed"), "bob", "zed")
        same(user, "GetMessages", api.invoke("GetMessages", user=user, folder="bob/Inbox"),
             api.invoke("GetMessages", user=user, folder="zed/Inbox"), "bob", "zed")
        same(user, "MoveFolder", api.invoke("MoveFolder", user=user, fromFolder="bob/Inbox", toFolder="bob/X"),
             api.invoke("MoveFolder", user=user, fromFolder="zed/Inbox", toFolder="zed/X"), "bob", "zed")
        same(user, "DeleteEmptyFolders", api.invoke("DeleteEmptyFolders", user=user, folder="bob"),
             api.invoke("DeleteEmptyFolders", user=user, folder="zed"), "bob", "zed")
        same(user, "DeleteMessage", api.invoke("DeleteMessage", user=user, id=id_b, reason="x"),
             api.invoke("DeleteMessage", user=user, id=ghost_id, reason="x"), id_b, ghost_id)
        assert_unchanged(api, before, "calls about bob's archive by %s" % user)
    assert id_b in api.message_ids("bob/Inbox")
    assert not problems, "answers tell other users' folders and messages from missing ones:\n" + \
        "\n".join(problems)


def test_user_without_login_privilege_is_refused(world):
    """The folder functions are marked with the privilege "login" (design.md
    section 9): a user whose privileges lack it may not call them, whatever
    its folder privileges."""
    api = world["api"]
    api.create_user("nologin", "Pw-of-nologin-4711", privileges="none")
    api.ok("SetUserPrivilegesOnFolder", userName="nologin", folder="alice", privileges="read,write,delete")
    before = api.folder_stats()
    for function, args in [("GetChildFolders", {}), ("GetFolderStatistics", {}),
                           ("GetMessages", {"folder": "alice/Inbox"}), ("SearchMessages", {"query": WORD}),
                           ("MoveFolder", {"fromFolder": "alice/Inbox", "toFolder": "alice/Moved"}),
                           ("DeleteEmptyFolders", {"folder": "alice"}),
                           ("DeleteMessage", {"id": world["ids"]["alice/Inbox"][-1], "reason": "x"})]:
        status, env = api.invoke(function, user="nologin", **args)
        assert status == 403, ("user without the login privilege may call %s" % function, status, env)
    assert_unchanged(api, before, "calls by a user without the login privilege")


def test_local_search_function_beside_the_server(world):
    """SearchMessages changes nothing, so the command line may run it while
    the server holds the data directory, like the other reading functions."""
    d = world["dir"]
    cp = mv("cmd", "GetChildFolders", data_dir=d)
    assert json.loads(cp.stdout)["statusCode"] == "succeeded"
    cp = mv("cmd", "SearchMessages", "--query=" + WORD, "--limit=1000", data_dir=d, check=False)
    assert cp.returncode == 0, "`mailvault cmd SearchMessages` refused while the server runs: %s %s" % (
        cp.stdout.decode("utf-8", "replace")[:1000], cp.stderr.decode("utf-8", "replace")[:1000])
    env = json.loads(cp.stdout)
    assert len(env["result"]) == sum(len(v) for v in world["ids"].values())


def test_successful_reads_by_users_are_not_logged(audit_world):
    """registry.c: successful reads are not administrative actions and are
    not logged (else readers could flood the log).  SearchMessages is a read
    like GetMessages."""
    api = running(audit_world)
    api.create_user("reader", "Reader-Pw-4411")
    api.ok("SetUserPrivilegesOnFolder", userName="reader", folder="alice", privileges="read")
    n = len(api.audit())
    api.ok("GetChildFolders", user="reader")
    api.ok("GetMessages", user="reader", folder="alice/Inbox")
    api.ok("GetFolderStatistics", user="reader")
    hits = api.ok("SearchMessages", user="reader", query=WORD, limit=100)
    assert len(hits) == 9
    extra = api.audit()[n:]
    assert extra == [], "successful reads were logged: %s" % json.dumps(extra, indent=1)


def test_user_name_with_colon_can_log_on_or_is_refused(users_world):
    """HTTP Basic credentials are "name:password", split at the first colon
    (RFC 7617: a user-id cannot contain one): a user created with a colon in
    its name could never log on over the API, so CreateUser must refuse it
    (or the user must be able to log on)."""
    api = running(users_world)
    p = "Colon-User-Pw-7788"
    users_world["secrets"].append(p)
    status, env = api.invoke("CreateUser", userName="mail:bob", privileges="login", loginPrivileges="api",
                             password=p)
    assert status == 200
    if env["statusCode"] == "failed":
        assert ":" in env["error"]["message"] or "colon" in env["error"]["message"], env
        return
    assert api.status_of("/api/get-metadata", "mail:bob", p) == 200, \
        "CreateUser accepted the user name 'mail:bob', which can never log on with HTTP Basic"


def test_user_names_unique_ignoring_case_beyond_ascii(users_world):
    """archive.h: user names are unique case-insensitively."""
    api = running(users_world)
    p = "Juergen-Pw-1234-q"
    users_world["secrets"].append(p)
    api.create_user("j\u00fcrgen", p)
    status, env = api.invoke("CreateUser", userName="J\u00dcRGEN", privileges="login", password=p + "2")
    names = [u["userName"] for u in api.ok("GetUsers")]
    assert status == 200 and env["statusCode"] == "failed" and "already exists" in env["error"]["message"], \
        "CreateUser accepted J\u00dcRGEN beside j\u00fcrgen; users now: %s" % names


# ---- a restricted caller's search takes its scope into the index -----------------------------

def write_varied(directory, archive, folder, n, seed):
    """Messages whose length and count of WORD vary, so that bm25 tells them
    apart by more than a constant."""
    rnd = random.Random(seed)
    os.makedirs(directory, exist_ok=True)
    for i in range(n):
        filler = " ".join(rnd.choice(("alpha", "bravo", "charlie", "delta", "echo", "foxtrot"))
                          for _ in range(rnd.randrange(3, 120)))
        words = " ".join([WORD] * rnd.randrange(1, 6))
        raw = ("From: S <s%d@example.net>\r\nTo: %s@example.com\r\nSubject: note %d\r\n"
               "Date: Tue, %02d Feb 2024 %02d:%02d:00 +0000\r\nMessage-ID: <%s-%s-%d@example.com>\r\n\r\n"
               "%s %s\r\n" % (i, archive, i, 1 + i % 27, i % 24, (7 * i) % 60, archive, folder, i, filler, words))
        with open(os.path.join(directory, "%03d.eml" % i), "w", newline="") as f:
            f.write(raw)


@pytest.fixture(scope="module")
def scoped_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("scoped")
    d = os.path.join(str(root), "data")
    init_with_admin(d)
    for (archive, folder, n, seed) in (("alice", "Inbox", 40, 1), ("alice", "Secret", 25, 2), ("bob", "Inbox", 60, 3)):
        src = os.path.join(str(root), "eml", archive, folder)
        write_varied(src, archive, folder, n, seed)
        mv("import", src, "--archive", archive, "--folder", folder, "--quiet", data_dir=d)
    for name, grants in {"r": [("alice", "read")], "deny": [("alice", "read"), ("alice/Secret", "none")]}.items():
        mv("cmd", "CreateUser", "--userName=" + name, "--privileges=login", "--password=Pw-of-%s-4711" % name,
           data_dir=d)
        for folder, privileges in grants:
            mv("cmd", "SetUserPrivilegesOnFolder", "--userName=" + name, "--folder=" + folder,
               "--privileges=" + privileges, data_dir=d)
    return d


def test_restricted_search_is_everyone_s_order_filtered(scoped_world):
    """A restricted caller's MATCH holds the archive or folder tokens it may
    read, and bm25 weighs the scope column nothing: each page, by date and by
    relevance, is the administrator's answer with what the caller may not
    read taken out.  The same holds for archive: against a store of two
    archives, whose scope token stays in the MATCH."""
    d = scoped_world
    visible = {"r": ("alice/Inbox", "alice/Secret"), "deny": ("alice/Inbox",)}
    for sort in ("date", "relevance"):
        everything = search_json(WORD, d, limit=0, extra=("--sort", sort))
        assert len(everything) == 125
        for user, folders in visible.items():
            want = [h["id"] for h in everything if "%s/%s" % (h["archive"], h["folder"]) in folders]
            for limit in (0, 1, 7, 30):
                got = [h["id"] for h in search_json(WORD, d, limit=limit, extra=("--sort", sort, "--as-user", user))]
                assert got == (want[:limit] if limit else want), (sort, user, limit)
        alice = [h["id"] for h in everything if h["archive"] == "alice"]
        for limit in (0, 5):
            got = [h["id"] for h in search_json("archive:alice " + WORD, d, limit=limit, extra=("--sort", sort))]
            assert got == (alice[:limit] if limit else alice), (sort, "archive:alice", limit)


def test_restricted_search_matches_in_the_callers_scope(scoped_world):
    """The scope goes into the index's MATCH (--debug shows the statement),
    where FTS5 intersects it, rather than every hit being walked past the
    folder filter.  Scope tokens (index format 4) are U+E000 and a kind
    letter: d for a folder, a for an archive."""
    cp = mv("--debug", "search", WORD, "--as-user", "deny", "--limit", "0", data_dir=scoped_world)
    matches = [l for l in cp.stderr.decode("utf-8", "replace").splitlines() if "match=[" in l]
    assert matches and all('AND ("\ue000d' in l for l in matches), matches
    cp = mv("--debug", "search", WORD, "--as-user", "r", "--limit", "0", data_dir=scoped_world)
    matches = [l for l in cp.stderr.decode("utf-8", "replace").splitlines() if "match=[" in l]
    assert matches and all('AND ("\ue000a' in l for l in matches), matches
    # A relevance page of one word takes its candidates from the doclists
    # (search/term_rank.c), the caller's scope tokens with it; the test
    # above holds its pages to the administrator's answer.
    for user in ("deny", "r"):
        cp = mv("--debug", "search", WORD, "--as-user", user, "--limit", "7", "--sort", "relevance",
                data_dir=scoped_world)
        assert "read from the index" in cp.stderr.decode("utf-8", "replace"), user


def test_search_bench_as_user_is_the_user_s_search(scoped_world, tmp_path):
    """search-bench --as-user times the search a restricted user gets: the
    same hits as `search --as-user`, not the administrator's."""
    queries = tmp_path / "queries"
    queries.write_text("%s\n%s OR nonexistentword\n" % (WORD, WORD))
    for user in ("r", "deny", None):
        extra = ("--as-user", user) if user else ()
        out = json.loads(mv("search-bench", str(queries), "--rounds", "1", "--limit", "200", *extra,
                            data_dir=scoped_world).stdout)
        want = len(search_json(WORD, scoped_world, limit=200, extra=extra))
        assert [q["hits"] for q in out["queries"]] == [want, want], (user, out, want)
    cp = mv("search-bench", str(queries), "--as-user", "nosuchuser", data_dir=scoped_world, check=False)
    assert cp.returncode != 0 and b"nosuchuser" in cp.stderr, cp
