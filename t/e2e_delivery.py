"""
e2e_delivery: delivering each organization's events to its own systems
(telehook(8), "Delivering events"), end to end, the endpoints and what
they answer: signed provider webhooks in, the sender ("telehookctl
deliveries run") out to a receiver on loopback that keeps every request,
each signature then checked by the standardwebhooks package from the npm
registry.  Every event type once per subscribed endpoint and none to
another organization's; 500 then 200 redelivers the same webhook-id and
then nothing; a redirect is a failed attempt; the retry schedule step by
step; 410 disables; a delivery is dead after the schedule and the
operator can retry it; order per call holds across retries; during a
rotation either secret verifies; a private address is refused unless
allowed.  The sender at work (batches, stops, slow endpoints) is
e2e_sender's.
"""

import base64
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import in_order, wait_for  # noqa: E402
import harness_delivery as hd  # noqa: E402
from harness_delivery import (  # noqa: E402
    verify, start_sender, stop_sender, add, answered_call, missed_call,
    sms_in, data_of, NUMBER, OTHER_NUMBER, TYPES)
import e2e_twilio as tw  # noqa: E402
import e2e_retell as rt  # noqa: E402

stack = sender = receiver = None
ORG = OTHER = None


def setUpModule():
    global stack, sender, receiver, ORG, OTHER
    stack, receiver, ORG, OTHER = hd.start()
    sender = start_sender()


def tearDownModule():
    hd.stop(sender)


