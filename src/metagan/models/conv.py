"""Convolutional generator and discriminator for square images whose side is a multiple of 4
(28x28 and 32x32 for Omniglot, 16x16 or 8x8 for the digits demo).

Generator (model.condition=none):
                z (B, z_dim) -> fc -> (2w, s/4, s/4) -> up, conv -> (w, s/2, s/2) -> up, conv -> (w, s, s)
                -> conv -> (C, s, s), tanh: images in [-1, 1].
Discriminator:  x (B, C, s, s) -> conv4 s2 -> (w, s/2) -> conv4 s2 -> (2w, s/4) -> fc -> (B,) logits.

Pair conditioning (model.condition=image, after DAGAN, Antoniou et al. 2017): each generated sample is a
transformation of one support image. The generator (`PairGenerator`) encodes the reference image x_ref (C, s, s)
to (w, s/2) and (2w, s/4) features, joins z projected to (2w, s/4) at the bottleneck, and decodes to a smooth
displacement field along which it resamples x_ref: strokes keep their look and z moves them. The discriminator
judges pairs (x, x_ref) stacked on the channel axis: a real pair is two different drawings of one class, a fake
pair a generated sample and the image it came from, so copying x_ref is detectable and the generator is pushed
to vary it the way different people draw the same character. The GAN problem chooses the references
(`GanProblem.refs`); both networks receive them as their per-sample context (B, C, s, s).

Upsample-then-convolve avoids the checkerboard of free transposed convolutions. It is computed as one stride-2
transposed convolution whose 4x4 kernel is tied to the 3x3 one by a fixed linear map (`upsample_conv`): the same
function of the same parameters, with 2.25x fewer multiply-adds and no upsampled copy. A grey image's
one-channel output convolution runs as a depthwise convolution and a sum over channels (`to_image`), 2-4x
faster on the CPU than the one-output-channel convolution kernel. Normalisation, when on, is
GroupNorm (per sample, no running statistics): samples never interact, which the per-sample gradient
penalty of WGAN-GP relies on.
"""
from __future__ import annotations

import torch
from torch import nn

from .resample import sample


def _norm(kind: str, ch: int) -> nn.Module:
    if kind == "none":
        return nn.Identity()
    if kind == "layer":
        return nn.GroupNorm(1, ch)
    return nn.GroupNorm(min(8, ch), ch)


SLOPE = 0.2  # of every leaky ReLU

# Nearest 2x upsampling then a 3x3 convolution (padding 1), per axis: output row 2i is w0 x[i-1] + (w1 + w2) x[i]
# and row 2i+1 is (w0 + w1) x[i] + w2 x[i+1]. That is conv_transpose (stride 2, padding 1) with the 4 taps
# (w2, w1 + w2, w0 + w1, w0): row t of _UPSAMPLE_TAPS says which of w0..w2 sum into tap t.
_UPSAMPLE_TAPS = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])


