"""The review page: the folder model, the server's file rules, and the page in a real browser
(headless Chromium driven by Playwright), down to what `select` makes of the folder afterwards."""

import http.client
import json
import os
import shutil
import sys

import numpy as np
import pytest
import yaml

from hawk.download.demo import make_demo_recordings
from hawk.extract import extract_class
from hawk.plot import plot_db
from hawk.db import SpecDB
from hawk.review import DroppedFolder, FieldQueueFolder, ImageFolder, QueueFolder, ReviewServer
from hawk.review.folder import ReviewError
from hawk.spectrogram import SpecSettings
from tests import procs
from tests.conftest import ROOT

ARTIFACTS = ROOT / "outputs" / "test-artifacts"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project folder with one class: recordings, its database and a curation folder of plots."""
    root = tmp_path_factory.mktemp("project")
    rec = root / "data/recordings/RIWH"
    rec.mkdir(parents=True)
    make_demo_recordings(rec, "whistle", 3, seed=4)
    extract_class(rec, root / "data/db/RIWH.db", root / "data/db/RIWH.report.csv", "Rising Whistler", "RIWH",
                  SpecSettings(), workers=1, show_progress=False)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["classes"] = {"RIWH": params["classes"]["RIWH"]}
    params["select"]["auto_keep"] = False
    params["select"]["progress"] = False
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


@pytest.fixture
def curation(project, tmp_path):
    """A fresh curation folder for each test."""
    folder = project / "data/curation/RIWH"
    shutil.rmtree(folder, ignore_errors=True)
    plot_db(project / "data/db/RIWH.db", folder, SpecSettings())
    return folder


@pytest.fixture
def server(project, curation):
    s = ReviewServer([ImageFolder("RIWH", curation, project / "data/recordings/RIWH")],
                     SpecSettings().sample_rate).start()
    yield s
    s.stop()


def _request(server, method, path, body=None, token=True, **headers):
    """One raw request, sent as written (no client-side clean-up of '..'): (status, headers, body)."""
    host, port = server.httpd.server_address[:2]
    conn = http.client.HTTPConnection(host, port)
    if token:
        headers.setdefault("X-Hawk-Token", server.token)
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
        headers.setdefault("Content-Type", "application/json")
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    return r.status, dict(r.getheaders()), r.read()


def _get(server, path, **kw):
    status, _, body = _request(server, "GET", path, **kw)
    return status, body


def _move(server, f, name, to, **kw):
    status, _, body = _request(server, "POST", "/api/move", {"f": f, "name": name, "to": to}, **kw)
    assert status == 200, body
    return json.loads(body)


def test_moves_are_atomic_idempotent_and_undoable(curation, project):
    folder = ImageFolder("RIWH", curation, project / "data/recordings/RIWH")
    first = folder.items()[0].name
    assert folder.move(first, "rejected").status == "rejected"
    assert folder.move(first, "rejected").status == "rejected"  # a second tab doing the same agrees
    assert (curation / "rejected" / first).exists() and not (curation / first).exists()
    assert folder.move(first, "kept").status == "kept" and (curation / first).exists()
    assert not list((curation / "rejected").iterdir())
    with pytest.raises(ReviewError, match="no such image"):
        folder.move("nope-1.00.jpeg", "rejected")
    with pytest.raises(ReviewError, match="bad move"):
        folder.move("../x-1.00.jpeg", "rejected")
    ro = ImageFolder("RIWH", curation, project / "data/recordings/RIWH", writable=False)
    with pytest.raises(ReviewError, match="read-only"):
        ro.move(first, "rejected")


def test_server_serves_only_the_images_it_lists(server, project, curation, tmp_path):
    name = sorted(p.name for p in curation.glob("*.jpeg"))[0]
    status, body = _get(server, f"/api/image?f=RIWH&name={name}")
    assert status == 200 and body[:2] == b"\xff\xd8"  # a JPEG
    secret = tmp_path / "secret.txt"
    secret.write_text("private")
    (curation / "escape-1.50.jpeg").symlink_to(secret)  # a link named like an image, leading out
    (curation / "README.txt").write_text("notes")
    try:
        for path in ["/files/curation/RIWH/" + name, "/files/db/RIWH.db", "/api/image?f=RIWH&name=../params.yaml",
                     "/api/image?f=RIWH&name=escape-1.50.jpeg", "/api/image?f=RIWH&name=README.txt",
                     "/api/image?f=RIWH&name=%2E%2E%2Fparams.yaml", f"/api/image?f=RIWH&name={secret}",
                     "/api/image?f=RIWH&name=..%5C..%5Cparams.yaml", "/api/image?f=RIWH&name=x%00.jpeg"]:
            status, body = _get(server, path)
            assert status in (403, 404), (path, status)
            assert b"private" not in body and b"classes" not in body
        assert _get(server, "/static/../server.py")[0] == 404
        # the listing skips the link (it used to break the whole state) and every other non-image
        names = [i["name"] for i in json.loads(_get(server, "/api/state?f=RIWH")[1])["items"]]
        assert name in names and "escape-1.50.jpeg" not in names and "README.txt" not in names
    finally:
        (curation / "escape-1.50.jpeg").unlink()
        (curation / "README.txt").unlink()


def test_every_reply_carries_the_security_headers(server):
    for path in ("/", "/static/review.js", "/api/state?f=RIWH", "/nope"):
        _, headers, _ = _request(server, "GET", path)
        assert headers["X-Content-Type-Options"] == "nosniff" and headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"], path


def test_the_printed_address_sets_the_token_cookie(server):
    status, headers, _ = _request(server, "GET", f"/?token={server.token}&f=RIWH", token=False)
    assert status == 303 and headers["Location"] == "/?f=RIWH"
    cookie = headers["Set-Cookie"]
    assert cookie.startswith(f"{server.cookie_name}={server.token};") and "SameSite=Strict" in cookie
    assert "HttpOnly" in cookie
    assert _get(server, "/api/state?f=RIWH", token=False, Cookie=f"{server.cookie_name}={server.token}")[0] == 200
    assert _request(server, "GET", "/?token=wrong", token=False)[0] == 403
    assert _get(server, "/", token=False)[0] == 403


def test_other_pages_cannot_drive_or_read_the_review(server, curation, caplog):
    """Each attack of a page from elsewhere (or a rebound host name) fails with a 4xx, moves nothing,
    and is logged in one line."""
    name = sorted(p.name for p in curation.glob("*.jpeg"))[0]
    move = json.dumps({"f": "RIWH", "name": name, "to": "rejected"})
    port = server.httpd.server_address[1]
    attacks = [
        # no token at all (what a cross-site page without the cookie sends)
        dict(method="POST", path="/api/move", body=move, token=False, **{"Content-Type": "application/json"}),
        # the token, but text/plain: what a no-cors fetch or a <form enctype="text/plain"> can send
        dict(method="POST", path="/api/move", body=move, **{"Content-Type": "text/plain"}),
        dict(method="POST", path="/api/move", body=move),  # no Content-Type
        # a page of another origin (another localhost port carries the same-site cookie)
        dict(method="POST", path="/api/move", body=move, Origin="http://evil.example",
             **{"Content-Type": "application/json"}),
        dict(method="POST", path="/api/move", body=move, Origin="http://localhost:1",
             **{"Content-Type": "application/json"}),
        dict(method="POST", path="/api/move", body=move, **{"Sec-Fetch-Site": "same-site",
                                                             "Content-Type": "application/json"}),
        # DNS rebinding: the attacker's name resolving to 127.0.0.1
        dict(method="POST", path="/api/move", body=move, Host=f"attacker.example:{port}",
             **{"Content-Type": "application/json"}),
        dict(method="GET", path="/api/state?f=RIWH", Host=f"attacker.example:{port}"),
        dict(method="GET", path=f"/api/image?f=RIWH&name={name}", Host=f"attacker.example:{port}"),
        dict(method="GET", path="/api/state?f=RIWH", token=False),
        dict(method="GET", path=f"/api/clip?f=RIWH&name={name}", token=False),
    ]
    with caplog.at_level("WARNING", logger="hawk.review.server"):
        for a in attacks:
            a = dict(a)
            status, _, _ = _request(server, a.pop("method"), a.pop("path"), a.pop("body", None), a.pop("token", True),
                                    **a)
            assert 400 <= status < 500, a
    assert (curation / name).exists() and not (curation / "rejected").exists()
    assert len([r for r in caplog.records if "refused" in r.getMessage()]) == len(attacks)


def test_a_move_takes_only_an_image_the_page_lists_and_bad_bodies_get_a_4xx(server, curation):
    (curation / "restored").mkdir(exist_ok=True)
    (curation / "README.txt").write_text("notes")
    try:
        for body in ([], None, "x", {"f": "RIWH"}, {"f": "RIWH", "name": 3, "to": "rejected"},
                     {"f": "RIWH", "name": "", "to": "rejected"}, {"f": "RIWH", "name": "a" * 300, "to": "rejected"},
                     {"f": "RIWH", "name": "restored", "to": "rejected"},
                     {"f": "RIWH", "name": "README.txt", "to": "rejected"},
                     {"f": "nope", "name": "x-1.50.jpeg", "to": "rejected"}):
            status, _, reply = _request(server, "POST", "/api/move", json.dumps(body),
                                        **{"Content-Type": "application/json"})
            assert 400 <= status < 500 and json.loads(reply)["error"], (body, status)
        for raw in (b"{not json", b"\xff\xfe"):
            assert _request(server, "POST", "/api/move", raw, **{"Content-Type": "application/json"})[0] == 400
        assert (curation / "restored").is_dir() and (curation / "README.txt").exists()
        assert not (curation / "rejected").exists()
    finally:
        (curation / "README.txt").unlink()


def test_a_port_in_use_or_out_of_range_is_one_line(server):
    from hawk.errors import HawkError

    for port in (server.httpd.server_address[1], 70000):
        with pytest.raises(HawkError, match="port"):
            ReviewServer([], 32000, port=port)


def test_clip_is_the_images_audio(server, curation):
    name = sorted(p.name for p in curation.glob("*.jpeg"))[1]
    status, body = _get(server, f"/api/clip?f=RIWH&name={name}")
    assert status == 200 and body[:4] == b"RIFF"
    import io

    import soundfile as sf

    audio, sr = sf.read(io.BytesIO(body))
    assert sr == SpecSettings().sample_rate and abs(len(audio) / sr - 3.0) < 0.01
    status, body = _get(server, f"/api/clip?f=RIWH&name={name}&long=1")
    audio, sr = sf.read(io.BytesIO(body))
    assert len(audio) / sr > 5  # context around the offset (clipped at the recording's start)


def _chromium():
    for path in (os.environ.get("HAWK_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if path and os.path.exists(path):
            return path
    return None


@pytest.fixture
def browser():
    why = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        why = "playwright is not installed (make install)"
    exe = _chromium()
    if exe is None:
        why = "no Chromium (apt-get install chromium, or set HAWK_CHROMIUM)"
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"CI must have a browser: {why}")
        pytest.skip(why)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, timeout=0, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required"])
        yield _NoDeadlines(b)
        b.close()


class _NoDeadlines:
    """The browser with Playwright's 30-s waits turned off: on a busy machine a page is slow, not
    wrong, and pytest-timeout bounds a hang."""

    def __init__(self, browser):
        self._browser = browser

    def new_context(self, **kw):
        context = self._browser.new_context(**kw)
        context.set_default_timeout(0)
        return context

    def new_page(self, **kw):
        page = self._browser.new_page(**kw)
        page.context.set_default_timeout(0)
        return page


def _counts(page):
    return page.locator("#counts").inner_text()


def test_curate_with_the_keyboard_in_a_browser(browser, server, curation, project):
    n = len(list(curation.glob("*.jpeg")))
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(server.url)
    page.wait_for_selector(".card")
    assert page.locator(".card").count() == n and _counts(page) == f"kept {n} · rejected 0"
    order = page.locator(".card").evaluate_all("cards => cards.map(c => c.dataset.name)")
    # play one match: the clip is fetched and the player runs
    with page.expect_response(lambda r: "/api/clip" in r.url) as resp:
        page.keyboard.press(" ")
    assert resp.value.status == 200 and resp.value.headers["content-type"] == "audio/wav"
    page.wait_for_function("() => { const a = document.getElementById('player'); return a.currentTime > 0 || a.ended; }")
    # reject three with the keyboard, undo one
    for _ in range(3):
        page.keyboard.press("x")
        page.wait_for_function(f"() => document.querySelectorAll('.card.rejected').length === {_ + 1}")
    page.keyboard.press("u")
    page.wait_for_function("() => document.querySelectorAll('.card.rejected').length === 2")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "review.png"))
    # a reload shows the truth on disk; so does a second tab
    page.reload()
    page.wait_for_selector(".card")
    assert _counts(page) == f"kept {n - 2} · rejected 2"
    assert sorted(p.name for p in (curation / "rejected").iterdir()) == sorted(order[:2])
    assert len(list(curation.glob("*.jpeg"))) == n - 2 and (curation / order[2]).exists()
    other = browser.new_page()
    other.goto(server.url)
    other.wait_for_selector(".card.rejected")
    assert _counts(other) == f"kept {n - 2} · rejected 2"
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("x")  # rejected in the first tab ...
    other.wait_for_function("() => document.querySelectorAll('.card.rejected').length === 3")
    page.keyboard.press("u")  # ... and undone: the second tab follows
    other.wait_for_function("() => document.querySelectorAll('.card.rejected').length === 2")
    # select trains on the kept images only
    r = procs.run([sys.executable, "-m", "stages.select", "--code", "RIWH"], cwd=project)
    assert r.returncode == 0, r.stderr
    import sqlite3

    with sqlite3.connect(project / "data/select/RIWH.db") as db:
        assert db.execute("SELECT COUNT(*) FROM Spectrogram").fetchone()[0] == n - 2
    report = (project / "data/select/RIWH.report.csv").read_text()
    assert not any(name in report for name in order[:2])  # rejected images are not even looked at


def test_state_api_lists_kept_and_rejected(server, curation):
    state = json.loads(_get(server, "/api/state?f=RIWH")[1])
    name = state["items"][0]["name"]
    after = _move(server, "RIWH", name, "rejected")
    assert after["rejected"] == 1 and after["kept"] == state["kept"] - 1
    item = next(i for i in after["items"] if i["name"] == name)
    assert item["status"] == "rejected" and item["url"] == f"/api/image?f=RIWH&name={name}"
    assert (curation / "rejected" / name).exists()
    assert _get(server, item["url"])[0] == 200  # a rejected image is still shown


def test_the_version_an_idle_page_polls_moves_with_every_change_on_disk(server, curation):
    def version():
        status, body = _get(server, "/api/version?f=RIWH")
        assert status == 200
        return json.loads(body)["version"]

    first = version()
    assert version() == first  # nothing changed, nothing to fetch
    names = [i["name"] for i in json.loads(_get(server, "/api/state?f=RIWH")[1])["items"]]
    _move(server, "RIWH", names[0], "rejected")  # another tab's verdict
    second = version()
    assert second != first
    (curation / names[1]).unlink()  # a person deleting an image by hand
    assert version() != second
    assert _get(server, "/api/version?f=RIWH", token=False)[0] == 403


@pytest.fixture
def dropped(project, curation):
    """Three images unattended curation dropped (a pipeline output), served beside nothing else."""
    folder = project / "data/dropped/RIWH"
    shutil.rmtree(folder, ignore_errors=True)
    plot_db(project / "data/db/RIWH.db", folder, SpecSettings(), num=3)
    server = ReviewServer([DroppedFolder("RIWH-dropped", folder, curation / "restored",
                                         project / "data/recordings/RIWH")],
                          SpecSettings().sample_rate).start()
    yield folder, curation / "restored", server
    server.stop()


def test_dropped_images_are_restored_into_the_persons_folder(dropped):
    """Restoring copies the image into data/curation/<CODE>/restored/, which select keeps; dropping it
    again deletes that copy only; the pipeline's folder is never written."""
    folder, restored, server = dropped
    state = json.loads(_get(server, "/api/state?f=RIWH-dropped")[1])
    assert state["labels"] == {"kept": "restored", "rejected": "dropped"}
    assert (state["kept"], state["rejected"]) == (0, 3)
    name = state["items"][0]["name"]
    assert state["items"][0]["url"] == f"/api/image?f=RIWH-dropped&name={name}"
    before = (folder / name).read_bytes()
    for to, n in (("kept", 1), ("kept", 1), ("rejected", 0), ("kept", 1)):
        assert _move(server, "RIWH-dropped", name, to)["kept"] == n
        assert (restored / name).exists() == (n == 1)
    assert (restored / name).read_bytes() == before and (folder / name).read_bytes() == before
    assert sorted(p.name for p in restored.iterdir()) == [name]  # no temp files left
    assert _get(server, f"/api/clip?f=RIWH-dropped&name={name}")[0] == 200


