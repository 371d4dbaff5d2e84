"""
e2e_voipms: the VoIP.ms provider end to end: the SMS URL callback by GET
(with '&' or ';') and POST (form or JSON) answered "ok", redelivery, URL
tokens, the address allowlist behind nginx's realip (a forged
X-Forwarded-For from an untrusted address changes nothing), call records
and recordings joined to their call, and auto-replies sent through a
local fake of the VoIP.ms REST API exactly once.
"""

import http.server
import json
import os
import sys
import threading
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stack, free_port, in_order  # noqa: E402

TOKEN = "vm-url-token-0123"
PREVIOUS = "vm-previous-token-4567"
VOIPMS = "198.51.100.7"         # where VoIP.ms calls from
DID = "5550050000"              # the organization's DID, as VoIP.ms writes it
stack = None
api = None
org = None
seq = [0]


class FakeApi(http.server.ThreadingHTTPServer):
    """The VoIP.ms REST API: records each call, answers from a script."""

    def __init__(self):
        self.calls = []
        self.script = []        # statuses to answer with before success
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", free_port()), FakeHandler)


class FakeHandler(http.server.BaseHTTPRequestHandler):

    def do_GET(self):
        q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(
            self.path).query))
        with self.server.lock:
            self.server.calls.append(q)
            n = len(self.server.calls)
            code = self.server.script.pop(0) if self.server.script else 200
        if isinstance(code, tuple):     # (status, the body as sent)
            code, body = code[0], code[1].encode()
        else:
            body = json.dumps({"status": "success", "sms": str(9000 + n)}
                              if code == 200 else {"status": "error"}
                              ).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def setUpModule():
    global stack, api, org
    api = FakeApi()
    threading.Thread(target=api.serve_forever, daemon=True).start()
    stack = Stack(workers=2, trusted_proxies=["127.0.0.1"], extra_conf={
        "voipms": {"url_token": TOKEN, "url_token_previous": PREVIOUS,
                   "allowed_ips": VOIPMS + "/32",
                   "api_url": "http://127.0.0.1:%d/api/v1/rest.php"
                   % api.server_address[1],
                   "api_username": "api@clinic.example",
                   "api_password": "api-password-secret"}}).start()
    org = stack.ctl_ok("org", "add", "VoIP Clinic").strip()
    stack.ctl_ok("number", "add", org, DID, "--provider", "voipms")


def tearDownModule():
    if stack is not None:
        stack.stop()
    if api is not None:
        api.shutdown()


def msg_id():
    seq[0] += 1
    return "%d%05d" % (os.getpid(), seq[0])


def sms_query(message, frm="5145550101", mid=None, sep="&", token=TOKEN):
    pairs = [("token", token), ("to", DID), ("from", frm),
             ("message", message), ("date", "2026-11-21 09:30:00")]
    if mid is not None:
        pairs.append(("id", mid))
    return sep.join("%s=%s" % (k, urllib.parse.quote(v, safe=""))
                    for k, v in pairs if v is not None)


def get(query, xff=VOIPMS, source=None):
    h = {"X-Forwarded-For": xff} if xff else {}
    return stack.request("GET", "/webhooks/voipms/sms/incoming?" + query,
                         headers=h, source=source)


def post(path, fields, as_json=False, token=TOKEN, xff=VOIPMS):
    h = {"X-Forwarded-For": xff}
    url = path + "?token=" + token
    if as_json:
        return stack.post(url, json.dumps(fields), "application/json", h)
    return stack.post(url, urllib.parse.urlencode(fields),
                      "application/x-www-form-urlencoded", h)


def q1(sql):
    return stack.psql(sql)


def count(table, where="true"):
    return int(q1("SELECT count(*) FROM %s WHERE %s" % (table, where)))


def ok(r):
    assert r.status == 200, r
    assert r.headers["content-type"].startswith("text/plain"), r.headers
    assert r.body == b"ok", r.body


