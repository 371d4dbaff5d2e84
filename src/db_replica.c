/*
 * db_replica.c: the read replica's connection ([database]
 * read_conninfo), beside db.c's primary; what the two files share is
 * in db.h.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "extern.h"
#include "db.h"

/*
 * The read replica ([database] read_conninfo): a second connection for
 * reads that may be a little late (the dashboard API's).  It is used
 * while it answers and replays within read_max_lag_ms of what it has
 * received; its state is checked at most once a second.  Otherwise, and
 * on any error there, the read goes to the primary.  Its round trips
 * and its connect have a client-side deadline too: half of what is left
 * of the request's (the primary answers if the replica is late), else
 * the round-trip budget, at most DB_RD_MAX_US.  A replica that hangs
 * costs one read that much, then it is down for a second.
 */
#define DB_RD_MAX_US	(2000 * 1000)

static PGconn		*db_rd;
static char		*db_rd_conninfo;
static long long	 db_rd_max_lag_ms;
static long long	 db_rd_checked_us;
static enum db_replica	 db_rd_state = DB_REPLICA_NONE;

void
db_setup_read(const char *conninfo, long long max_lag_ms)
{
	free(db_rd_conninfo);
	db_rd_conninfo = conninfo != NULL ? xstrdup(conninfo) : NULL;
	db_rd_max_lag_ms = max_lag_ms;
	db_rd_checked_us = 0;
	db_rd_state = conninfo != NULL ? DB_REPLICA_DOWN : DB_REPLICA_NONE;
}

static void
db_rd_close(void)
{
	if (db_rd != NULL)
		PQfinish(db_rd);
	db_rd = NULL;
}

/* When the replica's round trip begun now must be over. */
static long long
db_rd_until(void)
{
	long long	 now = util_now_us(), until = now + DB_RD_MAX_US;
	long long	 deadline = db_get_deadline(), budget_ms = db_get_budget();

	/* half what is left: the primary takes the read if it is late */
	if (deadline != 0 && now + (deadline - now) / 2 < until)
		until = now + (deadline - now) / 2;
	else if (deadline == 0 && budget_ms > 0 &&
	    now + budget_ms * 1000 < until)
		until = now + budget_ms * 1000;
	return until;
}

/* Wait for the replica's socket until then: 0 ready, -1 too late. */
static int
db_rd_wait(short events, long long until)
{
	struct pollfd	 pfd;
	long long	 left;
	int		 n;

	for (;;) {
		if ((left = until - util_now_us()) <= 0)
			return -1;
		pfd.fd = PQsocket(db_rd);
		pfd.events = events;
		pfd.revents = 0;
		if (pfd.fd == -1)
			return 0;	/* libpq will say what is wrong */
		if ((n = poll(&pfd, 1, (int)(left / 1000) + 1)) > 0)
			return 0;
		if (n == -1 && errno != EINTR && errno != EAGAIN)
			return 0;
	}
}

/* Connected to the replica by then?  0, or -1 (it stays closed). */
static int
db_rd_connect(long long until)
{
	const char	*kw[] = { "connect_timeout", "application_name",
			    "dbname", NULL };
	const char	*val[4];
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;

	if (db_rd != NULL && PQstatus(db_rd) == CONNECTION_OK)
		return 0;
	db_rd_close();
	val[0] = "2";
	val[1] = "telehook-read";
	val[2] = db_rd_conninfo;
	val[3] = NULL;
	if ((db_rd = PQconnectStartParams(kw, val, 1)) == NULL)
		return -1;
	while (PQstatus(db_rd) != CONNECTION_BAD &&
	    st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
		if (db_rd_wait(st == PGRES_POLLING_READING ? POLLIN : POLLOUT,
		    until) == -1)
			break;
		st = PQconnectPoll(db_rd);
	}
	if (PQstatus(db_rd) != CONNECTION_OK ||
	    PQsetnonblocking(db_rd, 1) == -1) {
		db_rd_close();
		return -1;
	}
	PQsetNoticeProcessor(db_rd, db_notice, NULL);
	return 0;
}

/*
 * One statement on the replica by then: its last result, or NULL (too
 * late: cancelled and closed, or the connection broke).
 */
