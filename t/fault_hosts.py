"""
fault_hosts: two hosts and one database, behind a load balancer, under a
steady load of signed Twilio SMS webhooks (telehook(8), Several hosts).

Each host is its own nginx on its own loopback address (127.0.0.2 and
127.0.0.3) with its own worker pool and spool directory; a third nginx
balances them (upstream with both, proxy_next_upstream on errors and
timeouts, non-idempotent requests included).  Under the load:

  1. both hosts take traffic;
  2. the second host's pool and nginx are SIGKILLed, then started again,
     and take traffic again;
  3. the database is stopped and started once.

Then every spool is drained and counted as the fault tests count: every
request answered 2xx stored exactly once (one event, one message, one
activity entry), none lost.
"""

import http.client
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Stack, free_port, wait_for, in_order  # noqa: E402
from e2e_twilio import sign, FORM  # noqa: E402

TOKEN = "fault-hosts-token"
NUMBER = "+15550005000"
hosts = []
lb = {}


def lb_start():
    d = lb["dir"]
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write("""%(user)sdaemon off;
worker_processes 1;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log info;
events { worker_connections 512; }
http {
    access_log off;
    client_body_temp_path %(d)s/body;
    proxy_temp_path %(d)s/proxy;
    upstream hosts {
        server %(a)s max_fails=1 fail_timeout=2s;
        server %(b)s max_fails=1 fail_timeout=2s;
        keepalive 8;
    }
    server {
        listen 127.0.0.1:%(port)d;
        location / {
            proxy_pass http://hosts;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_connect_timeout 1s;
            proxy_read_timeout 20s;
            # safe for webhooks: a retried request is a redelivery, which
            # telehook stores once and answers as it did the first time
            proxy_next_upstream error timeout non_idempotent;
        }
    }
}
""" % {"user": "user root;\n" if os.geteuid() == 0 else "", "d": d,
       "port": lb["port"],
       "a": "%s:%d" % (hosts[0].host_addr, hosts[0].nginx_port),
       "b": "%s:%d" % (hosts[1].host_addr, hosts[1].nginx_port)})
    for t in ("body", "proxy"):
        os.makedirs(os.path.join(d, t), exist_ok=True)
    lb["proc"] = subprocess.Popen(
        ["nginx", "-p", d, "-c", os.path.join(d, "nginx.conf"), "-e",
         os.path.join(d, "error.log")], stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)

    def up():
        c = http.client.HTTPConnection("127.0.0.1", lb["port"], timeout=2)
        c.request("GET", "/healthz")
        return c.getresponse().status == 200
    wait_for("the load balancer", up)


def setUpModule():
    lb["port"] = free_port()
    lb["dir"] = tempfile.mkdtemp(prefix="telehook-lb-")
    url = "http://127.0.0.1:%d" % lb["port"]
    conf = {"twilio": {"auth_token": TOKEN},
            "database": {"statement_timeout_ms": "1000"},
            "server": {"public_url": url, "cache_ttl_s": "1",
                       "log_level": "info"}}
    a = Stack(workers=3, host_addr="127.0.0.2", rate_limit=100000,
              multiwatch_args=["-r", "1000"], extra_conf=conf).start()
    hosts.append(a)
    hosts.append(Stack(workers=3, host_addr="127.0.0.3", database=a,
                       rate_limit=100000, multiwatch_args=["-r", "1000"],
                       extra_conf=conf).start())
    org = a.ctl_ok("org", "add", "Two Host Clinic").strip()
    a.ctl_ok("number", "add", org, NUMBER)
    lb_start()


def tearDownModule():
    p = lb.get("proc")
    if p is not None:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(10)
    for h in reversed(hosts):
        h.stop()


