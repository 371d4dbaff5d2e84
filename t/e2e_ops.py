"""
e2e_ops: running telehook for years: /metrics adds up a scripted burst
over several workers; rejections are recorded with their cause and
organization; events can be listed, shown and assigned; prune removes
and redacts as documented and keeps the KPIs; "telehookctl send" makes
a signed request of every kind, and a running telehook takes them all.
"""

import json
import os
import re
import sys
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SRCDIR, Stack, wait_for, in_order  # noqa: E402
import e2e_twilio as tw  # noqa: E402

stack = None
org = None


def setUpModule():
    global stack, org
    stack = Stack(workers=4, rate_limit=100000, extra_conf={
        "twilio": {"auth_token": tw.TOKEN},
        "retell": {"api_key": "ops-retell-key"},
        "voipms": {"url_token": "ops-voipms-token"},
        "server": {"log_level": "info"}}).start()
    tw.stack = stack
    org = stack.ctl_ok("org", "add", "Ops Clinic").strip()
    stack.ctl_ok("org", "set", org, "hours=24/7")
    stack.ctl_ok("number", "add", org, "+15550070000")
    stack.ctl_ok("user", "add", org, "ops@ops.example")


def tearDownModule():
    if stack is not None:
        stack.stop()


def scrape():
    """The counters, as {(name, labels): value}."""
    r = stack.get("/metrics")
    assert r.status == 200, r
    assert r.headers["content-type"].startswith("text/plain"), r.headers
    out = {}
    for line in r.text.splitlines():
        if line.startswith("#") or not line:
            continue
        m = re.match(r"^([a-z_]+)(\{(.*)\})? ([0-9.e+-]+)$", line)
        assert m, line
        out[(m.group(1), m.group(3) or "")] = float(m.group(4))
    return out


def delta(after, before, name, labels=""):
    return after.get((name, labels), 0) - before.get((name, labels), 0)


class Metrics(unittest.TestCase):

    def test_a_series_counted_once_is_shown(self):
        # telehook.8 /metrics: requests by route and status -- a pair
        # seen once is there with its 1 (a route's refusal of a method
        # no other test sends it)
        series = ("telehook_requests_total",
                  'route="twilio_transcription",status="405"')
        self.assertIsNone(scrape().get(series))
        self.assertEqual(stack.get("/webhooks/twilio/transcription").status,
                         405)
        self.assertEqual(scrape().get(series), 1)

    def test_burst_across_workers(self):
        before = scrape()
        for i in range(24):
            tw.post("/webhooks/twilio/sms/incoming", tw.sms_params(
                "hi %d" % i, to="+15550070000", frm="+1555200%04d" % i))
        for i in range(5):
            body = urllib.parse.urlencode(tw.sms_params("x"))
            r = stack.post("/webhooks/twilio/sms/incoming", body, tw.FORM,
                           {"X-Twilio-Signature": "bm9wZQ=="})
            self.assertEqual(r.status, 401)
        for i in range(3):
            self.assertEqual(stack.get("/webhooks/nowhere/%d" % i).status,
                             404)
        for i in range(2):
            self.assertEqual(stack.request("DELETE", "/healthz").status, 405)
        after = scrape()
        route = 'route="twilio_sms_incoming",status="%s"'
        self.assertEqual(delta(after, before, "telehook_requests_total",
                               route % 200), 24)
        self.assertEqual(delta(after, before, "telehook_requests_total",
                               route % 401), 5)
        self.assertEqual(delta(after, before, "telehook_requests_total",
                               'route="unknown",status="404"'), 3)
        self.assertEqual(delta(after, before, "telehook_requests_total",
                               'route="healthz",status="405"'), 2)
        self.assertEqual(delta(after, before, "telehook_rejections_total",
                               'cause="bad_signature"'), 5)
        self.assertEqual(delta(after, before, "telehook_rejections_total",
                               'cause="unknown_route"'), 3)
        self.assertEqual(delta(after, before, "telehook_rejections_total",
                               'cause="method_not_allowed"'), 2)
        # the histogram counts every request (the first scrape included)
        count = delta(after, before,
                      "telehook_request_duration_seconds_count")
        self.assertEqual(count, 24 + 5 + 3 + 2 + 1)
        self.assertEqual(delta(after, before,
                               "telehook_request_duration_seconds_bucket",
                               'le="+Inf"'), count)
        # the buckets are cumulative, le in seconds (telehook.8): each
        # holds the ones before it, and none of these requests -- a
        # refusal, a 404, a scrape -- took 5 s
        les = ["0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
               "0.25", "0.5", "1", "2.5", "5", "+Inf"]
        counts = [delta(after, before,
                        "telehook_request_duration_seconds_bucket",
                        'le="%s"' % le) for le in les]
        self.assertEqual(counts, sorted(counts), counts)
        self.assertEqual(counts[les.index("5")], count, counts)
        self.assertGreater(delta(
            after, before, "telehook_request_duration_seconds_sum"), 0)
        self.assertEqual(after[("telehook_spool_depth", "")], 0)
        self.assertEqual(after[("telehook_metrics_shared", "")], 1)
        self.assertGreaterEqual(after[("telehook_worker_starts_total",
                                       "")], 4)
        # the burst really was served by several workers
        pids = set(re.findall(r"telehook\[(\d+)\]: .* twilio_sms_incoming",
                              stack.worker_log()))
        self.assertGreater(len(pids), 1)
        # a log line a request: organization and provider key, no body
        self.assertRegex(stack.worker_log(),
                         r"POST twilio_sms_incoming org=%s 200 \d+us "
                         r"key=SM[0-9a-f]+:received" % org)
        self.assertNotIn("hi 7", stack.worker_log())

    def test_worker_restarts_are_counted(self):
        before = scrape()[("telehook_worker_starts_total", "")]
        stack.stop_workers()
        stack.start_workers()
        self.assertEqual(scrape()[("telehook_worker_starts_total", "")],
                         before + 4)


    def test_build_info_names_the_release(self):
        version = re.search(r"AC_INIT\(\[telehook\], \[([^]]+)\]", open(
            os.path.join(SRCDIR, "configure.ac")).read()).group(1)
        infos = {k: v for k, v in scrape().items()
                 if k[0] == "telehook_build_info"}
        self.assertEqual(infos, {("telehook_build_info",
                                  'version="%s"' % version): 1.0})


