/*
 * check_spool: the spool file reader (spool.c, spool_parse): a record
 * as telehook(8) describes the format, and every way a file can be
 * damaged, each refused with its own reason; sealed records (telehook-
 * spool 2) with the right key, a wrong one and none.
 */
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "extern.h"
#include "suite.h"

/* text, with the checksum line the format closes a file with */
static char *
with_sum(const char *text)
{
	char	 hex[65], *out;
	size_t	 n = strlen(text);

	crypto_sha256_hex(text, n, hex);
	out = xmalloc(n + 74);
	memcpy(out, text, n);
	snprintf(out + n, 74, "sha256: %s\n", hex);
	return out;
}

#define HEAD	"telehook-spool 1\nreceived: 1700000000000000\n" \
		"client: 198.51.100.7\nenv: REQUEST_METHOD=POST\n"

START_TEST(test_good_record)
{
	struct spooled	 s;
	const char	*err = NULL;
	char		*f = with_sum(HEAD "scope: "
	    "0b6f2c1e-8a44-4d2c-9c1e-2f5d7a9b1c3d\nenv: QUERY_STRING=a%3Db\n"
	    "answer: 2\nbody: 3\n\nokabc");

	ck_assert_int_eq(spool_parse(f, strlen(f), &s, &err), 0);
	ck_assert_int_eq(s.received_us, 1700000000000000LL);
	ck_assert_str_eq(s.client, "198.51.100.7");
	ck_assert_str_eq(s.scope, "0b6f2c1e-8a44-4d2c-9c1e-2f5d7a9b1c3d");
	ck_assert_int_eq(s.nenv, 2);
	ck_assert_str_eq(s.envp[0], "REQUEST_METHOD=POST");
	ck_assert_str_eq(s.envp[1], "QUERY_STRING=a=b");	/* decoded */
	ck_assert_ptr_null(s.envp[2]);
	ck_assert_str_eq(s.answer, "ok");
	ck_assert_str_eq(s.body, "abc");
	ck_assert_uint_eq(s.bodylen, 3);
	spooled_free(&s);
	free(f);
}
END_TEST

/* Damaged records (the checksum line is added unless raw). */
static const struct {
	const char	*text;
	int		 raw;
	const char	*why;
} bad[] = {
	{ "telehook-spool 9\nreceived: 1\n", 0, "not a telehook spool file" },
	{ "telehook-spool 1\nshort\n", 1, "truncated" },
	{ "telehook-spool 1\n" "received: 1\nclient: x\nanswer: 0\n"
	    "body: 0\n\n0123456789012345678901234567890123456789012345678901"
	    "2345678901234567890\n", 1, "truncated: no checksum line" },
	{ HEAD "answer: 0\nbody: 0", 0, "truncated header" },
	{ HEAD "received: soon\nanswer: 0\nbody: 0\n\n", 0,
	    "malformed header line" },
	{ HEAD "received: -5\nanswer: 0\nbody: 0\n\n", 0,
	    "malformed header line" },
	{ HEAD "client: %zz\nanswer: 0\nbody: 0\n\n", 0,
	    "malformed header line" },
	{ HEAD "scope: not-a-uuid\nanswer: 0\nbody: 0\n\n", 0,
	    "malformed header line" },
	{ HEAD "env: NOEQUALS\nanswer: 0\nbody: 0\n\n", 0,
	    "malformed header line" },
	{ HEAD "answer: two\nbody: 0\n\n", 0, "malformed header line" },
	{ HEAD "answer: 0\nbody: 1e3\n\n", 0, "malformed header line" },
	{ HEAD "answer: 0\nbody: 0\nfavourite: blue\n\n", 0,
	    "malformed header line" },
	{ "telehook-spool 1\nreceived: 1\nanswer: 0\nbody: 0\n\n", 0,
	    "missing header line" },
	{ HEAD "answer: 2\nbody: 9\n\nokabc", 0,
	    "answer and body lengths do not match the file" },
	{ "telehook-spool 2\nshort\n", 1, "truncated" },
	{ "telehook-spool 2\nnot sealed: x\n", 0, "malformed header line" },
};

