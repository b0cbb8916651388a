"""zenpro-local: ZenML Pro organizations and tenants on one machine."""

__version__ = "0.1.0"
