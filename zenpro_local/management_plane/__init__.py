"""The management plane: what tenant servers in organization mode call.

A tenant whose ``auth_mode`` is ``organization`` runs ZenML's server in its
cloud mode, pointed at ``https://admin.<base_domain>[:port]/mp``. It then
delegates logins, permission checks, resource sharing and entitlements to
these endpoints, and the stock ``zenml`` CLI logs in through them. Every
decision comes from :func:`zenpro_local.authz.allowed`, like the admin API's.
"""

from __future__ import annotations

# Path under which the management plane is mounted on the admin API app.
PREFIX = "/mp"
# Path under PREFIX of the pages that stand in for ZenML Pro's dashboard.
CONSOLE = PREFIX + "/console"
