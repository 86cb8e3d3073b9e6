"""jobengine shared library: what the API and the worker both rely on."""

__version__ = "0.1.0"
