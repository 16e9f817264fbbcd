/*
 * Unit tests for worker/ws.c: the frames of RFC 6455 section 5.7, every
 * header error, fragmentation rules, unmasking in pieces, Close payloads
 * and the handshake key.
 */
#include "autoconf.h"

#include <stdint.h>
#include <string.h>

#include "tests/tap.h"
#include "utf8.h"
#include "worker/ws.h"

#define B(s)	((const uint8_t *)(s)), (sizeof(s) - 1)
#define S(s)	(s), (sizeof(s) - 1)

static const uint8_t	rfc_mask[4] = { 0x37, 0xfa, 0x21, 0x3d };

static int	parse_prefixes(const uint8_t *, size_t, struct ws_frame *);
static void	test_rfc_examples(void);
static void	test_lengths(void);
static void	test_errors(void);
static void	test_fragmentation(void);
static void	test_unmask(void);
static void	test_close(void);
static void	test_handshake(void);

/*
 * Parse every prefix of a header: all shorter than the header must ask
 * for more, then the whole gives its length.  Returns that length, or
 * -2 if a prefix misbehaved.
 */
static int
parse_prefixes(const uint8_t *p, size_t len, struct ws_frame *f)
{
	size_t	 i;
	int	 n;

	n = ws_frame_parse(p, len, f);
	if (n <= 0)
		return n;
	for (i = 0; i < (size_t)n; i++)
		if (ws_frame_parse(p, i, f) != 0)
			return -2;
	return ws_frame_parse(p, len, f);
}

