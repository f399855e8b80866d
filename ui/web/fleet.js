// The first-setup card of a room its fleet manages: the room asks for the
// activation code from the IT department's console and enrolls with it
// (POST /fleet/enroll). roomd decides whether the kiosk may (canEnroll:
// a fleet server is configured, the room is not enrolled, and no admin PIN
// guards it yet); the card shows only then.

import { readProblem } from "./problem.js";

const API = "/api/v1";

const $ = (id) => document.getElementById(id);

export class FleetCard {
  constructor() {
    this.el = {
      card: $("enroll-card"),
      form: $("enroll-form"),
      code: $("enroll-code"),
      button: $("enroll-button"),
      later: $("enroll-later"),
      server: $("enroll-server"),
      error: $("enroll-error"),
      errorTitle: $("enroll-error-title"),
      errorDetail: $("enroll-error-detail"),
    };
    this.busy = false;
    // "Later" puts the card away until the page loads again (roomd
    // restarts, or the room is set up from roomctl or the kiosk's settings).
    this.deferred = false;
    this.el.later.addEventListener("click", () => {
      this.deferred = true;
      this.show(this.last);
    });
    this.el.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.enroll();
    });
  }

  async refresh() {
    try {
      const resp = await fetch(`${API}/fleet`, { cache: "no-store" });
      if (resp.ok) this.show(await resp.json());
    } catch {
      // The event stream's reconnect brings a fresh status and another try.
    }
  }

  show(st) {
    this.last = st;
    const wanted = !!(st && st.managed && !st.enrolled && st.canEnroll) && !this.deferred;
    this.el.card.hidden = !wanted;
    // While it shows, the card takes the join card's place.
    if (wanted) document.body.dataset.setup = "enroll";
    else delete document.body.dataset.setup;
    if (wanted) this.el.server.textContent = `Fleet server: ${st.server}`;
  }

  async enroll() {
    const code = this.el.code.value.trim();
    if (this.busy) return;
    if (!code) {
      this.showError("Activation code required", "Type the code the fleet console shows.");
      this.el.code.focus();
      return;
    }
    this.busy = true;
    this.el.button.disabled = true;
    this.el.button.querySelector(".button-label").textContent = "Enrolling…";
    this.el.error.hidden = true;
    try {
      const resp = await fetch(`${API}/fleet/enroll`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ code }),
      });
      if (resp.ok) {
        this.el.code.value = "";
        this.show(await resp.json());
        return;
      }
      const p = await readProblem(resp);
      let detail = p.detail || `roomd answered ${resp.status}.`;
      const wait = Number(resp.headers.get("Retry-After"));
      if (resp.status === 429 && wait > 0) detail += ` Try again in ${Math.ceil(wait / 60)} min.`;
      this.showError(p.title || "Enrollment failed", detail);
    } catch {
      this.showError("Enrollment failed", "roomd could not be reached.");
    } finally {
      this.busy = false;
      this.el.button.disabled = false;
      this.el.button.querySelector(".button-label").textContent = "Enroll";
    }
  }

  showError(title, detail) {
    this.el.errorTitle.textContent = title;
    this.el.errorDetail.textContent = detail;
    this.el.error.hidden = false;
  }
}

