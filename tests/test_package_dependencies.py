"""The packages' dependency direction (docs/architecture.md): ssl_video uses vos's shared
infrastructure modules only, never its segmentation; vos never imports ssl_video."""

import ast

from tests.helpers.paths import REPO_ROOT

# vos modules that serve both packages: errors, files, configs and their flags, torch.distributed,
# training logs, video reading, progress bars, output rules, the CLI runner
SHARED_INFRASTRUCTURE = {"vos.errors", "vos.fileio", "vos.config", "vos.config_flags", "vos.distributed",
                         "vos.training_log", "vos.video_io", "vos.progress", "vos.outputs", "vos.cli"}


def imported_modules(package: str) -> dict[str, set[str]]:
    """{module imported: files of ``package`` importing it}, every import statement of the package."""
    found: dict[str, set[str]] = {}
    for path in sorted((REPO_ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
            for name in names:
                found.setdefault(name, set()).add(str(path.relative_to(REPO_ROOT)))
    return found


def test_ssl_video_uses_only_the_shared_infrastructure_of_vos():
    used = {m: files for m, files in imported_modules("ssl_video").items() if m == "vos" or m.startswith("vos.")}
    assert {"vos.errors", "vos.video_io"} <= set(used)  # the scan sees them
    assert {m: sorted(files) for m, files in used.items() if m not in SHARED_INFRASTRUCTURE} == {}


def test_vos_never_imports_ssl_video():
    used = imported_modules("vos")
    assert "vos.errors" in used  # the scan sees vos's own imports
    assert [m for m in used if m == "ssl_video" or m.startswith("ssl_video.")] == []