static void
test_rfc_examples(void)
{
	static const uint8_t	 hello_masked[] = { 0x81, 0x85, 0x37, 0xfa,
	    0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58 };
	static const uint8_t	 pong_masked[] = { 0x8a, 0x85, 0x37, 0xfa,
	    0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58 };
	struct ws_frame		 f;
	uint8_t			 h[WS_SERVER_HEADER_MAX], buf[16];
	size_t			 cut;
	int			 n, good;

	/* A single-frame unmasked text message: what a server sends. */
	n = ws_frame_parse(B("\x81\x05Hello"), &f);
	ok(n == -1 && f.close_code == WS_CLOSE_PROTOCOL,
	    "5.7 unmasked \"Hello\" from a client: 1002");
	ok(ws_frame_header_build(h, 1, WS_OP_TEXT, 5) == 2 &&
	    memcmp(h, "\x81\x05", 2) == 0,
	    "5.7 unmasked \"Hello\" header built");

	/* A single-frame masked text message. */
	n = parse_prefixes(hello_masked, sizeof(hello_masked), &f);
	ok(n == 6 && f.fin == 1 && f.opcode == WS_OP_TEXT && f.masked == 1 &&
	    f.payload_len == 5 && memcmp(f.mask, rfc_mask, 4) == 0,
	    "5.7 masked \"Hello\": header fields");
	memcpy(buf, hello_masked + 6, 5);
	ws_unmask(buf, 5, f.mask, 0);
	ok(memcmp(buf, "Hello", 5) == 0, "5.7 masked \"Hello\": unmasked");
	for (good = 1, cut = 0; cut <= 5; cut++) {
		memcpy(buf, hello_masked + 6, 5);
		ws_unmask(buf, cut, f.mask, 0);
		ws_unmask(buf + cut, 5 - cut, f.mask, cut);
		good &= memcmp(buf, "Hello", 5) == 0;
	}
	ok(good, "5.7 masked \"Hello\": unmasked in two pieces, any cut");

	/* A fragmented unmasked text message, as a server sends it. */
	ok(ws_frame_header_build(h, 0, WS_OP_TEXT, 3) == 2 &&
	    memcmp(h, "\x01\x03", 2) == 0, "5.7 fragment \"Hel\" header");
	ok(ws_frame_header_build(h, 1, WS_OP_CONT, 2) == 2 &&
	    memcmp(h, "\x80\x02", 2) == 0, "5.7 fragment \"lo\" header");
	n = ws_frame_parse(B("\x01\x83\x00\x00\x00\x00Hel"), &f);
	ok(n == 6 && f.fin == 0 && f.opcode == WS_OP_TEXT &&
	    f.payload_len == 3, "5.7 fragment \"Hel\", masked: parsed");
	n = ws_frame_parse(B("\x80\x82\x00\x00\x00\x00lo"), &f);
	ok(n == 6 && f.fin == 1 && f.opcode == WS_OP_CONT &&
	    f.payload_len == 2, "5.7 fragment \"lo\", masked: parsed");

	/* Unmasked Ping, masked Pong. */
	ok(ws_frame_header_build(h, 1, WS_OP_PING, 5) == 2 &&
	    memcmp(h, "\x89\x05", 2) == 0, "5.7 unmasked Ping header built");
	n = ws_frame_parse(B("\x89\x05Hello"), &f);
	ok(n == -1 && f.close_code == WS_CLOSE_PROTOCOL,
	    "5.7 unmasked Ping from a client: 1002");
	n = parse_prefixes(pong_masked, sizeof(pong_masked), &f);
	memcpy(buf, pong_masked + 6, 5);
	ws_unmask(buf, 5, f.mask, 0);
	ok(n == 6 && f.fin == 1 && f.opcode == WS_OP_PONG &&
	    f.payload_len == 5 && memcmp(buf, "Hello", 5) == 0,
	    "5.7 masked Pong \"Hello\"");

	/* 256 bytes and 64 KiB in a single unmasked binary frame. */
	ok(ws_frame_header_build(h, 1, WS_OP_BINARY, 256) == 4 &&
	    memcmp(h, "\x82\x7e\x01\x00", 4) == 0,
	    "5.7 256-byte binary header built");
	n = parse_prefixes(B("\x82\xfe\x01\x00\x37\xfa\x21\x3d"), &f);
	ok(n == 8 && f.opcode == WS_OP_BINARY && f.payload_len == 256 &&
	    memcmp(f.mask, rfc_mask, 4) == 0,
	    "5.7 256-byte binary, masked: parsed");
	ok(ws_frame_header_build(h, 1, WS_OP_BINARY, 65536) == 10 &&
	    memcmp(h, "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10) == 0,
	    "5.7 64 KiB binary header built");
	n = parse_prefixes(B("\x82\xff\x00\x00\x00\x00\x00\x01\x00\x00"
	    "\x37\xfa\x21\x3d"), &f);
	ok(n == 14 && f.opcode == WS_OP_BINARY && f.payload_len == 65536 &&
	    memcmp(f.mask, rfc_mask, 4) == 0,
	    "5.7 64 KiB binary, masked: parsed");
}

/* Length forms: the boundaries, round trips, non-minimal encodings. */
static void
test_lengths(void)
{
	static const uint64_t	 lens[] = { 0, 1, 125, 126, 127, 65535,
	    65536, 0xffffffffULL, 0x100000000ULL, 0x7fffffffffffffffULL };
	static const size_t	 hlens[] = { 2, 2, 2, 4, 4, 4, 10, 10, 10, 10 };
	struct ws_frame		 f;
	uint8_t			 h[WS_CLIENT_HEADER_MAX];
	size_t			 i, n;
	int			 good = 1;

	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		n = ws_frame_header_build(h, i & 1, WS_OP_BINARY, lens[i]);
		if (n != hlens[i] || (h[0] >> 7) != (i & 1))
			good = 0;
		/* Mask it as a client would, then parse it back. */
		h[1] |= 0x80;
		memcpy(h + n, rfc_mask, 4);
		if (parse_prefixes(h, n + 4, &f) != (int)(n + 4) ||
		    f.payload_len != lens[i] || f.fin != (i & 1) ||
		    f.opcode != WS_OP_BINARY)
			good = 0;
	}
	ok(good, "header build/parse round trip at every length boundary");

	n = (size_t)ws_frame_parse(B("\x82\xfe\x00\x05\x01\x02\x03\x04"), &f);
	ok(n == 8 && f.payload_len == 5, "16-bit form of a short length is "
	    "accepted");
	n = (size_t)ws_frame_parse(B("\x82\xff\x00\x00\x00\x00\x00\x00\x00"
	    "\x7d\x01\x02\x03\x04"), &f);
	ok(n == 14 && f.payload_len == 125, "64-bit form of a short length "
	    "is accepted");
	n = (size_t)ws_frame_parse(B("\x89\x80\x01\x02\x03\x04"), &f);
	ok(n == 6 && f.opcode == WS_OP_PING && f.payload_len == 0,
	    "empty masked ping");
	n = (size_t)ws_frame_parse(B("\x88\xfd\x01\x02\x03\x04"), &f);
	ok(n == 6 && f.payload_len == 125, "125-byte close is allowed");
	ok(ws_frame_parse(NULL, 0, &f) == 0, "nothing yet: need more");
}

