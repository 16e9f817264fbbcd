/*
 * Logging: one line per event,
 *   2026-11-27T05:41:00.123Z worker[1234] info: message key=value ...
 * to stderr or a file (O_APPEND, one write(2) per line).  relayd's API.
 */
#ifndef WSGATE_LOG_H
#define WSGATE_LOG_H

#include <stdarg.h>
#include <stdint.h>

#include "config.h"

/* Set role name ("master", "worker", "dbwriter") and refresh cached pid. */
void	log_init(const char *role, enum log_level level);
void	log_set_level(enum log_level);
/* Log to `path` (NULL = stderr).  Returns 0, or -1 with errno set. */
int	log_open(const char *path);
/* Reopen the current log file (USR1).  Returns 0 or -1 with errno. */
int	log_reopen(void);
/* The fd lines go to (for handing stderr to a daemonized master). */
int	log_fd(void);

void	log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
/* Appends ": strerror(errno)" before any key=value fields are lost. */
void	log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_errorx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	fatal(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	fatalx(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));

/*
 * A line that could repeat at every event (a failing retry, an error
 * reply per request): log_limit_now() says whether to log it now, the
 * first time and then at most every `every_ms`; *quiet gets how often
 * it said no since it last said yes (for the line to report).
 */
struct log_limit {
	uint64_t	ll_last_ms;	/* now_ms() of the last yes, 0: none */
	uint64_t	ll_quiet;
};
int	log_limit_now(struct log_limit *, uint64_t every_ms, uint64_t *quiet);
/* The run of repeats is over: the next line is logged at once. */
void	log_limit_reset(struct log_limit *);

#endif /* WSGATE_LOG_H */
