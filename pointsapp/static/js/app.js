/* Small enhancements for every page. Every page works without them; no inline script anywhere
   (the Content-Security-Policy allows scripts from this site only), so data comes in data-*. */
(function () {
  'use strict';
  var body = document.body;

  // Installable app and offline vouchers: the worker lives at /sw.js so that it covers every page.
  if ('serviceWorker' in navigator && body.dataset.sw && window.isSecureContext) {
    navigator.serviceWorker.register(body.dataset.sw).catch(function () {});
  }
  // Logged out by pressing "Log out", or someone else logged in on this phone without logging
  // out first: forget the vouchers saved for offline use, so that nobody else can show them.
  // Not after the idle logout: the volunteer is often on her way to the shop with them.
  function forgetOffline() {
    if (!window.caches) { return; }
    caches.keys().then(function (keys) {
      keys.forEach(function (key) { if (key.indexOf('points-pages') === 0) { caches.delete(key); } });
    }).catch(function () {});
  }
  var OFFLINE_OWNER = 'points-offline-owner';
  try {
    if (body.dataset.forgetOffline) {
      forgetOffline();
      window.localStorage.removeItem(OFFLINE_OWNER);
    } else if (body.dataset.user && window.localStorage.getItem(OFFLINE_OWNER) !== body.dataset.user) {
      forgetOffline();
      window.localStorage.setItem(OFFLINE_OWNER, body.dataset.user);
    }
  } catch (e) {  // no storage (a private window): forget at every page rather than keep for anyone
    if (body.dataset.user || body.dataset.forgetOffline) { forgetOffline(); }
  }

  // A file over its form's limit (a phone photo can be 20 MB) is refused here, beside its field,
  // rather than sent over a slow line to be refused: what else was typed stays.
  document.querySelectorAll('form input[type="file"][data-max-bytes]').forEach(function (input) {
    input.form.addEventListener('submit', function (event) {
      var old = document.getElementById('too-large-' + input.id);
      if (old) { old.remove(); }
      var file = input.files && input.files[0];
      if (!file || file.size <= Number(input.dataset.maxBytes)) { return; }
      event.preventDefault();
      var p = document.createElement('p');
      p.className = 'field-error';
      p.id = 'too-large-' + input.id;
      p.setAttribute('role', 'alert');
      p.textContent = input.dataset.tooLarge;
      input.insertAdjacentElement('afterend', p);
      input.setAttribute('aria-invalid', 'true');
      input.setAttribute('aria-describedby', p.id);
      input.focus();
    });
  });

  var offlineNote = document.getElementById('offline-note');
  function syncOnline() { if (offlineNote) { offlineNote.hidden = navigator.onLine; } }
  // The service worker showed the copy saved on this phone because the session has ended.
  var savedCopyNote = document.getElementById('saved-copy-note');
  if (savedCopyNote && body.dataset.savedCopy) { savedCopyNote.hidden = false; }
  window.addEventListener('online', syncOnline);
  window.addEventListener('offline', syncOnline);
  syncOnline();

  // A refused form comes back as the whole page, at its top: on a long page (the approval queue,
  // a merchant's cashiers) its error may be far below. Bring the first one into view, and put the
  // cursor in its field.
  var firstError = document.querySelector('main .field-error, main form .error[role="alert"]');
  if (firstError) {
    var errorBox = firstError.closest('.field') || firstError.closest('form') || firstError;
    var rect = errorBox.getBoundingClientRect();
    if (rect.top < 0 || rect.bottom > window.innerHeight) { errorBox.scrollIntoView({ block: 'center' }); }
    var errorInput = errorBox.querySelector('input:not([type="hidden"]), select, textarea');
    if (errorInput && !document.querySelector('[autofocus]')) { errorInput.focus({ preventScroll: true }); }
  }

  // A table wider than the screen scrolls sideways (app.css), which a phone does not show until
  // touched: say so above it.
  document.querySelectorAll('main table').forEach(function (table) {
    if (table.scrollWidth > table.clientWidth + 1 && body.dataset.msgWideTable) {
      var hint = document.createElement('p');
      hint.className = 'wide-table-hint';
      hint.textContent = '⇆ ' + body.dataset.msgWideTable;
      table.parentNode.insertBefore(hint, table);
    }
  });

  // Actions that cannot be undone (closing a period, deactivating a person) ask first.
  document.addEventListener('submit', function (event) {
    var question = event.target.getAttribute && event.target.getAttribute('data-confirm');
    if (question && !window.confirm(question)) { event.preventDefault(); }
  });

  // Voucher list: fetch each usable voucher once, so that the service worker keeps it for offline.
  var list = document.getElementById('voucher-list');
  if (list && list.dataset.keepOffline && !body.dataset.savedCopy && navigator.serviceWorker && navigator.serviceWorker.controller && navigator.onLine) {
    list.querySelectorAll('a[data-usable]').forEach(function (a) {
      fetch(a.href, { credentials: 'same-origin' }).catch(function () {});
    });
  }

  // Approval queue: one box ticks every claim for "approve the selected"; the count of the ticked
  // claims shows beside the button, which waits until at least one is ticked.
  var selectAll = document.getElementById('select-all');
  if (selectAll) {
    var picks = document.querySelectorAll('input[name="activity_ids"][form="approve-selected"]');
    var count = document.getElementById('picked-count');
    var approveButton = document.getElementById('approve-selected-button');
    var syncPicked = function () {
      var n = 0;
      picks.forEach(function (box) { if (box.checked) { n += 1; } });
      count.textContent = count.dataset.template.replace('{n}', String(n));
      count.hidden = false;
      approveButton.disabled = n === 0;
      selectAll.checked = n > 0 && n === picks.length;
    };
    document.getElementById('select-all-box').hidden = picks.length === 0;
    selectAll.addEventListener('change', function () {
      picks.forEach(function (box) { box.checked = selectAll.checked; });
      syncPicked();
    });
    picks.forEach(function (box) { box.addEventListener('change', syncPicked); });
    syncPicked();
  }

  // Show the hours field only for activities counted per hour.
  var rule = document.getElementById('rule_id'), hoursBox = document.getElementById('hours-box');
  if (rule && hoursBox && rule.tagName === 'SELECT') {
    var syncHours = function () {
      var opt = rule.options[rule.selectedIndex];
      hoursBox.hidden = !opt || opt.getAttribute('data-unit') !== 'hour';
    };
    rule.addEventListener('change', syncHours);
    syncHours();
  }

  // Voucher page: a countdown to the expiry, and a poll that turns the page to "redeemed".
  var voucher = document.getElementById('voucher');
  var countdown = document.getElementById('countdown');
  if (countdown && countdown.dataset.expires) {
    var expires = Date.parse(countdown.dataset.expires);
    var ticker = null;
    var showLeft = function (left) {
      var mins = Math.floor(left / 60000);
      countdown.textContent = countdown.dataset.template
        .replace('{d}', String(Math.floor(mins / 1440)))
        .replace('{h}', String(Math.floor(mins / 60) % 24))
        .replace('{m}', String(mins % 60));
    };
    // The saved copy, offline, past its expiry: the page itself says the voucher has expired,
    // with no code left to show.
    var showExpired = function () {
      voucher.classList.replace('state-issued', 'state-expired');
      var status = document.getElementById('voucher-status');
      status.classList.replace('status-issued', 'status-expired');
      status.querySelector('span').textContent = '✘';
      status.lastChild.textContent = ' ' + countdown.dataset.expiredStatus;
      voucher.querySelectorAll('.qr, .code-label, #fallback-code').forEach(function (el) { el.hidden = true; });
      var cancel = document.querySelector('details.cancel');
      if (cancel) { cancel.hidden = true; }
      countdown.textContent = countdown.dataset.expiredNote;
    };
    // At the expiry by this phone's clock, which may run ahead of the server's. Online, ask the
    // server once (a reload); if it still says "ready to use", the status poll turns the page
    // when that changes. Never a reload after a reload: that is a loop.
    var atExpiry = function () {
      window.clearInterval(ticker);
      if (!navigator.onLine) { showExpired(); return; }
      var key = 'points-expiry-reload:' + window.location.pathname, again = true;
      try {
        again = window.sessionStorage.getItem(key) === '1';
        window.sessionStorage.setItem(key, '1');
      } catch (e) { /* no storage: no reload */ }
      showLeft(0);
      if (!again) { window.location.reload(); }
    };
    var tick = function () {
      var left = expires - Date.now();
      if (left <= 0) { atExpiry(); } else { showLeft(left); }
    };
    ticker = window.setInterval(tick, 15000);
    tick();
  }
  if (voucher && voucher.dataset.statusUrl) {
    var busy = false;
    var poll = function () {
      if (busy || document.hidden || !navigator.onLine) { return; }
      busy = true;
      fetch(voucher.dataset.statusUrl, { cache: 'no-store', headers: { Accept: 'application/json' } })
        .then(function (resp) { return resp.ok ? resp.json() : null; })
        .then(function (data) {
          if (data && data.status && data.status !== voucher.dataset.status) {
            window.location.reload();
          }
        })
        .catch(function () {})
        .then(function () { busy = false; });
    };
    // Every 2 s while the voucher is likely at the counter, then every 10 s to spare the server.
    var started = Date.now();
    var schedule = function () {
      window.setTimeout(function () { poll(); schedule(); }, Date.now() - started < 600000 ? 2000 : 10000);
    };
    schedule();
    document.addEventListener('visibilitychange', poll);
  }
})();
