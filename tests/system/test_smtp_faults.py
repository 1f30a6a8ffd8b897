"""The SMTP endpoint under faults: kill -9 of the server in the middle of a
stream of mail, a full disk, and a store made writeProtected.

What each test proves:
- test_kill9_during_smtp_stream: 4 sender threads hand in STREAM_MESSAGES
  unique messages (each its own Message-ID and body token, routed to the
  archive of alice, of bob, or of both) while the server is SIGKILLed
  KILLS times at random points of the stream and restarted on the same
  ports.  Each sender retries a message on a new connection until it gets a
  250 for it.  Afterwards every message is acknowledged, and each archive
  holds exactly the messages routed to it, each exactly once (a 250 that
  was lost to a kill and retried is a reference, not a second copy), none
  that was not sent, and each byte-exact: the SHA-256 of what `show` reads
  back equals the SHA-256 of the bytes sent.  A 250 that came before the
  fsync would show as a message missing after the kill (senders never
  resend an acknowledged message): right after each restart, before mail
  flows again, every message acknowledged before the kill is listed.
- test_disk_full_answers_4xx_then_accepts_the_retry: the data directory
  on a small tmpfs, filled to the last byte: a message gets 451/452 (never
  250 nor 5xx) and is not in the archive; once space is freed the same
  message, sent again, gets 250 and is stored exactly once, byte-exact.
- test_store_held_by_another_task_answers_4xx_then_accepts: the store's
  write lock taken by this test, as a RebuildStoreIndex or CompactStore
  holds it for minutes: a message gets 451 after [smtp] lock_wait_seconds
  (2 s here; the client's session is not kept waiting through the
  maintenance) and is not in the archive; once the lock is free, the same
  messages get 250 and are stored once, byte-exact.
- test_stale_index_is_rebuilt_by_the_server_not_by_smtp: the current
  store's index made of an older format, as after installing a newer
  mailvault.  With the server's scheduler held (safe mode), each message
  gets 451 at once — the SMTP writer does not rebuild the index inline,
  which takes minutes at a million messages while every sender waits —
  and is not in the archive.  Started normally, the server rebuilds the
  index in the background by itself (its log says so, and the index is
  of this build's format after), and the same messages, retried, get 250
  and are stored once, byte-exact.
- test_write_protected_store_takes_no_mail_then_mail_flows: in the middle of
  a stream a new store becomes current and store 1 is set writeProtected
  (the server refuses to protect the current store, so this is how a store
  the SMTP run is writing to gets protected).  From then on no message
  handed in may be written into store 1: each reply is 250 (the message in
  the new store) or 451/452, never anything else, and mail keeps being
  acknowledged; after store 1 is made current (writable) again every
  message is acknowledged and stored exactly once, byte-exact.

Shape: one data directory and server per module for the stream and the
writeProtected test (module fixture `world`), a data directory of its own
on a size-limited tmpfs for the disk-full test.  The kill points are
events (the count of acknowledged messages reaching a random threshold),
not sleeps; senders wait for the restarted server through an Event.  What
is expected is computed here from the bytes sent, never from the binary.
The archive is read through `search --json` (the store's message list)
and `show --sha256`."""

import collections
import fcntl
import glob
import os
import random
import smtplib
import subprocess
import threading
import time

import pytest

import storedb
from mvserver import MvServer, free_port, init_with_admin
from mvtest import mv, search_json, sha256, show_hashes

# 10,000 messages take ~15-20 s with the plain build on 2 cores (~700 msg/s
# through 4 connections); under ASan a few times that.
STREAM_MESSAGES = 10000
SENDERS = 4
KILLS = 3
USERS = {"alice": "alice@smtpfault.example", "bob": "bob@smtpfault.example"}
PASSWORD = "Smtp-Fault-Pw-4711"
STREAM_DEADLINE = 900          # seconds for the whole stream (ASan on 2 cores)
RETRY_PAUSE = 0.05             # a sender's back-off after a 4xx (not a synchronisation)


# ---------------------------------------------------------------------------
# messages

