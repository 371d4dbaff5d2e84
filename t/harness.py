"""
t/harness.py: the end-to-end test stack.

Starts, on free loopback ports and in a private temporary directory:

  * a PostgreSQL cluster (initdb + postgres, as the "postgres" user when
    run as root, since PostgreSQL refuses to run as root), migrated with
    telehookctl;
  * the worker pool exactly as production runs it:
    spawn-fcgi -n -- multiwatch -f N -- telehook -d -c telehook.conf;
  * nginx with the shipped telehook-upstream.conf (its socket pointed at
    the workers' port), telehook.conf and compat.conf in a server block.

Tests then talk HTTP to nginx.  Nothing is mocked.  With TELEHOOK_PREFIX
set, the binaries, SQL and nginx files are taken from an installed tree
instead of the build tree.  TELEHOOK_KEEP=1 keeps the directory.
"""

import base64
import fnmatch
import glob
import hashlib
import hmac
import http.client
import inspect
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

SRCDIR = os.environ.get("top_srcdir") or os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))
BUILDDIR = os.environ.get("top_builddir") or SRCDIR
PREFIX = os.environ.get("TELEHOOK_PREFIX")


def free_port():
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bindir():
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                  key=lambda d: int(d.split("/")[-2]))
    if not dirs:
        raise RuntimeError("PostgreSQL server binaries not found "
                           "(Debian: postgresql)")
    return dirs[-1]


def twilio_sign(token, url, params):
    """X-Twilio-Signature as the SDKs compute it (twilio-python's
    RequestValidator.compute_signature): the URL, then each parameter
    name and value, names sorted and values sorted within a name,
    duplicates once; HMAC-SHA1 under the token, base64."""
    data = url
    for name in sorted({k for k, _ in params}):
        for value in sorted({v for k, v in params if k == name}):
            data += name + value
    mac = hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(mac).decode()


def retell_sign(key, body, ts=None):
    """X-Retell-Signature as retell-sdk verifies it: v=<ms>,d=<hex of
    HMAC-SHA256 under the key over the body and the decimal ms>."""
    if ts is None:
        ts = int(time.time() * 1000)
    d = hmac.new(key.encode(), body.encode() + str(ts).encode(),
                 hashlib.sha256).hexdigest()
    return "v=%d,d=%s" % (ts, d)


def in_order(module_name):
    """A load_tests for a suite: its classes in the order the file has
    them, and each class's tests likewise, not alphabetically; a test
    that must come last (one that stops PostgreSQL, one that looks for
    crashes) is simply written last."""
    def load_tests(loader, standard, pattern):
        mod = sys.modules[module_name]
        suite = unittest.TestSuite()
        # -k PATTERN, as unittest's own loader takes it (dev/mutate)
        pats = getattr(loader, "testNamePatterns", None) or []

        def wanted(c, n):
            full = "%s.%s.%s" % (mod.__name__, c.__qualname__, n)
            return not pats or any(fnmatch.fnmatchcase(full, p)
                                   for p in pats)
        classes = [c for c in vars(mod).values()
                   if isinstance(c, type) and issubclass(c, unittest.TestCase)
                   and c.__module__ == mod.__name__]
        classes.sort(key=lambda c: inspect.getsourcelines(c)[1])
        for c in classes:
            names = [n for n in vars(c) if n.startswith("test") and
                     callable(getattr(c, n))]
            names.sort(key=lambda n: getattr(c, n).__code__.co_firstlineno)
            suite.addTests(c(n) for n in names if wanted(c, n))
        return suite
    return load_tests


def need(*programs):
    """Exit 77 (automake's SKIP) naming a program this suite needs and
    the machine lacks; dev/check installs them all, so it never skips."""
    missing = [p for p in programs if (os.access(p, os.X_OK) if "/" in p
                                       else shutil.which(p) is not None)
               is False]
    if missing:
        print("SKIP: not installed: " + ", ".join(missing), file=sys.stderr)
        sys.stderr.flush()
        os._exit(77)    # past unittest, which would count it an error


