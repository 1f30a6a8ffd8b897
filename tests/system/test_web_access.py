"""Web Access over HTTP (docs/web.md): the headers every answer carries, the
embedded page, the login with its delay, cookie, CSRF checks and second
factor, the privilege boundary between users, app passwords, the password
change, paging, downloads and the user-activity audit.  Stdlib only
(webtest.WebClient behaves like the page: cookie, X-Requested-With, CSRF
token).

One server for the module, on a data directory filled before it starts:
  alice/Inbox      the corpus folder hard-ham-1 (250 messages)
  alice/Extra      generated: an HTML message with attachments
  alice/Hostile    the hostile messages of webtest.write_hostile_messages
  bob/Inbox        generated messages sharing a word with alice's
Each test uses users of its own, so the order of tests does not matter
(but the logon delay is per address: see test_login_wrong_password)."""

import gzip
import os
import re
import urllib.parse

import pytest

from mvserver import MvServer, init_with_admin
from mvtest import REPO_ROOT, import_json, mv, search_json
from webtest import (COOKIE, HOSTILE_ATTACHMENT, HOSTILE_HTML, HOSTILE_SUBJECT, Api, Totp, WebClient, parse_set_cookie, sha256,
                     write_eml, write_hostile_messages)

CORPUS_FOLDER = "hard-ham-1"
WORD = "newsletter"           # 145 of hard-ham-1's messages, and every one of bob's
BOB_WORD = "wombat"           # only bob's
ASSETS = os.path.join(REPO_ROOT, "src", "web", "assets")
PW = {"alice": "Alice-Pass-1234", "bob": "Bob-Pass-5678", "carol": "Carol-Pass-9012", "dave": "Dave-Pass-3456",
      "erin": "Erin-Pass-7890", "frank": "Frank-Pass-2345", "gina": "Gina-Pass-6789", "hugo": "Hugo-Pass-0123"}


class World:
    pass


