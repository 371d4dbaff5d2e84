"""
e2e_api: the dashboard API end to end: every field of every answer after
signed Twilio and Retell webhooks, paging, mark-read, the tenant
isolation matrix (a token reads only its own organization; 404 for any
other, 401 without a valid one), and EXPLAIN showing that each query is
carried by an index with a large organization in the tables.
"""

import json
import os
import re
import sys
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stack, in_order  # noqa: E402
import e2e_twilio as tw  # noqa: E402
import e2e_retell as rt  # noqa: E402

stack = None
A = B = None
tokens = {}
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def api(path, token=None, method="GET"):
    h = {"Authorization": "Bearer " + token} if token else {}
    return stack.request(method, path, headers=h)


def setUpModule():
    global stack, A, B
    stack = Stack(workers=2, rate_limit=100000, extra_conf={
        "twilio": {"auth_token": tw.TOKEN},
        "retell": {"api_key": rt.KEY}}).start()
    tw.stack = rt.stack = stack
    A = stack.ctl_ok("org", "add", "Api Clinic", "--timezone",
                     "America/New_York").strip()
    stack.ctl_ok("org", "set", A, "hours=24/7")
    stack.ctl_ok("number", "add", A, "+15550040000")
    stack.ctl_ok("user", "add", A, "desk@api.example")
    B = stack.ctl_ok("org", "add", "Other Clinic").strip()
    stack.ctl_ok("number", "add", B, "+15550041000")
    tokens["A"] = stack.ctl_ok("token", "create", A).strip()
    tokens["B"] = stack.ctl_ok("token", "create", B).strip()
    revoked = stack.ctl_json("token", "create", A)
    stack.ctl_ok("token", "revoke", revoked["id"])
    tokens["revoked"] = revoked["token"]
    seed()


def tearDownModule():
    if stack is not None:
        stack.stop()


calls = {}


def seed():
    """Webhooks for A: an answered call, a missed one and a voicemail
    (Twilio), two answered and analyzed Retell calls, an inbound SMS, a
    sent SMS; one SMS for B."""
    post = tw.post
    c1 = tw.call_params(to="+15550040000", frm="+15551119001")
    post("/webhooks/twilio/voice/incoming", c1)
    # the forward picked up: answered (architecture.md §7)
    post("/webhooks/twilio/voice/gather?step=dial", tw.call_params(
        call=c1["CallSid"], status="in-progress", DialCallStatus="completed"))
    post("/webhooks/twilio/voice/status", tw.call_params(
        call=c1["CallSid"], status="completed", SequenceNumber="1",
        CallDuration="42", CallbackSource="call-progress-events"))
    c2 = tw.call_params(to="+15550040000", frm="+15551119002")
    post("/webhooks/twilio/voice/incoming", c2)
    post("/webhooks/twilio/voice/status", tw.call_params(
        call=c2["CallSid"], status="no-answer", SequenceNumber="1",
        CallbackSource="call-progress-events"))
    calls["twilio"] = c1["CallSid"]
    # a voicemail: the forward not answered, a message left.  telehook(8)
    # counts it missed, not answered, though the call "completed".
    c3 = tw.call_params(to="+15550040000", frm="+15551119005")
    post("/webhooks/twilio/voice/incoming", c3)
    post("/webhooks/twilio/voice/gather?step=dial", tw.call_params(
        call=c3["CallSid"], status="in-progress", DialCallStatus="no-answer"))
    post("/webhooks/twilio/recording/status?kind=voicemail", {
        "AccountSid": "AC" + "1" * 32, "CallSid": c3["CallSid"],
        "RecordingSid": tw.sid("RE"),
        "RecordingUrl": "https://api.twilio.com/rec/" + c3["CallSid"],
        "RecordingStatus": "completed", "RecordingDuration": "12"})
    post("/webhooks/twilio/voice/status", tw.call_params(
        call=c3["CallSid"], status="completed", SequenceNumber="2",
        CallDuration="40", CallbackSource="call-progress-events"))
    for ok in (True, False):
        cid = rt.call_id()
        e = rt.ended(cid, to="+15550040000")
        rt.event("call_ended", e)
        rt.event("call_analyzed", dict(e, call_analysis=rt.analysis(ok=ok)))
        calls.setdefault("retell", cid)
    post("/webhooks/twilio/sms/incoming", tw.sms_params(
        "thanks", to="+15550040000", frm="+15551119003"))
    post("/webhooks/twilio/sms/status", {
        "MessageSid": tw.sid("SM"), "From": "+15550040000",
        "To": "+15551119003", "MessageStatus": "delivered"})
    post("/webhooks/twilio/sms/incoming", tw.sms_params(
        "hello", to="+15550041000", frm="+15551119004"))


