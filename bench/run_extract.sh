#!/usr/bin/env bash
# Attachment text extraction: documents/s and MB/s of mailvault's import reading
# generated PDF and DOCX attachments, beside pdftotext (poppler-utils) and docx2txt
# run once per file on the same documents in the same run; then the SpamAssassin
# ingest rate with extraction on, against the target of 5,000 msgs/s.  Prints
# figures and ratios; never fails because a figure misses a target.
# See bench/README.md.
#
# usage: bench/run_extract.sh [--docs N] [--rounds N] [--sa-rounds N] [--seed S]
#                             [--out DIR] [--no-build] [--no-sa] [--keep]
#   --docs       generated documents, half PDF half DOCX, 1-50 pages (default 200)
#   --rounds     timed rounds of every import and peer run (default 5); medians reported
#   --sa-rounds  rounds of the SpamAssassin import (default 5)
#   --seed       generator seed (default 42)
#   --out        results, logs and the document cache (default bench/out/extract)
#   --no-build   do not build; use $MAILVAULT_BIN or build-release/mailvault as it is
#   --no-sa      skip the SpamAssassin import
#   --keep       keep the last round's data directories in OUT/work
# Env: MAILVAULT_BIN (this binary, no build); EXTRACT_BASE_BIN (optional: a second
#      binary, e.g. one without extraction, whose SpamAssassin import runs beside);
#      MAILVAULT_CORPUS (corpus cache root for ../shared/corpus/spamassassin).
#
# The extraction figure is a difference: the same 200 messages are imported twice
# per round, each time into a fresh data directory, once with the documents
# attached (application/pdf, the OOXML type) and once with each document replaced
# by random bytes of the same size (application/octet-stream, NAME.bin), which the
# importer stores alike but does not read.  wall(documents) - wall(random) is the
# cost of reading the documents and indexing their text.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
OUT=$REPO/bench/out/extract
DOCS=200
ROUNDS=5
SA_ROUNDS=5
SEED=42
BUILD=1
SA=1
KEEP=0
INVOCATION="bench/run_extract.sh $*"
while [ $# -gt 0 ]; do
	case $1 in
	--docs) DOCS=$2; shift 2 ;;
	--rounds) ROUNDS=$2; shift 2 ;;
	--sa-rounds) SA_ROUNDS=$2; shift 2 ;;
	--seed) SEED=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	--no-build) BUILD=0; shift ;;
	--no-sa) SA=0; shift ;;
	--keep) KEEP=1; shift ;;
	-h|--help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "run_extract.sh: unknown argument: $1" >&2; exit 2 ;;
	esac
done
for v in "$DOCS" "$ROUNDS" "$SA_ROUNDS" "$SEED"; do
	[ "$v" -ge 1 ] 2>/dev/null || { echo "run_extract.sh: --docs, --rounds, --sa-rounds and --seed want numbers >= 1" >&2; exit 2; }
done
[ "$DOCS" -ge 2 ] || { echo "run_extract.sh: --docs wants at least 2 (one PDF, one DOCX)" >&2; exit 2; }

