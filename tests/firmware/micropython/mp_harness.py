# Runs inside the real MicroPython (WebAssembly port) for wasm_receiver_test.mjs, and under CPython too.
#
# The receiver's protocol logic (otter.handle) is fed from MemConn, an in-memory connection: the pusher's bytes come
# from a file (the transcript otter-record-session produced with the C++ pusher), the receiver's answers go to a
# file. Node passes a JSON request in a file and reads a JSON result back (no quoting through runPython).
import gc
import json
import sys

try:
    import errno

    ETIMEDOUT = errno.ETIMEDOUT
except (ImportError, AttributeError):
    ETIMEDOUT = 110

import otter
from otter import proto


class MemConn:
    """A MicroPython-socket-like connection: readinto() / write() / settimeout(), no sendall.

    readinto delivers at most `maxread` bytes per call (TCP segmentation); when the input is exhausted it returns 0
    (the peer closed) or, with end="timeout", raises OSError(ETIMEDOUT) as an ESP32 socket does after settimeout().
    """

    def __init__(self, inp, outp, end="eof", maxread=0):
        self.f = open(inp, "rb") if inp else None
        self.o = open(outp, "wb")
        self.end = end
        self.maxread = maxread
        self.timeout = None
        self.reads = 0
        self.biggest = 0

    def settimeout(self, t):
        self.timeout = t

    def readinto(self, buf):
        self.reads += 1
        if len(buf) > self.biggest:
            self.biggest = len(buf)
        if self.maxread and len(buf) > self.maxread:
            buf = memoryview(buf)[: self.maxread]
        n = self.f.readinto(buf) if self.f is not None else 0
        if not n:
            if self.end == "timeout":  # "error" ends with the ERROR frame in the input, then EOF
                raise OSError(ETIMEDOUT)
            return 0
        return n

    def write(self, b):
        self.o.write(b)
        return len(b)

    def close(self):
        if self.f is not None:
            self.f.close()
        self.o.close()


class SocketLikeConn:
    """A CPython-socket-like connection: recv_into(buf, nbytes) and send() that takes at most `maxsend` bytes per
    call (the receiver must loop); no readinto / write / sendall."""

    def __init__(self, inp, outp, end="eof", maxread=0, maxsend=5):
        self._m = MemConn(inp, outp, end, maxread)
        self.maxsend = maxsend
        self.sends = 0

    @property
    def reads(self):
        return self._m.reads

    @property
    def biggest(self):
        return self._m.biggest

    def settimeout(self, t):
        self._m.settimeout(t)

    def recv_into(self, buf, nbytes=0):
        if nbytes:
            buf = memoryview(buf)[:nbytes]
        return self._m.readinto(buf)

    def send(self, b):
        self.sends += 1
        n = min(len(b), self.maxsend)
        self._m.o.write(b[:n])
        return n

    def close(self):
        self._m.close()


class FakePartition:
    """esp32.Partition's block protocol over a file: readblocks / writeblocks (simple form erases) / ioctl."""

    BS = 4096

    def __init__(self, path, blocks, label="ota_1"):
        self.path = path
        self.blocks = blocks
        self.label = label
        self.boot = False
        try:
            open(path, "rb").close()
        except OSError:
            with open(path, "wb") as f:
                blank = b"\xff" * self.BS
                for _ in range(blocks):
                    f.write(blank)

    def info(self):
        return (0, 17, 0x110000, self.blocks * self.BS, self.label, False)

    def ioctl(self, op, arg):
        if op == 4:
            return self.blocks
        if op == 5:
            return self.BS
        return 0

    def readblocks(self, blk, buf, off=0):
        with open(self.path, "rb") as f:
            f.seek(blk * self.BS + off)
            f.readinto(buf)

    def writeblocks(self, blk, buf, off=None):
        if (blk + 1) * self.BS > self.blocks * self.BS:
            raise OSError(5)
        with open(self.path, "r+b") as f:
            f.seek(blk * self.BS + (off or 0))
            f.write(buf)

    def set_boot(self):
        self.boot = True
        with open(self.path + ".boot", "w") as f:
            f.write("1")


def _unhex(s):
    from binascii import unhexlify

    return unhexlify(s)


def device(cfg):
    nonce = _unhex(cfg["nonce"])
    kw = {}
    for k in ("name", "max_size", "window", "idle_timeout", "reserve", "buffer_size", "protect", "fw_state"):
        if k in cfg:
            kw[k] = cfg[k]
    if cfg.get("partition"):
        p = cfg["partition"]
        kw["partition"] = FakePartition(p["path"], p["blocks"])
    else:
        kw["partition"] = False
    reboots = []
    if cfg.get("reboot"):
        kw["reboot"] = lambda: reboots.append(1)
    else:
        kw["reboot"] = False
    commits = []
    kw["on_commit"] = lambda name, kind, size, rb: commits.append([name, kind, size, rb])
    dev = otter.Device(cfg["key"], root=cfg["root"], rng=lambda n: nonce[:n], log=None, **kw)
    return dev, reboots, commits


def hello(cfg):
    """The HELLO payload (hex) the receiver sends with this configuration and nonce."""
    dev, _, _ = device(cfg)
    s = dev.session()
    return proto.hexstr(s.hello)


def _result(dev, conn, s, reboots, commits):
    return {
        "result": s.result,
        "message": s.message,
        "reboot": s.reboot,
        "resumed": s.resumed,
        "received": s.received,
        "reboots": len(reboots),
        "commits": commits,
        "reads": conn.reads,
        "biggest_read": conn.biggest,
        "caps": dev.caps,
    }


def run(cfg):
    """One session through otter.handle() (the blocking driver), to its end."""
    dev, reboots, commits = device(cfg)
    kind = SocketLikeConn if cfg.get("socketlike") else MemConn
    conn = kind(cfg.get("input"), cfg["output"], cfg.get("end", "eof"), cfg.get("maxread", 0))
    s = otter.handle(conn, dev)
    conn.close()
    dev.finished(s)
    return _result(dev, conn, s, reboots, commits)


# Stepped sessions (otter.Pump), for memory measurements: the WebAssembly port collects garbage only between
# top-level calls, so Node calls step() repeatedly and samples gc.mem_alloc() after a collection in between.
_active = None


def start(cfg):
    global _active
    dev, reboots, commits = device(cfg)
    conn = MemConn(cfg.get("input"), cfg["output"], cfg.get("end", "eof"), cfg.get("maxread", 0))
    _active = (dev, conn, otter.Pump(conn, dev), reboots, commits)
    return {}


def step(k):
    """Runs up to k reads; True once the session is over."""
    p = _active[2]
    for _ in range(k):
        if not p.step():
            return True
    return False


def finish(cfg):
    global _active
    dev, conn, p, reboots, commits = _active
    _active = None
    conn.close()
    dev.finished(p.session)
    return _result(dev, conn, p.session, reboots, commits)


def main(req_path, res_path):
    with open(req_path) as f:
        req = json.loads(f.read())
    op = req["op"]
    try:
        if op == "hello":
            res = {"hello": hello(req)}
        elif op == "run":
            res = run(req)
        elif op == "start":
            res = start(req)
        elif op == "finish":
            res = finish(req)
        else:
            raise ValueError(op)
    except Exception as e:
        sys.print_exception(e) if hasattr(sys, "print_exception") else None
        res = {"exception": "%s: %s" % (e.__class__.__name__, e)}
    with open(res_path, "w") as f:
        f.write(json.dumps(res))
