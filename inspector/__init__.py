"""ViT Inspector: see where a Vision Transformer looks, and why."""

__version__ = "0.1.0"
