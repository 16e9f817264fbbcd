/*
 * wsbench: WebSocket load generator for wsgate's echo endpoint.  Many
 * client connections on one libev loop, each keeping N pipelined requests
 * in flight, with a fixed-memory latency histogram; or --idle, which opens
 * connections, completes the handshake and holds them so the server's
 * memory per idle connection can be measured.  For tests it can also
 * record every reply (--record), reconnect dropped connections
 * (--reconnect) and wait for the replies in flight at the end (--drain).
 * tests/bench/README.md.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT	24
#endif

#define WSB_GUID		"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WSB_RBUF_SIZE		(256 * 1024)	/* shared read buffer */
#define WSB_HBUF_SIZE		8192		/* handshake response headers */
#define WSB_CTL_FRAME		(6 + 125)	/* largest control frame */
#define WSB_CTL_SLACK		(4 * WSB_CTL_FRAME)
#define WSB_DATA_MAX		(256 * 1024)	/* queued data per connection */
#define WSB_MAX_ERRORS		10		/* printed; the rest counted */
#define WSB_LINGER		1.0		/* wait for close replies, s */
#define WSB_RATE_SLACK		5000000ULL	/* rate limit catch-up, ns */
#define WSB_MAX_INFLIGHT	65536
#define WSB_MAX_SIZE		(64 * 1024 * 1024)
#define WSB_FD_RESERVE		32		/* stdio, epoll, signals */
#define WSB_PFX			128		/* reply bytes kept for --match id */
#define WSB_PFX_RECORD		512		/* ... and for --record */
#define WSB_RETRY_MIN		0.05		/* --reconnect backoff, s */
#define WSB_RETRY_MAX		1.0
#define WSB_RECORD_BUF		(256 * 1024)	/* --record stdio buffer */
#define WSB_TAG_MAX		32		/* --run-tag length */
#define WSB_MAX_SHOWN		5		/* non-2xx replies printed */

#define WS_OP_CONT		0x0
#define WS_OP_TEXT		0x1
#define WS_OP_BINARY		0x2
#define WS_OP_CLOSE		0x8
#define WS_OP_PING		0x9
#define WS_OP_PONG		0xa

/*
 * Log-linear latency histogram in microseconds, HdrHistogram's layout:
 * values below HIST_SUB are exact, above they keep HIST_SUB_BITS - 1
 * significant bits (0.1% precision).  Values above HIST_MAX_US are
 * clamped into the last bucket; h_max keeps the true maximum.
 */
#define HIST_SUB_BITS		11
#define HIST_SUB		(1U << HIST_SUB_BITS)
#define HIST_HALF		(HIST_SUB / 2)
#define HIST_MAX_US		60000000ULL
#define HIST_NBUCKETS		(HIST_SUB + 16 * HIST_HALF)

struct hist {
	uint64_t	 h_count[HIST_NBUCKETS];
	uint64_t	 h_total;
	uint64_t	 h_max;
	double		 h_sum;
};

enum tmpl_kind {
	TMPL_LIT,
	TMPL_SEQ,
	TMPL_CONN,
	TMPL_RUN,
	TMPL_PAD
};

/*
 * --match id: requests in flight on a connection, keyed by sequence
 * number (open addressing, linear probing; key = seq + 1, 0 = empty).
 */
struct slot {
	uint64_t	 s_key;
	uint64_t	 s_ts;		/* send time, ns; 0 = not written yet */
};

enum match_mode {
	MATCH_AUTO,
	MATCH_FIFO,
	MATCH_ID
};

/* What a reply's first bytes say (--match id, --record). */
struct reply_info {
	const unsigned char	*ri_id;		/* "id" value as JSON text */
	size_t			 ri_idlen;
	const unsigned char	*ri_err;	/* "error" string, escaped */
	size_t			 ri_errlen;
	uint64_t		 ri_status;
	int			 ri_has_status;
	const char		*ri_kind;	/* "body", "error" or "-" */
};

struct tmpl_seg {
	enum tmpl_kind	 t_kind;
	const char	*t_str;
	size_t		 t_len;
	char		 t_fill;	/* TMPL_PAD */
};

enum conn_state {
	CONN_NEW = 0,
	CONN_CONNECTING,	/* non-blocking connect in progress */
	CONN_HANDSHAKE,		/* upgrade request sent, reading the 101 */
	CONN_OPEN,
	CONN_CLOSING,		/* our close frame queued, run is over */
	CONN_CLOSED		/* fd closed, buffers freed by the reaper;
				   with --reconnect c_timer may restart it */
};

/*
 * One client connection.  c_io must stay the first member: the io
 * callback finds the connection from its watcher.
 */
struct conn {
	ev_io		 c_io;
	ev_timer	 c_timer;	/* handshake deadline; rate limit */
	int		 c_fd;
	unsigned int	 c_id;
	enum conn_state	 c_state;
	int		 c_events;
	int		 c_onflush;
	int		 c_onreap;
	int		 c_blocked;	/* a request did not fit in c_obuf */
	int		 c_everopen;	/* handshake completed once */
	double		 c_backoff;	/* --reconnect: next delay, s */
	struct conn	*c_flushnext;
	struct conn	*c_reapnext;

	/* Output: frames are appended, one send() per loop iteration. */
	unsigned char	*c_obuf;
	size_t		 c_oblen;
	size_t		 c_oboff;

	/* Handshake: response headers, freed once the 101 is checked. */
	char		*c_hbuf;
	size_t		 c_hblen;
	char		 c_key[32];

	/*
	 * Requests in flight: FIFO of send times (ns, 0 = queued but not yet
	 * written).  The c_unstamped newest entries are not written yet.
	 * With --match id, c_tab (keyed by sequence number) replaces the
	 * FIFO; with --match id or --record c_pfx keeps the first b_pfxcap
	 * bytes of the message being received.  c_seq is never reset: ids
	 * stay unique across reconnections.
	 */
	uint64_t	*c_fifo;
	struct slot	*c_tab;
	unsigned char	*c_pfx;
	size_t		 c_pfxlen;
	unsigned int	 c_fhead;
	unsigned int	 c_fcount;
	unsigned int	 c_unstamped;
	uint64_t	 c_seq;
	uint64_t	 c_next_ns;	/* rate limit: earliest next send */

	/* Frame parser state; payloads are consumed without being kept. */
	uint64_t	 c_remain;
	unsigned char	 c_hdr[14];
	unsigned char	 c_hdrlen;
	unsigned char	 c_inpayload;
	unsigned char	 c_opcode;
	unsigned char	 c_fin;
	unsigned char	 c_msgop;	/* fragmented message in progress */
	unsigned char	 c_ctllen;
	unsigned char	 c_ctl[125];
};

enum bench_phase {
	PHASE_CONNECT,
	PHASE_WARMUP,
	PHASE_MEASURE,
	PHASE_HOLD,
	PHASE_DRAIN,		/* no new requests, waiting for replies */
	PHASE_LINGER
};

struct bench {
	/* Options. */
	const char		*b_url;
	char			*b_hosthdr;	/* Host: value */
	char			*b_path;
	char			 b_peer[INET6_ADDRSTRLEN + 16];
	struct sockaddr_storage	 b_addr;
	socklen_t		 b_addrlen;
	unsigned int		 b_nconns;
	unsigned int		 b_inflight;
	size_t			 b_size;
	const char		*b_template;
	double			 b_duration;
	double			 b_warmup;
	double			 b_timeout;
	double			 b_rate;
	unsigned int		 b_pending;
	int			 b_json;
	int			 b_idle;
	enum match_mode		 b_match;
	size_t			 b_tabcap;	/* power of 2, >= 2 * inflight */
	size_t			 b_pfxcap;	/* reply bytes kept, 0 = none */
	const char		*b_record_path;
	FILE			*b_record;
	char			 b_tag[WSB_TAG_MAX + 1];	/* {run} */
	int			 b_reconnect;
	double			 b_drain;
	char			*b_headers;	/* extra lines, CRLF-ended */
	size_t			 b_headerslen;
	int			 b_src;
	uint32_t		 b_src_first;	/* host byte order */
	uint32_t		 b_src_last;
	uint32_t		 b_src_next;

	/* Derived. */
	struct tmpl_seg		*b_segs;
	size_t			 b_nsegs;
	size_t			 b_maxpayload;
	size_t			 b_obcap;
	uint64_t		 b_rate_ns;	/* per-connection interval */

	/* Run state. */
	struct ev_loop		*b_loop;
	struct conn		*b_conns;
	unsigned int		 b_next;
	unsigned int		 b_connecting;
	unsigned int		 b_ok;
	unsigned int		 b_failed;
	unsigned int		 b_dropped;
	unsigned int		 b_active;
	unsigned int		 b_closing;
	int			 b_starting;
	enum bench_phase	 b_phase;
	int			 b_measuring;
	unsigned int		 b_ticks;
	uint64_t		 b_t_ready;
	uint64_t		 b_t_start;
	uint64_t		 b_t_end;
	uint64_t		 b_sent;
	uint64_t		 b_received;
	uint64_t		 b_unexpected;
	uint64_t		 b_bytes_sent;
	uint64_t		 b_bytes_recv;
	uint64_t		 b_pings;
	uint64_t		 b_unmatched;	/* --match id: no known id */
	uint64_t		 b_outstanding;	/* requests in flight, all conns */
	uint64_t		 b_sent_all;	/* whole run, not only measured */
	uint64_t		 b_replies_all;
	uint64_t		 b_lost;	/* in flight on a closed conn */
	uint64_t		 b_records;
	unsigned int		 b_reconnects;
	uint64_t		 b_status[7];	/* none, 1xx .. 5xx, other */
	unsigned int		 b_shown;
	unsigned int		 b_nerrors;
	uint64_t		 b_suppressed;
	struct conn		*b_flushq;
	struct conn		*b_reapq;
	struct hist		 b_hist;
	ev_prepare		 b_prepare;
	ev_idle			 b_kick;
	ev_timer		 b_phase_timer;
	ev_timer		 b_progress;
	ev_signal		 b_sigint;
	ev_signal		 b_sigterm;
	uint32_t		 b_rng;
};

static struct bench	 b;
static unsigned char	 rbuf[WSB_RBUF_SIZE];

static void	 usage(FILE *);
static void	 die(const char *, ...)
		    __attribute__((__format__(__printf__, 1, 2), __noreturn__));
static void	*xmalloc(size_t);
static uint64_t	 mono_ns(void);
static uint32_t	 rng_next(void);
static size_t	 u64_str(char *, uint64_t);

static unsigned long long parse_num(const char *, const char *,
		    unsigned long long, unsigned long long);
static double	 parse_seconds(const char *, const char *);
static size_t	 parse_size(const char *, const char *);
static void	 parse_url(const char *);
static void	 parse_src(const char *);
static void	 add_header(const char *);
static void	 raise_nofile(void);

static void	 hist_record(struct hist *, uint64_t);
static uint64_t	 hist_highest(size_t);
static uint64_t	 hist_percentile(const struct hist *, double);

static void	 tmpl_compile(const char *);
static int	 tmpl_seq_id(const char *);
static void	 parse_tag(const char *);
static size_t	 tmpl_length(uint64_t, unsigned int, size_t *);
static void	 tmpl_write(unsigned char *, uint64_t, unsigned int, size_t);

static void	 ws_mask(unsigned char *, size_t, const unsigned char *);
static size_t	 ws_header_size(const unsigned char *);
static size_t	 ws_client_header_size(size_t);
static int	 ws_input(struct conn *, const unsigned char *, size_t,
		    uint64_t);
static int	 ws_frame_begin(struct conn *);
static void	 ws_fail(struct conn *, const char *, ...)
		    __attribute__((__format__(__printf__, 2, 3)));
static int	 ws_frame_end(struct conn *, uint64_t);
static int	 ws_on_close(struct conn *);
static void	 ws_on_message(struct conn *, uint64_t);
static const unsigned char *pfx_value(const unsigned char *, size_t,
		    const char *);
static const unsigned char *json_str_end(const unsigned char *,
		    const unsigned char *);
static void	 reply_parse(const struct conn *, struct reply_info *, int);
static int	 id_seq(const struct reply_info *, uint64_t *);
static struct slot *tab_find(struct conn *, uint64_t);
static void	 tab_insert(struct conn *, uint64_t);
static void	 tab_delete(struct conn *, struct slot *);
static struct slot *tab_oldest(struct conn *);
static int	 match_reply(struct conn *, const struct reply_info *,
		    uint64_t *);
