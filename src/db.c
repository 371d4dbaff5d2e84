/*
 * db.c: the one PostgreSQL connection of a process.  It is opened on
 * first use, reopened after it breaks, and every statement a worker runs
 * is a struct db_stmt of its module, prepared once per connection.
 * Results come back copied into struct db_res, so no PGresult ever
 * leaves this file and db_replica.c (the read replica's connection).
 *
 * statement_timeout_ms bounds each statement on the server, but a
 * frozen server or a pooler's queue never raises it: so every round
 * trip, connecting included, is also sent and awaited without blocking
 * (libpq's asynchronous calls and poll(2)) up to a deadline of our own,
 * the request's answer budget (db_set_deadline()) or, between requests,
 * one budget per round trip (db_set_budget()).  Past it the query is
 * cancelled, the connection dropped and DB_EDEADLINE returned: the
 * caller treats the database as away.  After a failed connect, further
 * attempts wait DB_RETRY_US, so a worker with the database down answers
 * at once instead of stalling every request.
 *
 * BEGIN is not a round trip of its own: db_begin() only notes it, and
 * the first statement of the transaction sends it in one pipeline with
 * BEGIN (and its PREPARE, the first time).  A transaction that runs no
 * statement costs nothing.
 */
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "extern.h"
#include "db.h"

#define DB_RETRY_US	(1000 * 1000)
#define DB_SLICE_MS	20	/* how often a wait looks at the breaker */

static PGconn		*db_conn;
static char		*db_conninfo;
static long long	 db_timeout_ms = 2000;
static long long	 db_lock_ms;
static long long	 db_next_try;
static int		 db_in_tx;
static int		 db_tx_pending;	/* BEGIN goes with the next statement */
#define DB_MAXPREPARED	128
static const struct db_stmt *db_prepared[DB_MAXPREPARED];
static int		 db_nprepared;
static int		 db_pooler;		/* enum db_pooler */
static char		 db_timeouts[2][24];	/* for SET LOCAL, pooled */
static char		 db_err[512];
static char		 db_connerr[512];	/* why the last connect failed */
static int		 db_was_down;		/* log transitions, not every try */
static enum db_err	 db_last;		/* the last failure's class */
static int		 db_rolled_back;	/* the last statement's tag */
static long long	 db_deadline;		/* the request's, 0: none */
static long long	 db_budget_ms;		/* a round trip's, 0: none */
static long long	 db_rt_start;		/* this round trip's */
static long long	 db_rt_until;		/* its deadline, 0: none */
static int		 db_late;		/* it passed: DB_EDEADLINE */
static enum db_err	 db_tx_dead;		/* the tx's connection went */
static int		(*db_abandon)(long long);
static int		 db_connecting;		/* a connect is under way */
static int		 db_late_connect;	/* the deadline hit it */

/*
 * The request's deadline (0: none): every round trip until it is
 * cleared must be answered by then.
 */
void
db_set_deadline(long long until_us)
{
	db_deadline = until_us;
}

long long
db_get_deadline(void)
{
	return db_deadline;
}

/* Was the last deadline passed while connecting? */
int
db_deadline_connecting(void)
{
	return db_late_connect;
}

/* Without a request's deadline, each round trip may take ms (0: any). */
void
db_set_budget(long long ms)
{
	db_budget_ms = ms;
}

long long
db_get_budget(void)
{
	return db_budget_ms;
}

/*
 * Asked while a round trip waits, with the time it began: true gives
 * it up at once (the pool's breaker opened meanwhile: another worker
 * found the database slow, so this one need not find out too).
 */
void
db_set_abandon_hook(int (*fn)(long long))
{
	db_abandon = fn;
}

/*
 * Told of every failed statement (the worker counts them in /metrics);
 * a hook, so this layer does not call up into metrics.
 */
static void	(*db_on_error)(void);

void
db_set_error_hook(void (*fn)(void))
{
	db_on_error = fn;
}

/*
 * Behind a transaction pooler (PgBouncer, pool_mode = transaction) a
 * server connection is ours for one transaction only: statements are
 * sent unnamed (parsed each time, never PREPAREd), and the timeouts are
 * set for each transaction (SET LOCAL, in BEGIN's round trip) instead
 * of once per connection.
 */