class Rejections(unittest.TestCase):

    def test_recorded_with_cause_and_organization(self):
        body = urllib.parse.urlencode(tw.sms_params("x", to="+15550070000"))
        r = stack.post("/webhooks/twilio/sms/incoming", body, tw.FORM,
                       {"X-Twilio-Signature": "YmFk"})
        self.assertEqual(r.status, 401)

        def ghosts():
            return sum(j["count"] for j in stack.ctl_json(
                "events", "rejections", "--counts", "--limit", "1000")[
                    "rejection_counts"] if j["cause"] == "unknown_route")
        before = ghosts()
        self.assertEqual(stack.get("/webhooks/ghost").status, 404)
        # written between requests: wait until they are there
        wait_for("rejections", lambda: len(stack.ctl_json(
            "events", "rejections", "--org", org)["rejections"]) >= 1)
        mine = stack.ctl_json("events", "rejections", "--org", org)[
            "rejections"][0]
        self.assertEqual((mine["route"], mine["status"], mine["cause"],
                          mine["detail"], mine["client_addr"]),
                         ("twilio_sms_incoming", 401, "bad_signature",
                          "bad X-Twilio-Signature", "127.0.0.1"))
        # an unknown route names no organization and no credential: it
        # is counted, and kept as a row only among a minute's first few
        wait_for("unknown route", lambda: ghosts() >= before + 1)
        self.assertEqual(stack.psql("SELECT count(*) FROM rejections WHERE "
                                    "detail LIKE '%Body%'"), "0")


    def test_api_refusal_counted_for_the_organization_in_its_path(self):
        # telehookctl(8) events rejections: the organization when it
        # could be told, here the one the API path names
        other = stack.ctl_ok("org", "add", "Path Clinic").strip()
        r = stack.get("/api/v1/organizations/%s/dashboard" % other,
                      headers={"Authorization": "Bearer nope"})
        self.assertEqual(r.status, 401)
        wait_for("the refusal", lambda: stack.ctl_json(
            "events", "rejections", "--org", other)["rejections"])
        mine = stack.ctl_json("events", "rejections", "--org", other)[
            "rejections"]
        self.assertEqual([(j["organization_id"], j["status"]) for j in mine],
                         [(other, 401)])


