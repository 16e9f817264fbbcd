/*
 * Growable byte buffers.
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "util.h"

char *
buf_reserve(struct buf *b, size_t n)
{
	if (b->b_cap - b->b_len < n + 1) {
		size_t cap = b->b_cap < 64 ? 64 : b->b_cap;
		while (cap - b->b_len < n + 1)
			cap *= 2;
		b->b_p = xrealloc(b->b_p, cap);
		b->b_cap = cap;
	}
	return b->b_p + b->b_len;
}

void
buf_append(struct buf *b, const void *p, size_t n)
{
	if (n == 0)
		return;
	memcpy(buf_reserve(b, n), p, n);
	b->b_len += n;
}

void
buf_appends(struct buf *b, const char *s)
{
	buf_append(b, s, strlen(s));
}

void
buf_appendc(struct buf *b, char c)
{
	*buf_reserve(b, 1) = c;
	b->b_len++;
}

void
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n <= 0)
		return;
	buf_reserve(b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(b->b_p + b->b_len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->b_len += (size_t)n;
}

char *
buf_cstr(struct buf *b)
{
	buf_reserve(b, 0);
	b->b_p[b->b_len] = '\0';
	return b->b_p;
}

void
buf_reset(struct buf *b)
{
	b->b_len = 0;
}

void
buf_free(struct buf *b)
{
	free(b->b_p);
	b->b_p = NULL;
	b->b_len = b->b_cap = 0;
}
