"""
e2e_twilio: every Twilio route end to end, with requests signed by an
independent implementation of the SDKs' algorithm (below, after
twilio-python's RequestValidator.compute_signature), through nginx and
the worker pool into PostgreSQL.
"""

import hashlib
import json
import time
import os
import sys
import unittest
import urllib.parse
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stack, twilio_sign, in_order  # noqa: E402

TOKEN = "test-auth-token-0123456789abcdef"
PREVIOUS = "previous-auth-token-fedcba9876543210"
SHARED = "shared-secret-for-compat-senders"
ACCOUNT = "AC" + "7" * 32
ACCOUNT_TOKEN = "per-account-token-for-acme"
FORM = "application/x-www-form-urlencoded"

stack = None
orgs = {}
seq = [0]


# X-Twilio-Signature, as the SDKs sign (t/harness.py)
sign = twilio_sign


def sid(prefix):
    seq[0] += 1
    return "%s%032x" % (prefix, seq[0] + os.getpid() * 1000)


def post(path, params, token=TOKEN, url=None, headers=None):
    """POST a form to path, signed as Twilio signs it for url."""
    if isinstance(params, dict):
        params = list(params.items())
    h = {"X-Twilio-Signature": sign(token, url or stack.public_url + path,
                                    params)}
    h.update(headers or {})
    return stack.post(path, urllib.parse.urlencode(params), FORM, h)


def q1(sql):
    return stack.psql(sql)


def count(table, where="true"):
    return int(q1("SELECT count(*) FROM %s WHERE %s" % (table, where)))


def stored(route, key):
    """How many events of route have key in their provider key."""
    return count("events", "route = '%s' AND provider_key LIKE '%%%s%%'"
                 % (route, key))


def twiml(r):
    """The TwiML of r, checked to be a well-formed <Response>."""
    assert r.status == 200, r
    assert r.headers["content-type"].startswith("text/xml"), r.headers
    root = ET.fromstring(r.body)
    assert root.tag == "Response", r.body
    return root


def setUpModule():
    global stack
    stack = Stack(workers=2, secret_key=True, extra_conf={"twilio": {
        "auth_token": TOKEN, "auth_token_previous": PREVIOUS,
        "webhook_secret": SHARED}}).start()
    o = stack.ctl_ok("org", "add", "Open Clinic", "--timezone",
                     "America/New_York").strip()
    stack.ctl_ok("org", "set", o, "hours=24/7", "forward_to=+15550009999",
                 "greeting=Welcome to Open Clinic & Co.")
    stack.ctl_ok("number", "add", o, "+15550001000", "--provider", "twilio")
    stack.ctl_ok("user", "add", o, "ann@open.example")
    stack.ctl_ok("user", "add", o, "bob@open.example")
    orgs["open"] = o
    c = stack.ctl_ok("org", "add", "Closed Clinic").strip()
    stack.ctl_ok("org", "set", c, "hours=sun closed", "after_hours=voicemail")
    stack.ctl_ok("number", "add", c, "+15550002000")
    orgs["closed"] = c
    a = stack.ctl_ok("org", "add", "Agent Clinic").strip()
    stack.ctl_ok("org", "set", a, "hours=sun closed", "after_hours=agent")
    stack.ctl_ok("number", "add", a, "+15550003000")
    stack.ctl_ok("reply", "add", a, "--channel", "voice", "--keywords",
                 "parking, park", "--text", "Parking is behind the building.")
    orgs["agent"] = a
    k = stack.ctl_ok("org", "add", "Account Clinic").strip()
    stack.ctl_ok("number", "add", k, "+15550004000")
    stack.ctl_ok("secret", "set", k, "twilio", "--account", ACCOUNT,
                 input=ACCOUNT_TOKEN + "\n")
    orgs["account"] = k


def tearDownModule():
    if stack is not None:
        stack.stop()


def call_params(to="+15550001000", frm="+15551230001", status="ringing",
                call=None, **extra):
    p = {"CallSid": call or sid("CA"), "AccountSid": "AC" + "1" * 32,
         "From": frm, "To": to, "Caller": frm, "Called": to,
         "CallStatus": status, "Direction": "inbound",
         "ApiVersion": "2010-04-01"}
    p.update(extra)
    return p


def sms_params(body, to="+15550001000", frm="+15551239999", **extra):
    p = {"MessageSid": sid("SM"), "SmsSid": "", "AccountSid": "AC" +
         "1" * 32, "From": frm, "To": to, "Body": body, "NumMedia": "0",
         "SmsStatus": "received", "ApiVersion": "2010-04-01"}
    p["SmsSid"] = p["MessageSid"]
    p.update(extra)
    return p


def answered_call(to, frm):
    """An inbound call the forward picked up (answered, architecture.md
    §7), 42 s long; its CallSid."""
    c = call_params(to=to, frm=frm)
    post("/webhooks/twilio/voice/incoming", c)
    post("/webhooks/twilio/voice/gather?step=dial", call_params(
        call=c["CallSid"], status="in-progress", DialCallStatus="completed"))
    post("/webhooks/twilio/voice/status", call_params(
        call=c["CallSid"], status="completed", SequenceNumber="1",
        CallDuration="42", CallbackSource="call-progress-events"))
    return c["CallSid"]


def missed_call(to, frm):
    """An inbound call nobody took (no-answer); its CallSid and the
    status callback's parameters, to redeliver."""
    c = call_params(to=to, frm=frm)
    post("/webhooks/twilio/voice/incoming", c)
    st = call_params(call=c["CallSid"], status="no-answer",
                     SequenceNumber="1",
                     CallbackSource="call-progress-events")
    post("/webhooks/twilio/voice/status", st)
    return c["CallSid"], st


