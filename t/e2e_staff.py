"""
e2e_staff: the staff's view API end to end (telehook(8), "The staff's
view"): the calls list with its filters and paging, a call's recording
streamed through telehook from a local fake of Twilio's API that demands
the account's Basic credentials and honours Range, SMS conversations,
one campaign with its contacts, and the isolation matrix over all of
them (another organization's token gets 404 on each).
"""

import base64
import http.server
import io
import math
import os
import re
import struct
import sys
import threading
import unittest
import wave

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stack, in_order  # noqa: E402
import e2e_twilio as tw  # noqa: E402

stack = None
A = B = C = None
tokens = {}
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
SID_A = "AC" + "1" * 32         # A's account: the configured token
SID_C = "AC" + "c" * 32         # C's account: its own stored token
TOKEN_C = "c-own-auth-token-0123456789abcdef"
calls = {}


def wav():
    """Ten seconds of a 440 Hz tone, 8 kHz mono (160 KB, as a short
    voicemail is: more than one write of the stream): real audio a
    browser plays, so the page test can see the player load it."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"".join(struct.pack(
            "<h", int(8000 * math.sin(2 * math.pi * 440 * i / 8000)))
            for i in range(80000)))
    return out.getvalue()


AUDIO = wav()


class FakeTwilio(http.server.ThreadingHTTPServer):
    """Twilio's recording resource as its documents describe it: HTTP
    Basic as the account in the path with its auth token, the audio as
    audio/x-wav, byte ranges (206 with Content-Range, 416 past the end).
    Every request is recorded with the credentials it carried."""

    daemon_threads = True

    def __init__(self, creds):
        self.creds = creds
        self.hits = []
        super().__init__(("127.0.0.1", 0), FakeHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def base(self):
        return "http://127.0.0.1:%d" % self.server_address[1]


class FakeHandler(http.server.BaseHTTPRequestHandler):

    def log_message(self, *a):
        pass

    def do_HEAD(self):
        self.do_GET(body=False)

    def do_GET(self, body=True):
        m = re.match(r"^/2010-04-01/Accounts/(AC\w{32})/Recordings/RE\w+$",
                     self.path)
        auth = self.headers.get("Authorization")
        self.server.hits.append((self.path, auth, self.headers.get("Range")))
        if not m:
            return self.answer(404, b"no such resource")
        want = "Basic " + base64.b64encode(("%s:%s" % (
            m.group(1), self.server.creds.get(m.group(1), ""))).encode()
        ).decode()
        if auth != want:
            return self.answer(401, b"authenticate",
                               {"WWW-Authenticate": 'Basic realm="Twilio"'})
        data, status, extra = AUDIO, 200, {}
        rng = self.headers.get("Range")
        if rng:
            lo, _, hi = rng[len("bytes="):].partition("-")
            lo = int(lo)
            hi = min(int(hi), len(AUDIO) - 1) if hi else len(AUDIO) - 1
            if lo >= len(AUDIO):
                return self.answer(416, b"", {
                    "Content-Range": "bytes */%d" % len(AUDIO)})
            data, status = AUDIO[lo:hi + 1], 206
            extra["Content-Range"] = "bytes %d-%d/%d" % (lo, hi, len(AUDIO))
        self.answer(status, data, dict(extra, **{
            "Content-Type": "audio/x-wav", "Accept-Ranges": "bytes"}),
            body)

    def answer(self, status, data, headers=None, body=True):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)


fake = other = None


def api(path, token=None, method="GET", headers=None):
    h = {"Authorization": "Bearer " + token} if token else {}
    h.update(headers or {})
    return stack.request(method, path, headers=h)


def recording(org, call_sid, url, token=tw.TOKEN, account=SID_A):
    """A signed recording callback for call_sid."""
    r = tw.post("/webhooks/twilio/recording/status?kind=voicemail", {
        "AccountSid": account, "CallSid": call_sid,
        "RecordingSid": tw.sid("RE"), "RecordingUrl": url,
        "RecordingStatus": "completed", "RecordingDuration": "1"},
        token=token)
    assert r.status == 204 or r.status == 200, r.status


def voicemail(to, frm, token=tw.TOKEN, account=SID_A, url=None):
    """An inbound call that nobody took, with a message left."""
    c = tw.call_params(to=to, frm=frm, AccountSid=account)
    tw.post("/webhooks/twilio/voice/incoming", c, token=token)
    tw.post("/webhooks/twilio/voice/gather?step=dial", tw.call_params(
        call=c["CallSid"], status="in-progress", DialCallStatus="no-answer",
        AccountSid=account), token=token)
    rec = tw.sid("RE")
    recording(None, c["CallSid"], url or "%s/2010-04-01/Accounts/%s/"
              "Recordings/%s" % (fake.base, account, rec), token, account)
    tw.post("/webhooks/twilio/voice/status", tw.call_params(
        call=c["CallSid"], status="completed", SequenceNumber="2",
        CallDuration="30", AccountSid=account,
        CallbackSource="call-progress-events"), token=token)
    return c["CallSid"]


def setUpModule():
    global stack, A, B, C, fake, other
    fake = FakeTwilio({SID_A: tw.TOKEN, SID_C: TOKEN_C})
    other = FakeTwilio({SID_A: tw.TOKEN})
    stack = Stack(workers=2, rate_limit=100000, secret_key=True,
                  extra_conf={"twilio": {"auth_token": tw.TOKEN,
                                         "api_url": fake.base}}).start()
    tw.stack = stack
    A = stack.ctl_ok("org", "add", "Staff Clinic", "--timezone",
                     "America/New_York").strip()
    stack.ctl_ok("org", "set", A, "hours=24/7", "twilio_account_sid=" + SID_A)
    stack.ctl_ok("number", "add", A, "+15550060000")
    B = stack.ctl_ok("org", "add", "Other Staff Clinic").strip()
    stack.ctl_ok("number", "add", B, "+15550061000")
    C = stack.ctl_ok("org", "add", "Own Account Clinic").strip()
    stack.ctl_ok("number", "add", C, "+15550062000")
    stack.ctl_ok("secret", "set", C, "twilio", "--account", SID_C,
                 input=TOKEN_C + "\n")
    for k, org in (("A", A), ("B", B), ("C", C)):
        tokens[k] = stack.ctl_ok("token", "create", org).strip()
    seed()


def tearDownModule():
    if stack is not None:
        stack.stop()
    for f in (fake, other):
        if f is not None:
            f.shutdown()


def seed():
    """A: three answered calls, two missed, two voicemails (one on
    another host); SMS with two contacts, both directions.  B: one call
    and one SMS.  C: a voicemail on its own Twilio account."""
    post = tw.post
    calls["answered"] = [tw.answered_call("+15550060000",
                                          "+1555111700%d" % i)
                         for i in range(3)]
    calls["missed"] = [tw.missed_call("+15550060000",
                                      "+1555111710%d" % i)[0]
                       for i in range(2)]
    calls["voicemail"] = [voicemail("+15550060000", "+15551117200")]
    calls["elsewhere"] = voicemail(
        "+15550060000", "+15551117201",
        url="%s/2010-04-01/Accounts/%s/Recordings/RE%s" % (
            other.base, SID_A, "9" * 32))
    calls["voicemail"].append(calls["elsewhere"])
    calls["C"] = voicemail("+15550062000", "+15551117300", token=TOKEN_C,
                           account=SID_C)
    c = tw.call_params(to="+15550061000", frm="+15551117400")
    post("/webhooks/twilio/voice/incoming", c)
    calls["B"] = c["CallSid"]
    for frm, body in (("+15551118001", "hello"), ("+15551118002", "hi"),
                      ("+15551118001", "Can I book an appointment?"),
                      ("+15551118001", "thanks")):
        post("/webhooks/twilio/sms/incoming", tw.sms_params(
            body, to="+15550060000", frm=frm))
    # the clinic's own message to the first contact, then delivered
    out = tw.sid("SM")
    for status in ("sent", "delivered"):
        post("/webhooks/twilio/sms/status", {
            "MessageSid": out, "From": "+15550060000",
            "To": "+15551118001", "MessageStatus": status,
            "AccountSid": SID_A})
    calls["outbound_sms"] = out
    post("/webhooks/twilio/sms/incoming", tw.sms_params(
        "other", to="+15550061000", frm="+15551118001"))


CALL_FIELDS = sorted([
    "call_id", "provider", "direction", "from", "to", "caller_name",
    "status", "outcome", "started_at", "ended_at",
    "duration_s", "agent_id", "summary", "sentiment", "successful",
    "has_recording", "transcript_excerpt", "handled_at"])


def calls_of(query, token=None):
    r = api("/api/v1/organizations/%s/calls%s" % (A, query),
            token or tokens["A"])
    assert r.status == 200, (r.status, r.text)
    return r.json()


class CallsList(unittest.TestCase):

    def test_fields_and_filters(self):
        d = calls_of("")
        self.assertEqual(sorted(d), ["calls", "next"])
        got = [c["call_id"] for c in d["calls"]]
        everything = (calls["answered"] + calls["missed"] +
                      calls["voicemail"])
        self.assertEqual(sorted(got), sorted(everything))
        # newest first: the order they were made
        self.assertEqual(got, list(reversed(everything)))
        for c in d["calls"]:
            self.assertEqual(sorted(c), CALL_FIELDS)
            self.assertRegex(c["started_at"], ISO)
            self.assertEqual((c["provider"], c["direction"], c["to"]),
                             ("twilio", "inbound", "+15550060000"))
        by = {c["call_id"]: c for c in d["calls"]}
        a = by[calls["answered"][0]]
        self.assertEqual((a["from"], a["outcome"], a["duration_s"],
                          a["has_recording"], a["status"]),
                         ("+15551117000", "answered", 42, False,
                          "completed"))
        v = by[calls["voicemail"][0]]
        self.assertEqual((v["outcome"], v["has_recording"]),
                         ("voicemail", True))
        # missed means nobody took it: voicemails too (architecture.md §7)
        self.assertEqual(
            sorted(c["call_id"] for c in calls_of("?status=missed")["calls"]),
            sorted(calls["missed"] + calls["voicemail"]))
        self.assertEqual(
            sorted(c["call_id"] for c in
                   calls_of("?status=voicemail")["calls"]),
            sorted(calls["voicemail"]))
        self.assertEqual(
            sorted(c["call_id"] for c in
                   calls_of("?status=answered")["calls"]),
            sorted(calls["answered"]))

    def test_since(self):
        self.assertEqual(calls_of("?since=2999-01-01")["calls"], [])
        self.assertEqual(len(calls_of("?since=2001-01-01")["calls"]), 7)
        first = stack.psql("SELECT th_iso(min(started_at)) FROM calls "
                           "WHERE organization_id = '%s'" % A)
        self.assertEqual(len(calls_of("?since=" + first)["calls"]), 7)
        later = stack.psql(
            "SELECT to_char(max(started_at) AT TIME ZONE 'UTC' + interval "
            "'1 second', 'YYYY-MM-DD\"T\"HH24:MI:SS\"+00:00\"') FROM calls "
            "WHERE organization_id = '%s'" % A)
        self.assertEqual(calls_of("?since=" + later.replace(
            "+", "%2B"))["calls"], [])
        # a date is midnight in the organization's time zone: New York's
        # today includes every call made in the last minute or so
        today = stack.psql("SELECT to_char(now() AT TIME ZONE "
                           "'America/New_York', 'YYYY-MM-DD')")
        self.assertEqual(len(calls_of("?since=" + today)["calls"]), 7)
        for bad in ("yesterday", "2026-11-29T10:00:00", "2026-11-29T10:00Z",
                    "2026-13-01x", "2026-11-29%2010:00:00Z"):
            r = api("/api/v1/organizations/%s/calls?since=%s" % (A, bad),
                    tokens["A"])
            self.assertEqual(r.status, 400, bad)
            self.assertIn("since must be", r.json()["error"])
        for bad in ("status=busy", "limit=0", "limit=201", "before=x"):
            r = api("/api/v1/organizations/%s/calls?%s" % (A, bad),
                    tokens["A"])
            self.assertEqual(r.status, 400, bad)

    def test_paging(self):
        everything = calls_of("?limit=200")
        self.assertIsNone(everything["next"])
        seen, nxt, pages = [], None, 0
        while True:
            page = calls_of("?limit=3" + ("&before=" + nxt if nxt else ""))
            self.assertLessEqual(len(page["calls"]), 3)
            seen += page["calls"]
            pages += 1
            nxt = page["next"]
            if nxt is None:
                break
        self.assertEqual(pages, 3)
        self.assertEqual(seen, everything["calls"])
        # a page that ends at the oldest call has no next
        n = len(everything["calls"])
        full = calls_of("?limit=%d" % n)
        self.assertEqual((full["calls"], full["next"]),
                         (everything["calls"], None))
        missed = calls_of("?status=missed&limit=2")
        self.assertIsNotNone(missed["next"])
        rest = calls_of("?status=missed&limit=2&before=" + missed["next"])
        self.assertEqual(len(missed["calls"] + rest["calls"]), 4)


class Recording(unittest.TestCase):

    def url(self, org, call):
        return "/api/v1/organizations/%s/calls/%s/recording" % (org, call)

    def test_streamed_with_the_accounts_credentials(self):
        del fake.hits[:]
        logged = len(stack.worker_log())
        r = api(self.url(A, calls["voicemail"][0]), tokens["A"])
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, AUDIO)
        # a whole stream is the request's one line (telehook.8 What is
        # logged), no warning of the recording's
        self.assertNotIn("recording:", stack.worker_log()[logged:])
        self.assertEqual(r.headers["content-type"], "audio/x-wav")
        self.assertEqual(r.headers["accept-ranges"], "bytes")
        # the browser never sees a credential; the provider saw A's
        self.assertNotIn(tw.TOKEN, str(r.headers))
        self.assertEqual(len(fake.hits), 1)
        self.assertEqual(fake.hits[0][1], "Basic " + base64.b64encode(
            ("%s:%s" % (SID_A, tw.TOKEN)).encode()).decode())
        # C's recording: C's own stored token, not the configured one
        r = api(self.url(C, calls["C"]), tokens["C"])
        self.assertEqual((r.status, r.body), (200, AUDIO))

    def test_another_organizations_token_is_never_borrowed(self):
        # telehook(8) GET calls/CALL/recording: the organization's own
        # token for the account, or the configured one for the account
        # the organization names; D's call on C's account gets neither
        d = stack.ctl_ok("org", "add", "Borrowing Clinic").strip()
        stack.ctl_ok("number", "add", d, "+15550063000")
        token = stack.ctl_ok("token", "create", d).strip()
        sid = voicemail("+15550063000", "+15551117500", account=SID_C)
        del fake.hits[:]
        r = api(self.url(d, sid), token)
        self.assertEqual(r.status, 502)
        self.assertEqual(r.json(), {
            "error": "no Twilio credentials for the recording's account"})
        self.assertEqual(fake.hits, [])

    def test_range(self):
        r = api(self.url(A, calls["voicemail"][0]), tokens["A"],
                headers={"Range": "bytes=100-1123"})
        self.assertEqual(r.status, 206)
        self.assertEqual(r.body, AUDIO[100:1124])
        # telehook.8 /metrics: a status it does not list is "other"
        counted = [ln for ln in stack.get("/metrics").text.splitlines()
                   if ln.startswith('telehook_requests_total{route="'
                                    'api_call_recording"')]
        self.assertTrue(any('status="other"} ' in ln for ln in counted),
                        counted)
        self.assertFalse(any('status="206"' in ln or 'status="0"' in ln
                             for ln in counted), counted)
        self.assertEqual(r.headers["content-range"],
                         "bytes 100-1123/%d" % len(AUDIO))
        self.assertEqual(r.headers["content-length"], "1024")
        r = api(self.url(A, calls["voicemail"][0]), tokens["A"],
                headers={"Range": "bytes=%d-" % (len(AUDIO) - 10)})
        self.assertEqual((r.status, r.body), (206, AUDIO[-10:]))
        r = api(self.url(A, calls["voicemail"][0]), tokens["A"],
                headers={"Range": "bytes=%d-" % (len(AUDIO) + 10)})
        self.assertEqual(r.status, 416)
        r = api(self.url(A, calls["voicemail"][0]), tokens["A"],
                method="HEAD")
        self.assertEqual((r.status, r.body), (200, b""))
        self.assertEqual(r.headers["content-length"], str(len(AUDIO)))

    def test_credentials_go_nowhere_else(self):
        del other.hits[:]
        r = api(self.url(A, calls["elsewhere"]), tokens["A"])
        self.assertEqual(r.status, 502)
        self.assertEqual(r.json(), {
            "error": "the recording is not on [twilio] api_url"})
        self.assertEqual(other.hits, [])

    def test_wrong_credentials_and_missing(self):
        # the provider refuses: 502, and its page is not passed on
        fake.creds[SID_A] = "rotated-token"
        try:
            r = api(self.url(A, calls["voicemail"][0]), tokens["A"])
        finally:
            fake.creds[SID_A] = tw.TOKEN
        self.assertEqual(r.status, 502)
        self.assertEqual(r.json(), {
            "error": "the provider refused the recording"})
        r = api(self.url(A, calls["answered"][0]), tokens["A"])
        self.assertEqual((r.status, r.json()), (404, {
            "error": "the call has no recording"}))
        r = api(self.url(A, "CAnone"), tokens["A"])
        self.assertEqual((r.status, r.json()), (404, {
            "error": "unknown call"}))

    def test_a_read_the_database_cannot_answer_is_503(self):
        # telehook.8 API: a read the database cannot answer (a lock held
        # past lock_timeout_ms here; the token is still read) is 503
        with stack.table_locked("calls"):
            for path in (self.url(A, calls["voicemail"][0]),
                         "/api/v1/organizations/%s/calls" % A):
                r = api(path, tokens["A"])
                self.assertEqual((r.status, r.json()), (503, {
                    "error": "database unavailable"}), path)
        r = api(self.url(A, calls["voicemail"][0]), tokens["A"])
        self.assertEqual(r.status, 200)
        # the lock timeout opened the pool's breaker: the tests after
        # this one post webhooks, which must not be spooled for it
        stack.wait_breaker_closed()


class Conversations(unittest.TestCase):

    def base(self, org=None):
        return "/api/v1/organizations/%s/conversations" % (org or A)

    def test_threads(self):
        d = api(self.base(), tokens["A"]).json()
        self.assertEqual(sorted(d), ["conversations", "next"])
        self.assertIsNone(d["next"])
        by = {c["contact"]: c for c in d["conversations"]}
        self.assertEqual(sorted(by), ["+15551118001", "+15551118002"])
        # the first contact's latest is the clinic's delivered message
        self.assertEqual(d["conversations"][0]["contact"], "+15551118001")
        first = by["+15551118001"]
        self.assertEqual((first["messages"], first["last_direction"],
                          first["last_status"], first["last_message_id"]),
                         (4, "outbound", "delivered",
                          calls["outbound_sms"]))
        self.assertRegex(first["last_at"], ISO)
        self.assertEqual((by["+15551118002"]["messages"],
                          by["+15551118002"]["last_body"]), (1, "hi"))
        page = api(self.base() + "?limit=1", tokens["A"]).json()
        self.assertEqual(len(page["conversations"]), 1)
        self.assertIsNotNone(page["next"])
        rest = api(self.base() + "?limit=1&before=" + page["next"],
                   tokens["A"]).json()
        self.assertEqual([c["contact"] for c in page["conversations"] +
                          rest["conversations"]],
                         ["+15551118001", "+15551118002"])
        self.assertIsNone(rest["next"])

    def threads(self, org, token):
        """Every page of org's threads: (contact, messages, last id)."""
        seen, nxt = [], None
        while True:
            page = api(self.base(org) + "?limit=40" +
                       ("&before=" + nxt if nxt else ""), token).json()
            seen += [(c["contact"], c["messages"], c["last_message_id"])
                     for c in page["conversations"]]
            nxt = page["next"]
            if nxt is None:
                return seen

    def expected(self, org):
        """The threads by their definition (DESIGN §15): every message
        of org with one contact, the contacts by newest message."""
        rows = stack.psql(
            "SELECT contact, n, message_id FROM (SELECT CASE WHEN "
            "direction = 'inbound' THEN from_number ELSE to_number END AS "
            "contact, count(*) AS n, max(id) AS id FROM messages WHERE "
            "organization_id = '%s' GROUP BY 1) t JOIN messages m USING "
            "(id) WHERE contact IS NOT NULL ORDER BY id DESC" % org)
        return [(c, int(n), mid) for c, n, mid in
                (r.split("|") for r in rows.splitlines())]

    def test_history(self):
        # an organization with a long history: 1,200 messages with 150
        # contacts, both directions, stored as the workers store them
        # (the same table and triggers)
        D = stack.ctl_ok("org", "add", "History Clinic").strip()
        token = stack.ctl_ok("token", "create", D).strip()
        stack.psql(
            "INSERT INTO messages (organization_id, provider, message_id, "
            "direction, from_number, to_number, body) SELECT '%s', "
            "'twilio', 'SMhist' || g, CASE WHEN g %% 4 = 0 THEN 'outbound' "
            "ELSE 'inbound' END, CASE WHEN g %% 4 = 0 THEN '+15550063000' "
            "ELSE '+1555220' || lpad((g * 7 %% 150)::text, 4, '0') END, "
            "CASE WHEN g %% 4 = 0 THEN '+1555220' || lpad((g * 7 %% 150)"
            "::text, 4, '0') ELSE '+15550063000' END, 'x' FROM "
            "generate_series(1, 1200) g" % D)
        stack.psql("ANALYZE messages")  # as autovacuum would
        want = self.expected(D)
        self.assertEqual(len(want), 150)
        self.assertEqual(self.threads(D, token), want)
        # a page reads about a page of messages, not the history of
        # 1,200: the messages' rows this transaction fetched, by any
        # scan.  The newest 21 are 21 contacts' newest, fetched by
        # PL/pgSQL 50 at a time; the 20 shown, at most twice; and the
        # messages of those 20 threads, 8 each, counted
        read = stack.psql(
            "SELECT th_api_conversations('%s', NULL, 20) IS NULL; "
            "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) "
            "FROM pg_stat_xact_user_tables WHERE relname = 'messages'" % D)
        self.assertLessEqual(int(read.splitlines()[-1]), 50 + 2 * 20 + 20 * 8)
        # a message given its organization later (events assign), one
        # deleted (the newest of its thread), two moved to another
        # organization: each thread follows
        stack.psql(
            "INSERT INTO messages (provider, message_id, direction, "
            "from_number, to_number, body) VALUES ('twilio', 'SMhistlate', "
            "'inbound', '+15552200007', '+15550063000', 'late')")
        stack.psql("UPDATE messages SET organization_id = '%s' WHERE "
                   "message_id = 'SMhistlate'" % D)
        stack.psql("DELETE FROM messages WHERE id = (SELECT max(id) FROM "
                   "messages WHERE organization_id = '%s' AND "
                   "'+15552200010' IN (from_number, to_number))" % D)
        stack.psql("UPDATE messages SET organization_id = '%s' WHERE "
                   "message_id IN ('SMhist3', 'SMhist4')" % B)
        want = self.expected(D)
        self.assertEqual(want[0], ("+15552200007", 9, "SMhistlate"))
        self.assertEqual(len(want), 150)
        self.assertEqual(self.threads(D, token), want)
        self.assertEqual(self.threads(B, tokens["B"]), self.expected(B))
        # B's token reads none of D's threads
        self.assertEqual(api(self.base(D), tokens["B"]).status, 404)
        # a chatty contact: its 2,500 newest messages hide the others
        # from the walk's first batches and from all 2,000 it walks
        # before it groups what is left
        stack.psql(
            "INSERT INTO messages (organization_id, provider, message_id, "
            "direction, from_number, to_number, body) SELECT '%s', "
            "'twilio', 'SMchat' || g, 'inbound', '+15552209999', "
            "'+15550063000', 'x' FROM generate_series(1, 2500) g" % D)
        want = self.expected(D)
        self.assertEqual(want[0], ("+15552209999", 2500, "SMchat2500"))
        self.assertEqual(self.threads(D, token), want)

    def test_one_thread(self):
        for contact in ("+15551118001", "%2B15551118001"):
            d = api(self.base() + "/" + contact, tokens["A"]).json()
            self.assertEqual(sorted(d), ["contact", "messages", "next"])
            self.assertEqual(d["contact"], "+15551118001")
            m = d["messages"]
            self.assertEqual([(x["direction"], x["body"]) for x in m], [
                ("outbound", None), ("inbound", "thanks"),
                ("inbound", "Can I book an appointment?"),
                ("inbound", "hello")])
            # answered by an auto-reply (the appointment rule): marked
            self.assertEqual([x["auto_reply"] for x in m],
                             [False, False, True, False])
            self.assertEqual([h["status"] for h in m[0]["status_history"]],
                             ["sent", "delivered"])
            self.assertEqual(m[0]["status"], "delivered")
            self.assertEqual(sorted(m[0]), sorted([
                "id", "message_id", "provider", "direction", "from", "to",
                "body", "num_media", "status", "status_history",
                "auto_reply", "reply_text", "created_at"]))
            # the auto-reply's text is kept with the message it answered
            self.assertEqual([x["reply_text"] is not None for x in m],
                             [False, False, True, False])
        seen, nxt = [], None
        while True:
            page = api(self.base() + "/+15551118001?limit=3" +
                       ("&before=" + nxt if nxt else ""), tokens["A"]).json()
            seen += page["messages"]
            nxt = page["next"]
            if nxt is None:
                break
        self.assertEqual(seen, m)
        # a page that ends at the thread's first message has no next
        full = api(self.base() + "/+15551118001?limit=%d" % len(m),
                   tokens["A"]).json()
        self.assertEqual((full["messages"], full["next"]), (m, None))
        # B's message from the same number is not in A's thread
        self.assertNotIn("other", [x["body"] for x in seen])
        self.assertEqual(api(self.base() + "/+15559999999",
                             tokens["A"]).json()["messages"], [])
        for bad in ("15551118001", "+0123", "x"):
            self.assertEqual(api(self.base() + "/" + bad,
                                 tokens["A"]).status, 404, bad)


