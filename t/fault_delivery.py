"""
fault_delivery: the sender of events (telehookctl deliveries run) killed
with SIGKILL, twice, while it has requests in flight (telehook(8),
"Delivering events"): once while it sends a batch of pending events
straight from memory, once while it holds claims in the queue, there
for an endpoint that answers too slowly for the batch.

A new sender sends the dead one's batch again, with the same ids, and
takes over its claims once no attempt can still be running.  In the
end every delivery is delivered; the receiver, deduplicating by
webhook-id as the specification asks, has every delivery's id, and the
only requests it saw twice are redeliveries of the same ids, no more
of them than the killed senders left pending or claimed; per call, the
first arrival of each event follows the order telehook wrote them.
"""

import http.server
import json
import os
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stack, in_order, wait_for  # noqa: E402
import e2e_twilio as tw  # noqa: E402

stack = None
receiver = None
senders = []
NUMBER = "+15550090000"
CALLS = 40


class Receiver(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128     # the sender opens up to 32 at once

    def __init__(self):
        self.got = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


class Handler(http.server.BaseHTTPRequestHandler):

    def log_message(self, *a):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        # /a: slow enough to be caught mid-batch; /b: too slow for the
        # batch (no answer within 1 s), but within timeout_s
        time.sleep(0.05 if self.path == "/a" else 1.3)
        with self.server.lock:
            self.server.got.append((self.path, self.headers["webhook-id"],
                                    json.loads(body)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


def start_sender():
    p = subprocess.Popen([stack.telehookctl, "-c", stack.conf, "deliveries",
                          "run"], env=dict(os.environ,
                                           TELEHOOK_SQLDIR=stack.sqldir),
                         stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    senders.append(p)
    return p


def setUpModule():
    global stack, receiver
    receiver = Receiver()
    stack = Stack(workers=2, rate_limit=100000, secret_key=True, extra_conf={
        "twilio": {"auth_token": tw.TOKEN},
        # defer_s 0: the sender is killed while it sends, not waits
        "delivery": {"allow_private": "yes", "defer_s": "0",
                     "retry_schedule": "1s,1s,1s",
                     "timeout_s": "3"}}).start()
    tw.stack = stack


def tearDownModule():
    for p in senders:
        if p.poll() is None:
            p.kill()
            p.wait()
    if stack is not None:
        stack.stop()
    if receiver is not None:
        receiver.shutdown()


def sending(since="-infinity"):
    return int(stack.psql("SELECT count(*) FROM deliveries WHERE state = "
                          "'sending' AND claimed_at > '%s'" % since))


def pending():
    return int(stack.psql("SELECT count(*) FROM delivery_pending"))


def received():
    with receiver.lock:
        return len({wid for _, wid, _ in receiver.got})


def delivered():
    return int(stack.psql("SELECT count(*) FROM deliveries WHERE state = "
                          "'delivered'"))


class Fault(unittest.TestCase):

    def test_killed_mid_batch(self):
        org = stack.ctl_ok("org", "add", "Fault Delivery Clinic").strip()
        stack.ctl_ok("org", "set", org, "hours=24/7")
        stack.ctl_ok("number", "add", org, NUMBER)
        base = "http://127.0.0.1:%d" % receiver.server_address[1]
        for path in ("/a", "/b"):
            stack.ctl_ok("endpoint", "add", org, base + path)
        for i in range(CALLS):
            tw.missed_call(NUMBER, "+1555119%04d" % i)
        # started, missed, ended: one event each, for two endpoints
        self.assertEqual(int(stack.psql(
            "SELECT count(*) FROM delivery_events")), CALLS * 3)
        total = CALLS * 3 * 2
        stuck = []
        # first in the batch (requests in flight, nothing recorded yet),
        # then with claims of its own in the queue
        kills = (lambda t0: received() >= total // 5 and pending() > 0,
                 lambda t0: received() >= total // 2 and sending(t0) > 0)
        for mid in kills:
            t0 = stack.psql("SELECT now()")
            p = start_sender()
            wait_for("mid-batch, requests in flight", lambda: mid(t0),
                     timeout=60, interval=0.01)
            p.kill()            # its batch stays pending, its claims
            p.wait()            # "sending"
            # what a new sender may send again: the batch's events to
            # both endpoints, and the claims
            stuck.append(2 * pending() + sending())
            self.assertGreater(stuck[-1], 0)
        self.assertGreater(sending(), 0)
        start_sender()
        try:
            wait_for("everything delivered", lambda: delivered() == total,
                     timeout=60)
        except RuntimeError:
            raise AssertionError("not delivered: %s" % stack.psql(
                "SELECT string_agg(state || ' ' || n, ', ') FROM (SELECT "
                "state, count(*) n FROM deliveries GROUP BY 1) s"))
        # nothing left over, nothing given up
        self.assertEqual(stack.psql(
            "SELECT count(*) FROM deliveries WHERE state <> 'delivered'"),
            "0")
        ids = set(stack.psql("SELECT string_agg(msg_id, ' ') FROM "
                             "deliveries").split())
        with receiver.lock:
            got = list(receiver.got)
        seen = {}
        for path, wid, env in got:
            seen.setdefault(wid, []).append((path, env))
        # deduplicated by webhook-id: exactly the deliveries, none lost,
        # no id the database does not know
        self.assertEqual(set(seen), ids)
        # a repeat is the same request again: same endpoint, same body
        repeats = 0
        for wid, reqs in seen.items():
            self.assertEqual(len({(p, json.dumps(e, sort_keys=True))
                                  for p, e in reqs}), 1, wid)
            repeats += len(reqs) - 1
        # and only what a killed sender left pending or claimed was
        # repeated
        self.assertLessEqual(repeats, sum(stuck))
        # per endpoint and call, first arrivals in the order written
        order = {}
        for path, wid, env in got:
            key = (path, env["data"]["call_id"])
            if wid not in [w for w, _ in order.get(key, [])]:
                order.setdefault(key, []).append((wid, env["type"]))
        rank = dict(x.split("|") for x in stack.psql(
            "SELECT string_agg(msg_id || '|' || id, ' ') FROM deliveries"
        ).split())
        for key, seq in order.items():
            ids_in_order = [int(rank[w]) for w, _ in seq]
            self.assertEqual(ids_in_order, sorted(ids_in_order), key)


load_tests = in_order(__name__)

if __name__ == "__main__":
    unittest.main(verbosity=2)
