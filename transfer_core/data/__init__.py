"""Datasets: sources (folders, zips, CSV), splits, corrections, decoding, the image cache, augmentation, samples."""
