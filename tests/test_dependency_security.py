"""What gets installed is what was locked: pinned versions, a hash for every file, a pinned base
image, and a lock that still matches pyproject.toml (run `make lock` after editing it)."""

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
LOCKS = {"base": ROOT / "requirements" / "base.txt", "dev": ROOT / "requirements" / "dev.txt"}


def parse_lock(path: Path) -> dict[str, tuple[Version, list[str]]]:
    """{name: (version, hashes)} of a pip-compile lock file."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())  # join continuation lines
    pins = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        requirement, *options = line.split(" --hash=")
        name, version = requirement.strip().split("==")
        pins[canonicalize_name(name)] = (Version(version), [o.strip() for o in options])
    return pins


def project_requirements(extra=None) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = [Requirement(r) for r in project["dependencies"]]
    if extra:
        found += [Requirement(r) for r in project["optional-dependencies"][extra]]
    return found


@pytest.mark.parametrize("lock", LOCKS)
def test_every_locked_package_is_pinned_with_sha256_hashes(lock):
    text = LOCKS[lock].read_text()
    entries = [line for line in text.splitlines() if line and not line.startswith((" ", "#"))]
    assert entries and all(re.fullmatch(r"[A-Za-z0-9_.-]+==\S+ \\", e) for e in entries), entries
    for name, (_, hashes) in parse_lock(LOCKS[lock]).items():
        assert hashes and all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes), name
    assert "--index-url" not in text and "--find-links" not in text  # portable


@pytest.mark.parametrize(("lock", "extra"), [("base", None), ("dev", "dev")])
def test_the_lock_satisfies_pyproject(lock, extra):
    pins = parse_lock(LOCKS[lock])
    for requirement in project_requirements(extra):
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in {LOCKS[lock].name}: run `make lock`"
        assert requirement.specifier.contains(pins[name][0], prereleases=True), (
            f"{name}=={pins[name][0]} does not satisfy {requirement}: run `make lock`")


def test_dev_lock_has_the_same_runtime_versions_as_the_image():
    base, dev = parse_lock(LOCKS["base"]), parse_lock(LOCKS["dev"])
    assert {n: v for n, (v, _) in base.items()} == {n: dev[n][0] for n in base}


def test_urllib3_is_at_least_2_5():
    assert parse_lock(LOCKS["base"])["urllib3"][0] >= Version("2.5")


def test_every_install_is_from_the_lock_with_hashes():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install --require-hashes --no-deps -r requirements/base.txt" in dockerfile
    assert not re.search(r"pip install (?!--require-hashes)", dockerfile)
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install --quiet --require-hashes --no-deps -r $(LOCK_DEV)" in makefile
    assert re.search(r"^\$\(STAMP\): \$\(LOCK_DEV\)", makefile, re.M)  # rebuilt on a new lock
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_the_base_image_is_pinned_by_digest():
    dockerfile = (ROOT / "Dockerfile").read_text()
    image = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", dockerfile, re.M).group(1)
    assert re.fullmatch(r"python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", image)
    froms = re.findall(r"^FROM (\S+)", dockerfile, re.M)
    assert froms and all(f == "${PYTHON_IMAGE}" for f in froms)
