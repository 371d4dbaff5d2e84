"""
deb_install: the Debian package (dev/package) installed on this machine
as an operator installs it, used, and purged.

"apt-get install ./telehook_*.deb"; README.Debian's three steps against
a private PostgreSQL; the pool started the way its unit starts it (the
unit's ExecStart, under the unit's user and groups: systemd does not
run here); nginx with the installed /etc/nginx/snippets; a signed
Twilio SMS stored; then "apt-get purge" leaves none of the package's
files, its user, key or spool behind.  Needs root (dev/check runs it so)
and TELEHOOK_DEB, the package's path.
"""

import grp
import os
import pwd
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import unittest
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import free_port, pg_bindir, twilio_sign, wait_for  # noqa

DEB = os.environ.get("TELEHOOK_DEB", "")
TOKEN = "deb-install-twilio-token"
NUMBER = "+15550006000"
UNIT = "/lib/systemd/system/telehook.service"


def run(*argv, **kw):
    kw.setdefault("check", True)
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    return subprocess.run(list(argv), **kw)


def as_user(user, *argv, **kw):
    return run("runuser", "-u", user, "--", *argv, **kw)


def exec_start(unit):
    """The unit's ExecStart, as argv (its continuation lines joined)."""
    with open(unit) as f:
        text = f.read().replace("\\\n", " ")
    line = re.search(r"(?m)^ExecStart=(.*)$", text).group(1)
    return shlex.split(line)


def unit_value(unit, key):
    with open(unit) as f:
        return re.search(r"(?m)^%s=(.*)$" % key, f.read()).group(1).strip()


