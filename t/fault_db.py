"""
fault_db: an operator's worst day with the database and the pool
(issue 20).  Each case prints its counts (sent, 2xx, stored, lost,
duplicated) and asserts none is lost or stored twice:

  1. the database comes back read-only (a failover in progress), under
     load and with a single spooled file: 0 lost once it is writable,
     with no operator step; nothing quarantined;
  2. a table locked for 25 s at 10 and at 100 requests/s: every request
     answered 2xx within 1 s, each stored once after the unlock;
  3. the newest worker killed every second for 10 s: the pool is back to
     N, with the multiwatch options the shipped unit uses;
  4. a quiet site: a spooled request reaches the database within 60 s
     with no traffic at all;
  5. the spool's filesystem full while PostgreSQL is down: /healthz 503;
  6. the pool restarted under load as telehook(8) says (SIGUSR2 to
     multiwatch): no request answered other than 2xx;
  7. multiwatch SIGKILLed: no worker outlives it holding a database
     connection.
"""

import glob
import http.client
import os
import re
import signal
import subprocess
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import SRCDIR, BUILDDIR, Stack, wait_for, in_order, \
    proc_stat  # noqa: E402
from e2e_twilio import sign, FORM  # noqa: E402

TOKEN = "fault-db-token"
# dev/check runs as root or with sudo (README): mounting needs either
AS_ROOT = [] if os.geteuid() == 0 else ["sudo", "-n"]
NUMBER = "+15550007000"
WORKERS = 4
stack = None


def shipped_multiwatch_args():
    """The multiwatch options of the shipped unit, but for -f."""
    unit = os.path.join(BUILDDIR, "contrib", "telehook.service")
    if not os.path.exists(unit):
        unit = os.path.join(SRCDIR, "contrib", "telehook.service.in")
    with open(unit) as f:
        text = f.read().replace("\\\n", " ")
    m = re.search(r"multiwatch\s+(.*?)\s+--\s", text)
    args = m.group(1).split()
    out, i = [], 0
    while i < len(args):
        if args[i] == "-f":
            i += 2
            continue
        out.append(args[i])
        i += 1
    return out


def setUpModule():
    global stack
    stack = Stack(workers=WORKERS, multiwatch_args=shipped_multiwatch_args(),
                  rate_limit=100000, extra_conf={
                      "twilio": {"auth_token": TOKEN},
                      "server": {"cache_ttl_s": "1",
                                 "log_level": "notice"}}).start()
    org = stack.ctl_ok("org", "add", "Fault DB Clinic").strip()
    stack.ctl_ok("number", "add", org, NUMBER)


def tearDownModule():
    if stack is not None:
        stack.stop()


def send(sid, timeout=20):
    """One signed SMS; (status or None, seconds)."""
    path = "/webhooks/twilio/sms/incoming"
    p = [("MessageSid", sid), ("AccountSid", "AC" + "4" * 32),
         ("From", "+15557770001"), ("To", NUMBER), ("Body", "fault"),
         ("SmsStatus", "received")]
    h = {"Content-Type": FORM,
         "X-Twilio-Signature": sign(TOKEN, stack.public_url + path, p)}
    t0 = time.monotonic()
    try:
        c = http.client.HTTPConnection("127.0.0.1", stack.nginx_port,
                                       timeout=timeout)
        c.request("POST", path, urllib.parse.urlencode(p), h)
        r = c.getresponse()
        r.read()
        c.close()
        return r.status, time.monotonic() - t0
    except (OSError, http.client.HTTPException):
        return None, time.monotonic() - t0


def Load(tag, rate=None, threads=4):
    """Requests at a fixed rate (or as fast as threads go), counted."""
    def one(n, _):
        sid = "SM%s%010d" % (tag, n)
        return (sid,) + send(sid)
    return harness.Load(one, threads=threads, rate=rate, wait_timeout=120,
                        tag=tag)


def stored(tag):
    rows = stack.psql(
        "SELECT m.message_id, count(DISTINCT e.id), count(DISTINCT m.id) "
        "FROM messages m LEFT JOIN events e ON e.provider = 'twilio' AND "
        "e.provider_key = m.message_id || ':received' WHERE m.message_id "
        "LIKE 'SM%s%%' GROUP BY m.message_id" % tag)
    out = {}
    for line in rows.splitlines():
        sid, ev, msg = line.split("|")
        out[sid] = (int(ev), int(msg))
    return out


