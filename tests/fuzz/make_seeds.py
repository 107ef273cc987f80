#!/usr/bin/env python3
"""Writes the seed corpora of tests/fuzz/corpus/<target>/ (small valid examples of every input shape).

Run from anywhere: python3 tests/fuzz/make_seeds.py. The layouts follow docs/protocol.md and the harnesses'
input scripts (the comment at the top of each *_fuzz.cpp)."""
import hashlib
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def hdr(t, n):
    return struct.pack(">BH", t, n)


NONCE = bytes(range(32))
SHA = hashlib.sha256(b"hello").digest()
MAC = bytes(32)


def hello(dev_id=b"esp32-1", caps=0x1F, fw=1, window=65536):
    return b"OTTR" + struct.pack(">BHBIQQ", 1, caps, fw, window, 0, 1 << 30) + NONCE + bytes([len(dev_id)]) + dev_id


def push(name=b"fw/app.bin", kind=0, flags=0, size=5):
    return bytes([1]) + NONCE + bytes([kind, flags]) + struct.pack(">Q", size) + SHA + struct.pack(">H", len(name)) + name + MAC


def stat(name=b"app.bin"):
    return bytes([1]) + NONCE + struct.pack(">H", len(name)) + name + MAC


def ready(off=0):
    return struct.pack(">Q", off) + MAC


def done(size=5, reboot=0):
    return struct.pack(">Q", size) + SHA + bytes([reboot]) + MAC


def stat_result(exists=1, size=5):
    return bytes([exists]) + struct.pack(">Q", size) + SHA + MAC


def error(code=201, msg=b"name has a '..' segment"):
    return struct.pack(">HB", code, len(msg)) + msg


# --- codec: selector byte + payload; >= 0xF0: a stream of frames
payloads = [hello(), push(), stat(), ready(1024), struct.pack(">Q", 4096), done(), stat_result(), error()]
for i, p in enumerate(payloads):
    write("codec", "type%d" % i, bytes([i]) + p)
write("codec", "push-firmware", bytes([1]) + push(b"firmware.bin", kind=1, flags=1, size=1 << 20))
write("codec", "hello-long-id", bytes([0]) + hello(b"x" * 64))
stream = hdr(1, len(hello())) + hello() + hdr(2, 40) + ready() + hdr(3, 8) + struct.pack(">Q", 5) + hdr(4, 73) + done()
write("codec", "stream", b"\xf0" + stream)
write("codec", "stream-push", b"\xf0" + hdr(0x10, len(push())) + push() + hdr(0x12, 5) + b"hello" + hdr(0x7F, len(error())) + error())

# --- receiver: setup byte, then ops (see receiver_fuzz.cpp)
def r_push(name=b"app.bin", content=b"hello otter", kind=0, flags=0, bad_hash=False):
    return bytes([2 if bad_hash else 1, kind, flags, len(name)]) + name + struct.pack(">H", len(content)) + content


def r_data(n):
    return bytes([4]) + struct.pack(">H", n - 1)


content = bytes(range(256)) * 8
write("receiver", "push-all", b"\x00" + r_push(b"app.bin", content) + r_data(2048))
write("receiver", "push-chunks", b"\x00" + r_push(b"lib/app.py", content) + r_data(1000) + r_data(1000) + r_data(48))
write("receiver", "push-cut-resume", b"\x00" + r_push(b"fw.bin", content) + r_data(700) + b"\x09\x00" + r_push(b"fw.bin", content) + r_data(2048))
write("receiver", "push-bad-hash", b"\x00" + r_push(b"a.bin", content, bad_hash=True) + r_data(2048))
write("receiver", "push-firmware", b"\x01" + r_push(b"firmware.bin", content, kind=1, flags=1) + r_data(2048))
write("receiver", "stat", b"\x00" + bytes([3, 7]) + b"app.bin")
write("receiver", "stat-missing", b"\x00" + bytes([3, 6]) + b"nofile")
write("receiver", "timeout", b"\x00" + r_push(b"t.bin", content) + r_data(100) + b"\x07\x10\x00")
write("receiver", "small-window-slow-reader", b"\x02" + r_push(b"w.bin", content) + r_data(1500) + b"\x08\x05" + r_data(548))
write("receiver", "raw-hello-garbage", b"\x00\x00\x00\x10" + b"\x10\x00\x08garbage!")
write("receiver", "peer-error", b"\x00" + r_push(b"e.bin", content) + b"\x06\x05" + error(302, b"x")[:5])
write("receiver", "write-fails", b"\x10" + r_push(b"wf.bin", content) + r_data(2048))
write("receiver", "commit-fails", b"\x20" + r_push(b"cf.bin", content) + r_data(2048))
write("receiver", "too-large", b"\x04" + r_push(b"big.bin", content * 3) + r_data(4096) + r_data(2048))
# DIGEST_LAST (setup bit 64 advertises it; flag 2 in the PUSH; op 0x87 = a signed DIGEST, 0xC3 = a wrong one)
write("receiver", "digest-last", b"\x40" + r_push(b"dl.bin", content, flags=2) + r_data(2048) + b"\x87")
write("receiver", "digest-last-wrong", b"\x40" + r_push(b"dl.bin", content, flags=2) + r_data(2048) + b"\xc3")
write("receiver", "digest-last-early", b"\x40" + r_push(b"dl.bin", content, flags=2) + r_data(1000) + b"\x87")
write("receiver", "digest-last-cut-resume",
      b"\x40" + r_push(b"dl.bin", content, flags=2) + r_data(700) + b"\x09\x00" + r_push(b"dl.bin", content, flags=2)
      + r_data(2048) + b"\x87")
