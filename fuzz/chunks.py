#!/usr/bin/env python3
"""Seeds corpus/xor_chunk with XOR chunks Prometheus itself wrote: asks a
running Prometheus for SELECTOR over [FROM, TO] by remote read
(STREAMED_XOR_CHUNKS) and writes the first LIMIT chunks' bytes, each as one
file `prometheus-TAG-<sha1>` (TAG `counter` or `gauge`: the decoder's test
checks counters never decrease). Standard library only (the request is
snappy-framed as one literal).

    fuzz/chunks.py http://127.0.0.1:9090 libvirt_domain_info_energy_consumption_joules_total \\
        1748736000 1748822400 fuzz/corpus/xor_chunk counter [LIMIT]
"""

import hashlib
import os
import sys
import urllib.request


def uvarint(x):
    out = bytearray()
    while x >= 0x80:
        out.append(x & 0x7F | 0x80)
        x >>= 7
    out.append(x)
    return bytes(out)


def field(number, wire, payload):
    key = uvarint(number << 3 | wire)
    return key + (uvarint(len(payload)) + payload if wire == 2 else uvarint(payload))


def snappy_literal(data):
    """One snappy block holding data as a single literal."""
    n = len(data) - 1
    if n < 60:
        tag = bytes([n << 2])
    else:
        size = n.to_bytes((n.bit_length() + 7) // 8, "little")
        tag = bytes([(59 + len(size)) << 2]) + size
    return uvarint(len(data)) + tag + data


def read_uvarint(buf, i):
    x = shift = 0
    while True:
        b = buf[i]
        i += 1
        x |= (b & 0x7F) << shift
        if b < 0x80:
            return x, i
        shift += 7


def fields(buf):
    """(number, value) of a protobuf message; bytes for length-delimited."""
    i = 0
    while i < len(buf):
        key, i = read_uvarint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = read_uvarint(buf, i)
        elif wire == 2:
            n, i = read_uvarint(buf, i)
            value, i = buf[i:i + n], i + n
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        else:
            value, i = buf[i:i + 4], i + 4
        yield number, value


def main():
    url, name, start, end, out = sys.argv[1:6]
    tag = sys.argv[6]
    limit = int(sys.argv[7]) if len(sys.argv) > 7 else 8
    matcher = field(1, 0, 0) + field(2, 2, b"__name__") + field(3, 2, name.encode())
    query = field(1, 0, int(start) * 1000) + field(2, 0, int(end) * 1000) + field(3, 2, matcher)
    request = field(1, 2, query) + field(2, 2, bytes([1]))
    req = urllib.request.Request(
        url.rstrip("/") + "/api/v1/read",
        data=snappy_literal(request),
        headers={"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
                 "X-Prometheus-Remote-Read-Version": "0.1.0"},
    )
    body = urllib.request.urlopen(req, timeout=120).read()
    os.makedirs(out, exist_ok=True)
    written, i = 0, 0
    while i < len(body) and written < limit:
        n, i = read_uvarint(body, i)
        frame, i = body[i + 4:i + 4 + n], i + 4 + n
        for number, series in fields(frame):
            if number != 1:
                continue
            for number, chunk in fields(series):
                if number != 2 or written >= limit:
                    continue
                data = dict(fields(chunk)).get(4)
                if data:
                    digest = hashlib.sha1(data).hexdigest()[:16]
                    with open(os.path.join(out, f"prometheus-{tag}-{digest}"), "wb") as f:
                        f.write(data)
                    written += 1
    print(f"wrote {written} chunks of {name} to {out}")


if __name__ == "__main__":
    main()
