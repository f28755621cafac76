import logging

import pytest

from hawk.audio import read_mono
from hawk.classes import parse_classes
from hawk.download.http import AuthError, PoliteSession
from hawk.download.run import DownloadOptions, download_class
from hawk.fsutil import safe_name
from hawk.manifest import read_manifest
from tests.fakeapi import KEY, FakeAPI

ENV = {"XC_API_KEY": KEY}


def opts(api, **kw):
    return DownloadOptions(xc_base_url=api.url, inat_base_url=api.url, inat_per_page=2, min_interval=0,
                           retries=3, backoff=0.01, timeout=0.5, xc_qualities=("A", "B", "C", "D"), **kw)


def spec(**kw):
    entry = {"name": "American Robin", "sources": [{"kind": "xeno_canto", "query": 'sp:"turdus migratorius"'},
                                                    {"kind": "inat", "taxon": "Turdus migratorius"}], **kw}
    return parse_classes({"AMRO": entry})[0]


@pytest.fixture
def api(audio_bytes):
    with FakeAPI(audio_bytes) as a:
        yield a


def test_full_download_with_faults(api, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    api.faults["/api/3/recordings?page=2"] = [500, 429]
    api.faults["/v1/observations"] = ["timeout"]
    api.faults["/audio/n263113.m4a"] = ["truncate"]
    out = tmp_path / "AMRO"
    res = download_class(spec(), out, opts(api), env=ENV, show_progress=False)
    files = sorted(p.name for p in out.iterdir() if not p.name.endswith(".csv"))
    assert files == ["N263113.m4a", "N263200.wav", "N263201.mp3", "XC1072882.mp3", "XC555002.flac"]
    for f in files:  # every file is complete, real audio
        assert len(read_mono(out / f, 16000)) > 16000
    reasons = dict(res.skipped)
    assert "licence by-nc-nd excluded" in reasons["XC998877"]
    assert reasons["XC555001"].startswith("restricted")
    assert "duplicate id" in reasons["XC1072882"]
    assert "quality E" in reasons["XC555003"]
    assert "Dryophytes chrysoscelis" in reasons["observation 84690000"]
    m = read_manifest(out / "manifest.csv")
    assert m["XC1072882.mp3"]["license"] == "https://creativecommons.org/licenses/by-nc-sa/4.0/"
    assert m["XC1072882.mp3"]["recordist"] == "Jane Doe" and m["XC1072882.mp3"]["duration"] == "42"
    assert m["XC1072882.mp3"]["url"] == "https://xeno-canto.org/1072882"
    assert m["N263200.wav"]["url"] == "https://www.inaturalist.org/observations/84681999"
    assert m["N263200.wav"]["license"] == "cc0" and m["N263200.wav"]["species"] == "Turdus migratorius"
    assert all(r["downloaded"] for r in m.values())
    assert "263113,https://www.inaturalist.org/observations/84681407" in (out / "inat.csv").read_text()
    assert "XC998877" in (out / "download_report.csv").read_text()
    # iNaturalist was paged by id_above, never by page number
    inat = api.requests_to("/v1/observations")
    assert any("id_above=84681999" in p for p in inat) and not any(("&page=" in p or "?page=" in p) for p in inat)
    # the key went to the server but never into a log or a file
    assert api.requests_to("/api/3/recordings")
    assert KEY not in caplog.text
    assert not any(KEY in p.read_text(errors="ignore") for p in out.glob("*.csv"))
    assert not list(out.glob(".*part"))


def test_resume_fetches_nothing_twice(api, tmp_path):
    out = tmp_path / "AMRO"
    download_class(spec(), out, opts(api), env=ENV, show_progress=False)
    before = len(api.requests_to("/audio/"))
    res = download_class(spec(), out, opts(api), env=ENV, show_progress=False)
    assert len(api.requests_to("/audio/")) == before
    assert res.fetched == 0 and res.already_there == 5


def test_cap_per_class(api, tmp_path):
    res = download_class(spec(max_recordings=2), tmp_path / "A", opts(api), env=ENV, show_progress=False)
    assert res.total == 2 and len(list((tmp_path / "A").glob("XC*"))) == 2


def test_one_bad_file_does_not_stop_the_rest(api, tmp_path):
    api.faults["/audio/xc555002.flac"] = [500] * 10
    res = download_class(spec(), tmp_path / "A", opts(api), env=ENV, show_progress=False)
    assert "download failed" in dict(res.skipped)["XC555002"] and res.fetched == 4


def test_malformed_json_stops_listing_keeps_earlier_pages(api, tmp_path):
    api.faults["/api/3/recordings?page=2"] = ["badjson"]
    res = download_class(spec(), tmp_path / "A", opts(api), env=ENV, show_progress=False)
    assert "malformed JSON" in dict(res.skipped)["xeno_canto listing"]
    assert (tmp_path / "A" / "XC1072882.mp3").exists() and (tmp_path / "A" / "N263200.wav").exists()


def test_bad_key_is_a_clear_error_without_the_key(api, tmp_path):
    with pytest.raises(AuthError) as e:
        download_class(spec(), tmp_path / "A", opts(api), env={"XC_API_KEY": "wrong-secret"}, show_progress=False)
    assert "401" in str(e.value) and "invalid 'key'" in str(e.value) and "wrong-secret" not in str(e.value)


def test_missing_key(tmp_path):
    with pytest.raises(RuntimeError, match="XC_API_KEY"):
        download_class(spec(), tmp_path / "A", DownloadOptions(), env={}, show_progress=False)


def test_rate_limit_spacing_with_a_fake_clock():
    now = [0.0]
    sleeps = []

    def sleep(s):
        sleeps.append(s)
        now[0] += s

    s = PoliteSession(min_interval=1.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        s._wait_turn()
        now[0] += 0.25  # the request itself
    assert sleeps == [0.75, 0.75]


def test_local_source_copies_and_sanitises(tmp_path, audio_dir):
    src = tmp_path / "mine" / "sub"
    src.mkdir(parents=True)
    (src / "My Robin (1).wav").write_bytes((audio_dir / "a.wav").read_bytes())
    (src / "notes.txt").write_text("not audio")
    s = parse_classes({"AMRO": {"name": "A", "sources": [{"kind": "local", "path": str(tmp_path / "mine")}]}})[0]
    res = download_class(s, tmp_path / "out", DownloadOptions(), env={}, show_progress=False)
    assert res.fetched == 1 and (tmp_path / "out" / "My_Robin_1_.wav").exists()


def test_safe_name_blocks_traversal():
    assert safe_name("../../etc/passwd") == "passwd"
    assert safe_name("..\\..\\x.wav") == "x.wav"
    assert safe_name("..") == "file"


def test_demo_source_is_deterministic(tmp_path):
    s = parse_classes({"RIWH": {"name": "R", "sources": [{"kind": "demo", "call": "whistle"}]}})[0]
    o = DownloadOptions(demo_recordings=3)
    download_class(s, tmp_path / "a", o, env={}, show_progress=False)
    download_class(s, tmp_path / "b", o, env={}, show_progress=False)
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir()) and len(names) == 5  # 3 + 2 csv
    for n in names:
        if not n.endswith(".csv"):
            assert (tmp_path / "a" / n).read_bytes() == (tmp_path / "b" / n).read_bytes()
