"""A real `mailvault serve` for the API system tests (stdlib only).

MvServer(data_dir) starts the server on a free loopback port, waits until it
answers, reads the admin password it or `init` printed, and gives an
HTTPS client (urllib) that trusts the server's own generated certificate.
stop() sends SIGTERM and checks a clean exit without sanitizer reports."""

import base64
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

from mvtest import MAILVAULT_BIN, SANITIZER_MARKERS

START_TIMEOUT = 60


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_with_admin(data_dir):
    """`mailvault init`; returns the admin password it printed once."""
    cp = subprocess.run([MAILVAULT_BIN, "--data-dir", str(data_dir), "init"], capture_output=True, timeout=120)
    assert cp.returncode == 0, cp.stderr.decode(errors="replace")
    m = re.search(rb"first administrator: admin, password: (\S+)", cp.stdout)
    assert m, "init did not print the admin password: %r" % cp.stdout
    return m.group(1).decode()


class ApiError(Exception):
    def __init__(self, status, body):
        super().__init__("HTTP %d: %r" % (status, body))
        self.status = status
        self.body = body


def decode_body(raw):
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    return json.loads(raw.decode("utf-8"))


class PortTaken(AssertionError):
    """A listener's port was taken between its pick and the server's bind."""


class MvServer:
    def __init__(self, data_dir, password=None, extra_args=(), port=None, env=None, web_port=None, imap_port=None,
                 imaps_port=None):
        self.data_dir = str(data_dir)
        # Ports picked here may be taken by another process between the pick
        # and the bind (tests run side by side): such a start is retried on
        # new ports; ports the caller chose are never changed.
        self.chosen = {"port": port, "web_port": web_port, "imap_port": imap_port, "imaps_port": imaps_port}
        self.port = port or free_port()
        self.url = "https://127.0.0.1:%d" % self.port
        # Web Access on a port of its own: servers of parallel tests must not
        # meet on the configured default.
        self.web_port = web_port or free_port()
        self.web_url = "https://127.0.0.1:%d" % self.web_port
        # IMAP: STARTTLS and implicit TLS, on ports of their own for the same reason.
        self.imap_port = imap_port or free_port()
        self.imaps_port = imaps_port or free_port()
        self.password = password
        self.extra_args = list(extra_args)
        self.env = env
        self.proc = None
        self.stdout_path = os.path.join(self.data_dir, "serve-%d.out" % self.port)
        self.stderr_path = os.path.join(self.data_dir, "serve-%d.err" % self.port)

    # -- life cycle ----------------------------------------------------------------
    def start(self):
        for attempt in range(3):
            try:
                return self._start_once()
            except PortTaken:
                if any(self.chosen.values()) or attempt == 2:
                    raise
                self.port, self.web_port = free_port(), free_port()
                self.imap_port, self.imaps_port = free_port(), free_port()
                self.url = "https://127.0.0.1:%d" % self.port
                self.web_url = "https://127.0.0.1:%d" % self.web_port

    def _start_once(self):
        self._out = open(self.stdout_path, "ab")
        self._err = open(self.stderr_path, "ab")
        cmd = [MAILVAULT_BIN, "--data-dir", self.data_dir, "serve",
               "--listen", "127.0.0.1:%d" % self.port,
               "--web-listen", "127.0.0.1:%d" % self.web_port,
               "--imap-listen", "127.0.0.1:%d" % self.imap_port,
               "--imap-listen-tls", "127.0.0.1:%d" % self.imaps_port] + self.extra_args
        self.proc = subprocess.Popen(cmd, stdout=self._out, stderr=self._err, env=self.env)
        deadline = time.time() + START_TIMEOUT
        while time.time() < deadline:
            if self.proc.poll() is not None:
                err = self.stderr()
                self._out.close()
                self._err.close()
                if "is in use by another process" in err.splitlines()[-1] if err.strip() else False:
                    raise PortTaken(err)
                raise AssertionError("mailvault serve exited with %s:\n%s" % (self.proc.returncode, err))
            # This process's line: a restart appends to the same file, and
            # an earlier start's line must not count (the new process may
            # yet fail, its port taken while the server was down).
            if "serving (pid %d)" % self.proc.pid in self.stdout():
                break
            time.sleep(0.1)
        else:
            raise AssertionError("mailvault serve did not come up:\n%s\n%s" % (self.stdout(), self.stderr()))
        m = re.search(r"first administrator: admin, password: (\S+)", self.stdout())
        if m and not self.password:
            self.password = m.group(1)
        return self

    def cert_path(self):
        return os.path.join(self.data_dir, "certs", "server.crt")

    def stdout(self):
        with open(self.stdout_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def check_no_sanitizer_report(self):
        err = self.stderr().encode()
        for marker in SANITIZER_MARKERS:
            assert marker not in err, "sanitizer report in server stderr:\n%s" % self.stderr()[-6000:]

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=120):
        """SIGTERM; asserts a clean exit (status 0, no sanitizer report)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("server did not stop within %ds of SIGTERM:\n%s" % (timeout, self.stderr()[-4000:]))
        rc = self.proc.returncode
        self._out.close()
        self._err.close()
        self.proc = None
        self.check_no_sanitizer_report()
        assert rc == 0, "server exit status %s:\n%s" % (rc, self.stderr()[-4000:])

    def kill(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self._out.close()
            self._err.close()
            self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if exc[0] is None:
            self.stop()
        else:
            self.kill()

    # -- the HTTP client ------------------------------------------------------------
    def ssl_context(self):
        ctx = ssl.create_default_context(cafile=self.cert_path())
        return ctx

    def request(self, path, fields=None, user="admin", password=None, timeout=120, raw_body=None,
                method="POST", headers=None):
        """POSTs form fields; returns (status, decoded JSON).  Never raises for
        HTTP error statuses."""
        body = raw_body if raw_body is not None else urllib.parse.urlencode(fields or {}).encode()
        req = urllib.request.Request(self.url + path, data=body if method == "POST" else None, method=method)
        req.add_header("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
        if user is not None:
            pw = password if password is not None else self.password
            token = base64.b64encode(("%s:%s" % (user, pw)).encode()).decode()
            req.add_header("Authorization", "Basic " + token)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, context=self.ssl_context(), timeout=timeout) as resp:
                raw = resp.read()
                assert resp.headers.get("Content-Type", "").startswith("application/json"), resp.headers
                return resp.status, decode_body(raw)
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, decode_body(raw)
            except ValueError:
                return e.code, raw

    def invoke(self, function, user="admin", password=None, **args):
        """invoke/<function>; returns (status, envelope)."""
        fields = {k: (("true" if v else "false") if isinstance(v, bool) else v) for k, v in args.items()}
        return self.request("/api/invoke/" + function, fields, user=user, password=password)

    def call(self, function, user="admin", password=None, timeout=600, **args):
        """invoke and, when running, poll get-status to the end; returns the
        final envelope (asserts HTTP 200)."""
        status, env = self.invoke(function, user=user, password=password, **args)
        assert status == 200, (function, status, env)
        deadline = time.time() + timeout
        while env["statusCode"] == "running":
            assert time.time() < deadline, "%s still running after %ds" % (function, timeout)
            status, env = self.request("/api/get-status", {"token": env["token"],
                                                           "lastKnownStatusVersion": env["statusVersion"],
                                                           "millisecondsTimeout": 5000},
                                       user=user, password=password)
            assert status == 200, (status, env)
        return env

    def ok(self, function, user="admin", password=None, **args):
        """call() that must succeed; returns the result."""
        env = self.call(function, user=user, password=password, **args)
        assert env["statusCode"] == "succeeded" and env["error"] is None, (function, args, env)
        return env["result"]

    def rss_kb(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0
