"""
e2e_security: tried as an attacker with one valid client account would
try it (issue 13, architecture.md §2, 4 and 5).

  * Tenant crossing: every provider x every credential kind
    (deployment-wide, the organization's own, shared secret) x every
    routing input (organization_id, OrgId, the number, the call already
    stored, AccountSid, the query string of a Retell request).  Only the
    allowed combinations store anything; the others are 403 cross_tenant
    (or 401, where a per-organization key is itself chosen by the
    routing) and are in the rejection log.
  * Secrets and message text at rest: after a run with a database
    outage in the middle, no secret appears in the spool, the stored
    payloads and headers, nginx's logs or the workers' log, and no
    message text or phone number in the spool or any log.
  * telehookctl escapes control characters; --json stays exact.
  * The dashboard page has its Content-Security-Policy.

The main stack is the site architecture.md §2 promises: the operator's own
"upstream telehook" block, telehook.conf and compat.conf, nothing else at
http level.  The nginx contract of compat aliases (413, 429, the 15 s
timeout, realip) is in e2e_nginx.py.
"""

import glob
import json
import os
import re
import sys
import time
import unittest
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stack, retell_sign, twilio_sign, wait_for, in_order  # noqa: E402

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"

# Deployment-wide credentials (telehook.conf): they route freely.
TW_TOKEN = "sec-deploy-twilio-token-7f3a9c"
TW_SHARED = "sec-deploy-twilio-shared-5d1e"
RT_KEY = "sec-deploy-retell-key-0b8c42"
RT_SHARED = "sec-deploy-retell-shared-9a7f"
VM_TOKEN = "sec-deploy-voipms-token-c4e611"
# Organization A's own credentials: they may touch A alone.
ACC_A = "AC" + "a1" * 16
ACC_B = "AC" + "b2" * 16
TW_TOKEN_A = "sec-orgA-twilio-token-2e9d77"
RT_KEY_A = "sec-orgA-retell-key-61f0aa"
VM_TOKEN_A = "sec-orgA-voipms-token-83bd52"
SECRETS = [TW_TOKEN, TW_SHARED, RT_KEY, RT_SHARED, VM_TOKEN, TW_TOKEN_A,
           RT_KEY_A, VM_TOKEN_A]

NUM_A = "+15557010001"
NUM_B = "+15557020002"
DID_B = "5557020002"            # B's number as VoIP.ms writes it
NUM_NOBODY = "+15557099999"
CALLER = "+15557430101"

stack = None
A = B = None
seq = [0]
texts = []                      # every message text sent


def uniq():
    seq[0] += 1
    return "%d%05d" % (os.getpid(), seq[0])


def text(label):
    """A message text unique to this run, remembered for the grep."""
    t = "patient-text-%s-%s" % (label, uniq())
    texts.append(t)
    return t


def q1(sql):
    return stack.psql(sql)


def count(table, where="true"):
    return int(q1("SELECT count(*) FROM %s WHERE %s" % (table, where)))


def in_org(org):
    return count("events", "organization_id = '%s'" % org)


# -- Twilio, signed as the SDKs sign -------------------------------------

def tw_post(path, params, cred):
    """cred: ("token", T) signs with T; ("shared", S) sends the secret."""
    params = list(params.items())
    if cred[0] == "token":
        h = {"X-Twilio-Signature": twilio_sign(cred[1], stack.public_url + path,
                                           params)}
    else:
        h = {"X-Twilio-Webhook-Secret": cred[1]}
    return stack.post(path, urllib.parse.urlencode(params), FORM, h)


def tw_sms(to, account, body, **extra):
    p = {"MessageSid": "SM" + uuid.uuid4().hex, "AccountSid": account,
         "From": CALLER, "To": to, "Body": body, "NumMedia": "0",
         "SmsStatus": "received", "ApiVersion": "2010-04-01"}
    p.update(extra)
    return p


def tw_call(to, account, call=None, status="ringing", **extra):
    p = {"CallSid": call or "CA" + uuid.uuid4().hex, "AccountSid": account,
         "From": CALLER, "To": to, "CallStatus": status,
         "Direction": "inbound", "ApiVersion": "2010-04-01"}
    p.update(extra)
    return p


# -- Retell, signed as retell-sdk signs ---------------------------------

def rt_post(obj, cred, query=""):
    body = json.dumps(obj)
    if cred[0] == "key":
        h = {"X-Retell-Signature": retell_sign(cred[1], body)}
    else:
        h = {"X-Retell-Secret": cred[1]}
    return stack.post("/webhooks/retell" + query, body, JSON, h)


