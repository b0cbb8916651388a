// The zenpro-local dashboard: a small single-page app over the admin API.
//
// Pages are chosen by the URL fragment (#/org/ID, #/tenant/ID, ...). Every
// call sends the session cookie; state-changing calls also send the CSRF
// token that GET /api/v1/session returns. Text from the API is always
// inserted as text, never as HTML.
"use strict";

const CONFIG = JSON.parse(document.body.dataset.config);
const POLL_MS = 2000;
const SESSION = "/api/v1/session";
const TRANSIENT = ["pending", "provisioning", "deactivating", "deleting"];

const state = {
  csrf: null,
  user: null,
  organizations: [],
  organizationId: null,
  poller: null,
};

// ---- DOM helpers

function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "text") element.textContent = value;
    else element.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(child));
  }
  return element;
}

function show(...children) {
  const main = document.getElementById("main");
  main.replaceChildren(...children.filter((child) => child));
}

function toast(message) {
  const element = document.getElementById("toast");
  element.textContent = message;
  setTimeout(() => {
    if (element.textContent === message) element.textContent = "";
  }, 4000);
}

function statusBadge(tenant) {
  return h("span", { class: `status status-${tenant.status}`, text: tenant.status });
}

// ---- API

class NetworkError extends Error {
  constructor() {
    super("Network error: the request may not have reached the daemon. Try again.");
    this.status = 0;
  }
}

class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `request failed with status ${status}`);
    this.status = status;
    this.code = error.code;
    this.field = error.field;
  }
}

// Browsers abort requests when the machine's network interfaces change (a
// new Docker network, a Wi-Fi switch). Requests that can safely be sent
// twice are sent again, up to three times.
async function fetchRetrying(path, request, idempotent) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fetch(path, request);
    } catch (error) {
      if (!idempotent || attempt >= 3) throw new NetworkError();
      await new Promise((resolve) => setTimeout(resolve, 300 * attempt));
    }
  }
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && state.csrf) headers["X-CSRF-Token"] = state.csrf;
  const request = {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  };
  const response = await fetchRetrying(path, request, method === "GET" || path === SESSION);
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) {
    if (response.status === 401 && path !== SESSION) signedOut();
    throw new ApiError(response.status, data);
  }
  return data;
}

async function allowedActions(organizationId, tenantId) {
  const query = tenantId ? `?tenant_id=${encodeURIComponent(tenantId)}` : "";
  const body = await api(
    "GET", `/api/v1/organizations/${organizationId}/permissions${query}`);
  return new Set(body.allowed);
}

// ---- Session

function signedOut() {
  state.csrf = null;
  state.user = null;
  document.getElementById("top").hidden = true;
  if (!location.hash.startsWith("#/signin")) location.hash = "#/signin";
}

async function loadSession() {
  try {
    const session = await api("GET", "/api/v1/session");
    state.user = session.user;
    state.csrf = session.csrf_token;
    return true;
  } catch (error) {
    if (error.status === 401) return false;
    throw error;
  }
}

