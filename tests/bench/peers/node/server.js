'use strict';
/*
 * Node.js implementation of wsgate's request pipeline, PROTOCOL.md
 * sections 1-4, as the peer that tests/bench/pipeline.sh measures wsgate
 * against: ws (WebSocket server), ioredis (config lookups), undici (HTTP
 * client to the upstream, keep-alive pool), pg (records, off unless
 * --pg is given).  A cluster: the primary forks --workers processes that
 * share the listening port (Node's default round-robin: the primary
 * accepts and hands connections out).
 *
 *   node server.js --listen 127.0.0.1:8080 --redis 127.0.0.1:6379 \
 *       --upstream http://127.0.0.1:8000/ [--workers 2] [--pg CONNINFO]
 *
 * Same defaults as wsgate's config keys: ws_path /ws, redis_key_prefix
 * cfg:, redis_timeout 2 s, upstream_timeout 30 s, upstream_max_connections
 * 256 per worker, max_inflight_per_connection 64, missing_config null,
 * config_cache_ttl 0 (no cache; concurrent lookups of one user coalesce).
 * Differences from wsgate, all outside what the benchmark exercises, are
 * listed in tests/bench/README.md.
 */

const cluster = require('node:cluster');
const crypto = require('node:crypto');
const http = require('node:http');
const { parseArgs } = require('node:util');

const OPTIONS = {
	listen: { type: 'string', default: '127.0.0.1:8080' },
	workers: { type: 'string', default: '2' },
	'ws-path': { type: 'string', default: '/ws' },
	redis: { type: 'string', default: '127.0.0.1:6379' },
	'redis-key-prefix': { type: 'string', default: 'cfg:' },
	'redis-timeout-ms': { type: 'string', default: '2000' },
	upstream: { type: 'string' },
	'upstream-timeout-ms': { type: 'string', default: '30000' },
	'upstream-max-connections': { type: 'string', default: '256' },
	'max-inflight': { type: 'string', default: '64' },
	'max-message-size': { type: 'string', default: String(1 << 20) },
	'missing-config': { type: 'string', default: 'null' },
	pg: { type: 'string' },
	'pg-table': { type: 'string', default: 'responses' },
	help: { type: 'boolean', short: 'h' },
};

function usage(out) {
	out.write('usage: node server.js --upstream URL [--listen ADDR:PORT] ' +
	    '[--workers N] [--redis HOST:PORT]\n' +
	    '       [--ws-path /ws] [--redis-key-prefix cfg:] ' +
	    '[--redis-timeout-ms 2000]\n' +
	    '       [--upstream-timeout-ms 30000] ' +
	    '[--upstream-max-connections 256]\n' +
	    '       [--max-inflight 64] [--max-message-size BYTES] ' +
	    '[--missing-config null|reject]\n' +
	    '       [--pg CONNINFO [--pg-table responses]]\n');
}

let args;
try {
	args = parseArgs({ options: OPTIONS, strict: true }).values;
} catch (e) {
	process.stderr.write(`server.js: ${e.message}\n`);
	usage(process.stderr);
	process.exit(2);
}
if (args.help) {
	usage(process.stdout);
	process.exit(0);
}
if (!args.upstream) {
	process.stderr.write('server.js: --upstream URL is required\n');
	process.exit(2);
}

function hostPort(s, what) {
	const i = s.lastIndexOf(':');
	const port = Number(s.slice(i + 1));
	if (i < 1 || !Number.isInteger(port) || port < 1 || port > 65535) {
		process.stderr.write(`server.js: ${what}: bad HOST:PORT '${s}'\n`);
		process.exit(2);
	}
	return [s.slice(0, i).replace(/^\[(.*)\]$/, '$1'), port];
}

function intArg(name, min) {
	const v = Number(args[name]);
	if (!Number.isInteger(v) || v < min) {
		process.stderr.write(`server.js: --${name}: bad number\n`);
		process.exit(2);
	}
	return v;
}

const cfg = {
	listen: hostPort(args.listen, '--listen'),
	workers: intArg('workers', 1),
	wsPath: args['ws-path'],
	redis: hostPort(args.redis, '--redis'),
	prefix: args['redis-key-prefix'],
	redisTimeout: intArg('redis-timeout-ms', 1),
	upstream: new URL(args.upstream),
	upstreamTimeout: intArg('upstream-timeout-ms', 1),
	upstreamConns: intArg('upstream-max-connections', 1),
	maxInflight: intArg('max-inflight', 1),
	maxMessage: intArg('max-message-size', 1),
	reject: args['missing-config'] === 'reject',
	pg: args.pg,
	pgTable: args['pg-table'],
};

if (cluster.isPrimary) {
	primary();
} else {
	worker();
}

/* ---- Primary: forks the workers, replaces one that dies ---- */

