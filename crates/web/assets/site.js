// Every page's script: the saved theme (applied before the page is painted, which
// is why this file is not deferred), the header's theme switch, and spoilers that a
// click or Enter reveals.
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
})();
