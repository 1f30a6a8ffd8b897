"""System tests of the Administration API (design.md section 9) against a
real `mailvault serve` over HTTPS.

One module-scoped server (on a copy of a template data directory holding
alice's mail in three folders and a second store of 2000 generated messages)
serves the tests that do not disturb each other; the tests that restart,
reload or stop a server get their own copy of the template.

Long-running functions are made to wait deterministically by holding the
store's write lock (content/.writelock, a flock the store takes for every
change) from the test: the job then blocks at its first step until the
test lets go.

Run:  MAILVAULT_BIN=.../mailvault /usr/bin/python3 -m pytest -q tests/system/test_api.py"""

import base64
import contextlib
import datetime
import email.utils
import fcntl
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse

import pytest

from mvserver import MvServer, decode_body, free_port, init_with_admin
from mvtest import MAILVAULT_BIN, SANITIZER_MARKERS, mv, parse_json, search_json

ENVELOPE_KEYS = {"error", "token", "statusVersion", "statusCode", "percentProgress", "statusText", "result",
                 "logOutput"}
STATUS_CODES = {"succeeded", "running", "failed", "cancelled"}
BOM = b"\xef\xbb\xbf"
BIG_MESSAGES = 2000
FOLDERS = {"Inbox": 10, "Sent": 10, "Lonely": 1}


# ---------------------------------------------------------------------------
# Helpers

def check_envelope(env):
    assert isinstance(env, dict), "not a JSON object: %r" % (env,)
    assert set(env) == ENVELOPE_KEYS, "envelope keys %s, expected exactly %s" % (sorted(env), sorted(ENVELOPE_KEYS))
    assert env["statusCode"] in STATUS_CODES, env
    assert isinstance(env["statusVersion"], int), env
    return env


def error_message(env):
    check_envelope(env)
    assert env["statusCode"] == "failed", env
    assert isinstance(env["error"], dict) and isinstance(env["error"].get("message"), str), env
    return env["error"]["message"]


class Client:
    """One keep-alive HTTPS connection (http.client), Basic auth."""

    def __init__(self, srv, user="admin", password=None, cafile=None, timeout=120):
        self.srv = srv
        self.ctx = ssl.create_default_context(cafile=cafile or srv.cert_path())
        self.conn = http.client.HTTPSConnection("127.0.0.1", srv.port, context=self.ctx, timeout=timeout)
        pw = password if password is not None else srv.password
        self.auth = "Basic " + base64.b64encode(("%s:%s" % (user, pw)).encode()).decode()

    def close(self):
        self.conn.close()

    def raw(self, path, fields=None, body=None, method="POST", auth=True, headers=None):
        """Returns (status, headers, body bytes)."""
        if body is None and method == "POST":
            body = urllib.parse.urlencode(fields or {}).encode()
        h = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
        if auth:
            h["Authorization"] = self.auth
        h.update(headers or {})
        self.conn.request(method, path, body=body, headers=h)
        resp = self.conn.getresponse()
        data = resp.read()
        return resp.status, resp.headers, data

    def json(self, path, fields=None, **kw):
        status, headers, data = self.raw(path, fields, **kw)
        assert headers.get("Content-Type", "").startswith("application/json"), (path, status, headers, data[:300])
        return status, decode_body(data)

    def invoke(self, function, **args):
        fields = {k: (("true" if v else "false") if isinstance(v, bool) else v) for k, v in args.items()}
        return self.json("/api/invoke/" + function, fields)

    def status(self, token, last=0, timeout_ms=0):
        return self.json("/api/get-status", {"token": token, "lastKnownStatusVersion": last,
                                             "millisecondsTimeout": timeout_ms})

    def ok(self, function, **args):
        status, env = self.invoke(function, **args)
        assert status == 200, (function, status, env)
        env = self.finish(env)
        assert env["statusCode"] == "succeeded" and env["error"] is None, (function, args, env)
        return env["result"]

    def finish(self, env, limit=300):
        deadline = time.time() + limit
        while env["statusCode"] == "running":
            assert time.time() < deadline, env
            status, env = self.status(env["token"], env["statusVersion"], 5000)
            assert status == 200, (status, env)
        return check_envelope(env)


class CertServer(MvServer):
    """MvServer whose client trusts a chosen certificate file."""
    cafile = None

    def cert_path(self):
        return self.cafile or super().cert_path()


def write_emls(directory, tag, n, first_day):
    """n small RFC 5322 messages with distinct subjects, dates and a unique
    subject word each ("<tag>uniq<i>")."""
    os.makedirs(directory, exist_ok=True)
    for i in range(n):
        date = datetime.datetime(2021, 1, 1, 9, 0, tzinfo=datetime.timezone.utc) + datetime.timedelta(
            days=first_day + i, minutes=i)
        raw = ("From: Bob Sender <bob%d@example.com>\r\n"
               "To: Alice <alice@example.org>\r\n"
               "Subject: %s letter %d %suniq%d\r\n"
               "Date: %s\r\n"
               "Message-ID: <%s.%d@test.example>\r\n"
               "MIME-Version: 1.0\r\n"
               "Content-Type: text/plain; charset=utf-8\r\n"
               "\r\n"
               "Hello Alice, this is %s letter number %d.\r\n" % (
                   i, tag, i, tag.lower(), i, email.utils.format_datetime(date), tag.lower(), i, tag, i))
        with open(os.path.join(directory, "%s-%02d.eml" % (tag.lower(), i)), "w", newline="") as f:
            f.write(raw)


def write_mbox(path, n):
    with open(path, "w") as f:
        for i in range(n):
            date = email.utils.formatdate(1600000000 + i * 3600)
            f.write("From sender%d@example.com Mon Jan  1 00:00:00 2020\n"
                    "From: Sender %d <sender%d@example.com>\nTo: big@example.org\n"
                    "Subject: bulk message number %d zebra%d\nDate: %s\nMessage-ID: <bulk.%d@example.com>\n\n"
                    "Body of bulk message %d, lorem ipsum dolor sit amet.\n\n" % (i, i, i, i, i, date, i, i))


@contextlib.contextmanager
def store_write_lock(data_dir, store_name):
    """Holds the store's write lock, so that a maintenance job on it waits."""
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


def release_later(release, seconds):
    t = threading.Timer(seconds, release)
    t.start()
    return t


def sha1_fingerprint(cert_path):
    cp = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha1", "-in", cert_path],
                        capture_output=True, check=True, timeout=30)
    m = re.search(r"=([0-9A-Fa-f:]+)", cp.stdout.decode())
    return m.group(1).replace(":", "").upper()