static void	 record_open(void);
static void	 record_reply(const struct reply_info *, uint64_t, uint64_t);
static int	 record_close(void);

static void	 conn_error(const char *, ...)
		    __attribute__((__format__(__printf__, 1, 2)));
static void	 conn_start(struct conn *);
static void	 conn_reset(struct conn *);
static void	 conn_retry(struct conn *);
static void	 conn_connect_failed(struct conn *, int);
static void	 conn_connected(struct conn *);
static int	 conn_handshake_start(struct conn *);
static ssize_t	 conn_handshake_input(struct conn *, const unsigned char *,
		    size_t);
static int	 conn_handshake_check(struct conn *, size_t, char *, size_t);
static void	 conn_opened(struct conn *);
static void	 conn_abort(struct conn *, const char *, ...)
		    __attribute__((__format__(__printf__, 2, 3)));
static void	 conn_close_fd(struct conn *);
static void	 conn_set_events(struct conn *, int);
static int	 conn_room(struct conn *, size_t);
static void	 conn_want_flush(struct conn *);
static void	 conn_flush(struct conn *);
static void	 conn_send_now(struct conn *);
static int	 conn_queue_ctl(struct conn *, int, const unsigned char *,
		    size_t);
static int	 conn_send_msg(struct conn *);
static void	 conn_fill(struct conn *);
static void	 conn_read(struct conn *);
static void	 conn_io_cb(struct ev_loop *, ev_io *, int);
static void	 conn_timer_cb(struct ev_loop *, ev_timer *, int);

static void	 bench_start_more(void);
static void	 bench_check_ready(void);
static void	 bench_ready(void);
static void	 bench_measure_start(void);
static void	 bench_stop(void);
static void	 bench_close_all(void);
static void	 bench_drained(void);
static void	 bench_prepare_cb(struct ev_loop *, ev_prepare *, int);
static void	 bench_kick_cb(struct ev_loop *, ev_idle *, int);
static void	 bench_phase_cb(struct ev_loop *, ev_timer *, int);
static void	 bench_progress_cb(struct ev_loop *, ev_timer *, int);
static void	 bench_signal_cb(struct ev_loop *, ev_signal *, int);
static void	 bench_report(void);
static void	 json_str(const char *);

/* ---- Helpers ---- */

static void
usage(FILE *fp)
{
	fprintf(fp,
"usage: wsbench -u ws://HOST[:PORT][/PATH] [-c CONNS] [-n INFLIGHT] [-s SIZE]\n"
"               [-m TEMPLATE] [-d SECONDS] [-w SECONDS] [-r RATE] [--json]\n"
"               [--record FILE] [--run-tag TAG] [--reconnect] [--drain S]\n"
"       wsbench -u ws://HOST[:PORT][/PATH] --idle [-c CONNS] [-d SECONDS]\n"
"               [--src FIRST[-LAST]]\n"
"\n"
"  -u, --url URL       target, ws://HOST[:PORT][/PATH] (no wss://)\n"
"  -c, --conns N       connections (default 1)\n"
"  -n, --inflight N    requests kept in flight per connection (default 1)\n"
"  -s, --size BYTES    message size, k/m suffixes (default 64)\n"
"  -m, --template T    message text: {seq} per-connection sequence number,\n"
"                      {conn} connection number, {run} the run tag, {pad}\n"
"                      'x' filler up to SIZE (without {pad}, spaces are\n"
"                      appended up to SIZE)\n"
"  -d, --duration S    measured seconds (default 10), after the connections\n"
"                      are up and the warmup; with --idle, seconds to hold\n"
"                      the connections, 0 = until SIGINT/SIGTERM\n"
"  -w, --warmup S      seconds of load before measuring starts (default 0)\n"
"  -r, --rate N        total message rate limit, messages/s (default none)\n"
"  -t, --timeout S     connect + handshake timeout (default 10)\n"
"  -p, --pending N     connections in connect/handshake at once (default 256)\n"
"  -H, --header LINE   extra request header, e.g. 'Origin: http://x'\n"
"      --src A[-B]     bind each socket to the next local IPv4 address in\n"
"                      A..B, round-robin (more than ~28k connections)\n"
"      --idle          open, handshake and hold connections idle; prints\n"
"                      \"established N\" once all are up\n"
"      --match MODE    how replies complete requests: fifo (oldest first),\n"
"                      id (by the reply's \"id\": the number, or the digits\n"
"                      ending the string, is the request's {seq}), auto\n"
"                      (default: id when -m has \"id\":{seq} or\n"
"                      \"id\":\"...{seq}\")\n"
"      --record FILE   write one line per reply received: id, status,\n"
"                      body/error, time, latency, error text (README)\n"
"      --run-tag TAG   {run} in -m ([A-Za-z0-9._-], default 8 random hex\n"
"                      digits)\n"
"      --reconnect     reopen dropped connections (backoff 50 ms to 1 s);\n"
"                      the run lasts -d even if every connection is gone\n"
"      --drain S       at the end, stop sending and wait up to S seconds\n"
"                      for the replies in flight before closing (default 0)\n"
"      --json          one-line JSON summary instead of the report\n"
"  -h, --help          this text\n");
}

