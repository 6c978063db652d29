"""The reference the benchmarks measure against: a per-task autograd loop, the way learn2learn and higher
compute a meta-gradient (clone the meta-parameters, adapt with `torch.autograd.grad`, backward the query
losses, accumulate `.grad`), computing exactly the update of our meta-learners.

    >>> grads = autograd_meta_gradients(learner, meta, tasks)   # same structure as meta_gradients(...)[0]

It reads the same `GanProblem` modules and task noise as the learners, but none of their code: no
`torch.func` transform, every gradient is a plain `torch.autograd.grad`. Autograd prunes
what no requested input needs (e.g. the generator's backward of the discriminator's query loss), so this
is the fair, careful version of that style, not a strawman.

Every term of the objective is written out again here (the main GAN losses, WGAN-GP, R1, the matching-aware
term, the diversity term, the query loss's outer_adv and outer_mmd weights). A loss option it does not know
is refused (`check_terms`), so a timing never compares the engine with a cheaper objective.
"""
from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from .. import losses
from ..errors import ConfigError
from ..functional import Meta, Params, index, rate_at
from ..meta import MAML, GanProblem, Reptile


# The LossConfig fields this reference computes. Any other field set away from its default is a term the
# reference would leave out, which would make the engine look slower or faster than it is: refused instead.
IMPLEMENTED = frozenset({"kind", "gp_weight", "r1_gamma", "mismatch", "diversity", "diversity_tau",
                         "outer_adv", "outer_mmd"})


def check_terms(loss) -> None:
    """Raise ConfigError if the loss config (a LossConfig) switches on a term this reference does not compute."""
    off = [f"loss.{f.name}={getattr(loss, f.name)!r}" for f in dataclasses.fields(loss)
           if f.name not in IMPLEMENTED and getattr(loss, f.name) != f.default]
    if off:
        raise ConfigError(f"the autograd reference does not compute {', '.join(off)}: timing it beside the engine "
                          f"would compare different objectives; leave those options at their defaults or "
                          f"implement them in metagan.perf.baseline")


def _input_grad(problem: GanProblem, pd: Params, x: Tensor, context: Tensor) -> Tensor:
    """Per-sample d logit / d x, with a graph (the penalties are differentiated again)."""
    if not x.requires_grad:
        x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(problem.discriminate(pd, x, context).sum(), x, create_graph=True)
    return g.flatten(1)


