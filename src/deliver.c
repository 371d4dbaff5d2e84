/*
 * deliver.c: the sender of events to the organizations' own endpoints
 * (architecture.md §14), run by "telehookctl deliveries run" under
 * systemd (telehook-deliver.service).
 *
 * Events are written by triggers in the transaction of the record they
 * tell of (sql/011_delivery.sql).  One sender at a time (an advisory
 * lock) takes the pending events in batches and sends each to every
 * endpoint that wants it at once, straight from memory: the queue is
 * written once per batch, in one statement that records what became of
 * each (delivered, or a delivery row to retry) and takes the events off
 * delivery_pending, so a delivery costs the database one row, not a
 * queued row updated twice.  Within a batch an endpoint gets a
 * subject's (a call's, a message's, a contact's) events one after the
 * other; an event whose subject already waits in the queue for that
 * endpoint joins the queue behind it.
 *
 * The queue (deliveries in state pending or retry) is for what the
 * batch could not do at once: a failed attempt, the events behind it,
 * and the attempts of an endpoint that was slow (no answer within
 * DELIVER_SLOW_MS): those become "sending" rows that the queue's
 * timeout then governs, and the endpoint's events go through the
 * queue for BATCH_TRIP_S (batch.c), so a slow endpoint delays the batch once
 * and then only itself.  From the queue the sender claims
 * what is due, at most one open delivery per subject and endpoint,
 * oldest first, so an endpoint sees each call's events in order even
 * across retries.  It sends up to DELIVER_INFLIGHT requests at once
 * through one curl multi handle (at most DELIVER_PER_ENDPOINT to one
 * endpoint).
 *
 * Each attempt is signed afresh (webhook-timestamp is now) with the
 * same webhook-id.  Any 2xx delivers; 410 disables the endpoint; any
 * other answer, or none, is retried after the next delay of
 * [delivery] retry_schedule with +-20% jitter, and after the last the
 * delivery is dead (the operator may retry it).  A sender that dies
 * leaves its claims "sending"; they are retried once they are older
 * than any attempt can take, and its batch's events are still pending:
 * they are sent again, with the same webhook-ids (the event's and the
 * endpoint's, hashed).  Delivery is at least once: a receiver
 * deduplicates by webhook-id.
 *
 * While the CPU is contended (pressure.c) the sender takes no new batch
 * until the oldest pending event is [delivery] defer_s old: a delivery
 * never delays a provider's answer, and the sender's nice 19 does not
 * reach its PostgreSQL backend.  "deliveries send" never waits.
 *
 * Against server-side request forgery, every connection goes through
 * egress.c: an address inside the operator's network (loopback, private,
 * link-local, ...) is refused before connect(), unless [delivery]
 * allow_private = yes, so a refused endpoint sees no SYN and its ports
 * cannot be told apart.
 */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <sodium.h>

#include "extern.h"
#include "ctl.h"
#include "deliver.h"

#define DELIVER_IDLE_MS		250
#define DELIVER_YIELD_MS	100	/* the CPU's pressure, sampled */
#define DELIVER_CONTENDED	0.5	/* some task waited half the time */


static const char *const sql_recover =
	"UPDATE deliveries SET state = 'retry', next_attempt_at = now() "
	"WHERE state = 'sending' AND claimed_at < now() - "
	"make_interval(secs => $1::int + 10)";
/* whether the oldest pending event is younger than $1 seconds */
static const char *const sql_young =
	"SELECT (SELECT created_at FROM delivery_events WHERE id = "
	"(SELECT min(event_id) FROM delivery_pending)) > now() - "
	"make_interval(secs => $1::int) AS young";
