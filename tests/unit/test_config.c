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
 * Unit tests for the configuration parser (shared/config.c): defaults,
 * every value type, every error message word for word, files.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cgroup.h"
#include "config.h"
#include "util.h"
#include "tests/tap.h"

#define NAME		"t.conf"
#define URL_LINE	"upstream_url http://127.0.0.1:8000/\n"
#define PG_LINE		"pg_conninfo host=127.0.0.1 dbname=wsgate\n"
#define REQUIRED	URL_LINE PG_LINE

static char	tmpdir[] = "/tmp/wsgate-test-config.XXXXXX";
static char	errbuf[512];

static char	*fmt(const char *, ...) __attribute__((format(printf, 1, 2)));

/* asprintf() that cannot fail. */
static char *
fmt(const char *f, ...)
{
	va_list	 ap;
	char	*s;

	va_start(ap, f);
	if (vasprintf(&s, f, ap) == -1)
		abort();
	va_end(ap);
	return s;
}

/*
 * Load `text` then `tail` (normally the two required keys, after the
 * text so that error line numbers are the text's own).
 */
static struct config *
load_tail(const char *text, const char *tail)
{
	char		*buf;
	struct config	*conf;

	buf = fmt("%s%s%s", text,
	    text[0] != '\0' && text[strlen(text) - 1] != '\n' ? "\n" : "",
	    tail);
	errbuf[0] = '\0';
	conf = config_load_buffer(NAME, buf, strlen(buf), errbuf,
	    sizeof(errbuf));
	free(buf);
	return conf;
}

/*
 * What loop_budget auto comes to for `workers` workers on this machine:
 * the CPU quota over this process (the test's, the parser's own) decides.
 */
static unsigned int
loop_budget_auto(int workers)
{
	double	cpus;
	char	where[256];

	if (cgroup_cpu_quota("", &cpus, where, sizeof(where)) &&
	    cpus < workers)
		return 0;
	return CONFIG_LOOP_BUDGET_AUTO;
}

static struct config *
load(const char *text)
{
	return load_tail(text, REQUIRED);
}

/* One test: loading fails with exactly `want`. */
static void
error_tail(const char *text, const char *tail, const char *want)
{
	struct config	*conf;

	conf = load_tail(text, tail);
	is_str(conf == NULL ? errbuf : "(loaded)", want, "error: %s", want);
	config_free(conf);
}

static void
error_is(const char *text, const char *want)
{
	error_tail(text, REQUIRED, want);
}

/* One test: loading succeeds. */
static void
valid(const char *text, const char *what)
{
	struct config	*conf;

	conf = load(text);
	ok(conf != NULL, "valid: %s%s%s", what, conf ? "" : ": ",
	    conf ? "" : errbuf);
	config_free(conf);
}

static void
write_file(const char *path, const char *text, size_t len)
{
	FILE	*fp;

	if ((fp = fopen(path, "w")) == NULL ||
	    fwrite(text, 1, len, fp) != len || fclose(fp) != 0) {
		diag("cannot write %s: %s", path, strerror(errno));
		abort();
	}
}

static char *
tmp_path(const char *name)
{
	return fmt("%s/%s", tmpdir, name);
}

static uint16_t
port_of(const struct config_listen *l)
{
	const struct sockaddr_in6	*sin6;
	const struct sockaddr_in	*sin;

	sin6 = (const struct sockaddr_in6 *)&l->l_addr;
	sin = (const struct sockaddr_in *)&l->l_addr;
	if (l->l_addr.ss_family == AF_INET6)
		return ntohs(sin6->sin6_port);
	return ntohs(sin->sin_port);
}

/* ---- Defaults ---- */

