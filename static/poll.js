// Refreshes an element from a URL every few seconds. The server answers 304 when nothing changed,
// so an idle dashboard costs almost nothing; a failed poll just waits for the next one.
(function () {
  "use strict";
  document.querySelectorAll("[data-poll]").forEach(function (el) {
    var etag = null;
    var interval = parseInt(el.dataset.interval || "3000", 10);
    function poll() {
      var headers = etag ? { "If-None-Match": etag } : {};
      fetch(el.dataset.poll, { headers: headers, credentials: "same-origin", cache: "no-cache" })
        .then(function (response) {
          if (response.status === 200) {
            etag = response.headers.get("ETag");
            return response.text().then(function (html) { el.innerHTML = html; });
          }
        })
        .catch(function () {})
        .finally(function () { setTimeout(poll, interval); });
    }
    setTimeout(poll, interval);
  });
})();
