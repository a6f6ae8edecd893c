"""Inference conventions: this toolkit's defaults, and the SSL-UVOS release's (``--compat ssl-uvos``).

Each convention is data consumed by :func:`vos.models.backbone.preprocess_frames` (normalisation,
resize) and :func:`vos.segment.attention.key_frame_indices` (key frame rule). ``docs/ssl_uvos_compat.md``
lists every difference between the two modes and the reason for each default.
"""

from __future__ import annotations

from dataclasses import dataclass

from vos.infra.errors import UserError

# The SSL-UVOS release's evaluation normalises frames with the Kinetics-400 statistics (its
# training uses ImageNet's, as DINO did).
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)

SSL_UVOS = "ssl-uvos"
COMPAT_MODES = (SSL_UVOS,)


@dataclass(frozen=True)
class Conventions:
    normalisation: tuple[tuple[float, ...], tuple[float, ...]]  # (mean, std) per RGB channel of [0, 1] frames
    resize: str  # preprocess_frames mode: "antialias" or "bilinear"
    key_frame_rule: str  # key_frame_indices rule: "every" or "release"


def conventions(compat: str | None) -> Conventions:
    """The conventions of ``compat`` (None: this toolkit's defaults)."""
    if compat is None:
        from vos.models.backbone import IMAGENET_MEAN, IMAGENET_STD

        return Conventions((IMAGENET_MEAN, IMAGENET_STD), "antialias", "every")
    if compat == SSL_UVOS:
        return Conventions((KINETICS_MEAN, KINETICS_STD), "bilinear", "release")
    raise UserError(f"unknown --compat {compat!r}; choose one of {', '.join(COMPAT_MODES)}")