function renderSignIn() {
  let mode = "password";
  const error = h("p", { class: "error", role: "alert" });
  const passwordFields = h("div", {},
    h("label", { for: "username", text: "Username" }),
    h("input", { id: "username", name: "username", autocomplete: "username", required: true }),
    h("label", { for: "password", text: "Password" }),
    h("input", { id: "password", name: "password", type: "password",
                 autocomplete: "current-password", required: true }));
  const keyFields = h("div", { hidden: true },
    h("label", { for: "api-key", text: "API key" }),
    h("input", { id: "api-key", name: "api_key", type: "password", autocomplete: "off" }),
    h("p", { class: "hint", text: "A key that starts with ZENPROKEY_." }));

  function choose(next) {
    mode = next;
    passwordTab.setAttribute("aria-selected", String(mode === "password"));
    keyTab.setAttribute("aria-selected", String(mode === "key"));
    passwordFields.hidden = mode !== "password";
    keyFields.hidden = mode !== "key";
    for (const input of passwordFields.querySelectorAll("input")) input.required = mode === "password";
    keyFields.querySelector("input").required = mode === "key";
  }
  const passwordTab = h("button", { type: "button", role: "tab", "aria-selected": "true",
                                    id: "tab-password", onclick: () => choose("password") },
                        "Username and password");
  const keyTab = h("button", { type: "button", role: "tab", "aria-selected": "false",
                               id: "tab-api-key", onclick: () => choose("key") }, "API key");

  async function submit(event) {
    event.preventDefault();
    error.textContent = "";
    const body = mode === "password"
      ? { username: form.username.value, password: form.password.value }
      : { api_key: form.api_key.value.trim() };
    try {
      const session = await api("POST", "/api/v1/session", body);
      state.user = session.user;
      state.csrf = session.csrf_token;
      location.hash = "#/";
    } catch (failure) {
      error.textContent = failure.message;
    }
  }

  const form = h("form", { class: "panel signin", onsubmit: submit },
    h("h1", { text: "Sign in to zenpro-local" }),
    h("div", { class: "tabs", role: "tablist" }, passwordTab, keyTab),
    passwordFields, keyFields, error,
    h("div", { class: "actions" }, h("button", { type: "submit", id: "sign-in" }, "Sign in")));
  document.getElementById("top").hidden = true;
  show(form);
  form.username.focus();
}

async function signOut() {
  try {
    await api("DELETE", "/api/v1/session");
  } finally {
    signedOut();
  }
}

// ---- Frame: header, organization switcher, navigation

async function loadOrganizations() {
  const page = await api("GET", "/api/v1/organizations?limit=1000");
  state.organizations = page.items;
  const remembered = localStorage.getItem("organization");
  const known = (id) => state.organizations.some((organization) => organization.id === id);
  if (!known(state.organizationId)) {
    state.organizationId = known(remembered) ? remembered
      : (state.organizations[0] || {}).id || null;
  }
}

function selectOrganization(id) {
  state.organizationId = id;
  localStorage.setItem("organization", id);
}

function renderFrame(section) {
  document.getElementById("top").hidden = false;
  document.getElementById("who").textContent = state.user.username;
  const switcher = document.getElementById("switcher");
  const select = document.getElementById("organization-select");
  switcher.hidden = state.organizations.length < 2;
  select.replaceChildren(...state.organizations.map((organization) =>
    h("option", { value: organization.id, selected: organization.id === state.organizationId },
      organization.name)));
  const id = state.organizationId;
  const tenantsLink = document.getElementById("nav-tenants");
  const membersLink = document.getElementById("nav-members");
  tenantsLink.href = `#/org/${id}`;
  membersLink.href = `#/org/${id}/members`;
  tenantsLink.toggleAttribute("aria-current", section === "tenants");
  membersLink.toggleAttribute("aria-current", section === "members");
  if (section === "tenants") tenantsLink.setAttribute("aria-current", "page");
  if (section === "members") membersLink.setAttribute("aria-current", "page");
}

function organization() {
  return state.organizations.find((each) => each.id === state.organizationId);
}

// ---- Organization page: tenants

function tenantRow(tenant, permissions) {
  const reason = tenant.status === "failed" && tenant.status_reason
    ? h("p", { class: "reason", text: tenant.status_reason }) : null;
  const retry = tenant.status === "failed" && permissions.has("tenant:update")
    ? h("button", { type: "button", class: "secondary", "data-retry": tenant.name,
                    onclick: () => retryTenant(tenant) }, "Retry") : null;
  return h("tr", { "data-tenant": tenant.name },
    h("td", { "data-label": "Name" },
      h("a", { href: `#/tenant/${tenant.id}`, text: tenant.name })),
    h("td", { "data-label": "Status" }, statusBadge(tenant), reason, retry),
    h("td", { class: "url", "data-label": "URL" },
      tenant.status === "available"
        ? h("a", { href: tenant.url, target: "_blank", rel: "noopener", text: tenant.url })
        : tenant.url),
    h("td", { "data-label": "ZenML version", text: tenant.zenml_version }));
}

