// Lumigram sandbox: a Telegram-like web client for the bot running against the emulator.
// Plain ES modules, no build step, no external resources. See docs/sandbox.md for the API.

import { applyInvoiceStatus, createMessageElement, dayLabel, fill } from "./chat.js";
import { calls } from "./calls.js";
import {
  $,
  api,
  avatarColor,
  confirmDialog,
  el,
  formatOffset,
  formatPrice,
  formatStars,
  initials,
  showAlert,
  toast,
  toastError,
} from "./ui.js";

const DEMO_LOCATION = { latitude: 48.8584, longitude: 2.2945 }; // the Eiffel Tower
const ACTION_MS = 5000;
const STORAGE_KEY = "lumigram.sandbox.user";

const ACTION_TEXTS = {
  typing: "is typing…",
  upload_photo: "is sending a photo…",
  record_video: "is recording a video…",
  upload_video: "is sending a video…",
  record_voice: "is recording a voice message…",
  upload_voice: "is sending a voice message…",
  upload_document: "is sending a file…",
  choose_sticker: "is choosing a sticker…",
  find_location: "is finding a location…",
  record_video_note: "is recording a video message…",
  upload_video_note: "is sending a video message…",
};

const store = {
  state: null,
  selected: null, // the selected user's id, as a string
  chats: new Map(), // user id -> Map(message_id -> Message)
  elements: new Map(), // message_id -> .msg element of the selected chat
  unread: new Map(), // user id -> count
  invoices: new Map(), // "user:message" -> {state, text}
  actions: new Map(), // user id -> {action, until}
  commands: [], // the command menu of the selected user's language
  commandsLanguage: null,
  editing: null, // the user's message being edited
  drafts: new Map(), // user id -> unsent text
  keyboardHidden: false,
  restart: null, // {before, sawDown, until} while a restart is awaited
  floodBusy: false,
  transcriptToken: 0,
};

const key = (id) => String(id);

/** The last selected user, kept across reloads (storage may be unavailable: then not). */
function remember(id) {
  try {
    if (id === undefined) return localStorage.getItem(STORAGE_KEY);
    localStorage.setItem(STORAGE_KEY, id);
  } catch {
    // private mode or storage disabled
  }
  return null;
}
const selectedUser = () => userById(store.selected);

function userById(id) {
  const users = (store.state && store.state.users) || [];
  return users.find((user) => key(user.id) === key(id)) || null;
}

function botName() {
  const bot = (store.state && store.state.bot) || {};
  return bot.first_name || bot.name || "Lumigram";
}

function chatOf(userId) {
  const id = key(userId);
  if (!store.chats.has(id)) store.chats.set(id, new Map());
  return store.chats.get(id);
}

function sortedMessages(userId) {
  return [...chatOf(userId).values()].sort((a, b) => Number(a.message_id) - Number(b.message_id));
}

/* ------------------------------------------------------------------ state and users */

async function refreshState() {
  try {
    applyState(await api("/api/state"));
  } catch (error) {
    toastError(error, "Could not load the sandbox state");
  }
}

function applyState(state) {
  if (!state || typeof state !== "object") return;
  const previous = selectedUser();
  store.state = state;
  renderUsers();
  renderBot();
  renderControls();

  let current = selectedUser();
  if (!current) {
    const users = state.users || [];
    const remembered = userById(remember());
    const next = remembered || users[0];
    if (next) selectUser(next.id);
    else showNoUser();
    return;
  }
  if (previous && previous.language_code !== current.language_code) loadCommands(true);
  renderBlocked();
  renderChatHeader();
  renderReplyKeyboard();
  scheduleSubscriptions();
}

function renderUsers() {
  const list = $("#users");
  const users = (store.state && store.state.users) || [];
  const seen = new Set();
  users.forEach((user, index) => {
    const id = key(user.id);
    seen.add(id);
    let node = list.querySelector(`.user[data-user-id="${CSS.escape(id)}"]`);
    if (!node) node = buildUserElement(id);
    if (list.children[index] !== node) list.insertBefore(node, list.children[index] || null);
    updateUserElement(node, user);
  });
  for (const node of [...list.children]) if (!seen.has(node.dataset.userId)) node.remove();
}

function buildUserElement(id) {
  const node = el("li", { class: "user", tabindex: "0", dataset: { userId: id } });
  const avatar = el("div", { class: "avatar", "aria-hidden": "true" });
  const name = el("span", { class: "user-name" });
  const admin = el("span", { class: "badge badge-admin", text: "admin" });
  const blocked = el("span", { class: "badge badge-blocked", text: "blocked" });
  const unread = el("span", { class: "unread" });
  const language = el("span", { class: "user-lang" });
  const stars = el("span", { class: "user-stars", title: "Stars balance" });
  const idNode = el("span", { class: "user-id muted" });
  const makeAdmin = el("button", { type: "button", class: "make-admin btn tiny" });
  const blockBot = el("button", { type: "button", class: "block-bot btn tiny" });
  const addStars = el("button", { type: "button", class: "add-stars btn tiny", text: "+ ⭐" });
  const amount = el("input", { type: "number", name: "amount", min: "1", step: "1", value: "100", "aria-label": "Stars to add" });
  const starsForm = el(
    "form",
    { class: "stars-form", hidden: true },
    amount,
    el("button", { type: "submit", class: "btn tiny primary", text: "Add Stars" }),
  );

  node.append(
    avatar,
    el(
      "div",
      { class: "user-main" },
      el("div", { class: "user-line" }, name, admin, blocked, unread),
      el("div", { class: "user-line sub" }, language, stars, idNode),
      el("div", { class: "user-actions" }, makeAdmin, blockBot, addStars),
      starsForm,
    ),
  );

  node.addEventListener("click", (event) => {
    if (event.target.closest(".user-actions, .stars-form")) return;
    selectUser(id);
  });
  node.addEventListener("keydown", (event) => {
    if (event.target === node && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      selectUser(id);
    }
  });
  makeAdmin.addEventListener("click", () => {
    const user = userById(id);
    if (user) userAction(id, "admin", { admin: !user.is_admin }, user.is_admin ? "Admin rights removed" : "Now an admin");
  });
  blockBot.addEventListener("click", () => {
    const user = userById(id);
    if (user) userAction(id, "block", { blocked: !user.blocked }, user.blocked ? "Bot unblocked" : "Bot blocked");
  });
  addStars.addEventListener("click", () => {
    starsForm.hidden = !starsForm.hidden;
    if (!starsForm.hidden) amount.select();
  });
  starsForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = Math.trunc(Number(amount.value));
    if (!Number.isFinite(value) || value === 0) {
      toast("Enter a number of Stars", { error: true });
      return;
    }
    const ok = await userAction(id, "stars", { amount: value }, `Added ${formatStars(value)}`);
    if (ok) starsForm.hidden = true;
  });
  return node;
}

