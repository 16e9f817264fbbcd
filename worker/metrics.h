/*
 * What the admin listener tells about the whole process tree, read from
 * the stats region (shared/stats.h): /metrics in the Prometheus text
 * exposition format 0.0.4 and /readyz's verdict.  doc/metrics.md lists
 * every metric.
 */
#ifndef WSGATE_METRICS_H
#define WSGATE_METRICS_H

#include <stddef.h>

#include "buf.h"

/* Append the exposition of every slot's numbers, summed, to `b`. */
void	metrics_render(struct buf *b);

/*
 * 1 when this host's processes reach Redis and PostgreSQL; else 0 with
 * a one-line reason ("redis unavailable", "postgresql unavailable", or
 * both, with the slot that says so) in `why`.
 */
int	metrics_ready(char *why, size_t len);

#endif /* WSGATE_METRICS_H */
