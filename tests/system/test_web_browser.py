"""Web Access in a real browser: Debian's Chromium driven by npm
playwright-core (tests/web/run.mjs), against one `mailvault serve` and one
data directory for the whole module, and one Chromium process running every
scenario (each in a fresh browser context).

Screenshots of every step: $MAILVAULT_TEST_ARTIFACTS, else
build-asan/test-artifacts/web, else a temporary directory (printed).

The data, imported before the server starts:
  alice/Inbox    the corpus folder hard-ham-1 (scenario 1; dora reads it too)
  victor/Inbox   the hostile messages (webtest.write_hostile_messages)
  bob/Inbox      a few generated messages
Users: alice (the user's day), carol (app password), victor (hostile mail),
dora (accessibility, reads alice's archive), bob (privileges)."""

import hashlib
import json
import os
import re
import urllib.parse

import pytest

from mvserver import MvServer, init_with_admin
from mvtest import REPO_ROOT, import_json, mv, search_json
from webtest import (HOSTILE_ATTACHMENT, HOSTILE_ATTACHMENT_BODY, HOSTILE_SENDER_NAME, HOSTILE_SUBJECT, Api,
                     BrowserDriver, Totp, artifacts_dir, chromium_path, npm_ci, write_eml, write_hostile_messages)

CORPUS_FOLDER = "hard-ham-1"
WORD = "newsletter"
PW = {"alice": "Alice-Browser-1234", "carol": "Carol-Browser-5678", "victor": "Victor-Browser-9012",
      "dora": "Dora-Browser-3456", "bob": "Bob-Browser-7890"}
I18N = os.path.join(REPO_ROOT, "src", "web", "assets", "js", "i18n")


def catalogue(lang):
    """The page's message catalogue {key: text} (src/web/assets/js/i18n)."""
    with open(os.path.join(I18N, lang + ".js"), encoding="utf-8") as f:
        src = f.read()
    return {m.group(1): m.group(2).encode("latin-1", "backslashreplace").decode("unicode_escape")
            if "\\" in m.group(2) else m.group(2)
            for m in re.finditer(r"^\s*'([\w.]+)':\s*'((?:[^'\\]|\\.)*)',?\s*$", src, re.M)}


class World:
    pass


@pytest.fixture(scope="module")
def web(corpus, tmp_path_factory):
    chromium_path()
    npm_ci()
    root = tmp_path_factory.mktemp("webbrowser")
    w = World()
    w.dir = os.path.join(str(root), "data")
    admin_pw = init_with_admin(w.dir)
    import_json(os.path.join(corpus.eml_dir, CORPUS_FOLDER), "alice", w.dir, "--folder", "Inbox")
    hostile_dir = os.path.join(str(root), "hostile")
    w.hostile = write_hostile_messages(hostile_dir)
    summary, _ = import_json(hostile_dir, "victor", w.dir, "--folder", "Inbox")
    assert summary["imported"] == len(w.hostile), summary
    bob_dir = os.path.join(str(root), "bob")
    for i in range(3):
        write_eml(os.path.join(bob_dir, "%d.eml" % i), "Bob's %s %d" % (WORD, i), "bob's own %s %d\n" % (WORD, i))
    import_json(bob_dir, "bob", w.dir, "--folder", "Inbox")

    hits = search_json("size:>0", w.dir, limit=0)
    w.ids = {}
    for h in hits:
        w.ids.setdefault(h["archive"], []).append(h)
    w.alice_ids = {h["id"] for h in w.ids["alice"]}
    w.victor = {h["subject"]: h["id"] for h in w.ids["victor"]}
    cp = mv("show", "--sha256", *sorted(w.alice_ids), data_dir=w.dir)
    w.sha = dict(reversed(line.split("  ", 1)) for line in cp.stdout.decode().splitlines())
    corpus_shas = {d for rel, d in corpus.sums.items() if rel.startswith("eml/%s/" % CORPUS_FOLDER)}
    assert set(w.sha.values()) <= corpus_shas and len(w.sha) == 250, "alice/Inbox should be the corpus folder"
    w.corpus = corpus

    w.srv = MvServer(w.dir, password=admin_pw).start()
    w.driver = None
    try:
        w.api = Api(w.srv, admin_pw)
        w.api.create_user("alice", PW["alice"], folders=("alice",))
        w.api.create_user("carol", PW["carol"])
        w.api.create_user("victor", PW["victor"], folders=("victor",))
        w.api.create_user("dora", PW["dora"], folders=("alice",))
        w.api.create_user("bob", PW["bob"], folders=("bob",))
        w.artifacts = artifacts_dir()
        w.driver = BrowserDriver(w.artifacts)
        w.totps = {}
        yield w
    finally:
        if w.driver:
            w.driver.close()
        w.srv.stop()


