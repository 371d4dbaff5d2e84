"""
e2e_mail: the staff's e-mail alerts (telehook(8), "E-mail alerts")
against a real SMTP server on loopback (Debian's python3-aiosmtpd,
started by the test): a missed call, a voicemail (with its
transcription) and an urgent SMS each make exactly one e-mail per user
who chose that kind, sent by "telehookctl outbox send" and never twice;
the relay down and then up delivers later, once; a refused recipient
fails for good; both show in "outbox list" and /metrics; the daily
summary counts the organization's local day.  A relay that is not on
this machine gets neither the credentials nor a message unless the
connection is TLS with a certificate the system trusts: one that offers
no STARTTLS, and one whose certificate no trusted CA signed, each see
only the greeting (test_8, test_9).
"""

import base64
import email
import email.policy
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import unittest
import zoneinfo
from datetime import datetime, timedelta

try:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult
except ImportError:     # another python3 than Debian's on PATH
    sys.path.append("/usr/lib/python3/dist-packages")
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stack, free_port, in_order  # noqa: E402
import e2e_twilio as tw  # noqa: E402

stack = None
relay = None
PORT = None
ORG = SUMMARY_ORG = None
NUMBER = "+15550070000"
REFUSED = "gone@mail.example"


class Relay:
    """An SMTP server that keeps what it is given; REFUSED is 550."""

    def __init__(self):
        self.messages = []
        self.lock = threading.Lock()
        self.ctl = None

    async def handle_RCPT(self, server, session, envelope, address, opts):
        if address == REFUSED:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content,
                                       policy=email.policy.default)
        with self.lock:
            self.messages.append((envelope.mail_from,
                                  list(envelope.rcpt_tos), msg))
        return "250 OK"

    def start(self):
        self.ctl = Controller(self, hostname="127.0.0.1", port=PORT)
        self.ctl.start()

    def stop(self):
        self.ctl.stop()
        self.ctl = None

    def take(self):
        with self.lock:
            out, self.messages = self.messages, []
        return out


def send():
    return stack.ctl_json("outbox", "send")


class Remote:
    """A relay that telehook must treat as another machine's (only
    127.0.0.1, localhost and [::1] are this machine's), on 127.0.0.2:
    one connection, every line it is sent kept.  It offers AUTH, and
    STARTTLS when given a server context; a TLS handshake's outcome is
    in .tls (None: none was asked for)."""

    def __init__(self, context=None):
        self.context = context
        self.data = b""
        self.lines = []
        self.tls = None
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.2", 0))
        self.sock.listen(1)
        self.sock.settimeout(30)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        conn, _ = self.sock.accept()
        conn.settimeout(30)
        try:
            self.talk(conn)
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()
            self.sock.close()

    def talk(self, conn):
        conn.sendall(b"220 relay.example ESMTP\r\n")
        f = conn.makefile("rb")
        while True:
            line = f.readline()
            if not line:
                return
            self.data += line
            self.lines.append(line.decode("latin-1").rstrip("\r\n"))
            verb = line[:8].upper().split(b" ")[0].strip()
            if verb in (b"EHLO", b"HELO"):
                conn.sendall(b"250-relay.example\r\n" + (
                    b"250-STARTTLS\r\n" if self.context else b"") +
                    b"250 AUTH PLAIN LOGIN\r\n")
            elif verb == b"STARTTLS" and self.context:
                conn.sendall(b"220 2.0.0 go ahead\r\n")
                try:
                    conn = self.context.wrap_socket(conn, server_side=True)
                except (OSError, ssl.SSLError):
                    self.tls = False
                    return
                self.tls = True
                f = conn.makefile("rb")
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            elif verb == b"AUTH":
                conn.sendall(b"235 2.7.0 ok\r\n")
            elif verb == b"DATA":
                conn.sendall(b"354 go on\r\n")
                while True:
                    d = f.readline()
                    self.data += d
                    if d in (b".\r\n", b""):
                        break
                conn.sendall(b"250 ok\r\n")
            else:
                conn.sendall(b"250 ok\r\n")


USER, PASSWORD = "alerts@clinic.example", "relay-password-5V9q"


def send_via(remote):
    """outbox send with [smtp] pointed at remote, with credentials."""
    conf = stack.conf_variant(
        "remote.conf", '"smtp://127.0.0.1:%d"' % PORT,
        '"smtp://127.0.0.2:%d"\nusername = "%s"\npassword = "%s"'
        % (remote.port, USER, PASSWORD))
    p = stack.ctl("--json", "outbox", "send", conf=conf, timeout=60)
    remote.thread.join(30)
    return p


