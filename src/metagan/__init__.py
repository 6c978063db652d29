"""metagan: few-shot generation with meta-learned GANs."""
__version__ = "0.1.0"
