/*
 * The master: opens listeners and the dbwriter socket, forks and
 * supervises children, and turns signals into reloads and shutdowns.
 *
 * Signals are blocked and taken synchronously with sigtimedwait(), so
 * every action below runs in ordinary program context, never in a
 * handler [nginx ngx_master_process_cycle, with sigsuspend].
 */
#include "autoconf.h"

#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "listen.h"
#include "log.h"
#include "master.h"
#include "proc.h"
#include "ring.h"
#include "sdnotify.h"
#include "stats.h"
#include "tls.h"
#include "util.h"
#include "worker/upstream.h"

#define RESPAWN_QUICK_MS	2000	/* a child dying sooner "keeps dying" */
#define RESPAWN_BACKOFF_MIN_MS	100
#define RESPAWN_BACKOFF_MAX_MS	10000
#define KILL_GRACE_MS		2000	/* after shutdown_timeout, SIGKILL */
#define MAX_CHILDREN		1024

struct generation {
	unsigned int		 g_id;
	struct config		*g_cfg;		/* NULL once retired */
	struct listen_set	*g_listeners;	/* NULL once retired */
	SSL_CTX			*g_ssl_ctx;	/* NULL without ssl listeners */
	int			 g_nchildren;
	uint64_t		 g_kill_at;	/* 0 = not draining */
	struct generation	*g_next;
};

struct child {
	pid_t			 ch_pid;	/* 0: waiting for respawn */
	enum proc_role		 ch_role;
	int			 ch_slot;
	struct generation	*ch_gen;
	uint64_t		 ch_started;
	uint64_t		 ch_respawn_at;
	unsigned int		 ch_fails;
	int			 ch_used;
};

static struct {
	const struct master_opts *opts;
	struct generation	*cur;
	struct generation	*gens;		/* all, newest first */
	struct child		 children[MAX_CHILDREN];
	struct {
		void		*mem;
		size_t		 size;
	}			 rings[MAX_CHILDREN];	/* per worker slot */
	unsigned int		 next_gen;
	int			 ipc_fd;
	char			 ipc_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char			*pidfile;
	int			 stopping;	/* 0, SIGQUIT or SIGTERM */
	uint64_t		 stop_deadline;
	pid_t			 pid;
} m;

static int	 master_prepare_dirs(const struct config *, char *, size_t);
static int	 master_own_dir(const char *, uid_t, gid_t, mode_t, char *,
		    size_t);
static void	 master_log_owner(const struct config *);
static void	 log_loop_budget(const struct config *);
static void	 master_notify_ready(const char *);
static int	 master_open_ipc(const struct config *, char *, size_t);
static int	 master_pidfile_check(const char *, char *, size_t);
static int	 master_pidfile_write(const char *, char *, size_t);
static void	 master_pidfile_remove(void);
static int	 master_daemonize(int *);
static struct generation *gen_new(struct config *, struct listen_set *,
		    SSL_CTX *);
static void	 gen_retire(struct generation *);
static void	 gen_reap(void);
static struct child *child_alloc(enum proc_role, struct generation *, int);
static void	 child_start(struct child *);
static void	 start_generation(struct generation *);
static int	 slot_free(enum proc_role, int);
static int	 slot_ring(int, const struct config *);
static void	 reap_children(void);
static void	 child_exited(struct child *, int);
static void	 run_timers(void);
static uint64_t	 next_timer(void);
static void	 signal_children(struct generation *, int);
static int	 do_reload(void);
static void	 do_stop(int);
static int	 live_children(void);
static const char *signame(int);
static enum stats_role child_stats_role(const struct child *);

static const char *
signame(int sig)
{
	static char	buf[16];

	switch (sig) {
	case SIGHUP:	return "HUP";
	case SIGINT:	return "INT";
	case SIGQUIT:	return "QUIT";
	case SIGILL:	return "ILL";
	case SIGABRT:	return "ABRT";
	case SIGBUS:	return "BUS";
	case SIGFPE:	return "FPE";
	case SIGKILL:	return "KILL";
	case SIGUSR1:	return "USR1";
	case SIGSEGV:	return "SEGV";
	case SIGUSR2:	return "USR2";
	case SIGPIPE:	return "PIPE";
	case SIGALRM:	return "ALRM";
	case SIGTERM:	return "TERM";
	}
	snprintf(buf, sizeof(buf), "%d", sig);
	return buf;
}