function primary() {
	let stopping = false;
	for (let i = 0; i < cfg.workers; i++)
		cluster.fork();
	cluster.on('exit', (w, code, signal) => {
		if (stopping)
			return;
		process.stderr.write(`primary: worker ${w.process.pid} exited ` +
		    `(${signal || code}), replacing it\n`);
		setTimeout(() => cluster.fork(), 100);
	});
	let listening = 0;
	cluster.on('listening', () => {
		if (++listening === cfg.workers)
			process.stdout.write(`listening ${cfg.listen[0]}:` +
			    `${cfg.listen[1]} workers ${cfg.workers}\n`);
	});
	const stop = () => {
		stopping = true;
		for (const id in cluster.workers)
			cluster.workers[id].kill('SIGTERM');
		setTimeout(() => process.exit(0), 2000).unref();
		cluster.on('exit', () => {
			if (Object.keys(cluster.workers).length === 0)
				process.exit(0);
		});
	};
	process.on('SIGTERM', stop);
	process.on('SIGINT', stop);
}

/* ---- Worker ---- */

function worker() {
	const { WebSocketServer } = require('ws');
	const Redis = require('ioredis');
	const { Pool } = require('undici');
	const { ednToJson } = require('./edn');

	const keyPrefix = crypto.randomBytes(12).toString('hex');
	let seq = 0;

	/* Redis: one connection per worker, commands auto-pipelined. */
	const redis = new Redis({
		host: cfg.redis[0],
		port: cfg.redis[1],
		enableOfflineQueue: false,	/* fail fast while down: 503 */
		enableAutoPipelining: true,
		maxRetriesPerRequest: 0,
		retryStrategy: (n) => Math.min(100 * 2 ** n, 5000),
		lazyConnect: false,
	});
	redis.on('error', () => {});	/* reconnects by itself */

	/* Upstream: keep-alive pool. */
	const upstream = new Pool(cfg.upstream.origin, {
		connections: cfg.upstreamConns,
		pipelining: 1,
		keepAliveTimeout: 60e3,
		headersTimeout: cfg.upstreamTimeout,
		bodyTimeout: cfg.upstreamTimeout,
	});
	const upstreamPath = cfg.upstream.pathname + cfg.upstream.search;

	const records = cfg.pg ? pgRecorder() : null;

	/* Concurrent lookups of one key share one GET. */
	const inflight = new Map();

	function lookup(user, cb) {
		const key = cfg.prefix + user;
		const waiting = inflight.get(key);
		if (waiting !== undefined) {
			waiting.push(cb);
			return;
		}
		if (redis.status !== 'ready') {
			cb(503, 'config store unavailable');
			return;
		}
		const waiters = [cb];
		inflight.set(key, waiters);
		let done = false;
		const finish = (status, text) => {
			if (done)
				return;
			done = true;
			clearTimeout(timer);
			inflight.delete(key);
			for (const w of waiters)
				w(status, text);
		};
		const timer = setTimeout(() => finish(504,
		    'config store timeout'), cfg.redisTimeout);
		redis.get(key, (err, val) => {
			if (err) {
				finish(503, 'config store unavailable');
				return;
			}
			if (val === null) {
				if (cfg.reject)
					finish(404, 'no config');
				else
					finish(0, 'null');
				return;
			}
			let json;
			try {
				JSON.parse(val);
				json = val;
			} catch {
				try {
					json = ednToJson(val);
				} catch {
					finish(502, 'invalid config');
					return;
				}
			}
			finish(0, json);
		});
	}

	function errorReply(idText, status, error) {
		return (idText === undefined ? '{' : `{"id":${idText},`) +
		    `"status":${status},"error":${JSON.stringify(error)}}`;
	}

	function send(ws, text) {
		if (ws.readyState === 1)
			ws.send(text);
	}

	function record(rq, status, body, error) {
		if (records !== null)
			records.push(rq, status, body, error);
	}

	function onMessage(ws, data, isBinary) {
		if (isBinary) {
			send(ws, errorReply(undefined, 400,
			    'bad request: binary message'));
			return;
		}
		let msg;
		try {
			msg = JSON.parse(data.toString('utf8'));
		} catch {
			send(ws, errorReply(undefined, 400,
			    'bad request: invalid JSON'));
			return;
		}
		if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) {
			send(ws, errorReply(undefined, 400,
			    'bad request: not a JSON object'));
			return;
		}
		let idText;
		if (msg.id !== undefined) {
			if (typeof msg.id !== 'string' && typeof msg.id !== 'number') {
				send(ws, errorReply(undefined, 400,
				    'bad request: id must be a string or number'));
				return;
			}
			idText = JSON.stringify(msg.id);
		}
		let user = msg['user-id'];
		if (user === undefined)
			user = msg.user_id;
		if (typeof user === 'number' && Number.isInteger(user))
			user = String(user);
		if (typeof user !== 'string' || user === '' ||
		    Buffer.byteLength(user) > 128) {
			send(ws, errorReply(idText, 400,
			    'bad request: missing or invalid user-id'));
			return;
		}
		if (ws.inflight >= cfg.maxInflight) {
			send(ws, errorReply(idText, 429, 'too many requests'));
			return;
		}
		const payload = msg.payload === undefined ? 'null' :
		    JSON.stringify(msg.payload);
		const rq = {
			key: `${keyPrefix}-${(++seq).toString(16)}`,
			user, idText, t0: process.hrtime.bigint(),
		};
		ws.inflight++;
		const done = (text) => {
			ws.inflight--;
			send(ws, text);
		};
		lookup(user, (st, config) => {
			if (st !== 0) {
				done(errorReply(idText, st, config));
				return;
			}
			upstream.request({
				path: upstreamPath,
				method: 'POST',
				headers: {
					'content-type': 'application/json',
					'x-request-id': rq.key,
				},
				body: `{"payload":${payload},"config":${config}}`,
			}).then(async (res) => {
				const body = await res.body.text();
				record(rq, res.statusCode, body, null);
				done((idText === undefined ? '{' :
				    `{"id":${idText},`) +
				    `"status":${res.statusCode},` +
				    `"body":${JSON.stringify(body)}}`);
			}).catch((err) => {
				const timeout = err.code === 'UND_ERR_HEADERS_TIMEOUT' ||
				    err.code === 'UND_ERR_BODY_TIMEOUT';
				const text = timeout ? 'upstream timeout' :
				    `upstream error: ${err.code || err.message}`;
				record(rq, null, null, text);
				done(errorReply(idText, timeout ? 504 : 502, text));
			});
		});
	}

	const server = http.createServer((req, res) => {
		if (req.url === '/healthz') {
			res.end('ok\n');
			return;
		}
		res.statusCode = 404;
		res.end('not found\n');
	});
	const wss = new WebSocketServer({
		server,
		path: cfg.wsPath,
		perMessageDeflate: false,
		maxPayload: cfg.maxMessage,
		clientTracking: false,
	});
	wss.on('connection', (ws) => {
		ws.inflight = 0;
		ws.on('message', (data, isBinary) => onMessage(ws, data, isBinary));
		ws.on('error', () => {});
	});
	server.listen(cfg.listen[1], cfg.listen[0]);

	process.on('SIGTERM', () => {
		server.close();
		redis.disconnect();
		upstream.close().finally(() => {
			if (records !== null)
				records.end().finally(() => process.exit(0));
			else
				process.exit(0);
		});
		setTimeout(() => process.exit(0), 1500).unref();
	});
}

