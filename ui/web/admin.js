// Atrium kiosk admin settings and display sleep.
//
// The gear on the home screen opens the admin dialog: a PIN pad first
// (POST /api/v1/admin/session gives a session token, sent as the
// X-Atrium-Admin header; roomd ends it after 10 idle minutes, and the
// dialog goes back to the PIN pad when it answers 401), then the settings
// panes. Everything the panes show comes from GET /settings, GET /devices
// and GET /network/test; Save sends the whole settings back with the
// version it read (PUT /settings), Cancel forgets the edits. Camera
// adjustments and presets act at once, as a remote's arrow keys would.
//
// The Devices pane shows a live preview of the camera: roomd encodes it to
// VP8 and sends it over GET /api/v1/media/preview (a WebSocket with the
// binary framing of the in-call video feed; see roomd's daemon/preview),
// and the page decodes it with WebCodecs' VideoDecoder, as call.js does.
// A browser cannot set headers on a WebSocket, so the token goes in the
// "admin" query parameter there.
//
// The display-sleep overlay is here too: while GET /display (or a
// display.changed event) says asleep, the screen is black with a faint
// clock, and the first touch or key wakes it (POST /display/wake) without
// reaching the controls underneath.

const API = "/api/v1";
const ADMIN_HEADER = "X-Atrium-Admin";
const PREVIEW_PATH = "/api/v1/media/preview";

// Binary frame header, as in call.js (videofeed protocol version 1).
const HEADER_SIZE = 16;
const PROTOCOL_VERSION = 1;
const FLAG_KEYFRAME = 0x01;

const PIN_MAX = 12;
const PIN_MIN = 4;

// The level meter asks for a short window about four times a second.
const LEVEL_WINDOW_MS = 200;
const LEVEL_PERIOD_MS = 250;

// The dialog closes by itself after this long without a touch or key, as
// roomd's session ends then anyway; a screen left in the settings would
// otherwise keep showing them to the room.
const IDLE_CLOSE_MS = 10 * 60 * 1000;

const PREVIEW_RETRY_MS = 3000;

// While awake, a touch is reported to roomd at most this often (it keeps
// the screen awake 10 minutes from the last one outside the awake hours).
const TOUCH_REPORT_MS = 60 * 1000;

const DAYS = [
  ["mon", "Mon"], ["tue", "Tue"], ["wed", "Wed"], ["thu", "Thu"], ["fri", "Fri"], ["sat", "Sat"], ["sun", "Sun"],
];

const NO_PIN_TEXT = "Settings are locked. Set an admin PIN with `roomctl admin set-pin` or from the fleet console.";

// Camera controls moved with nudge buttons, each a pair of arrows; the
// relative control is used when the camera only has that.
const NUDGES = [
  { id: "pan", rel: "pan_relative", label: "Pan", minus: "◀", plus: "▶" },
  { id: "tilt", rel: "tilt_relative", label: "Tilt", minus: "▼", plus: "▲" },
  { id: "zoom", rel: "zoom_relative", label: "Zoom", minus: "−", plus: "+" },
];

const $ = (id) => document.getElementById(id);

function h(tag, props = {}, ...children) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") n.className = v;
    else if (k === "dataset") Object.assign(n.dataset, v);
    else if (k.startsWith("on")) n.addEventListener(k.slice(2), v);
    else if (v === true) n.setAttribute(k, "");
    else if (v !== false && v !== null && v !== undefined) n.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) n.append(c);
  return n;
}

// ---- requests ---------------------------------------------------------------

// AdminSessionError is thrown when roomd no longer knows the session.
class AdminSessionError extends Error {}

// request calls roomd and returns {ok, status, data, problem, headers};
// it never throws for an HTTP error, only for an unreachable roomd.
async function request(path, { method = "GET", body, token } = {}) {
  const init = { method, headers: { Accept: "application/json, application/problem+json" } };
  if (token) init.headers[ADMIN_HEADER] = token;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(`${API}/${path}`, init);
  const type = resp.headers.get("Content-Type") || "";
  let data = null;
  if (/^application\/(problem\+)?json\b/i.test(type)) data = await resp.json().catch(() => null);
  return {
    ok: resp.ok,
    status: resp.status,
    data: resp.ok ? data : null,
    problem: resp.ok ? null : data || {},
    headers: resp.headers,
  };
}

function problemText(r, fallback) {
  const p = r.problem || {};
  return p.detail || p.title || `${fallback} (HTTP ${r.status})`;
}

// ---- entry point --------------------------------------------------------------

// initAdmin wires the gear button, the admin dialog and the display-sleep
// overlay. onRoomName is called with the room name after a save changed
// it, here or elsewhere. The returned display object takes display.changed
// events, settingsChanged settings.changed events.
export function initAdmin({ onRoomName } = {}) {
  const display = new DisplaySleep({ onSleep: () => admin.close() });
  const admin = new AdminScreen({ onRoomName });
  return { display, admin, settingsChanged: (ev) => admin.settingsChanged(ev) };
}

// ---- the dialog -----------------------------------------------------------------