def served_certificate(port):
    """DER bytes of the certificate the server presents now."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
            return t.getpeercert(binary_form=True)


def handshake_trusting(port, cafile):
    """True when a client trusting only cafile completes the handshake."""
    ctx = ssl.create_default_context(cafile=cafile)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
            with ctx.wrap_socket(s, server_hostname="127.0.0.1"):
                return True
    except ssl.SSLCertVerificationError:
        return False


def der_of(cert_path):
    with open(cert_path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def wait_for_text(read, text, timeout=30, start=0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        out = read()
        if text in out[start:]:
            return out
        time.sleep(0.1)
    raise AssertionError("%r did not appear within %ds in:\n%s" % (text, timeout, read()[start:][-4000:]))


def copy_data_dir(template, dest):
    shutil.copytree(template["dir"], dest, symlinks=True)
    return str(dest)


# ---------------------------------------------------------------------------
# Fixtures

@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """An initialised data directory: alice's mail in Inbox, Sent and Lonely
    (store 1, current) and 2000 messages of archive "big" in store 2 ("big")."""
    root = tmp_path_factory.mktemp("api-template")
    d = str(root / "data")
    password = init_with_admin(d)
    for folder, n in FOLDERS.items():
        src = str(root / "eml" / folder)
        write_emls(src, folder, n, first_day=len(folder) * 40)
        cp = mv("import", src, "--archive", "alice", "--folder", folder, "--json", data_dir=d)
        assert parse_json(cp)["imported"] == n, cp.stdout
    mv("cmd", "CreateStore", "--name=big", "--requestedState=current", data_dir=d)
    mbox = str(root / "big.mbox")
    write_mbox(mbox, BIG_MESSAGES)
    cp = mv("import", mbox, "--archive", "big", "--folder", "bulk", "--json", data_dir=d, timeout=600)
    assert parse_json(cp)["imported"] == BIG_MESSAGES, cp.stdout
    mv("cmd", "SetStoreRequestedState", "--id=1", "--requestedState=current", data_dir=d)
    return {"dir": d, "password": password, "root": root}


@pytest.fixture(scope="module")
def srv(template, tmp_path_factory):
    d = copy_data_dir(template, tmp_path_factory.mktemp("api-main") / "data")
    s = MvServer(d, password=template["password"])
    s.start()
    yield s
    s.stop()


@pytest.fixture
def client(srv):
    c = Client(srv)
    yield c
    c.close()


# ---------------------------------------------------------------------------
# 1. The protocol

def test_envelope_of_get_server_info(client):
    status, headers, raw = client.raw("/api/invoke/GetServerInfo")
    assert status == 200, raw
    assert headers.get("Content-Type", "").split(";")[0].strip() == "application/json", headers
    assert raw.startswith(BOM), "the body does not start with the UTF-8 BOM: %r" % raw[:20]
    env = check_envelope(json.loads(raw[3:].decode("utf-8")))
    assert env["statusCode"] == "succeeded" and env["error"] is None and env["token"] is None, env
    assert env["result"]["product"] == "mailvault" and env["result"]["version"], env


@pytest.mark.parametrize("path", ["/api//invoke/GetServerInfo", "//api/invoke//GetServerInfo",
                                  "/api/invoke//GetServerInfo"])
def test_doubled_slashes_are_tolerated(client, path):
    status, env = client.json(path)
    assert status == 200, (path, env)
    assert check_envelope(env)["statusCode"] == "succeeded", (path, env)
    assert env["result"]["product"] == "mailvault"


def test_get_metadata(client):
    status, headers, raw = client.raw("/api/get-metadata")
    assert status == 200
    assert headers.get("Content-Type", "").startswith("application/json")
    meta = decode_body(raw)
    assert isinstance(meta, list) and meta, "get-metadata is not a bare JSON array: %r" % (meta,)
    names = [f["name"] for f in meta]
    assert len(names) == len(set(names)), "functions listed twice: %s" % names
    for f in meta:
        assert set(f) == {"name", "args"}, f
        assert isinstance(f["name"], str) and re.fullmatch(r"[A-Z][A-Za-z0-9]+", f["name"]), f
        assert isinstance(f["args"], list), f
        for a in f["args"]:
            assert set(a) == {"name", "type", "nullable"}, (f["name"], a)
            assert a["type"] in ("string", "number", "bool", "json"), (f["name"], a)
            assert isinstance(a["nullable"], bool), (f["name"], a)
    for wanted in ("CreateUser", "GetUsers", "VerifyStore", "GetServiceConfiguration", "GetServerInfo",
                   "RebuildStoreIndex", "SetServiceCertificate"):
        assert wanted in names, "get-metadata lacks %s" % wanted
    by_name = {f["name"]: f for f in meta}
    args = {a["name"]: a for a in by_name["CreateUser"]["args"]}
    assert args["userName"] == {"name": "userName", "type": "string", "nullable": False}, args
    args = {a["name"]: a for a in by_name["VerifyStore"]["args"]}
    assert args["id"]["type"] == "number" and not args["id"]["nullable"], args


def test_doubled_slash_get_metadata(client):
    status, meta = client.json("/api//get-metadata")
    assert status == 200 and isinstance(meta, list) and meta


def test_get_is_not_allowed(client):
    for path in ("/api/invoke/GetServerInfo", "/api/get-metadata", "/api/get-status"):
        status, headers, raw = client.raw(path, method="GET")
        assert status == 405, (path, status, raw)
        assert "POST" in headers.get("Allow", ""), headers
        assert error_message(decode_body(raw))


@pytest.mark.parametrize("path", ["/", "/api", "/api/", "/api/invoke/", "/api/nothing", "/index.html",
                                  "/api/get-statusx"])
def test_unknown_endpoint_is_404_json(client, path):
    status, headers, raw = client.raw(path)
    assert status == 404, (path, status, raw)
    assert headers.get("Content-Type", "").startswith("application/json"), headers
    assert error_message(decode_body(raw))


def test_unknown_function_is_404_naming_it(client):
    status, env = client.invoke("NoSuchFunctionXyz")
    assert status == 404, env
    assert "NoSuchFunctionXyz" in error_message(env), env


def test_no_credentials_is_401_with_basic_challenge(client):
    for path in ("/api/invoke/GetServerInfo", "/api/get-metadata"):
        status, headers, raw = client.raw(path, auth=False)
        assert status == 401, (path, status, raw)
        assert headers.get("WWW-Authenticate", "").startswith("Basic"), headers
        assert error_message(decode_body(raw))


def test_wrong_password_is_401(srv):
    c = Client(srv, password=srv.password + "x")
    try:
        status, headers, raw = c.raw("/api/invoke/GetServerInfo")
        assert status == 401, (status, raw)
        assert headers.get("WWW-Authenticate", "").startswith("Basic"), headers
        env = decode_body(raw)
        assert error_message(env)
        assert env["result"] is None
    finally:
        c.close()
    c = Client(srv, user="nobody-at-all", password="whatever")
    try:
        status, _, raw = c.raw("/api/invoke/GetServerInfo")
        assert status == 401, (status, raw)
    finally:
        c.close()
    # and the right password still works afterwards
    c = Client(srv)
    try:
        assert c.ok("GetServerInfo")["product"] == "mailvault"
    finally:
        c.close()


def read_response_head(sock):
    """Status code and headers of the answer on a raw socket."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before an answer: %r" % buf[:300]
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
    return int(lines[0].split()[1]), headers, rest


def test_body_over_32_mib_is_413(srv):
    """A Content-Length over 32 MiB is answered 413 from the headers alone,
    before any of the body is sent (the server never reads it)."""
    c = Client(srv)
    raw = socket.create_connection(("127.0.0.1", srv.port), timeout=60)
    s = c.ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    try:
        s.sendall(("POST /api/invoke/GetServerInfo HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: %s\r\n"
                   "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n"
                   % (c.auth, 33 * 1024 * 1024)).encode())
        status, headers, rest = read_response_head(s)
        assert status == 413, (status, headers)
        length = int(headers["content-length"])
        while len(rest) < length:
            chunk = s.recv(65536)
            assert chunk, "answer cut short"
            rest += chunk
        assert error_message(decode_body(rest[:length])) == "request body larger than 32 MiB"
    finally:
        s.close()
        c.close()
    c = Client(srv)
    try:
        assert c.ok("GetServerInfo")["product"] == "mailvault"
    finally:
        c.close()


# ---------------------------------------------------------------------------
# 2. Every function: argument checking, and the read-only ones called

@pytest.fixture(scope="module")
def metadata(srv):
    c = Client(srv)
    try:
        status, meta = c.json("/api/get-metadata")
    finally:
        c.close()
    assert status == 200
    return meta


BAD_VALUES = {"number": ("abc", ("number",)), "bool": ("maybe", ("true", "false")),
              "json": ("{bad", ("JSON",))}

