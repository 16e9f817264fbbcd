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
 * Unit tests for dbwriter/spool.c: CRC32C vectors, round trips, rolling,
 * restarts, commit, the size bound, torn tails cut at every byte, damage
 * in the middle, stray files, adoption, the dead-letter file, write
 * errors, and random segment files that must never crash replay.  Then
 * the disk thread (spoolq.c: order, one sync for a burst, failures, the
 * loop running during a sync) and the store's acknowledgements while
 * PostgreSQL is down (store.c: only for records whose fdatasync has
 * returned, in seq order per peer).  fdatasync() is interposed for that.
 */
#include "autoconf.h"

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "tests/tap.h"
#include "config.h"
#include "log.h"
#include "record.h"
#include "dbwriter/spool.h"
#include "dbwriter/spoolq.h"
#include "dbwriter/store.h"
#include "util.h"

#define FRAME(n)	(SPOOL_HDR_LEN + (n))
#define MAX_IDS		4096

static char	top[] = "/tmp/test_spool.XXXXXX";
static char	logpath[64];
static char	*dirs[2048];	/* every new_dir(), freed at the end */
static int	ndirs;

static void	 rec_make(uint8_t *, uint32_t, size_t);
static int	 rec_is(const struct spool_rec *, uint32_t, size_t);
static long	 rec_id(const struct spool_rec *);
static const char *new_dir(void);
static void	 seg_path(char *, size_t, const char *, const char *,
		    uint64_t);
static int	 count_segs(const char *, const char *);
static uint8_t	*file_read(const char *, size_t *);
static void	 file_write(const char *, const void *, size_t);
static void	 log_clear(void);
static int	 log_has(const char *);
static int	 rm_cb(const char *, const struct stat *, int, struct FTW *);
static int	 append_ids(struct spool *, uint32_t, uint32_t, size_t);
static const char *make_spool(const char *, uint64_t, uint32_t,
		    const size_t *, size_t);
static uint8_t	*seg_read(const char *, const char *, uint64_t, size_t *);
static struct spool *open_replay(const char *, const char *, uint64_t,
		    uint32_t *, int *, struct spool_pos *);
static int	 replay_ids(struct spool *, uint32_t *, size_t,
		    struct spool_pos *);
static int	 ids_are(const uint32_t *, int, const uint32_t *, int);
static uint32_t	 rnd(void);

/* ---- Helpers ---- */

/*
 * Record `id` of `len` bytes: the id and the length (when there is room)
 * and a filler that depends on both, so any mix-up shows.
 */
static void
rec_make(uint8_t *p, uint32_t id, size_t len)
{
	uint32_t	l32 = (uint32_t)len;
	size_t		i;

	for (i = 0; i < len; i++)
		p[i] = (uint8_t)(id * 131 + i * 7 + (i >> 8) + (len >> 3));
	if (len >= 8) {
		memcpy(p, &id, 4);
		memcpy(p + 4, &l32, 4);
	}
}

static int
rec_is(const struct spool_rec *r, uint32_t id, size_t len)
{
	uint8_t	*want;
	int	 same;

	if (r->sr_len != len)
		return 0;
	want = malloc(len + 1);
	rec_make(want, id, len);
	same = memcmp(r->sr_data, want, len) == 0;
	free(want);
	return same;
}

/* The id of a record of 8 bytes or more, or -1 if it is not intact. */
static long
rec_id(const struct spool_rec *r)
{
	uint32_t	id;

	if (r->sr_len < 8)
		return -1;
	memcpy(&id, r->sr_data, 4);
	return rec_is(r, id, r->sr_len) ? (long)id : -1;
}

static const char *
new_dir(void)
{
	char	*dir;

	if (ndirs == (int)nitems(dirs)) {
		printf("Bail out! more than %zu directories\n", nitems(dirs));
		exit(2);
	}
	dir = dirs[ndirs] = malloc(128);
	snprintf(dir, 128, "%s/d%d", top, ndirs);
	ndirs++;
	return dir;
}

static void
seg_path(char *buf, size_t len, const char *dir, const char *name,
    uint64_t seq)
{
	snprintf(buf, len, "%s/%s/spool-%016llx.seg", dir, name,
	    (unsigned long long)seq);
}

static int
count_segs(const char *dir, const char *name)
{
	char		 path[256];
	DIR		*d;
	struct dirent	*de;
	int		 n = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((d = opendir(path)) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, "spool-", 6) == 0 &&
		    strlen(de->d_name) == 26)
			n++;
	closedir(d);
	return n;
}

static uint8_t *
file_read(const char *path, size_t *len)
{
	struct stat	 st;
	uint8_t		*p;
	FILE		*f;

	*len = 0;
	if ((f = fopen(path, "rb")) == NULL)
		return NULL;
	fstat(fileno(f), &st);
	p = malloc((size_t)st.st_size + 1);
	*len = fread(p, 1, (size_t)st.st_size, f);
	fclose(f);
	return p;
}

static void
file_write(const char *path, const void *p, size_t len)
{
	FILE	*f;

	if ((f = fopen(path, "wb")) == NULL) {
		diag("cannot write %s: %s", path, strerror(errno));
		return;
	}
	if (len > 0 && fwrite(p, 1, len, f) != len)
		diag("short write to %s", path);
	fclose(f);
}

static void
log_clear(void)
{
	if (truncate(logpath, 0) == -1)
		diag("truncate %s: %s", logpath, strerror(errno));
}

static int
log_has(const char *needle)
{
	uint8_t	*p;
	size_t	 len;
	int	 found;

	if ((p = file_read(logpath, &len)) == NULL)
		return 0;
	p[len] = '\0';
	found = strstr((char *)p, needle) != NULL;
	free(p);
	return found;
}

static int
rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

/* Append records first.. of `len` bytes; returns how many went in. */
static int
append_ids(struct spool *s, uint32_t first, uint32_t n, size_t len)
{
	uint8_t		*p = malloc(len + 1);
	uint32_t	 i;

	for (i = 0; i < n; i++) {
		rec_make(p, first + i, len);
		if (spool_append(s, p, len) != SPOOL_OK)
			break;
	}
	free(p);
	return (int)i;
}

/*
 * A closed spool `name` in a new directory, segments rolled at `segmax`,
 * holding records 0 to n - 1: record i of sizes[i] bytes, or of sizes[0]
 * when `nsizes` is 1.  Returns the directory.
 */
static const char *
make_spool(const char *name, uint64_t segmax, uint32_t n,
    const size_t *sizes, size_t nsizes)
{
	const char	*dir = new_dir();
	struct spool	*s;
	uint32_t	 i;

	s = spool_open(dir, name, 1 << 20, segmax);
	for (i = 0; i < n; i++)
		append_ids(s, i, 1, sizes[nsizes == 1 ? 0 : i]);
	if (spool_sync(s) != SPOOL_OK)
		diag("make_spool: sync failed");
	spool_close(s);
	return dir;
}

/* The bytes of segment `seq` (free them); NULL if it is missing. */
static uint8_t *
seg_read(const char *dir, const char *name, uint64_t seq, size_t *len)
{
	char	path[256];

	seg_path(path, sizeof(path), dir, name, seq);
	return file_read(path, len);
}

/*
 * Clear the log, open `name` in `dir` and replay it all: the ids go to
 * `ids`, their count (or -1) to `*n`.  Returns the open spool.
 */
static struct spool *
open_replay(const char *dir, const char *name, uint64_t segmax,
    uint32_t *ids, int *n, struct spool_pos *last)
{
	struct spool	*s;

	log_clear();
	if ((s = spool_open(dir, name, 1 << 20, segmax)) == NULL) {
		diag("spool_open %s/%s: %s", dir, name, strerror(errno));
		*n = -1;
		return NULL;
	}
	*n = replay_ids(s, ids, 16, last);
	return s;
}

/*
 * Replay until 0, collecting ids; `*last` gets the last sr_end.
 * Returns the count, or -1 if a record was not intact or replay failed.
 */
static int
replay_ids(struct spool *s, uint32_t *ids, size_t max,
    struct spool_pos *last)
{
	struct spool_rec	r;
	size_t			n = 0;
	long			id;
	int			rc;

	while ((rc = spool_replay_next(s, &r)) == 1) {
		if ((id = rec_id(&r)) < 0 || n == max)
			return -1;
		ids[n++] = (uint32_t)id;
		if (last != NULL)
			*last = r.sr_end;
	}
	return rc == 0 ? (int)n : -1;
}

static int
ids_are(const uint32_t *got, int ngot, const uint32_t *want, int nwant)
{
	int	i;

	if (ngot != nwant) {
		diag("got %d records, want %d", ngot, nwant);
		return 0;
	}
	for (i = 0; i < ngot; i++)
		if (got[i] != want[i]) {
			diag("record %d: id %u, want %u", i, got[i], want[i]);
			return 0;
		}
	return 1;
}