def test_restore_a_dropped_image_in_a_browser(browser, dropped):
    folder, restored, server = dropped
    page = browser.new_page()
    page.goto(server.url + "&f=RIWH-dropped")
    page.wait_for_selector(".card")
    assert _counts(page) == "restored 0 · dropped 3"
    first = page.locator(".card").first.get_attribute("data-name")
    page.keyboard.press("r")
    page.wait_for_function("() => document.querySelectorAll('.card.kept').length === 1")
    assert _counts(page) == "restored 1 · dropped 2" and (restored / first).is_file()
    page.keyboard.press("u")
    page.wait_for_function("() => document.querySelectorAll('.card.kept').length === 0")
    assert not (restored / first).exists() and len(list(folder.glob("*.jpeg"))) == 3


def test_a_page_of_another_local_origin_cannot_move_files_in_chromium(browser, server, curation):
    """The person has the review open (the cookie is set); a page served from another port of the same
    host (same site, so the SameSite cookie goes along) tries a no-cors fetch, a text/plain form, and a
    JSON fetch. Nothing moves."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    name = sorted(p.name for p in curation.glob("*.jpeg"))[0]
    target = server.base + "api/move"
    move = json.dumps({"f": "RIWH", "name": name, "to": "rejected"})
    attack = f"""<!doctype html><body>