static void
test_errors(void)
{
	static const struct {
		const char	*name;
		const char	*hdr;
		size_t		 len;	/* bytes that show the error */
	} bad[] = {
		{ "RSV1", "\xc1\x85", 1 },
		{ "RSV2", "\xa1\x85", 1 },
		{ "RSV3", "\x91\x85", 1 },
		{ "opcode 3", "\x83\x85", 1 },
		{ "opcode 7", "\x87\x85", 1 },
		{ "opcode 0xB", "\x8b\x85", 1 },
		{ "opcode 0xF", "\x8f\x85", 1 },
		{ "fragmented ping", "\x09\x80", 1 },
		{ "fragmented close", "\x08\x82", 1 },
		{ "unmasked text", "\x81\x05", 2 },
		{ "unmasked continuation", "\x80\x00", 2 },
		{ "ping of 126 bytes", "\x89\xfe\x00\x7e", 2 },
		{ "close with 64-bit length", "\x88\xff", 2 },
		{ "pong of 126 bytes", "\x8a\xfe", 2 },
		{ "64-bit length with MSB set", "\x82\xff\x80", 3 },
	};
	struct ws_frame	 f;
	size_t		 i, k;
	int		 early;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		early = 1;
		for (k = 0; k < bad[i].len; k++)
			if (ws_frame_parse((const uint8_t *)bad[i].hdr, k,
			    &f) != 0)
				early = 0;
		f.close_code = 0;
		ok(early && ws_frame_parse((const uint8_t *)bad[i].hdr,
		    bad[i].len, &f) == -1 && f.close_code == WS_CLOSE_PROTOCOL,
		    "%s: 1002 as soon as byte %zu is in", bad[i].name,
		    bad[i].len);
	}
	ok(ws_frame_parse(B("\x82\xff\x7f\xff\xff\xff\xff\xff\xff\xff"
	    "\x00\x00\x00\x00"), &f) == 14 &&
	    f.payload_len == 0x7fffffffffffffffULL,
	    "largest 64-bit length is accepted");
}

/*
 * Frames in order through one ws_msg; a step with `reset` starts a new
 * connection.  want is ws_msg_frame()'s answer.
 */
static void
test_fragmentation(void)
{
	static const struct {
		int		 reset, fin, opcode, want;
		const char	*what;
	} steps[] = {
		{ 1, 1, WS_OP_CONT, -1, "continuation with no message" },
		{ 1, 1, WS_OP_TEXT, WS_OP_TEXT, "unfragmented text" },
		{ 0, 1, WS_OP_BINARY, WS_OP_BINARY, "then unfragmented binary" },
		{ 0, 0, WS_OP_CONT, -1, "continuation after a whole message" },
		{ 1, 0, WS_OP_TEXT, WS_OP_TEXT, "first fragment of a text" },
		{ 0, 1, WS_OP_PING, WS_OP_PING, "ping between fragments" },
		{ 0, 0, WS_OP_CONT, WS_OP_TEXT, "middle fragment is text" },
		{ 0, 1, WS_OP_PONG, WS_OP_PONG, "pong between fragments" },
		{ 0, 1, WS_OP_CLOSE, WS_OP_CLOSE, "close between fragments" },
		{ 0, 1, WS_OP_CONT, WS_OP_TEXT, "last fragment is text" },
		{ 0, 1, WS_OP_CONT, -1, "continuation after the last one" },
		{ 0, 1, WS_OP_TEXT, WS_OP_TEXT, "a new message after it" },
		{ 1, 0, WS_OP_BINARY, WS_OP_BINARY, "first fragment of binary" },
		{ 0, 1, WS_OP_TEXT, -1, "text while binary is open" },
		{ 1, 0, WS_OP_TEXT, WS_OP_TEXT, "first fragment of a text" },
		{ 0, 0, WS_OP_TEXT, -1, "new text while text is open" },
		{ 1, 1, 3, -1, "reserved opcode" },
	};
	struct ws_msg	 m;
	struct ws_frame	 f;
	size_t		 i;

	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		if (steps[i].reset)
			ws_msg_init(&m);
		memset(&f, 0, sizeof(f));
		f.fin = (uint8_t)steps[i].fin;
		f.opcode = (uint8_t)steps[i].opcode;
		f.masked = 1;
		ok(ws_msg_frame(&m, &f) == steps[i].want, "%s: %d",
		    steps[i].what, steps[i].want);
	}
}