def rt_event(to, meta=None, **top):
    c = {"call_type": "phone_call", "call_id": "call_" + uuid.uuid4().hex,
         "agent_id": "agent_sec", "call_status": "ongoing",
         "direction": "inbound", "from_number": CALLER, "to_number": to,
         "start_timestamp": int(time.time() * 1000) - 5000}
    if meta is not None:
        c["metadata"] = meta
    o = {"event": "call_started", "call": c}
    o.update(top)
    return o


# -- VoIP.ms ------------------------------------------------------------

def vm_get(token, to, message, sep="&", **extra):
    pairs = [("token", token), ("to", to), ("from", "5145550199"),
             ("message", message), ("id", uniq())] + list(extra.items())
    q = sep.join("%s=%s" % (k, urllib.parse.quote(v, safe=""))
                 for k, v in pairs)
    return stack.request("GET", "/webhooks/voipms/sms/incoming?" + q)


def setUpModule():
    global stack, A, B
    stack = Stack(workers=2, secret_key=True, own_upstream=True,
                  extra_conf={
                      "twilio": {"auth_token": TW_TOKEN,
                                 "webhook_secret": TW_SHARED},
                      "retell": {"api_key": RT_KEY,
                                 "webhook_secret": RT_SHARED},
                      "voipms": {"url_token": VM_TOKEN}}).start()
    A = stack.ctl_ok("org", "add", "Tenant A").strip()
    B = stack.ctl_ok("org", "add", "Tenant B").strip()
    for org, num in ((A, NUM_A), (B, NUM_B)):
        stack.ctl_ok("org", "set", org, "hours=24/7")
        stack.ctl_ok("number", "add", org, num)
        stack.ctl_ok("user", "add", org, "staff@%s.example" % org[:8])
    stack.ctl_ok("org", "set", B, "twilio_account_sid=" + ACC_B)
    stack.ctl_ok("secret", "set", A, "twilio", "--account", ACC_A,
                 input=TW_TOKEN_A + "\n")
    stack.ctl_ok("secret", "set", A, "retell", input=RT_KEY_A + "\n")
    stack.ctl_ok("secret", "set", A, "voipms", input=VM_TOKEN_A + "\n")


def tearDownModule():
    if stack is not None:
        stack.stop()