class AdminScreen {
  constructor({ onRoomName }) {
    this.onRoomName = onRoomName || (() => {});
    this.dialog = $("admin");
    this.opener = $("admin-open");
    this.token = "";
    this.settings = null; // as last read from roomd
    this.devices = [];
    this.pane = "room";
    this.secrets = new Map(); // secret key -> "clear" once Clear was pressed
    this.saving = false;
    this.seenVersion = 0; // the newest settings.changed during a save
    this.idleTimer = 0;
    this.pin = new PinPad(this);
    this.preview = new PreviewView(this);
    this.level = new LevelMeter(this);
    this.controls = new CameraControls(this);
    this.nettest = new NetworkTestView(this);

    this.opener.addEventListener("click", () => this.open());
    $("admin-close").addEventListener("click", () => this.close());
    $("admin-cancel").addEventListener("click", () => this.cancel());
    $("admin-save").addEventListener("click", () => this.save());
    // Escape (and a remote's Back) closes; the dialog's own cancel would
    // close it without ending the session.
    this.dialog.addEventListener("cancel", (e) => {
      e.preventDefault();
      this.close();
    });
    $("admin-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.save();
    });
    for (const tab of this.dialog.querySelectorAll(".admin-tab")) {
      tab.addEventListener("click", () => this.showPane(tab.dataset.pane));
    }
    $("set-cal-source").addEventListener("change", () => this.showSource());
    for (const sel of this.dialog.querySelectorAll("#pane-devices select")) {
      sel.addEventListener("change", () => this.devicesChanged(sel.dataset.kind));
    }
    for (const field of this.dialog.querySelectorAll(".admin-secret")) {
      field.querySelector(".secret-clear").addEventListener("click", () => {
        this.secrets.set(field.dataset.secret, "clear");
        field.querySelector("input").value = "";
        this.showSecret(field, false, "cleared when you save");
      });
      field.querySelector("input").addEventListener("input", () => this.secrets.delete(field.dataset.secret));
    }
    $("set-ice-add").addEventListener("click", () => {
      this.addIceRow({ urls: [], username: "", hasCredential: false });
      const rows = $("set-ice").children;
      rows[rows.length - 1].querySelector("input").focus();
    });
    this.buildDays();
    this.buildTimezones();
    // Keys are handled at the document, since focus may be on no control
    // (a pressed button that got disabled). The home screen moves focus
    // with the arrow keys; inside the dialog this handler does, first, so
    // that sliders and fields keep theirs.
    document.addEventListener("keydown", (e) => this.onKey(e), true);
    for (const type of ["pointerdown", "keydown"]) {
      this.dialog.addEventListener(type, () => this.touch(), true);
    }
  }

  get isOpen() {
    return this.dialog.open;
  }

  open() {
    if (this.isOpen) return;
    this.dialog.showModal();
    this.touch();
    this.showPinPad("");
  }

  // close ends the session and hides the dialog; edits not saved are lost.
  close() {
    if (!this.isOpen && !this.token) return;
    clearTimeout(this.idleTimer);
    this.stopLive();
    if (this.token) {
      const token = this.token;
      request("admin/session", { method: "DELETE", token }).catch(() => {});
    }
    this.token = "";
    this.settings = null;
    this.pin.reset();
    if (this.dialog.open) this.dialog.close();
    this.opener.focus();
  }

  // settingsChanged follows a settings.changed event: the room name on the
  // home screen (the status carries it, and needs no session), and a
  // warning when someone else saved while this dialog edits.
  async settingsChanged(ev) {
    try {
      const r = await request("status");
      if (r.ok && r.data && typeof r.data.room === "string") this.onRoomName(r.data.room);
    } catch {
      // roomd away: the next status event brings the name
    }
    if (!ev) return;
    if (this.saving) {
      // Maybe this page's own save: judged when its answer is in.
      this.seenVersion = Math.max(this.seenVersion, ev.version);
      return;
    }
    if (this.settings && ev.version > this.settings.version) {
      this.message("bad", "The settings were just changed elsewhere. Saving now would be refused: Cancel to see the new ones.");
    }
  }

  touch() {
    clearTimeout(this.idleTimer);
    if (this.isOpen) this.idleTimer = setTimeout(() => this.close(), IDLE_CLOSE_MS);
  }

  showPinPad(message) {
    this.stopLive();
    this.token = "";
    $("admin-settings").hidden = true;
    $("admin-pin").hidden = false;
    this.pin.start(message);
  }

  // sessionExpired is what any 401 "admin session required" leads to.
  sessionExpired() {
    this.showPinPad("Your session ended. Enter the PIN again.");
  }

  // call is request() with the session; a 401 ends the session.
  async call(path, opts = {}) {
    let r;
    try {
      r = await request(path, { ...opts, token: this.token });
    } catch {
      return { ok: false, status: 0, problem: { detail: "roomd cannot be reached. Check that it is running." } };
    }
    if (r.status === 401 && this.token) {
      this.sessionExpired();
      throw new AdminSessionError("admin session required");
    }
    return r;
  }

  signedIn(token) {
    this.token = token;
    return this.loadAll();
  }

  // loadAll reads the settings and devices and shows the panes.
  async loadAll() {
    try {
      const [s, d] = await Promise.all([this.call("settings"), this.call("devices")]);
      if (!s.ok) {
        this.showPinPad(problemText(s, "Could not read the settings"));
        return false;
      }
      this.devices = (d.ok && d.data && d.data.devices) || [];
      this.fill(s.data);
    } catch (e) {
      if (e instanceof AdminSessionError) return false;
      throw e;
    }
    $("admin-pin").hidden = true;
    $("admin-settings").hidden = false;
    this.message("", "");
    this.showPane(this.pane);
    return true;
  }

  // ---- panes ----

  showPane(name) {
    this.pane = name;
    for (const tab of this.dialog.querySelectorAll(".admin-tab")) {
      const on = tab.dataset.pane === name;
      // Every tab stays focusable: a remote reaches them with the arrows.
      tab.setAttribute("aria-selected", String(on));
    }
    for (const pane of this.dialog.querySelectorAll(".admin-pane")) pane.hidden = pane.dataset.pane !== name;
    const tab = this.dialog.querySelector(`.admin-tab[data-pane="${name}"]`);
    if (tab && !this.dialog.querySelector(".admin-tabs").contains(document.activeElement)) tab.focus();
    this.stopLive();
    if (name === "devices") this.startLive();
    if (name === "network") this.nettest.load();
    if (name === "display") this.loadDisplayState();
    if (name === "about") this.loadAbout();
  }

  startLive() {
    this.preview.start($("set-dev-camera").value);
    this.level.start(this.microphoneId());
    this.controls.show(this.cameraId());
  }

  stopLive() {
    this.preview.stop();
    this.level.stop();
  }

  devicesChanged(kind) {
    if (this.pane !== "devices") return;
    if (kind === "camera") {
      this.preview.start($("set-dev-camera").value);
      this.controls.show(this.cameraId());
    } else if (kind === "microphone") {
      this.level.start(this.microphoneId());
    }
  }

  // byKind lists the devices of a kind, the ones a meeting prefers first:
  // real before simulated, echo-cancelled first.
  byKind(kind) {
    const rank = (d) => (d.simulated ? 2 : 0) + (d.echoCancelled ? 0 : 1);
    return this.devices.filter((d) => d.kind === kind).sort((a, b) => rank(a) - rank(b));
  }

  // cameraId is the camera chosen, or with Automatic the one the preview
  // shows (roomd's choice), or the likeliest one.
  cameraId() {
    const v = $("set-dev-camera").value;
    if (v) return v;
    if (this.preview.camera) return this.preview.camera;
    const c = this.byKind("camera")[0];
    return c ? c.id : "";
  }

  microphoneId() {
    const v = $("set-dev-microphone").value;
    if (v) return v;
    const m = this.byKind("microphone")[0];
    return m ? m.id : "";
  }

  // ---- form ----

  fill(s) {
    this.settings = s;
    this.secrets.clear();
    this.clearErrors();
    $("set-room-name").value = s.roomName || "";

    const cal = s.calendar || {};
    $("set-cal-source").value = cal.file ? "file" : cal.url ? (cal.caldav ? "caldav" : "url") : "none";
    $("set-cal-url").value = cal.url || "";
    $("set-cal-file").value = cal.file || "";
    $("set-cal-username").value = cal.username || "";
    $("set-cal-password").value = "";
    $("set-cal-token").value = "";
    this.showSecret(this.dialog.querySelector('[data-secret="password"]'), cal.hasPassword);
    this.showSecret(this.dialog.querySelector('[data-secret="token"]'), cal.hasToken);
    const refresh = $("set-cal-refresh");
    if (cal.refresh && ![...refresh.options].some((o) => o.value === cal.refresh)) {
      refresh.append(h("option", { value: cal.refresh }, cal.refresh));
    }
    refresh.value = cal.refresh || "5m0s";
    $("set-cal-timezone").value = cal.timezone || "";
    $("set-cal-autojoin").checked = Boolean(cal.autoJoin);
    this.showSource();

    $("set-ice").replaceChildren();
    for (const srv of s.iceServers || []) this.addIceRow(srv);
    this.iceChanged();

    const dev = s.devices || {};
    for (const kind of ["camera", "microphone", "speaker"]) this.fillDeviceChoice(kind, dev[kind] || "");

    const disp = s.display || {};
    $("set-disp-sleep").checked = Boolean(disp.sleep);
    const days = new Set(disp.days || []);
    for (const box of $("set-disp-days").querySelectorAll("input")) box.checked = days.has(box.value);
    $("set-disp-from").value = disp.awakeFrom || "";
    $("set-disp-until").value = disp.awakeUntil || "";
    this.showManaged(s.managed || []);
  }

  // showManaged locks the fields the fleet's profile sets: they change in
  // the fleet console, and roomd refuses them here.
  showManaged(managed) {
    const isManaged = (field) => managed.some((m) => field === m || field.startsWith(`${m}.`));
    const lock = (el, on) => {
      if (on) {
        if (!el.disabled) el.dataset.managedLock = "1";
        el.disabled = true;
      } else if (el.dataset.managedLock) {
        delete el.dataset.managedLock;
        el.disabled = false;
      }
    };
    for (const pane of this.dialog.querySelectorAll(".admin-pane")) {
      let any = false;
      for (const f of pane.querySelectorAll(".admin-field[data-field]")) {
        const on = isManaged(f.dataset.field);
        any ||= on;
        f.classList.toggle("admin-managed", on);
        for (const c of f.querySelectorAll("input, select, button, textarea")) lock(c, on);
      }
      let note = pane.querySelector(".admin-managed-note");
      if (any && !note) {
        note = h("p", { class: "admin-note admin-managed-note", role: "note" },
          "Some settings here are managed by your organisation's fleet console and cannot be changed on the room.");
        pane.prepend(note);
      }
      if (note) note.hidden = !any;
    }
    lock($("set-cal-source"), managed.includes("calendar"));
  }

  fillDeviceChoice(kind, chosen) {
    const sel = $(`set-dev-${kind}`);
    const opts = [h("option", { value: "" }, "Automatic")];
    const list = this.byKind(kind);
    for (const d of list) {
      opts.push(h("option", { value: d.id }, `${d.name || d.id}${d.simulated ? " (simulated)" : ""}`));
    }
    if (chosen && !list.some((d) => d.id === chosen)) {
      opts.push(h("option", { value: chosen }, `${chosen} (not connected)`));
    }
    sel.replaceChildren(...opts);
    sel.value = chosen;
  }

  showSource() {
    const src = $("set-cal-source").value;
    for (const f of this.dialog.querySelectorAll("#pane-calendar [data-source]")) {
      f.hidden = !f.dataset.source.split(" ").includes(src);
    }
  }

  showSecret(field, isSet, note) {
    field.querySelector(".secret-state").textContent = note ? `(${note})` : isSet ? "(set)" : "(not set)";
    field.querySelector("input").placeholder = isSet && !note ? "Leave empty to keep it" : "";
    field.querySelector(".secret-clear").hidden = !isSet || Boolean(note);
  }

  addIceRow(srv) {
    const row = h("li", { class: "ice-row" });
    const n = $("set-ice").children.length + 1;
    const urls = h("input", {
      class: "admin-input ice-urls", type: "text", spellcheck: "false",
      placeholder: "turn:turn.example.com:3478?transport=udp", "aria-label": `Server ${n} addresses`,
    });
    urls.value = (srv.urls || []).join(" ");
    const user = h("input", { class: "admin-input ice-user", type: "text", spellcheck: "false", placeholder: "User name", "aria-label": `Server ${n} user name` });
    user.value = srv.username || "";
    const cred = h("input", {
      class: "admin-input ice-cred", type: "password", spellcheck: "false", autocomplete: "new-password",
      placeholder: srv.hasCredential ? "Credential set: leave empty to keep" : "Credential", "aria-label": `Server ${n} credential`,
    });
    row.hasCredential = Boolean(srv.hasCredential);
    row.clearCredential = false;
    const clear = h("button", {
      class: "admin-button admin-quiet", type: "button", hidden: !srv.hasCredential,
      onclick: () => {
        row.clearCredential = true;
        cred.value = "";
        cred.placeholder = "Credential cleared when you save";
        clear.hidden = true;
      },
    }, "Clear credential");
    cred.addEventListener("input", () => (row.clearCredential = false));
    const remove = h("button", {
      class: "admin-button admin-danger", type: "button", "aria-label": `Remove server ${n}`,
      onclick: () => {
        const next = row.nextElementSibling || row.previousElementSibling;
        row.remove();
        this.iceChanged();
        (next ? next.querySelector("input") : $("set-ice-add")).focus();
      },
    }, "Remove");
    row.append(urls, h("div", { class: "admin-row" }, user, cred, clear, remove));
    $("set-ice").append(row);
    this.iceChanged();
  }

  iceChanged() {
    $("set-ice-empty").hidden = $("set-ice").children.length > 0;
  }

  buildDays() {
    const box = $("set-disp-days");
    for (const [value, label] of DAYS) {
      box.append(h("label", { class: "day" }, h("input", { type: "checkbox", value }), h("span", {}, label)));
    }
  }

  buildTimezones() {
    let zones = [];
    try {
      zones = Intl.supportedValuesOf("timeZone");
    } catch {
      // An engine without the list: the field still takes any name.
    }
    $("admin-timezones").replaceChildren(...zones.map((z) => h("option", { value: z })));
  }

  // body is the settings to PUT: what was read, with the form's values.
  // Secrets are left out to keep them, "" to clear, a value to set.
  body() {
    const s = structuredClone(this.settings);
    s.roomName = $("set-room-name").value.trim();
    const src = $("set-cal-source").value;
    const cal = s.calendar || {};
    cal.url = src === "url" || src === "caldav" ? $("set-cal-url").value.trim() : "";
    cal.caldav = src === "caldav";
    cal.file = src === "file" ? $("set-cal-file").value.trim() : "";
    cal.username = src === "url" || src === "caldav" ? $("set-cal-username").value.trim() : "";
    cal.refresh = $("set-cal-refresh").value;
    cal.timezone = $("set-cal-timezone").value.trim();
    cal.autoJoin = $("set-cal-autojoin").checked;
    for (const [key, input] of [["password", "set-cal-password"], ["token", "set-cal-token"]]) {
      delete cal[key];
      const has = key === "password" ? "hasPassword" : "hasToken";
      const v = $(input).value;
      if (v) cal[key] = v;
      else if (this.secrets.get(key) === "clear") cal[key] = "";
      delete cal[has];
    }
    s.calendar = cal;

    s.iceServers = [...$("set-ice").children].map((row) => {
      const srv = {
        urls: row.querySelector(".ice-urls").value.split(/[\s,]+/).filter(Boolean),
        username: row.querySelector(".ice-user").value.trim(),
      };
      const cred = row.querySelector(".ice-cred").value;
      if (cred) srv.credential = cred;
      else if (row.clearCredential || !row.hasCredential) srv.credential = "";
      return srv;
    });

    s.devices = {
      camera: $("set-dev-camera").value,
      microphone: $("set-dev-microphone").value,
      speaker: $("set-dev-speaker").value,
    };
    s.display = {
      sleep: $("set-disp-sleep").checked,
      days: [...$("set-disp-days").querySelectorAll("input:checked")].map((b) => b.value),
      awakeFrom: $("set-disp-from").value,
      awakeUntil: $("set-disp-until").value,
    };
    return s;
  }

  async save() {
    if (!this.settings) return;
    const button = $("admin-save");
    if (button.disabled) return;
    this.clearErrors();
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    this.message("", "Saving…");
    const body = this.body();
    this.saving = true;
    this.seenVersion = 0;
    try {
      const r = await this.call("settings", { method: "PUT", body });
      if (r.ok) {
        const oldName = this.settings.roomName;
        this.fill(r.data || { ...body, version: this.settings.version + 1 });
        this.message("ok", "Saved.");
        if (this.seenVersion > this.settings.version) {
          this.message("bad", "Saved, but the settings were changed elsewhere just after: Cancel to see the new ones.");
        }
        if (this.settings.roomName !== oldName) this.onRoomName(this.settings.roomName);
        return;
      }
      if (r.status === 409) {
        // Someone else saved meanwhile: show theirs rather than overwrite.
        const s = await this.call("settings");
        if (s.ok) this.fill(s.data);
        this.message("bad", "The settings were changed elsewhere while you edited them. They have been reloaded: check them and make your changes again.");
        return;
      }
      const p = r.problem || {};
      const detail = problemText(r, "Could not save");
      this.fieldError(p.field, detail);
      this.message("bad", `Not saved: ${detail}`);
    } catch (e) {
      if (!(e instanceof AdminSessionError)) throw e;
    } finally {
      this.saving = false;
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  }

  // cancel forgets the edits and shows the settings as roomd has them now.
  async cancel() {
    let s = this.settings;
    try {
      const r = await this.call("settings");
      if (r.ok && r.data) s = r.data;
    } catch (e) {
      if (e instanceof AdminSessionError) return;
      throw e;
    }
    if (s) this.fill(s);
    this.message("", "Changes discarded.");
    if (this.pane === "devices") this.startLive();
  }

  message(kind, text) {
    const m = $("admin-message");
    m.textContent = text;
    m.dataset.kind = kind;
  }

  clearErrors() {
    for (const f of this.dialog.querySelectorAll(".admin-field.has-error")) {
      f.classList.remove("has-error");
      f.querySelector(".admin-field-error").textContent = "";
    }
  }

  // fieldError shows detail next to the field roomd named (in the
  // problem's field member, or failing that in the detail's text), and
  // opens its pane.
  fieldError(field, detail) {
    const fields = [...this.dialog.querySelectorAll(".admin-field[data-field]")];
    let f = field && fields.find((n) => n.dataset.field === field);
    if (!f && field) f = fields.find((n) => field.startsWith(n.dataset.field));
    if (!f) {
      // The longest name that the detail mentions: "calendar.url" before "calendar".
      const named = fields
        .filter((n) => detail.includes(n.dataset.field))
        .sort((a, b) => b.dataset.field.length - a.dataset.field.length);
      f = named[0];
    }
    if (!f) return;
    f.classList.add("has-error");
    f.querySelector(".admin-field-error").textContent = detail;
    const pane = f.closest(".admin-pane");
    if (pane && pane.dataset.pane !== this.pane) this.showPane(pane.dataset.pane);
    f.hidden = false;
    const input = f.querySelector("input, select");
    if (input) input.focus();
  }

  async loadDisplayState() {
    const el = $("set-disp-state");
    try {
      const r = await this.call("display");
      if (!r.ok) {
        el.textContent = "";
        return;
      }
      el.textContent = displayText(r.data);
    } catch {
      el.textContent = "";
    }
  }

  async loadAbout() {
    const facts = $("about-facts");
    const list = $("about-devices");
    let st = null;
    let fleet = null;
    let update = null;
    let devs = this.devices;
    try {
      const [s, d, f, u] = await Promise.all([this.call("status"), this.call("devices"), this.call("fleet"), this.call("update")]);
      if (s.ok) st = s.data;
      if (d.ok && d.data) devs = this.devices = d.data.devices || [];
      if (f.ok) fleet = f.data;
      if (u.ok) update = u.data;
    } catch (e) {
      if (e instanceof AdminSessionError) return;
      throw e;
    }
    const rows = [
      ["Room", (st && st.room) || (this.settings && this.settings.roomName) || ""],
      ["Version", (st && st.version) || "unknown"],
      ["Running since", st && st.startedAt ? new Date(st.startedAt).toLocaleString() : ""],
      ["Boot ID", (st && st.bootId) || ""],
      ["Settings version", this.settings ? String(this.settings.version) : ""],
      ["Fleet", fleetSummary(fleet)],
      ["Updates", updateSummary(update)],
    ];
    facts.replaceChildren(...rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
    list.replaceChildren(
      ...devs.map((d) =>
        h("li", { class: "about-device" },
          h("span", { class: "about-kind" }, d.kind),
          h("span", { class: "about-name" }, d.name || ""),
          h("code", { class: "about-id" }, d.id),
          h("span", { class: "admin-note" }, [d.driver, d.simulated ? "simulated" : ""].filter(Boolean).join(", "))),
      ),
    );
  }

  // ---- keys ----

  onKey(e) {
    if (!this.isOpen) return;
    this.onArrow(e);
    if (e.defaultPrevented) return;
    if (e.key === "GoBack" || e.key === "BrowserBack") {
      e.preventDefault();
      this.close();
      return;
    }
    if (!$("admin-pin").hidden) this.pin.onKey(e);
  }

  // onArrow moves focus between the dialog's controls with a remote's
  // arrow keys, except where the key has a job: left and right in text
  // fields and sliders, up and down in lists.
  onArrow(e) {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    const step = { ArrowDown: 1, ArrowRight: 1, ArrowUp: -1, ArrowLeft: -1 }[e.key];
    if (!step) return;
    e.stopPropagation(); // the home screen's navigation is not for here
    const a = document.activeElement;
    const horizontal = e.key === "ArrowLeft" || e.key === "ArrowRight";
    if (a && a.tagName === "INPUT" && a.type !== "checkbox" && a.type !== "range" && horizontal) return;
    if (a && a.tagName === "INPUT" && a.type === "range" && horizontal) return;
    if (a && a.tagName === "SELECT" && !horizontal) return;
    const focusable = [...this.dialog.querySelectorAll("input, button, select, [tabindex='0']")].filter(
      (n) => !n.disabled && n.checkVisibility() && n.tabIndex >= 0,
    );
    if (!focusable.length) return;
    const i = focusable.indexOf(a);
    const next = i < 0 ? focusable[0] : focusable[(i + step + focusable.length) % focusable.length];
    next.focus();
    e.preventDefault();
  }
}

function displayText(d) {
  if (!d || !d.state) return "";
  const reason = {
    schedule: "by its schedule",
    meeting: "for the meeting",
    upcoming: "for a meeting about to start",
    touched: "since it was touched",
    always: "display sleep is off",
  }[d.reason] || d.reason || "";
  let t = `The screen is ${d.state}${reason ? ` (${reason})` : ""}.`;
  if (d.nextChange) {
    const at = new Date(d.nextChange);
    if (!isNaN(at)) t += ` Next change: ${at.toLocaleString(undefined, { weekday: "short", hour: "numeric", minute: "2-digit" })}.`;
  }
  return t;
}

// ---- PIN pad -----------------------------------------------------------------

class PinPad {
  constructor(admin) {
    this.admin = admin;
    this.digits = "";
    this.busy = false;
    this.lockedUntil = 0;
    this.timer = 0;
    this.disabled = false;
    for (const key of $("admin-pin-pad").querySelectorAll("[data-digit]")) {
      key.addEventListener("click", () => this.press(key.dataset.digit));
    }
    $("pin-back").addEventListener("click", () => this.back());
    $("pin-ok").addEventListener("click", () => this.submit());
  }

  reset() {
    this.digits = "";
    clearInterval(this.timer);
    this.render();
  }

  // start shows the pad and reads the PIN's state from roomd.
  async start(message) {
    this.reset();
    this.status(message, message ? "bad" : "");
    this.enable(true);
    $("admin-pin-pad").querySelector('[data-digit="1"]').focus();
    let r;
    try {
      r = await request("admin");
    } catch {
      this.status("roomd cannot be reached.", "bad");
      return;
    }
    if (!r.ok) {
      this.status(problemText(r, "Could not read the admin state"), "bad");
      return;
    }
    const st = r.data || {};
    if (!st.pinSet) {
      this.noPin();
    } else if (st.locked) {
      this.lock(st.lockedUntil);
    } else if (!message) {
      this.status(`${st.attemptsLeft} ${st.attemptsLeft === 1 ? "attempt" : "attempts"} before the pad locks.`, "");
    }
  }

  noPin() {
    this.status(NO_PIN_TEXT, "bad");
    this.enable(false);
    $("admin-close").focus();
  }

  enable(on) {
    this.disabled = !on;
    for (const b of $("admin-pin-pad").querySelectorAll("button")) b.disabled = !on;
    $("admin-pin").dataset.state = on ? "ready" : "locked";
  }

  status(text, kind) {
    const s = $("admin-pin-status");
    s.textContent = text;
    s.dataset.kind = kind;
  }

  render() {
    const dots = $("admin-pin-dots");
    dots.replaceChildren(...[...this.digits].map(() => h("span", { class: "pin-dot" })));
    dots.dataset.count = this.digits.length;
    $("pin-ok").disabled = this.disabled || this.digits.length < PIN_MIN;
    $("admin-pin-pad").setAttribute("aria-label", `PIN pad, ${this.digits.length} digits entered`);
  }

  press(d) {
    if (this.disabled || this.busy || this.digits.length >= PIN_MAX) return;
    this.digits += d;
    this.render();
  }

  back() {
    if (this.disabled || this.busy) return;
    this.digits = this.digits.slice(0, -1);
    this.render();
  }

  onKey(e) {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    if (/^[0-9]$/.test(e.key)) {
      this.press(e.key);
      e.preventDefault();
    } else if (e.key === "Backspace") {
      this.back();
      e.preventDefault();
    } else if (e.key === "Enter" && document.activeElement && !document.activeElement.matches(".pin-key")) {
      this.submit();
      e.preventDefault();
    }
  }

  async submit() {
    if (this.disabled || this.busy || this.digits.length < PIN_MIN) return;
    this.busy = true;
    const pin = this.digits;
    this.digits = "";
    this.render();
    this.status("Checking…", "");
    let r;
    try {
      r = await request("admin/session", { method: "POST", body: { pin } });
    } catch {
      this.status("roomd cannot be reached.", "bad");
      return;
    } finally {
      this.busy = false;
    }
    if (r.ok && r.data && r.data.token) {
      this.status("", "");
      await this.admin.signedIn(r.data.token);
      return;
    }
    const p = r.problem || {};
    if (r.status === 401) {
      const left = p.attemptsLeft;
      this.status(
        typeof left === "number" ? `Wrong PIN. ${left} ${left === 1 ? "attempt" : "attempts"} left.` : "Wrong PIN.",
        "bad",
      );
      $("admin-pin-pad").querySelector('[data-digit="1"]').focus();
      $("admin-pin").classList.remove("shake");
      void $("admin-pin").offsetWidth; // restart the animation
      $("admin-pin").classList.add("shake");
    } else if (r.status === 429) {
      let until = p.lockedUntil;
      const after = Number(r.headers.get("Retry-After"));
      if (!until && after > 0) until = new Date(Date.now() + after * 1000).toISOString();
      this.lock(until);
    } else if (r.status === 409) {
      this.noPin();
    } else {
      this.status(problemText(r, "Could not sign in"), "bad");
    }
  }

  // lock shows a countdown until the pad takes PINs again.
  lock(until) {
    const t = Date.parse(until);
    this.lockedUntil = isNaN(t) ? Date.now() + 60000 : t;
    this.enable(false);
    clearInterval(this.timer);
    const tick = () => {
      const left = Math.ceil((this.lockedUntil - Date.now()) / 1000);
      if (left <= 0) {
        clearInterval(this.timer);
        this.enable(true);
        this.render();
        this.status("You can try again.", "");
        $("admin-pin-pad").querySelector('[data-digit="1"]').focus();
        return;
      }
      const m = Math.floor(left / 60);
      const s = String(left % 60).padStart(2, "0");
      this.status(`Too many wrong PINs. Try again in ${m}:${s}.`, "bad");
    };
    tick();
    this.timer = setInterval(tick, 1000);
    $("admin-close").focus();
  }
}

// ---- camera preview ---------------------------------------------------------------

class PreviewView {
  constructor(admin) {
    this.admin = admin;
    this.canvas = $("admin-preview");
    this.ctx = this.canvas.getContext("2d");
    this.note = $("admin-preview-note");
    this.ws = null;
    this.decoder = null;
    this.needKey = true;
    this.frames = 0;
    this.wanted = null; // the camera asked for ("" automatic), null when stopped
    this.camera = ""; // the camera roomd previews
    this.timer = 0;
  }

  start(camera) {
    this.stop();
    this.wanted = camera;
    this.frames = 0;
    this.canvas.dataset.frames = "0";
    this.canvas.dataset.state = "starting";
    this.setNote("Starting the camera preview…");
    if (typeof VideoDecoder === "undefined") {
      this.setNote("This screen cannot decode video, so there is no preview.");
      this.canvas.dataset.state = "unsupported";
      return;
    }
    this.connect();
  }

  connect() {
    if (this.wanted === null || !this.admin.token) return;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const q = new URLSearchParams({ camera: this.wanted, admin: this.admin.token });
    const ws = new WebSocket(`${proto}//${location.host}${PREVIEW_PATH}?${q}`);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onmessage = (e) => this.onMessage(ws, e);
    ws.onclose = (e) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.closeDecoder();
      if (this.wanted === null) return;
      this.canvas.dataset.state = "stopped";
      if (e.code === 1001 && /replaced/.test(e.reason)) {
        this.setNote("The preview is open on another screen.");
        return;
      }
      if (e.code === 1001 && /meeting/.test(e.reason)) this.setNote("The meeting is using the camera.");
      else if (e.reason) this.setNote(`Preview stopped: ${e.reason}`);
      else this.setNote("No preview: the camera is busy or unavailable. Retrying…");
      this.timer = setTimeout(() => this.connect(), PREVIEW_RETRY_MS);
    };
  }

  stop() {
    this.wanted = null;
    clearTimeout(this.timer);
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close(1000, "preview closed");
    this.closeDecoder();
  }

  setNote(text) {
    this.note.textContent = text;
    this.note.hidden = !text;
  }

  onMessage(ws, e) {
    if (ws !== this.ws) return;
    if (typeof e.data === "string") {
      let m;
      try {
        m = JSON.parse(e.data);
      } catch {
        return;
      }
      if (m.type === "preview") {
        this.camera = m.camera || "";
        this.canvas.dataset.camera = this.camera;
        this.setNote(`Waiting for ${m.width}×${m.height} video…`);
        this.openDecoder(m.codec);
        // With Automatic, the controls follow the camera roomd chose.
        if (!this.wanted) this.admin.controls.show(this.camera);
      }
      return;
    }
    const buf = e.data;
    if (buf.byteLength <= HEADER_SIZE || !this.decoder) return;
    const v = new DataView(buf);
    if (v.getUint8(0) !== PROTOCOL_VERSION) return;
    const key = (v.getUint8(1) & FLAG_KEYFRAME) !== 0;
    if (!key && this.needKey) return;
    if (this.decoder.decodeQueueSize > 8) {
      // Not keeping up: start again at the next keyframe.
      this.needKey = true;
      this.openDecoder("VP8");
      if (!key) return;
    }
    this.needKey = false;
    try {
      this.decoder.decode(new EncodedVideoChunk({
        type: key ? "key" : "delta",
        timestamp: Number(v.getBigInt64(4)),
        duration: v.getUint32(12) || undefined,
        data: new Uint8Array(buf, HEADER_SIZE),
      }));
    } catch (err) {
      console.warn("atrium: preview decode", err && err.message);
      this.needKey = true;
      this.openDecoder("VP8");
    }
  }

  openDecoder(codec) {
    this.closeDecoder();
    if (codec !== "VP8") {
      this.setNote(`The preview sends ${codec}, which this screen cannot show.`);
      return;
    }
    const decoder = new VideoDecoder({
      output: (frame) => this.draw(decoder, frame),
      error: (err) => {
        if (this.decoder !== decoder) return;
        console.warn("atrium: preview decoder error", err && err.message);
        this.needKey = true;
        this.openDecoder("VP8");
      },
    });
    decoder.configure({ codec: "vp8", optimizeForLatency: true });
    this.decoder = decoder;
    this.needKey = true;
  }

  closeDecoder() {
    const d = this.decoder;
    this.decoder = null;
    if (d && d.state !== "closed") {
      try {
        d.close();
      } catch {
        // closed by an error already
      }
    }
  }

  draw(decoder, frame) {
    try {
      if (decoder !== this.decoder) return;
      const w = frame.displayWidth;
      const hgt = frame.displayHeight;
      if (this.canvas.width !== w || this.canvas.height !== hgt) {
        this.canvas.width = w;
        this.canvas.height = hgt;
      }
      this.ctx.drawImage(frame, 0, 0, w, hgt);
      this.frames++;
      this.canvas.dataset.frames = String(this.frames);
      if (this.canvas.dataset.state !== "playing") {
        this.canvas.dataset.state = "playing";
        this.setNote("");
      }
    } finally {
      frame.close();
    }
  }
}

