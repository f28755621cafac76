import csv
import logging
import time

import pytest

from hawk.audio import read_mono
from hawk.classes import parse_classes
from hawk.download.http import AuthError, PoliteSession
from hawk.download.run import DownloadError, DownloadOptions, download_class
from hawk.fsutil import safe_name
from hawk.manifest import read_manifest, write_manifest
from tests.fakeapi import KEY, FakeAPI

ENV = {"XC_API_KEY": KEY}


def opts(api, **kw):
    base = dict(xc_base_url=api.url, inat_base_url=api.url, inat_per_page=2, min_interval=0, retries=3,
                backoff=0.01, timeout=0.5, xc_qualities=("A", "B", "C", "D"))
    return DownloadOptions(**{**base, **kw})


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
    """A final answer (404) is the record's own: a report row, and the stage succeeds."""
    api.faults["/audio/xc555002.flac"] = [404]
    res = download_class(spec(), tmp_path / "A", opts(api), env=ENV, show_progress=False)
    assert "HTTP 404" in dict(res.skipped)["XC555002"] and res.fetched == 4


def test_files_that_fail_for_a_passing_reason_fail_the_stage_and_resume(api, tmp_path):
    """The listing worked but the server went away for some files (connections dropped, 5xx after
    every retry): the run must not pass for done. What arrived is kept; a rerun fetches the rest."""
    for f in ("n263200.wav", "n263201.mp3"):
        api.faults[f"/audio/{f}"] = ["drop"] * 10
    api.faults["/audio/xc555002.flac"] = [503] * 10
    out = tmp_path / "A"
    with pytest.raises(DownloadError) as e:
        download_class(spec(), out, opts(api), env=ENV, show_progress=False)
    msg = str(e.value)
    assert "2 listed recording(s) could not be fetched" in msg and "1 listed recording(s)" in msg, msg
    assert "recordings in" in msg and "run again to resume" in msg
    assert sorted(p.name for p in out.glob("[NX]*")) == ["N263113.m4a", "XC1072882.mp3"]
    assert {"N263200", "N263201", "XC555002"} <= _report_ids(out)
    api.faults.clear()
    before = len(api.requests_to("/audio/"))
    res = download_class(spec(), out, opts(api), env=ENV, show_progress=False)
    assert res.fetched == 3 and res.already_there == 2
    assert len(api.requests_to("/audio/")) - before == 3  # only what was missing
    assert not {"N263200", "N263201", "XC555002"} & _report_ids(out)  # resolved rows leave the report


def test_a_dead_service_is_given_up_after_a_few_files(api, tmp_path):
    """Every file dropped: after GIVE_UP_AFTER in a row the source stops instead of retrying each."""
    from hawk.download.run import GIVE_UP_AFTER

    _more_observations(api, 6)
    for path in list(api.audio):
        if path.startswith("n"):
            api.faults[f"/audio/{path}"] = ["drop"] * 10
    with pytest.raises(DownloadError, match=f"stopped after {GIVE_UP_AFTER} in a row"):
        download_class(inat_spec(), tmp_path / "A", opts(api), env=ENV, show_progress=False)
    assert len({p for p in api.requests_to("/audio/n")}) == GIVE_UP_AFTER


def test_an_html_page_served_as_audio_is_reported_not_saved(api, tmp_path):
    api.faults["/audio/xc555002.flac"] = ["html"]
    out = tmp_path / "A"
    res = download_class(spec(), out, opts(api), env=ENV, show_progress=False)
    assert "served text/html, not audio" in dict(res.skipped)["XC555002"]
    assert not (out / "XC555002.flac").exists() and res.fetched == 4
    assert "XC555002" in _report_ids(out)


def test_a_part_file_left_by_a_killed_download_is_removed(api, tmp_path):
    out = tmp_path / "A"
    out.mkdir()
    (out / ".XC1072882.mp3.k3j2h1.part").write_bytes(b"half a file")
    download_class(spec(), out, opts(api), env=ENV, show_progress=False)
    assert not list(out.glob(".*part")) and (out / "XC1072882.mp3").exists()


def _report_ids(out):
    with open(out / "download_report.csv") as f:
        return {r["file"] for r in csv.DictReader(f)}


def test_bad_key_is_a_clear_error_without_the_key(api, tmp_path):
    with pytest.raises(AuthError) as e:
        download_class(spec(), tmp_path / "A", opts(api), env={"XC_API_KEY": "wrong-secret"}, show_progress=False)
    assert "401" in str(e.value) and "invalid 'key'" in str(e.value) and "wrong-secret" not in str(e.value)


def test_missing_key(tmp_path):
    with pytest.raises(DownloadError, match="XC_API_KEY"):
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