def routed_to(n):
    """The archives message n is addressed to: alice, bob or both."""
    return (["alice"], ["bob"], ["alice", "bob"])[n % 3]


def make_message(tag, n):
    """Unique bytes (CRLF lines, no line starting with '.', so smtplib sends
    them unchanged): the Message-ID and a body token name the message."""
    rcpts = [USERS[u] for u in routed_to(n)]
    body = "".join("line %d of %s-%d token tok%s%dz\r\n" % (i, tag, n, tag, n) for i in range(n % 5 + 1))
    data = ("From: Outside Sender <sender%d@outside.example>\r\n"
            "To: %s\r\n"
            "Subject: smtp fault %s %d\r\n"
            "Date: Fri, 04 Dec 2026 12:%02d:%02d +0000\r\n"
            "Message-ID: <%s-%d@smtpfault.test>\r\n"
            "\r\n%s" % (n % 17, ", ".join(rcpts), tag, n, n % 60, (n * 7) % 60, tag, n, body)).encode()
    return "%s-%d@smtpfault.test" % (tag, n), "sender%d@outside.example" % (n % 17), rcpts, data


class Sent:
    """What the senders handed in and what they were told, by Message-ID."""

    def __init__(self, tag, count):
        self.msgs = {}
        for n in range(count):
            mid, sender, rcpts, data = make_message(tag, n)
            self.msgs[mid] = (n, sender, rcpts, data)
        self.lock = threading.Lock()
        self.acked = set()
        self.replies = collections.defaultdict(list)   # mid -> [(code, t_start, t_end)]
        self.interrupted = set()                       # DATA sent, no reply (connection lost)
        self.acked_count = 0
        self.progress = threading.Condition(self.lock)

    def expected(self):
        """{archive: {message_id: sha256}} of what was sent."""
        exp = collections.defaultdict(dict)
        for mid, (n, _, _, data) in self.msgs.items():
            for a in routed_to(n):
                exp[a][mid] = sha256(data)
        return exp


class Refused(Exception):
    """MAIL or RCPT answered with something other than 250."""

    def __init__(self, code):
        super().__init__(code)
        self.code = code


def close_quietly(conn):
    if conn is not None:
        try:
            conn.close()
        except OSError:
            pass


def send_stream(server_port, sent, mids, up, stop, errors):
    """One sender: every message of `mids` until it is acknowledged.  A
    connection is kept for many messages; any failure, and every 4xx, opens
    a new one for the retry.  `up` is set while the server is (believed)
    running."""
    conn = None
    for mid in mids:
        n, sender, rcpts, data = sent.msgs[mid]
        while not stop.is_set():
            if not up.wait(timeout=STREAM_DEADLINE):
                errors.append("server never came back")
                return
            t0 = time.monotonic()
            code = None
            data_sent = False
            try:
                if conn is None:
                    conn = smtplib.SMTP("127.0.0.1", server_port, timeout=120)
                    conn.ehlo("sender.smtpfault.test")
                code, _ = conn.mail(sender)
                if code != 250:
                    raise Refused(code)
                for r in rcpts:
                    code, _ = conn.rcpt(r)
                    if code not in (250, 251):
                        raise Refused(code)
                data_sent = True
                code, _ = conn.data(data)
            except Refused as e:
                code = e.code
            except smtplib.SMTPServerDisconnected:
                code = None
            except smtplib.SMTPResponseException as e:     # DATA answered other than 250
                code = e.smtp_code
            except OSError:                                 # refused, reset: the server is down
                code = None
            t1 = time.monotonic()
            with sent.progress:
                sent.replies[mid].append((code, t0, t1))
                if code is None and data_sent:
                    sent.interrupted.add(mid)
                if code == 250:
                    sent.acked.add(mid)
                    sent.acked_count += 1
                sent.progress.notify_all()
            if code == 250:
                break
            if code is not None and code >= 500:
                errors.append("%s got a permanent %d" % (mid, code))
                return
            close_quietly(conn)
            conn = None
            time.sleep(RETRY_PAUSE)        # back-off before the retry
    if conn is not None:
        try:
            conn.quit()
        except OSError:
            pass


