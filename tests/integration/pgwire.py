"""A tiny PostgreSQL wire client for tests that must send what libpq never would
(malformed, oversized, hand-pipelined messages). SCRAM-SHA-256 login included."""

import base64
import hashlib
import hmac
import os
import socket
import struct


def msg(t, body=b""):
    return t + struct.pack(">I", len(body) + 4) + body


def startup(user, database="app", **params):
    kv = {"user": user, "database": database, **params}
    body = struct.pack(">I", 196608) + b"".join(
        k.encode() + b"\0" + v.encode() + b"\0" for k, v in kv.items()) + b"\0"
    return struct.pack(">I", len(body) + 4) + body


class Wire:
    def __init__(self, port, timeout=10):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def close(self):
        self.s.close()

    def send(self, data):
        self.s.sendall(data)

    def _fill(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk

    def read(self):
        """Next backend message as (type, body)."""
        self._fill(5)
        t = self.buf[:1]
        (n,) = struct.unpack(">I", self.buf[1:5])
        self._fill(1 + n)
        body = self.buf[5:1 + n]
        self.buf = self.buf[1 + n:]
        return t, body

    def read_until(self, t):
        out = []
        while True:
            m = self.read()
            out.append(m)
            if m[0] == t:
                return out

    def closed(self):
        """True if the server closed the connection (after draining what it sent)."""
        try:
            while True:
                self.read()
        except (EOFError, ConnectionResetError):
            return True
        except socket.timeout:
            return False

    def login(self, user, password, database="app"):
        self.send(startup(user, database))
        t, body = self.read()
        assert t == b"R" and struct.unpack(">I", body[:4])[0] == 10, (t, body)
        nonce = base64.b64encode(os.urandom(18)).decode()
        first_bare = f"n=,r={nonce}"
        data = ("n,," + first_bare).encode()
        self.send(msg(b"p", b"SCRAM-SHA-256\0" + struct.pack(">I", len(data)) + data))
        t, body = self.read()
        if t == b"E":
            return t, body
        assert struct.unpack(">I", body[:4])[0] == 11
        server_first = body[4:].decode()
        attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
        salt = base64.b64decode(attrs["s"])
        salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, int(attrs["i"]))
        client_key = hmac.new(salted, b"Client Key", "sha256").digest()
        stored = hashlib.sha256(client_key).digest()
        final_no_proof = f"c=biws,r={attrs['r']}"
        auth_msg = f"{first_bare},{server_first},{final_no_proof}".encode()
        sig = hmac.new(stored, auth_msg, "sha256").digest()
        proof = bytes(a ^ b for a, b in zip(client_key, sig))
        self.send(msg(b"p", f"{final_no_proof},p={base64.b64encode(proof).decode()}".encode()))
        out = []
        while True:  # up to ReadyForQuery, or the error that ends the login
            m = self.read()
            out.append(m)
            if m[0] in (b"Z", b"E"):
                return out

    def query(self, sql):
        self.send(msg(b"Q", sql.encode() + b"\0"))
        return self.read_until(b"Z")


def error_fields(body):
    out = {}
    for part in body.split(b"\0"):
        if part:
            out[chr(part[0])] = part[1:].decode()
    return out