static const char *const sql_claim =
	"WITH c AS (UPDATE deliveries SET state = 'sending', "
	"attempts = attempts + 1, claimed_at = now() WHERE id IN ("
	"SELECT d.id FROM deliveries d WHERE d.state IN ('pending', "
	"'retry') AND d.next_attempt_at <= now() AND "
	"NOT d.endpoint_id = ANY ($2::uuid[]) AND EXISTS (SELECT 1 FROM "
	"endpoints e WHERE e.id = d.endpoint_id AND e.enabled) AND "
	"NOT EXISTS (SELECT 1 FROM "
	"deliveries p WHERE p.endpoint_id = d.endpoint_id AND "
	"p.subject = d.subject AND p.id < d.id AND p.state IN ('pending', "
	"'sending', 'retry')) ORDER BY d.next_attempt_at, d.id LIMIT $1 "
	"FOR UPDATE OF d SKIP LOCKED) RETURNING id, endpoint_id, msg_id, "
	"event_id, attempts) "
	"SELECT c.id, c.endpoint_id, c.msg_id, (SELECT th_event_body(v) "
	"FROM delivery_events v WHERE v.id = c.event_id) AS body, c.attempts, "
	"e.url, e.secret_sealed, CASE WHEN e.previous_until > now() THEN "
	"e.previous_sealed END AS previous_sealed FROM c JOIN endpoints e ON "
	"e.id = c.endpoint_id ORDER BY c.id";
/* sql_claim's columns, looked up once per claim (deliver_cols) */
struct deliver_cols {
	int	 id, endpoint, msgid, body, attempts, url, secret, previous;
};
/* every success of a round at once: $1 ids, $2 statuses, $3 times */
static const char *const sql_ok =
	"WITH r AS (SELECT id, status, ms FROM unnest($1::bigint[], "
	"$2::int[], $3::bigint[]) AS u(id, status, ms)), d AS (UPDATE "
	"deliveries d SET "
	"state = 'delivered', delivered_at = now(), last_status = r.status, "
	"last_error = NULL FROM r WHERE d.id = r.id RETURNING d.endpoint_id, "
	"r.ms) UPDATE endpoints e SET ok_total = e.ok_total + x.n, "
	"latency_ms_sum = e.latency_ms_sum + x.ms FROM (SELECT endpoint_id, "
	"count(*) AS n, sum(ms) AS ms FROM d GROUP BY endpoint_id) x "
	"WHERE e.id = x.endpoint_id";
static const char *const sql_failed =
	"WITH d AS (UPDATE deliveries SET state = CASE WHEN $5::bool OR "
	"$6::bool THEN 'dead' ELSE 'retry' END, last_status = $2::int, "
	"last_error = $3, next_attempt_at = now() + make_interval(secs => "
	"$4::double precision) WHERE id = $1::bigint RETURNING endpoint_id, "
	"state) UPDATE endpoints SET failed_total = failed_total + 1, "
	"latency_ms_sum = latency_ms_sum + $7::bigint, enabled = CASE WHEN "
	"$5::bool THEN false ELSE enabled END, disabled_reason = CASE WHEN "
	"$5::bool THEN 'answered 410 Gone at ' || th_iso(now()) ELSE "
	"disabled_reason END WHERE id = (SELECT endpoint_id FROM d) "
	"RETURNING (SELECT state FROM d) AS state";

/* The sender's intervals and sizes. */
#define DELIVER_RECOVER_US	(5 * 1000 * 1000) /* a dead sender's claims */
#define DELIVER_CLAIM_US	(100 * 1000)	/* the queue, when it gave none */
#define DELIVER_BUSY_MS		20		/* a wait while requests fly */
#define DELIVER_ANALYZE_ROWS	5000		/* queued before ANALYZE */

static volatile sig_atomic_t	 deliver_stop;

static void
deliver_sig(int sig)
{
	(void)sig;
	deliver_stop = 1;
}

/* The successes of a round, recorded in one statement. */
struct okbatch {
	struct buf	 ids;
	struct buf	 statuses;
	struct buf	 ms;
	int		 n;
};

