/*
 * ctl_endpoint.c: telehookctl endpoint and deliveries, the operator's
 * side of delivering events to the organizations' own systems
 * (architecture.md §14; the sender is deliver.c).
 *
 * An endpoint's secret is printed once, when it is made or rotated,
 * and stored sealed with secret_key_file; it is never printed again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "extern.h"
#include "ctl.h"

/* The event types of telehook(8), "Delivering events". */
static const char *const endpoint_types[] = {
	"call.started", "call.answered", "call.missed", "call.ended",
	"call.analyzed", "voicemail.received", "sms.received", "sms.sent",
	"sms.delivered", "sms.failed", "campaign.contact_updated", NULL
};

/*
 * A URL we may POST to: http(s), a host, no credentials in it, and not
 * an address inside (egress.c) unless [delivery] allow_private = yes.
 * A name is checked again at every connection, after resolution.
 */
static void
endpoint_url_check(const char *url)
{
	const char	*h;
	size_t		 n;

	if (strncmp(url, "https://", 8) == 0)
		h = url + 8;
	else if (strncmp(url, "http://", 7) == 0)
		h = url + 7;
	else
		ctl_die(EX_DATAERR_, "%s: an endpoint is an http:// or https:// "
		    "URL", url);
	n = strcspn(h, "/?#");
	if (n == 0 || memchr(h, '@', n) != NULL || strpbrk(url, " \t\r\n"))
		ctl_die(EX_DATAERR_, "%s: no host, or credentials in the URL",
		    url);
	if (!conf.delivery.allow_private && egress_url_inside(url))
		ctl_die(EX_DATAERR_, "%s: not a public address ([delivery] "
		    "allow_private is off)", url);
}

static void
need_key(void)
{
	if (!crypto_have_key)
		ctl_die(EX_CONFIG_, "secret_key_file is not set in %s: endpoint "
		    "secrets cannot be sealed", conf.path);
}

/* endpoint add ORG URL [--events T,...] [--description TEXT] */
static int
ctl_endpoint_add(int argc, char **argv)
{
	const char	*events = NULL, *desc = NULL;
	const struct ctl_opt opts[] = { { "events", &events, 0 },
			    { "description", &desc, 0 }, { NULL, NULL, 0 } };
	char		 secret[WHSIG_SECRET_MAX], *sealed, *id;
	const char	*p[5], *bad;
	struct buf	 ev;
	struct db_res	 res;
	cJSON		*o;
	int		 i;

	i = ctl_parse_opts(argc, argv, opts);
	need_key();
	endpoint_url_check(argv[i + 1]);
	buf_init(&ev);
	if (events != NULL && (bad = ctl_words(events, endpoint_types,
	    &ev)) != NULL)
		ctl_die(EX_DATAERR_, "--events: %s is not an event type (see "
		    "telehook(8))", bad);
	id = ctl_resolve_org(argv[i]);
	whsig_secret_new(secret, sizeof(secret));
	if ((sealed = crypto_seal(crypto_key, secret)) == NULL)
		ctl_die(EX_SOFTWARE_, "could not seal the secret");
	p[0] = id;
	p[1] = argv[i + 1];
	p[2] = events != NULL ? buf_cstr(&ev) : NULL;
	p[3] = desc;
	p[4] = sealed;
	ctl_q("endpoint add", "INSERT INTO endpoints (organization_id, url, "
	    "events, description, secret_sealed) VALUES ($1, $2, $3, $4, $5) "
	    "RETURNING id", 5, p, &res);
	if (ctl_json_out) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "id", db_val(&res, 0, "id"));
		cJSON_AddStringToObject(o, "organization_id", id);
		cJSON_AddStringToObject(o, "url", argv[i + 1]);
		cJSON_AddStringToObject(o, "secret", secret);
		ctl_json_print(o);
	} else
		printf("endpoint %s\nsecret %s\n(the secret is shown this "
		    "once: give it to the receiver now)\n", db_val(&res, 0, "id"),
		    secret);
	sodium_memzero(secret, sizeof(secret));
	db_res_free(&res);
	buf_free(&ev);
	free(sealed);
	free(id);
	return 0;
}

