// The side panel's live list of the Bot API calls the bot made (newest first).

import { $, api, el, formatTime, toDate, toastError } from "./ui.js";

const MAX_ITEMS = 1500;
const MAX_DETAIL = 20000;

const list = $("#calls");
const seen = new Set();
let lastSeq = 0;
let total = 0;
let violations = 0;
let loading = null;

function callTime(at) {
  if (typeof at === "number" && at < 1e9) return `+${at.toFixed(3)} s`; // seconds since start
  const date = toDate(at);
  if (!date) return "";
  return `${formatTime(date, true)}.${String(date.getMilliseconds()).padStart(3, "0")}`;
}

function pretty(value) {
  if (value === undefined || value === null) return "";
  let text = typeof value === "string" ? value : JSON.stringify(value, null, 2);
  if (text.length > MAX_DETAIL) text = `${text.slice(0, MAX_DETAIL)}\n… (${text.length - MAX_DETAIL} more characters)`;
  return text;
}

function details(call) {
  const box = el("div", { class: "call-details" });
  box.append(el("div", { class: "call-label", text: "Parameters" }), el("pre", { text: pretty(call.params) || "(none)" }));
  if (call.error && !call.violation && call.ok !== false) box.append(el("div", { class: "call-label bad", text: "Error" }), el("pre", { class: "bad", text: pretty(call.error) }));
  if (call.result_summary !== undefined && call.result_summary !== null && call.result_summary !== "") {
    box.append(el("div", { class: "call-label", text: "Result" }), el("pre", { text: pretty(call.result_summary) }));
  }
  const meta = [`#${call.seq}`];
  if (call.status !== undefined && call.status !== null) meta.push(`HTTP ${call.status}`);
  if (call.at !== undefined) meta.push(String(call.at));
  box.append(el("div", { class: "call-label muted", text: meta.join(" · ") }));
  return box;
}

function matchesFilter(node) {
  const filter = $("#calls-filter").value.trim().toLowerCase();
  return !filter || node.dataset.method.toLowerCase().includes(filter);
}

function updateCounts() {
  $("#calls-count").textContent = total ? String(total) : "";
  const badge = $("#violations-count");
  badge.hidden = !violations;
  badge.textContent = violations ? `⚠ ${violations}` : "";
  badge.title = `${violations} rule violation${violations === 1 ? "" : "s"}`;
}

function add(call) {
  if (!call || typeof call !== "object") return;
  const seq = Number(call.seq);
  if (Number.isFinite(seq)) {
    if (seen.has(seq)) return;
    seen.add(seq);
    lastSeq = Math.max(lastSeq, seq);
  }
  const method = String(call.method || "?");
  const ok = call.ok !== false;
  const node = el("li", {
    class: `call ${ok ? "ok" : "error"}${call.violation ? " violation" : ""}${call.throttled ? " throttled" : ""}`,
    dataset: { method, seq: Number.isFinite(seq) ? String(seq) : "" },
  });
  const head = el(
    "button",
    { type: "button", class: "call-head", "aria-expanded": "false" },
    el("span", { class: "call-method", text: method }),
    el("span", { class: `call-status ${ok ? "ok" : "bad"}`, text: ok ? "ok" : call.status ? `${call.status}` : "error" }),
    el("time", { class: "call-time", text: callTime(call.at) }),
  );
  node.append(head);
  if (call.violation || (!ok && call.error)) {
    node.append(el("div", { class: "call-error", text: typeof call.error === "string" ? call.error : pretty(call.error) }));
  }
  head.addEventListener("click", () => {
    const open = !node.classList.contains("expanded");
    node.classList.toggle("expanded", open);
    head.setAttribute("aria-expanded", open ? "true" : "false");
    const existing = node.querySelector(".call-details");
    if (open && !existing) node.append(details(call));
    if (!open && existing) existing.remove();
  });
  node.classList.toggle("filtered-out", !matchesFilter(node));

  // Keep the list ordered newest first even when a reload brings older calls late.
  let before = list.firstElementChild;
  if (Number.isFinite(seq)) {
    while (before && Number(before.dataset.seq) > seq) before = before.nextElementSibling;
  }
  list.insertBefore(node, before);
  while (list.childElementCount > MAX_ITEMS) list.lastElementChild.remove();
  total += 1;
  if (call.violation) violations += 1;
  updateCounts();
}

/** Loads the calls after the newest one we have (all of them the first time). */
function load() {
  if (loading) return loading;
  loading = (async () => {
    try {
      const answer = await api(`/api/calls?after=${encodeURIComponent(lastSeq)}`);
      if (Array.isArray(answer)) for (const call of answer) add(call);
    } catch (error) {
      toastError(error, "Could not load the Bot API calls");
    } finally {
      loading = null;
    }
  })();
  return loading;
}

$("#calls-filter").addEventListener("input", () => {
  for (const node of list.children) node.classList.toggle("filtered-out", !matchesFilter(node));
});
$("#hide-updates").addEventListener("change", (event) => list.classList.toggle("hide-updates", event.target.checked));
$("#only-problems").addEventListener("change", (event) => list.classList.toggle("only-problems", event.target.checked));
$("#calls-clear").addEventListener("click", () => {
  list.replaceChildren();
  total = 0;
  violations = 0;
  updateCounts();
});

export const calls = { add, load };
