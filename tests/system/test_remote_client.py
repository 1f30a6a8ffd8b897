"""`mailvault cmd --server URL --user NAME ...`: the command line as a client
of a server's Administration API (design.md section 9), tested against a
small HTTPS server written here (http.server + ssl with a throw-away
self-signed certificate), so that exactly what goes over the wire can be
checked: the form encoding, Basic authentication, the get-status long poll,
cancel-async on Ctrl-C, and what each HTTP answer becomes.

Also here: a local `mailvault cmd` that would write refuses while a server
holds the data directory (an exclusive flock on DATA/server.lock), and a
read-only one still runs."""

import base64
import collections
import fcntl
import json
import os
import pty
import select
import signal
import ssl
import subprocess
import termios
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mvtest import MAILVAULT_BIN, T_SHORT, check_no_crash, mv

USER = "admin"
PASSWORD = "pa ss:w\u00f6rd&="          # a colon, a space and UTF-8: Basic auth must carry it as is
BOM = b"\xef\xbb\xbf"
MiB = 1024 * 1024

Request = collections.namedtuple("Request", "path fields raw headers peer time")


def envelope(status="succeeded", result=None, token=None, version=1, percent=None, text=None, error=None):
    return {"error": error, "token": token, "statusVersion": version, "statusCode": status,
            "percentProgress": percent, "statusText": text, "result": result, "logOutput": None}


def make_cert(directory, name):
    key, crt = directory / (name + ".key"), directory / (name + ".crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", str(key), "-out", str(crt), "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return key, crt


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive, as the real server

    def log_message(self, *args):
        pass

    def do_POST(self):
        fake = self.server.fake
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        # The form must be pure ASCII (everything else percent-encoded) and
        # decode as UTF-8.
        fields = urllib.parse.parse_qs(raw.decode("ascii"), keep_blank_values=True,
                                       encoding="utf-8", errors="strict")
        req = Request(self.path, fields, raw, dict(self.headers), self.client_address, time.monotonic())
        fake.record(req)
        if self.headers.get("Authorization") != fake.expected_auth():
            self.reply(401, b"<html>401</html>", "text/html", {"WWW-Authenticate": 'Basic realm="mailvault"'})
            return
        route = fake.routes.get(self.path)
        if route is None:
            self.reply(404, b"<html>no such path</html>", "text/html")
            return
        status, body = route(req)
        if isinstance(body, (bytes, bytearray)) or callable(body):
            self.reply(status, body)
        else:
            self.reply(status, json.dumps(body).encode("utf-8"))

    def reply(self, status, body, ctype="application/json; charset=utf-8", extra=None):
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            if callable(body):           # a streamed body: (length, writer)
                length, writer = body()
                self.send_header("Content-Length", str(length))
                self.end_headers()
                writer(self.wfile)
                return
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass   # the client went away (Ctrl-C, refused answer)


class FakeServer:
    def __init__(self, directory, tls=True):
        self.requests = []
        self.lock = threading.Lock()
        self.password = PASSWORD
        self.routes = {}
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.fake = self
        port = self.httpd.server_address[1]
        if tls:
            self.key, self.cert = make_cert(directory, "server")
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(self.cert), str(self.key))
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
            self.url = "https://localhost:%d" % port
        else:
            self.cert = None
            self.url = "http://127.0.0.1:%d" % port
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def expected_auth(self):
        return "Basic " + base64.b64encode(("%s:%s" % (USER, self.password)).encode("utf-8")).decode()

    def record(self, req):
        with self.lock:
            self.requests.append(req)

    def paths(self):
        with self.lock:
            return [r.path for r in self.requests]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(tmp_path):
    s = FakeServer(tmp_path)
    yield s
    s.close()


def client_env(password=PASSWORD):
    env = dict(os.environ)
    env.pop("MAILVAULT_PASSWORD", None)
    if password is not None:
        env["MAILVAULT_PASSWORD"] = password
    return env


def remote_args(server, *words, cacert=True, user=USER):
    args = ["cmd", "--server", server.url, "--user", user]
    if cacert and server.cert:
        args += ["--cacert", str(server.cert)]
    return args + list(words)


def client(server, *words, check=0, password=PASSWORD, cacert=True, env=None):
    return mv(*remote_args(server, *words, cacert=cacert), check=check,
              env=env if env is not None else client_env(password))


