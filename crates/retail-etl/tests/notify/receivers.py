"""The notification channels' real peers for tests/notifications.rs, in one process.

usage: receivers.py <dir> <http_port> <smtp_port> <webhook_secret>

- An HTTP receiver for the webhook channel. POST /refuse always answers 400. POST /hook answers
  503 while <dir>/fail_all exists, else 503 to every delivery's first attempt
  (Retail-Delivery-Attempt: 1) and 200 to later ones. Each request is a line of
  <dir>/webhook.log: "<path> <status> <Idempotency-Key> <attempt> <signature and body ok>".
- An SMTP server (aiosmtpd) for the email channel: the first time a Message-ID comes it answers
  451 (try later), then 250. Lines of <dir>/smtp.log: "deferred|accepted <Message-ID>".

Writes <dir>/ready once both listen; runs until killed.
"""

import hashlib
import hmac
import json
import os
import sys
import threading
import time
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

DIR, HTTP_PORT, SMTP_PORT, SECRET = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].encode()
LOCK = threading.Lock()
SEEN_MAIL = set()


def log(name, line):
    with LOCK, open(os.path.join(DIR, name), "a") as f:
        f.write(line + "\n")


class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        delivery = self.headers.get("Idempotency-Key", "")
        attempt = self.headers.get("Retail-Delivery-Attempt", "")
        parts = dict(p.split("=", 1) for p in self.headers.get("Retail-Signature", "").split(",") if "=" in p)
        want = hmac.new(SECRET, parts.get("t", "").encode() + b"." + body, hashlib.sha256).hexdigest()
        try:
            body_ok = json.loads(body).get("delivery_id") == delivery
        except ValueError:
            body_ok = False
        ok = hmac.compare_digest(want, parts.get("v1", "")) and body_ok
        if self.path == "/refuse":
            status = 400
        elif os.path.exists(os.path.join(DIR, "fail_all")) or attempt == "1":
            status = 503
        else:
            status = 200
        log("webhook.log", f"{self.path} {status} {delivery} {attempt} {ok}")
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


class Mail:
    async def handle_DATA(self, server, session, envelope):
        mid = message_from_bytes(envelope.content).get("Message-ID", "").strip()
        with LOCK:
            first = mid not in SEEN_MAIL
            SEEN_MAIL.add(mid)
        if first:
            log("smtp.log", f"deferred {mid}")
            return "451 4.3.0 try again later"
        log("smtp.log", f"accepted {mid}")
        return "250 OK"


http = ThreadingHTTPServer(("127.0.0.1", HTTP_PORT), Hook)
threading.Thread(target=http.serve_forever, daemon=True).start()
smtp = Controller(Mail(), hostname="127.0.0.1", port=SMTP_PORT)
smtp.start()
open(os.path.join(DIR, "ready"), "w").close()
while True:
    time.sleep(3600)
