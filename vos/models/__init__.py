"""Models of the segmentation pipeline: the frozen DINO key extractor and the spatio-temporal block."""
