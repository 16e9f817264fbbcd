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
 * Shared-memory record ring that survives its writer: committed records
 * are those below a head index published with release stores, so a
 * writer killed at any instruction leaves only whole records visible.
 */
#include "autoconf.h"

#include <stdatomic.h>
#include <stddef.h>
#include <string.h>

#include "log.h"
#include "ring.h"

/*
 * Layout.  The region is this header (RING_HDR_SIZE bytes) then
 * rh_capacity bytes of record space.  Positions (head, tail, cursors)
 * count bytes from the start of the ring's life and never wrap; a
 * position's place in the record space is pos % capacity.  So head -
 * tail is the bytes in use, and full and empty cannot be confused.
 *
 * Each record starts on a RING_ALIGN boundary with a struct ring_rec
 * and takes RING_FOOT(len) bytes.  A record does not wrap: when it does
 * not fit before the end of the space, a pad record fills the rest and
 * the record starts at offset 0.  Capacity and footprints are multiples
 * of RING_ALIGN == sizeof(struct ring_rec), so a pad always has room
 * for its header.
 *
 * Publication (owner side, all stores by the one owner thread):
 *   append: write pad and record bytes; write the record header with
 *	its check; store-release rh_head_seq (so it is past every seq a
 *	visible record has); store-release rh_head, the commit point;
 *	store-release rh_appended.
 *   ack: store-release rh_tail; store-release rh_tail_seq, rh_acked.
 * Readers load-acquire rh_head before reading records below it.  A
 * writer killed between two stores leaves state that ring_attach()
 * repairs: records below rh_head are committed, rh_tail_seq and the
 * counts are recomputed from the records themselves.  One killed after
 * rh_head_seq but before rh_head skips a seq: seqs in the ring are
 * strictly increasing, usually but not always consecutive.
 */
#define RING_MAGIC	0x57535247u	/* "WSRG" */
#define RING_VERSION	1
#define RING_HDR_SIZE	256
#define RING_ALIGN	16
#define RING_PAD	UINT32_MAX	/* re_len of a pad record */
#define RING_FOOT(len)	(((uint64_t)(len) + sizeof(struct ring_rec) + \
	RING_ALIGN - 1) & ~(uint64_t)(RING_ALIGN - 1))
/* Longest payload: a length that cannot be taken for RING_PAD. */
#define RING_LEN_MAX	((uint64_t)UINT32_MAX - 2 * RING_ALIGN)

struct ring_rec {
	uint32_t	re_len;		/* payload bytes, or RING_PAD */
	uint32_t	re_check;	/* ring_check(pos, re_len, re_seq) */
	uint64_t	re_seq;		/* 0 in a pad */
};

struct ring {
	/* Set by ring_init(), then read-only. */
	uint32_t		rh_magic;
	uint32_t		rh_version;
	uint64_t		rh_capacity;

	/* Written by the owner's appends. */
	_Alignas(64) _Atomic uint64_t rh_head;	/* end of committed records */
	_Atomic uint64_t	rh_head_seq;	/* seq of the next record */
	_Atomic uint64_t	rh_appended;	/* records committed, ever */
	/*
	 * The reservation: the record at rh_resv_pos, of rh_resv_len
	 * bytes, ending at rh_resv_end.  rh_resv_end == rh_head when there
	 * is none.  Only the owner reads them, and ring_attach() after it.
	 */
	_Atomic uint64_t	rh_resv_pos;
	_Atomic uint64_t	rh_resv_end;
	_Atomic uint64_t	rh_resv_len;

	/* Written by the owner's acks. */
	_Alignas(64) _Atomic uint64_t rh_tail;	/* first unacked record */
	_Atomic uint64_t	rh_tail_seq;	/* its seq */
	_Atomic uint64_t	rh_acked;	/* records freed, ever */
};

_Static_assert(sizeof(struct ring) <= RING_HDR_SIZE, "ring header size");
_Static_assert(sizeof(struct ring_rec) == RING_ALIGN, "record header");
_Static_assert(RING_HDR_SIZE % RING_MEM_ALIGN == 0, "data alignment");
_Static_assert(RING_MIN_CAPACITY % RING_ALIGN == 0, "minimum capacity");
#if ATOMIC_LONG_LOCK_FREE != 2 || ATOMIC_LLONG_LOCK_FREE != 2
#error "the ring needs lock-free 64-bit atomics to work across processes"
#endif

