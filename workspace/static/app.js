/*
 * The local workspace's page: channels, live messages, a message box for /services commands, Block Kit buttons.
 *
 * It talks only to the workspace's /_workspace/ control API (the same one tests use):
 *   GET  /_workspace/info                 who is who (channels, users, the bot, the newest event number)
 *   GET  /_workspace/messages?channel=&user=   a channel's messages, with only this user's ephemeral ones
 *   GET  /_workspace/events?after=N        long-poll of what happened since event N (live updates)
 *   POST /_workspace/command               run a slash command: the workspace signs it and sends it to the bot
 *   POST /_workspace/click                 click a button: the workspace sends the signed block_actions payload
 *   POST /_workspace/messages              write in a channel as the user
 *
 * Everything displayed comes from the bot, which relays the cloud API: it is untrusted text. The DOM is built
 * with createElement and textContent only, never innerHTML, so no message can inject markup or script; the
 * server's Content-Security-Policy backs this up (no inline script, nothing loaded from elsewhere).
 */
(function () {
  "use strict";

  const EMOJI = {
    // the status emoji of bot/views.py STATUS_EMOJI
    large_green_circle: "\u{1F7E2}", large_blue_circle: "\u{1F535}", large_orange_circle: "\u{1F7E0}",
    red_circle: "\u{1F534}", white_circle: "\u26AA", white_check_mark: "\u2705", double_vertical_bar: "\u23F8\uFE0F",
    wastebasket: "\u{1F5D1}\uFE0F", hourglass_flowing_sand: "\u23F3", hourglass: "\u231B", grey_question: "\u2754",
    // what alerts, errors and help tend to use
    warning: "\u26A0\uFE0F", x: "\u274C", heavy_check_mark: "\u2714\uFE0F", rotating_light: "\u{1F6A8}",
    bell: "\u{1F514}", no_bell: "\u{1F515}", mute: "\u{1F507}", information_source: "\u2139\uFE0F",
    large_yellow_circle: "\u{1F7E1}", large_purple_circle: "\u{1F7E3}", black_circle: "\u26AB",
    arrow_right: "\u27A1\uFE0F", arrow_up: "\u2B06\uFE0F", arrow_down: "\u2B07\uFE0F", arrows_counterclockwise: "\u{1F504}",
    mag: "\u{1F50D}", eyes: "\u{1F440}", fire: "\u{1F525}", tada: "\u{1F389}", bulb: "\u{1F4A1}", zzz: "\u{1F4A4}",
    stopwatch: "\u23F1\uFE0F", clock3: "\u{1F552}", bar_chart: "\u{1F4CA}", chart_with_upwards_trend: "\u{1F4C8}",
    robot_face: "\u{1F916}", link: "\u{1F517}", lock: "\u{1F512}", memo: "\u{1F4DD}", gear: "\u2699\uFE0F",
    speech_balloon: "\u{1F4AC}", exclamation: "\u2757", question: "\u2753", no_entry: "\u26D4",
    no_entry_sign: "\u{1F6AB}", octagonal_sign: "\u{1F6D1}", construction: "\u{1F6A7}", rocket: "\u{1F680}",
    package: "\u{1F4E6}", sparkles: "\u2728", boom: "\u{1F4A5}", thumbsup: "\u{1F44D}", "+1": "\u{1F44D}",
    heavy_minus_sign: "\u2796", small_red_triangle: "\u{1F53A}", small_red_triangle_down: "\u{1F53B}",
    calendar: "\u{1F4C5}", hammer_and_wrench: "\u{1F6E0}\uFE0F", new: "\u{1F195}", ok: "\u{1F197}",
    recycle: "\u267B\uFE0F", pushpin: "\u{1F4CC}", wave: "\u{1F44B}",
  };
  const SLACKBOT = "USLACKBOT";
  const PRIVATE_USE = /[\uE000-\uF8FF]/g; // placeholders for parsed tokens; never trusted from input
  const SAFE_URL = /^(https?:\/\/|mailto:)/i;

  const state = {
    info: null,
    me: null,
    users: new Map(), // id -> display name
    channels: [], // [{id, name, topic}]
    current: null, // selected channel id
    store: new Map(), // channel id -> Map(key -> message view)
    unread: new Map(), // channel id -> count
    expanded: new Set(), // "channel:ts" of threads shown open
    clickErrors: new Map(), // "channel:ts" -> text shown under the message
    rendered: new Map(), // key -> element, for the current channel's top-level messages
    lastSeq: 0,
    localSeq: 0,
    history: [],
    historyAt: 0,
    generation: 0, // bumps on reload so a stale long-poll answer is dropped
    colourEmoji: true, // false where no font draws emoji in colour: they are shown as their :name: instead
  };

  const $ = (id) => document.getElementById(id);

  // -- small DOM helpers ------------------------------------------------------------------------------------

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    if (props) {
      for (const [key, value] of Object.entries(props)) {
        if (value === undefined || value === null || value === false) continue;
        if (key === "className") node.className = value;
        else if (key === "text") node.textContent = value;
        else if (key === "dataset") Object.assign(node.dataset, value);
        else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
        else node.setAttribute(key, value === true ? "" : String(value));
      }
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function decode(text) {
    // Slack escapes exactly these three in message text; the result is only ever used as textContent.
    return text.replace(/&(lt|gt|amp);/g, (_, name) => ({ lt: "<", gt: ">", amp: "&" })[name]);
  }

  function withEmoji(text, into) {
    // Known :names: become Unicode; unknown ones stay as typed, as Slack shows them.
    const re = /:([a-z0-9_+'-]+):/g;
    let last = 0;
    let m;
    while ((m = re.exec(text)) !== null) {
      const glyph = Object.prototype.hasOwnProperty.call(EMOJI, m[1]) ? EMOJI[m[1]] : null;
      if (!glyph) {
        re.lastIndex = m.index + 1; // ":a:b:" -> try ":b:" too
        continue;
      }
      if (m.index > last) into.append(text.slice(last, m.index));
      into.append(
        state.colourEmoji
          ? el("span", { className: "emoji", title: m[0], text: glyph })
          : el("span", { className: "emoji as-text", title: glyph, text: m[0] }),
      );
      last = m.index + m[0].length;
    }
    if (last < text.length) into.append(text.slice(last));
    return into;
  }

  // -- mrkdwn -----------------------------------------------------------------------------------------------

  function mrkdwn(source) {
    const root = el("div", { className: "mrkdwn" });
    const text = String(source ?? "").replace(PRIVATE_USE, "\uFFFD");
    const parts = text.split("```");
    if (parts.length % 2 === 0) {
      // an odd number of fences: the last one is not closed, so it is just text
      const tail = parts.pop();
      parts[parts.length - 1] += "```" + tail;
    }
    parts.forEach((part, i) => {
      if (i % 2 === 1) {
        root.append(el("pre", { className: "bk-pre", text: decode(part.replace(/^\n/, "")) }));
      } else if (part) {
        lines(part, root);
      }
    });
    return root;
  }

  function lines(text, into) {
    // Runs of lines starting with ">" (the bot writes "&gt;" or ">") are block quotes.
    const quote = /^(?:&gt;|>) ?(.*)$/;
    let plain = [];
    let quoted = [];
    const flushPlain = () => {
      if (plain.length) into.append(inline(plain.join("\n"), el("span")));
      plain = [];
    };
    const flushQuote = () => {
      if (quoted.length) into.append(inline(quoted.join("\n"), el("blockquote", { className: "bk-quote" })));
      quoted = [];
    };
    for (const line of text.split("\n")) {
      const m = quote.exec(line);
      if (m) {
        flushPlain();
        quoted.push(m[1]);
      } else {
        flushQuote();
        plain.push(line);
      }
    }
    flushPlain();
    flushQuote();
  }

  function inline(text, into) {
    // Code spans and <...> tokens are parsed first and held as private-use placeholders, so *bold* can wrap a
    // link and nothing inside `code` is formatted.
    const held = [];
    const hold = (node) => {
      if (held.length >= 6000) return node.textContent;
      held.push(node);
      return String.fromCharCode(0xe000 + held.length - 1);
    };
    let s = text.replace(/`([^`\n]+)`/g, (_, code) => hold(el("code", { className: "bk-code", text: decode(code) })));
    s = s.replace(/<([^<>\n]+)>/g, (_, token) => hold(angle(token)));
    format(s, held, into);
    return into;
  }

  function format(text, held, into) {
    const re = /(^|[^\w*_~])([*_~])(?=\S)([^\n]*?\S)\2(?=$|[^\w*_~])/;
    let rest = text;
    let m;
    while ((m = re.exec(rest)) !== null) {
      const start = m.index + m[1].length;
      leaf(rest.slice(0, start), held, into);
      const tag = { "*": "strong", _: "em", "~": "s" }[m[2]];
      into.append(format(m[3], held, el(tag)));
      rest = rest.slice(start + m[2].length * 2 + m[3].length);
    }
    leaf(rest, held, into);
    return into;
  }

  function leaf(text, held, into) {
    let buffer = "";
    for (const ch of text) {
      const code = ch.charCodeAt(0);
      if (code >= 0xe000 && code < 0xe000 + held.length) {
        if (buffer) withEmoji(decode(buffer), into);
        buffer = "";
        into.append(held[code - 0xe000]);
      } else {
        buffer += ch;
      }
    }
    if (buffer) withEmoji(decode(buffer), into);
  }

  function angle(token) {
    const bar = token.indexOf("|");
    const target = bar >= 0 ? token.slice(0, bar) : token;
    const label = bar >= 0 ? decode(token.slice(bar + 1)) : "";
    if (target.startsWith("@")) {
      return el("span", { className: "mention", text: "@" + (label || userName(target.slice(1))) });
    }
    if (target.startsWith("#")) {
      const channel = state.channels.find((c) => c.id === target.slice(1));
      return el("span", { className: "mention", text: "#" + (label || (channel ? channel.name : target.slice(1))) });
    }
    if (target.startsWith("!")) {
      if (target.startsWith("!date^")) {
        const seconds = Number(target.split("^")[1]);
        const when = Number.isFinite(seconds) ? new Date(seconds * 1000) : null;
        const title = when && !Number.isNaN(when.getTime()) ? when.toLocaleString() : undefined;
        return el("span", { className: "bk-date", title, text: label || target });
      }
      const special = { "!here": "@here", "!channel": "@channel", "!everyone": "@everyone" }[target];
      return el("span", { className: "mention", text: label || special || target });
    }
    const url = decode(target);
    if (SAFE_URL.test(url)) {
      return el("a", { href: url, target: "_blank", rel: "noopener noreferrer", text: label || url });
    }
    return document.createTextNode(label || url); // not a link Slack would make: show the words only
  }

  // -- Block Kit --------------------------------------------------------------------------------------------

  function textObject(obj, className) {
    if (!obj || typeof obj.text !== "string") return null;
    if (obj.type === "mrkdwn") {
      const node = mrkdwn(obj.text);
      if (className) node.classList.add(className);
      return node;
    }
    const node = el("div", { className: ["plain", className].filter(Boolean).join(" ") });
    if (obj.emoji === false) node.textContent = obj.text;
    else withEmoji(obj.text, node);
    return node;
  }

  function element(elem, message) {
    if (!elem || typeof elem !== "object") return null;
    if (elem.type === "button") {
      const label = elem.text && typeof elem.text.text === "string" ? elem.text.text : "button";
      const classes = ["bk-button"];
      if (elem.style === "primary" || elem.style === "danger") classes.push(elem.style);
      const button = el("button", {
        type: "button",
        className: classes.join(" "),
        dataset: { actionId: String(elem.action_id ?? ""), value: elem.value === undefined ? "" : String(elem.value) },
      });
      withEmoji(label, button);
      button.addEventListener("click", () => click(message, elem, button));
      return button;
    }
    if (elem.type === "image") {
      return el("span", { className: "bk-image-alt", text: "[image: " + (elem.alt_text || "") + "]" });
    }
    if (elem.type === "mrkdwn" || elem.type === "plain_text") return textObject(elem);
    return el("span", { className: "bk-unsupported", text: "[" + String(elem.type) + "]" });
  }

  function block(b, message) {
    if (!b || typeof b !== "object") return null;
    switch (b.type) {
      case "header":
        return el("div", { className: "bk-header" }, textObject(b.text));
      case "divider":
        return el("hr", { className: "bk-divider" });
      case "section": {
        const body = el("div", { className: "bk-section-body" });
        const text = textObject(b.text);
        if (text) body.append(text);
        if (Array.isArray(b.fields) && b.fields.length) {
          body.append(el("div", { className: "bk-fields" }, b.fields.map((f) => textObject(f, "bk-field"))));
        }
        const accessory = b.accessory ? el("div", { className: "bk-accessory" }, element(b.accessory, message)) : null;
        return el("div", { className: "bk-section" }, body, accessory);
      }
      case "context":
        return el(
          "div",
          { className: "bk-context" },
          (Array.isArray(b.elements) ? b.elements : []).map((e) => element(e, message)),
        );
      case "actions":
        return el(
          "div",
          { className: "bk-actions" },
          (Array.isArray(b.elements) ? b.elements : []).map((e) => element(e, message)),
        );
      case "image":
        return el("div", { className: "bk-image-alt", text: "[image: " + (b.alt_text || b.title?.text || "") + "]" });
      case "rich_text":
        return el("div", { className: "mrkdwn", text: richText(b) });
      default:
        return el("div", { className: "bk-unsupported", text: "[unsupported block: " + String(b.type) + "]" });
    }
  }

  function richText(b) {
    // Enough of rich_text to read it: the words, in order.
    const out = [];
    const walk = (node) => {
      if (!node || typeof node !== "object") return;
      if (typeof node.text === "string") out.push(node.text);
      else if (node.type === "emoji" && node.name) out.push((state.colourEmoji && EMOJI[node.name]) || ":" + node.name + ":");
      else if (node.type === "user") out.push("@" + userName(node.user_id));
      else if (node.type === "link") out.push(node.url || "");
      if (Array.isArray(node.elements)) node.elements.forEach(walk);
      if (node.type === "rich_text_section" || node.type === "rich_text_preformatted") out.push("\n");
    };
    walk(b);
    return out.join("").trim();
  }

  function attachment(a, message) {
    const colors = { good: "#2eb67d", warning: "#ecb22e", danger: "#e01e5a" };
    const box = el("div", { className: "attachment" });
    const color = colors[a.color] || (/^#?[0-9a-f]{3,8}$/i.test(a.color || "") ? "#" + a.color.replace(/^#/, "") : null);
    if (color) box.style.borderLeftColor = color; // CSSOM, not an inline style attribute: allowed by the CSP
    if (a.pretext) box.append(mrkdwn(a.pretext));
    if (a.author_name) box.append(el("div", { className: "att-author", text: a.author_name }));
    if (a.title) {
      const link = a.title_link && SAFE_URL.test(a.title_link);
      box.append(
        link
          ? el("a", { className: "att-title", href: a.title_link, target: "_blank", rel: "noopener noreferrer", text: a.title })
          : el("div", { className: "att-title", text: a.title }),
      );
    }
    if (a.text) box.append(mrkdwn(a.text));
    if (Array.isArray(a.fields) && a.fields.length) {
      box.append(
        el(
          "div",
          { className: "bk-fields" },
          a.fields.map((f) => el("div", { className: "bk-field" }, el("strong", { text: f.title || "" }), mrkdwn(f.value || ""))),
        ),
      );
    }
    if (Array.isArray(a.blocks)) a.blocks.forEach((b) => box.append(block(b, message) || ""));
    if (a.footer) box.append(el("div", { className: "bk-context", text: a.footer }));
    if (!box.childNodes.length && a.fallback) box.append(el("div", { text: a.fallback }));
    return box;
  }

  // -- messages ---------------------------------------------------------------------------------------------

  function userName(id) {
    if (id === SLACKBOT) return "Slackbot";
    return state.users.get(id) || id;
  }

  function keyOf(channel, ts) {
    return channel + ":" + ts;
  }

  function isReply(m) {
    return m.thread_ts && m.thread_ts !== m.ts;
  }

  function visible(m) {
    return !m.ephemeral || !m.visible_to || m.visible_to === state.me.id;
  }

  function channelStore(channel) {
    if (!state.store.has(channel)) state.store.set(channel, new Map());
    return state.store.get(channel);
  }

  function sortKey(m) {
    return m.sort ?? parseFloat(m.ts);
  }

  function sorted(list) {
    return list.sort((a, b) => sortKey(a) - sortKey(b));
  }

  function replies(channel, ts) {
    return sorted([...channelStore(channel).values()].filter((m) => m.thread_ts === ts && m.ts !== ts && visible(m)));
  }

  function topLevel(channel, m) {
    // A reply shows under its parent; a broadcast reply or one whose parent is gone shows on its own.
    return !isReply(m) || m.reply_broadcast || !channelStore(channel).has(m.thread_ts);
  }

  function time(m) {
    const seconds = sortKey(m);
    if (!Number.isFinite(seconds)) return "";
    return new Date(seconds * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function initials(name) {
    const words = name.replace(/[^\p{L}\p{N} -]/gu, " ").split(/[\s-]+/).filter(Boolean);
    return ((words[0] || "?")[0] + (words[1] ? words[1][0] : "")).toUpperCase();
  }

  function renderMessage(m, { inThread = false } = {}) {
    const name = m.from_app ? state.info.bot.name : userName(m.user);
    const who = m.from_app ? "bot" : m.user === SLACKBOT ? "slackbot" : "person";
    const classes = ["msg", who];
    if (m.ephemeral) classes.push("ephemeral");
    if (m.local) classes.push("local");
    if (inThread) classes.push("reply");
    const head = el(
      "div",
      { className: "msg-head" },
      el("span", { className: "msg-name", text: name }),
      m.from_app ? el("span", { className: "badge", text: "APP" }) : null,
      el("span", { className: "msg-time", title: m.ts, text: time(m) }),
      m.edited || m.replaced ? el("span", { className: "msg-edited", text: "(edited)" }) : null,
      isReply(m) && m.reply_broadcast ? el("span", { className: "msg-edited", text: "replied to a thread" }) : null,
    );
    const body = el("div", { className: "msg-body" });
    const blocks = Array.isArray(m.blocks) ? m.blocks.map((b) => block(b, m)).filter(Boolean) : [];
    if (blocks.length) body.append(...blocks);
    else if (m.text || !Array.isArray(m.attachments)) body.append(mrkdwn(m.text || ""));
    if (Array.isArray(m.attachments)) m.attachments.forEach((a) => a && body.append(attachment(a, m)));
    const problem = state.clickErrors.get(keyOf(m.channel, m.ts));
    if (problem) body.append(el("div", { className: "click-error", role: "alert" }, withEmoji(problem, el("span"))));
    if (m.ephemeral) body.append(el("div", { className: "ephemeral-note", text: "Only visible to you" }));
    if (!inThread && !isReply(m)) {
      const thread = replies(m.channel, m.ts);
      if (thread.length) {
        const key = keyOf(m.channel, m.ts);
        const open = state.expanded.has(key);
        const label = thread.length + (thread.length === 1 ? " reply" : " replies");
        body.append(
          el("button", {
            type: "button",
            className: "thread-toggle",
            text: open ? "Hide " + label : label,
            "aria-expanded": open ? "true" : "false",
            onclick: () => {
              if (state.expanded.has(key)) state.expanded.delete(key);
              else state.expanded.add(key);
              refresh(m.channel, m.ts);
            },
          }),
        );
        if (open) body.append(el("div", { className: "thread" }, thread.map((r) => renderMessage(r, { inThread: true }))));
      }
    }
    return el(
      "article",
      {
        className: classes.join(" "),
        dataset: { ts: m.ts, user: m.user, ephemeral: m.ephemeral ? "true" : "false" },
      },
      el("div", { className: "avatar " + who, text: who === "bot" ? "SB" : initials(name), "aria-hidden": "true" }),
      el("div", { className: "msg-main" }, head, body),
    );
  }

  function nearBottom() {
    const box = $("messages");
    return box.scrollHeight - box.scrollTop - box.clientHeight < 120;
  }

  function scrollDown() {
    const box = $("messages");
    box.scrollTop = box.scrollHeight;
  }

  function renderChannel() {
    const box = $("messages");
    const channel = state.channels.find((c) => c.id === state.current);
    $("channel-title").textContent = channel ? "# " + channel.name : "#";
    $("channel-topic").textContent = channel && channel.topic ? channel.topic : "";
    $("input").placeholder = channel ? "Message #" + channel.name + " — try /services failed" : "Message";
    state.rendered = new Map();
    box.replaceChildren();
    const shown = sorted([...channelStore(state.current).values()].filter((m) => visible(m) && topLevel(state.current, m)));
    if (!shown.length) {
      box.append(el("div", { className: "empty", id: "empty", text: "No messages here yet." }));
    }
    for (const m of shown) {
      const node = renderMessage(m);
      state.rendered.set(m.ts, node);
      box.append(node);
    }
    renderSidebar();
    scrollDown();
  }

  function refresh(channel, ts) {
    // Re-draw one top-level message (or the thread that holds it) in place, or place a new one by time.
    if (channel !== state.current) return;
    const store = channelStore(channel);
    let m = store.get(ts);
    if (m && isReply(m) && !topLevel(channel, m)) {
      ts = m.thread_ts;
      m = store.get(ts);
    }
    const box = $("messages");
    const stick = nearBottom();
    const old = state.rendered.get(ts);
    if (!m || !visible(m)) {
      if (old) old.remove();
      state.rendered.delete(ts);
      return;
    }
    const node = renderMessage(m);
    if (old) {
      old.replaceWith(node);
    } else {
      const empty = $("empty");
      if (empty) empty.remove();
      const after = [...state.rendered.entries()]
        .filter(([other]) => store.has(other) && sortKey(store.get(other)) > sortKey(m))
        .sort(([a], [b]) => sortKey(store.get(a)) - sortKey(store.get(b)))[0];
      if (after) box.insertBefore(node, after[1]);
      else box.append(node);
    }
    state.rendered.set(ts, node);
    if (stick) scrollDown();
  }

  function upsert(m) {
    const store = channelStore(m.channel);
    const isNew = !store.has(m.ts);
    store.set(m.ts, m);
    if (!visible(m)) return;
    if (m.channel === state.current) {
      refresh(m.channel, m.ts);
      // a reply that arrived before its parent was drawn as top-level; a new parent takes it back
      for (const r of replies(m.channel, m.ts)) {
        const stray = state.rendered.get(r.ts);
        if (stray && !topLevel(m.channel, r)) {
          stray.remove();
          state.rendered.delete(r.ts);
        }
      }
    } else if (isNew && m.user !== state.me.id) {
      state.unread.set(m.channel, (state.unread.get(m.channel) || 0) + 1);
      renderSidebar();
    }
  }

  function remove(channel, ts) {
    const store = channelStore(channel);
    const m = store.get(ts);
    store.delete(ts);
    if (channel !== state.current) return;
    if (m && isReply(m) && store.has(m.thread_ts)) refresh(channel, m.thread_ts);
    else refresh(channel, ts);
  }

  function localNotice(channel, text) {
    // Problems the workspace could not record itself (the control API refused), shown as Slack shows its own.
    state.localSeq += 1;
    upsert({
      ts: "local-" + state.localSeq,
      sort: Date.now() / 1000,
      local: true,
      channel,
      user: SLACKBOT,
      text,
      blocks: null,
      attachments: null,
      ephemeral: true,
      visible_to: state.me.id,
      from_app: false,
    });
  }

  // -- sidebar ----------------------------------------------------------------------------------------------

  function renderSidebar() {
    const list = $("channels");
    list.replaceChildren(
      ...state.channels.map((c) => {
        const count = c.id === state.current ? 0 : state.unread.get(c.id) || 0;
        const classes = ["channel"];
        if (c.id === state.current) classes.push("active");
        if (count) classes.push("unread");
        return el(
          "li",
          {
            className: classes.join(" "),
            dataset: { channel: c.id, name: c.name },
            role: "button",
            tabindex: "0",
            "aria-current": c.id === state.current ? "page" : null,
            onclick: () => select(c.id),
            onkeydown: (e) => {
              if (e.key === "Enter" || e.key === " ") select(c.id);
            },
          },
          el("span", { className: "hash", text: "#" }),
          el("span", { className: "channel-name", text: c.name }),
          count ? el("span", { className: "unread-dot", title: count + " new", "aria-label": count + " new" }) : null,
        );
      }),
    );
    // on a narrow screen the list is hidden: its toggle carries the unread mark
    const unread = state.channels.some((c) => c.id !== state.current && state.unread.get(c.id));
    const toggle = $("channels-toggle");
    toggle.dataset.unread = unread ? "true" : "false";
    toggle.setAttribute("aria-label", unread ? "Channels (new messages)" : "Channels");
  }

  function openSidebar(open) {
    // Only narrow screens show the toggle; on a wide one the list is always there and this changes nothing.
    $("app").classList.toggle("sidebar-open", open);
    $("channels-toggle").setAttribute("aria-expanded", open ? "true" : "false");
    if (open) {
      const active = document.querySelector("li.channel.active") || document.querySelector("li.channel");
      if (active) active.focus();
    }
  }

  function setupSidebar() {
    $("channels-toggle").addEventListener("click", () => openSidebar(!$("app").classList.contains("sidebar-open")));
    $("backdrop").addEventListener("click", () => openSidebar(false));
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && $("app").classList.contains("sidebar-open")) {
        openSidebar(false);
        $("channels-toggle").focus();
      }
    });
  }

  function select(channelId) {
    openSidebar(false);
    state.current = channelId;
    state.unread.delete(channelId);
    const channel = state.channels.find((c) => c.id === channelId);
    if (channel) history.replaceState(null, "", "#" + encodeURIComponent(channel.name));
    renderChannel();
    // on a phone (style.css's breakpoint), focusing the box would pop the keyboard up over the channel just chosen
    if (!window.matchMedia("(max-width: 700px)").matches) $("input").focus();
  }

  // -- talking to the workspace -----------------------------------------------------------------------------

  async function api(path, body) {
    const options = body === undefined ? { cache: "no-store" } : {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    };
    const response = await fetch(path, options);
    let data = null;
    try {
      data = await response.json();
    } catch (err) {
      data = null;
    }
    if (!response.ok) {
      const reason = data && typeof data.error === "string" ? data.error : "HTTP " + response.status;
      throw new Error(reason);
    }
    return data;
  }

  function failure(result) {
    // The control API describes the bot's ack; this is Slack's word for a failed one.
    if (!result) return "dispatch_failed";
    if (result.timed_out) return "operation_timeout";
    if (result.error) return String(result.error).split(":")[0];
    if (typeof result.status === "number" && result.status >= 500) return "http_service_error";
    if (typeof result.status === "number" && result.status >= 400) return "http_client_error";
    return null;
  }

  function hint(text) {
    $("hint").textContent = text;
  }

  async function send(raw) {
    const text = raw.trim();
    if (!text) return;
    const channel = state.current;
    state.history.push(text);
    state.historyAt = state.history.length;
    if (text.startsWith("/")) {
      const space = text.search(/\s/);
      const command = space < 0 ? text : text.slice(0, space);
      const args = space < 0 ? "" : text.slice(space + 1).trim();
      hint("Sent " + command + (args ? " " + args : "") + " — waiting for " + state.info.bot.name + "…");
      try {
        const result = await api("/_workspace/command", { command, text: args, channel, user: state.me.id });
        const word = failure(result);
        // the workspace itself posts Slack's "failed with the error" notice for a failed ack
        hint(word ? command + " failed: " + word : state.info.bot.name + " acknowledged in " + Math.round(result.ack_ms) + " ms");
      } catch (err) {
        localNotice(channel, command + ' failed with the error "' + err.message + '"');
        hint(command + " failed: " + err.message);
      }
      scrollDown();
      return;
    }
    try {
      // stored as Slack stores what people type: the three mrkdwn control characters escaped
      const escaped = text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
      await api("/_workspace/messages", { channel, text: escaped, user: state.me.id });
      hint("");
    } catch (err) {
      localNotice(channel, "Your message could not be posted: " + err.message);
    }
    scrollDown();
  }

  async function click(message, elem, button) {
    const key = keyOf(message.channel, message.ts);
    state.clickErrors.delete(key);
    button.disabled = true;
    button.classList.add("busy");
    let problem = null;
    try {
      const result = await api("/_workspace/click", {
        channel: message.channel,
        message_ts: message.ts,
        action_id: String(elem.action_id ?? ""),
        value: elem.value === undefined ? null : String(elem.value),
        user: state.me.id,
      });
      const word = failure(result);
      if (word) problem = ":warning: " + state.info.bot.name + " didn't respond to this button (" + word + ")";
    } catch (err) {
      problem = ":warning: This button could not be sent: " + err.message;
    }
    button.disabled = false;
    button.classList.remove("busy");
    if (problem) {
      state.clickErrors.set(key, problem);
      refresh(message.channel, message.ts);
    }
  }

  async function loadAll() {
    state.generation += 1;
    const info = await api("/_workspace/info");
    state.info = info;
    state.me = info.users[0];
    state.users = new Map(info.users.map((u) => [u.id, u.real_name || u.name]));
    state.users.set(info.bot.user_id, info.bot.name);
    state.channels = info.channels;
    state.lastSeq = info.last_event; // taken before the messages: events in between are replayed harmlessly
    const store = new Map();
    await Promise.all(
      info.channels.map(async (c) => {
        const query = "?channel=" + encodeURIComponent(c.id) + "&user=" + encodeURIComponent(state.me.id);
        const data = await api("/_workspace/messages" + query);
        store.set(c.id, new Map(data.messages.map((m) => [m.ts, m])));
      }),
    );
    state.store = store;
    $("team-name").textContent = info.team.name;
    $("me").textContent = "Signed in as " + (state.me.real_name || state.me.name);
    const wanted = decodeURIComponent(location.hash.slice(1));
    const byHash = info.channels.find((c) => c.name === wanted || c.id === wanted);
    const keep = info.channels.find((c) => c.id === state.current);
    const general = info.channels.find((c) => c.name === "general");
    state.current = (keep || byHash || general || info.channels[0] || {}).id || null;
    renderChannel();
    connection("live", "live"); // it just answered; the long-poll that follows keeps this true
  }

  function connection(kind, text) {
    $("conn").dataset.state = kind;
    $("conn-text").textContent = text;
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function apply(event) {
    switch (event.type) {
      case "message_posted":
      case "ephemeral_posted":
      case "message_updated":
        if (event.message) upsert(event.message);
        break;
      case "message_deleted":
        remove(event.channel, event.ts);
        break;
      case "reset":
        return "reload";
      default:
        break; // command, click: the answers that follow are what the page shows
    }
    return null;
  }

  async function follow() {
    // Long-poll the event feed forever; on a restart of the workspace (numbers went back) or a gap (the
    // feed is a bounded log), load everything again.
    let backoff = 500;
    for (;;) {
      const generation = state.generation;
      try {
        const data = await api("/_workspace/events?after=" + state.lastSeq + "&timeout=20");
        if (generation !== state.generation) continue;
        connection("live", "live");
        backoff = 500;
        const gap = data.events.length && data.events[0].seq > state.lastSeq + 1;
        if (data.last < state.lastSeq || gap) {
          await loadAll();
          continue;
        }
        let reload = false;
        for (const event of data.events) {
          if (apply(event) === "reload") reload = true;
          state.lastSeq = Math.max(state.lastSeq, event.seq);
        }
        state.lastSeq = Math.max(state.lastSeq, data.last);
        if (reload) await loadAll();
      } catch (err) {
        connection("offline", "reconnecting…");
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 5000);
        try {
          if (!state.info) await loadAll();
        } catch (err2) {
          // still down; try again after the next pause
        }
      }
    }
  }

  function setupComposer() {
    const input = $("input");
    const grow = () => {
      input.style.height = "auto";
      input.style.height = Math.min(input.scrollHeight, 160) + "px";
    };
    input.addEventListener("input", grow);
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        $("composer").requestSubmit();
      } else if (e.key === "ArrowUp" && !input.value && state.history.length) {
        e.preventDefault();
        state.historyAt = Math.max(0, state.historyAt - 1);
        input.value = state.history[state.historyAt];
      }
    });
    $("composer").addEventListener("submit", (e) => {
      e.preventDefault();
      const text = input.value;
      input.value = "";
      grow();
      if (state.info) send(text);
    });
  }

  function drawsColourEmoji() {
    // A colour-emoji font paints a red circle in red; without one Chromium draws a monochrome box (a "tofu").
    try {
      const canvas = document.createElement("canvas");
      canvas.width = canvas.height = 20;
      const ctx = canvas.getContext("2d", { willReadFrequently: true });
      ctx.font = '16px "Noto Color Emoji", "Apple Color Emoji", "Segoe UI Emoji", sans-serif';
      ctx.textBaseline = "top";
      ctx.fillStyle = "#000";
      ctx.fillText(EMOJI.red_circle, 0, 0);
      const px = ctx.getImageData(0, 0, 20, 20).data;
      for (let i = 0; i < px.length; i += 4) {
        if (px[i + 3] > 0 && (px[i] !== px[i + 1] || px[i + 1] !== px[i + 2])) return true;
      }
      return false;
    } catch (err) {
      return true; // cannot tell: trust the font, as before
    }
  }

  async function start() {
    state.colourEmoji = drawsColourEmoji();
    document.documentElement.dataset.emoji = state.colourEmoji ? "colour" : "text";
    setupSidebar();
    setupComposer();
    try {
      await loadAll();
    } catch (err) {
      $("messages").replaceChildren(el("div", { className: "empty", text: "The workspace is not answering: " + err.message }));
      connection("offline", "reconnecting…");
    }
    follow();
  }

  // for debugging in the browser console, and for tests that want to look inside
  window.workspacePage = { state, mrkdwn };

  start();
})();
