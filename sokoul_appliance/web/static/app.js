// SOKOUL control panel and setup wizard: a small single-page app over the JSON API
// described in docs/api.md. No framework, nothing fetched from outside this appliance.
// The DOM is built with createElement/textContent only (no innerHTML with data), no inline
// styles or handlers: the page runs under a strict Content-Security-Policy.

const STEP_TITLES = {
  admin: "Administrator",
  system: "System",
  network: "Network",
  storage: "Storage",
  vpn: "VPN",
  content: "Content sources",
  summary: "Summary",
};

const PAGES = [
  ["home", "Home"],
  ["library", "Library"],
  ["downloads", "Downloads"],
  ["devices", "Devices"],
  ["network", "Network"],
  ["storage", "Storage"],
  ["system", "System"],
  ["logs", "Logs"],
  ["settings", "Settings"],
];

const STATE_WORDS = {
  ok: "OK",
  degraded: "Degraded",
  not_configured: "Not configured",
  unavailable: "Unavailable",
  waiting: "Waiting",
  starting: "Starting",
  error: "Error",
};

const LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"];

const app = {
  session: null, // GET /api/session body
  csrf: "",
  wizard: null, // GET /api/wizard body
  results: null, // POST /api/wizard/apply body, kept to show after the wizard closes
  afterLogin: "#/home",
  ws: null,
  wsTimer: 0,
  wsBackoff: 1000,
  wsWanted: false,
  listeners: new Set(), // page-level handlers for WebSocket messages
  renderSeq: 0,
};

// ---------------------------------------------------------------- DOM helpers

/** h("div", {class: "x", dataset: {testid: "y"}}, child, "text", [more]) */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "dataset") Object.assign(el.dataset, value);
      else if (key === "text") el.textContent = value;
      else if (key === "on") {
        for (const [ev, fn] of Object.entries(value)) el.addEventListener(ev, fn);
      } else if (key in el && typeof value !== "string") el[key] = value;
      else el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

function tid(name) {
  return { testid: name };
}

function main() {
  return document.getElementById("main");
}

function setMain(...children) {
  const m = main();
  m.replaceChildren(...children.flat().filter(Boolean));
}

// ---------------------------------------------------------------- formatting

function fmtBytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "kB", "MB", "GB", "TB", "PB"];
  let i = 0;
  let v = Number(n);
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i += 1;
  }
  return `${v >= 100 || i === 0 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

function fmtDriveSize(n) {
  // Drives are sold in decimal units: show GB below 1 TB, TB above.
  if (n === null || n === undefined) return "—";
  const gb = Number(n) / 1e9;
  if (gb >= 1000) return `${(gb / 1000).toFixed(2)} TB`;
  return `${gb.toFixed(gb >= 100 ? 0 : 1)} GB`;
}

function fmtUptime(sec) {
  if (sec === null || sec === undefined) return "—";
  let s = Math.max(0, Math.floor(Number(sec)));
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const hr = Math.floor(s / 3600);
  s -= hr * 3600;
  const min = Math.floor(s / 60);
  s -= min * 60;
  const parts = [];
  if (d) parts.push(`${d} d`);
  if (d || hr) parts.push(`${hr} h`);
  if (d || hr || min) parts.push(`${min} min`);
  if (!d) parts.push(`${s} s`);
  return parts.join(" ");
}

function fmtKhz(khz) {
  if (khz === null || khz === undefined) return "—";
  const mhz = Number(khz) / 1000;
  return mhz >= 1000 ? `${(mhz / 1000).toFixed(2)} GHz` : `${mhz.toFixed(0)} MHz`;
}

function fmtSpeed(mbps) {
  if (mbps === null || mbps === undefined) return "unknown speed";
  return mbps >= 1000 ? `${mbps / 1000} Gbit/s` : `${mbps} Mbit/s`;
}

function fmtTime(ts) {
  const d = new Date(Number(ts) * 1000);
  if (Number.isNaN(d.getTime())) return "";
  const pad = (x) => String(x).padStart(2, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function linkWord(link) {
  return { up: "Link up", down: "No link", unknown: "Link unknown" }[link] || "Link unknown";
}

function stateBadge(state) {
  const word = STATE_WORDS[state] || (state ? String(state) : "Unknown");
  return h("span", { class: `badge badge-${state || "unknown"}`, dataset: tid("state-badge") }, word);
}

/** A readable rendering of any answer value (objects, lists, {"set": true} secrets). */
function describeValue(value) {
  if (value === null || value === undefined || value === "") return "—";
  if (typeof value === "boolean") return value ? "Yes" : "No";
  if (Array.isArray(value)) return value.length ? value.map(describeValue).join(", ") : "none";
  if (typeof value === "object") {
    if ("set" in value && Object.keys(value).length === 1) {
      return value.set ? "set (hidden)" : "not set";
    }
    return Object.entries(value)
      .map(([k, v]) => `${humanKey(k)}: ${describeValue(v)}`)
      .join("; ");
  }
  return String(value);
}

const KEY_LABELS = {
  username: "User name",
  hostname: "Host name",
  timezone: "Time zone",
  streaming_subnet: "Streaming network",
  format_media: "Format the media drive",
  confirmed: "Confirmed drive",
  wireguard_conf: "WireGuard config",
  summary: "Tunnel",
  addresses: "Addresses",
  dns: "DNS",
  allowed_ips: "Allowed IPs",
  tmdb_api_key: "TMDB API key",
  torznab_urls: "Torznab URLs",
  configured: "Configured",
};

function humanKey(key) {
  if (KEY_LABELS[key]) return KEY_LABELS[key];
  const s = String(key).replace(/_/g, " ");
  return s.charAt(0).toUpperCase() + s.slice(1);
}

// ---------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, message, fields, retryAfter) {
    super(message);
    this.status = status;
    this.fields = fields || {};
    this.retryAfter = retryAfter;
  }
}

async function api(method, path, body, opts = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = app.csrf;
  let resp;
  try {
    resp = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch (err) {
    throw new ApiError(0, "The appliance did not answer. Check that it is running and reachable, then try again.");
  }
  let data = null;
  const text = await resp.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch (err) {
      data = null;
    }
  }
  if (!resp.ok) {
    const e = (data && data.error) || {};
    const message = e.message || `The appliance answered ${resp.status} ${resp.statusText}.`;
    const error = new ApiError(resp.status, message, e.fields, resp.headers.get("Retry-After"));
    if (resp.status === 401 && !opts.noAuthRedirect) {
      onUnauthenticated();
    }
    throw error;
  }
  return data;
}

function showSimulated() {
  const banner = document.getElementById("sim-banner");
  if (banner) banner.hidden = !(app.session && app.session.simulated);
}

function updateSession(sess) {
  if (!sess) return;
  app.session = { ...(app.session || {}), ...sess };
  if (sess.csrf_token) app.csrf = sess.csrf_token;
  showSimulated();
}

async function refreshSession() {
  const sess = await api("GET", "/api/session", undefined, { noAuthRedirect: true });
  app.session = sess;
  app.csrf = sess.csrf_token || "";
  showSimulated();
  return sess;
}

function onUnauthenticated() {
  if (app.session) app.session.authenticated = false;
  stopLive();
  const here = location.hash || "#/home";
  if (!here.startsWith("#/login")) app.afterLogin = here;
  // Take a fresh CSRF token for the login form, then show it.
  refreshSession()
    .catch(() => null)
    .finally(() => {
      if (location.hash !== "#/login") location.hash = "#/login";
      else render();
    });
}

// ---------------------------------------------------------------- forms and errors

/** Top-of-form message box plus per-field messages next to inputs with matching name. */
function formErrors(form) {
  const box = h("div", { class: "form-error", role: "alert", dataset: tid("form-error"), hidden: true });
  form.prepend(box);
  return {
    box,
    clear() {
      box.hidden = true;
      box.replaceChildren();
      for (const el of form.querySelectorAll(".field-error")) el.remove();
      for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    },
    show(err) {
      this.clear();
      const unplaced = [];
      for (const [name, msg] of Object.entries(err.fields || {})) {
        const input = form.querySelector(`[data-field="${CSS.escape(name)}"]`) ||
          form.querySelector(`[name="${CSS.escape(name)}"]`);
        if (!input) {
          unplaced.push(`${humanKey(name)}: ${msg}`);
          continue;
        }
        const id = `err-${name.replace(/[^a-zA-Z0-9_-]/g, "-")}`;
        const p = h("p", { class: "field-error", id, dataset: tid(`field-error-${name}`) }, msg);
        const anchor = input.closest(".field") || input.closest("fieldset") || input;
        anchor.appendChild(p);
        if (input.matches("input, select, textarea")) {
          input.setAttribute("aria-invalid", "true");
          input.setAttribute("aria-describedby", id);
        }
      }
      box.append(h("p", null, err.message || "Something went wrong."));
      if (unplaced.length) box.append(h("ul", null, unplaced.map((m) => h("li", null, m))));
      box.hidden = false;
      box.scrollIntoView({ block: "nearest" });
    },
  };
}

let idSeq = 0;

/** A labelled input inside a .field wrapper. */
function field(label, input, hint) {
  if (!input.id) {
    idSeq += 1;
    input.id = `f${idSeq}`;
  }
  const parts = [h("label", { for: input.id }, label), input];
  if (hint) {
    const hintEl = h("p", { class: "hint", id: `${input.id}-hint` }, hint);
    input.setAttribute("aria-describedby", hintEl.id);
    parts.push(hintEl);
  }
  return h("div", { class: "field" }, parts);
}

function textInput(name, value, extra = {}) {
  return h("input", { type: "text", name, value: value ?? "", dataset: tid(`input-${name}`), ...extra });
}

function busy(button, on) {
  button.disabled = on;
  button.classList.toggle("busy", on);
}

function pageHeader(title, ...extra) {
  return h("div", { class: "page-header" }, h("h1", { tabindex: "-1" }, title), extra);
}

function stateLine(obj) {
  return h(
    "div",
    { class: "state-line", dataset: tid("state-line") },
    stateBadge(obj && obj.state),
    h("span", { class: "state-detail", dataset: tid("state-detail") }, (obj && obj.detail) || ""),
  );
}

function emptyRow(cols, text) {
  return h("tr", { class: "empty" }, h("td", { colspan: String(cols) }, text));
}

function table(caption, headers, rows, testid) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { dataset: tid(testid) },
      h("caption", null, caption),
      h("thead", null, h("tr", null, headers.map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", null, rows),
    ),
  );
}

function errorPanel(err, retry) {
  return h(
    "div",
    { class: "panel-error", role: "alert", dataset: tid("page-error") },
    h("p", null, err.message || String(err)),
    retry ? h("button", { type: "button", on: { click: retry } }, "Try again") : null,
  );
}

// ---------------------------------------------------------------- routing

function route() {
  const hash = (location.hash || "").split("?")[0]; // "#/library?q=x": the page is "library"
  const parts = hash.replace(/^#\/?/, "").split("/").filter(Boolean);
  return { name: parts[0] || "", arg: parts[1] || "" };
}

function go(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

async function render() {
  const seq = ++app.renderSeq;
  app.listeners.clear();
  const r = route();
  const sess = app.session;
  if (!sess) return;

  if (!sess.setup_complete) {
    showChrome(false);
    if (r.name === "login") return renderLogin(seq);
    return renderWizard(seq, r.arg);
  }
  if (r.name === "wizard" && r.arg === "done" && app.results) {
    showChrome(false);
    return renderResults();
  }
  if (!sess.authenticated) {
    showChrome(false);
    if (r.name !== "login") {
      if (PAGES.some(([name]) => name === r.name)) app.afterLogin = `#/${r.name}`;
      location.replace("#/login");
    }
    return renderLogin(seq);
  }
  const page = PAGES.find(([name]) => name === r.name);
  if (!page) {
    location.replace("#/home");
    return;
  }
  showChrome(true, page[0]);
  startLive();
  return PAGE_RENDERERS[page[0]](seq);
}

function stale(seq) {
  return seq !== app.renderSeq;
}

function showChrome(panel, current) {
  const nav = document.getElementById("nav");
  const toggle = document.getElementById("menu-toggle");
  const live = document.getElementById("live");
  const layout = document.getElementById("layout");
  layout.classList.toggle("with-nav", panel);
  nav.hidden = !panel;
  toggle.hidden = !panel;
  live.hidden = !panel;
  if (!panel) {
    stopLive();
    return;
  }
  if (!nav.firstChild) buildNav(nav);
  for (const a of nav.querySelectorAll("a[data-page]")) {
    if (a.dataset.page === current) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  closeMenu();
}

function buildNav(nav) {
  nav.append(
    h(
      "ul",
      null,
      PAGES.map(([name, title]) =>
        h("li", null, h("a", { href: `#/${name}`, dataset: { page: name, testid: `nav-${name}` } }, title)),
      ),
    ),
  );
}

function closeMenu() {
  document.getElementById("nav").classList.remove("open");
  document.getElementById("menu-toggle").setAttribute("aria-expanded", "false");
}

// ---------------------------------------------------------------- login

function renderLogin(seq) {
  const user = textInput("username", (app.session && app.session.username) || "admin", {
    autocomplete: "username",
    autocapitalize: "none",
    spellcheck: "false",
    required: true,
  });
  const pass = h("input", {
    type: "password",
    name: "password",
    autocomplete: "current-password",
    required: true,
    dataset: tid("input-password"),
  });
  const submit = h("button", { type: "submit", class: "primary", dataset: tid("login-submit") }, "Log in");
  const form = h(
    "form",
    { class: "card narrow", dataset: tid("login-form"), novalidate: true },
    h("h1", null, "Log in"),
    h(
      "p",
      { class: "muted" },
      app.session && !app.session.setup_complete
        ? "The administrator account exists. Log in with it to continue the setup."
        : "Log in with the administrator account created in the setup wizard.",
    ),
    field("User name", user),
    field("Password", pass),
    h("div", { class: "actions" }, submit),
  );
  const errors = formErrors(form);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    errors.clear();
    busy(submit, true);
    try {
      const sess = await api("POST", "/api/login", { username: user.value.trim(), password: pass.value }, {
        noAuthRedirect: true,
      });
      updateSession(sess);
      // The token changes on login: take the fresh one.
      await refreshSession();
      const target = app.session.setup_complete ? app.afterLogin || "#/home" : "#/wizard";
      app.afterLogin = "#/home";
      go(target.startsWith("#/login") ? "#/home" : target);
    } catch (err) {
      if (err.status === 429 && err.retryAfter && !/\d/.test(err.message)) {
        err.message = `${err.message} (try again in ${err.retryAfter} s)`;
      }
      if (err.status === 409) {
        // no account exists yet: the wizard is where it is made
        app.wizard = null;
        return go("#/wizard");
      }
      errors.show(err);
      pass.value = "";
      pass.focus();
    } finally {
      busy(submit, false);
    }
  });
  setMain(h("section", { class: "page page-login", dataset: tid("page-login") }, form));
  (user.value ? pass : user).focus();
}

