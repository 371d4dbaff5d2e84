/*
 * hook.c: the sequence every provider request runs (architecture.md §3,
 * §6), written once.  A provider file holds only what is its own: the
 * class of a request, its provider key, the number its owner is found
 * by, what it derives and what it answers.
 *
 *	hook_init -> (key) -> hook_store: route, note, store the event
 *	(a redelivery stops here with its first answer) -> hook_org ->
 *	the provider's work -> hook_keep_answer -> hook_end: log, free
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extern.h"

void
hook_init(struct hook *h, struct req *r, struct resp *p, const char *provider)
{
	memset(h, 0, sizeof(*h));
	h->r = r;
	h->p = p;
	h->provider = provider;
}

/*
 * Route the request by q (h->org_id, unless the caller routed it
 * already), note it for the request's log line, and store its event
 * under h->key.  0: a new event, h->event set; 1: a redelivery (a
 * replay of one is marked a duplicate), h->prior its first answer or
 * NULL; -1: the database failed.
 */
int
hook_store(struct hook *h, const struct route_query *q, const char *type)
{
	struct event_in	 ev;

	if (q != NULL && store_route(q, &h->org_id) != DB_OK)
		return -1;
	req_note(h->r, h->org_id, h->key);
	memset(&ev, 0, sizeof(ev));
	ev.provider = h->provider;
	ev.type = type;
	ev.key = h->key;
	ev.org = h->org_id;
	if (store_event(h->r, &ev, &h->event, &h->prior) != DB_OK)
		return -1;
	if (h->event != 0)
		return 0;
	if (h->r->replay != NULL)
		h->r->replay->duplicate = 1;
	return 1;
}

/* The organization's settings, when the event has one. */
enum db_err
hook_org(struct hook *h)
{
	if (h->org_id == NULL || h->org.id != NULL)
		return DB_OK;
	return store_org_load(h->org_id, &h->org);
}

/*
 * Keep what the provider was answered with the event, for a redelivery;
 * a replay keeps what the provider really got when it was spooled.
 */
enum db_err
hook_keep_answer(struct hook *h, const char *answer)
{
	return store_event_answer(h->event, h->r->replay != NULL &&
	    h->r->replay->answer != NULL ? h->r->replay->answer : answer);
}

/*
 * Free, and turn the provider's rc (0, or -1 when a statement failed)
 * into what the dispatcher acts on: DB_OK, or the cause of the failure,
 * logged (never the request's data).  The cause is the connection's
 * last error, as PQerrorMessage is; a failure that was not the
 * database's is DB_EQUERY, kept as a failed event.
 */
enum db_err
hook_end(struct hook *h, int rc)
{
	enum db_err	 e = DB_OK;

	if (rc == -1) {
		if (h->p->error == NULL)
			log_warnx("%s: %s: %s", h->provider,
			    log_esc(h->key), db_errmsg());
		if ((e = db_last_error()) == DB_OK)
			e = DB_EQUERY;
	}
	free(h->key);
	free(h->org_id);
	free(h->prior);
	store_org_free(&h->org);
	memset(h, 0, sizeof(*h));
	return e;
}
