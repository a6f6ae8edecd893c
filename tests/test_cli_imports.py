"""The command-line parsers (``--help``) load without torch and the other heavy libraries; the names
the parsers spell out agree with the library's."""

import subprocess
import sys

import pytest

from tests.helpers.paths import REPO_ROOT

HEAVY = ("torch", "torchvision", "timm", "cv2", "scipy", "av", "decord")


@pytest.mark.parametrize("cli,commands", [("vos.cli", "vos.cli.COMMANDS"), ("ssl_video.cli", "ssl_video.cli.COMMANDS")])
def test_help_imports_no_heavy_module(cli, commands):
    code = (f"import sys, vos.cli, {cli}\n"
            f"parser = vos.infra.cli.build_parser('x', {commands})\n"
            "for name, action in parser._subparsers._group_actions[0].choices.items(): action.format_help()\n"
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_help_exits_zero_without_torch():
    for module in ("vos", "ssl_video"):
        code = (f"import runpy, sys\nsys.argv = ['{module}', '--help']\n"
                f"try:\n    runpy.run_module('{module}', run_name='__main__')\n"
                f"except SystemExit as exc:\n    assert exc.code == 0, exc.code\n"
                f"assert 'torch' not in sys.modules\n")
        out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert "COMMAND" in out.stdout


def test_spelled_out_choices_match_the_library():
    from vos.commands import eval as eval_command
    from vos.commands import segment as segment_command
    from vos.infra.video_reader import BACKENDS
    from vos.models import BACKBONE_NAMES
    from vos.eval.davis import TASKS
    from vos.eval.davis_eval import MATCHINGS
    from vos.models.backbone import BACKBONES

    assert BACKBONE_NAMES == tuple(BACKBONES)
    assert eval_command.TASKS == TASKS and eval_command.MATCHINGS == MATCHINGS
    assert segment_command.BACKENDS == BACKENDS
