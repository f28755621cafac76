"""The review page's HTTP server: the page, a small JSON API, images and audio clips, on 127.0.0.1 only.

Routes: ``/`` the page; ``/static/<file>`` its script and style (shipped in the package);
``/api/folders``; ``/api/state?f=KEY``; ``POST /api/move`` (``{"f", "name", "to"}``);
``/api/clip?f=KEY&name=IMAGE[&long=1]`` (WAV of the image's 3 s, or 15 s around it); ``/files/<path>``
(files under the data folder only: ``..``, absolute paths and symlinks leading out are refused, 403).
"""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import numpy as np
import soundfile as sf

from hawk.audio import AudioError, read_clip
from hawk.review.folder import ImageFolder, Item, ReviewError

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
_STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8"}
_FILE_TYPES = {".jpeg": "image/jpeg", ".jpg": "image/jpeg", ".png": "image/png", ".html": "text/html; charset=utf-8",
               ".csv": "text/csv; charset=utf-8", ".txt": "text/plain; charset=utf-8"}
LONG_BEFORE, LONG_AFTER = 6.0, 9.0  # seconds of context around an image's offset for "open recording"


def safe_file(root: Path, rel: str) -> Path | None:
    """``root/rel`` when it is a file inside ``root`` (after following symlinks), else None."""
    if not rel or rel.startswith(("/", "\\")) or "\\" in rel or "\0" in rel or ".." in rel.split("/"):
        return None
    root = root.resolve()
    path = (root / rel).resolve()
    return path if path.is_relative_to(root) and path.is_file() else None


class ReviewServer:
    """Serves ``folders`` (keyed by :attr:`ImageFolder.key`) and files under ``data_root``."""

    def __init__(self, folders: Iterable[ImageFolder], data_root: Path, sample_rate: int,
                 segment_len: float = 3.0, host: str = "127.0.0.1", port: int = 0):
        self.folders = {f.key: f for f in folders}
        self.data_root = Path(data_root).resolve()
        self.sample_rate, self.segment_len = sample_rate, segment_len
        self.httpd = ThreadingHTTPServer((host, port), _handler(self))
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/"

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
            item["url"] = f"/files/{self._rel(folder.file_of(Item(**item)))}"
        return state

    def _rel(self, path: Path) -> str:
        return path.resolve().relative_to(self.data_root).as_posix()

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
            url = urlparse(self.path)
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            try:
                if url.path in ("/", "/index.html"):
                    return self._static("index.html")
                if url.path.startswith("/static/"):
                    return self._static(url.path[len("/static/"):])
                if url.path == "/api/folders":
                    return self._json([{"key": f.key, "title": f.title, "writable": f.writable}
                                       for f in app.folders.values()])
                if url.path == "/api/state":
                    return self._json(app.state(self._key(q)))
                if url.path == "/api/clip":
                    body = app.clip(self._key(q), q.get("name", ""), q.get("long") == "1")
                    return self._send(HTTPStatus.OK, body, "audio/wav")
                if url.path.startswith("/files/"):
                    return self._file(unquote(url.path[len("/files/"):]))
                self._error(HTTPStatus.NOT_FOUND, "no such page")
            except (ReviewError, AudioError) as e:
                self._error(HTTPStatus.NOT_FOUND, str(e))
            except KeyError as e:
                self._error(HTTPStatus.NOT_FOUND, f"unknown folder {e}")

        def do_POST(self) -> None:
            if urlparse(self.path).path != "/api/move":
                return self._error(HTTPStatus.NOT_FOUND, "no such action")
            try:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(min(length, 1 << 16)) or b"{}")
                folder = app.folders[self._key(body)]
                folder.move(str(body.get("name", "")), str(body.get("to", "")))
                self._json(app.state(folder.key))
            except (ValueError, KeyError) as e:
                self._error(HTTPStatus.BAD_REQUEST, f"bad request: {e}")
            except ReviewError as e:
                self._error(HTTPStatus.FORBIDDEN if "read-only" in str(e) else HTTPStatus.NOT_FOUND, str(e))

        def _key(self, q: dict) -> str:
            key = str(q.get("f") or next(iter(app.folders)))
            if key not in app.folders:
                raise KeyError(key)
            return key

        def _static(self, name: str) -> None:
            path = STATIC / name
            if "/" in name or path.suffix not in _STATIC_TYPES or not path.is_file():
                return self._error(HTTPStatus.NOT_FOUND, "no such file")
            self._send(HTTPStatus.OK, path.read_bytes(), _STATIC_TYPES[path.suffix])

        def _file(self, rel: str) -> None:
            path = safe_file(app.data_root, rel)
            if path is None:
                return self._error(HTTPStatus.FORBIDDEN, "only files inside the data folder are served")
            ctype = _FILE_TYPES.get(path.suffix.lower(), "application/octet-stream")
            self._send(HTTPStatus.OK, path.read_bytes(), ctype, "private, max-age=300")  # images do not change

        def _json(self, data: object) -> None:
            self._send(HTTPStatus.OK, json.dumps(data).encode(), "application/json")

        def _error(self, status: HTTPStatus, message: str) -> None:
            self._send(status, json.dumps({"error": message}).encode(), "application/json")

        def _send(self, status: HTTPStatus, body: bytes, ctype: str, cache: str = "no-store") -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", cache)  # state is never cached: the folder on disk is the truth
            self.end_headers()
            self.wfile.write(body)

    return Handler