class Callback(unittest.TestCase):

    def test_get_legacy_callback(self):
        mid = msg_id()
        ok(get(sms_query("Hello there", mid=mid)))
        self.assertEqual(q1("SELECT direction || '|' || from_number || '|' "
                            "|| to_number || '|' || body || '|' || "
                            "organization_id FROM messages WHERE provider = "
                            "'voipms' AND message_id = '%s'" % mid),
                         "inbound|+15145550101|+1%s|Hello there|%s"
                         % (DID, org))
        self.assertEqual(count("activity", "type = 'sms_reply' AND "
                               "message_id = (SELECT id FROM messages WHERE "
                               "message_id = '%s')" % mid), 1)

    def test_semicolons_and_missing_fields(self):
        mid = msg_id()
        ok(get(sms_query("semi; colons", mid=mid, sep=";")))
        self.assertEqual(q1("SELECT body FROM messages WHERE message_id = "
                            "'%s'" % mid), "semi; colons")
        # no id and no date: keyed by a digest of what there is
        q = "token=%s&to=%s&from=5145550102&message=no+id" % (TOKEN, DID)
        ok(get(q))
        n = count("messages")
        ok(get(q))
        self.assertEqual(count("messages"), n)
        # ... of all of it: another text, sender, number or date is
        # another message, not a redelivery
        for other in ("to=%s&from=5145550102&message=no+id+2" % DID,
                      "to=%s&from=5145550109&message=no+id" % DID,
                      "to=%s&from=5145550102&message=no+id&date=2026-11-21+"
                      "09:30:00" % DID):
            ok(get("token=%s&%s" % (TOKEN, other)))
            n += 1
            self.assertEqual(count("messages"), n, other)
        # and two messages with ids are two, whatever their text
        a, b = msg_id(), msg_id()
        ok(get(sms_query("same", mid=a)))
        ok(get(sms_query("same", mid=b)))
        self.assertEqual(count("messages", "message_id IN ('%s', '%s')"
                               % (a, b)), 2)
        r = get("token=%s&to=%s&message=who" % (TOKEN, DID))
        self.assertEqual(r.status, 400)
        self.assertEqual(r.json(), {"error": "missing from"})

    def test_post_form_and_json(self):
        a, b = msg_id(), msg_id()
        ok(post("/webhooks/voipms/sms/incoming", {
            "to": DID, "from": "5145550103", "message": "form post",
            "id": a}))
        ok(post("/webhooks/voipms/sms/incoming", {
            "to": DID, "from": "5145550103", "message": "json post",
            "id": int(b), "date": "2026-11-21 10:00:00"}, as_json=True))
        self.assertEqual(q1("SELECT string_agg(body, ',' ORDER BY id) FROM "
                            "messages WHERE message_id IN ('%s', '%s')"
                            % (a, b)), "form post,json post")
        ok(post("/api/voip/sms/webhook", {"to": DID, "from": "5145550103",
                                          "message": "compat",
                                          "id": msg_id()}))

    def test_redelivery_changes_nothing(self):
        mid = msg_id()
        q = sms_query("twice", mid=mid)
        ok(get(q))
        state = [count(t) for t in ("events", "messages", "activity",
                                    "outbox")]
        for _ in range(3):
            ok(get(q))
        self.assertEqual([count(t) for t in ("events", "messages",
                                             "activity", "outbox")], state)

    def test_tokens(self):
        n = count("events")
        r = get(sms_query("x", mid=msg_id(), token="wrong"))
        self.assertEqual(r.status, 401)
        self.assertEqual(r.json(), {"error": "bad token"})
        r = get("to=%s&from=5145550104&message=x" % DID)
        self.assertEqual(r.json(), {"error": "missing token"})
        self.assertEqual(count("events"), n)
        ok(get(sms_query("old token still works", mid=msg_id(),
                         token=PREVIOUS)))
        # the token never reaches the logs or the stored event
        self.assertNotIn(TOKEN, stack.worker_log())
        self.assertNotIn("wrong", stack.worker_log().replace(
            "wrong method", ""))
        self.assertEqual(count("events", "payload::text LIKE '%%%s%%'"
                               % TOKEN), 0)

    def test_addresses(self):
        n = count("events")
        # from the trusted proxy, for an address VoIP.ms does not use
        r = get(sms_query("x", mid=msg_id()), xff="203.0.113.9")
        self.assertEqual(r.status, 403)
        self.assertEqual(r.json(), {"error": "address not allowed"})
        # straight from the proxy, with no header: the proxy itself
        r = get(sms_query("x", mid=msg_id()), xff=None)
        self.assertEqual(r.status, 403)
        # a forged X-Forwarded-For from an untrusted address is ignored
        r = get(sms_query("x", mid=msg_id()), xff=VOIPMS,
                source="127.0.0.2")
        self.assertEqual(r.status, 403)
        self.assertEqual(count("events"), n)
        ok(get(sms_query("from VoIP.ms", mid=msg_id())))


