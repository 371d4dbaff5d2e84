/*
 * twilio_req.c: a Twilio request's fields as the class handlers of
 * twilio.c and twilio_voice.c read them.  Below both: the handlers
 * table of twilio.c points at twilio_voice.c, and neither calls back
 * up into the other for these.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extern.h"

#include "twilio.h"

/* A parameter: form field, or top-level JSON string (compat senders). */
const char *
tw_get(const struct tw *t, const char *name)
{
	const char	*v;
	const cJSON	*j;

	if ((v = kv_get(&t->h.r->form, name)) != NULL)
		return v;
	if (t->h.r->json != NULL &&
	    (j = cJSON_GetObjectItemCaseSensitive(t->h.r->json, name)) != NULL &&
	    cJSON_IsString(j))
		return j->valuestring;
	return NULL;
}

const char *
tw_get_nonempty(const struct tw *t, const char *name)
{
	const char	*v = tw_get(t, name);

	return v != NULL && *v != '\0' ? v : NULL;
}

/* A number in E.164 when it is one, else as Twilio sent it. */
char *
tw_number(const struct tw *t, const char *name)
{
	const char	*v = tw_get_nonempty(t, name);
	char		 e[32];

	if (v == NULL)
		return NULL;
	if (phone_e164(v, e, sizeof(e)) == 0)
		return xstrdup(e);
	return xstrdup(v);
}

const char *
tw_direction(const struct tw *t, const char *dflt)
{
	const char	*d = tw_get(t, "Direction");

	if (d == NULL)
		return dflt;
	if (strcmp(d, "inbound") == 0)
		return "inbound";
	if (strncmp(d, "outbound", 8) == 0)
		return "outbound";
	return dflt;
}

/* A callback URL for TwiML: public_url and path, or just the path. */
char *
tw_url(const struct tw *t, const char *path)
{
	char	*u;

	xasprintf(&u, "%s%s", t->base, path);
	return u;
}

/* The call this request is about, as store_call() takes it. */
void
tw_call_in(const struct tw *t, struct call_in *c, const char *from,
    const char *to, const char *direction)
{
	memset(c, 0, sizeof(*c));
	c->provider = "twilio";
	c->call_id = tw_get(t, "CallSid");
	c->org = t->h.org_id;
	c->direction = direction;
	c->from = from;
	c->to = to;
	c->status = tw_get(t, "CallStatus");
}
