/*
 * check_kv: form and query parsing (kv.c).
 */
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "extern.h"
#include "suite.h"

static struct kvlist l;

static void
setup(void)
{
	memset(&l, 0, sizeof(l));
}

static void
teardown(void)
{
	kv_free(&l);
}

START_TEST(test_kv_basic)
{
	const char	*err;
	const char	*s = "a=1&b=two&c=";

	ck_assert_int_eq(kv_parse(&l, s, strlen(s), 0, &err), 0);
	ck_assert_uint_eq(l.n, 3);
	ck_assert_str_eq(kv_get(&l, "a"), "1");
	ck_assert_str_eq(kv_get(&l, "b"), "two");
	ck_assert_str_eq(kv_get(&l, "c"), "");
	ck_assert_ptr_null(kv_get(&l, "d"));
}
END_TEST

START_TEST(test_kv_decodes_plus_and_percent)
{
	const char	*err;
	const char	*s = "From=%2B14158675309&Body=Hello+world%21+%C3%A9";

	ck_assert_int_eq(kv_parse(&l, s, strlen(s), 0, &err), 0);
	ck_assert_str_eq(kv_get(&l, "From"), "+14158675309");
	ck_assert_str_eq(kv_get(&l, "Body"), "Hello world! \xc3\xa9");
}
END_TEST

/* RFC 3986 2.1: the hex digits of a percent-escape in either case */
START_TEST(test_kv_decodes_either_case)
{
	const char	*err;
	const char	*s = "a=%c3%a9%2b&b=%C3%A9%2B&c=%fF%Ff";

	ck_assert_int_eq(kv_parse(&l, s, strlen(s), 0, &err), 0);
	ck_assert_str_eq(kv_get(&l, "a"), "\xc3\xa9+");
	ck_assert_str_eq(kv_get(&l, "b"), "\xc3\xa9+");
	ck_assert_str_eq(kv_get(&l, "c"), "\xff\xff");
}
END_TEST

START_TEST(test_kv_keeps_repeated_keys_in_order)
{
	const char	*err;
	const char	*s = "Digits=5678&Digits=1234&Digits=1234&Sid=CA1";

	ck_assert_int_eq(kv_parse(&l, s, strlen(s), 0, &err), 0);
	ck_assert_uint_eq(kv_count(&l, "Digits"), 3);
	ck_assert_str_eq(l.v[0].val, "5678");
	ck_assert_str_eq(l.v[1].val, "1234");
	ck_assert_str_eq(l.v[2].val, "1234");
	ck_assert_str_eq(kv_get(&l, "Digits"), "5678");
}
END_TEST

START_TEST(test_kv_empty_pairs_and_no_equals)
{
	const char	*err;
	const char	*s = "&&a&=x&b=1=2&";

	ck_assert_int_eq(kv_parse(&l, s, strlen(s), 0, &err), 0);
	ck_assert_uint_eq(l.n, 3);
	ck_assert_str_eq(l.v[0].key, "a");
	ck_assert_str_eq(l.v[0].val, "");
	ck_assert_str_eq(l.v[1].key, "");
	ck_assert_str_eq(l.v[1].val, "x");
	ck_assert_str_eq(kv_get(&l, "b"), "1=2");
}
END_TEST

START_TEST(test_kv_semicolons_only_when_asked)
{
	const char	*err;
	const char	*s = "to=15145551234;from=15145550000&message=hi";

	ck_assert_int_eq(kv_parse(&l, s, strlen(s), 0, &err), 0);
	ck_assert_str_eq(kv_get(&l, "to"), "15145551234;from=15145550000");
	kv_free(&l);
	ck_assert_int_eq(kv_parse(&l, s, strlen(s), KV_SEMICOLON, &err), 0);
	ck_assert_str_eq(kv_get(&l, "to"), "15145551234");
	ck_assert_str_eq(kv_get(&l, "from"), "15145550000");
	ck_assert_str_eq(kv_get(&l, "message"), "hi");
}
END_TEST

static const struct {
	const char	*in;
	const char	*why;
} bad[] = {
	{ "a=%", "truncated percent-escape" },
	{ "a=%4", "truncated percent-escape" },
	{ "a=%zz", "bad percent-escape" },
	{ "a=%4g", "bad percent-escape" },
	{ "%=1", "truncated percent-escape" },
	{ "a=%00", "NUL byte (%00) in form data" },
	{ "ok=1&a=b%0", "truncated percent-escape" },
};

START_TEST(test_kv_rejects_bad_escapes)
{
	const char	*err = NULL;

	ck_assert_int_eq(kv_parse(&l, bad[_i].in, strlen(bad[_i].in), 0,
	    &err), -1);
	ck_assert_str_eq(err, bad[_i].why);
}
END_TEST

START_TEST(test_kv_rejects_raw_nul)
{
	const char	*err = NULL;
	const char	 s[] = "a=1\0b=2";

	ck_assert_int_eq(kv_parse(&l, s, sizeof(s) - 1, 0, &err), -1);
	ck_assert_str_eq(err, "NUL byte in form data");
}
END_TEST

Suite *
check_suite(void)
{
	Suite	*s = suite_create("kv");
	TCase	*tc;

	tc = tcase_create("Core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_kv_basic);
	tcase_add_test(tc, test_kv_decodes_plus_and_percent);
	tcase_add_test(tc, test_kv_decodes_either_case);
	tcase_add_test(tc, test_kv_keeps_repeated_keys_in_order);
	tcase_add_test(tc, test_kv_empty_pairs_and_no_equals);
	tcase_add_test(tc, test_kv_semicolons_only_when_asked);
	suite_add_tcase(s, tc);

	tc = tcase_create("Bad input");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_kv_rejects_bad_escapes, 0,
	    sizeof(bad) / sizeof(bad[0]));
	tcase_add_test(tc, test_kv_rejects_raw_nul);
	suite_add_tcase(s, tc);
	return s;
}