#define LOAD(r, f)	atomic_load_explicit(&(r)->f, memory_order_acquire)
#define STORE(r, f, v)	atomic_store_explicit(&(r)->f, (v), \
	memory_order_release)

static uint32_t		 ring_check(uint64_t, uint32_t, uint64_t);
static struct ring_rec	*ring_rec_at(const struct ring *, uint64_t);
static uint64_t		 ring_pad_size(const struct ring *, uint64_t);
static void		 ring_put_rec(struct ring *, uint64_t, uint32_t,
			    uint64_t);
static int		 ring_rec_valid(const struct ring *, uint64_t,
			    uint64_t);
static uint64_t		 ring_data_capacity(size_t);

/*
 * A record header's check: binds length and seq to the position the
 * header was written at, so that a stale header left from an earlier
 * lap, or bytes that were never a header, fail it.
 */
static uint32_t
ring_check(uint64_t pos, uint32_t len, uint64_t seq)
{
	uint64_t	x;

	x = pos * 0x9e3779b97f4a7c15ULL ^ (uint64_t)len *
	    0xc2b2ae3d27d4eb4fULL ^ seq * 0x165667b19e3779f9ULL ^ RING_MAGIC;
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return (uint32_t)x;
}

/* The record header at position pos. */
static struct ring_rec *
ring_rec_at(const struct ring *r, uint64_t pos)
{
	return (struct ring_rec *)((uintptr_t)r + RING_HDR_SIZE +
	    pos % r->rh_capacity);
}

/* Bytes from pos to the end of the record space. */
static uint64_t
ring_pad_size(const struct ring *r, uint64_t pos)
{
	return r->rh_capacity - pos % r->rh_capacity;
}

static void
ring_put_rec(struct ring *r, uint64_t pos, uint32_t len, uint64_t seq)
{
	struct ring_rec	*e = ring_rec_at(r, pos);

	e->re_len = len;
	e->re_seq = seq;
	e->re_check = ring_check(pos, len, seq);
}

/*
 * 1 if a valid record or pad header is at pos and the whole of it lies
 * before `end` and before the end of the record space.
 */
static int
ring_rec_valid(const struct ring *r, uint64_t pos, uint64_t end)
{
	const struct ring_rec	*e = ring_rec_at(r, pos);
	uint64_t		 foot;

	if (e->re_check != ring_check(pos, e->re_len, e->re_seq))
		return 0;
	if (e->re_len == RING_PAD)
		foot = ring_pad_size(r, pos);
	else if (e->re_len > RING_LEN_MAX)
		return 0;
	else
		foot = RING_FOOT(e->re_len);
	if (e->re_len == RING_PAD ? e->re_seq != 0 :
	    foot > ring_pad_size(r, pos))
		return 0;
	return foot <= end - pos;
}

/* Record space in a region of `size` bytes. */
static uint64_t
ring_data_capacity(size_t size)
{
	if (size < RING_HDR_SIZE + RING_MIN_CAPACITY)
		return 0;
	return (uint64_t)(size - RING_HDR_SIZE) & ~(uint64_t)(RING_ALIGN - 1);
}

size_t
ring_region_size(size_t capacity)
{
	if (capacity < RING_MIN_CAPACITY ||
	    capacity > SIZE_MAX - RING_HDR_SIZE - RING_ALIGN)
		return 0;
	return RING_HDR_SIZE + ((capacity + RING_ALIGN - 1) &
	    ~(size_t)(RING_ALIGN - 1));
}

struct ring *
ring_init(void *mem, size_t size)
{
	struct ring	*r = mem;
	uint64_t	 cap;

	if ((uintptr_t)mem % RING_MEM_ALIGN != 0 ||
	    (cap = ring_data_capacity(size)) == 0)
		return NULL;
	memset(r, 0, RING_HDR_SIZE);
	r->rh_version = RING_VERSION;
	r->rh_capacity = cap;
	atomic_init(&r->rh_head, 0);
	atomic_init(&r->rh_head_seq, 1);
	atomic_init(&r->rh_appended, 0);
	atomic_init(&r->rh_resv_pos, 0);
	atomic_init(&r->rh_resv_end, 0);
	atomic_init(&r->rh_resv_len, 0);
	atomic_init(&r->rh_tail, 0);
	atomic_init(&r->rh_tail_seq, 1);
	atomic_init(&r->rh_acked, 0);
	/* Last, so that a header with the magic is a whole one. */
	atomic_thread_fence(memory_order_release);
	r->rh_magic = RING_MAGIC;
	return r;
}