/* The sender, from deliver_run()'s start to its end. */
struct sender {
	struct deliver_stats *st;
	int		 once;
	CURLM		*m;
	struct xfer	*fl[DELIVER_INFLIGHT];	/* in flight */
	int		 n;
	struct batch	 b;			/* the events' batch */
	struct okbatch	 ok;			/* successes to record */
	struct buf	 busy;			/* endpoints at their limit */
	char		 tmo[24];		/* [delivery] timeout_s */
	long long	 slow_ms;		/* no answer: the queue's */
	long long	 recovered_us, claimed_us;
	int		 claimed, took, since_analyze;
	/*
	 * The sockets curl wants watched, and when it wants its timeouts:
	 * so each wakeup drives only the transfers whose sockets are ready
	 * (curl_multi_socket_action), where curl_multi_perform() checks
	 * every transfer in flight, a poll(2) each, up to DELIVER_INFLIGHT
	 * a wakeup.
	 */
	struct pollfd	*pfd, *ready;
	int		 npfd, pfdcap, readycap;
	long long	 timer_us;
	/* the CPU's pressure (deliver_yield) */
	struct pressure	 psi;
	int		 yields;		/* PSI readable */
	int		 yielding;
	int		 held;			/* events waited */
	long long	 yield_us;		/* decided then */
};

static int
deliver_sock(CURL *e, curl_socket_t fd, int what, void *arg, void *sp)
{
	struct sender	*s = arg;
	int		 i;

	(void)e;
	(void)sp;
	for (i = 0; i < s->npfd && s->pfd[i].fd != fd; i++)
		;
	if (what == CURL_POLL_REMOVE) {
		if (i < s->npfd)
			s->pfd[i] = s->pfd[--s->npfd];
		return 0;
	}
	if (i == s->npfd) {
		if (s->npfd == s->pfdcap) {
			s->pfdcap = s->pfdcap * 2 + 16;
			s->pfd = xreallocarray(s->pfd, (size_t)s->pfdcap,
			    sizeof(*s->pfd));
		}
		s->pfd[s->npfd++].fd = fd;
	}
	s->pfd[i].events = (short)((what & CURL_POLL_IN ? POLLIN : 0) |
	    (what & CURL_POLL_OUT ? POLLOUT : 0));
	s->pfd[i].revents = 0;
	return 0;
}

static int
deliver_timer(CURLM *m, long ms, void *arg)
{
	struct sender	*s = arg;

	(void)m;
	s->timer_us = ms < 0 ? -1 : util_now_us() + ms * 1000LL;
	return 0;
}

/* curl's timeout, if it is due: new transfers start, slow ones end. */
static void
deliver_due(struct sender *s)
{
	int	 left;

	if (s->timer_us != -1 && util_now_us() >= s->timer_us) {
		s->timer_us = -1;
		(void)curl_multi_socket_action(s->m, CURL_SOCKET_TIMEOUT, 0,
		    &left);
	}
}

/* Wait up to ms (less if curl's timeout comes first), then drive. */
static void
deliver_wait(struct sender *s, int ms)
{
	long long	 t;
	int		 i, k, nready = 0, left, ev;

	if (s->timer_us != -1) {
		t = (s->timer_us - util_now_us() + 999) / 1000;
		if (t < ms)
			ms = t < 0 ? 0 : (int)t;
	}
	if (poll(s->pfd, (nfds_t)s->npfd, ms) > 0) {
		/* curl changes the set as it goes: act on a copy */
		if (s->readycap < s->pfdcap) {
			s->readycap = s->pfdcap;
			s->ready = xreallocarray(s->ready, (size_t)s->readycap,
			    sizeof(*s->ready));
		}
		for (i = 0; i < s->npfd; i++)
			if (s->pfd[i].revents != 0)
				s->ready[nready++] = s->pfd[i];
		for (k = 0; k < nready; k++) {
			ev = (s->ready[k].revents & (POLLIN | POLLHUP) ?
			    CURL_CSELECT_IN : 0) | (s->ready[k].revents &
			    POLLOUT ? CURL_CSELECT_OUT : 0) |
			    (s->ready[k].revents & (POLLERR | POLLNVAL) ?
			    CURL_CSELECT_ERR : 0);
			(void)curl_multi_socket_action(s->m, s->ready[k].fd,
			    ev, &left);
		}
	}
	deliver_due(s);
}