class CrossTenant(unittest.TestCase):
    """Organization A's own credentials never reach B."""

    def refused(self, r, statuses=(403,)):
        self.assertIn(r.status, statuses, r)
        if r.status == 403:
            self.assertEqual(r.json(), {"error": "routed to an organization "
                                        "other than the credential's own"})

    def assert_b_untouched(self, fn):
        before = {t: count(t, "organization_id = '%s'" % B) for t in
                  ("events", "messages", "calls", "notifications",
                   "activity", "opt_outs")}
        total = count("events")
        rej = count("rejections", "cause = 'cross_tenant'")
        r = fn()
        after = {t: count(t, "organization_id = '%s'" % B) for t in before}
        self.assertEqual(after, before)
        self.assertEqual(count("events"), total, "nothing stored anywhere")
        return r, rej

    def test_twilio_own_token_cannot_route_to_b(self):
        own = ("token", TW_TOKEN_A)
        cases = [
            # the number
            ("/webhooks/twilio/sms/incoming",
             tw_sms(NUM_B, ACC_A, text("tw-num"))),
            ("/webhooks/twilio/voice/incoming", tw_call(NUM_B, ACC_A)),
            # the body's organization_id and OrgId
            ("/webhooks/twilio/sms/incoming",
             tw_sms(NUM_A, ACC_A, text("tw-orgid"), organization_id=B)),
            ("/webhooks/twilio/sms/incoming",
             tw_sms(NUM_NOBODY, ACC_A, text("tw-OrgId"), OrgId=B)),
            # STOP into B would silence B's auto-replies
            ("/webhooks/twilio/sms/incoming", tw_sms(NUM_B, ACC_A, "STOP")),
            # the query string (signed: part of the URL)
            ("/webhooks/twilio/voice/incoming?organization_id=" + B,
             tw_call(NUM_NOBODY, ACC_A)),
        ]
        for path, params in cases:
            with self.subTest(path=path, to=params["To"]):
                r, rej = self.assert_b_untouched(
                    lambda: tw_post(path, params, own))
                self.refused(r)
                self.assertEqual(count("rejections",
                                       "cause = 'cross_tenant'"), rej + 1)
        # a call B already has: its status callbacks route by CallSid
        call = "CA" + uuid.uuid4().hex
        self.assertEqual(tw_post("/webhooks/twilio/voice/incoming",
                                 tw_call(NUM_B, ACC_B, call=call),
                                 ("token", TW_TOKEN)).status, 200)
        r, _ = self.assert_b_untouched(lambda: tw_post(
            "/webhooks/twilio/voice/status",
            tw_call(NUM_NOBODY, ACC_A, call=call, status="completed",
                    CallDuration="5", SequenceNumber="3"), own))
        self.refused(r)
        # AccountSid of B: A's token is not even tried
        r, _ = self.assert_b_untouched(lambda: tw_post(
            "/webhooks/twilio/sms/incoming",
            tw_sms(NUM_NOBODY, ACC_B, text("tw-acc")), own))
        self.refused(r, (401,))

    def test_twilio_own_token_reaches_a(self):
        own = ("token", TW_TOKEN_A)
        n = in_org(A)
        self.assertEqual(tw_post("/webhooks/twilio/sms/incoming",
                                 tw_sms(NUM_A, ACC_A, text("tw-a")),
                                 own).status, 200)
        # an unknown number belongs to the credential's organization
        self.assertEqual(tw_post("/webhooks/twilio/sms/incoming",
                                 tw_sms(NUM_NOBODY, ACC_A, text("tw-a2")),
                                 own).status, 200)
        self.assertEqual(tw_post("/webhooks/twilio/sms/incoming",
                                 tw_sms(NUM_A, ACC_A, text("tw-a3"),
                                        OrgId=A), own).status, 200)
        self.assertEqual(in_org(A), n + 3)

    def test_twilio_deployment_credentials_route_freely(self):
        for cred in (("token", TW_TOKEN), ("shared", TW_SHARED)):
            with self.subTest(cred=cred[0]):
                n = in_org(B)
                self.assertEqual(tw_post(
                    "/webhooks/twilio/sms/incoming",
                    tw_sms(NUM_B, ACC_A, text("tw-dep")), cred).status, 200)
                self.assertEqual(tw_post(
                    "/webhooks/twilio/sms/incoming",
                    tw_sms(NUM_NOBODY, "AC" + "0" * 32, text("tw-dep2"),
                           organization_id=B), cred).status, 200)
                self.assertEqual(in_org(B), n + 2)

    def test_retell_own_key_cannot_route_to_b(self):
        own = ("key", RT_KEY_A)
        # the key is chosen by the event's routing: B's events do not
        # verify under A's key (401)
        for obj in (rt_event(NUM_B), rt_event(NUM_NOBODY,
                                              meta={"organization_id": B}),
                    rt_event(NUM_NOBODY, organization_id=B)):
            with self.subTest(obj=obj["call"].get("metadata")):
                r, _ = self.assert_b_untouched(lambda: rt_post(obj, own))
                self.refused(r, (401,))
        # named A in the body, B's number in the call: 403
        r, rej = self.assert_b_untouched(lambda: rt_post(
            rt_event(NUM_B, meta={"organization_id": A}), own))
        self.refused(r)
        self.assertEqual(count("rejections", "cause = 'cross_tenant'"),
                         rej + 1)

    def test_retell_query_string_never_overrides_the_body(self):
        for cred in (("key", RT_KEY_A), ("key", RT_KEY),
                     ("shared", RT_SHARED)):
            with self.subTest(cred=cred[1][:12]):
                obj = rt_event(NUM_A)
                nb = in_org(B)
                r = rt_post(obj, cred, query="?organization_id=" + B)
                self.assertEqual(r.status, 204, r)
                self.assertEqual(in_org(B), nb)
                self.assertEqual(q1("SELECT organization_id FROM calls WHERE "
                                    "call_id = '%s'" % obj["call"]["call_id"]),
                                 A)

    def test_retell_deployment_credentials_route_freely(self):
        for cred in (("key", RT_KEY), ("shared", RT_SHARED)):
            with self.subTest(cred=cred[1][:12]):
                n = in_org(B)
                self.assertEqual(rt_post(rt_event(NUM_B), cred).status, 204)
                self.assertEqual(rt_post(rt_event(
                    NUM_NOBODY, meta={"organization_id": B}), cred).status,
                    204)
                self.assertEqual(in_org(B), n + 2)

    def test_voipms_own_token_fixes_the_organization(self):
        r, rej = self.assert_b_untouched(
            lambda: vm_get(VM_TOKEN_A, DID_B, text("vm-num")))
        self.refused(r)
        self.assertEqual(count("rejections", "cause = 'cross_tenant'"),
                         rej + 1)
        r, _ = self.assert_b_untouched(lambda: vm_get(
            VM_TOKEN_A, "5557099999", text("vm-orgid"), organization_id=B))
        self.refused(r)
        n = in_org(A)
        r = vm_get(VM_TOKEN_A, "5557099999", text("vm-a"))
        self.assertEqual((r.status, r.body), (200, b"ok"))
        self.assertEqual(in_org(A), n + 1)
        # the deployment-wide token routes by the number
        n = in_org(B)
        r = vm_get(VM_TOKEN, DID_B, text("vm-dep"))
        self.assertEqual((r.status, r.body), (200, b"ok"))
        self.assertEqual(in_org(B), n + 1)

    def test_voipms_unknown_token_is_refused(self):
        n = count("events")
        r = vm_get("sec-not-a-token-of-anyone-00", DID_B, "x")
        self.assertEqual(r.status, 401)
        self.assertEqual(r.json(), {"error": "bad token"})
        self.assertEqual(count("events"), n)

    def test_voipms_own_token_rotation(self):
        first, second = "sec-orgB-voipms-rot-1-a9f3", "sec-orgB-voipms-rot-2-c81e"
        SECRETS.extend([first, second])
        stack.ctl_ok("secret", "set", B, "voipms", input=first + "\n")
        out = stack.ctl_ok("secret", "set", B, "voipms", input=second + "\n")
        self.assertIn("secret remove %s voipms --account :previous" % B, out)
        n = in_org(B)
        for tok in (first, second):
            r = vm_get(tok, "5557099999", text("vm-rot"))
            self.assertEqual((r.status, r.body), (200, b"ok"), tok)
        self.assertEqual(in_org(B), n + 2)
        stack.ctl_ok("secret", "remove", B, "voipms", "--account",
                     ":previous")
        r = vm_get(first, "5557099999", "x")
        self.assertEqual((r.status, r.json()), (401, {"error": "bad token"}))
        r = vm_get(second, "5557099999", text("vm-rot2"))
        self.assertEqual((r.status, r.body), (200, b"ok"))
        stack.ctl_ok("secret", "remove", B, "voipms")
        self.assertEqual(vm_get(second, "5557099999", "x").status, 401)

    def test_voipms_tokens_are_unique_and_long(self):
        p = stack.ctl("secret", "set", B, "voipms", input=VM_TOKEN_A + "\n")
        self.assertNotEqual(p.returncode, 0, "one token for two tenants")
        p = stack.ctl("secret", "set", B, "voipms", input="short\n")
        self.assertEqual(p.returncode, 65, p.stderr)


