"""Credentials (issue 11): CreateCredential, DeleteCredential, GetCredential,
GetCredentials, SetCredentialDescription and SetCredentialSettings through
`mailvault cmd` and over HTTPS against a real `mailvault serve`.

What is checked, besides each function's normal path and its argument
errors:
- a secret (password, clientSecret, a certificate's private key) is in no
  answer, no logOutput, no audit entry (GetAuditLog) and no process output,
  and nowhere in master.sqlite's bytes (or its WAL) in clear;
- what master.sqlite holds is the secret all the same: this test opens it
  itself from master.key and the stored columns (XChaCha20-Poly1305, as
  archive/credentials.c seals it), before and after RenewMasterKey, also
  when the renewal is cut short at each of its steps;
- an argument the credential's type does not take is refused naming both;
- DeleteCredential is refused while a profile uses the credential (a row of
  profile_credentials, as the profiles module will write it);
- the certificate of createNewCertificate, checked with `openssl x509`, and
  the private key kept for it belongs to it.

Every test makes its own small instance (no mail), so they run in seconds."""

import json
import os
import re
import shutil
import sqlite3
import subprocess

import pytest
from nacl.bindings import crypto_aead_xchacha20poly1305_ietf_decrypt

from mvserver import MvServer, init_with_admin
from mvtest import REPO_ROOT, init_data_dir, mv, parse_json

FAULT_EXIT = 86          # the exit status of the MAILVAULT_FAULT test hook
NONCE = 24               # XChaCha20-Poly1305's nonce, ahead of every sealed or wrapped value
TENANT = "3f1c2a5e-8b7d-4e2a-9c41-0d6b5f7a8e90"
APP = "a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d"
PASSWORD = "Sys-Test-Mailbox-Password-5521"
CLIENT_SECRET = "Q7~8Q.sys-test-client-secret-0193"


# ---------------------------------------------------------------------------
# helpers


def call(data_dir, function, env=None, **args):
    """`mailvault cmd Function --k=v ...`: (envelope, the process's whole output)."""
    argv = ["cmd", function] + ["--%s=%s" % (k, ("true" if v else "false") if isinstance(v, bool) else v)
                                for k, v in args.items()]
    cp = mv(*argv, data_dir=data_dir, check=(0, 1, 2), env=env)
    e = parse_json(cp)
    assert (cp.returncode == 0) == (e["statusCode"] == "succeeded"), (cp.returncode, e)
    return e, cp.stdout + cp.stderr


def ok(data_dir, function, **args):
    e, _ = call(data_dir, function, **args)
    assert e["statusCode"] == "succeeded" and e["error"] is None, (function, e)
    return e["result"]


def refused(data_dir, function, **args):
    """The error message of a call that must fail."""
    e, _ = call(data_dir, function, **args)
    assert e["statusCode"] == "failed" and e["result"] is None, (function, args, e)
    return e["error"]["message"]


def credential_count(data_dir):
    return len(ok(data_dir, "GetCredentials"))


def master_db(data_dir):
    return sqlite3.connect(os.path.join(str(data_dir), "master.sqlite"), timeout=30)


def row(data_dir, cid):
    with master_db(data_dir) as db:
        db.row_factory = sqlite3.Row
        r = db.execute("SELECT * FROM credentials WHERE id=?", (cid,)).fetchone()
    assert r is not None, cid
    return dict(r)


def master_key(data_dir):
    with open(os.path.join(str(data_dir), "master.key"), "rb") as f:
        data = f.read()
    assert len(data) == 40 and data[:8] == b"MVKEY001", data[:8]
    return data[8:]


def aead_open(key, sealed, ad):
    return crypto_aead_xchacha20poly1305_ietf_decrypt(sealed[NONCE:], ad, sealed[:NONCE], key)


def stored_secret(data_dir, cid, key=None):
    """The credential's secret, opened here from what master.sqlite holds:
    its key unwrapped with master.key, the secret opened with it."""
    r = row(data_dir, cid)
    assert r["secret"] is not None and r["key_master"] is not None, r
    own_key = aead_open(key or master_key(data_dir), r["key_master"], None)
    return aead_open(own_key, r["secret"], b"mailvault credential %d" % cid).decode()


def files_of_master_db(data_dir):
    names = ["master.sqlite", "master.sqlite-wal", "master.sqlite-shm"]
    out = b""
    for n in names:
        p = os.path.join(str(data_dir), n)
        if os.path.exists(p):
            with open(p, "rb") as f:
                out += f.read()
    return out


