// Mooring's web UI. Plain JavaScript, no build step, embedded in the binary. It only calls
// the REST API (the cookie authenticates it); the server's RBAC decides. Every value from
// the API reaches the page through textContent or attributes, never as HTML.
"use strict";

const main = () => document.getElementById("main");

// ---- DOM -------------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    // Through the CSSOM: the Content-Security-Policy refuses style attributes.
    else if (k === "style") Object.assign(el.style, v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// Replace an element's children; arrays (of arrays) of nodes and text are flattened.
function put(el, ...kids) {
  el.replaceChildren(...kids.flat(Infinity).filter((k) => k !== undefined && k !== null && k !== false && k !== ""));
}

const badge = (status, attrs) => h("span", Object.assign({ class: "badge " + (status || "Unknown") }, attrs || {}), status || "Unknown");

function toast(msg, error) {
  const t = document.getElementById("toast");
  t.textContent = msg;
  t.className = error ? "error" : "";
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, error ? 8000 : 3000);
}

// ---- API -------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, opts) {
  opts = opts || {};
  const headers = { "Accept": "application/json" };
  if (opts.method && opts.method !== "GET") {
    headers["X-Requested-With"] = "mooring-ui";
    headers["Content-Type"] = "application/json";
  }
  const resp = await fetch(path, { method: opts.method || "GET", headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body), credentials: "same-origin" });
  if (resp.status === 401) {
    location.href = "/login";
    throw new ApiError(401, "not logged in");
  }
  const text = await resp.text();
  if (!resp.ok) {
    let msg = text;
    try { msg = JSON.parse(text).message || text; } catch (_) { /* plain text */ }
    throw new ApiError(resp.status, msg);
  }
  if (opts.text) return text;
  return text ? JSON.parse(text) : {};
}

const canCache = new Map();
async function can(resource, action, object) {
  const key = `${resource}/${action}/${object}`;
  if (!canCache.has(key)) {
    canCache.set(key, api(`/api/v1/account/can-i/${encodeURIComponent(resource)}/${encodeURIComponent(action)}/${object}`).then((r) => r.value === "yes").catch(() => false));
  }
  return canCache.get(key);
}

const get = (o, path, dflt) => path.split(".").reduce((a, k) => (a == null ? undefined : a[k]), o) ?? dflt;
const appKey = (a) => `${get(a, "metadata.namespace", "")}/${get(a, "metadata.name", "")}`;
const project = (a) => get(a, "spec.project", "") || "default";
const syncStatus = (a) => get(a, "status.sync.status", "Unknown");
const healthStatus = (a) => get(a, "status.health.status", "Unknown");
const destination = (a) => get(a, "spec.destination.name", "") || get(a, "spec.destination.server", "") || "in-cluster";
const repo = (a) => get(a, "spec.source.repoURL", "") || (get(a, "spec.sources", [])[0] || {}).repoURL || "";
const rbacObject = (a) => `${project(a)}/${get(a, "metadata.name", "")}`;

// ---- application stream ---------------------------------------------------------------

// One EventSource for every page: the server sends every visible application, then
// changes. Pages subscribe and re-render (at most once per frame).
const store = { apps: new Map(), listeners: new Set(), source: null, ready: false };

function followApps() {
  if (store.source) return;
  const src = new EventSource("/api/v1/stream/applications");
  store.source = src;
  src.onmessage = (ev) => {
    let msg;
    try { msg = JSON.parse(ev.data).result; } catch (_) { return; }
    if (!msg || !msg.application) return;
    const k = appKey(msg.application);
    if (msg.type === "DELETED") store.apps.delete(k); else store.apps.set(k, msg.application);
    store.ready = true;
    notify();
  };
  src.onerror = () => {
    // The browser reconnects by itself; a logged-out session is sent to the login page.
    fetch("/api/v1/session/userinfo", { credentials: "same-origin" }).then((r) => { if (r.status === 401) location.href = "/login"; });
  };
  // An empty platform sends nothing: show it as loaded after a moment.
  setTimeout(() => { if (!store.ready) { store.ready = true; notify(); } }, 1500);
}

let pending = false;
function notify() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => { pending = false; for (const l of store.listeners) l(); });
}

// ---- routing ----------------------------------------------------------------------------

let cleanup = [];
function onCleanup(f) { cleanup.push(f); }

function navigate(path) {
  history.pushState({}, "", path);
  route();
}

document.addEventListener("click", (e) => {
  const a = e.target.closest("a");
  if (!a || a.target || e.metaKey || e.ctrlKey || a.origin !== location.origin || a.pathname.startsWith("/api/")) return;
  e.preventDefault();
  navigate(a.pathname + a.search);
});
window.addEventListener("popstate", route);

