// PandaGPT playground. Talks only to the public OpenAI-compatible API
// (GET /v1/models, POST /v1/chat/completions with stream: true), so this file
// doubles as an example of calling the service from a browser.
// Plain modern JS: no framework, no build step, nothing loaded from elsewhere.

const API_KEY_STORAGE = "pandagpt.playground.apiKey";
// Media kinds a file can be sent as; thermal and depth are images the user relabels.
const IMAGE_LIKE = ["image", "thermal", "depth"];
const AUDIO_FORMATS = ["wav", "mp3", "flac", "ogg", "m4a", "aac", "webm"];

const $ = (id) => document.getElementById(id);
const el = {
  apiKey: $("api-key"),
  model: $("model"),
  reloadModels: $("reload-models"),
  system: $("system"),
  maxTokens: $("max-tokens"),
  temperature: $("temperature"),
  topP: $("top-p"),
  messages: $("messages"),
  emptyHint: $("empty-hint"),
  composer: $("composer"),
  dropzone: $("dropzone"),
  pickFiles: $("pick-files"),
  fileInput: $("file-input"),
  attachments: $("attachments"),
  prompt: $("prompt"),
  send: $("send"),
  stop: $("stop"),
  clear: $("clear"),
  copyCurl: $("copy-curl"),
  status: $("status"),
  curlDialog: $("curl-dialog"),
  curlText: $("curl-text"),
  curlCopy: $("curl-copy"),
  curlClose: $("curl-close"),
  curlCopied: $("curl-copied"),
  settingsPanel: $("settings-panel"),
};

const state = {
  history: [], // OpenAI messages of finished exchanges, resent on every turn
  attachments: [], // {id, file, kind, dataUrl, objectUrl}
  controller: null, // AbortController of the running request
  lastRequest: null, // {url, body} for "Copy as curl"
  models: [], // the model cards from /v1/models
  nextId: 1,
};

// ---------- API ----------

// Relative to the page, so the playground also works behind a path prefix.
const apiUrl = (path) => new URL(path, document.baseURI).href;

function authHeaders() {
  const key = el.apiKey.value.trim();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

class ApiError extends Error {
  constructor(info, status) {
    super(info.message || "Request failed");
    this.status = status;
    this.type = info.type;
    this.code = info.code;
    this.param = info.param;
  }
}

// Turns a non-2xx response into an ApiError, reading the OpenAI error body when there is one.
async function errorFromResponse(response) {
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    if (body && body.error) return new ApiError(body.error, response.status);
    if (body && body.detail) return new ApiError({ message: String(body.detail) }, response.status);
  } catch {
    // Not JSON (a proxy's HTML page, say): fall through and show the start of it.
  }
  const message = text.trim().slice(0, 200) || response.statusText || "no response body";
  return new ApiError({ message }, response.status);
}

function describeError(err) {
  if (err instanceof SyntaxError) return `The server sent an event this page could not read: ${err.message}`;
  if (!(err instanceof ApiError)) return `Could not reach the server: ${err.message}`;
  // e.g. "Error 400 (invalid_request_error, corrupt): Image could not be decoded. Parameter: messages[0]"
  const tags = [err.type, err.code].filter(Boolean);
  const title = (err.status ? `Error ${err.status}` : "Error") + (tags.length ? ` (${tags.join(", ")})` : "");
  const where = err.param ? ` Parameter: ${err.param}` : "";
  return `${title}: ${err.message}${where}`;
}

async function loadModels() {
  setStatus("Loading models…");
  el.reloadModels.disabled = true;
  try {
    const response = await fetch(apiUrl("v1/models"), { headers: authHeaders() });
    if (!response.ok) throw await errorFromResponse(response);
    const { data } = await response.json();
    const previous = el.model.value;
    el.model.replaceChildren(...data.map((m) => new Option(m.id, m.id)));
    if (data.some((m) => m.id === previous)) el.model.value = previous;
    state.models = data;
    fitMaxTokens(data.find((m) => m.id === el.model.value));
    setStatus(data.length ? "" : "The server lists no models.");
  } catch (err) {
    const hint = err.status === 401 ? " Enter a valid API key in Settings." : "";
    setStatus(`Could not load models. ${describeError(err)}${hint}`, true);
  } finally {
    el.reloadModels.disabled = false;
  }
}

