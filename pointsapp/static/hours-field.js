// Show the hours field only for per-hour activities (the form works without this).
// A file, not an inline script: the Content-Security-Policy allows scripts from this site only.
(function () {
  var select = document.getElementById('rule_id'), box = document.getElementById('hours-box');
  if (!select || !box) { return; }
  function sync() {
    var opt = select.options[select.selectedIndex];
    box.hidden = !opt || opt.getAttribute('data-unit') !== 'hour';
  }
  select.addEventListener('change', sync);
  sync();
})();
