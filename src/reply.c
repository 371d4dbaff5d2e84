/*
 * reply.c: what an organization answers automatically.  An SMS gets the
 * first of the organization's rules whose keywords it contains, else the
 * first default rule that matches (the five categories the back ends
 * answered: emergency, appointment, hours, location, insurance).  Voice
 * rules are the knowledge base of the speech <Gather> flow.
 *
 * Keywords match whole words without regard to case: "open" matches
 * "Are you open?" but not "opening".  STOP, START and HELP (and their
 * carrier synonyms) are opt-out keywords when they are the whole message.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "extern.h"

static const struct {
	const char	*word;
	enum reply_opt	 opt;
} opt_words[] = {
	{ "STOP", REPLY_OPT_STOP },
	{ "STOPALL", REPLY_OPT_STOP },
	{ "UNSUBSCRIBE", REPLY_OPT_STOP },
	{ "CANCEL", REPLY_OPT_STOP },
	{ "END", REPLY_OPT_STOP },
	{ "QUIT", REPLY_OPT_STOP },
	{ "START", REPLY_OPT_START },
	{ "YES", REPLY_OPT_START },
	{ "UNSTOP", REPLY_OPT_START },
	{ "HELP", REPLY_OPT_HELP },
	{ "INFO", REPLY_OPT_HELP },
};

/* The opt-out keyword a message is, ignoring case, blanks and a '.'. */
enum reply_opt
reply_opt_keyword(const char *body)
{
	char	 w[16];
	size_t	 i, n;

	if (body == NULL)
		return REPLY_OPT_NONE;
	while (isspace((unsigned char)*body))
		body++;
	n = strlen(body);
	while (n > 0 && (isspace((unsigned char)body[n - 1]) ||
	    body[n - 1] == '.' || body[n - 1] == '!'))
		n--;
	if (n == 0 || n >= sizeof(w))
		return REPLY_OPT_NONE;
	memcpy(w, body, n);
	w[n] = '\0';
	for (i = 0; i < sizeof(opt_words) / sizeof(opt_words[0]); i++)
		if (strcasecmp(w, opt_words[i].word) == 0)
			return opt_words[i].opt;
	return REPLY_OPT_NONE;
}

static int
is_word(int c)
{
	return isalnum(c) || c >= 0x80;
}

/* Does text contain keyword kw (len n) as a whole word or phrase? */
static int
reply_word_in(const char *text, const char *kw, size_t n)
{
	const char	*p;

	if (n == 0)
		return 0;
	for (p = text; *p != '\0'; p++) {
		if (strncasecmp(p, kw, n) != 0)
			continue;
		if (p > text && is_word((unsigned char)p[-1]))
			continue;
		if (is_word((unsigned char)p[n]))
			continue;
		return 1;
	}
	return 0;
}

/* Does text contain any of the comma-separated keywords? */
int
reply_keywords_match(const char *keywords, const char *text)
{
	const char	*k = keywords, *end;
	size_t		 n;

	if (keywords == NULL || text == NULL)
		return 0;
	while (*k != '\0') {
		while (*k == ',' || *k == ' ')
			k++;
		end = k + strcspn(k, ",");
		n = (size_t)(end - k);
		while (n > 0 && k[n - 1] == ' ')
			n--;
		if (reply_word_in(text, k, n))
			return 1;
		k = *end ? end + 1 : end;
	}
	return 0;
}

/* The default set, most urgent first (the earlier back ends' categories). */
static const struct {
	const char	*category;
	const char	*keywords;
} defaults[] = {
	{ "emergency", "emergency,urgent,pain,bleeding,swelling" },
	{ "appointment", "appointment,schedule,book,available,availability" },
	{ "hours", "hours,open,closed,time,when" },
	{ "location", "location,address,where,directions" },
	{ "insurance", "insurance,coverage,accept,plan" },
};

/*
 * Is text urgent: does it hold one of the emergency rule's keywords?
 * Such an SMS notifies the staff (architecture.md §15), whatever is answered.
 */
int
reply_urgent(const char *text)
{
	return reply_keywords_match(defaults[0].keywords, text);
}

