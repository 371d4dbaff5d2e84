/*
 * mail.c: the staff's e-mail alerts (architecture.md §15), sent by
 * telehookctl outbox send through the operator's relay ([smtp]).
 *
 * Alerts are queued in mail_outbox by the statement that writes their
 * notification (store.c), never sent from the request path; a daily
 * summary is queued here, once per user and local day, after 07:00 in
 * the organization's time zone.  A voicemail's alert waits up to five
 * minutes for its transcription, so it can carry it.  A failed send is
 * retried after 30 s, 1, 2, 4 ... minutes (at most an hour apart) and
 * is failed for good after the 8th attempt or a permanent (5xx) answer,
 * like the SMS outbox; telehookctl outbox list and /metrics show both.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "extern.h"
#include "ctl.h"

static const char *const sql_summaries =
	"INSERT INTO mail_outbox (organization_id, user_id, kind, day) "
	"SELECT u.organization_id, u.id, 'daily_summary', "
	"(now() AT TIME ZONE o.timezone)::date - 1 FROM users u "
	"JOIN organizations o ON o.id = u.organization_id "
	"WHERE 'daily_summary' = ANY (u.notify) AND "
	"extract(hour FROM now() AT TIME ZONE o.timezone) >= 7 "
	"ON CONFLICT DO NOTHING";
static const char *const sql_recover = OUTBOX_RECOVER_SQL("mail_outbox");
/* what is due, with all a message needs: one statement per 20 */
static const char *const sql_claim =
	"WITH c AS (UPDATE mail_outbox SET state = 'sending', "
	"attempts = attempts + 1, claimed_at = now() WHERE id IN (SELECT "
	"m.id FROM mail_outbox m LEFT JOIN notifications n ON "
	"n.id = m.notification_id WHERE m.state IN ('pending', 'retry') AND "
	"m.next_attempt_at <= now() AND (m.kind <> 'voicemail' OR "
	"n.data->>'transcription' IS NOT NULL OR m.created_at < now() - "
	"interval '5 minutes') ORDER BY m.next_attempt_at, m.id LIMIT 20 "
	"FOR UPDATE OF m SKIP LOCKED) RETURNING id, user_id, kind, "
	"notification_id, organization_id, day, created_at) "
	"SELECT c.id, u.email, o.name AS org, c.kind, "
	"n.data->>'from_number' AS from_number, "
	"n.data->>'to_number' AS to_number, "
	"n.data->>'transcription' AS transcription, n.data->>'body' AS body, "
	"to_char(coalesce(n.created_at, c.created_at) AT TIME ZONE "
	"o.timezone, 'YYYY-MM-DD HH24:MI') AS at, o.timezone, "
	"c.organization_id, c.day::text AS day, CASE WHEN c.kind = "
	"'daily_summary' THEN th_mail_summary(c.organization_id, c.day) END "
	"AS summary "
	"FROM c JOIN users u ON u.id = c.user_id "
	"JOIN organizations o ON o.id = c.organization_id "
	"LEFT JOIN notifications n ON n.id = c.notification_id ORDER BY c.id";
/* sql_claim's columns, looked up once per result (mail_cols) */
struct mail_cols {
	int	 id, email, org, kind, from, to, transcription, body, at, tz;
	int	 org_id, day, summary;
};
static const char *const sql_sent =
	"UPDATE mail_outbox SET state = 'sent', sent_at = now(), "
	"last_error = NULL WHERE id = $1::bigint";
static const char *const sql_again = OUTBOX_AGAIN_SQL("mail_outbox");

/* Header text: no line breaks, so nothing can add a header. */
static void
mail_header_text(struct buf *b, const char *s)
{
	for (; s != NULL && *s != '\0'; s++)
		buf_putc(b, *s == '\r' || *s == '\n' ? ' ' : *s);
}

/*
 * A Subject: plain when it is printable ASCII, else RFC 2047 encoded
 * words (UTF-8, base64) of at most 45 bytes each, split between
 * characters.
 */
static void
mail_subject(struct buf *b, const char *s)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *p;
	size_t		 n, len, i;
	unsigned int	 v;
	int		 plain = 1;

	for (p = (const unsigned char *)s; *p != '\0'; p++)
		if (*p < 0x20 || *p > 0x7e)
			plain = 0;
	buf_puts(b, "Subject: ");
	if (plain) {
		buf_puts(b, s);
		buf_puts(b, "\r\n");
		return;
	}
	p = (const unsigned char *)s;
	len = strlen(s);
	while (len > 0) {
		n = len < 45 ? len : 45;
		while (n < len && (p[n] & 0xc0) == 0x80)
			n--;		/* not inside a character */
		buf_puts(b, "=?UTF-8?B?");
		for (i = 0; i < n; i += 3) {
			v = (unsigned int)(p[i] == '\r' || p[i] == '\n' ? ' ' :
			    p[i]) << 16;
			if (i + 1 < n)
				v |= (unsigned int)p[i + 1] << 8;
			if (i + 2 < n)
				v |= p[i + 2];
			buf_putc(b, b64[(v >> 18) & 63]);
			buf_putc(b, b64[(v >> 12) & 63]);
			buf_putc(b, i + 1 < n ? b64[(v >> 6) & 63] : '=');
			buf_putc(b, i + 2 < n ? b64[v & 63] : '=');
		}
		buf_puts(b, "?=");
		p += n;
		len -= n;
		buf_puts(b, len > 0 ? "\r\n " : "\r\n");
	}
}

