// The notification center: the bell's unread count and its panel, kept current without reloading the page.
// The list comes from GET /api/v1/notifications; what arrives later comes over Server-Sent Events from
// /api/v1/notifications/stream (the session cookie authenticates both). When the stream drops, EventSource
// reconnects by itself and sends Last-Event-ID, so the server resumes after the last notification received.
(function () {
  "use strict";

  const CATEGORIES = [
    ["action_required", "Action required"],
    ["info", "Information"],
  ];
  const REFUSED_RETRY_MS = 10000; // the stream was refused (a restart, an expired session): try again later

  function relativeTime(iso, now) {
    const seconds = Math.max(0, Math.round((now - new Date(iso).getTime()) / 1000));
    if (seconds < 45) return "just now";
    const minutes = Math.round(seconds / 60);
    if (minutes < 60) return minutes + " min ago";
    const hours = Math.round(minutes / 60);
    if (hours < 24) return hours + " h ago";
    const days = Math.round(hours / 24);
    if (days === 1) return "yesterday";
    if (days < 30) return days + " days ago";
    return new Date(iso).toLocaleDateString();
  }

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function safeLink(link) {
    // The server accepts only console paths and http(s) addresses; check again before following one.
    if (typeof link !== "string" || /[\\\u0000-\u001f\u007f]/.test(link)) return null;  // /\evil.com is //evil.com
    return /^\/(?!\/)/.test(link) || /^https?:\/\//i.test(link) ? link : null;
  }

  function NotificationCenter(root) {
    this.root = root;
    this.api = root.dataset.api;
    this.button = root.querySelector(".bell-button");
    this.count = root.querySelector(".bell-count");
    this.panel = root.querySelector(".bell-panel");
    this.groups = root.querySelector(".bell-groups");
    this.readAll = root.querySelector(".bell-read-all");
    this.status = root.querySelector(".bell-status");
    this.items = new Map(); // id -> notification, as the API shapes it
    this.unread = 0;
    this.newest = 0; // the newest id shown: where a new stream starts
    this.source = null;
  }

  NotificationCenter.prototype.start = function () {
    this.button.addEventListener("click", () => this.toggle());
    this.readAll.addEventListener("click", () => this.markAllRead());
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !this.panel.hidden) {
        this.toggle(false);
        this.button.focus();
      }
    });
    document.addEventListener("click", (event) => {
      if (!this.panel.hidden && !this.root.contains(event.target)) this.toggle(false);
    });
    setInterval(() => this.refreshTimes(), 30000);
    this.load().finally(() => this.connect());
  };

  NotificationCenter.prototype.load = function () {
    return fetch(this.api + "?limit=50", { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((response) => (response.ok ? response.json() : Promise.reject(response.status)))
      .then((page) => {
        page.items.forEach((item) => this.remember(item));
        this.setUnread(page.unread);
        this.render();
      })
      .catch(() => this.say("Notifications could not be loaded."));
  };

  NotificationCenter.prototype.connect = function () {
    const source = new EventSource(this.api + "/stream?after=" + this.newest);
    this.source = source;
    source.addEventListener("notification", (event) => {
      const item = JSON.parse(event.data);
      const isNew = !this.items.has(item.id);
      this.remember(item);
      this.render();
      if (isNew) this.root.dispatchEvent(new CustomEvent("envoi:notification", { detail: item }));
    });
    source.addEventListener("unread", (event) => this.setUnread(JSON.parse(event.data).unread));
    this.root.dataset.stream = "connecting"; // connecting, open or paused: for styles and tests
    source.addEventListener("open", () => {
      this.root.dataset.stream = "open";
      this.say("");
    });
    source.addEventListener("error", () => {
      this.root.dataset.stream = source.readyState === EventSource.CLOSED ? "paused" : "connecting";
      if (source.readyState === EventSource.CLOSED) {
        // Refused outright (EventSource only retries dropped streams): start a new one later, after what we have.
        this.say("Live notifications are paused; retrying…");
        setTimeout(() => this.connect(), REFUSED_RETRY_MS);
      }
    });
  };

  NotificationCenter.prototype.remember = function (item) {
    this.items.set(item.id, item);
    this.newest = Math.max(this.newest, item.id);
  };

  NotificationCenter.prototype.setUnread = function (count) {
    this.unread = Math.max(0, count);
    this.count.textContent = this.unread > 99 ? "99+" : String(this.unread);
    this.count.dataset.count = String(this.unread);
    this.count.hidden = this.unread === 0;
    this.readAll.disabled = this.unread === 0;
    this.button.setAttribute(
      "aria-label",
      this.unread ? "Notifications, " + this.unread + " unread" : "Notifications"
    );
  };

  NotificationCenter.prototype.toggle = function (open) {
    const show = open === undefined ? this.panel.hidden : open;
    this.panel.hidden = !show;
    this.button.setAttribute("aria-expanded", String(show));
    if (show) this.refreshTimes();
  };

  NotificationCenter.prototype.render = function () {
    const now = Date.now();
    const newestFirst = Array.from(this.items.values()).sort((a, b) => b.id - a.id);
    this.groups.replaceChildren();
    if (!newestFirst.length) {
      const empty = document.createElement("p");
      empty.className = "bell-empty";
      empty.textContent = "No notifications yet.";
      this.groups.append(empty);
      return;
    }
    const known = new Set(CATEGORIES.map(([name]) => name));
    for (const [name, label] of CATEGORIES) {
      const items = newestFirst.filter((item) => item.category === name || (name === "info" && !known.has(item.category)));
      if (!items.length) continue;
      const group = document.createElement("section");
      group.className = "bell-group bell-group-" + name;
      const heading = document.createElement("h3");
      heading.textContent = label;
      const list = document.createElement("ul");
      list.className = "bell-list";
      items.forEach((item) => list.append(this.renderItem(item, now)));
      group.append(heading, list);
      this.groups.append(group);
    }
  };

  NotificationCenter.prototype.renderItem = function (item, now) {
    const entry = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "bell-item" + (item.read ? "" : " unread");
    button.dataset.id = String(item.id);
    const title = document.createElement("span");
    title.className = "bell-item-title";
    title.textContent = item.title;
    const body = document.createElement("span");
    body.className = "bell-item-body";
    body.textContent = item.body;
    const time = document.createElement("time");
    time.className = "bell-item-time";
    time.dateTime = item.createdAt;
    time.title = new Date(item.createdAt).toLocaleString();
    time.textContent = relativeTime(item.createdAt, now);
    button.append(title, body, time);
    button.addEventListener("click", () => this.open(item));
    entry.append(button);
    return entry;
  };

  NotificationCenter.prototype.refreshTimes = function () {
    const now = Date.now();
    this.groups.querySelectorAll("time.bell-item-time").forEach((time) => {
      time.textContent = relativeTime(time.dateTime, now);
    });
  };

  NotificationCenter.prototype.post = function (path) {
    return fetch(this.api + path, {
      method: "POST",
      credentials: "same-origin",
      keepalive: true, // the request goes through even when the page is left right after
      headers: { Accept: "application/json", "X-CSRF-Token": csrfToken() },
    }).then((response) => (response.ok ? response.json() : Promise.reject(response.status)));
  };

  NotificationCenter.prototype.open = function (item) {
    const go = () => {
      const link = safeLink(item.link);
      if (link) window.location.assign(link);
    };
    if (item.read) return go();
    return this.post("/" + item.id + "/read")
      .then((updated) => {
        this.remember(updated);
        this.setUnread(this.unread - 1);
        this.render();
      })
      .catch(() => this.say("It could not be marked read."))
      .finally(go);
  };

  NotificationCenter.prototype.markAllRead = function () {
    return this.post("/read-all?upTo=" + this.newest)
      .then((result) => {
        this.items.forEach((item) => {
          if (item.id <= this.newest) item.read = true;
        });
        this.setUnread(result.unread);
        this.render();
      })
      .catch(() => this.say("They could not be marked read."));
  };

  NotificationCenter.prototype.say = function (message) {
    this.status.textContent = message;
    this.status.hidden = !message;
  };

  function start() {
    const root = document.getElementById("notifications");
    if (root && window.EventSource && window.fetch) new NotificationCenter(root).start();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