/* The default category text falls in, or NULL. */
const char *
reply_default_category(const char *text)
{
	size_t	 i;

	for (i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
		if (reply_keywords_match(defaults[i].keywords, text))
			return defaults[i].category;
	return NULL;
}

/*
 * The default reply for category, for organization o reached at number
 * phone (its forward_to wins).  Caller frees.
 */
char *
reply_default_text(const char *category, const struct org *o,
    const char *phone)
{
	struct buf	 hours;
	const char	*name = o->name != NULL ? o->name : "us";
	char		*s;

	if (o->forward_to != NULL)
		phone = o->forward_to;
	if (phone == NULL)
		phone = "our office";
	buf_init(&hours);
	if (o->has_hours)
		hours_format(&o->hours, &hours);
	if (strcmp(category, "emergency") == 0)
		xasprintf(&s, "If this is a medical emergency, call 911. For "
		    "urgent help from %s, call %s.", name, phone);
	else if (strcmp(category, "appointment") == 0)
		xasprintf(&s, "To book or change an appointment with %s, call "
		    "%s or reply with a time that suits you and we will get "
		    "back to you.", name, phone);
	else if (strcmp(category, "hours") == 0 && o->has_hours)
		xasprintf(&s, "%s is open %s (%s).", name, buf_cstr(&hours),
		    o->timezone != NULL ? o->timezone : "local time");
	else if (strcmp(category, "hours") == 0)
		xasprintf(&s, "Please call %s at %s for our hours.", name,
		    phone);
	else if (strcmp(category, "location") == 0)
		xasprintf(&s, "For our address and directions, call %s at %s.",
		    name, phone);
	else
		xasprintf(&s, "Questions about insurance or coverage? Call %s "
		    "at %s and we will check your plan.", name, phone);
	buf_free(&hours);
	return s;
}

/*
 * The reply to text from rules ([[keywords, reply], ...], in order),
 * then (for SMS) the default set, or NULL.  Caller frees.
 */
static char *
reply_pick(const struct org *o, const char *channel, const cJSON *rules,
    const char *text, const char *phone)
{
	const cJSON	*rule, *kw, *reply;
	const char	*cat;

	cJSON_ArrayForEach(rule, rules) {
		kw = cJSON_GetArrayItem(rule, 0);
		reply = cJSON_GetArrayItem(rule, 1);
		if (cJSON_IsString(kw) && cJSON_IsString(reply) &&
		    reply_keywords_match(kw->valuestring, text))
			return xstrdup(reply->valuestring);
	}
	if (strcmp(channel, "sms") == 0 &&
	    (cat = reply_default_category(text)) != NULL)
		return reply_default_text(cat, o, phone);
	return NULL;
}

/*
 * The reply to text on channel ("sms" or "voice") for organization o:
 * its own rules first, then (for SMS) the default set.  *out is NULL
 * when nothing matches; caller frees.
 */
enum db_err
reply_find(const struct org *o, const char *channel, const char *text,
    const char *phone, char **out)
{
	struct db_res	 res;
	cJSON		*rules, *rule;
	enum db_err	 e;
	int		 i, c_words, c_reply;

	*out = NULL;
	if (o->id == NULL || text == NULL || *text == '\0')
		return DB_OK;
	if ((e = store_rules(o->id, channel, &res)) != DB_OK)
		return e;
	rules = cJSON_CreateArray();
	c_words = db_col(&res, "keywords");
	c_reply = db_col(&res, "reply");
	for (i = 0; i < res.nrows; i++) {
		rule = cJSON_CreateArray();
		cJSON_AddItemToArray(rule, cJSON_CreateString(db_get(&res, i,
		    c_words)));
		cJSON_AddItemToArray(rule, cJSON_CreateString(db_get(&res, i,
		    c_reply)));
		cJSON_AddItemToArray(rules, rule);
	}
	db_res_free(&res);
	*out = reply_pick(o, channel, rules, text, phone);
	cJSON_Delete(rules);
	return DB_OK;
}

/*
 * What to answer an incoming SMS from number from to our number to:
 * opt-out keywords first (STOP records the opt-out and answers nothing,
 * since carriers confirm it; START and HELP are answered), then the
 * organization's reply, unless the sender opted out, is blocked, is one
 * of our own numbers, or had REPLY_LOOP_MAX replies in ten minutes.
 * The reply state and rules come from known when the caller has them
 * already (the SMS path fetches them with the message), else from the
 * database.  *out is the reply or NULL; caller frees.
 */
enum db_err
reply_decide(const struct org *o, const char *from, const char *to,
    const char *body, const struct reply_known *known, char **out)
{
	struct reply_state rs;
	enum db_err	 e;

	*out = NULL;
	if (o->id == NULL || from == NULL)
		return DB_OK;
	switch (reply_opt_keyword(body)) {
	case REPLY_OPT_STOP:
		return store_set_opt_out(o->id, from, 1);
	case REPLY_OPT_START:
		if ((e = store_set_opt_out(o->id, from, 0)) != DB_OK)
			return e;
		xasprintf(out, "You will receive messages from %s again. "
		    "Reply STOP to unsubscribe.", o->name);
		return DB_OK;
	case REPLY_OPT_HELP:
		xasprintf(out, "%s: for help, call %s. Reply STOP to "
		    "unsubscribe.", o->name, o->forward_to ? o->forward_to :
		    (to ? to : "our office"));
		return DB_OK;
	case REPLY_OPT_NONE:
		break;
	}
	if (known != NULL && known->rs != NULL)
		rs = *known->rs;
	else if ((e = store_reply_state(o->id, from, &rs)) != DB_OK)
		return e;
	if (rs.opted_out || rs.blocked || rs.own)
		return DB_OK;
	if (rs.recent >= REPLY_LOOP_MAX) {
		/* numbers only at log_level = debug (architecture.md §5) */
		log_notice("organization %s: no auto-reply: %d in ten "
		    "minutes from one number (loop guard)", o->id, rs.recent);
		log_debug("loop guard: %s", log_esc(from));
		return DB_OK;
	}
	if (known != NULL && known->rules != NULL) {
		if (body != NULL && *body != '\0')
			*out = reply_pick(o, "sms", known->rules, body, to);
		return DB_OK;
	}
	return reply_find(o, "sms", body, to, out);
}