function route() {
  for (const f of cleanup) f();
  cleanup = [];
  store.listeners.clear();
  const parts = location.pathname.split("/").filter(Boolean).map(decodeURIComponent);
  const page = parts[0] || "applications";
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.nav === page);
  const m = main();
  put(m);
  const pages = { applications: parts.length >= 3 ? () => appPage(parts[1], parts[2]) : appsPage, rollouts: rolloutsPage, policy: policyPage, clusters: clustersPage, projects: projectsPage, applicationsets: appSetsPage, rollbackpolicies: rollbackPoliciesPage, drplans: drPlansPage };
  (pages[page] || appsPage)().catch((e) => { m.append(h("p", { class: "error" }, `${e.message}`)); });
}

// ---- Applications -----------------------------------------------------------------------

const filters = { search: "", project: "", cluster: "", namespace: "", label: "", sync: "", health: "" };

function labelMatches(a, expr) {
  if (!expr) return true;
  return expr.split(",").map((s) => s.trim()).filter(Boolean).every((term) => {
    const [k, v] = term.split("=");
    const labels = get(a, "metadata.labels", {}) || {};
    return v === undefined ? k in labels : labels[k] === v;
  });
}

function visibleApps() {
  const q = filters.search.toLowerCase();
  return [...store.apps.values()].filter((a) =>
    (!q || get(a, "metadata.name", "").toLowerCase().includes(q)) &&
    (!filters.project || project(a) === filters.project) &&
    (!filters.cluster || destination(a) === filters.cluster) &&
    (!filters.namespace || get(a, "spec.destination.namespace", "") === filters.namespace) &&
    (!filters.sync || syncStatus(a) === filters.sync) &&
    (!filters.health || healthStatus(a) === filters.health) &&
    labelMatches(a, filters.label)
  ).sort((x, y) => appKey(x).localeCompare(appKey(y)));
}

function select(id, label, values, key) {
  const s = h("select", { id, "aria-label": label, onchange: () => { filters[key] = s.value; notify(); } },
    h("option", { value: "" }, `${label}: all`), [...values].sort().map((v) => h("option", { value: v, selected: filters[key] === v }, v)));
  return s;
}

async function appsPage() {
  followApps();
  const m = main();
  m.append(h("h1", {}, "Applications"));
  const counts = h("div", { class: "counts", id: "counts" });
  const toolbar = h("div", { class: "toolbar" });
  const body = h("div", { id: "apps" });
  m.append(counts, toolbar, body);
  const search = h("input", { id: "search", type: "search", placeholder: "Search applications", value: filters.search, oninput: () => { filters.search = search.value; notify(); } });
  const labels = h("input", { id: "label-filter", type: "search", placeholder: "Labels: team=ml,tier", value: filters.label, oninput: () => { filters.label = labels.value; notify(); } });
  const render = () => {
    const all = [...store.apps.values()];
    const byStatus = (f) => all.reduce((acc, a) => { acc[f(a)] = (acc[f(a)] || 0) + 1; return acc; }, {});
    put(counts, 
      h("span", { class: "count" }, h("b", { id: "count-all" }, all.length), "applications"),
      Object.entries(byStatus(syncStatus)).map(([s, n]) => h("span", { class: "count" + (filters.sync === s ? " on" : ""), "data-count-sync": s, onclick: () => { filters.sync = filters.sync === s ? "" : s; notify(); } }, h("b", {}, n), s)),
      Object.entries(byStatus(healthStatus)).map(([s, n]) => h("span", { class: "count" + (filters.health === s ? " on" : ""), "data-count-health": s, onclick: () => { filters.health = filters.health === s ? "" : s; notify(); } }, h("b", {}, n), s)),
    );
    const focused = document.activeElement && document.activeElement.id;
    put(toolbar, search, labels,
      select("filter-project", "Project", new Set(all.map(project)), "project"),
      select("filter-cluster", "Cluster", new Set(all.map(destination)), "cluster"),
      select("filter-namespace", "Namespace", new Set(all.map((a) => get(a, "spec.destination.namespace", "")).filter(Boolean)), "namespace"));
    if (focused) { const f = document.getElementById(focused); if (f) f.focus(); }
    const shown = visibleApps();
    if (!store.ready) { put(body, h("p", { class: "muted" }, "Loading…")); return; }
    if (!shown.length) { put(body, h("p", { class: "muted" }, all.length ? "No application matches the filters." : "No applications yet.")); return; }
    put(body, h("table", { id: "app-table" },
      h("thead", {}, h("tr", {}, ["Name", "Project", "Sync", "Health", "Destination", "Namespace", "Repository", "Revision"].map((t) => h("th", {}, t)))),
      h("tbody", {}, shown.map((a) => h("tr", { "data-app": get(a, "metadata.name"), "data-namespace": get(a, "metadata.namespace") },
        h("td", {}, h("a", { href: `/applications/${encodeURIComponent(get(a, "metadata.namespace"))}/${encodeURIComponent(get(a, "metadata.name"))}` }, get(a, "metadata.name"))),
        h("td", {}, project(a)),
        h("td", {}, badge(syncStatus(a), { "data-sync": syncStatus(a) })),
        h("td", {}, badge(healthStatus(a), { "data-health": healthStatus(a) })),
        h("td", {}, destination(a)),
        h("td", {}, get(a, "spec.destination.namespace", "")),
        h("td", {}, repo(a)),
        h("td", {}, h("code", {}, (get(a, "status.sync.revision", "") || "").slice(0, 8))))))));
  };
  store.listeners.add(render);
  render();
}

