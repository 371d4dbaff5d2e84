"""
e2e_foundation: the skeleton end to end, through real nginx, spawn-fcgi +
multiwatch workers and PostgreSQL: /healthz in every state, the
dispatcher's 404/405/413/415/400 answers, and bad input that must not
crash a worker.
"""

import fcntl
import grp
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Stack, health, healthy, wait_for, in_order,  # noqa: E402
                     retell_sign, proc_stat)

stack = None


def setUpModule():
    global stack
    # A small worker body limit, under nginx's 1 MiB, so the worker's own
    # check is what answers 413 in test_worker_body_limit.
    stack = Stack(workers=2, max_body_bytes=4096).start()


def tearDownModule():
    if stack is not None:
        stack.stop()


class Health(unittest.TestCase):

    def test_healthz_ok(self):
        r = stack.get("/healthz")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.headers["content-type"].startswith(
            "application/json"))
        self.assertEqual(health(r), healthy())
        self.assertEqual(r.json()["spool_oldest_s"], 0)

    def test_healthz_head_has_no_body(self):
        r = stack.request("HEAD", "/healthz")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"")

    def test_healthz_counts_spool(self):
        # hold the drain lock: idle workers would take (and quarantine)
        # the file before /healthz is asked
        lock = open(os.path.join(stack.spool, ".drain.lock"), "a")
        self.addCleanup(lock.close)
        fcntl.flock(lock, fcntl.LOCK_EX)
        f = os.path.join(stack.spool, "0001-test.spool")
        with open(f, "w") as fh:
            fh.write("x")
        try:
            r = stack.get("/healthz")
            self.assertEqual(r.status, 200)
            self.assertEqual(health(r), healthy(depth=1))
            # a file just written has waited no time to speak of
            self.assertLess(r.json()["spool_oldest_s"], 60)
        finally:
            os.unlink(f)
        # files being written (dot files) do not count
        f = os.path.join(stack.spool, ".0002-test.spool")
        open(f, "w").close()
        try:
            self.assertEqual(stack.get("/healthz").json()["spool_depth"], 0)
        finally:
            os.unlink(f)

    # telehook.conf(5) health_socket: /healthz has a listener of its
    # own, served by one worker's health server at a time, and the pool
    # answers it where none listens.

    @staticmethod
    def health_servers():
        """The pids that said they serve /healthz, newest last, alive
        and still a worker's child: pids are reused (pid_max may be
        32768), and a line from a server long gone may name a process
        of another kind now."""
        workers = {str(w) for w in stack.worker_pids()}
        pids = [int(p) for p in re.findall(
            r"^telehook\[(\d+)\]: health server ready on \S+$",
            stack.worker_log(), re.M)]
        pids = list(reversed(dict.fromkeys(reversed(pids))))
        return [p for p in pids if stack._alive({p}) and
                (proc_stat(p) or ["", ""])[1] in workers]

    def answered_by(self):
        """Who logged the last /healthz: "server" or "pool"."""
        pids = re.findall(r"^telehook\[(\d+)\]: \S+ GET healthz ",
                          stack.worker_log(), re.M)
        self.assertTrue(pids)
        return "pool" if int(pids[-1]) in stack.worker_pids() else "server"

    def healthz_with_the_pool_stopped(self):
        """GET /healthz, 2 s at most, with every pool worker SIGSTOPped:
        only a health server can answer it."""
        workers = stack.worker_pids()
        self.assertTrue(workers)
        for p in workers:
            os.kill(p, signal.SIGSTOP)
        try:
            return stack.request("GET", "/healthz", timeout=2)
        finally:
            for p in workers:
                os.kill(p, signal.SIGCONT)

    def test_healthz_answers_while_every_worker_is_stopped(self):
        wait_for("a health server", self.health_servers)
        r = self.healthz_with_the_pool_stopped()
        self.assertEqual(r.status, 200)
        self.assertEqual(health(r), healthy())
        self.assertEqual(self.answered_by(), "server")

    def test_a_clean_start_logs_no_warning(self):
        # telehook.8 Logging: warnings are for what went wrong; workers
        # that start on a sound configuration and database say they are
        # ready, and nothing else
        log = stack.path("workers.log")
        stack.stop_workers()
        start = os.path.getsize(log)
        stack.start_workers()
        wait_for("a health server", self.health_servers)
        with open(log) as f:
            f.seek(start)
            lines = f.read().splitlines()
        self.assertTrue(lines)
        for line in lines:
            self.assertRegex(line, r"^telehook\[\d+\]: (worker ready|"
                             r"health server ready on \S+|"
                             r"\S+ (GET|HEAD) healthz .*)$")

    def test_each_worker_forks_one_health_server(self):
        # telehook.conf(5) health_socket: one server a worker, forked
        # again only when it dies; watched for 2.5 s (the workers wake
        # every 0.25 s), no worker has more than that one child
        wait_for("a health server", self.health_servers)
        workers = stack.worker_pids()
        self.assertTrue(workers)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2.5:
            for w in workers:
                kids = subprocess.run(["pgrep", "-P", str(w)],
                                      capture_output=True,
                                      text=True).stdout.split()
                self.assertEqual(len(kids), 1, (w, kids))
            time.sleep(0.1)

    def test_healthz_server_taken_over_when_it_dies(self):
        wait_for("a health server", self.health_servers)
        first = self.health_servers()
        self.assertEqual(len(first), 1, "one server at a time")
        stack.kill_worker(first[0])
        wait_for("another health server",
                 lambda: [p for p in self.health_servers()
                          if p not in first])
        self.assertEqual(len(self.health_servers()), 1)
        r = self.healthz_with_the_pool_stopped()
        self.assertEqual(r.status, 200)

    def test_a_new_health_server_leaves_its_workers_connection(self):
        # telehook.conf(5) health_socket: the server forked again makes
        # a connection of its own and leaves its worker's alone.  Each
        # worker reads the API on its session; every server is killed;
        # once each worker has forked its next, those sessions are the
        # ones still answering, none closed and made again.
        org = stack.ctl_ok("org", "add", "Health Fork Clinic").strip()
        token = stack.ctl_json("token", "create", org)["token"]
        path = "/api/v1/organizations/%s/calls" % org

        def ask():
            r = stack.request("GET", path, headers={
                "Authorization": "Bearer " + token})
            self.assertEqual(r.status, 200, r)

        def api_sessions():
            # the sessions whose last statement read the calls
            return set(stack.psql(
                "SELECT pid FROM pg_stat_activity WHERE query LIKE "
                "'%%th_api_calls(%%' AND pid <> pg_backend_pid()").split())

        def kids():
            return {w: set(subprocess.run(
                ["pgrep", "-P", str(w)], capture_output=True,
                text=True).stdout.split()) for w in stack.worker_pids()}
        wait_for("a health server", self.health_servers)
        workers = stack.worker_pids()

        def both():
            ask()
            return len(api_sessions()) == len(workers)
        wait_for("each worker reading the API", both)
        before = api_sessions()
        old = kids()
        for w, ks in old.items():
            for k in ks:
                stack.kill_worker(int(k))
        wait_for("each worker's next health server", lambda: all(
            k and not (k & old[w]) for w, k in kids().items()))
        for _ in range(4 * len(workers)):
            ask()
        self.assertEqual(api_sessions(), before)

    def test_healthz_from_the_pool_when_no_health_server_listens(self):
        wait_for("a health server", self.health_servers)
        server = self.health_servers()
        os.unlink(stack.path("health.sock"))
        try:
            r = stack.get("/healthz")
            self.assertEqual(r.status, 200)
            self.assertEqual(health(r), healthy())
            # and the pool answered it: its line is a worker's
            self.assertEqual(self.answered_by(), "pool")
        finally:
            # another server binds the path again
            stack.kill_worker(server[0])
            wait_for("another health server",
                     lambda: [p for p in self.health_servers()
                              if p not in server])


    def test_health_socket_takes_the_mode_of_a_unix_pool(self):
        # telehook.conf(5) health_socket: the server listens "with the
        # mode of the workers' own socket" -- nginx connects to both.
        # A pool of one worker on a unix socket of mode 0604 (not the
        # 0660 telehook falls back to), with its own spool directory
        # (the servers' lock) and health socket.
        d = tempfile.mkdtemp(prefix="th-mode-", dir=stack.path())
        spool, sock, hsock = (os.path.join(d, n) for n in (
            "spool", "pool.sock", "health.sock"))
        os.mkdir(spool, 0o700)
        with open(stack.conf) as f:
            text = f.read()
        for old, new in ((stack.spool, spool),
                         (stack.path("health.sock"), hsock)):
            self.assertIn('"%s"' % old, text)
            text = text.replace('"%s"' % old, '"%s"' % new)
        conf = os.path.join(d, "telehook.conf")
        with open(conf, "w") as f:
            f.write(text)
        os.chmod(conf, 0o600)
        log = os.path.join(d, "pool.log")
        with open(log, "w") as out:
            pool = subprocess.Popen(
                ["spawn-fcgi", "-n", "-s", sock, "-M", "0604", "--",
                 stack.telehook, "-d", "-c", conf],
                stdout=out, stderr=out, stdin=subprocess.DEVNULL)
        try:
            def ready():
                with open(log) as f:
                    return ("health server ready on %s" % hsock) in f.read()
            wait_for("the pool's health server", ready)
            self.assertEqual(os.stat(sock).st_mode & 0o777, 0o604)
            self.assertEqual(os.stat(hsock).st_mode & 0o777, 0o604)
        finally:
            pool.terminate()
            pool.wait(10)


