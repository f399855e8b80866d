// guest.js makes this page one participant of a Janus VideoRoom, driven by
// package guest through window.atrium: join, status, stats, videoRect,
// firstFrame and leave. It publishes the fake camera and microphone (the
// camera in three simulcast layers on request), and on request a second
// video track described as "screen": a canvas animation standing in for a
// shared screen. It subscribes to every other publisher, one subscriber
// handle per feed, so that each feed has its own RTCPeerConnection and its
// own statistics.
"use strict";

(() => {
	// janus.js reads only adapter.browserDetails from webrtc-adapter, to pick
	// browser quirks. This page runs in Chromium only, whose WebRTC needs no
	// shim, so a small object parsed from the user agent stands in for
	// Debian's libjs-webrtc-adapter.
	function browserDetails() {
		const m = navigator.userAgent.match(/Chrom(?:e|ium)\/(\d+)/);
		return m ? { browser: "chrome", version: Number(m[1]) } : { browser: "Not a supported browser.", version: null };
	}

	const state = {
		phase: "idle", // idle → joining → joined; or failed; or left
		error: "",
		events: [], // recent notes, for the Go side's error messages
		t0: 0, // performance.now() when join began
		cfg: null,
		janus: null,
		pub: null,
		myId: null,
		privateId: null,
		published: false,
		webrtcUp: false,
		leaving: false,
		local: null, // the MediaStream from getUserMedia
		screen: null, // the canvas's video track, when sharing a "screen"
		screenTimer: 0,
		feeds: new Map(), // String(feed id) → feed
	};

	function now() { return Math.round(performance.now() - state.t0); }

	function note(msg) {
		state.events.push(`+${now()}ms ${msg}`);
		if (state.events.length > 100) state.events.shift();
		console.log(`[guest ${state.cfg ? state.cfg.display : ""}] ${msg}`);
	}

	function setPhase(p) {
		state.phase = p;
		document.getElementById("phase").textContent = p;
	}

	function fail(msg) {
		if (state.phase === "failed" || state.phase === "left") {
			note(`after ${state.phase}: ${msg}`);
			return;
		}
		state.error = msg;
		setPhase("failed");
		state.events.push(`+${now()}ms FAILED: ${msg}`);
		console.error(`[guest ${state.cfg ? state.cfg.display : ""}] ${msg}`);
	}

	// describe turns what janus.js and WebRTC hand to error callbacks (strings,
	// DOMExceptions, plain objects) into text.
	function describe(e) {
		if (e === undefined || e === null) return "unknown error";
		if (typeof e === "string") return e;
		if (e.name || e.message) return `${e.name || "Error"}: ${e.message || ""}`;
		try { return JSON.stringify(e); } catch (_) { return String(e); }
	}

	function janusError(msg) {
		return `Janus VideoRoom error ${msg.error_code}: ${msg.error}`;
	}

	function maybeJoined() {
		if (state.phase === "joining" && state.published && state.webrtcUp) {
			setPhase("joined");
			note("joined: published and webrtcup");
		}
	}

	async function join(cfg) {
		state.cfg = cfg;
		state.t0 = performance.now();
		setPhase("joining");
		document.getElementById("display").textContent = cfg.display;
		note(`joining room ${cfg.room} at ${cfg.server} (video ${cfg.video}, audio ${cfg.audio})`);

		try {
			state.local = await navigator.mediaDevices.getUserMedia({
				audio: cfg.audio,
				video: cfg.video ? { width: { ideal: cfg.width }, height: { ideal: cfg.height }, frameRate: { ideal: cfg.fps } } : false,
			});
		} catch (e) {
			fail(`getUserMedia: ${describe(e)}`);
			return;
		}
		document.getElementById("local").srcObject = state.local;
		for (const t of state.local.getTracks()) {
			note(`local ${t.kind} track: ${t.label} ${JSON.stringify(t.getSettings())}`);
		}
		if (cfg.screen) state.screen = screenTrack(cfg);

		Janus.init({
			debug: ["warn", "error"],
			dependencies: Janus.useDefaultDependencies({ adapter: { browserDetails: browserDetails() } }),
			callback: () => {
				if (!Janus.isWebrtcSupported()) {
					fail("janus.js says this browser has no WebRTC");
					return;
				}
				state.janus = new Janus({
					server: cfg.server,
					// No STUN or TURN: everything is on loopback, and a test
					// must not reach out to the network (janus.js's default
					// would be Google's STUN server).
					iceServers: [],
					success: attachPublisher,
					error: (e) => {
						if (state.leaving) return;
						fail(`Janus session: ${describe(e)}`);
					},
					destroyed: () => note("session destroyed"),
				});
			},
		});
	}

	function attachPublisher() {
		const cfg = state.cfg;
		state.janus.attach({
			plugin: "janus.plugin.videoroom",
			opaqueId: `atrium-guest-${cfg.display}-${Janus.randomString(8)}`,
			success: (h) => {
				state.pub = h;
				note(`publisher handle ${h.getId()}`);
				const msg = { request: "join", room: cfg.room, ptype: "publisher", display: cfg.display };
				if (cfg.pin) msg.pin = cfg.pin;
				h.send({ message: msg, error: (e) => fail(`send join: ${describe(e)}`) });
			},
			error: (e) => fail(`attach to the VideoRoom plugin: ${describe(e)}`),
			iceState: (s) => note(`publisher ICE ${s}`),
			webrtcState: (on, reason) => {
				state.webrtcUp = on;
				note(`publisher webrtc ${on ? "up" : "down"}${reason ? " (" + reason + ")" : ""}`);
				if (on) maybeJoined();
				else if (!state.leaving && state.phase === "joined") fail(`publisher PeerConnection went down: ${reason || "no reason given"}`);
			},
			onmessage: onPublisherMessage,
			onlocaltrack: () => {},
			onremotetrack: () => {},
			oncleanup: () => note("publisher cleanup"),
		});
	}

	function onPublisherMessage(msg, jsep) {
		if (jsep) state.pub.handleRemoteJsep({ jsep: jsep, error: (e) => fail(`publisher answer: ${describe(e)}`) });
		if (msg.error) {
			// Before joining, any error is fatal (a wrong PIN, a missing
			// room); after, it is noted and the state tells the rest.
			if (state.phase === "joining") fail(`Janus refused: ${janusError(msg)}`);
			else note(janusError(msg));
			return;
		}
		switch (msg.videoroom) {
		case "joined":
			state.myId = msg.id;
			state.privateId = msg.private_id;
			note(`joined room ${msg.room} as feed ${msg.id}`);
			publish();
			for (const p of msg.publishers || []) subscribe(p);
			break;
		case "event":
			for (const p of msg.publishers || []) subscribe(p);
			if (msg.leaving !== undefined && msg.leaving !== "ok") drop(msg.leaving, "left");
			if (msg.unpublished !== undefined && msg.unpublished !== "ok") drop(msg.unpublished, "unpublished");
			if (msg.configured === "ok") {
				state.published = true;
				note("configured");
				maybeJoined();
			}
			break;
		case "destroyed":
			fail(`room ${state.cfg.room} was destroyed`);
			break;
		}
	}

	// screenTrack is a "shared screen": a 1280x720 canvas, white with dark
	// blue bars that move and a frame counter, captured at 15 fps. It looks
	// nothing like the fake camera (green), so a screenshot tells them apart.
	function screenTrack(cfg) {
		const canvas = document.createElement("canvas");
		canvas.width = 1280;
		canvas.height = 720;
		const ctx = canvas.getContext("2d");
		let frame = 0;
		const draw = () => {
			frame++;
			ctx.fillStyle = "#ffffff";
			ctx.fillRect(0, 0, canvas.width, canvas.height);
			ctx.fillStyle = "#1a2a80";
			for (let i = 0; i < 6; i++) {
				const x = (frame * 8 + i * 220) % canvas.width;
				ctx.fillRect(x, 80 + i * 100, 180, 60);
			}
			ctx.font = "bold 72px sans-serif";
			ctx.fillText(`${cfg.display}: slide ${frame}`, 60, 690);
		};
		draw();
		// A timer, not requestAnimationFrame: a page in the background gets
		// no animation frames, and the track must keep moving.
		state.screenTimer = setInterval(draw, 66);
		const track = canvas.captureStream(15).getVideoTracks()[0];
		note(`screen track: ${track.id}`);
		return track;
	}

	function publish() {
		const cfg = state.cfg;
		const tracks = [];
		for (const t of state.local.getTracks()) {
			const tr = { type: t.kind, capture: t, recv: false };
			if (t.kind === "video" && cfg.simulcast) tr.simulcast = true;
			tracks.push(tr);
		}
		if (state.screen) tracks.push({ type: "video", capture: state.screen, recv: false });
		state.pub.createOffer({
			tracks: tracks,
			success: (jsep) => {
				const msg = { request: "configure", audio: cfg.audio, video: cfg.video };
				// Janus passes each stream's description on to subscribers:
				// that is how the room tells the screen from the camera.
				const descriptions = describeStreams();
				if (descriptions.length) msg.descriptions = descriptions;
				state.pub.send({
					message: msg,
					jsep: jsep,
					error: (e) => fail(`send configure: ${describe(e)}`),
				});
			},
			error: (e) => fail(`create offer: ${describe(e)}`),
		});
	}

	// describeStreams names the mids of the published video: "camera" and
	// "screen".
	function describeStreams() {
		const pc = state.pub.webrtcStuff && state.pub.webrtcStuff.pc;
		if (!pc) return [];
		const out = [];
		for (const tr of pc.getTransceivers()) {
			const t = tr.sender && tr.sender.track;
			if (!t || t.kind !== "video" || tr.mid === null) continue;
			out.push({ mid: tr.mid, description: t === state.screen ? "screen" : "camera" });
		}
		note(`stream descriptions: ${JSON.stringify(out)}`);
		return out;
	}

	function subscribe(p) {
		const id = String(p.id);
		if (state.feeds.has(id) || p.id === state.myId || p.dummy) return;
		const cfg = state.cfg;
		const fig = document.createElement("figure");
		fig.dataset.feed = id;
		fig.dataset.display = p.display || "";
		const video = document.createElement("video");
		video.autoplay = true;
		video.playsInline = true;
		video.muted = false;
		const cap = document.createElement("figcaption");
		cap.textContent = `${p.display || "(no name)"} — feed ${id}`;
		fig.append(video, cap);
		document.getElementById("remote").append(fig);

		const feed = {
			id: id,
			display: p.display || "",
			stream: new MediaStream(),
			fig: fig,
			video: video,
			handle: null,
			firstFrameAt: 0,
		};
		video.srcObject = feed.stream;
		// The first frame the page can show; requestVideoFrameCallback runs
		// when the compositor presents it, which is as close to "decoded and
		// on screen" as the page can see.
		if (video.requestVideoFrameCallback) {
			video.requestVideoFrameCallback((t) => {
				feed.firstFrameAt = t;
				note(`first frame from ${feed.display} (feed ${id})`);
			});
		}
		state.feeds.set(id, feed);
		note(`subscribing to ${feed.display} (feed ${id})`);

		state.janus.attach({
			plugin: "janus.plugin.videoroom",
			opaqueId: `atrium-guest-${cfg.display}-sub-${Janus.randomString(8)}`,
			success: (h) => {
				feed.handle = h;
				if (!state.feeds.has(id)) { // dropped while attaching
					h.detach();
					return;
				}
				const msg = { request: "join", room: cfg.room, ptype: "subscriber", streams: [{ feed: p.id }], private_id: state.privateId };
				if (cfg.pin) msg.pin = cfg.pin;
				h.send({ message: msg, error: (e) => note(`subscribe to feed ${id}: ${describe(e)}`) });
			},
			error: (e) => note(`attach subscriber for feed ${id}: ${describe(e)}`),
			iceState: (s) => note(`feed ${id} ICE ${s}`),
			webrtcState: (on) => note(`feed ${id} webrtc ${on ? "up" : "down"}`),
			onmessage: (msg, jsep) => {
				if (msg.error) {
					note(`feed ${id}: ${janusError(msg)}`);
					return;
				}
				if (!jsep) return;
				feed.handle.createAnswer({
					jsep: jsep,
					// Only data: audio and video are then accepted receive-only.
					tracks: [{ type: "data" }],
					success: (answer) => {
						feed.handle.send({ message: { request: "start", room: cfg.room }, jsep: answer });
					},
					error: (e) => note(`answer feed ${id}: ${describe(e)}`),
				});
			},
			onremotetrack: (track, mid, on) => {
				if (on) {
					for (const old of feed.stream.getTracks()) {
						if (old.kind === track.kind && old !== track) feed.stream.removeTrack(old);
					}
					if (!feed.stream.getTrackById(track.id)) feed.stream.addTrack(track);
				} else if (feed.stream.getTrackById(track.id)) {
					feed.stream.removeTrack(track);
				}
			},
			onlocaltrack: () => {},
			oncleanup: () => note(`feed ${id} cleanup`),
		});
	}

	function drop(rawId, why) {
		const id = String(rawId);
		const feed = state.feeds.get(id);
		if (!feed) return;
		state.feeds.delete(id);
		note(`feed ${id} (${feed.display}) ${why}`);
		if (feed.handle) feed.handle.detach();
		feed.fig.remove();
	}

	async function pcStats(handle) {
		const pc = handle && handle.webrtcStuff && handle.webrtcStuff.pc;
		if (!pc) return new Map();
		return await pc.getStats();
	}

	// selectedPaths returns "local -> remote" for the candidate pair each
	// transport in report uses, so that tests can see where media went.
	function selectedPaths(report) {
		const paths = [];
		for (const s of report.values()) {
			if (s.type !== "transport" || !s.selectedCandidatePairId) continue;
			const pair = report.get(s.selectedCandidatePairId);
			const l = pair && report.get(pair.localCandidateId);
			const r = pair && report.get(pair.remoteCandidateId);
			if (l && r) paths.push(`${l.address}:${l.port} -> ${r.address}:${r.port}`);
		}
		return paths;
	}

	async function stats() {
		const out = {
			publishing: state.phase === "joined" && state.published && state.webrtcUp,
			remoteFeeds: [],
			videoFramesSent: 0,
			audioPacketsSent: 0,
			videoStreamsSent: 0,
			paths: [],
			phase: state.phase,
			error: state.error,
		};
		const pubReport = await pcStats(state.pub);
		out.paths.push(...selectedPaths(pubReport));
		for (const s of pubReport.values()) {
			if (s.type !== "outbound-rtp") continue;
			if (s.kind === "video") {
				out.videoFramesSent += s.framesSent || 0;
				out.videoStreamsSent++;
			}
			if (s.kind === "audio") out.audioPacketsSent += s.packetsSent || 0;
		}
		for (const feed of [...state.feeds.values()]) {
			const f = {
				id: feed.id,
				display: feed.display,
				videoFramesDecoded: 0,
				videoWidth: 0,
				videoHeight: 0,
				audioPacketsReceived: 0,
				audioEnergy: 0,
				codec: "",
			};
			const report = await pcStats(feed.handle);
			out.paths.push(...selectedPaths(report));
			let audioCodec = "";
			for (const s of report.values()) {
				if (s.type !== "inbound-rtp") continue;
				const codec = s.codecId && report.get(s.codecId) ? report.get(s.codecId).mimeType.replace(/^\w+\//, "") : "";
				if (s.kind === "video") {
					f.videoFramesDecoded += s.framesDecoded || 0;
					f.videoWidth = s.frameWidth || f.videoWidth;
					f.videoHeight = s.frameHeight || f.videoHeight;
					f.codec = codec || f.codec;
				}
				if (s.kind === "audio") {
					f.audioPacketsReceived += s.packetsReceived || 0;
					f.audioEnergy += s.totalAudioEnergy || 0;
					audioCodec = codec || audioCodec;
				}
			}
			if (!f.codec) f.codec = audioCodec;
			out.remoteFeeds.push(f);
		}
		return out;
	}

	function findFeed(display) {
		for (const feed of state.feeds.values()) {
			if (feed.display === display) return feed;
		}
		return null;
	}

	// videoRect returns the remote video's box in device pixels, as a
	// screenshot of the viewport shows it, or null.
	function videoRect(display) {
		const feed = findFeed(display);
		if (!feed) return null;
		const r = feed.video.getBoundingClientRect();
		const k = window.devicePixelRatio || 1;
		return { x: Math.round(r.left * k), y: Math.round(r.top * k), width: Math.round(r.width * k), height: Math.round(r.height * k) };
	}

	// firstFrame returns the milliseconds from the start of join to the
	// first frame shown from display's feed, or -1 before there is one.
	function firstFrame(display) {
		if (state.phase === "failed") throw new Error(`the guest failed: ${state.error}`);
		const feed = findFeed(display);
		return feed && feed.firstFrameAt ? feed.firstFrameAt - state.t0 : -1;
	}

	function status() {
		return {
			phase: state.phase,
			error: state.error,
			published: state.published,
			webrtcUp: state.webrtcUp,
			events: state.events.slice(-15),
		};
	}

	function leave() {
		if (state.phase === "left") return Promise.resolve();
		state.leaving = true;
		note("leaving");
		if (state.local) for (const t of state.local.getTracks()) t.stop();
		clearInterval(state.screenTimer);
		if (state.screen) state.screen.stop();
		return new Promise((resolve) => {
			const done = () => {
				setPhase("left");
				state.published = false;
				state.webrtcUp = false;
				for (const id of [...state.feeds.keys()]) drop(id, "closed: we left");
				resolve();
			};
			if (!state.janus) {
				done();
				return;
			}
			// Destroying the session detaches every handle: Janus tells the
			// room that this publisher left. janus.js calls success even
			// when the server did not answer, so there is no error path.
			state.janus.destroy({ cleanupHandles: true, success: done, error: done });
		});
	}

	window.atrium = { join, status, stats, videoRect, firstFrame, leave };
})();
