/*
 * Configuration file: parsing, validation and the immutable config
 * generation every process runs with.  Keys and defaults are PROTOCOL.md
 * section 7; wsgate.conf(5) documents them.
 */
#ifndef WSGATE_CONFIG_H
#define WSGATE_CONFIG_H

#include <sys/types.h>
#include <sys/socket.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_DEFAULT_PATH	SYSCONFDIR "/wsgate/wsgate.conf"
#define CONFIG_MAX_LISTEN	32
#define CONFIG_MAX_WORKERS	256
#define CONFIG_LOOP_BUDGET_AUTO	64	/* loop_budget auto without a quota */
#define CONFIG_MAX_DBWRITERS	64
#define CONFIG_NICE_MIN		(-20)	/* worker_priority, as nice(1) */
#define CONFIG_NICE_MAX		19

enum config_missing {
	MISSING_CONFIG_NULL = 0,
	MISSING_CONFIG_REJECT
};

enum upstream_client {
	UPSTREAM_CLIENT_AUTO = 0,	/* built-in for http://, else libcurl */
	UPSTREAM_CLIENT_CURL
};

enum log_level {
	LOG_LEVEL_DEBUG = 0,
	LOG_LEVEL_INFO,
	LOG_LEVEL_WARN,
	LOG_LEVEL_ERROR
};

struct config_listen {
	struct sockaddr_storage	 l_addr;
	socklen_t		 l_addrlen;
	int			 l_ssl;
	char			*l_text;	/* as written, e.g. "[::1]:8080" */
};

/*
 * One parsed configuration.  Owns every string it points to; freed as a
 * whole by config_free().  Durations are milliseconds, sizes bytes.
 */
struct config {
	char			*c_path;

	struct config_listen	 c_listen[CONFIG_MAX_LISTEN];
	size_t			 c_nlisten;
	struct config_listen	 c_admin_listen;

	int			 c_workers;	/* resolved: "auto" = CPUs */
	int			 c_workers_auto;
	int			 c_dbwriters;
	int			 c_worker_priority;	/* nice(1) value */
	int			 c_worker_priority_set;	/* else inherited */

	char			*c_ws_path;
	char			*c_echo_path;	/* NULL = off */
	char			**c_allowed_origins;	/* NULL = any */
	size_t			 c_nallowed_origins;

	unsigned int		 c_max_connections;
	size_t			 c_max_message_size;
	unsigned int		 c_max_inflight_per_connection;
	uint64_t		 c_handshake_timeout;
	uint64_t		 c_idle_timeout;
	size_t			 c_max_output_buffer;
	unsigned int		 c_loop_budget;	/* units, 0 = none */
	int			 c_loop_budget_auto;
	double			 c_cpu_quota;	/* CPUs, 0 = none; for auto */
	char			 c_cpu_quota_cgroup[256];	/* sets it */

	char			*c_tls_certificate;
	char			*c_tls_certificate_key;

	char			*c_redis_host;
	int			 c_redis_port;
	char			*c_redis_socket;
	char			*c_redis_password;
	char			*c_redis_username;
	int			 c_redis_db;
	char			*c_redis_key_prefix;
	uint64_t		 c_redis_timeout;
	enum config_missing	 c_missing_config;
	uint64_t		 c_config_cache_ttl;	/* 0 = no cache */
	unsigned int		 c_config_cache_entries;

	char			*c_upstream_url;
	uint64_t		 c_upstream_timeout;
	unsigned int		 c_upstream_max_connections;
	enum upstream_client	 c_upstream_client;
	char			*c_upstream_ca_file;	/* NULL: the system's */
	int			 c_upstream_tls_verify;

	char			*c_pg_conninfo;
	char			*c_pg_table;
	int			 c_db_create_table;
	unsigned int		 c_db_batch_size;
	unsigned int		 c_db_connections;	/* per dbwriter */
	uint64_t		 c_db_flush_interval;
	size_t			 c_ring_size;
	char			*c_spool_dir;
	uint64_t		 c_spool_max_bytes;
	uint64_t		 c_db_spool_after;

	uint64_t		 c_shutdown_timeout;
	char			*c_user;
	char			*c_group;
	char			*c_pidfile;
	char			*c_log_file;	/* NULL = stderr */
	enum log_level		 c_log_level;
	char			*c_runtime_dir;
};

/*
 * Parse and validate the file at `path`.  Returns a new config, or NULL
 * with "path:line: reason" (or "path: reason" when no line applies) in
 * `err`.  Never exits.
 */
struct config	*config_load(const char *path, char *err, size_t errlen);

/* Same, reading from a buffer; `name` is used in messages.  For tests. */
struct config	*config_load_buffer(const char *name, const char *buf,
		    size_t len, char *err, size_t errlen);

/* NULL-safe. */
void		 config_free(struct config *);

/* Overwrite secrets (pg_conninfo) in place and free them. */
void		 config_wipe_pg(struct config *);

/* Value parsers, exposed for tests.  0 on success, -1 on bad syntax. */
int		 config_parse_duration(const char *, uint64_t *ms);
int		 config_parse_size(const char *, uint64_t *bytes);
int		 config_parse_addr(const char *, struct sockaddr_storage *,
		    socklen_t *);

const char	*config_log_level_name(enum log_level);

#endif /* WSGATE_CONFIG_H */
