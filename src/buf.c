/*
 * buf.c: a growable buffer.  Once an append fails (the size limit, or no
 * memory) the buffer is marked failed and every later append is a no-op,
 * so a builder checks for failure once, at the end, and never sends half
 * a body.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extern.h"

void
buf_init(struct buf *b)
{
	memset(b, 0, sizeof(*b));
}

void
buf_free(struct buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

void
buf_reset(struct buf *b)
{
	b->len = 0;
	b->failed = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
}

/* Make room for n more bytes plus a NUL; 0 on success. */
static int
buf_grow(struct buf *b, size_t n)
{
	size_t	 max, need, cap;
	char	*p;

	if (b->failed)
		return -1;
	max = b->max ? b->max : BUF_MAX_DEFAULT;
	if (n > max || b->len > max - n) {
		b->failed = 1;
		return -1;
	}
	need = b->len + n + 1;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	if ((p = realloc(b->data, cap)) == NULL) {
		b->failed = 1;
		return -1;
	}
	b->data = p;
	b->cap = cap;
	return 0;
}

void
buf_add(struct buf *b, const void *p, size_t n)
{
	if (buf_grow(b, n) == -1)
		return;
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void
buf_puts(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

void
buf_putc(struct buf *b, char c)
{
	buf_add(b, &c, 1);
}

void
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	if (b->failed)
		return;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->failed = 1;
		return;
	}
	if (buf_grow(b, (size_t)n) == -1)
		return;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* The contents as a C string; "" when empty.  Borrowed from b. */
const char *
buf_cstr(struct buf *b)
{
	return b->data != NULL ? b->data : "";
}

/* A libcurl write callback that appends to the buf in arg. */
size_t
buf_write_cb(char *p, size_t size, size_t n, void *arg)
{
	struct buf	*b = arg;

	buf_add(b, p, size * n);
	return b->failed ? 0 : size * n;
}