static void
test_defaults(void)
{
	struct config	*c;
	long		 ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	if (ncpu < 1)
		ncpu = 1;
	if (ncpu > CONFIG_MAX_WORKERS)
		ncpu = CONFIG_MAX_WORKERS;

	c = load("");
	if (!ok(c != NULL, "minimal config loads: %s", errbuf))
		return;
	is_str(c->c_path, NAME, "c_path is the name");
	is_int(c->c_nlisten, 1, "one default listener");
	is_str(c->c_listen[0].l_text, "0.0.0.0:8080", "listen default");
	is_int(c->c_listen[0].l_addr.ss_family, AF_INET, "listen is IPv4");
	is_int(port_of(&c->c_listen[0]), 8080, "listen port 8080");
	is_int(c->c_listen[0].l_ssl, 0, "listen without ssl");
	is_str(c->c_admin_listen.l_text, "127.0.0.1:9090", "admin_listen");
	is_int(port_of(&c->c_admin_listen), 9090, "admin_listen port");
	is_int(c->c_workers, ncpu, "workers auto = online CPUs");
	is_int(c->c_workers_auto, 1, "workers_auto set");
	is_int(c->c_dbwriters, 1, "dbwriters");
	is_int(c->c_worker_priority_set, 0, "worker_priority unset: inherited");
	is_str(c->c_ws_path, "/ws", "ws_path");
	is_str(c->c_echo_path, NULL, "echo_path off");
	ok(c->c_allowed_origins == NULL && c->c_nallowed_origins == 0,
	    "allowed_origins any");
	is_int(c->c_max_connections, 10000, "max_connections");
	is_int(c->c_max_message_size, 1024 * 1024, "max_message_size 1m");
	is_int(c->c_max_inflight_per_connection, 64, "max_inflight");
	is_int(c->c_handshake_timeout, 10000, "handshake_timeout 10s");
	is_int(c->c_idle_timeout, 120000, "idle_timeout 120s");
	is_int(c->c_max_output_buffer, 4 * 1024 * 1024, "max_output_buffer");
	is_int(c->c_loop_budget_auto, 1, "loop_budget auto");
	is_int(c->c_loop_budget, loop_budget_auto(c->c_workers),
	    "loop_budget auto: %u (CPU quota %.2f, %d workers)",
	    c->c_loop_budget, c->c_cpu_quota, c->c_workers);
	is_str(c->c_tls_certificate, NULL, "tls_certificate none");
	is_str(c->c_tls_certificate_key, NULL, "tls_certificate_key none");
	is_str(c->c_redis_host, "127.0.0.1", "redis_host");
	is_int(c->c_redis_port, 6379, "redis_port");
	is_str(c->c_redis_socket, NULL, "redis_socket none");
	is_str(c->c_redis_password, NULL, "redis_password none");
	is_str(c->c_redis_username, NULL, "redis_username none");
	is_int(c->c_redis_db, 0, "redis_db");
	is_str(c->c_redis_key_prefix, "cfg:", "redis_key_prefix");
	is_int(c->c_redis_timeout, 2000, "redis_timeout 2s");
	is_int(c->c_missing_config, MISSING_CONFIG_NULL, "missing_config");
	is_str(c->c_upstream_url, "http://127.0.0.1:8000/", "upstream_url");
	is_int(c->c_upstream_timeout, 30000, "upstream_timeout 30s");
	is_int(c->c_upstream_max_connections, 256, "upstream_max_conns");
	is_str(c->c_pg_conninfo, "host=127.0.0.1 dbname=wsgate",
	    "pg_conninfo is the rest of the line");
	is_str(c->c_pg_table, "responses", "pg_table");
	is_int(c->c_db_create_table, 1, "db_create_table on");
	is_int(c->c_db_batch_size, 500, "db_batch_size");
	is_int(c->c_db_flush_interval, 20, "db_flush_interval 20ms");
	is_int(c->c_ring_size, 16 * 1024 * 1024, "ring_size 16m");
	is_str(c->c_spool_dir, "/var/lib/wsgate/spool", "spool_dir");
	ok(c->c_spool_max_bytes == UINT64_C(1) << 30, "spool_max_bytes 1g");
	is_int(c->c_db_spool_after, 1000, "db_spool_after 1s");
	is_int(c->c_shutdown_timeout, 30000, "shutdown_timeout 30s");
	is_str(c->c_user, NULL, "user none");
	is_str(c->c_group, NULL, "group none");
	is_str(c->c_pidfile, NULL, "pidfile none");
	is_str(c->c_log_file, NULL, "log_file stderr");
	is_int(c->c_log_level, LOG_LEVEL_INFO, "log_level info");
	is_str(c->c_runtime_dir, "/run/wsgate", "runtime_dir");

	config_wipe_pg(c);
	is_str(c->c_pg_conninfo, NULL, "config_wipe_pg clears pg_conninfo");
	config_wipe_pg(c);
	config_free(c);
	config_free(NULL);
	ok(1, "config_free(NULL) and double wipe are safe");
}

/* ---- Value parsers ---- */

static void
test_durations_sizes(void)
{
	static const struct {
		const char	*text;
		int		 size;	/* else duration */
		int		 rc;
		uint64_t	 want;
	} t[] = {
		{ "10ms", 0, 0, 10 },
		{ "10", 0, 0, 10000 },
		{ "3s", 0, 0, 3000 },
		{ "2m", 0, 0, 120000 },
		{ "1h", 0, 0, 3600000 },
		{ "0", 0, 0, 0 },
		{ "18446744073709551615ms", 0, 0, UINT64_MAX },
		{ "18446744073709551616ms", 0, -1, 0 },
		{ "18446744073709551615s", 0, -1, 0 },
		{ "", 0, -1, 0 },
		{ "10x", 0, -1, 0 },
		{ "-1s", 0, -1, 0 },
		{ "1.5s", 0, -1, 0 },
		{ "s", 0, -1, 0 },
		{ "10 s", 0, -1, 0 },
		{ "10S", 0, -1, 0 },
		{ "5", 1, 0, 5 },
		{ "1k", 1, 0, 1024 },
		{ "1K", 1, 0, 1024 },
		{ "2m", 1, 0, 2 * 1024 * 1024 },
		{ "3G", 1, 0, UINT64_C(3) << 30 },
		{ "17179869183g", 1, 0, UINT64_C(17179869183) << 30 },
		{ "17179869184g", 1, -1, 0 },
		{ "1kb", 1, -1, 0 },
		{ "1t", 1, -1, 0 },
		{ "k", 1, -1, 0 },
		{ "+1", 1, -1, 0 }
	};
	uint64_t	v;
	size_t		i;
	int		rc;

	for (i = 0; i < nitems(t); i++) {
		v = 0;
		rc = t[i].size ? config_parse_size(t[i].text, &v) :
		    config_parse_duration(t[i].text, &v);
		ok(rc == t[i].rc && v == t[i].want, "%s \"%s\" -> %s %llu",
		    t[i].size ? "size" : "duration", t[i].text,
		    t[i].rc ? "error" : "ok", (unsigned long long)t[i].want);
	}
}

