#!/usr/bin/env bash
# tools/make_store_fixture.sh: builds tests/fixtures/store-vN, a data
# directory written by the last mailvault that wrote store format N, for the
# upgrade tests (tests/system/test_upgrade*.py).  One script for every old
# format, so that the fixtures hold the same messages made the same way;
# tools/make_v1_fixture.sh and make_v2_fixture.sh name the commit.
#
#   tools/make_store_fixture.sh FORMAT COMMIT OUT_DIR
#
# Steps: a detached git worktree of COMMIT in a temp dir; meson/ninja build
# there; `mailvault init` (the recovery key is kept); ~30 generated,
# deterministic messages imported as a Maildir with one Maildir++ subfolder
# (one message is in both folders, so the store holds a reference record);
# the db is checked to say format FORMAT.  From format 2 on, the changes that
# format added are made too ("== changes" below: a deletion compacted
# away, a folder move, a deletion left as a tombstone).  The ids and search
# results the old binary gives are recorded; the SQLite databases are
# checkpointed (no -wal/-shm needed); everything is copied to OUT_DIR.  The
# worktree and temp dir are removed at the end.
#
# Needs: git, meson, ninja, a C compiler and the build dependencies of that
# commit (tools/deps.sh), python3 (stdlib only).
set -euo pipefail

if [ $# -ne 3 ]; then
	echo "usage: $0 FORMAT COMMIT OUT_DIR" >&2
	exit 2
fi
FORMAT=$1
COMMIT=$2
OUT=$3
case $FORMAT in
1 | 2) ;;
*)
	echo "make_store_fixture: format $FORMAT: only formats 1 and 2 are known here" >&2
	exit 2
	;;
esac
ARCHIVE=fixture
NAME=store-v$FORMAT

REPO=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
PY=${PYTHON:-python3}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/mv-$NAME-fixture.XXXXXX")
WT=$TMP/worktree
cleanup() {
	if [ -d "$WT" ]; then
		git -C "$REPO" worktree remove --force "$WT" || true
	fi
	git -C "$REPO" worktree prune || true
	rm -rf "$TMP"
}
trap cleanup EXIT

echo "== worktree of $COMMIT in $WT" >&2
git -C "$REPO" worktree add --detach "$WT" "$COMMIT" >&2
FULL_COMMIT=$(git -C "$WT" rev-parse HEAD)

echo "== build" >&2
(cd "$WT" && meson setup build >&2 && ninja -C build mailvault >&2)
MV=$WT/build/mailvault

echo "== messages" >&2
MSG=$TMP/messages        # messages/<folder>/NN-word.eml, as kept in the fixture
MAILDIR=$TMP/Maildir     # the same files as the Maildir that is imported
"$PY" - "$MSG" "$MAILDIR" "$FORMAT" <<'PYEOF'
"""Writes ~30 deterministic messages: messages/<folder>/NN-word.eml plus a
Maildir (Inbox = the root, Projects = .Projects) holding the same bytes,
and messages/manifest.json describing them."""
import base64, hashlib, json, os, sys

msg_dir, maildir, store_format = sys.argv[1], sys.argv[2], int(sys.argv[3])

# One unique subject word per message (not English words, so that no body,
# header or attachment text of another message contains them).
WORDS = ["aardvarkus", "bassoonix", "cormorantle", "dulcimerio", "echidnaft",
         "flamingoid", "gazebolt", "harpsichordy", "ibexandra", "jacarandix",
         "kinkajouq", "lorikeetz", "mandolinex", "narwhalio", "ocelotry",
         "pangolinux", "quetzalik", "rhubarbio", "salamandry", "tamarindox",
         "ukulelix", "vicunaria", "wombatique", "xylophonex", "yarrowmir",
         "zucchinova", "axolotlix", "bandicootz", "capybarium"]
PEOPLE = [("Alice Archer", "alice@example.org"), ("Bob Baker", "bob@example.net"),
          ("Carol Chen", "carol@example.com"), ("Dan Dorsey", "dan@example.org")]
ZONES = ["+0000", "+0100", "-0500", "+0530"]
DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]

