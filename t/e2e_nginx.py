"""
e2e_nginx: one nginx contract for every webhook path (issue 13,
architecture.md §2).  Each alias of compat.conf answers exactly as its canonical
route does: 413 for a body over the limit, 429 past the rate limit, a
503 once a worker takes longer than Twilio waits (15 s), and realip from
trusted proxies only, all with the JSON error bodies of telehook.conf.

This stack includes the shipped telehook-upstream.conf and the optional
telehook-limits.conf at http level, as example-site.conf does.
"""

import json
import os
import sys
import signal
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stack, wait_for, in_order  # noqa: E402

SHARED = "nginx-suite-twilio-shared"
RETELL = "198.51.100.7"         # where Retell calls from

# Every compat alias and the canonical route it stands for.
ALIASES = [
    ("/api/webhooks/retell", "/webhooks/retell"),
    ("/functions/v1/retell-webhook", "/webhooks/retell"),
    ("/api/webhooks/twilio", "/webhooks/twilio"),
    ("/functions/v1/twilio-webhook", "/webhooks/twilio"),
    ("/api/twilio/voice", "/webhooks/twilio/voice/incoming"),
    ("/voice/incoming", "/webhooks/twilio/voice/incoming"),
    ("/voice/julie/incoming", "/webhooks/twilio/voice/incoming"),
    ("/api/twilio/handle-speech", "/webhooks/twilio/voice/gather"),
    ("/api/twilio/partial-speech", "/webhooks/twilio/voice/partial"),
    ("/api/twilio/speech-timing-test", "/webhooks/twilio/voice/incoming"),
    ("/api/voip/sms/webhook", "/webhooks/voipms/sms/incoming"),
]

stack = None


def setUpModule():
    global stack
    # rate 1/s, burst 200: the 201st quick request is refused
    stack = Stack(workers=2, rate_limit=1, trusted_proxies=["127.0.0.1"],
                  extra_conf={
                      # a stalled worker: no statement or lock timeout
                      # before nginx's 15 s
                      "database": {"statement_timeout_ms": "60000",
                                   "lock_timeout_ms": "0"},
                      "twilio": {"webhook_secret": SHARED},
                      "retell": {"api_key": "nginx-suite-retell-key",
                                 "allowed_ips": RETELL + "/32"}}).start()


def tearDownModule():
    if stack is not None:
        stack.stop()


def post(path, body=b"{}", ctype="application/json", headers=None,
         source=None, timeout=30):
    return stack.request("POST", path, body, dict(
        {"Content-Type": ctype}, **(headers or {})), timeout=timeout,
        source=source)


class BodyLimit(unittest.TestCase):

    def test_every_alias_refuses_a_large_body_as_its_route(self):
        big = b"x" * (1024 * 1024 + 1)
        for alias, route in ALIASES:
            with self.subTest(alias=alias):
                a, r = post(alias, big), post(route, big)
                self.assertEqual((a.status, a.json()), (r.status, r.json()))
                self.assertEqual(a.status, 413)
                self.assertEqual(a.json(), {
                    "error": "body larger than client_max_body_size"})


