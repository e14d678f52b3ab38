// ecgstream admin page: users, patients and devices, through the admin API (/api/users, /api/patients,
// /api/devices). Admins only (the API refuses others with 403; the page says so). Plain ES module, no
// inline script or style (the service's Content-Security-Policy forbids them); every text is put in with
// textContent, never as HTML. Requests ride on the session cookie: same-origin fetches send their Origin,
// which the API's cross-site guard requires of cookie-authenticated changes.

import { request } from "./api.js";

const $ = (id) => document.getElementById(id);

const api = request;

function say(text, kind = "ok") {
  const m = $("message");
  m.textContent = text;
  m.dataset.kind = kind;
}

function show(view) {
  for (const id of ["login-view", "forbidden-view", "admin-view"]) $(id).hidden = id !== view;
}

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined || text === "" ? "—" : String(text);
  return td;
}

function button(label, testid, onClick) {
  const td = document.createElement("td");
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.dataset.testid = testid;
  b.addEventListener("click", onClick);
  td.append(b);
  return td;
}

function fill(tbody, rows, empty) {
  tbody.replaceChildren(...rows);
  if (!rows.length) {
    const tr = document.createElement("tr");
    const td = cell(empty);
    td.colSpan = 7;
    td.className = "empty";
    tr.append(td);
    tbody.append(tr);
  }
}

/** Run a change, report it (or its refusal, as the API worded it), then reload the tables. */
async function change(what, call) {
  try {
    await call();
    say(what);
  } catch (err) {
    say(`${what.split(":")[0]} failed: ${err.message}`, "error");
    if (err.status === 401) { show("login-view"); return; }
  }
  await load();
}

async function load() {
  let patients, devices, users;
  try {
    [patients, devices, users] = await Promise.all([
      api("/api/patients"), api("/api/devices"), api("/api/users")]);
  } catch (err) {
    if (err.status === 401) { show("login-view"); return; }
    if (err.status === 403) { show("forbidden-view"); return; }
    say(`could not load: ${err.message}`, "error");
    return;
  }
  show("admin-view");
  const worn = new Map();
  for (const d of devices.devices) {
    if (d.patient_id) worn.set(d.patient_id, [...(worn.get(d.patient_id) || []), d.device_id]);
  }
  fill($("patients-body"), patients.patients.map((p) => {
    const tr = document.createElement("tr");
    tr.dataset.patient = p.patient_id;
    tr.append(cell(p.patient_id), cell(p.display_name), cell(p.team), cell(p.assigned_to),
      cell((worn.get(p.patient_id) || []).join(", ")),
      button("Rename", "patient-rename", () => {
        const name = window.prompt(`New name for ${p.patient_id}`, p.display_name || "");
        if (name === null || !name.trim()) return;
        change(`renamed patient ${p.patient_id}`, () => api(`/api/patients/${encodeURIComponent(p.patient_id)}/name`,
          { method: "PUT", body: { display_name: name.trim() } }));
      }),
      button("Remove", "patient-remove", () => {
        if (!window.confirm(`Remove patient ${p.patient_id}? Their stored alerts and windows stay.`)) return;
        change(`removed patient ${p.patient_id}`,
          () => api(`/api/patients/${encodeURIComponent(p.patient_id)}`, { method: "DELETE" }));
      }));
    return tr;
  }), "No patients yet — add one above, with `ecgstream cloud patients add …`, or run the cloud with --auto-register.");

  const select = $("device-patient");
  const chosen = select.value;
  select.replaceChildren(...patients.patients.map((p) => {
    const o = document.createElement("option");
    o.value = p.patient_id;
    o.textContent = p.display_name ? `${p.display_name} (${p.patient_id})` : p.patient_id;
    return o;
  }));
  if (chosen) select.value = chosen;

  fill($("devices-body"), devices.devices.map((d) => {
    const tr = document.createElement("tr");
    tr.dataset.device = d.device_id;
    tr.append(cell(d.device_id), cell(d.patient_id), cell(d.profile), cell(d.active ? "yes" : "no"),
      button("Remove", "device-remove", () => {
        if (!window.confirm(`Remove device ${d.device_id}? Its new data will be refused.`)) return;
        change(`removed device ${d.device_id}`,
          () => api(`/api/devices/${encodeURIComponent(d.device_id)}`, { method: "DELETE" }));
      }));
    return tr;
  }), "No devices yet.");

  fill($("users-body"), users.users.map((u) => {
    const tr = document.createElement("tr");
    tr.dataset.user = u.username;
    tr.append(cell(u.username), cell(u.role), cell(u.team), cell(u.active ? "yes" : "no"),
      button("Delete", "user-delete", () => {
        if (!window.confirm(`Delete user ${u.username} and end their sessions?`)) return;
        change(`deleted user ${u.username}`,
          () => api(`/api/users/${encodeURIComponent(u.username)}`, { method: "DELETE" }));
      }));
    return tr;
  }), "No users.");
}

function formData(form) {
  return Object.fromEntries([...new FormData(form).entries()].map(([k, v]) => [k, String(v).trim()]));
}

async function onPatient(ev) {
  ev.preventDefault();
  const f = formData(ev.target);
  const body = { patient_id: f.patient_id, display_name: f.display_name };
  if (f.team) body.team = f.team;
  await change(`added patient ${f.patient_id}`, () => api("/api/patients", { method: "POST", body }));
  if ($("message").dataset.kind === "ok") ev.target.reset();
}

async function onDevice(ev) {
  ev.preventDefault();
  const f = formData(ev.target);
  const body = { device_id: f.device_id, patient_id: f.patient_id, profile: f.profile || "" };
  await change(`added device ${f.device_id} worn by ${f.patient_id}`,
    () => api("/api/devices", { method: "POST", body }));
  if ($("message").dataset.kind === "ok") $("device-form").querySelector("[name=device_id]").value = "";
}

async function onUser(ev) {
  ev.preventDefault();
  const form = ev.target;
  const body = { username: form.username.value.trim(), password: form.password.value, role: form.role.value };
  await change(`added ${body.role} ${body.username}`, () => api("/api/users", { method: "POST", body }));
  if ($("message").dataset.kind === "ok") form.reset();
}

async function onLogin(ev) {
  ev.preventDefault();
  try {
    await api("/api/auth/login", {
      method: "POST", body: { username: $("login-username").value.trim(), password: $("login-password").value } });
    $("login-password").value = "";
    say("");
    await start();
  } catch (err) {
    say(`log in failed: ${err.message}`, "error");
  }
}

async function start() {
  try {
    const me = await api("/api/me");
    $("whoami").textContent = `${me.username} (${me.role})`;
    $("whoami").hidden = false;
    $("logout").hidden = false;
  } catch (err) {
    if (err.status === 401) { show("login-view"); return; }
  }
  await load();
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", onLogin);
  $("patient-form").addEventListener("submit", onPatient);
  $("device-form").addEventListener("submit", onDevice);
  $("user-form").addEventListener("submit", onUser);
  $("logout").addEventListener("click", async () => {
    try { await api("/api/auth/logout", { method: "POST" }); } catch { /* signed out already */ }
    $("whoami").hidden = true;
    $("logout").hidden = true;
    show("login-view");
  });
  start();
});
