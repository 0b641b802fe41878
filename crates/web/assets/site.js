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
  function refreshLive(el) {
    fetch(el.getAttribute('data-live'), {
      credentials: 'same-origin',
      headers: { 'Accept': 'application/json' }
    }).then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) { setTimeout(function () { refreshLive(el); }, 3000); return; }
        el.querySelectorAll('[data-field]').forEach(function (field) {
          var value = data[field.getAttribute('data-field')];
          if (value !== undefined) field.textContent = value === null ? '' : String(value);
        });
        if (data.status) el.setAttribute('data-status', data.status);
        el.querySelectorAll('[data-live-only]').forEach(function (x) { x.hidden = !data.live; });
        el.querySelectorAll('[data-idle-only]').forEach(function (x) { x.hidden = !!data.live; });
        el.setAttribute('data-live-active', data.live ? 'true' : 'false');
        if (data.live) setTimeout(function () { refreshLive(el); }, 1000);
      }, function () { setTimeout(function () { refreshLive(el); }, 3000); });
  }

  document.addEventListener('DOMContentLoaded', function () {
    document.querySelectorAll('[data-live][data-live-active="true"]').forEach(function (el) {
      setTimeout(function () { refreshLive(el); }, 1000);
    });
  });
})();