struct ring *
ring_attach(void *mem, size_t size, struct ring_recovery *rec)
{
	struct ring		*r = mem;
	struct ring_recovery	 rr;
	const struct ring_rec	*e;
	uint64_t		 cap, head, tail, pos, last, next;

	if ((uintptr_t)mem % RING_MEM_ALIGN != 0 ||
	    (cap = ring_data_capacity(size)) == 0)
		return NULL;
	if (r->rh_magic != RING_MAGIC || r->rh_version != RING_VERSION ||
	    r->rh_capacity != cap)
		return NULL;
	atomic_thread_fence(memory_order_acquire);
	head = LOAD(r, rh_head);
	tail = LOAD(r, rh_tail);
	if (head < tail || head - tail > cap || head % RING_ALIGN != 0 ||
	    tail % RING_ALIGN != 0)
		return NULL;

	memset(&rr, 0, sizeof(rr));
	rr.rr_torn = LOAD(r, rh_resv_end) != head;

	/*
	 * Walk the committed records; their seqs must grow.  The first
	 * one's seq is taken from the record: an ack may have died between
	 * moving rh_tail and rh_tail_seq.
	 */
	last = 0;
	for (pos = tail; pos != head; pos += e->re_len == RING_PAD ?
	    ring_pad_size(r, pos) : RING_FOOT(e->re_len)) {
		e = ring_rec_at(r, pos);
		if (!ring_rec_valid(r, pos, head))
			break;
		if (e->re_len == RING_PAD)
			continue;
		if (rr.rr_records > 0 && e->re_seq <= last)
			break;
		if (rr.rr_records++ == 0)
			rr.rr_first_seq = e->re_seq;
		last = e->re_seq;
	}
	rr.rr_corrupt = head - pos;
	head = pos;
	/*
	 * Only pads (the owner died freeing one, see ring_reserve()):
	 * free them.
	 */
	if (rr.rr_records == 0)
		tail = head;

	/*
	 * rh_head_seq was stored before rh_head, so it is past every
	 * committed record's seq; only a corrupt region says otherwise.
	 */
	next = LOAD(r, rh_head_seq);
	if (rr.rr_records > 0 && next <= last)
		next = last + 1;
	if (rr.rr_records == 0)
		rr.rr_first_seq = next;
	STORE(r, rh_head_seq, next);
	STORE(r, rh_head, head);
	STORE(r, rh_resv_pos, head);
	STORE(r, rh_resv_end, head);
	STORE(r, rh_resv_len, 0);
	STORE(r, rh_tail, tail);
	STORE(r, rh_tail_seq, rr.rr_first_seq);
	STORE(r, rh_appended, LOAD(r, rh_acked) + rr.rr_records);

	rr.rr_bytes = head - tail;
	rr.rr_next_seq = next;
	if (rec != NULL)
		*rec = rr;
	return r;
}

size_t
ring_capacity(const struct ring *r)
{
	return (size_t)r->rh_capacity;
}

size_t
ring_max_record(const struct ring *r)
{
	uint64_t	max = r->rh_capacity - sizeof(struct ring_rec);

	return (size_t)(max < RING_LEN_MAX ? max : RING_LEN_MAX);
}

void *
ring_reserve(struct ring *r, size_t len, uint64_t *seq)
{
	uint64_t	head, tail, foot, pad;

	if (len > ring_max_record(r))
		return NULL;
	head = LOAD(r, rh_head);
	tail = LOAD(r, rh_tail);
	foot = RING_FOOT(len);
	pad = ring_pad_size(r, head);
	if (pad >= foot)
		pad = 0;
	if (pad + foot > r->rh_capacity - (head - tail)) {
		if (head != tail || pad == 0)
			return NULL;
		/*
		 * Empty, but the record does not fit before the end of the
		 * space: publish a pad to the end and free it at once, as
		 * an append and an ack would, so the record starts at 0.
		 */
		ring_put_rec(r, head, RING_PAD, 0);
		head += pad;
		STORE(r, rh_head, head);
		STORE(r, rh_tail, head);
		pad = 0;
	}
	if (pad > 0)
		ring_put_rec(r, head, RING_PAD, 0);
	atomic_store_explicit(&r->rh_resv_pos, head + pad,
	    memory_order_relaxed);
	atomic_store_explicit(&r->rh_resv_len, len, memory_order_relaxed);
	atomic_store_explicit(&r->rh_resv_end, head + pad + foot,
	    memory_order_relaxed);
	*seq = LOAD(r, rh_head_seq);
	return (char *)ring_rec_at(r, head + pad) + sizeof(struct ring_rec);
}

