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

static volatile sig_atomic_t	 deliver_stop;
static struct pressure		 deliver_psi = { "/proc/pressure/cpu", 0, 0 };
static int			 deliver_yields;	/* PSI readable */
static int			 deliver_yielding;
static int			 deliver_held;		/* events waited */
static long long		 deliver_yield_us;	/* decided then */

static void
deliver_sig(int sig)
{
	(void)sig;
	deliver_stop = 1;
}

/*
 * The sockets curl wants watched, and when it wants its timeouts: so
 * each wakeup drives only the transfers whose sockets are ready
 * (curl_multi_socket_action), where curl_multi_perform() checks every
 * transfer in flight, a poll(2) each, up to DELIVER_INFLIGHT a wakeup.
 */
static struct pollfd	*deliver_pfd, *deliver_ready;
static int		 deliver_npfd, deliver_pfdcap, deliver_readycap;
static long long	 deliver_timer_us = -1;

static int
deliver_sock(CURL *e, curl_socket_t s, int what, void *arg, void *sp)
{
	int	 i;

	(void)e;
	(void)arg;
	(void)sp;
	for (i = 0; i < deliver_npfd && deliver_pfd[i].fd != s; i++)
		;
	if (what == CURL_POLL_REMOVE) {
		if (i < deliver_npfd)
			deliver_pfd[i] = deliver_pfd[--deliver_npfd];
		return 0;
	}
	if (i == deliver_npfd) {
		if (deliver_npfd == deliver_pfdcap) {
			deliver_pfdcap = deliver_pfdcap * 2 + 16;
			deliver_pfd = xreallocarray(deliver_pfd,
			    (size_t)deliver_pfdcap, sizeof(*deliver_pfd));
		}
		deliver_pfd[deliver_npfd++].fd = s;
	}
	deliver_pfd[i].events = (short)((what & CURL_POLL_IN ? POLLIN : 0) |
	    (what & CURL_POLL_OUT ? POLLOUT : 0));
	deliver_pfd[i].revents = 0;
	return 0;
}

static int
deliver_timer(CURLM *m, long ms, void *arg)
{
	(void)m;
	(void)arg;
	deliver_timer_us = ms < 0 ? -1 : util_now_us() + ms * 1000LL;
	return 0;
}

/* curl's timeout, if it is due: new transfers start, slow ones end. */
static void
deliver_due(CURLM *m)
{
	int	 left;

	if (deliver_timer_us != -1 && util_now_us() >= deliver_timer_us) {
		deliver_timer_us = -1;
		(void)curl_multi_socket_action(m, CURL_SOCKET_TIMEOUT, 0,
		    &left);
	}
}

