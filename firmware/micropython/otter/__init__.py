# otter — the device side of otter protocol v1 for MicroPython (ESP32, >= 1.20); also runs on CPython >= 3.8.
#
#   import otter
#   otter.serve(key="a-long-device-secret-0123", port=12345, root="/")     # blocking receiver
#   task = otter.start(key=..., port=12345, root="/")                      # asyncio task beside your app
#   otter.main()                                                           # settings from ROOT/otter.json
#
# Everything protocol-related lives in otter.proto (sans-IO) and otter.store (files, firmware partition); this module
# holds the configuration (Device) and the drivers: handle() for one blocking connection object (a socket or any
# object with recv_into/readinto and send/sendall/write), serve() for the blocking loop, start() for asyncio.
import os
import sys

from .proto import (
    BUSY,
    CAP_FILE,
    CAP_FIRMWARE,
    CAP_REBOOT,
    CAP_RESUME,
    CAP_STAT,
    ERROR_NAMES,
    INTERNAL,
    MIN_WINDOW,
    Hmac,
    Session,
    error_frame,
)
from .store import Store, read_json

__version__ = "1.0.0"

DEFAULT_PORT = 12345
CONFIG_FILE = "otter.json"

try:
    from errno import EAGAIN, ETIMEDOUT
except ImportError:
    EAGAIN, ETIMEDOUT = 11, 110
_TIMEOUT_ERRNOS = (EAGAIN, ETIMEDOUT, 11, 35, 110, 116)  # EAGAIN/EWOULDBLOCK/ETIMEDOUT on Linux, BSD, lwIP


def _print_exc(e):
    pe = getattr(sys, "print_exception", None)
    if pe is not None:
        pe(e)
    else:
        import traceback

        traceback.print_exception(type(e), e, e.__traceback__)


def _default_rng():
    u = getattr(os, "urandom", None)
    if u is None:
        try:
            import uos

            u = getattr(uos, "urandom", None)
        except ImportError:
            u = None
    return u


def _default_name():
    try:
        import machine
        from binascii import hexlify

        return "mpy-" + hexlify(machine.unique_id()).decode()
    except Exception:
        return "otter-mpy"


def _default_reboot():
    try:
        import machine

        return machine.reset
    except Exception:  # no machine module (CPython), or one without reset (some ports)
        return None


def _default_partition():
    try:
        import esp32

        return esp32.Partition(esp32.Partition.RUNNING).get_next_update()
    except Exception:
        return None


try:
    _TimeoutError = TimeoutError  # CPython (socket.timeout is an alias); MicroPython has none
except NameError:
    _TimeoutError = None


def _is_timeout(e):
    if _TimeoutError is not None and isinstance(e, _TimeoutError):
        return True
    code = e.args[0] if e.args else None
    return code in _TIMEOUT_ERRNOS or (isinstance(code, str) and "timed out" in code)


