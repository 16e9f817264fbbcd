/*
 * libFuzzer target for worker/ws.c and shared/utf8.c: the input is a
 * stream of client frames, taken through header parsing, the
 * fragmentation rules, unmasking in pieces, UTF-8 validation of text
 * messages in pieces and Close payload parsing, each checked against a
 * second way of computing the same thing.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"
#include "worker/ws.h"

#define WS_FUZZ_MAX	(1 << 16)

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static uint8_t	payload[WS_FUZZ_MAX];
static uint8_t	message[WS_FUZZ_MAX];

static size_t	fuzz_utf8_ref(const uint8_t *, size_t, int *);
static int	fuzz_utf8_valid(const uint8_t *, size_t);
static void	fuzz_utf8_bytes(const uint8_t *, size_t);
static void	fuzz_header(const struct ws_frame *, int);
static void	fuzz_unmask(const uint8_t *, size_t, const uint8_t *);
static void	fuzz_close(const uint8_t *, size_t);
static void	fuzz_key(const uint8_t *, size_t);

/*
 * RFC 3629's ABNF, production by production: the range the second byte
 * must fall in depends on the first, the others are 80-BF.  Returns the
 * index of the first byte that no UTF-8 text can have there, or len if
 * there is none; *partial is set when the end cuts a character.
 */
static size_t
fuzz_utf8_ref(const uint8_t *p, size_t len, int *partial)
{
	size_t	 i = 0, n, k;
	uint8_t	 lo, hi, c;

	*partial = 0;
	while (i < len) {
		c = p[i];
		lo = 0x80;
		hi = 0xbf;
		if (c <= 0x7f)
			n = 1;
		else if (c >= 0xc2 && c <= 0xdf)
			n = 2;
		else if (c >= 0xe0 && c <= 0xef) {
			n = 3;
			if (c == 0xe0)
				lo = 0xa0;
			else if (c == 0xed)
				hi = 0x9f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 4;
			if (c == 0xf0)
				lo = 0x90;
			else if (c == 0xf4)
				hi = 0x8f;
		} else
			return i;
		for (k = 1; k < n; k++) {
			if (i + k == len) {
				*partial = 1;
				return len;
			}
			if (p[i + k] < lo || p[i + k] > hi)
				return i + k;
			lo = 0x80;
			hi = 0xbf;
		}
		i += n;
	}
	return len;
}

static int
fuzz_utf8_valid(const uint8_t *p, size_t len)
{
	int	 partial;

	return fuzz_utf8_ref(p, len, &partial) == len && !partial;
}

/*
 * The raw input as text, one byte a call: the validator must fail at
 * exactly the byte the reference names, and agree on the end state.
 */
static void
fuzz_utf8_bytes(const uint8_t *p, size_t len)
{
	struct utf8_state	 u;
	size_t			 bad, i;
	int			 partial, st = UTF8_OK;

	bad = fuzz_utf8_ref(p, len, &partial);
	utf8_init(&u);
	for (i = 0; i < len; i++) {
		st = utf8_feed(&u, p + i, 1);
		if ((st == UTF8_INVALID) != (i >= bad))
			abort();
	}
	if (bad == len && st != (partial ? UTF8_PARTIAL : UTF8_OK))
		abort();
	if (utf8_valid(p, len) != (bad == len && !partial))
		abort();
}

/* The header a server would build for f, masked, parses back to f. */
static void
fuzz_header(const struct ws_frame *f, int hlen)
{
	struct ws_frame	 g;
	uint8_t		 h[WS_CLIENT_HEADER_MAX];
	size_t		 n;

	if (f->payload_len >> 63)
		abort();
	n = ws_frame_header_build(h, f->fin, f->opcode, f->payload_len);
	if (n + 4 > (size_t)hlen)	/* shortest form, never longer */
		abort();
	h[1] |= 0x80;
	memcpy(h + n, f->mask, 4);
	if (ws_frame_parse(h, n + 4, &g) != (int)(n + 4) ||
	    g.fin != f->fin || g.opcode != f->opcode ||
	    g.payload_len != f->payload_len ||
	    memcmp(g.mask, f->mask, 4) != 0)
		abort();
}

