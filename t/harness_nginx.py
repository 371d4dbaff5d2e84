"""
t/harness_nginx.py: nginx and HTTP to it, a part of the test stack (t/harness.py's Stack).
"""

from harness_base import *  # noqa: F401,F403


class NginxParts:
    """nginx and HTTP to it: the methods of Stack that deal with it."""

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

    def wait_breaker_closed(self):
        """Until /healthz says the pool's breaker is closed: it lives in
        shared memory, beyond the test that opened it."""
        wait_for("the breaker closed", lambda: self.get(
            "/healthz").json().get("breaker_open") is False)

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

