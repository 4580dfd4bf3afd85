"""faultlab."""