static void
die(const char *fmt, ...)
{
	va_list	ap;

	fputs("wsbench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static void *
xmalloc(size_t n)
{
	void	*p;

	if ((p = malloc(n == 0 ? 1 : n)) == NULL)
		die("out of memory (%zu bytes)", n);
	return p;
}

static uint64_t
mono_ns(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* xorshift32: masks only need to be unpredictable to proxies, not secret. */
static uint32_t
rng_next(void)
{
	uint32_t	x = b.b_rng;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	b.b_rng = x;
	return x;
}

/* Writes `v` in decimal to `buf` (at least 20 bytes, no NUL). */
static size_t
u64_str(char *buf, uint64_t v)
{
	char	tmp[20];
	size_t	n = 0, i;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	for (i = 0; i < n; i++)
		buf[i] = tmp[n - 1 - i];
	return n;
}

static unsigned long long
parse_num(const char *opt, const char *s, unsigned long long min,
    unsigned long long max)
{
	unsigned long long	 v;
	char			*end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (*s == '\0' || *s == '-' || *end != '\0' || errno != 0)
		die("%s: invalid number '%s'", opt, s);
	if (v < min || v > max)
		die("%s: %s is out of range (%llu..%llu)", opt, s, min, max);
	return v;
}

static double
parse_seconds(const char *opt, const char *s)
{
	double	 v;
	char	*end;

	errno = 0;
	v = strtod(s, &end);
	if (end == s || errno != 0)
		die("%s: invalid duration '%s'", opt, s);
	if (strcmp(end, "ms") == 0)
		v /= 1000;
	else if (strcmp(end, "m") == 0)
		v *= 60;
	else if (*end != '\0' && strcmp(end, "s") != 0)
		die("%s: invalid duration '%s'", opt, s);
	if (!isfinite(v) || v < 0 || v > 7 * 86400)
		die("%s: %s is out of range", opt, s);
	return v;
}

static size_t
parse_size(const char *opt, const char *s)
{
	unsigned long long	 v, mul = 1;
	char			*end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (end == s || *s == '-' || errno != 0)
		die("%s: invalid size '%s'", opt, s);
	if (*end == 'k' || *end == 'K')
		mul = 1024;
	else if (*end == 'm' || *end == 'M')
		mul = 1024 * 1024;
	if (mul != 1)
		end++;
	if (*end != '\0')
		die("%s: invalid size '%s'", opt, s);
	if (v > WSB_MAX_SIZE / mul)
		die("%s: %s is larger than %d bytes", opt, s, WSB_MAX_SIZE);
	return (size_t)(v * mul);
}

/*
 * ws://HOST[:PORT][/PATH], HOST may be [IPv6].  Resolves once, at start
 * (blocking is fine before the loop runs).
 */
static void
parse_url(const char *url)
{
	struct addrinfo	 hints, *res;
	const char	*p, *hs, *he, *slash;
	char		 host[256], port[8], num[INET6_ADDRSTRLEN];
	size_t		 hlen;
	unsigned long	 portnum = 80;
	int		 error;

	if (strncasecmp(url, "wss://", 6) == 0)
		die("%s: wss:// is not supported, use ws://", url);
	if (strncasecmp(url, "ws://", 5) != 0)
		die("%s: URL must start with ws://", url);
	p = url + 5;
	slash = strchr(p, '/');
	if (slash == NULL)
		slash = p + strlen(p);
	if (*p == '[') {
		hs = p + 1;
		he = memchr(hs, ']', (size_t)(slash - hs));
		if (he == NULL)
			die("%s: unterminated [IPv6] address", url);
		p = he + 1;
	} else {
		hs = p;
		he = memchr(hs, ':', (size_t)(slash - hs));
		if (he == NULL)
			he = slash;
		p = he;
	}
	hlen = (size_t)(he - hs);
	if (hlen == 0 || hlen >= sizeof(host))
		die("%s: bad host", url);
	memcpy(host, hs, hlen);
	host[hlen] = '\0';
	if (*p == ':') {
		char	pbuf[8];
		size_t	plen = (size_t)(slash - p - 1);

		if (plen == 0 || plen >= sizeof(pbuf))
			die("%s: bad port", url);
		memcpy(pbuf, p + 1, plen);
		pbuf[plen] = '\0';
		portnum = (unsigned long)parse_num("port", pbuf, 1, 65535);
	} else if (p != slash)
		die("%s: bad URL", url);
	snprintf(port, sizeof(port), "%lu", portnum);

	b.b_path = strdup(*slash == '\0' ? "/" : slash);
	if (b.b_path == NULL)
		die("out of memory");
	if (strpbrk(b.b_path, " \r\n") != NULL)
		die("%s: path contains spaces or line breaks", url);
	b.b_hosthdr = xmalloc((size_t)(slash - (url + 5)) + 1);
	memcpy(b.b_hosthdr, url + 5, (size_t)(slash - (url + 5)));
	b.b_hosthdr[slash - (url + 5)] = '\0';

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if ((error = getaddrinfo(host, port, &hints, &res)) != 0)
		die("%s: %s", host, gai_strerror(error));
	memcpy(&b.b_addr, res->ai_addr, res->ai_addrlen);
	b.b_addrlen = res->ai_addrlen;
	freeaddrinfo(res);

	if (getnameinfo((struct sockaddr *)&b.b_addr, b.b_addrlen, num,
	    sizeof(num), NULL, 0, NI_NUMERICHOST) != 0)
		snprintf(num, sizeof(num), "%.45s", host);
	snprintf(b.b_peer, sizeof(b.b_peer), b.b_addr.ss_family == AF_INET6 ?
	    "[%s]:%s" : "%s:%s", num, port);
}

/* A or A-B, IPv4, inclusive, any span. */
static void
parse_src(const char *s)
{
	struct in_addr	 a1, a2;
	char		 buf[64];
	const char	*dash;

	if (strlen(s) >= sizeof(buf))
		die("--src: bad range '%s'", s);
	memcpy(buf, s, strlen(s) + 1);
	if ((dash = strchr(s, '-')) != NULL)
		buf[dash - s] = '\0';
	if (inet_pton(AF_INET, buf, &a1) != 1)
		die("--src: bad IPv4 address '%s'", buf);
	a2 = a1;
	if (dash != NULL && inet_pton(AF_INET, dash + 1, &a2) != 1)
		die("--src: bad IPv4 address '%s'", dash + 1);
	b.b_src_first = ntohl(a1.s_addr);
	b.b_src_last = ntohl(a2.s_addr);
	if (b.b_src_last < b.b_src_first)
		die("--src: %s: last address is below the first", s);
	b.b_src_next = b.b_src_first;
	b.b_src = 1;
}

static void
add_header(const char *line)
{
	size_t	 len = strlen(line);
	char	*p;

	if (strpbrk(line, "\r\n") != NULL || strchr(line, ':') == NULL)
		die("-H: '%s' is not a 'Name: value' header line", line);
	p = realloc(b.b_headers, b.b_headerslen + len + 3);
	if (p == NULL)
		die("out of memory");
	memcpy(p + b.b_headerslen, line, len);
	memcpy(p + b.b_headerslen + len, "\r\n", 3);
	b.b_headers = p;
	b.b_headerslen += len + 2;
}

/*
 * Raise the soft open-files limit to the hard one; one process cannot
 * hold more connections than that, the caller runs several processes.
 */
static void
raise_nofile(void)
{
	struct rlimit		rl;
	unsigned long long	need = (unsigned long long)b.b_nconns +
				    WSB_FD_RESERVE;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		die("getrlimit: %s", strerror(errno));
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			die("setrlimit: %s", strerror(errno));
	}
	if (rl.rlim_cur != RLIM_INFINITY && need > rl.rlim_cur)
		die("-c %u needs %llu open files but the limit is %llu; "
		    "split the connections over several wsbench processes "
		    "(tests/bench/README.md)", b.b_nconns, need,
		    (unsigned long long)rl.rlim_cur);
}

/* ---- Histogram ---- */

static void
hist_record(struct hist *h, uint64_t us)
{
	uint64_t	v = us > HIST_MAX_US ? HIST_MAX_US : us;
	size_t		idx;
	int		e;

	if (v < HIST_SUB)
		idx = (size_t)v;
	else {
		/* v >> e lands in [HIST_HALF, HIST_SUB). */
		e = 63 - __builtin_clzll(v) - (HIST_SUB_BITS - 1);
		idx = HIST_SUB + (size_t)(e - 1) * HIST_HALF +
		    (size_t)((v >> e) - HIST_HALF);
	}
	h->h_count[idx]++;
	h->h_total++;
	h->h_sum += (double)us;
	if (us > h->h_max)
		h->h_max = us;
}

/* Highest value that falls into bucket `idx`. */
static uint64_t
hist_highest(size_t idx)
{
	uint64_t	m;
	unsigned int	e;

	if (idx < HIST_SUB)
		return idx;
	e = (unsigned int)((idx - HIST_SUB) / HIST_HALF) + 1;
	m = (idx - HIST_SUB) % HIST_HALF + HIST_HALF;
	return ((m + 1) << e) - 1;
}

static uint64_t
hist_percentile(const struct hist *h, double pct)
{
	uint64_t	target, seen = 0, v;
	size_t		i;

	if (h->h_total == 0)
		return 0;
	target = (uint64_t)ceil(pct / 100.0 * (double)h->h_total);
	if (target == 0)
		target = 1;
	for (i = 0; i < HIST_NBUCKETS; i++) {
		seen += h->h_count[i];
		if (seen >= target) {
			v = hist_highest(i);
			return v < h->h_max ? v : h->h_max;
		}
	}
	return h->h_max;
}

/* ---- Message template ---- */

/*
 * Splits the template into literals and {seq}/{conn}/{run}/{pad}
 * markers.  Without {pad}, a space filler is appended: JSON allows
 * trailing whitespace, so a JSON template stays valid at any SIZE.
 */
static void
tmpl_compile(const char *t)
{
	const char	*p = t, *lit = t;
	size_t		 nseq = 0, nconn = 0, nrun = 0, litlen = 0;
	int		 havepad = 0;
	struct tmpl_seg	*s;

	b.b_segs = xmalloc((strlen(t) + 2) * sizeof(*b.b_segs));
	b.b_nsegs = 0;
	for (;;) {
		enum tmpl_kind	 kind = TMPL_LIT;
		size_t		 mlen = 0;

		if (*p == '{') {
			if (strncmp(p, "{seq}", 5) == 0) {
				kind = TMPL_SEQ;
				mlen = 5;
			} else if (strncmp(p, "{conn}", 6) == 0) {
				kind = TMPL_CONN;
				mlen = 6;
			} else if (strncmp(p, "{run}", 5) == 0) {
				kind = TMPL_RUN;
				mlen = 5;
			} else if (strncmp(p, "{pad}", 5) == 0 && !havepad) {
				kind = TMPL_PAD;
				mlen = 5;
			}
		}
		if (kind == TMPL_LIT && *p != '\0') {
			p++;
			continue;
		}
		if (p > lit) {
			s = &b.b_segs[b.b_nsegs++];
			s->t_kind = TMPL_LIT;
			s->t_str = lit;
			s->t_len = (size_t)(p - lit);
			litlen += s->t_len;
		}
		if (*p == '\0')
			break;
		s = &b.b_segs[b.b_nsegs++];
		s->t_kind = kind;
		s->t_fill = 'x';
		if (kind == TMPL_SEQ)
			nseq++;
		else if (kind == TMPL_CONN)
			nconn++;
		else if (kind == TMPL_RUN)
			nrun++;
		else
			havepad = 1;
		p += mlen;
		lit = p;
	}
	if (!havepad) {
		s = &b.b_segs[b.b_nsegs++];
		s->t_kind = TMPL_PAD;
		s->t_fill = ' ';
	}
	b.b_maxpayload = litlen + 20 * nseq + 10 * nconn +
	    strlen(b.b_tag) * nrun;
	if (b.b_maxpayload < b.b_size)
		b.b_maxpayload = b.b_size;
}

/* Payload length for (seq, id); the filler length goes to `*pad`. */
static size_t
tmpl_length(uint64_t seq, unsigned int id, size_t *pad)
{
	char	tmp[20];
	size_t	i, fixed = 0, seqlen = 0, idlen = 0;

	for (i = 0; i < b.b_nsegs; i++) {
		switch (b.b_segs[i].t_kind) {
		case TMPL_LIT:
			fixed += b.b_segs[i].t_len;
			break;
		case TMPL_SEQ:
			if (seqlen == 0)
				seqlen = u64_str(tmp, seq);
			fixed += seqlen;
			break;
		case TMPL_CONN:
			if (idlen == 0)
				idlen = u64_str(tmp, id);
			fixed += idlen;
			break;
		case TMPL_RUN:
			fixed += strlen(b.b_tag);
			break;
		case TMPL_PAD:
			break;
		}
	}
	*pad = b.b_size > fixed ? b.b_size - fixed : 0;
	return fixed + *pad;
}

static void
tmpl_write(unsigned char *dst, uint64_t seq, unsigned int id, size_t pad)
{
	size_t	i;

	for (i = 0; i < b.b_nsegs; i++) {
		const struct tmpl_seg	*s = &b.b_segs[i];

		switch (s->t_kind) {
		case TMPL_LIT:
			memcpy(dst, s->t_str, s->t_len);
			dst += s->t_len;
			break;
		case TMPL_SEQ:
			dst += u64_str((char *)dst, seq);
			break;
		case TMPL_CONN:
			dst += u64_str((char *)dst, id);
			break;
		case TMPL_RUN:
			memcpy(dst, b.b_tag, strlen(b.b_tag));
			dst += strlen(b.b_tag);
			break;
		case TMPL_PAD:
			memset(dst, s->t_fill, pad);
			dst += pad;
			break;
		}
	}
}

/*
 * Whether replies can be matched by id: the template's "id" is {seq},
 * or a string ending in {seq} after a character that is neither a
 * digit nor another marker (id_seq() takes the digits ending it).
 */
static int
tmpl_seq_id(const char *t)
{
	const char	*v, *q;

	if ((v = strstr(t, "\"id\":")) == NULL)
		return 0;
	v += 5;
	if (strncmp(v, "{seq}", 5) == 0)
		return 1;
	if (*v != '"' || (q = strchr(v + 1, '"')) == NULL || q - v < 6 ||
	    strncmp(q - 5, "{seq}", 5) != 0)
		return 0;
	return q - 5 == v + 1 || (q[-6] != '}' && (q[-6] < '0' ||
	    q[-6] > '9'));
}

/* --run-tag: goes into JSON strings and ids unescaped, so kept plain. */
static void
parse_tag(const char *s)
{
	size_t	len = strlen(s);

	if (len == 0 || len > WSB_TAG_MAX ||
	    strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789._-") != len)
		die("--run-tag: '%s' is not 1 to %d of [A-Za-z0-9._-]", s,
		    WSB_TAG_MAX);
	memcpy(b.b_tag, s, len + 1);
}

/* ---- WebSocket framing (RFC 6455 section 5, client side) ---- */

static void
ws_mask(unsigned char *p, size_t len, const unsigned char *key)
{
	unsigned char	k[8];
	uint64_t	k8, w;
	size_t		i;

	memcpy(k, key, 4);
	memcpy(k + 4, key, 4);
	memcpy(&k8, k, 8);
	for (i = 0; i + 8 <= len; i += 8) {
		memcpy(&w, p + i, 8);
		w ^= k8;
		memcpy(p + i, &w, 8);
	}
	for (; i < len; i++)
		p[i] ^= k[i & 3];
}

/* Full header size of a frame whose first two bytes are `h`. */
static size_t
ws_header_size(const unsigned char *h)
{
	size_t	n = 2;

	if ((h[1] & 0x7f) == 126)
		n += 2;
	else if ((h[1] & 0x7f) == 127)
		n += 8;
	if (h[1] & 0x80)
		n += 4;
	return n;
}

static size_t
ws_client_header_size(size_t plen)
{
	if (plen <= 125)
		return 2 + 4;
	if (plen <= 0xffff)
		return 4 + 4;
	return 10 + 4;
}

/*
 * Feeds `n` received bytes to the frame parser.  Payloads are counted,
 * not kept, except control payloads (<= 125 bytes).  Returns -1 when the
 * connection was closed.
 */
static int
ws_input(struct conn *c, const unsigned char *p, size_t n, uint64_t now)
{
	size_t	need, take;

	while (n > 0) {
		if (!c->c_inpayload) {
			need = c->c_hdrlen < 2 ? 2 : ws_header_size(c->c_hdr);
			take = need - c->c_hdrlen;
			if (take > n)
				take = n;
			memcpy(c->c_hdr + c->c_hdrlen, p, take);
			c->c_hdrlen += (unsigned char)take;
			p += take;
			n -= take;
			if (c->c_hdrlen < 2 ||
			    c->c_hdrlen < ws_header_size(c->c_hdr))
				continue;
			if (ws_frame_begin(c) == -1)
				return -1;
			if (c->c_remain > 0)
				continue;
			/* Empty payload: the frame is complete now. */
		} else {
			take = c->c_remain < n ? (size_t)c->c_remain : n;
			if (c->c_opcode >= WS_OP_CLOSE) {
				memcpy(c->c_ctl + c->c_ctllen, p, take);
				c->c_ctllen += (unsigned char)take;
			} else {
				if (c->c_pfx != NULL &&
				    c->c_pfxlen < b.b_pfxcap) {
					size_t	k = b.b_pfxcap - c->c_pfxlen;

					if (k > take)
						k = take;
					memcpy(c->c_pfx + c->c_pfxlen, p, k);
					c->c_pfxlen += k;
				}
				if (b.b_measuring)
					b.b_bytes_recv += take;
			}
			p += take;
			n -= take;
			c->c_remain -= take;
			if (c->c_remain > 0)
				continue;
		}
		if (ws_frame_end(c, now) == -1)
			return -1;
	}
	return 0;
}

/*
 * Fails the connection for a server protocol violation: close 1002 (best
 * effort, RFC 6455 7.1.7), then drop it.
 */
static void
ws_fail(struct conn *c, const char *fmt, ...)
{
	static const unsigned char	proto[2] = { 1002 >> 8, 1002 & 0xff };
	va_list				ap;
	char				msg[256];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	conn_queue_ctl(c, WS_OP_CLOSE, proto, 2);
	conn_send_now(c);
	conn_abort(c, "%s: protocol error: %s", b.b_peer, msg);
}

/* Checks a complete frame header; strict, to catch server bugs. */
static int
ws_frame_begin(struct conn *c)
{
	const unsigned char	*h = c->c_hdr;
	unsigned int		 op = h[0] & 0x0f, len7 = h[1] & 0x7f, i;
	uint64_t		 len = len7;

	if (h[0] & 0x70) {
		ws_fail(c, "RSV bits set (0x%02x)", h[0]);
		return -1;
	}
	if (h[1] & 0x80) {
		ws_fail(c, "server frame is masked");
		return -1;
	}
	if (len7 == 126) {
		len = (uint64_t)h[2] << 8 | h[3];
		if (len < 126) {
			ws_fail(c, "16-bit length %llu is not minimal",
			    (unsigned long long)len);
			return -1;
		}
	} else if (len7 == 127) {
		for (len = 0, i = 2; i < 10; i++)
			len = len << 8 | h[i];
		if (len >> 63) {
			ws_fail(c, "64-bit length has its most significant "
			    "bit set");
			return -1;
		}
		if (len <= 0xffff) {
			ws_fail(c, "64-bit length %llu is not minimal",
			    (unsigned long long)len);
			return -1;
		}
	}
	switch (op) {
	case WS_OP_CONT:
		if (c->c_msgop == 0) {
			ws_fail(c, "continuation frame outside a fragmented "
			    "message");
			return -1;
		}
		break;
	case WS_OP_TEXT:
	case WS_OP_BINARY:
		if (c->c_msgop != 0) {
			ws_fail(c, "new data frame inside a fragmented "
			    "message");
			return -1;
		}
		c->c_pfxlen = 0;
		break;
	case WS_OP_CLOSE:
	case WS_OP_PING:
	case WS_OP_PONG:
		if (!(h[0] & 0x80) || len > 125) {
			ws_fail(c, "control frame fragmented or longer than "
			    "125 bytes");
			return -1;
		}
		break;
	default:
		ws_fail(c, "unknown opcode 0x%x", op);
		return -1;
	}
	c->c_opcode = (unsigned char)op;
	c->c_fin = (h[0] & 0x80) != 0;
	c->c_remain = len;
	c->c_ctllen = 0;
	c->c_inpayload = 1;
	return 0;
}

static int
ws_frame_end(struct conn *c, uint64_t now)
{
	c->c_inpayload = 0;
	c->c_hdrlen = 0;
	switch (c->c_opcode) {
	case WS_OP_PING:
		/*
		 * No room means pongs are piling up behind unread output;
		 * RFC 6455 5.5.3 allows answering only the latest ping.
		 */
		b.b_pings++;
		conn_queue_ctl(c, WS_OP_PONG, c->c_ctl, c->c_ctllen);
		break;
	case WS_OP_PONG:
		break;
	case WS_OP_CLOSE:
		return ws_on_close(c);
	case WS_OP_TEXT:
	case WS_OP_BINARY:
		if (!c->c_fin)
			c->c_msgop = c->c_opcode;
		else
			ws_on_message(c, now);
		break;
	case WS_OP_CONT:
		if (c->c_fin) {
			c->c_msgop = 0;
			ws_on_message(c, now);
		}
		break;
	}
	return 0;
}

/* The server's close frame: answer it, then close the socket. */
static int
ws_on_close(struct conn *c)
{
	unsigned int	code = 1005;
	char		reason[64];
	size_t		i, rlen = 0;

	if (c->c_state == CONN_CLOSING) {
		/* The reply to our own close: done. */
		conn_abort(c, "closed");
		return -1;
	}
	if (c->c_ctllen >= 2)
		code = (unsigned int)c->c_ctl[0] << 8 | c->c_ctl[1];
	for (i = 2; i < c->c_ctllen && rlen < sizeof(reason) - 1; i++)
		reason[rlen++] = c->c_ctl[i] >= 0x20 && c->c_ctl[i] < 0x7f ?
		    (char)c->c_ctl[i] : '?';
	reason[rlen] = '\0';
	conn_queue_ctl(c, WS_OP_CLOSE, c->c_ctl, c->c_ctllen >= 2 ? 2 : 0);
	conn_send_now(c);
	conn_abort(c, "%s: server closed the connection: code %u%s%s",
	    b.b_peer, code, rlen ? ", " : "", reason);
	return -1;
}

/* A request completed at `now`; `ts` is when it was sent (0: unknown). */
static void
request_done(struct conn *c, uint64_t ts, uint64_t now)
{
	c->c_fcount--;
	if (c->c_unstamped > c->c_fcount)
		c->c_unstamped = c->c_fcount;
	if (--b.b_outstanding == 0 && b.b_phase == PHASE_DRAIN)
		bench_drained();
	if (!b.b_measuring)
		return;
	b.b_received++;
	if (ts != 0)
		hist_record(&b.b_hist, now > ts ? (now - ts) / 1000 : 0);
}

/*
 * A complete message completes the oldest request in flight, or with
 * --match id the one whose {seq} its "id" carries.
 */
static void
ws_on_message(struct conn *c, uint64_t now)
{
	struct reply_info	 ri;
	uint64_t		 ts = 0;
	int			 done = 0;

	b.b_replies_all++;
	reply_parse(c, &ri, b.b_record != NULL);
	if (c->c_tab != NULL)
		done = match_reply(c, &ri, &ts);
	else if (c->c_fcount > 0) {
		ts = c->c_fifo[c->c_fhead];
		if (++c->c_fhead == b.b_inflight)
			c->c_fhead = 0;
		done = 1;
	} else
		b.b_unexpected++;
	if (b.b_record != NULL)
		record_reply(&ri, done ? ts : 0, now);
	if (done)
		request_done(c, ts, now);
}

/*
 * The value after the first `"key":` (whitespace allowed around the
 * colon) in a reply prefix, or NULL.  Inside a JSON string every '"' is
 * escaped, so a match is a key or a whole string value; a value is
 * skipped by looking for the colon.
 */
static const unsigned char *
pfx_value(const unsigned char *p, size_t len, const char *key)
{
	const unsigned char	*q, *end = p + len;
	size_t			 klen = strlen(key);

	while ((q = memmem(p, (size_t)(end - p), key, klen)) != NULL) {
		p = q + klen;
		while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' ||
		    *p == '\n'))
			p++;
		if (p == end || *p != ':')
			continue;
		p++;
		while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' ||
		    *p == '\n'))
			p++;
		return p < end ? p : NULL;
	}
	return NULL;
}