class CallRecords(unittest.TestCase):

    def test_cdr_and_recording_join_their_call(self):
        cid = "17000" + msg_id()
        cdr = {"callid": cid, "callerid": '"Jane Roe" <5145550100>',
               "destination": DID, "disposition": "ANSWERED",
               "duration": "61", "seconds": "60",
               "date": "2026-11-20 10:00:00", "total": "0.0123"}
        ok(post("/webhooks/voipms/call/cdr", cdr))
        ok(post("/webhooks/voipms/call/cdr", cdr))     # a resend
        self.assertEqual(q1("SELECT status || '|' || direction || '|' || "
                            "from_number || '|' || to_number || '|' || "
                            "duration_s || '|' || cost_cents || '|' || "
                            "th_iso(started_at) || '|' || organization_id "
                            "FROM calls WHERE provider = 'voipms' AND "
                            "call_id = '%s'" % cid),
                         "completed|inbound|+15145550100|+1%s|60|1|"
                         "2026-11-20T10:00:00Z|%s" % (DID, org))
        rec = {"uniqueid": cid,
               "recording_url": "https://voip.ms/rec/%s.mp3" % cid}
        ok(post("/webhooks/voipms/recording/ready", rec, as_json=True))
        ok(post("/webhooks/voipms/recording/ready", rec, as_json=True))
        self.assertEqual(count("calls", "call_id = '%s'" % cid), 1)
        self.assertEqual(q1("SELECT recording_url FROM calls WHERE call_id "
                            "= '%s'" % cid), rec["recording_url"])
        self.assertEqual(q1("SELECT string_agg(type, ',' ORDER BY id) FROM "
                            "activity WHERE call_id = (SELECT id FROM calls "
                            "WHERE call_id = '%s')" % cid),
                         "call_ended,recording_ready")

    def test_missed_and_outbound(self):
        cid = "18000" + msg_id()
        ok(post("/webhooks/voipms/call/cdr", {
            "callid": cid, "callerid": "5145550105", "destination": DID,
            "disposition": "NO ANSWER", "seconds": "0"}))
        self.assertEqual(q1("SELECT summary FROM activity WHERE call_id = "
                            "(SELECT id FROM calls WHERE call_id = '%s')"
                            % cid), "Missed call from +15145550105 "
                         "(no-answer)")
        cid = "19000" + msg_id()
        ok(post("/webhooks/voipms/call/cdr", {
            "callid": cid, "callerid": DID, "destination": "5145550106",
            "disposition": "BUSY"}, as_json=True))
        self.assertEqual(q1("SELECT direction || '|' || status || '|' || "
                            "organization_id FROM calls WHERE call_id = "
                            "'%s'" % cid), "outbound|busy|" + org)
        r = post("/webhooks/voipms/call/cdr", {"callerid": "1"})
        self.assertEqual(r.status, 400)


