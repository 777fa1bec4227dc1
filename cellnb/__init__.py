"""cellnb: generative models of living 3D cell shapes over time."""

__version__ = "0.1.0"