// ---- microphone level ----------------------------------------------------------------

class LevelMeter {
  constructor(admin) {
    this.admin = admin;
    this.fill = $("admin-level-fill");
    this.peak = $("admin-level-peak");
    this.text = $("admin-level-text");
    this.run = 0; // increments to end the running loop
  }

  start(mic) {
    this.stop();
    const run = this.run;
    if (!mic) {
      this.show(null, "No microphone.");
      return;
    }
    this.loop(run, mic);
  }

  stop() {
    this.run++;
  }

  async loop(run, mic) {
    while (run === this.run && this.admin.isOpen) {
      const started = performance.now();
      let r;
      try {
        r = await this.admin.call(`devices/${encodeURIComponent(mic)}/level?window=${LEVEL_WINDOW_MS}ms`);
      } catch {
        return; // the session ended
      }
      if (run !== this.run) return;
      if (r.ok && r.data) this.show(r.data, "");
      else if (r.status === 409) this.show(null, "The microphone is in use by the meeting.");
      else this.show(null, problemText(r, "No level"));
      const wait = LEVEL_PERIOD_MS - (performance.now() - started);
      await new Promise((res) => setTimeout(res, Math.max(wait, r.ok ? 0 : 2000)));
    }
  }

  // show draws rms and peak on a -60..0 dBFS scale.
  show(level, note) {
    const pct = (db) => Math.max(0, Math.min(100, ((db + 60) / 60) * 100));
    if (!level) {
      this.fill.style.width = "0%";
      this.peak.style.left = "0%";
      this.text.textContent = note;
      this.text.dataset.db = "";
      return;
    }
    this.fill.style.width = `${pct(level.rmsDbfs)}%`;
    this.peak.style.left = `${pct(level.peakDbfs)}%`;
    const quiet = level.rmsDbfs <= -100;
    this.text.textContent = quiet
      ? "Microphone level: silence"
      : `Microphone level: ${Math.round(level.rmsDbfs)} dBFS (peak ${Math.round(level.peakDbfs)})`;
    this.text.dataset.db = String(level.rmsDbfs);
  }
}

