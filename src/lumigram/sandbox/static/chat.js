// Rendering of one chat message (a bubble) from the API's Message object.
//
// The outer `.msg` element of a message stays the same across edits (only its children are
// rebuilt), so references to it stay valid; `fill()` is called with the new contents.

import { el, formatDay, formatPrice, formatTime, toDate } from "./ui.js";

/** The kinds that are shown as a centered service line, not as a bubble. */
const SERVICE_KINDS = new Set(["successful_payment", "refunded_payment"]);

const KIND_LABELS = {
  location: "📍 Location",
  venue: "📍 Venue",
  contact: "👤 Contact",
  poll: "📊 Poll",
  dice: "🎲 Dice",
  successful_payment: "✅ Payment received",
  refunded_payment: "↩️ Payment refunded",
};

export function dayKey(message) {
  const date = toDate(message.date);
  return date ? `${date.getFullYear()}-${date.getMonth()}-${date.getDate()}` : "";
}

export function dayLabel(message, now) {
  return formatDay(toDate(message.date), now);
}

/** Creates the outer element of a message; `fill` gives it its contents. */
export function createMessageElement(message, ctx) {
  const node = el("div", { class: "msg" });
  fill(node, message, ctx);
  return node;
}

/** (Re)builds the contents of a message's element in place. */
export function fill(node, message, ctx) {
  const from = message.from === "user" ? "user" : "bot";
  node.dataset.messageId = String(message.message_id);
  node.dataset.from = from;
  node.dataset.kind = message.kind || "";
  node.dataset.day = dayKey(message);
  node.className = `msg from-${from}`;
  if (message.edited) node.classList.add("is-edited");
  node.replaceChildren();

  if (SERVICE_KINDS.has(message.kind)) {
    node.classList.add("service");
    const line = el("div", { class: "service-line" });
    const text = el("span", { class: "msg-text" });
    setText(text, message, ctx);
    if (!text.textContent.trim()) text.textContent = paymentLine(message);
    line.append(text);
    node.append(line);
    return;
  }

  const bubble = el("div", { class: "bubble" });
  const media = pickMedia(message.media || []);
  const hasText = Boolean((message.html && String(message.html).trim()) || (message.text && String(message.text).trim()));
  if (media.length) bubble.classList.add("has-media");
  const visual = media.some((item) => ["photo", "video", "animation", "sticker", "video_note"].includes(item.type));
  if (visual && !hasText) bubble.classList.add("media-only");
  if (media.some((item) => item.type === "sticker")) bubble.classList.add("sticker-bubble");

  for (const item of media) bubble.append(renderMedia(item, message, ctx));

  if (message.invoice) bubble.append(renderInvoice(message, ctx));

  const label = KIND_LABELS[message.kind];
  if (label && !message.invoice) bubble.append(el("div", { class: "msg-kind", text: label }));
  const details = describe(message);
  if (details && !hasText) bubble.append(el("div", { class: "msg-details", text: details }));
  if (message.kind === "poll" && message.poll) bubble.append(renderPoll(message, ctx));

  if (hasText) {
    const text = el("div", { class: "msg-text" });
    setText(text, message, ctx);
    bubble.append(text);
  } else if (!media.length && !label && !message.invoice) {
    const kind = message.kind && message.kind !== "text" ? `[${message.kind}]` : "";
    bubble.append(el("div", { class: "msg-text placeholder", text: kind }));
  }

  const meta = el("span", { class: "msg-meta" });
  if (message.edited) meta.append(el("span", { class: "msg-edited", text: "edited" }));
  meta.append(el("time", { class: "msg-time", text: formatTime(toDate(message.date)) }));
  if (from === "user") meta.append(el("span", { class: "msg-ticks", text: "✓✓", "aria-hidden": "true" }));
  bubble.append(meta);

  if (from === "user" && ctx.onEdit && (message.kind === "text" || !message.kind) && message.text) {
    bubble.append(
      el("button", {
        type: "button",
        class: "msg-edit-btn",
        title: "Edit",
        "aria-label": "Edit this message",
        text: "✎",
        onclick: () => ctx.onEdit(message),
      }),
    );
  }

  node.append(bubble);

  let rows = Array.isArray(message.buttons) ? message.buttons : [];
  if (message.invoice) {
    // The invoice card has the Pay button; Telegram shows it as the keyboard's first.
    rows = rows.map((row) => (row || []).filter((button) => button.type !== "pay")).filter((row) => row.length);
  }
  if (rows.length) node.append(renderInlineKeyboard(rows, message, ctx));
}