def key_body(pem):
    """The base64 lines of a PEM private key: what would be in a file that
    kept it in clear."""
    lines = [ln for ln in pem.strip().splitlines() if not ln.startswith("-----")]
    assert len(lines) > 10, pem[:60]
    return [ln.encode() for ln in lines]


@pytest.fixture
def d(tmp_path):
    return init_data_dir(tmp_path / "data")


def make_three(d):
    """One credential of each type, with secrets; returns their ids."""
    o365 = ok(d, "CreateCredential", type="Office365_Modern", description="Microsoft 365",
              tenantId=TENANT, applicationId=APP)["id"]
    cert = ok(d, "SetCredentialSettings", id=o365, createNewCertificate=True)["certificate"]
    pw = ok(d, "CreateCredential", type="Password", description="journal mailbox", userName="journal@example.com",
            password=PASSWORD)["id"]
    cs = ok(d, "CreateCredential", type="OAuthClientSecret", description="Graph app", tenantId="contoso.onmicrosoft.com",
            applicationId=APP, clientSecret=CLIENT_SECRET)["id"]
    return o365, pw, cs, cert


# ---------------------------------------------------------------------------
# the functions' normal paths


def test_each_type_created_read_listed_changed_deleted(d):
    assert ok(d, "GetCredentials") == []
    o365 = ok(d, "CreateCredential", type="Office365_Modern", description="Microsoft 365",
              tenantId=TENANT, applicationId=APP)
    assert o365 == {"id": 1, "type": "Office365_Modern", "description": "Microsoft 365", "tenantId": TENANT,
                    "applicationId": APP, "certificate": None, "hasSecret": False}
    pw = ok(d, "CreateCredential", type="Password", description="journal mailbox", userName="journal@example.com",
            password=PASSWORD)
    assert pw == {"id": 2, "type": "Password", "description": "journal mailbox", "userName": "journal@example.com",
                  "hasSecret": True}
    cs = ok(d, "CreateCredential", type="OAuthClientSecret", description="Graph app")
    assert cs == {"id": 3, "type": "OAuthClientSecret", "description": "Graph app", "tenantId": None,
                  "applicationId": None, "hasSecret": False}
    assert ok(d, "GetCredential", id=2) == pw
    assert ok(d, "GetCredentials") == [o365, pw, cs]

    # the settings: given ones change, the rest stay; "" unsets
    cs = ok(d, "SetCredentialSettings", id=3, tenantId="contoso.onmicrosoft.com", applicationId=APP,
            clientSecret=CLIENT_SECRET)
    assert cs["tenantId"] == "contoso.onmicrosoft.com" and cs["applicationId"] == APP and cs["hasSecret"] is True
    assert stored_secret(d, 3) == CLIENT_SECRET
    cs = ok(d, "SetCredentialSettings", id=3, tenantId="")
    assert cs["tenantId"] is None and cs["applicationId"] == APP and cs["hasSecret"] is True
    assert ok(d, "SetCredentialSettings", id=2, password="A-New-Password-77")["hasSecret"] is True
    assert stored_secret(d, 2) == "A-New-Password-77"
    assert ok(d, "SetCredentialSettings", id=1, tenantId="fabrikam.onmicrosoft.com")["tenantId"] == \
        "fabrikam.onmicrosoft.com"
    # createNewCertificate=false is a setting Office365_Modern takes, and changes nothing
    assert ok(d, "SetCredentialSettings", id=1, createNewCertificate=False)["certificate"] is None

    assert ok(d, "SetCredentialDescription", id=2, description="Journal (Exchange)") is None
    assert ok(d, "GetCredential", id=2)["description"] == "Journal (Exchange)"

    assert ok(d, "DeleteCredential", id=2) is None
    assert "credential 2 does not exist" in refused(d, "GetCredential", id=2)
    assert [c["id"] for c in ok(d, "GetCredentials")] == [1, 3]
    # ids are never given again
    assert ok(d, "CreateCredential", type="Password", description="later")["id"] == 4