def test_every_function_names_missing_arguments(client, metadata):
    checked = []
    for f in metadata:
        required = [a for a in f["args"] if not a["nullable"]]
        if not required:
            continue
        status, env = client.invoke(f["name"])
        assert status == 200, (f["name"], status, env)
        msg = error_message(env)
        assert f["name"] in msg, "%s: error does not name the function: %r" % (f["name"], msg)
        assert any(a["name"] in msg for a in required), \
            "%s: error does not name a missing argument (%s): %r" % (f["name"], [a["name"] for a in required], msg)
        assert "missing" in msg.lower(), (f["name"], msg)
        checked.append(f["name"])
    assert len(checked) > 20, checked


def test_every_function_checks_argument_types(client, metadata):
    checked = 0
    for f in metadata:
        for a in f["args"]:
            if a["type"] not in BAD_VALUES:
                continue
            value, words = BAD_VALUES[a["type"]]
            status, env = client.invoke(f["name"], **{a["name"]: value})
            assert status == 200, (f["name"], a, status, env)
            msg = error_message(env)
            assert a["name"] in msg, "%s %s=%r: error does not name the argument: %r" % (f["name"], a["name"], value, msg)
            assert all(w.lower() in msg.lower() for w in words), \
                "%s %s=%r: error does not say what was expected (%s): %r" % (f["name"], a["name"], value, words, msg)
            checked += 1
    assert checked > 10, checked


def test_unknown_argument_is_refused(client):
    status, env = client.invoke("GetServerInfo", bogusArgument="1")
    assert status == 200
    msg = error_message(env)
    assert "bogusArgument" in msg and "GetServerInfo" in msg, msg


def test_read_only_functions_without_arguments_succeed(client, metadata):
    called = []
    for f in metadata:
        name = f["name"]
        if not (name.startswith("Get") or name.startswith("List") or name.startswith("Verify")):
            continue
        if any(not a["nullable"] for a in f["args"]):
            continue
        status, env = client.invoke(name)
        assert status == 200, (name, status, env)
        env = client.finish(check_envelope(env))
        # A function that cannot work without an argument says so in get-metadata
        # (test_api_contract.py checks every function's metadata against its handler).
        assert env["statusCode"] == "succeeded" and env["error"] is None, (name, env)
        called.append(name)
    print("read-only functions called: %s" % called)
    for wanted in ("GetServerInfo", "GetStores", "GetUsers", "GetTimeZones", "GetServiceConfiguration",
                   "GetActiveSessions", "GetChildFolders", "GetFolderStatistics"):
        assert wanted in called, called


# ---------------------------------------------------------------------------
# 3. The normal paths

def alice_folders(client):
    return {f["folder"]: f for f in client.ok("GetChildFolders", folder="alice")}


def test_stores_folders_and_messages(client):
    stores = client.ok("GetStores")
    by_id = {s["id"]: s for s in stores}
    assert by_id[1]["state"] == "current" and by_id[2]["name"] == "big", stores
    assert by_id[1]["size"]["messages"] == sum(FOLDERS.values()), by_id[1]
    assert by_id[2]["size"]["messages"] == BIG_MESSAGES, by_id[2]
    assert client.ok("GetStores", includeSize=False)[0].get("size") is None

    top = {f["folder"]: f for f in client.ok("GetChildFolders")}
    assert "alice" in top and "big" in top, top
    children = alice_folders(client)
    for folder, n in FOLDERS.items():
        entry = children["alice/" + folder]
        assert entry["count"] == n and entry["name"] == folder and entry["level"] == 1, entry

    stats = {s["folder"]: s for s in client.ok("GetFolderStatistics")}
    for folder, n in FOLDERS.items():
        assert stats["alice/" + folder]["count"] == n, stats
        assert stats["alice/" + folder]["size"] > 0, stats
    assert stats["big/bulk"]["count"] == BIG_MESSAGES, stats

    msgs = client.ok("GetMessages", folder="alice/Inbox")
    assert len(msgs) == FOLDERS["Inbox"], msgs
    subjects = sorted(m["subject"] for m in msgs)
    assert subjects == sorted("Inbox letter %d inboxuniq%d" % (i, i) for i in range(FOLDERS["Inbox"])), subjects
    assert len({m["id"] for m in msgs}) == len(msgs)
    dates = [m["date"] for m in msgs]
    assert dates == sorted(dates, reverse=True), "GetMessages is not newest first: %s" % dates

    status, env = client.invoke("GetMessages", folder="alice/NoSuchFolder")
    assert status == 200
    assert error_message(check_envelope(env)) == "GetMessages: folder 'alice/NoSuchFolder' does not exist", env


def test_search_messages(client):
    hits = client.ok("SearchMessages", query="sentuniq3")
    assert len(hits) == 1, hits
    assert hits[0]["subject"] == "Sent letter 3 sentuniq3", hits
    assert hits[0]["archive"] == "alice", hits
    hits = client.ok("SearchMessages", query="letter", archive="alice", limit=100)
    assert len(hits) == sum(FOLDERS.values()), len(hits)
    hits = client.ok("SearchMessages", query="zebra77", archive="big")
    assert [h["subject"] for h in hits] == ["bulk message number 77 zebra77"], hits
    assert client.ok("SearchMessages", query="zebra77", archive="alice") == []


def test_store_administration(client, srv):
    created = client.ok("CreateStore", name="extra")
    sid = created["id"]
    assert created["name"] == "extra" and created["type"] == "FileSystemInternal", created
    for key in ("databasePath", "contentPath", "indexPath"):
        assert os.path.isdir(created[key]), created
        assert os.path.realpath(created[key]).startswith(os.path.realpath(srv.data_dir)), created
    assert client.ok("RenameStore", id=sid, name="extra-renamed") is None
    by_id = {s["id"]: s for s in client.ok("GetStores", includeSize=False)}
    assert by_id[sid]["name"] == "extra-renamed", by_id
    assert by_id[1]["state"] == "current", "creating a store changed the current one: %s" % by_id

    for state in ("writeProtected", "normal", "disabled"):
        assert client.ok("SetStoreRequestedState", id=sid, requestedState=state) is None
        by_id = {s["id"]: s for s in client.ok("GetStores", includeSize=False)}
        assert by_id[sid]["requestedState"] == state, by_id[sid]
    status, env = client.invoke("SetStoreRequestedState", id=sid, requestedState="bogus")
    msg = error_message(env)
    assert "requestedState" in msg and "writeProtected" in msg, msg
    status, env = client.invoke("RenameStore", id=9999, name="x")
    assert "9999" in error_message(env)

    indexes = client.ok("GetStoreIndexes")
    ids = {i["storeId"] for i in indexes}
    assert {1, 2} <= ids, indexes
    only = client.ok("GetStoreIndexes", id=2)
    assert [i["storeId"] for i in only] == [2], only
    assert os.path.isfile(only[0]["path"]), only


def test_verify_store_long_running(client):
    status, env = client.invoke("VerifyStore", id=1)
    assert status == 200
    check_envelope(env)
    assert env["statusCode"] == "running", "VerifyStore did not answer 'running': %s" % env
    assert isinstance(env["token"], str) and len(env["token"]) >= 16, env
    token = env["token"]
    env = client.finish(env)
    assert env["statusCode"] == "succeeded", env
    assert env["token"] == token, env
    r = env["result"]
    assert r["clean"] is True and r["problemCount"] == 0 and r["damagedMessageIds"] == [], r
    assert r["messagesChecked"] >= sum(FOLDERS.values()) - 2, r


