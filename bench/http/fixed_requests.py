#!/usr/bin/env python3
"""Sends exactly N keep-alive GET requests to an HTTP/1.1 server over C
connections (one thread each) and fails unless every answer is 200 with the
expected body. For bench/http-instructions: a fixed request count, so a
deterministic instruction count of the server divides by a known number.

    fixed_requests.py HOST:PORT PATH N [--connections C] [--cookie 'name=value']
                      [--expect BODY] [--keys FILE [--skip K]]

With --keys, request i sends `Cookie: sessionid=KEY` with the i-th key of FILE
(one a line) after the first K: each session is read once.
"""
import argparse
import socket
import sys
import threading


def worker(host, port, requests, expect, errors):
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    try:
        for request in requests:
            sock.sendall(request)
            while b"\r\n\r\n" not in buf:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("server closed the connection")
                buf += chunk
            head, buf = buf.split(b"\r\n\r\n", 1)
            lines = head.split(b"\r\n")
            status = lines[0].split(b" ", 2)[1]
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
                elif name.strip().lower() == b"transfer-encoding":
                    raise ValueError("chunked answers are not supported")
            while len(buf) < length:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("server closed the connection")
                buf += chunk
            body, buf = buf[:length], buf[length:]
            if status != b"200" or (expect is not None and body != expect):
                raise ValueError(f"answer {status!r} {body[:80]!r}")
    except Exception as e:  # noqa: BLE001 - reported, then the run fails
        errors.append(repr(e))
    finally:
        sock.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("addr")
    p.add_argument("path")
    p.add_argument("n", type=int)
    p.add_argument("--connections", type=int, default=4)
    p.add_argument("--cookie")
    p.add_argument("--expect")
    p.add_argument("--keys")
    p.add_argument("--skip", type=int, default=0)
    a = p.parse_args()
    host, _, port = a.addr.rpartition(":")
    headers = f"GET {a.path} HTTP/1.1\r\nHost: {a.addr}\r\n"
    if a.keys:
        with open(a.keys) as f:
            keys = [k.strip() for k in f if k.strip()][a.skip : a.skip + a.n]
        if len(keys) < a.n:
            sys.exit(f"fixed_requests: {a.keys} has {len(keys)} keys after {a.skip}, need {a.n}")
        requests = [(headers + f"Cookie: sessionid={k}\r\n\r\n").encode() for k in keys]
    else:
        if a.cookie:
            headers += f"Cookie: {a.cookie}\r\n"
        requests = [(headers + "\r\n").encode()] * a.n
    expect = a.expect.encode() if a.expect is not None else None
    c = max(1, min(a.connections, a.n))
    errors = []
    threads = [
        threading.Thread(
            target=worker, args=(host, int(port), requests[i::c], expect, errors)
        )
        for i in range(c)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        print("fixed_requests: " + "; ".join(errors[:3]), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
