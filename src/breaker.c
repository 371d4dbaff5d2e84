/*
 * breaker.c: the pool's breaker (architecture.md §6), in the mapping
 * metrics.c shares among the workers, so that one worker's finding
 * spares every worker the wait.  metrics_init() hands it its words;
 * before that (telehookctl) it is always closed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "extern.h"

static const char *const breaker_names[BREAKER__MAX] = {
	"none",		/* BREAKER_NONE: closed */
	"slow",		/* BREAKER_SLOW */
	"down",		/* BREAKER_DOWN */
	"read_only",	/* BREAKER_READ_ONLY */
};

static struct breaker_shm	*bs;

/* The words of the shared mapping the breaker lives in. */
void
breaker_attach(struct breaker_shm *words)
{
	bs = words;
}

/*
 * The pool's breaker (issues 20 and 34), in the same shared mapping so
 * that one worker's finding spares every worker the wait.  Closed
 * (reason none): requests use the database.  Open until a time, with a
 * reason (slow, down, read_only): every worker spools at once, and a
 * round trip already waiting gives up (breaker_opened_since()).  Past
 * that time it is half-open: the first to claim the probe uses the
 * database, the others still spool; a probe that is fast and
 * succeeds closes it, any other outcome opens it again.
 */
void
breaker_open(long long until_us, enum breaker_reason why)
{
	int64_t	 cur;
	long long now = util_now_us();

	if (bs == NULL || why == BREAKER_NONE || why >= BREAKER__MAX)
		return;
	cur = __atomic_load_n(&bs->until_us, __ATOMIC_RELAXED);
	while (cur < until_us && !__atomic_compare_exchange_n(
	    &bs->until_us, &cur, until_us, 0, __ATOMIC_RELAXED,
	    __ATOMIC_RELAXED))
		;
	__atomic_store_n(&bs->reason, why, __ATOMIC_RELAXED);
	__atomic_store_n(&bs->probe_us, 0, __ATOMIC_RELAXED);
	if (why == BREAKER_SLOW)
		__atomic_store_n(&bs->slow_us, now, __ATOMIC_RELAXED);
	if (cur <= now) {
		/* it was closed or half-open: it opens now */
		__atomic_store_n(&bs->opened_us, now,
		    __ATOMIC_RELAXED);
		__atomic_fetch_add(&bs->opened, 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&bs->by_reason[why], 1, __ATOMIC_RELAXED);
	}
}

/* Closed again: the probe was fast. */
void
breaker_close(void)
{
	if (bs == NULL)
		return;
	__atomic_store_n(&bs->reason, BREAKER_NONE,
	    __ATOMIC_RELAXED);
	__atomic_store_n(&bs->until_us, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&bs->probe_us, 0, __ATOMIC_RELAXED);
}

/* Open (not half-open): spool without asking. */
int
breaker_is_open(long long now)
{
	return bs != NULL &&
	    __atomic_load_n(&bs->until_us, __ATOMIC_RELAXED) > now;
}

/* Why it is open or half-open; BREAKER_NONE when closed. */
enum breaker_reason
breaker_reason(void)
{
	uint32_t	 r;

	if (bs == NULL)
		return BREAKER_NONE;
	r = __atomic_load_n(&bs->reason, __ATOMIC_RELAXED);
	return r < BREAKER__MAX ? (enum breaker_reason)r : BREAKER_NONE;
}

const char *
breaker_name(enum breaker_reason r)
{
	return r < BREAKER__MAX ? breaker_names[r] : "?";
}

/*
 * May this worker use the database now?  BREAKER_PASS when closed,
 * BREAKER_PROBE when half-open for at least wait_us and this worker won
 * the probe (for hold_us; a probe that never reports lets another try
 * after it), BREAKER_SPOOL otherwise.
 */
enum breaker_pass
breaker_pass(long long now, long long wait_us, long long hold_us)
{
	int64_t	 p;

	if (bs == NULL || breaker_reason() == BREAKER_NONE)
		return BREAKER_PASS;
	if (breaker_is_open(now - wait_us))
		return BREAKER_SPOOL;
	p = __atomic_load_n(&bs->probe_us, __ATOMIC_RELAXED);
	if (p > now || !__atomic_compare_exchange_n(&bs->probe_us,
	    &p, now + hold_us, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		return BREAKER_SPOOL;
	return BREAKER_PROBE;
}

/* Has it opened since the time a round trip began?  (db.c's hook) */
int
breaker_opened_since(long long since_us)
{
	return bs != NULL && breaker_is_open(util_now_us()) &&
	    __atomic_load_n(&bs->opened_us, __ATOMIC_RELAXED) >
	    since_us;
}

/*
 * Has it opened as slow since then?  A database a little slow for the
 * offered rate passes each probe and is slow again at once: closed in
 * between, it is still slow for /healthz.
 */
int
breaker_slow_since(long long since_us)
{
	return bs != NULL &&
	    __atomic_load_n(&bs->slow_us, __ATOMIC_RELAXED) > since_us;
}

/*
 * A transaction took more than the slow share of the budget: n of them
 * within a second, pool-wide, say the database is slow.  True then.
 */
int
breaker_slow(long long now, unsigned int n)
{
	int64_t	 w;

	if (bs == NULL)
		return 0;
	w = __atomic_load_n(&bs->slow_window_us, __ATOMIC_RELAXED);
	if (now - w > 1000000 && __atomic_compare_exchange_n(
	    &bs->slow_window_us, &w, now, 0, __ATOMIC_RELAXED,
	    __ATOMIC_RELAXED))
		__atomic_store_n(&bs->slow_count, 0, __ATOMIC_RELAXED);
	return __atomic_add_fetch(&bs->slow_count, 1, __ATOMIC_RELAXED) >= n;
}

/* Times it opened for why (BREAKER__MAX: for any reason). */
unsigned long long
breaker_opened_count(enum breaker_reason why)
{
	if (bs == NULL)
		return 0;
	if (why >= BREAKER__MAX)
		return __atomic_load_n(&bs->opened, __ATOMIC_RELAXED);
	return __atomic_load_n(&bs->by_reason[why], __ATOMIC_RELAXED);
}
