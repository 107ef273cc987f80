#!/usr/bin/env python3
"""The MicroPython receiver (firmware/micropython/otter) under CPython, on real loopback sockets, against the
project's own `otter` CLI (OTTER_BIN_DIR/otter).

    python3 test_cpython_receiver.py [-v] [Class.test_name ...]
Environment: OTTER_BIN_DIR (otter, otter-server), OTTER_MPY_DIR (firmware/micropython). 127.0.0.1, ephemeral ports.
Every wait is bounded; nothing sleeps to synchronise.
"""
import asyncio
import hashlib
import json
import os
import queue
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import tracemalloc
import unittest
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
FW = os.environ.get("OTTER_MPY_DIR") or os.path.normpath(os.path.join(HERE, "../../../firmware/micropython"))
BIN = os.environ.get("OTTER_BIN_DIR") or os.path.normpath(os.path.join(HERE, "../../../build/bin"))
OTTER = os.path.join(BIN, "otter")
sys.path.insert(0, FW)

import otter  # noqa: E402  (the receiver under test)

KEY = "cpython-receiver-key-0123456789"
WAIT = 60  # seconds: upper bound of any single wait


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(65536), b""):
            h.update(block)
    return h.hexdigest()


def make_file(path, size, seed=b"x"):
    with open(path, "wb") as f:
        i = 0
        left = size
        while left > 0:
            block = hashlib.sha256(seed + str(i).encode()).digest() * 1024
            f.write(block[:left])
            left -= min(left, len(block))
            i += 1
    return path


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError("closed after %d of %d bytes" % (len(data), n))
        data += chunk
    return data


def read_frame(sock):
    hdr = recv_exact(sock, 3)
    return hdr[0], recv_exact(sock, (hdr[1] << 8) | hdr[2])


class CutProxy:
    """Forwards one connection to the receiver; after `limit` client->device bytes it closes both sides."""

    def __init__(self, target_port, limit):
        self.limit = limit
        self.forwarded = 0
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.port = self.srv.getsockname()[1]
        self.target_port = target_port
        self.done = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        try:
            self.srv.settimeout(WAIT)
            client, _ = self.srv.accept()
            device = socket.create_connection(("127.0.0.1", self.target_port), timeout=WAIT)
            threading.Thread(target=self._back, args=(device, client), daemon=True).start()
            client.settimeout(WAIT)
            while self.forwarded < self.limit:
                data = client.recv(min(65536, self.limit - self.forwarded))
                if not data:
                    break
                device.sendall(data)
                self.forwarded += len(data)
            for s in (client, device):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
        except OSError:
            pass
        finally:
            self.srv.close()
            self.done.set()

    @staticmethod
    def _back(device, client):
        try:
            while True:
                data = device.recv(65536)
                if not data:
                    break
                client.sendall(data)
        except OSError:
            pass


class Receiver:
    """otter.serve() in a daemon thread of this process (blocking receiver on 127.0.0.1:<ephemeral>)."""

    def __init__(self, root, **kw):
        ports = queue.Queue()
        self.device = otter.Device(KEY, root=root, name=kw.pop("name", "cpy-1"), log=None, **kw)
        self.thread = threading.Thread(
            target=otter.serve,
            kwargs=dict(host="127.0.0.1", port=0, device=self.device, on_listen=ports.put),
            daemon=True,
        )
        self.thread.start()
        self.port = ports.get(timeout=WAIT)


class Base(unittest.TestCase):
    receiver_kw = {}

    def setUp(self):
        if not os.path.exists(OTTER):
            self.fail("otter CLI not found at %s (set OTTER_BIN_DIR)" % OTTER)
        self.tmp = tempfile.mkdtemp(prefix="otter-cpy-")
        self.root = os.path.join(self.tmp, "device")
        os.mkdir(self.root)
        self.key_file = os.path.join(self.tmp, "device.key")
        with open(self.key_file, "w") as f:
            f.write(KEY + "\n")
        self.rx = Receiver(self.root, **self.receiver_kw)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def otter_cmd(self, *args, port=None, key_file=None):
        cmd = [OTTER] + list(args) + ["--to", "127.0.0.1:%d" % (port or self.rx.port)]
        cmd += ["--key-file", key_file or self.key_file, "--json", "--timeout", "10"]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=WAIT)
        try:
            out = json.loads(p.stdout)
        except ValueError:
            self.fail("otter printed no JSON: rc=%d stdout=%r stderr=%r" % (p.returncode, p.stdout, p.stderr))
        return p.returncode, out

    def push(self, path, *extra, port=None, key_file=None):
        return self.otter_cmd("push", path, *extra, port=port, key_file=key_file)

    def assert_pushed(self, src, name, rc, out, resumed=0):
        self.assertEqual(rc, 0, out)
        self.assertTrue(out["ok"], out)
        size = os.path.getsize(src)
        self.assertEqual(out["size"], size)
        self.assertEqual(out["sha256"], sha256_file(src))
        self.assertEqual(out["resumed_from"], resumed)
        self.assertEqual(out["bytes_sent"], size - out["resumed_from"])
        landed = os.path.join(self.root, name)
        self.assertTrue(os.path.isfile(landed), "%s not on the device" % name)
        self.assertEqual(sha256_file(landed), sha256_file(src), "content differs on the device")

    def assert_refused(self, rc, out, code, name):
        self.assertEqual(rc, 1, out)
        self.assertFalse(out["ok"], out)
        self.assertEqual(out["error"]["code"], code, out)
        self.assertEqual(out["error"]["name"], name, out)