class HealthSocketPath(unittest.TestCase):
    """telehook.conf(5) health_socket: a unix socket's path, at most
    107 bytes (sun_path holds 108 with its NUL); a longer one is
    refused with a log line, and /healthz comes from the pool."""

    @staticmethod
    def cpu_ticks(pids):
        """User and system clock ticks the processes have used."""
        return sum(int(f[11]) + int(f[12]) for f in map(proc_stat, pids)
                   if f is not None)

    def run_with(self, n, workers=1):
        d = tempfile.mkdtemp(prefix="th-")
        os.chmod(d, 0o755)
        path = os.path.join(d, "h" * (n - len(d) - 1))
        self.assertEqual(len(path), n)
        s = Stack(workers=workers,
                  extra_conf={"server": {"health_socket": path}})
        try:
            s.start()
            r = s.get("/healthz")
            self.assertEqual(r.status, 200)
            wait_for("the health server's try", lambda: os.path.exists(
                path) or "path too long" in s.worker_log())
            # the health servers (a child each worker) over a second:
            # one that cannot listen waits, it does not spin
            kids = [int(k) for w in s.worker_pids() for k in subprocess.run(
                ["pgrep", "-P", str(w)], capture_output=True,
                text=True).stdout.split()]
            t0 = self.cpu_ticks(kids)
            time.sleep(1)   # a window measured, not a wait for a state
            used = self.cpu_ticks(kids) - t0
            return os.path.exists(path), s.worker_log(), used, len(kids)
        finally:
            s.stop()
            subprocess.run(["rm", "-rf", d])

    def test_107_bytes_bound(self):
        bound, log, used, kids = self.run_with(107)
        self.assertTrue(bound)
        self.assertNotIn("path too long", log)
        self.assertEqual(kids, 1)

    def test_108_bytes_refused(self):
        # two workers: the one holding the lock says so once and idles
        bound, log, used, kids = self.run_with(108, workers=2)
        self.assertFalse(bound)
        self.assertEqual(log.count("path too long"), 1, log)
        self.assertEqual(kids, 2)
        self.assertLess(used, 20)       # of 100 ticks a second


