"""Training phase: the detector, gradient regularization, the training loop."""
