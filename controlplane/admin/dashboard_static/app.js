// The dashboard page: renders the state the server pushes over server-sent events. Text goes in through
// textContent only, so a label value can never become markup.
"use strict";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value; else node.setAttribute(key, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(child == null ? "" : String(child)));
  }
  return node;
}

function seconds(value) {
  return value == null ? "" : Number(value).toFixed(1) + " s";
}

function renderClusters(status) {
  const rows = document.getElementById("cluster-rows");
  rows.replaceChildren(...(status.clusters || []).map((c) => {
    const never = !c.last_success;
    return el("tr", { "data-cluster": c.cluster },
      el("td", {}, c.cluster), el("td", {}, c.tasks),
      el("td", {}, never ? "never read" : seconds(c.view_age_seconds)),
      el("td", {}, seconds(c.last_sync_seconds)), el("td", {}, c.consecutive_failures),
      el("td", { class: c.last_error ? "problem" : "" }, c.last_error));
  }));
  const badge = document.getElementById("ready");
  badge.textContent = status.ready ? "ready" : "not ready";
  badge.className = "badge " + (status.ready ? "ready" : "not-ready");
  document.getElementById("summary").textContent =
    `${status.services} services · ${status.endpoints} endpoints · ${status.proxies} proxies · ${status.problems} problems · version ${status.version}`;
}

function problemNode(p) {
  const where = [p.task_definition && `task definition ${p.task_definition}`, p.container && `container ${p.container}`,
    p.label && `label ${p.label}`].filter(Boolean).join(", ");
  return el("div", { class: "problem " + (p.severity || "error") }, `${(p.severity || "error").toUpperCase()}: ${p.message}`,
    where ? el("small", {}, ` (${where})`) : "");
}

function renderServices(listing) {
  const list = document.getElementById("service-list");
  list.replaceChildren(...(listing.services || []).map((s) => {
    const endpoints = el("table", {}, el("thead", {}, el("tr", {},
      el("th", {}, "Address"), el("th", {}, "Task"), el("th", {}, "Task definition"), el("th", {}, "Zone"), el("th", {}, "Health"))),
      el("tbody", {}, ...(s.endpoints || []).map((e) => el("tr", { "data-endpoint": `${e.address}:${e.port}` },
        el("td", {}, `${e.address}:${e.port}`), el("td", {}, e.task_id), el("td", {}, e.task_definition),
        el("td", {}, e.availability_zone), el("td", { class: "health-" + e.health }, e.health)))));
    const route = s.route || {};
    const hosts = (route.hosts || []).join(", ");
    return el("div", { class: "service " + s.state, "data-service": s.name },
      el("h3", {}, s.name, " ", el("small", {}, `${s.state}${s.protocol ? " · " + s.protocol : ""}`)),
      s.state === "serving" ? el("div", {}, "route ", el("code", {}, route.port ? `tcp:${route.port}` : `${hosts || "*"} ${s.policy && s.policy.route_method ? s.policy.route_method : route.path_prefix || ""}`)) : "",
      ...(s.problems || []).map(problemNode),
      (s.endpoints || []).length ? endpoints : "");
  }));
  // Problems of a listed (disabled) service are shown in its card; the rest belong to no service.
  const listed = new Set((listing.services || []).map((s) => s.name));
  document.getElementById("orphan-problems").replaceChildren(
    ...(listing.problems || []).filter((p) => !listed.has(p.service)).map(problemNode));
}

function renderProxies(listing) {
  const rows = [];
  for (const p of listing.proxies || []) {
    const types = p.types && p.types.length ? p.types : [{}];
    types.forEach((t, i) => {
      const nack = t.last_nack && t.last_nack.error ? t.last_nack.error : "";
      rows.push(el("tr", { "data-proxy": p.node_id, "data-type": t.type || "" },
        el("td", {}, i === 0 ? p.node_id : ""), el("td", {}, i === 0 ? p.role : ""), el("td", {}, i === 0 ? p.peer : ""),
        el("td", {}, t.type || ""), el("td", {}, (t.version_sent || "").slice(0, 12)), el("td", {}, (t.version_acked || "").slice(0, 12)),
        el("td", {}, t.nacks || 0), el("td", { class: nack ? "nack" : "" }, nack)));
    });
  }
  document.getElementById("proxy-rows").replaceChildren(...rows);
}

function renderEvents(events) {
  document.getElementById("event-list").replaceChildren(...events.slice().reverse().map((e) =>
    el("li", { "data-kind": e.kind }, new Date(e.at * 1000).toLocaleTimeString(), " ", el("b", {}, e.kind), " ",
      [e.node_id, e.type, e.message].filter(Boolean).join(" · "))));
}

function render(state) {
  renderClusters(state.status);
  renderServices(state.services);
  renderProxies(state.proxies);
  renderEvents(state.events || []);
}

function connect() {
  const live = document.getElementById("live");
  const source = new EventSource("/api/events");
  source.addEventListener("state", (message) => { live.className = "live on"; render(JSON.parse(message.data)); });
  source.onerror = () => { live.className = "live"; };
}

connect();
