/*
 * A growable byte buffer.  Never fails (xrealloc); the bytes are not
 * NUL-terminated unless buf_cstr() is asked for.
 */
#ifndef WSGATE_BUF_H
#define WSGATE_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
	char	*b_p;
	size_t	 b_len;
	size_t	 b_cap;
};

#define BUF_INIT	{ NULL, 0, 0 }

/* Make room for `n` more bytes; returns a pointer to the free space. */
char	*buf_reserve(struct buf *, size_t n);
void	 buf_append(struct buf *, const void *, size_t);
void	 buf_appends(struct buf *, const char *);
void	 buf_appendc(struct buf *, char);
void	 buf_printf(struct buf *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
/* NUL-terminate (not counted in b_len) and return b_p. */
char	*buf_cstr(struct buf *);
void	 buf_reset(struct buf *);	/* length 0, memory kept */
void	 buf_free(struct buf *);	/* memory released, reusable */

#endif /* WSGATE_BUF_H */