@pytest.fixture(scope="module")
def world(corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp("web")
    w = World()
    w.dir = os.path.join(str(root), "data")
    admin_pw = init_with_admin(w.dir)
    summary, _ = import_json(os.path.join(corpus.eml_dir, CORPUS_FOLDER), "alice", w.dir, "--folder", "Inbox")
    assert summary["imported"] == 250, summary

    extra = os.path.join(str(root), "extra")
    boundary = "mvextra"
    body = ("--%s\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Hello <b>HTML</b> %s</p>\r\n"
            "--%s\r\nContent-Type: image/png; name=\"dot.png\"\r\n"
            "Content-Disposition: attachment; filename=\"dot.png\"\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQ"
            "DwAEhQGAhKmMIQAAAABJRU5ErkJggg==\r\n--%s--\r\n" % (boundary, WORD, boundary, boundary))
    write_eml(os.path.join(extra, "html.eml"), "HTML with attachment", "", raw_body=body.encode(),
              content_type="multipart/mixed; boundary=\"%s\"" % boundary)
    import_json(extra, "alice", w.dir, "--folder", "Extra")
    hostile = os.path.join(str(root), "hostile")
    w.hostile = write_hostile_messages(hostile)
    import_json(hostile, "alice", w.dir, "--folder", "Hostile")

    bob = os.path.join(str(root), "bob")
    for i in range(6):
        write_eml(os.path.join(bob, "%02d.eml" % i), "Bob's %s number %d" % (WORD, i),
                  "The %s of bob, a %s, number %d.\n" % (WORD, BOB_WORD, i),
                  date="Mon, %02d Jan 2024 10:00:00 +0000" % (i + 1))
    import_json(bob, "bob", w.dir, "--folder", "Inbox")

    # What the archive holds, read before the server takes the directory.
    hits = search_json("size:>0", w.dir, archive="alice", limit=0)
    w.alice_ids = {h["id"] for h in hits}
    w.by_folder = {}
    for h in hits:
        w.by_folder.setdefault(h["archive"] + "/" + h["folder"], []).append(h["id"])
    w.hostile_ids = {h["subject"]: h["id"] for h in hits if h["folder"].endswith("Hostile")}
    w.extra_id = [h["id"] for h in hits if h["folder"].endswith("Extra")][0]
    w.bob_ids = {h["id"] for h in search_json("size:>0", w.dir, archive="bob", limit=0)}
    inbox = sorted(h["id"] for h in hits if h["folder"].endswith("Inbox"))
    cp = mv("show", "--sha256", *inbox, data_dir=w.dir)
    w.sha = {}
    for line in cp.stdout.decode().splitlines():
        digest, msg_id = line.split("  ", 1)
        w.sha[msg_id] = digest
    rel_of = {d: rel for rel, d in corpus.sums.items() if rel.startswith("eml/%s/" % CORPUS_FOLDER)}
    w.rel = {i: rel_of.get(d) for i, d in w.sha.items()}
    assert len(w.sha) == 250 and all(w.rel.values()), "every Inbox message should be a corpus file"
    w.corpus = corpus

    w.srv = MvServer(w.dir, password=admin_pw).start()
    try:
        w.api = Api(w.srv, admin_pw)
        for name in ("alice", "erin", "gina"):
            w.api.create_user(name, PW[name], folders=("alice",))
        w.api.create_user("bob", PW["bob"], folders=("bob",))
        w.api.create_user("carol", PW["carol"])
        w.api.create_user("dave", PW["dave"], login="api,imap", folders=("alice",))
        w.api.create_user("frank", PW["frank"], folders=("bob",))
        w.api.create_user("hugo", PW["hugo"], folders=("alice",))
        yield w
    finally:
        w.srv.stop()


def client(w, user=None):
    c = WebClient(w.srv)
    if user:
        c.login_ok(user, PW[user])
    return c


def csp(value):
    """A Content-Security-Policy value as {directive: [sources]}."""
    out = {}
    for part in (value or "").split(";"):
        words = part.split()
        if words:
            out[words[0].lower()] = words[1:]
    return out


SECURITY_HEADERS = ("Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy",
                    "Strict-Transport-Security")


def check_common_headers(r, what):
    for name in SECURITY_HEADERS:
        assert r.header(name), "%s: expected a %s header, the answer has %s" % (what, name, [k for k, _ in r.headers])
    assert r.header("X-Content-Type-Options").lower() == "nosniff", (what, r.header("X-Content-Type-Options"))
    assert r.header("Referrer-Policy") in ("no-referrer", "same-origin", "strict-origin"), \
        (what, r.header("Referrer-Policy"))
    m = re.match(r"max-age=(\d+)", r.header("Strict-Transport-Security"))
    assert m and int(m.group(1)) >= 86400 * 180, \
        "%s: HSTS should last half a year at least: %r" % (what, r.header("Strict-Transport-Security"))


def check_page_csp(r, what):
    p = csp(r.header("Content-Security-Policy"))
    assert p.get("default-src") == ["'none'"], "%s: page CSP default-src should be 'none': %r" % (what, p)
    assert p.get("script-src") == ["'self'"], "%s: page CSP script-src should be 'self' only: %r" % (what, p)
    assert p.get("frame-ancestors") == ["'none'"], "%s: page CSP frame-ancestors should be 'none': %r" % (what, p)
    for sources in p.values():
        for bad in ("'unsafe-inline'", "'unsafe-eval'", "*", "http:", "https:", "data:"):
            assert bad not in sources or (bad == "data:" and sources is p.get("img-src")), \
                "%s: page CSP allows %s: %r" % (what, bad, p)


def check_frame_csp(r, what):
    p = csp(r.header("Content-Security-Policy"))
    assert "script-src" not in p and p.get("default-src") == ["'none'"], \
        "%s: the message frame's CSP must allow no script (no script-src, default-src 'none'): %r" % (what, p)
    assert "sandbox" in p and "allow-scripts" not in p["sandbox"], \
        "%s: the frame's CSP should sandbox it without allow-scripts: %r" % (what, p)
    assert p.get("frame-ancestors") == ["'self'"], "%s: frame-ancestors should be 'self': %r" % (what, p)


def check_download(r, what):
    assert r.status == 200, (what, r)
    disp = r.header("Content-Disposition") or ""
    assert disp.startswith("attachment"), "%s: a download must be Content-Disposition attachment: %r" % (what, disp)
    p = csp(r.header("Content-Security-Policy"))
    assert "sandbox" in p and "script-src" not in p, "%s: a download's CSP should sandbox it: %r" % (what, p)


# =====================================================================================
# headers and the page
# =====================================================================================

def test_security_headers_on_every_answer(world):
    w = world
    anon = client(w)
    alice = client(w, "alice")
    page_answers = {
        "GET /": anon.get("/"),
        "GET /assets/app.css": anon.get("/assets/app.css"),
        "GET /nonexistent (404)": anon.get("/nonexistent"),
        "GET /web/api/session": anon.get("/web/api/session"),
        "POST /web/api/folders without session (401)": anon.post("/web/api/folders"),
        "POST /web/api/folders without X-Requested-With (403)": alice.post("/web/api/folders", xrw=False),
        "POST /web/api/folders": alice.post("/web/api/folders"),
        "POST /web/api/message (404)": alice.post("/web/api/message", {"id": "1:999999"}),
        "PUT / (405)": anon.request("PUT", "/", b""),
    }
    assert page_answers["GET /"].status == 200 and page_answers["POST /web/api/folders"].status == 200, page_answers
    for what, r in page_answers.items():
        check_common_headers(r, what)
        check_page_csp(r, what)
        assert r.header("X-Frame-Options") == "DENY", (what, r.header("X-Frame-Options"))

    frame = alice.get("/web/api/message/%s/html" % urllib.parse.quote(w.extra_id))
    assert frame.status == 200 and frame.header("Content-Type").startswith("text/html"), frame
    check_common_headers(frame, "the message frame")
    check_frame_csp(frame, "the message frame")
    remote = alice.get("/web/api/message/%s/html?remote=1" % urllib.parse.quote(w.extra_id))
    check_frame_csp(remote, "the message frame with remote images")
    img = csp(remote.header("Content-Security-Policy")).get("img-src", [])
    assert "https:" in img, "with ?remote=1 the frame may load remote images: %r" % img
    assert "https:" not in csp(frame.header("Content-Security-Policy")).get("img-src", []), \
        "without ?remote=1 the frame must not load remote images"

    downloads = {
        "the .eml": alice.get("/web/api/message/%s/eml" % urllib.parse.quote(w.extra_id)),
        "an attachment": alice.get("/web/api/message/%s/part/1" % urllib.parse.quote(w.extra_id)),
        "an attachment asked inline, not an image": alice.get(
            "/web/api/message/%s/part/1?inline=1" % urllib.parse.quote(w.hostile_ids["Hostile attachment"])),
    }
    for what, r in downloads.items():
        check_common_headers(r, what)
        check_download(r, what)
    assert downloads["the .eml"].header("Content-Type") == "message/rfc822", downloads["the .eml"]
    hostile_part = downloads["an attachment asked inline, not an image"]
    disp = hostile_part.header("Content-Disposition") or ""
    safe = r'attachment; filename="[^"\\\x00-\x1f/]*"; filename\*=UTF-8\'\'[A-Za-z0-9%._~!*\'()-]+'
    assert re.fullmatch(safe, disp), \
        "the attachment's name must reach the header only as one safe quoted name and its RFC 5987 form: %r" % disp
    assert urllib.parse.unquote(disp.split("UTF-8''", 1)[1]) == HOSTILE_ATTACHMENT, disp
    # An image asked inline is shown in place, still under the sandbox.
    inline = alice.get("/web/api/message/%s/part/1?inline=1" % urllib.parse.quote(w.extra_id))
    assert inline.status == 200 and inline.header("Content-Type") == "image/png", inline
    assert (inline.header("Content-Disposition") or "").startswith("inline"), inline.header("Content-Disposition")
    assert "sandbox" in csp(inline.header("Content-Security-Policy")), inline.header("Content-Security-Policy")


def asset_files():
    out = []
    for dirpath, dirnames, filenames in os.walk(ASSETS):
        dirnames.sort()
        for name in sorted(filenames):
            if not name.startswith("."):
                out.append(os.path.relpath(os.path.join(dirpath, name), ASSETS).replace(os.sep, "/"))
    return out


def test_static_assets(world):
    c = client(world)
    index = c.get("/")
    with open(os.path.join(ASSETS, "index.html"), "rb") as f:
        assert index.body == f.read(), "GET / should serve src/web/assets/index.html (rebuild after editing it)"
    assert index.header("Content-Type").startswith("text/html"), index

    files = asset_files()
    assert "js/main.js" in files and "app.css" in files, files
    stale = []
    for rel in files:
        r = c.get("/assets/" + rel)
        with open(os.path.join(ASSETS, rel), "rb") as f:
            data = f.read()
        if r.status != 200 or r.body != data:
            stale.append("%s: HTTP %d, %d bytes (file: %d)" % (rel, r.status, len(r.body), len(data)))
            continue
        etag = r.header("ETag")
        assert etag and re.fullmatch(r'"[^"]+"', etag), "%s: expected a strong ETag, got %r" % (rel, etag)
        again = c.get("/assets/" + rel, headers={"If-None-Match": etag})
        assert again.status == 304 and again.body == b"", \
            "%s: If-None-Match with its ETag should answer 304 without body, got %r" % (rel, again)
        check_common_headers(again, "304 of " + rel)
        other = c.get("/assets/" + rel, headers={"If-None-Match": '"not-the-etag"'})
        assert other.status == 200 and other.body == data, "%s: a wrong ETag should get the whole file" % rel
    assert not stale, ("assets not served as they are in src/web/assets (is the build stale, or a file not "
                       "embedded?): %s" % stale)

    big = max(files, key=lambda rel: os.path.getsize(os.path.join(ASSETS, rel)) if rel.endswith(".js") else 0)
    with open(os.path.join(ASSETS, big), "rb") as f:
        data = f.read()
    gz = c.get("/assets/" + big, headers={"Accept-Encoding": "gzip, deflate"})
    assert gz.status == 200 and gz.header("Content-Encoding") == "gzip", \
        "/assets/%s asked with Accept-Encoding gzip should come gzipped: %r" % (big, gz.headers)
    assert gzip.decompress(gz.body) == data and len(gz.body) < len(data), big
    assert "accept-encoding" in (gz.header("Vary") or "").lower(), gz.header("Vary")
    plain = c.get("/assets/" + big)
    assert plain.header("Content-Encoding") is None and plain.body == data, "without Accept-Encoding: plain bytes"
    assert c.get("/assets/app.css").header("Content-Type").startswith("text/css")
    assert c.get("/assets/js/main.js").header("Content-Type").startswith("text/javascript")


@pytest.mark.parametrize("path", [
    "/nonexistent", "/assets/", "/assets/nonexistent.js", "/index.htm", "/assets/js/", "/web/", "/web/api",
    "/assets/../../etc/passwd", "/../../../../etc/passwd", "/assets/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/assets/..%2f..%2f..%2f..%2fetc%2fpasswd", "/assets/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/assets/%252e%252e/%252e%252e/etc/passwd", "/assets/....//....//etc/passwd", "/assets//etc/passwd",
    "/assets/js/../../../../../../etc/passwd", "/assets/js/%2e%2e/index.html", "/%2e%2e/%2e%2e/etc/passwd",
    "/assets/..\\..\\..\\etc\\passwd", "/assets/../master.key",
    "/assets/../../master.key", "/master.key", "/certs/server.key", "/assets/../certs/server.key",
    "/assets/../mailvault.conf", "/assets/%2e%2e/src/web/server.c", "/src/web/assets/index.html",
])
def test_nothing_outside_the_embedded_assets(world, path):
    r = client(world).get(path)
    assert r.status == 404, "GET %s should be 404 (not an embedded asset), got %r" % (path, r)
    for secret in (b"root:", b"MVKEY001", b"PRIVATE KEY", b"[web]", b"#include"):
        assert secret not in r.body, "GET %s leaked %r" % (path, secret)
    check_common_headers(r, "GET " + path)


def test_nul_byte_in_asset_path(world):
    """A percent-encoded NUL must not cut the path short: libmicrohttpd
    decodes %00 into the C string the server compares, so without care
    /assets/index.html%00.js is served as index.html (no file outside the
    embedded set, but a name that is not an asset must be a 404)."""
    c = client(world)
    for path in ("/assets/index.html%00.js", "/assets/app.css%00", "/index.html%00/../x", "/%00"):
        r = c.get(path)
        assert r.status == 404, "GET %s should be 404 (no asset has a NUL in its name), got %r" % (path, r)


# =====================================================================================
# login, cookie, CSRF
# =====================================================================================

def test_login_wrong_password(world):
    """401 auth after a delay that grows with each failure (the penalty is
    per address: lower bounds only, which the server guarantees), the
    same answer for an unknown user, and an audit entry for each."""
    w = world
    seq = w.api.last_seq()
    c = client(w)
    answers = [c.login("alice", "wrong-%d" % i) for i in range(3)]
    unknown = c.login("nobody-here", "wrong")
    for r in answers + [unknown]:
        assert r.status == 401 and r.error_code() == "auth", "expected 401 auth for a wrong password, got %r" % r
        assert not r.all("Set-Cookie") or all(parse_set_cookie(v)[1] == "" for v in r.all("Set-Cookie")), \
            "a failed login must not start a session: %r" % r.all("Set-Cookie")
    assert answers[0].json() == unknown.json(), \
        "an unknown user must get the same answer as a wrong password: %r vs %r" % (answers[0].json(), unknown.json())
    minimum = [0.25, 0.5, 1.0, 2.0]
    took = [r.seconds for r in answers + [unknown]]
    for i, (t, least) in enumerate(zip(took, minimum)):
        assert t >= least * 0.95, ("failure %d answered after %.3fs; the growing delay should hold it %.2fs at "
                                   "least (all: %s)" % (i + 1, t, least, ["%.3f" % x for x in took]))
    failed = [e for e in w.api.audit_since(seq) if e["event"] == "UserLogonFailed"]
    assert [e["user"] for e in failed] == ["alice"] * 3 + ["nobody-here"], \
        "expected an audit entry UserLogonFailed per failure, got %r" % failed
    assert all(not e["success"] and "Web Access" in e["details"] for e in failed), failed
    assert all("wrong-" not in e["details"] for e in failed), "a password reached the audit log: %r" % failed
    # A success ends the penalty.
    c.login_ok("alice", PW["alice"])
    assert c.session()["user"]["userName"] == "alice"
    r = client(w).login("alice", "wrong-again")
    assert r.status == 401 and r.seconds < took[3], \
        "after a good login the delay starts small again: %.3fs (the 4th failure took %.3fs)" % (r.seconds, took[3])


def test_login_without_web_privilege(world):
    w = world
    seq = w.api.last_seq()
    c = client(w)
    r = c.login("dave", PW["dave"])
    assert r.status == 403 and r.error_code() == "denied", \
        "dave lacks the web login privilege: expected 403 denied, got %r" % r
    assert c.cookie is None, "no session for a user without the web privilege (cookie %r)" % c.cookie
    assert c.session() == {"stage": "anonymous"}
    assert any(e["event"] == "AccessDenied" and e["user"] == "dave" for e in w.api.audit_since(seq)), \
        "expected an AccessDenied audit entry for dave"
    # the same user over the API (it has that privilege) is fine: the refusal is about the web only
    status, env = w.api.invoke("GetChildFolders", user="dave", pw=PW["dave"])
    assert status == 200 and env["statusCode"] == "succeeded", (status, env)


def test_session_cookie_and_logout(world):
    w = world
    c = client(w)
    assert c.session() == {"stage": "anonymous"}
    r = c.login_ok("alice", PW["alice"])
    cookies = [parse_set_cookie(v) for v in r.all("Set-Cookie")]
    assert len(cookies) == 1, "expected one Set-Cookie, got %r" % r.all("Set-Cookie")
    name, value, attrs = cookies[0]
    assert name == COOKIE and len(value) >= 32, "expected cookie %s with a long random value: %r" % (COOKIE, cookies)
    assert attrs.get("secure") is True and attrs.get("httponly") is True, attrs
    assert str(attrs.get("samesite", "")).lower() == "strict", attrs
    assert attrs.get("path") == "/" and "domain" not in attrs, attrs
    assert "max-age" not in attrs and "expires" not in attrs, "a session cookie, not a persistent one: %r" % attrs
    s = c.session()
    assert s["stage"] == "authenticated" and s["user"]["userName"] == "alice" and s["csrfToken"] == c.csrf, s
    assert s["idleTimeoutSeconds"] == 1800 and s["user"]["mfa"] == "none", s
    assert s["user"]["canChangePassword"] is True and "login" in s["user"]["privileges"], s
    assert c.call("folders")["folders"], "alice should see her folders"

    old = c.cookie
    out = c.logout()
    assert out.status == 200 and out.json() == {"stage": "anonymous"}, out
    cleared = [parse_set_cookie(v) for v in out.all("Set-Cookie")]
    assert cleared and cleared[0][0] == COOKIE and cleared[0][1] == "" and cleared[0][2].get("max-age") == "0", \
        "logout should clear the cookie: %r" % out.all("Set-Cookie")
    stale = WebClient(w.srv)
    stale.cookie, stale.csrf = old, s["csrfToken"]
    assert stale.session() == {"stage": "anonymous"}, "the old cookie must no longer be a session"
    r = stale.post("/web/api/folders")
    assert r.status == 401 and r.error_code() == "expired", \
        "the old cookie after logout: expected 401 expired, got %r" % r
    r = stale.get("/web/api/message/%s/eml" % urllib.parse.quote(w.extra_id))
    assert r.status == 401 and r.error_code() == "expired", r
    # an invented cookie is no session either
    assert client(w).post("/web/api/folders", cookie="A" * 43).status == 401


def test_csrf_protection(world):
    w = world
    seq = w.api.last_seq()
    c = client(w, "alice")
    good = c.post("/web/api/folders")
    assert good.status == 200, good
    refusals = {
        "no X-Requested-With": c.post("/web/api/folders", xrw=False),
        "a wrong X-Requested-With": c.post("/web/api/folders", xrw=False,
                                           headers={"X-Requested-With": "XMLHttpRequest"}),
        "no X-CSRF-Token": c.post("/web/api/folders", csrf=None),
        "a wrong X-CSRF-Token": c.post("/web/api/folders", csrf="x" * len(c.csrf)),
        "another session's X-CSRF-Token": c.post("/web/api/folders", csrf=client(w, "gina").csrf),
        "a foreign Origin": c.post("/web/api/folders", origin="https://evil.example"),
        "an http:// Origin": c.post("/web/api/folders", origin=w.srv.web_url.replace("https:", "http:")),
        "Origin null": c.post("/web/api/folders", origin="null"),
        "the API's Origin": c.post("/web/api/folders", origin=w.srv.url),
        "a login without X-Requested-With": c.post("/web/api/login", {"userName": "alice", "password": PW["alice"]},
                                                   xrw=False),
        "a login from a foreign Origin": c.post("/web/api/login", {"userName": "alice", "password": PW["alice"]},
                                                origin="https://evil.example"),
        "a search without X-CSRF-Token": c.post("/web/api/search", {"query": WORD}, csrf=None),
        "an app password without X-CSRF-Token": c.post("/web/api/app-passwords/create", {"description": "x"},
                                                       csrf=None),
        "a password change without X-CSRF-Token": c.post("/web/api/password", {
            "currentPassword": PW["alice"], "newPassword": "Never-Set-1234"}, csrf=None),
        "a logout without X-CSRF-Token": c.post("/web/api/logout", csrf=None),
    }
    wrong = {k: r for k, r in refusals.items() if r.status != 403 or r.error_code() != "csrf"}
    assert not wrong, "expected 403 csrf for each of these, got: %r" % wrong
    assert c.post("/web/api/folders", origin=w.srv.web_url).status == 200, "our own Origin is fine"
    assert c.session()["stage"] == "authenticated", "refused requests must not end the session (or log out)"
    status, env = w.api.invoke("GetAppPasswords", userName="alice")
    assert env["result"] == [], "the refused create must not have made an app password: %r" % env
    denied = [e for e in w.api.audit_since(seq) if e["event"] == "AccessDenied"]
    assert len(denied) >= len(refusals), "each CSRF refusal should be audited: %d of %d" % (len(denied), len(refusals))
    # the endpoints that change things are POST only
    r = c.get("/web/api/folders")
    assert r.status == 405, "GET of a POST endpoint: expected 405, got %r" % r
    r = c.get("/web/api/logout")
    assert r.status == 405 or c.session()["stage"] == "authenticated", "a GET must not log out: %r" % r


def test_session_fixation(world):
    w = world
    c = client(w)
    planted = "P" * 43
    c.cookie = planted
    c.login_ok("alice", PW["alice"])
    assert c.cookie and c.cookie != planted, "the login must set a new cookie value, not keep %r" % planted
    assert client(w).post("/web/api/folders", cookie=planted).status == 401, "the planted value is no session"
    # a client logged in as bob logs in as alice: a new value, bob's session ends
    c2 = client(w, "bob")
    bob_cookie, bob_csrf = c2.cookie, c2.csrf
    c2.login_ok("alice", PW["alice"])
    assert c2.cookie != bob_cookie, "logging in again must replace the cookie"
    assert c2.csrf != bob_csrf, "the CSRF token changes with the session"
    assert client(w).post("/web/api/folders", cookie=bob_cookie).status == 401, "the replaced session must end"
    assert c2.session()["user"]["userName"] == "alice"


def test_admin_password_change_ends_sessions(world):
    w = world
    c = client(w, "gina")
    assert c.post("/web/api/folders").status == 200
    new = "Gina-Changed-4321"
    w.api.ok("SetUserPassword", userName="gina", password=new)
    PW["gina"] = new
    r = c.post("/web/api/folders")
    assert r.status == 401 and r.error_code() == "expired", \
        "SetUserPassword should end gina's web sessions: expected 401 expired, got %r" % r
    assert c.session() == {"stage": "anonymous"}
    client(w, "gina")
    # so does taking the web privilege away
    c = client(w, "gina")
    w.api.ok("SetUserLoginPrivileges", userName="gina", loginPrivileges="api")
    try:
        r = c.post("/web/api/folders")
        assert r.status == 401 and r.error_code() == "expired", "without the web privilege the session ends: %r" % r
    finally:
        w.api.ok("SetUserLoginPrivileges", userName="gina", loginPrivileges="web,api,imap")


# =====================================================================================
# privileges
# =====================================================================================

def normalised(r, ident):
    """An answer's body with the id or folder it names replaced."""
    return r.body.replace(ident.encode(), b"ID"), r.status


def test_other_users_messages_are_invisible(world):
    w = world
    bob = client(w, "bob")
    alice = client(w, "alice")
    inbox = w.by_folder["alice/Inbox"]
    sample = sorted(w.alice_ids)[:5] + [inbox[-1], w.extra_id, w.hostile_ids["Hostile attachment"]]
    nonexistent = ["1:999999", "9:1", "1:0", "x:y", "1:" + "9" * 30]

    # the positive control: alice can, with the same requests
    for i in sample:
        assert alice.post("/web/api/message", {"id": i}).status == 200, i
        assert alice.get("/web/api/message/%s/eml" % urllib.parse.quote(i)).status == 200, i

    ref_msg = normalised(bob.post("/web/api/message", {"id": nonexistent[0]}), nonexistent[0])
    assert ref_msg[1] == 404 and b'"not_found"' in ref_msg[0], ref_msg
    for i in sample + nonexistent:
        r = bob.post("/web/api/message", {"id": i})
        assert normalised(r, i) == ref_msg, ("bob asking for message %s: expected exactly the answer for a message "
                                             "that does not exist (%r), got %r" % (i, ref_msg, r))
    for what in ("eml", "html", "part/1", "part/2?inline=1", "nothing"):
        ref = normalised(bob.get("/web/api/message/%s/%s" % (nonexistent[0], what)), nonexistent[0])
        assert ref[1] == 404 and b'"not_found"' in ref[0], (what, ref)
        for i in sample + nonexistent:
            path = "/web/api/message/%s/%s" % (urllib.parse.quote(i, safe=""), what)
            r = bob.get(path)
            assert normalised(r, i) == ref, ("GET %s as bob: expected exactly the answer for a message that does "
                                             "not exist (%r), got %r" % (path, ref, r))

    # listing alice's folders
    for folder in ("alice/Inbox", "alice", "alice/Hostile", "alice/NoSuchFolder", "ALICE/Inbox",
                   "alice/Inbox/", "alice//Inbox", "alice/../bob/Inbox"):
        r = bob.post("/web/api/messages", {"folder": folder})
        other = folder.replace("alice", "nosuch").replace("ALICE", "NOSUCH")
        ref = bob.post("/web/api/messages", {"folder": other})
        if "//" not in folder and not folder.endswith("/") and ".." not in folder:
            assert r.status == 404 and r.error_code() == "not_found", (
                "bob listing %s: expected 404 not_found (what the server answers for a folder that does not exist "
                "and for one without read), got %r" % (folder, r))
        assert r.status != 200 and normalised(r, folder) == normalised(ref, other), \
            "bob listing %s must look like listing %s, which does not exist: %r vs %r" % (folder, other, r, ref)
    assert bob.post("/web/api/messages", {"folder": "bob/Inbox"}).json()["messages"], "bob lists his own"

    # search: bob finds only his own messages, whatever the query
    for query in (WORD, "%s OR %s" % (WORD, BOB_WORD), "archive:alice", "folder:alice/Inbox", "size:>0",
                  "archive:alice %s" % WORD, "subject:Hostile", "-%s" % BOB_WORD):
        r = bob.post("/web/api/search", {"query": query, "limit": 200})
        assert r.status == 200, (query, r)
        ids = {h["id"] for h in r.json()["hits"]}
        assert not ids & w.alice_ids, \
            "bob's search %r returned alice's messages %s" % (query, sorted(ids & w.alice_ids))
        assert ids <= w.bob_ids, (query, ids)
    assert {h["id"] for h in bob.call("search", query=WORD, limit=200)["hits"]} == w.bob_ids, \
        "bob should find his own %d messages" % len(w.bob_ids)
    assert len(alice.call("search", query=WORD, limit=200)["hits"]) > len(w.bob_ids), "alice's control search"

    folders = [f["folder"] for f in bob.call("folders")["folders"]]
    assert folders == ["bob", "bob/Inbox"], "bob's folder tree should be his own archive only: %r" % folders
    assert "alice/Inbox" in [f["folder"] for f in alice.call("folders")["folders"]]


# =====================================================================================
# app passwords and MFA
# =====================================================================================

APP_PW_RE = re.compile(r"[a-z2-9]{4}(-[a-z2-9]{4}){4}")


def api_status(w, user, password, function="GetChildFolders", **fields):
    status, env = w.api.invoke(function, user=user, pw=password, **fields)
    return status if status != 200 else (200 if env["statusCode"] == "succeeded" else env["statusCode"])


def test_app_passwords(world):
    w = world
    c = client(w, "frank")
    assert c.call("app-passwords") == {"appPasswords": []}
    made = c.call("app-passwords/create", description="Thunderbird at home")
    assert APP_PW_RE.fullmatch(made["password"]), "app password %r is not xxxx-xxxx-xxxx-xxxx-xxxx" % made["password"]
    assert made["description"] == "Thunderbird at home" and isinstance(made["id"], int), made
    listed = c.post("/web/api/app-passwords")
    assert made["password"].encode() not in listed.body and \
        all(set(a) == {"id", "description", "createdAt"} for a in listed.json()["appPasswords"]), \
        "the list must never show a password again: %r" % listed.body
    assert [(a["id"], a["description"]) for a in listed.json()["appPasswords"]] == [(made["id"], "Thunderbird at home")]
    second = c.call("app-passwords/create", description="phone")
    assert second["password"] != made["password"]

    assert api_status(w, "frank", made["password"]) == 200, "the app password should work over the API"
    assert api_status(w, "frank", made["password"], "SearchMessages", query=BOB_WORD) == 200
    r = client(w).login("frank", made["password"])
    assert r.status == 401 and r.error_code() == "auth", "the web login must refuse an app password: %r" % r

    assert c.call("app-passwords/delete", id=made["id"]) == {}
    assert api_status(w, "frank", made["password"]) == 401, "a deleted app password must stop working at once"
    assert api_status(w, "frank", second["password"]) == 200, "the other one still works"
    assert [a["id"] for a in c.call("app-passwords")["appPasswords"]] == [second["id"]]
    assert c.session()["stage"] == "authenticated", "frank's own change keeps his session"
    # frank cannot delete or see someone else's app passwords through the web
    r = client(w, "alice").post("/web/api/app-passwords/delete", {"id": second["id"]})
    assert api_status(w, "frank", second["password"]) == 200, "alice's delete of frank's id must not work: %r" % r


def test_mfa_enrolment_and_login(world):
    w = world
    w.api.ok("InitializeMFA", userName="carol")
    assert w.api.ok("GetUserInfo", userName="carol")["mfaStatus"] == "pending"
    c = client(w)
    r = c.login("carol", PW["carol"])
    assert r.status == 200 and r.json()["stage"] == "enroll", "after InitializeMFA carol must enrol: %r" % r
    s = c.session()
    assert s["stage"] == "enroll" and s["userName"] == "carol" and "user" not in s, s
    r = c.post("/web/api/folders")
    assert r.status == 401 and r.error_code() == "expired", "no archive access before the second factor: %r" % r

    en = c.get("/web/api/login/enroll")
    assert en.status == 200, en
    data = en.json()
    secret = data["secret"]
    assert re.fullmatch(r"[A-Z2-7]{16,}", secret), data
    uri = urllib.parse.urlsplit(data["otpauthUri"])
    q = urllib.parse.parse_qs(uri.query)
    assert uri.scheme == "otpauth" and uri.netloc == "totp" and "carol" in urllib.parse.unquote(uri.path), data
    assert q["secret"] == [secret] and q.get("digits", ["6"]) == ["6"] and q.get("period", ["30"]) == ["30"], q
    assert c.get("/web/api/login/enroll").json()["secret"] == secret, "the pending secret stays the same"
    qr = c.get(data["qr"])
    assert qr.status == 200 and qr.header("Content-Type") == "image/svg+xml" and b"<svg" in qr.body[:300], qr
    check_common_headers(qr, "the QR code")
    assert client(w).get(data["qr"]).status == 401, "the QR code needs the session"

    otp = Totp(secret)
    r = c.post("/web/api/login/enroll", {"code": otp.wrong()})
    assert r.status == 401 and r.error_code() == "auth", "a wrong code must be refused: %r" % r
    r = c.post("/web/api/login/enroll", {"code": otp.code()})
    assert r.status == 200 and r.json()["stage"] == "authenticated", "the right code completes the enrolment: %r" % r
    assert c.post("/web/api/folders").status == 200
    assert c.session()["user"]["mfa"] == "active"
    assert w.api.ok("GetUserInfo", userName="carol")["mfaStatus"] == "active"

    c2 = client(w)
    r = c2.login("carol", PW["carol"])
    assert r.status == 200 and r.json()["stage"] == "mfa", "with MFA active the login asks for a code: %r" % r
    assert c2.post("/web/api/folders").status == 401, "no access at stage mfa"
    r = c2.post("/web/api/login/mfa", {"code": otp.code()})
    assert r.status == 200 and r.json()["stage"] == "authenticated", r

    c3 = client(w)
    c3.login_ok("carol", PW["carol"], stage="mfa")
    r = c3.post("/web/api/login/mfa", {"code": otp.replay()})
    assert r.status == 401 and r.error_code() == "auth", "a code used once must be refused the second time: %r" % r
    r = c3.post("/web/api/login/mfa", {"code": otp.code()})
    assert r.status == 200 and r.json()["stage"] == "authenticated", "the next code works: %r" % r
    # a code without a pending login, or on another user's stage, is nothing
    assert client(w).post("/web/api/login/mfa", {"code": otp.replay()}).status == 401

    # over the API: only an app password once MFA is on
    assert api_status(w, "carol", PW["carol"]) == 401, "with MFA active carol's password must not open the API"
    app = c3.call("app-passwords/create", description="script")
    assert api_status(w, "carol", app["password"]) == 200, "an app password works over the API with MFA"
    assert c3.session()["stage"] == "authenticated"

    w.api.ok("DisableMFA", userName="carol")
    r = c3.post("/web/api/folders")
    assert r.status == 401, "DisableMFA changes carol's factors: her sessions end (%r)" % r
    c4 = client(w)
    c4.login_ok("carol", PW["carol"], stage="authenticated")
    assert api_status(w, "carol", PW["carol"]) == 200, "without MFA the password opens the API again"


def test_mfa_set_up_and_removed_in_settings(world):
    w = world
    c = client(w, "hugo")
    other = client(w, "hugo")
    setup = c.call("mfa/setup")
    assert re.fullmatch(r"[A-Z2-7]{16,}", setup["secret"]) and setup["qr"] == "/web/api/mfa/qr.svg", setup
    qr = c.get(setup["qr"])
    assert qr.status == 200 and qr.header("Content-Type") == "image/svg+xml", qr
    assert c.session()["user"]["mfa"] in ("none", "pending")
    otp = Totp(setup["secret"])
    r = c.post("/web/api/mfa/confirm", {"code": otp.wrong()})
    assert r.status == 401 and r.error_code() == "auth", r
    assert c.call("mfa/confirm", code=otp.code()) == {"mfa": "active"}
    assert c.session()["user"]["mfa"] == "active", "the confirming session goes on"
    assert other.post("/web/api/folders").status == 401, "hugo's other session ends when his factors change"
    client(w).login_ok("hugo", PW["hugo"], stage="mfa")
    r = c.post("/web/api/mfa/disable", {"password": "wrong"})
    assert r.status == 401 and r.error_code() == "auth", r
    assert c.call("mfa/disable", password=PW["hugo"]) == {"mfa": "none"}
    client(w).login_ok("hugo", PW["hugo"], stage="authenticated")


# =====================================================================================
# the password
# =====================================================================================

def test_password_change(world):
    w = world
    c = client(w, "erin")
    other = client(w, "erin")
    r = c.post("/web/api/password", {"currentPassword": "not-it", "newPassword": "Erin-Whatever-2024"})
    assert r.status == 401 and r.error_code() == "auth", "a wrong current password: expected 401 auth, got %r" % r
    assert c.session()["stage"] == "authenticated", "a wrong current password must not end the session"

    before = w.api.set_compliance(passwordPolicyEnabled=True)
    try:
        for bad, rule in (("short", "at least"), ("alllowercaseletters", "three kinds"),
                          ("Erin-Is-My-Name-1", "user name")):
            r = c.post("/web/api/password", {"currentPassword": PW["erin"], "newPassword": bad})
            assert r.status == 400 and r.error_code() == "invalid", \
                "password %r under the policy: expected 400 invalid, got %r" % (bad, r)
            assert rule in r.json()["error"]["message"], \
                "the answer should name the rule (%r): %r" % (rule, r.json()["error"]["message"])
    finally:
        w.api.ok("SetComplianceConfiguration", config=before)
    new = "Erin-Brand-New-5678"
    assert c.call("password", currentPassword=PW["erin"], newPassword=new) == {}
    old = PW["erin"]
    PW["erin"] = new
    assert c.post("/web/api/folders").status == 200, "the session that changed the password goes on"
    assert c.session()["stage"] == "authenticated"
    r = other.post("/web/api/folders")
    assert r.status == 401 and r.error_code() == "expired", "erin's other sessions end: %r" % r
    assert client(w).login("erin", old).status == 401, "the old password no longer logs in"
    client(w, "erin")
    assert api_status(w, "erin", new) == 200


def test_change_password_needs_the_privilege(world):
    w = world
    w.api.create_user("ivan", "Ivan-Pass-1111", privileges="login", folders=("bob",))
    c = WebClient(w.srv)
    c.login_ok("ivan", "Ivan-Pass-1111")
    assert c.session()["user"]["canChangePassword"] is False
    r = c.post("/web/api/password", {"currentPassword": "Ivan-Pass-1111", "newPassword": "Ivan-Other-2222"})
    assert r.status == 403 and r.error_code() == "denied", "without changePassword: expected 403 denied, got %r" % r


# =====================================================================================
# search, lists, downloads
# =====================================================================================

def test_search_pages(world):
    w = world
    c = client(w, "alice")
    whole = w.api.ok("SearchMessages", user="alice", pw=PW["alice"], query=WORD, limit=10000)
    whole_ids = [h["id"] for h in whole]
    assert len(whole_ids) > 120, "expected many hits for %r, got %d" % (WORD, len(whole_ids))

    pages, after = [], None
    while True:
        fields = {"query": WORD, "limit": 40}
        if after:
            fields["after"] = after
        page = c.call("search", **fields)
        pages.append(page)
        assert len(pages) < 20, "paging does not end"
        if not page["more"]:
            break
        assert len(page["hits"]) == 40, "a page before the last must be full: %d" % len(page["hits"])
        after = page["hits"][-1]["id"]
    ids = [h["id"] for p in pages for h in p["hits"]]
    assert len(ids) == len(set(ids)), "pages overlap: %s" % sorted(i for i in ids if ids.count(i) > 1)[:10]
    assert ids == whole_ids, ("the pages together should equal one big SearchMessages, in order: %d vs %d ids, "
                              "first difference at %s" % (len(ids), len(whole_ids),
                                                          next((k for k, (a, b) in enumerate(zip(ids, whole_ids))
                                                                if a != b), min(len(ids), len(whole_ids)))))
    dates = [h["date"] for p in pages for h in p["hits"]]
    assert dates == sorted(dates, reverse=True), "hits should be newest first across pages"
    assert pages[-1]["more"] is False and all(p["more"] for p in pages[:-1])
    assert len(pages) == -(-len(whole_ids) // 40)

    # relevance order pages by offset
    rel_whole = [h["id"] for h in w.api.ok("SearchMessages", user="alice", pw=PW["alice"], query=WORD,
                                           sort="relevance", limit=10000)]
    rel = []
    for offset in range(0, len(rel_whole) + 50, 50):
        page = c.call("search", query=WORD, sort="relevance", offset=offset, limit=50)
        rel += [h["id"] for h in page["hits"]]
        if not page["more"]:
            break
    assert rel == rel_whole, "relevance pages by offset should equal the whole relevance result"

    # snippets: the matched word marked
    marked = 0
    for h in (h for p in pages for h in p["hits"]):
        assert isinstance(h["snippet"], list), h
        assert "messageId" not in h and "message_id" not in h, "the web hit omits messageId: %r" % h
        for seg in h["snippet"]:
            assert isinstance(seg, list) and len(seg) == 2 and isinstance(seg[0], str) and isinstance(seg[1], bool), seg
            if seg[1]:
                marked += 1
                assert seg[0].lower() == WORD, "a segment marked true should be the word %r: %r" % (WORD, seg)
    assert marked >= len(ids) // 2, "most hits should show %r marked in their snippet (%d of %d)" % (
        WORD, marked, len(ids))
    for key in ("id", "date", "from", "to", "subject", "archive", "folder", "size", "hasAttachment"):
        assert key in pages[0]["hits"][0], (key, pages[0]["hits"][0])

    for bad in ({"query": WORD, "limit": 0}, {"query": WORD, "limit": 201}, {"query": WORD, "limit": "x"},
                {"query": "(" + WORD}, {"query": 'subject:"unterminated'}):
        r = c.post("/web/api/search", bad)
        assert r.status == 400 and r.error_code() == "invalid", "search %r: expected 400 invalid, got %r" % (bad, r)


def test_message_list_pages(world):
    w = world
    c = client(w, "alice")
    whole = w.api.ok("GetMessages", user="alice", pw=PW["alice"], folder="alice/Inbox", limit=10000)
    whole_ids = [m["id"] for m in whole]
    assert sorted(whole_ids) == sorted(w.by_folder["alice/Inbox"]), "GetMessages should list the whole Inbox"
    ids, pages, after = [], [], None
    while len(pages) < 10:
        fields = {"folder": "alice/Inbox", "limit": 60}
        if after:
            fields["after"] = after
        page = c.call("messages", **fields)
        pages.append(page)
        ids += [m["id"] for m in page["messages"]]
        if not page["more"]:
            break
        after = page["messages"][-1]["id"]
    assert len(ids) == len(set(ids)) and ids == whole_ids, "after pages should be disjoint and equal the whole list"
    assert [p["more"] for p in pages] == [True] * (len(pages) - 1) + [False]
    dates = [m["date"] for p in pages for m in p["messages"]]
    assert dates == sorted(dates, reverse=True), "newest first"
    assert "archivedAt" not in pages[0]["messages"][0], pages[0]["messages"][0]
    # offset still pages the first part of a folder
    assert [m["id"] for m in c.call("messages", folder="alice/Inbox", offset=60, limit=60)["messages"]] == ids[60:120]
    assert c.call("messages", folder="alice/Inbox", offset=250)["messages"] == []
    # a folder that does not exist is refused like one the user may not read
    r = c.post("/web/api/messages", {"folder": "alice/NoSuchFolder"})
    assert r.status == 404 and r.error_code() == "not_found", r
    folders = {f["folder"]: f for f in c.call("folders")["folders"]}
    assert folders["alice/Inbox"]["count"] == 250 and folders["alice/Inbox"]["level"] == 2, folders
    assert folders["alice"]["level"] == 1 and list(folders) == sorted(folders), folders


def test_message_and_eml_download(world):
    w = world
    c = client(w, "alice")
    ids = sorted(w.sha)
    sample = ids[::10] + ids[-3:]
    for i in sample:
        r = c.get("/web/api/message/%s/eml" % urllib.parse.quote(i))
        check_download(r, "the .eml of %s" % i)
        assert r.header("Content-Type") == "message/rfc822", r
        rel = w.rel[i]
        assert sha256(r.body) == w.corpus.sums[rel], \
            "the .eml of %s should be byte-identical to %s (sha256 %s), got %d bytes sha256 %s" % (
                i, rel, w.corpus.sums[rel], len(r.body), sha256(r.body))
        m = c.call("message", id=i)
        assert m["id"] == i and m["folder"] == "alice/Inbox" and m["archive"] == "alice", m
        assert m == w.api.ok("GetMessage", id=i), "the web's message is GetMessage's"
        assert r.header("Content-Disposition").endswith(".eml") or ".eml" in r.header("Content-Disposition"), r.headers
    # the filename is the subject, safely encoded
    hostile = c.get("/web/api/message/%s/eml" % urllib.parse.quote(w.hostile_ids[HOSTILE_SUBJECT]))
    disp = hostile.header("Content-Disposition")
    assert '"' not in disp.split('filename="', 1)[1].rsplit('"', 1)[0], "quotes inside the filename: %r" % disp
    assert "filename*=UTF-8''" in disp, disp


def test_hostile_html_is_sanitised(world):
    """The message frame's HTML (the browser test shows it; here its bytes):
    nothing that runs, loads from outside or navigates survives."""
    w = world
    c = client(w, "alice")
    forbidden = [r"<script", r"\son[a-z]+\s*=", r"javascript:", r"vbscript:", r"data:text/html", r"expression\(",
                 r"behavior\s*:", r"-moz-binding", r"@import", r"http-equiv", r"<base\b", r"<iframe", r"<object",
                 r"<embed", r"<form", r"formaction", r"srcdoc", r"evil\.example", r"<meta(?![^>]*charset)"]
    for subject, html in HOSTILE_HTML.values():
        assert [p for p in forbidden if re.search(p, html, re.I)], "the checks would not notice %r" % subject
    for subject, msg_id in sorted(w.hostile_ids.items()):
        m = c.call("message", id=msg_id)
        if not m["hasHtml"]:
            continue
        r = c.get("/web/api/message/%s/html" % urllib.parse.quote(msg_id))
        assert r.status == 200, (subject, r)
        check_frame_csp(r, subject)
        html = r.body.decode("utf-8")
        found = [p for p in forbidden if re.search(p, html, re.I)]
        assert not found, "the frame of %r still contains %s:\n%s" % (subject, found, html[:3000])
        remote = c.get("/web/api/message/%s/html?remote=1" % urllib.parse.quote(msg_id)).body.decode("utf-8")
        found = [p for p in forbidden if p != r"evil\.example" and re.search(p, remote, re.I)]
        assert not found, "the frame of %r with remote images contains %s:\n%s" % (subject, found, remote[:3000])
        for url in re.findall(r"https?://[^\s\"'&)]+", remote):
            assert re.search(r"\.(png|gif|jpe?g)$", url) or "evil" not in url, \
                "with remote images only images may load from outside: %s in %r" % (url, subject)
    assert c.call("message", id=w.hostile_ids["Hostile remote images"])["hasRemoteContent"] is True
    assert c.call("message", id=w.hostile_ids["Hostile script tag"])["hasRemoteContent"] is False


# =====================================================================================
# the audit log
# =====================================================================================

def test_user_activity_audit(world):
    w = world
    activities = ("UserLogon", "MessageSearch", "MessageRetrieveContent")
    msg_id = sorted(w.sha)[0]

    def session_of_activity():
        seq = w.api.last_seq()
        c = client(w, "alice")
        c.call("search", query=WORD)
        c.call("message", id=msg_id)
        assert c.get("/web/api/message/%s/eml" % msg_id).status == 200
        assert c.login("alice", "wrong").status == 401
        return [e for e in w.api.audit_since(seq) if e["user"] == "alice"]

    before = w.api.set_compliance(logSuccessfulUserActivities=[])
    try:
        entries = session_of_activity()
        events = [e["event"] for e in entries]
        assert not set(events) & set(activities), \
            "without logSuccessfulUserActivities no user activity is audited, got %r" % events
        assert "UserLogonFailed" in events, "a failed login is always audited: %r" % events

        w.api.set_compliance(logSuccessfulUserActivities=list(activities))
        entries = session_of_activity()
        events = [e["event"] for e in entries]
        for a in activities:
            assert a in events, "with %s in logSuccessfulUserActivities a web %s should be audited; got %r" % (
                a, a, events)
        assert "UserLogonFailed" in events, events
        logon = [e for e in entries if e["event"] == "UserLogon"]
        assert logon[0]["success"] and "Web Access" in logon[0]["details"], logon
        views = [e["details"] for e in entries if e["event"] == "MessageRetrieveContent"]
        assert len(views) >= 2 and all(msg_id in d for d in views), \
            "the message view and the .eml download are each a MessageRetrieveContent: %r" % views
        search = [e["details"] for e in entries if e["event"] == "MessageSearch"]
        assert search and WORD in search[0], "the search's entry should name the query: %r" % search
    finally:
        w.api.ok("SetComplianceConfiguration", config=before)