// ---- one Application -------------------------------------------------------------------

async function appPage(ns, name) {
  followApps();
  const q = `?appNamespace=${encodeURIComponent(ns)}`;
  const base = `/api/v1/applications/${encodeURIComponent(name)}`;
  const m = main();
  const head = h("div", { id: "app-head" });
  const actions = h("div", { class: "toolbar", id: "app-actions" });
  const conditions = h("div", { id: "conditions" });
  const operation = h("div", { id: "operation" });
  const rollouts = h("div", { id: "app-rollouts" });
  const tree = h("div", { class: "tree", id: "tree" });
  const detail = h("div", { id: "detail" });
  const events = h("div", { id: "events" });
  const history_ = h("div", { id: "history" });
  m.append(h("p", {}, h("a", { href: "/applications" }, "← Applications")), head, actions, conditions, rollouts, h("h2", {}, "Resources"), tree, detail, operation, h("h2", {}, "History"), history_, h("h2", {}, "Events"), events);
  let app = await api(base + q);
  const obj = rbacObject(app);
  const [maySync, mayDelete] = await Promise.all([can("applications", "sync", obj), can("applications", "delete", obj)]);
  let selected = null;
  let selectedTab = null;
  let managed = null;

  const renderHead = () => {
    put(head, h("h1", {}, name, " ", badge(syncStatus(app), { id: "app-sync" }), " ", badge(healthStatus(app), { id: "app-health" })),
      h("dl", { class: "kv" },
        h("dt", {}, "Project"), h("dd", {}, project(app)),
        h("dt", {}, "Repository"), h("dd", {}, repo(app)),
        h("dt", {}, "Target"), h("dd", {}, get(app, "spec.source.targetRevision", "HEAD") || "HEAD"),
        h("dt", {}, "Revision"), h("dd", {}, h("code", {}, get(app, "status.sync.revision", ""))),
        h("dt", {}, "Destination"), h("dd", {}, `${destination(app)} / ${get(app, "spec.destination.namespace", "")}`),
        h("dt", {}, "Health"), h("dd", { id: "health-message" }, get(app, "status.health.message", "") || healthStatus(app))));
    const conds = get(app, "status.conditions", []) || [];
    put(conditions, conds.length ? h("div", { class: "panel" }, h("h2", {}, "Conditions"), h("ul", { class: "conditions" }, conds.map((c) => h("li", { "data-condition": c.type }, h("span", { class: "cond-type" }, c.type), ": ", c.message || "")))) : "");
    const op = get(app, "status.operationState");
    if (op) {
      const results = get(op, "syncResult.resources", []) || [];
      put(operation, h("div", { class: "panel", id: "operation-state" }, h("h2", {}, "Last operation ", badge(op.phase)),
        h("p", {}, op.message || ""),
        results.length ? h("table", {}, h("thead", {}, h("tr", {}, ["Kind", "Name", "Wave", "Hook", "Status", "Message"].map((t) => h("th", {}, t)))),
          h("tbody", {}, results.map((r) => h("tr", {}, h("td", {}, r.kind), h("td", {}, r.name), h("td", {}, r.syncWave ?? ""), h("td", {}, r.hookType || r.hookPhase || ""), h("td", {}, r.status || ""), h("td", {}, r.message || ""))))) : ""));
    } else put(operation);
    const hist = (get(app, "status.history", []) || []).slice().reverse();
    put(history_, hist.length ? h("table", {}, h("thead", {}, h("tr", {}, ["ID", "Revision", "Deployed", ""].map((t) => h("th", {}, t)))),
      h("tbody", {}, hist.map((e) => h("tr", {}, h("td", {}, e.id), h("td", {}, h("code", {}, (e.revision || (e.revisions || []).join(", ") || "").slice(0, 12))), h("td", {}, e.deployedAt || ""),
        h("td", {}, maySync ? h("button", { "data-rollback": e.id, onclick: () => act(`Rollback to ${e.id}`, () => api(`${base}/rollback${q}`, { method: "POST", body: { id: e.id } })) }, "Rollback") : ""))))) : h("p", { class: "muted" }, "No history yet."));
  };

  const act = async (what, f) => {
    try { await f(); toast(`${what}: requested`); } catch (e) { toast(`${what}: ${e.message}`, true); }
  };

  const syncDialog = () => {
    const dlg = h("dialog", { id: "sync-dialog" });
    const prune = h("input", { type: "checkbox", id: "sync-prune" });
    const dry = h("input", { type: "checkbox", id: "sync-dry-run" });
    const opts = ["ServerSideApply=true", "CreateNamespace=true", "Replace=true", "PruneLast=true", "ApplyOutOfSyncOnly=true"].map((o) => [o, h("input", { type: "checkbox", "data-option": o })]);
    const res = (get(app, "status.resources", []) || []).map((r) => [r, h("input", { type: "checkbox", "data-resource": `${r.kind}/${r.name}` })]);
    put(dlg, h("h2", {}, `Sync ${name}`),
      h("label", {}, prune, " Prune"), h("label", {}, dry, " Dry run"),
      h("h2", {}, "Options"), opts.map(([o, c]) => h("label", {}, c, " ", o)),
      h("h2", {}, "Resources (none checked: all)"), res.map(([r, c]) => h("label", {}, c, ` ${r.kind}/${r.name}`)),
      h("div", { class: "toolbar" },
        h("button", { class: "primary", id: "sync-confirm", onclick: async () => {
          const body = { prune: prune.checked, dryRun: dry.checked,
            syncOptions: { items: opts.filter(([, c]) => c.checked).map(([o]) => o) },
            resources: res.filter(([, c]) => c.checked).map(([r]) => ({ group: r.group || "", kind: r.kind, namespace: r.namespace || "", name: r.name })) };
          dlg.close(); dlg.remove();
          await act("Sync", () => api(`${base}/sync${q}`, { method: "POST", body }));
        } }, "Synchronize"),
        h("button", { onclick: () => { dlg.close(); dlg.remove(); } }, "Cancel")));
    document.body.append(dlg);
    dlg.showModal();
  };

  actions.append(
    maySync ? h("button", { class: "primary", id: "sync-button", onclick: syncDialog }, "Sync") : h("span", { class: "muted", id: "read-only" }, "Read-only: you may not sync this application."),
    h("button", { id: "refresh-button", onclick: () => act("Refresh", () => api(`${base}${q}&refresh=normal`)) }, "Refresh"),
    h("button", { id: "hard-refresh-button", onclick: () => act("Hard refresh", () => api(`${base}${q}&refresh=hard`)) }, "Hard refresh"),
    mayDelete ? h("button", { class: "danger", id: "delete-button", onclick: () => { if (confirm(`Delete ${name} and its resources?`)) act("Delete", () => api(`${base}${q}`, { method: "DELETE" })).then(() => navigate("/applications")); } }, "Delete") : "");

  const showDetail = async (n) => {
    if (!selected || nodeKey(selected) !== nodeKey(n)) selectedTab = null;
    selected = n;
    for (const el of tree.querySelectorAll(".node")) el.classList.toggle("selected", el.dataset.key === nodeKey(n));
    const tabs = h("div", { class: "tabs" });
    const content = h("div", { id: "detail-content" });
    put(detail, h("div", { class: "panel" }, h("h2", {}, `${n.kind} ${n.namespace ? n.namespace + "/" : ""}${n.name}`, " ", n.health ? badge(n.health.status) : ""), n.health && n.health.message ? h("p", {}, n.health.message) : "", tabs, content));
    if (!managed) { try { managed = await api(`${base}/managed-resources${q}`); } catch (e) { managed = { items: [], error: e.message }; } }
    const m_ = (managed.items || []).find((r) => r.kind === n.kind && r.name === n.name && (r.namespace || "") === (n.namespace || ""));
    const yaml = (o) => h("pre", {}, JSON.stringify(o, null, 2));
    const views = {
      Live: () => yaml(m_ ? m_.liveState : n.live || { kind: n.kind, metadata: { name: n.name, namespace: n.namespace } }),
      Desired: () => m_ ? yaml(m_.targetState) : h("p", { class: "muted" }, "Not in Git (a child of a managed resource)."),
      Diff: () => m_ ? (m_.diff ? h("pre", { class: "diff", id: "diff" }, m_.diff.split("\n").map((l) => h("div", { class: l.startsWith("+") ? "add" : l.startsWith("-") ? "del" : "" }, l))) : h("p", { id: "diff", class: "muted" }, "No difference: live matches Git.")) : h("p", { class: "muted" }, managed.error || "Not a managed resource."),
    };
    if (n.kind === "Pod") views.Logs = () => { const pre = h("pre", { id: "logs" }, "Loading…"); api(`${base}/pods/${encodeURIComponent(n.name)}/logs${q}&namespace=${encodeURIComponent(n.namespace)}`, { text: true }).then((t) => { pre.textContent = t || "(empty)"; }).catch((e) => { pre.textContent = e.message; }); return pre; };
    const open = (k) => { selectedTab = k; for (const b of tabs.children) b.classList.toggle("on", b.textContent === k); put(content, views[k]()); };
    tabs.append(...Object.keys(views).map((k) => h("button", { "data-tab": k, onclick: () => open(k) }, k)));
    // The tab the user chose stays open as the tree refreshes.
    open(selectedTab && views[selectedTab] ? selectedTab : m_ && m_.status === "OutOfSync" ? "Diff" : "Live");
  };

  const nodeKey = (n) => `${n.kind}/${n.namespace}/${n.name}`;
  const renderTree = async () => {
    let t;
    try { t = await api(`${base}/resource-tree${q}`); } catch (e) { put(tree, h("p", { class: "error" }, e.message)); return; }
    const nodes = t.nodes || [];
    const byUid = new Map(nodes.map((n) => [n.uid, n]));
    const depth = (n, seen) => { const p = (n.parentRefs || []).map((r) => byUid.get(r.uid)).find(Boolean); if (!p || seen.has(p.uid)) return 0; seen.add(p.uid); return 1 + depth(p, seen); };
    const cols = [];
    for (const n of nodes) { const d = depth(n, new Set()); (cols[d] = cols[d] || []).push(n); }
    put(tree, h("div", { class: "col" }, h("div", { class: "node h-" + healthStatus(app), "data-kind": "Application" }, h("div", { class: "kind" }, "Application"), h("div", { class: "name" }, name), badge(syncStatus(app)))),
      cols.map((col) => h("div", { class: "col" }, col.map((n) => h("div", { class: "node h-" + get(n, "health.status", "none"), "data-key": nodeKey(n), "data-kind": n.kind, "data-name": n.name, onclick: () => showDetail(n) },
        h("div", { class: "kind" }, n.kind), h("div", { class: "name" }, n.name),
        n.health ? badge(n.health.status) : "", n.status ? [" ", badge(n.status)] : "",
        (n.info || []).map((i) => h("div", { class: "muted" }, `${i.name}: ${i.value}`)))))));
    if (selected) { const again = nodes.find((n) => nodeKey(n) === nodeKey(selected)); if (again) showDetail(again); }
  };

  const renderEvents = async () => {
    let evs;
    try { evs = await api(`${base}/events${q}`); } catch (e) { put(events, h("p", { class: "error" }, e.message)); return; }
    const items = evs.items || [];
    put(events, items.length ? h("table", {}, h("thead", {}, h("tr", {}, ["Type", "Reason", "Object", "Message", "Last seen"].map((t) => h("th", {}, t)))),
      h("tbody", {}, items.map((e) => h("tr", {}, h("td", {}, e.type || ""), h("td", {}, e.reason || ""), h("td", {}, `${get(e, "involvedObject.kind", "")}/${get(e, "involvedObject.name", "")}`), h("td", {}, e.message || ""), h("td", {}, e.lastTimestamp || e.eventTime || ""))))) : h("p", { class: "muted" }, "No events."));
  };

  let progressing = false;
  const renderRollouts = async () => {
    if (!(get(app, "status.resources", []) || []).some((r) => r.kind === "Rollout")) { put(rollouts); progressing = false; return; }
    try {
      const r = await api(`${base}/rollouts${q}`);
      progressing = (r.items || []).some(inMotion);
      put(rollouts, h("h2", {}, "Rollouts"), await Promise.all((r.items || []).map((it) => rolloutWidget(app, it))));
    } catch (e) { put(rollouts, h("p", { class: "error" }, e.message)); }
  };

  renderHead();
  await Promise.all([renderTree(), renderEvents(), renderRollouts()]);
  // Live: every change of this app re-renders; the tree and rollouts follow (debounced).
  let timer = null;
  let lastVersion = get(app, "metadata.resourceVersion");
  store.listeners.add(() => {
    const fresh = store.apps.get(`${ns}/${name}`);
    if (!fresh || get(fresh, "metadata.resourceVersion") === lastVersion) return;
    lastVersion = get(fresh, "metadata.resourceVersion");
    app = fresh;
    managed = null;
    renderHead();
    clearTimeout(timer);
    timer = setTimeout(() => { renderTree(); renderRollouts(); renderEvents(); }, 250);
  });
  // Children (Pods, AnalysisRuns) change without the app changing: while something is in
  // motion (the app not Healthy, a rollout stepping or analysing), the tree and rollouts
  // are read again every few seconds; a settled app is followed by its stream alone.
  const poll = setInterval(() => { if (!document.hidden && (progressing || healthStatus(app) !== "Healthy")) { renderTree(); renderRollouts(); } }, 3000);
  onCleanup(() => { clearInterval(poll); clearTimeout(timer); });
}