void
ring_commit(struct ring *r)
{
	uint64_t	pos, end, seq;

	pos = atomic_load_explicit(&r->rh_resv_pos, memory_order_relaxed);
	end = atomic_load_explicit(&r->rh_resv_end, memory_order_relaxed);
	if (end == LOAD(r, rh_head))
		fatalx("%s: no reservation", __func__);
	seq = LOAD(r, rh_head_seq);
	ring_put_rec(r, pos, (uint32_t)atomic_load_explicit(&r->rh_resv_len,
	    memory_order_relaxed), seq);
	STORE(r, rh_head_seq, seq + 1);
	STORE(r, rh_head, end);
	STORE(r, rh_appended, LOAD(r, rh_appended) + 1);
}

int
ring_append(struct ring *r, const void *data, size_t len, uint64_t *seq)
{
	uint64_t	 s;
	void		*p;

	if ((p = ring_reserve(r, len, &s)) == NULL)
		return -1;
	if (len > 0)
		memcpy(p, data, len);
	ring_commit(r);
	if (seq != NULL)
		*seq = s;
	return 0;
}

void
ring_rewind(const struct ring *r, struct ring_cursor *c)
{
	c->rc_pos = LOAD(r, rh_tail);
}

int
ring_next(const struct ring *r, struct ring_cursor *c, const void **data,
    size_t *len, uint64_t *seq)
{
	const struct ring_rec	*e;
	uint64_t		 head, tail, pos = c->rc_pos;

	tail = LOAD(r, rh_tail);
	head = LOAD(r, rh_head);
	if (pos < tail || pos > head)
		pos = tail;
	/* The loop steps over a pad; a record returns. */
	for (; pos != head; pos += ring_pad_size(r, pos)) {
		e = ring_rec_at(r, pos);
		if (!ring_rec_valid(r, pos, head))
			fatalx("%s: bad record header at %llu", __func__,
			    (unsigned long long)pos);
		if (e->re_len == RING_PAD)
			continue;
		*data = e + 1;
		*len = e->re_len;
		*seq = e->re_seq;
		c->rc_pos = pos + RING_FOOT(e->re_len);
		return 1;
	}
	c->rc_pos = pos;
	return 0;
}

uint64_t
ring_ack(struct ring *r, uint64_t seq)
{
	const struct ring_rec	*e;
	uint64_t		 head, tail, freed = 0;

	head = LOAD(r, rh_head);
	tail = LOAD(r, rh_tail);
	while (tail != head) {
		e = ring_rec_at(r, tail);
		if (!ring_rec_valid(r, tail, head))
			fatalx("%s: bad record header at %llu", __func__,
			    (unsigned long long)tail);
		if (e->re_len == RING_PAD) {
			tail += ring_pad_size(r, tail);
			continue;
		}
		if (e->re_seq > seq)
			break;
		tail += RING_FOOT(e->re_len);
		freed++;
	}
	if (tail == LOAD(r, rh_tail))
		return 0;
	STORE(r, rh_tail, tail);
	STORE(r, rh_tail_seq, tail == head ? LOAD(r, rh_head_seq) :
	    ring_rec_at(r, tail)->re_seq);
	STORE(r, rh_acked, LOAD(r, rh_acked) + freed);
	return freed;
}

size_t
ring_used_bytes(const struct ring *r)
{
	uint64_t	tail;

	uint64_t	used;

	/*
	 * Tail first: head only grows, so head - tail cannot go negative.
	 * Another process may see tail and head move between the two loads
	 * (head - old tail > capacity): the answer is at most the capacity.
	 */
	tail = LOAD(r, rh_tail);
	used = LOAD(r, rh_head) - tail;
	return (size_t)(used > r->rh_capacity ? r->rh_capacity : used);
}

uint64_t
ring_count(const struct ring *r)
{
	uint64_t	acked;

	uint64_t	n, most = r->rh_capacity / sizeof(struct ring_rec);

	/* Acked first: appended only grows and is never below it. */
	acked = LOAD(r, rh_acked);
	n = LOAD(r, rh_appended) - acked;
	/* As in ring_used_bytes(): an observer's two loads may straddle. */
	return n > most ? most : n;
}

uint64_t
ring_first_unacked_seq(const struct ring *r)
{
	return LOAD(r, rh_tail_seq);
}

uint64_t
ring_next_seq(const struct ring *r)
{
	return LOAD(r, rh_head_seq);
}