function updateUserElement(node, user) {
  const avatar = $(".avatar", node);
  avatar.textContent = initials(user.first_name);
  avatar.style.background = avatarColor(user.id);
  $(".user-name", node).textContent = user.first_name || `User ${user.id}`;
  $(".user-lang", node).textContent = user.language_code || "—";
  $(".user-stars", node).textContent = formatStars(user.stars);
  $(".user-id", node).textContent = `#${user.id}`;
  $(".make-admin", node).textContent = user.is_admin ? "Remove admin" : "Make admin";
  $(".block-bot", node).textContent = user.blocked ? "Unblock bot" : "Block bot";
  node.classList.toggle("is-admin", Boolean(user.is_admin));
  node.classList.toggle("blocked", Boolean(user.blocked));
  node.classList.toggle("selected", key(user.id) === store.selected);
  node.setAttribute("aria-selected", key(user.id) === store.selected ? "true" : "false");
  const unread = store.unread.get(key(user.id)) || 0;
  const badge = $(".unread", node);
  badge.textContent = unread ? String(unread) : "";
  badge.hidden = !unread;
}

async function userAction(id, action, body, done) {
  try {
    const answer = await api(`/api/users/${encodeURIComponent(id)}/${action}`, { json: body });
    mergeUser(answer);
    const user = userById(id);
    toast(user ? `${user.first_name}: ${done}` : done);
    refreshState();
    return true;
  } catch (error) {
    toastError(error);
    return false;
  }
}

/** An answer that is a User updates the list at once (the state event follows). */
function mergeUser(answer) {
  if (!answer || typeof answer !== "object" || answer.id === undefined || !store.state) return;
  const users = store.state.users || (store.state.users = []);
  const index = users.findIndex((user) => key(user.id) === key(answer.id));
  if (index >= 0) users[index] = { ...users[index], ...answer };
  else if ("first_name" in answer) users.push(answer);
  renderUsers();
  renderBlocked();
}

function selectUser(id) {
  const previousId = store.selected;
  const changed = previousId !== key(id);
  store.selected = key(id);
  remember(store.selected);
  store.unread.delete(store.selected);
  renderUsers();
  document.body.classList.remove("users-open");
  if (changed) {
    cancelEdit();
    closeMenus();
    // Each chat keeps its own draft, as in Telegram.
    if (previousId) store.drafts.set(previousId, textarea.value);
    textarea.value = store.drafts.get(store.selected) || "";
    autosize();
    store.keyboardHidden = false;
    $("#chat").replaceChildren();
    store.elements.clear();
    syncChat({ scroll: true });
    loadCommands(true);
  }
  renderChatHeader();
  renderBlocked();
  renderAction();
  loadTranscript(store.selected);
  scheduleSubscriptions();
}

function showNoUser() {
  store.selected = null;
  $("#chat").replaceChildren();
  store.elements.clear();
  $("#chat-empty").hidden = false;
  $(".empty-title", $("#chat-empty")).textContent = "No simulated user yet";
  $("#chat-empty .muted").textContent = "Create one on the left (first name and language) to start chatting.";
  renderChatHeader();
  renderSuggestions();
}

$("#new-user-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const firstName = form.elements.first_name.value.trim();
  if (!firstName) {
    toast("Enter a first name", { error: true });
    return;
  }
  const submit = $("button[type=submit]", form);
  submit.disabled = true;
  try {
    const user = await api("/api/users", {
      json: { first_name: firstName, language_code: form.elements.language.value },
    });
    form.elements.first_name.value = "";
    mergeUser(user);
    await refreshState();
    if (user && user.id !== undefined) selectUser(user.id);
    toast(`${firstName} joined`);
  } catch (error) {
    toastError(error, "Could not create the user");
  } finally {
    submit.disabled = false;
  }
});

/* ------------------------------------------------------------------ header and status */

function renderBot() {
  const bot = (store.state && store.state.bot) || {};
  $("#bot-name").textContent = botName();
  $("#bot-username").textContent = bot.username ? `@${bot.username}` : "";
  $(".bot-avatar").textContent = initials(botName()).slice(0, 1);

  const restart = store.restart;
  const up = Boolean(bot.running) && bot.ready !== false; // "ready": polling since its start
  if (restart) {
    if (!up) restart.sawDown = true;
    // Restarted: the counter moved, or the bot was seen down, or (a backend that shows
    // neither) it has been running for a while since the restart request was answered.
    const restarted =
      Number(bot.restarts || 0) > restart.before ||
      restart.sawDown ||
      (restart.answeredAt && Date.now() - restart.answeredAt > 5000);
    if ((up && restarted) || Date.now() > restart.until) {
      store.restart = null;
      if (up) toast("The bot is running again");
    }
  }
  const running = up && !store.restart;
  const status = $("#bot-status");
  status.textContent = running ? "running" : "restarting…";
  status.classList.toggle("down", !running);
  status.title = bot.exit_code !== undefined && bot.exit_code !== null && !bot.running
    ? `The bot process exited with code ${bot.exit_code}${bot.log ? ` (log: ${bot.log})` : ""}`
    : "The bot process";
  document.body.classList.toggle("bot-down", !running);
}

function renderChatHeader() {
  const user = selectedUser();
  $("#chat-user").textContent = user ? `as ${user.first_name} · ${user.language_code || "—"}` : "";
}

function renderBlocked() {
  const user = selectedUser();
  $("#blocked-banner").hidden = !(user && user.blocked);
}

