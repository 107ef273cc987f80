#!/usr/bin/env python3
"""espota-style stop-and-wait pusher for the link benchmark (scripts/bench), not a product.

It talks to a stock ArduinoOTA device (or `otter-agent --mode arduino-ota`) the way arduino-esp32's espota.py does
without a password: a UDP invitation "0 <port> <size> <md5>\n", the device's "OK", the device's TCP connection back,
then the image in 1024-byte chunks, each followed by a wait for the device's answer (one acknowledgement per chunk:
stop-and-wait), and finally the device's "OK". otter's own arduino-ota adapter pipelines instead; this is the
baseline it is compared with.

--listen is where this pusher accepts the device's connection; --advertise-port is the port written into the
invitation (default: the listen port). The device connects back to the address the invitation came from at the
advertised port, so a link emulator listening there and forwarding to --listen puts the data path through it.

--window BYTES instead keeps up to BYTES beyond the device's acknowledged count in flight (the pipelining of otter's
adapter, for window-size experiments); the device's counts arrive concatenated ("14601460..."), split here greedily.

Prints one JSON object: seconds (invitation to the device's final answer), bytes, chunks, the device's last words.
"""
import argparse
import hashlib
import json
import select
import socket
import sys
import time


def split_counts(buf: bytes):
    """(sum of the complete counts at the start of buf, the rest): counts are 1..1460, no leading zero."""
    total, i = 0, 0
    while i < len(buf):
        for n in (4, 3, 2, 1):
            s = buf[i : i + n]
            if len(s) == n and s.isdigit() and s[:1] != b"0" and int(s) <= 1460 and buf[i + n : i + n + 1] != b"0":
                total += int(s)
                i += n
                break
        else:
            break
    return total, buf[i:]


def windowed(conn, data, chunk, window):
    """Sends with at most `window` bytes beyond the acknowledged count; returns (chunks, what follows the counts)."""
    sent, acked, rest, chunks = 0, 0, b"", 0
    while acked < len(data):
        can_send = sent < len(data) and sent - acked < window
        r, w, _ = select.select([conn], [conn] if can_send else [], [], 10)
        if not r and not w:
            raise TimeoutError(f"device silent at {acked} acknowledged bytes")
        if r:
            more = conn.recv(4096)
            if not more:
                raise ConnectionError(f"device closed at {acked} acknowledged bytes")
            n, rest = split_counts(rest + more)
            acked += n
            if rest and not rest[:1].isdigit():
                break  # the verdict (an error text, or OK)
        if w:
            n = min(chunk, len(data) - sent, window - (sent - acked))
            sent += conn.send(data[sent : sent + n])
            chunks += 1
    return chunks, rest


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--device", required=True, help="HOST:PORT of the device's UDP invitation port")
    ap.add_argument("--listen", required=True, help="ADDR:PORT to accept the device's connection on")
    ap.add_argument("--advertise-port", type=int, default=0, help="port named in the invitation (default: listen)")
    ap.add_argument("--chunk", type=int, default=1024, help="bytes per acknowledgement (espota: 1024)")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for any answer")
    ap.add_argument("--window", type=int, default=0, help="pipeline up to this many unacknowledged bytes (0: stop-and-wait)")
    args = ap.parse_args()

    data = open(args.file, "rb").read()
    md5 = hashlib.md5(data).hexdigest()
    dev_host, dev_port = args.device.rsplit(":", 1)
    l_host, l_port = args.listen.rsplit(":", 1)

    t0 = time.monotonic()
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((l_host, int(l_port)))
    lsock.listen(1)
    lsock.settimeout(args.timeout)
    port = args.advertise_port or lsock.getsockname()[1]

    usock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    usock.settimeout(args.timeout)
    usock.sendto(f"0 {port} {len(data)} {md5}\n".encode(), (dev_host, int(dev_port)))
    answer = usock.recv(64).decode(errors="replace")
    if answer.strip() != "OK":
        print(json.dumps({"ok": False, "error": f"invitation answered {answer!r} (password set?)"}))
        return 1

    conn, _ = lsock.accept()
    conn.settimeout(args.timeout)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    chunks = 0
    tail = b""
    if args.window:
        chunks, tail = windowed(conn, data, args.chunk, args.window)
    for off in range(0, len(data) if not args.window else 0, args.chunk):
        conn.sendall(data[off : off + args.chunk])
        tail = conn.recv(32)  # the device's count for this chunk (stop-and-wait)
        if not tail:
            print(json.dumps({"ok": False, "error": f"device closed after {off} bytes"}))
            return 1
        chunks += 1
    # The device's verdict ("OK" or Update's error text, then it closes), possibly already in the last answer.
    while b"OK" not in tail:
        more = conn.recv(256)
        if not more:
            break
        tail += more
    seconds = time.monotonic() - t0
    ok = b"OK" in tail
    last = tail.decode(errors="replace").lstrip("0123456789")
    print(json.dumps({"ok": ok, "seconds": round(seconds, 6), "bytes": len(data), "chunks": chunks, "device": last}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
