"""Why mailvault speaks IMAP itself after libcurl logs on (ARCHITECTURE.md, Dependencies):
libcurl fetches one message per request (one UID per URL, over one reused connection),
while mailvault pipelines UID FETCH ranges.  This times both on one private Dovecot
mailbox of N messages (default 3000), curl only fetching, mailvault fetching and archiving.

usage: N=3000 /usr/bin/python3 bench/imap_client_choice.py   (needs build-release/mailvault, dovecot, curl)"""
import sys, os, subprocess, time, tempfile, json
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "system"))
import dovecot
N = int(os.environ.get("N", "3000"))
d = dovecot.start("/tmp", users={"alice": "pw-a"})
try:
    body = ("x" * 70 + "\r\n") * 80
    msgs = [("From: a@b.org\r\nTo: alice@example.org\r\nSubject: m%d\r\nMessage-ID: <m%d@b>\r\n\r\n%s" % (i, i, body)).encode() for i in range(N)]
    d.deliver_many("alice", "INBOX", msgs)
    m = d.imap("alice", "pw-a"); m.select("INBOX"); m.fetch("1:*", "(FLAGS)"); m.logout()
    t = time.monotonic()
    r = subprocess.run(["curl", "-s", "-u", "alice:pw-a", "imap://127.0.0.1:%d/INBOX;UID=[1-%d]" % (d.port, N), "-o", "/dev/null"], capture_output=True)
    tc = time.monotonic() - t
    data = tempfile.mkdtemp(); mv = os.environ.get("MAILVAULT_BIN", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build-release", "mailvault"))
    subprocess.run([mv, "--data-dir", data, "init"], capture_output=True)
    props = {"name": "t", "type": "I", "connector": "IMAP", "details": {"host": "127.0.0.1:%d" % d.port, "protocol": "IMAP", "userName": "alice", "password": "pw-a", "targetArchive": "admin"}}
    t = time.monotonic()
    r2 = subprocess.run([mv, "--data-dir", data, "cmd", "RunTemporaryProfile", "--properties", json.dumps(props)], capture_output=True, text=True)
    tm = time.monotonic() - t
    print("N=%d curl one UID per request (one connection): %.2f s = %.0f msg/s; mailvault pipelined incl. archiving: %.2f s = %.0f msg/s; ratio %.1fx" % (N, tc, N / tc, tm, N / tm, tc / tm))
    print(json.loads(r2.stdout)["result"]["archived"])
finally:
    d.stop()
