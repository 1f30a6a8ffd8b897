#!/usr/bin/env bash
# tools/make_v1_fixture.sh: builds tests/fixtures/store-v1, a data directory
# written by the last mailvault that wrote store format 1 (commit 77fa7d3),
# for the upgrade tests (tests/system/test_upgrade.py).
#
#   tools/make_v1_fixture.sh [OUT_DIR]      (default: tests/fixtures/store-v1)
#
# Steps: a detached git worktree of the commit in a temp dir; meson/ninja
# build there; `mailvault init` (the recovery key is kept); ~30 generated,
# deterministic messages imported as a Maildir with one Maildir++ subfolder
# (one message is in both folders, so the store holds a reference record);
# the ids and search results the old binary gives are recorded; the SQLite
# databases are checkpointed (no -wal/-shm needed); everything is copied to
# OUT_DIR.  The worktree and temp dir are removed at the end.
#
# Needs: git, meson, ninja, a C compiler and the build dependencies of that
# commit (tools/deps.sh), python3 (stdlib only).
set -euo pipefail

COMMIT=77fa7d3
ARCHIVE=fixture

REPO=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
OUT=${1:-$REPO/tests/fixtures/store-v1}
PY=${PYTHON:-python3}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/mv-v1-fixture.XXXXXX")
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
"$PY" - "$MSG" "$MAILDIR" <<'PYEOF'
"""Writes ~30 deterministic messages: messages/<folder>/NN-word.eml plus a
Maildir (Inbox = the root, Projects = .Projects) holding the same bytes,
and messages/manifest.json describing them."""
import base64, hashlib, json, os, sys

msg_dir, maildir = sys.argv[1], sys.argv[2]

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
    body_text = ("Hello,\n\nthis is fixture message number %d of the store format 1 fixture.\n"
                 "It carries the body marker bodymark%02d and the common word fixturebody.\n\n"
                 "Regards,\n%s\n" % (i, i, fname))
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
	echo "make_v1_fixture: no 'Recovery key:' line in the init output" >&2
	exit 1
fi
"$MV" --data-dir "$DATA" import "$MAILDIR" --archive "$ARCHIVE" --json > "$TMP/import.json"
cat "$TMP/import.json" >&2

echo "== ids and searches with the old binary" >&2
# Every search the tests repeat, with the old binary's answer.
"$PY" - "$MV" "$DATA" "$ARCHIVE" "$MSG/manifest.json" "$TMP/ids.json" "$TMP/searches-v1.json" <<'PYEOF'
import json, subprocess, sys
mv, data, archive, manifest_path, ids_out, searches_out = sys.argv[1:]
manifest = json.load(open(manifest_path))["messages"]


def search(q):
    cp = subprocess.run([mv, "--data-dir", data, "search", q, "--json", "--limit", "0"],
                        check=True, capture_output=True)
    return json.loads(cp.stdout)


queries = ["size:>0", "has:attachment", "folder:Inbox", "folder:Projects", "fixturebody",
           "from:alice", "attachment:attachmentword", "bodymark12", "htmlmark15",
           "after:2023-03-10 before:2023-03-20", "archive:%s" % archive]
queries += ["subject:%s" % w for w in sorted({m["word"] for m in manifest})]
results = {q: search(q) for q in queries}

# file -> id: the hit of the message's word in the message's folder.
ids = {}
for m in manifest:
    hits = [h for h in results["subject:%s" % m["word"]] if h["folder"] == m["folder"]]
    assert len(hits) == 1, (m["file"], hits)
    assert hits[0]["archive"] == archive, hits
    ids["messages/" + m["file"]] = hits[0]["id"]
everything = {h["id"] for h in results["size:>0"]}
assert everything == set(ids.values()), (sorted(everything), ids)