/* The closing quote of the JSON string opening at `q`, or `end`. */
static const unsigned char *
json_str_end(const unsigned char *q, const unsigned char *end)
{
	for (q++; q < end; q++) {
		if (*q == '"')
			return q;
		if (*q == '\\' && ++q == end)
			break;
	}
	return end;
}

/*
 * Reads "status", "id" and, for --record (`full`), whether the reply
 * carries "body" or "error" from the prefix kept of the message.
 */
static void
reply_parse(const struct conn *c, struct reply_info *ri, int full)
{
	const unsigned char	*p = c->c_pfx, *end = p + c->c_pfxlen, *v, *e;
	int			 digits = 0;

	memset(ri, 0, sizeof(*ri));
	ri->ri_kind = "-";
	if (p == NULL)
		return;
	if ((v = pfx_value(p, c->c_pfxlen, "\"status\"")) != NULL) {
		for (; v < end && *v >= '0' && *v <= '9' && digits < 19; v++) {
			ri->ri_status = ri->ri_status * 10 +
			    (uint64_t)(*v - '0');
			digits++;
		}
		ri->ri_has_status = digits > 0;
	}
	if ((v = pfx_value(p, c->c_pfxlen, "\"id\"")) != NULL) {
		if (*v == '"') {
			e = json_str_end(v, end);
			e = e < end ? e + 1 : end;
		} else
			for (e = v; e < end && strchr("+-.0123456789eE",
			    *e) != NULL && *e != '\0'; e++)
				;
		ri->ri_id = v;
		ri->ri_idlen = (size_t)(e - v);
	}
	if (!full)
		return;
	if (pfx_value(p, c->c_pfxlen, "\"body\"") != NULL)
		ri->ri_kind = "body";
	else if ((v = pfx_value(p, c->c_pfxlen, "\"error\"")) != NULL &&
	    *v == '"') {
		ri->ri_kind = "error";
		ri->ri_err = v + 1;
		ri->ri_errlen = (size_t)(json_str_end(v, end) - ri->ri_err);
	}
}

/*
 * The request's {seq} from a reply's "id": the number itself, or the
 * digits that end the string (tmpl_seq_id()); 0 if there is one.
 */
static int
id_seq(const struct reply_info *ri, uint64_t *seq)
{
	const unsigned char	*p = ri->ri_id, *e;

	if (p == NULL || ri->ri_idlen == 0)
		return -1;
	e = p + ri->ri_idlen;
	if (*p == '"') {
		if (ri->ri_idlen < 3 || e[-1] != '"')
			return -1;
		for (p = --e; p > ri->ri_id + 1 && p[-1] >= '0' &&
		    p[-1] <= '9'; p--)
			;
	}
	if (p == e || e - p > 19)
		return -1;
	for (*seq = 0; p < e; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		*seq = *seq * 10 + (uint64_t)(*p - '0');
	}
	return 0;
}

static struct slot *
tab_find(struct conn *c, uint64_t seq)
{
	size_t		 mask = b.b_tabcap - 1, i = (size_t)seq & mask;
	struct slot	*s;

	for (;;) {
		s = &c->c_tab[i];
		if (s->s_key == 0)
			return NULL;
		if (s->s_key == seq + 1)
			return s;
		i = (i + 1) & mask;
	}
}

/* At most INFLIGHT keys in 2 * INFLIGHT slots: there is always room. */
static void
tab_insert(struct conn *c, uint64_t seq)
{
	size_t	mask = b.b_tabcap - 1, i = (size_t)seq & mask;

	while (c->c_tab[i].s_key != 0)
		i = (i + 1) & mask;
	c->c_tab[i].s_key = seq + 1;
	c->c_tab[i].s_ts = 0;
}

/* Linear probing deletion: shift later entries of the run back. */
static void
tab_delete(struct conn *c, struct slot *s)
{
	size_t	mask = b.b_tabcap - 1, i = (size_t)(s - c->c_tab), j = i, k;

	for (;;) {
		j = (j + 1) & mask;
		if (c->c_tab[j].s_key == 0)
			break;
		k = (size_t)(c->c_tab[j].s_key - 1) & mask;	/* home slot */
		if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		c->c_tab[i] = c->c_tab[j];
		i = j;
	}
	c->c_tab[i].s_key = 0;
}

static struct slot *
tab_oldest(struct conn *c)
{
	struct slot	*s, *best = NULL;
	size_t		 i;

	for (i = 0; i < b.b_tabcap; i++) {
		s = &c->c_tab[i];
		if (s->s_key != 0 && (best == NULL || s->s_key < best->s_key))
			best = s;
	}
	return best;
}

/*
 * --match id: the reply's "id" names the request (its {seq}).  A reply
 * without a known id completes the oldest request instead and is
 * counted as unmatched.  "status" is counted by class over the whole
 * run; the first WSB_MAX_SHOWN replies that are not 2xx are printed.
 * Returns 1 when a request completed, its send time in `*ts`.
 */
static int
match_reply(struct conn *c, const struct reply_info *ri, uint64_t *ts)
{
	struct slot	*s = NULL;
	uint64_t	 seq;
	size_t		 cls, i, n;
	char		 text[WSB_PFX + 1];

	if (!ri->ri_has_status)
		cls = 0;
	else if (ri->ri_status >= 100 && ri->ri_status <= 599)
		cls = (size_t)(ri->ri_status / 100);
	else
		cls = 6;
	b.b_status[cls]++;
	if (cls != 2 && b.b_shown < WSB_MAX_SHOWN) {
		b.b_shown++;
		n = c->c_pfxlen < WSB_PFX ? c->c_pfxlen : WSB_PFX;
		for (i = 0; i < n; i++)
			text[i] = c->c_pfx[i] >= 0x20 && c->c_pfx[i] < 0x7f ?
			    (char)c->c_pfx[i] : '?';
		text[i] = '\0';
		fprintf(stderr, "wsbench: reply that is not 2xx: %s%s\n", text,
		    c->c_pfxlen > n ? "..." : "");
	}

	if (c->c_fcount == 0) {
		b.b_unexpected++;
		return 0;
	}
	if (id_seq(ri, &seq) == 0)
		s = tab_find(c, seq);
	if (s == NULL) {
		b.b_unmatched++;
		s = tab_oldest(c);
	}
	*ts = s->s_ts;
	tab_delete(c, s);
	return 1;
}

/* ---- Reply record (--record) ---- */

static void
record_open(void)
{
	if ((b.b_record = fopen(b.b_record_path, "w")) == NULL)
		die("--record: %s: %s", b.b_record_path, strerror(errno));
	if (setvbuf(b.b_record, NULL, _IOFBF, WSB_RECORD_BUF) != 0)
		die("--record: setvbuf failed");
}

/* Copies JSON text, which holds no raw control character, defensively. */
static char *
record_text(char *dst, const unsigned char *p, size_t len)
{
	size_t	i;

	for (i = 0; i < len; i++)
		*dst++ = p[i] < 0x20 ? '?' : (char)p[i];
	return dst;
}

