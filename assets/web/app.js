// Live updates: pages that show results carry data-live (a fingerprint of the files they
// show); every 2 s we ask the server for the current fingerprint and reload on a change.
(function () {
  var live = document.body.getAttribute('data-live');
  if (live !== null) {
    setInterval(function () {
      fetch('/api/status', {credentials: 'same-origin'})
        .then(function (r) { return r.json(); })
        .then(function (s) { if (s.fingerprint !== live) { location.reload(); } })
        .catch(function () {});
    }, 2000);
  }
  // Upload a CSV/JSONL file for the launch form: the raw bytes go to /upload, which parses
  // them with the lab's loaders and answers with the dataset path or the problem.
  var up = document.getElementById('upload-button');
  if (up) {
    up.addEventListener('click', function () {
      var file = document.getElementById('upload-file').files[0];
      var msg = document.getElementById('upload-message');
      if (!file) { msg.textContent = 'choose a file first'; return; }
      var q = 'filename=' + encodeURIComponent(file.name) +
        '&input_field=' + encodeURIComponent(document.getElementById('input_field').value) +
        '&output_field=' + encodeURIComponent(document.getElementById('output_field').value);
      fetch('/upload?' + q, {method: 'POST', body: file, credentials: 'same-origin'})
        .then(function (r) { return r.json(); })
        .then(function (res) {
          if (res.error) { msg.textContent = res.error; return; }
          var sel = document.getElementById('dataset');
          var opt = document.createElement('option');
          opt.value = res.path; opt.textContent = res.path; sel.appendChild(opt); sel.value = res.path;
          msg.textContent = 'uploaded: ' + res.rows + ' rows';
        })
        .catch(function (e) { msg.textContent = 'upload failed: ' + e; });
    });
  }
})();