// A model card may say its context length (vLLM's `max_model_len`). The prompt shares that
// context and the server refuses max_tokens that cannot fit beside it, so the slider stops
// at half the context, leaving the other half for the conversation.
function fitMaxTokens(card) {
  const context = card && Number(card.max_model_len);
  if (!context) return;
  const limit = Math.max(1, Math.floor(context / 2));
  el.maxTokens.max = String(limit);
  if (Number(el.maxTokens.value) > limit) el.maxTokens.value = String(limit);
  el.maxTokens.dispatchEvent(new Event("input"));
}

// Reads an SSE body, calling onEvent with each parsed `data:` JSON until `[DONE]`.
async function readEventStream(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      // Events end with a blank line; keep the unfinished tail for the next read.
      const events = buffer.split(/\r?\n\r?\n/);
      buffer = events.pop();
      for (const event of events) {
        const data = event
          .split(/\r?\n/)
          .filter((line) => line.startsWith("data:"))
          .map((line) => line.slice(5).trimStart())
          .join("\n");
        if (!data) continue; // comments and keep-alives
        if (data === "[DONE]") return;
        onEvent(JSON.parse(data));
      }
    }
  } finally {
    // Close the connection whatever ended the loop, so the server stops generating.
    reader.cancel().catch(() => {});
  }
}

// Streams one chat completion; onText gets each piece of text as it arrives.
async function streamChat(body, signal, onText) {
  const response = await fetch(apiUrl("v1/chat/completions"), {
    method: "POST",
    headers: { "Content-Type": "application/json", ...authHeaders() },
    body: JSON.stringify(body),
    signal,
  });
  if (!response.ok) throw await errorFromResponse(response);
  const result = { finishReason: null, usage: null };
  await readEventStream(response.body, (chunk) => {
    // A failure after streaming began arrives as one event with an OpenAI error body.
    if (chunk.error) throw new ApiError(chunk.error);
    const choice = chunk.choices && chunk.choices[0];
    if (choice && choice.delta && choice.delta.content) onText(choice.delta.content);
    if (choice && choice.finish_reason) result.finishReason = choice.finish_reason;
    if (chunk.usage) result.usage = chunk.usage;
  });
  return result;
}

// ---------- attachments ----------

function kindOf(file) {
  const type = file.type.split("/")[0];
  if (["image", "audio", "video"].includes(type)) return type;
  const ext = extensionOf(file);
  if (["npy", "csv"].includes(ext)) return "imu";
  if (AUDIO_FORMATS.includes(ext)) return "audio";
  if (["mp4", "mov", "mkv", "avi"].includes(ext)) return "video";
  return "image"; // let the server judge anything else; its error says why
}

function extensionOf(file) {
  const dot = file.name.lastIndexOf(".");
  return dot < 0 ? "" : file.name.slice(dot + 1).toLowerCase();
}

function audioFormat(file) {
  const ext = extensionOf(file);
  if (AUDIO_FORMATS.includes(ext)) return ext;
  const subtype = file.type.split("/")[1] || "";
  if (subtype.includes("mpeg")) return "mp3";
  return AUDIO_FORMATS.find((f) => subtype.includes(f)) || "wav";
}

function readAsDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

async function addFiles(files) {
  for (const file of files) {
    try {
      const attachment = {
        id: state.nextId++,
        file,
        kind: kindOf(file),
        dataUrl: await readAsDataUrl(file),
        objectUrl: URL.createObjectURL(file),
      };
      state.attachments.push(attachment);
      el.attachments.append(renderAttachment(attachment));
    } catch (err) {
      setStatus(`Could not read ${file.name}: ${err.message}`, true);
    }
  }
  setStatus(`${state.attachments.length} file(s) attached.`);
}