# Messages 1..20 go to Inbox, 21..29 to Projects; message 7 is also put in
# Projects (same bytes: a reference record).  7 and 23 have attachments;
# 12 has CRLF line endings; 15 is a multipart/alternative with HTML.
ATTACH = {7, 23}
DUPLICATE = 7


def date_of(i):
    # 2023-03-01 is a Wednesday (index 2).
    day = 1 + (i - 1) % 28
    return "%s, %02d Mar 2023 %02d:%02d:%02d %s" % (
        DAYS[(2 + day - 1) % 7], day, 8 + i % 10, (7 * i) % 60, (13 * i) % 60, ZONES[i % 4])


def attachment_bytes(i):
    # Deterministic: a small text file (word in it) and a small binary blob.
    text = ("Attachment of message %d: the attachmentword attachfoo%d.\n" % (i, i)) * 3
    blob = bytes((i * 37 + k * 11) % 256 for k in range(600))
    return text.encode(), blob


def message(i):
    word = WORDS[i - 1]
    fname, faddr = PEOPLE[i % 4]
    tname, taddr = PEOPLE[(i + 1) % 4]
    subject = "Fixture %02d about %s" % (i, word)
    mid = "<fixture-%02d@mailvault.test>" % i
    hdr = [
        "Return-Path: <%s>" % faddr,
        "From: %s <%s>" % (fname, faddr),
        "To: %s <%s>" % (tname, taddr),
        "Subject: %s" % subject,
        "Date: %s" % date_of(i),
        "Message-ID: %s" % mid,
        "MIME-Version: 1.0",
    ]
    if i % 5 == 0:
        hdr.insert(3, "Cc: %s <%s>" % PEOPLE[(i + 2) % 4])
    body_text = ("Hello,\n\nthis is fixture message number %d of the store format %d fixture.\n"
                 "It carries the body marker bodymark%02d and the common word fixturebody.\n\n"
                 "Regards,\n%s\n" % (i, store_format, i, fname))
    if i in ATTACH:
        boundary = "=_fixture_boundary_%02d" % i
        text, blob = attachment_bytes(i)
        hdr.append('Content-Type: multipart/mixed; boundary="%s"' % boundary)
        parts = [
            "--%s\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 7bit\n\n%s"
            % (boundary, body_text),
            "--%s\nContent-Type: text/plain; charset=utf-8; name=\"notes-%02d.txt\"\n"
            "Content-Disposition: attachment; filename=\"notes-%02d.txt\"\n"
            "Content-Transfer-Encoding: base64\n\n%s\n"
            % (boundary, i, i, base64.encodebytes(text).decode().strip()),
            "--%s\nContent-Type: application/octet-stream; name=\"blob-%02d.bin\"\n"
            "Content-Disposition: attachment; filename=\"blob-%02d.bin\"\n"
            "Content-Transfer-Encoding: base64\n\n%s\n"
            % (boundary, i, i, base64.encodebytes(blob).decode().strip()),
            "--%s--\n" % boundary,
        ]
        body = "This is a multi-part message in MIME format.\n\n" + "".join(parts)
    elif i == 15:
        boundary = "=_fixture_alt_15"
        hdr.append('Content-Type: multipart/alternative; boundary="%s"' % boundary)
        body = ("--%s\nContent-Type: text/plain; charset=utf-8\n\n%s"
                "--%s\nContent-Type: text/html; charset=utf-8\n\n"
                "<html><body><p>Hello,</p><p>this is <b>fixture</b> message 15, htmlmark15.</p>"
                "</body></html>\n--%s--\n" % (boundary, body_text, boundary, boundary))
    else:
        hdr.append("Content-Type: text/plain; charset=utf-8")
        hdr.append("Content-Transfer-Encoding: 7bit")
        body = body_text
    raw = "\n".join(hdr) + "\n\n" + body
    if i == 12:
        raw = raw.replace("\n", "\r\n")
    return word, subject, mid, raw.encode("utf-8"), i in ATTACH


manifest = []
for sub in ("Inbox", "Projects"):
    os.makedirs(os.path.join(msg_dir, sub), exist_ok=True)
for d in (maildir, os.path.join(maildir, ".Projects")):
    for s in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(d, s), exist_ok=True)