def run(w, kind, handler=None, **params):
    sc = dict(params, kind=kind, name=params.pop("name", kind), base=w.srv.web_url, artifacts=w.artifacts)
    res = w.driver.run(sc, handler=handler or (lambda ask: answer(w, ask)))
    with open(os.path.join(w.artifacts, "%s-result.json" % sc["name"]), "w") as f:
        json.dump(res, f, indent=1)
    return res


def answer(w, ask):
    """What a scenario may ask Python: a TOTP code, or whether a password
    opens the Administration API (HTTP status, or the call's statusCode)."""
    if ask["kind"] == "totp":
        return w.totps.setdefault(ask["secret"], Totp(ask["secret"])).code()
    if ask["kind"] == "api":
        status, env = w.api.invoke("GetChildFolders", user=ask["user"], pw=ask["password"])
        return status if status != 200 else env["statusCode"]
    raise ValueError("unknown question %r" % ask)


def check(res, what):
    """The scenario's own failures, then what must never happen in any."""
    assert not res["failures"], "%s failed:\n  %s\nsteps done: %s\nscreenshots: %s" % (
        what, "\n  ".join(res["failures"]), res["steps"], res["screenshots"][-3:])
    w = res["watch"]
    problems = {k: w[k] for k in ("dialogs", "navigations", "foreign", "appCsp", "pageErrors", "popups") if w[k]}
    assert not problems, "%s: expected no dialog, no navigation away from the app, no request to another host, " \
                         "no CSP violation of the app page, no script error and no popup; got %r" % (what, problems)


def test_harness_detectors_fire(web):
    """The positive control: a page on the server's origin that is not the
    app opens a dialog, loads a foreign image, navigates and violates its
    CSP; each detector must see it (else the scenarios prove nothing)."""
    res = run(web, "controls")
    assert not res["failures"], res["failures"]
    w = res["watch"]
    urls = res["data"]["urls"]
    assert [d["message"] for d in w["dialogs"]] == ["control-dialog"], \
        "the dialog detector should have seen alert('control-dialog'): %r" % w["dialogs"]
    assert any(re.fullmatch(r"https?://evil\.example/control\.png", f["url"]) and f["type"] == "image"
               for f in w["foreign"]), \
        "the foreign-request detector should have recorded (and aborted) http://evil.example/control.png: %r" % (
            w["foreign"],)
    assert any(n["url"] == urls["b"] for n in w["navigations"]), \
        "the navigation detector should have seen the page leave for %s: %r" % (urls["b"], w["navigations"])
    rep = res["data"]["frameReport"]
    assert rep["top"] == "control" and rep["frames"] and rep["frames"][0]["scripts"] == 1 and \
        rep["frames"][0]["handlers"] and rep["frames"][0]["jsUrls"] and rep["frames"][0]["active"], \
        "the frame report should see the control's canary, script, handler, javascript: link and form: %r" % rep
    directives = {v["directive"] for v in w["appCsp"]}
    assert {"script-src-elem", "img-src"} <= directives or {"script-src", "img-src"} <= directives, \
        "the CSP detector should have seen the inline script and the image refused: %r" % w["appCsp"]


