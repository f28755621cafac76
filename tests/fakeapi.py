"""A local stand-in for Xeno-canto v3 and iNaturalist v1, over real HTTP on loopback.

It serves the documented JSON shapes (tests/data/*.json) with paging, and audio bytes of real files.
Faults are scripted per path: a list of actions consumed one per request (an HTTP status, "timeout",
"badjson", "truncate", "html", "drop"), after which the path behaves normally.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

DATA = Path(__file__).parent / "data"
KEY = "test-key-123"


class FakeAPI:
    def __init__(self, audio: dict[str, bytes]):
        self.audio = audio  # path under /audio/ -> bytes
        self.faults: dict[str, list] = defaultdict(list)
        self.inat_max_per_page = 200  # iNaturalist caps per_page; tests lower it to see hawk page on
        self.inat_extra: list[dict] = []  # more observations for paging tests
        self.log: list[tuple[float, str]] = []  # (time, path with query)
        self.xc_pages = self._xc_pages()
        self.inat_obs = self._inat_observations()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeAPI":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def requests_to(self, prefix: str) -> list[str]:
        return [p for _, p in self.log if p.startswith(prefix)]

    # --- data ----------------------------------------------------------------------------------
    def _xc_pages(self) -> list[list[dict]]:
        sample = json.loads((DATA / "xeno-canto-v3-page1.json").read_text())
        page1 = copy.deepcopy(sample["recordings"])  # 1072882 (by-nc-sa, mp3), 998877 (by-nc-nd, wav)
        page1[0]["file"] = "{base}/audio/xc1072882.mp3"
        page1[1]["file"] = "{base}/audio/xc998877.wav"
        restricted = dict(copy.deepcopy(page1[0]), id="555001", file="", **{"file-name": ""})
        duplicate = copy.deepcopy(page1[0])  # same id again on page 2
        extra = dict(copy.deepcopy(page1[0]), id="555002", file="{base}/audio/xc555002.flac",
                     lic="//creativecommons.org/licenses/by/4.0/", q="B", **{"file-name": "XC555002-x.flac"})
        low_q = dict(copy.deepcopy(extra), id="555003", q="E")
        return [page1, [restricted, duplicate, extra, low_q]]

    def _inat_observations(self) -> list[dict]:
        sample = json.loads((DATA / "inat-v1-observations.json").read_text())
        obs = copy.deepcopy(sample["results"])
        for o in obs:
            for s in o["sounds"]:
                ext = s["file_url"].split("?")[0].rsplit(".", 1)[1]
                s["file_url"] = f"{{base}}/audio/n{s['id']}.{ext}?123"
        copes = copy.deepcopy(obs[0])
        copes["id"] = 84690000
        copes["taxon"]["name"] = "Dryophytes chrysoscelis"
        copes["sounds"][0]["id"] = 263300
        return sorted(obs + [copes], key=lambda o: o["id"])

    # --- HTTP ----------------------------------------------------------------------------------
    def _handler(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                api.log.append((time.monotonic(), self.path))
                url = urlparse(self.path)
                q = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
                fault_key = url.path + (f"?page={q['page']}" if "page" in q else "")
                for key in (fault_key, url.path):
                    if api.faults.get(key):
                        action = api.faults[key].pop(0)
                        if action == "timeout":
                            time.sleep(1.5)
                            return self._send(200, b"{}")
                        if action == "html":  # an error page served as if it were the file
                            return self._send(200, b"<!DOCTYPE html><html><body>Maintenance</body></html>",
                                              "text/html; charset=utf-8")
                        if action == "drop":  # the server went away: the connection closes unanswered
                            self.close_connection = True
                            return
                        if action == "badjson":
                            return self._send(200, b"{not json", "application/json")
                        if action == "truncate":
                            body = api.audio[url.path.rsplit("/", 1)[1]]
                            self.send_response(200)
                            self.send_header("Content-Length", str(len(body)))
                            self.end_headers()
                            self.wfile.write(body[: len(body) // 2])
                            return
                        return self._send(int(action), json.dumps({"error": "fault", "message": "scripted"}).encode(),
                                          "application/json", {"Retry-After": "0"})
                if url.path == "/api/3/recordings":
                    return self._xc(q)
                if url.path == "/v1/observations":
                    return self._inat(q)
                if url.path.startswith("/audio/"):
                    body = api.audio.get(url.path.rsplit("/", 1)[1])
                    return self._send(200, body, "audio/mpeg") if body else self._send(404, b"not found")
                self._send(404, b"not found")

            def _xc(self, q: dict) -> None:
                if q.get("key") != KEY:
                    body = {"error": "Unauthorized", "message": "Missing or invalid 'key' parameter"}
                    return self._send(401, json.dumps(body).encode(), "application/json")
                page = int(q.get("page", 1))
                pages = api.xc_pages if "nosuch" not in q.get("query", "") else []  # a query that matches nothing
                recs = pages[page - 1] if 1 <= page <= len(pages) else []
                body = {"numRecordings": str(sum(map(len, pages))), "numSpecies": str(min(1, len(pages))),
                        "page": page, "numPages": max(1, len(pages)) if pages else 0, "recordings": recs}
                self._send(200, json.dumps(body).replace("{base}", api.url).encode(), "application/json")

            def _inat(self, q: dict) -> None:
                above = int(q.get("id_above", 0))
                per_page = min(int(q.get("per_page", 30)), api.inat_max_per_page)
                if q.get("taxon_name", "").lower() != "turdus migratorius":  # a mistyped taxon matches nothing
                    return self._send(200, json.dumps({"total_results": 0, "page": 1, "per_page": per_page,
                                                       "results": []}).encode(), "application/json")
                matching = sorted((o for o in api.inat_obs + api.inat_extra if o["id"] > above), key=lambda o: o["id"])
                body = {"total_results": len(matching), "page": 1, "per_page": per_page, "results": matching[:per_page]}
                self._send(200, json.dumps(body).replace("{base}", api.url).encode(), "application/json")

            def _send(self, status: int, body: bytes, ctype: str = "text/plain", headers: dict | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

        return Handler
