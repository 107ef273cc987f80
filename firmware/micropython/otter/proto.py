# otter protocol v1, device side (docs/protocol.md). MicroPython >= 1.20 and CPython >= 3.8.
#
# Sans-IO: a Session never touches a socket. Its driver asks want() for the memoryview the next input bytes go
# into, reads AT MOST that many bytes into it (a socket's readinto() on MicroPython reads exactly len(view)
# bytes, so want() never asks for more than the pusher has committed to send), then calls got(n). Frames to send
# collect in Session.out (a list of bytes); the driver sends and clears it after every step. Content is streamed
# chunk by chunk from the device's one preallocated buffer into storage: a file is never held in RAM.
import struct

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


try:
    from hashlib import sha256
except ImportError:  # very old MicroPython
    from uhashlib import sha256

try:
    from binascii import hexlify
except ImportError:
    from ubinascii import hexlify

VERSION = const(1)

# Frame types (section 2).
HELLO = const(0x01)
READY = const(0x02)
ACK = const(0x03)
DONE = const(0x04)
STAT_RESULT = const(0x05)
PUSH = const(0x10)
STAT = const(0x11)
DATA = const(0x12)
ERROR = const(0x7F)
_KNOWN = (HELLO, READY, ACK, DONE, STAT_RESULT, PUSH, STAT, DATA, ERROR)

# Capability bits (section 3.1), request flags and kinds (3.2).
CAP_FILE = const(1)
CAP_FIRMWARE = const(2)
CAP_RESUME = const(4)
CAP_STAT = const(8)
CAP_REBOOT = const(16)
FLAG_REBOOT = const(1)
KIND_FILE = const(0)
KIND_FIRMWARE = const(1)

# Error codes (section 6); CONNECTION_CLOSED is local (never on the wire), as in docs/errors.md.
BAD_NAME = const(1)
TOO_LARGE = const(2)
NO_SPACE = const(3)
AUTH_FAILED = const(4)
HASH_MISMATCH = const(5)
STORAGE = const(6)
BUSY = const(7)
PROTOCOL = const(8)
TIMEOUT = const(9)
UNSUPPORTED_VERSION = const(10)
UNSUPPORTED_KIND = const(11)
INTERNAL = const(12)
CONNECTION_CLOSED = const(101)

ERROR_NAMES = {
    0: "OK",
    1: "BAD_NAME",
    2: "TOO_LARGE",
    3: "NO_SPACE",
    4: "AUTH_FAILED",
    5: "HASH_MISMATCH",
    6: "STORAGE",
    7: "BUSY",
    8: "PROTOCOL",
    9: "TIMEOUT",
    10: "UNSUPPORTED_VERSION",
    11: "UNSUPPORTED_KIND",
    12: "INTERNAL",
    101: "CONNECTION_CLOSED",
}

MAX_CONTROL = const(1024)
MAX_NAME = const(255)
MIN_WINDOW = const(1024)
_PUSH_FIXED = const(109)
_STAT_FIXED = const(67)
_NO_LIMIT = 0xFFFFFFFFFFFFFFFF

_L_REQUEST = b"otter/1 request"
_L_READY = b"otter/1 ready"
_L_DONE = b"otter/1 done"
_L_STAT = b"otter/1 stat"
_ZERO32 = bytes(32)

# Session states.
_AWAIT = const(0)  # HELLO sent, waiting for PUSH / STAT
_RECV = const(1)  # READY sent, streaming DATA
_CLOSED = const(2)  # final frame queued (or the peer went away): send `out`, then close


class StoreError(Exception):
    """A storage failure with its wire code (BAD_NAME, NO_SPACE, STORAGE, BUSY, UNSUPPORTED_KIND)."""

    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code
        self.msg = msg


class Hmac:
    """HMAC-SHA256 (RFC 2104) over hashlib.sha256: MicroPython has no hmac module (and no digest copy())."""

    def __init__(self, key):
        if len(key) > 64:
            key = sha256(key).digest()
        key = key + bytes(64 - len(key))
        self._ipad = bytes([b ^ 0x36 for b in key])
        self._opad = bytes([b ^ 0x5C for b in key])

    def mac(self, *parts):
        inner = sha256(self._ipad)
        for p in parts:
            inner.update(p)
        outer = sha256(self._opad)
        outer.update(inner.digest())
        return outer.digest()


