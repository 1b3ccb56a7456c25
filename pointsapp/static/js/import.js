// The import page's progress bar: send the form with fetch, asking for JSON lines
// (Accept: application/x-ndjson), and move the bar as the server reports the rows it has
// checked. Without this script (or without streams) the form posts as usual and the page
// shows the result when every row is checked.
(function () {
  'use strict';
  var form = document.getElementById('import-form');
  if (!form || !window.fetch || !window.TextDecoder || !window.ReadableStream) { return; }
  var box = document.getElementById('import-progress');
  var bar = document.getElementById('import-bar');
  var status = document.getElementById('import-status');
  var outcome = document.getElementById('import-outcome');
  var button = form.querySelector('button[type="submit"]');

  function say(text) { status.textContent = text; }
  function refuse(text) {
    var p = document.createElement('p');
    p.className = 'error';
    p.setAttribute('role', 'alert');
    p.textContent = text;
    outcome.textContent = '';
    outcome.appendChild(p);
  }
  function checked(done, total) {
    return form.getAttribute('data-checked').replace('{done}', done).replace('{total}', total);
  }

  function handle(line) {
    var msg = JSON.parse(line);
    if (msg.total !== undefined) { bar.max = Math.max(msg.total, 1); }
    if (msg.done !== undefined) { bar.value = msg.done; say(checked(msg.done, bar.max)); }
    if (msg.html !== undefined) { outcome.innerHTML = msg.html; }
    if (msg.error !== undefined) { outcome.textContent = msg.error; }
    return msg.html !== undefined || msg.error !== undefined;
  }

  form.addEventListener('submit', function (event) {
    var file = form.querySelector('input[type="file"]');
    if (!file || !file.files || !file.files.length) { return; }  // the server explains
    event.preventDefault();
    var tooLarge = form.getAttribute('data-too-large');
    if (file.files[0].size > Number(form.getAttribute('data-max-bytes'))) {
      // Said at once, beside the field, instead of sending megabytes the server refuses.
      refuse(tooLarge);
      return;
    }
    box.hidden = false;
    bar.removeAttribute('value');  // indeterminate while the file travels
    say(form.getAttribute('data-sending'));
    button.disabled = true;
    var finished = false, buffer = '', decoder = new TextDecoder();
    fetch(form.action, {
      method: 'POST', body: new FormData(form), credentials: 'same-origin',
      headers: {'Accept': 'application/x-ndjson'}
    }).then(function (resp) {
      if (resp.status === 413) {  // not sent again: it would be refused again
        finished = true;
        refuse(tooLarge);
        return;
      }
      if (!resp.ok || (resp.headers.get('Content-Type') || '').indexOf('application/x-ndjson') !== 0) {
        // A refusal (an unreadable file, an expired form) changed nothing: send the form the
        // plain way, so the page shows the refusal with its field messages.
        finished = true;
        HTMLFormElement.prototype.submit.call(form);
        return;
      }
      var reader = resp.body.getReader();
      function pump() {
        return reader.read().then(function (chunk) {
          if (chunk.done) { return; }
          buffer += decoder.decode(chunk.value, {stream: true});
          var lines = buffer.split('\n');
          buffer = lines.pop();
          lines.forEach(function (line) { if (line.trim() && handle(line)) { finished = true; } });
          return pump();
        });
      }
      return pump();
    }).catch(function () { /* reported below */ }).then(function () {
      button.disabled = false;
      if (!finished) { say(form.getAttribute('data-failed')); }
      else { box.hidden = true; form.reset(); }
    });
  });
})();
