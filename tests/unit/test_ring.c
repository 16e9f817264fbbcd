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
 * Unit tests for shared/ring.c: sizes and headers, append/next/ack,
 * full rings, cursors, a model-checked random run over many laps, and
 * the crash cases: writers killed with SIGKILL in the middle of appends
 * on a MAP_SHARED region, then a new owner attaching to what they left.
 */
#include "autoconf.h"

#include <sys/mman.h>
#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ring.h"
#include "tests/tap.h"
#include "util.h"

#define HDR		16		/* ring.c's record header */
#define FOOT(len)	((((size_t)(len)) + HDR + 15) & ~(size_t)15)

/* Reports from a writer child over a pipe. */
struct report {
	uint64_t	rp_type;	/* REP_COMMIT or REP_ACK */
	uint64_t	rp_seq;
};
#define REP_COMMIT	1	/* rp_seq is committed */
#define REP_ACK		2	/* about to ack up to rp_seq */

/* A record the model expects in the ring. */
struct mrec {
	uint64_t	m_seq;
	size_t		m_len;
};

static void		*region_new(size_t, size_t *);
static size_t		 pat_len(uint64_t, size_t);
static void		 pat_fill(uint8_t *, size_t, uint64_t);
static int		 pat_bytes_ok(const void *, size_t, uint64_t);
static int		 pat_ok(const void *, size_t, uint64_t, size_t);
static uint64_t		 append_pat(struct ring *, size_t);
static void		 test_sizes(void);
static void		 test_basic(void);
static void		 test_full(void);
static void		 test_ack_exact(void);
static void		 test_cursor(void);
static void		 test_reserve(void);
static void		 test_reset(void);
static void		 test_model(size_t, size_t, int);
static void		 test_corrupt(void);
static void		 report(int, uint64_t, uint64_t);
static void		 writer_child(void *, size_t, int, size_t);
static void		 test_crash_partial(void);
static size_t		 read_reports(int, struct report *, size_t, size_t);
static size_t		 run_writer(void *, size_t, size_t, size_t,
			    struct report *, size_t, int *);
static void		 test_crash_random(void);
static void		 test_observer(void);