class Campaign(unittest.TestCase):

    def test_contacts(self):
        camp = stack.ctl_ok("campaign", "add", A, "Recall").strip()
        csv = stack.path("staff.csv")
        with open(csv, "w") as f:
            f.write("phone,name\n+15556680001,Ann\n+15556680002,Bob\n"
                    "+15556680003,Cy\n")
        stack.ctl_ok("campaign", "import", camp, csv)
        base = "/api/v1/organizations/%s/campaigns/%s" % (A, camp)
        d = api(base, tokens["A"]).json()
        self.assertEqual((d["id"], d["name"], d["total_contacts"],
                          d["processed"], d["successful"], d["next"]),
                         (camp, "Recall", 3, 0, 0, None))
        self.assertEqual([(c["position"], c["phone"], c["name"],
                           c["status"], c["call_id"], c["outcome"])
                          for c in d["contacts"]],
                         [(1, "+15556680001", "Ann", "pending", None, None),
                          (2, "+15556680002", "Bob", "pending", None, None),
                          (3, "+15556680003", "Cy", "pending", None, None)])
        page = api(base + "?limit=2", tokens["A"]).json()
        self.assertEqual(page["next"], "2")
        rest = api(base + "?limit=2&after=2", tokens["A"]).json()
        self.assertEqual(page["contacts"] + rest["contacts"], d["contacts"])
        self.assertIsNone(rest["next"])
        # a page that ends exactly at the last contact has no next
        full = api(base + "?limit=3", tokens["A"]).json()
        self.assertEqual((len(full["contacts"]), full["next"]), (3, None))
        last = api(base + "?limit=1&after=2", tokens["A"]).json()
        self.assertEqual(([c["position"] for c in last["contacts"]],
                          last["next"]), ([3], None))
        for path in (base.replace(A, B), ):
            self.assertEqual(api(path, tokens["B"]).status, 404)
        self.assertEqual(api("/api/v1/organizations/%s/campaigns/%s" % (
            B, camp), tokens["B"]).json(), {"error": "unknown campaign"})
        self.assertEqual(api(base[:-36] + "not-a-uuid",
                             tokens["A"]).status, 404)
        self.assertEqual(api(base + "?after=x", tokens["A"]).status, 400)