$("#unblock-banner").addEventListener("click", () => {
  if (store.selected) userAction(store.selected, "block", { blocked: false }, "Bot unblocked");
});

let actionTimer = 0;

function onAction(data) {
  if (!data || data.user_id === undefined) return;
  const id = key(data.user_id);
  if (data.action && data.action !== "cancel") store.actions.set(id, { action: data.action, until: Date.now() + ACTION_MS });
  else store.actions.delete(id);
  if (id === store.selected) renderAction();
}

function renderAction() {
  clearTimeout(actionTimer);
  const node = $("#chat-action");
  const current = store.selected ? store.actions.get(store.selected) : null;
  const active = current && current.until > Date.now();
  if (!active) {
    if (current) store.actions.delete(store.selected);
    node.textContent = "";
    $("#chat-subtitle").hidden = false;
    return;
  }
  const text = ACTION_TEXTS[current.action] || `is busy (${current.action})…`;
  node.textContent = `${botName()} ${text}`;
  $("#chat-subtitle").hidden = true;
  actionTimer = setTimeout(renderAction, current.until - Date.now() + 20);
}

/* ------------------------------------------------------------------ the transcript */

const chatScroll = $("#chat-scroll");
let stickToBottom = true;

function nearBottom() {
  return chatScroll.scrollHeight - chatScroll.scrollTop - chatScroll.clientHeight < 120;
}

function scrollToBottom() {
  chatScroll.scrollTop = chatScroll.scrollHeight;
  stickToBottom = true;
  $("#jump-down").hidden = true;
}

chatScroll.addEventListener("scroll", () => {
  stickToBottom = nearBottom();
  $("#jump-down").hidden = stickToBottom;
});
$("#jump-down").addEventListener("click", scrollToBottom);
// Stay at the bottom when the pane shrinks (a reply keyboard appears, the window resizes).
new ResizeObserver(() => {
  if (stickToBottom) scrollToBottom();
}).observe(chatScroll);

async function loadTranscript(userId) {
  const id = key(userId);
  const token = ++store.transcriptToken;
  try {
    const messages = await api(`/api/users/${encodeURIComponent(id)}/messages`);
    if (!Array.isArray(messages)) return;
    const chat = chatOf(id);
    const fresh = new Map();
    for (const message of messages) {
      if (message && message.message_id !== undefined && !message.deleted) fresh.set(key(message.message_id), message);
    }
    // Keep what arrived over SSE after the answer was produced (newer ids).
    const newest = messages.reduce((max, m) => Math.max(max, Number(m.message_id) || 0), 0);
    for (const [mid, message] of chat) {
      if (!fresh.has(mid) && Number(mid) > newest) fresh.set(mid, message);
    }
    store.chats.set(id, fresh);
    if (id === store.selected && token === store.transcriptToken) syncChat({ scroll: true });
  } catch (error) {
    toastError(error, "Could not load the chat");
  }
}

function messageContext() {
  return {
    onPress: pressButton,
    onPay: payInvoice,
    onOpenPhoto: openLightbox,
    onEdit: startEdit,
    onCommand: (command) => sendText(command),
    onVote: vote,
    onPayLink: payLink,
    onCopy: copyText,
    onMediaLoad: () => {
      if (stickToBottom) scrollToBottom();
    },
    invoiceStatus: (message) => invoiceStatus(store.selected, message.message_id),
  };
}

/** Brings the DOM of the selected chat in line with the cache, touching only what changed. */
function syncChat({ scroll = false } = {}) {
  const chat = $("#chat");
  if (!store.selected) return;
  const wasAtBottom = nearBottom();
  const messages = sortedMessages(store.selected).filter((m) => !m.deleted);
  const wanted = new Set(messages.map((m) => key(m.message_id)));
  for (const [mid, node] of store.elements) {
    if (!wanted.has(mid)) {
      node.remove();
      store.elements.delete(mid);
    }
  }
  const ctx = messageContext();
  let previous = null;
  let added = false;
  for (const message of messages) {
    const mid = key(message.message_id);
    const json = JSON.stringify(message);
    let node = store.elements.get(mid);
    if (!node) {
      node = createMessageElement(message, ctx);
      store.elements.set(mid, node);
      added = true;
    } else if (node._json !== json) {
      fill(node, message, ctx);
    }
    node._json = json;
    const expected = previous ? nextMessageSibling(previous) : firstMessage(chat);
    if (expected !== node) {
      if (previous) previous.after(node);
      else chat.prepend(node);
    }
    previous = node;
  }
  fixSeparators();
  for (const message of messages) if (message.invoice) renderInvoiceStatus(store.selected, message.message_id);
  renderReplyKeyboard();
  renderSuggestions();
  const user = selectedUser();
  const empty = $("#chat-empty");
  empty.hidden = messages.length > 0;
  if (!messages.length) {
    $(".empty-title", empty).textContent = "No messages here yet";
    empty.querySelector(".muted").textContent = user
      ? `Send /start as ${user.first_name} to talk to the bot.`
      : "Send /start to talk to the bot.";
  }
  if (scroll || (added && wasAtBottom) || wasAtBottom) scrollToBottom();
}

function firstMessage(chat) {
  let node = chat.firstElementChild;
  while (node && !node.classList.contains("msg")) node = node.nextElementSibling;
  return node;
}

function nextMessageSibling(node) {
  let next = node.nextElementSibling;
  while (next && !next.classList.contains("msg")) next = next.nextElementSibling;
  return next;
}

/** Keeps one date separator before the first message of each day. */
function fixSeparators() {
  const chat = $("#chat");
  const keep = new Set();
  const now = new Date(Date.now() + (Number(store.state && store.state.clock_offset) || 0) * 1000);
  let day = null;
  for (const node of chat.querySelectorAll(":scope > .msg")) {
    const current = node.dataset.day;
    if (current && current !== day) {
      let separator = node.previousElementSibling;
      if (!(separator && separator.classList.contains("date-sep") && separator.dataset.day === current)) {
        separator = el("div", { class: "date-sep", dataset: { day: current } }, el("span"));
        node.before(separator);
      }
      const message = chatOf(store.selected).get(node.dataset.messageId);
      const label = message ? dayLabel(message, now) : "";
      if (separator.firstChild.textContent !== label) separator.firstChild.textContent = label;
      keep.add(separator);
    }
    day = current || day;
  }
  for (const separator of chat.querySelectorAll(":scope > .date-sep")) if (!keep.has(separator)) separator.remove();
}

