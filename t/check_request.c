/*
 * check_request: the request (request.c): its CGI environment and
 * headers, body kinds and JSON, parameters, client address and the URI
 * as logs write it.
 */
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "extern.h"
#include "suite.h"

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
	char		*a, big[80];
	int		 n;

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
	/*
	 * Hops of 63, 64 and 65 bytes (no address is so long): the walk
	 * stops, nothing written past its 64-byte copy (the sanitizer
	 * build sees a write one byte past).
	 */
	for (n = 63; n <= 65; n++) {
		memset(big, '1', n);
		big[n] = '\0';
		a = req_client_addr("10.1.1.1", big, &proxies);
		ck_assert_str_eq(a, "10.1.1.1");
		free(a);
	}
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

Suite *
check_suite(void)
{
	Suite	*s = suite_create("request");
	TCase	*tc;

	tc = tcase_create("Request");
	tcase_add_test(tc, test_req_env_and_headers);
	tcase_add_test(tc, test_req_body_kinds);
	tcase_add_test(tc, test_req_json_body);
	tcase_add_test(tc, test_req_param_order);
	tcase_add_test(tc, test_client_addr);
	tcase_add_test(tc, test_redact_uri);
	suite_add_tcase(s, tc);

	tc = tcase_create("Bad input");
	tcase_add_loop_test(tc, test_req_bad_json, 0,
	    sizeof(badjson) / sizeof(badjson[0]));
	tcase_add_test(tc, test_req_missing_uri);
	suite_add_tcase(s, tc);
	return s;
}
