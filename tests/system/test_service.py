"""The service around the API: safe mode, status retention, the certificate
functions' refusals, the configuration file's refusals at start.

The protocol, functions, reloads and restarts are in test_api.py; users,
privileges and the audit log in test_privileges.py."""

import json
import os
import subprocess
import time

import pytest

from mvserver import MvServer, free_port, init_with_admin
from mvtest import MAILVAULT_BIN, check_no_crash


@pytest.fixture
def instance(tmp_path):
    d = tmp_path / "data"
    return d, init_with_admin(d)


def test_safe_mode_is_shown_and_not_saved(instance):
    d, pw = instance
    with MvServer(d, password=pw, extra_args=["--safe-mode"]) as srv:
        assert "in safe mode" in srv.stdout()
        cfg = srv.ok("GetServiceConfiguration")
        assert cfg["safeMode"] is True and cfg["running"] is True
    with MvServer(d, password=pw) as srv:
        assert srv.ok("GetServiceConfiguration")["safeMode"] is False


def test_finished_status_expires(instance):
    d, pw = instance
    with MvServer(d, password=pw) as srv:
        pass  # writes the configuration file with defaults
    conf = os.path.join(str(d), "mailvault.conf")
    text = open(conf).read().replace("status_retention_seconds=600", "status_retention_seconds=10")
    assert "status_retention_seconds=10" in text
    open(conf, "w").write(text)
    with MvServer(d, password=pw) as srv:
        status, env = srv.invoke("VerifyStore", id=1)
        assert status == 200 and env["statusCode"] == "running", env
        token = env["token"]
        final = srv.call("VerifyStore", id=1)          # a second run, followed to its end
        assert final["statusCode"] == "succeeded", final
        # The first one is done by now and still retrievable ...
        status, env = srv.request("/api/get-status", {"token": token, "lastKnownStatusVersion": 0,
                                                      "millisecondsTimeout": 0})
        assert status == 200 and env["statusCode"] == "succeeded", env
        assert env["token"] == token
        # ... until its retention has passed (expiry runs on the next call).
        time.sleep(12)
        srv.invoke("VerifyStore", id=1)
        status, env = srv.request("/api/get-status", {"token": token, "lastKnownStatusVersion": 0,
                                                      "millisecondsTimeout": 0})
        assert status == 404, (status, env)
        assert "unknown or expired token" in env["error"]["message"]


def test_certificate_refusals_change_nothing(instance, tmp_path):
    d, pw = instance
    with MvServer(d, password=pw) as srv:
        before = srv.ok("GetServiceConfiguration")
        text = json.dumps(before)
        assert "PRIVATE KEY" not in text and "BEGIN" not in text
        assert len(before["certificate"]["thumbprint"]) == 40
        env = srv.call("SetServiceCertificate", thumbprint="00" * 20)
        assert env["statusCode"] == "failed", env
        env = srv.call("SetServiceCertificate", thumbprint="not-hex")
        assert env["statusCode"] == "failed" and "not-hex" in env["error"]["message"], env
        env = srv.call("SetServiceCertificate")
        assert env["statusCode"] == "failed" and "thumbprint" in env["error"]["message"], env
        # A key that is not the certificate's.
        other = tmp_path / "other"
        other.mkdir()
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", str(other / "o.key"), "-out", str(other / "o.crt"), "-days", "2",
                        "-subj", "/CN=localhost"], check=True, capture_output=True)
        env = srv.call("SetServiceCertificate", certificatePath=before["certificate"]["path"],
                       keyPath=str(other / "o.key"))
        assert env["statusCode"] == "failed", env
        assert "o.key" in env["error"]["message"] or "belong" in env["error"]["message"], env
        # Issue 19.10: a pair that matches, but whose key others may read.
        pair = tmp_path / "pair"
        pair.mkdir()
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", str(pair / "p.key"), "-out", str(pair / "p.crt"), "-days", "2",
                        "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       check=True, capture_output=True)
        for mode in (0o644, 0o640):
            os.chmod(pair / "p.key", mode)
            env = srv.call("SetServiceCertificate", certificatePath=str(pair / "p.crt"), keyPath=str(pair / "p.key"))
            assert env["statusCode"] == "failed", env
            assert "p.key" in env["error"]["message"] and "chmod 600" in env["error"]["message"], env
        after = srv.ok("GetServiceConfiguration")
        assert after["certificate"]["thumbprint"] == before["certificate"]["thumbprint"]
        # (the same pair with the key 0600 is taken: test_api's certificate switch)
        # Still served and trusted.
        assert srv.ok("GetServerInfo")["product"] == "mailvault"