/** A new, edited or deleted message from the server (SSE or an API answer). */
function upsertMessage(userId, message) {
  if (!message || message.message_id === undefined) return;
  const id = key(userId);
  const chat = chatOf(id);
  const mid = key(message.message_id);
  const isNew = !chat.has(mid);
  if (message.deleted) chat.delete(mid);
  else chat.set(mid, message);
  if (message.from !== "user" && isNew && !message.deleted) {
    store.actions.delete(id); // a message ends the chat action, as in Telegram
    if (id !== store.selected) {
      store.unread.set(id, (store.unread.get(id) || 0) + 1);
      renderUsers();
    }
  }
  if (id === store.selected) {
    syncChat({ scroll: isNew && !message.deleted });
    renderAction();
  }
}

/* ------------------------------------------------------------------ buttons, payments */

async function pressButton(message, label, node) {
  const userId = store.selected;
  if (!userId) return;
  node.classList.add("pending");
  try {
    const answer = await api(`/api/users/${encodeURIComponent(userId)}/press`, {
      json: { message_id: message.message_id, button: label },
    });
    const reply = answer && answer.answer;
    if (reply && reply.text) {
      if (reply.show_alert) showAlert(reply.text);
      else toast(reply.text);
    }
  } catch (error) {
    toastError(error, `“${label}”`);
  } finally {
    node.classList.remove("pending");
  }
}

/** The status of an invoice card: what this page did with it, or "paid" when the chat shows
 * its successful_payment (after a reload the page no longer knows). */
function invoiceStatus(userId, messageId) {
  const own = store.invoices.get(`${userId}:${messageId}`) || null;
  if (own && own.state === "paying") return own;
  if (paidInvoices(userId).has(key(messageId))) return { state: "paid" };
  return own;
}

/** Invoices followed by a successful_payment of the same amount (each payment matches the
 * nearest unpaid invoice before it). */
function paidInvoices(userId) {
  const paid = new Set();
  const open = [];
  for (const message of sortedMessages(userId)) {
    if (message.invoice && !message.deleted) open.push(message);
    const payment = message.successful_payment;
    if (!payment || (payment.is_recurring && !payment.is_first_recurring)) continue;
    for (let i = open.length - 1; i >= 0; i -= 1) {
      const invoice = open[i].invoice;
      if (invoice.currency === payment.currency && Number(invoice.total_amount) === Number(payment.total_amount)) {
        paid.add(key(open[i].message_id));
        open.splice(i, 1);
        break;
      }
    }
  }
  return paid;
}

function renderInvoiceStatus(userId, messageId) {
  if (key(userId) !== store.selected) return;
  const node = store.elements.get(key(messageId));
  const card = node && node.querySelector(".invoice");
  if (!card) return;
  applyInvoiceStatus(card, card.querySelector("button.pay"), card.querySelector(".invoice-status"), invoiceStatus(userId, messageId));
}

async function payInvoice(message) {
  const userId = store.selected;
  if (!userId) return;
  const statusKey = `${userId}:${message.message_id}`;
  const current = store.invoices.get(statusKey);
  if (current && (current.state === "paying" || current.state === "paid")) return;
  store.invoices.set(statusKey, { state: "paying" });
  renderInvoiceStatus(userId, message.message_id);
  try {
    const answer = await api(`/api/users/${encodeURIComponent(userId)}/pay`, { json: { message_id: message.message_id } });
    if (answer && answer.ok) {
      store.invoices.set(statusKey, { state: "paid" });
    } else {
      const text = (answer && answer.error_message) || "The bot refused the payment";
      store.invoices.set(statusKey, { state: "error", text });
    }
  } catch (error) {
    store.invoices.set(statusKey, { state: "error", text: error.message });
    toastError(error, "Payment");
  }
  renderInvoiceStatus(userId, message.message_id);
  refreshState(); // the Stars balance changed
  loadSubscriptions();
}

async function vote(message, index, node) {
  const userId = store.selected;
  if (!userId) return;
  node.classList.add("pending");
  try {
    await api(`/api/users/${encodeURIComponent(userId)}/vote`, {
      json: { message_id: message.message_id, options: [index] },
    });
    toast("Voted");
  } catch (error) {
    toastError(error, "Vote");
  } finally {
    node.classList.remove("pending");
  }
}

/** An invoice link (createInvoiceLink, Stars subscriptions): confirm, then pay it. */
async function payLink(message, button, node) {
  const userId = store.selected;
  if (!userId) return;
  const invoice = button.invoice || {};
  const price = formatPrice(invoice.currency, invoice.total_amount);
  const period = invoice.subscription_period ? ` every ${Math.round(invoice.subscription_period / 86400)} days` : "";
  const user = selectedUser();
  const text = [
    invoice.title || "Invoice",
    invoice.description || "",
    `${price}${period}`,
    user ? `Balance: ${formatStars(user.stars)}` : "",
  ]
    .filter(Boolean)
    .join("\n");
  if (!(await confirmDialog(text, { title: "Confirm your purchase", okLabel: `Pay ${price}` }))) return;
  node.classList.add("pending");
  try {
    const answer = await api(`/api/users/${encodeURIComponent(userId)}/pay`, { json: { url: button.url } });
    if (answer && answer.ok) toast(`Paid ${price}`);
    else toast((answer && answer.error_message) || "The bot refused the payment", { error: true });
  } catch (error) {
    toastError(error, "Payment");
  } finally {
    node.classList.remove("pending");
  }
  refreshState();
  loadSubscriptions();
}

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    toast("Copied to the clipboard");
  } catch {
    toast(`Copy: ${text}`);
  }
}

/* ------------------------------------------------------------------ reply keyboard, suggestions */