def send(n, i):
    path = "/webhooks/twilio/sms/incoming"
    url = "http://127.0.0.1:%d%s" % (lb["port"], path)
    sid = "SMH%02d%07d" % (i, n)
    p = [("MessageSid", sid), ("AccountSid", "AC" + "5" * 32),
         ("From", "+1555%07d" % (n % 9999999)), ("To", NUMBER),
         ("Body", "two hosts %d" % n), ("SmsStatus", "received")]
    h = {"Content-Type": FORM, "X-Twilio-Signature": sign(TOKEN, url, p)}
    t0 = time.monotonic()
    try:
        c = http.client.HTTPConnection("127.0.0.1", lb["port"], timeout=30)
        c.request("POST", path, urllib.parse.urlencode(p), h)
        r = c.getresponse()
        r.read()
        c.close()
        return sid, r.status, time.monotonic() - t0
    except (OSError, http.client.HTTPException):
        return sid, None, time.monotonic() - t0


def served(host):
    """How many signed SMS this host's workers have answered."""
    try:
        log = host.worker_log()
    except FileNotFoundError:
        return 0
    return log.count(" POST twilio_sms_incoming ")


def drain(host):
    def empty():
        p = host.ctl("spool", "drain")
        assert p.returncode in (0, 75), p.stderr
        return not [f for f in os.listdir(host.spool)
                    if f.endswith(".spool")]
    wait_for("an empty spool", empty, timeout=120, interval=0.2)


class TwoHosts(unittest.TestCase):

    def test_host_lost_and_database_restarted(self):
        a, b = hosts
        with harness.Load(send, threads=4, tag="H") as load:
            load.wait_sent(200)
            # 1. both hosts take traffic
            self.assertGreater(served(a), 0)
            self.assertGreater(served(b), 0)
            # 2. the second host lost: its pool and nginx SIGKILLed
            b.kill_pool()
            b.kill_nginx()
            load.wait_sent(load.sent + 200)
            before = served(b)
            b.start_workers()
            b.start_nginx()
            # the balancer tries it again after fail_timeout
            wait_for("the second host back in use",
                     lambda: served(b) > before)
            load.wait_sent(load.sent + 200)
            # 3. the database restarted once
            a.stop_postgres()
            time.sleep(3)   # the outage's own length, not a wait
            a.start_postgres()
            load.wait_sent(load.sent + 200)
        for h in hosts:
            drain(h)
        rows = a.psql(
            "SELECT m.message_id, count(DISTINCT e.id), count(DISTINCT "
            "m.id), count(DISTINCT x.id) FROM messages m "
            "LEFT JOIN events e ON e.provider = 'twilio' AND "
            "e.provider_key = m.message_id || ':received' "
            "LEFT JOIN activity x ON x.message_id = m.id "
            "WHERE m.message_id LIKE 'SMH%' GROUP BY m.message_id")
        stored = {}
        for line in rows.splitlines():
            sid, ev, msg, act = line.split("|")
            stored[sid] = (int(ev), int(msg), int(act))
        lost = [s for s in load.accepted if s not in stored]
        dup = [s for s, c in stored.items() if c != (1, 1, 1)]
        spooled = a.psql("SELECT count(*) FROM events WHERE provider_key "
                         "LIKE 'SMH%' AND spooled_at IS NOT NULL")
        refused = ", ".join("%s: %d" % (k or "no answer", v)
                            for k, v in sorted(load.refused.items(),
                                               key=lambda kv: str(kv[0])))
        print("\nfault two hosts: sent %d, 2xx %d, refused %d (%s), "
              "stored %d (%s spooled), served by host A %d, host B %d, "
              "lost %d, duplicated %d"
              % (load.sent, len(load.accepted), sum(load.refused.values()),
                 refused or "none", len(stored), spooled, served(a),
                 served(b), len(lost), len(dup)), file=sys.stderr)
        self.assertEqual(lost, [])
        self.assertEqual(dup, [])
        self.assertGreater(len(load.accepted), 700)


load_tests = in_order(__name__)

if __name__ == "__main__":
    unittest.main(verbosity=2)
