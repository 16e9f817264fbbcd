/*
 * RFC 6455 server-side building blocks: client frame headers, the
 * fragmentation rules, unmasking, server frame headers, Close payloads
 * and the opening-handshake key.  Pure: no I/O, no allocation.
 */
#ifndef WSGATE_WS_H
#define WSGATE_WS_H

#include <stddef.h>
#include <stdint.h>

/* Opcodes (RFC 6455 section 5.2); the rest are reserved. */
#define WS_OP_CONT	0x0
#define WS_OP_TEXT	0x1
#define WS_OP_BINARY	0x2
#define WS_OP_CLOSE	0x8
#define WS_OP_PING	0x9
#define WS_OP_PONG	0xa

/* Close status codes (section 7.4.1). */
#define WS_CLOSE_NORMAL		1000
#define WS_CLOSE_GOING_AWAY	1001
#define WS_CLOSE_PROTOCOL	1002
#define WS_CLOSE_UNSUPPORTED	1003
#define WS_CLOSE_NO_STATUS	1005	/* never on the wire */
#define WS_CLOSE_ABNORMAL	1006	/* never on the wire */
#define WS_CLOSE_INVALID_DATA	1007
#define WS_CLOSE_POLICY		1008
#define WS_CLOSE_TOO_BIG	1009
#define WS_CLOSE_EXTENSION	1010
#define WS_CLOSE_INTERNAL	1011

#define WS_CLIENT_HEADER_MAX	14	/* 2 + 8 length + 4 mask */
#define WS_SERVER_HEADER_MAX	10	/* 2 + 8 length, never masked */
#define WS_CONTROL_MAX		125	/* control frame payload */
#define WS_CLOSE_REASON_MAX	123	/* control payload minus the code */
#define WS_KEY_LEN		24	/* base64 of 16 bytes */
#define WS_ACCEPT_LEN		28	/* base64 of a SHA-1 digest */

struct ws_frame {
	uint8_t		 fin;		/* 0 or 1 */
	uint8_t		 opcode;	/* WS_OP_* */
	uint8_t		 masked;	/* always 1 when parsed */
	uint8_t		 mask[4];
	uint64_t	 payload_len;
	unsigned int	 close_code;	/* after ws_frame_parse() == -1 */
};

/*
 * Parse the header of a frame sent by a client from buf[0..len).
 * Returns the header length (2 to 14) once all of it is there, 0 when
 * more bytes are needed, or -1 with f->close_code = WS_CLOSE_PROTOCOL
 * when the frame breaks RFC 6455 for a server that negotiated no
 * extension: an RSV bit set, a reserved opcode, no mask, a fragmented
 * control frame or one longer than 125 bytes, a 64-bit length with its
 * most significant bit set.  Errors are reported as soon as the byte
 * that shows them is there, before the rest of the header.  Lengths in
 * a longer form than needed are accepted, as the RFC does not forbid
 * them.  The payload length is not limited here.
 */
int	ws_frame_parse(const uint8_t *buf, size_t len, struct ws_frame *f);

/*
 * Fragmentation rules (section 5.4) across the frames of a connection:
 * a continuation needs a message in progress, a new text or binary frame
 * needs none, control frames may come in between.
 */
struct ws_msg {
	uint8_t		 m_opcode;	/* of the message in progress, or 0 */
};

void	ws_msg_init(struct ws_msg *);

/*
 * Account for frame f, as ws_frame_parse() filled it in.  Returns the
 * opcode its payload belongs to: that of the message in progress
 * (WS_OP_TEXT or WS_OP_BINARY) for a continuation, f->opcode for any
 * other frame; or -1 if f breaks the rules, to be answered with
 * WS_CLOSE_PROTOCOL.  A frame with FIN set ends the message it belongs
 * to.
 */
int	ws_msg_frame(struct ws_msg *, const struct ws_frame *f);

/*
 * XOR p[0..len) with the masking key, p[0] being byte `offset` of the
 * payload, so a payload may be unmasked in the pieces it arrives in.
 */
void	ws_unmask(uint8_t *p, size_t len, const uint8_t mask[4],
	    size_t offset);

/*
 * Write the header of an unmasked server frame carrying `len` payload
 * bytes to out, in the shortest length form.  Returns its length: 2, 4
 * or 10.  opcode is one of WS_OP_*; len must be below 2^63.
 */
size_t	ws_frame_header_build(uint8_t out[WS_SERVER_HEADER_MAX], int fin,
	    int opcode, uint64_t len);

/*
 * 1 if `code` may be received in a Close frame: 1000-1003, 1007-1014
 * (those in 1012-1014 registered with IANA after RFC 6455) and
 * 3000-4999; 0 otherwise (below 1000, 1004-1006, 1015-2999, 5000 up).
 */
int	ws_close_code_valid(unsigned int code);

struct ws_close {
	unsigned int	 code;		/* WS_CLOSE_NO_STATUS if none sent */
	const uint8_t	*reason;	/* points into the payload */
	size_t		 reason_len;
};

/*
 * Parse the (unmasked) payload of a Close frame received from a client.
 * Returns 0 with c filled in when it is valid: empty, or a valid code
 * followed by a UTF-8 reason.  Otherwise returns the status to close the
 * connection with: WS_CLOSE_PROTOCOL for a 1-byte payload, an invalid
 * code, and also a reason that is not UTF-8 (the project's rule, where
 * RFC 6455 would allow 1007).
 */
int	ws_close_parse(const uint8_t *p, size_t len, struct ws_close *c);

/*
 * Write a Close payload to out: nothing when code is 0 or
 * WS_CLOSE_NO_STATUS, else the code and `reason`, cut to
 * WS_CLOSE_REASON_MAX bytes at a character boundary if longer.  reason
 * must be UTF-8 and may be NULL when reason_len is 0.  Returns the
 * payload length, at most WS_CONTROL_MAX.
 */
size_t	ws_close_build(uint8_t out[WS_CONTROL_MAX], unsigned int code,
	    const char *reason, size_t reason_len);

/*
 * 1 if key[0..len) is a Sec-WebSocket-Key the RFC allows: base64 that
 * decodes to exactly 16 bytes, i.e. 22 base64 characters and "==".
 */
int	ws_key_valid(const char *key, size_t len);

/*
 * Sec-WebSocket-Accept for `key`: base64(SHA-1(key + RFC 6455 GUID)),
 * written to out as WS_ACCEPT_LEN characters and a NUL.  key should
 * have passed ws_key_valid(); a key longer than 64 bytes, or a failure
 * inside OpenSSL, leaves out empty ("").
 */
void	ws_accept_key(const char *key, size_t keylen,
	    char out[WS_ACCEPT_LEN + 1]);

#endif /* WSGATE_WS_H */