function currentReplyKeyboard() {
  if (!store.selected) return null;
  const messages = sortedMessages(store.selected);
  for (let i = messages.length - 1; i >= 0; i -= 1) {
    const message = messages[i];
    if (message.from === "user" || message.deleted) continue;
    if (Array.isArray(message.reply_keyboard)) {
      const rows = message.reply_keyboard.filter((row) => Array.isArray(row) && row.length);
      return rows.length ? rows : null;
    }
  }
  // No message in the transcript says: the chat's keyboard as the state has it.
  const user = selectedUser();
  if (user && Array.isArray(user.reply_keyboard)) {
    const rows = user.reply_keyboard.filter((row) => Array.isArray(row) && row.length);
    return rows.length ? rows : null;
  }
  return null;
}

function renderReplyKeyboard() {
  const rows = currentReplyKeyboard();
  const box = $("#reply-keyboard");
  const toggle = $("#keyboard-toggle");
  toggle.hidden = !rows;
  const signature = rows ? JSON.stringify(rows) : "";
  if (box.dataset.signature !== signature) {
    box.dataset.signature = signature;
    box.replaceChildren();
    for (const row of rows || []) {
      const line = el("div", { class: "kb-row" });
      for (const label of row) {
        const text = typeof label === "string" ? label : String((label && label.text) || "");
        line.append(el("button", { type: "button", onclick: () => sendText(text) }, text));
      }
      box.append(line);
    }
  }
  box.hidden = !rows || store.keyboardHidden;
  toggle.classList.toggle("active", Boolean(rows) && !store.keyboardHidden);
  $("#suggestions").hidden = Boolean(rows) && !store.keyboardHidden;
}

$("#keyboard-toggle").addEventListener("click", () => {
  store.keyboardHidden = !store.keyboardHidden;
  renderReplyKeyboard();
  renderSuggestions();
});

function renderSuggestions() {
  const box = $("#suggestions");
  const user = selectedUser();
  const empty = !store.selected || chatOf(store.selected).size === 0;
  const items = [];
  if (user && empty) items.push({ command: "/start", description: "Start the bot", start: true });
  else if (user) {
    for (const item of store.commands.slice(0, 8)) items.push({ command: `/${item.command}`, description: item.description });
    if (!items.length) items.push({ command: "/start", description: "" });
  }
  const signature = JSON.stringify(items);
  if (box.dataset.signature === signature) return;
  box.dataset.signature = signature;
  box.replaceChildren(
    ...items.map((item) =>
      el(
        "button",
        { type: "button", class: `suggestion${item.start ? " start" : ""}`, title: item.description || item.command, onclick: () => sendText(item.command) },
        item.start ? "START" : item.command,
      ),
    ),
  );
}

/* ------------------------------------------------------------------ the command menu */

async function loadCommands(force = false) {
  const user = selectedUser();
  if (!user) return [];
  const language = user.language_code || "en";
  if (!force && store.commandsLanguage === language && store.commands.length) return store.commands;
  try {
    const commands = await api(`/api/commands?language=${encodeURIComponent(language)}`);
    if ((selectedUser() || {}).language_code !== user.language_code) return store.commands;
    store.commands = Array.isArray(commands) ? commands : [];
    store.commandsLanguage = language;
    renderSuggestions();
  } catch (error) {
    toastError(error, "Could not load the command menu");
  }
  return store.commands;
}

function renderCommandMenu(filter = "") {
  const menu = $("#commands-menu");
  const needle = filter.replace(/^\//, "").toLowerCase();
  const items = store.commands.filter((item) => !needle || String(item.command).toLowerCase().startsWith(needle));
  menu.replaceChildren();
  if (!items.length) {
    if (filter) {
      menu.hidden = true;
      return;
    }
    menu.append(el("div", { class: "menu-empty muted", text: "The bot has set no commands for this language." }));
  }
  for (const item of items) {
    menu.append(
      el(
        "button",
        {
          type: "button",
          class: "command",
          role: "menuitem",
          dataset: { command: item.command },
          onclick: () => {
            menu.hidden = true;
            sendText(`/${item.command}`);
          },
        },
        el("span", { class: "command-name", text: `/${item.command}` }),
        el("span", { class: "command-description", text: item.description || "" }),
      ),
    );
  }
  menu.hidden = false;
}

$("#commands-button").addEventListener("click", async (event) => {
  event.stopPropagation();
  const menu = $("#commands-menu");
  if (!menu.hidden) {
    menu.hidden = true;
    return;
  }
  closeMenus();
  if (!selectedUser()) {
    toast("Create or select a user first", { error: true });
    return;
  }
  await loadCommands(true);
  renderCommandMenu();
});

$("#more-button").addEventListener("click", (event) => {
  event.stopPropagation();
  const menu = $("#more-menu");
  const open = menu.hidden;
  closeMenus();
  menu.hidden = !open;
});

function closeMenus() {
  $("#commands-menu").hidden = true;
  $("#more-menu").hidden = true;
}

document.addEventListener("click", (event) => {
  if (!event.target.closest("#commands-menu, #more-menu, #commands-button, #more-button")) closeMenus();
});

/* ------------------------------------------------------------------ the composer */

const textarea = $("#text");

function autosize() {
  textarea.style.height = "auto";
  textarea.style.height = `${Math.min(textarea.scrollHeight, 180)}px`;
}

function requireUser() {
  if (store.selected && selectedUser()) return store.selected;
  toast("Create or select a user first", { error: true });
  return null;
}

async function sendText(text) {
  const userId = requireUser();
  if (!userId || !text) return false;
  try {
    const wasBlocked = Boolean((userById(userId) || {}).blocked);
    const message = await api(`/api/users/${encodeURIComponent(userId)}/messages`, { json: { text } });
    upsertMessage(userId, message);
    scrollToBottom();
    if (wasBlocked) refreshState(); // writing to the bot unblocks it
    return true;
  } catch (error) {
    toastError(error, "Not sent");
    return false;
  }
}

async function submitComposer() {
  const text = textarea.value;
  if (!text.trim()) return;
  const userId = requireUser();
  if (!userId) return;
  closeMenus();
  const editing = store.editing;
  textarea.value = "";
  autosize();
  let ok;
  if (editing) {
    cancelEdit();
    ok = await editMessage(userId, editing, text);
  } else {
    ok = await sendText(text);
  }
  if (!ok && !textarea.value) {
    textarea.value = text;
    autosize();
  }
}

async function editMessage(userId, message, text) {
  try {
    const answer = await api(`/api/users/${encodeURIComponent(userId)}/edit`, {
      json: { message_id: message.message_id, text },
    });
    if (answer && answer.message_id !== undefined) upsertMessage(userId, answer);
    return true;
  } catch (error) {
    toastError(error, "Not edited");
    return false;
  }
}

function startEdit(message) {
  store.editing = message;
  $("#edit-banner").hidden = false;
  $("#edit-preview").textContent = message.text || "";
  textarea.value = message.text || "";
  autosize();
  textarea.focus();
  textarea.setSelectionRange(textarea.value.length, textarea.value.length);
}

function cancelEdit() {
  if (!store.editing) return;
  store.editing = null;
  $("#edit-banner").hidden = true;
  textarea.value = "";
  autosize();
}

function lastOwnTextMessage() {
  if (!store.selected) return null;
  const messages = sortedMessages(store.selected);
  for (let i = messages.length - 1; i >= 0; i -= 1) {
    const message = messages[i];
    if (message.from === "user" && !message.deleted && message.text && (!message.kind || message.kind === "text")) return message;
  }
  return null;
}

$("#edit-cancel").addEventListener("click", cancelEdit);

$("#composer").addEventListener("submit", (event) => {
  event.preventDefault();
  submitComposer();
});

textarea.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    submitComposer();
  } else if (event.key === "Escape") {
    closeMenus();
    cancelEdit();
  } else if (event.key === "ArrowUp" && !textarea.value && !store.editing) {
    const message = lastOwnTextMessage();
    if (message) {
      event.preventDefault();
      startEdit(message);
    }
  } else if (event.key === "Tab" && !$("#commands-menu").hidden) {
    const first = $("#commands-menu .command");
    if (first) {
      event.preventDefault();
      textarea.value = `/${first.dataset.command} `;
      closeMenus();
    }
  }
});