// ---------------------------------------------------------------- wizard

async function loadWizard() {
  const wiz = await api("GET", "/api/wizard");
  app.wizard = wiz;
  return wiz;
}

async function renderWizard(seq, stepArg) {
  let wiz = app.wizard;
  if (!wiz) {
    setMain(h("p", { class: "loading" }, "Loading the setup wizard…"));
    try {
      wiz = await loadWizard();
    } catch (err) {
      if (stale(seq)) return;
      if (err.status === 401) return; // onUnauthenticated shows the login form
      if (err.status === 410) {
        await refreshSession();
        return go("#/home");
      }
      setMain(errorPanel(err, () => render()));
      return;
    }
    if (stale(seq)) return;
  }
  if (wiz.login_required) {
    // The admin account exists: the rest of the wizard belongs to its owner.
    app.wizard = null;
    app.afterLogin = "#/wizard";
    location.replace("#/login");
    return;
  }
  const steps = wiz.steps || Object.keys(STEP_TITLES);
  // current_step null while setup is open means every step is answered: stay on the last one.
  const currentIdx = wiz.current_step ? Math.max(0, steps.indexOf(wiz.current_step)) : steps.length - 1;
  let step = stepArg;
  // Go to the step the server says is next unless the person went back to an earlier one.
  if (!steps.includes(step) || steps.indexOf(step) > currentIdx) {
    location.replace(`#/wizard/${steps[currentIdx]}`);
    step = steps[currentIdx];
  }
  const idx = steps.indexOf(step);
  const builder = WIZARD_STEPS[step];
  const answers = (wiz.answers || {})[step] || null;
  const opts = wiz.options || {};

  const indicator = h(
    "ol",
    { class: "steps", dataset: tid("wizard-indicator"), "aria-label": "Setup steps" },
    steps.map((s, i) => {
      const cls = i < idx ? "done" : i === idx ? "current" : i <= currentIdx ? "reachable" : "todo";
      const label = h("span", { class: "step-label" }, STEP_TITLES[s] || humanKey(s));
      const num = h("span", { class: "step-num", "aria-hidden": "true" }, String(i + 1));
      const inner =
        i !== idx && i <= currentIdx
          ? h("a", { href: `#/wizard/${s}` }, num, label)
          : h("span", null, num, label);
      return h(
        "li",
        { class: cls, "aria-current": i === idx ? "step" : null, dataset: { step: s } },
        inner,
      );
    }),
  );

  const form = h("form", { class: "card wizard-form", novalidate: true, dataset: tid("wizard-form") });
  const errors = formErrors(form);
  const back = h(
    "button",
    { type: "button", class: "secondary", dataset: tid("wizard-back"), disabled: idx === 0 },
    "Back",
  );
  back.addEventListener("click", () => go(`#/wizard/${steps[Math.max(0, idx - 1)]}`));
  const next = h(
    "button",
    { type: "submit", class: "primary", dataset: tid(step === "summary" ? "wizard-apply" : "wizard-next") },
    step === "summary" ? "Apply" : "Next",
  );
  const actions = h("div", { class: "actions wizard-actions" }, back, next);

  const ctx = { wiz, opts, answers, form, errors, next, actions, extraButtons: [] };
  const body = builder(ctx);
  form.append(
    h("h1", { tabindex: "-1" }, `Step ${idx + 1} of ${steps.length}: ${STEP_TITLES[step] || humanKey(step)}`),
    body.content,
    actions,
  );
  for (const b of ctx.extraButtons) actions.insertBefore(b, next);

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    errors.clear();
    let payload;
    try {
      payload = await body.collect();
    } catch (err) {
      errors.show(err);
      return;
    }
    if (payload === undefined) {
      // Nothing to send (e.g. keep a saved VPN config): just move on.
      go(`#/wizard/${steps[idx + 1]}`);
      return;
    }
    busy(next, true);
    try {
      if (step === "summary") {
        await submitApply(errors);
        return;
      }
      const res = await api("PUT", `/api/wizard/steps/${step}`, payload);
      if (res && res.session) updateSession(res.session);
      else if (step === "admin") await refreshSession();
      app.wizard = stripSession(res);
      const nextStep = app.wizard.current_step && steps.indexOf(app.wizard.current_step) > idx
        ? steps[idx + 1]
        : app.wizard.current_step || steps[idx + 1];
      go(`#/wizard/${nextStep}`);
    } catch (err) {
      if (err.status === 409 || err.status === 410) {
        // Another step must come first, or setup finished elsewhere: reload the wizard state.
        app.wizard = null;
      }
      if (err.status !== 401) errors.show(err);
    } finally {
      busy(next, false);
    }
  });

  setMain(
    h(
      "section",
      { class: "page page-wizard", dataset: { testid: `wizard-step-${step}`, step } },
      h("p", { class: "eyebrow" }, "Setup"),
      indicator,
      form,
    ),
  );
  const first = form.querySelector("input:not([type=hidden]):not([disabled]), select, textarea");
  if (first && step !== "summary") first.focus();
}

function stripSession(res) {
  if (!res) return res;
  const { session, ...rest } = res;
  return rest;
}

async function submitApply(errors) {
  await api("PUT", "/api/wizard/steps/summary", {});
  const res = await api("POST", "/api/wizard/apply", {});
  app.results = res;
  app.wizard = null;
  try {
    await refreshSession();
  } catch (err) {
    // The results still show; the panel button retries the session.
  }
  if (app.session) app.session.setup_complete = true;
  go("#/wizard/done");
}

function validationError(message, fields) {
  return new ApiError(400, message, fields);
}

function radioCard(name, value, checked, title, lines, testid) {
  const input = h("input", { type: "radio", name, value, checked: !!checked, dataset: tid(testid) });
  return h(
    "label",
    { class: "choice" },
    input,
    h("span", { class: "choice-body" }, h("span", { class: "choice-title" }, title), lines.map((l) => h("span", { class: "choice-line" }, l))),
  );
}

function checkedValue(form, name) {
  const el = form.querySelector(`input[name="${name}"]:checked`);
  return el ? el.value : null;
}

