/*
 * check_conf: the configuration table and parser (conf.c).
 */
#include <sys/stat.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "extern.h"
#include "suite.h"

static struct conf	 c;
static char		 errors[4096];
static int		 nerrors;

static void
collect(const char *file, int line, const char *msg)
{
	size_t	 n = strlen(errors);

	snprintf(errors + n, sizeof(errors) - n, "%s:%d: %s\n", file, line,
	    msg);
	nerrors++;
}

static int
parse(const char *text)
{
	errors[0] = '\0';
	nerrors = 0;
	conf_free(&c);
	conf_defaults(&c);
	return conf_parse("t.conf", text, strlen(text), &c, collect);
}

static void
teardown(void)
{
	conf_free(&c);
}

START_TEST(test_defaults)
{
	ck_assert_int_eq(parse(""), 0);
	ck_assert_str_eq(c.conninfo, "dbname=telehook");
	ck_assert_int_eq(c.statement_timeout_ms, 2000);
	ck_assert_int_eq(c.max_body_bytes, 1048576);
	ck_assert_int_eq(c.cache_ttl_s, 60);
	ck_assert_int_eq(c.answer_budget_ms, 1000);	/* telehook.conf.5 */
	ck_assert_int_eq(c.log_level, LOG_LEVEL_INFO);
	ck_assert_int_eq(c.retell.signature_tolerance_s, 300);
	ck_assert_int_eq(c.twilio.insecure_allow_unsigned, 0);
	ck_assert_int_eq(c.delivery.defer_s, 30);	/* telehook.conf.5 */
	ck_assert_str_eq(c.voipms.api_url, "https://voip.ms/api/v1/rest.php");
	ck_assert_ptr_null(c.public_url);
	ck_assert_ptr_null(c.twilio.auth_token);
	ck_assert_int_eq(c.has_secrets, 0);
}
END_TEST

START_TEST(test_values_comments_quotes)
{
	ck_assert_int_eq(parse(
	    "# comment\n"
	    "; another\n"
	    "  [server]  \n"
	    "public_url = https://hooks.example.com/\n"
	    "log_level=debug\n"
	    "max_body_bytes = 2048\r\n"
	    "\n"
	    "[twilio]\n"
	    "auth_token = \"  spaced \\\"quoted\\\" \\\\ token  \"\n"
	    "webhook_secret = abc#def ; not a comment\n"
	    "insecure_allow_unsigned = Yes\n"), 0);
	ck_assert_str_eq(c.public_url, "https://hooks.example.com");
	ck_assert_int_eq(c.log_level, LOG_LEVEL_DEBUG);
	ck_assert_int_eq(c.max_body_bytes, 2048);
	ck_assert_str_eq(c.twilio.auth_token,
	    "  spaced \"quoted\" \\ token  ");
	ck_assert_str_eq(c.twilio.webhook_secret, "abc#def ; not a comment");
	ck_assert_int_eq(c.twilio.insecure_allow_unsigned, 1);
	ck_assert_int_eq(c.has_secrets, 1);
}
END_TEST

