"""privrig controller core: config, engine, evidence, reports, CLI."""

__version__ = "0.1.0"
