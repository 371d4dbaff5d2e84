/*
 * check_dispatch: route matching, 404 versus 405, path arguments, the
 * table checks (dispatch.c), and rendering answers (response.c).
 */
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "extern.h"
#include "suite.h"

static int
h_ok(struct req *r, struct resp *p)
{
	(void)r;
	(void)p;
	return 0;
}

static enum db_err
h_handle(struct req *r, struct resp *p)
{
	(void)r;
	(void)p;
	return DB_OK;
}

static const struct route table[] = {
	{ "/webhooks/twilio/sms/incoming", METHOD_POST, BODY_FORM, "sms",
	    verify_public, h_handle, RESP_TWIML, ROUTE_TX, h_ok, NULL, MC_NONE },
	{ "/webhooks/voipms/sms/incoming", METHOD_GET | METHOD_POST,
	    BODY_NONE | BODY_FORM | BODY_JSON, "voipms", verify_public, h_handle,
	    RESP_TEXT, ROUTE_TX, h_ok, NULL, MC_NONE },
	{ "/api/v1/organizations/{}/dashboard", METHOD_GET | METHOD_HEAD,
	    BODY_NONE, "dashboard", verify_public, h_handle, RESP_JSON, 0, NULL,
	    NULL, MC_NONE },
	{ "/api/v1/organizations/{}/notifications/{}/read", METHOD_POST,
	    BODY_NONE | BODY_JSON, "read", verify_public, h_handle, RESP_JSON,
	    ROUTE_TX, h_ok, NULL, MC_NONE },
};
#define NTABLE	(sizeof(table) / sizeof(table[0]))

START_TEST(test_match_exact)
{
	int			 status;
	char			 allow[64];
	const struct route	*rt;

	rt = dispatch_match(table, NTABLE, "/webhooks/twilio/sms/incoming",
	    METHOD_POST, NULL, &status, allow, sizeof(allow));
	ck_assert_ptr_eq(rt, &table[0]);
	ck_assert_int_eq(status, 0);
}
END_TEST

START_TEST(test_unknown_path_is_404)
{
	static const char *paths[] = { "/webhooks/twilio/sms/incoming/",
	    "/webhooks/twilio/sms", "/webhooks//twilio/sms/incoming",
	    "/Webhooks/twilio/sms/incoming", "/", "",
	    "/api/v1/organizations//dashboard",
	    "/api/v1/organizations/a/b/dashboard", NULL };
	int	 i, status;
	char	 allow[64];

	for (i = 0; paths[i] != NULL; i++) {
		ck_assert_ptr_null(dispatch_match(table, NTABLE, paths[i],
		    METHOD_POST, NULL, &status, allow, sizeof(allow)));
		ck_assert_int_eq(status, 404);
	}
}
END_TEST

START_TEST(test_wrong_method_is_405_with_allow)
{
	int	 status;
	char	 allow[64];

	ck_assert_ptr_null(dispatch_match(table, NTABLE,
	    "/webhooks/twilio/sms/incoming", METHOD_GET, NULL, &status, allow,
	    sizeof(allow)));
	ck_assert_int_eq(status, 405);
	ck_assert_str_eq(allow, "POST");
	ck_assert_ptr_null(dispatch_match(table, NTABLE,
	    "/webhooks/voipms/sms/incoming", METHOD_DELETE, NULL, &status,
	    allow, sizeof(allow)));
	ck_assert_int_eq(status, 405);
	ck_assert_str_eq(allow, "GET, POST");
	ck_assert_ptr_null(dispatch_match(table, NTABLE,
	    "/api/v1/organizations/x/dashboard", METHOD_OTHER, NULL, &status,
	    allow, sizeof(allow)));
	ck_assert_str_eq(allow, "GET, HEAD");
}
END_TEST

START_TEST(test_path_arguments)
{
	struct req		 r;
	int			 status;
	const struct route	*rt;

	memset(&r, 0, sizeof(r));
	rt = dispatch_match(table, NTABLE,
	    "/api/v1/organizations/6f1c/notifications/42/read", METHOD_POST,
	    &r, &status, NULL, 0);
	ck_assert_ptr_eq(rt, &table[3]);
	ck_assert_int_eq(r.nargs, 2);
	ck_assert_str_eq(r.args[0], "6f1c");
	ck_assert_str_eq(r.args[1], "42");
	req_free(&r);
	/* a failed match leaves no arguments behind */
	memset(&r, 0, sizeof(r));
	ck_assert_ptr_null(dispatch_match(table, NTABLE,
	    "/api/v1/organizations/6f1c/notifications/42/unread", METHOD_POST,
	    &r, &status, NULL, 0));
	ck_assert_int_eq(r.nargs, 0);
}
END_TEST

START_TEST(test_the_real_table_is_sane)
{
	const char	*err = NULL;
	int		 status;

	ck_assert_int_eq(dispatch_check_table(routes, nroutes, &err), 0);
	ck_assert_ptr_nonnull(dispatch_match(routes, nroutes, "/healthz",
	    METHOD_HEAD, NULL, &status, NULL, 0));
}
END_TEST

