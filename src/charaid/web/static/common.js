// Shared by the three pages. Names always go into the page as text (textContent), never as HTML.
const params = new URLSearchParams(location.search);
if (params.get("token")) localStorage.setItem("charaidToken", params.get("token"));
const token = () => localStorage.getItem("charaidToken") || "";

async function api(method, url, body) {
  const opt = { method, headers: { "X-Charaid-Token": token() } };
  if (body instanceof FormData) opt.body = body;
  else if (body !== undefined) { opt.body = JSON.stringify(body); opt.headers["Content-Type"] = "application/json"; }
  const r = await fetch(url, opt);
  let data = null;
  try { data = await r.json(); } catch (e) { data = null; }
  if (!r.ok) {
    const msg = data && (data.error || (typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail)));
    throw new Error(`${r.status}: ${msg || r.statusText}`);
  }
  return data;
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "style") e.style.cssText = v;
    else e.setAttribute(k, v);
  }
  for (const c of children.flat()) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function nav(here) {
  const links = [["/", "Recognise"], ["/label", "Label"], ["/gallery", "Gallery"], ["/docs", "API"]];
  document.body.prepend(el("nav", {}, el("b", {}, "charaid"),
    links.map(([href, text]) => el("a", { href, class: href === here ? "here" : "" }, text))));
}

function scoreBars(top) {
  return top.map(c => el("div", { class: "bar" }, el("span", { class: "n", title: c.character }, c.character),
    el("div", { class: "b", style: `width:${Math.round(c.score * 120)}px` }), el("span", { class: "muted" }, c.score.toFixed(2))));
}
