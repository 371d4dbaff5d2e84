/*
 * outbox.c: "telehookctl outbox send", which sends queued VoIP.ms
 * auto-replies through the VoIP.ms REST API (sendSMS, or sendMMS past
 * 160 characters) over HTTPS with the server's certificate verified.
 *
 * A row is claimed (state sending, committed) before the API is called
 * and marked sent after, in the transaction that also records the
 * outbound message and its activity.  A failure is tried again later,
 * 30 s after the first attempt and twice as long each time after, up to
 * an hour apart, OUTBOX_MAX_ATTEMPTS times in all.  A row left in
 * sending by a sender that died goes back to the queue after ten
 * minutes: the API may then see it twice, never zero times.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "extern.h"
#include "ctl.h"

#define OUTBOX_BATCH		20
#define OUTBOX_MAX_REPLY	(64 * 1024)

/* A North American E.164 number as the 10 digits VoIP.ms wants. */
static int
outbox_nanp(const char *e164, char *out)
{
	if (strncmp(e164, "+1", 2) != 0 || strlen(e164) != 12 ||
	    strspn(e164 + 2, "0123456789") != 10)
		return -1;
	memcpy(out, e164 + 2, 11);
	return 0;
}

/*
 * Call the API for one message.  0 with *id (caller frees) on success;
 * -1 with why (static or in err) otherwise.
 */
static int
outbox_call(CURL *curl, const char *user, const char *password,
    const char *did, const char *dst, const char *body, char **id,
    char *err, size_t errlen)
{
	struct buf	 url, reply;
	char		*e;
	cJSON		*j = NULL, *st, *sid;
	long		 code = 0;
	CURLcode	 rc;
	int		 ok = -1;

	*id = NULL;
	buf_init(&url);
	buf_init(&reply);
	reply.max = OUTBOX_MAX_REPLY;
	buf_printf(&url, "%s?method=%s", conf.voipms.api_url,
	    strlen(body) > 160 ? "sendMMS" : "sendSMS");
	e = curl_easy_escape(curl, user, 0);
	buf_printf(&url, "&api_username=%s", e);
	curl_free(e);
	e = curl_easy_escape(curl, password, 0);
	buf_printf(&url, "&api_password=%s", e);
	curl_free(e);
	buf_printf(&url, "&did=%s&dst=%s", did, dst);
	e = curl_easy_escape(curl, body, 0);
	buf_printf(&url, "&message=%s", e);
	curl_free(e);
	curl_easy_reset(curl);
	curl_easy_setopt(curl, CURLOPT_URL, buf_cstr(&url));
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https,http");
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "telehook/" PACKAGE_VERSION);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, buf_write_cb);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply);
	rc = curl_easy_perform(curl);
	explicit_bzero(url.data, url.len);	/* it held the password */
	if (rc != CURLE_OK) {
		snprintf(err, errlen, "%s", curl_easy_strerror(rc));
		goto done;
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
	if (code != 200) {
		snprintf(err, errlen, "HTTP status %ld", code);
		goto done;
	}
	if ((j = cJSON_ParseWithLength(buf_cstr(&reply), reply.len)) == NULL ||
	    !cJSON_IsString(st = cJSON_GetObjectItemCaseSensitive(j,
	    "status"))) {
		snprintf(err, errlen, "not a VoIP.ms API answer");
		goto done;
	}
	if (strcmp(st->valuestring, "success") != 0) {
		snprintf(err, errlen, "VoIP.ms: %s", st->valuestring);
		goto done;
	}
	sid = cJSON_GetObjectItemCaseSensitive(j, "sms");
	if (sid == NULL)
		sid = cJSON_GetObjectItemCaseSensitive(j, "mms");
	if (cJSON_IsString(sid))
		*id = xstrdup(sid->valuestring);
	else if (cJSON_IsNumber(sid))
		xasprintf(id, "%.0f", sid->valuedouble);
	ok = 0;
done:
	cJSON_Delete(j);
	buf_free(&url);
	buf_free(&reply);
	return ok;
}

static const char *const sql_recover = OUTBOX_RECOVER_SQL("outbox");
static const char *const sql_claim =
	"UPDATE outbox SET state = 'sending', attempts = attempts + 1, "
	"claimed_at = now() WHERE id IN (SELECT id FROM outbox WHERE state IN "
	"('pending', 'retry') AND next_attempt_at <= now() ORDER BY "
	"next_attempt_at, id LIMIT 20 FOR UPDATE SKIP LOCKED) "
	"RETURNING id, organization_id, from_number, to_number, body, attempts";
static const char *const sql_creds =
	"SELECT account_id, secret_sealed FROM provider_accounts WHERE "
	"provider = 'voipms' AND organization_id = $1 AND secret_hash IS NULL "
	"ORDER BY id LIMIT 1";	/* hashed: URL tokens, not API users */
static const char *const sql_sent =
	"WITH o AS (UPDATE outbox SET state = 'sent', sent_at = now(), "
	"last_error = NULL, provider_message_id = $2 WHERE id = $1::bigint "
	"RETURNING id, organization_id, provider_message_id, from_number, "
	"to_number, body), m AS (INSERT INTO messages (organization_id, "
	"provider, "
	"message_id, direction, from_number, to_number, body, status, "
	"status_rank, status_history, auto_reply) SELECT organization_id, "
	"'voipms', coalesce(provider_message_id, 'outbox:' || id), "
	"'outbound', from_number, to_number, body, 'sent', 4, "
	"jsonb_build_array(jsonb_build_object('status', 'sent', 'at', "
	"th_iso(now()))), true FROM o ON CONFLICT (provider, message_id) "
	"DO NOTHING RETURNING id, organization_id, to_number) "
	"INSERT INTO activity (organization_id, type, summary, message_id) "
	"SELECT organization_id, 'sms_sent', 'SMS sent to ' || to_number, id "
	"FROM m";
