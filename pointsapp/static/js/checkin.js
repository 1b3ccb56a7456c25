/* The check-in event page: keep the rotating QR code and the live count fresh.
   The code changes every 30 seconds; the page asks for it (and the count) every few seconds and
   swaps the image when the URL changes. No inline script: the page gives the URL in data-*. */
(function () {
  'use strict';
  var box = document.getElementById('checkin-code');
  if (!box || !window.fetch) { return; }
  var img = document.getElementById('checkin-qr');
  var link = document.getElementById('checkin-url');
  var present = document.getElementById('present');
  var total = document.getElementById('total');
  var url = box.dataset.codeUrl;
  var POLL_MS = 5000;

  function show(data) {
    if (present) { present.textContent = data.present; }
    if (total) { total.textContent = data.total; }
    if (!data.open) { box.hidden = true; return; }
    if (link && link.getAttribute('href') !== data.url) {
      img.src = data.qr;
      link.href = data.url;
      link.textContent = data.url;
      box.dataset.refreshed = String(Date.now());
    }
  }

  function poll() {
    fetch(url, { credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' } })
      .then(function (resp) { if (!resp.ok) { throw new Error(resp.status); } return resp.json(); })
      .then(function (data) {
        show(data);
        // Ask again soon after the code turns, or in a few seconds for the count.
        var wait = Math.min(POLL_MS, (data.refresh_in || 5) * 1000 + 200);
        setTimeout(poll, wait);
      })
      .catch(function () { setTimeout(poll, POLL_MS); });
  }
  setTimeout(poll, 1000);
})();
