/*
 * twiml.c: TwiML, the XML Twilio executes.  The builder writes into a
 * struct buf whose sticky failure flag also records misuse (a bad name,
 * too deep, closing what is not open); twiml_finish() reports it once,
 * and the caller then answers 500 instead of half a document.
 *
 * Text and attribute values are escaped, invalid UTF-8 becomes U+FFFD and
 * control characters XML 1.0 forbids are dropped, so caller-supplied text
 * (an SMS body, a greeting) can never break the document.
 */
#include <stdarg.h>
#include <string.h>

#include "extern.h"

/* Length of the valid UTF-8 sequence at s (of n bytes), or 0. */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
	unsigned int	 cp;
	size_t		 len, i;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if ((s[0] & 0xf8) == 0xf0) {
		len = 4;
		cp = s[0] & 0x07;
	} else
		return 0;
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	/* overlong forms, surrogates, beyond Unicode, U+FFFE/U+FFFF */
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
	    (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp == 0xfffe || cp == 0xffff)
		return 0;
	return len;
}

/* Append len bytes of s to b as XML character data. */
void
xml_escape(struct buf *b, const char *s, size_t len)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 i = 0, n;

	while (i < len) {
		switch (p[i]) {
		case '&':
			buf_puts(b, "&amp;");
			break;
		case '<':
			buf_puts(b, "&lt;");
			break;
		case '>':
			buf_puts(b, "&gt;");
			break;
		case '"':
			buf_puts(b, "&quot;");
			break;
		case '\'':
			buf_puts(b, "&apos;");
			break;
		case '\t':
		case '\n':
		case '\r':
			buf_putc(b, (char)p[i]);
			break;
		default:
			if (p[i] < 0x20)
				break;	/* not allowed in XML 1.0 */
			if ((n = utf8_len(p + i, len - i)) == 0) {
				buf_puts(b, "\xef\xbf\xbd");
				break;
			}
			buf_add(b, p + i, n);
			i += n;
			continue;
		}
		i++;
	}
}

/* TwiML names are ASCII letters and digits, starting with a letter. */
static int
twiml_name_ok(const char *s)
{
	const char	*p;

	if (s == NULL || !((*s >= 'A' && *s <= 'Z') ||
	    (*s >= 'a' && *s <= 'z')))
		return 0;
	for (p = s; *p != '\0'; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9')))
			return 0;
	return 1;
}

void
twiml_init(struct twiml *t)
{
	memset(t, 0, sizeof(*t));
	buf_init(&t->b);
	buf_puts(&t->b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	    "<Response>");
	t->stack[t->depth++] = "Response";
}

void
twiml_free(struct twiml *t)
{
	buf_free(&t->b);
	memset(t, 0, sizeof(*t));
}

/* Write "<elem a="v" ...", attributes as name, value pairs up to NULL. */
static void
twiml_tag(struct twiml *t, const char *elem, va_list ap)
{
	const char	*name, *val;

	if (t->done || !twiml_name_ok(elem)) {
		t->b.failed = 1;
		return;
	}
	buf_putc(&t->b, '<');
	buf_puts(&t->b, elem);
	while ((name = va_arg(ap, const char *)) != NULL) {
		val = va_arg(ap, const char *);
		if (!twiml_name_ok(name)) {
			t->b.failed = 1;
			return;
		}
		if (val == NULL)
			continue;	/* an absent optional attribute */
		buf_putc(&t->b, ' ');
		buf_puts(&t->b, name);
		buf_puts(&t->b, "=\"");
		xml_escape(&t->b, val, strlen(val));
		buf_putc(&t->b, '"');
	}
}

/* Open elem with attributes (name, value, ..., NULL); elem must last. */
void
twiml_open(struct twiml *t, const char *elem, ...)
{
	va_list	 ap;

	if (t->depth >= TWIML_MAXDEPTH) {
		t->b.failed = 1;
		return;
	}
	va_start(ap, elem);
	twiml_tag(t, elem, ap);
	va_end(ap);
	buf_putc(&t->b, '>');
	t->stack[t->depth++] = elem;
}

void
twiml_text(struct twiml *t, const char *text)
{
	if (t->done || text == NULL) {
		t->b.failed = 1;
		return;
	}
	xml_escape(&t->b, text, strlen(text));
}

void
twiml_close(struct twiml *t)
{
	if (t->done || t->depth <= 1) {
		t->b.failed = 1;
		return;
	}
	t->depth--;
	buf_puts(&t->b, "</");
	buf_puts(&t->b, t->stack[t->depth]);
	buf_putc(&t->b, '>');
}

/* <elem attrs>text</elem>, or <elem attrs/> when text is NULL. */
void
twiml_leaf(struct twiml *t, const char *elem, const char *text, ...)
{
	va_list	 ap;

	va_start(ap, text);
	twiml_tag(t, elem, ap);
	va_end(ap);
	if (text == NULL) {
		buf_puts(&t->b, "/>");
		return;
	}
	buf_putc(&t->b, '>');
	xml_escape(&t->b, text, strlen(text));
	buf_puts(&t->b, "</");
	buf_puts(&t->b, elem);
	buf_putc(&t->b, '>');
}

/* Close what is open, then the document.  -1 if anything went wrong. */
int
twiml_finish(struct twiml *t)
{
	if (t->done)
		return t->b.failed ? -1 : 0;
	while (t->depth > 1)
		twiml_close(t);
	buf_puts(&t->b, "</Response>\n");
	t->depth = 0;
	t->done = 1;
	return t->b.failed ? -1 : 0;
}

/* Use doc, a whole document built before (a stored answer), as is. */
void
twiml_set(struct twiml *t, const char *doc)
{
	buf_reset(&t->b);
	buf_puts(&t->b, doc);
	t->depth = 0;
	t->done = 1;
}
