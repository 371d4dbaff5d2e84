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
    lb["proc"] = harness.balancer(lb["port"], [
        "%s:%d" % (h.host_addr, h.nginx_port) for h in hosts], lb["dir"])


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
            harness.drain_spool(h)
        stored = harness.stored_sms(a, "SMH")
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
