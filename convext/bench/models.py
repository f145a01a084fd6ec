"""Model-level benchmark: whole networks built from nn layers, run natively
and after convext.convert() of a deep copy (same weights), compared on a
training step (fwd + bwd + SGD step) and on inference (eval, no_grad).

Models (torchvision is not a dependency, so they are written here):
  resnet18     - ResNet-18 (BasicBlocks, BatchNorm), image input
  wav2vec2_fe  - wav2vec2-base's conv feature extractor (7 convs, 512 ch, GroupNorm, GELU)
  wavenet      - WaveNet stack: 10 gated causal dilated k=2 convs (dilation 1..512),
                 64 residual / 128 gate / 64 skip channels
  hifigan      - HiFi-GAN V1-style generator: mel (80 ch) -> waveform through four
                 ConvTranspose1d upsamplers (x8, x8, x2, x2), each followed by a
                 dilated residual block
"""
import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

import convext

from . import correctness
from .cases import memory_format, row_errors, timed_pair


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                      nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.down is None else self.down(x)))


class ResNet18(nn.Module):
    def __init__(self, classes=1000, width=64):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 7, 2, 3, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        blocks, cin = [], width
        for mult, stride in ((1, 1), (2, 2), (4, 2), (8, 2)):
            cout = width * mult
            blocks += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        return self.fc(self.blocks(self.stem(x)).mean((2, 3)))


class Wav2Vec2FeatureExtractor(nn.Module):
    LAYERS = [(10, 5)] + [(3, 2)] * 4 + [(2, 2)] * 2  # (kernel, stride), 512 channels

    def __init__(self, dim=512):
        super().__init__()
        convs, cin = [], 1
        for k, s in self.LAYERS:
            convs.append(nn.Conv1d(cin, dim, k, s, bias=False))
            cin = dim
        self.convs = nn.ModuleList(convs)
        self.norm = nn.GroupNorm(dim, dim)  # wav2vec2-base: after the first conv only

    def forward(self, wav):
        x = F.gelu(self.norm(self.convs[0](wav)))
        for conv in self.convs[1:]:
            x = F.gelu(conv(x))
        return x


