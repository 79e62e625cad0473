#!/usr/bin/env python3
"""A hostile stand-in for Prometheus (issue 33), for scripts/bench-hostile.sh:
answers every PromQL query (/api/v1/query) and every remote read
(/api/v1/read) the way MODE says, generating its bytes as it writes them
(nothing of the answer is built whole). Prints its port, then serves.

    scripts/hostile-prometheus.py MODE T_MS

T_MS is an instant inside the window read (samples are put there).

MODE:
  big      a 2 GiB answer (Content-Length 2 GiB): a vector of ever more
           series; remote read, 2 GiB of series frames
  endless  a chunked answer that never ends: one series whose samples go
           on (PromQL matrix; remote read, one series' chunks)
  empty    a chunked answer that never ends and holds nothing: JSON
           whitespace after `"result":[`; remote read, empty frames
  series   10 million series for the selector (chunked)
  labels   series whose `uuid` is 1 MiB long, 2 GiB of them
"""

import http.server
import json
import struct
import sys

GIB = 1 << 30
METRIC = "libvirt_domain_info_energy_consumption_joules_total"
STREAMED = "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse"

# CRC32-C (Castagnoli), table-driven: the remote-read frames' checksum.
TABLE = []
for n in range(256):
    c = n
    for _ in range(8):
        c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    TABLE.append(c)


def crc32c(data):
    crc = 0xFFFFFFFF
    table = TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def uvarint(x):
    out = bytearray()
    while x >= 0x80:
        out.append(x & 0x7F | 0x80)
        x >>= 7
    out.append(x)
    return bytes(out)


def field(number, payload):
    """A length-delimited protobuf field."""
    return uvarint(number << 3 | 2) + uvarint(len(payload)) + payload


def varint_field(number, value):
    return uvarint(number << 3) + uvarint(value)


def chunk(t_ms, value):
    """A Chunk message holding an XOR chunk of one sample (byte-aligned:
    count, zig-zag varint time, the value's 64 bits)."""
    data = b"\x00\x01" + uvarint((t_ms << 1) ^ (t_ms >> 63)) + struct.pack(">d", value)
    return varint_field(1, t_ms) + varint_field(2, t_ms) + varint_field(3, 1) + field(4, data)


def series_message(labels, chunks):
    out = b"".join(field(1, field(1, k.encode()) + field(2, v.encode())) for k, v in labels)
    return field(1, out + b"".join(field(2, c) for c in chunks))


def frame(message):
    return uvarint(len(message)) + struct.pack(">I", crc32c(message)) + message


def labels_of(i, uuid=None):
    return [
        ("__name__", METRIC),
        ("instance", "compute-%04d:9177" % (i % 5000)),
        ("uuid", uuid or "%08x-0000-4000-8000-%012x" % (i, i)),
    ]


def vector_items(t_s, start=0, uuid=None):
    """JSON vector items, in blocks of about 64 KiB, forever."""
    i = start
    per_block = 1 if uuid else 512
    while True:
        block = []
        for _ in range(per_block):
            metric = dict(labels_of(i, uuid))
            block.append(json.dumps({"metric": metric, "value": [t_s, "%d" % i]}))
            i += 1
        yield ("," if i > per_block + start else "").encode() + ",".join(block).encode()


def series_frames(t_ms, uuid=None):
    i, per_block = 0, 1 if uuid else 256
    while True:
        yield b"".join(
            frame(series_message(labels_of(j, uuid), [chunk(t_ms, float(j))]))
            for j in range(i, i + per_block)
        )
        i += per_block


def promql(mode, t_ms):
    """(content length or None for chunked, blocks)."""
    t_s = t_ms / 1000
    head = b'{"status":"success","data":{"resultType":"vector","result":['
    if mode == "big":
        return 2 * GIB, limit(prefixed(head, vector_items(t_s)), 2 * GIB)
    if mode == "series":
        return None, prefixed(head, counted(vector_items(t_s), 10_000_000 // 512, b"]}}"))
    if mode == "labels":
        return None, limit(prefixed(head, vector_items(t_s, uuid="u" * (1 << 20))), 2 * GIB)
    if mode == "empty":
        return None, prefixed(head, forever(b" " * 65536))
    if mode == "endless":
        head = (
            b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":'
            + json.dumps(dict(labels_of(0))).encode()
            + b',"values":['
        )

        def samples():
            t = t_ms
            while True:
                yield ",".join('[%.3f,"%d"]' % ((t + k) / 1000, k) for k in range(4096)).encode() + b","
                t += 4096

        return None, prefixed(head, samples())
    raise SystemExit("unknown mode " + mode)


def remote_read(mode, t_ms):
    if mode == "big":
        return 2 * GIB, limit(series_frames(t_ms), 2 * GIB)
    if mode == "series":
        return None, counted(series_frames(t_ms), 10_000_000 // 256, b"")
    if mode == "labels":
        return None, limit(series_frames(t_ms, uuid="u" * (1 << 20)), 2 * GIB)
    if mode == "empty":
        return None, forever(b"\x00" * 65536)
    if mode == "endless":

        def frames():
            t = t_ms
            labels = labels_of(0)
            while True:
                yield frame(series_message(labels, [chunk(t + k, float(k)) for k in range(4096)]))
                t += 4096

        return None, frames()
    raise SystemExit("unknown mode " + mode)


def prefixed(head, blocks):
    yield head
    yield from blocks


def forever(block):
    while True:
        yield block


def counted(blocks, n, tail):
    for _, block in zip(range(n), blocks):
        yield block
    yield tail


def limit(blocks, total):
    sent = 0
    for block in blocks:
        block = block[: total - sent]
        sent += len(block)
        yield block
        if sent >= total:
            return


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.answer(False)

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.answer(self.path.startswith("/api/v1/read"))

    def answer(self, read):
        mode, t_ms = sys.argv[1], int(sys.argv[2])
        length, blocks = remote_read(mode, t_ms) if read else promql(mode, t_ms)
        self.send_response(200)
        self.send_header("Content-Type", STREAMED if read else "application/json")
        if length is None:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(length))
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            for block in blocks:
                if length is None:
                    if not block:
                        continue
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
                else:
                    self.wfile.write(block)
            if length is None:
                self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
