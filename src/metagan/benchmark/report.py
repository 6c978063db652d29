"""The report sections every suite's results.md shares: a method's table row with its intervals, the rows against
the reference rows (a support copier, held-out real data), the paired differences between methods, the low-data
arms and their repeats over protocol seeds. The defaults are the image suite's; a suite passes its own metrics,
references and texts (metagan.series_suite)."""
from __future__ import annotations

from ..evaluate import POOLED, paired_bootstrap, paired_difference
from ..lowdata import ARMS

# the generative metrics of every K table, in column order
METRICS = ("fd", "kid", "precision", "recall", "density", "coverage", "fidelity", "diversity", "copy_ratio")
# reference rows, through the same harness: a copier (the K supports cycled) and held-out real images of the class
REFERENCES = {"support-copy": "reference: copies the supports", "real": "reference: held-out real images"}


def method_row(name: str, r: dict, metrics, references: dict) -> str:
    """One method's row of a K table: its metric cells, low-data accuracies and prototypical-network accuracy."""
    cells = [_metric_cell(r, x) for x in metrics]
    low = "/".join(f"{r['lowdata_acc'][n]:.3f}" for n in sorted(r["lowdata_acc"], key=int)) \
        if r.get("lowdata_acc") else "-"
    pa = r["protonet_acc"]
    label = f"{name} ({references[name]})" if name in references else name
    return f"| {label} | " + " | ".join(cells) + f" | {low} | {pa['mean']:.3f} ± {pa['ci95']:.3f} |"


def _metric_cell(r: dict, key: str) -> str:
    """A metric as the table shows it: the value [95% bootstrap interval over classes], or (folders of protocol
    version 1) ± the t half-width over draws where one was stored."""
    v = r.get(key)
    if v is None:
        return "-"
    if key in POOLED and r.get("bootstrap") and r.get(key + "_ci95") is not None:  # t over draws, as evaluate stores
        return f"{v:.3f} [{v - r[key + '_ci95']:.3f}, {v + r[key + '_ci95']:.3f}]"
    if r.get(key + "_interval") is not None:
        lo, hi = r[key + "_interval"]
        return f"{v:.3f} [{lo:.3f}, {hi:.3f}]"
    return f"{v:.3f}" + ("" if r.get(key + "_ci95") is None else f" ± {r[key + '_ci95']:.3f}")


def _interval_note(results: dict) -> str:
    rows = [r for m in results["methods"].values() for r in m["k"].values() if r.get("bootstrap")]
    if rows:
        b = rows[0]["bootstrap"]
        sizes = ", ".join(f"{r['distribution_samples']} at K = {r['k']}" for r in
                          {r["k"]: r for r in rows if r.get("distribution_samples")}.values())
        return (f"Every generative metric: mean over the support draws [95% interval]: FD and KID the t interval "
                "over the support draws (resampling classes repeats them, which raises a pooled distance on every "
                f"resample); the others the basic bootstrap interval over the evaluated classes ({b['resamples']} "
                "resamples, all draws of a class together, the same resamples for every method). FD, KID and PRDC "
                f"use as many generated images per class and draw as the real pool holds ({sizes}).")
    return "FD and fidelity: mean over the support draws ± the 95% confidence half-width (t)."


# the reference table's metrics: the sign of "better" where there is one, and the decimals shown
BESIDE = (("fd", -1, 3), ("fidelity", +1, 3), ("recall", +1, 3), ("coverage", +1, 3), ("copy_ratio", 0, 3))


def _reference_lines(results: dict, shots: list[str], references: dict = REFERENCES,
                     beside: tuple = BESIDE) -> list[str]:
    """Per K: the two reference rows, then every generating method's FD, fidelity, recall, coverage and copy ratio
    (`beside`: (key, sign of better, decimals)) beside `real`'s: value (method - real [95% paired bootstrap
    interval])."""
    methods = results["methods"]
    real = methods.get("real")
    lines = []
    for k in shots:
        base = real and real["k"].get(k)
        if not base or not base.get("bootstrap"):
            continue
        rows = []
        for name, m in methods.items():
            r = m["k"].get(k)
            if not r or r.get("fd") is None:
                continue
            if name in references:
                cells = [f"{r[key]:.{nd}f}" for key, _, nd in beside]
                name = f"{name} ({references[name]})"
            else:
                cells = [_beside_cell(r, base, key, nd) for key, _, nd in beside]
            rows.append(f"| {name} | " + " | ".join(cells) + " |")
        lines += [f"## Against the references, K = {k}", "",
                  "Each method's value, then its difference from `real` (held-out real images: its fidelity is the "
                  "ceiling an honest generator can reach, its copy ratio what real drawings score) with its 95% "
                  "interval: FD ± t over the paired support draws, the others [paired bootstrap over classes]. "
                  "`support-copy` shows what copying scores.", "",
                  "| method | " + " | ".join(LABELS.get(key, key) for key, _, _ in beside) + " |",
                  "|---" * (1 + len(beside)) + "|"]
        lines += rows + [""]
    return lines