<form id="f" method="POST" action="{target}" enctype="text/plain" target="sink">
<input name='{move[:-2]}' value='"}}'></form><iframe name="sink"></iframe>
<script>
const body = {json.dumps(move)};
Promise.allSettled([
  fetch("{target}", {{method: "POST", mode: "no-cors", credentials: "include", body,
                       headers: {{"Content-Type": "text/plain"}}}}),
  fetch("{target}", {{method: "POST", credentials: "include", body,
                       headers: {{"Content-Type": "application/json"}}}}),
]).then(() => {{ document.getElementById("f").submit(); setTimeout(() => document.title = "done", 1500); }});
</script></body>"""

    class Evil(BaseHTTPRequestHandler):
        def do_GET(self):
            body = attack.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    evil = ThreadingHTTPServer(("127.0.0.1", 0), Evil)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    try:
        context = browser.new_context()
        page = context.new_page()
        page.goto(server.url)
        page.wait_for_selector(".card")  # signed in: the cookie is in this browser
        assert any(c["name"] == server.cookie_name for c in context.cookies())
        seen = []
        page.on("request", lambda r: seen.append(r.method) if r.url.startswith(target) else None)
        page.goto(f"http://127.0.0.1:{evil.server_address[1]}/")
        page.wait_for_function("() => document.title === 'done'")
        assert seen.count("POST") >= 2  # the attacks were really sent
        assert (curation / name).exists() and not (curation / "rejected").exists()
        context.close()
    finally:
        evil.shutdown()
        evil.server_close()


def test_the_page_after_choosing_a_folder_ranks_badges_and_redraws_one_card(browser, project, curation):
    """Keys reach the grid after a folder is chosen in the list; each card shows its rank; drops carry
    the folder's own word ("dropped"); a verdict redraws its card only; Esc closes the long player."""
    drops = project / "data/dropped/RIWH"
    shutil.rmtree(drops, ignore_errors=True)
    plot_db(project / "data/db/RIWH.db", drops, SpecSettings(), num=3)
    server = ReviewServer([ImageFolder("RIWH", curation, project / "data/recordings/RIWH"),
                           DroppedFolder("RIWH-dropped", drops, curation / "restored", project / "data/recordings/RIWH")],
                          SpecSettings().sample_rate).start()
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(server.url)
        page.wait_for_selector(".card")
        n = page.locator(".card").count()
        assert page.locator(".card .rank").first.inner_text() == "#1"
        assert page.locator(".card .rank").nth(n - 1).inner_text() == f"#{n}"
        # a verdict redraws the one card: every other card is the same element as before
        page.evaluate("() => document.querySelectorAll('.card').forEach(c => { c.dataset.seen = '1'; })")
        page.keyboard.press("ArrowRight")
        page.keyboard.press("x")
        page.wait_for_function("() => document.querySelectorAll('.card.rejected').length === 1")
        assert page.locator(".card[data-seen='1']").count() == n - 1
        assert page.locator(".card.rejected").get_attribute("data-seen") is None
        badge = "el => getComputedStyle(el, '::after').content"
        assert page.locator(".card.rejected").evaluate(badge) == '"rejected"'
        # Esc closes the player of the whole recording
        page.keyboard.press("o")
        page.wait_for_selector("#long", state="visible")
        page.keyboard.press("Escape")
        page.wait_for_selector("#long", state="hidden")
        assert page.evaluate("() => document.getElementById('longplayer').paused")
        # the folder list hands the keys back to the grid
        page.select_option("#folder", "RIWH-dropped")
        page.wait_for_function("() => document.querySelectorAll('.card').length === 3")
        page.keyboard.press("ArrowRight")
        assert page.locator("#folder").input_value() == "RIWH-dropped"
        assert page.locator(".card.selected .rank").inner_text() == "#2"
        assert page.locator(".card.rejected").first.evaluate(badge) == '"dropped"'
        page.keyboard.press("r")
        page.wait_for_function("() => document.querySelectorAll('.card.kept').length === 1")
        restored = page.locator(".card.kept").get_attribute("data-name")
        assert restored == page.locator(".card.selected").get_attribute("data-name")
        assert (curation / "restored" / restored).is_file()
    finally:
        server.stop()


