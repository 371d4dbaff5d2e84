/*
 * batch.c: the sender's batches (deliver.c, architecture.md §14).
 *
 * Pending events are taken a batch at a time by one sender (an
 * advisory lock its session keeps) and sent to every endpoint that
 * wants them at once, from memory.  Within a batch an endpoint gets a
 * subject's events one after the other (a chain: the next goes when the
 * one before was answered 2xx); a subject that already waits in the
 * endpoint's queue (deliveries pending, sending or retry) joins it.
 * A failed attempt goes to the queue to be retried, and the rest of its
 * chain behind it; an endpoint that answers 410 is disabled and all it
 * has left waits in the queue; an endpoint with no answer within the
 * slow time has its attempts go on as the queue's ("sending" rows) and
 * its events go through the queue for BATCH_TRIP_S.
 *
 * Once every item is answered or queued, one statement records the
 * batch: a delivery row per event and endpoint, the endpoints'
 * counters, and the events off delivery_pending.  A sender that dies
 * before has its batch taken again; each event and endpoint has one
 * webhook-id (msg_ and the MD5 of the two ids), so the receiver sees
 * the same id again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "extern.h"
#include "ctl.h"
#include "deliver.h"

#define BATCH_TRIP_S	30	/* a slow endpoint's, through the queue */
#define BATCH_TRIPS	256

/*
 * The batch is one sender's: the first to take the lock keeps it for
 * its session (a CASE, so a held lock is not taken twice).
 */
static const char *const sql_batch_lock =
	"SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_locks WHERE locktype = "
	"'advisory' AND pid = pg_backend_pid() AND classid = 0 AND objid = "
	"7415301 AND objsubid = 1 AND granted) THEN true ELSE "
	"pg_try_advisory_lock(7415301) END AS mine";
/*
 * Up to 1000 pending events, oldest first, each with every enabled
 * endpoint of its organization that wants its type (or none: the
 * event still leaves delivery_pending), and whether the subject
 * already waits in that endpoint's queue.  Each event is looked up by
 * its id (LATERAL ... OFFSET 0): as a join, the planner may scan every
 * event kept, for a batch it expects to be 1000 long and under load is
 * a few.  So is the message an event names, which th_event_body()
 * sends only if it is the event's organization's.
 */
static const char *const sql_batch =
	"WITH p AS (SELECT event_id FROM delivery_pending ORDER BY event_id "
	"LIMIT 1000), v AS MATERIALIZED (SELECT (l.v).id, (l.v)."
	"organization_id, (l.v).type, (l.v).subject, th_event_body(l.v, "
	"n.m) AS body FROM p CROSS JOIN LATERAL (SELECT v FROM "
	"delivery_events v WHERE v.id = p.event_id OFFSET 0) l LEFT JOIN "
	"LATERAL (SELECT m FROM messages m WHERE m.id = (l.v).message_ref "
	"OFFSET 0) n ON true) SELECT v.id AS event_id, e.id AS endpoint_id, "
	"'msg_' || md5(v.id || '/' || e.id) AS msg_id, v.subject, CASE WHEN "
	"e.id IS NOT NULL THEN v.body END AS body, e.url, e.secret_sealed, "
	"CASE WHEN e.previous_until > now() THEN e.previous_sealed END AS "
	"previous_sealed, EXISTS (SELECT 1 FROM deliveries d WHERE "
	"d.endpoint_id = e.id AND d.subject = v.subject AND d.state IN "
	"('pending', 'sending', 'retry')) AS queued FROM v LEFT JOIN "
	"endpoints e ON e.organization_id = v.organization_id AND e.enabled "
	"AND (e.events IS NULL OR v.type = ANY (e.events)) ORDER BY v.id, "
	"e.id";
/*
 * What became of a batch, in one statement: each endpoint of the batch
 * locked, with its counters; a delivery row each, in event order
 * (delivered; retry or dead; pending behind them; sending for an
 * attempt still running, whose id comes back), only for the endpoints
 * locked (one removed meanwhile has none: sql/014); and the events off
 * delivery_pending.
 */
