// The dashboard's one HTTP helper (ward page and admin page): JSON in and out over same-origin fetches on
// the session cookie (the API's cross-site guard needs the Origin those send); a non-2xx answer throws
// ApiError carrying the status and the error body's `error` code.

export class ApiError extends Error {
  constructor(status, body) {
    super((body && (body.detail || body.error)) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.error;
  }
}

export async function request(path, { method = "GET", body } = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  let data = null;
  if (res.status !== 204) {
    const text = await res.text();
    try { data = text ? JSON.parse(text) : null; } catch { data = { detail: text }; }
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}