def test_create_backup(client, tmp_path):
    target = str(tmp_path / "backup")
    status, env = client.invoke("CreateBackup", path=target)
    assert status == 200 and env["statusCode"] == "running", env
    env = client.finish(env)
    assert env["statusCode"] == "succeeded", env
    for name in ("BACKUP-INFO.json", "master.sqlite", "master.key"):
        assert os.path.isfile(os.path.join(target, name)), os.listdir(target)
    cp = mv("cmd", "VerifyStore", "--id=1", data_dir=target)
    out = parse_json(cp)
    assert out["statusCode"] == "succeeded" and out["result"]["clean"] is True, out
    status, env = client.invoke("CreateBackup", path="relative/dir")
    assert "absolute" in error_message(client.finish(env))


def test_delete_message(client):
    msgs = client.ok("GetMessages", folder="alice/Inbox")
    victim = [m for m in msgs if m["subject"].endswith("inboxuniq5")][0]
    status, env = client.invoke("DeleteMessage", id=victim["id"], reason="   ")
    assert "reason" in error_message(env)
    assert client.ok("DeleteMessage", id=victim["id"], reason="test: removed on request") is None
    after = client.ok("GetMessages", folder="alice/Inbox")
    assert victim["id"] not in {m["id"] for m in after}, after
    assert len(after) == len(msgs) - 1
    assert client.ok("SearchMessages", query="inboxuniq5") == []
    status, env = client.invoke("DeleteMessage", id=victim["id"], reason="again")
    assert victim["id"] in error_message(env)


def test_move_folder_and_delete_empty_folders(client):
    assert client.ok("MoveFolder", fromFolder="alice/Sent", toFolder="alice/Old/Sent") is None
    children = alice_folders(client)
    assert "alice/Sent" not in children, children
    assert children["alice/Old/Sent"]["count"] == FOLDERS["Sent"], children
    moved = client.ok("GetMessages", folder="alice/Old/Sent")
    assert len(moved) == FOLDERS["Sent"]
    status, env = client.invoke("GetMessages", folder="alice/Sent")
    assert "folder 'alice/Sent' does not exist" in error_message(env), env
    status, env = client.invoke("MoveFolder", fromFolder="alice/Old", toFolder="alice/Old/Sent/Deeper")
    assert "itself" in error_message(env)

    (lonely,) = client.ok("GetMessages", folder="alice/Lonely")
    assert client.ok("DeleteMessage", id=lonely["id"], reason="emptying a folder") is None
    assert alice_folders(client)["alice/Lonely"]["count"] == 0
    result = client.ok("DeleteEmptyFolders", folder="alice")
    assert result["deletedFolders"] >= 1, result
    children = alice_folders(client)
    assert "alice/Lonely" not in children, children
    assert children["alice/Old/Sent"]["count"] == FOLDERS["Sent"], children
    assert children["alice/Inbox"]["count"] == FOLDERS["Inbox"] - 1, children


def test_credential_changes_take_effect_at_once(srv, client):
    """A verified password is cached by the server; changing or deleting the
    user must end that at once."""
    def answer(password):
        c = Client(srv, user="dave", password=password)
        try:
            return c.invoke("GetServerInfo")[0]
        finally:
            c.close()
    client.ok("CreateUser", userName="dave", privileges="admin", password="Dave-First-111!")
    try:
        assert answer("Dave-First-111!") == 200
        client.ok("SetUserPassword", userName="dave", password="Dave-Second-222!")
        assert answer("Dave-First-111!") == 401, "the old password still works after SetUserPassword"
        assert answer("Dave-Second-222!") == 200
        client.ok("SetUserLoginPrivileges", userName="dave", loginPrivileges="web,imap")
        assert answer("Dave-Second-222!") == 403, "a user without the api login privilege still uses the API"
        client.ok("SetUserLoginPrivileges", userName="dave", loginPrivileges="api")
        assert answer("Dave-Second-222!") == 200
        client.ok("SetUserPrivileges", userName="dave", privileges="login")
        assert answer("Dave-Second-222!") == 403, "a user without the admin privilege still calls GetServerInfo"
        client.ok("DeleteUser", userName="dave")
        assert answer("Dave-Second-222!") == 401, "a deleted user still gets in"
        client.ok("CreateUser", userName="dave", privileges="admin", password="Dave-Third-333!")
        assert answer("Dave-Second-222!") == 401, "the password of a deleted user opens its namesake"
        assert answer("Dave-Third-333!") == 200
    finally:
        if "dave" in {u["userName"] for u in client.ok("GetUsers")}:
            client.ok("DeleteUser", userName="dave")


def test_folder_privileges_limit_a_non_admin(srv, client):
    client.ok("CreateUser", userName="erin", privileges="login", password="Erin-Secret-444!",
              loginPrivileges="api")
    client.ok("SetUserPrivilegesOnFolder", userName="erin", folder="alice/Inbox", privileges="read")
    erin = Client(srv, user="erin", password="Erin-Secret-444!")
    try:
        status, env = erin.invoke("GetServerInfo")
        assert status == 403, (status, env)
        error_message(env)
        status, env = erin.invoke("VerifyStore", id=1)
        assert status == 403 and env["token"] is None, (status, env)
        folders = {f["folder"] for f in erin.ok("GetChildFolders")}
        assert "alice/Inbox" in folders and folders <= {"alice", "alice/Inbox"}, folders
        stats = {f["folder"] for f in erin.ok("GetFolderStatistics")}
        assert stats <= {"alice", "alice/Inbox"}, stats
        inbox = erin.ok("GetMessages", folder="alice/Inbox")
        assert inbox and all("inboxuniq" in m["subject"] for m in inbox), inbox
        for other in ("alice/Old/Sent", "alice/Sent", "big/bulk"):
            status, env = erin.invoke("GetMessages", folder=other)
            assert status == 200 and env["statusCode"] == "failed", (other, env)
        hits = erin.ok("SearchMessages", query="letter OR zebra5", limit=1000)
        assert hits and all(h["archive"] == "alice" and h["folder"] == "Inbox" for h in hits), hits
        assert erin.ok("SearchMessages", query="zebra5") == []
        status, env = erin.invoke("DeleteMessage", id=inbox[0]["id"], reason="not allowed")
        assert "privilege" in error_message(env), env
        assert inbox[0]["id"] in {m["id"] for m in client.ok("GetMessages", folder="alice/Inbox")}
        status, env = erin.invoke("MoveFolder", fromFolder="alice/Inbox", toFolder="alice/Elsewhere")
        error_message(env)
        assert "alice/Inbox" in alice_folders(client)
    finally:
        erin.close()
        client.ok("DeleteUser", userName="erin")


def test_verify_after_changes(client):
    env = client.finish(client.invoke("VerifyStore", id=1)[1])
    assert env["statusCode"] == "succeeded" and env["result"]["clean"] is True, env


def test_service_configuration(client, srv):
    conf = client.ok("GetServiceConfiguration")
    assert conf["running"] is True, conf
    assert any(e["port"] == srv.port and e["tls"] is True for e in conf["endpoints"]), conf["endpoints"]
    thumb = conf["certificate"]["thumbprint"]
    assert re.fullmatch(r"[0-9A-Fa-f]{40}", thumb), thumb
    assert thumb.upper() == sha1_fingerprint(srv.cert_path()), (thumb, sha1_fingerprint(srv.cert_path()))
    text = json.dumps(conf)
    assert "PRIVATE KEY" not in text and "BEGIN" not in text, text
    with open(os.path.join(srv.data_dir, "certs", "server.key")) as f:
        key_lines = [ln.strip() for ln in f if ln.strip() and not ln.startswith("-----")]
    for ln in key_lines:
        assert ln[:32] not in text, "private key material in GetServiceConfiguration"


def test_listen_option_is_not_saved(srv):
    """`serve --listen` says "(repeatable; not saved)": the configuration file
    written on first start keeps its own listen address."""
    with open(os.path.join(srv.data_dir, "mailvault.conf")) as f:
        conf = f.read()
    listen = re.search(r"(?m)^listen=(.*)$", conf)
    assert listen, conf
    assert str(srv.port) not in listen.group(1), \
        "the --listen override of the first start was written into mailvault.conf: %s" % listen.group(0)