class Dashboard(unittest.TestCase):

    def test_every_field(self):
        r = api("/api/v1/organizations/%s/dashboard" % A, tokens["A"])
        self.assertEqual(r.status, 200)
        d = r.json()
        self.assertEqual(sorted(d), ["kpis", "month", "name",
                                     "organization_id", "recent_activity",
                                     "timezone"])
        self.assertEqual((d["organization_id"], d["name"]),
                         (A, "Api Clinic"))
        self.assertEqual(d["timezone"], "America/New_York")
        self.assertRegex(d["month"], r"^\d{4}-\d\d$")
        self.assertEqual(d["kpis"], {
            "answered_calls": 3, "missed_calls": 2, "sms_follow_ups": 1,
            "sms_sent": 1, "avg_call_seconds": 57,
            "ai_calls_analyzed": 2, "ai_calls_successful": 1})
        items = d["recent_activity"]
        # the organization's newest, up to 20 (the cap: test_big below)
        self.assertEqual([it["id"] for it in items], stack.psql(
            "SELECT id FROM activity WHERE organization_id = '%s' ORDER BY "
            "id DESC LIMIT 20" % A).split())
        self.assertGreaterEqual(len(items), 8)
        for it in items:
            self.assertEqual(sorted(it), ["call_id", "id", "message_id",
                                          "occurred_at", "summary", "type"])
            self.assertRegex(it["occurred_at"], ISO)
            self.assertIn(it["type"], ("call_started", "call_ended",
                                       "call_missed", "sms_reply",
                                       "sms_sent", "voicemail",
                                       "recording_ready", "inbound_call",
                                       "campaign_progress"))
        ids = [int(it["id"]) for it in items]
        self.assertEqual(ids, sorted(ids, reverse=True))
        ended = [it for it in items if it["call_id"] == calls["twilio"]
                 and it["type"] == "call_ended"]
        self.assertEqual(ended[0]["summary"], "Call completed")
        self.assertIsNone(ended[0]["message_id"])
        sms = [it for it in items if it["type"] == "sms_reply"]
        self.assertIsNone(sms[0]["call_id"])
        self.assertTrue(sms[0]["message_id"].startswith("SM"))

    def test_month(self):
        d = api("/api/v1/organizations/%s/dashboard?month=2001-02" % A,
                tokens["A"]).json()
        self.assertEqual(d["month"], "2001-02")
        self.assertEqual(set(d["kpis"].values()), {0})
        # telehook(8): a year from 2000 to 2999, both ends in
        for good in ("2000-01", "2999-12"):
            d = api("/api/v1/organizations/%s/dashboard?month=%s"
                    % (A, good), tokens["A"]).json()
            self.assertEqual(d["month"], good)
        for bad in ("2026-13", "2026-1", "26-11", "2026-11x", "x",
                    "1999-12", "3000-01", "2026-00", "2026/11"):
            r = api("/api/v1/organizations/%s/dashboard?month=%s"
                    % (A, bad), tokens["A"])
            self.assertEqual(r.status, 400, bad)
            self.assertEqual(r.json(), {"error": "month must be YYYY-MM"})


    def test_month_edges_in_the_organizations_zone(self):
        # a KPI month is the organization's calendar month: its first
        # instant in, the instant before it out, its last instant in, the
        # next month's first out, in a zone behind UTC and one ahead, in
        # months whose clocks change (telehook(8), the dashboard)
        for tz, month, nxt in (("America/New_York", "2026-03", "2026-04"),
                               ("Pacific/Auckland", "2026-04", "2026-05"),
                               ("Pacific/Auckland", "2026-09", "2026-10")):
            org = stack.ctl_ok("org", "add", "Edge %s %s" % (tz, month),
                               "--timezone", tz).strip()
            tok = stack.ctl_ok("token", "create", org).strip()
            first = "('%s-01 00:00'::timestamp AT TIME ZONE '%s')" % (
                month, tz)
            after = "('%s-01 00:00'::timestamp AT TIME ZONE '%s')" % (
                nxt, tz)
            for i, at in enumerate((first, first + " - interval '1 us'",
                                    after + " - interval '1 us'", after)):
                stack.psql(
                    "INSERT INTO calls (organization_id, provider, call_id, "
                    "direction, status, outcome, started_at) VALUES ('%s', "
                    "'twilio', 'CAedge%d%s', 'inbound', 'completed', "
                    "'answered', %s)" % (org, i, uuid.uuid4().hex[:8], at))
                stack.psql(
                    "INSERT INTO messages (organization_id, provider, "
                    "message_id, direction, created_at) VALUES ('%s', "
                    "'twilio', 'SMedge%d%s', 'inbound', %s)"
                    % (org, i, uuid.uuid4().hex[:8], at))
            d = api("/api/v1/organizations/%s/dashboard?month=%s"
                    % (org, month), tok).json()
            self.assertEqual(d["kpis"]["answered_calls"], 2, (tz, month))
            self.assertEqual(d["kpis"]["sms_follow_ups"], 2, (tz, month))
            d = api("/api/v1/organizations/%s/dashboard?month=%s"
                    % (org, nxt), tok).json()
            self.assertEqual(d["kpis"]["answered_calls"], 1, (tz, nxt))
            self.assertEqual(d["kpis"]["sms_follow_ups"], 1, (tz, nxt))


