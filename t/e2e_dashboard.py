"""
e2e_dashboard: the dashboard page (www/dashboard.html, served by nginx
at /dashboard/{org}) in headless Chromium against the real stack: after
a few signed webhooks it shows the numbers the API returns, takes its
token from the URL fragment once and keeps it, refreshes, marks
notifications read, and has clear states for a bad or missing token and
for no activity.  Screenshots are saved in t/artifacts/.
"""

import json
import os
import sys
import unittest
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import need, Stack, BUILDDIR, in_order  # noqa: E402
import cdp  # noqa: E402
import e2e_twilio as tw  # noqa: E402
import e2e_staff as staff  # noqa: E402

stack = None
chrome = None
org = empty_org = token = empty_token = None
ARTIFACTS = os.path.join(BUILDDIR, "t", "artifacts")
KPIS = ["answered_calls", "missed_calls", "sms_follow_ups", "sms_sent",
        "avg_call_seconds", "ai_calls_analyzed", "ai_calls_successful"]


def setUpModule():
    global stack, chrome, org, empty_org, token, empty_token
    need("chromium")
    # Twilio's recording resource, faked on loopback (e2e_staff)
    staff.fake = staff.FakeTwilio({staff.SID_A: tw.TOKEN})
    stack = Stack(workers=2, rate_limit=100000, extra_conf={
        "twilio": {"auth_token": tw.TOKEN,
                   "api_url": staff.fake.base}}).start()
    tw.stack = staff.stack = stack
    org = stack.ctl_ok("org", "add", "Page Clinic").strip()
    stack.ctl_ok("org", "set", org, "hours=24/7",
                 "twilio_account_sid=" + staff.SID_A)
    stack.ctl_ok("number", "add", org, "+15550060000")
    stack.ctl_ok("user", "add", org, "desk@page.example")
    token = stack.ctl_ok("token", "create", org).strip()
    empty_org = stack.ctl_ok("org", "add", "Quiet Clinic").strip()
    empty_token = stack.ctl_ok("token", "create", empty_org).strip()
    for n, (status, secs) in enumerate((("completed", "75"),
                                        ("completed", "45"),
                                        ("no-answer", None))):
        answered_call(status, secs, "+1555112%04d" % n)
    tw.post("/webhooks/twilio/sms/incoming", tw.sms_params(
        "Do you take <Delta> insurance?", to="+15550060000",
        frm="+15551129999"))
    os.makedirs(ARTIFACTS, exist_ok=True)
    chrome = cdp.Chrome()


def tearDownModule():
    if chrome is not None:
        chrome.close()
    if stack is not None:
        stack.stop()
    if staff.fake is not None:
        staff.fake.shutdown()


def answered_call(status, secs, frm):
    p = tw.call_params(to="+15550060000", frm=frm)
    tw.post("/webhooks/twilio/voice/incoming", p)
    if status == "completed":
        # the forward picked up: answered (architecture.md §7)
        tw.post("/webhooks/twilio/voice/gather?step=dial", tw.call_params(
            call=p["CallSid"], frm=frm, status="in-progress",
            DialCallStatus="completed"))
    extra = {"CallDuration": secs} if secs else {}
    tw.post("/webhooks/twilio/voice/status", tw.call_params(
        call=p["CallSid"], frm=frm, status=status, SequenceNumber="1",
        CallbackSource="call-progress-events", **extra))


def api(path, tok=token):
    r = stack.get("/api/v1/organizations/%s/%s" % (org, path),
                  {"Authorization": "Bearer " + (tok or token)})
    assert r.status == 200, r
    return r.json()


def page(o=None, fragment=""):
    return "%s/dashboard/%s%s" % (stack.public_url, o or org, fragment)


def state():
    return chrome.eval("document.body.dataset.state || ''")


def shown_kpis():
    return chrome.eval(
        "Object.fromEntries([...document.querySelectorAll('[data-kpi]')]"
        ".map(e => [e.dataset.kpi, Number(e.textContent)]))")


