// The review page: a grid of spectrogram images, keyboard first. The server's folder on disk is the
// truth: every action is sent at once, and the grid is refreshed from the server after each action and
// whenever the folder's version (polled every few seconds) changes, so two tabs on one folder agree.
// A doubt queue (mode "queue") takes BirdNET-Analyzer's review keys: up yes, down no, left undo,
// right skip; each verdict or skip moves to the next window and, with autoplay on, plays its 3 s.
"use strict";
const $ = (id) => document.getElementById(id);
let folder = null, state = null, selected = 0, undo = [], playingName = null, keys = Promise.resolve();

async function api(path, body) {
  const res = await fetch(path, body ? {method: "POST", headers: {"Content-Type": "application/json"},
                                        body: JSON.stringify(body)} : {});
  const data = await res.json();
  if (!res.ok) throw new Error(data.error || res.statusText);
  return data;
}

function visible() {
  const maxd = parseFloat($("maxdist").value), showRej = $("showrej").checked;
  return state.items.filter((it) => (showRej || it.status !== "rejected") &&
    (isNaN(maxd) || it.distance === null || it.distance <= maxd));
}

function card(it, i) {
  const el = document.createElement("div");
  el.className = "card " + it.status + (i === selected ? " selected" : "") + (it.name === playingName ? " playing" : "") +
    (state.mode === "queue" && it.status !== "open" ? " answer" : "");
  el.dataset.name = it.name;
  el.dataset.status = it.status;
  el.dataset.badge = state.labels[it.status];  // "rejected" or, in a folder of drops, "dropped"
  const img = document.createElement("img");
  img.src = it.url; img.alt = it.name; img.loading = "lazy";
  const cap = document.createElement("div");
  cap.className = "cap";
  const dist = it.distance === null ? "" : `d ${it.distance.toFixed(3)}`;
  cap.innerHTML = `<span class="rank">#${i + 1}</span><span></span><span>${it.offset.toFixed(2)} s</span><span>${dist}</span>`;
  cap.children[1].textContent = it.stem;
  el.append(img, cap);
  if (it.reason) {  // why the queue holds it
    const why = document.createElement("div");
    why.className = "why";
    why.textContent = it.reason;
    el.append(why);
  }
  el.addEventListener("click", () => { select(i); play(it, false); });
  return el;
}

function counts() {
  $("counts").textContent = Object.keys(state.labels).map((k) => `${state.labels[k]} ${state[k]}`).join(" · ");
}

function render() {
  const items = visible(), grid = $("grid");
  selected = Math.max(0, Math.min(selected, items.length - 1));
  grid.replaceChildren(...items.map(card));
  counts();
  $("notice").textContent = state.notice;
  $("notice").hidden = !state.notice;
  $("empty").textContent = state.hint || "no images in this folder";
  $("empty").hidden = items.length > 0;
  $("readonly").hidden = state.writable;
  $("title").textContent = state.title;
  const queue = state.mode === "queue";
  $("help").hidden = queue;
  $("queuehelp").hidden = !queue;
  $("autoplaybox").hidden = !queue;
  $("maxdistbox").hidden = queue;  // a queue is ranked by doubt, not by distance
  $("showrejlabel").textContent = queue ? "show no" : `show ${state.labels.rejected}`;
  const sel = grid.children[selected];
  if (sel) sel.scrollIntoView({block: "nearest"});
}

let version = null;

async function poll() {  // the folder's version is cheap to read; the whole state only when it moved
  const {version: now} = await api(`/api/version?f=${encodeURIComponent(folder)}`);
  if (now !== version) await refresh(now);
}

async function refresh(known) {  // the version is read before the state, so a change between the two shows next poll
  if (!folder) return;
  version = known ?? (await api(`/api/version?f=${encodeURIComponent(folder)}`)).version;
  const name = current() && current().name;
  const fresh = await api(`/api/state?f=${encodeURIComponent(folder)}`);
  if (state && JSON.stringify(fresh) === JSON.stringify(state)) return;  // nothing changed on disk
  state = fresh;
  const i = visible().findIndex((it) => it.name === name);
  if (i >= 0) selected = i;
  render();
}

function select(i) {  // moving the selection touches two cards, not the whole grid
  const cards = $("grid").children;
  if (cards[selected]) cards[selected].classList.remove("selected");
  selected = Math.max(0, Math.min(cards.length - 1, i));
  if (cards[selected]) {
    cards[selected].classList.add("selected");
    cards[selected].scrollIntoView({block: "nearest"});
  }
}

function current() { return state ? visible()[selected] : null; }

function clipUrl(it, long) {
  return `/api/clip?f=${encodeURIComponent(folder)}&name=${encodeURIComponent(it.name)}${long ? "&long=1" : ""}`;
}

