/*
 * check_whsig: Standard Webhooks signatures against the specification's
 * published test vector (the reference libraries' own tests: secret
 * whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, id msg_p5jXN8AQM9LWM0D4loKWxJek,
 * timestamp 1614265330, body {"test": 2432232314}), and the secrets it
 * refuses.
 */
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <sodium.h>

#include "extern.h"
#include "suite.h"

#define SECRET	"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define ID	"msg_p5jXN8AQM9LWM0D4loKWxJek"
#define TS	1614265330LL
#define BODY	"{\"test\": 2432232314}"
#define SIG	"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

START_TEST(test_spec_vector)
{
	char	sig[WHSIG_SIG_MAX];

	ck_assert_int_eq(whsig_sign(SECRET, ID, TS, BODY, strlen(BODY), sig,
	    sizeof(sig)), 0);
	ck_assert_str_eq(sig, SIG);
}
END_TEST

START_TEST(test_what_is_signed)
{
	char	a[WHSIG_SIG_MAX], b[WHSIG_SIG_MAX];

	ck_assert_int_eq(whsig_sign(SECRET, ID, TS + 1, BODY, strlen(BODY), a,
	    sizeof(a)), 0);
	ck_assert_str_ne(a, SIG);
	ck_assert_int_eq(whsig_sign(SECRET, "msg_other", TS, BODY,
	    strlen(BODY), b, sizeof(b)), 0);
	ck_assert_str_ne(b, SIG);
	ck_assert_int_eq(whsig_sign(SECRET, ID, TS, BODY, strlen(BODY) - 1, b,
	    sizeof(b)), 0);
	ck_assert_str_ne(b, SIG);
}
END_TEST

START_TEST(test_bad_secrets)
{
	char	sig[WHSIG_SIG_MAX];

	/* no prefix, not base64, too short a key, no room for the answer */
	ck_assert_int_eq(whsig_sign("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", ID, TS,
	    BODY, strlen(BODY), sig, sizeof(sig)), -1);
	ck_assert_int_eq(whsig_sign("whsec_not base64!", ID, TS, BODY,
	    strlen(BODY), sig, sizeof(sig)), -1);
	ck_assert_int_eq(whsig_sign("whsec_c2hvcnQ=", ID, TS, BODY,
	    strlen(BODY), sig, sizeof(sig)), -1);
	ck_assert_int_eq(whsig_sign(SECRET, ID, TS, BODY, strlen(BODY), sig,
	    10), -1);
}
END_TEST

START_TEST(test_new_secret)
{
	char		 a[WHSIG_SECRET_MAX], b[WHSIG_SECRET_MAX];
	unsigned char	 raw[64];
	size_t		 n;
	char		 sig[WHSIG_SIG_MAX];

	whsig_secret_new(a, sizeof(a));
	whsig_secret_new(b, sizeof(b));
	ck_assert_str_ne(a, b);
	ck_assert(strncmp(a, "whsec_", 6) == 0);
	ck_assert_int_eq(sodium_base642bin(raw, sizeof(raw), a + 6,
	    strlen(a + 6), NULL, &n, NULL, sodium_base64_VARIANT_ORIGINAL), 0);
	ck_assert_uint_eq(n, WHSIG_SECRET_BYTES);
	ck_assert_int_eq(whsig_sign(a, ID, TS, BODY, strlen(BODY), sig,
	    sizeof(sig)), 0);
}
END_TEST

Suite *
check_suite(void)
{
	Suite	*s = suite_create("whsig");
	TCase	*tc = tcase_create("Core");

	tcase_add_test(tc, test_spec_vector);
	tcase_add_test(tc, test_what_is_signed);
	tcase_add_test(tc, test_bad_secrets);
	tcase_add_test(tc, test_new_secret);
	suite_add_tcase(s, tc);
	return s;
}