def health(r):
    """/healthz's JSON without spool_oldest_s, which moves with the
    clock; the rest is compared whole."""
    j = r.json()
    assert isinstance(j.pop("spool_oldest_s"), (int, float)), j
    return j


def healthy(db="ok", depth=0, status=None, spool="ok", quarantined=0,
            breaker=False, replica="none", reason="none"):
    """What /healthz says in a state (telehook(8), architecture.md §11 and more)."""
    return {"status": status or ("ok" if db == "ok" and depth == 0 and
                                 quarantined == 0 and spool == "ok" and
                                 not breaker else "degraded"),
            "database": db, "spool_depth": depth, "spool": spool,
            "quarantined": quarantined, "breaker_open": breaker,
            "breaker_reason": reason,
            "read_replica": replica}


def wait_for(what, cond, timeout=30.0, interval=0.05):
    """Poll cond() until it is true; fail after timeout seconds.  An
    exception cond() raised is taken as "not yet", and the last one is
    raised with the timeout, so an SQL error says so instead of only
    "timed out"."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            if cond():
                return
        except Exception as e:      # noqa: BLE001 (kept, raised below)
            last = e
        if time.monotonic() > deadline:
            raise RuntimeError("timed out waiting for %s%s" % (
                what, " (last error: %r)" % (last,) if last else "")) \
                from last
        time.sleep(interval)


def balancer(port, backends, d):
    """A balancing nginx on 127.0.0.1:port in front of backends
    ("addr:port" of hosts' nginx), as telehook(8), Several hosts, shows
    one; its files in d.  Started in its own process group; returns the
    Popen once /healthz answers through it."""
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write("""%(user)sdaemon off;
worker_processes 1;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log info;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %(d)s/body;
    proxy_temp_path %(d)s/proxy;
    upstream hosts {
        %(servers)s
        keepalive 32;
    }
    server {
        listen 127.0.0.1:%(port)d;
        location / {
            proxy_pass http://hosts;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_connect_timeout 1s;
            proxy_read_timeout 20s;
            # safe for webhooks: a retried request is a redelivery, which
            # telehook stores once and answers as it did the first time
            proxy_next_upstream error timeout non_idempotent;
        }
    }
}
""" % {"user": "user root;\n" if os.geteuid() == 0 else "", "d": d,
       "port": port, "servers": "\n        ".join(
           "server %s max_fails=1 fail_timeout=2s;" % b for b in backends)})
    for t in ("body", "proxy"):
        os.makedirs(os.path.join(d, t), exist_ok=True)
    p = subprocess.Popen(
        ["nginx", "-p", d, "-c", os.path.join(d, "nginx.conf"), "-e",
         os.path.join(d, "error.log")], stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)

    def up():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        c.request("GET", "/healthz")
        return c.getresponse().status == 200
    wait_for("the balancer", up)
    return p


def drain_spool(stack):
    """Drain stack's spool until it is empty (its workers may be
    draining too: telehookctl answers 75 then)."""
    def empty():
        p = stack.ctl("spool", "drain")
        assert p.returncode in (0, 75), p.stderr
        return not [f for f in os.listdir(stack.spool)
                    if f.endswith(".spool")]
    wait_for("an empty spool", empty, timeout=120, interval=0.2)


def stored_sms(stack, prefix):
    """For each stored SMS whose MessageSid starts with prefix: how many
    events, messages and activity entries it has, (1, 1, 1) when it is
    stored exactly once."""
    rows = stack.psql(
        "SELECT m.message_id, count(DISTINCT e.id), count(DISTINCT m.id), "
        "count(DISTINCT a.id) FROM messages m "
        "LEFT JOIN events e ON e.provider = 'twilio' AND "
        "e.provider_key = m.message_id || ':received' "
        "LEFT JOIN activity a ON a.message_id = m.id "
        "WHERE m.message_id LIKE '%s%%' GROUP BY m.message_id" % prefix)
    stored = {}
    for line in rows.splitlines():
        sid, ev, msg, act = line.split("|")
        stored[sid] = (int(ev), int(msg), int(act))
    return stored


class Load:
    """Threads calling send(n, thread) -> (sid, status, seconds) until
    stopped, at a fixed total rate or as fast as they go, counted: sent,
    accepted sids (2xx), refused {status: count}, slow (over 1 s)."""

    def __init__(self, send, threads=4, rate=None, wait_timeout=60,
                 tag=None):
        self.send, self.rate, self.wait_timeout = send, rate, wait_timeout
        self.tag = tag
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.accepted, self.refused, self.slow = [], {}, []
        self.slowest = 0.0
        self.sent = 0
        self.n = 0
        self.threads = [threading.Thread(target=self.run, args=(i,))
                        for i in range(threads)]

    def run(self, i):
        gap = len(self.threads) / self.rate if self.rate else 0
        nxt = time.monotonic()
        while not self.stop.is_set():
            with self.lock:
                self.n += 1
                n = self.n
            sid, status, secs = self.send(n, i)
            with self.lock:
                self.sent += 1
                if status is not None and 200 <= status < 300:
                    self.accepted.append(sid)
                else:
                    self.refused[status] = self.refused.get(status, 0) + 1
                self.slowest = max(self.slowest, secs)
                if secs > 1.0:
                    self.slow.append(secs)
            if gap:
                nxt += gap
                self.stop.wait(max(0.0, nxt - time.monotonic()))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(60)

    def wait_sent(self, n):
        wait_for("%d requests" % n, lambda: self.sent >= n,
                 timeout=self.wait_timeout)


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<%d %r>" % (self.status, self.body[:200])


class Stack:
    """One PostgreSQL, one worker pool, one nginx."""

    def __init__(self, workers=2, extra_conf=None, max_body_bytes=None,
                 secret_key=False, multiwatch_args=(), rate_limit=None,
                 trusted_proxies=(), durable=False, extra_locations="",
                 own_upstream=None, worker_wrapper=(), pooler=None,
                 host_addr="127.0.0.1", database=None):
        self.workers = workers
        # several hosts (t/fault_hosts.py): nginx on its own loopback
        # address, and another stack's PostgreSQL instead of one's own
        self.host_addr = host_addr
        self.database = database
        # TELEHOOK_POOLER=transaction: the workers and telehookctl reach
        # PostgreSQL through a real PgBouncer in transaction pooling
        # (t/e2e_pgbouncer.sh runs the suites so); psql() stays direct
        if pooler is None:
            pooler = os.environ.get("TELEHOOK_POOLER") or None
        self.pooler = pooler
        # a command each worker runs under (strace, for t/e2e_durability)
        self.worker_wrapper = list(worker_wrapper)
        # architecture.md §2: the operator's own upstream block and nothing else
        # at http level (no limits file); else the shipped upstream and
        # limits files, as example-site.conf includes them.
        # (TELEHOOK_OWN_UPSTREAM=1: that site for every suite)
        if own_upstream is None:
            own_upstream = os.environ.get("TELEHOOK_OWN_UPSTREAM") == "1"
        self.own_upstream = own_upstream
        self.durable = durable          # fsync'd commits (benchmarks)
        self.extra_locations = extra_locations
        self.trusted_proxies = list(trusted_proxies)
        self.rate_limit = rate_limit
        self.multiwatch_args = list(multiwatch_args)
        self.secret_key = secret_key
        self.extra_conf = extra_conf or {}
        self.max_body_bytes = max_body_bytes
        self.procs = {}
        self.killed = set()     # workers a test killed on purpose
        self.dir = None
        if PREFIX:
            self.sbindir = os.path.join(PREFIX, "sbin")
            share = os.path.join(PREFIX, "share", "telehook")
            self.sqldir = os.path.join(share, "sql")
            self.nginx_upstream = os.path.join(share, "nginx",
                                               "telehook-upstream.conf")
            self.nginx_site = os.path.join(share, "nginx", "telehook.conf")
            self.nginx_compat = os.path.join(share, "nginx", "compat.conf")
            self.nginx_webhook = os.path.join(share, "nginx",
                                              "telehook-webhook.conf")
            self.nginx_limits = os.path.join(share, "nginx",
                                             "telehook-limits.conf")
        else:
            self.sbindir = BUILDDIR
            self.sqldir = os.path.join(SRCDIR, "sql")
            self.nginx_upstream = os.path.join(SRCDIR, "nginx",
                                               "telehook-upstream.conf")
            self.nginx_site = os.path.join(BUILDDIR, "nginx",
                                           "telehook.conf")
            self.nginx_compat = os.path.join(BUILDDIR, "nginx",
                                             "compat.conf")
            self.nginx_webhook = os.path.join(BUILDDIR, "nginx",
                                              "telehook-webhook.conf")
            self.nginx_limits = os.path.join(SRCDIR, "nginx",
                                             "telehook-limits.conf")
        self.telehook = os.path.join(self.sbindir, "telehook")
        self.telehookctl = os.path.join(self.sbindir, "telehookctl")

    # -- lifecycle ---------------------------------------------------

    def start(self):
        need("nginx", "spawn-fcgi", "/usr/bin/multiwatch", "psql",
             self.telehook, self.telehookctl,
             *(["runuser"] if os.geteuid() == 0 else []))
        self.dir = tempfile.mkdtemp(prefix="telehook-e2e-")
        os.chmod(self.dir, 0o755)
        try:
            if self.database is not None:
                self.pgsock = self.database.pgsock
                self.pgport = self.database.pgport
            else:
                self._start_postgres()
            if self.pooler:
                self._start_pgbouncer()
            self._write_conf()
            self.ctl_ok("migrate")
            self.start_workers()
            self._start_nginx()
        except BaseException:
            self.dump_logs()
            self.stop()
            raise
        return self

    def stop(self):
        had_workers = "workers" in self.procs
        for name in ("nginx", "workers"):
            p = self.procs.pop(name, None)
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        crashed = None
        if had_workers and self.dir:
            # the pool is stopped: every worker has said "worker done",
            # or it crashed (PR_SET_PDEATHSIG stops any straggler)
            try:
                wait_for("workers gone", lambda: not self._alive(
                    self._worker_ids("worker ready")), 15)
            except RuntimeError:
                pass
            crashed = self.crash_report()
            if crashed:
                self.dump_logs()
        p = self.procs.pop("pgbouncer", None)
        if p is not None:
            p.terminate()
            p.wait(10)
        if self.procs.pop("postgres", None):
            self.stop_postgres()
        if self.dir and not os.environ.get("TELEHOOK_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)
        elif self.dir:
            print("kept", self.dir, file=sys.stderr)
        if crashed:
            raise AssertionError(crashed)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if exc[0] is not None:
            self.dump_logs()
        self.stop()

    def path(self, *p):
        return os.path.join(self.dir, *p)

    def dump_logs(self):
        if not self.dir:
            return
        for name in ("workers.log", "nginx/error.log", "postgres.log"):
            p = self.path(name)
            if os.path.exists(p):
                with open(p, errors="replace") as f:
                    tail = f.read()[-4000:]
                print("---- %s ----\n%s" % (name, tail), file=sys.stderr)

    # -- PostgreSQL --------------------------------------------------

    def _as_pg(self, argv):
        """Run PostgreSQL programs as postgres when we are root."""
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--"] + argv
        return argv

    def _start_postgres(self):
        bindir = pg_bindir()
        self.pgdata = self.path("pg")
        self.pgsock = self.path("pgsock")
        os.mkdir(self.pgdata, 0o700)
        os.mkdir(self.pgsock, 0o755)
        open(self.path("postgres.log"), "w").close()
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            for p in (self.pgdata, self.pgsock, self.path("postgres.log")):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        subprocess.run(self._as_pg([
            os.path.join(bindir, "initdb"), "-D", self.pgdata, "-A",
            "trust", "-U", "telehook", "-E", "UTF8", "--no-sync",
            "--locale=C"]), check=True, stdout=subprocess.DEVNULL)
        self.pgport = free_port()
        self.procs["postgres"] = True
        self.start_postgres()
        subprocess.run([os.path.join(bindir, "createdb"), "-h", self.pgsock,
                        "-p", str(self.pgport), "-U", "telehook",
                        "telehook"], check=True)

    def start_postgres(self):
        bindir = pg_bindir()
        subprocess.run(self._as_pg([
            os.path.join(bindir, "pg_ctl"), "-D", self.pgdata, "-l",
            self.path("postgres.log"), "-w", "-o",
            "-p %d -k %s -c listen_addresses='' %s"
            % (self.pgport, self.pgsock,
               "-c max_connections=200 -c shared_buffers=256MB"
               if self.durable else
               "-c fsync=off -c full_page_writes=off "
               "-c synchronous_commit=off"), "start"]),
            check=True, stdout=subprocess.DEVNULL)
        if "pgbouncer" in self.procs:
            # PgBouncer retries a server it could not reach after
            # server_login_retry: the database is back when it is
            # reachable through the pooler
            def through():
                return subprocess.run(
                    ["psql", "-h", "127.0.0.1", "-p", str(self.bouncer_port),
                     "-U", "telehook", "-d", "telehook", "-AtXqc",
                     "SELECT 1"], capture_output=True).returncode == 0
            wait_for("the database through pgbouncer", through)

    def stop_postgres(self):
        subprocess.run(self._as_pg([
            os.path.join(pg_bindir(), "pg_ctl"), "-D", self.pgdata, "-m",
            "fast", "-w", "stop"]), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)

    def psql_command(self):
        """psql connected straight to the cluster, as telehook: for a
        session a test holds open (a lock, a transaction)."""
        return ["psql", "-h", self.pgsock, "-p", str(self.pgport), "-U",
                "telehook", "-d", "telehook"]

    def psql(self, sql, *params):
        """One value (or rows, tab-separated) from a query."""
        out = subprocess.run(
            self.psql_command() + ["-AtX", "-v", "ON_ERROR_STOP=1", "-c",
                                   sql], check=True, capture_output=True,
            text=True)
        return out.stdout.strip()

    # -- configuration -------------------------------------------------

    def conninfo(self):
        if self.pooler:
            return ("host=127.0.0.1 port=%d dbname=telehook user=telehook"
                    % self.bouncer_port)
        return "host=%s port=%d dbname=telehook user=telehook" % (
            self.pgsock, self.pgport)

    def _start_pgbouncer(self):
        """PgBouncer (Debian's) in front of the cluster, pool_mode as
        asked, run as the cluster's user (it refuses root)."""
        need("/usr/sbin/pgbouncer")
        self.bouncer_port = free_port()
        d = self.path("pgbouncer")
        os.mkdir(d, 0o755)
        with open(os.path.join(d, "userlist.txt"), "w") as f:
            f.write('"telehook" ""\n')
        with open(os.path.join(d, "pgbouncer.ini"), "w") as f:
            f.write("""[databases]
telehook = host=%(sock)s port=%(port)d dbname=telehook
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %(bport)d
unix_socket_dir =
auth_type = trust
auth_file = %(d)s/userlist.txt
pool_mode = %(mode)s
max_client_conn = 400
default_pool_size = 20
%(tuned)slogfile = %(d)s/pgbouncer.log
pidfile = %(d)s/pgbouncer.pid
""" % {"sock": self.pgsock, "port": self.pgport, "bport": self.bouncer_port,
       "d": d, "mode": self.pooler,
       # telehook(8)'s settings, or (TELEHOOK_POOLER_DEFAULTS=1)
       # PgBouncer's own: 15 s to connect, 120 s in its queue
       "tuned": "" if os.environ.get("TELEHOOK_POOLER_DEFAULTS") == "1"
       else "server_connect_timeout = 2\nserver_login_retry = 1\n"
       "query_wait_timeout = 5\n"})
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            for p in (d, os.path.join(d, "userlist.txt"),
                      os.path.join(d, "pgbouncer.ini")):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        self.procs["pgbouncer"] = subprocess.Popen(
            self._as_pg(["/usr/sbin/pgbouncer", os.path.join(
                d, "pgbouncer.ini")]), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)

        def up():
            with socket.create_connection(("127.0.0.1", self.bouncer_port),
                                          0.5):
                return True
        wait_for("pgbouncer", up)

    def _write_conf(self):
        self.nginx_port = free_port()
        self.fcgi_port = free_port()
        self.spool = self.path("spool")
        os.mkdir(self.spool, 0o700)
        self.public_url = "http://%s:%d" % (self.host_addr, self.nginx_port)
        conf = {
            "database": {"conninfo": self.conninfo(),
                         "statement_timeout_ms": "2000"},
            # the suites share two cores with others: a transaction a
            # few hundred ms late must not open the breaker and spool
            # what a test then looks for in the database.  The budget
            # itself is t/fault_budget.py's, at its default, 1000.
            "server": {"public_url": self.public_url,
                       "spool_dir": self.spool,
                       "health_socket": self.path("health.sock"),
                       "log_level": "debug",
                       "answer_budget_ms": "4000"},
        }
        if self.max_body_bytes:
            conf["server"]["max_body_bytes"] = str(self.max_body_bytes)
        if self.pooler:
            conf["database"]["pooler"] = self.pooler
        if self.secret_key:
            key = self.path("secret.key")
            with open(key, "wb") as f:
                f.write(os.urandom(32))
            os.chmod(key, 0o600)
            conf["server"]["secret_key_file"] = key
        for section, keys in self.extra_conf.items():
            conf.setdefault(section, {}).update(keys)
        self.conf = self.path("telehook.conf")
        with open(self.conf, "w") as f:
            for section, keys in conf.items():
                f.write("[%s]\n" % section)
                for k, v in keys.items():
                    f.write('%s = "%s"\n' % (k, v.replace("\\", "\\\\")
                                                   .replace('"', '\\"')))
        os.chmod(self.conf, 0o600)

    def conf_variant(self, name, old, new):
        """A copy of the configuration as name, mode 0600, with old
        (which it must hold) replaced by new: its path."""
        with open(self.conf) as f:
            text = f.read()
        assert old in text, old
        path = self.path(name)
        with open(path, "w") as f:
            f.write(text.replace(old, new))
        os.chmod(path, 0o600)
        return path

    def ctl(self, *args, input=None):
        """Run telehookctl; returns the CompletedProcess."""
        env = dict(os.environ, TELEHOOK_SQLDIR=self.sqldir)
        return subprocess.run([self.telehookctl, "-c", self.conf] +
                              list(args), capture_output=True, text=True,
                              input=input, env=env)

    def ctl_ok(self, *args, input=None):
        p = self.ctl(*args, input=input)
        if p.returncode != 0:
            raise AssertionError("telehookctl %s: exit %d: %s" % (
                " ".join(args), p.returncode, p.stderr.strip()))
        return p.stdout

    def ctl_json(self, *args):
        return json.loads(self.ctl_ok("--json", *args))

    # -- workers -----------------------------------------------------

    def start_workers(self):
        ready = self._log_count("worker ready")
        log = open(self.path("workers.log"), "a")
        self.procs["workers"] = subprocess.Popen(
            ["spawn-fcgi", "-n", "-a", "127.0.0.1", "-p",
             str(self.fcgi_port), "--", "/usr/bin/multiwatch", "-f",
             str(self.workers)] + self.multiwatch_args + ["--"] +
            self.worker_wrapper + [self.telehook, "-d", "-c", self.conf],
            stdout=log, stderr=log,
            stdin=subprocess.DEVNULL)
        log.close()
        wait_for("workers", lambda: len(self.worker_pids()) ==
                 self.workers and self._log_count("worker ready") >=
                 ready + self.workers)

    def restart_workers(self):
        """Restart the pool as telehook(8) says: SIGUSR2 to multiwatch
        (spawn-fcgi -n runs it in its own process), which forwards it;
        each worker finishes its request and a new one takes its place
        on the same socket."""
        os.kill(self.procs["workers"].pid, signal.SIGUSR2)

    def stop_workers(self):
        p = self.procs.pop("workers")
        p.send_signal(signal.SIGTERM)
        p.wait(10)

    def worker_pids(self):
        p = self.procs.get("workers")
        if p is None:
            return []
        out = subprocess.run(["pgrep", "-P", str(p.pid)],
                             capture_output=True, text=True).stdout
        return [int(x) for x in out.split()]

    def kill_worker(self, pid, sig=signal.SIGKILL):
        """Kill a worker on purpose: not a crash."""
        self.killed.add(pid)
        os.kill(pid, sig)

    def _worker_ids(self, text):
        try:
            log = self.worker_log()
        except FileNotFoundError:
            return set()
        return {int(p) for p in re.findall(
            r"^telehook\[(\d+)\]: %s$" % re.escape(text), log, re.M)}

    @staticmethod
    def _alive(pids):
        """The pids that still run (a zombie does not)."""
        alive = set()
        for pid in pids:
            try:
                with open("/proc/%d/stat" % pid) as f:
                    if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                        alive.add(pid)
            except (FileNotFoundError, IndexError):
                pass
        return alive

    def crashed_workers(self):
        """Workers that logged "worker ready" and are gone without
        "worker done", not killed by the test: each a crash, an abort
        or a kill nobody asked for.  multiwatch starts a new worker in
        its place, so the pool's size and /healthz never show it."""
        ready = self._worker_ids("worker ready")
        gone = ready - self._alive(ready)
        return sorted(gone - self._worker_ids("worker done") - self.killed)

    def crash_report(self):
        """None, or what went wrong with the workers: a crash in any
        build, a sanitizer's report in the sanitize build."""
        why = []
        crashed = self.crashed_workers()
        if crashed:
            why.append("worker(s) %s exited without \"worker done\" "
                       "(crashed)" % ", ".join(map(str, crashed)))
        try:
            log = self.worker_log()
        except FileNotFoundError:
            log = ""
        for text in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            if text in log:
                why.append("%s in the workers' log" % text)
        return "; ".join(why) or None

    def assert_no_crash(self):
        why = self.crash_report()
        if why:
            raise AssertionError(why)

    def _log_count(self, text):
        try:
            with open(self.path("workers.log"), errors="replace") as f:
                return f.read().count(text)
        except FileNotFoundError:
            return 0

    def worker_log(self):
        with open(self.path("workers.log"), errors="replace") as f:
            return f.read()

    # -- nginx -------------------------------------------------------

    def _start_nginx(self):
        ndir = self.path("nginx")
        os.mkdir(ndir)
        for t in ("body", "fastcgi", "proxy", "uwsgi", "scgi"):
            os.mkdir(os.path.join(ndir, t))
        shutil.copy("/etc/nginx/fastcgi_params", ndir)
        # The shipped upstream file, pointed at the workers' TCP port,
        # or the operator's own upstream block.
        if self.own_upstream:
            upstream = "upstream telehook { server 127.0.0.1:%d; }\n" % (
                self.fcgi_port)
        else:
            with open(self.nginx_upstream) as f:
                upstream = f.read().replace(
                    "server unix:/run/telehook/telehook.sock;",
                    "server 127.0.0.1:%d;" % self.fcgi_port)
            with open(self.nginx_limits) as f:
                limits = f.read()
            if self.rate_limit:
                # load tests come from one address: lift the limit
                for shipped in ("rate=100r/s", "rate=20r/s"):
                    limits = limits.replace(
                        shipped, "rate=%dr/s" % self.rate_limit)
            upstream += "\n" + limits
        with open(os.path.join(ndir, "telehook-upstream.conf"), "w") as f:
            f.write(upstream)
        # The shipped site snippet, serving www/ from this tree.
        with open(self.nginx_site) as f:
            site = f.read()
        if not PREFIX:
            share = None
            for line in site.splitlines():
                line = line.strip()
                if line.startswith("root ") and line.endswith("/www;"):
                    share = line[5:-1]
            site = site.replace(share, os.path.join(SRCDIR, "www"))
        # The proxies nginx's realip believes: this test's own list.
        trusted = os.path.join(ndir, "trusted-proxies.conf")
        with open(trusted, "w") as f:
            for p in self.trusted_proxies:
                f.write("set_real_ip_from %s;\n" % p)

        webhook = os.path.join(ndir, "telehook-webhook.conf")

        def retarget(text):
            out = []
            for line in text.splitlines():
                if "trusted-proxies*.conf" in line:
                    line = "\tinclude %s;" % trusted
                elif line.strip().startswith("include") and \
                        line.strip().endswith("/telehook-webhook.conf;"):
                    line = "\tinclude %s;" % webhook
                line = line.replace("unix:/run/telehook/health.sock",
                                    "unix:" + self.path("health.sock"))
                out.append(line)
            return "\n".join(out) + "\n"
        with open(self.nginx_webhook) as f:
            shared = retarget(f.read())
        with open(webhook, "w") as f:
            f.write(shared)
        with open(os.path.join(ndir, "telehook.conf"), "w") as f:
            f.write(retarget(site))
        with open(self.nginx_compat) as f:
            compat = retarget(f.read())
        with open(os.path.join(ndir, "compat.conf"), "w") as f:
            f.write(compat)
        user = "user root;\n" if os.geteuid() == 0 else ""
        with open(os.path.join(ndir, "nginx.conf"), "w") as f:
            f.write("""%(user)sdaemon off;
worker_processes 2;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log info;
events { worker_connections 512; }
http {
    access_log %(d)s/access.log;
    client_body_temp_path %(d)s/body;
    fastcgi_temp_path %(d)s/fastcgi;
    proxy_temp_path %(d)s/proxy;
    uwsgi_temp_path %(d)s/uwsgi;
    scgi_temp_path %(d)s/scgi;
    include %(d)s/telehook-upstream.conf;
    server {
        listen %(addr)s:%(port)d;
        server_name localhost;
        include %(d)s/telehook.conf;
        include %(d)s/compat.conf;
        %(extra)s
    }
}
""" % {"user": user, "d": ndir, "port": self.nginx_port,
                "addr": self.host_addr,
                "compat": "", "extra": self.extra_locations})
        subprocess.run(self._nginx_args() + ["-t", "-q"], check=True)
        self.start_nginx()

    def _nginx_args(self):
        ndir = self.path("nginx")
        return ["nginx", "-p", ndir, "-c", os.path.join(ndir, "nginx.conf"),
                "-e", os.path.join(ndir, "error.log")]

    def start_nginx(self):
        """nginx with the configuration written at start (again after
        kill_nginx), in its own process group."""
        self.procs["nginx"] = subprocess.Popen(
            self._nginx_args(), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        wait_for("nginx", lambda: self.get("/healthz").status in (200, 503))

    def kill_nginx(self):
        """SIGKILL nginx, master and workers: a host lost."""
        p = self.procs.pop("nginx")
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()

    def kill_pool(self):
        """SIGKILL the pool, multiwatch and every worker at once."""
        pids = self.worker_pids()
        p = self.procs.pop("workers")
        p.kill()        # multiwatch first: it would start new workers
        p.wait()
        for pid in pids:
            self.kill_worker(pid)
        wait_for("the pool gone", lambda: not self._alive(set(pids)))

    def reload_nginx(self):
        self.procs["nginx"].send_signal(signal.SIGHUP)

    # -- HTTP --------------------------------------------------------

    def request(self, method, path, body=None, headers=None, timeout=20,
                source=None):
        c = http.client.HTTPConnection(
            self.host_addr, self.nginx_port, timeout=timeout,
            source_address=(source, 0) if source else None)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return Response(r.status, r.getheaders(), r.read())
        finally:
            c.close()

    def get(self, path, headers=None):
        return self.request("GET", path, headers=headers)

    def post(self, path, body, content_type, headers=None):
        h = {"Content-Type": content_type}
        h.update(headers or {})
        if isinstance(body, str):
            body = body.encode()
        return self.request("POST", path, body=body, headers=h)

    def raw(self, data, timeout=10):
        """Send raw bytes to nginx; returns whatever comes back."""
        with socket.create_connection((self.host_addr, self.nginx_port),
                                      timeout=timeout) as s:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            chunks = []
            while True:
                try:
                    b = s.recv(65536)
                except socket.timeout:
                    break
                if not b:
                    break
                chunks.append(b)
            return b"".join(chunks)