def start_senders(port, sent, up, stop, errors):
    mids = sorted(sent.msgs, key=lambda m: sent.msgs[m][0])
    threads = [threading.Thread(target=send_stream, args=(port, sent, mids[k::SENDERS], up, stop, errors),
                                daemon=True) for k in range(SENDERS)]
    for t in threads:
        t.start()
    return threads


def check_archives(d, sent, tag, sample=None):
    """Each archive holds exactly the messages routed to it, each once per
    folder, none invented, each byte-exact (all, or a sample)."""
    exp = sent.expected()
    for archive in USERS:
        hits = search_json("size:>0", d, archive=archive, limit=0)
        mine = [h for h in hits if h["messageId"].startswith(tag + "-")]
        per_folder = collections.Counter((h["folder"], h["messageId"]) for h in mine)
        dup = [k for k, c in per_folder.items() if c > 1]
        assert not dup, "%s: messages stored more than once in a folder: %s" % (archive, dup[:10])
        got = {h["messageId"] for h in mine}
        invented = sorted(got - set(sent.msgs))
        assert not invented, "%s: messages in the archive that no sender sent: %s" % (archive, invented[:10])
        misrouted = sorted(got - set(exp[archive]))
        assert not misrouted, "%s: messages not addressed to this archive: %s" % (archive, misrouted[:10])
        missing = sorted(set(exp[archive]) - got)
        assert not missing, "%s: %d acknowledged messages missing, e.g. %s" % (archive, len(missing), missing[:10])
        assert {h["folder"] for h in mine} == {"Inbox"}, collections.Counter(h["folder"] for h in mine)
        ids = [h["id"] for h in mine]
        if sample is not None:
            ids = random.Random(archive).sample(ids, min(sample, len(ids)))
        mid_of = {h["id"]: h["messageId"] for h in mine}
        digests, bad = show_hashes(ids, d)
        assert not bad, "%s: show failed: %s" % (archive, dict(list(bad.items())[:3]))
        torn = [mid_of[i] for i in ids if digests[i] != exp[archive][mid_of[i]]]
        assert not torn, "%s: %d messages whose bytes differ from what was sent: %s" % (archive, len(torn), torn[:10])


# ---------------------------------------------------------------------------
# fixtures

def make_world(data_dir, smtp_extra=""):
    """An initialised data directory with users alice and bob (each with an
    address) and [smtp] on (and smtp_extra's lines); returns (server, smtp
    port)."""
    password = init_with_admin(data_dir)
    for user, addr in USERS.items():
        mv("cmd", "CreateUser", "--userName=" + user, "--privileges=login", "--password=" + PASSWORD,
           data_dir=data_dir)
        mv("cmd", "SetUserEmailAddresses", "--userName=" + user, "--emailAddresses=" + addr, data_dir=data_dir)
    smtp_port = free_port()
    with open(os.path.join(str(data_dir), "mailvault.conf"), "w") as f:
        f.write("[smtp]\nenabled=true\nlisten=127.0.0.1:%d\nallow_networks=127.0.0.0/8\n"
                "unknown_addresses=catchall\ncatchall_archive=catchall\n%s" % (smtp_port, smtp_extra))
    # Fixed ports, so a restart after kill -9 listens where the senders connect.
    srv = MvServer(data_dir, password=password, port=free_port(), web_port=free_port(),
                   imap_port=free_port(), imaps_port=free_port())
    return srv, smtp_port


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("smtpfaults") / "data"
    srv, port = make_world(d)
    srv.start()
    yield d, srv, port
    srv.stop()


def wait_acked(sent, count, deadline):
    with sent.progress:
        while sent.acked_count < count:
            left = deadline - time.monotonic()
            assert left > 0, "only %d messages acknowledged, waited for %d" % (sent.acked_count, count)
            sent.progress.wait(timeout=min(left, 5))


def join_senders(threads, deadline):
    for t in threads:
        t.join(timeout=max(1, deadline - time.monotonic()))
    alive = [t for t in threads if t.is_alive()]
    assert not alive, "%d senders still busy at the deadline" % len(alive)