async function retryTenant(tenant) {
  try {
    await api("POST", `/api/v1/tenants/${tenant.id}/restart`);
    toast(`Retrying ${tenant.name}`);
  } catch (error) {
    toast(error.message);
  }
}

async function renderOrganization() {
  renderFrame("tenants");
  const id = state.organizationId;
  const permissions = await allowedActions(id);
  const body = h("tbody");
  // Hidden until the first list arrives, so an empty state never flashes.
  const empty = h("p", { class: "muted", text: "No tenants yet.", hidden: true });
  const table = h("table", { class: "cards", hidden: true },
    h("thead", {}, h("tr", {}, h("th", { text: "Name" }), h("th", { text: "Status" }),
                                h("th", { text: "URL" }), h("th", { text: "ZenML version" }))),
    body);
  const newButton = permissions.has("tenant:create")
    ? h("button", { type: "button", id: "new-tenant", onclick: () => openNewTenant(refresh) },
        "+ New Tenant")
    : null;
  show(
    h("div", { class: "heading" },
      h("h1", { text: `${organization().name}: tenants` }), newButton),
    h("section", { class: "panel", "aria-label": "Tenants" },
      empty, table));

  async function refresh() {
    const page = await api(
      "GET", `/api/v1/tenants?organization_id=${encodeURIComponent(id)}&limit=1000`);
    empty.hidden = page.items.length > 0;
    table.hidden = page.items.length === 0;
    // Keep focus where it was across refreshes by replacing only changed rows.
    const rows = page.items.map((tenant) => tenantRow(tenant, permissions));
    const current = [...body.children];
    const same = current.length === rows.length
      && current.every((row, index) => row.outerHTML === rows[index].outerHTML);
    if (!same) body.replaceChildren(...rows);
  }
  await refresh();
  poll(refresh);
}

function openNewTenant(refresh) {
  const pattern = new RegExp(CONFIG.tenantNamePattern);
  const error = h("p", { class: "error", id: "tenant-name-error", role: "alert" });
  const input = h("input", { id: "tenant-name", name: "name", autocomplete: "off",
                             "aria-describedby": "tenant-name-hint tenant-name-error",
                             maxlength: "63", required: true });
  const create = h("button", { type: "submit", id: "create-tenant", disabled: true },
                   "Create Tenant");
  const dialog = h("dialog", { "aria-labelledby": "new-tenant-title" },
    h("form", { onsubmit: submit },
      h("h2", { id: "new-tenant-title", text: "New tenant" }),
      h("label", { for: "tenant-name", text: "Tenant name" }),
      input,
      h("p", { class: "hint", id: "tenant-name-hint",
               text: `The name ${CONFIG.tenantNameRule}. It becomes the tenant's host name.` }),
      error,
      h("div", { class: "actions" },
        create,
        h("button", { type: "button", class: "secondary", onclick: () => dialog.close() },
          "Cancel"))));

  function validate() {
    const value = input.value;
    const valid = pattern.test(value);
    create.disabled = !valid;
    input.setAttribute("aria-invalid", String(!valid && value !== ""));
    error.textContent = valid || value === "" ? "" : `'${value}' ${CONFIG.tenantNameRule}`;
  }
  input.addEventListener("input", validate);

  async function submit(event) {
    event.preventDefault();
    create.disabled = true;
    error.textContent = "";
    try {
      const tenant = await api(
        "POST", `/api/v1/organizations/${state.organizationId}/tenants`,
        { name: input.value });
      dialog.close();
      toast(`Tenant ${tenant.name} is being created`);
      await refresh();
    } catch (failure) {
      error.textContent = failure.message;
      create.disabled = false;
    }
  }

  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  input.focus();
}

// ---- Tenant overview

function copyable(text, id) {
  return h("div", {},
    h("pre", { id, text }),
    h("button", { type: "button", class: "secondary",
                  onclick: () => navigator.clipboard.writeText(text).then(() => toast("Copied")) },
      "Copy"));
}

