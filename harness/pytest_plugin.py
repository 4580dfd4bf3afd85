"""The faultlab pytest plugin (entry point `pytest11`): fixtures, options and the gate."""