static const struct {
	const char	*text;
	const char	*error;
} bad[] = {
	{ "x = 1\n", "t.conf:1: x outside any [section]\n" },
	{ "[server]\nnope = 1\n", "t.conf:2: unknown key nope in [server]\n" },
	{ "[nowhere]\na = 1\nb = 2\n", "t.conf:1: unknown section [nowhere]\n" },
	{ "[server\n", "t.conf:1: malformed section header\n" },
	{ "[server]\njust words\n", "t.conf:2: expected \"key = value\"\n" },
	{ "[server]\n= 1\n", "t.conf:2: missing or overlong key\n" },
	{ "[server]\nlog_level = info\nlog_level = debug\n",
	    "t.conf:3: duplicate key log_level\n" },
	{ "[server]\nlog_level = loud\n", "t.conf:2: log_level must be one "
	    "of err, warning, notice, info, debug\n" },
	{ "[server]\nmax_body_bytes = 12abc\n",
	    "t.conf:2: max_body_bytes is invalid (1024 to 67108864)\n" },
	{ "[server]\nmax_body_bytes = 99999999999\n",
	    "t.conf:2: max_body_bytes is too large (1024 to 67108864)\n" },
	{ "[database]\nstatement_timeout_ms = 10\n",
	    "t.conf:2: statement_timeout_ms is too small (100 to 60000)\n" },
	{ "[twilio]\ninsecure_allow_unsigned = maybe\n",
	    "t.conf:2: insecure_allow_unsigned must be yes or no\n" },
	{ "[server]\npublic_url = hooks.example.com\n",
	    "t.conf:2: public_url must start with https:// or http://\n" },
	{ "[server]\npublic_url = https://h.example/hooks\n",
	    "t.conf:2: public_url must not have a path: the request path is "
	    "appended\n" },
	{ "[server]\npublic_url = https://h.example?x=1\n",
	    "t.conf:2: public_url must be scheme://host[:port] only (no user, "
	    "query or fragment)\n" },
	{ "[server]\nspool_dir = relative/dir\n",
	    "t.conf:2: spool_dir must be an absolute path\n" },
	{ "[voipms]\nallowed_ips = 10.0.0.0/8, 300.1.1.1\n",
	    "t.conf:2: allowed_ips: not an address or CIDR block: "
	    "\"300.1.1.1\"\n" },
	{ "[retell]\nallowed_ips = 10.0.0.0/33\n",
	    "t.conf:2: allowed_ips: not an address or CIDR block: "
	    "\"10.0.0.0/33\"\n" },
	{ "[twilio]\nauth_token = \"open\n",
	    "t.conf:2: auth_token: unterminated quoted value\n" },
	{ "[twilio]\nauth_token = \"a\" b\n",
	    "t.conf:2: auth_token: text after closing quote\n" },
	{ "[twilio]\nauth_token = \"\"\n", "t.conf:2: auth_token is empty\n" },
	{ "[voipms]\napi_url = http://voip.ms/api/v1/rest.php\n",
	    "t.conf:2: api_url must be https:// (plain http only to this "
	    "machine)\n" },
	{ "[database]\nconninfo = \"host='unterminated\"\n",
	    "t.conf:2: conninfo: unterminated quoted string in connection "
	    "info string\n" },
	{ "[database]\npooler = session\n",
	    "t.conf:2: pooler must be none or transaction\n" },
	{ "[smtp]\nurl = mail.example.com\n",
	    "t.conf:2: url must be smtp:// or smtps://\n" },
	{ "[smtp]\nurl = smtps://\n", "t.conf:2: url has no host\n" },
	{ "[delivery]\nretry_schedule = 5s,,5m\n",
	    "t.conf:2: retry_schedule must be up to 16 delays like 5s,5m,2h\n" },
	{ "[delivery]\nretry_schedule = 5d\n",
	    "t.conf:2: retry_schedule must be up to 16 delays like 5s,5m,2h\n" },
	{ "[delivery]\ntimeout_s = 0\n",
	    "t.conf:2: timeout_s is too small (1 to 120)\n" },
	{ "[delivery]\ndefer_s = 3601\n",
	    "t.conf:2: defer_s is too large (0 to 3600)\n" },
	{ "[delivery]\ndefer_s = -1\n",
	    "t.conf:2: defer_s is too small (0 to 3600)\n" },
	{ "[twilio]\napi_url = http://api.twilio.com\n",
	    "t.conf:2: api_url must be https:// (plain http only to this "
	    "machine)\n" },
};

START_TEST(test_pooler)
{
	ck_assert_int_eq(parse("[database]\n"), 0);
	ck_assert_int_eq(c.pooler, DB_POOLER_NONE);
	conf_free(&c);
	ck_assert_int_eq(parse("[database]\npooler = transaction\n"), 0);
	ck_assert_int_eq(c.pooler, DB_POOLER_TRANSACTION);
	conf_free(&c);
	ck_assert_int_eq(parse("[database]\npooler = none\n"), 0);
	ck_assert_int_eq(c.pooler, DB_POOLER_NONE);
}
END_TEST

START_TEST(test_bad_lines)
{
	ck_assert_int_eq(parse(bad[_i].text), 1);
	ck_assert_str_eq(errors, bad[_i].error);
}
END_TEST

