// The chat page: the Socket.IO tutorial's chat with faultlab's strongest client.
//
// Exactly once (DESIGN §3.2): every message gets a unique client offset, and the
// client's queue sends one message at a time with an ack timeout and retries, so
// a lost ack is retried and the server's UNIQUE client offset makes that safe.
// Strict receive policy: a row is shown once per page load (by server offset),
// in arrival order, and `auth.serverOffset` is the highest offset shown, so the
// catch-up after a failed recovery sends exactly what is missing.
// Content is rendered with textContent, never as HTML.
'use strict';

(() => {
  const params = new URLSearchParams(window.location.search);
  const ackTimeout = Number(params.get('ackTimeout')) || 5000;

  const socket = io({
    auth: { serverOffset: 0 },
    ackTimeout,
    retries: Infinity, // give up never: an unacked message may be stored, and retrying is safe
  });

  const form = document.getElementById('form');
  const input = document.getElementById('input');
  const messages = document.getElementById('messages');
  const status = document.getElementById('status');
  const notice = document.getElementById('notice');
  const toggle = document.getElementById('toggle-btn');

  const shown = new Set();
  const unique = `${Date.now().toString(36)}-${crypto.getRandomValues(new Uint32Array(2)).join('')}`;
  let counter = 0;
  let sending = 0;
  let state = 'connecting';

  function render() {
    status.dataset.state = state;
    status.textContent = sending > 0 ? `${state} · sending ${sending}` : state;
  }

  function warn(text) {
    notice.textContent = text;
    notice.hidden = false;
  }

  socket.on('connect', () => {
    state = socket.recovered ? 'recovered' : 'connected';
    render();
  });
  socket.on('disconnect', () => {
    state = 'disconnected';
    render();
  });

  socket.on('chat message', (content, serverOffset) => {
    if (!Number.isSafeInteger(serverOffset) || typeof content !== 'string') return;
    if (shown.has(serverOffset)) return; // strict: a row is displayed once per page load
    shown.add(serverOffset);
    const item = document.createElement('li');
    item.textContent = content;
    item.dataset.offset = String(serverOffset);
    messages.appendChild(item);
    window.scrollTo(0, document.body.scrollHeight);
    if (serverOffset > socket.auth.serverOffset) socket.auth.serverOffset = serverOffset;
  });

  function send(content) {
    const clientOffset = `${unique}-${counter++}`;
    sending += 1;
    render();
    socket.emit('chat message', content, clientOffset, (err, answer) => {
      sending -= 1;
      render();
      if (answer && answer.error) warn(`not sent (${answer.error}): ${answer.detail}`);
    });
  }

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (input.value) {
      send(input.value);
      input.value = '';
    }
  });

  toggle.addEventListener('click', (e) => {
    e.preventDefault();
    if (socket.connected) {
      toggle.innerText = 'Connect';
      socket.disconnect();
    } else {
      toggle.innerText = 'Disconnect';
      socket.connect();
    }
  });

  render();
  window.chat = { socket, send, shown };
})();
