"""No private imports of dependencies: ruff's PLC2701 (enabled in pyproject.toml) catches them."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _ruff(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--no-cache",
            "--config",
            str(ROOT / "pyproject.toml"),
            "--output-format",
            "concise",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def test_ruff_refuses_an_import_from_a_private_module_of_a_dependency(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from cross_web.request._starlette import StarletteRequestAdapter\n\n"
        "print(StarletteRequestAdapter)\n"
    )
    result = _ruff(bad)
    assert result.returncode == 1
    assert "import-private-name" in result.stdout


def test_the_public_name_passes(tmp_path: Path) -> None:
    good = tmp_path / "good.py"
    good.write_text(
        "from cross_web import StarletteRequestAdapter\n\nprint(StarletteRequestAdapter)\n"
    )
    result = _ruff(good)
    assert result.returncode == 0, result.stdout
