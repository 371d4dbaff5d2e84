"""
e2e_retell: the Retell provider end to end, with requests signed as
retell-sdk signs them (HMAC-SHA256 of the raw body and the millisecond
timestamp, header "v=<ms>,d=<hex>"): every event type, the inbound
answer, redelivery, out-of-order events and a campaign run to completion.
"""

import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stack, retell_sign, wait_for, in_order  # noqa: E402

KEY = "retell-api-key-0123456789"
PREVIOUS = "retell-previous-key-9876543210"
SHARED = "retell-shared-secret"
ORG_KEY = "retell-org-own-key"
JSON = "application/json"

stack = None
orgs = {}
seq = [0]


# X-Retell-Signature, as retell-sdk verifies it (t/harness.py)
rsign = retell_sign


def post(path, obj, key=KEY, ts=None, headers=None):
    body = json.dumps(obj)
    h = {"X-Retell-Signature": rsign(key, body, ts)}
    h.update(headers or {})
    return stack.post(path, body, JSON, h)


def event(ev, call, **extra):
    o = {"event": ev, "call": call}
    o.update(extra)
    return post("/webhooks/retell", o)


def call_id():
    seq[0] += 1
    return "call_%d_%06d" % (os.getpid(), seq[0])


def call(cid, status="ongoing", direction="inbound", frm="+15551230001",
         to="+15550010000", **kw):
    now = int(time.time() * 1000)
    c = {"call_type": "phone_call", "call_id": cid, "agent_id": "agent_A",
         "agent_version": 1, "call_status": status, "direction": direction,
         "from_number": frm, "to_number": to,
         "start_timestamp": now - 65000}
    c.update(kw)
    return c


def ended(cid, reason="user_hangup", **kw):
    return call(cid, status="ended", end_timestamp=int(time.time() * 1000),
                duration_ms=65000, disconnection_reason=reason,
                recording_url="https://retell.example/rec/" + cid,
                transcript="Agent: Hello\nUser: Hi",
                call_cost={"combined_cost": 42.7}, **kw)


def analysis(summary="Booked a cleaning.", ok=True, sentiment="Positive"):
    return {"call_summary": summary, "user_sentiment": sentiment,
            "call_successful": ok, "in_voicemail": False,
            "custom_analysis_data": {"appointment": "2026-12-01"}}


def q1(sql):
    return stack.psql(sql)


def count(table, where="true"):
    return int(q1("SELECT count(*) FROM %s WHERE %s" % (table, where)))


def callrow(cid, cols):
    return q1("SELECT %s FROM calls WHERE call_id = '%s'" % (cols, cid))


def setUpModule():
    global stack
    stack = Stack(workers=2, secret_key=True, extra_conf={"retell": {
        "api_key": KEY, "api_key_previous": PREVIOUS,
        "webhook_secret": SHARED}}).start()
    o = stack.ctl_ok("org", "add", "AI Clinic", "--timezone",
                     "America/Chicago").strip()
    stack.ctl_ok("org", "set", o, "hours=24/7",
                 "retell_agent_id=agent_override_1")
    stack.ctl_ok("number", "add", o, "+15550010000", "--provider", "retell")
    stack.ctl_ok("user", "add", o, "ann@ai.example")
    stack.ctl_ok("user", "add", o, "bob@ai.example")
    orgs["ai"] = o
    n = stack.ctl_ok("org", "add", "Night Clinic").strip()
    stack.ctl_ok("org", "set", n, "hours=sun closed")
    stack.ctl_ok("number", "add", n, "+15550020000")
    orgs["night"] = n
    k = stack.ctl_ok("org", "add", "Own Key Clinic").strip()
    stack.ctl_ok("number", "add", k, "+15550030000")
    stack.ctl_ok("secret", "set", k, "retell", input=ORG_KEY + "\n")
    orgs["key"] = k


def tearDownModule():
    if stack is not None:
        stack.stop()