def put(i, folder, word, subject, mid, raw, attach, copy=False):
    name = "%02d-%s.eml" % (i, word)
    rel = "%s/%s" % (folder, name)
    with open(os.path.join(msg_dir, folder, name), "wb") as f:
        f.write(raw)
    # Maildir file: every third message unread in new/, the others seen in cur/.
    base = "16780%05d.M%dP4242.fixture" % (i * 100 + (50 if copy else 0), i)
    mdir = maildir if folder == "Inbox" else os.path.join(maildir, ".Projects")
    if i % 3 == 0 and not copy:
        mname = os.path.join("new", base)
        flags = ""
    else:
        flags = "FS" if i % 4 == 0 else "S"
        mname = os.path.join("cur", base + ":2," + flags)
    with open(os.path.join(mdir, mname), "wb") as f:
        f.write(raw)
    manifest.append({"file": rel, "folder": folder, "word": word, "subject": subject,
                     "message_id": mid[1:-1], "has_attachment": attach, "maildir_flags": flags,
                     "size": len(raw), "sha256": hashlib.sha256(raw).hexdigest()})


for i in range(1, len(WORDS) + 1):
    word, subject, mid, raw, attach = message(i)
    folder = "Inbox" if i <= 20 else "Projects"
    put(i, folder, word, subject, mid, raw, attach)
    if i == DUPLICATE:
        put(i, "Projects", word, subject, mid, raw, attach, copy=True)

with open(os.path.join(msg_dir, "manifest.json"), "w") as f:
    json.dump({"archive": "fixture", "messages": manifest}, f, indent=1, sort_keys=True)
    f.write("\n")
print("%d message files, %d distinct" % (len(manifest), len({m["sha256"] for m in manifest})),
      file=sys.stderr)
PYEOF

echo "== init + import with the old binary" >&2
DATA=$TMP/data
INIT_OUT=$("$MV" --data-dir "$DATA" init)
printf '%s\n' "$INIT_OUT" >&2
RECOVERY=$(printf '%s\n' "$INIT_OUT" | sed -n 's/^Recovery key: //p')
if [ -z "$RECOVERY" ]; then
	echo "make_store_fixture: no 'Recovery key:' line in the init output" >&2
	exit 1
fi
"$MV" --data-dir "$DATA" import "$MAILDIR" --archive "$ARCHIVE" --json > "$TMP/import.json"
cat "$TMP/import.json" >&2

echo "== format" >&2
"$PY" - "$DATA/stores/store1/db/store.sqlite" "$FORMAT" <<'PYEOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
got = db.execute("SELECT value FROM meta WHERE key='format_version'").fetchone()[0]
db.close()
assert int(got) == int(sys.argv[2]), "the old binary wrote format %s, not %s" % (got, sys.argv[2])
PYEOF

# The ids and searches the tests repeat, with the old binary's answers: run
# on the store as it is at the end, and for format 2 also before the changes
# (whose ids they are made with).
cat > "$TMP/record.py" <<'PYEOF'
"""record.py MV DATA ARCHIVE ROOT IDS_OUT SEARCHES_OUT: ROOT holds messages/
(live messages, manifest.json) and deleted/ (messages deleted by
apply_changes: the manifest names them with "deleted": {id, reason, ...})."""
import json, os, subprocess, sys
mv, data, archive, root, ids_out, searches_out = sys.argv[1:]
manifest = json.load(open(os.path.join(root, "messages", "manifest.json")))["messages"]
live = [m for m in manifest if not m.get("deleted")]
gone = [m for m in manifest if m.get("deleted")]


def search(q):
    cp = subprocess.run([mv, "--data-dir", data, "search", q, "--json", "--limit", "0"],
                        check=True, capture_output=True)
    return json.loads(cp.stdout)


def folder_query(f):
    return "folder:" + ('"%s"' % f if " " in f else f)


folders = {m["folder"] for m in live}
folders |= {f.split("/")[0] for f in folders}
queries = ["size:>0", "has:attachment"] + [folder_query(f) for f in sorted(folders)]
queries += ["fixturebody", "from:alice", "attachment:attachmentword", "bodymark12", "htmlmark15",
            "after:2023-03-10 before:2023-03-20", "archive:%s" % archive]