const WIZARD_STEPS = {
  admin(ctx) {
    const a = ctx.answers || {};
    const user = textInput("username", a.username || "admin", {
      autocomplete: "username",
      autocapitalize: "none",
      spellcheck: "false",
      maxlength: "32",
      required: true,
    });
    const pw = h("input", { type: "password", name: "password", autocomplete: "new-password", required: true, dataset: tid("input-password") });
    const pw2 = h("input", { type: "password", name: "password_again", autocomplete: "new-password", required: true, dataset: tid("input-password_again") });
    const content = h(
      "div",
      null,
      h("p", null, "Create the administrator account that signs in to this control panel."),
      a.username
        ? h("p", { class: "note" }, `The account "${a.username}" is already created. To change it, type a password again.`)
        : null,
      field("User name", user, "1 to 32 characters: lower-case letters, digits, - and _."),
      field("Password", pw, "At least 8 characters."),
      field("Password again", pw2),
    );
    return {
      content,
      collect() {
        const fields = {};
        if (pw.value.length < 8) fields.password = "Use at least 8 characters.";
        if (pw.value !== pw2.value) fields.password_again = "The two passwords are not the same.";
        if (Object.keys(fields).length) throw validationError("Please check the password.", fields);
        return { username: user.value.trim(), password: pw.value, password_again: pw2.value };
      },
    };
  },

  system(ctx) {
    const a = ctx.answers || {};
    const defaults = ctx.opts.defaults || {};
    const host = textInput("hostname", a.hostname || defaults.hostname || "", {
      autocapitalize: "none",
      spellcheck: "false",
      maxlength: "63",
      required: true,
    });
    const tzValue = a.timezone || defaults.timezone || "Etc/UTC";
    const zones = ctx.opts.timezones && ctx.opts.timezones.length ? ctx.opts.timezones : [tzValue];
    const tz = h(
      "select",
      { name: "timezone", dataset: tid("input-timezone") },
      zones.map((z) => h("option", { value: z, selected: z === tzValue }, z)),
    );
    return {
      content: h(
        "div",
        null,
        h("p", null, "Name this appliance on your network and set its clock's time zone."),
        field("Host name", host, "Letters, digits and hyphens, up to 63 characters (for example sokoul-living-room)."),
        field("Time zone", tz),
      ),
      collect: () => ({ hostname: host.value.trim(), timezone: tz.value }),
    };
  },

  network(ctx) {
    const a = ctx.answers || {};
    const ports = ctx.opts.ports || [];
    const defaults = ctx.opts.defaults || {};
    const byLink = [...ports].sort((x, y) => (x.link === "up" ? 0 : 1) - (y.link === "up" ? 0 : 1));
    const inetDefault = a.internet_port || (byLink[0] && byLink[0].name);
    const streamDefault = a.streaming_port || (ports.find((p) => p.name !== inetDefault) || {}).name;
    const portLines = (p) => [
      `MAC ${p.mac || "unknown"} · PCI ${p.pci_path || "unknown"}${p.driver ? ` · ${p.driver}` : ""}`,
      `${linkWord(p.link)} · ${fmtSpeed(p.speed_mbps)}`,
    ];
    const group = (role, legend, hint, chosen) =>
      h(
        "fieldset",
        { class: "choices", dataset: { field: `${role}_port`, testid: `ports-${role}` } },
        h("legend", null, legend),
        h("p", { class: "hint" }, hint),
        ports.length
          ? ports.map((p) => radioCard(`${role}_port`, p.name, p.name === chosen, p.name, portLines(p), `port-${role}-${p.name}`))
          : h("p", { class: "note" }, "No network ports were found on this board."),
      );
    const subnet = textInput("streaming_subnet", a.streaming_subnet || defaults.streaming_subnet || "10.0.1.1/24", {
      autocapitalize: "none",
      spellcheck: "false",
    });
    return {
      content: h(
        "div",
        null,
        h("p", null, "This appliance has two network ports. One connects to your router and the internet; the other serves a private network for your TVs and players."),
        group("internet", "Internet port", "Plug this port into your home router.", inetDefault),
        group("streaming", "Streaming port", "Plug your TV, player or a switch for them into this port.", streamDefault),
        field("Streaming network", subnet, "The appliance's address and prefix on the streaming port, a private IPv4 range (for example 10.0.1.1/24)."),
      ),
      collect() {
        const inet = checkedValue(ctx.form, "internet_port");
        const stream = checkedValue(ctx.form, "streaming_port");
        const fields = {};
        if (!inet) fields.internet_port = "Choose the port for the internet.";
        if (!stream) fields.streaming_port = "Choose the port for the streaming network.";
        if (inet && stream && inet === stream) fields.streaming_port = "Choose a different port than the internet port.";
        if (Object.keys(fields).length) throw validationError("Please choose two different ports.", fields);
        return { internet_port: inet, streaming_port: stream, streaming_subnet: subnet.value.trim() };
      },
    };
  },

  storage(ctx) {
    const a = ctx.answers || {};
    const drives = ctx.opts.drives || [];
    const sysDefault = a.system_drive || (drives.find((d) => d.holds_system) || drives[0] || {}).name;
    const mediaDefault = a.system_drive
      ? a.media_drive || ""
      : (drives.find((d) => d.name !== sysDefault) || {}).name || "";
    const driveLines = (d) => [
      `${d.model || "Unknown model"} · serial ${d.serial || "unknown"}`,
      `${fmtDriveSize(d.size_bytes)}${d.holds_system ? " · holds the running system" : ""}`,
    ];
    const sysGroup = h(
      "fieldset",
      { class: "choices", dataset: { field: "system_drive", testid: "drives-system" } },
      h("legend", null, "System drive"),
      h("p", { class: "hint" }, "Holds the operating system and the appliance's database."),
      drives.length
        ? drives.map((d) => radioCard("system_drive", d.name, d.name === sysDefault, d.name, driveLines(d), `drive-system-${d.name}`))
        : h("p", { class: "note" }, "No NVMe drives were found."),
    );
    const mediaGroup = h(
      "fieldset",
      { class: "choices", dataset: { field: "media_drive", testid: "drives-media" } },
      h("legend", null, "Media drive"),
      h("p", { class: "hint" }, "Holds your library, downloads and cache."),
      drives.map((d) => radioCard("media_drive", d.name, d.name === mediaDefault, d.name, driveLines(d), `drive-media-${d.name}`)),
      radioCard("media_drive", "", !mediaDefault, "No media drive", ["Keep media on the system drive for now."], "drive-media-none"),
    );
    const fmt = h("input", { type: "checkbox", name: "format_media", checked: !!a.format_media, dataset: tid("input-format_media") });
    const confirmText = h("code", { class: "confirm-text", dataset: tid("confirm-text") });
    const confirm = textInput("confirm", "", { autocomplete: "off", autocapitalize: "none", spellcheck: "false" });
    const confirmBox = h(
      "div",
      { class: "danger-box", dataset: tid("format-confirm-box"), hidden: true },
      h("p", { class: "danger-title" }, "Everything on this drive will be erased."),
      h("p", null, "Formatting deletes every file and partition on the media drive. To confirm, type exactly:"),
      h("p", null, confirmText),
      field("Type the text above", confirm),
    );
    const fmtRow = h(
      "div",
      { class: "field checkbox-field" },
      h("label", null, fmt, " Format the media drive (erase it and make a fresh file system)"),
    );
    const update = () => {
      const sys = checkedValue(ctx.form, "system_drive");
      for (const r of ctx.form.querySelectorAll('input[name="media_drive"]')) {
        r.disabled = !!r.value && r.value === sys;
        if (r.disabled && r.checked) {
          r.checked = false;
          ctx.form.querySelector('input[name="media_drive"][value=""]').checked = true;
        }
      }
      const media = checkedValue(ctx.form, "media_drive") || "";
      const drive = drives.find((d) => d.name === media);
      fmt.disabled = !drive;
      if (!drive) fmt.checked = false;
      confirmText.textContent = drive ? drive.confirm_text || `${drive.model} ${drive.serial}` : "";
      confirmBox.hidden = !(fmt.checked && drive);
    };
    const content = h(
      "div",
      null,
      h("p", null, "Choose which drive runs the system and which one stores your media."),
      sysGroup,
      mediaGroup,
      fmtRow,
      confirmBox,
    );
    content.addEventListener("change", update);
    queueMicrotask(update);
    return {
      content,
      collect() {
        const sys = checkedValue(ctx.form, "system_drive");
        const media = checkedValue(ctx.form, "media_drive") || null;
        const fields = {};
        if (!sys) fields.system_drive = "Choose the system drive.";
        if (media && media === sys) fields.media_drive = "The media drive must be a different drive than the system drive.";
        if (Object.keys(fields).length) throw validationError("Please check the drive choices.", fields);
        const format = !!(media && fmt.checked);
        return { system_drive: sys, media_drive: media, format_media: format, confirm: format ? confirm.value : "" };
      },
    };
  },

  vpn(ctx) {
    const a = ctx.answers || {};
    const saved = !!((a.wireguard_conf && a.wireguard_conf.set) || a.configured === true);
    const mode0 = saved ? "keep" : "none";
    const modeNone = radioCard("vpn_mode", "none", mode0 === "none", "No VPN", ["Downloads use your internet connection directly. You can add a VPN later."], "vpn-none");
    const modeKeep = saved
      ? radioCard("vpn_mode", "keep", mode0 === "keep", "Keep the saved WireGuard config", [a.summary ? describeValue(a.summary) : "The saved config is kept; its private key is never shown."], "vpn-keep")
      : null;
    const modeNew = radioCard("vpn_mode", "conf", false, saved ? "Use a new WireGuard config" : "Use a WireGuard config", ["Downloads go only through this VPN; if it is down, they stop."], "vpn-conf");
    const conf = h("textarea", {
      name: "wireguard_conf",
      rows: "12",
      spellcheck: "false",
      autocapitalize: "none",
      class: "mono",
      placeholder: "[Interface]\nPrivateKey = …\nAddress = …\n\n[Peer]\nPublicKey = …\nAllowedIPs = 0.0.0.0/0\nEndpoint = …",
      dataset: tid("input-wireguard_conf"),
    });
    const file = h("input", { type: "file", name: "wireguard_file", accept: ".conf,text/plain", dataset: tid("input-wireguard_file") });
    const fileNote = h("p", { class: "hint", role: "status" });
    file.addEventListener("change", async () => {
      const f = file.files && file.files[0];
      if (!f) return;
      if (f.size > 64 * 1024) {
        fileNote.textContent = `${f.name} is too large to be a WireGuard config.`;
        return;
      }
      conf.value = await f.text();
      fileNote.textContent = `Read ${f.name}. The file stays on this device until you press Next.`;
      ctx.form.querySelector('input[name="vpn_mode"][value="conf"]').checked = true;
      update();
    });
    const confBox = h(
      "div",
      { class: "sub-box", dataset: { field: "wireguard_conf" } },
      field("WireGuard config (wg-quick .conf)", conf, "Paste the config from your VPN provider, or read it from a file below."),
      field("…or read a .conf file", file),
      fileNote,
    );
    const update = () => {
      const mode = checkedValue(ctx.form, "vpn_mode");
      confBox.hidden = mode !== "conf";
    };
    const skip = h("button", { type: "button", class: "secondary", dataset: tid("wizard-skip") }, "Skip (no VPN)");
    skip.addEventListener("click", () => {
      ctx.form.querySelector('input[name="vpn_mode"][value="none"]').checked = true;
      update();
      ctx.form.requestSubmit(ctx.next);
    });
    ctx.extraButtons.push(skip);
    const content = h(
      "div",
      null,
      h("p", null, "A VPN keeps your downloads private. The appliance uses WireGuard; your VPN provider gives you a config file."),
      h("fieldset", { class: "choices" }, h("legend", null, "VPN for downloads"), modeNone, modeKeep, modeNew),
      confBox,
    );
    content.addEventListener("change", update);
    queueMicrotask(update);
    return {
      content,
      collect() {
        const mode = checkedValue(ctx.form, "vpn_mode");
        if (mode === "keep") return undefined;
        if (mode === "conf") {
          if (!conf.value.trim()) {
            throw validationError("Paste a WireGuard config or choose No VPN.", { wireguard_conf: "The config is empty." });
          }
          return { wireguard_conf: conf.value };
        }
        return { wireguard_conf: null };
      },
    };
  },

  content(ctx) {
    const a = ctx.answers || {};
    const keySet = !!(a.tmdb_api_key && a.tmdb_api_key.set);
    const key = textInput("tmdb_api_key", "", { autocomplete: "off", spellcheck: "false", autocapitalize: "none" });
    const urls = h("textarea", {
      name: "torznab_urls",
      rows: "5",
      spellcheck: "false",
      autocapitalize: "none",
      class: "mono",
      placeholder: "http://indexer.example/api/v2.0/indexers/all/results/torznab/",
      dataset: tid("input-torznab_urls"),
    });
    urls.value = (a.torznab_urls || []).join("\n");
    return {
      content: h(
        "div",
        null,
        h("p", null, "Both are optional: the appliance works without them and you can add them later in Settings."),
        field(
          "TMDB API key (optional)",
          key,
          keySet
            ? "A key is saved (not shown). Type a new one to replace it; leaving this empty removes it."
            : "Lets the library fetch posters and descriptions from themoviedb.org.",
        ),
        field("Torznab indexer URLs (optional, one per line)", urls, "Each an http:// or https:// address."),
      ),
      collect() {
        const list = urls.value.split(/\r?\n/).map((s) => s.trim()).filter(Boolean);
        return { tmdb_api_key: key.value.trim() || null, torznab_urls: list };
      },
    };
  },

  summary(ctx) {
    const steps = (ctx.wiz.steps || Object.keys(STEP_TITLES)).filter((s) => s !== "summary");
    const all = ctx.wiz.answers || {};
    const sections = steps.map((s) => {
      const ans = all[s];
      const rows = ans && typeof ans === "object" && Object.keys(ans).length
        ? Object.entries(ans).map(([k, v]) =>
            h("div", { class: "kv" }, h("dt", null, humanKey(k)), h("dd", { dataset: tid(`summary-${s}-${k}`) }, describeValue(v))),
          )
        : [h("div", { class: "kv" }, h("dt", null, "Answer"), h("dd", null, s === "vpn" ? "No VPN" : "Nothing entered"))];
      return h(
        "section",
        { class: "summary-section", dataset: tid(`summary-${s}`) },
        h("div", { class: "summary-head" }, h("h2", null, STEP_TITLES[s] || humanKey(s)), h("a", { href: `#/wizard/${s}` }, "Change")),
        h("dl", null, rows),
      );
    });
    return {
      content: h(
        "div",
        null,
        h("p", null, "Check your answers. Apply saves them and configures what this build can configure."),
        sections,
      ),
      collect: () => ({}),
    };
  },
};

function resultWord(status) {
  return { applied: "Applied", stored: "Saved for later", failed: "Failed" }[status] || humanKey(status || "unknown");
}

function renderResults() {
  const res = app.results || { results: [] };
  const items = (res.results || []).map((r) => {
    const extra = r.status === "stored"
      ? h(
          "p",
          { class: "stored-note" },
          `Saved, will be applied when ${managerName(r.item)} is available in a later version.`,
        )
      : null;
    return h(
      "li",
      { class: `result result-${r.status}`, dataset: { testid: "result-item", status: r.status || "" } },
      h("div", { class: "result-head" }, h("span", { class: `badge badge-result-${r.status}` }, resultWord(r.status)), h("strong", null, r.item)),
      h("p", { class: "result-detail" }, r.detail || ""),
      extra,
    );
  });
  const failed = (res.results || []).filter((r) => r.status === "failed").length;
  const button = h("button", { type: "button", class: "primary", dataset: tid("wizard-open-panel") }, "Open the control panel");
  button.addEventListener("click", async () => {
    busy(button, true);
    try {
      await refreshSession();
    } catch (err) {
      // fall through: render() shows login if needed
    }
    app.results = null;
    busy(button, false);
    go(app.session && app.session.authenticated ? "#/home" : "#/login");
  });
  setMain(
    h(
      "section",
      { class: "page page-results", dataset: tid("wizard-results") },
      h(
        "div",
        { class: "card" },
        h("h1", { tabindex: "-1" }, "Setup is complete"),
        h(
          "p",
          null,
          failed
            ? `${failed} item${failed > 1 ? "s" : ""} could not be applied; the details say why. You can fix them in the control panel.`
            : "Here is what was done with your answers.",
        ),
        h("ul", { class: "results" }, items),
        h("div", { class: "actions" }, button),
      ),
    ),
  );
}

function managerName(item) {
  const s = String(item || "").toLowerCase();
  if (s.includes("network") || s.includes("port")) return "the network manager";
  if (s.includes("storage") || s.includes("drive")) return "the storage manager";
  if (s.includes("vpn") || s.includes("wireguard")) return "the VPN manager";
  if (s.includes("content") || s.includes("tmdb") || s.includes("torznab") || s.includes("library")) return "the library manager";
  if (s.includes("host") || s.includes("time") || s.includes("system")) return "the system manager";
  return `the manager for "${item}"`;
}

// ---------------------------------------------------------------- live updates (WebSocket)

function setLive(state) {
  const live = document.getElementById("live");
  const text = document.getElementById("live-text");
  live.dataset.state = state;
  text.textContent = { on: "Live", connecting: "Connecting…", off: "Offline" }[state] || state;
}

function startLive() {
  app.wsWanted = true;
  if (app.ws || app.wsTimer) return;
  connectLive();
}

function stopLive() {
  app.wsWanted = false;
  if (app.wsTimer) {
    clearTimeout(app.wsTimer);
    app.wsTimer = 0;
  }
  if (app.ws) {
    const ws = app.ws;
    app.ws = null;
    ws.close(1000);
  }
  setLive("off");
}

