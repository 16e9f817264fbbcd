/*
 * Config lookups: coalescing, timeout, conversion, cache.
 *
 * A lookup is one GET in flight for one key.  Requests for that key
 * wait on it; when it is answered (or times out) every waiter gets the
 * same converted config.  A lookup that timed out leaves the table at
 * once, so new requests send a new GET, and is freed when Redis finally
 * answers it, since hiredis still holds a pointer to it.
 */
#include "autoconf.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "edn.h"
#include "json.h"
#include "log.h"
#include "lookup.h"
#include "redis.h"
#include "stats.h"
#include "util.h"

#define LOOKUP_BUCKETS_MIN	256
#define LOOKUP_LOG_EVERY_MS	10000	/* "invalid config": a line at most */

/* A hash table entry: the first member of struct lookup and cache_entry. */
struct tnode {
	struct tnode		*tn_next;	/* hash chain */
	uint32_t		 tn_hash;
	size_t			 tn_keylen;
	const char		*tn_key;
};

struct lookup {
	struct tnode		 l_node;	/* first: see table_* */
	int			 l_done;	/* timed out: only awaits Redis */
	ev_timer		 l_timer;
	struct redis_call	 l_call;
	TAILQ_HEAD(, lookup_waiter) l_waiters;
	char			 l_key[];	/* prefix + user */
};

struct cache_entry {
	struct tnode		 ce_node;	/* first: see table_* */
	TAILQ_ENTRY(cache_entry) ce_age;	/* oldest first */
	ev_tstamp		 ce_expires;
	enum lookup_status	 ce_status;
	char			*ce_json;
	size_t			 ce_jsonlen;
	char			 ce_key[];
};

struct table {
	struct tnode	**t_b;
	size_t		  t_nb;
	size_t		  t_n;
};

static struct {
	struct ev_loop		*loop;
	const struct config	*cfg;
	struct table		 inflight;	/* struct lookup */
	struct table		 cache;		/* struct cache_entry */
	TAILQ_HEAD(, cache_entry) ages;
	unsigned int		 pending;	/* GETs awaiting Redis */
	struct buf		 conv;		/* EDN conversion scratch */
	char			*key;		/* prefix + user scratch */
	size_t			 keycap;
	struct log_limit	 invalid_log;	/* "invalid config" */
} lk;

static uint32_t	lookup_hash(const char *, size_t);
static void	lookup_reply_cb(void *, enum redis_result, const char *,
		    size_t);
static void	lookup_timeout_cb(struct ev_loop *, ev_timer *, int);
static void	lookup_finish(struct lookup *, enum lookup_status,
		    const char *, size_t);
static void	table_grow(struct table *, size_t);
static struct tnode *table_find(struct table *, const char *, size_t,
		    uint32_t);
static void	table_insert(struct table *, struct tnode *);
static void	table_remove(struct table *, struct tnode *);
static void	cache_put(const char *, size_t, uint32_t, enum lookup_status,
		    const char *, size_t);
static struct cache_entry *cache_get(const char *, size_t, uint32_t);
static void	cache_drop(struct cache_entry *);

/* FNV-1a: keys are short user ids. */
static uint32_t
lookup_hash(const char *p, size_t len)
{
	uint32_t	h = 2166136261u;
	size_t		i;

	for (i = 0; i < len; i++) {
		h ^= (uint8_t)p[i];
		h *= 16777619u;
	}
	return h;
}

/* Hash tables of tnodes (chained, power-of-two buckets). */
static void
table_grow(struct table *t, size_t want)
{
	struct tnode	**nb, *e, *next;
	size_t		  n = t->t_nb < LOOKUP_BUCKETS_MIN ? LOOKUP_BUCKETS_MIN :
			    t->t_nb, i;

	while (n < want)
		n *= 2;
	if (n == t->t_nb)
		return;
	nb = xcalloc(n, sizeof(*nb));
	for (i = 0; i < t->t_nb; i++)
		for (e = t->t_b[i]; e != NULL; e = next) {
			next = e->tn_next;
			e->tn_next = nb[e->tn_hash & (n - 1)];
			nb[e->tn_hash & (n - 1)] = e;
		}
	free(t->t_b);
	t->t_b = nb;
	t->t_nb = n;
}

static struct tnode *
table_find(struct table *t, const char *key, size_t len, uint32_t h)
{
	struct tnode	*e;

	for (e = t->t_b[h & (t->t_nb - 1)]; e != NULL; e = e->tn_next)
		if (e->tn_hash == h && e->tn_keylen == len &&
		    memcmp(e->tn_key, key, len) == 0)
			return e;
	return NULL;
}