static void
deliver_cols(const struct db_res *res, struct deliver_cols *c)
{
	c->id = db_col(res, "id");
	c->endpoint = db_col(res, "endpoint_id");
	c->msgid = db_col(res, "msg_id");
	c->body = db_col(res, "body");
	c->attempts = db_col(res, "attempts");
	c->url = db_col(res, "url");
	c->secret = db_col(res, "secret_sealed");
	c->previous = db_col(res, "previous_sealed");
}

/* Row i of a claim as a transfer added to m. */
static struct xfer *
deliver_claimed(CURLM *m, const struct db_res *res,
    const struct deliver_cols *c, int i, char *why, size_t whysz)
{
	struct dsend	 s;

	s.id = db_get(res, i, c->id);
	s.endpoint = db_get(res, i, c->endpoint);
	s.msgid = db_get(res, i, c->msgid);
	s.body = db_get(res, i, c->body);
	s.url = db_get(res, i, c->url);
	s.secret = db_get(res, i, c->secret);
	s.previous = db_get(res, i, c->previous);
	s.attempts = atoi(db_get(res, i, c->attempts));
	return xfer_start(m, &s, why, whysz);
}

static void
ok_add(struct okbatch *b, const char *id, long status, long long ms)
{
	char	 num[24];

	ctl_arr(&b->ids, id);
	snprintf(num, sizeof(num), "%ld", status);
	ctl_arr(&b->statuses, num);
	snprintf(num, sizeof(num), "%lld", ms);
	ctl_arr(&b->ms, num);
	b->n++;
}

static int
ok_flush(struct okbatch *b, struct deliver_stats *st)
{
	const char	*p[3];
	int		 rc = 0;

	if (b->n == 0)
		return 0;
	p[0] = ctl_arr_end(&b->ids);
	p[1] = ctl_arr_end(&b->statuses);
	p[2] = ctl_arr_end(&b->ms);
	if (db_query(sql_ok, 3, p, NULL) != DB_OK)
		rc = -1;
	else
		st->delivered += b->n;
	buf_reset(&b->ids);
	buf_reset(&b->statuses);
	buf_reset(&b->ms);
	b->n = 0;
	return rc;
}

/* Record what became of x (cc, HTTP status); a success joins ok. */
static int
deliver_record(struct xfer *x, CURLcode cc, long status,
    struct deliver_stats *st, struct okbatch *ok)
{
	const char	*p[7];
	char		 code[16], delay[32], ms[24], why[CURL_ERROR_SIZE + 64];
	struct db_res	 res;
	long long	 took = (util_now_us() - x->start_us) / 1000;
	int		 gone = cc == CURLE_OK && status == 410;
	int		 last = x->attempts > xfer_nsched;

	snprintf(code, sizeof(code), "%ld", status);
	snprintf(ms, sizeof(ms), "%lld", took);
	p[0] = x->id;
	p[1] = cc == CURLE_OK ? code : NULL;
	if (cc == CURLE_OK && status >= 200 && status < 300) {
		ok_add(ok, x->id, status, took);
		return 0;
	}
	xfer_why(x, cc, status, why, sizeof(why));
	snprintf(delay, sizeof(delay), "%.3f", xfer_delay(x->attempts));
	p[2] = why;
	p[3] = delay;
	p[4] = gone ? "true" : "false";
	p[5] = last ? "true" : "false";
	p[6] = ms;
	if (db_query(sql_failed, 7, p, &res) != DB_OK)
		return -1;
	if (gone) {
		st->disabled++;
		log_warnx("endpoint %s answered 410 Gone: disabled",
		    x->endpoint);
	}
	if (res.nrows == 1 && strcmp(db_val(&res, 0, "state"), "dead") == 0) {
		st->dead++;
		if (!gone)
			log_warnx("delivery %s is dead after %d attempts: %s",
			    x->id, x->attempts, why);
	} else
		st->retrying++;
	db_res_free(&res);
	return 0;
}

