"""The face-api.js nets (one file per net); importing this registers them."""