class Authenticity(unittest.TestCase):

    def test_keys(self):
        for key in (KEY, PREVIOUS):
            cid = call_id()
            r = post("/webhooks/retell", {"event": "call_started",
                                          "call": call(cid)}, key=key)
            self.assertEqual(r.status, 204, key)
            self.assertEqual(callrow(cid, "organization_id"), orgs["ai"])
        # an organization's own key vouches for its events only
        cid = call_id()
        r = post("/webhooks/retell", {"event": "call_started", "call": call(
            cid, to="+15550030000")}, key=ORG_KEY)
        self.assertEqual(r.status, 204)
        self.assertEqual(callrow(cid, "organization_id"), orgs["key"])
        r = post("/webhooks/retell", {"event": "call_started", "call": call(
            call_id(), to="+15550010000")}, key=ORG_KEY)
        self.assertEqual(r.status, 401)
        # an outbound call is the calling number's (DESIGN §4): its
        # owner's key vouches for it, whoever was called
        cid = call_id()
        r = post("/webhooks/retell", {"event": "call_started", "call": call(
            cid, direction="outbound", frm="+15550030000",
            to="+15557770002")}, key=ORG_KEY)
        self.assertEqual(r.status, 204)
        self.assertEqual(callrow(cid, "organization_id"), orgs["key"])
        r = post("/webhooks/retell", {"event": "call_started", "call": call(
            call_id(), direction="outbound", frm="+15557770003",
            to="+15550030000")}, key=ORG_KEY)
        self.assertEqual(r.status, 401)

    def test_refusals_store_nothing(self):
        n = count("events")
        o = {"event": "call_started", "call": call(call_id())}
        body = json.dumps(o)
        now = int(time.time() * 1000)
        cases = [
            (rsign(KEY, body, now - 301000),
             "X-Retell-Signature timestamp outside signature_tolerance_s"),
            (rsign(KEY, body, now + 301000),
             "X-Retell-Signature timestamp outside signature_tolerance_s"),
            (rsign("wrong-key", body), "bad X-Retell-Signature"),
            (rsign(KEY, body + " "), "bad X-Retell-Signature"),
            ("v=%d,d=%s" % (now, "0" * 62), "malformed X-Retell-Signature"),
            ("sha256=" + "0" * 64, "malformed X-Retell-Signature"),
        ]
        for header, why in cases:
            r = stack.post("/webhooks/retell", body, JSON,
                           {"X-Retell-Signature": header})
            self.assertEqual(r.status, 401, header)
            self.assertEqual(r.json(), {"error": why})
        r = stack.post("/webhooks/retell", body, JSON)
        self.assertEqual(r.json(), {"error": "missing X-Retell-Signature"})
        r = stack.post("/webhooks/retell", body, JSON,
                       {"X-Retell-Secret": "nope"})
        self.assertEqual(r.status, 401)
        self.assertEqual(count("events"), n)

    def test_within_tolerance(self):
        cid = call_id()
        o = {"event": "call_started", "call": call(cid)}
        now = int(time.time() * 1000)
        self.assertEqual(post("/webhooks/retell", o,
                              ts=now - 290000).status, 204)
        self.assertEqual(count("events", "provider_key = 'call_started:%s'"
                               % cid), 1)

    def test_shared_secret(self):
        for h in ({"X-Retell-Secret": SHARED},
                  {"Authorization": "Bearer " + SHARED}):
            cid = call_id()
            body = json.dumps({"event": "call_started", "call": call(cid)})
            self.assertEqual(stack.post("/webhooks/retell", body, JSON,
                                        h).status, 204)
            self.assertEqual(callrow(cid, "status"), "in-progress")