function paymentLine(message) {
  const payment = message.successful_payment || message.refunded_payment;
  if (!payment) return KIND_LABELS[message.kind] || "";
  const price = formatPrice(payment.currency, payment.total_amount);
  if (message.kind === "refunded_payment") return `↩️ ${price} refunded`;
  const renewal = payment.is_recurring && !payment.is_first_recurring ? " (subscription renewed)" : "";
  const subscription = payment.is_first_recurring ? " (subscription)" : "";
  return `✅ You paid ${price}${subscription}${renewal}`;
}

/** A line for contents without text (the Message's own fields, when the API gives them). */
function describe(message) {
  const { location, venue, contact, dice } = message;
  if (message.kind === "venue" && venue) return [venue.title, venue.address].filter(Boolean).join(", ");
  if (message.kind === "location" && location) {
    const live = location.live_period ? ` (live ${location.live_period} s)` : "";
    return `${Number(location.latitude).toFixed(5)}, ${Number(location.longitude).toFixed(5)}${live}`;
  }
  if (message.kind === "contact" && contact) {
    const name = [contact.first_name, contact.last_name].filter(Boolean).join(" ");
    return `${name} ${contact.phone_number || ""}`.trim();
  }
  if (message.kind === "dice" && dice) return `${dice.emoji || "🎲"} ${dice.value ?? ""}`.trim();
  return "";
}

/** One photo (the largest size) unless there is a non-photo file (its thumbnails are photos). */
function pickMedia(media) {
  const items = media.filter((item) => item && item.url);
  const others = items.filter((item) => item.type !== "photo");
  if (others.length) return others;
  if (!items.length) return [];
  const area = (item) => (Number(item.width) || 0) * (Number(item.height) || 0);
  let best = items[items.length - 1];
  for (const item of items) if (area(item) > area(best)) best = item;
  return [best];
}

function sizeAttrs(item, maxWidth) {
  const width = Number(item.width) || 0;
  const height = Number(item.height) || 0;
  if (!width || !height) return {};
  const scale = Math.min(1, maxWidth / width);
  return { width: Math.round(width * scale), height: Math.round(height * scale) };
}

function renderMedia(item, message, ctx) {
  const type = item.type;
  const mime = String(item.mime_type || "");
  if (type === "photo") {
    const img = el("img", { src: item.url, alt: item.file_name || "photo", loading: "lazy", ...sizeAttrs(item, 420) });
    img.addEventListener("load", () => ctx.onMediaLoad && ctx.onMediaLoad());
    img.addEventListener("error", () => img.closest(".msg-photo")?.classList.add("broken"));
    const link = el("a", { href: item.url, target: "_blank", rel: "noopener", class: "photo-link", title: "Open full size" }, img);
    link.addEventListener("click", (event) => {
      if (event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) return;
      event.preventDefault();
      ctx.onOpenPhoto && ctx.onOpenPhoto(item.url);
    });
    return el("div", { class: "msg-photo" }, link);
  }
  if (type === "video" || type === "video_note") {
    const video = el("video", { src: item.url, controls: true, preload: "metadata", playsinline: true, ...sizeAttrs(item, 420) });
    video.addEventListener("loadedmetadata", () => ctx.onMediaLoad && ctx.onMediaLoad());
    return el(
      "div",
      { class: `msg-video${type === "video_note" ? " round" : ""}` },
      video,
      item.duration ? el("span", { class: "media-badge", text: formatDuration(item.duration) }) : null,
    );
  }
  if (type === "animation") {
    const video = el("video", { src: item.url, autoplay: true, loop: true, muted: true, playsinline: true, ...sizeAttrs(item, 420) });
    video.muted = true;
    video.addEventListener("loadedmetadata", () => ctx.onMediaLoad && ctx.onMediaLoad());
    return el("div", { class: "msg-animation" }, video, el("span", { class: "media-badge", text: "GIF" }));
  }
  if (type === "sticker") {
    let inner;
    if (item.is_video || mime === "video/webm") {
      inner = el("video", { src: item.url, autoplay: true, loop: true, muted: true, playsinline: true });
      inner.muted = true;
    } else if (item.is_animated || mime === "application/x-tgsticker") {
      // Lottie (.tgs) needs a player we do not ship: show the sticker's emoji.
      inner = el("div", { class: "sticker-fallback", text: item.emoji || message.text || "🙂" });
    } else {
      inner = el("img", { src: item.url, alt: item.emoji || "sticker", title: item.emoji || "" });
      const fallback = () => inner.replaceWith(el("div", { class: "sticker-fallback", text: item.emoji || "🙂" }));
      inner.addEventListener("load", () => {
        // A placeholder file (the emulator's stickers are 1×1): show the emoji instead.
        if (inner.naturalWidth < 16 && inner.naturalHeight < 16) fallback();
        if (ctx.onMediaLoad) ctx.onMediaLoad();
      });
      inner.addEventListener("error", fallback);
    }
    return el("div", { class: "msg-sticker" }, inner);
  }
  if (type === "audio" || type === "voice") {
    return el(
      "div",
      { class: "msg-audio" },
      el("div", { class: "file-name", text: item.file_name || (type === "voice" ? "Voice message" : "Audio") }),
      el("audio", { src: item.url, controls: true, preload: "metadata" }),
    );
  }
  // Documents and anything else: a file card with a download link.
  const name = item.file_name || `${type || "file"}${extensionFor(mime)}`;
  return el(
    "div",
    { class: "msg-document" },
    el("span", { class: "file-icon", "aria-hidden": "true", text: fileIcon(name, mime) }),
    el(
      "div",
      { class: "file-info" },
      el("a", { href: item.url, download: name, target: "_blank", rel: "noopener", class: "file-name", text: name }),
      el("div", { class: "file-sub muted", text: mime || "file" }),
    ),
  );
}