write("receiver", "digest-last-unsupported", b"\x00" + r_push(b"dl.bin", content, flags=2) + r_data(2048) + b"\x87")
write("receiver", "dotdot-name", b"\x00" + r_push(b"../etc/passwd", content) + r_data(2048))

# --- pusher: setup byte, size u16, chunk u16, then ops (see pusher_fuzz.cpp)
def p_hello(window=0x0400, caps=0x1F, dev_id=b"esp32-1"):
    # caps u16, fw u8, window/64 u16, max-size selector (1 = 0), free u64, nonce, id
    return bytes([1]) + struct.pack(">HBHB", caps, 1, window, 1) + struct.pack(">Q", 1 << 30) + NONCE + bytes([len(dev_id)]) + dev_id


def p_ready(off, prefix=False):
    # selector (bit 0: u64 offset, bit 1: the 72-byte DIGEST_LAST form), u16 offset, prefix digest, MAC-tamper byte
    return bytes([2, 2 if prefix else 0]) + struct.pack(">H", off) + bytes(32) + b"\x00"


def p_ack_all():
    return bytes([3, 0, 0])


def p_done():
    return bytes([4, 0, 0])


push_setup = b"\x00" + struct.pack(">HH", 4999, 1023)  # size 5000, chunk 1024
write("pusher", "push-ok", push_setup + p_hello() + p_ready(0) + p_ack_all() + p_done())
write("pusher", "push-resume", push_setup + p_hello() + p_ready(3000) + p_ack_all() + p_done())
write("pusher", "push-small-window", push_setup + p_hello(window=16) + p_ready(0) + p_ack_all() + p_ack_all() + p_ack_all() + p_ack_all() + p_ack_all() + p_done())
write("pusher", "push-device-error", push_setup + p_hello() + bytes([6]) + struct.pack(">H", 204) + b"\x08no space")
write("pusher", "push-bad-done", push_setup + p_hello() + p_ready(0) + p_ack_all() + bytes([4, 2, 7, 0]))
write("pusher", "push-timeout", push_setup + p_hello() + p_ready(0) + bytes([7, 0x10, 0]))
write("pusher", "stat-ok", b"\x01" + struct.pack(">HH", 0, 0) + p_hello() + bytes([5, 1]) + struct.pack(">Q", 5) + SHA + b"\x00")
write("pusher", "raw-not-otter", push_setup + b"\x00\x00\x10" + b"HTTP/1.1 400 Bad Request\r\n\r\n")
# DIGEST_LAST: setup bit 16 (the driver hashes as it sends), bit 32 (its content matches the device's prefix)
dl_setup = b"\x30" + struct.pack(">HH", 4999, 1023)
write("pusher", "digest-last-ok", dl_setup + p_hello(caps=0x3F) + p_ready(0, prefix=True) + p_ack_all() + p_done())
write("pusher", "digest-last-resume", dl_setup + p_hello(caps=0x3F) + p_ready(3000, prefix=True) + p_ack_all() + p_done())
write("pusher", "digest-last-mismatch", b"\x10" + dl_setup[1:] + p_hello(caps=0x3F) + p_ready(3000, prefix=True))
write("pusher", "digest-last-old-device", dl_setup + p_hello() + p_ready(0) + p_ack_all() + p_done())
write("pusher", "cut", push_setup + p_hello() + p_ready(0) + b"\x08")

# --- name: selector byte (0 as given, 1 absolute under the root, 2 under its parent) + path
names = ["app.bin", "fw/esp32/a.bin", "inlink", "secret", "out/secret", "fw/up/outside/secret", "loop", "dangling",
         "fifo", "../outside/secret", "fw/../app.bin", "./app.bin", ".otter/x", ".hidden", "a//b", "a\\b", "/etc/passwd",
         "fw", "root-sibling", "fw/esp32/../../app.bin"]
for i, n in enumerate(names):
    write("name", "n%02d" % i, bytes([0]) + n.encode())
write("name", "abs-inside", bytes([1]) + b"app.bin")
write("name", "abs-parent", bytes([2]) + b"outside/secret")
write("name", "abs-parent-root", bytes([2]) + b"root/fw/esp32/a.bin")
write("name", "ctl", bytes([0]) + b"a\x01b")

# --- http_request: raw requests of every endpoint
def req(method, target, body=b"", ctype="application/json", extra=b""):
    h = b"%s %s HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n" % (method.encode(), target.encode())
    if body or method in ("POST", "PUT", "PATCH"):
        h += b"Content-Type: %s\r\nContent-Length: %d\r\n" % (ctype.encode(), len(body))
    return h + extra + b"\r\n" + body


