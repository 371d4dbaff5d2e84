/*
 * check_reply: what an organization answers automatically (reply.c):
 * the carriers' opt-out keywords (STOP and its synonyms, START, HELP;
 * CTIA's list as Twilio honours it), keywords matched as whole words or
 * phrases, the default categories, and which texts are urgent.
 */
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "extern.h"
#include "suite.h"

static const struct {
	const char	*body;
	enum reply_opt	 opt;
} opts[] = {
	{ "STOP", REPLY_OPT_STOP },
	{ "stop", REPLY_OPT_STOP },
	{ "  Stop. ", REPLY_OPT_STOP },
	{ "STOP!", REPLY_OPT_STOP },
	{ "STOPALL", REPLY_OPT_STOP },
	{ "UNSUBSCRIBE", REPLY_OPT_STOP },
	{ "cancel", REPLY_OPT_STOP },
	{ "END", REPLY_OPT_STOP },
	{ "QUIT", REPLY_OPT_STOP },
	{ "START", REPLY_OPT_START },
	{ "yes", REPLY_OPT_START },
	{ "UNSTOP", REPLY_OPT_START },
	{ "HELP", REPLY_OPT_HELP },
	{ "info", REPLY_OPT_HELP },
	/* a sentence is not a keyword: it is answered as a message */
	{ "stop please", REPLY_OPT_NONE },
	{ "please stop", REPLY_OPT_NONE },
	{ "STOPPED", REPLY_OPT_NONE },
	{ "unstoppable", REPLY_OPT_NONE },
	{ "", REPLY_OPT_NONE },
	{ "   ", REPLY_OPT_NONE },
};

START_TEST(test_opt_keywords)
{
	ck_assert_msg(reply_opt_keyword(opts[_i].body) == opts[_i].opt,
	    "\"%s\"", opts[_i].body);
}
END_TEST

START_TEST(test_opt_keyword_null)
{
	ck_assert_int_eq(reply_opt_keyword(NULL), REPLY_OPT_NONE);
}
END_TEST

static const struct {
	const char	*keywords;
	const char	*text;
	int		 match;
} words[] = {
	{ "open", "Are you open today?", 1 },
	{ "open", "OPEN?", 1 },
	{ "open", "when do you reopen", 0 },		/* not a whole word */
	{ "open", "opening hours", 0 },
	{ "pain", "the painting in your lobby", 0 },
	{ "pain", "I am in pain", 1 },
	{ "pain", "pain, a lot", 1 },
	{ "park, parking", "where can I park?", 1 },
	{ "park, parking", "is there parking", 1 },
	{ "park, parking", "parked outside", 0 },
	{ "front desk", "can I talk to the front desk please", 1 },
	{ "front desk", "the front-desk", 0 },
	{ "x", "", 0 },
	{ ", ,", "anything", 0 },			/* no keyword at all */
};

START_TEST(test_keywords_whole_words)
{
	ck_assert_msg(reply_keywords_match(words[_i].keywords,
	    words[_i].text) == words[_i].match, "%s in \"%s\"",
	    words[_i].keywords, words[_i].text);
}
END_TEST

static const struct {
	const char	*text;
	const char	*category;	/* NULL: none */
} cats[] = {
	/* the most urgent first: an emergency is not an appointment */
	{ "I need an appointment, my tooth is bleeding", "emergency" },
	{ "can I book for Tuesday", "appointment" },
	{ "what are your hours", "hours" },
	{ "what is your address", "location" },
	{ "do you accept my insurance plan", "insurance" },
	{ "thanks, see you", NULL },
	{ "the painting is lovely", NULL },
};

START_TEST(test_default_categories)
{
	const char	*c = reply_default_category(cats[_i].text);

	if (cats[_i].category == NULL)
		ck_assert_msg(c == NULL, "\"%s\": %s", cats[_i].text, c);
	else
		ck_assert_msg(c != NULL && strcmp(c, cats[_i].category) == 0,
		    "\"%s\": %s", cats[_i].text, c ? c : "none");
}
END_TEST

START_TEST(test_urgent)
{
	ck_assert(reply_urgent("URGENT: call me"));
	ck_assert(reply_urgent("my gums are bleeding"));
	ck_assert(reply_urgent("swelling since yesterday"));
	ck_assert(!reply_urgent("the painting"));
	ck_assert(!reply_urgent("see you at 3"));
}
END_TEST

Suite *
check_suite(void)
{
	Suite	*s = suite_create("reply");
	TCase	*tc = tcase_create("Core");

	tcase_add_loop_test(tc, test_opt_keywords, 0,
	    sizeof(opts) / sizeof(opts[0]));
	tcase_add_test(tc, test_opt_keyword_null);
	tcase_add_loop_test(tc, test_keywords_whole_words, 0,
	    sizeof(words) / sizeof(words[0]));
	tcase_add_loop_test(tc, test_default_categories, 0,
	    sizeof(cats) / sizeof(cats[0]));
	tcase_add_test(tc, test_urgent);
	suite_add_tcase(s, tc);
	return s;
}