/* ---- Start-up ---- */

/*
 * Create runtime_dir and spool_dir when missing and give them their
 * owners and modes.  The spool is the children's: owned by the
 * unprivileged user, mode 0700.  runtime_dir stays the master's, so a
 * child can never replace the socket (or a pidfile kept there); children
 * of another user only pass through it (0711) to a socket that is theirs
 * alone (0600).  It is also what systemd wants: it hands a
 * RuntimeDirectory= back to the service's user, recursively, on every
 * command it runs for the unit (ExecReload= too) unless the directory
 * already belongs to that user.
 */
static int
master_prepare_dirs(const struct config *cfg, char *err, size_t errlen)
{
	struct {
		const char	*path;
		uid_t		 uid;
		gid_t		 gid;
		mode_t		 mode;
	}		 dirs[2];
	uid_t		 uid;
	gid_t		 gid;
	size_t		 i;
	int		 drop;

	proc_user_ids(cfg, &uid, &gid);
	drop = geteuid() == 0 && uid != (uid_t)-1 && uid != 0;
	dirs[0].path = cfg->c_runtime_dir;
	dirs[0].uid = geteuid();
	dirs[0].gid = getegid();
	dirs[0].mode = drop ? 0711 : 0700;
	dirs[1].path = cfg->c_spool_dir;
	dirs[1].uid = drop ? uid : geteuid();
	dirs[1].gid = drop ? gid : getegid();
	dirs[1].mode = 0700;
	for (i = 0; i < nitems(dirs); i++) {
		char	path[4096], *p;

		if (strlen(dirs[i].path) >= sizeof(path)) {
			snprintf(err, errlen, "path too long: %s",
			    dirs[i].path);
			return -1;
		}
		strlcpy(path, dirs[i].path, sizeof(path));
		/* mkdir -p, the last component 0700. */
		for (p = path + 1; ; p++) {
			int last = *p == '\0';
			if (*p != '/' && !last)
				continue;
			*p = '\0';
			if (mkdir(path, last ? 0700 : 0755) == -1 &&
			    errno != EEXIST) {
				snprintf(err, errlen, "cannot create %s: %s",
				    path, strerror(errno));
				return -1;
			}
			if (last)
				break;
			*p = '/';
		}
		if (master_own_dir(dirs[i].path, dirs[i].uid, dirs[i].gid,
		    dirs[i].mode, err, errlen) == -1)
			return -1;
	}
	return 0;
}

/*
 * Make a directory wsgate's own whatever an earlier run, a package or a
 * service manager left: owned by uid:gid (when we are root, who alone
 * may chown) and of the given mode.  A directory others share
 * (world-writable or sticky, such as /tmp) is refused, not taken over.
 */
static int
master_own_dir(const char *path, uid_t uid, gid_t gid, mode_t mode,
    char *err, size_t errlen)
{
	struct stat	st;
	int		fd, rc = -1;

	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 ||
	    fstat(fd, &st) == -1) {
		snprintf(err, errlen, "cannot open %s: %s", path,
		    strerror(errno));
		goto out;
	}
	if (st.st_mode & (S_IWOTH | S_ISVTX)) {
		snprintf(err, errlen, "%s is a shared directory (mode %04o): "
		    "give wsgate one of its own", path,
		    (unsigned int)(st.st_mode & 07777));
		goto out;
	}
	if (geteuid() == 0 && (st.st_uid != uid || st.st_gid != gid) &&
	    fchown(fd, uid, gid) == -1) {
		snprintf(err, errlen, "cannot chown %s: %s", path,
		    strerror(errno));
		goto out;
	}
	if ((st.st_mode & 07777) != mode) {
		if (fchmod(fd, mode) == -1) {
			snprintf(err, errlen, "cannot chmod %04o %s: %s",
			    (unsigned int)mode, path, strerror(errno));
			goto out;
		}
		log_info("directory %s mode changed from %04o to %04o", path,
		    (unsigned int)(st.st_mode & 07777), (unsigned int)mode);
	}
	rc = 0;
