"""
t/harness_sign.py: requests signed as the providers sign them, written
from their SDKs' own algorithms (../shared/research/providers.md), not
from telehook's code: Twilio's X-Twilio-Signature and Retell's
X-Retell-Signature.  VoIP.ms signs nothing: its URL token is the
organization's secret.
"""

import base64
import hashlib
import hmac
import time


def twilio_sign(token, url, params):
    """X-Twilio-Signature as the SDKs compute it (twilio-python's
    RequestValidator.compute_signature): the URL, then each parameter
    name and value, names sorted and values sorted within a name,
    duplicates once; HMAC-SHA1 under the token, base64."""
    data = url
    for name in sorted({k for k, _ in params}):
        for value in sorted({v for k, v in params if k == name}):
            data += name + value
    mac = hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(mac).decode()


def retell_sign(key, body, ts=None):
    """X-Retell-Signature as retell-sdk verifies it: v=<ms>,d=<hex of
    HMAC-SHA256 under the key over the body (text or the very bytes)
    and the decimal ms>."""
    if ts is None:
        ts = int(time.time() * 1000)
    if isinstance(body, str):
        body = body.encode()
    d = hmac.new(key.encode(), body + str(ts).encode(),
                 hashlib.sha256).hexdigest()
    return "v=%d,d=%s" % (ts, d)