class Dispatch(unittest.TestCase):

    def test_unknown_webhook_route_is_404_json(self):
        r = stack.post("/webhooks/nosuchprovider/x", "a=1",
                       "application/x-www-form-urlencoded")
        self.assertEqual(r.status, 404)
        self.assertEqual(r.json(), {"error": "unknown route"})

    def test_unknown_api_route_is_404_json(self):
        r = stack.get("/api/v1/nothing")
        self.assertEqual(r.status, 404)
        self.assertIn("error", r.json())

    def test_wrong_method_is_405_with_allow(self):
        r = stack.post("/healthz", "", "application/x-www-form-urlencoded")
        self.assertEqual(r.status, 405)
        self.assertEqual(r.headers.get("allow"), "GET, HEAD")
        self.assertEqual(r.json(), {"error": "method POST not allowed"})
        r = stack.request("DELETE", "/healthz")
        self.assertEqual(r.status, 405)

    def test_bad_percent_escape_in_query(self):
        for q in ("x=%zz", "x=%4", "x=%"):
            r = stack.get("/healthz?" + q)
            self.assertEqual(r.status, 400, q)
            self.assertEqual(r.json(),
                             {"error": "bad percent-escape in query string"})

    def test_nul_in_query(self):
        r = stack.get("/healthz?x=a%00b")
        self.assertEqual(r.status, 400)
        self.assertIn("NUL", r.json()["error"])

    def test_unsupported_content_type(self):
        r = stack.request("GET", "/healthz", body=b"a,b",
                          headers={"Content-Type": "text/csv"})
        self.assertEqual(r.status, 415)
        self.assertEqual(r.json(), {"error": "unsupported content type"})

    def test_body_on_route_that_takes_none(self):
        r = stack.request("GET", "/healthz", body=b"hello")
        self.assertEqual(r.status, 415)
        self.assertEqual(r.json(), {"error": "this route takes no body"})

    def test_worker_body_limit(self):
        r = stack.request("GET", "/healthz", body=b"x" * 5000)
        self.assertEqual(r.status, 413)
        self.assertEqual(r.json(),
                         {"error": "body larger than max_body_bytes"})

    def test_nginx_body_limit(self):
        r = stack.post("/webhooks/twilio/sms/incoming", b"a=" + b"x" *
                       (1024 * 1024 + 10), "application/x-www-form-urlencoded")
        self.assertEqual(r.status, 413)
        self.assertEqual(r.json(),
                         {"error": "body larger than client_max_body_size"})

    def test_truncated_body_does_not_reach_or_hurt_workers(self):
        before = sorted(stack.worker_pids())
        out = stack.raw(b"POST /webhooks/twilio/sms/incoming HTTP/1.1\r\n"
                        b"Host: localhost\r\nContent-Type: "
                        b"application/x-www-form-urlencoded\r\n"
                        b"Content-Length: 100\r\n\r\nFrom=%2B1")
        # nginx waits for the rest, sees the close, and drops the request
        self.assertNotIn(b" 200 ", out)
        self.assertEqual(stack.get("/healthz").status, 200)
        self.assertEqual(sorted(stack.worker_pids()), before)

    def test_dashboard_page_is_served(self):
        r = stack.get("/dashboard/00000000-0000-0000-0000-000000000000")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.headers["content-type"].startswith("text/html"))
        self.assertIn(b"<!doctype html>", r.body.lower())

    def test_compat_path_reaches_the_workers(self):
        # The worker, not nginx, answers, and fails closed: this stack
        # configures no VoIP.ms verification.
        r = stack.post("/api/voip/sms/webhook", "{}", "application/json")
        self.assertEqual(r.status, 401)
        self.assertEqual(r.json(),
                         {"error": "no VoIP.ms verification configured"})

    def test_a_crash_is_seen(self):
        # multiwatch replaces a crashed worker at once, so the pool's
        # size and /healthz look the same: the harness must still see
        # it, in every build (t/harness.py, crashed_workers).
        victim = stack.worker_pids()[0]
        os.kill(victim, signal.SIGABRT)   # as a failed assert() does
        wait_for("the pool replaced worker %d" % victim, lambda:
                 victim not in stack.worker_pids() and
                 len(stack.worker_pids()) == 2)
        self.assertEqual(stack.get("/healthz").status, 200)
        self.assertEqual(stack.crashed_workers(), [victim])
        self.assertIn("exited without", stack.crash_report())
        stack.killed.add(victim)        # this one was on purpose
        self.assertIsNone(stack.crash_report())

    def test_unconfigured_providers_fail_closed(self):
        # No [retell] keys and no organization keys: refused, saying why,
        # however well the request is signed.
        body = '{"event": "call_started", "call": {"call_id": "c1"}}'
        r = stack.post("/webhooks/retell", body, "application/json", {
            "X-Retell-Signature": retell_sign("any-key", body)})
        self.assertEqual((r.status, r.json()), (401, {
            "error": "no Retell verification configured"}))
        self.assertEqual(stack.psql("SELECT count(*) FROM events"), "0")

    def test_no_worker_crashed(self):
        # Runs last in this class (alphabetical): everything above left
        # the pool as it was.
        pids = stack.worker_pids()
        self.assertEqual(len(pids), 2)
        stack.assert_no_crash()


