"""The Sphinx site builds without a warning and documents every public name."""

import re
import subprocess
import sys
from pathlib import Path

import pytorch_feature_analysis as pfa
from pytorch_feature_analysis import cli

ROOT = Path(__file__).parent.parent


def test_the_docs_build_without_warnings_and_cover_the_api(tmp_path):
    out = tmp_path / "html"
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "-b", "html", "docs", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "WARNING" not in done.stderr

    for page in ("index", "getting_started", "user_guide", "command_line", "notebooks",
                 "benchmarks", "api/index"):
        assert (out / f"{page}.html").is_file(), page

    html = "".join(path.read_text(encoding="utf-8") for path in (out / "api").glob("*.html"))
    documented = set(re.findall(r'id="(pytorch_feature_analysis\.[\w.]+)"', html))
    expected = {f"pytorch_feature_analysis.{name}" for name in pfa.__all__}
    expected |= {f"pytorch_feature_analysis.cli.{name}" for name in cli.__all__}
    assert expected - documented == set()