static void
test_parse_addr(void)
{
	static const struct {
		const char	*text;
		int		 family;	/* 0 = error */
		int		 port;
	} t[] = {
		{ "127.0.0.1:80", AF_INET, 80 },
		{ "*:8080", AF_INET, 8080 },
		{ "[::1]:443", AF_INET6, 443 },
		{ "[::]:65535", AF_INET6, 65535 },
		{ "1.2.3.4", 0, 0 },
		{ "1.2.3.4:0", 0, 0 },
		{ "1.2.3.4:65536", 0, 0 },
		{ ":80", 0, 0 },
		{ "::1:80", 0, 0 },
		{ "[::1]80", 0, 0 },
		{ "[::1]", 0, 0 },
		{ "localhost:80", 0, 0 },
		{ "127.1:80", 0, 0 },
		{ "[1.2.3.4]:80", 0, 0 },
		{ "1.2.3.4:8o", 0, 0 }
	};
	struct sockaddr_storage	ss;
	struct config_listen	l;
	socklen_t		len;
	size_t			i;
	int			rc;

	for (i = 0; i < nitems(t); i++) {
		memset(&l, 0, sizeof(l));
		rc = config_parse_addr(t[i].text, &l.l_addr, &l.l_addrlen);
		if (t[i].family == 0)
			ok(rc == -1, "address \"%s\" rejected", t[i].text);
		else
			ok(rc == 0 && l.l_addr.ss_family == t[i].family &&
			    port_of(&l) == t[i].port, "address \"%s\"",
			    t[i].text);
	}
	rc = config_parse_addr("*:1", &ss, &len);
	ok(rc == 0 && len == sizeof(struct sockaddr_in) &&
	    ((struct sockaddr_in *)&ss)->sin_addr.s_addr == htonl(INADDR_ANY),
	    "\"*\" is INADDR_ANY");
}

/* ---- Syntax ---- */

static void
test_syntax(void)
{
	struct config	*c;
	char		 buf[64];

	error_is("lisen 0.0.0.0:80", NAME ":1: unknown directive \"lisen\"");
	error_is("# comment\n\n  \t\nworkers 2\nworkers 3",
	    NAME ":5: duplicate directive \"workers\" (first at line 4)");
	error_is("workers", NAME ":1: missing value for \"workers\"");
	error_is("workers   # none", NAME ":1: missing value for \"workers\"");
	error_is("workers#4", NAME ":1: missing value for \"workers\"");
	error_is("workers \"\"",
	    NAME ":1: invalid number \"\" for \"workers\"");
	error_is("workers=4", NAME ":1: unknown directive \"workers=4\"");
	error_is("Workers 4", NAME ":1: unknown directive \"Workers\"");
	error_is("workers 4\x01", NAME ":1: invalid control character 0x01");
	error_is("workers 4\rx", NAME ":1: invalid control character 0x0d");
	error_is("redis_key_prefix \"abc",
	    NAME ":1: unterminated quoted value for \"redis_key_prefix\"");
	error_is("redis_key_prefix \"abc\\",
	    NAME ":1: unterminated quoted value for \"redis_key_prefix\"");
	error_is("redis_key_prefix \"a\\nb\"",
	    NAME ":1: invalid escape \"\\n\" in quoted value for "
	    "\"redis_key_prefix\" (only \\\" and \\\\)");
	error_is("redis_key_prefix \"a\" b",
	    NAME ":1: unexpected text after quoted value for "
	    "\"redis_key_prefix\"");
	error_is("echo_path off\necho_path /echo",
	    NAME ":2: duplicate directive \"echo_path\" (first at line 1)");

	c = load("redis_key_prefix \"a#b c\"   # comment\n"
	    "  workers 2 # two workers  \r\n"
	    "\tdbwriters\t3\t\n"
	    "redis_host   spaced value  \n");
	if (ok(c != NULL, "quotes, comments, CRLF and tabs: %s", errbuf)) {
		is_str(c->c_redis_key_prefix, "a#b c", "quoted value keeps #");
		is_int(c->c_workers, 2, "comment after value");
		is_int(c->c_workers_auto, 0, "explicit workers is not auto");
		is_int(c->c_dbwriters, 3, "tabs around value");
		is_str(c->c_redis_host, "spaced value", "value trimmed");
	}
	config_free(c);

	c = load("redis_key_prefix \"q\\\"x\\\\y\"\npg_table x#y");
	if (ok(c != NULL, "escapes: %s", errbuf)) {
		is_str(c->c_redis_key_prefix, "q\"x\\y", "\\\" and \\\\");
		is_str(c->c_pg_table, "x", "# ends an unquoted value");
	}
	config_free(c);

	c = load("\xef\xbb\xbfredis_key_prefix \"\"");
	if (ok(c != NULL, "BOM and empty quoted value: %s", errbuf))
		is_str(c->c_redis_key_prefix, "", "empty prefix");
	config_free(c);

	/* Buffers may hold NUL bytes: the parser gets a length. */
	memcpy(buf, "workers 4\0x\n", 12);
	c = config_load_buffer(NAME, buf, 12, errbuf, sizeof(errbuf));
	is_str(c == NULL ? errbuf : "(loaded)", NAME ":1: NUL byte in line",
	    "NUL byte rejected");
	config_free(c);

	c = config_load_buffer(NAME, "", 0, errbuf, 0);
	ok(c == NULL, "errlen 0 is safe");
}

static void
test_long_lines(void)
{
	char	*text;

	text = malloc(4097 + 1);
	memset(text, '#', 4096);
	text[4096] = '\0';
	valid(text, "a line of exactly 4096 bytes");
	text[4096] = '#';
	text[4097] = '\0';
	error_is(text, NAME ":1: line too long (more than 4096 bytes)");
	free(text);
}

/* ---- Numbers and ranges, one table ---- */

