"""
t/harness_pg.py: PostgreSQL and PgBouncer, a part of the test stack (t/harness.py's Stack).
"""

from harness_base import *  # noqa: F401,F403


class PostgresParts:
    """PostgreSQL and PgBouncer: the methods of Stack that deal with it."""

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

    @contextlib.contextmanager
    def table_locked(self, table, mode="ACCESS EXCLUSIVE"):
        """table locked in mode by a session of its own, until the with
        block ends however long the machine takes to get there; then
        that session is ended, so the lock goes at once."""
        held = {"ACCESS EXCLUSIVE": "AccessExclusiveLock",
                "SHARE": "ShareLock"}[mode]
        locker = subprocess.Popen(
            self.psql_command() + ["-qX", "-c", "BEGIN; LOCK TABLE %s IN "
                                   "%s MODE; SELECT pg_sleep(60); COMMIT;"
                                   % (table, mode)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for("the lock on " + table, lambda: self.psql(
                locks_on(table, held, True)) == "1")
            yield
        finally:
            self.psql("SELECT pg_terminate_backend(l.pid) FROM pg_locks l "
                      "JOIN pg_class c ON c.oid = l.relation WHERE "
                      "c.relname = '%s' AND l.mode = '%s' AND l.granted"
                      % (table, held))
            locker.wait(10)

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

