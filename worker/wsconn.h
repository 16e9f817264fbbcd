/*
 * The WebSocket side of a connection (RFC 6455): the opening handshake
 * answer, the frame receive state machine, control frames, the close
 * handshake, keepalive pings and messages handed to the endpoint.
 */
#ifndef WSGATE_WSCONN_H
#define WSGATE_WSCONN_H

#include <stddef.h>
#include <stdint.h>

#include "utf8.h"
#include "ws.h"

struct conn;

/*
 * Receive state.  A frame header may arrive in pieces (kept in rx_hdr);
 * payloads are unmasked where they land and appended to rx_msg only
 * when a message spans reads or frames.
 */
struct ws_rx {
	struct ws_frame		 rx_frame;	/* frame being received */
	uint64_t		 rx_left;	/* its payload bytes to come */
	uint64_t		 rx_off;	/* payload bytes seen */
	int			 rx_in_frame;
	int			 rx_opcode;	/* message the payload belongs to */
	uint8_t			 rx_hdr[WS_CLIENT_HEADER_MAX];
	uint8_t			 rx_hdrlen;
	struct ws_msg		 rx_msg;
	struct utf8_state	 rx_utf8;
	uint8_t			*rx_buf;	/* data message so far */
	size_t			 rx_len;
	size_t			 rx_cap;
	uint8_t			 rx_ctl[WS_CONTROL_MAX];
	uint8_t			 rx_ctllen;
};

/*
 * Validate the parsed request head of a client-listener connection and
 * either answer it with an HTTP error or switch it to a WebSocket.
 * `extra` holds bytes that followed the head (frames, already sent).
 */
void	wsconn_upgrade(struct conn *, uint8_t *extra, size_t extralen);

/* Bytes read from an open WebSocket; `p` may be modified in place. */
void	wsconn_input(struct conn *, uint8_t *p, size_t len);

/* Queue a frame.  Returns 0, or -1 if the connection was closed. */
int	wsconn_send(struct conn *, int opcode, const void *, size_t);

/* Start the close handshake with `code` (no-op when already closing). */
void	wsconn_close(struct conn *, unsigned int code, const char *reason);

/* The connection timer fired for an open WebSocket. */
void	wsconn_timer(struct conn *, double now);

/* Free receive buffers. */
void	wsconn_free(struct conn *);

#endif /* WSGATE_WSCONN_H */
