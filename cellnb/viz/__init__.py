"""Figures: matplotlib plots and headless pyvista renders (see cellnb.viz.render)."""
