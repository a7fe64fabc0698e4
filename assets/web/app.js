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
  // A label over what the server reads (data-max-bytes, counted as the browser sends the
  // form: URL-encoded, CRLF line ends) would be refused with the page left behind: stop the
  // save here, where the text stays in the box.
  Array.prototype.forEach.call(document.querySelectorAll('form[data-max-bytes]'), function (form) {
    form.addEventListener('submit', function (ev) {
      var pairs = [];
      new FormData(form).forEach(function (v, k) { pairs.push([k, String(v).replace(/\r\n|\r|\n/g, '\r\n')]); });
      var size = new URLSearchParams(pairs).toString().length;
      var limit = Number(form.getAttribute('data-max-bytes'));
      if (size <= limit) { return; }
      ev.preventDefault();
      var note = form.querySelector('.too-large');
      note.textContent = 'Not saved: this label is ' + (size / 1048576).toFixed(1) + ' MB as sent, over the ' +
        (limit / 1048576) + ' MB one save may send. Your text is still in the box: shorten it and save again.';
      note.hidden = false;
    });
  });
  // The page of a label too large to save: back to the page that still holds the text.
  var back = document.getElementById('go-back');
  if (back) {
    back.hidden = false;
    back.addEventListener('click', function () { history.back(); });
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