def test_an_empty_folder_says_what_fills_it_and_a_notice_says_why_verdicts_would_not_count(browser, project,
                                                                                         tmp_path):
    empty = tmp_path / "curation" / "RIWH"
    empty.mkdir(parents=True)
    server = ReviewServer([ImageFolder("RIWH", empty, project / "data/recordings/RIWH", hint="run curate first",
                                       notice="select.auto_keep is on")], SpecSettings().sample_rate).start()
    try:
        state = json.loads(_get(server, "/api/state?f=RIWH")[1])
        assert (state["hint"], state["notice"], state["items"]) == ("run curate first", "select.auto_keep is on", [])
        page = browser.new_page()
        page.goto(server.url)
        page.wait_for_selector("#empty", state="visible")
        assert page.locator("#empty").inner_text() == "run curate first"
        assert page.locator("#notice").inner_text() == "select.auto_keep is on"
        plot_db(project / "data/db/RIWH.db", empty, SpecSettings(), num=2)  # curate fills it: the page follows
        page.wait_for_function("() => document.querySelectorAll('.card').length === 2")
        assert page.locator("#empty").is_hidden() and page.locator("#notice").is_visible()
    finally:
        server.stop()


@pytest.fixture
def queue(project, curation):
    """A doubt queue of RIWH's windows (#1 a kept window the model doubts, #2 a drop the model calls yes,
    #3 a window another class scores high, then the margin), beside the drops page, served together."""
    from hawk.doubt import Candidate, rank_doubts, stored_spectrograms, write_queue
    from hawk.plot import write_dropped

    db = project / "data/db/RIWH.db"
    with SpecDB(db) as d:
        windows = [(f, o) for _, f, o in d.windows()][:6]
    pool = [Candidate(*windows[0], True, 0.80, None, "Noise", 0.1),
            Candidate(*windows[1], False, 0.95, None, "Noise", 0.1),
            Candidate(*windows[2], False, 0.30, None, "FACH", 0.9)] + \
        [Candidate(f, o, False, 0.4 + 0.02 * i, None, "Noise", 0.2) for i, (f, o) in enumerate(windows[3:])]
    folder, drops = project / "data/doubt/RIWH", project / "data/dropped/RIWH"
    write_queue(folder, rank_doubts(pool, "RIWH"), stored_spectrograms(db, windows, SpecSettings()), SpecSettings())
    write_dropped(drops, [(*windows[1], 0.1)], db, SpecSettings())
    (curation / f"{os.path.splitext(windows[1][0])[0]}-{windows[1][1]:.2f}.jpeg").unlink()  # a drop: not among the kept
    rec = project / "data/recordings/RIWH"
    server = ReviewServer([QueueFolder("RIWH-doubt", folder, curation, rec, "RIWH doubt queue"),
                           DroppedFolder("RIWH-dropped", drops, curation / "restored", rec)],
                          SpecSettings().sample_rate).start()
    yield windows, folder, server
    server.stop()


