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
 * shared/sdnotify.c against real AF_UNIX datagram sockets (filesystem
 * and abstract): messages arrive byte for byte, the environment is
 * cleaned, the watchdog follows WATCHDOG_USEC/WATCHDOG_PID, failures
 * are logged once per outage and never fatal.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/tap.h"
#include "log.h"
#include "sdnotify.h"
#include "util.h"

static char	tmpdir[] = "/tmp/wsgate-test-sdnotify.XXXXXX";
static char	logpath[256];

/* A datagram socket bound to path ('@' first: abstract namespace). */
static int
listener(const char *path)
{
	struct sockaddr_un	sun;
	socklen_t		len;
	int			fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	len = offsetof(struct sockaddr_un, sun_path) + strlen(path);
	memcpy(sun.sun_path, path, strlen(path));
	if (path[0] == '@')
		sun.sun_path[0] = '\0';
	else
		len++;
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1 ||
	    bind(fd, (struct sockaddr *)&sun, len) == -1) {
		diag("listener %s: %s", path, strerror(errno));
		exit(1);
	}
	return fd;
}

/* The next datagram, or "" when none is queued. */
static const char *
next_msg(int fd)
{
	static char	buf[4096];
	ssize_t		n;

	n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	buf[n < 0 ? 0 : n] = '\0';
	return buf;
}