START_TEST(test_all_errors_reported)
{
	ck_assert_int_eq(parse("[server]\nlog_level = x\nfoo = 1\n"
	    "[database]\nstatement_timeout_ms = 1\n"), 3);
	ck_assert_ptr_nonnull(strstr(errors, "t.conf:2:"));
	ck_assert_ptr_nonnull(strstr(errors, "t.conf:3:"));
	ck_assert_ptr_nonnull(strstr(errors, "t.conf:5:"));
}
END_TEST

START_TEST(test_nul_byte)
{
	const char	 text[] = "[server]\nlog_level = info\0\n";

	conf_free(&c);
	conf_defaults(&c);
	errors[0] = '\0';
	ck_assert_int_eq(conf_parse("t.conf", text, sizeof(text) - 1, &c,
	    collect), 1);
	ck_assert_str_eq(errors, "t.conf:0: file contains a NUL byte\n");
}
END_TEST

START_TEST(test_conninfo_password_is_secret)
{
	ck_assert_int_eq(parse("[database]\nconninfo = host=x dbname=y\n"), 0);
	ck_assert_int_eq(c.has_secrets, 0);
	ck_assert_int_eq(parse("[database]\nconninfo = \"host=x password=pw\"\n"),
	    0);
	ck_assert_int_eq(c.has_secrets, 1);
}
END_TEST

/* The table: sections known, keys unique, defaults valid. */
START_TEST(test_table_is_sane)
{
	const struct conf_key	*k, *j;
	int			 n = 0;

	for (k = conf_keys; k->name != NULL; k++, n++) {
		ck_assert_ptr_nonnull(k->section);
		ck_assert_int_lt(k->type, CONF__MAX);
		for (j = conf_keys; j < k; j++)
			ck_assert_msg(strcmp(j->section, k->section) != 0 ||
			    strcmp(j->name, k->name) != 0, "duplicate %s",
			    k->name);
		if (k->type == CONF_INT)
			ck_assert_int_le(k->min, k->max);
	}
	/*
	 * architecture.md §9, the VoIP.ms API, the account's zone and
	 * currency, lock_timeout_ms, pooler, the read replica's two,
	 * Twilio's api_url, [smtp]'s four, [delivery]'s four,
	 * answer_budget_ms and health_socket
	 */
	ck_assert_int_eq(n, 43);
}
END_TEST

static char	 tmpdir[64];

static char *
write_file(const char *name, const char *text, mode_t mode)
{
	static char	 path[128];
	int		 fd;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	ck_assert_int_eq(chmod(path, mode), 0);
	return path;
}

