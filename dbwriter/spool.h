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
 * The dbwriter's on-disk spool: an append-only, checksummed log of opaque
 * records that PostgreSQL has not committed yet, replayed in order once
 * it has, plus a dead-letter file for records PostgreSQL never accepts.
 *
 * Layout, under spool_dir:
 *
 *	<spool_dir>/<name>/lock				flock(2)ed by the owner
 *	<spool_dir>/<name>/spool-<16 hex digits>.seg	segments, oldest first
 *	<spool_dir>/dead-letter				shared by every name
 *
 * Sharing spool_dir: each dbwriter opens a name no live process holds
 * (the flock says so; names unique per generation and slot, such as
 * "g3-s0", let an old generation drain while the new one runs).
 * spool_adopt() moves the segments of every name whose owner is gone
 * (killed, or a slot that no longer exists) into the caller's spool, so
 * whichever dbwriter calls it replays them; an emptied name's directory
 * is removed.  spool_dir must be a local file system (flock(2), rename(2))
 * that holds nothing else.  Segment numbers only grow within a name; a
 * segment rolls at `segment_bytes`.
 *
 * Every record, in segments and in the dead-letter file, is one frame,
 * integers little-endian:
 *
 *	0	4	magic "WSP\001" (format version 1)
 *	4	4	payload length, at most SPOOL_FRAME_MAX
 *	8	4	CRC32C of the payload
 *	12	4	CRC32C of bytes 0..11 (a torn length is never trusted)
 *	16	len	payload
 *
 * A dead-letter payload is: reason length (4), reason, record.
 *
 * Durability: spool_append() only buffers; spool_sync() writes and
 * fdatasync()s the buffered frames (and fsync()s the directory when it
 * creates a segment).  Acknowledge records only after spool_sync()
 * returned 0.  Replay yields the records in append order;
 * spool_commit() deletes what PostgreSQL holds, whole segments at a time.
 * Progress inside a segment is not saved: after a restart the oldest
 * segment is replayed from its start, which the inserts' ON CONFLICT
 * (request_key) DO NOTHING absorbs.
 *
 * Damage (torn tails after a crash, flipped bytes) is skipped with a
 * log_warnx() naming file, offset and byte count; the frame after it is
 * found by scanning for the magic and a valid header checksum.  A record
 * is never handed out unless both its checksums match.
 *
 * Not thread-safe: one thread at a time per spool (spool_crc32c() is
 * safe anywhere).  Every call may wait for the disk: spool_sync() writes
 * and fdatasync()s (0.2 ms to a few ms, far more on a busy disk), others
 * read, unlink or fsync a directory.  So the dbwriter makes them all on a
 * thread of its own (spoolq.c), never on its event loop; only
 * spool_open() and the first spool_adopt() before the loop runs, and
 * spool_close() after it stopped.
 */
#ifndef WSGATE_SPOOL_H
#define WSGATE_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#define SPOOL_OK		0
#define SPOOL_FULL		1	/* max_bytes reached, or disk full */

#define SPOOL_HDR_LEN		16
#define SPOOL_MAX_RECORD	(256U * 1024 * 1024)
#define SPOOL_REASON_MAX	1024	/* longer dead-letter reasons are cut */
#define SPOOL_FRAME_MAX		(SPOOL_MAX_RECORD + 4 + SPOOL_REASON_MAX)
#define SPOOL_SEGMENT_BYTES	(64U * 1024 * 1024)
#define SPOOL_NAME_MAX		64
#define SPOOL_DEAD_LETTER	"dead-letter"

struct spool;

/* A place in the spool: just past one record. */
struct spool_pos {
	uint64_t	sp_seg;		/* segment number */
	uint64_t	sp_off;		/* byte offset in that segment */
};

struct spool_rec {
	const void		*sr_data;	/* the record's bytes */
	size_t			 sr_len;
	struct spool_pos	 sr_end;	/* hand to spool_commit() */
};

struct spool_stats {
	uint64_t	ss_bytes;	/* segments + buffered, <= max_bytes */
	uint64_t	ss_pending;	/* buffered, not yet synced */
	uint64_t	ss_segments;	/* segment files */
	uint64_t	ss_skipped;	/* damaged bytes skipped since open */
	uint64_t	ss_dead_letters; /* records dead-lettered since open */
};

/*
 * Open (creating the directories) the spool `name` under `dir`, holding
 * at most `max_bytes`, rolling segments at `segment_bytes` (0: the 64 MiB
 * default).  `name` is 1 to SPOOL_NAME_MAX characters of [A-Za-z0-9._-],
 * not starting with a dot.  Existing segments are kept for replay; the
 * newest is read once, and a torn tail is logged and truncated so appends
 * continue after its last whole record.  Returns NULL with errno set:
 * EINVAL for a bad name, EWOULDBLOCK if another live process holds
 * `name`, or what a system call failed with.
 */
