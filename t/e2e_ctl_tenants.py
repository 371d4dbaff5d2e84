"""
e2e_ctl_tenants: the operator's commands that make and change tenants,
against a real PostgreSQL (telehookctl(8): org, number, user, token):
each writes what it says, refuses bad input with exit 65 and a one-line
reason and no change, prints the documented JSON with --json, and
touches only the organization it names.  The other commands are
e2e_telehookctl's.
"""

import hashlib
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import in_order  # noqa: E402
import e2e_telehookctl as ctl  # noqa: E402
from e2e_telehookctl import count  # noqa: E402

stack = None


def setUpModule():
    # the stack e2e_telehookctl runs against, a stack of its own
    global stack
    ctl.setUpModule()
    stack = ctl.stack


def tearDownModule():
    ctl.tearDownModule()


class Organizations(unittest.TestCase):

    def test_org_add_prints_id_and_lists(self):
        oid = stack.ctl_ok("org", "add", "Acme Dental", "--timezone",
                           "America/New_York").strip()
        self.assertRegex(oid, r"^[0-9a-f-]{36}$")
        self.assertEqual(stack.psql(
            "SELECT name || '|' || timezone FROM organizations "
            "WHERE id = '%s'" % oid), "Acme Dental|America/New_York")
        orgs = stack.ctl_json("org", "list")["organizations"]
        self.assertIn(oid, [o["id"] for o in orgs])
        human = stack.ctl_ok("org", "list")
        self.assertTrue(human.startswith("ID"))
        self.assertIn("Acme Dental", human)
        # by name, without regard to case, or by id
        self.assertEqual(stack.ctl_json("org", "show", "acme dental")["id"],
                         oid)
        shown = stack.ctl_json("org", "show", oid)
        self.assertEqual(shown["timezone"], "America/New_York")
        self.assertEqual(shown["after_hours"], "voicemail")
        self.assertIsNone(shown["greeting"])
        self.assertEqual(shown["numbers"], 0)

    def test_org_add_with_id_and_json(self):
        uid = "6f1c2a4e-8b9d-4c3e-a1f2-0123456789ab"
        out = stack.ctl_json("org", "add", "Fixed Id Org", "--id", uid)
        self.assertEqual(out, {"id": uid, "name": "Fixed Id Org",
                               "timezone": "UTC"})

    def test_org_add_rejects_bad_input_without_change(self):
        n = count("organizations")
        for args, why in (
                (("Bad TZ", "--timezone", "Mars/Olympus"),
                 "unknown time zone"),
                (("Bad Id", "--id", "123"), "not a UUID"),
                (("",), "1 to 200 characters")):
            p = stack.ctl("org", "add", *args)
            self.assertEqual(p.returncode, 65, args)
            self.assertIn(why, p.stderr)
            self.assertEqual(p.stderr.count("\n"), 1)
        stack.ctl_ok("org", "add", "Twice")
        p = stack.ctl("org", "add", "TWICE")
        self.assertEqual(p.returncode, 65)
        self.assertIn("exists", p.stderr)
        self.assertEqual(count("organizations"), n + 1)

    def test_org_show_unknown(self):
        p = stack.ctl("org", "show", "No Such Org")
        self.assertEqual(p.returncode, 65)
        self.assertIn("no such organization: No Such Org", p.stderr)

    def test_org_set(self):
        oid = stack.ctl_ok("org", "add", "Settable").strip()
        out = stack.ctl_json(
            "org", "set", oid, "timezone=Europe/Paris",
            "hours=Mon-Fri 09:00-17:00; sat 10:00-14:00; sun closed",
            "forward_to=(415) 555-0100", "greeting=Hello <there> & welcome",
            "after_hours=agent", "retell_agent_id=agent_123",
            "twilio_account_sid=AC0123456789ABCDEF0123456789abcdef")
        self.assertEqual(out["timezone"], "Europe/Paris")
        self.assertEqual(out["hours"], "mon-fri 09:00-17:00; "
                         "sat 10:00-14:00")
        self.assertEqual(out["forward_to"], "+14155550100")
        self.assertEqual(out["greeting"], "Hello <there> & welcome")
        self.assertEqual(out["after_hours"], "agent")
        self.assertEqual(out["retell_agent_id"], "agent_123")
        self.assertEqual(out["twilio_account_sid"],
                         "AC0123456789abcdef0123456789abcdef")
        # empty clears; a required key goes back to its default
        out = stack.ctl_json("org", "set", oid, "greeting=",
                             "after_hours=")
        self.assertIsNone(out["greeting"])
        self.assertEqual(out["after_hours"], "voicemail")

    def test_org_set_prints_what_it_stored(self):
        # telehookctl(8) org set: the keys set as stored, key=value, one
        # space between, in the order of its list of keys
        oid = stack.ctl_ok("org", "add", "Printed").strip()
        self.assertEqual(stack.ctl_ok(
            "org", "set", oid, "timezone=America/Chicago",
            "forward_to=(415) 555-0100", "hours=Mon-Fri 09:00-17:00"),
            "forward_to=+14155550100 hours=mon-fri 09:00-17:00 "
            "timezone=America/Chicago\n")
        self.assertEqual(stack.ctl_ok("org", "set", oid, "greeting="),
                         "greeting=\n")

    def test_org_set_is_all_or_nothing(self):
        oid = stack.ctl_ok("org", "add", "Atomic").strip()
        for kv, why in (("hours=mon 18:00-09:00", "end after it starts"),
                        ("hours=funday 09:00-10:00", "expected a day"),
                        ("forward_to=12", "not a phone number"),
                        ("after_hours=pizza", "voicemail or agent"),
                        ("timezone=Nowhere/Land", "unknown time zone"),
                        ("twilio_account_sid=AC12", "32 hex digits"),
                        ("colour=red", "unknown key colour")):
            p = stack.ctl("org", "set", oid, "greeting=changed", kv)
            self.assertEqual(p.returncode, 65, kv)
            self.assertIn(why, p.stderr)
        self.assertEqual(stack.psql(
            "SELECT coalesce(greeting, 'NULL') FROM organizations "
            "WHERE id = '%s'" % oid), "NULL")
        p = stack.ctl("org", "set", oid, "greeting")
        self.assertEqual(p.returncode, 64)

    def test_twilio_account_belongs_to_one_org(self):
        sid = "AC" + "ab" * 16
        a = stack.ctl_ok("org", "add", "Account A").strip()
        b = stack.ctl_ok("org", "add", "Account B").strip()
        stack.ctl_ok("org", "set", a, "twilio_account_sid=" + sid)
        p = stack.ctl("org", "set", b, "twilio_account_sid=" + sid)
        self.assertEqual(p.returncode, 65)
        self.assertIn("another organization has it", p.stderr)