class PushTest(Base):
    def _push_size(self, size):
        src = make_file(os.path.join(self.tmp, "f%d.bin" % size), size, b"size%d" % size)
        rc, out = self.push(src, "--as", "data/f%d.bin" % size)
        self.assert_pushed(src, "data/f%d.bin" % size, rc, out)
        self.assertEqual(out["device"], "cpy-1")
        self.assertEqual(os.listdir(os.path.join(self.root, ".otter", "part")), [], "partial copy left behind")

    def test_push_0B(self):
        self._push_size(0)

    def test_push_1B(self):
        self._push_size(1)

    def test_push_100KiB(self):
        self._push_size(100 * 1024)

    def test_push_2MiB(self):
        self._push_size(2 * 1024 * 1024)

    def test_replace_and_stat(self):
        a = make_file(os.path.join(self.tmp, "a"), 5000, b"a")
        b = make_file(os.path.join(self.tmp, "b"), 7000, b"b")
        self.assert_pushed(a, "cfg.bin", *self.push(a, "--as", "cfg.bin"))
        self.assert_pushed(b, "cfg.bin", *self.push(b, "--as", "cfg.bin"))
        rc, out = self.otter_cmd("stat", "cfg.bin")
        self.assertEqual(rc, 0, out)
        self.assertEqual((out["exists"], out["size"], out["sha256"]), (True, 7000, sha256_file(b)))
        rc, out = self.otter_cmd("stat", "nope.bin")
        self.assertEqual(rc, 0, out)
        self.assertFalse(out["exists"])

    def test_wrong_key_refused(self):
        src = make_file(os.path.join(self.tmp, "k"), 1000)
        other = os.path.join(self.tmp, "other.key")
        with open(other, "w") as f:
            f.write("some-other-key-0123456789\n")
        rc, out = self.push(src, key_file=other)
        self.assert_refused(rc, out, 4, "AUTH_FAILED")
        self.assertFalse(os.path.exists(os.path.join(self.root, "k")))

    def test_bad_names_refused(self):
        src = make_file(os.path.join(self.tmp, "n"), 10)
        for name in ("../x", "/etc/x", "a\\b", "a//b", ".otter/x", "x" * 256, "a\x01b"):
            rc, out = self.push(src, "--as", name)
            self.assert_refused(rc, out, 1, "BAD_NAME")
        self.assertEqual(sorted(os.listdir(self.root)), [".otter"] if os.path.exists(os.path.join(self.root, ".otter")) else [])

    def test_hash_mismatch_refused(self):
        src = make_file(os.path.join(self.tmp, "h"), 50000)
        rc, out = self.push(src, "--sha256", "00" * 32)
        self.assert_refused(rc, out, 5, "HASH_MISMATCH")
        self.assertFalse(os.path.exists(os.path.join(self.root, "h")))
        self.assertEqual(os.listdir(os.path.join(self.root, ".otter", "part")), [])

    def test_firmware_unsupported(self):
        src = make_file(os.path.join(self.tmp, "fw.bin"), 100)
        rc, out = self.push(src, "--kind", "firmware")
        self.assert_refused(rc, out, 11, "UNSUPPORTED_KIND")

    def test_resume_after_cuts(self):
        size = 2 * 1024 * 1024
        src = make_file(os.path.join(self.tmp, "big.bin"), size, b"resume")
        held = 0
        for limit in (300000, 700000):
            proxy = CutProxy(self.rx.port, limit)
            rc, out = self.push(src, port=proxy.port)
            self.assertTrue(proxy.done.wait(WAIT))
            self.assertEqual(rc, 1, out)
            self.assertFalse(out["ok"])
            self.assertFalse(os.path.exists(os.path.join(self.root, "big.bin")), "no partial target")
            held_now = self._held("big.bin")
            self.assertGreater(held_now, held, "the partial copy grew")
            self.assertLessEqual(held_now, held + limit)
            held = held_now
        rc, out = self.push(src)
        self.assert_pushed(src, "big.bin", rc, out, resumed=held)
        self.assertGreater(out["resumed_from"], 0)
        self.assertEqual(out["bytes_sent"], size - out["resumed_from"])

    def _held(self, name):
        # Wait (bounded) for the receiver to finish the cut session: it serves one connection at a time, so a STAT
        # is answered only after the partial copy is suspended.
        self.assertEqual(self.otter_cmd("stat", name)[0], 0)
        part = os.path.join(self.root, ".otter", "part", hashlib.sha256(name.encode()).hexdigest() + ".part")
        return os.path.getsize(part)