def _beside_cell(r: dict, base: dict, key: str, nd: int) -> str:
    """The value, then its difference from the base row with the interval `_paired_cell` gives."""
    return f"{r[key]:.{nd}f} ({_paired_cell(r, base, key, 0, nd, verdict=False)})"


# the paired metrics, the sign of "better" (FD lower, fidelity higher), and the decimals shown
PAIRED = (("fd", -1, 3), ("fidelity", +1, 4))
# column headings of metrics in the report's tables
LABELS = {"fd": "FD", "fidelity": "fidelity", "recall": "recall", "coverage": "coverage", "copy_ratio": "copy ratio"}


def _paired_cell(a: dict, b: dict, key: str, better: int, nd: int, verdict: bool = True) -> str:
    """a - b. With bootstrap values on both sides (the same resamples) and a metric that is bootstrapped: [basic 95%
    bootstrap interval of the per-resample differences]; otherwise (FD, KID; version 1 folders) the per-draw mean
    ± t half-width. The verdict: better/worse where the interval excludes 0, else tie."""
    if key not in POOLED and a.get(key + "_boot") is not None and a.get("bootstrap") == b.get("bootstrap"):
        diff, (lo, hi) = paired_bootstrap(a, b, key)
        if diff != diff or lo != lo:
            return "undefined (non-finite draws)"
        word = "tie" if lo <= 0 <= hi else ("better" if diff * better > 0 else "worse")
        return f"{diff:+.{nd}f} [{lo:+.{nd}f}, {hi:+.{nd}f}]" + (f" ({word})" if verdict else "")
    diff, half = paired_difference(a[key + "_draws"], b[key + "_draws"])
    if diff != diff:
        return "undefined (non-finite draws)"
    if len(a[key + "_draws"]) < 2:
        return f"{diff:+.{nd}f} (one draw: no interval)"
    word = "tie" if abs(diff) <= half else ("better" if diff * better > 0 else "worse")
    return f"{diff:+.{nd}f} ± {half:.{nd}f}" + (f" ({word})" if verdict else "")


def _paired_lines(results: dict, shots: list[str], references: dict = REFERENCES, paired: tuple = PAIRED) -> list[str]:
    """Each metagan method against each other generating method of the folder, per K: the paired difference of
    FD and of fidelity over the support draws (the same classes, draws and seeds for every method), mean ± 95%
    half-width (t). "better"/"worse" where the interval excludes 0, else "tie"."""
    methods = results["methods"]
    ours = [n for n in methods if n.startswith("metagan-")]
    others = [n for n in methods if not n.startswith("metagan-") and n not in references]  # those: their own section
    lines = []
    for k in shots:
        rows, draws, boot = [], 0, None
        for a in ours:
            for b in others:
                ra, rb = methods[a]["k"].get(k), methods[b]["k"].get(k)
                if not ra or not rb or ra.get("fd_draws") is None or rb.get("fd_draws") is None:
                    continue  # not evaluated at this K, or a method without generated images
                cells = [_paired_cell(ra, rb, *spec) for spec in paired]
                draws = len(ra["fd_draws"])
                if ra.get("fidelity_boot") is not None and ra.get("bootstrap") == rb.get("bootstrap"):
                    boot = ra["bootstrap"]["resamples"]
                rows.append(f"| {a} | {b} | " + " | ".join(cells) + " |")
        if rows:
            rest = "fidelity" if [key for key, _, _ in paired] == ["fd", "fidelity"] else "the others"
            how = (f"FD ± 95% half-width (t over the {draws} draws); {rest} [basic 95% interval of the per-resample "
                   f"differences, paired bootstrap over classes, {boot} resamples]" if boot else
                   f"± 95% half-width (t, {draws} draws)")
            lines += [f"## Paired differences, K = {k}", "",
                      f"Method minus baseline over the same classes, support draws and seeds, mean {how}; "
                      "better/worse where the interval excludes 0.", "",
                      "| method | against | " + " | ".join(
                          f"{LABELS.get(key, key)} difference ({'lower' if better < 0 else 'higher'} is better)"
                          for key, better, _ in paired) + " |", "|---" * (2 + len(paired)) + "|"] + rows + [""]
    return lines


