#!/usr/bin/env python3
"""
bench/bench.py: everything measured in one run on this machine, on
loopback, with durable (fsync'd) PostgreSQL commits:

  (a) nginx returning a static answer          the HTTP ceiling
  (b) nginx in front of a trivial FastCGI app  the FastCGI ceiling
  (c) pgbench running what the SMS handler     the database ceiling
      sends PostgreSQL (bench/sms-incoming.sql), and for reference the
      bare event INSERT without its derived records
  (d) telehook on signed Twilio SMS            unique MessageSids
  (e) telehook on signed Retell call_ended     unique call_ids

For each: requests/s, p50 and p99 latency, and the workers' RSS; then
the ratios d/c and d/b, p99 at about half of (d)'s peak, and the
instructions per request of parse + verify + answer (callgrind).

  (f) the peer (bench/peer: Express, the twilio SDK's validator, a pg
      pool, one INSERT of the raw event, TwiML), one process, at (d)'s
      connections, on the same kind of unique signed SMS
  (g) the same peer, two processes (node's cluster)

Then d/f and d/g: (d) and (e) over the better peer (goals 2.0 and 1.5).

  The flood: (d) at about half its peak again, beside an unauthenticated
      BENCH_FLOOD_CLIENTS (32) clients sending 1 MB JSON bodies with a
      well-formed, fresh but bogus X-Retell-Signature, BENCH_FLOOD_RATE
      (45) a second in all, from one address and under its rate limit.
      The signed traffic's p99 beside the flood over its p99 without it
      is the figure (goal: at most 4).

Run by bench/run, which builds what it needs.  BENCH_SECONDS (10),
BENCH_CONNECTIONS (16) and BENCH_WORKERS (as many as connections)
change the run; BENCH_RSS_REQUESTS=1000000 adds the RSS run: that many
unique signed SMS, in rounds, with the workers' RSS after each.
BENCH_DEFER_S sets [delivery] defer_s (default: telehook's own).

Every measured phase starts from a vacuumed, analysed database with no
autovacuum worker left running, as pgbench vacuums before its own runs:
otherwise a phase pays for the vacuum the one before it caused.
"""

import base64
import glob
import http.client
import threading
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "t"))
from harness import Stack, free_port, wait_for  # noqa: E402

SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
CONNS = int(os.environ.get("BENCH_CONNECTIONS", "16"))
# as many workers, so as many database connections, as pgbench has
WORKERS = int(os.environ.get("BENCH_WORKERS", str(CONNS)))
RSS_REQUESTS = int(os.environ.get("BENCH_RSS_REQUESTS", "0"))
THREADS = 2
BUILD = os.environ["BENCH_BUILD"]
PEER = os.path.join(BUILD, "peer")      # bench/peer, installed by bench/run
# BENCH_POOLER=transaction: the workers reach PostgreSQL through a real
# PgBouncer in transaction pooling ([database] pooler); pgbench and the
# peer still connect directly
POOLER = os.environ.get("BENCH_POOLER") or None
TOKEN = "bench-twilio-token-0123456789abcdef"
RETELL = "bench-retell-key-0123456789"
NUMBER = "+15550009000"
FLOOD_CLIENTS = int(os.environ.get("BENCH_FLOOD_CLIENTS", "32"))
FLOOD_RATE = float(os.environ.get("BENCH_FLOOD_RATE", "45"))


class Flood:
    """Clients sending 1 MB bodies that cannot verify, at a fixed rate."""

    def __init__(self, port):
        self.port = port
        self.stop = threading.Event()
        self.sent = 0
        self.codes = {}
        self.lock = threading.Lock()
        self.body = json.dumps({"event": "call_started", "call": {
            "call_id": "flood", "to_number": NUMBER,
            "x": [[1, 2, 3]] * 90000}})[:1000000]

    def client(self):
        gap = FLOOD_CLIENTS / FLOOD_RATE
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        nxt = time.monotonic()
        while not self.stop.is_set():
            sig = "v=%d,d=%s" % (int(time.time() * 1000), "ab" * 32)
            try:
                c.request("POST", "/webhooks/retell", self.body, {
                    "Content-Type": "application/json",
                    "X-Retell-Signature": sig})
                r = c.getresponse()
                r.read()
                code = r.status
            except OSError:
                c.close()
                c = http.client.HTTPConnection("127.0.0.1", self.port,
                                               timeout=30)
                code = 0
            with self.lock:
                self.sent += 1
                self.codes[code] = self.codes.get(code, 0) + 1
            nxt += gap
            self.stop.wait(max(0.0, nxt - time.monotonic()))
        c.close()

    def __enter__(self):
        self.threads = [threading.Thread(target=self.client, daemon=True)
                        for _ in range(FLOOD_CLIENTS)]
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join()