static const char *const sql_batch_done =
	"WITH r AS (SELECT event_id, endpoint_id, msg_id, state, attempts, "
	"delay, status, error, ord FROM unnest($1::bigint[], $2::uuid[], "
	"$3::text[], $4::text[], $5::int[], $6::float8[], $7::int[], "
	"$8::text[]) WITH ORDINALITY AS u(event_id, endpoint_id, msg_id, "
	"state, attempts, delay, status, error, ord)), s AS (UPDATE "
	"endpoints e SET ok_total = e.ok_total + x.ok, failed_total = "
	"e.failed_total + x.failed, latency_ms_sum = e.latency_ms_sum + "
	"x.ms, enabled = e.enabled AND NOT x.gone, disabled_reason = CASE "
	"WHEN x.gone THEN 'answered 410 Gone at ' || th_iso(now()) ELSE "
	"e.disabled_reason END FROM unnest($9::uuid[], $10::int[], "
	"$11::int[], $12::bigint[], $13::bool[]) AS x(id, ok, failed, ms, "
	"gone) WHERE e.id = x.id RETURNING e.id), i AS (INSERT INTO "
	"deliveries (endpoint_id, organization_id, msg_id, type, subject, "
	"event_id, state, attempts, next_attempt_at, claimed_at, "
	"last_status, last_error, created_at, delivered_at) SELECT "
	"r.endpoint_id, v.organization_id, r.msg_id, v.type, v.subject, "
	"r.event_id, r.state, r.attempts, now() + make_interval(secs => "
	"r.delay), CASE WHEN r.state = 'sending' THEN now() END, r.status, "
	"r.error, v.created_at, CASE WHEN r.state = 'delivered' THEN now() "
	"END FROM r JOIN delivery_events v ON v.id = r.event_id JOIN s ON "
	"s.id = r.endpoint_id ORDER BY r.ord RETURNING id, event_id, "
	"endpoint_id, state), d AS (DELETE FROM delivery_pending WHERE "
	"event_id = ANY ($14::bigint[])) SELECT id, event_id, endpoint_id "
	"FROM i WHERE state = 'sending'";
/* Endpoints that were slow lately: the queue is theirs. */
static struct {
	char		 id[40];
	long long	 until_us;
} batch_trips[BATCH_TRIPS];

static int
batch_tripped(const char *id)
{
	long long	 now = util_now_us();
	int		 i;

	for (i = 0; i < BATCH_TRIPS; i++)
		if (batch_trips[i].until_us > now &&
		    strcmp(batch_trips[i].id, id) == 0)
			return 1;
	return 0;
}

static void
batch_trip(const char *id)
{
	long long	 now = util_now_us();
	int		 i, oldest = 0;

	for (i = 0; i < BATCH_TRIPS; i++) {
		if (strcmp(batch_trips[i].id, id) == 0 ||
		    batch_trips[i].until_us <= now) {
			oldest = i;
			break;
		}
		if (batch_trips[i].until_us <
		    batch_trips[oldest].until_us)
			oldest = i;
	}
	snprintf(batch_trips[oldest].id, sizeof(batch_trips[oldest].id),
	    "%s", id);
	batch_trips[oldest].until_us = now + BATCH_TRIP_S * 1000000LL;
}

static struct batch	*batch_sort_b;

static int
batch_same_subject(struct batch *b, int i, int j)
{
	return b->it[i].ep == b->it[j].ep && strcmp(db_get(&b->res,
	    b->it[i].row, b->c.subject), db_get(&b->res, b->it[j].row,
	    b->c.subject)) == 0;
}

/* Items by endpoint, subject, event: each subject's chain. */
static int
batch_by_subject(const void *a, const void *b)
{
	const struct ditem *x = &batch_sort_b->it[*(const int *)a];
	const struct ditem *y = &batch_sort_b->it[*(const int *)b];
	int		 c;

	if (x->ep != y->ep)
		return x->ep < y->ep ? -1 : 1;
	if ((c = strcmp(db_get(&batch_sort_b->res, x->row,
	    batch_sort_b->c.subject), db_get(&batch_sort_b->res, y->row,
	    batch_sort_b->c.subject))) != 0)
		return c;
	return x->row < y->row ? -1 : x->row > y->row;
}

/* Item i and what follows it for its endpoint and subject: the queue's. */
void
batch_queue(struct batch *b, int i)
{
	for (; i != -1; i = b->it[i].next)
		if (b->it[i].state == DI_WAIT || b->it[i].state == DI_READY) {
			b->it[i].state = DI_QUEUE;
			b->open--;
		}
}