/* xorshift32: the same inputs on every run. */
static uint32_t
rnd(void)
{
	static uint32_t	x = 2463534242U;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return x;
}

/* ---- CRC32C and frames ---- */

static void
test_crc32c(void)
{
	static const uint8_t	iscsi_read[48] = {
		0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
		0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18,
		0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00
	};
	uint8_t		buf[4096 + 8];
	size_t		len, off;
	uint32_t	a, b;
	int		i, bad = 0;

	is_int(spool_crc32c(0, "123456789", 9), 0xe3069283,
	    "CRC32C(\"123456789\") = 0xE3069283");
	is_int(spool_crc32c_sw(0, "123456789", 9), 0xe3069283,
	    "table CRC32C(\"123456789\") = 0xE3069283");
	is_int(spool_crc32c(0, "", 0), 0, "CRC32C of nothing is 0");
	memset(buf, 0, 32);
	is_int(spool_crc32c(0, buf, 32), 0x8a9136aa, "RFC 3720: 32 zeros");
	memset(buf, 0xff, 32);
	is_int(spool_crc32c(0, buf, 32), 0x62a8ab43, "RFC 3720: 32 0xFF");
	for (i = 0; i < 32; i++)
		buf[i] = (uint8_t)i;
	is_int(spool_crc32c(0, buf, 32), 0x46dd794e,
	    "RFC 3720: 32 incrementing");
	for (i = 0; i < 32; i++)
		buf[i] = (uint8_t)(31 - i);
	is_int(spool_crc32c(0, buf, 32), 0x113fdb5c,
	    "RFC 3720: 32 decrementing");
	is_int(spool_crc32c(0, iscsi_read, sizeof(iscsi_read)), 0xd9963a56,
	    "RFC 3720: iSCSI read PDU");
	is_int(spool_crc32c(spool_crc32c(0, "12345", 5), "6789", 4),
	    0xe3069283, "CRC32C continues across calls");

	for (i = 0; i < (int)sizeof(buf); i++)
		buf[i] = (uint8_t)rnd();
	for (len = 0; len <= 600; len++)
		for (off = 0; off < 8; off++) {
			a = spool_crc32c(0, buf + off, len);
			b = spool_crc32c_sw(0, buf + off, len);
			if (a != b && bad++ == 0)
				diag("len %zu off %zu: %08x != %08x", len, off,
				    a, b);
		}
	is_int(bad, 0, "both implementations agree, lengths 0-600, "
	    "every alignment");
	is_int(spool_crc32c(0, buf, 4096), spool_crc32c_sw(0, buf, 4096),
	    "both agree on 4 KiB");
}

static void
test_frame_decode(void)
{
	static const size_t	 sizes[] = { 100, 100, 100, 0 };
	const char		*dir;
	uint8_t			*f, one[FRAME(100)];
	const void		*payload;
	size_t			 len, plen, off, n, cut;
	int			 nframes = 0, ok_all = 1, bad = 0;

	dir = make_spool("f", 0, 4, sizes, nitems(sizes));
	f = seg_read(dir, "f", 1, &len);
	is_int(len, 3 * FRAME(100) + FRAME(0), "segment holds 4 frames");
	for (off = 0; off < len; off += n, nframes++) {
		if ((n = spool_frame_decode(f + off, len - off, &payload,
		    &plen)) == 0)
			break;
		if (payload != f + off + SPOOL_HDR_LEN ||
		    plen != (nframes < 3 ? 100 : 0))
			ok_all = 0;
	}
	ok(nframes == 4 && off == len && ok_all,
	    "spool_frame_decode walks the segment");
	ok(memcmp(f, "WSP\001", 4) == 0, "frames start with the magic");

	memcpy(one, f, sizeof(one));
	for (cut = 0; cut < sizeof(one); cut++)
		if (spool_frame_decode(one, cut, &payload, &plen) != 0)
			bad++;
	is_int(bad, 0, "every truncated frame is rejected");
	for (cut = 0; cut < sizeof(one); cut++) {
		one[cut] ^= 0x20;
		if (spool_frame_decode(one, sizeof(one), &payload, &plen) != 0)
			bad++;
		one[cut] ^= 0x20;
	}
	is_int(bad, 0, "a frame with any byte flipped is rejected");
	is_int(spool_frame_decode(one, sizeof(one), &payload, &plen),
	    sizeof(one), "the intact frame decodes");
	free(f);
}

/* ---- Opening ---- */

static void
test_names(void)
{
	const char	*dir = new_dir();
	static const char *const bad[] = {
		"", ".", "..", ".hidden", "a/b", "a b", "x\n",
		("0123456789012345678901234567890123456789"
		"0123456789012345678901234")
	};
	struct spool	*s, *t;
	size_t		 i;
	int		 nbad = 0;

	for (i = 0; i < nitems(bad); i++) {
		errno = 0;
		if ((s = spool_open(dir, bad[i], 1 << 20, 0)) != NULL ||
		    errno != EINVAL) {
			diag("name \"%s\" accepted", bad[i]);
			nbad++;
		}
		spool_close(s);
	}
	is_int(nbad, 0, "bad names fail with EINVAL");
	s = spool_open(dir, "dbw-0_g1.x", 1 << 20, 0);
	ok(s != NULL, "a name of letters, digits, '.', '_' and '-' is fine");
	errno = 0;
	t = spool_open(dir, "dbw-0_g1.x", 1 << 20, 0);
	ok(t == NULL && errno == EWOULDBLOCK,
	    "a name in use fails with EWOULDBLOCK");
	spool_close(t);
	spool_close(s);
	s = spool_open(dir, "dbw-0_g1.x", 1 << 20, 0);
	ok(s != NULL, "closing releases the name");
	spool_close(s);
	ok(access(dir, F_OK) == 0, "spool_dir was created");
	errno = 0;
	s = spool_open("/nonexistent/deeper/spool", "a", 1 << 20, 0);
	ok(s == NULL && errno == ENOENT,
	    "a spool_dir whose parent is missing fails with ENOENT");
}

/* ---- Round trips ---- */

static void
test_round_trip(void)
{
	static const size_t	sizes[] = {
		0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 100, 1000, 4095, 4096,
		4097, 65535, 65536, 65537, 1048575, 1048576, 1048577,
		3 * 1048576 + 7, 5, 0, 12345
	};
	const char		*dir = new_dir();
	struct spool		*s;
	struct spool_stats	 st;
	struct spool_rec	 r;
	struct spool_pos	 last = { 0, 0 };
	uint8_t			*p;
	uint64_t		 total = 0;
	uint32_t		 id;
	char			 path[256];
	size_t			 i;
	int			 pass, good, rc;

	s = spool_open(dir, "rt", 64 << 20, 0);
	ok(s != NULL, "open a new spool");
	is_int(spool_sync(s), SPOOL_OK, "sync with nothing appended");
	is_int(count_segs(dir, "rt"), 0, "... creates no segment");
	r.sr_len = 1;
	is_int(spool_replay_next(s, &r), 0, "an empty spool replays nothing");

	p = malloc(4 << 20);
	for (i = 0; i < nitems(sizes); i++) {
		rec_make(p, (uint32_t)i, sizes[i]);
		if (spool_append(s, p, sizes[i]) != SPOOL_OK)
			break;
		total += FRAME(sizes[i]);
	}
	free(p);
	is_int(i, nitems(sizes), "append %zu records of 0 bytes to 3 MiB",
	    nitems(sizes));
	spool_stats(s, &st);
	ok(st.ss_pending == total && st.ss_bytes == total,
	    "appended bytes are pending and counted");
	is_int(count_segs(dir, "rt"), 0, "append alone writes nothing");
	is_int(spool_replay_next(s, &r), 0,
	    "unsynced records are not replayed");
	is_int(spool_sync(s), SPOOL_OK, "sync");
	spool_stats(s, &st);
	ok(st.ss_pending == 0 && st.ss_bytes == total &&
	    st.ss_segments == 1, "synced: %llu bytes in 1 segment",
	    (unsigned long long)total);

	for (pass = 0; pass < 2; pass++) {
		good = 0;
		for (i = 0; i < nitems(sizes); i++) {
			if (spool_replay_next(s, &r) != 1 ||
			    !rec_is(&r, (uint32_t)i, sizes[i]))
				break;
			good++;
			last = r.sr_end;
		}
		is_int(good, nitems(sizes), "%s: every record comes back "
		    "intact, in order", pass == 0 ? "replay" :
		    "after a restart");
		is_int(spool_replay_next(s, &r), 0, "then replay is done");
		if (pass == 0) {
			spool_close(s);
			s = spool_open(dir, "rt", 64 << 20, 0);
			ok(s != NULL, "reopen (a restart)");
		}
	}
	ok(last.sp_seg == 1 && last.sp_off == total,
	    "the last sr_end is the end of the segment");
	is_int(spool_commit(s, &last), 0, "commit everything");
	is_int(count_segs(dir, "rt"), 0, "the consumed segment is deleted");
	spool_stats(s, &st);
	ok(st.ss_bytes == 0 && st.ss_segments == 0, "the spool is empty");
	rc = append_ids(s, 500, 1, 64);
	is_int(spool_sync(s), SPOOL_OK, "append after a full commit");
	ok(rc == 1 && replay_ids(s, &id, 1, &last) == 1 && id == 500,
	    "... and replay it");
	seg_path(path, sizeof(path), dir, "rt", 2);
	ok(count_segs(dir, "rt") == 1 && access(path, F_OK) == 0,
	    "it went to a new segment, number 2");
	spool_commit(s, &last);
	spool_close(s);
	snprintf(path, sizeof(path), "%s/rt", dir);
	ok(access(path, F_OK) == -1,
	    "closing an empty spool removes its directory");
}