def test_the_doubt_queue_takes_birdnets_keys_autoplays_and_select_obeys_the_verdicts(browser, project, curation,
                                                                                     queue):
    """Up yes, down no, right skip, left undo; each verdict moves on and plays the next window's 3 s;
    the verdicts are copies in the curation folder that select obeys (a no beats a kept image); a yes
    on a drop shows as restored on the drops page, and un-restoring it there reopens it here."""
    windows, folder, server = queue
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(server.url + "&f=RIWH-doubt")
    page.wait_for_selector(".card")
    n = page.locator(".card").count()
    assert n == 6 and _counts(page) == f"yes 0 · no 0 · to review {n}"
    assert page.locator("#queuehelp").is_visible() and page.locator("#help").is_hidden()
    names = page.locator(".card").evaluate_all("cards => cards.map(c => c.dataset.name)")
    why = page.locator(".card .why")
    assert "kept for training, but the model scores RIWH 0.80" in why.first.inner_text()
    assert "dropped by curation, but the model scores RIWH 0.95" in why.nth(1).inner_text()
    assert "FACH scores 0.90" in why.nth(2).inner_text()
    canonical = [f"{os.path.splitext(f)[0]}-{o:.2f}.jpeg" for f, o in windows]
    with page.expect_request(lambda r: "/api/clip" in r.url and names[1] in r.url):  # autoplay of the next
        page.keyboard.press("ArrowDown")  # no to #1
    page.wait_for_function("() => document.querySelectorAll('.card.rejected').length === 1")
    assert (curation / "rejected" / canonical[0]).is_file()
    assert page.locator(".card.rejected").evaluate("el => getComputedStyle(el, '::after').content") == '"no"'
    assert page.locator(".card.selected").get_attribute("data-name") == names[1]
    page.keyboard.press("ArrowUp")  # yes to #2
    page.wait_for_function("() => document.querySelectorAll('.card.kept').length === 1")
    assert (curation / "restored" / canonical[1]).is_file()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)  # docs/review-queue.png
    page.screenshot(path=str(ARTIFACTS / "review-queue.png"))
    page.keyboard.press("ArrowRight")  # skip #3
    assert page.locator(".card.selected").get_attribute("data-name") == names[3]
    assert _counts(page) == f"yes 1 · no 1 · to review {n - 2}"
    page.keyboard.press("ArrowLeft")  # undo the yes
    page.wait_for_function("() => document.querySelectorAll('.card.kept').length === 0")
    assert not (curation / "restored" / canonical[1]).exists()
    assert page.locator(".card.selected").get_attribute("data-name") == names[1]
    page.keyboard.press("r")  # and yes again, with today's key, on to #3 ...
    page.wait_for_function("() => document.querySelectorAll('.card.kept').length === 1")
    assert page.locator(".card.selected").get_attribute("data-name") == names[2]
    page.keyboard.press("x")  # ... and no to it, with today's key
    page.wait_for_function("() => document.querySelectorAll('.card.rejected').length === 2")
    assert (curation / "rejected" / canonical[2]).is_file()
    # the drops page shows #2 restored; dropping it again there reopens it in the queue
    other = browser.new_page()
    other.goto(server.url + "&f=RIWH-dropped")
    other.wait_for_selector(".card.kept")
    assert _counts(other) == "restored 1 · dropped 0"
    other.keyboard.press("x")
    other.wait_for_function("() => document.querySelectorAll('.card.kept').length === 0")
    page.wait_for_function("() => document.querySelectorAll('.card.kept').length === 0")  # the poll follows
    assert not (curation / "restored" / canonical[1]).exists()
    assert _counts(page) == f"yes 0 · no 2 · to review {n - 2}"
    page.locator(".card").nth(1).click()
    page.keyboard.press("ArrowUp")
    page.wait_for_function("() => document.querySelectorAll('.card.kept').length === 1")
    # select obeys: #1's and #3's images are still among the kept images, but the no wins; #2 (a drop) is kept
    # when said yes to again
    r = procs.run([sys.executable, "-m", "stages.select", "--code", "RIWH"], cwd=project)
    assert r.returncode == 0, r.stderr
    assert "2 rejected by you" in r.stdout, r.stdout
    with SpecDB(project / "data/select/RIWH.db") as d:
        chosen = {(f, o) for _, f, o in d.windows()}
    assert windows[1] in chosen and windows[0] not in chosen and windows[2] not in chosen and windows[3] in chosen