void
db_set_pooler(int pooler)
{
	db_pooler = pooler;
}

/* Remember where and how to connect; connecting happens on first use. */
void
db_setup(const char *conninfo, long long timeout_ms)
{
	free(db_conninfo);
	db_conninfo = xstrdup(conninfo);
	db_timeout_ms = timeout_ms;
	db_next_try = 0;
}

/* How long a statement may wait for a lock (0: statement_timeout). */
void
db_set_lock_timeout(long long ms)
{
	db_lock_ms = ms;
}

const char *
db_errmsg(void)
{
	return db_err;
}

/* The class of the last failure, DB_OK if none since db_clear(). */
enum db_err
db_last_error(void)
{
	return db_last;
}

void
db_clear(void)
{
	db_last = DB_OK;
}

/* Keep the first line of a libpq message, which may span several. */
static void
db_seterr(const char *prefix, const char *msg)
{
	size_t	 n;

	snprintf(db_err, sizeof(db_err), "%s%s", prefix,
	    msg != NULL ? msg : "");
	n = strcspn(db_err, "\n");
	db_err[n] = '\0';
}

void
db_close(void)
{
	/* a transaction's connection gone: its statements fail until rollback */
	if (db_in_tx && !db_tx_pending && db_tx_dead == DB_OK)
		db_tx_dead = db_late ? DB_EDEADLINE : DB_ECONN;
	if (db_conn != NULL)
		PQfinish(db_conn);
	db_conn = NULL;
	db_in_tx = 0;
	db_tx_pending = 0;
	db_nprepared = 0;
}

/*
 * In a child just forked: let go of the parent's connections without a
 * word on them (PQfinish's goodbye would end the parent's sessions),
 * so the child connects on its own.
 */
void
db_forget_conn(PGconn **conn)
{
	int	 fd, null;

	if (*conn == NULL)
		return;
	if ((fd = PQsocket(*conn)) != -1 &&
	    (null = open("/dev/null", O_RDWR | O_CLOEXEC)) != -1) {
		dup2(null, fd);
		close(null);
	}
	PQfinish(*conn);
	*conn = NULL;
}

/* The primary's connection let go (db_forget(), db_replica.c). */
void
db_forget_primary(void)
{
	db_forget_conn(&db_conn);
	db_close();
}

/* Has this connection prepared st? */
static int
db_is_prepared(const struct db_stmt *st)
{
	int	 i;

	for (i = 0; i < db_nprepared; i++)
		if (db_prepared[i] == st)
			return 1;
	return 0;
}

/*
 * Cancel what conn runs, in a short-lived grandchild: PQcancel() waits
 * for the postmaster to close its socket, which a frozen one never
 * does, and the worker must answer now.  The grandchild is cut off by
 * alarm(2) and holds none of the worker's descriptors.
 */
void
db_cancel(PGconn *conn)
{
	PGcancel	*c;
	pid_t		 pid;
	char		 err[64];

	if ((c = PQgetCancel(conn)) == NULL)
		return;
	switch (pid = fork()) {
	case -1:
		log_warn("fork (cancel)");
		break;
	case 0:
		if (fork() == 0) {
			closefrom(3);
			close(0);
			signal(SIGALRM, SIG_DFL);
			alarm(5);
			(void)PQcancel(c, err, sizeof(err));
		}
		_exit(0);
	default:
		(void)waitpid(pid, NULL, 0);
		break;
	}
	PQfreeCancel(c);
}

/*
 * The round trip's time is up: cancel it, drop the connection (what
 * it would say next is of no use), and say why.  Always -1.
 */
static int
db_give_up(const char *why)
{
	snprintf(db_err, sizeof(db_err), "%s (%lld ms)", why,
	    (util_now_us() - db_rt_start) / 1000);
	db_late = 1;
	db_late_connect = db_connecting;
	if (db_conn != NULL && PQstatus(db_conn) == CONNECTION_OK &&
	    PQtransactionStatus(db_conn) == PQTRANS_ACTIVE)
		db_cancel(db_conn);
	db_close();
	db_late = 1;
	return -1;
}

