// The meeting client of /meet/{code} (see crates/meetings/src/web/page.rs).
//
// Signalling: a grant from POST /meet/{code}/grant for a signed-in visitor (the page's
// data-grant-url), else a guest's from POST /api/v1/meetings/{code}/guest-token, then the
// meeting controller's WebTransport session: one bidirectional stream of frames (u32
// big-endian length, then a protobuf ClientMessage / ServerMessage; the schema is in
// crates/meetings/src/controller/proto.rs), encoded and decoded by the small codec below.
//
// Media (the media wire contract v1): with a media grant in the JoinResponse (field 7),
// or a later one answering RequestMediaGrant (see startMedia), a second WebTransport
// session to the media handler: a control stream (same framing,
// MediaClientMessage / MediaServerMessage) and one unidirectional stream per encoded
// frame (16-byte header, then the payload; the handler prefixes the publisher's 16-byte
// participant id on the way out). Video is VP8, audio Opus, both WebCodecs.
//
// Simulcast: the camera is encoded twice, layer 1 at the capture size (~600 kbit/s) and
// layer 0 at a quarter of its pixels (~150 kbit/s), each layer with its own key frames and
// sequence numbers (the header's layer byte). Each remote tile asks the handler
// (SetLayer) for layer 0 while it is shown small (under SMALL_TILE_PX wide) and for the
// highest layer otherwise; `data-layer` on the tile says which layer it receives.
//
// End-to-end encryption (meetings with enable_e2e_encryption): see `KeyRing` below. Keys
// are agreed among the pages through the controller's opaque relay (e2e_key); neither
// the controller nor the media handler ever holds one.
'use strict';

