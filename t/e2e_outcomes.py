"""
e2e_outcomes: answered and missed calls as architecture.md §7 defines them
(issue 14), on every path, through the dashboard API a clinic reads:

  * Twilio: a call forwarded with <Dial> that nobody picks up (with and
    without a voicemail after it), one the forward answers, one the
    caller hangs up on before anyone answers.  That the parent call
    "completed" says nothing about either.
  * VoIP.ms call records: ANSWERED, NO ANSWER, BUSY, FAILED.
  * Retell: a call that connected and one that never did.

Each missed call and voicemail is in the activity feed once and notifies
every user of the organization once (type missed_call / voicemail, the
voicemail with its recording and, once it arrives, its transcription);
redeliveries change nothing.
"""

import datetime
import json
import os
import sys
import time
import unittest
import urllib.parse
import uuid
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Stack, retell_sign, twilio_sign, in_order,  # noqa: E402
                     health, healthy, wait_for)

TW = "outcomes-twilio-token-51e9"
RT = "outcomes-retell-key-7d20"
VM = "outcomes-voipms-token-c3"
FORM = "application/x-www-form-urlencoded"
CALLER = "+15557650101"

stack = None
seq = [0]


def fresh_org():
    """An organization of its own, open 24/7, forwarding, two users."""
    seq[0] += 1
    n = seq[0]
    org = stack.ctl_ok("org", "add", "Outcome Clinic %d" % n).strip()
    number = "+1555766%04d" % n
    stack.ctl_ok("org", "set", org, "hours=24/7",
                 "forward_to=+15557669999")
    stack.ctl_ok("number", "add", org, number)
    for u in ("ann", "bob"):
        stack.ctl_ok("user", "add", org, "%s@clinic%d.example" % (u, n))
    token = stack.ctl_ok("token", "create", org).strip()
    return org, number, token


def api(org, token, what):
    r = stack.get("/api/v1/organizations/%s/%s" % (org, what),
                  {"Authorization": "Bearer " + token})
    assert r.status == 200, r
    return r.json()


def kpis(org, token):
    k = api(org, token, "dashboard")["kpis"]
    return k["answered_calls"], k["missed_calls"]


def activity(org, token):
    return [(a["type"], a["summary"]) for a in
            api(org, token, "activity?limit=100")["activity"]]


def notes(org, token, kind):
    return [n for n in api(org, token, "notifications")["notifications"]
            if n["type"] == kind]


def tw_post(path, params):
    items = list(params.items())
    sig = twilio_sign(TW, stack.public_url + path, items)
    r = stack.post(path, urllib.parse.urlencode(items), FORM,
                   {"X-Twilio-Signature": sig})
    assert r.status in (200, 204), r
    return r


def call(number, sid, status, **extra):
    p = {"CallSid": sid, "AccountSid": "AC" + "3" * 32, "From": CALLER,
         "To": number, "CallStatus": status, "Direction": "inbound",
         "ApiVersion": "2010-04-01"}
    p.update(extra)
    return p


def twilio_forward(number, dial_status, voicemail=False, hangup_first=False):
    """The Twilio sequence of one forwarded call; returns its CallSid."""
    sid = "CA" + uuid.uuid4().hex
    r = tw_post("/webhooks/twilio/voice/incoming", call(number, sid,
                                                        "ringing"))
    assert b"<Dial" in r.body, r.body
    if not hangup_first:
        r = tw_post("/webhooks/twilio/voice/gather?step=dial",
                    call(number, sid, "in-progress",
                         DialCallStatus=dial_status,
                         DialCallSid="CA" + uuid.uuid4().hex))
    if voicemail:
        assert b"<Record" in r.body, r.body
        tw_post("/webhooks/twilio/recording/status?kind=voicemail", {
            "AccountSid": "AC" + "3" * 32, "CallSid": sid,
            "RecordingSid": "RE" + uuid.uuid4().hex,
            "RecordingUrl": "https://api.twilio.com/rec/" + sid,
            "RecordingStatus": "completed", "RecordingDuration": "12"})
        tw_post("/webhooks/twilio/transcription", {
            "AccountSid": "AC" + "3" * 32, "CallSid": sid,
            "TranscriptionSid": "TR" + uuid.uuid4().hex,
            "TranscriptionStatus": "completed",
            "TranscriptionText": "Please call me back about my crown."})
    tw_post("/webhooks/twilio/voice/status",
            call(number, sid, "completed", CallDuration="40",
                 SequenceNumber="2", CallbackSource="call-progress-events"))
    return sid


def setUpModule():
    global stack
    stack = Stack(workers=2, extra_conf={
        "twilio": {"auth_token": TW}, "retell": {"api_key": RT},
        "voipms": {"url_token": VM, "timezone": "America/New_York"}}
    ).start()


def tearDownModule():
    if stack is not None:
        stack.stop()


