// Atrium kiosk home screen.
//
// Everything the screen shows comes from roomd's event stream
// (GET /api/v1/events): its first event on every connection is the full
// status, so a reconnect needs no separate fetch and cannot miss a change.
// The calendar is the exception: the status does not carry it, so the page
// reads GET /api/v1/calendar on every connection and then follows
// calendar.changed events. Otherwise the only requests the page makes itself
// are the meeting join and leave. All script lives here and in the modules
// it imports, because the Content-Security-Policy forbids inline script. The
// in-call screen is call.js, the agenda agenda.js.

import { Agenda, EndPrompt } from "./agenda.js";
import { CallView } from "./call.js";
import { initAdmin } from "./admin.js";
import { FleetCard } from "./fleet.js";
import { readProblem } from "./problem.js";

const API = "/api/v1";

// Meeting states in which the room is, or is getting, into a meeting: the
// screen offers Leave instead of Join.
const ACTIVE_STATES = new Set(["joining", "connected", "reconnecting"]);

const MEETING_TEXT = {
  idle: "No meeting",
  joining: "Joining…",
  connected: "In a meeting",
  reconnecting: "Reconnecting to the meeting…",
  left: "Meeting ended",
  failed: "Meeting failed",
};

const DEVICE_KINDS = ["camera", "microphone", "speaker"];

const DEVICE_STATUS_TEXT = {
  present: "Ready",
  simulated: "Simulated",
  missing: "Not found",
};

// Reconnect backoff of the event stream. roomd restarts in a second or two
// (an upgrade, a crash under systemd), so start fast; cap low because the
// screen is useless while disconnected and the server is on loopback.
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 10000;

const $ = (id) => document.getElementById(id);

function main() {
  const el = {
    connection: $("connection"),
    connectionText: $("connection-text"),
    room: $("room-name"),
    version: $("version"),
    clock: $("clock"),
    date: $("date"),
    meetingState: $("meeting-state"),
    meetingStateText: $("meeting-state-text"),
    meetingDetail: $("meeting-detail"),
    form: $("join-form"),
    url: $("join-url"),
    join: $("join-button"),
    leave: $("leave-button"),
    inMeeting: $("in-meeting"),
    inMeetingSince: $("in-meeting-since"),
    error: $("join-error"),
    errorTitle: $("join-error-title"),
    errorDetail: $("join-error-detail"),
  };

  startClock(el);
  // The settings dialog (admin.js) and the display-sleep overlay.
  const admin = initAdmin({
    onRoomName: (name) => {
      el.room.textContent = name || "Atrium";
      document.title = name ? `${name} — Atrium` : "Atrium";
    },
  });
  const devices = new DeviceList();
  const fleet = new FleetCard();
  let join = null;
  const call = new CallView({ onLeave: (button) => join.leave(button) });
  const meeting = new MeetingView(el, call);
  join = new JoinForm(el, meeting);
  const agenda = new Agenda({
    onJoin: (button, id) => join.joinCalendar(button, id),
    meetingActive: () => meeting.active,
  });
  const prompt = new EndPrompt({ onLeave: (button) => join.leave(button) });
  const scheduled = new ScheduledMeeting(agenda, prompt);
  meeting.onShow = (m) => {
    scheduled.meetingChanged(m);
    agenda.evaluate(); // Join is not offered while the room is in a meeting
  };
  join.onCalendarJoined = (id) => scheduled.joined(id);
  agenda.onChange((now) => scheduled.check(now));
  const stream = new EventStream({
    onConnection: (state) => showConnection(el, state),
    onStatus: (st) => {
      // Every connection starts with a status: read the calendar, which
      // may have changed while the page was away.
      agenda.fetch();
      admin.display.refresh(); // the status does not carry the display's state
      fleet.refresh();
      el.room.textContent = st.room || "Atrium";
      document.title = st.room ? `${st.room} — Atrium` : "Atrium";
      // "1.2.0" reads better as "v1.2.0"; "dev" or a commit hash do not.
      el.version.textContent = /^\d/.test(st.version || "") ? `v${st.version}` : st.version || "";
      meeting.show(st.meeting);
      call.showCall(st.call);
      devices.replace(st.devices || []);
      // The home screen is up once this frame is drawn. After an update
      // that is part of the health gate that keeps the new image; every
      // (re)connection says it, since each roomd start asks again.
      requestAnimationFrame(() => requestAnimationFrame(reportKioskReady));
    },
    onMeeting: (m) => meeting.show(m),
    onCall: (c) => call.showCall(c),
    onDevice: (type, d) => devices.apply(type, d),
    onCalendar: (cal) => agenda.update(cal),
    onDisplay: (d) => admin.display.show(d),
    onSettings: (v) => admin.settingsChanged(v),
    onFleet: (st) => fleet.show(st),
  });
  agenda.start();
  addEventListener("pagehide", () => agenda.stop());
  stream.connect();
  join.listen();
  enableArrowNavigation();
}