def test_a_field_verdict_is_a_clip_of_the_window_or_its_image_and_back_to_open_removes_it(project, tmp_path):
    """The field queue's yes writes the window's 3 s (what pickle makes a training row of the class),
    its no the window's image and 3 s in rejected/; taking either back deletes it; a queue row naming
    a file outside the recordings' folder is never read."""
    import soundfile as sf

    from hawk.doubt import Candidate, rank_field, stored_spectrograms, write_queue

    db = project / "data/db/RIWH.db"
    with SpecDB(db) as d:
        windows = [(f, o) for _, f, o in d.windows()][:3]
    root = tmp_path / "my recordings"  # infer.input: the user's folders of field recordings
    (root / "site1").mkdir(parents=True)
    shutil.copy(project / "data/recordings/RIWH" / windows[0][0], root / "site1" / windows[0][0])
    shutil.copy(project / "data/recordings/RIWH" / windows[0][0], tmp_path / "outside.m4a")
    pool = [Candidate(f"site1/{f}", o, False, s, None, "Noise", 0.0) for (f, o), s in zip(windows, (0.9, 0.5, 0.1))]
    queue = tmp_path / "field_queue/RIWH"
    specs = ((("site1/" + f, o), x) for (f, o), x in stored_spectrograms(db, windows, SpecSettings()))
    write_queue(queue, rank_field(pool, "RIWH"), specs, SpecSettings())
    clips = tmp_path / "field/RIWH"
    sr = SpecSettings().sample_rate
    folder = FieldQueueFolder("RIWH-field", queue, clips, root, sr, 3.0)
    items = folder.items()
    assert [i.status for i in items] == ["open"] * 3 and "sure of RIWH" in items[0].reason
    first = items[0]
    assert folder.recording_for(first.stem) == (root / "site1" / windows[0][0]).resolve()
    assert folder.move(first.name, "kept").status == "kept"
    (clip,) = clips.glob("*.wav")
    assert clip.name == f"{first.stem}-{first.offset:.2f}.wav"
    audio, rate = sf.read(clip)
    assert rate == sr and len(audio) == 3 * sr and np.abs(audio).max() > 0
    assert folder.move(first.name, "rejected").status == "rejected"
    assert not clip.exists() and (clips / "rejected" / f"{first.stem}-{first.offset:.2f}.jpeg").is_file()
    no_audio, _ = sf.read(clips / "rejected" / clip.name)  # the head's negative (hawk.negatives)
    assert np.array_equal(no_audio, audio)
    assert folder.move(first.name, "open").status == "open"
    assert not any(clips.rglob("*.*"))
    # a queue that names a file outside the folder: it exists, but is never read
    text = (queue / "queue.csv").read_text()
    (queue / "queue.csv").write_text(text.replace(f"site1/{windows[0][0]}", "../outside.m4a"))
    assert (root / "../outside.m4a").is_file() and folder.recording_for("outside") is None
