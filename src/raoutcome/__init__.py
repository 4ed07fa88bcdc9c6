"""raoutcome: outcome prediction from longitudinal RA radiographs."""
__version__ = "0.1.0"
