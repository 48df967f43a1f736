"""Download django-apscheduler 0.7.0's sdist, and run its tests against this package.

    python -m tests.compat070.run [PYTEST_ARGS...]

The sdist's ``tests/`` go into a temporary folder (never into this repository),
beside our own conftest, settings and list of expected failures; pytest runs there,
importing ``django_apscheduler`` from this checkout. Exits with pytest's status.
"""

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CACHE = ROOT / ".cache" / "sdist-0.7.0"
SDIST = "django_apscheduler-0.7.0.tar.gz"


def sdist() -> Path:
    """0.7.0's sdist from PyPI, downloaded once into .cache/."""
    target = CACHE / SDIST
    if not target.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
             "--no-binary", ":all:", "--dest", str(CACHE), "django-apscheduler==0.7.0"],
            check=True,
        )
    return target


def prepare(folder: Path) -> Path:
    with tarfile.open(sdist()) as archive:
        members = [m for m in archive.getmembers() if m.name.startswith("django_apscheduler-0.7.0/tests/")]
        archive.extractall(folder, members=members, filter="data")
    tests = folder / "django_apscheduler-0.7.0" / "tests"
    (tests / "__init__.py").touch()
    shutil.copy(HERE / "conftest_070.py", tests / "conftest.py")
    shutil.copy(HERE / "settings_070.py", tests / "settings.py")
    shutil.copy(HERE / "expected.py", tests / "expected.py")
    return tests.parent


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="dja-070-suite-") as folder:
        root = prepare(Path(folder))
        env = dict(os.environ, DJANGO_SETTINGS_MODULE="tests.settings", PYTHONPATH=str(root))
        env.pop("DB", None)
        command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir", str(root),
                   "-o", "addopts=", "-o", "testpaths=tests", "-o", "filterwarnings=", str(root / "tests")] + argv
        return subprocess.run(command, cwd=root, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