out:
	if (fd != -1)
		close(fd);
	return rc;
}

/*
 * Children reopen the log file on USR1 after dropping privileges, so the
 * file the master (root) opened, and may just have created, must be the
 * user's [nginx ngx_reopen_files].
 */
static void
master_log_owner(const struct config *cfg)
{
	uid_t	uid;
	gid_t	gid;

	if (geteuid() != 0 || log_fd() == STDERR_FILENO)
		return;
	proc_user_ids(cfg, &uid, &gid);
	if (uid != (uid_t)-1 && fchown(log_fd(), uid, (gid_t)-1) == -1)
		log_warn("cannot give the log file to user %s", cfg->c_user);
}

/* What "loop_budget auto" came to, and why (wsgate.conf(5)). */
static void
log_loop_budget(const struct config *cfg)
{
	if (!cfg->c_loop_budget_auto)
		return;
	if (cfg->c_cpu_quota > 0)
		log_info("loop_budget auto=%u cpu_quota=%.2f workers=%d "
		    "cgroup=%s", cfg->c_loop_budget, cfg->c_cpu_quota,
		    cfg->c_workers, cfg->c_cpu_quota_cgroup);
	else
		log_info("loop_budget auto=%u cpu_quota=none",
		    cfg->c_loop_budget);
}

/* The SOCK_SEQPACKET socket dbwriters accept worker connections on. */
static int
master_open_ipc(const struct config *cfg, char *err, size_t errlen)
{
	struct sockaddr_un	sun;
	uid_t			uid;
	gid_t			gid;
	mode_t			mask;
	int			fd, rc;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if ((size_t)snprintf(sun.sun_path, sizeof(sun.sun_path),
	    "%s/dbwriter.sock", cfg->c_runtime_dir) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "runtime_dir too long for a socket: %s",
		    cfg->c_runtime_dir);
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	/* A stale socket from a crashed run; the pidfile check came first. */
	unlink(sun.sun_path);
	/* 0600 from the start: nobody else may connect, even for a moment. */
	mask = umask(0177);
	rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(mask);
	if (rc == -1 || chmod(sun.sun_path, 0600) == -1 ||
	    listen(fd, 1024) == -1) {
		snprintf(err, errlen, "cannot listen on %s: %s", sun.sun_path,
		    strerror(errno));
		close(fd);
		return -1;
	}
	proc_user_ids(cfg, &uid, &gid);
	if (geteuid() == 0 && uid != (uid_t)-1 &&
	    chown(sun.sun_path, uid, gid) == -1) {
		snprintf(err, errlen, "cannot chown %s: %s", sun.sun_path,
		    strerror(errno));
		close(fd);
		return -1;
	}
	m.ipc_fd = fd;
	strlcpy(m.ipc_path, sun.sun_path, sizeof(m.ipc_path));
	return 0;
}

/* Refuse to start when the pidfile names a live process. */
static int
master_pidfile_check(const char *path, char *err, size_t errlen)
{
	char	buf[32];
	ssize_t	n;
	long	pid;
	int	fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	pid = strtol(buf, NULL, 10);
	if (pid > 0 && pid != getpid() &&
	    (kill((pid_t)pid, 0) == 0 || errno == EPERM)) {
		snprintf(err, errlen, "already running: pid %ld in %s", pid,
		    path);
		return -1;
	}
	return 0;
}

static int
master_pidfile_write(const char *path, char *err, size_t errlen)
{
	char	buf[32];
	int	fd, n;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd == -1) {
		snprintf(err, errlen, "cannot write pidfile %s: %s", path,
		    strerror(errno));
		return -1;
	}
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (write(fd, buf, n) != n) {
		snprintf(err, errlen, "cannot write pidfile %s: %s", path,
		    strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	m.pidfile = xstrdup(path);
	return 0;
}

/* Remove the pidfile only while it still names us. */
static void
master_pidfile_remove(void)
{
	char	buf[32];
	ssize_t	n;
	int	fd;

	if (m.pidfile == NULL)
		return;
	if ((fd = open(m.pidfile, O_RDONLY | O_CLOEXEC)) != -1) {
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n > 0) {
			buf[n] = '\0';
			if (strtol(buf, NULL, 10) == (long)getpid())
				unlink(m.pidfile);
		}
	}
	free(m.pidfile);
	m.pidfile = NULL;
}