def ms(text):
    v, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(url, script=None, data=None, conns=CONNS, seconds=SECONDS):
    cmd = ["wrk", "-t", str(min(THREADS, conns)), "-c", str(conns), "-d",
           "%ds" % seconds, "--latency", "--timeout", "10s"]
    if script:
        cmd += ["-s", script]
    cmd.append(url)
    if data:
        cmd += ["--", data]
    out = subprocess.run(cmd, capture_output=True, text=True,
                         check=True).stdout
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)",
                                   out).group(1)),
            "p50": ms(re.search(r"\s50%\s+(\S+)", out).group(1)),
            "p99": ms(re.search(r"\s99%\s+(\S+)", out).group(1)),
            "requests": int(re.search(r"(\d+) requests in", out).group(1)),
            "non2xx": int(bad.group(1)) if bad else 0,
            "errors": errors.group(1) if errors else ""}


def rss_mb(pids):
    total = 0
    for pid in pids:
        with open("/proc/%d/status" % pid) as f:
            total += int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
    return total / 1024.0


def sms_line(base, path, n):
    """One unique SMS (MessageSid from n), signed as Twilio signs it for
    base + path: a line of requests.lua's files."""
    sid = "SM%032x" % n
    p = [("MessageSid", sid), ("SmsSid", sid),
         ("AccountSid", "AC" + "0" * 32), ("From", "+1555%07d" % (n % 10**7)),
         ("To", NUMBER), ("Body", "Thanks!"), ("NumMedia", "0"),
         ("SmsStatus", "received"), ("ApiVersion", "2010-04-01")]
    data = base + path
    for k in sorted({k for k, _ in p}):
        for v in sorted({v for kk, v in p if kk == k}):
            data += k + v
    sig = base64.b64encode(hmac.new(TOKEN.encode(), data.encode(),
                                    hashlib.sha1).digest()).decode()
    return "\t".join(["POST", path, "application/x-www-form-urlencoded",
                      "X-Twilio-Signature", sig, urllib.parse.urlencode(p)])


def twilio_line(stack, n):
    return sms_line(stack.public_url, "/webhooks/twilio/sms/incoming", n)


def peer_line(org, port, n):
    """The same SMS, signed for the peer's own URL (it takes the
    organization from the query string)."""
    return sms_line("http://127.0.0.1:%d" % port,
                    "/webhooks/twilio/sms/incoming?organization_id=" + org,
                    n)


