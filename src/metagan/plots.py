"""Benchmark plots: one panel per headline metric, a bar per method, error bars where the metric has a CI.

    plot_results(results, "results/metrics.png")   # results: what metagan.benchmark.run_benchmark returns
"""
from __future__ import annotations

from pathlib import Path

PANELS = (("fd", "Fréchet distance (lower is better), 95% CI"), ("fidelity", "class fidelity, 95% CI"),
          ("diversity", "diversity (1 = real)"), ("copy_ratio", "copy ratio (real ~1, copying ~0)"),
          ("protonet_acc", "20-way proto accuracy, 95% CI"), ("lowdata_acc", "low-data accuracy, 5 real/class"))


def plot_results(results: dict, path: str | Path, panels: tuple = PANELS) -> Path:
    """panels: (metric key, title) per column; a suite passes its own."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(results["methods"])
    shots = sorted({k for m in results["methods"].values() for k in m["k"]}, key=int)
    fig, axes = plt.subplots(len(shots), len(panels), figsize=(4 * len(panels), 3.2 * len(shots)), squeeze=False)
    for row, k in enumerate(shots):
        for col, (key, title) in enumerate(panels):
            ax = axes[row][col]
            vals, errs = [], []
            for m in methods:
                r = results["methods"][m]["k"].get(k)
                if r is None:  # not evaluated at this K (a folder whose calls named different --shots)
                    vals.append(float("nan"))
                    errs.append(0.0)
                elif key == "protonet_acc":
                    vals.append(r[key]["mean"])
                    errs.append(r[key]["ci95"])
                elif key == "lowdata_acc":
                    acc = r[key] or {}  # reference rows: none; else the smallest n (5 for Omniglot)
                    vals.append(acc[min(acc, key=int)] if acc else float("nan"))
                    errs.append(0.0)
                else:
                    vals.append(float("nan") if r[key] is None else r[key])
                    errs.append(r.get(key + "_ci95") or 0.0)
            ax.bar(range(len(methods)), vals, yerr=errs if any(errs) else None, color="#4c72b0", capsize=3)
            ax.set_xticks(range(len(methods)))
            ax.set_xticklabels(methods, rotation=60, ha="right", fontsize=7)
            ax.set_title(f"K={k}: {title}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
