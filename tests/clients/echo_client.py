#!/usr/bin/env python3
"""A client of `ipc-sockets serve` written from the README's wire format
alone, with nothing but the standard library's socket and struct: every
message is a frame, a 4-byte little-endian length and then that many
bytes, and the server sends each frame back unchanged.

usage: echo_client.py HOST PORT COUNT
Sends COUNT frames of sizes 0, 1, 2, ... (bytes i % 251), checks every
echo, and prints "ok COUNT" on success; exits 1 with the reason otherwise.
"""

import socket
import struct
import sys


def read_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError(f"the server closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def main():
    host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(count):
            payload = bytes((i + j) % 251 for j in range(i))
            sock.sendall(struct.pack("<I", len(payload)) + payload)
            (length,) = struct.unpack("<I", read_exactly(sock, 4))
            if length != len(payload):
                print(f"frame {i}: echo of {length} bytes, sent {len(payload)}")
                return 1
            if read_exactly(sock, length) != payload:
                print(f"frame {i}: the echo differs")
                return 1
    print(f"ok {count}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