def test_broken_configuration_refused_at_start(instance):
    d, pw = instance
    conf = os.path.join(str(d), "mailvault.conf")
    open(conf, "w").write("[service]\nsafe_mode=yes please\n")
    cp = subprocess.run([MAILVAULT_BIN, "--data-dir", str(d), "serve", "--listen", "127.0.0.1:%d" % free_port()],
                        capture_output=True, timeout=60)
    check_no_crash(cp)
    assert cp.returncode == 1
    err = cp.stderr.decode()
    assert "mailvault.conf" in err and "safe_mode" in err and "true or false" in err, err
    # Nothing was left holding the directory.
    assert not os.path.exists(os.path.join(str(d), "certs"))


def write_messages(directory, n):
    os.makedirs(directory, exist_ok=True)
    for i in range(n):
        with open(os.path.join(directory, "m%03d.eml" % i), "w") as f:
            f.write("From: a%d@example.com\r\nTo: b@example.com\r\nSubject: activity %d\r\n"
                    "Date: Mon, 1 Jan 2024 10:%02d:00 +0000\r\nMessage-ID: <act%d@example.com>\r\n\r\n"
                    "body %d\r\n" % (i, i, i, i, i))


def test_user_activities_logged_as_configured(instance, tmp_path):
    """What changes or removes archived mail is audited whoever does it; a
    user's reading (a search, a message view) is a user activity, audited
    only when logSuccessfulUserActivities lists it — an administrator's
    reading too."""
    d, pw = instance
    write_messages(str(tmp_path / "mail"), 4)
    subprocess.run([MAILVAULT_BIN, "--data-dir", str(d), "import", str(tmp_path / "mail"), "--archive", "carol",
                    "--folder", "Inbox", "-q"], check=True, capture_output=True, timeout=120)
    with MvServer(d, password=pw) as srv:
        srv.ok("CreateUser", userName="carol", privileges="login", loginPrivileges="api")
        srv.request("/api/invoke/SetUserPassword", {"userName": "carol", "password": "Carol-pw-2026"})
        srv.ok("SetUserPrivilegesOnFolder", userName="carol", folder="carol", privileges="read,delete")
        ids = [m["id"] for m in srv.ok("GetMessages", folder="carol/Inbox")]
        assert len(ids) == 4

        def events(name):
            log = srv.ok("GetAuditLog")
            return [e["user"] for e in log if e["event"] == name and e["success"]]

        srv.ok("DeleteMessage", user="carol", password="Carol-pw-2026", id=ids[0], reason="user cleanup")
        assert events("MessageDelete") == ["carol"], "a user's deletion must be audited whatever the settings"
        srv.ok("SearchMessages", user="carol", password="Carol-pw-2026", query="subject:activity")
        srv.ok("GetMessage", user="carol", password="Carol-pw-2026", id=ids[1])
        srv.ok("SearchMessages", query="subject:activity")
        assert events("MessageSearch") == [] and events("MessageRetrieveContent") == [], \
            "reading was logged though not configured"
        cfg = srv.ok("GetComplianceConfiguration")
        cfg["logSuccessfulUserActivities"] = ["MessageSearch", "MessageRetrieveContent"]
        srv.ok("SetComplianceConfiguration", config=json.dumps(cfg))
        srv.ok("SearchMessages", user="carol", password="Carol-pw-2026", query="subject:activity")
        srv.ok("GetMessage", user="carol", password="Carol-pw-2026", id=ids[1])
        srv.ok("SearchMessages", query="subject:activity")
        assert events("MessageSearch") == ["carol", "admin"]
        assert events("MessageRetrieveContent") == ["carol"]
        srv.ok("DeleteMessage", id=ids[2], reason="admin cleanup")
        assert events("MessageDelete") == ["carol", "admin"]