class Events(unittest.TestCase):

    def test_list_show_assign(self):
        p = tw.sms_params("lost message", to="+15559990070")
        tw.post("/webhooks/twilio/sms/incoming", p)
        key = p["MessageSid"] + ":received"
        unrouted = stack.ctl_json("events", "list", "--unrouted")["events"]
        ev = [e for e in unrouted if e["provider_key"] == key][0]
        self.assertEqual(sorted(ev), ["event_type", "id", "organization_id",
                                      "provider", "provider_key",
                                      "received_at"])
        self.assertEqual((ev["provider"], ev["event_type"],
                          ev["organization_id"]),
                         ("twilio", "sms_incoming", None))
        shown = stack.ctl_json("events", "show", ev["id"])
        self.assertEqual(shown["payload"]["Body"], "lost message")
        self.assertNotIn("X-Twilio-Signature", json.dumps(shown["headers"]))
        stack.ctl_ok("events", "assign", ev["id"], "Ops Clinic")
        self.assertEqual(stack.psql("SELECT organization_id FROM messages "
                                    "WHERE message_id = '%s'"
                                    % p["MessageSid"]), org)
        self.assertIn(ev["id"], [e["id"] for e in stack.ctl_json(
            "events", "list", "--org", org)["events"]])
        self.assertNotIn(ev["id"], [e["id"] for e in stack.ctl_json(
            "events", "list", "--unrouted")["events"]])
        p2 = stack.ctl("events", "assign", ev["id"], org)
        self.assertEqual(p2.returncode, 65)
        self.assertIn("already belongs", p2.stderr)
        self.assertEqual(stack.ctl("events", "list", "--since",
                                   "yesterday-ish").returncode, 65)
        tw.post("/webhooks/twilio/sms/incoming", tw.sms_params(
            "another", to="+15550070000"))
        self.assertEqual(len(stack.ctl_json("events", "list", "--since",
                                            "2001-01-01", "--limit", "2")
                             ["events"]), 2)
        # --since is the receive time: from the newest event's own time,
        # only the events received then or later
        newest = stack.psql("SELECT max(received_at) FROM events")
        since = stack.ctl_json("events", "list", "--since",
                               newest)["events"]
        self.assertEqual([e["id"] for e in since], [stack.psql(
            "SELECT id FROM events WHERE received_at >= '%s' ORDER BY id "
            "DESC" % newest)], since)
        self.assertEqual(stack.ctl_json("events", "list", "--since",
                                        "2999-01-01")["events"], [])