class Events(unittest.TestCase):

    def test_lifecycle_and_redelivery(self):
        cid = call_id()
        started = call(cid, retell_llm_dynamic_variables={
            "customer_name": "Jane Roe"})
        self.assertEqual(event("call_started", started).status, 204)
        self.assertEqual(callrow(cid, "status || '|' || direction || '|' "
                                 "|| organization_id || '|' || agent_id"),
                         "in-progress|inbound|%s|agent_A" % orgs["ai"])
        notes = json.loads(q1(
            "SELECT json_agg(json_build_object('title', title, 'message', "
            "message, 'data', data)) FROM notifications WHERE event_id = "
            "(SELECT id FROM events WHERE provider_key = 'call_started:%s')"
            % cid))
        self.assertEqual(len(notes), 2)
        self.assertEqual(notes[0], {
            "title": "Incoming Call Received",
            "message": "New inbound call from +15551230001 to +15550010000",
            "data": {"from_number": "+15551230001",
                     "to_number": "+15550010000", "agent_id": "agent_A"}})
        t1 = dict(started, transcript="Agent: Hello")
        t2 = dict(started, transcript="Agent: Hello\nUser: I need a cleaning")
        self.assertEqual(event("transcript_updated", t1).status, 204)
        self.assertEqual(event("transcript_updated", t2).status, 204)
        self.assertEqual(event("transcript_updated", t1).status, 204)
        self.assertEqual(callrow(cid, "transcript"),
                         "Agent: Hello\nUser: I need a cleaning")
        self.assertEqual(count("events", "provider_key = "
                               "'transcript_updated:%s'" % cid), 1)
        self.assertIn("I need a cleaning", q1(
            "SELECT payload->'call'->>'transcript' FROM events WHERE "
            "provider_key = 'transcript_updated:%s'" % cid))
        for ev in ("transfer_started", "transfer_bridged",
                   "transfer_cancelled", "transfer_ended"):
            self.assertEqual(event(ev, dict(started),
                                   transfer_destination="+15559998888")
                             .status, 204)
        self.assertEqual(count("events", "provider_key LIKE 'transfer_%%:%s:%%'"
                               % cid), 4)
        e = ended(cid, retell_llm_dynamic_variables={
            "customer_name": "Jane Roe"})
        self.assertEqual(event("call_ended", e).status, 204)
        self.assertEqual(callrow(cid, "status || '|' || duration_s || '|' "
                                 "|| cost_cents || '|' || "
                                 "disconnection_reason || '|' || "
                                 "recording_url || '|' || caller_name"),
                         "completed|65|42|user_hangup|"
                         "https://retell.example/rec/%s|Jane Roe" % cid)
        a = dict(e, call_analysis=analysis())
        self.assertEqual(event("call_analyzed", a).status, 204)
        self.assertEqual(callrow(cid, "summary || '|' || sentiment || '|' "
                                 "|| successful || '|' || "
                                 "(custom_data->>'appointment') || '|' || "
                                 "(analyzed_at IS NOT NULL)"),
                         "Booked a cleaning.|Positive|true|2026-12-01|true")
        acts = "SELECT string_agg(type || ':' || summary, ';' ORDER BY id) "\
               "FROM activity WHERE call_id = (SELECT id FROM calls WHERE "\
               "call_id = '%s')" % cid
        want = ("inbound_call:Inbound call from +15551230001;"
                "call_ended:Booked a cleaning.")
        self.assertEqual(q1(acts), want)
        state = [count(t) for t in ("events", "calls", "activity",
                                    "notifications")]
        for ev, obj in (("call_started", started), ("call_ended", e),
                        ("call_analyzed", a), ("transcript_updated", t2)):
            self.assertEqual(event(ev, obj).status, 204)
        self.assertEqual([count(t) for t in ("events", "calls", "activity",
                                             "notifications")], state)
        self.assertEqual(q1(acts), want)

    def test_analyzed_before_ended(self):
        cid = call_id()
        e = ended(cid)
        a = dict(e, call_analysis=analysis("Asked about hours."))
        self.assertEqual(event("call_started", call(cid)).status, 204)
        self.assertEqual(event("call_analyzed", a).status, 204)
        self.assertEqual(event("call_ended", e).status, 204)
        self.assertEqual(callrow(cid, "status || '|' || summary"),
                         "completed|Asked about hours.")
        self.assertEqual(q1("SELECT string_agg(summary, ';') FROM activity "
                            "WHERE type = 'call_ended' AND call_id = (SELECT "
                            "id FROM calls WHERE call_id = '%s')" % cid),
                         "Asked about hours.")

    def test_started_late_changes_nothing(self):
        # Retell retries out of order: a call_started that arrives after
        # the call ended (and was analyzed) moves nothing back.
        cid = call_id()
        e = ended(cid)
        a = dict(e, call_analysis=analysis("Cancelled a visit."))
        self.assertEqual(event("call_ended", e).status, 204)
        self.assertEqual(event("call_analyzed", a).status, 204)
        cols = ("status || '|' || status_rank || '|' || outcome || '|' || "
                "ended_at || '|' || summary || '|' || duration_s")
        before = callrow(cid, cols)
        self.assertTrue(before.startswith("completed|5|answered|"), before)
        acts = ("SELECT count(*) FROM activity WHERE call_id = (SELECT id "
                "FROM calls WHERE call_id = '%s')" % cid)
        n_acts = q1(acts)
        late = call(cid, status="ongoing", start_timestamp=int(
            time.time() * 1000) - 5000)
        self.assertEqual(event("call_started", late).status, 204)
        self.assertEqual(callrow(cid, cols), before)
        self.assertEqual(q1(acts), n_acts)

    def test_status_mapping_and_missed(self):
        cid = call_id()
        self.assertEqual(event("call_ended", ended(
            cid, reason="dial_no_answer", direction="outbound",
            frm="+15550010000", to="+15557770001")).status, 204)
        # DESIGN §4: an outbound call belongs to the owner of the calling
        # number (the called one is the customer's, nobody's here)
        self.assertEqual(callrow(cid, "status || '|' || direction || '|' "
                                 "|| coalesce(organization_id::text, '-')"),
                         "no-answer|outbound|%s" % orgs["ai"])
        self.assertEqual(q1("SELECT summary FROM activity WHERE call_id = "
                            "(SELECT id FROM calls WHERE call_id = '%s')"
                            % cid), "Call not connected (dial_no_answer)")
        cid = call_id()
        self.assertEqual(event("call_ended", call(
            cid, status="not_connected")).status, 204)
        self.assertEqual(callrow(cid, "status"), "failed")
        self.assertEqual(q1("SELECT type FROM activity WHERE call_id = "
                            "(SELECT id FROM calls WHERE call_id = '%s')"
                            % cid), "call_missed")
        cid = call_id()
        self.assertEqual(event("call_started", call(
            cid, status="registered")).status, 204)
        self.assertEqual(callrow(cid, "status"), "queued")

    def test_unknown_event_is_stored_and_acknowledged(self):
        r = post("/webhooks/retell", {"event": "chat_started",
                                      "chat": {"chat_id": "chat_1"}})
        self.assertEqual(r.status, 204)
        self.assertEqual(count("events", "event_type = 'chat_started'"), 1)

    def test_compat_shape_with_secret(self):
        cid = call_id()
        body = json.dumps({"organization_id": orgs["night"], "call_id": cid,
                           "start_timestamp": 1780000000000,
                           "end_timestamp": 1780000030000,
                           "transcript": "hi", "call_status": "ended",
                           "recording_url": "https://r.example/x"})
        r = stack.post("/api/webhooks/retell", body, JSON,
                       {"X-Retell-Secret": SHARED})
        self.assertEqual(r.status, 204)
        self.assertEqual(callrow(cid, "organization_id || '|' || status || "
                                 "'|' || duration_s"),
                         orgs["night"] + "|completed|30")
        r = stack.post("/functions/v1/retell-webhook", body, JSON,
                       {"Authorization": "Bearer " + SHARED})
        self.assertEqual(r.status, 204)

    def test_bad_input(self):
        r = post("/webhooks/retell", {"call": {"call_id": "x"}})
        self.assertEqual(r.status, 400)
        self.assertEqual(r.json(), {"error": "missing event"})
        r = post("/webhooks/retell", {"event": "call_ended", "call": {}})
        self.assertEqual(r.json(), {"error": "missing call.call_id"})
        r = stack.post("/webhooks/retell", "event=x",
                       "application/x-www-form-urlencoded")
        self.assertEqual(r.status, 415)
        r = stack.post("/webhooks/retell", "{nope", JSON,
                       {"X-Retell-Signature": rsign(KEY, "{nope")})
        self.assertEqual(r.status, 400)


