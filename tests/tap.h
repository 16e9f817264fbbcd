/*
 * Copyright (c) 2026 The wsgate authors.
 *
 * Permission to use, copy, modify, and distribute this software for any
 * purpose with or without fee is hereby granted, provided that the above
 * copyright notice and this permission notice appear in all copies.
 *
 * THE SOFTWARE IS PROVIDED "AS IS" AND THE AUTHOR DISCLAIMS ALL WARRANTIES
 * WITH REGARD TO THIS SOFTWARE INCLUDING ALL IMPLIED WARRANTIES OF
 * MERCHANTABILITY AND FITNESS. IN NO EVENT SHALL THE AUTHOR BE LIABLE FOR
 * ANY SPECIAL, DIRECT, INDIRECT, OR CONSEQUENTIAL DAMAGES OR ANY DAMAGES
 * WHATSOEVER RESULTING FROM LOSS OF USE, DATA OR PROFITS, WHETHER IN AN
 * ACTION OF CONTRACT, NEGLIGENCE OR OTHER TORTIOUS ACTION, ARISING OUT OF
 * OR IN CONNECTION WITH THE USE OR PERFORMANCE OF THIS SOFTWARE.
 */

/*
 * Minimal TAP producer for the unit tests, header-only:
 *
 *	ok(cond, "what", ...);		is_int(got, want, "what", ...);
 *	is_str(got, want, "what", ...);	skip("reason");   diag("note");
 *	tap_watchdog(10);		return done_testing();
 *
 * done_testing() prints the plan "1..N" and exits 1 if any test failed.
 * Output goes to stdout, flushed per line, so a crash loses nothing.
 */
#ifndef WSGATE_TAP_H
#define WSGATE_TAP_H

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TAP_PRINTF(a, b)	__attribute__((format(printf, a, b)))

#define ok(cond, ...)							\
	tap_result(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define is_int(got, want, ...)						\
	tap_is_int((long long)(got), (long long)(want), __FILE__,	\
	    __LINE__, __VA_ARGS__)
#define is_str(got, want, ...)						\
	tap_is_str((got), (want), __FILE__, __LINE__, __VA_ARGS__)
#define skip(...)		tap_skip(__VA_ARGS__)
#define diag(...)		tap_diag(__VA_ARGS__)
#define done_testing()		tap_done_testing()

static struct {
	int	run;
	int	failed;
} tap_state __attribute__((unused));

static inline void	tap_vline(const char *, int, const char *, va_list)
			    TAP_PRINTF(3, 0);
static inline int	tap_result(int, const char *, int, const char *, ...)
			    TAP_PRINTF(4, 5);
static inline int	tap_is_int(long long, long long, const char *, int,
			    const char *, ...) TAP_PRINTF(5, 6);
static inline int	tap_is_str(const char *, const char *, const char *,
			    int, const char *, ...) TAP_PRINTF(5, 6);
static inline void	tap_skip(const char *, ...) TAP_PRINTF(1, 2);
static inline void	tap_diag(const char *, ...) TAP_PRINTF(1, 2);

/*
 * "prefix text\n" on one line.  In a test description (`escape`) a "#"
 * would start a TAP directive, so it is written "\#".
 */
static inline void
tap_vline(const char *prefix, int escape, const char *fmt, va_list ap)
{
	char	buf[1024];
	char	*s;

	vsnprintf(buf, sizeof(buf), fmt, ap);
	fputs(prefix, stdout);
	for (s = buf; *s != '\0'; s++) {
		if (escape && *s == '#')
			putchar('\\');
		putchar(*s == '\n' ? ' ' : *s);
	}
	putchar('\n');
	fflush(stdout);
}

static inline void
tap_diag(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	tap_vline("# ", 0, fmt, ap);
	va_end(ap);
}

static inline int
tap_vresult(int pass, const char *file, int line, const char *fmt,
    va_list ap)
{
	char	prefix[64];

	tap_state.run++;
	snprintf(prefix, sizeof(prefix), "%sok %d - ", pass ? "" : "not ",
	    tap_state.run);
	tap_vline(prefix, 1, fmt, ap);
	if (!pass) {
		tap_state.failed++;
		printf("#   Failed at %s line %d.\n", file, line);
		fflush(stdout);
	}
	return pass;
}

static inline int
tap_result(int pass, const char *file, int line, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	tap_vresult(pass, file, line, fmt, ap);
	va_end(ap);
	return pass;
}

static inline int
tap_is_int(long long got, long long want, const char *file, int line,
    const char *fmt, ...)
{
	va_list	ap;
	int	pass = got == want;

	va_start(ap, fmt);
	tap_vresult(pass, file, line, fmt, ap);
	va_end(ap);
	if (!pass) {
		printf("#        got: %lld\n#   expected: %lld\n", got, want);
		fflush(stdout);
	}
	return pass;
}

/* NULL equals only NULL. */
static inline int
tap_is_str(const char *got, const char *want, const char *file, int line,
    const char *fmt, ...)
{
	va_list	ap;
	int	pass;

	pass = (got == NULL || want == NULL) ? got == want :
	    strcmp(got, want) == 0;
	va_start(ap, fmt);
	tap_vresult(pass, file, line, fmt, ap);
	va_end(ap);
	if (!pass) {
		printf("#        got: %s%s%s\n", got ? "'" : "",
		    got ? got : "NULL", got ? "'" : "");
		printf("#   expected: %s%s%s\n", want ? "'" : "",
		    want ? want : "NULL", want ? "'" : "");
		fflush(stdout);
	}
	return pass;
}

/* One test that counts as passed: "ok N # SKIP reason". */
static inline void
tap_skip(const char *fmt, ...)
{
	va_list	ap;
	char	prefix[64];

	tap_state.run++;
	snprintf(prefix, sizeof(prefix), "ok %d # SKIP ", tap_state.run);
	va_start(ap, fmt);
	tap_vline(prefix, 0, fmt, ap);
	va_end(ap);
}

/* Prints the plan and exits: 0 if every test passed, else 1. */
static inline int
tap_done_testing(void)
{
	printf("1..%d\n", tap_state.run);
	if (tap_state.failed > 0)
		printf("# Looks like you failed %d test%s of %d.\n",
		    tap_state.failed, tap_state.failed == 1 ? "" : "s",
		    tap_state.run);
	fflush(stdout);
	exit(tap_state.failed > 0 ? 1 : 0);
}

static inline void
tap_alarm_cb(int sig)
{
	static const char	msg[] = "Bail out! watchdog: test timed out\n";
	ssize_t			n;

	(void)sig;
	/* Only async-signal-safe calls here. */
	n = write(STDOUT_FILENO, msg, sizeof(msg) - 1);
	(void)n;
	_exit(2);
}

/*
 * Bail out if the test runs longer than `seconds`, times the integer in
 * WSGATE_TEST_TIMEOUT_MULT when set (slow sanitizer builds).
 */
static inline void
tap_watchdog(unsigned int seconds)
{
	const char	*mult = getenv("WSGATE_TEST_TIMEOUT_MULT");
	int		 m;

	if (mult != NULL && (m = atoi(mult)) > 1)
		seconds *= (unsigned int)m;
	signal(SIGALRM, tap_alarm_cb);
	alarm(seconds);
}

#endif /* WSGATE_TAP_H */