/* A fresh shared anonymous mapping for a ring of `cap` bytes. */
static void *
region_new(size_t cap, size_t *size)
{
	void	*p;

	*size = ring_region_size(cap);
	p = mmap(NULL, *size, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	return p;
}

/*
 * The payload of record `seq`: its length (below max) and bytes follow
 * from the seq, so any record found can be checked on its own.
 */
static size_t
pat_len(uint64_t seq, size_t max)
{
	uint64_t	x = seq * 0x9e3779b97f4a7c15ULL;

	x ^= x >> 29;
	/* Mostly small, one in eight up to max. */
	return (size_t)(x % 8 == 0 ? (x >> 8) % (max + 1) :
	    (x >> 8) % (max / 8 + 1));
}

static void
pat_fill(uint8_t *p, size_t len, uint64_t seq)
{
	size_t	i;

	for (i = 0; i < len; i++)
		p[i] = (uint8_t)(seq * 31 + i * 7 + (i >> 8));
}

/* 1 if data[0..len) holds record seq's pattern bytes. */
static int
pat_bytes_ok(const void *data, size_t len, uint64_t seq)
{
	const uint8_t	*p = data;
	size_t		 i;

	for (i = 0; i < len; i++)
		if (p[i] != (uint8_t)(seq * 31 + i * 7 + (i >> 8)))
			return 0;
	return 1;
}

/* 1 if data[0..len) is record seq's payload, in a ring with this max. */
static int
pat_ok(const void *data, size_t len, uint64_t seq, size_t max)
{
	return len == pat_len(seq, max) && pat_bytes_ok(data, len, seq);
}

/* Append a pattern record of len bytes; returns its seq, or 0 if full. */
static uint64_t
append_pat(struct ring *r, size_t len)
{
	uint64_t	 seq;
	uint8_t		*p;

	if ((p = ring_reserve(r, len, &seq)) == NULL)
		return 0;
	pat_fill(p, len, seq);
	ring_commit(r);
	return seq;
}

/* ---- Sizes, init and attach ---- */

static void
test_sizes(void)
{
	struct ring_recovery	 rr;
	struct ring		*r;
	struct ring_cursor	 c;
	const void		*d;
	size_t			 size, len;
	uint64_t		 seq;
	char			*mem;

	is_int(ring_region_size(0), 0, "region size: capacity 0");
	is_int(ring_region_size(RING_MIN_CAPACITY - 1), 0,
	    "region size: below the minimum");
	is_int(ring_region_size(RING_MIN_CAPACITY), 256 + RING_MIN_CAPACITY,
	    "region size: header + capacity");
	is_int(ring_region_size(RING_MIN_CAPACITY + 1),
	    256 + RING_MIN_CAPACITY + 16, "region size: rounded up to 16");
	is_int(ring_region_size(SIZE_MAX), 0, "region size: overflow");
	is_int(ring_region_size(SIZE_MAX - 200), 0, "region size: overflow 2");

	mem = region_new(4096, &size);
	ok(ring_init(mem + 16, size - 16) == NULL, "init: misaligned memory");
	ok(ring_init(mem, 256 + RING_MIN_CAPACITY - 1) == NULL,
	    "init: too small");
	ok(ring_attach(mem, size, NULL) == NULL, "attach: zeroed region");
	r = ring_init(mem, size);
	ok(r == (struct ring *)mem, "init: handle is the region");
	is_int(ring_capacity(r), 4096, "capacity");
	is_int(ring_max_record(r), 4096 - HDR, "max record");
	is_int(ring_used_bytes(r), 0, "fresh: used 0");
	is_int(ring_count(r), 0, "fresh: count 0");
	is_int(ring_first_unacked_seq(r), 1, "fresh: first unacked 1");
	is_int(ring_next_seq(r), 1, "fresh: next seq 1");
	ring_rewind(r, &c);
	is_int(ring_next(r, &c, &d, &len, &seq), 0, "fresh: no records");

	ok(ring_attach(mem, size - 16, NULL) == NULL,
	    "attach: other capacity");
	ok(ring_attach(mem + 64, size - 64, NULL) == NULL,
	    "attach: not a header");
	memset(&rr, 0xa5, sizeof(rr));
	r = ring_attach(mem, size, &rr);
	ok(r != NULL, "attach: fresh ring");
	ok(rr.rr_records == 0 && rr.rr_bytes == 0 && rr.rr_torn == 0 &&
	    rr.rr_corrupt == 0 && rr.rr_first_seq == 1 && rr.rr_next_seq == 1,
	    "attach: fresh ring recovery report");
	mem[0] ^= 1;
	ok(ring_attach(mem, size, NULL) == NULL, "attach: bad magic");
	mem[0] ^= 1;
	mem[4] ^= 1;
	ok(ring_attach(mem, size, NULL) == NULL, "attach: bad version");
	mem[4] ^= 1;
	ok(ring_attach(mem, size, NULL) != NULL, "attach: restored header");
	munmap(mem, size);
}

/* ---- Append, next, ack ---- */

static void
test_basic(void)
{
	struct ring		*r;
	struct ring_cursor	 c;
	const void		*d;
	size_t			 size, len;
	uint64_t		 seq;
	void			*mem = region_new(1024, &size);

	r = ring_init(mem, size);
	ok(ring_append(r, "hello", 5, &seq) == 0 && seq == 1,
	    "append: first seq 1");
	is_int(ring_used_bytes(r), FOOT(5), "append: used = footprint");
	ok(ring_append(r, NULL, 0, &seq) == 0 && seq == 2,
	    "append: empty record, seq 2");
	is_int(ring_used_bytes(r), FOOT(5) + FOOT(0), "append: used");
	is_int(ring_count(r), 2, "append: count 2");
	is_int(ring_next_seq(r), 3, "append: next seq 3");
	is_int(ring_first_unacked_seq(r), 1, "append: first unacked 1");

	ring_rewind(r, &c);
	ok(ring_next(r, &c, &d, &len, &seq) == 1 && len == 5 && seq == 1 &&
	    memcmp(d, "hello", 5) == 0, "next: first record");
	ok((uintptr_t)d % 16 == 0, "next: payload 16-byte aligned");
	ok(ring_next(r, &c, &d, &len, &seq) == 1 && len == 0 && seq == 2,
	    "next: empty record");
	is_int(ring_next(r, &c, &d, &len, &seq), 0, "next: end");

	is_int(ring_ack(r, 1), 1, "ack 1: one record freed");
	is_int(ring_used_bytes(r), FOOT(0), "ack 1: used");
	is_int(ring_first_unacked_seq(r), 2, "ack 1: first unacked 2");
	is_int(ring_ack(r, 1), 0, "ack 1 again: nothing");
	is_int(ring_ack(r, 100), 1, "ack beyond the last: frees the rest");
	ok(ring_used_bytes(r) == 0 && ring_count(r) == 0,
	    "ack beyond: empty");
	ok(ring_first_unacked_seq(r) == 3 && ring_next_seq(r) == 3,
	    "empty: first unacked is next seq");
	munmap(mem, size);
}

static void
test_full(void)
{
	struct ring	*r;
	size_t		 size, used, i;
	uint64_t	 seq, next, count;
	char		 buf[2048];
	void		*mem = region_new(1024, &size);

	memset(buf, 'x', sizeof(buf));
	r = ring_init(mem, size);
	for (i = 0; ring_append(r, buf, 100, &seq) == 0; i++)
		;
	is_int(i, 1024 / FOOT(100), "full: 8 records of 128 bytes");
	is_int(ring_used_bytes(r), 1024, "full: every byte used");
	used = ring_used_bytes(r);
	count = ring_count(r);
	next = ring_next_seq(r);
	ok(ring_append(r, buf, 0, &seq) == -1, "full: empty record refused");
	ok(ring_reserve(r, 1, &seq) == NULL, "full: reserve refused");
	ok(ring_used_bytes(r) == used && ring_count(r) == count &&
	    ring_next_seq(r) == next, "full: refusal changes nothing");
	is_int(ring_ack(r, 1), 1, "full: ack one");
	ok(ring_append(r, buf, 100, &seq) == 0 && seq == next,
	    "full: room again after the ack, seq continues");
	ok(ring_append(r, buf, 1, &seq) == -1, "full again");

	/* Too large: refused even empty. */
	ring_ack(r, UINT64_MAX);
	ok(ring_append(r, buf, ring_max_record(r) + 1, &seq) == -1,
	    "record larger than the ring refused");
	ok(ring_append(r, buf, SIZE_MAX, &seq) == -1, "SIZE_MAX refused");
	is_int(ring_used_bytes(r), 0, "refusals wrote nothing");
	ok(ring_append(r, buf, ring_max_record(r), &seq) == 0,
	    "max record fits an empty ring");
	is_int(ring_used_bytes(r), 1024, "max record fills it");

	/*
	 * Not empty, and the free space is split by the end: 300 bytes
	 * free in all, 128 of them at the end, refused (nothing written).
	 */
	ring_ack(r, UINT64_MAX);
	ring_append(r, buf, 100, &seq);		/* 0..128 */
	ring_append(r, buf, 460, &seq);		/* 128..608 */
	ring_append(r, buf, 270, &seq);		/* 608..896 */
	ring_ack(r, seq - 1);			/* free 0..608 */
	used = ring_used_bytes(r);
	ok(ring_append(r, buf, 600, &seq) == -1,
	    "pad + record over the free space refused");
	is_int(ring_used_bytes(r), used, "refused: used unchanged");
	ok(ring_append(r, buf, 400, &seq) == 0, "pad + record that fit");
	is_int(ring_used_bytes(r), used + 128 + FOOT(400),
	    "pad counted as used");
	ring_ack(r, seq - 1);
	is_int(ring_used_bytes(r), FOOT(400), "pad freed with the ack");
	munmap(mem, size);
}

/* Acks free exactly the records up to the seq, never more. */
static void
test_ack_exact(void)
{
	struct ring		*r;
	struct ring_cursor	 c;
	const void		*d;
	size_t			 size, len, foot = 0;
	uint64_t		 seq, i;
	uint8_t			 buf[256] = { 0 };
	void			*mem = region_new(8192, &size);

	r = ring_init(mem, size);
	for (i = 1; i <= 10; i++)
		ring_append(r, buf, i * 20, &seq);
	for (i = 1; i <= 3; i++)
		foot += FOOT(i * 20);
	len = ring_used_bytes(r);
	is_int(ring_ack(r, 3), 3, "ack 3: three freed");
	is_int(ring_used_bytes(r), len - foot, "ack 3: their bytes freed");
	is_int(ring_count(r), 7, "ack 3: count 7");
	is_int(ring_first_unacked_seq(r), 4, "ack 3: first unacked 4");
	ring_rewind(r, &c);
	for (i = 4; ring_next(r, &c, &d, &len, &seq) == 1; i++)
		if (seq != i || len != i * 20)
			break;
	is_int(i, 11, "ack 3: records 4..10 remain, in order");
	is_int(ring_ack(r, 0), 0, "ack 0: nothing");
	is_int(ring_ack(r, 2), 0, "ack below the first: nothing");
	is_int(ring_count(r), 7, "stale acks: count unchanged");
	is_int(ring_ack(r, 9), 6, "ack 9: six freed");
	is_int(ring_first_unacked_seq(r), 10, "ack 9: first unacked 10");
	is_int(ring_used_bytes(r), FOOT(200), "ack 9: one record left");
	is_int(ring_ack(r, 10), 1, "ack 10: the last");
	is_int(ring_used_bytes(r), 0, "ack 10: empty");
	munmap(mem, size);
}

static void
test_cursor(void)
{
	struct ring		*r;
	struct ring_cursor	 c, old;
	const void		*d;
	size_t			 size, len;
	uint64_t		 seq, i;
	void			*mem = region_new(4096, &size);

	r = ring_init(mem, size);
	for (i = 1; i <= 5; i++)
		ring_append(r, &i, sizeof(i), &seq);
	ring_rewind(r, &c);
	old = c;
	for (i = 1; i <= 3; i++)
		ring_next(r, &c, &d, &len, &seq);
	is_int(seq, 3, "cursor: three sent");
	ring_ack(r, 2);
	ok(ring_next(r, &c, &d, &len, &seq) == 1 && seq == 4 &&
	    len == sizeof(i) && memcmp(d, &seq, sizeof(seq)) == 0,
	    "cursor: an ack behind it does not move it");
	ring_rewind(r, &c);
	ok(ring_next(r, &c, &d, &len, &seq) == 1 && seq == 3,
	    "rewind: back to the first unacked");
	ring_next(r, &c, &d, &len, &seq);
	ok(ring_next(r, &c, &d, &len, &seq) == 1 && seq == 5,
	    "rewind: resends in order");
	is_int(ring_next(r, &c, &d, &len, &seq), 0, "cursor: at the end");
	ring_append(r, "x", 1, &seq);
	ok(ring_next(r, &c, &d, &len, &seq) == 1 && seq == 6 && len == 1,
	    "cursor at the end sees a new record");
	ok(ring_next(r, &old, &d, &len, &seq) == 1 && seq == 3,
	    "cursor left behind by acks continues at the first unacked");
	ring_ack(r, 6);
	is_int(ring_next(r, &old, &d, &len, &seq), 0,
	    "cursor after everything acked: nothing");
	ring_rewind(r, &c);
	is_int(ring_next(r, &c, &d, &len, &seq), 0, "rewind on empty");
	munmap(mem, size);
}

/* Reserve/commit: nothing visible before the commit. */
static void
test_reserve(void)
{
	struct ring		*r;
	struct ring_cursor	 c;
	const void		*d;
	size_t			 size, len;
	uint64_t		 seq, seq2;
	char			*p;
	void			*mem = region_new(1024, &size);

	r = ring_init(mem, size);
	p = ring_reserve(r, 10, &seq);
	ok(p != NULL && seq == 1, "reserve: seq 1");
	memcpy(p, "0123456789", 10);
	ring_rewind(r, &c);
	ok(ring_count(r) == 0 && ring_used_bytes(r) == 0 &&
	    ring_next(r, &c, &d, &len, &seq2) == 0,
	    "reserve: invisible before commit");
	p = ring_reserve(r, 20, &seq2);
	ok(p != NULL && seq2 == 1, "reserve again: abandons the first");
	memcpy(p, "abcdefghijklmnopqrst", 20);
	ring_commit(r);
	ok(ring_count(r) == 1 && ring_used_bytes(r) == FOOT(20) &&
	    ring_next(r, &c, &d, &len, &seq2) == 1 && seq2 == 1 && len == 20 &&
	    memcmp(d, "abcdefghijklmnopqrst", 20) == 0,
	    "commit: the second reservation is the record");
	munmap(mem, size);
}

/* A record that fits an empty ring only if it starts at offset 0. */
static void
test_reset(void)
{
	struct ring_recovery	 rr;
	struct ring		*r;
	struct ring_cursor	 c;
	const void		*d;
	size_t			 size, len, max;
	uint64_t		 seq;
	static const char	 zero[300];
	void			*mem = region_new(1024, &size);

	r = ring_init(mem, size);
	max = ring_max_record(r);
	ring_append(r, zero, 300, &seq);
	ring_append(r, zero, 300, &seq);
	ring_ack(r, seq);
	seq = append_pat(r, max);
	ok(seq == 3, "empty ring mid-space: max record taken, seq 3");
	is_int(ring_used_bytes(r), 1024, "it starts at offset 0");
	ring_rewind(r, &c);
	ok(ring_next(r, &c, &d, &len, &seq) == 1 && seq == 3 &&
	    len == max, "next: the record, not the pad");
	ok(ring_attach(mem, size, &rr) != NULL && rr.rr_records == 1 &&
	    rr.rr_first_seq == 3 && rr.rr_corrupt == 0,
	    "attach after the reset: one record");
	munmap(mem, size);
}

/* ---- Model-checked random run ---- */

/*
 * Random appends (sizes up to maxlen), sends through a cursor, acks of
 * what was sent and rewinds, `steps` times, each checked against a
 * queue of the records the ring must hold.
 */
static void
test_model(size_t cap, size_t maxlen, int steps)
{
	struct mrec	*q;
	struct ring	*r;
	struct ring_cursor c;
	const void	*d;
	size_t		 size, qh = 0, qn = 0, sent = 0, qcap, len, used, k;
	uint64_t	 seq, lastseq = 0, appended = 0, bytes = 0, refused = 0;
	int		 i, bad_seq = 0, bad_full = 0, bad_used = 0;
	int		 bad_send = 0, bad_ack = 0, bad_count = 0;
	int		 bad_first = 0;
	void		*mem = region_new(cap, &size);
	uint8_t		*buf;

	qcap = cap / HDR + 1;
	q = calloc(qcap, sizeof(*q));
	buf = malloc(maxlen + 1);
	if (q == NULL || buf == NULL)
		exit(1);
	r = ring_init(mem, size);
	ring_rewind(r, &c);
#define QAT(i)	q[(qh + (i)) % qcap]
	for (i = 0; i < steps; i++) {
		k = (size_t)random() % 100;
		if (k < 50) {
			/* Mostly short, one in four up to maxlen. */
			len = (size_t)random() % (random() % 4 == 0 ?
			    maxlen + 1 : maxlen / 16 + 1);
			used = ring_used_bytes(r);
			pat_fill(buf, len, ring_next_seq(r));
			if (ring_append(r, buf, len, &seq) == -1) {
				refused++;
				/* Refused only if it cannot fit now. */
				if (qn == 0 ||
				    cap - used >= 2 * FOOT(len))
					bad_full++;
				if (ring_used_bytes(r) != used)
					bad_used++;
			} else {
				if (seq != lastseq + 1)
					bad_seq++;
				lastseq = seq;
				/* Its footprint, plus a pad shorter than it. */
				if (ring_used_bytes(r) < used + FOOT(len) ||
				    ring_used_bytes(r) >= used + 2 * FOOT(len))
					bad_used++;
				QAT(qn).m_seq = seq;
				QAT(qn).m_len = len;
				qn++;
				appended++;
				bytes += FOOT(len);
			}
		} else if (k < 80) {
			if (ring_next(r, &c, &d, &len, &seq) != (sent < qn))
				bad_send++;
			else if (sent < qn) {
				if (seq != QAT(sent).m_seq ||
				    len != QAT(sent).m_len ||
				    !pat_bytes_ok(d, len, seq))
					bad_send++;
				sent++;
			}
		} else if (k < 97) {
			if (sent == 0) {
				if (ring_ack(r, qn > 0 ? QAT(0).m_seq - 1 :
				    lastseq) != 0)
					bad_ack++;
			} else {
				k = 1 + (size_t)random() % sent;
				if (ring_ack(r, QAT(k - 1).m_seq) != k)
					bad_ack++;
				qh = (qh + k) % qcap;
				qn -= k;
				sent -= k;
			}
			if (qn == 0 && ring_used_bytes(r) != 0)
				bad_used++;
		} else {
			ring_rewind(r, &c);
			sent = 0;
		}
		if (ring_count(r) != qn)
			bad_count++;
		if (ring_first_unacked_seq(r) != (qn > 0 ? QAT(0).m_seq :
		    lastseq + 1) || ring_next_seq(r) != lastseq + 1)
			bad_first++;
	}
#undef QAT
	diag("cap %zu maxlen %zu: %llu records, %llu laps, %llu refused",
	    cap, maxlen, (unsigned long long)appended,
	    (unsigned long long)(bytes / cap), (unsigned long long)refused);
	ok(bytes / cap >= 20, "model cap %zu: at least 20 laps", cap);
	ok(refused > 0, "model cap %zu: the ring was full at times", cap);
	is_int(bad_seq, 0, "model cap %zu: seqs consecutive", cap);
	is_int(bad_full, 0, "model cap %zu: refused only when full", cap);
	is_int(bad_used, 0, "model cap %zu: used bytes", cap);
	is_int(bad_send, 0, "model cap %zu: cursor order and content", cap);
	is_int(bad_ack, 0, "model cap %zu: acks free exactly", cap);
	is_int(bad_count, 0, "model cap %zu: count", cap);
	is_int(bad_first, 0, "model cap %zu: first unacked, next seq", cap);
	free(q);
	free(buf);
	munmap(mem, size);
}

/* ---- Corruption ---- */

static void
test_corrupt(void)
{
	struct ring_recovery	 rr;
	struct ring		*r;
	struct ring_cursor	 c;
	const void		*d, *third = NULL;
	size_t			 size, len;
	uint64_t		 seq, i;
	void			*mem = region_new(4096, &size);

	r = ring_init(mem, size);
	for (i = 1; i <= 5; i++)
		ring_append(r, "abcdefgh", 8, &seq);
	ring_rewind(r, &c);
	while (ring_next(r, &c, &d, &len, &seq) == 1)
		if (seq == 3)
			third = d;
	/* Flip a bit of the third record's length, in its header. */
	((uint8_t *)(uintptr_t)third)[-HDR] ^= 0x40;
	r = ring_attach(mem, size, &rr);
	ok(r != NULL, "corrupt header: attach succeeds");
	ok(rr.rr_records == 2 && rr.rr_corrupt == 3 * FOOT(8) &&
	    rr.rr_torn == 0, "corrupt header: ring ends before it");
	is_int(rr.rr_next_seq, 6, "corrupt header: seqs are not reused");
	ok(ring_count(r) == 2 && ring_used_bytes(r) == 2 * FOOT(8),
	    "corrupt header: counters");
	ok(ring_append(r, "z", 1, &seq) == 0 && seq == 6,
	    "corrupt header: next append is seq 6");
	r = ring_attach(mem, size, &rr);
	ok(rr.rr_records == 3 && rr.rr_corrupt == 0 && rr.rr_first_seq == 1 &&
	    rr.rr_next_seq == 7, "attach again: 1, 2, 6 (a gap is fine)");
	is_int(ring_count(r), 3, "attach again: count 3");
	is_int(ring_ack(r, 5), 2, "ack 5 frees 1 and 2");
	is_int(ring_first_unacked_seq(r), 6, "first unacked 6");
	munmap(mem, size);
}

/* ---- Crashes ---- */

/* Child side: one report, written whole (16 bytes < PIPE_BUF). */
static void
report(int fd, uint64_t type, uint64_t seq)
{
	struct report	rp = { type, seq };

	if (write(fd, &rp, sizeof(rp)) != sizeof(rp))
		_exit(3);
}

/*
 * Child: attach to the region and append pattern records forever,
 * reporting each seq after its commit; when the ring is full, report
 * and then ack up to half of it.  Killed by the parent.  With `tear`,
 * reserve one record, write half of it and SIGKILL itself instead.
 */
static void
writer_child(void *mem, size_t size, int fd, size_t tear)
{
	struct ring	*r;
	uint64_t	 seq, next, first;
	size_t		 max, len, n;
	uint8_t		*p;

	if ((r = ring_attach(mem, size, NULL)) == NULL)
		_exit(4);
	max = ring_max_record(r) / 4;
	for (n = 0;; n++) {
		if (tear > 0 && n == tear) {
			p = ring_reserve(r, 1000, &seq);
			memset(p, 'T', 500);
			raise(SIGKILL);
		}
		next = ring_next_seq(r);
		len = pat_len(next, max);
		if ((p = ring_reserve(r, len, &seq)) == NULL) {
			first = ring_first_unacked_seq(r);
			seq = first + (next - first) / 2;
			report(fd, REP_ACK, seq);
			ring_ack(r, seq);
			continue;
		}
		if (seq != next)
			_exit(5);
		pat_fill(p, len, seq);
		ring_commit(r);
		report(fd, REP_COMMIT, seq);
	}
}

static void
test_crash_partial(void)
{
	struct ring_recovery	 rr;
	struct ring		*r;
	struct ring_cursor	 c;
	const void		*d;
	size_t			 size, len, n = 0, max;
	uint64_t		 seq;
	struct report		 rp[16];
	int			 st, good = 1;
	void			*mem = region_new(65536, &size);

	r = ring_init(mem, size);
	max = ring_max_record(r) / 4;
	n = run_writer(mem, size, 5, 0, rp, nitems(rp), &st);
	ok(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL && n == 5,
	    "torn append: writer killed by SIGKILL mid-record");
	n = 0;
	r = ring_attach(mem, size, &rr);
	ok(r != NULL, "torn append: attach");
	ok(rr.rr_torn == 1, "torn append: reported as torn");
	ok(rr.rr_records == 5 && rr.rr_corrupt == 0 && rr.rr_first_seq == 1 &&
	    rr.rr_next_seq == 6, "torn append: the 5 committed records kept");
	ring_rewind(r, &c);
	while (ring_next(r, &c, &d, &len, &seq) == 1) {
		n++;
		good &= seq == n && pat_ok(d, len, seq, max);
	}
	ok(n == 5 && good, "torn append: no partial record visible");
	len = ring_used_bytes(r);
	ok(ring_append(r, "after", 5, &seq) == 0 && seq == 6 &&
	    ring_used_bytes(r) == len + FOOT(5),
	    "torn append: its space reclaimed, seq 6 next");
	r = ring_attach(mem, size, &rr);
	ok(rr.rr_torn == 0 && rr.rr_records == 6, "clean re-attach: not torn");
	munmap(mem, size);
}

/*
 * Read reports into rp[*n..max) until at least `want` in all or EOF
 * (want == max).  Returns the count.
 */
static size_t
read_reports(int fd, struct report *rp, size_t n, size_t want)
{
	ssize_t	got;
	size_t	part = 0;
	char	*p = (char *)rp;

	p += n * sizeof(*rp);
	while (n < want) {
		got = read(fd, p + part, (want - n) * sizeof(*rp) - part);
		if (got == -1 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		part += (size_t)got;
		n += part / sizeof(*rp);
		p += part / sizeof(*rp) * sizeof(*rp);
		part %= sizeof(*rp);
	}
	return n;
}

/*
 * Run writer_child(tear) on the region and collect its reports in
 * rp[0..max), killing it after `kill_after` of them (0: it dies alone).
 * Returns the number of reports; *status is its wait status.
 */
static size_t
run_writer(void *mem, size_t size, size_t tear, size_t kill_after,
    struct report *rp, size_t max, int *status)
{
	pid_t	pid;
	size_t	n = 0;
	int	fds[2];

	if (pipe(fds) == -1 || (pid = fork()) == -1)
		exit(1);
	if (pid == 0) {
		close(fds[0]);
		writer_child(mem, size, fds[1], tear);
	}
	close(fds[1]);
	if (kill_after > 0) {
		n = read_reports(fds[0], rp, 0, kill_after);
		kill(pid, SIGKILL);
	}
	n = read_reports(fds[0], rp, n, max);
	close(fds[0]);
	waitpid(pid, status, 0);
	return n;
}

/*
 * Writers killed at random points, each the replacement of the one
 * before on the same region: after each death every committed record
 * not acked is found, each whole, nothing else is.
 */
static void
test_crash_random(void)
{
	struct ring_recovery	 rr;
	struct ring		*r;
	struct ring_cursor	 c;
	struct report		*rp;
	const void		*d;
	uint8_t			*committed;
	size_t			 size, len, n, i, max, nmax = 1 << 20;
	uint64_t		 seq, acked, last, maxc, prev;
	int			 round, st, torn = 0, killed = 0;
	int			 bad_attach = 0, bad_found = 0, bad_extra = 0;
	int			 bad_whole = 0, bad_count = 0, bad_next = 0;
	uint64_t		 found_total = 0;
	void			*mem = region_new(65536, &size);

	rp = malloc(nmax * sizeof(*rp));
	committed = calloc(nmax, 1);
	if (rp == NULL || committed == NULL)
		exit(1);
	r = ring_init(mem, size);
	max = ring_max_record(r) / 4;
	acked = maxc = 0;
	for (round = 0; round < 40; round++) {
		n = run_writer(mem, size, 0, 1 + (size_t)random() % 400, rp,
		    nmax, &st);
		killed += WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
		for (i = 0; i < n; i++) {
			if (rp[i].rp_seq >= nmax)
				continue;
			if (rp[i].rp_type == REP_COMMIT) {
				committed[rp[i].rp_seq] = 1;
				if (rp[i].rp_seq > maxc)
					maxc = rp[i].rp_seq;
			} else if (rp[i].rp_seq > acked)
				acked = rp[i].rp_seq;
		}

		if ((r = ring_attach(mem, size, &rr)) == NULL ||
		    rr.rr_corrupt != 0) {
			bad_attach++;
			break;
		}
		torn += rr.rr_torn;
		/*
		 * Found: whole records, seqs growing; each reported, or the
		 * one committed after the last report.  Every reported seq
		 * above the last ack the child meant to make is found.
		 */
		ring_rewind(r, &c);
		n = 0;
		prev = 0;
		while (ring_next(r, &c, &d, &len, &seq) == 1) {
			n++;
			if (seq <= prev || !pat_ok(d, len, seq, max))
				bad_whole++;
			if (seq < nmax && !committed[seq] && seq != maxc + 1)
				bad_extra++;
			if (seq < nmax)
				committed[seq] |= 2;
			prev = seq;
		}
		found_total += n;
		for (last = acked + 1; last <= maxc; last++)
			if (committed[last] == 1)
				bad_found++;
		for (last = 0; last <= maxc + 1 && last < nmax; last++)
			committed[last] &= 1;
		if (n != rr.rr_records || ring_count(r) != n)
			bad_count++;
		if (ring_next_seq(r) <= prev || ring_next_seq(r) <= maxc)
			bad_next++;
		/* An unreported commit counts as reported from now on. */
		if (prev > maxc) {
			committed[prev] = 1;
			maxc = prev;
		}
	}
	diag("%d rounds, %d torn appends, %llu records found in all, "
	    "last seq %llu", round, torn, (unsigned long long)found_total,
	    (unsigned long long)maxc);
	is_int(killed, 40, "crash: 40 writers killed with SIGKILL");
	is_int(bad_attach, 0, "crash: every attach valid, nothing corrupt");
	is_int(bad_found, 0, "crash: every committed unacked record found");
	is_int(bad_whole, 0, "crash: records whole, seqs increasing");
	is_int(bad_extra, 0, "crash: nothing that was not committed");
	is_int(bad_count, 0, "crash: count matches what was found");
	is_int(bad_next, 0, "crash: seqs never reused");
	ok(torn > 0, "crash: some writers died inside an append");
	ok(found_total > 0, "crash: records survived");
	free(rp);
	free(committed);
	munmap(mem, size);
}

/*
 * Another process reads the counters while the owner appends and acks:
 * they stay within bounds and never go backwards.
 */
static void
test_observer(void)
{
	struct ring	*r;
	size_t		 size, used, cap;
	uint64_t	 count, first, next, pfirst = 0, pnext = 0, reads = 0;
	pid_t		 pid;
	int		 st, bad = 0, i;
	void		*mem = region_new(16384, &size);

	r = ring_init(mem, size);
	cap = ring_capacity(r);
	if ((pid = fork()) == 0) {
		for (i = 0; i < 200000; i++)
			if (append_pat(r, (size_t)random() % 600) == 0)
				ring_ack(r, ring_first_unacked_seq(r) +
				    ring_count(r) / 2);
		_exit(0);
	}
	do {
		first = ring_first_unacked_seq(r);
		next = ring_next_seq(r);
		used = ring_used_bytes(r);
		count = ring_count(r);
		if (used > cap || used % 16 != 0 || count > cap / HDR ||
		    first > next || first < pfirst || next < pnext)
			bad++;
		pfirst = first;
		pnext = next;
		reads++;
	} while (waitpid(pid, &st, WNOHANG) == 0);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "observer: writer done");
	is_int(bad, 0, "observer: %llu reads consistent",
	    (unsigned long long)reads);
	ok(ring_next_seq(r) > 100000, "observer: writer made progress");
	munmap(mem, size);
}

int
main(void)
{
	tap_watchdog(30);
	srandom(1);	/* the same runs every time */
	test_sizes();
	test_basic();
	test_full();
	test_ack_exact();
	test_cursor();
	test_reserve();
	test_reset();
	test_model(RING_MIN_CAPACITY, RING_MIN_CAPACITY - HDR, 60000);
	test_model(4096, 1500, 200000);
	test_model(65536, 65536 - HDR, 100000);
	test_corrupt();
	test_crash_partial();
	test_crash_random();
	test_observer();
	return done_testing();
}