class Inbound(unittest.TestCase):

    def inbound(self, frm, to="+15550010000"):
        r = post("/webhooks/retell/inbound", {
            "event": "call_inbound", "event_timestamp": 1780012672105,
            "call_inbound": {"agent_id": "agent_A", "agent_version": 1,
                             "from_number": frm, "to_number": to}})
        self.assertEqual(r.status, 200)
        self.assertTrue(r.headers["content-type"].startswith(JSON))
        return r.json()

    def test_unknown_caller(self):
        self.assertEqual(self.inbound("+15553330000"), {"call_inbound": {
            "override_agent_id": "agent_override_1",
            "dynamic_variables": {"organization_name": "AI Clinic",
                                  "business_hours": "true",
                                  "previous_calls": "0",
                                  "caller_known": "false"},
            "metadata": {"organization_id": orgs["ai"]}}})

    def test_known_caller(self):
        cid = call_id()
        event("call_ended", ended(cid, frm="+15553330001",
                                  retell_llm_dynamic_variables={
                                      "customer_name": "Sam Caller"}))
        vars_ = self.inbound("+15553330001")["call_inbound"][
            "dynamic_variables"]
        self.assertEqual(vars_["caller_known"], "true")
        self.assertEqual(vars_["previous_calls"], "1")
        self.assertEqual(vars_["caller_name"], "Sam Caller")

    def test_blocked_caller(self):
        stack.ctl_ok("block", "add", orgs["ai"], "+15553330002")
        self.assertEqual(self.inbound("+15553330002"),
                         {"call_inbound": {"reject": True}})

    def test_after_hours_and_unknown_number(self):
        out = self.inbound("+15553330003", to="+15550020000")
        self.assertEqual(out["call_inbound"]["dynamic_variables"]
                         ["business_hours"], "false")
        self.assertNotIn("override_agent_id", out["call_inbound"])
        self.assertEqual(self.inbound("+15553330003", to="+15559990000"),
                         {"call_inbound": {}})

    def test_query_never_overrides_the_number(self):
        # the query string is unsigned: it routes only what the body
        # leaves unrouted (DESIGN §4; retell-sdk signs the body alone)
        out = post("/webhooks/retell/inbound?organization_id=" +
                   orgs["night"], {"event": "call_inbound", "call_inbound": {
                       "from_number": "+15553330004",
                       "to_number": "+15550010000"}}).json()["call_inbound"]
        self.assertEqual(out["metadata"], {"organization_id": orgs["ai"]})
        self.assertEqual(out["override_agent_id"], "agent_override_1")

    def test_redelivery_gets_the_same_answer(self):
        o = {"event": "call_inbound", "call_inbound": {
            "from_number": "+15553330004", "to_number": "+15550010000",
            "call_id": "inbound_" + call_id()}}
        first = post("/webhooks/retell/inbound", o).json()
        n = count("events")
        self.assertEqual(post("/webhooks/retell/inbound", o).json(), first)
        self.assertEqual(count("events"), n)

    def test_without_call_id_keyed_by_the_body(self):
        # no call_id: the key is the body's digest (DESIGN §6): the same
        # body is a redelivery, another body another event
        def o(frm):
            return {"event": "call_inbound", "call_inbound": {
                "from_number": frm, "to_number": "+15550010000"}}
        n = count("events")
        first = post("/webhooks/retell/inbound", o("+15553330005")).json()
        self.assertEqual(count("events"), n + 1)
        self.assertEqual(post("/webhooks/retell/inbound",
                              o("+15553330005")).json(), first)
        self.assertEqual(count("events"), n + 1)
        post("/webhooks/retell/inbound", o("+15553330006"))
        self.assertEqual(count("events"), n + 2)

    def test_not_an_inbound_event(self):
        r = post("/webhooks/retell/inbound", {"event": "call_started"})
        self.assertEqual(r.status, 400)
        self.assertEqual(r.json(), {"error": "not a call_inbound event"})