class Prune(unittest.TestCase):

    def test_prune_and_redact(self):
        cid = tw.call_params(to="+15550070000")["CallSid"]
        # an endpoint nobody sends to (no sender runs here): the old
        # call's and message's events wait for it, bodies and all
        eid = stack.psql("INSERT INTO endpoints (organization_id, url, "
                         "secret_sealed) VALUES ('%s', 'https://hooks."
                         "example/ops', 'unused') RETURNING id" % org
                         ).splitlines()[0]
        stack.psql("INSERT INTO calls (organization_id, provider, call_id, "
                   "status, status_rank, started_at, duration_s, "
                   "transcript, recording_url, summary, custom_data, "
                   "caller_name) VALUES ('%s', 'twilio', '%s', "
                   "'completed', 5, now() - interval '40 days', 50, "
                   "'secret talk', 'https://r/x', 'About a bill', "
                   "'{\"insurer\": \"Acme Mutual\"}', 'Jane Oldcaller')"
                   % (org, cid))
        stack.psql("INSERT INTO messages (organization_id, provider, "
                   "message_id, direction, body, media, reply_text, "
                   "created_at) VALUES ('%s', 'twilio', 'SMold%s', "
                   "'inbound', 'old private text', '[\"https://m/old.jpg"
                   "\"]', 'old canned reply', now() - interval '40 days')"
                   % (org, cid))
        stack.psql("UPDATE events SET received_at = now() - interval "
                   "'40 days' WHERE id IN (SELECT id FROM events ORDER BY "
                   "id LIMIT 3)")
        stack.psql("UPDATE delivery_events SET created_at = now() - "
                   "interval '40 days' WHERE subject IN ('call:twilio:%s', "
                   "'message:twilio:SMold%s')" % (cid, cid))
        stack.psql("INSERT INTO messages (organization_id, provider, "
                   "message_id, direction, body) VALUES ('%s', 'twilio', "
                   "'SMnew%s', 'inbound', 'new private text')" % (org, cid))
        old_words = ("secret talk", "https://r/x", "About a bill",
                     "old private text")
        # unread notifications are kept however old: an urgent SMS's
        # text, a voicemail's transcription and recording
        for kind, age, data in (
                ("urgent_sms", "40 days", '{"body": "old urgent text", '
                 '"from_number": "+15550001111"}'),
                ("voicemail", "40 days", '{"call": "CAold", '
                 '"transcription": "old voicemail words", '
                 '"recording_url": "https://r/vm"}'),
                ("urgent_sms", "1 day", '{"body": "new urgent text", '
                 '"from_number": "+15550001111"}')):
            stack.psql("INSERT INTO notifications (organization_id, type, "
                       "title, message, data, created_at) VALUES ('%s', "
                       "'%s', 't', 'm', '%s', now() - interval '%s')"
                       % (org, kind, data, age))

        def notes():
            return [json.loads(x) for x in stack.psql(
                "SELECT data::text FROM notifications WHERE data ? 'body' "
                "OR data ? 'transcription' ORDER BY id").split("\n")]

        # what the events waiting for the endpoint would send (an
        # incoming message's names the message: sql/013)
        def bodies(subject):
            return stack.psql("SELECT string_agg(th_event_body(v), ' ') "
                              "FROM delivery_events v WHERE subject = "
                              "'%s'" % subject)
        old = bodies("call:twilio:%s" % cid) + bodies(
            "message:twilio:SMold%s" % cid)
        for w in old_words:
            self.assertIn(w, old)
        old_month = stack.psql("SELECT to_char(now() - interval '40 days', "
                               "'YYYY-MM')")
        token = stack.ctl_ok("token", "create", org).strip()

        def kpis():
            r = stack.get("/api/v1/organizations/%s/dashboard?month=%s"
                          % (org, old_month),
                          {"Authorization": "Bearer " + token})
            return r.json()["kpis"]
        before = kpis()
        events = int(stack.psql("SELECT count(*) FROM events"))
        out = stack.ctl_json("prune", "--older-than", "30")
        self.assertEqual(out["events"], 3)
        self.assertNotIn("calls_redacted", out)
        self.assertEqual(int(stack.psql("SELECT count(*) FROM events")),
                         events - 3)
        self.assertEqual(stack.psql("SELECT transcript FROM calls WHERE "
                                    "call_id = '%s'" % cid), "secret talk")
        self.assertIn("old private text",
                      bodies("message:twilio:SMold%s" % cid))
        out = stack.ctl_json("prune", "--older-than", "30", "--redact")
        self.assertEqual(out["events"], 0)
        self.assertGreaterEqual(out["calls_redacted"], 1)
        self.assertGreaterEqual(out["messages_redacted"], 1)
        # every field telehookctl(8) names, on a record that had all
        self.assertEqual(stack.psql(
            "SELECT coalesce(transcript, '-') || coalesce(recording_url, "
            "'-') || coalesce(summary, '-') || coalesce(custom_data::text, "
            "'-') || coalesce(caller_name, '-') || status || duration_s "
            "FROM calls WHERE call_id = '%s'" % cid), "-----completed50")
        self.assertEqual(stack.psql("SELECT coalesce(body, '-') || "
                                    "media::text || coalesce(reply_text, "
                                    "'-') FROM messages WHERE message_id = "
                                    "'SMold%s'" % cid), "-[]-")
        # the events still waiting for the endpoint say no more than
        # the records: the same fields blank, the rest as it was
        old = [json.loads(b) for b in stack.psql(
            "SELECT string_agg(th_event_body(v), chr(10) ORDER BY id) FROM "
            "delivery_events v WHERE subject IN ('call:twilio:%s', "
            "'message:twilio:SMold%s')" % (cid, cid)).split("\n")]
        self.assertEqual([(b["type"], b["data"].get("transcript"),
                           b["data"].get("recording_url"),
                           b["data"].get("summary"), b["data"].get("body"))
                          for b in old],
                         [("call.started", None, None, None, None),
                          ("call.ended", None, None, None, None),
                          ("sms.received", None, None, None, None)])
        self.assertEqual([b["data"]["call_id"] for b in old[:2]], [cid] * 2)
        self.assertEqual(old[2]["data"]["message_id"], "SMold" + cid)
        # the calls' copies; the message's event holds none
        self.assertEqual(out["delivery_events_redacted"], 2)
        self.assertEqual(json.loads(bodies("message:twilio:SMnew%s" % cid))
                         ["data"]["body"], "new private text")
        self.assertEqual(notes(), [
            {"body": None, "from_number": "+15550001111"},
            {"call": "CAold", "transcription": None, "recording_url": None},
            {"body": "new urgent text", "from_number": "+15550001111"}])
        self.assertEqual(out["notifications_redacted"], 2)
        again = stack.ctl_json("prune", "--older-than", "30", "--redact")
        self.assertEqual((again["delivery_events_redacted"],
                          again["notifications_redacted"]), (0, 0))
        stack.psql("DELETE FROM endpoints WHERE id = '%s'" % eid)
        stack.psql("DELETE FROM delivery_pending")
        self.assertEqual(kpis(), before)    # the counts are kept
        self.assertEqual(stack.ctl("prune").returncode, 64)
        self.assertEqual(stack.ctl("prune", "--older-than", "0")
                         .returncode, 65)


