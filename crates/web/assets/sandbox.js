// The sandbox console: shows the open channel as the server renders it (polling),
// sends slash commands, button clicks and menu picks as the chosen user, and says
// on the page what went wrong. The chosen user's direct messages with the bot are a
// channel of their own, listed in the sidebar once the bot has sent one.
(function () {
  'use strict';
  var app = document.querySelector('[data-console]');
  if (!app) return;
  var $ = function (id) { return document.getElementById(id); };
  var messages = $('messages'), sidebar = $('sidebar'), input = $('command');
  var channel = app.dataset.channel;
  // Whether the open channel is the chosen user's direct messages (theirs alone).
  var dm = app.hasAttribute('data-dm');
  var lastView = null, lastSidebar = null, loading = false;
  // The message a followed link names (`?message=`): scrolled to, marked and focused,
  // and the list kept where it is, until another channel is picked.
  var linked = app.dataset.message
    ? messages.querySelector('article.message[data-id="' + CSS.escape(app.dataset.message) + '"]')
    : null;
  var history = [], back = 0;

  function user() { return $('user').value; }
  // What went wrong, with its `code` spans shown as code (as Discord shows them).
  function status(text) {
    var box = $('status');
    box.replaceChildren();
    String(text || '').split('`').forEach(function (part, i) {
      if (i % 2 === 1) {
        var code = document.createElement('code');
        code.textContent = part;
        box.append(code);
      } else if (part) {
        box.append(part);
      }
    });
  }

  function failure(response) {
    return response.json().catch(function () { return {}; }).then(function (body) {
      throw new Error(body.error || response.statusText || 'the request failed');
    });
  }

  function post(path, body) {
    return fetch('/sandbox/api/' + path, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-csrf-token': app.dataset.csrf },
      body: JSON.stringify(body)
    }).then(function (r) { return r.ok ? r.json() : failure(r); });
  }

  function fragment(path) {
    return fetch('/sandbox/api/' + path, { cache: 'no-store' })
      .then(function (r) { return r.ok ? r.text() : failure(r); });
  }

  function remember() {
    var url = '?channel=' + encodeURIComponent(channel) + '&user=' + encodeURIComponent(user());
    window.history.replaceState(null, '', url);
  }

  // The list is updated message by message (each keyed by the id the server renders),
  // never replaced whole: a screen reader then announces only what is new or edited,
  // and what did not change (a revealed spoiler, a playing video, the focused button)
  // stays as it is. `rendered` holds the HTML each shown element was last drawn from.
  var rendered = new Map();

  function keyOf(el) {
    return el.dataset.id ? 'message ' + el.dataset.id : el.tagName + '.' + el.className;
  }

  function remembered() {
    rendered.clear();
    Array.prototype.forEach.call(messages.children, function (el) {
      rendered.set(keyOf(el), el.outerHTML);
    });
  }

  function update(html) {
    var fresh = document.createElement('template');
    fresh.innerHTML = html;
    var shown = new Map();
    Array.prototype.forEach.call(messages.children, function (el) { shown.set(keyOf(el), el); });
    var next = new Map();
    var at = messages.firstElementChild;
    Array.prototype.slice.call(fresh.content.children).forEach(function (el) {
      var key = keyOf(el), drawn = el.outerHTML, old = shown.get(key);
      next.set(key, drawn);
      if (old && rendered.get(key) === drawn) {
        if (old !== at) messages.insertBefore(old, at);
        else at = at.nextElementSibling;
        shown.delete(key);
        return;
      }
      if (old) {
        // Edited: this one message is drawn again.
        var focused = old.contains(document.activeElement) ? document.activeElement : null;
        if (old === at) at = at.nextElementSibling;
        old.replaceWith(el);
        if (el.nextElementSibling !== at) messages.insertBefore(el, at);
        shown.delete(key);
        // The linked message keeps its mark in its new version.
        if (old === linked) {
          linked = el;
          el.classList.add('linked');
        }
        if (focused) refocus(focused, el);
        return;
      }
      messages.insertBefore(el, at);
    });
    // Deleted messages (and, after a channel switch, the other channel's).
    shown.forEach(function (old) {
      var focused = old.contains(document.activeElement);
      old.remove();
      if (focused) focusOn(messages);
    });
    rendered = next;
  }

  function focusOn(el) {
    if (!el.hasAttribute('tabindex')) el.setAttribute('tabindex', '-1');
    el.focus({ preventScroll: true });
  }

  // Focus that was in a message drawn again goes to the same control in its new
  // version (the button or menu with the same custom id, else the same label), or to
  // the message: pressing a button with the keyboard does not drop focus to the page.
  function refocus(was, message) {
    var same = Array.prototype.filter.call(
      message.querySelectorAll(was.tagName),
      function (c) { return !c.disabled; });
    var custom = was.getAttribute('data-custom');
    var target = same.filter(function (c) {
      return custom !== null && c.getAttribute('data-custom') === custom;
    })[0] || same.filter(function (c) {
      return c.textContent === was.textContent;
    })[0];
    if (target) target.focus({ preventScroll: true });
    else focusOn(message);
  }

  function refresh() {
    if (loading) return Promise.resolve();
    loading = true;
    var asked = channel;
    return fragment('channels/' + encodeURIComponent(asked) + '?user=' + encodeURIComponent(user()))
      .then(function (html) {
        if (asked !== channel) return;
        var switching = messages.getAttribute('aria-busy') === 'true';
        if (html === lastView) {
          // The list a channel switch drew has been shown since: it is live again.
          if (switching) messages.removeAttribute('aria-busy');
          return;
        }
        var atBottom = (lastView === null && !linked) ||
          messages.scrollHeight - messages.scrollTop - messages.clientHeight < 60;
        if (switching) {
          // Another channel: its messages are not news to announce one by one.
          messages.innerHTML = html;
          remembered();
        } else {
          update(html);
        }
        lastView = html;
        if (atBottom) messages.scrollTop = messages.scrollHeight;
      })
      .catch(function (e) { status(e.message); })
      .then(function () { loading = false; });
  }

  function refreshSidebar() {
    return fragment('sidebar?channel=' + encodeURIComponent(channel) + '&user=' + encodeURIComponent(user()))
      .then(function (html) {
        if (html === lastSidebar) return;
        // Redrawn whole: a channel button that had the focus has it again, or, when its
        // channel is gone, the open channel's (else the first).
        var focused = document.activeElement;
        var had = sidebar.contains(focused) && focused.dataset ? focused.dataset.id : null;
        sidebar.innerHTML = html;
        lastSidebar = html;
        if (had) {
          var again = sidebar.querySelector('button.channel[data-id="' + CSS.escape(had) + '"]') ||
            sidebar.querySelector('button.channel.active') ||
            sidebar.querySelector('button.channel');
          if (again) again.focus();
        }
      })
      .catch(function () { /* the next round tries again */ });
  }

  // The commands suggested as one types: in direct messages, not those Discord offers
  // in servers only.
  function offerCommands() {
    document.querySelectorAll('#command-list option[data-guild-only]').forEach(function (o) {
      o.disabled = dm;
    });
  }

  function pick(id, isDm) {
    if (id === channel) return;
    channel = id;
    dm = Boolean(isDm);
    offerCommands();
    lastView = null;
    linked = null;
    // Busy until the next round finds the new channel's list unchanged, so a screen
    // reader does not read the whole channel out as if it had just been posted.
    messages.setAttribute('aria-busy', 'true');
    sidebar.querySelectorAll('button.channel').forEach(function (b) {
      var open = b.dataset.id === id;
      b.classList.toggle('active', open);
      if (open) b.setAttribute('aria-current', 'true');
      else b.removeAttribute('aria-current');
    });
    remember();
    loading = false;
    refresh();
    // Its commands: direct messages are offered fewer.
    refreshSidebar();
  }

  // After an action: the channel, and the sidebar, where it may have added a channel
  // or the user's direct messages.
  function answered() {
    refreshSidebar();
    return refresh();
  }

  function act(kind, message, customId, values) {
    status('…');
    return post(kind, { channel: channel, user: user(), message: message, custom_id: customId, values: values })
      .then(function (r) { status(r.ok ? '' : r.error); })
      .catch(function (e) { status(e.message); })
      .then(answered);
  }

  sidebar.addEventListener('click', function (ev) {
    var button = ev.target.closest('button.channel');
    if (button) pick(button.dataset.id, button.hasAttribute('data-dm'));
  });

  messages.addEventListener('click', function (ev) {
    var button = ev.target.closest('button[data-custom]');
    if (button && !button.disabled) act('click', button.dataset.message, button.dataset.custom, []);
  });

  messages.addEventListener('change', function (ev) {
    var select = ev.target.closest('select[data-custom]');
    if (select && select.value) act('select', select.dataset.message, select.dataset.custom, [select.value]);
  });

  // Another user: their direct messages are listed. Open ones were the last user's:
  // the new user's open instead (or, when they have none, the first channel).
  $('user').addEventListener('change', function () {
    lastView = null;
    if (!dm) {
      remember();
      refresh();
      refreshSidebar();
      return;
    }
    refreshSidebar().then(function () {
      var theirs = sidebar.querySelector('button.channel[data-dm]');
      pick(theirs ? theirs.dataset.id : app.dataset.home, Boolean(theirs));
    });
  });

  $('composer').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var text = input.value.trim();
    if (!text) return;
    status('…');
    post('command', { channel: channel, user: user(), text: text })
      .then(function (r) {
        history.push(text);
        back = 0;
        input.value = '';
        status(r.ok ? '' : r.error);
      })
      .catch(function (e) { status(e.message); })
      .then(answered);
  });

  // Up and down walk through the commands sent before.
  input.addEventListener('keydown', function (ev) {
    if (ev.key !== 'ArrowUp' && ev.key !== 'ArrowDown') return;
    if (!history.length) return;
    back = Math.max(0, Math.min(history.length, back + (ev.key === 'ArrowUp' ? 1 : -1)));
    input.value = back ? history[history.length - back] : '';
    ev.preventDefault();
  });

  // On a phone the channels are a strip that scrolls sideways: the open one is in it.
  var open = sidebar.querySelector('button.channel.active');
  if (open && sidebar.scrollWidth > sidebar.clientWidth) {
    sidebar.scrollLeft = open.offsetLeft - (sidebar.clientWidth - open.offsetWidth) / 2;
  }
  remembered();
  if (linked) {
    linked.classList.add('linked');
    linked.scrollIntoView({ block: 'center' });
    focusOn(linked);
  } else {
    messages.scrollTop = messages.scrollHeight;
  }
  // On a screen short for its text the page scrolls (site.css): it opens scrolled past
  // the header to the channels, the messages and the composer, which fill the screen.
  if (window.matchMedia('(max-height: 36rem)').matches) {
    document.querySelector('.console-body').scrollIntoView({ block: 'start' });
  }
  refresh();
  setInterval(function () { if (!document.hidden) refresh(); }, 700);
  setInterval(function () { if (!document.hidden) refreshSidebar(); }, 15000);
})();
