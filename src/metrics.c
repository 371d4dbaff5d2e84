/*
 * metrics.c: counters shared by every worker of the pool, for GET
 * /metrics in the Prometheus text format.
 *
 * multiwatch starts the workers as separate programs, so the counters
 * live in a file mapped MAP_SHARED by all of them (spool_dir/.metrics)
 * and are added to with atomic operations; any worker can answer a
 * scrape with the whole pool's numbers.  The file outlives the workers,
 * so counters only ever grow, as Prometheus expects of them.  A file of
 * another layout is reset; if it cannot be mapped, a worker counts in
 * private memory and says so.
 */
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "extern.h"

#define METRICS_MAGIC		0x74686d34	/* "thm4" */
#define METRICS_ROUTES		64		/* the last: unknown routes */
#define METRICS_UNKNOWN		(METRICS_ROUTES - 1)

static const struct route	*metrics_rt;	/* metrics_init()'s */
static size_t			 metrics_nrt;

static const int metrics_statuses[] = { 200, 204, 400, 401, 403, 404, 405,
    413, 415, 429, 500, 502, 503, 0 /* any other */ };
#define METRICS_NSTATUS	(sizeof(metrics_statuses) / sizeof(int))

/* Seconds, as Prometheus buckets are written. */
static const char *const metrics_le[] = { "0.001", "0.0025", "0.005",
    "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5" };
static const long long metrics_le_us[] = { 1000, 2500, 5000, 10000, 25000,
    50000, 100000, 250000, 500000, 1000000, 2500000, 5000000 };
#define METRICS_NBUCKETS	(sizeof(metrics_le_us) / sizeof(long long))
#define METRICS_DB_US		(500 * 1000)

static const char *const metrics_causes[REJECT__MAX] = {
	"none",			/* REJECT_NONE */
	"bad_signature",	/* REJECT_BAD_SIGNATURE */
	"expired_timestamp",	/* REJECT_EXPIRED */
	"unknown_route",	/* REJECT_UNKNOWN_ROUTE */
	"method_not_allowed",	/* REJECT_METHOD */
	"too_large",		/* REJECT_TOO_LARGE */
	"bad_content_type",	/* REJECT_CONTENT_TYPE */
	"not_allowed_address",	/* REJECT_ADDRESS */
	"malformed_body",	/* REJECT_MALFORMED */
	"not_found",		/* REJECT_NOT_FOUND */
	"cross_tenant",		/* REJECT_CROSS_TENANT */
};

struct metrics_shm {
	uint32_t	 magic;
	uint32_t	 size;
	uint64_t	 requests[METRICS_ROUTES][METRICS_NSTATUS];
	uint64_t	 latency[METRICS_NBUCKETS + 1];	/* last: +Inf */
	uint64_t	 latency_sum_us;
	uint64_t	 latency_count;
	uint64_t	 rejections[REJECT__MAX];
	uint64_t	 db_errors;
	uint64_t	 spool_writes;
	uint64_t	 failed_events;
	uint64_t	 worker_starts;
	uint64_t	 db_deadlines;		/* round trips given up */
	struct breaker_shm breaker;		/* breaker.c's */
};

static struct metrics_shm	*shm;
static int			 shm_shared;

const char *
metrics_cause_name(enum reject_cause c)
{
	return c < REJECT__MAX ? metrics_causes[c] : "?";
}

static void
metrics_add(uint64_t *p, uint64_t n)
{
	__atomic_fetch_add(p, n, __ATOMIC_RELAXED);
}

