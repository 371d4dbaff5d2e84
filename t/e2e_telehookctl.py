"""
e2e_telehookctl: the operator's commands against a real PostgreSQL: each
writes what it says, refuses bad input with exit 65 and a one-line reason
and no change, and prints the documented JSON with --json.
"""

import glob
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SRCDIR, Stack, in_order, locks_on, wait_for  # noqa: E402

stack = None
UUID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


def setUpModule():
    global stack
    stack = Stack(workers=1, extra_conf={
        "twilio": {"auth_token": "ctl-test-token"}}).start()


def tearDownModule():
    if stack is not None:
        stack.stop()


def count(table):
    return int(stack.psql("SELECT count(*) FROM %s" % table))


# Every migration the tree ships, in order: what migrate must have applied.
SHIPPED = sorted(os.path.basename(f)[:-4] for f in glob.glob(os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sql",
    "[0-9][0-9][0-9]_*.sql")))


class Migrate(unittest.TestCase):

    def test_migrate_is_idempotent(self):
        before = stack.psql("SELECT string_agg(version, ',' ORDER BY "
                            "version) FROM schema_migrations")
        self.assertGreaterEqual(len(SHIPPED), 3)
        self.assertEqual(before, ",".join(SHIPPED))
        out = stack.ctl_ok("migrate")
        self.assertEqual(out, "schema up to date (%s)\n" % SHIPPED[-1])
        self.assertEqual(stack.ctl_json("migrate"),
                         {"applied": [], "version": SHIPPED[-1]})

    def test_migrate_applies_the_functions_every_time(self):
        # a function changed behind its back is put right by migrate:
        # sql/functions.sql is applied every time, not once
        iso = "SELECT th_iso('2026-01-02 03:04:05+00')"
        self.assertEqual(stack.psql(iso), "2026-01-02T03:04:05Z")
        stack.psql("CREATE OR REPLACE FUNCTION th_iso(timestamptz) RETURNS "
                   "text LANGUAGE sql STABLE AS $$ SELECT 'broken' $$")
        self.assertEqual(stack.psql(iso), "broken")
        out = stack.ctl_ok("migrate")
        self.assertEqual(out, "schema up to date (%s)\n" % SHIPPED[-1])
        self.assertEqual(stack.psql(iso), "2026-01-02T03:04:05Z")

    def test_migrate_is_one_transaction(self):
        # a new migration and the functions commit together: when the
        # functions fail, the migration is not left applied without
        # them (a trigger's placeholder would have run meanwhile)
        d = stack.path("sql-next")
        shutil.copytree(stack.sqldir, d)
        with open(os.path.join(d, "999_next.sql"), "w") as f:
            f.write("CREATE TABLE next_table (id int);\n")
        with open(os.path.join(d, "functions.sql"), "a") as f:
            f.write("SELECT no_such_function();\n")
        p = stack.ctl("migrate", "--dir", d)
        self.assertEqual(p.returncode, 70, p.stderr)
        self.assertIn("no_such_function", p.stderr)
        self.assertNotIn("applied", p.stdout)
        self.assertEqual(stack.psql(
            "SELECT count(*) FROM schema_migrations WHERE version = "
            "'999_next'"), "0")
        self.assertEqual(stack.psql("SELECT to_regclass('next_table') IS "
                                    "NULL"), "t")
        # and without the fault, both
        os.remove(os.path.join(d, "functions.sql"))
        shutil.copy(os.path.join(stack.sqldir, "functions.sql"), d)
        self.assertEqual(stack.ctl_ok("migrate", "--dir", d),
                         "applied 999_next\n")
        stack.psql("DROP TABLE next_table; DELETE FROM schema_migrations "
                   "WHERE version = '999_next'")

    def test_migrate_missing_dir(self):
        p = stack.ctl("migrate", "--dir", stack.path("nope"))
        self.assertEqual(p.returncode, 66)
        self.assertIn("nope", p.stderr)

    def test_check_config(self):
        out = stack.ctl_json("check-config")
        self.assertEqual(out["database"], "ok")
        self.assertEqual(out["schema"], SHIPPED[-1])
        self.assertEqual(stack.ctl("check-config").returncode, 0)

    def test_check_config_before_migrate(self):
        # telehookctl(8): a database that is reachable but not migrated
        # says so, and exits 69
        subprocess.run(stack.psql_command() + [
            "-d", "postgres", "-c", "CREATE DATABASE unmigrated"],
            check=True, capture_output=True)
        conf = stack.conf_variant("unmigrated.conf", "dbname=telehook",
                                  "dbname=unmigrated")
        p = stack.ctl("-c", conf, "check-config")
        self.assertEqual(p.returncode, 69, p.stderr)
        self.assertIn("not migrated (run telehookctl migrate)", p.stdout)
        self.assertEqual(p.stderr, "")


