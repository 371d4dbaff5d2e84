"""
fault_budget: the answer budget whatever PostgreSQL does (issue 34).
Each case offers signed SMS webhooks at a fixed rate, open loop (a
request goes out at its time whether or not the earlier ones were
answered), for about 20 s, while /healthz is asked every 100 ms, and
asserts: every answer 2xx within answer_budget_ms + 100 ms, none lost,
none stored twice, and /healthz answering within 200 ms and saying
what the database is:

  1. the whole server frozen (postmaster and backends SIGSTOPped 15 s);
  2. a trigger sleeping 0.3 s per INSERT: under the deadline, slow;
     and one sleeping 0.15 s: fast enough alone, too slow for the rate
     (/healthz is printed there, not held to its bar);
  3. a trigger sleeping 1 s per INSERT: past the deadline, under
     statement_timeout_ms (3 s);
  4. a slow COMMIT that ignores the cancel and commits anyway after the
     request was spooled and answered: stored once (the provider key);
  5. a restart into read-only: a handful of new connections at most,
     /healthz says read_only, all of it stored once writable again;
  6. through PgBouncer with its defaults, PostgreSQL stopped for 12 s:
     PgBouncer holds the queries, the workers do not wait for it.

FAULT_BUDGET_RATE and FAULT_BUDGET_SECONDS set the offered rate and
each case's length: the issue's 60 s read-only spell is
FAULT_BUDGET_SECONDS=68 t/fault_budget.py -k read_only.
"""

import http.client
import json
import os
import re
import signal
import sys
import threading
import time
import unittest
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Stack, stored_sms, wait_for, in_order,  # noqa: E402
                     postmaster_pids)
from e2e_twilio import sign, FORM  # noqa: E402
from fault_db import shipped_multiwatch_args  # noqa: E402

TOKEN = "fault-budget-token"
NUMBER = "+15550007100"
WORKERS = 4
BUDGET_MS = 1000
RATE = int(os.environ.get("FAULT_BUDGET_RATE", "200"))
SECONDS = int(os.environ.get("FAULT_BUDGET_SECONDS", "20"))
HEALTH_MS = 200
stack = None


def new_stack(pooler=None):
    st = Stack(workers=WORKERS, multiwatch_args=shipped_multiwatch_args(),
               rate_limit=100000, pooler=pooler, extra_conf={
                   "twilio": {"auth_token": TOKEN},
                   "database": {"statement_timeout_ms": "3000"},
                   "server": {"answer_budget_ms": str(BUDGET_MS),
                              "cache_ttl_s": "1",
                              "log_level": "notice"}}).start()
    org = st.ctl_ok("org", "add", "Fault Budget Clinic").strip()
    st.ctl_ok("number", "add", org, NUMBER)
    return st


def setUpModule():
    global stack
    stack = new_stack()


def tearDownModule():
    if stack is not None:
        stack.stop()


def send(sid):
    """One signed SMS: (status or None, seconds)."""
    path = "/webhooks/twilio/sms/incoming"
    p = [("MessageSid", sid), ("AccountSid", "AC" + "4" * 32),
         ("From", "+15557770001"), ("To", NUMBER), ("Body", "budget"),
         ("SmsStatus", "received")]
    h = {"Content-Type": FORM,
         "X-Twilio-Signature": sign(TOKEN, stack.public_url + path, p)}
    t0 = time.monotonic()
    try:
        c = http.client.HTTPConnection("127.0.0.1", stack.nginx_port,
                                       timeout=30)
        c.request("POST", path, urllib.parse.urlencode(p), h)
        r = c.getresponse()
        r.read()
        c.close()
        return r.status, time.monotonic() - t0
    except (OSError, http.client.HTTPException):
        return None, time.monotonic() - t0


class OpenLoad:
    """Request n goes out at start + n / rate, answered or not."""

    def __init__(self, tag, rate=RATE):
        self.tag, self.rate = tag, rate
        self.results = []       # (sid, status, seconds)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.pool = ThreadPoolExecutor(max_workers=256)
        self.lag = 0.0          # how late the sender itself ran
        self.thread = threading.Thread(target=self.run)

    def one(self, sid):
        status, secs = send(sid)
        with self.lock:
            self.results.append((sid, status, secs))

    def run(self):
        t0, n = time.monotonic(), 0
        while not self.stop.is_set():
            at = t0 + n / self.rate
            now = time.monotonic()
            if at > now:
                time.sleep(at - now)
            else:
                self.lag = max(self.lag, now - at)
            self.pool.submit(self.one, "SM%s%010d" % (self.tag, n))
            n += 1
        self.sent = n

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.pool.shutdown(wait=True)

    @property
    def accepted(self):
        return [s for s, st, _ in self.results if st and 200 <= st < 300]

    @property
    def refused(self):
        out = {}
        for _, st, _ in self.results:
            if not (st and 200 <= st < 300):
                out[st] = out.get(st, 0) + 1
        return out

    @property
    def late(self):
        return [x for _, _, x in self.results
                if x > (BUDGET_MS + 100) / 1000.0]

    @property
    def slowest(self):
        return max([x for _, _, x in self.results] or [0])


