"""
e2e_twilio_routes: every Twilio route and alias at once, on the stack and
organizations of e2e_twilio: a request signed as the SDKs sign it is
accepted, one with a wrong signature, token or URL is 401 with nothing
stored, and a redelivery gets the same answer and changes nothing.
"""

import os
import sys
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import in_order  # noqa: E402
import e2e_twilio as tw  # noqa: E402
from e2e_twilio import (FORM, TOKEN, call_params, count, post,  # noqa: E402
                        seq, sid, sign, sms_params, twiml)

stack = None


def setUpModule():
    global stack
    tw.setUpModule()
    stack = tw.stack


def tearDownModule():
    tw.tearDownModule()


def route_requests():
    """One valid request for every Twilio route and alias: (path, params,
    expected status)."""
    def call(**kw):
        return call_params(to="+15550001000", **kw)
    status = dict(SequenceNumber="1", CallbackSource="call-progress-events")
    rec = {"AccountSid": "AC" + "1" * 32, "RecordingStatus": "completed",
           "RecordingUrl": "https://api.twilio.com/rec/X",
           "RecordingDuration": "3"}
    return [
        ("/webhooks/twilio/voice/incoming", lambda: call(), 200),
        ("/webhooks/twilio/voice/status",
         lambda: call(status="completed", CallDuration="9", **status), 204),
        ("/webhooks/twilio/voice/gather?step=ask&turn=1",
         lambda: call(status="in-progress", SpeechResult="hours?"), 200),
        ("/webhooks/twilio/voice/partial",
         lambda: call(status="in-progress", UnstableSpeechResult="ho",
                      SequenceNumber="2"), 204),
        ("/webhooks/twilio/recording/status",
         lambda: dict(rec, CallSid=sid("CA"), RecordingSid=sid("RE")), 204),
        ("/webhooks/twilio/transcription",
         lambda: {"CallSid": sid("CA"), "TranscriptionSid": sid("TR"),
                  "TranscriptionStatus": "completed",
                  "TranscriptionText": "hello"}, 204),
        ("/webhooks/twilio/sms/incoming",
         lambda: sms_params("appointment", frm="+1555%07d" % seq[0]), 200),
        ("/webhooks/twilio/sms/status",
         lambda: {"MessageSid": sid("SM"), "From": "+15550001000",
                  "To": "+15553334444", "MessageStatus": "sent"}, 204),
        ("/webhooks/twilio", lambda: sms_params("hi"), 200),
        ("/api/webhooks/twilio", lambda: sms_params("hi"), 200),
        ("/functions/v1/twilio-webhook", lambda: sms_params("hi"), 200),
        ("/api/twilio/voice", lambda: call(), 200),
        ("/voice/incoming", lambda: call(), 200),
        ("/voice/julie/incoming", lambda: call(), 200),
        ("/api/twilio/handle-speech",
         lambda: call(status="in-progress", SpeechResult="hours?"), 200),
        ("/api/twilio/partial-speech",
         lambda: call(status="in-progress", UnstableSpeechResult="h",
                      SequenceNumber="1"), 204),
    ]


class EveryRoute(unittest.TestCase):
    """For each route: signed is accepted, wrong signature, token or URL
    is 401 with nothing stored, and a redelivery gets the same answer
    and changes nothing."""

    tables = ("events", "calls", "messages", "activity", "notifications",
              "opt_outs")

    def state(self):
        return [count(t) for t in self.tables]

    def test_matrix(self):
        for path, make, want in route_requests():
            with self.subTest(path=path):
                p = make()
                before = self.state()
                body = urllib.parse.urlencode(p)
                url = stack.public_url + path
                good = sign(TOKEN, url, list(p.items()))
                flipped = good[:-2] + ("B" if good[-2] == "A" else "A") + "="
                for bad in (sign("wrong-token", url, list(p.items())),
                            sign(TOKEN, url + "x", list(p.items())),
                            flipped):
                    r = stack.post(path, body, FORM,
                                   {"X-Twilio-Signature": bad})
                    self.assertEqual(r.status, 401)
                self.assertEqual(self.state(), before)
                first = post(path, p)
                self.assertEqual(first.status, want, first)
                if want == 200:
                    twiml(first)
                after = self.state()
                self.assertEqual(after[0], before[0] + 1)
                again = post(path, p)
                self.assertEqual(again.status, want)
                self.assertEqual(again.body, first.body)
                self.assertEqual(self.state(), after)


load_tests = in_order(__name__)

if __name__ == "__main__":
    unittest.main(verbosity=2)
