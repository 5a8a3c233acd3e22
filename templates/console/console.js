// Progressive enhancement only: every page works without this file.
(function () {
  'use strict';
  // Filter forms submit on change.
  document.querySelectorAll('form.filters select').forEach(function (s) {
    s.addEventListener('change', function () { s.form.submit(); });
  });
  // GitHub App setup: post the manifest to the organisation's (or the user's) page.
  var org = document.getElementById('organization');
  if (org) {
    org.form.addEventListener('submit', function () {
      var base = org.dataset.base, state = encodeURIComponent(org.dataset.state);
      org.form.action = org.value
        ? base + '/organizations/' + encodeURIComponent(org.value) + '/settings/apps/new?state=' + state
        : base + '/settings/apps/new?state=' + state;
    });
  }
})();
