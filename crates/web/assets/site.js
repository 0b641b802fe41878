// Every page's script: the saved theme (applied before the page is painted, which
// is why this file is not deferred), the header's theme switch, spoilers that a
// click or Enter reveals, and live parts of a page kept up to date from a JSON URL.
(function () {
  'use strict';
  var root = document.documentElement;
  var KEY = 'tavern-theme';
  try {
    var saved = localStorage.getItem(KEY);
    if (saved === 'light' || saved === 'dark') root.dataset.theme = saved;
  } catch (e) { /* storage disabled: follow the system */ }

  function isDark() {
    if (root.dataset.theme) return root.dataset.theme === 'dark';
    return window.matchMedia && window.matchMedia('(prefers-color-scheme: dark)').matches;
  }

  function reveal(target) {
    var spoiler = target.closest && target.closest('.spoiler');
    if (spoiler && !spoiler.classList.contains('revealed')) {
      spoiler.classList.add('revealed');
      spoiler.removeAttribute('role');
      spoiler.removeAttribute('tabindex');
      return true;
    }
    return false;
  }

  document.addEventListener('click', function (ev) {
    var toggle = ev.target.closest && ev.target.closest('[data-theme-toggle]');
    if (toggle) {
      var next = isDark() ? 'light' : 'dark';
      root.dataset.theme = next;
      try { localStorage.setItem(KEY, next); } catch (e) { /* not remembered */ }
      return;
    }
    if (reveal(ev.target)) ev.preventDefault();
  });

  document.addEventListener('keydown', function (ev) {
    if ((ev.key === 'Enter' || ev.key === ' ') && reveal(ev.target)) ev.preventDefault();
  });

  // Live parts of a page (the clips' scan progress): an element with
  // data-live="<JSON URL>" and data-live-active="true" is refreshed from that URL every
  // second. Each [data-field] inside shows the field of that name, the element's
  // data-status takes `status`, and [data-live-only] / [data-idle-only] show while
  // `live` is true / false. Polling stops once `live` is false.
  //
  // A screen reader is told when the state changes (`status` or `live`), not at every
  // tick of the counts: a hidden polite status line inside the element is set then to
  // the text of the line showing the status (or of the element).
  function announcer(el) {
    var box = el.querySelector('[data-live-announce]');
    if (!box) {
      box = document.createElement('p');
      box.className = 'visually-hidden';
      box.setAttribute('role', 'status');
      box.setAttribute('data-live-announce', '');
      el.append(box);
    }
    return box;
  }

  function stateOf(el) {
    return el.getAttribute('data-status') + ' ' + el.getAttribute('data-live-active');
  }

  function announce(el) {
    var status = el.querySelector('[data-field="status"]');
    var line = status ? (status.closest('p') || status) : el;
    var copy = line.cloneNode(true);
    copy.querySelectorAll('[data-live-announce], [hidden]').forEach(function (x) { x.remove(); });
    announcer(el).textContent = copy.textContent.replace(/\s+/g, ' ').trim();
  }

  function refreshLive(el) {
    fetch(el.getAttribute('data-live'), {
      credentials: 'same-origin',
      headers: { 'Accept': 'application/json' }
    }).then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) { setTimeout(function () { refreshLive(el); }, 3000); return; }
        var before = stateOf(el);
        el.querySelectorAll('[data-field]').forEach(function (field) {
          var value = data[field.getAttribute('data-field')];
          if (value !== undefined) field.textContent = value === null ? '' : String(value);
        });
        if (data.status) el.setAttribute('data-status', data.status);
        el.querySelectorAll('[data-live-only]').forEach(function (x) { x.hidden = !data.live; });
        el.querySelectorAll('[data-idle-only]').forEach(function (x) { x.hidden = !!data.live; });
        el.setAttribute('data-live-active', data.live ? 'true' : 'false');
        if (stateOf(el) !== before) announce(el);
        if (data.live) setTimeout(function () { refreshLive(el); }, 1000);
      }, function () { setTimeout(function () { refreshLive(el); }, 3000); });
  }

  document.addEventListener('DOMContentLoaded', function () {
    document.querySelectorAll('[data-live][data-live-active="true"]').forEach(function (el) {
      // In the page before anything is said in it, as screen readers need.
      announcer(el);
      setTimeout(function () { refreshLive(el); }, 1000);
    });
  });
})();