static int
ctl_endpoint_list(int argc, char **argv)
{
	static const char *const cols[] = { "id", "url", "events",
	    "enabled:b", "description", "delivered:n", "failed:n",
	    "avg_ms:n", "backlog:n", "dead:n", "disabled_reason", NULL };

	return ctl_rows(argc, argv, "endpoints", "SELECT e.id, e.url, "
	    "coalesce(array_to_string(e.events, ','), 'all') AS events, "
	    "e.enabled, e.description, "
	    "e.ok_total AS delivered, e.failed_total AS failed, CASE WHEN "
	    "e.ok_total + e.failed_total > 0 THEN e.latency_ms_sum / "
	    "(e.ok_total + e.failed_total) ELSE 0 END AS avg_ms, "
	    "(SELECT count(*) FROM deliveries d WHERE d.endpoint_id = e.id AND "
	    "d.state IN ('pending', 'sending', 'retry')) AS backlog, "
	    "(SELECT count(*) FROM deliveries d WHERE d.endpoint_id = e.id AND "
	    "d.state = 'dead') AS dead, e.disabled_reason "
	    "FROM endpoints e WHERE e.organization_id = $1 ORDER BY "
	    "e.created_at, e.id", cols, 0);
}

/* endpoint disable|enable|remove ID */
static int
endpoint_change(const char *what, const char *id, const char *sql)
{
	const char	*p[1] = { id };
	struct db_res	 res;

	if (!store_is_uuid(id))
		ctl_die(EX_DATAERR_, "%s is not an endpoint id", id);
	ctl_q(what, sql, 1, p, &res);
	if (res.nrows == 0)
		ctl_die(EX_DATAERR_, "no endpoint %s", id);
	if (ctl_json_out)
		printf("{\"id\":\"%s\"}\n", id);
	else
		printf("%s %s\n", what, id);
	db_res_free(&res);
	return 0;
}

static int
ctl_endpoint_disable(int argc, char **argv)
{
	(void)ctl_parse_opts(argc, argv, NULL);
	return endpoint_change("disabled", argv[argc - 1], "UPDATE endpoints "
	    "SET enabled = false, disabled_reason = 'by the operator at ' || "
	    "th_iso(now()) WHERE id = $1 RETURNING id");
}

static int
ctl_endpoint_enable(int argc, char **argv)
{
	(void)ctl_parse_opts(argc, argv, NULL);
	return endpoint_change("enabled", argv[argc - 1], "UPDATE endpoints "
	    "SET enabled = true, disabled_reason = NULL WHERE id = $1 "
	    "RETURNING id");
}

static int
ctl_endpoint_remove(int argc, char **argv)
{
	(void)ctl_parse_opts(argc, argv, NULL);
	return endpoint_change("removed", argv[argc - 1], "DELETE FROM "
	    "endpoints WHERE id = $1 RETURNING id");
}

/*
 * endpoint rotate-secret ID: a new secret, printed once; the old one
 * keeps signing beside it for 24 hours (a receiver may check either).
 */