def out_json(cp):
    return json.loads(cp.stdout.decode("utf-8"))


def err_text(cp):
    return cp.stderr.decode("utf-8", "replace")


def no_password_shown(cp):
    for stream in (cp.stdout, cp.stderr):
        assert PASSWORD.encode("utf-8") not in stream, "the password was printed"


# ---- what goes over the wire -----------------------------------------------------------

TRICKY = {
    "space": "a b  c ",
    "amp": "x&y=z",
    "plus": "1+1 = 2",
    "percent": "100%25 %",
    "utf8": "Gr\u00fc\u00dfe, \u65e5\u672c \u2713",
    "newline": "line1\nline2\r\nend",
    "empty": "",
}


def test_form_encoding_arrives_decoded(server):
    server.routes["/api/invoke/Echo"] = lambda req: (200, envelope(result={"got": req.fields}))
    words = ["Echo"]
    for name, value in TRICKY.items():
        words.append("--%s=%s" % (name, value))
    words += ["--separate", "two words & more", "--flag"]
    cp = client(server, *words)
    reqs = server.requests
    assert [r.path for r in reqs] == ["/api/invoke/Echo"]
    expected = {k: [v] for k, v in TRICKY.items()}
    expected["separate"] = ["two words & more"]
    expected["flag"] = ["true"]
    assert reqs[0].fields == expected
    assert reqs[0].headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded")
    # The envelope is printed as the local path prints it: indented JSON.
    assert out_json(cp) == envelope(result={"got": expected})
    assert cp.stdout.startswith(b"{\n  \"error\": null,\n"), cp.stdout[:200]
    no_password_shown(cp)


def test_basic_auth_carries_user_and_password(server):
    server.routes["/api/invoke/GetServerInfo"] = lambda req: (200, envelope(result={"ok": 1}))
    client(server, "GetServerInfo")
    auth = server.requests[0].headers["Authorization"]
    assert auth.startswith("Basic ")
    assert base64.b64decode(auth[6:]).decode("utf-8") == "%s:%s" % (USER, PASSWORD)


def test_bom_is_stripped(server):
    env = envelope(result={"name": "\u00e4"})
    server.routes["/api/invoke/GetServerInfo"] = lambda req: (200, BOM + json.dumps(env).encode("utf-8"))
    cp = client(server, "GetServerInfo")
    assert out_json(cp) == env


def test_answer_that_is_not_json_fails(server):
    server.routes["/api/invoke/GetServerInfo"] = lambda req: (200, b"<html>hello</html>")
    cp = client(server, "GetServerInfo", check=1)
    assert "%s/api/invoke/GetServerInfo" % server.url in err_text(cp)
    assert "not JSON" in err_text(cp)


def test_word_errors_are_reported_without_asking_the_server(server):
    cp = client(server, "Echo", "notanoption", check=2)
    assert "expected --argument=value" in out_json(cp)["error"]["message"]
    cp = client(server, "Echo", "--a=1", "--a=2", check=2)
    assert "given twice" in out_json(cp)["error"]["message"]
    assert server.requests == []


def test_list_json_prints_the_metadata(server):
    meta = [{"name": "GetServerInfo", "args": []},
            {"name": "CreateStore", "args": [{"name": "name", "type": "string", "nullable": False}]}]
    server.routes["/api/get-metadata"] = lambda req: (200, BOM + json.dumps(meta).encode())
    cp = client(server, "--list", "--json")
    assert out_json(cp) == meta
    assert server.paths() == ["/api/get-metadata"]


def test_list_prints_the_servers_functions_as_a_table(server):
    """The server's list, described as this build describes its functions;
    one this build does not know is listed and marked."""
    meta = [{"name": "GetServerInfo", "args": []},
            {"name": "FutureFunction", "args": [{"name": "x", "type": "string", "nullable": True}]}]
    server.routes["/api/get-metadata"] = lambda req: (200, BOM + json.dumps(meta).encode())
    cp = client(server, "--list")
    lines = cp.stdout.decode().splitlines()
    assert lines[0].split() == ["FUNCTION", "PRIVILEGE", "SUMMARY"], lines
    assert len(lines) == 3, lines
    assert lines[1].split()[:2] == ["GetServerInfo", "admin"] and "version" in lines[1], lines
    assert lines[2].split()[:2] == ["FutureFunction", "?"] and "not known to this build" in lines[2], lines
    assert server.paths() == ["/api/get-metadata"]