def report(name, load, wait_s=60):
    """Wait (without any operator step) until every 2xx is stored."""
    def all_in():
        s = stored(load.tag)
        return all(a in s for a in load.accepted)
    wait_for(name + ": every 2xx stored", all_in, timeout=wait_s,
             interval=0.5)
    s = stored(load.tag)
    lost = [a for a in load.accepted if a not in s]
    dup = [k for k, v in s.items() if v != (1, 1)]
    print("\nfault %s: sent %d, 2xx %d, stored %d, lost %d, duplicated %d"
          "%s" % (name, load.sent, len(load.accepted), len(s), len(lost),
                  len(dup), ", refused %r" % load.refused
                  if load.refused else ""), file=sys.stderr)
    return lost, dup


def quarantined():
    return glob.glob(os.path.join(stack.spool, "quarantine", "*.spool"))


def read_only(on):
    stack.psql("ALTER SYSTEM SET default_transaction_read_only = %s" %
               ("on" if on else "off"))
    stack.psql("SELECT pg_reload_conf()")
    want = "on" if on else "off"
    wait_for("read-only " + want, lambda: stack.psql(
        "SHOW default_transaction_read_only") == want)


class Faults(unittest.TestCase):

    def test_1_read_only_return_under_load(self):
        with Load("R") as load:
            load.wait_sent(50)
            read_only(True)
            try:
                load.wait_sent(load.sent + 150)
            finally:
                read_only(False)
                writable = time.monotonic()
                waiting = len(glob.glob(os.path.join(stack.spool,
                                                     "*.spool")))
            # how fast the workers catch up while the load goes on
            wait_for("the spool drained", lambda: not glob.glob(
                os.path.join(stack.spool, "*.spool")), timeout=60,
                interval=0.05)
            secs = time.monotonic() - writable
            print("\nfault read-only return: %d spooled drained under load "
                  "in %.2f s (%.0f files/s)" % (waiting, secs,
                                                waiting / max(secs, 0.01)),
                  file=sys.stderr)
            load.wait_sent(load.sent + 50)
        lost, dup = report("read-only return", load)
        self.assertEqual(load.refused, {})
        self.assertEqual((lost, dup), ([], []))
        self.assertEqual(quarantined(), [])
        self.assertEqual(int(stack.psql(
            "SELECT count(*) FROM events WHERE provider_key LIKE 'SMR%' "
            "AND spooled_at IS NOT NULL")) > 0, True, "the spool was used")

    def test_1b_read_only_single_file_quiet(self):
        read_only(True)
        try:
            status, _ = send("SMQ0000000001")
            self.assertEqual(status, 200)
            self.assertEqual(len(glob.glob(os.path.join(stack.spool,
                                                         "*.spool"))), 1)
        finally:
            read_only(False)
        # no traffic, no operator: the workers catch up by themselves
        load = Load("Q")
        load.accepted = ["SMQ0000000001"]
        load.sent = 1
        lost, dup = report("read-only single file", load, wait_s=60)
        self.assertEqual((lost, dup), ([], []))
        self.assertEqual(quarantined(), [])

    def locked(self, rate, tag):
        lock = subprocess.Popen(
            stack.psql_command() + ["-qAtX", "-c",
             "BEGIN; LOCK TABLE messages IN ACCESS EXCLUSIVE MODE; "
             "SELECT pg_sleep(25);"], stdout=subprocess.DEVNULL)
        try:
            wait_for("the lock", lambda: stack.psql(
                "SELECT count(*) FROM pg_locks WHERE relation = "
                "'messages'::regclass AND mode = 'AccessExclusiveLock' "
                "AND granted") == "1")
            with Load(tag, rate=rate, threads=8 if rate > 20 else 2) as load:
                lock.wait()     # the 25 s of the lock
        finally:
            if lock.poll() is None:
                lock.kill()
                lock.wait()
        lost, dup = report("table locked 25 s at %d/s" % rate, load)
        spooled = int(stack.psql(
            "SELECT count(*) FROM events WHERE provider_key LIKE 'SM%s%%' "
            "AND spooled_at IS NOT NULL" % tag))
        print("fault table locked 25 s at %d/s: slowest %.2f s, %d over "
              "1 s, %d spooled" % (rate, load.slowest, len(load.slow),
                                   spooled), file=sys.stderr)
        self.assertGreater(spooled, 0, "the lock was in the way")
        self.assertEqual(load.refused, {})
        self.assertEqual(load.slow, [])
        self.assertEqual((lost, dup), ([], []))
        self.assertGreater(load.sent, rate * 20)

    def test_2a_table_locked_10_per_s(self):
        self.locked(10, "L")

    def test_2b_table_locked_100_per_s(self):
        self.locked(100, "M")

    def test_3_newest_worker_killed_every_second(self):
        kills = 0
        for _ in range(10):
            pids = stack.worker_pids()
            newest = max(pids, key=lambda p: os.stat("/proc/%d" % p)
                         .st_ctime_ns if os.path.exists("/proc/%d" % p)
                         else 0)
            stack.kill_worker(newest)
            kills += 1
            time.sleep(1)   # the fault's own pace, not a synchronisation
        wait_for("pool back to %d" % WORKERS,
                 lambda: len(stack.worker_pids()) == WORKERS, timeout=30)
        print("\nfault newest worker killed: %d SIGKILLs, pool %d"
              % (kills, len(stack.worker_pids())), file=sys.stderr)
        self.assertEqual(len(stack.worker_pids()), WORKERS)
        status, _ = send("SMK0000000001")
        self.assertEqual(status, 200)

    def test_4_quiet_site_catches_up(self):
        stack.stop_postgres()
        try:
            status, _ = send("SMZ0000000001")
            self.assertEqual(status, 200)
        finally:
            stack.start_postgres()
        t0 = time.monotonic()
        load = Load("Z")
        load.accepted = ["SMZ0000000001"]
        load.sent = 1
        lost, dup = report("quiet site", load, wait_s=60)
        print("fault quiet site: stored after %.1f s without traffic"
              % (time.monotonic() - t0), file=sys.stderr)
        self.assertEqual((lost, dup), ([], []))

    def test_5_full_spool_filesystem(self):
        full = stack.path("fullspool")
        os.mkdir(full)
        subprocess.run(AS_ROOT + ["mount", "-t", "tmpfs", "-o",
                                  "size=64k,mode=0777", "tmpfs", full],
                       check=True)
        try:
            try:
                with open(os.path.join(full, "filler"), "wb") as f:
                    while True:
                        f.write(b"x" * 4096)
                        f.flush()
            except OSError:
                pass        # full, as wanted
            old = stack.spool
            os.rename(old, old + ".real")
            os.symlink(full, old)
            stack.stop_postgres()
            try:
                r = stack.get("/healthz")
                self.assertEqual(r.status, 503, r)
                self.assertEqual(r.json()["spool"], "full")
            finally:
                stack.start_postgres()
                os.unlink(old)
                os.rename(old + ".real", old)
            wait_for("healthy", lambda: stack.get("/healthz").status == 200)
        finally:
            subprocess.run(AS_ROOT + ["umount", full], check=True)

    def test_6_restart_under_load(self):
        with Load("S") as load:
            load.wait_sent(100)
            before = set(stack.worker_pids())
            stack.restart_workers()
            wait_for("new workers", lambda: len(stack.worker_pids()) ==
                     WORKERS and not set(stack.worker_pids()) & before)
            load.wait_sent(load.sent + 100)
        lost, dup = report("restart under load", load)
        self.assertEqual(load.refused, {})
        self.assertEqual((lost, dup), ([], []))

    def test_7_killed_multiwatch_leaves_no_worker(self):
        pids = stack.worker_pids()
        p = stack.procs.pop("workers")
        p.kill()            # SIGKILL: multiwatch cannot stop them itself
        p.wait()

        def alive(pid):
            return (proc_stat(pid) or ["Z"])[0] != "Z"
        try:
            wait_for("no orphan worker", lambda: not any(
                alive(w) for w in pids), timeout=10)
            wait_for("their connections closed", lambda: stack.psql(
                "SELECT count(*) FROM pg_stat_activity WHERE "
                "application_name = 'telehook'") == "0", timeout=10)
            print("\nfault multiwatch killed: %d workers, 0 left running, "
                  "0 database connections" % len(pids), file=sys.stderr)
        finally:
            stack.start_workers()


load_tests = in_order(__name__)

if __name__ == "__main__":
    unittest.main(verbosity=2)