textarea.addEventListener("input", () => {
  autosize();
  const value = textarea.value;
  if (/^\/[A-Za-z0-9_]*$/.test(value) && store.commands.length) renderCommandMenu(value);
  else $("#commands-menu").hidden = true;
});

textarea.addEventListener("paste", (event) => {
  const files = [...(event.clipboardData ? event.clipboardData.files : [])];
  if (files.length) {
    event.preventDefault();
    sendFile(files[0]);
  }
});

const fileInput = $("#file");
fileInput.addEventListener("change", () => {
  const file = fileInput.files && fileInput.files[0];
  if (file) sendFile(file).finally(() => (fileInput.value = ""));
});

function isPhoto(file) {
  const type = file.type || "";
  return type.startsWith("image/") && type !== "image/svg+xml";
}

async function sendFile(file) {
  const userId = requireUser();
  if (!userId) return;
  const form = new FormData();
  form.append("file", file, file.name || "file");
  const photo = isPhoto(file);
  const caption = !store.editing ? textarea.value.trim() : "";
  if (photo && caption) form.append("caption", caption);
  if (photo && caption) {
    textarea.value = "";
    autosize();
  }
  toast(`Sending ${photo ? "photo" : "file"} ${file.name || ""}…`);
  try {
    const message = await api(`/api/users/${encodeURIComponent(userId)}/${photo ? "photo" : "document"}`, { form });
    upsertMessage(userId, message);
    scrollToBottom();
  } catch (error) {
    toastError(error, "Upload failed");
    if (caption && !textarea.value) textarea.value = caption;
  }
}

const chatPane = $("#chat-pane");
chatPane.addEventListener("dragover", (event) => {
  if (event.dataTransfer && [...event.dataTransfer.types].includes("Files")) {
    event.preventDefault();
    chatPane.classList.add("dropping");
  }
});
chatPane.addEventListener("dragleave", (event) => {
  if (!chatPane.contains(event.relatedTarget)) chatPane.classList.remove("dropping");
});
chatPane.addEventListener("drop", (event) => {
  chatPane.classList.remove("dropping");
  const files = event.dataTransfer ? [...event.dataTransfer.files] : [];
  if (files.length) {
    event.preventDefault();
    sendFile(files[0]);
  }
});

async function simpleUserPost(path, body, label) {
  const userId = requireUser();
  if (!userId) return;
  closeMenus();
  try {
    const answer = await api(`/api/users/${encodeURIComponent(userId)}/${path}`, { json: body });
    if (answer && answer.message_id !== undefined) upsertMessage(userId, answer);
    scrollToBottom();
  } catch (error) {
    toastError(error, label);
  }
}

$("#send-location").addEventListener("click", () => simpleUserPost("location", DEMO_LOCATION, "Location not sent"));
$("#send-contact").addEventListener("click", () => simpleUserPost("contact", {}, "Contact not sent"));
$("#send-sticker").addEventListener("click", () => simpleUserPost("sticker", { emoji: "👍" }, "Sticker not sent"));
$("#send-dice").addEventListener("click", () => simpleUserPost("dice", { emoji: "🎲" }, "Dice not sent"));
$("#send-poll").addEventListener("click", () =>
  simpleUserPost("poll", { question: "Which style is best?", options: ["Nature", "Anime", "Portrait"] }, "Poll not sent"),
);
$("#edit-last").addEventListener("click", () => {
  closeMenus();
  const message = lastOwnTextMessage();
  if (message) startEdit(message);
  else toast("No text message of yours to edit");
});
$("#reload-chat").addEventListener("click", () => {
  closeMenus();
  if (store.selected) loadTranscript(store.selected);
});

/* ------------------------------------------------------------------ the photo viewer */

function openLightbox(url) {
  const box = $("#lightbox");
  $("#lightbox-img").src = url;
  $("#lightbox-open").href = url;
  box.hidden = false;
}

$("#lightbox").addEventListener("click", (event) => {
  if (event.target.id !== "lightbox-open") $("#lightbox").hidden = true;
});
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape") {
    $("#lightbox").hidden = true;
    closeMenus();
    document.body.classList.remove("users-open", "panel-open");
  }
});

/* ------------------------------------------------------------------ side panel: controls */

