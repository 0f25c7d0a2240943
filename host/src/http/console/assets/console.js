// The console's only script: drag and drop onto the plugin upload form.
// Without it the form is an ordinary file input that posts; with it, a file
// dropped on the zone fills that input and the form is submitted.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("form[data-dropzone]").forEach(function (form) {
    var zone = form.querySelector(".dropzone");
    var input = form.querySelector("input[type=file]");
    if (!zone || !input) { return; }
    ["dragenter", "dragover"].forEach(function (name) {
      zone.addEventListener(name, function (event) {
        event.preventDefault();
        zone.classList.add("over");
      });
    });
    ["dragleave", "drop"].forEach(function (name) {
      zone.addEventListener(name, function () { zone.classList.remove("over"); });
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      if (event.dataTransfer && event.dataTransfer.files.length > 0) {
        input.files = event.dataTransfer.files;
        form.submit();
      }
    });
  });
});
