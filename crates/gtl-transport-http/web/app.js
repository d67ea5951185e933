// GTL chat: a page that streams a chat.stream call from the gateway that
// served it, over WebTransport when the gateway has it and the browser can,
// else over WebSocket, and resumes the call when the connection drops
// (docs/protocol.md §8, §13.4, §13.8, and §13.6 for GET /gtl/v1/web).
//
// URL parameters: ?transport=webtransport|websocket forces one,
// ?model=NAME picks a model, ?prompt=TEXT&autosend=1 sends at load.
//
// The gateway trusts no browser without a token (any page a browser loads
// can reach a loopback port). The token field takes one (on the gateway's
// host, `gtl token show` prints the local one); `#token=…` in the address
// fills it, and the page then drops it from the address. It is kept in
// this tab's sessionStorage only.
'use strict';

const params = new URLSearchParams(location.search);
const encoder = new TextEncoder();
const $ = (id) => document.getElementById(id);

// Reconnection after a drop: attempts, and the pause before each.
const RECONNECT_ATTEMPTS = 20;
const RECONNECT_PAUSE_MS = [50, 100, 200, 400, 800, 1000];
// How long a connection may take to open (up to the welcome) before the
// next transport is tried.
const OPEN_TIMEOUT_MS = 10000;

// GET /gtl/v1/web: where the transports are.
let web = { webtransport: null, certificate_hashes: [], websocket: '/gtl/v1/ws' };
// The open connection, or null; see openWebSocket and openWebTransport.
let connection = null;
// Call ids are unique on a connection; one counter keeps them unique on all.
let nextCallId = 1;

// Appends a line to the connection log.
function log(text, kind = '') {
  const item = document.createElement('li');
  item.textContent = text;
  if (kind) item.className = kind;
  $('log').append(item);
}

// The token from `#token=…` (then removed from the address) or from this
// tab's storage; the field shows it.
function initToken() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.has('token')) {
    sessionStorage.setItem('gtl-token', fragment.get('token'));
    history.replaceState(null, '', location.pathname + location.search);
  }
  $('token').value = sessionStorage.getItem('gtl-token') ?? '';
  $('token').addEventListener('change', async () => {
    sessionStorage.setItem('gtl-token', $('token').value.trim());
    // A new credential: the open connection was made with the old one.
    if (connection) connection.close();
    connection = null;
    await loadModels();
  });
}

function token() {
  return $('token').value.trim();
}

function hello() {
  // Only JSON is offered, so every stream carries NDJSON / text messages.
  const frame = {
    type: 'hello',
    versions: ['1.0'],
    encodings: ['json'],
    features: ['resume'],
    client: 'gtl-web/1',
  };
  if (token()) frame.token = token();
  return frame;
}

// The error for a gateway's refusal of a connection, with its code.
function refusal(frame) {
  const error = new Error(`refused: ${frame.code} ${frame.message}`);
  error.code = frame.code;
  return error;
}

// Whether a frame ends its call (chat.stream: `done`, or any `error`).
function isTerminal(frame) {
  return frame.type === 'done' || frame.type === 'error';
}

// WebSocket (§13.4): one JSON frame per text message, calls multiplexed
// by call_id on the one socket.
function openWebSocket() {
  const url = new URL(web.websocket, location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, 'gtl.v1');
    const calls = new Map();
    let open = false;
    const timer = setTimeout(() => {
      if (open) return;
      reject(new Error('no welcome in time'));
      socket.close();
    }, OPEN_TIMEOUT_MS);
    const conn = {
      kind: 'websocket',
      call(first, onFrame) {
        return new Promise((done, fail) => {
          const callId = nextCallId++;
          calls.set(callId, { onFrame, done, fail });
          socket.send(JSON.stringify({ ...first, call_id: callId }));
        });
      },
      close() {
        socket.close();
      },
    };
    socket.onopen = () => socket.send(JSON.stringify(hello()));
    socket.onmessage = (message) => {
      const frame = JSON.parse(message.data);
      if (!open) {
        clearTimeout(timer);
        if (frame.type === 'welcome') {
          open = true;
          resolve(conn);
        } else {
          reject(refusal(frame));
          socket.close();
        }
        return;
      }
      const call = calls.get(frame.call_id ?? 0);
      if (!call) {
        if (frame.type === 'error') log(`connection error: ${frame.code} ${frame.message}`, 'failed');
        return;
      }
      call.onFrame(frame);
      if (isTerminal(frame)) {
        calls.delete(frame.call_id);
        call.done();
      }
    };
    socket.onclose = (event) => {
      clearTimeout(timer);
      const error = new Error(`WebSocket closed (${event.code})`);
      if (!open) reject(error);
      for (const call of calls.values()) call.fail(error);
      calls.clear();
    };
  });
}

