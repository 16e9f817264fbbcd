/*
 * The contract between workers and dbwriters over the SOCK_SEQPACKET
 * socket in runtime_dir.  Bump IPC_VERSION if anything here changes;
 * both sides check it in the HELLO that opens every connection.
 */
#ifndef WSGATE_IPC_PROTO_H
#define WSGATE_IPC_PROTO_H

#include <stdint.h>

#define IPC_VERSION		1
#define IPC_MAGIC		0x57534754u	/* "WSGT" */
#define IPC_SOCKET_NAME		"dbwriter.sock"
#define IPC_MAX_PACKET		65536

enum ipc_type {
	IPC_HELLO = 1		/* worker -> dbwriter, first packet */
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

#endif /* WSGATE_IPC_PROTO_H */
