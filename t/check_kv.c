/*
 * check_kv: form and query parsing (kv.c) and the request body and
 * client address (request.c).
 */
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "extern.h"

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

/* A request built from a fake CGI environment. */
static struct req	 r;

static void
req_with(char **env, const char *body, size_t len)
{
	req_init(&r, env);
	r.body = xmalloc(len + 1);
	memcpy(r.body, body, len);
	r.body[len] = '\0';
	r.bodylen = len;
}

START_TEST(test_req_env_and_headers)
{
	char	*env[] = { "REQUEST_METHOD=POST",
		    "CONTENT_TYPE=application/x-www-form-urlencoded; "
		    "charset=UTF-8",
		    "REQUEST_URI=/webhooks/twilio?foo=1&bar=%20x",
		    "HTTP_X_TWILIO_SIGNATURE=abc=", NULL };
	const char *err;

	req_init(&r, env);
	ck_assert_int_eq(r.method, METHOD_POST);
	ck_assert_int_eq(r.body_kind, BODY_FORM);
	ck_assert_str_eq(req_header(&r, "X-Twilio-Signature"), "abc=");
	ck_assert_ptr_null(req_header(&r, "X-Retell-Signature"));
	ck_assert_int_eq(req_parse_uri(&r, &err), 0);
	ck_assert_str_eq(r.path, "/webhooks/twilio");
	ck_assert_str_eq(r.query, "foo=1&bar=%20x");
	ck_assert_str_eq(kv_get(&r.qs, "bar"), " x");
	req_free(&r);
}
END_TEST

START_TEST(test_req_body_kinds)
{
	ck_assert_int_eq(req_body_kind(NULL), BODY_NONE);
	ck_assert_int_eq(req_body_kind(""), BODY_NONE);
	ck_assert_int_eq(req_body_kind("application/json"), BODY_JSON);
	ck_assert_int_eq(req_body_kind("Application/JSON; charset=utf-8"),
	    BODY_JSON);
	ck_assert_int_eq(req_body_kind("application/x-www-form-urlencoded"),
	    BODY_FORM);
	ck_assert_int_eq(req_body_kind("application/jsonx"), 0);
	ck_assert_int_eq(req_body_kind("text/plain"), 0);
	ck_assert_int_eq(req_body_kind("multipart/form-data; boundary=x"), 0);
}
END_TEST

START_TEST(test_req_json_body)
{
	char		*env[] = { "CONTENT_TYPE=application/json", NULL };
	const char	*err;
	const char	*body = "{\"event\":\"call_ended\",\"n\":1}\n";

	req_with(env, body, strlen(body));
	ck_assert_int_eq(req_parse_body(&r, &err), 0);
	ck_assert_str_eq(req_param(&r, "event"), "call_ended");
	ck_assert_ptr_null(req_param(&r, "n"));	/* not a string */
	req_free(&r);
}
END_TEST

static const struct {
	const char	*body;
	size_t		 len;
	const char	*why;
} badjson[] = {
	{ "{\"a\":", 5, "invalid JSON" },
	{ "{\"a\":1}x", 8, "trailing data after JSON" },
	{ "[1,2]", 5, "JSON body is not an object" },
	{ "\"s\"", 3, "JSON body is not an object" },
	{ "{\"a\":\"x\0y\"}", 11, "NUL byte in JSON body" },
	{ "", 0, "invalid JSON" },
};

START_TEST(test_req_bad_json)
{
	char		*env[] = { "CONTENT_TYPE=application/json", NULL };
	const char	*err = NULL;

	req_with(env, badjson[_i].body, badjson[_i].len);
	ck_assert_int_eq(req_parse_body(&r, &err), -1);
	ck_assert_str_eq(err, badjson[_i].why);
	req_free(&r);
}
END_TEST

START_TEST(test_req_param_order)
{
	char		*env[] = {
		    "CONTENT_TYPE=application/x-www-form-urlencoded",
		    "REQUEST_URI=/x?organization_id=q&OrgId=fromquery", NULL };
	const char	*err;
	const char	*body = "organization_id=fromform";

	req_with(env, body, strlen(body));
	ck_assert_int_eq(req_parse_uri(&r, &err), 0);
	ck_assert_int_eq(req_parse_body(&r, &err), 0);
	ck_assert_str_eq(req_param(&r, "organization_id"), "fromform");
	ck_assert_str_eq(req_param(&r, "OrgId"), "fromquery");
	req_free(&r);
}
END_TEST

