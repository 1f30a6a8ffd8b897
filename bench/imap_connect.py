#!/usr/bin/env python3
"""Opening an IMAPS connection, phase by phase, mailvault beside a private
Dovecot in the same run: TCP connect, TLS handshake, the greeting, LOGIN;
medians over N connections and CPU per connection on each side (from
/proc and getrusage).  Prints one line per case; never fails on a figure.

usage: bench/imap_connect.py BIN N [S_TIME_SECONDS]
  BIN             the mailvault binary (e.g. build-release/mailvault)
  N               connections per case (after one warm-up)
  S_TIME_SECONDS  also run `openssl s_time -new` against both for that long
Needs dovecot-imapd and openssl (tools/deps.sh bench)."""
import os, sys, ssl, socket, time, statistics, subprocess, tempfile, resource
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ["MAILVAULT_BIN"] = sys.argv[1]
N = int(sys.argv[2])
sys.path.insert(0, os.path.join(REPO, "tests", "system"))
from mvserver import MvServer, init_with_admin
import dovecot

def cpu_of_pids(pids):
    t = 0
    for pid in pids:
        try:
            f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
            t += int(f[11]) + int(f[12])   # utime stime (of this process)
            t += int(f[13]) + int(f[14])   # cutime cstime (waited-for children)
        except OSError:
            pass
    return t / os.sysconf("SC_CLK_TCK")

def group_pids(pgid):
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if os.getpgid(int(p)) == pgid:
                    out.append(int(p))
            except OSError:
                pass
    return out

def readline(s, buf=b""):
    while b"\r\n" not in buf:
        d = s.recv(4096)
        if not d:
            raise EOFError
        buf += d
    return buf

def one(host, port, ctx, user, pw, nodelay):
    t0 = time.perf_counter()
    raw = socket.create_connection((host, port))
    if nodelay:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    t1 = time.perf_counter()
    s = ctx.wrap_socket(raw, server_hostname=host)
    t2 = time.perf_counter()
    readline(s)
    t3 = time.perf_counter()
    t4 = t3
    if user:
        s.sendall(b"a LOGIN %s \"%s\"\r\n" % (user.encode(), pw.encode()))
        buf = b""
        while b"a OK" not in buf and b"a NO" not in buf and b"a BAD" not in buf:
            d = s.recv(4096)
            if not d:
                break
            buf += d
        assert b"a OK" in buf, buf
        t4 = time.perf_counter()
    s.close()
    return (t1 - t0, t2 - t1, t3 - t2, t4 - t3, time.perf_counter() - t0)

def run(label, host, port, ctx, user, pw, pids_fn, nodelay=False):
    one(host, port, ctx, user, pw, nodelay)  # warm (cached password check etc.)
    pids = pids_fn()
    c0 = cpu_of_pids(pids); r0 = resource.getrusage(resource.RUSAGE_SELF)
    w0 = time.perf_counter()
    rows = [one(host, port, ctx, user, pw, nodelay) for _ in range(N)]
    wall = time.perf_counter() - w0
    r1 = resource.getrusage(resource.RUSAGE_SELF); c1 = cpu_of_pids(pids_fn() if pids_fn else [])
    cl = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    cols = list(zip(*rows))
    med = [statistics.median(c) * 1000 for c in cols]
    p90 = [sorted(c)[int(len(c) * 0.9)] * 1000 for c in cols]
    print("%-44s connect %5.2f  tls %6.2f  greeting %6.2f  login %6.2f  total %6.2f ms (median; p90 total %.1f) | per conn: client CPU %.2f ms, server CPU %.2f ms, wall %.2f ms"
          % (label, *med, p90[4], cl / N * 1000, (c1 - c0) / N * 1000, wall / N * 1000), flush=True)

work = tempfile.mkdtemp(prefix="hs-")
data = os.path.join(work, "mv")
pw = init_with_admin(data)
srv = MvServer(data, password=pw).start()
dvroot = tempfile.mkdtemp(prefix="hs-dv-"); os.chmod(dvroot, 0o755)
dv = dovecot.Dovecot(dvroot, os.getuid() == 0).start()
try:
    print(subprocess.run(["openssl", "x509", "-noout", "-subject", "-text", "-in", srv.cert_path()], capture_output=True, text=True).stdout
          .split("Signature Value")[0][:1500])
    mvctx = ssl.create_default_context(cafile=srv.cert_path())
    dvctx = dv.ssl_context()
    mvp = lambda: [srv.proc.pid]
    dvp = lambda: group_pids(dv.proc.pid)
    for nd in (False, True):
        sfx = " (client TCP_NODELAY)" if nd else ""
        run("mailvault TLS+greeting" + sfx, "127.0.0.1", srv.imaps_port, mvctx, None, None, mvp, nd)
        run("mailvault TLS+greeting+LOGIN" + sfx, "127.0.0.1", srv.imaps_port, mvctx, "admin", pw, mvp, nd)
        run("dovecot TLS+greeting" + sfx, "localhost", dv.tls_port, dvctx, None, None, dvp, nd)
        run("dovecot TLS+greeting+LOGIN" + sfx, "localhost", dv.tls_port, dvctx, dv.user, dv.password, dvp, nd)
    # TLS 1.2 only, to see whether the TLS 1.3 session tickets matter
    for lbl, host, port, ctxf in (("mailvault", "127.0.0.1", srv.imaps_port, lambda: ssl.create_default_context(cafile=srv.cert_path())),
                                  ("dovecot", "localhost", dv.tls_port, dv.ssl_context)):
        c = ctxf(); c.maximum_version = ssl.TLSVersion.TLSv1_2
        run(lbl + " TLS1.2 TLS+greeting", host, port, c, None, None, mvp if lbl == "mailvault" else dvp)
    print("PORTS", srv.imaps_port, dv.tls_port, flush=True)
    if len(sys.argv) > 3:
        for port in (srv.imaps_port, dv.tls_port):
            cp = subprocess.run(["openssl", "s_time", "-connect", "127.0.0.1:%d" % port, "-new", "-time", sys.argv[3]],
                                capture_output=True, text=True)
            print("s_time", "mailvault" if port == srv.imaps_port else "dovecot", [l for l in cp.stdout.splitlines() if "connections" in l])
finally:
    srv.stop(); dv.stop()
