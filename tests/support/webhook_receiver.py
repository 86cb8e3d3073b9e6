"""A webhook receiver process for tests: an HTTP server on 127.0.0.1 that verifies each request's Standard
Webhooks signature with the `standardwebhooks` package and appends what it got to a JSON-lines file.

    python -m tests.support.webhook_receiver OUT_FILE PORT_FILE SECRETS_FILE [--fail-first N] [--delay S]

SECRETS_FILE holds the secrets to try, one a line (re-read at each request: a test adds one after a rotation).
--fail-first N: answer 500 to the first N requests of each webhook-id (the sender retries).
--delay S: take S seconds before answering (so a sender can be killed mid-delivery).
Each line: {"id", "verified": bool, "status": answered, "body": the JSON body}.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("port_file")
    parser.add_argument("secrets")
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    lock = threading.Lock()
    seen: Counter[str] = Counter()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            headers = {k.lower(): v for k, v in self.headers.items()}
            verified = False
            for secret in Path(args.secrets).read_text().split():
                try:
                    Webhook(secret).verify(body, headers)
                    verified = True
                    break
                except WebhookVerificationError:
                    continue
            msg_id = headers.get("webhook-id", "")
            with lock:
                seen[msg_id] += 1
                attempt = seen[msg_id]
            time.sleep(args.delay)
            status = 500 if attempt <= args.fail_first else (200 if verified else 401)
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()
            line = json.dumps({"id": msg_id, "verified": verified, "status": status, "attempt": attempt,
                               "body": json.loads(body or b"null")})
            with lock, open(args.out, "a") as out:
                out.write(line + "\n")

        def log_message(self, format: str, *a: object) -> None:  # noqa: A002 - quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    tmp = Path(args.port_file + ".tmp")
    tmp.write_text(str(server.server_address[1]))
    tmp.rename(args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
