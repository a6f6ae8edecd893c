"""Self-supervised training of the spatio-temporal block (``vos train``): data, losses, loop."""