class Activity(unittest.TestCase):

    def test_paging(self):
        base = "/api/v1/organizations/%s/activity" % A
        everything = api(base + "?limit=200", tokens["A"]).json()
        self.assertIsNone(everything["next"])
        seen, nxt = [], None
        while True:
            url = base + "?limit=3" + ("&before=" + nxt if nxt else "")
            page = api(url, tokens["A"]).json()
            self.assertLessEqual(len(page["activity"]), 3)
            seen += page["activity"]
            nxt = page["next"]
            if nxt is None:
                break
            self.assertEqual(nxt, page["activity"][-1]["id"])
        self.assertEqual(seen, everything["activity"])
        # "next" names a page that holds something: null on a last page
        # that is full, as on any last page
        n = len(everything["activity"])
        self.assertGreater(n, 3)
        for limit, more in ((n, False), (n - 1, True), (n + 1, False)):
            page = api(base + "?limit=%d" % limit, tokens["A"]).json()
            self.assertEqual(len(page["activity"]), min(limit, n))
            self.assertEqual(page["next"] is not None, more, limit)
        # and from the middle: the one after "before", more after it
        mid = api(base + "?limit=1&before=" + everything["activity"][1][
            "id"], tokens["A"]).json()
        third = everything["activity"][2]["id"]
        self.assertEqual(([a["id"] for a in mid["activity"]], mid["next"]),
                         ([third], third))
        for bad in ("limit=0", "limit=201", "limit=x", "before=-1"):
            r = api(base + "?" + bad, tokens["A"])
            self.assertEqual(r.status, 400, bad)


class Notifications(unittest.TestCase):

    def test_list_and_mark_read(self):
        base = "/api/v1/organizations/%s/notifications" % A
        unread = api(base + "?unread=1", tokens["A"]).json()["notifications"]
        self.assertGreaterEqual(len(unread), 2)
        n = unread[0]
        self.assertEqual(sorted(n), ["created_at", "data", "id", "message",
                                     "read_at", "title", "type",
                                     "user_email"])
        self.assertEqual((n["type"], n["title"], n["user_email"]),
                         ("inbound_call", "Incoming Call Received",
                          "desk@api.example"))
        self.assertIsNone(n["read_at"])
        self.assertEqual(sorted(n["data"]), ["agent_id", "from_number",
                                             "to_number"])
        r = api(base + "/%s/read" % n["id"], tokens["A"], method="POST")
        self.assertEqual(r.status, 200)
        self.assertRegex(r.json()["read_at"], ISO)
        again = api(base + "/%s/read" % n["id"], tokens["A"], method="POST")
        self.assertEqual(again.json()["read_at"], r.json()["read_at"])
        # marking it read again keeps when it was first read, however long
        # ago (the times above are to the second)
        stack.psql("UPDATE notifications SET read_at = '2026-01-02 "
                   "03:04:05+00' WHERE id = %s" % n["id"])
        again = api(base + "/%s/read" % n["id"], tokens["A"], method="POST")
        self.assertEqual(again.json()["read_at"][:19], "2026-01-02T03:04:05")
        left = api(base + "?unread=1", tokens["A"]).json()["notifications"]
        self.assertEqual(len(left), len(unread) - 1)
        every = api(base, tokens["A"]).json()["notifications"]
        self.assertEqual(len(every), len(unread))
        for bad in ("999999999", "x"):
            r = api(base + "/%s/read" % bad, tokens["A"], method="POST")
            self.assertEqual(r.status, 404)
        # B cannot mark A's notification, even naming its own org
        r = api("/api/v1/organizations/%s/notifications/%s/read"
                % (B, unread[1]["id"]), tokens["B"], method="POST")
        self.assertEqual(r.status, 404)
        self.assertIsNone(api(base + "?unread=1", tokens["A"]).json()[
            "notifications"][0]["read_at"])
        self.assertEqual(api(base + "?unread=2", tokens["A"]).status, 400)


