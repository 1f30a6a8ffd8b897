"""The server's life cycle around its listeners (issue 9, items 5 and 12):

- SIGTERM while clients wait on get-status: every waiting client gets its
  job's current status (HTTP 200, the normal JSON), a request still in
  flight (its body arriving after the signal) is finished and answered,
  and only then does the server exit, with status 0;
- a listener that cannot bind says why: the address in use by another
  process, an address not of this machine — for the API, Web Access and IMAP;
- `mailvault cmd --server` against the server's self-signed certificate
  without --cacert (or with the wrong one) says to pass --cacert and where
  the server's certificate lives;
- the configuration the first `serve` writes has no trailing ';' after its
  listen addresses, and the old form with one is still read."""

import base64
import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse

import pytest

from mvserver import MvServer, decode_body, free_port, init_with_admin
from mvtest import MAILVAULT_BIN, SANITIZER_MARKERS, import_json, init_data_dir, mv

pytestmark = pytest.mark.xdist_group("server_lifecycle")

STORES = 4            # VerifyStores must still run when SIGTERM comes: four copies of the corpus
WAITERS = 8           # get-status calls waiting at once when SIGTERM comes
STOP_BOUND = 60       # seconds from SIGTERM to exit: the jobs stop at their next safe point


# ---- helpers -------------------------------------------------------------------------------------

def basic(password, user="admin"):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


class Waiter(threading.Thread):
    """One get-status call that waits (lastKnownStatusVersion far ahead)."""

    def __init__(self, server, token):
        super().__init__(daemon=True)
        self.server, self.token = server, token
        self.answer = None          # (status, envelope) or the exception's text
        self.answered_at = None
        self.start()

    def run(self):
        try:
            self.answer = self.server.request("/api/get-status", {"token": self.token,
                                                                 "lastKnownStatusVersion": 1000000000,
                                                                 "millisecondsTimeout": 60000}, timeout=120)
        except Exception as e:  # noqa: BLE001 -- the test reports it
            self.answer = repr(e)
        self.answered_at = time.monotonic()


class SlowRequest:
    """A request sent up to part of its body: in flight on the server until
    finish() sends the rest."""

    CUT = 5

    def __init__(self, server, path, fields):
        self.body = urllib.parse.urlencode(fields).encode()
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=120)
        self.tls = server.ssl_context().wrap_socket(raw, server_hostname="127.0.0.1")
        head = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: %s\r\n"
                "Content-Type: application/x-www-form-urlencoded; charset=utf-8\r\n"
                "Content-Length: %d\r\nConnection: close\r\n\r\n"
                % (path, server.port, basic(server.password), len(self.body))).encode()
        self.tls.sendall(head + self.body[:self.CUT])

    def finish(self):
        """Sends the rest; returns (status, decoded JSON) or the exception's text."""
        try:
            self.tls.sendall(self.body[self.CUT:])
            resp = http.client.HTTPResponse(self.tls)
            resp.begin()
            return resp.status, decode_body(resp.read())
        except Exception as e:  # noqa: BLE001 -- the test reports it
            return repr(e)
        finally:
            self.tls.close()


def serve_args(api_port, web_port=None, imap_port=None, imaps_port=None):
    return ["serve", "--listen", "127.0.0.1:%d" % api_port,
            "--web-listen", "127.0.0.1:%d" % (web_port or free_port()),
            "--imap-listen", "127.0.0.1:%d" % (imap_port or free_port()),
            "--imap-listen-tls", "127.0.0.1:%d" % (imaps_port or free_port())]


def failed_start(data_dir, *args):
    """`serve` that must fail at start; returns its stderr."""
    cp = mv(*args, data_dir=data_dir, check=1, timeout=120)
    return cp.stderr.decode("utf-8", "replace")


def status_ok(answer, token):
    return (isinstance(answer, tuple) and answer[0] == 200 and isinstance(answer[1], dict)
            and answer[1].get("token") == token and isinstance(answer[1].get("statusCode"), str)
            and "statusVersion" in answer[1])


# ---- SIGTERM with clients waiting ----------------------------------------------------------------

@pytest.fixture(scope="module")
def stores(corpus, tmp_path_factory):
    """A data directory with the EML corpus in each of STORES stores, so
    that VerifyStores runs for seconds."""
    d = tmp_path_factory.mktemp("lifecycle") / "data"
    password = init_with_admin(d)
    for i in range(STORES):
        if i:
            mv("cmd", "CreateStore", "--name=s%d" % (i + 1), "--requestedState=current", data_dir=d)
        summary, _ = import_json(corpus.eml_dir, "corpus", d)
        assert summary["imported"] == len(corpus.sums), summary
    return d, password