def test_copies_an_earlier_hawk_made_of_field_clips_are_removed_and_nothing_else(tmp_path, audio_dir):
    src, out = tmp_path / "mine", tmp_path / "out"
    src.mkdir()
    (src / "r1.wav").write_bytes((audio_dir / "a.wav").read_bytes())
    s = parse_classes({"AMRO": {"name": "A", "sources": [{"kind": "local", "path": str(src)}]}})[0]
    download_class(s, out, DownloadOptions(), env={}, show_progress=False)
    copy = out / "field-site3_0012.wav"  # as the download before pickle read data/field/ made them
    copy.write_bytes((audio_dir / "a.wav").read_bytes())
    rows = read_manifest(out / "manifest.csv")
    write_manifest(out / "manifest.csv", [*rows.values(), {"file": copy.name, "id": "site3_0012", "source": "field"}])
    res = download_class(s, out, DownloadOptions(), env={}, show_progress=False)
    assert not copy.exists() and set(read_manifest(out / "manifest.csv")) == {"r1.wav"}
    assert (out / "r1.wav").exists() and res.fetched == 0


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


# --- politeness, paging and failures (issue 10) ---------------------------------------------------

def test_spacing_holds_per_service_across_listing_and_files(api, tmp_path):
    """Listing pages and file downloads of one service share one limiter. Its own record of when it
    let each request through is what it promises; the server's log (whose times jitter on a busy
    machine) must show the same requests, in the same number."""
    sessions = {}
    res = download_class(spec(), tmp_path / "A", opts(api, min_interval=0.3), env=ENV, show_progress=False,
                         sessions=sessions)
    assert res.fetched == 5
    assert set(sessions) == {"xeno_canto", "inat"}
    xc, inat = sessions["xeno_canto"].limiter, sessions["inat"].limiter
    assert xc.turns == len(api.requests_to(("/api/3/", "/audio/xc"))) >= 4  # 2 pages + 2 files
    assert inat.turns == len(api.requests_to(("/v1/", "/audio/n"))) >= 5  # 2 pages + 3 files
    for limiter in (xc, inat):
        sent = list(limiter.recent)
        assert min(b - a for a, b in zip(sent, sent[1:])) >= 0.3, sent


def _more_observations(api, n):
    """``n`` more Turdus observations, each with one wav sound (served from the same bytes)."""
    base = api.inat_obs[-1]
    for i in range(n):
        obs = {**base, "id": 90000000 + i, "taxon": {"name": "Turdus migratorius"},
               "sounds": [{"id": 300000 + i, "license_code": "cc-by", "file_url": f"{{base}}/audio/n{300000 + i}.wav",
                           "file_content_type": "audio/x-wav"}]}
        api.inat_extra.append(obs)
        api.audio[f"n{300000 + i}.wav"] = api.audio["n263200.wav"]


def inat_spec(**kw):
    return parse_classes({"AMRO": {"name": "A", "sources": [{"kind": "inat", "taxon": "Turdus migratorius"}], **kw}})[0]


def test_inat_pages_on_past_a_short_page(api, tmp_path):
    """The server caps per_page at 2 while 200 are asked: hawk must page on by id_above to the end."""
    _more_observations(api, 6)  # 3 + 6 = 9 observations, 8 of the right taxon, with 9 sounds
    api.inat_max_per_page = 2
    res = download_class(inat_spec(), tmp_path / "A", opts(api, inat_per_page=200), env=ENV, show_progress=False)
    assert res.fetched == 9, res.skipped
    assert len(api.requests_to("/v1/observations")) == 5  # ceil(9 / 2): stops at total_results, no empty page


def test_inat_excludes_licences(api, tmp_path):
    _more_observations(api, 2)
    api.inat_extra[0]["sounds"][0]["license_code"] = "cc-by-nc-nd"
    res = download_class(inat_spec(), tmp_path / "A", opts(api), env=ENV, show_progress=False)
    assert dict(res.skipped)["N300000"] == "licence cc-by-nc-nd excluded"
    assert not (tmp_path / "A" / "N300000.wav").exists() and (tmp_path / "A" / "N300001.wav").exists()


def test_failed_listing_is_an_error_that_keeps_what_arrived(api, tmp_path):
    api.faults["/api/3/recordings?page=2"] = [503] * 10  # a 5xx storm outlasts the retries
    out = tmp_path / "A"
    with pytest.raises(DownloadError, match=r"class AMRO: source xeno_canto .*listing failed.*HTTP 503") as e:
        download_class(spec(), out, opts(api), env=ENV, show_progress=False)
    assert "run again to resume" in str(e.value) and "\n" not in str(e.value)
    kept = set(read_manifest(out / "manifest.csv"))  # page 1 and iNaturalist arrived and are recorded
    assert kept == {"XC1072882.mp3", "N263113.m4a", "N263200.wav", "N263201.mp3"}
    assert all((out / f).exists() for f in kept)
    api.faults.clear()
    before = len(api.requests_to("/audio/"))
    res = download_class(spec(), out, opts(api), env=ENV, show_progress=False)  # the rerun resumes
    assert res.fetched == 1 and res.already_there == 4 and len(api.requests_to("/audio/")) == before + 1