class Health:
    """/healthz every 100 ms: (seconds since start, latency, database)."""

    def __init__(self):
        self.samples = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def run(self):
        t0 = time.monotonic()
        while not self.stop.is_set():
            t = time.monotonic()
            db = None
            try:
                c = http.client.HTTPConnection("127.0.0.1",
                                               stack.nginx_port, timeout=30)
                c.request("GET", "/healthz")
                r = c.getresponse()
                db = json.loads(r.read()).get("database")
                c.close()
            except (OSError, http.client.HTTPException, ValueError):
                pass
            self.samples.append((t - t0, time.monotonic() - t, db))
            self.stop.wait(max(0.0, 0.1 - (time.monotonic() - t)))

    def __enter__(self):
        self.t0 = time.monotonic()
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()

    def between(self, a, b):
        return [s for s in self.samples if a <= s[0] < b]


def stored(tag):
    """{sid: (events, messages)} of tag's SMS (harness.stored_sms)."""
    return {sid: c[:2] for sid, c in stored_sms(stack, "SM" + tag).items()}


def spooled():
    return [f for f in os.listdir(stack.spool) if f.endswith(".spool")]


def postgres_pids():
    """The postmaster and its children (this stack's only)."""
    return postmaster_pids(stack.pgdata)


def sessions():
    return int(stack.psql("SELECT sessions FROM pg_stat_database WHERE "
                          "datname = 'telehook'"))


class Budget(unittest.TestCase):

    def check(self, name, load, health, want_db=(), during=None,
              health_bar=True):
        """The issue's bar: all 2xx within the budget + 100 ms, every
        2xx stored once, /healthz within 200 ms throughout (its own
        listener: never queued behind webhooks) and saying one of
        want_db during the fault."""
        wait_for(name + ": the spool drained", lambda: not spooled(),
                 timeout=120, interval=0.5)
        s = stored(load.tag)
        lost = [a for a in load.accepted if a not in s]
        dup = [k for k, v in s.items() if v != (1, 1)]
        slow_health = [h for h in health.samples if h[1] > HEALTH_MS / 1e3]
        seen = {h[2] for h in health.between(*during)} if during else set()
        print("\nfault %s at %d/s: sent %d, 2xx %d, late %d, slowest "
              "%.3f s, stored %d, lost %d, duplicated %d, refused %r, "
              "sender lag %.3f s; /healthz %d, slowest %.3f s, over "
              "200 ms %d, said %s" % (
                  name, load.rate, load.sent, len(load.accepted),
                  len(load.late), load.slowest, len(s), len(lost),
                  len(dup), load.refused, load.lag, len(health.samples),
                  max([h[1] for h in health.samples] or [0]),
                  len(slow_health), sorted(str(x) for x in seen)),
              file=sys.stderr)
        self.assertEqual(load.refused, {})
        self.assertEqual(load.late, [])
        self.assertEqual((lost, dup), ([], []))
        self.assertGreaterEqual(load.sent, load.rate * (SECONDS - 1))
        if not health_bar:
            return
        self.assertEqual(slow_health, [])
        # asked every 100 ms: a /healthz that waits leaves gaps
        self.assertGreater(len(health.samples), SECONDS * 10 * 0.8)
        if want_db:
            self.assertTrue(seen & set(want_db), seen)
            self.assertFalse(seen & {"ok"}, seen)

    def test_1_server_frozen(self):
        with Health() as health, OpenLoad("F") as load:
            time.sleep(2)
            pids = postgres_pids()
            frozen = time.monotonic() - health.t0
            for p in pids:
                os.kill(p, signal.SIGSTOP)
            try:
                time.sleep(15)
            finally:
                for p in pids:
                    os.kill(p, signal.SIGCONT)
            time.sleep(SECONDS - 17)
        self.check("server frozen 15 s", load, health,
                   want_db=("slow", "down"),
                   during=(frozen + 2, frozen + 14))

    def trigger(self, tag, secs):
        stack.psql(
            "CREATE OR REPLACE FUNCTION budget_sleep() RETURNS trigger "
            "LANGUAGE plpgsql AS $$BEGIN PERFORM pg_sleep(%s); "
            "RETURN NEW; END$$" % secs)
        stack.psql(
            "CREATE TRIGGER budget_sleep BEFORE INSERT ON events FOR EACH "
            "ROW WHEN (NEW.provider_key LIKE 'SM%s%%') EXECUTE FUNCTION "
            "budget_sleep()" % tag)

    def untrigger(self):
        stack.psql("DROP TRIGGER IF EXISTS budget_sleep ON events")

    def slow_inserts(self, tag, secs, health_bar=True):
        with Health() as health, OpenLoad(tag) as load:
            time.sleep(2)
            self.trigger(tag, secs)
            start = time.monotonic() - health.t0
            try:
                time.sleep(SECONDS - 4)
            finally:
                self.untrigger()
            time.sleep(2)
        self.check("INSERT sleeps %s s" % secs, load, health,
                   want_db=("slow",),
                   during=(start + 2, start + 14), health_bar=health_bar)

    def test_2_insert_slow_under_deadline(self):
        self.slow_inserts("U", "0.3")

    def test_2b_insert_too_slow_for_the_rate(self):
        # each transaction well under a quarter of the budget, but 4
        # workers serve ~25 a second of the 200 offered: the queue in
        # front of them is what is slow.  Each fast probe closes the
        # breaker until the queue is back
        self.slow_inserts("Q", "0.15")

    def test_3_insert_slow_past_deadline(self):
        self.slow_inserts("O", "1.0")

    def test_4_commit_goes_through_anyway(self):
        """Spooled at the deadline, and the COMMIT already sent happens
        after all (it ignores the cancel): the replay finds the provider
        key taken and stores nothing twice."""
        stack.psql(
            "CREATE OR REPLACE FUNCTION budget_commit() RETURNS trigger "
            "LANGUAGE plpgsql AS $$DECLARE t timestamptz := "
            "clock_timestamp(); BEGIN WHILE clock_timestamp() < t + "
            "interval '1.2 s' LOOP BEGIN PERFORM pg_sleep(0.05); "
            "EXCEPTION WHEN query_canceled THEN NULL; END; END LOOP; "
            "RETURN NULL; END$$")
        stack.psql(
            "CREATE CONSTRAINT TRIGGER budget_commit AFTER INSERT ON events "
            "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN "
            "(NEW.provider_key LIKE 'SMC%') EXECUTE FUNCTION "
            "budget_commit()")
        sids, answers = [], []
        try:
            for n in range(4):
                sid = "SMC%010d" % n
                status, secs = send(sid)
                sids.append(sid)
                answers.append((status, secs))
                time.sleep(3)   # past the breaker: each one is a probe
            live = int(stack.psql(
                "SELECT count(*) FROM events WHERE provider_key LIKE "
                "'SMC%' AND spooled_at IS NULL"))
        finally:
            stack.psql("DROP TRIGGER budget_commit ON events")
        wait_for("the spool drained", lambda: not spooled(), timeout=60,
                 interval=0.2)
        s = stored("C")
        print("\nfault commit goes through anyway: answers %r, committed "
              "live %d of %d, stored %r" % (answers, live, len(sids), s),
              file=sys.stderr)
        self.assertTrue(all(st == 200 and secs < (BUDGET_MS + 100) / 1e3
                            for st, secs in answers), answers)
        self.assertGreater(live, 0, "no COMMIT went through after the "
                           "deadline: the case was not made")
        # each COMMIT takes 1.2 s: a 2xx within the budget is the spool's
        self.assertEqual(s, {sid: (1, 1) for sid in sids})

    def test_5_read_only_restart(self):
        with Health() as health, OpenLoad("R") as load:
            time.sleep(2)
            stack.psql("ALTER SYSTEM SET default_transaction_read_only = on")
            stack.stop_postgres()
            stack.start_postgres()
            start = time.monotonic() - health.t0
            time.sleep(3)
            before = sessions()
            time.sleep(SECONDS - 8)
            new = sessions() - before - 1
            stack.psql("ALTER SYSTEM SET default_transaction_read_only = "
                       "off")
            stack.psql("SELECT pg_reload_conf()")
            time.sleep(3)
        print("\nfault read-only: %d new connections in %d s read-only"
              % (new, SECONDS - 8), file=sys.stderr)
        self.check("read-only restart", load, health,
                   want_db=("read_only",), during=(start + 2, start + 10))
        self.assertLessEqual(new, 5)