function play(it, long) {
  if (!it) return;
  const player = long ? $("longplayer") : $("player");
  player.src = clipUrl(it, long);
  player.play().catch((e) => { if (e.name !== "AbortError") message(`cannot play: ${e.message}`); });  // a newer clip took over
  if (long) {
    $("long").hidden = false;
    $("longtitle").textContent = `${it.stem} around ${it.offset.toFixed(2)} s`;
  } else {
    markPlaying(it.name);
  }
}

function markPlaying(name) {
  playingName = name;
  for (const c of $("grid").children) c.classList.toggle("playing", c.dataset.name === name);
}

function message(text) { $("message").textContent = text; }

async function move(it, to, record = true) {
  if (!it || it.status === to) return;
  if (!state.writable) return message("read-only: this folder is a pipeline output");
  const before = visible().map((x) => x.name);
  try {
    state = await api("/api/move", {f: folder, name: it.name, to});
    if (record) undo.push({name: it.name, from: it.status});
    message("");
  } catch (e) {
    message(e.message);
    await refresh();
    return;
  }
  const items = visible(), i = items.findIndex((x) => x.name === it.name);
  if (i < 0 || items.length !== before.length || items.some((x, k) => x.name !== before[k])) return render();
  $("grid").children[i].replaceWith(card(items[i], i));  // only the card that changed is drawn again
  counts();
}

function next(step) {  // the queue's walk: to the next window, playing it when autoplay is on
  select(selected + step);
  if ($("autoplay").checked) play(current(), false);
}

async function verdict(to) {  // a yes or no in the queue, then on to the next window
  const it = current();
  if (!it) return;
  const wasLast = selected === visible().length - 1;
  await move(it, to);
  if (!wasLast) next(1);
}

async function undoLast() {
  const last = undo.pop();
  if (!last) return message("nothing to undo");
  const target = state.items.find((x) => x.name === last.name);
  await move(target, last.from, false);
  const i = visible().findIndex((x) => x.name === last.name);
  if (i >= 0) select(i);
  if (state.mode === "queue" && $("autoplay").checked) play(current(), false);
}

function closeLong() { $("longplayer").pause(); $("long").hidden = true; }

function columns() {
  const cards = $("grid").children;
  if (!cards.length) return 1;
  const top = cards[0].offsetTop;
  let n = 0;
  while (n < cards.length && cards[n].offsetTop === top) n++;
  return Math.max(1, n);
}

document.addEventListener("keydown", async (ev) => {
  if (ev.target.tagName === "INPUT" || ev.target.tagName === "SELECT" || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const n = visible().length, it = current();
  const queue = state && state.mode === "queue";
  const step = {ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns(), ArrowUp: -columns()}[ev.key];
  if (queue && ["ArrowUp", "ArrowDown", "ArrowLeft", "ArrowRight", "x", "r", "u"].includes(ev.key)) {
    const act = {ArrowUp: () => verdict("kept"), r: () => verdict("kept"), ArrowDown: () => verdict("rejected"),
                 x: () => verdict("rejected"), ArrowLeft: undoLast, u: undoLast, ArrowRight: () => next(1)}[ev.key];
    keys = keys.then(act).catch((e) => message(e.message));  // one at a time: a fast second key waits
  } else if (step !== undefined) {
    select(selected + step);
  } else if (ev.key === " ") {
    play(it, false);
  } else if (ev.key === "x") {
    const wasLast = selected === n - 1;
    await move(it, "rejected");
    if (!wasLast && $("showrej").checked) select(selected + 1);
  } else if (ev.key === "r") {
    await move(it, "kept");
  } else if (ev.key === "u") {
    await undoLast();
  } else if (ev.key === "o") {
    play(it, true);
  } else if (ev.key === "Escape" && !$("long").hidden) {
    closeLong();
  } else {
    return;
  }
  ev.preventDefault();
});

$("player").addEventListener("ended", () => markPlaying(null));
$("closelong").addEventListener("click", closeLong);
$("maxdist").addEventListener("input", render);
$("showrej").addEventListener("change", render);
$("folder").addEventListener("change", async () => {
  folder = $("folder").value; undo = []; selected = 0;
  $("folder").blur();  // the keys go back to the grid, not to the folder list
  await refresh();
});
document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
setInterval(() => { if (!document.hidden && folder) poll().catch(() => {}); }, 3000);

(async () => {
  const folders = await api("/api/folders");
  $("folder").replaceChildren(...folders.map((f) => new Option(f.title, f.key)));
  $("folder").hidden = folders.length < 2;
  const want = new URLSearchParams(location.search).get("f");
  folder = folders.some((f) => f.key === want) ? want : folders[0].key;
  $("folder").value = folder;
  await refresh();
})().catch((e) => message(e.message));