/* All an endpoint has not been sent in this batch, queued. */
static void
batch_queue_ep(struct batch *b, int ep)
{
	int	 i;

	for (i = 0; i < b->nit; i++)
		if (b->it[i].ep == ep)
			batch_queue(b, i);
}

/*
 * Take a batch of pending events: 1 when there is one (b->active),
 * 0 when none is pending or another sender has them, -1 on error.
 */
int
batch_take(struct batch *b)
{
	struct db_res	 res;
	int		*ord = NULL, i, k, mine;
	const char	*id;

	memset(b, 0, sizeof(*b));
	if (db_query(sql_batch_lock, 0, NULL, &res) != DB_OK)
		return -1;
	mine = res.nrows == 1 && strcmp(db_val(&res, 0, "mine"), "t") == 0;
	db_res_free(&res);
	if (!mine)
		return 0;
	if (db_query(sql_batch, 0, NULL, &b->res) != DB_OK)
		return -1;
	if (b->res.nrows == 0) {
		db_res_free(&b->res);
		return 0;
	}
	b->c.event = db_col(&b->res, "event_id");
	b->c.endpoint = db_col(&b->res, "endpoint_id");
	b->c.msgid = db_col(&b->res, "msg_id");
	b->c.subject = db_col(&b->res, "subject");
	b->c.body = db_col(&b->res, "body");
	b->c.url = db_col(&b->res, "url");
	b->c.secret = db_col(&b->res, "secret_sealed");
	b->c.previous = db_col(&b->res, "previous_sealed");
	b->c.queued = db_col(&b->res, "queued");
	b->it = xcalloc((size_t)b->res.nrows, sizeof(*b->it));
	b->ep = xcalloc((size_t)b->res.nrows, sizeof(*b->ep));
	for (i = 0; i < b->res.nrows; i++) {
		if ((id = db_get(&b->res, i, b->c.endpoint)) == NULL)
			continue;	/* an event nobody wants */
		for (k = 0; k < b->nep; k++)
			if (strcmp(b->ep[k].id, id) == 0)
				break;
		if (k == b->nep)
			b->ep[b->nep++].id = id;
		b->it[b->nit].row = i;
		b->it[b->nit].ep = k;
		b->it[b->nit].next = -1;
		b->it[b->nit].state = DI_WAIT;
		b->nit++;
	}
	/* chain each endpoint's subject in event order; heads are ready */
	if (b->nit > 0) {
		ord = xcalloc((size_t)b->nit, sizeof(*ord));
		for (i = 0; i < b->nit; i++)
			ord[i] = i;
		batch_sort_b = b;
		qsort(ord, (size_t)b->nit, sizeof(*ord), batch_by_subject);
		for (i = 0; i < b->nit; i++) {
			if (i > 0 && batch_same_subject(b, ord[i - 1],
			    ord[i]))
				b->it[ord[i - 1]].next = ord[i];
			else
				b->it[ord[i]].state = DI_READY;
		}
		free(ord);
	}
	b->open = b->nit;
	for (i = 0; i < b->nit; i++) {
		if (b->it[i].state != DI_READY)
			continue;
		/* behind what waits in the queue, or for a tripped one */
		if (strcmp(db_get(&b->res, b->it[i].row, b->c.queued), "t") ==
		    0 || batch_tripped(b->ep[b->it[i].ep].id))
			batch_queue(b, i);
	}
	b->active = 1;
	b->dirty = 1;
	return 1;
}

/*
 * Send what of the batch may go now: ready items, up to
 * DELIVER_INFLIGHT in all and DELIVER_PER_ENDPOINT to an endpoint
 * (the queue's requests counted).  An item that cannot be signed
 * fails as an attempt would.
 */