def d_loss(problem: GanProblem, pd: Params, real: Tensor, fake: Tensor, eps: Tensor,
           context: Tensor, real_shift: int = 0, other: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """GanProblem.d_loss with the penalties' input gradients taken by autograd and the matching-aware pairs
    judged in a separate D call: (loss, fake_logits)."""
    ctx_r, ctx_f, ctx = problem.d_contexts(context, real.shape[0], fake.shape[0], real_shift)
    logits = problem.discriminate(pd, torch.cat([real, fake]), ctx)
    real_logits, fake_logits = logits[: real.shape[0]], logits[real.shape[0]:]
    loss = problem._d_main(real_logits, fake_logits)
    cfg = problem.loss
    if cfg.kind == "wgan-gp":
        e = eps.view(-1, *([1] * (real.dim() - 1)))
        norm = torch.sqrt(_input_grad(problem, pd, e * real + (1.0 - e) * fake, ctx_f).pow(2).sum(1) + 1e-12)
        loss = loss + cfg.gp_weight * (norm - 1.0).pow(2).mean()
    if cfg.r1_gamma > 0:
        loss = loss + 0.5 * cfg.r1_gamma * _input_grad(problem, pd, real, ctx_r).pow(2).sum(1).mean()
    if other is not None and cfg.mismatch > 0:
        mismatched = problem.discriminate(pd, real, problem.refs(other, real.shape[0]))
        loss = loss + cfg.mismatch * losses.FAKE_TERMS[cfg.kind](mismatched)
    return loss, fake_logits


def g_regulariser(problem: GanProblem, pg: Params, fake: Tensor, z: Tensor, context: Tensor) -> Tensor | float:
    """The diversity-sensitive term of G's losses (loss.diversity; 0 when off), from a second generator call
    at -z with the same references."""
    cfg = problem.loss
    if cfg.diversity <= 0:
        return 0.0
    return cfg.diversity * losses.diversity_term(fake, problem.generate(pg, -z, context), z, -z, cfg.diversity_tau)


def g_query_loss(problem: GanProblem, pg: Params, fake: Tensor, fake_logits: Tensor, query: Tensor,
                 support: Tensor, z: Tensor, d_feat: Params) -> Tensor:
    """The generator's query loss: outer_adv x its adversarial loss + its regulariser [+ outer_mmd x MMD^2
    between the fakes and the query images in the hidden features of d_feat (the meta-discriminator, constant),
    each image judged beside its own reference]."""
    cfg = problem.loss
    loss = cfg.outer_adv * problem._g_main(fake_logits) + g_regulariser(problem, pg, fake, z, support)
    if cfg.outer_mmd > 0:
        ctx_real, ctx_fake, _ = problem.d_contexts(support, query.shape[0], fake.shape[0])
        match = losses.mmd2(problem.features(d_feat, fake, ctx_fake), problem.features(d_feat, query, ctx_real))
        loss = loss + cfg.outer_mmd * match
    return loss


def _g_loss(problem: GanProblem, pg: Params, pd: Params, z: Tensor, context: Tensor) -> Tensor:
    fake = problem.generate(pg, z, context)
    logits = problem.discriminate(pd, fake, problem.refs(context, z.shape[0]))
    return problem._g_main(logits) + g_regulariser(problem, pg, fake, z, context)


def _step(params: Params, loss_fn, lr, second_order: bool) -> Params:
    """One SGD step on loss_fn(params), a player's own loss with the other player held fixed.

    First order the gradient is a constant (no graph), as with learn2learn's first_order. Second order it
    is taken at a zero perturbation u of the parameters: the other player's parameters depend on these
    through earlier inner steps, and a plain autograd.grad w.r.t. `params` would also differentiate along
    that path, whereas the update (as torch.func.grad in GanProblem.inner_loop) is the partial derivative."""
    names = list(params)
    if second_order:
        u = {k: torch.zeros_like(v, requires_grad=True) for k, v in params.items()}
        grads = torch.autograd.grad(loss_fn({k: params[k] + u[k] for k in names}), [u[k] for k in names],
                                    create_graph=True)
    else:
        grads = torch.autograd.grad(loss_fn(params), [params[k] for k in names])
    return {k: params[k] - lr[k] * g for k, g in zip(names, grads)}


def adapt(problem: GanProblem, pg: Params, pd: Params, lr_g, lr_d, support: Tensor, noise: dict,
          sched, second_order: bool) -> tuple[Params, Params]:
    """The adversarial inner loop of one task (K support examples), as in GanProblem.inner_loop."""
    for t in range(sched.steps):
        for j in range(sched.n_d):
            with torch.set_grad_enabled(second_order):  # first order: the fake is a constant for D
                fake = problem.generate(pg, noise["z_d"][t, j], support)
            eps = noise["eps_d"][t, j]
            pd = _step(pd, lambda p: d_loss(problem, p, support, fake, eps, support, 1, noise.get("other"))[0],
                       rate_at(lr_d, t), second_order)
        for j in range(sched.n_g):
            z = noise["z_g"][t, j]
            pg = _step(pg, lambda p: _g_loss(problem, p, pd, z, support), rate_at(lr_g, t), second_order)
    return pg, pd


def autograd_meta_gradients(learner, meta: Meta, tasks: dict) -> Meta:
    """Mean meta-gradient over the tasks of a meta-batch (leading B dim), one task at a time.

    learner: MAML, FOMAML, Reptile or MetaSGD; meta: its meta-parameters. Returns {group: {name: grad}},
    the structure of meta. First order, the adapted parameters are the clones minus constant steps, so
    the query losses' gradients reach the leaves unchanged: the gradient at the adapted parameters."""
    problem, sched = learner.problem, learner.sched
    check_terms(problem.loss)
    leaves = {gp: {k: v.detach().clone().requires_grad_(True) for k, v in p.items()} for gp, p in meta.items()}
    n = tasks["support"].shape[0]
    if not isinstance(learner, (MAML, Reptile)):
        raise ConfigError(f"the autograd baseline computes MAML, FOMAML, Meta-SGD and Reptile updates, not "
                          f"meta.learner={learner.name}")
    second_order = learner.second_order
    d_feat = {k: v.detach() for k, v in leaves["d"].items()}  # outer_mmd's features: the meta-discriminator's
    for i in range(n):
        task = index(tasks, i)
        lr_g, lr_d = learner.rates(leaves)
        pg = {k: v.clone() for k, v in leaves["g"].items()}  # clone: the graph leads back to the leaves
        pd = {k: v.clone() for k, v in leaves["d"].items()}
        pg, pd = adapt(problem, pg, pd, lr_g, lr_d, task["support"], task["noise"], sched, second_order)
        if isinstance(learner, Reptile):  # the displacement theta - theta', no backward
            _accumulate(leaves, "g", {k: leaves["g"][k] - pg[k] for k in pg})
            _accumulate(leaves, "d", {k: leaves["d"][k] - pd[k] for k in pd})
            continue
        fake = problem.generate(pg, task["noise"]["z_o"], task["support"])
        ld, fake_logits = d_loss(problem, pd, task["query"], fake, task["noise"]["eps_o"], task["support"],
                                 other=task["noise"].get("other"))
        lg = g_query_loss(problem, pg, fake, fake_logits, task["query"], task["support"], task["noise"]["z_o"],
                          d_feat)
        for loss, groups in ((ld, ("d", "lr_d")), (lg, ("g", "lr_g"))):  # each player its own loss
            inputs = [(gp, k, v) for gp in groups if gp in leaves for k, v in leaves[gp].items()]
            grads = torch.autograd.grad(loss, [v for _, _, v in inputs], retain_graph=True)
            for (gp, k, _), g in zip(inputs, grads):
                _accumulate(leaves, gp, {k: g})
    return {gp: {k: v.grad / n for k, v in p.items()} for gp, p in leaves.items()}


def _accumulate(leaves: Meta, group: str, grads: dict[str, Tensor]) -> None:
    """leaf.grad += g, as backward() does across the tasks of a meta-batch."""
    for k, g in grads.items():
        leaf = leaves[group][k]
        leaf.grad = g.detach().clone() if leaf.grad is None else leaf.grad + g.detach()
