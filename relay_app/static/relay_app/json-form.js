// Writes the JSON body of the browsable API's HTML form from its fields as a person types
// (relay_app.api.renderers.JSONFormBrowsableAPIRenderer); DRF's ajax-form.js then posts that
// body with the content type application/json, as it does for its "Raw data" tab.
(function () {
  "use strict";
  var form = document.currentScript.closest("form");
  var body = form.querySelector("[data-override='content']");

  function write() {
    var values = {};
    form.querySelectorAll("[name]").forEach(function (field) {
      if (field.name !== "csrfmiddlewaretoken") {
        values[field.name] = field.value;
      }
    });
    body.value = JSON.stringify(values);
  }

  form.addEventListener("input", write);
  form.addEventListener("change", write);
  form.addEventListener("submit", write, true);
  write();
})();