class Outage(unittest.TestCase):
    """Runs after the others: it stops and restarts PostgreSQL."""

    def test_database_down_then_back(self):
        stack.stop_postgres()
        try:
            r = stack.get("/healthz")
            self.assertEqual(r.status, 200)
            self.assertEqual(health(r), healthy(db="down"))
            # With the spool gone too, no webhook could be taken: 503.
            os.rename(stack.spool, stack.spool + ".away")
            try:
                r = stack.get("/healthz")
                self.assertEqual(r.status, 503)
                self.assertEqual(r.json()["database"], "down")
            finally:
                os.rename(stack.spool + ".away", stack.spool)
        finally:
            stack.start_postgres()
        wait_for("database back", lambda: health(stack.get("/healthz")) ==
                 healthy())
        log = stack.worker_log()
        self.assertIn("database unreachable", log)
        self.assertIn("database connected again", log)


class Startup(unittest.TestCase):

    def run_telehook(self, *args):
        return subprocess.run([stack.telehook] + list(args),
                              capture_output=True, text=True,
                              stdin=subprocess.DEVNULL)

    def write(self, name, text, mode=0o600):
        p = stack.path(name)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, mode)
        return p

    def test_check_mode_accepts_the_test_config(self):
        p = self.run_telehook("-n", "-c", stack.conf)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("configuration OK", p.stderr)

    def test_missing_config(self):
        p = self.run_telehook("-n", "-c", stack.path("nope.conf"))
        self.assertEqual(p.returncode, 78)
        self.assertIn("nope.conf: No such file or directory", p.stderr)

    def test_config_errors_name_file_and_line(self):
        c = self.write("bad.conf", "[server]\nlog_level = info\n"
                       "colour = blue\n[nosuch]\nx = 1\n"
                       "[database]\nstatement_timeout_ms = 5\n")
        p = self.run_telehook("-n", "-c", c)
        self.assertEqual(p.returncode, 78)
        self.assertIn("bad.conf:3: unknown key colour in [server]", p.stderr)
        self.assertIn("bad.conf:4: unknown section [nosuch]", p.stderr)
        self.assertIn("bad.conf:7: statement_timeout_ms is too small",
                      p.stderr)

    def test_readable_config_with_secrets_is_refused(self):
        c = self.write("open.conf", "[retell]\napi_key = k\n", 0o644)
        p = self.run_telehook("-n", "-c", c)
        self.assertEqual(p.returncode, 78)
        self.assertIn("holds secrets but is world-readable", p.stderr)
        os.chmod(c, 0o600)
        p = self.run_telehook("-n", "-c", c)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_group_readable_config_through_a_supplementary_group(self):
        # telehook.conf(5): a file with secrets may be group-readable
        # when that group is one of the reading process's own, its
        # supplementary groups too; not when it is none of them
        if os.geteuid() != 0:
            self.skipTest("needs root to read as another user")
        d = tempfile.mkdtemp(prefix="th-grp-")
        self.addCleanup(shutil.rmtree, d, True)
        os.chmod(d, 0o755)
        c = os.path.join(d, "grp.conf")
        with open(c, "w") as f:
            f.write("[retell]\napi_key = k\n")
        # the reader's own file (it may read it whatever the group),
        # group-readable by "users"
        group = grp.getgrnam("users").gr_gid
        nobody = pwd.getpwnam("nobody")
        os.chown(c, nobody.pw_uid, group)
        os.chmod(c, 0o640)
        for extra, code in (([group], 0), ([], 78)):
            p = subprocess.run([stack.telehook, "-n", "-c", c],
                               capture_output=True, text=True,
                               stdin=subprocess.DEVNULL,
                               user=nobody.pw_uid, group=nobody.pw_gid,
                               extra_groups=extra)
            self.assertEqual(p.returncode, code, (extra, p.stderr))
            if code:
                self.assertIn("group", p.stderr)

    def test_unreadable_config(self):
        c = self.write("dir.conf", "")
        os.unlink(c)
        os.mkdir(c)
        p = self.run_telehook("-n", "-c", c)
        self.assertEqual(p.returncode, 78)
        self.assertIn("dir.conf", p.stderr)

    def test_not_under_spawn_fcgi(self):
        p = self.run_telehook("-d", "-c", stack.conf)
        self.assertEqual(p.returncode, 1)
        self.assertIn("not a FastCGI socket", p.stderr)

    def test_usage(self):
        p = self.run_telehook("-x")
        self.assertEqual(p.returncode, 64)
        self.assertIn("usage: telehook", p.stderr)


load_tests = in_order(__name__)

if __name__ == "__main__":
    unittest.main(verbosity=2)