/*
 * Fork into the background.  The parent waits on a pipe until the daemon
 * reports that it is running (or why it failed) so `wsgate -d` exits 0
 * only for a daemon that is up.  Returns in the daemon with *notify_fd
 * set; the parent exits.
 */
static int
master_daemonize(int *notify_fd)
{
	int	p[2];
	pid_t	pid;
	char	c = '1';

	if (pipe2(p, O_CLOEXEC) == -1)
		return -1;
	if ((pid = fork()) == -1)
		return -1;
	if (pid > 0) {
		close(p[1]);
		while (read(p[0], &c, 1) == -1 && errno == EINTR)
			;
		_exit(c == '0' ? 0 : 1);
	}
	close(p[0]);
	if (setsid() == -1)
		return -1;
	if (chdir("/") == -1)
		return -1;
	*notify_fd = p[1];
	return 0;
}

static void
master_detach_stdio(void)
{
	int	fd;

	if ((fd = open("/dev/null", O_RDWR)) == -1)
		return;
	dup2(fd, STDIN_FILENO);
	dup2(fd, STDOUT_FILENO);
	if (log_fd() != STDERR_FILENO)
		dup2(fd, STDERR_FILENO);
	if (fd > STDERR_FILENO)
		close(fd);
}

/* ---- Generations and children ---- */

static struct generation *
gen_new(struct config *cfg, struct listen_set *ls, SSL_CTX *ssl_ctx)
{
	struct generation	*g;

	g = xcalloc(1, sizeof(*g));
	g->g_id = ++m.next_gen;
	g->g_cfg = cfg;
	g->g_listeners = ls;
	g->g_ssl_ctx = ssl_ctx;
	g->g_next = m.gens;
	m.gens = g;
	return g;
}

/*
 * A generation being replaced or stopped: its children drain on their
 * own; the master keeps only what it needs to kill stragglers.
 */
static void
gen_retire(struct generation *g)
{
	uint64_t	timeout = g->g_cfg->c_shutdown_timeout;

	g->g_kill_at = now_ms() + timeout + KILL_GRACE_MS;
	config_free(g->g_cfg);
	g->g_cfg = NULL;
	listen_set_free(g->g_listeners);
	g->g_listeners = NULL;
	tls_ctx_free(g->g_ssl_ctx);
	g->g_ssl_ctx = NULL;
}

/* Free retired generations whose children are all gone. */
static void
gen_reap(void)
{
	struct generation	**gp = &m.gens, *g;

	while ((g = *gp) != NULL) {
		if (g != m.cur && g->g_nchildren == 0) {
			*gp = g->g_next;
			free(g);
		} else
			gp = &g->g_next;
	}
}

static int
slot_free(enum proc_role role, int slot)
{
	size_t	i;

	for (i = 0; i < MAX_CHILDREN; i++)
		if (m.children[i].ch_used && m.children[i].ch_role == role &&
		    m.children[i].ch_slot == slot)
			return 0;
	return 1;
}

/* A new child entry in the lowest slot of its role that nobody holds. */
static struct child *
child_alloc(enum proc_role role, struct generation *g, int slot)
{
	size_t	i;

	if (slot < 0)
		for (slot = 0; !slot_free(role, slot); slot++)
			;
	for (i = 0; i < MAX_CHILDREN; i++) {
		struct child *ch = &m.children[i];
		if (ch->ch_used)
			continue;
		memset(ch, 0, sizeof(*ch));
		ch->ch_used = 1;
		ch->ch_role = role;
		ch->ch_slot = slot;
		ch->ch_gen = g;
		g->g_nchildren++;
		return ch;
	}
	fatalx("more than %d children", MAX_CHILDREN);
}

/*
 * The ring of a worker slot: created on the slot's first use, kept for
 * the master's life so that records outlive any worker, and handed to
 * every worker that takes the slot.
 */