def test_time_zones(client):
    zones = client.ok("GetTimeZones")
    ids = [z["id"] for z in zones]
    assert "$Local" in ids and "UTC" in ids and "Europe/Berlin" in ids, ids[:20]
    for z in zones:
        assert set(z) >= {"id", "displayName", "utcOffset"}, z
        assert re.fullmatch(r"UTC[+-]\d\d:\d\d", z["utcOffset"]), z
    assert len(ids) == len(set(ids))


def test_active_sessions(client):
    client.ok("GetServerInfo")
    sessions = client.ok("GetActiveSessions")
    mine = [s for s in sessions if s["userName"] == "admin" and s["remoteAddress"] == "127.0.0.1"]
    assert mine, sessions
    assert mine[0]["requests"] >= 2, mine


# ---------------------------------------------------------------------------
# 4. Long-running status

def test_get_status_long_poll(srv, client):
    versions = []
    with store_write_lock(srv.data_dir, "big") as release:
        status, env = client.invoke("VerifyStore", id=2)
        assert status == 200 and env["statusCode"] == "running", env
        token, v = env["token"], env["statusVersion"]
        versions.append(v)
        # the job waits for the lock: nothing can change, so the poll waits its full time
        t0 = time.monotonic()
        status, env = client.status(token, v, 3000)
        elapsed = time.monotonic() - t0
        assert status == 200, env
        check_envelope(env)
        versions.append(env["statusVersion"])
        if env["statusVersion"] == v and env["statusCode"] == "running":
            assert elapsed >= 2.9, "get-status returned after %.2fs without a newer version" % elapsed
        assert elapsed < 10, "get-status with millisecondsTimeout=3000 took %.2fs" % elapsed
        assert env["token"] == token
        # a zero timeout answers at once
        t0 = time.monotonic()
        status, env = client.status(token, env["statusVersion"], 0)
        assert time.monotonic() - t0 < 2.5 and status == 200, env
        # letting the job go wakes a waiting poll early
        last = env["statusVersion"]
        timer = release_later(release, 1.0)
        t0 = time.monotonic()
        status, env = client.status(token, last, 20000)
        elapsed = time.monotonic() - t0
        timer.join()
    assert status == 200, env
    assert env["statusVersion"] > last, env
    assert 0.8 <= elapsed < 10, "the poll waited %.2fs for a change that came after 1s" % elapsed
    versions.append(env["statusVersion"])
    while env["statusCode"] == "running":
        last = env["statusVersion"]
        t0 = time.monotonic()
        status, env = client.status(token, last, 5000)
        assert status == 200, env
        if env["statusVersion"] == last and env["statusCode"] == "running":
            assert time.monotonic() - t0 >= 4.9
        versions.append(env["statusVersion"])
    assert versions == sorted(versions), "statusVersion went backwards: %s" % versions
    check_envelope(env)
    assert env["statusCode"] == "succeeded", env
    assert env["token"] == token, env
    assert env["result"]["clean"] is True and env["result"]["storeId"] == 2, env
    assert env["statusVersion"] > versions[0]
    # the finished status stays readable
    status, again = client.status(token, 0, 0)
    assert status == 200 and again["result"] == env["result"] and again["statusVersion"] == env["statusVersion"]


def run_and_cancel(client, data_dir, hold_lock):
    lock = store_write_lock(data_dir, "big") if hold_lock else contextlib.nullcontext(lambda: None)
    with lock as release:
        status, env = client.invoke("RebuildStoreIndex", id=2, folder="big")
        assert status == 200 and env["statusCode"] == "running", env
        token = env["token"]
        status, cenv = client.json("/api/cancel-async", {"token": token})
        assert status == 200, cenv
        check_envelope(cenv)
        assert cenv["token"] == token, cenv
        release()
    env = client.finish(env)
    assert env["token"] == token
    return env


def test_cancel_rebuild_store_index(srv, client):
    outcomes = []
    for hold_lock in (False, False, True):
        env = run_and_cancel(client, srv.data_dir, hold_lock)
        outcomes.append((hold_lock, env["statusCode"]))
        assert env["statusCode"] in ("cancelled", "succeeded"), env
        if env["statusCode"] == "cancelled":
            assert env["error"] and env["error"]["message"], env
            break
    # whatever happened, the store is whole afterwards
    v = client.finish(client.invoke("VerifyStore", id=2)[1])
    assert v["statusCode"] == "succeeded" and v["result"]["clean"] is True, v
    hits = client.ok("SearchMessages", query="zebra1234", archive="big")
    assert len(hits) == 1, hits
    assert any(code == "cancelled" for _, code in outcomes), \
        ("cancel-async never cancelled RebuildStoreIndex (outcomes (lock held while cancelling, final status): %s); "
         "even a cancel that arrived while the job still waited for the store lock ran the rebuild to the end"
         % outcomes)


def test_unknown_token_is_404(client):
    for path in ("/api/get-status", "/api/cancel-async"):
        status, env = client.json(path, {"token": "00" * 16, "lastKnownStatusVersion": 0, "millisecondsTimeout": 0})
        assert status == 404, (path, env)
        assert "token" in error_message(env), env
    status, env = client.json("/api/get-status", {})
    assert "token" in error_message(env), env


def test_other_user_cannot_see_token(srv, client):
    client.ok("CreateUser", userName="bob", privileges="admin", password="Bob-Secret-12345!")
    bob = Client(srv, user="bob", password="Bob-Secret-12345!")
    try:
        env = client.invoke("VerifyStore", id=1)[1]
        assert env["statusCode"] == "running", env
        token = env["token"]
        status, benv = bob.status(token, 0, 0)
        assert status == 404, benv
        error_message(benv)
        status, benv = bob.json("/api/cancel-async", {"token": token})
        assert status == 404, benv
        env = client.finish(env)
        assert env["statusCode"] == "succeeded", env
        status, benv = bob.status(token, 0, 0)
        assert status == 404, benv
        # bob's own job is his
        benv = bob.invoke("VerifyStore", id=1)[1]
        assert bob.finish(benv)["statusCode"] == "succeeded"
        status, aenv = client.status(benv["token"], 0, 0)
        assert status == 404, aenv
    finally:
        bob.close()
        client.ok("DeleteUser", userName="bob")


