"""Fixtures shared by test files of both packages (helpers that are plain functions live in
tests/helpers/)."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture(scope="session")
def ssl_synth_data(tmp_path_factory):
    """``ssl_synth_data(classes, videos_per_class, frames, seed)``: the root of an ``ssl-video synth``
    dataset of 32x32 videos in the UCF101 layout, generated once per session for each set of
    parameters. It is shared: a test that changes its files takes ``ssl_synth_copy`` instead."""
    from ssl_video.synth import make_synth_dataset

    made = {}

    def make(classes: int, videos_per_class: int, frames: int, seed: int):
        key = (classes, videos_per_class, frames, seed)
        if key not in made:
            root = tmp_path_factory.mktemp("ssl_synth")
            make_synth_dataset(root, classes=classes, videos_per_class=videos_per_class, frames=frames, size=32,
                               seed=seed, progress=False)
            made[key] = root
        return made[key]

    return make


@pytest.fixture
def ssl_synth_copy(ssl_synth_data, tmp_path):
    """``ssl_synth_copy(classes, videos_per_class, frames, seed)``: a copy of that dataset in this
    test's ``tmp_path``, free to change."""
    def copy(classes: int, videos_per_class: int, frames: int, seed: int):
        return shutil.copytree(ssl_synth_data(classes, videos_per_class, frames, seed), tmp_path / "data")

    return copy


@pytest.fixture(scope="module")
def tiny_random_backbone():
    """The tiny test ViT (``test_vit_tiny16``) with seeded random weights, one per test module."""
    from vos.models.backbone import build_backbone

    with pytest.warns(UserWarning, match="random weights"):
        return build_backbone("test_vit_tiny16", "random")


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium (Playwright) for the whole session; skips, saying why, when none can be had."""
    from tests.helpers.browser import chromium_path

    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed "
                                         "(pip install -e '.[test]')")
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium binary (apt-get install chromium, or set $CHROMIUM); .ci/run installs it")
    with playwright_api.sync_playwright() as p:
        try:
            instance = p.chromium.launch(executable_path=path, args=["--no-sandbox"])
        except Exception as exc:  # a binary that cannot start here: say so instead of failing every test
            pytest.skip(f"Chromium at {path} does not start: {str(exc).splitlines()[0]}")
        yield instance
        instance.close()


def pytest_addoption(parser):
    group = parser.getgroup("fuzz", "fuzzing of the file readers (tests/fuzz)")
    group.addoption("--fuzz-examples", type=int, default=None, metavar="N",
                    help="damaged files per reader (default: each reader's small CI budget)")
    group.addoption("--fuzz-report", action="store_true",
                    help="print a table of the mutations each reader survived (for docs/io.md)")


def pytest_terminal_summary(terminalreporter, config):
    if config.getoption("--fuzz-report"):
        from tests.fuzz.harness import report_table

        terminalreporter.write_line(report_table())
