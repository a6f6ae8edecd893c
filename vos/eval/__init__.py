"""Evaluation: DAVIS J&F (official protocol), FG-ARI / mIoU / mBO on YouTube-VIS and synthetic data."""

from vos.eval.davis_eval import DavisResult, evaluate_davis
from vos.eval.synth import SynthResult, evaluate_synth
from vos.eval.ytvis import ObjectMetricsResult, evaluate_ytvis

__all__ = ["DavisResult", "ObjectMetricsResult", "SynthResult", "evaluate_davis", "evaluate_synth", "evaluate_ytvis"]