def test_users_day(web):
    w = web
    new_pw = "Alice-Browser-New-4321"
    # what alice sees, asked before the scenario turns her MFA on
    first_page = [h["id"] for h in w.api.ok("SearchMessages", user="alice", pw=PW["alice"], query=WORD, limit=50)]
    folder_page = [m["id"] for m in w.api.ok("GetMessages", user="alice", pw=PW["alice"], folder="alice/Inbox",
                                             limit=50)]
    res = run(w, "day", name="day", user="alice", password=PW["alice"], newPassword=new_pw, word=WORD,
              folder="alice/Inbox")
    check(res, "the user's day")
    d = res["data"]
    PW["alice"] = new_pw

    assert d["searchIds"] == first_page, \
        "the result rows for %r should be the first page of SearchMessages, in order: %s vs %s" % (
            WORD, d["searchIds"][:5], first_page[:5])
    assert d["searchHash"] == "#/search?q=" + WORD, d["searchHash"]
    assert d["marks"] and {m.lower() for m in d["marks"]} == {WORD}, \
        "snippets should mark %r: %r" % (WORD, d["marks"][:10])
    assert "alice/Inbox" in d["folders"], d["folders"]
    assert d["folderIds"] == folder_page, "the folder's rows should be GetMessages' first page: %s vs %s" % (
        d["folderIds"][:5], folder_page[:5])

    opened = urllib.parse.unquote(d["openedHash"].split("#/message/", 1)[1])
    assert opened == folder_page[0], "j, Enter should open the first row %s, opened %s" % (folder_page[0], opened)
    m = w.api.ok("GetMessage", id=opened)
    assert d["subject"] == (m["subject"] or "(no subject)") and d["from"] == m["from"], \
        "the message view should show GetMessage's subject and sender: %r / %r vs %r / %r" % (
            d["subject"], d["from"], m["subject"], m["from"])
    dl = d["download"]
    assert dl["failure"] is None and dl["sha256"] == w.sha[opened], \
        "the downloaded .eml of %s should be byte-identical to the corpus file (sha256 %s), got %r" % (
            opened, w.sha[opened], dl)
    assert dl["name"].endswith(".eml"), dl

    en, de = catalogue("en"), catalogue("de")
    assert d["langBefore"] == {"folders": en["nav.folders"], "search": en["search.submit"]}, d["langBefore"]
    assert d["langAfter"] == {"folders": de["nav.folders"], "search": de["search.submit"], "htmlLang": "de"}, \
        "after choosing Deutsch the page should show German text: %r" % d["langAfter"]
    assert d["langBack"] == d["langBefore"], d["langBack"]

    assert d["passwordStatus"]["text"] == en["settings.pwChanged"], d["passwordStatus"]
    assert d["mfaStatus"] == en["settings.mfa.active"], d["mfaStatus"]
    assert d["qrLoaded"], "the MFA QR code image should load"
    final = d["finalSession"]
    assert final["stage"] == "authenticated" and final["user"]["mfa"] == "active", final
    info = w.api.ok("GetUserInfo", userName="alice")
    assert info["mfaStatus"] == "active", info
    status, env = w.api.invoke("GetChildFolders", user="alice", pw=new_pw)
    assert status == 401, "with MFA active alice's password must not open the API: %s %r" % (status, env)


