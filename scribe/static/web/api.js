// Every request the pages make goes through `api`: it sends the session's CSRF token, turns an error
// answer (a FHIR OperationOutcome) into a readable message, and when the session has ended it asks the
// clinician to sign in again in place and then repeats the request, so nothing on the page is lost.

let csrfToken = document.querySelector('meta[name="csrf-token"]')?.content ?? "";

const STATUS_TEXT = {
  0: "Cannot reach the scribe server",
  400: "The request was refused",
  401: "You are not signed in",
  403: "Not allowed",
  404: "Not found",
  409: "Not possible right now",
  412: "Changed elsewhere",
  413: "Too large",
  415: "Unsupported file type",
  422: "Could not be processed",
  428: "Missing version",
  429: "Too many attempts",
  500: "The server failed",
  503: "The service is not ready",
};

export class ApiError extends Error {
  constructor(status, detail) {
    const title = STATUS_TEXT[status] ?? `Error ${status}`;
    super(detail ? `${title}: ${detail}` : title);
    this.status = status;
    this.detail = detail;
  }
}

async function errorOf(response) {
  let detail = "";
  try {
    const body = await response.json();
    detail = (body.issue ?? []).map((issue) => issue.diagnostics).filter(Boolean).join("; ")
      || body.error_description || body.detail || "";
  } catch {
    detail = "";
  }
  return new ApiError(response.status, typeof detail === "string" ? detail : JSON.stringify(detail));
}

/** fetch() against scribe's own API; resolves with the Response, rejects with an ApiError. */
export async function api(path, { method = "GET", json, body, headers = {}, ifMatch, signal } = {}) {
  for (;;) {
    const sent = new Headers(headers);
    let payload = body;
    if (json !== undefined) {
      sent.set("Content-Type", "application/json");
      payload = JSON.stringify(json);
    }
    if (method !== "GET" && method !== "HEAD") sent.set("X-CSRF-Token", csrfToken);
    if (ifMatch) sent.set("If-Match", ifMatch);
    let response;
    try {
      response = await fetch(path, { method, body: payload, headers: sent, credentials: "same-origin",
                                     cache: "no-store", signal });
    } catch (error) {
      if (error.name === "AbortError") throw error;
      throw new ApiError(0, "check the network connection; nothing on this page is lost, try again");
    }
    if (response.status === 401 && path !== "/v1/session") {
      await signInAgain();
      continue;
    }
    if (!response.ok && response.status !== 304) throw await errorOf(response);
    return response;
  }
}

export async function apiJson(path, options) {
  const response = await api(path, options);
  return response.status === 204 ? null : response.json();
}

/** Sign in with the form fields; returns the session ({username, csrf_token, ...}). */
export async function signIn(username, password) {
  const form = new URLSearchParams({ username, password });
  let response;
  try {
    response = await fetch("/v1/session", { method: "POST", body: form, credentials: "same-origin",
                                            headers: { "Content-Type": "application/x-www-form-urlencoded" } });
  } catch {
    throw new ApiError(0, "check the network connection and try again");
  }
  if (response.status === 401) throw new ApiError(401, "wrong username or password");
  if (!response.ok) throw await errorOf(response);
  const session = await response.json();
  csrfToken = session.csrf_token;
  return session;
}

export async function signOut() {
  try {
    await fetch("/v1/session", { method: "DELETE", headers: { "X-CSRF-Token": csrfToken }, credentials: "same-origin" });
  } finally {
    forgetEverything();
    location.assign("/");
  }
}

/** Nothing of a patient outlives a sign-out in this browser's storage. */
export function forgetEverything() {
  try {
    localStorage.clear();
    sessionStorage.clear();
  } catch {
    // storage disabled: nothing was kept
  }
}

let pendingSignIn = null;

/** The session ended (expired, or signed out in another tab): ask for the password again, in place. */
function signInAgain() {
  if (pendingSignIn) return pendingSignIn;
  const dialog = document.getElementById("reauth");
  if (!dialog) {
    location.reload();
    return new Promise(() => {});
  }
  const form = document.getElementById("reauth-form");
  const error = document.getElementById("reauth-error");
  const original = document.querySelector('meta[name="username"]')?.content ?? "";
  form.username.value = original;
  form.password.value = "";
  error.hidden = true;
  pendingSignIn = new Promise((resolve) => {
    const submit = async (event) => {
      event.preventDefault();
      try {
        const session = await signIn(form.username.value.trim(), form.password.value);
        form.removeEventListener("submit", submit);
        dialog.close();
        pendingSignIn = null;
        if (session.username !== original) {
          location.reload(); // another clinician: this page was someone else's
          return;
        }
        resolve();
      } catch (failure) {
        error.textContent = failure.message;
        error.hidden = false;
      }
    };
    form.addEventListener("submit", submit);
  });
  dialog.showModal();
  (original ? form.password : form.username).focus();
  return pendingSignIn;
}

// ---------------------------------------------------------------------------------------------- page helpers

/** Show a message in the page's alert region (errors by default); never a blank screen. */
export function showMessage(text, kind = "error") {
  const region = document.getElementById("messages");
  if (!region) return;
  region.replaceChildren(el("span", {}, text), el("button", { type: "button", class: "link", "aria-label": "Dismiss",
    onclick: () => { region.hidden = true; } }, "Dismiss"));
  region.className = `messages ${kind}`;
  region.hidden = false;
}

export function clearMessage() {
  const region = document.getElementById("messages");
  if (region) region.hidden = true;
}

/** Run an action from a button: its errors become a message, and the button is disabled meanwhile. */
export async function attempt(action, button) {
  if (button) button.disabled = true;
  try {
    clearMessage();
    return await action();
  } catch (error) {
    if (error.name !== "AbortError") showMessage(error.message || String(error));
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

/** A DOM element: `el("a", {href: "/"}, "text", child)`; attributes starting with "on" are listeners. */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.flat().filter((child) => child !== undefined && child !== null && child !== false));
  return node;
}

export function clock(seconds) {
  const whole = Math.max(0, Math.floor(seconds));
  const h = Math.floor(whole / 3600), m = Math.floor((whole % 3600) / 60), s = whole % 60;
  return h ? `${h}:${String(m).padStart(2, "0")}:${String(s).padStart(2, "0")}` : `${m}:${String(s).padStart(2, "0")}`;
}

export function localTime(iso) {
  if (!iso) return "";
  const moment = new Date(iso);
  return Number.isNaN(moment.getTime()) ? iso : moment.toLocaleString();
}

/** Alt+key shortcuts: `shortcuts({r: () => ...})`; ignored while a dialog is open. */
export function shortcuts(table) {
  document.addEventListener("keydown", (event) => {
    if (!event.altKey || event.ctrlKey || event.metaKey || document.querySelector("dialog[open]")) return;
    const action = table[event.key.toLowerCase()] ?? table[event.code?.replace(/^Key/, "").toLowerCase()];
    if (action) {
      event.preventDefault();
      action();
    }
  });
}

/** The top bar's sign-out button, on every signed-in page. */
export function wireSignOut() {
  document.getElementById("sign-out")?.addEventListener("click", () => signOut());
  document.getElementById("reauth-cancel")?.addEventListener("click", () => signOut());
}
