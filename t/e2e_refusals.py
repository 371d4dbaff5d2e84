"""
e2e_refusals: nothing logged or kept from a refusal, and a flood of them
costs no row each (telehook(8), SECURITY; DESIGN §5).

Requests carry a VoIP.ms URL token and message text in every place a
request line can (the query, a path parameter after ';'), and are refused
by nginx itself (413, 429) and by the workers (404, 401).  Afterwards
neither nginx's access log (configured at server level, as ops teams do,
and at http level) nor the workers' log nor the rejections the operator
reads hold the token, any 8-character run of it, or the text.  A token in
a body is not kept either, whatever the content type: not in the stored
payload, not in the stored raw body, not in a spool file.  10,000
unauthenticated requests add at most 100 rows to the whole database.
"""

import binascii
import glob
import json
import os
import shutil
import sys
import tempfile
import threading
import unittest
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stack, wait_for, in_order  # noqa: E402
import e2e_twilio as tw  # noqa: E402

stack = None
logdir = None
ORG = None
TOKEN = "vmTok" + uuid.uuid4().hex[:20]         # the deployment's URL token
WRONG = "vmBad" + uuid.uuid4().hex[:20]         # a guess
TEXT = "privatetext" + uuid.uuid4().hex[:12]    # a message's text
DID = "5145550177"
VOIPMS = "203.0.113.77"


def runs(secret):
    """Every 8-character run of secret."""
    return {secret[i:i + 8] for i in range(len(secret) - 7)}


def logs():
    text = ""
    for p in (os.path.join(logdir, "server-access.log"),
              stack.path("nginx", "access.log"), stack.path("workers.log"),
              # nginx's error log, at level info here
              stack.path("nginx", "error.log")):
        if os.path.exists(p):
            with open(p, errors="replace") as f:
                text += f.read()
    return text


def setUpModule():
    global stack, logdir, ORG
    logdir = tempfile.mkdtemp(prefix="telehook-refusals-")
    os.chmod(logdir, 0o777)
    # rate 1/s, burst 200 from one address; realip from this test's
    # X-Forwarded-For spreads the flood over many addresses
    stack = Stack(workers=2, rate_limit=1, trusted_proxies=["127.0.0.1"],
                  extra_locations="access_log %s/server-access.log;" %
                  logdir,
                  extra_conf={"twilio": {"auth_token": tw.TOKEN},
                              "voipms": {"url_token": TOKEN,
                                         "allowed_ips": VOIPMS + "/32"}}
                  ).start()
    tw.stack = stack
    ORG = stack.ctl_ok("org", "add", "Refusal Clinic").strip()
    stack.ctl_ok("number", "add", ORG, DID, "--provider", "voipms")


def tearDownModule():
    if stack is not None:
        stack.stop()
    if logdir is not None:
        shutil.rmtree(logdir, ignore_errors=True)


def vm_query(token=TOKEN, text=TEXT):
    # organization_id: the refusals are this organization's, counted
    # apart from the flood's (which names none)
    return urllib.parse.urlencode([
        ("token", token), ("to", DID), ("from", "5145550101"),
        ("message", text), ("id", uuid.uuid4().hex[:9]),
        ("organization_id", ORG)])


def xff(addr=VOIPMS):
    return {"X-Forwarded-For": addr}


