"""Tenant runtimes: where a tenant's ZenML server process lives."""

from zenpro_local.runtime.base import (
    InstanceInfo,
    InstanceState,
    TenantRuntimeError,
    StopTimeouts,
    TenantRuntime,
    TenantSpec,
)

__all__ = [
    "InstanceInfo",
    "InstanceState",
    "TenantRuntimeError",
    "StopTimeouts",
    "TenantRuntime",
    "TenantSpec",
]
