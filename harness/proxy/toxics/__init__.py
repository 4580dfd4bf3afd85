"""Toxics, one module each; importing this package registers all of them."""

from faultlab.harness.proxy.toxics import (  # noqa: F401 - imported to register
    bandwidth,
    latency,
    limit_data,
    noop,
    reset_peer,
    slicer,
    slow_close,
    timeout,
)
from faultlab.harness.proxy.toxics.base import REGISTRY, Toxic, ToxicEntry, ToxicStub

__all__ = ["REGISTRY", "Toxic", "ToxicEntry", "ToxicStub"]
