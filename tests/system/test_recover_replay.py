"""RecoverStore replays content/ into the state the store had (issue 20,
found by fuzz_journal): two histories that broke the replay.

- A folder emptied of its deleted messages and removed by
  DeleteEmptyFolders (which writes no record), then another folder moved
  onto its name: the replay of the deleted message's record made the folder
  again, and the move's replay failed on the name ("UNIQUE constraint").
- RecoverStore --recoverDeletedMessages run twice: the second replay of the
  first's restore record counted a message that was not deleted as brought
  back, and the report said "deletedMessages": -1."""

import json

from mvserver import init_with_admin
from mvtest import mv, search_json


def eml(tmp_path, name, word):
    p = tmp_path / name
    p.write_bytes(("From: a@example.org\r\nSubject: %s\r\nMessage-ID: <%s@example.org>\r\n\r\n%s\r\n"
                   % (word, word, word)).encode())
    return str(p)


def cmd(d, *args):
    cp = mv("cmd", *args, data_dir=d, check=False)
    env = json.loads(cp.stdout)
    assert env["statusCode"] == "succeeded", (args, env)
    return env["result"]


def recover(d, *extra):
    cmd(d, "CreateStore", "--name=spare") if not any(s["name"] == "spare" for s in cmd(d, "GetStores")) else None
    cmd(d, "SetStoreRequestedState", "--id=2", "--requestedState=current")
    cmd(d, "SetStoreRequestedState", "--id=1", "--requestedState=disabled")
    report = cmd(d, "RecoverStore", "--id=1", *extra)
    cmd(d, "SetStoreRequestedState", "--id=1", "--requestedState=normal")
    cmd(d, "SetStoreRequestedState", "--id=1", "--requestedState=current")
    return report


def test_move_onto_the_name_of_a_removed_folder(tmp_path):
    d = str(tmp_path / "d")
    init_with_admin(d)
    mv("import", eml(tmp_path, "x.eml", "xylophone"), "--archive", "alice", "--folder", "X", data_dir=d)
    (gone,) = search_json("xylophone", d)
    cmd(d, "DeleteMessage", "--id=" + gone["id"], "--reason=test")
    assert cmd(d, "DeleteEmptyFolders", "--folder=alice") == {"deletedFolders": 1}
    mv("import", eml(tmp_path, "y.eml", "yodel"), "--archive", "alice", "--folder", "Y", data_dir=d)
    cmd(d, "MoveFolder", "--fromFolder=alice/Y", "--toFolder=alice/X")
    before = [(h["id"], h["folder"]) for h in search_json("yodel", d)]
    assert before and before[0][1] == "X", before
    report = recover(d)
    # both records replayed, the deleted one as deleted
    assert report["messagesRecovered"] == 2 and report["deletedMessages"] == 1, report
    assert [(h["id"], h["folder"]) for h in search_json("yodel", d)] == before
    assert search_json("xylophone", d) == []
    assert cmd(d, "VerifyStore", "--id=1", "--includeIndexes=true")["clean"] is True
    # and with the deleted messages brought back, into the folder now at that name
    report = recover(d, "--recoverDeletedMessages=true")
    assert report["deletedMessagesRestored"] == 1, report
    assert sorted(h["folder"] for h in search_json("xylophone OR yodel", d)) == ["X", "X"]


def test_recovering_deleted_messages_twice_counts_nothing_twice(tmp_path):
    d = str(tmp_path / "d")
    init_with_admin(d)
    mv("import", eml(tmp_path, "a.eml", "alpha"), "--archive", "alice", data_dir=d)
    mv("import", eml(tmp_path, "b.eml", "bravo"), "--archive", "alice", data_dir=d)
    (h,) = search_json("bravo", d)
    cmd(d, "DeleteMessage", "--id=" + h["id"], "--reason=test")
    first = recover(d, "--recoverDeletedMessages=true")
    assert (first["deletedMessages"], first["deletedMessagesRestored"]) == (0, 1), first
    second = recover(d, "--recoverDeletedMessages=true")
    assert (second["deletedMessages"], second["deletedMessagesRestored"]) == (0, 0), second
    plain = recover(d)
    assert plain["deletedMessages"] == 0 and plain["messagesRecovered"] == 2, plain
