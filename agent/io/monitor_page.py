"""The live monitor's page (agent/io/monitor.py serves it): one self-contained HTML document.

Inline CSS and JavaScript only; nothing is fetched but the page itself and its event stream
(`events`, relative, so the page works behind any host name or port). The server sends it with a
Content-Security-Policy that forbids anything else. Every value from the agent is put on the page
as text (textContent), never as HTML: a player named `<script>` is shown, not run.

Element ids and data attributes are part of the page's contract with its test
(tests/integration/test_monitor_browser.py): #state, #mode, #section, #tempo, #key, #chord,
#plan-summary, #messages-in, #messages-out, and a meter row `tr[data-player=NAME]` (the agent's
row has data-player="agent" and class "agent") with cells .notes, .rate, .level.
"""

from __future__ import annotations

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>stage-agent monitor</title>
<style>
:root { --bg: #111418; --panel: #1b2027; --text: #e6e9ee; --dim: #8b95a3; --ok: #4cc38a;
        --bad: #ef6b6b; --warn: #e8b339; --agent: #58a6ff; --player: #e8b339; }
* { box-sizing: border-box; }
body { margin: 0; padding: 12px; background: var(--bg); color: var(--text);
       font: 14px/1.35 system-ui, sans-serif; }
h1 { font-size: 18px; margin: 0 0 10px; font-weight: 600; }
h2 { font-size: 12px; margin: 0 0 8px; color: var(--dim); text-transform: uppercase;
     letter-spacing: .08em; }
main { display: grid; gap: 12px; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); }
/* A panel never paints over its neighbour: what cannot fit scrolls inside it. */
section { background: var(--panel); border-radius: 8px; padding: 10px 12px; min-width: 0;
          overflow-x: auto; }
section.wide { grid-column: 1 / -1; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 3px 12px; margin: 0; }
dt { color: var(--dim); }
dd { margin: 0; font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }
.big { font-size: 22px; font-weight: 600; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 2px 6px 2px 0; }
th { color: var(--dim); font-weight: normal; }
.ok { color: var(--ok); } .bad { color: var(--bad); } .warn { color: var(--warn); }
/* The meters fit their panel at its narrowest (320 px): fixed columns for the figures, the
   bars share what is left, a long player name is cut short (its full name on hover). */
table.meters { table-layout: fixed; }
table.meters th, table.meters td { white-space: nowrap; overflow: hidden;
                                   text-overflow: ellipsis; }
table.meters .name { width: 22%; }
table.meters .figure { width: 4.2em; }
table.meters .level-figure { width: 2.6em; }
.bar { position: relative; height: 10px; background: #2a313b; border-radius: 3px;
       overflow: hidden; }