// ---- camera controls ------------------------------------------------------------

class CameraControls {
  constructor(admin) {
    this.admin = admin;
    this.camera = "";
    this.box = $("admin-controls");
    this.nudge = $("admin-nudge");
    this.presets = $("admin-presets");
    this.statusEl = $("admin-controls-status");
    this.pending = new Map(); // control id -> timer, to send a slider's last value
    $("admin-preset-save").addEventListener("click", () => this.savePreset());
  }

  status(text) {
    this.statusEl.textContent = text;
  }

  async show(camera) {
    this.camera = camera;
    if (!camera) {
      this.box.replaceChildren(h("p", { class: "admin-note" }, "No camera."));
      this.nudge.replaceChildren();
      this.presets.replaceChildren();
      return;
    }
    let r;
    try {
      r = await this.admin.call(`devices/${encodeURIComponent(camera)}`);
    } catch {
      return;
    }
    if (camera !== this.camera) return;
    if (!r.ok) {
      this.box.replaceChildren(h("p", { class: "admin-note" }, problemText(r, "Could not read the camera")));
      return;
    }
    this.render(r.data);
    this.loadPresets();
  }

  render(dev) {
    const controls = dev.controls || [];
    const byId = new Map(controls.map((c) => [c.id, c]));
    this.nudge.replaceChildren(
      ...NUDGES.filter((n) => byId.has(n.id) || byId.has(n.rel)).map((n) =>
        h("div", { class: "nudge-pair" },
          h("button", { class: "admin-button admin-quiet nudge-key", type: "button", "aria-label": `${n.label} down`, onclick: () => this.move(n, -1, byId) }, n.minus),
          h("span", { class: "nudge-label" }, n.label),
          h("button", { class: "admin-button admin-quiet nudge-key", type: "button", "aria-label": `${n.label} up`, onclick: () => this.move(n, 1, byId) }, n.plus)),
      ),
    );
    const shown = controls.filter((c) => !c.id.endsWith("_relative"));
    this.box.replaceChildren(...shown.map((c) => this.controlRow(c)));
    if (!shown.length) this.box.append(h("p", { class: "admin-note" }, "This camera has no adjustments."));
  }