static void
test_ranges(void)
{
	static const struct {
		const char	*text;
		const char	*err;	/* NULL: valid */
	} t[] = {
		{ "workers 1", NULL },
		{ "workers 256", NULL },
		{ "workers 0", "\"workers\" must be between 1 and 256" },
		{ "workers 257", "\"workers\" must be between 1 and 256" },
		{ "workers many", "invalid number \"many\" for \"workers\"" },
		{ "dbwriters 64", NULL },
		{ "dbwriters 65", "\"dbwriters\" must be between 1 and 64" },
		{ "worker_priority -20", NULL },
		{ "worker_priority 19", NULL },
		{ "worker_priority +0", NULL },
		{ "worker_priority -21",
		    "\"worker_priority\" must be between -20 and 19" },
		{ "worker_priority 20",
		    "\"worker_priority\" must be between -20 and 19" },
		{ "worker_priority --5",
		    "invalid number \"--5\" for \"worker_priority\"" },
		{ "worker_priority -",
		    "invalid number \"-\" for \"worker_priority\"" },
		{ "worker_priority high",
		    "invalid number \"high\" for \"worker_priority\"" },
		{ "max_connections 1000000", NULL },
		{ "max_connections 0",
		    "\"max_connections\" must be between 1 and 1000000" },
		{ "max_connections 99999999999999999999",
		    "invalid number \"99999999999999999999\" for "
		    "\"max_connections\"" },
		{ "loop_budget 65536", NULL },
		{ "loop_budget 0", NULL },
		{ "loop_budget 65537",
		    "\"loop_budget\" must be between 0 and 65536" },
		{ "loop_budget 200us",
		    "invalid number \"200us\" for \"loop_budget\"" },
		{ "loop_budget auto", NULL },
		{ "loop_budget automatic",
		    "invalid number \"automatic\" for \"loop_budget\"" },
		{ "max_message_size 1g", NULL },
		{ "max_message_size 0",
		    "\"max_message_size\" must be between 1 and 1g" },
		{ "max_message_size 1025m",
		    "\"max_message_size\" must be between 1 and 1g" },
		{ "max_message_size 1mb",
		    "invalid size \"1mb\" for \"max_message_size\"" },
		{ "max_inflight_per_connection 65537",
		    "\"max_inflight_per_connection\" must be between 1 and "
		    "65536" },
		{ "handshake_timeout 100ms", NULL },
		{ "handshake_timeout 99ms",
		    "\"handshake_timeout\" must be between 100ms and 1h" },
		{ "handshake_timeout 0",
		    "\"handshake_timeout\" must be between 100ms and 1h" },
		{ "idle_timeout 10x",
		    "invalid duration \"10x\" for \"idle_timeout\"" },
		{ "idle_timeout 25h",
		    "\"idle_timeout\" must be between 100ms and 24h" },
		{ "max_output_buffer 4k", NULL },
		{ "max_output_buffer 4095",
		    "\"max_output_buffer\" must be at least 4k" },
		{ "redis_port 65535", NULL },
		{ "redis_port 0",
		    "\"redis_port\" must be between 1 and 65535" },
		{ "redis_port 65536",
		    "\"redis_port\" must be between 1 and 65535" },
		{ "redis_port -1", "invalid number \"-1\" for \"redis_port\"" },
		{ "redis_db 15", NULL },
		{ "redis_db 65536",
		    "\"redis_db\" must be between 0 and 65535" },
		{ "redis_timeout 0",
		    "\"redis_timeout\" must be between 1ms and 1h" },
		{ "upstream_timeout 0",
		    "\"upstream_timeout\" must be between 1ms and 24h" },
		{ "upstream_max_connections 0",
		    "\"upstream_max_connections\" must be between 1 and "
		    "65536" },
		{ "db_batch_size 100001",
		    "\"db_batch_size\" must be between 1 and 100000" },
		{ "db_flush_interval 60s", NULL },
		{ "db_flush_interval 1ms", NULL },
		{ "db_flush_interval 61s",
		    "\"db_flush_interval\" must be between 1ms and 60s" },
		{ "db_flush_interval 0",
		    "\"db_flush_interval\" must be between 1ms and 60s" },
		{ "ring_size 64k", NULL },
		{ "ring_size 16g", NULL },
		{ "ring_size 65535",
		    "\"ring_size\" must be between 64k and 16g" },
		{ "ring_size 17g",
		    "\"ring_size\" must be between 64k and 16g" },
		{ "spool_max_bytes 1m", NULL },
		{ "spool_max_bytes 1023k",
		    "\"spool_max_bytes\" must be at least 1m" },
		{ "db_spool_after 0",
		    "\"db_spool_after\" must be between 1ms and 1h" },
		{ "shutdown_timeout 0", NULL },
		{ "shutdown_timeout 1h", NULL },
		{ "shutdown_timeout 61m",
		    "\"shutdown_timeout\" must be between 0ms and 1h" }
	};
	char	want[512];
	size_t	i;

	for (i = 0; i < nitems(t); i++) {
		if (t[i].err == NULL) {
			valid(t[i].text, t[i].text);
			continue;
		}
		snprintf(want, sizeof(want), NAME ":1: %s", t[i].err);
		error_is(t[i].text, want);
	}
}

static void
test_values(void)
{
	static const char *const	bools[] = {
		"off", "on", "no", "yes", "false", "true", "0", "1"
	};
	struct config			*c;
	char				 line[64];
	size_t				 i;
	int				 lvl;

	for (i = 0; i < nitems(bools); i++) {
		snprintf(line, sizeof(line), "db_create_table %s", bools[i]);
		c = load(line);
		ok(c != NULL && c->c_db_create_table == (int)(i % 2),
		    "boolean %s", bools[i]);
		config_free(c);
	}
	error_is("db_create_table maybe", NAME ":1: invalid boolean "
	    "\"maybe\" for \"db_create_table\" (expected on, off, yes, no, "
	    "true, false, 1 or 0)");
	error_is("db_create_table ON", NAME ":1: invalid boolean "
	    "\"ON\" for \"db_create_table\" (expected on, off, yes, no, "
	    "true, false, 1 or 0)");

	for (lvl = LOG_LEVEL_DEBUG; lvl <= LOG_LEVEL_ERROR; lvl++) {
		snprintf(line, sizeof(line), "log_level %s",
		    config_log_level_name((enum log_level)lvl));
		c = load(line);
		ok(c != NULL && (int)c->c_log_level == lvl, "%s", line);
		config_free(c);
	}
	is_str(config_log_level_name(LOG_LEVEL_WARN), "warn", "level name");
	error_is("log_level verbose", NAME ":1: invalid value \"verbose\" "
	    "for \"log_level\" (expected debug, info, warn or error)");

	c = load("missing_config reject");
	ok(c != NULL && c->c_missing_config == MISSING_CONFIG_REJECT,
	    "missing_config reject");
	config_free(c);
	error_is("missing_config drop", NAME ":1: invalid value \"drop\" for "
	    "\"missing_config\" (expected null or reject)");

	c = load("workers auto\nredis_db 3\nmax_message_size 64k\n"
	    "idle_timeout 2m\nloop_budget 12\nworker_priority -7");
	if (ok(c != NULL, "explicit values: %s", errbuf)) {
		is_int(c->c_worker_priority, -7, "worker_priority -7");
		is_int(c->c_worker_priority_set, 1, "worker_priority set");
		is_int(c->c_workers_auto, 1, "workers auto");
		is_int(c->c_loop_budget, 12, "loop_budget 12");
		is_int(c->c_loop_budget_auto, 0, "loop_budget 12 is not auto");
		is_int(c->c_redis_db, 3, "redis_db");
		is_int(c->c_max_message_size, 65536, "max_message_size 64k");
		is_int(c->c_idle_timeout, 120000, "idle_timeout 2m");
	}
	config_free(c);
}

