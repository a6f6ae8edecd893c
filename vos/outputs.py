"""Former import path of :mod:`vos.infra.outputs` and :mod:`vos.segment_outputs`, kept so that
existing scripts keep working."""

import warnings

from vos.infra.outputs import (MARKER, check_output_dir, check_output_file, check_run_dir,  # noqa: F401
                               check_writable, is_within, json_keys_owned, read_marker, remove_stale_temporaries,
                               replace_output_dir, stale_temporaries, write_marker)
from vos.segment_outputs import SEGMENT_COMMAND, check_segment_jobs, segment_result_owned  # noqa: F401

warnings.warn("vos.outputs is deprecated; import from vos.infra.outputs (vos segment's checks: vos.segment_outputs)",
              DeprecationWarning, stacklevel=2)