class Twilio(unittest.TestCase):

    def test_forward_nobody_answers_then_voicemail(self):
        org, number, token = fresh_org()
        twilio_forward(number, "no-answer", voicemail=True)
        self.assertEqual(kpis(org, token), (0, 1))
        acts = activity(org, token)
        types = [t for t, _ in acts]
        self.assertEqual(types.count("call_missed"), 1, acts)
        self.assertEqual(types.count("voicemail"), 1, acts)
        self.assertNotIn(("call_ended", "Call completed"), acts)
        self.assertEqual(len(notes(org, token, "missed_call")), 2)
        vms = notes(org, token, "voicemail")
        self.assertEqual(len(vms), 2)
        for n in vms:
            self.assertEqual(n["data"]["from_number"], CALLER)
            self.assertTrue(n["data"]["recording_url"].startswith(
                "https://api.twilio.com/rec/"))
            self.assertEqual(n["data"]["transcription"],
                             "Please call me back about my crown.")

    def test_forward_nobody_answers_no_voicemail(self):
        org, number, token = fresh_org()
        for status in ("no-answer", "busy", "failed", "canceled"):
            twilio_forward(number, status)
        self.assertEqual(kpis(org, token), (0, 4))
        self.assertEqual([t for t, _ in activity(org, token)].count(
            "call_missed"), 4)
        self.assertEqual(len(notes(org, token, "missed_call")), 8)
        self.assertEqual(notes(org, token, "voicemail"), [])

    def test_each_dial_outcome_on_its_own(self):
        # telehook(8) "Answered and missed calls": each DialCallStatus
        # that did not connect is a missed call, and the activity line
        # says which
        for status in ("no-answer", "busy", "failed", "canceled"):
            with self.subTest(status=status):
                org, number, token = fresh_org()
                twilio_forward(number, status)
                self.assertEqual(kpis(org, token), (0, 1))
                self.assertEqual(
                    [a for a in activity(org, token)
                     if a[0] == "call_missed"],
                    [("call_missed", "Missed call from %s (%s)"
                      % (CALLER, status))])

    def test_an_sms_without_body(self):
        # an MMS may come with media only: no Body at all; it is stored
        # (no text) and gets no automatic reply
        org, number, token = fresh_org()
        sid = "SM" + uuid.uuid4().hex
        r = tw_post("/webhooks/twilio/sms/incoming", {
            "MessageSid": sid, "AccountSid": "AC" + "3" * 32,
            "From": CALLER, "To": number, "NumMedia": "1",
            "MediaUrl0": "https://api.twilio.com/m/0",
            "SmsStatus": "received", "ApiVersion": "2010-04-01"})
        self.assertNotIn(b"<Message", r.body)
        self.assertEqual(stack.psql(
            "SELECT coalesce(body, '-') || '|' || num_media || '|' || "
            "auto_reply FROM messages WHERE message_id = '%s'" % sid),
            "-|1|false")
        stack.assert_no_crash()

    def test_an_outbound_call_is_answered_when_it_lasted(self):
        # telehook(8) "Answered and missed calls": an outbound call
        # completed with a duration was answered; completed after 0
        # seconds, it was not (the status callback alone, its default)
        org, number, token = fresh_org()
        for duration, answered in (("0", 0), ("45", 1), ("1", 2),
                                   ("0", 2)):
            tw_post("/webhooks/twilio/voice/status", call(
                number, "CA" + uuid.uuid4().hex, "completed", From=number,
                To=CALLER, Direction="outbound-api", CallDuration=duration))
            self.assertEqual(kpis(org, token), (answered, 0), duration)

    def test_an_outbound_call_picked_up_is_started_once(self):
        # DESIGN §7 activity: one entry per business event, a call
        # started among them: an outbound call picked up (in progress),
        # then completed, and both redelivered, start once
        org, number, token = fresh_org()
        sid = "CA" + uuid.uuid4().hex
        for _ in range(2):
            for status, extra in (("in-progress", {}),
                                  ("completed", {"CallDuration": "30"})):
                tw_post("/webhooks/twilio/voice/status", call(
                    number, sid, status, From=number, To=CALLER,
                    Direction="outbound-api", **extra))
        self.assertEqual([a for a in activity(org, token)
                          if a[0] == "call_started"],
                         [("call_started", "Call started")])

    def test_incoming_without_status_is_ringing(self):
        # telehook(8): voice/incoming without CallStatus is ringing;
        # the status a request gives is kept
        org, number, token = fresh_org()
        bare, given = "CA" + uuid.uuid4().hex, "CA" + uuid.uuid4().hex
        p = call(number, bare, "ringing")
        del p["CallStatus"]
        tw_post("/webhooks/twilio/voice/incoming", p)
        tw_post("/webhooks/twilio/voice/incoming",
                call(number, given, "in-progress"))
        self.assertEqual(stack.psql(
            "SELECT string_agg(status, ',' ORDER BY call_id = '%s') "
            "FROM calls WHERE call_id IN ('%s', '%s')"
            % (given, bare, given)), "ringing,in-progress")

    def test_forward_answered(self):
        org, number, token = fresh_org()
        twilio_forward(number, "completed")
        twilio_forward(number, "answered")
        self.assertEqual(kpis(org, token), (2, 0))
        self.assertEqual(notes(org, token, "missed_call"), [])
        self.assertEqual([t for t, _ in activity(org, token)].count(
            "call_ended"), 2)

    def test_caller_hangs_up_before_anyone_answers(self):
        org, number, token = fresh_org()
        twilio_forward(number, None, hangup_first=True)
        self.assertEqual(kpis(org, token), (0, 1))

    def test_redelivery_changes_nothing(self):
        org, number, token = fresh_org()
        sid = twilio_forward(number, "no-answer", voicemail=True)
        before = (kpis(org, token), activity(org, token),
                  len(notes(org, token, "missed_call")),
                  len(notes(org, token, "voicemail")))
        tw_post("/webhooks/twilio/voice/gather?step=dial",
                call(number, sid, "in-progress", DialCallStatus="no-answer"))
        tw_post("/webhooks/twilio/voice/status",
                call(number, sid, "completed", CallDuration="40",
                     SequenceNumber="2",
                     CallbackSource="call-progress-events"))
        after = (kpis(org, token), activity(org, token),
                 len(notes(org, token, "missed_call")),
                 len(notes(org, token, "voicemail")))
        self.assertEqual(after, before)