class Isolation(unittest.TestCase):
    """Every endpoint of the staff's view: the owner 200, another
    organization's token 404 (naming either organization), no token
    401."""

    def test_matrix(self):
        camp = stack.ctl_ok("campaign", "add", A, "Matrix").strip()
        paths = ["calls", "calls?status=missed",
                 "calls/%s/recording" % calls["voicemail"][0],
                 "conversations", "conversations/+15551118001",
                 "campaigns/" + camp]
        for p in paths:
            for org, token, want in (
                    (A, tokens["A"], 200), (A, tokens["B"], 404),
                    (A, tokens["C"], 404), (A, None, 401),
                    (B, tokens["A"], 404)):
                with self.subTest(path=p, org=org, token=token):
                    r = api("/api/v1/organizations/%s/%s" % (org, p), token)
                    self.assertEqual(r.status, want)
                    if want != 200:
                        self.assertNotIn(b"RIFF", r.body)
                        self.assertIn("error", r.json())
        # B's own lists hold nothing of A's
        r = api("/api/v1/organizations/%s/calls" % B, tokens["B"]).json()
        self.assertEqual([c["call_id"] for c in r["calls"]], [calls["B"]])
        r = api("/api/v1/organizations/%s/conversations/+15551118001" % B,
                tokens["B"]).json()
        self.assertEqual([m["body"] for m in r["messages"]], ["other"])
        r = api("/api/v1/organizations/%s/calls/%s/recording"
                % (B, calls["voicemail"][0]), tokens["B"])
        self.assertEqual((r.status, r.json()), (404, {
            "error": "unknown call"}))