static void
test_rolling(void)
{
	const char		*dir = new_dir();
	struct spool		*s;
	struct spool_stats	 st;
	struct spool_pos	 pos = { 0, 0 }, last;
	struct spool_rec	 r;
	uint32_t		 got[MAX_IDS], want[MAX_IDS];
	int			 i, n, segs_before;

	/* 1016-byte frames: four fit a 4096-byte segment. */
	s = spool_open(dir, "roll", 1 << 20, 4096);
	is_int(append_ids(s, 0, 100, 1000), 100, "append 100 records");
	is_int(spool_sync(s), SPOOL_OK, "sync across segments");
	is_int(count_segs(dir, "roll"), 25, "25 segments of 4 records");
	append_ids(s, 100, 1, 10000);
	append_ids(s, 101, 1, 1000);
	spool_sync(s);
	is_int(count_segs(dir, "roll"), 27,
	    "a record larger than a segment gets one of its own");
	n = replay_ids(s, got, MAX_IDS, NULL);
	for (i = 0; i < 102; i++)
		want[i] = (uint32_t)i;
	ok(ids_are(got, n, want, 102), "replay crosses segments in order");

	spool_rewind(s);
	for (i = 0; i < 50; i++)
		if (spool_replay_next(s, &r) == 1)
			pos = r.sr_end;
	ok(pos.sp_seg == 13 && pos.sp_off == 2 * FRAME(1000),
	    "record 49 ends in segment 13, after 2 records");
	spool_stats(s, &st);
	segs_before = (int)st.ss_segments;
	is_int(spool_commit(s, &pos), 0, "commit up to record 49");
	is_int(count_segs(dir, "roll"), segs_before - 12,
	    "12 consumed segments are deleted");
	spool_stats(s, &st);
	is_int(st.ss_segments, segs_before - 12, "stats agree");
	spool_close(s);

	s = spool_open(dir, "roll", 1 << 20, 4096);
	n = replay_ids(s, got, MAX_IDS, &last);
	for (i = 0; i < 102 - 48; i++)
		want[i] = (uint32_t)(48 + i);
	ok(ids_are(got, n, want, 102 - 48), "after a restart replay resumes "
	    "at the partly committed segment (records 48-101)");
	spool_commit(s, &last);
	is_int(count_segs(dir, "roll"), 0, "committing the rest deletes all");
	spool_close(s);
}

static void
test_interleaved(void)
{
	const char		*dir = new_dir();
	struct spool		*s;
	struct spool_rec	 r;
	struct spool_pos	 pos = { 0, 0 };
	uint32_t		 got[MAX_IDS];
	int			 n, i, good = 1;

	s = spool_open(dir, "il", 1 << 20, 0);
	append_ids(s, 0, 10, 50);
	spool_sync(s);
	for (i = 0; i < 5; i++) {
		if (spool_replay_next(s, &r) != 1 || rec_id(&r) != i)
			good = 0;
		pos = r.sr_end;
	}
	ok(good, "replay 5 of 10 synced records");
	append_ids(s, 10, 10, 50);
	spool_sync(s);
	n = replay_ids(s, got, MAX_IDS, NULL);
	ok(n == 15 && got[0] == 5 && got[14] == 19,
	    "records appended meanwhile follow (5-19)");
	spool_rewind(s);
	ok(spool_replay_next(s, &r) == 1 && rec_id(&r) == 0,
	    "rewind without a commit starts over");
	spool_commit(s, &pos);
	spool_rewind(s);
	ok(spool_replay_next(s, &r) == 1 && rec_id(&r) == 5,
	    "rewind returns to the last commit");
	spool_rewind(s);
	n = replay_ids(s, got, MAX_IDS, &pos);
	spool_commit(s, &pos);
	ok(n == 15 && count_segs(dir, "il") == 0,
	    "a wholly committed current segment is deleted");

	append_ids(s, 20, 3, 50);
	spool_discard(s);
	spool_sync(s);
	is_int(count_segs(dir, "il"), 0, "spool_discard drops the buffer");
	append_ids(s, 30, 2, 50);
	spool_sync(s);
	n = replay_ids(s, got, MAX_IDS, &pos);
	ok(n == 2 && got[0] == 30 && got[1] == 31,
	    "appends continue in a new segment");
	spool_close(s);
}

static void
test_full(void)
{
	const char		*dir = new_dir();
	struct spool		*s;
	struct spool_stats	 st;
	struct spool_rec	 r;
	struct spool_pos	 pos = { 0, 0 };
	uint32_t		 got[MAX_IDS], want[MAX_IDS];
	uint8_t			 p[200];
	int			 n, i;

	/* Room for 10 frames of 100 bytes, 2 per segment. */
	s = spool_open(dir, "full", 10 * FRAME(100), 2 * FRAME(100));
	is_int(append_ids(s, 0, 6, 100), 6, "6 records buffered");
	rec_make(p, 99, 100);
	is_int(append_ids(s, 6, 10, 100), 4, "only 4 more fit max_bytes");
	is_int(spool_append(s, p, 100), SPOOL_FULL,
	    "the 11th gets SPOOL_FULL, buffered bytes counted");
	spool_stats(s, &st);
	is_int(st.ss_bytes, 10 * FRAME(100), "exactly max_bytes used");
	is_int(spool_sync(s), SPOOL_OK, "sync the 10");
	is_int(spool_append(s, p, 100), SPOOL_FULL, "still full after sync");
	is_int(spool_append(s, p, 0), SPOOL_FULL, "even for 0 bytes");
	errno = 0;
	ok(spool_append(s, p, 10 * FRAME(100)) == -1 && errno == EMSGSIZE,
	    "a record larger than max_bytes fails with EMSGSIZE");
	errno = 0;
	ok(spool_append(s, p, (size_t)SPOOL_MAX_RECORD + 1) == -1 &&
	    errno == EMSGSIZE, "a record over 256 MiB fails with EMSGSIZE");

	for (i = 0; i < 4; i++)
		if (spool_replay_next(s, &r) == 1)
			pos = r.sr_end;
	spool_commit(s, &pos);
	spool_stats(s, &st);
	is_int(st.ss_bytes, 6 * FRAME(100),
	    "committing 4 records frees their 2 segments");
	is_int(append_ids(s, 10, 10, 100), 4, "4 records fit again");
	is_int(spool_append(s, p, 100), SPOOL_FULL, "then full again");
	spool_sync(s);
	spool_rewind(s);
	n = replay_ids(s, got, MAX_IDS, &pos);
	for (i = 0; i < 10; i++)
		want[i] = (uint32_t)(i + 4);
	ok(ids_are(got, n, want, 10), "nothing accepted was lost (4-13)");
	spool_commit(s, &pos);
	is_int(append_ids(s, 20, 10, 100), 10, "empty again: 10 fit");
	spool_close(s);
}

/* ---- Damage ---- */

/* Put `len` bytes into a fresh spool directory as segment 1. */
static const char *
seg_dir(const char *name, const void *data, size_t len)
{
	const char	*dir = new_dir();
	char		 path[256];

	mkdir(dir, 0700);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	mkdir(path, 0700);
	seg_path(path, sizeof(path), dir, name, 1);
	file_write(path, data, len);
	return dir;
}