class Terminal(unittest.TestCase):

    def test_telehookctl_escapes_control_characters(self):
        mid = "\x1b]0;pwned\x07\x1b[2J" + uniq()
        r = stack.request("GET", "/webhooks/voipms/sms/incoming?token=%s&to=%s"
                          "&from=5145550198&message=hi&id=%s" % (
                              VM_TOKEN, DID_B, urllib.parse.quote(mid)))
        self.assertEqual(r.status, 200, r)
        out = stack.ctl_ok("events", "list", "--org", B)
        self.assertNotIn("\x1b", out)
        self.assertNotIn("\x07", out)
        self.assertIn("\\033]0;pwned\\007\\033[2J", out)
        js = stack.ctl_json("events", "list", "--org", B)
        keys = [e["provider_key"] for e in js["events"]]
        self.assertIn("sms:" + mid, keys, "--json stays exact")


class Dashboard(unittest.TestCase):

    def test_content_security_policy(self):
        r = stack.get("/dashboard/" + A)
        self.assertEqual(r.status, 200)
        csp = r.headers["content-security-policy"]
        directives = dict((d.split()[0], d.split()[1:]) for d in
                          csp.split(";") if d.strip())
        self.assertEqual(directives["frame-ancestors"], ["'none'"])
        self.assertEqual(directives["script-src"], ["'self'"])
        self.assertEqual(directives["style-src"], ["'self'"])
        self.assertEqual(directives["default-src"], ["'none'"])
        self.assertEqual(r.headers["x-frame-options"], "DENY")
        # the policy allows no inline code, so the page has none
        self.assertFalse(re.search(rb"<script(?![^>]*\bsrc=)", r.body))
        self.assertNotIn(b"<style", r.body)
        self.assertNotIn(b" style=", r.body)
        for asset in re.findall(rb'(?:src|href)="(/dashboard/[^"]+)"',
                                r.body):
            a = stack.get(asset.decode())
            self.assertEqual(a.status, 200, asset)