def test_function_help_asks_no_server(server):
    cp = client(server, "GetMessages", "--help")
    out = cp.stdout.decode()
    assert out.startswith("GetMessages: ") and "--folder=string  required" in out, out
    assert server.requests == []


# ---- long-running functions ----------------------------------------------------------------

def test_running_then_succeeded_polls_with_status_versions(server):
    steps = {1: envelope("running", token="tok-7", version=2, percent=50, text="halfway"),
             2: envelope("succeeded", token="tok-7", version=3, percent=100, text="done", result={"n": 42})}
    server.routes["/api/invoke/VerifyStores"] = lambda req: (
        200, envelope("running", token="tok-7", version=1, percent=10, text="step one"))
    server.routes["/api/get-status"] = lambda req: (200, steps[int(req.fields["lastKnownStatusVersion"][0])])
    cp = client(server, "VerifyStores", "--includeIndexes=true")
    assert server.paths() == ["/api/invoke/VerifyStores", "/api/get-status", "/api/get-status"]
    polls = [r.fields for r in server.requests[1:]]
    assert polls == [{"token": ["tok-7"], "lastKnownStatusVersion": ["1"], "millisecondsTimeout": ["5000"]},
                     {"token": ["tok-7"], "lastKnownStatusVersion": ["2"], "millisecondsTimeout": ["5000"]}]
    assert out_json(cp) == steps[2]
    # progress on stderr (not a terminal: one line per report that moved)
    assert "progress: 10% step one" in err_text(cp)
    assert "progress: 50% halfway" in err_text(cp)
    # one connection for the whole run
    assert len({r.peer for r in server.requests}) == 1, [r.peer for r in server.requests]


def test_running_then_failed_exits_1(server):
    server.routes["/api/invoke/CompactStore"] = lambda req: (200, envelope("running", token="t", version=1))
    server.routes["/api/get-status"] = lambda req: (
        200, envelope("failed", token="t", version=2, error={"message": "disk full", "details": None}))
    cp = client(server, "CompactStore", "--id=1", check=1)
    assert out_json(cp)["error"]["message"] == "disk full"


def test_ctrl_c_sends_cancel_async_and_waits_for_the_end(server):
    cancelled = threading.Event()

    def get_status(req):
        # The long poll: block for millisecondsTimeout unless cancelled.
        if cancelled.wait(int(req.fields["millisecondsTimeout"][0]) / 1000):
            return 200, envelope("cancelled", token="tok-c", version=3,
                                 error={"message": "cancelled by the user", "details": None})
        return 200, envelope("running", token="tok-c", version=2, percent=5, text="working")

    def cancel_async(req):
        cancelled.set()
        return 200, envelope("running", token="tok-c", version=2)

    server.routes["/api/invoke/RecoverStore"] = lambda req: (200, envelope("running", token="tok-c", version=1))
    server.routes["/api/get-status"] = get_status
    server.routes["/api/cancel-async"] = cancel_async
    proc = subprocess.Popen([MAILVAULT_BIN] + remote_args(server, "RecoverStore", "--id=1"),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=client_env())
    try:
        deadline = time.monotonic() + 30
        while "/api/get-status" not in server.paths():
            assert time.monotonic() < deadline and proc.poll() is None, "no get-status poll came"
            time.sleep(0.05)
        time.sleep(0.3)   # well inside the 5 s long poll
        t_sigint = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=T_SHORT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    cp = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    check_no_crash(cp)
    cancels = [r for r in server.requests if r.path == "/api/cancel-async"]
    assert len(cancels) == 1, server.paths()
    assert cancels[0].fields == {"token": ["tok-c"]}
    # The poll in flight is given up at once, not after its 5 s.
    assert cancels[0].time - t_sigint < 3.0
    # Then it polls on until the final status, prints it, exits 1.
    assert server.paths()[-1] == "/api/get-status"
    assert cp.returncode == 1, err_text(cp)
    assert out_json(cp)["statusCode"] == "cancelled"


# ---- HTTP answers other than 200 --------------------------------------------------------------

