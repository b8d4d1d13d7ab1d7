"""Model architectures, one file per net, and the registry of model names."""