/* The address of "Name <addr>", or the whole of a bare address. */
static char *
mail_addr(const char *from)
{
	const char	*lt = strrchr(from, '<'), *gt;

	if (lt != NULL && (gt = strchr(lt, '>')) != NULL)
		return xstrndup(lt + 1, (size_t)(gt - lt - 1));
	return xstrdup(from);
}

static void
mail_cols(const struct db_res *res, struct mail_cols *c)
{
	c->id = db_col(res, "id");
	c->email = db_col(res, "email");
	c->org = db_col(res, "org");
	c->kind = db_col(res, "kind");
	c->from = db_col(res, "from_number");
	c->to = db_col(res, "to_number");
	c->transcription = db_col(res, "transcription");
	c->body = db_col(res, "body");
	c->at = db_col(res, "at");
	c->tz = db_col(res, "timezone");
	c->org_id = db_col(res, "organization_id");
	c->day = db_col(res, "day");
	c->summary = db_col(res, "summary");
}

/* Row i of res as a message: headers and a plain-text body. */
static void
mail_compose(const struct db_res *res, const struct mail_cols *c, int i,
    struct buf *m)
{
	const char	*kind = db_get(res, i, c->kind);
	const char	*org = db_get(res, i, c->org);
	const char	*from = db_get(res, i, c->from);
	const char	*to = db_get(res, i, c->to);
	const char	*when = db_get(res, i, c->at);
	const char	*tz = db_get(res, i, c->tz);
	const char	*day = db_get(res, i, c->day);
	const char	*text;
	struct buf	 subj, body;
	char		 date[64], *dom;
	time_t		 now = time(NULL);
	struct tm	 tm;

	buf_init(&subj);
	buf_init(&body);
	if (from == NULL)
		from = "an unknown number";
	if (strcmp(kind, "missed_call") == 0) {
		buf_printf(&subj, "[%s] Missed call from %s", org, from);
		buf_printf(&body, "Missed call from %s to %s at %s (%s).\n"
		    "Nobody took it; call back when you can.\n", from,
		    to != NULL ? to : "your number", when, tz);
	} else if (strcmp(kind, "voicemail") == 0) {
		text = db_get(res, i, c->transcription);
		buf_printf(&subj, "[%s] Voicemail from %s", org, from);
		buf_printf(&body, "Voicemail from %s to %s at %s (%s).\n\n"
		    "Transcription:\n%s\n", from, to != NULL ? to :
		    "your number", when, tz,
		    text != NULL && *text != '\0' ? text :
		    "(none yet: listen to it on the dashboard)");
	} else if (strcmp(kind, "urgent_sms") == 0) {
		text = db_get(res, i, c->body);
		buf_printf(&subj, "[%s] Urgent SMS from %s", org, from);
		buf_printf(&body, "Urgent SMS from %s to %s at %s (%s):\n\n"
		    "%s\n", from, to != NULL ? to : "your number", when,
		    tz, text != NULL ? text : "");
	} else {
		text = db_get(res, i, c->summary);
		buf_printf(&subj, "[%s] Summary of %s", org, day);
		buf_printf(&body, "%s, %s (%s):\n\n%s", org, day, tz,
		    text != NULL ? text : "");
	}
	if (conf.public_url != NULL)
		buf_printf(&body, "\nDashboard: %s/dashboard/%s\n",
		    conf.public_url, db_get(res, i, c->org_id));
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	dom = mail_addr(conf.smtp.from);
	buf_printf(m, "Date: %s\r\nFrom: ", date);
	mail_header_text(m, conf.smtp.from);
	buf_puts(m, "\r\nTo: ");
	mail_header_text(m, db_get(res, i, c->email));
	buf_puts(m, "\r\n");
	mail_subject(m, buf_cstr(&subj));
	buf_printf(m, "Message-ID: <telehook.%s.%s.%lld@%s>\r\n",
	    kind, db_get(res, i, c->id), (long long)now,
	    strchr(dom, '@') != NULL ? strchr(dom, '@') + 1 : "localhost");
	buf_puts(m, "MIME-Version: 1.0\r\nContent-Type: text/plain; "
	    "charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
	    "Auto-Submitted: auto-generated\r\n\r\n");
	/* the body with CRLF line ends; a lone "." line is escaped by curl */
	for (text = buf_cstr(&body); *text != '\0'; text++) {
		if (*text == '\n')
			buf_putc(m, '\r');
		if (*text != '\r')
			buf_putc(m, *text);
	}
	free(dom);
	buf_free(&subj);
	buf_free(&body);
}