static PGresult *
db_rd_exec(const char *sql, int n, const char *const *params,
    long long until)
{
	PGresult	*res, *last = NULL;
	int		 r;

	if (!PQsendQueryParams(db_rd, sql, n, NULL, params, NULL, NULL, 0))
		return NULL;
	while ((r = PQflush(db_rd)) == 1)
		if (db_rd_wait(POLLOUT | POLLIN, until) == -1 ||
		    !PQconsumeInput(db_rd))
			goto late;
	if (r == -1)
		return NULL;
	for (;;) {
		while (PQisBusy(db_rd)) {
			if (db_rd_wait(POLLIN, until) == -1)
				goto late;
			if (!PQconsumeInput(db_rd))
				break;
		}
		if ((res = PQgetResult(db_rd)) == NULL)
			break;
		PQclear(last);
		last = res;
	}
	return last;
late:
	PQclear(last);
	if (PQtransactionStatus(db_rd) == PQTRANS_ACTIVE)
		db_cancel(db_rd);
	db_rd_close();
	return NULL;
}

/* The replica's state now, checked if the last check is a second old. */
enum db_replica
db_replica_state(void)
{
	static const char *const lag_sql = "SELECT pg_is_in_recovery() AS "
	    "in_recovery, CASE WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT "
	    "FROM pg_last_wal_replay_lsn() THEN 0 ELSE coalesce(extract(epoch "
	    "FROM now() - pg_last_xact_replay_timestamp()) * 1000, 0) "
	    "END::bigint AS lag_ms";
	PGresult	*res;
	long long	 now = util_now_us(), until;
	int		 rec, lag;

	if (db_rd_conninfo == NULL)
		return DB_REPLICA_NONE;
	if (now - db_rd_checked_us < 1000000)
		return db_rd_state;
	db_rd_checked_us = now;
	until = db_rd_until();
	if (db_rd_connect(until) == -1)
		return db_rd_state = DB_REPLICA_DOWN;
	res = db_rd_exec(lag_sql, 0, NULL, until);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
	    (rec = PQfnumber(res, "in_recovery")) == -1 ||
	    (lag = PQfnumber(res, "lag_ms")) == -1) {
		PQclear(res);
		db_rd_close();
		return db_rd_state = DB_REPLICA_DOWN;
	}
	/* a primary (promoted, or misconfigured) is not a replica's lag */
	if (strcmp(PQgetvalue(res, 0, rec), "t") != 0)
		db_rd_state = DB_REPLICA_OK;
	else
		db_rd_state = strtoll(PQgetvalue(res, 0, lag), NULL, 10) >
		    db_rd_max_lag_ms ? DB_REPLICA_BEHIND : DB_REPLICA_OK;
	PQclear(res);
	return db_rd_state;
}

/*
 * A read: on the replica while it is up and close enough behind, else
 * on the primary (db_exec).  *replica says whether the replica answered.
 */
enum db_err
db_exec_read(const struct db_stmt *st, const char *const *params,
    struct db_res *out, int *replica)
{
	PGresult	*res;

	*replica = 0;
	if (db_replica_state() == DB_REPLICA_OK && db_rd != NULL) {
		res = db_rd_exec(st->sql, st->nparams, params, db_rd_until());
		if (PQresultStatus(res) == PGRES_TUPLES_OK) {
			db_copy(res, out);
			PQclear(res);
			*replica = 1;
			return DB_OK;
		}
		if (res != NULL)
			log_warnx("read replica: %.*s", (int)strcspn(
			    PQresultErrorMessage(res), "\n"),
			    PQresultErrorMessage(res));
		else
			log_warnx("read replica: no answer within the "
			    "deadline, or the connection broke");
		PQclear(res);
		if (db_rd == NULL || PQstatus(db_rd) != CONNECTION_OK) {
			db_rd_close();
			db_rd_state = DB_REPLICA_DOWN;
		}
	}
	return db_exec(st, params, out);
}

/*
 * In a child just forked: let go of the parent's connections, the
 * primary's and the replica's, without a word on them (db_forget_conn).
 */
void
db_forget(void)
{
	db_forget_primary();
	db_forget_conn(&db_rd);
}
