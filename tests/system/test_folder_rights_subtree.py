"""MoveFolder and DeleteEmptyFolders check the caller's rights on every folder
below the one named, and moving a folder out of its archive takes the delete
privilege (issue 20, mutants 2 and 3).

No test had a user with write on a folder but `none` (or only read) below
it, so MoveFolder without its subtree check (src/commands/cmd_folders.c,
move_allowed -> subtree_allowed) survived; and no user had write on two
archives without delete, so a MoveFolder across archives that asked only for
write survived too.  Here, against a real `mailvault serve` over HTTPS (one
server for the module), each test has archives and users of its own:

- a user with write on alice but `none` on alice/Hidden/Deep cannot move
  alice/Hidden (refused without naming the hidden folder, nothing changed),
  while it can move alice/Open, whose subfolder it may write;
- a user with write on alice but only read on alice/Open/Sub cannot move
  alice/Open (refused naming that folder, which it may see);
- DeleteEmptyFolders by a user with delete on dora but `none` on the empty
  dora/Keep/Secret leaves that folder and dora/Keep above it, and says
  nothing of it, while deleting the empty folder it may delete;
- a user with write on archives xa and xb but no delete cannot move xa/Proj
  to xb; with delete on xa it can, and the messages arrive; within one
  archive write alone is enough; delete on xa but not on xa/Keep/Sub below
  the folder still refuses the move across.

Every refusal is asserted by its exact message and by the admin's folder
statistics being unchanged; every success by the folders and counts after."""

import json

import pytest

from mvserver import MvServer
from test_privileges import Api, make_data_dir

pytestmark = pytest.mark.xdist_group("folder_rights_subtree")

FOLDERS = {
    ("alice", "Inbox"): 1, ("alice", "Hidden"): 1, ("alice", "Hidden/Deep"): 1,
    ("alice", "Open"): 2, ("alice", "Open/Sub"): 1,
    ("dora", "Inbox"): 1, ("dora", "Gone"): 1, ("dora", "Keep"): 1, ("dora", "Keep/Secret"): 1,
    ("xa", "Proj"): 2, ("xa", "Proj/Sub"): 1, ("xa", "Keep"): 1, ("xa", "Keep/Sub"): 1,
    ("xb", "Inbox"): 1,
}


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    d, pw = make_data_dir(tmp_path_factory.mktemp("subtree"), FOLDERS)
    srv = MvServer(d, password=pw).start()
    try:
        yield Api(srv, pw)
    finally:
        srv.stop()


def user(api, name, grants):
    api.create_user(name, "Pw-of-%s-7319-x" % name)
    for folder, privileges in grants:
        api.ok("SetUserPrivilegesOnFolder", userName=name, folder=folder, privileges=privileges)


def refused(api, who, function, expected, **fields):
    """The call is refused with exactly `expected`, and nothing changes;
    returns the text of the answers the caller got."""
    before = api.folder_stats()
    seen = len(api.seen)
    assert api.fail(function, user=who, **fields) == expected
    answers = json.dumps(api.seen[seen:])
    assert api.folder_stats() == before, "a refused %s by %s changed folders" % (function, who)
    return answers


def test_move_refused_over_a_hidden_subfolder(api):
    user(api, "mover", [("alice", "read,write"), ("alice/Hidden/Deep", "none")])
    visible = {f["folder"] for f in api.ok("GetChildFolders", user="mover", folder="alice")}
    assert "alice/Hidden/Deep" not in visible and "alice/Hidden" in visible, visible
    answers = refused(api, "mover", "MoveFolder", "MoveFolder: user mover lacks the write privilege on a folder "
                      "below 'alice/Hidden'", fromFolder="alice/Hidden", toFolder="alice/Moved")
    assert "Deep" not in answers, "the refusal names the hidden folder: " + answers
    # the same user moves a folder whose subfolders it may all write
    before = api.folder_stats()
    assert api.ok("MoveFolder", user="mover", fromFolder="alice/Open", toFolder="alice/Opened") is None
    after = api.folder_stats()
    assert after["alice/Opened"] == before["alice/Open"] and after["alice/Opened/Sub"] == before["alice/Open/Sub"]
    assert "alice/Open" not in after and "alice/Open/Sub" not in after, after
    api.ok("MoveFolder", fromFolder="alice/Opened", toFolder="alice/Open")
    assert api.folder_stats() == before