class Authenticity(unittest.TestCase):

    def test_signed_request_is_accepted(self):
        r = post("/webhooks/twilio/sms/incoming", sms_params("hi"))
        twiml(r)

    def test_wrong_signature_token_or_url_is_401_and_stores_nothing(self):
        n = count("events")
        p = sms_params("hi")
        body = urllib.parse.urlencode(p)
        path = "/webhooks/twilio/sms/incoming"
        cases = {
            "bad": {"X-Twilio-Signature": "AAAAAAAAAAAAAAAAAAAAAAAAAAA="},
            "token": {"X-Twilio-Signature": sign(
                "wrong-token", stack.public_url + path, list(p.items()))},
            "url": {"X-Twilio-Signature": sign(
                TOKEN, stack.public_url + "/webhooks/twilio/sms/status",
                list(p.items()))},
            "params": {"X-Twilio-Signature": sign(
                TOKEN, stack.public_url + path,
                list(dict(p, Body="other").items()))},
            "missing": {},
            "secret": {"X-Webhook-Secret": "not-the-secret"},
        }
        for name, h in cases.items():
            r = stack.post(path, body, FORM, h)
            self.assertEqual(r.status, 401, name)
            self.assertIn("error", r.json())
        self.assertEqual(count("events"), n)
        r = stack.post(path, body, FORM, cases["missing"])
        self.assertEqual(r.json(), {"error": "missing X-Twilio-Signature"})
        r = stack.post(path, body, FORM, cases["bad"])
        self.assertEqual(r.json(), {"error": "bad X-Twilio-Signature"})

    def test_previous_token_during_rotation(self):
        twiml(post("/webhooks/twilio/sms/incoming", sms_params("hi"),
                   token=PREVIOUS))

    def test_port_variant(self):
        # public_url has a non-default port: a signature over the URL
        # without the port is accepted too, as the SDKs accept it
        path = "/webhooks/twilio/sms/incoming"
        url = "http://127.0.0.1" + path
        twiml(post(path, sms_params("hi"), url=url))
        r = post(path, sms_params("hi"), url="http://127.0.0.1:1" + path)
        self.assertEqual(r.status, 401)

    def test_query_string_is_signed(self):
        path = "/webhooks/twilio/sms/incoming?foo=1&bar=%20x"
        twiml(post(path, sms_params("hi")))
        r = post(path, sms_params("hi"),
                 url=stack.public_url + "/webhooks/twilio/sms/incoming")
        self.assertEqual(r.status, 401)

    def test_repeated_keys(self):
        p = list(sms_params("hi").items()) + [("Extra", "b"), ("Extra", "a"),
                                                ("Extra", "b")]
        twiml(post("/webhooks/twilio/sms/incoming", p))

    def test_shared_secret_header(self):
        for header in ("X-Twilio-Webhook-Secret", "X-Webhook-Secret"):
            p = sms_params("hi")
            r = stack.post("/webhooks/twilio/sms/incoming",
                           urllib.parse.urlencode(p), FORM,
                           {header: SHARED})
            twiml(r)
            self.assertEqual(count("messages", "message_id = '%s'" %
                                   p["MessageSid"]), 1, header)

    def test_per_account_token_from_the_database(self):
        p = sms_params("hi", to="+15550004000", AccountSid=ACCOUNT)
        r = post("/webhooks/twilio/sms/incoming", p, token=ACCOUNT_TOKEN)
        twiml(r)
        self.assertEqual(q1("SELECT organization_id FROM events WHERE "
                            "provider_key = '%s:received'"
                            % p["MessageSid"]), orgs["account"])
        # the stored token is only for its own account
        p = sms_params("hi", to="+15550004000")
        r = post("/webhooks/twilio/sms/incoming", p, token=ACCOUNT_TOKEN)
        self.assertEqual(r.status, 401)
        # and it is sealed: not in the database in the clear
        self.assertEqual(count("provider_accounts", "secret_sealed LIKE "
                               "'%%%s%%'" % ACCOUNT_TOKEN), 0)
        out = stack.ctl_ok("secret", "list")
        self.assertIn(ACCOUNT, out)
        self.assertNotIn(ACCOUNT_TOKEN, out)

    def test_json_body_with_body_sha256(self):
        msid = sid("SM")
        body = json.dumps({"MessageSid": msid, "From": "+15551230000",
                           "To": "+15550001000", "Body": "json hello"})
        digest = hashlib.sha256(body.encode()).hexdigest()
        path = "/webhooks/twilio/sms/incoming?bodySHA256=" + digest
        h = {"X-Twilio-Signature": sign(TOKEN, stack.public_url + path, [])}
        twiml(stack.post(path, body, "application/json", h))
        self.assertEqual(q1("SELECT from_number || '|' || body FROM messages "
                            "WHERE message_id = '%s'" % msid),
                         "+15551230000|json hello")
        bad = "/webhooks/twilio/sms/incoming?bodySHA256=" + "0" * 64
        h = {"X-Twilio-Signature": sign(TOKEN, stack.public_url + bad, [])}
        r = stack.post(bad, body, "application/json", h)
        self.assertEqual(r.status, 401)
        self.assertEqual(r.json(),
                         {"error": "bodySHA256 does not match the body"})

    def test_alias_verifies_against_its_own_url(self):
        p = call_params(to="+15550001000")
        twiml(post("/voice/incoming", p))
        # signed for the canonical path, sent to the alias: refused
        p = call_params(to="+15550001000")
        r = post("/voice/incoming", p, url=stack.public_url +
                 "/webhooks/twilio/voice/incoming")
        self.assertEqual(r.status, 401)
        for alias in ("/api/twilio/voice", "/voice/julie/incoming"):
            twiml(post(alias, call_params()))