class CheapRefusal(unittest.TestCase):

    def test_a_bogus_signature_is_refused_before_the_body_is_parsed(self):
        # Malformed JSON: a parse would answer 400.  This stack has no
        # per-organization Retell key, so a well-formed, fresh signature
        # that does not match the deployment key is refused at once.
        body = b"{" + b"[1,2,3]," * 130000
        sig = "v=%d,d=%s" % (int(time.time() * 1000), "ab" * 32)
        for path in ("/webhooks/retell", "/api/webhooks/retell"):
            r = post(path, body, headers={"X-Forwarded-For": RETELL,
                                          "X-Retell-Signature": sig})
            self.assertEqual((r.status, r.json()), (401, {
                "error": "bad X-Retell-Signature"}), path)
        # expired, malformed and missing signatures likewise
        old = "v=%d,d=%s" % (int(time.time() * 1000) - 3600 * 1000, "ab" * 32)
        for header, why in (
                ({"X-Retell-Signature": old},
                 "X-Retell-Signature timestamp outside "
                 "signature_tolerance_s"),
                ({"X-Retell-Signature": "sha256=00"},
                 "malformed X-Retell-Signature"),
                ({}, "missing X-Retell-Signature")):
            r = post("/webhooks/retell", body, headers=dict(
                header, **{"X-Forwarded-For": RETELL}))
            self.assertEqual((r.status, r.json()), (401, {"error": why}))
        # Twilio: a JSON body is named by bodySHA256 in the signed URL
        r = post("/webhooks/twilio?bodySHA256=" + "0" * 64, body,
                 headers={"X-Twilio-Signature": "x" * 28})
        self.assertEqual((r.status, r.json()), (401, {
            "error": "bodySHA256 does not match the body"}))
        r = post("/webhooks/twilio", body)
        self.assertEqual((r.status, r.json()), (401, {
            "error": "missing X-Twilio-Signature"}))


class RealIp(unittest.TestCase):

    def test_forged_forwarded_for_passes_no_alias(self):
        for alias, route in ALIASES[:2]:
            with self.subTest(alias=alias):
                # from an untrusted address, a forged header is ignored
                for path in (alias, route):
                    r = post(path, headers={"X-Forwarded-For": RETELL},
                             source="127.0.0.2")
                    self.assertEqual((r.status, r.json()), (403, {
                        "error": "address not allowed"}), path)
                # from the trusted proxy, the header is the client
                for path in (alias, route):
                    r = post(path, headers={"X-Forwarded-For": RETELL})
                    self.assertEqual((r.status, r.json()), (401, {
                        "error": "missing X-Retell-Signature"}), path)


class Timeout(unittest.TestCase):

    def test_a_stalled_worker_is_503_at_15_s_on_every_path(self):
        # Workers that do not answer at all (stopped: a database that
        # hangs no longer stalls them, they answer within their budget):
        # nginx gives up at its 15 s fastcgi_read_timeout, as Twilio
        # would, and answers the same JSON 503 on a route and its alias.
        pids = stack.worker_pids()
        self.assertTrue(pids)
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            results = {}
            body = ("CallSid=CA%032d&AccountSid=AC%032d&From=%%2B15550000001"
                    "&To=%%2B15550000002&CallStatus=ringing" % (1, 1))

            def send(path):
                t0 = time.monotonic()
                r = post(path, body.encode(),
                         "application/x-www-form-urlencoded",
                         {"X-Twilio-Webhook-Secret": SHARED}, timeout=40)
                results[path] = (r, time.monotonic() - t0)
            threads = [threading.Thread(target=send, args=(p,)) for p in
                       ("/webhooks/twilio/voice/incoming",
                        "/voice/incoming")]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertEqual(len(results), 2, "both paths answered")
            for path, (r, secs) in results.items():
                self.assertEqual((r.status, r.json()), (503, {
                    "error": "telehook workers unavailable"}), path)
                self.assertGreater(secs, 14, path)
                self.assertLess(secs, 20, path)
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)


class RateLimit(unittest.TestCase):
    # last: it spends this address's rate

    def test_every_alias_is_limited_as_its_route(self):
        codes = [post("/api/voip/sms/webhook").status for _ in range(260)]
        self.assertIn(429, codes)
        self.assertNotIn(429, codes[:150], "the burst is the shipped one")
        for alias, route in ALIASES:
            with self.subTest(alias=alias):
                for path in (alias, route):
                    r = post(path)
                    self.assertEqual((r.status, r.json()), (429, {
                        "error": "too many requests"}), path)
        # the API has a zone of its own, untouched by the webhooks'
        self.assertEqual(stack.get("/api/v1/organizations/x/dashboard")
                         .status, 401)


load_tests = in_order(__name__)

if __name__ == "__main__":
    unittest.main(verbosity=2)
