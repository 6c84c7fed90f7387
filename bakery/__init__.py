"""bakery: build, test and carry GPU deep-learning training images from one matrix."""

__version__ = "0.1.0"