function removeAttachment(id) {
  const index = state.attachments.findIndex((a) => a.id === id);
  if (index < 0) return;
  URL.revokeObjectURL(state.attachments[index].objectUrl);
  state.attachments.splice(index, 1);
  el.attachments.querySelector(`[data-id="${id}"]`)?.remove();
}

function renderAttachment(att) {
  const item = document.createElement("li");
  item.className = "attachment";
  item.dataset.id = att.id;
  item.append(renderPreview(att));

  const info = document.createElement("div");
  info.className = "attachment-info";
  const name = document.createElement("span");
  name.className = "attachment-name";
  name.textContent = `${att.file.name} (${formatBytes(att.file.size)})`;
  info.append(name);

  if (IMAGE_LIKE.includes(att.kind)) {
    // The browser cannot tell a thermal or depth map from a photo; the user says which.
    const label = document.createElement("label");
    label.textContent = "Send as ";
    const select = document.createElement("select");
    select.className = "attachment-kind";
    select.setAttribute("aria-label", `Send ${att.file.name} as`);
    for (const kind of IMAGE_LIKE) select.append(new Option(kind, kind));
    select.value = att.kind;
    select.addEventListener("change", () => (att.kind = select.value));
    label.append(select);
    info.append(label);
  } else {
    const kind = document.createElement("span");
    kind.className = "hint";
    kind.textContent = `Sent as ${att.kind}`;
    info.append(kind);
  }
  item.append(info);

  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "secondary remove";
  remove.textContent = "Remove";
  remove.setAttribute("aria-label", `Remove ${att.file.name}`);
  remove.addEventListener("click", () => {
    removeAttachment(att.id);
    el.prompt.focus();
  });
  item.append(remove);
  return item;
}

function renderPreview(att) {
  let preview;
  if (IMAGE_LIKE.includes(att.kind)) {
    preview = document.createElement("img");
    preview.alt = `Preview of ${att.file.name}`;
    // A file the browser cannot decode is still sent: the server's answer says what is wrong.
    preview.addEventListener("error", () => preview.replaceWith(noPreview("no preview")));
  } else if (att.kind === "audio" || att.kind === "video") {
    preview = document.createElement(att.kind);
    preview.controls = true;
    preview.preload = "metadata";
    preview.setAttribute("aria-label", `Play ${att.file.name}`);
  } else {
    return noPreview(att.kind.toUpperCase());
  }
  preview.className = "preview";
  preview.src = att.objectUrl;
  return preview;
}

function noPreview(text) {
  const box = document.createElement("span");
  box.className = "preview placeholder";
  box.textContent = text;
  return box;
}

function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

// One attachment as an OpenAI content part (thermal/depth/video use the service's extensions).
function contentPart(att) {
  switch (att.kind) {
    case "audio":
      return {
        type: "input_audio",
        // input_audio carries bare base64, not a data: URL.
        input_audio: { data: att.dataUrl.slice(att.dataUrl.indexOf(",") + 1), format: audioFormat(att.file) },
      };
    case "image":
      return { type: "image_url", image_url: { url: att.dataUrl } };
    default: // video, thermal, depth, imu: {type: "<kind>_url", "<kind>_url": {url}}
      return { type: `${att.kind}_url`, [`${att.kind}_url`]: { url: att.dataUrl } };
  }
}

// ---------- conversation ----------

function buildRequest(userMessage) {
  const messages = [];
  const system = el.system.value.trim();
  if (system) messages.push({ role: "system", content: system });
  messages.push(...state.history, userMessage);
  return {
    model: el.model.value,
    messages,
    stream: true,
    stream_options: { include_usage: true },
    max_tokens: Number(el.maxTokens.value),
    temperature: Number(el.temperature.value),
    top_p: Number(el.topP.value),
  };
}

function userMessageFrom(text, attachments) {
  if (!attachments.length) return { role: "user", content: text };
  const parts = attachments.map(contentPart);
  if (text) parts.unshift({ type: "text", text });
  return { role: "user", content: parts };
}

