"""
e2e_spool: nothing accepted is lost.  With PostgreSQL stopped, or too
slow (past statement_timeout_ms), signed requests are answered 2xx only
after they are fsync'd to the spool, with TwiML from the worker's cached
copy of the organization; "telehookctl spool drain" and the workers
themselves replay them into PostgreSQL exactly once, at their real time.
Corrupt files are quarantined; an unwritable spool means 503.
"""

import datetime
import hashlib
import json
import os
import re
import subprocess
import time
import sys
import unittest
import urllib.parse
import xml.etree.ElementTree as ET
import zoneinfo

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stack, drain_spool, health, healthy, wait_for, \
    in_order  # noqa: E402
from e2e_twilio import sign, FORM  # noqa: E402

TOKEN = "spool-test-token"
ACCOUNT = "AC" + "5" * 32
ACCOUNT_TOKEN = "per-account-token-spool"
stack = None
org = None
n = [0]


def setUpModule():
    global stack, org
    stack = Stack(workers=2, secret_key=True, extra_conf={
        "twilio": {"auth_token": TOKEN},
        "database": {"statement_timeout_ms": "500"},
        "server": {"cache_ttl_s": "1"}}).start()
    org = stack.ctl_ok("org", "add", "Spool Clinic").strip()
    stack.ctl_ok("org", "set", org, "hours=24/7", "forward_to=+15550008888",
                 "greeting=Spool Clinic, hello.")
    stack.ctl_ok("number", "add", org, "+15550007000")
    stack.ctl_ok("secret", "set", org, "twilio", "--account", ACCOUNT,
                 input=ACCOUNT_TOKEN + "\n")
    # new workers load the organization into their cache at start
    stack.stop_workers()
    stack.start_workers()


def tearDownModule():
    if stack is not None:
        stack.stop()


def post(path, params, token=TOKEN):
    params = list(params.items())
    h = {"X-Twilio-Signature": sign(token, stack.public_url + path, params)}
    return stack.post(path, urllib.parse.urlencode(params), FORM, h)


def sms(body="appointment please"):
    n[0] += 1
    return {"MessageSid": "SM%032d" % (os.getpid() * 10000 + n[0]),
            "AccountSid": "AC" + "1" * 32, "From": "+15551110000",
            "To": "+15550007000", "Body": body, "SmsStatus": "received"}


def call(status="ringing", **kw):
    n[0] += 1
    p = {"CallSid": "CA%032d" % (os.getpid() * 10000 + n[0]),
         "AccountSid": "AC" + "1" * 32, "From": "+15551110001",
         "To": "+15550007000", "CallStatus": status, "Direction": "inbound"}
    p.update(kw)
    return p


def q1(sql):
    return stack.psql(sql)


def depth():
    return len([f for f in os.listdir(stack.spool) if f.endswith(".spool")])


def fresh():
    """An empty spool and workers connected to a running database (the
    workers may be draining it themselves: telehookctl then says 75)."""
    drain_spool(stack)
    assert depth() == 0
    stack.stop_workers()
    stack.start_workers()


