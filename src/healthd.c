/*
 * healthd.c: /healthz's own listener ([server] health_socket), apart
 * from the pool's queue: a /healthz asked there would wait behind
 * webhooks that wait for the database, the very moment it is asked.
 * Each worker forks a health server; the servers take turns holding a
 * lock in the spool directory, and the one holding it listens, with a
 * database connection of its own.  A worker forks its server again
 * when it dies.  nginx asks the pool when no one listens
 * (telehook.conf).
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

/*
 * The mode of the pool's own socket (fd 0, as spawn-fcgi hands it),
 * 0660 when it is not a unix socket with a path.  Read before fd 0 is
 * let go: nginx connects to both sockets, as the same user.
 */
static mode_t
healthd_pool_mode(void)
{
	struct sockaddr_un	 pool;
	socklen_t		 len = sizeof(pool);
	struct stat		 st;

	memset(&pool, 0, sizeof(pool));
	if (getsockname(0, (struct sockaddr *)&pool, &len) == 0 &&
	    pool.sun_family == AF_UNIX && pool.sun_path[0] != '\0' &&
	    stat(pool.sun_path, &st) == 0)
		return st.st_mode & 0777;
	return 0660;
}

/*
 * The listener, once this server holds the lock: the path unlinked and
 * bound again, with mode.  -1 if it cannot be.
 */
static int
healthd_bind(const char *path, mode_t mode)
{
	struct sockaddr_un	 sun;
	int			 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		log_warnx("health_socket %s: path too long", path);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
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

static volatile sig_atomic_t healthd_stop;

static void
healthd_sigterm(int sig)
{
	(void)sig;
	healthd_stop = 1;
}

/*
 * Done: a stop (the worker's death, PR_SET_PDEATHSIG) ends every wait
 * of this process, and exit() lets a coverage build write its counts.
 */
static void NORETURN
healthd_done(void)
{
	db_close();
	exit(0);
}

/* The server's life: wait for the lock, listen, answer /healthz only. */
static void NORETURN
healthd_serve(pid_t worker)
{
	FCGX_Request	 fr;
	struct sigaction sa;
	const char	*uri;
	char		*lock;
	sigset_t	 all;
	mode_t		 mode;
	int		 lfd, fd;

	/* the worker's signals are held; this process dies with it */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = healthd_sigterm;	/* no SA_RESTART: waits end */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) == -1 || getppid() != worker)
		healthd_done();
	/* never a pool request: the pool's socket is not this one's */
	mode = healthd_pool_mode();
	if ((fd = open("/dev/null", O_RDWR)) != -1 && fd != 0) {
		dup2(fd, 0);
		close(fd);
	}
	xasprintf(&lock, "%s/.health.lock", conf.spool_dir);
	if ((fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) == -1) {
		log_warn("%s", lock);
		healthd_done();
	}
	free(lock);
	while (flock(fd, LOCK_EX) == -1)
		if (errno != EINTR || healthd_stop)
			healthd_done();
	/*
	 * Holding the lock and unable to listen: keep it, so the other
	 * workers' servers do not each say so too; nginx asks the pool.
	 */
	if ((lfd = healthd_bind(conf.health_socket, mode)) == -1)
		while (!healthd_stop)
			pause();
	if (healthd_stop || FCGX_InitRequest(&fr, lfd,
	    FCGI_FAIL_ACCEPT_ON_INTR) != 0)
		healthd_done();
	log_notice("health server ready on %s", conf.health_socket);
	while (!healthd_stop && FCGX_Accept_r(&fr) >= 0) {
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
	healthd_done();
}

static pid_t		 healthd_pid = -1;	/* this worker's server */
static long long	 healthd_forked;

/*
 * Fork this worker's health server.  The child lets go of the worker's
 * database connections at once (db_forget): it makes its own.
 */
void
healthd_listen(void)
{
	pid_t	 worker = getpid();

	if (conf.health_socket == NULL)
		return;
	healthd_forked = util_now_us();
	switch (healthd_pid = fork()) {
	case -1:
		log_warn("fork (health server)");
		break;
	case 0:
		db_forget();
		healthd_serve(worker);
	default:
		break;
	}
}

/*
 * Between requests: a server that died (killed, or crashed) is forked
 * again, at most once a second, so the pool never runs out of them.
 */
void
healthd_watch(void)
{
	int	 status;

	if (healthd_pid > 0 && waitpid(healthd_pid, &status, WNOHANG) ==
	    healthd_pid) {
		log_warnx("health server %ld %s %d: forking another",
		    (long)healthd_pid, WIFSIGNALED(status) ? "killed by signal" :
		    "exited", WIFSIGNALED(status) ? WTERMSIG(status) :
		    WEXITSTATUS(status));
		healthd_pid = -1;
	}
	if (healthd_pid == -1 && conf.health_socket != NULL &&
	    util_now_us() - healthd_forked >= 1000000)
		healthd_listen();
}
