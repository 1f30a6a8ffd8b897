"""The management shell: `mailvault cmd` (one function per process) and
`mailvault shell` (one function per line, from a pipe or a terminal).  Both
go through the command registry and print the JSON envelope of design.md
section 9, so scripts can rely on its exact fields and on the exit status."""

import errno
import fcntl
import json
import os
import pty
import select
import subprocess
import termios
import time

import pytest

from mvtest import MAILVAULT_BIN, T_SHORT, check_no_crash, mv, parse_json

ENVELOPE_FIELDS = {"error", "token", "statusVersion", "statusCode", "percentProgress",
                   "statusText", "result", "logOutput"}


def envelopes(stdout):
    """Every JSON document of a stream of them, in order; fails if anything
    else is on stdout."""
    text = stdout.decode("utf-8")
    decoder = json.JSONDecoder()
    docs, pos = [], 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos == len(text):
            return docs
        doc, pos = decoder.raw_decode(text, pos)
        docs.append(doc)


def check_envelope(env, status):
    assert set(env) == ENVELOPE_FIELDS, env
    assert env["statusCode"] == status, env
    if status == "succeeded":
        assert env["error"] is None, env
    else:
        assert isinstance(env["error"], dict) and isinstance(env["error"]["message"], str), env
        assert env["result"] is None, env
    return env


def error_message(env):
    check_envelope(env, "failed")
    return env["error"]["message"]


def shell(data_dir, script, check=(0, 1)):
    """`mailvault shell` with the script on stdin (a pipe, not a terminal)."""
    return mv("shell", data_dir=data_dir, input=script.encode("utf-8"), check=check)


# ---- mailvault cmd ------------------------------------------------------------------

def test_cmd_list_json_is_metadata():
    # No instance is needed to list functions.
    meta = parse_json(mv("cmd", "--list", "--json"))
    assert isinstance(meta, list) and meta
    names = [f["name"] for f in meta]
    assert names == sorted(names) and len(names) == len(set(names)), names
    by_name = {f["name"]: f for f in meta}
    assert by_name["GetServerInfo"] == {"name": "GetServerInfo", "args": []}
    assert "GetTimeZones" in by_name
    for f in meta:
        assert set(f) == {"name", "args"}, f
        for arg in f["args"]:
            assert set(arg) == {"name", "type", "nullable"}, f
            assert arg["type"] in ("string", "number", "bool", "json"), f
            assert isinstance(arg["nullable"], bool), f


def test_cmd_get_server_info(data_dir):
    cp = mv("cmd", "GetServerInfo", data_dir=data_dir)
    env = check_envelope(parse_json(cp), "succeeded")
    assert env["token"] is None and env["percentProgress"] is None and env["statusText"] is None
    assert isinstance(env["statusVersion"], int)
    result = env["result"]
    assert result["product"] == "mailvault"
    assert result["version"] and result["machineName"]


def test_cmd_get_time_zones(data_dir):
    env = check_envelope(parse_json(mv("cmd", "GetTimeZones", data_dir=data_dir)), "succeeded")
    ids = [z["id"] for z in env["result"]]
    assert "$Local" in ids and "UTC" in ids, ids[:20]


def test_cmd_unknown_function(data_dir):
    cp = mv("cmd", "NoSuchFunction", data_dir=data_dir, check=2)
    assert "NoSuchFunction" in error_message(parse_json(cp))


def test_cmd_unknown_argument(data_dir):
    cp = mv("cmd", "GetTimeZones", "--foo=1", data_dir=data_dir, check=2)
    message = error_message(parse_json(cp))
    assert "GetTimeZones" in message and "unknown argument 'foo'" in message, message


def test_cmd_word_without_dashes(data_dir):
    cp = mv("cmd", "GetServerInfo", "foo", data_dir=data_dir, check=2)
    message = error_message(parse_json(cp))
    assert "expected --argument=value" in message and "foo" in message, message


def test_cmd_usage():
    cp = mv("cmd", check=2)
    assert b"usage: mailvault cmd" in cp.stderr
    assert mv("cmd", "--help").stdout.startswith(b"usage: mailvault cmd")


# ---- mailvault shell from a pipe --------------------------------------------------------

def test_shell_runs_lines_in_order(data_dir):
    cp = shell(data_dir, "GetServerInfo\n\n   \n# a comment\nGetTimeZones\nGetServerInfo\n", check=0)
    docs = envelopes(cp.stdout)   # nothing but envelopes on stdout
    assert len(docs) == 3, docs
    for env in docs:
        check_envelope(env, "succeeded")
    assert docs[0]["result"]["product"] == "mailvault"
    assert isinstance(docs[1]["result"], list)
    assert docs[2]["result"] == docs[0]["result"]
    assert b"mailvault>" not in cp.stdout and b"mailvault>" not in cp.stderr


def test_shell_same_envelope_as_cmd(data_dir):
    from_cmd = parse_json(mv("cmd", "GetTimeZones", "--foo=1", data_dir=data_dir, check=2))
    from_shell = envelopes(shell(data_dir, "GetTimeZones --foo=1\n", check=1).stdout)
    assert from_shell == [from_cmd]


