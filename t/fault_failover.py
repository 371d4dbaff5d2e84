"""
fault_failover: the primary dies and a standby is promoted, as Patroni
or any manager that promotes does (telehook(8), High availability).

A streaming standby is made from the test cluster (pg_basebackup -R);
the workers' conninfo names both hosts with
target_session_attrs=read-write.  Signed SMS webhooks are offered at a
fixed rate, open loop, for 20 s; a few seconds in, the primary is
killed (SIGKILL, postmaster and backends) and the standby promoted
(pg_ctl promote).  The standby is synchronous: a commit is
acknowledged once the standby has it (synchronous_standby_names), as
it must be for nothing acknowledged to be lost with the primary.
Then: no answer but 2xx, every answer within the
budget + 100 ms, every accepted webhook stored exactly once on the new
primary (the gap went to the spool and was drained there), and every
request that reached a worker 5 s after the promotion was written
straight to the new primary, not spooled: the workers found it
themselves.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
import types
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Stack, free_port, pg_bindir, stored_sms,  # noqa: E402
                     wait_for, in_order)
import fault_budget as fb  # noqa: E402

stack = None
standby = {}


def spsql(sql):
    return subprocess.run(
        ["psql", "-h", stack.pgsock, "-p", str(standby["port"]), "-U",
         "telehook", "-d", "telehook", "-AtXc", sql], check=True,
        capture_output=True, text=True).stdout.strip()


def setUpModule():
    global stack
    # durable: commits wait for the disk and, below, for the standby
    # (the suites' clusters run with synchronous_commit off)
    stack = fb.stack = Stack(
        workers=fb.WORKERS, multiwatch_args=fb.shipped_multiwatch_args(),
        rate_limit=100000, durable=True, extra_conf={
            "twilio": {"auth_token": fb.TOKEN},
            "database": {"statement_timeout_ms": "3000"},
            "server": {"answer_budget_ms": str(fb.BUDGET_MS),
                       "cache_ttl_s": "1", "log_level": "notice"}}).start()
    org = stack.ctl_ok("org", "add", "Fault Failover Clinic").strip()
    stack.ctl_ok("number", "add", org, fb.NUMBER)
    standby["dir"] = stack.path("standby")
    standby["port"] = free_port()
    os.mkdir(standby["dir"], 0o700)
    log = standby["dir"] + ".log"
    open(log, "w").close()
    if os.geteuid() == 0:
        for p in (standby["dir"], log):
            shutil.chown(p, "postgres", "postgres")
    subprocess.run(stack._as_pg([
        os.path.join(pg_bindir(), "pg_basebackup"), "-h", stack.pgsock,
        "-p", str(stack.pgport), "-U", "telehook", "-D", standby["dir"],
        "-R", "-X", "stream", "-c", "fast"]), check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    subprocess.run(stack._as_pg([
        os.path.join(pg_bindir(), "pg_ctl"), "-D", standby["dir"], "-w",
        "-l", log, "-o", "-p %d -k %s -c listen_addresses='' "
        "-c hot_standby=on -c max_connections=200" % (standby["port"],
                                                       stack.pgsock),
        "start"]),
        check=True, stdout=subprocess.DEVNULL)
    wait_for("the standby streaming", lambda: spsql(
        "SELECT pg_is_in_recovery()") == "t")
    # a commit is acknowledged once the standby has it too: without it
    # the last commits before the crash are lost with the primary
    # (telehook(8), High availability)
    stack.psql("ALTER SYSTEM SET synchronous_standby_names = '*'")
    stack.psql("SELECT pg_reload_conf()")
    wait_for("the standby synchronous", lambda: stack.psql(
        "SELECT sync_state FROM pg_stat_replication") == "sync")
    # both hosts, the writable one wanted: how a conninfo follows a
    # failover (libpq tries them in order)
    multi = ("host=%s,%s port=%d,%d dbname=telehook user=telehook "
             "target_session_attrs=read-write" % (
                 stack.pgsock, stack.pgsock, stack.pgport, standby["port"]))
    with open(stack.conf) as f:
        text = f.read()
    old = [ln for ln in text.splitlines()
           if ln.strip().startswith("conninfo")][0]
    with open(stack.conf, "w") as f:
        f.write(text.replace(old, 'conninfo = "%s"' % multi))
    stack.stop_workers()
    stack.start_workers()


def tearDownModule():
    if standby.get("dir"):
        subprocess.run(stack._as_pg([
            os.path.join(pg_bindir(), "pg_ctl"), "-D", standby["dir"],
            "-m", "immediate", "-w", "stop"]), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
    if stack is not None:
        stack.stop()


class Failover(unittest.TestCase):

    def test_primary_killed_standby_promoted(self):
        with fb.OpenLoad("fo") as load:
            time.sleep(4)
            for pid in fb.postgres_pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(1)       # the manager notices, then promotes
            subprocess.run(stack._as_pg([
                os.path.join(pg_bindir(), "pg_ctl"), "-D", standby["dir"],
                "-w", "promote"]), check=True, stdout=subprocess.DEVNULL)
            promoted = time.time()
            time.sleep(15)
        self.assertEqual(load.refused, {}, "answers other than 2xx")
        self.assertEqual(load.late, [], "answers past the budget")
        sent = set(load.accepted)
        self.assertEqual(len(sent), load.sent)
        # the gap's requests, spooled, drained into the new primary
        wait_for("the spool drained", lambda: not fb.spooled(), timeout=60)

        def stored():
            # on the new primary: harness.stored_sms through the standby
            return {sid: c[:2] for sid, c in stored_sms(
                types.SimpleNamespace(psql=spsql), "SMfo").items()}
        try:
            wait_for("everything stored", lambda: set(stored()) >= sent,
                     timeout=30)
        except RuntimeError:
            pass        # said precisely below
        got = stored()
        self.assertEqual(sorted(sent - set(got)), [], "lost")
        self.assertEqual(set(got), sent, "unknown")
        self.assertEqual({v for v in got.values()}, {(1, 1)},
                         "stored more than once")
        # five seconds after the promotion, no worker spools any more:
        # each found the new primary by itself
        late_spooled = spsql(
            "SELECT count(*) FROM events WHERE provider_key LIKE 'SMfo%%' "
            "AND spooled_at IS NOT NULL AND received_at > "
            "to_timestamp(%f)" % (promoted + 5))
        self.assertEqual(late_spooled, "0")
        print("fault failover: %d sent, %d spooled in the gap, slowest "
              "answer %.3f s" % (load.sent, int(spsql(
                  "SELECT count(*) FROM events WHERE provider_key LIKE "
                  "'SMfo%' AND spooled_at IS NOT NULL")), load.slowest))


load_tests = in_order(__name__)

if __name__ == "__main__":
    unittest.main(verbosity=2)