function connectLive() {
  app.wsTimer = 0;
  if (!app.wsWanted) return;
  setLive("connecting");
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/api/ws`);
  app.ws = ws;
  let opened = false;
  ws.addEventListener("open", () => {
    opened = true;
    app.wsBackoff = 1000;
    setLive("on");
  });
  ws.addEventListener("message", (ev) => {
    let msg;
    try {
      msg = JSON.parse(ev.data);
    } catch (err) {
      return;
    }
    if (msg.type === "system" && msg.data && msg.data.hostname) {
      document.getElementById("brand-host").textContent = msg.data.hostname;
    }
    for (const fn of app.listeners) {
      try {
        fn(msg);
      } catch (err) {
        // A page's handler must not break the stream for the others.
      }
    }
    castLive(msg);
  });
  ws.addEventListener("close", () => {
    if (app.ws !== ws) return;
    app.ws = null;
    if (!app.wsWanted) return;
    setLive("off");
    const delay = app.wsBackoff;
    app.wsBackoff = Math.min(app.wsBackoff * 2, 30000);
    app.wsTimer = setTimeout(async () => {
      app.wsTimer = 0;
      if (!opened) {
        // Refused: maybe the session ended (the server answers 401 to the upgrade).
        try {
          const sess = await refreshSession();
          if (!sess.authenticated) {
            onUnauthenticated();
            return;
          }
        } catch (err) {
          // The appliance is away: keep trying.
        }
      }
      connectLive();
    }, delay);
  });
}

function onLive(fn) {
  app.listeners.add(fn);
}

// ---------------------------------------------------------------- panel pages

async function loadPage(seq, title, path, build) {
  const section = h("section", { class: "page", dataset: tid(`page-${title.toLowerCase()}`) }, pageHeader(title), h("p", { class: "loading" }, "Loading…"));
  setMain(section);
  let data;
  try {
    data = await api("GET", path);
  } catch (err) {
    if (stale(seq) || err.status === 401) return;
    section.replaceChildren(pageHeader(title), errorPanel(err, () => render()));
    return;
  }
  if (stale(seq)) return;
  section.replaceChildren(pageHeader(title), ...[build(data, section)].flat().filter(Boolean));
  section.dataset.loaded = "true";
}

function fmtEta(sec) {
  if (sec === null || sec === undefined) return "—";
  if (sec <= 0) return "done";
  return fmtUptime(sec < 60 ? 60 : sec);
}

/** The downloads table; it follows the engine's samples (WebSocket, every second): cells are
 * updated in place, and the rows are rebuilt only when a download appears, goes, pauses,
 * resumes or becomes playable (so a button is never replaced under the pointer needlessly). */
function downloadsTable(list, d, ui) {
  const rate = (b) => (b ? `${fmtBytes(b)}/s` : "—");
  const paused = (t) => t.state === "paused" || t.paused === true;
  const cells = (t) => {
    const pct = t.progress === undefined || t.progress === null ? null : Number(t.progress) * 100;
    return {
      progress: pct === null ? "—" : [h("meter", { min: "0", max: "100", value: String(pct) }), ` ${pct.toFixed(pct < 10 && pct > 0 ? 1 : 0)} %`],
      state: t.error ? `Error: ${t.error}` : humanKey(t.state || "—"),
      down: rate(t.download_rate),
      up: rate(t.upload_rate),
      peers: String(t.peers ?? "—"),
      eta: fmtEta(t.eta),
      size: fmtBytes(t.size),
    };
  };
  const keys = ["progress", "state", "down", "up", "peers", "eta", "size"];
  const row = (t) => {
    const c = cells(t);
    return h(
      "tr",
      { dataset: { testid: "download-row", id: t.id } },
      h("th", { scope: "row" }, t.name || "—"),
      keys.map((k) => h("td", { dataset: { cell: k, testid: `download-${k}` } }, c[k])),
      h("td", { class: "row-actions" }, t.playable ? ui.playNow(t) : null, t.playable ? castDownloadButton(t) : null, paused(t) ? ui.act(t, "resume", "Resume") : ui.act(t, "pause", "Pause"), ui.act(t, "remove", "Remove", { delete_files: false })),
    );
  };
  const shape = (ts) => ts.map((t) => `${t.id}:${paused(t)}:${!!t.playable}:${t.name}`).join("|");
  const rows = (ts) => (ts.length ? ts.map(row) : [emptyRow(9, "No downloads. " + emptyReason(d))]);
  const caption = (n) => `${n} download${n === 1 ? "" : "s"}`;
  const wrap = table(caption(list.length), ["Name", "Progress", "State", "Down", "Up", "Peers", "Time left", "Size", ""], rows(list), "downloads-table");
  const tbody = wrap.querySelector("tbody");
  const cap = wrap.querySelector("caption");
  let current = shape(list);
  onLive((msg) => {
    if (msg.type !== "event" || !msg.data || msg.data.name !== "downloads" || !wrap.isConnected) return;
    const ts = msg.data.torrents || [];
    const next = shape(ts);
    if (next !== current) {
      tbody.replaceChildren(...rows(ts));
      cap.textContent = caption(ts.length);
      current = next;
    } else {
      for (const t of ts) {
        const tr = tbody.querySelector(`tr[data-id="${CSS.escape(t.id)}"]`);
        if (!tr) continue;
        const c = cells(t);
        for (const k of keys) {
          const td = tr.querySelector(`td[data-cell="${k}"]`);
          if (td) td.replaceChildren(...[c[k]].flat());
        }
      }
    }
    const el = wrap.querySelector("table");
    el.dataset.liveUpdates = String(Number(el.dataset.liveUpdates || "0") + 1);
  });
  return wrap;
}

const LIBRARY_PAGE = 60;

function libraryLabel(it) {
  return it.kind === "episode" && it.show_title ? `${it.show_title} S${String(it.season ?? 0).padStart(2, "0")}E${String(it.episode ?? 0).padStart(2, "0")}${it.episode_title ? ` · ${it.episode_title}` : ""}` : it.display_title || it.title || it.file_name || "—";
}

function fmtRuntime(sec) {
  if (!sec) return null;
  const min = Math.round(Number(sec) / 60);
  if (min < 1) return `${Math.max(1, Math.round(Number(sec)))} s`;
  return min >= 60 ? `${Math.floor(min / 60)} h ${String(min % 60).padStart(2, "0")} min` : `${min} min`;
}

/** A tidy stand-in for a missing poster: the title's initials on a colour from its name. */
function posterPlaceholder(title) {
  const words = String(title || "?").replace(/[^\p{L}\p{N}\s]/gu, " ").split(/\s+/).filter(Boolean);
  const first = (w) => Array.from(w)[0] || "";
  const initials = (words.length > 1 ? first(words[0]) + first(words[1]) : Array.from(words[0] || "?").slice(0, 2).join("")).toUpperCase();
  let hash = 0;
  for (const c of String(title || "")) hash = (hash * 31 + c.codePointAt(0)) >>> 0;
  return h("div", { class: `poster-placeholder tone-${hash % 6}`, role: "img", "aria-label": `No poster for ${title}`, dataset: tid("library-placeholder") }, h("span", { "aria-hidden": "true" }, initials));
}

function libraryCard(it) {
  const episode = it.kind === "episode" && it.show_title;
  const name = episode ? it.show_title : it.title || it.file_name || "—";
  const code = episode ? `S${String(it.season ?? 0).padStart(2, "0")}E${String(it.episode ?? 0).padStart(2, "0")}` : null;
  const meta = [episode ? code : it.year, episode ? it.episode_title : null, fmtRuntime(it.duration)].filter((x) => x !== null && x !== undefined && x !== "");
  const label = libraryLabel(it);
  const frame = h("div", { class: "poster-frame" });
  if (it.poster) {
    const img = h("img", { src: it.poster, alt: `Poster of ${name}`, loading: "lazy", decoding: "async", width: "342", height: "513", dataset: tid("library-poster") });
    img.addEventListener("error", () => img.replaceWith(posterPlaceholder(name)), { once: true });
    frame.append(img);
  } else {
    frame.append(posterPlaceholder(name));
  }
  return h(
    "li",
    { class: "poster-card", dataset: { testid: "library-row", id: it.id, kind: it.kind || "" } },
    frame,
    h(
      "div",
      { class: "poster-body" },
      h("h3", { class: "poster-title", title: label }, name),
      meta.length ? h("p", { class: "poster-meta" }, meta.join(" · ")) : null,
      it.overview ? h("p", { class: "poster-overview", title: it.overview }, it.overview) : null,
      h(
        "div",
        { class: "poster-actions" },
        h("a", { href: `/stream/${encodeURIComponent(it.id)}`, target: "_blank", rel: "noopener", class: "button-link primary", "aria-label": `Play ${label}`, dataset: tid("library-play") }, "Play"),
        // a TV stopped here (its resume bookmark): the browser starts there (#t= media fragment)
        it.resume_seconds > 0
          ? h("a", { href: `/stream/${encodeURIComponent(it.id)}#t=${it.resume_seconds}`, target: "_blank", rel: "noopener", class: "button-link", "aria-label": `Resume ${label} at ${fmtClock(it.resume_seconds)}`, title: "Where playback on a TV stopped", dataset: tid("library-resume") }, `Resume ${fmtClock(it.resume_seconds)}`)
          : null,
        castButton(it.id, label),
      ),
    ),
  );
}