class Send(unittest.TestCase):

    def test_every_kind_is_accepted(self):
        kinds = [("twilio", k) for k in (
            "voice_incoming", "voice_status", "voice_gather",
            "voice_partial", "recording", "transcription", "sms_incoming",
            "sms_status")] + [("retell", k) for k in (
                "call_started", "call_ended", "call_analyzed",
                "transcript_updated", "transfer_started", "transfer_bridged",
                "transfer_cancelled", "transfer_ended", "call_inbound")] + [
            ("voipms", k) for k in ("sms", "sms_post", "cdr", "recording")]
        # one call for each provider's call events, so the later ones
        # find the call's organization
        ids = {"twilio": "CA" + "ab" * 16, "retell": "call_ops_sample",
               "voipms": "4242"}
        for provider, kind in kinds:
            with self.subTest(kind=kind):
                extra = [] if kind.startswith("sms") else [
                    "--id", ids[provider]]
                p = stack.ctl("--json", "send", provider, kind, "--url",
                              stack.public_url, "--to", "+15550070000",
                              *extra)
                self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
                out = json.loads(p.stdout)
                self.assertIn(out["status"], (200, 204))
        types = stack.psql("SELECT string_agg(DISTINCT event_type, ',') "
                           "FROM events WHERE organization_id = '%s'" % org)
        for t in ("voice_incoming", "voice_status", "voice_gather",
                  "recording", "transcription", "sms_incoming", "sms_status",
                  "call_started", "call_analyzed", "call_inbound",
                  "transfer_bridged", "cdr", "recording"):
            self.assertIn(t, types)
        p = stack.ctl("send", "twilio", "fax", "--url", stack.public_url)
        self.assertEqual(p.returncode, 64)
        self.assertIn("twilio voice_incoming", p.stderr)

    def test_retell_samples_follow_a_call(self):
        # telehookctl(8) send: samples as the provider sends them; Retell's
        # transfer events come while the call goes on (providers.md), so
        # the call is in progress until its call_ended
        cid = "call_ops_transfer"

        def send(kind):
            p = stack.ctl("send", "retell", kind, "--url", stack.public_url,
                          "--to", "+15550070000", "--id", cid)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            return stack.psql("SELECT status FROM calls WHERE call_id = "
                              "'%s'" % cid)

        self.assertEqual(send("call_started"), "in-progress")
        for kind in ("transfer_started", "transfer_bridged",
                     "transfer_cancelled", "transfer_ended",
                     "transcript_updated"):
            self.assertEqual(send(kind), "in-progress", kind)
        self.assertEqual(send("call_ended"), "completed")

    def test_org_names_the_organization(self):
        # telehookctl(8) send --org: the organization named explicitly
        # (a Retell call's metadata), so a number nobody owns routes
        other = stack.ctl_ok("org", "add", "Sample Clinic").strip()
        for provider, kind, cid in (("retell", "call_ended", "call_org_s"),
                                    ("twilio", "voice_status",
                                     "CA" + "cd" * 16)):
            p = stack.ctl("--json", "send", provider, kind, "--url",
                          stack.public_url, "--to", "+15559990123",
                          "--org", other, "--id", cid)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertEqual(stack.psql(
                "SELECT organization_id FROM calls WHERE call_id = '%s'"
                % cid), other)

    def test_no_worker_crashed(self):
        stack.assert_no_crash()


load_tests = in_order(__name__)

if __name__ == "__main__":
    unittest.main(verbosity=2)