def twilio_sms(base, sid):
    path = "/webhooks/twilio/sms/incoming"
    p = [("MessageSid", sid), ("AccountSid", "AC" + "6" * 32),
         ("From", "+15551116000"), ("To", NUMBER),
         ("Body", "what are your hours?"), ("SmsStatus", "received")]
    sig = twilio_sign(TOKEN, base + path, p)
    req = urllib.request.Request(
        base + path, urllib.parse.urlencode(p).encode(),
        {"X-Twilio-Signature": sig,
         "Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, r.read().decode()


class Package(unittest.TestCase):

    def setUp(self):
        if os.geteuid() != 0 or not DEB:
            self.skipTest("needs root and TELEHOOK_DEB")
        self.tmp = tempfile.mkdtemp(prefix="telehook-deb-")
        os.chmod(self.tmp, 0o755)
        self.procs = []
        self.addCleanup(self.cleanup)

    def cleanup(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
        if os.path.exists(os.path.join(self.tmp, "pg")):
            as_user("postgres", os.path.join(pg_bindir(), "pg_ctl"), "-D",
                    os.path.join(self.tmp, "pg"), "-m", "immediate", "stop",
                    check=False)
        if run("dpkg-query", "-W", "-f=${Status}", "telehook",
               check=False).stdout.startswith("install"):
            run("apt-get", "purge", "-y", "-q", "telehook", check=False)
        shutil.rmtree("/run/telehook", ignore_errors=True)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def postgres(self):
        """A private cluster whose superuser is postgres, as Debian's."""
        pg, sock = os.path.join(self.tmp, "pg"), os.path.join(self.tmp,
                                                              "sock")
        for d in (pg, sock):
            os.mkdir(d, 0o700)
            shutil.chown(d, "postgres", "postgres")
        as_user("postgres", os.path.join(pg_bindir(), "initdb"), "-D", pg,
                "-A", "trust", "-U", "postgres", "--no-sync", "--locale=C")
        port = free_port()
        as_user("postgres", os.path.join(pg_bindir(), "pg_ctl"), "-D", pg,
                "-l", os.path.join(pg, "log"), "-w", "-o",
                "-p %d -k %s -c listen_addresses=''" % (port, sock), "start")
        os.chmod(sock, 0o755)
        return sock, port

    def test_install_use_purge(self):
        listed = ["/" + line.split()[-1].lstrip("./") if " -> " not in line
                  else "/" + line.split(" -> ")[0].split()[-1].lstrip("./")
                  for line in run("dpkg-deb", "-c", DEB).stdout.splitlines()]
        listed = [p.rstrip("/") or "/" for p in listed]
        existed = {p for p in listed if os.path.lexists(p)}
        with self.assertRaises(KeyError):
            pwd.getpwnam("telehook")

        # 1. apt-get install ./telehook_*.deb
        run("apt-get", "install", "-y", "-q", os.path.abspath(DEB))
        u = pwd.getpwnam("telehook")
        st = os.stat("/var/spool/telehook")
        self.assertEqual((st.st_uid, stat.S_IMODE(st.st_mode)),
                         (u.pw_uid, 0o700))
        st = os.stat("/etc/telehook/secret.key")
        self.assertEqual((st.st_uid, stat.S_IMODE(st.st_mode), st.st_size),
                         (u.pw_uid, 0o600, 32))
        st = os.stat("/etc/telehook/telehook.conf")
        self.assertEqual((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)),
                         (0, grp.getgrnam("telehook").gr_gid, 0o640))
        for s in ("telehook", "telehook-upstream", "telehook-webhook",
                  "telehook-compat", "telehook-limits"):
            self.assertTrue(os.path.exists("/etc/nginx/snippets/%s.conf"
                                           % s), s)
        # a new key is made only when none exists: a reinstall keeps it
        with open("/etc/telehook/secret.key", "rb") as f:
            key = f.read()
        run("dpkg-reconfigure", "telehook")
        with open("/etc/telehook/secret.key", "rb") as f:
            self.assertEqual(f.read(), key)

        # README.Debian 1: the database and its user
        sock, port = self.postgres()
        for argv in (["createuser", "telehook"],
                     ["createdb", "-O", "telehook", "telehook"]):
            as_user("postgres", os.path.join(pg_bindir(), argv[0]), "-h",
                    sock, "-p", str(port), *argv[1:])

        # README.Debian 2: the configuration (a secret in it now; the
        # file keeps its owner and mode)
        nginx_port = free_port()
        base = "http://127.0.0.1:%d" % nginx_port
        with open("/etc/telehook/telehook.conf") as f:
            conf = f.read()
        conf = conf.replace('#conninfo = "dbname=telehook"',
                            'conninfo = "host=%s port=%d dbname=telehook"'
                            % (sock, port), 1)
        conf = re.sub(r"(?m)^#public_url = .*$", 'public_url = "%s"' % base,
                      conf, 1)
        conf = re.sub(r"(?m)^#auth_token =.*$", 'auth_token = "%s"' % TOKEN,
                      conf, 1)
        with open("/etc/telehook/telehook.conf", "w") as f:
            f.write(conf)
        self.assertIn('auth_token = "%s"' % TOKEN, conf)

        # README.Debian 3: the schema, as the telehook user
        as_user("telehook", "/usr/sbin/telehookctl", "migrate")
        org = as_user("telehook", "/usr/sbin/telehookctl", "org", "add",
                      "Debian Clinic").stdout.strip()
        as_user("telehook", "/usr/sbin/telehookctl", "number", "add", org,
                NUMBER)

        # the pool as the unit starts it: its ExecStartPre check, then
        # its ExecStart, under its user, group and supplementary groups
        user = unit_value(UNIT, "User")
        group = unit_value(UNIT, "Group")
        extra = unit_value(UNIT, "SupplementaryGroups")
        os.makedirs("/run/telehook", 0o750, exist_ok=True)
        shutil.chown("/run/telehook", user, group)
        priv = ["setpriv", "--reuid", user, "--regid", group,
                "--groups", extra, "--"]
        run(*priv, "/usr/sbin/telehook", "-n", "-c",
            "/etc/telehook/telehook.conf")
        self.procs.append(subprocess.Popen(
            priv + exec_start(UNIT), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True))
        wait_for("the socket", lambda: os.path.exists(
            "/run/telehook/telehook.sock"))

        # nginx with the installed snippets
        nd = os.path.join(self.tmp, "nginx")
        os.mkdir(nd)
        shutil.copy("/etc/nginx/fastcgi_params", nd)
        with open(os.path.join(nd, "nginx.conf"), "w") as f:
            f.write("""user www-data;
worker_processes 1;
pid %(nd)s/nginx.pid;
error_log %(nd)s/error.log;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path %(nd)s/body;
    fastcgi_temp_path %(nd)s/fastcgi;
    proxy_temp_path %(nd)s/proxy;
    uwsgi_temp_path %(nd)s/uwsgi;
    scgi_temp_path %(nd)s/scgi;
    include /etc/nginx/snippets/telehook-upstream.conf;
    include /etc/nginx/snippets/telehook-limits.conf;
    server {
        listen 127.0.0.1:%(port)d;
        include /etc/nginx/snippets/telehook.conf;
        include /etc/nginx/snippets/telehook-compat.conf;
    }
}
""" % {"nd": nd, "port": nginx_port})
        self.procs.append(subprocess.Popen(
            ["nginx", "-c", os.path.join(nd, "nginx.conf"), "-g",
             "daemon off;"], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True))

        def healthy():
            with urllib.request.urlopen(base + "/healthz", timeout=2) as r:
                return r.status == 200
        wait_for("nginx and the workers", healthy)

        status, body = twilio_sms(base, "SM" + "6" * 32)
        self.assertEqual(status, 200)
        self.assertIn("<Response>", body)
        self.assertEqual(as_user(
            "telehook", "psql", "-h", sock, "-p", str(port), "-AtX", "-c",
            "SELECT count(*) FROM messages WHERE message_id = 'SM%s'"
            % ("6" * 32), "telehook").stdout.strip(), "1")

        for p in reversed(self.procs):
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(15)
        self.procs = []

        # apt-get purge: nothing of the package left
        run("apt-get", "purge", "-y", "-q", "telehook")
        left = [p for p in listed if p not in existed and os.path.lexists(p)]
        self.assertEqual(left, [])
        for p in ("/etc/telehook", "/var/spool/telehook"):
            self.assertFalse(os.path.lexists(p), p)
        with self.assertRaises(KeyError):
            pwd.getpwnam("telehook")
        with self.assertRaises(KeyError):
            grp.getgrnam("telehook")


if __name__ == "__main__":
    unittest.main(verbosity=2)