  controlRow(c) {
    const id = `ctl-${c.id}`;
    if (c.type === "bool") {
      const box = h("input", { id, type: "checkbox", dataset: { control: c.id } });
      box.checked = c.value !== 0;
      box.addEventListener("change", () => this.set(c.id, box.checked ? 1 : 0));
      return h("div", { class: "control" }, h("label", { class: "admin-check" }, box, ` ${c.name || c.id}`));
    }
    const out = h("output", { class: "control-value", for: id }, String(c.value));
    const range = h("input", {
      id, class: "control-range", type: "range", min: c.min, max: c.max, step: Math.max(1, c.step || 1),
      dataset: { control: c.id },
    });
    range.value = String(c.value);
    range.addEventListener("input", () => {
      out.textContent = range.value;
      // A slider fires many inputs: send the latest at most every 100 ms.
      if (this.pending.has(c.id)) return;
      this.pending.set(c.id, setTimeout(() => {
        this.pending.delete(c.id);
        this.set(c.id, Number(range.value));
      }, 100));
    });
    return h("div", { class: "control" },
      h("label", { for: id, class: "control-name" }, c.name || c.id),
      range, out);
  }

  async put(id, body) {
    let r;
    try {
      r = await this.admin.call(`devices/${encodeURIComponent(this.camera)}/controls/${encodeURIComponent(id)}`, { method: "PUT", body });
    } catch {
      return null;
    }
    if (!r.ok) {
      this.status(problemText(r, `Could not set ${id}`));
      return null;
    }
    this.status("");
    return r.data;
  }

