"""`mailvault import` while a server runs on the data directory (issue 11):
the import no longer refuses the directory but asks the server to run a
temporary FileSystem profile (RunTemporaryProfile over HTTPS), shows the
server's progress and ends with the local import's summary and exit status.

What is checked, against one real `mailvault serve` for the module:
- a corpus subset given as a relative path is archived whole: the SHA-256
  of every archived message (`show --sha256`, read beside the server) is
  exactly the set SHA256SUMS lists for the subset's files, and the summary
  says so; progress lines appear on stderr; `mailvault search` and the
  API's SearchMessages answer while the import runs;
- a second run counts every message as already archived and adds nothing;
- --folder, --no-subfolders and --ext reach the connector (only what they
  select is archived, where they say);
- a path the server cannot read fails naming it; an option the connector
  cannot express fails naming the option, before asking the server;
- a wrong password fails with the server's answer; Ctrl-C cancels the
  server's run (cancel-async) and says the import was interrupted;
- without a server the same command imports locally.

The expected messages come from the corpus's SHA256SUMS, not from the
import's own counts."""

import json
import os
import signal
import subprocess
import threading
import time

import pytest

from mvserver import MvServer, init_with_admin
from mvtest import MAILVAULT_BIN, check_no_crash, init_data_dir, mv, parse_json

SUBSET = 2000
SEED = 11


def run_import(data_dir, *args, password=None, cwd=None, timeout=600):
    """`mailvault --data-dir D import ARGS` with the admin password in the
    environment; returns the CompletedProcess (bytes)."""
    env = dict(os.environ)
    env.pop("MAILVAULT_PASSWORD", None)
    if password is not None:
        env["MAILVAULT_PASSWORD"] = password
    cp = subprocess.run([MAILVAULT_BIN, "--data-dir", str(data_dir), "import"] + [str(a) for a in args],
                        capture_output=True, timeout=timeout, env=env, cwd=cwd, stdin=subprocess.DEVNULL)
    check_no_crash(cp)
    return cp


def text(b):
    return b.decode("utf-8", "replace")


def folders_of(data_dir, archive):
    """`mailvault folders ARCHIVE --json`, read beside the server."""
    return parse_json(mv("folders", archive, "--json", data_dir=data_dir))


def archived_hashes(data_dir, server, archive):
    """sha256 of every message in the archive: ids from the server's
    GetMessages per folder, bytes from `show --sha256` beside the server."""
    ids = []
    for f in folders_of(data_dir, archive):
        path = archive + ("/" + f["folder"] if f["folder"] else "")
        ids += [m["id"] for m in server.ok("GetMessages", folder=path)]
    if not ids:
        return []
    cp = mv("show", "--sha256", *ids, data_dir=data_dir, timeout=300)
    return [line.split()[0] for line in text(cp.stdout).splitlines()]


@pytest.fixture(scope="module")
def served(corpus, tmp_path_factory):
    base = tmp_path_factory.mktemp("via_server")
    d = str(base / "data")
    password = init_with_admin(d)
    sample = corpus.sample_eml(SUBSET, SEED, str(base / "subset"))
    with MvServer(d, password=password) as s:
        yield {"server": s, "data": d, "base": str(base), "password": password,
               "sums": sorted(digest for digest, _, _ in sample)}


