/*
 * recording.c: a call's recording, streamed through telehook
 * (architecture.md §15), so the staff's browser never holds a provider
 * credential and never talks to the provider.
 *
 * recording_handle() decides what to fetch and as whom; dispatch then
 * calls recording_stream() instead of rendering an answer, and the audio
 * goes from libcurl to the FastCGI stream as it arrives (nginx buffers
 * it, so a slow browser does not hold the worker).  A Range header is
 * passed on and the provider's 206 and Content-Range come back, so the
 * player can seek.
 *
 * Twilio's recording URLs need HTTP Basic authentication as the account
 * in the URL.  Those credentials are sent only to [twilio] api_url, only
 * for the account named in the URL path, and only when that account is
 * the organization's own (its stored token, or the configured token
 * when the organization's AccountSid is that account): never to another
 * host, and not across a redirect (CURLOPT_UNRESTRICTED_AUTH is off).
 * Retell's and VoIP.ms's recording URLs are fetched as they are, over
 * HTTPS only.
 *
 * Every connection, redirects included, goes through egress.c: never to
 * an address inside the operator's network, whatever the URL says.  The
 * one exception is [twilio] api_url's own address when the operator
 * wrote it as one (a proxy or a test double): that is their setting, not
 * data a tenant sent.
 */
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <fcgiapp.h>

#include "extern.h"

/* calls_call_id: the newest row of that id in the organization */
static const struct db_stmt st_recording = { "recording",
	"SELECT c.provider, c.recording_url, o.twilio_account_sid "
	"FROM calls c JOIN organizations o ON o.id = c.organization_id "
	"WHERE c.call_id = $2 AND c.organization_id = $1 "
	"ORDER BY c.updated_at DESC LIMIT 1", 2 };
static const struct db_stmt st_twilio_creds = { "recording_creds",
	"SELECT secret_sealed FROM provider_accounts WHERE provider = "
	"'twilio' AND organization_id = $1 AND account_id = $2 "
	"ORDER BY id LIMIT 1", 2 };

/*
 * The AccountSid of a Twilio API URL under base (".../Accounts/AC…/"),
 * copied to sid; -1 when url is not under base or names no account.
 */
int
recording_twilio_account(const char *base, const char *url, char *sid,
    size_t sidsz)
{
	size_t		 n = strlen(base), i;
	const char	*p;

	while (n > 0 && base[n - 1] == '/')
		n--;
	if (strncasecmp(url, base, n) != 0 || url[n] != '/')
		return -1;
	if ((p = strstr(url + n, "/Accounts/")) == NULL)
		return -1;
	p += strlen("/Accounts/");
	if (p[0] != 'A' || p[1] != 'C')
		return -1;
	for (i = 2; i < 34; i++)
		if (!isxdigit((unsigned char)p[i]))
			return -1;
	if (p[34] != '/' || sidsz < 35)
		return -1;
	memcpy(sid, p, 34);
	sid[34] = '\0';
	return 0;
}

/* The Twilio token of account sid for org; NULL when it has none. */
static char *
recording_twilio_token(const char *org, const char *orgsid, const char *sid)
{
	struct db_res	 res;
	const char	*p[2] = { org, sid };
	char		*token = NULL;

	if (db_exec(&st_twilio_creds, p, &res) != DB_OK)
		return NULL;
	if (res.nrows == 1 && crypto_have_key)
		token = crypto_open(crypto_key,
		    db_val(&res, 0, "secret_sealed"));
	db_res_free(&res);
	if (token == NULL && orgsid != NULL && strcmp(orgsid, sid) == 0 &&
	    conf.twilio.auth_token != NULL)
		token = xstrdup(conf.twilio.auth_token);
	return token;
}