def test_wrong_password_401(server):
    server.routes["/api/invoke/GetServerInfo"] = lambda req: (200, envelope())
    server.password = "something else"
    cp = client(server, "GetServerInfo", check=1)
    assert "mailvault: %s: wrong user name or password" % server.url in err_text(cp)
    assert cp.stdout == b""
    no_password_shown(cp)


def test_forbidden_403(server):
    server.routes["/api/invoke/GetServerInfo"] = lambda req: (403, envelope("failed"))
    cp = client(server, "GetServerInfo", check=1)
    assert "user %s lacks the admin privilege or the api login privilege" % USER in err_text(cp)


def test_unknown_function_404_envelope_exits_2(server):
    env = envelope("failed", error={"message": "unknown function 'NoSuch'", "details": None})
    server.routes["/api/invoke/NoSuch"] = lambda req: (404, BOM + json.dumps(env).encode())
    cp = client(server, "NoSuch", "--x=1", check=2)
    assert out_json(cp) == env


def test_bad_arguments_400_envelope_exits_2(server):
    env = envelope("failed", error={"message": "CreateStore: argument 'name' is required", "details": None})
    server.routes["/api/invoke/CreateStore"] = lambda req: (400, env)
    cp = client(server, "CreateStore", check=2)
    assert out_json(cp) == env


def test_404_without_envelope_and_500_name_status_and_url(server):
    cp = client(server, "NoRoute", check=1)   # the fake answers HTML
    assert "%s/api/invoke/NoRoute" % server.url in err_text(cp)
    assert "404" in err_text(cp)
    server.routes["/api/invoke/Boom"] = lambda req: (500, b"oops")
    cp = client(server, "Boom", check=1)
    assert "%s/api/invoke/Boom" % server.url in err_text(cp) and "500" in err_text(cp)


def test_answer_over_256_mib_is_refused(server):
    def huge():
        length = 256 * MiB + 1

        def writer(wfile):
            chunk = b" " * MiB
            left = length
            while left > 0:
                wfile.write(chunk[:min(left, MiB)])
                left -= MiB
        return length, writer
    server.routes["/api/invoke/GetMessages"] = lambda req: (200, huge)
    cp = client(server, "GetMessages", check=1)
    assert "larger than 256 MiB" in err_text(cp), err_text(cp)
    assert "%s/api/invoke/GetMessages" % server.url in err_text(cp)


# ---- TLS --------------------------------------------------------------------------------------

def test_cacert_verifies_and_wrong_ca_fails_naming_the_url(server, tmp_path):
    server.routes["/api/invoke/GetServerInfo"] = lambda req: (200, envelope(result={"ok": True}))
    client(server, "GetServerInfo")                # --cacert of the server's certificate
    assert len(server.requests) == 1
    _, other = make_cert(tmp_path, "other")
    cp = mv("cmd", "--server", server.url, "--user", USER, "--cacert", other, "GetServerInfo",
            check=1, env=client_env())
    assert "%s/api/invoke/GetServerInfo" % server.url in err_text(cp)
    assert "certificate" in err_text(cp).lower(), err_text(cp)
    cp = client(server, "GetServerInfo", cacert=False, check=1)   # the system store does not know it
    assert "certificate" in err_text(cp).lower(), err_text(cp)
    assert len(server.requests) == 1, "a request got through an unverified connection"


def test_insecure_connects_with_a_warning(server):
    server.routes["/api/invoke/GetServerInfo"] = lambda req: (200, envelope(result={"ok": True}))
    cp = mv("cmd", "--server", server.url, "--user", USER, "--insecure", "GetServerInfo", env=client_env())
    assert "--insecure" in err_text(cp) and "not verified" in err_text(cp)
    assert out_json(cp)["result"] == {"ok": True}


def test_plain_http_only_to_this_machine(tmp_path):
    cp = mv("cmd", "--server", "http://example.com:8463", "--user", USER, "GetServerInfo",
            check=2, env=client_env())
    assert "https://" in err_text(cp) and "unencrypted" in err_text(cp)
    plain = FakeServer(tmp_path, tls=False)
    try:
        plain.routes["/api/invoke/GetServerInfo"] = lambda req: (200, envelope(result={"plain": 1}))
        cp = client(plain, "GetServerInfo")
        assert out_json(cp)["result"] == {"plain": 1}
    finally:
        plain.close()