def test_malformed_json_stops_listing_keeps_earlier_pages(api, tmp_path):
    api.faults["/api/3/recordings?page=2"] = ["badjson"]
    with pytest.raises(DownloadError, match="malformed JSON"):
        download_class(spec(), tmp_path / "A", opts(api), env=ENV, show_progress=False)
    assert (tmp_path / "A" / "XC1072882.mp3").exists() and (tmp_path / "A" / "N263200.wav").exists()


@pytest.mark.parametrize("source", [{"kind": "xeno_canto", "query": 'sp:"nosuch bird"'},
                                    {"kind": "inat", "taxon": "Turdus migratorus"}])
def test_a_source_that_lists_nothing_is_an_error(api, tmp_path, source):
    s = parse_classes({"AMRO": {"name": "A", "sources": [source]}})[0]
    with pytest.raises(DownloadError, match=rf"class AMRO: source {source['kind']} .* lists no recordings"):
        download_class(s, tmp_path / "A", opts(api), env=ENV, show_progress=False)
    res = download_class(s, tmp_path / "B", opts(api, allow_empty=True), env=ENV, show_progress=False)
    assert res.total == 0


def test_report_is_kept_across_runs_and_summary_counts_the_folder(api, tmp_path):
    api.faults["/audio/xc555002.flac"] = [404]  # a final answer: a report row, not a failed stage
    out = tmp_path / "A"
    download_class(spec(), out, opts(api), env=ENV, show_progress=False)
    rows = {r["file"]: r for r in csv.DictReader(open(out / "download_report.csv"))}
    assert "download failed" in rows["XC555002"]["reason"] and rows["XC998877"]["date"] == time.strftime("%Y-%m-%d")
    # a run that lists nothing new (cap reached) keeps the earlier report and counts the whole folder
    res = download_class(spec(max_recordings=0), out, opts(api), env=ENV, show_progress=False)
    assert res.fetched == 0 and res.in_folder == 4
    assert set(rows) == {r["file"] for r in csv.DictReader(open(out / "download_report.csv"))}
    # a later run that fetches the failed file drops its old row and keeps the others
    api.faults.clear()
    res = download_class(spec(), out, opts(api), env=ENV, show_progress=False)
    after = {r["file"]: r for r in csv.DictReader(open(out / "download_report.csv"))}
    assert res.in_folder == 5 and "XC555002" not in after and "XC998877" in after


def test_progress_bar_counts_listed_candidates(api, tmp_path, capsys):
    download_class(spec(), tmp_path / "A", opts(api), env=ENV, show_progress=True)
    err = capsys.readouterr().err
    assert "/500" not in err
    assert "download AMRO (xeno_canto): 3/3 file (100%)" in err  # a log line, not a bar frame


def test_retries_after_a_cut_connection_are_logged(api, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    api.faults["/audio/n263113.m4a"] = ["truncate"]
    download_class(spec(), tmp_path / "A", opts(api), env=ENV, show_progress=False)
    assert any("n263113.m4a" in r.getMessage() and "interrupted" in r.getMessage() and "retrying" in r.getMessage()
               for r in caplog.records)


def test_local_names_that_sanitise_alike_stay_distinct(tmp_path, audio_dir):
    src = tmp_path / "mine"
    src.mkdir()
    originals = ["a b.mp3", "a_b.mp3", "a'b.mp3"]
    for i, name in enumerate(originals):
        data = bytearray((audio_dir / "d.mp3").read_bytes())
        (src / name).write_bytes(bytes(data) + bytes([i]))  # distinct content too
    s = parse_classes({"AMRO": {"name": "A", "sources": [{"kind": "local", "path": str(src)}]}})[0]
    out = tmp_path / "out"
    res = download_class(s, out, DownloadOptions(), env={}, show_progress=False)
    assert res.fetched == 3 and not res.skipped
    m = read_manifest(out / "manifest.csv")
    assert sorted(r["url"] for r in m.values()) == sorted(originals)
    for name, row in m.items():  # each file holds its own original's bytes
        assert (out / name).read_bytes() == (src / row["url"]).read_bytes()
    assert m["a_b.mp3"]["url"] == "a b.mp3"  # first in order keeps the clean name; the others get a suffix
    # stable: a rerun maps each original to the same file and copies nothing
    res2 = download_class(s, out, DownloadOptions(), env={}, show_progress=False)
    assert res2.fetched == 0 and res2.already_there == 3 and read_manifest(out / "manifest.csv") == m


def test_missing_local_folder_is_an_error(tmp_path):
    s = parse_classes({"AMRO": {"name": "A", "sources": [{"kind": "local", "path": str(tmp_path / "nope")}]}})[0]
    with pytest.raises(DownloadError, match="nope does not exist"):
        download_class(s, tmp_path / "out", DownloadOptions(), env={}, show_progress=False)