static uint64_t
mono_usec(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Lines of the test's log file containing s. */
static int
log_count(const char *s)
{
	char	line[8192];
	FILE	*fp;
	int	n = 0;

	if ((fp = fopen(logpath, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), fp) != NULL)
		if (strstr(line, s) != NULL)
			n++;
	fclose(fp);
	return n;
}

static void
env(const char *sock, const char *usec, const char *pid)
{
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	if (sock != NULL)
		setenv("NOTIFY_SOCKET", sock, 1);
	if (usec != NULL)
		setenv("WATCHDOG_USEC", usec, 1);
	if (pid != NULL)
		setenv("WATCHDOG_PID", pid, 1);
}

static void
test_off(void)
{
	env(NULL, "1000000", NULL);
	sdnotify_init();
	is_int(sdnotify_send("READY=1"), 0, "no NOTIFY_SOCKET: send is a no-op");
	is_int(sdnotify_watchdog_next(), 0,
	    "no NOTIFY_SOCKET: no watchdog even with WATCHDOG_USEC");
	ok(getenv("WATCHDOG_USEC") == NULL, "WATCHDOG_USEC removed");

	env("relative/path", NULL, NULL);
	sdnotify_init();
	is_int(sdnotify_send("READY=1"), 0, "relative NOTIFY_SOCKET ignored");
	ok(getenv("NOTIFY_SOCKET") == NULL, "ignored NOTIFY_SOCKET removed");
	is_int(log_count("ignoring NOTIFY_SOCKET=\"relative/path\""), 1,
	    "relative NOTIFY_SOCKET: one warning");
}

static void
test_path(void)
{
	char		 path[200], want[64];
	const char	*msg;
	uint64_t	 before, after, got, next, now;
	int		 fd;

	snprintf(path, sizeof(path), "%s/notify", tmpdir);
	fd = listener(path);
	env(path, "2000000", NULL);
	now = now_ms();
	sdnotify_init();
	ok(getenv("NOTIFY_SOCKET") == NULL && getenv("WATCHDOG_USEC") == NULL &&
	    getenv("WATCHDOG_PID") == NULL,
	    "init removes NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID");

	is_int(sdnotify_send("READY=1\nSTATUS=up %d", 7), 0, "send READY=1");
	is_str(next_msg(fd), "READY=1\nSTATUS=up 7", "path socket: message "
	    "arrives byte for byte as one datagram");
	is_str(next_msg(fd), "", "exactly one datagram");

	before = mono_usec();
	is_int(sdnotify_reloading(), 0, "send RELOADING=1");
	after = mono_usec();
	msg = next_msg(fd);
	got = 0;
	ok(sscanf(msg, "RELOADING=1\nMONOTONIC_USEC=%llu\n",
	    (unsigned long long *)&got) == 1, "RELOADING=1 then MONOTONIC_USEC "
	    "(%s)", msg);
	ok(got >= before && got <= after, "MONOTONIC_USEC is CLOCK_MONOTONIC "
	    "in us (%llu in [%llu, %llu])", (unsigned long long)got,
	    (unsigned long long)before, (unsigned long long)after);
	ok(strstr(msg, "\nSTATUS=") != NULL, "RELOADING=1 carries a STATUS=");

	/* Watchdog: every WATCHDOG_USEC / 2, here 1000 ms. */
	next = sdnotify_watchdog_next();
	ok(next >= now + 1000 && next <= now_ms() + 1000,
	    "watchdog first due half of WATCHDOG_USEC after init (in %lld ms)",
	    (long long)(next - now));
	sdnotify_watchdog(next - 1);
	is_str(next_msg(fd), "", "watchdog: nothing before it is due");
	sdnotify_watchdog(next);
	is_str(next_msg(fd), "WATCHDOG=1", "watchdog: WATCHDOG=1 when due");
	is_int(sdnotify_watchdog_next(), next + 1000,
	    "watchdog: next one half of WATCHDOG_USEC later");

	/* A STATUS= longer than a message is cut, not dropped. */
	{
		char	big[3000];

		memset(big, 'x', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		sdnotify_send("STATUS=%s", big);
		is_int(strlen(next_msg(fd)), 2047,
		    "long message cut to 2047 bytes");
	}

	/* Watchdog meant for us, for another pid, malformed. */
	snprintf(want, sizeof(want), "%ld", (long)getpid());
	env(path, "500000", want);
	sdnotify_init();
	ok(sdnotify_watchdog_next() != 0, "WATCHDOG_PID = our pid: watchdog on");
	snprintf(want, sizeof(want), "%ld", (long)getpid() + 1);
	env(path, "500000", want);
	sdnotify_init();
	is_int(sdnotify_watchdog_next(), 0,
	    "WATCHDOG_PID = another pid: watchdog off");
	env(path, "soon", NULL);
	sdnotify_init();
	is_int(sdnotify_watchdog_next(), 0, "WATCHDOG_USEC=soon: watchdog off");
	is_int(log_count("ignoring WATCHDOG_USEC=\"soon\""), 1,
	    "WATCHDOG_USEC=soon: one warning");
	env(path, "1", NULL);
	sdnotify_init();
	sdnotify_watchdog(sdnotify_watchdog_next());
	is_str(next_msg(fd), "WATCHDOG=1", "WATCHDOG_USEC=1: still pings");

	/* The manager goes away: -1, one warning, none repeated. */
	close(fd);
	unlink(path);
	is_int(sdnotify_send("READY=1"), -1, "socket gone: send returns -1");
	is_int(sdnotify_send("READY=1"), -1, "socket gone: again -1");
	is_int(log_count("cannot notify the service manager"), 1,
	    "socket gone: one warning for two failures");
	fd = listener(path);
	is_int(sdnotify_send("READY=1"), 0, "socket back: send works");
	is_str(next_msg(fd), "READY=1", "socket back: message arrives");
	is_int(log_count("notifications work again"), 1,
	    "socket back: logged once");
	close(fd);
	unlink(path);
	sdnotify_send("READY=1");
	is_int(log_count("cannot notify the service manager"), 2,
	    "a new outage is logged again");
}

static void
test_abstract(void)
{
	char	name[108];
	int	fd;

	snprintf(name, sizeof(name), "@wsgate-test-sdnotify-%ld",
	    (long)getpid());
	fd = listener(name);
	env(name, NULL, NULL);
	sdnotify_init();
	is_int(sdnotify_send("STOPPING=1"), 0, "abstract socket: send");
	is_str(next_msg(fd), "STOPPING=1", "abstract socket: message arrives");
	close(fd);

	env("@", NULL, NULL);
	sdnotify_init();
	is_int(sdnotify_send("READY=1"), 0, "\"@\" alone is ignored");
}

int
main(void)
{
	int	rc;

	tap_watchdog(20);
	if (mkdtemp(tmpdir) == NULL) {
		diag("mkdtemp: %s", strerror(errno));
		return 1;
	}
	snprintf(logpath, sizeof(logpath), "%s/log", tmpdir);
	log_init("test", LOG_LEVEL_DEBUG);
	if (log_open(logpath) == -1) {
		diag("log_open %s: %s", logpath, strerror(errno));
		return 1;
	}

	test_off();
	test_path();
	test_abstract();

	log_open(NULL);
	unlink(logpath);
	rc = rmdir(tmpdir);
	ok(rc == 0, "temp dir empty at the end");
	return done_testing();
}