// reportKioskReady tells roomd that the kiosk rendered its home screen. A
// failure is left alone: the next connection says it again.
function reportKioskReady() {
  fetch(`${API}/kiosk/ready`, { method: "POST" }).catch(() => {});
}

// ---- connection ------------------------------------------------------------

function showConnection(el, state) {
  el.connection.dataset.state = state;
  // The page dims what it shows while it cannot vouch for it.
  document.body.dataset.connection = state;
  el.connectionText.textContent = {
    connecting: "Connecting to roomd…",
    connected: "Connected",
    reconnecting: "Reconnecting to roomd…",
  }[state];
}

// EventStream keeps one EventSource open to roomd. On any error it closes the
// source and opens a new one after a backoff, rather than leaving the retry to
// the browser: browsers differ in whether and how fast they retry (an HTTP
// error or a wrong content type ends an EventSource for good), and the screen
// must say it is disconnected either way.
class EventStream {
  constructor(handlers) {
    this.h = handlers;
    this.source = null;
    this.retryMs = RETRY_MIN_MS;
    this.timer = 0;
    // bootId of the roomd that served this page, learned from the first
    // status event. A different one later means roomd restarted, maybe as a
    // new version with a new UI: reload to pick it up.
    this.bootId = null;
  }

  connect() {
    clearTimeout(this.timer);
    const src = new EventSource(`${API}/events`);
    this.source = src;
    src.addEventListener("status", (e) => this.onStatus(e));
    src.addEventListener("meeting.state", (e) => this.dispatch(e, (m) => this.h.onMeeting(m)));
    src.addEventListener("call.stats", (e) => this.dispatch(e, (c) => this.h.onCall(c)));
    src.addEventListener("calendar.changed", (e) => this.dispatch(e, (c) => this.h.onCalendar(c)));
    src.addEventListener("display.changed", (e) => this.dispatch(e, (d) => this.h.onDisplay(d)));
    src.addEventListener("settings.changed", (e) => this.dispatch(e, (v) => this.h.onSettings(v)));
    src.addEventListener("fleet.changed", (e) => this.dispatch(e, (st) => this.h.onFleet(st)));
    for (const type of ["device.added", "device.removed", "device.changed"]) {
      src.addEventListener(type, (e) => this.dispatch(e, (d) => this.h.onDevice(type, d)));
    }
    src.onerror = () => this.onError(src);
  }

  onStatus(e) {
    const st = parseEvent(e);
    if (!st) return;
    if (this.bootId === null) {
      this.bootId = st.bootId;
    } else if (st.bootId && st.bootId !== this.bootId) {
      location.reload();
      return;
    }
    this.retryMs = RETRY_MIN_MS;
    this.h.onConnection("connected");
    this.h.onStatus(st);
  }

  dispatch(e, fn) {
    const data = parseEvent(e);
    if (data) fn(data);
  }

  onError(src) {
    if (src !== this.source) return;
    src.close();
    this.source = null;
    this.h.onConnection(this.bootId === null ? "connecting" : "reconnecting");
    // Jitter, so that several screens of one room do not retry in lockstep.
    const delay = this.retryMs * (0.8 + Math.random() * 0.4);
    this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
    this.timer = setTimeout(() => this.connect(), delay);
  }
}

