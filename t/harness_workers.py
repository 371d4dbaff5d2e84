"""
t/harness_workers.py: The configuration, telehookctl and the worker pool, a part of the test stack (t/harness.py's Stack).
"""

from harness_base import *  # noqa: F401,F403


class WorkerParts:
    """The configuration, telehookctl and the worker pool: the methods of Stack that deal with it."""

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

    def ctl(self, *args, input=None, conf=None, timeout=None):
        """Run telehookctl (on conf, a variant of the configuration, if
        given); returns the CompletedProcess."""
        env = dict(os.environ, TELEHOOK_SQLDIR=self.sqldir)
        return subprocess.run([self.telehookctl, "-c", conf or self.conf] +
                              list(args), capture_output=True, text=True,
                              input=input, env=env, timeout=timeout)

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
        return {pid for pid in pids
                if (proc_stat(pid) or ["Z"])[0] != "Z"}

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

