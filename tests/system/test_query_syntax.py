"""The query language and the search/show command line, through the real
binary (issue 9: items 7, 8, 10 and 12).

A few messages written here are imported into one data directory, into the
archive "John.Doe" (mixed case on purpose) and "other"; every expected
result is a set of those messages, named by subject."""

import os
import re

import pytest

from mvtest import import_json, init_data_dir, mv, parse_json, search_json

ARCHIVE = "John.Doe"

BODY_LINES = [
    "First paragraph, line one",
    "line two of the first paragraph.",
    "",
    "    an indented line",
    "Second paragraph mentions razor.",
]

MESSAGES = {
    # file name: (archive, raw message)
    "blades.eml": (ARCHIVE, (
        "From: Alice <alice@example.com>\n"
        "To: Bob <bob@example.com>\n"
        "Subject: razor blades\n"
        " for sale\n"
        "Date: Tue, 01 Oct 2002 10:00:00 +0000\n"
        "Message-ID: <blades@example.com>\n"
        "\n" + "\n".join(BODY_LINES) + "\n")),
    "offer.eml": (ARCHIVE, (
        "From: Carol <carol@example.com>\n"
        "To: Bob <bob@example.com>\n"
        "Subject: razor spam offer\n"
        "Date: Wed, 02 Oct 2002 10:00:00 +0000\n"
        "Message-ID: <offer@example.com>\n"
        "\n"
        "Buy now, spam spam.\n")),
    "report.eml": (ARCHIVE, (
        "From: Dave <dave@example.com>\n"
        "To: Bob <bob@example.com>\n"
        "Subject: quarterly report\n"
        "Date: Thu, 03 Oct 2002 10:00:00 +0000\n"
        "Message-ID: <report@example.com>\n"
        "\n"
        "The meeting is at 10:30, the slides are at http://example.org/q3-report\n"
        "Questions: mailto:dave@example.com\n")),
    "budget.eml": (ARCHIVE, (
        "From: Erin <erin@example.com>\n"
        "To: Bob <bob@example.com>\n"
        "Subject: Re: budget plan\n"
        "Date: Fri, 04 Oct 2002 10:00:00 +0000\n"
        "Message-ID: <budget@example.com>\n"
        "\n"
        "The numbers.\n")),
    "html.eml": (ARCHIVE, (
        "From: Fay <fay@example.com>\n"
        "To: Bob <bob@example.com>\n"
        "Subject: html only note\n"
        "Date: Sat, 05 Oct 2002 10:00:00 +0000\n"
        "Message-ID: <html@example.com>\n"
        "MIME-Version: 1.0\n"
        "Content-Type: text/html; charset=utf-8\n"
        "\n"
        "<html><body><p>first paragraph</p><p>second paragraph</p></body></html>\n")),
    "greetings.eml": (ARCHIVE, (
        "From: Hal <hal@example.com>\n"
        "To: Bob <bob@example.com>\n"
        "Subject: greetings\n"
        "Date: Mon, 07 Oct 2002 10:00:00 +0000\n"
        "Message-ID: <greetings@example.com>\n"
        "MIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=utf-8\n"
        "\n"
        "Herzliche Grüße\n")),
    "elsewhere.eml": ("other", (
        "From: Gil <gil@example.com>\n"
        "To: Bob <bob@example.com>\n"
        "Subject: razor in another archive\n"
        "Date: Sun, 06 Oct 2002 10:00:00 +0000\n"
        "Message-ID: <elsewhere@example.com>\n"
        "\n"
        "Nothing else.\n")),
}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """(data directory, {subject: id})"""
    root = tmp_path_factory.mktemp("query_syntax")
    data = init_data_dir(root / "data")
    for name, (archive, raw) in MESSAGES.items():
        path = root / name
        path.write_bytes(raw.encode())
        summary, _ = import_json(path, archive, data)
        assert summary["imported"] == 1, summary
    ids = {}
    for hit in search_json("size:>0", data, limit=0):
        ids[hit["subject"]] = hit["id"]
    assert len(ids) == len(MESSAGES), ids
    return data, ids


def subjects(env, *args):
    """The subjects of `search ARGS... --json --limit 0` (each argument as given)."""
    data, ids = env
    names = {v: k for k, v in ids.items()}
    cp = mv("search", "--json", "--limit", "0", *args, data_dir=data)
    return {names[h["id"]] for h in parse_json(cp)}


def refused(env, *args):
    """stderr of a search that must exit 2 (a usage error or a malformed query)."""
    data, _ = env
    cp = mv("search", *args, data_dir=data, check=2)
    assert cp.stdout == b"", cp.stdout
    return cp.stderr.decode("utf-8", "replace")


# ---- 7: show --text keeps the text's lines ----------------------------------------

def test_show_text_keeps_lines(env):
    data, ids = env
    out = mv("show", "--text", ids["razor blades for sale"], data_dir=data).stdout.decode()
    head, sep, body = out.partition("\n\n")
    assert sep, out
    headers = head.split("\n")
    # one line per header, the folded Subject unfolded onto its line
    assert "Subject: razor blades for sale" in headers, headers
    assert "From: Alice <alice@example.com>" in headers, headers
    assert "Date: 2002-10-01T10:00:00Z" in headers, headers
    assert all(re.match(r"^[A-Za-z-]+: ", h) for h in headers), headers
    # the body as written: its lines, the empty one between paragraphs, the indentation
    assert body.rstrip("\n").split("\n") == BODY_LINES, body

    html = mv("show", "--text", ids["html only note"], data_dir=data).stdout.decode()
    lines = [l.strip() for l in html.partition("\n\n")[2].split("\n")]
    assert "first paragraph" in lines and "second paragraph" in lines, html


# ---- 8: "--" ends the options ----------------------------------------------------------