class PgBouncer(Budget):
    """Its own stack: PgBouncer (transaction pooling) in front, with
    PgBouncer's defaults for a server it cannot reach, which hold a
    client in its queue (server_login_retry 15 s, query_wait_timeout
    120 s)."""

    @classmethod
    def setUpClass(cls):
        global stack
        cls.saved = stack
        stack = new_stack(pooler="transaction")
        ini = stack.path("pgbouncer", "pgbouncer.ini")
        with open(ini) as f:
            text = f.read()
        for k, v in (("server_connect_timeout", "15"),
                     ("server_login_retry", "15"),
                     ("query_wait_timeout", "120")):
            text = re.sub(r"(?m)^%s = .*$" % k, "%s = %s" % (k, v), text)
        with open(ini, "w") as f:
            f.write(text)
        with open(stack.path("pgbouncer", "pgbouncer.pid")) as f:
            os.kill(int(f.read()), signal.SIGHUP)
        time.sleep(1)   # the reload's own pace

    @classmethod
    def tearDownClass(cls):
        global stack
        try:
            stack.stop()
        finally:
            stack = cls.saved

    def test_6_database_down_behind_pgbouncer(self):
        with Health() as health, OpenLoad("P") as load:
            time.sleep(2)
            stack.stop_postgres()
            start = time.monotonic() - health.t0
            try:
                time.sleep(12)
            finally:
                stack.start_postgres()  # through PgBouncer: up to 15 s
            time.sleep(2)
        self.check("database down behind PgBouncer", load, health,
                   want_db=("slow", "down", "unknown"),
                   during=(start + 2, start + 11))


load_tests = in_order(__name__)

if __name__ == "__main__":
    unittest.main(verbosity=2)
