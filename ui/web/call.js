// Atrium kiosk in-call screen: the remote video, its layout and the call
// controls.
//
// The kiosk's WebKitGTK has WebCodecs' VideoDecoder but no RTCPeerConnection,
// so roomd receives the meeting's media itself and forwards each remote video
// track, still encoded, over a loopback WebSocket (GET /api/v1/media/video;
// the protocol is documented in roomd's daemon/videofeed package). This page
// subscribes to the tracks it shows, decodes them with VideoDecoder and draws
// each one on its tile's canvas. Names, speaking flags and connection quality
// come from the call status on the event stream (status and call.stats).

const FEED_PATH = "/api/v1/media/video";

// Binary frame header (videofeed protocol version 1).
const HEADER_SIZE = 16;
const PROTOCOL_VERSION = 1;
const FLAG_KEYFRAME = 0x01;

// WebCodecs codec strings for the feed's codecs. roomd negotiates H.264
// constrained baseline and sends Annex B, so no description is configured.
const CODECS = { VP8: "vp8", H264: "avc1.42E01F" };

// A decoder with this many chunks waiting is not keeping up: rather than show
// ever older video, start again from a fresh keyframe.
const MAX_DECODE_QUEUE = 12;

// A delta frame arriving this long after the previous frame of its track
// follows a gap (the page was starved, or the feed stalled): its references
// may be gone, so wait for a keyframe instead of decoding garbage.
const GAP_MS = 1500;

// A track that showed nothing this long after its decoder last started asks
// again for a keyframe: the first request may have been lost with a stream
// that was not flowing yet.
const FIRST_FRAME_RETRY_MS = 3000;

// The active speaker keeps the stage for at least this long, so that two
// people talking over each other do not make the view flap.
const SPEAKER_HOLD_MS = 1500;

// Grid: at most 3x3 tiles on a page; more participants page.
const PAGE_SIZE = 9;

// Feed reconnect backoff, as for the event stream: roomd is on loopback.
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 5000;

const $ = (id) => document.getElementById(id);

// codecSupport caches VideoDecoder.isConfigSupported per feed codec: WebKit
// answers through GStreamer, so H.264 depends on the plugins installed.
const codecSupport = new Map();
function supported(codec) {
  if (!codecSupport.has(codec)) {
    const config = CODECS[codec] && { codec: CODECS[codec], optimizeForLatency: true };
    codecSupport.set(
      codec,
      !config || typeof VideoDecoder === "undefined"
        ? Promise.resolve(false)
        : VideoDecoder.isConfigSupported(config).then((r) => Boolean(r.supported), () => false),
    );
  }
  return codecSupport.get(codec);
}

// VideoFeed is the WebSocket to roomd's video feed. It reconnects while the
// call lasts and hands track lists and frames to its owner.
class VideoFeed {
  constructor(handlers) {
    this.h = handlers;
    this.ws = null;
    this.timer = 0;
    this.retryMs = RETRY_MIN_MS;
    this.wanted = false;
    this.subs = null; // track numbers last subscribed; null: none sent yet
  }