def test_sigterm_answers_waiting_get_status_and_finishes_requests_in_flight(stores):
    data_dir, password = stores
    server = MvServer(data_dir, password=password).start()
    try:
        status, env = server.invoke("VerifyStores")
        assert status == 200 and env["statusCode"] == "running", env
        token = env["token"]
        waiters = [Waiter(server, token) for _ in range(WAITERS)]
        # A get-status whose body is still arriving when SIGTERM comes.
        slow = SlowRequest(server, "/api/get-status", {"token": token, "lastKnownStatusVersion": 0,
                                                       "millisecondsTimeout": 0})
        time.sleep(0.8)
        status, now = server.request("/api/get-status", {"token": token, "lastKnownStatusVersion": 0,
                                                          "millisecondsTimeout": 0})
        assert status == 200 and now["statusCode"] == "running", \
            "VerifyStores ended before SIGTERM: give it more to verify (%r)" % (now,)
        assert all(w.answer is None for w in waiters), [w.answer for w in waiters if w.answer is not None]
        signalled = time.monotonic()
        server.signal(signal.SIGTERM)
        time.sleep(1.0)          # the server must wait for the slow request, not cut it
        slow_answer = slow.finish()
        for w in waiters:
            w.join(120)
        try:
            rc = server.proc.wait(timeout=STOP_BOUND)
        except subprocess.TimeoutExpired:
            raise AssertionError("server did not exit within %d s of SIGTERM:\n%s"
                                 % (STOP_BOUND, server.stderr()[-4000:]))
        stopped = time.monotonic()
    finally:
        if server.proc and server.proc.poll() is None:
            server.kill()
    bad = [w.answer for w in waiters if not status_ok(w.answer, token)]
    assert not bad, "waiting get-status calls not answered with a status at SIGTERM: %s" % bad
    early = [w.answered_at - signalled for w in waiters if w.answered_at < signalled]
    assert not early, "get-status answered before SIGTERM (VerifyStores finished too soon): %s" % early
    assert status_ok(slow_answer, token), "the request in flight at SIGTERM was not answered: %r" % (slow_answer,)
    assert rc == 0, "exit status %s:\n%s" % (rc, server.stderr()[-4000:])
    assert stopped - signalled >= 1.0, "the server exited before the request in flight was finished"
    server.stop()                # closes the logs, checks for sanitizer reports
    assert "SIGTERM: stopping" in server.stderr()


def test_new_long_running_call_while_stopping_is_refused(stores):
    """A job started while the server stops could never be followed to its
    end: refused with a failed envelope instead of a token."""
    data_dir, password = stores
    server = MvServer(data_dir, password=password).start()
    try:
        status, env = server.invoke("VerifyStores")
        assert status == 200 and env["statusCode"] == "running", env
        slow = SlowRequest(server, "/api/invoke/VerifyStores", {"includeIndexes": "false"})
        time.sleep(0.5)
        server.signal(signal.SIGTERM)
        time.sleep(0.5)
        answer = slow.finish()
        rc = server.proc.wait(timeout=STOP_BOUND)
    finally:
        if server.proc and server.proc.poll() is None:
            server.kill()
    assert isinstance(answer, tuple) and answer[0] == 200, answer
    assert answer[1]["statusCode"] == "failed" and answer[1]["token"] is None, answer
    assert "stopping" in answer[1]["error"]["message"], answer
    assert rc == 0
    server.stop()


@pytest.fixture
def fresh(tmp_path):
    """An initialised data directory and its admin password."""
    d = tmp_path / "data"
    return d, init_with_admin(d)


# ---- listeners that cannot bind --------------------------------------------------------------------

def test_listen_errors_say_which_address_and_why(fresh, tmp_path):
    other = init_data_dir(tmp_path / "other")
    with MvServer(fresh[0], password=fresh[1]) as first:
        taken = "127.0.0.1:%d" % first.port
        err = failed_start(other, *serve_args(first.port))
        assert "the Administration API cannot listen: address %s is in use by another process" % taken in err, err
        assert "certificate" not in err, err

        err = failed_start(other, *serve_args(free_port(), web_port=first.web_port))
        assert "Web Access cannot listen: address 127.0.0.1:%d is in use by another process" % first.web_port \
            in err, err

        err = failed_start(other, *serve_args(free_port(), imaps_port=first.imaps_port))
        assert "the IMAP server cannot listen: address 127.0.0.1:%d is in use by another process" \
            % first.imaps_port in err, err

    # 192.0.2.0/24 is TEST-NET-1: never an address of this machine.
    port = free_port()
    err = failed_start(other, "serve", "--listen", "192.0.2.1:%d" % port, "--no-web", "--no-imap")
    assert "192.0.2.1:%d" % port in err and "not an address of this machine" in err, err
    assert "certificate" not in err, err


