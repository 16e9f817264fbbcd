/*
 * wsgate: command line, configuration test, hand-over to the master.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "master/depcheck.h"
#include "master/master.h"
#include "tls.h"
#include "worker/upstream.h"

static void	usage(FILE *);

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: wsgate [-dhtTV] [-c file] [-p pidfile]\n"
	    "  -c file     configuration file (default %s)\n"
	    "  -d          run in the background\n"
	    "  -h          show this help\n"
	    "  -p pidfile  write the master's pid to pidfile\n"
	    "  -t          test the configuration and exit\n"
	    "  -T          like -t, then check that Redis, the upstream and\n"
	    "              PostgreSQL are reachable\n"
	    "  -V          show the version and exit\n",
	    CONFIG_DEFAULT_PATH);
}

int
main(int argc, char *argv[])
{
	struct master_opts	 opts;
	struct config		*cfg;
	char			 err[1024], cwd[4096], abspath[8192];
	int			 ch, test = 0, deps = 0;

	memset(&opts, 0, sizeof(opts));
	opts.mo_config_path = CONFIG_DEFAULT_PATH;
	while ((ch = getopt(argc, argv, "c:dhp:tTV")) != -1) {
		switch (ch) {
		case 'c':
			opts.mo_config_path = optarg;
			break;
		case 'd':
			opts.mo_daemonize = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'p':
			if (optarg[0] != '/') {
				fprintf(stderr, "wsgate: pidfile must be an "
				    "absolute path: %s\n", optarg);
				return 1;
			}
			opts.mo_pidfile = optarg;
			break;
		case 't':
			test = 1;
			break;
		case 'T':
			test = deps = 1;
			break;
		case 'V':
			printf("wsgate %s\n", PACKAGE_VERSION);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 1;
	}
	/* Reloads re-read the file after -d has changed to "/". */
	if (opts.mo_config_path[0] != '/' &&
	    getcwd(cwd, sizeof(cwd)) != NULL &&
	    (size_t)snprintf(abspath, sizeof(abspath), "%s/%s", cwd,
	    opts.mo_config_path) < sizeof(abspath) && !test)
		opts.mo_config_path = abspath;

	if ((cfg = config_load(opts.mo_config_path, err, sizeof(err))) == NULL) {
		fprintf(stderr, "wsgate: %s\n", err);
		if (test)
			fprintf(stderr, "wsgate: configuration file %s test "
			    "failed\n", opts.mo_config_path);
		return 1;
	}
	if (test) {
		int	 tls_failed;
		SSL_CTX	*ctx = tls_ctx_new(cfg, &tls_failed, err, sizeof(err));

		tls_ctx_free(ctx);
		if (tls_failed) {
			fprintf(stderr, "wsgate: %s: %s\n",
			    opts.mo_config_path, err);
			fprintf(stderr, "wsgate: configuration file %s test "
			    "failed\n", opts.mo_config_path);
			config_free(cfg);
			return 1;
		}
		upstream_check_lookup(cfg);	/* a warning, not a failure */
		fprintf(stderr, "wsgate: configuration file %s test is "
		    "successful\n", opts.mo_config_path);
		if (deps && depcheck_run(cfg, stdout) > 0) {
			fprintf(stderr, "wsgate: dependency check failed\n");
			config_free(cfg);
			return 1;
		}
		config_free(cfg);
		return 0;
	}
	return master_main(cfg, &opts);
}