static int
deliver_by_endpoint(const void *a, const void *b)
{
	return strcmp((*(struct xfer *const *)a)->endpoint,
	    (*(struct xfer *const *)b)->endpoint);
}

/*
 * Whether the webhooks' events wait this turn (architecture.md §14: a
 * delivery never delays a provider's answer): while some task waited for
 * a CPU DELIVER_CONTENDED of the last DELIVER_YIELD_MS, and the oldest
 * pending event is younger than [delivery] defer_s.  Past that the
 * sender delivers anyway, oldest first, so a sustained overload delays
 * the deliveries by defer_s, not without end.  1 yes, 0 no, -1 when
 * the database failed.
 */
static int
deliver_yield(struct sender *s)
{
	struct db_res	 res;
	const char	*p[1], *v;
	char		 secs[24];
	long long	 now = util_now_us();
	double		 share;

	if (!s->yields)
		return 0;
	if (now - s->yield_us < DELIVER_YIELD_MS * 1000LL)
		return s->yielding;
	if (s->held)
		s->st->deferred_ms += (now - s->yield_us) / 1000;
	s->yield_us = now;
	s->yielding = s->held = 0;
	if (pressure_sample(&s->psi, now, &share) == -1 ||
	    share < DELIVER_CONTENDED)
		return 0;
	snprintf(secs, sizeof(secs), "%lld", conf.delivery.defer_s);
	p[0] = secs;
	if (db_query(sql_young, 1, p, &res) != DB_OK)
		return -1;
	/* none pending (NULL) waits too: there is nothing to take */
	v = db_val(&res, 0, "young");
	s->held = v != NULL && strcmp(v, "t") == 0;
	s->yielding = v == NULL || s->held;
	db_res_free(&res);
	return s->yielding;
}

/*
 * Endpoints with DELIVER_PER_ENDPOINT requests in flight, as an array
 * in s->busy; the transfers are sorted by endpoint to count them in one
 * pass, once a round with up to DELIVER_INFLIGHT in flight.
 */
static void
deliver_busy(struct sender *s)
{
	int	 i, run;

	qsort(s->fl, (size_t)s->n, sizeof(*s->fl), deliver_by_endpoint);
	buf_reset(&s->busy);
	for (i = 0; i < s->n; i += run) {
		for (run = 1; i + run < s->n && strcmp(s->fl[i + run]->endpoint,
		    s->fl[i]->endpoint) == 0; run++)
			;
		if (run >= DELIVER_PER_ENDPOINT)
			ctl_arr(&s->busy, s->fl[i]->endpoint);
	}
	(void)ctl_arr_end(&s->busy);
}

/*
 * A dead sender's claims, now and then: it may have died just before
 * this one started (systemd restarts it at once).  0, or -1.
 */
static int
sender_recover(struct sender *s)
{
	struct db_res	 res;
	const char	*p[1] = { s->tmo };

	if (deliver_stop || util_now_us() - s->recovered_us <=
	    DELIVER_RECOVER_US)
		return 0;
	if (db_query(sql_recover, 1, p, &res) != DB_OK)
		return -1;
	s->st->recovered += atoi(res.cmdtuples);
	db_res_free(&res);
	s->recovered_us = util_now_us();
	return 0;
}

/*
 * The webhooks' events, a batch at a time: take one, start what it may
 * send, and record it once it is decided.  1 when a batch was recorded
 * (the round starts again), 0 to go on to the queue, -1 on error.
 */