// ---- Rollouts ---------------------------------------------------------------------------

function stepText(s) {
  if (s.setWeight !== undefined) return `setWeight ${s.setWeight}%`;
  if (s.pause) return s.pause.duration ? `pause ${s.pause.duration}` : "pause";
  if (s.analysis) return `analysis ${(s.analysis.templates || []).map((t) => t.templateName).join(", ")}`;
  if (s.experiment) return "experiment";
  if (s.setCanaryScale) return "setCanaryScale";
  if (s.setHeaderRoute) return "setHeaderRoute";
  if (s.setMirrorRoute) return "setMirrorRoute";
  return Object.keys(s)[0] || "step";
}

// The threshold of a success condition such as `result[0] >= 0.95`, to draw it.
function threshold(cond) {
  const m = /(>=|<=|>|<|==)\s*(-?[0-9.]+)/.exec(cond || "");
  return m ? Number(m[2]) : null;
}

// `{{args.NAME}}` of a run's metric, with the run's arguments.
function withArgs(text, args) {
  return String(text || "").replace(/\{\{\s*args\.([\w.-]+)\s*\}\}/g, (m, name) => {
    const a = (args || []).find((x) => x.name === name);
    return a && a.value !== undefined ? a.value : m;
  });
}

function chart(metric, result, args) {
  metric = Object.assign({}, metric, { successCondition: withArgs(metric.successCondition, args) });
  const ms = (result && result.measurements) || [];
  const pts = ms.map((m, i) => { let v = m.value; try { const p = JSON.parse(m.value); v = Array.isArray(p) ? p[0] : p; } catch (_) { /* plain */ } return { i, v: Number(v), phase: m.phase }; }).filter((p) => !Number.isNaN(p.v));
  const W = 320, H = 120, P = 24;
  const t = threshold(metric.successCondition);
  const vals = pts.map((p) => p.v).concat(t === null ? [] : [t]);
  const lo = Math.min(...vals, 0), hi = Math.max(...vals, 1);
  const x = (i) => P + (pts.length <= 1 ? 0 : (i * (W - 2 * P)) / (pts.length - 1));
  const y = (v) => H - P - ((v - lo) * (H - 2 * P)) / (hi - lo || 1);
  return svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, "data-metric": metric.name, "data-points": pts.length },
    svg("text", { x: 4, y: 12 }, `${metric.name}: ${metric.successCondition || ""}`),
    t === null ? null : svg("line", { class: "threshold", x1: P, x2: W - P, y1: y(t), y2: y(t) }),
    pts.length > 1 ? svg("polyline", { class: "line", points: pts.map((p) => `${x(p.i)},${y(p.v)}`).join(" ") }) : null,
    pts.map((p) => svg("circle", { class: p.phase === "Successful" ? "pt-ok" : p.phase === "Failed" ? "pt-bad" : "pt-other", cx: x(p.i), cy: y(p.v), r: 3.5 }, svg("title", {}, `${p.v} (${p.phase})`))),
    svg("text", { x: 4, y: H - 6 }, `${lo}`), svg("text", { x: 4, y: P }, `${hi}`));
}

