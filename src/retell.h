/*
 * retell.h: what the Retell provider's files share (retell.c: events,
 * calls, campaigns and call_inbound; retell_verify.c: who may send
 * them).  Not for other modules: they see extern.h.
 */
#ifndef TELEHOOK_RETELL_H
#define TELEHOOK_RETELL_H

/* One Retell request: the event, its call, and the hook's sequence. */
struct rt {
	struct hook	 h;		/* the request, its key, event, owner */
	const char	*event;		/* the event's name */
	const cJSON	*call;		/* the call object, or the root */
	int		 away;		/* the database is away */
};

const char	*rt_str(const cJSON *, const char *);
const cJSON	*rt_obj(const cJSON *, const char *);
const char	*rt_explicit(const struct req *, const cJSON *);
enum db_err	 rt_route(struct req *, const cJSON *, const char *, char **);
const cJSON	*rt_call_of(const cJSON *);
const char	*rt_owner_number(const cJSON *);

#endif
