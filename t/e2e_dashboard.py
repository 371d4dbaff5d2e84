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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import need, Stack, BUILDDIR, in_order  # noqa: E402
import cdp  # noqa: E402
import e2e_twilio as tw  # noqa: E402

stack = None
chrome = None
org = empty_org = token = empty_token = None
ARTIFACTS = os.path.join(BUILDDIR, "t", "artifacts")
KPIS = ["answered_calls", "missed_calls", "sms_follow_ups", "sms_sent",
        "avg_call_seconds", "ai_calls_analyzed", "ai_calls_successful"]


def setUpModule():
    global stack, chrome, org, empty_org, token, empty_token
    need("chromium")
    stack = Stack(workers=2, rate_limit=100000, extra_conf={
        "twilio": {"auth_token": tw.TOKEN}}).start()
    tw.stack = stack
    org = stack.ctl_ok("org", "add", "Page Clinic").strip()
    stack.ctl_ok("org", "set", org, "hours=24/7")
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


load_tests = in_order(__name__)

if __name__ == "__main__":
    unittest.main(verbosity=2)