def ct_equal(a, b):
    """Constant-time comparison of two byte strings of public, equal length (MACs and digests)."""
    if len(a) != len(b):
        return False
    r = 0
    for i in range(len(a)):
        r |= a[i] ^ b[i]
    return r == 0


def hexstr(b):
    return hexlify(b).decode()


def check_name(n):
    """None if the name (bytes) is valid under protocol.md section 5, else the reason (the core's messages)."""
    ln = len(n)
    if ln == 0:
        return "name is empty"
    if ln > MAX_NAME:
        return "name is longer than 255 bytes"
    if n[0] == 0x2F:
        return "name is an absolute path"
    start = 0
    for i in range(ln + 1):
        if i < ln:
            c = n[i]
            if c == 0:
                return "name contains a NUL byte"
            if c < 0x20 or c == 0x7F:
                return "name contains a control character"
            if c == 0x5C:
                return "name contains a backslash"
            if c != 0x2F:
                continue
        seg = i - start
        if seg == 0:
            return "name has an empty segment"
        if seg == 1 and n[start] == 0x2E:
            return "name has a '.' segment"
        if seg == 2 and n[start] == 0x2E and n[start + 1] == 0x2E:
            return "name has a '..' segment"
        if start == 0 and seg == 6 and n[0:6] == b".otter":
            return "name starts with the reserved segment '.otter'"
        start = i + 1
    return None


def frame(ftype, payload):
    ln = len(payload)
    return bytes((ftype, ln >> 8, ln & 0xFF)) + payload


def error_frame(code, msg):
    m = msg.encode() if isinstance(msg, str) else bytes(msg)
    m = m[:255]
    return frame(ERROR, struct.pack(">HB", code, len(m)) + m)


