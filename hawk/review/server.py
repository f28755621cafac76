"""The review page's HTTP server: the page, a small JSON API, images and audio clips, on 127.0.0.1 only.

Routes: ``/`` the page; ``/static/<file>`` its script and style (shipped in the package);
``/api/folders``; ``/api/state?f=KEY``; ``/api/version?f=KEY`` (changes whenever the folder does); ``POST /api/move`` (``{"f", "name", "to"}``);
``/api/clip?f=KEY&name=IMAGE[&long=1]`` (WAV of the image's 3 s, or 15 s around it);
``/api/image?f=KEY&name=IMAGE`` (an image the folder lists, and nothing else).

Other web pages open in the same browser must not be able to drive it, so it does what Jupyter does:
- a per-launch token, in the printed URL; opening that URL sets it as a cookie (``SameSite=Strict``,
  ``HttpOnly``) and every API call, image and clip needs the cookie or an ``X-Hawk-Token`` header;
- a request whose ``Host`` is not this server's own address (DNS rebinding), or whose ``Origin`` or
  ``Sec-Fetch-Site`` says it comes from another site or port, is refused;
- a move must be ``application/json`` (a form or a ``no-cors`` fetch cannot send that) and name an
  image the folder lists; every reply carries nosniff, frame and content-security headers.
Every refused request is a 4xx with a one-line log.
"""

from __future__ import annotations

import hmac
import io
import json
import logging
import secrets
import threading
from collections.abc import Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse

import numpy as np
import soundfile as sf

from hawk.audio import AudioError, read_clip
from hawk.errors import HawkError
from hawk.review.folder import ImageFolder, Item, ReviewError

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
_STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8"}
_IMAGE_TYPES = {".jpeg": "image/jpeg", ".jpg": "image/jpeg", ".png": "image/png"}
LONG_BEFORE, LONG_AFTER = 6.0, 9.0  # seconds of context around an image's offset for "open recording"
MAX_BODY = 1 << 14  # a move is a few dozen bytes
MAX_NAME = 255  # longest file name a file system takes
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; media-src 'self'; object-src 'none'; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}


class Refused(Exception):
    """A request this server will not answer: its status and a one-line reason."""

    def __init__(self, status: HTTPStatus, reason: str):
        super().__init__(reason)
        self.status = status


