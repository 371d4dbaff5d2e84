/*
 * check_retellsig: X-Retell-Signature against the vector of retell-sdk's
 * own tests (tests/webhook-auth.test.ts, retell-python-sdk
 * tests/test_webhook_auth.py) and the header forms they reject.
 */
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "extern.h"

#define BODY	"{\"event\":\"call_ended\"}"
#define KEY	"test-api-key"
#define TS	1700000000000LL
#define DIGEST	"07024cabe7dd8f6d1c6e4a8324ca92c812e6ad4a7ee506c04f7e462e3321823e"
#define HEADER	"v=1700000000000,d=" DIGEST
#define WINDOW	300000LL

static enum retellsig
verify(const char *key, const char *body, const char *header, long long now)
{
	return retellsig_verify(key, body, strlen(body), header, now, WINDOW);
}

START_TEST(test_sdk_vector)
{
	unsigned char	 d[32];
	char		 hex[65];

	retellsig_digest(KEY, BODY, strlen(BODY), TS, d);
	util_hex(d, 32, hex);
	ck_assert_str_eq(hex, DIGEST);
	ck_assert_int_eq(verify(KEY, BODY, HEADER, TS), RETELLSIG_OK);
}
END_TEST

START_TEST(test_window_is_inclusive_both_ways)
{
	ck_assert_int_eq(verify(KEY, BODY, HEADER, TS + 300000), RETELLSIG_OK);
	ck_assert_int_eq(verify(KEY, BODY, HEADER, TS - 300000), RETELLSIG_OK);
	ck_assert_int_eq(verify(KEY, BODY, HEADER, TS + 300001),
	    RETELLSIG_EXPIRED);
	ck_assert_int_eq(verify(KEY, BODY, HEADER, TS - 300001),
	    RETELLSIG_EXPIRED);
}
END_TEST

START_TEST(test_body_and_key_must_match)
{
	ck_assert_int_eq(verify(KEY, BODY " ", HEADER, TS),
	    RETELLSIG_MISMATCH);
	ck_assert_int_eq(verify("wrong-key", BODY, HEADER, TS),
	    RETELLSIG_MISMATCH);
	ck_assert_int_eq(verify("", BODY, HEADER, TS), RETELLSIG_MISMATCH);
}
END_TEST

START_TEST(test_case_insensitive_as_the_ts_sdk)
{
	char	 h[128];
	size_t	 i;

	strcpy(h, "V=1700000000000,D=" DIGEST);
	for (i = 0; h[i] != '\0'; i++)
		if (h[i] >= 'a' && h[i] <= 'f')
			h[i] = (char)(h[i] - 'a' + 'A');
	ck_assert_int_eq(verify(KEY, BODY, h, TS), RETELLSIG_OK);
}
END_TEST

START_TEST(test_leading_zeros_sign_the_number)
{
	/* String(Number("01700000000000")) has no leading zero */
	ck_assert_int_eq(verify(KEY, BODY, "v=01700000000000,d=" DIGEST, TS),
	    RETELLSIG_OK);
}
END_TEST

static const char *const rejected[] = {
	"",
	"v=1700000000000",
	"d=" DIGEST ",v=1700000000000",
	"prefix-v=1700000000000,d=" DIGEST,
	"v=1700000000000,d=" DIGEST "-suffix",
	"v=1700000000000,d=not-hex",
	"v=1700000000000,d=07024cabe7dd8f6d1c6e4a8324ca92c812e6ad4a7ee506c04f7e462e33218"
	    "2",	/* 62 digits */
	"v=999999999999999999999999,d=" DIGEST,	/* not a safe integer */
	"v=9007199254740992,d=" DIGEST,		/* 2^53 */
	"v=,d=" DIGEST,
	"v=-1700000000000,d=" DIGEST,
	"v=1700000000000, d=" DIGEST,
	"v=1700000000000,d=" DIGEST " ",
	"sha256=" DIGEST,
	"v=1700000000000,d=07024cabe7dd8f6d1c6e4a8324ca92c812e6ad4a7ee506c04f7e462e3321823g",
};

START_TEST(test_rejected_forms)
{
	ck_assert_msg(verify(KEY, BODY, rejected[_i], TS) ==
	    RETELLSIG_MALFORMED, "accepted \"%s\"", rejected[_i]);
}
END_TEST

START_TEST(test_null_header)
{
	ck_assert_int_eq(verify(KEY, BODY, NULL, TS), RETELLSIG_MALFORMED);
}
END_TEST

static Suite *
retellsig_suite(void)
{
	Suite	*s = suite_create("retellsig");
	TCase	*tc;

	tc = tcase_create("Vector");
	tcase_add_test(tc, test_sdk_vector);
	tcase_add_test(tc, test_window_is_inclusive_both_ways);
	tcase_add_test(tc, test_body_and_key_must_match);
	tcase_add_test(tc, test_case_insensitive_as_the_ts_sdk);
	tcase_add_test(tc, test_leading_zeros_sign_the_number);
	suite_add_tcase(s, tc);

	tc = tcase_create("Bad input");
	tcase_add_loop_test(tc, test_rejected_forms, 0,
	    sizeof(rejected) / sizeof(rejected[0]));
	tcase_add_test(tc, test_null_header);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(retellsig_suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
