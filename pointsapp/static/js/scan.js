/* The cashier's camera: read the voucher's QR code with jsQR (vendored) and look it up.
   Typing the code in the form beside it always works, with or without a camera. */
(function () {
  'use strict';
  var box = document.getElementById('scanner');
  var form = document.getElementById('lookup-form');
  var input = document.getElementById('code');
  if (!box || !form || !input) { return; }
  var video = document.getElementById('camera');
  var finder = box.querySelector('.viewfinder');
  var status = document.getElementById('scan-status');
  var startBtn = document.getElementById('scan-start');
  var stopBtn = document.getElementById('scan-stop');
  var canvas = document.createElement('canvas');
  var ctx = canvas.getContext('2d', { willReadFrequently: true });
  var stream = null, timer = null;
  box.hidden = false;  // the camera needs this script: the section is hidden without it
  var manualTitle = document.getElementById('manual-title');
  if (manualTitle && manualTitle.dataset.withCamera) { manualTitle.textContent = manualTitle.dataset.withCamera; }

  function say(key) { status.textContent = box.dataset[key] || ''; }

  function stop() {
    if (timer) { window.clearTimeout(timer); timer = null; }
    if (stream) { stream.getTracks().forEach(function (t) { t.stop(); }); stream = null; }
    video.srcObject = null;
    finder.hidden = true;
    stopBtn.hidden = true;
    startBtn.hidden = false;
  }

  // No connection: nothing can be checked, and sending would show the browser's error page. The
  // code stays in its field, to send when the connection is back.
  var offline = document.getElementById('lookup-offline');
  function refuseOffline() {
    if (navigator.onLine || !offline) { return false; }
    offline.hidden = false;
    input.focus();
    return true;
  }
  window.addEventListener('online', function () { if (offline) { offline.hidden = true; } });
  form.addEventListener('submit', function (event) {
    if (refuseOffline()) { event.preventDefault(); }
  });

  function found(text) {
    stop();
    input.value = text;
    if (refuseOffline()) { status.textContent = ''; return; }
    say('msgFound');
    form.submit();
  }

  function scan() {
    timer = null;
    if (!stream) { return; }
    if (video.readyState >= 2 && video.videoWidth) {
      var scale = Math.min(1, 640 / video.videoWidth);
      var w = Math.round(video.videoWidth * scale), h = Math.round(video.videoHeight * scale);
      canvas.width = w;
      canvas.height = h;
      ctx.drawImage(video, 0, 0, w, h);
      var result = window.jsQR(ctx.getImageData(0, 0, w, h).data, w, h, { inversionAttempts: 'dontInvert' });
      if (result && result.data) { found(result.data); return; }
    }
    timer = window.setTimeout(scan, 120);
  }

  function start() {
    if (!window.isSecureContext) { say('msgInsecure'); startBtn.hidden = true; return; }
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia || !window.jsQR) {
      say('msgUnsupported'); startBtn.hidden = true; return;
    }
    startBtn.hidden = true;
    navigator.mediaDevices.getUserMedia({
      audio: false,
      video: { facingMode: { ideal: 'environment' }, width: { ideal: 1280 }, height: { ideal: 720 } }
    }).then(function (s) {
      stream = s;
      video.srcObject = s;
      finder.hidden = false;
      stopBtn.hidden = false;
      say('msgScanning');
      return video.play();
    }).then(function () {
      scan();
    }).catch(function (err) {
      stop();
      say(err && (err.name === 'NotAllowedError' || err.name === 'SecurityError') ? 'msgDenied' : 'msgFailed');
    });
  }

  startBtn.addEventListener('click', start);
  stopBtn.addEventListener('click', function () { stop(); status.textContent = ''; });
  window.addEventListener('pagehide', stop);
  if (box.dataset.autostart === '1') { start(); }
})();