def test_app_password(web):
    w = web
    res = run(w, "apppw", user="carol", password=PW["carol"], description="Thunderbird laptop")
    check(res, "the app password scenario")
    d = res["data"]
    assert re.fullmatch(r"[a-z2-9]{4}(-[a-z2-9]{4}){4}", d["password"]), d["password"]
    assert any("Thunderbird laptop" in r for r in d["rows"]), d["rows"]
    assert d["password"] not in " ".join(d["rows"]), "the list must not show the password"
    assert d["apiWhileActive"] == "succeeded", \
        "the app password should open the Administration API: %r" % d["apiWhileActive"]
    assert d["loginError"] == catalogue("en")["login.wrongCredentials"], \
        "the web login with an app password should show the wrong-credentials error: %r" % d["loginError"]
    assert d["stageAfter"] == {"stage": "anonymous"}, d["stageAfter"]
    assert d["apiAfterRevoke"] == 401, "the revoked app password must stop working: %r" % d["apiAfterRevoke"]


def test_hostile_mail(web):
    w = web
    order = {name: subject for name, subject in w.hostile}
    messages = []
    for name, subject in w.hostile:
        msg_id = w.victor[subject]
        m = w.api.ok("GetMessage", id=msg_id)
        part = m["attachments"][0]["index"] if m["attachments"] else None
        messages.append({"name": name, "id": msg_id, "subject": m["subject"], "part": part})
    res = run(w, "hostile", user="victor", password=PW["victor"], folder="victor/Inbox", messages=messages)
    d = res["data"]
    assert not res["failures"], "the hostile-mail scenario failed:\n  %s\nsteps: %s" % (
        "\n  ".join(res["failures"]), res["steps"])
    watch = res["watch"]

    assert sorted(d["folderIds"]) == sorted(w.victor.values()), d["folderIds"]
    assert d["rowImages"] == 0, "no <img> may appear in the result rows (subject and sender are text)"
    assert any(HOSTILE_SUBJECT in t for t in d["rowTexts"]), "the hostile subject shows as text in its row"

    canaries = []
    for name, r in d["messages"].items():
        for rep in [r["report"]] + [r[k] for k in ("afterRemote", "afterDirect") if k in r]:
            if rep["top"] is not None:
                canaries.append((name, "top", rep["top"]))
            for f in rep["frames"]:
                if f.get("pwned") is not None:
                    canaries.append((name, f["src"], f["pwned"]))
                for k in ("scripts", "handlers", "jsUrls", "active"):
                    if f.get(k):
                        canaries.append((name, "frame DOM " + k, f[k]))
                assert f["sandbox"] is not None and "allow-scripts" not in f["sandbox"], (name, f)
            for f in rep["playwrightFrames"]:
                if f["pwned"] is not None and not str(f["pwned"]).startswith("n/a"):
                    canaries.append((name, f["url"], f["pwned"]))
        assert r["appJsLinks"] == 0, "%s: a javascript: link reached the app page" % name
    assert not canaries, "script ran or dangerous markup reached a frame: %r" % canaries

    for name in order:
        r = d["messages"][name]
        if name not in ("text", "subject", "attachment"):
            assert r["hasFrame"], "%s: the HTML should be shown in the frame" % name
    subj = d["messages"]["subject"]
    assert subj["subject"] == HOSTILE_SUBJECT and subj["headerImages"] == 0, \
        "the hostile subject must show as text: %r (%d images)" % (subj["subject"], subj["headerImages"])
    assert HOSTILE_SENDER_NAME in subj["from"], subj["from"]
    text = d["messages"]["text"]
    assert text["hasText"] and all(h.startswith(("http://", "https://")) for h in text["textLinks"]), text
    remote = d["messages"]["remote-images"]
    assert remote["remoteNotice"] and not remote["remoteNoticeAfter"], remote
    assert not d["messages"]["script"]["remoteNotice"], "a message without remote content shows no notice"
    att = d["messages"]["attachment"]
    assert att["attachmentNames"] == [HOSTILE_ATTACHMENT], att["attachmentNames"]
    assert att["attachmentDownload"]["failure"] is None and \
        att["attachmentDownload"]["sha256"] == hashlib.sha256(HOSTILE_ATTACHMENT_BODY.encode()).hexdigest(), \
        "the attachment should download as its own bytes: %r" % att["attachmentDownload"]
    assert "<" not in att["attachmentDownload"]["name"], att["attachmentDownload"]["name"]
    assert att["urlAfterDownload"].split("#")[0] == w.srv.web_url + "/", att["urlAfterDownload"]
    assert att["direct"]["download"] is not None and (
        att["direct"]["pwned"] is None or str(att["direct"]["pwned"]).startswith("n/a")), \
        "opening the attachment's URL directly must download it, not run it: %r" % att["direct"]

    # only after "load remote images", and only images, may go out (aborted by the harness)
    early = [f for f in watch["foreign"] if f["phase"] != "remote-images-loaded"]
    assert not early, "requests to other hosts before remote images were asked for: %r" % early
    late = [f for f in watch["foreign"] if f["phase"] == "remote-images-loaded"]
    # (Chromium upgrades http images of an https page to https: either scheme)
    assert late and all(f["type"] == "image" and re.match(r"https?://evil\.example/", f["url"]) for f in late), \
        "after 'load remote images' only the images may be requested: %r" % late
    problems = {k: watch[k] for k in ("dialogs", "navigations", "appCsp", "pageErrors", "popups") if watch[k]}
    assert not problems, \
        "hostile mail: expected no dialog, navigation, app CSP violation, error or popup: %r" % problems
    assert d["topPwned"] is None and d["finalUrl"].split("#")[0] == w.srv.web_url + "/", d