static void
test_torn_tail(void)
{
	static const size_t	 sizes[] = { 10, 200, 3000, 17, 150 };
	const char		*dir, *d;
	struct spool		*s;
	struct spool_stats	 st;
	uint32_t		 got[16], want[16] = { 0, 1, 2, 3, 99 };
	uint8_t			*orig, *copy;
	char			 msg[128];
	size_t			 len, last, cut;
	int			 n, nlog = 0, nrec = 0, nappend = 0;
	int			 nreopen = 0, nsize = 0;

	dir = make_spool("t", 0, 5, sizes, nitems(sizes));
	orig = seg_read(dir, "t", 1, &len);
	last = len - FRAME(sizes[4]);

	for (cut = last; cut < len; cut++) {
		d = seg_dir("t", orig, cut);
		log_clear();
		s = spool_open(d, "t", 1 << 20, 0);
		snprintf(msg, sizeof(msg), "skipped torn tail file=%s/t/"
		    "spool-0000000000000001.seg offset=%zu bytes=%zu", d, last,
		    cut - last);
		if (cut > last ? !log_has(msg) : log_has("skipped"))
			nlog++;
		spool_stats(s, &st);
		if (st.ss_bytes != last || st.ss_skipped != cut - last)
			nsize++;
		n = replay_ids(s, got, 16, NULL);
		if (!ids_are(got, n, want, 4))
			nrec++;
		append_ids(s, 99, 1, 40);
		if (spool_sync(s) != SPOOL_OK ||
		    replay_ids(s, got, 16, NULL) != 1 || got[0] != 99)
			nappend++;
		spool_close(s);
		s = open_replay(d, "t", 0, got, &n, NULL);
		if (!ids_are(got, n, want, 5) || log_has("skipped"))
			nreopen++;
		spool_close(s);
	}
	is_int(nlog, 0, "a tail cut at each of %zu offsets of the last "
	    "record is logged with file, offset and bytes", len - last);
	is_int(nsize, 0, "... and truncated");
	is_int(nrec, 0, "... every earlier record is replayed");
	is_int(nappend, 0, "... appends continue after them");
	is_int(nreopen, 0, "... and a reopen finds a clean segment");

	/* The length made it to disk but the payload did not. */
	copy = malloc(len);
	memcpy(copy, orig, len);
	memset(copy + len - 8, 0, 8);
	s = open_replay(seg_dir("t", copy, len), "t", 0, got, &n, NULL);
	ok(ids_are(got, n, want, 4) && log_has("skipped torn tail") &&
	    log_has("bytes=166"), "a whole-length last record with a bad CRC "
	    "is a torn tail");
	spool_close(s);

	/* A crash left zeros past the end (delayed allocation). */
	copy = realloc(copy, len + 4096);
	memcpy(copy, orig, len);
	memset(copy + len, 0, 4096);
	s = open_replay(seg_dir("t", copy, len + 4096), "t", 0, got, &n,
	    NULL);
	want[4] = 4;
	ok(ids_are(got, n, want, 5) && log_has("bytes=4096"),
	    "trailing zeros are cut, every record kept");
	spool_close(s);
	free(copy);
	free(orig);
}

/*
 * Ten 200-byte records in segment 1; record 4 is damaged and only it may
 * be lost.
 */
static void
test_corrupt_middle(void)
{
	static const size_t	 s200[] = { 200 };
	const char		*dir, *d;
	struct spool		*s;
	uint32_t		 got[16], want[16];
	uint8_t			*orig, *copy, *seg2 = NULL;
	char			 path[256], msg[192];
	size_t			 len, len2 = 0, off4 = 4 * FRAME(200), pos;
	int			 n, i, k, nbad = 0, ntried = 0, layout;

	for (layout = 0; layout < 2; layout++) {
		/*
		 * Layout 0: one segment, the newest (checked at open).
		 * Layout 1: an 11th record rolls into segment 2, so the
		 * damaged segment is sealed.
		 */
		dir = make_spool("c", 10 * FRAME(200), 10 + (uint32_t)layout,
		    s200, 1);
		orig = seg_read(dir, "c", 1, &len);
		if (layout == 1)
			seg2 = seg_read(dir, "c", 2, &len2);
		copy = malloc(len);

		for (k = 0; k < SPOOL_HDR_LEN + 4; k++) {
			pos = off4 + (size_t)(k < SPOOL_HDR_LEN ? k :
			    (k - SPOOL_HDR_LEN) * 66);
			memcpy(copy, orig, len);
			copy[pos] ^= 0x41;
			d = seg_dir("c", copy, len);
			if (layout == 1) {
				seg_path(path, sizeof(path), d, "c", 2);
				file_write(path, seg2, len2);
			}
			s = open_replay(d, "c", 10 * FRAME(200), got, &n,
			    NULL);
			for (i = 0; i < 10; i++)
				want[i] = (uint32_t)(i < 4 ? i : i + 1);
			want[9] = 10;
			snprintf(msg, sizeof(msg), "skipped damaged bytes "
			    "file=%s/c/spool-0000000000000001.seg offset=%zu "
			    "bytes=%zu", d, off4, (size_t)FRAME(200));
			ntried++;
			if (!ids_are(got, n, want, layout == 1 ? 10 : 9) ||
			    !log_has(msg)) {
				diag("layout %d, byte %zu flipped", layout,
				    pos);
				nbad++;
			}
			spool_close(s);
		}
		free(copy);
		free(orig);
		free(seg2);
	}
	is_int(nbad, 0, "a flipped byte in any header field or the payload "
	    "of a middle record: only that record is lost, logged (%d "
	    "cases)", ntried);

	/* Records 3-5 zeroed; 100 stray bytes between 7 and 8. */
	dir = make_spool("c", 0, 10, s200, 1);
	orig = seg_read(dir, "c", 1, &len);
	copy = malloc(len + 100);
	memcpy(copy, orig, len);
	memset(copy + 3 * FRAME(200), 0, 3 * FRAME(200));
	memmove(copy + 8 * FRAME(200) + 100, copy + 8 * FRAME(200),
	    2 * FRAME(200));
	for (i = 0; i < 100; i++)
		copy[8 * FRAME(200) + i] = (uint8_t)(i == 10 ? 'W' : rnd());
	s = open_replay(seg_dir("c", copy, len + 100), "c", 0, got, &n,
	    NULL);
	{
		const uint32_t	w[] = { 0, 1, 2, 6, 7, 8, 9 };

		ok(ids_are(got, n, w, 7), "three zeroed records are skipped, "
		    "stray bytes between records are skipped");
	}
	snprintf(msg, sizeof(msg), "offset=%zu bytes=%zu",
	    (size_t)3 * FRAME(200), (size_t)3 * FRAME(200));
	ok(log_has(msg), "the zeroed span is logged as one skip");
	snprintf(msg, sizeof(msg), "offset=%zu bytes=100",
	    (size_t)8 * FRAME(200));
	ok(log_has(msg), "the stray bytes are logged");
	spool_close(s);
	free(copy);
	free(orig);
}

/*
 * Segments 1-3 of two records each; 1 gets 50 stray bytes at its end,
 * 2 is zeroed, 3 is kept or removed.  Replay skips both; committing the
 * last record deletes every segment, damage included.
 */
static void
test_damaged_segments(void)
{
	static const size_t	 s100[] = { 100 };
	const char		*dir;
	struct spool		*s;
	struct spool_pos	 pos;
	uint32_t		 got[16];
	uint8_t			*f, junk[50];
	char			 path[256], msg[160];
	size_t			 len;
	int			 n, keep3;

	memset(junk, 0x5a, sizeof(junk));
	for (keep3 = 1; keep3 >= 0; keep3--) {
		dir = make_spool("ds", 2 * FRAME(100), 6, s100, 1);
		seg_path(path, sizeof(path), dir, "ds", 1);
		f = file_read(path, &len);
		f = realloc(f, len + sizeof(junk));
		memcpy(f + len, junk, sizeof(junk));
		file_write(path, f, len + sizeof(junk));
		memset(f, 0, len);
		seg_path(path, sizeof(path), dir, "ds", 2);
		file_write(path, f, len);
		free(f);
		if (!keep3) {
			seg_path(path, sizeof(path), dir, "ds", 3);
			unlink(path);
		}
		s = open_replay(dir, "ds", 2 * FRAME(100), got, &n, &pos);
		ok(n == 2 + 2 * keep3 && got[0] == 0 && got[1] == 1 &&
		    (!keep3 || (got[2] == 4 && got[3] == 5)),
		    "%s: records around damaged segments are replayed",
		    keep3 ? "3 segments" : "2 segments");
		snprintf(msg, sizeof(msg), "skipped torn tail file=%s/ds/"
		    "spool-0000000000000001.seg offset=%d bytes=50", dir,
		    2 * FRAME(100));
		ok(log_has(msg), "... the stray tail of a sealed segment is "
		    "logged");
		snprintf(msg, sizeof(msg), "spool-0000000000000002.seg "
		    "offset=0 bytes=%d", 2 * FRAME(100));
		ok(log_has(msg), "... so is the zeroed segment");
		is_int(count_segs(dir, "ds"), 1 + keep3,
		    "... which is deleted at once: it holds no record");
		spool_commit(s, &pos);
		is_int(count_segs(dir, "ds"), 0, "... committing the last "
		    "record deletes the rest, damage included");
		spool_close(s);
	}
}