START_TEST(test_table_checks)
{
	struct route	 t[2];
	const char	*err = NULL;

	memcpy(t, table, sizeof(t));
	ck_assert_int_eq(dispatch_check_table(t, 2, &err), 0);
	t[1].verify = NULL;
	ck_assert_int_eq(dispatch_check_table(t, 2, &err), -1);
	ck_assert_str_eq(err, "route without a verify slot");
	memcpy(t, table, sizeof(t));
	t[1].path = t[0].path;
	ck_assert_int_eq(dispatch_check_table(t, 2, &err), -1);
	ck_assert_str_eq(err, "two routes take the same path and method");
	memcpy(t, table, sizeof(t));
	t[0].handle = NULL;
	ck_assert_int_eq(dispatch_check_table(t, 2, &err), -1);
	memcpy(t, table, sizeof(t));
	t[0].path = "relative";
	ck_assert_int_eq(dispatch_check_table(t, 2, &err), -1);
	memcpy(t, table, sizeof(t));
	t[0].fallback = NULL;
	ck_assert_int_eq(dispatch_check_table(t, 2, &err), -1);
	ck_assert_str_eq(err, "a transactional route without a fallback "
	    "for when the database is away");
}
END_TEST

/* Rendering: headers, bodies and failures. */
static struct resp	 p;
static struct buf	 out;

static void
render_setup(void)
{
	buf_init(&out);
}

static void
render_teardown(void)
{
	resp_free(&p);
	buf_free(&out);
}

START_TEST(test_render_json)
{
	cJSON	*o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "status", "ok");
	resp_init(&p, RESP_JSON);
	resp_set_json(&p, 200, o);
	ck_assert_int_eq(resp_render(&p, 0, &out), 200);
	ck_assert_str_eq(buf_cstr(&out), "Status: 200 OK\r\n"
	    "Content-Type: application/json\r\nContent-Length: 16\r\n"
	    "Cache-Control: no-store\r\n\r\n{\"status\":\"ok\"}\n");
}
END_TEST

START_TEST(test_render_error_escapes_json)
{
	resp_init(&p, RESP_TWIML);
	resp_error(&p, 400, "bad \"thing\"\n%s", "<x>");
	resp_error(&p, 500, "second error is ignored");
	ck_assert_int_eq(resp_render(&p, 0, &out), 400);
	ck_assert_ptr_nonnull(strstr(buf_cstr(&out),
	    "Content-Type: application/json\r\n"));
	ck_assert_ptr_nonnull(strstr(buf_cstr(&out),
	    "\r\n\r\n{\"error\":\"bad \\\"thing\\\"\\n<x>\"}\n"));
}
END_TEST

START_TEST(test_render_405_allow)
{
	resp_init(&p, RESP_JSON);
	strcpy(p.allow, "GET, HEAD");
	resp_error(&p, 405, "method POST not allowed");
	ck_assert_int_eq(resp_render(&p, 0, &out), 405);
	ck_assert_ptr_nonnull(strstr(buf_cstr(&out), "Allow: GET, HEAD\r\n"));
}
END_TEST

START_TEST(test_render_empty_204)
{
	resp_init(&p, RESP_EMPTY);
	ck_assert_int_eq(resp_render(&p, 0, &out), 204);
	ck_assert_str_eq(buf_cstr(&out), "Status: 204 No Content\r\n"
	    "Cache-Control: no-store\r\n\r\n");
}
END_TEST

START_TEST(test_render_head_has_no_body)
{
	resp_init(&p, RESP_TEXT);
	buf_puts(&p.text, "ok");
	ck_assert_int_eq(resp_render(&p, 1, &out), 200);
	ck_assert_ptr_nonnull(strstr(buf_cstr(&out), "Content-Length: 2\r\n"));
	ck_assert_int_eq(out.data[out.len - 1], '\n');
	ck_assert_ptr_null(strstr(buf_cstr(&out), "\r\n\r\nok"));
}
END_TEST

START_TEST(test_render_failed_twiml_is_500_never_half)
{
	resp_init(&p, RESP_TWIML);
	twiml_leaf(&p.twiml, "Say", "Hello", NULL);
	twiml_leaf(&p.twiml, "Bad Name", "x", NULL);
	ck_assert_int_eq(resp_render(&p, 0, &out), 500);
	ck_assert_ptr_null(strstr(buf_cstr(&out), "Hello"));
	ck_assert_ptr_nonnull(strstr(buf_cstr(&out),
	    "{\"error\":\"could not build TwiML\"}"));
}
END_TEST

START_TEST(test_render_failed_text_is_500)
{
	resp_init(&p, RESP_TEXT);
	p.text.max = 4;
	buf_puts(&p.text, "too long");
	ck_assert_int_eq(resp_render(&p, 0, &out), 500);
}
END_TEST

START_TEST(test_render_json_without_value_is_500)
{
	resp_init(&p, RESP_JSON);
	ck_assert_int_eq(resp_render(&p, 0, &out), 500);
}
END_TEST

Suite *
check_suite(void)
{
	Suite	*s = suite_create("dispatch");
	TCase	*tc;

	tc = tcase_create("Core");
	tcase_add_test(tc, test_match_exact);
	tcase_add_test(tc, test_path_arguments);
	tcase_add_test(tc, test_the_real_table_is_sane);
	tcase_add_test(tc, test_table_checks);
	suite_add_tcase(s, tc);

	tc = tcase_create("Bad input");
	tcase_add_test(tc, test_unknown_path_is_404);
	tcase_add_test(tc, test_wrong_method_is_405_with_allow);
	suite_add_tcase(s, tc);

	tc = tcase_create("Responders");
	tcase_add_checked_fixture(tc, render_setup, render_teardown);
	tcase_add_test(tc, test_render_json);
	tcase_add_test(tc, test_render_error_escapes_json);
	tcase_add_test(tc, test_render_405_allow);
	tcase_add_test(tc, test_render_empty_204);
	tcase_add_test(tc, test_render_head_has_no_body);
	tcase_add_test(tc, test_render_failed_twiml_is_500_never_half);
	tcase_add_test(tc, test_render_failed_text_is_500);
	tcase_add_test(tc, test_render_json_without_value_is_500);
	suite_add_tcase(s, tc);
	return s;
}