class Calls(unittest.TestCase):

    def test_live_state(self):
        base = "/api/v1/organizations/%s/calls/" % A
        c = api(base + calls["twilio"], tokens["A"]).json()
        self.assertEqual(sorted(c), sorted([
            "call_id", "provider", "direction", "from", "to", "status",
            "started_at", "ended_at", "duration_s", "recording_url",
            "transcript", "summary", "sentiment", "successful",
            "disconnection_reason", "cost_cents", "cost", "cost_currency",
            "outcome", "handled_at", "campaign_id", "contact_id"]))
        self.assertEqual(c["outcome"], "answered")
        self.assertEqual((c["provider"], c["direction"], c["from"], c["to"],
                          c["status"], c["duration_s"]),
                         ("twilio", "inbound", "+15551119001",
                          "+15550040000", "completed", 42))
        self.assertRegex(c["ended_at"], ISO)
        self.assertIsNone(c["successful"])
        r = api(base + calls["retell"], tokens["A"]).json()
        self.assertEqual((r["provider"], r["cost_cents"], r["successful"],
                          r["summary"]),
                         ("retell", 42, True, "Booked a cleaning."))
        self.assertEqual(api(base + "nope", tokens["A"]).status, 404)
        self.assertEqual(api("/api/v1/organizations/%s/calls/%s"
                             % (B, calls["twilio"]), tokens["B"]).status, 404)


class Campaigns(unittest.TestCase):

    def test_progress(self):
        camp = stack.ctl_ok("campaign", "add", A, "Api campaign").strip()
        csv = stack.path("api.csv")
        with open(csv, "w") as f:
            f.write("+15556670001\n+15556670002\n")
        stack.ctl_ok("campaign", "import", camp, csv)
        out = api("/api/v1/organizations/%s/campaigns" % A,
                  tokens["A"]).json()["campaigns"]
        mine = [c for c in out if c["id"] == camp][0]
        self.assertEqual(mine, {
            "id": camp, "name": "Api campaign", "total_contacts": 2,
            "processed": 0, "successful": 0,
            "contacts_by_status": {"pending": 2, "calling": 0,
                                   "completed": 0, "failed": 0,
                                   "no_answer": 0}})
        self.assertEqual(api("/api/v1/organizations/%s/campaigns" % B,
                             tokens["B"]).json(), {"campaigns": []})


class Isolation(unittest.TestCase):

    def test_matrix(self):
        paths = ["dashboard", "activity", "notifications", "campaigns",
                 "calls/" + calls["twilio"]]
        for p in paths:
            for org, token, want in (
                    (A, tokens["A"], 200), (B, tokens["B"], 200),
                    (B, tokens["A"], 404), (A, tokens["B"], 404),
                    (A, None, 401), (A, tokens["revoked"], 401),
                    (A, "thk_" + "x" * 43, 401), (A, "", 401),
                    ("not-a-uuid", tokens["A"], 404),
                    ("00000000-0000-0000-0000-000000000000",
                     tokens["A"], 404)):
                if p.startswith("calls/") and org == B and want == 200:
                    want = 404      # B has no such call
                with self.subTest(path=p, org=org, token=token):
                    r = api("/api/v1/organizations/%s/%s" % (org, p), token)
                    self.assertEqual(r.status, want)
                    if want != 200:
                        self.assertIn("error", r.json())
                        self.assertNotIn(A, r.text)
        r = api("/api/v1/organizations/%s/dashboard" % A, tokens["A"],
                method="DELETE")
        self.assertEqual(r.status, 405)
        # the token's use is recorded: just now, not NULL
        self.assertEqual(stack.psql(
            "SELECT last_used_at > now() - interval '5 minutes' FROM "
            "api_tokens WHERE token_hash = encode(sha256('%s'::bytea), "
            "'hex')" % tokens["A"]), "t")


