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
 * The dbwriter's on-disk spool: checksummed segment files written with
 * O_APPEND and fdatasync(), replayed in order, deleted once committed.
 * spool.h describes the format and the contract.
 *
 * Invariants:
 * - s_segs is sorted by segment number; when s_afd is open it appends to
 *   the last entry, so the replay cursor never leaves a segment that can
 *   still grow.
 * - sg_size counts synced bytes only: replay never reads past it, and a
 *   failed write is truncated back to it.
 * - s_bytes is the sum of sg_size; with s_plen it is what max_bytes bounds.
 *
 * Threads: the spool is plain single-threaded code that blocks on the
 * disk; keeping that off the dbwriter's event loop is the caller's job.
 * The dbwriter does it with one disk thread per spool (spoolq.c) that
 * makes every call, jobs queued by the loop and completed back to it
 * with ev_async.  Rather than a thread for spool_sync() alone: replay
 * reads, commits (unlink) and dead letters (fdatasync) block too, one
 * owner thread needs no lock in here, and it keeps appends, syncs and
 * commits in the order the loop asked for them.  The loop acknowledges
 * spooled records only in a sync job's completion, that is after
 * fdatasync() returned.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

#include "log.h"
#include "spool.h"
#include "util.h"

#define SPOOL_MAGIC		"WSP\001"
#define SPOOL_MAGIC_LEN		4
#define SPOOL_READ_CHUNK	(1024 * 1024)
#define SPOOL_FAIL_LOG_MS	10000	/* failed writes: a line at most this often */
#define SPOOL_LOCK		"lock"
#define SPOOL_SEG_PREFIX	"spool-"
#define SPOOL_SEG_SUFFIX	".seg"
#define SPOOL_SEG_NAMELEN	(sizeof(SPOOL_SEG_PREFIX) - 1 + 16 + \
				    sizeof(SPOOL_SEG_SUFFIX) - 1)

struct spool_seg {
	uint64_t	sg_seq;
	uint64_t	sg_size;	/* synced bytes */
};

struct spool_segs {
	struct spool_seg	*ss_v;		/* sorted by sg_seq */
	size_t			 ss_n;
	size_t			 ss_cap;
};

/* A read-ahead window on one segment. */
struct spool_reader {
	int		 rd_fd;		/* -1: none open */
	uint64_t	 rd_seq;
	uint8_t		*rd_buf;
	size_t		 rd_cap;
	uint64_t	 rd_base;	/* file offset of rd_buf[0] */
	size_t		 rd_len;
};

struct spool {
	char			 s_dir[4096];
	char			 s_name[SPOOL_NAME_MAX + 1];
	char			 s_path[4096 + SPOOL_NAME_MAX + 2];
	int			 s_basefd;	/* spool_dir */
	int			 s_dirfd;	/* spool_dir/name */
	int			 s_lockfd;
	int			 s_afd;		/* appends, or -1 */
	int			 s_dlfd;	/* dead-letter file, or -1 */
	uint64_t		 s_max;
	uint64_t		 s_segmax;
	uint64_t		 s_next_seq;
	struct spool_segs	 s_segs;
	uint64_t		 s_bytes;
	uint8_t			*s_pend;	/* frames not yet written */
	size_t			 s_plen;
	size_t			 s_pcap;
	size_t			*s_cuts;	/* s_pend offsets that roll */
	size_t			 s_ncuts;
	size_t			 s_cutcap;
	struct spool_pos	 s_cur;		/* replay cursor */
	struct spool_pos	 s_last;	/* end of the last record out */
	struct spool_pos	 s_high;	/* furthest s_cur */
	struct spool_pos	 s_commit;
	struct spool_reader	 s_rd;
	uint64_t		 s_skipped;
	uint64_t		 s_dead;
	uint64_t		 s_fails;	/* writes failed since the last good */
	struct log_limit	 s_fail_log;
};

static int	spool_fail_log_now(struct spool *, uint64_t *);
static void	crc32c_init(void);
static uint32_t	crc32c_sw(uint32_t, const uint8_t *, size_t);
static void	le32_put(uint8_t *, uint32_t);
static uint32_t	le32_get(const uint8_t *);
static void	spool_frame_header(uint8_t *, size_t, uint32_t);
static int	spool_header_ok(const uint8_t *, uint32_t *, uint32_t *);
static int	spool_name_ok(const char *);
static void	spool_seg_name(char *, size_t, uint64_t);
static int	spool_seg_parse(const char *, uint64_t *);
static int	spool_seg_cmp(const void *, const void *);
static void	spool_segs_push(struct spool_segs *, uint64_t, uint64_t);
static int	spool_list(int, const char *, struct spool_segs *);
static int	spool_lock(int);
static int	spool_fsync_dir(int, const char *);
static int	spool_write_all(int, const uint8_t *, size_t);
static int	spool_pos_cmp(const struct spool_pos *,
		    const struct spool_pos *);
static void	spool_rd_close(struct spool_reader *);
static int	spool_rd_open(struct spool *, uint64_t);
static int	spool_rd_get(struct spool_reader *, uint64_t, size_t, uint64_t,
		    const uint8_t **);
static int	spool_find_magic(struct spool_reader *, uint64_t, uint64_t,
		    uint64_t *);
static int	spool_find(struct spool_reader *, uint64_t, uint64_t *,
		    const uint8_t **, uint32_t *);
static struct spool_seg *spool_seg_from(struct spool *, uint64_t);
static int	spool_seg_is_active(const struct spool *,
		    const struct spool_seg *);
static int	spool_seg_remove(struct spool *, size_t);
static int	spool_seg_create(struct spool *);
static void	spool_seal(struct spool *);
static void	spool_recover_tail(struct spool *);
static void	spool_skipped(struct spool *, uint64_t, uint64_t, uint64_t,
		    const char *);