const PAGE_RENDERERS = {
  home(seq) {
    return loadPage(seq, "Home", "/api/overview", (ov) => {
      document.getElementById("brand-host").textContent = ov.hostname || "";
      // The supervisor's own uptime (the System page shows the machine's): counted on here.
      const uptime = h("dd", { dataset: tid("overview-uptime") }, fmtUptime(ov.uptime_seconds));
      const t0 = performance.now();
      const tick = setInterval(() => {
        if (stale(seq) || !uptime.isConnected) {
          clearInterval(tick);
          return;
        }
        uptime.textContent = fmtUptime(Number(ov.uptime_seconds) + (performance.now() - t0) / 1000);
      }, 1000);
      const cards = (ov.subsystems || []).map((s) =>
        h(
          "article",
          { class: `sub-card state-${s.state}`, dataset: { testid: `subsystem-${s.name}`, state: s.state || "" } },
          h("div", { class: "sub-head" }, h("h2", null, s.title || humanKey(s.name)), stateBadge(s.state)),
          h("p", { class: "sub-detail" }, s.detail || ""),
        ),
      );
      return [
        h(
          "dl",
          { class: "facts", dataset: tid("overview-facts") },
          h("div", { class: "kv" }, h("dt", null, "Host name"), h("dd", { dataset: tid("overview-hostname") }, ov.hostname || "—")),
          h("div", { class: "kv" }, h("dt", null, "Board"), h("dd", null, ov.board || "—")),
          h("div", { class: "kv" }, h("dt", null, "Version"), h("dd", { dataset: tid("overview-version") }, ov.version || "—")),
          h("div", { class: "kv" }, h("dt", null, "Supervisor running for"), uptime),
        ),
        h("h2", { class: "section-title" }, "Subsystems"),
        cards.length ? h("div", { class: "cards", dataset: tid("subsystems") }, cards) : h("p", { class: "muted" }, "The appliance reported no subsystems."),
      ];
    });
  },

  library(seq) {
    const params = new URLSearchParams((location.hash.split("?")[1]) || "");
    const q = params.get("q") || "";
    const kind = params.get("kind") || "";
    const offset = Math.max(0, Number.parseInt(params.get("offset") || "0", 10) || 0);
    const query = new URLSearchParams();
    if (q) query.set("q", q);
    if (kind) query.set("kind", kind);
    if (offset) query.set("offset", String(offset));
    query.set("limit", String(LIBRARY_PAGE));
    return loadPage(seq, "Library", `/api/library?${query}`, (d) => {
      const items = d.items || [];
      const total = d.total ?? items.length;
      const search = h("input", { type: "search", name: "q", value: q, placeholder: "Search titles", "aria-label": "Search titles", dataset: tid("library-search") });
      const kinds = h("select", { name: "kind", "aria-label": "Kind", dataset: tid("library-kind") }, h("option", { value: "" }, "Everything"), h("option", { value: "movie" }, "Movies"), h("option", { value: "episode" }, "Episodes"), h("option", { value: "other" }, "Other"));
      kinds.value = kind;
      const form = h("form", { class: "filters", role: "search", dataset: tid("library-filters") }, search, kinds, h("button", { type: "submit" }, "Search"));
      const link = (off) => {
        const next = new URLSearchParams();
        if (q) next.set("q", q);
        if (kind) next.set("kind", kind);
        if (off) next.set("offset", String(off));
        return `#/library${next.toString() ? `?${next}` : ""}`;
      };
      form.addEventListener("submit", (ev) => {
        ev.preventDefault();
        const next = new URLSearchParams();
        if (search.value.trim()) next.set("q", search.value.trim());
        if (kinds.value) next.set("kind", kinds.value);
        go(`#/library${next.toString() ? `?${next}` : ""}`);
      });
      kinds.addEventListener("change", () => form.requestSubmit());
      const tmdb = (d.library && d.library.tmdb) || null;
      const shown = items.length ? `${offset + 1}–${offset + items.length} of ` : "";
      const summary = `${shown}${total} item${total === 1 ? "" : "s"}${q ? ` matching “${q}”` : " in the library"}`;
      const pager =
        total > LIBRARY_PAGE
          ? h(
              "nav",
              { class: "pager", "aria-label": "Library pages" },
              offset > 0 ? h("a", { href: link(Math.max(0, offset - LIBRARY_PAGE)), class: "button-link", dataset: tid("library-prev") }, "‹ Previous") : null,
              offset + items.length < total ? h("a", { href: link(offset + LIBRARY_PAGE), class: "button-link", dataset: tid("library-next") }, "Next ›") : null,
            )
          : null;
      return [
        stateLine(d),
        form,
        tmdb && tmdb.state === "error" ? h("p", { class: "hint tmdb-note", dataset: tid("library-tmdb") }, tmdb.detail) : null,
        h("p", { class: "library-summary", role: "status", dataset: tid("library-summary") }, summary),
        items.length
          ? h("ul", { class: "poster-grid", "aria-label": summary, dataset: tid("library-grid") }, items.map(libraryCard))
          : h("p", { class: "library-empty", dataset: tid("library-empty") }, "No items. " + emptyReason(d)),
        pager,
      ];
    });
  },

  downloads(seq) {
    return loadPage(seq, "Downloads", "/api/downloads", (d) => {
      const list = d.torrents || [];
      const act = (t, action, label, body) => {
        const b = h("button", { type: "button", dataset: { testid: `download-${action}`, id: t.id } }, label);
        b.addEventListener("click", async () => {
          busy(b, true);
          try {
            await api("POST", `/api/downloads/${encodeURIComponent(t.id)}/${action}`, body);
          } finally {
            render();
          }
        });
        return b;
      };
      // add: a magnet link, or a .torrent file read here and sent as base64
      const magnet = textInput("magnet", "", { placeholder: "magnet:?xt=urn:btih:…", autocomplete: "off", spellcheck: "false", dataset: { field: "magnet", testid: "input-magnet" } });
      const file = h("input", { type: "file", name: "torrent", accept: ".torrent,application/x-bittorrent", dataset: { field: "torrent", testid: "input-torrent-file" } });
      const submit = h("button", { type: "submit", class: "primary", dataset: tid("download-add") }, "Add");
      const form = h("form", { class: "card wide", novalidate: true, dataset: tid("download-form") }, h("h2", null, "Add a download"), field("Magnet link", magnet), field(".torrent file", file), h("div", { class: "actions" }, submit));
      const errors = formErrors(form);
      form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        errors.clear();
        busy(submit, true);
        try {
          let body;
          if (file.files && file.files[0]) {
            const bytes = new Uint8Array(await file.files[0].arrayBuffer());
            let bin = "";
            for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
            body = { torrent: btoa(bin) };
          } else {
            body = { magnet: magnet.value.trim() };
          }
          await api("POST", "/api/downloads", body);
          render();
        } catch (err) {
          errors.show(err);
        } finally {
          busy(submit, false);
        }
      });
      // "Play now": the engine opens the file (header, footer, prebuffer first) and the
      // streamer serves it at /stream/dl-… while it downloads; the <video> plays from there
      const player = h("div", { class: "card wide", hidden: true, dataset: tid("download-player") });
      const playNow = (t) => {
        const b = h("button", { type: "button", class: "primary", dataset: { testid: "download-play", id: t.id } }, "Play now");
        b.addEventListener("click", async () => {
          busy(b, true);
          try {
            const res = await api("POST", `/api/downloads/${encodeURIComponent(t.id)}/play`, {});
            const video = h("video", { controls: true, autoplay: true, muted: true, preload: "auto", src: res.stream, dataset: tid("download-video") });
            const link = h("a", { href: res.stream, target: "_blank", rel: "noopener", dataset: tid("download-stream-link") }, "Open the stream in a new tab");
            player.replaceChildren(h("h2", null, `Playing ${res.name}`), video, h("p", { class: "hint" }, "It plays while it downloads; a part that has not arrived yet makes the player wait. ", link));
            player.hidden = false;
            player.scrollIntoView({ block: "nearest" });
          } catch (err) {
            player.replaceChildren(h("p", { class: "error", role: "alert", dataset: tid("download-play-error") }, err.message || String(err)));
            player.hidden = false;
          } finally {
            busy(b, false);
          }
        });
        return b;
      };
      return [
        stateLine(d),
        player,
        form,
        downloadsTable(list, d, { act, playNow }),
      ];
    });
  },

  devices(seq) {
    return loadPage(seq, "Devices", "/api/devices", (d) => {
      const r = d.renderers || [];
      const c = d.chromecasts || [];
      const sub = (title, x, name) =>
        x && x.state
          ? h("div", { class: "state-line", dataset: tid(`state-${name}`) }, h("strong", null, `${title}:`), stateBadge(x.state), h("span", { class: "state-detail" }, x.detail || ""))
          : null;
      return [
        stateLine(d),
        sub("DLNA server", d.dlna, "dlna"),
        sub("Casting", d.cast, "cast"),
        table(
          `TVs and players using the library (${r.length})`,
          ["Name", "Address", "Last seen", "Requests", "Client"],
          r.length
            ? r.map((x) =>
                h(
                  "tr",
                  { dataset: tid("renderer-row") },
                  h("th", { scope: "row" }, x.name || "—"),
                  h("td", { class: "mono" }, x.address || "—"),
                  h("td", null, x.last_seen ? new Date(x.last_seen * 1000).toLocaleString() : "—"),
                  h("td", null, String(x.requests ?? "—")),
                  h("td", { class: "mono small" }, x.user_agent || "—"),
                ),
              )
            : [emptyRow(5, "No TV has browsed the library yet. On the TV, open its media or source list: the appliance shows up there by its host name.")],
          "renderers-table",
        ),
        castDevicesTable(c, d),
      ];
    });
  },

  network(seq) {
    return loadPage(seq, "Network", "/api/network", (d) => {
      const ports = d.ports || [];
      const plan = d.plan;
      return [
        stateLine(d),
        table(
          "Network ports",
          ["Port", "Role", "MAC", "PCI path", "Driver", "Link", "Speed", "Addresses"],
          ports.length
            ? ports.map((p) =>
                h(
                  "tr",
                  { dataset: { testid: "port-row", name: p.name } },
                  h("th", { scope: "row" }, p.name),
                  h("td", null, p.role ? humanKey(p.role) : "No role"),
                  h("td", { class: "mono" }, p.mac || "—"),
                  h("td", { class: "mono" }, p.pci_path || "—"),
                  h("td", null, p.driver || "—"),
                  h("td", null, h("span", { class: `link link-${p.link || "unknown"}` }, linkWord(p.link))),
                  h("td", null, p.speed_mbps ? fmtSpeed(p.speed_mbps) : "—"),
                  h("td", { class: "mono" }, (p.addresses || []).join(", ") || "—"),
                ),
              )
            : [emptyRow(8, "No network ports were found.")],
          "ports-table",
        ),
        h("h2", { class: "section-title" }, "Plan"),
        plan
          ? h(
              "dl",
              { class: "facts", dataset: tid("network-plan") },
              h("div", { class: "kv" }, h("dt", null, "Internet port"), h("dd", null, plan.internet_port || "—")),
              h("div", { class: "kv" }, h("dt", null, "Streaming port"), h("dd", null, plan.streaming_port || "—")),
              h("div", { class: "kv" }, h("dt", null, "Streaming network"), h("dd", { class: "mono" }, plan.streaming_subnet || "—")),
            )
          : h("p", { class: "muted", dataset: tid("network-plan") }, "No network plan is saved."),
        networkManagerBlocks(d.manager || {}),
        portRolesForm(ports, plan || {}),
        vpnBlock(d.vpn),
      ];
    });
  },

  storage(seq) {
    return loadPage(seq, "Storage", "/api/storage", (d) => {
      const drives = d.drives || [];
      const fss = d.filesystems || [];
      const plan = d.plan;
      return [
        stateLine(d),
        table(
          "Drives",
          ["Drive", "Role", "Model", "Serial", "Size", "System"],
          drives.length
            ? drives.map((x) =>
                h(
                  "tr",
                  { dataset: { testid: "drive-row", name: x.name } },
                  h("th", { scope: "row" }, x.name),
                  h("td", null, x.role ? humanKey(x.role) : "No role"),
                  h("td", null, x.model || "—"),
                  h("td", { class: "mono" }, x.serial || "—"),
                  h("td", null, fmtDriveSize(x.size_bytes)),
                  h("td", null, x.holds_system ? "Holds the running system" : ""),
                ),
              )
            : [emptyRow(6, "No drives were found.")],
          "drives-table",
        ),
        h("h2", { class: "section-title" }, "File systems"),
        fss.length
          ? h(
              "ul",
              { class: "usage-list", dataset: tid("filesystems") },
              fss.map((f) => {
                const used = Math.max(0, Number(f.size_bytes || 0) - Number(f.free_bytes || 0));
                const pct = f.size_bytes ? (used / f.size_bytes) * 100 : 0;
                return h(
                  "li",
                  { class: "usage", dataset: { testid: "fs-row", mount: f.mount } },
                  h("div", { class: "usage-head" }, h("strong", { class: "mono" }, f.mount), h("span", null, `${fmtBytes(used)} used of ${fmtBytes(f.size_bytes)} · ${fmtBytes(f.free_bytes)} free`)),
                  h("meter", { min: "0", max: "100", low: "75", high: "90", optimum: "0", value: pct.toFixed(1), "aria-label": `${f.mount} ${pct.toFixed(0)} % used` }),
                );
              }),
            )
          : h("p", { class: "muted" }, "No file systems reported."),
        h("h2", { class: "section-title" }, "Plan"),
        plan
          ? h(
              "dl",
              { class: "facts", dataset: tid("storage-plan") },
              h("div", { class: "kv" }, h("dt", null, "System drive"), h("dd", null, plan.system_drive || "—")),
              h("div", { class: "kv" }, h("dt", null, "Media drive"), h("dd", null, plan.media_drive || "None")),
              h("div", { class: "kv" }, h("dt", null, "Format media drive"), h("dd", null, plan.format_media ? "Yes" : "No")),
            )
          : h("p", { class: "muted", dataset: tid("storage-plan") }, "No storage plan is saved."),
        storageManagerBlocks(d.manager || {}, drives),
      ];
    });
  },

  system(seq) {
    return loadPage(seq, "System", "/api/system", (d, section) => {
      const body = h("div", { class: "system-body" });
      const fill = (s) => body.replaceChildren(...systemBlocks(s));
      fill(d);
      onLive((msg) => {
        if (msg.type === "system" && msg.data) {
          fill(msg.data);
          section.dataset.liveUpdates = String(Number(section.dataset.liveUpdates || "0") + 1);
        }
      });
      return body;
    });
  },

  logs(seq) {
    return loadPage(seq, "Logs", "/api/logs?lines=200", (d) => {
      const level = h(
        "select",
        { name: "level", dataset: tid("log-level") },
        h("option", { value: "" }, "All levels"),
        LOG_LEVELS.map((l) => h("option", { value: l }, `${humanKey(l.toLowerCase())} and above`)),
      );
      const follow = h("input", { type: "checkbox", name: "follow", checked: true, dataset: tid("log-follow") });
      const list = h("ol", { class: "log-lines", role: "log", "aria-live": "off", dataset: tid("log-lines") });
      const box = h("div", { class: "log-box", tabindex: "0", "aria-label": "Log lines" }, list);
      const count = h("span", { class: "muted", dataset: tid("log-count") });
      const minIdx = () => (level.value ? LOG_LEVELS.indexOf(level.value) : -1);
      const visible = (line) => {
        const i = LOG_LEVELS.indexOf(String(line.level || "").toUpperCase());
        return minIdx() < 0 || i < 0 || i >= minIdx();
      };
      const lineEl = (line) =>
        h(
          "li",
          { class: `log-line level-${String(line.level || "").toLowerCase()}`, dataset: { testid: "log-line", level: String(line.level || "").toUpperCase() }, hidden: !visible(line) },
          h("span", { class: "log-ts" }, fmtTime(line.ts)),
          " ",
          h("span", { class: "log-level" }, line.level || ""),
          " ",
          h("span", { class: "log-logger" }, line.logger || ""),
          " ",
          h("span", { class: "log-msg" }, line.message || ""),
        );
      const lines = [...(d.lines || [])];
      const updateCount = () => {
        const shown = list.querySelectorAll("li:not([hidden])").length;
        count.textContent = `${shown} of ${lines.length} lines shown`;
      };
      const scroll = () => {
        if (follow.checked) box.scrollTop = box.scrollHeight;
      };
      list.append(...lines.map(lineEl));
      level.addEventListener("change", () => {
        for (const [i, li] of [...list.children].entries()) li.hidden = !visible(lines[i]);
        updateCount();
        scroll();
      });
      follow.addEventListener("change", scroll);
      onLive((msg) => {
        if (msg.type !== "log" || !msg.data) return;
        lines.push(msg.data);
        list.append(lineEl(msg.data));
        while (lines.length > 2000) {
          lines.shift();
          list.firstElementChild.remove();
        }
        updateCount();
        scroll();
      });
      updateCount();
      queueMicrotask(scroll);
      return [
        h(
          "div",
          { class: "toolbar" },
          field("Show", level),
          h("div", { class: "field checkbox-field" }, h("label", null, follow, " Follow new lines")),
          count,
        ),
        lines.length ? null : h("p", { class: "muted", dataset: tid("log-empty") }, "No log lines yet; new ones appear here as they are written."),
        box,
      ];
    });
  },

  settings(seq) {
    return loadPage(seq, "Settings", "/api/settings", (s) => settingsForms(s));
  },
};

function emptyReason(d) {
  if (!d || d.state === "ok") return "";
  return d.detail || STATE_WORDS[d.state] || "";
}

function systemBlocks(s) {
  const mem = s.memory || {};
  const used = mem.total_bytes ? mem.total_bytes - (mem.available_bytes || 0) : null;
  const la = s.load_average || [];
  const clusters = s.clusters || [];
  const zones = s.thermal_zones || [];
  const fans = s.fans || [];
  return [
    stateLine(s),
    h(
      "dl",
      { class: "facts", dataset: tid("system-facts") },
      h("div", { class: "kv" }, h("dt", null, "Board"), h("dd", null, s.board || "—")),
      h("div", { class: "kv" }, h("dt", null, "Host name"), h("dd", null, s.hostname || "—")),
      h("div", { class: "kv" }, h("dt", null, "Machine up for"), h("dd", { dataset: tid("system-uptime") }, fmtUptime(s.uptime_seconds))),
      h("div", { class: "kv" }, h("dt", null, "Load average"), h("dd", { dataset: tid("system-load") }, la.length ? la.map((x) => Number(x).toFixed(2)).join(" · ") : "—")),
      h(
        "div",
        { class: "kv" },
        h("dt", null, "Memory"),
        h(
          "dd",
          { dataset: tid("system-memory") },
          used === null
            ? "—"
            : [
                `${fmtBytes(used)} used of ${fmtBytes(mem.total_bytes)}`,
                h("meter", { min: "0", max: String(mem.total_bytes), value: String(used), high: String(mem.total_bytes * 0.9), "aria-label": "Memory used" }),
              ],
        ),
      ),
    ),
    table(
      "CPU clusters",
      ["Core", "CPUs", "Capacity", "Max frequency", "Current", "Load"],
      clusters.length
        ? clusters.map((c) =>
            h(
              "tr",
              { dataset: { testid: "cluster-row", core: c.core || "", cpus: (c.cpus || []).join(",") } },
              h("th", { scope: "row" }, c.core || "unknown core"),
              h("td", { class: "mono" }, cpuList(c.cpus || [])),
              h("td", null, c.capacity === undefined || c.capacity === null ? "—" : `${c.capacity} / 1024`),
              h("td", null, fmtKhz(c.max_khz)),
              h("td", null, fmtKhz(c.cur_khz)),
              h(
                "td",
                null,
                c.load_percent === null || c.load_percent === undefined
                  ? "—"
                  : [h("meter", { min: "0", max: "100", value: String(c.load_percent), "aria-label": `${c.core} load` }), ` ${Number(c.load_percent).toFixed(0)} %`],
              ),
            ),
          )
        : [emptyRow(6, "No CPU clusters reported.")],
      "clusters-table",
    ),
    thermalBlock(s.thermal),
    slicesBlock(s.slices),
    table(
      "Thermal zones",
      ["Zone", "Type", "Temperature"],
      zones.length
        ? zones.map((z) =>
            h("tr", { dataset: tid("zone-row") }, h("th", { scope: "row" }, z.name || "—"), h("td", null, z.type || "—"), h("td", null, z.temp_c === null || z.temp_c === undefined ? "—" : `${Number(z.temp_c).toFixed(1)} °C`)),
          )
        : [emptyRow(3, "No thermal zones reported.")],
      "zones-table",
    ),
    table(
      "Fans",
      ["Fan", "Mode", "Speed"],
      fans.length
        ? fans.map((f) =>
            h("tr", { dataset: tid("fan-row") }, h("th", { scope: "row" }, f.name || "—"), h("td", null, f.mode ? humanKey(f.mode) : "Unknown"), h("td", null, f.rpm === null || f.rpm === undefined ? "—" : `${f.rpm} rpm`)),
          )
        : [emptyRow(3, "No fans reported.")],
      "fans-table",
    ),
  ];
}

