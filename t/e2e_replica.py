"""
e2e_replica: the dashboard API's reads on a streaming replica
([database] read_conninfo), made by pg_basebackup -R from the test
cluster: served by the replica while it keeps up, by the primary while
it is more than read_max_lag_ms behind (its replay paused) or down;
webhooks always write the primary; /healthz reports the replica.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Stack, free_port, pg_bindir, wait_for,  # noqa
                     in_order, postmaster_pids, locks_on)
from e2e_twilio import sign, FORM  # noqa: E402

TOKEN = "replica-test-token"
NUMBER = "+15550004400"
stack = None
rep = {}
org = {}
n = [0]


def rpsql(sql):
    return subprocess.run(
        ["psql", "-h", stack.pgsock, "-p", str(rep["port"]), "-U",
         "telehook", "-d", "telehook", "-AtXc", sql], check=True,
        capture_output=True, text=True).stdout.strip()


def pg_ctl(*args):
    subprocess.run(stack._as_pg([os.path.join(pg_bindir(), "pg_ctl"), "-D",
                                 rep["dir"], "-w"] + list(args)),
                   check=True, stdout=subprocess.DEVNULL)


def start_replica():
    pg_ctl("-l", rep["dir"] + ".log", "-o",
           "-p %d -k %s -c listen_addresses='' -c hot_standby=on"
           % (rep["port"], stack.pgsock), "start")


def setUpModule():
    global stack
    stack = Stack(workers=2, extra_conf={"twilio": {"auth_token": TOKEN}})
    stack.start()
    rep["dir"] = stack.path("replica")
    rep["port"] = free_port()
    os.mkdir(rep["dir"], 0o700)
    open(rep["dir"] + ".log", "w").close()
    if os.geteuid() == 0:
        for p in (rep["dir"], rep["dir"] + ".log"):
            shutil.chown(p, "postgres", "postgres")
    subprocess.run(stack._as_pg([
        os.path.join(pg_bindir(), "pg_basebackup"), "-h", stack.pgsock,
        "-p", str(stack.pgport), "-U", "telehook", "-D", rep["dir"], "-R",
        "-X", "stream", "--no-sync", "-c", "fast"]), check=True)
    start_replica()
    wait_for("the replica in recovery",
             lambda: rpsql("SELECT pg_is_in_recovery()") == "t")
    # the workers read through the replica from now on
    with open(stack.conf) as f:
        conf = f.read()
    conf = conf.replace("[database]\n", '[database]\nread_conninfo = "host=%s '
                        'port=%d dbname=telehook user=telehook"\n'
                        'read_max_lag_ms = "300"\n'
                        % (stack.pgsock, rep["port"]), 1)
    with open(stack.conf, "w") as f:
        f.write(conf)
    stack.stop_workers()
    stack.start_workers()
    org["id"] = stack.ctl_ok("org", "add", "Replica Clinic").strip()
    stack.ctl_ok("number", "add", org["id"], NUMBER)
    org["token"] = stack.ctl_ok("token", "create", org["id"]).strip()


def tearDownModule():
    if stack is not None:
        if rep.get("up", True):
            pg_ctl("-m", "immediate", "stop")
        stack.stop()


def sms(body):
    n[0] += 1
    path = "/webhooks/twilio/sms/incoming"
    sid = "SM%032d" % (os.getpid() * 1000 + n[0])
    p = [("MessageSid", sid), ("AccountSid", "AC" + "4" * 32),
         ("From", "+15551114400"), ("To", NUMBER), ("Body", body),
         ("SmsStatus", "received")]
    r = stack.post(path, urllib.parse.urlencode(p), FORM, {
        "X-Twilio-Signature": sign(TOKEN, stack.public_url + path, p)})
    assert r.status == 200, r
    return sid


def activity():
    r = stack.get("/api/v1/organizations/%s/activity" % org["id"],
                  headers={"Authorization": "Bearer " + org["token"]})
    assert r.status == 200, r
    return [a["message_id"] for a in r.json()["activity"]]


def replica_health():
    return stack.get("/healthz").json()["read_replica"]


class Replica(unittest.TestCase):

    def test_1_reads_go_to_the_replica(self):
        sid = sms("first")
        # the webhook wrote the primary; the replica replays it
        wait_for("the replica has the message", lambda: rpsql(
            "SELECT count(*) FROM messages WHERE message_id = '%s'" % sid)
            == "1")
        wait_for("the replica in use", lambda: replica_health() == "ok")
        self.assertIn(sid, activity())
        # the read ran on the replica: its connection's last statement
        self.assertEqual(rpsql(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name "
            "= 'telehook-read' AND query LIKE '%th_api_activity%'"), "1")
        self.assertEqual(stack.psql(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name "
            "= 'telehook-read'"), "0")

    def test_2_behind_reads_the_primary(self):
        rpsql("SELECT pg_wal_replay_pause()")
        try:
            sid = sms("while the replica is paused")
            wait_for("the replica behind", lambda: replica_health() ==
                     "behind")
            self.assertEqual(rpsql(
                "SELECT count(*) FROM messages WHERE message_id = '%s'"
                % sid), "0")
            self.assertIn(sid, activity())     # only the primary has it
        finally:
            rpsql("SELECT pg_wal_replay_resume()")
        wait_for("the replica caught up", lambda: replica_health() == "ok")

    def test_3_down_reads_the_primary(self):
        pg_ctl("-m", "fast", "stop")
        rep["up"] = False
        try:
            sid = sms("while the replica is down")
            wait_for("the replica down", lambda: replica_health() == "down")
            self.assertIn(sid, activity())
            r = stack.get("/healthz")
            self.assertEqual((r.status, r.json()["status"]), (200, "ok"))
        finally:
            start_replica()
            rep["up"] = True
        wait_for("the replica back", lambda: replica_health() == "ok")
        stack.assert_no_crash()

    def test_4_frozen_replica_is_not_waited_for(self):
        """A replica that stops answering (every process SIGSTOPped: its
        statement_timeout never fires) costs a read half of what is left
        of its budget, then the primary answers; /healthz is not held
        either (telehook(8), Database)."""
        sid = sms("before the replica froze")
        wait_for("the replica in use", lambda: replica_health() == "ok")
        pids = postmaster_pids(rep["dir"])
        for p in pids:
            os.kill(p, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            r = stack.get("/api/v1/organizations/%s/activity" % org["id"],
                          headers={"Authorization": "Bearer " +
                                   org["token"]})
            api = time.monotonic() - t0
            # the API's budget (4 s in this harness): half for reads
            self.assertEqual(r.status, 200)
            self.assertIn(sid, [a["message_id"] for a in
                                r.json()["activity"]])
            self.assertLess(api, 4.0)
            time.sleep(1.1)     # the replica's state is a second old
            t0 = time.monotonic()
            r = stack.get("/healthz")
            self.assertLess(time.monotonic() - t0, 1.0)
            self.assertEqual(r.json()["read_replica"], "down")
        finally:
            for p in pids:
                os.kill(p, signal.SIGCONT)
        wait_for("the replica back", lambda: replica_health() == "ok")
        stack.assert_no_crash()

    def test_5_a_read_given_up_is_cancelled_on_the_replica(self):
        """A read the replica keeps waiting (here: for a lock its replay
        holds) is given up at its deadline, cancelled there and its
        connection closed, so no backend is left waiting on the
        replica for each read given up (telehook(8), Database)."""
        with open(stack.conf) as f:
            conf = f.read()
        # lag allowed, so that a paused replay keeps the replica in use
        with open(stack.conf, "w") as f:
            f.write(conf.replace('read_max_lag_ms = "300"',
                                 'read_max_lag_ms = "600000"'))
        stack.stop_workers()
        stack.start_workers()
        locker = subprocess.Popen(
            stack.psql_command() + ["-qX"], stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
        waiting = ("SELECT count(*) FROM pg_stat_activity WHERE "
                   "application_name = 'telehook-read' AND "
                   "wait_event_type = 'Lock'")
        try:
            wait_for("the replica in use", lambda: replica_health() == "ok")
            locker.stdin.write("BEGIN; LOCK TABLE activity IN ACCESS "
                               "EXCLUSIVE MODE;\n")
            locker.stdin.flush()
            wait_for("the lock on the primary", lambda: stack.psql(
                locks_on("activity", "AccessExclusiveLock", True)) == "1")
            stack.psql("SELECT pg_switch_wal()")    # sent to the replica
            wait_for("the lock replayed", lambda: rpsql(
                locks_on("activity", "AccessExclusiveLock")) == "1")
            rpsql("SELECT pg_wal_replay_pause()")
            locker.stdin.write("COMMIT;\n")
            locker.stdin.flush()
            wait_for("the primary's lock gone", lambda: stack.psql(
                locks_on("activity")) == "0")
            # the replica holds it still: the read waits there, is given
            # up, and the primary answers
            r = stack.get("/api/v1/organizations/%s/activity" % org["id"],
                          headers={"Authorization": "Bearer " +
                                   org["token"]})
            self.assertEqual(r.status, 200)
            self.assertIn("read replica: no answer within the deadline",
                          stack.worker_log())
            wait_for("no read waiting on the replica",
                     lambda: rpsql(waiting) == "0", timeout=10)
        finally:
            rpsql("SELECT pg_wal_replay_resume()")
            locker.stdin.close()
            locker.wait(10)
            with open(stack.conf, "w") as f:
                f.write(conf)
            stack.stop_workers()
            stack.start_workers()
        wait_for("the replica back", lambda: replica_health() == "ok")
        stack.assert_no_crash()


load_tests = in_order(__name__)

if __name__ == "__main__":
    unittest.main(verbosity=2)