// A rollout that will change without its application changing: stepping, paused, or
// with an analysis running.
function inMotion(it) {
  return (it.view && it.view.status !== "Healthy") || (it.analysisRuns || []).some((r) => !["Successful", "Failed", "Error", "Inconclusive"].includes(r.phase));
}

async function rolloutWidget(app, it) {
  const v = it.view;
  const name = get(app, "metadata.name");
  const q = `?appNamespace=${encodeURIComponent(get(app, "metadata.namespace"))}`;
  const obj = rbacObject(app);
  const acts = [["resume", "Promote"], ["promote-full", "Promote full"], ["abort", "Abort"], ["retry", "Retry"], ["pause", "Pause"]];
  const allowed = await Promise.all(acts.map(([a]) => can("applications", `action/argoproj.io/Rollout/${a}`, obj)));
  const cur = it.currentStepIndex;
  const canary = v.actual_weight ?? v.actualWeight ?? 0;
  const run = async (a, label) => {
    try { await api(`/api/v1/applications/${encodeURIComponent(name)}/rollouts/${encodeURIComponent(v.namespace)}/${encodeURIComponent(v.name)}/${a}${q}`, { method: "POST", body: {} }); toast(`${label}: done`); } catch (e) { toast(`${label}: ${e.message}`, true); }
  };
  return h("div", { class: "panel rollout", "data-rollout": v.name, "data-status": v.status, "data-step": cur ?? "" },
    h("h2", {}, `Rollout ${v.namespace}/${v.name} `, badge(v.status, { class: "badge " + v.status, "data-rollout-status": v.status })),
    v.message ? h("p", {}, v.message) : "",
    h("div", { class: "toolbar" }, acts.map(([a, label], i) => allowed[i] ? h("button", { "data-action": a, onclick: () => run(a, label) }, label) : "")),
    (it.steps || []).length ? h("ol", { class: "steps" }, it.steps.map((s, i) => h("li", { class: i === cur ? "current" : (cur !== null && cur !== undefined && i < cur) ? "done" : "", "data-step-index": i }, `${i + 1}. ${stepText(s)}`))) : "",
    v.strategy === "Canary" || v.strategy === "canary" || it.steps.length ? h("div", { class: "weights", title: `canary ${canary}%` },
      h("div", { class: "stable", style: { width: `${100 - canary}%` } }, `stable ${100 - canary}%`), canary > 0 ? h("div", { class: "canary", style: { width: `${canary}%` } }, `canary ${canary}%`) : "") : "",
    h("table", {}, h("thead", {}, h("tr", {}, ["ReplicaSet", "Revision", "Roles", "Images", "Ready"].map((t) => h("th", {}, t)))),
      h("tbody", {}, (v.replica_sets || v.replicaSets || []).map((rs) => h("tr", { "data-replicaset": rs.name }, h("td", {}, rs.name), h("td", {}, rs.revision ?? ""), h("td", {}, (rs.tags || []).join(", ")), h("td", {}, (rs.images || []).join(", ")), h("td", {}, `${rs.ready}/${rs.desired}`))))),
    (it.analysisRuns || []).map((r) => h("div", { class: "analysis", "data-analysis-run": r.name },
      h("h2", {}, `AnalysisRun ${r.name} `, badge(r.phase || "Pending")),
      h("div", { class: "cards" }, (r.metrics || []).map((m) => h("div", { class: "card" }, chart(m, (r.metricResults || []).find((x) => x.name === m.name), r.args)))))));
}