START_TEST(test_damaged)
{
	struct spooled	 s;
	const char	*err = NULL;
	char		*f;

	f = bad[_i].raw ? xstrdup(bad[_i].text) : with_sum(bad[_i].text);
	ck_assert_msg(spool_parse(f, strlen(f), &s, &err) == -1,
	    "accepted case %d", _i);
	ck_assert_str_eq(err, bad[_i].why);
	free(f);
}
END_TEST

START_TEST(test_checksum_mismatch)
{
	struct spooled	 s;
	const char	*err = NULL;
	char		*f = with_sum(HEAD "answer: 0\nbody: 1\n\nx");

	f[strlen(f) - 74] = 'y';	/* the body, after it was summed */
	ck_assert_int_eq(spool_parse(f, strlen(f), &s, &err), -1);
	ck_assert_str_eq(err, "checksum mismatch");
	free(f);
	f = with_sum("telehook-spool 2\nsealed: AAAA\n");
	f[20] = 'B';
	ck_assert_int_eq(spool_parse(f, strlen(f), &s, &err), -1);
	ck_assert_str_eq(err, "checksum mismatch");
	free(f);
}
END_TEST

START_TEST(test_nul_in_body)
{
	struct spooled	 s;
	const char	*err = NULL;
	char		 text[] = HEAD "answer: 0\nbody: 3\n\naXc";
	char		 hex[65], *f;
	size_t		 n = sizeof(text) - 1;

	text[n - 2] = '\0';
	crypto_sha256_hex(text, n, hex);
	f = xmalloc(n + 74);
	memcpy(f, text, n);
	snprintf(f + n, 74, "sha256: %s\n", hex);
	ck_assert_int_eq(spool_parse(f, n + 73, &s, &err), -1);
	ck_assert_str_eq(err, "NUL byte in answer or body");
	free(f);
}
END_TEST

START_TEST(test_too_many_env)
{
	struct spooled	 s;
	const char	*err = NULL;
	struct buf	 b;
	char		*f;
	int		 i;

	buf_init(&b);
	buf_puts(&b, HEAD);
	for (i = 0; i < 300; i++)
		buf_printf(&b, "env: HTTP_X_%d=1\n", i);
	buf_puts(&b, "answer: 0\nbody: 0\n\n");
	f = with_sum(buf_cstr(&b));
	ck_assert_int_eq(spool_parse(f, strlen(f), &s, &err), -1);
	ck_assert_str_eq(err, "malformed header line");
	free(f);
	buf_free(&b);
}
END_TEST

/* telehook-spool 2: the record sealed with secret_key_file. */
START_TEST(test_sealed)
{
	struct spooled	 s;
	const char	*err = NULL;
	char		*inner, *sealed, *text, *f;
	unsigned char	 other[CRYPTO_KEYBYTES];

	inner = with_sum(HEAD "answer: 0\nbody: 2\n\nhi");
	memset(crypto_key, 3, sizeof(crypto_key));
	sealed = crypto_seal(crypto_key, inner);
	xasprintf(&text, "telehook-spool 2\nsealed: %s\n", sealed);
	f = with_sum(text);

	crypto_have_key = 0;
	ck_assert_int_eq(spool_parse(f, strlen(f), &s, &err), -2);
	ck_assert_str_eq(err, "sealed, and no secret_key_file to open it");

	crypto_have_key = 1;
	ck_assert_int_eq(spool_parse(f, strlen(f), &s, &err), 0);
	ck_assert_str_eq(s.body, "hi");
	ck_assert_str_eq(s.client, "198.51.100.7");
	spooled_free(&s);

	memset(other, 4, sizeof(other));
	memcpy(crypto_key, other, sizeof(crypto_key));
	ck_assert_int_eq(spool_parse(f, strlen(f), &s, &err), -1);
	ck_assert_str_eq(err, "does not open with secret_key_file");
	crypto_have_key = 0;
	free(inner);
	free(sealed);
	free(text);
	free(f);
}
END_TEST

Suite *
check_suite(void)
{
	Suite	*s = suite_create("spool");
	TCase	*tc = tcase_create("Reader");

	tcase_add_test(tc, test_good_record);
	tcase_add_loop_test(tc, test_damaged, 0, sizeof(bad) / sizeof(bad[0]));
	tcase_add_test(tc, test_checksum_mismatch);
	tcase_add_test(tc, test_nul_in_body);
	tcase_add_test(tc, test_too_many_env);
	tcase_add_test(tc, test_sealed);
	suite_add_tcase(s, tc);
	return s;
}
