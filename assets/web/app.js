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
  // A run log's newest lines are at the end of its box: show them, as `tail` would, rather
  // than the top of the shown part (the page reloads as the log grows).
  var log = document.getElementById('log');
  if (log) { log.scrollTop = log.scrollHeight; }
  // A form over what the server reads (data-max-bytes, counted as the browser sends the
  // form: URL-encoded, CRLF line ends) would be refused with the page left behind: stop it
  // here, where what was typed stays, and say so in the form's notice (its data-message, with
  // {size} and {limit} filled in).
  // Rounded up to a tenth: a size over a limit never reads as the limit.
  var mb = function (bytes) { return String(Math.ceil(bytes / 104857.6) / 10) + ' MB'; };
  Array.prototype.forEach.call(document.querySelectorAll('form[data-max-bytes]'), function (form) {
    form.addEventListener('submit', function (ev) {
      var pairs = [];
      new FormData(form).forEach(function (v, k) { pairs.push([k, String(v).replace(/\r\n|\r|\n/g, '\r\n')]); });
      var size = new URLSearchParams(pairs).toString().length;
      var limit = Number(form.getAttribute('data-max-bytes'));
      if (size <= limit) { return; }
      ev.preventDefault();
      var note = form.querySelector('.too-large');
      note.textContent = note.getAttribute('data-message')
        .replace('{size}', mb(size)).replace('{limit}', mb(limit));
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
  // them with the lab's loaders and answers with the dataset path or the problem. A file over
  // the input's data-max-bytes is refused here, before a long upload the server would refuse.
  var up = document.getElementById('upload-button');
  if (up) {
    var input = document.getElementById('upload-file');
    var msg = document.getElementById('upload-message');
    var tooLarge = function (file) {
      var limit = input.getAttribute('data-max-bytes');
      if (!file || limit === null || file.size <= Number(limit)) { return false; }
      msg.textContent = file.name + ' is ' + mb(file.size) + '. ' + input.getAttribute('data-too-large');
      return true;
    };
    input.addEventListener('change', function () { msg.textContent = ''; tooLarge(input.files[0]); });
    up.addEventListener('click', function () {
      var file = input.files[0];
      if (!file) { msg.textContent = 'choose a file first'; return; }
      if (tooLarge(file)) { return; }
      var q = 'filename=' + encodeURIComponent(file.name) +
        '&input_field=' + encodeURIComponent(document.getElementById('input_field').value) +
        '&output_field=' + encodeURIComponent(document.getElementById('output_field').value);
      msg.textContent = 'uploading ' + mb(file.size) + '…';
      fetch('/upload?' + q, {method: 'POST', body: file, credentials: 'same-origin',
                             headers: {'Accept': 'application/json'}})
        .then(function (r) {
          // Anything but the upload's JSON (a lost access token, a proxy's page) by its status.
          if ((r.headers.get('Content-Type') || '').indexOf('application/json') !== 0) {
            throw new Error('the server answered ' + r.status + ' ' + r.statusText);
          }
          return r.json();
        })
        .then(function (res) {
          if (res.error) { msg.textContent = res.error; return; }
          var sel = document.getElementById('dataset');
          var opt = document.createElement('option');
          opt.value = res.path; opt.textContent = res.path; sel.appendChild(opt); sel.value = res.path;
          msg.textContent = 'uploaded: ' + res.rows + ' rows';
        })
        .catch(function (e) { msg.textContent = 'upload failed: ' + e.message; });
    });
  }
})();