static int
ctl_endpoint_rotate(int argc, char **argv)
{
	char		 secret[WHSIG_SECRET_MAX], *sealed;
	const char	*p[2], *id;
	struct db_res	 res;
	cJSON		*o;

	(void)ctl_parse_opts(argc, argv, NULL);
	id = argv[argc - 1];
	need_key();
	if (!store_is_uuid(id))
		ctl_die(EX_DATAERR_, "%s is not an endpoint id", id);
	whsig_secret_new(secret, sizeof(secret));
	if ((sealed = crypto_seal(crypto_key, secret)) == NULL)
		ctl_die(EX_SOFTWARE_, "could not seal the secret");
	p[0] = id;
	p[1] = sealed;
	ctl_q("endpoint rotate-secret", "UPDATE endpoints SET previous_sealed = "
	    "secret_sealed, previous_until = now() + interval '24 hours', "
	    "secret_sealed = $2 WHERE id = $1 RETURNING th_iso(previous_until) "
	    "AS previous_until", 2, p, &res);
	if (res.nrows == 0)
		ctl_die(EX_DATAERR_, "no endpoint %s", id);
	if (ctl_json_out) {
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "id", id);
		cJSON_AddStringToObject(o, "secret", secret);
		cJSON_AddStringToObject(o, "previous_until",
		    db_val(&res, 0, "previous_until"));
		ctl_json_print(o);
	} else
		printf("secret %s\n(shown this once; the previous secret "
		    "also signs until %s)\n", secret,
		    db_val(&res, 0, "previous_until"));
	sodium_memzero(secret, sizeof(secret));
	free(sealed);
	db_res_free(&res);
	return 0;
}

/*
 * endpoint test ID: queue a ping for it and wait (up to 20 s) for the
 * sender to deliver it; says what became of it.  The endpoint's row is
 * locked meanwhile: its removal waits, then takes the ping (sql/014).
 */
static int
ctl_endpoint_test(int argc, char **argv)
{
	const char	*p[1], *id, *state = NULL, *error;
	struct db_res	 res;
	char		*did;
	int		 tries, rc = 0;

	(void)ctl_parse_opts(argc, argv, NULL);
	id = argv[argc - 1];
	if (!store_is_uuid(id))
		ctl_die(EX_DATAERR_, "%s is not an endpoint id", id);
	p[0] = id;
	ctl_q("endpoint test", "WITH v AS (INSERT INTO delivery_events "
	    "(organization_id, type, subject, body) SELECT e.organization_id, "
	    "'ping', 'ping:' || e.id, json_build_object('type', 'ping', "
	    "'timestamp', th_iso(now()), 'data', json_build_object("
	    "'endpoint_id', e.id))::text FROM endpoints e WHERE e.id = $1 "
	    "FOR KEY SHARE RETURNING id, organization_id, type, subject) "
	    "INSERT INTO deliveries (endpoint_id, "
	    "organization_id, msg_id, type, subject, event_id) SELECT $1, "
	    "v.organization_id, 'msg_' || replace(gen_random_uuid()::text, "
	    "'-', ''), v.type, v.subject, v.id FROM v RETURNING id", 1, p,
	    &res);
	if (res.nrows == 0)
		ctl_die(EX_DATAERR_, "no endpoint %s", id);
	did = xstrdup(db_val(&res, 0, "id"));
	db_res_free(&res);
	p[0] = did;
	for (tries = 0; tries < 200; tries++) {
		ctl_q("endpoint test", "SELECT state, last_status, last_error, "
		    "msg_id FROM deliveries WHERE id = $1::bigint", 1, p, &res);
		state = db_val(&res, 0, "state");
		if (strcmp(state, "pending") != 0 &&
		    strcmp(state, "sending") != 0)
			break;
		db_res_free(&res);
		usleep(100000);
	}
	if (tries == 200) {
		printf("ping %s queued; no sender delivered it within 20 s "
		    "(is telehook-deliver running?)\n", did);
		rc = 1;
	} else {
		error = db_val(&res, 0, "last_error");
		printf("ping %s (%s): %s%s%s\n", did, db_val(&res, 0,
		    "msg_id"), state, error != NULL ? ", " : "",
		    error != NULL ? error : "");
		rc = strcmp(state, "delivered") == 0 ? 0 : 1;
		db_res_free(&res);
	}
	free(did);
	return rc;
}