class Worker(unittest.TestCase):
    """The worker binary's own command line (telehook(8), SYNOPSIS)."""

    def run_worker(self, *args):
        return subprocess.run([stack.telehook] + list(args),
                              stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=30)

    def test_usage(self):
        for args in (["-x"], ["extra"]):
            p = self.run_worker(*args)
            self.assertEqual(p.returncode, 64, args)
            self.assertIn("usage: telehook [-dnv] [-c file]", p.stderr)

    def test_help_and_version(self):
        for args in (["--help"], ["-h"]):
            p = self.run_worker(*args)
            self.assertEqual((p.returncode, p.stderr), (0, ""), args)
            self.assertIn("usage: telehook [-dnv] [-c file]", p.stdout)
        version = re.search(r"AC_INIT\(\[telehook\], \[([^]]+)\]",
                            open(os.path.join(SRCDIR, "configure.ac")).read())
        for args in (["--version"], ["-V"]):
            p = self.run_worker(*args)
            self.assertEqual((p.returncode, p.stdout),
                             (0, "telehook %s\n" % version.group(1)), args)

    def test_configuration_errors(self):
        p = self.run_worker("-c", stack.path("missing.conf"))
        self.assertEqual(p.returncode, 78)
        self.assertEqual(self.run_worker("-n", "-c", stack.conf).returncode,
                         0)

    def test_insecure_settings_are_announced(self):
        # the warnings come before anything else; then the worker sees
        # it was not started by spawn-fcgi and says so
        conf = stack.path("insecure.conf")
        with open(stack.conf) as f, open(conf, "w") as g:
            g.write(f.read() + "\n[twilio]\ninsecure_allow_unsigned = "
                    "yes\n[retell]\ninsecure_allow_unsigned = yes\n"
                    "[voipms]\ninsecure_allow_unsigned = yes\n")
        os.chmod(conf, 0o600)
        p = self.run_worker("-d", "-v", "-c", conf)
        self.assertEqual(p.returncode, 1)
        for provider in ("twilio", "retell", "voipms"):
            self.assertIn("WARNING: [%s] insecure_allow_unsigned = yes"
                          % provider, p.stderr)
        self.assertIn("standard input is not a FastCGI socket", p.stderr)
        # the same to syslog without -d: still refused
        p = self.run_worker("-c", conf)
        self.assertEqual(p.returncode, 1)
        # with no syslog socket (a container), to standard error instead
        # of nowhere (telehook(8), Logging)
        if not os.path.exists("/dev/log"):
            self.assertIn("WARNING: [twilio] insecure_allow_unsigned = yes",
                          p.stderr)
            self.assertIn("standard input is not a FastCGI socket",
                          p.stderr)
        else:
            print("e2e_telehookctl: /dev/log exists here: the fallback to "
                  "standard error is not seen", file=sys.stderr)