void
batch_start(struct batch *b, CURLM *m, struct xfer **fl, int *n)
{
	struct dsend	 s;
	struct ditem	*d;
	struct dep	*e;
	struct xfer	*x;
	char		 why[128];
	int		 i, k;

	/* only when an item became ready or a request ended */
	if (b->open == 0 || !b->dirty)
		return;
	b->dirty = 0;
	for (k = 0; k < b->nep; k++)
		b->ep[k].queue_flight = 0;
	for (i = 0; i < *n; i++) {
		if (fl[i]->item != NULL)
			continue;
		for (k = 0; k < b->nep; k++)
			if (strcmp(fl[i]->endpoint, b->ep[k].id) == 0) {
				b->ep[k].queue_flight++;
				break;
			}
	}
	for (i = 0; i < b->nit && *n < DELIVER_INFLIGHT; i++) {
		d = &b->it[i];
		e = &b->ep[d->ep];
		if (d->state != DI_READY ||
		    e->inflight + e->queue_flight >= DELIVER_PER_ENDPOINT)
			continue;
		memset(&s, 0, sizeof(s));
		s.endpoint = e->id;
		s.msgid = db_get(&b->res, d->row, b->c.msgid);
		s.body = db_get(&b->res, d->row, b->c.body);
		s.url = db_get(&b->res, d->row, b->c.url);
		s.secret = db_get(&b->res, d->row, b->c.secret);
		s.previous = db_get(&b->res, d->row, b->c.previous);
		s.attempts = 1;
		b->open--;
		if ((x = xfer_start(m, &s, why, sizeof(why))) == NULL) {
			d->state = DI_FAILED;
			d->why = xstrdup(why);
			d->dead = xfer_nsched == 0;
			e->failed++;
			batch_queue_ep(b, d->ep);
			continue;
		}
		x->item = d;
		d->x = x;
		d->state = DI_FLIGHT;
		e->inflight++;
		fl[(*n)++] = x;
	}
}

/* What became of a batch's request x. */
void
batch_done(struct batch *b, struct xfer *x, CURLcode cc, long status)
{
	struct ditem	*d = x->item;
	struct dep	*e = &b->ep[d->ep];
	char		 why[CURL_ERROR_SIZE + 64];

	d->x = NULL;
	e->inflight--;
	d->ms = (util_now_us() - x->start_us) / 1000;
	e->ms += d->ms;
	d->status = cc == CURLE_OK ? status : 0;
	if (cc == CURLE_OK && status >= 200 && status < 300) {
		d->state = DI_OK;
		e->ok++;
		if (d->next != -1 && b->it[d->next].state == DI_WAIT)
			b->it[d->next].state = DI_READY;
		return;
	}
	xfer_why(x, cc, status, why, sizeof(why));
	d->state = DI_FAILED;
	d->why = xstrdup(why);
	e->failed++;
	if (cc == CURLE_OK && status == 410)
		e->gone = 1;
	d->dead = e->gone || xfer_nsched == 0;
	/*
	 * What follows for the subject waits behind it in the queue; a
	 * disabled endpoint's events all wait there to be enabled again.
	 */
	if (e->gone)
		batch_queue_ep(b, d->ep);
	else
		batch_queue(b, d->next);
}

/*
 * Whether the batch is decided: nothing left to send, and what is in
 * flight is an endpoint's that has been slow (its attempts go on as
 * the queue's).  An endpoint is slow once a request of the batch has
 * had no answer for slow_ms.
 */
int
batch_decided(struct batch *b, struct xfer **fl, int n, long long slow_ms)
{
	long long	 now = util_now_us();
	int		 i, decided = 1;
	struct ditem	*d;

	for (i = 0; i < n; i++) {
		if ((d = fl[i]->item) == NULL || b->ep[d->ep].slow)
			continue;
		if ((now - fl[i]->start_us) / 1000 >= slow_ms) {
			b->ep[d->ep].slow = 1;
			batch_trip(b->ep[d->ep].id);
			batch_queue_ep(b, d->ep);
		} else
			decided = 0;
	}
	return decided && b->open == 0;
}

void
batch_free(struct batch *b)
{
	int	 i;

	for (i = 0; i < b->nit; i++)
		free(b->it[i].why);
	free(b->it);
	free(b->ep);
	if (b->active)
		db_res_free(&b->res);
	memset(b, 0, sizeof(*b));
}

enum { BA_EVENT, BA_ENDPOINT, BA_MSGID, BA_STATE, BA_ATTEMPTS, BA_DELAY,
	BA_STATUS, BA_ERROR, BA_EP, BA_OK, BA_FAILED, BA_MS, BA_GONE,
	BA_EVENTS, BA_N };

/*
 * Record the decided batch in one statement (sql_batch_done).  Its
 * requests still in flight go on as the queue's, with the ids of the
 * "sending" rows made for them.  Returns the rows queued, or -1.
 */
int
batch_finish(struct batch *b, CURLM *m, struct xfer **fl, int *n,
    struct deliver_stats *st)
{
	static const char *const state[] = { "pending", "pending", "sending",
	    "delivered", "retry", "pending" };
	struct buf	 a[BA_N];
	const char	*p[BA_N], *ev, *last = "";
	struct ditem	*d;
	struct dep	*e;
	struct db_res	 res;
	char		 num[32];
	int		 i, k, rc = -1, queued = 0, c_id, c_event, c_endpoint;

