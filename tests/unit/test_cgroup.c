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
 * shared/cgroup.c against directory trees laid out like /proc/self/cgroup
 * and /sys/fs/cgroup: cgroup v2 cpu.max and v1 cpu.cfs_quota_us, limits
 * on ancestors, the smallest kept, "no limit" spellings, controllers that
 * are not "cpu", garbage, and a machine's own files (whatever they say,
 * without crashing).
 */
#include "autoconf.h"

#include <sys/stat.h>

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/tap.h"
#include "cgroup.h"

static char	base[] = "/tmp/wsgate-test-cgroup.XXXXXX";
static char	root[PATH_MAX];
static int	nroot;

/* mkdir -p for the directory part of root/rel, then write text there. */
static void
put(const char *rel, const char *text)
{
	char	 path[PATH_MAX], *p;
	FILE	*f;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	for (p = path + strlen(root) + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		if (mkdir(path, 0700) == -1 && errno != EEXIST)
			diag("mkdir %s: %s", path, strerror(errno));
		*p = '/';
	}
	if ((f = fopen(path, "w")) == NULL) {
		diag("fopen %s: %s", path, strerror(errno));
		return;
	}
	fputs(text, f);
	fclose(f);
}

static int
rm_entry(const char *path, const struct stat *st, int type, struct FTW *f)
{
	(void)st;
	(void)type;
	(void)f;
	return remove(path);
}

/* A v1 cgroup's quota and period files under sys/fs/cgroup/dir. */
static void
v1(const char *dir, const char *quota, const char *period)
{
	char	rel[PATH_MAX], line[64];

	snprintf(rel, sizeof(rel), "sys/fs/cgroup/%s/cpu.cfs_quota_us", dir);
	snprintf(line, sizeof(line), "%s\n", quota);
	put(rel, line);
	snprintf(rel, sizeof(rel), "sys/fs/cgroup/%s/cpu.cfs_period_us", dir);
	snprintf(line, sizeof(line), "%s\n", period);
	put(rel, line);
}

/* A fresh tree for the next case. */
static void
fresh(void)
{
	snprintf(root, sizeof(root), "%s/%d", base, ++nroot);
	if (mkdir(root, 0700) == -1)
		diag("mkdir %s: %s", root, strerror(errno));
}

/* The quota found under the current tree, in hundredths of a CPU. */
static int
quota(char *where, size_t len)
{
	double	cpus;
	int	r;

	r = cgroup_cpu_quota(root, &cpus, where, len);
	if (r == 0)
		return cpus == 0 ? 0 : -1;
	return (int)(cpus * 100 + 0.5);
}

/* `where` relative to the tree. */
static const char *
rel(const char *where)
{
	size_t	n = strlen(root);

	return strncmp(where, root, n) == 0 ? where + n : where;
}

