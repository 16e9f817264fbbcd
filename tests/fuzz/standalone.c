/*
 * Driver for the fuzz targets when libFuzzer is not linked in: replays
 * the seed corpus, then deterministic mutations of it and random inputs,
 * and reports TAP.  A crash or abort() is a failed test.
 *
 *	tests/fuzz/http-fuzzer		corpus from
 *	    $WSGATE_SRCDIR/tests/fuzz/corpus/http/ (WSGATE_SRCDIR default .)
 *	tests/fuzz/http-fuzzer FILE...	run just these inputs
 */
#include "autoconf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FUZZ_RUNS	20000
#define FUZZ_MAX_SEED	(64 * 1024)	/* corpus files are cut to this */
#define FUZZ_MAX_INPUT	(FUZZ_MAX_SEED + 1024)
#define FUZZ_MAX_FILES	256

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

struct seed {
	uint8_t	*s_data;
	size_t	 s_len;
};

static struct seed	seeds[FUZZ_MAX_FILES];
static size_t		nseeds;
static uint64_t		rng = 0x2545f4914f6cdd1dULL;

/* The input being run, for crash_cb. */
static const uint8_t	*crash_data;
static size_t		 crash_len;
static char		 crash_path[128];

static uint64_t	fuzz_rand(void);
static void	crash_cb(int);
static void	run_one(const uint8_t *, size_t);
static int	load_file(const char *);
static int	load_corpus(const char *, char *, size_t);
static size_t	mutate(uint8_t *, size_t);
static void	fuzzer_name(const char *, char *, size_t);

static uint64_t
fuzz_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/*
 * On abort() (also how ASan ends with abort_on_error=1), save the input
 * to crash_path for replaying with "FUZZER FILE".  Only async-signal-safe
 * calls.
 */
