"""A minimal HTTP/3 server and client on aioquic's API (its wheel ships no examples).

Server: ``GET /<n>`` answers n bytes; a request with a body is read to its end and answered with 204.
Client: runs one planned QUIC connection: requests in sequence with think times, or in parallel.
Run inside a namespace as ``python -m etbert.lab.h3 server|client ...``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import ssl
from collections.abc import Callable

from aioquic.asyncio import QuicConnectionProtocol, connect, serve
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ProtocolNegotiated, QuicEvent
from aioquic.tls import CipherSuite

CIPHER_SUITES = {suite.name: suite for suite in (CipherSuite.AES_128_GCM_SHA256, CipherSuite.AES_256_GCM_SHA384, CipherSuite.CHACHA20_POLY1305_SHA256)}


class H3Server(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.http: H3Connection | None = None
        self.paths: dict[int, bytes] = {}

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ProtocolNegotiated):
            self.http = H3Connection(self._quic)
        if self.http is None:
            return
        for h3_event in self.http.handle_event(event):
            self.request_event(h3_event)

    def request_event(self, event: H3Event) -> None:
        if isinstance(event, HeadersReceived):
            self.paths[event.stream_id] = dict(event.headers).get(b":path", b"/0")
        if isinstance(event, (HeadersReceived, DataReceived)) and event.stream_ended:
            self.respond(event.stream_id, self.paths.pop(event.stream_id, b"/0"))

    def respond(self, stream_id: int, path: bytes) -> None:
        digits = path.lstrip(b"/")
        body = random.Random(digits).randbytes(int(digits)) if digits.isdigit() else b""
        status = b"200" if body else b"204"
        self.http.send_headers(stream_id, [(b":status", status), (b"content-length", str(len(body)).encode())], end_stream=not body)
        if body:
            self.http.send_data(stream_id, body, end_stream=True)
        self.transmit()


class H3Client(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.http = H3Connection(self._quic)
        self.pending: dict[int, asyncio.Future[int]] = {}
        self.received: dict[int, int] = {}

    async def request(self, authority: str, path: str, upload: int = 0) -> int:
        """Send one request (a POST of ``upload`` bytes when set); returns the response body size."""
        stream_id = self._quic.get_next_available_stream_id()
        method = b"POST" if upload else b"GET"
        headers = [(b":method", method), (b":scheme", b"https"), (b":authority", authority.encode()), (b":path", path.encode())]
        self.http.send_headers(stream_id, headers, end_stream=not upload)
        if upload:
            self.http.send_data(stream_id, bytes(upload), end_stream=True)
        done = asyncio.get_running_loop().create_future()
        self.pending[stream_id], self.received[stream_id] = done, 0
        self.transmit()
        return await done

    def quic_event_received(self, event: QuicEvent) -> None:
        for h3_event in self.http.handle_event(event):
            if isinstance(h3_event, DataReceived):
                self.received[h3_event.stream_id] += len(h3_event.data)
            if isinstance(h3_event, (HeadersReceived, DataReceived)) and h3_event.stream_ended:
                self.pending.pop(h3_event.stream_id).set_result(self.received.pop(h3_event.stream_id))


async def run_server(host: str, port: int, cert: str, key: str) -> None:
    configuration = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN, max_datagram_frame_size=65536)
    configuration.load_cert_chain(cert, key)
    await serve(host, port, configuration=configuration, create_protocol=H3Server)
    print(f"listening on udp/{port}", flush=True)
    await asyncio.Future()


async def run_client(server: str, port: int, host: str, plan: dict, keylog: str) -> None:
    """``plan``: {"cipher", "requests": [[response bytes, upload bytes], ...], "think_s", "parallel"}."""
    with open(keylog, "a") as secrets:
        configuration = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, server_name=host, verify_mode=ssl.CERT_NONE, secrets_log_file=secrets)
        configuration.cipher_suites = [CIPHER_SUITES[plan["cipher"]]]
        async with connect(server, port, configuration=configuration, create_protocol=H3Client) as client:
            request: Callable = lambda response, upload: client.request(host, f"/{response}", upload)  # noqa: E731
            if plan.get("parallel"):
                await asyncio.wait_for(asyncio.gather(*(request(*r) for r in plan["requests"])), 60)
            else:
                for response, upload in plan["requests"]:
                    await asyncio.wait_for(request(response, upload), 60)
                    await asyncio.sleep(plan.get("think_s", 0))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m etbert.lab.h3")
    commands = parser.add_subparsers(dest="role", required=True)
    server = commands.add_parser("server")
    server.add_argument("--host", required=True)
    server.add_argument("--port", type=int, required=True)
    server.add_argument("--cert", required=True)
    server.add_argument("--key", required=True)
    client = commands.add_parser("client")
    client.add_argument("--server", required=True)
    client.add_argument("--port", type=int, required=True)
    client.add_argument("--host", required=True, help="server name sent in the TLS handshake")
    client.add_argument("--plan", required=True, help="JSON workload of this connection")
    client.add_argument("--keylog", required=True)
    args = parser.parse_args()
    if args.role == "server":
        asyncio.run(run_server(args.host, args.port, args.cert, args.key))
    else:
        asyncio.run(run_client(args.server, args.port, args.host, json.loads(args.plan), args.keylog))


if __name__ == "__main__":
    main()
