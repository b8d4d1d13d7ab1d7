"""Pipelines on top of the models: image classification (``classify``), faces, boxes."""