class Logs(unittest.TestCase):

    def assert_clean(self, text):
        for secret in (TOKEN, WRONG, TEXT):
            for run in runs(secret):
                self.assertNotIn(run, text)

    def test_1_nothing_of_a_refusal_in_any_log(self):
        got = {}
        # 413: nginx refuses the body; its request line has it all
        r = stack.post("/webhooks/voipms/sms/incoming?" + vm_query(),
                       b"x" * (1024 * 1024 + 1),
                       "application/x-www-form-urlencoded", xff())
        got[413] = r.status
        # 404 from the workers: an unknown path, and a token written as a
        # path parameter (no route has one)
        got[404] = stack.request(
            "GET", "/webhooks/voipms/nowhere?" + vm_query(),
            headers=xff()).status
        got["404;"] = stack.request(
            "GET", "/webhooks/voipms/sms/incoming;token=%s;message=%s?"
            "organization_id=%s" % (TOKEN, TEXT, ORG), headers=xff()).status
        # 401: a good token on a route that wants a signature, and a
        # wrong token where a token is what counts
        got[401] = stack.request(
            "POST", "/webhooks/twilio/sms/incoming?" + vm_query(),
            body=urllib.parse.urlencode({"Body": TEXT}),
            headers=dict(xff(), **{"Content-Type": tw.FORM})).status
        got["401 wrong"] = stack.request(
            "GET", "/webhooks/voipms/sms/incoming?" + vm_query(WRONG),
            headers=xff()).status
        # 429: past the burst of one address (with the shipped limits
        # file: an operator's own upstream block alone has none)
        if not stack.own_upstream:
            statuses = set()
            for _ in range(260):
                statuses.add(stack.request(
                    "GET", "/webhooks/voipms/sms/incoming?" +
                    vm_query(WRONG), headers=xff("198.51.100.42")).status)
            got[429] = 429 if 429 in statuses else sorted(statuses)
        # refused by nginx before it picks a location, or outside
        # telehook's: no Host, a request line too long, a lower-case
        # method, an unknown path, a path that climbs
        q = vm_query().encode()
        for raw in (b"GET /webhooks/voipms/sms/incoming?" + q +
                    b" HTTP/1.1\r\n\r\n",
                    b"GET /webhooks/voipms/sms/incoming?" + q + b"&pad=" +
                    b"x" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
                    b"get /webhooks/voipms/sms/incoming?" + q +
                    b" HTTP/1.1\r\nHost: x\r\n\r\n",
                    b"GET /dashboard?" + q + b" HTTP/1.1\r\nHost: x\r\n"
                    b"Connection: close\r\n\r\n",
                    b"GET /webhooks/../voipms/sms/incoming?" + q +
                    b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                    b"GET /nothing-here?" + q + b" HTTP/1.1\r\nHost: x\r\n"
                    b"Connection: close\r\n\r\n"):
            answer = stack.raw(raw)
            self.assertRegex(answer[:12], rb"HTTP/1\.[01] [45]\d\d",
                             raw[:60])
        want = {413: 413, 404: 404, "404;": 404, 401: 401, "401 wrong": 401}
        if not stack.own_upstream:
            want[429] = 429
        self.assertEqual(got, want)
        wait_for("the refusals recorded", lambda: stack.psql(
            "SELECT count(*) FROM rejections WHERE cause = "
            "'unknown_route' AND organization_id = '%s'" % ORG) == "2")
        text = logs()
        # the logs did see these requests: they are not simply empty
        self.assertIn("/webhooks/voipms/nowhere", text)
        self.assertIn("/webhooks/voipms/sms/incoming", text)
        self.assert_clean(text)
        self.assert_clean(stack.psql(
            "SELECT string_agg(route || ' ' || coalesce(detail, ''), ' ') "
            "FROM rejections"))
        self.assertEqual(stack.psql(
            "SELECT string_agg(route, ',' ORDER BY route) FROM rejections "
            "WHERE cause = 'unknown_route' AND organization_id = '%s'" % ORG),
            "/webhooks/voipms/nowhere,/webhooks/voipms/sms/incoming")


class Stored(unittest.TestCase):

    def assert_no_token(self, where):
        for run in runs(TOKEN):
            self.assertNotIn(run, where)

    def stored(self, key_like):
        row = stack.psql(
            "SELECT payload::text || ' ' || encode(body, 'escape') || "
            "' ' || coalesce(request_uri, '') || ' ' || headers::text FROM events WHERE "
            "provider_key LIKE '%s' ORDER BY id DESC LIMIT 1" % key_like)
        self.assertNotEqual(row, "")
        return row

    def test_1_json_body(self):
        cid = "vmcall" + uuid.uuid4().hex[:10]
        r = stack.post("/webhooks/voipms/recording/ready?token=" + TOKEN,
                       json.dumps({"uniqueid": cid, "token": TOKEN,
                                   "Token": TOKEN,
                                   "data": {"token": TOKEN},
                                   "list": [{"TOKEN": TOKEN}],
                                   "recording_url": "https://voip.ms/r.mp3"}),
                       "application/json", xff())
        self.assertEqual(r.status, 200, r)
        row = self.stored("%" + cid + "%")
        self.assertIn(cid, row)
        self.assert_no_token(row)

    def test_2_form_body(self):
        mid = uuid.uuid4().hex[:9]
        body = urllib.parse.urlencode([
            ("to", DID), ("from", "5145550101"), ("message", "hello"),
            ("id", mid), ("token", TOKEN), ("TOKEN", TOKEN)])
        r = stack.post("/webhooks/voipms/sms/incoming?token=" + TOKEN, body,
                       "application/x-www-form-urlencoded", xff())
        self.assertEqual(r.status, 200, r)
        row = self.stored("%" + mid + "%")
        self.assertIn("hello", row)
        self.assert_no_token(row)

    def test_2b_form_body_separated_by_semicolons(self):
        # VoIP.ms separates with ';' too: "id=X;token=T" carries one
        mid = uuid.uuid4().hex[:9]
        body = "to=%s&from=5145550101&message=semi&id=%s;token=%s" % (
            DID, mid, TOKEN)
        r = stack.post("/webhooks/voipms/sms/incoming?token=" + TOKEN, body,
                       "application/x-www-form-urlencoded", xff())
        self.assertEqual(r.status, 200, r)
        row = self.stored("%" + mid + "%")
        self.assertIn("semi", row)
        self.assert_no_token(row)

    def test_2c_secret_headers(self):
        # telehook.8 What is stored: no credential header, by its name in
        # any case, nor one whose name is too long to read
        secret = "hdrSecret" + uuid.uuid4().hex[:16]
        names = ["Authorization", "proxy-authorization", "Cookie",
                 "X-Client-Secret", "X-Auth-Token", "X-Api-Key",
                 "X-ApiKey", "X-Password", "X-Session-Id", "X-Hook-Auth",
                 "X-Upstream-Token", "X-" + "Long" * 32 + "-Trace"]
        h = dict(xff(), **{n: secret for n in names})
        h["X-Trace-Id"] = "kept-" + secret[-8:]
        mid = uuid.uuid4().hex[:9]
        q = urllib.parse.urlencode([
            ("token", TOKEN), ("to", DID), ("from", "5145550101"),
            ("message", "hello"), ("id", mid)])
        r = stack.request("GET", "/webhooks/voipms/sms/incoming?" + q,
                          headers=h)
        self.assertEqual(r.status, 200, r)
        row = self.stored("%" + mid + "%")
        # the headers are kept, but none of those named above
        self.assertIn("kept-" + secret[-8:], row)
        for run in runs(secret[:-8]):
            self.assertNotIn(run, row)

    def test_3_spool_file(self):
        cid = "vmspool" + uuid.uuid4().hex[:10]
        stack.stop_postgres()
        try:
            r = stack.post("/webhooks/voipms/recording/ready?token=" + TOKEN,
                           json.dumps({"uniqueid": cid, "token": TOKEN,
                                       "recording_url":
                                       "https://voip.ms/s.mp3"}),
                           "application/json", xff())
            self.assertEqual(r.status, 200, r)
            files = glob.glob(os.path.join(stack.spool, "*.spool"))
            self.assertTrue(files)
            data = b""
            for name in files:
                with open(name, "rb") as f:
                    data += f.read()
            self.assertIn(cid.encode(), data)
            for run in runs(TOKEN):
                self.assertNotIn(run.encode(), data)
        finally:
            stack.start_postgres()
        wait_for("the spool drained", lambda: not glob.glob(
            os.path.join(stack.spool, "*.spool")))
        self.assert_no_token(self.stored("%" + cid + "%"))


