/*
 * Forking children and setting them up: the only place where a process
 * becomes a worker or a dbwriter.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dbwriter/dbwriter.h"
#include "log.h"
#include "proc.h"
#include "util.h"
#include "worker/worker.h"

static void	proc_child_init(const struct proc_spawn *, pid_t);

static const int proc_signals[] = {
	SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGCHLD, SIGPIPE
};

const char *
proc_role_name(enum proc_role role)
{
	return role == ROLE_WORKER ? "worker" : "dbwriter";
}

void
proc_user_ids(const struct config *cfg, uid_t *uid, gid_t *gid)
{
	struct passwd	*pw;
	struct group	*gr;

	*uid = (uid_t)-1;
	*gid = (gid_t)-1;
	if (cfg->c_user != NULL && (pw = getpwnam(cfg->c_user)) != NULL) {
		*uid = pw->pw_uid;
		*gid = pw->pw_gid;
	}
	if (cfg->c_group != NULL && (gr = getgrnam(cfg->c_group)) != NULL)
		*gid = gr->gr_gid;
}

int
proc_drop_privileges(const struct config *cfg, char *err, size_t errlen)
{
	uid_t	uid;
	gid_t	gid;

	if (cfg->c_user == NULL || geteuid() != 0)
		return 0;
	proc_user_ids(cfg, &uid, &gid);
	if (uid == (uid_t)-1) {
		snprintf(err, errlen, "unknown user \"%s\"", cfg->c_user);
		return -1;
	}
	if (setgroups(1, &gid) == -1 || setresgid(gid, gid, gid) == -1 ||
	    setresuid(uid, uid, uid) == -1) {
		snprintf(err, errlen, "cannot drop privileges to %s: %s",
		    cfg->c_user, strerror(errno));
		return -1;
	}
	if (uid != 0 && setuid(0) != -1) {
		snprintf(err, errlen, "could regain root after dropping it");
		return -1;
	}
	/* Dropping privileges clears the death signal; set it again. */
	prctl(PR_SET_PDEATHSIG, SIGQUIT);
	return 0;
}

/*
 * Runs in the new child: undo the master's signal set-up, name the
 * process, arrange to drain if the master dies, set a worker's
 * priority, and drop privileges.
 */
static void
proc_child_init(const struct proc_spawn *ps, pid_t master)
{
	struct sigaction	 sa;
	sigset_t		 none;
	size_t			 i;
	char			 err[256];

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < nitems(proc_signals); i++)
		sigaction(proc_signals[i], &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	log_init(proc_role_name(ps->ps_role), ps->ps_cfg->c_log_level);
	prctl(PR_SET_NAME, ps->ps_role == ROLE_WORKER ?
	    "wsgate-worker" : "wsgate-dbwriter");
	/*
	 * A master killed with SIGKILL must not leave children serving
	 * without supervision: they drain (SIGQUIT) and exit.
	 */
	prctl(PR_SET_PDEATHSIG, SIGQUIT);
	if (getppid() != master)
		raise(SIGQUIT);

	/* Before the privilege drop: a negative value needs root. */
	if (ps->ps_role == ROLE_WORKER && ps->ps_cfg->c_worker_priority_set &&
	    setpriority(PRIO_PROCESS, 0, ps->ps_cfg->c_worker_priority) == -1) {
		const char	*why = strerror(errno);

		log_warnx("worker_priority %d not applied: %s (the worker "
		    "keeps nice %d)", ps->ps_cfg->c_worker_priority, why,
		    getpriority(PRIO_PROCESS, 0));
	}
	if (proc_drop_privileges(ps->ps_cfg, err, sizeof(err)) == -1)
		fatalx("%s", err);
}

pid_t
proc_spawn(const struct proc_spawn *ps)
{
	pid_t	master = getpid(), pid;
	int	rc;

	if ((pid = fork()) != 0)
		return pid;

	proc_child_init(ps, master);
	if (ps->ps_role == ROLE_WORKER) {
		struct worker_listener	wl[CONFIG_MAX_LISTEN + 1];
		size_t			i, n = ps->ps_listeners->lset_n;

		close(ps->ps_ipc_fd);
		for (i = 0; i < n; i++) {
			const struct listener *l = &ps->ps_listeners->lset_l[i];
			wl[i].wl_fd = l->ls_fd;
			wl[i].wl_admin = l->ls_kind == LISTENER_ADMIN;
			wl[i].wl_ssl = l->ls_ssl;
			memcpy(wl[i].wl_name, l->ls_name, sizeof(wl[i].wl_name));
		}
		rc = worker_main(ps->ps_cfg, ps->ps_ssl_ctx, wl, n,
		    ps->ps_ipc_path, ps->ps_ring, ps->ps_ring_size,
		    ps->ps_slot, ps->ps_generation);
	} else {
		listen_set_close(ps->ps_listeners);
		rc = dbwriter_main(ps->ps_cfg, ps->ps_ipc_fd, ps->ps_slot,
		    ps->ps_generation);
	}
	_exit(rc);
}
