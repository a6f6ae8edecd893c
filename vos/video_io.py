"""Former import path of :mod:`vos.infra.video_reader`, kept so that existing scripts keep working."""

import warnings

from vos.infra.video_reader import (BACKENDS, FRAME_FOLDER_FPS, FRAME_SUFFIXES, VIDEO_SUFFIXES,  # noqa: F401
                                    DecordSource, FrameFolderSource, PyAVSource, VideoSource, decord_available,
                                    discover_videos, natural_key, open_video, to_rgb_uint8, warn_short_video)

warnings.warn("vos.video_io is deprecated; import from vos.infra.video_reader", DeprecationWarning, stacklevel=2)