async function renderTenant(tenantId) {
  let tenant = await api("GET", `/api/v1/tenants/${tenantId}`);
  selectOrganization(tenant.organization_id);
  renderFrame("tenants");
  const permissions = await allowedActions(tenant.organization_id, tenant.id);

  const statusLine = h("div", { id: "tenant-status" });
  const actions = h("div", { class: "actions tenant-actions" });
  const events = h("ol", { class: "events", "aria-label": "Recent events" });
  const keyArea = h("div", { "aria-live": "polite" });
  const caLink = h("a", { href: "/api/v1/ca.pem", download: "zenpro-local-ca.pem",
                          id: "ca-link" }, "Download the CA certificate");

  // A tenant in organization mode signs users in through the daemon, so the
  // zenml client needs the daemon's URL.
  const proOption = tenant.pro_api_url ? ` --pro-api-url ${tenant.pro_api_url}` : "";

  const keyButton = h("button", { type: "button", id: "create-api-key", onclick: createKey },
                      "Create an API key");
  async function createKey() {
    keyButton.disabled = true;
    keyArea.replaceChildren();
    try {
      const created = await api("POST", `/api/v1/tenants/${tenant.id}/api_keys`);
      const owner = created.service_account
        ? `It belongs to the service account ${created.service_account}.`
        : "It is your own API key: it signs you in to every tenant you have " +
          "a role on, until it is revoked.";
      keyArea.replaceChildren(h("div", { class: "key" },
        h("p", { text: "Your API key, shown only now. Store it somewhere safe:" }),
        copyable(created.key, "api-key-value"),
        h("p", { class: "hint", text: owner })));
    } catch (error) {
      keyArea.replaceChildren(h("p", { class: "error", text: error.message }));
    } finally {
      keyButton.disabled = false;
    }
  }

  show(
    h("p", {}, h("a", { href: `#/org/${tenant.organization_id}` }, "← All tenants")),
    h("h1", { id: "tenant-title", text: tenant.name }),
    statusLine,
    actions,
    h("div", { class: "grid" },
      h("section", { class: "panel", "aria-labelledby": "connect-title" },
        h("h2", { id: "connect-title", text: "Connect to this tenant" }),
        h("p", { text: "Connection URL:" }),
        copyable(tenant.url, "tenant-url"),
        h("p", { text: "Log in with an API key (create one below):" }),
        copyable(`zenml login ${tenant.url} --api-key${proOption}`, "login-api-key"),
        h("p", { text: "Or log in through the browser:" }),
        copyable(`zenml login ${tenant.url}${proOption}`, "login-browser"),
        h("p", {}, h("a", { href: `${tenant.url}/docs`, target: "_blank", rel: "noopener",
                            id: "docs-link" }, "API documentation (/docs)"))),
      h("section", { class: "panel", "aria-labelledby": "key-title" },
        h("h2", { id: "key-title", text: "API key" }),
        h("p", { class: "muted",
                 text: tenant.pro_api_url
                   ? "Creates an API key of yours for the zenml client. It is shown once."
                   : "Creates a ZenML API key for you on this tenant. It is shown once." }),
        keyButton, keyArea,
        h("h2", { text: "Trust the certificate", class: "spaced" }),
        h("p", {}, caLink),
        h("p", { text: "Then point the client at it:" }),
        copyable("export REQUESTS_CA_BUNDLE=$PWD/zenpro-local-ca.pem", "ca-instructions"))),
    h("section", { class: "panel", "aria-labelledby": "events-title" },
      h("h2", { id: "events-title", text: "Recent events" }), events));

  function renderStatus() {
    const reason = tenant.status_reason
      ? [h("p", { class: tenant.status === "failed" ? "reason" : "muted", id: "status-reason",
                  text: tenant.status_reason })] : [];
    statusLine.replaceChildren(statusBadge(tenant), " ",
      h("span", { class: "muted", text: `ZenML ${tenant.zenml_version}` }), ...reason);
    // A local tenant's server creates its keys. The daemon creates those of
    // an organization tenant, whatever state its server is in.
    keyButton.disabled = tenant.status !== "available" && !tenant.pro_api_url;
    renderTenantActions(tenant, permissions, actions);
  }

  let lastEvent = 0;
  async function refresh() {
    const previous = tenant.status + tenant.operation;
    tenant = await api("GET", `/api/v1/tenants/${tenant.id}`);
    if (tenant.status + tenant.operation !== previous) renderStatus();
    const page = await api(
      "GET", `/api/v1/tenants/${tenant.id}/events?after=${lastEvent}&limit=1000`);
    for (const event of page.items) {
      lastEvent = event.id;
      events.prepend(eventItem(event));
    }
    while (events.children.length > 30) events.lastChild.remove();
  }
  renderStatus();
  await refresh();
  poll(refresh);
}

