// Portcullis console: reads the admin API with the token kept in this tab's
// sessionStorage and refreshes every few seconds. Values are inserted with
// textContent only: audit records hold user input.
"use strict";

const REFRESH_MS = 2000;
const $ = (id) => document.getElementById(id);
let timer = null;

function token() { return sessionStorage.getItem("portcullis.token") || ""; }

async function api(path) {
  const res = await fetch(path, { headers: { Authorization: "Bearer " + token() },
                                  cache: "no-store" });
  let body = null;
  try { body = await res.json(); } catch (e) { /* not JSON */ }
  if (!res.ok) {
    const msg = body && body.error ? body.error.message : "HTTP " + res.status;
    const err = new Error(msg);
    err.status = res.status;
    throw err;
  }
  return body;
}

function cell(text, cls) {
  const td = document.createElement("td");
  if (cls) td.className = cls;
  td.textContent = text === undefined || text === null || text === "" ? "–" : String(text);
  return td;
}

function pill(text) {
  const td = document.createElement("td");
  const span = document.createElement("span");
  span.className = "pill " + String(text || "").replace(/[^a-z-]/g, "");
  span.textContent = text || "–";
  td.appendChild(span);
  return td;
}

function fill(tableId, rows, columns, emptyText) {
  const tbody = $(tableId).querySelector("tbody");
  const frag = document.createDocumentFragment();
  if (!rows.length) {
    const tr = document.createElement("tr");
    const td = cell(emptyText, "empty");
    td.colSpan = columns;
    tr.appendChild(td);
    frag.appendChild(tr);
  }
  for (const cells of rows) {
    const tr = document.createElement("tr");
    for (const c of cells) tr.appendChild(c);
    frag.appendChild(tr);
  }
  tbody.replaceChildren(frag);
}

function ago(ts) {
  if (!ts) return "–";
  const s = Math.max(0, Math.round((Date.now() - Date.parse(ts)) / 1000));
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  return new Date(ts).toLocaleString();
}

function packageOf(module) {
  const m = /^\s*package\s+([\w.]+)/m.exec(module || "");
  return m ? m[1] : "";
}

function userOf(r) {
  return r.user && typeof r.user === "object" ? r.user.username : r.user;
}

async function refresh() {
  try {
    const [rev, inst, res, pol, logs] = await Promise.all([
      api("/v1/revision"), api("/v1/instances"), api("/v1/resources"),
      api("/v1/policies"), api("/v1/logs?order=desc&limit=25"),
    ]);
    $("revision").textContent = "revision " + rev.revision;
    fill("instances", inst.items.map((i) => [
      cell(i.instance, "mono"), cell(i.connector), cell(i.version, "mono"),
      cell(i.address, "mono"), cell(i.cluster_role), pill(i.status), cell(ago(i.last_seen)),
    ]), 7, "No connector has reported yet.");
    $("instances-count").textContent =
      "(" + inst.items.filter((i) => i.status === "connected").length + " connected)";
    fill("resources", res.items.map((r) => [
      cell(r.name, "mono"), cell(r.technology),
      cell(r.endpoint || (r.hostname ? r.hostname + ":" + r.port : ""), "mono"),
    ]), 3, "No resources.");
    $("resources-count").textContent = "(" + res.items.length + ")";
    fill("policies", pol.items.map((p) => [
      cell(p.name, "mono"), pill(p.status || "active"), cell(packageOf(p.module), "mono"),
    ]), 3, "No policies.");
    $("policies-count").textContent = "(" + pol.items.length + ")";
    fill("logs", logs.items.map((r) => [
      cell(r.ts ? new Date(r.ts).toLocaleTimeString() : "", "mono"), cell(r.instance, "mono"),
      cell(userOf(r)), cell(r.resource), pill(r.decision),
      cell(r.query || [r.operation, r.bucket, r.key].filter(Boolean).join(" "), "request"),
    ]), 6, "No audit records yet.");
    $("status").textContent = "live";
    $("status").classList.remove("error");
    $("updated").textContent = "Updated " + new Date().toLocaleTimeString() +
      " · refreshes every " + REFRESH_MS / 1000 + " s";
  } catch (e) {
    if (e.status === 401) { signOut("The token was refused."); return; }
    $("status").textContent = "cannot reach the control plane: " + e.message;
    $("status").classList.add("error");
  }
}

function signedIn() {
  $("login").hidden = true;
  $("main").hidden = false;
  $("signout").hidden = false;
  refresh();
  clearInterval(timer);
  timer = setInterval(refresh, REFRESH_MS);
}

function signOut(message) {
  clearInterval(timer);
  sessionStorage.removeItem("portcullis.token");
  $("main").hidden = true;
  $("signout").hidden = true;
  $("login").hidden = false;
  $("status").textContent = "not signed in";
  $("login-error").textContent = message || "";
}

document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    sessionStorage.setItem("portcullis.token", $("token").value.trim());
    $("token").value = "";
    try {
      await api("/v1/revision");
      $("login-error").textContent = "";
      signedIn();
    } catch (e) {
      signOut(e.status === 401 ? "The token was refused." : e.message);
    }
  });
  $("signout").addEventListener("click", () => signOut(""));
  if (token()) signedIn();
});