function renderControls() {
  const state = store.state || {};
  const bot = state.bot || {};
  $("#ctl-username").textContent = bot.username ? `@${bot.username}` : "—";
  $("#ctl-status").textContent = $("#bot-status").textContent;
  $("#ctl-restarts").textContent = String(bot.restarts ?? 0);
  const flood = state.flood || {};
  if (!store.floodBusy) $("#flood-toggle").checked = Boolean(flood.enabled);
  const details = Object.entries(flood)
    .filter(([name]) => name !== "enabled")
    .map(([name, value]) => `${name.replace(/_/g, " ")}: ${typeof value === "object" ? JSON.stringify(value) : value}`);
  $("#flood-info").textContent = flood.enabled
    ? `On: ${details.length ? details.join(" · ") : "about 30 messages/s per bot, 1/s per private chat (short bursts), 20/min per group"}.`
    : "Off: every call goes through.";
  $("#clock-offset").textContent = formatOffset(state.clock_offset);
  if (store.selected) fixSeparators();
}

$("#restart-bot").addEventListener("click", async () => {
  const button = $("#restart-bot");
  const bot = (store.state && store.state.bot) || {};
  button.disabled = true;
  store.restart = { before: Number(bot.restarts || 0), sawDown: false, until: Date.now() + 90000, answeredAt: 0 };
  renderBot();
  renderControls();
  try {
    const answer = await api("/api/bot/restart", { method: "POST", json: {} });
    if (store.restart) store.restart.answeredAt = Date.now();
    if (answer && typeof answer === "object" && answer.bot && answer.users) applyState(answer);
    if (store.restart) toast("Restarting the bot…");
    pollWhileRestarting();
  } catch (error) {
    store.restart = null;
    toastError(error, "Restart failed");
    renderBot();
    renderControls();
  } finally {
    button.disabled = false;
  }
});

async function pollWhileRestarting() {
  while (store.restart) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    if (!store.restart) break;
    try {
      applyState(await api("/api/state"));
    } catch {
      // the server may be busy while the bot restarts: keep polling until the deadline
      if (store.restart && Date.now() > store.restart.until) store.restart = null;
    }
  }
  renderBot();
  renderControls();
  if (store.selected) loadTranscript(store.selected);
}

$("#flood-toggle").addEventListener("change", async () => {
  const toggle = $("#flood-toggle");
  const enabled = toggle.checked;
  store.floodBusy = true;
  toggle.disabled = true;
  try {
    await api("/api/flood", { json: { enabled } });
    if (store.state) store.state.flood = { ...(store.state.flood || {}), enabled };
    toast(enabled ? "Flood control on" : "Flood control off");
  } catch (error) {
    toggle.checked = !enabled;
    toastError(error, "Flood control");
  } finally {
    store.floodBusy = false;
    toggle.disabled = false;
    renderControls();
    refreshState();
  }
});

async function advanceClock(seconds, label) {
  const result = $("#clock-result");
  result.classList.remove("error", "ok");
  result.textContent = `${label}…`;
  try {
    const answer = await api("/api/clock", { json: { advance_seconds: seconds } });
    result.classList.add("ok");
    result.textContent = `${label}: ${describeAnswer(answer)}`;
    if (answer && answer.clock_offset !== undefined && store.state) {
      store.state.clock_offset = answer.clock_offset;
      renderControls();
    }
  } catch (error) {
    result.classList.add("error");
    result.textContent = `${label}: ${error.message}`;
    toastError(error, "Clock");
  }
  refreshState();
}

function describeAnswer(answer) {
  if (answer === null || answer === undefined || answer === "") return "done";
  if (typeof answer !== "object") return String(answer);
  const parts = [];
  if (answer.message || answer.text) parts.push(String(answer.message || answer.text));
  if (answer.clock_offset !== undefined) parts.push(`offset ${formatOffset(answer.clock_offset)}`);
  const rest = Object.fromEntries(Object.entries(answer).filter(([k]) => !["message", "text", "clock_offset", "ok"].includes(k)));
  if (Object.keys(rest).length) parts.push(JSON.stringify(rest));
  return parts.join(" · ") || (answer.ok === false ? "refused" : "done");
}

$("#clock-day").addEventListener("click", () => advanceClock(86400, "+1 day"));
$("#clock-month").addEventListener("click", () => advanceClock(30 * 86400, "+1 month (30 d)"));

/* ------------------------------------------------------------------ side panel: subscriptions */

let subsTimer = 0;
let subsToken = 0;

/** Reloads the list soon (state events can come in bursts). */
function scheduleSubscriptions() {
  if ($("#controls-panel").hidden) return; // loaded when the tab opens
  clearTimeout(subsTimer);
  subsTimer = setTimeout(loadSubscriptions, 400);
}

async function loadSubscriptions() {
  const user = selectedUser();
  const list = $("#subscriptions");
  $("#subs-user").textContent = user ? `· ${user.first_name}` : "";
  if (!user) {
    list.replaceChildren();
    return;
  }
  const token = ++subsToken;
  try {
    const items = await api(`/api/users/${encodeURIComponent(user.id)}/subscriptions`);
    if (token !== subsToken) return;
    renderSubscriptions(user.id, Array.isArray(items) ? items : []);
  } catch (error) {
    if (error.status === 404 && /no such endpoint/.test(error.message)) return; // an older server
    toastError(error, "Could not load the subscriptions");
  }
}

function renderSubscriptions(userId, items) {
  const list = $("#subscriptions");
  list.replaceChildren();
  if (!items.length) {
    list.append(el("li", { class: "muted empty", text: "No subscriptions: pay a subscription invoice first." }));
    return;
  }
  for (const item of items) {
    const expires = item.expiration_date ? new Date(Number(item.expiration_date) * 1000).toLocaleString() : "—";
    const status = item.refunded ? "refunded" : item.canceled ? "canceled" : "active";
    const actions = el("div", { class: "btn-row" });
    const button = (label, action, cls = "") =>
      el("button", {
        type: "button",
        class: `btn tiny ${cls}`.trim(),
        dataset: { action },
        text: label,
        onclick: () => changeSubscription(userId, item.charge_id, action, label),
      });
    actions.append(
      item.canceled ? button("Enable", "enable") : button("Cancel", "cancel"),
      button("Renew now", "renew", "primary"),
      button("Fail renewal", "fail_renewal", "danger"),
    );
    list.append(
      el(
        "li",
        { class: `subscription ${status}`, dataset: { chargeId: item.charge_id } },
        el("div", { class: "sub-title" }, el("b", { text: item.title || item.charge_id }), el("span", { class: `sub-status ${status}`, text: status })),
        el("div", {
          class: "muted",
          text: `${formatStars(item.amount)} / ${Math.round((item.period || 0) / 86400)} d · renewals: ${item.renewals ?? 0} · until ${expires}`,
        }),
        actions,
      ),
    );
  }
}