queries += ["bodymark%s" % m["file"].rsplit("/", 1)[1][:2] for m in gone]
queries += ["subject:%s" % w for w in sorted({m["word"] for m in manifest})]
results = {q: search(q) for q in queries}
for f in folders:
    assert results[folder_query(f)], "no hits for %s" % folder_query(f)

# file -> id: the hit of the message's word in the message's folder.
ids = {}
for m in live:
    hits = [h for h in results["subject:%s" % m["word"]] if h["folder"] == m["folder"]]
    assert len(hits) == 1, (m["file"], hits)
    assert hits[0]["archive"] == archive, hits
    ids["messages/" + m["file"]] = hits[0]["id"]
everything = {h["id"] for h in results["size:>0"]}
assert everything == set(ids.values()), (sorted(everything), ids)

# show ID gives the file's bytes back (the old binary's own check); a
# deleted message is neither found nor shown.
for rel, i in ids.items():
    cp = subprocess.run([mv, "--data-dir", data, "show", i], check=True, capture_output=True)
    with open(os.path.join(root, rel), "rb") as f:
        assert cp.stdout == f.read(), rel
for m in gone:
    assert results["subject:%s" % m["word"]] == [], m
    cp = subprocess.run([mv, "--data-dir", data, "show", m["deleted"]["id"]], capture_output=True)
    assert cp.returncode != 0 and cp.stdout == b"", (m, cp)

with open(ids_out, "w") as f:
    json.dump(ids, f, indent=1, sort_keys=True)
    f.write("\n")
# Compact: query -> hit ids in the old binary's order (newest first), and
# every hit's fields once.
with open(searches_out, "w") as f:
    json.dump({"queries": {q: [h["id"] for h in hits] for q, hits in results.items()},
               "hits": {h["id"]: h for h in results["size:>0"]}}, f, indent=0, sort_keys=True)
    f.write("\n")
print("%d ids, %d queries recorded" % (len(ids), len(results)), file=sys.stderr)
PYEOF

if [ "$FORMAT" -ge 2 ]; then
	echo "== ids before the changes" >&2
	"$PY" "$TMP/record.py" "$MV" "$DATA" "$ARCHIVE" "$TMP" "$TMP/ids-before.json" "$TMP/searches-before.json"

	echo "== changes with the old binary" >&2
	# What format 2 added over format 1, each leaving its record in content/
	# and its trace in the db: a deletion whose records CompactStore then drops
	# (a gap in the numbering that only the batch markers explain), a folder
	# move (a folder-move record; the moved folder holds a reference record),
	# and a deletion left as a tombstone.  The messages move to match:
	# messages/<folder now>/, deleted/<folder when deleted>/.
	"$PY" - "$MV" "$DATA" "$ARCHIVE" "$TMP" "$TMP/ids-before.json" "$TMP/changes.json" <<'PYEOF'
import json, os, subprocess, sys
mv, data, archive, root, ids_path, changes_out = sys.argv[1:]
manifest_path = os.path.join(root, "messages", "manifest.json")
doc = json.load(open(manifest_path))
manifest = doc["messages"]
ids = json.load(open(ids_path))
id_of = {m["file"]: ids["messages/" + m["file"]] for m in manifest}   # by the file's first place
steps = []

MOVE_FROM, MOVE_TO = "Projects", "Done/Projects 2023"


def cmd(function, **args):
    words = ["--%s=%s" % kv for kv in args.items()]
    cp = subprocess.run([mv, "--data-dir", data, "cmd", function] + words, capture_output=True)
    env = json.loads(cp.stdout)
    assert cp.returncode == 0 and env["statusCode"] == "succeeded", (function, args, env, cp.stderr)
    steps.append({"call": function, "args": args, "result": env["result"]})
    return env["result"]


def entry(folder, number):
    hits = [m for m in manifest if m["folder"] == folder and m["file"].split("/")[-1].startswith("%02d-" % number)]
    assert len(hits) == 1, (folder, number, hits)
    return hits[0]


def relocate(m, top, folder):
    """Moves m's file to top/<folder>/ (top: messages or deleted)."""
    old = os.path.join(root, "messages", m["file"])
    msg_id = id_of.pop(m["file"])
    m["folder"] = folder
    m["file"] = "%s/%s" % (folder, m["file"].split("/")[-1])
    id_of[m["file"]] = msg_id
    new = os.path.join(root, top, m["file"])
    os.makedirs(os.path.dirname(new), exist_ok=True)
    os.rename(old, new)