class Campaign(unittest.TestCase):

    def test_campaign_to_completion(self):
        camp = stack.ctl_ok("campaign", "add", orgs["ai"],
                            "December recall").strip()
        csv = stack.path("contacts.csv")
        with open(csv, "w") as f:
            f.write('phone,name\n+15556660001,Ann One\n'
                    '(555) 666-0002,"Two, Bob"\n555.666.0003\n'
                    '+15556660004,"Dee ""D"" Four"\n\n')
        ids = stack.ctl_ok("campaign", "import", camp, csv).split()
        self.assertEqual(len(ids), 4)
        self.assertEqual(q1("SELECT string_agg(phone || '=' || "
                            "coalesce(name, '-'), ';' ORDER BY position) "
                            "FROM campaign_contacts WHERE campaign_id = "
                            "'%s'" % camp),
                         "+15556660001=Ann One;+15556660002=Two, Bob;"
                         "+15556660003=-;+15556660004=Dee \"D\" Four")

        def out(cid, to, contact=None, **kw):
            meta = {"campaign_id": camp}
            if contact:
                meta["contact_id"] = contact
            return dict(direction="outbound", frm="+15550010000", to=to,
                        metadata=meta, **kw)

        c1, c2, c3, c4 = call_id(), call_id(), call_id(), call_id()
        e1 = ended(c1, **out(c1, "+15556660001", ids[0]))
        e2 = ended(c2, reason="dial_no_answer", **out(c2, "+15556660002"))
        e3 = ended(c3, reason="dial_failed", **out(c3, "+15556660003",
                                                     ids[2]))
        e4 = ended(c4, **out(c4, "+15556660004", ids[3]))
        steps = [
            ("call_started", call(c1, **out(c1, "+15556660001", ids[0]))),
            ("call_ended", e1),
            ("call_analyzed", dict(e1, call_analysis=analysis(ok=True))),
            ("call_ended", e2),
            ("call_ended", e3),
            ("call_started", call(c4, **out(c4, "+15556660004", ids[3]))),
            ("call_analyzed", dict(e4, call_analysis=analysis(ok=False))),
            ("call_ended", e4),
        ]
        for ev, obj in steps:
            self.assertEqual(event(ev, obj).status, 204)
        mid = stack.ctl_json("campaign", "show", camp)
        # every event again, in reverse: nothing may count twice
        for ev, obj in reversed(steps):
            self.assertEqual(event(ev, obj).status, 204)
        shown = stack.ctl_json("campaign", "show", camp)
        self.assertEqual(shown, mid)
        # a contact only moves forward (pending, calling, an outcome):
        # another call to one with an outcome does not make it calling
        c5 = call_id()
        self.assertEqual(event("call_started", call(
            c5, **out(c5, "+15556660002", ids[1]))).status, 204)
        self.assertEqual(stack.ctl_json("campaign", "show", camp), mid)
        self.assertEqual(shown, {
            "id": camp, "name": "December recall",
            "organization_id": orgs["ai"], "total_contacts": 4,
            "processed": 4, "successful": 1,
            "contacts_by_status": {"pending": 0, "calling": 0,
                                   "completed": 2, "failed": 1,
                                   "no_answer": 1}})
        self.assertEqual(count("activity", "type = 'campaign_progress'"), 4)
        self.assertEqual(q1("SELECT campaign_id || '|' || contact_id FROM "
                            "calls WHERE call_id = '%s'" % c2),
                         "%s|%s" % (camp, ids[1]))

    def test_import_is_all_or_nothing(self):
        camp = stack.ctl_ok("campaign", "add", orgs["ai"], "Bad list").strip()
        csv = stack.path("bad.csv")
        with open(csv, "w") as f:
            f.write("+15556660101\nnot a number\n+15556660102\n")
        p = stack.ctl("campaign", "import", camp, csv)
        self.assertEqual(p.returncode, 65)
        self.assertIn("bad.csv:2: not a number is not a phone number",
                      p.stderr)
        with open(csv, "w") as f:
            f.write("+15556660101\n+1 555 666 0101\n")
        p = stack.ctl("campaign", "import", camp, csv)
        self.assertEqual(p.returncode, 65)
        self.assertIn("appears twice", p.stderr)
        self.assertEqual(count("campaign_contacts", "campaign_id = '%s'"
                               % camp), 0)
        p = stack.ctl("campaign", "show", "00000000-0000-0000-0000-000000000000")
        self.assertEqual(p.returncode, 65)