class WaveNet(nn.Module):
    def __init__(self, res=64, gate=128, skip=64, dilations=tuple(2 ** i for i in range(10))):
        super().__init__()
        self.inp = nn.Conv1d(1, res, 1)
        self.dilations = dilations
        self.dilated = nn.ModuleList(nn.Conv1d(res, gate, 2, dilation=d) for d in dilations)
        self.res = nn.ModuleList(nn.Conv1d(gate // 2, res, 1) for _ in dilations)
        self.skip = nn.ModuleList(nn.Conv1d(gate // 2, skip, 1) for _ in dilations)
        self.out = nn.Conv1d(skip, 256, 1)

    def forward(self, wav):
        x, skips = self.inp(wav), 0
        for d, dil, res, skip in zip(self.dilations, self.dilated, self.res, self.skip):
            f, g = dil(F.pad(x, (d, 0))).chunk(2, dim=1)  # causal: pad the past only
            h = torch.tanh(f) * torch.sigmoid(g)
            x = x + res(h)
            skips = skips + skip(h)
        return self.out(F.relu(skips))


class HiFiGANGenerator(nn.Module):
    """HiFi-GAN V1's generator layout (upsample rates 8,8,2,2, kernels 16,16,4,4,
    512 initial channels), with one residual block (k3, dilations 1 and 3) per
    stage instead of V1's three."""
    UPS = ((8, 16), (8, 16), (2, 4), (2, 4))  # (rate, kernel)

    def __init__(self, mels=80, dim=512):
        super().__init__()
        self.pre = nn.Conv1d(mels, dim, 7, padding=3)
        self.ups, self.res, ch = nn.ModuleList(), nn.ModuleList(), dim
        for rate, k in self.UPS:
            self.ups.append(nn.ConvTranspose1d(ch, ch // 2, k, rate, padding=(k - rate) // 2))
            ch //= 2
            self.res.append(nn.ModuleList(nn.Conv1d(ch, ch, 3, padding=d, dilation=d)
                                          for d in (1, 3)))
        self.post = nn.Conv1d(ch, 1, 7, padding=3)

    def forward(self, mel):
        x = self.pre(mel)
        for up, convs in zip(self.ups, self.res):
            x = up(F.leaky_relu(x, 0.1))
            for conv in convs:
                x = x + conv(F.leaky_relu(x, 0.1))
        return torch.tanh(self.post(F.leaky_relu(x, 0.1)))


@dataclass(frozen=True)
class ModelCase:
    name: str
    build: type
    dims: int
    # size profile -> (cpu batch, cuda batch, input size after batch and channels,
    #                  constructor kwargs: 'tiny' narrows the models for tests)
    sizes: dict
    channels: int = 0  # input channels; 0: 3 for images, 1 for audio

    def input_shape(self, profile, device):
        cpu, cuda, size, _ = self.sizes[profile]
        channels = self.channels or (3 if self.dims == 2 else 1)
        return (cuda if device == "cuda" else cpu, channels, *size)


MODELS = [
    # Training BatchNorm over few values (2x2 last map at 64 px) is ill-conditioned:
    # fp32 vs fp64 differ by 1e-2 at 32 px, so no smaller input than 64 px, batch 2.
    ModelCase("resnet18", ResNet18, 2,
              {"full": (2, 64, (224, 224), {}), "quick": (2, 8, (64, 64), {}),
               "tiny": (2, 2, (64, 64), {"width": 16})}),
    ModelCase("wav2vec2_fe", Wav2Vec2FeatureExtractor, 1,
              {"full": (1, 32, (16000,), {}), "quick": (1, 8, (4000,), {}),
               "tiny": (1, 2, (800,), {"dim": 64})}),
    ModelCase("wavenet", WaveNet, 1,
              {"full": (1, 16, (16000,), {}), "quick": (1, 4, (4000,), {}),
               "tiny": (1, 2, (256,), {})}),
    # 86 mel frames: 1 s of 22.05 kHz audio at hop 256 (22016 output samples).
    ModelCase("hifigan", HiFiGANGenerator, 1,
              {"full": (1, 16, (86,), {}), "quick": (1, 4, (32,), {}),
               "tiny": (1, 2, (8,), {"dim": 64})}, channels=80),
]


def _pair(case, profile, dtype, device, layout, seed=0):
    """Native model and a converted deep copy with the same weights."""
    torch.manual_seed(seed)
    fmt = memory_format(layout, case.dims)
    native = case.build(**case.sizes[profile][3]).to(device=device, dtype=dtype, memory_format=fmt)
    ported = convext.convert(copy.deepcopy(native))
    return {"convext": ported, "native": native}


def _check(models, x, tol):
    """Train-mode outputs, eval-mode outputs and parameter grads must match
    native's. Grads are taken in eval mode: in train mode BatchNorm makes the
    grad of the conv before it a small difference of large terms, where even
    native fp32 differs from fp64 by up to 0.16 (ResNet-18 at 224), so that
    comparison would measure conditioning, not convext."""
    got = {}
    for impl, model in models.items():
        model.train()
        with torch.no_grad():
            train_out = model(x)
        model.eval()
        eval_out = model(x)
        eval_out.float().square().mean().backward()
        grads = {f"grad.{n}": p.grad for n, p in model.named_parameters()}
        got[impl] = {"train_out": train_out, "eval_out": eval_out, **grads}
        model.zero_grad(set_to_none=True)
    check = correctness.compare(got["convext"], got["native"], tol)
    # Keep the JSON short: the worst parameter grad stands for all of them.
    grads = {k: v for k, v in check["errors"].items() if k.startswith("grad.")}
    worst = max(grads, key=grads.get)
    check["errors"] = {k: v for k, v in check["errors"].items() if k not in grads}
    check["errors"]["worst_grad"] = grads[worst]
    check["worst_grad_param"] = worst[len("grad."):]
    return check


def _train_step(model, opt, x):
    def step():
        opt.zero_grad(set_to_none=True)
        model(x).float().square().mean().backward()
        opt.step()
    return step


def _infer(model, x):
    def infer():
        with torch.no_grad():
            return model(x)
    return infer


def bench_model(case, profile, dtype, device, layout, threads, timing_opts, tol=None):
    shape = case.input_shape(profile, device)
    row = {"model": case.name, "batch": shape[0], "input": list(shape),
           "dtype": str(dtype).replace("torch.", ""), "layout": layout,
           "check": None, "error": None, "timings": {}}
    with row_errors(row, device):
        models = _pair(case, profile, dtype, device, layout)
        gen = torch.Generator().manual_seed(1)
        x = torch.randn(shape, generator=gen).to(device=device, dtype=dtype).contiguous(
            memory_format=memory_format(layout, case.dims))
        # Errors compound through a deep network: allow 10x the single-conv tolerance.
        row["check"] = _check(models, x, 10 * (tol or correctness.tolerance(dtype)))
        for m in models.values():
            m.train()
        opts = {impl: torch.optim.SGD(m.parameters(), lr=1e-4, momentum=0.9)
                for impl, m in models.items()}
        row["timings"]["train"] = timed_pair(
            {impl: _train_step(m, opts[impl], x) for impl, m in models.items()},
            threads, timing_opts)
        for m in models.values():
            m.eval()
        row["timings"]["infer"] = timed_pair(
            {impl: _infer(m, x) for impl, m in models.items()}, threads, timing_opts)
    return row