/* GET|HEAD .../calls/{call}/recording */
enum db_err
recording_handle(struct req *r, struct resp *p)
{
	struct db_res	 res;
	const char	*params[2], *provider, *url, *range;
	char		 sid[40];
	int		 replica;

	params[0] = r->args[0];
	params[1] = r->args[1];
	if (db_exec_read(&st_recording, params, &res, &replica) != DB_OK) {
		resp_error(p, 503, "database unavailable");
		return DB_OK;
	}
	if (res.nrows == 0) {
		resp_error(p, 404, "unknown call");
		goto done;
	}
	provider = db_val(&res, 0, "provider");
	if ((url = db_val(&res, 0, "recording_url")) == NULL) {
		resp_error(p, 404, "the call has no recording");
		goto done;
	}
	if (strcmp(provider, "twilio") == 0) {
		if (recording_twilio_account(conf.twilio.api_url, url, sid,
		    sizeof(sid)) == -1) {
			resp_error(p, 502, "the recording is not on "
			    "[twilio] api_url");
			goto done;
		}
		p->stream.password = recording_twilio_token(r->args[0],
		    db_val(&res, 0, "twilio_account_sid"), sid);
		if (p->stream.password == NULL) {
			resp_error(p, 502, "no Twilio credentials for the "
			    "recording's account");
			goto done;
		}
		p->stream.user = xstrdup(sid);
		p->stream.plain_http = strncmp(conf.twilio.api_url,
		    "http://", 7) == 0;
		p->stream.trust = conf.twilio.api_url;
	} else if (strncasecmp(url, "https://", 8) != 0) {
		resp_error(p, 502, "the recording URL is not HTTPS");
		goto done;
	}
	p->stream.url = xstrdup(url);
	if ((range = req_header(r, "Range")) != NULL)
		p->stream.range = xstrndup(range, 200);
done:
	db_res_free(&res);
	return DB_OK;
}

/* What the provider answered, and whether our headers went out. */
struct rec_io {
	FCGX_Stream	*out;
	int		 head;		/* HEAD: headers only */
	long		 status;	/* of the last response in a redirect chain */
	char		 ctype[128];
	char		 clen[32];
	char		 crange[96];
	int		 sent;		/* our headers are out */
	int		 failed;	/* writing to nginx failed */
	long long	 bytes;
};

static int
rec_passed(long status)
{
	return status == 200 || status == 206 || status == 416;
}

/* Copy header value v (length n, CRLF-trimmed) into dst if it is sane. */
static void
rec_keep(char *dst, size_t dstsz, const char *v, size_t n)
{
	size_t	i;

	while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' ||
	    v[n - 1] == ' '))
		n--;
	while (n > 0 && *v == ' ') {
		v++;
		n--;
	}
	if (n >= dstsz)
		return;
	for (i = 0; i < n; i++)
		if (!isprint((unsigned char)v[i]))
			return;
	memcpy(dst, v, n);
	dst[n] = '\0';
}

static size_t
rec_header(char *b, size_t size, size_t n, void *arg)
{
	struct rec_io	*io = arg;
	size_t		 len = size * n;
	static const struct {
		const char	*name;
		size_t		 off;
		size_t		 sz;
	} keep[] = {
		{ "content-type:", offsetof(struct rec_io, ctype), 128 },
		{ "content-length:", offsetof(struct rec_io, clen), 32 },
		{ "content-range:", offsetof(struct rec_io, crange), 96 },
	};
	size_t		 i, k;
	const char	*sp;

	if (len > 5 && strncmp(b, "HTTP/", 5) == 0) {
		/* a new response (after a redirect): forget the last */
		io->ctype[0] = io->clen[0] = io->crange[0] = '\0';
		io->status = (sp = memchr(b, ' ', len)) != NULL ?
		    strtol(sp + 1, NULL, 10) : 0;
		return len;
	}
	for (i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
		k = strlen(keep[i].name);
		if (len > k && strncasecmp(b, keep[i].name, k) == 0)
			rec_keep((char *)io + keep[i].off, keep[i].sz, b + k,
			    len - k);
	}
	return len;
}

/* Our headers: the provider's status, type, length and range. */
static int
rec_send_headers(struct rec_io *io)
{
	io->sent = 1;
	if (FCGX_FPrintF(io->out, "Status: %ld %s\r\n"
	    "Content-Type: %s\r\nAccept-Ranges: bytes\r\n"
	    "Cache-Control: private, max-age=300\r\n"
	    "X-Content-Type-Options: nosniff\r\n",
	    io->status, resp_status_text((int)io->status),
	    io->ctype[0] != '\0' ? io->ctype : "application/octet-stream") < 0 ||
	    (io->clen[0] != '\0' && FCGX_FPrintF(io->out,
	    "Content-Length: %s\r\n", io->clen) < 0) ||
	    (io->crange[0] != '\0' && FCGX_FPrintF(io->out,
	    "Content-Range: %s\r\n", io->crange) < 0) ||
	    FCGX_PutS("\r\n", io->out) < 0) {
		io->failed = 1;
		return -1;
	}
	return 0;
}

