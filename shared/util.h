/*
 * Small helpers used by every role: allocation that never returns NULL,
 * fd flags, monotonic time.
 */
#ifndef WSGATE_UTIL_H
#define WSGATE_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))

void	*xmalloc(size_t);
void	*xcalloc(size_t, size_t);
void	*xrealloc(void *, size_t);
char	*xstrdup(const char *);
char	*xstrndup(const char *, size_t);
size_t	 fmt_u64(char *, uint64_t);
int	 xasprintf(char **, const char *, ...)
	    __attribute__((format(printf, 2, 3)));

int	 fd_set_nonblock(int);
int	 fd_set_cloexec(int);

/* Milliseconds on CLOCK_MONOTONIC. */
uint64_t	 now_ms(void);

#ifndef HAVE_STRLCPY
size_t	 strlcpy(char *, const char *, size_t);
#endif

#endif /* WSGATE_UTIL_H */