class Outage(unittest.TestCase):

    def test_inbound_answers_from_cache_while_database_away(self):
        stack.stop_workers()
        stack.start_workers()       # load the organizations
        stack.stop_postgres()
        try:
            r = post("/webhooks/retell/inbound", {
                "event": "call_inbound", "call_inbound": {
                    "from_number": "+15553339999",
                    "to_number": "+15550010000"}})
            self.assertEqual(r.status, 200)
            ci = r.json()["call_inbound"]
            self.assertEqual(ci["override_agent_id"], "agent_override_1")
            self.assertEqual(ci["dynamic_variables"]["business_hours"],
                             "true")
            # the cached number's organization, not the unsigned query's
            r = post("/webhooks/retell/inbound?organization_id=" +
                     orgs["night"], {"event": "call_inbound", "call_inbound": {
                         "from_number": "+15553339998",
                         "to_number": "+15550010000"}})
            self.assertEqual(r.json()["call_inbound"]["metadata"],
                             {"organization_id": orgs["ai"]})
            self.assertEqual(r.json()["call_inbound"]["override_agent_id"],
                             "agent_override_1")
            cid = call_id()
            self.assertEqual(event("call_ended", ended(cid)).status, 204)
            # an organization's own key, from the workers' cache: its
            # own number only
            own = call_id()
            self.assertEqual(post("/webhooks/retell", {
                "event": "call_ended", "call": ended(
                    own, to="+15550030000")}, key=ORG_KEY).status, 204)
            r = post("/webhooks/retell", {"event": "call_ended",
                                          "call": ended(call_id())},
                     key=ORG_KEY)
            self.assertEqual((r.status, r.json()),
                             (401, {"error": "bad X-Retell-Signature"}))
            # an outbound call is its calling number's (DESIGN §4)
            out = call_id()
            self.assertEqual(post("/webhooks/retell", {
                "event": "call_ended", "call": ended(
                    out, direction="outbound", frm="+15550030000",
                    to="+15557770004")}, key=ORG_KEY).status, 204)
            r = post("/webhooks/retell", {"event": "call_ended",
                                          "call": ended(
                                              call_id(), direction="outbound",
                                              frm="+15557770005",
                                              to="+15550030000")},
                     key=ORG_KEY)
            self.assertEqual(r.status, 401)
        finally:
            # idle workers drain by themselves: the drain below is
            # the one counted
            stack.stop_workers()
            stack.start_postgres()
        self.addCleanup(stack.start_workers)
        self.assertEqual(stack.ctl_json("spool", "drain")["replayed"], 5)
        self.assertEqual(callrow(cid, "status"), "completed")
        self.assertEqual(callrow(own, "organization_id"), orgs["key"])
        self.assertEqual(callrow(out, "organization_id"), orgs["key"])
        stack.assert_no_crash()

    def test_spooled_keeps_its_credentials_scope(self):
        # architecture.md §4: routing never crosses the credential that
        # verified the request, replayed from the spool too: the number
        # changed owner meanwhile, and the event does not follow it
        stack.stop_workers()
        stack.start_workers()
        stack.stop_postgres()
        own = call_id()
        try:
            self.assertEqual(post("/webhooks/retell", {
                "event": "call_ended", "call": ended(
                    own, to="+15550030000")}, key=ORG_KEY).status, 204)
        finally:
            stack.stop_workers()
            stack.start_postgres()
        self.addCleanup(stack.start_workers)
        stack.ctl_ok("number", "remove", "+15550030000")
        stack.ctl_ok("number", "add", orgs["ai"], "+15550030000")
        n = count("rejections", "cause = 'cross_tenant'")
        try:
            # telehookctl(8) spool drain: refused as it would have been
            # live, recorded as a rejection (cross_tenant), and removed
            self.assertEqual(stack.ctl_json("spool", "drain"), {
                "replayed": 0, "already_stored": 0, "quarantined": 0,
                "refused": 1, "left": 0})
            self.assertEqual(count("calls", "call_id = '%s'" % own), 0)
            self.assertEqual(count("rejections",
                                   "cause = 'cross_tenant'"), n + 1)
        finally:
            stack.ctl_ok("number", "remove", "+15550030000")
            stack.ctl_ok("number", "add", orgs["key"], "+15550030000")


load_tests = in_order(__name__)

if __name__ == "__main__":
    unittest.main(verbosity=2)