def test_argument_errors(d):
    ok(d, "CreateCredential", type="Password", description="p", userName="u", password=PASSWORD)
    ok(d, "CreateCredential", type="Office365_Modern", description="m")
    ok(d, "CreateCredential", type="OAuthClientSecret", description="o")
    cases = [
        ("CreateCredential", {"description": "x"}, "CreateCredential: missing argument 'type' (string)"),
        ("CreateCredential", {"type": "Password"}, "CreateCredential: missing argument 'description' (string)"),
        ("CreateCredential", {"type": "Kerberos", "description": "x"},
         "CreateCredential: argument 'type' must be one of Office365_Modern, Password, OAuthClientSecret, "
         "SignedEnvelope (got 'Kerberos')"),
        ("CreateCredential", {"type": "SignedEnvelope", "description": "x"},
         "CreateCredential: type: SignedEnvelope credentials (for exports to MailStore Cloud) are not supported"),
        ("CreateCredential", {"type": "Password", "description": "x", "color": "red"},
         "CreateCredential: unknown argument 'color'"),
        ("CreateCredential", {"type": "Office365_Modern", "description": "x", "tenantId": "common"},
         "CreateCredential: tenantId: 'common' is neither a GUID nor a domain name"),
        ("CreateCredential", {"type": "Office365_Modern", "description": "x", "tenantId": "evil.com/../x"},
         "CreateCredential: tenantId: 'evil.com/../x' is neither a GUID nor a domain name"),
        ("CreateCredential", {"type": "OAuthClientSecret", "description": "x", "applicationId": "my app"},
         "CreateCredential: applicationId: 'my app' is not a GUID"),
        ("CreateCredential", {"type": "Password", "description": "x", "password": ""},
         "CreateCredential: password: empty"),
        ("CreateCredential", {"type": "Password", "description": "x", "password": "p" * 4097},
         "CreateCredential: password: must be at most 4096 bytes"),
        ("CreateCredential", {"type": "Password", "description": "bell\x07"},
         "CreateCredential: description: must be at most 1024 bytes of UTF-8 without control characters"),
        ("CreateCredential", {"type": "Password", "description": "x", "userName": "a\tb"},
         "CreateCredential: userName: must be at most 1024 bytes"),
        ("GetCredential", {}, "GetCredential: missing argument 'id' (number)"),
        ("GetCredential", {"id": "one"}, "GetCredential: argument 'id' must be an integer number (got 'one')"),
        ("GetCredential", {"id": 99}, "GetCredential: credential 99 does not exist"),
        ("DeleteCredential", {"id": 99}, "DeleteCredential: credential 99 does not exist"),
        ("SetCredentialDescription", {"id": 99, "description": "x"},
         "SetCredentialDescription: credential 99 does not exist"),
        ("SetCredentialDescription", {"id": 1}, "SetCredentialDescription: missing argument 'description' (string)"),
        ("SetCredentialSettings", {"id": 99, "tenantId": TENANT}, "SetCredentialSettings: credential 99 does not exist"),
        ("SetCredentialSettings", {"id": 2, "createNewCertificate": "yes"},
         "SetCredentialSettings: argument 'createNewCertificate' must be true or false (got 'yes')"),
        ("SetCredentialSettings", {"id": 1, "password": ""}, "SetCredentialSettings: password: empty"),
    ]
    for function, args, expected in cases:
        message = refused(d, function, **args)
        assert message.startswith(expected), (function, args, message)
    # refused calls made nothing and changed nothing
    assert credential_count(d) == 3
    assert ok(d, "GetCredential", id=1)["userName"] == "u"
    assert stored_secret(d, 1) == PASSWORD


def test_arguments_of_another_type_are_refused(d):
    ids = {"Password": 1, "Office365_Modern": 2, "OAuthClientSecret": 3}
    for t, i in ids.items():
        assert ok(d, "CreateCredential", type=t, description=t)["id"] == i
    takes = {"Office365_Modern": ["tenantId", "applicationId", "createNewCertificate"],
             "Password": ["userName", "password"],
             "OAuthClientSecret": ["tenantId", "applicationId", "clientSecret"]}
    values = {"tenantId": TENANT, "applicationId": APP, "createNewCertificate": "true", "userName": "someone",
              "password": PASSWORD, "clientSecret": CLIENT_SECRET}
    for t, i in ids.items():
        for arg in values:
            if arg in takes[t]:
                continue
            expected = "argument '%s' does not apply to a credential of type %s (it takes %s)" % (
                arg, t, ", ".join(takes[t]))
            assert refused(d, "SetCredentialSettings", id=i, **{arg: values[arg]}) == \
                "SetCredentialSettings: " + expected
            if arg != "createNewCertificate":
                assert refused(d, "CreateCredential", type=t, description="x", **{arg: values[arg]}) == \
                    "CreateCredential: " + expected
    # a good setting beside a wrong one changes nothing
    refused(d, "SetCredentialSettings", id=3, applicationId=APP, password=PASSWORD)
    assert ok(d, "GetCredential", id=3)["applicationId"] is None
    assert [c["hasSecret"] for c in ok(d, "GetCredentials")] == [False, False, False]
    assert credential_count(d) == 3


