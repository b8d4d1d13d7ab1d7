"""ImageNet classifiers (one file per architecture); importing this registers them."""