def test_shell_exit_status_follows_last_function(data_dir):
    assert shell(data_dir, "NoSuchFunction\nGetServerInfo\n", check=0).returncode == 0
    cp = shell(data_dir, "GetServerInfo\nNoSuchFunction\n", check=1)
    docs = envelopes(cp.stdout)
    check_envelope(docs[0], "succeeded")
    assert "NoSuchFunction" in error_message(docs[1])
    shell(data_dir, "GetServerInfo\nGetTimeZones --foo=1\n", check=1)
    # Blank lines and comments after a failure do not hide it.
    shell(data_dir, "NoSuchFunction\n\n# done\n", check=1)
    shell(data_dir, "", check=0)


def test_shell_exit_and_quit_stop_reading(data_dir):
    for word in ("exit", "quit"):
        cp = shell(data_dir, "GetServerInfo\n%s\nNoSuchFunction\n" % word, check=0)
        assert len(envelopes(cp.stdout)) == 1


def test_shell_crlf_and_missing_final_newline(data_dir):
    cp = shell(data_dir, "GetServerInfo\r\nGetServerInfo", check=0)
    assert [e["statusCode"] for e in envelopes(cp.stdout)] == ["succeeded", "succeeded"]


def test_shell_quoting(data_dir):
    # One word each: the refusal names the argument, not a stray "Doe".
    for line in ('GetTimeZones --name="John Doe"', "GetTimeZones --name='John Doe'",
                 r"GetTimeZones --name=John\ Doe"):
        cp = shell(data_dir, line + "\n", check=1)
        message = error_message(envelopes(cp.stdout)[0])
        assert "unknown argument 'name'" in message, (line, message)
    # Without quotes "Doe" is a word of its own, which the syntax refuses.
    cp = shell(data_dir, "GetTimeZones --name=John Doe\n", check=1)
    message = error_message(envelopes(cp.stdout)[0])
    assert "expected --argument=value" in message and "Doe" in message, message


def test_shell_unterminated_quote(data_dir):
    cp = shell(data_dir, 'GetServerInfo --name="John\nGetServerInfo\n', check=0)
    docs = envelopes(cp.stdout)
    assert len(docs) == 2
    assert "cannot split the line" in error_message(docs[0])
    check_envelope(docs[1], "succeeded")
    shell(data_dir, 'GetServerInfo\nGetServerInfo --name="John\n', check=1)


def test_shell_nul_byte_refused(data_dir):
    cp = mv("shell", data_dir=data_dir, input=b"GetServerInfo\0 --x=1\nGetServerInfo\n", check=0)
    docs = envelopes(cp.stdout)
    assert "NUL" in error_message(docs[0])
    check_envelope(docs[1], "succeeded")


def test_shell_help(data_dir):
    cp = shell(data_dir, "help\n", check=0)
    out = cp.stdout.decode()
    meta = parse_json(mv("cmd", "--list", "--json"))
    for f in meta:
        assert f["name"] in out, f["name"]
    assert "version and machine name" in out   # GetServerInfo's summary

    cp = shell(data_dir, "help GetServerInfo\n", check=0)
    out = cp.stdout.decode()
    assert out.startswith("GetServerInfo: version and machine name"), out
    assert "privilege: admin" in out and "arguments: none" in out, out

    cp = shell(data_dir, "help NoSuchFunction\n", check=1)
    assert cp.stdout == b""
    assert b"NoSuchFunction" in cp.stderr


def test_shell_help_describes_arguments(data_dir):
    meta = parse_json(mv("cmd", "--list", "--json"))
    with_args = [f for f in meta if f["args"]]
    assert with_args, "no registry function with arguments in cmd --list --json"
    f = with_args[0]
    out = shell(data_dir, "help %s\n" % f["name"], check=0).stdout.decode()
    for arg in f["args"]:
        line = next((ln for ln in out.splitlines() if "--%s=%s" % (arg["name"], arg["type"]) in ln), None)
        assert line is not None, (arg, out)
        assert ("optional" if arg["nullable"] else "required") in line, (arg, line)


def test_shell_needs_an_instance(tmp_path):
    cp = mv("shell", data_dir=tmp_path / "none", input=b"GetServerInfo\n", check=1)
    assert cp.stdout == b""
    assert cp.stderr


def test_shell_usage(data_dir):
    cp = mv("shell", "extra", data_dir=data_dir, check=2)
    assert b"usage: mailvault shell" in cp.stderr
    assert b"Function --arg=value" in mv("shell", "--help").stdout


# ---- mailvault shell on a terminal -------------------------------------------------------

