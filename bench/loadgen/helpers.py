#!/usr/bin/env python3
# Misbehaving servers for selftest.sh (loopback only, two minutes at most):
#   HANG  accepts nothing (connections wait in the backlog: timeouts);
#   RST   reads the ClientHello, then resets the connection;
#   ODD   TLS server (CERT, KEY) answering by path:
#         /eof      200, no length: the body ends with the connection
#         /short    Content-Length 100, 13 bytes, then close_notify
#         /extra    a correct response followed by 3 more bytes
#         /badchunk an invalid chunk size
#         /trailer  chunked with a trailer field
#         other     404
# usage: helpers.py HANG RST ODD CERT KEY

import select
import socket
import ssl
import struct
import sys
import time

BODY = b"hello, world\n"


def listener(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(64)
    return s


def answer(path):
    if path == "/eof":
        return b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + BODY
    if path == "/short":
        return b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + BODY
    if path == "/extra":
        return (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY)
                + BODY + b"XYZ")
    if path == "/badchunk":
        return (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"zz\r\n" + BODY + b"\r\n0\r\n\r\n")
    if path == "/trailer":
        return (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                b"Connection: close\r\n\r\n"
                b"5\r\nhello\r\n8;ext=1\r\n, world\n\r\n0\r\nX-T: 1\r\n\r\n")
    return b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"


def serve_odd(raw, ctx):
    raw.settimeout(5)
    try:
        conn = ctx.wrap_socket(raw, server_side=True)
        head = b""
        while b"\r\n\r\n" not in head:
            data = conn.recv(4096)
            if not data:
                return
            head += data
        path = head.split(b" ")[1].decode()
        conn.sendall(answer(path))
        try:
            conn.unwrap()
        except (ssl.SSLError, OSError):
            pass
    except (ssl.SSLError, OSError):
        pass
    finally:
        raw.close()


def main():
    hang = listener(int(sys.argv[1]))
    rst = listener(int(sys.argv[2]))
    odd = listener(int(sys.argv[3]))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[4], sys.argv[5])
    end = time.time() + 120

    while time.time() < end:
        ready, _, _ = select.select([rst, odd], [], [], 1)
        for s in ready:
            c, _ = s.accept()
            if s is rst:
                c.recv(4096)
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             struct.pack("ii", 1, 0))
                c.close()
            else:
                serve_odd(c, ctx)

    hang.close()


main()