class Voice(unittest.TestCase):

    def test_business_hours_forward_and_redelivery(self):
        p = call_params(to="+15550001000", frm="+15551230099")
        r = post("/webhooks/twilio/voice/incoming", p)
        root = twiml(r)
        self.assertEqual(root[0].tag, "Say")
        self.assertEqual(root[0].text, "Welcome to Open Clinic & Co.")
        self.assertIn(b"Open Clinic &amp; Co.", r.body)
        dial = root.find("Dial")
        self.assertEqual(dial.find("Number").text, "+15550009999")
        self.assertTrue(dial.get("action").endswith(
            "/webhooks/twilio/voice/gather?step=dial"))
        call = p["CallSid"]
        self.assertEqual(q1("SELECT status || '|' || direction || '|' || "
                            "from_number || '|' || to_number || '|' || "
                            "organization_id FROM calls WHERE call_id = '%s'"
                            % call), "ringing|inbound|+15551230099|"
                         "+15550001000|" + orgs["open"])
        self.assertEqual(count("activity", "type = 'inbound_call' AND "
                               "call_id = (SELECT id FROM calls WHERE "
                               "call_id = '%s')" % call), 1)
        notes = q1("SELECT json_agg(json_build_object('type', type, "
                   "'title', title, 'message', message, 'data', data) "
                   "ORDER BY id) FROM notifications WHERE event_id = "
                   "(SELECT id FROM events WHERE provider_key = '%s:ringing:')"
                   % call)
        notes = json.loads(notes)
        self.assertEqual(len(notes), 2)     # one per user
        self.assertEqual(notes[0], {
            "type": "inbound_call", "title": "Incoming Call Received",
            "message": "New inbound call from +15551230099 to +15550001000",
            "data": {"from_number": "+15551230099",
                     "to_number": "+15550001000", "agent_id": None}})
        before = [count(t) for t in ("events", "calls", "activity",
                                     "notifications")]
        again = post("/webhooks/twilio/voice/incoming", p)
        self.assertEqual(again.body, r.body)
        self.assertEqual([count(t) for t in ("events", "calls", "activity",
                                             "notifications")], before)

    def test_after_hours_voicemail(self):
        p = call_params(to="+15550002000")
        root = twiml(post("/webhooks/twilio/voice/incoming", p))
        says = [e.text for e in root.findall("Say")]
        self.assertEqual(says[0], "Thank you for calling Closed Clinic.")
        self.assertIn("Our office is closed right now.", says)
        rec = root.find("Record")
        self.assertTrue(rec.get("recordingStatusCallback").endswith(
            "/webhooks/twilio/recording/status?kind=voicemail"))
        self.assertEqual(rec.get("transcribe"), "true")
        self.assertTrue(rec.get("transcribeCallback").endswith(
            "/webhooks/twilio/transcription"))
        self.assertTrue(rec.get("action").endswith("step=recorded"))
        self.assertIsNone(root.find("Dial"))
        # the recording, then its transcription, reach the call
        call = p["CallSid"]
        rp = {"AccountSid": "AC" + "1" * 32, "CallSid": call,
              "RecordingSid": sid("RE"), "RecordingStatus": "completed",
              "RecordingUrl": "https://api.twilio.com/rec/RE1",
              "RecordingDuration": "17"}
        path = "/webhooks/twilio/recording/status?kind=voicemail"
        r = post(path, rp)
        self.assertEqual(r.status, 204)
        self.assertEqual(r.body, b"")
        r = post(path, rp)      # redelivery
        self.assertEqual(r.status, 204)
        self.assertEqual(q1("SELECT recording_url FROM calls WHERE "
                            "call_id = '%s'" % call),
                         "https://api.twilio.com/rec/RE1")
        self.assertEqual(q1("SELECT string_agg(summary, ';') FROM activity "
                            "WHERE type = 'voicemail' AND call_id = (SELECT "
                            "id FROM calls WHERE call_id = '%s')" % call),
                         "Voicemail from +15551230001 (17 s)")
        tp = {"AccountSid": "AC" + "1" * 32, "CallSid": call,
              "TranscriptionSid": sid("TR"), "TranscriptionStatus":
              "completed", "TranscriptionText": "Please call me back.",
              "RecordingSid": rp["RecordingSid"]}
        self.assertEqual(post("/webhooks/twilio/transcription", tp).status,
                         204)
        self.assertEqual(q1("SELECT transcript FROM calls WHERE call_id = "
                            "'%s'" % call), "Please call me back.")
        # the <Record> action ends the call politely
        root = twiml(post("/webhooks/twilio/voice/gather?step=recorded",
                          call_params(to="+15550002000", call=call,
                                      status="in-progress")))
        self.assertIsNotNone(root.find("Hangup"))

    def test_agent_speech_flow(self):
        p = call_params(to="+15550003000")
        root = twiml(post("/webhooks/twilio/voice/incoming", p))
        g = root.find("Gather")
        self.assertEqual(g.get("input"), "speech")
        self.assertTrue(g.get("partialResultCallback").endswith(
            "/webhooks/twilio/voice/partial"))
        action = g.get("action")
        path = action[len(stack.public_url):]
        self.assertEqual(path, "/webhooks/twilio/voice/gather?step=ask&turn=1")
        gp = call_params(to="+15550003000", call=p["CallSid"],
                         status="in-progress",
                         SpeechResult="Where can I park my car?",
                         Confidence="0.9")
        root = twiml(post(path, gp))
        self.assertEqual(root.find("Say").text,
                         "Parking is behind the building.")
        self.assertTrue(root.find("Gather").get("action").endswith(
            "step=ask&turn=2"))
        # a partial result is stored, answered 204
        pp = call_params(call=p["CallSid"], status="in-progress",
                         UnstableSpeechResult="where can", Stability="0.5",
                         SequenceNumber="1")
        n = stored("twilio_voice_partial", p["CallSid"])
        self.assertEqual(post("/webhooks/twilio/voice/partial", pp).status,
                         204)
        self.assertEqual(stored("twilio_voice_partial", p["CallSid"]), n + 1)
        # a question the knowledge base cannot answer after hours: never
        # a transfer to the closed office (architecture.md §8), but voicemail
        gp = call_params(to="+15550003000", call=p["CallSid"],
                         status="in-progress",
                         SpeechResult="Can I speak to the dentist?")
        root = twiml(post("/webhooks/twilio/voice/gather?step=ask&turn=2",
                          gp))
        self.assertEqual(root.find("Say").text,
                         "Our office is closed right now.")
        self.assertIsNone(root.find("Dial"))
        self.assertIsNotNone(root.find("Record"))

    def test_gather_keypad_digits_are_asked_too(self):
        # DESIGN §3: the gather route takes a speech or a DTMF result; a
        # keypad answer (Digits, no SpeechResult) is looked up as speech is
        rid = stack.ctl_ok("reply", "add", orgs["agent"], "--channel",
                           "voice", "--keywords", "7", "--text",
                           "Seven: our opening hours.").split()[0]
        self.addCleanup(stack.ctl_ok, "reply", "remove", rid)
        p = call_params(to="+15550003000")
        twiml(post("/webhooks/twilio/voice/incoming", p))
        gp = call_params(to="+15550003000", call=p["CallSid"],
                         status="in-progress", Digits="7")
        root = twiml(post("/webhooks/twilio/voice/gather?step=ask&turn=1",
                          gp))
        self.assertEqual(root.find("Say").text, "Seven: our opening hours.")

    def test_dial_not_answered_goes_to_voicemail(self):
        p = call_params(to="+15550001000")
        post("/webhooks/twilio/voice/incoming", p)
        dp = call_params(call=p["CallSid"], status="in-progress",
                         DialCallStatus="no-answer")
        root = twiml(post("/webhooks/twilio/voice/gather?step=dial", dp))
        self.assertIsNotNone(root.find("Record"))
        dp = call_params(call=p["CallSid"], status="in-progress",
                         DialCallStatus="completed")
        root = twiml(post("/webhooks/twilio/voice/gather?step=dial", dp))
        self.assertIsNotNone(root.find("Hangup"))

    def test_blocked_caller_is_rejected(self):
        stack.ctl_ok("block", "add", orgs["open"], "+15557770000")
        root = twiml(post("/webhooks/twilio/voice/incoming",
                          call_params(frm="+15557770000")))
        self.assertEqual([e.tag for e in root], ["Reject"])
        self.assertIn("+15557770000", stack.ctl_ok("block", "list",
                                                   orgs["open"]))

    def test_ringing_never_follows_in_progress(self):
        # the order a call goes through: queued, initiated, ringing,
        # in-progress, then an end; a late earlier state changes nothing
        p = call_params(to="+15550001000")
        post("/webhooks/twilio/voice/incoming", p)
        for st, n in (("in-progress", 2), ("ringing", 1), ("initiated", 0),
                      ("queued", 0)):
            post("/webhooks/twilio/voice/status", call_params(
                call=p["CallSid"], status=st, SequenceNumber=str(n),
                CallbackSource="call-progress-events"))
            self.assertEqual(q1("SELECT status FROM calls WHERE call_id = "
                                "'%s'" % p["CallSid"]), "in-progress", st)

    def test_status_callbacks_are_monotonic_and_counted_once(self):
        p = call_params(to="+15550001000")
        call = p["CallSid"]
        post("/webhooks/twilio/voice/incoming", p)

        def status(st, n, **extra):
            sp = call_params(call=call, status=st, SequenceNumber=str(n),
                             CallbackSource="call-progress-events", **extra)
            r = post("/webhooks/twilio/voice/status", sp)
            self.assertEqual(r.status, 204)
            self.assertEqual(r.body, b"")

        # the forward picked up (architecture.md §7: the <Dial> leg decides)
        r = post("/webhooks/twilio/voice/gather?step=dial", call_params(
            call=call, status="in-progress", DialCallStatus="completed"))
        self.assertEqual(r.status, 200)
        status("in-progress", 1)
        status("completed", 2, CallDuration="42")
        status("ringing", 0)            # late
        status("completed", 2, CallDuration="42")   # redelivered
        status("in-progress", 1)        # redelivered and late
        self.assertEqual(q1("SELECT status || '|' || duration_s || '|' || "
                            "(ended_at IS NOT NULL) FROM calls WHERE "
                            "call_id = '%s'" % call), "completed|42|true")
        self.assertEqual(q1("SELECT string_agg(type || ':' || summary, ';' "
                            "ORDER BY id) FROM activity WHERE call_id = "
                            "(SELECT id FROM calls WHERE call_id = '%s')"
                            % call),
                         "inbound_call:Inbound call received;"
                         "call_ended:Call completed")
        # incoming, the <Dial> action and three distinct statuses
        self.assertEqual(count("events", "provider_key LIKE '%s:%%'" % call),
                         5)

    def test_missed_call(self):
        p = call_params(to="+15550001000", frm="+15551112222")
        post("/webhooks/twilio/voice/incoming", p)
        sp = call_params(call=p["CallSid"], frm="+15551112222",
                         status="no-answer", SequenceNumber="1",
                         CallbackSource="call-progress-events")
        self.assertEqual(post("/webhooks/twilio/voice/status", sp).status,
                         204)
        self.assertEqual(q1("SELECT summary FROM activity WHERE type = "
                            "'call_missed' AND call_id = (SELECT id FROM "
                            "calls WHERE call_id = '%s')" % p["CallSid"]),
                         "Missed call from +15551112222 (no-answer)")

    def test_unroutable_call_is_stored_and_answered_safely(self):
        p = call_params(to="+15559990000")
        root = twiml(post("/webhooks/twilio/voice/incoming", p))
        self.assertEqual([e.tag for e in root], ["Say", "Hangup"])
        self.assertEqual(q1("SELECT coalesce(organization_id::text, 'NULL') "
                            "FROM events WHERE provider_key = '%s:ringing:'"
                            % p["CallSid"]), "NULL")


