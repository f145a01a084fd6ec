"""TF32 in a benchmark run: one torch setting for both sides, and what it
means for each. Native cuDNN and convext's CUDA float32 convs both follow
torch's setting for convolutions (`torch.backends.cudnn.allow_tf32`, which in
torch 2.9+ is `torch.backends.cudnn.conv.fp32_precision`), so one flag gives
an equal TF32 setting. The default is torch's own (TF32 on for float32
convs, as F.conv2d); --no-tf32 gives full float32 on both sides. On CPU TF32
does not apply and nothing changes."""
import torch

# Wording printed per side; the JSON stores the same strings.
NATIVE_ON = "cuDNN: TF32 allowed (cuDNN picks TF32 tensor-core kernels for float32)"
NATIVE_OFF = "cuDNN: full float32 (no TF32)"
CONVEXT_ON = "convext: TF32 when allowed (tensor-core path), else fp32"
CONVEXT_OFF = "convext: full float32 (no TF32)"
CPU = "does not apply on CPU (both sides full float32)"


def _conv_precision():
    """torch.backends.cudnn.conv.fp32_precision where this torch has it, else None."""
    conv = getattr(torch.backends.cudnn, "conv", None)
    return getattr(conv, "fp32_precision", None)


def apply(enabled, device):
    """Sets torch's conv TF32 flag for both sides; returns the run's record:
    the flags as torch reports them back and, per side, the mode float32
    runs in. matmul's flag (only the models' Linear layers use it, on both
    sides) is left at torch's default and recorded."""
    torch.backends.cudnn.allow_tf32 = bool(enabled)
    applies = device == "cuda"
    on = applies and torch.backends.cudnn.allow_tf32
    return {
        "enabled": bool(enabled),
        "applies": applies,
        "in_effect": on,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "cudnn_conv_fp32_precision": _conv_precision(),
        "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "native": (NATIVE_ON if on else NATIVE_OFF) if applies else CPU,
        "convext": (CONVEXT_ON if on else CONVEXT_OFF) if applies else CPU,
    }


def line(record):
    """One line for the settings header."""
    flags = (f"cudnn.allow_tf32={record['cudnn_allow_tf32']}"
             + (f", cudnn.conv.fp32_precision={record['cudnn_conv_fp32_precision']}"
                if record["cudnn_conv_fp32_precision"] is not None else "")
             + f", cuda.matmul.allow_tf32={record['matmul_allow_tf32']}")
    if not record["applies"]:
        return f"TF32: {CPU} ({flags})"
    return (f"TF32 (float32 convs, equal setting on both sides, {flags}): "
            f"native {record['native']}; {record['convext']}")
