#!/usr/bin/python3
"""`make mutants`: break one important check at a time and prove a test
notices (issue 20).  Outside `make test`: each mutant costs a rebuild and a
test run.

For each mutant below: the file, a piece of its code that must occur
exactly once, what replaces it, and the tests that must then fail.  The
script makes one scratch copy of the working tree (git worktree of HEAD
plus the uncommitted changes), configures one build there, then per mutant
applies the change, rebuilds incrementally, runs the named tests against
that binary, and puts the file back.  A mutant whose code is no longer
found is reported STALE and fails the run: a refactor must carry the
mutants along, not silently drop them.

Exit status 0 only when every mutant is killed.

  tools/mutants.py [--keep] [NAME...]     (default: all)
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name, file, code as it is, code as the mutant has it, tests that must fail
MUTANTS = [
    ("audit-user-not-hashed", "src/archive/audit.c",
     "hash_text(&h, e->user) != 0 || ", "",
     ["tests/system/test_audit_tamper.py"]),
    ("audit-success-not-hashed", "src/archive/audit.c",
     "uint8_t success = e->success ? 1 : 0;", "uint8_t success = 0;",
     ["tests/system/test_audit_tamper.py"]),
    ("audit-seq-gap-unchecked", "src/archive/audit.c",
     "if (e->seq != expected_seq)", "if (0)",
     ["tests/system/test_audit_tamper.py"]),
    ("move-subtree-unchecked", "src/commands/cmd_folders.c",
     "\treturn subtree_allowed(ctx, \"MoveFolder\", from, needed, across ? \"write and delete\" : \"write\", error);",
     "\treturn true || subtree_allowed(ctx, \"MoveFolder\", from, needed, \"write\", error);",
     ["tests/system/test_folder_rights_subtree.py"]),
    ("move-across-archives-without-delete", "src/commands/cmd_folders.c",
     "unsigned needed = MV_FOLDER_WRITE | (across ? MV_FOLDER_DELETE : 0);",
     "unsigned needed = MV_FOLDER_WRITE;",
     ["tests/system/test_folder_rights_subtree.py"]),
    ("delete-empty-folders-ignores-rights", "src/commands/cmd_folders.c",
     "restricted ? may_delete_folder : NULL",
     "(restricted && 0) ? may_delete_folder : NULL",
     ["tests/system/test_privileges.py::test_delete_empty_folders_does_not_reveal_hidden_folders",
      "tests/system/test_folder_rights_subtree.py"]),
    ("read-skips-content-hash", "src/store/store.c",
     "sodium_memcmp(got, want, MV_HASH_BYTES) != 0", "0",
     ["tests/system/test_content_integrity.py"]),
    ("verify-ignores-content-mismatch", "src/store/verify.c",
     "sodium_memcmp(slot->hash, sqlite3_column_blob(st, 3), MV_HASH_BYTES) != 0", "0",
     ["tests/system/test_verify_problems.py"]),
    ("verify-ignores-missing-tombstone", "src/store/verify.c",
     "mv_journal_problem(&v->rep, \"tombstoneMissing\"", "if (0) mv_journal_problem(&v->rep, \"tombstoneMissing\"",
     ["tests/system/test_verify_problems.py"]),
    ("verify-ignores-missing-record", "src/store/verify.c",
     "mv_journal_problem(&v->rep, \"recordMissing\"", "if (0) mv_journal_problem(&v->rep, \"recordMissing\"",
     ["tests/system/test_verify_problems.py"]),
    ("verify-ignores-missing-row", "src/store/verify.c",
     "mv_journal_problem(&v->rep, \"rowMissing\"", "if (0) mv_journal_problem(&v->rep, \"rowMissing\"",
     ["tests/system/test_verify_problems.py"]),
    ("verify-ignores-unindexed", "src/store/verify.c",
     "mv_journal_problem(&v->rep, \"notIndexed\"", "if (0) mv_journal_problem(&v->rep, \"notIndexed\"",
     ["tests/system/test_verify_problems.py"]),
    ("create-store-parent-not-synced", "src/archive/stores.c",
     "bool last = strlen(parent) <= strlen(existed) || strcmp(parent, d) == 0;", "bool last = true;",
     ["tests/system/test_power_loss.py::test_create_store_survives_power_loss"]),
    ("fsync-is-a-no-op", "src/base/base.c",
     "\tif (fsync(fd) == 0)\n\t\treturn 0;", "\treturn 0;",
     ["tests/system/test_power_loss.py"]),
    ("secret-argument-shown", "src/commands/registry.c",
     "return a && a->type == MV_ARG_SECRET;",
     "return a && a->type == MV_ARG_SECRET && 0;",
     ["tests/system/test_stores.py::test_store_moves_to_another_instance", "tests/unit"]),
    ("legal-hold-not-checked", "src/archive/compliance.c",
     "bool held = c.legal_hold_enabled;", "bool held = false;",
     ["tests/system/test_privileges.py::test_legal_hold_refuses_every_removal"]),
    ("store-db-made-plain", "src/store/db_files.c",
     "return mv_sql_file_kind_of(dbp) != MV_SQL_FILE_PLAIN;", "return false;",
     ["tests/system/test_encryption_at_rest.py"]),
    ("index-opened-plain", "src/store/db_files.c",
     "\tif (!db_encrypted)\n\t\treturn kind == MV_SQL_FILE_ENCRYPTED;", "\treturn false;",
     ["tests/system/test_encryption_at_rest.py"]),
    ("plain-db-claiming-format-3-accepted", "src/store/store.c",
     "if (!s->encrypted && version >= 3) {", "if (0) {",
     ["tests/system/test_encryption_at_rest.py::test_a_file_not_the_stores_own_is_refused_by_name"]),
    ("file-key-not-checked-on-open", "src/base/sql_encrypted.c",
     "\t    check_key_opens(db, \"main\", path, error) < 0) {", "\t    0) {",
     ["tests/system/test_encryption_at_rest.py::test_a_file_not_the_stores_own_is_refused_by_name"]),
    ("index-notes-never-settled", "src/store/store.c",
     "\tif (mv_index_notes_settle(s, error) < 0)\n\t\tgoto out;\n", "",
     ["tests/system/test_index_notes.py"]),
    ("recover-restores-twice", "src/store/recover.c",
     "if (c->recover_deleted && forget_restored(c, json_integer_value(n)))",
     "if (0 && forget_restored(c, json_integer_value(n)))",
     ["tests/system/test_recover_replay.py"]),
    ("recover-move-collides", "src/store/recover.c",
     "\tfor (guint i = 0; rc == 0 && i + 1 < pairs->len; i += 2)", "\tfor (guint i = 0; 0; i += 2)",
     ["tests/system/test_recover_replay.py"]),
    ("upgrade-leaves-index-plain", "src/store/upgrade.c",
     "\tif (mv_sql_file_kind_of(ixp) != MV_SQL_FILE_PLAIN)\n\t\treturn 0;\n\tsqlite3 *ix = NULL",
     "\treturn 0;\n\tsqlite3 *ix = NULL",
     ["tests/system/test_upgrade.py::test_upgrade_store"]),
    ("scheduler-runs-a-job-twice-at-once", "src/jobs/scheduler.c",
     "if (running_locked(s, RUN_JOB, id) || asked) {", "if (asked) {",
     ["tests/system/test_jobs.py::test_run_now_never_twice_at_once_and_cancel"]),
    ("scheduler-ignores-safe-mode", "src/jobs/scheduler.c",
     "\tbool held = s->safe_mode;", "\tbool held = false;",
     ["tests/system/test_jobs.py::test_safe_mode_holds_jobs_and_a_missed_run_runs_once"]),
    ("scheduler-last-run-not-kept", "src/jobs/scheduler.c",
     "\tint64_t since = j->last_run ? j->last_run : j->created_at, next = 0;",
     "\tint64_t since = j->created_at, next = 0;",
     ["tests/system/test_jobs.py::test_a_job_dated_ahead_runs_once_at_its_time"]),
    ("file-kind-raw-descriptor", "src/base/sql_encrypted.c",
     "\tif (read_header(path, head) != SQLITE_OK)",
     "\tint fd = open(path, O_RDONLY);\n\tif (fd >= 0)\n\t\tclose(fd);\n\tif (read_header(path, head) != SQLITE_OK)",
     ["tests/unit"]),
    ("mailbox-state-past-a-broken-fetch", "src/sources/imap_source.c",
     "\tuint64_t last = complete && sel->uidnext > 0 ? sel->uidnext - 1 : old->last_uid;",
     "\tuint64_t last = sel->uidnext > 0 ? sel->uidnext - 1 : old->last_uid;\n\tcomplete = true;",
     ["tests/system/test_profile_imap.py::test_dovecot_killed_mid_run_then_next_run_completes"]),
    ("mailbox-uidvalidity-ignored", "src/sources/imap_source.c",
     "\tconst mv_mailbox_folder_state *from = st && st->uidvalidity == sel.uidvalidity ? st : &empty;",
     "\tconst mv_mailbox_folder_state *from = st ? st : &empty;",
     ["tests/system/test_profile_imap.py::test_uidvalidity_reset_archives_no_duplicate_and_misses_nothing"]),
    ("killed-run-not-reported", "src/cli/serve.c",
     "\tif (mv_worker_runs_settle(inst, &settled, &err) < 0) {", "\tif (0) {",
     ["tests/system/test_profile_crash.py"]),
]


def run(cmd, **kw):
    return subprocess.run(cmd, **kw)


def scratch_copy(keep):
    base = tempfile.mkdtemp(prefix="mv-mutants-")
    tree = os.path.join(base, "tree")
    run(["git", "-C", ROOT, "worktree", "add", "--detach", "-f", tree, "HEAD"], check=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    diff = run(["git", "-C", ROOT, "diff", "HEAD"], check=True, capture_output=True).stdout
    if diff:
        run(["git", "-C", tree, "apply", "-"], input=diff, check=True)
    # The tests find the corpus script beside the repository (../shared):
    # without it beside the scratch tree, corpus tests skip and every
    # mutant they guard "survives".
    shared = os.path.join(os.path.dirname(ROOT), "shared")
    if os.path.isdir(shared):
        os.symlink(shared, os.path.join(base, "shared"))
    return base, tree


def build(tree, log):
    b = os.path.join(tree, "build-mutant")
    if not os.path.isfile(os.path.join(b, "build.ninja")):
        if run(["meson", "setup", b, "--buildtype=debugoptimized", "-Dtests=enabled"], cwd=tree, stdout=log,
               stderr=log).returncode != 0:
            return None
    if run(["ninja", "-C", b], stdout=log, stderr=log).returncode != 0:
        return None
    return b


def tests_fail(tree, b, tests, log):
    """True when the named tests fail against the binary in b."""
    unit = [t for t in tests if t == "tests/unit"]
    system = [t for t in tests if t != "tests/unit"]
    failed = False
    if unit:
        failed |= run(["meson", "test", "-C", b, "--suite", "unit"], stdout=log, stderr=log).returncode != 0
    if system:
        env = dict(os.environ, MAILVAULT_BIN=os.path.join(b, "mailvault"))
        # Exit 1 is "tests failed"; 2, 4 and 5 (interrupted, usage error, no
        # test collected) are no kill: a renamed test must not pass for one.
        rc = run(["/usr/bin/python3", "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider"] + system,
                 cwd=tree, env=env, stdout=log, stderr=log).returncode
        if rc not in (0, 1):
            raise RuntimeError("pytest could not run %s (exit %d)" % (" ".join(system), rc))
        failed |= rc == 1
    return failed


def tests_fail_or_none(tree, b, tests, log):
    try:
        return tests_fail(tree, b, tests, log)
    except RuntimeError as e:
        print(e, file=log)
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", action="store_true", help="keep the scratch tree")
    ap.add_argument("names", nargs="*")
    opts = ap.parse_args()
    chosen = [m for m in MUTANTS if not opts.names or m[0] in opts.names]
    base, tree = scratch_copy(opts.keep)
    log_path = os.path.join(base, "mutants.log")
    verdicts = []
    try:
        with open(log_path, "w") as log:
            if not build(tree, log):
                print("the unmutated tree does not build; see %s" % log_path)
                return 2
            for name, rel, old, new, tests in chosen:
                path = os.path.join(tree, rel)
                with open(path) as f:
                    text = f.read()
                if old is None or text.count(old) != 1:
                    verdicts.append((name, "STALE", "its code is not found once in %s" % rel))
                    continue
                missing = [t for t in tests if not os.path.exists(os.path.join(tree, t.split("::")[0]))]
                if missing:
                    # A test that cannot run must not count as a kill.
                    verdicts.append((name, "STALE", "no such test: %s" % ", ".join(missing)))
                    continue
                t0 = time.time()
                print("== %s: %s" % (name, rel), file=log, flush=True)
                with open(path, "w") as f:
                    f.write(text.replace(old, new))
                try:
                    b = build(tree, log)
                    if not b:
                        verdicts.append((name, "STALE", "the mutant does not build"))
                    elif (verdict := tests_fail_or_none(tree, b, tests, log)) is None:
                        verdicts.append((name, "STALE", "its tests could not run (see the log)"))
                    elif verdict:
                        verdicts.append((name, "killed", "%.0f s" % (time.time() - t0)))
                    else:
                        verdicts.append((name, "SURVIVED", "; ".join(tests)))
                finally:
                    with open(path, "w") as f:
                        f.write(text)
    finally:
        if not opts.keep:
            run(["git", "-C", ROOT, "worktree", "remove", "--force", tree], stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
    for name, verdict, detail in verdicts:
        print("%-40s %-9s %s" % (name, verdict, detail))
    bad = [v for v in verdicts if v[1] != "killed"]
    print("%d mutants: %d killed, %d survived or stale (log: %s)" % (len(verdicts), len(verdicts) - len(bad),
                                                                    len(bad), log_path))
    if not opts.keep and not bad:
        shutil.rmtree(base, ignore_errors=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