def test_accessibility(web):
    """axe-core on the login page, search results, a message and the
    settings: no violation of impact serious or critical.  axe runs in a
    context with bypassCSP (the page's CSP forbids the injected script);
    the sandboxed message frame itself is not analysed."""
    w = web
    res = run(w, "axe", user="dora", password=PW["dora"], word=WORD)
    check(res, "the accessibility scenario")
    d = res["data"]
    control = {v["id"] for v in d["control"]["violations"] if v["impact"] in ("serious", "critical")}
    assert {"image-alt", "label", "button-name"} <= control, \
        "the control page should show axe's serious violations (image-alt, label, button-name): %r" % control
    assert set(d["pages"]) == {"login", "search", "message", "settings"}, d["pages"].keys()
    for page, found in d["pages"].items():
        assert found["passes"] >= 15, "axe checked too little on %s (%d rules passed)" % (page, found["passes"])
    bad = {page: [v for v in found["violations"] if v["impact"] in ("serious", "critical")]
           for page, found in d["pages"].items()}
    bad = {p: v for p, v in bad.items() if v}
    assert not bad, "axe-core found serious or critical violations:\n%s\n(all violations: %r)" % (
        "\n".join("%s: %s (%s) %s" % (p, v["id"], v["impact"], v["nodes"]) for p, vs in bad.items() for v in vs),
        {p: [(v["id"], v["impact"]) for v in found["violations"]] for p, found in d["pages"].items()})


def test_privileges_in_browser(web):
    w = web
    alice_id = sorted(w.alice_ids)[0]
    own = w.ids["bob"][0]["id"]
    res = run(w, "privileges", user="bob", password=PW["bob"], foreignId=alice_id, ownId=own, word=WORD)
    check(res, "bob at alice's message")
    d = res["data"]
    en = catalogue("en")
    assert en["msg.notFound"] in d["errorText"] and d["subjects"] == 0, \
        "alice's message should show the not-found state to bob: %r" % d["errorText"]
    assert d["fetchForeign"]["status"] == 404 and '"not_found"' in d["fetchForeign"]["body"], d["fetchForeign"]
    assert d["fetchOwn"]["status"] == 200, "bob's own .eml (the control) should download: %r" % d["fetchOwn"]
    assert d["gotoForeign"] == {"status": 404, "downloaded": None}, d["gotoForeign"]
    assert d["searchIds"] and not set(d["searchIds"]) & w.alice_ids, \
        "bob's search for %r shows only his own: %r" % (WORD, d["searchIds"])
