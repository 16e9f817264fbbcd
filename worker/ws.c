/*
 * RFC 6455 framing and handshake primitives for the server side; the
 * connection code drives them and owns every buffer.
 */
#include "autoconf.h"

#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "utf8.h"
#include "ws.h"

#define WS_GUID		"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_KEY_MAX	64	/* longest key ws_accept_key() hashes */

/* Bit n set: opcode n is defined (section 5.2). */
#define WS_OPCODES_KNOWN	((1u << WS_OP_CONT) | (1u << WS_OP_TEXT) | \
	(1u << WS_OP_BINARY) | (1u << WS_OP_CLOSE) | (1u << WS_OP_PING) | \
	(1u << WS_OP_PONG))
#define WS_OP_IS_CONTROL(op)	(((op) & 0x8) != 0)
#define WS_OP_IS_KNOWN(op)	((WS_OPCODES_KNOWN >> (op)) & 1u)

static int	ws_frame_fail(struct ws_frame *);

/* ---- Frames ---- */

static int
ws_frame_fail(struct ws_frame *f)
{
	f->close_code = WS_CLOSE_PROTOCOL;
	return -1;
}

int
ws_frame_parse(const uint8_t *buf, size_t len, struct ws_frame *f)
{
	uint64_t	 plen;
	size_t		 hlen, i;

	f->close_code = 0;
	if (len < 1)
		return 0;
	f->fin = buf[0] >> 7;
	f->opcode = buf[0] & 0x0f;
	/* RSV1-3 mean something only with a negotiated extension. */
	if ((buf[0] & 0x70) != 0 || !WS_OP_IS_KNOWN(f->opcode))
		return ws_frame_fail(f);
	if (WS_OP_IS_CONTROL(f->opcode) && !f->fin)
		return ws_frame_fail(f);
	if (len < 2)
		return 0;
	f->masked = buf[1] >> 7;
	plen = buf[1] & 0x7f;
	if (!f->masked)
		return ws_frame_fail(f);
	if (WS_OP_IS_CONTROL(f->opcode) && plen > WS_CONTROL_MAX)
		return ws_frame_fail(f);

	hlen = 2 + 4;
	if (plen == 126)
		hlen += 2;
	else if (plen == 127) {
		hlen += 8;
		if (len >= 3 && (buf[2] & 0x80) != 0)
			return ws_frame_fail(f);
	}
	if (len < hlen)
		return 0;

	if (plen >= 126) {
		plen = 0;
		for (i = 2; i < hlen - 4; i++)
			plen = plen << 8 | buf[i];
	}
	f->payload_len = plen;
	memcpy(f->mask, buf + hlen - 4, 4);
	return (int)hlen;
}

size_t
ws_frame_header_build(uint8_t out[WS_SERVER_HEADER_MAX], int fin,
    int opcode, uint64_t len)
{
	size_t	 n, i;

	out[0] = (fin ? 0x80 : 0) | (opcode & 0x0f);
	if (len <= WS_CONTROL_MAX) {
		out[1] = (uint8_t)len;
		return 2;
	}
	if (len <= 0xffff) {
		out[1] = 126;
		n = 4;
	} else {
		out[1] = 127;
		n = 10;
	}
	for (i = n - 1; i >= 2; i--, len >>= 8)
		out[i] = (uint8_t)len;
	return n;
}

void
ws_msg_init(struct ws_msg *m)
{
	m->m_opcode = 0;
}

int
ws_msg_frame(struct ws_msg *m, const struct ws_frame *f)
{
	int	 op = f->opcode;

	if (op > 0xf || !WS_OP_IS_KNOWN(op))
		return -1;
	if (WS_OP_IS_CONTROL(op))
		return op;
	if (op == WS_OP_CONT) {
		if (m->m_opcode == 0)
			return -1;
		op = m->m_opcode;
	} else if (m->m_opcode != 0)
		return -1;
	m->m_opcode = f->fin ? 0 : op;
	return op;
}

void
ws_unmask(uint8_t *p, size_t len, const uint8_t mask[4], size_t offset)
{
	uint64_t	 m, w;
	uint8_t		 m8[8];
	size_t		 i;

	/* The key as it lines up with p[0..8), as a word. */
	for (i = 0; i < sizeof(m8); i++)
		m8[i] = mask[(offset + i) & 3];
	memcpy(&m, m8, sizeof(m));

	for (; len >= sizeof(w); p += sizeof(w), len -= sizeof(w)) {
		memcpy(&w, p, sizeof(w));
		w ^= m;
		memcpy(p, &w, sizeof(w));
	}
	for (i = 0; i < len; i++)
		p[i] ^= m8[i];
}

/* ---- Close ---- */

int
ws_close_code_valid(unsigned int code)
{
	return (code >= 1000 && code <= 1003) ||
	    (code >= 1007 && code <= 1014) ||
	    (code >= 3000 && code <= 4999);
}

int
ws_close_parse(const uint8_t *p, size_t len, struct ws_close *c)
{
	c->code = WS_CLOSE_NO_STATUS;
	c->reason = NULL;
	c->reason_len = 0;
	if (len == 0)
		return 0;
	if (len < 2 || len > WS_CONTROL_MAX)
		return WS_CLOSE_PROTOCOL;
	c->code = (unsigned int)p[0] << 8 | p[1];
	if (!ws_close_code_valid(c->code))
		return WS_CLOSE_PROTOCOL;
	if (!utf8_valid(p + 2, len - 2))
		return WS_CLOSE_PROTOCOL;
	c->reason = p + 2;
	c->reason_len = len - 2;
	return 0;
}

size_t
ws_close_build(uint8_t out[WS_CONTROL_MAX], unsigned int code,
    const char *reason, size_t reason_len)
{
	size_t	 n = reason_len;

	if (code == 0 || code == WS_CLOSE_NO_STATUS)
		return 0;
	out[0] = (uint8_t)(code >> 8);
	out[1] = (uint8_t)code;
	if (n > WS_CLOSE_REASON_MAX) {
		/* Back up to the start of the character that does not fit. */
		n = WS_CLOSE_REASON_MAX;
		while (n > 0 && ((unsigned char)reason[n] & 0xc0) == 0x80)
			n--;
	}
	if (n > 0)
		memcpy(out + 2, reason, n);
	return 2 + n;
}

/* ---- Handshake ---- */

static int
ws_base64_char(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '+' || c == '/';
}

int
ws_key_valid(const char *key, size_t len)
{
	size_t	 i;

	/*
	 * 16 bytes are 21 characters and 2 bits, so a 22nd character and
	 * "==".  The 4 unused bits of the 22nd are not required to be zero,
	 * as decoders in general do not require it either.
	 */
	if (len != WS_KEY_LEN || key[22] != '=' || key[23] != '=')
		return 0;
	for (i = 0; i < 22; i++)
		if (!ws_base64_char((unsigned char)key[i]))
			return 0;
	return 1;
}

void
ws_accept_key(const char *key, size_t keylen, char out[WS_ACCEPT_LEN + 1])
{
	unsigned char	 buf[WS_KEY_MAX + sizeof(WS_GUID) - 1];
	unsigned char	 md[SHA_DIGEST_LENGTH];

	out[0] = '\0';
	if (keylen > WS_KEY_MAX)
		return;
	if (keylen > 0)
		memcpy(buf, key, keylen);
	memcpy(buf + keylen, WS_GUID, sizeof(WS_GUID) - 1);
	if (SHA1(buf, keylen + sizeof(WS_GUID) - 1, md) == NULL)
		return;
	EVP_EncodeBlock((unsigned char *)out, md, sizeof(md));
}