# ---------------------------------------------------------------------------
# the certificate


def openssl(*args, input=None):
    cp = subprocess.run(["openssl"] + list(args), input=input, capture_output=True, timeout=60)
    assert cp.returncode == 0, cp.stderr.decode(errors="replace")
    return cp.stdout.decode()


def test_new_certificate_verified_with_openssl(d, tmp_path):
    cid = ok(d, "CreateCredential", type="Office365_Modern", description="m365", tenantId=TENANT,
             applicationId=APP)["id"]
    e, output = call(d, "SetCredentialSettings", id=cid, createNewCertificate=True)
    assert e["statusCode"] == "succeeded", e
    c = e["result"]
    assert c["hasSecret"] is True and c["tenantId"] == TENANT
    cert = c["certificate"]
    assert set(cert) == {"pem", "thumbprint", "subject", "notBefore", "notAfter"}
    assert cert["thumbprint"] in e["logOutput"] and "upload it to the app registration" in e["logOutput"]
    pem_file = tmp_path / "cert.pem"
    pem_file.write_text(cert["pem"])

    # openssl's reading of it
    fingerprint = openssl("x509", "-in", str(pem_file), "-noout", "-fingerprint", "-sha1")
    assert fingerprint.strip().split("=", 1)[1].replace(":", "") == cert["thumbprint"]
    assert "CN = mailvault credential %d" % cid in openssl("x509", "-in", str(pem_file), "-noout", "-subject")
    assert cert["subject"] == "CN=mailvault credential %d" % cid
    text = openssl("x509", "-in", str(pem_file), "-noout", "-text")
    assert "Public-Key: (2048 bit)" in text and "rsaEncryption" in text
    assert "sha256WithRSAEncryption" in text
    assert "TLS Web Client Authentication" in text
    assert "CA:FALSE" in text
    # self-signed: it verifies against itself
    assert "OK" in openssl("verify", "-CAfile", str(pem_file), "-check_ss_sig", "-partial_chain", str(pem_file))
    dates = dict(line.split("=", 1) for line in openssl("x509", "-in", str(pem_file), "-noout", "-dates").split("\n")
                 if "=" in line)
    import datetime
    fmt = "%b %d %H:%M:%S %Y %Z"
    nb = datetime.datetime.strptime(re.sub(r"\s+", " ", dates["notBefore"]), fmt)
    na = datetime.datetime.strptime(re.sub(r"\s+", " ", dates["notAfter"]), fmt)
    assert nb.strftime("%Y-%m-%dT%H:%M:%SZ") == cert["notBefore"]
    assert na.strftime("%Y-%m-%dT%H:%M:%SZ") == cert["notAfter"]
    assert (na - nb).days == 730

    # the private key kept for it is the certificate's: same modulus
    key = stored_secret(d, cid)
    assert key.startswith("-----BEGIN PRIVATE KEY-----\n")
    assert openssl("rsa", "-noout", "-modulus", input=key.encode()) == \
        openssl("x509", "-in", str(pem_file), "-noout", "-modulus")
    # and nowhere in an answer, the output, or master.sqlite in clear
    assert "PRIVATE KEY" not in output.decode() and "PRIVATE KEY" not in json.dumps(ok(d, "GetCredentials"))
    raw = files_of_master_db(d)
    assert b"PRIVATE KEY" not in raw
    for line in key_body(key):
        assert line not in raw and line.decode() not in json.dumps(ok(d, "GetCredentials"))

    # another certificate: another key and thumbprint, the previous key gone
    again = ok(d, "SetCredentialSettings", id=cid, createNewCertificate=True)["certificate"]
    assert again["thumbprint"] != cert["thumbprint"] and again["pem"] != cert["pem"]
    assert stored_secret(d, cid) != key
    assert ok(d, "GetCredential", id=cid)["certificate"] == again


# ---------------------------------------------------------------------------
# secrets: never shown, never logged, never stored in clear