static int
slot_ring(int slot, const struct config *cfg)
{
	size_t	size;
	void	*mem;

	if (m.rings[slot].mem != NULL)
		return 0;
	size = ring_region_size(cfg->c_ring_size);
	mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		log_warn("cannot map the ring of slot %d size=%zu", slot, size);
		return -1;
	}
	if (ring_init(mem, size) == NULL) {
		munmap(mem, size);
		log_warnx("cannot initialise the ring of slot %d", slot);
		return -1;
	}
	m.rings[slot].mem = mem;
	m.rings[slot].size = size;
	return 0;
}

static enum stats_role
child_stats_role(const struct child *ch)
{
	return ch->ch_role == ROLE_WORKER ? STATS_WORKER : STATS_DBWRITER;
}

static void
child_start(struct child *ch)
{
	struct proc_spawn	ps;
	pid_t			pid;

	memset(&ps, 0, sizeof(ps));
	ps.ps_role = ch->ch_role;
	ps.ps_slot = ch->ch_slot;
	ps.ps_generation = ch->ch_gen->g_id;
	ps.ps_cfg = ch->ch_gen->g_cfg;
	ps.ps_listeners = ch->ch_gen->g_listeners;
	ps.ps_ssl_ctx = ch->ch_gen->g_ssl_ctx;
	ps.ps_ipc_fd = m.ipc_fd;
	ps.ps_ipc_path = m.ipc_path;
	ch->ch_respawn_at = 0;
	if (ch->ch_role == ROLE_WORKER) {
		if (slot_ring(ch->ch_slot, ch->ch_gen->g_cfg) == -1) {
			ch->ch_fails++;
			ch->ch_respawn_at = now_ms() + RESPAWN_BACKOFF_MAX_MS;
			return;
		}
		ps.ps_ring = m.rings[ch->ch_slot].mem;
		ps.ps_ring_size = m.rings[ch->ch_slot].size;
	}
	stats_slot_begin(child_stats_role(ch), ch->ch_slot);
	if ((pid = proc_spawn(&ps)) == -1) {
		log_warn("fork failed role=%s slot=%d",
		    proc_role_name(ch->ch_role), ch->ch_slot);
		ch->ch_fails++;
		ch->ch_respawn_at = now_ms() + RESPAWN_BACKOFF_MAX_MS;
		return;
	}
	ch->ch_pid = pid;
	ch->ch_started = now_ms();
	log_info("started pid=%ld role=%s slot=%d generation=%u", (long)pid,
	    proc_role_name(ch->ch_role), ch->ch_slot, ch->ch_gen->g_id);
}

static void
start_generation(struct generation *g)
{
	int	i;

	for (i = 0; i < g->g_cfg->c_dbwriters; i++)
		child_start(child_alloc(ROLE_DBWRITER, g, -1));
	for (i = 0; i < g->g_cfg->c_workers; i++)
		child_start(child_alloc(ROLE_WORKER, g, -1));
}

static void
signal_children(struct generation *g, int sig)
{
	size_t	i;

	for (i = 0; i < MAX_CHILDREN; i++) {
		struct child *ch = &m.children[i];
		if (!ch->ch_used || (g != NULL && ch->ch_gen != g))
			continue;
		if (ch->ch_pid > 0)
			kill(ch->ch_pid, sig);
		else if (sig != SIGUSR1) {
			/* A pending respawn of a stopping generation. */
			ch->ch_used = 0;
			ch->ch_gen->g_nchildren--;
		}
	}
}

static int
live_children(void)
{
	size_t	i;
	int	n = 0;

	for (i = 0; i < MAX_CHILDREN; i++)
		if (m.children[i].ch_used && m.children[i].ch_pid > 0)
			n++;
	return n;
}

/*
 * A child is gone.  Children of the current generation are replaced,
 * after a growing delay when they keep dying right after start; those
 * of an older generation were draining and are simply forgotten.
 */