function renderTenantActions(tenant, permissions, container) {
  const busy = TRANSIENT.includes(tenant.status) || Boolean(tenant.operation);
  const buttons = [];
  const patch = (body, message) => async () => {
    try {
      await api("PATCH", `/api/v1/tenants/${tenant.id}`, body);
      toast(message);
    } catch (error) {
      toast(error.message);
    }
  };
  if (permissions.has("tenant:update")) {
    if (tenant.desired_state === "deactivated") {
      buttons.push(h("button", { type: "button", id: "reactivate", disabled: busy,
                                 onclick: patch({ desired_state: "available" }, "Reactivating") },
                     "Reactivate"));
    } else {
      buttons.push(h("button", { type: "button", class: "secondary", id: "deactivate",
                                 disabled: busy,
                                 onclick: () => confirmAction(tenant, "Deactivate",
                                   patch({ desired_state: "deactivated" }, "Deactivating")) },
                     "Deactivate"));
      buttons.push(h("button", { type: "button", class: "secondary", id: "upgrade",
                                 disabled: busy || tenant.status !== "available",
                                 onclick: () => openUpgrade(tenant) }, "Upgrade"));
    }
    if (tenant.status === "failed") {
      buttons.push(h("button", { type: "button", id: "retry", onclick: () => retryTenant(tenant) },
                     "Retry"));
    }
  }
  if (permissions.has("tenant:delete")) {
    buttons.push(h("button", { type: "button", class: "danger", id: "delete", disabled: busy,
                               onclick: () => confirmAction(tenant, "Delete", async () => {
                                 await api("DELETE", `/api/v1/tenants/${tenant.id}`);
                                 location.hash = `#/org/${tenant.organization_id}`;
                               }) }, "Delete"));
  }
  container.replaceChildren(...buttons);
}

function confirmAction(tenant, verb, action) {
  const input = h("input", { id: "confirm-name", autocomplete: "off" });
  const go = h("button", { type: "submit", class: "danger", id: "confirm", disabled: true },
               `${verb} ${tenant.name}`);
  const error = h("p", { class: "error", role: "alert" });
  const dialog = h("dialog", { "aria-labelledby": "confirm-title" },
    h("form", { onsubmit: async (event) => {
      event.preventDefault();
      error.textContent = "";
      try {
        await action();
        dialog.close();
      } catch (failure) {
        error.textContent = failure.message;
      }
    } },
      h("h2", { id: "confirm-title", text: `${verb} tenant ${tenant.name}?` }),
      h("label", { for: "confirm-name", text: `Type ${tenant.name} to confirm` }),
      input, error,
      h("div", { class: "actions" }, go,
        h("button", { type: "button", class: "secondary", onclick: () => dialog.close() },
          "Cancel"))));
  input.addEventListener("input", () => { go.disabled = input.value !== tenant.name; });
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  input.focus();
}

