/* The schedule editor and the add-job form: only the chosen trigger kind's fields.
 *
 * Each kind (cron, interval, date) has its own fieldset. This script hides the
 * others and disables them, which takes them out of the tab order and out of what
 * is posted. Without it every fieldset shows, headed by its kind, and the server
 * reads only the chosen kind's fields anyway.
 *
 * It also puts the focus on the field the server marked with autofocus (the first
 * one with an error), for browsers that did not already.
 */
'use strict';
(function () {
  function showChosenKind(form) {
    const chosen = form.querySelector('input[name="kind"]:checked');
    form.querySelectorAll('fieldset[data-trigger-kind]').forEach(function (fieldset) {
      const shown = !chosen || fieldset.dataset.triggerKind === chosen.value;
      fieldset.hidden = !shown;
      fieldset.disabled = !shown;
    });
  }

  function setUp(form) {
    showChosenKind(form);
    form.addEventListener('change', function (event) {
      if (event.target.name === 'kind') {
        showChosenKind(form);
      }
    });
    const first = form.querySelector('[autofocus]');
    if (first && document.activeElement !== first) {
      first.focus();
    }
  }

  function start() {
    document.querySelectorAll('form.das-schedule-form').forEach(setUp);
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