def vm_cdr(number, disposition):
    fields = {"callid": str(uuid.uuid4().int % 10**12),
              "callerid": CALLER[2:], "destination": number[2:],
              "disposition": disposition, "seconds": "33",
              "date": "2026-11-20 10:00:00", "total": "0.0150"}
    r = stack.post("/webhooks/voipms/call/cdr?token=" + VM,
                   urllib.parse.urlencode(fields), FORM)
    assert (r.status, r.body) == (200, b"ok"), r


class VoipMs(unittest.TestCase):

    def test_dispositions(self):
        org, number, token = fresh_org()
        month = "2026-11"
        for d in ("ANSWERED", "NO ANSWER", "BUSY", "FAILED"):
            vm_cdr(number, d)
        k = api(org, token, "dashboard?month=" + month)["kpis"]
        self.assertEqual((k["answered_calls"], k["missed_calls"]), (1, 3))
        self.assertEqual(len(notes(org, token, "missed_call")), 6)


def rt_post(obj):
    body = json.dumps(obj)
    r = stack.post("/webhooks/retell", body, "application/json",
                   {"X-Retell-Signature": retell_sign(RT, body)})
    assert r.status == 204, r


def rt_call(number, reason, status="ended"):
    now = int(time.time() * 1000)
    return {"call_type": "phone_call", "call_id": "call_" + uuid.uuid4().hex,
            "agent_id": "agent_o", "call_status": status,
            "direction": "inbound", "from_number": CALLER,
            "to_number": number, "start_timestamp": now - 30000,
            "end_timestamp": now, "disconnection_reason": reason,
            "duration_ms": 30000 if reason == "user_hangup" else 0}


class Retell(unittest.TestCase):

    def test_connected_and_not(self):
        org, number, token = fresh_org()
        rt_post({"event": "call_ended",
                 "call": rt_call(number, "user_hangup")})
        for reason in ("dial_no_answer", "dial_busy", "dial_failed"):
            rt_post({"event": "call_ended", "call": rt_call(number, reason)})
        self.assertEqual(kpis(org, token), (1, 3))
        self.assertEqual(len(notes(org, token, "missed_call")), 6)

    def test_a_call_is_answered_once_it_is_ongoing(self):
        # DESIGN §7: answered means an AI agent took the call -- a
        # Retell call that connected; call_started of an ongoing call
        # counts it, before the call has ended
        org, number, token = fresh_org()
        c = rt_call(number, None, "ongoing")
        for k in ("end_timestamp", "disconnection_reason", "duration_ms"):
            del c[k]
        rt_post({"event": "call_started", "call": c})
        self.assertEqual(stack.psql(
            "SELECT status || '|' || outcome FROM calls WHERE call_id = "
            "'%s'" % c["call_id"]), "in-progress|answered")
        self.assertEqual(kpis(org, token), (1, 0))

    def test_the_call_status_given_wins(self):
        # telehook(8): a call's status comes from call_status; only a
        # call_ended or call_analyzed without one is an ended call
        org, number, token = fresh_org()
        for status, reason in (("error", "error_retell"),
                               ("not_connected", "user_hangup")):
            c = rt_call(number, reason, status)
            rt_post({"event": "call_ended", "call": c})
            self.assertEqual(stack.psql(
                "SELECT status FROM calls WHERE call_id = '%s'"
                % c["call_id"]), "failed", status)
        c = rt_call(number, "user_hangup")
        del c["call_status"]
        rt_post({"event": "call_analyzed", "call": c})
        self.assertEqual(stack.psql(
            "SELECT status FROM calls WHERE call_id = '%s'" % c["call_id"]),
            "completed")


class Seed000(unittest.TestCase):

    def test_flat_retell_post_is_an_ended_call(self):
        # seed 000's senders: the call's fields flat, organization_id in
        # the body, no call_status, call_analysis.summary
        org, number, token = fresh_org()
        now = int(time.time() * 1000)
        rt_post({"organization_id": org, "call_id": "call_" +
                 uuid.uuid4().hex, "start_timestamp": now - 90000,
                 "end_timestamp": now, "transcript": "Agent: Hi",
                 "recording_url": "https://retell.example/r.wav",
                 "call_analysis": {"summary": "Booked a cleaning."}})
        self.assertEqual(kpis(org, token), (1, 0))
        self.assertIn(("call_ended", "Booked a cleaning."),
                      activity(org, token))