class Delivery(unittest.TestCase):

    def test_1_endpoint_add_and_bad_input(self):
        eid, secret = add(ORG, "/first", "--description", "CRM")
        self.assertTrue(secret.startswith("whsec_"))
        self.assertGreaterEqual(len(base64.b64decode(secret[6:])), 24)
        listed = stack.ctl_json("endpoint", "list", ORG)["endpoints"]
        self.assertEqual([(e["id"], e["url"], e["events"], e["enabled"],
                           e["description"]) for e in listed],
                         [(eid, receiver.url("/first"), "all", True,
                           "CRM")])
        # shown once: not in the list, not in the database in clear
        table = stack.ctl_ok("endpoint", "list", ORG)
        self.assertNotIn(secret, table)
        # telehookctl.8: a table says yes or no for true or false
        head, row = table.splitlines()[:2]
        at = head.index("ENABLED")
        self.assertEqual(row[at:].split()[0], "yes", table)
        self.assertNotIn(secret[6:], stack.psql(
            "SELECT secret_sealed FROM endpoints WHERE id = '%s'" % eid))
        for args, code, why in (
                (("ftp://x.example/",), 65, "http:// or https://"),
                (("https://user:pw@x.example/",), 65, "credentials"),
                (("https:///path",), 65, "no host"),
                (("https://x.example/", "--events", "call.started,faxes"),
                 65, "faxes is not an event type")):
            p = stack.ctl("endpoint", "add", ORG, *args)
            self.assertEqual(p.returncode, code, args)
            self.assertIn(why, p.stderr)
        self.assertEqual(stack.ctl("endpoint", "disable", "nope").returncode,
                         65)
        stack.ctl_ok("endpoint", "remove", eid)
        self.assertEqual(stack.ctl_json("endpoint", "list", ORG),
                         {"endpoints": []})

    def test_2_every_type_once_per_subscribed_endpoint(self):
        all_id, all_secret = add(ORG, "/all")
        sms_id, sms_secret = add(ORG, "/sms", "--events", "sms.received")
        other_id, _ = add(OTHER, "/other")
        answered = answered_call("+15551118101")
        missed, st = missed_call("+15551118102")
        # a voicemail
        c = tw.call_params(to=NUMBER, frm="+15551118103")
        tw.post("/webhooks/twilio/voice/incoming", c)
        tw.post("/webhooks/twilio/recording/status?kind=voicemail", {
            "AccountSid": "AC" + "1" * 32, "CallSid": c["CallSid"],
            "RecordingSid": tw.sid("RE"), "RecordingUrl":
            "https://api.twilio.com/x", "RecordingStatus": "completed",
            "RecordingDuration": "5"})
        # an analyzed AI call, with a campaign contact
        camp = stack.ctl_ok("campaign", "add", ORG, "Recall").strip()
        csv = stack.path("delivery.csv")
        with open(csv, "w") as f:
            f.write("+15556690001\n")
        contact = stack.ctl_ok("campaign", "import", camp, csv).split()[0]
        cid = rt.call_id()
        e = rt.ended(cid, direction="outbound", frm=NUMBER,
                     to="+15556690001", metadata={"campaign_id": camp,
                                                  "contact_id": contact})
        rt.event("call_ended", e)
        rt.event("call_analyzed", dict(e, call_analysis=rt.analysis()))
        # SMS: one in, one out delivered, one out failed
        sms = tw.sms_params("hello", to=NUMBER, frm="+15551118104")
        tw.post("/webhooks/twilio/sms/incoming", sms)
        for sid, statuses in ((tw.sid("SM"), ("sent", "delivered")),
                              (tw.sid("SM"), ("sent", "failed"))):
            for s in statuses:
                tw.post("/webhooks/twilio/sms/status", {
                    "MessageSid": sid, "From": NUMBER,
                    "To": "+15551118105", "MessageStatus": s,
                    "AccountSid": "AC" + "1" * 32})
        # the other organization's own traffic
        missed_call("+15551118106", to=OTHER_NUMBER)
        # redelivered by the provider, and replayed: nothing new
        tw.post("/webhooks/twilio/voice/status", st)
        tw.post("/webhooks/twilio/sms/incoming", sms)
        wait_for("the events fanned out", lambda: stack.psql(
            "SELECT count(*) FROM delivery_pending") == "0")
        want = int(stack.psql("SELECT count(*) FROM deliveries"))
        wait_for("every delivery", lambda: int(stack.psql(
            "SELECT count(*) FROM deliveries WHERE state = 'delivered'"))
            == want)
        got = receiver.at("/all")
        types = [g["type"] for g in got]
        self.assertEqual(sorted(set(types)), sorted(TYPES))
        # once each: one request per webhook-id, no failures to retry
        self.assertEqual(len({g["id"] for g in got}), len(got))
        self.assertEqual(types.count("sms.received"), 1)
        self.assertEqual([g["type"] for g in receiver.at("/sms")],
                         ["sms.received"])
        # nothing of this organization's to the other's endpoint
        other = receiver.at("/other")
        self.assertEqual(sorted(g["type"] for g in other),
                         ["call.ended", "call.missed", "call.started"])
        self.assertEqual({data_of(g)["to"] for g in other}, {OTHER_NUMBER})
        self.assertNotIn(NUMBER, json.dumps([g["body"] for g in other]))
        # every signature, by the independent library
        self.assertEqual(verify([(all_secret, g) for g in got] +
                                [(sms_secret, g) for g in
                                 receiver.at("/sms")]),
                         ["ok"] * (len(got) + 1))
        # and a wrong secret fails there: the check can fail
        self.assertNotEqual(verify([(sms_secret, got[0])]), ["ok"])
        # the envelope, and the data as the API shows it
        env = json.loads(got[0]["body"])
        self.assertEqual(sorted(env), ["data", "timestamp", "type"])
        token = stack.ctl_ok("token", "create", ORG).strip()
        api = stack.get("/api/v1/organizations/%s/calls/%s" % (
            ORG, answered), {"Authorization": "Bearer " + token}).json()
        last = [g for g in got if g["type"] == "call.ended" and
                data_of(g)["call_id"] == answered][0]
        self.assertEqual(data_of(last), api)
        # per call, in the order telehook learned them: started first;
        # the outcome and the end as the provider reported them
        for call, outcome in ((answered, "call.answered"),
                              (missed, "call.missed")):
            seq = [g["type"] for g in got if g["type"].startswith("call.")
                   and data_of(g)["call_id"] == call]
            self.assertEqual(seq[0], "call.started")
            self.assertEqual(sorted(seq[1:]), sorted([outcome,
                                                      "call.ended"]))
        for eid in (all_id, sms_id, other_id):
            stack.ctl_ok("endpoint", "remove", eid)

    def test_3_500_then_200(self):
        receiver.answers["/flaky"] = lambda g, seen: 500 if seen == 1 else 200
        eid, secret = add(ORG, "/flaky", "--events", "sms.received")
        sms_in("again", "+15551118201")
        wait_for("delivered", lambda: stack.psql(
            "SELECT state FROM deliveries WHERE endpoint_id = '%s'" % eid)
            == "delivered")
        got = receiver.at("/flaky")
        self.assertEqual(len(got), 2)
        self.assertEqual(got[0]["id"], got[1]["id"])
        self.assertEqual(verify([(secret, g) for g in got]), ["ok", "ok"])
        self.assertEqual(stack.psql(
            "SELECT attempts || ' ' || last_status FROM deliveries WHERE "
            "endpoint_id = '%s'" % eid), "2 200")
        # nothing more: one more pass of a sender finds nothing due
        stack.ctl_ok("deliveries", "send")
        self.assertEqual(len(receiver.at("/flaky")), 2)
        stack.ctl_ok("endpoint", "remove", eid)

    def test_3b_a_redirect_is_a_failed_attempt(self):
        # DESIGN 14: only a 2xx delivers; a 3xx is a failed attempt and
        # is never followed, whatever its code
        codes = (301, 302, 303, 307, 308)
        ids = {}
        for code in codes:
            receiver.answers["/moved%d" % code] = (
                code, {"Location": receiver.url("/moved-to%d" % code)})
            ids[code], _ = add(ORG, "/moved%d" % code, "--events",
                               "sms.received")
        sms_in("moved", "+15551118211")

        def state(code):
            return stack.psql(
                "SELECT state || ' ' || attempts || ' ' || last_status || "
                "' ' || last_error FROM deliveries WHERE endpoint_id = '%s'"
                % ids[code])
        # the schedule (1s,1s,1s): four attempts, then dead, each answered
        for code in codes:
            wait_for("dead after %d" % code, lambda: state(code).startswith(
                "dead "), timeout=30)
            self.assertEqual(state(code), "dead 4 %d answered %d" % (
                code, code))
            self.assertEqual(len(receiver.at("/moved%d" % code)), 4)
            self.assertEqual(receiver.at("/moved-to%d" % code), [])
        for code in codes:
            stack.ctl_ok("endpoint", "remove", ids[code])

    def test_3c_the_schedule_step_by_step(self):
        # retry_schedule is the waits between attempts, in its order,
        # each jittered by up to 20% (telehook.conf(5)): 1 s, then 4 s,
        # then 2 s, then dead
        global sender
        conf = stack.conf_variant("schedule.conf",
                                  'retry_schedule = "1s,1s,1s"',
                                  'retry_schedule = "1s,4s,2s"')
        stop_sender(sender)
        sender = start_sender(conf)
        try:
            receiver.answers["/steps"] = 503
            eid, _ = add(ORG, "/steps", "--events", "sms.received")
            sms_in("steps", "+15551118221")
            wait_for("dead", lambda: stack.psql(
                "SELECT state FROM deliveries WHERE endpoint_id = '%s'"
                % eid) == "dead", timeout=30)
        finally:
            stop_sender(sender)
            sender = start_sender()
        at = [g["at"] for g in receiver.at("/steps")]
        self.assertEqual(len(at), 4)
        gaps = [b - a for a, b in zip(at, at[1:])]
        for gap, wait in zip(gaps, (1, 4, 2)):
            self.assertGreaterEqual(gap, 0.8 * wait, gaps)
        self.assertGreater(gaps[1], gaps[2], gaps)
        self.assertGreater(gaps[2], gaps[0], gaps)
        stack.ctl_ok("endpoint", "remove", eid)

    def test_4_410_disables(self):
        receiver.answers["/gone"] = 410
        eid, _ = add(ORG, "/gone", "--events", "sms.received")
        sms_in("bye", "+15551118301")
        def mine():
            return [e for e in stack.ctl_json("endpoint", "list", ORG)[
                "endpoints"] if e["id"] == eid][0]
        wait_for("disabled", lambda: mine()["enabled"] is False)
        e = mine()
        self.assertIn("410", e["disabled_reason"])
        self.assertEqual((e["dead"], e["failed"]), (1, 1))
        # and its operator is told, at [server] log_level's default
        def told():
            with open(stack.path("sender.log")) as f:
                return "endpoint %s answered 410 Gone: disabled" % eid \
                    in f.read()
        wait_for("the sender's log", told, timeout=10)
        sms_in("again", "+15551118302")
        stack.ctl_ok("deliveries", "send")
        self.assertEqual(len(receiver.at("/gone")), 1)
        stack.ctl_ok("endpoint", "remove", eid)

    def test_5_dead_after_the_schedule_then_retried(self):
        receiver.answers["/down"] = 503
        eid, secret = add(ORG, "/down", "--events", "sms.received")
        sms_in("anyone?", "+15551118401")
        # retry_schedule 1s,1s,1s: four attempts, then dead
        wait_for("dead", lambda: stack.psql(
            "SELECT state FROM deliveries WHERE endpoint_id = '%s'" % eid)
            == "dead", timeout=30)
        got = receiver.at("/down")
        self.assertEqual(len(got), 4)
        self.assertEqual(len({g["id"] for g in got}), 1)
        gaps = [b["at"] - a["at"] for a, b in zip(got, got[1:])]
        self.assertTrue(all(0.7 < g < 3 for g in gaps), gaps)
        dead = stack.ctl_json("deliveries", "list", "--endpoint", eid,
                              "--state", "dead")["deliveries"]
        self.assertEqual([(d["attempts"], d["last_status"])
                          for d in dead], [(4, 503)])
        self.assertIn('telehook_delivery_dead{endpoint="%s"} 1' % eid,
                      stack.get("/metrics").text)
        receiver.answers["/down"] = 200
        stack.ctl_ok("deliveries", "retry", str(dead[0]["id"]))
        wait_for("retried", lambda: len(receiver.at("/down")) == 5)
        again = receiver.at("/down")[-1]
        self.assertEqual(again["id"], got[0]["id"])
        self.assertEqual(verify([(secret, again)]), ["ok"])
        wait_for("delivered", lambda: stack.psql(
            "SELECT state FROM deliveries WHERE endpoint_id = '%s'" % eid)
            == "delivered")
        # retry by endpoint and time: everything since, again
        out = stack.ctl_json("deliveries", "retry", "--endpoint", eid,
                             "--since", "2000-01-01")
        self.assertEqual(out["retried"], 1)
        wait_for("sent again", lambda: len(receiver.at("/down")) == 6)
        self.assertEqual(stack.ctl("deliveries", "retry", "999999999")
                         .returncode, 65)
        stack.ctl_ok("endpoint", "remove", eid)

    def test_6_order_per_call_across_retries(self):
        # the first attempt of each call.started fails: the call's later
        # events wait behind it
        def first_start_fails(g, seen):
            return 500 if g["type"] == "call.started" and seen == 1 else 200
        receiver.answers["/order"] = first_start_fails
        eid, _ = add(ORG, "/order")
        calls = []
        for i in range(3):
            c = tw.call_params(to=NUMBER, frm="+1555111850%d" % i)
            tw.post("/webhooks/twilio/voice/incoming", c)
            calls.append(c["CallSid"])
        # each call.started failed once and waits in the queue for its
        # retry (1 s): the call's later events come in a later batch of
        # the sender's and must wait behind it
        wait_for("every call.started waiting to be retried",
                 lambda: stack.psql(
                     "SELECT count(*) FROM deliveries WHERE endpoint_id = "
                     "'%s' AND type = 'call.started' AND state = 'retry'"
                     % eid) == "3", interval=0.02)
        for call in calls:
            tw.post("/webhooks/twilio/voice/gather?step=dial",
                    tw.call_params(call=call, status="in-progress",
                                   DialCallStatus="completed"))
            tw.post("/webhooks/twilio/voice/status", tw.call_params(
                call=call, status="completed", SequenceNumber="1",
                CallDuration="42", CallbackSource="call-progress-events"))
        # three events a call, each delivered
        wait_for("all delivered", lambda: stack.psql(
            "SELECT count(*) FILTER (WHERE state = 'delivered') FROM "
            "deliveries WHERE endpoint_id = '%s'" % eid) == "9")
        got = receiver.at("/order")
        for call in calls:
            seq = [g["type"] for g in got
                   if data_of(g)["call_id"] == call]
            self.assertEqual(seq, ["call.started", "call.started",
                                   "call.answered", "call.ended"])
        stack.ctl_ok("endpoint", "remove", eid)

    def test_7_rotation_either_secret_verifies(self):
        eid, old = add(ORG, "/rotate", "--events", "sms.received")
        new = stack.ctl_json("endpoint", "rotate-secret", eid)["secret"]
        self.assertNotEqual(new, old)
        sms_in("rotated", "+15551118601")
        wait_for("delivered", lambda: len(receiver.at("/rotate")) == 1)
        g = receiver.at("/rotate")[0]
        self.assertEqual(len(g["headers"]["webhook-signature"].split()), 2)
        self.assertEqual(verify([(old, g), (new, g)]), ["ok", "ok"])
        # after the overlap only the new secret signs
        stack.psql("UPDATE endpoints SET previous_until = now() - "
                   "interval '1 second' WHERE id = '%s'" % eid)
        sms_in("later", "+15551118602")
        wait_for("delivered", lambda: len(receiver.at("/rotate")) == 2)
        g = receiver.at("/rotate")[1]
        self.assertEqual(len(g["headers"]["webhook-signature"].split()), 1)
        self.assertEqual(verify([(new, g)]), ["ok"])
        self.assertNotEqual(verify([(old, g)]), ["ok"])
        stack.ctl_ok("endpoint", "remove", eid)

    def test_8_private_addresses_refused_unless_allowed(self):
        global sender
        stop_sender(sender)
        strict = stack.conf_variant("strict.conf", 'allow_private = "yes"',
                                    'allow_private = "no"')
        try:
            eid, _ = add(ORG, "/private", "--events", "sms.received")
            sms_in("ssrf", "+15551118701")
            p = subprocess.run([stack.telehookctl, "-c", strict, "--json",
                                "deliveries", "send"], capture_output=True,
                               text=True, env=dict(
                                   os.environ, TELEHOOK_SQLDIR=stack.sqldir))
            self.assertEqual(json.loads(p.stdout)["delivered"], 0)
            self.assertEqual(receiver.at("/private"), [])
            self.assertIn("not a public address", stack.psql(
                "SELECT last_error FROM deliveries WHERE endpoint_id = "
                "'%s'" % eid))
        finally:
            sender = start_sender()
        wait_for("allowed again", lambda: len(receiver.at("/private")) == 1)
        stack.ctl_ok("endpoint", "remove", eid)


load_tests = in_order(__name__)

if __name__ == "__main__":
    unittest.main(verbosity=2)