function appendMessage(role, text, attachments = []) {
  el.emptyHint.hidden = true;
  const article = document.createElement("article");
  article.className = `message ${role}`;
  const heading = document.createElement("h3");
  heading.className = "role";
  heading.textContent = role === "user" ? "You" : "Assistant";
  const content = document.createElement("div");
  content.className = "content";
  content.append(document.createTextNode(text));
  const meta = document.createElement("p");
  meta.className = "meta";
  article.append(heading);
  if (attachments.length) article.append(renderSent(attachments));
  article.append(content, meta);
  el.messages.append(article);
  scrollToEnd();
  return { article, text: content.firstChild, content, meta };
}

// What a user message carried: thumbnails of images, names of everything.
function renderSent(attachments) {
  const list = document.createElement("p");
  list.className = "meta sent";
  for (const att of attachments) {
    if (IMAGE_LIKE.includes(att.kind)) {
      const thumb = document.createElement("img");
      thumb.className = "thumb";
      thumb.src = att.dataUrl;
      thumb.alt = ""; // decorative: the name follows
      thumb.addEventListener("error", () => thumb.remove());
      list.append(thumb);
    }
    list.append(`${att.file.name} (${att.kind}) `);
  }
  return list;
}

function scrollToEnd() {
  el.messages.scrollTop = el.messages.scrollHeight;
}

function showError(view, message) {
  const box = document.createElement("p");
  box.className = "error";
  box.setAttribute("role", "alert");
  box.textContent = message;
  view.article.append(box);
  view.article.classList.add("failed");
  scrollToEnd();
}

async function send() {
  if (state.controller) return; // one request at a time
  const text = el.prompt.value.trim();
  const attachments = state.attachments.slice();
  if (!text && !attachments.length) {
    setStatus("Type a message or attach a file first.", true);
    el.prompt.focus();
    return;
  }
  if (!el.model.value) await loadModels();

  const userMessage = userMessageFrom(text, attachments);
  const body = buildRequest(userMessage);
  // "Clear conversation" swaps in a new array; an answer that ends after that lands in the old one.
  const history = state.history;
  state.lastRequest = { url: apiUrl("v1/chat/completions"), body };
  el.copyCurl.disabled = false;

  appendMessage("user", text, attachments);
  el.prompt.value = "";
  state.attachments = [];
  el.attachments.replaceChildren();

  const view = appendMessage("assistant", "");
  view.article.setAttribute("aria-busy", "true");
  setBusy(true);
  setStatus("Generating…");
  const started = performance.now();
  let answer = "";
  let restored = false;
  try {
    const result = await streamChat(body, state.controller.signal, (piece) => {
      answer += piece;
      view.text.appendData(piece);
      scrollToEnd();
    });
    history.push(userMessage, { role: "assistant", content: answer });
    view.meta.textContent = summary(result, performance.now() - started);
    setStatus("Done.");
  } catch (err) {
    if (err.name === "AbortError") {
      // Keep what was shown: the next turn builds on the partial answer the user saw.
      if (answer) history.push(userMessage, { role: "assistant", content: answer });
      view.meta.textContent = "Stopped.";
      setStatus("Stopped.");
    } else {
      showError(view, describeError(err));
      view.meta.textContent = "Not kept in the conversation.";
      setStatus("The request failed; see the message above.", true);
      if (!answer) restored = restoreDraft(text, attachments);
    }
  } finally {
    view.article.removeAttribute("aria-busy");
    setBusy(false);
    // The previews' blob: URLs are only needed again when the draft came back.
    if (!restored) for (const att of attachments) URL.revokeObjectURL(att.objectUrl);
  }
}

// Puts a failed message back in the composer so the user can fix it and resend;
// not when the user has already started a new one.
function restoreDraft(text, attachments) {
  if (el.prompt.value || state.attachments.length) return false;
  el.prompt.value = text;
  for (const att of attachments) {
    state.attachments.push(att);
    el.attachments.append(renderAttachment(att));
  }
  return true;
}

function summary(result, elapsedMs) {
  const parts = [];
  if (result.usage) {
    parts.push(`${result.usage.prompt_tokens} prompt + ${result.usage.completion_tokens} completion tokens`);
  }
  parts.push(`${(elapsedMs / 1000).toFixed(1)} s`);
  if (result.finishReason) parts.push(`finish: ${result.finishReason}`);
  return parts.join(" · ");
}

