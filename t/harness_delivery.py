"""
harness_delivery: what the delivery suites share (e2e_delivery for
endpoints and their answers, e2e_sender for the sender at work): a
receiver on loopback that keeps every request and answers as a test
says, the standardwebhooks verifier from the npm registry, a stack
with two organizations, and the sender started and stopped as systemd
would.
"""

import http.server
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

from harness import Stack, BUILDDIR
import e2e_twilio as tw
import e2e_retell as rt

HERE = os.path.dirname(os.path.abspath(__file__))
SWH_VERSION = "1.1.1"
stack = None
receiver = None
swh = None
ORG = OTHER = None
NUMBER = "+15550080000"
OTHER_NUMBER = "+15550081000"
TYPES = ["call.started", "call.answered", "call.missed", "call.ended",
         "call.analyzed", "voicemail.received", "sms.received", "sms.sent",
         "sms.delivered", "sms.failed", "campaign.contact_updated"]

class Receiver(http.server.ThreadingHTTPServer):
    """Keeps every request: path, headers, body, when.  What a path
    answers is set per path: a status, or a function of the request."""

    daemon_threads = True
    request_queue_size = 128     # the sender opens up to 32 at once

    def __init__(self, handler=None):
        self.got = []
        self.lock = threading.Lock()
        self.answers = {}
        super().__init__(("127.0.0.1", 0), handler or Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.server_address[1], path)

    def at(self, path):
        with self.lock:
            return [g for g in self.got if g["path"] == path]


class Handler(http.server.BaseHTTPRequestHandler):

    def log_message(self, *a):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        g = {"path": self.path, "headers": {k.lower(): v for k, v in
                                            self.headers.items()},
             "body": body.decode(), "at": time.monotonic()}
        g["id"] = g["headers"].get("webhook-id")
        g["peer"] = self.client_address[1]     # the sender's connection
        g["type"] = json.loads(g["body"]).get("type")
        with self.server.lock:
            self.server.got.append(g)
            seen = sum(1 for x in self.server.got if x["id"] == g["id"])
        a = self.server.answers.get(self.path, 200)
        status = a(g, seen) if callable(a) else a
        status, extra = status if isinstance(status, tuple) else (status, {})
        self.send_response(status)
        for k, v in extra.items():
            self.send_header(k, v)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


class KeepAlive(Handler):
    """HTTP/1.1: a connection stays open for the next request."""

    protocol_version = "HTTP/1.1"


def verify(items):
    """The standardwebhooks package's verdict on each (secret, got)."""
    data = json.dumps([{"secret": s, "headers": {
        k: g["headers"][k] for k in ("webhook-id", "webhook-timestamp",
                                     "webhook-signature")},
        "body": g["body"]} for s, g in items])
    p = subprocess.run(["node", os.path.join(HERE, "swh_verify.js"),
                        os.path.join(swh, "node_modules",
                                     "standardwebhooks")],
                       input=data, capture_output=True, text=True,
                       check=True)
    return json.loads(p.stdout)


def start_sender(conf=None):
    env = dict(os.environ, TELEHOOK_SQLDIR=stack.sqldir)
    with open(stack.path("sender.log"), "a") as log:
        return subprocess.Popen([stack.telehookctl, "-c",
                                 conf or stack.conf, "deliveries", "run"],
                                env=env, stdout=subprocess.DEVNULL,
                                stderr=log)


def stop_sender(p):
    """SIGTERM, as systemd stops it; a sender still running 30 s later
    is killed, so a broken one (dev/mutate) fails its test instead of
    outliving it with its stack."""
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise


def start():
    """The stack, the receiver and the two organizations (ORG, OTHER) a
    suite runs against; the sender is the suite's to start, its tests
    stop and start it again."""
    global stack, receiver, swh, ORG, OTHER
    # the independent verifier, pinned, from the npm registry
    swh = os.path.join(BUILDDIR, "t", "swh-%s" % SWH_VERSION)
    if not os.path.isdir(os.path.join(swh, "node_modules",
                                      "standardwebhooks")):
        tmp = tempfile.mkdtemp(prefix="swh-", dir=os.path.join(BUILDDIR,
                                                               "t"))
        subprocess.run(["npm", "install", "--prefix", tmp, "--no-audit",
                        "--no-fund", "--loglevel=error",
                        "standardwebhooks@" + SWH_VERSION], check=True,
                       capture_output=True)
        # both delivery suites may install it at once: the first
        # rename wins, the other's copy is dropped
        if os.path.isdir(os.path.join(swh, "node_modules",
                                      "standardwebhooks")):
            shutil.rmtree(tmp)
        else:
            shutil.rmtree(swh, ignore_errors=True)
            try:
                os.rename(tmp, swh)
            except OSError:
                shutil.rmtree(tmp)
    receiver = Receiver()
    stack = Stack(workers=2, rate_limit=100000, secret_key=True,
                  extra_conf={
                      "twilio": {"auth_token": tw.TOKEN},
                      "retell": {"api_key": rt.KEY},
                      "delivery": {"allow_private": "yes",
                                   # no waiting while the CPU is busy,
                                   # but in test_k
                                   "defer_s": "0",
                                   "retry_schedule": "1s,1s,1s",
                                   "timeout_s": "2"}}).start()
    tw.stack = rt.stack = stack
    ORG = stack.ctl_ok("org", "add", "Delivery Clinic").strip()
    stack.ctl_ok("org", "set", ORG, "hours=24/7")
    stack.ctl_ok("number", "add", ORG, NUMBER)
    OTHER = stack.ctl_ok("org", "add", "Other Delivery Clinic").strip()
    stack.ctl_ok("number", "add", OTHER, OTHER_NUMBER)
    return stack, receiver, ORG, OTHER


def stop(sender):
    """The sender (if it runs), the stack, the receiver."""
    try:
        if sender is not None and sender.poll() is None:
            stop_sender(sender)
    finally:
        if stack is not None:
            stack.stop()
        if receiver is not None:
            receiver.shutdown()
            receiver.server_close()


def add(org, path, *extra):
    o = stack.ctl_json("endpoint", "add", org, receiver.url(path), *extra)
    return o["id"], o["secret"]


def answered_call(frm):
    return tw.answered_call(NUMBER, frm)


def missed_call(frm, to=NUMBER):
    return tw.missed_call(to, frm)


def sms_in(body, frm):
    """A signed inbound SMS to the organization's number."""
    return tw.post("/webhooks/twilio/sms/incoming", tw.sms_params(
        body, to=NUMBER, frm=frm))


class Hold:
    """What a slow endpoint holds: set() releases every request it holds
    and will get; held() is how many it holds now."""

    def __init__(self):
        self.event = threading.Event()
        self.lock = threading.Lock()
        self.n = 0

    def __call__(self, g, seen):
        with self.lock:
            self.n += 1
        self.event.wait(20)
        with self.lock:
            self.n -= 1
        return 200

    def held(self):
        with self.lock:
            return self.n

    def set(self):
        self.event.set()


def slow_and_fast(slow_path, fast_path):
    """Two endpoints of ORG for sms.received: one that holds each
    request until the Hold returned is set (20 s at most), one that
    answers at once."""
    release = Hold()
    receiver.answers[slow_path] = release
    slow_id, _ = add(ORG, slow_path, "--events", "sms.received")
    fast_id, _ = add(ORG, fast_path, "--events", "sms.received")
    return release, slow_id, fast_id


def cpu_stall(seconds):
    """The share of the next seconds in which some task waited for a
    CPU (/proc/pressure/cpu, as the sender reads it), or None."""
    def total():
        with open("/proc/pressure/cpu") as f:
            for line in f:
                if line.startswith("some "):
                    return int(line.split("total=")[1])
    try:
        t0, s0 = time.monotonic(), total()
        time.sleep(seconds)
        return (total() - s0) / ((time.monotonic() - t0) * 1e6)
    except OSError:
        return None


def data_of(g):
    return json.loads(g["body"])["data"]