static int
sender_batch(struct sender *s)
{
	int	 hold, i, k;

	if (!deliver_stop && !s->b.active) {
		if ((hold = deliver_yield(s)) == -1 || (!hold &&
		    (s->took = batch_take(&s->b)) == -1))
			return -1;
	}
	if (!s->b.active)
		return 0;
	if (deliver_stop)	/* what is not sent waits */
		for (i = 0; i < s->b.nit; i++)
			batch_queue(&s->b, i);
	batch_start(&s->b, s->m, s->fl, &s->n);
	if (!batch_decided(&s->b, s->fl, s->n, s->slow_ms))
		return 0;
	if ((k = batch_finish(&s->b, s->m, s->fl, &s->n, s->st)) == -1)
		return -1;
	/* the queue grew fast: fresh statistics, or the claim is planned
	 * for the table it was (sql/011) */
	if ((s->since_analyze += k) > DELIVER_ANALYZE_ROWS) {
		if (db_query("ANALYZE deliveries", 0, NULL, NULL) != DB_OK)
			return -1;
		s->since_analyze = 0;
	}
	return 1;
}

/*
 * The queue: each round while it gives, else every DELIVER_CLAIM_US (it
 * is for retries, what waits behind them, and pings).  0, or -1.
 */
static int
sender_claim(struct sender *s)
{
	struct db_res		 res;
	struct deliver_cols	 dc;
	struct xfer		*x;
	const char		*p[2];
	char			 lim[16], why[128];
	int			 i;

	if (deliver_stop || s->n >= DELIVER_INFLIGHT || (s->claimed == 0 &&
	    util_now_us() - s->claimed_us <= DELIVER_CLAIM_US))
		return 0;
	s->claimed = 0;
	s->claimed_us = util_now_us();
	snprintf(lim, sizeof(lim), "%d", DELIVER_INFLIGHT - s->n);
	deliver_busy(s);
	p[0] = lim;
	p[1] = buf_cstr(&s->busy);
	if (db_query(sql_claim, 2, p, &res) != DB_OK)
		return -1;
	deliver_cols(&res, &dc);
	for (i = 0; i < res.nrows; i++) {
		s->claimed++;
		if ((x = deliver_claimed(s->m, &res, &dc, i, why,
		    sizeof(why))) != NULL) {
			s->fl[s->n++] = x;
			continue;
		}
		/* cannot be signed: as a failed attempt */
		x = xcalloc(1, sizeof(*x));
		snprintf(x->id, sizeof(x->id), "%s", db_get(&res, i, dc.id));
		x->attempts = atoi(db_get(&res, i, dc.attempts));
		x->start_us = util_now_us();
		snprintf(x->err, sizeof(x->err), "%s", why);
		(void)deliver_record(x, CURLE_FAILED_INIT, 0, s->st, &s->ok);
		free(x);
	}
	db_res_free(&res);
	return 0;
}