/* A round trip begins: its deadline. */
static void
db_rt_begin(void)
{
	db_rt_start = util_now_us();
	db_late = 0;
	if (db_deadline != 0)
		db_rt_until = db_deadline;
	else if (db_budget_ms > 0)
		db_rt_until = db_rt_start + db_budget_ms * 1000;
	else
		db_rt_until = 0;
}

/* Is the request's deadline already past?  Then send nothing. */
static int
db_expired(void)
{
	if (db_deadline == 0 || util_now_us() < db_deadline)
		return 0;
	db_seterr("", "no time left in the answer budget");
	db_late_connect = 0;
	return 1;
}

/*
 * Wait for the socket (events) until the round trip's deadline: 0
 * ready, or -1 having given up.
 */
static int
db_wait(PGconn *conn, short events)
{
	struct pollfd	 pfd;
	long long	 now;
	int		 ms, n;

	for (;;) {
		now = util_now_us();
		if (db_rt_until != 0 && now >= db_rt_until)
			return db_give_up("no answer within the deadline");
		if (db_abandon != NULL && db_abandon(db_rt_start))
			return db_give_up("the breaker opened meanwhile");
		ms = DB_SLICE_MS;
		if (db_rt_until != 0 && (db_rt_until - now) / 1000 + 1 < ms)
			ms = (int)((db_rt_until - now) / 1000 + 1);
		pfd.fd = PQsocket(conn);
		pfd.events = events;
		pfd.revents = 0;
		if (pfd.fd == -1)
			return 0;	/* libpq will say what is wrong */
		if ((n = poll(&pfd, 1, ms)) > 0)
			return 0;
		if (n == -1 && errno != EINTR && errno != EAGAIN)
			return 0;	/* libpq will say what is wrong */
	}
}

/* Send what libpq holds: 0, or -1 (late, or the connection broke). */
static int
db_flush(void)
{
	int	 r;

	while ((r = PQflush(db_conn)) == 1) {
		if (db_wait(db_conn, POLLOUT | POLLIN) == -1)
			return -1;
		if (!PQconsumeInput(db_conn))
			return -1;
	}
	return r;
}

/* PQgetResult, waiting no longer than the deadline: NULL once late. */
static PGresult *
db_getresult(void)
{
	if (db_conn == NULL || db_late)
		return NULL;
	while (PQisBusy(db_conn)) {
		if (db_wait(db_conn, POLLIN) == -1)
			return NULL;
		if (!PQconsumeInput(db_conn))
			break;	/* PQgetResult says what went wrong */
	}
	return PQgetResult(db_conn);
}

/*
 * After a PQsend*() that returned sent: its last result, as PQexec()
 * gives it.  NULL if it could not be sent or came too late (db_late).
 */
static PGresult *
db_finish(int sent)
{
	PGresult	*res, *last = NULL;

	if (!sent || db_flush() == -1) {
		if (!db_late)
			db_seterr("", PQerrorMessage(db_conn));
		return NULL;
	}
	while ((res = db_getresult()) != NULL) {
		PQclear(last);
		last = res;
	}
	if (db_late) {
		PQclear(last);
		return NULL;
	}
	return last;
}

/* One statement without parameters, as PQexec() but to the deadline. */
static PGresult *
db_exec_simple(const char *sql)
{
	db_rt_begin();
	return db_finish(PQsendQuery(db_conn, sql));
}

int
db_connected(void)
{
	return db_conn != NULL && PQstatus(db_conn) == CONNECTION_OK;
}

/* Server notices ("relation exists, skipping") are for debugging only. */
void
db_notice(void *arg, const char *msg)
{
	(void)arg;
	log_debug("database: %.*s", (int)strcspn(msg, "\n"), msg);
}