struct spool	*spool_open(const char *dir, const char *name,
		    uint64_t max_bytes, uint64_t segment_bytes);

/*
 * Release the name and free the spool; NULL is a no-op.  Records appended
 * since the last successful spool_sync() are dropped: they were never
 * acknowledged.  An empty spool's directory is removed.
 */
void		 spool_close(struct spool *);

/*
 * Buffer a copy of `len` bytes of `rec` (no I/O).  Returns SPOOL_OK;
 * SPOOL_FULL if it would take the spool (buffered bytes included) past
 * max_bytes: nothing is buffered, stop acknowledging and retry once
 * spool_commit() freed a segment; or -1 with
 * errno EMSGSIZE if the record could never fit (longer than
 * SPOOL_MAX_RECORD, or than max_bytes on its own).
 */
int		 spool_append(struct spool *, const void *rec, size_t len);

/*
 * Write and fdatasync() everything buffered, rolling segments as needed;
 * returns at once when nothing is buffered.  Returns SPOOL_OK when all of
 * it is durable; else logs, truncates the segment back to its last synced
 * byte and keeps the buffer for the next call: SPOOL_FULL for ENOSPC or
 * EDQUOT, -1 with errno for other errors.  Records appended since the
 * last SPOOL_OK must not be acknowledged until a call returns SPOOL_OK.
 */
int		 spool_sync(struct spool *);

/*
 * Drop the buffered, unsynced records (a caller that stored them in
 * PostgreSQL after all).
 */
void		 spool_discard(struct spool *);

/*
 * The next synced record after the replay cursor, oldest first, and move
 * the cursor past it.  Returns 1 and fills `rec`, whose sr_data stays
 * valid until the next spool_replay_next(), spool_rewind() or
 * spool_close(); 0 when no record is left (more may be appended later);
 * -1 with errno if a segment could not be opened (retry later).  Damaged
 * or unreadable bytes are logged, counted and skipped, never returned; a
 * finished segment without one valid frame is deleted on the way.
 */
int		 spool_replay_next(struct spool *, struct spool_rec *rec);

/* Move the replay cursor back to the last commit (a batch failed). */
void		 spool_rewind(struct spool *);

/*
 * Every record up to `upto` (an sr_end from spool_replay_next()) is in
 * PostgreSQL: delete the segments that lie wholly before it, the current
 * one too once it is wholly consumed; later spool_rewind()s return here.
 * Batches may commit in order while later ones are in flight, or after a
 * later one failed and rewound.  Positions past anything replayed are
 * clamped, older ones ignored.  Returns 0, or -1 if a segment could not
 * be deleted (logged; it is forgotten, and replayed again after a
 * restart).
 */
int		 spool_commit(struct spool *, const struct spool_pos *upto);

/*
 * Take over the segments of every other name under the spool's dir whose
 * owner is gone, oldest first, while they fit in max_bytes (an empty
 * spool takes at least one segment), and remove the emptied directories.
 * They are replayed after the caller's own records.  Call it at startup
 * and now and then.  Returns the number of segments taken, or -1 with
 * errno if the spool's dir could not be read.
 */
int		 spool_adopt(struct spool *);

/*
 * Append `rec` and `reason` (NULL: "", cut at SPOOL_REASON_MAX bytes) as
 * one frame to the dead-letter file, under an flock(2) shared with other
 * dbwriters, and fdatasync() it; logged and counted, never replayed.
 * Returns 0, or -1 with errno (EMSGSIZE if len > SPOOL_MAX_RECORD).
 */
int		 spool_dead_letter(struct spool *, const void *rec, size_t len,
		    const char *reason);

/* Records dead-lettered through this spool since it was opened. */
uint64_t	 spool_dead_letters(const struct spool *);

void		 spool_stats(const struct spool *, struct spool_stats *);

/*
 * If a whole, valid frame starts at `buf` (of `len` bytes), point
 * `*payload` at its payload, store its length in `*plen` and return the
 * frame's length; else return 0.  Reads nothing past buf + len.
 */
size_t		 spool_frame_decode(const void *buf, size_t len,
		    const void **payload, size_t *plen);

/*
 * CRC32C (Castagnoli), continuing from `crc` (0 to start):
 * spool_crc32c(spool_crc32c(0, a), b) is the CRC of a then b.
 * SSE4.2 when the CPU has it, else slicing-by-8; the _sw variant always
 * uses the table (for tests).
 */
uint32_t	 spool_crc32c(uint32_t crc, const void *, size_t);
uint32_t	 spool_crc32c_sw(uint32_t crc, const void *, size_t);

#endif /* WSGATE_SPOOL_H */