function fileIcon(name, mime) {
  const ext = (name.split(".").pop() || "").toLowerCase();
  if (mime.startsWith("image/")) return "🖼";
  if (mime.startsWith("video/")) return "🎬";
  if (mime.startsWith("audio/")) return "🎵";
  if (mime === "application/zip" || ext === "zip") return "🗜";
  return "📄";
}

function extensionFor(mime) {
  const known = { "image/png": ".png", "image/jpeg": ".jpg", "video/mp4": ".mp4", "application/pdf": ".pdf" };
  return known[mime] || "";
}

function formatDuration(seconds) {
  const total = Math.round(Number(seconds) || 0);
  return `${Math.floor(total / 60)}:${String(total % 60).padStart(2, "0")}`;
}

/** The URL if its scheme is one a link may open (never javascript: and the like). */
export function safeUrl(url) {
  try {
    const parsed = new URL(String(url), window.location.href);
    return ["http:", "https:", "tg:", "mailto:", "tel:"].includes(parsed.protocol) ? parsed.href : null;
  } catch {
    return null;
  }
}

/** The text of a message: the server's safe HTML, or plain text. */
function setText(node, message, ctx) {
  if (message.html && String(message.html).length) {
    node.innerHTML = message.html;
    for (const link of node.querySelectorAll("a[href]")) {
      if (!safeUrl(link.getAttribute("href"))) link.removeAttribute("href");
      link.target = "_blank";
      link.rel = "noopener noreferrer";
    }
    for (const spoiler of node.querySelectorAll("tg-spoiler, .tg-spoiler")) {
      spoiler.classList.add("spoiler");
      spoiler.addEventListener("click", () => spoiler.classList.add("revealed"), { once: true });
    }
    for (const quote of node.querySelectorAll("blockquote.tg-expandable")) {
      quote.addEventListener("click", () => quote.classList.toggle("expanded"));
    }
    if (message.from !== "user" && ctx.onCommand) {
      for (const command of node.querySelectorAll(".tg-bot-command")) {
        command.classList.add("bot-command");
        command.setAttribute("role", "link");
        command.tabIndex = 0;
        const run = () => ctx.onCommand(command.textContent.trim().split("@")[0]);
        command.addEventListener("click", run);
        command.addEventListener("keydown", (event) => event.key === "Enter" && run());
      }
    }
  } else if (message.text) {
    node.textContent = message.text;
    if (message.from !== "user" && ctx.onCommand) linkCommands(node, ctx.onCommand);
  }
}

const COMMAND_RE = /(^|[\s(])(\/[A-Za-z0-9_]{1,32})(?=$|[\s.,!?;:)])/g;

/** Makes "/command" in the bot's text clickable, as Telegram does (text nodes only). */
function linkCommands(root, onCommand) {
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT, {
    acceptNode(node) {
      if (node.parentElement && node.parentElement.closest("a, code, pre")) return NodeFilter.FILTER_REJECT;
      COMMAND_RE.lastIndex = 0;
      return COMMAND_RE.test(node.nodeValue) ? NodeFilter.FILTER_ACCEPT : NodeFilter.FILTER_REJECT;
    },
  });
  const nodes = [];
  while (walker.nextNode()) nodes.push(walker.currentNode);
  for (const textNode of nodes) {
    const text = textNode.nodeValue;
    const fragment = document.createDocumentFragment();
    let last = 0;
    COMMAND_RE.lastIndex = 0;
    let match;
    while ((match = COMMAND_RE.exec(text))) {
      const start = match.index + match[1].length;
      fragment.append(text.slice(last, start));
      const command = match[2];
      const link = el("a", { href: "#", class: "bot-command", text: command });
      link.addEventListener("click", (event) => {
        event.preventDefault();
        onCommand(command);
      });
      fragment.append(link);
      last = start + command.length;
    }
    fragment.append(text.slice(last));
    textNode.replaceWith(fragment);
  }
}