static const char *const sql_again = OUTBOX_AGAIN_SQL("outbox");

/* The credentials for org: its own, else the configuration's. */
static int
outbox_creds(const char *org, char **user, char **password)
{
	struct db_res	 res;
	const char	*p[1] = { org };

	*user = *password = NULL;
	if (db_query(sql_creds, 1, p, &res) != DB_OK)
		return -1;
	if (res.nrows == 1 && crypto_have_key &&
	    (*password = crypto_open(crypto_key,
	    db_val(&res, 0, "secret_sealed"))) != NULL)
		*user = xstrdup(db_val(&res, 0, "account_id"));
	db_res_free(&res);
	if (*user == NULL && conf.voipms.api_username != NULL &&
	    conf.voipms.api_password != NULL) {
		*user = xstrdup(conf.voipms.api_username);
		*password = xstrdup(conf.voipms.api_password);
	}
	return 0;
}

/* Record the outcome of one attempt. */
static int
outbox_record(const char *id, const char *msgid, const char *err,
    int permanent, struct outbox_stats *st)
{
	const char	*p[2];
	enum db_err	 e;

	p[0] = id;
	if (err == NULL) {
		p[1] = msgid;
		if ((e = db_begin()) != DB_OK ||
		    (e = db_query(sql_sent, 2, p, NULL)) != DB_OK ||
		    (e = db_commit()) != DB_OK) {
			db_rollback();
			return -1;
		}
		st->sent++;
		return 0;
	}
	return outbox_again(sql_again, "outbox", id, err, permanent,
	    &st->retrying, &st->failed);
}

/*
 * A failed attempt of row id, by sql (an OUTBOX_AGAIN_SQL): counted in
 * *retrying, or in *failed, and logged, when it was the last.  0, or -1
 * when the database failed.
 */
int
outbox_again(const char *sql, const char *what, const char *id,
    const char *err, int permanent, int *retrying, int *failed)
{
	struct db_res	 res;
	const char	*p[4];
	char		 max[8];

	snprintf(max, sizeof(max), "%d", OUTBOX_MAX_ATTEMPTS);
	p[0] = id;
	p[1] = err;
	p[2] = max;
	p[3] = permanent ? "true" : "false";
	if (db_query(sql, 4, p, &res) != DB_OK)
		return -1;
	if (res.nrows == 1 && strcmp(db_val(&res, 0, "state"), "failed") == 0) {
		(*failed)++;
		log_warnx("%s %s failed for good: %s", what, id, err);
	} else
		(*retrying)++;
	db_res_free(&res);
	return 0;
}

/*
 * Send every message that is due.  0, or -1 when the database failed
 * (what was sent until then is recorded).
 */
int
outbox_send(struct outbox_stats *st)
{
	struct db_res	 res;
	CURL		*curl;
	char		*user, *password, *msgid, did[12], dst[12], err[256];
	const char	*why;
	int		 i, rc = -1, permanent;
	int		 c_id, c_org, c_from, c_to, c_body;

	memset(st, 0, sizeof(*st));
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 ||
	    (curl = curl_easy_init()) == NULL) {
		log_warnx("outbox: libcurl failed to initialise");
		return -1;
	}
	if (db_query(sql_recover, 0, NULL, &res) != DB_OK)
		goto done;
	st->recovered = atoi(res.cmdtuples);
	db_res_free(&res);
	for (;;) {
		if (db_query(sql_claim, 0, NULL, &res) != DB_OK)
			goto done;
		if (res.nrows == 0) {
			db_res_free(&res);
			break;
		}
		c_id = db_col(&res, "id");
		c_org = db_col(&res, "organization_id");
		c_from = db_col(&res, "from_number");
		c_to = db_col(&res, "to_number");
		c_body = db_col(&res, "body");
		for (i = 0; i < res.nrows; i++) {
			why = NULL;
			permanent = 0;
			msgid = NULL;
			if (outbox_creds(db_get(&res, i, c_org), &user,
			    &password) == -1) {
				db_res_free(&res);
				goto done;
			}
			if (user == NULL) {
				why = "no VoIP.ms API credentials";
				permanent = 1;
				st->unconfigured++;
			} else if (outbox_nanp(db_get(&res, i, c_from),
			    did) == -1 ||
			    outbox_nanp(db_get(&res, i, c_to), dst) == -1) {
				why = "VoIP.ms sends to North American "
				    "numbers only";
				permanent = 1;
			} else if (outbox_call(curl, user, password, did, dst,
			    db_get(&res, i, c_body), &msgid, err,
			    sizeof(err)) == -1)
				why = err;
			if (password != NULL)
				explicit_bzero(password, strlen(password));
			free(user);
			free(password);
			if (outbox_record(db_get(&res, i, c_id), msgid, why,
			    permanent, st) == -1) {
				free(msgid);
				db_res_free(&res);
				goto done;
			}
			free(msgid);
		}
		db_res_free(&res);
	}
	rc = 0;
done:
	curl_easy_cleanup(curl);
	curl_global_cleanup();
	return rc;
}