def by_rcpt(messages):
    out = {}
    for _, rcpts, msg in messages:
        for r in rcpts:
            out.setdefault(r, []).append(msg)
    return out


def body(msg):
    return msg.get_body(preferencelist=("plain",)).get_content().replace(
        "\r\n", "\n")


def local_tz_after_seven():
    """A fixed-offset zone where it is now between 08:00 and 22:00, so
    the daily summary is due and yesterday is a whole day."""
    for off in range(-12, 15):
        name = "Etc/GMT%+d" % -off if off else "UTC"
        hour = datetime.now(zoneinfo.ZoneInfo(name)).hour
        if 8 <= hour <= 22:
            return name
    raise AssertionError("no zone found")


def setUpModule():
    global stack, relay, PORT, ORG, SUMMARY_ORG
    PORT = free_port()
    relay = Relay()
    relay.start()
    stack = Stack(workers=2, rate_limit=100000, extra_conf={
        "twilio": {"auth_token": tw.TOKEN},
        "smtp": {"url": "smtp://127.0.0.1:%d" % PORT,
                 "from": "telehook alerts <alerts@clinic.example>"}}).start()
    tw.stack = stack
    ORG = stack.ctl_ok("org", "add", "Clínica Sol").strip()
    stack.ctl_ok("org", "set", ORG, "hours=24/7")
    stack.ctl_ok("number", "add", ORG, NUMBER)
    for user, notify in (("desk@mail.example", "missed_call,voicemail,"
                          "urgent_sms"),
                         ("vet@mail.example", "voicemail"),
                         ("quiet@mail.example", None),
                         (REFUSED, "urgent_sms")):
        stack.ctl_ok("user", "add", ORG, user)
        if notify:
            stack.ctl_ok("user", "set", ORG, user, "notify=" + notify)
    SUMMARY_ORG = stack.ctl_ok("org", "add", "Summary ~ Clinic",
                               "--timezone", local_tz_after_seven()).strip()


def tearDownModule():
    if stack is not None:
        stack.stop()
    if relay is not None and relay.ctl is not None:
        relay.stop()


def missed_call(frm):
    return tw.missed_call(NUMBER, frm)


def retrying(test):
    """The one e-mail waiting for its retry: desk's, tried once, with
    an error; the error."""
    waiting = [o for o in stack.ctl_json(
        "outbox", "list", "--state", "retry")["outbox"]
        if o["kind"] == "email"]
    test.assertEqual([(o["to"], o["attempts"]) for o in waiting],
                     [("desk@mail.example", 1)])
    test.assertTrue(waiting[0]["last_error"])
    return waiting[0]["last_error"]


def metric(kind, state):
    text = stack.get("/metrics").text
    line = 'telehook_outbox_messages{kind="%s",state="%s"} ' % (kind,
                                                                 state)
    return [int(x[len(line):]) for x in text.splitlines()
            if x.startswith(line)][0]