class AutoReply(unittest.TestCase):

    def send(self):
        return stack.ctl_json("outbox", "send")

    def test_reply_reaches_the_api_exactly_once(self):
        before = len(api.calls)
        mid = msg_id()
        q = sms_query("Can I book an appointment?", frm="5145550107",
                      mid=mid)
        ok(get(q))
        ok(get(q))              # a resend queues nothing more
        self.assertEqual(count("outbox", "to_number = '+15145550107'"), 1)
        self.assertEqual(self.send()["sent"], 1)
        self.assertEqual(self.send()["sent"], 0)
        calls = api.calls[before:]
        self.assertEqual(len(calls), 1)
        c = calls[0]
        self.assertEqual((c["method"], c["did"], c["dst"], c["api_username"],
                          c["api_password"]),
                         ("sendSMS", DID, "5145550107", "api@clinic.example",
                          "api-password-secret"))
        self.assertIn("appointment with VoIP Clinic", c["message"])
        self.assertEqual(q1("SELECT state || '|' || provider_message_id "
                            "FROM outbox WHERE to_number = '+15145550107'"),
                         "sent|%d" % (9000 + before + 1))
        self.assertEqual(q1("SELECT direction || '|' || status || '|' || "
                            "auto_reply FROM messages WHERE message_id = "
                            "'%d'" % (9000 + before + 1)),
                         "outbound|sent|true")
        self.assertEqual(count("activity", "type = 'sms_sent' AND "
                               "summary = 'SMS sent to +15145550107'"), 1)

    def test_failure_is_retried_with_backoff(self):
        before = len(api.calls)
        api.script[:] = [500]
        ok(get(sms_query("what are your hours?", frm="5145550108",
                         mid=msg_id())))
        out = self.send()
        self.assertEqual((out["sent"], out["retrying"]), (0, 1))
        self.assertEqual(q1("SELECT state || '|' || attempts || '|' || "
                            "last_error || '|' || (next_attempt_at > now() "
                            "+ interval '20 seconds') FROM outbox WHERE "
                            "to_number = '+15145550108'"),
                         "retry|1|HTTP status 500|true")
        self.assertEqual(self.send()["sent"], 0)    # not due yet
        q1("UPDATE outbox SET next_attempt_at = now() WHERE to_number = "
           "'+15145550108'")                        # as if time passed
        self.assertEqual(self.send()["sent"], 1)
        self.assertEqual(len(api.calls) - before, 2)
        self.assertEqual(q1("SELECT state FROM outbox WHERE to_number = "
                            "'+15145550108'"), "sent")
        listed = stack.ctl_json("outbox", "list", "--state", "sent")
        self.assertIn("+15145550108", [o["to"] for o in listed["outbox"]])

    def test_schedule_doubles_then_fails(self):
        # telehook.8, OUTBOX: attempt n failed, the next one is due
        # 30 s * 2^(n-1) later, at most an hour; after the 8th, failed.
        frm = "5145550118"
        where = "to_number = '+1%s'" % frm
        api.script[:] = [500] * 8
        ok(get(sms_query("what are your hours?", frm=frm, mid=msg_id())))
        for n in range(1, 9):
            q1("UPDATE outbox SET next_attempt_at = now() WHERE " + where)
            self.assertEqual(self.send()["sent"], 0)
            state, attempts, delay = q1(
                "SELECT state || '|' || attempts || '|' || round(extract("
                "epoch FROM next_attempt_at - now())) FROM outbox WHERE " +
                where).split("|")
            self.assertEqual(int(attempts), n)
            if n < 8:
                self.assertEqual(state, "retry")
                want = min(30 * 2 ** (n - 1), 3600)
                self.assertLessEqual(abs(float(delay) - want), 5,
                                     "attempt %d" % n)
            else:
                self.assertEqual(state, "failed")
        q1("UPDATE outbox SET next_attempt_at = now() WHERE " + where)
        self.assertEqual(self.send()["sent"], 0)    # failed is final
        self.assertEqual(q1("SELECT attempts FROM outbox WHERE " + where),
                         "8")

    def test_what_the_api_answers(self):
        # VoIP.ms answers 200 for its own errors: the status says
        frm = "5145550119"
        where = "to_number = '+1%s'" % frm
        ok(get(sms_query("what are your hours?", frm=frm, mid=msg_id())))
        for answer, error in (
                ((200, "<html>maintenance</html>"),
                 "not a VoIP.ms API answer"),
                ((200, '{"sms": "1"}'), "not a VoIP.ms API answer"),
                ((200, '{"status": "invalid_dst"}'), "VoIP.ms: invalid_dst")):
            api.script[:] = [answer]
            q1("UPDATE outbox SET next_attempt_at = now() WHERE " + where)
            self.assertEqual(self.send()["retrying"], 1)
            self.assertEqual(q1("SELECT state || '|' || last_error FROM "
                                "outbox WHERE " + where), "retry|" + error)
        # an id sent as a number is kept as its digits
        api.script[:] = [(200, '{"status": "success", "sms": 123456789}')]
        q1("UPDATE outbox SET next_attempt_at = now() WHERE " + where)
        self.assertEqual(self.send()["sent"], 1)
        self.assertEqual(q1("SELECT state || '|' || provider_message_id "
                            "FROM outbox WHERE " + where), "sent|123456789")

    def test_outside_north_america_fails_at_once(self):
        # VoIP.ms SMS reaches NANP numbers only: no attempt, no retry --
        # whatever the length (+61 2 1234 5678 is as long as a +1 one)
        for frm in ("+442071234567", "+61212345678"):
            before = len(api.calls)
            ok(get(sms_query("what are your hours?", frm=frm,
                             mid=msg_id())))
            out = self.send()
            self.assertEqual((out["sent"], out["failed"]), (0, 1), frm)
            self.assertEqual(len(api.calls), before, frm)
            self.assertEqual(q1("SELECT state || '|' || attempts || '|' || "
                                "last_error FROM outbox WHERE to_number = "
                                "'%s'" % frm),
                             "failed|1|VoIP.ms sends to North American "
                             "numbers only")

    def test_three_replies_then_none(self):
        # telehook.8: no reply to a number that got three in the last ten
        # minutes -- VoIP.ms's replies (queued in the outbox) count too
        frm = "5145550110"
        for _ in range(5):
            ok(get(sms_query("appointment?", frm=frm, mid=msg_id())))
        self.assertEqual(count("outbox", "to_number = '+1%s'" % frm), 3)
        self.assertEqual(count("messages", "from_number = '+1%s' AND "
                               "auto_reply" % frm), 3)

    def test_stop_means_no_reply(self):
        frm = "5145550109"
        ok(get(sms_query("STOP", frm=frm, mid=msg_id())))
        ok(get(sms_query("appointment?", frm=frm, mid=msg_id())))
        self.assertEqual(count("outbox", "to_number = '+1%s'" % frm), 0)

    def test_no_worker_crashed(self):
        stack.assert_no_crash()


class Outage(unittest.TestCase):
    """Last: it stops PostgreSQL."""

    def test_outage_answers_ok_and_loses_nothing(self):
        mid = msg_id()
        stack.stop_postgres()
        try:
            ok(get(sms_query("during the outage", mid=mid)))
            spooled = [f for f in os.listdir(stack.spool)
                       if f.endswith(".spool")]
            self.assertEqual(len(spooled), 1)
            with open(os.path.join(stack.spool, spooled[0]), "rb") as f:
                self.assertNotIn(TOKEN.encode(), f.read())
        finally:
            # idle workers drain by themselves: the drain below is
            # the one counted
            stack.stop_workers()
            stack.start_postgres()
        self.assertEqual(stack.ctl_json("spool", "drain")["replayed"], 1)
        stack.start_workers()
        self.assertEqual(q1("SELECT body FROM messages WHERE message_id = "
                            "'%s'" % mid), "during the outage")


load_tests = in_order(__name__)

if __name__ == "__main__":
    unittest.main(verbosity=2)
