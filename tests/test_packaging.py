"""The package installs as one namespace: the wheel holds only `services_bot`, and no code imports the folders'
own names (`core`, `bot`, ...), which do not exist once installed."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"core", "bot", "tools", "emulator", "workspace"}


def _source_copy(dest: Path) -> Path:
    """The checkout's files (tracked and new, not ignored) copied to ``dest``: setuptools writes ``build/`` where
    it builds, and the checkout is to stay as it was."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def test_the_wheel_installs_only_the_services_bot_namespace(tmp_path: Path) -> None:
    source = _source_copy(tmp_path / "src")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = tmp_path.glob("services_bot-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/", 1)[0] for name in names if ".dist-info/" not in name}
    assert top == {"services_bot"}
    for folder in sorted(FOLDERS):  # every module of every folder, subpackages included, and the page's files
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in (".py", ".html", ".js", ".css") and "__pycache__" not in path.parts:
                assert f"services_bot/{path.relative_to(ROOT).as_posix()}" in names, path
    for path in sorted((ROOT / "services_bot").glob("*.py")):
        assert f"services_bot/{path.name}" in names, path


def test_no_module_imports_a_folder_by_its_bare_name() -> None:
    offenders = []
    for path in sorted(ROOT.rglob("*.py")):
        if any(part in {".venv", "build", "artifacts"} or part.endswith(".egg-info") for part in path.parts):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            offenders += [f"{path.relative_to(ROOT)}: {name}" for name in names if name.split(".")[0] in FOLDERS]
    assert not offenders, offenders
