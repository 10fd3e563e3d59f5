/* astrostatlearn viewer: OpenSeadragon over the site's tile pyramids (configuration in site.js).
 * Frames: tiles are drawn with array row 0 at the bottom (as ds9 does). OpenSeadragon's image
 * coordinates (X, Y) are continuous display pixels; the array position (0-based pixel centres,
 * as in catalog.ecsv) is x = X - 0.5, y = height - Y - 0.5. */
(function () {
  "use strict";
  const S = window.ASTRO_SITE;
  const W = S.width, H = S.height, T = S.tileSize;
  const $ = (id) => document.getElementById(id);
  // State the tests read: tiles loaded per part and level, failures, the last object shown.
  const state = { tiles: {}, failed: [], ready: false, lastObject: null, lastCoords: null, items: {} };
  window.astroViewer = state;

  function dzi(path) {
    return { Image: { xmlns: "http://schemas.microsoft.com/deepzoom/2008", Url: path + "tiles/", Format: S.format,
      Overlap: "0", TileSize: String(T), Size: { Width: String(W), Height: String(H) } } };
  }

  const viewer = OpenSeadragon({
    id: "viewer", prefixUrl: "static/openseadragon/images/", tileSources: dzi(S.image.path),
    drawer: "canvas", imageSmoothingEnabled: false, maxZoomPixelRatio: 40, showNavigator: true,
    navigatorPosition: "BOTTOM_LEFT", gestureSettingsMouse: { clickToZoom: false }, timeout: 60000,
    blendTime: 0,  // tiles appear at once: what is drawn is what is loaded
  });
  state.viewer = viewer;
  // Levels of the tiles a part draws now (loaded, on screen), finest last.
  state.drawnLevels = (name) => {
    const item = state.items[name];
    if (!item) return [];
    const levels = new Set(item.getTilesToDraw().filter((t) => t.tile.loaded).map((t) => t.level));
    return Array.from(levels).sort((a, b) => a - b);
  };
  $("title").textContent = S.title;
  $("size").textContent = `${W} x ${H} pixels, ${S.layers.length} overlay(s); stretch ${S.image.stretch.kind}`;
  $("osd-version").textContent = OpenSeadragon.version.versionStr;

  // ---- layers: visibility and opacity ------------------------------------------------------
  const parts = [{ name: "image", label: "image", kind: "image" }].concat(
    S.layers.map((l) => Object.assign({ label: `${l.name} (${l.kind})` }, l)));
  const wanted = new URLSearchParams(location.hash.slice(1)).get("layer");
  for (const part of parts) {
    const row = document.createElement("div");
    row.className = "layer";
    const shown = part.kind === "image" || !wanted || part.name === wanted;
    row.innerHTML = `<label><input type="checkbox" ${shown ? "checked" : ""}> ${part.label}</label>` +
      `<input type="range" min="0" max="100" value="${part.kind === "image" ? 100 : 80}" aria-label="opacity">`;
    part.toggle = row.querySelector("input[type=checkbox]");
    part.opacity = row.querySelector("input[type=range]");
    part.toggle.id = `toggle-${part.name}`;
    part.opacity.id = `opacity-${part.name}`;
    part.toggle.addEventListener("change", applyVisibility);
    part.opacity.addEventListener("input", applyVisibility);
    $("layers").appendChild(row);
  }
  for (const id of ["swipe-a", "swipe-b", "inspect-layer"]) {
    for (const l of S.layers) $(id).add(new Option(l.name, l.name));
  }
  if (S.layers.length > 1) $("swipe-b").selectedIndex = 1;
  if (wanted && S.layers.some((l) => l.name === wanted)) $("inspect-layer").value = wanted;
  const byName = (name) => parts.find((p) => p.name === name);

  function applyVisibility() {
    const swiping = $("swipe").checked;
    for (const part of parts) {
      if (!part.item) continue;
      const forced = swiping && (part.name === $("swipe-a").value || part.name === $("swipe-b").value);
      part.item.setOpacity(part.toggle.checked || forced ? part.opacity.value / 100 : 0);
    }
    updateSwipe();
  }

  viewer.addHandler("open", () => {
    parts[0].item = viewer.world.getItemAt(0);
    state.items.image = parts[0].item;
    let pending = S.layers.length;
    const done = () => { if (pending === 0) { applyVisibility(); state.ready = true; document.body.dataset.ready = "1"; } };
    S.layers.forEach((layer, i) => {
      viewer.addTiledImage({ tileSource: dzi(layer.path), index: i + 1, opacity: 0,
        success: (e) => { byName(layer.name).item = e.item; e.item.partName = layer.name; state.items[layer.name] = e.item; pending--; done(); },
        error: (e) => { state.failed.push(`${layer.name}: ${e.message}`); pending--; done(); } });
    });
    done();
  });
  viewer.addHandler("tile-loaded", (e) => {
    const key = e.tiledImage.partName || "image";
    const per = state.tiles[key] || (state.tiles[key] = {});
    per[e.tile.level] = (per[e.tile.level] || 0) + 1;
  });
  viewer.addHandler("tile-load-failed", (e) => state.failed.push(e.tile ? e.tile.getUrl() : e.message));

  // ---- swipe comparison ----------------------------------------------------------------------
  function setClip(part, rect) {  // only on a change: setting a clip asks for a redraw
    const key = rect ? `${rect.x.toFixed(2)},${rect.width.toFixed(2)}` : "";
    if (part.item && part.clipKey !== key) { part.item.setClip(rect); part.clipKey = key; }
  }
  function updateSwipe() {
    const on = $("swipe").checked;
    $("swipe-line").hidden = !on;
    const frac = $("swipe-pos").value / 1000;
    let xs = 0;
    if (on && parts[0].item) {
      const split = parts[0].item.viewerElementToImageCoordinates(new OpenSeadragon.Point(frac * viewer.container.clientWidth, 0)).x;
      xs = Math.min(Math.max(split, 0), W);
      $("swipe-line").style.left = `${frac * 100}%`;
    }
    const a = on ? byName($("swipe-a").value) : null, b = on ? byName($("swipe-b").value) : null;
    for (const part of parts) {
      if (part === a) setClip(part, new OpenSeadragon.Rect(0, 0, xs, H));
      else if (part === b) setClip(part, new OpenSeadragon.Rect(xs, 0, W - xs, H));
      else setClip(part, null);
    }
  }
  for (const id of ["swipe", "swipe-a", "swipe-b"]) $(id).addEventListener("change", applyVisibility);
  $("swipe-pos").addEventListener("input", updateSwipe);
  viewer.addHandler("animation", updateSwipe);
  viewer.addHandler("resize", updateSwipe);

  // ---- coordinates under the cursor ----------------------------------------------------------
  function locate(nodes, v) {
    if (nodes.length < 2) return [0, 0, 0];
    let lo = 0, hi = nodes.length - 1;
    if (v >= nodes[hi]) lo = hi - 1;
    else if (v > nodes[0]) { while (hi - lo > 1) { const m = (lo + hi) >> 1; if (nodes[m] <= v) lo = m; else hi = m; } }
    return [lo, lo + 1, (v - nodes[lo]) / (nodes[lo + 1] - nodes[lo])];
  }
  function skyAt(x, y) {
    const g = S.sky;
    if (!g) return null;
    const [i0, i1, tx] = locate(g.xs, x), [j0, j1, ty] = locate(g.ys, y);
    const lerp = (m) => (m[j0][i0] * (1 - tx) + m[j0][Math.min(i1, g.xs.length - 1)] * tx) * (1 - ty) +
      (m[Math.min(j1, g.ys.length - 1)][i0] * (1 - tx) + m[Math.min(j1, g.ys.length - 1)][Math.min(i1, g.xs.length - 1)] * tx) * ty;
    return { ra: (((g.ra0 + lerp(g.dra)) % 360) + 360) % 360, dec: g.dec0 + lerp(g.ddec) };
  }
  function sexagesimal(v, hours) {
    const sign = v < 0 ? "-" : hours ? "" : "+";
    let a = Math.abs(hours ? v / 15 : v);
    const d = Math.floor(a); a = (a - d) * 60;
    const m = Math.floor(a); const s = (a - m) * 60;
    return `${sign}${String(d).padStart(2, "0")}:${String(m).padStart(2, "0")}:${s.toFixed(hours ? 3 : 2).padStart(hours ? 6 : 5, "0")}`;
  }
  function arrayPosition(pos) {
    const p = parts[0].item.viewerElementToImageCoordinates(pos);
    return { X: p.x, Y: p.y, x: p.x - 0.5, y: H - p.y - 0.5 };
  }
  function showCoords(pos) {
    if (!parts[0].item) return;
    const p = arrayPosition(pos);
    const inside = p.X >= 0 && p.X < W && p.Y >= 0 && p.Y < H;
    let text = `x ${p.x.toFixed(2)}  y ${p.y.toFixed(2)}  pixel [y=${Math.round(p.y)}, x=${Math.round(p.x)}]${inside ? "" : "  (outside)"}`;
    const sky = skyAt(p.x, p.y);
    if (sky) text += `\nRA ${sky.ra.toFixed(6)}  Dec ${sky.dec.toFixed(6)}  (${S.sky.frame}, deg)\n   ${sexagesimal(sky.ra, true)}  ${sexagesimal(sky.dec, false)}`;
    $("coords").textContent = text;
    state.lastCoords = { x: p.x, y: p.y, ra: sky && sky.ra, dec: sky && sky.dec };
  }
  new OpenSeadragon.MouseTracker({ element: viewer.canvas, moveHandler: (e) => showCoords(e.position) });

  // ---- click: the object under the cursor and its catalogue row ------------------------------
  const idTiles = new Map(), chunks = new Map();
  async function idTile(layer, tx, ty) {
    const url = `${layer.path}ids/${tx}_${ty}.png`;
    if (!idTiles.has(url)) {
      idTiles.set(url, fetch(url).then((r) => { if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`); return r.blob(); })
        .then((blob) => createImageBitmap(blob, { colorSpaceConversion: "none", premultiplyAlpha: "none" }))
        .then((bmp) => { const c = document.createElement("canvas"); c.width = bmp.width; c.height = bmp.height;
          const ctx = c.getContext("2d", { willReadFrequently: true }); ctx.drawImage(bmp, 0, 0);
          return { w: bmp.width, px: ctx.getImageData(0, 0, bmp.width, bmp.height).data }; }));
    }
    return idTiles.get(url);
  }
  async function catalogRow(layer, id) {
    if (!layer.catalog) return null;
    const url = `${layer.path}catalog/${Math.floor(id / layer.catalog.chunk)}.json`;
    if (!chunks.has(url)) chunks.set(url, fetch(url).then((r) => (r.ok ? r.json() : { rows: {} })));
    const chunk = await chunks.get(url);
    const row = chunk.rows[String(id)];
    return row ? { columns: chunk.columns, units: chunk.units, values: row } : null;
  }
  let marker = null;
  function showObject(layer, id, p, row) {
    const box = $("object");
    if (!id) { box.textContent = `no object of ${layer.name} at x=${Math.round(p.x)}, y=${Math.round(p.y)}`; return; }
    let html = `<table><tr><td>layer</td><td>${layer.name}</td></tr><tr><td>ID</td><td>${id}</td></tr>`;
    if (row) row.columns.forEach((c, i) => { if (c !== "id") html += `<tr><td>${c}${row.units[i] ? ` [${row.units[i]}]` : ""}</td><td>${row.values[i]}</td></tr>`; });
    else html += `<tr><td colspan="2">no catalogue row</td></tr>`;
    box.innerHTML = html + "</table>";
    if (row && row.columns.includes("x") && row.columns.includes("y")) {
      const x = row.values[row.columns.indexOf("x")], y = row.values[row.columns.indexOf("y")];
      if (marker) viewer.removeOverlay(marker);
      marker = document.createElement("div");
      marker.style.cssText = "width:14px;height:14px;margin:-9px 0 0 -9px;border:2px solid #fc4;border-radius:50%;pointer-events:none";
      viewer.addOverlay(marker, parts[0].item.imageToViewportCoordinates(x + 0.5, H - y - 0.5));
    }
  }
  async function inspect(pos) {
    const layer = S.layers.find((l) => l.name === $("inspect-layer").value);
    if (!layer || !parts[0].item) return;
    const p = arrayPosition(pos);
    const col = Math.floor(p.X), row = Math.floor(p.Y);
    if (col < 0 || col >= W || row < 0 || row >= H) { $("object").textContent = "outside the field"; return; }
    const tx = Math.floor(col / T), ty = Math.floor(row / T);
    try {
      const tile = await idTile(layer, tx, ty);
      const k = 4 * ((row - ty * T) * tile.w + (col - tx * T));
      const id = (tile.px[k] << 16) | (tile.px[k + 1] << 8) | tile.px[k + 2];
      const found = id ? await catalogRow(layer, id) : null;
      state.lastObject = { layer: layer.name, id, row: found };
      showObject(layer, id, p, found);
    } catch (err) {
      $("object").textContent = `cannot read the object under the cursor (${err.message}); serve the site with astrostatlearn view SITE --serve`;
    }
  }
  viewer.addHandler("canvas-click", (e) => { if (e.quick) { e.preventDefaultAction = true; inspect(e.position); } });
})();