function openUpgrade(tenant) {
  const input = h("input", { id: "upgrade-version", placeholder: "0.98.0",
                             pattern: "[0-9]+\\.[0-9]+\\.[0-9]+", required: true });
  const error = h("p", { class: "error", role: "alert" });
  const dialog = h("dialog", { "aria-labelledby": "upgrade-title" },
    h("form", { onsubmit: async (event) => {
      event.preventDefault();
      error.textContent = "";
      try {
        await api("PATCH", `/api/v1/tenants/${tenant.id}`, { zenml_version: input.value });
        dialog.close();
        toast(`Upgrading ${tenant.name}`);
      } catch (failure) {
        error.textContent = failure.message;
      }
    } },
      h("h2", { id: "upgrade-title", text: `Upgrade tenant ${tenant.name}` }),
      h("p", { class: "muted", text: `It runs ZenML ${tenant.zenml_version} now.` }),
      h("label", { for: "upgrade-version", text: "ZenML version" }), input, error,
      h("div", { class: "actions" },
        h("button", { type: "submit" }, `Upgrade ${tenant.name}`),
        h("button", { type: "button", class: "secondary", onclick: () => dialog.close() },
          "Cancel"))));
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  input.focus();
}

// ---- Members and roles

async function renderMembers() {
  renderFrame("members");
  const id = state.organizationId;
  const permissions = await allowedActions(id);
  const base = `/api/v1/organizations/${id}`;
  const get = (path) => api("GET", path).then((page) => page.items).catch(() => []);
  const [members, teams, roles, tenants, assignments] = await Promise.all([
    get(`${base}/members?limit=1000`),
    get(`${base}/teams?limit=1000`),
    get(`${base}/roles?limit=1000`),
    get(`/api/v1/tenants?organization_id=${encodeURIComponent(id)}&limit=1000`),
    get(`${base}/role_assignments?limit=1000`),
  ]);
  const recent = permissions.has("role_assignment:read")
    ? await latestEvents(`${base}/events`).catch(() => []) : null;
  const tenantName = Object.fromEntries(tenants.map((tenant) => [tenant.id, tenant.name]));
  const userName = Object.fromEntries(members.map((member) => [member.user.id, member.user.username]));
  const teamName = Object.fromEntries(teams.map((team) => [team.id, team.name]));
  const rerender = () => renderMembers().catch(showError);

  const memberRows = members.map((member) => h("tr", {},
    h("td", { "data-label": "User", text: member.user.username }),
    h("td", { "data-label": "Roles",
              text: member.roles.map((role) => role.tenant_id
                ? `${role.name} on ${tenantName[role.tenant_id] || role.tenant_id}`
                : role.name).join(", ") })));

  const tenantAssignments = assignments.filter((assignment) => assignment.tenant_id);
  const mayRemove = permissions.has("role_assignment:delete");
  const assignmentRows = tenantAssignments.map((assignment) => h("tr", {},
    h("td", { "data-label": "Tenant", text: tenantName[assignment.tenant_id] || assignment.tenant_id }),
    h("td", { "data-label": "Holder",
              text: assignment.user_id ? userName[assignment.user_id] || assignment.user_id
                : `team ${teamName[assignment.team_id] || assignment.team_id}` }),
    h("td", { "data-label": "Role", text: assignment.role_name }),
    h("td", {}, mayRemove ? h("button", { type: "button", class: "secondary",
      "aria-label": `Remove ${assignment.role_name} from ${userName[assignment.user_id] || teamName[assignment.team_id]}`,
      onclick: async () => {
        try {
          await api("DELETE", `/api/v1/role_assignments/${assignment.id}`);
          rerender();
        } catch (error) { toast(error.message); }
      } }, "Remove") : null)));

  show(
    h("h1", { text: `${organization().name}: members and roles` }),
    h("div", { class: "grid" },
      h("section", { class: "panel", "aria-labelledby": "members-title" },
        h("h2", { id: "members-title", text: "Members" }),
        h("table", { class: "cards" },
          h("thead", {}, h("tr", {}, h("th", { text: "User" }), h("th", { text: "Roles" }))),
          h("tbody", {}, memberRows))),
      h("section", { class: "panel", "aria-labelledby": "teams-title" },
        h("h2", { id: "teams-title", text: "Teams" }),
        teams.length ? h("ul", {}, teams.map((team) =>
          h("li", { text: `${team.name} (${team.member_count} members)` })))
          : h("p", { class: "muted", text: "No teams." }))),
    h("section", { class: "panel", "aria-labelledby": "assignments-title" },
      h("h2", { id: "assignments-title", text: "Tenant roles" }),
      tenantAssignments.length
        ? h("table", { class: "cards" },
            h("thead", {}, h("tr", {}, h("th", { text: "Tenant" }), h("th", { text: "Holder" }),
                                        h("th", { text: "Role" }), h("th", {}))),
            h("tbody", {}, assignmentRows))
        : h("p", { class: "muted", text: "No tenant roles given yet." }),
      permissions.has("role_assignment:create")
        ? assignForm(base, tenants, members, teams, roles, rerender) : null),
    h("section", { class: "panel", "aria-labelledby": "roles-title" },
      h("h2", { id: "roles-title", text: "Roles" }),
      h("table", { class: "cards" },
        h("thead", {}, h("tr", {}, h("th", { text: "Role" }), h("th", { text: "Scope" }),
                                    h("th", { text: "Description" }))),
        h("tbody", {}, roles.map((role) => h("tr", {},
          h("td", { "data-label": "Role", text: role.name + (role.predefined ? "" : " (custom)") }),
          h("td", { "data-label": "Scope", text: role.scope }),
          h("td", { "data-label": "Description",
                    text: role.description || role.permissions.join(", ") }))))),
      permissions.has("role:create") ? roleForm(base, rerender) : null),
    recent && h("section", { class: "panel", "aria-labelledby": "org-events-title" },
      h("h2", { id: "org-events-title", text: "Recent events" }),
      recent.length
        ? h("ol", { class: "events", id: "org-events" }, recent.map((event) =>
            eventItem(event, event.object_type === "tenant" ? tenantName[event.tenant_id] : "")))
        : h("p", { class: "muted", text: "No events yet." })));
}