static void
child_exited(struct child *ch, int status)
{
	char		 how[64];
	uint64_t	 now = now_ms(), delay;
	int		 clean;

	if (WIFSIGNALED(status))
		snprintf(how, sizeof(how), "signal=%s%s",
		    signame(WTERMSIG(status)), WCOREDUMP(status) ?
		    " core=yes" : "");
	else
		snprintf(how, sizeof(how), "status=%d", WEXITSTATUS(status));
	clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	/* Its stats slot is ours until the next child takes it. */
	stats_slot_end(child_stats_role(ch), ch->ch_slot);

	if (ch->ch_gen != m.cur || m.stopping) {
		if (clean)
			log_info("child exited pid=%ld role=%s slot=%d "
			    "generation=%u %s", (long)ch->ch_pid,
			    proc_role_name(ch->ch_role), ch->ch_slot,
			    ch->ch_gen->g_id, how);
		else
			log_warnx("child exited pid=%ld role=%s slot=%d "
			    "generation=%u %s", (long)ch->ch_pid,
			    proc_role_name(ch->ch_role), ch->ch_slot,
			    ch->ch_gen->g_id, how);
		ch->ch_used = 0;
		ch->ch_gen->g_nchildren--;
		return;
	}

	if (now - ch->ch_started < RESPAWN_QUICK_MS) {
		ch->ch_fails++;
		delay = RESPAWN_BACKOFF_MIN_MS << (ch->ch_fails < 8 ?
		    ch->ch_fails - 1 : 7);
		if (delay > RESPAWN_BACKOFF_MAX_MS)
			delay = RESPAWN_BACKOFF_MAX_MS;
	} else {
		ch->ch_fails = 0;
		delay = 0;
	}
	log_warnx("child exited pid=%ld role=%s slot=%d generation=%u %s "
	    "respawn_in=%llums", (long)ch->ch_pid, proc_role_name(ch->ch_role),
	    ch->ch_slot, ch->ch_gen->g_id, how, (unsigned long long)delay);
	ch->ch_pid = 0;
	stats_count_restart();
	if (delay == 0)
		child_start(ch);
	else
		ch->ch_respawn_at = now + delay;
}

static void
reap_children(void)
{
	pid_t	pid;
	int	status;
	size_t	i;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (i = 0; i < MAX_CHILDREN; i++) {
			struct child *ch = &m.children[i];
			if (ch->ch_used && ch->ch_pid == pid) {
				child_exited(ch, status);
				break;
			}
		}
	}
	gen_reap();
}

static void
run_timers(void)
{
	uint64_t		 now = now_ms();
	struct generation	*g;
	size_t			 i;

	for (i = 0; i < MAX_CHILDREN; i++) {
		struct child *ch = &m.children[i];
		if (ch->ch_used && ch->ch_pid == 0 && ch->ch_respawn_at != 0 &&
		    ch->ch_respawn_at <= now)
			child_start(ch);
	}
	for (g = m.gens; g != NULL; g = g->g_next) {
		if (g->g_kill_at == 0 || g->g_kill_at > now)
			continue;
		g->g_kill_at = 0;
		for (i = 0; i < MAX_CHILDREN; i++) {
			struct child *ch = &m.children[i];
			if (ch->ch_used && ch->ch_gen == g && ch->ch_pid > 0) {
				log_warnx("drain timed out, killing pid=%ld "
				    "role=%s generation=%u", (long)ch->ch_pid,
				    proc_role_name(ch->ch_role), g->g_id);
				kill(ch->ch_pid, SIGKILL);
			}
		}
	}
	if (m.stopping && m.stop_deadline != 0 && m.stop_deadline <= now) {
		m.stop_deadline = 0;
		for (i = 0; i < MAX_CHILDREN; i++) {
			struct child *ch = &m.children[i];
			if (ch->ch_used && ch->ch_pid > 0) {
				log_warnx("shutdown timed out, killing pid=%ld "
				    "role=%s", (long)ch->ch_pid,
				    proc_role_name(ch->ch_role));
				kill(ch->ch_pid, SIGKILL);
			}
		}
	}
	sdnotify_watchdog(now);
}

/* Milliseconds until the next timer, or 0 for "none". */
static uint64_t
next_timer(void)
{
	struct generation	*g;
	uint64_t		 t = 0;
	size_t			 i;

#define CONSIDER(x) do { if ((x) != 0 && (t == 0 || (x) < t)) t = (x); } while (0)
	for (i = 0; i < MAX_CHILDREN; i++)
		if (m.children[i].ch_used && m.children[i].ch_pid == 0)
			CONSIDER(m.children[i].ch_respawn_at);
	for (g = m.gens; g != NULL; g = g->g_next)
		CONSIDER(g->g_kill_at);
	if (m.stopping)
		CONSIDER(m.stop_deadline);
	CONSIDER(sdnotify_watchdog_next());
#undef CONSIDER
	return t;
}