/* deliveries list [--endpoint ID] [--state S] [--limit N] */
static int
ctl_deliveries_list(int argc, char **argv)
{
	static const char *const cols[] = { "id", "endpoint_id", "msg_id",
	    "type", "state", "attempts:n", "last_status:n", "last_error",
	    "next_attempt_at", "created_at", "delivered_at", NULL };
	static const char *const states[] = { "pending", "sending", "retry",
	    "delivered", "dead", "failed", NULL };
	const char	*endpoint = NULL, *state = NULL, *limit = NULL;
	const struct ctl_opt opts[] = { { "endpoint", &endpoint, 0 },
			    { "state", &state, 0 }, { "limit", &limit, 0 },
			    { NULL, NULL, 0 } };
	const char	*p[3], *errstr;
	struct db_res	 res;
	int		 i;

	(void)ctl_parse_opts(argc, argv, opts);
	if (endpoint != NULL && !store_is_uuid(endpoint))
		ctl_die(EX_DATAERR_, "--endpoint %s is not an endpoint id",
		    endpoint);
	if (state != NULL) {
		for (i = 0; states[i] != NULL; i++)
			if (strcmp(state, states[i]) == 0)
				break;
		if (states[i] == NULL)
			ctl_die(EX_DATAERR_, "--state must be pending, sending, "
			    "retry, delivered or dead (failed: dead)");
	}
	if (limit != NULL) {
		(void)util_strtonum(limit, 1, 100000, &errstr);
		if (errstr != NULL)
			ctl_die(EX_DATAERR_, "--limit must be 1 to 100000");
	}
	p[0] = endpoint;
	p[1] = state != NULL && strcmp(state, "failed") == 0 ? "dead" : state;
	p[2] = limit != NULL ? limit : "100";
	ctl_q("deliveries list", "SELECT id, endpoint_id, msg_id, type, state, "
	    "attempts, last_status, last_error, th_iso(next_attempt_at) AS "
	    "next_attempt_at, th_iso(created_at) AS created_at, "
	    "th_iso(delivered_at) AS delivered_at FROM deliveries WHERE "
	    "($1::uuid IS NULL OR endpoint_id = $1::uuid) AND ($2::text IS "
	    "NULL OR state = $2) ORDER BY id DESC LIMIT $3::int", 3, p, &res);
	ctl_print_rows("deliveries", &res, cols);
	db_res_free(&res);
	return 0;
}

/*
 * deliveries retry ID | --endpoint ID --since TIME: send again, with
 * the same webhook-id, on a fresh schedule.  What is being sent is
 * left alone.
 */
static int
ctl_deliveries_retry(int argc, char **argv)
{
	const char	*endpoint = NULL, *since = NULL, *p[3];
	const struct ctl_opt opts[] = { { "endpoint", &endpoint, 0 },
			    { "since", &since, 0 }, { NULL, NULL, 0 } };
	struct db_res	 res;
	int		 i;
	cJSON		*o;

	i = ctl_parse_opts(argc, argv, opts);
	p[0] = p[1] = p[2] = NULL;
	if (i < argc) {
		if (endpoint != NULL || since != NULL)
			ctl_die(EX_USAGE_, "deliveries retry ID, or --endpoint ID "
			    "--since TIME");
		p[0] = ctl_check_id(argv[i], "a delivery id");
	} else {
		if (endpoint == NULL || since == NULL)
			ctl_die(EX_USAGE_, "deliveries retry ID, or --endpoint ID "
			    "--since TIME");
		if (!store_is_uuid(endpoint))
			ctl_die(EX_DATAERR_, "--endpoint %s is not an endpoint id",
			    endpoint);
		p[1] = endpoint;
		p[2] = since;
		if (db_query("SELECT $1::timestamptz", 1, p + 2, NULL) != DB_OK)
			ctl_die(EX_DATAERR_, "--since %s is not a time", since);
	}
	ctl_q("deliveries retry", "UPDATE deliveries SET state = 'pending', "
	    "attempts = 0, next_attempt_at = now(), last_error = NULL WHERE "
	    "state <> 'sending' AND (id = $1::bigint OR ($1 IS NULL AND "
	    "endpoint_id = $2::uuid AND created_at >= $3::timestamptz)) "
	    "RETURNING id", 3, p, &res);
	if (p[0] != NULL && res.nrows == 0)
		ctl_die(EX_DATAERR_, "no delivery %s (or it is being sent)", p[0]);
	if (ctl_json_out) {
		o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "retried", res.nrows);
		ctl_json_print(o);
	} else
		printf("retried %d\n", res.nrows);
	db_res_free(&res);
	return 0;
}