static uint64_t
metrics_get(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/*
 * Map the shared counters at path (NULL: private), and count this
 * worker's start.  Never fails: the fallback is private memory.  The
 * route table counted by is the caller's (routes.c's): metrics.c is
 * below the routes that point at its handler.
 */
void
metrics_init(const char *path, const struct route *rt, size_t nrt)
{
	struct stat	 st;
	void		*p = MAP_FAILED;
	int		 fd = -1;

	if (path != NULL &&
	    (fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) != -1 &&
	    flock(fd, LOCK_EX) == 0 && fstat(fd, &st) == 0 &&
	    (st.st_size == sizeof(*shm) ||
	    ftruncate(fd, sizeof(*shm)) == 0))
		p = mmap(NULL, sizeof(*shm), PROT_READ | PROT_WRITE,
		    MAP_SHARED, fd, 0);
	if (p != MAP_FAILED) {
		shm = p;
		shm_shared = 1;
		if (shm->magic != METRICS_MAGIC || shm->size != sizeof(*shm)) {
			memset(shm, 0, sizeof(*shm));	/* another layout */
			shm->size = sizeof(*shm);
			shm->magic = METRICS_MAGIC;
		}
	} else {
		if (path != NULL)
			log_warn("metrics: %s: counting for this worker only",
			    path);
		if ((shm = calloc(1, sizeof(*shm))) == NULL)
			fatal("calloc");
	}
	if (fd != -1) {
		flock(fd, LOCK_UN);
		close(fd);
	}
	metrics_add(&shm->worker_starts, 1);
	breaker_attach(&shm->breaker);
	metrics_rt = rt;
	metrics_nrt = nrt;
}

static size_t
metrics_status_index(int status)
{
	size_t	 i;

	for (i = 0; i + 1 < METRICS_NSTATUS; i++)
		if (metrics_statuses[i] == status)
			return i;
	return METRICS_NSTATUS - 1;
}

/* One answered request: its route (NULL: none), status and latency. */
void
metrics_request(const struct route *rt, int status, long long us)
{
	size_t	 r, b;

	if (shm == NULL)
		return;
	r = rt != NULL && metrics_rt != NULL && rt >= metrics_rt &&
	    (size_t)(rt - metrics_rt) < metrics_nrt &&
	    (size_t)(rt - metrics_rt) < METRICS_UNKNOWN ?
	    (size_t)(rt - metrics_rt) : METRICS_UNKNOWN;
	metrics_add(&shm->requests[r][metrics_status_index(status)], 1);
	for (b = 0; b < METRICS_NBUCKETS && us > metrics_le_us[b]; b++)
		;
	metrics_add(&shm->latency[b], 1);
	metrics_add(&shm->latency_sum_us, (uint64_t)(us < 0 ? 0 : us));
	metrics_add(&shm->latency_count, 1);
}

void
metrics_reject(enum reject_cause c)
{
	if (shm != NULL && c > REJECT_NONE && c < REJECT__MAX)
		metrics_add(&shm->rejections[c], 1);
}

void
metrics_db_error(void)
{
	if (shm != NULL)
		metrics_add(&shm->db_errors, 1);
}

void
metrics_spool_write(void)
{
	if (shm != NULL)
		metrics_add(&shm->spool_writes, 1);
}

void
metrics_db_deadline(void)
{
	if (shm != NULL)
		metrics_add(&shm->db_deadlines, 1);
}

void
metrics_failed_event(void)
{
	if (shm != NULL)
		metrics_add(&shm->failed_events, 1);
}

/*
 * GET /metrics: the exposition of the shared counters, routes summed
 * by name (an alias counts with its route).
 */
/*
 * What waits in the outboxes (outbox_state, mail_outbox_state): SMS
 * auto-replies and the staff's e-mail, by state; failed is what gave
 * up.  Left out while the database cannot say.
 */
static const struct db_stmt st_outbox = { "metrics_outbox",
	"SELECT k, s, (SELECT count(*) FROM outbox WHERE k = 'sms' AND "
	"state = s) + (SELECT count(*) FROM mail_outbox WHERE k = 'email' "
	"AND state = s) AS n FROM unnest(ARRAY['sms', 'email']) k, "
	"unnest(ARRAY['pending', 'sending', 'retry', 'failed']) s", 0 };

static void
metrics_outbox(struct buf *b)
{
	struct db_res	 res;
	int		 i, replica, c_k, c_s, c_n;

	if (db_exec_read(&st_outbox, NULL, &res, &replica) != DB_OK)
		return;
	c_k = db_col(&res, "k");
	c_s = db_col(&res, "s");
	c_n = db_col(&res, "n");
	buf_puts(b, "# HELP telehook_outbox_messages Messages waiting to be "
	    "sent, or failed for good: SMS auto-replies and the staff's "
	    "e-mail.\n"
	    "# TYPE telehook_outbox_messages gauge\n");
	for (i = 0; i < res.nrows; i++)
		buf_printf(b, "telehook_outbox_messages{kind=\"%s\","
		    "state=\"%s\"} %s\n", db_get(&res, i, c_k),
		    db_get(&res, i, c_s), db_get(&res, i, c_n));
	db_res_free(&res);
}

/*
 * Per endpoint (architecture.md §14): attempts that were answered 2xx
 * and that were not, their time, what waits and what is dead
 * (endpoints_org, deliveries_open, deliveries_dead).
 */
static const struct db_stmt st_endpoints = { "metrics_endpoints",
	"SELECT e.id, e.ok_total, e.failed_total, e.latency_ms_sum, "
	"(SELECT count(*) FROM deliveries d WHERE d.endpoint_id = e.id AND "
	"d.state IN ('pending', 'sending', 'retry')) AS backlog, "
	"(SELECT count(*) FROM deliveries d WHERE d.endpoint_id = e.id AND "
	"d.state = 'dead') AS dead, e.enabled::int AS enabled "
	"FROM endpoints e ORDER BY e.id", 0 };

static const struct db_stmt st_events = { "metrics_events",
	"SELECT count(*) AS n FROM delivery_pending", 0 };

static void
metrics_endpoints(struct buf *b)
{
	/* the gauges are a column each of st_endpoints */
	static const struct {
		const char	*name;
		const char	*type;
		const char	*col;
		const char	*help;
	} m[] = {
		{ "telehook_delivery_attempts_total", "counter", NULL,
		    "Attempts to deliver an event, by endpoint and result "
		    "(ok: answered 2xx)." },
		{ "telehook_delivery_latency_seconds", "summary", NULL,
		    "Time of the attempts, by endpoint." },
		{ "telehook_delivery_backlog", "gauge", "backlog",
		    "Deliveries waiting or being sent, by endpoint." },
		{ "telehook_delivery_dead", "gauge", "dead",
		    "Deliveries given up after the retry schedule, by "
		    "endpoint." },
		{ "telehook_endpoint_enabled", "gauge", "enabled",
		    "Whether the endpoint is sent to (0: disabled, by 410 or "
		    "the operator)." },
	};
	struct db_res	 res;
	const char	*id, *ok, *failed;
	size_t		 k;
	int		 i, replica, c_id, c_ok, c_failed, c_ms, c;

	if (db_exec_read(&st_events, NULL, &res, &replica) != DB_OK)
		return;
	buf_printf(b, "# HELP telehook_delivery_events_waiting Events not "
	    "yet made deliveries by the sender.\n# TYPE "
	    "telehook_delivery_events_waiting gauge\n"
	    "telehook_delivery_events_waiting %s\n", db_val(&res, 0, "n"));
	db_res_free(&res);
	if (db_exec_read(&st_endpoints, NULL, &res, &replica) != DB_OK)
		return;
	c_id = db_col(&res, "id");
	c_ok = db_col(&res, "ok_total");
	c_failed = db_col(&res, "failed_total");
	c_ms = db_col(&res, "latency_ms_sum");
	for (k = 0; k < sizeof(m) / sizeof(m[0]); k++) {
		buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", m[k].name,
		    m[k].help, m[k].name, m[k].type);
		c = m[k].col != NULL ? db_col(&res, m[k].col) : -1;
		for (i = 0; i < res.nrows; i++) {
			id = db_get(&res, i, c_id);
			ok = db_get(&res, i, c_ok);
			failed = db_get(&res, i, c_failed);
			if (m[k].col != NULL)
				buf_printf(b, "%s{endpoint=\"%s\"} %s\n",
				    m[k].name, id, db_get(&res, i, c));
			else if (k == 0)
				buf_printf(b, "%s{endpoint=\"%s\",result=\"ok\"} "
				    "%s\n%s{endpoint=\"%s\",result=\"failed\"} "
				    "%s\n", m[k].name, id, ok, m[k].name, id,
				    failed);
			else
				buf_printf(b, "%s_sum{endpoint=\"%s\"} %.3f\n"
				    "%s_count{endpoint=\"%s\"} %lld\n",
				    m[k].name, id, atof(db_get(&res, i, c_ms)) /
				    1000.0, m[k].name, id,
				    atoll(ok) + atoll(failed));
		}
	}
	db_res_free(&res);
}

