// The viewer of cellnb.view.scene_html: cells side by side in one WebGL canvas, a shared orbit
// camera (drag to rotate, wheel to zoom), one time slider and a play button.  Plain WebGL, no library.
(function () {
  "use strict";
  var root = document.currentScript.parentNode;
  var data = JSON.parse(root.querySelector("script.cellnb-scene").textContent);
  var P = +root.dataset.panel, cols = +root.dataset.cols, rows = +root.dataset.rows;
  var nTimes = data.times.length, cells = data.cells;

  var stage = document.createElement("div");
  stage.style.cssText = "position:relative;width:" + cols * P + "px;height:" + rows * P + "px";
  var canvas = document.createElement("canvas");
  var dpr = window.devicePixelRatio || 1;
  canvas.width = cols * P * dpr; canvas.height = rows * P * dpr;
  canvas.style.cssText = "width:100%;height:100%;cursor:grab;touch-action:none;border:1px solid #ddd";
  stage.appendChild(canvas);
  var labels = cells.map(function (cell, i) {
    var label = document.createElement("div");
    label.style.cssText = "position:absolute;pointer-events:none;padding:2px 4px;left:" + (i % cols) * P +
      "px;top:" + Math.floor(i / cols) * P + "px";
    stage.appendChild(label);
    return label;
  });
  var bar = document.createElement("div");
  bar.style.cssText = "display:flex;align-items:center;gap:8px;margin-top:4px";
  var play = document.createElement("button");
  play.textContent = "\u25B6";
  var slider = document.createElement("input");
  slider.type = "range"; slider.min = 0; slider.max = nTimes - 1; slider.step = 1; slider.value = 0;
  slider.className = "cellnb-slider";
  slider.style.width = Math.max(160, cols * P - 140) + "px";
  var clock = document.createElement("span");
  bar.appendChild(play); bar.appendChild(slider); bar.appendChild(clock);
  root.appendChild(stage); root.appendChild(bar);

  var gl = canvas.getContext("webgl2") || canvas.getContext("webgl");
  if (!gl) { clock.textContent = "WebGL is not available in this browser"; root.dataset.error = "no webgl"; return; }
  var uint32 = typeof WebGL2RenderingContext !== "undefined" && gl instanceof WebGL2RenderingContext ||
    gl.getExtension("OES_element_index_uint");

  function shader(type, source) {
    var s = gl.createShader(type);
    gl.shaderSource(s, source); gl.compileShader(s);
    return s;
  }
  var program = gl.createProgram();
  gl.attachShader(program, shader(gl.VERTEX_SHADER,
    "attribute vec3 aQ; attribute vec3 aN; uniform mat4 uMV; uniform mat4 uP; uniform mat3 uR;" +
    "uniform vec3 uLo; uniform vec3 uExt; varying vec3 vN;" +
    "void main() { vN = uR * aN; gl_Position = uP * uMV * vec4(uLo + aQ * uExt, 1.0); }"));
  gl.attachShader(program, shader(gl.FRAGMENT_SHADER,
    "precision mediump float; varying vec3 vN; uniform vec3 uC;" +
    "void main() { float d = abs(normalize(vN).z);" +
    " gl_FragColor = vec4(uC * (0.3 + 0.7 * d) + vec3(0.25) * pow(d, 40.0), 1.0); }"));
  gl.linkProgram(program);
  gl.useProgram(program);
  var loc = {};
  ["uMV", "uP", "uR", "uLo", "uExt", "uC"].forEach(function (n) { loc[n] = gl.getUniformLocation(program, n); });
  var aQ = gl.getAttribLocation(program, "aQ"), aN = gl.getAttribLocation(program, "aN");

  var lo = data.bounds[0], hi = data.bounds[1];
  var ext = [0, 1, 2].map(function (i) { return Math.max(hi[i] - lo[i], 1e-9); });
  var center = [0, 1, 2].map(function (i) { return (lo[i] + hi[i]) / 2; });
  var radius = Math.sqrt(ext[0] * ext[0] + ext[1] * ext[1] + ext[2] * ext[2]) / 2;
  var rgb = [1, 3, 5].map(function (i) { return parseInt(data.color.substr(i, 2), 16) / 255; });
  gl.uniform3fv(loc.uLo, lo); gl.uniform3fv(loc.uExt, ext); gl.uniform3fv(loc.uC, rgb);
  gl.enable(gl.DEPTH_TEST); gl.enable(gl.SCISSOR_TEST);

  function bytes(b64) {
    var s = atob(b64), out = new Uint8Array(s.length);
    for (var i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out.buffer;
  }
  function upload(frame) {  // GPU buffers of one frame, made on first use; vertex normals from the faces
    if (frame.gpu || !frame.n_faces || (frame.index_bytes === 4 && !uint32)) return frame.gpu;
    var q = new Uint16Array(bytes(frame.points));
    var f = frame.index_bytes === 4 ? new Uint32Array(bytes(frame.faces)) : new Uint16Array(bytes(frame.faces));
    var p = new Float32Array(q.length), n = new Float32Array(q.length);
    for (var i = 0; i < q.length; i++) p[i] = lo[i % 3] + q[i] / 65535 * ext[i % 3];
    for (var t = 0; t < f.length; t += 3) {
      var a = 3 * f[t], b = 3 * f[t + 1], c = 3 * f[t + 2];
      var ux = p[b] - p[a], uy = p[b + 1] - p[a + 1], uz = p[b + 2] - p[a + 2];
      var vx = p[c] - p[a], vy = p[c + 1] - p[a + 1], vz = p[c + 2] - p[a + 2];
      var nx = uy * vz - uz * vy, ny = uz * vx - ux * vz, nz = ux * vy - uy * vx;
      [a, b, c].forEach(function (k) { n[k] += nx; n[k + 1] += ny; n[k + 2] += nz; });
    }
    frame.gpu = { count: f.length, type: frame.index_bytes === 4 ? gl.UNSIGNED_INT : gl.UNSIGNED_SHORT };
    [["q", q], ["n", n]].forEach(function (pair) {
      frame.gpu[pair[0]] = gl.createBuffer();
      gl.bindBuffer(gl.ARRAY_BUFFER, frame.gpu[pair[0]]);
      gl.bufferData(gl.ARRAY_BUFFER, pair[1], gl.STATIC_DRAW);
    });
    frame.gpu.f = gl.createBuffer();
    gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, frame.gpu.f);
    gl.bufferData(gl.ELEMENT_ARRAY_BUFFER, f, gl.STATIC_DRAW);
    return frame.gpu;
  }

  var yaw = 0.8, pitch = 0.5, zoom = 1;
  function matrices() {  // column-major: view = T(0, 0, -d) Rx(pitch) Ry(yaw) T(-center)
    var cy = Math.cos(yaw), sy = Math.sin(yaw), cp = Math.cos(pitch), sp = Math.sin(pitch);
    var r = [cy, sp * sy, -cp * sy, 0, cp, sp, sy, -sp * cy, cp * cy];  // 3x3, column-major
    var d = 4 * radius / zoom;
    var mv = [r[0], r[1], r[2], 0, r[3], r[4], r[5], 0, r[6], r[7], r[8], 0, 0, 0, -d, 1];
    for (var i = 0; i < 3; i++) mv[12 + i] -= r[i] * center[0] + r[3 + i] * center[1] + r[6 + i] * center[2];
    var near = Math.max(d - 2 * radius, d / 100), far = d + 2 * radius, fy = 1 / Math.tan(Math.PI / 12);
    var proj = [fy, 0, 0, 0, 0, fy, 0, 0, 0, 0, (far + near) / (near - far), -1, 0, 0, 2 * far * near / (near - far), 0];
    return { mv: mv, p: proj, r: r };
  }

  function draw() {
    var k = +slider.value, m = matrices(), triangles = 0, size = P * dpr;
    gl.uniformMatrix4fv(loc.uMV, false, m.mv); gl.uniformMatrix4fv(loc.uP, false, m.p);
    gl.uniformMatrix3fv(loc.uR, false, m.r);
    gl.scissor(0, 0, canvas.width, canvas.height); gl.clearColor(1, 1, 1, 1);
    gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
    cells.forEach(function (cell, i) {
      var shown = cell.shown[k], frame = cell.frames[shown];
      labels[i].textContent = cell.name + "  (frame " + (shown + 1) + " / " + cell.frames.length + ")";
      var x = (i % cols) * size, y = canvas.height - (Math.floor(i / cols) + 1) * size;
      gl.viewport(x, y, size, size); gl.scissor(x, y, size, size);
      var g = upload(frame);
      if (!g) return;
      gl.bindBuffer(gl.ARRAY_BUFFER, g.q); gl.enableVertexAttribArray(aQ);
      gl.vertexAttribPointer(aQ, 3, gl.UNSIGNED_SHORT, true, 0, 0);
      gl.bindBuffer(gl.ARRAY_BUFFER, g.n); gl.enableVertexAttribArray(aN);
      gl.vertexAttribPointer(aN, 3, gl.FLOAT, false, 0, 0);
      gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, g.f);
      gl.drawElements(gl.TRIANGLES, g.count, g.type, 0);
      triangles += g.count / 3;
    });
    clock.textContent = "t = " + (data.times[k] >= 0 ? "+" : "") + data.times[k].toFixed(2) +
      "  (" + (k + 1) + " / " + nTimes + ")";
    root.dataset.frame = k; root.dataset.triangles = triangles;
  }

  var dragging = null, timer = null;
  canvas.addEventListener("pointerdown", function (e) { dragging = [e.clientX, e.clientY]; canvas.setPointerCapture(e.pointerId); });
  canvas.addEventListener("pointerup", function () { dragging = null; });
  canvas.addEventListener("pointermove", function (e) {
    if (!dragging) return;
    yaw += (e.clientX - dragging[0]) * 0.01;
    pitch = Math.max(-1.55, Math.min(1.55, pitch + (e.clientY - dragging[1]) * 0.01));
    dragging = [e.clientX, e.clientY];
    draw();
  });
  canvas.addEventListener("wheel", function (e) {
    e.preventDefault();
    zoom = Math.max(0.2, Math.min(20, zoom * Math.exp(-e.deltaY * 0.001)));
    draw();
  }, { passive: false });
  slider.addEventListener("input", draw);
  play.addEventListener("click", function () {
    if (timer) { clearInterval(timer); timer = null; play.textContent = "\u25B6"; return; }
    play.textContent = "\u275A\u275A";
    timer = setInterval(function () { slider.value = (+slider.value + 1) % nTimes; draw(); }, 150);
  });
  var start = /cellnb-frame=(\d+)/.exec(location.hash);  // a page can open at a given slider position
  if (start) slider.value = Math.min(+start[1], nTimes - 1);
  draw();
})();
