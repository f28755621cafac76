"""hawk: build your own bird-sound classifier, the HawkEars workflow as a reproducible pipeline."""

__version__ = "0.1.0"