// Returns the newest `count` events of an event list, newest first.
async function latestEvents(path, count = 30) {
  const first = await api("GET", `${path}?limit=1`);
  const offset = Math.max(0, first.total - count);
  const page = await api("GET", `${path}?offset=${offset}&limit=${count}`);
  return page.items.reverse();
}

// Renders one event, with `subject` (a tenant name) before its message.
function eventItem(event, subject = "") {
  const text = event.message || event.action;
  return h("li", {},
    h("time", { datetime: event.created, text: event.created.slice(0, 19).replace("T", " ") }),
    subject ? `${subject}: ${text}` : text);
}

function options(items, label, value) {
  return items.map((item) => h("option", { value: value(item) }, label(item)));
}

function assignForm(base, tenants, members, teams, roles, done) {
  const error = h("p", { class: "error", role: "alert" });
  const holders = [
    ...members.map((member) => ({ key: `user:${member.user.id}`, label: member.user.username })),
    ...teams.map((team) => ({ key: `team:${team.id}`, label: `team ${team.name}` })),
  ];
  const form = h("form", { onsubmit: async (event) => {
    event.preventDefault();
    error.textContent = "";
    const [kind, holderId] = form.holder.value.split(":");
    const body = { role_id: form.role.value, tenant_id: form.tenant.value };
    body[kind === "user" ? "user_id" : "team_id"] = holderId;
    try {
      await api("POST", `${base}/role_assignments`, body);
      done();
    } catch (failure) {
      error.textContent = failure.message;
    }
  } },
    h("h2", { text: "Give a tenant role", class: "spaced" }),
    h("label", { for: "assign-tenant", text: "Tenant" }),
    h("select", { id: "assign-tenant", name: "tenant", required: true },
      options(tenants.filter((tenant) => !tenant.deleted), (t) => t.name, (t) => t.id)),
    h("label", { for: "assign-holder", text: "User or team" }),
    h("select", { id: "assign-holder", name: "holder", required: true },
      options(holders, (holder) => holder.label, (holder) => holder.key)),
    h("label", { for: "assign-role", text: "Role" }),
    h("select", { id: "assign-role", name: "role", required: true },
      options(roles.filter((role) => role.scope === "tenant"), (r) => r.name, (r) => r.id)),
    error,
    h("div", { class: "actions" }, h("button", { type: "submit", id: "give-role" }, "Give role")));
  return form;
}

