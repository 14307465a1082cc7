// The web page's behaviour: send an image or a JSON body to an app's predict endpoint and show
// what each model said; for staff, reload an app and refresh the reload history.
// Plain browser JavaScript, no build step. Page data comes from the "page-data" JSON script.
"use strict";

(function () {
  const data = JSON.parse(document.getElementById("page-data").textContent);
  const csrfInput = document.querySelector("[name=csrfmiddlewaretoken]");
  const csrf = csrfInput ? csrfInput.value : "";

  function element(tag, attrs, ...children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([key, value]) => node.setAttribute(key, value));
    node.append(...children);
    return node;
  }

  async function callApi(url, options) {
    const response = await fetch(url, {
      credentials: "same-origin",
      ...options,
      headers: { "Accept": "application/json", "X-CSRFToken": csrf, ...(options && options.headers) },
    });
    let payload = {};
    try {
      payload = await response.json();
    } catch (err) {
      payload = { error: `the server answered ${response.status} without JSON`, code: "bad_response" };
    }
    if (!response.ok) {
      throw new Error(`${payload.error || response.statusText} (${payload.code || response.status})`);
    }
    return payload;
  }

  // -- predict --------------------------------------------------------------
  const form = document.getElementById("predict-form");
  if (form) {
    const select = document.getElementById("app-select");
    const input = document.getElementById("image-input");
    const drop = document.getElementById("drop");
    const sampleButton = document.getElementById("sample-button");
    const jsonInput = document.getElementById("json-input");
    const jsonButton = document.getElementById("json-button");
    const preview = document.getElementById("preview");
    const status = document.getElementById("predict-status");
    const results = document.getElementById("results");
    let previewUrl = null;

    const setStatus = (text, failed) => {
      status.textContent = text;
      status.classList.toggle("error", Boolean(failed));
    };

    const showPreview = (blob) => {
      if (previewUrl) URL.revokeObjectURL(previewUrl);
      previewUrl = URL.createObjectURL(blob);
      preview.src = previewUrl;
      preview.alt = `The image sent to ${select.value}`;
      preview.hidden = false;
    };

    // Answers carry the model's floats as they are; the page shows them to 6 significant digits.
    const num = (value) => (typeof value === "number" ? String(Number(value.toPrecision(6))) : String(value));

    const bars = (values, labels, winner) => {
      const list = element("ul", { class: "bars" });
      values.forEach((probability, index) => {
        const label = labels && labels[index] !== undefined ? labels[index] : String(index);
        const id = `bar-${Math.random().toString(36).slice(2)}`;
        const item = element("li", { class: label === winner ? "winner" : "" },
          element("label", { for: id }, label),
          element("meter", { id, min: "0", max: "1", value: String(probability) }),
          element("span", { class: "percent" }, `${(probability * 100).toFixed(1)}%`));
        list.append(item);
      });
      return list;
    };

    const renderResult = (result, labels) => {
      const card = element("article", { class: "result" }, element("h3", {}, result.name));
      if (Array.isArray(result.value) && "label" in result) {
        card.append(element("p", {}, "Class: ", element("strong", {}, result.label), ` (${num(result.score)})`));
        card.append(bars(result.value, labels, result.label));
      } else if ("outputs" in result) {  // a model with several outputs: each by name
        const list = element("dl", { class: "outputs" });
        for (const [output, value] of Object.entries(result.outputs)) {
          list.append(element("dt", {}, output), element("dd", {}, JSON.stringify(value)));
        }
        card.append(list);
      } else if ("label" in result) {  // one sigmoid unit: value is p(second label)
        card.append(element("p", {}, "Class: ", element("strong", {}, result.label), ` (${num(result.score)})`));
        card.append(bars([result.score], [result.label], result.label));
      } else {
        const value = Array.isArray(result.value) ? result.value.map(num).join(", ") : num(result.value);
        card.append(element("p", { class: "value" }, "Value: ", element("strong", {}, value)));
      }
      return card;
    };

    // A handler's own answer (no per-model "result"): each entry marking a region (faces: a "box") as a card with
    // its apps' results, anything else as JSON.
    const renderAnswer = (payload) => {
      const cards = [];
      for (const [key, value] of Object.entries(payload)) {
        if (["app", "version", "demo", "elapsed_ms"].includes(key)) continue;
        const regions = Array.isArray(value) ? value.filter((entry) => entry && Array.isArray(entry.box)) : [];
        if (Array.isArray(value) && regions.length === value.length) {
          if (!regions.length) cards.push(element("p", {}, `${key}: none found`));
          regions.forEach((entry, index) => {
            const card = element("article", { class: "result" },
              element("h3", {}, `${key} ${index + 1}: box ${entry.box.join(", ")}` +
                ("score" in entry ? `, score ${entry.score}` : "")));
            for (const [app, results] of Object.entries(entry.apps || {})) {
              card.append(element("p", {}, element("strong", {}, app)));
              if (Array.isArray(results)) card.append(...results.map((result) => renderResult(result, [])));
            }
            cards.push(card);
          });
        } else {
          cards.push(element("article", { class: "result" }, element("h3", {}, key),
            element("pre", {}, JSON.stringify(value, null, 2))));
        }
      }
      return cards;
    };

    const show = (payload, app, started) => {
      const roundTrip = (performance.now() - started).toFixed(0);
      setStatus(`${payload.app}, version ${payload.version}: ${payload.elapsed_ms} ms on the server, ` +
        `${roundTrip} ms round trip.${payload.demo ? " Demo weights: results are placeholders." : ""}`);
      const rows = Array.isArray(payload.result) ? [payload.result] : payload.predictions;
      results.replaceChildren(...(Array.isArray(rows)
        ? rows.flatMap((row) => row.map((result) => renderResult(result, app.labels)))
        : renderAnswer(payload)));
    };

    const send = async (options) => {
      const name = select.value;
      const app = data.apps[name];
      results.replaceChildren();
      setStatus(`Running ${name}…`);
      const started = performance.now();
      try {
        show(await callApi(app.predict_url, { method: "POST", ...options }), app, started);
      } catch (err) {
        setStatus(`Prediction failed: ${err.message}`, true);
      }
    };

    const predict = async (blob, filename) => {
      showPreview(blob);
      const body = new FormData();
      body.append("image", blob, filename);
      await send({ body });
    };

    jsonButton.addEventListener("click", () => {
      try {
        JSON.parse(jsonInput.value);
      } catch (err) {
        setStatus(`The JSON box does not hold JSON: ${err.message}`, true);
        return;
      }
      preview.hidden = true;
      send({ body: jsonInput.value, headers: { "Content-Type": "application/json" } });
    });

    const syncSample = () => {
      const app = data.apps[select.value];
      sampleButton.disabled = !app.has_sample;
      drop.parentElement.hidden = !app.takes_images;  // its <p>: the label itself is display: block
      jsonInput.value = app.example ? JSON.stringify(app.example) : "";
    };

    select.addEventListener("change", syncSample);
    syncSample();
    input.addEventListener("change", () => {
      if (input.files.length) predict(input.files[0], input.files[0].name);
      input.value = "";
    });
    ["dragenter", "dragover"].forEach((type) => drop.addEventListener(type, (event) => {
      event.preventDefault();
      drop.classList.add("over");
    }));
    ["dragleave", "drop"].forEach((type) => drop.addEventListener(type, () => drop.classList.remove("over")));
    drop.addEventListener("drop", (event) => {
      event.preventDefault();
      const file = event.dataTransfer.files[0];
      if (file) predict(file, file.name);
    });
    sampleButton.addEventListener("click", async () => {
      try {
        const response = await fetch(data.apps[select.value].sample_url);
        if (!response.ok) throw new Error(`the sample answered ${response.status}`);
        await predict(await response.blob(), "sample");
      } catch (err) {
        setStatus(`Could not use the sample: ${err.message}`, true);
      }
    });
  }

  // -- reload (staff) -------------------------------------------------------
  const history = document.getElementById("reload-history");

  const refreshHistory = async () => {
    const page = await callApi(data.reloads_url, { method: "GET" });
    const rows = page.results.slice(0, data.history_rows).map((event) => element("tr", {},
      element("td", {}, element("time", { datetime: event.created_at },
        event.created_at.replace("T", " ").slice(0, 19))),
      element("td", {}, event.app), element("td", {}, event.from_version || "-"),
      element("td", {}, event.to_version || "-"), element("td", {}, event.trigger),
      element("td", {}, event.user || "-"), element("td", {}, event.status),
      element("td", {}, `${Math.round(event.duration_ms)} ms`), element("td", {}, event.error)));
    history.replaceChildren(...rows);
  };

  document.querySelectorAll("button.reload").forEach((button) => {
    button.addEventListener("click", async () => {
      const name = button.dataset.app;
      const card = document.getElementById(`app-${name}`);
      const status = card.querySelector(".card-status");
      button.disabled = true;
      status.textContent = `Reloading ${name}…`;
      try {
        const report = await callApi(data.apps[name].reload_url, {
          method: "POST", body: "{}", headers: { "Content-Type": "application/json" },
        });
        card.querySelector("[data-field=version]").textContent = report.new_version;
        const state = card.querySelector("[data-field=state]");
        state.textContent = "AVAILABLE";
        state.className = "state state-available";
        status.textContent = `Reloaded: ${report.old_version || "none"} → ${report.new_version} in ${report.load_ms} ms.`;
      } catch (err) {
        status.textContent = `Reload failed: ${err.message}`;
      } finally {
        button.disabled = false;
      }
      if (history) refreshHistory().catch((err) => { status.textContent += ` (history: ${err.message})`; });
    });
  });
})();
