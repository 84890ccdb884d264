// Small helpers shared by the sandbox's modules: DOM building, the JSON API, toasts and alerts.

/** Builds an element: el("div", {class: "x", dataset: {id: 1}}, child, "text"). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const $ = (selector, root = document) => root.querySelector(selector);

/** An error answered by the API (4xx/5xx with {"error": ...}) or a failed request. */
export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

/**
 * Calls the sandbox API. `json` sends a JSON body, `form` a FormData (multipart).
 * Resolves to the parsed JSON answer (or null for an empty one); rejects with ApiError.
 */
export async function api(path, { method, json, form, signal } = {}) {
  const init = { method: method || (json || form ? "POST" : "GET"), signal };
  if (json !== undefined) {
    init.headers = { "Content-Type": "application/json" };
    init.body = JSON.stringify(json);
  } else if (form !== undefined) {
    init.body = form;
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error && error.name === "AbortError") throw error;
    throw new ApiError(`Network error: ${path} (${error && error.message ? error.message : error})`, 0);
  }
  const body = await response.text();
  let data = null;
  if (body) {
    try {
      data = JSON.parse(body);
    } catch {
      data = body;
    }
  }
  if (!response.ok) {
    const message =
      (data && typeof data === "object" && data.error) ||
      (typeof data === "string" && data.trim()) ||
      `${response.status} ${response.statusText}`;
    throw new ApiError(String(message), response.status);
  }
  return data;
}

let toastTimer = 0;

/** Shows a short message at the bottom of the page (callback answers and errors). */
export function toast(text, { error = false, ms } = {}) {
  const node = document.getElementById("toast");
  if (!node) return;
  node.textContent = text;
  node.classList.toggle("error", error);
  node.hidden = false;
  // Restart the fade-in animation.
  node.classList.remove("show");
  void node.offsetWidth;
  node.classList.add("show");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    node.classList.remove("show");
    node.hidden = true;
  }, ms || (error ? 6000 : 3500));
}

/** Shows an error from a rejected promise as a red toast. */
export function toastError(error, prefix = "") {
  if (error && error.name === "AbortError") return;
  const message = error && error.message ? error.message : String(error);
  console.warn(prefix, error);
  toast(prefix ? `${prefix}: ${message}` : message, { error: true });
}

/** Opens the modal alert (a callback answer with show_alert). Resolves when closed. */
export function showAlert(text, { title = "Lumigram" } = {}) {
  return openModal(text, { title, confirm: false }).then(() => undefined);
}

/** The same modal with OK and Cancel: resolves to true for OK. */
export function confirmDialog(text, { title = "Lumigram", okLabel = "OK" } = {}) {
  return openModal(text, { title, confirm: true, okLabel });
}

let closeOpenModal = null;

function openModal(text, { title, confirm, okLabel = "OK" }) {
  if (closeOpenModal) closeOpenModal(false);
  const modal = document.getElementById("alert");
  const ok = document.getElementById("alert-ok");
  const cancel = document.getElementById("alert-cancel");
  document.getElementById("alert-title").textContent = title;
  document.getElementById("alert-text").textContent = text;
  ok.textContent = okLabel;
  cancel.hidden = !confirm;
  modal.hidden = false;
  ok.focus();
  return new Promise((resolve) => {
    const close = (result) => {
      modal.hidden = true;
      closeOpenModal = null;
      ok.removeEventListener("click", onOk);
      cancel.removeEventListener("click", onCancel);
      document.removeEventListener("keydown", onKey, true);
      modal.removeEventListener("click", onBackdrop);
      resolve(result);
    };
    const onOk = () => close(true);
    const onCancel = () => close(false);
    const onKey = (event) => {
      if (event.key === "Escape" || event.key === "Enter") {
        event.preventDefault();
        event.stopPropagation();
        close(event.key === "Enter");
      }
    };
    const onBackdrop = (event) => {
      if (event.target === modal) close(false);
    };
    closeOpenModal = close;
    ok.addEventListener("click", onOk);
    cancel.addEventListener("click", onCancel);
    document.addEventListener("keydown", onKey, true);
    modal.addEventListener("click", onBackdrop);
  });
}

const AVATAR_COLORS = ["#e17076", "#faa774", "#a695e7", "#7bc862", "#6ec9cb", "#65aadd", "#ee7aae"];

export function avatarColor(id) {
  const n = Math.abs(Number(id) || 0);
  return AVATAR_COLORS[n % AVATAR_COLORS.length];
}

export function initials(name) {
  const words = String(name || "?").trim().split(/\s+/).filter(Boolean);
  const letters = words.slice(0, 2).map((word) => Array.from(word)[0] || "");
  return (letters.join("") || "?").toUpperCase();
}

/** A date from the API: unix seconds, milliseconds or an ISO string. */
export function toDate(value) {
  if (value === undefined || value === null || value === "") return null;
  if (typeof value === "number") return new Date(value > 1e12 ? value : value * 1000);
  const numeric = Number(value);
  if (!Number.isNaN(numeric)) return toDate(numeric);
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

export function formatTime(date, withSeconds = false) {
  if (!date) return "";
  const pad = (n) => String(n).padStart(2, "0");
  const base = `${pad(date.getHours())}:${pad(date.getMinutes())}`;
  return withSeconds ? `${base}:${pad(date.getSeconds())}` : base;
}

/** "Today", "Yesterday" or the date; `now` is the sandbox's clock (it can be moved forward). */
export function formatDay(date, now = new Date()) {
  if (!date) return "";
  const today = now;
  const sameDay = (a, b) =>
    a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
  if (sameDay(date, today)) return "Today";
  const yesterday = new Date(today);
  yesterday.setDate(today.getDate() - 1);
  if (sameDay(date, yesterday)) return "Yesterday";
  const options = { month: "long", day: "numeric" };
  if (date.getFullYear() !== today.getFullYear()) options.year = "numeric";
  return date.toLocaleDateString(undefined, options);
}

/** "+30 d 02:00:05" for a clock offset in seconds. */
export function formatOffset(seconds) {
  const total = Math.round(Number(seconds) || 0);
  if (total === 0) return "0 (real time)";
  const sign = total < 0 ? "−" : "+";
  let rest = Math.abs(total);
  const days = Math.floor(rest / 86400);
  rest -= days * 86400;
  const pad = (n) => String(n).padStart(2, "0");
  const hms = `${pad(Math.floor(rest / 3600))}:${pad(Math.floor((rest % 3600) / 60))}:${pad(rest % 60)}`;
  return `${sign}${days ? `${days} d ` : ""}${hms}`;
}

export function formatStars(amount) {
  return `⭐ ${Number(amount || 0).toLocaleString("en-US")}`;
}

/** Shows the price of an invoice: Stars as ⭐ N, other currencies in their minor units. */
export function formatPrice(currency, amount) {
  if (!currency || currency === "XTR") return formatStars(amount);
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(Number(amount) / 100);
  } catch {
    return `${amount} ${currency}`;
  }
}
