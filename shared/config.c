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
 * Configuration parser: reads wsgate.conf(5) into a struct config, checks
 * every value and reports the first error as "file:line: reason".  One
 * table describes every directive; the code below is one parser per value
 * type, not per key.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <netdb.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <libpq-fe.h>

#include "cgroup.h"
#include "config.h"
#include "ipc_proto.h"
#include "util.h"

#define CONFIG_LINE_MAX		4096		/* bytes, without newline */
#define CONFIG_FILE_MAX		(1024 * 1024)	/* bytes */
#define CONFIG_PATH_MAX		(PATH_MAX - 1)
#define CONFIG_IDENT_MAX	63		/* PostgreSQL NAMEDATALEN - 1 */

/*
 * The dbwriter socket is runtime_dir + "/" IPC_SOCKET_NAME, and the whole
 * must fit in sun_path with its NUL (93 bytes on Linux).
 */
#define CONFIG_RUNDIR_MAX	(sizeof(((struct sockaddr_un *)0)->sun_path) - \
				    sizeof("/" IPC_SOCKET_NAME))

#define KIB			UINT64_C(1024)
#define MIB			(KIB * 1024)
#define GIB			(MIB * 1024)
#define SEC			UINT64_C(1000)
#define HOUR			(SEC * 3600)
#define UNBOUNDED		UINT64_MAX

/* Directive flags. */
#define F_REPEAT		0x01	/* may be given more than once */
#define F_REQUIRED		0x02	/* no default: must be given */
#define F_PARENT		0x04	/* path's directory must exist */
#define F_SOCKET		0x08	/* file must be a Unix socket */
#define F_SECRET		0x10	/* never echoed, wiped on free */

struct config_parser;
struct config_directive;

typedef int	 config_parse_fn(struct config_parser *,
		    const struct config_directive *, char *, void *);

/* Value types: how a value is parsed and whether the field owns a string. */
enum config_vtype {
	V_LISTEN,
	V_ADMIN_LISTEN,
	V_WORKERS,
	V_BUDGET,
	V_NICE,
	V_NUMBER,
	V_DURATION,
	V_SIZE,
	V_BOOL,
	V_ENUM,
	V_STRING,
	V_URLPATH,
	V_ORIGINS,
	V_URL,
	V_CONNINFO,
	V_IDENT,
	V_FILE,
	V_ABSPATH,
	V_USER,
	V_GROUP
};

/* Value kinds sharing the number path: syntax, and how to print a bound. */
struct config_scalar {
	const char	*s_what;
	int		(*s_parse)(const char *, uint64_t *);
	void		(*s_format)(uint64_t, char *, size_t);
};

struct config_type {
	config_parse_fn			*t_parse;
	int				 t_string;	/* owns a char * */
	const struct config_scalar	*t_scalar;	/* for cfg_scalar */
};

/*
 * One directive.  The meaning of d_min and d_max depends on the type:
 * a numeric range in the stored unit (milliseconds, bytes), or a string's
 * length bounds in bytes.  d_unset is a word that leaves the field at its
 * "none" value (NULL), e.g. "echo_path off".
 */
struct config_directive {
	const char		*d_name;
	enum config_vtype	 d_type;
	size_t			 d_offset;
	size_t			 d_size;
	uint64_t		 d_min;
	uint64_t		 d_max;
	const char		*d_default;
	const char		*d_unset;
	int			 d_flags;
	const char *const	*d_words;	/* V_ENUM: value = index */
};

struct config_parser {
	struct config	*p_conf;
	const char	*p_name;
	size_t		 p_line;		/* 0 = no line applies */
	size_t		*p_seen;		/* line each key was set */
	size_t		 p_listen_line[CONFIG_MAX_LISTEN];
	char		*p_err;
	size_t		 p_errlen;
};

/* A directive "a" that needs, or excludes, a directive "b". */
struct config_relation {
	const char	*r_a;
	const char	*r_b;
	int		 r_requires;	/* 1: a requires b; 0: a excludes b */
};

/* One parser per value type; see config_types[]. */
static config_parse_fn	cfg_listen, cfg_admin_listen, cfg_workers,
			cfg_loop_budget, cfg_nice, cfg_scalar, cfg_bool, cfg_enum,
			cfg_string, cfg_urlpath, cfg_origins, cfg_url,
			cfg_conninfo, cfg_ident,
			cfg_file, cfg_abspath, cfg_account;

