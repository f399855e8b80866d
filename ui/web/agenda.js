// Atrium kiosk agenda: the room's meetings of the next days on the home
// screen, a one-touch Join for the meeting about to start, and on the call
// screen a gentle prompt when the meeting the room is in was scheduled to
// end.
//
// roomd reads the calendar (GET /api/v1/calendar, then calendar.changed
// events) and keeps its last good copy, so the agenda shows even when the
// calendar server cannot be reached; the answer carries no meeting links,
// which may hold passcodes: Join names the meeting by id and roomd joins it.
// Which meetings are upcoming, about to start, under way or over is decided
// here, against the page's clock, so the screen moves on by itself between
// calendar refreshes.

const API = "/api/v1";

// Join is offered from this long before a meeting's start when roomd did
// not say (it sends joinFrom).
const JOIN_EARLY_MS = 5 * 60 * 1000;

// The agenda is re-evaluated this often, and also exactly when the next
// meeting crosses a boundary (Join appears, it starts, it ends).
const TICK_MS = 15 * 1000;

// A boundary timer further away than this is not set: the regular tick
// catches it, and browsers clamp long timeouts anyway.
const MAX_BOUNDARY_MS = 60 * 60 * 1000;

const $ = (id) => document.getElementById(id);

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: "short", day: "numeric", month: "short" });
const weekdayFmt = new Intl.DateTimeFormat(undefined, { weekday: "long" });

const STATE_TEXT = {
  upcoming: "",
  soon: "Starting soon",
  now: "Now",
  ended: "Ended",
  cancelled: "Cancelled",
};

// meetingState says where a meeting stands at time now (milliseconds).
export function meetingState(m, now) {
  if (m.cancelled) return "cancelled";
  if (now >= m.endMs) return "ended";
  if (now >= m.startMs) return "now";
  if (now >= m.joinFromMs) return "soon";
  return "upcoming";
}

// canJoin says whether Join is offered for a meeting at time now.
function canJoin(m, now) {
  return m.joinable && !m.cancelled && now >= m.joinFromMs && now < m.endMs;
}

// parseMeeting checks one meeting of roomd's answer and adds its times in
// milliseconds, or returns null for one the page cannot place.
function parseMeeting(raw) {
  if (!raw || typeof raw !== "object" || !raw.id) return null;
  const startMs = Date.parse(raw.start);
  const endMs = Date.parse(raw.end);
  if (isNaN(startMs) || isNaN(endMs)) return null;
  let joinFromMs = Date.parse(raw.joinFrom);
  if (isNaN(joinFromMs)) joinFromMs = startMs - JOIN_EARLY_MS;
  return {
    id: String(raw.id),
    title: raw.title || "Untitled meeting",
    provider: raw.provider || "",
    reason: raw.reason || "",
    joinable: Boolean(raw.joinable),
    cancelled: Boolean(raw.cancelled),
    allDay: Boolean(raw.allDay),
    private: Boolean(raw.private),
    startMs,
    endMs,
    joinFromMs,
  };
}

function startOfDay(ms) {
  const d = new Date(ms);
  d.setHours(0, 0, 0, 0);
  return d.getTime();
}

// dayLabel is "" for today, "Tomorrow", a weekday within the week, or a date.
function dayLabel(ms, now) {
  const days = Math.round((startOfDay(ms) - startOfDay(now)) / 86400000);
  if (days <= 0) return "";
  if (days === 1) return "Tomorrow";
  if (days < 7) return weekdayFmt.format(ms);
  return dayFmt.format(ms);
}

