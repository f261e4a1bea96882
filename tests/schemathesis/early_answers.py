"""Early answers against the running node, with `requests` (the HTTP client
schemathesis uses): requests the node answers before reading their body, each
sent with a body still on its way, over TLS 1.3 and TLS 1.2. Every answer must
arrive (no connection reset), with the status expected. Then a keep-alive
connection whose bodies are read must stay one connection.

Usage: early_answers.py BASE CERT KEY CA BUNDLE ROUNDS
(BUNDLE: a bundle of the client's, whose receipt limit the 413s exceed).
Prints one JSON object: {"tls": {...}, "lost": [...], "wrong": [...],
"answered": n, "keepalive_connections": n}.
"""

import json
import ssl
import sys

import requests
from requests.adapters import HTTPAdapter

base, cert, key, ca, bundle, rounds = sys.argv[1:7]
rounds = int(rounds)


class Pinned(HTTPAdapter):
    """An adapter whose TLS is pinned to one protocol version."""

    def __init__(self, version):
        self.version = version
        super().__init__()

    def context(self):
        ctx = ssl.create_default_context(cafile=ca)
        ctx.load_cert_chain(cert, key)
        ctx.minimum_version = self.version
        ctx.maximum_version = self.version
        return ctx

    def init_poolmanager(self, *args, **kwargs):
        kwargs["ssl_context"] = self.context()
        return super().init_poolmanager(*args, **kwargs)


def negotiated(adapter):
    """The TLS version one handshake with the node agrees on."""
    import socket
    from urllib.parse import urlparse

    u = urlparse(base)
    with socket.create_connection((u.hostname, u.port)) as raw:
        with adapter.context().wrap_socket(raw, server_hostname=u.hostname) as s:
            return s.version()


def chunks(size):
    """`size` bytes without a Content-Length (chunked)."""
    step = 64 * 1024
    sent = 0
    while sent < size:
        n = min(step, size - sent)
        yield b"x" * n
        sent += n


# (what, path, expected status, chunked?)
cases = [
    ("push by a court", "/v1/bundles", 403, False),
    ("submission by a court", "/v1/applications", 403, False),
    ("event to a case that does not exist", "/v1/cases/%2F/events", 404, False),
    ("receipt of an unknown bundle", "/v1/bundles/aaaaaaaaaaaaaaaaaaaaaaaaaa/receipt", 404, False),
    ("receipt over the limit", f"/v1/bundles/{bundle}/receipt", 413, False),
    ("receipt over the limit, chunked", f"/v1/bundles/{bundle}/receipt", 413, True),
]
versions = {"TLSv1.3": ssl.TLSVersion.TLSv1_3, "TLSv1.2": ssl.TLSVersion.TLSv1_2}
sizes = [100_000, 1_000_000, 3_000_000]

out = {"tls": {}, "lost": [], "wrong": [], "answered": 0}
for name, version in versions.items():
    out["tls"][name] = negotiated(Pinned(version))
    for _ in range(rounds):
        for size in sizes:
            for what, path, expected, chunked in cases:
                # A new session each time: each request on its own connection.
                with requests.Session() as s:
                    s.mount(base, Pinned(version))
                    data = chunks(size) if chunked else b"x" * size
                    label = f"{name} {size} B {what}"
                    try:
                        r = s.post(base + path, data=data, cert=(cert, key), verify=ca, timeout=30)
                    except requests.exceptions.RequestException as e:
                        out["lost"].append(f"{label}: {type(e).__name__}: {e}")
                        continue
                    out["answered"] += 1
                    if r.status_code != expected:
                        out["wrong"].append(f"{label}: {r.status_code} (expected {expected})")

# Keep-alive is unaffected: bodies that are read leave the connection open.
with requests.Session() as s:
    s.mount(base, Pinned(ssl.TLSVersion.TLSv1_3))
    for _ in range(3):
        r = s.get(base + "/v1/bundles", cert=(cert, key), verify=ca, timeout=30)
        assert r.status_code == 200, r.status_code
        r = s.post(base + f"/v1/bundles/{bundle}/receipt", data=b"{" * 1000, cert=(cert, key), verify=ca, timeout=30)
        assert 400 <= r.status_code < 500 and r.status_code != 413, r.status_code
    pools = s.get_adapter(base).poolmanager.pools
    out["keepalive_connections"] = sum(pools[k].num_connections for k in pools.keys())

print(json.dumps(out))