class Device:
    """The receiver's configuration and its preallocated state, shared by every connection (served one at a time).

    key          pre-shared key, str or bytes, >= 16 bytes (never sent)
    root         where files land ("/" on a board)
    name         device id in HELLO (1..64 printable ASCII; device_id= is an alias); default "mpy-<unique id>"
    max_size     largest artifact accepted, bytes (None: limited by free space only)
    window       DATA bytes the pusher may have in flight (>= 1024); an ACK goes every window/4 bytes
    idle_timeout seconds of peer silence before ERROR TIMEOUT (protocol default 30; 10..120 recommended)
    reserve      bytes of the file system never handed out (free space reported = free - reserve)
    buffer_size  the one reused I/O buffer, bytes (default 4096 = a flash block, required when firmware is accepted)
    partition    firmware target (esp32.Partition-like: readblocks/writeblocks/ioctl/set_boot/info); default:
                 the next OTA partition when the esp32 module has one, else firmware is refused (UNSUPPORTED_KIND)
    reboot       callable run after a committed push with the reboot flag (default machine.reset; None on hosts:
                 the REBOOT cap is then not advertised); False disables
    backup       keep the previous version of a file replaced by a rebooting push (main.py rolls back to it)
    protect      names refused with BAD_NAME (e.g. ("main.py",) so the bootstrap is never replaced)
    on_commit    callable(name, kind, size, rebooting) after each commit
    rng          callable(n) -> n random bytes (default os.urandom; tests inject a deterministic one)
    fw_state     HELLO fw_state (default: 0 without firmware support, else 2 while an image is unconfirmed, 1)
    log          callable(str) or None (default print)
    """

    def __init__(
        self,
        key,
        root=".",
        name=None,
        max_size=None,
        window=65536,
        idle_timeout=30,
        reserve=0,
        buffer_size=4096,
        partition=None,
        reboot=None,
        backup=True,
        protect=(),
        on_commit=None,
        rng=None,
        fw_state=None,
        log=print,
        device_id=None,
    ):
        name = name or device_id
        if isinstance(key, str):
            key = key.strip().encode()
        if key is None or len(key) < 16:
            raise ValueError("otter: the key must be at least 16 bytes")
        self.hmac = Hmac(bytes(key))
        self.ident = (name or _default_name()).encode() if not isinstance(name, bytes) else name
        if not 1 <= len(self.ident) <= 64 or any(c < 0x20 or c > 0x7E for c in self.ident):
            raise ValueError("otter: the device name must be 1..64 printable ASCII characters")
        self.max_size = 0xFFFFFFFFFFFFFFFF if not max_size else int(max_size)
        self.window = max(MIN_WINDOW, min(int(window), 0xFFFFFFFF))
        self.idle_timeout = idle_timeout
        self.rng = rng or _default_rng()
        if self.rng is None:
            raise ValueError("otter: no cryptographic random generator (os.urandom); pass rng=")
        if partition is None:
            partition = _default_partition()
        elif partition is False:
            partition = None
        if partition is not None:
            buffer_size = partition.ioctl(5, 0)
        if not 1024 <= buffer_size <= 65536:
            raise ValueError("otter: buffer_size must be 1024..65536")
        self.buf = bytearray(buffer_size)
        self.mv = memoryview(self.buf)
        self.hdr = bytearray(3)
        self.hmv = memoryview(self.hdr)
        self.store = Store(root, self.mv, reserve, partition, backup)
        if reboot is None or reboot is True:
            reboot = _default_reboot()
        self.reboot = reboot or None
        self.protect = tuple(protect or ())
        self.on_commit = on_commit
        self._log = log
        self.caps = CAP_FILE | CAP_RESUME | CAP_STAT
        if partition is not None:
            self.caps |= CAP_FIRMWARE
        if self.reboot is not None:
            self.caps |= CAP_REBOOT
        if fw_state is None:
            fw_state = 0
            if partition is not None:
                try:
                    os.stat(self.store.path(".otter/fw_pending"))
                    fw_state = 2
                except OSError:
                    fw_state = 1
        self.fw_state = fw_state

    @property
    def root(self):
        return self.store.root

    def log(self, msg):
        if self._log is not None:
            self._log(msg)

    def free(self):
        return self.store.free(0)

    def session(self):
        return Session(self, self.rng(32))

    def finished(self, s):
        """After the connection of session s is closed: callbacks, then the reboot it asked for."""
        if s.result == 0 and s.op == "push" and self.on_commit is not None:
            try:
                self.on_commit(s.name, s.kind, s.size, s.reboot)
            except Exception as e:
                _print_exc(e)
        if s.reboot and self.reboot is not None:
            self.log("otter: rebooting")
            self.reboot()


# --- blocking driver ----------------------------------------------------------------------------------------------


def _send(conn, data):
    f = getattr(conn, "sendall", None)
    if f is not None:
        f(data)
        return
    w = getattr(conn, "send", None) or conn.write
    mv = memoryview(data)
    off = 0
    while off < len(mv):
        n = w(mv[off:])
        if n is None:  # non-blocking stream could not write within the timeout
            raise OSError(EAGAIN)
        if n <= 0:
            raise OSError(EAGAIN)
        off += n


def _flush(conn, s):
    out = s.out
    if out:
        s.out = []
        for f in out:
            _send(conn, f)