.bar > div { position: absolute; inset: 0 auto 0 0; background: var(--player); }
tr.agent .bar > div { background: var(--agent); }
canvas { width: 100%; height: 180px; display: block; background: #0c0f12; border-radius: 4px; }
.legend span { margin-right: 14px; color: var(--dim); }
</style>
</head>
<body>
<h1>stage-agent <span id="performance">—</span>:
  <span id="state" class="warn">connecting</span> <small id="link" class="dim"></small></h1>
<main>
<section>
  <h2>Status</h2>
  <dl>
    <dt>uptime</dt><dd id="uptime">—</dd>
    <dt>recording</dt><dd id="recording">—</dd>
    <dt>MQTT</dt><dd id="mqtt">—</dd>
    <dt>model</dt><dd id="model">—</dd>
    <dt>take</dt><dd id="take">—</dd>
    <dt>feedback</dt><dd id="feedback">—</dd>
    <dt>agents</dt><dd id="presence">—</dd>
    <dt>monitors</dt><dd id="clients">—</dd>
  </dl>
</section>
<section>
  <h2>What it hears</h2>
  <dl>
    <dt>tempo</dt><dd><span id="tempo" class="big">—</span> <span id="tempo-source"></span></dd>
    <dt>key</dt><dd id="key" class="big">—</dd>
    <dt>chord</dt><dd id="chord">—</dd>
  </dl>
  <table><thead><tr><th>player</th><th>role</th></tr></thead><tbody id="roles"></tbody></table>
</section>
<section>
  <h2>What it does</h2>
  <dl>
    <dt>mode</dt><dd id="mode" class="big">—</dd>
    <dt>section</dt><dd id="section">—</dd>
    <dt>ensemble</dt><dd id="ensemble">—</dd>
  </dl>
  <table><tbody id="controls"></tbody></table>
</section>
<section class="wide">
  <h2>Plan</h2>
  <canvas id="plan" width="960" height="180"></canvas>
  <p class="legend"><span id="plan-summary">no plan yet</span>
    <span>filled: committed, outlined: tentative; the line is now; 1 s back, 4 s ahead</span></p>
</section>
<section>
  <h2>Meters</h2>
  <table class="meters">
    <thead><tr><th class="name"></th><th class="figure">notes</th>
      <th class="figure">per s</th><th></th><th class="level-figure">vel.</th><th></th>
    </tr></thead>
    <tbody id="meters"></tbody>
  </table>
  <dl><dt>MIDI in</dt><dd id="messages-in">—</dd>
      <dt>MIDI out</dt><dd id="messages-out">—</dd></dl>
</section>
<section>
  <h2>Latency (recent, ms)</h2>
  <table>
    <thead><tr><th></th><th>p50</th><th>p99</th><th>max</th><th>n</th></tr></thead>
    <tbody id="latency"></tbody>
  </table>
  <dl><dt>emitted</dt><dd id="emitted">—</dd><dt>dropped</dt><dd id="dropped">—</dd>
      <dt>fallbacks</dt><dd id="fallbacks">—</dd></dl>
</section>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const show = (id, value) => { $(id).textContent = value == null || value === "" ? "—" : value; };
const fixed = (x, digits) => (x == null ? "—" : Number(x).toFixed(digits));
let plan = null;  // {notes, at}: at = performance.now() when its times count from

function clockText(seconds) {
  const h = Math.floor(seconds / 3600), m = Math.floor(seconds / 60) % 60, s = seconds % 60;
  return (h ? h + ":" : "") + String(m).padStart(h ? 2 : 1, "0") + ":"
    + String(s).padStart(2, "0");
}

function rows(tbody, items, cells) {
  // Rebuilt from text nodes only: nothing the agent sends is parsed as HTML.
  const body = $(tbody);
  body.replaceChildren(...items.map((item) => {
    const tr = document.createElement("tr");
    for (const value of cells(item)) {
      const td = document.createElement("td");
      td.textContent = value;
      tr.append(td);
    }
    return tr;
  }));
}

function bar(fraction) {
  const outer = document.createElement("div"), inner = document.createElement("div");
  outer.className = "bar";
  inner.style.width = Math.max(0, Math.min(1, fraction)) * 100 + "%";
  outer.append(inner);
  return outer;
}

function meterRow(name, m, agent) {
  const tr = document.createElement("tr");
  tr.dataset.player = agent ? "agent" : name;
  if (agent) tr.className = "agent";
  const cells = [[name, ""], [String(m.notes), "notes"], [fixed(m.rate, 1), "rate"],
                 [bar(m.rate / 16), ""], [String(m.level), "level"], [bar(m.level / 127), ""]];
  for (const [value, cls] of cells) {
    const td = document.createElement("td");
    if (cls) td.className = cls;
    td.append(value);
    tr.append(td);
  }
  tr.firstChild.title = name;  // cut short when long: the whole name on hover
  return tr;
}

const handlers = {
  status(s) {
    show("performance", s.performance);
    show("state", s.state);
    $("state").className = s.state === "performing" ? "ok" : "warn";
    show("uptime", clockText(s.uptime_s));
    show("recording", s.recording);
    $("recording").className = s.recording_ok === false ? "bad" : "";
    show("mqtt", s.mqtt);
    $("mqtt").className = s.mqtt === "connected" ? "ok" : s.mqtt === "off" ? "" : "bad";
    show("clients", s.clients);
  },
  mode(m) { show("mode", m.mode); if (m.section != null) show("section", m.section); },
  section(s) { show("section", s.name == null ? null : `${s.name} (from bar ${s.bar})`); },
  controls(c) {
    const items = Object.entries(c).filter(([name]) => name !== "mode");
    rows("controls", items, ([name, value]) => [name, typeof value === "object"
      ? Object.entries(value).map(([k, v]) => `${k} ${v}`).join(", ") || "as configured"
      : String(value)]);
  },
  tempo(t) {
    show("tempo", fixed(t.bpm, 1) + " BPM");
    show("tempo-source", `${t.source}, confidence ${fixed(t.confidence, 2)}`);
  },
  key(k) { show("key", k.key); show("chord", k.chord); },
  roles(r) { rows("roles", Object.entries(r), ([player, role]) => [player, role]); },
  ensemble(e) { show("ensemble", `${e.role}${e.can_lead ? "" : " (cannot lead)"}`); },
  model(m) {
    show("model", `${m.status}: ${m.checkpoint}${m.error ? " (" + m.error + ")" : ""}`);
  },
  feedback(f) {  // players whose port plays the agent back: not answered (README: On stage)
    show("feedback", f.players.length ? `not answering ${f.players.join(", ")}: `
      + "the agent hears itself on their port (check the patching)" : "none");
    $("feedback").className = f.players.length ? "bad" : "";
  },
  presence(p) {  // another agent with this one's MQTT name (README: Control plane)
    show("presence", p.text || "this one alone under its name");
    $("presence").className = p.duplicate_of ? "bad" : p.newer.length ? "warn" : "";
  },
  take(t) { show("take", `${t.state}: ${t.folder}${t.error ? " (" + t.error + ")" : ""}`); },
  capture(c) { show("take", `capture ${c.state}: ${c.folder}`); },
  plan(p) {
    plan = {notes: p.notes, at: performance.now()};
    const committed = p.notes.filter((n) => n[4]).length;
    show("plan-summary", `${p.mode}: ${p.notes.length} notes, ${committed} committed, `
      + `${p.notes.length - committed} tentative`);
  },
  telemetry(t) {
    const figures = [["reaction", t.reaction_ms], ["lateness", t.lateness_ms],
                     ["loop lag", t.loop_lag_ms], ["model wait", t.model_wait_ms]];
    rows("latency", figures, ([name, f]) => [name, fixed(f.p50, 2), fixed(f.p99, 2),
                                             fixed(f.max, 2), String(f.n)]);
    show("emitted", t.emitted);
    show("dropped", `input ${t.dropped.input}, shed ${t.dropped.shed ?? 0}, ` +
         `output ${t.dropped.output}`);
    show("fallbacks", t.fallbacks);
  },
  meters(m) {
    $("meters").replaceChildren(
      ...Object.entries(m.players).map(([name, p]) => meterRow(name, p, false)),
      meterRow("agent", m.agent, true));
    show("messages-in", m.in);
    show("messages-out", m.out);
  },
};

const source = new EventSource("events");
source.onopen = () => { show("link", "live"); $("link").className = "ok"; };
source.onerror = () => {
  show("link", "no connection to the agent, retrying");
  $("link").className = "bad";
  $("state").className = "bad";
};
for (const [kind, handle] of Object.entries(handlers)) {
  source.addEventListener(kind, (event) => handle(JSON.parse(event.data)));
}

// Ten frames a second, and none while no plan note is in view: the page may be open on the
// performance machine itself, whose CPU plays the music.
let drawnPlan = null, drawnVisible = false;
function draw() {
  const canvas = $("plan"), g = canvas.getContext("2d"), back = 1000, ahead = 4000;
  const visible = plan && plan.notes.some(
    ([start, , , duration]) => start + duration > performance.now() - plan.at - back);
  if (!visible && !drawnVisible && drawnPlan === plan && canvas.width === canvas.clientWidth) {
    return;
  }
  drawnPlan = plan;
  drawnVisible = visible;
  if (canvas.clientWidth && canvas.width !== canvas.clientWidth) {
    canvas.width = canvas.clientWidth;
  }
  const width = canvas.width, height = canvas.height;
  const x = (ms) => ((ms + back) / (back + ahead)) * width;
  g.clearRect(0, 0, width, height);
  g.strokeStyle = "#2a313b";
  for (let s = -1; s <= 4; s++) {
    g.beginPath(); g.moveTo(x(s * 1000), 0); g.lineTo(x(s * 1000), height); g.stroke();
  }
  if (plan && plan.notes.length) {
    const age = performance.now() - plan.at;
    const pitches = plan.notes.map((n) => n[1]);
    let low = Math.min(...pitches) - 2, high = Math.max(...pitches) + 2;
    if (high - low < 12) { const mid = (low + high) / 2; low = mid - 6; high = mid + 6; }
    const row = height / (high - low + 1);
    for (const [start, pitch, velocity, duration, committed] of plan.notes) {
      const left = x(start - age), right = x(start - age + duration);
      const top = (high - pitch) * row;
      g.globalAlpha = 0.4 + 0.6 * velocity / 127;
      if (committed) {
        g.fillStyle = "#58a6ff"; g.fillRect(left, top, Math.max(2, right - left), row - 1);
      } else {
        g.strokeStyle = "#58a6ff"; g.strokeRect(left, top, Math.max(2, right - left), row - 1);
      }
    }
    g.globalAlpha = 1;
  }
  g.strokeStyle = "#ef6b6b";
  g.beginPath(); g.moveTo(x(0), 0); g.lineTo(x(0), height); g.stroke();
}
setInterval(draw, 100);
</script>
</body>
</html>
"""