/* Wait up to ms (less if curl's timeout comes first), then drive. */
static void
deliver_wait(CURLM *m, int ms)
{
	struct pollfd	*ready;
	long long	 t;
	int		 i, k, nready = 0, left, ev;

	if (deliver_timer_us != -1) {
		t = (deliver_timer_us - util_now_us() + 999) / 1000;
		if (t < ms)
			ms = t < 0 ? 0 : (int)t;
	}
	if (poll(deliver_pfd, (nfds_t)deliver_npfd, ms) > 0) {
		/* curl changes the set as it goes: act on a copy */
		if (deliver_readycap < deliver_pfdcap) {
			deliver_readycap = deliver_pfdcap;
			deliver_ready = xreallocarray(deliver_ready,
			    (size_t)deliver_readycap, sizeof(*deliver_ready));
		}
		ready = deliver_ready;
		for (i = 0; i < deliver_npfd; i++)
			if (deliver_pfd[i].revents != 0)
				ready[nready++] = deliver_pfd[i];
		for (k = 0; k < nready; k++) {
			ev = (ready[k].revents & (POLLIN | POLLHUP) ?
			    CURL_CSELECT_IN : 0) | (ready[k].revents & POLLOUT ?
			    CURL_CSELECT_OUT : 0) | (ready[k].revents &
			    (POLLERR | POLLNVAL) ? CURL_CSELECT_ERR : 0);
			(void)curl_multi_socket_action(m, ready[k].fd, ev,
			    &left);
		}
	}
	deliver_due(m);
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

/* The successes of a round, recorded in one statement. */
struct okbatch {
	struct buf	 ids;
	struct buf	 statuses;
	struct buf	 ms;
	int		 n;
};

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
 * Whether the webhooks' events wait this turn (architecture.md §14: a delivery
 * never delays a provider's answer): while some task waited for a CPU
 * DELIVER_CONTENDED of the last DELIVER_YIELD_MS, and the oldest
 * pending event is younger than [delivery] defer_s.  Past that the
 * sender delivers anyway, oldest first, so a sustained overload delays
 * the deliveries by defer_s, not without end.  1 yes, 0 no, -1 when
 * the database failed.
 */
static int
deliver_yield(struct deliver_stats *st)
{
	struct db_res	 res;
	const char	*p[1], *v;
	char		 secs[24];
	long long	 now = util_now_us();
	double		 share;

	if (!deliver_yields)
		return 0;
	if (now - deliver_yield_us < DELIVER_YIELD_MS * 1000LL)
		return deliver_yielding;
	if (deliver_held)
		st->deferred_ms += (now - deliver_yield_us) / 1000;
	deliver_yield_us = now;
	deliver_yielding = deliver_held = 0;
	if (pressure_sample(&deliver_psi, now, &share) == -1 ||
	    share < DELIVER_CONTENDED)
		return 0;
	snprintf(secs, sizeof(secs), "%lld", conf.delivery.defer_s);
	p[0] = secs;
	if (db_query(sql_young, 1, p, &res) != DB_OK)
		return -1;
	/* none pending (NULL) waits too: there is nothing to take */
	v = db_val(&res, 0, "young");
	deliver_held = v != NULL && strcmp(v, "t") == 0;
	deliver_yielding = v == NULL || deliver_held;
	db_res_free(&res);
	return deliver_yielding;
}

/*
 * Endpoints with DELIVER_PER_ENDPOINT requests in flight, as an array;
 * fl (n transfers) is sorted by endpoint to count them in one pass,
 * once a round with up to DELIVER_INFLIGHT in flight.
 */
static void
deliver_busy(struct xfer **fl, int n, struct buf *b)
{
	int	 i, run;

	qsort(fl, (size_t)n, sizeof(*fl), deliver_by_endpoint);
	buf_reset(b);
	for (i = 0; i < n; i += run) {
		for (run = 1; i + run < n && strcmp(fl[i + run]->endpoint,
		    fl[i]->endpoint) == 0; run++)
			;
		if (run >= DELIVER_PER_ENDPOINT)
			ctl_arr(b, fl[i]->endpoint);
	}
	(void)ctl_arr_end(b);
}

/*
 * Send what is due until stopped (once: until nothing is pending, due
 * or in flight).  0, or -1 when the database failed.
 */
int
deliver_run(int once, struct deliver_stats *st)
{
	struct xfer	*fl[DELIVER_INFLIGHT];
	struct buf	 busy;
	struct batch	 b;
	struct db_res	 res;
	struct deliver_cols dc;
	CURLM		*m = NULL;
	CURLMsg		*msg;
	struct xfer	*x;
	const char	*p[2];
	char		 lim[16], tmo[24], why[128];
	long		 status;
	long long	 slow_ms, recovered_us = 0, claimed_us = 0;
	double		 share;
	int		 n = 0, i, k, left, rc = -1, claimed = 0, took, hold;
	int		 since_analyze = 0;
	struct okbatch	 ok;
	struct sigaction sa;

	memset(st, 0, sizeof(*st));
	memset(&b, 0, sizeof(b));
	if (xfer_schedule(conf.delivery.retry_schedule) == -1)
		return -1;
	/* slow: no answer within half the timeout, at most a second */
	slow_ms = conf.delivery.timeout_s * 500;
	if (slow_ms > DELIVER_SLOW_MS)
		slow_ms = DELIVER_SLOW_MS;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = deliver_sig;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	/*
	 * The first sample, and whether there is any (psi=0: none); the
	 * first reading is a DELIVER_YIELD_MS later, and until then the
	 * events wait, as a reading over a shorter time says little.
	 */
	deliver_yields = 0;
	if (!once && conf.delivery.defer_s > 0) {
		deliver_yield_us = util_now_us();
		if (pressure_sample(&deliver_psi, deliver_yield_us,
		    &share) == 0)
			deliver_yields = deliver_yielding = 1;
		else
			log_warnx("deliveries: %s unreadable: deliveries do "
			    "not wait while the CPU is contended",
			    deliver_psi.path);
	}
	buf_init(&busy);
	memset(&ok, 0, sizeof(ok));
	buf_init(&ok.ids);
	buf_init(&ok.statuses);
	buf_init(&ok.ms);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 ||
	    (m = curl_multi_init()) == NULL)
		goto done;
	(void)curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, deliver_sock);
	(void)curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, deliver_timer);
	/*
	 * Connections outlive a batch: by default curl keeps four idle per
	 * transfer still added, so as a batch ended most were closed, and
	 * the next batch made them again (a TLS handshake each, to an https
	 * endpoint).
	 */
	(void)curl_multi_setopt(m, CURLMOPT_MAXCONNECTS,
	    (long)DELIVER_INFLIGHT);
	snprintf(tmo, sizeof(tmo), "%lld", conf.delivery.timeout_s);
	while (!deliver_stop || n > 0 || b.active) {
		took = 0;
		/*
		 * A dead sender's claims, now and then: it may have died
		 * just before this one started (systemd restarts it at once).
		 */
		if (!deliver_stop && util_now_us() - recovered_us > 5000000LL) {
			p[0] = tmo;
			if (db_query(sql_recover, 1, p, &res) != DB_OK)
				goto done;
			st->recovered += atoi(res.cmdtuples);
			db_res_free(&res);
			recovered_us = util_now_us();
		}
		/* the webhooks' events, a batch at a time */
		if (!deliver_stop && !b.active) {
			if ((hold = deliver_yield(st)) == -1 || (!hold &&
			    (took = batch_take(&b)) == -1))
				goto done;
		}
		if (b.active) {
			if (deliver_stop)	/* what is not sent waits */
				for (i = 0; i < b.nit; i++)
					batch_queue(&b, i);
			batch_start(&b, m, fl, &n);
			if (batch_decided(&b, fl, n, slow_ms)) {
				if ((k = batch_finish(&b, m, fl, &n, st)) == -1)
					goto done;
				/*
				 * The queue grew fast: fresh statistics, or
				 * the claim is planned for the table it was
				 * (sql/011).
				 */
				if ((since_analyze += k) > 5000) {
					if (db_query("ANALYZE deliveries", 0,
					    NULL, NULL) != DB_OK)
						goto done;
					since_analyze = 0;
				}
				continue;
			}
		}
		/*
		 * The queue: each round while it gives, else now and then
		 * (it is for retries, what waits behind them, and pings).
		 */
		if (!deliver_stop && n < DELIVER_INFLIGHT && (claimed > 0 ||
		    util_now_us() - claimed_us > 100000LL)) {
			claimed = 0;
			claimed_us = util_now_us();
			snprintf(lim, sizeof(lim), "%d", DELIVER_INFLIGHT - n);
			deliver_busy(fl, n, &busy);
			p[0] = lim;
			p[1] = buf_cstr(&busy);
			if (db_query(sql_claim, 2, p, &res) != DB_OK)
				goto done;
			deliver_cols(&res, &dc);
			for (i = 0; i < res.nrows; i++) {
				claimed++;
				if ((x = deliver_claimed(m, &res, &dc, i, why,
				    sizeof(why))) != NULL) {
					fl[n++] = x;
					continue;
				}
				/* cannot be signed: as a failed attempt */
				x = xcalloc(1, sizeof(*x));
				snprintf(x->id, sizeof(x->id), "%s",
				    db_get(&res, i, dc.id));
				x->attempts = atoi(db_get(&res, i,
				    dc.attempts));
				x->start_us = util_now_us();
				snprintf(x->err, sizeof(x->err), "%s", why);
				(void)deliver_record(x, CURLE_FAILED_INIT, 0,
				    st, &ok);
				free(x);
			}
			db_res_free(&res);
		}
		if (n == 0) {
			if (b.active)
				continue;
			if (once && claimed == 0 && took == 0)
				break;
			if (claimed == 0 && took == 0)
				deliver_wait(m, DELIVER_IDLE_MS);
			continue;
		}
		deliver_due(m);
		while ((msg = curl_multi_info_read(m, &left)) != NULL) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			(void)curl_easy_getinfo(msg->easy_handle,
			    CURLINFO_PRIVATE, (char **)&x);
			status = 0;
			(void)curl_easy_getinfo(msg->easy_handle,
			    CURLINFO_RESPONSE_CODE, &status);
			k = 0;
			b.dirty = 1;	/* an endpoint has room again */
			if (x->item != NULL)
				batch_done(&b, x, msg->data.result, status);
			else
				k = deliver_record(x, msg->data.result, status,
				    st, &ok);
			for (i = 0; i < n; i++)
				if (fl[i] == x)
					break;
			fl[i] = fl[--n];
			xfer_free(m, x);
			if (k == -1)
				goto done;
		}
		if (ok_flush(&ok, st) == -1)
			goto done;
		if (n > 0)
			deliver_wait(m, n < DELIVER_INFLIGHT || b.active ? 20 :
			    DELIVER_IDLE_MS);
	}
	rc = 0;
done:
	/* what was delivered is said even if the database failed since */
	(void)ok_flush(&ok, st);
	buf_free(&ok.ids);
	buf_free(&ok.statuses);
	buf_free(&ok.ms);
	for (i = 0; i < n; i++)
		xfer_free(m, fl[i]);
	batch_free(&b);
	if (m != NULL)
		curl_multi_cleanup(m);
	curl_global_cleanup();
	free(deliver_pfd);
	free(deliver_ready);
	deliver_pfd = deliver_ready = NULL;
	deliver_npfd = deliver_pfdcap = deliver_readycap = 0;
	deliver_timer_us = -1;
	deliver_psi.at_us = deliver_psi.total_us = 0;
	deliver_yielding = deliver_held = 0;
	deliver_yield_us = 0;
	xfer_secrets_free();
	buf_free(&busy);
	return rc;
}
