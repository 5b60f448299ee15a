// hvsa annotation app. Plain JavaScript, no dependencies, nothing loaded from elsewhere.
//
// Coordinates: frame pixels (x, y), integers for vertices, as the server expects; a Viewer maps
// them to the canvas with a scale and an offset (zoom and pan). The server is the authority on
// labels and clicks: the page previews the drawing and prices it with the same rule (a vertex on
// the sample's border is free, one class click per polygon, a fill or an accept costs 1), and the
// saved figure is the one the server answers with.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const SNAP_PX = 10; // screen pixels within which a click snaps onto the sample's border
  const CLOSE_PX = 10; // screen pixels within which a click on the first vertex closes
  const DRAG_PX = 4; // a press that moves further pans instead of clicking
  const SCRUB_SPAN = 6; // neighbouring frames on each side of the sample's frame
  const POLL_BUSY_MS = 800;
  const POLL_IDLE_MS = 4000;

  // ------------------------------------------------------------------ server

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function call(method, path, body) {
    const init = { method, cache: "no-store", headers: {} };
    if (body !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, "the server does not answer; start hvsa serve again (nothing saved is lost) and reload");
    }
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (e) {
      data = null;
    }
    if (!response.ok) throw new ApiError(response.status, (data && data.error) || `${response.status} ${response.statusText}`);
    return data;
  }
  const api = {
    get: (path) => call("GET", path),
    put: (path, body) => call("PUT", path, body),
    post: (path, body) => call("POST", path, body === undefined ? {} : body),
  };

  // images by URL: a promise while loading, the element once loaded (for synchronous drawing)
  const pending = new Map();
  const loaded = new Map();
  function image(url, then) {
    if (loaded.has(url)) return loaded.get(url);
    if (!pending.has(url)) {
      pending.set(url, new Promise((resolve) => {
        const img = new Image();
        img.onload = () => {
          pending.delete(url);
          loaded.set(url, img);
          if (loaded.size > 400) loaded.delete(loaded.keys().next().value);
          resolve(img);
        };
        img.onerror = () => {
          pending.delete(url);
          resolve(null);
        };
        img.src = url;
      }));
    }
    if (then) pending.get(url).then((img) => img && then(img));
    return null;
  }

  const frameUrl = (t) => `/api/frames/${t}/image.jpg`;
  const predictionUrl = (t) => `/api/frames/${t}/prediction.png?v=${app.predictionVersion}`;
  const annotationsUrl = (t) => `/api/frames/${t}/annotations.png?v=${app.annotationVersion}`;

  // ------------------------------------------------------------------ messages

  let messageTimer = null;
  function flash(text, isError = false) {
    const el = $("message");
    el.textContent = text;
    el.className = isError ? "error" : "";
    el.hidden = false;
    clearTimeout(messageTimer);
    messageTimer = setTimeout(() => { el.hidden = true; }, isError ? 9000 : 5000);
  }
  const fail = (e) => flash(e.message || String(e), true);

  // ------------------------------------------------------------------ viewer (zoom and pan)

  class Viewer {
    constructor(canvas, paint) {
      this.canvas = canvas;
      this.ctx = canvas.getContext("2d");
      this.paint = paint;
      this.scale = 1;
      this.ox = 0;
      this.oy = 0;
      this.hover = null;
      this.press = null;
      this.queued = false;
      this.onClick = null;
      this.onRightClick = null;
      new ResizeObserver(() => this.resize()).observe(canvas);
      canvas.addEventListener("wheel", (e) => {
        e.preventDefault();
        this.zoomAt(Math.exp(-e.deltaY * 0.0015), e.clientX, e.clientY);
      }, { passive: false });
      canvas.addEventListener("contextmenu", (e) => e.preventDefault());
      canvas.addEventListener("pointerdown", (e) => this.down(e));
      canvas.addEventListener("pointermove", (e) => this.move(e));
      canvas.addEventListener("pointerup", (e) => this.up(e));
      canvas.addEventListener("pointerleave", () => { this.hover = null; this.render(); });
    }

    resize() {
      const box = this.canvas.getBoundingClientRect();
      if (box.width < 2 || box.height < 2) return; // hidden: wait for a real layout
      const dpr = window.devicePixelRatio || 1;
      const first = !this.width;
      this.width = Math.max(1, box.width);
      this.height = Math.max(1, box.height);
      this.canvas.width = Math.round(this.width * dpr);
      this.canvas.height = Math.round(this.height * dpr);
      if (first && this.fitted) this.fit(...this.fitted);
      this.render();
    }

    // show the rectangle [x0, x1) x [y0, y1) with a margin of `context` times its longer side
    fit(x0, y0, x1, y1, context = 0) {
      this.fitted = [x0, y0, x1, y1, context];
      if (!this.width) return;
      const m = context * Math.max(x1 - x0, y1 - y0);
      const s = Math.min(this.width / (x1 - x0 + 2 * m), this.height / (y1 - y0 + 2 * m));
      this.scale = Math.min(64, Math.max(0.05, s));
      this.ox = (x0 + x1) / 2 - this.width / (2 * this.scale);
      this.oy = (y0 + y1) / 2 - this.height / (2 * this.scale);
      this.render();
    }

    zoomAt(factor, clientX, clientY) {
      const f = this.toFrame(clientX, clientY);
      this.scale = Math.min(64, Math.max(0.05, this.scale * factor));
      const box = this.canvas.getBoundingClientRect();
      this.ox = f.x - (clientX - box.left) / this.scale;
      this.oy = f.y - (clientY - box.top) / this.scale;
      this.render();
    }

    zoomCentre(factor) {
      const box = this.canvas.getBoundingClientRect();
      this.zoomAt(factor, box.left + box.width / 2, box.top + box.height / 2);
    }

    toFrame(clientX, clientY) {
      const box = this.canvas.getBoundingClientRect();
      return { x: this.ox + (clientX - box.left) / this.scale, y: this.oy + (clientY - box.top) / this.scale };
    }

    // the page position of the centre of frame pixel (x, y)
    toClient(x, y) {
      const box = this.canvas.getBoundingClientRect();
      return { x: box.left + (x + 0.5 - this.ox) * this.scale, y: box.top + (y + 0.5 - this.oy) * this.scale };
    }

    // canvas position (CSS pixels) of the centre of frame pixel (x, y)
    sx(x) { return (x + 0.5 - this.ox) * this.scale; }
    sy(y) { return (y + 0.5 - this.oy) * this.scale; }

    down(e) {
      this.canvas.setPointerCapture(e.pointerId);
      this.press = { x: e.clientX, y: e.clientY, ox: this.ox, oy: this.oy, button: e.button, moved: false };
    }

    move(e) {
      this.hover = this.toFrame(e.clientX, e.clientY);
      const p = this.press;
      if (p) {
        const dx = e.clientX - p.x;
        const dy = e.clientY - p.y;
        if (!p.moved && Math.hypot(dx, dy) > DRAG_PX) p.moved = true;
        if (p.moved) {
          this.ox = p.ox - dx / this.scale;
          this.oy = p.oy - dy / this.scale;
        }
      }
      this.render();
    }

    up(e) {
      const p = this.press;
      this.press = null;
      if (!p || p.moved) return;
      const f = this.toFrame(e.clientX, e.clientY);
      if (p.button === 0 && this.onClick) this.onClick(f);
      if (p.button === 2 && this.onRightClick) this.onRightClick(f);
    }

    render() {
      if (this.queued) return;
      this.queued = true;
      requestAnimationFrame(() => {
        this.queued = false;
        const ctx = this.ctx;
        const dpr = window.devicePixelRatio || 1;
        ctx.setTransform(1, 0, 0, 1, 0, 0);
        ctx.fillStyle = "#0d0e10";
        ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
        ctx.setTransform(dpr * this.scale, 0, 0, dpr * this.scale, -dpr * this.scale * this.ox, -dpr * this.scale * this.oy);
        ctx.imageSmoothingEnabled = this.scale < 3;
        this.paint(ctx, this, () => ctx.setTransform(dpr, 0, 0, dpr, 0, 0));
      });
    }
  }

  // ------------------------------------------------------------------ state

  const app = {
    state: null,
    view: "annotate",
    classes: [],
    activeClass: 0,
    batchIteration: null,
    completed: null,
    predictionVersion: -1,
    annotationVersion: 0,
    frames: null, // /api/frames
    drafts: new Map(), // pool index -> Editor, for the open batch
    sample: null, // the open sample (see openSample)
    viewT: 0, // frame shown in the annotate view (the scrubber)
    reviewT: 0,
    playing: null,
  };

  const frameName = (t) => (app.frames ? app.frames.frames[t].name : String(t));

  const colour = (id) => {
    const c = app.classes[id];
    return c ? `rgb(${c.color[0]}, ${c.color[1]}, ${c.color[2]})` : "#fff";
  };

  // ------------------------------------------------------------------ one sample's drawing

  // A drawing with undo and redo: {fill: null | {kind: "class", class_id} | {kind: "prediction"},
  // polygons: [{class_id, points: [[x, y], ...]}], current: [[x, y], ...]} plus the click log.
  class Editor {
    constructor(saved) {
      this.doc = { fill: null, polygons: [], current: [] };
      if (saved) {
        for (const entry of saved.polygons) {
          if (entry.fill) this.doc.fill = entry.fill === "class" ? { kind: "class", class_id: entry.class_id } : { kind: "prediction" };
          else this.doc.polygons.push({ class_id: entry.class_id, points: entry.points });
        }
      }
      this.past = [];
      this.future = [];
      this.log = [];
      this.dirty = false;
    }

    change(edit) {
      this.past.push(JSON.stringify(this.doc));
      this.future.length = 0;
      edit(this.doc);
      this.dirty = true;
    }

    undo() { return this.travel(this.past, this.future); }

    redo() { return this.travel(this.future, this.past); }

    // take the document from the top of `from`, keeping the current one on `to`
    travel(from, to) {
      if (!from.length) return false;
      to.push(JSON.stringify(this.doc));
      this.doc = JSON.parse(from.pop());
      this.dirty = true;
      return true;
    }

    click(kind, extra = {}) {
      this.log.push({ kind, ts: Date.now() / 1000, ...extra });
    }

    isEmpty() {
      return !this.doc.fill && !this.doc.polygons.length;
    }

    payload() {
      const fill = this.doc.fill;
      return {
        fill: fill ? (fill.kind === "class" ? { kind: "class", class_id: fill.class_id } : { kind: "prediction" }) : null,
        polygons: this.doc.polygons.map((p) => ({ class_id: p.class_id, points: p.points })),
        click_log: this.log,
      };
    }
  }

  function decodeRuns(runs, size) {
    const out = new Uint8Array(size);
    let at = 0;
    runs.forEach((n, i) => {
      if (i % 2 === 1) out.fill(1, at, at + n);
      at += n;
    });
    return out;
  }

  // The open sample: its mask and border over the bbox, an overlay that shades the context and
  // draws the border, and its editor.
  function prepareSample(s) {
    const [x0, y0, x1, y1] = s.bbox;
    const w = x1 - x0;
    const h = y1 - y0;
    const mask = decodeRuns(s.mask_runs, w * h);
    const border = new Uint8Array(w * h);
    const borderList = [];
    const inside = (x, y) => x >= 0 && y >= 0 && x < w && y < h && mask[y * w + x] === 1;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        if (!mask[y * w + x]) continue;
        if (!inside(x - 1, y) || !inside(x + 1, y) || !inside(x, y - 1) || !inside(x, y + 1)) {
          border[y * w + x] = 1;
          borderList.push([x + x0, y + y0]);
        }
      }
    }
    const W = app.state.project.width;
    const H = app.state.project.height;
    const shade = document.createElement("canvas");
    shade.width = W;
    shade.height = H;
    const sc = shade.getContext("2d");
    const data = sc.createImageData(W, H);
    for (let i = 3; i < data.data.length; i += 4) data.data[i] = 120;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const k = y * w + x;
        if (!mask[k]) continue;
        const j = ((y + y0) * W + (x + x0)) * 4;
        if (border[k]) data.data.set([255, 214, 0, 200], j);
        else data.data[j + 3] = 0;
      }
    }
    sc.putImageData(data, 0, 0);
    const cut = document.createElement("canvas");
    cut.width = w;
    cut.height = h;
    const cc = cut.getContext("2d");
    const md = cc.createImageData(w, h);
    for (let k = 0; k < w * h; k++) if (mask[k]) md.data[k * 4 + 3] = 255;
    cc.putImageData(md, 0, 0);
    const draft = document.createElement("canvas");
    draft.width = w;
    draft.height = h;
    let editor = app.drafts.get(s.pool_index);
    if (!editor) {
      editor = new Editor(s.annotation);
      app.drafts.set(s.pool_index, editor);
    }
    return { ...s, x0, y0, x1, y1, w, h, mask, border, borderList, shade, cut, draft, editor };
  }

  function isBorder(x, y) {
    const s = app.sample;
    if (x < s.x0 || y < s.y0 || x >= s.x1 || y >= s.y1) return false;
    return s.border[(y - s.y0) * s.w + (x - s.x0)] === 1;
  }

  function inSample(x, y) {
    const s = app.sample;
    if (x < s.x0 || y < s.y0 || x >= s.x1 || y >= s.y1) return false;
    return s.mask[(y - s.y0) * s.w + (x - s.x0)] === 1;
  }

  // where a click at frame point f puts a vertex: onto the border when near it (or outside
  // the sample), else on the pixel clicked
  function snap(f) {
    const s = app.sample;
    const W = app.state.project.width;
    const H = app.state.project.height;
    const px = Math.min(W - 1, Math.max(0, Math.floor(f.x)));
    const py = Math.min(H - 1, Math.max(0, Math.floor(f.y)));
    const reach = inSample(px, py) ? SNAP_PX / annotateViewer.scale : Infinity;
    let best = null;
    let bestD = reach * reach;
    for (const [bx, by] of s.borderList) {
      const d = (bx + 0.5 - f.x) ** 2 + (by + 0.5 - f.y) ** 2;
      if (d <= bestD) {
        bestD = d;
        best = [bx, by];
      }
    }
    return best || [px, py];
  }

  // clicks by the cost model: a fill or an accept 1; a polygon 1 + its vertices off the border
  function price(editor) {
    const doc = editor.doc;
    const charged = (points) => points.filter(([x, y]) => !isBorder(x, y)).length;
    let clicks = doc.fill ? 1 : 0;
    for (const p of doc.polygons) clicks += 1 + charged(p.points);
    return clicks + charged(doc.current);
  }

  // ------------------------------------------------------------------ annotate view

  const annotateViewer = new Viewer($("annotate-canvas"), paintAnnotate);
  annotateViewer.onClick = (f) => addVertex(f);
  annotateViewer.onRightClick = () => closePolygon();

  function editable() {
    return app.sample && app.state && app.state.activity.phase === "annotating" && app.viewT === app.sample.t;
  }

  function paintAnnotate(ctx, v, toScreen) {
    const s = app.sample;
    if (!s) return;
    const frame = image(frameUrl(app.viewT), () => v.render());
    if (frame) ctx.drawImage(frame, 0, 0);
    const onFrame = app.viewT === s.t;
    const opacity = Number($("annotate-opacity").value);
    if (onFrame) {
      const doc = s.editor.doc;
      const prediction = image(predictionUrl(s.t), () => v.render());
      const g = s.draft.getContext("2d");
      g.globalCompositeOperation = "source-over";
      g.clearRect(0, 0, s.w, s.h);
      if (!doc.fill && prediction) {
        // the prediction, pre-filled as a suggestion: A accepts it
        g.globalAlpha = 0.45;
        g.drawImage(prediction, -s.x0, -s.y0);
        g.globalAlpha = 1;
      }
      if (doc.fill && doc.fill.kind === "class") {
        g.fillStyle = colour(doc.fill.class_id);
        g.fillRect(0, 0, s.w, s.h);
      } else if (doc.fill && prediction) {
        g.drawImage(prediction, -s.x0, -s.y0);
      }
      for (const p of doc.polygons) {
        g.fillStyle = colour(p.class_id);
        g.beginPath();
        p.points.forEach(([x, y], i) => (i ? g.lineTo(x - s.x0 + 0.5, y - s.y0 + 0.5) : g.moveTo(x - s.x0 + 0.5, y - s.y0 + 0.5)));
        g.closePath();
        g.fill();
      }
      g.globalCompositeOperation = "destination-in";
      g.drawImage(s.cut, 0, 0);
      ctx.globalAlpha = opacity;
      ctx.drawImage(s.draft, s.x0, s.y0);
      ctx.globalAlpha = 1;
    }
    ctx.drawImage(s.shade, 0, 0);

    toScreen();
    if (!onFrame) return;
    const doc = s.editor.doc;
    for (const p of doc.polygons) drawPath(ctx, v, p.points, true, colour(p.class_id));
    if (doc.current.length) {
      const pts = doc.current.slice();
      if (v.hover && editable()) pts.push(snap(v.hover));
      drawPath(ctx, v, pts, false, colour(app.activeClass));
    }
    for (const p of doc.polygons) drawVertices(ctx, v, p.points);
    drawVertices(ctx, v, doc.current, true);
    if (v.hover && editable() && !v.press) {
      const [x, y] = snap(v.hover);
      ctx.strokeStyle = isBorder(x, y) ? "#00e5ff" : "#ffffff";
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.arc(v.sx(x), v.sy(y), 5, 0, 2 * Math.PI);
      ctx.stroke();
    }
  }

  function drawPath(ctx, v, points, closed, stroke) {
    if (points.length < 2) return;
    ctx.beginPath();
    points.forEach(([x, y], i) => (i ? ctx.lineTo(v.sx(x), v.sy(y)) : ctx.moveTo(v.sx(x), v.sy(y))));
    if (closed) ctx.closePath();
    ctx.lineWidth = 3;
    ctx.strokeStyle = "rgba(0, 0, 0, 0.7)";
    ctx.stroke();
    ctx.lineWidth = 1.5;
    ctx.strokeStyle = stroke;
    ctx.stroke();
  }

  // a charged vertex is a filled white dot, a free one (on the border) a hollow cyan ring
  function drawVertices(ctx, v, points, current = false) {
    points.forEach(([x, y], i) => {
      ctx.beginPath();
      ctx.arc(v.sx(x), v.sy(y), current && i === 0 ? 5 : 3.5, 0, 2 * Math.PI);
      if (isBorder(x, y)) {
        ctx.lineWidth = 3.5;
        ctx.strokeStyle = "#000000";
        ctx.stroke();
        ctx.lineWidth = 2;
        ctx.strokeStyle = "#00e5ff";
        ctx.stroke();
      } else {
        ctx.fillStyle = "#ffffff";
        ctx.fill();
        ctx.lineWidth = 1;
        ctx.strokeStyle = "#000000";
        ctx.stroke();
      }
    });
  }

  function touched() {
    const s = app.sample;
    $("clicks").textContent = String(price(s.editor));
    annotateViewer.render();
    renderBatch();
  }

  function addVertex(f) {
    if (!app.sample) return;
    if (!editable()) {
      if (app.sample && app.viewT !== app.sample.t) flash(`Drawing happens on frame ${app.sample.t}; press the scrubber's ◀ ▶ or [ ] to go back.`);
      return;
    }
    const ed = app.sample.editor;
    const cur = ed.doc.current;
    if (cur.length >= 3) {
      const first = cur[0];
      const d = Math.hypot(annotateViewer.sx(first[0]) - annotateViewer.sx(f.x - 0.5), annotateViewer.sy(first[1]) - annotateViewer.sy(f.y - 0.5));
      if (d <= CLOSE_PX) {
        closePolygon();
        return;
      }
    }
    const [x, y] = snap(f);
    const last = cur[cur.length - 1];
    if (last && last[0] === x && last[1] === y) return;
    ed.click("vertex", { x, y });
    ed.change((doc) => doc.current.push([x, y]));
    touched();
  }

  function closePolygon() {
    if (!editable()) return false;
    const ed = app.sample.editor;
    if (!ed.doc.current.length) return false;
    if (ed.doc.current.length < 3) {
      flash("A polygon needs at least 3 vertices.");
      return false;
    }
    ed.click("close", { class_id: app.activeClass });
    ed.change((doc) => {
      doc.polygons.push({ class_id: app.activeClass, points: doc.current });
      doc.current = [];
    });
    touched();
    return true;
  }

  function cancelPolygon() {
    if (!editable()) return;
    const ed = app.sample.editor;
    if (!ed.doc.current.length) return;
    ed.click("cancel");
    ed.change((doc) => { doc.current = []; });
    touched();
  }

  function fillSample() {
    if (!editable()) return;
    const ed = app.sample.editor;
    ed.click("fill", { class_id: app.activeClass });
    ed.change((doc) => { doc.fill = { kind: "class", class_id: app.activeClass }; });
    touched();
  }

  function acceptPrediction() {
    if (!editable()) return;
    const ed = app.sample.editor;
    ed.click("accept");
    ed.change((doc) => { doc.fill = { kind: "prediction" }; });
    touched();
  }

  function clearSample() {
    if (!editable()) return;
    const ed = app.sample.editor;
    ed.click("clear");
    ed.change((doc) => {
      doc.fill = null;
      doc.polygons = [];
      doc.current = [];
    });
    touched();
  }

  // kind: "undo" or "redo"
  function travel(kind) {
    if (editable() && app.sample.editor[kind]()) {
      app.sample.editor.click(kind);
      touched();
    }
  }
  const undo = () => travel("undo");
  const redo = () => travel("redo");

  function pickClass(id, logged = true) {
    if (id < 0 || id >= app.classes.length) return;
    app.activeClass = id;
    if (logged && editable()) app.sample.editor.click("class", { class_id: id });
    document.querySelectorAll("#palette button").forEach((b) => b.classList.toggle("active", Number(b.dataset.id) === id));
    annotateViewer.render();
  }

  async function save() {
    if (!editable()) return;
    const s = app.sample;
    const ed = s.editor;
    if (ed.doc.current.length >= 3) closePolygon();
    else if (ed.doc.current.length) {
      flash("Finish the polygon being drawn (at least 3 vertices) or drop it with Esc.");
      return;
    }
    if (ed.isEmpty()) {
      flash("Nothing to save: draw a polygon, fill the sample or accept the prediction.");
      return;
    }
    $("save").disabled = true;
    try {
      const ack = await api.put(`/api/samples/${s.pool_index}/annotation`, ed.payload());
      ed.log = [];
      ed.dirty = false;
      app.annotationVersion += 1;
      flash(`Saved sample ${s.pool_index}: ${ack.clicks} click${ack.clicks === 1 ? "" : "s"} (${ack.batch_annotated} of ${ack.batch_size} in the batch).`);
      await refresh();
      const next = nextUnannotated(s.pool_index);
      if (next !== null) await openSample(next);
    } catch (e) {
      fail(e);
    } finally {
      $("save").disabled = false;
    }
  }

  function batchSamples() {
    const b = app.state && app.state.batch;
    return b ? b.samples : [];
  }

  function nextUnannotated(from) {
    const samples = batchSamples();
    const i = samples.findIndex((x) => x.pool_index === from);
    for (let k = 1; k <= samples.length; k++) {
      const c = samples[(i + k) % samples.length];
      if (!c.annotated) return c.pool_index;
    }
    return null;
  }

  function step(delta) {
    const samples = batchSamples();
    if (!samples.length || !app.sample) return;
    const i = samples.findIndex((x) => x.pool_index === app.sample.pool_index);
    openSample(samples[(i + delta + samples.length) % samples.length].pool_index).catch(fail);
  }

  async function openSample(poolIndex) {
    const s = await api.get(`/api/samples/${poolIndex}`);
    app.sample = prepareSample(s);
    app.viewT = s.t;
    const T = app.state.project.frames;
    const scrub = $("scrub");
    scrub.min = String(Math.max(0, s.t - SCRUB_SPAN));
    scrub.max = String(Math.min(T - 1, s.t + SCRUB_SPAN));
    scrub.value = String(s.t);
    for (let t = Number(scrub.min); t <= Number(scrub.max); t++) image(frameUrl(t));
    showScrub();
    const [x0, y0, x1, y1] = s.bbox;
    annotateViewer.fit(x0, y0, x1, y1, 0.35);
    touched();
  }

  function showScrub() {
    const s = app.sample;
    const d = app.viewT - s.t;
    $("scrub-label").textContent = `frame ${app.viewT} (${frameName(app.viewT)})` + (d ? ` · ${d > 0 ? "+" : ""}${d}, view only` : " · sample");
    annotateViewer.render();
  }

  function scrubTo(t) {
    if (!app.sample) return;
    const scrub = $("scrub");
    app.viewT = Math.min(Number(scrub.max), Math.max(Number(scrub.min), t));
    scrub.value = String(app.viewT);
    showScrub();
  }

  function renderBatch() {
    const list = $("batch-list");
    const samples = batchSamples();
    list.replaceChildren(...samples.map((x, i) => {
      const li = document.createElement("li");
      const b = document.createElement("button");
      const editor = app.drafts.get(x.pool_index);
      const draft = editor && editor.dirty;
      li.className = draft ? "draft" : x.annotated ? "done" : "";
      b.dataset.pool = String(x.pool_index);
      if (app.sample && app.sample.pool_index === x.pool_index) b.classList.add("current");
      const label = document.createElement("span");
      label.textContent = `${i + 1}. ${frameName(x.t)} #${x.n}`;
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = draft ? "unsaved" : x.annotated ? `✓ ${x.clicks}` : "—";
      b.append(label, badge);
      b.addEventListener("click", () => openSample(x.pool_index).catch(fail));
      li.append(b);
      return li;
    }));
    const done = samples.filter((x) => x.annotated).length;
    const phase = app.state ? app.state.activity.phase : "";
    $("complete").disabled = !(phase === "annotating" && samples.length && done === samples.length);
    $("batch-hint").textContent = !samples.length ? "" : done === samples.length
      ? "Every sample is saved: finish the batch to fine-tune and label the whole video."
      : `${done} of ${samples.length} saved.`;
  }

  async function completeBatch() {
    const unsaved = batchSamples().filter((x) => (app.drafts.get(x.pool_index) || {}).dirty);
    if (unsaved.length) {
      flash(`Save or undo the changes to ${unsaved.length} sample(s) first.`);
      return;
    }
    try {
      await api.post("/api/batch/complete");
      flash("Fine-tuning on your annotations; the page stays usable, the Review tab shows the labels so far.");
      await refresh();
    } catch (e) {
      fail(e);
    }
  }

  // ------------------------------------------------------------------ review view

  const reviewViewer = new Viewer($("review-canvas"), paintReview);
  let stripHits = null;

  function paintReview(ctx, v) {
    if (!app.state) return;
    const t = app.reviewT;
    const frame = image(frameUrl(t), () => v.render());
    if (frame) ctx.drawImage(frame, 0, 0);
    const url = $("review-annotations").checked ? annotationsUrl(t) : predictionUrl(t);
    const labels = image(url, () => v.render());
    if (labels) {
      ctx.globalAlpha = Number($("review-opacity").value);
      ctx.drawImage(labels, 0, 0);
      ctx.globalAlpha = 1;
    }
  }

  function paintStrip() {
    const canvas = $("strip");
    const box = canvas.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    canvas.width = Math.max(1, Math.round(box.width * dpr));
    canvas.height = Math.max(1, Math.round(box.height * dpr));
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, box.width, box.height);
    if (!app.frames || !app.state) return;
    const T = app.state.project.frames;
    const conf = app.frames.confidence || [];
    const w = box.width / T;
    const top = 8;
    const h = box.height - top;
    for (let t = 0; t < T; t++) {
      const c = conf[t];
      if (c === undefined || c === null) continue;
      ctx.fillStyle = `hsl(${Math.round(120 * c)}, 70%, 45%)`;
      ctx.fillRect(t * w, top + h * (1 - c), Math.max(1, w - (w > 3 ? 1 : 0)), h * c);
    }
    ctx.fillStyle = "#e6e8eb";
    for (const f of app.frames.frames) if (f.annotated) ctx.fillRect(f.t * w + w / 2 - 1, 0, 2, 6);
    ctx.strokeStyle = "#ffd600";
    ctx.lineWidth = 2;
    ctx.strokeRect(app.reviewT * w, 1, Math.max(2, w), box.height - 2);
    stripHits = { w, T };
  }

  function showReviewFrame(t) {
    if (!app.state) return;
    const T = app.state.project.frames;
    app.reviewT = Math.min(T - 1, Math.max(0, t));
    $("review-frame").value = String(app.reviewT);
    const conf = app.frames && app.frames.confidence ? app.frames.confidence[app.reviewT] : null;
    $("review-label").textContent = `frame ${app.reviewT} / ${T - 1} (${frameName(app.reviewT)})`
      + (conf === null || conf === undefined ? "" : ` · confidence ${conf.toFixed(2)}`);
    image(frameUrl(Math.min(T - 1, app.reviewT + 1)));
    image(predictionUrl(Math.min(T - 1, app.reviewT + 1)));
    reviewViewer.render();
    paintStrip();
  }

  function togglePlay() {
    if (app.playing) {
      clearInterval(app.playing);
      app.playing = null;
      $("play").textContent = "▶";
      return;
    }
    $("play").textContent = "❚❚";
    app.playing = setInterval(() => {
      const T = app.state.project.frames;
      showReviewFrame((app.reviewT + 1) % T);
    }, 120);
  }

  function renderIterations() {
    const body = $("iterations").tBodies[0];
    const fmt = (v, digits) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));
    body.replaceChildren(...app.state.iterations.map((r) => {
      const tr = document.createElement("tr");
      for (const cell of [r.iteration, r.clicks, fmt(r.clicks_pct, 2), fmt(r.miou, 3), fmt(r.tc, 3)]) {
        const td = document.createElement("td");
        td.textContent = String(cell);
        tr.append(td);
      }
      return tr;
    }));
  }

  async function loadFrames() {
    app.frames = await api.get("/api/frames");
    paintStrip();
    showReviewFrame(app.reviewT);
  }

  // ------------------------------------------------------------------ views and status

  function setView(view) {
    app.view = view;
    $("view-annotate").hidden = view !== "annotate";
    $("view-review").hidden = view !== "review";
    $("tab-annotate").setAttribute("aria-pressed", String(view === "annotate"));
    $("tab-review").setAttribute("aria-pressed", String(view === "review"));
    if (view === "review") {
      reviewViewer.resize();
      if (!reviewViewer.fitted && app.state) reviewViewer.fit(0, 0, app.state.project.width, app.state.project.height);
      loadFrames().catch(fail);
    } else {
      annotateViewer.resize();
    }
  }

  const PHASE_TEXT = {
    starting: "starting",
    preparing: "preparing the video (flow, features, first prediction)",
    training: "fine-tuning on your annotations",
    predicting: "labelling every frame",
    selecting: "choosing the next batch",
  };

  function renderStatus() {
    const st = app.state;
    const a = st.activity;
    const status = $("status");
    const progress = $("progress");
    status.classList.toggle("failed", a.phase === "failed");
    $("retry").hidden = a.phase !== "failed";
    if (a.phase === "annotating") {
      const samples = batchSamples();
      status.textContent = samples.length
        ? `iteration ${st.batch.iteration}: annotate ${samples.length} sample${samples.length === 1 ? "" : "s"}`
        : "every sample is annotated";
    } else if (a.phase === "failed") {
      status.textContent = `failed: ${a.error}`;
    } else {
      status.textContent = `${PHASE_TEXT[a.phase] || a.phase}${a.total ? ` ${a.done}/${a.total}` : "…"}`;
    }
    const busy = !["annotating", "failed"].includes(a.phase);
    progress.hidden = !busy;
    if (busy && a.total) {
      progress.max = a.total;
      progress.value = a.done;
    } else if (busy) {
      progress.removeAttribute("value");
    }
    $("totals").textContent = `${st.completed} iteration${st.completed === 1 ? "" : "s"} · ${st.clicks} clicks`;
    const veil = $("annotate-veil");
    veil.hidden = a.phase === "annotating";
    veil.textContent = a.phase === "failed" ? `A background step failed: ${a.error}. Retry from the top bar.`
      : `${PHASE_TEXT[a.phase] || a.phase}… The next batch appears here when it is ready; meanwhile the Review tab shows the labels so far.`;
    const ex = st.export;
    $("export").disabled = Boolean(ex && (ex.state === "queued" || ex.state === "running"));
    $("export").textContent = ex && ex.state === "running" ? "Exporting…" : ex && ex.state === "queued" ? "Export queued…" : "Export PNG masks";
    $("to-annotate").disabled = a.phase !== "annotating" || !batchSamples().length;
  }

  let lastExport = null;
  let inFlight = null;

  // one state refresh at a time: callers arriving meanwhile share the one in flight
  function refresh() {
    if (!inFlight) inFlight = applyState().finally(() => { inFlight = null; });
    return inFlight;
  }

  async function applyState() {
    const st = await api.get("/api/state");
    const first = app.state === null;
    app.state = st;
    if (first) {
      app.classes = st.project.classes;
      renderPalette();
      $("review-frame").max = String(st.project.frames - 1);
      reviewViewer.fit(0, 0, st.project.width, st.project.height);
      await loadFrames();
    }
    if (st.prediction_iteration !== null && st.prediction_iteration !== app.predictionVersion) {
      const hadOne = app.predictionVersion >= 0;
      app.predictionVersion = st.prediction_iteration;
      if (hadOne || app.view === "review") loadFrames().catch(fail);
    }
    const batchIteration = st.batch ? st.batch.iteration : null;
    if (st.activity.phase === "annotating" && batchIteration !== app.batchIteration) {
      const previous = app.batchIteration;
      app.batchIteration = batchIteration;
      app.drafts.clear();
      app.sample = null;
      $("batch-iteration").textContent = batchIteration === null ? "" : String(batchIteration);
      const samples = batchSamples();
      if (samples.length) {
        const open = samples.find((x) => !x.annotated) || samples[0];
        await openSample(open.pool_index);
      }
      if (previous !== null && !first) {
        flash(`Iteration ${previous} is done: review the new labels, then annotate the next batch.`);
        setView("review");
      }
    }
    if (st.export && st.export.state !== (lastExport && lastExport.state)) {
      if (st.export.state === "done") flash(`Exported ${st.export.frames} PNG index masks to ${st.export.folder}`);
      if (st.export.state === "failed") flash(`Export failed: ${st.export.error}`, true);
    }
    lastExport = st.export;
    renderStatus();
    renderBatch();
    renderIterations();
    return st;
  }

  function renderPalette() {
    const palette = $("palette");
    const legend = $("legend");
    palette.replaceChildren(...app.classes.map((c, i) => {
      const b = document.createElement("button");
      b.dataset.id = String(c.id);
      const sw = document.createElement("span");
      sw.className = "swatch";
      sw.style.background = colour(c.id);
      const name = document.createElement("span");
      name.textContent = c.name;
      b.append(sw, name);
      if (i < 10) {
        const k = document.createElement("kbd");
        k.textContent = String((i + 1) % 10);
        b.append(k);
      }
      b.addEventListener("click", () => pickClass(c.id));
      return b;
    }));
    legend.replaceChildren(...app.classes.map((c) => {
      const row = document.createElement("span");
      const sw = document.createElement("span");
      sw.className = "swatch";
      sw.style.background = colour(c.id);
      row.append(sw, document.createTextNode(c.name));
      return row;
    }));
    pickClass(0, false);
  }

  async function poll() {
    try {
      await refresh();
    } catch (e) {
      $("status").textContent = e.message;
    }
    const busy = !app.state || !["annotating", "failed"].includes(app.state.activity.phase)
      || (app.state.export && ["queued", "running"].includes(app.state.export.state));
    setTimeout(poll, busy ? POLL_BUSY_MS : POLL_IDLE_MS);
  }

  // ------------------------------------------------------------------ wiring

  function bind(id, handler) {
    $(id).addEventListener("click", (e) => {
      e.currentTarget.blur();
      handler();
    });
  }

  bind("tab-annotate", () => setView("annotate"));
  bind("tab-review", () => setView("review"));
  bind("to-annotate", () => setView("annotate"));
  bind("accept", acceptPrediction);
  bind("fill", fillSample);
  bind("close-polygon", closePolygon);
  bind("undo", undo);
  bind("redo", redo);
  bind("clear", clearSample);
  bind("save", save);
  bind("prev", () => step(-1));
  bind("next", () => step(1));
  bind("complete", completeBatch);
  // a POST whose effect shows in the next state
  const poster = (path) => async () => {
    try {
      await api.post(path);
      await refresh();
    } catch (e) {
      fail(e);
    }
  };
  bind("retry", poster("/api/batch/complete"));
  bind("export", poster("/api/export"));
  bind("fit-sample", () => app.sample && annotateViewer.fit(app.sample.x0, app.sample.y0, app.sample.x1, app.sample.y1, 0.35));
  bind("fit-frame", () => app.state && annotateViewer.fit(0, 0, app.state.project.width, app.state.project.height));
  bind("scrub-back", () => scrubTo(app.viewT - 1));
  bind("scrub-forward", () => scrubTo(app.viewT + 1));
  bind("play", togglePlay);
  $("scrub").addEventListener("input", (e) => scrubTo(Number(e.target.value)));
  $("annotate-opacity").addEventListener("input", () => annotateViewer.render());
  $("review-opacity").addEventListener("input", () => reviewViewer.render());
  $("review-annotations").addEventListener("change", () => reviewViewer.render());
  $("review-frame").addEventListener("input", (e) => showReviewFrame(Number(e.target.value)));
  const seek = (e) => {
    if (!stripHits) return;
    const box = $("strip").getBoundingClientRect();
    showReviewFrame(Math.floor((e.clientX - box.left) / stripHits.w));
  };
  $("strip").addEventListener("pointerdown", (e) => {
    $("strip").setPointerCapture(e.pointerId);
    seek(e);
  });
  $("strip").addEventListener("pointermove", (e) => { if (e.buttons) seek(e); });
  new ResizeObserver(() => paintStrip()).observe($("strip"));

  document.addEventListener("keydown", (e) => {
    if (e.target instanceof HTMLInputElement && e.target.type !== "range" && e.target.type !== "checkbox") return;
    const key = e.key.toLowerCase();
    const mod = e.ctrlKey || e.metaKey;
    if (app.view === "review") {
      const keys = { arrowright: 1, "]": 1, arrowleft: -1, "[": -1 };
      if (key in keys) showReviewFrame(app.reviewT + keys[key]);
      else if (key === " ") togglePlay();
      else return;
      e.preventDefault();
      return;
    }
    if (/^[0-9]$/.test(e.key) && !mod) pickClass((Number(e.key) + 9) % 10);
    else if (key === "enter") closePolygon();
    else if (key === "escape") cancelPolygon();
    else if ((key === "z" && mod && e.shiftKey) || key === "y") redo();
    else if (key === "z") undo();
    else if (key === "a" && !mod) acceptPrediction();
    else if (key === "f" && !mod) fillSample();
    else if (key === "s") save();
    else if (key === "n" || key === "arrowdown") step(1);
    else if (key === "p" || key === "arrowup") step(-1);
    else if (key === "[") scrubTo(app.viewT - 1);
    else if (key === "]") scrubTo(app.viewT + 1);
    else if (key === "r") $("fit-sample").click();
    else if (key === "+" || key === "=") annotateViewer.zoomCentre(1.25);
    else if (key === "-") annotateViewer.zoomCentre(0.8);
    else return;
    e.preventDefault();
  });

  window.addEventListener("beforeunload", (e) => {
    if ([...app.drafts.values()].some((d) => d.dirty)) e.preventDefault();
  });

  // a small read-only handle for scripts and tests: where a frame pixel is on the page, and
  // which sample is open
  window.hvsaApp = {
    toClient: (x, y) => annotateViewer.toClient(x, y),
    sample: () => (app.sample ? { pool_index: app.sample.pool_index, t: app.sample.t, bbox: app.sample.bbox } : null),
    clicks: () => (app.sample ? price(app.sample.editor) : null),
    phase: () => (app.state ? app.state.activity.phase : null),
  };

  setView("annotate");
  poll();
})();