class ReviewServer:
    """Serves ``folders`` (keyed by :attr:`ImageFolder.key`): their listings, images and clips."""

    def __init__(self, folders: Iterable[ImageFolder], sample_rate: int, segment_len: float = 3.0,
                 host: str = "127.0.0.1", port: int = 0, token: str | None = None):
        self.folders = {f.key: f for f in folders}
        self.sample_rate, self.segment_len = sample_rate, segment_len
        self.token = token or secrets.token_urlsafe(32)
        if not 0 <= port <= 65535:
            raise HawkError(f"--port {port}: a port is a number from 1 to 65535 (0: any free one)")
        try:
            self.httpd = ThreadingHTTPServer((host, port), _handler(self))
        except OSError as e:
            raise HawkError(f"cannot listen on {host}:{port}: {e.strerror or e} (is another review running "
                            "there? leave out --port to take a free one)") from e
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/"

    @property
    def url(self) -> str:
        """The address to open: it carries the token, which the page then keeps as a cookie."""
        return f"{self.base}?token={self.token}"

    @property
    def cookie_name(self) -> str:
        return f"hawk-review-{self.httpd.server_address[1]}"  # cookies ignore ports: one name per server

    def allowed_hosts(self) -> set[str]:
        port = self.httpd.server_address[1]
        return {f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"}

    def start(self) -> "ReviewServer":
        """Serve in a background thread (tests); :meth:`serve_forever` blocks (the stage)."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def state(self, key: str) -> dict:
        folder = self.folders[key]
        state = folder.state()
        for item in state["items"]:
            item["url"] = "/api/image?" + urlencode({"f": key, "name": item["name"]})
        return state

    def image(self, key: str, name: str) -> tuple[bytes, str]:
        """The bytes and type of an image the folder lists (a plain file inside it, never a link)."""
        folder = self.folders[key]
        item = next((i for i in folder.items() if i.name == name), None)
        if item is None:
            raise ReviewError(f"{name}: no such image")
        return folder.file_of(item).read_bytes(), _IMAGE_TYPES[Path(name).suffix.lower()]

    def clip(self, key: str, name: str, long: bool) -> bytes:
        folder = self.folders[key]
        item = next((i for i in folder.items() if i.name == name), None)
        if item is None:
            raise ReviewError(f"{name}: no such image")
        rec = folder.recording_for(item.stem)
        if rec is None:
            raise ReviewError(f"{item.stem}: no single recording of that name in {folder.recordings}")
        start, seconds = item.offset, self.segment_len
        if long:
            start, seconds = max(0.0, item.offset - LONG_BEFORE), LONG_BEFORE + self.segment_len + LONG_AFTER
        audio = read_clip(rec, self.sample_rate, start, seconds)
        peak = float(np.abs(audio).max()) if len(audio) else 0.0
        buf = io.BytesIO()
        sf.write(buf, audio / peak * 0.9 if peak > 0 else audio, self.sample_rate, format="WAV", subtype="PCM_16")
        return buf.getvalue()


def _handler(app: ReviewServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt: str, *args) -> None:
            log.debug("%s " + fmt, self.address_string(), *args)

        def do_GET(self) -> None:
            self._serve(self._get)

        def do_POST(self) -> None:
            self._serve(self._post)

        def _serve(self, answer) -> None:
            try:
                self._check_site()
                answer(urlparse(self.path))
            except Refused as e:
                self._refuse(e.status, str(e))
            except (ReviewError, AudioError) as e:
                self._refuse(HTTPStatus.FORBIDDEN if "read-only" in str(e) else HTTPStatus.NOT_FOUND, str(e))
            except (BrokenPipeError, ConnectionResetError):  # the tab closed before the answer
                log.debug("review: %s %s: the client went away", self.command, self.path)

        def _check_site(self) -> None:
            """Only this server's own address and page: no rebound Host, no other site's page."""
            if self.headers.get("Host", "") not in app.allowed_hosts():
                raise Refused(HTTPStatus.FORBIDDEN, f"foreign Host {self.headers.get('Host')!r}")
            origin = self.headers.get("Origin")
            if origin is not None and origin.rstrip("/") not in {f"http://{h}" for h in app.allowed_hosts()}:
                raise Refused(HTTPStatus.FORBIDDEN, f"foreign Origin {origin!r}")
            site = self.headers.get("Sec-Fetch-Site")
            if site is not None and site not in ("same-origin", "none"):
                raise Refused(HTTPStatus.FORBIDDEN, f"request from another site (Sec-Fetch-Site: {site})")

        def _authorised(self) -> bool:
            given = self.headers.get("X-Hawk-Token") or self._cookie()
            return bool(given) and hmac.compare_digest(given.encode(), app.token.encode())

        def _cookie(self) -> str:
            for part in self.headers.get("Cookie", "").split(";"):
                name, _, value = part.strip().partition("=")
                if name == app.cookie_name:
                    return value
            return ""

        def _require_token(self) -> None:
            if not self._authorised():
                raise Refused(HTTPStatus.FORBIDDEN, "missing or wrong token: open the address the review "
                                                    "command printed")

        def _get(self, url) -> None:
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            if url.path in ("/", "/index.html"):
                token = q.pop("token", None)
                if token is not None:
                    if not hmac.compare_digest(token.encode(), app.token.encode()):
                        raise Refused(HTTPStatus.FORBIDDEN, "wrong token: open the address the review "
                                                            "command printed")
                    return self._redirect_with_cookie("/" + (f"?{urlencode(q)}" if q else ""))
                self._require_token()
                return self._static("index.html")
            if url.path.startswith("/static/"):  # the page's own script and style: no data in them
                return self._static(url.path[len("/static/"):])
            self._require_token()
            if url.path == "/api/folders":
                return self._json([{"key": f.key, "title": f.title, "writable": f.writable}
                                   for f in app.folders.values()])
            if url.path == "/api/state":
                return self._json(app.state(self._key(q)))
            if url.path == "/api/version":
                return self._json({"version": app.folders[self._key(q)].version()})
            if url.path == "/api/image":
                body, ctype = app.image(self._key(q), q.get("name", ""))
                return self._send(HTTPStatus.OK, body, ctype, "private, max-age=300")  # images do not change
            if url.path == "/api/clip":
                body = app.clip(self._key(q), q.get("name", ""), q.get("long") == "1")
                return self._send(HTTPStatus.OK, body, "audio/wav")
            raise Refused(HTTPStatus.NOT_FOUND, "no such page")

        def _post(self, url) -> None:
            if url.path != "/api/move":
                raise Refused(HTTPStatus.NOT_FOUND, "no such action")
            self._require_token()
            ctype = self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
            if ctype != "application/json":
                raise Refused(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"a move is application/json, not {ctype!r}")
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                raise Refused(HTTPStatus.BAD_REQUEST, "bad Content-Length") from None
            if not 0 < length <= MAX_BODY:
                raise Refused(HTTPStatus.BAD_REQUEST, f"a move's body is 1 to {MAX_BODY} bytes, got {length}")
            try:
                body = json.loads(self.rfile.read(length))
            except (ValueError, UnicodeDecodeError):
                raise Refused(HTTPStatus.BAD_REQUEST, "the body is not JSON") from None
            if not isinstance(body, dict) or not all(isinstance(body.get(k), str) for k in ("f", "name", "to")):
                raise Refused(HTTPStatus.BAD_REQUEST, 'a move is {"f": folder, "name": image, "to": state}, '
                                                      "all texts")
            if not 0 < len(body["name"]) <= MAX_NAME:
                raise Refused(HTTPStatus.BAD_REQUEST, f"an image name is 1 to {MAX_NAME} characters")
            folder = app.folders[self._key(body)]
            folder.move(body["name"], body["to"])
            self._json(app.state(folder.key))

        def _key(self, q: dict) -> str:
            key = str(q.get("f") or next(iter(app.folders)))
            if key not in app.folders:
                raise Refused(HTTPStatus.NOT_FOUND, f"unknown folder {key!r}")
            return key

        def _static(self, name: str) -> None:
            path = STATIC / name
            if "/" in name or path.suffix not in _STATIC_TYPES or not path.is_file():
                raise Refused(HTTPStatus.NOT_FOUND, "no such file")
            self._send(HTTPStatus.OK, path.read_bytes(), _STATIC_TYPES[path.suffix])

        def _redirect_with_cookie(self, location: str) -> None:
            self.send_response(HTTPStatus.SEE_OTHER)
            self.send_header("Location", location)
            self.send_header("Set-Cookie", f"{app.cookie_name}={app.token}; Path=/; HttpOnly; SameSite=Strict")
            self.send_header("Content-Length", "0")
            self._common_headers("no-store")
            self.end_headers()

        def _json(self, data: object) -> None:
            self._send(HTTPStatus.OK, json.dumps(data).encode(), "application/json")

        def _refuse(self, status: HTTPStatus, message: str) -> None:
            log.warning("review: refused %s %s: %d %s", self.command, self.path[:200], status, message)
            try:
                self._send(status, json.dumps({"error": message}).encode(), "application/json")
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _send(self, status: HTTPStatus, body: bytes, ctype: str, cache: str = "no-store") -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self._common_headers(cache)  # state is never cached: the folder on disk is the truth
            self.end_headers()
            self.wfile.write(body)

        def _common_headers(self, cache: str) -> None:
            self.send_header("Cache-Control", cache)
            for k, v in SECURITY_HEADERS.items():
                self.send_header(k, v)

    return Handler