async function rolloutsPage() {
  followApps();
  const m = main();
  m.append(h("h1", {}, "Rollouts"));
  const body = h("div", { id: "rollouts" });
  m.append(body);
  let busy = false;
  let moving = true;
  const render = async () => {
    if (busy) return;
    busy = true;
    try {
      const apps = [...store.apps.values()].filter((a) => (get(a, "status.resources", []) || []).some((r) => r.kind === "Rollout"));
      if (!apps.length) { put(body, h("p", { class: "muted" }, store.ready ? "No application manages a Rollout." : "Loading…")); return; }
      let anyMoving = false;
      const parts = await Promise.all(apps.map(async (a) => {
        try {
          const r = await api(`/api/v1/applications/${encodeURIComponent(get(a, "metadata.name"))}/rollouts?appNamespace=${encodeURIComponent(get(a, "metadata.namespace"))}`);
          if ((r.items || []).some(inMotion)) anyMoving = true;
          return [h("p", {}, "Application ", h("a", { href: `/applications/${get(a, "metadata.namespace")}/${get(a, "metadata.name")}` }, get(a, "metadata.name"))), await Promise.all((r.items || []).map((it) => rolloutWidget(a, it)))];
        } catch (e) { return h("p", { class: "error" }, `${get(a, "metadata.name")}: ${e.message}`); }
      }));
      put(body, ...parts.flat(2));
      moving = anyMoving;
    } finally { busy = false; }
  };
  store.listeners.add(render);
  const poll = setInterval(() => { if (!document.hidden && moving) render(); }, 3000);
  onCleanup(() => clearInterval(poll));
  await render();
}