def test_import_goes_through_the_server_while_searches_go_on(served):
    s, d, base, pw = served["server"], served["data"], served["base"], served["password"]
    stop = threading.Event()
    cli_searches, api_searches, errors = [], [], []
    done_during = []

    def search_loop(proc_alive):
        while not stop.is_set():
            cp = mv("search", "size:>0", "--archive", "corpus", "--json", "--limit", "0", data_dir=d, check=False)
            if cp.returncode != 0:
                errors.append(("cli", cp.returncode, text(cp.stderr)))
                return
            cli_searches.append(len(json.loads(cp.stdout)))
            # No archive: it does not exist until the import's first batch.
            env = s.call("SearchMessages", query="size:>0", limit=10000)
            if env["statusCode"] != "succeeded":
                errors.append(("api", env))
                return
            api_searches.append(len(env["result"]))
            if proc_alive():
                done_during.append(1)

    proc = None
    t = threading.Thread(target=search_loop, args=(lambda: proc is not None and proc.poll() is None,))
    env = dict(os.environ, MAILVAULT_PASSWORD=pw)
    t.start()
    try:
        # A relative path: the client makes it absolute for the server.
        proc = subprocess.Popen([MAILVAULT_BIN, "--data-dir", d, "import", "subset", "--archive", "corpus"],
                                cwd=base, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL)
        out, err = proc.communicate(timeout=600)
        # a few more searches after the import ended
        time.sleep(0.5)
    finally:
        stop.set()
        t.join()
    cp = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    check_no_crash(cp)
    assert proc.returncode == 0, text(err)
    assert "held by a running server (pid %d, %s): importing through it as admin" % (s.proc.pid, s.url) \
        in text(err), text(err)
    assert "progress:" in text(err), text(err)
    line = text(out).splitlines()[0]
    assert line.startswith("imported %d, already archived 0, archived but malformed " % SUBSET), text(out)
    assert ", refused 0 (" in line, text(out)
    # Independently of the summary: exactly the subset's bytes are archived.
    assert sorted(archived_hashes(d, s, "corpus")) == served["sums"]
    assert not errors, errors
    assert cli_searches and api_searches and done_during, (cli_searches, api_searches)
    assert all(0 <= n <= SUBSET for n in cli_searches + api_searches), (cli_searches, api_searches)
    assert cli_searches[-1] == SUBSET and api_searches[-1] == SUBSET
    # The worker result names the temporary profile and the user.
    rows = s.ok("GetWorkerResults", fromIncluding="2000-01-01T00:00:00", toExcluding="2100-01-01T00:00:00",
                timeZoneID="UTC")
    names = [r["profileName"] for r in rows]
    assert "mailvault import %s" % os.path.join(base, "subset") in names, rows


def test_second_run_reports_everything_already_archived(served):
    s, d, base, pw = served["server"], served["data"], served["base"], served["password"]
    pwfile = os.path.join(base, "pw")
    with open(pwfile, "w") as f:
        f.write(pw + "\n")
    cp = run_import(d, os.path.join(base, "subset"), "--archive", "corpus", "--json", "--password-file", pwfile)
    assert cp.returncode == 0, text(cp.stderr)
    summary = parse_json(cp)
    assert (summary["imported"], summary["duplicates"], summary["refused"]) == (0, SUBSET, 0), summary
    assert summary["refusals"] == [] and summary["server"] == s.url, summary
    assert sorted(archived_hashes(d, s, "corpus")) == served["sums"]


def test_folder_subfolders_and_extensions_reach_the_connector(served):
    s, d, base, pw = served["server"], served["data"], served["base"], served["password"]
    src = os.path.join(base, "mixed")
    os.makedirs(os.path.join(src, "sub"))
    for name, word in (("a.eml", "alpha"), ("b.txt", "beta"), ("sub/c.txt", "gamma")):
        with open(os.path.join(src, name), "wb") as f:
            f.write(b"From: x@example.org\r\nSubject: %s\r\nMessage-ID: <%s@example.org>\r\n\r\n%s\r\n"
                    % (word.encode(), word.encode(), word.encode()))
    cp = run_import(d, src, "--archive", "mixed", "--folder", "Old", "--ext", "txt", "--no-subfolders",
                    password=pw)
    assert cp.returncode == 0, text(cp.stderr)
    assert text(cp.stdout).startswith("imported 1, already archived 0,"), text(cp.stdout)
    folders = [(f["folder"], f["count"]) for f in folders_of(d, "mixed")]
    assert folders == [("Old", 1)], folders
    hits = s.ok("SearchMessages", query="subject:beta", archive="mixed", limit=10)
    assert len(hits) == 1