enum db_err
metrics_handle(struct req *r, struct resp *p)
{
	struct buf	*b = &p->text;
	uint64_t	 sum, cum;
	size_t		 i, j, s;
	long		 depth;
	long long	 oldest;
	int		 first;

	(void)r;
	p->ctype = "text/plain; version=0.0.4; charset=utf-8";
	if (shm == NULL)
		metrics_init(NULL, NULL, 0);
	/* which build answers: for dashboards across a rolling upgrade */
	buf_puts(b, "# HELP telehook_build_info The running version, always "
	    "1.\n# TYPE telehook_build_info gauge\n"
	    "telehook_build_info{version=\"" PACKAGE_VERSION "\"} 1\n");
	buf_puts(b, "# HELP telehook_requests_total Requests answered, by "
	    "route and status.\n# TYPE telehook_requests_total counter\n");
	for (i = 0; i < metrics_nrt && i < METRICS_UNKNOWN; i++) {
		/* the first route of each name speaks for all of that name */
		for (j = 0, first = 1; j < i; j++)
			if (strcmp(metrics_rt[j].name, metrics_rt[i].name) == 0)
				first = 0;
		if (!first)
			continue;
		for (s = 0; s < METRICS_NSTATUS; s++) {
			for (j = i, sum = 0; j < metrics_nrt &&
			    j < METRICS_UNKNOWN; j++)
				if (strcmp(metrics_rt[j].name, metrics_rt[i].name) == 0)
					sum += metrics_get(&shm->requests[j][s]);
			if (sum == 0)
				continue;
			if (metrics_statuses[s] != 0)
				buf_printf(b, "telehook_requests_total{route=\"%s\","
				    "status=\"%d\"} %llu\n", metrics_rt[i].name,
				    metrics_statuses[s], (unsigned long long)sum);
			else
				buf_printf(b, "telehook_requests_total{route=\"%s\","
				    "status=\"other\"} %llu\n", metrics_rt[i].name,
				    (unsigned long long)sum);
		}
	}
	for (s = 0; s < METRICS_NSTATUS; s++)
		if ((sum = metrics_get(&shm->requests[METRICS_UNKNOWN][s])) > 0)
			buf_printf(b, "telehook_requests_total{route=\"unknown\","
			    "status=\"%d\"} %llu\n", metrics_statuses[s],
			    (unsigned long long)sum);

	buf_puts(b, "# HELP telehook_request_duration_seconds Time from "
	    "accept to answer.\n# TYPE telehook_request_duration_seconds "
	    "histogram\n");
	for (i = 0, cum = 0; i < METRICS_NBUCKETS; i++) {
		cum += metrics_get(&shm->latency[i]);
		buf_printf(b, "telehook_request_duration_seconds_bucket{le=\"%s\"}"
		    " %llu\n", metrics_le[i], (unsigned long long)cum);
	}
	cum += metrics_get(&shm->latency[METRICS_NBUCKETS]);
	buf_printf(b, "telehook_request_duration_seconds_bucket{le=\"+Inf\"} "
	    "%llu\n", (unsigned long long)cum);
	buf_printf(b, "telehook_request_duration_seconds_sum %.6f\n",
	    (double)metrics_get(&shm->latency_sum_us) / 1e6);
	buf_printf(b, "telehook_request_duration_seconds_count %llu\n",
	    (unsigned long long)metrics_get(&shm->latency_count));

	buf_puts(b, "# HELP telehook_rejections_total Requests refused, by "
	    "cause.\n# TYPE telehook_rejections_total counter\n");
	for (i = 1; i < REJECT__MAX; i++)
		buf_printf(b, "telehook_rejections_total{cause=\"%s\"} %llu\n",
		    metrics_causes[i],
		    (unsigned long long)metrics_get(&shm->rejections[i]));

	buf_printf(b, "# HELP telehook_db_errors_total Database statements "
	    "that failed.\n# TYPE telehook_db_errors_total counter\n"
	    "telehook_db_errors_total %llu\n",
	    (unsigned long long)metrics_get(&shm->db_errors));
	buf_printf(b, "# HELP telehook_breaker_opened_total Times a slow "
	    "database opened the breaker.\n"
	    "# TYPE telehook_breaker_opened_total counter\n"
	    "telehook_breaker_opened_total %llu\n"
	    "# HELP telehook_breaker_open Whether webhooks go to the spool "
	    "without asking the database.\n"
	    "# TYPE telehook_breaker_open gauge\ntelehook_breaker_open %d\n",
	    (unsigned long long)breaker_opened_count(BREAKER__MAX),
	    breaker_is_open(util_now_us()));
	buf_puts(b, "# HELP telehook_breaker_opened_by_reason_total Times the "
	    "breaker opened, by reason.\n# TYPE "
	    "telehook_breaker_opened_by_reason_total counter\n");
	for (i = 1; i < BREAKER__MAX; i++)
		buf_printf(b, "telehook_breaker_opened_by_reason_total{reason="
		    "\"%s\"} %llu\n", breaker_name(i), (unsigned long long)
		    breaker_opened_count(i));
	buf_puts(b, "# HELP telehook_breaker_state Why the breaker is open "
	    "or half-open (none: closed); 1 for the current reason.\n"
	    "# TYPE telehook_breaker_state gauge\n");
	for (i = 0; i < BREAKER__MAX; i++)
		buf_printf(b, "telehook_breaker_state{reason=\"%s\"} %d\n",
		    breaker_name(i), breaker_reason() == i);
	buf_printf(b, "# HELP telehook_db_deadlines_total Database round "
	    "trips given up at the answer budget's deadline.\n"
	    "# TYPE telehook_db_deadlines_total counter\n"
	    "telehook_db_deadlines_total %llu\n",
	    (unsigned long long)metrics_get(&shm->db_deadlines));
	buf_printf(b, "# HELP telehook_spool_quarantined Spool files that "
	    "could not be read, set aside in quarantine/.\n"
	    "# TYPE telehook_spool_quarantined gauge\n"
	    "telehook_spool_quarantined %ld\n", spool_quarantined(
	    conf.spool_dir));
	oldest = spool_oldest(conf.spool_dir);
	buf_printf(b, "# HELP telehook_spool_oldest_age_seconds How long the "
	    "oldest spooled request has waited (0: none).\n"
	    "# TYPE telehook_spool_oldest_age_seconds gauge\n"
	    "telehook_spool_oldest_age_seconds %lld\n", oldest > 0 ?
	    (util_wall_us() - oldest) / 1000000 : 0LL);
	buf_printf(b, "# HELP telehook_events_failed_total Verified requests "
	    "whose content the database refused, kept as failed events.\n"
	    "# TYPE telehook_events_failed_total counter\n"
	    "telehook_events_failed_total %llu\n",
	    (unsigned long long)metrics_get(&shm->failed_events));
	buf_printf(b, "# HELP telehook_spool_writes_total Requests written "
	    "to the spool.\n# TYPE telehook_spool_writes_total counter\n"
	    "telehook_spool_writes_total %llu\n",
	    (unsigned long long)metrics_get(&shm->spool_writes));
	depth = spool_depth(conf.spool_dir);
	buf_printf(b, "# HELP telehook_spool_depth Requests waiting in the "
	    "spool.\n# TYPE telehook_spool_depth gauge\n"
	    "telehook_spool_depth %ld\n", depth < 0 ? 0 : depth);
	buf_printf(b, "# HELP telehook_worker_starts_total Workers started "
	    "(beyond the pool size: restarts).\n# TYPE "
	    "telehook_worker_starts_total counter\n"
	    "telehook_worker_starts_total %llu\n",
	    (unsigned long long)metrics_get(&shm->worker_starts));
	/* the database's figures only while it is well, and quickly */
	if (breaker_reason() == BREAKER_NONE) {
		db_set_deadline(util_now_us() + METRICS_DB_US);
		metrics_outbox(b);
		metrics_endpoints(b);
		db_set_deadline(0);
	}
	buf_printf(b, "# HELP telehook_metrics_shared Whether these counters "
	    "are the whole pool's.\n# TYPE telehook_metrics_shared gauge\n"
	    "telehook_metrics_shared %d\n", shm_shared);
	return DB_OK;
}