class AtRest(unittest.TestCase):
    # last: it stops PostgreSQL
    """No secret, message text or number where it must not be."""

    def test_nothing_leaks_across_an_outage(self):
        sent = []

        def traffic(label):
            t1, t2, t3, t4 = (text(label + x) for x in "1234")
            sent.extend([
                tw_post("/webhooks/twilio/sms/incoming",
                        tw_sms(NUM_A, ACC_A, t1), ("token", TW_TOKEN_A)),
                tw_post("/webhooks/twilio/sms/incoming",
                        tw_sms(NUM_B, ACC_B, t2), ("shared", TW_SHARED)),
                rt_post(rt_event(NUM_A), ("shared", RT_SHARED)),
                stack.request("POST", "/webhooks/retell", json.dumps(
                    rt_event(NUM_B)), headers={
                        "Content-Type": JSON,
                        "Authorization": "Bearer " + RT_SHARED}),
                vm_get(VM_TOKEN, DID_B, t3, sep=";"),
                vm_get(VM_TOKEN_A, "5557010001", t4),
                stack.request("GET", "/webhooks/voipms/sms/incoming?%74oken="
                              + VM_TOKEN + "&to=" + DID_B +
                              "&from=5145550199&message="
                              + text(label + "5") + "&id=" + uniq()),
            ])
        stack.ctl_ok("org", "set", B, "greeting=Tenant B private greeting",
                     "forward_to=+15557020999")
        traffic("live")
        # workers load their cache (numbers, sealed secrets) at start:
        # restarted now, they know every secret set above
        stack.stop_workers()
        stack.start_workers()
        stack.stop_postgres()
        try:
            traffic("outage")
            # A's own token, B's number: not B's greeting, even from the
            # cache; refused at replay as it would have been live
            crossed = tw_post("/webhooks/twilio/voice/incoming",
                              tw_call(NUM_B, ACC_A), ("token", TW_TOKEN_A))
            self.assertEqual(crossed.status, 200, crossed)
            self.assertNotIn(b"Tenant B", crossed.body)
            self.assertNotIn(b"+15557020999", crossed.body)
            spooled = glob.glob(os.path.join(stack.spool, "*.spool"))
            self.assertEqual([r.status for r in sent[7:]],
                             [200, 200, 204, 204, 200, 200, 200],
                             [r.body[:80] for r in sent[7:]])
            self.assertGreaterEqual(len(spooled), 8)
            spool = b"".join(open(f, "rb").read() for f in spooled)
            for s in SECRETS + texts + [CALLER, CALLER[2:]]:
                self.assertNotIn(s.encode(), spool, s)
        finally:
            stack.start_postgres()
        for r in sent:
            self.assertIn(r.status, (200, 204), r)
        wait_for("the spool drained", lambda: stack.get("/healthz").json()[
            "spool_depth"] == 0 and not glob.glob(
                os.path.join(stack.spool, "*.spool")))
        self.assertEqual(count("rejections", "cause = 'cross_tenant' AND "
                               "detail LIKE '%%replayed from the spool%%'"),
                         1)
        self.assertFalse(glob.glob(os.path.join(stack.spool, "quarantine",
                                                "*.spool")))
        self.assertEqual(count("events", "organization_id = '%s' AND "
                               "spooled_at IS NOT NULL AND event_type = "
                               "'voice_incoming'" % B), 0)
        stored = q1("SELECT string_agg(coalesce(payload::text, '') || "
                    "coalesce(headers::text, ''), ' ') FROM events")
        for s in SECRETS:
            self.assertNotIn(s, stored, s)
        self.assertGreater(count("events", "spooled_at IS NOT NULL"), 6)
        logs = ""
        for f in ("workers.log", "nginx/access.log", "nginx/error.log"):
            if os.path.exists(stack.path(f)):
                with open(stack.path(f), errors="replace") as fh:
                    logs += fh.read()
        self.assertIn("/webhooks/", logs, "the logs are where we looked")
        for s in SECRETS + texts + [CALLER, CALLER[2:], "5145550199"]:
            self.assertNotIn(s, logs, s)
        # the percent-encoded token form is not kept either
        self.assertEqual(count("events", "payload::text ILIKE '%%oken%%'"), 0)


load_tests = in_order(__name__)

if __name__ == "__main__":
    unittest.main(verbosity=2)
