"""
e2e_sender: the sender of telehook(8) "Delivering events" at work, end
to end, against a receiver on loopback (t/harness_delivery.py): a slow
endpoint delays neither the providers' answers nor another endpoint, and
goes on in the queue; endpoint test pings, with and without a sender; a
sender stopped mid-batch leaves the rest queued; events nobody wants
leave the pending list; an endpoint disabled by the operator, then
enabled; bad ids and options; a received message named, not copied; a
batch reads its own events; connections outlive a batch; a removed
endpoint takes its deliveries; events wait while the CPU is contended.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import in_order, wait_for  # noqa: E402
import harness_delivery as hd  # noqa: E402
from harness_delivery import (  # noqa: E402
    Receiver, KeepAlive, verify, start_sender, stop_sender, add,
    answered_call, sms_in, slow_and_fast, cpu_stall, data_of, OTHER_NUMBER)
import e2e_twilio as tw  # noqa: E402

stack = sender = receiver = None
ORG = OTHER = None


def setUpModule():
    global stack, sender, receiver, ORG, OTHER
    stack, receiver, ORG, OTHER = hd.start()
    sender = start_sender()


def tearDownModule():
    hd.stop(sender)


class Sender(unittest.TestCase):

    def test_9_a_slow_endpoint_delays_nobody(self):
        release, slow_id, fast_id = slow_and_fast("/slow", "/fast")
        try:
            took = []
            for i in range(3):
                t0 = time.monotonic()
                r = sms_in("busy %d" % i, "+1555111880%d" % i)
                took.append(time.monotonic() - t0)
                self.assertEqual(r.status, 200)
                if i == 0:
                    # the first is held, and handed to the queue
                    wait_for("the slow endpoint holding it", lambda:
                             release.held() == 1 and stack.psql(
                                 "SELECT count(*) FROM deliveries WHERE "
                                 "endpoint_id = '%s' AND state = "
                                 "'sending'" % slow_id) == "1")
            # the provider's answers did not wait for any endpoint (it
            # holds its requests for 20 s)
            self.assertLess(max(took), 1.0)
            wait_for("the fast endpoint served",
                     lambda: len(receiver.at("/fast")) == 3, timeout=10)
            # while the slow one still holds its first request: every
            # request it got is held, none answered
            got = receiver.at("/slow")
            self.assertGreaterEqual(len(got), 1)
            self.assertEqual(release.held(), len(got))
            self.assertEqual(stack.psql(
                "SELECT count(*) FROM deliveries WHERE endpoint_id = '%s' "
                "AND state = 'delivered'" % slow_id), "0")
        finally:
            release.set()
        # released, the slow endpoint gets its own, in its own time
        wait_for("the slow endpoint served", lambda: stack.psql(
            "SELECT count(*) FROM deliveries WHERE endpoint_id = '%s' AND "
            "state = 'delivered'" % slow_id) == "3", timeout=30)
        text = stack.get("/metrics").text
        for eid in (slow_id, fast_id):
            self.assertIn('telehook_delivery_attempts_total{endpoint="%s",'
                          'result="ok"} 3' % eid, text)
            self.assertIn('telehook_delivery_backlog{endpoint="%s"} 0'
                          % eid, text)
        for eid in (slow_id, fast_id):
            stack.ctl_ok("endpoint", "remove", eid)

    def test_a_endpoint_test_pings(self):
        eid, secret = add(ORG, "/ping")
        out = stack.ctl_ok("endpoint", "test", eid)
        self.assertRegex(out, r"^ping \d+ \(msg_[0-9a-f]{32}\): delivered")
        g = receiver.at("/ping")[0]
        self.assertEqual((g["type"], data_of(g)), ("ping",
                                                   {"endpoint_id": eid}))
        self.assertEqual(verify([(secret, g)]), ["ok"])
        stack.ctl_ok("endpoint", "remove", eid)

    def test_a2_endpoint_test_without_a_sender(self):
        # telehookctl(8): it waits up to 20 s for the sender, then says
        # none delivered the ping and exits 1; the ping stays queued
        global sender
        eid, _ = add(ORG, "/ping-unsent")
        stop_sender(sender)
        try:
            p = stack.ctl("endpoint", "test", eid)
        finally:
            sender = start_sender()
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertRegex(p.stdout, r"^ping \d+ queued; no sender delivered "
                         r"it within 20 s")
        wait_for("the ping delivered once a sender runs",
                 lambda: len(receiver.at("/ping-unsent")) == 1, timeout=20)
        stack.ctl_ok("endpoint", "remove", eid)

    def test_b_stopped_mid_batch_the_rest_waits_queued(self):
        # SIGTERM while the sender is in the middle of a batch: the
        # request in flight is answered and recorded, what was not sent
        # yet is queued, nothing stays pending or is sent twice
        global sender
        arrived = threading.Event()

        def slowish(g, seen):
            arrived.set()
            time.sleep(0.5)
            return 200
        receiver.answers["/stop"] = slowish
        eid, _ = add(ORG, "/stop", "--events",
                     "call.started,call.answered,call.ended")
        stop_sender(sender)
        try:
            call = answered_call("+15551118901")
            sender = start_sender()
            self.assertTrue(arrived.wait(20))
            stop_sender(sender)
            self.assertEqual(stack.psql(
                "SELECT count(*) FROM delivery_pending"), "0")
            self.assertEqual(stack.psql(
                "SELECT string_agg(type || ' ' || state, ', ' ORDER BY id) "
                "FROM deliveries WHERE endpoint_id = '%s'" % eid),
                "call.started delivered, call.answered pending, "
                "call.ended pending")
            self.assertEqual(len(receiver.at("/stop")), 1)
        finally:
            sender = start_sender()
        wait_for("the rest delivered", lambda: stack.psql(
            "SELECT count(*) FROM deliveries WHERE endpoint_id = '%s' AND "
            "state = 'delivered'" % eid) == "3", timeout=20)
        got = receiver.at("/stop")
        self.assertEqual([g["type"] for g in got],
                         ["call.started", "call.answered", "call.ended"])
        self.assertEqual(len({g["id"] for g in got}), 3)
        self.assertEqual({data_of(g)["call_id"] for g in got}, {call})
        stack.ctl_ok("endpoint", "remove", eid)

    def test_c_a_slow_endpoint_goes_on_in_the_queue(self):
        # no answer within a second: the batch is recorded without it,
        # its request goes on as the queue's ("sending"), and its next
        # events go through the queue while the others' are sent
        global sender
        release, slow_id, fast_id = slow_and_fast("/slow2", "/fast2")
        # a request timeout well past that second (this stack's is 2 s)
        conf = stack.conf_variant("slow.conf", 'timeout_s = "2"',
                                  'timeout_s = "8"')

        def rows(eid):
            return stack.psql(
                "SELECT string_agg(state || ' ' || attempts || ' ' || "
                "(claimed_at IS NULL), ', ' ORDER BY id) FROM deliveries "
                "WHERE endpoint_id = '%s'" % eid)
        stop_sender(sender)
        sender = start_sender(conf)
        try:
            sms_in("slow 1", "+15551118951")
            # within the request's timeout: its first attempt, claimed
            wait_for("the slow request handed to the queue", lambda: rows(
                slow_id) == "sending 1 false", timeout=5)
            # recorded while the slow endpoint still holds its request
            self.assertEqual(release.held(), 1)
            self.assertEqual(rows(fast_id), "delivered 1 true")
            for i in (2, 3):
                sms_in("slow %d" % i, "+1555111895%d" % i)
            wait_for("the fast endpoint served", lambda: rows(fast_id) ==
                     ", ".join(["delivered 1 true"] * 3))
            wait_for("the slow endpoint's next events queued", lambda:
                     stack.psql("SELECT count(*) FROM deliveries WHERE "
                                "endpoint_id = '%s'" % slow_id) == "3")
            # it still holds every request it got (another subject's
            # may go to it meanwhile: order is per subject)
            self.assertEqual(release.held(), len(receiver.at("/slow2")))
            self.assertEqual(stack.psql(
                "SELECT count(*) FROM deliveries WHERE endpoint_id = '%s' "
                "AND state = 'delivered'" % slow_id), "0")
        finally:
            release.set()
            stop_sender(sender)
            sender = start_sender()
        wait_for("the slow endpoint served", lambda: stack.psql(
            "SELECT count(*) FROM deliveries WHERE endpoint_id = '%s' AND "
            "state = 'delivered'" % slow_id) == "3", timeout=30)
        got = receiver.at("/slow2")
        self.assertEqual(len(got), 3)
        self.assertEqual(len({g["id"] for g in got}), 3)
        self.assertEqual(sorted(data_of(g)["body"] for g in got),
                         ["slow 1", "slow 2", "slow 3"])
        for eid in (slow_id, fast_id):
            stack.ctl_ok("endpoint", "remove", eid)

    def test_d_events_nobody_wants_leave_the_pending_list(self):
        # the organization has an endpoint, so its call's events are
        # written; nobody wants them, and none stays pending (where it
        # would be taken again with every batch)
        eid, _ = add(ORG, "/smsonly", "--events", "sms.received")
        call = answered_call("+15551118961")
        subject = "call:twilio:%s" % call
        self.assertEqual(stack.psql(
            "SELECT string_agg(type, ' ' ORDER BY id) FROM delivery_events "
            "WHERE subject = '%s'" % subject),
            "call.started call.answered call.ended")
        wait_for("off delivery_pending", lambda: stack.psql(
            "SELECT count(*) FROM delivery_pending p JOIN delivery_events "
            "v ON v.id = p.event_id WHERE v.subject = '%s'" % subject)
            == "0")
        self.assertEqual(stack.psql("SELECT count(*) FROM deliveries "
                                    "WHERE subject = '%s'" % subject), "0")
        self.assertEqual(receiver.at("/smsonly"), [])
        stack.ctl_ok("endpoint", "remove", eid)

    def test_e_disabled_by_the_operator_then_enabled(self):
        # disabled: its waiting delivery waits, no new one is made for
        # it; enabled: the waiting one goes, with its webhook-id.  One
        # pass of the sender at a time ("deliveries send"), none beside.
        global sender
        receiver.answers["/toggle"] = 500
        eid, _ = add(ORG, "/toggle", "--events", "sms.received")
        other, _ = add(ORG, "/beside", "--events", "sms.received")

        def mine():
            return stack.psql(
                "SELECT string_agg(state, ' ' ORDER BY id) FROM deliveries "
                "WHERE endpoint_id = '%s'" % eid)

        def due_and_send():
            stack.psql("UPDATE deliveries SET next_attempt_at = now() "
                       "WHERE endpoint_id = '%s'" % eid)
            stack.ctl_ok("deliveries", "send")
        stop_sender(sender)
        try:
            sms_in("first", "+15551118971")
            stack.ctl_ok("deliveries", "send")
            self.assertEqual(mine(), "retry")
            self.assertEqual(stack.ctl_json("endpoint", "disable", eid),
                             {"id": eid})
            sms_in("while off", "+15551118972")
            due_and_send()
            self.assertEqual([data_of(g)["body"] for g in receiver.at(
                "/beside")], ["first", "while off"])
            self.assertEqual(mine(), "retry")
            self.assertEqual(len(receiver.at("/toggle")), 1)
            receiver.answers["/toggle"] = 200
            self.assertEqual(stack.ctl_ok("endpoint", "enable", eid),
                             "enabled %s\n" % eid)
            due_and_send()
            self.assertEqual(mine(), "delivered")
        finally:
            sender = start_sender()
        got = receiver.at("/toggle")
        self.assertEqual([data_of(g)["body"] for g in got],
                         ["first", "first"])
        self.assertEqual(got[0]["id"], got[1]["id"])
        self.assertEqual([e["enabled"] for e in stack.ctl_json(
            "endpoint", "list", ORG)["endpoints"] if e["id"] == eid],
            [True])
        # the rotated secret, as text, once
        out = stack.ctl_ok("endpoint", "rotate-secret", eid)
        self.assertRegex(out, r"^secret whsec_[A-Za-z0-9+/=]{32,}\n")
        for e in (eid, other):
            stack.ctl_ok("endpoint", "remove", e)

    def test_f_bad_ids_and_options(self):
        unknown = "00000000-0000-4000-8000-000000000000"
        before = stack.psql("SELECT count(*) || ' ' || coalesce(max(id), 0) "
                            "|| ' ' || count(*) FILTER (WHERE state = "
                            "'pending') FROM deliveries")
        for args, code, why in (
                (("endpoint", "enable", "nope"), 65,
                 "nope is not an endpoint id"),
                (("endpoint", "enable", unknown), 65,
                 "no endpoint " + unknown),
                (("endpoint", "rotate-secret", "nope"), 65,
                 "is not an endpoint id"),
                (("endpoint", "rotate-secret", unknown), 65, "no endpoint"),
                (("endpoint", "test", "nope"), 65, "is not an endpoint id"),
                (("endpoint", "test", unknown), 65, "no endpoint"),
                (("deliveries", "list", "--endpoint", "nope"), 65,
                 "--endpoint nope is not an endpoint id"),
                (("deliveries", "list", "--state", "lost"), 65,
                 "--state must be pending, sending, retry, delivered or "
                 "dead"),
                (("deliveries", "list", "--limit", "0"), 65,
                 "--limit must be 1 to 100000"),
                (("deliveries", "retry"), 64,
                 "deliveries retry ID, or --endpoint ID --since TIME"),
                (("deliveries", "retry", "1", "--endpoint", unknown), 64,
                 "deliveries retry ID, or --endpoint ID --since TIME"),
                (("deliveries", "retry", "--endpoint", "nope", "--since",
                  "2026-01-01"), 65, "--endpoint nope is not an endpoint"),
                (("deliveries", "retry", "--endpoint", unknown, "--since",
                  "last tuesday"), 65, "--since last tuesday is not a "
                 "time")):
            p = stack.ctl(*args)
            self.assertEqual(p.returncode, code, (args, p.stderr))
            self.assertIn(why, p.stderr, args)
            self.assertEqual(len(p.stderr.strip().splitlines()), 1, args)
        self.assertEqual(stack.psql(
            "SELECT count(*) || ' ' || coalesce(max(id), 0) || ' ' || "
            "count(*) FILTER (WHERE state = 'pending') FROM deliveries"),
            before)

    def test_f2_endpoint_commands_take_one_id_and_no_option(self):
        # telehookctl(8): "endpoint disable|enable|remove|rotate-secret|
        # test ID", exit 64 for a usage error; nothing is changed
        eid, _ = add(ORG, "/one-id")
        state = ("SELECT enabled || ' ' || secret_sealed FROM endpoints "
                 "WHERE id = '%s'" % eid)
        before = stack.psql(state)
        self.assertTrue(before)
        for cmd in ("disable", "enable", "remove", "rotate-secret", "test"):
            for args in ((eid, "--force"), ("--force", eid), (), (eid, eid)):
                p = stack.ctl("endpoint", cmd, *args)
                self.assertEqual(p.returncode, 64, (cmd, args, p.stderr))
                self.assertRegex(p.stderr, r"unknown or incomplete option "
                                 r"--force|usage: telehookctl endpoint %s "
                                 r"ID" % cmd, (cmd, args))
                self.assertEqual(len(p.stderr.strip().splitlines()), 1)
                self.assertEqual(stack.psql(state), before, (cmd, args))
        stack.ctl_ok("endpoint", "remove", eid)

    def test_g_a_received_message_is_named_not_copied(self):
        # the event of an incoming message holds its id, not its text;
        # what is sent is the message as the API shows it, stamped when
        # it was stored, and never another organization's.  Answered by
        # a rule: marked auto-replied to, after it was stored, in the
        # same transaction (a copy taken when it was stored said not)
        eid, secret = add(ORG, "/named", "--events", "sms.received")
        rule = stack.ctl_ok("reply", "add", ORG, "--keywords", "nine",
                            "--text", "See you then.").strip()
        tw.post("/webhooks/twilio/sms/incoming", tw.sms_params(
            "other clinic words", to=OTHER_NUMBER, frm="+15551118981"))
        sms_in("see you at nine", "+15551118982")
        wait_for("the message delivered", lambda: len(receiver.at(
            "/named")) == 1)
        # (the newest event: the other organization has no endpoint;
        # looked up by id, as test_h counts scans of the table)
        row = stack.psql(
            "SELECT v.type, v.body IS NULL, v.message_ref = (SELECT id FROM "
            "messages WHERE organization_id = '%s' AND from_number = "
            "'+15551118982') FROM delivery_events v WHERE v.id = (SELECT "
            "max(id) FROM delivery_events)" % ORG)
        self.assertEqual(row, "sms.received|t|t")
        got = receiver.at("/named")[0]
        self.assertEqual(verify([(secret, got)]), ["ok"])
        token = stack.ctl_ok("token", "create", ORG).strip()
        api = stack.get("/api/v1/organizations/%s/conversations/"
                        "+15551118982" % ORG, {"Authorization": "Bearer " +
                                               token}).json()
        msg = [m for m in api["messages"] if m["direction"] == "inbound"]
        env = json.loads(got["body"])
        self.assertEqual((env["type"], env["timestamp"], env["data"]),
                         ("sms.received", msg[0]["created_at"], msg[0]))
        self.assertEqual((env["data"]["body"], env["data"]["auto_reply"]),
                         ("see you at nine", True))
        stack.ctl_ok("reply", "remove", rule)
        # an event of this organization naming the other's message
        # (which no trigger writes) sends no word of it
        stack.psql(
            "WITH v AS (INSERT INTO delivery_events (organization_id, "
            "type, subject, message_ref) SELECT '%s', 'sms.received', "
            "'message:twilio:x', id FROM messages WHERE organization_id = "
            "'%s' AND from_number = '+15551118981' RETURNING id) INSERT "
            "INTO delivery_pending SELECT id FROM v" % (ORG, OTHER))
        wait_for("the forged event delivered", lambda: len(receiver.at(
            "/named")) == 2)
        forged = receiver.at("/named")[1]
        self.assertNotIn("other clinic words", forged["body"])
        self.assertEqual(json.loads(forged["body"])["data"], None)
        stack.ctl_ok("endpoint", "remove", eid)

    def test_h_a_batch_reads_its_events_not_every_event_kept(self):
        # 50,000 events kept, the newest 5,000 pending (of an
        # organization nobody listens to): each batch reads its own
        # events, by id, not every event kept (by a scan of the table
        # or of its index from the oldest)
        global sender

        def read():
            return int(stack.psql(
                "SELECT seq_tup_read + coalesce(idx_tup_fetch, 0) FROM "
                "pg_stat_user_tables WHERE relname = 'delivery_events'"))

        def deleted():
            return int(stack.psql(
                "SELECT n_tup_del FROM pg_stat_user_tables WHERE relname "
                "= 'delivery_pending'"))
        stop_sender(sender)
        try:
            stack.psql(
                "WITH v AS (INSERT INTO delivery_events (organization_id, "
                "type, subject, body) SELECT '%s', 'sms.sent', "
                "'message:h:' || g, '{}' FROM generate_series(1, 50000) g "
                "RETURNING id) INSERT INTO delivery_pending SELECT id FROM "
                "v ORDER BY id DESC LIMIT 5000" % OTHER)
            stack.psql("ANALYZE delivery_events")
            stack.psql("ANALYZE delivery_pending")
            before, gone = read(), deleted()
        finally:
            sender = start_sender()
        # the sender's statistics reach the server within a few seconds
        wait_for("the pending events taken", lambda: deleted() >=
                 gone + 5000, timeout=60)
        self.assertLess(read() - before, 2 * 5000)

    def test_i_connections_outlive_a_batch(self):
        # an endpoint that keeps connections open (HTTP/1.1) gets a
        # batch of 20 at once over 20 connections, then another batch
        # of 20 over the same ones: for an https endpoint a new one is
        # a TLS handshake (curl's cache kept four per transfer still
        # running, so a batch ending closed most)
        ka = Receiver(KeepAlive)
        try:
            def slow(g, seen):
                # all 20 of a batch at once, answered 30 ms apart: curl
                # shrinks a default cache as each transfer is removed,
                # so 20 answers read in one wakeup would close nothing
                # and hide that (dev/mutate saw it pass once)
                n = len(ka.at("/ka")) - 1
                time.sleep(0.1 + 0.03 * (n % 20))
                return 200
            ka.answers["/ka"] = slow
            eid = stack.ctl_json("endpoint", "add", ORG, ka.url("/ka"),
                                 "--events", "sms.received")["id"]
            for b in range(2):
                # the sender stopped while they come, not ended: its
                # connections are what is looked at
                sender.send_signal(signal.SIGSTOP)
                try:
                    for i in range(20):
                        sms_in("batch %d" % b, "+155511190%02d" % i)
                finally:
                    sender.send_signal(signal.SIGCONT)
                wait_for("the batch delivered", lambda: len(ka.at(
                    "/ka")) == 20 * (b + 1), timeout=30)
            got = ka.at("/ka")
            first = set(g["peer"] for g in got[:20])
            second = set(g["peer"] for g in got[20:])
            self.assertEqual(len(first), 20)
            self.assertEqual(second - first, set())
            stack.ctl_ok("endpoint", "remove", eid)
        finally:
            ka.shutdown()
            ka.server_close()

    def test_j_a_removed_endpoint_takes_its_deliveries(self):
        # no foreign key (sql/014): the removal takes the rows with it
        global sender
        eid, _ = add(ORG, "/gone-later", "--events", "sms.received")
        sms_in("before the removal", "+15551119100")
        wait_for("delivered", lambda: stack.psql(
            "SELECT count(*) FROM deliveries WHERE endpoint_id = '%s' AND "
            "state = 'delivered'" % eid) == "1")
        stack.ctl_ok("endpoint", "remove", eid)
        self.assertEqual(stack.psql(
            "SELECT count(*) FROM deliveries WHERE endpoint_id = '%s'"
            % eid), "0")
        # removed while its batch is in flight: the batch's statement
        # waits for the removal, writes nothing of it, and the sender
        # goes on (with the key it failed, the sender exited, and the
        # batch went again to every other endpoint)
        eid, _ = add(ORG, "/gone-now", "--events", "sms.received")
        other, _ = add(ORG, "/stays", "--events", "sms.received")
        rm = subprocess.Popen(
            stack.psql_command() + ["-AtXq", "-v", "ON_ERROR_STOP=1"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, text=True,
            env=dict(os.environ, PGAPPNAME="removal"))
        try:
            rm.stdin.write("BEGIN;\nDELETE FROM endpoints WHERE id = "
                           "'%s';\n" % eid)
            rm.stdin.flush()
            wait_for("the removal begun", lambda: stack.psql(
                "SELECT state FROM pg_stat_activity WHERE "
                "application_name = 'removal'") == "idle in transaction")
            sms_in("during the removal", "+15551119101")
            wait_for("the batch waiting for the removal", lambda: len(
                receiver.at("/gone-now")) == 1 and stack.psql(
                    "SELECT count(*) FROM pg_stat_activity WHERE "
                    "wait_event_type = 'Lock' AND query LIKE "
                    "'%INSERT INTO deliveries%'") == "1")
            rm.stdin.write("COMMIT;\n")
            rm.stdin.close()
            self.assertEqual(rm.wait(timeout=30), 0)
            wait_for("the batch recorded", lambda: stack.psql(
                "SELECT count(*) FROM deliveries WHERE endpoint_id = '%s'"
                % other) == "1")
            self.assertEqual(stack.psql(
                "SELECT count(*) FROM deliveries WHERE endpoint_id = '%s'"
                % eid), "0")
            self.assertIsNone(sender.poll())
            self.assertEqual(len(receiver.at("/stays")), 1)
        finally:
            if rm.poll() is None:
                rm.kill()
                rm.wait()
            if sender.poll() is not None:
                sender = start_sender()
        stack.ctl_ok("endpoint", "remove", other)

    def test_k_events_wait_while_the_cpu_is_contended(self):
        # DESIGN 14, a delivery never delays a provider's answer: while
        # some task waits for a CPU half the time (/proc/pressure/cpu)
        # the sender leaves the webhooks' events pending, up to
        # [delivery] defer_s; uncontended, it does not wait
        global sender
        if cpu_stall(0.1) is None:
            self.skipTest("no /proc/pressure/cpu (a kernel with psi=0)")
        eid, _ = add(ORG, "/contended", "--events", "sms.received")
        burners = []
        stop_sender(sender)
        try:
            patient = stack.conf_variant("patient.conf", 'defer_s = "0"',
                                         'defer_s = "3600"')
            sender = start_sender(patient)
            sms_in("calm", "+15551119201")
            # delivered as soon as a reading finds the CPU uncontended:
            # only two minutes of other tests' load without a tenth of a
            # second's pause could hold it
            wait_for("delivered, the CPU uncontended", lambda: len(
                receiver.at("/contended")) == 1, timeout=120)
            stop_sender(sender)

            brief = stack.conf_variant("brief.conf", 'defer_s = "0"',
                                       'defer_s = "3"')
            # a task waiting for each CPU: "some" is their share of the
            # CPUs, 1 at most
            for i in range(2 * (os.cpu_count() or 1)):
                burners.append(subprocess.Popen(
                    [sys.executable, "-c", "while True: pass"]))
            wait_for("the CPU contended", lambda: cpu_stall(0.2) > 0.9)
            sender = start_sender(brief)
            sms_in("busy", "+15551119202")
            wait_for("delivered anyway", lambda: len(
                receiver.at("/contended")) == 2, timeout=30)
            lag = float(stack.psql(
                "SELECT extract(epoch FROM d.delivered_at - v.created_at) "
                "FROM deliveries d JOIN delivery_events v ON v.id = "
                "d.event_id WHERE d.endpoint_id = '%s' ORDER BY d.id DESC "
                "LIMIT 1" % eid))
            # not before defer_s, and not much after
            self.assertGreaterEqual(lag, 3.0)
            self.assertLess(lag, 3.0 + 10)
            for p in burners:
                p.kill()
                p.wait()
            stop_sender(sender)
            with open(stack.path("sender.log")) as f:
                said = [ln for ln in f if "sender stopped" in ln][-1]
            self.assertRegex(said, r"waited ([2-9]|1[0-3]) s while the "
                             r"CPU was contended")
        finally:
            for p in burners:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            if sender.poll() is not None:
                sender = start_sender()
        stack.ctl_ok("endpoint", "remove", eid)


load_tests = in_order(__name__)

if __name__ == "__main__":
    unittest.main(verbosity=2)
