/*
 * health.c: GET /healthz for load balancers and monitoring.  "ok" when
 * the database answers and nothing waits in the spool; "degraded" while
 * either is not so; 503 only when no webhook could be taken at all,
 * because neither the database nor the spool accepts a write.
 *
 * It answers within HEALTH_US whatever the database does: while the
 * pool's breaker is open or half-open its reason is the database's
 * state (slow, down, read_only) and nothing is asked; it stays "slow"
 * for HEALTH_SLOW_US after it last opened as slow (a database a little
 * slow for the offered rate passes each probe and is slow again at
 * once); otherwise one round trip with its own deadline, "unknown" if
 * that passes.
 *
 * It is asked on a listener of its own ([server] health_socket), not in
 * the pool's queue: a /healthz there would wait behind webhooks that
 * wait for the database, the very moment it is asked.  Each worker
 * forks a server for it; they take turns holding a lock in the spool
 * directory, and the one holding it listens, so there is always one,
 * with a database connection of its own.  nginx asks the pool when no
 * one listens (telehook.conf).
 */
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fcgiapp.h>

#include "extern.h"

static const char *const replica_states[] = {
	[DB_REPLICA_NONE] = "none",
	[DB_REPLICA_OK] = "ok",
	[DB_REPLICA_BEHIND] = "behind",
	[DB_REPLICA_DOWN] = "down",
};

#define HEALTH_US	(150 * 1000)
/* slow that long after the breaker last opened as slow, closed or not */
#define HEALTH_SLOW_US	(2000 * 1000)

static const struct db_stmt health_ping = { "health_ping",
	"SELECT current_setting('transaction_read_only')", 0 };

/* What the database is: ok, down, slow, read_only or unknown. */
static const char *
health_database(void)
{
	struct db_res	 res;
	enum breaker_reason why;
	enum db_err	 e;
	const char	*state;

	if ((why = breaker_reason()) != BREAKER_NONE)
		return breaker_name(why);
	if (breaker_slow_since(now_us() - HEALTH_SLOW_US))
		return breaker_name(BREAKER_SLOW);
	e = db_exec(&health_ping, NULL, &res);
	if (e == DB_EDEADLINE)
		return "unknown";
	if (e != DB_OK)
		return "down";
	state = db_get(&res, 0, 0) != NULL &&
	    strcmp(db_get(&res, 0, 0), "on") == 0 ? "read_only" : "ok";
	db_res_free(&res);
	return state;
}

enum db_err
health_handle(struct req *r, struct resp *p)
{
	cJSON		*o;
	const char	*spool, *database;
	long		 depth, quarantined;
	long long	 oldest, age = 0;
	int		 db_up, ok;

	(void)r;
	/* the database's answer and the replica's, within HEALTH_US */
	db_set_deadline(now_us() + HEALTH_US);
	database = health_database();
	db_up = strcmp(database, "ok") == 0;
	depth = spool_depth(conf.spool_dir);
	quarantined = spool_quarantined(conf.spool_dir);
	if ((oldest = spool_oldest(conf.spool_dir)) > 0)
		age = (wall_us() - oldest) / 1000000;
	spool = spool_state(conf.spool_dir);
	/*
	 * ok: nothing waits, nothing set aside, the database answers and
	 * the breaker is closed.  503 only when neither the database nor
	 * the spool can take a webhook.
	 */
	ok = db_up && depth == 0 && quarantined == 0 &&
	    !breaker_is_open(now_us()) && strcmp(spool, "ok") == 0;
	if ((o = cJSON_CreateObject()) == NULL) {
		db_set_deadline(0);
		return DB_EQUERY;
	}
	cJSON_AddStringToObject(o, "status", ok ? "ok" : "degraded");
	cJSON_AddStringToObject(o, "database", database);
	cJSON_AddNumberToObject(o, "spool_depth", depth < 0 ? 0 :
	    (double)depth);
	cJSON_AddNumberToObject(o, "spool_oldest_s", (double)age);
	cJSON_AddNumberToObject(o, "quarantined", (double)quarantined);
	cJSON_AddStringToObject(o, "spool", spool);
	cJSON_AddBoolToObject(o, "breaker_open", breaker_is_open(now_us()));
	cJSON_AddStringToObject(o, "breaker_reason",
	    breaker_name(breaker_reason()));
	/* the API's read replica: reported, not part of "status" */
	cJSON_AddStringToObject(o, "read_replica",
	    replica_states[db_replica_state()]);
	db_set_deadline(0);
	resp_set_json(p, !db_up && strcmp(spool, "ok") != 0 ? 503 : 200, o);
	return DB_OK;
}