def sms(number, body, sid=None):
    p = {"MessageSid": sid or "SM" + uuid.uuid4().hex,
         "AccountSid": "AC" + "3" * 32,
         "From": CALLER, "To": number, "Body": body, "NumMedia": "0",
         "SmsStatus": "received", "ApiVersion": "2010-04-01"}
    return tw_post("/webhooks/twilio/sms/incoming", p)


class SmsSent(unittest.TestCase):

    def test_sms_sent_counts_what_went_out(self):
        # telehook.8 Dashboard: sms_sent counts the outbound messages sent
        # or delivered, not those failed, undelivered or canceled, nor
        # those not yet sent
        org, number, token = fresh_org()
        for i, status in enumerate(("queued", "sent", "delivered", "read",
                                    "failed", "undelivered", "canceled")):
            tw_post("/webhooks/twilio/sms/status", {
                "MessageSid": "SM" + uuid.uuid4().hex,
                "AccountSid": "AC" + "3" * 32, "From": number,
                "To": "+1555763%04d" % i, "MessageStatus": status})
        self.assertEqual(stack.psql(
            "SELECT count(*) FROM messages WHERE organization_id = '%s' AND "
            "direction = 'outbound'" % org), "7")
        k = api(org, token, "dashboard")["kpis"]
        self.assertEqual((k["sms_sent"], k["sms_follow_ups"]), (3, 0))


class UrgentSms(unittest.TestCase):

    def test_urgent_keywords_notify_the_staff(self):
        org, number, token = fresh_org()
        sms(number, "My tooth is bleeding since this morning")
        sms(number, "Is the painting in the lobby new?")    # not "pain"
        r = stack.request("GET", "/webhooks/voipms/sms/incoming?token=%s&"
                          "to=%s&from=5145550123&message=%s&id=%s" % (
                              VM, number[2:], urllib.parse.quote(
                                  "URGENT swelling"), uuid.uuid4().hex[:12]))
        self.assertEqual((r.status, r.body), (200, b"ok"))
        urgent = notes(org, token, "urgent_sms")
        self.assertEqual(len(urgent), 4, urgent)
        self.assertEqual(sorted({n["data"]["body"] for n in urgent}), [
            "My tooth is bleeding since this morning", "URGENT swelling"])


def twiml(r):
    root = ET.fromstring(r.body)
    assert root.tag == "Response", r.body
    return root


def gathers_have_fallbacks(root):
    """Every <Gather> is followed by something to do on no input."""
    kids = list(root)
    for i, el in enumerate(kids):
        if el.tag == "Gather" and i == len(kids) - 1:
            return False
    return True


def dials(root):
    return [(n.tag, n.text) for d in root.iter("Dial") for n in d]