def _own_terminal():
    """In the child: a session of its own with the pseudo-terminal (stdin) as
    its controlling terminal, so that Ctrl-C typed there is a SIGINT."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """`mailvault shell` on a pseudo-terminal, read with a deadline."""

    def __init__(self, data_dir, history):
        self.master, slave = pty.openpty()
        env = dict(os.environ, MAILVAULT_HISTORY=str(history), TERM="dumb", INPUTRC="/dev/null")
        self.proc = subprocess.Popen([MAILVAULT_BIN, "--data-dir", str(data_dir), "shell"],
                                     stdin=slave, stdout=slave, stderr=subprocess.PIPE, env=env,
                                     close_fds=True, preexec_fn=_own_terminal)
        os.close(slave)
        self.seen = b""

    def read_until(self, marker, timeout=T_SHORT):
        deadline = time.monotonic() + timeout
        while marker not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no %r on the terminal; it shows:\n%r" % (marker, self.seen[-3000:]))
            ready, _, _ = select.select([self.master], [], [], left)
            if not ready:
                continue
            try:
                chunk = os.read(self.master, 65536)
            except OSError as e:
                if e.errno != errno.EIO:
                    raise
                chunk = b""
            if not chunk:
                raise AssertionError("terminal closed before %r:\n%r" % (marker, self.seen[-3000:]))
            self.seen += chunk
        at = self.seen.index(marker) + len(marker)
        before, self.seen = self.seen[:at], self.seen[at:]
        return before

    def send(self, data):
        os.write(self.master, data)

    def finish(self):
        try:
            _, err = self.proc.communicate(timeout=T_SHORT)
        finally:
            os.close(self.master)
        cp = subprocess.CompletedProcess(self.proc.args, self.proc.returncode, b"", err)
        check_no_crash(cp)
        return cp


def test_terminal_session(data_dir, tmp_path):
    history = tmp_path / "history"
    t = Terminal(data_dir, history)
    t.read_until(b"mailvault> ")
    t.send(b"GetServerInfo\r")
    t.read_until(b'"statusCode": "succeeded"')
    t.read_until(b"mailvault> ")
    # Tab completes a function name.
    t.send(b"GetServe\t\r")
    t.read_until(b'"machineName"')
    t.read_until(b"mailvault> ")
    # Ctrl-C at the prompt drops the typed line; the shell goes on.
    t.send(b"NoSuchFunction --x=1")
    t.read_until(b"--x=1")
    t.send(b"\x03")
    t.read_until(b"mailvault> ")
    t.send(b"help GetTimeZones\r")
    out = t.read_until(b"mailvault> ")
    assert b"GetTimeZones:" in out and b"NoSuchFunction" not in out, out
    # Tab completes argument names and allowed values (the completed line is
    # what the history file records).
    t.send(b"setstorereq\t--req\twr\t--i\t99\r")
    t.read_until(b'"statusCode": ')
    t.read_until(b"mailvault> ")
    # A secret never reaches the history file.
    t.send(b"GetServerInfo --password=hunter2\r")
    t.read_until(b"unknown argument 'password'")
    t.read_until(b"mailvault> ")
    t.send(b"exit\r")
    cp = t.finish()
    assert cp.returncode == 0, cp.stderr
    lines = history.read_text().splitlines()
    # The completed line ("GetServerInfo ") repeats the one before it.
    assert lines == ["GetServerInfo", "help GetTimeZones",
                     "SetStoreRequestedState --requestedState=writeProtected --id=99", "exit"], lines
    assert history.stat().st_mode & 0o077 == 0

    # The next session appends; Ctrl-D leaves.
    t = Terminal(data_dir, history)
    t.read_until(b"mailvault> ")
    t.send(b"GetTimeZones\r")
    t.read_until(b"mailvault> ")
    t.send(b"\x04")
    cp = t.finish()
    assert cp.returncode == 0, cp.stderr
    assert history.read_text().splitlines()[-1] == "GetTimeZones"


def test_shell_creates_and_runs_a_profile_and_a_job(data_dir, tmp_path):
    """The shell reaches profiles and jobs like any function: a profile
    created, run and listed, a job whose action runs it created and listed
    with its action exactly as typed (quotes and all, as the shell split it)."""
    src = tmp_path / "mail"
    src.mkdir()
    (src / "a.eml").write_bytes(b"From: a@example.org\r\nSubject: shelljob\r\nMessage-ID: <sj@x>\r\n\r\nbody\r\n")
    props = json.dumps({"name": "from the shell", "type": "I", "connector": "FileSystem",
                        "details": {"path": str(src)}})
    script = ("CreateProfile --properties='%s' --raw\n"
              "RunProfile --id=1\n"
              "CreateJob --name='nightly run' --action='RunProfile --id=1' --time=02:30 --timeZoneId=UTC\n"
              "GetJobs\n" % props)
    docs = envelopes(shell(data_dir, script, check=0).stdout)
    assert [d["statusCode"] for d in docs] == ["succeeded"] * 4, docs
    assert docs[0]["result"]["name"] == "from the shell"
    assert docs[1]["result"]["archived"] == 1
    (job,) = docs[3]["result"]
    assert (job["name"], job["action"], job["time"], job["timeZoneId"]) == (
        "nightly run", "RunProfile --id=1", "02:30", "UTC"), job
