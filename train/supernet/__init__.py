"""accuracy=supernet: one weight-sharing supernet trained once, every trial scored with inherited weights."""