/* ---- Signals ---- */

/* Reloading reports failure (-1) only to tell the service manager. */
static int
do_reload(void)
{
	struct config		*cfg;
	struct listen_set	*ls;
	struct generation	*old = m.cur, *g;
	SSL_CTX			*ssl_ctx;
	char			 err[1024];
	int			 tls_failed;

	log_info("reloading config=%s", m.opts->mo_config_path);
	if ((cfg = config_load(m.opts->mo_config_path, err,
	    sizeof(err))) == NULL) {
		log_errorx("reload failed: %s", err);
		stats_count_reload(0);
		return -1;
	}
	if (strcmp(cfg->c_runtime_dir, old->g_cfg->c_runtime_dir) != 0)
		log_warnx("runtime_dir changed: keeps %s until restart",
		    old->g_cfg->c_runtime_dir);
	ssl_ctx = tls_ctx_new(cfg, &tls_failed, err, sizeof(err));
	if (tls_failed || master_prepare_dirs(cfg, err, sizeof(err)) == -1 ||
	    (ls = listen_set_open(cfg, old->g_listeners, err,
	    sizeof(err))) == NULL) {
		log_errorx("reload failed: %s", err);
		tls_ctx_free(ssl_ctx);
		config_free(cfg);
		stats_count_reload(0);
		return -1;
	}
	if ((cfg->c_log_file == NULL) != (old->g_cfg->c_log_file == NULL) ||
	    (cfg->c_log_file != NULL &&
	    strcmp(cfg->c_log_file, old->g_cfg->c_log_file) != 0)) {
		if (log_open(cfg->c_log_file) == -1)
			log_warn("cannot open log file %s", cfg->c_log_file);
	} else if (log_reopen() == -1)
		log_warn("cannot reopen log file");
	log_set_level(cfg->c_log_level);
	master_log_owner(cfg);

	g = gen_new(cfg, ls, ssl_ctx);
	m.cur = g;
	start_generation(g);
	/* The new generation is up; the old one stops accepting and drains. */
	signal_children(old, SIGQUIT);
	gen_retire(old);
	gen_reap();
	log_info("reload complete generation=%u workers=%d dbwriters=%d",
	    g->g_id, cfg->c_workers, cfg->c_dbwriters);
	log_loop_budget(cfg);
	upstream_check_lookup(cfg);
	stats_count_reload(1);
	return 0;
}

static void
do_stop(int sig)
{
	uint64_t	timeout = m.cur->g_cfg->c_shutdown_timeout;

	log_info("shutting down signal=%s", signame(sig));
	if (m.stopping == SIGTERM || m.stopping == sig)
		return;
	m.stopping = sig == SIGQUIT ? SIGQUIT : SIGTERM;
	sdnotify_send("STOPPING=1\nSTATUS=Stopping (%s)", signame(sig));
	/* Children enforce shutdown_timeout; stragglers are killed after. */
	m.stop_deadline = now_ms() + timeout +
	    (m.stopping == SIGQUIT ? KILL_GRACE_MS : 0);
	signal_children(NULL, m.stopping);
}

/* READY=1: after start-up (where -d reports success) and every reload. */
static void
master_notify_ready(const char *what)
{
	const struct config	*cfg = m.cur->g_cfg;

	sdnotify_send("READY=1\nSTATUS=%s: generation %u, %d workers, "
	    "%d dbwriters", what, m.cur->g_id, cfg->c_workers,
	    cfg->c_dbwriters);
}

/* ---- Main loop ---- */