static void
test_unmask(void)
{
	uint8_t		 ref[80], buf[88];
	size_t		 len, off, align, cut, i;
	int		 good = 1;

	for (align = 0; align < 8; align++)
		for (off = 0; off < 8; off++)
			for (len = 0; len <= 72; len++) {
				for (i = 0; i < len; i++)
					ref[i] = (uint8_t)(i * 7 + 1);
				memcpy(buf + align, ref, len);
				ws_unmask(buf + align, len, rfc_mask, off);
				for (i = 0; i < len; i++)
					if (buf[align + i] != (ref[i] ^
					    rfc_mask[(off + i) & 3]))
						good = 0;
			}
	ok(good, "unmask equals the byte loop at every length, offset, "
	    "alignment");

	for (cut = 0; cut <= 72; cut++) {
		for (i = 0; i < 72; i++)
			ref[i] = buf[i] = (uint8_t)(i * 13);
		ws_unmask(buf, cut, rfc_mask, 0);
		ws_unmask(buf + cut, 72 - cut, rfc_mask, cut);
		ws_unmask(buf, 72, rfc_mask, 0);
		if (memcmp(buf, ref, 72) != 0)
			good = 0;
	}
	ok(good, "unmask in two pieces undoes unmask in one");
	ws_unmask(NULL, 0, rfc_mask, 3);
	ok(1, "unmask of nothing");
}

static void
test_close(void)
{
	static const struct {
		unsigned int	 code;
		int		 valid;
	} codes[] = {
		{ 0, 0 }, { 999, 0 }, { 1000, 1 }, { 1001, 1 }, { 1002, 1 },
		{ 1003, 1 }, { 1004, 0 }, { 1005, 0 }, { 1006, 0 },
		{ 1007, 1 }, { 1008, 1 }, { 1009, 1 }, { 1010, 1 },
		{ 1011, 1 }, { 1012, 1 }, { 1013, 1 }, { 1014, 1 },
		{ 1015, 0 }, { 1016, 0 }, { 2000, 0 }, { 2999, 0 },
		{ 3000, 1 }, { 3999, 1 }, { 4000, 1 }, { 4999, 1 },
		{ 5000, 0 }, { 65535, 0 }, { 70000, 0 }
	};
	struct ws_close	 c;
	uint8_t		 out[WS_CONTROL_MAX], big[WS_CONTROL_MAX + 1];
	char		 reason[200];
	size_t		 i, n;

	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		ok(ws_close_code_valid(codes[i].code) == codes[i].valid,
		    "close code %u is %s", codes[i].code,
		    codes[i].valid ? "valid" : "invalid");

	ok(ws_close_parse(NULL, 0, &c) == 0 &&
	    c.code == WS_CLOSE_NO_STATUS && c.reason_len == 0,
	    "empty close payload: no status");
	ok(ws_close_parse(B("\x03"), &c) == WS_CLOSE_PROTOCOL,
	    "1-byte close payload: 1002");
	ok(ws_close_parse(B("\x03\xe8"), &c) == 0 && c.code == 1000 &&
	    c.reason_len == 0, "1000 without reason");
	ok(ws_close_parse(B("\x0f\xa0" "bye \xce\xba"), &c) == 0 &&
	    c.code == 4000 && c.reason_len == 6 &&
	    memcmp(c.reason, "bye \xce\xba", 6) == 0,
	    "4000 with a UTF-8 reason");
	ok(ws_close_parse(B("\x03\xed"), &c) == WS_CLOSE_PROTOCOL,
	    "1005 on the wire: 1002");
	ok(ws_close_parse(B("\x03\xee"), &c) == WS_CLOSE_PROTOCOL,
	    "1006 on the wire: 1002");
	ok(ws_close_parse(B("\x13\x88"), &c) == WS_CLOSE_PROTOCOL,
	    "5000: 1002");
	ok(ws_close_parse(B("\x03\xe8" "a\xff"), &c) == WS_CLOSE_PROTOCOL,
	    "reason not UTF-8: 1002");
	ok(ws_close_parse(B("\x03\xe8" "\xce"), &c) == WS_CLOSE_PROTOCOL,
	    "reason with a cut character: 1002");
	memset(big, 'a', sizeof(big));
	big[0] = 0x03;
	big[1] = 0xe8;
	ok(ws_close_parse(big, sizeof(big), &c) == WS_CLOSE_PROTOCOL,
	    "close payload over 125 bytes: 1002");

	ok(ws_close_build(out, WS_CLOSE_NO_STATUS, "x", 1) == 0,
	    "build: no status gives an empty payload");
	ok(ws_close_build(out, WS_CLOSE_GOING_AWAY, NULL, 0) == 2 &&
	    memcmp(out, "\x03\xe9", 2) == 0, "build: 1001");
	n = ws_close_build(out, WS_CLOSE_POLICY, "origin", 6);
	ok(n == 8 && ws_close_parse(out, n, &c) == 0 && c.code == 1008 &&
	    c.reason_len == 6 && memcmp(c.reason, "origin", 6) == 0,
	    "build: 1008 with reason parses back");
	memset(reason, 'r', sizeof(reason));
	ok(ws_close_build(out, 1000, reason, sizeof(reason)) ==
	    WS_CONTROL_MAX, "build: long ASCII reason cut to 125 bytes");
	for (i = 0; i + 1 < sizeof(reason); i += 2)
		memcpy(reason + i, "\xce\xba", 2);
	n = ws_close_build(out, 1000, reason, sizeof(reason));
	ok(n == 124 && ws_close_parse(out, n, &c) == 0,
	    "build: 2-byte characters cut at a boundary (%zu)", n);
	for (i = 0; i + 3 < sizeof(reason); i += 4)
		memcpy(reason + i, "\xf0\x9f\x98\x80", 4);
	n = ws_close_build(out, 1000, reason, 124);
	ok(n == 122 && utf8_valid(out + 2, n - 2),
	    "build: 4-byte characters cut at a boundary (%zu)", n);
}

