"""Training: data splits and loading, the Lightning module, callbacks, and the train loop."""