/* Connect unless connected.  DB_ECONN while the database is away. */
enum db_err
db_connect(void)
{
	char		 timeout[32], set[96];
	const char	*kw[] = { "connect_timeout", "application_name",
			    "dbname", NULL };
	const char	*val[4];
	PGresult	*res;
	PostgresPollingStatusType st;
	long long	 until;

	if (db_connected())
		return DB_OK;
	db_close();
	if (db_conninfo == NULL) {
		db_seterr("", "no database configured");
		return DB_ECONN;
	}
	if (util_now_us() < db_next_try) {
		db_seterr("database unreachable: ", db_connerr);
		return DB_ECONN;
	}
	snprintf(timeout, sizeof(timeout), "%lld",
	    db_timeout_ms < 2000 ? 2 : (db_timeout_ms + 999) / 1000);
	val[0] = timeout;
	val[1] = "telehook";
	val[2] = db_conninfo;	/* expanded; its own keys win */
	val[3] = NULL;
	if (db_expired())
		return DB_EDEADLINE;
	/*
	 * Connecting is a round trip too (several): a postmaster that does
	 * not answer, or a pooler that queues us, has the same deadline,
	 * and never longer than connect_timeout would be.
	 */
	db_rt_begin();
	until = db_rt_start + (db_timeout_ms < 2000 ? 2000 : db_timeout_ms) *
	    1000;
	if (db_rt_until == 0 || db_rt_until > until)
		db_rt_until = until;
	db_connecting = 1;
	db_conn = PQconnectStartParams(kw, val, 1);
	st = PGRES_POLLING_WRITING;
	while (db_conn != NULL && PQstatus(db_conn) != CONNECTION_BAD &&
	    st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
		if (db_wait(db_conn, st == PGRES_POLLING_READING ? POLLIN :
		    POLLOUT) == -1)
			break;
		st = PQconnectPoll(db_conn);
	}
	db_connecting = 0;
	if (db_conn == NULL || PQstatus(db_conn) != CONNECTION_OK) {
		if (!db_late)
			db_seterr("", db_conn != NULL ?
			    PQerrorMessage(db_conn) : "out of memory");
		memcpy(db_connerr, db_err, sizeof(db_connerr));
		db_close();
		db_next_try = util_now_us() + DB_RETRY_US;
		if (!db_was_down)
			log_warnx("database unreachable: %s", db_connerr);
		db_was_down = 1;
		if (db_late) {
			db_late = 0;	/* nothing of a request was sent */
			return DB_EDEADLINE;
		}
		return DB_ECONN;
	}
	PQsetNoticeProcessor(db_conn, db_notice, NULL);
	if (PQsetnonblocking(db_conn, 1) == -1) {
		db_seterr("", PQerrorMessage(db_conn));
		db_close();
		return DB_ECONN;
	}
	snprintf(db_timeouts[0], sizeof(db_timeouts[0]), "%lld",
	    db_timeout_ms);
	snprintf(db_timeouts[1], sizeof(db_timeouts[1]), "%lld",
	    db_lock_ms > 0 && db_lock_ms < db_timeout_ms ? db_lock_ms :
	    db_timeout_ms);
	if (db_pooler == DB_POOLER_TRANSACTION)
		goto connected;	/* per transaction: db_pipe_begin() */
	/*
	 * A lock held elsewhere (a table locked by a migration or a stuck
	 * session) stops a webhook for no longer than lock_timeout_ms: the
	 * request goes to the spool instead (and opens the breaker).
	 */
	snprintf(set, sizeof(set), "SET statement_timeout = %lld; "
	    "SET lock_timeout = %lld", db_timeout_ms,
	    db_lock_ms > 0 && db_lock_ms < db_timeout_ms ? db_lock_ms :
	    db_timeout_ms);
	db_connecting = 1;
	res = db_exec_simple(set);
	db_connecting = 0;
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		if (!db_late)
			db_seterr("", PQerrorMessage(db_conn));
		memcpy(db_connerr, db_err, sizeof(db_connerr));
		PQclear(res);
		db_close();
		db_next_try = util_now_us() + DB_RETRY_US;
		if (db_late) {
			db_late = 0;
			return DB_EDEADLINE;
		}
		return DB_ECONN;
	}
	PQclear(res);
connected:
	db_next_try = 0;
	if (db_was_down)
		log_notice("database connected again");
	db_was_down = 0;
	return DB_OK;
}