# ---- cmd --server and the self-signed certificate ---------------------------------------------------

def test_cmd_server_without_cacert_hints_at_it(fresh, tmp_path):
    env = dict(os.environ)
    with MvServer(fresh[0], password=fresh[1]) as server:
        env["MAILVAULT_PASSWORD"] = server.password
        cp = mv("cmd", "--server", server.url, "--user", "admin", "GetServerInfo", check=1, env=env)
        err = cp.stderr.decode("utf-8", "replace")
        assert "certificate" in err.lower(), err
        assert "--cacert FILE" in err and "certs/server.crt" in err, err

        # Another server's certificate: the file given is named.
        other = init_data_dir(tmp_path / "other")
        with MvServer(other) as second:
            wrong = second.cert_path()
            cp = mv("cmd", "--server", server.url, "--user", "admin", "--cacert", wrong, "GetServerInfo",
                    check=1, env=env)
        err = cp.stderr.decode("utf-8", "replace")
        assert "does not verify against --cacert %s" % wrong in err and "certs/server.crt" in err, err

        cp = mv("cmd", "--server", server.url, "--user", "admin", "--cacert", server.cert_path(),
                "GetServerInfo", env=env)
        assert "--cacert" not in cp.stderr.decode("utf-8", "replace")
        assert json.loads(cp.stdout)["statusCode"] == "succeeded"


# ---- the listen values in mailvault.conf ------------------------------------------------------------

LISTEN_LINE = re.compile(r"^(listen|listen_tls)=(.*)$", re.M)


def start_plain(data_dir):
    """`serve` on what the configuration says (no overrides)."""
    out = open(os.path.join(str(data_dir), "plain.out"), "wb")
    err = open(os.path.join(str(data_dir), "plain.err"), "wb")
    proc = subprocess.Popen([MAILVAULT_BIN, "--data-dir", str(data_dir), "serve"], stdout=out, stderr=err)
    deadline = time.time() + 60
    while time.time() < deadline:
        text = open(os.path.join(str(data_dir), "plain.out"), "rb").read().decode("utf-8", "replace")
        if "serving (pid" in text:
            return proc, out, err
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    raise AssertionError("serve did not start:\n%s" % open(os.path.join(str(data_dir), "plain.err")).read())


def https_status(port, path, cafile, password=None, body=None):
    ctx = ssl.create_default_context(cafile=cafile)
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=60)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if password:
        headers["Authorization"] = basic(password)
    conn.request("POST" if body is not None else "GET", path, body=body, headers=headers)
    resp = conn.getresponse()
    raw = resp.read()
    conn.close()
    return resp.status, raw


def test_config_listen_values_without_trailing_semicolon(fresh):
    data_dir = fresh[0]
    with MvServer(data_dir, password=fresh[1]) as server:
        password = server.password
        conf = os.path.join(str(data_dir), "mailvault.conf")
        text = open(conf).read()
    values = LISTEN_LINE.findall(text)
    assert len(values) == 5, text              # api, web, imap, imap tls, smtp (the example, off)
    assert all(not v.rstrip().endswith(";") for _, v in values), text
    assert re.search(r"^\[api\]\nlisten=127\.0\.0\.1:8463$", text, re.M), text

    # The old form (GKeyFile's list writer: a ';' after every address) is read.
    api1, api2, web, imap, imaps = (free_port() for _ in range(5))
    text = re.sub(r"^\[api\]\nlisten=.*$", "[api]\nlisten=127.0.0.1:%d;127.0.0.1:%d;" % (api1, api2), text,
                  flags=re.M)
    text = re.sub(r"^(\[web\]\nenabled=true\n)listen=.*$", r"\g<1>listen=127.0.0.1:%d;" % web, text, flags=re.M)
    text = re.sub(r"^listen_tls=.*$", "listen_tls=127.0.0.1:%d;" % imaps, text, flags=re.M)
    text = re.sub(r"^(listen_tls=.*\n)listen=.*$", r"\g<1>listen=127.0.0.1:%d;" % imap, text, flags=re.M)
    assert text.count(";\n") == 4, text
    with open(conf, "w") as f:
        f.write(text)
    cafile = os.path.join(str(data_dir), "certs", "server.crt")
    key = os.path.join(str(data_dir), "certs", "server.key")
    proc, out, err = start_plain(data_dir)
    try:
        for port in (api1, api2):
            status, raw = https_status(port, "/api/invoke/GetServerInfo", cafile, password, body=b"")
            assert status == 200 and decode_body(raw)["statusCode"] == "succeeded", raw
        assert https_status(web, "/", cafile)[0] == 200
        for port in (imap, imaps):
            socket.create_connection(("127.0.0.1", port), timeout=30).close()
        # A rewrite of the file (SetServiceCertificate saves it whole) writes the lists plainly.
        body = urllib.parse.urlencode({"certificatePath": cafile, "keyPath": key}).encode()
        status, raw = https_status(api1, "/api/invoke/SetServiceCertificate", cafile, password, body=body)
        assert status == 200 and decode_body(raw)["statusCode"] == "succeeded", raw
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=STOP_BOUND)
        out.close()
        err.close()
    with open(os.path.join(str(data_dir), "plain.err"), "rb") as f:
        logged = f.read()
    assert rc == 0, logged.decode("utf-8", "replace")
    assert not any(m in logged for m in SANITIZER_MARKERS), logged.decode("utf-8", "replace")
    rewritten = dict((k + str(i), v) for i, (k, v) in enumerate(LISTEN_LINE.findall(open(conf).read())))
    assert sorted(rewritten.values()) == sorted(["127.0.0.1:%d;127.0.0.1:%d" % (api1, api2), "127.0.0.1:%d" % web,
                                                 "127.0.0.1:%d" % imap, "127.0.0.1:%d" % imaps,
                                                 "127.0.0.1:2525"]), rewritten   # [smtp]'s example, off


