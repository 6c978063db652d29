"""`metagan adapt` for series models: K support series in (CSV or .npy), samples out as CSV, .npy and a plot.

    metagan adapt --checkpoint RUN --support a.csv b.csv c.csv --num 32 --out out/

Writes, in the data's units (the model's fitted normalisation undone: metagan.data.series.to_units):
    out/sample-0000.csv ...   one file per sample: a header ch0, ch1, ..., then a row per time step
    out/samples.npy           every sample, float32 (n, C, L)
    out/plot.png              the supports beside the first samples
Support files are read as the model's training data were (metagan.data.series.read_support_series): each .csv
holds one series (a row per step, a column per channel), each .npy / .npz one or more ((L,), (C, L) or (n, C, L)).
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import torch

from .errors import OutputError

OUTPUTS = re.compile(r"sample-\d{4,}\.csv|samples\.npy|plot\.png")  # what --overwrite may replace


def adapt_series_command(args, model, out_folder) -> int:
    """The series branch of `metagan adapt` (args as its parser gives them; model a series MetaGAN;
    out_folder(out, overwrite, pattern, described, inputs) the CLI's output-folder check)."""
    from .adapt import check_sample_memory, check_support_size
    from .data.series import to_units
    from .data.series_plot import save_series_plot, write_series_csv

    out = Path(args.out)
    old = out_folder(out, args.overwrite, OUTPUTS, "sample-NNNN.csv, samples.npy and plot.png", args.support)
    check_sample_memory(args.num, args.select, model.system.shape, model.system.problem.z_dim, bytes_per_image=8)
    support = model.read_support(args.support)
    note = check_support_size(support.shape[0], model.cfg.task.k_shot)
    if note:
        print(f"warning: {note}", file=sys.stderr)
    adapted = model.adapt(support, args.steps, torch.Generator().manual_seed(args.seed), not args.no_ema,
                          args.keep_generator)
    samples = to_units(adapted.sample(args.num, torch.Generator().manual_seed(args.seed + 1), args.select).cpu(),
                       model.cfg.data)
    for p in old:  # only now, once the new samples exist
        p.unlink()
    width = max(4, len(str(len(samples) - 1)))
    try:
        out.mkdir(parents=True, exist_ok=True)
        for i, x in enumerate(samples):
            write_series_csv(out / f"sample-{i:0{width}d}.csv", x)
        np.save(out / "samples.npy", samples.float().numpy())
        save_series_plot(out / "plot.png", [(to_units(support, model.cfg.data), samples)])
    except OSError as e:
        raise OutputError(f"cannot write to {out} ({e.strerror or e})") from None
    print(f"wrote {len(samples)} series (sample-NNNN.csv, samples.npy) and plot.png to {out}")
    return 0
