"""A raw WebSocket client for tests (RFC 6455, client side), standard
library only.  Unlike a client library it can send anything: bad
handshakes, unmasked frames, reserved opcodes, split writes, so the tests
see exactly what wsgate answers.
"""

import base64
import hashlib
import os
import socket
import ssl
import struct
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA


class Closed(Exception):
    """The TCP connection ended (EOF or reset)."""


def accept_key(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def raw_connect(port, host="127.0.0.1", tls=False, timeout=5.0):
    s = socket.create_connection((host, port), timeout=timeout)
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = ctx.wrap_socket(s, server_hostname=host)
    return s


def read_head(s, limit=65536):
    """Read an HTTP response head: (status, {lower-name: value}, rest)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(4096)
        if not d:
            raise Closed("EOF in response head: %r" % buf)
        buf += d
        if len(buf) > limit:
            raise ValueError("response head too large")
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, v = line.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    return status, headers, rest


def upgrade_request(path="/ws", key=None, host="127.0.0.1", version="13",
                    extra=None, method="GET", http="HTTP/1.1",
                    upgrade="websocket", connection="Upgrade"):
    key = key if key is not None else base64.b64encode(os.urandom(16)).decode()
    lines = ["%s %s %s" % (method, path, http), "Host: %s" % host]
    if upgrade is not None:
        lines.append("Upgrade: %s" % upgrade)
    if connection is not None:
        lines.append("Connection: %s" % connection)
    if key:
        lines.append("Sec-WebSocket-Key: %s" % key)
    if version is not None:
        lines.append("Sec-WebSocket-Version: %s" % version)
    for h in extra or []:
        lines.append(h)
    return ("\r\n".join(lines) + "\r\n\r\n").encode(), key


def frame(opcode, payload=b"", fin=True, mask=True, rsv=0, length=None,
          mask_key=None):
    """Encode a client frame; `length` overrides the encoded length."""
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    out = bytearray([b0])
    mbit = 0x80 if mask else 0
    if n < 126:
        out.append(mbit | n)
    elif n < 65536:
        out.append(mbit | 126)
        out += struct.pack("!H", n)
    else:
        out.append(mbit | 127)
        out += struct.pack("!Q", n)
    if mask:
        key = mask_key or os.urandom(4)
        out += key
        out += bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    else:
        out += payload
    return bytes(out)


class WS:
    """An open WebSocket (after a 101)."""

    def __init__(self, sock, rest=b""):
        self.s = sock
        self.buf = bytearray(rest)

    @classmethod
    def connect(cls, port, path="/ws", tls=False, timeout=5.0, extra=None):
        s = raw_connect(port, tls=tls, timeout=timeout)
        req, key = upgrade_request(path, extra=extra)
        s.sendall(req)
        status, headers, rest = read_head(s)
        if status != 101:
            s.close()
            raise ValueError("upgrade answered %d" % status)
        if headers.get("sec-websocket-accept") != accept_key(key):
            s.close()
            raise ValueError("bad Sec-WebSocket-Accept")
        return cls(s, rest)

    def send(self, data):
        self.s.sendall(data)

    def send_frame(self, opcode, payload=b"", **kw):
        self.s.sendall(frame(opcode, payload, **kw))

    def send_text(self, text):
        self.send_frame(OP_TEXT, text.encode() if isinstance(text, str) else text)

    def _need(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("timed out waiting for a frame")
            self.s.settimeout(left)
            try:
                d = self.s.recv(65536)
            except (ConnectionResetError, BrokenPipeError) as e:
                raise Closed(str(e))
            if not d:
                raise Closed("EOF")
            self.buf += d

    def recv_frame(self, timeout=5.0):
        """(fin, opcode, payload) of the next server frame."""
        deadline = time.monotonic() + timeout
        self._need(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        if b1 & 0x80:
            raise ValueError("server frame is masked")
        if b0 & 0x70:
            raise ValueError("server frame has RSV bits")
        n, off = b1 & 0x7F, 2
        if n == 126:
            self._need(4, deadline)
            n, off = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10, deadline)
            n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
        self._need(off + n, deadline)
        payload = bytes(self.buf[off:off + n])
        del self.buf[:off + n]
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def recv_message(self, timeout=5.0):
        """(opcode, payload) of the next data message; control frames
        other than Close are skipped (pings answered)."""
        deadline = time.monotonic() + timeout
        parts, op = [], None
        while True:
            fin, opcode, payload = self.recv_frame(max(0.01, deadline - time.monotonic()))
            if opcode == OP_PING:
                self.send_frame(OP_PONG, payload)
                continue
            if opcode == OP_PONG:
                continue
            if opcode == OP_CLOSE:
                return OP_CLOSE, payload
            if op is None:
                op = opcode
            parts.append(payload)
            if fin:
                return op, b"".join(parts)

    def recv_close(self, timeout=5.0):
        """Wait for a Close frame: (code or None, reason bytes)."""
        deadline = time.monotonic() + timeout
        while True:
            _, opcode, payload = self.recv_frame(max(0.01, deadline - time.monotonic()))
            if opcode == OP_CLOSE:
                if len(payload) >= 2:
                    return struct.unpack("!H", payload[:2])[0], payload[2:]
                return None, payload

    def wait_eof(self, timeout=5.0):
        """True once the server closed TCP (frames before it are dropped)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self._need(len(self.buf) + 1, deadline)
                self.buf.clear()
            except Closed:
                return True
            except socket.timeout:
                return False
        return False

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass
