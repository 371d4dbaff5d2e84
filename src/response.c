/*
 * response.c: the responders.  A handler fills the part of struct resp
 * its route's responder names (TwiML, JSON, text, or nothing for 204);
 * resp_render() turns it into CGI headers and body.  A builder that
 * failed, or an error set by anyone, replaces the whole answer, so a
 * client never gets half a body.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extern.h"

static const struct {
	int		 code;
	const char	*text;
} statuses[] = {
	{ 200, "OK" },
	{ 201, "Created" },
	{ 204, "No Content" },
	{ 400, "Bad Request" },
	{ 401, "Unauthorized" },
	{ 403, "Forbidden" },
	{ 404, "Not Found" },
	{ 405, "Method Not Allowed" },
	{ 409, "Conflict" },
	{ 413, "Content Too Large" },
	{ 415, "Unsupported Media Type" },
	{ 429, "Too Many Requests" },
	{ 500, "Internal Server Error" },
	{ 502, "Bad Gateway" },
	{ 503, "Service Unavailable" },
};

const char *
resp_status_text(int code)
{
	size_t	 i;

	for (i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
		if (statuses[i].code == code)
			return statuses[i].text;
	return "Unknown";
}

void
resp_init(struct resp *p, enum responder kind)
{
	memset(p, 0, sizeof(*p));
	p->kind = kind;
	if (kind == RESP_TWIML)
		twiml_init(&p->twiml);
	buf_init(&p->text);
	p->ctype = "text/plain; charset=utf-8";
}

void
resp_free(struct resp *p)
{
	twiml_free(&p->twiml);	/* a handler may change p->kind */
	cJSON_Delete(p->json);
	buf_free(&p->text);
	free(p->error);
	free(p->stream.url);
	free(p->stream.user);
	free(p->stream.range);
	if (p->stream.password != NULL) {
		explicit_bzero(p->stream.password, strlen(p->stream.password));
		free(p->stream.password);
	}
	memset(p, 0, sizeof(*p));
}

/* Answer status with {"error":"..."}; the first error set wins. */
void
resp_error(struct resp *p, int status, const char *fmt, ...)
{
	va_list	 ap;
	char	*msg;

	if (p->error != NULL)
		return;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) == -1)
		fatal("vasprintf");
	va_end(ap);
	p->error = msg;
	p->status = status;
}

/* Answer status with the JSON value j, which p now owns. */
void
resp_set_json(struct resp *p, int status, cJSON *j)
{
	cJSON_Delete(p->json);
	p->json = j;
	p->status = status;
}

/* The {"error":...} body for msg, into out. */
int
resp_error_body(const char *msg, struct buf *out)
{
	cJSON	*o;
	char	*s;

	buf_reset(out);
	if ((o = cJSON_CreateObject()) == NULL ||
	    cJSON_AddStringToObject(o, "error", msg) == NULL ||
	    (s = cJSON_PrintUnformatted(o)) == NULL) {
		cJSON_Delete(o);
		buf_puts(out, "{\"error\":\"internal error\"}");
		return -1;
	}
	buf_puts(out, s);
	buf_putc(out, '\n');
	cJSON_free(s);
	cJSON_Delete(o);
	return 0;
}

/*
 * The body of p into out and its content type into *ctype (NULL for
 * none).  A builder that failed turns into a 500 error here.  Returns
 * the status to send.
 */
int
resp_body(struct resp *p, struct buf *out, const char **ctype)
{
	char	*s;
	int	 status = p->status;

	buf_reset(out);
	*ctype = NULL;
	if (p->error == NULL) {
		switch (p->kind) {
		case RESP_EMPTY:
			status = status ? status : 204;
			break;
		case RESP_TWIML:
			if (twiml_finish(&p->twiml) == -1) {
				resp_error(p, 500, "could not build TwiML");
				break;
			}
			buf_add(out, p->twiml.b.data, p->twiml.b.len);
			*ctype = "text/xml; charset=utf-8";
			break;
		case RESP_JSON:
			if (p->json == NULL ||
			    (s = cJSON_PrintUnformatted(p->json)) == NULL) {
				resp_error(p, 500, "could not build JSON");
				break;
			}
			buf_puts(out, s);
			buf_putc(out, '\n');
			cJSON_free(s);
			*ctype = "application/json";
			break;
		case RESP_TEXT:
			if (p->text.failed) {
				resp_error(p, 500, "could not build text");
				break;
			}
			buf_add(out, p->text.data, p->text.len);
			*ctype = p->ctype;
			break;
		case RESP__MAX:
			resp_error(p, 500, "no responder");
			break;
		}
		if (out->failed)
			resp_error(p, 500, "answer too large");
	}
	if (p->error != NULL) {
		status = p->status ? p->status : 500;
		resp_error_body(p->error, out);
		*ctype = "application/json";
	}
	return status == 0 ? 200 : status;
}

/*
 * Render p as a CGI response (Status and Content-Type headers, blank
 * line, body) into out.  With head, the body is left off.  Returns the
 * status sent.
 */
int
resp_render(struct resp *p, int head, struct buf *out)
{
	struct buf	 body;
	const char	*ctype;
	int		 status;

	buf_init(&body);
	status = resp_body(p, &body, &ctype);
	buf_reset(out);
	buf_printf(out, "Status: %d %s\r\n", status, resp_status_text(status));
	if (status == 405 && p->allow[0] != '\0')
		buf_printf(out, "Allow: %s\r\n", p->allow);
	if (status != 204 && ctype != NULL) {
		buf_printf(out, "Content-Type: %s\r\n", ctype);
		buf_printf(out, "Content-Length: %zu\r\n", body.len);
	}
	buf_puts(out, "Cache-Control: no-store\r\n\r\n");
	if (!head && status != 204)
		buf_add(out, body.data, body.len);
	buf_free(&body);
	return status;
}