class Numbers(unittest.TestCase):

    def test_number_lifecycle(self):
        oid = stack.ctl_ok("org", "add", "Numbers Inc").strip()
        self.assertEqual(stack.ctl_ok("number", "add", oid,
                                      "415-555-1212", "--provider",
                                      "twilio"), "+14155551212\n")
        out = stack.ctl_json("number", "add", "Numbers Inc",
                             "+44 20 7946 0958")
        self.assertEqual(out, {"e164": "+442079460958",
                               "organization_id": oid, "provider": None})
        nums = stack.ctl_json("number", "list", oid)["numbers"]
        self.assertEqual([n["e164"] for n in nums],
                         ["+14155551212", "+442079460958"])
        self.assertEqual(nums[0]["provider"], "twilio")
        # one owner per number
        other = stack.ctl_ok("org", "add", "Numbers Rival").strip()
        p = stack.ctl("number", "add", other, "+1 415 555 1212")
        self.assertEqual(p.returncode, 65)
        self.assertIn("+14155551212 already belongs to Numbers Inc",
                      p.stderr)
        self.assertEqual(stack.ctl_ok("number", "remove", "4155551212"),
                         "removed +14155551212\n")
        p = stack.ctl("number", "remove", "4155551212")
        self.assertEqual(p.returncode, 65)
        self.assertIn("no such number", p.stderr)

    def test_table(self):
        # telehookctl(8): a table for people: a header of the column
        # names in capitals, then a line a row, aligned, "-" for none
        oid = stack.ctl_ok("org", "add", "Table Co").strip()
        stack.ctl_ok("number", "add", oid, "+14155550101", "--provider",
                     "twilio")
        stack.ctl_ok("number", "add", oid, "+14155550102")
        lines = stack.ctl_ok("number", "list", oid).splitlines()
        self.assertEqual(len(lines), 3, lines)
        self.assertEqual(lines[0].split(), ["E164", "PROVIDER",
                                            "ORGANIZATION_ID",
                                            "ORGANIZATION", "CREATED_AT"])
        self.assertEqual(lines[1].split()[:4],
                         ["+14155550101", "twilio", oid, "Table"])
        self.assertEqual(lines[2].split()[:4],
                         ["+14155550102", "-", oid, "Table"])
        # aligned: each column starts where its header does
        at = lines[0].index("ORGANIZATION_ID")
        self.assertEqual([ln.index(oid) for ln in lines[1:]], [at, at])

    def test_number_add_rejects(self):
        oid = stack.ctl_ok("org", "add", "Number Rejects").strip()
        n = count("phone_numbers")
        for num in ("12345", "555-CALL-NOW", "+0123456789", "1" * 17):
            p = stack.ctl("number", "add", oid, num)
            self.assertEqual(p.returncode, 65, num)
            self.assertIn("not a phone number", p.stderr)
        p = stack.ctl("number", "add", oid, "+14155550000", "--provider",
                      "skype")
        self.assertEqual(p.returncode, 65)
        self.assertEqual(count("phone_numbers"), n)