/* What went wrong with res, by SQLSTATE; DB_OK if nothing did. */
static enum db_err
db_classify(PGresult *res)
{
	const char	*state;

	if (res == NULL && db_late)
		return DB_EDEADLINE;	/* db_err says why */
	switch (PQresultStatus(res)) {
	case PGRES_COMMAND_OK:
	case PGRES_TUPLES_OK:
	case PGRES_EMPTY_QUERY:
		return DB_OK;
	default:
		break;
	}
	db_seterr("", PQresultErrorMessage(res)[0] != '\0' ?
	    PQresultErrorMessage(res) : PQerrorMessage(db_conn));
	if (PQstatus(db_conn) != CONNECTION_OK)
		return DB_ECONN;
	state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	if (state == NULL)
		return DB_ECONN;
	if (strcmp(state, "57014") == 0)	/* query_canceled */
		return DB_ETIMEOUT;
	if (strcmp(state, "23505") == 0)	/* unique_violation */
		return DB_EDUP;
	if (strcmp(state, "TH403") == 0)	/* th_route(), sql/functions.sql */
		return DB_ESCOPE;
	/*
	 * architecture.md §6: a database that refuses writes for a while
	 * counts as away.  Read-only is a state of its own: the connection
	 * is kept (the caller opens the breaker and probes), not dropped
	 * and reopened at every refused write.
	 */
	if (strcmp(state, "25006") == 0)	/* read_only_sql_transaction */
		return DB_EREADONLY;
	if (strncmp(state, "08", 2) == 0 ||	/* connection exception */
	    strncmp(state, "57P", 3) == 0)	/* shutdown, cannot connect */
		return DB_ECONN;
	if (strcmp(state, "55P03") == 0)	/* lock_not_available */
		return DB_ETIMEOUT;
	if (strncmp(state, "53", 2) == 0 ||	/* out of connections, disk */
	    strncmp(state, "58", 2) == 0 ||	/* system, I/O error */
	    strcmp(state, "40001") == 0 ||	/* serialization_failure */
	    strcmp(state, "40P01") == 0)	/* deadlock_detected */
		return DB_EAGAIN;
	return DB_EQUERY;
}

/*
 * The next result of a pipeline into *e (the first failure wins) and
 * out; each query's results end with a NULL.
 */
static void
db_pipe_result(enum db_err *e, struct db_res *out)
{
	PGresult	*res;
	enum db_err	 r;

	while ((res = db_getresult()) != NULL) {
		if (PQresultStatus(res) == PGRES_PIPELINE_SYNC) {
			PQclear(res);
			return;
		}
		if (PQresultStatus(res) == PGRES_PIPELINE_ABORTED)
			r = DB_EQUERY;	/* an earlier step failed */
		else
			r = db_classify(res);
		if (*e == DB_OK && r != DB_OK)
			*e = r;
		if (r == DB_OK && out != NULL)
			db_copy(res, out);
		PQclear(res);
	}
	if (db_late)
		*e = DB_EDEADLINE;
}

/*
 * BEGIN, the PREPARE of st if needed, and the statement itself, in one
 * round trip (libpq pipeline mode).  *prepared tells whether the PREPARE
 * took, which outlives a failed transaction.
 */