  async set(id, value) {
    const dev = await this.put(id, { value });
    if (dev) this.refreshValues(dev);
  }

  async move(n, sign, byId) {
    const abs = byId.get(n.id);
    // The absolute control moves by steps; a camera with only relative
    // motors takes the delta on its relative control.
    const dev = abs ? await this.put(n.id, { delta: sign }) : await this.put(n.rel, { delta: sign });
    if (dev) this.refreshValues(dev);
  }

  // refreshValues shows what the camera reports after a change.
  refreshValues(dev) {
    for (const c of dev.controls || []) {
      const input = this.box.querySelector(`[data-control="${CSS.escape(c.id)}"]`);
      if (!input || input === document.activeElement) continue;
      if (input.type === "checkbox") input.checked = c.value !== 0;
      else {
        input.value = String(c.value);
        const out = input.parentElement.querySelector("output");
        if (out) out.textContent = String(c.value);
      }
    }
  }

  async loadPresets() {
    let r;
    try {
      r = await this.admin.call(`devices/${encodeURIComponent(this.camera)}/presets`);
    } catch {
      return;
    }
    const list = r.ok && r.data ? (Array.isArray(r.data) ? r.data : r.data.presets || []) : [];
    this.presets.replaceChildren(
      ...list.map((p) =>
        h("li", { class: "preset" },
          h("span", { class: "preset-name" }, p.name),
          h("button", { class: "admin-button admin-quiet", type: "button", onclick: () => this.recall(p.name) }, "Go"),
          h("button", { class: "admin-button admin-danger", type: "button", "aria-label": `Delete preset ${p.name}`, onclick: () => this.deletePreset(p.name) }, "Delete")),
      ),
    );
    if (!list.length) this.presets.append(h("li", { class: "admin-note" }, "No presets yet."));
  }

