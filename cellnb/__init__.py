"""cellnb: generative models of living 3D cell shapes over time."""

__version__ = "0.1.0"

__all__ = ["__version__", "load_pretrained"]


def load_pretrained(name: str, device=None):
    """A pretrained model shipped with cellnb: see :func:`cellnb.pretrained.load_pretrained`."""
    from cellnb.pretrained import load_pretrained as load

    return load(name, device=device)
