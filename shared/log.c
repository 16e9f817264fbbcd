/*
 * Logging for every role: one line per event, one write(2) per line, to
 * stderr or an O_APPEND file that USR1 reopens.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

static const char	*log_role = "wsgate";
static pid_t		 log_pid;
static enum log_level	 log_min = LOG_LEVEL_INFO;
static int		 log_filefd = STDERR_FILENO;
static char		 log_path[4096];

static void	log_vwrite(enum log_level, const char *, va_list, int);

void
log_init(const char *role, enum log_level level)
{
	log_role = role;
	log_pid = getpid();
	log_min = level;
}

void
log_set_level(enum log_level level)
{
	log_min = level;
}

int
log_fd(void)
{
	return log_filefd;
}

int
log_open(const char *path)
{
	int	fd;

	if (path == NULL) {
		if (log_filefd != STDERR_FILENO)
			close(log_filefd);
		log_filefd = STDERR_FILENO;
		log_path[0] = '\0';
		return 0;
	}
	if (strlen(path) >= sizeof(log_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd == -1)
		return -1;
	if (log_filefd != STDERR_FILENO)
		close(log_filefd);
	log_filefd = fd;
	memcpy(log_path, path, strlen(path) + 1);
	return 0;
}

int
log_reopen(void)
{
	char	path[sizeof(log_path)];

	if (log_path[0] == '\0')
		return 0;
	memcpy(path, log_path, sizeof(path));
	return log_open(path);
}

static const char *
level_name(enum log_level l)
{
	switch (l) {
	case LOG_LEVEL_DEBUG:
		return "debug";
	case LOG_LEVEL_INFO:
		return "info";
	case LOG_LEVEL_WARN:
		return "warn";
	case LOG_LEVEL_ERROR:
		return "error";
	}
	return "?";
}

/*
 * Format "TIME ROLE[PID] LEVEL: MESSAGE" and write it in one call so lines
 * from several processes sharing the file never interleave.  With
 * `with_errno`, ": strerror" is inserted before the first " key=value"
 * field of the message so fields stay at the end of the line.
 */
static void
log_vwrite(enum log_level level, const char *fmt, va_list ap, int with_errno)
{
	char		 line[8192], msg[7168], *fields;
	struct timeval	 tv;
	struct tm	 tm;
	int		 saved = errno, n;

	if (level < log_min)
		return;
	if (log_pid == 0)
		log_pid = getpid();
	vsnprintf(msg, sizeof(msg), fmt, ap);
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = snprintf(line, sizeof(line),
	    "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s[%ld] %s: ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000), log_role,
	    (long)log_pid, level_name(level));
	if (n < 0)
		return;
	if (with_errno) {
		fields = NULL;
		for (char *p = strchr(msg, ' '); p != NULL;
		    p = strchr(p + 1, ' ')) {
			char *eq = strchr(p + 1, '=');
			char *sp = strchr(p + 1, ' ');
			if (eq != NULL && (sp == NULL || eq < sp)) {
				fields = p;
				break;
			}
		}
		if (fields != NULL) {
			*fields = '\0';
			n += snprintf(line + n, sizeof(line) - n, "%s: %s %s",
			    msg, strerror(saved), fields + 1);
		} else
			n += snprintf(line + n, sizeof(line) - n, "%s: %s",
			    msg, strerror(saved));
	} else
		n += snprintf(line + n, sizeof(line) - n, "%s", msg);
	if ((size_t)n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	(void)!write(log_filefd, line, n);
	errno = saved;
}

#define LOG_FN(name, lvl, err)				\
void							\
name(const char *fmt, ...)				\
{							\
	va_list	ap;					\
							\
	va_start(ap, fmt);				\
	log_vwrite(lvl, fmt, ap, err);			\
	va_end(ap);					\
}

LOG_FN(log_debug, LOG_LEVEL_DEBUG, 0)
LOG_FN(log_info, LOG_LEVEL_INFO, 0)
LOG_FN(log_warnx, LOG_LEVEL_WARN, 0)
LOG_FN(log_warn, LOG_LEVEL_WARN, 1)
LOG_FN(log_errorx, LOG_LEVEL_ERROR, 0)

void
fatal(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_ERROR, fmt, ap, 1);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_ERROR, fmt, ap, 0);
	va_end(ap);
	exit(1);
}

int
log_limit_now(struct log_limit *ll, uint64_t every_ms, uint64_t *quiet)
{
	uint64_t	now = now_ms();

	if (ll->ll_last_ms != 0 && now - ll->ll_last_ms < every_ms) {
		ll->ll_quiet++;
		return 0;
	}
	*quiet = ll->ll_quiet;
	ll->ll_quiet = 0;
	ll->ll_last_ms = now;
	return 1;
}

void
log_limit_reset(struct log_limit *ll)
{
	ll->ll_last_ms = 0;
	ll->ll_quiet = 0;
}
