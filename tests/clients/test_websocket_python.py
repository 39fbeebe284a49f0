#!/usr/bin/env python3
"""The WebSocket door with an independent client, Python's websockets (Debian python3-websockets),
written from docs/tunnel-protocol.md alone:
- binary messages carry the bytes: 4 MiB through an echo service arrive intact, in order;
- {"op":"fin"} half-closes: the gateway answers with its own fin, then closes with 1000;
- the gateway echoes the subprotocol edgerelay.v1 and answers pings;
- 401 without credentials on an `auth: password` listener (with WWW-Authenticate), 101 with
  Authorization: Basic, and the access line names the user and the protocol websocket;
- a target the rules deny gets 403 with Edgerelay-Result: denied."""

import asyncio
import base64
import hashlib
import json
import secrets

import gateway as gw
from gateway import check

try:
    import websockets
    import websockets.exceptions
except ImportError as e:  # the test must not pass without its client
    raise SystemExit("FAIL: python3-websockets is missing (scripts/install-deps.sh installs it): %s" % e)

PASSWORD = "Pw-" + secrets.token_hex(12)
FIN = json.dumps({"op": "fin"})


def config(pw_hash):
    return (
        "listeners:\n"
        '  - {name: test, bind: "127.0.0.1:0", protocols: [http, websocket]}\n'
        '  - {name: secure, bind: "127.0.0.1:0", protocols: [websocket], auth: password}\n'
        "users:\n"
        '  - {name: alice, password: "%s"}\n'
        "rules:\n"
        '  - {name: no-two, action: deny, to: ["127.0.0.2"]}\n'
        '  - {name: loopback, action: allow, from: ["127.0.0.0/8"], to: ["127.0.0.0/8"]}\n'
        "limits: {handshake_timeout: 2s, connect_timeout: 2s, idle_timeout: 30s, shutdown_grace: 3s}\n"
        "log: {level: info, access: json}\n" % pw_hash)


def basic(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


async def tunnel_echo(uri, payload, headers=None):
    """Sends payload then fin; returns (bytes back, fin seen, close code, subprotocol, pong seen)."""
    async with websockets.connect(uri, subprotocols=["edgerelay.v1"], extra_headers=headers or {},
                                  max_size=2 ** 20, compression=None) as ws:
        pong = await ws.ping()
        await asyncio.wait_for(pong, 5)

        async def send():
            for at in range(0, len(payload), 60000):
                await ws.send(payload[at:at + 60000])
            await ws.send(FIN)

        sender = asyncio.ensure_future(send())
        back = bytearray()
        fin = False
        async for message in ws:
            if isinstance(message, str):
                check(json.loads(message) == {"op": "fin"}, "unexpected control message %r" % message)
                fin = True
                break
            back += message
        await sender
        await asyncio.wait_for(ws.wait_closed(), 10)
        return bytes(back), fin, ws.close_code, ws.subprotocol


async def refused_status(uri, headers=None):
    try:
        async with websockets.connect(uri, subprotocols=["edgerelay.v1"], extra_headers=headers or {}):
            return 101, {}
    except websockets.exceptions.InvalidStatusCode as e:
        return e.status_code, dict(e.headers) if hasattr(e, "headers") else {}


async def refused_headers(host, port, path):
    """The raw refusal head, for the headers the websockets exception does not keep."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(("GET %s HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
                  % path).encode())
    await writer.drain()
    head = (await asyncio.wait_for(reader.read(4096), 5)).decode("latin-1")
    writer.close()
    return head


def test(binary, workdir):
    pw_hash = gw.make_password_hash(binary, PASSWORD)
    echo = gw.EchoServer()
    g = gw.Gateway(binary, config(pw_hash), workdir)
    with gw.running(g, echo):
        g.start(listeners=("test", "secure"))
        target = "127.0.0.1:%d" % echo.port
        uri = "ws://127.0.0.1:%d/edgerelay?target=%s" % (g.port("test"), target)

        # 1. bytes both ways, fin, close 1000, subprotocol, ping.
        payload = secrets.token_bytes(4 << 20)
        before = len(g.stdout_lines())
        back, fin, code, subprotocol = asyncio.run(tunnel_echo(uri, payload))
        check(fin, "no fin from the gateway")
        check(len(back) == len(payload) and hashlib.sha256(back).digest() == hashlib.sha256(payload).digest(),
              "echo through the WebSocket corrupted: %d of %d bytes" % (len(back), len(payload)))
        check(code == 1000, "close code %r, expected 1000 after both fins" % code)
        check(subprotocol == "edgerelay.v1", "subprotocol %r not echoed" % subprotocol)
        rec = g.one_new_record(before, "websocket echo")
        check(rec["protocol"] == "websocket" and rec["result"] == "ok" and rec["target"] == target,
              "websocket session logged as %r" % rec)
        check(rec["bytes_up"] == len(payload) and rec["bytes_down"] == len(payload),
              "byte counts %r, expected %d each way" % (rec, len(payload)))

        # 2. credentials: 401 without, 101 with Basic, and the user in the access line.
        secure = "ws://127.0.0.1:%d/edgerelay?target=%s" % (g.port("secure"), target)
        status, _ = asyncio.run(refused_status(secure))
        check(status == 401, "no credentials: status %r, expected 401" % status)
        head = asyncio.run(refused_headers("127.0.0.1", g.port("secure"), "/edgerelay?target=" + target))
        check(head.startswith("HTTP/1.1 401 "), "raw refusal %r" % head)
        check('WWW-Authenticate: Basic realm="edgerelay"' in head, "401 without WWW-Authenticate: %r" % head)
        check("Cache-Control: no-store" in head, "401 without Cache-Control: no-store: %r" % head)
        before = len(g.stdout_lines())
        back, fin, code, _ = asyncio.run(tunnel_echo(secure, b"alice's bytes",
                                                     {"Authorization": basic("alice", PASSWORD)}))
        check(back == b"alice's bytes" and fin and code == 1000, "authenticated session: %r %r %r" % (back, fin, code))
        rec = g.one_new_record(before, "authenticated websocket")
        check(rec["user"] == "alice" and rec["protocol"] == "websocket", "logged as %r" % rec)

        # 3. a denied target: 403 and its result.
        denied = "ws://127.0.0.1:%d/edgerelay?target=127.0.0.2:%d" % (g.port("test"), echo.port)
        status, _ = asyncio.run(refused_status(denied))
        check(status == 403, "denied target: status %r, expected 403" % status)
        head = asyncio.run(refused_headers("127.0.0.1", g.port("test"), "/edgerelay?target=127.0.0.2:%d" % echo.port))
        check("Edgerelay-Result: denied" in head, "403 without Edgerelay-Result: denied: %r" % head)

        # 4. neither password nor its hash in any output.
        everything = "\n".join(g.stdout_lines()) + "\n".join(g.stderr_lines())
        check(PASSWORD not in everything, "the password reached a log")


if __name__ == "__main__":
    gw.main(test)