/*
 * One line per reply, tab-separated: the "id" value as JSON text ("-"
 * if none), the status ("-"), "body", "error" or "-", the receive time
 * (CLOCK_MONOTONIC, microseconds), the latency (microseconds, "-" if no
 * request was matched) and the error text as escaped in the reply (cut
 * at the kept prefix).  Buffered: written out once a second and at
 * exit.
 */
static void
record_reply(const struct reply_info *ri, uint64_t ts, uint64_t now)
{
	char	line[2 * WSB_PFX_RECORD + 96], *p = line;

	if (ri->ri_id != NULL)
		p = record_text(p, ri->ri_id, ri->ri_idlen);
	else
		*p++ = '-';
	*p++ = '\t';
	if (ri->ri_has_status)
		p += u64_str(p, ri->ri_status);
	else
		*p++ = '-';
	*p++ = '\t';
	memcpy(p, ri->ri_kind, strlen(ri->ri_kind));
	p += strlen(ri->ri_kind);
	*p++ = '\t';
	p += u64_str(p, now / 1000);
	*p++ = '\t';
	if (ts != 0)
		p += u64_str(p, now > ts ? (now - ts) / 1000 : 0);
	else
		*p++ = '-';
	*p++ = '\t';
	p = record_text(p, ri->ri_err, ri->ri_errlen);
	*p++ = '\n';
	fwrite(line, 1, (size_t)(p - line), b.b_record);
	b.b_records++;
}

/* 0, or -1 (reported) if a write failed: the record is incomplete. */
static int
record_close(void)
{
	int	bad;

	if (b.b_record == NULL)
		return 0;
	bad = ferror(b.b_record);
	if (fclose(b.b_record) != 0)
		bad = 1;
	b.b_record = NULL;
	if (bad)
		fprintf(stderr, "wsbench: --record: %s: write failed: %s\n",
		    b.b_record_path, strerror(errno));
	return bad ? -1 : 0;
}

/* ---- Connections ---- */

/* Prints the first WSB_MAX_ERRORS connection errors, counts the rest. */
static void
conn_error(const char *fmt, ...)
{
	va_list	ap;

	if (b.b_nerrors >= WSB_MAX_ERRORS) {
		b.b_suppressed++;
		return;
	}
	b.b_nerrors++;
	fputs("wsbench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void
conn_start(struct conn *c)
{
	struct sockaddr_in	sin;
	int			fd, one = 1;

	conn_reset(c);
	c->c_state = CONN_CONNECTING;
	b.b_connecting++;
	c->c_obuf = xmalloc(b.b_obcap);
	fd = socket(b.b_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd == -1) {
		conn_abort(c, "socket: %s", strerror(errno));
		return;
	}
	c->c_fd = fd;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (b.b_src) {
		/*
		 * Defer the port choice to connect(), which only needs the
		 * 4-tuple to be unique: ~28k ports per source address.
		 */
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
		    sizeof(one));
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_addr.s_addr = htonl(b.b_src_next);
		b.b_src_next = b.b_src_next == b.b_src_last ?
		    b.b_src_first : b.b_src_next + 1;
		if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1) {
			char	a[INET_ADDRSTRLEN];
			int	e = errno;

			inet_ntop(AF_INET, &sin.sin_addr, a, sizeof(a));
			conn_abort(c, "bind %s: %s", a, strerror(e));
			return;
		}
	}
	if (connect(fd, (struct sockaddr *)&b.b_addr, b.b_addrlen) == -1 &&
	    errno != EINPROGRESS) {
		conn_connect_failed(c, errno);
		return;
	}
	ev_io_set(&c->c_io, fd, EV_WRITE);
	ev_io_start(b.b_loop, &c->c_io);
	c->c_events = EV_WRITE;
	ev_timer_set(&c->c_timer, b.b_timeout, 0.);
	ev_timer_start(b.b_loop, &c->c_timer);
}

/*
 * Per-connection state back to that of a new connection, for a
 * reconnect; the sequence number and the backoff carry on.
 */
static void
conn_reset(struct conn *c)
{
	c->c_blocked = 0;
	c->c_oblen = c->c_oboff = 0;
	c->c_hblen = 0;
	c->c_pfxlen = 0;
	c->c_fhead = c->c_fcount = c->c_unstamped = 0;
	c->c_remain = 0;
	c->c_hdrlen = c->c_inpayload = c->c_opcode = c->c_fin = 0;
	c->c_msgop = c->c_ctllen = 0;
}

/*
 * --reconnect: starts the connection again (conn_timer_cb) after a
 * delay that doubles up to WSB_RETRY_MAX, jittered by +-50% so that the
 * connections a killed server dropped do not come back in lockstep.
 */
static void
conn_retry(struct conn *c)
{
	double	d;

	c->c_backoff = c->c_backoff == 0 ? WSB_RETRY_MIN :
	    fmin(2 * c->c_backoff, WSB_RETRY_MAX);
	d = c->c_backoff * (0.5 + (double)(rng_next() % 1000) / 1000);
	ev_timer_set(&c->c_timer, d, 0.);
	ev_timer_start(b.b_loop, &c->c_timer);
}

static void
conn_connect_failed(struct conn *c, int err)
{
	conn_abort(c, "connect %s: %s%s", b.b_peer, strerror(err),
	    err == EADDRNOTAVAIL ? " (out of local ports? see --src)" : "");
}