class LimitsTest(Base):
    receiver_kw = {"max_size": 4096, "idle_timeout": 1}

    def test_too_large_refused(self):
        ok = make_file(os.path.join(self.tmp, "ok"), 4096)
        self.assert_pushed(ok, "ok", *self.push(ok))
        big = make_file(os.path.join(self.tmp, "big"), 4097)
        rc, out = self.push(big)
        self.assert_refused(rc, out, 2, "TOO_LARGE")

    def test_silent_client_times_out(self):
        with socket.create_connection(("127.0.0.1", self.rx.port), timeout=WAIT) as s:
            t, hello = read_frame(s)
            self.assertEqual(t, 0x01)
            self.assertEqual(hello[:5], b"OTTR\x01")
            t, err = read_frame(s)  # the receiver's idle timeout is 1 s; this read waits at most WAIT
            self.assertEqual(t, 0x7F)
            self.assertEqual(struct.unpack(">H", err[:2])[0], 9)
            self.assertEqual(s.recv(1), b"", "closed after ERROR TIMEOUT")

    def test_garbage_refused(self):
        with socket.create_connection(("127.0.0.1", self.rx.port), timeout=WAIT) as s:
            read_frame(s)
            s.sendall(b"GET / HTTP/1.1\r\nHost: device\r\n\r\n")
            t, err = read_frame(s)
            self.assertEqual((t, struct.unpack(">H", err[:2])[0]), (0x7F, 8))
            self.assertEqual(err[3:], b"unknown frame type")

    def test_cut_mid_header_then_push(self):
        # A peer that closes mid-frame does not wedge the receiver.
        with socket.create_connection(("127.0.0.1", self.rx.port), timeout=WAIT) as s:
            read_frame(s)
            s.sendall(b"\x10\x00")
        ok = make_file(os.path.join(self.tmp, "after"), 100)
        self.assert_pushed(ok, "after", *self.push(ok))


class MemoryTest(Base):
    def test_memory_bounded_tracemalloc(self):
        """The receiver's allocations while receiving 2 MiB stay bounded: tracemalloc's peak during otter.handle()
        above the level at accept(), measured in the receiver's thread while this thread only waits."""
        small = make_file(os.path.join(self.tmp, "small"), 100 * 1024, b"s")
        big = make_file(os.path.join(self.tmp, "big"), 2 * 1024 * 1024, b"b")
        dev = otter.Device(KEY, root=self.root, name="mem-1", log=None)
        srv = socket.create_server(("127.0.0.1", 0))
        port = srv.getsockname()[1]
        launched = threading.Event()
        results = queue.Queue()

        def receiver():
            for _ in range(2):
                conn, _ = srv.accept()
                launched.wait(WAIT)  # the CLI's Popen() in the other thread is over: only the receiver allocates
                launched.clear()
                base = tracemalloc.get_traced_memory()[0]
                tracemalloc.reset_peak()
                s = otter.handle(conn, dev)
                peak = tracemalloc.get_traced_memory()[1] - base
                conn.close()
                results.put((s.result, peak))

        tracemalloc.start()
        try:
            threading.Thread(target=receiver, daemon=True).start()
            peaks = []
            for src in (small, big):
                result = os.path.join(self.tmp, "result.json")
                with open(result, "w") as res:
                    p = subprocess.Popen([OTTER, "push", src, "--to", "127.0.0.1:%d" % port, "--key-file",
                                          self.key_file, "--json"], stdout=res, stderr=subprocess.DEVNULL)
                    launched.set()
                    rc = p.wait(WAIT)
                code, peak = results.get(timeout=WAIT)
                self.assertEqual(code, 0)
                peaks.append(peak)
                with open(result) as f:
                    self.assert_pushed(src, os.path.basename(src), rc, json.load(f))
        finally:
            tracemalloc.stop()
            srv.close()
        print("\nreceiver's tracemalloc peak while receiving (CPython): 100 KiB -> %d B, 2 MiB -> %d B" % tuple(peaks))
        self.assertLess(peaks[1], 32 * 1024, "receiving 2 MiB must not need memory in proportion to it")
        self.assertLess(peaks[1], peaks[0] + 4096, "memory must not grow with the file size")


class AsyncioTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="otter-cpy-async-")
        self.key_file = os.path.join(self.tmp, "device.key")
        with open(self.key_file, "w") as f:
            f.write(KEY)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    async def _cli(self, port, *args):
        p = await asyncio.create_subprocess_exec(
            OTTER, *args, "--to", "127.0.0.1:%d" % port, "--key-file", self.key_file, "--json", "--timeout", "10",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, _ = await asyncio.wait_for(p.communicate(), WAIT)
        return p.returncode, json.loads(out)

    def test_start_beside_app(self):
        """otter.start() returns an asyncio task; the application's own task keeps running during a push."""
        root = os.path.join(self.tmp, "root")
        os.mkdir(root)
        src = make_file(os.path.join(self.tmp, "app.bin"), 1024 * 1024, b"async")

        async def main():
            ports = asyncio.Queue()
            task = otter.start(key=KEY, port=0, root=root, host="127.0.0.1", name="async-1", log=None,
                               on_listen=ports.put_nowait)
            self.assertIsInstance(task, asyncio.Task)
            port = await asyncio.wait_for(ports.get(), WAIT)
            ticks = 0
            stop = asyncio.Event()

            async def app():
                nonlocal ticks
                while not stop.is_set():
                    ticks += 1
                    await asyncio.sleep(0)

            app_task = asyncio.create_task(app())
            rc, out = await self._cli(port, "push", src, "--as", "lib/app.bin")
            rc2, out2 = await self._cli(port, "stat", "lib/app.bin")
            stop.set()
            await app_task
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            return rc, out, rc2, out2, ticks

        rc, out, rc2, out2, ticks = asyncio.run(main())
        self.assertEqual(rc, 0, out)
        self.assertEqual(out["sha256"], sha256_file(src))
        self.assertEqual(sha256_file(os.path.join(root, "lib/app.bin")), sha256_file(src))
        self.assertEqual((rc2, out2["exists"], out2["size"]), (0, True, 1024 * 1024))
        self.assertGreater(ticks, 10, "the application ran while the receiver worked")

    def test_busy_while_serving(self):
        """One session at a time: a second connection gets ERROR BUSY after busy_wait."""
        root = os.path.join(self.tmp, "root")
        os.mkdir(root)
        src = make_file(os.path.join(self.tmp, "x"), 10)

        async def main():
            ports = asyncio.Queue()
            task = otter.start(key=KEY, port=0, root=root, host="127.0.0.1", log=None, busy_wait=0.2,
                               idle_timeout=30, on_listen=ports.put_nowait)
            port = await asyncio.wait_for(ports.get(), WAIT)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            hdr = await asyncio.wait_for(reader.readexactly(3), WAIT)  # HELLO: the silent session holds the device
            await reader.readexactly((hdr[1] << 8) | hdr[2])
            rc, out = await self._cli(port, "push", src)
            writer.close()
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            return rc, out

        rc, out = asyncio.run(main())
        self.assertEqual(rc, 1, out)
        self.assertEqual(out["error"]["code"], 7, out)


class ConfigTest(unittest.TestCase):
    def test_main_from_config_file(self):
        """otter.main() in its own process, configured by ROOT/otter.json (key, port, name)."""
        tmp = tempfile.mkdtemp(prefix="otter-cpy-cfg-")
        try:
            root = os.path.join(tmp, "root")
            os.mkdir(root)
            with open(os.path.join(root, "otter.json"), "w") as f:
                json.dump({"key": KEY, "port": 0, "host": "127.0.0.1", "name": "cfg-dev"}, f)
            key_file = os.path.join(tmp, "k")
            with open(key_file, "w") as f:
                f.write(KEY)
            code = "import sys; sys.path.insert(0, %r); import otter; otter.main(root=%r)" % (FW, root)
            proc = subprocess.Popen([sys.executable, "-u", "-c", code], stdout=subprocess.PIPE, text=True)
            try:
                line = proc.stdout.readline()  # "otter: cfg-dev listening on 127.0.0.1:PORT"
                self.assertIn("cfg-dev listening on 127.0.0.1:", line)
                port = int(line.rsplit(":", 1)[1])
                src = make_file(os.path.join(tmp, "c.bin"), 3000)
                p = subprocess.run([OTTER, "push", src, "--to", "127.0.0.1:%d" % port, "--key-file", key_file,
                                    "--json"], capture_output=True, text=True, timeout=WAIT)
                out = json.loads(p.stdout)
                self.assertEqual(p.returncode, 0, out)
                self.assertEqual(out["device"], "cfg-dev")
                self.assertEqual(sha256_file(os.path.join(root, "c.bin")), sha256_file(src))
            finally:
                proc.kill()
                proc.wait(WAIT)
                proc.stdout.close()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class ServerTest(Base):
    def test_otter_server_job(self):
        """otter-server: POST /api/v1/devices, an artifact, POST /api/v1/jobs, then GET the job until it ends."""
        server = os.path.join(BIN, "otter-server")
        if not os.path.exists(server):
            self.skipTest("otter-server not built")
        data = os.path.join(self.tmp, "server-data")
        os.mkdir(data)
        proc = subprocess.Popen([server, "--listen", "127.0.0.1:0", "--data", data], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        try:
            base = None
            lines = []
            for _ in range(200):
                line = proc.stdout.readline()
                if not line:
                    break
                lines.append(line)
                if "otter-server: listening on http://" in line:
                    base = line.split("listening on ", 1)[1].split()[0].rstrip("/")
                    break
            self.assertIsNotNone(base, "otter-server did not start: %s" % "".join(lines[-20:]))
            threading.Thread(target=proc.stdout.read, daemon=True).start()

            def call(method, path, body=None, ctype="application/json"):
                req = urllib.request.Request(base + path, method=method, data=body,
                                             headers={"Content-Type": ctype} if body is not None else {})
                try:
                    with urllib.request.urlopen(req, timeout=WAIT) as r:
                        return r.status, json.loads(r.read() or b"null")
                except urllib.error.HTTPError as e:
                    return e.code, json.loads(e.read() or b"null")

            st, dev = call("POST", "/api/v1/devices", json.dumps(
                {"name": "mpy-1", "address": "127.0.0.1:%d" % self.rx.port, "key": KEY}).encode())
            self.assertIn(st, (200, 201), dev)
            src = make_file(os.path.join(self.tmp, "job.bin"), 300000, b"job")
            with open(src, "rb") as f:
                st, art = call("POST", "/api/v1/artifacts?name=job.bin", f.read(), "application/octet-stream")
            self.assertIn(st, (200, 201), art)
            st, job = call("POST", "/api/v1/jobs", json.dumps(
                {"artifact": "job.bin", "devices": ["mpy-1"], "as": "from-server.bin"}).encode())
            self.assertIn(st, (200, 201), job)
            for _ in range(600):
                st, job = call("GET", "/api/v1/jobs/%d" % job["id"])
                if job["state"] in ("succeeded", "failed", "canceled"):
                    break
                threading.Event().wait(0.05)  # polling interval of a bounded status poll
            self.assertEqual(job["state"], "succeeded", job)
            self.assertEqual(sha256_file(os.path.join(self.root, "from-server.bin")), sha256_file(src))
        finally:
            proc.kill()
            proc.wait(WAIT)
            proc.stdout.close()


class PackageTest(unittest.TestCase):
    def test_package_json_lists_the_package(self):
        """package.json (for mip) installs every module of the package, from files that exist."""
        with open(os.path.join(FW, "package.json")) as f:
            pj = json.load(f)
        listed = sorted(dst for dst, _ in pj["urls"])
        modules = sorted("otter/" + n for n in os.listdir(os.path.join(FW, "otter")) if n.endswith(".py"))
        self.assertEqual(listed, modules)
        for _, src in pj["urls"]:
            self.assertTrue(os.path.isfile(os.path.join(FW, src)), src)
        self.assertEqual(pj["version"], otter.__version__)

    def test_hmac_matches_stdlib(self):
        """The RFC 2104 construction over hashlib.sha256 equals CPython's hmac, for short and long (>64 B) keys."""
        import hmac

        from otter.proto import Hmac, ct_equal

        for key in (b"k" * 16, b"otter-example-key-0123", bytes(range(64)), bytes(range(200))):
            parts = (b"otter/1 request", b"x" * 100, b"")
            self.assertEqual(Hmac(key).mac(*parts), hmac.new(key, b"".join(parts), hashlib.sha256).digest())
        self.assertTrue(ct_equal(b"abc", b"abc"))
        self.assertFalse(ct_equal(b"abc", b"abd"))
        self.assertFalse(ct_equal(b"abc", b"ab"))


if __name__ == "__main__":
    unittest.main()