def delete(m, reason, compacted):
    msg_id = id_of[m["file"]]
    cmd("DeleteMessage", id=msg_id, reason=reason)
    m["deleted"] = {"id": msg_id, "reason": reason, "compacted": compacted}
    relocate(m, "deleted", m["folder"])


delete(entry("Inbox", 5), "fixture: deleted, then compacted away", True)
assert cmd("CompactStore", id=1)["recordsDropped"] >= 1, steps[-1]
cmd("MoveFolder", fromFolder="%s/%s" % (archive, MOVE_FROM), toFolder="%s/%s" % (archive, MOVE_TO))
for m in manifest:
    if m["folder"] == MOVE_FROM:
        relocate(m, "messages", MOVE_TO)
delete(entry(MOVE_TO, 22), "fixture: deleted after the folder move, left as a tombstone", False)

os.rmdir(os.path.join(root, "messages", MOVE_FROM))
with open(manifest_path, "w") as f:
    json.dump(doc, f, indent=1, sort_keys=True)
    f.write("\n")
with open(changes_out, "w") as f:
    json.dump({"steps": steps}, f, indent=1, sort_keys=True)
    f.write("\n")
print("%d changes made" % len(steps), file=sys.stderr)
PYEOF
fi

echo "== ids and searches with the old binary" >&2
"$PY" "$TMP/record.py" "$MV" "$DATA" "$ARCHIVE" "$TMP" "$TMP/ids.json" "$TMP/searches-v$FORMAT.json"
if [ "$FORMAT" -ge 2 ]; then
	# The changes kept every id: a move renames, a deletion removes.
	"$PY" -c 'import json, sys; before, after = (json.load(open(p)) for p in sys.argv[1:])
assert set(after.values()) < set(before.values()), (before, after)' "$TMP/ids-before.json" "$TMP/ids.json"
fi
"$MV" --data-dir "$DATA" stats --json > "$TMP/stats.json"
if [ "$FORMAT" -eq 1 ]; then
	# One content archived twice (Inbox and Projects): one reference record.
	"$PY" -c 'import json, sys; t = json.load(open(sys.argv[1]))["total"]
assert t["messages"] == t["contents"] + 1, t' "$TMP/stats.json"
fi

echo "== checkpoint" >&2
"$PY" - "$DATA" <<'PYEOF'
import os, sqlite3, sys
for root, dirs, files in os.walk(sys.argv[1]):
    for name in sorted(files):
        if name.endswith(".sqlite"):
            p = os.path.join(root, name)
            db = sqlite3.connect(p)
            busy, log, done = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            assert busy == 0, p
            db.close()
for root, dirs, files in os.walk(sys.argv[1]):
    for name in files:
        assert not name.endswith(("-wal", "-shm", "-journal")), os.path.join(root, name)
PYEOF
# The empty lock files the binary made as it ran are no state: left out, as
# store-v1 has none (every run of a binary makes them again).
find "$DATA" -type f -size 0 \( -name '*.lock' -o -name .writelock \) -print -delete >&2

echo "== write $OUT" >&2
mkdir -p "$OUT"
rm -rf "$OUT/data" "$OUT/messages" "$OUT/deleted"
cp -a "$DATA" "$OUT/data"
cp -a "$MSG" "$OUT/messages"
mv "$OUT/messages/manifest.json" "$OUT/manifest.json"
cp "$TMP/ids.json" "$TMP/searches-v$FORMAT.json" "$OUT/"
if [ "$FORMAT" -ge 2 ]; then
	cp -a "$TMP/deleted" "$OUT/deleted"
	cp "$TMP/changes.json" "$OUT/"
fi
printf '%s\n' "$RECOVERY" > "$OUT/recovery-key.txt"
# Fixture bytes are data: no line-ending conversion by git, ever.
printf '* -text\n' > "$OUT/.gitattributes"

IMPORT_SUMMARY=$(cat "$TMP/import.json")
STATS=$(cat "$TMP/stats.json")
CHANGES_CONTENTS=
CHANGES_STEP=
SHOW_DELETED=
NEXT=5
if [ "$FORMAT" -ge 2 ]; then
	CHANGES_CONTENTS="
