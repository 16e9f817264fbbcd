/*
 * The dependency checks of `wsgate -T`, with the blocking (synchronous)
 * APIs of hiredis, libcurl and libpq: this runs on the command line, not
 * on an event loop.
 */
#include "autoconf.h"

#include <sys/time.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include "depcheck.h"
#include "upstream_tls.h"

static int	depcheck_report(FILE *, const char *, const char *);
static void	depcheck_oneline(char *);
static int	depcheck_redis_cmd(redisContext *, char *, size_t,
		    const char *, ...);
static int	depcheck_redis(const struct config *, FILE *);
static int	depcheck_upstream(const struct config *, FILE *);
static int	depcheck_pg(const struct config *, FILE *);

/* One line: "what: ok" or "what: FAILED: why".  Returns 1 for a failure. */
static int
depcheck_report(FILE *out, const char *what, const char *why)
{
	if (why == NULL || why[0] == '\0') {
		fprintf(out, "%s: ok\n", what);
		return 0;
	}
	fprintf(out, "%s: FAILED: %s\n", what, why);
	return 1;
}

/* Library messages span lines; a report is one. */
static void
depcheck_oneline(char *s)
{
	char	*p;

	for (p = s; *p != '\0'; p++)
		if (*p == '\n' || *p == '\r' || *p == '\t')
			*p = ' ';
	while (p > s && p[-1] == ' ')
		*--p = '\0';
}

/*
 * Send a command and read its reply: 0, or -1 with the reason (an error
 * reply, a lost connection) in err.
 */
static int
depcheck_redis_cmd(redisContext *rc, char *err, size_t errlen,
    const char *fmt, ...)
{
	redisReply	*r;
	va_list		 ap;
	int		 rv = 0;

	va_start(ap, fmt);
	r = redisvCommand(rc, fmt, ap);
	va_end(ap);
	if (r == NULL) {
		snprintf(err, errlen, "%s", rc->errstr[0] != '\0' ? rc->errstr :
		    "no reply");
		return -1;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		snprintf(err, errlen, "%.*s: %s", (int)strcspn(fmt, " "), fmt,
		    r->str);
		rv = -1;
	}
	freeReplyObject(r);
	return rv;
}

static int
depcheck_redis(const struct config *cfg, FILE *out)
{
	struct timeval	 tv = { DEPCHECK_TIMEOUT_S, 0 };
	redisContext	*rc;
	char		 what[300], err[512] = "";

	if (cfg->c_redis_socket != NULL) {
		snprintf(what, sizeof(what), "redis unix:%s",
		    cfg->c_redis_socket);
		rc = redisConnectUnixWithTimeout(cfg->c_redis_socket, tv);
	} else {
		snprintf(what, sizeof(what), strchr(cfg->c_redis_host, ':') ?
		    "redis [%s]:%d" : "redis %s:%d", cfg->c_redis_host,
		    cfg->c_redis_port);
		rc = redisConnectWithTimeout(cfg->c_redis_host,
		    cfg->c_redis_port, tv);
	}
	if (rc == NULL)
		snprintf(err, sizeof(err), "out of memory");
	else if (rc->err)
		snprintf(err, sizeof(err), "%s", rc->errstr);
	else if (redisSetTimeout(rc, tv) != REDIS_OK)
		snprintf(err, sizeof(err), "cannot set a timeout");
	else if (cfg->c_redis_password != NULL && (cfg->c_redis_username ?
	    depcheck_redis_cmd(rc, err, sizeof(err), "AUTH %s %s",
	    cfg->c_redis_username, cfg->c_redis_password) :
	    depcheck_redis_cmd(rc, err, sizeof(err), "AUTH %s",
	    cfg->c_redis_password)) == -1)
		;
	else if (cfg->c_redis_db != 0 && depcheck_redis_cmd(rc, err,
	    sizeof(err), "SELECT %d", cfg->c_redis_db) == -1)
		;
	else
		depcheck_redis_cmd(rc, err, sizeof(err), "PING");
	if (rc != NULL)
		redisFree(rc);
	depcheck_oneline(err);
	return depcheck_report(out, what, err);
}

/*
 * A connection to the upstream's host and port, TLS included for
 * https, without a request: POST is the only method its API promises.
 */
