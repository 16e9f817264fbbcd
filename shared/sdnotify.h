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
 * Service manager notifications: the sd_notify(3) datagram protocol
 * (READY=1, RELOADING=1, STOPPING=1, WATCHDOG=1, STATUS=...), written
 * here rather than linking libsystemd.  The master alone talks to the
 * service manager; without $NOTIFY_SOCKET every call is a no-op.
 */
#ifndef WSGATE_SDNOTIFY_H
#define WSGATE_SDNOTIFY_H

#include <stdint.h>

/*
 * Read $NOTIFY_SOCKET ("/path" or "@abstract"), $WATCHDOG_USEC and
 * $WATCHDOG_PID, then remove all three from the environment so that no
 * child (or anything it runs) believes it is the service.  Call once, in
 * the process that will send, after any fork that changes its pid.
 */
void		 sdnotify_init(void);

/*
 * Send one newline-separated message ("READY=1\nSTATUS=...").  Never
 * blocks; a failure is logged once (until a send succeeds again) and is
 * never fatal.  Returns 0 on success or when disabled, -1 on failure.
 */
int		 sdnotify_send(const char *, ...)
		    __attribute__((format(printf, 1, 2)));

/* RELOADING=1 with MONOTONIC_USEC (systemd matches it to the reload). */
int		 sdnotify_reloading(void);

/*
 * The watchdog: sdnotify_watchdog_next() is when (now_ms() clock) the
 * next WATCHDOG=1 is due, 0 when no watchdog is wanted (WATCHDOG_USEC
 * unset, or WATCHDOG_PID names another process).  sdnotify_watchdog(now)
 * sends it if due and schedules the next one at half of WATCHDOG_USEC.
 */
uint64_t	 sdnotify_watchdog_next(void);
void		 sdnotify_watchdog(uint64_t);

#endif /* WSGATE_SDNOTIFY_H */