static void
test_strings(void)
{
	struct config	*c;
	char		 line[400];

	c = load("ws_path /api/ws\necho_path /echo");
	if (ok(c != NULL, "ws_path and echo_path: %s", errbuf)) {
		is_str(c->c_ws_path, "/api/ws", "ws_path set");
		is_str(c->c_echo_path, "/echo", "echo_path set");
	}
	config_free(c);
	error_is("ws_path ws",
	    NAME ":1: invalid path \"ws\" for \"ws_path\" (must start with "
	    "\"/\")");
	error_is("ws_path \"/a b\"",
	    NAME ":1: invalid path \"/a b\" for \"ws_path\" (must not "
	    "contain spaces, \"?\" or \"#\")");
	error_is("echo_path /x?y",
	    NAME ":1: invalid path \"/x?y\" for \"echo_path\" (must not "
	    "contain spaces, \"?\" or \"#\")");
	error_is("echo_path /ws",
	    NAME ":1: \"echo_path\" must differ from \"ws_path\"");
	error_is("echo_path /x\nws_path /x",
	    NAME ":1: \"echo_path\" must differ from \"ws_path\"");

	c = load("allowed_origins https://Example.COM http://localhost:3000"
	    "\thttp://[::1]:8080");
	if (ok(c != NULL, "allowed_origins list: %s", errbuf) &&
	    ok(c->c_nallowed_origins == 3, "three origins")) {
		is_str(c->c_allowed_origins[0], "https://example.com",
		    "origin lower-cased");
		is_str(c->c_allowed_origins[1], "http://localhost:3000",
		    "origin with port");
		is_str(c->c_allowed_origins[2], "http://[::1]:8080",
		    "IPv6 origin");
	}
	config_free(c);
	c = load("allowed_origins *");
	ok(c != NULL && c->c_allowed_origins == NULL, "allowed_origins *");
	config_free(c);
	error_is("allowed_origins https://example.com/",
	    NAME ":1: invalid origin \"https://example.com/\" for "
	    "\"allowed_origins\" (expected scheme://host[:port])");
	error_is("allowed_origins https://a.example example.com",
	    NAME ":1: invalid origin \"example.com\" for "
	    "\"allowed_origins\" (expected scheme://host[:port])");
	error_is("allowed_origins http://a:0",
	    NAME ":1: invalid origin \"http://a:0\" for "
	    "\"allowed_origins\" (expected scheme://host[:port])");
	error_is("allowed_origins \" \"",
	    NAME ":1: missing value for \"allowed_origins\"");

	c = load("pg_table public.responses_2");
	ok(c != NULL && strcmp(c->c_pg_table, "public.responses_2") == 0,
	    "schema-qualified pg_table");
	config_free(c);
	snprintf(line, sizeof(line), "pg_table _%062d.x%062d", 0, 0);
	valid(line, "pg_table parts of 63 bytes");
	error_is("pg_table 1abc", NAME ":1: invalid table name \"1abc\" for "
	    "\"pg_table\" (expected [schema.]name of letters, digits and "
	    "\"_\", at most 63 bytes each, not starting with a digit)");
	error_is("pg_table a.b.c", NAME ":1: invalid table name \"a.b.c\" for "
	    "\"pg_table\" (expected [schema.]name of letters, digits and "
	    "\"_\", at most 63 bytes each, not starting with a digit)");
	error_is("pg_table a-b", NAME ":1: invalid table name \"a-b\" for "
	    "\"pg_table\" (expected [schema.]name of letters, digits and "
	    "\"_\", at most 63 bytes each, not starting with a digit)");
	snprintf(line, sizeof(line), "pg_table t%063d", 0);
	c = load(line);
	ok(c == NULL && strstr(errbuf, "invalid table name") != NULL,
	    "pg_table part of 64 bytes rejected");
	config_free(c);

	snprintf(line, sizeof(line), "redis_key_prefix %0256d", 0);
	valid(line, "redis_key_prefix of 256 bytes");
	snprintf(line, sizeof(line), "redis_key_prefix %0257d", 0);
	error_is(line, NAME ":1: \"redis_key_prefix\" is too long (at most "
	    "256 bytes)");
	error_is("redis_host \"\"", NAME ":1: \"redis_host\" must not be "
	    "empty");

	c = load("redis_password \"p#ss word\"\nredis_username app");
	if (ok(c != NULL, "redis auth: %s", errbuf)) {
		is_str(c->c_redis_password, "p#ss word", "redis_password");
		is_str(c->c_redis_username, "app", "redis_username");
	}
	config_free(c);
	error_is("redis_username app",
	    NAME ":1: \"redis_username\" requires \"redis_password\"");
}