// ---- other pages ------------------------------------------------------------------------

function table(id, cols, rows) {
  if (!rows.length) return h("p", { class: "muted", id }, "None.");
  return h("table", { id }, h("thead", {}, h("tr", {}, cols.map((c) => h("th", {}, c[0])))), h("tbody", {}, rows.map((r) => h("tr", {}, cols.map((c) => h("td", {}, c[1](r)))))));
}

// A constraint's `match` in a line: kinds, namespaces, exclusions, label selector.
function matchSummary(m) {
  m = m || {};
  const parts = [];
  const kinds = (m.kinds || []).flatMap((k) => k.kinds || []);
  if (kinds.length) parts.push(`kinds ${kinds.join(", ")}`);
  if ((m.namespaces || []).length) parts.push(`namespaces ${m.namespaces.join(", ")}`);
  if ((m.excludedNamespaces || []).length) parts.push(`except ${m.excludedNamespaces.join(", ")}`);
  const labels = get(m, "labelSelector.matchLabels", {}) || {};
  if (Object.keys(labels).length) parts.push(`labels ${Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(", ")}`);
  return parts.join("; ") || "everything";
}

async function policyPage() {
  const p = await api("/api/v1/policy");
  main().append(h("h1", {}, "Policy"),
    h("h2", {}, "Constraints"), table("constraints", [["Kind", (c) => c.kind], ["Name", (c) => c.name], ["Enforcement", (c) => c.enforcementAction], ["Match", (c) => matchSummary(c.match)]], p.constraints || []),
    h("h2", {}, "Findings (sync-time blocks and audit)"), table("findings", [["Application", (f) => h("a", { href: `/applications/${f.namespace}/${f.application}` }, f.application)], ["Type", (f) => f.type], ["Message", (f) => f.message]], p.findings || []),
    h("h2", {}, "Templates"), table("templates", [["Name", (t) => t.name], ["Kind", (t) => t.kind]], p.templates || []));
}