static void
conn_connected(struct conn *c)
{
	socklen_t	len = sizeof(int);
	int		err = 0;

	if (getsockopt(c->c_fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	if (err != 0) {
		conn_connect_failed(c, err);
		return;
	}
	conn_handshake_start(c);
}

/* Queues the upgrade request with a fresh random Sec-WebSocket-Key. */
static int
conn_handshake_start(struct conn *c)
{
	unsigned char	raw[16];
	int		n, i;

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		for (i = 0; i < 16; i++)
			raw[i] = (unsigned char)rng_next();
	EVP_EncodeBlock((unsigned char *)c->c_key, raw, sizeof(raw));
	n = snprintf((char *)c->c_obuf, b.b_obcap,
	    "GET %s HTTP/1.1\r\n"
	    "Host: %s\r\n"
	    "Upgrade: websocket\r\n"
	    "Connection: Upgrade\r\n"
	    "Sec-WebSocket-Key: %s\r\n"
	    "Sec-WebSocket-Version: 13\r\n"
	    "%s\r\n",
	    b.b_path, b.b_hosthdr, c->c_key,
	    b.b_headers != NULL ? b.b_headers : "");
	if (n < 0 || (size_t)n >= b.b_obcap) {
		conn_abort(c, "handshake request too long");
		return -1;
	}
	c->c_oblen = (size_t)n;
	c->c_oboff = 0;
	c->c_hbuf = xmalloc(WSB_HBUF_SIZE);
	c->c_hblen = 0;
	c->c_state = CONN_HANDSHAKE;
	conn_set_events(c, EV_READ);
	conn_want_flush(c);
	return 0;
}

/*
 * Collects response headers.  Returns the bytes of `p` used (the rest are
 * frames), or -1 if the connection was closed.
 */
static ssize_t
conn_handshake_input(struct conn *c, const unsigned char *p, size_t n)
{
	size_t	old = c->c_hblen, room = WSB_HBUF_SIZE - 1 - old, take, i, len;
	char	why[256];

	take = n < room ? n : room;
	memcpy(c->c_hbuf + old, p, take);
	c->c_hblen += take;
	for (i = old > 3 ? old - 3 : 0; i + 4 <= c->c_hblen; i++) {
		if (memcmp(c->c_hbuf + i, "\r\n\r\n", 4) != 0)
			continue;
		/* NUL-terminated lines for the string functions below. */
		c->c_hbuf[i + 2] = '\0';
		for (len = 0; len < i + 2; len++)
			if (c->c_hbuf[len] == '\0')
				c->c_hbuf[len] = '?';
		if (conn_handshake_check(c, i + 2, why, sizeof(why)) == -1) {
			conn_abort(c, "handshake %s: %s", b.b_peer, why);
			return -1;
		}
		conn_opened(c);
		return (ssize_t)(i + 4 - old);
	}
	if (c->c_hblen == WSB_HBUF_SIZE - 1) {
		conn_abort(c, "handshake %s: response headers larger than %d "
		    "bytes", b.b_peer, WSB_HBUF_SIZE - 1);
		return -1;
	}
	return (ssize_t)n;
}

/*
 * RFC 6455 4.1 client checks: 101, Upgrade: websocket, Connection
 * containing "upgrade", the right Sec-WebSocket-Accept, and no extension
 * or subprotocol we did not ask for.  `len` bytes of NUL-terminated
 * header lines, each ending in CRLF.
 */
static int
conn_handshake_check(struct conn *c, size_t len, char *why, size_t whylen)
{
	unsigned char	 md[EVP_MAX_MD_SIZE];
	char		 src[96], accept[64], *line, *end, *name, *val, *tok;
	char		*save;
	unsigned int	 mdlen;
	int		 upgrade = 0, connection = 0, acc = 0;
	size_t		 i, vlen;

	snprintf(src, sizeof(src), "%s%s", c->c_key, WSB_GUID);
	if (EVP_Digest(src, strlen(src), md, &mdlen, EVP_sha1(), NULL) != 1) {
		snprintf(why, whylen, "SHA-1 failed");
		return -1;
	}
	EVP_EncodeBlock((unsigned char *)accept, md, (int)mdlen);

	line = c->c_hbuf;
	end = strstr(line, "\r\n");
	*end = '\0';
	if (strncmp(line, "HTTP/1.1 101", 12) != 0 ||
	    (line[12] != ' ' && line[12] != '\0')) {
		for (i = 0; line[i] != '\0' && i < 100; i++)
			if ((unsigned char)line[i] < 0x20 ||
			    (unsigned char)line[i] > 0x7e)
				line[i] = '?';
		line[i] = '\0';
		snprintf(why, whylen, "server answered \"%s\"", line);
		return -1;
	}
	for (line = end + 2; line < c->c_hbuf + len; line = end + 2) {
		end = strstr(line, "\r\n");
		*end = '\0';
		if ((val = strchr(line, ':')) == NULL) {
			snprintf(why, whylen, "malformed header line");
			return -1;
		}
		*val++ = '\0';
		name = line;
		val += strspn(val, " \t");
		vlen = strlen(val);
		while (vlen > 0 && (val[vlen - 1] == ' ' ||
		    val[vlen - 1] == '\t'))
			val[--vlen] = '\0';
		if (strcasecmp(name, "Upgrade") == 0)
			upgrade = strcasecmp(val, "websocket") == 0;
		else if (strcasecmp(name, "Connection") == 0) {
			for (tok = strtok_r(val, ",", &save); tok != NULL;
			    tok = strtok_r(NULL, ",", &save)) {
				tok += strspn(tok, " \t");
				vlen = strcspn(tok, " \t");
				if (vlen == 7 &&
				    strncasecmp(tok, "upgrade", 7) == 0)
					connection = 1;
			}
		} else if (strcasecmp(name, "Sec-WebSocket-Accept") == 0) {
			if (strcmp(val, accept) != 0) {
				snprintf(why, whylen, "wrong "
				    "Sec-WebSocket-Accept \"%.40s\", expected "
				    "\"%s\"", val, accept);
				return -1;
			}
			acc = 1;
		} else if (strcasecmp(name, "Sec-WebSocket-Extensions") == 0 ||
		    strcasecmp(name, "Sec-WebSocket-Protocol") == 0) {
			snprintf(why, whylen, "server sent %s, which we did "
			    "not offer", name);
			return -1;
		}
	}
	if (!upgrade)
		snprintf(why, whylen, "missing \"Upgrade: websocket\"");
	else if (!connection)
		snprintf(why, whylen, "missing \"Connection: upgrade\"");
	else if (!acc)
		snprintf(why, whylen, "missing Sec-WebSocket-Accept");
	else
		return 0;
	return -1;
}

static void
conn_opened(struct conn *c)
{
	free(c->c_hbuf);
	c->c_hbuf = NULL;
	ev_timer_stop(b.b_loop, &c->c_timer);
	c->c_state = CONN_OPEN;
	b.b_connecting--;
	b.b_active++;
	c->c_backoff = 0;
	if (c->c_everopen)
		b.b_reconnects++;
	else
		b.b_ok++;
	c->c_everopen = 1;
	if (!b.b_idle) {
		if (b.b_match == MATCH_ID) {
			c->c_tab = calloc(b.b_tabcap, sizeof(*c->c_tab));
			if (c->c_tab == NULL)
				die("out of memory");
		} else
			c->c_fifo = xmalloc(b.b_inflight * sizeof(*c->c_fifo));
		if (b.b_pfxcap > 0)
			c->c_pfx = xmalloc(b.b_pfxcap);
		/* Spread rate-limited senders over one interval. */
		if (b.b_rate_ns != 0)
			c->c_next_ns = mono_ns() + (uint64_t)rng_next() %
			    b.b_rate_ns;
	}
	bench_start_more();
	bench_check_ready();
}

/*
 * Closes the connection for `fmt` and accounts for it by state: before
 * the handshake completed it failed, afterwards it dropped (its requests
 * in flight are lost), while stopping it finished quietly.  With
 * --reconnect a dropped connection, or a failed attempt to reopen one,
 * is started again later.  The struct stays; the reaper frees its
 * buffers, so callers up the stack only check c_state.
 */
static void
conn_abort(struct conn *c, const char *fmt, ...)
{
	enum conn_state	state = c->c_state;
	va_list		ap;
	char		msg[512];

	if (state == CONN_CLOSED || state == CONN_NEW)
		return;
	conn_close_fd(c);
	if (b.b_phase == PHASE_LINGER) {
		if (state == CONN_CLOSING && --b.b_closing == 0)
			ev_break(b.b_loop, EVBREAK_ONE);
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	conn_error("%s", msg);
	if (state == CONN_CONNECTING || state == CONN_HANDSHAKE) {
		b.b_connecting--;
		if (c->c_everopen) {
			conn_retry(c);
			return;
		}
		b.b_failed++;
		bench_start_more();
		bench_check_ready();
		return;
	}
	b.b_dropped++;
	b.b_active--;
	b.b_lost += c->c_fcount;
	b.b_outstanding -= c->c_fcount;
	c->c_fcount = 0;
	if (b.b_phase == PHASE_DRAIN) {
		if (b.b_outstanding == 0)
			bench_drained();
		return;
	}
	if (b.b_reconnect) {
		conn_retry(c);
		return;
	}
	if (b.b_active == 0 && b.b_phase != PHASE_CONNECT) {
		fprintf(stderr, "wsbench: all connections are closed\n");
		bench_stop();
	}
}

static void
conn_close_fd(struct conn *c)
{
	ev_io_stop(b.b_loop, &c->c_io);
	ev_timer_stop(b.b_loop, &c->c_timer);
	c->c_events = 0;
	if (c->c_fd != -1)
		close(c->c_fd);
	c->c_fd = -1;
	c->c_state = CONN_CLOSED;
	if (!c->c_onreap) {
		c->c_onreap = 1;
		c->c_reapnext = b.b_reapq;
		b.b_reapq = c;
	}
}

static void
conn_set_events(struct conn *c, int events)
{
	if (c->c_events == events)
		return;
	ev_io_stop(b.b_loop, &c->c_io);
	ev_io_modify(&c->c_io, events);
	if (events != 0)
		ev_io_start(b.b_loop, &c->c_io);
	c->c_events = events;
}

/* 0 when `need` bytes fit at the end of the output buffer. */
static int
conn_room(struct conn *c, size_t need)
{
	if (b.b_obcap - c->c_oblen >= need)
		return 0;
	if (c->c_oboff == 0)
		return -1;
	memmove(c->c_obuf, c->c_obuf + c->c_oboff, c->c_oblen - c->c_oboff);
	c->c_oblen -= c->c_oboff;
	c->c_oboff = 0;
	return b.b_obcap - c->c_oblen >= need ? 0 : -1;
}

/* The prepare watcher writes everything queued this loop iteration. */
static void
conn_want_flush(struct conn *c)
{
	if (c->c_onflush)
		return;
	c->c_onflush = 1;
	c->c_flushnext = b.b_flushq;
	b.b_flushq = c;
}

/* One send() of all queued output; stamps the requests it carries. */
static void
conn_flush(struct conn *c)
{
	uint64_t	now;
	ssize_t		n;
	unsigned int	i, idx;

	if (c->c_oblen == c->c_oboff) {
		conn_set_events(c, EV_READ);
		return;
	}
	now = mono_ns();
	n = send(c->c_fd, c->c_obuf + c->c_oboff, c->c_oblen - c->c_oboff,
	    MSG_NOSIGNAL);
	if (n == -1) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
			conn_set_events(c, EV_READ | EV_WRITE);
			return;
		}
		conn_abort(c, "write %s: %s", b.b_peer, strerror(errno));
		return;
	}
	for (i = 0; i < c->c_unstamped; i++) {
		if (c->c_tab != NULL) {
			/* The newest requests: c_seq - 1, c_seq - 2, ... */
			struct slot *s = tab_find(c, c->c_seq - 1 - i);

			if (s != NULL)
				s->s_ts = now;
			continue;
		}
		idx = (c->c_fhead + c->c_fcount - 1 - i) % b.b_inflight;
		c->c_fifo[idx] = now;
	}
	c->c_unstamped = 0;
	c->c_oboff += (size_t)n;
	if (c->c_oboff == c->c_oblen) {
		c->c_oboff = c->c_oblen = 0;
		conn_set_events(c, EV_READ);
	} else
		conn_set_events(c, EV_READ | EV_WRITE);
	/* Room again: queue what did not fit; it goes out next iteration. */
	if (c->c_blocked) {
		c->c_blocked = 0;
		conn_fill(c);
	}
}

/* Best-effort single send before closing; errors do not matter. */
static void
conn_send_now(struct conn *c)
{
	ssize_t	n;

	if (c->c_fd == -1 || c->c_oblen == c->c_oboff)
		return;
	n = send(c->c_fd, c->c_obuf + c->c_oboff, c->c_oblen - c->c_oboff,
	    MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n > 0)
		c->c_oboff += (size_t)n;
}

/* Queues a masked control frame; -1 (dropped) when there is no room. */
static int
conn_queue_ctl(struct conn *c, int op, const unsigned char *payload,
    size_t len)
{
	unsigned char	*p;
	uint32_t	 key;

	if (c->c_obuf == NULL || conn_room(c, 6 + len) == -1)
		return -1;
	p = c->c_obuf + c->c_oblen;
	p[0] = (unsigned char)(0x80 | op);
	p[1] = (unsigned char)(0x80 | len);
	key = rng_next();
	memcpy(p + 2, &key, 4);
	memcpy(p + 6, payload, len);
	ws_mask(p + 6, len, p + 2);
	c->c_oblen += 6 + len;
	conn_want_flush(c);
	return 0;
}

/*
 * Queues one request: a masked text frame built straight into the
 * output buffer.  -1 when the buffer is full (a write will make room);
 * WSB_CTL_SLACK bytes always stay free for pongs and the close frame.
 */
static int
conn_send_msg(struct conn *c)
{
	unsigned char	*p, *q;
	size_t		 pad, plen, hlen, i;
	uint32_t	 key;

	plen = tmpl_length(c->c_seq, c->c_id, &pad);
	hlen = ws_client_header_size(plen);
	if (conn_room(c, hlen + plen + WSB_CTL_SLACK) == -1)
		return -1;
	p = c->c_obuf + c->c_oblen;
	p[0] = 0x80 | WS_OP_TEXT;
	if (plen <= 125) {
		p[1] = (unsigned char)(0x80 | plen);
		q = p + 2;
	} else if (plen <= 0xffff) {
		p[1] = 0x80 | 126;
		p[2] = (unsigned char)(plen >> 8);
		p[3] = (unsigned char)plen;
		q = p + 4;
	} else {
		p[1] = 0x80 | 127;
		for (i = 0; i < 8; i++)
			p[2 + i] = (unsigned char)((uint64_t)plen >>
			    (56 - 8 * i));
		q = p + 10;
	}
	key = rng_next();
	memcpy(q, &key, 4);
	tmpl_write(q + 4, c->c_seq, c->c_id, pad);
	ws_mask(q + 4, plen, q);
	c->c_oblen += hlen + plen;

	if (c->c_tab != NULL)
		tab_insert(c, c->c_seq);
	else
		c->c_fifo[(c->c_fhead + c->c_fcount) % b.b_inflight] = 0;
	c->c_fcount++;
	c->c_unstamped++;
	c->c_seq++;
	b.b_outstanding++;
	b.b_sent_all++;
	if (b.b_measuring) {
		b.b_sent++;
		b.b_bytes_sent += plen;
	}
	conn_want_flush(c);
	return 0;
}

/* Tops the connection up to INFLIGHT requests, within the rate limit. */
static void
conn_fill(struct conn *c)
{
	uint64_t	now = 0;

	if (c->c_state != CONN_OPEN || b.b_idle || b.b_phase >= PHASE_DRAIN)
		return;
	while (c->c_fcount < b.b_inflight) {
		if (b.b_rate_ns != 0) {
			if (now == 0)
				now = mono_ns();
			if (c->c_next_ns > now) {
				if (!ev_is_active(&c->c_timer)) {
					ev_timer_set(&c->c_timer,
					    (double)(c->c_next_ns - now) / 1e9,
					    0.);
					ev_timer_start(b.b_loop, &c->c_timer);
				}
				break;
			}
		}
		if (conn_send_msg(c) == -1) {
			c->c_blocked = 1;
			break;
		}
		if (b.b_rate_ns != 0) {
			/*
			 * Timers fire up to a millisecond late (epoll), so
			 * make up for lateness, but at most WSB_RATE_SLACK
			 * worth: no big burst after a stall.
			 */
			c->c_next_ns += b.b_rate_ns;
			if (c->c_next_ns + WSB_RATE_SLACK < now)
				c->c_next_ns = now - WSB_RATE_SLACK;
		}
	}
}

/* One recv() per readiness: handshake bytes first, then frames. */
static void
conn_read(struct conn *c)
{
	const unsigned char	*p = rbuf;
	ssize_t			 n, used;
	size_t			 len;
	uint64_t		 now;

	n = recv(c->c_fd, rbuf, sizeof(rbuf), 0);
	if (n == -1) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		conn_abort(c, "%s %s: %s", c->c_state == CONN_HANDSHAKE ?
		    "handshake" : "read", b.b_peer, strerror(errno));
		return;
	}
	if (n == 0) {
		if (c->c_state == CONN_HANDSHAKE)
			conn_abort(c, "handshake %s: connection closed by "
			    "server", b.b_peer);
		else
			conn_abort(c, "%s: connection closed by server "
			    "without a close frame", b.b_peer);
		return;
	}
	now = mono_ns();
	len = (size_t)n;
	if (c->c_state == CONN_HANDSHAKE) {
		if ((used = conn_handshake_input(c, p, len)) == -1)
			return;
		p += used;
		len -= (size_t)used;
		if (c->c_state != CONN_OPEN)
			return;
	}
	if (len > 0 && ws_input(c, p, len, now) == -1)
		return;
	conn_fill(c);
}

static void
conn_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct conn	*c = (struct conn *)w;

	(void)loop;
	if (c->c_state == CONN_CONNECTING) {
		conn_connected(c);
		return;
	}
	if (revents & EV_WRITE) {
		conn_flush(c);
		if (c->c_state == CONN_CLOSED)
			return;
	}
	if (revents & EV_READ)
		conn_read(c);
}

static void
conn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct conn	*c = w->data;

	(void)loop;
	(void)revents;
	if (c->c_state == CONN_CLOSED) {
		/*
		 * A --reconnect delay is over.  The reaper (prepare watcher)
		 * has freed the old buffers: it runs before every poll, and
		 * timers fire after one.
		 */
		if (b.b_phase < PHASE_DRAIN && !c->c_onreap)
			conn_start(c);
		return;
	}
	if (c->c_state == CONN_CONNECTING || c->c_state == CONN_HANDSHAKE)
		conn_abort(c, "%s %s: timed out after %g s",
		    c->c_state == CONN_CONNECTING ? "connect" : "handshake",
		    b.b_peer, b.b_timeout);
	else
		conn_fill(c);
}

/* ---- Run phases ---- */

/*
 * Starts connections until PENDING are in progress.  A connection that
 * fails at once comes back here through conn_abort(); the guard keeps
 * that from recursing once per connection.
 */