def test_unreadable_path_fails_naming_it(served, tmp_path):
    d, pw = served["data"], served["password"]
    missing = str(tmp_path / "no-such-dir")
    cp = run_import(d, missing, "--archive", "corpus", password=pw)
    assert cp.returncode == 1, text(cp.stderr)
    assert missing in text(cp.stderr), text(cp.stderr)
    if os.geteuid() != 0:
        closed = tmp_path / "closed"
        closed.mkdir()
        (closed / "m.eml").write_bytes(b"Subject: x\r\n\r\nx\r\n")
        closed.chmod(0)
        try:
            cp = run_import(d, closed, "--archive", "corpus", password=pw)
        finally:
            closed.chmod(0o755)
        assert cp.returncode == 1 and str(closed) in text(cp.stderr), text(cp.stderr)


@pytest.mark.parametrize("option, value", [("--format", "mboxo"), ("--format", "pst"),
                                           ("--read-mailstore-headers", None), ("--verify-signature", None)])
def test_an_option_the_connector_cannot_express_is_refused(served, option, value):
    d, base = served["data"], served["base"]
    args = [os.path.join(base, "subset"), "--archive", "corpus", option] + ([value] if value else [])
    if option == "--verify-signature":
        args.remove("--archive")
        args.remove("corpus")
    # No password given: the refusal comes before the server is asked.
    cp = run_import(d, *args)
    assert cp.returncode == 2, text(cp.stderr)
    named = option + (" " + value if value else "")
    assert named in text(cp.stderr), text(cp.stderr)
    assert "password" not in text(cp.stderr), text(cp.stderr)


def test_wrong_password_fails(served):
    cp = run_import(served["data"], os.path.join(served["base"], "subset"), "--archive", "corpus",
                    password="not-the-password")
    assert cp.returncode == 1
    assert "wrong user name or password" in text(cp.stderr), text(cp.stderr)


def test_ctrl_c_cancels_the_servers_run(served, corpus):
    s, d, pw = served["server"], served["data"], served["password"]
    proc = subprocess.Popen([MAILVAULT_BIN, "--data-dir", d, "import", corpus.eml_dir, "--archive", "cut"],
                            env=dict(os.environ, MAILVAULT_PASSWORD=pw), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    # The first progress line means the server's run has started.
    seen = b""
    while b"progress:" not in seen:
        chunk = proc.stderr.readline()
        assert chunk, "import ended before any progress: %r" % seen
        seen += chunk
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    err = seen + err
    check_no_crash(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    assert proc.returncode == 1, (out, err)
    assert "asking the server to cancel" in text(err) and "interrupted" in text(err), text(err)
    first = text(out).splitlines()[0]
    assert first.startswith("imported "), text(out)
    cut = int(first.split()[1].rstrip(","))
    eml_messages = sum(1 for rel in corpus.sums if rel.startswith("eml/"))
    assert cut < eml_messages, first
    rows = s.ok("GetWorkerResults", fromIncluding="2000-01-01T00:00:00", toExcluding="2100-01-01T00:00:00",
                timeZoneID="UTC")
    assert any(r["profileName"] == "mailvault import %s" % corpus.eml_dir and r["result"] == "cancelled"
               for r in rows), rows


def test_without_a_server_the_import_is_local(corpus, tmp_path):
    d = init_data_dir(tmp_path / "data")
    sample = corpus.sample_eml(40, SEED + 1, str(tmp_path / "few"))
    cp = run_import(d, tmp_path / "few", "--archive", "local", "--json")
    assert cp.returncode == 0, text(cp.stderr)
    assert "through the server" not in text(cp.stderr)
    summary = parse_json(cp)
    assert summary["imported"] == 40 and "server" not in summary, summary
    hits = json.loads(mv("search", "size:>0", "--archive", "local", "--json", "--limit", "0", data_dir=d).stdout)
    cp = mv("show", "--sha256", *[h["id"] for h in hits], data_dir=d)
    assert sorted(line.split()[0] for line in text(cp.stdout).splitlines()) == sorted(x[0] for x in sample)