AFFINE_TEXT = "affine: each real image under a fresh random affine transform in every batch"


def _lowdata_lines(results: dict, arms: tuple[str, ...] = ARMS, augmentation: str = AFFINE_TEXT) -> list[str]:
    """Every low-data arm side by side (accuracy at each n), with each row's generated share and the validation
    accuracy per share it was chosen by. augmentation: what the classic-augmentation arm does."""
    rows, ns = [], ""
    for name, m in results["methods"].items():
        low = next((r["lowdata"] for r in m["k"].values() if r.get("lowdata")), None)
        if not low:  # a reference row, or a row stored before the arms
            continue
        cells = []
        for arm in arms:
            acc = low["arms"].get(arm)
            ns = "/".join(sorted(acc, key=int)) if acc else ns
            cells.append("/".join(f"{acc[n]:.3f}" for n in sorted(acc, key=int)) if acc else "-")
        chosen = m.get("lowdata_share")
        share = "-" if low["share"] is None else f"{low['share']:g}" + (
            " (" + ", ".join(f"{s}: {a:.3f}" for s, a in chosen["acc"].items()) + ")" if chosen else " (default)")
        rows.append(f"| {name} | {share} | " + " | ".join(cells) + " |")
    if not rows:
        return []
    updates = results["protocol"].get("lowdata_updates")
    return [f"## Low-data arms (n = {ns} real images per class)", "",
            f"Every arm trains the same classifier for {updates} updates of 64 images from the same initialisation, "
            f"on the same split of each class. {augmentation}; generated: that share of each batch drawn from the "
            "method's generated examples, the share chosen on validation classes (accuracy per share tried in "
            "brackets).", "",
            "| method | generated share | " + " | ".join(arms) + " |", "|---" * (2 + len(arms)) + "|"] + rows + [""]


def _spread_arms(name: str, spread: dict) -> dict[str, list[float]]:
    """A row's repeats per arm; a row stored before the arms holds one list, its only arm."""
    if isinstance(spread["acc"], dict):
        return spread["acc"]
    return {"none" if name == "no-augmentation" else "generated": spread["acc"]}


def _gain(acc: list[float], base: list[float] | None) -> str:
    """Paired gain in points over a reference arm on the seeds both ran: mean ± 95% half-width (t)."""
    if base is None:
        return "-"
    common = min(len(acc), len(base))
    diff, half = paired_difference(acc[:common], base[:common])
    return f"{100 * diff:+.1f} ± {100 * half:.1f} ({common} seeds)"


def _spread_lines(results: dict, augmented: str = "affine") -> list[str]:
    """The low-data repeats (`--lowdata-seeds`): each arm's accuracy per protocol seed, its paired gain over
    "none" (the no-augmentation row) and, for the generated arms, over the classic-augmentation arm (`augmented`:
    the row and arm "affine" for images)."""
    spread = {name: m["lowdata_seeds"] for name, m in results["methods"].items() if "lowdata_seeds" in m}
    if not spread:
        return []
    arms = {name: _spread_arms(name, sp) for name, sp in spread.items()}
    none, affine = arms.get("no-augmentation", {}).get("none"), arms.get(augmented, {}).get(augmented)
    lines = [f"## Low-data spread (n = {next(iter(spread.values()))['n']}, repeated over protocol seeds)", "",
             "Gains in points, paired over the same classes, splits and classifier streams: mean of the per-seed "
             "differences ± 95% half-width (t).", "",
             f"| method | arm | seeds | accuracy per seed | gain over none | gain over {augmented} |", "|---" * 6 + "|"]
    for name, sp in spread.items():
        seeds = f"{sp['seeds'][0]}-{sp['seeds'][-1]}"
        for arm, acc in arms[name].items():
            over_none = _gain(acc, none) if arm != "none" else "-"
            over_affine = _gain(acc, affine) if "generated" in arm else "-"
            lines.append(f"| {name} | {arm} | {seeds} | " + ", ".join(f"{a:.3f}" for a in acc)
                         + f" | {over_none} | {over_affine} |")
    return lines + [""]


def _real_copy(results: dict, shots: list[str]) -> str:
    """Held-out real images' copy ratio, per K (it falls as K grows: more supports, a nearer nearest one)."""
    cells = []
    for k in shots:
        ratios = [m["k"][k]["copy_ratio_real"] for m in results["methods"].values()
                  if m["k"].get(k, {}).get("copy_ratio_real") is not None]
        if ratios:
            cells.append(f"{ratios[0]:.2f} at K = {k}")
    return ", ".join(cells) or "about 1"