class UsersAndTokens(unittest.TestCase):

    def test_users(self):
        oid = stack.ctl_ok("org", "add", "People Co").strip()
        uid = stack.ctl_ok("user", "add", oid, "Ann@people.example",
                           "--name", "Ann").strip()
        self.assertRegex(uid, r"^[0-9a-f-]{36}$")
        stack.ctl_ok("user", "add", oid, "bob@people.example")
        users = stack.ctl_json("user", "list", oid)["users"]
        self.assertEqual([(u["email"], u["name"]) for u in users],
                         [("Ann@people.example", "Ann"),
                          ("bob@people.example", None)])
        p = stack.ctl("user", "add", oid, "ann@PEOPLE.example")
        self.assertEqual(p.returncode, 65)
        self.assertIn("already a user", p.stderr)
        for bad in ("nobody", "@x", "a@", "a b@c.d", "a@b@c"):
            p = stack.ctl("user", "add", oid, bad)
            self.assertEqual(p.returncode, 65, bad)
        self.assertEqual(len(stack.ctl_json("user", "list", oid)["users"]),
                         2)

    def test_tokens_are_shown_once_and_stored_hashed(self):
        oid = stack.ctl_ok("org", "add", "Token Org").strip()
        token = stack.ctl_ok("token", "create", oid, "--name",
                             "dashboard").strip()
        self.assertRegex(token, r"^thk_[A-Za-z0-9_-]{43}$")
        digest = hashlib.sha256(token.encode()).hexdigest()
        self.assertEqual(stack.psql(
            "SELECT count(*) FROM api_tokens WHERE token_hash = '%s' AND "
            "organization_id = '%s'" % (digest, oid)), "1")
        self.assertEqual(stack.psql(
            "SELECT count(*) FROM api_tokens WHERE token_hash LIKE '%%%s%%'"
            % token[4:20]), "0")
        listed = stack.ctl_json("token", "list", oid)["tokens"]
        self.assertEqual(len(listed), 1)
        self.assertEqual(listed[0]["name"], "dashboard")
        self.assertIsNone(listed[0]["revoked_at"])
        self.assertNotIn(token, stack.ctl_ok("token", "list", oid))
        tid = listed[0]["id"]
        out = stack.ctl_json("token", "revoke", tid)
        self.assertEqual(out["id"], tid)
        self.assertRegex(out["revoked_at"],
                         r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        listed = stack.ctl_json("token", "list", oid)["tokens"]
        self.assertEqual(listed[0]["revoked_at"], out["revoked_at"])
        # two tokens never collide
        t2 = stack.ctl_json("token", "create", oid)
        self.assertNotEqual(t2["token"], token)
        # a token id is a UUID, 8-4-4-4-12 hex digits, first to last
        for bad in ("not-a-uuid", "g0000000-0000-0000-0000-000000000000",
                    "00000000-0000-0000-0000-00000000000g",
                    "00000000x0000-0000-0000-000000000000",
                    "000000000000000000000000000000000000",
                    "00000000-0000-0000-0000-0000000000000"):
            p = stack.ctl("token", "revoke", bad)
            self.assertEqual(p.returncode, 65, bad)
            self.assertIn("is not a token id", p.stderr)
        p = stack.ctl("token", "revoke",
                      "00000000-0000-0000-0000-000000000000")
        self.assertEqual(p.returncode, 65)
        self.assertIn("no such token", p.stderr)

    def test_tokens_listed_oldest_first(self):
        # telehookctl(8) token list: oldest first, to the microsecond:
        # five made within a second or so keep the order they were made in
        oid = stack.ctl_ok("org", "add", "Five Tokens").strip()
        names = ["t%d" % i for i in range(5)]
        for n in names:
            stack.ctl_ok("token", "create", oid, "--name", n)
        self.assertEqual([t["name"] for t in stack.ctl_json(
            "token", "list", oid)["tokens"]], names)


load_tests = in_order(__name__)

if __name__ == "__main__":
    unittest.main(verbosity=2)
