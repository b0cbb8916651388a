"""Request and response bodies of the admin API.

Request models reject unknown fields and do not coerce types, so a typo or
a string where a number belongs is a 422 rather than a silent surprise.
Response models document the shapes in the OpenAPI document.
"""

from __future__ import annotations

import re
from typing import Annotated, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

NAME_RULE = (
    "must be a DNS label: 1 to 63 characters of a-z, 0-9 and '-', not "
    "starting or ending with '-'"
)
# Checked with fullmatch(): "$" would also accept a trailing newline.
_DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


def _check_dns_label(value: str) -> str:
    if not _DNS_LABEL.fullmatch(value):
        raise ValueError(f"{value!r} {NAME_RULE}")
    return value


def _check_username(value: str) -> str:
    if not _USERNAME.fullmatch(value):
        raise ValueError(
            f"{value!r} must be 1 to 64 characters of letters, digits and "
            "'.', '_', '@', '-', starting with a letter or digit"
        )
    return value


# The validators give the error messages; the JSON Schema patterns only tell
# clients (and the OpenAPI document's readers) the same rule.
DnsLabel = Annotated[
    str,
    AfterValidator(_check_dns_label),
    WithJsonSchema(
        {"type": "string", "pattern": f"^{_DNS_LABEL.pattern}$", "maxLength": 63}
    ),
]
Username = Annotated[
    str,
    AfterValidator(_check_username),
    WithJsonSchema(
        {"type": "string", "pattern": f"^{_USERNAME.pattern}$", "maxLength": 64}
    ),
]
Description = Annotated[str, Field(max_length=1000)]
# ASCII digits only: "\d" would also accept other scripts' digits.
ZenmlVersion = Annotated[str, Field(pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$")]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Response(BaseModel):
    model_config = ConfigDict(extra="allow")


Item = TypeVar("Item")


class Page(Response, Generic[Item]):
    items: list[Item]
    total: int
    offset: int
    limit: int


# Organizations


class OrganizationCreate(Request):
    name: DnsLabel
    description: Description = ""


class OrganizationUpdate(Request):
    name: DnsLabel | None = None
    description: Description | None = None


class Organization(Response):
    id: str
    name: str
    description: str
    created: str
    updated: str


# Users and API keys


class UserCreate(Request):
    username: Username
    email: Annotated[str, Field(max_length=254)] = ""
    full_name: Annotated[str, Field(max_length=200)] = ""
    password: Annotated[str, Field(min_length=8, max_length=512)] | None = None
    is_superuser: bool = False


class UserUpdate(Request):
    email: Annotated[str, Field(max_length=254)] | None = None
    full_name: Annotated[str, Field(max_length=200)] | None = None
    password: Annotated[str, Field(min_length=8, max_length=512)] | None = None
    current_password: Annotated[
        str,
        Field(
            max_length=512,
            description="Required to change one's own password once it is set.",
        ),
    ] | None = None
    is_active: bool | None = None
    is_superuser: bool | None = None


class User(Response):
    id: str
    username: str
    email: str
    full_name: str
    is_superuser: bool
    is_active: bool
    created: str
    updated: str


class ApiKeyCreate(Request):
    note: Annotated[str, Field(max_length=200)] = ""
    expires_in_days: Annotated[int, Field(ge=1, le=3650)] | None = None


class ApiKey(Response):
    id: str
    user_id: str
    note: str
    created: str
    expires: str | None
    last_used: str | None
    revoked: str | None


class ApiKeyCreated(ApiKey):
    key: str = Field(description="The API key. It is shown only in this response.")


# Members, teams, roles


class MemberAdd(Request):
    user_id: str | None = None
    username: str | None = None
    role_id: str = "organization-member"


class RoleRef(Response):
    id: str
    name: str
    assignment_id: str
    tenant_id: str | None


class Member(Response):
    user: User
    roles: list[RoleRef]


class TeamCreate(Request):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    description: Description = ""


class TeamUpdate(Request):
    name: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    description: Description | None = None


class TeamMemberAdd(Request):
    user_id: str


class Team(Response):
    id: str
    organization_id: str
    name: str
    description: str
    member_count: int
    created: str
    updated: str


Scope = Literal["organization", "tenant"]
Permission = Annotated[str, Field(min_length=3, max_length=100)]


class RoleCreate(Request):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    scope: Scope
    description: Description = ""
    permissions: Annotated[list[Permission], Field(min_length=1, max_length=500)]


class RoleUpdate(Request):
    name: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    description: Description | None = None
    permissions: (
        Annotated[list[Permission], Field(min_length=1, max_length=500)] | None
    ) = None


class Role(Response):
    id: str
    organization_id: str | None
    name: str
    scope: Scope
    description: str
    permissions: list[str]
    predefined: bool
    created: str
    updated: str


class RoleAssignmentCreate(Request):
    role_id: str
    user_id: str | None = None
    team_id: str | None = None
    tenant_id: str | None = None


class RoleAssignment(Response):
    id: str
    role_id: str
    role_name: str
    user_id: str | None
    team_id: str | None
    organization_id: str
    tenant_id: str | None
    created: str
    created_by: str | None


# Tenants

DesiredState = Literal["available", "deactivated"]


AuthMode = Literal["local", "organization"]


class TenantCreate(Request):
    name: DnsLabel
    description: Description = ""
    zenml_version: ZenmlVersion | None = None
    auth_mode: AuthMode | None = Field(
        default=None,
        description="'organization': the daemon's users and roles govern the "
        "tenant; 'local': the tenant's ZenML server keeps its own users. "
        "Default: the daemon's tenants.auth_mode setting, 'organization' "
        "unless changed.",
    )


class TenantUpdate(Request):
    description: Description | None = None
    desired_state: DesiredState | None = None
    zenml_version: ZenmlVersion | None = None
    auth_mode: AuthMode | None = Field(
        default=None,
        description="Switch between 'local' and 'organization' auth; the "
        "server restarts and keeps its data. Send it alone.",
    )


class Tenant(Response):
    id: str
    organization_id: str
    name: str
    description: str
    status: str
    status_reason: str
    desired_state: str
    operation: str | None
    zenml_version: str
    auth_mode: str
    url: str
    pro_api_url: str | None = Field(
        description="Organization mode: the management plane URL to give the "
        "zenml client as --pro-api-url (or ZENML_PRO_API_URL)."
    )
    runtime: str
    created: str
    updated: str
    deleted: str | None


class TenantApiKeyCreated(Response):
    tenant_id: str
    url: str
    key: str = Field(
        description="An API key for 'zenml login --api-key', shown only in this "
        "response: a ZENPROKEY_ key of the caller's for a tenant in organization "
        "mode, a key of a service account on the tenant's server otherwise."
    )
    api_key_id: str | None = Field(
        description="Organization mode: the id of the daemon API key, to "
        "revoke it under /api/v1/users/{user_id}/api_keys."
    )
    service_account: str | None
    pro_api_url: str | None = Field(
        description="Organization mode: the management plane URL to give the "
        "zenml client as --pro-api-url (or ZENML_PRO_API_URL)."
    )


class Event(Response):
    id: int
    created: str
    actor_id: str | None
    action: str
    object_type: str
    object_id: str
    organization_id: str | None
    tenant_id: str | None
    message: str


class Health(Response):
    status: str