struct mail_read {
	const char	*data;
	size_t		 len;
	size_t		 off;
};

static size_t
mail_reader(char *out, size_t size, size_t n, void *arg)
{
	struct mail_read *r = arg;
	size_t		 k = size * n;

	if (k > r->len - r->off)
		k = r->len - r->off;
	memcpy(out, r->data + r->off, k);
	r->off += k;
	return k;
}

/* One message to rcpt; 0, or -1 with err and *permanent. */
static int
mail_deliver(CURL *curl, const char *rcpt, struct buf *m, char *err,
    size_t errsz, int *permanent)
{
	struct curl_slist *to = NULL;
	struct mail_read r = { buf_cstr(m), m->len, 0 };
	char		*from, ebuf[CURL_ERROR_SIZE] = "";
	CURLcode	 cc;
	long		 code = 0;

	*permanent = 0;
	curl_easy_reset(curl);
	from = mail_addr(conf.smtp.from);
	to = curl_slist_append(to, rcpt);
	(void)curl_easy_setopt(curl, CURLOPT_URL, conf.smtp.url);
	(void)curl_easy_setopt(curl, CURLOPT_MAIL_FROM, from);
	(void)curl_easy_setopt(curl, CURLOPT_MAIL_RCPT, to);
	(void)curl_easy_setopt(curl, CURLOPT_USE_SSL,
	    util_url_local(conf.smtp.url, "smtp") ? (long)CURLUSESSL_TRY :
	    (long)CURLUSESSL_ALL);
	if (conf.smtp.username != NULL) {
		(void)curl_easy_setopt(curl, CURLOPT_USERNAME,
		    conf.smtp.username);
		(void)curl_easy_setopt(curl, CURLOPT_PASSWORD,
		    conf.smtp.password != NULL ? conf.smtp.password : "");
	}
	(void)curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
	(void)curl_easy_setopt(curl, CURLOPT_READFUNCTION, mail_reader);
	(void)curl_easy_setopt(curl, CURLOPT_READDATA, &r);
	(void)curl_easy_setopt(curl, CURLOPT_INFILESIZE, (long)m->len);
	(void)curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
	(void)curl_easy_setopt(curl, CURLOPT_TIMEOUT, 60L);
	(void)curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	(void)curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, ebuf);
	cc = curl_easy_perform(curl);
	(void)curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
	curl_slist_free_all(to);
	free(from);
	if (cc == CURLE_OK)
		return 0;
	/* a 5xx reply is the relay's final word; anything else may pass */
	*permanent = code >= 500 && code < 600;
	snprintf(err, errsz, "%s%s%s (SMTP %ld)", curl_easy_strerror(cc),
	    *ebuf != '\0' ? ": " : "", ebuf, code);
	return -1;
}

/* Record an attempt's outcome. */
static int
mail_record(const char *id, const char *err, int permanent,
    struct outbox_stats *st)
{
	const char	*p[1] = { id };

	if (err == NULL) {
		if (db_query(sql_sent, 1, p, NULL) != DB_OK)
			return -1;
		st->mail_sent++;
		return 0;
	}
	return outbox_again(sql_again, "mail", id, err, permanent,
	    &st->mail_retrying, &st->mail_failed);
}

/*
 * Send every alert that is due.  0, or -1 when the database failed
 * (what was sent until then is recorded).
 */
int
mail_send(struct outbox_stats *st)
{
	struct db_res	 res;
	struct mail_cols c;
	struct buf	 m;
	CURL		*curl;
	char		 err[512];
	const char	*why;
	int		 i, rc = -1, permanent;

	if (db_query(sql_summaries, 0, NULL, NULL) != DB_OK ||
	    db_query(sql_recover, 0, NULL, NULL) != DB_OK)
		return -1;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 ||
	    (curl = curl_easy_init()) == NULL) {
		log_warnx("mail: libcurl failed to initialise");
		return -1;
	}
	buf_init(&m);
	for (;;) {
		if (db_query(sql_claim, 0, NULL, &res) != DB_OK)
			goto done;
		if (res.nrows == 0) {
			db_res_free(&res);
			break;
		}
		mail_cols(&res, &c);
		for (i = 0; i < res.nrows; i++) {
			why = NULL;
			permanent = 0;
			if (conf.smtp.url == NULL || conf.smtp.from == NULL) {
				why = "[smtp] url and from are not set";
				permanent = 1;
				st->unconfigured++;
			} else {
				buf_reset(&m);
				mail_compose(&res, &c, i, &m);
				if (m.failed)
					why = "out of memory";
				else if (mail_deliver(curl, db_get(&res, i,
				    c.email), &m, err, sizeof(err),
				    &permanent) == -1)
					why = err;
			}
			if (mail_record(db_get(&res, i, c.id), why, permanent,
			    st) == -1) {
				db_res_free(&res);
				goto done;
			}
		}
		db_res_free(&res);
	}
	rc = 0;
done:
	buf_free(&m);
	curl_easy_cleanup(curl);
	curl_global_cleanup();
	return rc;
}
