"""Datasets, split files and clip loading for ssl_video."""