static void
test_required(void)
{
	struct config	*c;

	error_tail("", "", NAME ": \"upstream_url\" is required");
	error_tail("", URL_LINE, NAME ": \"pg_conninfo\" is required");
	error_tail("", PG_LINE, NAME ": \"upstream_url\" is required");

	c = load_tail("upstream_url https://api.example.com:8443/v1/call?x=1",
	    PG_LINE);
	ok(c != NULL, "https upstream_url with port and query: %s", errbuf);
	config_free(c);
	error_tail("upstream_url ftp://example.com/", PG_LINE,
	    NAME ":1: invalid URL \"ftp://example.com/\" for \"upstream_url\" "
	    "(must be http:// or https://)");
	error_tail("upstream_url http://", PG_LINE,
	    NAME ":1: invalid URL \"http://\" for \"upstream_url\": "
	    "No host part in the URL");
	c = load_tail("upstream_url example.com/x", PG_LINE);
	ok(c == NULL && strncmp(errbuf, NAME ":1: invalid URL "
	    "\"example.com/x\" for \"upstream_url\": ", 52) == 0,
	    "URL without scheme rejected: %s", errbuf);
	config_free(c);

	c = load_tail("pg_conninfo postgresql://wsgate@db.example:5433/wsgate"
	    "?sslmode=require", URL_LINE);
	ok(c != NULL, "pg_conninfo URI: %s", errbuf);
	config_free(c);
	c = load_tail("pg_conninfo \"host=/run/postgresql password=a#b\"",
	    URL_LINE);
	ok(c != NULL && strcmp(c->c_pg_conninfo,
	    "host=/run/postgresql password=a#b") == 0,
	    "quoted pg_conninfo keeps #");
	config_free(c);
	error_tail("pg_conninfo host", URL_LINE, NAME ":1: invalid "
	    "\"pg_conninfo\": missing \"=\" after \"host\" in connection info "
	    "string");
	error_tail("pg_conninfo hots=x", URL_LINE, NAME ":1: invalid "
	    "\"pg_conninfo\": invalid connection option \"hots\"");
	error_tail("pg_conninfo", URL_LINE,
	    NAME ":1: missing value for \"pg_conninfo\"");
}

/* ---- Listeners ---- */

static void
test_listen(const char *cert, const char *key)
{
	struct config	*c;
	char		*text;
	size_t		 i;

	c = load("listen 127.0.0.1:8080\nlisten [::1]:8081\nlisten *:8082");
	if (ok(c != NULL, "three listeners: %s", errbuf) &&
	    is_int(c->c_nlisten, 3, "c_nlisten 3")) {
		is_str(c->c_listen[1].l_text, "[::1]:8081",
		    "l_text as written");
		is_int(c->c_listen[1].l_addr.ss_family, AF_INET6, "IPv6");
		is_int(c->c_listen[1].l_addrlen,
		    sizeof(struct sockaddr_in6), "IPv6 addrlen");
		is_int(port_of(&c->c_listen[1]), 8081, "IPv6 port");
		is_str(c->c_listen[2].l_text, "*:8082", "*:PORT kept");
	}
	config_free(c);

	text = fmt("listen [::]:8443 ssl\ntls_certificate %s\n"
	    "tls_certificate_key \"%s\"", cert, key);
	c = load(text);
	if (ok(c != NULL, "ssl listener with certificates: %s", errbuf)) {
		is_int(c->c_listen[0].l_ssl, 1, "l_ssl");
		is_str(c->c_tls_certificate, cert, "tls_certificate");
		is_str(c->c_tls_certificate_key, key, "tls_certificate_key");
	}
	config_free(c);
	free(text);

	valid("listen 0.0.0.0:8080\nlisten [::]:8080",
	    "IPv4 and IPv6 wildcards on one port");
	error_is("listen 0.0.0.0:8443 ssl", NAME ": ssl listener "
	    "\"0.0.0.0:8443\" requires \"tls_certificate\" and "
	    "\"tls_certificate_key\"");
	error_is("listen 1.2.3.4:80 tls", NAME ":1: unexpected \"tls\" after "
	    "\"listen\" address (only \"ssl\" may follow it)");
	error_is("listen 1.2.3.4:80 ssl ssl", NAME ":1: unexpected \"ssl\" "
	    "after \"listen\" address (only \"ssl\" may follow it)");
	error_is("listen 127.0.0.1:8080\nlisten 127.0.0.1:8080",
	    NAME ":2: duplicate \"listen\" address \"127.0.0.1:8080\" "
	    "(first at line 1)");
	error_is("listen *:80\nlisten 0.0.0.0:80",
	    NAME ":2: duplicate \"listen\" address \"0.0.0.0:80\" "
	    "(first at line 1)");
	error_is("listen 0.0.0.0:8080\n# x\nlisten 127.0.0.1:8080",
	    NAME ":3: \"listen\" address \"127.0.0.1:8080\" conflicts with "
	    "\"0.0.0.0:8080\" (line 1)");
	error_is("listen \"\"", NAME ":1: missing value for \"listen\"");
	error_is("admin_listen \" \"",
	    NAME ":1: missing value for \"admin_listen\"");
	error_is("listen 1.2.3.4", NAME ":1: invalid address \"1.2.3.4\" for "
	    "\"listen\" (expected ADDR:PORT, [ADDR]:PORT or *:PORT)");
	error_is("listen 1.2.3.4:0", NAME ":1: invalid address \"1.2.3.4:0\" "
	    "for \"listen\" (port must be between 1 and 65535)");
	error_is("listen localhost:80", NAME ":1: invalid address "
	    "\"localhost:80\" for \"listen\" (not a numeric IPv4 address)");
	error_is("listen [fe80::zz]:80", NAME ":1: invalid address "
	    "\"[fe80::zz]:80\" for \"listen\" (not a numeric IPv6 address)");
	error_is("listen ::1:80", NAME ":1: invalid address \"::1:80\" for "
	    "\"listen\" (IPv6 addresses go in brackets: [ADDR]:PORT)");

	text = NULL;
	for (i = 0; i <= CONFIG_MAX_LISTEN; i++) {
		char	*next;

		next = fmt("%slisten 127.0.0.1:%zu\n", text ? text : "",
		    10000 + i);
		free(text);
		text = next;
	}
	error_is(text, NAME ":33: too many \"listen\" directives (at most 32)");
	free(text);

	c = load("admin_listen [::1]:9999");
	ok(c != NULL && c->c_admin_listen.l_addr.ss_family == AF_INET6 &&
	    port_of(&c->c_admin_listen) == 9999, "IPv6 admin_listen");
	config_free(c);
	error_is("admin_listen 127.0.0.1:9090 ssl", NAME ":1: unexpected "
	    "\"ssl\" after \"admin_listen\" address (nothing may follow it)");
	error_is("admin_listen nowhere", NAME ":1: invalid address "
	    "\"nowhere\" for \"admin_listen\" (expected ADDR:PORT, "
	    "[ADDR]:PORT or *:PORT)");
	error_is("listen 127.0.0.1:9090", NAME ":1: \"admin_listen\" address "
	    "\"127.0.0.1:9090\" conflicts with \"listen\" address "
	    "\"127.0.0.1:9090\"");
	error_is("listen 0.0.0.0:7000\nadmin_listen 127.0.0.1:7000",
	    NAME ":2: \"admin_listen\" address \"127.0.0.1:7000\" conflicts "
	    "with \"listen\" address \"0.0.0.0:7000\" (line 1)");
	error_is("admin_listen *:8080", NAME ":1: \"admin_listen\" address "
	    "\"*:8080\" conflicts with \"listen\" address \"0.0.0.0:8080\"");
}