class Campaigns(unittest.TestCase):
    """campaign add/import/show, in text and JSON, and what import
    refuses (telehookctl(8): every line checked, one bad line imports
    nothing, exit 65 naming the file and line)."""

    @classmethod
    def setUpClass(cls):
        cls.org = stack.ctl_ok("org", "add", "Campaign Clinic").strip()

    def csv(self, name, text):
        path = stack.path(name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_add_import_show(self):
        cid = stack.ctl_ok("campaign", "add", self.org, "Recall").strip()
        self.assertRegex(cid, UUID)
        j = stack.ctl_json("campaign", "add", self.org, "Spring")
        self.assertEqual((j["organization_id"], j["name"]),
                         (self.org, "Spring"))
        path = self.csv("ok.csv", 'phone,name\r\n+15557770001,"Roe, Jane"'
                        '\r\n\r\n 5557770002 , "Ann ""Nan"" Lee"\n'
                        '+15557770003\n')
        ids = stack.ctl_ok("campaign", "import", cid, path).split()
        self.assertEqual(len(ids), 3)
        self.assertEqual(stack.psql(
            "SELECT string_agg(phone || '=' || coalesce(name, '-'), ';' "
            "ORDER BY position) FROM campaign_contacts WHERE campaign_id "
            "= '%s'" % cid),
            '+15557770001=Roe, Jane;+15557770002=Ann "Nan" Lee;'
            "+15557770003=-")
        j = stack.ctl_json("campaign", "import", j["id"], path)
        self.assertEqual(len(j["contacts"]), 3)
        out = stack.ctl_ok("campaign", "show", cid)
        self.assertIn("total_contacts", out)
        self.assertRegex(out, r"(?m)^total_contacts: 3$")
        self.assertRegex(out, r"(?m)^pending: 3$")

    def test_refusals(self):
        cid = stack.ctl_ok("campaign", "add", self.org, "Refusals").strip()
        cases = [
            ("a,b,c\n", "more than two columns"),
            ('"+15557770001,x\n', "malformed quoted field"),
            ('"+15557770001"x,y\n', "malformed quoted field"),
            ("+15557770001\nnot-a-phone\n", "is not a phone number"),
            ("+15557770001," + "n" * 201 + "\n",
             "name longer than 200 characters"),
            ("+15557770001\n+1 555 777 0001\n", "appears twice"),
            ("+15557770001,a\tb\n", "a tab in the name"),
            ("phone,name\n\n", "no contacts"),
        ]
        for text, why in cases:
            p = stack.ctl("campaign", "import", cid, self.csv("bad.csv",
                                                              text))
            self.assertEqual(p.returncode, 65, (text, p.stderr))
            self.assertIn(why, p.stderr)
        self.assertEqual(stack.psql("SELECT count(*) FROM campaign_contacts "
                                    "WHERE campaign_id = '%s'" % cid), "0")
        p = stack.ctl("campaign", "import", cid, stack.path("none.csv"))
        self.assertEqual(p.returncode, 66)
        for args, why in ((("add", self.org, ""), "1 to 200 characters"),
                          (("show", "nope"), "nope is not a campaign id"),
                          (("show", "00000000-0000-0000-0000-000000000000"),
                           "no such campaign")):
            p = stack.ctl("campaign", *args)
            self.assertEqual(p.returncode, 65, args)
            self.assertIn(why, p.stderr)


class Events(unittest.TestCase):
    """events, outbox, prune and spool in text as well as JSON, and the
    inputs they refuse."""

    @classmethod
    def setUpClass(cls):
        cls.org = stack.ctl_ok("org", "add", "Events Clinic").strip()

    def test_refusals(self):
        cases = [
            (("outbox", "list", "--state", "lost"), 65, "--state must be"),
            (("events", "list", "--limit", "0"), 65,
             "--limit must be 1 to 100000"),
            (("events", "list", "--org", self.org, "--unrouted"), 64,
             "--org and --unrouted exclude each other"),
            (("events", "show", "999999999"), 65, "no such event"),
            (("events", "replay", "999999999"), 65, "no such event"),
            (("events", "assign", "999999999", self.org), 65,
             "no such event"),
            (("send", "twilio", "sms_incoming", "--url",
              stack.public_url, "--to", "nope"), 65,
             "--to and --from must be phone numbers"),
            (("send", "twilio", "sms_incoming", "--url", stack.public_url,
              "--org", "nope"), 65, "--org must be an organization id"),
        ]
        for args, code, why in cases:
            p = stack.ctl(*args)
            self.assertEqual(p.returncode, code, (args, p.stderr))
            self.assertIn(why, p.stderr, args)

    def test_newest_first_past_nine(self):
        # ids of more than one digit: the newest come first, by number
        for i in range(12):
            stack.psql("INSERT INTO events (provider, event_type, "
                       "provider_key, route) VALUES ('twilio', 'sms', "
                       "'order-%d-%d', 'twilio_sms_incoming')" % (
                           os.getpid(), i))
            stack.psql("INSERT INTO rejections (route, status, cause) "
                       "VALUES ('order', 401, 'bad_signature')")
        for what, table, key in (("list", "events", "events"),
                                 ("rejections", "rejections",
                                  "rejections")):
            with self.subTest(what=what):
                want = stack.psql("SELECT string_agg(id::text, ',' ORDER "
                                  "BY id DESC) FROM (SELECT id FROM %s "
                                  "ORDER BY id DESC LIMIT 5) t" % table)
                got = stack.ctl_json("events", what, "--limit", "5")[key]
                self.assertEqual(",".join(str(e["id"]) for e in got), want)
                self.assertGreater(int(want.split(",")[0]), 9)

    def test_outbox_send_without_credentials_fails(self):
        # no [voipms] API user here, nor the organization's own: a
        # message that cannot be sent is not a success (exit 78)
        stack.psql("INSERT INTO outbox (organization_id, provider, "
                   "from_number, to_number, body) VALUES ('%s', 'voipms', "
                   "'+15145550100', '+15145550101', 'hi')" % self.org)
        p = stack.ctl("--json", "outbox", "send")
        self.assertEqual(p.returncode, 78, p.stderr)
        self.assertEqual(json.loads(p.stdout)["unconfigured"], 1)
        self.assertIn("1 message failed for want of configuration",
                      p.stderr)
        self.assertEqual(stack.psql(
            "SELECT state || ' ' || last_error FROM outbox WHERE "
            "organization_id = '%s'" % self.org),
            "failed no VoIP.ms API credentials")
        # nothing left to send: 0
        self.assertEqual(stack.ctl("outbox", "send").returncode, 0)

    def test_replay_exits_69_when_the_database_goes_away(self):
        # telehookctl(8) events replay: 69 when the database went away
        # under it (here: a lock on events past statement_timeout_ms,
        # which reads still pass)
        org = stack.ctl_ok("org", "add", "Replay Away Clinic").strip()
        p = stack.ctl("send", "twilio", "sms_incoming", "--url",
                      stack.public_url, "--org", org)
        self.assertEqual(p.returncode, 0, p.stderr)
        ev = stack.psql("SELECT max(id) FROM events")
        with stack.table_locked("events", "SHARE"):
            p = stack.ctl("events", "replay", ev)
            self.assertEqual(p.returncode, 69, (p.stdout, p.stderr))
            self.assertIn("database unreachable", p.stderr)
        wait_for("the lock gone", lambda: stack.psql(
            locks_on("events", "ShareLock")) == "0")
        self.assertEqual(stack.ctl("events", "replay", ev).returncode, 0)

    def test_send_exits_by_the_class_of_the_answer(self):
        # telehookctl(8) send: "Exits 0 on a 2xx answer, 65 on a 4xx and
        # 69 otherwise" -- every 4xx, 499 too, and a 3xx is not a 2xx
        answer = [200]

        class One(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(answer[0])
                self.send_header("Content-Length", "0")
                if 300 <= answer[0] < 400:
                    self.send_header("Location", "/elsewhere")
                self.end_headers()

            def log_message(self, *a):
                pass
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), One)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        try:
            url = "http://127.0.0.1:%d" % srv.server_address[1]
            for code, rc in ((200, 0), (204, 0), (299, 0), (400, 65),
                             (404, 65), (499, 65), (301, 69), (500, 69),
                             (503, 69)):
                answer[0] = code
                p = stack.ctl("send", "twilio", "sms_incoming", "--url",
                              url, "--org", self.org)
                self.assertEqual(p.returncode, rc, (code, p.stderr))
        finally:
            srv.shutdown()
            srv.server_close()

    def test_text_output(self):
        # telehookctl send: a real signed webhook through nginx
        p = stack.ctl("send", "twilio", "sms_incoming", "--url",
                      stack.public_url, "--org", self.org)
        self.assertEqual(p.returncode, 0, p.stderr)
        ev = stack.psql("SELECT max(id) FROM events")
        out = stack.ctl_ok("events", "list", "--limit", "1")
        self.assertIn(ev, out)
        out = stack.ctl_ok("events", "show", ev)
        self.assertEqual(json.loads(out)["id"], ev)
        out = stack.ctl_ok("events", "replay", ev)
        # derived again, idempotently (telehookctl(8), events replay)
        self.assertIn("event %s: derived" % ev, out)
        self.assertIn("derived 1, already stored 0, failed 0", out)
        self.assertEqual(stack.psql("SELECT count(*) FROM messages WHERE "
                                    "organization_id = '%s'" % self.org),
                         "1")
        out = stack.ctl_ok("outbox", "send")
        self.assertRegex(out, r"^sent \d+, retrying \d+, failed \d+$")
        out = stack.ctl_ok("spool", "status")
        self.assertIn("spool_dir", out)
        self.assertIn("quarantined", out)


    def test_table_columns_are_aligned(self):
        # telehookctl.8: "a header of the column names in capitals, then a
        # line a row, the columns aligned, a missing value -"
        for name in ("Al", "A much longer clinic name"):
            stack.ctl_ok("org", "add", name)
        for i in range(2):
            self.assertEqual(stack.ctl(
                "send", "twilio", "sms_incoming", "--url", stack.public_url,
                "--org", self.org).returncode, 0)
        for args in (("org", "list"), ("events", "list", "--limit", "5")):
            lines = stack.ctl_ok(*args).rstrip("\n").split("\n")
            head = lines[0]
            self.assertEqual(head, head.upper(), args)
            starts = [m.start() for m in re.finditer(r"\S+", head)]
            self.assertGreaterEqual(len(starts), 3, head)
            self.assertGreaterEqual(len(lines), 3, lines)
            for line in lines:
                self.assertFalse(line.endswith(" "), (args, line))
                for s in starts[1:]:
                    # each column starts where its name does, after two
                    # blanks at least
                    self.assertEqual(line[s - 2:s], "  ", (args, line, s))
                    self.assertNotEqual(line[s:s + 1], " ", (args, line, s))


