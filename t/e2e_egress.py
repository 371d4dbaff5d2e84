"""
e2e_egress: nothing fetched from inside (telehook(8), SECURITY; DESIGN §5).

A tenant controls the URLs telehook connects to: a recording's URL in its
own signed webhooks, an endpoint's URL for its deliveries.  A listener on
every loopback address (one port, IPv4 and IPv6) counts the TCP
connections it accepts, and every form of an address inside is tried
against it: 127.0.0.2 as written, in decimal, octal, hexadecimal and short
form, IPv4-mapped IPv6 both ways, ::1, 0.0.0.0, localhost, a public-looking
name that /etc/hosts sends to 127.0.0.2, and a redirect to each from a
server telehook may reach.  Zero connections is the only pass: a refusal
after connect() (a SYN, a ClientHello) already lets a tenant map ports.
"""

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stack, retell_sign, wait_for  # noqa: E402
import e2e_twilio as tw  # noqa: E402

stack = None
ORG = None
API = None
RT_KEY = "retell-egress-key-0123456789"
ACCOUNT = "AC" + "5" * 32
NUMBER = "+15550090000"
HOSTS_NAME = "recordings.telehook-egress.example"
hosts_added = False
listener = None
redirector = None


class Listener:
    """Counts TCP connections to one port on every local address."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("::", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.seen = []
        self.lock = threading.Lock()
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while True:
            try:
                c, a = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.seen.append(a[0])
            c.close()

    def count(self):
        with self.lock:
            return len(self.seen)

    def close(self):
        self.sock.close()


def closed_port():
    """A loopback port nothing listens on."""
    s = socket.socket()
    s.bind(("127.0.0.2", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def own_addresses():
    """This machine's addresses but loopback (ip -o addr)."""
    out = subprocess.run(["ip", "-o", "addr"], capture_output=True,
                         text=True).stdout
    return sorted({f.split()[3].split("/")[0] for f in out.splitlines()
                   if " lo " not in f and "scope link" not in f})


def forms(port, scheme="https"):
    """Every way a URL can name 127.0.0.2 (or this machine) at port."""
    hosts = ["127.0.0.2", "2130706434", "0x7f000002", "0177.0.0.2",
             "127.2", "[::ffff:127.0.0.2]", "[::ffff:7f00:2]", "[::1]",
             "0.0.0.0", "0", "localhost", "[::]"]
    if hosts_added:
        hosts.append(HOSTS_NAME)
    # this machine's own addresses, whatever block they are in
    for a in own_addresses():
        hosts.append("[%s]" % a if ":" in a else a)
    return ["%s://%s:%d/r/%s.wav" % (scheme, h, port, uuid.uuid4().hex)
            for h in hosts]