static void
bench_start_more(void)
{
	if (b.b_starting)
		return;
	b.b_starting = 1;
	while (b.b_phase == PHASE_CONNECT && b.b_next < b.b_nconns &&
	    b.b_connecting < b.b_pending)
		conn_start(&b.b_conns[b.b_next++]);
	b.b_starting = 0;
}

static void
bench_check_ready(void)
{
	if (b.b_phase == PHASE_CONNECT && b.b_ok + b.b_failed == b.b_nconns)
		bench_ready();
}

/* Every connection is up or has failed. */
static void
bench_ready(void)
{
	b.b_t_ready = mono_ns();
	if (b.b_ok == 0) {
		fprintf(stderr, "wsbench: no connection to %s could be "
		    "established\n", b.b_peer);
		b.b_phase = PHASE_LINGER;
		ev_break(b.b_loop, EVBREAK_ONE);
		return;
	}
	if (b.b_failed > 0)
		fprintf(stderr, "wsbench: %u of %u connections failed\n",
		    b.b_failed, b.b_nconns);
	ev_timer_stop(b.b_loop, &b.b_phase_timer);
	if (b.b_idle) {
		printf("established %u\n", b.b_ok);
		fflush(stdout);
		b.b_phase = PHASE_HOLD;
		b.b_t_start = b.b_t_ready;
		b.b_ticks = 0;
		if (b.b_duration > 0) {
			ev_timer_set(&b.b_phase_timer, b.b_duration, 0.);
			ev_timer_start(b.b_loop, &b.b_phase_timer);
		}
		return;
	}
	/* The load is on: what tests wait for before injecting faults. */
	fprintf(stderr, "wsbench: ready: %u connections, run %s\n", b.b_ok,
	    b.b_tag);
	if (b.b_warmup > 0) {
		b.b_phase = PHASE_WARMUP;
		ev_timer_set(&b.b_phase_timer, b.b_warmup, 0.);
		ev_timer_start(b.b_loop, &b.b_phase_timer);
	} else
		bench_measure_start();
}

static void
bench_measure_start(void)
{
	b.b_phase = PHASE_MEASURE;
	b.b_measuring = 1;
	b.b_t_start = mono_ns();
	ev_timer_stop(b.b_loop, &b.b_phase_timer);
	ev_timer_set(&b.b_phase_timer, b.b_duration, 0.);
	ev_timer_start(b.b_loop, &b.b_phase_timer);
}

/*
 * End of the run (timer, signal, or nothing left): stop measuring and
 * sending, drop the connections still being (re)established and, with
 * --drain, wait up to that long for the replies in flight; then close.
 * A signal during the drain closes at once, one during the close exits.
 */
static void
bench_stop(void)
{
	struct conn	*c;
	unsigned int	 i;

	if (b.b_phase == PHASE_LINGER) {
		ev_break(b.b_loop, EVBREAK_ONE);
		return;
	}
	if (b.b_phase == PHASE_DRAIN) {
		bench_close_all();
		return;
	}
	b.b_t_end = mono_ns();
	b.b_measuring = 0;
	ev_timer_stop(b.b_loop, &b.b_phase_timer);
	for (i = 0; i < b.b_next; i++) {
		c = &b.b_conns[i];
		/* Handshake deadline, rate limit or reconnect delay. */
		ev_timer_stop(b.b_loop, &c->c_timer);
		if (c->c_state == CONN_CONNECTING ||
		    c->c_state == CONN_HANDSHAKE) {
			b.b_connecting--;
			conn_close_fd(c);
		}
	}
	if (b.b_drain > 0 && b.b_outstanding > 0) {
		b.b_phase = PHASE_DRAIN;
		ev_timer_set(&b.b_phase_timer, b.b_drain, 0.);
		ev_timer_start(b.b_loop, &b.b_phase_timer);
		return;
	}
	bench_close_all();
}

/* --drain: the last reply came in; close from the loop, not the parser. */
static void
bench_drained(void)
{
	ev_timer_stop(b.b_loop, &b.b_phase_timer);
	ev_timer_set(&b.b_phase_timer, 0., 0.);
	ev_timer_start(b.b_loop, &b.b_phase_timer);
}

/*
 * Sends every open connection a close frame and gives the server
 * WSB_LINGER seconds to answer, so it sees clean closes rather than
 * resets.
 */
static void
bench_close_all(void)
{
	static const unsigned char	normal[2] = { 1000 >> 8, 1000 & 0xff };
	struct conn			*c;
	unsigned int			 i;

	b.b_phase = PHASE_LINGER;
	ev_timer_stop(b.b_loop, &b.b_progress);
	ev_timer_stop(b.b_loop, &b.b_phase_timer);
	for (i = 0; i < b.b_next; i++) {
		c = &b.b_conns[i];
		if (c->c_state == CONN_OPEN) {
			c->c_state = CONN_CLOSING;
			b.b_closing++;
			if (conn_queue_ctl(c, WS_OP_CLOSE, normal, 2) == -1)
				conn_abort(c, "closed");
		}
	}
	if (b.b_closing == 0) {
		ev_break(b.b_loop, EVBREAK_ONE);
		return;
	}
	ev_timer_set(&b.b_phase_timer, WSB_LINGER, 0.);
	ev_timer_start(b.b_loop, &b.b_phase_timer);
}

/*
 * Runs once per loop iteration before the loop blocks: one send() per
 * connection with queued output (unless a partial write is waiting for
 * EV_WRITE), then frees the buffers of connections closed meanwhile.
 * Output queued during the pass (a blocked connection refilled) waits
 * for the next iteration; the idle watcher keeps the loop from sleeping
 * until then.
 */
static void
bench_prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct conn	*c, *list;

	(void)w;
	(void)revents;
	list = b.b_flushq;
	b.b_flushq = NULL;
	while ((c = list) != NULL) {
		list = c->c_flushnext;
		c->c_onflush = 0;
		if (c->c_state >= CONN_HANDSHAKE && c->c_state != CONN_CLOSED &&
		    !(c->c_events & EV_WRITE))
			conn_flush(c);
	}
	if (b.b_flushq != NULL && loop != NULL)
		ev_idle_start(loop, &b.b_kick);
	while ((c = b.b_reapq) != NULL) {
		b.b_reapq = c->c_reapnext;
		c->c_onreap = 0;
		free(c->c_obuf);
		free(c->c_hbuf);
		free(c->c_fifo);
		free(c->c_tab);
		free(c->c_pfx);
		c->c_obuf = NULL;
		c->c_hbuf = NULL;
		c->c_fifo = NULL;
		c->c_tab = NULL;
		c->c_pfx = NULL;
		c->c_oblen = c->c_oboff = 0;
	}
}

static void
bench_kick_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	(void)revents;
	ev_idle_stop(loop, w);
}

static void
bench_phase_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)w;
	(void)revents;
	switch (b.b_phase) {
	case PHASE_CONNECT:
		bench_start_more();
		break;
	case PHASE_WARMUP:
		bench_measure_start();
		break;
	case PHASE_MEASURE:
	case PHASE_HOLD:
		bench_stop();
		break;
	case PHASE_DRAIN:
		bench_close_all();
		break;
	case PHASE_LINGER:
		ev_break(loop, EVBREAK_ONE);
		break;
	}
}

static void
bench_progress_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	/* Tests read the record while the run goes on. */
	if (b.b_record != NULL)
		fflush(b.b_record);
	if (b.b_phase == PHASE_CONNECT)
		fprintf(stderr, "wsbench: connecting: %u established, "
		    "%u failed, %u in progress, %u to go\n", b.b_ok,
		    b.b_failed, b.b_connecting, b.b_nconns - b.b_next);
	else if (b.b_phase == PHASE_HOLD && ++b.b_ticks % 10 == 0)
		fprintf(stderr, "wsbench: holding %u connections (%u "
		    "dropped)\n", b.b_active, b.b_dropped);
}

/* Loop context (ev_signal): safe to do anything here. */
static void
bench_signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	bench_stop();
}

/* ---- Report ---- */

static void
json_str(const char *s)
{
	putchar('"');
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", (unsigned char)*s);
		else
			putchar(*s);
	}
	putchar('"');
}

static void
bench_report(void)
{
	const struct hist	*h = &b.b_hist;
	double			 secs = 0, rate = 0, mbs = 0, mean = 0;
	double			 p50, p90, p99, p999, max;

	if (b.b_t_start != 0 && b.b_t_end > b.b_t_start)
		secs = (double)(b.b_t_end - b.b_t_start) / 1e9;
	if (secs > 0 && !b.b_idle) {
		rate = (double)b.b_received / secs;
		mbs = (double)b.b_bytes_recv / secs / 1e6;
	}
	if (h->h_total > 0)
		mean = h->h_sum / (double)h->h_total / 1000;
	p50 = (double)hist_percentile(h, 50) / 1000;
	p90 = (double)hist_percentile(h, 90) / 1000;
	p99 = (double)hist_percentile(h, 99) / 1000;
	p999 = (double)hist_percentile(h, 99.9) / 1000;
	max = (double)h->h_max / 1000;

	if (b.b_suppressed > 0)
		fprintf(stderr, "wsbench: %llu more connection errors not "
		    "shown\n", (unsigned long long)b.b_suppressed);

	if (b.b_json) {
		printf("{\"mode\":\"%s\",\"url\":", b.b_idle ? "idle" : "load");
		json_str(b.b_url);
		printf(",\"conns\":%u,\"conns_ok\":%u,\"conns_failed\":%u,"
		    "\"conns_dropped\":%u", b.b_nconns, b.b_ok, b.b_failed,
		    b.b_dropped);
		if (b.b_idle)
			printf(",\"held_s\":%.3f,\"pings\":%llu}\n", secs,
			    (unsigned long long)b.b_pings);
		else
			printf(",\"inflight\":%u,\"size\":%zu,\"rate_limit\":"
			    "%.0f,\"duration_s\":%.3f,\"sent\":%llu,"
			    "\"received\":%llu,\"unexpected\":%llu,"
			    "\"bytes_sent\":%llu,\"bytes_received\":%llu,"
			    "\"msgs_per_s\":%.1f,\"mb_per_s\":%.3f,"
			    "\"mean_ms\":%.3f,\"p50_ms\":%.3f,\"p90_ms\":%.3f,"
			    "\"p99_ms\":%.3f,\"p999_ms\":%.3f,"
			    "\"max_ms\":%.3f",
			    b.b_inflight, b.b_size, b.b_rate, secs,
			    (unsigned long long)b.b_sent,
			    (unsigned long long)b.b_received,
			    (unsigned long long)b.b_unexpected,
			    (unsigned long long)b.b_bytes_sent,
			    (unsigned long long)b.b_bytes_recv,
			    rate, mbs, mean, p50, p90, p99, p999, max);
		if (!b.b_idle)
			printf(",\"run\":\"%s\",\"sent_all\":%llu,"
			    "\"replies_all\":%llu,\"lost\":%llu,"
			    "\"reconnects\":%u,\"records\":%llu", b.b_tag,
			    (unsigned long long)b.b_sent_all,
			    (unsigned long long)b.b_replies_all,
			    (unsigned long long)b.b_lost, b.b_reconnects,
			    (unsigned long long)b.b_records);
		if (!b.b_idle && b.b_match == MATCH_ID)
			printf(",\"match\":\"id\",\"unmatched\":%llu,"
			    "\"status_none\":%llu,\"status_1xx\":%llu,"
			    "\"status_2xx\":%llu,\"status_3xx\":%llu,"
			    "\"status_4xx\":%llu,\"status_5xx\":%llu,"
			    "\"status_other\":%llu",
			    (unsigned long long)b.b_unmatched,
			    (unsigned long long)b.b_status[0],
			    (unsigned long long)b.b_status[1],
			    (unsigned long long)b.b_status[2],
			    (unsigned long long)b.b_status[3],
			    (unsigned long long)b.b_status[4],
			    (unsigned long long)b.b_status[5],
			    (unsigned long long)b.b_status[6]);
		if (!b.b_idle)
			printf("}\n");
		fflush(stdout);
		return;
	}
	if (b.b_idle) {
		printf("wsbench %s: %u idle connections\n", b.b_url,
		    b.b_nconns);
		printf("  connections  %u ok, %u failed, %u dropped\n",
		    b.b_ok, b.b_failed, b.b_dropped);
		printf("  held         %.2f s, %llu server pings answered\n",
		    secs, (unsigned long long)b.b_pings);
		fflush(stdout);
		return;
	}
	printf("wsbench %s: %u connections x %u in flight, %zu-byte "
	    "messages\n", b.b_url, b.b_nconns, b.b_inflight, b.b_size);
	printf("  connections  %u ok, %u failed, %u dropped", b.b_ok,
	    b.b_failed, b.b_dropped);
	if (b.b_reconnect)
		printf(", %u reconnected", b.b_reconnects);
	printf("\n");
	printf("  measured     %.2f s", secs);
	if (b.b_warmup > 0)
		printf(" after %.2f s warmup", b.b_warmup);
	if (b.b_rate > 0)
		printf(", rate limit %.0f msg/s", b.b_rate);
	printf("\n");
	printf("  messages     %llu sent, %llu received",
	    (unsigned long long)b.b_sent, (unsigned long long)b.b_received);
	if (b.b_unexpected > 0)
		printf(", %llu unexpected", (unsigned long long)b.b_unexpected);
	printf("\n");
	printf("  whole run    %llu sent, %llu replies, %llu lost (in flight "
	    "on a closed connection)\n", (unsigned long long)b.b_sent_all,
	    (unsigned long long)b.b_replies_all,
	    (unsigned long long)b.b_lost);
	if (b.b_record != NULL)
		printf("  record       %llu lines in %s\n",
		    (unsigned long long)b.b_records, b.b_record_path);
	if (b.b_match == MATCH_ID)
		printf("  replies      matched by id, %llu unmatched; status "
		    "2xx %llu, 4xx %llu, 5xx %llu, other %llu, none %llu "
		    "(whole run)\n", (unsigned long long)b.b_unmatched,
		    (unsigned long long)b.b_status[2],
		    (unsigned long long)b.b_status[4],
		    (unsigned long long)b.b_status[5],
		    (unsigned long long)(b.b_status[1] + b.b_status[3] +
		    b.b_status[6]), (unsigned long long)b.b_status[0]);
	printf("  throughput   %.1f msg/s, %.2f MB/s received\n", rate, mbs);
	printf("  latency ms   p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  "
	    "max %.3f  mean %.3f\n", p50, p90, p99, p999, max, mean);
	fflush(stdout);
}