def test_double_dash_ends_options(env):
    # a query that begins with a negation, after "--"
    assert subjects(env, "--", "-spam razor") == {"razor blades for sale", "razor in another archive"}
    assert subjects(env, "razor", "--", "-spam") == {"razor blades for sale", "razor in another archive"}
    # without "--" it is taken for an option, and the error says what to do
    err = refused(env, "-spam razor")
    assert "Unknown option -spam razor" in err, err
    assert "'--'" in err and "mailvault search [OPTION...] -- QUERY" in err, err
    # every command: an argument after "--" is an argument even if it begins with '-'
    data, ids = env
    assert parse_json(mv("folders", "--json", "--", "-no-such-archive", data_dir=data)) == []
    # the arguments reach the query as the bytes given, in any locale
    c_locale = dict(os.environ, LC_ALL="C", LANG="C")
    for args in (["Grüße"], ["--", "-razor", "Grüße"]):
        cp = mv("search", "--json", *args, data_dir=data, env=c_locale)
        assert [h["id"] for h in parse_json(cp)] == [ids["greetings"]], args


# ---- 10: query mistakes are errors; what is not a mistake is searched ---------------------

FIELD_NAMES = ("from:", "to:", "cc:", "bcc:", "subject:", "body:", "attachment:", "folder:", "archive:",
               "messageid:", "after:", "before:", "has:", "size:")


@pytest.mark.parametrize("query, word", [
    ("form:alice", "form:alice"),
    ("razor date:2002-10-01", "date:2002-10-01"),
])
def test_unknown_field_is_an_error(env, query, word):
    err = refused(env, query)
    assert "unknown field" in err and "'%s'" % word in err, err
    assert all(f in err for f in FIELD_NAMES), err


def test_colon_words_stay_text(env):
    """Only two or more letters, a colon and a value try a field; a quoted
    word never does.  Checked together with the error it sits beside."""
    assert "unknown field 'mailto:'" in refused(env, "mailto:dave@example.com")
    assert subjects(env, "10:30") == {"quarterly report"}
    assert subjects(env, "http://example.org/q3-report") == {"quarterly report"}
    assert subjects(env, "re: budget") == {"Re: budget plan"}
    # quoted, the word with a colon is searched as it is
    assert subjects(env, '"mailto:dave@example.com"') == {"quarterly report"}


def test_lowercase_operators(env):
    assert subjects(env, "subject:blades or subject:offer") == {"razor blades for sale", "razor spam offer"}
    assert subjects(env, "razor not spam") == {"razor blades for sale", "razor in another archive"}
    assert subjects(env, "razor NOT spam") == {"razor blades for sale", "razor in another archive"}
    assert subjects(env, "razor and blades") == {"razor blades for sale"}
    # the word itself, in quotes; a lone operator is an error saying so
    assert subjects(env, '"or"') == set()
    err = refused(env, "or")
    assert "unexpected 'or'" in err and 'put it in quotes: "or"' in err, err


def test_field_applies_to_group(env):
    assert subjects(env, "subject:(blades OR offer)") == {"razor blades for sale", "razor spam offer"}
    assert subjects(env, "subject:(razor -spam)") == {"razor blades for sale", "razor in another archive"}
    # body: the group's words in the body only ("razor" of the subjects does not count)
    assert subjects(env, "body:(razor OR slides)") == {"razor blades for sale", "quarterly report"}


def test_invalid_date_names_input(env):
    err = refused(env, "after:2002-13-45")
    assert "'2002-13-45'" in err and "YYYY-MM-DD" in err and "no month 13" in err, err
    err = refused(env, "before:yesterday")
    assert "'yesterday'" in err and "YYYY-MM-DD" in err, err


# ---- 12a: COMMAND --help names the command once ------------------------------------

@pytest.mark.parametrize("command, params", [
    ("init", ""), ("search", "QUERY..."), ("show", "ID..."), ("folders", "[ARCHIVE]"),
])
def test_help_names_command_once(command, params):
    out = mv(command, "--help").stdout.decode()
    usage = out.split("\n")[1].strip()
    # "Usage: mailvault search [OPTION…] QUERY...", not "search [OPTION…] search QUERY..."
    assert re.fullmatch(r"mailvault %s \[OPTION(…|\.\.\.)\]( %s)?" % (command, re.escape(params)), usage), out


# ---- 12b: --archive NAME and archive:NAME are one rule ------------------------------------

@pytest.mark.parametrize("name", ["John.Doe", "john.doe", "JOHN.DOE"])
def test_archive_option_matches_field(env, name):
    razor = {"razor blades for sale", "razor spam offer"}
    assert subjects(env, "--archive", name, "razor") == razor
    assert subjects(env, "archive:%s razor" % name) == razor
    # without a text term (dates and sizes only: SQL without MATCH) the same
    everything = {s for s, (a, _) in _by_subject().items() if a == ARCHIVE}
    assert subjects(env, "--archive", name, "size:>0") == everything
    assert subjects(env, "archive:%s size:>0" % name) == everything
    assert subjects(env, "--archive", name, "--", "-razor") == everything - razor


def test_archive_is_the_whole_name(env):
    # neither way of naming an archive takes a prefix of its name
    assert subjects(env, "--archive", "John", "razor") == set()
    assert subjects(env, "archive:John razor") == set()
    assert subjects(env, "--archive", "OTHER", "razor") == {"razor in another archive"}


def _by_subject():
    """{subject: (archive, raw)}, the subject as the index decodes it."""
    out = {}
    for archive, raw in MESSAGES.values():
        m = re.search(r"^Subject: (.*(?:\n[ \t].*)*)", raw, re.M)
        out[m.group(1).replace("\n", "")] = (archive, raw)
    return out