START_TEST(test_req_missing_uri)
{
	char		*env[] = { "REQUEST_METHOD=GET", NULL };
	const char	*err;

	req_init(&r, env);
	ck_assert_int_eq(req_parse_uri(&r, &err), -1);
	req_free(&r);
}
END_TEST

START_TEST(test_client_addr)
{
	struct cidrlist	 proxies;
	const char	*err;
	char		*a;

	ck_assert_int_eq(cidrlist_parse("10.0.0.0/8, 192.168.1.1",
	    &proxies, &err), 0);
	/* not from a proxy: the header is ignored */
	a = req_client_addr("203.0.113.9", "1.2.3.4", &proxies);
	ck_assert_str_eq(a, "203.0.113.9");
	free(a);
	/* from a proxy: the rightmost untrusted hop */
	a = req_client_addr("10.1.1.1", "1.2.3.4, 198.51.100.7, 10.2.2.2",
	    &proxies);
	ck_assert_str_eq(a, "198.51.100.7");
	free(a);
	/* all trusted: the leftmost */
	a = req_client_addr("10.1.1.1", "192.168.1.1,10.3.3.3", &proxies);
	ck_assert_str_eq(a, "192.168.1.1");
	free(a);
	/* garbage stops the walk at the last good hop */
	a = req_client_addr("10.1.1.1", "1.2.3.4, junk, 10.9.9.9", &proxies);
	ck_assert_str_eq(a, "10.9.9.9");
	free(a);
	a = req_client_addr("10.1.1.1", NULL, &proxies);
	ck_assert_str_eq(a, "10.1.1.1");
	free(a);
	a = req_client_addr(NULL, NULL, &proxies);
	ck_assert_str_eq(a, "-");
	free(a);
	cidrlist_free(&proxies);
}
END_TEST

START_TEST(test_redact_uri)
{
	static const struct {
		const char	*in;
		const char	*out;
	} c[] = {
		{ "/x?token=s3cret&to=1", "/x?to=1" },
		{ "/x?to=1;token=s3cret;from=2", "/x?to=1;from=2" },
		{ "/x?a=1&token=", "/x?a=1" },
		{ "/x?mytoken=keep&token=a&token=b", "/x?mytoken=keep" },
		{ "/x?%74oken=s3cret&to=1", "/x?to=1" },
		{ "/x?TOKEN=s3cret;to=1", "/x?to=1" },
		{ "/x?to=1&%zz=s3cret", "/x?to=1" },
		{ "/x?token=s3cret", "/x" },
		{ "/x", "/x" },
	};
	size_t	 i;
	char	*red;

	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		red = req_redact_uri(c[i].in);
		ck_assert_str_eq(red, c[i].out);
		free(red);
	}
}
END_TEST

static Suite *
kv_suite(void)
{
	Suite	*s = suite_create("kv");
	TCase	*tc;

	tc = tcase_create("Core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_kv_basic);
	tcase_add_test(tc, test_kv_decodes_plus_and_percent);
	tcase_add_test(tc, test_kv_keeps_repeated_keys_in_order);
	tcase_add_test(tc, test_kv_empty_pairs_and_no_equals);
	tcase_add_test(tc, test_kv_semicolons_only_when_asked);
	suite_add_tcase(s, tc);

	tc = tcase_create("Bad input");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_kv_rejects_bad_escapes, 0,
	    sizeof(bad) / sizeof(bad[0]));
	tcase_add_test(tc, test_kv_rejects_raw_nul);
	tcase_add_loop_test(tc, test_req_bad_json, 0,
	    sizeof(badjson) / sizeof(badjson[0]));
	tcase_add_test(tc, test_req_missing_uri);
	suite_add_tcase(s, tc);

	tc = tcase_create("Request");
	tcase_add_test(tc, test_req_env_and_headers);
	tcase_add_test(tc, test_req_body_kinds);
	tcase_add_test(tc, test_req_json_body);
	tcase_add_test(tc, test_req_param_order);
	tcase_add_test(tc, test_client_addr);
	tcase_add_test(tc, test_redact_uri);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(kv_suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