class Sms(unittest.TestCase):

    def reply(self, body, frm, to="+15550001000"):
        root = twiml(post("/webhooks/twilio/sms/incoming",
                          sms_params(body, to=to, frm=frm)))
        m = root.find("Message")
        return m.text if m is not None else None

    def test_default_auto_replies(self):
        frm = "+15552220001"
        self.assertIn("insurance", self.reply("Do you take my insurance?",
                                              frm))
        self.assertIn("911", self.reply("I am in a lot of PAIN", frm))
        frm = "+15552220002"
        self.assertIn("Open Clinic is open mon-sun 00:00-24:00",
                      self.reply("What are your hours", frm))
        self.assertIsNone(self.reply("Thanks, see you", frm))
        # DESIGN §8's fifth default: where the office is
        where = self.reply("What is your address?", "+15552220005")
        self.assertIn("address and directions", where)
        self.assertNotIn("insurance", where)

    def test_reply_is_stored_and_logged(self):
        p = sms_params("Can I book an appointment?", frm="+15552220003")
        r = post("/webhooks/twilio/sms/incoming", p)
        root = twiml(r)
        m = root.find("Message")
        self.assertIn("appointment with Open Clinic", m.text)
        self.assertEqual(m.get("statusCallback"), stack.public_url +
                         "/webhooks/twilio/sms/status?reply_to=" +
                         p["MessageSid"])
        self.assertEqual(q1("SELECT direction || '|' || body || '|' || "
                            "status || '|' || auto_reply || '|' || "
                            "reply_text FROM messages WHERE message_id = "
                            "'%s'" % p["MessageSid"]),
                         "inbound|Can I book an appointment?|received|"
                         "true|" + m.text)
        self.assertEqual(q1("SELECT type || '|' || summary FROM activity "
                            "WHERE message_id = (SELECT id FROM messages "
                            "WHERE message_id = '%s')" % p["MessageSid"]),
                         "sms_reply|SMS from +15552220003")
        again = post("/webhooks/twilio/sms/incoming", p)
        self.assertEqual(again.body, r.body)
        self.assertEqual(count("messages", "message_id = '%s'"
                               % p["MessageSid"]), 1)
        self.assertEqual(count("activity", "message_id = (SELECT id FROM "
                               "messages WHERE message_id = '%s')"
                               % p["MessageSid"]), 1)

    def test_the_reply_sent_has_its_text(self):
        # Twilio sends the TwiML reply and calls the statusCallback we
        # gave it, without the text: the outbound message gets the reply
        # of the message it answered, and only that organization's
        p = sms_params("What are your hours", frm="+15552220005")
        m = twiml(post("/webhooks/twilio/sms/incoming", p)).find("Message")
        cb = m.get("statusCallback")[len(stack.public_url):]
        out = sid("SM")
        status = {"MessageSid": out, "AccountSid": p["AccountSid"],
                  "From": p["To"], "To": p["From"],
                  "MessageStatus": "sent", "SmsStatus": "sent"}
        self.assertEqual(post(cb, status).status, 204)
        self.assertEqual(q1("SELECT direction || '|' || body || '|' || "
                            "auto_reply FROM messages WHERE message_id = "
                            "'%s'" % out), "outbound|%s|true" % m.text)
        # a later status keeps it; a status without the link has none
        self.assertEqual(post(cb, dict(status, MessageStatus="delivered",
                                       SmsStatus="delivered")).status, 204)
        self.assertEqual(q1("SELECT body FROM messages WHERE message_id = "
                            "'%s'" % out), m.text)
        plain = sid("SM")
        post("/webhooks/twilio/sms/status", dict(status, MessageSid=plain))
        self.assertEqual(q1("SELECT coalesce(body, '-') FROM messages "
                            "WHERE message_id = '%s'" % plain), "-")
        # naming another organization's message gives nothing
        other = sms_params("What are your hours", to="+15550004000",
                           frm="+15552220006", AccountSid=ACCOUNT)
        post("/webhooks/twilio/sms/incoming", other, token=ACCOUNT_TOKEN)
        self.assertNotEqual(q1("SELECT coalesce(reply_text, '') FROM "
                               "messages WHERE message_id = '%s'"
                               % other["MessageSid"]), "")
        cross = sid("SM")
        post("/webhooks/twilio/sms/status?reply_to=" + other["MessageSid"],
             dict(status, MessageSid=cross))
        self.assertEqual(q1("SELECT coalesce(body, '-') FROM messages "
                            "WHERE message_id = '%s'" % cross), "-")

    def test_organization_rules_come_first(self):
        rid = stack.ctl_json("reply", "add", orgs["open"], "--keywords",
                             "Insurance, Delta", "--text",
                             "We take Delta Dental <and> most plans.")["id"]
        self.assertEqual(self.reply("insurance?", "+15552220004"),
                         "We take Delta Dental <and> most plans.")
        listed = stack.ctl_json("reply", "list", orgs["open"])["replies"]
        self.assertIn({"id": rid, "channel": "sms",
                       "keywords": "insurance,delta",
                       "text": "We take Delta Dental <and> most plans."},
                      listed)
        stack.ctl_ok("reply", "remove", str(rid))
        self.assertIn("check your plan", self.reply("insurance?",
                                                    "+15552220005"))

    def test_stop_start_help(self):
        frm = "+15552220006"
        self.assertIsNone(self.reply("STOP", frm))
        self.assertEqual(count("opt_outs", "e164 = '%s'" % frm), 1)
        self.assertIsNone(self.reply("appointment please", frm))
        self.assertIn("You will receive messages from Open Clinic again",
                      self.reply("start", frm))
        self.assertEqual(count("opt_outs", "e164 = '%s'" % frm), 0)
        self.assertIsNotNone(self.reply("appointment please", frm))
        self.assertIn("for help, call +15550009999", self.reply("HELP", frm))

    def test_one_contact_among_many(self):
        # STOP, START, a block and the loop guard are one contact's: the
        # contacts beside it keep their replies throughout
        a, b = "+15552220016", "+15552220017"
        self.assertIsNotNone(self.reply("appointment please", b))
        self.assertIsNone(self.reply("STOP", a))
        self.assertEqual(count("opt_outs", "e164 IN ('%s', '%s')" % (a, b)),
                         1)
        self.assertIsNotNone(self.reply("appointment please", b))
        self.assertIn("again", self.reply("START", a))
        stack.ctl_ok("block", "add", orgs["open"], a)
        self.assertIsNone(self.reply("appointment please", a))
        self.assertIsNotNone(self.reply("appointment please", b))
        stack.ctl_ok("block", "remove", orgs["open"], a)
        # a's loop guard spent (three replies in ten minutes): a contact
        # not yet answered still is
        c = "+15552220018"
        answered = 0
        while self.reply("appointment?", a) is not None:
            answered += 1
            self.assertLessEqual(answered, 3, "the loop guard never held")
        self.assertIsNotNone(self.reply("appointment?", c))
        self.assertEqual(count("opt_outs", "e164 IN ('%s', '%s')" % (a, b)),
                         0)

    def test_loop_guard(self):
        frm = "+15552220007"
        replies = [self.reply("appointment?", frm) for _ in range(5)]
        self.assertEqual([r is not None for r in replies],
                         [True, True, True, False, False])
        # our own number texting us gets no reply either
        self.assertIsNone(self.reply("appointment?", "+15550001000"))

    def test_blocked_sender_gets_no_reply(self):
        stack.ctl_ok("block", "add", orgs["open"], "+15552220008")
        self.assertIsNone(self.reply("appointment?", "+15552220008"))
        stack.ctl_ok("block", "remove", orgs["open"], "+15552220008")
        self.assertIsNotNone(self.reply("appointment?", "+15552220008"))

    def test_status_callbacks_log_sent_once(self):
        msg = sid("SM")

        def status(st):
            p = {"MessageSid": msg, "AccountSid": "AC" + "1" * 32,
                 "From": "+15550001000", "To": "+15553330000",
                 "MessageStatus": st, "SmsStatus": st,
                 "ApiVersion": "2010-04-01"}
            r = post("/webhooks/twilio/sms/status", p)
            self.assertEqual(r.status, 204)

        status("sent")
        status("delivered")
        status("sent")          # late, and a redelivery
        self.assertEqual(q1("SELECT direction || '|' || status || '|' || "
                            "organization_id || '|' || "
                            "jsonb_array_length(status_history) FROM "
                            "messages WHERE message_id = '%s'" % msg),
                         "outbound|delivered|%s|2" % orgs["open"])
        self.assertEqual(q1("SELECT string_agg(type || ':' || summary, ';') "
                            "FROM activity WHERE message_id = (SELECT id "
                            "FROM messages WHERE message_id = '%s')" % msg),
                         "sms_sent:SMS sent to +15553330000")

    def test_a_body_of_max_body_bytes_is_stored_whole(self):
        # telehook.conf(5) max_body_bytes: the largest body taken, 1 MiB
        # by default (nginx's client_max_body_size 1m too): one of
        # exactly that size is stored whole, one byte more is 413
        def of_size(n):
            p = sms_params("")
            base = len(urllib.parse.urlencode(list(p.items())))
            p["Body"] = "x" * (n - base)
            return p
        p = of_size(1048576)
        self.assertEqual(len(urllib.parse.urlencode(list(p.items()))),
                         1048576)
        twiml(post("/webhooks/twilio/sms/incoming", p))
        self.assertEqual(q1("SELECT length(body) FROM messages WHERE "
                            "message_id = '%s'" % p["MessageSid"]),
                         str(len(p["Body"])))
        self.assertEqual(q1("SELECT length(body) FROM events WHERE "
                            "provider_key = '%s:received'"
                            % p["MessageSid"]), "1048576")
        big = of_size(1048577)
        self.assertEqual(post("/webhooks/twilio/sms/incoming", big).status,
                         413)
        self.assertEqual(count("messages", "message_id = '%s'"
                               % big["MessageSid"]), 0)

    def test_a_final_status_is_not_replaced_by_another(self):
        # DESIGN §6: a status never moves backwards; delivered,
        # undelivered and failed are all final (one rank): the first to
        # arrive stays, a later one is only in the history
        msg = sid("SM")
        for st in ("sent", "delivered", "undelivered", "failed"):
            r = post("/webhooks/twilio/sms/status", {
                "MessageSid": msg, "AccountSid": "AC" + "1" * 32,
                "From": "+15550001000", "To": "+15553330001",
                "MessageStatus": st, "SmsStatus": st,
                "ApiVersion": "2010-04-01"})
            self.assertEqual(r.status, 204)
        self.assertEqual(q1("SELECT status || '|' || "
                            "jsonb_array_length(status_history) FROM "
                            "messages WHERE message_id = '%s'" % msg),
                         "delivered|4")

    def test_unroutable_sms(self):
        p = sms_params("appointment", to="+15559990001")
        root = twiml(post("/webhooks/twilio/sms/incoming", p))
        self.assertEqual(len(root), 0)
        self.assertEqual(q1("SELECT coalesce(organization_id::text, 'NULL') "
                            "FROM messages WHERE message_id = '%s'"
                            % p["MessageSid"]), "NULL")

    def test_explicit_organization(self):
        p = sms_params("hello", to="+15550001000")
        path = ("/webhooks/twilio/sms/incoming?organization_id="
                + orgs["closed"])
        twiml(post(path, p))
        self.assertEqual(q1("SELECT organization_id FROM messages WHERE "
                            "message_id = '%s'" % p["MessageSid"]),
                         orgs["closed"])
        # an id that names no organization: unrouted, not rejected
        p = sms_params("hello", to="+15550001000")
        path = ("/webhooks/twilio/sms/incoming?OrgId="
                "00000000-0000-0000-0000-000000000000")
        twiml(post(path, p))
        self.assertEqual(q1("SELECT coalesce(organization_id::text, 'NULL') "
                            "FROM messages WHERE message_id = '%s'"
                            % p["MessageSid"]), "NULL")


