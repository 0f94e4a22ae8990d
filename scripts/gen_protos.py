"""Generates the Python stubs for protos/ into libs/protos/ (checked in).

grpcio-tools writes absolute imports (``from concord.x.v1 import ...``); they are rewritten to
``libs.protos.concord...`` so the stubs import without path tricks.

    python scripts/gen_protos.py            # regenerate in place
    python scripts/gen_protos.py --out DIR  # generate elsewhere (the staleness test)
"""

from __future__ import annotations

import argparse
import re
import sys
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
PACKAGE_PREFIX = "libs.protos."
IMPORT_RE = re.compile(r"^(from|import) concord\.", re.MULTILINE)


def generate(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    well_known = str(resources.files("grpc_tools") / "_proto")
    args = [
        "protoc",
        f"-I{PROTOS}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *files,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    written = []
    for path in sorted(out.rglob("*.py*")):
        if path.suffix not in (".py", ".pyi"):
            continue
        text = IMPORT_RE.sub(lambda m: f"{m.group(1)} {PACKAGE_PREFIX}concord.", path.read_text())
        path.write_text(text)
        written.append(path)
    for directory in {p.parent for p in written} | {out / "concord"}:
        while directory != out.parent and directory.is_relative_to(out):
            (directory / "__init__.py").touch()
            directory = directory.parent
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "libs" / "protos")
    written = generate(parser.parse_args().out)
    print(f"generated {len(written)} files", file=sys.stderr)


if __name__ == "__main__":
    main()