# ---------------------------------------------------------------------------
# 1. kill -9 during a stream

def test_kill9_during_smtp_stream(world):
    d, srv, port = world
    tag = "kill"
    sent = Sent(tag, STREAM_MESSAGES)
    up, stop, errors = threading.Event(), threading.Event(), []
    up.set()
    rng = random.Random(2026)
    # Kill points: random counts of acknowledged messages, spread over the stream.
    points = sorted(rng.randint(int(STREAM_MESSAGES * lo), int(STREAM_MESSAGES * hi))
                    for lo, hi in ((0.05, 0.3), (0.35, 0.6), (0.65, 0.9))[:KILLS])
    t_start = time.monotonic()
    deadline = t_start + STREAM_DEADLINE
    threads = start_senders(port, sent, up, stop, errors)
    kills = []
    try:
        for point in points:
            wait_acked(sent, point, deadline)
            up.clear()
            with sent.lock:
                acked_at_kill = set(sent.acked)
            srv.kill()
            kills.append(len(acked_at_kill))
            srv.start()
            srv.check_no_sanitizer_report()
            # What was acknowledged before the kill is there right after the restart.
            for archive in USERS:
                present = {h["messageId"] for h in search_json("size:>0", d, archive=archive, limit=0)}
                lost = sorted(m for m in acked_at_kill if archive in routed_to(sent.msgs[m][0])
                              and m not in present)
                assert not lost, "%s: %d messages acknowledged (250) before kill -9 are gone after it: %s" % (
                    archive, len(lost), lost[:10])
            up.set()
        join_senders(threads, deadline)
    finally:
        stop.set()
        up.set()
    seconds = time.monotonic() - t_start
    assert not errors, errors[:10]
    unacked = sorted(set(sent.msgs) - sent.acked)
    assert not unacked, "%d messages never acknowledged: %s" % (len(unacked), unacked[:10])
    codes = collections.Counter(c for r in sent.replies.values() for c, _, _ in r)
    check_archives(d, sent, tag)
    print("stream: %d messages, %.1fs, kills after %s acknowledged, replies %s, %d interrupted mid-DATA"
          % (STREAM_MESSAGES, seconds, kills, dict(codes), len(sent.interrupted)))
    srv.check_no_sanitizer_report()


# ---------------------------------------------------------------------------
# 3. writeProtected mid-stream (shares the world; runs after the stream)

WP_MESSAGES = 900
WP_AFTER = 200         # messages acknowledged after the protection before lifting it


def store_of(msg_id):
    return int(msg_id.split(":")[0])