class Refusals(unittest.TestCase):
    """Bad input to the organization commands: exit 65 (64 for usage,
    78 for configuration) and a reason that names the problem; nothing
    changed."""

    def test_table(self):
        org = stack.ctl_ok("org", "add", "Refusing Clinic").strip()
        none = "00000000-0000-0000-0000-000000000000"
        cases = [
            (("reply", "add", org, "--text", "x"), 64,
             "reply add needs --keywords and --text"),
            (("reply", "add", org, "--keywords", "a", "--text", "x",
              "--channel", "fax"), 65, "--channel must be sms or voice"),
            (("reply", "add", org, "--keywords", "a", "--text", ""), 65,
             "--text must be 1 to 1600 characters"),
            (("reply", "add", org, "--keywords", "k" * 65, "--text", "x"),
             65, "a keyword is at most 64 characters"),
            (("reply", "add", org, "--keywords", " , ,", "--text", "x"), 65,
             "--keywords names no keyword"),
            (("reply", "remove", "999999999"), 65, "no such reply"),
            (("secret", "set", org, "fax"), 65,
             "PROVIDER must be twilio, retell or voipms"),
            (("secret", "set", org, "twilio", "--account", "nope"), 65,
             "--account must be a Twilio"),
            (("secret", "set", org, "retell"), 78,
             "secret_key_file is not set"),
            (("secret", "remove", org, "retell"), 65, "no such secret"),
            (("block", "add", org, "nope"), 65, "nope is not a phone number"),
            (("block", "remove", org, "+15550000001"), 65, "is not blocked"),
            (("closure", "add", org, "2026-12-24", "--until", "2026-13-01"),
             65, "is not a date (YYYY-MM-DD)"),
            (("closure", "add", org, "2026-02-29"), 65,
             "is not a date (YYYY-MM-DD)"),      # not a leap year
            # a digit in every place but the two dashes
            (("closure", "add", org, "2026-1x-24"), 65,
             "is not a date (YYYY-MM-DD)"),
            (("closure", "add", org, "2026-12-2x"), 65,
             "is not a date (YYYY-MM-DD)"),
            (("closure", "add", org, "20x6-12-24"), 65,
             "is not a date (YYYY-MM-DD)"),
            (("closure", "add", org, "2026-12+24"), 65,
             "is not a date (YYYY-MM-DD)"),
            (("closure", "add", org, "2026-12-24", "--note", "a\x07b"), 65,
             "--note holds a control"),
            (("closure", "add", org, "2026-12-24", "--note", "n" * 201), 65,
             "--note is longer than 200"),
            (("org", "set", org, "hours=24/7", "hours=closed"), 65,
             "hours given twice"),
            (("org", "set", org, "retell_agent_id=a b"), 65,
             "must be letters, digits, '_' or '-'"),
            (("org", "set", org, "agent_sip=tel:+1555"), 65,
             "must start with sip"),
            (("org", "set", org, "agent_sip=sip:a b@x"), 65,
             "must hold no blank, quote or angle bracket"),
            (("org", "set", org, "twilio_account_sid=AC12"), 65,
             "must be AC and 32 hex digits"),
            (("org", "set", org, "greeting=" + "g" * 1001), 65,
             "longer than 1000 characters"),
            (("number", "remove", "nope"), 65, "nope is not a phone number"),
            (("user", "add", none, "a@b.example"), 65, none),
        ]
        before = stack.psql("SELECT row_to_json(o)::text FROM organizations "
                            "o WHERE id = '%s'" % org)
        for args, code, why in cases:
            p = stack.ctl(*args)
            self.assertEqual(p.returncode, code, (args, p.stderr))
            self.assertIn(why, p.stderr, args)
        self.assertEqual(stack.psql("SELECT row_to_json(o)::text FROM "
                                    "organizations o WHERE id = '%s'" % org),
                         before)
        for table in ("reply_rules", "blocked_numbers", "closures"):
            self.assertEqual(stack.psql(
                "SELECT count(*) FROM %s WHERE organization_id = '%s'"
                % (table, org)), "0", table)

    def test_json_answers(self):
        org = stack.ctl_ok("org", "add", "Json Clinic").strip()
        u = stack.ctl_json("user", "add", org, "desk@json.example",
                           "--name", "Desk")
        self.assertEqual((u["organization_id"], u["email"], u["name"]),
                         (org, "desk@json.example", "Desk"))
        self.assertEqual(stack.ctl_json("block", "add", org, "+15550000002"),
                         {"blocked": "+15550000002"})
        self.assertEqual(stack.ctl_json("block", "remove", org,
                                        "+15550000002"),
                         {"unblocked": "+15550000002"})
        c = stack.ctl_json("closure", "add", org, "2028-02-29")  # leap
        self.assertEqual(stack.ctl_json("closure", "remove", c["id"]), {})
        stack.ctl_ok("number", "add", org, "+15550000003")
        self.assertEqual(stack.ctl_json("number", "remove", "+15550000003"),
                         {"removed": "+15550000003"})
        r = stack.ctl_ok("reply", "add", org, "--keywords", "x",
                         "--text", "y").strip()
        self.assertEqual(stack.ctl_json("reply", "remove", r),
                         {"removed": r})


ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
BOOLEANS = {"enabled", "writable", "previous_kept"}