static int	spool_adopt_one(struct spool *, const char *);
static int	spool_dl_open(struct spool *);

/* ---- CRC32C ---- */

static pthread_once_t	 crc32c_once = PTHREAD_ONCE_INIT;
static uint32_t		 crc32c_table[8][256];
static uint32_t		(*crc32c_impl)(uint32_t, const uint8_t *, size_t);

#if defined(__x86_64__)
/*
 * One crc32 instruction per 8 bytes: about 8 bytes per 3 cycles, far
 * more than fdatasync() lets the spool write.
 */
__attribute__((target("sse4.2")))
static uint32_t
crc32c_hw(uint32_t crc, const uint8_t *p, size_t n)
{
	uint64_t	c = crc, w;

	for (; n >= 8; p += 8, n -= 8) {
		memcpy(&w, p, 8);
		c = _mm_crc32_u64(c, w);
	}
	crc = (uint32_t)c;
	for (; n > 0; p++, n--)
		crc = _mm_crc32_u8(crc, *p);
	return crc;
}
#endif

/* Tables for the reflected polynomial 0x82F63B78, slicing-by-8. */
static void
crc32c_init(void)
{
	uint32_t	c;
	int		i, k;

	for (i = 0; i < 256; i++) {
		c = (uint32_t)i;
		for (k = 0; k < 8; k++)
			c = (c >> 1) ^ (0x82f63b78U & (0U - (c & 1)));
		crc32c_table[0][i] = c;
	}
	for (i = 0; i < 256; i++)
		for (k = 1; k < 8; k++) {
			c = crc32c_table[k - 1][i];
			crc32c_table[k][i] = (c >> 8) ^
			    crc32c_table[0][c & 0xff];
		}
	crc32c_impl = crc32c_sw;
#if defined(__x86_64__)
	if (__builtin_cpu_supports("sse4.2"))
		crc32c_impl = crc32c_hw;
#endif
}

/* `crc` is the register (pre-inverted); byte loads keep it endian-neutral. */
static uint32_t
crc32c_sw(uint32_t crc, const uint8_t *p, size_t n)
{
	uint32_t	lo, hi;

	for (; n >= 8; p += 8, n -= 8) {
		lo = crc ^ le32_get(p);
		hi = le32_get(p + 4);
		crc = crc32c_table[7][lo & 0xff] ^
		    crc32c_table[6][(lo >> 8) & 0xff] ^
		    crc32c_table[5][(lo >> 16) & 0xff] ^
		    crc32c_table[4][lo >> 24] ^
		    crc32c_table[3][hi & 0xff] ^
		    crc32c_table[2][(hi >> 8) & 0xff] ^
		    crc32c_table[1][(hi >> 16) & 0xff] ^
		    crc32c_table[0][hi >> 24];
	}
	for (; n > 0; p++, n--)
		crc = crc32c_table[0][(crc ^ *p) & 0xff] ^ (crc >> 8);
	return crc;
}

uint32_t
spool_crc32c(uint32_t crc, const void *buf, size_t len)
{
	pthread_once(&crc32c_once, crc32c_init);
	return ~crc32c_impl(~crc, buf, len);
}

uint32_t
spool_crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
	pthread_once(&crc32c_once, crc32c_init);
	return ~crc32c_sw(~crc, buf, len);
}

/* ---- Frames ---- */

static void
le32_put(uint8_t *p, uint32_t v)
{
	p[0] = v & 0xff;
	p[1] = (v >> 8) & 0xff;
	p[2] = (v >> 16) & 0xff;
	p[3] = v >> 24;
}