/* ---- Main ---- */

int
main(int argc, char *argv[])
{
	static const struct option	longopts[] = {
		{ "url",	required_argument,	NULL, 'u' },
		{ "conns",	required_argument,	NULL, 'c' },
		{ "inflight",	required_argument,	NULL, 'n' },
		{ "size",	required_argument,	NULL, 's' },
		{ "template",	required_argument,	NULL, 'm' },
		{ "duration",	required_argument,	NULL, 'd' },
		{ "warmup",	required_argument,	NULL, 'w' },
		{ "rate",	required_argument,	NULL, 'r' },
		{ "timeout",	required_argument,	NULL, 't' },
		{ "pending",	required_argument,	NULL, 'p' },
		{ "header",	required_argument,	NULL, 'H' },
		{ "src",	required_argument,	NULL, 'S' },
		{ "idle",	no_argument,		NULL, 'I' },
		{ "json",	no_argument,		NULL, 'J' },
		{ "match",	required_argument,	NULL, 'M' },
		{ "record",	required_argument,	NULL, 'R' },
		{ "run-tag",	required_argument,	NULL, 'T' },
		{ "reconnect",	no_argument,		NULL, 'C' },
		{ "drain",	required_argument,	NULL, 'D' },
		{ "help",	no_argument,		NULL, 'h' },
		{ NULL,		0,			NULL, 0 }
	};
	struct conn	*c;
	size_t		 hslen, datacap, frame;
	unsigned int	 i;
	int		 ch, exitcode;
	char		*end;
	unsigned char	 rnd[4];

	b.b_nconns = 1;
	b.b_inflight = 1;
	b.b_size = 64;
	b.b_duration = 10;
	b.b_timeout = 10;
	b.b_pending = 256;

	while ((ch = getopt_long(argc, argv, "u:c:n:s:m:d:w:r:t:p:H:h",
	    longopts, NULL)) != -1) {
		switch (ch) {
		case 'u':
			b.b_url = optarg;
			break;
		case 'c':
			b.b_nconns = (unsigned int)parse_num("-c", optarg, 1,
			    10000000);
			break;
		case 'n':
			b.b_inflight = (unsigned int)parse_num("-n", optarg,
			    1, WSB_MAX_INFLIGHT);
			break;
		case 's':
			b.b_size = parse_size("-s", optarg);
			break;
		case 'm':
			b.b_template = optarg;
			break;
		case 'd':
			b.b_duration = parse_seconds("-d", optarg);
			break;
		case 'w':
			b.b_warmup = parse_seconds("-w", optarg);
			break;
		case 'r':
			errno = 0;
			b.b_rate = strtod(optarg, &end);
			if (end == optarg || *end != '\0' || errno != 0 ||
			    !isfinite(b.b_rate) || b.b_rate < 0)
				die("-r: invalid rate '%s'", optarg);
			break;
		case 't':
			b.b_timeout = parse_seconds("-t", optarg);
			if (b.b_timeout <= 0)
				die("-t: the timeout must be positive");
			break;
		case 'p':
			b.b_pending = (unsigned int)parse_num("-p", optarg, 1,
			    1000000);
			break;
		case 'H':
			add_header(optarg);
			break;
		case 'S':
			parse_src(optarg);
			break;
		case 'I':
			b.b_idle = 1;
			break;
		case 'J':
			b.b_json = 1;
			break;
		case 'M':
			if (strcmp(optarg, "auto") == 0)
				b.b_match = MATCH_AUTO;
			else if (strcmp(optarg, "fifo") == 0)
				b.b_match = MATCH_FIFO;
			else if (strcmp(optarg, "id") == 0)
				b.b_match = MATCH_ID;
			else
				die("--match: '%s' is not fifo, id or auto",
				    optarg);
			break;
		case 'R':
			b.b_record_path = optarg;
			break;
		case 'T':
			parse_tag(optarg);
			break;
		case 'C':
			b.b_reconnect = 1;
			break;
		case 'D':
			b.b_drain = parse_seconds("--drain", optarg);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "wsbench: unexpected argument '%s'\n",
		    argv[optind]);
		usage(stderr);
		return 2;
	}
	if (b.b_url == NULL) {
		fprintf(stderr, "wsbench: -u URL is required\n");
		usage(stderr);
		return 2;
	}
	if (!b.b_idle && b.b_duration <= 0)
		die("-d: the duration must be positive (0 only with --idle)");
	if (b.b_idle && b.b_record_path != NULL)
		die("--record: no replies to record with --idle");
	parse_url(b.b_url);
	if (b.b_src && b.b_addr.ss_family != AF_INET)
		die("--src needs an IPv4 target");
	raise_nofile();

	/*
	 * Replies matched by id when the request's "id" is its {seq} (the
	 * pipeline answers out of order); the default template, made for
	 * the in-order echo endpoint, stays FIFO unless --match id.
	 */
	if (b.b_match == MATCH_AUTO)
		b.b_match = b.b_template != NULL &&
		    tmpl_seq_id(b.b_template) ? MATCH_ID : MATCH_FIFO;
	if (b.b_match == MATCH_ID && !b.b_idle)
		for (b.b_tabcap = 2; b.b_tabcap < 2 * (size_t)b.b_inflight;)
			b.b_tabcap *= 2;
	else
		b.b_match = MATCH_FIFO;
	if (b.b_record_path != NULL)
		b.b_pfxcap = WSB_PFX_RECORD;
	else if (b.b_match == MATCH_ID)
		b.b_pfxcap = WSB_PFX;
	/*
	 * Default message: JSON with the sequence number, padded with 'x'
	 * to SIZE; below 32 bytes plain filler.
	 */
	if (b.b_template == NULL)
		b.b_template = b.b_size >= 32 ?
		    "{\"id\":{seq},\"data\":\"{pad}\"}" : "{pad}";
	/* {run}: random unless given, so that ids differ between runs. */
	if (b.b_tag[0] == '\0') {
		if (RAND_bytes(rnd, sizeof(rnd)) != 1)
			die("RAND_bytes failed");
		snprintf(b.b_tag, sizeof(b.b_tag), "%02x%02x%02x%02x", rnd[0],
		    rnd[1], rnd[2], rnd[3]);
	}
	tmpl_compile(b.b_template);

	/*
	 * Output buffer: the handshake request, or up to INFLIGHT frames
	 * (capped at WSB_DATA_MAX but always at least one) plus room for
	 * control frames.  Fixed per connection for the whole run.
	 */
	hslen = strlen(b.b_path) + strlen(b.b_hosthdr) + b.b_headerslen + 160;
	frame = b.b_maxpayload + 14;
	datacap = 0;
	if (!b.b_idle) {
		datacap = (size_t)b.b_inflight * frame;
		if (datacap > WSB_DATA_MAX)
			datacap = frame > WSB_DATA_MAX ? frame : WSB_DATA_MAX;
	}
	b.b_obcap = datacap + WSB_CTL_SLACK;
	if (b.b_obcap < hslen)
		b.b_obcap = hslen;
	if (b.b_rate > 0 && !b.b_idle) {
		b.b_rate_ns = (uint64_t)(1e9 * (double)b.b_nconns / b.b_rate);
		if (b.b_rate_ns == 0)
			b.b_rate_ns = 1;
	}

	if (RAND_bytes((unsigned char *)&b.b_rng, sizeof(b.b_rng)) != 1 ||
	    b.b_rng == 0)
		b.b_rng = (uint32_t)mono_ns() | 1;
	signal(SIGPIPE, SIG_IGN);
	if (b.b_record_path != NULL)
		record_open();

	if ((b.b_loop = ev_default_loop(EVFLAG_AUTO)) == NULL)
		die("cannot initialise libev");
	b.b_conns = calloc(b.b_nconns, sizeof(*b.b_conns));
	if (b.b_conns == NULL)
		die("out of memory for %u connections", b.b_nconns);
	for (i = 0; i < b.b_nconns; i++) {
		c = &b.b_conns[i];
		c->c_fd = -1;
		c->c_id = i;
		ev_io_init(&c->c_io, conn_io_cb, -1, 0);
		ev_timer_init(&c->c_timer, conn_timer_cb, 0., 0.);
		c->c_timer.data = c;
	}

	ev_prepare_init(&b.b_prepare, bench_prepare_cb);
	ev_prepare_start(b.b_loop, &b.b_prepare);
	ev_idle_init(&b.b_kick, bench_kick_cb);
	ev_signal_init(&b.b_sigint, bench_signal_cb, SIGINT);
	ev_signal_start(b.b_loop, &b.b_sigint);
	ev_signal_init(&b.b_sigterm, bench_signal_cb, SIGTERM);
	ev_signal_start(b.b_loop, &b.b_sigterm);
	ev_timer_init(&b.b_progress, bench_progress_cb, 1., 1.);
	ev_timer_start(b.b_loop, &b.b_progress);
	/* Connecting starts from the loop, so ev_break always applies. */
	b.b_phase = PHASE_CONNECT;
	ev_timer_init(&b.b_phase_timer, bench_phase_cb, 0., 0.);
	ev_timer_start(b.b_loop, &b.b_phase_timer);

	ev_run(b.b_loop, 0);

	if (b.b_t_end == 0)
		b.b_t_end = mono_ns();
	for (i = 0; i < b.b_next; i++) {
		c = &b.b_conns[i];
		if (c->c_fd != -1) {
			conn_send_now(c);
			conn_close_fd(c);
		}
	}
	b.b_lost += b.b_outstanding;
	b.b_outstanding = 0;
	bench_report();
	exitcode = b.b_ok > 0 ? 0 : 1;
	if (record_close() == -1)
		exitcode = 1;

	bench_prepare_cb(NULL, &b.b_prepare, 0);
	for (i = 0; i < b.b_nconns; i++) {
		c = &b.b_conns[i];
		free(c->c_obuf);
		free(c->c_hbuf);
		free(c->c_fifo);
		free(c->c_tab);
		free(c->c_pfx);
	}
	free(b.b_conns);
	free(b.b_segs);
	free(b.b_path);
	free(b.b_hosthdr);
	free(b.b_headers);
	ev_loop_destroy(b.b_loop);
	return exitcode;
}
