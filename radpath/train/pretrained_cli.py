"""`radpath convert-weights SRC --out FILE.npz`: a published ImageNet ResNet50 file -> our names.

Cheap to import (no numpy, no jax): the work happens in `train.pretrained` inside the command.
"""

from __future__ import annotations

import argparse


def cmd_convert_weights(args: argparse.Namespace) -> int:
    from radpath.contract.errors import RadPathError

    from .pretrained import convert

    try:
        summary = convert(args.src, args.out)
    except (ValueError, FileNotFoundError) as exc:
        raise RadPathError(str(exc)) from None
    print(
        f"wrote {summary['out']}: {summary['tensors']} tensors, BatchNorm statistics included, "
        f"from {summary['source']}; "
        f"train with: radpath train COHORT --width 64 --init-weights {summary['out']} "
        f"(ResNet layout {summary['variant']!r}, taken from the file)"
    )
    return 0


def add_parsers(sub) -> None:
    s = sub.add_parser(
        "convert-weights",
        help="convert downloaded ImageNet ResNet50 weights for `radpath train --init-weights` (extra: train)",
        description="Sources: torchvision-named .safetensors (e.g. timm/resnet50.tv_in1k on Hugging Face) or .npz "
        "(a torchvision state dict), or Keras ResNet50 .h5 / .weights.h5 (keras.applications). The 1000-class "
        "head is dropped; the RGB first convolution is adapted to the 8 MRI channels (two views of four "
        "sequences) when training starts.",
    )
    s.add_argument("src", help="the downloaded weights file")
    s.add_argument("--out", required=True, help="the .npz to write")
    s.set_defaults(func=cmd_convert_weights)
