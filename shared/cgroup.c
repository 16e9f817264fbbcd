/*
 * The CPU quota that applies to this process, see cgroup.h.
 *
 * /proc/self/cgroup names the process's cgroup in each hierarchy: a
 * line "0::PATH" for the unified one (v2, files cpu.max: "QUOTA PERIOD"
 * or "max PERIOD"), lines "ID:CONTROLLERS:PATH" for v1 hierarchies, of
 * which the one whose controllers include "cpu" has cpu.cfs_quota_us
 * (-1: none) and cpu.cfs_period_us.  A quota set on an ancestor limits
 * every cgroup below it, so the walk goes up to the hierarchy's root and
 * keeps the smallest.  Both kinds are read (a hybrid system has a
 * unified hierarchy without the cpu controller beside a v1 one).
 */
#include "autoconf.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cgroup.h"

struct quota {
	double		 cpus;		/* smallest so far, 0: none */
	char		*where;
	size_t		 wherelen;
};

/* The first line of a small file, without its newline; -1: unreadable. */
static int
cgroup_read(const char *path, char *buf, size_t len)
{
	FILE	*f;
	int	 ok;

	if ((f = fopen(path, "re")) == NULL)
		return -1;
	ok = fgets(buf, (int)len, f) != NULL;
	fclose(f);
	if (!ok)
		return -1;
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

/* One limit found in `dir`: keep it if it is the smallest. */
static void
cgroup_note(struct quota *q, const char *dir, long long quota,
    long long period)
{
	double	cpus;

	if (quota <= 0 || period <= 0)
		return;
	cpus = (double)quota / (double)period;
	if (q->cpus == 0 || cpus < q->cpus) {
		q->cpus = cpus;
		snprintf(q->where, q->wherelen, "%s", dir);
	}
}

/* The limit set in directory `dir` of a v2 (1) or v1 (0) hierarchy. */
static void
cgroup_dir(struct quota *q, const char *dir, int v2)
{
	char		 path[PATH_MAX], line[128];
	long long	 quota, period;

	if (v2) {
		if (snprintf(path, sizeof(path), "%s/cpu.max", dir) >=
		    (int)sizeof(path) || cgroup_read(path, line, sizeof(line)))
			return;
		/* "max 100000": no limit here. */
		if (sscanf(line, "%lld %lld", &quota, &period) == 2)
			cgroup_note(q, dir, quota, period);
		return;
	}
	if (snprintf(path, sizeof(path), "%s/cpu.cfs_quota_us", dir) >=
	    (int)sizeof(path) || cgroup_read(path, line, sizeof(line)) ||
	    sscanf(line, "%lld", &quota) != 1)
		return;
	if (snprintf(path, sizeof(path), "%s/cpu.cfs_period_us", dir) >=
	    (int)sizeof(path) || cgroup_read(path, line, sizeof(line)) ||
	    sscanf(line, "%lld", &period) != 1)
		return;
	cgroup_note(q, dir, quota, period);
}

/* `cg` (a cgroup path, "/..." ) and its ancestors under `base`. */
static void
cgroup_walk(struct quota *q, const char *base, const char *cg, int v2)
{
	char		 dir[PATH_MAX], *slash;
	struct stat	 st;
	size_t		 baselen = strlen(base);

	if (stat(base, &st) == -1 || !S_ISDIR(st.st_mode))
		return;
	if (strcmp(cg, "/") == 0)
		cg = "";
	if (snprintf(dir, sizeof(dir), "%s%s", base, cg) >= (int)sizeof(dir))
		return;
	for (;;) {
		cgroup_dir(q, dir, v2);
		if ((slash = strrchr(dir + baselen, '/')) == NULL)
			break;
		*slash = '\0';
	}
}

/* The v1 cpu hierarchy's mount: named after its controllers, or "cpu". */
static void
cgroup_v1(struct quota *q, const char *root, const char *controllers,
    const char *cg)
{
	char		 base[PATH_MAX];
	struct stat	 st;

	if (snprintf(base, sizeof(base), "%s/sys/fs/cgroup/%s", root,
	    controllers) >= (int)sizeof(base) || stat(base, &st) == -1)
		snprintf(base, sizeof(base), "%s/sys/fs/cgroup/cpu", root);
	cgroup_walk(q, base, cg, 0);
}

/* "cpu" among the comma-separated controllers (not "cpuacct", "cpuset"). */
static int
cgroup_has_cpu(const char *controllers)
{
	const char	*p = controllers;
	size_t		 n;

	while (*p != '\0') {
		n = strcspn(p, ",");
		if (n == 3 && strncmp(p, "cpu", 3) == 0)
			return 1;
		p += n + (p[n] == ',');
	}
	return 0;
}

int
cgroup_cpu_quota(const char *root, double *cpus, char *where,
    size_t wherelen)
{
	struct quota	 q = { 0, where, wherelen };
	char		 path[PATH_MAX], line[PATH_MAX + 128], base[PATH_MAX];
	char		*controllers, *cg;
	FILE		*f;

	if (wherelen > 0)
		where[0] = '\0';
	*cpus = 0;
	if (snprintf(path, sizeof(path), "%s/proc/self/cgroup", root) >=
	    (int)sizeof(path) || (f = fopen(path, "re")) == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		/* ID:CONTROLLERS:PATH; PATH may hold colons. */
		if ((controllers = strchr(line, ':')) == NULL ||
		    (cg = strchr(++controllers, ':')) == NULL)
			continue;
		*cg++ = '\0';
		if (*cg != '/')
			continue;
		if (controllers[0] == '\0') {
			if (snprintf(base, sizeof(base), "%s/sys/fs/cgroup",
			    root) < (int)sizeof(base))
				cgroup_walk(&q, base, cg, 1);
		} else if (cgroup_has_cpu(controllers))
			cgroup_v1(&q, root, controllers, cg);
	}
	fclose(f);
	*cpus = q.cpus;
	return q.cpus > 0;
}