/** The network manager: the change on trial (countdown, keep/undo), firewall rules, the
 * internet port's mode, and the files it renders. */
function networkManagerBlocks(m) {
  const change = m.change || {};
  const pending = change.pending;
  const blocks = [];
  if (pending) {
    const left = h("strong", { dataset: tid("change-countdown") }, `${Math.max(0, Math.round(pending.seconds_left || 0))} s`);
    const deadline = Date.now() + (pending.seconds_left || 0) * 1000;
    const timer = setInterval(() => {
      if (!left.isConnected) return clearInterval(timer);
      left.textContent = `${Math.max(0, Math.round((deadline - Date.now()) / 1000))} s`;
    }, 1000);
    const keep = h("button", { type: "button", class: "primary", dataset: tid("change-confirm") }, "Keep this change");
    const undo = h("button", { type: "button", dataset: tid("change-revert") }, "Undo now");
    const act = (path) => async () => {
      busy(keep, true);
      busy(undo, true);
      try {
        await api("POST", `/api/network/changes/${encodeURIComponent(pending.id)}/${path}`);
      } finally {
        render();
      }
    };
    keep.addEventListener("click", act("confirm"));
    undo.addEventListener("click", act("revert"));
    blocks.push(
      h(
        "div",
        { class: "card wide danger-box", role: "alert", dataset: tid("change-pending") },
        h("p", null, "A network change is on trial. It is undone automatically in ", left, " unless you keep it — so a wrong setting never locks you out."),
        h("div", { class: "actions" }, undo, keep),
      ),
    );
  } else if (change.last) {
    blocks.push(h("p", { class: "hint", dataset: tid("change-last") }, `Last change: ${humanKey(change.last.result || "")}. ${change.last.detail || ""}`));
  }
  const rules = (m.firewall && m.firewall.rules) || [];
  const yes = (b) => (b ? "Allowed" : "Blocked");
  blocks.push(
    table(
      "Firewall",
      ["Service", "Ports", "From the internet side", "From the streaming network", "Note"],
      rules.length
        ? rules.map((r) => h("tr", { dataset: tid("rule-row") }, h("th", { scope: "row" }, r.service), h("td", { class: "mono" }, r.ports), h("td", null, yes(r.internet)), h("td", null, yes(r.streaming)), h("td", null, r.note || "")))
        : [emptyRow(5, "No firewall rules yet: choose the ports' roles first.")],
      "rules-table",
    ),
  );
  // the internet port: DHCP or static, applied on trial
  const cfg = m.config || {};
  const mode = h("select", { name: "network.internet_mode", dataset: { field: "network.internet_mode", testid: "input-internet-mode" } }, h("option", { value: "dhcp" }, "Automatic (DHCP)"), h("option", { value: "static" }, "Static address"));
  mode.value = cfg.internet_mode || "dhcp";
  const addr = textInput("network.internet_address", cfg.internet_address || "", { placeholder: "192.168.1.20/24", dataset: { field: "network.internet_address", testid: "input-internet-address" } });
  const gw = textInput("network.internet_gateway", cfg.internet_gateway || "", { placeholder: "192.168.1.1", dataset: { field: "network.internet_gateway", testid: "input-internet-gateway" } });
  const submit = h("button", { type: "submit", class: "primary", dataset: tid("internet-apply") }, "Apply on trial");
  const form = h(
    "form",
    { class: "card wide", novalidate: true, dataset: tid("internet-form") },
    h("h2", null, "Internet port"),
    h("p", { class: "hint" }, "Changes apply at once and are undone after 90 seconds unless you keep them."),
    field("Address", mode),
    field("Static address with prefix", addr),
    field("Gateway", gw),
    h("div", { class: "actions" }, submit),
  );
  const errors = formErrors(form);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    errors.clear();
    busy(submit, true);
    const changes = { "network.internet_mode": mode.value };
    if (mode.value === "static") {
      changes["network.internet_address"] = addr.value.trim();
      changes["network.internet_gateway"] = gw.value.trim() || null;
    }
    try {
      await api("POST", "/api/network/changes", { changes });
      render();
    } catch (err) {
      errors.show(err);
    } finally {
      busy(submit, false);
    }
  });
  blocks.push(form);
  if (m.rendered) {
    blocks.push(
      h("details", { class: "card wide", dataset: tid("rendered") }, h("summary", null, "Files the appliance writes"), h("h3", null, m.rendered.netplan_path || "netplan"), h("pre", { class: "mono" }, m.rendered.netplan || ""), h("h3", null, "nftables ruleset"), h("pre", { class: "mono" }, m.rendered.nftables || "")),
    );
  }
  return h("div", { class: "network-manager" }, blocks);
}

/** Choosing (or swapping) the ports' roles after setup — also after a preseed, which skips the
 * wizard. Applied on trial like every network change: undone after 90 s unless kept. */
function portRolesForm(ports, plan) {
  const names = ports.map((p) => p.name);
  const pick = (key, value) => {
    const sel = h("select", { name: key, dataset: { field: key, testid: `input-${key.replace(/_/g, "-")}` } }, names.map((n) => h("option", { value: n }, n)));
    if (value && names.includes(value)) sel.value = value;
    return sel;
  };
  const internet = pick("internet_port", plan.internet_port || names[0]);
  const streaming = pick("streaming_port", plan.streaming_port || names[1] || names[0]);
  const subnet = textInput("streaming_subnet", plan.streaming_subnet || "10.0.1.1/24", { spellcheck: "false", autocapitalize: "none", dataset: { field: "streaming_subnet", testid: "input-streaming-subnet" } });
  const submit = h("button", { type: "submit", class: "primary", dataset: tid("roles-apply") }, "Apply on trial");
  const form = h(
    "form",
    { class: "card wide", novalidate: true, dataset: tid("roles-form") },
    h("h2", null, "Port roles"),
    h("p", { class: "hint" }, "One port goes to your router (internet), the other to the TVs (streaming network, with its own addresses). Plug the cables accordingly; the change is undone after 90 seconds unless you keep it."),
    field("Internet port (to the router)", internet),
    field("Streaming port (to the TVs)", streaming),
    field("Appliance address on the streaming network", subnet, "A private range with its prefix, e.g. 10.0.1.1/24."),
    h("div", { class: "actions" }, submit),
  );
  const errors = formErrors(form);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    errors.clear();
    if (internet.value === streaming.value) {
      errors.show({ message: "Pick two different ports.", fields: { streaming_port: "the streaming port must be the other port" } });
      return;
    }
    busy(submit, true);
    const next = { internet_port: internet.value, streaming_port: streaming.value, streaming_subnet: subnet.value.trim() };
    try {
      await api("POST", "/api/network/changes", { changes: { "network.plan": next } });
      render();
    } catch (err) {
      errors.show(err);
    } finally {
      busy(submit, false);
    }
  });
  return names.length >= 2 ? form : h("p", { class: "muted", dataset: tid("roles-none") }, "Two network ports are needed to split internet and streaming.");
}

/** The WireGuard split tunnel for downloads: state, handshake, exit address, kill switch. */
function vpnBlock(v) {
  if (!v) return h("div", { class: "vpn" });
  const kv = (label, value, testid) => h("div", { class: "kv" }, h("dt", null, label), h("dd", testid ? { dataset: tid(testid) } : null, value));
  const age = v.handshake_age_s;
  const pf = v.port_forwarding || {};
  const words = { up: "Up", down: "Down", connecting: "Connecting", not_configured: "Not configured" };
  return h(
    "div",
    { class: "vpn" },
    h("h2", { class: "section-title" }, "VPN (downloads only)"),
    h(
      "dl",
      { class: "facts", dataset: tid("vpn-facts") },
      kv("State", words[v.state] || v.state || "—", "vpn-state"),
      kv("Detail", v.detail || "—"),
      kv("Server", v.endpoint || "—"),
      kv("Last handshake", age === null || age === undefined ? "—" : `${Math.round(age)} s ago`),
      kv("Exit address", v.exit_ip ? `${v.exit_ip} (internet port: ${v.internet_ip || "?"})` : "—"),
      kv("Forwarded port", v.forwarded_port ? String(v.forwarded_port) : "—"),
      kv("Kill switch", `${v.killswitch_drops || 0} packets stopped`),
    ),
    pf.error ? h("p", { class: "hint" }, `Port forwarding: ${pf.error}`) : null,
  );
}

/** The storage manager: tiers in use, migrations, last actions, and setting up a drive. */
function storageManagerBlocks(m, drives) {
  const inUse = m.drives || [];
  const tiers = table(
    "Tiers in use",
    ["Role", "Drive", "Mounted at", "State", "Used", "Free", "Wear", "Temperature"],
    inUse.length
      ? inUse.map((x) =>
          h(
            "tr",
            { dataset: { testid: "tier-row", role: x.role || "" } },
            h("th", { scope: "row" }, humanKey(x.role || "—")),
            h("td", null, `${x.name || "—"} (${x.model || "unknown model"})`),
            h("td", { class: "mono" }, x.mount || "—"),
            h("td", null, x.problem ? `${humanKey(x.state || "")}: ${x.problem}` : humanKey(x.state || "—")),
            h("td", null, x.used_bytes === null || x.used_bytes === undefined ? "—" : fmtBytes(x.used_bytes)),
            h("td", null, x.free_bytes === null || x.free_bytes === undefined ? "—" : fmtBytes(x.free_bytes)),
            h("td", null, x.wear_ratio === null || x.wear_ratio === undefined ? "—" : `${(x.wear_ratio * 100).toFixed(0)} %`),
            h("td", null, x.temperature_c === null || x.temperature_c === undefined ? "—" : `${Number(x.temperature_c).toFixed(0)} °C`),
          ),
        )
      : [emptyRow(8, "No drive is in use yet.")],
    "tiers-table",
  );
  const migrations = (m.migrations || []).map((x) =>
    h("li", { dataset: tid("migration") }, `${x.item}: ${x.direction}, ${fmtBytes(x.copied_bytes || 0)} of ${fmtBytes(x.size_bytes || 0)}`),
  );
  const actions = (m.last_actions || []).slice(0, 10).map((a) =>
    h("li", { dataset: tid("storage-action") }, `${a.ts ? new Date(a.ts * 1000).toLocaleString() : ""} ${a.action}: ${a.detail}`),
  );
  // set up a drive: pick a drive without a role, a role, and type its model + serial
  const free = drives.filter((x) => !x.holds_system && !inUse.some((u) => u.name === x.name));
  const pick = h(
    "select",
    { name: "drive", dataset: tid("format-drive") },
    free.map((x) => h("option", { value: x.name }, `${x.name} — ${x.model || "?"} ${x.serial || ""}`)),
  );
  const role = h("select", { name: "role", dataset: tid("format-role") }, h("option", { value: "media" }, "Media drive"), h("option", { value: "cold" }, "Cold storage (e.g. a USB disk)"));
  const confirm = textInput("confirm", "", { autocomplete: "off", spellcheck: "false", dataset: { field: "confirm", testid: "format-confirm" } });
  const submit = h("button", { type: "submit", class: "danger", dataset: tid("format-submit") }, "Erase and set up");
  const form = h(
    "form",
    { class: "card wide", novalidate: true, dataset: tid("format-form") },
    h("h2", null, "Set up a drive"),
    h("p", { class: "hint" }, "Everything on the chosen drive is erased. To confirm, type its model and serial exactly as shown in the Drives table, separated by a space."),
    field("Drive", pick),
    field("Role", role),
    field("Model and serial", confirm),
    h("div", { class: "actions" }, submit),
  );
  const errors = formErrors(form);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    errors.clear();
    busy(submit, true);
    try {
      await api("POST", "/api/storage/format", { drive: pick.value, role: role.value, confirm: confirm.value.trim() });
      render();
    } catch (err) {
      errors.show(err);
    } finally {
      busy(submit, false);
    }
  });
  return h(
    "div",
    { class: "storage-manager" },
    tiers,
    tieringRulesForm(m.rules || {}),
    h("h2", { class: "section-title" }, "Migrations"),
    migrations.length ? h("ul", null, migrations) : h("p", { class: "muted", dataset: tid("migrations-none") }, "No migration running."),
    h("h2", { class: "section-title" }, "Last actions"),
    actions.length ? h("ul", null, actions) : h("p", { class: "muted" }, "No action yet."),
    free.length ? form : h("p", { class: "muted", dataset: tid("format-none") }, "Every drive is in use."),
  );
}

/** The household's tiering rules (saved in Settings, read by the storage manager at every
 * check): free space to keep on the media drive, idle days before an item goes cold, and the
 * optional cleanup of watched media. */