def test_write_protected_store_takes_no_mail_then_mail_flows(world):
    d, srv, port = world
    tag = "wprot"
    sent = Sent(tag, WP_MESSAGES)
    up, stop, errors = threading.Event(), threading.Event(), []
    up.set()
    deadline = time.monotonic() + STREAM_DEADLINE
    threads = start_senders(port, sent, up, stop, errors)
    try:
        wait_acked(sent, WP_MESSAGES // 5, deadline)
        # The current store cannot be protected (the server refuses it), so
        # a new store becomes current first; the SMTP run, opened on store 1,
        # must not write there once it is writeProtected.
        srv.ok("CreateStore", name="wp2")
        srv.ok("SetStoreRequestedState", id=2, requestedState="current")
        assert srv.ok("SetStoreRequestedState", id=1, requestedState="writeProtected") is None
        protected_from = time.monotonic()
        with sent.lock:
            acked_before = sent.acked_count
        wait_acked(sent, acked_before + WP_AFTER, deadline)
        protected_until = time.monotonic()
        # writable (and current) again: mail keeps flowing
        assert srv.ok("SetStoreRequestedState", id=1, requestedState="current") is None
        join_senders(threads, deadline)
    finally:
        stop.set()
    assert not errors, errors[:10]
    with sent.lock:
        during = [(m, c) for m, rs in sent.replies.items() for c, t0, t1 in rs
                  if t0 >= protected_from and t1 <= protected_until]
        # messages whose every attempt began after the protection
        later = {m for m, rs in sent.replies.items() if rs and min(t0 for _, t0, _ in rs) >= protected_from
                 and any(c == 250 and t1 <= protected_until for c, _, t1 in rs)}
    bad = [(m, c) for m, c in during if c not in (250, 451, 452)]
    assert not bad, "while store 1 was writeProtected, replies other than 250/451/452: %s" % bad[:10]
    assert later, "no message was handed in and acknowledged while store 1 was writeProtected"
    unacked = sorted(set(sent.msgs) - sent.acked)
    assert not unacked, "%d messages never acknowledged after the store was writable again: %s" % (
        len(unacked), unacked[:10])
    check_archives(d, sent, tag)
    for archive in USERS:
        in_protected = sorted(h["messageId"] for h in search_json("size:>0", d, archive=archive, limit=0)
                              if h["messageId"] in later and store_of(h["id"]) == 1)
        assert not in_protected, (
            "%s: %d messages handed in after store 1 was set writeProtected were written into it: %s"
            % (archive, len(in_protected), in_protected[:10]))
    codes = collections.Counter(c for m, c in during)
    print("writeProtected: %d messages acknowledged while protected, replies then %s" % (len(later), dict(codes)))
    srv.check_no_sanitizer_report()


# ---------------------------------------------------------------------------
# 2. disk full

def fill(path):
    """Writes a file until the filesystem is full (to the last byte);
    returns its path."""
    name = os.path.join(str(path), "filler")
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 20, 4096, 1):
            block = b"\0" * size
            try:
                while os.write(fd, block) > 0:
                    pass
            except OSError:
                pass
    finally:
        os.close(fd)
    return name


def send_one(port, sender, rcpts, data):
    """(code of the DATA reply, or of the first refusal) on a new connection."""
    with smtplib.SMTP("127.0.0.1", port, timeout=120) as c:
        c.ehlo("sender.smtpfault.test")
        code, _ = c.mail(sender)
        if code != 250:
            return code
        for r in rcpts:
            code, _ = c.rcpt(r)
            if code not in (250, 251):
                return code
        try:
            code, _ = c.data(data)
        except smtplib.SMTPResponseException as e:
            code = e.smtp_code
        return code


def first_accepted(port, tag, count, first):
    """Sent(tag, count) in number order, its first `first` messages sent and
    each acknowledged with 250 (the store's files exist, the run goes on)."""
    sent = Sent(tag, count)
    items = sorted(sent.msgs.items(), key=lambda kv: kv[1][0])
    for mid, (n, sender, rcpts, data) in items[:first]:
        assert send_one(port, sender, rcpts, data) == 250, mid
    return sent, items


def assert_not_archived(d, mids, why):
    """None of mids (answered 4xx) is in any archive."""
    for archive in USERS:
        present = {h["messageId"] for h in search_json("size:>0", d, archive=archive, limit=0)}
        stored = sorted(set(mids) & present)
        assert not stored, "%s: messages %s are in the archive: %s" % (archive, why, stored)