static void
test_handshake(void)
{
	char	 out[WS_ACCEPT_LEN + 1];
	char	 key[64];

	ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, out);
	is_str(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
	    "RFC 6455 1.3 accept key example");
	ws_accept_key("x", 65, out);
	ok(out[0] == '\0', "over-long key: empty accept");

	ok(ws_key_valid(S("dGhlIHNhbXBsZSBub25jZQ==")), "RFC key is valid");
	ok(ws_key_valid(S("AAAAAAAAAAAAAAAAAAAAAA==")), "all-zero key valid");
	ok(ws_key_valid(S("+/+/+/+/+/+/+/+/+/+/+w==")), "+ and / are valid");
	ok(!ws_key_valid(S("dGhlIHNhbXBsZSBub25jZQ=")), "23 characters");
	ok(!ws_key_valid(S("dGhlIHNhbXBsZSBub25jZQ===")), "25 characters");
	ok(!ws_key_valid(S("dGhlIHNhbXBsZSBub25jZQAA")), "no padding");
	ok(!ws_key_valid(S("dGhlIHNhbXBsZSBub25jZ===")), "15 bytes");
	ok(!ws_key_valid(S("dGhlIHNhbXBs=SBub25jZQ==")), "'=' inside");
	ok(!ws_key_valid(S("dGhlIHNhbXBs-SBub25jZQ==")), "'-' (base64url)");
	ok(!ws_key_valid(S("dGhlIHNhbXBs SBub25jZQ==")), "space inside");
	ok(!ws_key_valid(S("")), "empty");
	ok(!ws_key_valid(S("c2FtcGxlIGtleSBvZiAyNCBjaGFycw==")),
	    "base64 of 22 bytes");
	memset(key, 'A', sizeof(key));
	ok(!ws_key_valid(key, sizeof(key)), "64 characters");
}

int
main(void)
{
	tap_watchdog(30);
	test_rfc_examples();
	test_lengths();
	test_errors();
	test_fragmentation();
	test_unmask();
	test_close();
	test_handshake();
	return done_testing();
}