def test_secrets_in_no_answer_log_or_file(d):
    o365, pw, cs, _ = make_three(d)
    key = stored_secret(d, o365)
    secrets = [PASSWORD, CLIENT_SECRET] + [line.decode() for line in key_body(key)]
    # a refused call that carries a secret
    e, out = call(d, "CreateCredential", type="Office365_Modern", description="wrong", password=PASSWORD)
    assert e["statusCode"] == "failed" and PASSWORD not in out.decode()
    e, out = call(d, "SetCredentialSettings", id=pw, password=PASSWORD + "-next")
    assert e["statusCode"] == "succeeded" and PASSWORD not in out.decode()

    answers = json.dumps([ok(d, "GetCredentials")] + [ok(d, "GetCredential", id=i) for i in (o365, pw, cs)])
    log = ok(d, "GetAuditLog", limit=0)
    log_text = json.dumps(log)
    raw = files_of_master_db(d)
    for s in secrets + [PASSWORD + "-next"]:
        assert s not in answers, s
        assert s not in log_text, s
        assert s.encode() not in raw, s
    # what is not secret is there in clear, so the scan can see a value
    assert b"journal@example.com" in raw and APP.encode() in raw

    # the audit log has every change, the secrets "(hidden)"
    details = [json.loads(x["details"]) for x in log if x["details"].startswith("{")]
    creates = [x for x in details if x.get("function") == "CreateCredential"]
    assert len(creates) == 4, creates
    assert creates[1]["args"]["password"] == "(hidden)" and creates[1]["args"]["userName"] == "journal@example.com"
    assert creates[1]["note"] == "credential %d created" % pw
    assert creates[2]["args"]["clientSecret"] == "(hidden)"
    assert "does not apply" in creates[3]["error"] and creates[3]["args"]["password"] == "(hidden)"
    settings = [x for x in details if x.get("function") == "SetCredentialSettings"]
    assert any("new certificate, thumbprint" in s.get("note", "") for s in settings)
    assert any(s.get("note") == "credential %d: its secret was replaced" % pw and s["args"]["password"] == "(hidden)"
               for s in settings)
    assert ok(d, "VerifyAuditLog")["intact"] is True


# ---------------------------------------------------------------------------
# deletion while a profile uses the credential


def test_delete_refused_while_a_profile_uses_it(d):
    cid = ok(d, "CreateCredential", type="Password", description="used", password=PASSWORD)["id"]
    with master_db(d) as db:
        db.execute("INSERT INTO profile_credentials(profile_id, profile_name, credential_id) VALUES (5, ?, ?)",
                   ("Journal import", cid))
    message = refused(d, "DeleteCredential", id=cid)
    assert message == "DeleteCredential: credential %d is used by profile 'Journal import': change or delete " \
                      "that first" % cid
    assert ok(d, "GetCredential", id=cid)["hasSecret"] is True
    log = ok(d, "GetAuditLog", limit=0)
    assert "is used by profile 'Journal import'" in log[-1]["details"] and log[-1]["success"] is False
    with master_db(d) as db:
        db.execute("DELETE FROM profile_credentials WHERE credential_id=?", (cid,))
    assert ok(d, "DeleteCredential", id=cid) is None
    assert "does not exist" in refused(d, "GetCredential", id=cid)
    assert "(Password, 'used') deleted" in ok(d, "GetAuditLog", limit=0)[-2]["details"]   # then the failed read
    with master_db(d) as db:
        assert db.execute("SELECT count(*) FROM credentials").fetchone()[0] == 0


# ---------------------------------------------------------------------------
# RenewMasterKey


def test_renew_master_key_keeps_secrets(d):
    o365, pw, cs, cert = make_three(d)
    key_pem = stored_secret(d, o365)
    old_master = master_key(d)
    before = {i: row(d, i)["key_master"] for i in (o365, pw, cs)}
    ok(d, "RenewMasterKey")
    assert master_key(d) != old_master
    for i in (o365, pw, cs):
        r = row(d, i)
        assert r["key_master"] != before[i] and r["key_master_next"] is None
        with pytest.raises(Exception):
            aead_open(old_master, r["key_master"], None)   # rewrapped, not left for the old key
    assert stored_secret(d, pw) == PASSWORD
    assert stored_secret(d, cs) == CLIENT_SECRET
    assert stored_secret(d, o365) == key_pem
    ok(d, "RenewMasterKey")
    assert stored_secret(d, pw) == PASSWORD
    # the credentials work on as before
    assert ok(d, "GetCredential", id=o365)["certificate"] == cert
    ok(d, "SetCredentialSettings", id=pw, password="After-Renewal-Pw-1")
    assert stored_secret(d, pw) == "After-Renewal-Pw-1"