static uint32_t
le32_get(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

static void
spool_frame_header(uint8_t *h, size_t len, uint32_t crc)
{
	memcpy(h, SPOOL_MAGIC, SPOOL_MAGIC_LEN);
	le32_put(h + 4, (uint32_t)len);
	le32_put(h + 8, crc);
	le32_put(h + 12, spool_crc32c(0, h, 12));
}

/* A header is trusted only whole: magic, its own CRC, a sane length. */
static int
spool_header_ok(const uint8_t *h, uint32_t *len, uint32_t *crc)
{
	if (memcmp(h, SPOOL_MAGIC, SPOOL_MAGIC_LEN) != 0 ||
	    le32_get(h + 12) != spool_crc32c(0, h, 12))
		return 0;
	*len = le32_get(h + 4);
	*crc = le32_get(h + 8);
	return *len <= SPOOL_FRAME_MAX;
}

size_t
spool_frame_decode(const void *buf, size_t len, const void **payload,
    size_t *plen)
{
	const uint8_t	*p = buf;
	uint32_t	 n, crc;

	if (len < SPOOL_HDR_LEN || !spool_header_ok(p, &n, &crc) ||
	    n > len - SPOOL_HDR_LEN ||
	    spool_crc32c(0, p + SPOOL_HDR_LEN, n) != crc)
		return 0;
	*payload = p + SPOOL_HDR_LEN;
	*plen = n;
	return SPOOL_HDR_LEN + (size_t)n;
}

/* ---- Files and directories ---- */

static int
spool_name_ok(const char *name)
{
	size_t	i, n = strlen(name);

	if (n == 0 || n > SPOOL_NAME_MAX || name[0] == '.')
		return 0;
	for (i = 0; i < n; i++)
		if (strchr("abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", name[i]) == NULL)
			return 0;
	return 1;
}

static void
spool_seg_name(char *buf, size_t len, uint64_t seq)
{
	snprintf(buf, len, SPOOL_SEG_PREFIX "%016" PRIx64 SPOOL_SEG_SUFFIX,
	    seq);
}

/* Only names spool_seg_name() makes; anything else is left alone. */
static int
spool_seg_parse(const char *name, uint64_t *seq)
{
	const char	*hex = name + sizeof(SPOOL_SEG_PREFIX) - 1;
	int		 i;

	if (strlen(name) != SPOOL_SEG_NAMELEN ||
	    strncmp(name, SPOOL_SEG_PREFIX, (size_t)(hex - name)) != 0 ||
	    strcmp(hex + 16, SPOOL_SEG_SUFFIX) != 0)
		return 0;
	*seq = 0;
	for (i = 0; i < 16; i++) {
		if (hex[i] >= '0' && hex[i] <= '9')
			*seq = *seq << 4 | (uint64_t)(hex[i] - '0');
		else if (hex[i] >= 'a' && hex[i] <= 'f')
			*seq = *seq << 4 | (uint64_t)(hex[i] - 'a' + 10);
		else
			return 0;
	}
	return 1;
}

static int
spool_seg_cmp(const void *a, const void *b)
{
	const struct spool_seg	*x = a, *y = b;

	return x->sg_seq < y->sg_seq ? -1 : x->sg_seq > y->sg_seq;
}

static void
spool_segs_push(struct spool_segs *v, uint64_t seq, uint64_t size)
{
	if (v->ss_n == v->ss_cap) {
		v->ss_cap = v->ss_cap == 0 ? 16 : v->ss_cap * 2;
		v->ss_v = xrealloc(v->ss_v, v->ss_cap * sizeof(*v->ss_v));
	}
	v->ss_v[v->ss_n].sg_seq = seq;
	v->ss_v[v->ss_n].sg_size = size;
	v->ss_n++;
}

/*
 * Append the segments in `dirfd` (called `path` in log lines) to `v`,
 * sorted.  Empty segments hold nothing and are deleted.  Returns 0, or -1
 * with errno if the directory cannot be read.
 */
static int
spool_list(int dirfd, const char *path, struct spool_segs *v)
{
	DIR		*d;
	struct dirent	*de;
	struct stat	 st;
	uint64_t	 seq;
	size_t		 first = v->ss_n;
	int		 fd;

	if ((fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) ==
	    -1)
		return -1;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (!spool_seg_parse(de->d_name, &seq) ||
		    fstatat(dirfd, de->d_name, &st,
		    AT_SYMLINK_NOFOLLOW) == -1 || !S_ISREG(st.st_mode))
			continue;
		if (st.st_size == 0) {
			if (unlinkat(dirfd, de->d_name, 0) == -1)
				log_warn("spool: cannot delete empty segment "
				    "file=%s/%s", path, de->d_name);
			continue;
		}
		spool_segs_push(v, seq, (uint64_t)st.st_size);
	}
	closedir(d);
	if (v->ss_n > first)
		qsort(v->ss_v + first, v->ss_n - first, sizeof(*v->ss_v),
		    spool_seg_cmp);
	return 0;
}

/*
 * Lock `dirfd`'s lock file, creating it.  An adopter unlinks the lock
 * file of a directory it emptied, so a lock taken on an unlinked inode
 * is stale: check that the path still names the locked inode.  Returns
 * the locked fd, or -1 with errno (EWOULDBLOCK: a live owner holds it).
 */
static int
spool_lock(int dirfd)
{
	struct stat	 a, b;
	int		 fd, tries, saved;

	for (tries = 0; tries < 8; tries++) {
		fd = openat(dirfd, SPOOL_LOCK, O_RDWR | O_CREAT | O_CLOEXEC |
		    O_NOFOLLOW, 0600);
		if (fd == -1)
			return -1;
		if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
			saved = errno;
			close(fd);
			errno = saved;
			return -1;
		}
		if (fstat(fd, &a) == 0 &&
		    fstatat(dirfd, SPOOL_LOCK, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
		    a.st_dev == b.st_dev && a.st_ino == b.st_ino)
			return fd;
		close(fd);
	}
	errno = EWOULDBLOCK;
	return -1;
}

/* Make a new or removed directory entry durable. */
static int
spool_fsync_dir(int dirfd, const char *path)
{
	if (fsync(dirfd) == -1) {
		log_warn("spool: cannot fsync directory dir=%s", path);
		return -1;
	}
	return 0;
}