function renderPoll(message, ctx) {
  const poll = message.poll;
  const box = el("div", { class: "msg-poll" });
  if (poll.question) box.append(el("div", { class: "poll-question", text: poll.question }));
  const kind = [poll.is_anonymous === false ? "Public" : "Anonymous", poll.type === "quiz" ? "quiz" : "poll"];
  if (poll.is_closed) kind.push("· closed");
  box.append(el("div", { class: "poll-type muted", text: kind.join(" ") }));
  const total = Number(poll.total_voter_count) || 0;
  (poll.options || []).forEach((option, index) => {
    const votes = Number(option.voter_count) || 0;
    const share = total ? Math.round((votes / total) * 100) : 0;
    const row = el(
      "button",
      { type: "button", class: "poll-option", disabled: poll.is_closed || !ctx.onVote, dataset: { index: String(index) } },
      el("span", { class: "poll-share", text: `${share}%` }),
      el("span", { class: "poll-label", text: option.text }),
      el("span", { class: "poll-bar", style: `width: ${share}%` }),
    );
    row.addEventListener("click", () => ctx.onVote && ctx.onVote(message, index, row));
    box.append(row);
  });
  box.append(el("div", { class: "poll-total muted", text: `${total} vote${total === 1 ? "" : "s"}` }));
  return box;
}

function renderInvoice(message, ctx) {
  const invoice = message.invoice;
  const price = formatPrice(invoice.currency, invoice.total_amount);
  const status = ctx.invoiceStatus ? ctx.invoiceStatus(message) : null;
  const card = el("div", { class: "invoice" });
  card.append(el("div", { class: "invoice-title", text: invoice.title || "Invoice" }));
  if (invoice.description) card.append(el("div", { class: "invoice-description", text: invoice.description }));
  card.append(el("div", { class: "invoice-price", text: price }));
  const pay = el("button", { type: "button", class: "pay btn primary", text: `Pay ${price}` });
  const statusNode = el("div", { class: "invoice-status", "aria-live": "polite" });
  applyInvoiceStatus(card, pay, statusNode, status);
  pay.addEventListener("click", () => ctx.onPay && ctx.onPay(message, { card, pay, status: statusNode }));
  card.append(pay, statusNode);
  return card;
}

/** status: null | {state: "paying"|"paid"|"error", text} */
export function applyInvoiceStatus(card, pay, statusNode, status) {
  card.classList.remove("paying", "paid", "failed");
  pay.disabled = false;
  statusNode.textContent = "";
  if (!status) return;
  if (status.state === "paying") {
    card.classList.add("paying");
    pay.disabled = true;
    statusNode.textContent = "Paying…";
  } else if (status.state === "paid") {
    card.classList.add("paid");
    pay.disabled = true;
    statusNode.textContent = "Paid";
  } else if (status.state === "error") {
    card.classList.add("failed");
    statusNode.textContent = status.text || "Payment failed";
  }
}

function renderInlineKeyboard(rows, message, ctx) {
  const keyboard = el("div", { class: "kb-inline" });
  for (const row of rows) {
    if (!Array.isArray(row) || !row.length) continue;
    const line = el("div", { class: "kb-row" });
    for (const button of row) {
      const label = String(button.text ?? "");
      if ((button.type === "url" || button.type === "web_app") && button.url) {
        const href = safeUrl(button.url);
        const link = el("a", { class: "kb-url", href: href || undefined, target: "_blank", rel: "noopener noreferrer", title: button.url }, label);
        if (button.invoice && ctx.onPayLink) {
          // An invoice link (a Stars subscription): Telegram opens the payment sheet.
          link.classList.add("invoice-link");
          link.dataset.invoice = "true";
          link.title = `${button.invoice.title || "Invoice"}: ${formatPrice(button.invoice.currency, button.invoice.total_amount)}`;
          link.addEventListener("click", (event) => {
            event.preventDefault();
            ctx.onPayLink(message, button, link);
          });
        }
        line.append(link);
        continue;
      }
      if (button.type === "copy_text") {
        const copy = el("button", { type: "button", dataset: { type: "copy_text" } }, label);
        copy.addEventListener("click", () => ctx.onCopy && ctx.onCopy(button.copy_text || ""));
        line.append(copy);
        continue;
      }
      const node = el("button", { type: "button", dataset: { type: button.type || "callback" } }, label);
      node.addEventListener("click", () => {
        if (button.type === "pay" && ctx.onPay) {
          const card = node.closest(".msg")?.querySelector(".invoice");
          ctx.onPay(message, card ? { card, pay: card.querySelector("button.pay"), status: card.querySelector(".invoice-status") } : null);
        } else if (ctx.onPress) {
          ctx.onPress(message, label, node);
        }
      });
      line.append(node);
    }
    keyboard.append(line);
  }
  return keyboard;
}