def upsample_conv(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """conv(interpolate(x, scale_factor=2, mode="nearest")) for a 3x3 padding-1 conv: (B, I, H, W) -> (B, O, 2H, 2W)"""
    return _upsample_conv(x, conv.weight, conv.bias)


def _upsample_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    m = _UPSAMPLE_TAPS.to(weight)
    kernel = torch.einsum("ty,ux,oiyx->iotu", m, m, weight)  # (I, O, 4, 4), transposed-conv layout
    return nn.functional.conv_transpose2d(x, kernel, bias, stride=2, padding=1)


def to_image(h: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """conv(h) for the 3x3, padding-1 output convolution: (B, C, S, S) -> (B, out, S, S). With one output
    channel it is the sum over channels of a depthwise convolution (same function)."""
    return _to_image(h, conv.weight, conv.bias)


def _to_image(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    if weight.shape[0] != 1:
        return nn.functional.conv2d(h, weight, bias, padding=1)
    y = nn.functional.conv2d(h, weight.transpose(0, 1), None, padding=1, groups=h.shape[1])  # (B, C, S, S)
    return y.sum(1, keepdim=True) + bias.view(1, 1, 1, 1)


def _group_norm(norm: nn.Module, p: dict[str, torch.Tensor], name: str, h: torch.Tensor) -> torch.Tensor:
    """`norm` (nn.Identity or nn.GroupNorm, named `name` in the module) applied to h with the parameters in p."""
    if not isinstance(norm, nn.GroupNorm):
        return h
    return nn.functional.group_norm(h, norm.num_groups, p[f"{name}.weight"], p[f"{name}.bias"], norm.eps)


class ConvGenerator(nn.Module):
    def __init__(self, z_dim: int, channels: int, size: int, width: int, norm: str = "none"):
        super().__init__()
        self.z_dim, self.channels, self.size = z_dim, channels, size
        self.s0 = size // 4
        w = width
        self.fc = nn.Linear(z_dim, 2 * w * self.s0 * self.s0)
        self.conv1 = nn.Conv2d(2 * w, w, 3, padding=1)
        self.norm1 = _norm(norm, w)
        self.conv2 = nn.Conv2d(w, w, 3, padding=1)
        self.norm2 = _norm(norm, w)
        self.out = nn.Conv2d(w, channels, 3, padding=1)

    def forward(self, z: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        # z (B, z_dim) -> (B, C, S, S); unconditional: context is ignored
        return self.functional(dict(self.named_parameters()), z, context)

    def functional(self, p: dict[str, torch.Tensor], z: torch.Tensor, context: torch.Tensor | None = None
                   ) -> torch.Tensor:
        """forward with the parameters p (names as in named_parameters): what functional_call computes, in plain
        tensor ops, without swapping parameters into the module (GanProblem calls this in its inner loops)."""
        F = nn.functional
        h = F.leaky_relu(F.linear(z, p["fc.weight"], p["fc.bias"]), SLOPE).view(z.shape[0], -1, self.s0, self.s0)
        h = F.leaky_relu(_group_norm(self.norm1, p, "norm1", _upsample_conv(h, p["conv1.weight"], p["conv1.bias"])),
                         SLOPE)  # (B, w, S/2, S/2)
        h = F.leaky_relu(_group_norm(self.norm2, p, "norm2", _upsample_conv(h, p["conv2.weight"], p["conv2.bias"])),
                         SLOPE)  # (B, w, S, S)
        return torch.tanh(_to_image(h, p["out.weight"], p["out.bias"]))


class PairGenerator(nn.Module):
    """z (B, z_dim), x_ref (B, C, s, s) -> (B, C, s, s): the reference image warped.

    An encoder-decoder over the reference stops at s/2 and predicts a displacement field there (2 channels,
    tanh-bounded to MAX_DISP in grid_sample's [-1, 1] coordinates, upsampled bilinearly to s, so it is smooth); the
    sample is the reference image resampled along it. Zero-initialised: the untrained generator returns its
    reference.

    affine > 0: a global affine component from z and the reference's pooled s/4 features is added to
    the displacement field (linear part and translation each tanh-bounded to `affine` in [-1, 1] coordinates), so
    z can rotate, scale, shear and shift the whole character, as classic augmentation does, with a distribution
    the GAN learns. Zero-initialised.

    resample: how the reference is read between its pixels, bilinear or bicubic (sharper: bilinear interpolation
    blurs thin strokes wherever the warp moves them by a fraction of a pixel); bicubic samples are clamped to the
    images' range.

    posterior: also an encoder q(z | x_ref, x) (two strided convolutions over the pair, a linear map to the mean
    and log-variance of z), created after every other layer so the rest initialises as without it; GanProblem's
    cVAE term (loss.recon) trains it, and sampling never uses it."""

    paired = True
    MAX_DISP = 0.25  # 1/8 of the image width

    def __init__(self, z_dim: int, channels: int, size: int, width: int, norm: str = "none", affine: float = 0.0,
                 resample: str = "bilinear", posterior: bool = False):
        super().__init__()
        self.z_dim, self.channels, self.size = z_dim, channels, size
        self.mode = resample
        self.affine_bound = affine
        self.s0 = size // 4
        w = width
        self.enc1 = nn.Conv2d(channels, w, 4, stride=2, padding=1)  # (w, s/2)
        self.enc2 = nn.Conv2d(w, 2 * w, 4, stride=2, padding=1)  # (2w, s/4)
        self.fc = nn.Linear(z_dim, 2 * w * self.s0 * self.s0)
        self.conv1 = nn.Conv2d(4 * w, w, 3, padding=1)
        self.norm1 = _norm(norm, w)
        self.flow = nn.Conv2d(w, 2, 3, padding=1)  # the displacement field at s/2; nothing is drawn
        nn.init.zeros_(self.flow.weight)
        nn.init.zeros_(self.flow.bias)
        self.affine = nn.Linear(z_dim + 2 * w, 6) if affine > 0 else None
        if self.affine is not None:
            nn.init.zeros_(self.affine.weight)
            nn.init.zeros_(self.affine.bias)
        self.act = nn.LeakyReLU(SLOPE)
        self.post = None
        if posterior:
            self.post = nn.Sequential(nn.Conv2d(2 * channels, w, 4, stride=2, padding=1), nn.LeakyReLU(SLOPE),
                                      nn.Conv2d(w, 2 * w, 4, stride=2, padding=1), nn.LeakyReLU(SLOPE),
                                      nn.Flatten(), nn.Linear(2 * w * self.s0 * self.s0, 2 * z_dim))

    def forward(self, z: torch.Tensor | None, context: torch.Tensor, encode: torch.Tensor | None = None):
        """The references warped by z; with encode = target images (B, C, s, s) instead the mean and log-variance
        (B, z_dim) each of q(z | reference, target) (z is not read)."""
        if encode is not None:
            mu, logvar = self.post(torch.cat([encode, context], 1)).chunk(2, 1)
            return mu, logvar.clamp(-10, 4)
        return self._resample(context, *self.fields(z, context))

    def fields(self, z: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The displacement field (B, 2, s/2, s/2) and affine map (B, 6) or None that z gives the references."""
        e1 = self.act(self.enc1(ref))  # (B, w, s/2, s/2)
        e2 = self.act(self.enc2(e1))  # (B, 2w, s/4, s/4)
        h = self.act(self.fc(z)).view(z.shape[0], -1, self.s0, self.s0)
        h = self.act(self.norm1(upsample_conv(torch.cat([h, e2], 1), self.conv1)))  # (B, w, s/2, s/2)
        theta = None
        if self.affine is not None:
            theta = torch.tanh(self.affine(torch.cat([z, e2.mean((2, 3))], 1))) * self.affine_bound  # (B, 6)
        return torch.tanh(self.flow(h)) * self.MAX_DISP, theta

    def _resample(self, x: torch.Tensor, flow: torch.Tensor, theta: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, C, s, s) at the pixel centres + flow (B, 2 = (dx, dy), s/2, s/2) upsampled to s [+ the affine
        displacement theta (B, 6) = (a, b, c, d, tx, ty): (a x + b y + tx, c x + d y + ty)] -> (B, C, s, s).
        Background is -1 in model space: shifted so that the zero padding is background. grid_sample, or
        its any-order form under vmap (metagan.models.resample)."""
        s = self.size
        flow = nn.functional.interpolate(flow, size=(s, s), mode="bilinear", align_corners=False)
        c = torch.linspace(-1 + 1 / s, 1 - 1 / s, s, dtype=x.dtype, device=x.device)  # pixel centres
        ident = torch.stack(torch.meshgrid(c, c, indexing="xy"), -1)  # (s, s, 2): [..., 0] = x, [..., 1] = y
        grid = ident + flow.permute(0, 2, 3, 1)
        if theta is not None:
            lin, shift = theta[:, :4].view(-1, 1, 2, 2), theta[:, 4:].view(-1, 1, 1, 2)
            grid = grid + (lin @ ident.view(1, -1, 2, 1)).view(-1, s, s, 2) + shift
        out = sample(x + 1, grid, self.mode)
        return out - 1 if self.mode == "bilinear" else out.clamp(0, 2) - 1


class ConvDiscriminator(nn.Module):
    def __init__(self, channels: int, size: int, width: int, paired: bool = False):
        super().__init__()
        w = width
        self.paired = paired
        self.conv1 = nn.Conv2d(2 * channels if paired else channels, w, 4, stride=2, padding=1)
        self.conv2 = nn.Conv2d(w, 2 * w, 4, stride=2, padding=1)
        self.fc = nn.Linear(2 * w * (size // 4) ** 2, 1)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, features: bool = False) -> torch.Tensor:
        # x (B, C, S, S), paired: references (B, C, S, S) (unpaired: context ignored) -> (B,) logits,
        # or with features=True the hidden features the logit is read from (B, 2w * S/4 * S/4)
        return self.functional(dict(self.named_parameters()), x, context, features)

    def functional(self, p: dict[str, torch.Tensor], x: torch.Tensor, context: torch.Tensor | None = None,
                   features: bool = False) -> torch.Tensor:
        """forward with the parameters p (as ConvGenerator.functional)."""
        F = nn.functional
        x = torch.cat([x, context], 1) if self.paired else x
        h = F.leaky_relu(F.conv2d(x, p["conv1.weight"], p["conv1.bias"], 2, 1), SLOPE)  # (B, w, S/2, S/2)
        h = F.leaky_relu(F.conv2d(h, p["conv2.weight"], p["conv2.bias"], 2, 1), SLOPE).flatten(1)  # (B, 2w*S/4*S/4)
        return h if features else F.linear(h, p["fc.weight"], p["fc.bias"]).squeeze(-1)
