"""A real SMTP server for the notification tests, built on aiosmtpd.

    python smtp_server.py [--reject ADDRESS]... [--defer ADDRESS]... [--auth USER:PASSWORD] [--hold]

Listens on a free port of 127.0.0.1 and prints `LISTENING <port>`, then one JSON line per
accepted mail: {"to": [...], "message_id": "...", "user": "...", "connections": N}, where N
counts the connections that had said EHLO by then.

--reject  answers 550 to RCPT TO for that address (a permanent failure);
--defer   answers 451 to RCPT TO for that address (a transient failure);
--auth    requires AUTH (PLAIN or LOGIN) with these credentials, over plain text;
--hold    after printing a mail's line, holds the final 250 until a `release` line arrives
          on stdin (so a test can break something between "sent" and "recorded").

Exits when its stdin closes, so a test that dies does not leave it behind.
"""

import argparse
import asyncio
import email
import json
import os
import sys
import threading

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Handler:
    def __init__(self, rejected, deferred, releases):
        self.rejected = {address.lower() for address in rejected}
        self.deferred = {address.lower() for address in deferred}
        self.releases = releases
        self.connections = 0

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.rejected:
            return f"550 5.1.1 <{address}>: Recipient address rejected: mailbox unavailable"
        if address.lower() in self.deferred:
            return f"451 4.3.0 <{address}>: Temporary lookup failure, try again later"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content)
        user = session.auth_data
        if isinstance(user, LoginPassword):
            user = user.login.decode()
        print(
            json.dumps(
                {
                    "to": envelope.rcpt_tos,
                    "message_id": message["Message-ID"],
                    "user": user,
                    "connections": self.connections,
                }
            ),
            flush=True,
        )
        if self.releases is not None:
            await self.releases.get()
        return "250 2.0.0 OK: queued"


def authenticator_for(credentials):
    user, password = credentials.split(":", 1)

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == user
            and auth_data.password.decode() == password
        )
        return AuthResult(success=ok, handled=False, auth_data=user if ok else None)

    return authenticate


def read_stdin(loop, releases):
    """Feeds `release` lines to the held mails; exits the process at end of input."""
    for line in sys.stdin:
        if line.strip() == "release" and releases is not None:
            loop.call_soon_threadsafe(releases.put_nowait, None)
    os._exit(0)


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--reject", action="append", default=[])
    parser.add_argument("--defer", action="append", default=[])
    parser.add_argument("--auth")
    parser.add_argument("--hold", action="store_true")
    args = parser.parse_args()

    loop = asyncio.get_running_loop()
    releases = asyncio.Queue() if args.hold else None
    threading.Thread(target=read_stdin, args=(loop, releases), daemon=True).start()

    handler = Handler(args.reject, args.defer, releases)
    options = {"hostname": "smtp.test"}
    if args.auth:
        options.update(
            authenticator=authenticator_for(args.auth),
            auth_required=True,
            auth_require_tls=False,
        )
    server = await loop.create_server(lambda: SMTP(handler, **options), host="127.0.0.1", port=0)
    print(f"LISTENING {server.sockets[0].getsockname()[1]}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