int
main(void)
{
	char	where[PATH_MAX];
	double	cpus;
	int	r;

	tap_watchdog(20);
	if (mkdtemp(base) == NULL) {
		diag("mkdtemp: %s", strerror(errno));
		return 1;
	}

	fresh();
	is_int(quota(where, sizeof(where)), 0, "no /proc/self/cgroup: none");
	is_str(where, "", "no /proc/self/cgroup: no cgroup named");

	/* v2: the limit is on the parent. */
	fresh();
	put("proc/self/cgroup", "0::/system.slice/wsgate.service\n");
	put("sys/fs/cgroup/system.slice/wsgate.service/cpu.max",
	    "max 100000\n");
	put("sys/fs/cgroup/system.slice/cpu.max", "150000 100000\n");
	is_int(quota(where, sizeof(where)), 150, "v2: parent's 1.5 CPUs");
	is_str(rel(where), "/sys/fs/cgroup/system.slice",
	    "v2: the parent sets it");

	/* v2: the smallest of the cgroup and its ancestors. */
	put("sys/fs/cgroup/system.slice/wsgate.service/cpu.max",
	    "60000 100000\n");
	put("sys/fs/cgroup/cpu.max", "400000 100000\n");
	is_int(quota(where, sizeof(where)), 60, "v2: own 0.6 < parent 1.5");
	is_str(rel(where), "/sys/fs/cgroup/system.slice/wsgate.service",
	    "v2: the cgroup itself sets it");

	/* v2 in a container: the namespace's root is the cgroup. */
	fresh();
	put("proc/self/cgroup", "0::/\n");
	put("sys/fs/cgroup/cpu.max", "6000 10000\n");
	is_int(quota(where, sizeof(where)), 60, "v2 at the root: 0.6 CPUs");
	is_str(rel(where), "/sys/fs/cgroup", "v2 at the root: named");

	/* v2, no limit anywhere. */
	fresh();
	put("proc/self/cgroup", "0::/a\n");
	put("sys/fs/cgroup/a/cpu.max", "max 100000\n");
	is_int(quota(where, sizeof(where)), 0, "v2: max is no limit");

	/* v1: a hierarchy named after its controllers. */
	fresh();
	put("proc/self/cgroup",
	    "12:pids:/x\n4:cpu,cpuacct:/x/y\n3:cpuset:/x\n");
	v1("cpu,cpuacct/x/y", "-1", "100000");
	v1("cpu,cpuacct/x", "250000", "100000");
	is_int(quota(where, sizeof(where)), 250, "v1: parent's 2.5 CPUs");
	is_str(rel(where), "/sys/fs/cgroup/cpu,cpuacct/x",
	    "v1: the parent sets it");

	/* v1: mounted as "cpu" alone; -1 is no limit. */
	fresh();
	put("proc/self/cgroup", "2:cpuacct:/z\n1:cpu:/z\n0::/\n");
	v1("cpu/z", "6000", "10000");
	v1("cpu", "-1", "100000");
	is_int(quota(where, sizeof(where)), 60, "v1 \"cpu\": 0.6 CPUs");

	/* v1: the fallback mount /sys/fs/cgroup/cpu for "cpu,cpuacct". */
	fresh();
	put("proc/self/cgroup", "4:cpu,cpuacct:/w\n");
	v1("cpu/w", "50000", "100000");
	is_int(quota(where, sizeof(where)), 50, "v1 via /sys/fs/cgroup/cpu");

	/* Only "cpu" counts: not cpuacct, not cpuset. */
	fresh();
	put("proc/self/cgroup", "2:cpuacct:/q\n3:cpuset:/q\n");
	v1("cpuacct/q", "1000", "100000");
	v1("cpuset/q", "1000", "100000");
	is_int(quota(where, sizeof(where)), 0, "cpuacct, cpuset: no quota");

	/* Hybrid: a unified hierarchy without cpu.max beside a v1 one. */
	fresh();
	put("proc/self/cgroup", "1:cpu:/h\n0::/h\n");
	v1("cpu/h", "300000", "100000");
	is_int(quota(where, sizeof(where)), 300, "hybrid: the v1 quota");

	/* Garbage: lines without a path, bad numbers, zero periods. */
	fresh();
	put("proc/self/cgroup",
	    "nonsense\n0:\n0::relative\n1:cpu:/g\n0::/g\n");
	put("sys/fs/cgroup/g/cpu.max", "lots 100000\n");
	put("sys/fs/cgroup/cpu.max", "100000 0\n");
	v1("cpu/g", "x", "100000");
	v1("cpu", "20000", "");
	is_int(quota(where, sizeof(where)), 0, "garbage: no quota, no crash");

	/* A `where` too short is cut, not overrun. */
	fresh();
	put("proc/self/cgroup", "0::/\n");
	put("sys/fs/cgroup/cpu.max", "50000 100000\n");
	is_int(quota(where, 4), 50, "short where: quota found");
	is_int((long long)strlen(where), 3, "short where: cut to fit");

	/* This machine's own files: an answer, whatever it is. */
	r = cgroup_cpu_quota("", &cpus, where, sizeof(where));
	ok(r == (cpus > 0), "this machine: %s%s%.2f CPUs", where,
	    where[0] != '\0' ? ": " : "no quota, ", cpus);

	if (nftw(base, rm_entry, 16, FTW_DEPTH | FTW_PHYS) == -1)
		diag("cannot remove %s: %s", base, strerror(errno));
	done_testing();
}
