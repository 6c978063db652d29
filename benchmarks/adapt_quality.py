"""Sample quality of the adaptation routes that `metagan perf adapt --routes` times, on the validation classes
(5 background alphabets: for design decisions, never the evaluation split), each route paired with the default
path on the same classes, support draws and seeds. Prints one JSON line per route, then one per paired difference.

    python benchmarks/adapt_quality.py --routes default half-steps half-steps-2x-rates bf16 [--classes 40]

FD: the t interval over support draws of the per-draw difference; fidelity, diversity, copy ratio: the basic
bootstrap interval over classes (metagan.evaluate.paired_bootstrap). Note that the shipped models were trained on
data.split=background, which includes these alphabets: the comparison is between routes, not of the model.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from metagan.adapt import load
from metagan.evaluate import (Protocol, _draws, generate_all, generative_metrics, paired_bootstrap,
                              paired_difference, split_dataset)
from metagan.metrics.features import load_feature_net
from metagan.perf.latency import ROUTES


def route_generator(model, route: str, steps: int | None):
    """A few-shot generator (evaluate's protocol) that adapts by `route` and samples in float32."""
    fn = ROUTES[route]
    steps = steps or model.cfg.train.adapt_steps or model.cfg.meta.inner_steps

    def gen(support, n, generator):
        return fn(model, support, steps, generator).sample(n, generator).float()
    return gen


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default="pretrained:omniglot-metasgd")
    p.add_argument("--routes", nargs="+", default=["default", "half-steps", "half-steps-2x-rates", "bf16"])
    p.add_argument("--classes", type=int, default=40)
    p.add_argument("--draws", type=int, default=2)
    p.add_argument("--samples", type=int, default=50)
    p.add_argument("--shots", type=int, default=5)
    p.add_argument("--steps", type=int, default=None, help="the default route's steps (default: the model's)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = load(args.checkpoint)
    protocol = Protocol(classes=args.classes, samples=args.samples, support_draws=args.draws)
    heldout = split_dataset(args.data_dir, "validation", model.cfg.data.image_size)
    net = load_feature_net()
    _, draws = _draws(heldout, protocol, args.shots)
    results = {}
    for route in dict.fromkeys(["default", *args.routes]):
        t0 = time.process_time()
        fakes = generate_all(route_generator(model, route, args.steps), draws, protocol.samples, protocol.seed)
        r = results[route] = generative_metrics(net, draws, fakes, protocol)
        print(json.dumps({"route": route, "checkpoint": args.checkpoint, "split": "validation", "k": args.shots,
                          "classes": args.classes, "draws": args.draws, "samples": args.samples,
                          **{key: round(r[key], 4) for key in ("fd", "fidelity", "diversity", "copy_ratio")},
                          "fd_draws": [round(x, 4) for x in r["fd_draws"]],
                          "cpu_s": round(time.process_time() - t0, 1)}), flush=True)
    for route in list(results)[1:]:
        a, b = results[route], results["default"]
        out = {"route": route, "minus": "default", "fd": [round(x, 4) for x in paired_difference(a["fd_draws"],
                                                                                               b["fd_draws"])]}
        for key in ("fidelity", "diversity", "copy_ratio"):
            diff, interval = paired_bootstrap(a, b, key)
            out[key] = [round(diff, 4), [round(x, 4) for x in interval]]
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