async function clustersPage() {
  const c = await api("/api/v1/clusters");
  const state = (s) => (typeof s === "string" ? badge(s) : s ? [badge(s.status), " ", s.message || ""] : badge("Unknown"));
  main().append(h("h1", {}, "Clusters"), table("clusters", [["Name", (x) => x.name], ["Server", (x) => x.server], ["Project", (x) => x.project || ""], ["Connection", (x) => state(x.connectionState)]], c.items || []));
}

async function projectsPage() {
  const p = await api("/api/v1/projects");
  main().append(h("h1", {}, "Projects"), table("projects", [["Name", (x) => get(x, "metadata.name")], ["Description", (x) => get(x, "spec.description", "")],
    ["Sources", (x) => (get(x, "spec.sourceRepos", []) || []).join(", ")], ["Destinations", (x) => (get(x, "spec.destinations", []) || []).map((d) => `${d.name || d.server || ""}/${d.namespace || ""}`).join(", ")],
    ["Roles", (x) => (get(x, "spec.roles", []) || []).map((r) => r.name).join(", ")]], p.items || []));
}

async function appSetsPage() {
  followApps();
  const s = await api("/api/v1/applicationsets");
  const owned = (set) => [...store.apps.values()].filter((a) => (get(a, "metadata.ownerReferences", []) || []).some((o) => o.kind === "ApplicationSet" && o.name === get(set, "metadata.name")));
  const body = h("div", {});
  main().append(h("h1", {}, "ApplicationSets"), body);
  const render = () => put(body, table("applicationsets", [["Name", (x) => get(x, "metadata.name")], ["Generators", (x) => (get(x, "spec.generators", []) || []).map((g) => Object.keys(g)[0]).join(", ")],
    ["Applications", (x) => owned(x).map((a) => h("a", { href: `/applications/${get(a, "metadata.namespace")}/${get(a, "metadata.name")}` }, get(a, "metadata.name"), " "))],
    ["Conditions", (x) => (get(x, "status.conditions", []) || []).filter((c) => c.status === "True").map((c) => `${c.type}: ${c.message || ""}`).join("; ")]], s.items || []));
  store.listeners.add(render);
  render();
}

async function rollbackPoliciesPage() {
  const r = await api("/api/v1/rollbackpolicies");
  const rules = (x) => (get(x, "status.rules", []) || []).map((t) => h("div", { "data-rule": t.name, "data-state": t.state },
    badge(t.state === "Ok" ? "Healthy" : t.state === "Firing" ? "Degraded" : t.state === "Pending" ? "Suspended" : "Unknown", {}), ` ${t.name}: ${t.value ?? "no data"}`,
    t.threshold !== undefined && t.threshold !== null ? ` (threshold ${t.threshold})` : "", t.breachingSince ? `, breaching since ${t.breachingSince}` : "", t.message ? ` — ${t.message}` : ""));
  const rollbacks = (x) => (get(x, "status.applications", []) || []).filter((a) => a.lastRollback).map((a) => h("div", {}, `${a.name}: ${a.lastRollback.rule} at ${a.lastRollback.at}, ${(a.lastRollback.fromRevision || "").slice(0, 8)} → ${(a.lastRollback.toRevision || "").slice(0, 8)} (${a.lastRollback.mode})`));
  main().append(h("h1", {}, "Rollback policies"), table("rollbackpolicies", [
    ["Name", (x) => get(x, "metadata.name")],
    ["Applications", (x) => JSON.stringify(get(x, "spec.applications", {}))],
    ["Rules (state, value)", rules],
    ["Last rollbacks", rollbacks]], r.items || []));
}

function summary(o) {
  if (!o) return "";
  return `${o.passed ? "passed" : "failed"} · ${o.startedAt}${o.rtoSeconds !== undefined ? ` · RTO ${o.rtoSeconds.toFixed(1)} s` : ""}${o.rpoSeconds !== undefined ? ` · RPO ${o.rpoSeconds.toFixed(1)} s` : ""}${o.message ? ` · ${o.message}` : ""}`;
}

async function drPlansPage() {
  const r = await api("/api/v1/drplans");
  main().append(h("h1", {}, "Disaster recovery plans"), table("drplans", [
    ["Name", (x) => get(x, "metadata.name")],
    ["Phase", (x) => badge(get(x, "status.phase", "Unknown"))],
    ["Primary → standby", (x) => `${get(x, "spec.primary.cluster", "")} → ${get(x, "spec.standby.cluster", "")}`],
    ["Last failover", (x) => summary(get(x, "status.lastFailover"))],
    ["Last drill", (x) => summary(get(x, "status.lastDrill"))],
    ["Next drill", (x) => get(x, "status.nextDrill", "")]], r.items || []));
}

// ---- start ------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", async () => {
  try {
    const me = await api("/api/v1/session/userinfo");
    document.getElementById("user").textContent = me.username || me.sub || "";
  } catch (_) { return; }
  route();
});