// parseEvent returns the data of an apiv1.Event carried by an SSE message,
// or null if roomd sent something this page does not understand.
function parseEvent(e) {
  try {
    const ev = JSON.parse(e.data);
    return ev && typeof ev === "object" ? ev.data : null;
  } catch (err) {
    console.warn("atrium: bad event", e.type, err);
    return null;
  }
}

// ---- clock -----------------------------------------------------------------

function startClock(el) {
  const main = el.clock.querySelector(".clock-main");
  const sec = el.clock.querySelector(".clock-sec");
  const period = el.clock.querySelector(".clock-period");
  const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
  const dateFmt = new Intl.DateTimeFormat(undefined, { weekday: "long", day: "numeric", month: "long", year: "numeric" });
  let lastDate = "";

  const tick = () => {
    const now = new Date();
    // Hours and minutes big, seconds small, AM/PM (where the locale uses
    // it) apart: formatToParts keeps the locale's own order and separator.
    let hm = "";
    let dayPeriod = "";
    for (const p of timeFmt.formatToParts(now)) {
      if (p.type === "dayPeriod") dayPeriod = p.value;
      else hm += p.value;
    }
    main.textContent = hm.trim();
    sec.textContent = ":" + String(now.getSeconds()).padStart(2, "0");
    period.textContent = dayPeriod;
    el.clock.dateTime = toLocalISO(now);
    el.clock.setAttribute("aria-label", `Time ${hm.trim()} ${dayPeriod}`.trim());
    const d = dateFmt.format(now);
    if (d !== lastDate) {
      el.date.textContent = d;
      lastDate = d;
    }
    // Aim just past the next full second so the display never lags a
    // second behind, and drift does not accumulate.
    setTimeout(tick, 1000 - now.getMilliseconds() + 5);
  };
  tick();
}

