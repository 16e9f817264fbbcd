/*
 * shared/resolve.c in a real libev loop: numeric hosts converted at once
 * and reported on the loop, never from inside resolve_start(); a name
 * from /etc/hosts ("localhost") looked up in glibc's helper thread and
 * reported on the loop; several names reported together, each address
 * tagged with its name; bad arguments refused with a reason; a lookup
 * left running when the resolver is closed never calls back.
 */
#include "autoconf.h"

#include <arpa/inet.h>

#include <stdio.h>
#include <string.h>

#include <ev.h>

#include "tests/tap.h"
#include "resolve.h"

struct result {
	int	calls;
	int	ok;
};

static void
done(struct resolver *r, int ok, void *arg)
{
	struct result	*res = arg;

	(void)r;
	res->calls++;
	res->ok = ok;
	ev_break(r->rs_loop, EVBREAK_ONE);
}

static void
guard_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)t;
	(void)revents;
	ev_break(loop, EVBREAK_ONE);
}

/* Run the loop until a callback breaks it, at most `secs`. */
static void
run_for(struct ev_loop *loop, double secs)
{
	ev_timer	guard;

	ev_timer_init(&guard, guard_cb, secs, 0.);
	ev_timer_start(loop, &guard);
	ev_run(loop, 0);
	ev_timer_stop(loop, &guard);
}

static int
has_addr(const struct resolver *r, const char *text, unsigned int name)
{
	unsigned int	i;

	for (i = 0; i < r->rs_naddrs; i++)
		if (strcmp(r->rs_addrs[i].ra_text, text) == 0 &&
		    r->rs_addrs[i].ra_name == name)
			return 1;
	return 0;
}

int
main(void)
{
	struct ev_loop		*loop = ev_default_loop(0);
	struct resolver		 r;
	struct result		 res;
	const char		*v4[] = { "192.0.2.7" }, *v6[] = { "[2001:db8::1]" };
	const char		*two[] = { "10.1.2.3", "::1" };
	const char		*lh[] = { "localhost" };
	const char		*mixed[] = { "127.0.0.1", "localhost" };
	const char		*many[RESOLVE_MAX_NAMES + 1];
	size_t			 i;

	tap_watchdog(60);

	ok(resolve_is_numeric("127.0.0.1"), "127.0.0.1 is numeric");
	ok(resolve_is_numeric("::1") && resolve_is_numeric("[::1]"),
	    "::1 and [::1] are numeric");
	ok(!resolve_is_numeric("localhost") && !resolve_is_numeric("1.2.3") &&
	    !resolve_is_numeric("") && !resolve_is_numeric("[localhost]"),
	    "names, a short dotted number, empty, a bracketed name are not");

	/* Numeric: converted at init, reported on the loop. */
	memset(&res, 0, sizeof(res));
	is_int(resolve_init(&r, loop, v4, 1, "6379", done, &res), 0,
	    "init with an IPv4 address");
	ok(r.rs_numeric && r.rs_naddrs == 1 && has_addr(&r, "192.0.2.7", 0),
	    "numeric: its address at once (%u)", r.rs_naddrs);
	is_int(ntohs(((struct sockaddr_in *)(void *)&r.rs_addrs[0].ra_addr)->
	    sin_port), 6379, "numeric: the port is in the address");
	resolve_start(&r);
	is_int(res.calls, 0, "numeric: no callback from inside resolve_start");
	run_for(loop, 5);
	ok(res.calls == 1 && res.ok, "numeric: one callback on the loop, ok");
	resolve_close(&r);

	memset(&res, 0, sizeof(res));
	resolve_init(&r, loop, v6, 1, "5432", done, &res);
	ok(r.rs_numeric && has_addr(&r, "2001:db8::1", 0),
	    "[2001:db8::1]: brackets dropped, IPv6 address");
	resolve_close(&r);

	memset(&res, 0, sizeof(res));
	resolve_init(&r, loop, two, 2, "1", done, &res);
	ok(r.rs_numeric && r.rs_naddrs == 2 && has_addr(&r, "10.1.2.3", 0) &&
	    has_addr(&r, "::1", 1), "two addresses, each with its name's index");
	resolve_close(&r);

	/* A name: glibc's thread, then the loop. */
	memset(&res, 0, sizeof(res));
	resolve_init(&r, loop, lh, 1, "80", done, &res);
	ok(!r.rs_numeric && r.rs_naddrs == 0, "localhost: nothing before the "
	    "lookup");
	resolve_start(&r);
	ok(resolve_busy(&r) && res.calls == 0, "localhost: lookup running, no "
	    "callback yet");
	resolve_start(&r);	/* a second start while busy: no second lookup */
	run_for(loop, 20);
	ok(res.calls == 1 && res.ok && !resolve_busy(&r),
	    "localhost: one callback, ok (%s)", r.rs_error);
	ok(has_addr(&r, "127.0.0.1", 0) || has_addr(&r, "::1", 0),
	    "localhost: a loopback address among %u", r.rs_naddrs);
	run_for(loop, 0.2);
	is_int(res.calls, 1, "localhost: no second callback");
	/* Again: a new lookup, a new callback. */
	resolve_start(&r);
	run_for(loop, 20);
	ok(res.calls == 2 && res.ok, "localhost again: looked up again");
	resolve_close(&r);

	/* An address and a name together: one callback for both. */
	memset(&res, 0, sizeof(res));
	resolve_init(&r, loop, mixed, 2, "80", done, &res);
	ok(!r.rs_numeric, "address + name: needs a lookup");
	resolve_start(&r);
	run_for(loop, 20);
	ok(res.calls == 1 && res.ok && has_addr(&r, "127.0.0.1", 0) &&
	    (has_addr(&r, "127.0.0.1", 1) || has_addr(&r, "::1", 1)),
	    "address + name: both in one callback, by index");
	resolve_close(&r);

	/* Closed while looking up: never called back. */
	memset(&res, 0, sizeof(res));
	resolve_init(&r, loop, lh, 1, "80", done, &res);
	resolve_start(&r);
	resolve_close(&r);
	run_for(loop, 0.3);
	is_int(res.calls, 0, "closed during a lookup: no callback");

	/* Bad arguments. */
	is_int(resolve_init(&r, loop, lh, 0, "80", done, &res), -1,
	    "no name: refused");
	is_str(r.rs_error, "0 host names (1 to 8 can be looked up)",
	    "no name: the reason");
	for (i = 0; i < sizeof(many) / sizeof(many[0]); i++)
		many[i] = "localhost";
	is_int(resolve_init(&r, loop, many, RESOLVE_MAX_NAMES + 1, "80", done,
	    &res), -1, "9 names: refused");
	is_int(resolve_init(&r, loop, lh, 1, "http", done, &res), -1,
	    "a port that is not a number: refused");
	is_str(r.rs_error, "invalid port \"http\"", "bad port: the reason");
	is_int(resolve_init(&r, loop, lh, 1, "", done, &res), -1,
	    "an empty port: refused");
	ok(r.rs_loop == NULL && r.rs_nnames == 0,
	    "a failed init holds no loop and no names");
	resolve_close(&r);	/* after a failed init: nothing to do */

	done_testing();
	return 0;
}
