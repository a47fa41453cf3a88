"""The values NetAdapt's settings may take, torch-free so that settings are checked before torch loads."""

IMPORTANCE = ("bn_weight", "activation", "weight")  # how netadapt.channels ranks channels (its module note)
