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
 * A ring of variable-length records in a memory region the caller
 * provides, built to outlive its writer: the master maps one region per
 * worker slot (MAP_SHARED | MAP_ANONYMOUS) and ring_init()s it before
 * forking; the worker in the slot ring_attach()es, appends each record
 * before the reply goes out, sends records to a dbwriter with a cursor
 * and frees them on the dbwriter's cumulative acks.  When the worker
 * dies (even by SIGKILL, even in the middle of an append) the worker
 * that replaces it attaches to the same region and finds every
 * committed record not yet acked, and nothing else.
 *
 * Ownership: one process at a time owns a ring (the slot's worker), and
 * only it, from one thread, calls ring_reserve/commit/append/ack/next and
 * ring_attach() (the previous owner must be dead and reaped).  Any other
 * process that maps the region may call the const accessors
 * (ring_used_bytes(), ring_count(), ...) at any time, for metrics; their
 * values are each consistent and at most one operation stale.
 *
 * Sequence numbers start at 1 when the region is initialised and grow
 * with each committed record for the life of the region, across owners,
 * so a seq is never reused.  They go up by one, except that an owner
 * killed inside ring_commit() may leave one unused: count records with
 * ring_count(), not by subtracting seqs.
 *
 * Nothing here allocates; append, commit and next are O(1), ack is O(1)
 * per record freed.  The region holds no pointers, so it may be mapped
 * at different addresses in different processes.
 */
#ifndef WSGATE_RING_H
#define WSGATE_RING_H

#include <stddef.h>
#include <stdint.h>

#define RING_MEM_ALIGN		64	/* alignment the region must have */
#define RING_MIN_CAPACITY	256	/* bytes of record space, at least */

/* The region header, private to ring.c; the handle is the region. */
struct ring;

/* A reader's position: a private byte position, see ring_rewind(). */
struct ring_cursor {
	uint64_t	rc_pos;
};

/*
 * What ring_attach() found, for the caller to log.  rr_torn is 1 if the
 * previous owner died inside an append (between ring_reserve() and the
 * end of ring_commit()): that record was dropped, as it was never
 * acknowledged to anyone.  rr_corrupt counts the bytes dropped from the
 * first invalid record header on: 0 unless something overwrote the
 * region.
 */
struct ring_recovery {
	uint64_t	rr_records;	/* committed records kept */
	uint64_t	rr_bytes;	/* ring bytes they use */
	uint64_t	rr_first_seq;	/* first unacked seq */
	uint64_t	rr_next_seq;	/* seq the next record will get */
	uint64_t	rr_corrupt;
	int		rr_torn;
};

/*
 * Bytes of memory a ring with `capacity` bytes of record space needs
 * (capacity is rounded up to a multiple of 16).  0 if capacity is below
 * RING_MIN_CAPACITY or the size overflows.  Each record takes its length
 * plus 16 bytes of header, rounded up to 16.
 */
size_t	ring_region_size(size_t capacity);

/*
 * Make mem[0..size) a new, empty ring, next seq 1, whatever it held.
 * mem must be RING_MEM_ALIGN-aligned (mmap()'s pages are) and stay
 * mapped while the ring is used; the capacity is what fits in size.
 * Returns the handle (== mem), or NULL if mem is misaligned or size too
 * small.
 */
struct ring	*ring_init(void *mem, size_t size);

/*
 * Take over the ring that ring_init() made in mem[0..size) (the same
 * size), after its previous owner died or exited.  Validates the header
 * (magic, version, capacity for this size, positions) and every record
 * header from the first unacked one on; keeps the committed records,
 * drops a reservation or append that was cut short and reclaims its
 * space.  A record header that fails its check (memory overwritten)
 * ends the ring there: that record and those after it are dropped and
 * counted in rr_corrupt.  Fills *rec if rec != NULL.  Returns the
 * handle, or NULL if the header is not a ring of this size (the caller
 * may ring_init() it, losing what it held).
 */
struct ring	*ring_attach(void *mem, size_t size, struct ring_recovery *rec);

/* Bytes of record space. */
size_t	ring_capacity(const struct ring *);

/* Longest record payload the ring can ever take (ring_reserve()). */
size_t	ring_max_record(const struct ring *);

/*
 * Reserve room for a record of `len` bytes and return where to write
 * it (16-byte aligned, contiguous), with the seq it will have in *seq
 * (seq must not be NULL: the record usually carries it).
 * The record is invisible (to ring_next(), a later owner, counters)
 * until ring_commit(); a reservation not committed is abandoned by the
 * next ring_reserve() or by the owner's death.  Returns NULL, changing
 * nothing visible, if the free space cannot hold the record now (the
 * worker answers 503 "overloaded") or ever (len > ring_max_record()).
 */
void	*ring_reserve(struct ring *, size_t len, uint64_t *seq);

/*
 * Publish the record of the last ring_reserve(): from here on it
 * survives the owner.  Calling it without a reservation is a bug
 * (fatalx).
 */
void	 ring_commit(struct ring *);

/*
 * Copy data[0..len) in as one record: ring_reserve() + memcpy +
 * ring_commit().  Returns 0 with *seq (if seq != NULL) set, or -1 if
 * the record does not fit (nothing written, as ring_reserve()).
 */
int	 ring_append(struct ring *, const void *data, size_t len,
	    uint64_t *seq);

/*
 * Point the cursor at the first unacked record: after attaching, and
 * when the connection to the dbwriter is re-established, to resend all
 * that was not acked.
 */
void	 ring_rewind(const struct ring *, struct ring_cursor *);

/*
 * The committed record at the cursor, and move the cursor past it.
 * Returns 1 with *data, *len and *seq set (*data points into the ring,
 * valid until that record is acked), or 0 when no record follows.  A
 * cursor left behind by ring_ack() (it pointed at a record acked since)
 * continues from the first unacked record.
 */
int	 ring_next(const struct ring *, struct ring_cursor *,
	    const void **data, size_t *len, uint64_t *seq);

/*
 * Free every record with a seq up to and including `seq` (a dbwriter's
 * cumulative ack).  Returns the number of records freed: 0 for an ack
 * at or below one already applied, everything for one beyond the last
 * record (the caller may treat that as a protocol error first).
 */
uint64_t ring_ack(struct ring *, uint64_t seq);

/* Bytes in use: unacked records with their headers and padding. */
size_t	 ring_used_bytes(const struct ring *);

/* Unacked (committed) records. */
uint64_t ring_count(const struct ring *);

/* Seq of the oldest unacked record; ring_next_seq() when empty. */
uint64_t ring_first_unacked_seq(const struct ring *);

/* Seq the next committed record will get. */
uint64_t ring_next_seq(const struct ring *);

#endif /* WSGATE_RING_H */