/* `e` has its hash, key and key length set. */
static void
table_insert(struct table *t, struct tnode *e)
{
	if (t->t_n + 1 > t->t_nb)
		table_grow(t, t->t_n + 1);
	e->tn_next = t->t_b[e->tn_hash & (t->t_nb - 1)];
	t->t_b[e->tn_hash & (t->t_nb - 1)] = e;
	t->t_n++;
}

static void
table_remove(struct table *t, struct tnode *e)
{
	struct tnode	**pp = &t->t_b[e->tn_hash & (t->t_nb - 1)];

	while (*pp != e)
		pp = &(*pp)->tn_next;
	*pp = e->tn_next;
	t->t_n--;
}

void
lookup_init(struct ev_loop *loop, const struct config *cfg)
{
	memset(&lk, 0, sizeof(lk));
	lk.loop = loop;
	lk.cfg = cfg;
	TAILQ_INIT(&lk.ages);
	table_grow(&lk.inflight, LOOKUP_BUCKETS_MIN);
	table_grow(&lk.cache, LOOKUP_BUCKETS_MIN);
}

unsigned int
lookup_pending(void)
{
	return lk.pending;
}

/* ---- Cache ---- */

static struct cache_entry *
cache_get(const char *key, size_t len, uint32_t h)
{
	/* ce_node is the first member. */
	return (struct cache_entry *)(void *)table_find(&lk.cache, key, len,
	    h);
}

static void
cache_drop(struct cache_entry *e)
{
	table_remove(&lk.cache, &e->ce_node);
	TAILQ_REMOVE(&lk.ages, e, ce_age);
	free(e->ce_json);
	free(e);
}

static void
cache_put(const char *key, size_t len, uint32_t h, enum lookup_status st,
    const char *json, size_t jsonlen)
{
	struct cache_entry	*e;

	if ((e = cache_get(key, len, h)) != NULL)
		cache_drop(e);
	/* Bounded: the oldest entry makes room. */
	while (lk.cache.t_n >= lk.cfg->c_config_cache_entries &&
	    !TAILQ_EMPTY(&lk.ages))
		cache_drop(TAILQ_FIRST(&lk.ages));
	e = xmalloc(sizeof(*e) + len);
	memcpy(e->ce_key, key, len);
	e->ce_node.tn_hash = h;
	e->ce_node.tn_keylen = len;
	e->ce_node.tn_key = e->ce_key;
	e->ce_status = st;
	e->ce_json = xmalloc(jsonlen + 1);
	memcpy(e->ce_json, json, jsonlen);
	e->ce_jsonlen = jsonlen;
	e->ce_expires = ev_now(lk.loop) + lk.cfg->c_config_cache_ttl / 1000.0;
	table_insert(&lk.cache, &e->ce_node);
	TAILQ_INSERT_TAIL(&lk.ages, e, ce_age);
}

/* ---- Lookups ---- */

void
lookup_start(struct lookup_waiter *w, const char *user, size_t userlen,
    lookup_cb *cb, void *arg)
{
	const struct config	*cfg = lk.cfg;
	struct lookup		*l;
	struct cache_entry	*ce;
	size_t			 plen = strlen(cfg->c_redis_key_prefix);
	size_t			 len = plen + userlen;
	uint32_t		 h;

	w->lw_cb = cb;
	w->lw_arg = arg;
	if (len > lk.keycap) {
		lk.keycap = len * 2;
		lk.key = xrealloc(lk.key, lk.keycap);
	}
	memcpy(lk.key, cfg->c_redis_key_prefix, plen);
	memcpy(lk.key + plen, user, userlen);
	h = lookup_hash(lk.key, len);

	if (cfg->c_config_cache_ttl > 0 &&
	    (ce = cache_get(lk.key, len, h)) != NULL) {
		if (ce->ce_expires > ev_now(lk.loop)) {
			cb(arg, ce->ce_status, ce->ce_json, ce->ce_jsonlen);
			return;
		}
		cache_drop(ce);
	}
	/* l_node is the first member. */
	if ((l = (struct lookup *)(void *)table_find(&lk.inflight, lk.key, len,
	    h)) != NULL) {
		TAILQ_INSERT_TAIL(&l->l_waiters, w, lw_entry);
		return;
	}

	if (!redis_ready()) {
		stats_inc(&stats_w->sw_redis_errors[STATS_REDIS_UNAVAILABLE]);
		cb(arg, LOOKUP_UNAVAILABLE, NULL, 0);
		return;
	}
	l = xcalloc(1, sizeof(*l) + len);
	memcpy(l->l_key, lk.key, len);
	l->l_node.tn_hash = h;
	l->l_node.tn_keylen = len;
	l->l_node.tn_key = l->l_key;
	TAILQ_INIT(&l->l_waiters);
	l->l_call.rc_cb = lookup_reply_cb;
	l->l_call.rc_arg = l;
	if (redis_get(l->l_key, len, &l->l_call) == -1) {
		free(l);
		stats_inc(&stats_w->sw_redis_errors[STATS_REDIS_UNAVAILABLE]);
		cb(arg, LOOKUP_UNAVAILABLE, NULL, 0);
		return;
	}
	lk.pending++;
	TAILQ_INSERT_TAIL(&l->l_waiters, w, lw_entry);
	table_insert(&lk.inflight, &l->l_node);
	ev_timer_init(&l->l_timer, lookup_timeout_cb,
	    cfg->c_redis_timeout / 1000.0, 0.);
	l->l_timer.data = l;
	ev_timer_start(lk.loop, &l->l_timer);
}

