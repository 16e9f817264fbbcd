/*
 * The contract between workers and dbwriters over the SOCK_SEQPACKET
 * socket in runtime_dir.  Bump IPC_VERSION if anything here changes;
 * both sides check it in the HELLO that opens every connection.
 */
#ifndef WSGATE_IPC_PROTO_H
#define WSGATE_IPC_PROTO_H

#include <stdint.h>

#define IPC_VERSION		3
#define IPC_MAGIC		0x57534754u	/* "WSGT" */
#define IPC_SOCKET_NAME		"dbwriter.sock"
#define IPC_MAX_PACKET		32768	/* fits any socket send buffer */

enum ipc_type {
	IPC_HELLO = 1,		/* worker -> dbwriter, first packet */
	IPC_RECORD,		/* worker -> dbwriter, a piece of a record */
	IPC_ACK,		/* dbwriter -> worker: durable up to seq */
	IPC_RECORDS		/* worker -> dbwriter, whole records */
};

/* Every packet starts with this header, little-endian on the wire. */
struct ipc_hdr {
	uint32_t	ih_magic;
	uint8_t		ih_version;
	uint8_t		ih_type;
	uint16_t	ih_reserved;
} __attribute__((packed));

struct ipc_hello {
	struct ipc_hdr	ihe_hdr;
	uint32_t	ihe_slot;
	uint32_t	ihe_generation;
	uint32_t	ihe_pid;
} __attribute__((packed));

/*
 * Records (shared/record.h encodings, each carrying its seq) go in
 * seq order.  Those that fit a packet whole travel several to a RECORDS
 * packet: the header, then one or more encodings back to back
 * (record_decode_next() splits them; nothing else may follow).  A record
 * too large for that travels in RECORD packets: piece at irc_offset of
 * irc_total bytes; the pieces of one record are consecutive on the
 * connection, and irc_seq is the record's own seq.
 */
struct ipc_record {
	struct ipc_hdr	irc_hdr;
	uint64_t	irc_seq;
	uint32_t	irc_total;
	uint32_t	irc_offset;
	/* followed by the piece's bytes */
} __attribute__((packed));

#define IPC_RECORD_PIECE	(IPC_MAX_PACKET - sizeof(struct ipc_record))
/* Bytes of encodings a RECORDS packet holds at most. */
#define IPC_RECORDS_ROOM	(IPC_MAX_PACKET - sizeof(struct ipc_hdr))

/* Cumulative: every record of this connection up to irk_seq is durable. */
struct ipc_ack {
	struct ipc_hdr	irk_hdr;
	uint64_t	irk_seq;
} __attribute__((packed));

#endif /* WSGATE_IPC_PROTO_H */
