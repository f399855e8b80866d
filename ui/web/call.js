// Atrium kiosk in-call screen: the remote video, its layout and the call
// controls.
//
// The kiosk's WebKitGTK has WebCodecs' VideoDecoder but no RTCPeerConnection,
// so roomd receives the meeting's media itself and forwards each remote video
// track, still encoded, over a loopback WebSocket (GET /api/v1/media/video;
// the protocol is documented in roomd's daemon/videofeed package), and the
// room's own video the same way for the self-view. This page tells roomd
// which tracks it shows and at what size (a "view" message: roomd then
// receives only those, at that size), decodes them with VideoDecoder and
// draws each one on its tile's canvas. The feed also brings each
// participant's audio level four times a second, from which the page picks
// the active speaker. Connection quality comes from the call status on the
// event stream (status and call.stats).

const FEED_PATH = "/api/v1/media/video";

// Binary frame header (videofeed protocol version 1).
const HEADER_SIZE = 16;
const PROTOCOL_VERSION = 1;
const FLAG_KEYFRAME = 0x01;

// WebCodecs codec strings for the feed's codecs. roomd negotiates H.264
// constrained baseline and sends Annex B, so no description is configured.
const CODECS = { VP8: "vp8", H264: "avc1.42E01F" };

// A decoder with this many chunks waiting is not keeping up: rather than show
// ever older video, the tile skips to the next keyframe the sender sends by
// itself (and flushes the backlog there). It asks for one only when none
// came within KEYFRAME_WAIT_MS, and then at most that often: every request
// costs the far end a keyframe (a burst of bits that makes the stream worse
// for everyone), while many senders send none unasked.
const MAX_DECODE_QUEUE = 8;
const KEYFRAME_WAIT_MS = 1000;

// The self-view is drawn at most this often: it is a small mirror, and on a
// kiosk without a GPU every draw costs the remote video CPU time.
const SELF_VIEW_FPS = 15;

// With "videostats" in the page's query (the kiosk benchmark loads it so,
// with roomkiosk's -console), each tile logs its decode and draw timings to
// the console every STATS_LOG_MS as one "atrium-videostats {json}" line.
const STATS_LOG = new URLSearchParams(location.search).has("videostats");
const STATS_LOG_MS = 5000;

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

// Active speaker from audio levels: someone is speaking above SPEAKING_DBOV;
// a new speaker takes the stage after leading the current one by
// SPEAKER_LEAD_DB for SPEAKER_HOLD_MS; silence keeps the last speaker.
const SPEAKING_DBOV = -50;
const SPEAKER_LEAD_DB = 6;

// Levels older than this are stale (an older roomd sends none): the call
// status's speaking flag is used instead.
const LEVELS_STALE_MS = 2000;

// Grid: at most 3x3 tiles on a page; more participants page.
const PAGE_SIZE = 9;

// Screen-share layout: the content takes the stage, at most this many
// cameras beside it.
const FILMSTRIP_SIZE = 4;

// Sizes roomd is asked for, in device pixels: a tile's size is rounded up
// to one of them, so that small layout changes ask for nothing new.
const VIEW_LADDER = [
  [320, 180],
  [640, 360],
  [960, 540],
  [1280, 720],
  [1920, 1080],
];