int
master_main(struct config *cfg, const struct master_opts *opts)
{
	struct listen_set	*ls;
	SSL_CTX			*ssl_ctx;
	struct rlimit		 rl;
	sigset_t		 set;
	siginfo_t		 info;
	struct timespec		 ts;
	const char		*pidfile;
	char			 err[1024];
	int			 notify = -1, sig, tls_failed;

	memset(&m, 0, sizeof(m));
	m.opts = opts;
	m.ipc_fd = -1;
	m.pid = getpid();
	log_init("master", cfg->c_log_level);
	if (log_open(cfg->c_log_file) == -1) {
		fprintf(stderr, "wsgate: cannot open log file %s: %s\n",
		    cfg->c_log_file, strerror(errno));
		return 1;
	}
	master_log_owner(cfg);

	/* Connections are descriptors: take all the kernel allows us. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			log_warn("cannot raise the open files limit");
	}

	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGQUIT);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	pidfile = opts->mo_pidfile != NULL ? opts->mo_pidfile : cfg->c_pidfile;
	ssl_ctx = tls_ctx_new(cfg, &tls_failed, err, sizeof(err));
	if (tls_failed || (pidfile != NULL &&
	    master_pidfile_check(pidfile, err, sizeof(err)) == -1) ||
	    master_prepare_dirs(cfg, err, sizeof(err)) == -1 ||
	    (ls = listen_set_open(cfg, NULL, err, sizeof(err))) == NULL ||
	    master_open_ipc(cfg, err, sizeof(err)) == -1) {
		fprintf(stderr, "wsgate: %s\n", err);
		if (log_fd() != STDERR_FILENO)
			log_errorx("%s", err);
		return 1;
	}
	/* Before any fork: every child, of every generation, shares it. */
	if (stats_init() == -1) {
		fprintf(stderr, "wsgate: cannot map the stats region: %s\n",
		    strerror(errno));
		return 1;
	}
	if (opts->mo_daemonize) {
		if (master_daemonize(&notify) == -1)
			fatal("daemonize");
		m.pid = getpid();
		log_init("master", cfg->c_log_level);
	}
	if (pidfile != NULL &&
	    master_pidfile_write(pidfile, err, sizeof(err)) == -1) {
		if (notify != -1) {
			(void)!write(STDERR_FILENO, "wsgate: ", 8);
			(void)!write(STDERR_FILENO, err, strlen(err));
			(void)!write(STDERR_FILENO, "\n", 1);
		}
		log_errorx("%s", err);
		return 1;
	}
	if (notify != -1) {
		master_detach_stdio();
		(void)!write(notify, "0", 1);
		close(notify);
	}

	/* Here, past any fork of -d: children must not see $NOTIFY_SOCKET. */
	sdnotify_init();

	log_info("wsgate %s starting config=%s", PACKAGE_VERSION,
	    opts->mo_config_path);
	log_loop_budget(cfg);
	upstream_check_lookup(cfg);
	m.cur = gen_new(cfg, ls, ssl_ctx);
	start_generation(m.cur);
	master_notify_ready("Serving");

	for (;;) {
		uint64_t t = next_timer(), now = now_ms();

		if (m.stopping && live_children() == 0)
			break;
		if (t != 0) {
			uint64_t d = t > now ? t - now : 0;
			ts.tv_sec = d / 1000;
			ts.tv_nsec = (d % 1000) * 1000000;
		} else {
			ts.tv_sec = 3600;
			ts.tv_nsec = 0;
		}
		sig = sigtimedwait(&set, &info, &ts);
		switch (sig) {
		case SIGHUP:
			if (m.stopping)
				log_warnx("reload ignored while stopping");
			else {
				sdnotify_reloading();
				master_notify_ready(do_reload() == 0 ?
				    "Serving" : "Reload failed, serving");
			}
			break;
		case SIGTERM:
		case SIGINT:
		case SIGQUIT:
			do_stop(sig);
			break;
		case SIGUSR1:
			log_info("reopening log files");
			if (log_reopen() == -1)
				log_warn("cannot reopen log file");
			else
				log_info("reopened log files");
			master_log_owner(m.cur->g_cfg);
			signal_children(NULL, SIGUSR1);
			break;
		case SIGCHLD:
		case -1:
			break;
		}
		reap_children();
		run_timers();
	}

	if (m.ipc_path[0] != '\0')
		unlink(m.ipc_path);
	master_pidfile_remove();
	log_info("exiting");
	listen_set_free(m.cur->g_listeners);
	tls_ctx_free(m.cur->g_ssl_ctx);
	config_free(m.cur->g_cfg);
	while (m.gens != NULL) {
		struct generation *g = m.gens;
		m.gens = g->g_next;
		free(g);
	}
	return 0;
}
