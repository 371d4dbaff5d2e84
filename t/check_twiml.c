/*
 * check_twiml: the TwiML builder and XML escaping (twiml.c).
 */
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "extern.h"
#include "suite.h"

#define HEAD	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"

static struct twiml	 t;

static void
setup(void)
{
	twiml_init(&t);
}

static void
teardown(void)
{
	twiml_free(&t);
}

START_TEST(test_empty_response)
{
	ck_assert_int_eq(twiml_finish(&t), 0);
	ck_assert_str_eq(buf_cstr(&t.b), HEAD "<Response></Response>\n");
}
END_TEST

START_TEST(test_say_and_dial)
{
	twiml_leaf(&t, "Say", "Thanks for calling.", "voice", "Polly.Joanna",
	    NULL);
	twiml_open(&t, "Dial", "timeout", "20", "action", NULL, NULL);
	twiml_leaf(&t, "Number", "+14155550100", "statusCallbackEvent",
	    "initiated ringing answered completed", NULL);
	twiml_close(&t);
	twiml_leaf(&t, "Hangup", NULL, NULL);
	ck_assert_int_eq(twiml_finish(&t), 0);
	ck_assert_str_eq(buf_cstr(&t.b), HEAD "<Response>"
	    "<Say voice=\"Polly.Joanna\">Thanks for calling.</Say>"
	    "<Dial timeout=\"20\"><Number statusCallbackEvent=\"initiated "
	    "ringing answered completed\">+14155550100</Number></Dial>"
	    "<Hangup/></Response>\n");
}
END_TEST

START_TEST(test_finish_closes_open_elements)
{
	twiml_open(&t, "Gather", "input", "speech", NULL);
	twiml_text(&t, "");
	twiml_leaf(&t, "Say", "Ask me", NULL);
	ck_assert_int_eq(twiml_finish(&t), 0);
	ck_assert_str_eq(buf_cstr(&t.b), HEAD "<Response><Gather input="
	    "\"speech\"><Say>Ask me</Say></Gather></Response>\n");
	/* finishing twice changes nothing */
	ck_assert_int_eq(twiml_finish(&t), 0);
}
END_TEST

START_TEST(test_escaping)
{
	twiml_leaf(&t, "Message", "Tom & Jerry's <b>\"deal\"</b>", "to",
	    "a\"b<c>&", NULL);
	ck_assert_int_eq(twiml_finish(&t), 0);
	ck_assert_str_eq(buf_cstr(&t.b), HEAD "<Response><Message to=\"a&quot;"
	    "b&lt;c&gt;&amp;\">Tom &amp; Jerry&apos;s &lt;b&gt;&quot;deal&quot;"
	    "&lt;/b&gt;</Message></Response>\n");
}
END_TEST

START_TEST(test_control_chars_and_utf8)
{
	struct buf	 b;

	buf_init(&b);
	/* tab, LF and CR stay; other C0 controls go */
	xml_escape(&b, "a\tb\nc\rd\x01\x1f" "e", 10);
	ck_assert_str_eq(buf_cstr(&b), "a\tb\nc\rde");
	buf_reset(&b);
	/* valid multibyte UTF-8 passes through */
	xml_escape(&b, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\x9e", 14);
	ck_assert_str_eq(buf_cstr(&b), "caf\xc3\xa9 \xe2\x82\xac "
	    "\xf0\x9f\x93\x9e");
	buf_reset(&b);
	/* invalid: a lone continuation, truncated, overlong, surrogate */
	xml_escape(&b, "\x80|\xc3|\xc0\xaf|\xed\xa0\x80|\xef\xbf\xbe", 14);
	ck_assert_str_eq(buf_cstr(&b), "\xef\xbf\xbd|\xef\xbf\xbd|"
	    "\xef\xbf\xbd\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd|"
	    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	buf_free(&b);
}
END_TEST

START_TEST(test_bad_names_fail)
{
	twiml_leaf(&t, "Say", "fine", NULL);
	twiml_leaf(&t, "Say x", "no", NULL);
	ck_assert_int_eq(twiml_finish(&t), -1);
}
END_TEST

START_TEST(test_bad_attribute_name_fails)
{
	twiml_leaf(&t, "Say", "x", "voice\"=", "evil", NULL);
	ck_assert_int_eq(twiml_finish(&t), -1);
}
END_TEST

START_TEST(test_close_without_open_fails)
{
	twiml_close(&t);
	ck_assert_int_eq(twiml_finish(&t), -1);
}
END_TEST

START_TEST(test_too_deep_fails)
{
	int	 i;

	for (i = 0; i < TWIML_MAXDEPTH + 1; i++)
		twiml_open(&t, "Dial", NULL);
	ck_assert_int_eq(twiml_finish(&t), -1);
}
END_TEST

START_TEST(test_text_after_finish_fails)
{
	ck_assert_int_eq(twiml_finish(&t), 0);
	twiml_text(&t, "late");
	ck_assert_int_eq(twiml_finish(&t), -1);
}
END_TEST

START_TEST(test_size_limit_fails_whole)
{
	char	*big = xmalloc(BUF_MAX_DEFAULT / 4 + 1);

	memset(big, '&', BUF_MAX_DEFAULT / 4);
	big[BUF_MAX_DEFAULT / 4] = '\0';
	/* each '&' becomes five bytes: past the limit */
	twiml_leaf(&t, "Say", big, NULL);
	ck_assert_int_eq(twiml_finish(&t), -1);
	free(big);
}
END_TEST

Suite *
check_suite(void)
{
	Suite	*s = suite_create("twiml");
	TCase	*tc;

	tc = tcase_create("Core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_empty_response);
	tcase_add_test(tc, test_say_and_dial);
	tcase_add_test(tc, test_finish_closes_open_elements);
	tcase_add_test(tc, test_escaping);
	tcase_add_test(tc, test_control_chars_and_utf8);
	suite_add_tcase(s, tc);

	tc = tcase_create("Bad input");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_bad_names_fail);
	tcase_add_test(tc, test_bad_attribute_name_fails);
	tcase_add_test(tc, test_close_without_open_fails);
	tcase_add_test(tc, test_too_deep_fails);
	tcase_add_test(tc, test_text_after_finish_fails);
	tcase_add_test(tc, test_size_limit_fails_whole);
	suite_add_tcase(s, tc);
	return s;
}