static int
spool_write_all(int fd, const uint8_t *p, size_t n)
{
	ssize_t	w;

	while (n > 0) {
		if ((w = write(fd, p, n)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (w == 0) {
			errno = EIO;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* ---- Reading ---- */

static int
spool_pos_cmp(const struct spool_pos *a, const struct spool_pos *b)
{
	if (a->sp_seg != b->sp_seg)
		return a->sp_seg < b->sp_seg ? -1 : 1;
	return a->sp_off < b->sp_off ? -1 : a->sp_off > b->sp_off;
}

/* Close the file, keep the buffer for the next segment. */
static void
spool_rd_close(struct spool_reader *rd)
{
	if (rd->rd_fd != -1)
		close(rd->rd_fd);
	rd->rd_fd = -1;
	rd->rd_len = 0;
}

static int
spool_rd_open(struct spool *s, uint64_t seq)
{
	struct spool_reader	*rd = &s->s_rd;
	char			 name[SPOOL_SEG_NAMELEN + 1];
	int			 fd;

	if (rd->rd_fd != -1 && rd->rd_seq == seq)
		return 0;
	spool_seg_name(name, sizeof(name), seq);
	if ((fd = openat(s->s_dirfd, name, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	spool_rd_close(rd);
	rd->rd_fd = fd;
	rd->rd_seq = seq;
	return 0;
}

/*
 * Point `*p` at bytes [off, off + need) of the segment, whose first
 * `size` bytes are readable (need <= size - off), reading ahead up to
 * SPOOL_READ_CHUNK.  Returns 0, or -1 with errno: a read error, or EIO if
 * the file is shorter than `size`.
 */
static int
spool_rd_get(struct spool_reader *rd, uint64_t off, size_t need,
    uint64_t size, const uint8_t **p)
{
	size_t	want, got;
	ssize_t	n;

	if (off >= rd->rd_base && off - rd->rd_base <= rd->rd_len &&
	    need <= rd->rd_len - (off - rd->rd_base)) {
		*p = rd->rd_buf + (off - rd->rd_base);
		return 0;
	}
	want = need > SPOOL_READ_CHUNK ? need : SPOOL_READ_CHUNK;
	if (want > size - off)
		want = (size_t)(size - off);
	/* Give back a large record's buffer once records are small again. */
	if (want > rd->rd_cap ||
	    (rd->rd_cap > 4 * SPOOL_READ_CHUNK && want <= SPOOL_READ_CHUNK)) {
		free(rd->rd_buf);
		rd->rd_cap = want > SPOOL_READ_CHUNK ? want : SPOOL_READ_CHUNK;
		rd->rd_buf = xmalloc(rd->rd_cap);
	}
	rd->rd_base = off;
	rd->rd_len = 0;
	for (got = 0; got < want; got += (size_t)n) {
		n = pread(rd->rd_fd, rd->rd_buf + got, want - got,
		    (off_t)(off + got));
		if (n == -1 && errno == EINTR) {
			n = 0;
			continue;
		}
		if (n == -1)
			return -1;
		if (n == 0)
			break;
	}
	rd->rd_len = got;
	if (got < need) {
		errno = EIO;
		return -1;
	}
	*p = rd->rd_buf;
	return 0;
}

/*
 * The first offset at or after `from` where the magic starts with room
 * for a header before `size`, in `*at`.  Returns 1 if found, 0 if not
 * (`*at` = size), -1 on a read error.  Always moves forward.
 */
static int
spool_find_magic(struct spool_reader *rd, uint64_t from, uint64_t size,
    uint64_t *at)
{
	const uint8_t	*p, *q;
	size_t		 n;

	while (from <= size && size - from >= SPOOL_HDR_LEN) {
		n = size - from > SPOOL_READ_CHUNK ? SPOOL_READ_CHUNK :
		    (size_t)(size - from);
		if (spool_rd_get(rd, from, n, size, &p) == -1)
			return -1;
		if ((q = memmem(p, n, SPOOL_MAGIC, SPOOL_MAGIC_LEN)) != NULL) {
			*at = from + (uint64_t)(q - p);
			return 1;
		}
		/* A magic may straddle the window: keep its first bytes. */
		from += n - (SPOOL_MAGIC_LEN - 1);
	}
	*at = size;
	return 0;
}

/*
 * The first whole, valid frame at or after `*off` in the reader's
 * segment of `size` bytes.  Returns 1 with `*off` at the frame and its
 * payload in `*payload`/`*len` (valid until the reader moves); 0 if there
 * is none (`*off` = size); -1 on a read error.  Each failed candidate
 * moves the search forward by at least one byte, so it ends.
 */
static int
spool_find(struct spool_reader *rd, uint64_t size, uint64_t *off,
    const uint8_t **payload, uint32_t *len)
{
	const uint8_t	*p;
	uint64_t	 o = *off;
	uint32_t	 n, crc;
	int		 r;

	for (;;) {
		if (o > size || size - o < SPOOL_HDR_LEN) {
			*off = size;
			return 0;
		}
		if (spool_rd_get(rd, o, SPOOL_HDR_LEN, size, &p) == -1)
			return -1;
		if (spool_header_ok(p, &n, &crc) &&
		    n <= size - o - SPOOL_HDR_LEN) {
			if (spool_rd_get(rd, o, SPOOL_HDR_LEN + (size_t)n, size,
			    &p) == -1)
				return -1;
			if (spool_crc32c(0, p + SPOOL_HDR_LEN, n) == crc) {
				*off = o;
				*payload = p + SPOOL_HDR_LEN;
				*len = n;
				return 1;
			}
		}
		if ((r = spool_find_magic(rd, o + 1, size, &o)) != 1) {
			*off = size;
			return r;
		}
	}
}

static void
spool_skipped(struct spool *s, uint64_t seq, uint64_t off, uint64_t n,
    const char *what)
{
	char	name[SPOOL_SEG_NAMELEN + 1];

	spool_seg_name(name, sizeof(name), seq);
	s->s_skipped += n;
	log_warnx("spool: skipped %s file=%s/%s offset=%" PRIu64
	    " bytes=%" PRIu64, what, s->s_path, name, off, n);
}

/* ---- Segments ---- */

/* The first segment numbered `seq` or later, or NULL. */
static struct spool_seg *
spool_seg_from(struct spool *s, uint64_t seq)
{
	size_t	i;

	for (i = 0; i < s->s_segs.ss_n; i++)
		if (s->s_segs.ss_v[i].sg_seq >= seq)
			return &s->s_segs.ss_v[i];
	return NULL;
}

static int
spool_seg_is_active(const struct spool *s, const struct spool_seg *sg)
{
	return s->s_afd != -1 && sg == &s->s_segs.ss_v[s->s_segs.ss_n - 1];
}

/* Delete segment `i`.  Returns 0, or -1 if unlinking failed (logged). */
static int
spool_seg_remove(struct spool *s, size_t i)
{
	struct spool_seg	*sg = &s->s_segs.ss_v[i];
	char			 name[SPOOL_SEG_NAMELEN + 1];
	int			 rc = 0;

	if (spool_seg_is_active(s, sg)) {
		close(s->s_afd);
		s->s_afd = -1;
	}
	/* An open descriptor would keep the disk space. */
	if (s->s_rd.rd_fd != -1 && s->s_rd.rd_seq == sg->sg_seq)
		spool_rd_close(&s->s_rd);
	spool_seg_name(name, sizeof(name), sg->sg_seq);
	if (unlinkat(s->s_dirfd, name, 0) == -1 && errno != ENOENT) {
		log_warn("spool: cannot delete segment file=%s/%s",
		    s->s_path, name);
		rc = -1;
	}
	s->s_bytes -= sg->sg_size;
	memmove(sg, sg + 1, (s->s_segs.ss_n - i - 1) * sizeof(*sg));
	s->s_segs.ss_n--;
	return rc;
}

/* Open a new, empty segment for appends, its entry durable. */
static int
spool_seg_create(struct spool *s)
{
	char		name[SPOOL_SEG_NAMELEN + 1];
	uint64_t	quiet;
	int		fd, saved;

	spool_seg_name(name, sizeof(name), s->s_next_seq);
	fd = openat(s->s_dirfd, name, O_WRONLY | O_CREAT | O_EXCL |
	    O_APPEND | O_CLOEXEC, 0600);
	if (fd == -1) {
		saved = errno;
		if (spool_fail_log_now(s, &quiet)) {
			errno = saved;
			log_warn("spool: cannot create segment file=%s/%s "
			    "unlogged=%" PRIu64, s->s_path, name, quiet);
		}
		errno = saved;
		return -1;
	}
	if (spool_fsync_dir(s->s_dirfd, s->s_path) == -1) {
		saved = errno;
		close(fd);
		unlinkat(s->s_dirfd, name, 0);
		errno = saved;
		return -1;
	}
	spool_segs_push(&s->s_segs, s->s_next_seq++, 0);
	s->s_afd = fd;
	return 0;
}

/*
 * Stop appending to the current segment; the next sync opens a new one.
 * Its bytes are already synced, so closing loses nothing.
 */
static void
spool_seal(struct spool *s)
{
	if (s->s_afd == -1)
		return;
	close(s->s_afd);
	s->s_afd = -1;
	if (s->s_segs.ss_v[s->s_segs.ss_n - 1].sg_size == 0)
		spool_seg_remove(s, s->s_segs.ss_n - 1);
}

/*
 * After a crash the newest segment may end in a partial frame.  Find the
 * end of its last valid frame (damage before it is left for replay to
 * report), truncate the rest and keep appending there.  On any failure
 * the segment is only sealed: replay skips whatever is damaged.
 */
static void
spool_recover_tail(struct spool *s)
{
	struct spool_seg	*sg = &s->s_segs.ss_v[s->s_segs.ss_n - 1];
	const uint8_t		*p;
	char			 name[SPOOL_SEG_NAMELEN + 1];
	uint64_t		 off = 0, end = 0;
	uint32_t		 len;
	int			 r, fd;

	spool_seg_name(name, sizeof(name), sg->sg_seq);
	if (spool_rd_open(s, sg->sg_seq) == -1) {
		log_warn("spool: cannot open segment file=%s/%s",
		    s->s_path, name);
		return;
	}
	while ((r = spool_find(&s->s_rd, sg->sg_size, &off, &p, &len)) == 1)
		end = off += SPOOL_HDR_LEN + (uint64_t)len;
	spool_rd_close(&s->s_rd);
	if (r == -1) {
		log_warn("spool: cannot read segment file=%s/%s",
		    s->s_path, name);
		return;
	}
	if ((fd = openat(s->s_dirfd, name, O_WRONLY | O_APPEND | O_CLOEXEC)) ==
	    -1) {
		log_warn("spool: cannot open segment file=%s/%s",
		    s->s_path, name);
		return;
	}
	if (end < sg->sg_size) {
		spool_skipped(s, sg->sg_seq, end, sg->sg_size - end,
		    "torn tail");
		if (ftruncate(fd, (off_t)end) == -1 || fdatasync(fd) == -1) {
			log_warn("spool: cannot truncate segment "
			    "file=%s/%s", s->s_path, name);
			close(fd);
			return;
		}
		s->s_bytes -= sg->sg_size - end;
		sg->sg_size = end;
	}
	s->s_afd = fd;
	if (sg->sg_size == 0 || sg->sg_size >= s->s_segmax)
		spool_seal(s);
}

/* ---- The spool ---- */

struct spool *
spool_open(const char *dir, const char *name, uint64_t max_bytes,
    uint64_t segment_bytes)
{
	struct spool	*s;
	size_t		 i;
	int		 saved, created, tries;

	if (!spool_name_ok(name) || strlen(dir) >= sizeof(s->s_dir)) {
		errno = EINVAL;
		return NULL;
	}
	if (mkdir(dir, 0700) == -1 && errno != EEXIST)
		return NULL;
	s = xcalloc(1, sizeof(*s));
	s->s_dirfd = s->s_lockfd = s->s_afd = s->s_dlfd = -1;
	s->s_rd.rd_fd = -1;
	strlcpy(s->s_dir, dir, sizeof(s->s_dir));
	strlcpy(s->s_name, name, sizeof(s->s_name));
	snprintf(s->s_path, sizeof(s->s_path), "%s/%s", dir, name);
	s->s_max = max_bytes;
	s->s_segmax = segment_bytes == 0 ? SPOOL_SEGMENT_BYTES : segment_bytes;
	if ((s->s_basefd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) ==
	    -1)
		goto fail;
	/*
	 * An adopter or a closing owner removes an emptied directory while
	 * holding its lock: ENOENT here means it just did, so start over.
	 */
	for (tries = 0;; tries++) {
		created = mkdirat(s->s_basefd, name, 0700) == 0;
		if (!created && errno != EEXIST)
			goto fail;
		if (created && spool_fsync_dir(s->s_basefd, dir) == -1)
			goto fail;
		s->s_dirfd = openat(s->s_basefd, name, O_RDONLY |
		    O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		if (s->s_dirfd != -1 &&
		    (s->s_lockfd = spool_lock(s->s_dirfd)) != -1)
			break;
		if (errno != ENOENT || tries == 3)
			goto fail;
		if (s->s_dirfd != -1)
			close(s->s_dirfd);
		s->s_dirfd = -1;
	}
	if (spool_list(s->s_dirfd, s->s_path, &s->s_segs) == -1)
		goto fail;
	s->s_next_seq = 1;
	for (i = 0; i < s->s_segs.ss_n; i++) {
		s->s_bytes += s->s_segs.ss_v[i].sg_size;
		s->s_next_seq = s->s_segs.ss_v[i].sg_seq + 1;
	}
	if (s->s_segs.ss_n > 0)
		spool_recover_tail(s);
	return s;
fail:
	saved = errno;
	spool_close(s);
	errno = saved;
	return NULL;
}

void
spool_close(struct spool *s)
{
	if (s == NULL)
		return;
	if (s->s_afd != -1)
		close(s->s_afd);
	s->s_afd = -1;
	spool_rd_close(&s->s_rd);
	/*
	 * An empty spool leaves no directory behind, so names that change
	 * (per generation, per pid) do not pile up.  The lock is still held.
	 */
	if (s->s_lockfd != -1 && s->s_segs.ss_n == 0 &&
	    unlinkat(s->s_dirfd, SPOOL_LOCK, 0) == 0)
		unlinkat(s->s_basefd, s->s_name, AT_REMOVEDIR);
	if (s->s_lockfd != -1)
		close(s->s_lockfd);
	if (s->s_dlfd != -1)
		close(s->s_dlfd);
	if (s->s_dirfd != -1)
		close(s->s_dirfd);
	if (s->s_basefd != -1)
		close(s->s_basefd);
	free(s->s_rd.rd_buf);
	free(s->s_segs.ss_v);
	free(s->s_pend);
	free(s->s_cuts);
	free(s);
}

int
spool_append(struct spool *s, const void *rec, size_t len)
{
	uint64_t	frame, tail;

	if (len > SPOOL_MAX_RECORD || SPOOL_HDR_LEN + len > s->s_max) {
		errno = EMSGSIZE;
		return -1;
	}
	frame = SPOOL_HDR_LEN + len;
	if (s->s_bytes + s->s_plen + frame > s->s_max)
		return SPOOL_FULL;

	/* Where the segment this frame lands in would end; roll past max. */
	if (s->s_ncuts > 0)
		tail = s->s_plen - s->s_cuts[s->s_ncuts - 1];
	else
		tail = s->s_plen + (s->s_afd == -1 ? 0 :
		    s->s_segs.ss_v[s->s_segs.ss_n - 1].sg_size);
	if (tail > 0 && tail + frame > s->s_segmax) {
		if (s->s_ncuts == s->s_cutcap) {
			s->s_cutcap = s->s_cutcap == 0 ? 8 : s->s_cutcap * 2;
			s->s_cuts = xrealloc(s->s_cuts,
			    s->s_cutcap * sizeof(*s->s_cuts));
		}
		s->s_cuts[s->s_ncuts++] = s->s_plen;
	}

	if (s->s_pcap - s->s_plen < frame) {
		while (s->s_pcap - s->s_plen < frame)
			s->s_pcap = s->s_pcap == 0 ? 64 * 1024 : s->s_pcap * 2;
		s->s_pend = xrealloc(s->s_pend, s->s_pcap);
	}
	spool_frame_header(s->s_pend + s->s_plen, len,
	    spool_crc32c(0, rec, len));
	if (len > 0)
		memcpy(s->s_pend + s->s_plen + SPOOL_HDR_LEN, rec, len);
	s->s_plen += (size_t)frame;
	return SPOOL_OK;
}

/*
 * Whether to log a failed segment creation or write now: the first of a
 * run, then at most every SPOOL_FAIL_LOG_MS, for a full disk fails every
 * retry (db_flush_interval apart).  *quiet: failures left unlogged since
 * the last line.
 */
static int
spool_fail_log_now(struct spool *s, uint64_t *quiet)
{
	s->s_fails++;
	return log_limit_now(&s->s_fail_log, SPOOL_FAIL_LOG_MS, quiet);
}

int
spool_sync(struct spool *s)
{
	struct spool_seg	*sg;
	char			 name[SPOOL_SEG_NAMELEN + 1];
	uint64_t		 quiet;
	size_t			 pos = 0, end, ci = 0, i;
	int			 saved;

	if (s->s_plen == 0)
		return SPOOL_OK;
	while (pos < s->s_plen) {
		if (ci < s->s_ncuts && s->s_cuts[ci] == pos) {
			spool_seal(s);
			ci++;
			continue;
		}
		if (s->s_afd == -1 && spool_seg_create(s) == -1)
			goto fail;
		sg = &s->s_segs.ss_v[s->s_segs.ss_n - 1];
		end = ci < s->s_ncuts ? s->s_cuts[ci] : s->s_plen;
		if (spool_write_all(s->s_afd, s->s_pend + pos, end - pos) ==
		    -1 || fdatasync(s->s_afd) == -1) {
			/*
			 * After a failed write or fdatasync the page cache
			 * may not match the disk; cut back to what was
			 * synced and retry in a new segment.
			 */
			saved = errno;
			spool_seg_name(name, sizeof(name), sg->sg_seq);
			if (spool_fail_log_now(s, &quiet)) {
				errno = saved;
				log_warn("spool: cannot write segment "
				    "file=%s/%s bytes=%zu unlogged=%" PRIu64,
				    s->s_path, name, end - pos, quiet);
			}
			if (ftruncate(s->s_afd, (off_t)sg->sg_size) == -1)
				log_warn("spool: cannot truncate segment "
				    "file=%s/%s", s->s_path, name);
			spool_seal(s);
			errno = saved;
			goto fail;
		}
		sg->sg_size += end - pos;
		s->s_bytes += end - pos;
		pos = end;
	}
	if (s->s_fails > 0) {
		log_info("spool: segments written again failed=%" PRIu64
		    " dir=%s", s->s_fails, s->s_path);
		s->s_fails = 0;
		log_limit_reset(&s->s_fail_log);
	}
	s->s_plen = 0;
	s->s_ncuts = 0;
	if (s->s_pcap > 4 * SPOOL_READ_CHUNK) {
		/* Give back the memory of a burst of large records. */
		free(s->s_pend);
		s->s_pend = NULL;
		s->s_pcap = 0;
	}
	return SPOOL_OK;
fail:
	/* Keep what was not written, for the next call. */
	saved = errno;
	memmove(s->s_pend, s->s_pend + pos, s->s_plen - pos);
	s->s_plen -= pos;
	for (i = ci; i < s->s_ncuts; i++)
		s->s_cuts[i - ci] = s->s_cuts[i] - pos;
	s->s_ncuts -= ci;
	errno = saved;
	return saved == ENOSPC || saved == EDQUOT ? SPOOL_FULL : -1;
}

void
spool_discard(struct spool *s)
{
	s->s_plen = 0;
	s->s_ncuts = 0;
}

int
spool_replay_next(struct spool *s, struct spool_rec *rec)
{
	struct spool_seg	*sg;
	const uint8_t		*payload;
	char			 name[SPOOL_SEG_NAMELEN + 1];
	uint64_t		 off, start;
	uint32_t		 len;
	int			 r;

	while ((sg = spool_seg_from(s, s->s_cur.sp_seg)) != NULL) {
		if (sg->sg_seq != s->s_cur.sp_seg) {
			s->s_cur.sp_seg = sg->sg_seq;
			s->s_cur.sp_off = 0;
		}
		spool_seg_name(name, sizeof(name), sg->sg_seq);
		if (spool_rd_open(s, sg->sg_seq) == -1) {
			if (errno != ENOENT)
				return -1;
			log_warnx("spool: segment vanished file=%s/%s",
			    s->s_path, name);
			spool_seg_remove(s, (size_t)(sg - s->s_segs.ss_v));
			continue;
		}
		off = start = s->s_cur.sp_off;
		r = spool_find(&s->s_rd, sg->sg_size, &off, &payload, &len);
		if (r == -1) {
			/* An unreadable segment is damage too: skip it. */
			log_warn("spool: cannot read segment file=%s/%s",
			    s->s_path, name);
			off = sg->sg_size;
		}
		if (off > s->s_cur.sp_off)
			spool_skipped(s, sg->sg_seq, s->s_cur.sp_off,
			    off - s->s_cur.sp_off, r == 1 ? "damaged bytes" :
			    "torn tail");
		if (r == 1) {
			s->s_cur.sp_off = off + SPOOL_HDR_LEN + len;
			s->s_last = s->s_cur;
			if (spool_pos_cmp(&s->s_cur, &s->s_high) > 0)
				s->s_high = s->s_cur;
			rec->sr_data = payload;
			rec->sr_len = len;
			rec->sr_end = s->s_cur;
			return 1;
		}
		s->s_cur.sp_off = sg->sg_size;
		if (spool_seg_is_active(s, sg))
			return 0;
		/*
		 * A sealed segment without a single valid frame (it could be
		 * read) holds nothing to commit: delete it now.
		 */
		if (r == 0 && start == 0) {
			spool_seg_remove(s, (size_t)(sg - s->s_segs.ss_v));
			continue;
		}
		s->s_cur.sp_seg = sg->sg_seq + 1;
		s->s_cur.sp_off = 0;
	}
	return 0;
}

void
spool_rewind(struct spool *s)
{
	s->s_cur = s->s_last = s->s_commit;
}

int
spool_commit(struct spool *s, const struct spool_pos *upto)
{
	struct spool_pos	 p = *upto;
	struct spool_seg	*sg;
	int			 rc = 0;

	/*
	 * Never past what replay handed out.  Committing the last record
	 * handed out also commits the damaged bytes replay skipped after it.
	 * A batch may commit after a later one failed and rewound: then the
	 * cursor moves up to the commit.
	 */
	if (spool_pos_cmp(&p, &s->s_high) > 0)
		p = s->s_high;
	if (spool_pos_cmp(&p, &s->s_last) == 0)
		p = s->s_cur;
	if (spool_pos_cmp(&p, &s->s_commit) <= 0)
		return 0;
	s->s_commit = p;
	if (spool_pos_cmp(&s->s_cur, &p) < 0)
		s->s_cur = s->s_last = p;
	while (s->s_segs.ss_n > 0) {
		sg = &s->s_segs.ss_v[0];
		if (sg->sg_seq > p.sp_seg ||
		    (sg->sg_seq == p.sp_seg && p.sp_off < sg->sg_size))
			break;
		if (spool_seg_remove(s, 0) == -1)
			rc = -1;
	}
	return rc;
}

/* ---- Adoption ---- */

int
spool_adopt(struct spool *s)
{
	DIR		*d;
	struct dirent	*de;
	int		 fd, n = 0;

	if ((fd = openat(s->s_basefd, ".", O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) == -1)
		return -1;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return -1;
	}
	while ((de = readdir(d)) != NULL)
		if (spool_name_ok(de->d_name) &&
		    strcmp(de->d_name, s->s_name) != 0)
			n += spool_adopt_one(s, de->d_name);
	closedir(d);
	return n;
}

/*
 * Move the segments of `name`, if its owner is gone, to the end of ours
 * under new numbers.  rename(2) is atomic: after a crash each segment is
 * in exactly one of the two directories, and an orphan is adopted again.
 * Returns how many segments moved.
 */
static int
spool_adopt_one(struct spool *s, const char *name)
{
	struct spool_segs	 v = { NULL, 0, 0 };
	char			 path[sizeof(s->s_path)];
	char			 from[SPOOL_SEG_NAMELEN + 1];
	char			 to[SPOOL_SEG_NAMELEN + 1];
	uint64_t		 bytes = 0;
	size_t			 i = 0;
	int			 ofd, lk;

	snprintf(path, sizeof(path), "%s/%s", s->s_dir, name);
	if ((ofd = openat(s->s_basefd, name, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC | O_NOFOLLOW)) == -1)
		return 0;
	if ((lk = spool_lock(ofd)) == -1) {
		close(ofd);
		return 0;
	}
	if (spool_list(ofd, path, &v) == -1) {
		log_warn("spool: cannot list dir=%s", path);
		goto done;
	}
	for (i = 0; i < v.ss_n; i++) {
		if (s->s_bytes + s->s_plen > 0 &&
		    s->s_bytes + s->s_plen + v.ss_v[i].sg_size > s->s_max)
			break;
		if (i == 0)
			spool_seal(s);
		spool_seg_name(from, sizeof(from), v.ss_v[i].sg_seq);
		spool_seg_name(to, sizeof(to), s->s_next_seq);
		if (renameat(ofd, from, s->s_dirfd, to) == -1) {
			log_warn("spool: cannot adopt segment file=%s/%s",
			    path, from);
			break;
		}
		spool_segs_push(&s->s_segs, s->s_next_seq++,
		    v.ss_v[i].sg_size);
		s->s_bytes += v.ss_v[i].sg_size;
		bytes += v.ss_v[i].sg_size;
	}
	if (i > 0) {
		spool_fsync_dir(s->s_dirfd, s->s_path);
		log_info("spool: adopted segments from=%s to=%s count=%zu "
		    "bytes=%" PRIu64, path, s->s_path, i, bytes);
	}
	if (i == v.ss_n && unlinkat(ofd, SPOOL_LOCK, 0) == 0)
		unlinkat(s->s_basefd, name, AT_REMOVEDIR);
done:
	close(lk);
	close(ofd);
	free(v.ss_v);
	return (int)i;
}

/* ---- Dead letters ---- */

static int
spool_dl_open(struct spool *s)
{
	s->s_dlfd = openat(s->s_basefd, SPOOL_DEAD_LETTER, O_WRONLY |
	    O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (s->s_dlfd == -1)
		return -1;
	if (spool_fsync_dir(s->s_basefd, s->s_dir) == -1) {
		close(s->s_dlfd);
		s->s_dlfd = -1;
		return -1;
	}
	return 0;
}

int
spool_dead_letter(struct spool *s, const void *rec, size_t len,
    const char *reason)
{
	struct stat	 st;
	uint8_t		*f;
	size_t		 rlen, plen;
	int		 rc = -1, saved;

	if (len > SPOOL_MAX_RECORD) {
		errno = EMSGSIZE;
		return -1;
	}
	if (reason == NULL)
		reason = "";
	rlen = strnlen(reason, SPOOL_REASON_MAX);
	if (s->s_dlfd == -1 && spool_dl_open(s) == -1) {
		log_warn("spool: cannot open file=%s/%s", s->s_dir,
		    SPOOL_DEAD_LETTER);
		return -1;
	}
	plen = 4 + rlen + len;
	f = xmalloc(SPOOL_HDR_LEN + plen);
	le32_put(f + SPOOL_HDR_LEN, (uint32_t)rlen);
	memcpy(f + SPOOL_HDR_LEN + 4, reason, rlen);
	if (len > 0)
		memcpy(f + SPOOL_HDR_LEN + 4 + rlen, rec, len);
	spool_frame_header(f, plen, spool_crc32c(0, f + SPOOL_HDR_LEN, plen));

	/* Other dbwriters append too: one writer at a time. */
	while (flock(s->s_dlfd, LOCK_EX) == -1)
		if (errno != EINTR)
			goto out;
	if (fstat(s->s_dlfd, &st) == 0) {
		rc = spool_write_all(s->s_dlfd, f, SPOOL_HDR_LEN + plen);
		if (rc == 0)
			rc = fdatasync(s->s_dlfd);
		saved = errno;
		if (rc == -1 && ftruncate(s->s_dlfd, st.st_size) == -1)
			log_warn("spool: cannot truncate file=%s/%s",
			    s->s_dir, SPOOL_DEAD_LETTER);
		errno = saved;
	}
	saved = errno;
	flock(s->s_dlfd, LOCK_UN);
	errno = saved;
out:
	free(f);
	if (rc == -1) {
		log_warn("spool: cannot write file=%s/%s", s->s_dir,
		    SPOOL_DEAD_LETTER);
		return -1;
	}
	s->s_dead++;
	log_warnx("spool: record dead-lettered file=%s/%s bytes=%zu "
	    "reason=\"%.*s\"", s->s_dir, SPOOL_DEAD_LETTER, len, (int)rlen,
	    reason);
	return 0;
}

uint64_t
spool_dead_letters(const struct spool *s)
{
	return s->s_dead;
}

void
spool_stats(const struct spool *s, struct spool_stats *st)
{
	st->ss_bytes = s->s_bytes + s->s_plen;
	st->ss_pending = s->s_plen;
	st->ss_segments = s->s_segs.ss_n;
	st->ss_skipped = s->s_skipped;
	st->ss_dead_letters = s->s_dead;
}