class Receivers:
    """The endpoints' receivers: an nginx of their own answering 200 to
    any POST, with no access log (BENCH_RECEIVER_NICE, 19).  They stand
    for the clients' systems, which in production are other machines:
    in telehook's nginx they shared its workers' event loops with the
    webhooks and each wrote a log line (bench/README)."""

    def __init__(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="telehook-receivers-")

    def __enter__(self):
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write("""%sdaemon off;
worker_processes 1;
pid %s/nginx.pid;
error_log %s/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %s;
    server {
        listen 127.0.0.1:%d;
        keepalive_requests 100000;
        location / { default_type text/plain; return 200 'ok'; }
    }
}
""" % ("user root;\n" if os.geteuid() == 0 else "", self.dir, self.dir,
                self.dir, self.port))
        self.p = subprocess.Popen(
            ["nice", "-n", os.environ.get("BENCH_RECEIVER_NICE", "19"),
             "nginx", "-p", self.dir, "-c", conf, "-e",
             os.path.join(self.dir, "error.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)
        self.base = "http://127.0.0.1:%d" % self.port

        def up():
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port,
                                               timeout=1)
                c.request("POST", "/", "{}")
                return c.getresponse().status == 200
            except OSError:
                return False
        wait_for("the receivers' nginx", up)
        return self

    def __exit__(self, *exc):
        self.p.terminate()
        self.p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class IdleLoad:
    """A busy loop in the idle scheduling class (SCHED_IDLE): it runs
    only when nothing else wants a CPU."""

    def __enter__(self):
        self.p = subprocess.Popen(["chrt", "--idle", "0", "sh", "-c",
                                   "while :; do :; done"])
        return self

    def __exit__(self, *exc):
        self.p.kill()
        self.p.wait()


class Peer:
    """The peer (bench/peer: Express, the twilio SDK, a pg pool), as its
    README runs it: PEER_PROCS processes, a pool of 8 each, straight on
    its port."""

    def __init__(self, stack, procs):
        self.stack, self.procs = stack, procs
        self.port = free_port()

    def __enter__(self):
        env = dict(os.environ, PGHOST=self.stack.pgsock,
                   PGPORT=str(self.stack.pgport), PGUSER="telehook",
                   PGDATABASE="telehook", PORT=str(self.port),
                   TWILIO_AUTH_TOKEN=TOKEN, PEER_PROCS=str(self.procs),
                   PGPOOL="8",
                   PUBLIC_URL="http://127.0.0.1:%d" % self.port)
        self.p = subprocess.Popen(
            ["node", os.path.join(PEER, "server.js")], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)

        def up():
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
            c.request("POST", "/webhooks/twilio/sms/incoming")
            return c.getresponse().status == 403
        wait_for("the peer", up)
        return self

    def __exit__(self, *exc):
        os.killpg(self.p.pid, signal.SIGTERM)
        self.p.wait()


def retell_line(n, now):
    cid = "call_bench_%d" % n
    body = json.dumps({"event": "call_ended", "call": {
        "call_type": "phone_call", "call_id": cid, "agent_id": "agent_b",
        "agent_version": 1, "call_status": "ended", "direction": "inbound",
        "from_number": "+1555%07d" % (n % 10**7), "to_number": NUMBER,
        "start_timestamp": now - 60000, "end_timestamp": now,
        "duration_ms": 60000, "disconnection_reason": "user_hangup",
        "transcript": "Agent: Hello. User: Hi, a quick question.",
        "call_cost": {"combined_cost": 12}}}, separators=(",", ":"))
    d = hmac.new(RETELL.encode(), body.encode() + str(now).encode(),
                 hashlib.sha256).hexdigest()
    return "\t".join(["POST", "/webhooks/retell", "application/json",
                      "X-Retell-Signature", "v=%d,d=%s" % (now, d), body])


def write_requests(path, make, per_thread):
    for t in range(THREADS):
        with open("%s.%d" % (path, t), "w") as f:
            for i in range(per_thread):
                f.write(make(t * per_thread + i) + "\n")


def pgbench(stack, tmp, script):
    logs = tempfile.mkdtemp(dir=tmp)
    out = subprocess.run(
        ["pgbench", "-n", "-c", str(CONNS), "-j", str(THREADS), "-T",
         str(SECONDS), "-M", "prepared", "-l", "--log-prefix",
         os.path.join(logs, "pgbench"), "-f",
         os.path.join(HERE, script), "-h", stack.pgsock, "-p",
         str(stack.pgport), "-U", "telehook", "telehook"],
        capture_output=True, text=True, check=True).stdout
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))
    lat = []
    for log in glob.glob(os.path.join(logs, "pgbench*")):
        with open(log) as f:
            lat += [int(line.split()[2]) / 1000.0 for line in f]
    lat.sort()
    return {"rps": tps, "p50": lat[len(lat) // 2],
            "p99": lat[int(len(lat) * 0.99)], "requests": len(lat),
            "non2xx": 0, "errors": ""}


def settle(stack):
    """VACUUM ANALYZE, then wait for autovacuum to have nothing to do."""
    stack.psql("VACUUM ANALYZE")
    wait_for("autovacuum to finish", lambda: stack.psql(
        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = "
        "'autovacuum worker'") == "0", timeout=120)


def rss_run(stack, base, lua, tmp):
    """RSS_REQUESTS unique signed SMS in rounds; RSS after each."""
    path = os.path.join(tmp, "rss")
    per_thread = 60000
    sent, series, r = 0, [], 0
    series.append((0, rss_mb(stack.worker_pids())))
    while sent < RSS_REQUESTS:
        write_requests(path, lambda n: twilio_line(
            stack, n + 5 * 10**8 + r * 10**6), per_thread)
        # a round sends fewer requests than its files hold: none repeats
        out = wrk(base, lua, path, seconds=20)
        if out["non2xx"] or out["errors"]:
            sys.exit("RSS run: %d non-2xx, errors %s"
                     % (out["non2xx"], out["errors"]))
        if out["requests"] >= THREADS * per_thread:
            sys.exit("RSS run: a round wrapped around its requests")
        sent += out["requests"]
        series.append((sent, rss_mb(stack.worker_pids())))
        r += 1
    return series


def callgrind():
    """Instructions of parse + verify + answer, per request."""
    ipr = os.path.join(BUILD, "bench-ipr")
    counts = []
    with tempfile.TemporaryDirectory() as d:
        for n in (0, 2000):
            f = os.path.join(d, "cg.%d" % n)
            subprocess.run(["valgrind", "--tool=callgrind", "-q",
                            "--callgrind-out-file=" + f, ipr, str(n)],
                           check=True, stdout=subprocess.DEVNULL)
            with open(f) as fh:
                counts.append(int(re.search(r"^summary: (\d+)", fh.read(),
                                            re.M).group(1)))
    return (counts[1] - counts[0]) / 2000.0


def main():
    fcgi_port = free_port()
    extra = ("location = /bench/static { default_type text/plain; "
             "return 200 'ok'; }\n"
             "location = /bench/fcgi { fastcgi_pass 127.0.0.1:%d; "
             "include fastcgi_params; }" % fcgi_port)
    stack = Stack(workers=WORKERS, rate_limit=10000000, durable=True,
                  pooler=POOLER, secret_key=True,
                  extra_locations=extra, extra_conf={
                      "twilio": {"auth_token": TOKEN},
                      "retell": {"api_key": RETELL},
                      "server": {"log_level": "notice"},
                      "delivery": dict(
                          {"allow_private": "yes"}, **(
                              {"defer_s": os.environ["BENCH_DEFER_S"]}
                              if "BENCH_DEFER_S" in os.environ else {}))})
    stack.start()
    hello = subprocess.Popen(
        ["spawn-fcgi", "-n", "-a", "127.0.0.1", "-p", str(fcgi_port), "--",
         "/usr/bin/multiwatch", "-f", str(WORKERS), "--",
         os.path.join(BUILD, "bench-fcgi-hello")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = {}
    tmp = tempfile.mkdtemp(prefix="telehook-bench-")
    try:
        org = stack.ctl_ok("org", "add", "Bench Clinic").strip()
        stack.ctl_ok("number", "add", org, NUMBER)
        stack.stop_workers()
        stack.start_workers()
        base = "http://127.0.0.1:%d" % stack.nginx_port
        wait_for("FastCGI hello", lambda: stack.get(
            "/bench/fcgi").status == 200)
        per_thread = max(20000, int(4000 * SECONDS))
        twilio = os.path.join(tmp, "twilio")
        write_requests(twilio, lambda n: twilio_line(stack, n), per_thread)
        now = int(time.time() * 1000)
        retell = os.path.join(tmp, "retell")
        write_requests(retell, lambda n: retell_line(n, now), per_thread)
        lua = os.path.join(HERE, "requests.lua")

        if os.environ.get("BENCH_ONLY") == "endpoints":
            # only the delivery rows (bench/README): (d) and (d) with
            # three endpoints, side by side
            print(endpoints_line(with_endpoints(stack, org, base, lua,
                                                twilio, per_thread)))
            return
        results["a"] = wrk(base + "/bench/static")
        results["b"] = wrk(base + "/bench/fcgi")
        settle(stack)
        results["c"] = pgbench(stack, tmp, "sms-incoming.sql")
        settle(stack)
        results["c0"] = pgbench(stack, tmp, "event-insert.sql")
        settle(stack)
        results["d"] = wrk(base, lua, twilio)
        results["d"]["rss"] = rss_mb(stack.worker_pids())
        stored = int(stack.psql("SELECT count(*) FROM events WHERE "
                                "event_type = 'sms_incoming' AND "
                                "provider_key LIKE 'SM%'"))
        results["d"]["stored"] = stored
        settle(stack)
        results["e"] = wrk(base, lua, retell)
        results["e"]["rss"] = rss_mb(stack.worker_pids())
        # about half of (d)'s peak: fewer connections, fresh requests
        write_requests(twilio, lambda n: twilio_line(stack, n + 10**8),
                       per_thread)
        conns = max(1, CONNS // 2)
        settle(stack)
        half = wrk(base, lua, twilio, conns=conns)
        while half["rps"] > 0.6 * results["d"]["rps"] and conns > 1:
            conns = max(1, conns // 2)
            write_requests(twilio, lambda n: twilio_line(
                stack, n + 2 * 10**8 + conns * 10**6), per_thread)
            settle(stack)
            half = wrk(base, lua, twilio, conns=conns)
        half["conns"] = conns
        results["half"] = half
        # the same load beside an unauthenticated flood
        write_requests(twilio, lambda n: twilio_line(
            stack, n + 3 * 10**8), per_thread)
        settle(stack)
        with Flood(stack.nginx_port) as fl:
            flooded = wrk(base, lua, twilio, conns=conns)
        flooded["flood_sent"] = fl.sent
        flooded["flood_codes"] = fl.codes
        results["flood"] = flooded
        results["ipr"] = callgrind()
        if RSS_REQUESTS:
            settle(stack)
            results["rss"] = rss_run(stack, base, lua, tmp)
        # (f), (g): the peer, one process and two, at (d)'s connections,
        # on the same kind of unique signed SMS, from a vacuumed database
        stack.psql(open(os.path.join(PEER, "schema.sql")).read())
        for row, procs in (("f", 1), ("g", 2)):
            settle(stack)
            with Peer(stack, procs) as peer:
                write_requests(twilio, lambda n: peer_line(
                    org, peer.port, n + (4 + procs) * 10**8), per_thread)
                results[row] = wrk("http://127.0.0.1:%d" % peer.port, lua,
                                   twilio)
            results[row]["stored"] = int(stack.psql(
                "SELECT count(*) FROM peer_events"))
            stack.psql("TRUNCATE peer_events")
        results["endpoints"] = with_endpoints(stack, org, base, lua,
                                              twilio, per_thread)
        results["fcgi_rss"] = rss_mb([int(p) for p in subprocess.run(
            ["pgrep", "-P", str(hello.pid)], capture_output=True,
            text=True).stdout.split()])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        hello.terminate()
        hello.wait()
        stack.stop()
    report(results)


def with_endpoints(stack, org, base, lua, path, per_thread):
    with Receivers() as rcv:
        out = endpoint_rounds(stack, org, base, lua, path, per_thread,
                              rcv.base)
        out["cost"] = delivery_cost(stack, base, lua, path, per_thread,
                                    rcv, out["endpoints"])
    return out


def drained(stack):
    """No event pending and no delivery still to make."""
    return stack.psql(
        "SELECT (SELECT count(*) FROM delivery_pending) + (SELECT "
        "count(*) FROM deliveries WHERE state <> 'delivered')") == "0"


def sender_at(stack, nice):
    """The sender (telehookctl deliveries run) at a nice level."""
    return subprocess.Popen(
        ["nice", "-n", str(nice), stack.telehookctl, "-c", stack.conf,
         "deliveries", "run"],
        env=dict(os.environ, TELEHOOK_SQLDIR=stack.sqldir),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def cpu_s(pid):
    """The user and system CPU seconds a process has used."""
    with open("/proc/%d/stat" % pid) as f:
        x = f.read().rsplit(")", 1)[1].split()
    return (int(x[11]) + int(x[12])) / float(os.sysconf("SC_CLK_TCK"))


def delivery_cost(stack, base, lua, path, per_thread, rcv, ids):
    """What one delivery costs in CPU, without the noise of the rounds:
    a round of (d) with the endpoints enabled and no sender, then the
    sender alone delivering all of it; the CPU seconds of the sender,
    its PostgreSQL backend and the receivers' nginx, each over the
    deliveries made."""
    for eid in ids:
        stack.ctl_ok("endpoint", "enable", eid)
    write_requests(path, lambda k: twilio_line(stack, k + 9 * 10**8),
                   per_thread)
    wrk(base, lua, path)
    settle(stack)
    done0 = int(stack.psql("SELECT count(*) FROM deliveries"))
    nginx = [rcv.p.pid] + [int(p) for p in subprocess.run(
        ["pgrep", "-P", str(rcv.p.pid)], capture_output=True,
        text=True).stdout.split()]
    r0 = sum(cpu_s(p) for p in nginx)
    t0 = time.monotonic()
    sender = sender_at(stack, 0)
    try:
        backend = []

        def session():
            # the sender's session holds the batches' advisory lock
            backend[:] = [int(stack.psql(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' "
                "AND objid = 7415301 AND granted"))]
            return True
        wait_for("the sender's session", session, interval=0.01)
        wait_for("the deliveries", lambda: drained(stack), timeout=600,
                 interval=0.2)
        secs = time.monotonic() - t0
        used = (cpu_s(sender.pid), cpu_s(backend[0]),
                sum(cpu_s(p) for p in nginx) - r0)
    finally:
        sender.terminate()
        sender.wait()
    n = max(1, int(stack.psql("SELECT count(*) FROM deliveries")) - done0)
    return {"deliveries": n, "seconds": secs, "sender_us": 1e6 * used[0] / n,
            "backend_us": 1e6 * used[1] / n,
            "receivers_us": 1e6 * used[2] / n}


def endpoint_rounds(stack, org, base, lua, path, per_thread, rbase):
    """(d) without endpoints and (d) with three endpoints subscribed to
    sms.received and the sender (telehookctl deliveries run) delivering
    to nginx during the run, in alternating rounds (BENCH_ROUNDS, 3):
    the medians, and how long the sender took to catch up after each
    round with them.  Without: the same endpoints disabled, which the
    webhooks' triggers see as none (sql/functions.sql)."""
    out = {"without": [], "with": [], "drain_s": []}
    ids = []
    for i in range(3):
        ids.append(stack.ctl_json(
            "endpoint", "add", org, rbase + "/receiver?e=%d" % i,
            "--events", "sms.received")["id"])

    def endpoints(on):
        for eid in ids:
            stack.ctl_ok("endpoint", "enable" if on else "disable", eid)

    # as telehook-deliver.service runs it: Nice=19, below the workers
    def start():
        return sender_at(stack, os.environ.get("BENCH_SENDER_NICE", "19"))
    # BENCH_SENDER_AFTER=1: the sender runs only after each round (what
    # the triggers alone cost the webhooks)
    after = os.environ.get("BENCH_SENDER_AFTER") == "1"
    sender = None
    n = 7 * 10**8
    # BENCH_RECEIVER_LOAD=1: a third kind of round, endpoints disabled
    # and wrk posting envelopes to the receivers at the rate the sender
    # delivered during the round before: what the HTTP alone (the
    # clients' side and a client's) costs these cores, without telehook
    # delivering anything
    kinds = (False, True)
    if os.environ.get("BENCH_RECEIVER_LOAD") == "1":
        kinds = (False, True, "receivers")
        out["receivers"] = []
        out["receivers_rps"] = []
        rlua = os.path.join(os.path.dirname(path), "receiver.lua")
    # BENCH_IDLE_LOAD=1: a kind of round more, endpoints disabled and a
    # busy loop at the idle scheduling class beside the webhooks: what
    # any work beside them costs on this machine, however low its
    # priority (on a machine whose idle CPU is free, nothing)
    if os.environ.get("BENCH_IDLE_LOAD") == "1":
        kinds += ("idle",)
        out["idle"] = []
    rate = 0.0
    try:
        for r in range(int(os.environ.get("BENCH_ROUNDS", "3"))):
            for on in kinds:
                endpoints(on is True)
                write_requests(path, lambda k: twilio_line(stack, k + n),
                               per_thread)
                n += 10**7
                settle(stack)
                if on == "receivers":
                    with open(rlua, "w") as f:
                        f.write(receiver_lua(rate))
                    got = {}
                    t = threading.Thread(target=lambda: got.update(wrk(
                        rbase + "/receiver?e=0", rlua, conns=64)))
                    t.start()
                    x = wrk(base, lua, path)
                    t.join()
                    out["receivers"].append(x)
                    out["receivers_rps"].append(got["rps"])
                    continue
                if on is True and not after and sender is None:
                    sender = start()
                if on == "idle":
                    with IdleLoad():
                        out["idle"].append(wrk(base, lua, path))
                    continue
                done0 = int(stack.psql("SELECT count(*) FROM deliveries"))
                perf = None
                if os.environ.get("BENCH_PERF"):
                    perf = subprocess.Popen(
                        ["perf", "record", "-a", "-g", "-o", "%s.%s.%d" % (
                            os.environ["BENCH_PERF"], on, r)],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                x = wrk(base, lua, path)
                if perf is not None:
                    perf.send_signal(signal.SIGINT)
                    perf.wait()
                out["with" if on else "without"].append(x)
                rate = (int(stack.psql("SELECT count(*) FROM deliveries"))
                        - done0) / float(SECONDS)
                if not on:
                    continue
                if sender is None:
                    sender = start()
                t0 = time.monotonic()
                try:
                    wait_for("the deliveries", lambda: drained(stack),
                             timeout=600, interval=0.2)
                except RuntimeError:
                    sys.exit("deliveries not done: %s; pending events %s"
                             % (stack.psql(
                                 "SELECT string_agg(state || ' ' || n, "
                                 "', ') FROM (SELECT state, count(*) n "
                                 "FROM deliveries GROUP BY 1) s"),
                                stack.psql("SELECT count(*) FROM "
                                           "delivery_pending")))
                out["drain_s"].append(time.monotonic() - t0)

                if after:
                    sender.terminate()
                    sender.wait()
                    sender = None
        out["endpoints"] = ids
        out["deliveries"] = int(stack.psql(
            "SELECT count(*) FROM deliveries"))
        out["lag"] = [float(x) for x in stack.psql(
            "SELECT coalesce(percentile_cont(ARRAY[0.5, 0.99]) WITHIN "
            "GROUP (ORDER BY extract(epoch FROM delivered_at - "
            "created_at)), '{0,0}')::text FROM deliveries").strip(
                "{}").split(",")]
    finally:
        if sender is not None:
            sender.terminate()
            sender.wait()
    for k in ("without", "with", "receivers", "idle"):
        if k not in out:
            continue
        out[k + "_median"] = sorted(x["rps"] for x in out[k])[
            len(out[k]) // 2]
    return out


def receiver_lua(rate):
    """wrk posting a signed sms.received envelope of the sender's size
    at about rate requests a second over 64 connections."""
    body = json.dumps({"type": "sms.received", "timestamp":
                       "2026-11-29T12:00:00.000Z", "data": {
                           "id": "123456", "message_id": "SM" + "0" * 32,
                           "provider": "twilio", "direction": "inbound",
                           "from": "+15550001234", "to": NUMBER,
                           "body": "Thanks!", "num_media": 0,
                           "status": "received", "status_history": [
                               {"at": "2026-11-29T12:00:00.000Z",
                                "status": "received"}],
                           "auto_reply": False, "created_at":
                           "2026-11-29T12:00:00.000Z"}})
    return ('wrk.method = "POST"\n'
            'wrk.body = %s\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            'wrk.headers["webhook-id"] = "msg_%s"\n'
            'wrk.headers["webhook-timestamp"] = "1795000000"\n'
            'wrk.headers["webhook-signature"] = "v1,%s"\n'
            'function delay() return %d end\n'
            % (json.dumps(body), "0" * 32, "A" * 43 + "=",
               max(1, int(64 * 1000 / max(rate, 1.0)))))


def endpoints_line(e):
    c = e["cost"]
    pairs = [w["rps"] / o["rps"] for o, w in zip(e["without"], e["with"])]
    rps = lambda k: " ".join("%.0f" % x["rps"] for x in e[k])  # noqa: E731
    more = ""
    if "receivers" in e:
        more += ("; without endpoints but wrk posting to the receivers "
                 "(%s req/s to them) %s req/s, median %.0f: %.2f" % (
                     " ".join("%.0f" % x for x in e["receivers_rps"]),
                     rps("receivers"), e["receivers_median"],
                     e["receivers_median"] / e["without_median"]))
    if "idle" in e:
        more += ("; without endpoints but a busy loop at the idle "
                 "scheduling class beside them %s req/s, median %.0f: "
                 "%.2f" % (rps("idle"), e["idle_median"],
                           e["idle_median"] / e["without_median"]))
    return ("(d) without endpoints %s req/s, median %.0f; with 3 "
            "endpoints and the sender delivering %s req/s, median %.0f: "
            "%.2f of it (goal: at least 0.90; each round over the one "
            "before it: %s, their median %.2f); %d deliveries, each "
            "round's all delivered %s s after it; delivery lag p50 %.2f s, "
            "p99 %.2f s%s.  A delivery's CPU, %d drained by the sender "
            "alone in %.1f s: the sender %.1f us, its PostgreSQL backend "
            "%.1f us, the receivers %.1f us" % (
                rps("without"), e["without_median"], rps("with"),
                e["with_median"], e["with_median"] / e["without_median"],
                " ".join("%.2f" % x for x in pairs),
                sorted(pairs)[len(pairs) // 2], e["deliveries"],
                " ".join("%.1f" % t for t in e["drain_s"]), e["lag"][0],
                e["lag"][1], more, c["deliveries"], c["seconds"],
                c["sender_us"], c["backend_us"], c["receivers_us"]))


def report(r):
    rows = [("(a) nginx static answer", r["a"], "-"),
            ("(b) nginx + trivial FastCGI", r["b"],
             "%.1f" % r["fcgi_rss"]),
            ("(c) pgbench, the SMS handler's SQL", r["c"], "-"),
            ("    pgbench, the event INSERT alone", r["c0"], "-"),
            ("(d) telehook, signed Twilio SMS", r["d"],
             "%.1f" % r["d"]["rss"]),
            ("(e) telehook, signed Retell call_ended", r["e"],
             "%.1f" % r["e"]["rss"]),
            ("(f) peer, Express + twilio + pg, 1 proc", r["f"], "-"),
            ("(g) peer, Express + twilio + pg, 2 procs", r["g"], "-")]
    print("telehook benchmark: %d s a run, %d connections, %d workers, "
          "%d cores, durable commits%s" % (
              SECONDS, CONNS, WORKERS, os.cpu_count(),
              ", through PgBouncer (%s pooling)" % POOLER if POOLER
              else ""))
    print("%-40s %10s %8s %8s %10s %8s" % ("", "req/s", "p50 ms", "p99 ms",
                                          "RSS MB", "non-2xx"))
    for name, x, rss in rows:
        print("%-40s %10.0f %8.2f %8.2f %10s %8d" % (
            name, x["rps"], x["p50"], x["p99"], rss, x["non2xx"]))
    print("d/c = %.2f   d/b = %.2f   (d over the event INSERT alone: "
          "%.2f)" % (r["d"]["rps"] / r["c"]["rps"],
                     r["d"]["rps"] / r["b"]["rps"],
                     r["d"]["rps"] / r["c0"]["rps"]))
    peer = max(r["f"]["rps"], r["g"]["rps"])
    print("d/f = %.2f   d/g = %.2f   (d over the better peer: %.2f, goal "
          "2.0; e: %.2f, goal 1.5)" % (
              r["d"]["rps"] / r["f"]["rps"], r["d"]["rps"] / r["g"]["rps"],
              r["d"]["rps"] / peer, r["e"]["rps"] / peer))
    print(endpoints_line(r["endpoints"]))
    h = r["half"]
    print("(d) at %.0f req/s (%.0f%% of peak, %d connections): p50 %.2f "
          "ms, p99 %.2f ms" % (h["rps"], 100 * h["rps"] / r["d"]["rps"],
                                h["conns"], h["p50"], h["p99"]))
    f = r["flood"]
    print("(d) beside %d unsigned 1 MB requests (%.0f/s, answered %s): "
          "%.0f req/s, p99 %.2f ms = %.1f x its p99 without the flood "
          "(goal: at most 4)" % (f["flood_sent"], f["flood_sent"] / SECONDS,
                                 ", ".join("%s: %d" % kv for kv in sorted(
                                     f["flood_codes"].items())),
                                 f["rps"], f["p99"], f["p99"] / h["p99"]))
    print("(d) stored %d SMS events for %d requests answered"
          % (r["d"]["stored"], r["d"]["requests"]))
    print("parse + verify + answer, no database: %.0f instructions a "
          "request (callgrind)" % r["ipr"])
    if "rss" in r:
        print("workers' RSS (MB) over %d signed SMS: %s" % (
            r["rss"][-1][0], "  ".join("%dk %.1f" % (n // 1000, mb)
                                       for n, mb in r["rss"])))
        first = r["rss"][1][1]
        print("RSS from the first round to the last: %+.1f MB (%+.1f%%)"
              % (r["rss"][-1][1] - first,
                 100.0 * (r["rss"][-1][1] - first) / first))


if __name__ == "__main__":
    main()
