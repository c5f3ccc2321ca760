/* The live page (templates/relay_app/live.html): relay a message with
   `Prefer: respond-async`, then follow the transaction's event stream and draw each hop
   on a common time axis as it arrives (with its attempts that failed, each as it ends),
   then the final text. While it is pending, "Cancel it" cancels it. Errors are said in
   words. */
"use strict";

(function () {
  const page = document.getElementById("live");
  const form = document.getElementById("relay-form");
  const message = document.getElementById("message");
  const send = document.getElementById("send");
  const cancel = document.getElementById("cancel");
  const statusLine = document.getElementById("status");
  const errorLine = document.getElementById("error");
  const transactionLabel = document.getElementById("transaction");
  const finalSection = document.getElementById("final");
  const finalText = document.getElementById("final-text");
  const rows = Array.from(document.querySelectorAll("#hops .live__row"));

  let source = null;
  let hops = {};

  function setStatus(text) { statusLine.textContent = text; }

  /* `state`: the page's data-state after it (a settled transaction keeps its status). */
  function showError(text, state) {
    errorLine.textContent = text;
    errorLine.hidden = false;
    page.dataset.state = state || "error";
    send.disabled = false;
    cancel.hidden = true;
  }

  function reset() {
    if (source) { source.close(); source = null; }
    hops = {};
    errorLine.hidden = true;
    errorLine.textContent = "";
    finalSection.hidden = true;
    finalText.textContent = "";
    transactionLabel.textContent = "";
    page.dataset.state = "sending";
    for (const row of rows) {
      row.dataset.state = "waiting";
      row.querySelector(".live__bar").style.cssText = "";
      row.querySelector(".live__duration").textContent = "–";
      row.querySelector(".live__text").textContent = "";
      const attempts = row.querySelector(".live__attempts");
      attempts.hidden = true;
      attempts.textContent = "";
    }
  }

  /* An attempt that did not succeed: said on its hop's row, as it ends. */
  function onAttempt(attempt) {
    const row = rows[attempt.position - 1];
    const line = row.querySelector(".live__attempts");
    const then = attempt.retried ? "; trying again" : "";
    line.textContent = (line.textContent ? line.textContent + " " : "") +
      "Attempt " + attempt.number + " " + attempt.outcome.replace(/_/g, " ") + ": " + attempt.error + then + ".";
    line.hidden = false;
    if (row.dataset.state !== "done" && attempt.retried) { row.dataset.state = "retrying"; }
    setStatus("Hop " + attempt.position + ", attempt " + attempt.number + " " + attempt.outcome.replace(/_/g, " ") + then + ".");
  }

  function ms(value) { return value.toFixed(2) + " ms"; }

  /* Every hop received so far, on one axis from the first hop's start to the last's end; a
     rerun's inherited hops stay off it (they ran before, in the original). */
  function draw() {
    const received = Object.values(hops).filter((hop) => !hop.inherited);
    if (!received.length) { return; }
    const start = Math.min(...received.map((hop) => Date.parse(hop.started_at)));
    const end = Math.max(...received.map((hop) => Date.parse(hop.finished_at)));
    const span = Math.max(end - start, 1);
    for (const hop of received) {
      const row = rows[hop.position - 1];
      const left = (100 * (Date.parse(hop.started_at) - start)) / span;
      const width = Math.max((100 * hop.duration_ms) / span, 0.4);
      const bar = row.querySelector(".live__bar");
      bar.style.left = Math.min(left, 99.6).toFixed(3) + "%";
      bar.style.width = Math.min(width, 100 - Math.min(left, 99.6)).toFixed(3) + "%";
      bar.title = hop.stage + ": " + ms(hop.duration_ms);
    }
  }

  function onHop(hop) {
    if (hops[hop.position]) { return; } /* hop 1 came with the 202 already */
    hops[hop.position] = hop;
    const row = rows[hop.position - 1];
    row.dataset.state = hop.inherited ? "inherited" : "done";
    const tries = hop.attempts ? hop.attempts.length : 1;
    row.querySelector(".live__duration").textContent = ms(hop.duration_ms) + (tries > 1 ? " (attempt " + tries + ")" : "");
    row.querySelector(".live__text").textContent = (hop.inherited ? "inherited, not done again: " : "") + hop.text;
    draw();
    const done = hop.inherited ? " inherited: " : " done: ";
    setStatus("Hop " + hop.position + " of " + rows.length + done + hop.stage.replace(/_/g, " ") + ".");
  }

  function onSettled(transaction) {
    for (const hop of transaction.hops) { onHop(hop); }
    page.dataset.state = transaction.status;
    send.disabled = false;
    cancel.hidden = true;
    const total = transaction.duration_ms === null ? "" : " in " + ms(transaction.duration_ms);
    if (transaction.status === "succeeded") {
      finalText.textContent = transaction.message;
      finalSection.hidden = false;
      const rerun = transaction.rerun_of
        ? "a rerun from hop " + transaction.from_hop + " of " + transaction.rerun_of + ", the hops before it inherited"
        : "all eight hops done";
      setStatus("Succeeded: " + rerun + total + ".");
    } else if (transaction.status === "cancelled") {
      setStatus("Cancelled" + total + ".");
      showError("The transaction was " + transaction.error + ".", "cancelled");
    } else if (transaction.status === "timed_out") {
      setStatus("Timed out" + total + ".");
      showError("The relay timed out: " + transaction.error + ".", "timed_out");
    } else {
      setStatus("Failed" + total + ".");
      showError("The relay failed: " + transaction.error + ".", "failed");
    }
  }

  function follow(url) {
    source = new EventSource(url);
    source.addEventListener("attempt", (event) => onAttempt(JSON.parse(event.data)));
    source.addEventListener("hop", (event) => onHop(JSON.parse(event.data)));
    const end = (event) => {
      source.close();
      source = null;
      onSettled(JSON.parse(event.data));
    };
    source.addEventListener("settled", end);
    source.addEventListener("cancelled", end);
    source.onerror = () => {
      /* EventSource reconnects by itself (with Last-Event-ID) while it can; closed means it
         gave up, e.g. the stream answered an error. */
      if (source && source.readyState === EventSource.CLOSED) {
        source = null;
        showError("The live stream of hops was lost; the transaction's page has its outcome.");
      } else {
        setStatus("Connection interrupted: reconnecting to the stream of hops…");
      }
    };
  }

  /* An answer other than 202, in words. */
  function describe(status, body) {
    const detail = body && body.detail ? body.detail : "";
    if (status === 400) {
      const reasons = body && body.errors
        ? Object.entries(body.errors).map(([field, why]) => field + ": " + why.join(" ")).join("; ")
        : detail;
      return "The message was refused: " + reasons;
    }
    if (status === 401 || status === 403) { return "You are not signed in, or may not relay: sign in again. (" + detail + ")"; }
    if (status === 413) { return "The message is too long."; }
    if (status === 429) { return "Too many requests: " + detail; }
    if (status === 503) { return "The relay is unavailable: " + (detail || "a dependency is down") + "."; }
    if (status === 504) { return "The deadline passed: " + (detail || "the relay took too long") + "."; }
    return "Unexpected answer (HTTP " + status + ")" + (detail ? ": " + detail : ".");
  }

  /* /live/?transaction=<id> (the admin's "Replay live"): that transaction's hops again. */
  const replay = new URLSearchParams(window.location.search).get("transaction");
  if (replay && /^[0-9a-f-]{36}$/i.test(replay)) {
    reset();
    transactionLabel.textContent = "of transaction " + replay;
    page.dataset.transaction = replay;
    setStatus("Replaying transaction " + replay + "…");
    follow(page.dataset.transactionsUrl + replay + "/events/");
  }

  /* Cancel the transaction being followed; its stream then ends with `cancelled`. */
  cancel.addEventListener("click", async () => {
    const id = page.dataset.transaction;
    if (!id) { return; }
    cancel.disabled = true;
    try {
      const response = await fetch(page.dataset.transactionsUrl + id + "/cancel/", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Accept": "application/json", "X-CSRFToken": page.dataset.csrfToken },
      });
      const body = await response.json().catch(() => null);
      if (response.status === 409) {
        setStatus("Too late to cancel: " + (body && body.detail ? body.detail : "it had already ended") + ".");
      } else if (!response.ok) {
        showError("Not cancelled (HTTP " + response.status + ")" + (body && body.detail ? ": " + body.detail : "."));
      }
    } catch (error) {
      showError("The relay could not be reached to cancel: " + error.message);
    } finally {
      cancel.disabled = false;
    }
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    reset();
    send.disabled = true;
    setStatus("Sending…");
    let response;
    try {
      response = await fetch(page.dataset.relayUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: {
          "Content-Type": "application/json",
          "Accept": "application/json",
          "Prefer": "respond-async",
          "X-CSRFToken": page.dataset.csrfToken,
        },
        body: JSON.stringify({ message: message.value }),
      });
    } catch (error) {
      setStatus("Not sent.");
      showError("The relay could not be reached: " + error.message);
      return;
    }
    let body = null;
    try { body = await response.json(); } catch (error) { body = null; }
    if (body && body.transaction_id) {
      transactionLabel.textContent = "of transaction " + body.transaction_id;
      page.dataset.transaction = body.transaction_id;
    }
    if (response.status === 202) {
      setStatus("Accepted: waiting for the hops…");
      onHop(body.hops[0]);
      cancel.hidden = false;
      follow(body.events);
    } else if (response.ok && body) {
      onSettled(body);
    } else {
      setStatus("Not relayed.");
      showError(describe(response.status, body));
    }
  });
})();