# ---- the TLS every listener offers (issue 19.9) ----------------------------------------------------

def handshake(port, *args):
    """True when openssl s_client completes a TLS handshake with these options."""
    cp = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-servername", "localhost"] +
                        list(args), input=b"", capture_output=True, timeout=20)
    # "New, TLSv1.0, Cipher is X": openssl names the suite's own version there
    return re.search(rb"^New, \S+, Cipher is (?!\(NONE\))", cp.stdout, re.M) is not None


def test_tls_offers_aead_suites_and_sha256_signatures_only(tmp_path):
    """Mozilla's "intermediate" profile on the API, Web Access and IMAP:
    CBC suites with SHA-1 MACs and SHA-1 signatures are refused, the
    AEAD suites and TLS 1.3 work."""
    d = str(tmp_path / "data")
    pw = init_with_admin(d)
    srv = MvServer(d, password=pw).start()
    try:
        for port in (srv.port, srv.web_port, srv.imaps_port):
            for cbc in ("ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA", "AES256-SHA", "AES128-SHA256"):
                assert not handshake(port, "-tls1_2", "-cipher", cbc), (port, cbc)
            assert not handshake(port, "-tls1_2", "-sigalgs", "ECDSA+SHA1"), port
            assert not handshake(port, "-tls1_1"), port
            for aead in ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
                         "ECDHE-ECDSA-CHACHA20-POLY1305"):
                assert handshake(port, "-tls1_2", "-cipher", aead), (port, aead)
            assert handshake(port, "-tls1_2", "-sigalgs", "ECDSA+SHA256"), port
            assert handshake(port, "-tls1_3"), port
    finally:
        srv.stop()


# ---- HTTP framing (issue 19.11) -------------------------------------------------------------------

def raw_exchange(port, request):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(request)
            chunks = []
            while True:
                try:
                    b = s.recv(65536)
                except (ssl.SSLError, ConnectionResetError):
                    break
                if not b:
                    break
                chunks.append(b)
            return b"".join(chunks)


def test_ambiguous_request_framing_is_refused(tmp_path):
    """Two Content-Length fields, or Content-Length with chunked, are how a
    request is smuggled past a proxy: 400 and the connection closed, on
    the API and on Web Access; a well-framed request still works."""
    d = str(tmp_path / "data")
    pw = init_with_admin(d)
    srv = MvServer(d, password=pw).start()
    auth = base64.b64encode(("admin:%s" % pw).encode()).decode()
    body = b"x=1"
    head = ("POST /api/invoke/GetServerInfo HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic %s\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n" % auth).encode()
    try:
        for port in (srv.port, srv.web_port):
            two = head + b"Content-Length: 3\r\nContent-Length: 40\r\n\r\n" + body
            both = head + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nx=1\r\n0\r\n\r\n"
            for req, why in ((two, b"more than one Content-Length"), (both, b"Transfer-Encoding")):
                answer = raw_exchange(port, req)
                assert answer.startswith(b"HTTP/1.1 400") and why in answer, (port, answer[:300])
        good = raw_exchange(srv.port, head + b"Content-Length: 3\r\nConnection: close\r\n\r\n" + body)
        assert good.startswith(b"HTTP/1.1 200"), good[:300]
    finally:
        srv.stop()