@pytest.mark.parametrize("step", [1, 2, 3, 4])
def test_renew_master_key_cut_short_at_every_step(d, step):
    _, pw, cs, _ = make_three(d)
    old_master = master_key(d)
    env = dict(os.environ, MAILVAULT_FAULT="renew-master-key:%d" % step)
    cp = mv("cmd", "RenewMasterKey", data_dir=d, env=env, check=FAULT_EXIT)
    assert cp.returncode == FAULT_EXIT
    assert (master_key(d) == old_master) == (step <= 2)
    # the next open settles it: no leftovers, every secret opens with master.key as it is
    assert [c["hasSecret"] for c in ok(d, "GetCredentials")] == [True, True, True]
    for i in (pw, cs):
        assert row(d, i)["key_master_next"] is None
    assert stored_secret(d, pw) == PASSWORD
    assert stored_secret(d, cs) == CLIENT_SECRET
    ok(d, "RenewMasterKey")
    assert stored_secret(d, pw) == PASSWORD


# ---------------------------------------------------------------------------
# an instance made before credentials existed


def test_instance_made_before_credentials(tmp_path):
    d = tmp_path / "v1"
    shutil.copytree(os.path.join(REPO_ROOT, "tests", "fixtures", "store-v1", "data"), str(d))
    with master_db(d) as db:
        assert db.execute("SELECT count(*) FROM sqlite_master WHERE name='credentials'").fetchone()[0] == 0
    cid = ok(d, "CreateCredential", type="Password", description="old instance", password=PASSWORD)["id"]
    assert stored_secret(d, cid) == PASSWORD
    ok(d, "RenewMasterKey")
    assert stored_secret(d, cid) == PASSWORD


# ---------------------------------------------------------------------------
# over HTTPS: admin only, and nothing secret in what the server says or writes


def invoke(srv, function, user="admin", pw=None, **fields):
    """(HTTP status, envelope); every keyword a form field (password too)."""
    fields = {k: (("true" if v else "false") if isinstance(v, bool) else str(v)) for k, v in fields.items()}
    return srv.request("/api/invoke/" + function, fields, user=user, password=pw)


def test_over_https_admin_only(tmp_path):
    d = str(tmp_path / "data")
    admin_pw = init_with_admin(d)
    with MvServer(d, password=admin_pw) as srv:
        status, e = invoke(srv, "CreateCredential", type="OAuthClientSecret", description="graph", tenantId=TENANT,
                           applicationId=APP, clientSecret=CLIENT_SECRET)
        assert status == 200 and e["statusCode"] == "succeeded", e
        cid = e["result"]["id"]
        status, e = invoke(srv, "CreateUser", userName="clerk", privileges="login", loginPrivileges="api",
                           password="Clerk-Password-8812")
        assert status == 200 and e["statusCode"] == "succeeded", e
        for function, args in [("GetCredentials", {}), ("GetCredential", {"id": cid}),
                               ("CreateCredential", {"type": "Password", "description": "mine", "password": "x1"}),
                               ("SetCredentialSettings", {"id": cid, "clientSecret": "stolen-1"}),
                               ("SetCredentialDescription", {"id": cid, "description": "mine"}),
                               ("DeleteCredential", {"id": cid})]:
            status, e = invoke(srv, function, user="clerk", pw="Clerk-Password-8812", **args)
            assert status == 403 and "needs the admin privilege" in e["error"]["message"], (function, status, e)
        status, e = invoke(srv, "GetCredentials")
        assert status == 200 and [c["description"] for c in e["result"]] == ["graph"], e
        answers = json.dumps(e)
        status, e = invoke(srv, "GetAuditLog", limit=0)
        assert status == 200, e
        log = json.dumps(e["result"])
        denied = [x for x in e["result"] if x["event"] == "AccessDenied" and x["user"] == "clerk"]
        assert len(denied) == 6, denied
        for secret in (CLIENT_SECRET, "stolen-1"):
            assert secret not in answers and secret not in log
    assert stored_secret(d, cid) == CLIENT_SECRET
    server_output = srv.stdout() + srv.stderr()
    assert CLIENT_SECRET not in server_output and "stolen-1" not in server_output
    assert CLIENT_SECRET.encode() not in files_of_master_db(d)