	for (k = 0; k < BA_N; k++)
		buf_init(&a[k]);
	for (i = 0; i < b->res.nrows; i++) {
		ev = db_get(&b->res, i, b->c.event);
		if (strcmp(ev, last) != 0)
			ctl_arr(&a[BA_EVENTS], ev);
		last = ev;
	}
	for (i = 0; i < b->nit; i++) {
		d = &b->it[i];
		ctl_arr(&a[BA_EVENT], db_get(&b->res, d->row, b->c.event));
		ctl_arr(&a[BA_ENDPOINT], b->ep[d->ep].id);
		ctl_arr(&a[BA_MSGID], db_get(&b->res, d->row, b->c.msgid));
		ctl_arr(&a[BA_STATE], d->state == DI_FAILED && d->dead ?
		    "dead" : state[d->state]);
		ctl_arr(&a[BA_ATTEMPTS], d->state == DI_FLIGHT ||
		    d->state == DI_OK || d->state == DI_FAILED ? "1" : "0");
		snprintf(num, sizeof(num), "%.3f", d->state == DI_FAILED &&
		    !d->dead ? xfer_delay(1) : 0.0);
		ctl_arr(&a[BA_DELAY], num);
		snprintf(num, sizeof(num), "%ld", d->status);
		ctl_arr(&a[BA_STATUS], d->status != 0 ? num : NULL);
		ctl_arr(&a[BA_ERROR], d->why);
		if (d->state == DI_WAIT || d->state == DI_READY ||
		    d->state == DI_QUEUE || d->state == DI_FLIGHT)
			queued++;
	}
	/* every endpoint of the batch: its rows are written if locked */
	for (k = 0; k < b->nep; k++) {
		e = &b->ep[k];
		ctl_arr(&a[BA_EP], e->id);
		snprintf(num, sizeof(num), "%d", e->ok);
		ctl_arr(&a[BA_OK], num);
		snprintf(num, sizeof(num), "%d", e->failed);
		ctl_arr(&a[BA_FAILED], num);
		snprintf(num, sizeof(num), "%lld", e->ms);
		ctl_arr(&a[BA_MS], num);
		ctl_arr(&a[BA_GONE], e->gone ? "t" : "f");
	}
	for (k = 0; k < BA_N; k++)
		p[k] = ctl_arr_end(&a[k]);
	if (db_query(sql_batch_done, BA_N, p, &res) != DB_OK)
		goto fail;
	/* the attempts still running: now the queue's "sending" rows */
	c_id = db_col(&res, "id");
	c_event = db_col(&res, "event_id");
	c_endpoint = db_col(&res, "endpoint_id");
	for (i = 0; i < b->nit; i++) {
		d = &b->it[i];
		if (d->state != DI_FLIGHT)
			continue;
		for (k = 0; k < res.nrows; k++)
			if (strcmp(db_get(&res, k, c_event), db_get(&b->res,
			    d->row, b->c.event)) == 0 && strcmp(db_get(&res, k,
			    c_endpoint), b->ep[d->ep].id) == 0)
				break;
		if (k < res.nrows) {
			snprintf(d->x->id, sizeof(d->x->id), "%s",
			    db_get(&res, k, c_id));
			d->x->item = NULL;
			continue;
		}
		/* its endpoint was removed meanwhile */
		for (k = 0; k < *n; k++)
			if (fl[k] == d->x)
				break;
		fl[k] = fl[--(*n)];
		xfer_free(m, d->x);
	}
	db_res_free(&res);
	for (i = 0; i < b->nit; i++) {
		d = &b->it[i];
		if (d->state == DI_OK)
			st->delivered++;
		else if (d->state == DI_FAILED && d->dead)
			st->dead++;
		else if (d->state == DI_FAILED)
			st->retrying++;
	}
	for (k = 0; k < b->nep; k++)
		if (b->ep[k].gone) {
			st->disabled++;
			log_warnx("endpoint %s answered 410 Gone: disabled",
			    b->ep[k].id);
		}
	rc = queued;
fail:
	for (k = 0; k < BA_N; k++)
		buf_free(&a[k]);
	batch_free(b);
	return rc;
}