class Pump:
    """One connection, driven one read at a time: step() blocks for at most one read (the connection's timeout)
    and returns False once the session is over. Useful to interleave the receiver with other work; handle()
    simply runs it to the end. `conn`: a socket, or any object with recv_into(buf) or readinto(buf) (reading at
    most len(buf) bytes; 0 = EOF; None or OSError(EAGAIN/ETIMEDOUT) = timeout) and sendall/send/write."""

    def __init__(self, conn, dev):
        st = getattr(conn, "settimeout", None)
        if st is not None:
            st(dev.idle_timeout)
        self.conn = conn
        self.dev = dev
        self._rd = getattr(conn, "recv_into", None) or conn.readinto
        self.session = dev.session()
        self._started = False

    def step(self):
        s = self.session
        try:
            if not self._started:
                self._started = True
                _flush(self.conn, s)
                return not s.closed
            if s.closed:
                return False
            v = s.want()
            try:
                n = self._rd(v)
            except OSError as e:
                if _is_timeout(e):
                    s.timeout()
                else:
                    s.peer_closed()
                n = -1
            if n is None:
                s.timeout()
            elif n == 0:
                s.peer_closed()
            elif n > 0:
                s.got(n)
            _flush(self.conn, s)
        except OSError:
            s.peer_closed()
        except Exception as e:  # a bug or MemoryError must not take the receiver down: report it, keep the partial
            _print_exc(e)
            s.fail(INTERNAL, "internal error: %s" % e.__class__.__name__)
            try:
                _flush(self.conn, s)
            except Exception:
                pass
            s.peer_closed()
        return not s.closed


def handle(conn, dev):
    """Runs one connection to its end (blocking); returns its Session (result 0 = committed / answered)."""
    p = Pump(conn, dev)
    while p.step():
        pass
    return p.session


def _linger(conn, dev):
    """Before a reboot: wait (bounded) for the pusher to close after DONE, so the DONE is not lost."""
    try:
        conn.settimeout(2)
        rd = getattr(conn, "recv_into", None) or conn.readinto
        for _ in range(64):
            if not rd(dev.hmv):
                break
    except Exception:
        pass


def _pause(seconds):
    import time

    time.sleep(seconds)