  open() {
    this.wanted = true;
    if (this.ws) return;
    clearTimeout(this.timer);
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${location.host}${FEED_PATH}`);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    this.subs = null;
    ws.onmessage = (e) => this.onMessage(e);
    ws.onopen = () => {
      this.retryMs = RETRY_MIN_MS;
      // Until the first subscribe roomd sends every track; say at once
      // which ones this page shows (none yet), so no bandwidth is wasted.
      this.subscribe(this.h.wantedTracks());
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.h.onTracks([]);
      if (!this.wanted) return;
      this.timer = setTimeout(() => this.open(), this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
    };
  }

  close() {
    this.wanted = false;
    clearTimeout(this.timer);
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close(1000, "meeting over");
    this.h.onTracks([]);
  }

  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  // subscribe sends the set of shown tracks when it changed.
  subscribe(tracks) {
    const list = [...tracks].sort((a, b) => a - b);
    if (this.subs && this.subs.join() === list.join()) return;
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    this.subs = list;
    this.send({ type: "subscribe", tracks: list });
  }

  requestKeyframe(n) {
    this.send({ type: "keyframe", track: n });
  }

  onMessage(e) {
    if (typeof e.data === "string") {
      let m;
      try {
        m = JSON.parse(e.data);
      } catch {
        return;
      }
      if (m.type === "tracks") this.h.onTracks(m.tracks || []);
      else if (m.type === "track-added") this.h.onTrackAdded(m);
      else if (m.type === "track-removed") this.h.onTrackRemoved(m.n);
      return; // unknown types are for later versions
    }
    const buf = e.data;
    if (buf.byteLength <= HEADER_SIZE) return;
    const v = new DataView(buf);
    if (v.getUint8(0) !== PROTOCOL_VERSION) return;
    this.h.onFrame(v.getUint16(2), {
      key: (v.getUint8(1) & FLAG_KEYFRAME) !== 0,
      timestamp: Number(v.getBigInt64(4)),
      duration: v.getUint32(12),
      data: new Uint8Array(buf, HEADER_SIZE),
    });
  }
}

// Tile is one remote video track on screen: a canvas, its decoder and the
// participant's name.
class Tile {
  constructor(track, feed) {
    this.track = track;
    this.feed = feed;
    this.decoder = null;
    this.needKey = true;
    this.lastFrameAt = 0; // performance.now() of the last frame received
    this.startedAt = 0;
    this.frames = 0; // frames drawn
    this.keyRequests = 0;
    this.width = 0;
    this.height = 0;
    this.retry = 0;
    this.started = false;
    this.stopped = false;

    this.node = document.createElement("figure");
    this.node.className = "tile";
    this.node.dataset.track = track.n;
    this.node.dataset.state = "waiting";
    this.canvas = document.createElement("canvas");
    this.canvas.className = "tile-video";
    this.canvas.width = 16;
    this.canvas.height = 9;
    this.ctx = this.canvas.getContext("2d");
    this.name = document.createElement("figcaption");
    this.name.className = "tile-name";
    this.note = document.createElement("span");
    this.note.className = "tile-note";
    this.note.textContent = "Waiting for video…";
    this.node.append(this.canvas, this.note, this.name);
  }

  setName(name, speaking) {
    if (this.name.textContent !== name) this.name.textContent = name;
    this.node.classList.toggle("speaking", speaking);
  }

  // start makes a decoder when the tile goes on screen; roomd sends a
  // subscribed track from a keyframe on.
  async start() {
    if (this.started) return;
    this.started = true;
    if (!(await supported(this.track.codec))) {
      this.setState("unsupported", `${this.track.codec} video cannot be shown on this screen`);
      return;
    }
    if (this.stopped) return;
    this.reset(false);
    this.retry = setInterval(() => {
      // Nothing drawn since the decoder (re)started: ask again.
      if (this.decoder && this.node.dataset.state !== "playing" && performance.now() - this.startedAt > FIRST_FRAME_RETRY_MS) {
        this.requestKeyframe();
      }
    }, FIRST_FRAME_RETRY_MS);
  }

  stop() {
    this.stopped = true;
    clearInterval(this.retry);
    this.closeDecoder();
  }

  closeDecoder() {
    const d = this.decoder;
    this.decoder = null;
    if (d && d.state !== "closed") {
      try {
        d.close();
      } catch {
        // already closed by an error
      }
    }
  }

  // reset replaces the decoder (after an error or a stall) and waits for a
  // keyframe, asking roomd for one when the reset is not the first start.
  reset(ask) {
    this.closeDecoder();
    const decoder = new VideoDecoder({
      output: (frame) => this.draw(decoder, frame),
      error: (e) => {
        if (this.decoder !== decoder) return;
        console.warn(`atrium: video track ${this.track.n} decoder error`, e && e.message);
        this.setState("waiting", "Video interrupted…");
        this.reset(true);
      },
    });
    decoder.configure({ codec: CODECS[this.track.codec], optimizeForLatency: true });
    this.decoder = decoder;
    this.needKey = true;
    this.startedAt = performance.now();
    if (ask) this.requestKeyframe();
  }

  requestKeyframe() {
    this.keyRequests++;
    this.startedAt = performance.now();
    this.feed.requestKeyframe(this.track.n);
  }

  push(f) {
    if (!this.decoder) return; // off screen; roomd stops sending soon
    const now = performance.now();
    const gap = this.lastFrameAt && now - this.lastFrameAt > GAP_MS;
    this.lastFrameAt = now;
    if (!f.key && (this.needKey || gap)) {
      if (gap && !this.needKey) {
        this.needKey = true;
        this.requestKeyframe();
      }
      return;
    }
    if (this.decoder.decodeQueueSize > MAX_DECODE_QUEUE) {
      this.reset(true);
      if (!f.key) return;
    }
    this.needKey = false;
    try {
      this.decoder.decode(new EncodedVideoChunk({
        type: f.key ? "key" : "delta",
        timestamp: f.timestamp,
        duration: f.duration || undefined,
        data: f.data,
      }));
    } catch (e) {
      console.warn(`atrium: video track ${this.track.n} decode`, e && e.message);
      this.reset(true);
    }
  }

  draw(decoder, frame) {
    try {
      if (decoder !== this.decoder) return;
      const w = frame.displayWidth;
      const h = frame.displayHeight;
      // The canvas takes the video's own size; CSS scales it to the tile
      // (object-fit: contain), so a resolution change costs no reflow
      // beyond the canvas itself.
      if (this.canvas.width !== w || this.canvas.height !== h) {
        this.canvas.width = w;
        this.canvas.height = h;
      }
      this.ctx.drawImage(frame, 0, 0, w, h);
      this.width = w;
      this.height = h;
      this.frames++;
      this.node.dataset.frames = this.frames;
      if (this.node.dataset.state !== "playing") this.setState("playing", "");
    } finally {
      // Decoders have few output buffers: a frame not closed stalls them.
      frame.close();
    }
  }

  setState(state, note) {
    this.node.dataset.state = state;
    this.note.textContent = note;
  }
}

// CallView is the in-call screen.
export class CallView {
  constructor({ onLeave }) {
    this.el = {
      call: $("call"),
      stage: $("call-stage"),
      tiles: $("tiles"),
      empty: $("call-empty"),
      banner: $("call-banner"),
      layout: $("layout-button"),
      people: $("participants-button"),
      peopleCount: $("participant-count"),
      peoplePanel: $("participants-panel"),
      peopleList: $("participant-list"),
      stats: $("stats-button"),
      statsPanel: $("stats-panel"),
      statsBody: $("stats-body"),
      quality: $("quality"),
      qualityText: $("quality-text"),
      pager: $("pager"),
      pagePrev: $("page-prev"),
      pageNext: $("page-next"),
      pageLabel: $("page-label"),
      leave: $("call-leave-button"),
      mute: $("mute-button"),
      camera: $("camera-button"),
      mutedBadge: $("muted-badge"),
    };
    this.tracks = new Map(); // n → track announcement
    this.tiles = new Map(); // n → Tile
    this.call = null; // the last apiv1.Call
    this.layout = "grid";
    this.page = 0;
    this.speaker = null; // participant id on the stage in speaker view
    this.speakerSince = 0;
    this.prevLoss = null; // {lost, received} totals of the last stats
    this.active = false;
    this.feed = new VideoFeed({
      wantedTracks: () => this.shownTracks().map((t) => t.n),
      onTracks: (list) => this.setTracks(list),
      onTrackAdded: (t) => {
        this.tracks.set(t.n, t);
        this.render();
      },
      onTrackRemoved: (n) => {
        this.tracks.delete(n);
        this.render();
      },
      onFrame: (n, f) => {
        const tile = this.tiles.get(n);
        if (tile) tile.push(f); // frames of a track just dropped are late: ignore
      },
    });

    const el = this.el;
    el.layout.addEventListener("click", () => {
      this.layout = this.layout === "grid" ? "speaker" : "grid";
      this.render();
    });
    el.people.addEventListener("click", () => this.togglePanel(el.peoplePanel, el.people));
    el.stats.addEventListener("click", () => this.togglePanel(el.statsPanel, el.stats));
    el.pagePrev.addEventListener("click", () => this.turnPage(-1));
    el.pageNext.addEventListener("click", () => this.turnPage(1));
    el.leave.addEventListener("click", () => onLeave(el.leave));
    el.mute.addEventListener("click", () =>
      this.setMedia({ microphoneMuted: el.mute.getAttribute("aria-pressed") !== "true" }));
    el.camera.addEventListener("click", () =>
      this.setMedia({ cameraOff: el.camera.getAttribute("aria-pressed") !== "true" }));
    // The stats panel shows the decoders' frame rates: refresh it while open.
    this.statsTimer = 0;
  }

  // enter shows the in-call screen and opens the video feed.
  enter() {
    if (this.active) return;
    this.active = true;
    this.el.call.hidden = false;
    document.body.dataset.view = "call";
    this.feed.open();
    this.render();
  }

  // exit closes the feed and every decoder and hides the in-call screen.
  exit() {
    if (!this.active) return;
    this.active = false;
    this.feed.close();
    this.call = null;
    this.prevLoss = null;
    this.speaker = null;
    for (const panel of [this.el.peoplePanel, this.el.statsPanel]) panel.hidden = true;
    this.el.people.setAttribute("aria-expanded", "false");
    this.el.stats.setAttribute("aria-expanded", "false");
    clearInterval(this.statsTimer);
    this.el.quality.dataset.quality = "unknown";
    this.el.qualityText.textContent = "Checking connection…";
    this.el.call.hidden = true;
    this.showMedia({ microphoneMuted: false, cameraOff: false });
    delete document.body.dataset.view;
  }

  // setReconnecting shows that the meeting's media is interrupted; the video
  // freezes on its last frame meanwhile.
  setReconnecting(on) {
    this.el.banner.hidden = !on;
    this.el.banner.textContent = on ? "Connection lost. Reconnecting to the meeting…" : "";
  }

  // setMedia flips the meeting's privacy switches on roomd and shows what
  // roomd answers (the truth, not what was asked).
  async setMedia(change) {
    try {
      const resp = await fetch("/api/v1/meeting/media", {
        method: "PUT",
        headers: { "Content-Type": "application/json", Accept: "application/json, application/problem+json" },
        body: JSON.stringify(change),
      });
      if (!resp.ok) throw new Error(`roomd answered ${resp.status}`);
      this.showMedia(await resp.json());
    } catch (err) {
      this.el.banner.hidden = false;
      this.el.banner.textContent = `Could not change the microphone or camera: ${err.message}`;
    }
  }

  // showMedia shows the switches: from setMedia's answer or the call status.
  showMedia({ microphoneMuted, cameraOff }) {
    const el = this.el;
    el.mute.setAttribute("aria-pressed", String(!!microphoneMuted));
    el.mute.querySelector(".button-label").textContent = microphoneMuted ? "Unmute" : "Mute";
    el.mutedBadge.hidden = !microphoneMuted;
    el.camera.setAttribute("aria-pressed", String(!!cameraOff));
    el.camera.querySelector(".button-label").textContent = cameraOff ? "Start camera" : "Stop camera";
  }

  // showCall takes the call status (status.call or a call.stats event).
  showCall(call) {
    if (!call) return;
    this.call = call;
    this.showMedia(call);
    this.pickSpeaker();
    this.showQuality();
    this.render();
    if (!this.el.peoplePanel.hidden) this.renderPeople();
    if (!this.el.statsPanel.hidden) this.renderStats();
  }

  setTracks(list) {
    this.tracks = new Map(list.map((t) => [t.n, t]));
    this.render();
  }

  togglePanel(panel, button) {
    panel.hidden = !panel.hidden;
    button.setAttribute("aria-expanded", String(!panel.hidden));
    if (panel === this.el.peoplePanel && !panel.hidden) this.renderPeople();
    if (panel === this.el.statsPanel) {
      clearInterval(this.statsTimer);
      if (!panel.hidden) {
        this.renderStats();
        this.statsTimer = setInterval(() => this.renderStats(), 1000);
      }
    }
  }

  turnPage(step) {
    this.page += step;
    this.render();
  }

  // participantOf maps a feed track to the call status's participant: the
  // status lists received tracks per peer connection with their participant
  // id, and track ids are unique within a peer.
  participantOf(track) {
    const call = this.call;
    if (!call) return null;
    for (const peer of call.peers || []) {
      if (peer.label !== track.peer) continue;
      const r = (peer.received || []).find((r) => r.id === track.id);
      if (r && r.participant) return (call.participants || []).find((p) => p.id === r.participant) || null;
    }
    return null;
  }

  // pickSpeaker follows the status's speaking flag, holding the current
  // speaker on stage for SPEAKER_HOLD_MS after they stop.
  pickSpeaker() {
    const parts = (this.call && this.call.participants) || [];
    const now = performance.now();
    const speaking = parts.find((p) => p.speaking);
    const current = parts.find((p) => p.id === this.speaker);
    if (!current) {
      // Nobody on stage (or they left): the one speaking, else anyone.
      this.speaker = speaking ? speaking.id : parts.length ? parts[0].id : null;
      this.speakerSince = now;
    } else if (speaking && speaking.id !== this.speaker && now - this.speakerSince >= SPEAKER_HOLD_MS) {
      this.speaker = speaking.id;
      this.speakerSince = now;
    } else if (current.speaking) {
      this.speakerSince = now; // the hold counts from when they stop
    }
  }

  // shownTracks is what the current layout and page put on screen, in order.
  shownTracks() {
    const all = [...this.tracks.values()].sort((a, b) => a.n - b.n);
    if (this.layout === "speaker") {
      const mine = all.filter((t) => {
        const p = this.participantOf(t);
        return p && p.id === this.speaker;
      });
      return (mine.length ? mine : all).slice(0, 1);
    }
    const pages = Math.max(1, Math.ceil(all.length / PAGE_SIZE));
    this.page = Math.min(Math.max(this.page, 0), pages - 1);
    return all.slice(this.page * PAGE_SIZE, (this.page + 1) * PAGE_SIZE);
  }

  render() {
    const el = this.el;
    const shown = this.active ? this.shownTracks() : [];
    const keep = new Set(shown.map((t) => t.n));
    for (const [n, tile] of this.tiles) {
      if (!keep.has(n) || this.tracks.get(n) !== tile.track) {
        tile.stop();
        tile.node.remove();
        this.tiles.delete(n);
      }
    }
    shown.forEach((t, i) => {
      let tile = this.tiles.get(t.n);
      if (!tile) {
        tile = new Tile(t, this.feed);
        this.tiles.set(t.n, tile);
        tile.start();
      }
      const p = this.participantOf(t);
      tile.setName(p ? p.display || "Guest" : "Guest", Boolean(p && p.speaking));
      // Keep DOM order equal to the layout's order, moving only what moved.
      if (el.tiles.children[i] !== tile.node) el.tiles.insertBefore(tile.node, el.tiles.children[i] || null);
    });
    el.tiles.dataset.count = String(shown.length);
    el.stage.dataset.layout = this.layout;
    el.empty.hidden = shown.length > 0;
    if (this.active) this.feed.subscribe(keep);

    const speakerView = this.layout === "speaker";
    el.layout.setAttribute("aria-pressed", String(speakerView));
    el.layout.querySelector(".button-label").textContent = speakerView ? "Grid view" : "Speaker view";
    const pages = Math.ceil(this.tracks.size / PAGE_SIZE);
    el.pager.hidden = speakerView || pages <= 1;
    el.pageLabel.textContent = `Page ${this.page + 1} of ${pages}`;
    el.pagePrev.disabled = this.page === 0;
    el.pageNext.disabled = this.page >= pages - 1;
    const n = this.call ? (this.call.participants || []).length : 0;
    el.peopleCount.textContent = n ? String(n) : "";
  }

  renderPeople() {
    const list = this.el.peopleList;
    list.replaceChildren();
    const parts = (this.call && this.call.participants) || [];
    if (!parts.length) {
      const li = document.createElement("li");
      li.className = "participant participant-none";
      li.textContent = "Nobody else is here yet";
      list.append(li);
      return;
    }
    for (const p of parts) {
      const li = document.createElement("li");
      li.className = "participant";
      li.classList.toggle("speaking", Boolean(p.speaking));
      const name = document.createElement("span");
      name.className = "participant-name";
      name.textContent = p.display || "Guest";
      const media = document.createElement("span");
      media.className = "participant-media";
      media.textContent = [p.audio ? "Audio" : "No audio", p.video ? "Video" : "No video"].join(" · ");
      li.append(name, media);
      list.append(li);
    }
  }

  // showQuality grades the connection from the received packets lost since
  // the last stats and the worst round-trip time.
  showQuality() {
    let lost = 0;
    let received = 0;
    let rtt = 0;
    for (const peer of this.call.peers || []) {
      lost += Math.max(0, peer.packetsLost || 0);
      rtt = Math.max(rtt, peer.rttMs || 0);
      for (const r of peer.received || []) received += r.packetsReceived || 0;
    }
    const prev = this.prevLoss;
    this.prevLoss = { lost, received };
    let loss = null;
    if (prev) {
      const dLost = lost - prev.lost;
      const dRecv = received - prev.received;
      if (dLost >= 0 && dRecv >= 0 && dLost + dRecv > 0) loss = dLost / (dLost + dRecv);
    } else if (lost + received > 0) {
      loss = lost / (lost + received);
    }
    let grade = "unknown";
    if (loss !== null) {
      if (loss < 0.02 && rtt < 200) grade = "good";
      else if (loss < 0.08 && rtt < 500) grade = "fair";
      else grade = "poor";
    }
    this.el.quality.dataset.quality = grade;
    const label = document.createElement("span");
    label.className = "quality-grade";
    label.textContent = { good: "Good connection", fair: "Fair connection", poor: "Poor connection", unknown: "Checking connection…" }[grade];
    const detail = document.createElement("span");
    detail.className = "quality-detail";
    detail.textContent = loss === null ? "" : `${(loss * 100).toFixed(1)}% loss · ${Math.round(rtt)} ms round trip`;
    this.el.qualityText.replaceChildren(label, detail);
  }

  renderStats() {
    const rows = [];
    const kbps = (b) => `${Math.round((b || 0) / 1000)} kbit/s`;
    for (const p of (this.call && this.call.peers) || []) {
      rows.push([`${p.label}`, `${p.state}${p.path ? " · " + p.path : ""}`]);
      rows.push(["  in / out", `${kbps(p.bitrateIn)} / ${kbps(p.bitrateOut)} (target ${kbps(p.targetBitrate)})`]);
      rows.push(["  loss · RTT · jitter", `${p.packetsLost} packets · ${Math.round(p.rttMs)} ms · ${Math.round(p.jitterMs)} ms`]);
      if (p.encoder) rows.push(["  encoder", p.encoder]);
    }
    for (const tile of this.tiles.values()) {
      const now = performance.now();
      const fps = tile.fpsAt ? ((tile.frames - tile.fpsFrames) * 1000) / (now - tile.fpsAt) : 0;
      tile.fpsAt = now;
      tile.fpsFrames = tile.frames;
      rows.push([`video ${tile.name.textContent}`, `${tile.track.codec} ${tile.width}×${tile.height} · ${fps.toFixed(0)} fps · ${tile.keyRequests} keyframe requests`]);
    }
    if (!rows.length) rows.push(["", "No statistics yet"]);
    const body = this.el.statsBody;
    body.replaceChildren();
    for (const [k, v] of rows) {
      const row = document.createElement("div");
      row.className = "stats-row";
      const a = document.createElement("span");
      a.className = "stats-key";
      a.textContent = k;
      const b = document.createElement("span");
      b.className = "stats-value";
      b.textContent = v;
      row.append(a, b);
      body.append(row);
    }
  }
}