  async savePreset() {
    const input = $("admin-preset-name");
    const name = input.value.trim();
    if (!name || !this.camera) {
      this.status("Give the preset a name first.");
      input.focus();
      return;
    }
    let r;
    try {
      r = await this.admin.call(`devices/${encodeURIComponent(this.camera)}/presets/${encodeURIComponent(name)}`, { method: "PUT" });
    } catch {
      return;
    }
    if (!r.ok) {
      this.status(problemText(r, "Could not save the preset"));
      return;
    }
    input.value = "";
    this.status(`Saved preset “${name}”.`);
    this.loadPresets();
  }

  async recall(name) {
    let r;
    try {
      r = await this.admin.call(`devices/${encodeURIComponent(this.camera)}/presets/${encodeURIComponent(name)}/recall`, { method: "POST" });
    } catch {
      return;
    }
    if (!r.ok) {
      this.status(problemText(r, "Could not recall the preset"));
      return;
    }
    if (r.data) this.refreshValues(r.data);
    this.status(`Moved to “${name}”.`);
  }

  async deletePreset(name) {
    let r;
    try {
      r = await this.admin.call(`devices/${encodeURIComponent(this.camera)}/presets/${encodeURIComponent(name)}`, { method: "DELETE" });
    } catch {
      return;
    }
    if (!r.ok) this.status(problemText(r, "Could not delete the preset"));
    this.loadPresets();
  }
}

// ---- network test -----------------------------------------------------------------

class NetworkTestView {
  constructor(admin) {
    this.admin = admin;
    this.running = false;
    $("nettest-run").addEventListener("click", () => this.run());
  }

  // load shows the last result, kept by roomd.
  async load() {
    if (this.running) return;
    let r;
    try {
      r = await this.admin.call("network/test");
    } catch {
      return;
    }
    if (r.ok && r.data) this.show(r.data);
  }