// Splits a byte stream into its lines (NDJSON, §6), without the line ends.
async function* readLines(readable) {
  const reader = readable.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) {
      if (buffer.trim()) yield buffer;
      return;
    }
    buffer += value;
    let end;
    while ((end = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, end).trim();
      buffer = buffer.slice(end + 1);
      if (line) yield line;
    }
  }
}

function hexBytes(hex) {
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.substr(2 * i, 2), 16);
  return bytes;
}

function timeout(ms, what) {
  return new Promise((_, reject) => setTimeout(() => reject(new Error(`${what} timed out`)), ms));
}

// WebTransport (§13.8: the streams of §13.7 in an HTTP/3 session): the
// first bidirectional stream is the control stream (hello / welcome), then
// one bidirectional stream per call; JSON is the negotiated encoding, so
// each stream carries NDJSON.
async function openWebTransport() {
  if (!web.webtransport) throw new Error('the gateway has no WebTransport listener');
  if (typeof WebTransport === 'undefined') throw new Error('this browser has no WebTransport');
  const session = new WebTransport(web.webtransport, {
    serverCertificateHashes: web.certificate_hashes.map((hex) => ({
      algorithm: 'sha-256',
      value: hexBytes(hex),
    })),
  });
  session.closed.catch(() => {});
  try {
    await Promise.race([session.ready, timeout(OPEN_TIMEOUT_MS, 'WebTransport')]);
    const control = await session.createBidirectionalStream();
    const writer = control.writable.getWriter();
    await writer.write(encoder.encode(JSON.stringify(hello()) + '\n'));
    const first = await Promise.race([
      readLines(control.readable).next(),
      timeout(OPEN_TIMEOUT_MS, 'the welcome'),
    ]);
    const welcome = first.done ? null : JSON.parse(first.value);
    if (!welcome || welcome.type !== 'welcome') {
      throw welcome ? refusal(welcome) : new Error('refused: no welcome');
    }
  } catch (error) {
    session.close();
    throw error;
  }
  return {
    kind: 'webtransport',
    async call(first, onFrame) {
      const stream = await session.createBidirectionalStream();
      const writer = stream.writable.getWriter();
      await writer.write(encoder.encode(JSON.stringify({ ...first, call_id: nextCallId++ }) + '\n'));
      for await (const line of readLines(stream.readable)) {
        const frame = JSON.parse(line);
        onFrame(frame);
        if (isTerminal(frame)) return;
      }
      throw new Error('the call stream ended before its last event');
    },
    close() {
      session.close();
    },
  };
}

// Opens a connection: the forced transport, else WebTransport when the
// gateway offers it and the browser has it, falling back to WebSocket.
async function connect() {
  const forced = params.get('transport');
  const order = forced
    ? [forced]
    : web.webtransport && typeof WebTransport !== 'undefined'
      ? ['webtransport', 'websocket']
      : ['websocket'];
  let failure = new Error(`unknown transport ${forced}`);
  for (const kind of order) {
    try {
      if (kind === 'webtransport') return await openWebTransport();
      if (kind === 'websocket') return await openWebSocket();
    } catch (error) {
      failure = error;
      log(`${kind}: ${error.message}`, 'failed');
    }
  }
  throw failure;
}

function showUsage(usage) {
  const cost = usage.cost ? ` · $${usage.cost.toFixed(6)}` : '';
  $('usage').textContent = `${usage.tokens_in ?? 0} in · ${usage.tokens_out ?? 0} out${cost}`;
}

