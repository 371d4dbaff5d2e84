/*
 * main.c: telehook, the FastCGI worker.  Options, then the accept loop;
 * everything a request does happens in dispatch_request().
 *
 * spawn-fcgi hands the listening socket over as fd 0; multiwatch keeps N
 * copies of this process running and starts a new one when one exits.
 */
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <fcgiapp.h>

#include "extern.h"

/* On stdout and exit 0 when asked for (--help), else stderr and 64. */
static void NORETURN
usage(int asked)
{
	fprintf(asked ? stdout : stderr, "usage: telehook [-dnv] [-c file]\n"
	    "       telehook --help | --version\n");
	exit(asked ? EX_OK_ : EX_USAGE_);
}

static void
conf_print_error(const char *file, int line, const char *msg)
{
	if (line > 0)
		log_warnx("%s:%d: %s", file, line, msg);
	else
		log_warnx("%s: %s", file, msg);
}

#define IDLE_MS		250

int
main(int argc, char *argv[])
{
	const char	*path = TELEHOOK_CONF, *errstr;
	int		 ch, debug = 0, check = 0, verbose = 0;
	sigset_t	 hold, pending;
	struct timeval	 tv;
	FCGX_Request	 fr;
	int		 i, rc, stop;

	static const struct option lo[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};

	while ((ch = getopt_long(argc, argv, "c:dnvhV", lo, NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'd':
			debug = 1;
			break;
		case 'n':
			check = 1;
			break;
		case 'v':
			verbose = 1;
			break;
		case 'h':
			usage(1);
		case 'V':
			printf("telehook %s\n", PACKAGE_VERSION);
			return EX_OK_;
		default:
			usage(0);
		}
	}
	if (optind != argc)
		usage(0);

	log_init("telehook", debug || check, verbose ? LOG_LEVEL_DEBUG :
	    LOG_LEVEL_INFO);
	if (crypto_init() == -1)
		fatalx("libsodium failed to initialise");
	/* one out-of-memory policy: cJSON allocates as the rest does */
	cJSON_InitHooks(&(cJSON_Hooks){ xmalloc, free });
	if (conf_load(path, &conf, conf_print_error) != 0) {
		log_warnx("%s: configuration not loaded", path);
		exit(EX_CONFIG_);
	}
	if (check) {
		fprintf(stderr, "%s: configuration OK\n", path);
		exit(0);
	}
	log_setlevel(verbose ? LOG_LEVEL_DEBUG : conf.log_level);
	if (conf.secret_key_file != NULL &&
	    crypto_use_key(conf.secret_key_file, &errstr) == -1)
		fatalx("%s: %s", conf.secret_key_file, errstr);
	if (dispatch_check_table(routes, nroutes, &errstr) == -1)
		fatalx("route table: %s", errstr);
	if (conf.twilio.insecure_allow_unsigned)
		log_warnx("WARNING: [twilio] insecure_allow_unsigned = yes: "
		    "unsigned Twilio requests are accepted");
	if (conf.retell.insecure_allow_unsigned)
		log_warnx("WARNING: [retell] insecure_allow_unsigned = yes: "
		    "unsigned Retell requests are accepted");
	if (conf.voipms.insecure_allow_unsigned)
		log_warnx("WARNING: [voipms] insecure_allow_unsigned = yes: "
		    "VoIP.ms requests without token or address are accepted");

	if (FCGX_IsCGI())
		fatalx("standard input is not a FastCGI socket: run telehook "
		    "under spawn-fcgi (see telehook(8))");
	if (FCGX_Init() != 0 || FCGX_InitRequest(&fr, 0, 0) != 0)
		fatalx("FCGX_Init failed");
	signal(SIGPIPE, SIG_IGN);
	/*
	 * A worker whose multiwatch is gone (killed, not stopped) would
	 * hold its socket and database connection as an orphan: the death
	 * of the parent is a stop signal, taken between requests.
	 */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) == -1)
		log_warn("prctl PR_SET_PDEATHSIG");
	if (spool_writable(conf.spool_dir)) {
		char	*mpath;

		xasprintf(&mpath, "%s/.metrics", conf.spool_dir);
		metrics_init(mpath, routes, nroutes);
		free(mpath);
	} else
		metrics_init(NULL, routes, nroutes);
	db_setup(conf.conninfo, conf.statement_timeout_ms);
	db_set_lock_timeout(conf.lock_timeout_ms);
	db_set_pooler(conf.pooler);
	db_setup_read(conf.read_conninfo, conf.read_max_lag_ms);
	db_set_error_hook(metrics_db_error);
	/*
	 * A webhook's round trips have its answer budget (dispatch.c); any
	 * other's, a client-side backstop to statement_timeout_ms, which a
	 * frozen server never raises.  A round trip that waits gives up as
	 * soon as another worker opens the breaker.
	 */
	db_set_budget(conf.statement_timeout_ms + 1000);
	db_set_abandon_hook(breaker_opened_since);
	spool_set_replay(worker_replay);
	healthd_listen();
	if (db_connect() != DB_OK)
		log_warnx("database: %s", db_errmsg());
	else
		(void)cache_refresh(1);

	/*
	 * A stop signal waits until the request in hand is answered: it is
	 * held all the time and takes effect between requests, never
	 * between an accept and its answer.  multiwatch forwards SIGUSR2 to
	 * its workers without stopping itself: each exits so, and multiwatch
	 * starts a new one on the same socket, a restart that never leaves
	 * nginx without a listener (telehook(8)).
	 */
	sigemptyset(&hold);
	sigaddset(&hold, SIGTERM);
	sigaddset(&hold, SIGINT);
	sigaddset(&hold, SIGHUP);
	sigaddset(&hold, SIGQUIT);
	sigaddset(&hold, SIGUSR1);	/* multiwatch's graceful stop */
	sigaddset(&hold, SIGUSR2);	/* a restart, forwarded */
	sigprocmask(SIG_BLOCK, &hold, NULL);
	/*
	 * accept(2) waits at most IDLE_MS: an idle worker wakes to catch up
	 * on the spool and the cache, so a quiet site needs no traffic (nor
	 * an operator) to replay what it answered during an outage, and a
	 * held signal is seen.  Accepted connections do not keep the
	 * timeout (Linux copies it from the listening socket).
	 */
	tv.tv_sec = IDLE_MS / 1000;
	tv.tv_usec = (IDLE_MS % 1000) * 1000;
	if (setsockopt(0, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == -1)
		log_warn("setsockopt SO_RCVTIMEO");
	log_notice("worker ready");
	for (;;) {
		/* a held stop or restart signal: done, between requests */
		sigpending(&pending);
		for (i = 1, stop = 0; i < NSIG; i++)
			if (sigismember(&hold, i) && sigismember(&pending, i))
				stop = 1;
		if (stop)
			break;
		rc = FCGX_Accept_r(&fr);
		if (rc == -EAGAIN || rc == -EWOULDBLOCK) {
			worker_idle();
			healthd_watch();
			continue;
		}
		if (rc < 0)
			break;	/* libfcgi's own shutdown, or a broken socket */
		tv.tv_sec = tv.tv_usec = 0;
		(void)setsockopt(fr.ipcFd, SOL_SOCKET, SO_RCVTIMEO, &tv,
		    sizeof(tv));
		dispatch_request(&fr);
		FCGX_Finish_r(&fr);
		worker_idle();
		healthd_watch();
	}
	/*
	 * Said on every way out that is not a crash: the test harness
	 * counts a worker that logged "worker ready" and is gone without
	 * this line as crashed, whatever multiwatch did next.
	 */
	log_notice("worker done");
	db_close();
	conf_free(&conf);
	return 0;
}
