"""Regenerate the Python code of `vla/v1/policy.proto` (needs grpcio-tools, a dev dependency).

    python -m robots.proto.generate            # rewrites robots/proto/vla/v1/policy_pb2*.py
    python -m robots.proto.generate --out DIR  # writes DIR/vla/v1/... instead (tests compare)

protoc is run with `robots/proto` as the include root, so the descriptor keeps the canonical
name `vla/v1/policy.proto` (what other languages see through reflection). The import line that
protoc writes into the gRPC module (`from vla.v1 import ...`) would pick up this project's
`vla` package, so it is rewritten to the absolute `robots.proto.vla.v1` package.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent
PROTO_FILE = "vla/v1/policy.proto"
GENERATED = ("policy_pb2.py", "policy_pb2.pyi", "policy_pb2_grpc.py")
IMPORT_FROM = "from vla.v1 import policy_pb2"
IMPORT_TO = "from robots.proto.vla.v1 import policy_pb2"


def run_protoc(out_dir: Path) -> None:
    """Compile PROTO_FILE into out_dir/vla/v1/ with the bundled protoc."""
    from grpc_tools import protoc

    out_dir.mkdir(parents=True, exist_ok=True)
    include = Path(protoc.__file__).resolve().parent / "_proto"
    args = ["grpc_tools.protoc", f"-I{PROTO_ROOT}", f"-I{include}", f"--python_out={out_dir}",
            f"--pyi_out={out_dir}", f"--grpc_python_out={out_dir}", str(PROTO_ROOT / PROTO_FILE)]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {PROTO_ROOT / PROTO_FILE}")


def fix_imports(package_dir: Path) -> None:
    """Make the generated modules import each other through `robots.proto.vla.v1`."""
    for name in GENERATED:
        path = package_dir / name
        text = path.read_text()
        path.write_text(text.replace(IMPORT_FROM, IMPORT_TO))


def generate(out_root: Path | None = None) -> Path:
    """Write the generated files to out_root/vla/v1 (default: next to the .proto); returns that dir."""
    target_root = out_root or PROTO_ROOT
    with tempfile.TemporaryDirectory() as tmp:
        run_protoc(Path(tmp))
        fix_imports(Path(tmp) / "vla" / "v1")
        target = Path(target_root) / "vla" / "v1"
        target.mkdir(parents=True, exist_ok=True)
        for name in GENERATED:
            shutil.copyfile(Path(tmp) / "vla" / "v1" / name, target / name)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="output root (default: robots/proto)")
    target = generate(parser.parse_args(argv).out)
    print(f"generated {', '.join(GENERATED)} in {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
