"""
e2e_durability: "2xx only after the spool file is on disk", watched in
the system calls of a real worker (Debian's strace): while PostgreSQL is
away, a Twilio SMS is written to a temporary file, that file is fsync'd,
renamed to its final name, the spool directory is fsync'd, and only then
is the answer written to nginx's FastCGI connection.  Without the fsync
of the file (or of the directory) a crash after the 200 can lose what
the provider was told is kept; nothing else in the suites can see that.
"""

import os
import re
import shutil
import sys
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stack, need, wait_for, in_order  # noqa: E402
from e2e_twilio import sign, FORM  # noqa: E402

TOKEN = "durability-test-token"
stack = None
trace = None


def setUpModule():
    global stack, trace
    need("strace")
    stack = Stack(workers=1, extra_conf={"twilio": {"auth_token": TOKEN}})
    stack.start()
    # one worker, traced from its start by a strace of its own: no
    # attaching (ptrace) to a process strace did not start
    trace = stack.path("worker.strace")
    stack.stop_workers()
    stack.worker_wrapper = [
        shutil.which("strace"), "-f", "-qq", "-yy", "-o", trace, "-e",
        "trace=openat,write,writev,fsync,fdatasync,rename,renameat,"
        "renameat2"]
    stack.start_workers()
    org = stack.ctl_ok("org", "add", "Durable Clinic").strip()
    stack.ctl_ok("number", "add", org, "+15550009000")


def tearDownModule():
    if stack is not None:
        stack.stop()


def post(path, params):
    params = list(params.items())
    h = {"X-Twilio-Signature": sign(TOKEN, stack.public_url + path, params)}
    return stack.post(path, urllib.parse.urlencode(params), FORM, h)


def calls():
    """The traced calls, as (index, name, text) in the order made."""
    with open(trace, errors="replace") as f:
        lines = f.read().splitlines()
    out = []
    for i, line in enumerate(lines):
        m = re.match(r"(?:\d+ +)?(\w+)\((.*)", line)
        if m:
            out.append((i, m.group(1), line))
    return out


class Spool(unittest.TestCase):

    def test_fsync_rename_fsync_then_answer(self):
        spool = os.path.realpath(stack.spool)
        stack.stop_postgres()
        try:
            mark = len(calls())
            r = post("/webhooks/twilio/sms/incoming", {
                "MessageSid": "SM" + "7" * 32, "AccountSid": "AC" + "1" * 32,
                "From": "+15551110000", "To": "+15550009000",
                "Body": "kept before the answer", "SmsStatus": "received"})
            self.assertEqual(r.status, 200)
            files = [f for f in os.listdir(spool) if f.endswith(".spool")]
            self.assertEqual(len(files), 1)
            final = os.path.join(spool, files[0])
            # the answer may be traced an instant after it was read
            wait_for("the answer traced", lambda: any(
                "TCP" in t and n in ("write", "writev")
                for _, n, t in calls()[mark:]))
        finally:
            stack.start_postgres()
        seen = calls()[mark:]
        fd_of = {}
        steps = {}
        for i, name, text in seen:
            if name == "openat" and spool in text:
                m = re.search(r"= (\d+)<", text)
                if m is None:
                    continue
                if "O_DIRECTORY" in text:
                    fd_of["dir"] = m.group(1)
                elif "/.tmp-" in text and "O_CREAT" in text:
                    fd_of["tmp"] = m.group(1)
                    steps.setdefault("open", i)
            elif name in ("fsync", "fdatasync"):
                m = re.match(r"(?:\d+ +)?\w+\((\d+)<", text)
                if m and m.group(1) == fd_of.get("tmp") and \
                        "rename" not in steps:
                    steps.setdefault("fsync file", i)
                elif m and m.group(1) == fd_of.get("dir"):
                    steps.setdefault("fsync dir", i)
            elif name.startswith("rename") and final in text:
                steps.setdefault("rename", i)
            elif name in ("write", "writev") and "TCP" in text and \
                    "fsync dir" in steps:
                steps.setdefault("answer", i)
            elif name in ("write", "writev") and "TCP" in text:
                steps.setdefault("early answer", i)
        self.assertNotIn("early answer", steps,
                         "answered before the spool file was durable")
        order = ["open", "fsync file", "rename", "fsync dir", "answer"]
        for s in order:
            self.assertIn(s, steps, "no %s in the trace" % s)
        self.assertEqual(sorted(order, key=steps.get), order)
        # and it is replayed: by the worker once idle, or by a drain
        stack.ctl("spool", "drain")
        wait_for("the message stored", lambda: stack.psql(
            "SELECT count(*) FROM messages WHERE message_id = 'SM%s'"
            % ("7" * 32)) == "1")


load_tests = in_order(__name__)

if __name__ == "__main__":
    unittest.main(verbosity=2)