/*
 * --pg: one row per request that reached the upstream stage
 * (PROTOCOL.md section 5), multi-row INSERT ... ON CONFLICT DO NOTHING
 * every 20 ms or 500 rows.  Replies never wait for it.  Unlike wsgate's
 * dbwriter it keeps no spool: rows are dropped (and counted) when
 * PostgreSQL fails.
 */
function pgRecorder() {
	const { Pool } = require('pg');
	const pool = new Pool({ connectionString: cfg.pg, max: 2 });
	const table = cfg.pgTable.replace(/[^A-Za-z0-9_]/g, '');
	let rows = [], timer = null, dropped = 0;
	const ready = pool.query(`CREATE TABLE IF NOT EXISTS ${table} (
	    id bigserial PRIMARY KEY, request_key text NOT NULL UNIQUE,
	    user_id text NOT NULL, client_id text, status integer,
	    response text, error text, latency_ms double precision,
	    created_at timestamptz NOT NULL DEFAULT now())`).catch((e) => {
		process.stderr.write(`pg: ${e.message}\n`);
	});

	function flush() {
		timer = null;
		const batch = rows;
		rows = [];
		if (batch.length === 0)
			return;
		const vals = [], params = [];
		for (const r of batch) {
			const b = params.length;
			vals.push(`($${b + 1},$${b + 2},$${b + 3},$${b + 4},` +
			    `$${b + 5},$${b + 6},$${b + 7})`);
			params.push(...r);
		}
		ready.then(() => pool.query(`INSERT INTO ${table} (request_key, ` +
		    'user_id, client_id, status, response, error, latency_ms) ' +
		    `VALUES ${vals.join(',')} ON CONFLICT (request_key) ` +
		    'DO NOTHING', params)).catch((e) => {
			dropped += batch.length;
			process.stderr.write(`pg: ${e.message} (${dropped} rows ` +
			    'dropped)\n');
		});
	}

	return {
		push(rq, status, body, error) {
			const ms = Number(process.hrtime.bigint() - rq.t0) / 1e6;
			rows.push([rq.key, rq.user, rq.idText ?? null, status, body,
			    error, ms]);
			if (rows.length >= 500)
				flush();
			else if (timer === null)
				timer = setTimeout(flush, 20);
		},
		end() {
			flush();
			return pool.end();
		},
	};
}