class Mail(unittest.TestCase):

    def setUp(self):
        send()
        relay.take()

    def test_1_user_set(self):
        users = {u["email"]: u["notify"] for u in stack.ctl_json(
            "user", "list", ORG)["users"]}
        self.assertEqual(users["desk@mail.example"],
                         "missed_call,voicemail,urgent_sms")
        self.assertEqual(users["quiet@mail.example"], "")
        p = stack.ctl("user", "set", ORG, "desk@mail.example",
                      "notify=missed_call,faxes")
        self.assertEqual(p.returncode, 65)
        self.assertIn("faxes is not one of", p.stderr)
        p = stack.ctl("user", "set", ORG, "nobody@mail.example",
                      "notify=none")
        self.assertEqual(p.returncode, 65)
        self.assertEqual(stack.ctl("user", "set", ORG, "desk@mail.example",
                                   "colour=blue").returncode, 64)
        # unchanged by the refusals
        self.assertEqual({u["email"]: u["notify"] for u in stack.ctl_json(
            "user", "list", ORG)["users"]}, users)
        # telehookctl(8) user set: notify=, and a name
        u = stack.ctl_json("user", "set", ORG, "quiet@mail.example",
                           "notify=none", "name=Q. Quiet")
        self.assertEqual((u["name"], u["notify"]), ("Q. Quiet", ""))
        self.assertEqual([x["name"] for x in stack.ctl_json(
            "user", "list", ORG)["users"] if x["email"] ==
            "quiet@mail.example"], ["Q. Quiet"])

    def test_2_missed_call(self):
        call, st = missed_call("+15551117001")
        self.assertEqual(send()["mail_sent"], 1)
        taken = relay.take()
        # the envelope's sender is [smtp] from's address (where bounces
        # go), not empty
        self.assertEqual([m[0] for m in taken], ["alerts@clinic.example"])
        got = by_rcpt(taken)
        self.assertEqual(sorted(got), ["desk@mail.example"])
        msg = got["desk@mail.example"][0]
        self.assertEqual(msg["Subject"],
                         "[Clínica Sol] Missed call from +15551117001")
        self.assertTrue(dict(msg.raw_items())["Subject"].startswith(
            "=?UTF-8?B?"))
        self.assertEqual(msg["To"], "desk@mail.example")
        self.assertEqual(msg["From"],
                         "telehook alerts <alerts@clinic.example>")
        self.assertEqual(msg["Auto-Submitted"], "auto-generated")
        self.assertIn("Missed call from +15551117001 to %s" % NUMBER,
                      body(msg))
        self.assertIn("%s/dashboard/%s" % (stack.public_url, ORG),
                      body(msg))
        # redelivered, and sent again: nothing more
        tw.post("/webhooks/twilio/voice/status", st)
        self.assertEqual(send()["mail_sent"], 0)
        self.assertEqual(relay.take(), [])

    def test_3_voicemail_waits_for_its_transcription(self):
        c = tw.call_params(to=NUMBER, frm="+15551117002")
        tw.post("/webhooks/twilio/voice/incoming", c)
        tw.post("/webhooks/twilio/voice/gather?step=dial", tw.call_params(
            call=c["CallSid"], status="in-progress",
            DialCallStatus="no-answer"))
        rec = tw.sid("RE")
        tw.post("/webhooks/twilio/recording/status?kind=voicemail", {
            "AccountSid": "AC" + "1" * 32, "CallSid": c["CallSid"],
            "RecordingSid": rec, "RecordingUrl":
            "https://api.twilio.com/2010-04-01/Accounts/AC%s/Recordings/%s"
            % ("1" * 32, rec), "RecordingStatus": "completed",
            "RecordingDuration": "9"})
        # the forward was not answered: a missed call, mailed at once
        # to whoever chose missed_call; the voicemail's e-mail waits for
        # its transcription
        self.assertEqual(send()["mail_sent"], 1)
        got = by_rcpt(relay.take())
        self.assertEqual([(r, m[0]["Subject"]) for r, m in got.items()],
                         [("desk@mail.example", "[Clínica Sol] Missed "
                           "call from +15551117002")])
        tw.post("/webhooks/twilio/transcription", {
            "AccountSid": "AC" + "1" * 32, "CallSid": c["CallSid"],
            "TranscriptionSid": tw.sid("TR"), "TranscriptionStatus":
            "completed", "TranscriptionText": "It is Ann, my crown fell "
            "out.", "RecordingSid": rec})
        self.assertEqual(send()["mail_sent"], 2)
        got = by_rcpt(relay.take())
        self.assertEqual(sorted(got), ["desk@mail.example",
                                       "vet@mail.example"])
        for msgs in got.values():
            self.assertEqual(len(msgs), 1)
            self.assertEqual(msgs[0]["Subject"],
                             "[Clínica Sol] Voicemail from +15551117002")
            self.assertIn("Transcription:\nIt is Ann, my crown fell out.",
                          body(msgs[0]))
        self.assertEqual(send()["mail_sent"], 0)

    def test_4_voicemail_without_transcription_after_five_minutes(self):
        c = tw.call_params(to=NUMBER, frm="+15551117003")
        tw.post("/webhooks/twilio/voice/incoming", c)
        tw.post("/webhooks/twilio/recording/status?kind=voicemail", {
            "AccountSid": "AC" + "1" * 32, "CallSid": c["CallSid"],
            "RecordingSid": tw.sid("RE"), "RecordingUrl":
            "https://api.twilio.com/x", "RecordingStatus": "completed",
            "RecordingDuration": "3"})
        self.assertEqual(send()["mail_sent"], 0)
        stack.psql("UPDATE mail_outbox SET created_at = now() - interval "
                   "'6 minutes' WHERE state = 'pending'")   # time passed
        self.assertEqual(send()["mail_sent"], 2)
        for msgs in by_rcpt(relay.take()).values():
            self.assertIn("(none yet", body(msgs[0]))

    def test_5_urgent_sms_and_a_refused_recipient(self):
        tw.post("/webhooks/twilio/sms/incoming", tw.sms_params(
            "Severe pain since last night", to=NUMBER, frm="+15551117004"))
        tw.post("/webhooks/twilio/sms/incoming", tw.sms_params(
            "See you Tuesday", to=NUMBER, frm="+15551117005"))
        out = send()
        self.assertEqual((out["mail_sent"], out["mail_failed"]), (1, 1))
        got = by_rcpt(relay.take())
        self.assertEqual(sorted(got), ["desk@mail.example"])
        self.assertEqual(got["desk@mail.example"][0]["Subject"],
                         "[Clínica Sol] Urgent SMS from +15551117004")
        self.assertIn("Severe pain since last night",
                      body(got["desk@mail.example"][0]))
        # the relay's 550 is final: failed at once, listed, counted
        failed = [o for o in stack.ctl_json(
            "outbox", "list", "--state", "failed")["outbox"]
            if o["kind"] == "email"]
        self.assertEqual([(o["to"], o["text"], o["attempts"])
                          for o in failed], [(REFUSED, "urgent_sms", 1)])
        self.assertIn("550", failed[0]["last_error"])
        self.assertEqual(metric("email", "failed"), 1)

    def test_6_relay_down_then_up(self):
        relay.stop()
        try:
            missed_call("+15551117006")
            out = send()
            self.assertEqual((out["mail_sent"], out["mail_retrying"]),
                             (0, 1))
            retrying(self)
            self.assertEqual(metric("email", "retry"), 1)
            # not due again for 30 s
            self.assertEqual(send()["mail_retrying"], 0)
        finally:
            relay.start()
        self.assertEqual(send()["mail_sent"], 0)        # still not due
        stack.psql("UPDATE mail_outbox SET next_attempt_at = now() "
                   "WHERE state = 'retry'")            # as if time passed
        self.assertEqual(send()["mail_sent"], 1)
        got = by_rcpt(relay.take())
        self.assertEqual(sorted(got), ["desk@mail.example"])
        self.assertEqual(len(got["desk@mail.example"]), 1)
        self.assertEqual(send()["mail_sent"], 0)
        self.assertEqual(relay.take(), [])
        self.assertEqual(metric("email", "retry"), 0)

    def test_7_daily_summary(self):
        stack.ctl_ok("user", "add", SUMMARY_ORG, "boss@mail.example")
        stack.ctl_ok("user", "set", SUMMARY_ORG, "boss@mail.example",
                     "notify=daily_summary")
        tz = zoneinfo.ZoneInfo(stack.psql(
            "SELECT timezone FROM organizations WHERE id = '%s'"
            % SUMMARY_ORG))
        yesterday = datetime.now(tz).date() - timedelta(days=1)
        noon = datetime(yesterday.year, yesterday.month, yesterday.day, 12,
                        tzinfo=tz).isoformat()
        # yesterday, in the organization's day: two answered calls, a
        # missed one, a voicemail (handled), an SMS each way; and one
        # answered call today, which is not in the summary
        for i, (outcome, handled) in enumerate((
                ("answered", False), ("answered", False),
                ("missed", False), ("voicemail", True))):
            stack.psql(
                "INSERT INTO calls (organization_id, provider, call_id, "
                "direction, status, started_at, outcome, handled_at) VALUES "
                "('%s', 'twilio', 'CAsum%d', 'inbound', 'completed', '%s', "
                "'%s', %s)" % (SUMMARY_ORG, i, noon, outcome,
                               "now()" if handled else "NULL"))
        stack.psql(
            "INSERT INTO calls (organization_id, provider, call_id, "
            "direction, status, outcome) VALUES ('%s', 'twilio', "
            "'CAsumtoday', 'inbound', 'completed', 'answered')" % SUMMARY_ORG)
        for i, d in enumerate(("inbound", "outbound")):
            stack.psql(
                "INSERT INTO messages (organization_id, provider, "
                "message_id, direction, created_at) VALUES ('%s', 'twilio',"
                " 'SMsum%d', '%s', '%s')" % (SUMMARY_ORG, i, d, noon))
        self.assertEqual(send()["mail_sent"], 1)
        got = by_rcpt(relay.take())
        msg = got["boss@mail.example"][0]
        self.assertEqual(msg["Subject"], "[Summary ~ Clinic] Summary of %s"
                         % yesterday.isoformat())
        # printable ASCII ('~' is its last) goes as it is; only other
        # bytes make an encoded word (RFC 2047), as for "Clínica Sol"
        raw = dict(msg.raw_items())["Subject"]
        self.assertEqual(raw, "[Summary ~ Clinic] Summary of %s"
                         % yesterday.isoformat())
        self.assertIn("Answered calls: 2\nMissed calls: 2 (voicemail: 1; "
                      "not yet handled: 1)\nSMS received: 1\nSMS sent: 1\n",
                      body(msg))
        # once a day
        self.assertEqual(send()["mail_sent"], 0)

    def remote_refused(self, remote, frm):
        """A missed call's alert, sent to remote: not sent, waiting for
        its retry, and nothing but the greeting (and STARTTLS) said."""
        missed_call(frm)
        p = send_via(remote)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = json.loads(p.stdout)
        self.assertEqual((out["mail_sent"], out["mail_retrying"]), (0, 1))
        self.assertFalse(remote.thread.is_alive())
        self.assertTrue(remote.lines and
                        remote.lines[0].upper().startswith("EHLO"),
                        remote.lines)
        said = {x.split(" ")[0].upper() for x in remote.lines}
        self.assertEqual(said & {"AUTH", "MAIL", "RCPT", "DATA"}, set(),
                         remote.lines)
        plain = base64.b64encode(("\0%s\0%s" % (USER, PASSWORD)).encode())
        for secret in (PASSWORD.encode(), plain,
                       base64.b64encode(PASSWORD.encode())):
            self.assertNotIn(secret, remote.data)
        error = retrying(self)
        self.assertNotIn(PASSWORD, error)
        # the loopback relay takes it when it is due again
        stack.psql("UPDATE mail_outbox SET next_attempt_at = now() "
                   "WHERE state = 'retry'")
        self.assertEqual(send()["mail_sent"], 1)
        self.assertEqual(sorted(by_rcpt(relay.take())),
                         ["desk@mail.example"])
        return error

    def test_8_remote_relay_without_starttls(self):
        remote = Remote()
        self.remote_refused(remote, "+15551117008")
        self.assertNotIn("STARTTLS", remote.lines)
        self.assertIsNone(remote.tls)

    def test_9_remote_relay_with_an_untrusted_certificate(self):
        with tempfile.TemporaryDirectory() as d:
            key, crt = os.path.join(d, "key.pem"), os.path.join(d, "crt.pem")
            # right name, right dates: only its issuer is untrusted
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "rsa:2048",
                 "-nodes", "-keyout", key, "-out", crt, "-days", "2",
                 "-subj", "/CN=127.0.0.2", "-addext",
                 "subjectAltName=IP:127.0.0.2"],
                check=True, capture_output=True)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(crt, key)
        remote = Remote(ctx)
        self.remote_refused(remote, "+15551117009")
        self.assertIn("STARTTLS", [x.upper() for x in remote.lines])
        self.assertIs(remote.tls, False)

    def test_a_relay_that_asks_for_credentials_gets_them(self):
        # telehook.conf(5) [smtp] username, password: telehook logs in
        # with them (SMTP AUTH), here to a loopback relay that takes no
        # mail without them
        seen = []

        def auth(server, session, envelope, mechanism, data):
            seen.append((mechanism, data.login, data.password))
            return AuthResult(success=(data.login, data.password) ==
                              (USER.encode(), PASSWORD.encode()))
        port = free_port()
        strict = Relay()
        strict.ctl = Controller(strict, hostname="127.0.0.1", port=port,
                                authenticator=auth, auth_required=True,
                                auth_require_tls=False)
        strict.ctl.start()
        self.addCleanup(strict.stop)
        missed_call("+15551117010")
        conf = stack.conf_variant(
            "auth.conf", '"smtp://127.0.0.1:%d"' % PORT,
            '"smtp://127.0.0.1:%d"\nusername = "%s"\npassword = "%s"'
            % (port, USER, PASSWORD))
        p = stack.ctl("--json", "outbox", "send", conf=conf, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["mail_retrying"], 0, p.stdout)
        self.assertEqual([(login, password) for _, login, password in seen],
                         [(USER.encode(), PASSWORD.encode())])
        self.assertIn("desk@mail.example", by_rcpt(strict.take()))

    def test_a_header_is_one_line_whatever_the_configuration_holds(self):
        # telehook.conf(5) [smtp] from is put in the From header: a line
        # break in it (a bare CR fits in one line of the file) cannot
        # start a header of its own
        missed_call("+15551117011")
        conf = stack.conf_variant(
            "from.conf", '"telehook alerts <alerts@clinic.example>"',
            '"telehook alerts\rBcc: spy@evil.example '
            '<alerts@clinic.example>"')
        p = stack.ctl("--json", "outbox", "send", conf=conf, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        got = relay.take()
        self.assertTrue(got)
        for _, rcpts, msg in got:
            self.assertNotIn("spy@evil.example", rcpts)
            self.assertIsNone(msg["Bcc"])
            self.assertEqual(dict(msg.raw_items())["From"],
                             "telehook alerts Bcc: spy@evil.example "
                             "<alerts@clinic.example>")


load_tests = in_order(__name__)

if __name__ == "__main__":
    unittest.main(verbosity=2)
