"""ssl_video: self-supervised video representation learning (MoCo + FAME + CO2) and evaluation."""

__version__ = "0.3.0"