class Session:
    """One connection's protocol state. `dev` provides: buf/mv (the shared buffer), hdr/hmv (3 bytes), hmac, store,
    caps, fw_state, window, max_size, ident (bytes), protect (names refused) and log(). `nonce` is 32 fresh bytes."""

    def __init__(self, dev, nonce):
        self.dev = dev
        self.out = []
        self.state = _AWAIT
        self.result = None  # 0 after DONE / STAT_RESULT, else the code that ended the session
        self.message = ""
        self.reboot = False
        self.op = None  # "push" / "stat" once a request was accepted
        self.name = None
        self.kind = KIND_FILE
        self.size = 0
        self.received = 0
        self.resumed = 0
        self._have = 0  # bytes of the current header / control payload received
        self._type = 0
        self._len = -1  # control payload length; -1 while reading a header
        self._left = 0  # DATA payload bytes of the current frame still to come
        self._view = None
        self._open = False
        self._ack_every = dev.window // 4
        if len(nonce) != 32:
            raise ValueError("nonce must be 32 bytes")
        ident = dev.ident
        self.hello = (
            struct.pack(">4sBHBIQQ", b"OTTR", VERSION, dev.caps, dev.fw_state, dev.window, dev.max_size, dev.free())
            + bytes(nonce)
            + bytes((len(ident),))
            + ident
        )
        self.out.append(frame(HELLO, self.hello))

    # --- driver interface -------------------------------------------------------------------------------------

    @property
    def closed(self):
        return self.state == _CLOSED

    def want(self):
        """The memoryview the next input bytes go into (1..len(buffer) bytes; never past the current frame)."""
        if self._left:
            v = self.dev.store.chunk(self._left)
        elif self._len < 0:
            v = self.dev.hmv[self._have : 3]
        else:
            v = self.dev.mv[self._have : self._len]
        self._view = v
        return v

    def got(self, n):
        """n bytes (1..len(want())) arrived in the view returned by the last want()."""
        if self.state == _CLOSED or n <= 0:
            return
        if self._left:
            self._data(n)
            return
        self._have += n
        if self._len < 0:
            if self._have == 3:
                self._have = 0
                self._header()
        elif self._have >= self._len:
            self._have = 0
            self._control()

    def timeout(self):
        """The peer was silent for longer than the idle timeout."""
        self.fail(TIMEOUT, "peer silent for longer than the idle timeout")

    def peer_closed(self):
        """EOF or a transport error: keep an open transfer for resume; nothing more is sent."""
        if self._open:
            self._close_transfer(False)
        if self.state != _CLOSED:
            self.result = CONNECTION_CLOSED
            self.message = "peer closed the connection"
            self.state = _CLOSED
        self.out = []

    def fail(self, code, msg, discard=False):
        if self.state == _CLOSED:
            return
        self.result = code
        self.message = msg
        if self._open:
            self._close_transfer(discard)
        self.out.append(error_frame(code, msg))
        self._left = 0
        self.state = _CLOSED
        self.dev.log("otter: %s: %s" % (ERROR_NAMES.get(code, code), msg))

    # --- internals --------------------------------------------------------------------------------------------

    def _close_transfer(self, discard):
        self._open = False
        try:
            if discard:
                self.dev.store.discard()
            else:
                self.dev.store.suspend()
        except Exception as e:  # never let cleanup hide the session's result
            self.dev.log("otter: cleanup failed: %r" % (e,))

    def _header(self):
        h = self.dev.hdr
        t = h[0]
        ln = (h[1] << 8) | h[2]
        if t not in _KNOWN:
            self.fail(PROTOCOL, "unknown frame type")
            return
        if t == DATA:
            if self.state != _RECV:
                self.fail(PROTOCOL, "DATA before an accepted PUSH")
            elif ln == 0:
                self.fail(PROTOCOL, "empty DATA frame")
            elif ln > self.size - self.received:
                self.fail(PROTOCOL, "more DATA than the announced size")
            else:
                self._left = ln
            return
        allowed = t == ERROR
        if self.state == _AWAIT:
            allowed = allowed or t == PUSH or (t == STAT and self.dev.caps & CAP_STAT)
        if not allowed:
            self.fail(PROTOCOL, "frame not allowed in this state")
            return
        if ln > MAX_CONTROL:
            self.fail(PROTOCOL, "control frame too long")
            return
        if t == ERROR and self._open:
            # The pusher gives up: keep what arrived for resume before the buffer is reused for the payload.
            self._close_transfer(False)
        self._type = t
        self._len = ln
        if ln == 0:
            self._control()

    def _control(self):
        ln = self._len
        self._len = -1
        t = self._type
        if t == PUSH:
            self._push(ln)
        elif t == STAT:
            self._stat(ln)
        else:
            self._peer_error(ln)

    def _check_mac(self, ln):
        mv = self.dev.mv
        want = self.dev.hmac.mac(_L_REQUEST, self.hello, mv[: ln - 32])
        if not ct_equal(want, mv[ln - 32 : ln]):
            self.fail(AUTH_FAILED, "request authentication failed")
            return None
        return want

    def _name(self, at, ln):
        """Validates the request's name (after the MAC): the str path, or None after failing the session."""
        raw = bytes(self.dev.mv[at:ln])
        why = check_name(raw)
        if why is not None:
            self.fail(BAD_NAME, why)
            return None
        try:
            name = raw.decode()
        except Exception:  # UnicodeError on MicroPython, UnicodeDecodeError on CPython
            self.fail(BAD_NAME, "name is not valid UTF-8")
            return None
        if name in self.dev.protect:
            self.fail(BAD_NAME, "this name is protected on the device")
            return None
        return name

    def _push(self, ln):
        buf = self.dev.buf
        # Order matters: nothing about the name, kind or size is looked at before the MAC verifies.
        if ln >= 1 and buf[0] != VERSION:
            self.fail(UNSUPPORTED_VERSION, "request version not supported")
            return
        if ln < _PUSH_FIXED or ln != _PUSH_FIXED + ((buf[75] << 8) | buf[76]):
            self.fail(PROTOCOL, "PUSH length mismatch")
            return
        rmac = self._check_mac(ln)
        if rmac is None:
            return
        name = self._name(77, ln - 32)
        if name is None:
            return
        kind = buf[33]
        caps = self.dev.caps
        if not ((kind == KIND_FILE and caps & CAP_FILE) or (kind == KIND_FIRMWARE and caps & CAP_FIRMWARE)):
            self.fail(UNSUPPORTED_KIND, "this device does not accept that kind")
            return
        flags = buf[34]
        size = struct.unpack_from(">Q", buf, 35)[0]
        sha = bytes(buf[43:75])
        if self.dev.max_size != _NO_LIMIT and size > self.dev.max_size:
            self.fail(TOO_LARGE, "artifact is larger than the device accepts")
            return
        self.op = "push"
        self.name = name
        self.kind = kind
        self.size = size
        self._sha = sha
        self._flags = flags
        self._rmac = rmac
        # The buffer is free from here on: begin() may re-hash a held partial copy through it.
        self._hasher = sha256()
        store = self.dev.store
        try:
            held = store.begin(name, kind, size, sha, self._hasher)
        except StoreError as e:
            self.fail(e.code, e.msg)
            return
        self._open = True
        if held > size:
            self.fail(INTERNAL, "storage holds more than the announced size", True)
            return
        if size - held > store.free(kind):
            self.fail(NO_SPACE, "not enough free space on the device")
            return
        off = struct.pack(">Q", held)
        self.out.append(frame(READY, off + self.dev.hmac.mac(_L_READY, rmac, off)))
        self.state = _RECV
        self.received = held
        self.resumed = held
        self._last_ack = held
        self.dev.log("otter: receiving %s (%d B%s)" % (name, size, ", resuming at %d" % held if held else ""))
        if held == size:
            self._finish()

    def _stat(self, ln):
        buf = self.dev.buf
        if ln >= 1 and buf[0] != VERSION:
            self.fail(UNSUPPORTED_VERSION, "request version not supported")
            return
        if ln < _STAT_FIXED or ln != _STAT_FIXED + ((buf[33] << 8) | buf[34]):
            self.fail(PROTOCOL, "STAT length mismatch")
            return
        rmac = self._check_mac(ln)
        if rmac is None:
            return
        name = self._name(35, ln - 32)
        if name is None:
            return
        self.op = "stat"
        self.name = name
        try:
            exists, size, digest = self.dev.store.stat(name, sha256())
        except StoreError as e:
            self.fail(e.code, e.msg)
            return
        if not exists:
            size, digest = 0, _ZERO32
        head = struct.pack(">BQ", 1 if exists else 0, size)
        self.out.append(frame(STAT_RESULT, head + digest + self.dev.hmac.mac(_L_STAT, rmac, head, digest)))
        self.size = size
        self.result = 0
        self.state = _CLOSED

    def _peer_error(self, ln):
        code = PROTOCOL
        if ln >= 3 and ln == 3 + self.dev.buf[2]:
            c = (self.dev.buf[0] << 8) | self.dev.buf[1]
            if 1 <= c <= 99:
                code = c
        if self._open:
            self._close_transfer(False)
        self.result = code
        self.message = "the pusher sent ERROR"
        self.state = _CLOSED

    def _data(self, n):
        v = self._view
        if n < len(v):
            v = v[:n]
        self._hasher.update(v)
        try:
            self.dev.store.write(n)
        except StoreError as e:
            # The partial copy may now hold a torn write: do not keep it.
            self.fail(e.code, e.msg, True)
            return
        self.received += n
        self._left -= n
        r = self.received
        if r != self._last_ack and (r - self._last_ack >= self._ack_every or r == self.size):
            self.out.append(frame(ACK, struct.pack(">Q", r)))
            self._last_ack = r
        if r == self.size:
            self._finish()

    def _finish(self):
        digest = self._hasher.digest()
        if not ct_equal(digest, self._sha):
            self.fail(HASH_MISMATCH, "content does not match its SHA-256", True)
            return
        reboot = bool(self._flags & FLAG_REBOOT) and bool(self.dev.caps & CAP_REBOOT)
        tail = struct.pack(">Q", self.size) + digest + (b"\x01" if reboot else b"\x00")
        mac = self.dev.hmac.mac(_L_DONE, self._rmac, tail)
        # commit() ends the transfer whether it succeeds or not.
        self._open = False
        try:
            self.dev.store.commit(reboot)
        except StoreError as e:
            self.fail(e.code, e.msg)
            return
        self.out.append(frame(DONE, tail + mac))
        self.reboot = reboot
        self.result = 0
        self.state = _CLOSED
        self.dev.log("otter: committed %s (%d B)%s" % (self.name, self.size, ", rebooting" if reboot else ""))
