// Refreshes the status page in place every few seconds: the same page, fetched again
// with the login cookie, its <main> swapped in. Without JavaScript, a meta refresh does it.
(function () {
  var every = Number(document.body.dataset.refresh || 5) * 1000;
  document.body.dataset.live = "on";
  function update() {
    fetch(location.pathname, {credentials: "same-origin", cache: "no-store",
                              headers: {"Accept": "text/html"}})
      .then(function (r) {
        if (r.status === 401) { location.reload(); return null; }
        return r.text();  // the page, or the one saying Redis does not answer
      })
      .then(function (html) {
        if (!html) return;
        var page = new DOMParser().parseFromString(html, "text/html");
        var fresh = page.querySelector("main"), at = page.querySelector("#at");
        if (fresh) document.querySelector("main").replaceWith(fresh);
        if (at) document.querySelector("#at").replaceWith(at);
      })
      .catch(function () {})
      .then(function () { setTimeout(update, every); });
  }
  setTimeout(update, every);
})();