class AfterHours(unittest.TestCase):

    def org(self, *settings):
        org, number, token = fresh_org()
        stack.ctl_ok("org", "set", org, "hours=sun closed", *settings)
        stack.ctl_ok("reply", "add", org, "--channel", "voice",
                     "--keywords", "parking", "--text", "Parking is behind.")
        return org, number

    def ask(self, number, sid, said, turn=1):
        return twiml(tw_post(
            "/webhooks/twilio/voice/gather?step=ask&turn=%d" % turn,
            call(number, sid, "in-progress", SpeechResult=said)))

    def test_local_time_in_sql(self):
        # The SQL path's clock (th_org, at telehook.now as a drain sets
        # it), against the IANA rules; t/check_util.c holds the cache's
        # clock to the same instants.
        org = fresh_org()[0]
        cases = [
            ("America/New_York", "2026-03-08 06:59:00+00", "0|119"),
            ("America/New_York", "2026-03-08 07:00:00+00", "0|180"),
            ("America/New_York", "2026-11-01 05:59:00+00", "0|119"),
            ("America/New_York", "2026-11-01 06:00:00+00", "0|60"),
            ("America/Chicago", "2026-11-28 05:30:00+00", "5|1410"),
            ("America/Chicago", "2026-11-28 08:00:00+00", "6|120"),
            ("Asia/Kolkata", "2026-11-29 20:00:00+00", "1|90"),
        ]
        for tz, now, want in cases:
            stack.ctl_ok("org", "set", org, "timezone=" + tz)
            got = stack.psql("SET telehook.now = '%s'; SELECT dow || '|' "
                             "|| minute FROM th_org('%s')" % (now, org))
            self.assertEqual(got.splitlines()[-1], want, (tz, now))

    def test_unmatched_question_never_dials_the_closed_office(self):
        org, number = self.org("after_hours=agent")
        sid = "CA" + uuid.uuid4().hex
        root = twiml(tw_post("/webhooks/twilio/voice/incoming",
                             call(number, sid, "ringing")))
        self.assertEqual([e.tag for e in root].count("Gather"), 1)
        self.assertTrue(gathers_have_fallbacks(root), ET.tostring(root))
        self.assertEqual(dials(root), [])
        root = self.ask(number, sid, "do you do teeth whitening")
        self.assertEqual(dials(root), [], ET.tostring(root))
        self.assertIn("Record", [e.tag for e in root])
        # a matched question goes on, and its next turn has a fallback
        root = self.ask(number, sid, "where is parking")
        self.assertIn("Gather", [e.tag for e in root])
        self.assertTrue(gathers_have_fallbacks(root), ET.tostring(root))
        self.assertEqual(dials(root), [])

    def test_agent_sip_takes_the_after_hours_call(self):
        org, number = self.org("after_hours=agent",
                               "agent_sip=sip:agent@retell.example")
        sid = "CA" + uuid.uuid4().hex
        root = twiml(tw_post("/webhooks/twilio/voice/incoming",
                             call(number, sid, "ringing")))
        self.assertEqual(dials(root), [("Sip", "sip:agent@retell.example")])
        # the agent picked up: answered
        tw_post("/webhooks/twilio/voice/gather?step=dial",
                call(number, sid, "in-progress", DialCallStatus="completed"))
        token = stack.ctl_ok("token", "create", org).strip()
        self.assertEqual(kpis(org, token), (1, 0))

    def test_open_flow_gather_has_a_fallback(self):
        org, number, token = fresh_org()
        stack.ctl_ok("org", "set", org, "forward_to=")
        stack.ctl_ok("reply", "add", org, "--channel", "voice",
                     "--keywords", "parking", "--text", "Parking is behind.")
        root = twiml(tw_post("/webhooks/twilio/voice/incoming",
                             call(number, "CA" + uuid.uuid4().hex,
                                  "ringing")))
        self.assertIn("Gather", [e.tag for e in root])
        self.assertTrue(gathers_have_fallbacks(root), ET.tostring(root))

    def test_a_closure_day_is_after_hours(self):
        org, number, token = fresh_org()
        stack.ctl_ok("org", "set", org, "timezone=UTC")
        today = datetime.datetime.now(datetime.timezone.utc).date()
        sid = "CA" + uuid.uuid4().hex
        root = twiml(tw_post("/webhooks/twilio/voice/incoming",
                             call(number, sid, "ringing")))
        self.assertEqual(dials(root), [("Number", "+15557669999")])
        cid = stack.ctl_ok(
            "closure", "add", org, str(today - datetime.timedelta(days=1)),
            "--until", str(today + datetime.timedelta(days=1)),
            "--note", "Thanksgiving").strip()
        self.assertIn("Thanksgiving", stack.ctl_ok("closure", "list", org))
        root = twiml(tw_post("/webhooks/twilio/voice/incoming",
                             call(number, "CA" + uuid.uuid4().hex,
                                  "ringing")))
        self.assertEqual(dials(root), [], ET.tostring(root))
        self.assertIn("Record", [e.tag for e in root])
        stack.ctl_ok("closure", "remove", cid)
        root = twiml(tw_post("/webhooks/twilio/voice/incoming",
                             call(number, "CA" + uuid.uuid4().hex,
                                  "ringing")))
        self.assertEqual(dials(root), [("Number", "+15557669999")])

    def test_a_one_day_closure_in_the_organizations_zone(self):
        # a closure's days are the organization's calendar days: a
        # one-day closure on its today closes, one that ended its
        # yesterday or starts its tomorrow does not, in zones whose date
        # is ahead of UTC's and behind it most of the day
        for tz in ("Pacific/Kiritimati", "Pacific/Pago_Pago"):
            org, number, token = fresh_org()
            stack.ctl_ok("org", "set", org, "timezone=" + tz)
            today = datetime.date.fromisoformat(stack.psql(
                "SELECT (now() AT TIME ZONE '%s')::date" % tz))

            def forwards():
                return dials(twiml(tw_post(
                    "/webhooks/twilio/voice/incoming",
                    call(number, "CA" + uuid.uuid4().hex, "ringing")))) != []
            for first, last, closed in (
                    (today, today, True),
                    (today - datetime.timedelta(days=1),
                     today - datetime.timedelta(days=1), False),
                    (today + datetime.timedelta(days=1),
                     today + datetime.timedelta(days=1), False),
                    (today - datetime.timedelta(days=3), today, True),
                    (today, today + datetime.timedelta(days=3), True)):
                cid = stack.ctl_ok("closure", "add", org, str(first),
                                   "--until", str(last)).strip()
                self.assertEqual(forwards(), not closed, (tz, first, last))
                stack.ctl_ok("closure", "remove", cid)
            self.assertTrue(forwards())

    def test_closure_input_is_checked(self):
        org, _, _ = fresh_org()
        for bad in (("2026-02-30",), ("2026-13-01",), ("tomorrow",),
                    ("2026-12-24", "--until", "2026-12-23")):
            p = stack.ctl("closure", "add", org, *bad)
            self.assertEqual(p.returncode, 65, (bad, p.stderr))
        self.assertEqual(stack.ctl("closure", "remove", "999999").returncode,
                         65)
        # February 29 is a date in leap years only: every fourth year,
        # but not in a century unless it divides by 400 (Gregorian)
        for day, ok in (("2028-02-29", True), ("2027-02-29", False),
                        ("2000-02-29", True), ("2100-02-29", False),
                        ("2400-02-29", True)):
            p = stack.ctl("closure", "add", org, day)
            self.assertEqual(p.returncode, 0 if ok else 65, (day, p.stderr))


