"""RecreateRecoveryRecords: a message whose own recovery record is damaged
while its content is intact gets a fresh record, and a later RecoverStore
(db/ deleted) brings that message back in its folder — which without the
recreated record it could not."""
import os
import shutil

import pytest

from test_faults import (assert_clean, cmd, flip_byte, import_json, imported_store, live, ok, recover,
                         store_paths, verify)

# Under `pytest -n 2 --dist loadgroup` (tools/test.sh) the fault tests, the
# longest share of the suite after the corpus imports, run together on one
# worker while the corpus tests (group "corpus") run on the other.
pytestmark = pytest.mark.xdist_group("faults")


def test_recreate_recovery_records(tmp_path, corpus):
    d, src, shas = imported_store(tmp_path, corpus, 40)
    r = ok(cmd(d, "RecreateRecoveryRecords", id=1), "RecreateRecoveryRecords")
    assert r["recordsRecreated"] == 0 and r["unrecoverableMessageIds"] == [], r
    assert_clean(d)

    # One message also archived into "b": its record there is a reference
    # record, the last record of the segment.
    before = live(d, archive="a")
    first = sorted(before, key=lambda i: int(i.split(":")[1]))[0]
    rel = shas[before[first]]
    one = tmp_path / "one"
    one.mkdir()
    shutil.copyfile(os.path.join(str(src), rel), str(one / "m.eml"))
    s, _ = import_json(one, "b", d)
    assert s["imported"] == 1, s
    b_id = list(live(d, archive="b"))[0]

    content = store_paths(d)[1]
    seg = os.path.join(content, sorted(f for f in os.listdir(content) if f.endswith(".mvs"))[-1])
    flip_byte(seg, os.path.getsize(seg) - 30)
    v = verify(d)
    assert not v["clean"], v
    assert b_id in [i for p in v["problems"] for i in p.get("messageIds", [])], v
    # the content itself is intact: the message still reads back
    assert live(d, archive="b") == {b_id: before[first]}

    r = ok(cmd(d, "RecreateRecoveryRecords", id=1), "RecreateRecoveryRecords")
    assert r["recordsRecreated"] == 1 and r["unrecoverableMessageIds"] == [], r

    shutil.rmtree(store_paths(d)[0])
    rr = recover(d)
    assert rr["damagedRecords"] == 1, rr
    assert live(d, archive="b") == {b_id: before[first]}, "the recreated record did not bring the message back"
    assert len(live(d, archive="a")) == 40