def _listen(host, port, backlog=2):
    import socket

    ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
    srv = socket.socket(ai[0], socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(ai[-1])
    srv.listen(backlog)
    try:
        port = srv.getsockname()[1]
    except Exception:
        pass
    return srv, port


def serve(key=None, port=DEFAULT_PORT, root=".", host="0.0.0.0", sessions=None, on_listen=None, **kw):
    """The blocking receiver: accepts connections one at a time and never returns (or after `sessions`
    connections). Other keyword arguments: see Device. on_listen(port) is called once listening (port=0 picks
    an ephemeral port)."""
    dev = kw.pop("device", None) or Device(key, root=root, **kw)
    srv, bound = _listen(host, port)
    dev.log("otter: %s listening on %s:%d" % (dev.ident.decode(), host, bound))
    if on_listen is not None:
        on_listen(bound)
    served = 0
    try:
        while sessions is None or served < sessions:
            try:
                conn, _ = srv.accept()
            except OSError as e:  # e.g. the network went away: do not spin
                dev.log("otter: accept failed: %r" % (e,))
                _pause(1)
                continue
            s = None
            try:
                s = handle(conn, dev)
                if s.reboot:
                    _linger(conn, dev)
            finally:
                try:
                    conn.close()
                except OSError:
                    pass
            served += 1
            dev.finished(s)
    finally:
        srv.close()


# --- asyncio driver -----------------------------------------------------------------------------------------------


async def _handle_async(reader, writer, dev):
    try:
        import asyncio
    except ImportError:
        import uasyncio as asyncio

    readinto = getattr(reader, "readinto", None)
    s = dev.session()

    async def flush():
        out = s.out
        if out:
            s.out = []
            for f in out:
                writer.write(f)
            await asyncio.wait_for(writer.drain(), dev.idle_timeout)

    try:
        await flush()
        while not s.closed:
            v = s.want()
            try:
                if readinto is not None:
                    n = await asyncio.wait_for(readinto(v), dev.idle_timeout)
                else:
                    data = await asyncio.wait_for(reader.read(len(v)), dev.idle_timeout)
                    n = len(data)
                    v[:n] = data
            except asyncio.TimeoutError:
                s.timeout()
                n = -1
            except OSError:
                s.peer_closed()
                n = -1
            if n is None:
                continue  # spurious wake-up of a non-blocking socket
            if n == 0:
                s.peer_closed()
            elif n > 0:
                s.got(n)
            await flush()
    except (OSError, asyncio.TimeoutError):
        s.peer_closed()
    except Exception as e:
        _print_exc(e)
        s.fail(INTERNAL, "internal error: %s" % e.__class__.__name__)
        try:
            await flush()
        except Exception:
            pass
        s.peer_closed()
    return s


async def _close(writer):
    try:
        writer.close()
        await writer.wait_closed()
    except Exception:
        pass


async def serve_async(key=None, port=DEFAULT_PORT, root=".", host="0.0.0.0", on_listen=None, busy_wait=5, **kw):
    """The receiver as a coroutine: serves forever beside other tasks. One session at a time (one buffer): a
    connection arriving while another is served waits up to busy_wait seconds, then gets ERROR BUSY."""
    try:
        import asyncio
    except ImportError:
        import uasyncio as asyncio

    dev = kw.pop("device", None) or Device(key, root=root, **kw)
    lock = asyncio.Lock()

    async def on_conn(reader, writer):
        try:
            await asyncio.wait_for(lock.acquire(), busy_wait)
        except asyncio.TimeoutError:
            try:
                writer.write(error_frame(BUSY, "the device serves no more connections"))
                await asyncio.wait_for(writer.drain(), dev.idle_timeout)
            except Exception:
                pass
            await _close(writer)
            return
        s = None
        try:
            s = await _handle_async(reader, writer, dev)
            await _close(writer)
        finally:
            lock.release()
        if s is not None:
            if s.reboot:
                await asyncio.sleep(0.5)  # let the stack send DONE before the reset
            dev.finished(s)

    server = await asyncio.start_server(on_conn, host, port)
    bound = port
    try:
        bound = server.sockets[0].getsockname()[1]
    except Exception:
        pass
    dev.log("otter: %s listening on %s:%d (asyncio)" % (dev.ident.decode(), host, bound))
    if on_listen is not None:
        on_listen(bound)
    try:
        if hasattr(server, "serve_forever"):
            await server.serve_forever()
        else:
            await server.wait_closed()
    finally:
        server.close()


def start(key=None, port=DEFAULT_PORT, root=".", **kw):
    """Starts the receiver as an asyncio task (same arguments as serve()) and returns the task. Call it from a
    running event loop (CPython) or before asyncio.run() of your app (MicroPython)."""
    try:
        import asyncio
    except ImportError:
        import uasyncio as asyncio

    return asyncio.create_task(serve_async(key=key, port=port, root=root, **kw))


# --- configuration ------------------------------------------------------------------------------------------------

_CONFIG_KEYS = (
    "key",
    "port",
    "host",
    "name",
    "max_size",
    "window",
    "idle_timeout",
    "reserve",
    "backup",
    "protect",
)


def load_config(root="/", path=None):
    """Reads ROOT/otter.json: {"key": ..., "port": 12345, "name": "dev-1", ...}; {} if absent or unreadable."""
    if path is None:
        path = CONFIG_FILE if root in (".", "") else root.rstrip("/") + "/" + CONFIG_FILE
    cfg = read_json(path)
    return cfg if isinstance(cfg, dict) else {}


def config_kwargs(cfg, root="/"):
    """The serve()/start() keyword arguments for a config dict."""
    kw = {"root": cfg.get("root", root)}
    for k in _CONFIG_KEYS:
        if k in cfg:
            kw[k] = cfg[k]
    if "key" not in kw:
        raise ValueError("otter: no \"key\" in %s" % CONFIG_FILE)
    return kw


def main(root="/", **overrides):
    """Blocking receiver configured by ROOT/otter.json."""
    kw = config_kwargs(load_config(root), root)
    kw.update(overrides)
    serve(**kw)


__all__ = ["Device", "Pump", "serve", "start", "serve_async", "handle", "load_config", "config_kwargs", "main", "ERROR_NAMES"]