/* ---- Files, users, paths ---- */

/* error_is() where text and message each name one path ("%s"). */
static void
error_path(const char *textfmt, const char *wantfmt, const char *path)
{
	char	*text = fmt(textfmt, path), *want = fmt(wantfmt, path);

	error_is(text, want);
	free(text);
	free(want);
}

/* config_load(path) fails with wantfmt, in which "%s" is the path. */
static void
load_error(const char *path, const char *wantfmt, const char *what)
{
	struct config	*c;
	char		*want = fmt(wantfmt, path);

	c = config_load(path, errbuf, sizeof(errbuf));
	is_str(c ? "(loaded)" : errbuf, want, "%s", what);
	config_free(c);
	free(want);
}

static void
test_files(const char *cert, const char *key)
{
	struct sockaddr_un	 sun;
	struct config		*c;
	char			*sock, *text, line[128];
	int			 fd;

	error_path("tls_certificate %s", NAME ":1: \"tls_certificate\" "
	    "requires \"tls_certificate_key\"", cert);
	error_path("tls_certificate_key %s", NAME ":1: "
	    "\"tls_certificate_key\" requires \"tls_certificate\"", key);
	error_is("tls_certificate /nonexistent/cert.pem",
	    NAME ":1: \"tls_certificate\" file \"/nonexistent/cert.pem\": "
	    "No such file or directory");
	error_path("tls_certificate_key %s", NAME ":1: "
	    "\"tls_certificate_key\" file \"%s\": Is a directory", tmpdir);

	/* redis_socket: a real Unix socket passes, a plain file does not. */
	sock = tmp_path("redis.sock");
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd == -1 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		abort();
	text = fmt("redis_socket %s", sock);
	c = load(text);
	ok(c != NULL && strcmp(c->c_redis_socket, sock) == 0,
	    "redis_socket on a socket: %s", errbuf);
	config_free(c);
	free(text);
	error_path("redis_host 10.0.0.1\nredis_socket %s", NAME ":2: "
	    "\"redis_socket\" cannot be combined with \"redis_host\" "
	    "(line 1)", sock);
	close(fd);
	unlink(sock);
	free(sock);
	error_path("redis_socket %s", NAME ":1: \"redis_socket\" file "
	    "\"%s\": not a socket", cert);

	c = load("user root\ngroup root");
	ok(c != NULL && strcmp(c->c_user, "root") == 0 &&
	    strcmp(c->c_group, "root") == 0, "user and group root");
	config_free(c);
	c = load("user root");
	ok(c != NULL && c->c_group == NULL, "user without group");
	config_free(c);
	error_is("user wsgate-no-such-user", NAME ":1: unknown user "
	    "\"wsgate-no-such-user\" for \"user\"");
	error_is("group wsgate-no-such-group", NAME ":1: unknown group "
	    "\"wsgate-no-such-group\" for \"group\"");

	text = fmt("pidfile %s/wsgate.pid\nlog_file %s/wsgate.log\n"
	    "spool_dir /var/spool/x\nruntime_dir %s", tmpdir, tmpdir, tmpdir);
	c = load(text);
	ok(c != NULL && strncmp(c->c_pidfile, tmpdir, strlen(tmpdir)) == 0 &&
	    c->c_log_file != NULL && strcmp(c->c_runtime_dir, tmpdir) == 0,
	    "absolute paths: %s", errbuf);
	config_free(c);
	free(text);
	c = load("log_file stderr\npidfile /wsgate.pid");
	ok(c != NULL && c->c_log_file == NULL &&
	    strcmp(c->c_pidfile, "/wsgate.pid") == 0,
	    "log_file stderr, pidfile in /");
	config_free(c);
	error_is("spool_dir var/spool", NAME ":1: \"spool_dir\" must be an "
	    "absolute path, not \"var/spool\"");
	error_is("runtime_dir run", NAME ":1: \"runtime_dir\" must be an "
	    "absolute path, not \"run\"");
	error_is("pidfile wsgate.pid", NAME ":1: \"pidfile\" must be an "
	    "absolute path, not \"wsgate.pid\"");
	error_is("log_file ./wsgate.log", NAME ":1: \"log_file\" must be an "
	    "absolute path, not \"./wsgate.log\"");
	error_is("pidfile /nonexistent/wsgate.pid", NAME ":1: \"pidfile\" "
	    "directory \"/nonexistent\": No such file or directory");
	error_path("log_file %s/x.log", NAME ":1: \"log_file\" directory "
	    "\"%s\": Not a directory", cert);

	/* runtime_dir + "/dbwriter.sock" must fit in sun_path (108). */
	snprintf(line, sizeof(line), "runtime_dir /%092d", 0);
	valid(line, "runtime_dir of 93 bytes");
	snprintf(line, sizeof(line), "runtime_dir /%093d", 0);
	error_is(line, NAME ":1: \"runtime_dir\" is too long (at most 93 "
	    "bytes)");
}