  async run() {
    if (this.running) return;
    this.running = true;
    const button = $("nettest-run");
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    $("nettest").dataset.level = "running";
    $("nettest-verdict").textContent = "Testing the network… this takes a few seconds.";
    try {
      const r = await this.admin.call("network/test", { method: "POST" });
      if (r.ok && r.data) this.show(r.data);
      else {
        $("nettest").dataset.level = "fail";
        $("nettest-verdict").textContent = `The test could not run: ${problemText(r, "network test failed")}`;
      }
      $("nettest").scrollIntoView({ block: "nearest" });
    } catch (e) {
      if (!(e instanceof AdminSessionError)) throw e;
    } finally {
      this.running = false;
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  }

  show(t) {
    const v = t.verdict || {};
    $("nettest").dataset.level = v.level || "none";
    $("nettest-verdict").textContent = v.text || "No verdict.";
    const at = t.time ? new Date(t.time) : null;
    $("nettest-time").textContent = at && !isNaN(at)
      ? `Tested ${at.toLocaleString()}${t.durationMs ? `, in ${(t.durationMs / 1000).toFixed(1)} s` : ""}.`
      : "";
    $("nettest-checks").replaceChildren(
      ...(t.checks || []).map((c) =>
        h("li", { class: "nettest-check", dataset: { ok: String(Boolean(c.ok)) } },
          h("span", { class: "nettest-mark", "aria-hidden": "true" }, c.ok ? "✓" : "✗"),
          h("span", { class: "nettest-what" }, `${(c.kind || "").toUpperCase()} over ${(c.transport || "").toUpperCase()}`),
          h("span", { class: "nettest-url" }, c.url || ""),
          h("span", { class: "nettest-result" },
            c.ok
              ? [c.rttMs ? `${Math.round(c.rttMs)} ms` : "", c.relay ? `relay ${c.relay}` : "", c.reflexive ? `seen as ${c.reflexive}` : ""].filter(Boolean).join(", ") || "OK"
              : failureText(c))),
      ),
    );
    const b = t.bandwidth;
    $("nettest-bandwidth").textContent = b
      ? b.error
        ? `Bandwidth probe failed: ${b.error}`
        : `Bandwidth probe through ${b.url} (${b.transport}): ${Math.round(b.receivedKbps)} of ${Math.round(b.targetKbps)} kbit/s arrived, ${b.lossPercent.toFixed(1)}% lost.`
      : "";
  }
}

function failureText(c) {
  const what = {
    unreachable: "unreachable",
    timeout: "no answer",
    auth_refused: "user name or credential refused",
    tls_error: "TLS failed",
    unsupported: "not supported",
  }[c.failure] || c.failure || "failed";
  return c.error ? `${what}: ${c.error}` : what;
}

// ---- display sleep ------------------------------------------------------------------

// fleetSummary says in one line who manages the room.
// updateSummary is the About pane's line on software updates; the home
// screen stays clean of them.
function updateSummary(u) {
  if (!u) return "";
  if (!u.enabled) return `Off: ${u.disabled || "not configured"}`;
  const slot = u.slot ? ` (slot ${u.slot})` : "";
  const time = (t) => new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  let what = "";
  if (u.deferred === "maintenance-window" && u.nextWindow) {
    what = `; update to ${u.version} scheduled for ${time(u.nextWindow)}`;
  } else if (u.deferred === "meeting") {
    what = `; update to ${u.version} waits for the meeting to end`;
  } else if (["checking", "downloading", "installing", "rebooting", "verifying"].includes(u.state)) {
    const pct = u.length ? ` ${Math.floor((100 * (u.written || 0)) / u.length)}%` : "";
    what = `; updating to ${u.version}: ${u.state}${pct}`;
  } else if (u.reason) {
    what = `; last update: ${u.reason}`;
  }
  return `Running ${u.running}${slot}${what}`;
}

function fleetSummary(f) {
  if (!f) return "";
  if (!f.managed) return "Standalone (no fleet server configured)";
  if (f.revoked) return `Revoked by ${f.server}: factory reset and enroll again`;
  if (!f.enrolled) return `Not enrolled in ${f.server}`;
  const seen = f.lastCheckIn ? `last check-in ${new Date(f.lastCheckIn).toLocaleString()}` : "no check-in yet";
  const trouble = f.lastError ? `; last error: ${f.lastError}` : "";
  return `Managed by ${f.server} as ${f.deviceId}, ${seen}${trouble}`;
}

export class DisplaySleep {
  constructor({ onSleep }) {
    this.onSleep = onSleep;
    this.el = $("sleep");
    this.clock = $("sleep-clock");
    this.asleep = false;
    this.timer = 0;
    this.waking = false;
    this.swallowUntil = 0;
    this.lastTouch = -Infinity; // the rest of the waking touch (its click) lands here too
    this.fmt = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
    // Capture, so that the touch that wakes the screen does nothing else.
    for (const type of ["pointerdown", "touchstart", "mousedown", "keydown", "click", "pointerup", "mouseup", "touchend"]) {
      window.addEventListener(type, (e) => this.onInput(e), { capture: true, passive: false });
    }
  }

  // refresh reads the state (on every connection to roomd).
  async refresh() {
    try {
      const r = await request("display");
      if (r.ok && r.data) this.show(r.data);
    } catch {
      // roomd away: the event stream reconnects and calls again
    }
  }

  show(d) {
    if (!d || !d.state) return;
    const asleep = d.state === "asleep";
    if (asleep === this.asleep) return;
    this.asleep = asleep;
    this.el.hidden = !asleep;
    document.body.dataset.display = d.state;
    clearInterval(this.timer);
    if (asleep) {
      if (this.onSleep) this.onSleep();
      this.tick();
      this.timer = setInterval(() => this.tick(), 10000);
      this.el.focus();
    }
  }

  tick() {
    this.clock.textContent = this.fmt.format(new Date());
  }

  onInput(e) {
    const down = e.type === "pointerdown" || e.type === "mousedown" || e.type === "touchstart" || e.type === "keydown";
    // A new touch after the waking one is the screen in use again.
    if (!this.asleep && down) this.swallowUntil = 0;
    if (!this.asleep && performance.now() > this.swallowUntil) {
      // Someone is using the screen: roomd keeps it awake for a while
      // after the last touch, so tell it now and then.
      if ((e.type === "pointerdown" || e.type === "keydown") && performance.now() - this.lastTouch > TOUCH_REPORT_MS) {
        this.lastTouch = performance.now();
        request("display/wake", { method: "POST" }).catch(() => {});
      }
      return;
    }
    e.preventDefault();
    e.stopPropagation();
    if (!this.asleep) return;
    this.swallowUntil = performance.now() + 600;
    if (e.type === "pointerdown" || e.type === "keydown" || e.type === "touchstart") this.wake();
  }

  async wake() {
    if (this.waking) return;
    this.waking = true;
    try {
      const r = await request("display/wake", { method: "POST" });
      if (r.ok && r.data) this.show(r.data);
      else this.show({ state: "awake" });
    } catch {
      // Better a lit screen that cannot reach roomd than a black one.
      this.show({ state: "awake" });
    } finally {
      this.waking = false;
    }
  }
}
