"""The guides: docs/ builds with MkDocs in strict mode (a broken link or a missing page fails), the
benchmark page and README's quality table are what the result files say, every config file is in
the reference, and README stays a short guide."""

import re
import shutil
import sys

import pytest

from tests import procs
from tests.conftest import ROOT

MKDOCS = [sys.executable, "-m", "mkdocs", "build", "--strict"]
ENV = {"NO_MKDOCS_2_WARNING": "1"}


def build(root, site):
    import os

    return procs.run([*MKDOCS, "--site-dir", str(site)], cwd=root, env={**os.environ, **ENV})


def test_docs_build_in_strict_mode(tmp_path):
    out = build(ROOT, tmp_path / "site")
    assert out.returncode == 0, out.stdout + out.stderr
    assert (tmp_path / "site" / "reference" / "index.html").read_text().count("bn_recalibrate_batches")


@pytest.mark.parametrize("breakage", ["[gone](no-such-page.md)", '```yaml\n--8<-- "conf/no/such.yaml"\n```'])
def test_a_broken_link_or_snippet_fails_the_build(tmp_path, breakage):
    for name in ("docs", "conf"):
        shutil.copytree(ROOT / name, tmp_path / name)
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    index = tmp_path / "docs" / "index.md"
    index.write_text(index.read_text() + f"\n{breakage}\n")
    assert build(tmp_path, tmp_path / "site").returncode != 0


def test_benchmark_figures_are_generated_from_their_result_files():
    out = procs.run([sys.executable, str(ROOT / "benchmarks" / "report.py"), "--check"], cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_config_file_is_in_the_reference():
    ref = (ROOT / "docs" / "reference.md").read_text()
    for path in [ROOT / "conf" / "config.yaml", *sorted((ROOT / "conf").glob("*/*.yaml"))]:
        assert f'--8<-- "{path.relative_to(ROOT)}"' in ref, path


def test_readme_is_a_short_guide_with_working_links():
    text = (ROOT / "README.md").read_text()
    assert len(text.encode()) <= 15_000
    typed = re.sub(r"<!-- quality table.*?<!-- end of quality table -->", "", text, flags=re.S)
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", typed)  # dates belong to generated figures only
    for target in re.findall(r"\]\(((?:docs/)?[\w./-]+\.(?:md|png))\)", text):
        assert (ROOT / target).exists(), target
    assert text.count("```bash\nmake demo") == 1
