/* Service worker: keeps the volunteer's voucher list and voucher pages readable offline, so a
   voucher can be shown at a shop counter with no signal. Everything else goes to the network. */
'use strict';
var STATIC_CACHE = 'points-static-v1';
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

function networkFirst(request) {
  return fetch(request).then(function (resp) {
    // Keep only the volunteer's own page itself, never a redirect to the login page.
    if (resp.ok && !resp.redirected && resp.type === 'basic') {
      var copy = resp.clone();
      caches.open(PAGES_CACHE).then(function (c) { c.put(request, copy); });
    }
    return resp;
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
  return caches.match(request).then(function (hit) { return hit || refresh; });
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