def test_move_refused_over_a_read_only_subfolder(api):
    user(api, "mover2", [("alice", "read,write"), ("alice/Open/Sub", "read")])
    refused(api, "mover2", "MoveFolder", "MoveFolder: user mover2 has no write privilege on folder "
            "'alice/Open/Sub'", fromFolder="alice/Open", toFolder="alice/Elsewhere")


def test_delete_empty_folders_leaves_a_hidden_empty_folder(api):
    for folder in ("dora/Gone", "dora/Keep", "dora/Keep/Secret"):
        for mid in api.message_ids(folder):
            api.ok("DeleteMessage", id=mid, reason="empty it")
    stats = api.folder_stats()
    assert all(stats[f][0] == 0 for f in ("dora/Gone", "dora/Keep", "dora/Keep/Secret")), stats
    user(api, "tidy", [("dora", "read,delete"), ("dora/Keep/Secret", "none")])
    seen = len(api.seen)
    # named directly, the parent of the hidden folder stays
    assert api.ok("DeleteEmptyFolders", user="tidy", folder="dora/Keep") == {"deletedFolders": 0}
    assert api.ok("DeleteEmptyFolders", user="tidy", folder="dora") == {"deletedFolders": 1}
    assert "Secret" not in json.dumps(api.seen[seen:]), "an answer names the hidden folder"
    assert {f for f in api.folder_stats() if f.startswith("dora")} == \
        {"dora", "dora/Inbox", "dora/Keep", "dora/Keep/Secret"}
    # the administrator may delete them
    assert api.ok("DeleteEmptyFolders", folder="dora") == {"deletedFolders": 2}
    assert {f for f in api.folder_stats() if f.startswith("dora")} == {"dora", "dora/Inbox"}


def test_move_to_another_archive_needs_delete(api):
    user(api, "shifter", [("xa", "read,write"), ("xb", "read,write")])
    refused(api, "shifter", "MoveFolder", "MoveFolder: user shifter has no write and delete privilege on folder "
            "'xa/Proj'", fromFolder="xa/Proj", toFolder="xb/Proj")
    # within one archive, write is enough
    before = api.folder_stats()
    assert api.ok("MoveFolder", user="shifter", fromFolder="xa/Proj", toFolder="xa/Project") is None
    assert api.folder_stats()["xa/Project"] == before["xa/Proj"]
    assert api.ok("MoveFolder", user="shifter", fromFolder="xa/Project", toFolder="xa/Proj") is None
    assert api.folder_stats() == before
    # with delete on the source archive the move across is allowed
    ids = api.message_ids("xa/Proj")
    api.ok("SetUserPrivilegesOnFolder", userName="shifter", folder="xa", privileges="read,write,delete")
    assert api.ok("MoveFolder", user="shifter", fromFolder="xa/Proj", toFolder="xb/Proj") is None
    after = api.folder_stats()
    assert "xa/Proj" not in after and "xa/Proj/Sub" not in after, after
    assert after["xb/Proj"] == before["xa/Proj"] and after["xb/Proj/Sub"] == before["xa/Proj/Sub"], after
    assert sorted(api.message_ids("xb/Proj")) == sorted(ids)


def test_move_to_another_archive_needs_delete_below_too(api):
    user(api, "shifter2", [("xa", "read,write,delete"), ("xa/Keep/Sub", "read,write"), ("xb", "read,write")])
    refused(api, "shifter2", "MoveFolder", "MoveFolder: user shifter2 has no write and delete privilege on folder "
            "'xa/Keep/Sub'", fromFolder="xa/Keep", toFolder="xb/Keep")