def test_disk_full_answers_4xx_then_accepts_the_retry(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    cp = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)], capture_output=True)
    assert cp.returncode == 0, "cannot mount a tmpfs: %s" % cp.stderr.decode("utf-8", "replace")
    srv = None
    try:
        d = mnt / "data"
        srv, port = make_world(d)
        srv.start()
        sent, items = first_accepted(port, "full", 40, 20)
        filler = fill(mnt)
        refused = []
        for mid, (n, sender, rcpts, data) in items[20:]:
            code = send_one(port, sender, rcpts, data)
            assert code != 250, "%s acknowledged (250) on a full disk" % mid
            assert code in (451, 452), "%s on a full disk: %s, expected 451 or 452" % (mid, code)
            refused.append((mid, code))
        os.unlink(filler)
        srv.check_no_sanitizer_report()
        assert_not_archived(d, [m for m, _ in refused], "refused with 4xx on a full disk")
        # The same messages again, now with space: 250 and stored once.
        for mid, (n, sender, rcpts, data) in items[20:]:
            assert send_one(port, sender, rcpts, data) == 250, "%s not accepted after space was freed" % mid
        check_archives(d, sent, "full")
        print("disk full: replies on the full disk %s" % dict(collections.Counter(c for _, c in refused)))
        srv.stop()
        srv = None
    finally:
        if srv is not None:
            srv.kill()
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_store_held_by_another_task_answers_4xx_then_accepts(tmp_path):
    d = tmp_path / "data"
    srv, port = make_world(d, "lock_wait_seconds=2\n")
    srv.start()
    try:
        sent, items = first_accepted(port, "held", 12, 6)
        locks = glob.glob(os.path.join(str(d), "stores", "*", "content", ".writelock"))
        assert len(locks) == 1, locks
        # What a maintenance function holds: the server gives the lock up
        # after each group it commits, so this waits at most for one.
        with open(locks[0], "a") as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            for mid, (n, sender, rcpts, data) in items[6:]:
                t0 = time.monotonic()
                code = send_one(port, sender, rcpts, data)
                waited = time.monotonic() - t0
                assert code == 451, "%s while the store is held: %s, expected 451" % (mid, code)
                assert 1.5 < waited < 20, "%s: 451 after %.1f s, lock_wait_seconds is 2" % (mid, waited)
            assert_not_archived(d, [mid for mid, _ in items[6:]], "answered 451")
        for mid, (n, sender, rcpts, data) in items[6:]:
            assert send_one(port, sender, rcpts, data) == 250, "%s not accepted once the lock was free" % mid
        check_archives(d, sent, "held")
        srv.check_no_sanitizer_report()
        srv.stop()
        srv = None
    finally:
        if srv is not None:
            srv.kill()


def index_format(d):
    return storedb.connect(d, index=True).execute("SELECT value FROM index_state WHERE key='format_version'").fetchall()


def test_stale_index_is_rebuilt_by_the_server_not_by_smtp(tmp_path):
    d = tmp_path / "data"
    srv, port = make_world(d, "lock_wait_seconds=2\n")
    srv.start()
    try:
        sent, items = first_accepted(port, "stale", 10, 5)
        srv.stop()
        current = index_format(d)
        storedb.connect(d, index=True).execute("UPDATE index_state SET value=4 WHERE key='format_version'")
        # Held: the scheduler rebuilds nothing in safe mode, so only SMTP
        # could, and the 451 is seen without a race.
        srv = MvServer(d, password=srv.password, port=srv.port, web_port=srv.web_port, imap_port=srv.imap_port,
                       imaps_port=srv.imaps_port, extra_args=["--safe-mode"]).start()
        for mid, (n, sender, rcpts, data) in items[5:]:
            t0 = time.monotonic()
            code = send_one(port, sender, rcpts, data)
            waited = time.monotonic() - t0
            assert code == 451, "%s with a stale index: %s, expected 451" % (mid, code)
            assert waited < 20, "%s: 451 after %.1f s" % (mid, waited)
        assert index_format(d) == [(4,)], "SMTP rebuilt the index itself"
        assert_not_archived(d, [mid for mid, _ in items[5:]], "answered 451")
        srv.stop()
        srv = MvServer(d, password=srv.password, port=srv.port, web_port=srv.web_port, imap_port=srv.imap_port,
                       imaps_port=srv.imaps_port).start()
        deadline = time.monotonic() + 120
        for mid, (n, sender, rcpts, data) in items[5:]:
            while True:
                code = send_one(port, sender, rcpts, data)
                if code == 250:
                    break
                assert code == 451 and time.monotonic() < deadline, "%s while the server rebuilds: %s" % (mid, code)
                time.sleep(0.5)
        assert "store 1: bringing its index up to date in the background: succeeded" in srv.stderr(), \
            srv.stderr()[-3000:]
        assert index_format(d) == current
        check_archives(d, sent, "stale")
        srv.check_no_sanitizer_report()
        srv.stop()
        srv = None
    finally:
        if srv is not None:
            srv.kill()