function tieringRulesForm(rules) {
  const num = (key, value, min, max) =>
    h("input", { type: "number", name: `storage.${key}`, value: value ?? "", step: "1", min, max, inputmode: "numeric", dataset: { field: `storage.${key}`, testid: `input-storage-${key}` } });
  const pct = rules.free_watermark === undefined || rules.free_watermark === null ? "" : Math.round(rules.free_watermark * 100);
  const water = num("free_watermark_percent", pct, "1", "90");
  const idle = num("cold_after_days", rules.min_idle_days ?? "", "0", "3650");
  const cleanupOn = rules.cleanup_watched_days !== null && rules.cleanup_watched_days !== undefined;
  const cleanup = h("input", { type: "checkbox", name: "storage.cleanup", checked: cleanupOn, dataset: tid("input-storage-cleanup") });
  const days = num("cleanup_watched_days", cleanupOn ? rules.cleanup_watched_days : 90, "1", "3650");
  days.disabled = !cleanupOn;
  cleanup.addEventListener("change", () => { days.disabled = !cleanup.checked; });
  const saved = h("p", { class: "saved", role: "status", dataset: tid("rules-saved") });
  const save = h("button", { type: "submit", class: "primary", dataset: tid("rules-save") }, "Save rules");
  const form = h(
    "form",
    { class: "card wide", novalidate: true, dataset: tid("rules-form") },
    h("h2", null, "Tiering rules"),
    h("p", { class: "hint" }, "When the media drive runs low, the items nobody has watched for the longest move to cold storage; they come back when you play them."),
    h("div", { class: "row3" }, field("Keep free on the media drive (%)", water), field("Move items unused for (days)", idle)),
    h("div", { class: "field checkbox-field" }, h("label", null, cleanup, " Delete watched media after a while (off by default)")),
    field("Delete watched media after (days)", days),
    h("div", { class: "actions" }, save, saved),
  );
  const errors = formErrors(form);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    errors.clear();
    saved.textContent = "";
    const toNum = (el) => (el.value === "" ? null : Number(el.value));
    const body = { storage: { free_watermark_percent: toNum(water), cold_after_days: toNum(idle), cleanup_watched_days: cleanup.checked ? toNum(days) : 0 } };
    busy(save, true);
    try {
      await api("PATCH", "/api/settings", body);
      saved.textContent = "Saved.";
    } catch (err) {
      if (err.status !== 401) errors.show(err);
    } finally {
      busy(save, false);
    }
  });
  return form;
}

/** The thermal governor: its state, the hottest zone, thresholds and its last actions. */
function thermalBlock(t) {
  if (!t) return h("div", { class: "thermal" });
  const th = t.thresholds || {};
  const hot = t.hottest;
  const words = { normal: "Normal", throttled: "Throttled", critical: "Critical" };
  const actions = (t.last_actions || []).slice(0, 10).map((a) =>
    h(
      "tr",
      { dataset: tid("thermal-action") },
      h("td", null, a.ts ? new Date(a.ts * 1000).toLocaleTimeString() : "—"),
      h("td", null, words[a.state] || a.state || "—"),
      h("td", null, a.detail || a.action || "—"),
      h("td", null, a.ok === false ? "Failed" : "Done"),
    ),
  );
  return h(
    "div",
    { class: "thermal" },
    h(
      "dl",
      { class: "facts", dataset: tid("thermal-facts") },
      h("div", { class: "kv" }, h("dt", null, "Thermal governor"), h("dd", { dataset: { testid: "thermal-state", state: t.state || "" } }, words[t.state] || t.state || "—")),
      h("div", { class: "kv" }, h("dt", null, "Hottest zone"), h("dd", null, hot ? `${hot.zone} at ${Number(hot.temp_c).toFixed(1)} °C` : "—")),
      h("div", { class: "kv" }, h("dt", null, "Thresholds"), h("dd", null, `throttle ${th.throttle_c ?? "—"} °C · release ${th.release_c ?? "—"} °C · critical ${th.critical_c ?? "—"} °C`)),
    ),
    table("Thermal governor: last actions", ["Time", "State", "Action", "Result"], actions.length ? actions : [emptyRow(4, "No action taken yet.")], "thermal-actions"),
  );
}

/** The CPU-slice governor: which CPUs each kind of work may use, and why. */
function slicesBlock(sl) {
  if (!sl) return h("div", { class: "slices" });
  const rows = (sl.slices || []).map((x) =>
    h(
      "tr",
      { dataset: { testid: "slice-row", slice: x.slice || "" } },
      h("th", { scope: "row" }, x.slice || "—"),
      h("td", null, x.work || "—"),
      h("td", { class: "mono" }, cpuList(x.cpus || [])),
      h("td", null, (x.roles || []).join(" + ") || "—"),
      h("td", null, x.error ? `Error: ${x.error}` : x.applied ? "Applied" : "Not applied"),
      h("td", null, x.last_change ? x.last_change.reason || "—" : "—"),
    ),
  );
  return h(
    "div",
    { class: "slices" },
    table(
      "CPU slices",
      ["Slice", "Work", "CPUs", "Cluster", "State", "Last change"],
      rows.length ? rows : [emptyRow(6, "No slice plan.")],
      "slices-table",
    ),
    h("p", { class: "hint", dataset: tid("slices-detail") }, `${STATE_WORDS[sl.state] || sl.state}: ${sl.detail || ""}`),
  );
}

/** [0,1,2,3,8] -> "0-3, 8" */
function cpuList(cpus) {
  const sorted = [...cpus].map(Number).sort((a, b) => a - b);
  const out = [];
  for (let i = 0; i < sorted.length; i += 1) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1) j += 1;
    out.push(j > i ? `${sorted[i]}-${sorted[j]}` : String(sorted[i]));
    i = j;
  }
  return out.join(", ") || "—";
}

function settingsForms(s) {
  const th = s.thermal || {};
  const content = s.content || {};
  const keySet = !!(content.tmdb_api_key && content.tmdb_api_key.set);

  // --- general settings
  const host = textInput("hostname", s.hostname || "", { autocapitalize: "none", spellcheck: "false", maxlength: "63", dataset: { field: "hostname", testid: "input-hostname" } });
  const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  const tzList = h("datalist", { id: "tz-list" }, zones.map((z) => h("option", { value: z })));
  const tz = textInput("timezone", s.timezone || "", { list: "tz-list", autocapitalize: "none", spellcheck: "false", dataset: { field: "timezone", testid: "input-timezone" } });
  const num = (key, value) =>
    h("input", { type: "number", name: `thermal.${key}`, value: value ?? "", step: "1", min: "20", max: "120", inputmode: "numeric", dataset: { field: `thermal.${key}`, testid: `input-thermal-${key}` } });
  const thr = num("throttle_c", th.throttle_c);
  const rel = num("release_c", th.release_c);
  const crit = num("critical_c", th.critical_c);
  const urls = h("textarea", { name: "content.torznab_urls", rows: "4", class: "mono", spellcheck: "false", autocapitalize: "none", dataset: { field: "content.torznab_urls", testid: "input-torznab_urls" } });
  urls.value = (content.torznab_urls || []).join("\n");
  const serve = h("input", { type: "checkbox", name: "dlna.serve_lan", checked: !!(s.dlna && s.dlna.serve_lan), dataset: { field: "dlna.serve_lan", testid: "input-dlna-serve_lan" } });
  const saved = h("p", { class: "saved", role: "status", dataset: tid("settings-saved") });
  const save = h("button", { type: "submit", class: "primary", dataset: tid("settings-save") }, "Save settings");
  const general = h(
    "form",
    { class: "card wide", novalidate: true, dataset: tid("settings-form") },
    h("h2", null, "General"),
    field("Host name", host),
    field("Time zone", tz, "For example Europe/Paris or Etc/UTC."),
    tzList,
    h(
      "fieldset",
      { class: "group" },
      h("legend", null, "Thermal thresholds (°C)"),
      h("p", { class: "hint" }, "The CPU slows down at the throttle temperature and speeds up again below the release temperature. The critical temperature is the emergency limit."),
      h("div", { class: "row3" }, field("Release at", rel), field("Throttle at", thr), field("Critical at", crit)),
    ),
    field("Torznab indexer URLs (one per line)", urls),
    h("div", { class: "field checkbox-field" }, h("label", null, serve, " Serve media by DLNA on the home network too (not only on the streaming port)")),
    h("div", { class: "actions" }, save, saved),
  );
  const gErr = formErrors(general);
  general.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    gErr.clear();
    saved.textContent = "";
    const toInt = (el) => (el.value === "" ? null : Number(el.value));
    const body = {
      hostname: host.value.trim(),
      timezone: tz.value.trim(),
      thermal: { throttle_c: toInt(thr), release_c: toInt(rel), critical_c: toInt(crit) },
      content: { torznab_urls: urls.value.split(/\r?\n/).map((x) => x.trim()).filter(Boolean) },
      dlna: { serve_lan: serve.checked },
    };
    busy(save, true);
    try {
      const res = await api("PATCH", "/api/settings", body);
      saved.textContent = "Saved.";
      if (res && res.hostname) document.getElementById("brand-host").textContent = res.hostname;
    } catch (err) {
      if (err.status !== 401) gErr.show(err);
    } finally {
      busy(save, false);
    }
  });

  // --- TMDB key
  const keyState = h("p", { dataset: tid("tmdb-state") }, keySet ? "A TMDB API key is saved (not shown)." : "No TMDB API key is saved.");
  const key = textInput("content.tmdb_api_key", "", { autocomplete: "off", spellcheck: "false", autocapitalize: "none", dataset: { field: "content.tmdb_api_key", testid: "input-tmdb_api_key" } });
  const setKey = h("button", { type: "submit", class: "primary", dataset: tid("tmdb-set") }, "Save key");
  const clearKey = h("button", { type: "button", class: "secondary", dataset: tid("tmdb-clear"), disabled: !keySet }, "Remove key");
  const keyForm = h("form", { class: "card", novalidate: true, dataset: tid("tmdb-form") }, h("h2", null, "TMDB API key"), keyState, field("New key", key), h("div", { class: "actions" }, setKey, clearKey));
  const kErr = formErrors(keyForm);
  const sendKey = async (value, button) => {
    kErr.clear();
    busy(button, true);
    try {
      const res = await api("PATCH", "/api/settings", { content: { tmdb_api_key: value } });
      const isSet = !!(res && res.content && res.content.tmdb_api_key && res.content.tmdb_api_key.set);
      keyState.textContent = isSet ? "A TMDB API key is saved (not shown)." : "No TMDB API key is saved.";
      clearKey.disabled = !isSet;
      key.value = "";
    } catch (err) {
      if (err.status !== 401) kErr.show(err);
    } finally {
      busy(button, false);
    }
  };
  keyForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (!key.value.trim()) {
      kErr.show(validationError("Type the key first.", { "content.tmdb_api_key": "The key is empty." }));
      return;
    }
    sendKey(key.value.trim(), setKey);
  });
  clearKey.addEventListener("click", () => sendKey("", clearKey));

  // --- password
  const cur = h("input", { type: "password", name: "current_password", autocomplete: "current-password", dataset: tid("input-current_password") });
  const nw = h("input", { type: "password", name: "new_password", autocomplete: "new-password", dataset: tid("input-new_password") });
  const nw2 = h("input", { type: "password", name: "new_password_again", autocomplete: "new-password", dataset: tid("input-new_password_again") });
  const pwDone = h("p", { class: "saved", role: "status", dataset: tid("password-saved") });
  const pwBtn = h("button", { type: "submit", class: "primary", dataset: tid("password-save") }, "Change password");
  const pwForm = h("form", { class: "card", novalidate: true, dataset: tid("password-form") }, h("h2", null, "Change password"), field("Current password", cur), field("New password", nw, "At least 8 characters."), field("New password again", nw2), h("div", { class: "actions" }, pwBtn, pwDone));
  const pErr = formErrors(pwForm);
  pwForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    pErr.clear();
    pwDone.textContent = "";
    if (nw.value !== nw2.value) {
      pErr.show(validationError("The new passwords are not the same.", { new_password_again: "Type the same new password twice." }));
      return;
    }
    busy(pwBtn, true);
    try {
      await api("POST", "/api/account/password", { current_password: cur.value, new_password: nw.value });
      pwDone.textContent = "Password changed.";
      cur.value = nw.value = nw2.value = "";
    } catch (err) {
      if (err.status !== 401) pErr.show(err);
    } finally {
      busy(pwBtn, false);
    }
  });

  // --- logout
  const logout = h("button", { type: "button", class: "secondary", dataset: tid("logout") }, "Log out");
  logout.addEventListener("click", doLogout);
  const sessionCard = h("div", { class: "card" }, h("h2", null, "Session"), h("p", null, `Logged in as ${(app.session && app.session.username) || "the administrator"}.`), h("div", { class: "actions" }, logout));

  return h("div", { class: "settings-grid" }, general, speedLimitsForm(s), keyForm, pwForm, sessionCard);
}

/** Download and upload speed limits of the torrent engine (KiB/s here, bytes/s in the API). */
function speedLimitsForm(s) {
  const t = s.torrent || {};
  const kib = (name, bytes) =>
    h("input", { type: "number", name: `torrent.${name}`, value: String(Math.round((Number(bytes) || 0) / 1024)), step: "1", min: "0", inputmode: "numeric", dataset: { field: `torrent.${name}`, testid: `input-torrent-${name}` } });
  const down = kib("download_limit", t.download_limit);
  const up = kib("upload_limit", t.upload_limit);
  const saved = h("p", { class: "saved", role: "status", dataset: tid("speed-saved") });
  const save = h("button", { type: "submit", class: "primary", dataset: tid("speed-save") }, "Save limits");
  const form = h(
    "form",
    { class: "card", novalidate: true, dataset: tid("speed-form") },
    h("h2", null, "Download speed"),
    h("p", { class: "hint" }, "In KiB/s; 0 means no limit. When the board runs hot it lowers the speed further by itself."),
    h("div", { class: "row3" }, field("Download limit", down), field("Upload limit", up)),
    h("div", { class: "actions" }, save, saved),
  );
  const errs = formErrors(form);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    errs.clear();
    saved.textContent = "";
    const bytes = (el) => (el.value === "" ? null : Math.round(Number(el.value) * 1024));
    busy(save, true);
    try {
      await api("PATCH", "/api/settings", { torrent: { download_limit: bytes(down), upload_limit: bytes(up) } });
      saved.textContent = "Saved.";
    } catch (err) {
      if (err.status !== 401) errs.show(err);
    } finally {
      busy(save, false);
    }
  });
  return form;
}