static size_t
rec_body(char *b, size_t size, size_t n, void *arg)
{
	struct rec_io	*io = arg;
	size_t		 len = size * n;

	if (!rec_passed(io->status))
		return len;	/* the provider's error page: not passed on */
	if (!io->sent && rec_send_headers(io) == -1)
		return 0;
	if (io->head)
		return len;
	if (FCGX_PutStr(b, (int)len, io->out) < 0) {
		io->failed = 1;
		return 0;	/* nginx is gone: stop fetching */
	}
	io->bytes += (long long)len;
	return len;
}

/* An error answer of our own, when nothing was sent yet. */
static int
rec_error(FCGX_Stream *out, int status, const char *msg)
{
	struct buf	 b;

	buf_init(&b);
	resp_error_body(msg, &b);
	(void)FCGX_FPrintF(out, "Status: %d %s\r\nContent-Type: "
	    "application/json\r\nCache-Control: no-store\r\n\r\n", status,
	    resp_status_text(status));
	if (!b.failed)
		(void)FCGX_PutStr(b.data, (int)b.len, out);
	buf_free(&b);
	return status;
}

/*
 * Fetch p->stream and write it to out as our answer; the status sent.
 * The provider's 200, 206 and 416 pass through; its 404 is ours; any
 * other answer, or no answer, is 502.
 */
int
recording_stream(struct resp *p, int head, struct FCGX_Stream *out)
{
	struct rec_io	 io;
	CURL		*curl;
	CURLcode	 cc;
	char		 hdr[240];
	struct curl_slist *hl = NULL;
	struct egress	 g;
	int		 status;

	memset(&io, 0, sizeof(io));
	memset(&g, 0, sizeof(g));
	io.out = out;
	io.head = head;
	if ((curl = curl_easy_init()) == NULL)
		return rec_error(out, 502, "libcurl failed to initialise");
	(void)curl_easy_setopt(curl, CURLOPT_URL, p->stream.url);
	if (p->stream.trust != NULL)
		egress_trust(&g, p->stream.trust);
	egress_curl(curl, &g);
	(void)curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR,
	    p->stream.plain_http ? "http,https" : "https");
	(void)curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "https");
	(void)curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
	(void)curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 3L);
	(void)curl_easy_setopt(curl, CURLOPT_UNRESTRICTED_AUTH, 0L);
	(void)curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	(void)curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 5L);
	(void)curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1024L);
	(void)curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, 15L);
	(void)curl_easy_setopt(curl, CURLOPT_TIMEOUT, 300L);
	(void)curl_easy_setopt(curl, CURLOPT_USERAGENT, "telehook/" PACKAGE_VERSION);
	if (p->stream.user != NULL) {
		(void)curl_easy_setopt(curl, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
		(void)curl_easy_setopt(curl, CURLOPT_USERNAME, p->stream.user);
		(void)curl_easy_setopt(curl, CURLOPT_PASSWORD,
		    p->stream.password);
	}
	if (p->stream.range != NULL) {
		snprintf(hdr, sizeof(hdr), "Range: %s", p->stream.range);
		hl = curl_slist_append(hl, hdr);
		(void)curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hl);
	}
	if (head)
		(void)curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
	(void)curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, rec_header);
	(void)curl_easy_setopt(curl, CURLOPT_HEADERDATA, &io);
	(void)curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, rec_body);
	(void)curl_easy_setopt(curl, CURLOPT_WRITEDATA, &io);
	cc = curl_easy_perform(curl);
	(void)curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &io.status);
	if (io.sent)
		status = (int)io.status;
	else if (cc == CURLE_OK && rec_passed(io.status))
		status = rec_send_headers(&io) == 0 ? (int)io.status : 502;
	else if (cc == CURLE_OK && io.status == 404)
		status = rec_error(out, 404, "the provider has no such recording");
	else if (cc != CURLE_OK && g.refused > 0) {
		log_warnx("recording: refused: not a public address");
		status = rec_error(out, 502, "the recording is not on a public "
		    "address");
	} else {
		if (cc != CURLE_OK)
			log_warnx("recording: %s", curl_easy_strerror(cc));
		else
			log_warnx("recording: the provider answered %ld",
			    io.status);
		status = rec_error(out, 502, cc == CURLE_OK ?
		    "the provider refused the recording" :
		    "the provider could not be reached");
	}
	if (io.sent && cc != CURLE_OK && !io.failed)
		log_warnx("recording: cut short after %lld bytes: %s",
		    io.bytes, curl_easy_strerror(cc));
	curl_slist_free_all(hl);
	curl_easy_cleanup(curl);
	return status;
}
