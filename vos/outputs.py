"""Former import path of :mod:`vos.infra.outputs` and :mod:`vos.segment.outputs` (version 0.1)."""

from vos._former_paths import warn_moved
from vos.infra.outputs import (MARKER, check_output_dir, check_output_file, check_run_dir,  # noqa: F401
                               check_writable, is_within, json_keys_owned, read_marker, remove_stale_temporaries,
                               replace_output_dir, stale_temporaries, write_marker)
from vos.segment.outputs import SEGMENT_COMMAND, check_segment_jobs, segment_result_owned  # noqa: F401

warn_moved(__name__, "import from vos.infra.outputs (vos segment's checks: vos.segment.outputs)")