/*
 * Unmask src into payload in pieces cut where the data says, and check
 * each byte against the plain definition.
 */
static void
fuzz_unmask(const uint8_t *src, size_t len, const uint8_t *mask)
{
	size_t	 at = 0, step, i;

	memcpy(payload, src, len);
	for (i = 0; at < len; i++) {
		step = 1 + (size_t)src[i % len] % 37;
		if (step > len - at)
			step = len - at;
		ws_unmask(payload + at, step, mask, at);
		at += step;
	}
	for (i = 0; i < len; i++)
		if (payload[i] != (src[i] ^ mask[i & 3]))
			abort();
}

static void
fuzz_close(const uint8_t *p, size_t len)
{
	struct ws_close	 c, d;
	uint8_t		 out[WS_CONTROL_MAX];
	size_t		 n;
	int		 rc;

	rc = ws_close_parse(p, len, &c);
	if (rc != 0) {
		if (rc != WS_CLOSE_PROTOCOL)
			abort();
		return;
	}
	if (len >= 2 && (!ws_close_code_valid(c.code) ||
	    !fuzz_utf8_valid(c.reason, c.reason_len)))
		abort();
	n = ws_close_build(out, c.code, (const char *)c.reason,
	    c.reason_len);
	if (n != len || ws_close_parse(out, n, &d) != 0 || d.code != c.code ||
	    memcmp(out, p, n) != 0)
		abort();
}

static void
fuzz_key(const uint8_t *p, size_t len)
{
	char	 out[WS_ACCEPT_LEN + 1];
	size_t	 n = len < WS_KEY_LEN ? len : WS_KEY_LEN;

	if (ws_key_valid((const char *)p, n) && n != WS_KEY_LEN)
		abort();
	ws_accept_key((const char *)p, n, out);
	if (strlen(out) != WS_ACCEPT_LEN)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ws_frame		 f;
	struct ws_msg		 m;
	struct utf8_state	 u;
	const uint8_t		*pl;
	size_t			 off = 0, plen, msglen = 0, cut;
	int			 hlen, op, st = UTF8_OK, bad = 0;

	if (size > WS_FUZZ_MAX)
		return 0;
	fuzz_key(data, size);
	fuzz_utf8_bytes(data, size);
	ws_msg_init(&m);
	utf8_init(&u);
	while (off < size) {
		hlen = ws_frame_parse(data + off, size - off, &f);
		if (hlen == 0)
			break;
		if (hlen < 0) {
			if (f.close_code != WS_CLOSE_PROTOCOL)
				abort();
			break;
		}
		if (hlen < 6 || hlen > WS_CLIENT_HEADER_MAX || !f.masked)
			abort();
		fuzz_header(&f, hlen);
		if ((op = ws_msg_frame(&m, &f)) < 0)
			break;

		pl = data + off + (size_t)hlen;
		plen = size - off - (size_t)hlen;
		if (f.payload_len < plen)
			plen = (size_t)f.payload_len;
		fuzz_unmask(pl, plen, f.mask);

		if (op == WS_OP_TEXT) {
			/* The message so far, fed in two pieces. */
			memcpy(message + msglen, payload, plen);
			msglen += plen;
			cut = plen == 0 ? 0 : payload[0] % (plen + 1);
			if (utf8_feed(&u, payload, cut) == UTF8_INVALID)
				bad = 1;
			st = utf8_feed(&u, payload + cut, plen - cut);
			if (st == UTF8_INVALID)
				bad = 1;
			if (bad && fuzz_utf8_valid(message, msglen))
				abort();
			if (f.fin && plen == f.payload_len) {
				if ((st == UTF8_OK) !=
				    fuzz_utf8_valid(message, msglen) ||
				    (st == UTF8_OK) !=
				    utf8_valid(message, msglen))
					abort();
				msglen = 0;
				bad = 0;
				utf8_init(&u);
			}
		} else if (op == WS_OP_CLOSE && plen == f.payload_len) {
			fuzz_close(payload, plen);
			break;
		}
		if (plen < f.payload_len)
			break;
		off += (size_t)hlen + plen;
	}
	return 0;
}