// ---------------------------------------------------------------- casting (Chromecast)
// A Cast button on library items opens a device picker (GET /api/devices); POST /api/cast
// starts it and the cast bar (fixed at the bottom, outside the page) follows the receiver's
// MEDIA_STATUS through the WebSocket's "cast.device" events. docs/cast.md.

const CAST_STATES = { available: "Available", connecting: "Connecting", casting: "Casting", reconnecting: "Reconnecting", lost: "Lost" };

/** Keep the newest view of a device: an HTTP answer may arrive after a newer WebSocket event. */
function castKeep(dev) {
  const old = cast.devices.get(dev.id);
  if (old && (old.seq ?? 0) > (dev.seq ?? 0)) return false;
  cast.devices.set(dev.id, dev);
  cast.seenAt.set(dev.id, performance.now());
  return true;
}

const cast = {
  devices: new Map(), // id -> the last device object seen (GET /api/devices or an event)
  current: null, // the device the cast bar controls
  dialog: null,
  seenAt: new Map(), // id -> performance.now() when its status last arrived
  ticker: 0,
};

function fmtClock(sec) {
  if (sec === null || sec === undefined || !Number.isFinite(Number(sec))) return "—";
  const s = Math.max(0, Math.floor(Number(sec)));
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return hh ? `${hh}:${String(mm).padStart(2, "0")}:${ss}` : `${mm}:${ss}`;
}

function castStatusText(dev) {
  const word = CAST_STATES[dev.state] || dev.state || "—";
  const c = dev.cast;
  if (c && dev.state === "casting") return `${word} · ${c.player_state || "UNKNOWN"}`;
  return word;
}

/** The Devices page's row for one Chromecast (kept live by castLive). */
function castDeviceRow(dev) {
  const control = h("button", { type: "button", dataset: { testid: "chromecast-control", id: dev.id } }, "Control");
  control.addEventListener("click", () => {
    cast.current = dev.id;
    renderCastBar();
  });
  return h(
    "tr",
    { dataset: { testid: "chromecast-row", id: dev.id, state: dev.state || "" } },
    h("td", null, dev.name || "—"),
    h("td", null, dev.model || "—"),
    h("td", { class: "mono" }, dev.address || "—"),
    h("td", { dataset: tid("chromecast-status") }, castStatusText(dev), dev.detail ? h("span", { class: "state-detail" }, ` ${dev.detail}`) : null),
    h("td", null, dev.cast ? [dev.cast.title || "", " ", control] : "—"),
  );
}

function castDevicesTable(list, d) {
  for (const dev of list) castKeep(dev);
  return table(
    `Chromecasts (${list.length})`,
    ["Name", "Model", "Address", "Status", "Casting"],
    list.length ? list.map(castDeviceRow) : [emptyRow(5, "No Chromecasts found. " + emptyReason(d.cast || d))],
    "chromecasts-table",
  );
}

/** WebSocket messages, whatever the page: device changes and the cast bar. */
function castLive(msg) {
  if (!msg || msg.type !== "event" || !msg.data) return;
  const tbody = document.querySelector("[data-testid=chromecasts-table] tbody");
  if (msg.data.name === "cast.device" && msg.data.device) {
    const dev = msg.data.device;
    if (!castKeep(dev)) return;
    if (tbody) {
      const old = tbody.querySelector(`tr[data-testid=chromecast-row][data-id="${CSS.escape(dev.id)}"]`);
      if (old) old.replaceWith(castDeviceRow(dev));
      else {
        const empty = tbody.querySelector("tr:not([data-testid=chromecast-row])");
        if (empty) empty.remove();
        tbody.append(castDeviceRow(dev));
      }
    }
    if (cast.current === dev.id) renderCastBar();
  } else if (msg.data.name === "cast.removed") {
    cast.devices.delete(msg.data.id);
    if (tbody) {
      const old = tbody.querySelector(`tr[data-testid=chromecast-row][data-id="${CSS.escape(msg.data.id)}"]`);
      if (old) old.remove();
    }
  }
}

function castButton(itemId, title) {
  const b = h("button", { type: "button", class: "cast-button", dataset: { testid: "library-cast", id: itemId }, "aria-label": `Cast ${title}` }, "Cast");
  b.addEventListener("click", () => openCastPicker(itemId, title));
  return b;
}

/** Downloads: "Play now" registers the file at /stream/dl-…; that id is what gets cast. */
function castDownloadButton(t) {
  const b = h("button", { type: "button", class: "cast-button", dataset: { testid: "download-cast", id: t.id }, "aria-label": `Cast ${t.name || "this download"}` }, "Cast");
  b.addEventListener("click", async () => {
    busy(b, true);
    try {
      const res = await api("POST", `/api/downloads/${encodeURIComponent(t.id)}/play`, {});
      const streamId = String(res.stream || "").split("/").pop();
      await openCastPicker(streamId, res.name || t.name || "download");
    } catch (err) {
      alertCastError(err);
    } finally {
      busy(b, false);
    }
  });
  return b;
}

function alertCastError(err) {
  const dev = cast.current ? cast.devices.get(cast.current) : null;
  if (dev) {
    cast.devices.set(dev.id, { ...dev, detail: err.message || String(err) });
    renderCastBar();
  } else {
    const p = h("p", { class: "error", role: "alert", dataset: tid("cast-error") }, err.message || String(err));
    main().prepend(p);
  }
}

async function openCastPicker(itemId, title) {
  if (cast.dialog) cast.dialog.remove();
  const list = h("div", { class: "cast-choices", dataset: tid("cast-choices") }, h("p", { class: "loading" }, "Looking for Chromecasts…"));
  const subs = h("input", { type: "checkbox", name: "subtitles", checked: true, dataset: tid("cast-subtitles") });
  const error = h("p", { class: "error", role: "alert", hidden: true, dataset: tid("cast-error") });
  const cancel = h("button", { type: "button", dataset: tid("cast-cancel") }, "Cancel");
  const dialog = h(
    "dialog",
    { class: "cast-dialog", "aria-label": `Cast ${title}`, dataset: tid("cast-dialog") },
    h("h2", null, `Cast “${title}”`),
    list,
    h("label", { class: "check" }, subs, " Subtitles (when the item has some)"),
    error,
    h("div", { class: "actions" }, cancel),
  );
  cancel.addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => {
    dialog.remove();
    if (cast.dialog === dialog) cast.dialog = null;
  });
  document.body.append(dialog);
  cast.dialog = dialog;
  dialog.showModal();
  let d;
  try {
    d = await api("GET", "/api/devices");
  } catch (err) {
    list.replaceChildren();
    error.textContent = err.message || String(err);
    error.hidden = false;
    return;
  }
  const usable = (d.chromecasts || []).filter((x) => x.present && x.state !== "lost");
  if (!usable.length) {
    list.replaceChildren(h("p", { class: "muted", dataset: tid("cast-none") }, "No Chromecast found on the streaming network. " + ((d.cast && d.cast.detail) || "")));
    return;
  }
  list.replaceChildren(
    ...usable.map((dev) => {
      const b = h("button", { type: "button", class: "cast-choice", dataset: { testid: "cast-device", id: dev.id } }, h("strong", null, dev.name), h("span", { class: "muted" }, ` ${dev.model} · ${castStatusText(dev)}`));
      b.addEventListener("click", async () => {
        for (const other of list.querySelectorAll("button")) busy(other, true);
        error.hidden = true;
        try {
          const res = await api("POST", "/api/cast", { device: dev.id, item: itemId, subtitles: subs.checked });
          castKeep(res);
          cast.current = res.id;
          dialog.close();
          renderCastBar();
        } catch (err) {
          error.textContent = err.message || String(err);
          error.hidden = false;
          for (const other of list.querySelectorAll("button")) busy(other, false);
        }
      });
      return b;
    }),
  );
}

function renderCastBar() {
  let bar = document.getElementById("cast-bar");
  const dev = cast.current ? cast.devices.get(cast.current) : null;
  if (!dev || !app.session || !app.session.authenticated) {
    if (bar) bar.remove();
    clearInterval(cast.ticker);
    return;
  }
  // built once per device, then updated in place: a status arriving while a button is being
  // clicked must not swap the button under the pointer
  if (!bar || bar.dataset.id !== dev.id) {
    if (bar) bar.remove();
    bar = buildCastBar(dev.id);
    document.body.append(bar);
  }
  updateCastBar(bar, dev);
}

function buildCastBar(id) {
  const control = (action, label, value) => {
    const b = h("button", { type: "button", dataset: tid(`cast-${action}`) }, label);
    b.addEventListener("click", () => castControl(id, action, value === undefined ? undefined : value()));
    return b;
  };
  const seekInput = h("input", { type: "number", min: "0", step: "1", value: "0", "aria-label": "Seek to (seconds)", dataset: tid("cast-seek-input") });
  const volume = h("input", { type: "range", min: "0", max: "1", step: "0.05", value: "0.5", "aria-label": "Volume", dataset: tid("cast-volume") });
  volume.addEventListener("change", () => castControl(id, "volume", Number(volume.value)));
  const close = h("button", { type: "button", class: "cast-close", "aria-label": "Hide", dataset: tid("cast-close") }, "×");
  close.addEventListener("click", () => {
    cast.current = null;
    renderCastBar();
  });
  const refs = {
    name: h("strong", { dataset: tid("cast-device-name") }),
    title: h("span", { class: "cast-title", dataset: tid("cast-title") }),
    state: h("span", { class: "cast-state", dataset: tid("cast-state") }),
    clock: h("span", { class: "mono", dataset: tid("cast-time") }),
    mode: h("span", { class: "muted", dataset: tid("cast-mode") }),
    detail: h("p", { dataset: tid("cast-detail"), hidden: true }),
    seekInput,
    volume,
    controls: [control("play", "Play"), control("pause", "Pause"), control("stop", "Stop"), seekInput, control("seek", "Seek", () => Number(seekInput.value)), volume],
  };
  const bar = h(
    "section",
    { id: "cast-bar", class: "cast-bar", "aria-label": "Casting", dataset: { testid: "cast-bar", id } },
    h("div", { class: "cast-info" }, refs.name, refs.title, refs.state, refs.clock, refs.mode),
    h("div", { class: "cast-controls" }, refs.controls.slice(0, 5), h("label", { class: "cast-volume" }, "Volume ", volume), close),
    refs.detail,
  );
  bar.refs = refs;
  return bar;
}

function updateCastBar(bar, dev) {
  const r = bar.refs;
  const c = dev.cast || {};
  const lost = dev.state === "lost";
  bar.dataset.state = dev.state || "";
  r.name.textContent = dev.name || "";
  r.title.textContent = c.title || "";
  r.state.textContent = lost ? "LOST" : c.player_state || CAST_STATES[dev.state] || dev.state || "";
  r.state.className = `cast-state state-${lost ? "error" : "ok"}`;
  r.mode.textContent = c.mode || "";
  r.detail.textContent = dev.detail || "";
  r.detail.hidden = !dev.detail;
  r.detail.className = lost ? "error" : "muted";
  if (lost) r.detail.setAttribute("role", "alert");
  else r.detail.removeAttribute("role");
  if (document.activeElement !== r.seekInput) r.seekInput.value = String(Math.floor(Number(c.current_time) || 0));
  if (document.activeElement !== r.volume && dev.volume !== null && dev.volume !== undefined) r.volume.value = String(dev.volume);
  for (const el of r.controls) el.disabled = lost || !dev.cast;
  const seen = cast.seenAt.get(dev.id) || performance.now();
  const tick = () => {
    // the receiver reports on changes only: count on locally while it plays
    const moving = dev.state === "casting" && c.player_state === "PLAYING" && c.current_time !== null && c.current_time !== undefined;
    const now = moving ? Math.min(Number(c.current_time) + (performance.now() - seen) / 1000, Number(c.duration) || Infinity) : c.current_time;
    r.clock.textContent = `${fmtClock(now)} / ${fmtClock(c.duration)}`;
  };
  tick();
  clearInterval(cast.ticker);
  cast.ticker = setInterval(() => (r.clock.isConnected ? tick() : clearInterval(cast.ticker)), 1000);
}

async function castControl(id, action, value) {
  try {
    const dev = await api("POST", `/api/cast/${encodeURIComponent(id)}/${action}`, value === undefined ? {} : { value });
    castKeep(dev);
  } catch (err) {
    const dev = cast.devices.get(id);
    if (dev) cast.devices.set(id, { ...dev, detail: err.message || String(err) });
  }
  renderCastBar();
}

async function doLogout() {
  stopLive();
  try {
    await api("POST", "/api/logout", {}, { noAuthRedirect: true });
  } catch (err) {
    // Already logged out on the server: fine.
  }
  try {
    await refreshSession();
  } catch (err) {
    if (app.session) app.session.authenticated = false;
  }
  app.afterLogin = "#/home";
  document.getElementById("brand-host").textContent = "";
  go("#/login");
}

// ---------------------------------------------------------------- start

function wireChrome() {
  const toggle = document.getElementById("menu-toggle");
  const nav = document.getElementById("nav");
  toggle.addEventListener("click", () => {
    const open = !nav.classList.contains("open");
    nav.classList.toggle("open", open);
    toggle.setAttribute("aria-expanded", String(open));
  });
  nav.addEventListener("click", (ev) => {
    if (ev.target instanceof Element && ev.target.closest("a")) closeMenu();
  });
  window.addEventListener("hashchange", () => render());
}

async function boot() {
  wireChrome();
  for (;;) {
    try {
      await refreshSession();
      break;
    } catch (err) {
      setMain(errorPanel(err));
      await new Promise((resolve) => setTimeout(resolve, 3000));
    }
  }
  if (!app.session.setup_complete && !location.hash.startsWith("#/wizard") && !location.hash.startsWith("#/login")) {
    location.replace("#/wizard");
  }
  render();
}

boot();