log() { printf '[extract %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "$*"; exit 1; }
LIB=$HERE/extract_bench.py
JOBS=$(nproc)

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$OUT/work
LOG=$WORK/logs
rm -rf "$WORK"
mkdir -p "$WORK/steps" "$LOG"

# shellcheck source=bench/common.sh
. "$HERE/common.sh"

# ---------------------------------------------------------------- tools
command -v python3 >/dev/null || die "python3 is needed"
bench_need_gnu_time
SOFFICE=$(command -v soffice || command -v libreoffice || true)  # needed only to generate the documents
HAVE_PDFTOTEXT=1
command -v pdftotext >/dev/null || bench_apt_install poppler-utils
command -v pdftotext >/dev/null || { HAVE_PDFTOTEXT=0; log "pdftotext is not installed (poppler-utils, tools/deps.sh bench): no PDF peer"; }
HAVE_DOCX2TXT=1
command -v docx2txt >/dev/null || bench_apt_install docx2txt
command -v docx2txt >/dev/null || { HAVE_DOCX2TXT=0; log "docx2txt is not installed (Debian package docx2txt): no DOCX peer"; }

# ---------------------------------------------------------------- mailvault binary
bench_release_binary
BASE_BIN=${EXTRACT_BASE_BIN:-}
[ -z "$BASE_BIN" ] || [ -x "$BASE_BIN" ] || die "EXTRACT_BASE_BIN=$BASE_BIN is not an executable"

# ---------------------------------------------------------------- documents (cached)
GEN=$(python3 -B -c 'import sys; sys.path.insert(0, sys.argv[1]); import extract_bench; print(extract_bench.GEN_VERSION)' "$HERE") ||
	die "extract_bench.py does not load"
DD=$OUT/docs-$DOCS-s$SEED-$GEN
if [ ! -f "$DD/manifest.json" ] || [ ! -f "$DD/eml/sizes.json" ]; then
	for old in "$OUT"/docs-"$DOCS"-s"$SEED"-*; do
		[ -e "$old" ] && [ "$old" != "$DD" ] && { log "removing stale documents $old"; rm -rf "$old"; }
	done
	if [ -z "$SOFFICE" ]; then
		log "LibreOffice (soffice) is not installed: it writes the PDF and DOCX documents of this benchmark."
		log "Install it with tools/deps.sh test (libreoffice-writer-nogui), then run this again. Nothing was measured."
		exit 1
	fi
	rm -rf "$DD"
	mkdir -p "$DD"
	log "generating $DOCS documents with LibreOffice into $DD (cached for later runs)"
	python3 "$LIB" texts "$DD" --docs "$DOCS" --seed "$SEED" >/dev/null || die "extract_bench.py texts failed"
	# A profile of our own: soffice hands files to an instance already running with the
	# same profile (someone else's), and two first starts on one profile collide.
	LO_PROFILE="file://$OUT/lo-profile"
	for kind in pdf docx; do
		filter=$kind
		[ "$kind" = docx ] && filter='docx:MS Word 2007 XML'
		timeout 3600 "$SOFFICE" "-env:UserInstallation=$LO_PROFILE" --headless --norestore \
			--convert-to "$filter" --outdir "$DD/$kind" "$DD"/src/"$kind"-*.txt >"$LOG/soffice-$kind.log" 2>&1 ||
			die "soffice --convert-to $kind failed  [$LOG/soffice-$kind.log]"
	done
	python3 "$LIB" manifest "$DD" >"$LOG/manifest.txt" || die "documents missing  [$LOG/soffice-*.log]"
	rm -rf "$DD/eml"
	python3 "$LIB" emls "$DD" "$DD/eml" >"$LOG/emls.txt" || die "extract_bench.py emls failed"
	rm -rf "$DD/src"
else
	log "reusing documents $DD"
fi
python3 -c 'import json, sys
m = json.load(open(sys.argv[1]))
for k in ("pdf", "docx"):
    d = [x for x in m["documents"] if x["kind"] == k]
    pages = [x["pages"] or 0 for x in d]
    mb = sum(x["bytes"] for x in d) / 1e6
    print(f"{k}: {len(d)} documents, {mb:.1f} MB, {sum(pages)} pages, {min(pages)}-{max(pages)} per document")' \
	"$DD/manifest.json" | while read -r line; do log "$line"; done

# ---------------------------------------------------------------- helpers
# timed STEP CMD...: GNU time -v; stdout -> LOG/STEP.out, stderr -> LOG/STEP.err;
# sets T_RC and T_LOAD (load average just before).
timed() {
	local step=$1; shift
	T_LOAD=$(cut -d' ' -f1 /proc/loadavg)
	T_RC=0
	# GNU time -v for peak RSS (as the other benches); around it a child subreaper
	# (pst_bench.py run) for wall time in ns and the CPU of every descendant, also
	# the ones that outlive their parent and that GNU time does not count.
	python3 "$HERE/pst_bench.py" run "$LOG/$step.tree" -- /usr/bin/time -v -o "$LOG/$step.time" "$@" \
		>"$LOG/$step.out" 2>"$LOG/$step.err" || T_RC=$?
}
warm() { find "$@" -type f -print0 | xargs -0 -r cat >/dev/null; }
step_json() {  # NAME ROUND STEP [KEY=VALUE...]
	local name=$1 r=$2 step=$3; shift 3
	python3 "$LIB" step "$WORK/steps/$step.json" "name=$name" "round=$r" "rc=$T_RC" \
		"loadavg_before=$T_LOAD" "time_file=$LOG/$step.time" "tree_file=$LOG/$step.tree" "$@" || die "$step: no figures  [$LOG/$step.time]"
}

# mv_import NAME ROUND SRC [BIN]: init a fresh data dir (not timed), import SRC timed.
# Leaves the data dir in $WORK/data-NAME.
mv_import() {
	local name=$1 r=$2 src=$3 bin=${4:-$BIN} D=$WORK/data-$1 step="$1-$2"
	rm -rf "$D"
	"$bin" --data-dir "$D" init >"$LOG/init-$step.log" 2>&1 || die "mailvault init failed  [$LOG/init-$step.log]"
	warm "$src"
	timed "$step" "$bin" --data-dir "$D" import "$src" --archive bench --format emldir --json --quiet
	cp "$LOG/$step.out" "$LOG/$step.json"
	[ "$T_RC" = 0 ] || [ "$T_RC" = 3 ] || log "$step: import exited $T_RC  [$LOG/$step.err]"
	step_json "$name" "$r" "$step" "import_json=$LOG/$step.json"
}

# peer NAME ROUND TOOL JOBS FILES...: TOOL IN OUT once per file, JOBS at a time
# (interleaved lists, one shell loop each), into a fresh directory; all under one GNU time.
PEER_LOOP='tool=$1 jobs=$2 out=$3; shift 3; files=("$@")
for ((j = 0; j < jobs; j++)); do
	(for ((i = j; i < ${#files[@]}; i += jobs)); do
		f=${files[i]}; b=${f##*/}
		"$tool" "$f" "$out/${b%.*}.txt" >/dev/null 2>&1 || echo "failed: $f" >&2
	done) &
done
wait'
peer() {
	local name=$1 r=$2 tool=$3 jobs=$4 step="$1-$2"; shift 4
	local T=$WORK/txt-$name
	rm -rf "$T"; mkdir -p "$T"
	warm "$@"
	timed "$step" bash -c "$PEER_LOOP" _ "$tool" "$jobs" "$T" "$@"
	[ -s "$LOG/$step.err" ] && log "$step: $(grep -c . "$LOG/$step.err") files failed  [$LOG/$step.err]"
	step_json "$name" "$r" "$step"
}

# ---------------------------------------------------------------- extraction rounds
mapfile -t PDFS < <(find "$DD/pdf" -name '*.pdf' | sort)
mapfile -t DOCXS < <(find "$DD/docx" -name '*.docx' | sort)
E=$DD/eml
log "binary $BIN; $ROUNDS rounds: 6 imports (all/pdf/docx x documents/random) + peers; load average $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A CHECK
for ((r = 1; r <= ROUNDS; r++)); do
	for set in all pdf docx; do
		src_d=$E/docs/$set; src_r=$E/rand/$set
		[ "$set" = all ] && { src_d=$E/docs; src_r=$E/rand; }
		if ((r % 2)); then
			mv_import "mv-docs-$set" "$r" "$src_d"; mv_import "mv-rand-$set" "$r" "$src_r"
		else
			mv_import "mv-rand-$set" "$r" "$src_r"; mv_import "mv-docs-$set" "$r" "$src_d"
		fi
	done
	if [ "$HAVE_PDFTOTEXT" = 1 ]; then
		peer pdftotext "$r" pdftotext 1 "${PDFS[@]}"
		peer pdftotext-par "$r" pdftotext "$JOBS" "${PDFS[@]}"
	fi
	if [ "$HAVE_DOCX2TXT" = 1 ]; then
		peer docx2txt "$r" docx2txt 1 "${DOCXS[@]}"
		peer docx2txt-par "$r" docx2txt "$JOBS" "${DOCXS[@]}"
	fi
	log "round $r/$ROUNDS: import with documents $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("wall_s"))' "$WORK/steps/mv-docs-all-$r.json") s, with random bytes $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("wall_s"))' "$WORK/steps/mv-rand-all-$r.json") s"
done

# ---------------------------------------------------------------- checks on the last round
# Is the documents' text in the index?  zqallpdf / zqalldocx are in every PDF / DOCX
# (first page); the 50-page documents' own words are on their last page.
D=$WORK/data-mv-docs-all
search_count() {  # DATA_DIR WORD
	"$BIN" --data-dir "$1" search "$2" --limit 0 --json >"$LOG/search-$2.json" 2>"$LOG/search-$2.err"
	python3 "$LIB" hits "$LOG/search-$2.json"
}
NPDF=${#PDFS[@]}; NDOCX=${#DOCXS[@]}
h_pdf=$(search_count "$D" zqallpdf); h_docx=$(search_count "$D" zqalldocx)
long_pdf=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); d=max((x for x in m["documents"] if x["kind"]==sys.argv[2]), key=lambda x: x["pages"] or 0); print(d["own_word"], d["pages"])' "$DD/manifest.json" pdf)
long_docx=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); d=max((x for x in m["documents"] if x["kind"]==sys.argv[2]), key=lambda x: x["pages"] or 0); print(d["own_word"], d["pages"])' "$DD/manifest.json" docx)
h_lpdf=$(search_count "$D" "${long_pdf% *}"); h_ldocx=$(search_count "$D" "${long_docx% *}")
h_rand=$(search_count "$WORK/data-mv-rand-all" zqallpdf)
CHECK[mailvault]="search zqallpdf: $h_pdf of $NPDF PDF messages; zqalldocx: $h_docx of $NDOCX DOCX messages; last-page word of the ${long_pdf#* }-page PDF: $h_lpdf hit, of the ${long_docx#* }-page DOCX: $h_ldocx hit; random-bytes import: $h_rand hits"
unread=$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j.get("unreadableAttachments", "n/a"), "; ".join(e.get("reason","") for e in (j.get("attachmentErrors") or [])[:3]))' "$LOG/mv-docs-all-$ROUNDS.json" 2>/dev/null || echo '?')
mal_d=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("malformed"))' "$LOG/mv-docs-all-$ROUNDS.json" 2>/dev/null || echo '?')
mal_r=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("malformed"))' "$LOG/mv-rand-all-$ROUNDS.json" 2>/dev/null || echo '?')
CHECK[mailvault_malformed]="messages counted 'archived but malformed': $mal_d with documents, $mal_r with random bytes (of ${#PDFS[@]}+${#DOCXS[@]})"
CHECK[mailvault_unreadable]="attachments reported not searchable in the documents import: $unread"
if [ "$h_pdf" -gt 0 ] 2>/dev/null || [ "$h_docx" -gt 0 ] 2>/dev/null; then ACTIVE=true; else ACTIVE=false; fi
if [ "$HAVE_PDFTOTEXT" = 1 ]; then
	read -r g t < <(python3 "$LIB" peercheck "$DD" pdf "$WORK/txt-pdftotext")
	CHECK[pdftotext]="$g of $t text files hold their document's last-page word"
fi
if [ "$HAVE_DOCX2TXT" = 1 ]; then
	read -r g t < <(python3 "$LIB" peercheck "$DD" docx "$WORK/txt-docx2txt")
	CHECK[docx2txt]="$g of $t text files hold their document's last-page word"
fi
if [ "$KEEP" = 0 ]; then rm -rf "$WORK"/data-* "$WORK"/txt-*; fi

# ---------------------------------------------------------------- SpamAssassin, extraction on
SA_DOCS=null
if [ "$SA" = 1 ]; then
	SA_ROOT=$(python3 "$REPO/../shared/corpus/spamassassin" 2>"$LOG/sa-corpus.err" | tail -n 1) || SA_ROOT=
	if [ -z "$SA_ROOT" ] || [ ! -d "$SA_ROOT/eml" ]; then
		log "SpamAssassin corpus unavailable (../shared/corpus/spamassassin): skipped  [$LOG/sa-corpus.err]"
	else
		SA_DOCS=$(python3 "$LIB" sadocs "$SA_ROOT/eml" 2>/dev/null || echo null)
		for ((r = 1; r <= SA_ROUNDS; r++)); do
			if [ -n "$BASE_BIN" ] && ! ((r % 2)); then mv_import sa-base "$r" "$SA_ROOT/eml" "$BASE_BIN"; fi
			mv_import sa "$r" "$SA_ROOT/eml"
			if [ -n "$BASE_BIN" ] && ((r % 2)); then mv_import sa-base "$r" "$SA_ROOT/eml" "$BASE_BIN"; fi
			log "SpamAssassin round $r/$SA_ROUNDS: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("wall_s"))' "$WORK/steps/sa-$r.json") s"
			[ "$KEEP" = 1 ] || rm -rf "$WORK/data-sa" "$WORK/data-sa-base"
		done
	fi
fi

# ---------------------------------------------------------------- report
python3 - "$WORK/run.json" "$DD" "$ROUNDS" "$BIN" "$JOBS" "$INVOCATION" "$ACTIVE" "$SA_DOCS" "$BASE_BIN" \
	"$(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo '?')" \
	"$(pdftotext -v 2>&1 | head -n 1)" "$([ -n "$SOFFICE" ] && "$SOFFICE" --version 2>/dev/null | head -n 1)" \
	"mailvault=${CHECK[mailvault]}" "mailvault_unreadable=${CHECK[mailvault_unreadable]}" \
	"mailvault_malformed=${CHECK[mailvault_malformed]}" \
	"pdftotext=${CHECK[pdftotext]:-}" "docx2txt=${CHECK[docx2txt]:-}" <<'EOF'
import json, sys
(out, dd, rounds, binp, jobs, inv, active, sadocs, base, head, pdftotext, soffice, *checks) = sys.argv[1:]
c = {}
for kv in checks:
    k, _, v = kv.partition("=")
    if v:
        c[k] = v
c["extraction_active"] = active == "true"
c["sa_documents"] = json.loads(sadocs)
json.dump({"docs_dir": dd, "rounds": int(rounds), "mailvault_bin": binp, "jobs": int(jobs),
           "invocation": inv, "checks": c, "base_bin": base or None, "head": head,
           "pdftotext": pdftotext, "soffice": soffice}, open(out, "w"), indent=1)
EOF
python3 "$LIB" report "$WORK" || die "the report failed"
echo
echo "binary: $BIN (built $(date -r "$BIN" '+%Y-%m-%d %H:%M'), HEAD $(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo '?') at run time); $(pdftotext -v 2>&1 | head -n 1); docx2txt $(dpkg-query -W -f='${Version}' docx2txt 2>/dev/null || echo '?'); documents by $([ -n "$SOFFICE" ] && "$SOFFICE" --version 2>/dev/null | head -n 1 || echo 'LibreOffice (cached)')"
echo "command: ${MAILVAULT_BIN:+MAILVAULT_BIN=$MAILVAULT_BIN }${EXTRACT_BASE_BIN:+EXTRACT_BASE_BIN=$EXTRACT_BASE_BIN }$INVOCATION"
echo "logs: $LOG"
