import pytest

from hawk.classes import (ClassConfigError, classes_to_config, get_class, parse_classes, read_classes_txt,
                          write_classes_txt)


def test_parses_sources_and_reserved_classes():
    specs = parse_classes({
        "AMRO": {"name": "American Robin", "max_recordings": 3,
                 "sources": [{"kind": "xeno_canto", "query": 'sp:"turdus migratorius"'},
                             {"kind": "inat", "taxon": "Turdus migratorius"}]},
        "Noise": {"name": "Noise", "sources": [{"kind": "local", "path": "/x", "mode": "copy"}]},
        "Other": {"name": "Other", "sources": [{"kind": "demo", "call": "other"}]},
    })
    assert [s.code for s in specs] == ["AMRO", "Noise", "Other"]
    assert specs[0].max_recordings == 3 and [s.kind for s in specs[0].sources] == ["xeno_canto", "inat"]


@pytest.mark.parametrize("raw, words", [
    ({"AMRO": {"name": "A"}, "amro": {"name": "B"}}, ["'amro'", "duplicate code"]),
    ({"AMRO": {"name": "  "}}, ["'AMRO'", "empty name"]),
    ({"AMRO": {"name": "A", "sources": [{"kind": "ebird", "q": 1}]}}, ["'AMRO'", "source #1", "unknown source kind 'ebird'"]),
    ({"AMRO": {"name": "A", "sources": [{"kind": "inat"}]}}, ["'AMRO'", "missing taxon"]),
    ({"AMRO": {"name": "A", "sources": [{"kind": "inat", "taxon": "x", "taxn": "y"}]}}, ["unknown key(s) taxn"]),
    ({"AM/RO": {"name": "A"}}, ["'AM/RO'", "code may hold only"]),
    ({"AMRO": {"name": "A"}, "HETH": {"name": "a"}}, ["'HETH'", "duplicate name"]),
    ({"AMRO": {"name": "A", "max_recordings": -1}}, ["max_recordings"]),
])
def test_malformed_config_names_the_entry(raw, words):
    with pytest.raises(ClassConfigError) as e:
        parse_classes(raw)
    for w in words:
        assert w in str(e.value)


def test_get_class_unknown_code():
    with pytest.raises(ClassConfigError, match="'XXXX' is not declared"):
        get_class({"AMRO": {"name": "A"}}, "XXXX")


def test_classes_txt_round_trip(tmp_path):
    src = tmp_path / "classes.txt"
    src.write_text("# Amphibians\nNorthern Leopard Frog,FROG-LEOP\n\n# Birds\nAmerican Robin,AMRO\nHermit Thrush,HETH\n")
    pairs = read_classes_txt(src)
    assert pairs == [("Northern Leopard Frog", "FROG-LEOP"), ("American Robin", "AMRO"), ("Hermit Thrush", "HETH")]
    specs = parse_classes(classes_to_config(pairs))
    out = tmp_path / "out.txt"
    write_classes_txt(out, specs)
    assert read_classes_txt(out) == pairs


@pytest.mark.parametrize("text, match", [
    ("American Robin,AMRO\nAnother,AMRO\n", "duplicate code 'AMRO'"),
    ("American Robin\n", r"classes.txt:1: expected 'Name,CODE'"),
    (",AMRO\n", r"classes.txt:1"),
])
def test_classes_txt_errors(tmp_path, text, match):
    p = tmp_path / "classes.txt"
    p.write_text(text)
    with pytest.raises(ClassConfigError, match=match):
        read_classes_txt(p)