/* What curl finished: the batch's, or the queue's recorded.  0, or -1. */
static int
sender_reap(struct sender *s)
{
	CURLMsg		*msg;
	struct xfer	*x;
	long		 status;
	int		 i, k, left;

	while ((msg = curl_multi_info_read(s->m, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		(void)curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
		    (char **)&x);
		status = 0;
		(void)curl_easy_getinfo(msg->easy_handle,
		    CURLINFO_RESPONSE_CODE, &status);
		k = 0;
		s->b.dirty = 1;		/* an endpoint has room again */
		if (x->item != NULL)
			batch_done(&s->b, x, msg->data.result, status);
		else
			k = deliver_record(x, msg->data.result, status, s->st,
			    &s->ok);
		for (i = 0; i < s->n; i++)
			if (s->fl[i] == x)
				break;
		s->fl[i] = s->fl[--s->n];
		xfer_free(s->m, x);
		if (k == -1)
			return -1;
	}
	return 0;
}

/* Start: the schedule, the signals, the CPU's pressure, curl.  0 or -1. */
static int
sender_start(struct sender *s, int once, struct deliver_stats *st)
{
	struct sigaction sa;
	double		 share;

	memset(s, 0, sizeof(*s));
	memset(st, 0, sizeof(*st));
	s->st = st;
	s->once = once;
	s->timer_us = -1;
	s->psi.path = "/proc/pressure/cpu";
	buf_init(&s->busy);
	buf_init(&s->ok.ids);
	buf_init(&s->ok.statuses);
	buf_init(&s->ok.ms);
	if (xfer_schedule(conf.delivery.retry_schedule) == -1)
		return -1;
	/* slow: no answer within half the timeout, at most a second */
	s->slow_ms = conf.delivery.timeout_s * 500;
	if (s->slow_ms > DELIVER_SLOW_MS)
		s->slow_ms = DELIVER_SLOW_MS;
	snprintf(s->tmo, sizeof(s->tmo), "%lld", conf.delivery.timeout_s);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = deliver_sig;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	/*
	 * The first sample, and whether there is any (psi=0: none); the
	 * first reading is a DELIVER_YIELD_MS later, and until then the
	 * events wait, as a reading over a shorter time says little.
	 */
	if (!once && conf.delivery.defer_s > 0) {
		s->yield_us = util_now_us();
		if (pressure_sample(&s->psi, s->yield_us, &share) == 0)
			s->yields = s->yielding = 1;
		else
			log_warnx("deliveries: %s unreadable: deliveries do "
			    "not wait while the CPU is contended", s->psi.path);
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 ||
	    (s->m = curl_multi_init()) == NULL)
		return -1;
	(void)curl_multi_setopt(s->m, CURLMOPT_SOCKETFUNCTION, deliver_sock);
	(void)curl_multi_setopt(s->m, CURLMOPT_SOCKETDATA, s);
	(void)curl_multi_setopt(s->m, CURLMOPT_TIMERFUNCTION, deliver_timer);
	(void)curl_multi_setopt(s->m, CURLMOPT_TIMERDATA, s);
	/*
	 * Connections outlive a batch: by default curl keeps four idle per
	 * transfer still added, so as a batch ended most were closed, and
	 * the next batch made them again (a TLS handshake each, to an https
	 * endpoint).
	 */
	(void)curl_multi_setopt(s->m, CURLMOPT_MAXCONNECTS,
	    (long)DELIVER_INFLIGHT);
	return 0;
}

/* The end: what was delivered is said even if the database failed. */
static void
sender_end(struct sender *s)
{
	int	 i;

	(void)ok_flush(&s->ok, s->st);
	buf_free(&s->ok.ids);
	buf_free(&s->ok.statuses);
	buf_free(&s->ok.ms);
	for (i = 0; i < s->n; i++)
		xfer_free(s->m, s->fl[i]);
	batch_free(&s->b);
	if (s->m != NULL)
		curl_multi_cleanup(s->m);
	curl_global_cleanup();
	free(s->pfd);
	free(s->ready);
	xfer_secrets_free();
	buf_free(&s->busy);
}

/*
 * Send what is due until stopped (once: until nothing is pending, due
 * or in flight): each round recovers now and then, takes or finishes a
 * batch of events, claims from the queue, and reaps what curl finished.
 * 0, or -1 when the database failed.
 */
int
deliver_run(int once, struct deliver_stats *st)
{
	struct sender	 s;
	int		 rc = -1;

	if (sender_start(&s, once, st) == -1)
		goto done;
	while (!deliver_stop || s.n > 0 || s.b.active) {
		s.took = 0;
		if (sender_recover(&s) == -1)
			goto done;
		switch (sender_batch(&s)) {
		case -1:
			goto done;
		case 1:
			continue;
		}
		if (sender_claim(&s) == -1)
			goto done;
		if (s.n == 0) {
			if (s.b.active)
				continue;
			if (once && s.claimed == 0 && s.took == 0)
				break;
			if (s.claimed == 0 && s.took == 0)
				deliver_wait(&s, DELIVER_IDLE_MS);
			continue;
		}
		deliver_due(&s);
		if (sender_reap(&s) == -1 || ok_flush(&s.ok, s.st) == -1)
			goto done;
		if (s.n > 0)
			deliver_wait(&s, s.n < DELIVER_INFLIGHT || s.b.active ?
			    DELIVER_BUSY_MS : DELIVER_IDLE_MS);
	}
	rc = 0;
done:
	sender_end(&s);
	return rc;
}
