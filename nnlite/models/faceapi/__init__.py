"""The face-api.js nets, one file per net; importing this registers them.

Each net module holds its class (weights read by name from face-api.js's manifests, its own input rule,
its graph) and declares its ``SPEC``: weights, input size, preprocessing, description.
"""

from __future__ import annotations

import importlib

from ..registry import register

NETS = ("face_landmark_68", "face_landmark_68_tiny", "face_recognition", "age_gender", "face_expression",
        "ssd_mobilenetv1", "tiny_face_detector")

for _module in NETS:
    register(importlib.import_module(f"{__name__}.{_module}").SPEC)