static void	cfg_loop_budget_auto(struct config *);
static int	cfg_error(struct config_parser *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static int	cfg_line(struct config_parser *, char *);
static int	cfg_isblank(int);
static const struct config_directive *cfg_lookup(const char *);
static int	cfg_check(struct config_parser *);
static size_t	cfg_seen(struct config_parser *, const char *);
static int	cfg_strtou64(const char *, const char **, uint64_t *);
static int	cfg_scaled(const char *, uint64_t *, const char *,
		    const uint64_t *, uint64_t);
static int	cfg_parse_number(const char *, uint64_t *);
static void	cfg_format_number(uint64_t, char *, size_t);
static void	cfg_format_duration(uint64_t, char *, size_t);
static void	cfg_format_size(uint64_t, char *, size_t);
static int	cfg_range(struct config_parser *,
		    const struct config_directive *, uint64_t,
		    void (*)(uint64_t, char *, size_t));
static void	cfg_store(void *, size_t, uint64_t);
static int	cfg_addr(const char *, struct sockaddr_storage *,
		    socklen_t *, const char **);
static int	cfg_listen_parse(struct config_parser *, const char *,
		    char *, struct config_listen *, int);
static int	cfg_addr_overlap(const struct config_listen *,
		    const struct config_listen *);
static int	cfg_origin_valid(const char *);
static int	cfg_path_exists(struct config_parser *,
		    const struct config_directive *, const char *,
		    const char *, int);
static void	cfg_free_string(char **, int);

static const char *const config_log_levels[] = {
	"debug", "info", "warn", "error", NULL
};
static const char *const config_missing_words[] = {
	"null", "reject", NULL
};

static const char *const config_upstream_clients[] = {
	"auto", "curl", NULL
};

static const struct config_scalar config_number = {
	"number", cfg_parse_number, cfg_format_number
};
static const struct config_scalar config_duration = {
	"duration", config_parse_duration, cfg_format_duration
};
static const struct config_scalar config_size = {
	"size", config_parse_size, cfg_format_size
};

static const struct config_type config_types[] = {
	[V_LISTEN] =		{ cfg_listen,		0, NULL },
	[V_ADMIN_LISTEN] =	{ cfg_admin_listen,	0, NULL },
	[V_WORKERS] =		{ cfg_workers,		0, &config_number },
	[V_BUDGET] =		{ cfg_loop_budget,	0, &config_number },
	[V_NICE] =		{ cfg_nice,		0, NULL },
	[V_NUMBER] =		{ cfg_scalar,		0, &config_number },
	[V_DURATION] =		{ cfg_scalar,		0, &config_duration },
	[V_SIZE] =		{ cfg_scalar,		0, &config_size },
	[V_BOOL] =		{ cfg_bool,		0, NULL },
	[V_ENUM] =		{ cfg_enum,		0, NULL },
	[V_STRING] =		{ cfg_string,		1, NULL },
	[V_URLPATH] =		{ cfg_urlpath,		1, NULL },
	[V_ORIGINS] =		{ cfg_origins,		0, NULL },
	[V_URL] =		{ cfg_url,		1, NULL },
	[V_CONNINFO] =		{ cfg_conninfo,		1, NULL },
	[V_IDENT] =		{ cfg_ident,		1, NULL },
	[V_FILE] =		{ cfg_file,		1, NULL },
	[V_ABSPATH] =		{ cfg_abspath,		1, NULL },
	[V_USER] =		{ cfg_account,		1, NULL },
	[V_GROUP] =		{ cfg_account,		1, NULL }
};

#define FIELD(f)	offsetof(struct config, f), \
			sizeof(((struct config *)0)->f)

/*
 * Every directive, in PROTOCOL.md section 7 order.  Defaults are written
 * as a user would write them and go through the same parser, so the
 * table is also their documentation.
 *   name, type, field, min, max, default, unset word, flags, words
 */
static const struct config_directive config_directives[] = {
	{ "listen", V_LISTEN, FIELD(c_listen), 0, 0,
	    "0.0.0.0:8080", NULL, F_REPEAT, NULL },
	{ "admin_listen", V_ADMIN_LISTEN, FIELD(c_admin_listen), 0, 0,
	    "127.0.0.1:9090", NULL, 0, NULL },
	{ "workers", V_WORKERS, FIELD(c_workers), 1, CONFIG_MAX_WORKERS,
	    "auto", NULL, 0, NULL },
	{ "dbwriters", V_NUMBER, FIELD(c_dbwriters), 1, CONFIG_MAX_DBWRITERS,
	    "1", NULL, 0, NULL },
	{ "worker_priority", V_NICE, FIELD(c_worker_priority), 0, 0,
	    NULL, NULL, 0, NULL },
	{ "ws_path", V_URLPATH, FIELD(c_ws_path), 1, CONFIG_PATH_MAX,
	    "/ws", NULL, 0, NULL },
	{ "echo_path", V_URLPATH, FIELD(c_echo_path), 1, CONFIG_PATH_MAX,
	    NULL, "off", 0, NULL },
	{ "allowed_origins", V_ORIGINS, FIELD(c_allowed_origins), 0, 0,
	    NULL, "*", 0, NULL },
	{ "max_connections", V_NUMBER, FIELD(c_max_connections), 1, 1000000,
	    "10000", NULL, 0, NULL },
	{ "max_message_size", V_SIZE, FIELD(c_max_message_size), 1, GIB,
	    "1m", NULL, 0, NULL },
	{ "max_inflight_per_connection", V_NUMBER,
	    FIELD(c_max_inflight_per_connection), 1, 65536,
	    "64", NULL, 0, NULL },
	{ "handshake_timeout", V_DURATION, FIELD(c_handshake_timeout),
	    100, HOUR, "10s", NULL, 0, NULL },
	{ "idle_timeout", V_DURATION, FIELD(c_idle_timeout), 100, 24 * HOUR,
	    "120s", NULL, 0, NULL },
	{ "max_output_buffer", V_SIZE, FIELD(c_max_output_buffer),
	    4 * KIB, UNBOUNDED, "4m", NULL, 0, NULL },
	{ "loop_budget", V_BUDGET, FIELD(c_loop_budget), 0, 65536,
	    "auto", NULL, 0, NULL },
	{ "tls_certificate", V_FILE, FIELD(c_tls_certificate),
	    1, CONFIG_PATH_MAX, NULL, NULL, 0, NULL },
	{ "tls_certificate_key", V_FILE, FIELD(c_tls_certificate_key),
	    1, CONFIG_PATH_MAX, NULL, NULL, 0, NULL },
	{ "redis_host", V_STRING, FIELD(c_redis_host), 1, 255,
	    "127.0.0.1", NULL, 0, NULL },
	{ "redis_port", V_NUMBER, FIELD(c_redis_port), 1, 65535,
	    "6379", NULL, 0, NULL },
	{ "redis_socket", V_FILE, FIELD(c_redis_socket), 1, CONFIG_PATH_MAX,
	    NULL, NULL, F_SOCKET, NULL },
	{ "redis_password", V_STRING, FIELD(c_redis_password), 1, 512,
	    NULL, NULL, F_SECRET, NULL },
	{ "redis_username", V_STRING, FIELD(c_redis_username), 1, 256,
	    NULL, NULL, 0, NULL },
	{ "redis_db", V_NUMBER, FIELD(c_redis_db), 0, 65535,
	    "0", NULL, 0, NULL },
	{ "redis_key_prefix", V_STRING, FIELD(c_redis_key_prefix), 0, 256,
	    "cfg:", NULL, 0, NULL },
	{ "redis_timeout", V_DURATION, FIELD(c_redis_timeout), 1, HOUR,
	    "2s", NULL, 0, NULL },
	{ "missing_config", V_ENUM, FIELD(c_missing_config), 0, 0,
	    "null", NULL, 0, config_missing_words },
	{ "config_cache_ttl", V_DURATION, FIELD(c_config_cache_ttl), 0, HOUR,
	    "0", NULL, 0, NULL },
	{ "config_cache_entries", V_NUMBER, FIELD(c_config_cache_entries),
	    1, 10000000, "10000", NULL, 0, NULL },
	{ "upstream_url", V_URL, FIELD(c_upstream_url), 1, CONFIG_LINE_MAX,
	    NULL, NULL, F_REQUIRED, NULL },
	{ "upstream_timeout", V_DURATION, FIELD(c_upstream_timeout),
	    1, 24 * HOUR, "30s", NULL, 0, NULL },
	{ "upstream_max_connections", V_NUMBER,
	    FIELD(c_upstream_max_connections), 1, 65536,
	    "256", NULL, 0, NULL },
	{ "upstream_client", V_ENUM, FIELD(c_upstream_client), 0, 0,
	    "auto", NULL, 0, config_upstream_clients },
	{ "upstream_ca_file", V_FILE, FIELD(c_upstream_ca_file),
	    1, CONFIG_PATH_MAX, NULL, NULL, 0, NULL },
	{ "upstream_tls_verify", V_BOOL, FIELD(c_upstream_tls_verify), 0, 1,
	    "on", NULL, 0, NULL },
	{ "pg_conninfo", V_CONNINFO, FIELD(c_pg_conninfo), 0, CONFIG_LINE_MAX,
	    NULL, NULL, F_REQUIRED | F_SECRET, NULL },
	{ "pg_table", V_IDENT, FIELD(c_pg_table), 1, 2 * CONFIG_IDENT_MAX + 1,
	    "responses", NULL, 0, NULL },
	{ "db_create_table", V_BOOL, FIELD(c_db_create_table), 0, 1,
	    "on", NULL, 0, NULL },
	{ "db_batch_size", V_NUMBER, FIELD(c_db_batch_size), 1, 100000,
	    "500", NULL, 0, NULL },
	{ "db_flush_interval", V_DURATION, FIELD(c_db_flush_interval),
	    1, 60 * SEC, "20ms", NULL, 0, NULL },
	{ "db_connections", V_NUMBER, FIELD(c_db_connections), 1, 64,
	    "4", NULL, 0, NULL },
	{ "ring_size", V_SIZE, FIELD(c_ring_size), 64 * KIB, 16 * GIB,
	    "16m", NULL, 0, NULL },
	{ "spool_dir", V_ABSPATH, FIELD(c_spool_dir), 1, CONFIG_PATH_MAX,
	    "/var/lib/wsgate/spool", NULL, 0, NULL },
	{ "spool_max_bytes", V_SIZE, FIELD(c_spool_max_bytes),
	    MIB, UNBOUNDED, "1g", NULL, 0, NULL },
	{ "db_spool_after", V_DURATION, FIELD(c_db_spool_after), 1, HOUR,
	    "1s", NULL, 0, NULL },
	{ "shutdown_timeout", V_DURATION, FIELD(c_shutdown_timeout), 0, HOUR,
	    "30s", NULL, 0, NULL },
	{ "user", V_USER, FIELD(c_user), 1, 256,
	    NULL, NULL, 0, NULL },
	{ "group", V_GROUP, FIELD(c_group), 1, 256,
	    NULL, NULL, 0, NULL },
	{ "pidfile", V_ABSPATH, FIELD(c_pidfile), 1, CONFIG_PATH_MAX,
	    NULL, NULL, F_PARENT, NULL },
	{ "log_file", V_ABSPATH, FIELD(c_log_file), 1, CONFIG_PATH_MAX,
	    NULL, "stderr", F_PARENT, NULL },
	{ "log_level", V_ENUM, FIELD(c_log_level), 0, 0,
	    "info", NULL, 0, config_log_levels },
	{ "runtime_dir", V_ABSPATH, FIELD(c_runtime_dir), 1, CONFIG_RUNDIR_MAX,
	    "/run/wsgate", NULL, 0, NULL }
};

#define CONFIG_NDIRECTIVES	nitems(config_directives)

/* Cross-directive rules, checked once the whole file is read. */
static const struct config_relation config_relations[] = {
	{ "tls_certificate", "tls_certificate_key", 1 },
	{ "tls_certificate_key", "tls_certificate", 1 },
	{ "redis_username", "redis_password", 1 },
	{ "redis_socket", "redis_host", 0 },
	{ "redis_socket", "redis_port", 0 }
};

/* ---- Loading ---- */

struct config *
config_load(const char *path, char *err, size_t errlen)
{
	struct config	*conf = NULL;
	struct stat	 st;
	char		*buf = NULL;
	size_t		 len = 0, cap;
	ssize_t		 n;
	int		 fd;

	/*
	 * O_NONBLOCK so that a FIFO given by mistake cannot hang the
	 * master; anything but a regular file is refused below.
	 */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY |
	    O_NONBLOCK)) == -1) {
		snprintf(err, errlen, "%s: cannot open: %s", path,
		    strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) == -1) {
		snprintf(err, errlen, "%s: cannot stat: %s", path,
		    strerror(errno));
		goto done;
	}
	if (S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s: is a directory", path);
		goto done;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		goto done;
	}

	/* One byte more than the cap tells "too large" from "exactly 1 MiB". */
	cap = CONFIG_FILE_MAX + 1;
	buf = xmalloc(cap);
	for (;;) {
		n = read(fd, buf + len, cap - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			snprintf(err, errlen, "%s: cannot read: %s", path,
			    strerror(errno));
			goto done;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == cap) {
			snprintf(err, errlen, "%s: file too large "
			    "(more than %d bytes)", path, CONFIG_FILE_MAX);
			goto done;
		}
	}
	conf = config_load_buffer(path, buf, len, err, errlen);

