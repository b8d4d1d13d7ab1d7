"""ImageNet classifiers, one file per architecture; importing this registers them.

Each architecture module builds its graph (``load_model(path=None) -> graph.Model``) and declares its
``SPEC``: weights, input size, preprocessing recipe (:mod:`nnlite.preprocess`), labels, output kind.
"""

from __future__ import annotations

import importlib

from ..registry import register

ARCHITECTURES = ("mobilenet_v2", "squeezenet", "efficientnet_lite0", "nasnet_mobile", "xception", "resnet50",
                 "pnasnet_large")

for _module in ARCHITECTURES:
    register(importlib.import_module(f"{__name__}.{_module}").SPEC)