static void
test_stray_files(void)
{
	static const size_t	 s64[] = { 64 };
	const char		*dir = make_spool("g", 0, 3, s64, 1);
	static const char *const stray[] = {
		"foo", "spool-zz.seg", "spool-0000000000000001.seg.tmp",
		"spool-00000000000000AB.seg", "SPOOL-0000000000000001.SEG",
		"spool-000000000000001.seg", "lock.old"
	};
	struct spool	*s;
	struct spool_pos pos;
	uint32_t	 got[16];
	uint8_t		 junk[300];
	char		 path[256], link[256];
	size_t		 i;
	int		 n, kept = 0;

	for (i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)rnd();
	for (i = 0; i < nitems(stray); i++) {
		snprintf(path, sizeof(path), "%s/g/%s", dir, stray[i]);
		file_write(path, junk, sizeof(junk));
	}
	snprintf(path, sizeof(path), "%s/g/spool-0000000000000007.seg", dir);
	mkdir(path, 0700);
	seg_path(path, sizeof(path), dir, "g", 1);
	seg_path(link, sizeof(link), dir, "g", 8);
	if (symlink(path, link) == -1)
		diag("symlink: %s", strerror(errno));

	s = spool_open(dir, "g", 1 << 20, 0);
	ok(s != NULL, "open with stray files, a directory and a symlink "
	    "named like segments");
	n = replay_ids(s, got, 16, &pos);
	ok(n == 3 && got[0] == 0 && got[2] == 2,
	    "only the real segment is replayed, once");
	spool_commit(s, &pos);
	spool_close(s);
	for (i = 0; i < nitems(stray); i++) {
		snprintf(path, sizeof(path), "%s/g/%s", dir, stray[i]);
		kept += access(path, F_OK) == 0;
	}
	is_int(kept, nitems(stray), "stray files are left alone");
}

static void
test_zero_length(void)
{
	static const size_t	 s20[] = { 20 };
	const char		*dir;
	struct spool		*s;
	struct spool_stats	 st;
	uint32_t		 got[16];
	char			 path[256];
	int			 n;

	dir = seg_dir("z", "", 0);
	s = spool_open(dir, "z", 1 << 20, 0);
	ok(s != NULL, "open a spool whose only segment is empty");
	spool_stats(s, &st);
	ok(replay_ids(s, got, 16, NULL) == 0 && st.ss_segments == 0,
	    "nothing to replay");
	seg_path(path, sizeof(path), dir, "z", 1);
	ok(access(path, F_OK) == -1, "the empty segment is deleted");
	append_ids(s, 1, 1, 20);
	ok(spool_sync(s) == SPOOL_OK && replay_ids(s, got, 16, NULL) == 1,
	    "appends work");
	spool_close(s);

	dir = make_spool("z", FRAME(20), 3, s20, 1);
	seg_path(path, sizeof(path), dir, "z", 2);
	if (truncate(path, 0) == -1)
		diag("truncate: %s", strerror(errno));
	s = open_replay(dir, "z", FRAME(20), got, &n, NULL);
	ok(n == 2 && got[0] == 0 && got[1] == 2,
	    "an empty segment between two others is passed over");
	spool_close(s);
}

/* ---- Random segment files ---- */

static void
test_fuzz(void)
{
	const char		*dir;
	struct spool		*s;
	struct spool_rec	 r;
	uint8_t			*valid, *buf;
	char			 path[256];
	size_t			 sizes[40], vlen, len, i, j;
	int			 iter, steps, nbad = 0, nopen = 0, nloop = 0;
	int			 kind;

	/* A valid segment to mutate. */
	for (i = 0; i < nitems(sizes); i++)
		sizes[i] = 8 + rnd() % 300;
	dir = make_spool("v", 0, nitems(sizes), sizes, nitems(sizes));
	valid = seg_read(dir, "v", 1, &vlen);
	buf = malloc(vlen + 65536);

	for (iter = 0; iter < 300; iter++) {
		kind = iter % 3;
		if (kind == 0) {
			/* Pure noise, with magics sprinkled in. */
			len = rnd() % 20000;
			for (i = 0; i < len; i++)
				buf[i] = (uint8_t)rnd();
			for (i = 0; len > 4 && i < 20; i++)
				memcpy(buf + rnd() % (len - 4), "WSP\001", 4);
		} else if (kind == 1) {
			/* A valid segment with bytes flipped and cut. */
			memcpy(buf, valid, vlen);
			len = vlen;
			for (i = 0, j = 1 + rnd() % 30; i < j; i++)
				buf[rnd() % len] ^= (uint8_t)(1 + rnd() % 255);
			if (rnd() % 2)
				len = rnd() % len;
		} else {
			/* Slices of valid frames and noise, interleaved. */
			for (len = 0; len < 30000;) {
				j = rnd() % 600;
				if (rnd() % 2) {
					i = rnd() % vlen;
					if (j > vlen - i)
						j = vlen - i;
					memcpy(buf + len, valid + i, j);
				} else {
					for (i = 0; i < j; i++)
						buf[len + i] = (uint8_t)rnd();
				}
				len += j;
			}
		}
		dir = seg_dir("f", buf, len);
		if (iter % 5 == 0) {
			/* A second, older segment of noise. */
			seg_path(path, sizeof(path), dir, "f", 0);
			file_write(path, buf + len / 2, len - len / 2);
		}
		if ((s = spool_open(dir, "f", 1 << 20, 0)) == NULL) {
			nopen++;
			continue;
		}
		for (steps = 0; steps < 100000; steps++) {
			if (spool_replay_next(s, &r) != 1)
				break;
			if (rec_id(&r) < 0)
				nbad++;
		}
		if (steps == 100000)
			nloop++;
		append_ids(s, 7, 1, 64);
		if (spool_sync(s) != SPOOL_OK ||
		    spool_replay_next(s, &r) != 1 || rec_id(&r) != 7)
			nbad++;
		spool_close(s);
	}
	is_int(nopen, 0, "300 random segment files open");
	is_int(nloop, 0, "... replay always ends");
	is_int(nbad, 0, "... yields only intact records, then appends work");

	for (iter = 0, nbad = 0; iter < 20000; iter++) {
		const void	*payload;
		size_t		 plen;

		len = rnd() % 64;
		for (i = 0; i < len; i++)
			buf[i] = (uint8_t)rnd();
		if (len >= 4 && rnd() % 2)
			memcpy(buf, "WSP\001", 4);
		if (spool_frame_decode(buf, len, &payload, &plen) != 0)
			nbad++;
	}
	is_int(nbad, 0, "spool_frame_decode rejects 20000 random buffers");
	free(buf);
	free(valid);
}

/* ---- Sharing spool_dir ---- */

static void
test_adopt(void)
{
	const char		*dir = new_dir();
	struct spool		*a, *b, *c;
	struct spool_stats	 st;
	struct spool_pos	 pos;
	uint32_t		 got[MAX_IDS], want[MAX_IDS];
	uint8_t			*f;
	char			 path[256];
	size_t			 len;
	int			 n, i;

	a = spool_open(dir, "dbw-old", 1 << 20, 2048);
	append_ids(a, 100, 10, 500);
	spool_sync(a);
	append_ids(a, 999, 1, 500);	/* never synced: never acked */
	spool_close(a);			/* the owner is gone */

	b = spool_open(dir, "dbw-new", 1 << 20, 2048);
	append_ids(b, 0, 3, 500);
	spool_sync(b);
	c = spool_open(dir, "dbw-live", 1 << 20, 2048);
	append_ids(c, 200, 2, 500);
	spool_sync(c);

	log_clear();
	n = spool_adopt(b);
	is_int(n, 4, "spool_adopt takes the 4 segments of the dead owner");
	ok(log_has("adopted segments") && log_has("count=4"),
	    "... and logs it");
	snprintf(path, sizeof(path), "%s/dbw-old", dir);
	ok(access(path, F_OK) == -1, "... and removes its directory");
	is_int(count_segs(dir, "dbw-live"), 1,
	    "a live owner's segments stay");
	append_ids(b, 3, 2, 500);
	spool_sync(b);
	n = replay_ids(b, got, MAX_IDS, &pos);
	for (i = 0; i < 3; i++)
		want[i] = (uint32_t)i;
	for (i = 0; i < 10; i++)
		want[3 + i] = (uint32_t)(100 + i);
	want[13] = 3;
	want[14] = 4;
	ok(ids_are(got, n, want, 15), "own records, then adopted ones, then "
	    "new appends, in order");
	spool_commit(b, &pos);
	is_int(count_segs(dir, "dbw-new"), 0, "committing deletes them all");
	is_int(spool_adopt(b), 0, "nothing more to adopt");
	spool_close(c);

	/* A directory without a lock file (copied by hand). */
	seg_path(path, sizeof(path), dir, "dbw-live", 1);
	f = file_read(path, &len);
	snprintf(path, sizeof(path), "%s/by-hand", dir);
	mkdir(path, 0700);
	seg_path(path, sizeof(path), dir, "by-hand", 0xabc);
	file_write(path, f, len);
	free(f);
	is_int(spool_adopt(b), 2, "segments without a lock file, and the "
	    "closed spool's, are adopted");
	snprintf(path, sizeof(path), "%s/by-hand", dir);
	ok(access(path, F_OK) == -1, "... the emptied directories removed");
	n = replay_ids(b, got, MAX_IDS, &pos);
	ok(n == 4 && got[0] == 200 && got[1] == 201 && got[2] == 200,
	    "... and replayed");
	spool_commit(b, &pos);

	/* max_bytes limits what is taken; an empty spool takes one. */
	c = spool_open(dir, "dbw-gone", 1 << 20, 2048);
	append_ids(c, 300, 2, 500);
	spool_sync(c);
	spool_close(c);

	spool_close(b);
	b = spool_open(dir, "dbw-new", 3 * FRAME(500), 2048);
	append_ids(b, 0, 1, 500);
	spool_sync(b);
	is_int(spool_adopt(b), 1, "a segment of 2 records fits beside 1");
	spool_stats(b, &st);
	is_int(st.ss_bytes, 3 * FRAME(500), "max_bytes is reached");
	spool_close(b);
	b = spool_open(dir, "dbw-x", FRAME(500), 2048);
	is_int(spool_adopt(b), 1, "an empty spool takes one segment even "
	    "over max_bytes");
	spool_close(b);
}

