/*
 * check_retellsig: X-Retell-Signature against the vector of retell-sdk's
 * own tests (tests/webhook-auth.test.ts, retell-python-sdk
 * tests/test_webhook_auth.py) and the header forms they reject.
 */
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "extern.h"
#include "suite.h"

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

static const struct {
	const char	*call_status;
	const char	*reason;
	const char	*status;
	const char	*outcome;	/* of a campaign contact */
} mapping[] = {
	{ "registered", NULL, "queued", "failed" },
	{ "ongoing", NULL, "in-progress", "failed" },
	{ "ended", "user_hangup", "completed", "completed" },
	{ "ended", "agent_hangup", "completed", "completed" },
	{ "ended", "call_transfer", "completed", "completed" },
	{ "ended", "voicemail_reached", "completed", "no_answer" },
	{ "ended", "dial_busy", "busy", "no_answer" },
	{ "ended", "dial_no_answer", "no-answer", "no_answer" },
	{ "ended", "dial_failed", "failed", "failed" },
	{ "ended", "invalid_destination", "failed", "failed" },
	{ "ended", "telephony_provider_unavailable", "failed", "failed" },
	{ "ended", NULL, "completed", "completed" },
	/* every other disconnection_reason Retell documents (research:
	 * providers.md 3.2), by telehook(8)'s rule: never reached anyone */
	{ "ended", "telephony_provider_permission_denied", "failed", "failed" },
	{ "ended", "sip_routing_error", "failed", "failed" },
	{ "ended", "marked_as_spam", "failed", "failed" },
	{ "ended", "user_declined", "failed", "no_answer" },
	{ "ended", "registered_call_timeout", "failed", "failed" },
	{ "ended", "concurrency_limit_reached", "failed", "failed" },
	{ "ended", "no_valid_payment", "failed", "failed" },
	{ "ended", "error_user_not_joined", "failed", "failed" },
	/* reached someone, or ended by telehook's side: completed */
	{ "ended", "ivr_reached", "completed", "completed" },
	{ "ended", "inactivity", "completed", "completed" },
	{ "ended", "max_duration_reached", "completed", "completed" },
	{ "ended", "no_concurrency_fallback", "completed", "completed" },
	{ "ended", "scam_detected", "completed", "completed" },
	{ "ended", "error_llm_websocket_open", "completed", "completed" },
	{ "ended", "error_llm_websocket_lost_connection", "completed", "completed" },
	{ "ended", "error_llm_websocket_runtime", "completed", "completed" },
	{ "ended", "error_llm_websocket_corrupt_payload", "completed", "completed" },
	{ "ended", "error_no_audio_received", "completed", "completed" },
	{ "ended", "error_asr", "completed", "completed" },
	{ "ended", "error_retell", "completed", "completed" },
	{ "ended", "error_unknown", "completed", "completed" },
	{ "ended", "transfer_bridged", "completed", "completed" },
	{ "ended", "transfer_cancelled", "completed", "completed" },
	{ "ended", "manual_stopped", "completed", "completed" },
	{ "ended", "call_take_over", "completed", "completed" },
	{ "not_connected", "dial_failed", "failed", "failed" },
	{ "error", "error_retell", "failed", "failed" },
};

START_TEST(test_status_mapping)
{
	const char	*st = retell_status(mapping[_i].call_status,
			    mapping[_i].reason);

	ck_assert_str_eq(st, mapping[_i].status);
	ck_assert_str_eq(retell_contact_outcome(st, mapping[_i].reason),
	    mapping[_i].outcome);
}
END_TEST

START_TEST(test_unknown_status)
{
	ck_assert_ptr_null(retell_status("teleported", NULL));
	ck_assert_ptr_null(retell_status(NULL, NULL));
	ck_assert_ptr_null(retell_contact_outcome(NULL, NULL));
}
END_TEST

/* allowed_ips is checked first: a refused address is 403, unread. */
START_TEST(test_allowed_ips)
{
	struct req	 r;
	const char	*why, *err;
	char		*env[] = { "REQUEST_METHOD=POST", NULL };

	conf_defaults(&conf);
	ck_assert_int_eq(cidrlist_parse("100.20.5.228, 10.0.0.0/8",
	    &conf.retell.allowed, &err), 0);
	req_init(&r, env);
	r.client_addr = xstrdup("192.0.2.1");
	ck_assert_int_eq(retell_verify(&r, &why), VERIFY_FORBID);
	ck_assert_str_eq(why, "address not allowed");
	free(r.client_addr);
	r.client_addr = xstrdup("10.1.2.3");
	/* allowed, but unsigned and no key configured: still refused */
	ck_assert_int_eq(retell_verify(&r, &why), VERIFY_DENY);
	ck_assert_str_eq(why, "missing X-Retell-Signature");
	req_free(&r);
	conf_free(&conf);
}
END_TEST

Suite *
check_suite(void)
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

	tc = tcase_create("Mapping");
	tcase_add_loop_test(tc, test_status_mapping, 0,
	    sizeof(mapping) / sizeof(mapping[0]));
	tcase_add_test(tc, test_unknown_status);
	tcase_add_test(tc, test_allowed_ips);
	suite_add_tcase(s, tc);
	return s;
}