/* Leave the table and answer every waiter; the lookup stays allocated. */
static void
lookup_finish(struct lookup *l, enum lookup_status st, const char *json,
    size_t len)
{
	struct lookup_waiter	*w;

	ev_timer_stop(lk.loop, &l->l_timer);
	table_remove(&lk.inflight, &l->l_node);
	l->l_done = 1;
	if (lk.cfg->c_config_cache_ttl > 0 &&
	    (st == LOOKUP_OK || st == LOOKUP_MISSING))
		cache_put(l->l_key, l->l_node.tn_keylen, l->l_node.tn_hash, st,
		    json, len);
	while ((w = TAILQ_FIRST(&l->l_waiters)) != NULL) {
		TAILQ_REMOVE(&l->l_waiters, w, lw_entry);
		w->lw_cb(w->lw_arg, st, json, len);
	}
}

static void
lookup_timeout_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	stats_inc(&stats_w->sw_redis_errors[STATS_REDIS_TIMEOUT]);
	lookup_finish(t->data, LOOKUP_TIMEOUT, NULL, 0);
}

static void
lookup_reply_cb(void *arg, enum redis_result res, const char *val,
    size_t len)
{
	struct lookup	*l = arg;
	const char	*why;
	char		 err[128];
	uint64_t	 quiet;

	lk.pending--;
	if (l->l_done) {
		free(l);
		return;
	}
	switch (res) {
	case REDIS_FOUND:
		if ((why = json_check(val, len)) == NULL) {
			lookup_finish(l, LOOKUP_OK, val, len);
			break;
		}
		/*
		 * Not JSON: EDN then.  But JSON that is only too deep or too
		 * large stays refused: read as EDN it could change meaning
		 * ({"a":1} would be {"a" :1}, a keyword).
		 */
		buf_reset(&lk.conv);
		if (strcmp(why, "nesting too deep") == 0 ||
		    strcmp(why, "too large") == 0)
			snprintf(err, sizeof(err), "JSON %s", why);
		else if (edn_to_json(val, len, &lk.conv, err,
		    sizeof(err)) == 0) {
			lookup_finish(l, LOOKUP_OK, lk.conv.b_p,
			    lk.conv.b_len);
			break;
		}
		/* Each request of the user meets it: a line now and then. */
		if (log_limit_now(&lk.invalid_log, LOOKUP_LOG_EVERY_MS, &quiet))
			log_warnx("invalid config key=%.*s reason=\"%s\" "
			    "unlogged=%" PRIu64, (int)(l->l_node.tn_keylen >
			    200 ? 200 : l->l_node.tn_keylen), l->l_key, err,
			    quiet);
		lookup_finish(l, LOOKUP_INVALID, NULL, 0);
		break;
	case REDIS_MISSING:
		if (lk.cfg->c_missing_config == MISSING_CONFIG_REJECT)
			lookup_finish(l, LOOKUP_MISSING, NULL, 0);
		else
			lookup_finish(l, LOOKUP_OK, "null", 4);
		break;
	default:
		stats_inc(&stats_w->sw_redis_errors[res == REDIS_BADREPLY ?
		    STATS_REDIS_ERROR : STATS_REDIS_UNAVAILABLE]);
		lookup_finish(l, LOOKUP_UNAVAILABLE, NULL, 0);
		break;
	}
	free(l);
}

void
lookup_shutdown(void)
{
	while (!TAILQ_EMPTY(&lk.ages))
		cache_drop(TAILQ_FIRST(&lk.ages));
	free(lk.cache.t_b);
	free(lk.inflight.t_b);
	buf_free(&lk.conv);
	free(lk.key);
	memset(&lk.cache, 0, sizeof(lk.cache));
	memset(&lk.inflight, 0, sizeof(lk.inflight));
}