def events_failed():
    return stack.ctl_json("events", "list", "--failed")["events"]


def metric(name):
    for line in stack.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return int(line.split()[1])
    raise AssertionError(name + " not in /metrics")


class BadContent(unittest.TestCase):
    """architecture.md §6: no verified request gets a 5xx and vanishes."""

    def test_latin1_huge_numbers_are_stored_by_the_rules(self):
        org, number, token = fresh_org()
        # VoIP.ms writes ISO 8859-1: "Caf\xe9" is "Cafe" with an acute e
        mid = uuid.uuid4().hex[:10]
        r = stack.request("GET", "/webhooks/voipms/sms/incoming?token=%s&"
                          "to=%s&from=5145550124&message=Caf%%E9+cr%%E8me&"
                          "id=%s" % (VM, number[2:], mid))
        self.assertEqual((r.status, r.body), (200, b"ok"))
        self.assertEqual(stack.psql("SELECT body FROM messages WHERE "
                                    "message_id = '%s'" % mid),
                         "Caf\u00e9 cr\u00e8me")
        # the event's payload is decoded the same way, not with U+FFFD
        self.assertEqual(stack.psql("SELECT payload->>'message' FROM events "
                                    "WHERE payload->>'id' = '%s'" % mid),
                         "Caf\u00e9 cr\u00e8me")
        # Twilio: a NumMedia no column holds is NULL, kept in the payload
        p = {"MessageSid": "SM" + uuid.uuid4().hex, "AccountSid": "AC" +
             "3" * 32, "From": CALLER, "To": number, "Body": "hi",
             "NumMedia": "99999999999", "SmsStatus": "received"}
        tw_post("/webhooks/twilio/sms/incoming", p)
        self.assertEqual(stack.psql(
            "SELECT m.num_media || '|' || (e.payload->>'NumMedia') FROM "
            "messages m, events e WHERE m.message_id = '%s' AND "
            "e.provider_key = '%s:received'" % (p["MessageSid"],
                                                p["MessageSid"])),
            "0|99999999999")
        # VoIP.ms: a 20-digit seconds
        cid = str(uuid.uuid4().int % 10**12)
        r = stack.post("/webhooks/voipms/call/cdr?token=" + VM,
                       urllib.parse.urlencode({
                           "callid": cid, "callerid": CALLER[2:],
                           "destination": number[2:],
                           "disposition": "ANSWERED",
                           "seconds": "9" * 20,
                           "date": "2026-11-20 10:00:00"}), FORM)
        self.assertEqual((r.status, r.body), (200, b"ok"))
        self.assertEqual(stack.psql("SELECT coalesce(duration_s::text, "
                                    "'null') FROM calls WHERE call_id = "
                                    "'%s'" % cid), "null")
        # Retell: duration_ms of 2^53 - 1
        c = rt_call(number, "user_hangup")
        c["duration_ms"] = 2 ** 53 - 1
        rt_post({"event": "call_ended", "call": c})
        self.assertEqual(stack.psql("SELECT status || '|' || coalesce("
                                    "duration_s::text, 'null') FROM calls "
                                    "WHERE call_id = '%s'" % c["call_id"]),
                         "completed|null")
        self.assertEqual(events_failed(), [])

    def test_bytes_that_are_not_utf8_in_json_become_u_fffd(self):
        # telehook.8 Failed events: text that is not UTF-8 is decoded
        # first, any provider's but VoIP.ms's with each invalid byte
        # replaced by U+FFFD -- in a JSON body too, however deep
        org, number, token = fresh_org()
        c = rt_call(number, "user_hangup")
        c["transcript"] = "Agent: caf@@"
        c["call_analysis"] = {"call_summary": "sum@@mary"}
        raw = json.dumps({"event": "call_ended", "call": c}).encode()
        raw = raw.replace(b"@@", b"\xff")
        r = stack.post("/webhooks/retell", raw, "application/json",
                       {"X-Retell-Signature": retell_sign(RT, raw)})
        self.assertEqual(r.status, 204, r)
        self.assertEqual(stack.psql(
            "SELECT transcript || '|' || summary FROM calls WHERE call_id "
            "= '%s'" % c["call_id"]), "Agent: caf\ufffd|sum\ufffdmary")
        self.assertEqual([f for f in events_failed()
                          if c["call_id"] in json.dumps(f)], [])

    def test_a_query_that_is_not_utf8_is_decoded_too(self):
        # telehook.8 Failed events: text that is not UTF-8 is decoded
        # first -- the query string's too.  An organization_id that names
        # no organization leaves the event unrouted (DESIGN §4), not kept
        # as failed.
        sid = "SM" + uuid.uuid4().hex
        p = [("MessageSid", sid), ("AccountSid", "AC" + "3" * 32),
             ("From", CALLER), ("To", "+15557689999"), ("Body", "hi"),
             ("SmsStatus", "received")]
        path = "/webhooks/twilio/sms/incoming?organization_id=ab%FFcd"
        r = stack.post(path, urllib.parse.urlencode(p), FORM, {
            "X-Twilio-Signature": twilio_sign(TW, stack.public_url + path,
                                              p)})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(stack.psql(
            "SELECT coalesce(organization_id::text, 'unrouted') FROM "
            "events WHERE provider_key = '%s:received'" % sid), "unrouted")
        self.assertEqual([f for f in events_failed() if sid in
                          json.dumps(f)], [])

    def test_refused_content_is_kept_failed_and_replayed_once(self):
        org, number, token = fresh_org()
        before = metric("telehook_events_failed_total")
        # A rule of the schema refuses the content (as a data exception
        # would): the requests are answered 2xx and kept failed.
        stack.psql("ALTER TABLE messages ADD CONSTRAINT test_refuse CHECK "
                   "(body <> 'refused text')")
        stack.psql("ALTER TABLE calls ADD CONSTRAINT test_refuse CHECK "
                   "(agent_id <> 'agent_refused')")
        sid = "SM" + uuid.uuid4().hex
        try:
            sms(number, "refused text", sid)
            c = rt_call(number, "dial_no_answer")
            c["agent_id"] = "agent_refused"
            rt_post({"event": "call_ended", "call": c})
            # a redelivery is kept once
            rt_post({"event": "call_ended", "call": c})
            failed = [f for f in events_failed()
                      if "test_refuse" in f["failure"]]
            self.assertEqual(len(failed), 2, failed)
            self.assertEqual(sorted(f["route"] for f in failed),
                             ["retell", "twilio_sms_incoming"])
            for f in failed:
                self.assertIn("test_refuse", f["failure"])
            self.assertEqual(kpis(org, token), (0, 0))
            # counted per request refused: the redelivery too
            self.assertEqual(metric("telehook_events_failed_total"),
                             before + 3)
        finally:
            stack.psql("ALTER TABLE messages DROP CONSTRAINT test_refuse")
            stack.psql("ALTER TABLE calls DROP CONSTRAINT test_refuse")
        out = stack.ctl_json("events", "replay", "--failed")
        self.assertEqual(len(out["derived"]), 2, out)
        self.assertEqual(out["failed"], [])
        self.assertEqual(events_failed(), [])
        after = (kpis(org, token), activity(org, token),
                 len(notes(org, token, "missed_call")))
        self.assertEqual(after[0], (0, 1))
        self.assertEqual([t for t, _ in after[1]].count("sms_reply"), 1)
        self.assertEqual(after[2], 2)
        # a redelivery of the replayed SMS is answered as one (TwiML, no
        # reply to this text) and changes nothing
        r = sms(number, "refused text", sid)
        root = twiml(r)
        self.assertEqual(len(root), 0, r.body)
        self.assertEqual(stack.psql("SELECT count(*) FROM messages WHERE "
                                    "message_id = '%s'" % sid), "1")
        # replaying what is derived already changes nothing
        for ev in out["derived"]:
            stack.ctl_json("events", "replay", ev)
        since = stack.ctl_json("events", "replay", "--since", "2000-01-01")
        self.assertEqual(since["failed"], [])
        self.assertEqual((kpis(org, token), activity(org, token),
                          len(notes(org, token, "missed_call"))), after)

    def test_a_refused_status_callback_is_kept_failed(self):
        # telehook.8 Failed events: a status callback of a message we
        # sent, whose content PostgreSQL refuses, is answered and kept as
        # a failed event -- not answered with nothing of it kept
        org, number, token = fresh_org()
        to = "+1555764%04d" % (seq[0] % 10000)
        sid = "SM" + uuid.uuid4().hex
        stack.psql("ALTER TABLE messages ADD CONSTRAINT test_refuse3 CHECK "
                   "(to_number <> '%s')" % to)
        try:
            r = tw_post("/webhooks/twilio/sms/status", {
                "MessageSid": sid, "AccountSid": "AC" + "3" * 32,
                "From": number, "To": to, "MessageStatus": "delivered"})
            self.assertEqual(r.status, 204, r)
            failed = [f for f in events_failed()
                      if "test_refuse3" in f["failure"]]
            self.assertEqual([f["route"] for f in failed],
                             ["twilio_sms_status"], failed)
        finally:
            stack.psql("ALTER TABLE messages DROP CONSTRAINT test_refuse3")
        out = stack.ctl_json("events", "replay", "--failed")
        self.assertEqual(out["failed"], [])
        self.assertEqual(stack.psql("SELECT status FROM messages WHERE "
                                    "message_id = '%s'" % sid), "delivered")

    def test_refused_content_from_the_spool_is_kept_failed(self):
        # The same refusal met by a spool drain: the file is not
        # quarantined (it reads fine) but kept as a failed event, once.
        org, number, token = fresh_org()
        sid = "SM" + uuid.uuid4().hex
        stack.stop_postgres()
        try:
            self.assertEqual(sms(number, "refused from the spool",
                                 sid).status, 200)
        finally:
            # no worker drains it before the refusal is in place
            stack.stop_workers()
            stack.start_postgres()
        stack.psql("ALTER TABLE messages ADD CONSTRAINT test_refuse2 CHECK "
                   "(body <> 'refused from the spool')")
        try:
            out = stack.ctl_json("spool", "drain")
            self.assertEqual((out["refused"], out["quarantined"],
                              out["left"]), (1, 0, 0), out)
            failed = [f for f in events_failed()
                      if "test_refuse2" in f["failure"]]
            self.assertEqual([f["route"] for f in failed],
                             ["twilio_sms_incoming"])
            self.assertEqual(stack.psql("SELECT count(*) FROM messages "
                                        "WHERE message_id = '%s'" % sid),
                             "0")
            # replayed before the cause is fixed: it fails again, says
            # why, and stays failed (exit 65)
            p = stack.ctl("events", "replay", "--failed")
            self.assertEqual(p.returncode, 65, p.stderr)
            self.assertRegex(p.stdout, r"(?m)^event \d+: failed: .*"
                             r"test_refuse2")
            self.assertRegex(p.stdout, r"(?m)^derived 0, already stored 0, "
                             r"failed [1-9]\d*$")
        finally:
            stack.psql("ALTER TABLE messages DROP CONSTRAINT test_refuse2")
            stack.start_workers()
            # the breaker the outage opened outlives the pool (its state
            # is shared memory): what follows waits until it closes, or
            # its webhooks would be spooled, not stored
            wait_for("the breaker closed", lambda: health(
                stack.get("/healthz")) == healthy())
        stack.ctl_json("events", "replay", "--failed")
        self.assertEqual(stack.psql("SELECT count(*) FROM messages WHERE "
                                    "message_id = '%s'" % sid), "1")

    def test_assign_derives_what_routing_would_have(self):
        org, number, token = fresh_org()
        c = rt_call("+15557689999", "dial_no_answer")    # nobody's number
        rt_post({"event": "call_ended", "call": c})
        ev = stack.psql("SELECT id FROM events WHERE provider_key = "
                        "'call_ended:%s'" % c["call_id"])
        self.assertEqual(stack.psql("SELECT organization_id IS NULL FROM "
                                    "events WHERE id = %s" % ev), "t")
        out = stack.ctl_json("events", "assign", ev, org)
        self.assertTrue(out["derived"], out)
        self.assertEqual(kpis(org, token), (0, 1))
        self.assertEqual(len(notes(org, token, "missed_call")), 2)
        self.assertEqual([t for t, _ in activity(org, token)].count(
            "call_missed"), 1)
        stack.ctl_json("events", "replay", ev)
        self.assertEqual(len(notes(org, token, "missed_call")), 2)