// Runs one chat.stream call to its end, resuming after every drop.
async function send() {
  const chosen = $('model').value;
  const prompt = $('prompt').value;
  $('send').disabled = true;
  $('output').textContent = '';
  $('usage').textContent = '–';
  $('status').textContent = 'streaming';
  // What a resume needs (§8.5), and whether the call has ended.
  const call = { sessionId: '', resumeToken: '', lastSeq: 0, ended: false };
  const onFrame = (frame) => {
    if (frame.type === 'accepted') {
      call.sessionId = frame.session_id;
      if (frame.resume_token) call.resumeToken = frame.resume_token;
      return;
    }
    // Events are numbered; after a resume, one already seen is dropped (§3).
    if (frame.seq) {
      if (frame.seq <= call.lastSeq) return;
      call.lastSeq = frame.seq;
    }
    switch (frame.type) {
      case 'status':
        // A routed call (docs/routing.md): "restarted" means the answer so
        // far is discarded and the next provider answers from the start.
        if (frame.state === 'restarted') $('output').textContent = '';
        if (frame.state && frame.state !== 'streaming') {
          log(`${frame.state} (${frame.provider}/${frame.model})${frame.reason ? `: ${frame.reason}` : ''}`);
        }
        break;
      case 'token':
        $('output').textContent += frame.text ?? '';
        break;
      case 'usage':
        showUsage(frame);
        break;
      case 'tool_call':
        log(`tool call ${frame.function?.name}(${frame.function?.arguments})`);
        break;
      case 'done':
        call.ended = true;
        $('status').textContent = 'done';
        break;
      case 'error':
        call.ended = true;
        $('status').textContent = frame.code || 'INTERNAL';
        log(`error ${frame.code || 'INTERNAL'}: ${frame.message}`, 'failed');
        break;
    }
  };
  let first = {
    type: 'completion_request',
    model: chosen,
    stream: true,
    messages: [{ role: 'user', content: prompt }],
  };
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        if (!connection) {
          connection = await connect();
          $('transport').textContent = connection.kind;
          log(`connected over ${connection.kind}`);
        }
        await connection.call(first, onFrame);
        return;
      } catch (error) {
        connection?.close();
        connection = null;
        if (call.ended) return;
        log(`connection lost: ${error.message}`, 'failed');
        if (!call.sessionId || attempt >= RECONNECT_ATTEMPTS) {
          // Nothing to resume (the call was never accepted), or no way back.
          $('status').textContent = error.code || 'PROVIDER_UNAVAILABLE';
          return;
        }
        const pause = RECONNECT_PAUSE_MS[Math.min(attempt, RECONNECT_PAUSE_MS.length - 1)];
        await new Promise((resume) => setTimeout(resume, pause));
        // The rest of the session, after the last event shown (§8.5).
        first = {
          type: 'resume',
          session_id: call.sessionId,
          after_seq: call.lastSeq,
          resume_token: call.resumeToken,
        };
        const resumes = Number($('resumes').textContent) + 1;
        $('resumes').textContent = String(resumes);
        log(`resuming session ${call.sessionId} after event ${call.lastSeq}`, 'resumed');
      }
    }
  } finally {
    $('send').disabled = false;
  }
}

// Fills the model list from GET /gtl/v1/models; ?model= picks one.
async function loadModels() {
  const select = $('model');
  const wanted = params.get('model');
  select.replaceChildren();
  try {
    const headers = token() ? { authorization: `Bearer ${token()}` } : {};
    const response = await fetch('/gtl/v1/models', { headers });
    if (response.status === 401) {
      log('the gateway wants a token: paste the output of `gtl token show` into the token field', 'failed');
    }
    const answer = await response.json();
    for (const info of answer.providers ?? []) {
      for (const model of info.models ?? []) {
        const option = new Option(`${info.provider}/${model.name}`, `${info.provider}/${model.name}`);
        select.append(option);
      }
    }
  } catch (error) {
    log(`models: ${error.message}`, 'failed');
  }
  if (wanted) {
    const known = [...select.options].find((o) => o.value === wanted || o.value.endsWith(`/${wanted}`));
    if (known) {
      select.value = known.value;
    } else {
      select.append(new Option(wanted, wanted, true, true));
    }
  }
}

async function main() {
  $('send').addEventListener('click', send);
  initToken();
  // Whatever the Content-Security-Policy stops is shown, not only logged
  // to the console.
  document.addEventListener('securitypolicyviolation', (event) => {
    log(`blocked by the page's policy: ${event.violatedDirective} ${event.blockedURI}`, 'failed');
  });
  try {
    web = await (await fetch('/gtl/v1/web')).json();
  } catch (error) {
    log(`/gtl/v1/web: ${error.message}`, 'failed');
  }
  await loadModels();
  if (params.has('prompt')) $('prompt').value = params.get('prompt');
  if (params.get('autosend') === '1') send();
}

main();
