/*
 * The admin listener's view of the stats region: the Prometheus text
 * exposition (format 0.0.4: HELP and TYPE before each family, base
 * units, cumulative histogram buckets) and readiness.
 *
 * Enumerated labels (reasons, kinds, stages) are always written, zeros
 * included, so that rate() sees a series from its first increment;
 * replies by status, where every status 100-599 may come from the
 * upstream, only for statuses seen.
 */
#include "autoconf.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "metrics.h"
#include "stats.h"
#include "util.h"

static const char *const hs_names[STATS_NHANDSHAKE] = {
	"not_found", "method_not_allowed", "not_websocket", "bad_upgrade",
	"bad_version", "origin_not_allowed", "bad_request", "timeout", "tls",
	"too_many_connections"
};
static const char *const stage_names[STATS_NSTAGES] = {
	"redis", "upstream", "total"
};
static const char *const redis_err_names[STATS_NREDIS_ERRORS] = {
	"unavailable", "timeout", "error"
};
static const char *const upstream_err_names[STATS_NUPSTREAM_ERRORS] = {
	"timeout", "error"
};
static const char *const read_source_names[STATS_NREAD_SOURCES] = {
	"client", "upstream"
};
static const char *const pg_err_names[STATS_NPG_ERRORS] = {
	"connection", "statement"
};
static const char *const role_names[STATS_NROLES] = {
	"worker", "dbwriter"
};

static void	family(struct buf *, const char *, const char *,
		    const char *);
static void	sample(struct buf *, const char *, const char *,
		    const char *, uint64_t);
static void	scalar(struct buf *, const char *, const char *,
		    const char *, uint64_t);
static void	enumerated(struct buf *, const char *, const char *,
		    const char *, const char *, const char *const *,
		    const uint64_t *, size_t);
static void	histogram(struct buf *, const char *, const char *,
		    const char *, const struct stats_hist *);
static void	ring_gauge(struct buf *, const char *, const char *,
		    size_t);
static int	processes(enum stats_role);

