"""`metagan benchmark --suite omniglot --budget small|full --out DIR`: baselines and presets in one harness.

Trains what needs training (each meta-learner preset and the jointly pre-trained baseline) into
DIR/runs/ unless checkpoints are given, evaluates every method at every K with the same protocol and the
same adaptation budget, and writes DIR/results.json, DIR/results.md, DIR/metrics.png (bar charts) and
DIR/samples-<method>.png (each row a held-out class: 5 real images, then generated samples).

A run resumes: methods already in DIR/results.json under the same protocol (and with the same checkpoint
file: its sha256 is stored) are kept, so a killed run goes on where it stopped; methods of the folder that a call
does not name stay in it. Methods split over several processes (`--methods`, one DIR each) are combined into one
report by `merge_results` (`metagan benchmark --merge DIR ... --out DIR`).

A suite (`Suite`, named in SUITES) is what a domain brings: its methods and presets, budgets, held-out classes,
feature network, generators, low-data classifier and augmentation, extra metrics and report. The modules:
harness (Suite, run_benchmark, merge_results: the loop, resuming, the low-data share and repeats), results (the
results.json header and upgrades), report (the report sections every suite shares) and omniglot (the Omniglot
suite); the time-series suite is metagan.series_suite.
"""
from .harness import (NOT_ADAPTED, SUITES, Suite, _weights_changed, get_suite, merge_results, model_generator,
                      run_benchmark)
from .omniglot import BUDGETS, METHODS, OMNIGLOT, REAL_ONLY_ARMS, SHOTS, _method_generator, report_markdown
from .report import (AFFINE_TEXT, BESIDE, LABELS, METRICS, PAIRED, REFERENCES, _interval_note, _lowdata_lines,
                     _paired_lines, _reference_lines, _spread_lines, method_row)
from .results import _header_differences, upgrade_results

__all__ = ["AFFINE_TEXT", "BESIDE", "BUDGETS", "LABELS", "METHODS", "METRICS", "NOT_ADAPTED", "OMNIGLOT", "PAIRED",
           "REAL_ONLY_ARMS", "REFERENCES", "SHOTS", "SUITES", "Suite", "get_suite", "merge_results", "method_row",
           "model_generator", "report_markdown", "run_benchmark", "upgrade_results",
           # the shared report sections other suites compose (metagan.series_suite), and internals the tests reach
           "_header_differences", "_interval_note", "_lowdata_lines", "_method_generator", "_paired_lines",
           "_reference_lines", "_spread_lines", "_weights_changed"]
