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

The parts are in files of their own: harness_base.py (shared helpers),
harness_sign.py (signing as the providers sign), harness_pg.py,
harness_workers.py and harness_nginx.py (Stack's methods for each
component).
"""

from harness_base import *  # noqa: F401,F403
from harness_sign import *  # noqa: F401,F403
from harness_pg import PostgresParts
from harness_workers import WorkerParts
from harness_nginx import NginxParts


class Stack(PostgresParts, WorkerParts, NginxParts):
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