static void
family(struct buf *b, const char *name, const char *type, const char *help)
{
	buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One sample, with one label or none (label NULL). */
static void
sample(struct buf *b, const char *name, const char *label, const char *lv,
    uint64_t v)
{
	if (label != NULL)
		buf_printf(b, "%s{%s=\"%s\"} %" PRIu64 "\n", name, label, lv, v);
	else
		buf_printf(b, "%s %" PRIu64 "\n", name, v);
}

/* A family of one sample without labels. */
static void
scalar(struct buf *b, const char *name, const char *type, const char *help,
    uint64_t v)
{
	family(b, name, type, help);
	sample(b, name, NULL, NULL, v);
}

/* A family with one sample per value of an enumerated label. */
static void
enumerated(struct buf *b, const char *name, const char *type,
    const char *help, const char *label, const char *const *names,
    const uint64_t *v, size_t n)
{
	size_t	i;

	family(b, name, type, help);
	for (i = 0; i < n; i++)
		sample(b, name, label, names[i], v[i]);
}

/* The series of one histogram, buckets made cumulative. */
static void
histogram(struct buf *b, const char *name, const char *label,
    const char *lv, const struct stats_hist *h)
{
	char		 lab[128];
	uint64_t	 n = 0;
	size_t		 i;

	if (label != NULL)
		snprintf(lab, sizeof(lab), "%s=\"%s\",", label, lv);
	else
		lab[0] = '\0';
	for (i = 0; i < STATS_NBUCKETS; i++) {
		n += h->h_bucket[i];
		if (i < STATS_NBOUNDS)
			buf_printf(b, "%s_bucket{%sle=\"%g\"} %" PRIu64 "\n",
			    name, lab, stats_bounds_ns[i] / 1e9, n);
		else
			buf_printf(b, "%s_bucket{%sle=\"+Inf\"} %" PRIu64 "\n",
			    name, lab, n);
	}
	/* The label list without its trailing comma, or nothing. */
	if (label != NULL)
		lab[strlen(lab) - 1] = '\0';
	buf_printf(b, "%s_sum%s%s%s %.9f\n", name, label ? "{" : "", lab,
	    label ? "}" : "", h->h_sum_ns / 1e9);
	buf_printf(b, "%s_count%s%s%s %" PRIu64 "\n", name, label ? "{" : "",
	    lab, label ? "}" : "", n);
}

/* A gauge per worker slot: the uint64_t at `off` in its slot. */
static void
ring_gauge(struct buf *b, const char *name, const char *help, size_t off)
{
	const struct stats_region	*r = stats_region();
	char				 num[16];
	int				 i;

	family(b, name, "gauge", help);
	for (i = 0; i < stats_nslots(STATS_WORKER); i++) {
		snprintf(num, sizeof(num), "%d", i);
		sample(b, name, "slot", num, stats_get((const uint64_t *)
		    (const void *)((const char *)&r->sr_worker[i] + off)));
	}
}

/* Processes of the role running now. */
static int
processes(enum stats_role role)
{
	int	i, n = 0;

	for (i = 0; i < stats_nslots(role); i++)
		if (stats_get(&stats_proc_of(role, i)->sp_pid) != 0)
			n++;
	return n;
}

void
metrics_render(struct buf *b)
{
	static struct stats_worker	 w;	/* large: not on the stack */
	static struct stats_dbwriter	 d;
	const struct stats_region	*r = stats_region();
	uint64_t			 now = now_ms(), v[STATS_NROLES];
	char				 num[16];
	int				 i;

	memset(&w, 0, sizeof(w));
	memset(&d, 0, sizeof(d));
	stats_sum(STATS_WORKER, &w);
	stats_sum(STATS_DBWRITER, &d);

	/* ---- Workers ---- */
	scalar(b, "wsgate_connections", "gauge", "Open WebSocket connections.",
	    w.sw_connections);
	scalar(b, "wsgate_connections_total", "counter",
	    "WebSocket connections opened (successful handshakes).",
	    w.sw_connections_total);
	enumerated(b, "wsgate_handshakes_failed_total", "counter",
	    "Client connections that never became a WebSocket, by reason.",
	    "reason", hs_names, w.sw_handshakes_failed, STATS_NHANDSHAKE);
	scalar(b, "wsgate_messages_received_total", "counter",
	    "WebSocket data messages received from clients.",
	    w.sw_messages_in);
	scalar(b, "wsgate_messages_sent_total", "counter",
	    "WebSocket data messages sent to clients.",
	    w.sw_messages_out);
	enumerated(b, "wsgate_reads_deferred_total", "counter",
	    "Reads put off to the next event-loop iteration by the "
	    "iteration's read budget, by source.", "source",
	    read_source_names, w.sw_reads_later, STATS_NREAD_SOURCES);

	family(b, "wsgate_replies_total", "counter",
	    "Replies to client requests, by the status they carry.");
	for (i = 1; i < STATS_STATUS_MAX; i++)
		if (w.sw_replies[i] != 0) {
			snprintf(num, sizeof(num), "%d", i);
			sample(b, "wsgate_replies_total", "status", num,
			    w.sw_replies[i]);
		}
	if (w.sw_replies[0] != 0)
		sample(b, "wsgate_replies_total", "status", "other",
		    w.sw_replies[0]);

	family(b, "wsgate_stage_duration_seconds", "histogram",
	    "Time a request spent in a stage: redis (config lookup), "
	    "upstream (the upstream call), total (message to reply).");
	for (i = 0; i < STATS_NSTAGES; i++)
		histogram(b, "wsgate_stage_duration_seconds", "stage",
		    stage_names[i], &w.sw_stage[i]);
	enumerated(b, "wsgate_redis_errors_total", "counter",
	    "Config lookups that Redis did not answer, by kind.", "kind",
	    redis_err_names, w.sw_redis_errors, STATS_NREDIS_ERRORS);
	enumerated(b, "wsgate_upstream_errors_total", "counter",
	    "Upstream calls that got no HTTP response, by kind.", "kind",
	    upstream_err_names, w.sw_upstream_errors, STATS_NUPSTREAM_ERRORS);

	ring_gauge(b, "wsgate_ring_bytes",
	    "Bytes of unacknowledged records in a worker slot's ring.",
	    offsetof(struct stats_worker, sw_ring_bytes));
	ring_gauge(b, "wsgate_ring_records_unacked",
	    "Records in a worker slot's ring not yet durable.",
	    offsetof(struct stats_worker, sw_ring_records));

	/* ---- Dbwriters ---- */
	scalar(b, "wsgate_db_batches_total", "counter",
	    "Batches of records committed in PostgreSQL.",
	    d.sd_batches);
	scalar(b, "wsgate_rows_written_total", "counter",
	    "Rows inserted in PostgreSQL (duplicates of a resent record "
	    "are not).",
	    d.sd_rows);
	scalar(b, "wsgate_records_dead_lettered_total", "counter",
	    "Records PostgreSQL rejected on their own, moved to the "
	    "dead-letter file.",
	    d.sd_dead_letters);
	family(b, "wsgate_db_batch_duration_seconds", "histogram",
	    "Time from sending a batch (COPY or INSERT) to its commit.");
	histogram(b, "wsgate_db_batch_duration_seconds", NULL, NULL,
	    &d.sd_batch);
	scalar(b, "wsgate_spool_bytes", "gauge",
	    "Bytes in the dbwriters' on-disk spools.",
	    d.sd_spool_bytes);
	enumerated(b, "wsgate_pg_errors_total", "counter",
	    "PostgreSQL failures, by kind.", "kind", pg_err_names,
	    d.sd_pg_errors, STATS_NPG_ERRORS);
	scalar(b, "wsgate_db_connections", "gauge",
	    "PostgreSQL connections ready.",
	    d.sd_pg_conns);

	/* ---- Every process ---- */
	family(b, "wsgate_event_loop_lag_seconds", "histogram",
	    "Time from an event loop's wake-up to its next wait, once per "
	    "iteration: the longest an event waited for the loop.");
	histogram(b, "wsgate_event_loop_lag_seconds", "role", "worker",
	    &w.sw_proc.sp_lag);
	histogram(b, "wsgate_event_loop_lag_seconds", "role", "dbwriter",
	    &d.sd_proc.sp_lag);
	v[STATS_WORKER] = (uint64_t)processes(STATS_WORKER);
	v[STATS_DBWRITER] = (uint64_t)processes(STATS_DBWRITER);
	enumerated(b, "wsgate_processes", "gauge",
	    "Child processes running, by role.", "role", role_names, v,
	    STATS_NROLES);
	v[0] = stats_dep_of(STATS_WORKER, now) == STATS_DEP_UP;
	v[1] = stats_dep_of(STATS_DBWRITER, now) == STATS_DEP_UP;
	enumerated(b, "wsgate_dependency_up", "gauge",
	    "1 when the dependency is reachable, as /readyz judges.",
	    "dependency", (const char *const[]){ "redis", "postgresql" }, v,
	    2);

	/* ---- Master ---- */
	scalar(b, "wsgate_reloads_total", "counter",
	    "Reloads (SIGHUP) that started a new generation.",
	    r != NULL ? stats_get(&r->sr_master.sm_reloads) : 0);
	scalar(b, "wsgate_reload_failures_total", "counter",
	    "Reloads refused (invalid configuration, unusable sockets).",
	    r != NULL ? stats_get(&r->sr_master.sm_reload_failures) : 0);
	scalar(b, "wsgate_child_restarts_total", "counter",
	    "Workers and dbwriters that died and were started again.",
	    r != NULL ? stats_get(&r->sr_master.sm_restarts) : 0);
}

int
metrics_ready(char *why, size_t len)
{
	uint64_t	now = now_ms();
	int		redis, pg;

	redis = stats_dep_of(STATS_WORKER, now) == STATS_DEP_UP;
	pg = stats_dep_of(STATS_DBWRITER, now) == STATS_DEP_UP;
	snprintf(why, len, "%s%s%s", redis ? "" : "redis unavailable",
	    !redis && !pg ? ", " : "", pg ? "" : "postgresql unavailable");
	return redis && pg;
}
