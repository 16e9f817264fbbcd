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
 * sd_notify(3) by hand: each message is one datagram of "KEY=VALUE"
 * lines sent to the AF_UNIX socket named by $NOTIFY_SOCKET, from a
 * fresh non-blocking socket (as libsystemd does), so no descriptor stays
 * open for children to inherit and a stuck service manager can never
 * stall the master.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "sdnotify.h"
#include "util.h"

#define SDNOTIFY_MSG_MAX	2048

static struct {
	struct sockaddr_un	sun;
	socklen_t		sunlen;		/* 0: notifications off */
	char			name[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
	uint64_t		wd_interval;	/* ms; 0: no watchdog */
	uint64_t		wd_next;	/* now_ms() of the next ping */
	int			failing;	/* the last send failed */
} sd;

static int	sdnotify_parse_addr(const char *);
static uint64_t	sdnotify_watchdog_interval(void);

/*
 * "/path" is a filesystem socket, "@name" one in the abstract namespace
 * (the '@' stands for the leading NUL).  Anything else (such as
 * systemd's "vsock:" addresses) is not supported.
 */
static int
sdnotify_parse_addr(const char *s)
{
	size_t	len = strlen(s);

	memset(&sd.sun, 0, sizeof(sd.sun));
	sd.sun.sun_family = AF_UNIX;
	if (s[0] == '/' && len < sizeof(sd.sun.sun_path)) {
		memcpy(sd.sun.sun_path, s, len + 1);
		sd.sunlen = offsetof(struct sockaddr_un, sun_path) + len + 1;
	} else if (s[0] == '@' && len >= 2 && len <= sizeof(sd.sun.sun_path)) {
		/* Abstract: exactly len bytes, the NUL first, none after. */
		memcpy(sd.sun.sun_path + 1, s + 1, len - 1);
		sd.sunlen = offsetof(struct sockaddr_un, sun_path) + len;
	} else
		return -1;
	memcpy(sd.name, s, len + 1);
	return 0;
}

/*
 * Half of $WATCHDOG_USEC, in ms, as sd_watchdog_enabled(3) advises; 0
 * when unset, malformed, or meant for another pid (WATCHDOG_PID).
 */
static uint64_t
sdnotify_watchdog_interval(void)
{
	const char		*usec_s, *pid_s;
	char			*end;
	unsigned long long	 usec;
	long			 pid;

	if ((usec_s = getenv("WATCHDOG_USEC")) == NULL)
		return 0;
	errno = 0;
	usec = strtoull(usec_s, &end, 10);
	if (errno != 0 || end == usec_s || *end != '\0' || usec == 0) {
		log_warnx("ignoring WATCHDOG_USEC=\"%s\": not a number of "
		    "microseconds", usec_s);
		return 0;
	}
	if ((pid_s = getenv("WATCHDOG_PID")) != NULL) {
		errno = 0;
		pid = strtol(pid_s, &end, 10);
		if (errno != 0 || end == pid_s || *end != '\0' ||
		    pid != (long)getpid())
			return 0;
	}
	if (usec / 2000 == 0)
		return 1;
	return usec / 2000;
}

void
sdnotify_init(void)
{
	const char	*s;

	memset(&sd, 0, sizeof(sd));
	if ((s = getenv("NOTIFY_SOCKET")) != NULL && s[0] != '\0') {
		if (sdnotify_parse_addr(s) == -1)
			log_warnx("ignoring NOTIFY_SOCKET=\"%s\": not an "
			    "absolute path or @abstract socket name that "
			    "fits sun_path", s);
		else
			sd.wd_interval = sdnotify_watchdog_interval();
	}
	if (sd.wd_interval != 0) {
		sd.wd_next = now_ms() + sd.wd_interval;
		log_info("service manager watchdog interval=%llums",
		    (unsigned long long)sd.wd_interval);
	}
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
}

int
sdnotify_send(const char *fmt, ...)
{
	char	msg[SDNOTIFY_MSG_MAX];
	va_list	ap;
	ssize_t	n;
	int	fd, len, saved;

	if (sd.sunlen == 0)
		return 0;
	va_start(ap, fmt);
	len = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (len < 0)
		return -1;
	if ((size_t)len >= sizeof(msg))
		len = sizeof(msg) - 1;	/* a long STATUS= is cut short */

	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd == -1)
		n = -1;
	else {
		n = sendto(fd, msg, len, MSG_NOSIGNAL,
		    (struct sockaddr *)&sd.sun, sd.sunlen);
		saved = errno;
		close(fd);
		errno = saved;
	}
	if (n == len) {
		if (sd.failing)
			log_info("service manager notifications work again "
			    "socket=%s", sd.name);
		sd.failing = 0;
		return 0;
	}
	if (n >= 0)
		errno = EMSGSIZE;
	/* Once per outage: a gone manager must not flood the log. */
	if (!sd.failing)
		log_warn("cannot notify the service manager socket=%s",
		    sd.name);
	sd.failing = 1;
	return -1;
}

int
sdnotify_reloading(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return sdnotify_send("RELOADING=1\nMONOTONIC_USEC=%llu\n"
	    "STATUS=Reloading the configuration",
	    (unsigned long long)ts.tv_sec * 1000000ULL +
	    (unsigned long long)ts.tv_nsec / 1000ULL);
}

uint64_t
sdnotify_watchdog_next(void)
{
	return sd.wd_interval != 0 ? sd.wd_next : 0;
}

void
sdnotify_watchdog(uint64_t now)
{
	if (sd.wd_interval == 0 || now < sd.wd_next)
		return;
	sdnotify_send("WATCHDOG=1");
	sd.wd_next = now + sd.wd_interval;
}