class Money(unittest.TestCase):

    def cdr(self, number, date, seconds, total):
        """An answered VoIP.ms call record to number, accepted; its id."""
        cid = str(uuid.uuid4().int % 10**12)
        r = stack.post("/webhooks/voipms/call/cdr?token=" + VM,
                       urllib.parse.urlencode({
                           "callid": cid, "callerid": CALLER[2:],
                           "destination": number[2:],
                           "disposition": "ANSWERED", "seconds": seconds,
                           "date": date, "total": total}), FORM)
        self.assertEqual((r.status, r.body), (200, b"ok"))
        return cid

    def test_voipms_total_and_date(self):
        org, number, token = fresh_org()
        cid = self.cdr(number, "2026-11-20 10:00:00", "60", "0.0150")
        c = api(org, token, "calls/" + cid)
        self.assertEqual((c["cost"], c["cost_currency"], c["cost_cents"]),
                         ("0.0150", "USD", 2))
        # 10:00 on the account's clock (America/New_York, EST in November)
        self.assertEqual(c["started_at"], "2026-11-20T15:00:00Z")

    def test_voipms_dates_each_on_the_accounts_clock(self):
        # [voipms] timezone, America/New_York: UTC-4 from the second
        # Sunday of March (2026-03-08, 02:00 skipped) to the first of
        # November, UTC-5 outside; the year's last second is the next
        # year's in UTC.  Five CDRs to two workers: one reads at least
        # three dates, each from the clock the one before left (and the
        # sanitize build sees what each leaves behind).
        org, number, token = fresh_org()
        for date, want in (("2026-07-04 12:00:00", "2026-07-04T16:00:00Z"),
                           ("2026-03-08 03:30:00", "2026-03-08T07:30:00Z"),
                           ("2026-03-08 01:59:59", "2026-03-08T06:59:59Z"),
                           ("2026-12-31 23:59:59", "2027-01-01T04:59:59Z"),
                           ("2026-11-01 02:00:00", "2026-11-01T07:00:00Z")):
            cid = self.cdr(number, date, "5", "0.0010")
            self.assertEqual(api(org, token, "calls/" + cid)["started_at"],
                             want, date)


load_tests = in_order(__name__)

if __name__ == "__main__":
    unittest.main(verbosity=2)