static void
crash_cb(int sig)
{
	static const char	 msg[] = "# input that crashed saved to ";
	ssize_t			 n;
	int			 fd;

	fd = open(crash_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd != -1) {
		n = write(fd, crash_data, crash_len);
		close(fd);
		n = write(STDOUT_FILENO, msg, sizeof(msg) - 1);
		n = write(STDOUT_FILENO, crash_path, strlen(crash_path));
		n = write(STDOUT_FILENO, "\n", 1);
		(void)n;
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

/* In a buffer of exactly the input's size, so ASan sees any over-read. */
static void
run_one(const uint8_t *data, size_t len)
{
	uint8_t	*copy;

	if ((copy = malloc(len == 0 ? 1 : len)) == NULL) {
		perror("malloc");
		exit(1);
	}
	if (len > 0)
		memcpy(copy, data, len);
	crash_data = copy;
	crash_len = len;
	LLVMFuzzerTestOneInput(copy, len);
	free(copy);
}

/* Read a file into seeds[].  Returns 0, or -1 with a message printed. */
static int
load_file(const char *path)
{
	struct seed	*s;
	FILE		*fp;

	if (nseeds == FUZZ_MAX_FILES) {
		printf("# %s: more than %d corpus files\n", path,
		    FUZZ_MAX_FILES);
		return -1;
	}
	s = &seeds[nseeds];
	if ((fp = fopen(path, "rb")) == NULL) {
		printf("# %s: %s\n", path, strerror(errno));
		return -1;
	}
	if ((s->s_data = malloc(FUZZ_MAX_SEED)) == NULL) {
		perror("malloc");
		exit(1);
	}
	s->s_len = fread(s->s_data, 1, FUZZ_MAX_SEED, fp);
	if (ferror(fp)) {
		printf("# %s: read error\n", path);
		fclose(fp);
		free(s->s_data);
		return -1;
	}
	fclose(fp);
	nseeds++;
	return 0;
}

/* Every regular file of dir, in the order readdir gives. */
static int
load_corpus(const char *dir, char *path, size_t pathlen)
{
	struct dirent	*de;
	DIR		*d;
	int		 rc = 0;

	if ((d = opendir(dir)) == NULL) {
		printf("# %s: %s\n", dir, strerror(errno));
		return -1;
	}
	while (rc == 0 && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if ((size_t)snprintf(path, pathlen, "%s/%s", dir,
		    de->d_name) >= pathlen) {
			printf("# %s/%s: path too long\n", dir, de->d_name);
			rc = -1;
			break;
		}
		rc = load_file(path);
	}
	closedir(d);
	return rc;
}

/* Apply 1-8 random edits to buf[0..len), in place; returns the length. */
static size_t
mutate(uint8_t *buf, size_t len)
{
	static const uint8_t	 edge[] = { 0x00, '\r', '\n', ' ', '\t', ':',
	    ',', 0x7f, 0x80, 0xff };
	size_t			 edits = 1 + fuzz_rand() % 8, at, n;

	while (edits-- > 0) {
		at = len == 0 ? 0 : fuzz_rand() % len;
		switch (fuzz_rand() % 6) {
		case 0:		/* flip a bit */
			if (len > 0)
				buf[at] ^= (uint8_t)(1u << fuzz_rand() % 8);
			break;
		case 1:		/* set a byte, half the time an edge value */
			if (len > 0)
				buf[at] = fuzz_rand() % 2 ?
				    (uint8_t)fuzz_rand() :
				    edge[fuzz_rand() % sizeof(edge)];
			break;
		case 2:		/* insert random bytes */
			n = 1 + fuzz_rand() % 16;
			if (len + n > FUZZ_MAX_INPUT)
				break;
			memmove(buf + at + n, buf + at, len - at);
			len += n;
			while (n-- > 0)
				buf[at + n] = (uint8_t)fuzz_rand();
			break;
		case 3:		/* delete a range */
			n = len == 0 ? 0 : 1 + fuzz_rand() % (len - at);
			memmove(buf + at, buf + at + n, len - at - n);
			len -= n;
			break;
		case 4:		/* truncate */
			len = at;
			break;
		case 5:		/* repeat a range */
			n = len == 0 ? 0 : 1 + fuzz_rand() % (len - at);
			if (len + n > FUZZ_MAX_INPUT)
				break;
			memmove(buf + at + n, buf + at, len - at);
			len += n;
			break;
		}
	}
	return len;
}

/* "tests/fuzz/http-fuzzer" -> "http". */
static void
fuzzer_name(const char *argv0, char *name, size_t len)
{
	const char	*base = strrchr(argv0, '/');
	size_t		 n;

	base = base == NULL ? argv0 : base + 1;
	snprintf(name, len, "%s", base);
	n = strlen(name);
	if (n > 7 && strcmp(name + n - 7, "-fuzzer") == 0)
		name[n - 7] = '\0';
}

int
main(int argc, char *argv[])
{
	static uint8_t		 buf[FUZZ_MAX_INPUT];
	const struct seed	*s;
	const char		*srcdir;
	char			 name[64], dir[4096], path[4096 + 256];
	size_t			 i, k, len;
	int			 loaded;

	if (argc > 1) {
		for (i = 1; i < (size_t)argc; i++) {
			if (load_file(argv[i]) == -1)
				return 1;
			run_one(seeds[nseeds - 1].s_data,
			    seeds[nseeds - 1].s_len);
			printf("ok %zu - %s\n", i, argv[i]);
		}
		printf("1..%d\n", argc - 1);
		return 0;
	}

	fuzzer_name(argv[0], name, sizeof(name));
	snprintf(crash_path, sizeof(crash_path), "%s-fuzzer.crash", name);
	signal(SIGABRT, crash_cb);	/* not SIGSEGV: ASan reports those */
	if ((srcdir = getenv("WSGATE_SRCDIR")) == NULL || *srcdir == '\0')
		srcdir = ".";
	snprintf(dir, sizeof(dir), "%s/tests/fuzz/corpus/%s", srcdir, name);
	loaded = load_corpus(dir, path, sizeof(path)) == 0 && nseeds > 0;
	for (i = 0; i < nseeds; i++)
		run_one(seeds[i].s_data, seeds[i].s_len);
	printf("%sok 1 - corpus (%zu files)\n", loaded ? "" : "not ",
	    nseeds);
	fflush(stdout);

	for (i = 0; i < FUZZ_RUNS; i++) {
		if (nseeds > 0 && fuzz_rand() % 4 != 0) {
			s = &seeds[fuzz_rand() % nseeds];
			memcpy(buf, s->s_data, s->s_len);
			len = mutate(buf, s->s_len);
		} else {
			len = fuzz_rand() % 512;
			for (k = 0; k < len; k++)
				buf[k] = (uint8_t)fuzz_rand();
		}
		run_one(buf, len);
	}
	printf("ok 2 - %d random inputs\n", FUZZ_RUNS);
	printf("1..2\n");
	return loaded ? 0 : 1;
}