static enum db_err
db_pipe_begin(const struct db_stmt *st, const char *sql, int n,
    const char *const *params, int *prepared, struct db_res *out)
{
	static const char *const set_local = "SELECT "
	    "set_config('statement_timeout', $1, true), "
	    "set_config('lock_timeout', $2, true)";
	const char	*tp[2] = { db_timeouts[0], db_timeouts[1] };
	PGresult	*res;
	enum db_err	 e = DB_OK, ep = DB_OK;
	int		 ok, prepare = *prepared == 0 && st != NULL, pooled;

	pooled = db_pooler == DB_POOLER_TRANSACTION;
	if (pooled)
		prepare = 0;
	*prepared = 0;
	db_rt_begin();
	if (!PQenterPipelineMode(db_conn)) {
		db_seterr("", PQerrorMessage(db_conn));
		return DB_ECONN;
	}
	ok = PQsendQueryParams(db_conn, "BEGIN", 0, NULL, NULL, NULL, NULL,
	    0);
	if (ok && pooled)
		ok = PQsendQueryParams(db_conn, set_local, 2, NULL, tp, NULL,
		    NULL, 0);
	if (ok && prepare)
		ok = PQsendPrepare(db_conn, st->name, st->sql, st->nparams,
		    NULL);
	if (ok && st != NULL && !pooled)
		ok = PQsendQueryPrepared(db_conn, st->name, n, params, NULL,
		    NULL, 0);
	else if (ok)
		ok = PQsendQueryParams(db_conn, st != NULL ? st->sql : sql, n,
		    NULL, params, NULL, NULL, 0);
	if (!ok || !PQpipelineSync(db_conn) || db_flush() == -1) {
		if (db_late)
			return DB_EDEADLINE;
		db_seterr("", PQerrorMessage(db_conn));
		(void)PQexitPipelineMode(db_conn);
		return DB_ECONN;
	}
	db_pipe_result(&e, NULL);
	if (pooled)
		db_pipe_result(&e, NULL);
	if (prepare) {
		db_pipe_result(&ep, NULL);
		*prepared = e == DB_OK && ep == DB_OK;
		if (e == DB_OK)
			e = ep;
	}
	db_pipe_result(&e, out);
	/* then the sync, unless the connection went */
	while ((res = db_getresult()) != NULL) {
		ok = PQresultStatus(res) == PGRES_PIPELINE_SYNC;
		PQclear(res);
		if (ok)
			break;
	}
	if (db_late) {
		if (out != NULL)
			db_res_free(out);
		return DB_EDEADLINE;
	}
	if (!PQexitPipelineMode(db_conn) && e == DB_OK) {
		db_seterr("", PQerrorMessage(db_conn));
		e = DB_ECONN;
	}
	if (e != DB_OK && PQstatus(db_conn) != CONNECTION_OK)
		e = DB_ECONN;
	if (e != DB_OK && out != NULL)
		db_res_free(out);
	return e;
}

/*
 * Run a statement: prepared (stmt >= 0) or plain SQL.  A connection
 * found broken outside a transaction is reopened and the statement tried
 * once more, so a database restart between requests costs nothing.
 */
static enum db_err	db_run_stmt1(const struct db_stmt *, const char *, int,
			    const char *const *, struct db_res *);

static enum db_err
db_run_stmt(const struct db_stmt *st, const char *sql, int n,
    const char *const *params, struct db_res *out)
{
	enum db_err	 e;

	if ((e = db_run_stmt1(st, sql, n, params, out)) != DB_OK) {
		db_last = e;
		if (e != DB_EDUP && e != DB_ESCOPE && db_on_error != NULL)
			db_on_error();
	}
	return e;
}