(() => {
  const root = document.getElementById('meet');
  if (!root) return;
  const $ = (id) => document.getElementById(id);
  const code = root.dataset.code;

  // The invitation: the link in full, and a button that copies it where the clipboard
  // may be written (a secure context); data-copied says how it went.
  (() => {
    const link = $('invite-link');
    const copy = $('copy-link');
    if (!link) return;
    const url = new URL(link.getAttribute('href'), window.location.href).href;
    link.textContent = url;
    if (!copy || !navigator.clipboard || !window.isSecureContext) return;
    copy.hidden = false;
    copy.addEventListener('click', async () => {
      try {
        await navigator.clipboard.writeText(url);
        copy.dataset.copied = '1';
        copy.textContent = 'Copied';
      } catch (_) {
        copy.dataset.copied = '0';
        copy.textContent = 'Copy it from the link';
      }
    });
  })();
  const CLIENT_VERSION = 'tavern-web/1';
  const HEARTBEAT_MS = 10_000;
  const MAX_FRAME = 64 * 1024;
  const MAX_MEDIA_FRAME = 1024 * 1024;
  const TRACK_AUDIO = 0;
  const TRACK_VIDEO = 1;
  /** The camera's simulcast layers: 0 a quarter of the pixels, 1 the capture size. */
  const VIDEO_LAYERS = [
    { scale: 0.5, bitrate: 150_000 },
    { scale: 1, bitrate: 600_000 },
  ];
  /** A remote tile narrower than this (CSS px) receives the small layer. */
  const SMALL_TILE_PX = 320;

  // ---------------------------------------------------------------------------------
  // Protobuf (the proto3 subset the protocol uses: varints, bools, strings, messages).

  const utf8 = new TextEncoder();
  const text = new TextDecoder();

  /** Builds one message; `message()` always writes the field, so an empty one counts. */
  class ProtoWriter {
    constructor() { this.parts = []; }
    varint(n) {
      let v = Math.floor(Number(n));
      const out = [];
      while (v >= 0x80) { out.push((v % 0x80) | 0x80); v = Math.floor(v / 0x80); }
      out.push(v);
      this.parts.push(Uint8Array.from(out));
      return this;
    }
    tag(field, wire) { return this.varint(field * 8 + wire); }
    uint(field, n) { return n ? this.tag(field, 0).varint(n) : this; }
    bool(field, b) { return b ? this.tag(field, 0).varint(1) : this; }
    bytes(field, bytes) {
      this.tag(field, 2).varint(bytes.length);
      this.parts.push(bytes);
      return this;
    }
    string(field, s) { return s ? this.bytes(field, utf8.encode(s)) : this; }
    message(field, writer) { return this.bytes(field, writer.finish()); }
    finish() { return concat(this.parts); }
  }

  /** The fields of one message: field number -> the values, in order. */
  function parseProto(bytes) {
    const fields = new Map();
    let i = 0;
    const varint = () => {
      let result = 0, scale = 1;
      for (;;) {
        if (i >= bytes.length) throw new Error('truncated varint');
        const b = bytes[i++];
        result += (b & 0x7f) * scale;
        if (!(b & 0x80)) return result;
        scale *= 0x80;
        if (scale > 2 ** 63) throw new Error('varint too long');
      }
    };
    while (i < bytes.length) {
      const key = varint();
      const field = Math.floor(key / 8), wire = key % 8;
      let value;
      if (wire === 0) value = varint();
      else if (wire === 2) {
        const len = varint();
        if (i + len > bytes.length) throw new Error('truncated field');
        value = bytes.subarray(i, i + len);
        i += len;
      } else if (wire === 1) { i += 8; continue; }
      else if (wire === 5) { i += 4; continue; }
      else throw new Error(`unsupported wire type ${wire}`);
      if (!fields.has(field)) fields.set(field, []);
      fields.get(field).push(value);
    }
    return fields;
  }
  const last = (f, n) => { const v = f.get(n); return v ? v[v.length - 1] : undefined; };
  const str = (f, n) => { const v = last(f, n); return v instanceof Uint8Array ? text.decode(v) : ''; };
  const num = (f, n) => { const v = last(f, n); return typeof v === 'number' ? v : 0; };
  const bool = (f, n) => num(f, n) !== 0;
  const msg = (f, n) => { const v = last(f, n); return v instanceof Uint8Array ? parseProto(v) : null; };
  const msgs = (f, n) => (f.get(n) || []).filter((v) => v instanceof Uint8Array).map(parseProto);
  const strs = (f, n) => (f.get(n) || []).filter((v) => v instanceof Uint8Array).map((v) => text.decode(v));

  function concat(parts) {
    const len = parts.reduce((n, p) => n + p.length, 0);
    const out = new Uint8Array(len);
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    return out;
  }

  // ClientMessage { uint32 version = 1; oneof payload { ... } }
  const clientMessage = (field, payload) =>
    new ProtoWriter().uint(1, 1).message(field, payload || new ProtoWriter()).finish();
  // JoinRequest { string token = 1; string client_version = 2; string admission = 3; }:
  // `admission`, the token a JoinResponse gave this page when the host let it in, so it
  // does not wait again when it joins anew (proto.rs, "The waiting room").
  const joinRequest = (token, admission) =>
    clientMessage(2, new ProtoWriter().string(1, token).string(2, CLIENT_VERSION).string(3, admission));
  const heartbeat = () => clientMessage(3);
  const setMute = (audio, video) => clientMessage(4, new ProtoWriter().bool(1, audio).bool(2, video));
  const leaveMessage = () => clientMessage(9);
  // KeyExchange { string participant_id = 1; bytes payload = 2; } (to that participant)
  const keyExchange = (to, payload) =>
    clientMessage(10, new ProtoWriter().string(1, to).bytes(2, payload));
  // RequestMediaGrant {} (field 11): the media session failed or was lost.
  const requestMediaGrant = () => clientMessage(11);
  // Admission { string participant_id = 1; bool admit = 2; } (field 12): the host lets a
  // visitor of the waiting room in, or not.
  const admission = (id, admit) => clientMessage(12, new ProtoWriter().string(1, id).bool(2, admit));
  // MediaClientMessage { uint32 version = 1; oneof payload { RequestKeyframe request_keyframe = 2; } }
  const requestKeyframe = (publisher, track) =>
    clientMessage(2, new ProtoWriter().string(1, publisher).uint(2, track));
  // SetLayer { string publisher_participant_id = 1; uint32 track = 2; uint32 max_layer = 3;
  //   bool highest = 4; } (field 4): the layer of that publisher's track this page receives.
  const setLayer = (publisher, track, maxLayer) =>
    clientMessage(4, new ProtoWriter().string(1, publisher).uint(2, track)
      .uint(3, maxLayer === null ? 0 : maxLayer).bool(4, maxLayer === null));

  const participantInfo = (f) => ({
    id: str(f, 1),
    userId: f.has(2) ? str(f, 2) : null,
    name: str(f, 3),
    audioMuted: bool(f, 4),
    videoMuted: bool(f, 5),
  });

  // MediaGrant { string url = 1; string wt_token = 2; string certificate_hash = 3; }
  const mediaGrant = (m) => (m && str(m, 1)
    ? { url: str(m, 1), wtToken: str(m, 2), certificateHash: str(m, 3) }
    : null);

  /** A ServerMessage as `{kind, ...}`. */
  function decodeServer(bytes) {
    const f = parseProto(bytes);
    const version = num(f, 1);
    if (version !== 1) throw new Error(`the server speaks protocol version ${version}`);
    let p;
    if ((p = msg(f, 2))) {
      return {
        kind: 'joined', participantId: str(p, 1), meetingId: str(p, 2), meetingName: str(p, 3),
        e2e: bool(p, 4), participants: msgs(p, 5).map(participantInfo), mediaHandlers: strs(p, 6),
        media: mediaGrant(msg(p, 7)), admission: str(p, 9),
      };
    }
    if ((p = msg(f, 3))) { const info = msg(p, 1); return info ? { kind: 'participant-joined', participant: participantInfo(info) } : { kind: 'ignored' }; }
    if ((p = msg(f, 4))) return { kind: 'participant-left', id: str(p, 1), reason: str(p, 2) };
    if ((p = msg(f, 5))) return { kind: 'mute', id: str(p, 1), audioMuted: bool(p, 2), videoMuted: bool(p, 3) };
    if ((p = msg(f, 8))) return { kind: 'ended', reason: str(p, 1), code: str(p, 2) };
    if ((p = msg(f, 9))) return { kind: 'heartbeat-ack' };
    // Error { string code = 1; string message = 2; optional string participant_id = 3;
    //   optional string answers = 4; }: `participant_id` names the recipient of a key
    // exchange dropped (recipient_busy); `answers` the request it answers.
    if ((p = msg(f, 10))) {
      return {
        kind: 'error', code: str(p, 1), message: str(p, 2),
        participantId: str(p, 3) || null, answers: str(p, 4) || null,
      };
    }
    if ((p = msg(f, 11))) {
      const payload = last(p, 2);
      return { kind: 'e2e-key', from: str(p, 1), payload: payload instanceof Uint8Array ? payload.slice() : new Uint8Array(0) };
    }
    if ((p = msg(f, 12))) return { kind: 'media-grant', media: mediaGrant(p) };
    // Waiting { string meeting_display_name = 1; uint64 wait_seconds = 2;
    //   string admission = 3; }: `admission`, a guest's token, which keeps its place in
    // the host's list when it joins anew while its lost connection is still listed.
    if ((p = msg(f, 13))) {
      return { kind: 'waiting', meetingName: str(p, 1), waitSeconds: num(p, 2), admission: str(p, 3) };
    }
    // WaitingRoom { repeated Visitor waiting = 1; } Visitor { string participant_id = 1;
    //   string display_name = 2; }
    if ((p = msg(f, 14))) {
      return { kind: 'waiting-room', waiting: msgs(p, 1).map((v) => ({ id: str(v, 1), name: str(v, 2) })) };
    }
    // MoreParticipants { repeated ParticipantInfo participants = 1; }: the rest of a
    // JoinResponse's list that did not fit its frame, right after it.
    if ((p = msg(f, 15))) return { kind: 'more-participants', participants: msgs(p, 1).map(participantInfo) };
    return { kind: 'ignored' };
  }

  /** Frames of a stream: u32 big-endian length, then that many bytes. */
  class FrameReader {
    constructor(readable, max) { this.reader = readable.getReader(); this.buf = new Uint8Array(0); this.max = max; }
    async fill(n) {
      while (this.buf.length < n) {
        const { value, done } = await this.reader.read();
        if (done) return false;
        this.buf = concat([this.buf, value]);
      }
      return true;
    }
    /** The next `n` bytes, or null when the stream ends first. */
    async take(n) {
      if (!(await this.fill(n))) return null;
      const out = this.buf.slice(0, n);
      this.buf = this.buf.slice(n);
      return out;
    }
    /** The next frame's body, or null at the end of the stream. */
    async next() {
      if (!(await this.fill(4))) return null;
      const len = new DataView(this.buf.buffer, this.buf.byteOffset, 4).getUint32(0);
      if (len === 0 || len > this.max) throw new Error(`a frame of ${len} bytes`);
      if (!(await this.fill(4 + len))) return null;
      const body = this.buf.slice(4, 4 + len);
      this.buf = this.buf.slice(4 + len);
      return body;
    }
  }
  function framed(body) {
    const out = new Uint8Array(4 + body.length);
    new DataView(out.buffer).setUint32(0, body.length);
    out.set(body, 4);
    return out;
  }

  function hexBytes(hex) {
    const clean = hex.replace(/[^0-9a-f]/gi, '');
    const out = new Uint8Array(clean.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.substr(i * 2, 2), 16);
    return out;
  }
  function uuidString(bytes) {
    const h = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  // How long each connection but the last may take to open before it is given up for
  // one more with a new grant: setting a session up takes two round trips and QUIC
  // resends a lost packet after about a second, but a meeting server that lost part of
  // the set-up (README, "Known problems") would hold the page until its own join
  // timeout. The last connection waits as long as the browser does.
  const FIRST_TRY_WAIT_MS = 3000;
  /** Connections made to join at most, each with a new grant (client.rs, CONNECTIONS). */
  const CONNECTIONS = 3;
  /** How long Leave waits for the meeting server's last word before closing anyway. */
  const LEAVE_WAIT_MS = 3000;
  // How often a page asks whether the meeting is being recorded.
  const RECORDING_NOW_EVERY_MS = 10000;
  const delay = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });
  /** Application close code of a session closed by the meeting server (proto.rs). */
  const CLOSE_BY_CONTROLLER = 3;
  /** Automatic rejoins after a lost connection allowed in REJOIN_WINDOW_MS. */
  const REJOINS_ALLOWED = 3;
  const REJOIN_WINDOW_MS = 5 * 60_000;
  /** The waits before asking again for a grant to a moved meeting (about a minute). */
  const REJOIN_WAITS_MS = [500, 1000, 2000, 4000, 8000, 15_000, 30_000];
  /** Media connections that may fail in a row before the page stops trying. */
  const MEDIA_TRIES = 5;
  /** The wait before the second new media grant in a row, doubled for each after. */
  const MEDIA_RETRY_MS = 1000;
  /** How long an answer to RequestMediaGrant is waited for. */
  const MEDIA_GRANT_WAIT_MS = 10_000;

  // Opens a WebTransport session; given up (closed, and an error thrown) when it is not
  // open within `waitMs`, if given.
  async function openWebTransport(url, token, certificateHash, waitMs) {
    if (typeof WebTransport === 'undefined') {
      throw new Error('this browser has no WebTransport (use a recent Chrome, Edge or Firefox)');
    }
    const options = {};
    if (certificateHash) {
      options.serverCertificateHashes = [{ algorithm: 'sha-256', value: hexBytes(certificateHash) }];
    }
    const sep = url.includes('?') ? '&' : '?';
    const wt = new WebTransport(`${url}${sep}wt_token=${encodeURIComponent(token)}`, options);
    wt.closed.catch(() => {});
    let timer = null;
    const late = new Promise((_, reject) => {
      if (waitMs) {
        timer = setTimeout(() => reject(new Error(`not open within ${waitMs / 1000} s`)), waitMs);
      }
    });
    try {
      await Promise.race([wt.ready, late]);
    } catch (e) {
      try { wt.close(); } catch (_) { /* not open */ }
      throw e;
    } finally {
      clearTimeout(timer);
    }
    return wt;
  }

  // ---------------------------------------------------------------------------------
  // The page.

  const REFUSALS = {
    auth_required: 'This meeting admits signed-in users only, so it cannot be joined as a guest.',
    meeting_ended: 'This meeting has ended.',
    meeting_not_found: 'There is no meeting with this code. Check the link or the code.',
    no_controller: 'No meeting server is available right now. Try again in a minute.',
    meeting_full: 'The meeting is full.',
    controller_full: 'The meeting server is full right now. Try again in a minute.',
    invalid_token: 'The invitation to join expired or was already used. Join again.',
    already_joined: 'You are already in this meeting, in another window.',
    too_slow: 'The connection was too slow to keep up with the meeting.',
    account_inactive: 'Your meetings account is deactivated, so it cannot join.',
    session_required: 'You are no longer signed in on this page. Reload the page and join again.',
    admission_denied: 'The host did not let you in.',
    waiting_timeout: 'Nobody let you in in time. Join again to wait again.',
    waiting_room_full: 'Too many people are waiting for the host right now. Try again later.',
    waiting_elsewhere: 'You are waiting for the host in another window now.',
  };
  // A 403 with no code, or the site's own `forbidden`, is the site's check of the
  // signed-in session (its CSRF token: signed out, or signed in again in another tab),
  // not the meeting's answer.
  const STALE_SESSION =
    'Your sign-in on this page is out of date (you signed out or in again elsewhere). Reload the page and join again.';

  /**
   * The join form's field each field of the API's errors is about: its id and what its
   * label says, which the error names instead of the API's field.
   */
  const FIELDS = { display_name: { id: 'name', label: 'Your name' } };

  function refusalText(status, body, retryAfter) {
    const code = body && body.code;
    if (code === 'rate_limited' || status === 429) {
      return `Too many joins from here. Try again in ${retryAfter || 'a few'} seconds.`;
    }
    if (REFUSALS[code]) return REFUSALS[code];
    if (status === 400 && body && body.field === 'display_name'
      && /longer than 255/.test(body.error || '')) {
      return 'Your name is too long: at most 255 characters.';
    }
    if (status === 403 && (!code || code === 'forbidden')) return STALE_SESSION;
    if (status === 404) return REFUSALS.meeting_not_found;
    if (status === 410) return REFUSALS.meeting_ended;
    if (status === 503) return REFUSALS.no_controller;
    const field = body && FIELDS[body.field];
    if (field && body.error) {
      const reason = body.error.startsWith(`${body.field}: `)
        ? body.error.slice(body.field.length + 2) : body.error;
      return `${field.label}: ${reason}${/[.!?]$/.test(reason) ? '' : '.'}`;
    }
    if (body && body.error) return `Cannot join: ${body.error}`;
    return `Cannot join (the server answered ${status}).`;
  }

  /**
   * Marks the join form's field `id` as the one the error is about (`aria-invalid`,
   * described by `#error`), or, with `null`, none of them.
   */
  function markInvalid(id) {
    for (const field of Object.values(FIELDS)) {
      const input = $(field.id);
      if (!input) continue;
      const described = (input.getAttribute('aria-describedby') || '').split(/\s+/)
        .filter((d) => d && d !== 'error');
      if (field.id === id) {
        input.setAttribute('aria-invalid', 'true');
        described.push('error');
      } else {
        input.removeAttribute('aria-invalid');
      }
      if (described.length > 0) input.setAttribute('aria-describedby', described.join(' '));
      else input.removeAttribute('aria-describedby');
    }
  }

  const ui = {
    status: (s) => { $('status').textContent = s; },
    mediaStatus: (s) => { $('media-status').textContent = s; },
    error(s) {
      const e = $('error');
      e.textContent = s || '';
      e.hidden = !s;
      if (s) root.dataset.error = s; else delete root.dataset.error;
    },
  };

  // What this tab keeps of the meeting across a reload (sessionStorage): the name it
  // joined as, and the admission token the host's decision is kept under, so that a
  // guest let in joins again without waiting (the controller keeps the decision for
  // the waiting limit).
  const KEPT = `tavern.meet.${code}`;
  const kept = (() => {
    try {
      const value = JSON.parse(sessionStorage.getItem(KEPT) || 'null');
      return value && typeof value === 'object' ? value : {};
    } catch (_) {
      return {};
    }
  })();
  /** Keeps the name (and the admission token, once there is one) for a reload. */
  function remember(name) {
    try {
      sessionStorage.setItem(KEPT, JSON.stringify({ name, admission: state.admission || '' }));
    } catch (_) { /* storage refused: a reload asks again */ }
  }

  const state = {
    wt: null, writer: null, selfId: null, heartbeat: null, inCall: false, leaving: false,
    audioMuted: false, videoMuted: false, participants: new Map(), media: null, local: null,
    keys: null, name: null, mediaGrantWaiter: null, rejoins: [], ended: false,
    // Whether this page's End for everyone was answered (the meeting ended by its host).
    endedByYou: false,
    // The call's read loop (a promise that settles when the stream ends).
    reading: null,
    // The admission token of this meeting, once the host let this page in (a guest).
    admission: typeof kept.admission === 'string' ? kept.admission : '',
    // The visitors of the host's waiting room already announced (their ids).
    waitingSeen: new Set(),
    // The visitor of the waiting room the host last let in or turned away, and where
    // in the list it was ({ id, index }), until a list comes without it.
    waitingDecision: null,
  };

  function makeTile(id, name, self) {
    const tile = document.createElement('figure');
    tile.className = self ? 'tile self' : 'tile remote';
    tile.dataset.participant = id;
    if (self) tile.dataset.self = '';
    else { tile.dataset.framesDecoded = '0'; tile.dataset.audioDecoded = '0'; }
    const view = document.createElement(self ? 'video' : 'canvas');
    if (self) { view.muted = true; view.autoplay = true; view.playsInline = true; }
    else { view.width = 640; view.height = 360; }
    const caption = document.createElement('figcaption');
    const label = document.createElement('span');
    label.className = 'name';
    label.textContent = self ? `${name} (you)` : name;
    const mic = document.createElement('span');
    mic.className = 'badge mic-off'; mic.textContent = 'mic off'; mic.hidden = true;
    const cam = document.createElement('span');
    cam.className = 'badge camera-off'; cam.textContent = 'camera off'; cam.hidden = true;
    caption.append(label, mic, cam);
    // Shown instead of the picture while the camera is off: the last frame would
    // otherwise stay, frozen, as if the person were still on camera.
    const placeholder = document.createElement('div');
    placeholder.className = 'placeholder';
    placeholder.hidden = true;
    placeholder.setAttribute('aria-hidden', 'true');
    placeholder.textContent = initialOf(name);
    tile.append(view, placeholder, caption);
    return tile;
  }

  /** A name's first letter (or symbol), upper-cased: a camera-off tile shows it. */
  function initialOf(name) {
    const first = Array.from((name || '').trim())[0];
    return first ? first.toUpperCase() : '?';
  }

  function showMute(tile, audioMuted, videoMuted) {
    tile.dataset.audioMuted = String(audioMuted);
    tile.dataset.videoMuted = String(videoMuted);
    tile.querySelector('.mic-off').hidden = !audioMuted;
    tile.querySelector('.camera-off').hidden = !videoMuted;
    tile.querySelector('.placeholder').hidden = !videoMuted;
    tile.querySelector('video, canvas').hidden = videoMuted;
  }

  function addParticipant(info) {
    if (!info.id || info.id === state.selfId) return;
    let p = state.participants.get(info.id);
    if (!p) {
      const tile = makeTile(info.id, info.name || 'Guest', false);
      $('tiles').append(tile);
      p = { id: info.id, name: info.name, tile, remote: null, wantLayer: null, sizer: null };
      state.participants.set(info.id, p);
      watchSize(p);
    }
    showMute(p.tile, info.audioMuted, info.videoMuted);
    if (state.keys) state.keys.peerJoined(info.id);
    if (state.media) state.media.requestKeyframes(info.id);
    countParticipants();
  }

  /** Asks for the small layer while the tile is shown small, the highest otherwise. */
  function watchSize(p) {
    if (typeof ResizeObserver === 'undefined') return;
    p.sizer = new ResizeObserver(() => {
      const width = p.tile.getBoundingClientRect().width;
      if (width <= 0) return; // not laid out (hidden): keep the choice
      const want = width < SMALL_TILE_PX ? 0 : null;
      if (want === p.wantLayer) return;
      p.wantLayer = want;
      if (state.media) state.media.chooseLayer(p.id, want);
    });
    p.sizer.observe(p.tile);
  }

  function removeParticipant(id) {
    const p = state.participants.get(id);
    if (!p) return;
    if (p.sizer) p.sizer.disconnect();
    if (p.remote) p.remote.close();
    p.tile.remove();
    state.participants.delete(id);
    if (state.keys) state.keys.peerLeft(id);
    countParticipants();
  }

  function countParticipants() {
    const others = state.participants.size;
    ui.status(others === 0
      ? 'In the meeting. Nobody else is here yet.'
      : `In the meeting with ${others} other${others === 1 ? '' : 's'}.`);
  }

  async function send(bytes) {
    if (!state.writer) return;
    await state.writer.write(framed(bytes));
  }

  /**
   * A join grant for a signed-in visitor (also where guests may not join), else for a
   * guest called `name`: `{ grant }`, or `{ error }` with the words to show.
   */
  async function fetchGrant(name) {
    try {
      let response = null;
      // A session that has expired falls back to joining as a guest.
      if (root.dataset.grantUrl) {
        const csrf = document.querySelector('meta[name="csrf-token"]');
        response = await fetch(root.dataset.grantUrl, {
          method: 'POST',
          headers: { accept: 'application/json', 'x-csrf-token': csrf ? csrf.content : '' },
          credentials: 'same-origin',
        });
        if (response.status === 401) response = null;
      }
      if (!response) {
        response = await fetch(`/api/v1/meetings/${encodeURIComponent(code)}/guest-token`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'application/json' },
          body: JSON.stringify({ display_name: name }),
          credentials: 'same-origin',
        });
      }
      const body = await response.json().catch(() => null);
      if (!response.ok) {
        return {
          error: refusalText(response.status, body, response.headers.get('retry-after')),
          // The form's field the refusal is about (a guest's name), if any.
          field: body && FIELDS[body.field] ? FIELDS[body.field].id : null,
          // No meeting server yet: one is starting (a restart), or will be assigned.
          retryable: response.status === 503,
        };
      }
      return { grant: body };
    } catch (e) {
      return { error: `Tavern could not be reached (${e.message}).`, retryable: true };
    }
  }

  /**
   * Joins as `name`. `again` (what to say meanwhile): the page was in the meeting and
   * joins again (it moved to another meeting server, its server is restarting, or the
   * connection was lost), so a grant refused for want of a meeting server, or Tavern
   * not answering, is asked for again after REJOIN_WAITS_MS, and so are CONNECTIONS
   * more connections when the last CONNECTIONS could not be made (the network may be
   * coming back).
   */
  async function join(name, again) {
    ui.error('');
    markInvalid(null);
    $('join').disabled = true;
    ui.status(again || 'Joining…');
    let local = null;
    let frames;
    let waits = again ? [...REJOIN_WAITS_MS] : [];
    const connectionWaits = again ? [...REJOIN_WAITS_MS] : [];
    // A connection the meeting server closed while it was being set up, or that is not
    // open within FIRST_TRY_WAIT_MS, is made again with a new grant (the last grant's
    // connection token may be spent), CONNECTIONS in all.
    for (let attempt = 1; ; attempt += 1) {
      const got = await fetchGrant(name);
      if (got.error && got.retryable && waits.length > 0) {
        ui.status('Waiting for a meeting server…');
        await delay(waits.shift());
        attempt -= 1;
        continue;
      }
      waits = [];
      if (got.error) {
        stopLocalMedia();
        return fail(got.error, false, got.field);
      }
      const grant = got.grant;
      // The name the others see (a signed-in visitor's account name): the own tile's.
      if (grant.display_name) {
        name = grant.display_name;
        if ($('name').readOnly) $('name').value = name;
      }
      if (!local) {
        if (grant.meeting && grant.meeting.display_name) {
          $('meeting-title').firstChild.textContent = `${grant.meeting.display_name} `;
          document.title = `${grant.meeting.display_name} · Tavern`;
        }
        // The camera and microphone start now, without holding up the join (not for an
        // end-to-end encrypted meeting this browser cannot encrypt: nothing would be sent).
        const e2e = Boolean(grant.meeting && grant.meeting.enable_e2e_encryption);
        local = e2e && !canEncrypt() ? Promise.resolve(null) : startLocalMedia();
      }
      try {
        state.wt = await openWebTransport(grant.webtransport_url, grant.wt_token,
          grant.certificate_hash, attempt < CONNECTIONS ? FIRST_TRY_WAIT_MS : 0);
        const stream = await state.wt.createBidirectionalStream();
        state.writer = stream.writable.getWriter();
        frames = new FrameReader(stream.readable, MAX_FRAME);
        await send(joinRequest(grant.token, state.admission));
        break;
      } catch (e) {
        hangUp();
        if (attempt < CONNECTIONS && typeof WebTransport !== 'undefined') {
          root.dataset.connectRetries = String(attempt);
          continue;
        }
        if (connectionWaits.length > 0 && typeof WebTransport !== 'undefined') {
          ui.status('Waiting for the meeting server to be reachable…');
          await delay(connectionWaits.shift());
          ui.status(again);
          attempt = 0;
          continue;
        }
        stopLocalMedia();
        return fail(`The meeting server could not be reached (${e.message}).`);
      }
    }
    // Only the page's current connection counts: one it hung up on itself (it joins
    // again meanwhile) closes unheard.
    const wt = state.wt;
    const ifCurrent = (info) => { if (state.wt === wt) closed(info); };
    wt.closed.then(ifCurrent, (e) => ifCurrent({ reason: e.message }));
    let first;
    let waited = false;
    let lost = null;
    try {
      // A meeting with a waiting room answers Waiting first: the answer that counts
      // comes once the host has let this page in, or not.
      for (;;) {
        let body;
        try {
          body = await frames.next();
        } catch (e) {
          lost = e.message;
          first = null;
          break;
        }
        first = body && decodeServer(body);
        if (waited && first && first.kind === 'heartbeat-ack') continue;
        if (!first || first.kind !== 'waiting') break;
        if (!waited) {
          // Heartbeats while waiting, as in the call: the server drops a visitor that
          // sends nothing for its presence timeout (a dead connection) from the host's list.
          clearInterval(state.heartbeat);
          state.heartbeat = setInterval(() => { send(heartbeat()).catch(() => {}); }, HEARTBEAT_MS);
        }
        waited = true;
        if (first.admission) { state.admission = first.admission; remember(name); }
        root.dataset.waiting = '1';
        ui.status('Waiting for the host to let you in…');
      }
    } catch (e) {
      first = { kind: 'error', code: 'invalid_message', message: e.message };
    }
    delete root.dataset.waiting;
    clearInterval(state.heartbeat);
    state.heartbeat = null;
    if (first && first.kind === 'error' && first.code === 'meeting_moved') {
      // The meeting moved while this page waited (or joined): it joins again there,
      // and waits there if it must.
      stopLocalMedia();
      hangUp();
      return join(name, 'The meeting moved to another server; joining again…');
    }
    if (waited && !first && (await lostWhileWaiting(wt))) {
      // The connection was lost while this page waited for the host (no answer came:
      // the host's decision, a waiting limit, an ended meeting and the like always do).
      // It joins anew, with a new grant, and waits again: at its place in the host's
      // list while the server still lists the lost connection (this page presents the
      // same account, or the token Waiting gave), else at the end.
      stopLocalMedia();
      hangUp();
      if (mayRejoin()) {
        root.dataset.rejoins = String(Number(root.dataset.rejoins || 0) + 1);
        return join(name, 'The connection was lost while waiting for the host; waiting again…');
      }
      return fail(`The connection to the meeting server was lost while waiting for the host${lost ? ` (${lost})` : ''}. Join again to wait again.`);
    }
    if (!first || first.kind !== 'joined') {
      stopLocalMedia();
      hangUp();
      if (!first) return fail('The meeting server closed the connection before answering.');
      // A visitor waiting for the host whose meeting ended as everyone in it left is
      // told so, not only that it ended.
      if (first.kind === 'error' && first.code === 'meeting_emptied') {
        return fail(EMPTIED, true);
      }
      return fail(first.kind === 'error' ? (REFUSALS[first.code] || first.message || first.code)
        : 'The meeting server answered out of turn.');
    }
    joined(first, name, local);
    state.reading = readLoop(frames);
  }

  /**
   * Whether the connection `wt`, whose stream ended while the page waited for the host
   * with no answer, was lost rather than closed for good: closed without a code (the
   * network), or by the meeting server (CLOSE_BY_CONTROLLER) for another reason than a
   * flood of messages. Its close is waited for FIRST_TRY_WAIT_MS at most; a connection
   * still not closed by then is taken for lost.
   */
  async function lostWhileWaiting(wt) {
    const info = await Promise.race([
      wt.closed.then((i) => i || {}, (e) => ({ reason: e.message })),
      delay(FIRST_TRY_WAIT_MS).then(() => ({})),
    ]);
    const code = info.closeCode;
    const reason = info.reason || '';
    return (code === undefined || code === CLOSE_BY_CONTROLLER) && !reason.startsWith('rate_limited');
  }

  /**
   * Out of the meeting saying `message`; `ended`: the meeting has ended; `field`: the
   * id of the join form's field the message is about, marked so and given the focus
   * (when the focus was lost with the form's Join).
   */
  function fail(message, ended, field) {
    ui.status('');
    ui.error(message);
    $('join').disabled = false;
    // An ended meeting cannot be joined again: no form for it.
    $('join-form').hidden = Boolean(ended) || message === REFUSALS.meeting_ended;
    $('call').hidden = true;
    if (field && !$('join-form').hidden) {
      markInvalid(field);
      const active = document.activeElement;
      if (!active || active === document.body || active === $('join')) $(field).focus();
    }
  }

  /** What an ended meeting's page says once its host ended it during the call. */
  const HOST_ENDED = 'The host ended this meeting.';
  /** What the page says to the host whose meeting ended (they ended it). */
  const YOU_ENDED = 'You ended this meeting.';
  /** How the controller closes the sessions of a meeting that ended. */
  const ENDED_CLOSE_REASON = 'the meeting has ended';
  /** What the page says to the participant whose Leave emptied the meeting (which ended). */
  const LEFT_LAST = 'You left; the meeting ended because nobody was left in it.';
  /**
   * What the page says to a visitor waiting for the host when everyone in the meeting
   * left (refused with meeting_emptied).
   */
  const EMPTIED = 'The meeting ended: everyone in it left.';

  /**
   * The meeting ended while this page was in it (its host ended it): out of the call,
   * saying `why` (`#ended`), with no "Join again" and no join form, since an ended
   * meeting cannot be joined; `data-ended` on `#meet`.
   */
  function meetingEnded(why) {
    state.ended = true;
    root.dataset.ended = '1';
    ui.error('');
    finish();
    $('ended-text').textContent = why;
    $('ended').hidden = false;
    $('left').hidden = true;
    $('join-form').hidden = true;
  }

  function joined(response, name, local) {
    state.inCall = true;
    if (response.admission) state.admission = response.admission;
    state.name = name;
    remember(name);
    state.selfId = response.participantId;
    root.dataset.participant = response.participantId;
    root.dataset.meeting = response.meetingId;
    if (response.meetingName) {
      $('meeting-title').firstChild.textContent = `${response.meetingName} `;
    }
    // The focus was on Join (or nowhere, joining by itself): it moves into the call,
    // to its heading, rather than staying on the hidden form.
    const active = document.activeElement;
    const moveFocus = !active || active === document.body || $('join-form').contains(active);
    $('join-form').hidden = true;
    $('call').hidden = false;
    if (moveFocus) $('call-title').focus();
    const self = makeTile(response.participantId, name, true);
    showMute(self, state.audioMuted, state.videoMuted);
    $('tiles').prepend(self);
    if (response.e2e) {
      root.dataset.e2e = '1';
      showEncryption();
      if (canEncrypt()) {
        state.keys = new KeyRing(response.participantId);
        state.keys.start();
      }
    }
    for (const info of response.participants) addParticipant(info);
    countParticipants();
    state.heartbeat = setInterval(() => { send(heartbeat()).catch(() => {}); }, HEARTBEAT_MS);
    local.then((stream) => {
      if (!state.inCall || !stream) return;
      self.querySelector('video').srcObject = stream;
      listDevices();
      if (state.media) state.media.publish(stream);
    });
    if (response.e2e && !state.keys) {
      // Frames of an end-to-end encrypted meeting must be encrypted in the browser;
      // without WebCrypto nothing is sent rather than sent in the clear.
      ui.mediaStatus('This meeting is end-to-end encrypted, which this browser cannot do here (no WebCrypto): audio and video are off, the others see your name only.');
    } else if (response.media) {
      startMedia(response.media, local);
    } else {
      ui.mediaStatus('Audio and video are not available in this meeting yet: the others see your name only.');
    }
  }

  async function readLoop(frames) {
    try {
      for (;;) {
        const body = await frames.next();
        if (!body) break;
        const message = decodeServer(body);
        // An Error that ends the session: the controller waits for this page to close
        // the connection, having read it (proto.rs), so the page acts on it at once
        // (unless it is leaving anyway: Leave reads on to the end, then closes).
        const ends = message.kind === 'error'
          && (message.code === 'meeting_moved' || message.code === 'auth_required');
        if (ends && state.leaving) continue;
        if (ends && message.code === 'meeting_moved') {
          movedAway();
          return;
        }
        if (ends) {
          finish();
          fail(REFUSALS.auth_required);
          return;
        }
        handle(message);
      }
    } catch (e) {
      if (state.inCall && !state.leaving) ui.error(`The connection to the meeting broke (${e.message}).`);
    }
  }

  function handle(message) {
    switch (message.kind) {
      case 'participant-joined': addParticipant(message.participant); break;
      case 'more-participants':
        for (const info of message.participants) addParticipant(info);
        countParticipants();
        break;
      case 'participant-left': removeParticipant(message.id); break;
      case 'mute': {
        const p = state.participants.get(message.id);
        if (p) showMute(p.tile, message.audioMuted, message.videoMuted);
        break;
      }
      case 'ended':
        // MeetingEnded.code (proto.rs): left_last, ended_by_you, or meeting_ended.
        meetingEnded(message.code === 'left_last' ? LEFT_LAST
          : message.code === 'ended_by_you' ? YOU_ENDED : HOST_ENDED);
        break;
      case 'media-grant':
        if (state.mediaGrantWaiter) state.mediaGrantWaiter({ grant: message.media });
        break;
      case 'waiting-room': showWaitingRoom(message.waiting); break;
      case 'error':
        // A key exchange dropped because its recipient does not keep up: the page says
        // hello to that one again after a while (KeyRing.busy), nothing for the person
        // to do.
        if (message.code === 'recipient_busy') {
          if (state.keys && message.participantId) state.keys.busy(message.participantId);
          break;
        }
        // The answer to a RequestMediaGrant (see askMediaGrant()), which says so: a
        // rate_limited of the message budget is no answer to it.
        if (message.answers === 'request_media_grant' && state.mediaGrantWaiter) {
          state.mediaGrantWaiter({ error: message.message || message.code });
          break;
        }
        ui.error(REFUSALS[message.code] || message.message || message.code);
        break;
      case 'e2e-key':
        if (state.keys) state.keys.received(message.from, message.payload);
        break;
      default: break;
    }
  }

  /**
   * The host's list of those waiting to be let in, each with Admit and Deny; hidden
   * while nobody waits. Each list replaces the one before, and the keyboard focus
   * stays where it was in it: on the same visitor's button, or, once the visitor the
   * host decided on is gone from the list, on the next one's Admit (else the one
   * before's), else on the call's heading.
   */
  function showWaitingRoom(waiting) {
    let room = $('waiting-room');
    if (!room) {
      room = document.createElement('section');
      room.id = 'waiting-room';
      room.setAttribute('aria-label', 'Waiting to be let in');
      const title = document.createElement('h2');
      title.textContent = 'Waiting to be let in';
      const list = document.createElement('ul');
      list.id = 'waiting-list';
      room.append(title, list);
      $('tiles').before(room);
    }
    const list = $('waiting-list');
    const active = document.activeElement;
    const focusLost = !active || active === document.body;
    const focused = list.contains(active) && active.closest('li')
      ? { id: active.closest('li').dataset.visitor, className: active.className }
      : null;
    const decided = state.waitingDecision;
    list.replaceChildren();
    waiting.forEach((visitor, index) => {
      const item = document.createElement('li');
      item.dataset.visitor = visitor.id;
      const name = document.createElement('span');
      name.className = 'visitor-name';
      name.textContent = visitor.name;
      const decide = (admit) => {
        const button = document.createElement('button');
        button.type = 'button';
        button.className = admit ? 'admit' : 'deny';
        button.textContent = admit ? 'Admit' : 'Deny';
        button.setAttribute('aria-label', `${admit ? 'Admit' : 'Deny'} ${visitor.name}`);
        button.disabled = Boolean(decided && decided.id === visitor.id);
        button.addEventListener('click', () => {
          state.waitingDecision = { id: visitor.id, index };
          item.querySelectorAll('button').forEach((b) => { b.disabled = true; });
          send(admission(visitor.id, admit)).catch(() => {});
        });
        return button;
      };
      item.append(name, ' ', decide(true), ' ', decide(false));
      list.append(item);
    });
    const button = (id, className) => {
      const item = Array.from(list.children).find((li) => li.dataset.visitor === id);
      const found = item && item.querySelector(`button.${className}`);
      return found && !found.disabled ? found : null;
    };
    let target = focused ? button(focused.id, focused.className) : null;
    if (decided && !waiting.some((v) => v.id === decided.id)) {
      state.waitingDecision = null;
      if (!target && (focusLost || focused)) {
        const next = waiting[decided.index] || waiting[decided.index - 1];
        target = (next && button(next.id, 'admit')) || $('call-title');
      }
    }
    room.hidden = waiting.length === 0;
    if (target) target.focus();
    root.dataset.waitingCount = String(waiting.length);
    announceArrivals(waiting);
  }

  /**
   * Says who has started waiting since the last list (`#waiting-news`, a polite live
   * region): "Ana is waiting to join", with how many wait when others already did.
   * Those already announced are not announced again.
   */
  function announceArrivals(waiting) {
    const arrived = waiting.filter((v) => !state.waitingSeen.has(v.id));
    state.waitingSeen = new Set(waiting.map((v) => v.id));
    const news = $('waiting-news');
    if (!news || arrived.length === 0) return;
    const names = arrived.map((v) => v.name || 'Someone');
    const who = names.length === 1 ? names[0]
      : `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
    const all = waiting.length > arrived.length ? ` (${waiting.length} waiting)` : '';
    news.textContent = `${who} ${names.length === 1 ? 'is' : 'are'} waiting to join${all}.`;
  }

  /**
   * The meeting moved to another meeting server: the page leaves this one's session
   * and joins again there with a new grant (not counted as a lost connection).
   */
  function movedAway() {
    finish();
    $('left').hidden = true;
    join(state.name, 'The meeting moved to another server; joining again…');
  }

  function closed(info) {
    if (!state.inCall) return;
    // The controller closes a meeting that ended after saying so (MeetingEnded), and
    // waits for the page to close first (proto.rs); its close's reason says it too,
    // where a browser is shown it (not from this controller: its QUIC close reaches
    // the page as a lost connection).
    if (info && info.reason === ENDED_CLOSE_REASON && !state.leaving) {
      meetingEnded(state.endedByYou ? YOU_ENDED : HOST_ENDED);
      return;
    }
    // A connection lost (the network, or the meeting server closing it: silence, too
    // slow to keep up, a participant removed for want of a heartbeat) is joined again
    // at once, at most REJOINS_ALLOWED times in REJOIN_WINDOW_MS; a protocol error or
    // a normal close is not.
    const code = info ? info.closeCode : undefined;
    if (!state.leaving && (code === undefined || code === CLOSE_BY_CONTROLLER) && mayRejoin()) {
      finish();
      $('left').hidden = true;
      root.dataset.rejoins = String(Number(root.dataset.rejoins || 0) + 1);
      join(state.name, 'The connection to the meeting was lost; joining again…');
      return;
    }
    if (!state.leaving && !root.dataset.error) {
      const reason = info && info.reason ? ` (${info.reason})` : '';
      ui.error(`The meeting server closed the connection${reason}.`);
    }
    finish();
  }

  /** Whether another automatic rejoin fits in the budget (and counts it). */
  function mayRejoin() {
    const now = performance.now();
    state.rejoins = state.rejoins.filter((at) => now - at < REJOIN_WINDOW_MS);
    if (state.rejoins.length >= REJOINS_ALLOWED) return false;
    state.rejoins.push(now);
    return true;
  }

  /** Out of the call: timers, media and tiles stop; "Join again" is offered. */
  function finish() {
    if (!state.inCall) return;
    state.inCall = false;
    clearInterval(state.heartbeat);
    if (state.keys) state.keys.close();
    state.keys = null;
    if (state.media) state.media.close();
    state.media = null;
    stopLocalMedia();
    for (const id of [...state.participants.keys()]) removeParticipant(id);
    $('tiles').replaceChildren();
    if ($('waiting-room')) $('waiting-room').remove();
    if ($('waiting-news')) $('waiting-news').textContent = '';
    state.waitingDecision = null;
    $('call').hidden = true;
    $('left').hidden = Boolean(state.ended);
    ui.status('');
    hangUp();
  }

  function hangUp() {
    const wt = state.wt;
    state.wt = null;
    state.writer = null;
    if (wt) { try { wt.close({ closeCode: 0, reason: 'left' }); } catch (_) { /* closed */ } }
  }

  async function leave() {
    if (!state.inCall || state.leaving) return;
    state.leaving = true;
    $('leave').disabled = true;
    ui.status('Leaving…');
    const reading = state.reading;
    try {
      await send(leaveMessage());
      // Nothing more to say. The controller stops reading once it has the Leave: its
      // STOP_SENDING may fail this close, which is no reason not to read on.
      state.writer.close().catch(() => {});
    } catch (_) { /* already closed */ }
    // The controller ends its stream once the leave is done, after saying whether the
    // meeting ended with it: read to the end, then close the connection (finish()).
    // The controller waits for that close, since closing the connection itself could
    // drop what this page had received and not yet read. Do not wait forever.
    await Promise.race([reading, delay(LEAVE_WAIT_MS)]);
    finish();
    state.leaving = false;
    $('leave').disabled = false;
  }

  function toggleMute(kind) {
    if (kind === 'audio') state.audioMuted = !state.audioMuted;
    else state.videoMuted = !state.videoMuted;
    // The label says what the button does now; no aria-pressed besides (a screen
    // reader would say "Unmute microphone, pressed"). data-state styles it.
    const audio = $('mute-audio'), video = $('mute-video');
    audio.dataset.state = state.audioMuted ? 'off' : 'on';
    audio.textContent = state.audioMuted ? 'Unmute microphone' : 'Mute microphone';
    video.dataset.state = state.videoMuted ? 'off' : 'on';
    video.textContent = state.videoMuted ? 'Turn camera on' : 'Turn camera off';
    if (state.local) {
      for (const t of state.local.getAudioTracks()) t.enabled = !state.audioMuted;
      for (const t of state.local.getVideoTracks()) t.enabled = !state.videoMuted;
    }
    const self = document.querySelector('.tile.self');
    if (self) showMute(self, state.audioMuted, state.videoMuted);
    if (kind === 'video' && !state.videoMuted && state.media) state.media.forceKeyframe(TRACK_VIDEO);
    send(setMute(state.audioMuted, state.videoMuted)).catch(() => {});
    // Turned on again after its device stopped (deviceStopped): the devices are asked
    // for again.
    const tracks = state.local
      ? (kind === 'video' ? state.local.getVideoTracks() : state.local.getAudioTracks()) : [];
    const on = kind === 'video' ? !state.videoMuted : !state.audioMuted;
    if (on && tracks.length > 0 && tracks.every((t) => t.readyState === 'ended')) switchDevices();
  }

  /**
   * A device of `stream` stopped while in use (unplugged, taken by another app, its
   * permission withdrawn: its track ended). It is turned off as if its button had
   * been pressed, so the others see the camera-off tile (or the muted microphone)
   * rather than a frozen picture, and the page says what happened.
   */
  function deviceStopped(stream, kind) {
    if (state.local !== stream) return;
    const camera = kind === 'video';
    if (camera ? !state.videoMuted : !state.audioMuted) toggleMute(kind);
    ui.mediaStatus(camera
      ? 'Your camera stopped (unplugged, or taken by another app): turn it on to try again, or pick another under Devices.'
      : 'Your microphone stopped (unplugged, or taken by another app): unmute it to try again, or pick another under Devices.');
    listDevices();
  }

  // ---------------------------------------------------------------------------------
  // Local devices.

  async function startLocalMedia(cameraId, microphoneId) {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      ui.mediaStatus('This browser cannot use a camera or a microphone on this page.');
      return null;
    }
    const video = { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 24 } };
    if (cameraId) video.deviceId = { exact: cameraId };
    const audio = microphoneId ? { deviceId: { exact: microphoneId } } : true;
    let stream = null;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video, audio });
    } catch (e) {
      try {
        stream = await navigator.mediaDevices.getUserMedia({ audio });
        ui.mediaStatus(`No camera (${e.message}); the others hear you only.`);
      } catch (e2) {
        ui.mediaStatus(`No camera or microphone (${e2.message}); the others see your name only.`);
        return null;
      }
    }
    for (const t of stream.getAudioTracks()) t.enabled = !state.audioMuted;
    for (const t of stream.getVideoTracks()) t.enabled = !state.videoMuted;
    for (const t of stream.getTracks()) t.addEventListener('ended', () => deviceStopped(stream, t.kind));
    state.local = stream;
    return stream;
  }

  function stopLocalMedia() {
    if (state.local) for (const t of state.local.getTracks()) t.stop();
    state.local = null;
  }

  async function listDevices() {
    if (!navigator.mediaDevices.enumerateDevices) return;
    const devices = await navigator.mediaDevices.enumerateDevices();
    const current = (kind) => {
      const track = state.local && (kind === 'videoinput'
        ? state.local.getVideoTracks()[0] : state.local.getAudioTracks()[0]);
      return track ? track.getSettings().deviceId : '';
    };
    for (const [select, kind] of [[$('camera'), 'videoinput'], [$('microphone'), 'audioinput']]) {
      select.replaceChildren();
      const chosen = current(kind);
      devices.filter((d) => d.kind === kind).forEach((d, i) => {
        const option = new Option(d.label || `${kind === 'videoinput' ? 'Camera' : 'Microphone'} ${i + 1}`, d.deviceId);
        option.selected = d.deviceId === chosen;
        select.append(option);
      });
    }
  }

  async function switchDevices() {
    if (!state.inCall) return;
    stopLocalMedia();
    const stream = await startLocalMedia($('camera').value, $('microphone').value);
    if (!stream || !state.inCall) return;
    // Asked for again and not found: off, as the others are told.
    if (!state.videoMuted && stream.getVideoTracks().length === 0) toggleMute('video');
    if (!state.audioMuted && stream.getAudioTracks().length === 0) toggleMute('audio');
    const self = document.querySelector('.tile.self video');
    if (self) self.srcObject = stream;
    if (state.media) state.media.publish(stream);
  }

  // ---------------------------------------------------------------------------------
  // Media: the handler session, publishing and receiving.

  let audioContext = null;
  function sharedAudioContext() {
    if (!audioContext && typeof AudioContext !== 'undefined') audioContext = new AudioContext({ sampleRate: 48000 });
    if (audioContext && audioContext.state === 'suspended') audioContext.resume().catch(() => {});
    return audioContext;
  }

  /**
   * The media session of this call, kept open: a media connection that fails to open
   * (or is not open within FIRST_TRY_WAIT_MS, doubled for each failure in a row before
   * it), or that is lost during the call, is made
   * again with a new media grant asked of the meeting server (the last grant's
   * connection token may be spent; the server names another media server when this one
   * stopped): at once, then after MEDIA_RETRY_MS, doubling, up to MEDIA_TRIES failures
   * in a row. `data-media-retries` on #meet counts the new grants used.
   */
  async function startMedia(grant, local) {
    const call = state.selfId;
    const current = () => state.inCall && state.selfId === call;
    let failures = 0;
    for (;;) {
      const media = new MediaSession();
      state.media = media;
      let why;
      try {
        // A try is given up when not open within 3 s, then 6, 12, ...: a lost set-up
        // is not waited out, and a slow network still gets longer each time.
        await media.open(grant, FIRST_TRY_WAIT_MS * 2 ** failures);
        if (state.media !== media) { media.close(); return; }
        ui.mediaStatus('');
        failures = 0;
        // The camera and microphone as they are now (the visitor may have switched).
        await local;
        if (state.local && state.media === media) media.publish(state.local);
        why = await media.lost();
        if (state.media !== media) return;
        ui.mediaStatus(`The connection to the media server broke (${why}); reconnecting…`);
      } catch (e) {
        if (state.media !== media) return;
        why = e.message;
        ui.mediaStatus(`The media server could not be reached (${why}); trying again…`);
      }
      media.close();
      state.media = null;
      failures += 1;
      if (failures > MEDIA_TRIES) {
        ui.mediaStatus(`The media server could not be reached (${why}); the others see your name only.`);
        return;
      }
      if (failures > 1) await delay(MEDIA_RETRY_MS * 2 ** (failures - 2));
      if (!current()) return;
      const asked = await askMediaGrant();
      if (!current()) return;
      if (!asked.grant) {
        ui.mediaStatus(`No media server can be reached now (${asked.error}); the others see your name only.`);
        return;
      }
      grant = asked.grant;
      root.dataset.mediaRetries = String(Number(root.dataset.mediaRetries || 0) + 1);
    }
  }

  /** A new media grant from the meeting server: `{ grant }`, or `{ error }`. */
  async function askMediaGrant() {
    if (state.mediaGrantWaiter) return { error: 'already asking' };
    const answer = new Promise((resolve) => {
      const timer = setTimeout(() => resolve({ error: 'no answer from the meeting server' }),
        MEDIA_GRANT_WAIT_MS);
      state.mediaGrantWaiter = (a) => { clearTimeout(timer); resolve(a); };
    });
    try {
      await send(requestMediaGrant());
    } catch (e) {
      state.mediaGrantWaiter({ error: e.message });
    }
    const got = await answer;
    state.mediaGrantWaiter = null;
    return got;
  }

  class MediaSession {
    constructor() {
      this.wt = null; this.control = null; this.seq = [0, 0, 0]; this.inflight = 0;
      this.generation = 0; this.keyNext = [false, true, true]; this.closed = false;
      // The camera's layers: the next frame a key frame, and the sequence numbers.
      this.layerKey = VIDEO_LAYERS.map(() => true);
      this.layerSeq = VIDEO_LAYERS.map(() => 0);
      this.lastAsk = new Map();
      this.levelTimer = null;
    }

    async open(grant, waitMs) {
      this.wt = await openWebTransport(grant.url, grant.wtToken, grant.certificateHash, waitMs);
      const control = await this.wt.createBidirectionalStream();
      this.control = control.writable.getWriter();
      this.controlLoop(new FrameReader(control.readable, MAX_FRAME));
      this.receiveLoop();
      for (const p of state.participants.values()) {
        if (p.wantLayer !== null) this.chooseLayer(p.id, p.wantLayer);
        this.requestKeyframes(p.id);
      }
      this.levelTimer = setInterval(() => this.highlightSpeaker(), 300);
    }

    /** Resolves with the reason when the session ends other than by close(). */
    lost() {
      return this.wt.closed.then((info) => (info && info.reason) || 'closed',
        (e) => e.message || 'failed');
    }

    close() {
      this.closed = true;
      this.generation++;
      clearInterval(this.levelTimer);
      for (const p of state.participants.values()) { if (p.remote) p.remote.close(); p.remote = null; }
      if (this.wt) { try { this.wt.close({ closeCode: 0, reason: 'left' }); } catch (_) { /* closed */ } }
    }

    async controlLoop(frames) {
      try {
        for (;;) {
          const body = await frames.next();
          if (!body) return;
          const f = parseProto(body);
          if (num(f, 1) !== 1) return;
          const request = msg(f, 2);
          // KeyframeRequest { uint32 track = 1; ...; optional uint32 layer = 3; }
          if (request) this.forceKeyframe(num(request, 1), request.has(3) ? num(request, 3) : null);
        }
      } catch (_) { /* the session ended */ }
    }

    /** The next frame of `track` is a key frame: on `layer` only, or (null) on every layer. */
    forceKeyframe(track, layer) {
      if (track === TRACK_VIDEO) {
        this.layerKey.forEach((_, l) => { if (layer == null || layer === l) this.layerKey[l] = true; });
      } else if (track >= 0 && track < this.keyNext.length) {
        this.keyNext[track] = true;
      }
    }

    /** Receives `publisher`'s camera on layers up to `maxLayer` (null: the highest). */
    chooseLayer(publisher, maxLayer) {
      if (!this.control || this.closed) return;
      this.control.write(framed(setLayer(publisher, TRACK_VIDEO, maxLayer))).catch(() => {});
    }

    /** Asks `publisher` for a key frame (at most once a second unless `force`d). */
    requestKeyframe(publisher, track, force) {
      if (!this.control || this.closed) return;
      const key = `${publisher}/${track}`;
      const now = performance.now();
      if (!force && now - (this.lastAsk.get(key) || -1e9) < 1000) return;
      this.lastAsk.set(key, now);
      this.control.write(framed(requestKeyframe(publisher, track))).catch(() => {});
    }

    requestKeyframes(publisher) { this.requestKeyframe(publisher, TRACK_VIDEO); }

    /** Encodes the tracks of `stream` (replacing any earlier ones) and sends the frames. */
    publish(stream) {
      const generation = ++this.generation;
      if (typeof MediaStreamTrackProcessor === 'undefined') {
        ui.mediaStatus('This browser cannot encode video here (no MediaStreamTrackProcessor): the others cannot see you.');
        return;
      }
      const video = stream.getVideoTracks()[0];
      const audio = stream.getAudioTracks()[0];
      if (video && typeof VideoEncoder !== 'undefined') this.pumpVideo(video, generation);
      if (audio && typeof AudioEncoder !== 'undefined') this.pumpAudio(audio, generation);
    }

    async pumpVideo(track, generation) {
      const reader = new MediaStreamTrackProcessor({ track }).readable.getReader();
      // One encoder per layer: { encoder, width, height, canvas (a scaled copy's) }.
      let layers = [];
      let width = 0, height = 0, count = 0;
      const closeAll = () => {
        for (const l of layers) if (l.encoder.state !== 'closed') l.encoder.close();
        layers = [];
      };
      try {
        for (;;) {
          const { value: frame, done } = await reader.read();
          if (done) break;
          if (generation !== this.generation) { frame.close(); break; }
          if (state.videoMuted || layers.some((l) => l.encoder.encodeQueueSize > 2)) { frame.close(); continue; }
          if (!layers.length || layers.some((l) => l.encoder.state === 'closed')
              || frame.displayWidth !== width || frame.displayHeight !== height) {
            closeAll();
            width = frame.displayWidth; height = frame.displayHeight;
            layers = VIDEO_LAYERS.map((spec, layer) => this.videoLayer(spec, layer, width, height))
              .filter((l) => l !== null);
          }
          const periodic = count % 240 === 0;
          for (const l of layers) {
            const keyFrame = this.layerKey[l.layer] || periodic;
            this.layerKey[l.layer] = false;
            if (!l.canvas) { l.encoder.encode(frame, { keyFrame }); continue; }
            l.context.drawImage(frame, 0, 0, l.width, l.height);
            const scaled = new VideoFrame(l.canvas, { timestamp: frame.timestamp });
            l.encoder.encode(scaled, { keyFrame });
            scaled.close();
          }
          frame.close();
          count++;
        }
      } catch (e) {
        if (!this.closed) ui.mediaStatus(`Video stopped (${e.message}).`);
      } finally {
        reader.cancel().catch(() => {});
        closeAll();
      }
    }

    /**
     * The encoder of camera `layer` (`spec` of VIDEO_LAYERS) for frames of width x height;
     * null for a scaled layer where the browser cannot scale (no OffscreenCanvas: the
     * handler then sends the small tiles the lowest layer there is).
     */
    videoLayer(spec, layer, width, height) {
      if (spec.scale !== 1 && typeof OffscreenCanvas === 'undefined') return null;
      const even = (n) => Math.max(2, Math.round(n * spec.scale / 2) * 2);
      const l = {
        layer,
        width: spec.scale === 1 ? width : even(width),
        height: spec.scale === 1 ? height : even(height),
      };
      if (spec.scale !== 1) {
        l.canvas = new OffscreenCanvas(l.width, l.height);
        l.context = l.canvas.getContext('2d');
      }
      l.encoder = new VideoEncoder({
        output: (chunk) => this.sendChunk(TRACK_VIDEO, chunk, layer),
        error: (e) => ui.mediaStatus(`Video encoding stopped (${e.message}).`),
      });
      l.encoder.configure({
        codec: 'vp8', width: l.width, height: l.height, bitrate: spec.bitrate, framerate: 24,
        latencyMode: 'realtime',
      });
      this.layerKey[layer] = true;
      return l;
    }

    async pumpAudio(track, generation) {
      const reader = new MediaStreamTrackProcessor({ track }).readable.getReader();
      let encoder = null;
      try {
        for (;;) {
          const { value: data, done } = await reader.read();
          if (done) break;
          if (generation !== this.generation) { data.close(); break; }
          if (state.audioMuted) { data.close(); continue; }
          if (!encoder || encoder.state === 'closed') {
            encoder = new AudioEncoder({
              output: (chunk) => this.sendChunk(TRACK_AUDIO, chunk),
              error: (e) => ui.mediaStatus(`Audio encoding stopped (${e.message}).`),
            });
            encoder.configure({
              codec: 'opus', sampleRate: data.sampleRate,
              numberOfChannels: Math.min(2, data.numberOfChannels), bitrate: 32_000,
            });
          }
          encoder.encode(data);
          data.close();
        }
      } catch (e) {
        if (!this.closed) ui.mediaStatus(`Audio stopped (${e.message}).`);
      } finally {
        reader.cancel().catch(() => {});
        if (encoder && encoder.state !== 'closed') encoder.close();
      }
    }

    /** The contract's 16-byte header, then the encoded bytes, on a stream of its own. */
    sendChunk(track, chunk, layer = 0) {
      if (this.closed || !this.wt) return;
      const key = chunk.type === 'key';
      if (this.inflight > 60 && !(track === TRACK_VIDEO && key)) {
        // Behind: drop, and restart that video layer from a key frame.
        if (track === TRACK_VIDEO) this.layerKey[layer] = true;
        return;
      }
      const keys = state.keys;
      if (keys && !keys.ready()) {
        // No sender key yet: nothing leaves in the clear; video restarts from a key frame.
        if (track === TRACK_VIDEO) this.layerKey[layer] = true;
        return;
      }
      const frame = new Uint8Array(16 + chunk.byteLength);
      if (frame.length + (keys ? E2E_OVERHEAD : 0) > MAX_MEDIA_FRAME) return;
      const view = new DataView(frame.buffer);
      frame[0] = 1;
      frame[1] = track;
      frame[2] = (key ? 1 : 0) | (keys ? 2 : 0);
      frame[3] = layer;
      view.setBigUint64(4, BigInt(Math.max(0, Math.round(chunk.timestamp))));
      // Sequence numbers count per (track, layer): each layer is a stream of its own.
      const seqs = track === TRACK_VIDEO ? this.layerSeq : this.seq;
      const at = track === TRACK_VIDEO ? layer : track;
      view.setUint32(12, seqs[at]);
      seqs[at] = (seqs[at] + 1) >>> 0;
      chunk.copyTo(frame.subarray(16));
      if (keys) this.sendEncrypted(keys, frame);
      else this.sendFrame(frame);
    }

    /** Encrypts the frame's payload (the header travels in the clear), then sends it. */
    async sendEncrypted(keys, frame) {
      this.inflight++;
      let sealed = null;
      try {
        sealed = await keys.seal(frame.subarray(0, 16), frame.subarray(16));
      } catch (_) { /* the key went away: the frame is lost like a late one */ }
      this.inflight--;
      if (sealed) this.sendFrame(sealed);
      else if (frame[1] === TRACK_VIDEO) this.layerKey[frame[3]] = true;
    }

    async sendFrame(bytes) {
      this.inflight++;
      try {
        const stream = await this.wt.createUnidirectionalStream();
        const writer = stream.getWriter();
        await writer.write(bytes);
        await writer.close();
      } catch (_) {
        // The session is closing; the frame is lost like any other late one.
      } finally {
        this.inflight--;
      }
    }

    async receiveLoop() {
      const reader = this.wt.incomingUnidirectionalStreams.getReader();
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) return;
          this.receiveStream(value);
        }
      } catch (_) { /* the session ended */ }
    }

    /** A forwarded stream: the publisher's id, then its frames, each behind its length. */
    async receiveStream(stream) {
      const input = new FrameReader(stream, MAX_MEDIA_FRAME);
      try {
        const id = await input.take(16);
        if (!id) return;
        const publisher = uuidString(id);
        for (;;) {
          const bytes = await input.next();
          if (!bytes || this.closed) return;
          await this.receiveFrame(publisher, bytes);
        }
      } catch (_) {
        input.reader.cancel().catch(() => {}); // a bad length, or the session ended
      }
    }

    async receiveFrame(publisher, bytes) {
      if (bytes.length < 16 || bytes[0] !== 1) return;
      const p = state.participants.get(publisher);
      if (!p || this.closed) return;
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      const frame = {
        track: bytes[1],
        key: (bytes[2] & 1) === 1,
        encrypted: (bytes[2] & 2) === 2,
        layer: bytes[3],
        timestamp: Number(view.getBigUint64(4)),
        seq: view.getUint32(12),
        payload: bytes.subarray(16),
      };
      const keys = state.keys;
      if (keys) {
        // An end-to-end encrypted meeting takes encrypted frames only.
        if (!frame.encrypted) return;
        frame.payload = await keys.open(publisher, bytes.subarray(0, 16), frame.payload);
        if (!frame.payload || this.closed || state.keys !== keys) return;
      } else if (frame.encrypted) {
        return; // no keys in a meeting that is not end-to-end encrypted
      }
      if (!p.remote) p.remote = new RemoteMedia(p, this);
      p.remote.push(frame);
    }

    highlightSpeaker() {
      let loudest = null, level = 0.02;
      for (const p of state.participants.values()) {
        const l = p.remote ? p.remote.level : 0;
        if (p.remote) p.remote.level *= 0.5;
        if (l > level) { level = l; loudest = p; }
      }
      for (const p of state.participants.values()) p.tile.classList.toggle('speaking', p === loudest);
    }
  }

  /** Frames of one (publisher, track) put back in sequence order (streams may overtake). */
  class Reorder {
    constructor(deliver) { this.deliver = deliver; this.next = null; this.held = new Map(); }
    push(frame) {
      if (this.next === null) this.next = frame.seq;
      const ahead = (frame.seq - this.next) >>> 0;
      if (ahead >= 0x80000000) return; // older than what was delivered: too late
      this.held.set(frame.seq, frame);
      this.flush(false);
      if (this.held.size > 6) {
        // A gap that does not fill: go on from the oldest frame held.
        let oldest = null, best = Infinity;
        for (const seq of this.held.keys()) {
          const d = (seq - this.next) >>> 0;
          if (d < best) { best = d; oldest = seq; }
        }
        this.next = oldest;
        this.flush(true);
      }
    }
    flush(gap) {
      while (this.held.has(this.next)) {
        const frame = this.held.get(this.next);
        this.held.delete(this.next);
        this.next = (this.next + 1) >>> 0;
        frame.gap = gap;
        gap = false;
        this.deliver(frame);
      }
    }
  }

  /** One other participant's decoders, into their tile. */
  class RemoteMedia {
    constructor(participant, session) {
      this.p = participant; this.session = session;
      this.canvas = participant.tile.querySelector('canvas');
      this.context2d = this.canvas.getContext('2d');
      this.video = null; this.audio = null; this.needKey = true;
      // The tile's counts go on across media sessions (a reconnection).
      this.framesDecoded = Number(participant.tile.dataset.framesDecoded) || 0;
      this.audioDecoded = Number(participant.tile.dataset.audioDecoded) || 0;
      this.playAt = 0; this.level = 0;
      this.audioOrder = new Reorder((f) => this.decodeAudio(f));
      // The camera's frames are put in order per layer (each numbers its frames).
      this.videoOrder = new Map();
      this.layer = null; // the camera layer received
    }

    push(frame) {
      if (frame.track === TRACK_AUDIO) { this.audioOrder.push(frame); return; }
      if (frame.track !== TRACK_VIDEO) return;
      let order = this.videoOrder.get(frame.layer);
      if (!order) {
        order = new Reorder((f) => this.takeVideo(f));
        this.videoOrder.set(frame.layer, order);
      }
      order.push(frame);
    }

    /** A camera frame in order: the handler changes layer at a key frame of the new one. */
    takeVideo(frame) {
      if (frame.layer !== this.layer) {
        if (this.layer !== null && !frame.key) {
          // A late frame of the old layer, or the new one's key frame was lost.
          this.session.requestKeyframe(this.p.id, TRACK_VIDEO);
          return;
        }
        for (const layer of this.videoOrder.keys()) if (layer !== frame.layer) this.videoOrder.delete(layer);
        this.layer = frame.layer;
        this.needKey = true;
        this.p.tile.dataset.layer = String(frame.layer);
      }
      this.decodeVideo(frame);
    }

    close() {
      for (const d of [this.video, this.audio]) if (d && d.state !== 'closed') d.close();
      this.video = null; this.audio = null;
    }

    decodeVideo(frame) {
      if (typeof VideoDecoder === 'undefined') return;
      if (frame.gap && !frame.key) this.needKey = true;
      if (!this.video || this.video.state === 'closed') {
        this.needKey = true;
        this.video = new VideoDecoder({
          output: (f) => this.draw(f),
          error: () => { this.needKey = true; this.session.requestKeyframe(this.p.id, TRACK_VIDEO); },
        });
        this.video.configure({ codec: 'vp8', optimizeForLatency: true });
      }
      if (this.needKey && !frame.key) { this.session.requestKeyframe(this.p.id, TRACK_VIDEO); return; }
      if (this.video.decodeQueueSize > 8 && !frame.key) { this.needKey = true; return; }
      this.needKey = false;
      this.video.decode(new EncodedVideoChunk({
        type: frame.key ? 'key' : 'delta', timestamp: frame.timestamp, data: frame.payload,
      }));
    }

    draw(frame) {
      if (this.canvas.width !== frame.displayWidth || this.canvas.height !== frame.displayHeight) {
        this.canvas.width = frame.displayWidth;
        this.canvas.height = frame.displayHeight;
      }
      this.context2d.drawImage(frame, 0, 0);
      frame.close();
      this.framesDecoded++;
      this.p.tile.dataset.framesDecoded = String(this.framesDecoded);
    }

    decodeAudio(frame) {
      if (typeof AudioDecoder === 'undefined') return;
      if (!this.audio || this.audio.state === 'closed') {
        this.audio = new AudioDecoder({ output: (d) => this.play(d), error: () => {} });
        this.audio.configure({ codec: 'opus', sampleRate: 48000, numberOfChannels: 1 });
      }
      this.audio.decode(new EncodedAudioChunk({ type: 'key', timestamp: frame.timestamp, data: frame.payload }));
    }

    play(data) {
      this.audioDecoded++;
      this.p.tile.dataset.audioDecoded = String(this.audioDecoded);
      const ctx = sharedAudioContext();
      if (!ctx) { data.close(); return; }
      const buffer = ctx.createBuffer(data.numberOfChannels, data.numberOfFrames, data.sampleRate);
      let sum = 0;
      for (let c = 0; c < data.numberOfChannels; c++) {
        const plane = new Float32Array(data.numberOfFrames);
        data.copyTo(plane, { planeIndex: c, format: 'f32-planar' });
        if (c === 0) for (const s of plane) sum += s * s;
        buffer.copyToChannel(plane, c);
      }
      this.level = Math.max(this.level, Math.sqrt(sum / Math.max(1, data.numberOfFrames)));
      data.close();
      const source = ctx.createBufferSource();
      source.buffer = buffer;
      source.connect(ctx.destination);
      const now = ctx.currentTime;
      if (this.playAt < now + 0.02 || this.playAt > now + 0.5) this.playAt = now + 0.08;
      source.start(this.playAt);
      this.playAt += buffer.duration;
    }
  }

  // ---------------------------------------------------------------------------------
  // End-to-end encryption.
  //
  // Each page makes an ECDH P-256 key pair when it joins and a random AES-GCM-128
  // sender key with a 32-bit key id. Through the controller's relay (KeyExchange, opaque
  // to it) the pages exchange, pairwise:
  //   [1] ++ public key (raw, 65 bytes)                                    "hello"
  //   [2] ++ key id (u32 BE) ++ iv (12) ++ AES-GCM(wrap key, sender key)   "sender key"
  // The wrap key of two pages is HKDF-SHA-256 over their ECDH secret (salt
  // "tavern-e2e-v1", info "tavern-e2e-wrap " ++ the two participant ids, sorted, joined
  // by a space) as an AES-GCM-256 key; the sender key's additional data is its key id,
  // then the sender's and the recipient's ids. A page sends its hello to everybody there
  // when it joins and to each newcomer; whoever receives a hello answers with its own
  // (once) and its current sender key; a repeated hello is answered with the sender key
  // again (the keys already agreed are kept). A page told that a key exchange for a peer
  // was dropped (recipient_busy, naming the peer) says hello to it again, with its sender
  // key, after HELLO_RETRY_MS, until the peer answers or the waits run out; a sender key
  // that came before its sender's hello is asked for again once the hello comes. When
  // somebody leaves, every page left makes a new sender key (the next key id) and sends
  // it to the others there only.
  //
  // An encrypted frame: the media header (flag bit 1 set), then an SFrame-style header,
  // key id (u32 BE) and counter (u64 BE), then AES-GCM-128(sender key, iv = key id ++
  // counter, additional data = media header ++ SFrame header) of the encoded frame. The
  // receiver picks the sender's key by key id (the last few of each sender are kept).
  //
  // The safety code: SHA-256 over the sorted SHA-256 fingerprints of the public keys
  // of everybody in the call, as 15 digits; the same on every page unless somebody's
  // key was swapped on the way. On the page root as data-safety-code.

  const E2E_HELLO = 1;
  const E2E_SENDER_KEY = 2;
  const SFRAME_HEADER = 12;
  const E2E_OVERHEAD = SFRAME_HEADER + 16;
  const KEYS_KEPT = 4;
  const E2E_SALT = utf8.encode('tavern-e2e-v1');
  /**
   * The waits before each hello said again to a peer a key exchange for was dropped
   * (recipient_busy): after the first, while the peer has not answered with its sender
   * key; then the page gives up until it is told of another drop.
   */
  const HELLO_RETRY_MS = [1000, 2000, 4000];
  /**
   * How long a participant seen in the call may take to say its key (hello) before the
   * safety code is worked out without it and its tile says it has none (a command-line
   * participant, or a browser that cannot encrypt: it gets no keys either).
   */
  const KEY_WAIT_MS = 5000;
  const NO_KEY = 'no encryption key: cannot see or hear this call';

  const canEncrypt = () => Boolean(window.crypto && crypto.subtle && window.isSecureContext);
  const sha256 = async (bytes) => new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  const sameBytes = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

  function showEncryption() {
    let panel = $('e2e');
    if (!panel) {
      panel = document.createElement('p');
      panel.id = 'e2e';
      panel.className = 'e2e';
      const badge = document.createElement('span');
      badge.className = 'e2e-badge';
      badge.textContent = 'End-to-end encrypted';
      const label = document.createElement('span');
      label.className = 'e2e-label';
      label.textContent = 'Safety code:';
      const code = document.createElement('code');
      code.id = 'safety-code';
      const hint = document.createElement('span');
      hint.className = 'e2e-hint';
      hint.textContent = 'The same code on everybody\u2019s screen means nobody else can see or hear the call.';
      panel.append(badge, ' ', label, ' ', code, ' ', hint);
      $('media-status').before(panel);
    }
    $('safety-code').textContent = 'working it out\u2026';
  }

  /** Marks `tile` as a participant with no key (or no longer). */
  function markKeyless(tile, keyless) {
    let mark = tile.querySelector('.no-key');
    if (!mark && keyless) {
      mark = document.createElement('span');
      mark.className = 'badge no-key';
      mark.textContent = NO_KEY;
      tile.querySelector('figcaption').append(mark);
    }
    if (mark) mark.hidden = !keyless;
    if (keyless) tile.dataset.noKey = '1'; else delete tile.dataset.noKey;
  }

  class KeyRing {
    constructor(selfId) {
      this.selfId = selfId;
      // id -> { publicRaw, fingerprint, wrap, helloSent, keys: Map, and the hellos said
      // again: missed, answered, retrying, tries }
      this.peers = new Map();
      this.sender = null; // { id, key, raw, counter }
      this.closed = false;
      this.safetyRun = 0;
      this.queue = Promise.resolve();
    }

    /** Runs `job` after every earlier one: key agreement steps happen in order. */
    run(job) {
      this.queue = this.queue.then(() => (this.closed ? null : job())).catch(() => {});
      return this.queue;
    }

    start() {
      return this.run(async () => {
        this.pair = await crypto.subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, false, ['deriveBits']);
        this.publicRaw = new Uint8Array(await crypto.subtle.exportKey('raw', this.pair.publicKey));
        this.fingerprint = hex(await sha256(this.publicRaw));
        const first = new Uint32Array(1);
        crypto.getRandomValues(first);
        await this.newSenderKey(first[0]);
        this.showSafetyCode();
      });
    }

    close() { this.closed = true; this.sender = null; this.peers.clear(); }

    ready() { return Boolean(this.sender) && !this.closed; }

    peer(id) {
      let p = this.peers.get(id);
      if (!p) {
        p = {
          publicRaw: null, fingerprint: null, wrap: null, helloSent: false, keys: new Map(),
          missed: false, answered: false, retrying: false, tries: 0, seenAt: performance.now(),
        };
        this.peers.set(id, p);
      }
      return p;
    }

    async newSenderKey(id) {
      const raw = crypto.getRandomValues(new Uint8Array(16));
      const key = await crypto.subtle.importKey('raw', raw, 'AES-GCM', false, ['encrypt']);
      this.sender = { id: id >>> 0, key, raw, counter: 0 };
      root.dataset.keyId = String(this.sender.id);
    }

    sendHello(id) {
      const p = this.peer(id);
      if (p.helloSent) return;
      p.helloSent = true;
      send(keyExchange(id, concat([Uint8Array.of(E2E_HELLO), this.publicRaw]))).catch(() => {});
    }

    peerJoined(id) {
      this.run(async () => {
        this.sendHello(id);
        this.showSafetyCode();
        // Asked again once it may be taken for keyless.
        setTimeout(() => { if (!this.closed) this.showSafetyCode(); }, KEY_WAIT_MS + 50);
      });
    }

    /**
     * A key exchange for `id` was dropped (recipient_busy): which one is not known, so
     * the hello (and the sender key, once agreed) is sent again after HELLO_RETRY_MS[0],
     * and again after each next wait while `id` has not answered with its sender key;
     * then given up until the next recipient_busy naming it.
     */
    busy(id) {
      if (!state.participants.has(id)) return;
      const p = this.peer(id);
      if (p.retrying) return;
      p.retrying = true;
      p.tries = 0;
      this.helloAgain(id, p);
    }

    helloAgain(id, p) {
      if (p.tries >= HELLO_RETRY_MS.length) { p.retrying = false; return; }
      const wait = HELLO_RETRY_MS[p.tries];
      p.tries += 1;
      setTimeout(() => this.run(async () => {
        if (this.peers.get(id) !== p || !state.participants.has(id)) return;
        if (p.tries > 1 && p.answered) { p.retrying = false; return; }
        p.answered = false;
        p.helloSent = false;
        this.sendHello(id);
        if (p.wrap) await this.sendSenderKey(id, p);
        root.dataset.hellosAgain = String(Number(root.dataset.hellosAgain || 0) + 1);
        this.helloAgain(id, p);
      }), wait);
    }

    peerLeft(id) {
      this.run(async () => {
        this.peers.delete(id);
        // A new sender key the one who left never sees, for the others only.
        await this.newSenderKey(this.sender.id + 1);
        for (const [other, p] of this.peers) {
          if (p.wrap && state.participants.has(other)) await this.sendSenderKey(other, p);
        }
        this.showSafetyCode();
      });
    }

    received(from, payload) {
      this.run(async () => {
        if (!state.participants.has(from) || payload.length < 1) return;
        if (payload[0] === E2E_HELLO) await this.hello(from, payload.subarray(1));
        else if (payload[0] === E2E_SENDER_KEY) await this.senderKey(from, payload.subarray(1));
      });
    }

    /**
     * A peer's hello: the wrapping key agreed with it (again only when its public key
     * is new), and every hello, a repeated one too, answered with this page's sender key
     * (the peer says hello again when something it sent was dropped, see busy()).
     */
    async hello(from, publicRaw) {
      const p = this.peer(from);
      const known = p.wrap && p.publicRaw && sameBytes(p.publicRaw, publicRaw);
      if (!known) {
        const publicKey = await crypto.subtle.importKey('raw', publicRaw, { name: 'ECDH', namedCurve: 'P-256' }, false, []);
        const secret = await crypto.subtle.deriveBits({ name: 'ECDH', public: publicKey }, this.pair.privateKey, 256);
        const hkdf = await crypto.subtle.importKey('raw', secret, 'HKDF', false, ['deriveKey']);
        const ids = [this.selfId, from].sort().join(' ');
        p.wrap = await crypto.subtle.deriveKey(
          { name: 'HKDF', hash: 'SHA-256', salt: E2E_SALT, info: utf8.encode(`tavern-e2e-wrap ${ids}`) },
          hkdf, { name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
        p.publicRaw = publicRaw.slice();
        p.fingerprint = hex(await sha256(p.publicRaw));
        p.keys.clear();
        // Its sender key came before its hello (the hello was dropped): a hello again
        // has it sent again.
        if (p.missed) { p.missed = false; p.helloSent = false; }
      }
      this.sendHello(from);
      await this.sendSenderKey(from, p);
      this.showSafetyCode();
    }

    keyAad(keyId, from, to) {
      const id = new Uint8Array(4);
      new DataView(id.buffer).setUint32(0, keyId);
      return concat([id, utf8.encode(`${from} ${to}`)]);
    }

    async sendSenderKey(to, p) {
      const sender = this.sender;
      const iv = crypto.getRandomValues(new Uint8Array(12));
      const wrapped = new Uint8Array(await crypto.subtle.encrypt(
        { name: 'AES-GCM', iv, additionalData: this.keyAad(sender.id, this.selfId, to) }, p.wrap, sender.raw));
      const head = new Uint8Array(5);
      head[0] = E2E_SENDER_KEY;
      new DataView(head.buffer).setUint32(1, sender.id);
      await send(keyExchange(to, concat([head, iv, wrapped])));
    }

    async senderKey(from, body) {
      const p = this.peers.get(from);
      if (!p || body.length < 4 + 12 + 16) return;
      if (!p.wrap) { p.missed = true; return; }
      const keyId = new DataView(body.buffer, body.byteOffset, 4).getUint32(0);
      const raw = await crypto.subtle.decrypt(
        { name: 'AES-GCM', iv: body.subarray(4, 16), additionalData: this.keyAad(keyId, from, this.selfId) },
        p.wrap, body.subarray(16));
      p.keys.set(keyId, await crypto.subtle.importKey('raw', raw, 'AES-GCM', false, ['decrypt']));
      p.answered = true;
      while (p.keys.size > KEYS_KEPT) p.keys.delete(p.keys.keys().next().value);
      // Frames under this key can be read from the next key frame on: ask for one now.
      if (state.media) state.media.requestKeyframe(from, TRACK_VIDEO, true);
    }

    sframe(keyId, counter) {
      const header = new Uint8Array(SFRAME_HEADER);
      const view = new DataView(header.buffer);
      view.setUint32(0, keyId);
      view.setBigUint64(4, BigInt(counter));
      return header;
    }

    /** The frame to send: `header` with flag bit 1, the SFrame header, the ciphertext. */
    async seal(header, plaintext) {
      const sender = this.sender;
      if (!sender) return null;
      const counter = sender.counter++;
      const media = header.slice();
      media[2] |= 2;
      const sframe = this.sframe(sender.id, counter);
      // The iv is the SFrame header itself: key id and counter, unique under each key.
      const sealed = new Uint8Array(await crypto.subtle.encrypt(
        { name: 'AES-GCM', iv: sframe, additionalData: concat([media, sframe]) }, sender.key, plaintext));
      return concat([media, sframe, sealed]);
    }

    /** The plaintext of an encrypted frame's payload, or null when it cannot be read. */
    async open(from, header, payload) {
      const p = this.peers.get(from);
      if (!p || payload.length < E2E_OVERHEAD) return null;
      const keyId = new DataView(payload.buffer, payload.byteOffset, 4).getUint32(0);
      const key = p.keys.get(keyId);
      if (!key) return null;
      const sframe = payload.subarray(0, SFRAME_HEADER);
      try {
        return new Uint8Array(await crypto.subtle.decrypt(
          { name: 'AES-GCM', iv: sframe, additionalData: concat([header, sframe]) },
          key, payload.subarray(SFRAME_HEADER)));
      } catch (_) {
        return null;
      }
    }

    /**
     * The safety code over everybody in the call with a key, once every public key is
     * known but those of participants who said none within KEY_WAIT_MS (their tiles say
     * so: nothing is encrypted for them, so they neither see nor hear the call).
     */
    async showSafetyCode() {
      const run = ++this.safetyRun;
      const prints = [this.fingerprint];
      const now = performance.now();
      for (const [id, info] of state.participants) {
        const p = this.peers.get(id);
        const keyless = Boolean(p) && !p.fingerprint && now - p.seenAt >= KEY_WAIT_MS;
        markKeyless(info.tile, keyless);
        if (!keyless) prints.push(p && p.fingerprint);
      }
      const code = $('safety-code');
      if (prints.some((f) => !f)) {
        delete root.dataset.safetyCode;
        if (code) code.textContent = 'waiting for everybody\u2019s keys\u2026';
        return;
      }
      prints.sort();
      const digest = await sha256(utf8.encode(prints.join('\n')));
      if (run !== this.safetyRun || this.closed) return;
      let n = 0n;
      for (const b of digest.subarray(0, 8)) n = (n << 8n) | BigInt(b);
      const digits = (n % 10n ** 15n).toString().padStart(15, '0');
      const shown = digits.match(/.{5}/g).join(' ');
      root.dataset.safetyCode = shown;
      if (code) code.textContent = shown;
    }
  }

  // ---------------------------------------------------------------------------------
  // Wiring.

  // An ended meeting's page (data-ended, rendered so by the server) has no join form
  // and no call: only the host's recordings below.
  const live = root.dataset.ended !== '1';
  if (live) {
    $('join-form').addEventListener('submit', (event) => {
      event.preventDefault();
      sharedAudioContext();
      const name = $('name').value.trim();
      if (!name) { ui.error('Say what name the others should see.'); return; }
      join(name);
    });
    $('mute-audio').addEventListener('click', () => toggleMute('audio'));
    $('mute-video').addEventListener('click', () => toggleMute('video'));
    $('leave').addEventListener('click', () => leave());
    $('camera').addEventListener('change', () => switchDevices());
    $('microphone').addEventListener('change', () => switchDevices());
    document.addEventListener('click', () => sharedAudioContext(), { once: true });
    // A reload or a closed tab is a lost connection, not a Leave: the meeting stays for
    // the controller's presence timeout, so that a reload finds it (only the Leave
    // button leaves for good, which ends the meeting for the last one in).
    window.addEventListener('pagehide', () => {
      if (state.inCall) hangUp();
    });
  }

  // ---------------------------------------------------------------------------------
  // Recording. A signed-in visitor's page names data-recording-url: GET answers {host,
  // offered, reason, recording, recordings}; the host of a meeting that may be recorded
  // gets a Record / Stop button (POST there, or to .../stop, with the CSRF token). Where
  // recording is not offered the page says why; an end-to-end encrypted meeting says so
  // to every visitor (data-e2e is set on joining one). The host's recordings are listed
  // whether or not the meeting may be recorded now (an ended meeting's too). The note
  // and the list are outside the call, so they show before joining and after the end.

  (() => {
    const url = root.dataset.recordingUrl;
    const note = document.createElement('p');
    note.id = 'recording-status';
    note.className = 'recording-status';
    note.setAttribute('role', 'status');
    if ($('call')) $('call').after(note);
    else root.append(note);
    const E2E_REASON = 'Recordings are not offered for end-to-end encrypted meetings: the server never sees the media.';
    const RECORDED = 'This meeting is being recorded.';
    const ended = () => root.dataset.ended === '1';
    let asking = null;
    // An ended meeting is recorded no more: the note stops saying so (the host's list
    // below gives the recording's state and link), and nobody asks again.
    const over = () => {
      root.dataset.recording = '0';
      if (note.textContent === RECORDED) note.textContent = '';
      if (asking) clearInterval(asking);
      asking = null;
    };
    new MutationObserver(() => {
      if (root.dataset.e2e === '1') note.textContent = E2E_REASON;
      if (ended()) {
        over();
        // The meeting ended while this page was in it: the host's list is read again
        // (a recording it stopped is processed, then ready).
        if (url) refresh();
      }
    }).observe(root, { attributes: true, attributeFilter: ['data-e2e', 'data-ended'] });
    // Every visitor (guests too, and before joining) is told while the meeting is
    // being recorded; the host's panel below says it from its own answer, read again
    // when the recording started or stopped elsewhere (or after the host left).
    let hostPanel = false;
    const nowUrl = root.dataset.recordingNowUrl;
    const askNow = async () => {
      if (root.dataset.e2e === '1') return;
      if (ended()) { over(); return; }
      try {
        const response = await fetch(nowUrl, { headers: { accept: 'application/json' } });
        if (!response.ok) return;
        const now = await response.json();
        if (ended()) return;
        if (hostPanel) {
          if ((root.dataset.recording === '1') !== Boolean(now.recording)) refresh();
          return;
        }
        root.dataset.recording = now.recording ? '1' : '0';
        if (now.recording) note.textContent = RECORDED;
        else if (note.textContent === RECORDED) note.textContent = '';
      } catch (_) { /* asked again at the next tick */ }
    };
    if (nowUrl && !ended()) {
      askNow();
      asking = setInterval(askNow, RECORDING_NOW_EVERY_MS);
    }
    if (!url) return;
    const sentence = (s) => `${s.charAt(0).toUpperCase()}${s.slice(1)}.`;
    let button = null;
    let running = false;
    let list = null;
    let poll = null;
    // The host's recordings: the ready ones link to their (signed) download; while one
    // is being processed the panel is asked again until it is ready or failed.
    const renderList = (recordings) => {
      if (!list) {
        list = document.createElement('ul');
        list.id = 'recordings';
        list.className = 'recordings';
        note.after(list);
      }
      list.replaceChildren(...recordings.map((r) => {
        const item = document.createElement('li');
        item.dataset.recording = r.recording_id;
        item.dataset.status = r.status;
        const started = new Date(r.started_at).toLocaleString();
        if (r.status === 'ready' && r.download_url) {
          const link = document.createElement('a');
          link.href = r.download_url;
          link.textContent = `Recording of ${started}`;
          link.setAttribute('download', '');
          item.append(link, ` (${r.duration_seconds ?? 0} s, WebM)${r.error_message ? ` — ${r.error_message}` : ''}`);
        } else if (r.status === 'failed') {
          item.textContent = `Recording of ${started}: failed${r.error_message ? ` (${r.error_message})` : ''}`;
        } else {
          item.textContent = `Recording of ${started}: ${r.status}…`;
        }
        return item;
      }));
      const pending = recordings.some((r) => r.status === 'processing');
      if (pending && !poll) {
        poll = setInterval(() => refresh(), 2000);
      } else if (!pending && poll) {
        clearInterval(poll);
        poll = null;
      }
    };
    const render = (panel) => {
      root.dataset.recordingPanel = '1';
      if (ended()) {
        // What an ended meeting's page shows: the host's recordings, their state and
        // links; no control, and no second "has ended" (#ended says it).
        running = false;
        if (panel.host) renderList(panel.recordings || []);
        if (button) button.hidden = true;
        over();
        if (note.textContent !== E2E_REASON) note.textContent = '';
        return;
      }
      running = Boolean(panel.recording && panel.recording.status === 'recording');
      if (panel.host) offerEnd();
      // Only the host's panel knows the running recording (askNow tells the others).
      if (panel.host) {
        root.dataset.recording = running ? '1' : '0';
        renderList(panel.recordings || []);
      }
      if (!panel.offered) {
        note.textContent = panel.reason ? sentence(panel.reason) : '';
        if (button) button.hidden = true;
        return;
      }
      if (!panel.host) return;
      hostPanel = true;
      if (!button) {
        button = document.createElement('button');
        button.id = 'record';
        button.type = 'button';
        button.addEventListener('click', () => toggle());
        $('leave').before(button);
      }
      button.hidden = false;
      // The label says what it does (no aria-pressed besides); data-state styles it.
      button.textContent = running ? 'Stop recording' : 'Record';
      button.dataset.state = running ? 'recording' : 'stopped';
      note.textContent = running ? RECORDED : '';
    };
    // The meeting's creator ends it for everyone from its page, as from /meet (the
    // same route, with the page's CSRF token).
    let endButton = null;
    const offerEnd = () => {
      if (endButton || !root.dataset.code) return;
      endButton = document.createElement('button');
      endButton.id = 'end-for-everyone';
      endButton.type = 'button';
      endButton.className = 'danger';
      endButton.textContent = 'End for everyone';
      endButton.addEventListener('click', async () => {
        const csrf = document.querySelector('meta[name="csrf-token"]');
        endButton.disabled = true;
        try {
          const response = await fetch(`/meet/${encodeURIComponent(root.dataset.code)}/end`, {
            method: 'POST',
            headers: { 'x-csrf-token': csrf ? csrf.content : '' },
            credentials: 'same-origin',
          });
          if (response.ok) state.endedByYou = true;
          else ui.error('The meeting could not be ended. Reload the page and try again.');
        } catch (_) {
          ui.error('The meeting could not be ended: the server did not answer.');
        } finally {
          endButton.disabled = false;
        }
      });
      $('leave').after(endButton);
    };
    const refresh = async () => {
      try {
        const response = await fetch(url, { headers: { accept: 'application/json' } });
        if (response.ok) render(await response.json());
      } catch (_) { /* the control stays as it was */ }
    };
    const toggle = async () => {
      const csrf = document.querySelector('meta[name="csrf-token"]');
      button.disabled = true;
      try {
        const response = await fetch(running ? `${url}/stop` : url, {
          method: 'POST',
          headers: { accept: 'application/json', 'x-csrf-token': csrf ? csrf.content : '' },
        });
        if (response.ok) {
          await refresh();
        } else {
          const body = await response.json().catch(() => ({}));
          note.textContent = body.error ? sentence(body.error) : 'The recording could not be changed.';
        }
      } catch (_) {
        note.textContent = 'The recording could not be changed: the server did not answer.';
      } finally {
        button.disabled = false;
      }
    };
    refresh();
  })();

  // A reload of this tab keeps the name it joined as (unless the link names one, or
  // the name is the signed-in account's).
  if (live && typeof kept.name === 'string' && kept.name && !$('name').value.trim()
    && !$('name').readOnly) {
    $('name').value = kept.name;
  }
  if (live && root.dataset.autojoin === '1' && $('name').value.trim()) join($('name').value.trim());
})();