# show ID gives the file's bytes back (the old binary's own check).
for rel, i in ids.items():
    cp = subprocess.run([mv, "--data-dir", data, "show", i], check=True, capture_output=True)
    with open(manifest_path.rsplit("/", 1)[0] + "/" + rel.split("/", 1)[1], "rb") as f:
        assert cp.stdout == f.read(), rel

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
"$MV" --data-dir "$DATA" stats --json > "$TMP/stats.json"
# One content archived twice (Inbox and Projects): one reference record.
"$PY" -c 'import json, sys; t = json.load(open(sys.argv[1]))["total"]
assert t["messages"] == t["contents"] + 1, t' "$TMP/stats.json"

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

echo "== write $OUT" >&2
mkdir -p "$OUT"
rm -rf "$OUT/data" "$OUT/messages"
cp -a "$DATA" "$OUT/data"
cp -a "$MSG" "$OUT/messages"
mv "$OUT/messages/manifest.json" "$OUT/manifest.json"
cp "$TMP/ids.json" "$TMP/searches-v1.json" "$OUT/"
printf '%s\n' "$RECOVERY" > "$OUT/recovery-key.txt"
# Fixture bytes are data: no line-ending conversion by git, ever.
printf '* -text\n' > "$OUT/.gitattributes"

IMPORT_SUMMARY=$(cat "$TMP/import.json")
STATS=$(cat "$TMP/stats.json")
cat > "$OUT/README.md" <<EOF
# store-v1: a data directory in store format 1

Written by \`tools/make_v1_fixture.sh\` with the mailvault of commit
\`$FULL_COMMIT\` (\`$COMMIT\`, the last commit that wrote store format 1),
built from a detached worktree of that commit. Regenerate with

    tools/make_v1_fixture.sh            # writes tests/fixtures/store-v1

(the data keys, nonces and archived-at times are random/current, so a new run
gives different bytes and a different recovery key; the messages are the same).

Used by \`tests/system/test_upgrade.py\`, which copies \`data/\` to a temporary
directory first: never run mailvault on \`data/\` in place.

## Contents

- \`data/\`: the whole instance (\`master.sqlite\`, \`master.key\`,
  \`stores/store1/{db,content,index}\`), SQLite WAL checkpointed (no -wal/-shm files).
- \`recovery-key.txt\`: the recovery key \`mailvault init\` printed.
- \`messages/<folder>/NN-word.eml\`: the imported messages, byte for byte, in the
  folder they were archived into (archive \`$ARCHIVE\`). Each subject holds one
  unique word (\`NN-word\`). \`Inbox/07-*\` and \`Projects/07-*\` are the same bytes
  (one content, two folders: one of them is a reference record). 07 and 23 have
  attachments (a text file with the word \`attachmentword\` and a binary blob);
  12 has CRLF line endings; 15 is multipart/alternative with HTML.
- \`manifest.json\`: per file: folder, subject, unique word, Message-ID, size, sha256,
  Maildir flags.
- \`ids.json\`: file -> message id (\`store:number\`) as the old binary's
  \`search --json\` gave it.
- \`searches-v1.json\`: \`queries\`: query -> the ids the old binary's
  \`search QUERY --json --limit 0\` listed, in its order (newest first); \`hits\`:
  id -> that hit's fields (date, from, to, subject, archive, folder, size, message_id).

## How it was made

1. \`git worktree add --detach TMP $COMMIT\`; \`meson setup build && ninja -C build mailvault\`.
2. \`mailvault --data-dir D init\`.
3. The messages were written as a Maildir (\`Inbox\` = the root, \`.Projects\`),
   every third one unread in \`new/\`, the others in \`cur/\` with flags \`S\` or \`FS\`,
   and imported with
   \`mailvault --data-dir D import Maildir --archive $ARCHIVE --json\`:

       $IMPORT_SUMMARY

4. Ids and search results recorded; every \`show ID\` checked against the file.
5. \`PRAGMA wal_checkpoint(TRUNCATE)\` on every \`.sqlite\`, then \`D\` copied to \`data/\`.

\`mailvault stats --json\` of the old binary:

    $STATS
EOF

echo "== done: $OUT ($(du -sh --apparent-size "$OUT" | cut -f1))" >&2
