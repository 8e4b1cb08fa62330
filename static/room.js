/*
 * Live client for the room page (templates/room.html). One WebSocket per tab:
 * the cookie authenticates the upgrade, we join this room after the last id
 * shown, then render live messages. Our own messages show at once as
 * "pending" until the server echoes them with our clientId. Without a usable
 * socket the composer posts normally, so the page works without this script.
 */
(function () {
  'use strict';

  const room = document.getElementById('room');
  if (!room || room.dataset.live !== 'true') return; // older history page: stay static

  const list = document.getElementById('messages');
  const statusEl = document.getElementById('status');
  const form = document.getElementById('composer');
  const textarea = document.getElementById('body');
  if (!list || !statusEl || !form || !textarea) return;

  const ROOM_ID = Number(room.dataset.roomId);
  const MY_ID = Number(room.dataset.userId);
  const MY_NAME = room.dataset.username || '';
  const MAX_CHARS = 4000; // Unicode scalar values after trimming, as the server counts
  const MAX_BACKOFF_MS = 30000;
  // 1008 close reasons after which only a new login helps.
  const LOGIN_REASONS = ['Logged out', 'Session expired', 'Revoked', 'Not authenticated',
    'Invalid token', 'Identity change not allowed'];
  // Error codes that mean "this message was refused": retrying it is pointless.
  const REFUSED_CODES = ['body_too_long', 'empty_body', 'bad_body', 'not_joined',
    'bad_client_id', 'bad_frame'];
  const STATE_TEXT = { connecting: 'Connecting…', live: 'Live',
    offline: 'Offline — messages will be sent when back' };

  let lastId = Number(room.dataset.lastId) || 0; // highest message id shown
  const pending = new Map(); // clientId -> { li, body }, unconfirmed messages of ours
  let inFlight = []; // clientIds sent on the current socket, oldest first
  let ws = null, joined = false;
  let leaving = false; // stopped, e.g. on the way to the login page: no more reconnects
  let attempt = 0; // reconnects since the last authenticated socket
  let failedUpgrades = 0; // sockets in a row that never opened
  let refreshesInRow = 0; // token refreshes since the last authenticated socket
  let retryTimer = 0, countdownTimer = 0, flashTimer = 0, expiryTimer = 0;
  let stateText = ''; // what the status line says when no flashed message hides it

  /* ---------- status line ---------- */

  function setState(name, text) {
    for (const s of ['connecting', 'live', 'reconnecting', 'offline']) {
      room.classList.toggle('state-' + s, s === name);
    }
    // Also on the list, where the end-to-end test waits for "joined".
    list.dataset.state = name === 'live' ? 'joined' : name;
    endFlash(); // a new connection state matters more than an old error
    showState(text || STATE_TEXT[name]);
  }

  function showState(text) {
    stateText = text;
    if (!flashTimer) statusEl.textContent = text; // a flashed message stays until it expires
  }
  // Shows a message briefly, then goes back to the connection state.
  function flash(text) {
    clearTimeout(flashTimer);
    statusEl.textContent = text;
    statusEl.classList.add('flash');
    flashTimer = setTimeout(endFlash, 5000);
  }
  function endFlash() {
    if (!flashTimer) return;
    clearTimeout(flashTimer);
    flashTimer = 0;
    statusEl.classList.remove('flash');
    statusEl.textContent = stateText;
  }

  /* ---------- rendering ---------- */

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = text;
    return node;
  }
  const pad = (n) => String(n).padStart(2, '0');

  function setTime(timeEl, iso) {
    const d = new Date(iso);
    if (isNaN(d.getTime())) return;
    timeEl.dateTime = iso;
    timeEl.textContent = pad(d.getHours()) + ':' + pad(d.getMinutes());
    timeEl.title = d.toLocaleString();
  }

  // Same markup as the server renders: author, time, body.
  function messageElement(author, timeText, body) {
    const li = el('li', 'message');
    li.append(el('span', 'author', author), ' ', el('time', null, timeText), el('p', 'body', body));
    return li;
  }

  function markConfirmed(li, m) {
    li.dataset.id = String(m.id);
    li.classList.remove('pending');
    li.classList.toggle('own', m.userId === MY_ID);
    setTime(li.querySelector('time'), m.createdAt);
  }

  // Inserts by id, keeping our pending messages at the bottom. Messages
  // from several senders can arrive slightly out of order.
  function insertInOrder(li, id) {
    let before = null;
    let node = list.lastElementChild;
    while (node && (node.classList.contains('pending') || Number(node.dataset.id) > id)) {
      before = node;
      node = node.previousElementSibling;
    }
    list.insertBefore(li, before);
  }

  // The list scrolls itself when the stylesheet gives it a height; else the page does.
  function scroller() {
    const overflow = getComputedStyle(list).overflowY;
    return overflow === 'auto' || overflow === 'scroll'
      ? list : (document.scrollingElement || document.documentElement);
  }
  const nearBottom = (s = scroller()) => s.scrollHeight - s.scrollTop - s.clientHeight < 80;
  const scrollToBottom = (s = scroller()) => { s.scrollTop = s.scrollHeight; };

  /* ---------- incoming frames ---------- */

  function onMessage(m) {
    const id = Number(m.id);
    if (!Number.isFinite(id)) return;
    const stick = nearBottom();
    const mine = m.clientId != null ? pending.get(m.clientId) : undefined;
    if (mine) {
      pending.delete(m.clientId);
      inFlight = inFlight.filter((c) => c !== m.clientId);
      markConfirmed(mine.li, m);
      mine.li.remove(); // re-place by id: others' messages may have come in meanwhile
      insertInOrder(mine.li, id);
    } else {
      // Dedupe by id: catch-up after a reconnect can repeat what is shown.
      if (id <= lastId && list.querySelector('li[data-id="' + id + '"]')) return;
      const li = messageElement(String(m.username), '', String(m.body));
      markConfirmed(li, m);
      insertInOrder(li, id);
    }
    lastId = Math.max(lastId, id);
    if (stick) scrollToBottom();
  }

  function onError(frame) {
    flash(frame.message || frame.code || 'Something went wrong');
    // We only send messages once joined, and the server answers a socket's
    // frames in order, so an error after "joined" answers our oldest
    // unconfirmed message on this socket.
    if (!joined) return;
    const clientId = inFlight.shift();
    const mine = clientId && pending.get(clientId);
    if (!mine || !REFUSED_CODES.includes(frame.code)) return; // e.g. "unavailable": retried on reconnect
    pending.delete(clientId);
    mine.li.classList.replace('pending', 'failed');
    const time = mine.li.querySelector('time');
    time.textContent = 'not sent';
    time.title = frame.message || frame.code;
  }

  function onFrame(data) {
    let f;
    try { f = JSON.parse(data); } catch (e) { return; }
    if (!f || typeof f !== 'object') return;
    switch (f.type) {
      case 'authenticated':
        if (Number.isFinite(MY_ID) && f.userId !== MY_ID) { // signed in as someone else in another tab
          stop('Signed in as ' + f.username + ' elsewhere — reload the page');
          return;
        }
        attempt = 0;
        refreshesInRow = 0;
        if (f.expiresAt) onExpiresAt(new Date(f.expiresAt));
        ws.send(JSON.stringify({ type: 'join', roomId: ROOM_ID, afterId: lastId }));
        break;
      case 'joined':
        if (f.roomId !== ROOM_ID) break;
        joined = true;
        setState('live');
        // Unconfirmed messages go again with the same clientId; the server
        // stores each once and acknowledges again.
        pending.forEach((p, clientId) => sendMessage(clientId, p.body));
        break;
      case 'message':
        if (f.roomId === ROOM_ID) onMessage(f);
        break;
      case 'error':
        onError(f);
        break;
      case 'auth_error': // a 1008 close follows and says what to do
        flash(f.message || 'Not authenticated');
        break;
    }
  }

  /* ---------- connection ---------- */

  function sendMessage(clientId, body) {
    ws.send(JSON.stringify({ type: 'message', roomId: ROOM_ID, body: body, clientId: clientId }));
    inFlight.push(clientId);
  }

  function connect() {
    clearRetry();
    if (leaving || ws) return;
    if (!navigator.onLine) { setState('offline'); return; }
    setState('connecting');
    let sock;
    try {
      sock = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws');
    } catch (e) {
      scheduleReconnect(backoff());
      return;
    }
    let opened = false;
    ws = sock;
    joined = false;
    inFlight = [];
    sock.onopen = function () { opened = true; failedUpgrades = 0; };
    sock.onmessage = function (ev) { if (ws === sock) onFrame(ev.data); };
    sock.onclose = function (ev) {
      if (ws !== sock) return; // a socket we dropped on purpose
      ws = null;
      joined = false;
      onClose(ev.code, ev.reason, opened);
    };
  }

  function onClose(code, reason, opened) {
    if (leaving) return;
    if (code === 1008) {
      if (LOGIN_REASONS.includes(reason)) return goToLogin();
      // "Authentication timeout" (assumed): in jwt mode the upgrade carried no
      // access cookie, most likely because it expired; a refresh sets a new one.
      if (reason === 'Token expired' || reason === 'Authentication timeout') return refreshAndReconnect();
      if (reason === 'Rate limited') return scheduleReconnect(backoff(10000));
    }
    if (code === 1001) return scheduleReconnect(500 + Math.random() * 1500); // server restarting
    // A refused upgrade (401, 403) reaches the browser only as 1006.
    if (!opened && code === 1006 && ++failedUpgrades >= 3) {
      failedUpgrades = 0;
      const delay = backoff();
      fetch('/api/me', { credentials: 'same-origin' }).then(
        (res) => (res.status === 401 ? goToLogin() : scheduleReconnect(delay)),
        () => scheduleReconnect(delay));
      return;
    }
    scheduleReconnect(backoff());
  }

  // Exponential backoff with jitter: about 1 s, 2 s, 4 s… up to 30 s.
  function backoff(atLeast) {
    const base = Math.min(MAX_BACKOFF_MS, 1000 * Math.pow(2, attempt));
    attempt += 1;
    return Math.max(atLeast || 0, Math.min(MAX_BACKOFF_MS, base * (0.75 + Math.random() * 0.5)));
  }

  function clearRetry() {
    clearTimeout(retryTimer);
    clearInterval(countdownTimer);
    retryTimer = countdownTimer = 0;
  }

  function scheduleReconnect(delay) {
    clearRetry();
    if (leaving || ws) return;
    if (!navigator.onLine) { setState('offline'); return; } // the "online" event reconnects
    const at = Date.now() + delay;
    const label = () => 'Reconnecting in ' + Math.max(1, Math.ceil((at - Date.now()) / 1000)) + 's…';
    setState('reconnecting', label());
    countdownTimer = setInterval(() => showState(label()), 1000);
    retryTimer = setTimeout(connect, delay);
  }

  // POST /auth/refresh: the refresh cookie rotates the pair and the answer
  // sets new cookies. Resolves to the HTTP status (0 on a network error);
  // the new access token, when there is one, goes to `freshToken`.
  let freshToken = null;
  function refreshToken() {
    freshToken = null;
    return fetch('/auth/refresh', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json' },
      body: '{}',
    }).then(function (res) {
      if (!res.ok) return res.status;
      return res.json().then(function (body) {
        freshToken = body && typeof body.accessToken === 'string' ? body.accessToken : null;
        return res.status;
      }, function () { return res.status; });
    }, function () { return 0; });
  }

  function refreshAndReconnect() {
    refreshesInRow += 1;
    setState('connecting');
    refreshToken().then(function (status) {
      if (status === 401) goToLogin();
      // Reconnect at once, unless refreshing keeps not helping: then back off.
      else if (status >= 200 && status < 300 && refreshesInRow <= 2) connect();
      else scheduleReconnect(backoff());
    });
  }

  // Token mode: refresh about 60 s before the access token expires and hand
  // the new token to the open socket with `authenticate`, which extends it
  // (the server answers `authenticated` with the new expiry). Without an
  // open socket, the next connection carries the new cookie anyway.
  function onExpiresAt(date) {
    clearTimeout(expiryTimer);
    const left = date.getTime() - Date.now();
    // Not in the future (or unparsable): our clock disagrees with the
    // server's; its "Token expired" close will trigger the refresh instead.
    if (!(left > 0)) return;
    // Never sooner than 30 s nor before half the lifetime, so a short token
    // or a skewed clock cannot make us refresh in a tight loop.
    const wait = Math.min(0x7fffffff, Math.max(30000, left - 60000, left / 2));
    expiryTimer = setTimeout(function () {
      refreshToken().then(function (status) {
        if (status === 401) return goToLogin();
        if (status < 200 || status >= 300 || leaving) return; // keep the socket; see above
        if (freshToken && ws && ws.readyState === WebSocket.OPEN) {
          ws.send(JSON.stringify({ type: 'authenticate', token: freshToken }));
        } else {
          dropSocket();
          connect();
        }
      });
    }, wait);
  }

  // Closes the socket without reacting to its close event.
  function dropSocket() {
    if (!ws) return;
    const old = ws;
    ws = null;
    joined = false;
    old.close(1000);
  }

  function stop(text) {
    leaving = true;
    clearRetry();
    clearTimeout(expiryTimer);
    dropSocket();
    if (text) setState('offline', text);
  }

  function goToLogin() {
    stop();
    location.assign('/login?next=' + encodeURIComponent(location.pathname));
  }

  /* ---------- composer ---------- */

  // A hint under the textarea for messages we refuse to send.
  const hint = el('p', 'composer-hint');
  hint.id = 'composer-hint';
  hint.hidden = true;
  hint.setAttribute('role', 'status');
  textarea.after(hint);
  textarea.setAttribute('aria-describedby', hint.id);
  function showHint(text) {
    hint.textContent = text;
    hint.hidden = !text;
  }

  function newClientId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID(); // secure contexts only
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => pad(b.toString(16))).join('');
  }

  form.addEventListener('submit', function (ev) {
    const body = textarea.value.trim();
    const length = Array.from(body).length; // code points, not UTF-16 units
    if (!body || length > MAX_CHARS) {
      ev.preventDefault();
      showHint(body ? 'Too long: ' + length + ' of at most ' + MAX_CHARS + ' characters.'
        : 'Write a message first.');
      return;
    }
    showHint('');
    const usable = ws !== null && ws.readyState === WebSocket.OPEN && joined;
    // No live socket: a plain POST works (the server redirects back), unless
    // we are offline or still hold unconfirmed messages; then queue it, and
    // "joined" sends it in order.
    if (!usable && navigator.onLine && pending.size === 0) return;
    ev.preventDefault();
    const clientId = newClientId();
    const li = messageElement(MY_NAME, 'sending…', body);
    li.classList.add('own', 'pending');
    list.appendChild(li);
    pending.set(clientId, { li: li, body: body });
    if (usable) sendMessage(clientId, body);
    textarea.value = '';
    scrollToBottom();
  });

  textarea.addEventListener('keydown', function (ev) {
    // Enter sends, Shift+Enter is a newline; leave Enter alone while an IME composes.
    if (ev.key !== 'Enter' || ev.shiftKey || ev.isComposing || ev.keyCode === 229) return;
    ev.preventDefault();
    if (form.requestSubmit) form.requestSubmit();
    else { const button = form.querySelector('button'); if (button) button.click(); }
  });

  textarea.addEventListener('input', () => showHint(''));

  /* ---------- start ---------- */

  window.addEventListener('online', function () { attempt = 0; if (!ws) connect(); });
  window.addEventListener('offline', function () {
    if (leaving) return;
    dropSocket(); // rather than wait for it to time out; "online" reconnects
    clearRetry();
    setState('offline');
  });
  window.addEventListener('pageshow', (ev) => { if (ev.persisted && !ws) connect(); });

  // Server-rendered times are in the server's zone: show them in ours.
  list.querySelectorAll('li.message').forEach(function (li) {
    const time = li.querySelector('time[datetime]');
    if (time) setTime(time, time.getAttribute('datetime'));
    const author = li.querySelector('.author');
    const own = li.dataset.userId ? Number(li.dataset.userId) === MY_ID
      : author !== null && author.textContent === MY_NAME;
    li.classList.toggle('own', own);
  });
  scrollToBottom();
  connect();
})();