/* A dbwriter killed with SIGKILL: its name frees, its records survive. */
static void
test_killed_owner(void)
{
	const char	*dir = new_dir();
	struct spool	*s, *t;
	struct spool_pos pos;
	uint32_t	 got[16];
	pid_t		 pid;
	char		 c;
	int		 p[2], n;

	if (pipe(p) == -1 || (pid = fork()) == -1) {
		skip("pipe or fork failed: %s", strerror(errno));
		return;
	}
	if (pid == 0) {
		close(p[0]);
		s = spool_open(dir, "victim", 1 << 20, 0);
		append_ids(s, 40, 5, 100);
		spool_sync(s);
		append_ids(s, 45, 5, 100);	/* buffered only */
		if (write(p[1], "x", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(p[1]);
	n = (int)read(p[0], &c, 1);
	close(p[0]);
	errno = 0;
	s = spool_open(dir, "victim", 1 << 20, 0);
	ok(n == 1 && s == NULL && errno == EWOULDBLOCK,
	    "another process's live spool cannot be opened");
	t = spool_open(dir, "heir", 1 << 20, 0);
	is_int(spool_adopt(t), 0, "nor adopted");
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	is_int(spool_adopt(t), 1, "after SIGKILL its segment is adopted");
	n = replay_ids(t, got, 16, &pos);
	ok(n == 5 && got[0] == 40 && got[4] == 44,
	    "... with every synced record");
	spool_commit(t, &pos);
	spool_close(t);
}

/* ---- Dead letters ---- */

static void
test_dead_letter(void)
{
	const char		*dir = new_dir();
	struct spool		*s, *t;
	struct spool_rec	 r;
	const void		*payload;
	const uint8_t		*pl;
	uint8_t			*f, rec[300];
	char			 path[256], reason[2000];
	size_t			 len, plen, off, n, rlen;
	uint32_t		 rl;
	int			 frames = 0, good = 0;

	s = spool_open(dir, "dl", 1 << 20, 0);
	t = spool_open(dir, "dl2", 1 << 20, 0);
	memset(reason, 'r', sizeof(reason) - 1);
	reason[sizeof(reason) - 1] = '\0';
	rec_make(rec, 1, sizeof(rec));
	log_clear();
	is_int(spool_dead_letter(s, rec, sizeof(rec),
	    "invalid byte sequence for encoding \"UTF8\""), 0,
	    "dead-letter a record");
	ok(log_has("record dead-lettered") && log_has("bytes=300"),
	    "... logged");
	is_int(spool_dead_letter(s, rec, 0, NULL), 0,
	    "an empty record, no reason");
	is_int(spool_dead_letter(t, rec, 17, reason), 0,
	    "another spool, a 1999-byte reason");
	errno = 0;
	ok(spool_dead_letter(s, rec, (size_t)SPOOL_MAX_RECORD + 1, "x") ==
	    -1 && errno == EMSGSIZE, "over 256 MiB: EMSGSIZE");
	is_int(spool_dead_letters(s), 2, "counted per spool");
	is_int(spool_dead_letters(t), 1, "... for the other too");
	is_int(spool_replay_next(s, &r), 0, "dead letters are never replayed");

	snprintf(path, sizeof(path), "%s/dead-letter", dir);
	f = file_read(path, &len);
	for (off = 0; f != NULL && off < len; off += n, frames++) {
		if ((n = spool_frame_decode(f + off, len - off, &payload,
		    &plen)) == 0)
			break;
		pl = payload;
		memcpy(&rl, pl, 4);
		rlen = rl;
		if (frames == 0 && rlen == 41 &&
		    memcmp(pl + 4, "invalid byte", 12) == 0 &&
		    plen == 4 + rlen + 300 &&
		    memcmp(pl + 4 + rlen, rec, 300) == 0)
			good++;
		if (frames == 1 && rlen == 0 && plen == 4)
			good++;
		if (frames == 2 && rlen == SPOOL_REASON_MAX &&
		    plen == 4 + rlen + 17 &&
		    memcmp(pl + 4 + rlen, rec, 17) == 0)
			good++;
	}
	ok(frames == 3 && off == len, "one shared file holds 3 frames");
	is_int(good, 3, "each holds its reason (cut at %d) and record",
	    SPOOL_REASON_MAX);
	free(f);
	spool_close(t);
	spool_close(s);
}

/* ---- Write errors ---- */

static void
test_write_error(void)
{
	const char		*dir = new_dir();
	struct spool		*s;
	struct spool_stats	 st;
	struct rlimit		 rl, small;
	uint32_t		 got[16];
	char			 path[256];
	struct stat		 sb;
	int			 n, rc;

	s = spool_open(dir, "we", 1 << 20, 0);
	append_ids(s, 0, 2, 3000);
	is_int(spool_sync(s), SPOOL_OK, "sync 2 records");
	append_ids(s, 2, 3, 3000);

	/* A file size limit makes the write fail part way (EFBIG). */
	signal(SIGXFSZ, SIG_IGN);
	getrlimit(RLIMIT_FSIZE, &rl);
	small = rl;
	small.rlim_cur = 8192;
	setrlimit(RLIMIT_FSIZE, &small);
	log_clear();
	errno = 0;
	rc = spool_sync(s);
	setrlimit(RLIMIT_FSIZE, &rl);
	ok(rc == -1 && errno == EFBIG, "a failed write: sync returns -1, "
	    "errno EFBIG");
	ok(log_has("cannot write segment"), "... logged");
	seg_path(path, sizeof(path), dir, "we", 1);
	stat(path, &sb);
	is_int(sb.st_size, 2 * FRAME(3000), "... the partial write is cut off");
	spool_stats(s, &st);
	is_int(st.ss_pending, 3 * FRAME(3000), "... the batch stays buffered");
	is_int(spool_sync(s), SPOOL_OK, "the retry succeeds");
	is_int(count_segs(dir, "we"), 2, "... in a new segment");
	n = replay_ids(s, got, 16, NULL);
	ok(n == 5 && got[0] == 0 && got[4] == 4,
	    "every record is there exactly once");
	spool_close(s);
}

/* ---- fdatasync(), interposed ---- */

/*
 * The spool's fdatasync() calls land here (this definition wins over
 * libc's at link time).  Each may be slowed down or made to fail; what
 * a successful one covers, its file up to the size it had when called,
 * is noted as durable only when it returns.
 */
#define DUR_MAX		256

static struct {
	pthread_mutex_t	 lock;
	int		 delay_ms;
	int		 fail;
	int		 in_sync;
	int		 calls;
	int		 on_main;	/* a call came from the main thread */
	struct {
		char	 path[512];
		off_t	 size;
	}		 dur[DUR_MAX];
	int		 ndur;
} fsx = { PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, 0, 0, { { "", 0 } }, 0 };
static pthread_t	main_thread;

int	fdatasync(int);

int
fdatasync(int fd)
{
	struct stat	 sb;
	char		 link[64], path[512];
	ssize_t		 n;
	int		 rc, delay, fail, i, saved;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	path[n > 0 ? n : 0] = '\0';
	if (fstat(fd, &sb) == -1)
		sb.st_size = 0;
	pthread_mutex_lock(&fsx.lock);
	delay = fsx.delay_ms;
	fail = fsx.fail;
	fsx.in_sync = 1;
	if (pthread_equal(pthread_self(), main_thread))
		fsx.on_main = 1;
	pthread_mutex_unlock(&fsx.lock);
	if (delay > 0)
		usleep(delay * 1000);
	rc = fail ? -1 : (int)syscall(SYS_fdatasync, fd);
	saved = fail ? EIO : errno;
	pthread_mutex_lock(&fsx.lock);
	fsx.in_sync = 0;
	fsx.calls++;
	if (rc == 0) {
		for (i = 0; i < fsx.ndur; i++)
			if (strcmp(fsx.dur[i].path, path) == 0)
				break;
		if (i < DUR_MAX) {
			if (i == fsx.ndur)
				fsx.ndur++;
			strlcpy(fsx.dur[i].path, path, sizeof(fsx.dur[i].path));
			fsx.dur[i].size = sb.st_size;
		}
	}
	pthread_mutex_unlock(&fsx.lock);
	errno = saved;
	return rc;
}

/* Slow down or fail the next calls; forget which were on main. */
static void
fsx_set(int delay_ms, int fail)
{
	pthread_mutex_lock(&fsx.lock);
	fsx.delay_ms = delay_ms;
	fsx.fail = fail;
	fsx.on_main = 0;
	pthread_mutex_unlock(&fsx.lock);
}

/* Forget the files synced so far (the table holds DUR_MAX). */
static void
fsx_forget(void)
{
	pthread_mutex_lock(&fsx.lock);
	fsx.ndur = 0;
	pthread_mutex_unlock(&fsx.lock);
}

/* A counter or flag of fsx, read under its lock. */
static int
fsx_get(const int *field)
{
	int	n;

	pthread_mutex_lock(&fsx.lock);
	n = *field;
	pthread_mutex_unlock(&fsx.lock);
	return n;
}

/* ---- The disk thread ---- */

#define SQ_JOBS		40

static struct {
	struct ev_loop	*loop;
	int		 worked[SQ_JOBS];	/* order the thread ran them */
	int		 nworked;
	int		 done[SQ_JOBS];		/* order completions ran */
	int		 result[SQ_JOBS];
	int		 ndone;
	int		 want;			/* completions to wait for */
	int		 off_main;		/* a job ran on the main thread */
	int		 done_off_main;		/* a completion did not */
	int		 calls_at_done;
	int		 ticks;
	int		 ticks_in_sync;
} sq;

static int	sq_ids[SQ_JOBS];

static int
sq_work(struct spool *sp, void *arg)
{
	int	id = *(int *)arg;
	uint8_t	rec[64];

	if (pthread_equal(pthread_self(), main_thread))
		sq.off_main = 1;
	sq.worked[sq.nworked++] = id;
	rec_make(rec, (uint32_t)id, sizeof(rec));
	return spool_append(sp, rec, sizeof(rec));
}

static void
sq_done(void *arg, int result)
{
	int	id = *(int *)arg;

	if (!pthread_equal(pthread_self(), main_thread))
		sq.done_off_main = 1;
	sq.result[sq.ndone] = result;
	sq.done[sq.ndone++] = id;
	sq.calls_at_done = fsx_get(&fsx.calls);
	if (sq.ndone == sq.want)
		ev_break(sq.loop, EVBREAK_ALL);
}

static void
sq_tick_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)t;
	(void)revents;
	sq.ticks++;
	if (fsx_get(&fsx.in_sync))
		sq.ticks_in_sync++;
}

/* Run the loop until sq.want completions, at most `secs`. */
static void
sq_wait(int want, double secs)
{
	ev_timer	tick;

	sq.want = want;
	ev_timer_init(&tick, sq_tick_cb, 0.005, 0.005);
	ev_timer_start(sq.loop, &tick);
	for (double t = 0; sq.ndone < want && t < secs; t += 0.05)
		ev_run(sq.loop, EVRUN_ONCE);
	ev_timer_stop(sq.loop, &tick);
}

static void
sq_reset(void)
{
	struct ev_loop	*loop = sq.loop;

	memset(&sq, 0, sizeof(sq));
	sq.loop = loop;
}

static void
test_spoolq(void)
{
	const char	*dir = new_dir();
	struct spoolq	*q;
	struct spool	*s;
	uint32_t	 got[64];
	int		 c0;
	int		 i, inorder, n;

	sq.loop = ev_loop_new(EVFLAG_AUTO);
	for (i = 0; i < SQ_JOBS; i++)
		sq_ids[i] = i;
	s = spool_open(dir, "q", 1 << 20, 0);
	q = spoolq_start(sq.loop, s);
	ok(q != NULL, "spoolq_start");

	/* Order: every other job syncs. */
	sq_reset();
	for (i = 0; i < 20; i++)
		spoolq_run(q, i % 2 ? SPOOLQ_SYNC : 0, sq_work, sq_done,
		    &sq_ids[i]);
	is_int(spoolq_busy(q), 20, "20 jobs queued, busy");
	sq_wait(20, 10);
	inorder = sq.nworked == 20 && sq.ndone == 20;
	for (i = 0; inorder && i < 20; i++)
		inorder = sq.worked[i] == i && sq.done[i] == i &&
		    sq.result[i] == SPOOL_OK;
	ok(inorder, "jobs run and complete in the order queued, all OK");
	ok(!sq.off_main, "... work runs off the main thread");
	ok(!sq.done_off_main, "... completions run on the loop's thread");
	is_int(spoolq_busy(q), 0, "... none busy after");

	/*
	 * The loop runs while a sync is slow; jobs queued meanwhile share
	 * the next sync; completions follow the fdatasync() calls.
	 */
	sq_reset();
	fsx_set(150, 0);
	c0 = fsx_get(&fsx.calls);
	spoolq_run(q, SPOOLQ_SYNC, sq_work, sq_done, &sq_ids[20]);
	for (i = 0; i < 400 && !fsx_get(&fsx.in_sync); i++)
		usleep(1000);
	ok(fsx_get(&fsx.in_sync), "the first job's fdatasync is under way");
	for (i = 21; i < 31; i++)
		spoolq_run(q, SPOOLQ_SYNC, sq_work, sq_done, &sq_ids[i]);
	sq_wait(11, 10);
	is_int(sq.ndone, 11, "11 sync jobs completed");
	ok(sq.ticks_in_sync >= 10, "the loop ran timers during the slow "
	    "fdatasync (%d ticks of 5 ms)", sq.ticks_in_sync);
	is_int(fsx_get(&fsx.calls) - c0, 2, "the 10 jobs queued during a sync "
	    "share one fdatasync");
	is_int(sq.calls_at_done - c0, 2, "... the last completion came after "
	    "it returned");
	ok(!fsx.on_main, "... no fdatasync on the main thread");
	fsx_set(0, 0);

	/* A failed sync fails the sync jobs of the group, not the others. */
	sq_reset();
	fsx_set(0, 1);
	log_clear();
	spoolq_run(q, 0, sq_work, sq_done, &sq_ids[31]);
	spoolq_run(q, SPOOLQ_SYNC, sq_work, sq_done, &sq_ids[32]);
	sq_wait(2, 10);
	fsx_set(0, 0);
	ok(sq.ndone == 2 && sq.result[1] == -1, "a failed fdatasync fails "
	    "the sync job (%d)", sq.result[1]);
	ok(log_has("cannot write segment"), "... logged by the spool");
	sq_reset();
	spoolq_run(q, SPOOLQ_SYNC, sq_work, sq_done, &sq_ids[33]);
	sq_wait(1, 10);
	ok(sq.ndone == 1 && sq.result[0] == SPOOL_OK, "the next sync job "
	    "succeeds");

	/* Stopped: jobs run inline, before spoolq_run() returns. */
	spoolq_stop(q);
	sq_reset();
	spoolq_run(q, SPOOLQ_SYNC, sq_work, sq_done, &sq_ids[34]);
	ok(sq.ndone == 1 && sq.nworked == 1 && sq.off_main,
	    "after spoolq_stop() a job runs inline");
	spoolq_free(q);

	/*
	 * In the spool: 20 jobs' records, then 20 (the slow group), the
	 * failed group's two were dropped, then 33 and 34.
	 */
	n = replay_ids(s, got, 64, NULL);
	inorder = n == 33;
	for (i = 0; inorder && i < 31; i++)
		inorder = got[i] == (uint32_t)i;
	ok(inorder && got[31] == 33 && got[32] == 34, "replay: the records "
	    "of the jobs that succeeded, in order (%d)", n);
	spool_close(s);
	ev_loop_destroy(sq.loop);
	sq.loop = NULL;
}

/* ---- The store's acknowledgements, PostgreSQL down ---- */

#define ST_PEERS	3
#define ST_RECS		400	/* per peer */

static struct {
	struct ev_loop	*loop;
	uint64_t	 acked[ST_PEERS + 1];
	int		 backwards;	/* an ack below an earlier one */
	int		 undurable;	/* an ack for a record not synced */
	int		 acks;
	int		 drained;
	int		 ticks_in_sync;
} sa;

/* The request_key of peer p's record seq. */
static void
sa_key(char *buf, size_t len, uint64_t peer, uint64_t seq)
{
	snprintf(buf, len, "p%llu-%llu", (unsigned long long)peer,
	    (unsigned long long)seq);
}

/*
 * Whether every record of `peer` up to `seq` is in the durable part of
 * some file fdatasync() was called on.
 */
static int
sa_durable(uint64_t peer, uint64_t seq)
{
	static uint8_t	 seen[ST_RECS + 1];
	struct record	 r;
	const void	*pl;
	uint8_t		*buf;
	size_t		 len, plen, off, fl;
	unsigned long long p, q;
	char		 key[80];
	int		 i, all;

	memset(seen, 0, sizeof(seen));
	pthread_mutex_lock(&fsx.lock);
	for (i = 0; i < fsx.ndur; i++) {
		if ((buf = file_read(fsx.dur[i].path, &len)) == NULL)
			continue;	/* deleted (committed) */
		if (len > (size_t)fsx.dur[i].size)
			len = (size_t)fsx.dur[i].size;
		for (off = 0; (fl = spool_frame_decode(buf + off, len - off,
		    &pl, &plen)) > 0; off += fl) {
			if (record_decode(pl, plen, &r, NULL) != 0 ||
			    r.r_request_key.len >= sizeof(key))
				continue;
			memcpy(key, r.r_request_key.p, r.r_request_key.len);
			key[r.r_request_key.len] = '\0';
			if (sscanf(key, "p%llu-%llu", &p, &q) == 2 &&
			    p == peer && q <= ST_RECS)
				seen[q] = 1;
		}
		free(buf);
	}
	pthread_mutex_unlock(&fsx.lock);
	for (all = 1, q = 1; q <= seq; q++)
		all &= seen[q];
	return all;
}

static void
sa_ack_cb(void *arg, uint64_t peer, uint64_t seq)
{
	(void)arg;
	if (peer == 0 || peer > ST_PEERS)
		return;
	sa.acks++;
	if (seq <= sa.acked[peer])
		sa.backwards = 1;
	else if (!sa_durable(peer, seq)) {
		if (!sa.undurable)
			diag("peer %llu acknowledged up to %llu, not all synced",
			    (unsigned long long)peer, (unsigned long long)seq);
		sa.undurable = 1;
	}
	sa.acked[peer] = seq;
}

static void
sa_drained_cb(void *arg)
{
	(void)arg;
	sa.drained = 1;
}

static void
sa_tick_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)t;
	(void)revents;
	if (fsx_get(&fsx.in_sync))
		sa.ticks_in_sync++;
}

