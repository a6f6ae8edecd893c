"""Infrastructure shared by both packages of the toolkit, ``vos`` and ``ssl_video``.

The user-facing error type (:mod:`~vos.infra.errors`), atomic file writes and safe loading of the
files users pass in (:mod:`~vos.infra.fileio`), YAML → dataclass configs and the command-line flags
derived from them (:mod:`~vos.infra.config`, :mod:`~vos.infra.config_flags`), torch.distributed
set-up (:mod:`~vos.infra.distributed`), training logs (:mod:`~vos.infra.training_log`), video
reading and writing (:mod:`~vos.infra.video_reader`, :mod:`~vos.infra.video_writer`), progress bars
(:mod:`~vos.infra.progress`), the rules for where a command may write (:mod:`~vos.infra.outputs`)
and the command-line driver (:mod:`~vos.infra.cli`).

It imports nothing else from ``vos`` and nothing from ``ssl_video``
(``tests/test_package_dependencies.py``): the segmentation pipeline and the representation
learning both build on it, and it knows neither.
"""
