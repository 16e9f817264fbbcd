'use strict';
/*
 * EDN text -> JSON text, for the Node peer of wsgate (PROTOCOL.md
 * section 2).  A small recursive-descent reader of our own, covering what
 * tests/bench/pipeline.sh stores and the common config vocabulary:
 *
 *   maps -> objects, vectors / lists / sets -> arrays, keywords -> strings
 *   without the colon (:a/b -> "a/b"), symbols -> strings, strings with
 *   escapes (\" \\ \n \t \r \b \f \uXXXX), integers (N suffix allowed),
 *   floats (M suffix allowed), true / false / nil, #_ discard,
 *   ; comments, commas as whitespace, nesting depth limit 128.
 *
 * Not supported (throws, which the server answers with 502 invalid
 * config): characters (\a), ratios, tagged literals (#inst, #uuid, ...),
 * metadata, ##Inf/##NaN.  Map keys that are not strings/keywords/symbols
 * become their JSON text as a string (1 -> "1").  Duplicate keys are not
 * checked.  Output is built as one string, the way wsgate appends JSON
 * while it reads.
 */

const MAX_DEPTH = 128;

class EdnError extends Error {}

function isWs(c) {
	return c === 0x20 || c === 0x2c || (c >= 0x09 && c <= 0x0d);
}

/* Characters that end a symbol, keyword or number. */
function isTerm(c) {
	return isWs(c) || c === 0x22 || c === 0x3b || c === 0x28 ||
	    c === 0x29 || c === 0x5b || c === 0x5d || c === 0x7b ||
	    c === 0x7d || c === 0x5e || c === 0x5c;
}

const NUM_RE = /^[-+]?(0|[1-9][0-9]*)N?$/;
const FLOAT_RE = /^[-+]?(0|[1-9][0-9]*)(\.[0-9]*)?([eE][-+]?[0-9]+)?M?$/;
const NAME_RE = /^[^\s,"';@^`~()[\]{}\\0-9:#][^\s,"';@^`~()[\]{}\\]*$|^[-+.]([^\s,"';@^`~()[\]{}\\0-9][^\s,"';@^`~()[\]{}\\]*)?$/;

class Reader {
	constructor(text) {
		this.s = text;
		this.i = 0;
		this.depth = 0;
	}

	fail(why) {
		throw new EdnError(`${why} at offset ${this.i}`);
	}

	/* Skips whitespace, commas, comments and #_ discarded forms. */
	skip() {
		const s = this.s;
		for (;;) {
			while (this.i < s.length && isWs(s.charCodeAt(this.i)))
				this.i++;
			if (this.i >= s.length)
				return;
			const c = s.charCodeAt(this.i);
			if (c === 0x3b) {		/* ; comment */
				const nl = s.indexOf('\n', this.i);
				this.i = nl === -1 ? s.length : nl + 1;
			} else if (c === 0x23 && s.charCodeAt(this.i + 1) === 0x5f) {
				this.i += 2;		/* #_ discard */
				this.form();
			} else
				return;
		}
	}

	token() {
		const s = this.s, start = this.i;
		while (this.i < s.length && !isTerm(s.charCodeAt(this.i)))
			this.i++;
		return s.slice(start, this.i);
	}

	/* Reads one form; returns its JSON text and whether it is a string. */
	form() {
		this.skip();
		const s = this.s;
		if (this.i >= s.length)
			this.fail('unexpected end of input');
		const c = s.charCodeAt(this.i);
		switch (c) {
		case 0x7b:			/* { */
			this.i++;
			return [this.coll(0x7d, true), false];
		case 0x5b:			/* [ */
			this.i++;
			return [this.coll(0x5d, false), false];
		case 0x28:			/* ( */
			this.i++;
			return [this.coll(0x29, false), false];
		case 0x23:			/* # */
			if (s.charCodeAt(this.i + 1) === 0x7b) {
				this.i += 2;
				return [this.coll(0x7d, false), false];
			}
			this.fail('unsupported dispatch form');
			break;
		case 0x22:			/* " */
			return [this.string(), true];
		case 0x3a: {			/* : keyword */
			this.i++;
			const t = this.token();
			if (t === '' || t.startsWith(':') || t.endsWith('/') ||
			    !NAME_RE.test(t.replace(/\//, 'x')))
				this.fail('bad keyword');
			return [JSON.stringify(t), true];
		}
		case 0x29: case 0x5d: case 0x7d:
			this.fail('unmatched closing bracket');
			break;
		case 0x5c:
			this.fail('characters are not supported');
			break;
		default: {
			const t = this.token();
			if (t === '')
				this.fail('unexpected character');
			if (t === 'nil')
				return ['null', false];
			if (t === 'true' || t === 'false')
				return [t, false];
			if (NUM_RE.test(t)) {
				const n = t.endsWith('N') ? t.slice(0, -1) : t;
				return [n.startsWith('+') ? n.slice(1) : n, false];
			}
			if (FLOAT_RE.test(t)) {
				const v = Number(t.endsWith('M') ? t.slice(0, -1) : t);
				if (!Number.isFinite(v))
					this.fail('number out of range');
				return [JSON.stringify(v), false];
			}
			if (!NAME_RE.test(t.replace(/\//, 'x')) || t.endsWith('/'))
				this.fail(`bad symbol ${JSON.stringify(t)}`);
			return [JSON.stringify(t), true];
		}
		}
		return null;
	}

	coll(close, isMap) {
		if (++this.depth > MAX_DEPTH)
			this.fail('nested too deeply');
		const s = this.s, parts = [];
		for (;;) {
			this.skip();
			if (this.i >= s.length)
				this.fail('unterminated collection');
			if (s.charCodeAt(this.i) === close) {
				this.i++;
				break;
			}
			const [v, isStr] = this.form();
			if (isMap) {
				this.skip();
				if (this.i >= s.length || s.charCodeAt(this.i) === close)
					this.fail('map with an odd number of forms');
				const [val] = this.form();
				parts.push((isStr ? v : JSON.stringify(v)) + ':' + val);
			} else
				parts.push(v);
		}
		this.depth--;
		return (isMap ? '{' : '[') + parts.join(',') + (isMap ? '}' : ']');
	}

	string() {
		const s = this.s;
		let out = '', start = ++this.i;
		for (;;) {
			if (this.i >= s.length)
				this.fail('unterminated string');
			const c = s.charCodeAt(this.i);
			if (c === 0x22)
				break;
			if (c !== 0x5c) {
				this.i++;
				continue;
			}
			out += s.slice(start, this.i);
			const e = s[this.i + 1];
			switch (e) {
			case '"': out += '"'; break;
			case '\\': out += '\\'; break;
			case 'n': out += '\n'; break;
			case 't': out += '\t'; break;
			case 'r': out += '\r'; break;
			case 'b': out += '\b'; break;
			case 'f': out += '\f'; break;
			case 'u': {
				const h = s.slice(this.i + 2, this.i + 6);
				if (!/^[0-9a-fA-F]{4}$/.test(h))
					this.fail('bad \\u escape');
				out += String.fromCharCode(parseInt(h, 16));
				this.i += 4;
				break;
			}
			default:
				this.fail('bad string escape');
			}
			this.i += 2;
			start = this.i;
		}
		out += s.slice(start, this.i);
		this.i++;
		return JSON.stringify(out);
	}
}

/* The single EDN value in `text` as JSON text; throws EdnError. */
function ednToJson(text) {
	const r = new Reader(text);
	const [json] = r.form();
	r.skip();
	if (r.i !== text.length)
		r.fail('more than one form');
	return json;
}

module.exports = { ednToJson, EdnError };
