"""Figures: matplotlib plots of data, training, generated shapes and descriptors (3D renders come from cellnb.render)."""
