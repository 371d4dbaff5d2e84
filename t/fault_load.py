"""
fault_load: under a steady load of signed Twilio SMS webhooks (unique
MessageSids, several clients at once), break things and then count.

  1. PostgreSQL stopped for several seconds, then started again;
  2. workers SIGKILLed at random (multiwatch starts new ones);
  3. nginx reloaded.

After each, the spool is drained and every request that got a 2xx must
be in the database exactly once: one event, one message, one activity
entry.  The counts are printed.
"""

import os
import random
import signal
import sys
import time
import unittest
import urllib.parse
import http.client

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Stack, wait_for, in_order  # noqa: E402
from e2e_twilio import sign, FORM  # noqa: E402

TOKEN = "fault-test-token"
CLIENTS = 4
OUTAGE_S = 4        # how long PostgreSQL stays down
stack = None


def setUpModule():
    global stack
    stack = Stack(workers=4, multiwatch_args=["-r", "1000"],
                  rate_limit=100000, extra_conf={
        "twilio": {"auth_token": TOKEN},
        "database": {"statement_timeout_ms": "1000"},
        "server": {"cache_ttl_s": "1", "log_level": "notice"}}).start()
    org = stack.ctl_ok("org", "add", "Fault Clinic").strip()
    stack.ctl_ok("number", "add", org, "+15550006000")


def tearDownModule():
    if stack is not None:
        stack.stop()


def send(tag, n, i):
    """One signed SMS from client i; (sid, status or None, seconds)."""
    path = "/webhooks/twilio/sms/incoming"
    url = stack.public_url + path
    sid = "SM%s%02d%06d" % (tag, i, n)
    p = [("MessageSid", sid), ("AccountSid", "AC" + "2" * 32),
         ("From", "+1555%07d" % (n % 9999999)),
         ("To", "+15550006000"), ("Body", "load %d" % n),
         ("SmsStatus", "received")]
    h = {"Content-Type": FORM,
         "X-Twilio-Signature": sign(TOKEN, url, p)}
    t0 = time.monotonic()
    try:
        c = http.client.HTTPConnection("127.0.0.1", stack.nginx_port,
                                       timeout=20)
        c.request("POST", path, urllib.parse.urlencode(p), h)
        r = c.getresponse()
        r.read()
        c.close()
        return sid, r.status, time.monotonic() - t0
    except (OSError, http.client.HTTPException):
        return sid, None, time.monotonic() - t0


def Load(tag):
    """CLIENTS threads posting signed SMS webhooks until stopped."""
    return harness.Load(lambda n, i: send(tag, n, i), threads=CLIENTS,
                        tag=tag)


def tally(name, load):
    """Every accepted request stored exactly once; print the counts."""
    harness.drain_spool(stack)
    tag = "SM" + load.tag
    stored = harness.stored_sms(stack, tag)
    lost = [s for s in load.accepted if s not in stored]
    dup = [s for s, c in stored.items() if c != (1, 1, 1)]
    spooled = stack.psql("SELECT count(*) FROM events WHERE provider_key "
                         "LIKE '%s%%' AND spooled_at IS NOT NULL" % tag)
    refused = ", ".join("%s: %d" % (k or "no answer", v)
                        for k, v in sorted(load.refused.items(),
                                           key=lambda kv: str(kv[0])))
    print("\nfault %s: sent %d, accepted %d, refused %d (%s), stored %d "
          "(%s spooled), lost %d, duplicated %d"
          % (name, load.sent, len(load.accepted),
             sum(load.refused.values()), refused or "none", len(stored),
             spooled, len(lost), len(dup)), file=sys.stderr)
    return lost, dup, int(spooled)


class Faults(unittest.TestCase):

    def test_1_database_outage(self):
        with Load("A") as load:
            load.wait_sent(100)
            stack.stop_postgres()
            # the length of the fault itself, not a synchronisation
            time.sleep(OUTAGE_S)
            stack.start_postgres()
            load.wait_sent(load.sent + 100)
        lost, dup, spooled = tally("database outage", load)
        self.assertEqual(lost, [])
        self.assertEqual(dup, [])
        self.assertEqual(load.refused, {})  # the spool took them all
        self.assertGreater(spooled, 0)      # the outage path was taken
        self.assertGreater(len(load.accepted), 300)

    def test_2_workers_killed(self):
        killed = 0
        with Load("B") as load:
            for _ in range(6):
                load.wait_sent(load.sent + 60)
                pids = stack.worker_pids()
                if pids:
                    stack.kill_worker(random.choice(pids))
                    killed += 1
            load.wait_sent(load.sent + 100)
        wait_for("workers back", lambda: len(stack.worker_pids()) == 4)
        lost, dup, _ = tally("workers killed", load)
        print("fault workers killed: %d SIGKILLs" % killed, file=sys.stderr)
        self.assertEqual(killed, 6)
        self.assertEqual(lost, [])
        self.assertEqual(dup, [])
        self.assertGreater(len(load.accepted), 300)

    def test_3_nginx_reloaded(self):
        with Load("C") as load:
            for _ in range(3):
                load.wait_sent(load.sent + 100)
                stack.reload_nginx()
            load.wait_sent(load.sent + 100)
        lost, dup, _ = tally("nginx reloaded", load)
        self.assertEqual(lost, [])
        self.assertEqual(dup, [])
        self.assertEqual(load.refused, {})
        self.assertGreater(len(load.accepted), 300)


load_tests = in_order(__name__)

if __name__ == "__main__":
    unittest.main(verbosity=2)
