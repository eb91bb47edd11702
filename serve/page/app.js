// app.js - the gaze search page: text, image (drop or pick) and "similar" queries against
// POST /v1/search, results as a grid of thumbnails (GET /v1/items/{id}/thumbnail) with scores.
// Plain browser JavaScript (a module), no libraries, no build step.

const $ = (id) => document.getElementById(id);
const state = { image: null, imageName: "" }; // the query image as a data URL

function setStatus(text) {
  $("status").textContent = text;
}

// One result card: thumbnail (or a placeholder), title / text, score, "similar".
function card(r, mode) {
  const div = document.createElement("div");
  div.className = "card";
  div.dataset.itemId = r.item_id;
  const hasImage = r.kind === "image" || r.image;
  if (hasImage) {
    const img = document.createElement("img");
    img.loading = "lazy";
    img.alt = r.kind === "image" ? r.path.split("/").pop() : r.text;
    img.src = `/v1/items/${r.item_id}/thumbnail`;
    div.append(img);
  } else {
    const ph = document.createElement("div");
    ph.className = "noimg";
    ph.textContent = "no image";
    div.append(ph);
  }
  const body = document.createElement("div");
  body.className = "body";
  const title = document.createElement("div");
  title.className = "title";
  if (r.kind === "image") {
    title.textContent = r.path.split("/").pop();
  } else {
    // products are "title. description" (add-texts --text-field title,description)
    const cut = r.text.indexOf(". ");
    title.textContent = cut > 0 ? r.text.slice(0, cut) : r.text;
    if (cut > 0) {
      const desc = document.createElement("div");
      desc.className = "desc";
      desc.textContent = r.text.slice(cut + 2);
      body.append(title, desc);
    }
  }
  if (!body.contains(title)) body.append(title);
  const score = document.createElement("div");
  score.className = "score";
  let s = `score ${r.score.toFixed(4)}`;
  if (mode === "products" && r.image_score !== null) s += ` (text ${r.text_score.toFixed(3)}, image ${r.image_score.toFixed(3)})`;
  if (r.id) s += ` · ${r.id}`;
  score.textContent = s;
  body.append(score);
  div.append(body);
  const similar = document.createElement("button");
  similar.className = "similar";
  similar.textContent = "similar";
  similar.addEventListener("click", () => search({ terms: [{ item_id: r.item_id }] }, `similar to #${r.item_id}`));
  div.append(similar);
  return div;
}

async function search(query, what) {
  const mode = $("mode").value;
  const body = { ...query, mode, k: 24 };
  setStatus(`searching ${what}…`);
  try {
    const resp = await fetch("/v1/search", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    const data = await resp.json();
    if (!resp.ok) {
      setStatus(`error ${resp.status}: ${data.error ? data.error.message : resp.statusText}`);
      return;
    }
    const grid = $("results");
    grid.replaceChildren(...data.results.map((r) => card(r, mode)));
    setStatus(`${data.results.length} result${data.results.length === 1 ? "" : "s"} for ${what} in ${data.timing.total_ms.toFixed(1)} ms`);
  } catch (e) {
    setStatus(`error: ${e}`);
  }
}

function run() {
  const text = $("q").value.trim();
  const query = {};
  if (text) query.text = text;
  if (state.image) query.image = state.image;
  if (!text && !state.image) {
    setStatus("type a query or drop an image");
    return;
  }
  const what = [text ? `"${text}"` : "", state.image ? state.imageName : ""].filter(Boolean).join(" + ");
  search(query, what);
}

function useFile(file) {
  if (!file) return;
  const reader = new FileReader();
  reader.onload = () => {
    state.image = reader.result; // a data URL; the server takes it as base64
    state.imageName = file.name;
    const p = $("preview");
    p.src = reader.result;
    p.style.display = "inline";
    run();
  };
  reader.readAsDataURL(file);
}

$("go").addEventListener("click", run);
$("q").addEventListener("keydown", (e) => {
  if (e.key === "Enter") run();
});
$("mode").addEventListener("change", () => {
  if ($("q").value.trim() || state.image) run();
});
$("file").addEventListener("change", (e) => useFile(e.target.files[0]));
$("preview").addEventListener("click", () => {
  state.image = null;
  $("preview").style.display = "none";
  $("file").value = "";
});
const drop = $("drop");
for (const ev of ["dragenter", "dragover"])
  document.addEventListener(ev, (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
for (const ev of ["dragleave", "drop"])
  document.addEventListener(ev, (e) => {
    e.preventDefault();
    drop.classList.remove("over");
  });
document.addEventListener("drop", (e) => useFile(e.dataTransfer.files[0]));
