/*
 * The CPU quota (cgroup v2 cpu.max, v1 cpu.cfs_quota_us) that applies
 * to this process: the smallest one of its cgroup and its ancestors.
 */
#ifndef WSGATE_CGROUP_H
#define WSGATE_CGROUP_H

#include <stddef.h>

/*
 * 1: *cpus is the quota in CPUs (quota / period) and `where` the
 * directory that sets it; 0: no quota (or none readable: the answer is
 * advice, not a limit).  `root` prefixes /proc and /sys ("" normally; a
 * directory tree in tests).
 */
int	cgroup_cpu_quota(const char *root, double *cpus, char *where,
	    size_t wherelen);

#endif /* WSGATE_CGROUP_H */
