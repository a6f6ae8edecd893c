"""The packages' dependency direction (docs/architecture.md): `vos.infra` knows neither package,
`ssl_video` uses `vos.infra` and nothing else of `vos`, `vos` never imports `ssl_video`, and no code
of the repository uses the former import paths that are kept for users' scripts."""

import ast
from pathlib import Path

from tests.helpers.paths import REPO_ROOT

# modules of 0.2 that moved in 0.3, kept for users' scripts until 0.4 (vos._former_paths) and
# imported only by tests/vos/infra/test_former_paths.py, through importlib
FORMER_PATHS = {"vos.compat", "vos.masks", "vos.overlay", "vos.segment_config", "vos.segment_outputs"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(folder: str) -> dict[str, set[str]]:
    """{module imported: files below ``folder`` importing it}, every import statement; relative
    imports are resolved, and ``from a import b`` counts as importing ``a`` and ``a.b`` (b may be a
    module, or a name that a former path provides)."""
    found: dict[str, set[str]] = {}
    for path in sorted((REPO_ROOT / folder).rglob("*.py")):
        package = _module_name(path).split(".")
        if path.name != "__init__.py":
            package = package[:-1]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package[:len(package) - node.level + 1] if node.level else []
                module = ".".join(base + ([node.module] if node.module else []))
                names = [module, *(f"{module}.{a.name}" for a in node.names)]
            else:
                names = []
            for name in names:
                found.setdefault(name, set()).add(str(path.relative_to(REPO_ROOT)))
    return found


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_infrastructure_imports_neither_package():
    used = imported_modules("vos/infra")
    assert "vos.infra.errors" in used  # the scan sees its own imports
    assert {m: sorted(f) for m, f in used.items()
            if (_in(m, "vos") and not _in(m, "vos.infra")) or _in(m, "ssl_video")} == {}


def test_ssl_video_uses_only_the_infrastructure_of_vos():
    used = {m: files for m, files in imported_modules("ssl_video").items() if _in(m, "vos")}
    assert {"vos.infra.errors", "vos.infra.video_reader"} <= set(used)  # the scan sees them
    assert {m: sorted(files) for m, files in used.items() if not _in(m, "vos.infra")} == {}


def test_vos_never_imports_ssl_video():
    used = imported_modules("vos")
    assert "vos.infra.errors" in used  # the scan sees vos's own imports
    assert [m for m in used if _in(m, "ssl_video")] == []


def test_no_code_here_uses_the_former_import_paths():
    users = {}
    for folder in ("vos", "ssl_video", "tools", "tests"):
        for module, files in imported_modules(folder).items():
            if module in FORMER_PATHS:
                users.setdefault(module, set()).update(files)
    assert {m: sorted(f) for m, f in users.items()} == {}


def test_no_command_imports_another():
    """Command modules are thin layers over the library: what two commands share lives in a
    library module (ssl_video's commands share ``ssl_video.commands.common``, which is no command)."""
    from ssl_video.cli import COMMANDS as SSL_VIDEO_COMMANDS
    from vos.cli import COMMANDS as VOS_COMMANDS

    commands = set(VOS_COMMANDS.values()) | set(SSL_VIDEO_COMMANDS.values())
    for folder in ("vos/commands", "ssl_video/commands"):
        for module, files in imported_modules(folder).items():
            importers = {f.removesuffix(".py").replace("/", ".") for f in files}
            assert module not in commands or importers <= {module}, (module, sorted(importers))


def test_the_scan_resolves_relative_imports_and_former_names(tmp_path, monkeypatch):
    """The scan sees what the rules above look for: a relative import out of vos.infra, and a
    name that moved."""
    import tests.test_package_dependencies as scan

    (tmp_path / "vos" / "infra").mkdir(parents=True)
    (tmp_path / "vos" / "infra" / "progress.py").write_text("from ..segment import VideoJob\nfrom . import errors\n")
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "bench.py").write_text("from vos.masks import clusters_to_objects\n")
    monkeypatch.setattr(scan, "REPO_ROOT", tmp_path)
    assert scan.imported_modules("vos/infra") == {
        "vos.segment": {"vos/infra/progress.py"}, "vos.segment.VideoJob": {"vos/infra/progress.py"},
        "vos.infra": {"vos/infra/progress.py"}, "vos.infra.errors": {"vos/infra/progress.py"}}
    assert {"vos.masks", "vos.masks.clusters_to_objects"} <= set(scan.imported_modules("tools"))