class Page(unittest.TestCase):

    def test_1_shows_what_the_api_says(self):
        chrome.goto(page(fragment="#token=" + token))
        chrome.wait("dashboard", "document.body.dataset.state === 'ready'")
        d = api("dashboard")
        self.assertEqual(d["kpis"]["answered_calls"], 2)
        self.assertEqual(shown_kpis(), d["kpis"])
        self.assertEqual(sorted(shown_kpis()), sorted(KPIS))
        self.assertEqual(chrome.eval("document.getElementById("
                                     "'avg-pretty').textContent"), "1:00")
        # the token left the address bar and stays in the browser
        self.assertEqual(chrome.eval("location.hash"), "")
        self.assertEqual(chrome.eval(
            "localStorage.getItem('telehook.token.%s')" % org), token)
        items = chrome.eval("[...document.querySelectorAll('#activity li "
                            ".summary')].map(e => e.textContent)")
        self.assertEqual(items, [a["summary"] for a in d["recent_activity"]])
        self.assertIn("Missed call from +15551120002 (no-answer)", items)
        times = chrome.eval("[...document.querySelectorAll('#activity "
                            "time')].map(e => e.dateTime)")
        self.assertEqual(times, [a["occurred_at"]
                                 for a in d["recent_activity"]])
        notes = api("notifications?unread=1")["notifications"]
        shown = chrome.eval("[...document.querySelectorAll('#notifications"
                            " li .summary')].map(e => e.textContent)")
        self.assertEqual(shown, [n["message"] for n in notes])
        chrome.screenshot(os.path.join(ARTIFACTS, "dashboard.png"))

    def test_2_refresh_and_mark_read(self):
        chrome.goto(page())
        chrome.wait("dashboard", "document.body.dataset.state === 'ready'")
        before = shown_kpis()["answered_calls"]
        unread = len(api("notifications?unread=1")["notifications"])
        answered_call("completed", "30", "+15551129001")
        # what the 30 s timer does, without the wait
        chrome.eval("document.dispatchEvent(new Event('visibilitychange'))")
        chrome.wait("new call", "Number(document.querySelector("
                    "'[data-kpi=answered_calls]').textContent) === %d"
                    % (before + 1))
        self.assertEqual(shown_kpis(), api("dashboard")["kpis"])
        count = "document.querySelectorAll('#notifications li button')" \
                ".length"
        self.assertEqual(chrome.eval(count), unread + 1)
        chrome.eval("document.querySelector('#notifications li button')"
                    ".click()")
        chrome.wait("marked read", "%s === %d" % (count, unread))
        self.assertEqual(len(api("notifications?unread=1")
                             ["notifications"]), unread)

    def test_3_phone_screen(self):
        chrome.viewport(375, 812, mobile=True)
        try:
            chrome.goto(page())
            chrome.wait("dashboard",
                        "document.body.dataset.state === 'ready'")
            self.assertLessEqual(chrome.eval(
                "document.documentElement.scrollWidth"), 375)
            chrome.screenshot(os.path.join(ARTIFACTS, "dashboard-phone.png"))
        finally:
            chrome.call("Emulation.clearDeviceMetricsOverride")

    def test_4_bad_and_missing_token(self):
        chrome.goto(page(fragment="#token=thk_not-a-real-token"))
        chrome.wait("refused", "document.body.dataset.state === "
                    "'bad-token'")
        self.assertFalse(chrome.eval("document.getElementById('login')"
                                     ".hidden"))
        self.assertIn("not accepted", chrome.eval(
            "document.getElementById('status').textContent"))
        self.assertIsNone(chrome.eval(
            "localStorage.getItem('telehook.token.%s')" % org))
        # another organization's token: no dashboard here
        chrome.goto(page(fragment="#token=" + empty_token))
        chrome.wait("refused", "document.body.dataset.state === "
                    "'bad-token'")
        self.assertIn("no dashboard here", chrome.eval(
            "document.getElementById('status').textContent"))
        chrome.goto(page())
        chrome.wait("asks", "document.body.dataset.state === 'no-token'")
        chrome.screenshot(os.path.join(ARTIFACTS, "dashboard-login.png"))
        # typing the token in the form opens the dashboard
        chrome.eval("document.getElementById('token').value = %s; "
                    "document.getElementById('login').requestSubmit()"
                    % json.dumps(token))
        chrome.wait("dashboard", "document.body.dataset.state === 'ready'")
        self.assertEqual(shown_kpis(), api("dashboard")["kpis"])

    def test_5_empty_organization(self):
        chrome.goto(page(empty_org, "#token=" + empty_token))
        chrome.wait("dashboard", "document.body.dataset.state === 'ready'")
        self.assertEqual(set(shown_kpis().values()), {0})
        self.assertEqual(chrome.eval("document.querySelector('#activity "
                                     ".empty').textContent"),
                         "No activity yet.")
        self.assertEqual(chrome.eval("document.querySelector("
                                     "'#notifications .empty').textContent"),
                         "No unread notifications.")
        self.assertEqual(chrome.eval("document.getElementById('ai-rate')"
                                     ".textContent"), "–")


def tab(name):
    chrome.eval("document.querySelector('[data-tab=%s]').click()" % name)
    chrome.wait(name, "document.body.dataset.tab === '%s' && "
                "document.body.dataset.state === 'ready'" % name)


def texts(selector):
    return chrome.eval("[...document.querySelectorAll(%s)].map(e => "
                       "e.textContent)" % json.dumps(selector))


