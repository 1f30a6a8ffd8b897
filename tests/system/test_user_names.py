"""User names beyond ASCII against a real `mailvault serve` over HTTPS: a
user created as "Jürgen" logs on (HTTP Basic, UTF-8 credentials) as
"JÜRGEN", "jürgen" or a decomposed "Ju\u0308rgen", as uniqueness already
treats those as the same name; ASCII case-insensitivity stays as it was."""

import unicodedata

import pytest

from mvserver import MvServer, init_with_admin

JUERGEN = "J\u00fcrgen"
PASSWORD = "J\u00fcrgens-Pw-4711"


def ok(srv, function, **args):
    """invoke as admin, must succeed; passes `password` as a form field
    (MvServer.ok would take it for the caller's own password)."""
    status, env = srv.invoke(function, **args)
    assert status == 200 and env["statusCode"] == "succeeded" and env["error"] is None, (function, status, env)
    return env["result"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    d = tmp_path_factory.mktemp("usernames") / "data"
    srv = MvServer(d, password=init_with_admin(d)).start()
    yield srv
    srv.stop()


def test_logon_with_other_case_beyond_ascii(server):
    status, env = server.request("/api/invoke/CreateUser", {
        "userName": JUERGEN, "privileges": "admin,login", "loginPrivileges": "api", "password": PASSWORD})
    assert status == 200 and env["statusCode"] == "succeeded", env

    nfd = unicodedata.normalize("NFD", JUERGEN)
    assert nfd != JUERGEN
    for asked in ["J\u00dcRGEN", "j\u00fcrgen", nfd, JUERGEN]:
        status, body = server.request("/api/get-metadata", {}, user=asked, password=PASSWORD)
        assert status == 200, (asked, status, body)
        # an admin function as that spelling: the caller is the stored user
        info = ok(server, "GetUserInfo", userName=asked)
        assert info["userName"] == JUERGEN, info
        status, env = server.invoke("GetUsers", user=asked, password=PASSWORD)
        assert status == 200 and env["statusCode"] == "succeeded", (asked, status, env)

    status, _ = server.request("/api/get-metadata", {}, user="J\u00dcRGEN", password=PASSWORD.lower())
    assert status == 401
    status, _ = server.request("/api/get-metadata", {}, user="JURGEN", password=PASSWORD)
    assert status == 401

    # uniqueness agrees with the logon: another spelling is the same user
    status, env = server.invoke("CreateUser", userName="J\u00dcRGEN", privileges="login")
    assert status == 200 and env["statusCode"] == "failed" and "already exists" in env["error"]["message"], env

    # ASCII as before
    status, _ = server.request("/api/get-metadata", {}, user="ADMIN")
    assert status == 200