static void
test_load_file(void)
{
	struct config	*c;
	char		*path, *big;
	size_t		 len = 1024 * 1024;

	path = tmp_path("wsgate.conf");
	write_file(path, "# test\n" REQUIRED "workers 7\n", 7 +
	    strlen(REQUIRED) + 10);
	c = config_load(path, errbuf, sizeof(errbuf));
	if (ok(c != NULL, "config_load: %s", errbuf)) {
		is_str(c->c_path, path, "c_path is the path");
		is_int(c->c_workers, 7, "value from the file");
	}
	config_free(c);

	write_file(path, "\n\nworkers 0\n", 11);
	load_error(path, "%s:3: \"workers\" must be between 1 and 256",
	    "file error has path:line");

	if (geteuid() == 0)
		skip("unreadable file: running as root, which reads "
		    "everything");
	else {
		chmod(path, 0);
		load_error(path, "%s: cannot open: Permission denied",
		    "unreadable file");
	}
	unlink(path);

	load_error(path, "%s: cannot open: No such file or directory",
	    "missing file");
	load_error(tmpdir, "%s: is a directory", "directory");
	load_error("/dev/null", "%s: not a regular file", "character device");

	/* 1 MiB is read (and fails later); one byte more is refused. */
	big = malloc(len + 1);
	memset(big, '\n', len + 1);
	write_file(path, big, len);
	load_error(path, "%s: \"upstream_url\" is required",
	    "a file of 1 MiB is read");
	write_file(path, big, len + 1);
	load_error(path, "%s: file too large (more than 1048576 bytes)",
	    "a file over 1 MiB");
	free(big);
	unlink(path);
	free(path);
}

/*
 * The installed sample must load, and each "#key value" line in it, once
 * uncommented, must be accepted too: the sample shows the real defaults.
 */
static void
test_sample(void)
{
	static const char *const	 example_only[] = {
		"tls_certificate", "tls_certificate_key", "redis_socket",
		"redis_username", "user", "group", "pidfile",
		"upstream_ca_file"
	};
	const char			*srcdir;
	struct config			*c;
	char				*path, line[4200], *s;
	FILE				*fp;
	size_t				 i, n = 0, bad = 0, klen;

	if ((srcdir = getenv("WSGATE_SRCDIR")) == NULL)
		srcdir = ".";
	path = fmt("%s/doc/wsgate.conf", srcdir);
	c = config_load(path, errbuf, sizeof(errbuf));
	if (ok(c != NULL, "sample doc/wsgate.conf loads: %s", errbuf)) {
		is_str(c->c_upstream_url, "http://127.0.0.1:8000/",
		    "sample upstream_url");
		is_str(c->c_pg_conninfo, "host=127.0.0.1 dbname=wsgate",
		    "sample pg_conninfo");
		is_str(c->c_ws_path, "/ws", "sample leaves defaults");
	}
	config_free(c);

	if ((fp = fopen(path, "r")) == NULL) {
		ok(0, "cannot open %s", path);
		free(path);
		return;
	}
	while (fgets(line, sizeof(line), fp) != NULL) {
		if (line[0] != '#' || line[1] < 'a' || line[1] > 'z')
			continue;
		s = line + 1;
		klen = strcspn(s, " \t\n");
		for (i = 0; i < nitems(example_only); i++)
			if (strlen(example_only[i]) == klen &&
			    strncmp(s, example_only[i], klen) == 0)
				break;
		if (i < nitems(example_only))
			continue;
		n++;
		c = load(s);
		if (c == NULL) {
			bad++;
			diag("sample line \"%.*s\": %s", (int)strcspn(s, "\n"),
			    s, errbuf);
		}
		config_free(c);
	}
	fclose(fp);
	ok(n >= 30 && bad == 0, "%zu commented defaults in the sample "
	    "parse (%zu failed)", n, bad);
	free(path);
}

int
main(void)
{
	char	*cert, *key;

	tap_watchdog(60);
	if (mkdtemp(tmpdir) == NULL) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	cert = tmp_path("cert.pem");
	key = tmp_path("key.pem");
	write_file(cert, "cert\n", 5);
	write_file(key, "key\n", 4);

	test_defaults();
	test_durations_sizes();
	test_parse_addr();
	test_syntax();
	test_long_lines();
	test_ranges();
	test_values();
	test_strings();
	test_required();
	test_listen(cert, key);
	test_files(cert, key);
	test_load_file();
	test_sample();

	unlink(cert);
	unlink(key);
	free(cert);
	free(key);
	if (rmdir(tmpdir) == -1)
		diag("rmdir %s: %s", tmpdir, strerror(errno));
	return done_testing();
}