static void
test_store_acks(void)
{
	const char	*dir = new_dir();
	struct config	*cfg;
	struct record	 r;
	struct spool	*s;
	struct spool_rec sr;
	ev_timer	 tick;
	uint8_t		 enc[256];
	char		 conf[1024], err[256], key[80], body[32];
	uint64_t	 p, seq;
	size_t		 n;
	int		 i, all, spooled;

	memset(&sa, 0, sizeof(sa));
	sa.loop = ev_loop_new(EVFLAG_AUTO);
	/* Port 1: nothing listens, every connection attempt is refused. */
	snprintf(conf, sizeof(conf),
	    "upstream_url http://127.0.0.1:1/\n"
	    "pg_conninfo host=127.0.0.1 port=1 connect_timeout=2\n"
	    "spool_dir %s\n"
	    "db_batch_size 50\n"
	    "db_flush_interval 5ms\n"
	    "db_connections 3\n", dir);
	cfg = config_load_buffer("store.conf", conf, strlen(conf), err,
	    sizeof(err));
	ok(cfg != NULL, "store config loads (%s)", cfg ? "ok" : err);
	if (cfg == NULL)
		return;
	fsx_set(20, 0);
	fsx_forget();
	ok(store_init(sa.loop, cfg, "st", sa_ack_cb, NULL, err,
	    sizeof(err)) == 0, "store_init");
	ev_timer_init(&tick, sa_tick_cb, 0.002, 0.002);
	ev_timer_start(sa.loop, &tick);

	/* Three peers interleaved, in bursts, while the loop runs. */
	for (seq = 1; seq <= ST_RECS; seq++) {
		for (p = 1; p <= ST_PEERS; p++) {
			memset(&r, 0, sizeof(r));
			sa_key(key, sizeof(key), p, seq);
			snprintf(body, sizeof(body), "{\"n\":%llu}",
			    (unsigned long long)seq);
			r.r_seq = seq;
			r.r_request_key.p = key;
			r.r_request_key.len = strlen(key);
			r.r_user_id.p = "u";
			r.r_user_id.len = 1;
			r.r_has_status = 1;
			r.r_status = 200;
			r.r_response.p = body;
			r.r_response.len = strlen(body);
			n = record_encode(&r, enc, sizeof(enc));
			store_add(p, seq, enc, n);
		}
		if (seq % 37 == 0)
			ev_run(sa.loop, EVRUN_NOWAIT);
	}
	store_drain(sa_drained_cb, NULL);
	for (i = 0; i < 2000 && !sa.drained; i++)
		ev_run(sa.loop, EVRUN_ONCE);
	ok(sa.drained, "drained: every record spooled while PostgreSQL is "
	    "down");
	is_int(store_pending(), 0, "... nothing pending");
	for (all = 1, p = 1; p <= ST_PEERS; p++)
		all &= sa.acked[p] == ST_RECS;
	ok(all, "each peer acknowledged up to its last record (%d acks)",
	    sa.acks);
	if (!all)
		diag("acknowledged: %llu %llu %llu",
		    (unsigned long long)sa.acked[1],
		    (unsigned long long)sa.acked[2],
		    (unsigned long long)sa.acked[3]);
	ok(!sa.backwards, "acknowledgements only go up, per peer");
	ok(!sa.undurable, "every acknowledgement covers only records whose "
	    "fdatasync had returned");
	ok(sa.ticks_in_sync > 0, "the loop ran while a spool fdatasync was "
	    "under way (%d ticks)", sa.ticks_in_sync);
	ok(!fsx.on_main, "no fdatasync on the loop's thread");
	ok(log_has("PostgreSQL down: spooling records"), "log: PostgreSQL "
	    "down: spooling records");
	ev_timer_stop(sa.loop, &tick);
	store_shutdown();
	fsx_set(0, 0);

	/* Each record is in the spool exactly once, in order per peer. */
	s = spool_open(dir, "st", 1 << 30, 0);
	memset(sa.acked, 0, sizeof(sa.acked));
	spooled = 0;
	all = s != NULL;
	while (all && spool_replay_next(s, &sr) == 1) {
		unsigned long long pp, qq;

		spooled++;
		if (record_decode(sr.sr_data, sr.sr_len, &r, NULL) != 0 ||
		    r.r_request_key.len >= sizeof(key)) {
			all = 0;
			break;
		}
		memcpy(key, r.r_request_key.p, r.r_request_key.len);
		key[r.r_request_key.len] = '\0';
		if (sscanf(key, "p%llu-%llu", &pp, &qq) != 2 || pp < 1 ||
		    pp > ST_PEERS || qq != sa.acked[pp] + 1)
			all = 0;
		else
			sa.acked[pp] = qq;
	}
	ok(all && spooled == ST_PEERS * ST_RECS, "the spool holds every "
	    "record once, in seq order per peer (%d)", spooled);
	spool_close(s);
	config_free(cfg);
	ev_loop_destroy(sa.loop);
}

int
main(void)
{
	tap_watchdog(60);
	main_thread = pthread_self();
	if (mkdtemp(top) == NULL) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	snprintf(logpath, sizeof(logpath), "%s/log", top);
	log_init("test", LOG_LEVEL_INFO);
	if (log_open(logpath) == -1) {
		printf("Bail out! log_open: %s\n", strerror(errno));
		return 1;
	}

	test_crc32c();
	test_frame_decode();
	test_names();
	test_round_trip();
	test_rolling();
	test_interleaved();
	test_full();
	test_torn_tail();
	test_corrupt_middle();
	test_damaged_segments();
	test_stray_files();
	test_zero_length();
	test_fuzz();
	test_adopt();
	test_killed_owner();
	test_dead_letter();
	test_write_error();
	test_spoolq();
	test_store_acks();

	if (getenv("WSGATE_TEST_LEAVE") == NULL)
		nftw(top, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	else
		diag("left %s", top);
	while (ndirs > 0)
		free(dirs[--ndirs]);
	return done_testing();
}
