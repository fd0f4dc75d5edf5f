"""An S3 API server on loopback (moto) that can fail on purpose: ``cluster/s3-local.sh`` and the tests run it.

    python cluster/s3_server.py --port 5555 [--fault-rate 0.2 --seed 0]

moto's own WSGI application (the one ``moto_server`` serves) behind a thin fault-injecting middleware: each S3
request fails with probability ``rate`` — HTTP 500 InternalError, HTTP 503 SlowDown or a connection dropped
before any answer, in equal shares, drawn from a seeded generator — so the retry paths of botocore, s3fs and
seisgrid meet the errors real object stores give. ``fail_prefix`` makes every request for keys under a prefix
fail (an outage that no retry survives). Faults are set at start or at run time, and counted::

    curl -X POST 'http://127.0.0.1:5555/_faults?rate=0.5&seed=3'   # 50 % of requests fail from now on
    curl -X POST 'http://127.0.0.1:5555/_faults?fail_prefix=bucket/store/'
    curl http://127.0.0.1:5555/_faults                            # {"rate": 0.5, ..., "injected": {...}}

moto is a test double of S3, not a store for real data: everything lives in this process's memory.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import threading
import urllib.parse

KINDS = ("http500", "http503", "drop")
ERRORS = {
    "http500": ("500 Internal Server Error", "InternalError", "We encountered an internal error. Please try again."),
    "http503": ("503 Slow Down", "SlowDown", "Please reduce your request rate."),
}


class FaultInjector:
    """WSGI middleware: pass requests to ``app`` or fail them at a seeded rate (see the module docstring)."""

    def __init__(self, app, rate: float = 0.0, seed: int = 0, fail_prefix: str = "") -> None:
        self.app = app
        self.lock = threading.Lock()
        self.configure(rate=rate, seed=seed, fail_prefix=fail_prefix)

    def configure(self, rate: float | None = None, seed: int | None = None, fail_prefix: str | None = None) -> None:
        """Change the fault settings (``None``: keep); resets the generator when a seed is given."""
        with self.lock:
            if rate is not None:
                if not 0.0 <= rate <= 1.0:
                    raise ValueError(f"fault rate {rate}: expected 0 to 1")
                self.rate = rate
            if seed is not None or not hasattr(self, "random"):
                self.random = random.Random(seed or 0)
            if fail_prefix is not None:
                self.fail_prefix = fail_prefix.lstrip("/")
            self.injected = {kind: 0 for kind in (*KINDS, "prefix")}
            self.requests = 0

    def state(self) -> dict:
        """The settings and the counts of requests seen and faults injected."""
        with self.lock:
            return {"rate": self.rate, "fail_prefix": self.fail_prefix, "requests": self.requests,
                    "injected": dict(self.injected)}

    def _control(self, environ, start_response):
        if environ["REQUEST_METHOD"] == "POST":
            query = dict(urllib.parse.parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
            try:
                self.configure(rate=float(query["rate"]) if "rate" in query else None,
                               seed=int(query["seed"]) if "seed" in query else None,
                               fail_prefix=query.get("fail_prefix"))
            except ValueError as exc:
                start_response("400 Bad Request", [("Content-Type", "text/plain")])
                return [str(exc).encode()]
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(self.state()).encode()]

    def _fault(self, path: str) -> str | None:
        with self.lock:
            self.requests += 1
            if self.fail_prefix and path.lstrip("/").startswith(self.fail_prefix):
                self.injected["prefix"] += 1
                return "http503"
            if self.rate and self.random.random() < self.rate:
                kind = KINDS[self.random.randrange(len(KINDS))]
                self.injected[kind] += 1
                return kind
        return None

    def __call__(self, environ, start_response):
        """Answer the fault-control path, fail the request, or pass it to moto."""
        path = urllib.parse.unquote(environ.get("PATH_INFO", ""))
        if path == "/_faults":
            return self._control(environ, start_response)
        kind = None if path.startswith("/moto-api") else self._fault(path)
        if kind == "drop":
            # close the connection without an answer: the client sees a reset / incomplete read
            connection = environ.get("werkzeug.socket")
            if connection is not None:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            kind = "http500"  # werkzeug still wants a response; it goes nowhere
        if kind is not None:
            status, code, message = ERRORS[kind]
            body = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{message}'
                    f"</Message><Resource>{path}</Resource></Error>").encode()
            if environ["REQUEST_METHOD"] == "HEAD":  # no body, as S3 answers a HEAD
                body = b""
            start_response(status, [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
            return [body]
        return self.app(environ, start_response)


def make_app(rate: float = 0.0, seed: int = 0, fail_prefix: str = "") -> FaultInjector:
    """The S3 API application of moto behind a :class:`FaultInjector`."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    return FaultInjector(DomainDispatcherApplication(create_backend_app), rate, seed, fail_prefix)


def main(argv: list[str] | None = None) -> None:
    """Serve until killed."""
    from moto.moto_server.threaded_moto_server import MotoRequestHandler
    from werkzeug.serving import make_server

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5555)
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of S3 requests that fail (0-1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault draws")
    parser.add_argument("--fail-prefix", default="", help="every request for keys under BUCKET/PREFIX fails")
    args = parser.parse_args(argv)
    server = make_server(args.host, args.port, make_app(args.fault_rate, args.seed, args.fail_prefix),
                         threaded=True, request_handler=MotoRequestHandler)
    print(f"S3 API server (moto) on http://{args.host}:{server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
