// Suggests people by name or code while typing a code on the review page.
(function () {
  "use strict";
  var list = document.getElementById("people");
  if (!list) { return; }
  var timer = null;
  document.querySelectorAll("input[list=people]").forEach(function (input) {
    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        fetch("/api/people?q=" + encodeURIComponent(input.value), { credentials: "same-origin" })
          .then(function (r) { return r.ok ? r.json() : []; })
          .then(function (people) {
            list.innerHTML = "";
            people.forEach(function (p) {
              var option = document.createElement("option");
              option.value = p.code;
              option.label = p.name + (p.group ? " (" + p.group + ")" : "");
              list.appendChild(option);
            });
          });
      }, 200);
    });
  });
})();