class ZPlans(unittest.TestCase):
    """With a large organization in the tables, the calls list, one
    outcome of it and a thread of a small one are index scans."""

    def test_indexes(self):
        big = stack.ctl_ok("org", "add", "Big Staff Clinic").strip()
        stack.psql(
            "INSERT INTO calls (organization_id, provider, call_id, status, "
            "status_rank, direction, outcome, outcome_rank) SELECT '%s', "
            "'twilio', 'CAstaff' || g, 'completed', 5, 'inbound', "
            "'answered', 3 FROM generate_series(1, 50000) g" % big)
        stack.psql(
            "INSERT INTO messages (organization_id, provider, message_id, "
            "direction, from_number, status, status_rank) SELECT '%s', "
            "'twilio', 'SMstaff' || g, 'inbound', '+1555118' || "
            "lpad((g %% 5000)::text, 4, '0'), 'received', 4 "
            "FROM generate_series(1, 50000) g" % big)
        stack.psql("ANALYZE calls; ANALYZE messages")
        queries = {
            "calls list": "SELECT * FROM calls c WHERE c.organization_id = "
            "'%s' ORDER BY c.id DESC LIMIT 51",
            "missed calls": "SELECT * FROM calls c WHERE c.organization_id "
            "= '%s' AND (c.outcome = 'missed' OR c.outcome = 'voicemail') "
            "ORDER BY c.id DESC LIMIT 51",
            "thread": "SELECT * FROM messages m WHERE m.organization_id = "
            "'%s' AND (CASE WHEN m.direction = 'inbound' THEN "
            "m.from_number ELSE m.to_number END) = '+15551118001' ORDER BY "
            "m.id DESC LIMIT 51",
        }
        for name, q in queries.items():
            plan = stack.psql("EXPLAIN " + q % A)
            with self.subTest(query=name):
                self.assertRegex(plan, r"Index (Only )?Scan|Bitmap Index")
                self.assertNotIn("Seq Scan", plan)


load_tests = in_order(__name__)

if __name__ == "__main__":
    unittest.main(verbosity=2)