def test_parallel_long_running_functions(srv):
    results, errors = {}, []

    def one(k, store_id):
        c = Client(srv)
        try:
            status, env = c.invoke("VerifyStore", id=store_id)
            assert status == 200 and env["statusCode"] == "running", env
            results[k] = (env["token"], c.finish(env))
        except Exception as e:  # noqa: BLE001 -- reported below
            errors.append("%d: %r" % (k, e))
        finally:
            c.close()

    threads = [threading.Thread(target=one, args=(k, sid)) for k, sid in enumerate((1, 2, 1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    assert len(results) == 3
    assert len({tok for tok, _ in results.values()}) == 3, results
    for tok, env in results.values():
        assert env["statusCode"] == "succeeded" and env["token"] == tok and env["result"]["clean"], env


# ---------------------------------------------------------------------------
# 5. A client that disappears

def test_client_disappears(srv):
    with store_write_lock(srv.data_dir, "big") as release:
        c = Client(srv)
        status, env = c.invoke("RebuildStoreIndex", id=2, folder="bulk")
        assert status == 200 and env["statusCode"] == "running", env
        token = env["token"]
        # gone without a word: the socket shut down under the TLS session
        c.conn.sock.shutdown(socket.SHUT_RDWR)
        c.close()
        time.sleep(0.5)
        release()
    c = Client(srv)
    try:
        status, env = c.status(token, 0, 0)
        assert status == 200, env
        env = c.finish(env)
        assert env["statusCode"] == "succeeded" and env["token"] == token, env
    finally:
        c.close()


# ---------------------------------------------------------------------------
# 6. Many clients at once

LOAD_SECONDS = 60
WARMUP_SECONDS = 10
THREADS = 32


def test_concurrent_clients(srv):
    folder = "alice/Inbox"
    ops = [
        ("GetServerInfo", {}), ("GetStores", {"includeSize": False}), ("GetChildFolders", {"folder": "alice"}),
        ("GetMessages", {"folder": folder}), ("SearchMessages", {"query": "letter", "archive": "alice"}),
        ("GetUsers", {}), ("GetUserInfo", {"userName": "admin"}), (None, {}),
    ]
    stop = threading.Event()
    counts = [0] * THREADS
    errors = []
    lock = threading.Lock()

    def fail(text):
        with lock:
            if len(errors) < 50:
                errors.append(text)

    def worker(k):
        c = Client(srv, timeout=120)
        user_exists = False
        n = 0
        try:
            while not stop.is_set():
                n += 1
                if n % 50 == 0:
                    name = "load-user-%d" % k
                    fn, args = ("DeleteUser", {"userName": name}) if user_exists else \
                        ("CreateUser", {"userName": name, "privileges": "none"})
                    user_exists = not user_exists
                else:
                    fn, args = ops[(n + k) % len(ops)]
                try:
                    if fn is None:
                        status, meta = c.json("/api/get-metadata")
                        if status != 200 or not isinstance(meta, list):
                            fail("thread %d get-metadata: %s %r" % (k, status, str(meta)[:200]))
                    else:
                        status, env = c.invoke(fn, **args)
                        if status != 200 or env.get("statusCode") != "succeeded":
                            fail("thread %d %s: HTTP %s %r" % (k, fn, status, str(env)[:300]))
                except Exception as e:  # noqa: BLE001 -- every error counts
                    fail("thread %d %s: %r" % (k, fn, e))
                    c.close()
                    c = Client(srv, timeout=120)
                counts[k] += 1
        finally:
            c.close()

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(THREADS)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(WARMUP_SECONDS)
    rss_warm = srv.rss_kb()
    calls_warm = sum(counts)
    rss_max = rss_warm
    while time.monotonic() - t0 < LOAD_SECONDS:
        time.sleep(1)
        rss_max = max(rss_max, srv.rss_kb())
    rss_end = srv.rss_kb()
    stop.set()
    for t in threads:
        t.join(180)
    elapsed = time.monotonic() - t0
    total = sum(counts)
    rate = total / elapsed
    rate_after_warmup = (total - calls_warm) / max(elapsed - WARMUP_SECONDS, 1)
    report = ("API load: %d clients, %d requests in %.1fs = %.1f requests/s (%.1f/s after warm-up); "
              "RSS after warm-up %d kB, at the end %d kB, max %d kB"
              % (THREADS, total, elapsed, rate, rate_after_warmup, rss_warm, rss_end, rss_max))
    print(report)
    with open(os.path.join(srv.data_dir, "load-report.txt"), "w") as f:
        f.write(report + "\n")
    assert not any(t.is_alive() for t in threads), "client threads hung"
    assert not errors, "%d+ errors under load, e.g.:\n%s" % (len(errors), "\n".join(errors[:20]))
    assert total > THREADS, report
    growth = rss_end - rss_warm
    assert growth < 0.2 * rss_warm or growth < 30 * 1024, "server RSS grew under load: " + report
    # nobody's load user is left behind half-made, and the server still answers
    c = Client(srv)
    try:
        users = {u["userName"] for u in c.ok("GetUsers")}
        for k in range(THREADS):
            if "load-user-%d" % k in users:
                c.ok("DeleteUser", userName="load-user-%d" % k)
    finally:
        c.close()


# ---------------------------------------------------------------------------
# 10. The command line while the server runs

def test_local_commands_while_server_runs(srv):
    cp = mv("cmd", "CreateUser", "--userName=x", "--privileges=none", data_dir=srv.data_dir, check=False)
    out = (cp.stdout + cp.stderr).decode("utf-8", "replace")
    assert cp.returncode != 0, "a local CreateUser ran while the server holds the directory:\n" + out
    assert "pid %d" % srv.proc.pid in out and srv.url in out, \
        "the refusal does not name the server (pid %d, %s):\n%s" % (srv.proc.pid, srv.url, out)
    c = Client(srv)
    try:
        assert "x" not in {u["userName"] for u in c.ok("GetUsers")}
    finally:
        c.close()
    cp = mv("cmd", "GetServerInfo", data_dir=srv.data_dir)
    env = parse_json(cp)
    assert env["statusCode"] == "succeeded" and env["result"]["product"] == "mailvault", env


# ---------------------------------------------------------------------------
# 7. A restart loses no configuration

def test_restart_keeps_configuration(template, tmp_path):
    d = copy_data_dir(template, tmp_path / "data")
    s = CertServer(d, password=template["password"]).start()
    try:
        c = Client(s)
        c.ok("CreateUser", userName="carol", privileges="none", password="Carol-Secret-987!")
        c.ok("SetUserPrivileges", userName="carol", privileges="login,export,archive")
        c.ok("SetUserFullName", userName="carol", fullName="Carol Q. Example")
        c.ok("SetUserEmailAddresses", userName="carol", emailAddresses="carol@example.com, c.example@example.org")
        c.ok("SetUserPrivilegesOnFolder", userName="carol", folder="alice", privileges="read,write")
        c.ok("SetUserPrivilegesOnFolder", userName="carol", folder="big/bulk", privileges="read")
        compliance = c.ok("GetComplianceConfiguration")
        c.ok("SetComplianceConfiguration", config=json.dumps({"legalHoldEnabled": not compliance["legalHoldEnabled"],
                                                               "logSuccessfulUserActivities": ["UserAdd", "UserDelete"]}))
        compliance = c.ok("GetComplianceConfiguration")
        info = c.ok("GetUserInfo", userName="carol")

        second_crt, second_key = os.path.join(d, "certs", "second.crt"), os.path.join(d, "certs", "second.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", second_key, "-out", second_crt, "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True,
                       timeout=60)
        first_crt = s.cert_path()
        thumb = sha1_fingerprint(second_crt)
        assert served_certificate(s.port) == der_of(first_crt)
        result = c.ok("SetServiceCertificate", thumbprint=thumb)
        assert result["thumbprint"].upper() == thumb, result
        c.close()
        deadline = time.time() + 15
        while served_certificate(s.port) != der_of(second_crt):
            assert time.time() < deadline, "the server still presents the old certificate 15s after the switch"
            time.sleep(0.2)
        assert handshake_trusting(s.port, second_crt), "a client trusting the new certificate fails"
        assert not handshake_trusting(s.port, first_crt), "a client trusting only the old certificate still connects"
        s.cafile = second_crt
        c = Client(s)
        assert c.ok("GetServerInfo")["product"] == "mailvault"
        conf = c.ok("GetServiceConfiguration")
        assert conf["certificate"]["thumbprint"].upper() == thumb, conf
        c.close()
    except BaseException:
        s.kill()
        raise
    t0 = time.monotonic()
    s.stop()                                     # SIGTERM -> exit status 0, no sanitizer report
    assert time.monotonic() - t0 < 60

    s2 = CertServer(d, password=template["password"])
    s2.cafile = second_crt
    s2.start()
    try:
        assert served_certificate(s2.port) == der_of(second_crt), "after the restart the old certificate is served"
        c = Client(s2)
        assert c.ok("GetUserInfo", userName="carol") == info
        assert c.ok("GetComplianceConfiguration") == compliance
        conf = c.ok("GetServiceConfiguration")
        assert conf["certificate"]["thumbprint"].upper() == thumb, conf
        c.close()
        # carol's password survived too (she may not use the API: 403, not 401)
        cc = Client(s2, user="carol", password="Carol-Secret-987!")
        status, env = cc.invoke("GetServerInfo")
        cc.close()
        assert status == 403, (status, env)
    except BaseException:
        s2.kill()
        raise
    s2.stop()
    for want in ("carol", "Carol Q. Example", "carol@example.com", "c.example@example.org"):
        assert want in json.dumps(info), info
    grants = {g["folder"]: set(g["privileges"].split(",")) for g in info["privilegesOnFolders"]}
    assert grants == {"alice": {"read", "write"}, "big/bulk": {"read"}}, info
    assert set(info["privileges"].split(",")) == {"login", "export", "archive"}, info
    assert compliance["logSuccessfulUserActivities"] == ["UserAdd", "UserDelete"], compliance


# ---------------------------------------------------------------------------
# 8. SIGHUP reloads

def test_sighup_reload(template, tmp_path):
    d = copy_data_dir(template, tmp_path / "data")
    s = MvServer(d, password=template["password"]).start()
    try:
        conf_path = os.path.join(d, "mailvault.conf")
        with open(conf_path) as f:
            original = f.read()
        assert re.search(r"(?m)^debug_log=false$", original), original
        with open(conf_path, "w") as f:
            f.write(re.sub(r"(?m)^debug_log=false$", "debug_log=true", original))
        mark = len(s.stderr())
        s.signal(signal.SIGHUP)
        wait_for_text(s.stderr, "configuration reloaded", start=mark)
        assert s.ok("GetServerInfo")["product"] == "mailvault"
        assert s.ok("GetServiceConfiguration")["debugLog"] is True
        # the new setting is in effect: requests are now logged at debug level
        wait_for_text(s.stderr, "/api/invoke/GetServerInfo", timeout=10, start=mark)

        broken = re.sub(r"(?m)^\[service\]$", "[service]\nbogus_setting_xyz=1", original)
        with open(conf_path, "w") as f:
            f.write(broken)
        mark = len(s.stderr())
        s.signal(signal.SIGHUP)
        out = wait_for_text(s.stderr, "bogus_setting_xyz", start=mark)
        assert "configuration reloaded" not in out[mark:], out[mark:]
        for _ in range(3):
            assert s.ok("GetServerInfo")["product"] == "mailvault"
        assert served_certificate(s.port) == der_of(s.cert_path())
        with open(conf_path, "w") as f:
            f.write(original)
    except BaseException:
        s.kill()
        raise
    s.stop()


def test_sighup_under_load_loses_no_request(template, tmp_path):
    """Reloading (SIGHUP; SetServiceCertificate does the same) hands the
    listening socket to new listeners while the old ones finish what they
    serve: no request in flight, no long poll, no new connection fails."""
    d = copy_data_dir(template, tmp_path / "data")
    s = MvServer(d, password=template["password"]).start()
    stop = threading.Event()
    errors, counts = [], {"fresh": 0, "kept": 0}
    lock = threading.Lock()

    def fail(text):
        with lock:
            errors.append(text)

    def fresh_worker():
        while not stop.is_set():
            c = Client(s, timeout=60)
            try:
                status, env = c.invoke("GetServerInfo")
                if status != 200 or env["statusCode"] != "succeeded":
                    fail("fresh connection: HTTP %s %r" % (status, env))
            except Exception as e:  # noqa: BLE001
                fail("fresh connection: %r" % e)
            finally:
                c.close()
            with lock:
                counts["fresh"] += 1

    def kept_worker():
        c = Client(s, timeout=60)
        while not stop.is_set():
            for attempt in (1, 2):
                try:
                    status, env = c.invoke("GetStores", includeSize=False)
                    if status != 200 or env["statusCode"] != "succeeded":
                        fail("keep-alive: HTTP %s %r" % (status, env))
                    break
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                        ssl.SSLEOFError) as e:
                    # a server may close an idle keep-alive connection; a client retries once
                    c.close()
                    c = Client(s, timeout=60)
                    if attempt == 2:
                        fail("keep-alive, retried on a new connection: %r" % e)
                except Exception as e:  # noqa: BLE001
                    fail("keep-alive: %r" % e)
                    c.close()
                    c = Client(s, timeout=60)
                    break
            with lock:
                counts["kept"] += 1
        c.close()

    poll = {}

    def long_poll(token):
        c = Client(s, timeout=60)
        try:
            t0 = time.monotonic()
            poll["answer"] = c.status(token, 1, 8000)
            poll["seconds"] = time.monotonic() - t0
        except Exception as e:  # noqa: BLE001
            poll["error"] = repr(e)
        finally:
            c.close()

    try:
        with store_write_lock(d, "big") as release:
            status, env = s.invoke("VerifyStore", id=2)
            assert env["statusCode"] == "running" and env["statusVersion"] == 1, env
            threads = [threading.Thread(target=fresh_worker) for _ in range(4)]
            threads += [threading.Thread(target=kept_worker) for _ in range(4)]
            threads.append(threading.Thread(target=long_poll, args=(env["token"],)))
            for t in threads:
                t.start()
            time.sleep(1.0)
            for _ in range(4):
                mark = s.stderr().count("configuration reloaded")
                s.signal(signal.SIGHUP)
                deadline = time.time() + 20
                while s.stderr().count("configuration reloaded") <= mark:
                    assert time.time() < deadline, s.stderr()[-3000:]
                    time.sleep(0.05)
                time.sleep(0.7)
            stop.set()
            for t in threads:
                t.join(90)
            release()
        print("requests during reloads: %s; errors: %s; long poll: %s" % (counts, errors[:15], poll))
        assert "error" not in poll, "a get-status long poll in flight during a reload failed: %s" % poll["error"]
        status, penv = poll["answer"]
        assert status == 200 and penv["statusCode"] == "running", poll
        assert s.ok("GetServerInfo")["product"] == "mailvault"
        assert not errors, "%d requests failed during reloads, e.g.:\n%s" % (len(errors), "\n".join(errors[:15]))
        assert counts["fresh"] > 10 and counts["kept"] > 10, counts
    except BaseException:
        stop.set()
        s.kill()
        raise
    s.stop()


# ---------------------------------------------------------------------------
# 9. A clean shutdown while a job runs

def test_sigterm_with_rebuild_running(template, tmp_path):
    d = copy_data_dir(template, tmp_path / "data")
    s = MvServer(d, password=template["password"]).start()
    try:
        status, env = s.invoke("RebuildStoreIndex", id=2, folder="big")
        assert status == 200 and env["statusCode"] == "running", env
        s.signal(signal.SIGTERM)
        t0 = time.monotonic()
        try:
            rc = s.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            raise AssertionError("the server did not exit within 60s of SIGTERM with a rebuild running:\n"
                                 + s.stderr()[-4000:])
        print("exit after SIGTERM with a rebuild running: %.2fs" % (time.monotonic() - t0))
    except BaseException:
        s.kill()
        raise
    s.stop()                                     # asserts status 0 and no sanitizer report
    assert rc == 0
    for sid in (1, 2):
        out = parse_json(mv("cmd", "VerifyStore", "--id=%d" % sid, data_dir=d))
        assert out["statusCode"] == "succeeded" and out["result"]["clean"] is True, out
    hits = search_json("bulk", d, archive="big", limit=0)
    assert len(hits) == BIG_MESSAGES, "the index of store 2 lacks messages after the stop: %d hits" % len(hits)


# ---------------------------------------------------------------------------
# 11. One server per data directory (and imports while it runs)

@pytest.fixture(scope="module")
def lock_server(template, tmp_path_factory):
    d = copy_data_dir(template, tmp_path_factory.mktemp("api-lock") / "data")
    s = MvServer(d, password=template["password"]).start()
    yield s
    s.stop()


def test_second_server_on_same_directory(lock_server):
    port = free_port()
    cp = subprocess.run([MAILVAULT_BIN, "--data-dir", lock_server.data_dir, "serve", "--listen",
                         "127.0.0.1:%d" % port], capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    err = (cp.stdout + cp.stderr).decode("utf-8", "replace")
    for marker in SANITIZER_MARKERS:
        assert marker not in cp.stderr, err
    assert cp.returncode not in (0, None) and cp.returncode > 0, "second server: exit %s\n%s" % (cp.returncode, err)
    assert "in use" in err, err
    assert "pid %d" % lock_server.proc.pid in err, err
    # the first one is unharmed
    assert lock_server.ok("GetServerInfo")["product"] == "mailvault"


def test_import_while_server_runs_goes_through_it(lock_server, tmp_path):
    """An import never writes beside the server: without credentials it
    fails having written nothing, with them the server archives
    (test_import_via_server.py tests that path in depth)."""
    src = str(tmp_path / "intruder")
    write_emls(src, "Intruder", 2, first_day=300)
    env = {k: v for k, v in os.environ.items() if k != "MAILVAULT_PASSWORD"}
    # A session of its own: no terminal to ask for the password on.
    cp = subprocess.run([MAILVAULT_BIN, "--data-dir", lock_server.data_dir, "import", src, "--archive", "intruder",
                         "--json"], capture_output=True, timeout=120, stdin=subprocess.DEVNULL, env=env,
                        start_new_session=True)
    out = (cp.stdout + cp.stderr).decode("utf-8", "replace")
    for marker in SANITIZER_MARKERS:
        assert marker.decode() not in out, out
    folders = {f["folder"] for f in lock_server.ok("GetChildFolders")}
    assert cp.returncode == 1 and "intruder" not in folders, \
        ("an import without credentials wrote to the data directory of a running server (exit %d, archive "
         "intruder now %s):\n%s" % (cp.returncode, "present" if "intruder" in folders else "absent", out[-2000:]))
    assert "pid %d" % lock_server.proc.pid in out and "no password for admin" in out, out
    env["MAILVAULT_PASSWORD"] = lock_server.password
    cp = subprocess.run([MAILVAULT_BIN, "--data-dir", lock_server.data_dir, "import", src, "--archive", "intruder",
                         "--json"], capture_output=True, timeout=120, stdin=subprocess.DEVNULL, env=env)
    assert cp.returncode == 0, cp.stderr.decode("utf-8", "replace")
    assert json.loads(cp.stdout)["imported"] == 2
    assert "intruder" in {f["folder"] for f in lock_server.ok("GetChildFolders")}


# ---------------------------------------------------------------------------
# 9. Readers' store handles kept open between requests of one connection

def test_kept_reader_handles_follow_recovery(template, tmp_path):
    """The server keeps a reader's store handle open between the requests of
    a keep-alive connection.  RecoverStore renames a new db into place: a
    connection holding a handle on the old file must see the new one, and
    closing that stale handle must not touch the new db or its WAL (SQLite
    skips the checkpoint-on-close, which deletes the WAL by name, when the
    db file has moved).  Three connections: a holds a handle from before
    the recovery, c one from after it (keeping the new WAL alive), b writes.
    The deletion made after the recovery was acknowledged: it must survive
    a crash of the server (kill -9, so that no clean close checkpoints the
    WAL's content into the db first)."""
    d = copy_data_dir(template, tmp_path / "data")
    s = MvServer(d, password=template["password"]).start()
    a, b, c = Client(s), Client(s), Client(s)
    try:
        db_file = os.path.join(b.ok("GetStores", includeSize=False)[0]["databasePath"], "store.sqlite")
        inbox = a.ok("GetMessages", folder="alice/Inbox")
        before = sorted(m["id"] for m in inbox)
        assert len(before) == FOLDERS["Inbox"], before
        victim = [m["id"] for m in inbox if m["subject"].endswith("inboxuniq4")][0]
        assert len(a.ok("SearchMessages", query="inboxuniq4")) == 1
        inode = os.stat(db_file).st_ino

        b.ok("SetStoreRequestedState", id=2, requestedState="current")
        b.ok("SetStoreRequestedState", id=1, requestedState="disabled")
        report = b.ok("RecoverStore", id=1)
        assert report["messagesRecovered"] == sum(FOLDERS.values()), report
        b.ok("SetStoreRequestedState", id=1, requestedState="normal")
        assert os.stat(db_file).st_ino != inode, "RecoverStore did not put a new db file in place"

        assert sorted(m["id"] for m in c.ok("GetMessages", folder="alice/Inbox")) == before
        assert b.ok("DeleteMessage", id=victim, reason="test: after a recovery") is None
        expected = [i for i in before if i != victim]
        for who in (a, c, a):
            assert sorted(m["id"] for m in who.ok("GetMessages", folder="alice/Inbox")) == expected
        assert a.ok("SearchMessages", query="inboxuniq4") == []
        assert b.ok("MoveFolder", fromFolder="alice/Inbox", toFolder="alice/Moved") is None
        assert sorted(m["id"] for m in a.ok("GetMessages", folder="alice/Moved")) == expected
        status, env = a.invoke("GetMessages", folder="alice/Inbox")
        assert error_message(env) == "GetMessages: folder 'alice/Inbox' does not exist", env
        s.kill()
    finally:
        for cl in (a, b, c):
            cl.close()
        if s.proc is not None:
            s.stop()
    out = parse_json(mv("cmd", "GetMessages", "--folder=alice/Moved", data_dir=d))
    assert sorted(m["id"] for m in out["result"]) == expected, "the deletion after the recovery was lost"
    out = parse_json(mv("cmd", "VerifyStore", "--id=1", data_dir=d))
    assert out["result"]["clean"] is True, out


def test_transfer_job_switches_to_new_stores(template, tmp_path):
    """TransferStores as a server job into the current store, with a small
    auto-create threshold: the ingest's committer creates and opens each new
    store on an instance of its own while the job's thread goes on reading
    the source store through the job's instance."""
    d = copy_data_dir(template, tmp_path / "data")
    s = MvServer(d, password=template["password"]).start()
    c = Client(s)
    try:
        c.ok("SetStoreAutoCreateConfiguration", config=json.dumps({
            "sizeThreshold": 600, "databaseBaseDirectory": str(tmp_path / "auto-db"),
            "contentBaseDirectory": str(tmp_path / "auto-content"), "indexBaseDirectory": None}))
        c.ok("SetStoreRequestedState", id=2, requestedState="writeProtected")
        r = c.ok("TransferStores", sourceStores="2")
        assert r["messagesTransferred"] == BIG_MESSAGES, r
        stores = {x["id"]: x for x in c.ok("GetStores")}
        new = sorted(i for i in stores if i > 2)
        assert len(new) >= 2, "expected switches to new stores at 600 messages: %s" % stores
        assert stores[new[-1]]["state"] == "current", stores
        moved = sum(stores[i]["size"]["messages"] for i in [1] + new)
        assert moved == sum(FOLDERS.values()) + BIG_MESSAGES, stores
        for i in [1] + new:
            assert stores[i]["size"]["messages"] <= 600 + 512, stores[i]   # the switch comes between batches
            v = c.ok("VerifyStore", id=i)
            assert v["clean"] is True, v
        hits = c.ok("SearchMessages", query="zebra1999", archive="big")
        assert {h["id"].split(":")[0] for h in hits} - {"2"}, "the transferred copy is not found: %s" % hits
    finally:
        c.close()
        s.stop()