/*
 * The listener, once this server holds the lock: the path unlinked and
 * bound again, with the mode of the pool's own socket (nginx connects
 * to both).  -1 if it cannot be.
 */
static int
health_bind(const char *path)
{
	struct sockaddr_un	 sun;
	struct sockaddr_un	 pool;
	socklen_t		 len = sizeof(pool);
	struct stat		 st;
	mode_t			 mode = 0660;
	int			 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		log_warnx("health_socket %s: path too long", path);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	memset(&pool, 0, sizeof(pool));
	if (getsockname(0, (struct sockaddr *)&pool, &len) == 0 &&
	    pool.sun_family == AF_UNIX && pool.sun_path[0] != '\0' &&
	    stat(pool.sun_path, &st) == 0)
		mode = st.st_mode & 0777;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		log_warn("health_socket: socket");
		return -1;
	}
	if ((unlink(path) == -1 && errno != ENOENT) ||
	    bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    chmod(path, mode) == -1 || listen(fd, 64) == -1) {
		log_warn("health_socket %s", path);
		close(fd);
		return -1;
	}
	return fd;
}

/* The server's life: wait for the lock, listen, answer /healthz only. */
static void NORETURN
health_serve(pid_t worker)
{
	FCGX_Request	 fr;
	const char	*uri;
	char		*lock;
	sigset_t	 all;
	int		 lfd, fd;

	/* the worker's signals are held; this process dies with it */
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	signal(SIGTERM, SIG_DFL);
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) == -1 || getppid() != worker)
		_exit(0);
	/* never a pool request: the pool's socket is not this one's */
	if ((fd = open("/dev/null", O_RDWR)) != -1 && fd != 0) {
		dup2(fd, 0);
		close(fd);
	}
	xasprintf(&lock, "%s/.health.lock", conf.spool_dir);
	if ((fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) == -1) {
		log_warn("%s", lock);
		_exit(0);
	}
	free(lock);
	while (flock(fd, LOCK_EX) == -1)
		if (errno != EINTR)
			_exit(0);
	/*
	 * Holding the lock and unable to listen: keep it, so the other
	 * workers' servers do not each say so too; nginx asks the pool.
	 */
	if ((lfd = health_bind(conf.health_socket)) == -1)
		for (;;)
			pause();
	if (FCGX_InitRequest(&fr, lfd, 0) != 0)
		_exit(0);
	log_notice("health server ready on %s", conf.health_socket);
	while (FCGX_Accept_r(&fr) >= 0) {
		uri = FCGX_GetParam("REQUEST_URI", fr.envp);
		if (uri != NULL && strncmp(uri, "/healthz", 8) == 0 &&
		    (uri[8] == '\0' || uri[8] == '?'))
			dispatch_request(&fr);
		else
			FCGX_PutS("Status: 404 Not Found\r\n"
			    "Content-Type: application/json\r\n\r\n"
			    "{\"error\":\"only /healthz is answered here\"}\n",
			    fr.out);
		FCGX_Finish_r(&fr);
	}
	_exit(0);
}

static pid_t		 health_pid = -1;	/* this worker's server */
static long long	 health_forked;

/*
 * Fork this worker's health server.  The child lets go of the worker's
 * database connections at once (db_forget): it makes its own.
 */
void
health_listen(void)
{
	pid_t	 worker = getpid();

	if (conf.health_socket == NULL)
		return;
	health_forked = now_us();
	switch (health_pid = fork()) {
	case -1:
		log_warn("fork (health server)");
		break;
	case 0:
		db_forget();
		health_serve(worker);
	default:
		break;
	}
}

/*
 * Between requests: a server that died (killed, or crashed) is forked
 * again, at most once a second, so the pool never runs out of them.
 */
void
health_watch(void)
{
	int	 status;

	if (health_pid > 0 && waitpid(health_pid, &status, WNOHANG) ==
	    health_pid) {
		log_warnx("health server %ld %s %d: forking another",
		    (long)health_pid, WIFSIGNALED(status) ? "killed by signal" :
		    "exited", WIFSIGNALED(status) ? WTERMSIG(status) :
		    WEXITSTATUS(status));
		health_pid = -1;
	}
	if (health_pid == -1 && conf.health_socket != NULL &&
	    now_us() - health_forked >= 1000000)
		health_listen();
}
