"""Training charaid's own models from ../shared/train (never from the evaluation images)."""