done:
	if (buf != NULL) {
		/* The file holds pg_conninfo and redis_password. */
		explicit_bzero(buf, len);
		free(buf);
	}
	close(fd);
	return conf;
}

struct config *
config_load_buffer(const char *name, const char *buf, size_t len,
    char *err, size_t errlen)
{
	struct config_parser	 p;
	struct config		*conf;
	char			 line[CONFIG_LINE_MAX + 1];
	const char		*s, *end = buf + len, *nl;
	size_t			 seen[CONFIG_NDIRECTIVES], n;
	int			 rc = 0;

	if (errlen > 0)
		err[0] = '\0';
	conf = xcalloc(1, sizeof(*conf));
	conf->c_path = xstrdup(name);

	memset(&p, 0, sizeof(p));
	memset(seen, 0, sizeof(seen));
	p.p_conf = conf;
	p.p_name = name;
	p.p_seen = seen;
	p.p_err = err;
	p.p_errlen = errlen;

	/* A UTF-8 byte order mark, as some editors write, is not a key. */
	s = buf;
	if (len >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0)
		s += 3;

	while (rc == 0 && s < end) {
		p.p_line++;
		if ((nl = memchr(s, '\n', (size_t)(end - s))) == NULL)
			nl = end;
		n = (size_t)(nl - s);
		if (n > CONFIG_LINE_MAX)
			rc = cfg_error(&p, "line too long (more than %d bytes)",
			    CONFIG_LINE_MAX);
		else if (memchr(s, '\0', n) != NULL)
			rc = cfg_error(&p, "NUL byte in line");
		else {
			memcpy(line, s, n);
			line[n] = '\0';
			rc = cfg_line(&p, line);
			explicit_bzero(line, n);
		}
		if (nl == end)
			break;
		s = nl + 1;
	}
	p.p_line = 0;
	if (rc == 0)
		rc = cfg_check(&p);
	if (rc != 0) {
		config_free(conf);
		return NULL;
	}
	return conf;
}

/*
 * Report an error as "name:line: reason", or "name: reason" when no line
 * applies.  Returns -1 so that callers can "return cfg_error(...)".
 */