def json_rule_breaks(value, path="$"):
    """Where a --json document breaks telehookctl(8)'s one rule: ids are
    strings, booleans are true or false, times are ISO 8601 in UTC."""
    out = []
    if isinstance(value, dict):
        for k, v in value.items():
            p = path + "." + k
            if (k == "id" or k.endswith("_id") or k == "removed") and \
                    v is not None and not isinstance(v, str):
                out.append("%s: an id as %r" % (p, v))
            if k in BOOLEANS and not isinstance(v, bool):
                out.append("%s: a boolean as %r" % (p, v))
            if (k.endswith("_at") or k == "minute") and v is not None and \
                    not (isinstance(v, str) and ISO.match(v)):
                out.append("%s: a time as %r" % (p, v))
            if isinstance(v, str) and v in ("yes", "no", "t", "f"):
                out.append("%s: a boolean as the string %r" % (p, v))
            out += json_rule_breaks(v, p)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += json_rule_breaks(v, "%s[%d]" % (path, i))
    return out


class JsonShapes(unittest.TestCase):
    """Every command's --json, over records of every kind."""

    def test_one_rule_for_every_command(self):
        key = stack.path("json-shapes.key")
        with open(key, "wb") as f:
            f.write(os.urandom(32))
        os.chmod(key, 0o600)
        conf = stack.conf_variant("json-shapes.conf", "[server]\n",
                                  "[server]\nsecret_key_file = \"%s\"\n" %
                                  key)

        def run(*args, stdin=None):
            p = stack.ctl("--json", *args, input=stdin, conf=conf)
            self.assertEqual(p.returncode, 0, (args, p.stderr))
            # telehookctl(8): "with --json each command prints one JSON
            # document instead"
            self.assertTrue(p.stdout.strip(), (args, "no document"))
            return json.loads(p.stdout)

        seen = {}

        def check(*args, stdin=None):
            doc = run(*args, stdin=stdin)
            seen[" ".join(args)] = doc
            self.assertEqual(json_rule_breaks(doc), [], (args, doc))
            return doc

        org = check("org", "add", "Json Clinic " + uuid.uuid4().hex[:6])["id"]
        check("org", "list")
        check("org", "show", org)
        check("org", "set", org, "hours=24/7")
        check("number", "add", org, "+15550990000")
        check("number", "list", org)
        check("user", "add", org, "json@clinic.example")
        check("user", "list", org)
        check("user", "set", org, "json@clinic.example", "notify=none")
        tok = check("token", "create", org)
        check("token", "list", org)
        check("token", "revoke", tok["id"])
        rep = check("reply", "add", org, "--keywords", "hours", "--text",
                    "Nine to five.")
        check("reply", "list", org)
        check("reply", "remove", rep["id"])
        check("secret", "set", org, "retell", stdin="json-clinic-key\n")
        check("secret", "list", org)
        check("secret", "remove", org, "retell")
        check("block", "add", org, "+15550990001")
        check("block", "list", org)
        check("block", "remove", org, "+15550990001")
        clo = check("closure", "add", org, "2027-01-01")
        check("closure", "list", org)
        check("closure", "remove", clo["id"])
        camp = check("campaign", "add", org, "Recall")
        csv = stack.path("json-shapes.csv")
        with open(csv, "w") as f:
            f.write("phone,name\n+15550990002,Ann\n")
        check("campaign", "import", camp["id"], csv)
        check("campaign", "show", camp["id"])
        check("send", "twilio", "sms_incoming", "--org", org)
        ev = check("events", "list", "--limit", "3")["events"]
        self.assertTrue(ev)
        check("events", "show", ev[0]["id"])
        check("events", "replay", ev[0]["id"])
        unrouted = stack.psql(
            "INSERT INTO events (provider, event_type, provider_key, route) "
            "VALUES ('twilio', 'sms', 'json-unrouted', 'twilio_sms_incoming') "
            "RETURNING id").splitlines()[0]
        check("events", "assign", unrouted, org)
        check("events", "list", "--failed")
        stack.request("GET", "/webhooks/nowhere")
        wait_for("a rejection", lambda: run("events", "rejections", "--counts")[
            "rejection_counts"])
        check("events", "rejections")
        check("events", "rejections", "--counts")
        check("outbox", "list")
        ep = check("endpoint", "add", org, "https://crm.example/hook")
        check("endpoint", "list", org)
        check("endpoint", "disable", ep["id"])
        check("endpoint", "enable", ep["id"])
        check("endpoint", "rotate-secret", ep["id"])
        check("send", "twilio", "sms_incoming", "--org", org)
        check("deliveries", "send")     # crm.example: no such host here
        check("deliveries", "list")
        check("endpoint", "remove", ep["id"])
        check("spool", "status")
        check("spool", "drain")
        check("prune", "--older-than", "3650")
        check("check-config")
        check("migrate")
        # the rule has something to check: the lists above are not empty
        self.assertTrue(seen["org list"]["organizations"])
        self.assertTrue(seen["events rejections"]["rejections"])
        self.assertTrue(seen["deliveries list"]["deliveries"])
        self.assertTrue(seen["endpoint list " + org]["endpoints"])