class Redirector(http.server.ThreadingHTTPServer):
    """Twilio's API as [twilio] api_url names it (trusted, by address),
    answering every recording with a 302 to the URL in self.to."""

    daemon_threads = True

    def __init__(self):
        self.to = None
        self.hits = 0
        super().__init__(("127.0.0.1", 0), RedirectHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def base(self):
        return "http://127.0.0.1:%d" % self.server_address[1]


class RedirectHandler(http.server.BaseHTTPRequestHandler):

    def log_message(self, *a):
        pass

    def do_GET(self):
        self.server.hits += 1
        self.send_response(302)
        self.send_header("Location", self.server.to)
        self.send_header("Content-Length", "0")
        self.end_headers()


def retell_ended(cid, url):
    now = int(time.time() * 1000)
    body = json.dumps({"event": "call_ended", "call": {
        "call_type": "phone_call", "call_id": cid, "agent_id": "agent_E",
        "call_status": "ended", "direction": "inbound",
        "from_number": "+15551230009", "to_number": NUMBER,
        "start_timestamp": now - 60000, "end_timestamp": now,
        "duration_ms": 60000, "disconnection_reason": "user_hangup",
        "recording_url": url}})
    r = stack.post("/webhooks/retell", body, "application/json",
                   {"X-Retell-Signature": retell_sign(RT_KEY, body)})
    assert r.status == 204, r


def recording(cid):
    return stack.get("/api/v1/organizations/%s/calls/%s/recording" % (
        ORG, cid), headers={"Authorization": "Bearer " + API})


def setUpModule():
    global stack, ORG, API, listener, redirector, hosts_added
    listener = Listener()
    redirector = Redirector()
    try:
        with open("/etc/hosts", "a") as f:
            f.write("127.0.0.2\t%s\n" % HOSTS_NAME)
        hosts_added = True
    except OSError:
        pass        # not root: the name case is left out, and says so
    stack = Stack(workers=2, secret_key=True, extra_conf={
        "retell": {"api_key": RT_KEY},
        "twilio": {"auth_token": tw.TOKEN, "api_url": redirector.base},
        "delivery": {"allow_private": "no"}}).start()
    tw.stack = stack
    ORG = stack.ctl_ok("org", "add", "Egress Clinic").strip()
    stack.ctl_ok("org", "set", ORG, "hours=24/7",
                 "twilio_account_sid=" + ACCOUNT)
    stack.ctl_ok("number", "add", ORG, NUMBER)
    API = stack.ctl_ok("token", "create", ORG).strip()


def tearDownModule():
    if stack is not None:
        stack.stop()
    if redirector is not None:
        redirector.shutdown()
    if listener is not None:
        listener.close()
    if hosts_added:
        with open("/etc/hosts") as f:
            lines = f.readlines()
        with open("/etc/hosts", "w") as f:
            f.writelines(ln for ln in lines if HOSTS_NAME not in ln)


class Recordings(unittest.TestCase):

    def setUp(self):
        if not hosts_added:
            print("e2e_egress: /etc/hosts is not writable: the name that "
                  "resolves inside is not tried", file=sys.stderr)

    def test_1_every_form_refused_before_connect(self):
        for url in forms(listener.port):
            with self.subTest(url=url):
                cid = "call_egress_" + uuid.uuid4().hex[:12]
                retell_ended(cid, url)
                r = recording(cid)
                self.assertEqual(listener.count(), 0, listener.seen)
                self.assertEqual(r.status, 502, r)
                self.assertEqual(r.json()["error"],
                                 "the recording is not on a public address")

    def test_2_no_redirect_hop_inside(self):
        # the first hop is [twilio] api_url's own address (the operator's
        # setting); each hop after it is checked like any other
        for url in forms(listener.port):
            with self.subTest(url=url):
                redirector.to = url
                hits = redirector.hits
                call = tw.sid("CA")
                rec = tw.sid("RE")
                self.assertEqual(tw.post(
                    "/webhooks/twilio/voice/incoming", tw.call_params(
                        to=NUMBER, call=call, AccountSid=ACCOUNT)).status,
                    200)
                r = tw.post("/webhooks/twilio/recording/status", {
                    "AccountSid": ACCOUNT, "CallSid": call,
                    "RecordingSid": rec, "RecordingStatus": "completed",
                    "RecordingDuration": "1", "To": NUMBER,
                    "RecordingUrl": "%s/2010-04-01/Accounts/%s/Recordings/"
                    "%s" % (redirector.base, ACCOUNT, rec)})
                self.assertIn(r.status, (200, 204), r)
                r = recording(call)
                self.assertEqual(listener.count(), 0, listener.seen)
                self.assertEqual(redirector.hits, hits + 1)
                self.assertEqual(r.status, 502, r)
                self.assertEqual(r.json()["error"],
                                 "the recording is not on a public address")

    def test_3_the_error_says_nothing_of_the_port(self):
        answers = set()
        for port in (listener.port, closed_port()):
            cid = "call_egress_" + uuid.uuid4().hex[:12]
            retell_ended(cid, "https://127.0.0.2:%d/r.wav" % port)
            r = recording(cid)
            answers.add((r.status, r.body))
        self.assertEqual(len(answers), 1, answers)
        self.assertEqual(listener.count(), 0)


def deliveries_send():
    p = subprocess.run([stack.telehookctl, "-c", stack.conf, "--json",
                        "deliveries", "send"], capture_output=True,
                       text=True, env=dict(os.environ,
                                           TELEHOOK_SQLDIR=stack.sqldir))
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


class Deliveries(unittest.TestCase):

    def test_1_endpoint_add_refuses_an_address_inside(self):
        for url in forms(listener.port, "http") + [
                "http://169.254.169.254/latest/meta-data/",
                "http://10.0.0.1/hook", "http://100.64.0.1/hook",
                "http://192.168.1.1/hook", "http://172.16.0.1/hook",
                "http://[fd00::1]/hook", "http://[fe80::1]/hook",
                "http://224.0.0.1/hook"]:
            if HOSTS_NAME in url:
                continue        # a name: checked at each connection
            with self.subTest(url=url):
                p = stack.ctl("endpoint", "add", ORG, url)
                self.assertEqual(p.returncode, 65, p.stdout + p.stderr)
                self.assertIn("not a public address", p.stderr)
        self.assertEqual(stack.psql("SELECT count(*) FROM endpoints"), "0")

    def test_2_no_connection_and_one_error(self):
        # a name that resolves inside passes "endpoint add"; addresses
        # written in the URL are what an endpoint added while
        # allow_private was on would hold
        urls = [u for u in forms(listener.port, "http")]
        urls.append("http://127.0.0.2:%d/closed" % closed_port())
        ids = []
        for u in urls:
            p = stack.ctl("--json", "endpoint", "add", ORG,
                          "https://hooks.example.com/x", "--events",
                          "sms.received")
            self.assertEqual(p.returncode, 0, p.stderr)
            eid = json.loads(p.stdout)["id"]
            stack.psql("UPDATE endpoints SET url = '%s' WHERE id = '%s'" %
                       (u, eid))
            ids.append(eid)
        r = tw.post("/webhooks/twilio/sms/incoming", tw.sms_params(
            "egress", to=NUMBER, AccountSid=ACCOUNT))
        self.assertEqual(r.status, 200, r)
        wait_for("the event pending", lambda: stack.psql(
            "SELECT count(*) FROM delivery_pending") != "0")
        st = deliveries_send()
        self.assertEqual(listener.count(), 0, listener.seen)
        self.assertEqual(st["delivered"], 0, st)
        errors = stack.psql(
            "SELECT string_agg(DISTINCT coalesce(last_error, '-'), '|') "
            "FROM deliveries WHERE endpoint_id IN (%s)" % ",".join(
                "'%s'" % i for i in ids))
        self.assertEqual(errors,
                         "refused: not a public address (allow_private is "
                         "off)")
        self.assertEqual(stack.psql(
            "SELECT count(*) FROM deliveries WHERE endpoint_id IN (%s)" %
            ",".join("'%s'" % i for i in ids)), str(len(ids)))
        self.assertEqual(listener.count(), 0, listener.seen)


if __name__ == "__main__":
    unittest.main(verbosity=2)
