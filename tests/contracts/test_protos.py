"""The contracts lint clean and the checked-in stubs are what the generator makes today."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _buf() -> str:
    return shutil.which("buf") or str(Path(sys.executable).parent / "buf")


def test_buf_lint_passes() -> None:
    result = subprocess.run([_buf(), "lint"], cwd=ROOT, capture_output=True, text=True, check=False)  # noqa: S603
    assert result.returncode == 0, result.stdout + result.stderr


def test_checked_in_stubs_match_a_fresh_generation(tmp_path: Path) -> None:
    out = tmp_path / "protos"
    subprocess.run(  # noqa: S603
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--out", str(out)], check=True, capture_output=True
    )
    checked_in = ROOT / "libs" / "protos"
    fresh = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    ours = sorted(
        p.relative_to(checked_in) for p in checked_in.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    )
    assert fresh == ours, "stub files differ: run `make protos`"
    stale = [str(p) for p in fresh if not filecmp.cmp(out / p, checked_in / p, shallow=False)]
    assert not stale, f"stale stubs (run `make protos`): {stale}"