static int
depcheck_upstream(const struct config *cfg, FILE *out)
{
	CURLU		*u;
	CURL		*e = NULL;
	CURLcode	 res;
	char		*host = NULL, *port = NULL, what[300], err[512] = "";
	char		 cerr[CURL_ERROR_SIZE] = "";

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return depcheck_report(out, "upstream", "curl_global_init");
	if ((u = curl_url()) == NULL ||
	    curl_url_set(u, CURLUPART_URL, cfg->c_upstream_url, 0) !=
	    CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) !=
	    CURLUE_OK) {
		snprintf(what, sizeof(what), "upstream");
		snprintf(err, sizeof(err), "cannot parse upstream_url");
		goto done;
	}
	snprintf(what, sizeof(what), "upstream %s:%s", host, port);
	if ((e = curl_easy_init()) == NULL) {
		snprintf(err, sizeof(err), "out of memory");
		goto done;
	}
	curl_easy_setopt(e, CURLOPT_URL, cfg->c_upstream_url);
	curl_easy_setopt(e, CURLOPT_CONNECT_ONLY, 1L);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	/* As the workers do: no proxy from the environment. */
	curl_easy_setopt(e, CURLOPT_PROXY, "");
	curl_easy_setopt(e, CURLOPT_TIMEOUT, (long)DEPCHECK_TIMEOUT_S);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, cerr);
	upstream_tls_setopt(e, cfg);
	if ((res = curl_easy_perform(e)) != CURLE_OK)
		snprintf(err, sizeof(err), "%s", cerr[0] != '\0' ? cerr :
		    curl_easy_strerror(res));
done:
	if (e != NULL)
		curl_easy_cleanup(e);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	curl_global_cleanup();
	depcheck_oneline(err);
	return depcheck_report(out, what, err);
}

/*
 * Whether the dbwriters could write: the server is not read-only (a
 * standby), and the role may insert into pg_table, or create it when it
 * is missing and db_create_table is on.  err stays empty if so.
 */
static void
depcheck_pg_writable(const struct config *cfg, PGconn *conn, char *err,
    size_t errlen)
{
	static const char sql[] =
	    "SELECT current_setting('transaction_read_only'),"
	    " to_regclass($1) IS NOT NULL,"
	    " coalesce(has_table_privilege(to_regclass($1), 'INSERT'), false),"
	    " coalesce(has_schema_privilege(s.name, 'CREATE'), false),"
	    " current_user, coalesce(s.name, '(none)')"
	    " FROM (SELECT CASE WHEN strpos($1, '.') > 0"
	    " THEN split_part($1, '.', 1) ELSE current_schema() END) AS s(name)";
	const char	*param = cfg->c_pg_table;
	PGresult	*res;

	res = PQexecParams(conn, sql, 1, NULL, &param, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
		snprintf(err, errlen, "checking the table: %s",
		    PQerrorMessage(conn));
	else if (strcmp(PQgetvalue(res, 0, 0), "on") == 0)
		snprintf(err, errlen, "the server is read-only "
		    "(transaction_read_only is on: a standby?)");
	else if (strcmp(PQgetvalue(res, 0, 1), "t") == 0) {
		if (strcmp(PQgetvalue(res, 0, 2), "t") != 0)
			snprintf(err, errlen, "role %s may not INSERT into %s",
			    PQgetvalue(res, 0, 4), cfg->c_pg_table);
	} else if (!cfg->c_db_create_table)
		snprintf(err, errlen, "table %s does not exist "
		    "(db_create_table is off)", cfg->c_pg_table);
	else if (strcmp(PQgetvalue(res, 0, 3), "t") != 0)
		snprintf(err, errlen, "table %s does not exist and role %s "
		    "may not create it in schema %s", cfg->c_pg_table,
		    PQgetvalue(res, 0, 4), PQgetvalue(res, 0, 5));
	PQclear(res);
}

/*
 * pg_conninfo as the dbwriters use it, with a connect_timeout unless it
 * has its own (keywords after the expanded "dbname" override ours).
 */
static int
depcheck_pg(const struct config *cfg, FILE *out)
{
	static const char *const kw[] = { "connect_timeout", "dbname", NULL };
	const char	*val[3];
	char		 tmo[16], what[600], err[512] = "";
	PGconn		*conn;

	snprintf(tmo, sizeof(tmo), "%d", DEPCHECK_TIMEOUT_S);
	val[0] = tmo;
	val[1] = cfg->c_pg_conninfo;
	val[2] = NULL;
	conn = PQconnectdbParams(kw, val, 1);
	if (conn == NULL) {
		snprintf(what, sizeof(what), "postgresql");
		snprintf(err, sizeof(err), "out of memory");
	} else {
		snprintf(what, sizeof(what), "postgresql %s:%s/%s",
		    PQhost(conn) ? PQhost(conn) : "", PQport(conn) ?
		    PQport(conn) : "", PQdb(conn) ? PQdb(conn) : "");
		if (PQstatus(conn) != CONNECTION_OK)
			snprintf(err, sizeof(err), "%s", PQerrorMessage(conn));
		else
			depcheck_pg_writable(cfg, conn, err, sizeof(err));
		PQfinish(conn);
	}
	depcheck_oneline(err);
	return depcheck_report(out, what, err);
}

int
depcheck_run(const struct config *cfg, FILE *out)
{
	int	failed = 0;

	failed += depcheck_redis(cfg, out);
	failed += depcheck_upstream(cfg, out);
	failed += depcheck_pg(cfg, out);
	fflush(out);
	return failed;
}