function toLocalISO(d) {
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

// ---- devices ---------------------------------------------------------------

// DeviceList mirrors roomd's devices and shows, per kind, whether the room
// has a real one, only a simulated one, or none.
class DeviceList {
  constructor() {
    this.byId = new Map();
  }

  replace(list) {
    this.byId.clear();
    for (const d of list) this.byId.set(d.id, d);
    this.render();
  }

  apply(type, d) {
    if (!d || !d.id) return;
    if (type === "device.removed") this.byId.delete(d.id);
    else this.byId.set(d.id, d);
    this.render();
  }

  render() {
    for (const kind of DEVICE_KINDS) {
      const tile = $(`device-${kind}`);
      const all = [...this.byId.values()].filter((d) => d.kind === kind);
      // Prefer real hardware: a simulated device next to a real one is a
      // development leftover, not what the room uses.
      const real = all.filter((d) => !d.simulated);
      const shown = real.length ? real : all;
      const status = real.length ? "present" : all.length ? "simulated" : "missing";
      tile.dataset.status = status;
      const statusText = DEVICE_STATUS_TEXT[status];
      tile.querySelector(".device-status").textContent = statusText;
      let name = shown.length ? shown[0].name || shown[0].id : "No device connected";
      if (shown.length > 1) name += ` (+${shown.length - 1} more)`;
      tile.querySelector(".device-name").textContent = name;
    }
  }
}

// ---- meeting ---------------------------------------------------------------

// Meeting states that show the in-call screen: the far end's video is
// worth the whole screen only once media flows; while joining, the home
// screen's card says what is going on and offers Leave.
const CALL_STATES = new Set(["connected", "reconnecting"]);

class MeetingView {
  constructor(el, call) {
    this.el = el;
    this.call = call;
    this.state = null;
    this.onShow = null; // called after every state shown
  }

  get active() {
    return ACTIVE_STATES.has(this.state);
  }

  show(m) {
    if (!m || !m.state) return;
    const el = this.el;
    const wasActive = this.active;
    this.state = m.state;
    el.meetingState.dataset.state = m.state;
    el.meetingStateText.textContent = MEETING_TEXT[m.state] || m.state;

    let detail = "";
    if ((m.state === "failed" || m.state === "left") && m.reason) detail = m.reason;
    else if (this.active) detail = [m.provider, m.url].filter(Boolean).join(" · ");
    el.meetingDetail.textContent = detail;
    el.meetingDetail.hidden = !detail;

    const active = this.active;
    const focused = document.activeElement;
    el.form.hidden = active;
    el.inMeeting.hidden = !active;
    el.leave.hidden = !active;
    el.inMeetingSince.textContent = active ? sinceText(m.since) : "";
    // When the form and the Leave button swap places, move a TV remote's
    // focus along instead of dropping it on the hidden control.
    if (active !== wasActive) {
      if (active && el.form.contains(focused)) el.leave.focus();
      else if (!active && focused === el.leave) el.url.focus();
    }

    const inCall = CALL_STATES.has(m.state);
    const wasInCall = this.call.active;
    const callFocused = $("call").contains(document.activeElement);
    if (inCall) this.call.enter();
    else this.call.exit();
    this.call.setReconnecting(m.state === "reconnecting");
    // The same for the screen swap: focus follows to what is visible.
    if (inCall && !wasInCall) $("layout-button").focus();
    else if (!inCall && wasInCall && callFocused) (active ? el.leave : el.url).focus();
    if (this.onShow) this.onShow(m);
  }
}

// ScheduledMeeting knows which meeting of the agenda the room is in, so that
// the call screen can say when it was scheduled to end. That is the one the
// page joined from the agenda, the one roomd names (calendarId, when it
// joined by itself), or else the one meeting under way that the provider
// the room is using can join.
class ScheduledMeeting {
  constructor(agenda, prompt) {
    this.agenda = agenda;
    this.prompt = prompt;
    this.pendingId = null; // joined from the agenda, not yet connected
    this.meeting = null; // a copy: roomd drops a meeting from the agenda once over
    this.state = null;
    this.provider = "";
  }

  joined(id) {
    // A join that already failed or ended leaves nothing to remember.
    if (!ACTIVE_STATES.has(this.state)) return;
    this.pendingId = id;
    this.check(Date.now());
  }

  meetingChanged(m) {
    this.state = m.state;
    this.provider = m.provider || "";
    if (!ACTIVE_STATES.has(m.state)) {
      this.pendingId = null;
      this.meeting = null;
      this.prompt.dismiss();
      return;
    }
    if (m.calendarId) this.pendingId = m.calendarId;
    this.check(Date.now());
  }

  // resolve finds the meeting the room is in, once connected: the page may
  // have been loaded during the meeting, before it had the agenda.
  resolve(now) {
    if (this.meeting && (!this.pendingId || this.meeting.id === this.pendingId)) return;
    if (this.pendingId) {
      this.adopt(this.pendingId);
      return;
    }
    const under = this.agenda
      .current(now)
      .filter((c) => c.joinable && (!this.provider || c.provider === this.provider));
    if (under.length === 1) this.adopt(under[0].id);
  }

  adopt(id) {
    const m = this.agenda.meeting(id);
    if (m) this.meeting = { ...m };
    else if (!this.meeting || this.meeting.id !== id) this.meeting = null;
  }

  // check runs after every re-evaluation of the agenda.
  check(now) {
    if (!CALL_STATES.has(this.state)) return;
    this.resolve(now);
    if (!this.meeting) return;
    // The agenda may have moved the end (the meeting was extended).
    const fresh = this.agenda.meeting(this.meeting.id);
    if (fresh) this.meeting = { ...fresh };
    this.prompt.check(this.meeting, now);
  }
}

// sinceText says when the meeting entered its state, in the kiosk's local
// time, or nothing when roomd did not say.
function sinceText(since) {
  const t = since ? new Date(since) : null;
  if (!t || isNaN(t) || t.getFullYear() < 2000) return "";
  return "Since " + t.toLocaleTimeString(undefined, { hour: "numeric", minute: "2-digit" });
}

// ---- join and leave ---------------------------------------------------------

class JoinForm {
  constructor(el, meeting) {
    this.el = el;
    this.meeting = meeting;
    this.busy = false;
    this.onCalendarJoined = null; // called with the id of a meeting joined from the agenda
  }

  listen() {
    // A submit event covers the Join button, Enter in the field and a
    // remote's OK key alike.
    this.el.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.join();
    });
    this.el.leave.addEventListener("click", () => this.leave());
  }

  async join() {
    if (this.busy) return;
    this.clearError();
    // The URL is checked by roomd, not here: one set of rules, and its
    // problem details say exactly what is wrong.
    const url = this.el.url.value.trim();
    await this.request(this.el.join, "meeting/join", { url }, "Could not join the meeting");
  }

  // joinCalendar joins a meeting of the agenda: roomd knows its link.
  async joinCalendar(button, id) {
    if (this.busy) return;
    this.clearError();
    const ok = await this.request(button, "calendar/join", { id }, "Could not join the meeting");
    if (ok && this.onCalendarJoined) this.onCalendarJoined(id);
  }

  // leave is the home screen's Leave button, or the in-call screen's.
  async leave(button = this.el.leave) {
    if (this.busy) return;
    this.clearError();
    await this.request(button, "meeting/leave", null, "Could not leave the meeting");
  }

  async request(button, path, body, fallbackTitle) {
    this.busy = true;
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    try {
      const init = { method: "POST", headers: { Accept: "application/json, application/problem+json" } };
      if (body !== null) {
        init.headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(body);
      }
      let resp;
      try {
        resp = await fetch(`${API}/${path}`, init);
      } catch {
        this.showError(fallbackTitle, "roomd cannot be reached. Check that it is running, then try again.");
        return false;
      }
      if (resp.ok) {
        const m = await resp.json().catch(() => null);
        if (m) this.meeting.show(m);
        return true;
      }
      const p = await readProblem(resp);
      const title = p.title || fallbackTitle;
      this.showError(title, tidyDetail(title, p.detail) || `roomd answered HTTP ${resp.status}.`);
      return false;
    } finally {
      this.busy = false;
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  }

  showError(title, detail) {
    this.el.errorTitle.textContent = title;
    this.el.errorDetail.textContent = detail;
    this.el.error.hidden = false;
  }

  clearError() {
    this.el.error.hidden = true;
    this.el.errorTitle.textContent = "";
    this.el.errorDetail.textContent = "";
  }
}