def rows():
    """Every row of every table of the database."""
    return int(stack.psql(
        "SELECT sum((xpath('/row/c/text()', query_to_xml(format("
        "'SELECT count(*) AS c FROM %I.%I', schemaname, tablename), false, "
        "true, '')))[1]::text::bigint) FROM pg_tables WHERE schemaname = "
        "'public'"))


class Flood(unittest.TestCase):

    N = 10000

    def test_1_ten_thousand_cost_a_few_rows(self):
        before = rows()
        counted = int(stack.psql("SELECT coalesce(sum(count), 0) FROM "
                                 "rejection_counts"))
        # To: the organization's number, so the refusals are its
        body = urllib.parse.urlencode(tw.sms_params("flood", to="+1" + DID))
        statuses = {}
        lock = threading.Lock()

        # every route, both content types, the API with a bad token,
        # unknown paths all distinct, and an organization's number
        routes = ["/webhooks/twilio/voice/incoming",
                  "/webhooks/twilio/voice/status",
                  "/webhooks/twilio/voice/gather",
                  "/webhooks/twilio/recording/status",
                  "/webhooks/twilio/transcription",
                  "/webhooks/twilio/sms/incoming",
                  "/webhooks/twilio/sms/status", "/webhooks/twilio",
                  "/webhooks/retell", "/webhooks/retell/inbound",
                  "/webhooks/voipms/call/cdr",
                  "/webhooks/voipms/recording/ready",
                  "/api/webhooks/twilio", "/voice/incoming",
                  "/functions/v1/retell-webhook"]

        def send(k):
            for i in range(k, self.N, 8):
                # 100 addresses, 100 requests each: under every burst
                h = {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl",
                     "X-Retell-Signature": "v=1,d=00",
                     "X-Forwarded-For": "198.51.100.%d" % (i % 100 + 1),
                     "Content-Type": tw.FORM}
                kind = i % 5
                if kind == 0:       # an unknown path, each its own
                    s = stack.request("GET", "/webhooks/nope/%d" % i,
                                      headers=h).status
                elif kind == 1:     # the dashboard API, a bad token
                    s = stack.request("GET", "/api/v1/organizations/%s/"
                                      "dashboard" % ORG, headers=dict(
                                          h, Authorization="Bearer nope%d"
                                          % i)).status
                elif kind == 2:     # a content type no route takes
                    s = stack.request("POST", routes[i % len(routes)],
                                      body=body, headers=dict(
                                          h, **{"Content-Type":
                                                "text/plain"})).status
                else:               # a bad signature, on every route
                    s = stack.request("POST", routes[i % len(routes)],
                                      body=body, headers=h).status
                with lock:
                    statuses[s] = statuses.get(s, 0) + 1
        threads = [threading.Thread(target=send, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(sum(statuses.values()), self.N)
        # nginx's own 429s (the API's rate limit) reach no worker
        self.assertLessEqual(set(statuses), {401, 403, 404, 415, 429},
                             statuses)
        workers = self.N - statuses.get(429, 0)
        wait_for("every refusal counted", lambda: int(stack.psql(
            "SELECT sum(count) FROM rejection_counts")) - counted == workers,
            timeout=60)
        added = rows() - before
        self.assertLessEqual(added, 100)
        self.assertGreater(added, 0)


# in the order written: the flood, last, spends the minute's samples
load_tests = in_order(__name__)

if __name__ == "__main__":
    unittest.main(verbosity=2)
