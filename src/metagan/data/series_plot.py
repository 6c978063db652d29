"""Series next to their supports as one matplotlib figure, and series written as CSV and .npy files.

    save_series_plot("grid.png", [(support, samples), ...])   # a row per class: supports left, samples right
    write_series_csv("sample-0000.csv", x)                    # x (C, L): a row per step, a column per channel

Series are (n, C, L) tensors in the data's units (metagan.data.series.to_units) or in model space; channel c is
drawn in colour c, every series of a panel in one axes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

MAX_LINES = 16  # series drawn per panel; more are left out of the figure (the files hold them all)


def save_series_plot(path: str | Path, rows: list[tuple[torch.Tensor, torch.Tensor]],
                     titles: list[str] | None = None) -> Path:
    """rows: per class (support (K, C, L), samples (n, C, L)) -> a PNG with two panels a row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 2, figsize=(10, 2.2 * len(rows)), squeeze=False, sharey="row")
    for r, (support, samples) in enumerate(rows):
        for ax, x, what in ((axes[r, 0], support, "support"), (axes[r, 1], samples, "generated")):
            x = x.detach().cpu().double()
            for s in x[:MAX_LINES]:
                for c, channel in enumerate(s):
                    ax.plot(channel.numpy(), color=f"C{c % 10}", lw=0.8, alpha=0.7)
            name = f"{titles[r]}: " if titles else ""
            ax.set_title(f"{name}{what} ({x.shape[0]}{f', {MAX_LINES} shown' if x.shape[0] > MAX_LINES else ''})",
                         fontsize=9)
            ax.tick_params(labelsize=7)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def write_series_csv(path: str | Path, x: torch.Tensor) -> None:
    """One series (C, L) -> CSV: a header ch0, ch1, ..., then a row per time step (what read_series reads back)."""
    a = x.detach().cpu().double().numpy().T  # (L, C)
    header = ",".join(f"ch{c}" for c in range(a.shape[1]))
    np.savetxt(path, a, delimiter=",", header=header, comments="", fmt="%.7g")