def test_option_errors(server):
    cp = mv("cmd", "--server", server.url, "GetServerInfo", check=2, env=client_env())
    assert "--user" in err_text(cp)
    cp = mv("cmd", "--user", USER, "GetServerInfo", check=2, env=client_env())
    assert "--server" in err_text(cp)
    cp = mv("cmd", "--server", server.url, "--user", USER, "--insecure", "--cacert", "x", "GetServerInfo",
            check=2, env=client_env())
    assert server.requests == []


def test_network_error_names_the_url():
    cp = mv("cmd", "--server", "https://127.0.0.1:1", "--user", USER, "GetServerInfo", check=1, env=client_env())
    assert "https://127.0.0.1:1/api/invoke/GetServerInfo" in err_text(cp)


# ---- the password ------------------------------------------------------------------------------

def test_password_from_file_first_line(server, tmp_path):
    server.routes["/api/invoke/GetServerInfo"] = lambda req: (200, envelope())
    pw = tmp_path / "pw"
    pw.write_bytes((PASSWORD + "\nsecond line\n").encode("utf-8"))
    # the file wins over the environment
    cp = client(server, "--password-file", pw, "GetServerInfo", password="wrong")
    no_password_shown(cp)
    pw.write_bytes(b"wrong\n" + PASSWORD.encode("utf-8") + b"\n")
    client(server, "--password-file", pw, "GetServerInfo", check=1)
    assert len(server.requests) == 2


def test_password_from_environment(server):
    server.routes["/api/invoke/GetServerInfo"] = lambda req: (200, envelope())
    client(server, "GetServerInfo", password=PASSWORD)
    client(server, "GetServerInfo", password="wrong", check=1)


def test_no_password_and_no_terminal_says_how(server):
    args = [MAILVAULT_BIN] + remote_args(server, "GetServerInfo")
    cp = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, timeout=T_SHORT,
                        env=client_env(None), start_new_session=True)   # no controlling terminal
    check_no_crash(cp)
    assert cp.returncode == 1
    assert "--password-file" in err_text(cp) and "MAILVAULT_PASSWORD" in err_text(cp)
    assert server.requests == []


def _controlling_tty():
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _read_until(fd, marker, timeout=30):
    buf = b""
    deadline = time.monotonic() + timeout
    while marker not in buf:
        left = deadline - time.monotonic()
        assert left > 0, "timed out waiting for %r, got %r" % (marker, buf)
        r, _, _ = select.select([fd], [], [], left)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
    return buf


def test_password_prompt_on_terminal_without_echo(server):
    server.routes["/api/invoke/GetServerInfo"] = lambda req: (200, envelope(result={"ok": 1}))
    master, slave = pty.openpty()
    proc = subprocess.Popen([MAILVAULT_BIN] + remote_args(server, "GetServerInfo"), stdin=slave,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=client_env(None),
                            preexec_fn=_controlling_tty)
    os.close(slave)
    try:
        seen = _read_until(master, b"Password for %s: " % USER.encode())
        os.write(master, PASSWORD.encode("utf-8") + b"\n")
        out, err = proc.communicate(timeout=T_SHORT)
        try:
            seen += os.read(master, 4096)
        except OSError:
            pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    cp = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    check_no_crash(cp)
    assert cp.returncode == 0, err_text(cp)
    assert PASSWORD.encode("utf-8") not in seen, "the password was echoed"
    assert out_json(cp)["result"] == {"ok": 1}


# ---- a local cmd while a server holds the data directory --------------------------------------------

def test_local_write_refused_while_a_server_holds_the_data_dir(data_dir):
    path = os.path.join(str(data_dir), "server.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, b"pid 1, https://x\n")
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        cp = mv("cmd", "RetryOpenStores", data_dir=data_dir, check=1)
        # The refusal is the function's error envelope, as any other failure.
        env = json.loads(cp.stdout)
        assert env["statusCode"] == "failed", env
        msg = env["error"]["message"]
        assert "pid 1, https://x" in msg and "--server" in msg, msg
        cp = mv("cmd", "GetServerInfo", data_dir=data_dir)          # read-only: runs
        assert json.loads(cp.stdout)["statusCode"] == "succeeded"
    finally:
        os.close(fd)   # drops the flock
    cp = mv("cmd", "RetryOpenStores", data_dir=data_dir)            # the same call, with no server
    assert json.loads(cp.stdout)["statusCode"] == "succeeded"