function localISO(ms) {
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

function timeElement(ms, text) {
  const t = document.createElement("time");
  t.dateTime = localISO(ms);
  t.textContent = text;
  return t;
}

export function formatTime(ms) {
  return timeFmt.format(ms);
}

// Agenda renders roomd's calendar into #agenda and keeps the meetings'
// states current. onJoin(button, id) asks roomd to join a meeting;
// meetingActive() says whether the room is in, or getting into, a meeting
// (Join is not offered then).
export class Agenda {
  constructor({ onJoin, meetingActive }) {
    this.onJoin = onJoin;
    this.meetingActive = meetingActive;
    this.el = {
      section: $("agenda-section"),
      list: $("agenda"),
      note: $("agenda-note"),
      empty: $("agenda-empty"),
    };
    this.cal = null; // the last calendar answer
    this.meetings = []; // parsed, in roomd's order (by start)
    this.items = new Map(); // id → {li, parts}
    this.tickTimer = 0;
    this.boundaryTimer = 0;
    this.fetchSeq = 0; // bumped by every calendar update, to drop stale fetches
    this.listeners = new Set(); // called after every re-evaluation
    this.el.list.addEventListener("click", (e) => {
      const button = e.target.closest("button.join-meeting");
      if (button && this.el.list.contains(button)) this.onJoin(button, button.dataset.id);
    });
  }

  // start begins the regular re-evaluation; stop ends it and any boundary
  // timer.
  start() {
    this.stop();
    this.tickTimer = setInterval(() => this.evaluate(), TICK_MS);
    this.evaluate();
  }

  stop() {
    clearInterval(this.tickTimer);
    clearTimeout(this.boundaryTimer);
    this.tickTimer = 0;
    this.boundaryTimer = 0;
  }

  onChange(fn) {
    this.listeners.add(fn);
  }

  // fetch reads the calendar from roomd: at start and on every reconnect of
  // the event stream, whose first status does not carry it. A
  // calendar.changed event that arrives meanwhile is newer and wins.
  async fetch() {
    const seq = ++this.fetchSeq;
    let cal;
    try {
      const resp = await fetch(`${API}/calendar`, { headers: { Accept: "application/json" } });
      if (resp.status === 404) {
        cal = { configured: false, meetings: [] }; // a roomd without calendars
      } else if (!resp.ok) {
        throw new Error(`roomd answered HTTP ${resp.status}`);
      } else {
        cal = await resp.json();
      }
    } catch (err) {
      // Keep showing what the page has: roomd is on loopback, so this is a
      // restart, and the event stream's reconnect fetches again.
      console.warn("atrium: reading the calendar:", err.message);
      return;
    }
    if (seq === this.fetchSeq) this.update(cal);
  }

  // update takes a calendar answer: from fetch or a calendar.changed event.
  update(cal) {
    if (!cal || typeof cal !== "object") return;
    this.fetchSeq++;
    this.cal = cal;
    this.meetings = (Array.isArray(cal.meetings) ? cal.meetings : []).map(parseMeeting).filter(Boolean);
    this.render();
  }

  // meeting returns the meeting with this id, or undefined.
  meeting(id) {
    return this.meetings.find((m) => m.id === id);
  }

  // current returns the meetings under way, joinable or not.
  current(now = Date.now()) {
    return this.meetings.filter((m) => meetingState(m, now) === "now");
  }

  // render rebuilds the list; evaluate then sets the states.
  render() {
    const list = this.el.list;
    const focusedId = list.contains(document.activeElement) ? document.activeElement.dataset.id : null;
    list.replaceChildren();
    this.items.clear();
    for (const m of this.meetings) {
      const item = this.makeItem(m);
      this.items.set(m.id, item);
      list.append(item.li);
    }
    this.evaluate();
    // A calendar refresh must not throw a remote's focus off the Join button.
    if (focusedId) {
      const again = list.querySelector(`button.join-meeting[data-id="${CSS.escape(focusedId)}"]`);
      if (again && !again.hidden) again.focus();
    }
  }

  makeItem(m) {
    const li = document.createElement("li");
    li.className = "meeting";
    li.dataset.id = m.id;
    if (m.allDay) li.dataset.allDay = "true";
    if (m.private) li.dataset.private = "true";

    const when = document.createElement("p");
    when.className = "meeting-when";
    const day = document.createElement("span");
    day.className = "meeting-day";
    const range = document.createElement("span");
    range.className = "meeting-time";
    if (m.allDay) {
      range.textContent = "All day";
    } else {
      range.append(timeElement(m.startMs, formatTime(m.startMs)), "–", timeElement(m.endMs, formatTime(m.endMs)));
    }
    const badge = document.createElement("span");
    badge.className = "meeting-badge";
    when.append(day, range, badge);

    const title = document.createElement("p");
    title.className = "meeting-title";
    title.textContent = m.title;

    const how = document.createElement("p");
    how.className = "meeting-how";
    if (m.joinable) how.textContent = providerName(m.provider);
    else how.textContent = capitalize(m.reason) || "No meeting link";
    if (!m.joinable) how.classList.add("meeting-how-no");
    // The badge already says so.
    how.hidden = m.cancelled;

    const body = document.createElement("div");
    body.className = "meeting-body";
    body.append(when, title, how);
    li.append(body);

    let button = null;
    if (m.joinable && !m.cancelled) {
      button = document.createElement("button");
      button.type = "button";
      button.className = "button button-primary join-meeting";
      button.dataset.id = m.id;
      button.setAttribute("aria-label", `Join ${m.title}`);
      button.innerHTML =
        '<svg class="button-icon" viewBox="0 0 24 24" aria-hidden="true"><path d="M15 10.5V7a1 1 0 0 0-1-1H4a1 1 0 0 0-1 1v10a1 1 0 0 0 1 1h10a1 1 0 0 0 1-1v-3.5l5 4v-11z" fill="currentColor"/></svg>';
      const label = document.createElement("span");
      label.className = "button-label";
      label.textContent = "Join";
      button.append(label);
      button.hidden = true;
      li.append(button);
    }
    return { li, day, badge, button };
  }

  // evaluate sets every meeting's state against the clock, picks the
  // meeting shown big at the top, shows Join where it applies and the
  // notes, and arms a timer for the next boundary.
  evaluate() {
    const now = Date.now();
    const cal = this.cal;
    const el = this.el;
    const active = this.meetingActive();
    let featured = null;
    let todayLeft = 0;
    const endOfToday = startOfDay(now) + 86400000;
    for (const m of this.meetings) {
      const item = this.items.get(m.id);
      if (!item) continue;
      const state = meetingState(m, now);
      const li = item.li;
      if (li.dataset.state !== state) li.dataset.state = state;
      // A meeting over is gone from a room's screen: roomd drops it at its
      // next refresh, the page does not wait for that.
      li.hidden = state === "ended";
      item.day.textContent = dayLabel(m.startMs, now);
      item.badge.textContent = STATE_TEXT[state];
      if (item.button) item.button.hidden = active || !canJoin(m, now);
      if (state !== "ended" && state !== "cancelled") {
        if (m.startMs < endOfToday) todayLeft++;
        // The meeting under way, or else the next one, is the big card at
        // the top; all-day events are the day's background, not its next
        // meeting.
        if (!featured && !m.allDay) featured = m;
      }
    }
    // The featured meeting leads the list; the rest keep roomd's order.
    const featuredLi = featured ? this.items.get(featured.id).li : null;
    const want = [];
    for (const item of this.items.values()) {
      item.li.classList.toggle("featured", item.li === featuredLi);
      if (item.li !== featuredLi) want.push(item.li);
    }
    if (featuredLi) want.unshift(featuredLi);
    if (want.some((li, i) => el.list.children[i] !== li)) {
      const focused = document.activeElement;
      el.list.replaceChildren(...want);
      if (focused && el.list.contains(focused)) focused.focus();
    }

    // The section's state: not set up, no copy yet, or a list.
    let state;
    if (!cal) state = "loading";
    else if (!cal.configured) state = "unconfigured";
    else if (!cal.updatedAt && this.meetings.length === 0 && (cal.error || cal.stale)) state = "error";
    else state = "ready";
    el.section.dataset.state = state;
    // The home screen makes room for the agenda when there is one to show.
    document.body.dataset.agenda = state;

    let note = "";
    if (state === "unconfigured") note = "No calendar is set up for this room.";
    else if (state === "error") note = "The calendar cannot be read" + (cal.error ? `: ${cal.error}` : ".");
    else if (state === "ready" && cal.stale) {
      const at = Date.parse(cal.updatedAt);
      note = isNaN(at)
        ? "The calendar server cannot be reached; the agenda may be out of date."
        : `Showing the calendar from ${sinceLabel(at, now)}; the calendar server cannot be reached`;
    }
    el.note.textContent = note;
    el.note.hidden = !note;
    el.note.dataset.kind = state === "ready" && cal.stale ? "stale" : state;
    el.note.title = state === "ready" && cal.stale && cal.error ? cal.error : "";

    el.empty.hidden = !(state === "ready" && todayLeft === 0);
    el.empty.textContent = this.meetings.some((m) => meetingState(m, now) !== "ended" && meetingState(m, now) !== "cancelled")
      ? "No more meetings today"
      : "No more meetings today or in the next days";

    this.armBoundary(now);
    for (const fn of this.listeners) fn(now);
  }

  // armBoundary sets a timer for the next moment a meeting changes state,
  // so that Join appears on the minute and not up to a tick late.
  armBoundary(now) {
    clearTimeout(this.boundaryTimer);
    this.boundaryTimer = 0;
    let next = Infinity;
    for (const m of this.meetings) {
      for (const t of [m.joinFromMs, m.startMs, m.endMs]) if (t > now && t < next) next = t;
    }
    const wait = next - now;
    if (wait > MAX_BOUNDARY_MS) return;
    // Just past the boundary, so that the comparison with the clock holds.
    this.boundaryTimer = setTimeout(() => this.evaluate(), wait + 50);
  }
}

// providerName turns roomd's provider id into what the room reads.
function providerName(p) {
  if (!p) return "Meeting link";
  return p.charAt(0).toUpperCase() + p.slice(1);
}

// capitalize starts roomd's reasons, which are Go error texts, with a
// capital, as the rest of the screen's sentences do.
function capitalize(s) {
  return s ? s.charAt(0).toUpperCase() + s.slice(1) : "";
}

// sinceLabel is the time of a calendar copy, with its day when not today.
function sinceLabel(ms, now) {
  const day = dayLabel(ms, now);
  if (startOfDay(ms) < startOfDay(now)) return `${dayFmt.format(ms)} ${formatTime(ms)}`;
  return day ? `${day} ${formatTime(ms)}` : formatTime(ms);
}

// EndPrompt is the call screen's gentle note that the meeting the room is in
// was scheduled to end: Leave, or Stay which dismisses it. It shows once
// per meeting.
export class EndPrompt {
  constructor({ onLeave }) {
    this.el = {
      box: $("end-prompt"),
      text: $("end-prompt-text"),
      leave: $("end-prompt-leave"),
      stay: $("end-prompt-stay"),
    };
    this.shownFor = new Set(); // meeting ids already prompted for
    this.id = null;
    this.el.stay.addEventListener("click", () => this.dismiss());
    this.el.leave.addEventListener("click", () => onLeave(this.el.leave));
  }

  // check shows the prompt when meeting m, which the room is in, has ended.
  check(m, now) {
    if (!m || m.cancelled || now < m.endMs || this.shownFor.has(m.id)) return;
    this.shownFor.add(m.id);
    this.id = m.id;
    this.el.text.textContent = `This meeting was scheduled to end at ${formatTime(m.endMs)}.`;
    this.el.box.hidden = false;
    // A remote's focus goes to the prompt, on Stay: the harmless choice.
    this.el.stay.focus();
  }

  dismiss() {
    const wasFocused = this.el.box.contains(document.activeElement);
    this.el.box.hidden = true;
    this.id = null;
    if (wasFocused) {
      const fallback = $("layout-button");
      if (fallback && fallback.offsetParent !== null) fallback.focus();
    }
  }

  get shown() {
    return !this.el.box.hidden;
  }
}