function setBusy(busy) {
  state.controller = busy ? new AbortController() : null;
  el.send.disabled = busy;
  el.stop.disabled = !busy;
  if (!busy) el.prompt.focus();
}

function stop() {
  state.controller?.abort();
}

function clearConversation() {
  stop();
  state.history = [];
  el.messages.replaceChildren(el.emptyHint);
  el.emptyHint.hidden = false;
  setStatus("Conversation cleared.");
  el.prompt.focus();
}

function setStatus(message, isError = false) {
  el.status.textContent = message;
  el.status.classList.toggle("is-error", isError);
}

// ---------- copy as curl ----------

function curlCommand({ url, body }) {
  // A quoted heredoc passes the JSON through the shell untouched, quotes and all.
  return [
    `curl -N ${url} \\`,
    `  -H "Content-Type: application/json" \\`,
    `  -H "Authorization: Bearer $PANDAGPT_API_KEY" \\`,
    `  --data-binary @- <<'JSON'`,
    JSON.stringify(body, null, 2),
    "JSON",
  ].join("\n");
}

function showCurl() {
  if (!state.lastRequest) return;
  el.curlText.value = curlCommand(state.lastRequest);
  el.curlCopied.textContent = "";
  el.curlDialog.showModal();
  el.curlText.focus();
  el.curlText.select();
}

async function copyCurl() {
  try {
    await navigator.clipboard.writeText(el.curlText.value);
    el.curlCopied.textContent = "Copied.";
  } catch {
    // The clipboard API needs a secure context (https or localhost); the text stays selected.
    el.curlText.select();
    el.curlCopied.textContent = "Press Ctrl+C (⌘C) to copy the selected text.";
  }
}

// ---------- wiring ----------

function bindSlider(input, digits) {
  const output = $(`${input.id}-value`);
  const show = () => (output.value = Number(input.value).toFixed(digits));
  input.addEventListener("input", show);
  show();
}

function setUpDropzone() {
  el.pickFiles.addEventListener("click", () => el.fileInput.click());
  el.fileInput.addEventListener("change", async () => {
    await addFiles([...el.fileInput.files]);
    el.fileInput.value = ""; // picking the same file again still fires "change"
  });
  // The whole composer accepts drops: a small target is hard to hit on a phone or with a trackpad.
  for (const type of ["dragenter", "dragover"]) {
    el.composer.addEventListener(type, (event) => {
      event.preventDefault();
      el.dropzone.classList.add("dragging");
    });
  }
  el.composer.addEventListener("dragleave", (event) => {
    if (!el.composer.contains(event.relatedTarget)) el.dropzone.classList.remove("dragging");
  });
  el.composer.addEventListener("drop", (event) => {
    event.preventDefault();
    el.dropzone.classList.remove("dragging");
    addFiles([...event.dataTransfer.files]);
  });
}

function init() {
  el.apiKey.value = localStorage.getItem(API_KEY_STORAGE) || "";
  el.apiKey.addEventListener("change", () => {
    localStorage.setItem(API_KEY_STORAGE, el.apiKey.value.trim());
    loadModels();
  });
  el.reloadModels.addEventListener("click", loadModels);
  el.model.addEventListener("change", () => fitMaxTokens(state.models.find((m) => m.id === el.model.value)));
  bindSlider(el.maxTokens, 0);
  bindSlider(el.temperature, 2);
  bindSlider(el.topP, 2);
  setUpDropzone();

  el.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });
  el.prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    }
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && state.controller && !el.curlDialog.open) stop();
  });
  el.stop.addEventListener("click", stop);
  el.clear.addEventListener("click", clearConversation);
  el.copyCurl.addEventListener("click", showCurl);
  el.curlCopy.addEventListener("click", copyCurl);
  el.curlClose.addEventListener("click", () => el.curlDialog.close());

  // On a phone the settings would push the chat below the fold; start them folded.
  if (window.matchMedia("(max-width: 800px)").matches) el.settingsPanel.open = false;
  loadModels();
}

init();