// tidyDetail drops the title from the front of a problem's detail: roomd's
// details are Go errors that often start with it ("no provider for this URL:
// no meeting provider can join …"), and a screen read from across the room
// should say it once.
function tidyDetail(title, detail) {
  if (!title || !detail) return detail || "";
  const prefix = title.toLowerCase() + ":";
  if (!detail.toLowerCase().startsWith(prefix)) return detail;
  const rest = detail.slice(prefix.length).trim();
  return rest ? rest.charAt(0).toUpperCase() + rest.slice(1) : detail;
}

// ---- remote control ----------------------------------------------------------

// enableArrowNavigation lets a TV remote's arrow keys move focus between the
// controls, since a remote has no Tab key. Left and right stay with the text
// field while it has focus, so the caret can still move.
function enableArrowNavigation() {
  document.addEventListener("keydown", (e) => {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    const step = { ArrowDown: 1, ArrowRight: 1, ArrowUp: -1, ArrowLeft: -1 }[e.key];
    if (!step) return;
    const active = document.activeElement;
    const inText = active && active.tagName === "INPUT";
    if (inText && (e.key === "ArrowLeft" || e.key === "ArrowRight")) return;
    const focusable = [...document.querySelectorAll("input, button")].filter(
      (n) => !n.disabled && n.offsetParent !== null,
    );
    if (!focusable.length) return;
    const i = focusable.indexOf(active);
    const next = i < 0 ? focusable[0] : focusable[(i + step + focusable.length) % focusable.length];
    next.focus();
    e.preventDefault();
  });
}

main();