class StaffView(unittest.TestCase):
    """The staff's view (telehook(8)): a voicemail that plays from the
    streamed recording with its transcription, an SMS thread, a missed
    call marked handled that stays cleared after a reload, the
    organization's name in the title, at 390 and 1280 px."""

    @classmethod
    def setUpClass(cls):
        cls.vm = staff.voicemail("+15550060000", "+15551127001")
        tw.post("/webhooks/twilio/transcription", {
            "AccountSid": staff.SID_A, "CallSid": cls.vm,
            "TranscriptionSid": tw.sid("TR"), "TranscriptionStatus":
            "completed", "TranscriptionText": "Please call me back about "
            "Tuesday.", "RecordingSid": tw.sid("RE")})
        for body in ("Is parking free?", "Thanks!"):
            tw.post("/webhooks/twilio/sms/incoming", tw.sms_params(
                body, to="+15550060000", frm="+15551127002"))
        # a question the organization's hours answer automatically
        cls.asked = tw.sms_params("What are your hours?", to="+15550060000",
                                  frm="+15551127003")
        cls.reply = tw.post("/webhooks/twilio/sms/incoming", cls.asked)
        # a message sent from elsewhere, known by its status alone
        tw.post("/webhooks/twilio/sms/status", {
            "AccountSid": staff.SID_A, "MessageSid": tw.sid("SM"),
            "From": "+15550060000", "To": "+15551127004",
            "MessageStatus": "delivered", "SmsStatus": "delivered"})
        # a campaign with its contacts
        camp = stack.ctl_json("campaign", "add", org, "Recall visits")["id"]
        csv = stack.path("recall.csv")
        with open(csv, "w") as f:
            f.write("phone,name\n+15551127101,Ada Lovelace\n"
                    "+15551127102,Alan Turing\n+15551127103,Grace Hopper\n")
        stack.ctl_ok("campaign", "import", camp, csv)
        chrome.viewport(1280, 900)
        chrome.goto(page(fragment="#token=" + token))
        chrome.wait("dashboard", "document.body.dataset.state === 'ready'")

    @classmethod
    def tearDownClass(cls):
        chrome.call("Emulation.clearDeviceMetricsOverride")

    def test_1_title(self):
        self.assertEqual(chrome.eval("document.title"),
                         "Page Clinic · telehook")
        self.assertEqual(chrome.eval("document.getElementById('org-name')"
                                     ".textContent"), "Page Clinic")

    def test_2_voicemail_plays(self):
        tab("voicemail")
        li = "#voicemails li[data-call=%s]" % json.dumps(self.vm)
        chrome.eval("document.querySelector(%s).querySelector('button')"
                    ".click()" % json.dumps(li))
        chrome.wait("the recording loaded", "(a => a && a.readyState >= 2)"
                    "(document.querySelector(%s + ' audio'))"
                    % json.dumps(li), timeout=30)
        # the whole recording: e2e_staff's ten seconds of 8 kHz audio
        self.assertAlmostEqual(chrome.eval(
            "document.querySelector(%s + ' audio').duration"
            % json.dumps(li)), (len(staff.AUDIO) - 44) / 16000.0, places=2)
        self.assertEqual(texts(li + " .transcript"),
                         ["Please call me back about Tuesday."])
        chrome.screenshot(os.path.join(ARTIFACTS, "staff-voicemail.png"))

    def test_3_thread(self):
        tab("messages")
        li = "#threads li[data-contact='+15551127002']"
        chrome.eval("document.querySelector(%s + ' button').click()"
                    % json.dumps(li))
        chrome.wait("the thread", "document.body.dataset.thread === "
                    "'+15551127002' && document.querySelectorAll('#thread "
                    "li').length === 2")
        self.assertEqual(texts("#thread .body"),
                         ["Is parking free?", "Thanks!"])
        r = api("conversations/+15551127002")
        self.assertEqual([m["body"] for m in reversed(r["messages"])],
                         texts("#thread .body"))
        chrome.screenshot(os.path.join(ARTIFACTS, "staff-messages.png"))

    def open_thread(self, contact, n):
        tab("messages")
        chrome.eval("document.querySelector(%s).click()" % json.dumps(
            "#threads li[data-contact='%s'] button" % contact))
        chrome.wait("the thread", "document.body.dataset.thread === '%s' "
                    "&& document.querySelectorAll('#thread li').length === "
                    "%d" % (contact, n))

    def test_3b_the_auto_reply_is_read(self):
        # the staff read what the caller was answered, not only a tag
        text = ET.fromstring(self.reply.body).find("Message").text
        self.open_thread("+15551127003", 1)
        self.assertEqual(texts("#thread .reply"),
                         ["Automatic reply: " + text])
        # Twilio's status callback for that reply: now a message of its
        # own, with the text, shown once
        cb = ET.fromstring(self.reply.body).find("Message").get(
            "statusCallback")[len(stack.public_url):]
        tw.post(cb, {"AccountSid": staff.SID_A, "MessageSid": tw.sid("SM"),
                     "From": "+15550060000", "To": "+15551127003",
                     "MessageStatus": "delivered", "SmsStatus": "delivered"})
        chrome.goto(page())
        chrome.wait("dashboard", "document.body.dataset.state === 'ready'")
        self.open_thread("+15551127003", 2)
        self.assertEqual(texts("#thread .body"),
                         ["What are your hours?", text])
        self.assertEqual(texts("#thread .reply"), [])

    def test_3c_no_empty_bubble(self):
        self.open_thread("+15551127004", 1)
        self.assertEqual(texts("#thread .body"),
                         ["Text not reported by the provider"])
        self.assertTrue(chrome.eval("document.querySelector('#thread "
                                    ".body').classList.contains('unknown')"))

    def test_4_handled_stays_cleared(self):
        tab("today")
        missed = [c["call_id"] for c in api("calls?status=missed")["calls"]
                  if c["handled_at"] is None]
        self.assertTrue(missed)
        todo = texts("#callbacks li a.callback")
        self.assertEqual(len(todo), len(missed))
        first = missed[0]
        sel = "#callbacks li[data-call=%s]" % json.dumps(first)
        chrome.eval("document.querySelector(%s + ' button').click()"
                    % json.dumps(sel))
        chrome.wait("cleared", "!document.querySelector(%s) && "
                    "!!document.querySelector('#done-today li[data-call=%s]')"
                    % (json.dumps(sel), json.dumps(json.dumps(first))[1:-1]))
        self.assertIsNotNone(api("calls/" + first)["handled_at"])
        chrome.goto(page())
        chrome.wait("dashboard", "document.body.dataset.state === 'ready'")
        self.assertFalse(chrome.eval("!!document.querySelector(%s)"
                                     % json.dumps(sel)))
        self.assertEqual(len(texts("#callbacks li a.callback")),
                         len(missed) - 1)

    def test_5_screenshots(self):
        docs = os.path.join(ARTIFACTS, "docs")
        os.makedirs(docs, exist_ok=True)
        for width, height in ((1280, 900), (390, 844)):
            chrome.viewport(width, height, mobile=width < 500)
            chrome.goto(page())
            chrome.wait("dashboard",
                        "document.body.dataset.state === 'ready'")
            self.assertLessEqual(chrome.eval(
                "document.documentElement.scrollWidth"), width)
            chrome.screenshot(os.path.join(docs, "staff-today-%d.png"
                                           % width))
            tab("voicemail")
            chrome.eval("document.querySelector('#voicemails li button')"
                        ".click()")
            chrome.wait("the recording loaded", "(a => a && a.readyState "
                        ">= 2)(document.querySelector('#voicemails audio'))")
            self.assertLessEqual(chrome.eval(
                "document.documentElement.scrollWidth"), width)
            chrome.screenshot(os.path.join(docs, "staff-voicemail-%d.png"
                                           % width))
            tab("messages")
            chrome.eval("document.querySelector('#threads li button')"
                        ".click()")
            chrome.wait("a thread", "!!document.body.dataset.thread")
            self.assertLessEqual(chrome.eval(
                "document.documentElement.scrollWidth"), width)
            chrome.screenshot(os.path.join(docs, "staff-messages-%d.png"
                                           % width))
            tab("campaigns")
            chrome.eval("document.querySelector('#campaigns li button')"
                        ".click()")
            chrome.wait("its contacts", "document.querySelectorAll("
                        "'#contacts tbody tr').length === 3")
            self.assertLessEqual(chrome.eval(
                "document.documentElement.scrollWidth"), width)
            chrome.screenshot(os.path.join(docs, "staff-campaigns-%d.png"
                                           % width))

    def test_6_a_phone_sees_every_tab(self):
        chrome.viewport(390, 844, mobile=True)
        chrome.goto(page())
        chrome.wait("dashboard", "document.body.dataset.state === 'ready'")
        # every tab inside the screen, none scrolled out of sight
        self.assertEqual(chrome.eval(
            "[...document.querySelectorAll('.tabs button')].filter(b => {"
            "const r = b.getBoundingClientRect(); return r.left < 0 || "
            "r.right > window.innerWidth || r.width === 0}).map(b => "
            "b.textContent)"), [])
        # the header: the name on one line, the status on another
        self.assertLessEqual(chrome.eval(
            "(h => h.getBoundingClientRect().height / parseFloat("
            "getComputedStyle(h).lineHeight))(document.querySelector('h1'))"),
            1.05)


load_tests = in_order(__name__)

if __name__ == "__main__":
    unittest.main(verbosity=2)