static void
files_setup(void)
{
	strcpy(tmpdir, "/tmp/check_conf.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void
files_teardown(void)
{
	char	 cmd[128];

	conf_free(&c);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
}

START_TEST(test_load_secrecy)
{
	char		*p;
	const char	*why;

	errors[0] = '\0';
	p = write_file("a.conf", "[server]\nlog_level = info\n", 0644);
	ck_assert_int_eq(conf_load(p, &c, collect), 0);
	conf_free(&c);
	/* world-readable secrets: refused */
	p = write_file("b.conf", "[retell]\napi_key = k\n", 0604);
	ck_assert_int_eq(conf_load(p, &c, collect), 1);
	ck_assert_ptr_nonnull(strstr(errors, "holds secrets but is "
	    "world-readable"));
	conf_free(&c);
	/* readable by our own group (root:telehook 0640 for the workers) */
	errors[0] = '\0';
	p = write_file("b2.conf", "[retell]\napi_key = k\n", 0640);
	ck_assert_int_eq(chown(p, (uid_t)-1, getegid()), 0);
	ck_assert_int_eq(conf_load(p, &c, collect), 0);
	conf_free(&c);
	/*
	 * root:GROUP 0640 with a group that is not ours: root reads it
	 * (the operator's telehookctl on the packaged layout), anyone else
	 * is refused (a worker whose group it is not).
	 */
	if (geteuid() == 0) {
		ck_assert_int_eq(chown(p, 0, 65534), 0);
		errors[0] = '\0';
		ck_assert_int_eq(conf_load(p, &c, collect), 0);
		conf_free(&c);
		ck_assert_int_eq(chmod(tmpdir, 0711), 0);
		ck_assert_int_eq(setegid(65533), 0);
		ck_assert_int_eq(seteuid(65533), 0);
		ck_assert_int_eq(conf_check_secrecy(p, 1, &why), -1);
		ck_assert_str_eq(why, "holds secrets but is readable by a "
		    "group that is not ours (0640 with the workers' group, or "
		    "0600)");
		ck_assert_int_eq(seteuid(0), 0);
		ck_assert_int_eq(setegid(0), 0);
		/* root, but a file someone else owns: no exception */
		ck_assert_int_eq(chown(p, 65533, 65534), 0);
		ck_assert_int_eq(conf_load(p, &c, collect), 1);
		conf_free(&c);
	}
	p = write_file("c.conf", "[server]\n", 0666);
	ck_assert_int_eq(conf_load(p, &c, collect), 1);
	ck_assert_ptr_nonnull(strstr(errors, "group- or world-writable"));
	conf_free(&c);
	p = write_file("d.conf", "[retell]\napi_key = k\n", 0600);
	ck_assert_int_eq(conf_load(p, &c, collect), 0);
	ck_assert_str_eq(c.retell.api_key, "k");
}
END_TEST

START_TEST(test_load_missing)
{
	errors[0] = '\0';
	ck_assert_int_eq(conf_load("/nonexistent/telehook.conf", &c, collect),
	    1);
	ck_assert_str_eq(errors, "/nonexistent/telehook.conf:0: No such file "
	    "or directory\n");
}
END_TEST

START_TEST(test_load_cross_checks)
{
	char	*p, text[256], conf_path[128];

	errors[0] = '\0';
	p = write_file("e.conf", "[twilio]\nauth_token = t\n", 0600);
	ck_assert_int_eq(conf_load(p, &c, collect), 1);
	ck_assert_ptr_nonnull(strstr(errors, "needs [server] public_url"));
	conf_free(&c);

	/* secret_key_file: exactly 32 bytes, private */
	write_file("key", "0123456789abcdef0123456789abcdef", 0600);
	snprintf(text, sizeof(text), "[server]\nsecret_key_file = %s/key\n",
	    tmpdir);
	snprintf(conf_path, sizeof(conf_path), "%s",
	    write_file("f.conf", text, 0600));
	p = conf_path;
	ck_assert_int_eq(conf_load(p, &c, collect), 0);
	conf_free(&c);
	write_file("key", "short", 0600);
	errors[0] = '\0';
	ck_assert_int_eq(conf_load(p, &c, collect), 1);
	ck_assert_ptr_nonnull(strstr(errors, "exactly 32 bytes"));
	conf_free(&c);
	write_file("key", "0123456789abcdef0123456789abcdef", 0644);
	errors[0] = '\0';
	ck_assert_int_eq(conf_load(p, &c, collect), 1);
	ck_assert_ptr_nonnull(strstr(errors, "chmod 600"));
	conf_free(&c);

	/* address lists are compiled */
	p = write_file("g.conf", "[server]\ntrusted_proxies = 10.0.0.0/8 "
	    "::1\n[voipms]\nallowed_ips = 192.0.2.0/24\n", 0600);
	ck_assert_int_eq(conf_load(p, &c, collect), 0);
	ck_assert_uint_eq(c.proxies.n, 2);
	ck_assert_int_eq(cidrlist_match(&c.voipms.allowed, "192.0.2.77"), 1);
	ck_assert_int_eq(cidrlist_match(&c.voipms.allowed, "192.0.3.1"), 0);
}
END_TEST

Suite *
check_suite(void)
{
	Suite	*s = suite_create("conf");
	TCase	*tc;

	tc = tcase_create("Core");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_values_comments_quotes);
	tcase_add_test(tc, test_pooler);
	tcase_add_test(tc, test_conninfo_password_is_secret);
	tcase_add_test(tc, test_table_is_sane);
	suite_add_tcase(s, tc);

	tc = tcase_create("Bad input");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_loop_test(tc, test_bad_lines, 0, sizeof(bad) / sizeof(bad[0]));
	tcase_add_test(tc, test_all_errors_reported);
	tcase_add_test(tc, test_nul_byte);
	suite_add_tcase(s, tc);

	tc = tcase_create("Files");
	tcase_add_checked_fixture(tc, files_setup, files_teardown);
	tcase_add_test(tc, test_load_secrecy);
	tcase_add_test(tc, test_load_missing);
	tcase_add_test(tc, test_load_cross_checks);
	suite_add_tcase(s, tc);
	return s;
}