class Handled(unittest.TestCase):
    """POST .../calls/{call}/handled marks a call dealt with, for the
    whole organization; DELETE undoes it (telehook(8))."""

    def test_mark_and_undo(self):
        base = "/api/v1/organizations/%s/calls/%s" % (A, calls["twilio"])
        self.assertIsNone(api(base, tokens["A"]).json()["handled_at"])
        # another organization's token: as if there were no such call
        r = api(base.replace(A, B) + "/handled", tokens["B"], "POST")
        self.assertEqual(r.status, 404)
        r = api(base + "/handled", tokens["B"], "POST")
        self.assertEqual(r.status, 404)
        self.assertIsNone(api(base, tokens["A"]).json()["handled_at"])
        r = api(base + "/handled", tokens["A"], "POST")
        self.assertEqual(r.status, 200)
        first = r.json()
        self.assertEqual(first["call_id"], calls["twilio"])
        self.assertRegex(first["handled_at"], ISO)
        # the state is the organization's: every token of it sees it
        other = stack.ctl_ok("token", "create", A).strip()
        self.assertEqual(api(base, other).json()["handled_at"],
                         first["handled_at"])
        # marked again: the first time is kept
        self.assertEqual(api(base + "/handled", other, "POST").json(),
                         first)
        r = api(base + "/handled", tokens["A"], "DELETE")
        self.assertEqual((r.status, r.json()["handled_at"]), (200, None))
        self.assertIsNone(api(base, other).json()["handled_at"])
        r = api("/api/v1/organizations/%s/calls/CAnone/handled" % A,
                tokens["A"], "POST")
        self.assertEqual((r.status, r.json()), (404, {
            "error": "unknown call"}))
        r = api(base + "/handled", tokens["A"], "GET")
        self.assertEqual(r.status, 405)


class ZPlans(unittest.TestCase):
    """With a large organization in the tables, each dashboard query of
    a small one runs on its index (EXPLAIN), and the answer is one round
    trip whatever the size."""

    def test_indexes(self):
        big = stack.ctl_ok("org", "add", "Big Clinic").strip()
        stack.psql(
            "INSERT INTO calls (organization_id, provider, call_id, status, "
            "status_rank, started_at, direction, duration_s, outcome, "
            "outcome_rank) SELECT '%s', 'twilio', 'CAbig' || g, "
            "'completed', 5, now() - (g || ' s')::interval, 'inbound', 60, "
            "'answered', 3 FROM generate_series(1, 100000) g" % big)
        stack.psql(
            "INSERT INTO messages (organization_id, provider, message_id, "
            "direction, status, status_rank, created_at) SELECT '%s', "
            "'twilio', 'SMbig' || g, 'inbound', 'received', 4, now() - "
            "(g || ' s')::interval FROM generate_series(1, 100000) g" % big)
        stack.psql(
            "INSERT INTO activity (organization_id, type, summary) SELECT "
            "'%s', 'call_ended', 'Call completed' FROM "
            "generate_series(1, 200000)" % big)
        stack.psql("ANALYZE calls; ANALYZE messages; ANALYZE activity")
        queries = {
            "calls_org_started":
                "SELECT count(*) FROM calls WHERE organization_id = '%s' "
                "AND started_at >= now() - interval '30 days' AND "
                "started_at < now()",
            "messages_org_created":
                "SELECT count(*) FROM messages WHERE organization_id = '%s' "
                "AND direction = 'inbound' AND created_at >= now() - "
                "interval '30 days' AND created_at < now()",
            "activity_org_id":
                "SELECT * FROM activity WHERE organization_id = '%s' ORDER "
                "BY id DESC LIMIT 20",
            "notifications_org":
                "SELECT * FROM notifications WHERE organization_id = '%s' "
                "ORDER BY id DESC LIMIT 100",
        }
        for index, q in queries.items():
            plan = stack.psql("EXPLAIN " + q % A)
            with self.subTest(index=index):
                # an index that leads with the organization: the one
                # named, or another the planner found as good
                self.assertRegex(plan, r"Index (Only )?Scan")
                self.assertNotIn("Seq Scan", plan)
        d = api("/api/v1/organizations/%s/dashboard" % big,
                tokens["A"])
        self.assertEqual(d.status, 404)
        token = stack.ctl_ok("token", "create", big).strip()
        d = api("/api/v1/organizations/%s/dashboard" % big, token).json()
        self.assertEqual(d["kpis"]["answered_calls"] +
                         0, int(stack.psql(
                             "SELECT count(*) FROM calls WHERE "
                             "organization_id = '%s' AND started_at >= "
                             "date_trunc('month', now() AT TIME ZONE 'UTC') "
                             "AT TIME ZONE 'UTC'" % big)))
        self.assertEqual(len(d["recent_activity"]), 20)


load_tests = in_order(__name__)

if __name__ == "__main__":
    unittest.main(verbosity=2)