static void
deliveries_report(const struct deliver_stats *st)
{
	cJSON	*o;

	if (ctl_json_out) {
		o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "delivered", st->delivered);
		cJSON_AddNumberToObject(o, "retrying", st->retrying);
		cJSON_AddNumberToObject(o, "dead", st->dead);
		cJSON_AddNumberToObject(o, "disabled", st->disabled);
		cJSON_AddNumberToObject(o, "recovered", st->recovered);
		ctl_json_print(o);
	} else
		printf("delivered %d, retrying %d, dead %d, endpoints "
		    "disabled %d\n", st->delivered, st->retrying, st->dead,
		    st->disabled);
}

/* deliveries send: one pass, until nothing is due or in flight. */
static int
ctl_deliveries_send(int argc, char **argv)
{
	struct deliver_stats	 st;

	(void)ctl_parse_opts(argc, argv, NULL);
	log_setlevel(LOG_LEVEL_WARNING);
	if (deliver_run(1, &st) == -1)
		ctl_die_db(db_last_error(), "deliveries send");
	deliveries_report(&st);
	return 0;
}

/* deliveries run: the sender, until SIGTERM (telehook-deliver.service). */
static int
ctl_deliveries_run(int argc, char **argv)
{
	struct deliver_stats	 st;

	(void)ctl_parse_opts(argc, argv, NULL);
	/* a service: its journal says what the workers' would */
	log_setlevel(conf.log_level);
	log_info("deliveries: sender started");
	if (deliver_run(0, &st) == -1)
		ctl_die_db(db_last_error(), "deliveries run");
	log_info("deliveries: sender stopped: delivered %d, retrying %d, "
	    "dead %d; waited %lld s while the CPU was contended",
	    st.delivered, st.retrying, st.dead, st.deferred_ms / 1000);
	return 0;
}

const struct ctl_cmd ctl_endpoint_cmds[] = {
	{ "endpoint add", 2, 2, 1, "endpoint add ORG URL [--events TYPE,...] "
	    "[--description TEXT]", ctl_endpoint_add },
	{ "endpoint list", 1, 1, 1, "endpoint list ORG", ctl_endpoint_list },
	{ "endpoint disable", 1, 1, 1, "endpoint disable ID",
	    ctl_endpoint_disable },
	{ "endpoint enable", 1, 1, 1, "endpoint enable ID",
	    ctl_endpoint_enable },
	{ "endpoint remove", 1, 1, 1, "endpoint remove ID",
	    ctl_endpoint_remove },
	{ "endpoint rotate-secret", 1, 1, 1, "endpoint rotate-secret ID",
	    ctl_endpoint_rotate },
	{ "endpoint test", 1, 1, 1, "endpoint test ID", ctl_endpoint_test },
	{ "deliveries list", 0, 0, 1, "deliveries list [--endpoint ID] "
	    "[--state STATE] [--limit N]", ctl_deliveries_list },
	{ "deliveries retry", 0, 1, 1, "deliveries retry ID | --endpoint ID "
	    "--since TIME", ctl_deliveries_retry },
	{ "deliveries send", 0, 0, 1, "deliveries send",
	    ctl_deliveries_send },
	{ "deliveries run", 0, 0, 1, "deliveries run", ctl_deliveries_run },
	{ NULL, 0, 0, 0, NULL, NULL }
};