static enum db_err
db_run_stmt1(const struct db_stmt *st, const char *sql, int n,
    const char *const *params, struct db_res *out)
{
	PGresult	*res;
	enum db_err	 e;
	int		 attempt, pending = db_tx_pending, prepared;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (db_tx_dead != DB_OK) {
		db_seterr("", "the transaction's connection is gone");
		return db_tx_dead;
	}
	for (attempt = 0; attempt < 2; attempt++) {
		if ((e = db_connect()) != DB_OK)
			return e;
		if (db_expired())
			return DB_EDEADLINE;
		if (st != NULL && !db_is_prepared(st) &&
		    db_nprepared == DB_MAXPREPARED) {
			db_seterr("", "too many prepared statements");
			return DB_EQUERY;
		}
		if (pending) {
			/* nothing of this transaction reached the server yet */
			prepared = st == NULL || db_is_prepared(st);
			e = db_pipe_begin(st, sql, n, params, &prepared, out);
			if (st != NULL && prepared && !db_is_prepared(st))
				db_prepared[db_nprepared++] = st;
			db_tx_pending = 0;
			if (e == DB_ECONN && attempt == 0) {
				db_close();
				db_in_tx = db_tx_pending = 1;
				db_tx_dead = DB_OK;	/* nothing was lost */
				continue;
			}
			if (e == DB_ECONN)
				db_close();
			return e;
		}
		if (st != NULL && db_pooler == DB_POOLER_TRANSACTION) {
			/* unnamed: parsed with this statement, kept by none */
			sql = st->sql;
			st = NULL;
		}
		if (st != NULL && !db_is_prepared(st)) {
			db_rt_begin();
			res = db_finish(PQsendPrepare(db_conn, st->name,
			    st->sql, st->nparams, NULL));
			e = db_classify(res);
			PQclear(res);
			if (e == DB_ECONN && !db_in_tx && attempt == 0) {
				db_close();
				continue;
			}
			if (e != DB_OK)
				return e;
			db_prepared[db_nprepared++] = st;
		}
		db_rt_begin();
		if (st != NULL)
			res = db_finish(PQsendQueryPrepared(db_conn, st->name,
			    n, params, NULL, NULL, 0));
		else
			res = db_finish(PQsendQueryParams(db_conn, sql, n,
			    NULL, params, NULL, NULL, 0));
		e = db_classify(res);
		if (e == DB_OK)
			db_copy(res, out);
		db_rolled_back = e == DB_OK &&
		    strcmp(PQcmdStatus(res), "ROLLBACK") == 0;
		PQclear(res);
		if (e == DB_ECONN && !db_in_tx && attempt == 0) {
			db_close();
			continue;
		}
		if (e == DB_ECONN)
			db_close();
		return e;
	}
	return DB_ECONN;
}

/* Run a prepared statement with its nparams parameters. */
enum db_err
db_exec(const struct db_stmt *st, const char *const *params,
    struct db_res *out)
{
	return db_run_stmt(st, NULL, st->nparams, params, out);
}

/* Plain SQL with $n parameters, for telehookctl. */
enum db_err
db_query(const char *sql, int n, const char *const *params,
    struct db_res *out)
{
	return db_run_stmt(NULL, sql, n, params, out);
}

/* Several statements at once (migrations); no parameters, no result. */
enum db_err
db_run(const char *sql)
{
	PGresult	*res;
	enum db_err	 e;

	if ((e = db_connect()) != DB_OK)
		return e;
	if (db_tx_pending) {
		res = db_exec_simple("BEGIN");
		e = db_classify(res);
		PQclear(res);
		if (e != DB_OK)
			return e;
		db_tx_pending = 0;
	}
	res = db_exec_simple(sql);
	e = db_classify(res);
	PQclear(res);
	return e;
}

/* Open a transaction: BEGIN goes out with its first statement. */
enum db_err
db_begin(void)
{
	if (db_in_tx) {
		db_seterr("", "a transaction is already open");
		return DB_EQUERY;
	}
	db_in_tx = db_tx_pending = 1;
	db_tx_dead = DB_OK;
	return DB_OK;
}

/* COMMIT prepared, as every statement: not parsed again per request */
static const struct db_stmt st_commit = { "db_commit", "COMMIT", 0 };

enum db_err
db_commit(void)
{
	enum db_err	 e = DB_OK;

	/*
	 * The server answers the COMMIT of a transaction one of its
	 * statements aborted with ROLLBACK, not an error: a caller that went
	 * on past a failure must not have its request answered as stored.
	 */
	if (!db_tx_pending &&
	    (e = db_exec(&st_commit, NULL, NULL)) == DB_OK && db_rolled_back) {
		db_seterr("", "the transaction was rolled back: one of its "
		    "statements failed");
		e = db_last = DB_EQUERY;
	}
	db_in_tx = db_tx_pending = 0;
	db_tx_dead = DB_OK;
	return e;
}

void
db_rollback(void)
{
	PGresult	*res;

	/* no time left: dropping the connection rolls back as well */
	if (!db_tx_pending && db_connected()) {
		if (db_deadline != 0 && util_now_us() >= db_deadline)
			db_close();
		else {
			res = db_exec_simple("ROLLBACK");
			PQclear(res);
			db_late = 0;
		}
	}
	db_in_tx = db_tx_pending = 0;
	db_tx_dead = DB_OK;
}
