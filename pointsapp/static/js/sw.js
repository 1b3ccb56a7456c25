/* Service worker: keeps the volunteer's voucher list and voucher pages readable offline, so a
   voucher can be shown at a shop counter with no signal. Everything else goes to the network. */
'use strict';
var STATIC_CACHE = 'points-static-v3';
var PAGES_CACHE = 'points-pages-v1';
var SHELL = [
  '/static/vendor/pico/pico.min.css',
  '/static/app.css',
  '/static/js/app.js',
  '/static/icons/icon-192.png'
];
// The pages worth keeping: /volunteer/vouchers and /volunteer/vouchers/<id>, nothing else.
var OFFLINE_PAGE = /^\/volunteer\/vouchers(\/\d+)?\/?$/;

self.addEventListener('install', function (event) {
  event.waitUntil(caches.open(STATIC_CACHE).then(function (c) { return c.addAll(SHELL); }).then(function () {
    return self.skipWaiting();
  }));
});

self.addEventListener('activate', function (event) {
  event.waitUntil(caches.keys().then(function (keys) {
    return Promise.all(keys.filter(function (k) {
      return k !== STATIC_CACHE && k !== PAGES_CACHE;
    }).map(function (k) { return caches.delete(k); }));
  }).then(function () { return self.clients.claim(); }));
});

// A redirect instead of the page: the session has ended (the idle logout, or a logout on another
// phone), and the server sends to the login page. A page's navigation sees the redirect only as
// "opaque", without its address; a script's fetch follows it.
function sentToLogin(resp) {
  return resp.type === 'opaqueredirect' || (resp.redirected && new URL(resp.url).pathname === '/login');
}

// The saved copy, marked for app.js to say that it is one and that the voucher still counts.
function markedSavedCopy(hit) {
  return hit.text().then(function (html) {
    return new Response(html.replace('<body ', '<body data-saved-copy="1" '), {
      status: hit.status,
      statusText: hit.statusText,
      headers: hit.headers
    });
  });
}

function networkFirst(request) {
  return fetch(request).then(function (resp) {
    // Keep only the volunteer's own page itself, never a redirect to the login page.
    if (resp.ok && !resp.redirected && resp.type === 'basic') {
      var copy = resp.clone();
      caches.open(PAGES_CACHE).then(function (c) { c.put(request, copy); });
      return resp;
    }
    if (!sentToLogin(resp)) { return resp; }
    // Logged out with a voucher saved: show it rather than ask for a password at the counter. The
    // till checks every voucher with the server, so the session is not what protects it.
    return caches.open(PAGES_CACHE).then(function (c) { return c.match(request); }).then(function (hit) {
      return hit ? markedSavedCopy(hit) : resp;
    });
  }).catch(function () {
    return caches.open(PAGES_CACHE).then(function (c) {
      return c.match(request, { ignoreSearch: true }).then(function (hit) {
        return hit || c.match('/volunteer/vouchers').then(function (list) {
          return list || Response.error();
        });
      });
    });
  });
}

// Static files: answer from the cache at once (fast on a slow line) and refresh it behind.
// Pages name them with their version (?v=...); with no signal and no copy of that version, the
// copy of another version (or the shell's, which has none) stands in.
function staleWhileRevalidate(event) {
  var request = event.request;
  var refresh = fetch(request).then(function (resp) {
    if (resp.ok) {
      var copy = resp.clone();
      caches.open(STATIC_CACHE).then(function (c) { c.put(request, copy); });
    }
    return resp;
  });
  event.waitUntil(refresh.catch(function () {}));
  return caches.match(request).then(function (hit) {
    return hit || refresh.catch(function () {
      return caches.open(STATIC_CACHE).then(function (c) {
        return c.match(request, { ignoreSearch: true });
      }).then(function (other) { return other || Response.error(); });
    });
  });
}

self.addEventListener('fetch', function (event) {
  var req = event.request;
  if (req.method !== 'GET') { return; }
  var url = new URL(req.url);
  if (url.origin !== self.location.origin) { return; }
  if (OFFLINE_PAGE.test(url.pathname)) {
    event.respondWith(networkFirst(req));
  } else if (req.mode === 'navigate' && url.pathname.indexOf('/volunteer/') === 0) {
    // Another volunteer page with no signal: show the saved vouchers rather than an error.
    event.respondWith(fetch(req).catch(function () {
      return caches.open(PAGES_CACHE).then(function (c) { return c.match('/volunteer/vouchers'); }).then(function (list) {
        return list || Response.error();
      });
    }));
  } else if (url.pathname.indexOf('/static/') === 0) {
    event.respondWith(staleWhileRevalidate(event));
  }
});