function roleForm(base, done) {
  const error = h("p", { class: "error", role: "alert" });
  const checks = (names, group) => h("div", { class: "checks" }, names.map((name) =>
    h("label", {}, h("input", { type: "checkbox", name: group, value: name }), name)));
  const actions = [...new Set([...CONFIG.daemonActions, ...CONFIG.zenmlActions])];
  const form = h("form", { onsubmit: async (event) => {
    event.preventDefault();
    const ticked = (group) => [...form.querySelectorAll(`input[name=${group}]:checked`)]
      .map((input) => input.value);
    const permissions = [];
    for (const resource of ticked("resource")) {
      const valid = CONFIG.zenmlResources.includes(resource)
        ? CONFIG.zenmlActions : CONFIG.daemonActions;
      for (const action of ticked("action")) {
        if (valid.includes(action)) permissions.push(`${resource}:${action}`);
      }
    }
    error.textContent = "";
    if (!permissions.length) {
      error.textContent = "Tick at least one resource type and one action that applies to it.";
      return;
    }
    try {
      await api("POST", `${base}/roles`,
        { name: form.role_name.value, scope: "tenant", permissions });
      done();
    } catch (failure) {
      error.textContent = failure.message;
    }
  } },
    h("h2", { text: "Create a custom tenant role", class: "spaced" }),
    h("label", { for: "role-name", text: "Role name" }),
    h("input", { id: "role-name", name: "role_name", required: true, maxlength: "100" }),
    h("fieldset", {}, h("legend", { text: "Resource types" }),
      checks(CONFIG.tenantResources, "resource")),
    h("fieldset", {}, h("legend", { text: "Actions" }), checks(actions, "action")),
    h("p", { class: "hint",
             text: "The role gets each ticked action on each ticked resource type it applies to." }),
    error,
    h("div", { class: "actions" }, h("button", { type: "submit", id: "create-role" }, "Create role")));
  return form;
}

// ---- Router

function poll(refresh) {
  stopPolling();
  state.poller = setInterval(() => {
    refresh().catch((error) => {
      if (error.status !== 401) console.warn("refresh failed:", error.message);
    });
  }, POLL_MS);
}

function stopPolling() {
  if (state.poller) clearInterval(state.poller);
  state.poller = null;
}

function showError(error) {
  show(h("div", { class: "panel" },
    h("h1", { text: "Something went wrong" }),
    h("p", { class: "error", text: error.message })));
}

async function route() {
  stopPolling();
  const parts = location.hash.replace(/^#\/?/, "").split("/");
  if (parts[0] === "signin") return renderSignIn();
  if (!state.user && !(await loadSession())) return signedOut();
  await loadOrganizations();
  if (parts[0] === "tenant" && parts[1]) return renderTenant(parts[1]);
  if (parts[0] === "org" && parts[1]) selectOrganization(parts[1]);
  if (!state.organizationId) {
    renderFrame("tenants");
    return show(h("div", { class: "panel" },
      h("h1", { text: "No organization yet" }),
      h("p", { text: "Ask an administrator to add you to an organization." })));
  }
  if (parts[0] === "org" && parts[2] === "members") return renderMembers();
  return renderOrganization();
}

function start() {
  document.getElementById("sign-out").addEventListener("click", signOut);
  document.getElementById("organization-select").addEventListener("change", (event) => {
    selectOrganization(event.target.value);
    location.hash = `#/org/${event.target.value}`;
  });
  // After a page change, keyboard and screen reader users continue from
  // the new page's content, not from the link they followed.
  window.addEventListener("hashchange", () => route()
    .then(() => {
      if (!document.querySelector("dialog[open]") && !location.hash.startsWith("#/signin")) {
        document.getElementById("main").focus({ preventScroll: true });
      }
    })
    .catch(showError));
  route().catch(showError);
}

start();
