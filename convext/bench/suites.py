"""Named convolution shapes taken from real networks, grouped into suites.

Each shape carries its own batch size per device (small on a 2-core CPU,
32+ on a GPU) and its FLOP count, so tables from different machines list the
same work under the same name.
"""
import fnmatch
import math
from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Shape:
    name: str
    cin: int
    cout: int
    size: tuple      # input spatial size: (H, W) for 2D, (L,) for 1D
    kernel: tuple
    stride: tuple
    padding: tuple
    dilation: tuple
    groups: int
    batch: dict = field(default_factory=dict)  # device type -> batch size
    note: str = ""
    transposed: bool = False  # a ConvTranspose: input (N, cin, size) -> (N, cout, out_size)
    output_padding: tuple = ()

    @property
    def dims(self):
        return len(self.size)

    def out_size(self):
        if self.transposed:
            return tuple((s - 1) * st - 2 * p + d * (k - 1) + 1 + o for s, k, st, p, d, o in
                         zip(self.size, self.kernel, self.stride, self.padding, self.dilation,
                             self.output_padding or (0,) * self.dims))
        return tuple((s + 2 * p - d * (k - 1) - 1) // st + 1 for s, k, st, p, d in
                     zip(self.size, self.kernel, self.stride, self.padding, self.dilation))

    def batch_for(self, device_type):
        return self.batch.get(device_type, self.batch["cpu"])

    def flops_fwd(self, batch):
        """2*N*OC*prod(out)*Cin/g*prod(kernel): one multiply-add per weight tap
        per output element (transposed: per input element, 2*N*Cin*prod(in)*
        OC/g*prod(kernel)). Bias is not counted."""
        if self.transposed:
            return (2 * batch * self.cin * math.prod(self.size) * (self.cout // self.groups)
                    * math.prod(self.kernel))
        return (2 * batch * self.cout * math.prod(self.out_size()) * (self.cin // self.groups)
                * math.prod(self.kernel))

    def min_bytes(self, batch, itemsize):
        """Bytes each direction must move at least, every tensor once: fwd reads
        input and weight and writes the output; bwd reads grad_output, input
        and weight and writes grad_input and grad_weight; fwd+bwd both."""
        x = batch * self.cin * math.prod(self.size)
        out = batch * self.cout * math.prod(self.out_size())
        w = math.prod(self.weight_shape())
        fwd, bwd = (x + w + out) * itemsize, (out + 2 * x + 2 * w) * itemsize
        return {"fwd": fwd, "bwd": bwd, "fwdbwd": fwd + bwd}

    def memory_bound(self):
        """Depthwise (one input channel per group): a few FLOPs per byte, held
        to the bandwidth rather than the FMA peak."""
        return not self.transposed and self.groups > 1 and self.groups == self.cin

    def input_shape(self, batch):
        return (batch, self.cin, *self.size)

    def weight_shape(self):
        if self.transposed:
            return (self.cin, self.cout // self.groups, *self.kernel)
        return (self.cout, self.cin // self.groups, *self.kernel)

    def fan_in(self):
        """Products summed per output element (on average, for transposed)."""
        if self.transposed:
            return max(self.cin // self.groups * math.prod(self.kernel)
                       // math.prod(self.stride), 1)
        return self.cin // self.groups * math.prod(self.kernel)

    def conv_kwargs(self):
        kwargs = dict(stride=self.stride, padding=self.padding, dilation=self.dilation,
                      groups=self.groups)
        if self.transposed:
            kwargs["output_padding"] = self.output_padding or 0
        return kwargs

    def describe(self):
        k = "x".join(map(str, self.kernel))
        parts = [f"{self.cin}->{self.cout}", f"k{k}", "@" + "x".join(map(str, self.size))]
        if any(s != 1 for s in self.stride):
            parts.append(f"s{self.stride[0]}")
        if any(d != 1 for d in self.dilation):
            parts.append(f"d{self.dilation[0]}")
        if self.groups != 1:
            parts.append(f"g{self.groups}")
        if self.transposed:
            parts.insert(0, "transposed")
        return " ".join(parts)


def conv2d(name, cin, cout, hw, k, stride=1, pad=None, dil=1, groups=1, cpu=4, cuda=32, note=""):
    """A square 2D conv; padding defaults to 'same'-style d*(k-1)/2."""
    pad = dil * (k - 1) // 2 if pad is None else pad
    return Shape(name, cin, cout, (hw, hw), (k, k), (stride,) * 2, (pad,) * 2, (dil,) * 2,
                 groups, {"cpu": cpu, "cuda": cuda}, note)


def conv1d(name, cin, cout, length, k, stride=1, pad=0, dil=1, groups=1, cpu=1, cuda=32, note=""):
    return Shape(name, cin, cout, (length,), (k,), (stride,), (pad,), (dil,), groups,
                 {"cpu": cpu, "cuda": cuda}, note)


def depthwise2d(name, ch, hw, k, stride=1, cpu=8, cuda=64, note=""):
    return conv2d(name, ch, ch, hw, k, stride, groups=ch, cpu=cpu, cuda=cuda, note=note)


def causal1d(name, cin, cout, length, k, dil, cpu=1, cuda=32, note=""):
    """A causal dilated conv as WaveNet runs it: the input is left-padded by
    d*(k-1) beforehand and the conv itself is unpadded, so output length == length."""
    return conv1d(name, cin, cout, length + dil * (k - 1), k, dil=dil, cpu=cpu, cuda=cuda, note=note)


def up2d(name, cin, cout, hw, k, stride, pad=0, cpu=2, cuda=32, note=""):
    """A ConvTranspose2d upsampling by `stride`."""
    return Shape(name, cin, cout, (hw, hw), (k, k), (stride,) * 2, (pad,) * 2, (1, 1), 1,
                 {"cpu": cpu, "cuda": cuda}, note, transposed=True)


def up1d(name, cin, cout, length, k, stride, pad=0, cpu=1, cuda=32, note=""):
    """A ConvTranspose1d upsampling by `stride`."""
    return Shape(name, cin, cout, (length,), (k,), (stride,), (pad,), (1,), 1,
                 {"cpu": cpu, "cuda": cuda}, note, transposed=True)


# ResNet-50 (torchvision v1.5: stride on the 3x3); input size is the conv's input.
RESNET50 = [
    conv2d("resnet50.stem", 3, 64, 224, 7, stride=2, pad=3, cpu=2),
    conv2d("resnet50.l1.1x1.64-64", 64, 64, 56, 1),
    conv2d("resnet50.l1.3x3", 64, 64, 56, 3),
    conv2d("resnet50.l1.1x1.64-256", 64, 256, 56, 1),
    conv2d("resnet50.l1.1x1.256-64", 256, 64, 56, 1),
    conv2d("resnet50.l2.3x3.s2", 128, 128, 56, 3, stride=2),
    conv2d("resnet50.l2.down.s2", 256, 512, 56, 1, stride=2),
    conv2d("resnet50.l2.3x3", 128, 128, 28, 3),
    conv2d("resnet50.l2.1x1.512-128", 512, 128, 28, 1),
    conv2d("resnet50.l3.3x3.s2", 256, 256, 28, 3, stride=2),
    conv2d("resnet50.l3.3x3", 256, 256, 14, 3),
    conv2d("resnet50.l3.1x1.256-1024", 256, 1024, 14, 1),
    conv2d("resnet50.l3.1x1.1024-256", 1024, 256, 14, 1),
    conv2d("resnet50.l4.3x3.s2", 512, 512, 14, 3, stride=2),
    conv2d("resnet50.l4.3x3", 512, 512, 7, 3),
    conv2d("resnet50.l4.1x1.512-2048", 512, 2048, 7, 1),
]

# ResNeXt-50 32x4d grouped 3x3 convs.
RESNEXT = [
    conv2d("resnext50.l1.3x3.g32", 128, 128, 56, 3, groups=32),
    conv2d("resnext50.l2.3x3.g32.s2", 256, 256, 56, 3, stride=2, groups=32),
    conv2d("resnext50.l3.3x3.g32", 512, 512, 14, 3, groups=32),
]

# Depthwise convs: MobileNetV2 (3x3), EfficientNet-B0 (5x5), ConvNeXt-T (7x7, pad 3).
DEPTHWISE = [
    depthwise2d("mbv2.dw3x3.144@56", 144, 56, 3),
    depthwise2d("mbv2.dw3x3.144@56.s2", 144, 56, 3, stride=2),
    depthwise2d("mbv2.dw3x3.384@14", 384, 14, 3),
    depthwise2d("mbv2.dw3x3.960@7", 960, 7, 3),
    depthwise2d("effnetb0.dw5x5.240@28", 240, 28, 5),
    depthwise2d("effnetb0.dw5x5.144@56.s2", 144, 56, 5, stride=2),
    depthwise2d("effnetb0.dw5x5.672@14.s2", 672, 14, 5, stride=2),
    depthwise2d("convnext.dw7x7.96@56", 96, 56, 7),
    depthwise2d("convnext.dw7x7.384@14", 384, 14, 7),
]

# DeepLabV3 at output stride 8 on a 513x513 image: dilated ResNet layers at 65x65.
DILATED = [
    conv2d("deeplab.l3.3x3.d2", 256, 256, 65, 3, dil=2, cpu=1, cuda=32),
    conv2d("deeplab.l4.3x3.d4", 512, 512, 65, 3, dil=4, cpu=1, cuda=32),
]

CONV1D = [
    # WaveNet: 64 residual channels, gated (filter+gate = 128 outputs), 16k samples.
    causal1d("wavenet.k2.d1", 64, 128, 16000, 2, 1),
    causal1d("wavenet.k2.d32", 64, 128, 16000, 2, 32),
    causal1d("wavenet.k2.d512", 64, 128, 16000, 2, 512),
    conv1d("wavenet.k3.d1", 64, 128, 16000, 3, pad=1),
    conv1d("wavenet.k3.d64", 64, 128, 16000, 3, pad=64, dil=64),
    # wav2vec2 feature extractor, first two layers, 1 s of 16 kHz audio.
    conv1d("wav2vec2.conv0", 1, 512, 16000, 10, stride=5, cpu=2),
    conv1d("wav2vec2.conv1", 512, 512, 3199, 3, stride=2),
    # Mamba's causal depthwise conv (d_inner 1536, d_conv 4, padding 3, output trimmed after).
    conv1d("mamba.dwconv.k4", 1536, 1536, 2048, 4, pad=3, groups=1536, cpu=2, cuda=32),
    conv1d("conv1d.256-256.k3", 256, 256, 2048, 3, pad=1, cpu=2),
]

# Transposed convs: U-Net decoder up-convs (2x2, stride 2), a DCGAN generator
# layer (4x4, stride 2, padding 1), HiFi-GAN V1's first two upsamplers
# (k16 s8 p4; 1 s of 22.05 kHz audio at hop 256 is 86 mel frames).
TRANSPOSED = [
    up2d("unet.up2x2.512-256@28", 512, 256, 28, 2, 2),
    up2d("unet.up2x2.128-64@112", 128, 64, 112, 2, 2),
    up2d("dcgan.up4x4.256-128@16", 256, 128, 16, 4, 2, pad=1, cpu=8, cuda=128),
    up1d("hifigan.up1.k16s8", 512, 256, 86, 16, 8, pad=4),
    up1d("hifigan.up2.k16s8", 256, 128, 688, 16, 8, pad=4),
]

ALL = RESNET50 + RESNEXT + DEPTHWISE + DILATED + CONV1D + TRANSPOSED
_BY_NAME = {s.name: s for s in ALL}


def _pick(*names, cpu=None):
    """Shapes by name; cpu= overrides the CPU batch (for the quick suite)."""
    shapes = [_BY_NAME[n] for n in names]
    if cpu is not None:
        shapes = [replace(s, batch={**s.batch, "cpu": cpu}) for s in shapes]
    return shapes


# Default: every family once or twice, sized to run in a few minutes on 2 cores.
DEFAULT = _pick(
    "resnet50.stem", "resnet50.l1.3x3", "resnet50.l1.1x1.64-256", "resnet50.l1.1x1.256-64",
    "resnet50.l2.3x3.s2", "resnet50.l2.down.s2", "resnet50.l3.3x3", "resnet50.l3.1x1.1024-256",
    "resnet50.l4.3x3", "resnet50.l4.1x1.512-2048",
    "resnext50.l1.3x3.g32", "resnext50.l3.3x3.g32",
    "mbv2.dw3x3.144@56", "mbv2.dw3x3.144@56.s2", "effnetb0.dw5x5.240@28",
    "effnetb0.dw5x5.672@14.s2", "convnext.dw7x7.96@56",
    "deeplab.l3.3x3.d2",
    "wavenet.k2.d1", "wavenet.k2.d512", "wavenet.k3.d64",
    "wav2vec2.conv0", "wav2vec2.conv1", "mamba.dwconv.k4", "conv1d.256-256.k3",
    "unet.up2x2.512-256@28", "dcgan.up4x4.256-128@16", "hifigan.up2.k16s8",
)

QUICK = _pick("resnet50.l3.3x3", "resnext50.l3.3x3.g32", "mbv2.dw3x3.384@14",
              "convnext.dw7x7.384@14", "wavenet.k2.d32", "mamba.dwconv.k4",
              "unet.up2x2.512-256@28", "hifigan.up1.k16s8", cpu=1)

# For tests: seconds, not minutes. Not listed in --help.
TINY = [
    conv2d("tiny.3x3", 8, 8, 8, 3, cpu=1, cuda=2),
    conv1d("tiny.1d.k3", 8, 8, 32, 3, pad=1, cpu=1, cuda=2),
    up2d("tiny.up2x2", 8, 4, 6, 2, 2, cpu=1, cuda=2),
]

SUITES = {
    "default": DEFAULT,
    "quick": QUICK,
    "all": ALL,
    "resnet50": RESNET50,
    "resnext": RESNEXT,
    "depthwise": DEPTHWISE,
    "dilated": DILATED,
    "conv1d": CONV1D,
    "transposed": TRANSPOSED,
    "tiny": TINY,
}
PUBLIC_SUITES = [name for name in SUITES if name != "tiny"]


def select(suites, patterns=None):
    """Shapes of the named suites (comma list), deduplicated in order, then
    filtered by shell-style name patterns if any."""
    shapes, seen = [], set()
    for suite in suites.split(","):
        if suite not in SUITES:
            raise ValueError(f"unknown suite {suite!r}; choose from {', '.join(PUBLIC_SUITES)}")
        for shape in SUITES[suite]:
            if shape.name not in seen:
                seen.add(shape.name)
                shapes.append(shape)
    if patterns:
        pats = patterns.split(",")
        shapes = [s for s in shapes if any(fnmatch.fnmatchcase(s.name, p) for p in pats)]
        if not shapes:
            raise ValueError(f"no shape of suite {suites!r} matches {patterns!r}")
    return shapes
