"""
t/harness_base.py: what every part of the end-to-end test stack shares:
where the build is, free ports, waiting for a condition, a steady load
of requests and the answers' shape (signing as the providers sign is
harness_sign.py's).
t/harness.py puts the stack together.
"""

import contextlib
import fnmatch
import glob
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


def proc_stat(pid):
    """The fields of /proc/PID/stat after the command's name (state
    first, then the parent, ... utime at 11, stime at 12), or None for
    a process that is gone."""
    try:
        with open("/proc/%s/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def postmaster_pids(pgdata):
    """A cluster's postmaster and its children (its backends), from
    its postmaster.pid: to stop (SIGSTOP) a whole server."""
    with open(os.path.join(pgdata, "postmaster.pid")) as f:
        pm = int(f.readline())
    return [pm] + [int(d) for d in os.listdir("/proc") if d.isdigit() and
                   (proc_stat(d) or ["", ""])[1] == str(pm)]


def locks_on(table, mode=None, granted=False):
    """SQL counting the locks on table (of mode; only granted ones)."""
    return ("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = "
            "l.relation WHERE c.relname = '%s'%s%s" % (
                table, " AND l.mode = '%s'" % mode if mode else "",
                " AND l.granted" if granted else ""))