// Speaker volume changes are sent at most this often while the slider moves.
const VOLUME_SEND_MS = 150;

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
    this.lastView = null; // the view message last sent, as JSON; null: none yet
  }

  open() {
    this.wanted = true;
    if (this.ws) return;
    clearTimeout(this.timer);
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${location.host}${FEED_PATH}`);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    this.lastView = null;
    ws.onmessage = (e) => this.onMessage(e);
    ws.onopen = () => {
      this.retryMs = RETRY_MIN_MS;
      // Until the first view roomd sends every track; say at once which
      // ones this page shows (none yet), so no bandwidth is wasted.
      this.view(this.h.view());
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

  // view sends the shown tracks and their sizes ([{n, width, height}])
  // when they changed; it returns whether it sent.
  view(tracks) {
    const list = [...tracks].sort((a, b) => a.n - b.n);
    const json = JSON.stringify(list);
    if (this.lastView === json) return false;
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.lastView = json;
    this.send({ type: "view", tracks: list });
    return true;
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
      else if (m.type === "levels") this.h.onLevels(m.levels || {});
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

// TileStats counts what happened to a tile's frames since the last log line,
// and how long the steps took (ms, from performance.now()).
class TileStats {
  constructor() {
    this.since = performance.now();
    this.received = 0; // chunks from the feed
    this.skipped = 0; // chunks not decoded while waiting for a keyframe
    this.decoded = 0; // frames out of the decoder
    this.drawn = 0; // frames drawn on the canvas
    this.superseded = 0; // decoded frames closed undrawn: a newer one came first
    this.flushes = 0; // decoder backlogs dropped at a keyframe
    this.resets = 0; // decoders replaced after an error
    this.queueMax = 0; // largest decodeQueueSize seen at a decode
    this.decodeMs = []; // decode() to output, per frame
    this.drawMs = []; // drawImage, per frame
    this.waitMs = []; // output to draw, per drawn frame
    this.arrivalMaxMs = 0; // longest gap between chunks
    this.videoW = 0; // the last decoded frame's size
    this.videoH = 0;
  }

  line(track, keyRequests, canvas) {
    const now = performance.now();
    const secs = (now - this.since) / 1000;
    const pct = (a) => {
      if (!a.length) return null;
      const s = [...a].sort((x, y) => x - y);
      const at = (q) => Math.round(s[Math.min(s.length - 1, Math.floor(q * s.length))] * 10) / 10;
      return { p50: at(0.5), p90: at(0.9), max: at(1) };
    };
    return "atrium-videostats " + JSON.stringify({
      track,
      secs: Math.round(secs * 10) / 10,
      receivedFps: Math.round((this.received / secs) * 10) / 10,
      decodedFps: Math.round((this.decoded / secs) * 10) / 10,
      drawnFps: Math.round((this.drawn / secs) * 10) / 10,
      skipped: this.skipped,
      superseded: this.superseded,
      flushes: this.flushes,
      resets: this.resets,
      keyRequests,
      queueMax: this.queueMax,
      decodeMs: pct(this.decodeMs),
      drawMs: pct(this.drawMs),
      waitMs: pct(this.waitMs),
      arrivalMaxMs: Math.round(this.arrivalMaxMs),
      canvas: `${canvas.width}x${canvas.height}`,
      video: `${this.videoW}x${this.videoH}`,
    });
  }
}

// Tile is one remote video track on screen: a canvas, its decoder and the
// participant's name.
//
// Decoding and drawing are decoupled: the decoder's output is kept (the
// newest frame only, older ones are closed at once) and drawn at the next
// animation frame. A screen that paints slower than the video arrives then
// shows fewer frames, each of them current, instead of queueing old ones;
// and the decoder gets its output buffers back at once. Every VideoFrame is
// closed exactly once: when drawn, when a newer one replaces it, or when
// the decoder goes.
class Tile {
  constructor(track, feed) {
    this.track = track;
    this.feed = feed;
    this.decoder = null;
    this.needKey = true;
    this.lastFrameAt = 0; // performance.now() of the last frame received
    this.startedAt = 0;
    this.keyWaitSince = 0; // when the tile began skipping to a keyframe on its own
    this.frames = 0; // frames drawn
    this.keyRequests = 0;
    this.width = 0;
    this.height = 0;
    this.retry = 0;
    this.started = false;
    this.stopped = false;
    this.pending = null; // the newest decoded frame, not drawn yet
    this.pendingAt = 0;
    this.maxFps = 0; // draws per second at most; 0: every animation frame
    this.paintedAt = 0; // requestAnimationFrame time of the last draw
    this.paintId = 0; // requestAnimationFrame id while a paint is due
    this.decodeStart = new Map(); // chunk timestamp → performance.now() at decode()
    this.stats = new TileStats();
    this.statsTimer = 0;
    this.boxW = 0; // the canvas element's size on screen, in device pixels
    this.boxH = 0;

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
    // The canvas's pixels follow its size on screen (see paint): observed
    // rather than measured at each frame, which could force a layout.
    this.resizer = new ResizeObserver((entries) => {
      for (const e of entries) {
        const dpr = devicePixelRatio || 1;
        const box = e.devicePixelContentBoxSize && e.devicePixelContentBoxSize[0];
        this.boxW = box ? box.inlineSize : Math.round(e.contentRect.width * dpr);
        this.boxH = box ? box.blockSize : Math.round(e.contentRect.height * dpr);
      }
    });
    this.resizer.observe(this.canvas);
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
    if (STATS_LOG) {
      this.statsTimer = setInterval(() => {
        console.log(this.stats.line(this.track.n, this.keyRequests, this.canvas));
        this.stats = new TileStats();
      }, STATS_LOG_MS);
    }
  }

  stop() {
    this.stopped = true;
    clearInterval(this.retry);
    clearInterval(this.statsTimer);
    this.resizer.disconnect();
    this.closeDecoder();
  }

  closeDecoder() {
    const d = this.decoder;
    this.decoder = null;
    this.decodeStart.clear();
    this.dropPending();
    if (d && d.state !== "closed") {
      try {
        d.close();
      } catch {
        // already closed by an error
      }
    }
  }

  dropPending() {
    if (this.paintId) cancelAnimationFrame(this.paintId);
    this.paintId = 0;
    if (this.pending) this.pending.close();
    this.pending = null;
  }

  // reset replaces the decoder (after an error) and waits for a keyframe,
  // asking roomd for one when the reset is not the first start.
  reset(ask) {
    this.closeDecoder();
    const decoder = new VideoDecoder({
      output: (frame) => this.decoded(decoder, frame),
      error: (e) => {
        if (this.decoder !== decoder) return;
        console.warn(`atrium: video track ${this.track.n} decoder error`, e && e.message);
        this.stats.resets++;
        this.setState("waiting", "Video interrupted…");
        this.reset(true);
      },
    });
    decoder.configure(this.config());
    this.decoder = decoder;
    this.needKey = true;
    this.keyWaitSince = 0;
    this.startedAt = performance.now();
    if (ask) this.requestKeyframe();
  }

  config() {
    return { codec: CODECS[this.track.codec], optimizeForLatency: true };
  }

  requestKeyframe() {
    this.keyRequests++;
    this.startedAt = performance.now();
    this.feed.requestKeyframe(this.track.n);
  }

  push(f) {
    if (!this.decoder) return; // off screen; roomd stops sending soon
    const st = this.stats;
    st.received++;
    const now = performance.now();
    const since = this.lastFrameAt ? now - this.lastFrameAt : 0;
    if (since > st.arrivalMaxMs) st.arrivalMaxMs = since;
    const gap = since > GAP_MS;
    this.lastFrameAt = now;
    if (!f.key && gap && !this.needKey) {
      // The references may be gone: only a keyframe helps, ask at once.
      this.needKey = true;
      this.keyWaitSince = 0;
      this.requestKeyframe();
    }
    const queue = this.decoder.decodeQueueSize;
    if (queue > st.queueMax) st.queueMax = queue;
    if (!f.key && !this.needKey && queue > MAX_DECODE_QUEUE) {
      // Behind: skip to the sender's next keyframe rather than show ever
      // older video. The decoder is fine, so nothing is asked for yet.
      this.needKey = true;
      this.keyWaitSince = now;
    }
    if (!f.key && this.needKey) {
      st.skipped++;
      if (this.keyWaitSince && now - this.keyWaitSince > KEYFRAME_WAIT_MS) {
        this.keyWaitSince = now;
        this.requestKeyframe();
      }
      return;
    }
    if (f.key && queue > 0 && this.needKey) {
      // A backlog in front of a keyframe is video nobody will want: drop
      // it (reset keeps the decoder, and its configuration must follow).
      st.flushes++;
      this.decoder.reset();
      this.decodeStart.clear();
      this.decoder.configure(this.config());
    }
    this.needKey = false;
    this.keyWaitSince = 0;
    if (STATS_LOG) {
      if (this.decodeStart.size > 64) this.decodeStart.clear(); // outputs lost
      this.decodeStart.set(f.timestamp, now);
    }
    try {
      this.decoder.decode(new EncodedVideoChunk({
        type: f.key ? "key" : "delta",
        timestamp: f.timestamp,
        duration: f.duration || undefined,
        data: f.data,
      }));
    } catch (e) {
      console.warn(`atrium: video track ${this.track.n} decode`, e && e.message);
      this.stats.resets++;
      this.reset(true);
    }
  }

  // decoded keeps the decoder's newest frame for the next animation frame.
  decoded(decoder, frame) {
    if (decoder !== this.decoder) {
      frame.close();
      return;
    }
    const now = performance.now();
    const st = this.stats;
    st.decoded++;
    st.videoW = frame.displayWidth;
    st.videoH = frame.displayHeight;
    if (STATS_LOG) {
      const t0 = this.decodeStart.get(frame.timestamp);
      if (t0 !== undefined) {
        st.decodeMs.push(now - t0);
        this.decodeStart.delete(frame.timestamp);
      }
    }
    if (this.pending) {
      st.superseded++;
      this.pending.close();
    }
    this.pending = frame;
    this.pendingAt = now;
    if (!this.paintId) this.paintId = requestAnimationFrame((t) => this.paint(t));
  }

  paint(t) {
    this.paintId = 0;
    // Half a display frame of slack, so that 15 of 60 Hz is every 4th.
    if (this.maxFps && t - this.paintedAt < 1000 / this.maxFps - 8) {
      this.paintId = requestAnimationFrame((t) => this.paint(t));
      return;
    }
    this.paintedAt = t;
    const frame = this.pending;
    this.pending = null;
    if (!frame) return;
    try {
      const w = frame.displayWidth;
      const h = frame.displayHeight;
      // The canvas takes the picture's size on screen in device pixels
      // (the video's aspect, fitted into the element's box), so that the
      // scaling happens once, in drawImage, and painting the page is a
      // plain copy. CSS (object-fit: contain) then shows it 1:1. Before
      // the box is known, the video's own size.
      let cw = w;
      let ch = h;
      if (this.boxW > 0 && this.boxH > 0) {
        const scale = Math.min(this.boxW / w, this.boxH / h);
        cw = Math.max(1, Math.round(w * scale));
        ch = Math.max(1, Math.round(h * scale));
      }
      if (this.canvas.width !== cw || this.canvas.height !== ch) {
        this.canvas.width = cw;
        this.canvas.height = ch;
      }
      const t0 = performance.now();
      this.ctx.drawImage(frame, 0, 0, cw, ch);
      if (STATS_LOG) {
        const st = this.stats;
        st.drawMs.push(performance.now() - t0);
        st.waitMs.push(t0 - this.pendingAt);
      }
      this.stats.drawn++;
      this.width = w;
      this.height = h;
      this.frames++;
      this.node.dataset.frames = this.frames;
      if (this.node.dataset.state !== "playing") this.setState("playing", "");
    } finally {
      frame.close();
    }
  }

  setState(state, note) {
    this.node.dataset.state = state;
    this.note.textContent = note;
  }
}

// SpeakerPicker chooses the active speaker from audio levels, with
// hysteresis so that the stage does not flap: someone speaking (above
// SPEAKING_DBOV) takes an empty stage at once; a new speaker takes it from
// the current one only after leading them by SPEAKER_LEAD_DB for
// SPEAKER_HOLD_MS without a break; silence keeps the last speaker, and a
// speaker who left (no level any more) gives the stage to the loudest.
export class SpeakerPicker {
  constructor({ floorDb = SPEAKING_DBOV, leadDb = SPEAKER_LEAD_DB, holdMs = SPEAKER_HOLD_MS } = {}) {
    this.floorDb = floorDb;
    this.leadDb = leadDb;
    this.holdMs = holdMs;
    this.current = null; // participant id on stage
    this.candidate = null; // who leads, since candidateSince
    this.candidateSince = 0;
  }

  // update takes {participant: dBov} at time now (ms) and returns the
  // speaker (null until someone spoke).
  update(levels, now) {
    let loudest = null;
    let loudestDb = -Infinity;
    for (const [id, db] of Object.entries(levels)) {
      if (typeof db === "number" && db > this.floorDb && db > loudestDb) {
        loudest = id;
        loudestDb = db;
      }
    }
    const present = this.current !== null && Object.hasOwn(levels, this.current);
    if (loudest === null) {
      this.candidate = null; // silence: the stage stays
      return this.current;
    }
    if (!present || loudest === this.current) {
      if (!present) this.current = loudest;
      this.candidate = null;
      return this.current;
    }
    const currentDb = typeof levels[this.current] === "number" ? levels[this.current] : -Infinity;
    if (loudestDb < currentDb + this.leadDb) {
      this.candidate = null; // no clear lead: the lead must be unbroken
      return this.current;
    }
    if (this.candidate !== loudest) {
      this.candidate = loudest;
      this.candidateSince = now;
    } else if (now - this.candidateSince >= this.holdMs) {
      this.current = loudest;
      this.candidate = null;
    }
    return this.current;
  }

  reset() {
    this.current = null;
    this.candidate = null;
  }
}

// viewSize rounds a tile of w×h device pixels up to the ladder, for the
// 16:9 picture it shows at most (object-fit: contain).
export function viewSize(w, h) {
  const picture = Math.min(w, (h * 16) / 9);
  for (const [lw, lh] of VIEW_LADDER) {
    if (lw >= picture) return { width: lw, height: lh };
  }
  const [lw, lh] = VIEW_LADDER[VIEW_LADDER.length - 1];
  return { width: lw, height: lh };
}

// arrangeTracks lays the feed's tracks out: a "screen" track takes the
// stage with at most FILMSTRIP_SIZE cameras beside it (the speaker's first);
// else the speaker view shows the speaker's camera (or the first), and the
// grid pages of PAGE_SIZE cameras in track order. The "self" track goes to
// the self-view. It returns the layout, the tracks on the stage in order,
// the self track (or null), the number of pages and the page shown (page
// clamped to them). speakerOf maps a track to its participant id.
export function arrangeTracks(tracks, { layout, page, speaker, speakerOf }) {
  const all = [...tracks].sort((a, b) => a.n - b.n);
  const self = all.find((t) => t.kind === "self") || null;
  const remote = all.filter((t) => t.kind !== "self");
  const screens = remote.filter((t) => t.kind === "screen");
  const grid = remote.filter((t) => t.kind !== "screen");
  // The speaker's camera first, where the layout has a first.
  let cams = grid;
  const first = speaker === null ? -1 : grid.findIndex((t) => speakerOf(t) === speaker);
  if (first > 0) cams = [grid[first], ...grid.slice(0, first), ...grid.slice(first + 1)];
  if (screens.length) {
    return { layout: "screen", shown: [screens[0], ...cams.slice(0, FILMSTRIP_SIZE)], self, pages: 1, page };
  }
  if (layout === "speaker") return { layout: "speaker", shown: cams.slice(0, 1), self, pages: 1, page };
  const pages = Math.max(1, Math.ceil(grid.length / PAGE_SIZE));
  page = Math.min(Math.max(page, 0), pages - 1);
  return { layout: "grid", shown: grid.slice(page * PAGE_SIZE, (page + 1) * PAGE_SIZE), self, pages, page };
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
      self: $("self-view"),
      selfSlot: $("self-view-video"),
      selfToggle: $("self-view-toggle"),
      volume: $("volume"),
      volumeButton: $("volume-button"),
      volumePopover: $("volume-popover"),
      volumeSlider: $("volume-slider"),
      volumeValue: $("volume-value"),
    };
    this.tracks = new Map(); // n → track announcement
    this.tiles = new Map(); // n → Tile (remote)
    this.selfTile = null; // the self-view's Tile
    this.selfTrack = null; // the "self" track, when roomd sends one
    this.selfHidden = false; // the person hid the self-view
    this.cameraOff = false;
    this.call = null; // the last apiv1.Call
    this.layout = "grid"; // what the person chose: grid or speaker
    this.page = 0;
    this.picker = new SpeakerPicker();
    this.speaker = null; // participant id on the stage in speaker view
    this.speakerSince = 0;
    this.levels = {};
    this.levelsAt = 0; // performance.now() of the last levels message
    this.prevLoss = null; // {lost, received} totals of the last stats
    this.active = false;
    this.viewTimer = 0;
    this.speakerDevice = null; // {id, min, max} of the speaker's volume
    this.volumeFor = null; // the speaker the call status named, if it did
    this.volumeTimer = 0;
    this.volumeSentAt = 0;
    this.feed = new VideoFeed({
      view: () => this.measureView(),
      onTracks: (list) => this.setTracks(list),
      onTrackAdded: (t) => {
        this.tracks.set(t.n, t);
        // Answer with a view even if it did not change: until then roomd
        // leaves the new track as it is rather than pause it.
        this.feed.lastView = null;
        this.render();
      },
      onTrackRemoved: (n) => {
        this.tracks.delete(n);
        this.render();
      },
      onFrame: (n, f) => {
        const tile = this.tiles.get(n) || (this.selfTile && this.selfTile.track.n === n ? this.selfTile : null);
        if (tile) tile.push(f); // frames of a track just dropped are late: ignore
      },
      onLevels: (levels) => this.onLevels(levels),
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
    el.selfToggle.addEventListener("click", () => {
      this.selfHidden = !this.selfHidden;
      this.render();
    });
    el.volumeButton.addEventListener("click", () => this.toggleVolume(el.volumePopover.hidden));
    el.volumeSlider.addEventListener("input", () => this.volumeInput());
    el.volumeSlider.addEventListener("change", () => this.sendVolume());
    el.volumeSlider.addEventListener("keydown", (e) => {
      if (e.key === "Escape" || e.key === "Enter") {
        this.toggleVolume(false);
        el.volumeButton.focus();
        e.preventDefault();
      }
    });
    // Tiles change size with the window (and the panels): ask roomd for
    // the new sizes.
    addEventListener("resize", () => this.scheduleView());
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
    this.loadVolume();
  }

  // exit closes the feed and every decoder and hides the in-call screen.
  exit() {
    if (!this.active) return;
    this.active = false;
    this.feed.close();
    this.call = null;
    this.prevLoss = null;
    this.speaker = null;
    this.picker.reset();
    this.levels = {};
    this.levelsAt = 0;
    this.selfHidden = false; // each meeting starts with the self-view shown
    for (const k of ["levelCount", "levelIds", "view", "speaker"]) delete this.el.stage.dataset[k];
    for (const panel of [this.el.peoplePanel, this.el.statsPanel]) panel.hidden = true;
    this.el.people.setAttribute("aria-expanded", "false");
    this.el.stats.setAttribute("aria-expanded", "false");
    clearInterval(this.statsTimer);
    clearTimeout(this.volumeTimer);
    this.toggleVolume(false);
    this.el.quality.dataset.quality = "unknown";
    this.el.qualityText.textContent = "Checking connection…";
    this.el.call.hidden = true;
    this.showMedia({ microphoneMuted: false, cameraOff: false });
    this.render();
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
    if (this.cameraOff !== !!cameraOff) {
      this.cameraOff = !!cameraOff;
      this.renderSelf();
    }
  }

  // showCall takes the call status (status.call or a call.stats event).
  showCall(call) {
    if (!call) return;
    this.call = call;
    // A roomd that names the call's speaker: its volume, not a guess.
    if (this.active && call.speaker && this.volumeFor !== call.speaker) this.loadVolume(call.speaker);
    this.showMedia(call);
    if (!this.levelsFresh()) this.pickSpeaker();
    this.showQuality();
    this.render();
    if (!this.el.peoplePanel.hidden) this.renderPeople();
    if (!this.el.statsPanel.hidden) this.renderStats();
  }

  setTracks(list) {
    this.tracks = new Map(list.map((t) => [t.n, t]));
    this.render();
  }

  // onLevels takes a levels message: the speaker choice, and the speaking
  // frames on the tiles.
  onLevels(levels) {
    this.levels = levels;
    this.levelsAt = performance.now();
    // For a look from outside (and the tests): who is heard, how often.
    const stage = this.el.stage;
    stage.dataset.levelCount = String(Number(stage.dataset.levelCount || 0) + 1);
    stage.dataset.levelIds = Object.keys(levels).sort().join(" ");
    const speaker = this.picker.update(levels, this.levelsAt);
    if (speaker !== this.speaker) {
      this.speaker = speaker;
      this.speakerSince = this.levelsAt;
      this.render();
    } else {
      this.renderNames();
    }
  }

  levelsFresh() {
    return this.levelsAt > 0 && performance.now() - this.levelsAt < LEVELS_STALE_MS;
  }

  // speaking says whether a participant is heard now.
  speaking(id) {
    if (this.levelsFresh()) return typeof this.levels[id] === "number" && this.levels[id] > SPEAKING_DBOV;
    const p = this.participant(id);
    return Boolean(p && p.speaking);
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
    this.scheduleView(); // the stage changed size
  }

  turnPage(step) {
    this.page += step;
    this.render();
  }

  participant(id) {
    const parts = (this.call && this.call.participants) || [];
    return parts.find((p) => p.id === id) || null;
  }

  // participantOf maps a feed track to the call status's participant: by
  // the track's participant id, or else (an older roomd) through the
  // status's received tracks, whose ids are unique within a peer.
  participantOf(track) {
    const call = this.call;
    if (!call) return null;
    const byId = this.participant(track.participant);
    if (byId) return byId;
    for (const peer of call.peers || []) {
      if (peer.label !== track.peer) continue;
      const r = (peer.received || []).find((r) => r.id === track.id);
      if (r && r.participant) return this.participant(r.participant);
    }
    return null;
  }

  // speakerOf is the participant id a track belongs to, for the speaker
  // choice and the speaking frame.
  speakerOf(track) {
    const p = this.participantOf(track);
    return p ? p.id : track.participant;
  }

  // nameOf is what a tile says.
  nameOf(track) {
    const p = this.participantOf(track);
    const name = track.display || (p && p.display) || "Guest";
    return track.kind === "screen" ? `${name}'s screen` : name;
  }

  // pickSpeaker follows the status's speaking flag (when roomd sends no
  // levels), holding the current speaker on stage for SPEAKER_HOLD_MS after
  // they stop.
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

  // arrange is what the screen shows: the layout, the tracks on the stage
  // in order (the first is the big one in the speaker and screen layouts),
  // and the self track.
  arrange() {
    const a = arrangeTracks([...this.tracks.values()], {
      layout: this.layout,
      page: this.page,
      speaker: this.speaker,
      speakerOf: (t) => this.speakerOf(t),
    });
    this.page = a.page;
    return a;
  }

  render() {
    const el = this.el;
    const a = this.active ? this.arrange() : { layout: this.layout, shown: [], self: null, pages: 1 };
    const keep = new Set(a.shown.map((t) => t.n));
    for (const [n, tile] of this.tiles) {
      if (!keep.has(n) || this.tracks.get(n) !== tile.track) {
        tile.stop();
        tile.node.remove();
        this.tiles.delete(n);
      }
    }
    a.shown.forEach((t, i) => {
      let tile = this.tiles.get(t.n);
      if (!tile) {
        tile = new Tile(t, this.feed);
        tile.node.dataset.kind = t.kind || "camera";
        tile.node.dataset.participant = t.participant || "";
        this.tiles.set(t.n, tile);
        tile.start();
      }
      tile.node.classList.toggle("tile-main", a.layout === "screen" && i === 0);
      // Keep DOM order equal to the layout's order, moving only what moved.
      if (el.tiles.children[i] !== tile.node) el.tiles.insertBefore(tile.node, el.tiles.children[i] || null);
    });
    this.selfTrack = a.self;
    this.renderSelf();
    this.renderNames();
    el.tiles.dataset.count = String(a.shown.length);
    el.stage.dataset.layout = a.layout;
    el.empty.hidden = a.shown.length > 0;

    const speakerView = this.layout === "speaker";
    el.layout.setAttribute("aria-pressed", String(speakerView));
    el.layout.querySelector(".button-label").textContent = speakerView ? "Grid view" : "Speaker view";
    el.pager.hidden = a.layout !== "grid" || a.pages <= 1;
    el.pageLabel.textContent = `Page ${this.page + 1} of ${a.pages}`;
    el.pagePrev.disabled = this.page === 0;
    el.pageNext.disabled = this.page >= a.pages - 1;
    const n = this.call ? (this.call.participants || []).length : 0;
    el.peopleCount.textContent = n ? String(n) : "";
    this.scheduleView();
  }

  // renderSelf shows the self-view: the room's own video, mirrored as a
  // mirror is, in a corner; "Camera off" while it is; hidden on request.
  renderSelf() {
    const el = this.el;
    const track = this.active ? this.selfTrack : null;
    const show = this.active && !this.selfHidden && (track !== null || this.cameraOff);
    if (this.selfTile && (!show || !track || this.selfTile.track !== track)) {
      this.selfTile.stop();
      this.selfTile.node.remove();
      this.selfTile = null;
    }
    if (show && track && !this.selfTile) {
      this.selfTile = new Tile(track, this.feed);
      this.selfTile.maxFps = SELF_VIEW_FPS;
      this.selfTile.node.classList.add("tile-self");
      this.selfTile.setName("You", false);
      el.selfSlot.append(this.selfTile.node);
      this.selfTile.start();
    }
    el.self.hidden = !this.active || (track === null && !this.cameraOff);
    el.self.dataset.state = this.selfHidden ? "hidden" : this.cameraOff ? "camera-off" : "on";
    el.selfToggle.setAttribute("aria-pressed", String(this.selfHidden));
    el.selfToggle.setAttribute("aria-label", this.selfHidden ? "Show self view" : "Hide self view");
    el.selfToggle.querySelector(".button-label").textContent = this.selfHidden ? "Show me" : "Hide";
  }

  // renderNames puts names and speaking frames on the tiles.
  renderNames() {
    for (const tile of this.tiles.values()) {
      const who = this.speakerOf(tile.track);
      tile.setName(this.nameOf(tile.track), tile.track.kind !== "screen" && who === this.speaker && this.speaking(who));
    }
    this.el.stage.dataset.speaker = this.speaker || "";
  }

  // scheduleView sends the view once the layout settled: after the current
  // task, so several renders in a row send one message.
  scheduleView() {
    if (this.viewTimer) return;
    this.viewTimer = setTimeout(() => {
      this.viewTimer = 0;
      if (!this.active) return;
      const view = this.measureView();
      if (this.feed.view(view)) {
        this.el.stage.dataset.view = view.map((v) => `${v.n}:${v.width}x${v.height}`).join(" ");
      }
    }, 0);
  }

  // measureView lists the tiles on screen with their sizes in device
  // pixels, rounded up to the ladder.
  measureView() {
    const dpr = window.devicePixelRatio || 1;
    const out = [];
    const tiles = [...this.tiles.values()];
    if (this.selfTile) tiles.push(this.selfTile);
    for (const tile of tiles) {
      const r = tile.node.getBoundingClientRect();
      if (r.width < 1 || r.height < 1) continue; // not laid out: not shown
      out.push({ n: tile.track.n, ...viewSize(Math.round(r.width * dpr), Math.round(r.height * dpr)) });
    }
    return out.sort((a, b) => a.n - b.n);
  }

  // loadVolume finds the speaker the call plays on and shows its volume:
  // the one the call status names (call.speaker, a device id), else the
  // one a meeting prefers, as roomd chooses it: echo-cancelled first, real
  // before simulated.
  async loadVolume(named) {
    const el = this.el;
    this.volumeFor = named || null;
    try {
      const resp = await fetch("/api/v1/devices", { headers: { Accept: "application/json" } });
      if (!resp.ok) throw new Error(`roomd answered ${resp.status}`);
      const list = await resp.json();
      const speakers = (list.devices || []).filter((d) => d.kind === "speaker" && (d.controls || []).some((c) => c.id === "volume"));
      const rank = (d) => (d.id === named ? 0 : 4) + (d.echoCancelled ? 0 : 2) + (d.simulated ? 1 : 0);
      speakers.sort((a, b) => rank(a) - rank(b));
      const d = speakers[0];
      if (!d) {
        el.volume.hidden = true;
        return;
      }
      const c = d.controls.find((c) => c.id === "volume");
      this.speakerDevice = { id: d.id, min: c.min, max: c.max };
      el.volumeSlider.min = String(c.min);
      el.volumeSlider.max = String(c.max);
      el.volumeSlider.step = String(Math.max(1, c.step || 1));
      el.volumeSlider.value = String(c.value);
      el.volumeSlider.dataset.device = d.id;
      this.showVolume();
      el.volume.hidden = false;
    } catch (err) {
      console.warn("atrium: speaker volume", err && err.message);
      el.volume.hidden = true;
    }
  }

  showVolume() {
    const v = Number(this.el.volumeSlider.value);
    this.el.volumeValue.textContent = `${v}%`;
    this.el.volumeButton.setAttribute("aria-label", `Speaker volume ${v}%`);
    this.el.volumeSlider.setAttribute("aria-valuetext", `${v} percent`);
  }

  // toggleVolume opens the volume popover, with the slider focused so that
  // a remote's arrows move it at once, or closes it.
  toggleVolume(open) {
    const el = this.el;
    el.volumePopover.hidden = !open;
    el.volumeButton.setAttribute("aria-expanded", String(open));
    if (open) el.volumeSlider.focus();
  }

  // volumeInput follows the slider while it moves, sending at most every
  // VOLUME_SEND_MS (the last position always goes out).
  volumeInput() {
    this.showVolume();
    clearTimeout(this.volumeTimer);
    const wait = VOLUME_SEND_MS - (performance.now() - this.volumeSentAt);
    if (wait <= 0) this.sendVolume();
    else this.volumeTimer = setTimeout(() => this.sendVolume(), wait);
  }

  async sendVolume() {
    clearTimeout(this.volumeTimer);
    const dev = this.speakerDevice;
    if (!dev) return;
    this.volumeSentAt = performance.now();
    const value = Number(this.el.volumeSlider.value);
    try {
      const resp = await fetch(`/api/v1/devices/${encodeURIComponent(dev.id)}/controls/volume`, {
        method: "PUT",
        headers: { "Content-Type": "application/json", Accept: "application/json, application/problem+json" },
        body: JSON.stringify({ value }),
      });
      if (!resp.ok) throw new Error(`roomd answered ${resp.status}`);
      const d = await resp.json();
      const c = (d.controls || []).find((c) => c.id === "volume");
      // Show what the driver settled on, unless the slider moved on since.
      if (c && Number(this.el.volumeSlider.value) === value) {
        this.el.volumeSlider.value = String(c.value);
        this.showVolume();
      }
      this.el.volumeSlider.dataset.sent = String(value);
    } catch (err) {
      this.el.banner.hidden = false;
      this.el.banner.textContent = `Could not change the speaker volume: ${err.message}`;
    }
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
      li.classList.toggle("speaking", this.speaking(p.id));
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