class OneUrl(unittest.TestCase):

    def test_classification(self):
        path = "/webhooks/twilio"
        root = twiml(post(path, sms_params("appointment?",
                                           frm="+15552220010")))
        self.assertIsNotNone(root.find("Message"))
        p = call_params(to="+15550001000")
        root = twiml(post(path, p))
        self.assertIsNotNone(root.find("Dial"))
        sp = call_params(call=p["CallSid"], status="completed",
                         SequenceNumber="3", CallDuration="5",
                         CallbackSource="call-progress-events")
        self.assertEqual(post(path, sp).status, 204)
        self.assertEqual(q1("SELECT status FROM calls WHERE call_id = '%s'"
                            % p["CallSid"]), "completed")
        r = post(path, {"Foo": "bar"})
        self.assertEqual(r.status, 400)
        for compat in ("/api/webhooks/twilio", "/functions/v1/twilio-webhook"):
            p = sms_params("hi")
            twiml(post(compat, p))
            self.assertEqual(count("messages", "message_id = '%s'" %
                                   p["MessageSid"]), 1, compat)

    def test_compat_json_with_shared_secret(self):
        body = json.dumps({"organization_id": orgs["closed"],
                           "From": "+15554440000", "To": "+15550002000",
                           "Body": "hello from the old app",
                           "SmsStatus": "received"})
        r = stack.post("/api/webhooks/twilio", body, "application/json",
                       {"X-Twilio-Webhook-Secret": SHARED})
        twiml(r)
        self.assertEqual(count("messages", "body = 'hello from the old app'"
                               " AND organization_id = '%s'"
                               % orgs["closed"]), 1)

    def test_compat_json_without_status_is_classified_by_direction(self):
        # /webhooks/twilio's kin for older senders tells an SMS by its
        # fields (telehook.8 Twilio): with no SmsStatus, one that says
        # nothing of its direction, or says inbound, is an SMS
        # received; one that says outbound is the app's own SMS sent
        for direction, body in ((None, "compat no status"),
                                ("inbound", "compat inbound no status")):
            m = {"organization_id": orgs["open"], "From": "+15554440001",
                 "To": "+15550001000", "Body": body}
            if direction:
                m["Direction"] = direction
            r = stack.post("/api/webhooks/twilio", json.dumps(m),
                           "application/json",
                           {"X-Twilio-Webhook-Secret": SHARED})
            twiml(r)
            self.assertEqual(q1("SELECT direction || '|' || status || '|' "
                                "|| organization_id FROM messages WHERE "
                                "body = '%s'" % body),
                             "inbound|received|%s" % orgs["open"], direction)
        m = {"organization_id": orgs["open"], "From": "+15550001000",
             "To": "+15554440002", "Body": "compat outbound no status",
             "Direction": "outbound-api"}
        r = stack.post("/api/webhooks/twilio", json.dumps(m),
                       "application/json", {"X-Twilio-Webhook-Secret": SHARED})
        self.assertEqual(r.status, 204, r)
        self.assertEqual(count("messages", "body = 'compat outbound no "
                               "status' AND direction = 'inbound'"), 0)

    def test_one_url_classifies_by_fields(self):
        # Seeds point every Twilio callback at one URL: the fields say
        # what each is (the same fields Twilio's own callbacks carry).
        call = sid("CA")
        cases = [
            (call_params(call=call), "voice_incoming", 200),
            (call_params(call=call, status="in-progress",
                         UnstableSpeechResult="wh", Stability="0.2",
                         SequenceNumber="1"), "voice_partial", 204),
            (call_params(call=call, status="in-progress",
                         SpeechResult="hours?"), "voice_gather", 200),
            ({"AccountSid": "AC" + "1" * 32, "CallSid": call,
              "RecordingSid": sid("RE"), "RecordingStatus": "completed",
              "RecordingUrl": "https://api.twilio.com/rec/1"},
             "recording", 204),
            ({"AccountSid": "AC" + "1" * 32, "CallSid": call,
              "TranscriptionSid": sid("TR"), "TranscriptionText": "hi",
              "TranscriptionStatus": "completed"}, "transcription", 204),
            (call_params(call=call, status="completed", CallDuration="9"),
             "voice_status", 204),
            ({"MessageSid": sid("SM"), "AccountSid": "AC" + "1" * 32,
              "From": "+15550001000", "To": "+15551239999",
              "MessageStatus": "delivered"}, "sms_status", 204),
        ]
        for params, kind, status in cases:
            r = post("/webhooks/twilio", params)
            self.assertEqual(r.status, status, kind)
            key = params.get("RecordingSid") or params.get(
                "TranscriptionSid") or params.get("MessageSid") or call
            self.assertEqual(count("events", "event_type = '%s' AND "
                                   "provider_key LIKE '%%%s%%'" % (kind,
                                                                   key)),
                             1, kind)
        self.assertEqual(q1("SELECT status || '|' || duration_s FROM calls "
                            "WHERE call_id = '%s'" % call), "completed|9")
        r = post("/webhooks/twilio", {"Foo": "bar"})
        self.assertEqual(r.status, 400)

    def test_mms_media_are_kept(self):
        p = sms_params("a photo", NumMedia="2",
                       MediaUrl0="https://api.twilio.com/m/0",
                       MediaContentType0="image/jpeg",
                       MediaUrl1="https://api.twilio.com/m/1")
        twiml(post("/webhooks/twilio/sms/incoming", p))
        self.assertEqual(json.loads(q1(
            "SELECT json_build_object('n', num_media, 'media', media) FROM "
            "messages WHERE message_id = '%s'" % p["MessageSid"])),
            {"n": 2, "media": [
                {"url": "https://api.twilio.com/m/0",
                 "content_type": "image/jpeg"},
                {"url": "https://api.twilio.com/m/1",
                 "content_type": None}]})
        # an MMS carries up to 10 media, MediaUrl0 to MediaUrl9: all kept
        ten = {"MediaUrl%d" % i: "https://api.twilio.com/m/%d" % i
               for i in range(10)}
        p = sms_params("ten photos", NumMedia="10", **ten)
        twiml(post("/webhooks/twilio/sms/incoming", p))
        self.assertEqual(q1(
            "SELECT string_agg(m->>'url', ' ' ORDER BY n) FROM messages, "
            "jsonb_array_elements(media) WITH ORDINALITY AS a(m, n) "
            "WHERE message_id = '%s'" % p["MessageSid"]),
            " ".join(ten["MediaUrl%d" % i] for i in range(10)))

    def test_speech_timing(self):
        params = {"CallSid": sid("CA")}
        t0 = time.monotonic()
        r = post("/api/twilio/speech-timing-test", params)
        rtt_us = (time.monotonic() - t0) * 1e6
        self.assertEqual(r.status, 200)
        j = r.json()
        self.assertEqual(j["route"], "speech-timing-test")
        # the server's time is part of the round trip we measured
        self.assertGreater(j["elapsed_us"], 0)
        self.assertLess(j["elapsed_us"], rtt_us)
        self.assertEqual(j["body_bytes"],
                         len(urllib.parse.urlencode(params)))


class BadInput(unittest.TestCase):

    def test_missing_fields_and_methods(self):
        r = post("/webhooks/twilio/voice/status", {"CallStatus": "ringing"})
        self.assertEqual(r.status, 400)
        self.assertEqual(r.json(), {"error": "missing CallSid"})
        r = stack.get("/webhooks/twilio/voice/incoming")
        self.assertEqual(r.status, 405)
        r = stack.post("/webhooks/twilio/sms/incoming", "a,b", "text/csv")
        self.assertEqual(r.status, 415)
        r = stack.post("/webhooks/twilio/sms/incoming", "Body=%zz", FORM,
                       {"X-Twilio-Signature": "x"})
        self.assertEqual(r.status, 400)

    def test_no_worker_crashed(self):
        self.assertEqual(len(stack.worker_pids()), 2)
        stack.assert_no_crash()

    def test_the_breaker_never_moved(self):
        # a database that answered every request at once: the breaker
        # never opened, so it never said it closed (telehook(8),
        # Database: it logs its changes)
        log = stack.worker_log()
        self.assertNotIn("spooling, a probe every", log)
        self.assertNotIn(" no more: the probe took", log)


load_tests = in_order(__name__)

if __name__ == "__main__":
    unittest.main(verbosity=2)