reqs = {
    "root": req("GET", "/"),
    "app-js": req("GET", "/app.js"),
    "healthz": req("GET", "/healthz"),
    "metrics": req("GET", "/metrics"),
    "openapi": req("GET", "/api/v1/openapi.json"),
    "events": req("GET", "/api/v1/events"),
    "upload-original": req("POST", "/api/upload", b'{"filePath": "hello.txt", "device": "esp32-1"}'),
    "upload-original-missing": req("POST", "/api/upload", b'{"filePath": "nope.txt"}'),
    "upload-original-escape": req("POST", "/api/upload", b'{"filePath": "../outside/secret", "device": "esp32-2"}'),
    "devices-list": req("GET", "/api/v1/devices?tag=demo"),
    "devices-create": req("POST", "/api/v1/devices", b'{"name":"dev-9","address":"127.0.0.1:12346","key":"a-long-device-secret-0123","tags":["lab"]}'),
    "device-get": req("GET", "/api/v1/devices/esp32-1"),
    "device-patch": req("PATCH", "/api/v1/devices/esp32-1", b'{"tags":["a","b"],"address":"10.0.0.2:12345"}'),
    "device-put": req("PUT", "/api/v1/devices/esp32-2", b'{"address":"[::1]:12345","protocol":"legacy"}'),
    "device-delete": req("DELETE", "/api/v1/devices/esp32-2"),
    "device-probe": req("POST", "/api/v1/devices/esp32-1/probe"),
    "artifacts-list": req("GET", "/api/v1/artifacts"),
    "artifact-get": req("GET", "/api/v1/artifacts/fw/esp32/app.bin"),
    "artifact-get-escape": req("GET", "/api/v1/artifacts/%2e%2e/outside/secret"),
    "artifact-put": req("PUT", "/api/v1/artifacts/fw/new.bin", b"\x00\x01binary", "application/octet-stream"),
    "artifact-delete": req("DELETE", "/api/v1/artifacts/hello.txt"),
    "artifact-multipart": req("POST", "/api/v1/artifacts", b'--B\r\nContent-Disposition: form-data; name="file"; filename="m.bin"\r\n\r\nabc\r\n--B--\r\n', "multipart/form-data; boundary=B"),
    "jobs-create": req("POST", "/api/v1/jobs", b'{"artifact":"firmware.bin","tag":"demo","kind":"firmware","reboot":true}'),
    "jobs-create-devices": req("POST", "/api/v1/jobs", b'{"artifact":"hello.txt","devices":["esp32-1","esp32-2"],"as":"lib/hello.txt"}'),
    "jobs-list": req("GET", "/api/v1/jobs?limit=10&before=5"),
    "job-get": req("GET", "/api/v1/jobs/1"),
    "job-cancel": req("POST", "/api/v1/jobs/1/cancel"),
    "options": req("OPTIONS", "/api/v1/devices", extra=b"Origin: http://x\r\nAccess-Control-Request-Method: POST\r\n"),
    "chunked": b"POST /api/v1/jobs HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"art\r\n0\r\n\r\n",
    "pipeline": req("POST", "/api/upload", b'{"filePath": "hello.txt"}') + req("GET", "/api/v1/jobs/1") + req("POST", "/api/v1/jobs/1/cancel"),
    "create-then-job": req("POST", "/api/v1/devices", b'{"name":"d3","address":"h:2","protocol":"legacy"}') + req("POST", "/api/v1/jobs", b'{"artifact":"hello.txt","devices":["d3"]}') + req("GET", "/api/v1/jobs/1"),
}
for k, v in reqs.items():
    write("http_request", k, v)

# --- json_bodies: selector byte + body
jb = [
    (0, b'{"name":"dev-9","address":"127.0.0.1:12346","key":"a-long-device-secret-0123","tags":["lab","demo"]}'),
    (0, b'{"name":"w","address":"10.1.2.3:8266","protocol":"webrepl","key":"pw"}'),
    (0, b'{"name":"a","address":"h:3232","protocol":"arduino-ota"}'),
    (1, b'{"tags":["x"],"protocol":"legacy"}'),
    (2, b'{"address":"[fe80::1]:12345","key":"a-long-device-secret-0123"}'),
    (3, b'{"artifact":"firmware.bin","devices":["esp32-1"],"kind":"firmware","reboot":true,"as":"fw.bin"}'),
    (3, b'{"artifact":"hello.txt","tag":"demo"}'),
    (3, b'{"artifact":"fw/esp32/app.bin","tag":"demo","kind":"filesystem"}'),
    (4, b'{"filePath":"hello.txt","device":"esp32-1"}'),
    (4, b'{"filePath":"/etc/passwd"}'),
    (5, b'{"filePath":"out/secret","artifact":"out/secret"}'),
    (6, b'fw/m.bin\nmultipart content'),
    (7, b'lib/app.py\nprint("hi")\n'),
]
for i, (sel, body) in enumerate(jb):
    write("json_bodies", "j%02d" % i, bytes([sel]) + body)