class Outage(unittest.TestCase):

    def setUp(self):
        fresh()

    def test_outage_spools_then_drains_exactly_once(self):
        stack.stop_postgres()
        try:
            h = stack.get("/healthz").json()
            # a pooler may hold the ping past /healthz's deadline
            self.assertIn(h["database"], ("down", "unknown") if
                          stack.pooler else ("down",))
            m = sms()
            r = post("/webhooks/twilio/sms/incoming", m)
            self.assertEqual(r.status, 200)
            root = ET.fromstring(r.body)
            self.assertEqual(len(root), 0)  # no auto-reply while away
            c = call()
            r = post("/webhooks/twilio/voice/incoming", c)
            self.assertEqual(r.status, 200)
            voice_answer = r.body
            root = ET.fromstring(r.body)
            self.assertEqual(root.find("Say").text, "Spool Clinic, hello.")
            self.assertEqual(root.find("Dial/Number").text, "+15550008888")
            s = dict(c, CallStatus="completed", SequenceNumber="2",
                     CallDuration="31",
                     CallbackSource="call-progress-events")
            self.assertEqual(post("/webhooks/twilio/voice/status",
                                  s).status, 204)
            # a redelivery while the database is still away
            self.assertEqual(post("/webhooks/twilio/sms/incoming",
                                  m).status, 200)
            self.assertEqual(depth(), 4)
            h = stack.get("/healthz")
            self.assertEqual(h.status, 200)
            if stack.pooler:
                # down, unknown, or slow if the pooler held a webhook
                # past its deadline (and the breaker opened)
                got = health(h)
                self.assertIn(got.pop("database"), ("down", "unknown",
                                                    "slow"))
                for k in ("database", "breaker_open", "breaker_reason"):
                    got.pop(k, None)
                want = healthy(db="down", depth=4)
                for k in ("database", "breaker_open", "breaker_reason"):
                    want.pop(k)
                self.assertEqual(got, want)
            else:
                self.assertEqual(health(h), healthy(db="down", depth=4))
            st = stack.ctl_json("spool", "status")
            self.assertEqual(st["depth"], 4)
            text = stack.ctl_ok("spool", "status")
            self.assertRegex(text, r"(?m)^waiting: 4, oldest received "
                             r"\S+ \(\d+ s ago\)$")
            self.assertRegex(text, r"(?m)^quarantined: 0$")
            self.assertEqual(st["quarantined"], 0)
            self.assertTrue(st["writable"])
            p = stack.ctl("spool", "drain")
            self.assertEqual(p.returncode, 69)
            self.assertEqual(depth(), 4)
        finally:
            # idle workers drain by themselves: the drain below is
            # the one counted
            stack.stop_workers()
            stack.start_postgres()
        out = stack.ctl_json("spool", "drain")
        stack.start_workers()
        self.assertEqual(out, {"replayed": 3, "already_stored": 1,
                               "quarantined": 0, "refused": 0, "left": 0})
        self.assertEqual(depth(), 0)
        key = m["MessageSid"] + ":received"
        self.assertEqual(q1("SELECT count(*) FROM events WHERE "
                            "provider_key = '%s'" % key), "1")
        self.assertEqual(q1("SELECT count(*) FROM messages WHERE "
                            "message_id = '%s'" % m["MessageSid"]), "1")
        self.assertEqual(q1("SELECT status || '|' || duration_s FROM calls "
                            "WHERE call_id = '%s'" % c["CallSid"]),
                         "completed|31")
        # the stored answer is what the caller really got
        self.assertEqual(q1("SELECT answer FROM events WHERE provider_key "
                            "= '%s:ringing:'" % c["CallSid"]).encode(),
                         voice_answer.strip())
        # replayed at the time it was received, marked as spooled
        self.assertEqual(q1("SELECT bool_and(spooled_at IS NOT NULL AND "
                            "received_at < spooled_at) FROM events WHERE "
                            "provider_key LIKE '%s%%'" % c["CallSid"]), "t")
        # and from the address it came from (telehook.8 Spool: the
        # spool keeps the client address)
        self.assertEqual(q1("SELECT string_agg(DISTINCT host(client_addr), "
                            "',') FROM events WHERE provider_key LIKE '%s%%' "
                            "OR provider_key = '%s'" % (c["CallSid"], key)),
                         stack.host_addr)
        self.assertEqual(q1("SELECT count(*) FROM activity WHERE call_id = "
                            "(SELECT id FROM calls WHERE call_id = '%s')"
                            % c["CallSid"]), "2")
        # the redelivered SMS, once the database is back: same answer
        r = post("/webhooks/twilio/sms/incoming", m)
        self.assertEqual(ET.fromstring(r.body).tag, "Response")
        self.assertEqual(len(ET.fromstring(r.body)), 0)
        wait_for("healthy", lambda: health(stack.get("/healthz")) ==
                 healthy())

    def test_workers_drain_by_themselves(self):
        stack.stop_postgres()
        try:
            sent = [sms("hello %d" % i) for i in range(3)]
            for m in sent:
                self.assertEqual(post("/webhooks/twilio/sms/incoming",
                                      m).status, 200)
            self.assertEqual(depth(), 3)
        finally:
            stack.start_postgres()
        # any request lets a worker notice the database is back
        wait_for("background drain", lambda: stack.get(
            "/healthz").json()["spool_depth"] == 0, timeout=30)
        for m in sent:
            self.assertEqual(q1("SELECT count(*) FROM messages WHERE "
                                "message_id = '%s'" % m["MessageSid"]), "1")
        self.assertIn("spool: drained", stack.worker_log())

    def test_hours_are_local_with_and_without_the_database(self):
        # Open for three hours around now, in a zone whose clock is
        # hours away from UTC's: open by the organization's clock, both
        # from the database (th_org) and from the worker's cache while
        # the database is away; closed by UTC's.  Python's zoneinfo, not
        # telehook, says what the local time is.
        for tz in ("Asia/Kolkata", "America/Los_Angeles",
                   "Pacific/Kiritimati"):
            local = datetime.datetime.now(zoneinfo.ZoneInfo(tz))
            m = local.hour * 60 + local.minute
            if 120 <= m <= 1440 - 120:
                break
        day = ("sun", "mon", "tue", "wed", "thu", "fri",
               "sat")[local.isoweekday() % 7]
        hours = "%s %02d:%02d-%02d:%02d" % (day, (m - 90) // 60,
                                            (m - 90) % 60, (m + 90) // 60,
                                            (m + 90) % 60)
        o = stack.ctl_ok("org", "add", "Local Clinic", "--timezone",
                         tz).strip()
        stack.ctl_ok("org", "set", o, "hours=" + hours,
                     "forward_to=+15550008877")
        stack.ctl_ok("number", "add", o, "+15550007100")
        stack.stop_workers()        # new workers cache the organization
        stack.start_workers()

        def dial():
            r = post("/webhooks/twilio/voice/incoming",
                     call(To="+15550007100"))
            self.assertEqual(r.status, 200)
            root = ET.fromstring(r.body)
            says = [s.text for s in root.findall("Say")]
            number = root.find("Dial/Number")
            return (number.text if number is not None else None,
                    "Our office is closed right now." in says)

        self.assertEqual(dial(), ("+15550008877", False), (tz, hours))
        stack.stop_postgres()
        try:
            self.assertEqual(dial(), ("+15550008877", False), (tz, hours))
        finally:
            stack.start_postgres()
        # the same hours on the next day: closed on both paths
        days = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
        nxt = days[(days.index(day) + 1) % 7]
        stack.ctl_ok("org", "set", o, "hours=" + nxt + hours[3:])
        stack.stop_workers()
        stack.start_workers()
        self.assertEqual(dial(), (None, True))
        stack.stop_postgres()
        try:
            self.assertEqual(dial(), (None, True))
        finally:
            stack.start_postgres()

    def test_the_cache_reads_settings_again_after_cache_ttl_s(self):
        # telehook.conf.5 cache_ttl_s (1 here): a worker reads the
        # organizations' settings again that often, without a restart, so
        # an answer while the database is away has the new greeting
        if stack.pooler:
            # the workers' reads are told apart by their sessions, which
            # a pooler's shared server connections do not keep
            self.skipTest("sessions are the pooler's")
        stack.ctl_ok("org", "set", org, "greeting=Spool Clinic, new hello.")
        self.addCleanup(stack.ctl_ok, "org", "set", org,
                        "greeting=Spool Clinic, hello.")
        t0 = q1("SELECT now()")
        # both idle workers have read the settings since (their last
        # statement is the cache's read of the provider accounts)
        wait_for("the workers' cache read again", lambda: q1(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name "
            "= 'telehook' AND query LIKE '%%FROM provider_accounts' AND "
            "query_start > '%s'" % t0) == "2")
        stack.stop_postgres()
        try:
            r = post("/webhooks/twilio/voice/incoming", call())
            self.assertEqual(r.status, 200)
            says = [s.text for s in ET.fromstring(r.body).findall("Say")]
            self.assertIn("Spool Clinic, new hello.", says)
        finally:
            stack.start_postgres()

    def test_every_number_is_found_in_the_cache(self):
        # numbers added in any order (here the highest first): while the
        # database is away each still names its own organization
        mine = []
        for i in (9, 5, 7, 3, 8, 1):
            o = stack.ctl_ok("org", "add", "Cached Clinic %d" % i).strip()
            stack.ctl_ok("org", "set", o, "greeting=Cached %d here." % i)
            stack.ctl_ok("number", "add", o, "+1555000790%d" % i)
            mine.append(i)
        stack.stop_workers()        # new workers cache the organizations
        stack.start_workers()
        stack.stop_postgres()
        try:
            for i in mine:
                r = post("/webhooks/twilio/voice/incoming",
                         call(To="+1555000790%d" % i))
                self.assertEqual(r.status, 200)
                says = [s.text for s in ET.fromstring(r.body).findall("Say")]
                self.assertIn("Cached %d here." % i, says, i)
        finally:
            stack.start_postgres()

    def test_per_account_token_verifies_while_database_away(self):
        stack.stop_postgres()
        try:
            m = dict(sms("account token"), AccountSid=ACCOUNT)
            r = post("/webhooks/twilio/sms/incoming", m, token=ACCOUNT_TOKEN)
            self.assertEqual(r.status, 200)
            bad = dict(sms("wrong token"), AccountSid=ACCOUNT)
            r = post("/webhooks/twilio/sms/incoming", bad, token="nope")
            self.assertEqual(r.status, 401)
        finally:
            stack.start_postgres()
        drain_spool(stack)
        self.assertEqual(q1("SELECT count(*) FROM messages WHERE "
                            "message_id = '%s'" % m["MessageSid"]), "1")

    def test_statement_timeout_spools(self):
        # a test before may have left the breaker open (its outage):
        # the request would be spooled for that, not for the timeout
        stack.wait_breaker_closed()
        # hold a lock on events until the answer is in, however long
        # the machine takes to get there: a lock of fixed length may
        # end before lock_timeout_ms has run out on a loaded machine
        with stack.table_locked("events"):
            m = sms("slow database")
            r = post("/webhooks/twilio/sms/incoming", m)
            self.assertEqual(r.status, 200)
        # the worker logs its line as it finishes the request, which
        # may be just after the answer reached us; the lock's timeout
        # and the statement's are the same here (lock_timeout_ms is at
        # most statement_timeout_ms), and either may fire first
        wait_for("the spooled line", lambda: re.search(
            r"spooled \(ERROR:  canceling statement due to (statement|"
            r"lock) timeout\)", stack.worker_log()), timeout=10)
        drain_spool(stack)
        self.assertEqual(q1("SELECT count(*) FROM messages WHERE "
                            "message_id = '%s'" % m["MessageSid"]), "1")

    def test_unwritable_spool_is_503_and_nothing_claimed(self):
        stack.stop_postgres()
        os.rename(stack.spool, stack.spool + ".away")
        try:
            r = post("/webhooks/twilio/sms/incoming", sms())
            self.assertEqual(r.status, 503)
            self.assertEqual(r.json(), {"error": "database unavailable and "
                                        "the spool cannot take the request"})
            self.assertEqual(stack.get("/healthz").status, 503)
        finally:
            os.rename(stack.spool + ".away", stack.spool)
            stack.start_postgres()
        wait_for("healthy", lambda: stack.get("/healthz").status == 200)


    def test_a_full_spool_is_503_at_once(self):
        # telehook.8 Spool: if the request cannot be written to the
        # spool either, the answer is 503 -- a disk that fills up while
        # the database is away is such a write, and must not hold the
        # worker.  A small tmpfs over spool_dir, filled to the last page.
        if os.geteuid() != 0:
            self.skipTest("mounting a tmpfs needs root")
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700",
                        "tmpfs", stack.spool], check=True)
        try:
            fd = os.open(os.path.join(stack.spool, "fill"),
                         os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                while os.write(fd, b"\0" * 512) > 0:
                    pass
            except OSError:
                pass
            finally:
                os.close(fd)
            stack.stop_postgres()
            try:
                r = post("/webhooks/twilio/sms/incoming", sms())
                self.assertEqual(r.status, 503)
                self.assertEqual(r.json(), {
                    "error": "database unavailable and the spool cannot "
                    "take the request"})
                # nothing half-written left behind
                self.assertEqual(sorted(os.listdir(stack.spool)), ["fill"])
            finally:
                stack.start_postgres()
        finally:
            # lazily: a worker that hung on it would hold it busy
            subprocess.run(["umount", "-l", stack.spool], check=True)
        wait_for("healthy", lambda: stack.get("/healthz").status == 200)


class Quarantine(unittest.TestCase):

    def setUp(self):
        fresh()

    def test_corrupt_and_truncated_files(self):
        stack.stop_postgres()
        try:
            self.assertEqual(post("/webhooks/twilio/sms/incoming",
                                  sms("to be truncated")).status, 200)
        finally:
            # idle workers drain by themselves: none runs while the
            # files are mangled, so the drain below sees them all
            stack.stop_workers()
            stack.start_postgres()
        self.addCleanup(lambda: stack.worker_pids() or stack.start_workers())
        good = [f for f in os.listdir(stack.spool) if f.endswith(".spool")]
        self.assertEqual(len(good), 1)
        path = os.path.join(stack.spool, good[0])
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(data[:len(data) // 2])
        with open(os.path.join(stack.spool, "0-garbage.spool"), "wb") as f:
            f.write(b"\x00\x01not a spool file at all")
        with open(os.path.join(stack.spool, "1-flipped.spool"), "wb") as f:
            # one bit flipped in the middle (the record is sealed)
            flipped = bytearray(data)
            flipped[len(data) // 2] ^= 0x01
            f.write(bytes(flipped))
        p = stack.ctl("--json", "spool", "drain")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["quarantined"], 3)
        self.assertIn("quarantined: not a telehook spool file", p.stderr)
        self.assertIn("quarantined: checksum mismatch", p.stderr)
        # a line a file, and nothing else: the quarantine directory
        # made on the way is no warning
        self.assertEqual(len(re.findall(r"(?m)^.*spool: \S+ quarantined: "
                                        r".*$", p.stderr)), 3, p.stderr)
        self.assertEqual(len(p.stderr.strip().splitlines()), 3, p.stderr)
        self.assertEqual(sorted(os.listdir(os.path.join(stack.spool,
                                                        "quarantine"))),
                         sorted(["0-garbage.spool", "1-flipped.spool",
                                 good[0]]))
        self.assertEqual(stack.ctl_json("spool", "status")["quarantined"], 3)
        self.assertEqual(depth(), 0)
        # telehook.8 /healthz: degraded while anything waits in the
        # quarantine, the database up and the spool empty; ok once the
        # operator has dealt with it
        stack.start_workers()
        stack.wait_breaker_closed()
        wait_for("the health server's database check", lambda: stack.get(
            "/healthz").json()["database"] == "ok")
        h = stack.get("/healthz")
        self.assertEqual((h.status, h.json()["status"], h.json()["database"],
                          h.json()["spool_depth"], h.json()["quarantined"]),
                         (200, "degraded", "ok", 0, 3), h.body)
        qdir = os.path.join(stack.spool, "quarantine")
        for f in os.listdir(qdir):
            os.unlink(os.path.join(qdir, f))
        wait_for("/healthz ok once the quarantine is empty", lambda: (
            lambda h: (h["status"], h["quarantined"]) == ("ok", 0))(
                stack.get("/healthz").json()))

    def test_only_spool_files_are_the_spool(self):
        # telehook.8 Spool: requests wait as *.spool files; anything else
        # an operator leaves in spool_dir is not read, moved or counted
        stray = ["notes.txt", "old.spool.orig", "spool"]
        for name in stray:
            with open(os.path.join(stack.spool, name), "w") as f:
                f.write("not a request\n")
        self.addCleanup(lambda: [os.unlink(os.path.join(stack.spool, s))
                                 for s in stray])
        before = stack.ctl_json("spool", "status")["quarantined"]
        p = stack.ctl("--json", "spool", "drain")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["quarantined"], 0, p.stdout)
        self.assertEqual(p.stderr, "")
        for name in stray:
            self.assertTrue(os.path.exists(os.path.join(stack.spool, name)))
        self.assertEqual(stack.ctl_json("spool", "status")["quarantined"],
                         before)
        self.assertEqual(depth(), 0)

    def test_records_that_no_longer_replay(self):
        # Files that read well but cannot become a request again: set
        # aside with the reason, never replayed, never lost.
        def record(name, env, body):
            text = "telehook-spool 1\nreceived: %d\nclient: 127.0.0.1\n" % (
                int(time.time() * 1e6))
            for e in env:
                text += "env: %s\n" % urllib.parse.quote(e, safe="=/ ")
            text += "answer: 0\nbody: %d\n\n%s" % (len(body), body)
            text += "sha256: %s\n" % hashlib.sha256(text.encode()).hexdigest()
            with open(os.path.join(stack.spool, name), "w") as f:
                f.write(text)

        stack.stop_workers()
        self.addCleanup(stack.start_workers)
        record("2-gone.spool", ["REQUEST_METHOD=POST",
                                "REQUEST_URI=/webhooks/nowhere"], "a=1")
        record("3-badjson.spool", [
            "REQUEST_METHOD=POST",
            "REQUEST_URI=/webhooks/twilio/sms/incoming",
            "CONTENT_TYPE=application/json"], "{not json")
        record("4-nouri.spool", ["REQUEST_METHOD=POST"], "a=1")
        # a route, but not a webhook's: nothing to store
        record("5-health.spool", ["REQUEST_METHOD=GET",
                                  "REQUEST_URI=/healthz"], "")
        before = stack.ctl_json("spool", "status")["quarantined"]
        p = stack.ctl("--json", "spool", "drain")
        self.assertEqual(p.returncode, 0, p.stderr)
        out = json.loads(p.stdout)
        self.assertEqual((out["quarantined"], out["replayed"]), (4, 0))
        self.assertIn("no route takes this request any more", p.stderr)
        self.assertEqual(stack.ctl_json("spool", "status")["quarantined"],
                         before + 4)
        self.assertEqual(depth(), 0)

    def test_no_worker_crashed(self):
        stack.assert_no_crash()


load_tests = in_order(__name__)

if __name__ == "__main__":
    unittest.main(verbosity=2)