class Usage(unittest.TestCase):

    def test_unknown_command(self):
        p = stack.ctl("frobnicate")
        self.assertEqual(p.returncode, 64)
        self.assertEqual(p.stderr.count("\n"), 1)
        self.assertIn("unknown command: frobnicate", p.stderr)
        # two words are named as typed, a space between them
        p = stack.ctl("frobnicate", "widgets")
        self.assertEqual(p.returncode, 64)
        self.assertEqual(p.stderr, "telehookctl: unknown command: frobnicate "
                         "widgets (telehookctl --help lists them)\n")

    def test_wrong_operand_count(self):
        p = stack.ctl("org", "add")
        self.assertEqual(p.returncode, 64)
        self.assertIn("usage: telehookctl org add NAME", p.stderr)
        p = stack.ctl("org", "show", "a", "b")
        self.assertEqual(p.returncode, 64)

    def test_flags_take_no_operand(self):
        # a flag without a value does not swallow the next option; the
        # operands are counted from the command's own options
        p = stack.ctl("--json", "events", "list", "--unrouted", "--limit",
                      "50")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("events", json.loads(p.stdout))
        p = stack.ctl("events", "list", "--unrouted", "extra")
        self.assertEqual(p.returncode, 64)
        self.assertIn("usage: telehookctl events list", p.stderr)

    def test_no_command_lists_them_all(self):
        for args in ((), ("-Z",)):
            p = subprocess.run([stack.telehookctl] + list(args),
                               capture_output=True, text=True)
            self.assertEqual(p.returncode, 64, args)
            # one line for each command of every table
            for usage in ("org add NAME", "campaign import CAMPAIGN",
                          "events replay ID", "spool drain", "migrate"):
                self.assertIn("\t" + usage, p.stderr)

    def test_help_and_version(self):
        for args in (("--help",), ("-h",)):
            p = subprocess.run([stack.telehookctl] + list(args),
                               capture_output=True, text=True)
            self.assertEqual((p.returncode, p.stderr), (0, ""), args)
            self.assertIn("\tevents replay ID", p.stdout)
        version = re.search(r"AC_INIT\(\[telehook\], \[([^]]+)\]",
                            open(os.path.join(SRCDIR, "configure.ac")).read())
        p = subprocess.run([stack.telehookctl, "--version"],
                           capture_output=True, text=True)
        self.assertEqual((p.returncode, p.stdout),
                         (0, "telehookctl %s\n" % version.group(1)))

    def test_a_noun_lists_its_commands(self):
        for args, first in ((("org",), "a command is needed"),
                            (("org", "frobnicate"), "no such command")):
            p = stack.ctl(*args)
            self.assertEqual(p.returncode, 64, args)
            lines = p.stderr.splitlines()
            self.assertIn(first, lines[0])
            # every "org" command and nothing else
            self.assertEqual(sorted(ln.split()[1] for ln in lines[1:]),
                             ["add", "list", "set", "show"])

    def test_send_usage_url_optional(self):
        p = stack.ctl("send", "twilio")
        self.assertEqual(p.returncode, 64)
        self.assertIn("send PROVIDER EVENT [--url URL]", p.stderr)

    def test_unknown_option(self):
        p = stack.ctl("org", "add", "X", "--colour", "blue")
        self.assertEqual(p.returncode, 64)
        self.assertEqual(count("organizations WHERE name = 'X'"), 0)

    def test_commands_without_options_refuse_one(self):
        # telehookctl(8): an unknown option is bad usage (64), and does
        # nothing -- the sender (deliveries run) does not start, to run
        # until it is stopped
        for cmd in (("deliveries", "run"), ("deliveries", "send"),
                    ("outbox", "send"), ("spool", "drain")):
            p = stack.ctl(*cmd, "--bogus", timeout=30)
            self.assertEqual(p.returncode, 64, (cmd, p.stderr))
            self.assertIn("--bogus", p.stderr)

    def test_bad_config(self):
        p = stack.ctl("-c", stack.path("missing.conf"), "org", "list")
        # -c given twice: the last wins, and it does not exist
        self.assertEqual(p.returncode, 78)
        self.assertIn("missing.conf", p.stderr)


class DatabaseDown(unittest.TestCase):

    def test_unreachable_database_exits_69(self):
        stack.stop_postgres()
        try:
            p = stack.ctl("org", "list")
            self.assertEqual(p.returncode, 69)
            self.assertIn("database unreachable", p.stderr)
            self.assertEqual(p.stderr.count("\n"), 1)
            p = stack.ctl("check-config")
            self.assertEqual(p.returncode, 69)
        finally:
            stack.start_postgres()
        self.assertEqual(stack.ctl("org", "list").returncode, 0)


load_tests = in_order(__name__)

if __name__ == "__main__":
    unittest.main(verbosity=2)