static int
cfg_error(struct config_parser *p, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	if (p->p_errlen == 0)
		return -1;
	if (p->p_line > 0)
		n = snprintf(p->p_err, p->p_errlen, "%s:%zu: ", p->p_name,
		    p->p_line);
	else
		n = snprintf(p->p_err, p->p_errlen, "%s: ", p->p_name);
	if (n < 0 || (size_t)n >= p->p_errlen)
		return -1;
	va_start(ap, fmt);
	vsnprintf(p->p_err + n, p->p_errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

static const struct config_directive *
cfg_lookup(const char *name)
{
	size_t	i;

	for (i = 0; i < CONFIG_NDIRECTIVES; i++)
		if (strcmp(config_directives[i].d_name, name) == 0)
			return &config_directives[i];
	return NULL;
}

/* Line the directive was set at, 0 if it was not. */
static size_t
cfg_seen(struct config_parser *p, const char *name)
{
	const struct config_directive	*d;

	if ((d = cfg_lookup(name)) == NULL)
		return 0;
	return p->p_seen[d - config_directives];
}

static int
cfg_isblank(int c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/*
 * Parse one line, modifying it in place: "key value", "key "quoted"",
 * a comment or nothing.  The value is the rest of the line, trimmed,
 * without a trailing comment; within double quotes "#" is plain text and
 * \" and \\ are the only escapes.
 */
static int
cfg_line(struct config_parser *p, char *line)
{
	const struct config_directive	*d;
	char				*s, *key, *val, *w;
	size_t				 idx;
	int				 quoted = 0;
	unsigned char			 c;

	/* A CR is allowed only as part of a CRLF line end. */
	for (s = line; *s != '\0'; s++) {
		c = (unsigned char)*s;
		if (c == '\r' && s[1] == '\0') {
			*s = '\0';
			break;
		}
		if ((c < ' ' && c != '\t') || c == 0x7f)
			return cfg_error(p, "invalid control character 0x%02x",
			    c);
	}

	for (s = line; cfg_isblank(*s); s++)
		;
	if (*s == '\0' || *s == '#')
		return 0;
	key = s;
	while (*s != '\0' && *s != '#' && !cfg_isblank(*s))
		s++;
	if (*s == '#')
		*s = '\0';
	else if (*s != '\0') {
		*s++ = '\0';
		while (cfg_isblank(*s))
			s++;
	}

	if ((d = cfg_lookup(key)) == NULL)
		return cfg_error(p, "unknown directive \"%s\"", key);
	idx = (size_t)(d - config_directives);
	if (p->p_seen[idx] != 0 && !(d->d_flags & F_REPEAT))
		return cfg_error(p, "duplicate directive \"%s\" "
		    "(first at line %zu)", d->d_name, p->p_seen[idx]);

	val = s;
	if (*s == '"') {
		quoted = 1;
		for (w = val, s++; *s != '"'; *w++ = *s++) {
			if (*s == '\\' && (s[1] == '"' || s[1] == '\\'))
				s++;
			else if (*s == '\\' && s[1] != '\0')
				return cfg_error(p, "invalid escape "
				    "\"\\%c\" in quoted value for \"%s\" "
				    "(only \\\" and \\\\)", s[1], d->d_name);
			else if (*s == '\\' || *s == '\0')
				return cfg_error(p, "unterminated quoted value "
				    "for \"%s\"", d->d_name);
		}
		*w = '\0';
		for (s++; cfg_isblank(*s); s++)
			;
		if (*s != '\0' && *s != '#')
			return cfg_error(p, "unexpected text after quoted "
			    "value for \"%s\"", d->d_name);
	} else {
		while (*s != '\0' && *s != '#')
			s++;
		while (s > val && cfg_isblank(s[-1]))
			s--;
		*s = '\0';
	}
	if (*val == '\0' && !quoted)
		return cfg_error(p, "missing value for \"%s\"", d->d_name);

	if (p->p_seen[idx] == 0)
		p->p_seen[idx] = p->p_line;
	if (d->d_unset != NULL && strcmp(val, d->d_unset) == 0)
		return 0;
	return config_types[d->d_type].t_parse(p, d,
	    val, (char *)p->p_conf + d->d_offset);
}

/*
 * Once every line is read: required directives, defaults for the rest,
 * then the rules that involve more than one directive.
 */
static int
cfg_check(struct config_parser *p)
{
	const struct config_directive	*d;
	const struct config_relation	*r;
	struct config			*conf = p->p_conf;
	struct config_listen		*admin = &conf->c_admin_listen;
	char				*def, where[32] = "";
	size_t				 i, admin_line;
	int				 rc;

	for (i = 0; i < CONFIG_NDIRECTIVES; i++) {
		d = &config_directives[i];
		if ((d->d_flags & F_REQUIRED) && p->p_seen[i] == 0)
			return cfg_error(p, "\"%s\" is required", d->d_name);
	}
	for (i = 0; i < CONFIG_NDIRECTIVES; i++) {
		d = &config_directives[i];
		if (p->p_seen[i] != 0 || d->d_default == NULL)
			continue;
		def = xstrdup(d->d_default);
		rc = config_types[d->d_type].t_parse(p, d, def,
		    (char *)conf + d->d_offset);
		free(def);
		if (rc != 0)
			return -1;
	}
	if (conf->c_loop_budget_auto)
		cfg_loop_budget_auto(conf);

	for (i = 0; i < nitems(config_relations); i++) {
		r = &config_relations[i];
		if ((p->p_line = cfg_seen(p, r->r_a)) == 0)
			continue;
		if (r->r_requires && cfg_seen(p, r->r_b) == 0)
			return cfg_error(p, "\"%s\" requires \"%s\"",
			    r->r_a, r->r_b);
		if (!r->r_requires && cfg_seen(p, r->r_b) != 0)
			return cfg_error(p, "\"%s\" cannot be combined with "
			    "\"%s\" (line %zu)", r->r_a, r->r_b,
			    cfg_seen(p, r->r_b));
	}

	/*
	 * The admin listener must not take a client listener's socket.
	 * Report at whichever of the two the user wrote.
	 */
	admin_line = cfg_seen(p, "admin_listen");
	for (i = 0; i < conf->c_nlisten; i++) {
		if (!cfg_addr_overlap(admin, &conf->c_listen[i]))
			continue;
		p->p_line = admin_line != 0 ? admin_line : p->p_listen_line[i];
		if (admin_line != 0 && p->p_listen_line[i] != 0)
			snprintf(where, sizeof(where), " (line %zu)",
			    p->p_listen_line[i]);
		return cfg_error(p, "\"admin_listen\" address \"%s\" "
		    "conflicts with \"listen\" address \"%s\"%s",
		    admin->l_text, conf->c_listen[i].l_text, where);
	}

	p->p_line = cfg_seen(p, "echo_path");
	if (conf->c_echo_path != NULL &&
	    strcmp(conf->c_echo_path, conf->c_ws_path) == 0)
		return cfg_error(p, "\"echo_path\" must differ from "
		    "\"ws_path\"");

	p->p_line = 0;
	for (i = 0; i < conf->c_nlisten; i++)
		if (conf->c_listen[i].l_ssl &&
		    conf->c_tls_certificate == NULL)
			return cfg_error(p, "ssl listener \"%s\" requires "
			    "\"tls_certificate\" and \"tls_certificate_key\"",
			    conf->c_listen[i].l_text);
	return 0;
}

/* ---- Numbers, durations, sizes ---- */

/* Decimal digits, at least one, no sign; *end is left after them. */
static int
cfg_strtou64(const char *s, const char **end, uint64_t *v)
{
	uint64_t	n = 0;
	unsigned int	digit;

	if (!isdigit((unsigned char)*s))
		return -1;
	for (; isdigit((unsigned char)*s); s++) {
		digit = (unsigned int)(*s - '0');
		if (n > (UINT64_MAX - digit) / 10)
			return -1;
		n = n * 10 + digit;
	}
	*end = s;
	*v = n;
	return 0;
}

/*
 * A number followed by one of `suffixes` ("a\0bc\0", ended by an empty
 * one) times its multiplier in `mult`, or by nothing, times `bare`.
 */
static int
cfg_scaled(const char *s, uint64_t *out, const char *suffixes,
    const uint64_t *mult, uint64_t bare)
{
	const char	*end, *sfx;
	uint64_t	 n, m = 0;
	size_t		 i;

	if (cfg_strtou64(s, &end, &n) == -1)
		return -1;
	if (*end == '\0')
		m = bare;
	for (sfx = suffixes, i = 0; m == 0 && *sfx != '\0';
	    sfx += strlen(sfx) + 1, i++)
		if (strcmp(end, sfx) == 0)
			m = mult[i];
	if (m == 0 || (n != 0 && m > UINT64_MAX / n))
		return -1;
	*out = n * m;
	return 0;
}

int
config_parse_duration(const char *s, uint64_t *ms)
{
	static const uint64_t	mult[] = { 1, SEC, 60 * SEC, HOUR };

	return cfg_scaled(s, ms, "ms\0s\0m\0h\0", mult, SEC);
}

int
config_parse_size(const char *s, uint64_t *bytes)
{
	static const uint64_t	mult[] = { KIB, KIB, MIB, MIB, GIB, GIB };

	return cfg_scaled(s, bytes, "k\0K\0m\0M\0g\0G\0", mult, 1);
}

static int
cfg_parse_number(const char *s, uint64_t *v)
{
	const char	*end;

	if (cfg_strtou64(s, &end, v) == -1 || *end != '\0')
		return -1;
	return 0;
}

static void
cfg_format_number(uint64_t v, char *buf, size_t len)
{
	snprintf(buf, len, "%llu", (unsigned long long)v);
}

/* The largest unit that divides exactly: "100ms", "10s", "24h". */
static void
cfg_format_duration(uint64_t ms, char *buf, size_t len)
{
	if (ms != 0 && ms % HOUR == 0)
		snprintf(buf, len, "%lluh", (unsigned long long)(ms / HOUR));
	else if (ms != 0 && ms % SEC == 0)
		snprintf(buf, len, "%llus", (unsigned long long)(ms / SEC));
	else
		snprintf(buf, len, "%llums", (unsigned long long)ms);
}

static void
cfg_format_size(uint64_t v, char *buf, size_t len)
{
	static const char	units[] = "gmk";
	uint64_t		unit = GIB;
	size_t			i;

	for (i = 0; i < 3; i++, unit /= KIB)
		if (v != 0 && v % unit == 0) {
			snprintf(buf, len, "%llu%c",
			    (unsigned long long)(v / unit), units[i]);
			return;
		}
	cfg_format_number(v, buf, len);
}

/*
 * The field's own width bounds the range too, so a table entry can never
 * overflow the struct member it stores into.
 */
static int
cfg_range(struct config_parser *p, const struct config_directive *d,
    uint64_t v, void (*format)(uint64_t, char *, size_t))
{
	char		lo[32], hi[32];
	uint64_t	max = d->d_max;

	if (d->d_size < sizeof(uint64_t) && max > INT_MAX)
		max = INT_MAX;
	if (v >= d->d_min && v <= max)
		return 0;
	format(d->d_min, lo, sizeof(lo));
	format(max, hi, sizeof(hi));
	if (max == UNBOUNDED)
		return cfg_error(p, "\"%s\" must be at least %s", d->d_name,
		    lo);
	return cfg_error(p, "\"%s\" must be between %s and %s", d->d_name,
	    lo, hi);
}

/* Store into an int, unsigned int, size_t or uint64_t member. */
static void
cfg_store(void *field, size_t size, uint64_t v)
{
	uint32_t	v32 = (uint32_t)v;

	if (size == sizeof(v32))
		memcpy(field, &v32, sizeof(v32));
	else
		memcpy(field, &v, sizeof(v));
}

/* Numbers, durations and sizes: the kind comes with the type. */
static int
cfg_scalar(struct config_parser *p, const struct config_directive *d,
    char *val, void *field)
{
	const struct config_scalar	*kind;
	uint64_t			 v;

	kind = config_types[d->d_type].t_scalar;
	if (kind->s_parse(val, &v) == -1)
		return cfg_error(p, "invalid %s \"%s\" for \"%s\"",
		    kind->s_what, val, d->d_name);
	if (cfg_range(p, d, v, kind->s_format) == -1)
		return -1;
	cfg_store(field, d->d_size, v);
	return 0;
}

static int
cfg_workers(struct config_parser *p, const struct config_directive *d,
    char *val, void *field)
{
	long	ncpu;

	if (strcmp(val, "auto") != 0)
		return cfg_scalar(p, d, val, field);
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (ncpu < 1)
		ncpu = 1;
	if (ncpu > CONFIG_MAX_WORKERS)
		ncpu = CONFIG_MAX_WORKERS;
	p->p_conf->c_workers = (int)ncpu;
	p->p_conf->c_workers_auto = 1;
	return 0;
}

/*
 * A nice(1) value, -20 (most favoured) to 19.  The directive's absence
 * leaves the workers at the master's, so only a set value is applied.
 */
static int
cfg_nice(struct config_parser *p, const struct config_directive *d,
    char *val, void *field)
{
	uint64_t	v;
	int		neg = val[0] == '-';

	if (cfg_parse_number(val + (neg || val[0] == '+'), &v) == -1)
		return cfg_error(p, "invalid number \"%s\" for \"%s\"", val,
		    d->d_name);
	if ((neg && v > -CONFIG_NICE_MIN) || (!neg && v > CONFIG_NICE_MAX))
		return cfg_error(p, "\"%s\" must be between %d and %d",
		    d->d_name, CONFIG_NICE_MIN, CONFIG_NICE_MAX);
	*(int *)field = neg ? -(int)v : (int)v;
	p->p_conf->c_worker_priority_set = 1;
	return 0;
}

/* A number, or "auto": resolved by cfg_loop_budget_auto() at the end. */
static int
cfg_loop_budget(struct config_parser *p, const struct config_directive *d,
    char *val, void *field)
{
	p->p_conf->c_loop_budget_auto = strcmp(val, "auto") == 0;
	if (p->p_conf->c_loop_budget_auto)
		return 0;
	return cfg_scalar(p, d, val, field);
}

/*
 * loop_budget auto: a budget of CONFIG_LOOP_BUDGET_AUTO, unless a CPU
 * quota smaller than the workers' CPUs applies (cgroup.h).  Such a quota
 * pauses the workers every period; the backlog a pause leaves has waited
 * milliseconds already, and serving it in small iterations only costs
 * throughput (tests/bench/README.md: about 14% at 0.6 CPUs).
 */
static void
cfg_loop_budget_auto(struct config *conf)
{
	conf->c_loop_budget = CONFIG_LOOP_BUDGET_AUTO;
	if (cgroup_cpu_quota("", &conf->c_cpu_quota, conf->c_cpu_quota_cgroup,
	    sizeof(conf->c_cpu_quota_cgroup)) &&
	    conf->c_cpu_quota < conf->c_workers)
		conf->c_loop_budget = 0;
}

static int
cfg_bool(struct config_parser *p, const struct config_directive *d,
    char *val, void *field)
{
	static const char *const	words[] = {
		"off", "on", "no", "yes", "false", "true", "0", "1"
	};
	size_t				i;

	for (i = 0; i < nitems(words); i++)
		if (strcmp(val, words[i]) == 0) {
			cfg_store(field, d->d_size, i % 2);
			return 0;
		}
	return cfg_error(p, "invalid boolean \"%s\" for \"%s\" (expected on, "
	    "off, yes, no, true, false, 1 or 0)", val, d->d_name);
}

static int
cfg_enum(struct config_parser *p, const struct config_directive *d,
    char *val, void *field)
{
	char	expected[128];
	size_t	i, n = 0;

	for (i = 0; d->d_words[i] != NULL; i++)
		if (strcmp(val, d->d_words[i]) == 0) {
			cfg_store(field, d->d_size, i);
			return 0;
		}
	expected[0] = '\0';
	for (i = 0; d->d_words[i] != NULL && n < sizeof(expected); i++)
		n += (size_t)snprintf(expected + n, sizeof(expected) - n,
		    "%s%s", i == 0 ? "" : d->d_words[i + 1] == NULL ?
		    " or " : ", ", d->d_words[i]);
	return cfg_error(p, "invalid value \"%s\" for \"%s\" (expected %s)",
	    val, d->d_name, expected);
}

/* ---- Strings and paths ---- */

/* Length within d_min..d_max bytes; secrets are never echoed. */
static int
cfg_string(struct config_parser *p, const struct config_directive *d,
    char *val, void *field)
{
	size_t	len = strlen(val);

	if (len < d->d_min)
		return cfg_error(p, "\"%s\" must not be empty", d->d_name);
	if (len > d->d_max)
		return cfg_error(p, "\"%s\" is too long (at most %llu bytes)",
		    d->d_name, (unsigned long long)d->d_max);
	cfg_free_string(field, d->d_flags & F_SECRET);
	*(char **)field = xstrdup(val);
	return 0;
}

/* An HTTP request path to match: "/" then no space, "?" or "#". */
static int
cfg_urlpath(struct config_parser *p, const struct config_directive *d,
    char *val, void *field)
{
	if (val[0] != '/')
		return cfg_error(p, "invalid path \"%s\" for \"%s\" "
		    "(must start with \"/\")", val, d->d_name);
	if (val[strcspn(val, " \t?#")] != '\0')
		return cfg_error(p, "invalid path \"%s\" for \"%s\" "
		    "(must not contain spaces, \"?\" or \"#\")", val,
		    d->d_name);
	return cfg_string(p, d, val, field);
}

static int
cfg_abspath(struct config_parser *p, const struct config_directive *d,
    char *val, void *field)
{
	char	*dir, *slash;
	int	 rc;

	if (val[0] != '/')
		return cfg_error(p, "\"%s\" must be an absolute path, not "
		    "\"%s\"", d->d_name, val);
	if (d->d_flags & F_PARENT) {
		dir = xstrdup(val);
		slash = strrchr(dir, '/');
		if (slash == dir)
			slash++;
		*slash = '\0';
		rc = cfg_path_exists(p, d, "directory", dir, 1);
		free(dir);
		if (rc == -1)
			return -1;
	}
	return cfg_string(p, d, val, field);
}

/*
 * The path must exist now, and be a directory (`isdir`) or a readable
 * file of the right kind.  A check at parse time catches typos at "-t"
 * and before a reload, not at first use.
 */
static int
cfg_path_exists(struct config_parser *p, const struct config_directive *d,
    const char *what, const char *path, int isdir)
{
	struct stat	st;
	int		error = 0;

	if (stat(path, &st) == -1)
		error = errno;
	else if (isdir && !S_ISDIR(st.st_mode))
		error = ENOTDIR;
	else if (!isdir && S_ISDIR(st.st_mode))
		error = EISDIR;
	else if (!isdir && (d->d_flags & F_SOCKET) && !S_ISSOCK(st.st_mode))
		return cfg_error(p, "\"%s\" %s \"%s\": not a socket",
		    d->d_name, what, path);
	else if (!isdir && access(path, R_OK) == -1)
		error = errno;
	if (error != 0)
		return cfg_error(p, "\"%s\" %s \"%s\": %s", d->d_name, what,
		    path, strerror(error));
	return 0;
}

static int
cfg_file(struct config_parser *p, const struct config_directive *d,
    char *val, void *field)
{
	/* Reloads re-read these after -d has changed to "/". */
	if (val[0] != '/')
		return cfg_error(p, "\"%s\" must be an absolute path, not "
		    "\"%s\"", d->d_name, val);
	if (cfg_path_exists(p, d, "file", val, 0) == -1)
		return -1;
	return cfg_string(p, d, val, field);
}

/* A user (V_USER) or group (V_GROUP) that exists now. */
static int
cfg_account(struct config_parser *p, const struct config_directive *d,
    char *val, void *field)
{
	int	isuser = d->d_type == V_USER;

	if (isuser ? getpwnam(val) == NULL : getgrnam(val) == NULL)
		return cfg_error(p, "unknown %s \"%s\" for \"%s\"",
		    isuser ? "user" : "group", val, d->d_name);
	return cfg_string(p, d, val, field);
}

/*
 * A SQL identifier, optionally schema-qualified, unquoted so that it can
 * go into statements as is: [A-Za-z_][A-Za-z0-9_]*, each part at most
 * CONFIG_IDENT_MAX bytes.
 */
static int
cfg_ident(struct config_parser *p, const struct config_directive *d,
    char *val, void *field)
{
	const char	*s = val;
	size_t		 n;
	int		 parts = 0;

	for (;;) {
		n = 0;
		if (isalpha((unsigned char)*s) || *s == '_')
			for (n = 1; isalnum((unsigned char)s[n]) ||
			    s[n] == '_'; n++)
				;
		if (n == 0 || n > CONFIG_IDENT_MAX || ++parts > 2)
			break;
		s += n;
		if (*s == '\0')
			return cfg_string(p, d, val, field);
		if (*s++ != '.')
			break;
	}
	return cfg_error(p, "invalid table name \"%s\" for \"%s\" (expected "
	    "[schema.]name of letters, digits and \"_\", at most %d bytes "
	    "each, not starting with a digit)", val, d->d_name,
	    CONFIG_IDENT_MAX);
}

/*
 * Checked with libcurl's own URL parser, so that what passes here is what
 * the workers' curl handles will accept.
 */
static int
cfg_url(struct config_parser *p, const struct config_directive *d,
    char *val, void *field)
{
	CURLU		*u;
	CURLUcode	 uc;
	char		*scheme = NULL, *host = NULL;
	int		 rc = -1;

	if ((u = curl_url()) == NULL)
		return cfg_error(p, "cannot check \"%s\": out of memory",
		    d->d_name);
	if ((uc = curl_url_set(u, CURLUPART_URL, val, 0)) != CURLUE_OK) {
#if LIBCURL_VERSION_NUM >= 0x075000
		cfg_error(p, "invalid URL \"%s\" for \"%s\": %s", val,
		    d->d_name, curl_url_strerror(uc));
#else
		cfg_error(p, "invalid URL \"%s\" for \"%s\" (CURLUcode %d)",
		    val, d->d_name, (int)uc);
#endif
		goto done;
	}
	if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
		cfg_error(p, "invalid URL \"%s\" for \"%s\" (must be http:// "
		    "or https://)", val, d->d_name);
		goto done;
	}
	if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    host[0] == '\0') {
		cfg_error(p, "invalid URL \"%s\" for \"%s\" (no host)", val,
		    d->d_name);
		goto done;
	}
	rc = cfg_string(p, d, val, field);
done:
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return rc;
}

/*
 * libpq's own parser, keyword=value or URI.  The value holds a password:
 * it is not echoed, only libpq's reason.  libpq copies the string into
 * memory it frees without wiping, and what the master leaves in its heap
 * the workers inherit (they must never hold the database password), so
 * the parser runs in a child process that only reports back.
 */
static int	cfg_conninfo_check(const char *, char *, size_t);

static int
cfg_conninfo(struct config_parser *p, const struct config_directive *d,
    char *val, void *field)
{
	char	why[512];

	if (cfg_conninfo_check(val, why, sizeof(why)) == -1)
		return cfg_error(p, "invalid \"%s\": %s", d->d_name, why);
	return cfg_string(p, d, val, field);
}

/* PQconninfoParse() in a child: 0, or -1 and libpq's reason in why. */
static int
cfg_conninfo_check(const char *val, char *why, size_t whylen)
{
	PQconninfoOption	*opts;
	char			*msg = NULL;
	int			 fds[2], status;
	pid_t			 pid;
	ssize_t			 n;
	size_t			 len = 0;

	if (pipe2(fds, O_CLOEXEC) == -1) {
		snprintf(why, whylen, "cannot check it: pipe: %s",
		    strerror(errno));
		return -1;
	}
	if ((pid = fork()) == -1) {
		snprintf(why, whylen, "cannot check it: fork: %s",
		    strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (pid == 0) {
		close(fds[0]);
		if ((opts = PQconninfoParse(val, &msg)) != NULL)
			_exit(0);
		if (msg == NULL)
			msg = (char *)(uintptr_t)"out of memory";
		if (write(fds[1], msg, strlen(msg)) == -1)
			_exit(2);
		_exit(1);
	}
	close(fds[1]);
	while (len + 1 < whylen &&
	    ((n = read(fds[0], why + len, whylen - 1 - len)) > 0 ||
	    (n == -1 && errno == EINTR)))
		if (n > 0)
			len += (size_t)n;
	close(fds[0]);
	while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	while (len > 0 && isspace((unsigned char)why[len - 1]))
		len--;
	why[len] = '\0';
	if (len == 0)
		snprintf(why, whylen, "cannot check it");
	return -1;
}

/*
 * "scheme://host[:port]" as browsers send it in Origin: no path, no
 * trailing slash, no user info.
 */
static int
cfg_origin_valid(const char *s)
{
	const char	*end;
	uint64_t	 port;
	size_t		 n;

	n = strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789+-.");
	if (n == 0 || !isalpha((unsigned char)s[0]) ||
	    strncmp(s + n, "://", 3) != 0)
		return -1;
	s += n + 3;
	if (*s == '[') {
		n = strspn(s + 1, "0123456789abcdef:.");
		if (s[n + 1] != ']')
			return -1;
		n += 2;
	} else
		n = strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-._~");
	if (n == 0)
		return -1;
	s += n;
	if (*s == '\0')
		return 0;
	if (*s++ != ':' || cfg_strtou64(s, &end, &port) == -1 ||
	    *end != '\0' || port < 1 || port > 65535)
		return -1;
	return 0;
}

/*
 * Space-separated origins.  Browsers serialise an origin's scheme and
 * host in lower case, so the list is stored in lower case and matched
 * exactly.
 */
static int
cfg_origins(struct config_parser *p, const struct config_directive *d,
    char *val, void *field)
{
	struct config	*conf = p->p_conf;
	char		*word, *s, *last = NULL;

	(void)field;
	for (s = val; *s != '\0'; s++)
		*s = (char)tolower((unsigned char)*s);
	for (word = strtok_r(val, " \t", &last); word != NULL;
	    word = strtok_r(NULL, " \t", &last)) {
		if (cfg_origin_valid(word) == -1)
			return cfg_error(p, "invalid origin \"%s\" for \"%s\" "
			    "(expected scheme://host[:port])", word,
			    d->d_name);
		conf->c_allowed_origins = xrealloc(conf->c_allowed_origins,
		    (conf->c_nallowed_origins + 1) * sizeof(char *));
		conf->c_allowed_origins[conf->c_nallowed_origins++] =
		    xstrdup(word);
	}
	if (conf->c_nallowed_origins == 0)
		return cfg_error(p, "missing value for \"%s\"", d->d_name);
	return 0;
}

/* ---- Addresses ---- */

/*
 * "ADDR:PORT", "[V6]:PORT" or "*:PORT", numeric only (no DNS lookup at
 * parse time).  On error *why says what is wrong.
 */
static int
cfg_addr(const char *text, struct sockaddr_storage *ss, socklen_t *sslen,
    const char **why)
{
	struct addrinfo		 hints, *res;
	struct in_addr		 in4;
	char			 host[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
	char			 serv[8];
	const char		*colon, *end;
	uint64_t		 port;
	size_t			 hlen;
	int			 v6 = 0;

	*why = "expected ADDR:PORT, [ADDR]:PORT or *:PORT";
	if (text[0] == '[') {
		if ((end = strchr(text, ']')) == NULL || end[1] != ':')
			return -1;
		text++;
		hlen = (size_t)(end - text);
		colon = end + 1;
		v6 = 1;
	} else {
		if ((colon = strrchr(text, ':')) == NULL)
			return -1;
		hlen = (size_t)(colon - text);
		if (memchr(text, ':', hlen) != NULL) {
			*why = "IPv6 addresses go in brackets: [ADDR]:PORT";
			return -1;
		}
	}
	if (hlen == 0 || hlen >= sizeof(host))
		return -1;
	memcpy(host, text, hlen);
	host[hlen] = '\0';
	if (!v6 && strcmp(host, "*") == 0)
		strlcpy(host, "0.0.0.0", sizeof(host));

	if (cfg_strtou64(colon + 1, &end, &port) == -1 || *end != '\0' ||
	    port < 1 || port > 65535) {
		*why = "port must be between 1 and 65535";
		return -1;
	}
	snprintf(serv, sizeof(serv), "%u", (unsigned int)port);

	/* getaddrinfo() takes "127.1" and hex; only dotted quads here. */
	*why = v6 ? "not a numeric IPv6 address" :
	    "not a numeric IPv4 address";
	if (!v6 && inet_pton(AF_INET, host, &in4) != 1)
		return -1;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = v6 ? AF_INET6 : AF_INET;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	if (getaddrinfo(host, serv, &hints, &res) != 0)
		return -1;
	if (res->ai_addrlen > sizeof(*ss)) {
		freeaddrinfo(res);
		return -1;
	}
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*sslen = res->ai_addrlen;
	freeaddrinfo(res);
	*why = NULL;
	return 0;
}

int
config_parse_addr(const char *text, struct sockaddr_storage *ss,
    socklen_t *sslen)
{
	const char	*why;

	return cfg_addr(text, ss, sslen, &why);
}

/*
 * Two listeners cannot both bind: same family and port, and the same
 * address or either one the wildcard.
 */
static int
cfg_addr_overlap(const struct config_listen *a, const struct config_listen *b)
{
	const struct sockaddr_in	*a4, *b4;
	const struct sockaddr_in6	*a6, *b6;

	if (a->l_addr.ss_family != b->l_addr.ss_family)
		return 0;
	if (a->l_addr.ss_family == AF_INET) {
		a4 = (const struct sockaddr_in *)&a->l_addr;
		b4 = (const struct sockaddr_in *)&b->l_addr;
		return a4->sin_port == b4->sin_port &&
		    (a4->sin_addr.s_addr == b4->sin_addr.s_addr ||
		    a4->sin_addr.s_addr == htonl(INADDR_ANY) ||
		    b4->sin_addr.s_addr == htonl(INADDR_ANY));
	}
	a6 = (const struct sockaddr_in6 *)&a->l_addr;
	b6 = (const struct sockaddr_in6 *)&b->l_addr;
	return a6->sin6_port == b6->sin6_port &&
	    ((memcmp(&a6->sin6_addr, &b6->sin6_addr,
	    sizeof(a6->sin6_addr)) == 0 &&
	    a6->sin6_scope_id == b6->sin6_scope_id) ||
	    IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr) ||
	    IN6_IS_ADDR_UNSPECIFIED(&b6->sin6_addr));
}

/* "ADDR:PORT [ssl]" into `l`; `allow_ssl` is 0 for the admin listener. */
static int
cfg_listen_parse(struct config_parser *p, const char *key, char *val,
    struct config_listen *l, int allow_ssl)
{
	char		*addr, *opt, *extra, *last = NULL;
	const char	*why;

	/* A quoted value may be empty or blank. */
	if ((addr = strtok_r(val, " \t", &last)) == NULL)
		return cfg_error(p, "missing value for \"%s\"", key);
	opt = strtok_r(NULL, " \t", &last);
	extra = strtok_r(NULL, " \t", &last);
	if (cfg_addr(addr, &l->l_addr, &l->l_addrlen, &why) == -1)
		return cfg_error(p, "invalid address \"%s\" for \"%s\" (%s)",
		    addr, key, why);
	if (opt != NULL && !allow_ssl)
		return cfg_error(p, "unexpected \"%s\" after \"%s\" address "
		    "(nothing may follow it)", opt, key);
	if (opt != NULL && strcmp(opt, "ssl") != 0)
		return cfg_error(p, "unexpected \"%s\" after \"%s\" address "
		    "(only \"ssl\" may follow it)", opt, key);
	if (extra != NULL)
		return cfg_error(p, "unexpected \"%s\" after \"%s\" address "
		    "(only \"ssl\" may follow it)", extra, key);
	l->l_ssl = opt != NULL;
	l->l_text = xstrdup(addr);
	return 0;
}

static int
cfg_listen(struct config_parser *p, const struct config_directive *d,
    char *val, void *field)
{
	struct config		*conf = p->p_conf;
	struct config_listen	*l;
	size_t			 i, n = conf->c_nlisten;

	(void)field;
	if (n == CONFIG_MAX_LISTEN)
		return cfg_error(p, "too many \"%s\" directives (at most %d)",
		    d->d_name, CONFIG_MAX_LISTEN);
	l = &conf->c_listen[n];
	if (cfg_listen_parse(p, d->d_name, val, l, 1) == -1)
		return -1;
	conf->c_nlisten++;
	p->p_listen_line[n] = p->p_line;
	for (i = 0; i < n; i++) {
		if (!cfg_addr_overlap(&conf->c_listen[i], l))
			continue;
		if (conf->c_listen[i].l_addrlen == l->l_addrlen &&
		    memcmp(&conf->c_listen[i].l_addr, &l->l_addr,
		    l->l_addrlen) == 0)
			return cfg_error(p, "duplicate \"%s\" address \"%s\" "
			    "(first at line %zu)", d->d_name, l->l_text,
			    p->p_listen_line[i]);
		return cfg_error(p, "\"%s\" address \"%s\" conflicts with "
		    "\"%s\" (line %zu)", d->d_name, l->l_text,
		    conf->c_listen[i].l_text, p->p_listen_line[i]);
	}
	return 0;
}

static int
cfg_admin_listen(struct config_parser *p, const struct config_directive *d,
    char *val, void *field)
{
	return cfg_listen_parse(p, d->d_name, val, field, 0);
}

/* ---- Freeing ---- */

static void
cfg_free_string(char **s, int secret)
{
	if (*s == NULL)
		return;
	if (secret)
		explicit_bzero(*s, strlen(*s));
	free(*s);
	*s = NULL;
}

void
config_free(struct config *conf)
{
	const struct config_directive	*d;
	size_t				 i;

	if (conf == NULL)
		return;
	for (i = 0; i < CONFIG_NDIRECTIVES; i++) {
		d = &config_directives[i];
		if (config_types[d->d_type].t_string)
			cfg_free_string((char **)((char *)conf + d->d_offset),
			    d->d_flags & F_SECRET);
	}
	for (i = 0; i < conf->c_nlisten; i++)
		free(conf->c_listen[i].l_text);
	free(conf->c_admin_listen.l_text);
	for (i = 0; i < conf->c_nallowed_origins; i++)
		free(conf->c_allowed_origins[i]);
	free(conf->c_allowed_origins);
	free(conf->c_path);
	free(conf);
}

void
config_wipe_pg(struct config *conf)
{
	if (conf != NULL)
		cfg_free_string(&conf->c_pg_conninfo, 1);
}

const char *
config_log_level_name(enum log_level level)
{
	if ((unsigned int)level >= nitems(config_log_levels) - 1)
		return "unknown";
	return config_log_levels[level];
}