async function changeSubscription(userId, chargeId, action, label) {
  const result = $("#subs-result");
  result.classList.remove("ok", "error");
  try {
    const answer = await api(
      `/api/users/${encodeURIComponent(userId)}/subscriptions/${encodeURIComponent(chargeId)}`,
      { json: { action } },
    );
    const ok = !answer || answer.ok !== false;
    result.classList.add(ok ? "ok" : "error");
    result.textContent = ok ? `${label}: done` : `${label}: ${answer.error_message || answer.reason || "refused"}`;
  } catch (error) {
    result.classList.add("error");
    result.textContent = `${label}: ${error.message}`;
    toastError(error, label);
  }
  refreshState();
  loadSubscriptions();
}

$("#subs-reload").addEventListener("click", loadSubscriptions);

/* ------------------------------------------------------------------ side panel: provider faults */

async function loadProviders() {
  const box = $("#providers");
  try {
    const info = await api("/api/providers");
    const names = (info && info.fake) || [];
    const faults = (info && info.faults) || [];
    box.replaceChildren();
    if (!names.length) {
      box.append(el("div", { class: "muted", text: "No fake providers in this run." }));
      return;
    }
    for (const name of names) {
      const queued = ((info.queued || {})[name] || []).join(", ");
      const row = el(
        "div",
        { class: "provider", dataset: { provider: name } },
        el("div", { class: "provider-name" }, el("b", { text: name }), el("span", { class: "muted provider-queued", text: queued ? ` queued: ${queued}` : "" })),
      );
      const buttons = el("div", { class: "btn-row" });
      for (const fault of faults) {
        buttons.append(
          el("button", {
            type: "button",
            class: "btn tiny",
            dataset: { fault },
            text: fault,
            onclick: () => injectFault(name, fault),
          }),
        );
      }
      row.append(buttons);
      box.append(row);
    }
  } catch (error) {
    box.replaceChildren(el("div", { class: "muted", text: `Provider faults unavailable: ${error.message}` }));
  }
}

async function injectFault(name, fault) {
  const result = $("#providers-result");
  result.classList.remove("ok", "error");
  try {
    const answer = await api(`/api/providers/${encodeURIComponent(name)}/fault`, { json: { fault, times: 1 } });
    result.classList.add("ok");
    result.textContent = `${name}: next request ${fault}${answer && answer.queued ? ` (queued: ${answer.queued.join(", ")})` : ""}`;
  } catch (error) {
    result.classList.add("error");
    result.textContent = `${name}: ${error.message}`;
    toastError(error, "Fault");
  }
  loadProviders();
}

/* ------------------------------------------------------------------ tabs and narrow screens */

for (const tab of document.querySelectorAll(".tab")) {
  tab.addEventListener("click", () => {
    for (const other of document.querySelectorAll(".tab")) {
      const active = other === tab;
      other.classList.toggle("active", active);
      other.setAttribute("aria-selected", active ? "true" : "false");
      document.getElementById(other.getAttribute("aria-controls")).hidden = !active;
    }
    if (tab.id === "tab-controls") {
      loadSubscriptions();
      loadProviders();
    }
  });
}

$("#toggle-users").addEventListener("click", () => document.body.classList.toggle("users-open"));
$("#toggle-panel").addEventListener("click", () => document.body.classList.toggle("panel-open"));
// A drawer (narrow windows) closes on a click outside it.
document.addEventListener("click", (event) => {
  const target = event.target;
  if (!(target instanceof Element) || !target.isConnected) return;
  if (!target.closest("#users-pane, #toggle-users, #alert, #toast")) document.body.classList.remove("users-open");
  if (!target.closest("#side-pane, #toggle-panel, #alert, #toast")) document.body.classList.remove("panel-open");
});

/* ------------------------------------------------------------------ live updates (SSE) */

let source = null;
let retryDelay = 1000;

function setConnection(text, live) {
  const node = $("#connection");
  node.textContent = text;
  node.classList.toggle("live", Boolean(live));
}

function parse(data) {
  try {
    return JSON.parse(data);
  } catch {
    return null;
  }
}

function connect() {
  if (source) source.close();
  source = new EventSource("/api/events");
  const current = source;
  current.addEventListener("open", () => {
    retryDelay = 1000;
    setConnection("live", true);
    // Whatever happened before the stream opened or while it was down (a restart,
    // missed events): load it again. The merge is idempotent, nothing flickers.
    resync();
  });
  current.addEventListener("error", () => {
    if (current !== source) return;
    setConnection("reconnecting…", false);
    if (current.readyState === EventSource.CLOSED) {
      // The browser gave up (an error answer): retry ourselves, with a backoff.
      setTimeout(() => {
        if (current === source) connect();
      }, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 10000);
    }
  });
  current.addEventListener("message", (event) => {
    const data = parse(event.data);
    if (data && data.user_id !== undefined && data.message) upsertMessage(data.user_id, data.message);
  });
  current.addEventListener("call", (event) => {
    const data = parse(event.data);
    if (data) calls.add(data);
  });
  current.addEventListener("action", (event) => onAction(parse(event.data)));
  current.addEventListener("state", (event) => applyState(parse(event.data)));
}

async function resync() {
  await refreshState();
  if (store.selected) loadTranscript(store.selected);
  calls.load();
  loadCommands(true);
}

/* ------------------------------------------------------------------ start */

function start() {
  textarea.focus();
  connect(); // its "open" loads the state, the chat and the call log
  refreshState(); // at once too, in case the stream is slow to open
}

start();

// For debugging from the browser console.
window.lumigramSandbox = { store, refreshState, loadTranscript, selectUser };