- \`deleted/<folder>/NN-word.eml\`: the messages deleted in step 5, byte for
  byte, under the folder they were in when deleted; \`manifest.json\` lists them
  with \`\"deleted\": {id, reason, compacted}\` (their \`file\` is under \`deleted/\`).
- \`changes.json\`: the calls of step 5 in order, with the old binary's results."
	CHANGES_STEP="5. What format 2 added over format 1, made with the old binary's \`mailvault cmd\`
   (ids from a recording like step 6 before it; the files moved to match):
   \`DeleteMessage\` of \`Inbox/05-*\`; \`CompactStore\` (its records are dropped:
   a gap in the numbering that only the batch markers explain);
   \`MoveFolder\` \`$ARCHIVE/Projects\` -> \`$ARCHIVE/Done/Projects 2023\` (a
   folder-move record; the moved folder holds the reference record of 07);
   \`DeleteMessage\` of \`22-*\` there (left as a tombstone).  The import wrote
   batch markers and the db and the index share an index generation.
"
	NEXT=6
	SHOW_DELETED=", every deleted id checked to be neither found nor shown"
fi
cat > "$OUT/README.md" <<EOF
# $NAME: a data directory in store format $FORMAT

Written by \`tools/make_v${FORMAT}_fixture.sh\` (\`tools/make_store_fixture.sh $FORMAT\`)
with the mailvault of commit \`$FULL_COMMIT\` (\`$COMMIT\`, the last commit that
wrote store format $FORMAT), built from a detached worktree of that commit.
Regenerate with

    tools/make_v${FORMAT}_fixture.sh            # writes tests/fixtures/$NAME

(the data keys, nonces and archived-at times are random/current, so a new run
gives different bytes and a different recovery key; the messages are the same).

Used by \`tests/system/test_upgrade*.py\`, which copy \`data/\` to a temporary
directory first: never run mailvault on \`data/\` in place.

## Contents

- \`data/\`: the whole instance (\`master.sqlite\`, \`master.key\`,
  \`stores/store1/{db,content,index}\`), SQLite WAL checkpointed (no -wal/-shm files),
  without the empty lock files the binary makes as it runs.
- \`recovery-key.txt\`: the recovery key \`mailvault init\` printed.
- \`messages/<folder>/NN-word.eml\`: the archived messages, byte for byte, in the
  folder they are in (archive \`$ARCHIVE\`). Each subject holds one
  unique word (\`NN-word\`). \`07-*\` is in two folders, the same bytes
  (one content, two folders: one of them is a reference record). 07 and 23 have
  attachments (a text file with the word \`attachmentword\` and a binary blob);
  12 has CRLF line endings; 15 is multipart/alternative with HTML.$CHANGES_CONTENTS
- \`manifest.json\`: per file: folder, subject, unique word, Message-ID, size, sha256,
  Maildir flags.
- \`ids.json\`: file -> message id (\`store:number\`) as the old binary's
  \`search --json\` gave it.
- \`searches-v$FORMAT.json\`: \`queries\`: query -> the ids the old binary's
  \`search QUERY --json --limit 0\` listed, in its order (newest first); \`hits\`:
  id -> that hit's fields.

## How it was made

1. \`git worktree add --detach TMP $COMMIT\`; \`meson setup build && ninja -C build mailvault\`.
2. \`mailvault --data-dir D init\`.
3. The messages were written as a Maildir (\`Inbox\` = the root, \`.Projects\`),
   every third one unread in \`new/\`, the others in \`cur/\` with flags \`S\` or \`FS\`,
   and imported with
   \`mailvault --data-dir D import Maildir --archive $ARCHIVE --json\`:

       $IMPORT_SUMMARY

4. The db checked to say \`format_version\` $FORMAT.
${CHANGES_STEP}${NEXT}. Ids and search results recorded; every \`show ID\` checked against the file${SHOW_DELETED}.
$((NEXT + 1)). \`PRAGMA wal_checkpoint(TRUNCATE)\` on every \`.sqlite\`, then \`D\` copied to \`data/\`.

\`mailvault stats --json\` of the old binary:

    $STATS
EOF

echo "== done: $OUT ($(du -sh --apparent-size "$OUT" | cut -f1))" >&2
