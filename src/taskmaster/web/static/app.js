// Taskmaster dashboard: the pipeline page's live stream (one EventSource per page).
// Log events carry server-rendered, escaped HTML and a cursor id; a reconnect resumes from the last id, so no
// line is shown twice or lost. The browser's own retry sends Last-Event-ID; a reopen sends after=<id>.
(function () {
  "use strict";
  const steps = document.getElementById("steps");
  if (!steps || steps.dataset.finished === "true") return;
  const live = { lastId: steps.dataset.cursor || "", source: null, ended: false };
  window.tmLive = live;

  function logOf(step) {
    return steps.querySelector('pre.log[data-step="' + CSS.escape(step) + '"]');
  }
  function setStatus(holder, value) {
    if (!holder) return;
    holder.innerHTML = '<span class="status s-' + value.replace(/[^a-z_]/g, "") + '">' +
      value.replace(/[^a-z_]/g, "") + "</span>";
  }
  function refreshParts() {
    if (!window.htmx) return Promise.resolve();
    return Promise.all([".head", ".pictures"].map(function (part) {
      return window.htmx.ajax("GET", window.location.pathname, { target: part, select: part, swap: "outerHTML" });
    }));
  }
  live.open = function () {
    const url = steps.dataset.live + "?after=" + encodeURIComponent(live.lastId);
    const source = new EventSource(url);
    live.source = source;
    source.addEventListener("log", function (event) {
      const data = JSON.parse(event.data);
      live.lastId = event.lastEventId || live.lastId;
      const pre = logOf(data.step);
      if (!pre) return;
      const follow = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
      pre.insertAdjacentHTML("beforeend", data.html);
      const details = pre.closest("details");
      if (details && !details.open) details.open = true;
      if (follow) pre.scrollTop = pre.scrollHeight;
    });
    source.addEventListener("state", function (event) {
      const data = JSON.parse(event.data);
      refreshParts();
      setStatus(document.getElementById("pipeline-status"), data.status);
      for (const [name, value] of Object.entries(data.steps)) {
        setStatus(steps.querySelector('.step-status[data-step="' + CSS.escape(name) + '"]'), value);
      }
    });
    source.addEventListener("end", function () {
      live.ended = true;
      source.close();
      // The header (buttons, duration) and the pictures as they stand now; the logs stay as streamed.
      refreshParts().then(function () { document.body.dataset.pipelineEnded = "true"; });
    });
    source.addEventListener("error", function () {
      if (!live.ended && source.readyState === EventSource.CLOSED) setTimeout(live.open, 1000);
    });
  };
  live.reconnect = function () {
    if (live.source) live.source.close();
    live.open();
  };
  live.open();
})();
